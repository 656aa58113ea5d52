/**
 * What every generated kernel finds in `rt`, on the calling thread and on each worker: the 16-bit
 * float decode tables (the values of src/core/dtype.ts's decoders; tests compare every pattern), the
 * per-row ranking DELLA uses, and per-thread scratch arrays that are reused across jobs (fresh
 * memory is expensive, see buffers.ts). Encoders are written into the kernels (codegen.ts).
 *
 * `makeRuntime` must stay self-contained (no imports, no outer variables): workers get it as source
 * text (threads.ts) and call it there.
 */
export interface KernelRuntime {
  /** f32 value of each BF16 bit pattern. */
  TB: Float32Array;
  /** f32 value of each F16 bit pattern. */
  TH: Float32Array;
  /**
   * Element positions 0..n-1 of `vals` in ascending (|value|, position) order: an LSD radix sort
   * over the key bits that vary within the row, in at most 3 passes of up to 11 bits (`counts` holds
   * 6144 entries). Returns the array (idxA or idxB) that holds the order.
   */
  rankRow: (vals: Float32Array, n: number, keysA: Uint32Array, keysB: Uint32Array, idxA: Uint32Array, idxB: Uint32Array, counts: Uint32Array) => Uint32Array;
  /** A per-thread array kept between jobs, grown as needed (contents undefined). */
  scratch: <T extends Float32Array | Uint32Array | Float64Array>(name: string, ctor: new (n: number) => T, length: number) => T;
}

export function makeRuntime(): KernelRuntime {
  const TB = new Float32Array(65536);
  const TBU = new Uint32Array(TB.buffer);
  for (let b = 0; b < 65536; b++) TBU[b] = b << 16;

  const TH = new Float32Array(65536);
  for (let b = 0; b < 65536; b++) {
    const sign = b & 0x8000 ? -1 : 1;
    const exp = (b >>> 10) & 0x1f;
    const frac = b & 0x3ff;
    if (exp === 0) TH[b] = sign * frac * 2 ** -24;
    else if (exp === 0x1f) TH[b] = frac ? NaN : sign * Infinity;
    else TH[b] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }

  function rankRow(vals: Float32Array, n: number, keysA: Uint32Array, keysB: Uint32Array, idxA: Uint32Array, idxB: Uint32Array, counts: Uint32Array): Uint32Array {
    // Only the key bits that differ within the row matter (BF16-derived values share their low
    // bits): at most 3 LSD passes of up to 11 bits over them, all digits counted in one pass; the
    // first pass reads positions as they are, the last moves positions only.
    const bits = new Uint32Array(vals.buffer, vals.byteOffset, n);
    let or = 0;
    let and = 0x7fffffff;
    for (let i = 0; i < n; i++) {
      const key = bits[i] & 0x7fffffff;
      keysA[i] = key;
      or |= key;
      and &= key;
    }
    const varying = (or ^ and) >>> 0;
    if (varying === 0) {
      for (let i = 0; i < n; i++) idxA[i] = i;
      return idxA;
    }
    const low = 31 - Math.clz32(varying & -varying);
    const span = 32 - Math.clz32(varying) - low;
    const passes = Math.ceil(span / 11);
    const width = Math.ceil(span / passes);
    const bins = 1 << width;
    const mask = bins - 1;
    counts.fill(0, 0, passes * bins);
    for (let i = 0; i < n; i++) {
      const key = keysA[i] >>> low;
      counts[key & mask]++;
      if (passes > 1) counts[bins + ((key >>> width) & mask)]++;
      if (passes > 2) counts[2 * bins + ((key >>> (2 * width)) & mask)]++;
    }
    let ka = keysA;
    let kb = keysB;
    let ia = idxA;
    let ib = idxB;
    for (let p = 0; p < passes; p++) {
      const shift = low + p * width;
      const at = p * bins;
      let sum = 0;
      for (let k = at; k < at + bins; k++) {
        const c = counts[k];
        counts[k] = sum;
        sum += c;
      }
      const first = p === 0;
      const last = p === passes - 1;
      if (first && last) {
        for (let i = 0; i < n; i++) ib[counts[at + ((ka[i] >>> shift) & mask)]++] = i;
      } else if (first) {
        for (let i = 0; i < n; i++) {
          const key = ka[i];
          const to = counts[at + ((key >>> shift) & mask)]++;
          kb[to] = key;
          ib[to] = i;
        }
      } else if (last) {
        for (let i = 0; i < n; i++) ib[counts[at + ((ka[i] >>> shift) & mask)]++] = ia[i];
      } else {
        for (let i = 0; i < n; i++) {
          const key = ka[i];
          const to = counts[at + ((key >>> shift) & mask)]++;
          kb[to] = key;
          ib[to] = ia[i];
        }
      }
      const k = ka;
      ka = kb;
      kb = k;
      const x = ia;
      ia = ib;
      ib = x;
    }
    return ia;
  }

  const scratches = new Map<string, Float32Array | Uint32Array | Float64Array>();
  function scratch<T extends Float32Array | Uint32Array | Float64Array>(name: string, ctor: new (n: number) => T, length: number): T {
    const have = scratches.get(name);
    if (have && have instanceof ctor && have.length >= length) return (have.length === length ? have : have.subarray(0, length)) as T;
    const made = new ctor(length);
    scratches.set(name, made);
    return made;
  }

  return { TB, TH, rankRow, scratch };
}

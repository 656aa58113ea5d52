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
   * Element positions 0..n-1 of `vals` in ascending (|value|, position) order: an LSD radix sort on
   * the keys, 8 bits a pass (passes where every key has the same digit are skipped). Returns the
   * array (idxA or idxB) that holds the order.
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
    const bits = new Uint32Array(vals.buffer, vals.byteOffset, n);
    for (let i = 0; i < n; i++) {
      keysA[i] = bits[i] & 0x7fffffff;
      idxA[i] = i;
    }
    let ka = keysA;
    let kb = keysB;
    let ia = idxA;
    let ib = idxB;
    for (let shift = 0; shift < 32; shift += 8) {
      counts.fill(0);
      for (let i = 0; i < n; i++) counts[(ka[i] >>> shift) & 255]++;
      if (counts[(ka[0] >>> shift) & 255] === n) continue;
      let sum = 0;
      for (let d = 0; d < 256; d++) {
        const c = counts[d];
        counts[d] = sum;
        sum += c;
      }
      for (let i = 0; i < n; i++) {
        const key = ka[i];
        const at = counts[(key >>> shift) & 255]++;
        kb[at] = key;
        ib[at] = ia[i];
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

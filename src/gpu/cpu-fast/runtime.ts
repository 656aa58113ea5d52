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
   * DELLA's mask of one row: mask[i0 + i] = 1 where the counter-based uniform of element i0 + i is
   * below thresholds[rank of i], ranks ordering keys[0..n) (f32 bits of |x|) ascending, ties by
   * position. `varying` = the key bits that differ within the row (OR ^ AND of the keys);
   * `monotone` = thresholds never rise then fall (or fall then rise). Returns true when the row took
   * the histogram path, false when it was sorted.
   */
  keepRankedRow: (keys: Uint32Array, n: number, i0: number, varying: number, seedHash: number, thresholds: Uint32Array, monotone: boolean, mask: Uint8Array) => boolean;
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

  /** The counter-based uniform of element i, as 24 bits (keepRandom's hash, codegen.ts). */
  function uniform24(seedHash: number, i: number): number {
    let h = (seedHash ^ i) >>> 0;
    h ^= h >>> 16;
    h = Math.imul(h, 0x7feb352d) >>> 0;
    h ^= h >>> 15;
    h = Math.imul(h, 0x846ca68b) >>> 0;
    h ^= h >>> 16;
    return h >>> 8;
  }

  /*
   * Selection, not sorting: an entry's rank only matters through thresholds[rank], a monotone
   * function. One histogram of the top varying key bits (about n buckets) bounds each entry's rank
   * to its bucket's range [start, start + count); the entry is kept when its uniform is below the
   * least threshold of that range, dropped when at or above the greatest, and only otherwise (an
   * ambiguous entry: a share of about 2ε·count/n) needs its exact rank, counted among the members
   * of its bucket. Rows where that counting would cost more than a sort (heavy ties) are sorted.
   */
  function keepRankedRow(keys: Uint32Array, n: number, i0: number, varying: number, seedHash: number, thresholds: Uint32Array, monotone: boolean, mask: Uint8Array): boolean {
    if (varying === 0) {
      // One key: ranks are positions.
      for (let i = 0; i < n; i++) mask[i0 + i] = uniform24(seedHash, i0 + i) < thresholds[i] ? 1 : 0;
      return true;
    }
    if (!monotone) {
      sortedMask(keys, n, i0, varying, seedHash, thresholds, mask);
      return false;
    }
    const top = 32 - Math.clz32(varying);
    const bits = Math.min(12, Math.max(4, 32 - Math.clz32(n - 1)));
    const shift = Math.max(0, top - bits);
    const bins = 1 << bits;
    const digit = bins - 1;
    const count = scratch('ranked bucket counts', Uint32Array, bins).fill(0);
    const start = scratch('ranked bucket starts', Uint32Array, bins);
    const least = scratch('ranked bucket least thresholds', Uint32Array, bins);
    const spread = scratch('ranked bucket threshold spreads', Uint32Array, bins);
    for (let i = 0; i < n; i++) count[(keys[i] >>> shift) & digit]++;
    let sum = 0;
    for (let b = 0; b < bins; b++) {
      const c = count[b];
      if (c === 0) continue;
      const first = thresholds[sum];
      const last = thresholds[sum + c - 1];
      start[b] = sum;
      least[b] = first < last ? first : last;
      spread[b] = first < last ? last - first : first - last;
      sum += c;
    }
    // Branch-free where the outcome is a coin flip: d < 0 keeps; 0 <= d < spread is ambiguous.
    const ambiguous = scratch('ranked ambiguous', Uint32Array, n);
    let open = 0;
    let work = 0;
    for (let i = 0; i < n; i++) {
      const b = (keys[i] >>> shift) & digit;
      const d = (uniform24(seedHash, i0 + i) - least[b]) | 0;
      mask[i0 + i] = d >>> 31;
      if (d >>> 0 < spread[b]) {
        ambiguous[open++] = i;
        work += count[b];
      }
    }
    if (open === 0) return true;
    if (work > 4 * n + 64) {
      sortedMask(keys, n, i0, varying, seedHash, thresholds, mask);
      return false;
    }
    // The members of each bucket holding an ambiguous entry, in position order: a branch-free
    // filter lists them (listed[w] is overwritten unless the bucket is flagged), then they are
    // placed by bucket: bucket b's region ends at at[b].
    const flagged = (bucketFlags ??= new Uint8Array(1 << 12));
    const at = scratch('ranked member regions', Uint32Array, bins);
    const marked = scratch('ranked marked buckets', Uint32Array, bins);
    let regions = 0;
    let size = 0;
    for (let k = 0; k < open; k++) {
      const b = (keys[ambiguous[k]] >>> shift) & digit;
      if (flagged[b] === 0) {
        flagged[b] = 1;
        at[b] = size;
        size += count[b];
        marked[regions++] = b;
      }
    }
    const listed = scratch('ranked listed', Uint32Array, n + 1);
    let w = 0;
    for (let i = 0; i < n; i++) {
      listed[w] = i;
      w += flagged[(keys[i] >>> shift) & digit];
    }
    const members = scratch('ranked members', Uint32Array, size);
    for (let k = 0; k < w; k++) {
      const j = listed[k];
      members[at[(keys[j] >>> shift) & digit]++] = j;
    }
    for (let k = 0; k < regions; k++) flagged[marked[k]] = 0;
    for (let k = 0; k < open; k++) {
      const i = ambiguous[k];
      const key = keys[i];
      const b = (key >>> shift) & digit;
      const end = at[b];
      let below = 0;
      for (let m = end - count[b]; m < end; m++) {
        const j = members[m];
        const other = keys[j];
        if (other < key || (other === key && j < i)) below++;
      }
      if (uniform24(seedHash, i0 + i) < thresholds[start[b] + below]) mask[i0 + i] = 1;
    }
    return true;
  }
  let bucketFlags: Uint8Array | undefined;

  /** keepRankedRow by a full sort of the row: positions in ascending (key, position) order. */
  function sortedMask(keys: Uint32Array, n: number, i0: number, varying: number, seedHash: number, thresholds: Uint32Array, mask: Uint8Array): void {
    const order = rankRow(keys, n, varying);
    for (let rank = 0; rank < n; rank++) {
      const i = order[rank];
      mask[i0 + i] = uniform24(seedHash, i0 + i) < thresholds[rank] ? 1 : 0;
    }
  }

  /**
   * Positions 0..n-1 of `keys` (varying != 0) in ascending (key, position) order: an LSD radix sort
   * over the key bits that vary within the row (BF16-derived values share their low bits), in at
   * most 3 passes of up to 11 bits, all digits counted in one pass; the last pass moves positions only.
   */
  function rankRow(keys: Uint32Array, n: number, varying: number): Uint32Array {
    const low = 31 - Math.clz32(varying & -varying);
    const span = 32 - Math.clz32(varying) - low;
    const passes = Math.ceil(span / 11);
    const width = Math.ceil(span / passes);
    const bins = 1 << width;
    const mask = bins - 1;
    const counts = scratch('ranked sort counts', Uint32Array, 3 * bins).fill(0);
    for (let i = 0; i < n; i++) {
      const key = keys[i] >>> low;
      counts[key & mask]++;
      if (passes > 1) counts[bins + ((key >>> width) & mask)]++;
      if (passes > 2) counts[2 * bins + ((key >>> (2 * width)) & mask)]++;
    }
    let ka: Uint32Array = keys;
    let kb: Uint32Array = scratch('ranked sort keys b', Uint32Array, n);
    let kc = scratch('ranked sort keys c', Uint32Array, n);
    let ia = scratch('ranked sort index a', Uint32Array, n);
    let ib = scratch('ranked sort index b', Uint32Array, n);
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
      // The caller's keys are read only: the ping-pong runs between the two scratch key arrays.
      const k = first ? kc : ka;
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

  return { TB, TH, keepRankedRow, scratch };
}

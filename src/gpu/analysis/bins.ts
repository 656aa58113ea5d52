/**
 * The fixed log-scaled bins of every magnitude histogram, so histograms of different tensors, layers
 * and models pool by adding counts. Bins split each octave [2^k, 2^(k+1)) into BINS_PER_OCTAVE parts
 * at 2^(k + s/BINS_PER_OCTAVE), from 2^MIN_EXPONENT up to 2^(MIN_EXPONENT + OCTAVES), with four
 * extra bins: exact zeros, nonzero values below the range, values at or above its top, and
 * non-finite values (±Inf, NaN).
 *
 * An edge is the f32 value fround(2^k · fround(2^(s/B))): scaling by 2^k is exact in f32, so every
 * edge of sub-bin s has the same mantissa and a kernel can bin |x| from its exponent and mantissa
 * bits alone. A value lands in the bin of the largest edge that is <= |x| (edges are inclusive below).
 */

export const MIN_EXPONENT = -30;
export const OCTAVES = 32;
export const BINS_PER_OCTAVE = 4;
/** Regular bins between 2^MIN_EXPONENT and 2^(MIN_EXPONENT + OCTAVES). */
export const REGULAR_BINS = OCTAVES * BINS_PER_OCTAVE;

/** Index of each special bin; regular bin r is at FIRST_REGULAR + r. */
export const BIN = {
  zero: 0,
  below: 1,
  firstRegular: 2,
  above: 2 + REGULAR_BINS,
  nonFinite: 3 + REGULAR_BINS,
} as const;
export const BIN_COUNT = 4 + REGULAR_BINS;

/** fround(2^(s/B)) for s = 0..B-1: the mantissa pattern of sub-bin s's lower edge in every octave. */
export function subBinScales(): number[] {
  return Array.from({ length: BINS_PER_OCTAVE }, (_, s) => Math.fround(2 ** (s / BINS_PER_OCTAVE)));
}

/** The REGULAR_BINS + 1 edges 2^MIN_EXPONENT .. 2^(MIN_EXPONENT + OCTAVES), as f32 values. */
export function binEdges(): number[] {
  const scales = subBinScales();
  const edges: number[] = [];
  for (let k = 0; k < OCTAVES; k++) {
    for (const s of scales) edges.push(Math.fround(2 ** (MIN_EXPONENT + k) * s));
  }
  edges.push(2 ** (MIN_EXPONENT + OCTAVES));
  return edges;
}

/** The 23 mantissa bits of the sub-bin edges s = 1..B-1 (what the histogram kernel compares against). */
export function subBinMantissas(): number[] {
  const view = new DataView(new ArrayBuffer(4));
  return subBinScales()
    .slice(1)
    .map((v) => {
      view.setFloat32(0, v, true);
      return view.getUint32(0, true) & 0x7fffff;
    });
}

/**
 * The bin of one value (the reference the kernel is tested against): found by comparing |x| with
 * the edge values, not with bit tricks.
 */
export function binOf(x: number, edges: readonly number[] = binEdges()): number {
  const a = Math.abs(x);
  if (Number.isNaN(a) || a === Infinity) return BIN.nonFinite;
  if (a === 0) return BIN.zero;
  if (a < edges[0]) return BIN.below;
  if (a >= edges[edges.length - 1]) return BIN.above;
  // Largest edge <= a (binary search).
  let lo = 0;
  let hi = edges.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (edges[mid] <= a) lo = mid;
    else hi = mid;
  }
  return BIN.firstRegular + lo;
}

/** Human label of a bin for tables and tooltips ("[2^-8, 2^-7.75)", "0", "< 2^-30"...). */
export function binLabel(bin: number): string {
  switch (bin) {
    case BIN.zero:
      return '0';
    case BIN.below:
      return `(0, 2^${MIN_EXPONENT})`;
    case BIN.above:
      return `>= 2^${MIN_EXPONENT + OCTAVES}`;
    case BIN.nonFinite:
      return 'Inf/NaN';
    default: {
      const r = bin - BIN.firstRegular;
      const lo = MIN_EXPONENT + r / BINS_PER_OCTAVE;
      const hi = MIN_EXPONENT + (r + 1) / BINS_PER_OCTAVE;
      return `[2^${lo}, 2^${hi})`;
    }
  }
}

/**
 * The analysis reductions in plain TypeScript over values read back from any Backend: the
 * specification the WGSL kernels (src/shaders/analysis-*.wgsl) are tested against, and the
 * implementation the CPU backend uses. Favours being obviously correct over being fast.
 */
import type { Backend, Tensor } from '../backend.ts';
import { BIN_COUNT, binEdges, binOf } from './bins.ts';
import {
  checkElectInputs,
  checkSignInputs,
  emptySignCounts,
  type AnalysisOps,
  type MagnitudeHistogram,
  type SignCounts,
} from './ops.ts';

const fr = Math.fround;

/** +1, -1, or 0 (±0 and NaN have no sign). */
function signOf(v: number): number {
  if (v > 0) return 1;
  if (v < 0) return -1;
  return 0;
}

export class ReferenceAnalysisOps implements AnalysisOps {
  readonly backend: Backend;
  readonly #edges = binEdges();

  constructor(backend: Backend) {
    this.backend = backend;
  }

  async signCounts(xs: readonly Tensor[], flips?: readonly boolean[]): Promise<SignCounts> {
    checkSignInputs(xs, flips);
    const values = await Promise.all(xs.map((x) => this.backend.read(x)));
    return signCountsOf(values, flips);
  }

  async magnitudeHistograms(xs: readonly Tensor[]): Promise<MagnitudeHistogram[]> {
    const out: MagnitudeHistogram[] = [];
    for (const x of xs) out.push(magnitudeHistogramOf(await this.backend.read(x), this.#edges));
    return out;
  }

  async electedContributionNormsSq(wds: readonly Tensor[], weights: readonly number[], normalize: boolean): Promise<number[]> {
    checkElectInputs(wds, weights);
    const values = await Promise.all(wds.map((x) => this.backend.read(x)));
    return electedContributionNormsSqOf(values, weights, normalize);
  }
}

/** signCounts over host arrays (see SignCounts). */
export function signCountsOf(values: readonly ArrayLike<number>[], flips?: readonly boolean[]): SignCounts {
  const n = values.length;
  const numel = values[0].length;
  const out = emptySignCounts(n, numel);
  const signs = new Array<number>(n);
  for (let e = 0; e < numel; e++) {
    let count = 0;
    let positives = 0;
    let negatives = 0;
    let only = -1;
    for (let i = 0; i < n; i++) {
      const s = signOf(values[i][e]) * (flips?.[i] ? -1 : 1);
      signs[i] = s;
      if (s === 0) continue;
      count++;
      only = i;
      out.nonzero[i]++;
      if (s > 0) positives++;
      else negatives++;
    }
    out.consensus[count]++;
    if (count === 1) out.unique[only]++;
    if (positives > 0 && negatives > 0) out.conflictAll++;
    if (count < 2) continue;
    for (let i = 0; i < n; i++) {
      if (signs[i] === 0) continue;
      for (let j = i + 1; j < n; j++) {
        if (signs[j] === 0) continue;
        out.pairBoth[i * n + j]++;
        if (signs[i] !== signs[j]) out.pairConflict[i * n + j]++;
      }
    }
  }
  for (let i = 0; i < n; i++) {
    out.pairBoth[i * n + i] = out.nonzero[i];
    for (let j = 0; j < i; j++) {
      out.pairBoth[i * n + j] = out.pairBoth[j * n + i];
      out.pairConflict[i * n + j] = out.pairConflict[j * n + i];
    }
  }
  return out;
}

/** magnitudeHistogram over a host array. */
export function magnitudeHistogramOf(values: ArrayLike<number>, edges: readonly number[] = binEdges()): MagnitudeHistogram {
  const counts = new Array<number>(BIN_COUNT).fill(0);
  let minNonzero = Infinity;
  let max = -Infinity;
  for (let e = 0; e < values.length; e++) {
    const v = values[e];
    counts[binOf(v, edges)]++;
    const a = Math.abs(v);
    if (!Number.isFinite(a)) continue;
    if (a > max) max = a;
    if (a > 0 && a < minNonzero) minNonzero = a;
  }
  return {
    counts,
    minNonzero: minNonzero === Infinity ? null : minNonzero,
    max: max === -Infinity ? null : max,
  };
}

/** electedContributionNormsSq over host arrays, in the f32 arithmetic of CpuBackend.signElect. */
export function electedContributionNormsSqOf(values: readonly ArrayLike<number>[], weights: readonly number[], normalize: boolean): number[] {
  const n = values.length;
  const w = weights.map(fr);
  const sums = new Array<number>(n).fill(0);
  const agrees = new Array<boolean>(n);
  for (let e = 0; e < values[0].length; e++) {
    let total = 0;
    for (let i = 0; i < n; i++) total = fr(total + values[i][e]);
    const majority = total >= 0 ? 1 : -1;
    let divisor = 0;
    for (let i = 0; i < n; i++) {
      agrees[i] = Math.sign(values[i][e]) === majority;
      if (agrees[i]) divisor = fr(divisor + w[i]);
    }
    if (divisor === 0) divisor = 1;
    for (let i = 0; i < n; i++) {
      if (!agrees[i]) continue;
      const c = normalize ? fr(values[i][e] / divisor) : values[i][e];
      sums[i] += c * c;
    }
  }
  return sums;
}

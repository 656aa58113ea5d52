/**
 * Task-vector sparsifiers (METHODS.md "Task-vector family"): each drops entries of one model's task
 * vector δ according to that model's density (and gamma / epsilon). One function per kind, all
 * written with Backend ops; random ones draw from the counter-based generator keyed by (seed, model
 * position among the non-base models, tensor name), or replay a mask from a file when the context
 * has one.
 */
import type { ParamSpec } from '../../core/params.ts';
import type { Tensor } from '../backend.ts';
import { l1RescaleFactor } from '../ops/reduce.ts';
import { modelLabel, type ParamReader } from './common.ts';
import type { MergeContext, MethodInput } from './types.ts';

export type Sparsifier = 'none' | 'magnitude' | 'band' | 'random' | 'ranked';

export interface SparsifyArgs {
  ctx: MergeContext;
  reader: ParamReader;
  input: MethodInput;
  /** The model's task vector; never released here. */
  delta: Tensor;
}

export interface Sparsified {
  /** The kept entries: `delta` itself when nothing was dropped, else a new tensor. */
  kept: Tensor;
  /** Whether entries were dropped by a mask (rescale applies only then). */
  masked: boolean;
  /** The density used (for the 1/density rescale). */
  density: number;
}

type SparsifyFn = (args: SparsifyArgs) => Promise<Sparsified>;

const density: ParamSpec = {
  name: 'density',
  kind: 'number',
  help: 'Fraction of the task vector to keep (1 keeps everything)',
  default: 1,
  min: 0,
  max: 1,
};

const gamma: ParamSpec = {
  name: 'gamma',
  kind: 'number',
  help: 'Fraction of the largest-magnitude entries dropped as outliers',
  default: 0.01,
  min: 0,
  max: 1,
  softMax: 0.1,
};

const epsilon: ParamSpec = {
  name: 'epsilon',
  kind: 'number',
  help: 'Spread of keep probabilities around density by magnitude rank (density ± epsilon must lie in (0, 1))',
  default: 0.15,
  min: 0,
  max: 0.5,
};

/** Per-model parameters each sparsifier adds to the family's `weight`. */
export const SPARSIFIER_PARAMS: Record<Sparsifier, readonly ParamSpec[]> = {
  none: [],
  magnitude: [density],
  band: [density, gamma],
  random: [density],
  ranked: [density, epsilon],
};

/** Sparsifiers that draw random masks (and so take `rescale` and replayed masks). */
export function isRandomSparsifier(s: Sparsifier): boolean {
  return s === 'random' || s === 'ranked';
}

const keepAll = (delta: Tensor, d: number): Sparsified => ({ kept: delta, masked: false, density: d });

function readDensity({ reader, input }: SparsifyArgs): number {
  return reader.number(input.params, 'density', input);
}

/** TIES: keep the k = floor(density·n) largest |δ| (ties by index, see keepRankBand). */
async function magnitude(args: SparsifyArgs): Promise<Sparsified> {
  const { ctx, reader, input, delta } = args;
  const d = readDensity(args);
  if (d >= 1) return keepAll(delta, d);
  const n = delta.numel;
  const k = Math.floor(d * n);
  if (k <= 0) {
    throw reader.error(
      `${modelLabel(input)}: density ${d} keeps floor(${d}·${n}) = 0 entries of the task vector; raise density`,
    );
  }
  const kept = await ctx.backend.keepRankBand(delta, n - k, n);
  return { kept, masked: true, density: d };
}

/**
 * Breadcrumbs: keep = floor(density·n), top = floor(gamma·n), bottom = n − keep − top (if negative,
 * fewer outliers are dropped: top += bottom, bottom = 0); drop the `top` largest and `bottom`
 * smallest |δ|. Unlike mergekit (whose `indices[n_bot:-n_top]` is empty when n_top = 0, so it keeps
 * nothing), top = 0 keeps the band [bottom, n).
 */
async function band(args: SparsifyArgs): Promise<Sparsified> {
  const { ctx, reader, input, delta } = args;
  const d = readDensity(args);
  if (d >= 1) return keepAll(delta, d);
  const g = reader.number(input.params, 'gamma', input);
  const n = delta.numel;
  const keep = Math.floor(d * n);
  let top = Math.floor(g * n);
  let bottom = n - keep - top;
  if (bottom < 0) {
    top += bottom;
    bottom = 0;
  }
  const kept = await ctx.backend.keepRankBand(delta, bottom, n - top);
  return { kept, masked: true, density: d };
}

/** DARE: keep each entry with probability density (or replay the file's mask). */
async function random(args: SparsifyArgs): Promise<Sparsified> {
  const { ctx, input, delta } = args;
  const d = readDensity(args);
  if (d >= 1) return keepAll(delta, d);
  const replayed = await replayedKeep(args);
  if (replayed) return { kept: replayed, masked: true, density: d };
  const key = { seed: ctx.seed, model: input.deltaIndex, tensor: ctx.tensorName };
  return { kept: await ctx.backend.keepRandom(delta, d, key), masked: true, density: d };
}

/**
 * DELLA (MagPrune): per row, keep probability (density − ε) + 2ε·rank/(n−1) by ascending |δ|.
 * density ≤ 0 keeps nothing (as mergekit); otherwise density ± ε must lie strictly inside (0, 1).
 */
async function ranked(args: SparsifyArgs): Promise<Sparsified> {
  const { ctx, reader, input, delta } = args;
  const d = readDensity(args);
  if (d >= 1) return keepAll(delta, d);
  if (d <= 0) return { kept: await ctx.backend.lincomb([{ x: delta, coef: 0 }]), masked: true, density: d };
  const eps = reader.number(input.params, 'epsilon', input);
  if (!(d - eps > 0 && d + eps < 1)) {
    throw reader.error(
      `${modelLabel(input)}: density ${d} ± epsilon ${eps} must lie strictly inside (0, 1) ` +
        `(got [${d - eps}, ${d + eps}]); lower epsilon or move density away from 0 and 1`,
    );
  }
  const replayed = await replayedKeep(args);
  if (replayed) return { kept: replayed, masked: true, density: d };
  const key = { seed: ctx.seed, model: input.deltaIndex, tensor: ctx.tensorName };
  return { kept: await ctx.backend.keepRanked(delta, d, eps, key), masked: true, density: d };
}

/** δ masked by the replayed mask for this model, if the context has one (the mask is released). */
async function replayedKeep({ ctx, input, delta }: SparsifyArgs): Promise<Tensor | undefined> {
  const mask = await ctx.replayMask(input.deltaIndex);
  if (!mask) return undefined;
  using used = mask;
  return await ctx.backend.keepWhere(delta, used);
}

export const SPARSIFY: Record<Sparsifier, SparsifyFn> = {
  none: async ({ delta }) => keepAll(delta, 1),
  magnitude,
  band,
  random,
  ranked,
};

export const RESCALE_MODES = ['l1', 'density'] as const;
export type RescaleMode = (typeof RESCALE_MODES)[number];
/** Norms below this are treated as zero when rescaling (mergekit's eps). */
export const RESCALE_EPS = 1e-7;

/** How a family method rescales what its sparsifier kept; `rescale: false` keeps the kept entries as they are. */
export interface RescaleOptions {
  rescale: boolean;
  mode: RescaleMode;
  /**
   * Where mode l1's factor goes: 'device' (the merge) multiplies the kept entries by it on the
   * backend (rescaleL1: norms and factor never leave the device); 'host' (the analysis, which shows
   * the kept entries as the sparsifier left them) reads both norms back and returns it in `scale`.
   * @default 'host'
   */
  l1Factor?: 'device' | 'host';
}

export interface Rescaled {
  /** The kept entries, already multiplied by the l1 factor when `rescaled`. */
  kept: Tensor;
  /** The factor still to apply (1/density in mode density, the l1 factor with l1Factor 'host', else 1). */
  scale: number;
  /** Whether `kept` is a new tensor carrying the l1 factor (rounded math must round it too). */
  rescaled: boolean;
}

/**
 * Sparsify one model's task vector and make up for what was dropped: ‖δ‖₁/‖kept‖₁ (mode l1, skipped
 * when either norm is below RESCALE_EPS: l1RescaleFactor) or 1/density (mode density). Shared by
 * the merge (task-arithmetic-family.ts) and the analysis, so both keep the same entries.
 */
export async function sparsifyAndRescale(sparsifier: Sparsifier, args: SparsifyArgs, rescale: RescaleOptions): Promise<Rescaled> {
  const s = await SPARSIFY[sparsifier](args);
  const backend = args.ctx.backend;
  if (!rescale.rescale || !s.masked) return { kept: s.kept, scale: 1, rescaled: false };
  if (rescale.mode === 'density') return { kept: s.kept, scale: s.density > 0 ? 1 / s.density : 1, rescaled: false };
  if (rescale.l1Factor !== 'device') {
    const scale = l1RescaleFactor(await backend.sumAbs(args.delta), await backend.sumAbs(s.kept), RESCALE_EPS);
    return { kept: s.kept, scale, rescaled: false };
  }
  try {
    return { kept: await backend.rescaleL1(s.kept, args.delta, RESCALE_EPS), scale: 1, rescaled: true };
  } finally {
    if (s.kept !== args.delta) backend.release(s.kept);
  }
}

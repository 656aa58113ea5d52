/**
 * How well a LoRA of each rank would carry `model − base`: per linear module (the modules
 * extract.ts factors), the change's squared norm and its largest singular values (truncated SVD on
 * the backend), from which the relative error of the best rank-k factors follows without factoring
 * again: ‖D − D_k‖² = ‖D‖² − Σ_{i≤k} σ_i² (Eckart–Young). Over the model: the sum of the modules'
 * residuals over the sum of their norms. The studio's rank slider reads this curve; the export then
 * measures the factors it writes.
 */
import type { ModelSource } from '../../core/source.ts';
import type { Backend } from '../backend.ts';
import { frobeniusSquared } from '../linalg/host.ts';
import { truncatedSvd } from '../linalg/svd.ts';
import { difference, LoraExtractError, loraTargets } from './extract.ts';

export interface ModuleSpectrum {
  module: string;
  /** ‖D‖_F². */
  total: number;
  /** The largest singular values of D, largest first (at most maxRank). */
  sigma: Float64Array;
  /** min(out, in): the rank that carries D exactly. */
  fullRank: number;
}

export interface LoraSpectrum {
  modules: ModuleSpectrum[];
  /** The rank measured up to (singular values beyond it are not known). */
  maxRank: number;
  /** The largest module's full rank: no adapter needs a higher one. */
  fullRank: number;
}

export async function loraSpectrum(opts: {
  model: ModelSource;
  base: ModelSource;
  backend: Backend;
  maxRank: number;
  signal?: AbortSignal;
  onModule?: (done: number, total: number) => void;
}): Promise<LoraSpectrum> {
  const { model, base, backend, maxRank, signal } = opts;
  if (!Number.isInteger(maxRank) || maxRank < 1) throw new LoraExtractError(`the largest rank measured must be a positive integer, got ${maxRank}`);
  const targets = loraTargets(model, base);
  if (targets.length === 0) throw new LoraExtractError(`${model.id} and ${base.id} share no linear layer weights (2-D *.weight tensors in layers.<k>.)`);
  const modules: ModuleSpectrum[] = [];
  for (const info of targets) {
    signal?.throwIfAborted();
    using d = await difference(backend, model, base, info.name, signal);
    const fullRank = Math.min(info.shape[0], info.shape[1]);
    const svd = await truncatedSvd(backend, d, Math.min(maxRank, fullRank));
    backend.release(svd.U);
    backend.release(svd.V);
    modules.push({ module: info.name.slice(0, -'.weight'.length), total: await frobeniusSquared(backend, d), sigma: svd.S, fullRank });
    opts.onModule?.(modules.length, targets.length);
  }
  return { modules, maxRank, fullRank: Math.max(...modules.map((m) => m.fullRank)) };
}

/** The relative error ‖D − D_k‖/‖D‖ over all modules at rank k (each module capped at its full rank). */
export function spectrumError(s: LoraSpectrum, rank: number): number {
  let residual = 0;
  let total = 0;
  for (const m of s.modules) {
    const k = Math.min(rank, m.sigma.length);
    let kept = 0;
    for (let i = 0; i < k; i++) kept += m.sigma[i] * m.sigma[i];
    // At full rank nothing is left; rounding must not leave a negative remainder.
    residual += rank >= m.fullRank ? 0 : Math.max(0, m.total - kept);
    total += m.total;
  }
  return total > 0 ? Math.sqrt(residual / total) : 0;
}

/**
 * The relative error over all modules of factors whose per-module errors are given (extractLora's
 * report): each module's error weighted by its ‖D‖², the way spectrumError combines them.
 */
export function combinedError(s: LoraSpectrum, modules: readonly { module: string; relativeError: number }[]): number {
  const totals = new Map(s.modules.map((m) => [m.module, m.total]));
  let residual = 0;
  let total = 0;
  for (const m of modules) {
    const t = totals.get(m.module);
    if (t === undefined) throw new LoraExtractError(`module ${m.module} was not measured`);
    residual += m.relativeError ** 2 * t;
    total += t;
  }
  return total > 0 ? Math.sqrt(residual / total) : 0;
}

/**
 * Karcher mean (mergekit): the Riemannian mean of the inputs' unit vectors on the hypersphere,
 * found by at most `max_iter` tangent-space steps (stopping when the step norm < `tol`), scaled by
 * the mean of the input norms. Every input weighs 1/N; inputs are all recipe models plus the base
 * when the recipe names one without listing it (mergekit gathers the base as an input too).
 * Iterates stay in the span of the inputs, so the host iterates on coefficient vectors with the
 * inputs' Gram matrix and one lincomb builds the result.
 */
import type { Tensor } from '../backend.ts';
import { gramTimes, ParamReader, quadForm } from './common.ts';
import type { MergeContext, MethodDescriptor } from './types.ts';

/** Coefficients c with result = Σ c_i x_i, from the inputs' Gram matrix (N×N), as mergekit's loop. */
export function karcherCoefficients(g: ArrayLike<number>, n: number, maxIter: number, tol: number): number[] {
  const alphas = new Array<number>(n).fill(1 / n);
  const norms = Array.from({ length: n }, (_, i) => Math.sqrt(Math.max(g[i * n + i], 0)));
  const valid = norms.map((_, i) => i).filter((i) => norms[i] > tol);
  if (valid.length === 0) return new Array<number>(n).fill(0);
  const alphaSum = valid.reduce((s, i) => s + alphas[i], 0);
  const weightOf = new Map(valid.map((i) => [i, alphas[i] / alphaSum]));
  const unit = (i: number): number[] => {
    const c = new Array<number>(n).fill(0);
    c[i] = 1 / norms[i];
    return c;
  };
  const norm = (c: number[]) => Math.sqrt(Math.max(quadForm(g, c), 0));

  let u = new Array<number>(n).fill(0);
  for (const i of valid) u[i] += weightOf.get(i)! / norms[i];
  const uNorm = norm(u);
  u = uNorm < tol ? unit(valid[0]) : u.map((c) => c / uNorm);

  for (let iter = 0; iter < maxIter; iter++) {
    const gu = gramTimes(g, u);
    const tangent = new Array<number>(n).fill(0);
    for (const i of valid) {
      // u · U_i = (G u)_i / ‖x_i‖
      const dot = Math.min(1, Math.max(-1, gu[i] / norms[i]));
      const theta = Math.acos(dot);
      if (theta < tol) continue;
      const f = (weightOf.get(i)! * theta) / Math.sin(theta);
      for (let j = 0; j < n; j++) tangent[j] -= f * dot * u[j];
      tangent[i] += f / norms[i];
    }
    const tNorm = norm(tangent);
    if (tNorm < tol) break;
    u = u.map((c, j) => Math.cos(tNorm) * c + (Math.sin(tNorm) * tangent[j]) / tNorm);
    const len = norm(u);
    if (len > tol) u = u.map((c) => c / len);
  }
  let scale = 0;
  for (let i = 0; i < n; i++) scale += alphas[i] * norms[i];
  return u.map((c) => c * scale);
}

export const karcher: MethodDescriptor = {
  name: 'karcher',
  prettyName: 'Karcher Mean',
  help: 'Riemannian (spherical) mean of all models, scaled by their mean norm',
  referenceUrl: 'https://en.wikipedia.org/wiki/Karcher_mean',
  params: [
    { name: 'max_iter', kind: 'integer', help: 'Maximum number of iterations', default: 10, min: 1, softMax: 100 },
    { name: 'tol', kind: 'number', help: 'Stop when the tangent step is shorter than this', default: 1e-5, min: 0 },
  ],
  perModelParams: [],
  base: 'optional',
  minModels: 1,
  async merge(ctx: MergeContext): Promise<Tensor> {
    const reader = new ParamReader('karcher', ctx.tensorName);
    const maxIter = reader.number(ctx.params, 'max_iter');
    const tol = reader.number(ctx.params, 'tol');
    const xs = ctx.models.map((m) => m.tensor);
    if (ctx.base && !ctx.models.some((m) => m.isBase)) xs.unshift(ctx.base);
    if (xs.length === 0) throw reader.error('needs at least one model');
    if (xs.length === 1) return ctx.backend.lincomb([{ x: xs[0], coef: 1 }]);
    const g = await ctx.backend.gram(xs);
    const coefs = karcherCoefficients(g, xs.length, maxIter, tol);
    return ctx.backend.lincomb(xs.map((x, i) => ({ x, coef: coefs[i] })));
  },
};

/**
 * NuSLERP (mergekit's "new" slerp): two models with weights w1, w2 give t = w2 / (w1 + w2) (0.5 when
 * |w1 + w2| < 1e-6). With a base it interpolates the task vectors and adds the base back:
 * b + slerp(t, x1 − b, x2 − b); without one, slerp(t, x1, x2). Unit vectors use norms clamped to
 * 1e-7; |sin θ| < 1e-8 falls back to lerp.
 *
 * Vector layout, as mergekit: `nuslerp_flatten` (default) slerps the whole tensor as one vector;
 * otherwise each vector runs along the last dimension (the rows of a 2-D weight, via gramRows and
 * per-row coefficients), or along dimension 0 with `nuslerp_row_wise` (the columns of a 2-D weight,
 * via columnDots and scaleColumns). 1-D tensors are one vector either way. 3-D+ tensors without
 * flatten are refused: their vectors are finer than the backend's rows and columns.
 */
import { rowCount, TensorScope, type Tensor } from '../backend.ts';
import { expectNonBase, gramBlock, ParamReader, releaseAll, taskVectors } from './common.ts';
import type { MergeContext, MethodDescriptor } from './types.ts';

/** Coefficients [c1, c2] of nuslerp(t, v1, v2) = c1·v1 + c2·v2 from the Gram entries. */
export function nuslerpCoefficients(t: number, g11: number, g12: number, g22: number): [number, number] {
  const n1 = Math.max(Math.sqrt(Math.max(g11, 0)), 1e-7);
  const n2 = Math.max(Math.sqrt(Math.max(g22, 0)), 1e-7);
  const cos = Math.min(1, Math.max(-1, g12 / (n1 * n2)));
  const theta = Math.acos(cos);
  const sin = Math.sin(theta);
  if (Math.abs(sin) < 1e-8) return [1 - t, t];
  return [Math.sin((1 - t) * theta) / sin, Math.sin(t * theta) / sin];
}

export const nuslerp: MethodDescriptor = {
  name: 'nuslerp',
  prettyName: 'NuSLERP',
  help: 'Spherical interpolation of two models by their weights, of their task vectors when a base is given',
  referenceUrl: 'https://github.com/arcee-ai/mergekit/blob/main/docs/merge_methods.md#nuslerp',
  params: [
    {
      name: 'nuslerp_flatten',
      kind: 'boolean',
      help: 'Treat the whole tensor as one vector (off: one vector per row, or per column with nuslerp_row_wise)',
      default: true,
    },
    {
      name: 'nuslerp_row_wise',
      kind: 'boolean',
      help: 'Without flatten, slerp vectors along dimension 0 (columns of a 2-D weight) instead of rows',
      default: false,
    },
  ],
  perModelParams: [
    { name: 'weight', kind: 'number', help: "This model's share of the interpolation", required: true, softMin: 0, softMax: 1 },
  ],
  base: 'optional',
  minModels: 2,
  maxModels: 3,
  async merge(ctx: MergeContext): Promise<Tensor> {
    const { backend } = ctx;
    const reader = new ParamReader('nuslerp', ctx.tensorName);
    const [m1, m2] = expectNonBase(ctx, 'nuslerp', 2);
    const w1 = reader.number(m1.params, 'weight', m1);
    const w2 = reader.number(m2.params, 'weight', m2);
    const t = Math.abs(w1 + w2) < 1e-6 ? 0.5 : w2 / (w1 + w2);
    const flatten = reader.boolean(ctx.params, 'nuslerp_flatten');
    const columns = reader.boolean(ctx.params, 'nuslerp_row_wise');
    const dims = ctx.shape.length;
    const perRow = !flatten && dims >= 2;
    if (perRow && dims > 2) {
      throw reader.error(
        `${columns ? 'per-column' : 'per-row'} nuslerp of a ${dims}-D tensor is not supported (only 1-D and 2-D); use nuslerp_flatten: true`,
      );
    }

    const deltas = ctx.base ? await taskVectors(backend, ctx.base, [m1.tensor, m2.tensor]) : [];
    try {
      const [v1, v2] = ctx.base ? deltas : [m1.tensor, m2.tensor];
      if (perRow && columns) return await slerpColumns(ctx, t, v1, v2);
      let c1: number | Float32Array;
      let c2: number | Float32Array;
      if (perRow) {
        const rows = rowCount(ctx.shape);
        const g = await backend.gramRows([v1, v2]);
        c1 = new Float32Array(rows);
        c2 = new Float32Array(rows);
        for (let r = 0; r < rows; r++) {
          const b = gramBlock(g, 2, r);
          [c1[r], c2[r]] = nuslerpCoefficients(t, b[0], b[1], b[3]);
        }
      } else {
        const g = await backend.gram([v1, v2]);
        [c1, c2] = nuslerpCoefficients(t, g[0], g[1], g[3]);
      }
      const terms = [
        { x: v1, coef: c1 },
        { x: v2, coef: c2 },
      ];
      return await backend.lincomb(ctx.base ? [...terms, { x: ctx.base, coef: 1 }] : terms);
    } finally {
      releaseAll(backend, deltas);
    }
  },
};

/**
 * nuslerp of each column of two 2-D tensors (mergekit's `nuslerp_row_wise`: vectors along
 * dimension 0): per-column Gram entries from columnDots, then each column scaled by its own
 * coefficients, plus the base when there is one.
 */
async function slerpColumns(ctx: MergeContext, t: number, v1: Tensor, v2: Tensor): Promise<Tensor> {
  const { backend } = ctx;
  const [g11, g12, g22] = await Promise.all([backend.columnDots(v1, v1), backend.columnDots(v1, v2), backend.columnDots(v2, v2)]);
  const cols = g11.length;
  const c1 = new Float32Array(cols);
  const c2 = new Float32Array(cols);
  for (let j = 0; j < cols; j++) [c1[j], c2[j]] = nuslerpCoefficients(t, g11[j], g12[j], g22[j]);
  using scope = new TensorScope(backend);
  const s1 = scope.add(await backend.scaleColumns(v1, c1));
  const s2 = scope.add(await backend.scaleColumns(v2, c2));
  const terms = [
    { x: s1, coef: 1 },
    { x: s2, coef: 1 },
  ];
  return await backend.lincomb(ctx.base ? [...terms, { x: ctx.base, coef: 1 }] : terms);
}

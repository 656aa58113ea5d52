/**
 * WIDEN against a plain f64 reference written here from the numbered spec in the p-widen golden
 * case (columns as arrays, unit vectors, a sort for the ranks) — not the method's code path — on
 * small models with an input embedding (one token per row), Linear weights, an LM head, a 1-D norm
 * and a 3-D tensor; with tied columns, a zero column and entries at the calibration threshold.
 * Tolerance: |got − want| <= 1e-6 + 1e-5·max|want| per tensor.
 */
import { describe, expect, it } from 'vitest';
import { parseRecipe } from '../../core/recipe/parse.ts';
import { methodLookup } from './index.ts';
import { backendsUnderTest, makeModels, numelOf, mergeModels, type ModelValues, type TensorSpec } from './model-harness.ts';
import { expectClose } from './test-harness.ts';

const SPECS: TensorSpec[] = [
  { name: 'model.embed_tokens.weight', shape: [13, 5] },
  { name: 'model.layers.0.self_attn.q_proj.weight', shape: [6, 9] },
  { name: 'model.layers.0.input_layernorm.weight', shape: [6] },
  { name: 'model.layers.1.mlp.experts.weight', shape: [2, 3, 4] },
  { name: 'lm_head.weight', shape: [13, 5] },
];

/** Columns of a row-major [m, n] matrix as f64 arrays. */
function columns(v: ArrayLike<number>, m: number, n: number): number[][] {
  return Array.from({ length: n }, (_, j) => Array.from({ length: m }, (_, i) => v[i * n + j]));
}

const norm = (a: number[]) => Math.sqrt(a.reduce((s, x) => s + x * x, 0));

function softmaxScores(stat: number[][], ratio: number, c: number): number[][] {
  const n = stat[0].length;
  const pos = stat.map((s) => {
    const order = s.map((v, j) => [v, j]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const p = new Array<number>(n);
    order.forEach(([, j], r) => (p[j] = r));
    return p;
  });
  const sig = pos.map((p) => p.map((r) => r / n));
  return sig.map((s, t) =>
    s.map((v, j) => {
      const mean = sig[t].reduce((a, b) => a + b, 0) / n;
      if (v > ratio * mean + 1e-12) return c; // the rank test pos > ratio·(n−1)/2, in words: above the mean
      return Math.exp(v) / sig.reduce((acc, other) => acc + Math.exp(other[j]), 0);
    }),
  );
}

function widenRef(name: string, shape: number[], base: Float32Array, xs: Float32Array[], ratio: number, c: number): Float64Array {
  if (shape.length !== 2) {
    const ds = xs.map((x) => Array.from(x, (v, i) => v - base[i]));
    const means = ds.map((d) => d.reduce((s, v) => s + Math.abs(v), 0) / d.length);
    return Float64Array.from(base, (b, i) => {
      const z = ds.reduce((s, d) => s + Math.exp(Math.abs(d[i])), 0);
      return b + ds.reduce((s, d, t) => s + (Math.abs(d[i]) > ratio * means[t] ? c : Math.exp(Math.abs(d[i])) / z) * d[i], 0);
    });
  }
  const embedding = name.includes('embed_tokens');
  const [m, n] = embedding ? [shape[1], shape[0]] : shape;
  const tr = (v: Float32Array) => (embedding ? Float32Array.from({ length: v.length }, (_, k) => v[(k % shape[0]) * shape[1] + Math.floor(k / shape[0])]) : v);
  const bc = columns(tr(base), m, n);
  const xcs = xs.map((x) => columns(tr(x), m, n));
  const mag = xcs.map((xc) => xc.map((col, j) => Math.abs(norm(col) - norm(bc[j]))));
  const dir = xcs.map((xc) =>
    xc.map((col, j) => {
      const nx = norm(col);
      const nb = norm(bc[j]);
      if (nx === 0 || nb === 0) return 1;
      return 1 - col.reduce((s, v, i) => s + (v / nx) * (bc[j][i] / nb), 0);
    }),
  );
  const sm = softmaxScores(mag, ratio, c);
  const sd = softmaxScores(dir, ratio, c);
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let v = bc[j][i];
      xcs.forEach((xc, t) => (v += ((sm[t][j] + sd[t][j]) / 2) * (xc[j][i] - bc[j][i])));
      out[i * n + j] = v;
    }
  }
  if (!embedding) return out;
  return Float64Array.from({ length: out.length }, (_, k) => out[(k % shape[1]) * shape[0] + Math.floor(k / shape[1])]);
}

describe.each(backendsUnderTest())('widen ($name)', ({ get }) => {
  async function check(seed: number, count: number, params: string | undefined, ratio: number, c: number, edit?: (base: ModelValues, models: Map<string, Float32Array>[]) => void) {
    const { base, models } = makeModels(SPECS, seed, count, { step: 0.1 });
    edit?.(base, models);
    const got = await mergeModels({ backend: get(), method: 'widen', specs: SPECS, base, models, params });
    for (const s of SPECS) {
      const want = widenRef(s.name, s.shape, base.get(s.name)!, models.map((m) => m.get(s.name)!), ratio, c);
      expectClose(got.tensors.get(s.name)!, want, 1e-5, 1e-6);
    }
    return got;
  }

  it('defaults (ratio 1, calibration 1), three models', async () => {
    await check(1, 3, undefined, 1, 1);
  });

  it('ratio 1.2 and calibration 0.7, two models', async () => {
    await check(2, 2, '{above_average_value_ratio: 1.2, score_calibration_value: 0.7}', 1.2, 0.7);
  });

  it('tied columns rank by index; a zero column has cosine 0', async () => {
    await check(3, 3, '{score_calibration_value: 0.5}', 1, 0.5, (base, models) => {
      const q = 'model.layers.0.self_attn.q_proj.weight';
      // columns 2 and 5 of model 0 change exactly like columns 2 and 5 of the base would: equal stats
      const b = base.get(q)!;
      const x = models[0].get(q)!;
      for (let i = 0; i < 6; i++) {
        b[i * 9 + 5] = b[i * 9 + 2];
        x[i * 9 + 5] = x[i * 9 + 2];
        b[i * 9 + 7] = 0; // a zero base column
      }
    });
  });

  it('one model: its significant columns get the calibration value, the rest softmax 1', async () => {
    const got = await check(4, 1, '{score_calibration_value: 0.25}', 1, 0.25);
    expect(got.tensors.size).toBe(SPECS.length);
  });
});

describe('widen parameters', () => {
  it('takes no per-model weight and refuses unknown names', () => {
    const recipe = (extra: string) => `models:\n  - model: a\n${extra}merge_method: widen\nbase_model: b\n`;
    expect(() => parseRecipe(recipe('    parameters: {weight: 1}\n'), methodLookup)).toThrow(/weight/);
    expect(() => parseRecipe(recipe('') + 'parameters: {ratio: 1}\n', methodLookup)).toThrow(/ratio/);
    expect(() => parseRecipe(recipe('') + 'parameters: {above_average_value_ratio: 1.1}\n', methodLookup)).not.toThrow();
  });
});

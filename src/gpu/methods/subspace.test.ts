/**
 * TSV-M, Iso-C and Iso-CTS against plain f64 references written here from METHODS.md, with their
 * own SVD (one-sided Jacobi) and polar factor (U·Vᵀ of that SVD) — not src/gpu/linalg — merged
 * through the engine on small models: a tall and a wide weight matrix, a square one, a matrix with
 * fewer dimensions than tasks, an embedding, an LM head and a norm.
 * Tolerance: |got − want| <= 2e-6 + 1e-5·max|want| per tensor (f32 Gram-based SVD and
 * QR-based polar factors against f64 Jacobi on matrices of condition number < 1000). The polar
 * helper qrPolar: 1e-6 at condition numbers up to 20, 2e-4 at 10⁴ (its error is ~u·κ).
 */
import { describe, expect, it } from 'vitest';
import { parseRecipe } from '../../core/recipe/parse.ts';
import { methodLookup } from './index.ts';
import { isoCtsSizes } from './iso-cts.ts';
import { backendsUnderTest, makeModels, numelOf, mergeModels, type ModelValues, type TensorSpec } from './model-harness.ts';
import { qrPolar } from './subspace.ts';
import { expectClose, randomValues, seeded } from './test-harness.ts';

const SPECS: TensorSpec[] = [
  { name: 'model.embed_tokens.weight', shape: [11, 4] },
  { name: 'model.layers.0.self_attn.q_proj.weight', shape: [12, 9] },
  { name: 'model.layers.0.input_layernorm.weight', shape: [9] },
  { name: 'model.layers.1.mlp.down_proj.weight', shape: [7, 10] },
  { name: 'model.layers.2.mlp.up_proj.weight', shape: [8, 8] },
  { name: 'model.layers.3.self_attn.k_proj.weight', shape: [2, 6] },
  { name: 'lm_head.weight', shape: [11, 4] },
];

type Mat = { rows: number; cols: number; a: Float64Array };
const mat = (rows: number, cols: number, a = new Float64Array(rows * cols)): Mat => ({ rows, cols, a });
const at = (x: Mat, i: number, j: number) => x.a[i * x.cols + j];
function mul(x: Mat, y: Mat, transY = false): Mat {
  const n = transY ? y.rows : y.cols;
  const out = mat(x.rows, n);
  for (let i = 0; i < x.rows; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < x.cols; p++) s += at(x, i, p) * (transY ? at(y, j, p) : at(y, p, j));
      out.a[i * n + j] = s;
    }
  }
  return out;
}
const transpose = (x: Mat) => {
  const out = mat(x.cols, x.rows);
  for (let i = 0; i < x.rows; i++) for (let j = 0; j < x.cols; j++) out.a[j * x.rows + i] = at(x, i, j);
  return out;
};
const columnsOf = (x: Mat, from: number, to: number) => {
  const out = mat(x.rows, to - from);
  for (let i = 0; i < x.rows; i++) for (let j = from; j < to; j++) out.a[i * (to - from) + j - from] = at(x, i, j);
  return out;
};
const sideBySide = (xs: Mat[]) => {
  const cols = xs.reduce((s, x) => s + x.cols, 0);
  const out = mat(xs[0].rows, cols);
  let c0 = 0;
  for (const x of xs) {
    for (let i = 0; i < x.rows; i++) for (let j = 0; j < x.cols; j++) out.a[i * cols + c0 + j] = at(x, i, j);
    c0 += x.cols;
  }
  return out;
};

/** Thin SVD by one-sided Jacobi (Hestenes) in f64: X = U·diag(S)·Vᵀ, S descending. */
function jacobiSvd(x: Mat): { U: Mat; S: number[]; V: Mat } {
  if (x.rows < x.cols) {
    const t = jacobiSvd(transpose(x));
    return { U: t.V, S: t.S, V: t.U };
  }
  const [m, n] = [x.rows, x.cols];
  const u = Array.from({ length: n }, (_, j) => Array.from({ length: m }, (_, i) => at(x, i, j)));
  const v = Array.from({ length: n }, (_, j) => Array.from({ length: n }, (_, i) => (i === j ? 1 : 0)));
  for (let sweep = 0; sweep < 60; sweep++) {
    let rotated = false;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < m; i++) {
          alpha += u[p][i] ** 2;
          beta += u[q][i] ** 2;
          gamma += u[p][i] * u[q][i];
        }
        if (Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (const w of [u, v]) {
          for (let i = 0; i < w[p].length; i++) {
            const [a, b] = [w[p][i], w[q][i]];
            w[p][i] = c * a - s * b;
            w[q][i] = s * a + c * b;
          }
        }
      }
    }
    if (!rotated) break;
  }
  const sigma = u.map((col) => Math.sqrt(col.reduce((s, e) => s + e * e, 0)));
  const order = sigma.map((_, j) => j).sort((a, b) => sigma[b] - sigma[a]);
  const U = mat(m, n);
  const V = mat(n, n);
  order.forEach((j, k) => {
    for (let i = 0; i < m; i++) U.a[i * n + k] = sigma[j] > 0 ? u[j][i] / sigma[j] : 0;
    for (let i = 0; i < n; i++) V.a[i * n + k] = v[j][i];
  });
  return { U, S: order.map((j) => sigma[j]), V };
}

/** P·Qᵀ from the SVD X = P·S·Qᵀ. */
const polarRef = (x: Mat) => {
  const { U, V } = jacobiSvd(x);
  return mul(U, V, true);
};
const top = (svd: { U: Mat; S: number[]; V: Mat }, k: number) => ({ U: columnsOf(svd.U, 0, k), S: svd.S.slice(0, k), V: columnsOf(svd.V, 0, k) });
const scaleCols = (x: Mat, s: number[]) => mat(x.rows, x.cols, x.a.map((v, idx) => v * s[idx % x.cols]));
const sum = (xs: Mat[]) => mat(xs[0].rows, xs[0].cols, xs[0].a.map((_, i) => xs.reduce((acc, x) => acc + x.a[i], 0)));

type Method = 'tsv' | 'iso_c' | 'iso_cts';

/** Δ of one weight matrix, or undefined where the method falls back to the mean. */
function deltaRef(method: Method, taus: Mat[], fraction: number): Mat | undefined {
  const T = taus.length;
  const r = Math.min(taus[0].rows, taus[0].cols);
  if (method === 'tsv') {
    const k = Math.floor(r / T);
    if (k === 0) return undefined;
    const parts = taus.map((t) => top(jacobiSvd(t), k));
    const s = parts.flatMap((p) => p.S);
    return mul(scaleCols(polarRef(sideBySide(parts.map((p) => p.U))), s), polarRef(sideBySide(parts.map((p) => p.V))), true);
  }
  const m = sum(taus);
  const isoC = () => {
    const sigma = jacobiSvd(m).S;
    const mean = sigma.reduce((a, b) => a + b, 0) / r;
    const p = polarRef(m);
    return mat(p.rows, p.cols, p.a.map((v) => mean * v));
  };
  if (method === 'iso_c') return isoC();
  const { common: k, perTask: p } = isoCtsSizes(r, T, fraction);
  if (p === 0) return isoC();
  const c = top(jacobiSvd(m), k);
  const parts = taus.map((t) => {
    const proj = mul(c.U, mul(transpose(c.U), t));
    return top(jacobiSvd(mat(t.rows, t.cols, t.a.map((v, i) => v - proj.a[i]))), p);
  });
  const s = [...parts.flatMap((x) => x.S), ...c.S];
  const mean = s.reduce((a, b) => a + b, 0) / r;
  const pu = polarRef(sideBySide([...parts.map((x) => x.U), c.U]));
  const pv = polarRef(sideBySide([...parts.map((x) => x.V), c.V]));
  return mul(scaleCols(pu, new Array(r).fill(mean)), pv, true);
}

function mergeRef(method: Method, base: ModelValues, models: ModelValues[], weights: number[], alpha: number, fraction = 0.8) {
  const out = new Map<string, Float64Array>();
  for (const s of SPECS) {
    const b = base.get(s.name)!;
    const taus = models.map((m, t) => Float64Array.from(m.get(s.name)!, (x, i) => weights[t] * (x - b[i])));
    const matrix = s.shape.length === 2 && !/embed_tokens|lm_head/.test(s.name);
    const delta = matrix ? deltaRef(method, taus.map((a) => mat(s.shape[0], s.shape[1], a)), fraction) : undefined;
    out.set(
      s.name,
      Float64Array.from(b, (bi, i) => bi + alpha * (delta ? delta.a[i] : taus.reduce((acc, t) => acc + t[i], 0) / taus.length)),
    );
  }
  return out;
}

// Software GPU adapters take seconds per merge here (every Newton–Schulz step is a few dispatches).
describe.each(backendsUnderTest())('subspace methods ($name)', { timeout: 180_000 }, ({ get }) => {
  it.each([
    ['tsv', '{}', [1, 1, 1], 1],
    ['tsv', '{alpha: 0.7}', [1, 0.5, -0.3], 0.7],
    ['iso_c', '{}', [1, 1, 1], 1],
    ['iso_c', '{alpha: 1.3}', [0.4, 1, 0.8], 1.3],
    ['iso_cts', '{}', [1, 1, 1], 1],
    ['iso_cts', '{alpha: 0.9}', [1, 0.6, 0.9], 0.9],
  ] as [Method, string, number[], number][])('%s %s weights %j', async (method, params, weights, alpha) => {
    const { base, models } = makeModels(SPECS, method.length + weights[1] * 10, 3, { baseScale: 0.5 });
    const got = await mergeModels({ backend: get(), method, specs: SPECS, base, models, params, modelParams: weights.map((w) => `{weight: ${w}}`) });
    const want = mergeRef(method, base, models, weights, alpha);
    for (const s of SPECS) expectClose(got.tensors.get(s.name)!, want.get(s.name)!, 1e-5, 2e-6);
  });

  it('iso_cts with common_space_fraction 0.5 and two models', async () => {
    const { base, models } = makeModels(SPECS, 7, 2, { baseScale: 0.5 });
    const got = await mergeModels({ backend: get(), method: 'iso_cts', specs: SPECS, base, models, params: '{common_space_fraction: 0.5}' });
    const want = mergeRef('iso_cts', base, models, [1, 1], 1, 0.5);
    for (const s of SPECS) expectClose(got.tensors.get(s.name)!, want.get(s.name)!, 1e-5, 2e-6);
  });

  it('iso_c: task vectors that cancel give Δ = 0 (the base)', async () => {
    const { base, models } = makeModels(SPECS, 8, 1, { baseScale: 0.5 });
    const got = await mergeModels({ backend: get(), method: 'iso_c', specs: SPECS, base, models: [models[0], models[0]], modelParams: ['{weight: 1}', '{weight: -1}'] });
    for (const s of SPECS) expectClose(got.tensors.get(s.name)!, base.get(s.name)!, 0, 1e-7);
  });
});

describe.each(backendsUnderTest())('qrPolar ($name)', { timeout: 180_000 }, ({ get }) => {
  /** X = U·diag(σ)·Vᵀ with random orthonormal U (m×n), V (n×n): its polar factor is U·Vᵀ. */
  function withSpectrum(m: number, n: number, sigma: number[], seed: number) {
    const rand = seeded(seed);
    const u = jacobiSvd(mat(m, n, Float64Array.from(randomValues(m * n, rand)))).U;
    const v = jacobiSvd(mat(n, n, Float64Array.from(randomValues(n * n, rand)))).U;
    return { x: mul(scaleCols(u, sigma), v, true), polar: mul(u, v, true) };
  }

  it.each([
    ['nearly orthonormal columns', false, Array.from({ length: 9 }, (_, j) => 1 + 0.1 * Math.sin(j)), 1e-6],
    ['a wide matrix of condition number 20', true, Array.from({ length: 9 }, (_, j) => 20 ** (-j / 8)), 1e-6],
    ['condition number 10⁴ (a shifted CholeskyQR pass)', false, Array.from({ length: 9 }, (_, j) => 10 ** (-4 * (j / 8))), 2e-4],
  ])('%s', async (_, wide, sigma, tol) => {
    const backend = get();
    const made = withSpectrum(23, 9, sigma, 11);
    const [x, want] = wide ? [transpose(made.x), transpose(made.polar)] : [made.x, made.polar];
    const input = await backend.upload(Float32Array.from(x.a), [x.rows, x.cols]);
    const got = await qrPolar(backend, input);
    expect(got.shape).toEqual([x.rows, x.cols]);
    expectClose(await backend.read(got), want.a, 0, tol);
    backend.release(got);
    backend.release(input);
  });
});

describe('subspace method parameters', () => {
  it('iso_cts subspace sizes: the golden case figures and round half to even', () => {
    expect(isoCtsSizes(64, 3, 0.8)).toEqual({ common: 52, perTask: 4 });
    expect(isoCtsSizes(32, 3, 0.8)).toEqual({ common: 26, perTask: 2 });
    // (r − k)/T = 2.5 rounds to 2, 3.5 to 4
    expect(isoCtsSizes(10, 2, 0.5)).toEqual({ common: 6, perTask: 2 });
    expect(isoCtsSizes(14, 2, 0.5)).toEqual({ common: 6, perTask: 4 });
    expect(isoCtsSizes(2, 3, 0.8).perTask).toBe(0);
  });

  it('validate alpha, weight and common_space_fraction; unknown names are errors', () => {
    const recipe = (method: string, params: string, model = '') => `models:\n  - model: a\n${model}merge_method: ${method}\nbase_model: b\nparameters: ${params}\n`;
    for (const method of ['tsv', 'iso_c', 'iso_cts']) {
      expect(() => parseRecipe(recipe(method, '{alpha: 0.5}', '    parameters: {weight: 0.3}\n'), methodLookup)).not.toThrow();
      expect(() => parseRecipe(recipe(method, '{alpah: 0.5}'), methodLookup)).toThrow(/alpah/);
      expect(() => parseRecipe(recipe(method, '{}', '    parameters: {density: 0.3}\n'), methodLookup)).toThrow(/density/);
    }
    expect(() => parseRecipe(recipe('iso_cts', '{common_space_fraction: 1.2}'), methodLookup)).toThrow(/common_space_fraction/);
    expect(() => parseRecipe(recipe('tsv', '{common_space_fraction: 0.5}'), methodLookup)).toThrow(/common_space_fraction/);
  });

  it('iso_cts refuses common_space_fraction 0 at merge time, naming the tensor', async () => {
    const { base, models } = makeModels(SPECS, 9, 2, { baseScale: 0.5 });
    await expect(mergeModels({ method: 'iso_cts', specs: SPECS, base, models, params: '{common_space_fraction: 0}' })).rejects.toThrow(
      /iso_cts: tensor .*common_space_fraction must be in \(0, 1\), got 0/,
    );
  });
});

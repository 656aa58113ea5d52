/**
 * Non-task-vector methods against direct per-element references written here from METHODS.md and
 * mergekit's code (plain loops over the flattened arrays, f64). The methods compute their
 * coefficients from Gram matrices and apply them with one lincomb, so these tests also check that
 * the span formulation equals the element-wise definition.
 * Tolerance unless stated: |got − want| <= 1e-6 + 1e-5·max|want|.
 */
import { describe, expect, it } from 'vitest';
import { karcher } from './karcher.ts';
import { linear } from './linear.ts';
import { modelStock } from './model-stock.ts';
import { multislerp } from './multislerp.ts';
import { nearswap } from './nearswap.ts';
import { nuslerp } from './nuslerp.ts';
import { passthrough } from './passthrough.ts';
import { slerp } from './slerp.ts';
import { backendsUnderTest, mergeModels } from './model-harness.ts';
import { expectClose, fineTune, randomValues, runMethod, seeded } from './test-harness.ts';
import { MethodError } from './types.ts';

type Vec = ArrayLike<number>;
const dot = (a: Vec, b: Vec) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
const norm = (a: Vec) => Math.sqrt(dot(a, a));
const combo = (terms: [number, Vec][]) => {
  const out = new Float64Array(terms[0][1].length);
  for (const [c, v] of terms) for (let i = 0; i < out.length; i++) out[i] += c * v[i];
  return out;
};
const sub = (a: Vec, b: Vec) => combo([[1, a], [-1, b]]);

const REL = 1e-5;
const ABS = 1e-6;

function slerpRef(t: number, v0: Vec, v1: Vec): Float64Array {
  const eps = 1e-8;
  const n0 = norm(v0);
  const n1 = norm(v1);
  const u0 = n0 > eps ? combo([[1 / n0, v0]]) : Float64Array.from(v0);
  const u1 = n1 > eps ? combo([[1 / n1, v1]]) : Float64Array.from(v1);
  const d = dot(u0, u1);
  if (Math.abs(d) > 0.9995) return combo([[1 - t, v0], [t, v1]]);
  const theta = Math.acos(d);
  return combo([
    [Math.sin(theta - theta * t) / Math.sin(theta), v0],
    [Math.sin(theta * t) / Math.sin(theta), v1],
  ]);
}

/** nuslerp on each vector; `vectors` lists the index sets (whole tensor, rows or columns). */
function nuslerpRef(t: number, v0: Vec, v1: Vec, vectors: number[][]): Float64Array {
  const out = new Float64Array(v0.length);
  for (const idx of vectors) {
    const a = idx.map((i) => v0[i]);
    const b = idx.map((i) => v1[i]);
    const au = a.map((x) => x / Math.max(norm(a), 1e-7));
    const bu = b.map((x) => x / Math.max(norm(b), 1e-7));
    const theta = Math.acos(Math.min(1, Math.max(-1, dot(au, bu))));
    const s = Math.sin(theta);
    idx.forEach((i, k) => {
      out[i] = Math.abs(s) < 1e-8 ? (1 - t) * a[k] + t * b[k] : (Math.sin((1 - t) * theta) * a[k] + Math.sin(t * theta) * b[k]) / s;
    });
  }
  return out;
}

function multislerpRef(tensors: Vec[], weights: number[], base: Vec | undefined, normalize: boolean, eps = 1e-8) {
  const ts = tensors.map((x) => (base ? sub(x, base) : Float64Array.from(x)));
  let w = weights;
  if (normalize) {
    const s = w.reduce((a, b) => a + b, 0);
    w = w.map((x) => x / s);
  }
  const norms = ts.map(norm);
  const units = ts.map((x, i) => combo([[1 / (norms[i] + eps), x]]));
  let mean = combo(units.map((u, i) => [w[i], u]));
  const meanNorm = norm(mean);
  if (meanNorm < eps) {
    if (ts.length !== 2) throw new Error('reference: zero mean');
    const r = combo([[w[0], ts[0]], [w[1], ts[1]]]);
    return base ? combo([[1, r], [1, base]]) : r;
  }
  mean = combo([[1 / meanNorm, mean]]);
  const tangents = units.map((u) => combo([[1, u], [-dot(u, mean), mean]]));
  const tangent = combo(tangents.map((tv, i) => [w[i], tv]));
  const tn = norm(tangent) + eps;
  const avgNorm = norms.reduce((s, n, i) => s + n * w[i], 0);
  const res = combo([[Math.cos(tn) * avgNorm, mean], [(Math.sin(tn) / tn) * avgNorm, tangent]]);
  return base ? combo([[1, res], [1, base]]) : res;
}

function karcherRef(tensors: Vec[], maxIter = 10, tol = 1e-5): Float64Array {
  const n = tensors.length;
  const alphas = tensors.map(() => 1 / n);
  const norms = tensors.map(norm);
  const units = tensors.map((x, i) => (norms[i] === 0 ? new Float64Array(x.length) : combo([[1 / norms[i], x]])));
  const valid = norms.map((_, i) => i).filter((i) => norms[i] > tol);
  const aSum = valid.reduce((s, i) => s + alphas[i], 0);
  let u = combo(valid.map((i) => [alphas[i] / aSum, units[i]]));
  const un = norm(u);
  u = un < tol ? Float64Array.from(units[valid[0]]) : combo([[1 / un, u]]);
  for (let it = 0; it < maxIter; it++) {
    let tangent = new Float64Array(u.length);
    for (const i of valid) {
      const d = Math.min(1, Math.max(-1, dot(u, units[i])));
      const theta = Math.acos(d);
      if (theta < tol) continue;
      tangent = combo([[1, tangent], [((alphas[i] / aSum) * theta) / Math.sin(theta), sub(units[i], combo([[d, u]]))]]);
    }
    const tn = norm(tangent);
    if (tn < tol) break;
    u = combo([[Math.cos(tn), u], [Math.sin(tn) / tn, tangent]]);
    const l = norm(u);
    if (l > tol) u = combo([[1 / l, u]]);
  }
  const s = alphas.reduce((acc, a, i) => acc + a * norms[i], 0);
  return combo([[s, u]]);
}

function modelStockRef(base: Vec, xs: Vec[], vectors: number[][]): Float64Array {
  const out = new Float64Array(base.length);
  const n = xs.length;
  for (const idx of vectors) {
    const b = idx.map((i) => base[i]);
    const ds = xs.map((x) => idx.map((i, k) => x[i] - b[k]));
    let sum = 0;
    let pairs = 0;
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        sum += Math.min(1, Math.max(-1, dot(ds[i], ds[j]) / Math.max(norm(ds[i]) * norm(ds[j]), 1e-6)));
        pairs++;
      }
    }
    const c = sum / pairs;
    const t = (n * c) / (1 + (n - 1) * c);
    idx.forEach((i, k) => {
      let avg = 0;
      for (const x of xs) avg += x[i] / n;
      out[i] = t * avg + (1 - t) * b[k];
    });
  }
  return out;
}

const whole = (n: number) => [Array.from({ length: n }, (_, i) => i)];
const rowsOf = (r: number, c: number) => Array.from({ length: r }, (_, i) => Array.from({ length: c }, (_, j) => i * c + j));
const colsOf = (r: number, c: number) => Array.from({ length: c }, (_, j) => Array.from({ length: r }, (_, i) => i * c + j));

describe('linear', () => {
  const rand = seeded(1);
  const shape = [7, 13];
  const xs = [0, 1, 2].map(() => randomValues(91, rand));
  const w = [0.5, 0.3, -0.2];

  it('is Σ w_i x_i / Σ w_i, or the plain sum without normalize', async () => {
    const models = xs.map((values, i) => ({ values, params: { weight: w[i] } }));
    const sum = combo(xs.map((x, i) => [w[i], x]));
    expectClose(await runMethod(linear, { shape, models }), combo([[1 / 0.6, sum]]), REL, ABS);
    expectClose(await runMethod(linear, { shape, models, params: { normalize: false } }), sum, REL, ABS);
  });

  it('counts the base when it is listed with a weight, and rejects a zero weight sum', async () => {
    const got = await runMethod(linear, {
      shape,
      base: xs[0],
      models: [
        { values: xs[0], isBase: true, params: { weight: 1 } },
        { values: xs[1], params: { weight: 3 } },
      ],
    });
    expectClose(got, combo([[0.25, xs[0]], [0.75, xs[1]]]), REL, ABS);
    const zero = runMethod(linear, {
      shape,
      models: [
        { values: xs[0], params: { weight: 0.5 } },
        { values: xs[1], params: { weight: -0.5 } },
      ],
    });
    await expect(zero).rejects.toThrow(MethodError);
    await expect(
      runMethod(linear, { shape, base: xs[0], models: [{ values: xs[0], isBase: true }, { values: xs[1], params: { weight: 1 } }] }),
    ).rejects.toThrow(/the base model has no weight/);
  });
});

describe('slerp', () => {
  const rand = seeded(2);
  for (const shape of [[7, 13], [37]]) {
    const n = shape.reduce((a, b) => a * b, 1);
    const base = randomValues(n, rand);
    const other = fineTune(base, rand, 1.5);
    for (const t of [0, 0.3, 0.5, 1]) {
      it(`matches the element-wise definition on [${shape}] at t = ${t}`, async () => {
        const got = await runMethod(slerp, {
          shape,
          base,
          models: [{ values: base, isBase: true }, { values: other }],
          params: { t },
        });
        expectClose(got, slerpRef(t, base, other), REL, ABS);
      });
    }
  }

  it('falls back to lerp for (nearly) colinear inputs, and slerps anti-correlated ones', async () => {
    const base = randomValues(37, seeded(3));
    const double = base.map((v) => 2 * v);
    const got = await runMethod(slerp, { shape: [37], base, models: [{ values: double }], params: { t: 0.25 } });
    expectClose(got, combo([[1.25, base]]), REL, ABS);
    const opposite = fineTune(base.map((v) => -v), seeded(4), 0.5);
    const got2 = await runMethod(slerp, { shape: [37], base, models: [{ values: opposite }], params: { t: 0.4 } });
    expectClose(got2, slerpRef(0.4, base, opposite), REL, ABS);
  });

  it('needs exactly one non-base model', async () => {
    const v = new Float32Array([1, 2]);
    await expect(
      runMethod(slerp, { shape: [2], base: v, models: [{ values: v }, { values: v }], params: { t: 0.5 } }),
    ).rejects.toThrow(/exactly 1 non-base/);
  });
});

describe('nuslerp', () => {
  const rand = seeded(5);
  const shape = [7, 13];
  const base = randomValues(91, rand);
  const x1 = fineTune(base, rand, 0.3);
  const x2 = fineTune(base, rand, 0.3);
  const models = [
    { values: x1, params: { weight: 0.7 } },
    { values: x2, params: { weight: 0.3 } },
  ];

  it('with a base: b + slerp(t, δ1, δ2), t = w2/(w1 + w2), flattened', async () => {
    const got = await runMethod(nuslerp, { shape, base, models });
    const want = combo([[1, base], [1, nuslerpRef(0.3, sub(x1, base), sub(x2, base), whole(91))]]);
    expectClose(got, want, REL, ABS);
  });

  it('without a base: slerp(t, x1, x2); per row without flatten', async () => {
    expectClose(await runMethod(nuslerp, { shape, models }), nuslerpRef(0.3, x1, x2, whole(91)), REL, ABS);
    const perRow = await runMethod(nuslerp, { shape, models, params: { nuslerp_flatten: false } });
    expectClose(perRow, nuslerpRef(0.3, x1, x2, rowsOf(7, 13)), REL, ABS);
    const perRowBase = await runMethod(nuslerp, { shape, base, models, params: { nuslerp_flatten: false } });
    const want = combo([[1, base], [1, nuslerpRef(0.3, sub(x1, base), sub(x2, base), rowsOf(7, 13))]]);
    expectClose(perRowBase, want, REL, ABS);
  });

  it('row_wise on a 1-D tensor is the whole vector; on 2-D it slerps each column (dimension 0)', async () => {
    const a = randomValues(37, rand);
    const b = randomValues(37, rand);
    const m1d = [
      { values: a, params: { weight: 1 } },
      { values: b, params: { weight: 1 } },
    ];
    const got = await runMethod(nuslerp, { shape: [37], models: m1d, params: { nuslerp_flatten: false, nuslerp_row_wise: true } });
    expectClose(got, nuslerpRef(0.5, a, b, colsOf(37, 1)), REL, ABS);
    const columns = { nuslerp_flatten: false, nuslerp_row_wise: true };
    expectClose(await runMethod(nuslerp, { shape, models, params: columns }), nuslerpRef(0.3, x1, x2, colsOf(7, 13)), REL, ABS);
    const withBase = await runMethod(nuslerp, { shape, base, models, params: columns });
    expectClose(withBase, combo([[1, base], [1, nuslerpRef(0.3, sub(x1, base), sub(x2, base), colsOf(7, 13))]]), REL, ABS);
    // A column of one model equal to a multiple of the other's lerps (sin θ = 0) while its neighbours slerp.
    const x3 = Float32Array.from(x1);
    for (let i = 0; i < 7; i++) x3[i * 13 + 4] = 2 * x2[i * 13 + 4];
    const got2 = await runMethod(nuslerp, { shape, models: [{ values: x3, params: { weight: 0.7 } }, models[1]], params: columns });
    expectClose(got2, nuslerpRef(0.3, x3, x2, colsOf(7, 13)), REL, ABS);
  });

  it('refuses per-row and per-column vectors of a 3-D tensor', async () => {
    const cube = [
      { values: x1.subarray(0, 84), params: { weight: 1 } },
      { values: x2.subarray(0, 84), params: { weight: 1 } },
    ];
    for (const row_wise of [false, true]) {
      await expect(
        runMethod(nuslerp, { shape: [3, 4, 7], models: cube, params: { nuslerp_flatten: false, nuslerp_row_wise: row_wise } }),
      ).rejects.toThrow(/3-D tensor is not supported/);
    }
  });

  it('uses t = 0.5 when the weights sum to ~0, and lerps colinear inputs', async () => {
    const got = await runMethod(nuslerp, {
      shape: [37],
      models: [
        { values: base.subarray(0, 37), params: { weight: 1 } },
        { values: base.subarray(0, 37).map((v) => 3 * v), params: { weight: -1 } },
      ],
    });
    expectClose(got, combo([[2, base.subarray(0, 37)]]), REL, ABS);
  });
});

describe('multislerp', () => {
  const rand = seeded(6);
  const shape = [7, 13];
  const base = randomValues(91, rand);
  const xs = [0, 1, 2].map(() => fineTune(base, rand, 0.4));
  const w = [0.5, 0.3, 0.4];
  const models = xs.map((values, i) => ({ values, params: { weight: w[i] } }));

  it('matches the element-wise definition with and without a base', async () => {
    expectClose(await runMethod(multislerp, { shape, base, models }), multislerpRef(xs, w, base, true), REL, ABS);
    expectClose(await runMethod(multislerp, { shape, models }), multislerpRef(xs, w, undefined, true), REL, ABS);
    const raw = await runMethod(multislerp, { shape, base, models, params: { normalize_weights: false } });
    expectClose(raw, multislerpRef(xs, w, base, false), REL, ABS);
  });

  it('antipodal pair falls back to the weighted sum; more inputs with a zero mean are an error', async () => {
    // Exactly antipodal task vectors: integers ± multiples of 1/8 are exact in f32.
    const grid = base.map((v) => Math.round(v * 4));
    const d = randomValues(91, rand).map((v) => Math.round(v * 8) / 8 || 0.125);
    const plus = grid.map((v, i) => v + d[i]);
    const minus = grid.map((v, i) => v - d[i]);
    const pair = [
      { values: plus, params: { weight: 1 } },
      { values: minus, params: { weight: 1 } },
    ];
    expectClose(await runMethod(multislerp, { shape, base: grid, models: pair }), grid, REL, ABS);
    await expect(
      runMethod(multislerp, { shape, base: grid, models: [...pair, { values: xs[0], params: { weight: 0 } }] }),
    ).rejects.toThrow(MethodError);
  });
});

describe('karcher', () => {
  const rand = seeded(8);
  const shape = [7, 13];
  const xs = [0, 1, 2, 3].map(() => randomValues(91, rand));

  it('matches the element-wise iteration, including the base when it is not listed', async () => {
    const models = xs.slice(1).map((values) => ({ values }));
    expectClose(await runMethod(karcher, { shape, models }), karcherRef(xs.slice(1)), REL, ABS);
    expectClose(await runMethod(karcher, { shape, base: xs[0], models }), karcherRef(xs), REL, ABS);
    const few = await runMethod(karcher, { shape, models, params: { max_iter: 1 } });
    expectClose(few, karcherRef(xs.slice(1), 1), REL, ABS);
  });

  it('skips zero inputs but counts them in the norm scale', async () => {
    const zero = new Float32Array(91);
    const models = [{ values: xs[0] }, { values: zero }, { values: xs[1] }];
    expectClose(await runMethod(karcher, { shape, models }), karcherRef([xs[0], zero, xs[1]]), REL, ABS);
  });
});

describe('model_stock', () => {
  const rand = seeded(9);
  const base = randomValues(91, rand);
  const xs = [0, 1, 2].map(() => fineTune(base, rand, 0.2));
  // Correlated task vectors so t is well inside (0, 1).
  const shared = randomValues(91, rand, 0.2);
  const ys = xs.map((x) => x.map((v, i) => v + shared[i]));
  const models = ys.map((values) => ({ values }));

  it('per tensor and per row (filter_wise)', async () => {
    expectClose(await runMethod(modelStock, { shape: [7, 13], base, models }), modelStockRef(base, ys, whole(91)), REL, ABS);
    const rows = await runMethod(modelStock, { shape: [7, 13], base, models, params: { filter_wise: true } });
    expectClose(rows, modelStockRef(base, ys, rowsOf(7, 13)), REL, ABS);
    const oneD = await runMethod(modelStock, { shape: [91], base, models, params: { filter_wise: true } });
    expectClose(oneD, modelStockRef(base, ys, whole(91)), REL, ABS);
  });

  it('needs at least two non-base models', async () => {
    await expect(runMethod(modelStock, { shape: [91], base, models: [{ values: ys[0] }] })).rejects.toThrow(/at least 2/);
  });
});

describe('nearswap', () => {
  it('matches w = clamp(t / max(|b − x|, 1e-6), 0, 1), w·x + (1 − w)·b element-wise', async () => {
    const rand = seeded(10);
    const base = randomValues(37, rand);
    const x = fineTune(base, rand, 0.05);
    x[3] = base[3]; // identical entry: takes x (= b)
    const t = 0.02;
    const want = Array.from(base, (b, i) => {
      const w = Math.min(1, Math.max(0, t / Math.max(Math.abs(b - x[i]), 1e-6)));
      return w * x[i] + (1 - w) * b;
    });
    const got = await runMethod(nearswap, { shape: [37], base, models: [{ values: x }], params: { t } });
    expectClose(got, want, REL, ABS);
    await expect(runMethod(nearswap, { shape: [37], base, models: [{ values: x }], params: { t: 0 } })).rejects.toThrow(
      /t must be > 0/,
    );
  });
});

describe('passthrough', () => {
  it('copies the single input, scaled when asked', async () => {
    const v = new Float32Array([1, -2, 0.5]);
    expect(Array.from(await runMethod(passthrough, { shape: [3], models: [{ values: v }] }))).toEqual([1, -2, 0.5]);
    expect(Array.from(await runMethod(passthrough, { shape: [3], models: [{ values: v, params: { scale: 2 } }] }))).toEqual([
      2, -4, 1,
    ]);
  });
});

describe.each(backendsUnderTest())('nuslerp_row_wise through the engine ($name)', ({ get }) => {
  it('slerps each column of 2-D task vectors (columnDots, scaleColumns), 1-D tensors whole', async () => {
    const rand = seeded(21);
    const specs = [
      { name: 'model.layers.0.mlp.down_proj.weight', shape: [9, 14] },
      { name: 'model.layers.0.input_layernorm.weight', shape: [14] },
    ];
    const base = new Map(specs.map((s) => [s.name, randomValues(s.shape.reduce((a, b) => a * b, 1), rand)]));
    const models = [0.2, 0.4].map((scale) => new Map(specs.map((s) => [s.name, fineTune(base.get(s.name)!, rand, scale)])));
    const got = await mergeModels({
      backend: get(),
      method: 'nuslerp',
      specs,
      base,
      models,
      params: '{nuslerp_flatten: false, nuslerp_row_wise: true}',
      modelParams: ['{weight: 0.6}', '{weight: 0.4}'],
    });
    for (const s of specs) {
      const [b, x1, x2] = [base.get(s.name)!, models[0].get(s.name)!, models[1].get(s.name)!];
      const [rows, cols] = s.shape.length === 2 ? s.shape : [s.shape[0], 1];
      const want = combo([[1, b], [1, nuslerpRef(0.4, sub(x1, b), sub(x2, b), colsOf(rows, cols))]]);
      expectClose(got.tensors.get(s.name)!, want, REL, ABS);
    }
  });
});

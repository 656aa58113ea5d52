/**
 * The task-vector family against a plain per-element reference written here from METHODS.md
 * (f32 task vectors and mask decisions, f64 arithmetic elsewhere), plus the sparsifiers' exact
 * kept counts, rescale, DARE statistics, mask replay and sign election with negative weights.
 * Tolerance for merged values: |got − want| <= 1e-6 + 1e-5·max|want| (f32 engine vs f64 reference).
 */
import { describe, expect, it } from 'vitest';
import { hashTensorName, rowCount, uniformAt } from '../backend.ts';
import { CpuBackend } from '../cpu-backend.ts';
import { breadcrumbs } from './breadcrumbs.ts';
import { breadcrumbsTies } from './breadcrumbs-ties.ts';
import { dareLinear } from './dare-linear.ts';
import { dareTies } from './dare-ties.ts';
import { della } from './della.ts';
import { dellaLinear } from './della-linear.ts';
import { taskArithmetic } from './task-arithmetic.ts';
import { ties } from './ties.ts';
import type { Sparsifier } from './sparsifiers.ts';
import { expectClose, fineTune, magnitudeOrder, randomValues, runMethod, seeded, TENSOR } from './test-harness.ts';
import { MethodError, type MethodDescriptor, type ResolvedParams } from './types.ts';

const f = Math.fround;

/** METHODS.md table: sign election, sparsifier, normalize default, rescale default. */
const TABLE: [MethodDescriptor, boolean, Sparsifier, boolean, boolean | undefined][] = [
  [taskArithmetic, false, 'none', false, undefined],
  [ties, true, 'magnitude', true, undefined],
  [dareTies, true, 'random', false, true],
  [dareLinear, false, 'random', false, true],
  [breadcrumbs, false, 'band', false, undefined],
  [breadcrumbsTies, true, 'band', false, undefined],
  [della, true, 'ranked', true, true],
  [dellaLinear, false, 'ranked', false, true],
];

interface RefModel {
  x: Float32Array;
  weight: number;
  density?: number;
  gamma?: number;
  epsilon?: number;
}

interface RefOptions {
  shape: number[];
  base: Float32Array;
  models: RefModel[];
  election: boolean;
  sparsifier: Sparsifier;
  normalize: boolean;
  rescale: boolean;
  rescaleMode?: 'l1' | 'density';
  lambda: number;
  seed: number;
  masks?: Map<number, Float32Array>;
}

/** Keep-mask of one model's task vector, straight from METHODS.md. */
function referenceMask(o: RefOptions, i: number, delta: Float32Array): Uint8Array {
  const n = delta.length;
  const m = o.models[i];
  const density = m.density ?? 1;
  const keep = new Uint8Array(n);
  if (o.sparsifier === 'none' || density >= 1) return keep.fill(1);
  const order = magnitudeOrder(delta);
  switch (o.sparsifier) {
    case 'magnitude': {
      const k = Math.floor(density * n);
      for (const j of order.slice(n - k)) keep[j] = 1;
      return keep;
    }
    case 'band': {
      const target = Math.floor(density * n);
      let top = Math.floor((m.gamma ?? 0.01) * n);
      let bottom = n - target - top;
      if (bottom < 0) {
        top += bottom;
        bottom = 0;
      }
      for (const j of order.slice(bottom, n - top)) keep[j] = 1;
      return keep;
    }
    case 'random': {
      const replay = o.masks?.get(i);
      const hash = hashTensorName(TENSOR);
      for (let j = 0; j < n; j++) keep[j] = replay ? (replay[j] !== 0 ? 1 : 0) : uniformAt(o.seed, i, hash, j) < f(density) ? 1 : 0;
      return keep;
    }
    case 'ranked': {
      const replay = o.masks?.get(i);
      if (replay) return keep.map((_, j) => (replay[j] !== 0 ? 1 : 0));
      const eps = m.epsilon ?? 0.15;
      const rows = rowCount(o.shape);
      const len = n / rows;
      const hash = hashTensorName(TENSOR);
      for (let r = 0; r < rows; r++) {
        const rowOrder = magnitudeOrder(delta, r * len, len);
        rowOrder.forEach((j, rank) => {
          const rel = len > 1 ? f(rank / (len - 1)) : 0;
          const p = f(f(f(density) - f(eps)) + f(f(2 * f(eps)) * rel));
          keep[j] = uniformAt(o.seed, i, hash, j) < p ? 1 : 0;
        });
      }
      return keep;
    }
  }
}

function referenceFamily(o: RefOptions): Float64Array {
  const n = o.base.length;
  const wds: Float64Array[] = o.models.map((m, i) => {
    const delta = m.x.map((v, j) => v - o.base[j]); // f32, as the engine
    const keep = referenceMask(o, i, delta);
    let scale = 1;
    // rescale is only offered for the random sparsifiers, and applies when a mask was drawn
    if (o.rescale && (m.density ?? 1) < 1) {
      if (o.rescaleMode === 'density') scale = (m.density ?? 1) > 0 ? 1 / (m.density ?? 1) : 1;
      else {
        let before = 0;
        let after = 0;
        for (let j = 0; j < n; j++) {
          before += Math.abs(delta[j]);
          if (keep[j]) after += Math.abs(delta[j]);
        }
        if (before >= 1e-7 && after >= 1e-7) scale = before / after;
      }
    }
    const wd = new Float64Array(n);
    for (let j = 0; j < n; j++) wd[j] = keep[j] ? m.weight * delta[j] * scale : 0;
    return wd;
  });
  const out = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let mixed = 0;
    let divisor = 0;
    if (o.election) {
      let sum = 0;
      for (const wd of wds) sum += wd[j];
      const majority = sum >= 0 ? 1 : -1;
      wds.forEach((wd, i) => {
        if (Math.sign(wd[j]) === majority) {
          mixed += wd[j];
          divisor += o.models[i].weight;
        }
      });
      if (divisor === 0) divisor = 1;
    } else {
      for (const wd of wds) mixed += wd[j];
      for (const m of o.models) divisor += m.weight;
      if (Math.abs(divisor) < 1e-8) divisor = 1;
    }
    if (o.normalize) mixed /= divisor;
    out[j] = o.base[j] + o.lambda * mixed;
  }
  return out;
}

function paramsOf(m: RefModel): ResolvedParams {
  const p: Record<string, number> = { weight: m.weight };
  if (m.density !== undefined) p.density = m.density;
  if (m.gamma !== undefined) p.gamma = m.gamma;
  if (m.epsilon !== undefined) p.epsilon = m.epsilon;
  return p;
}

async function compare(method: MethodDescriptor, o: RefOptions, globals: ResolvedParams) {
  const got = await runMethod(method, {
    shape: o.shape,
    base: o.base,
    models: o.models.map((m) => ({ values: m.x, params: paramsOf(m) })),
    params: globals,
    seed: o.seed,
    masks: o.masks,
  });
  expectClose(got, referenceFamily(o), 1e-5, 1e-6);
}

function numel(shape: number[]) {
  return shape.reduce((a, b) => a * b, 1);
}

describe('task-vector family descriptors', () => {
  it.each(TABLE)('%s defaults follow the METHODS.md table', (method, _election, sparsifier, normalize, rescale) => {
    const byName = new Map(method.params.map((p) => [p.name, p]));
    expect(byName.get('normalize')?.default).toBe(normalize);
    expect(byName.get('lambda')?.default).toBe(1);
    expect(byName.has('int8_mask')).toBe(true);
    expect(byName.get('rescale')?.default).toBe(rescale);
    const perModel = new Map(method.perModelParams.map((p) => [p.name, p]));
    expect(perModel.get('weight')?.required).toBe(true);
    expect(perModel.get('density')?.default).toBe(sparsifier === 'none' ? undefined : 1);
    expect(perModel.get('gamma')?.default).toBe(sparsifier === 'band' ? 0.01 : undefined);
    expect(perModel.get('epsilon')?.default).toBe(sparsifier === 'ranked' ? 0.15 : undefined);
    expect(method.base).toBe('required');
  });
});

describe('task-vector family against the reference', () => {
  const shapes = [[7, 13], [37], [1, 1]];
  for (const [method, election, sparsifier, normalizeDefault, rescaleDefault] of TABLE) {
    for (const shape of shapes) {
      it(`${method.name} on [${shape}]`, async () => {
        const rand = seeded(numel(shape) * 31 + method.name.length);
        const n = numel(shape);
        const base = randomValues(n, rand);
        const models: RefModel[] = [
          { x: fineTune(base, rand), weight: 1, density: 0.5, gamma: 0.05, epsilon: 0.1 },
          { x: fineTune(base, rand), weight: 0.6, density: 0.8, gamma: 0.02, epsilon: 0.15 },
          { x: fineTune(base, rand), weight: -0.3, density: 0.35, gamma: 0.1, epsilon: 0.3 },
        ];
        if (sparsifier === 'none') for (const m of models) delete m.density;
        if (sparsifier === 'magnitude' && n === 1) for (const m of models) m.density = 1;
        const o: RefOptions = {
          shape,
          base,
          models,
          election,
          sparsifier,
          normalize: normalizeDefault,
          rescale: rescaleDefault ?? false,
          lambda: 1,
          seed: 99,
        };
        await compare(method, o, {});
        // Flip normalize, use lambda, and for DARE/DELLA the other rescale mode.
        const flipped: RefOptions = { ...o, normalize: !normalizeDefault, lambda: 0.7, rescaleMode: 'density' };
        const globals: ResolvedParams = { normalize: !normalizeDefault, lambda: 0.7 };
        if (rescaleDefault !== undefined) Object.assign(globals, { rescale_mode: 'density' });
        await compare(method, flipped, globals);
      });
    }
  }

  it('normalize with weights summing to 0 divides by 1 (|Σw| < 1e-8)', async () => {
    const base = new Float32Array([1, 1]);
    const got = await runMethod(taskArithmetic, {
      shape: [2],
      base,
      models: [
        { values: new Float32Array([3, 1]), params: { weight: 1 } },
        { values: new Float32Array([2, 5]), params: { weight: -1 } },
      ],
      params: { normalize: true },
    });
    // δ1 − δ2 = [2, 0] − [1, 4]
    expect(Array.from(got)).toEqual([2, -3]);
  });

  it('returns a copy of the base when there are no other models', async () => {
    const base = new Float32Array([1, -2, 3]);
    const got = await runMethod(ties, { shape: [3], base, models: [{ values: base, isBase: true }] });
    expect(Array.from(got)).toEqual([1, -2, 3]);
  });
});

/** Run a one-model merge with weight 1 and no normalization: the result minus base is the kept δ. */
async function keptDelta(method: MethodDescriptor, delta: number[], params: ResolvedParams, globals: ResolvedParams = {}, shape = [delta.length]) {
  const base = new Float32Array(delta.length);
  const got = await runMethod(method, {
    shape,
    base,
    models: [{ values: Float32Array.from(delta), params: { weight: 1, ...params } }],
    params: { normalize: false, ...globals },
  });
  return Array.from(got);
}

describe('magnitude top-k (TIES)', () => {
  it('keeps exactly floor(density·n) entries; equal magnitudes keep the higher index', async () => {
    // |δ| = 1 everywhere but index 2 (= 3): k = floor(0.5·8) = 4 keeps index 2 and the three
    // highest-index entries of magnitude 1 (ties rank lower index lower, so they go first).
    const delta = [1, -1, 3, 1, -1, 1, -1, 1];
    expect(await keptDelta(ties, delta, { density: 0.5 })).toEqual([0, 0, 3, 0, 0, 1, -1, 1]);
    const kept = await keptDelta(ties, delta, { density: 0.3 }); // k = 2
    expect(kept.filter((v) => v !== 0).length).toBe(2);
    expect(kept).toEqual([0, 0, 3, 0, 0, 0, 0, 1]);
  });

  it('density 1 keeps everything; k = 0 is a MethodError naming the tensor and density', async () => {
    expect(await keptDelta(ties, [1, 2, 3], { density: 1 })).toEqual([1, 2, 3]);
    const failing = keptDelta(ties, [1, 2, 3], { density: 0.2 });
    await expect(failing).rejects.toThrow(MethodError);
    await expect(keptDelta(ties, [1, 2, 3], { density: 0.2 })).rejects.toThrow(
      new RegExp(`ties: tensor ${TENSOR.replace(/\./g, '\\.')}: .*density 0\\.2 keeps floor`),
    );
  });
});

describe('magnitude band (breadcrumbs)', () => {
  const n = 100;
  // |δ| = index + 1, so the magnitude rank of index j is j.
  const ramp = Array.from({ length: n }, (_, j) => (j % 3 === 0 ? -1 : 1) * (j + 1));
  const keptIndices = (v: number[]) => v.flatMap((x, j) => (x !== 0 ? [j] : []));
  const range = (a: number, b: number) => Array.from({ length: b - a }, (_, k) => a + k);

  it('drops the top gamma·n and the bottom rest', async () => {
    // keep = 50, top = 10, bottom = 40: ranks [40, 90)
    const kept = await keptDelta(breadcrumbs, ramp, { density: 0.5, gamma: 0.1 });
    expect(keptIndices(kept)).toEqual(range(40, 90));
  });

  it('keeps the band when top = 0 (the reference keeps nothing there)', async () => {
    // gamma·n = 0.5 -> top = 0; keep = 60, bottom = 40: ranks [40, 100)
    const kept = await keptDelta(breadcrumbs, ramp, { density: 0.6, gamma: 0.005 });
    expect(keptIndices(kept)).toEqual(range(40, 100));
  });

  it('drops fewer outliers when density + gamma > 1', async () => {
    // keep = 95, top = 10, bottom = -5 -> top = 5, bottom = 0: ranks [0, 95)
    const kept = await keptDelta(breadcrumbsTies, ramp, { density: 0.95, gamma: 0.1 });
    expect(keptIndices(kept)).toEqual(range(0, 95));
  });
});

describe('random (DARE)', () => {
  const n = 200_000;
  const rand = seeded(7);
  const delta = Array.from(randomValues(n, rand), (v) => v || 0.5); // no zero entries

  it('keeps a fraction ≈ density (±1%) on a large tensor', async () => {
    for (const density of [0.1, 0.5, 0.9]) {
      const kept = await keptDelta(dareLinear, delta, { density }, { rescale: false });
      const fraction = kept.filter((v) => v !== 0).length / n;
      expect(Math.abs(fraction - density)).toBeLessThan(0.01);
    }
  });

  it('rescale (l1) preserves the L1 norm; rescale_mode density divides by density', async () => {
    const l1 = (v: ArrayLike<number>) => Array.from(v).reduce((s, x) => s + Math.abs(x), 0);
    const kept = await keptDelta(dareLinear, delta, { density: 0.3 });
    expect(Math.abs(l1(kept) / l1(delta) - 1)).toBeLessThan(1e-5);
    const small = [0.5, -1.5, 2, 4, -3, 1];
    const byDensity = await keptDelta(dareLinear, small, { density: 0.5 }, { rescale_mode: 'density' });
    const raw = await keptDelta(dareLinear, small, { density: 0.5 }, { rescale: false });
    expect(byDensity).toEqual(raw.map((v) => f(v * 2)));
  });

  it('replays a supplied mask instead of drawing one', async () => {
    const mask = new Float32Array([1, 0, 0, 1, 1, 0]);
    const x = new Float32Array([1, 2, 3, 4, 5, 6]);
    for (const method of [dareTies, dareLinear, della, dellaLinear]) {
      const got = await runMethod(method, {
        shape: [6],
        base: new Float32Array(6),
        models: [{ values: x, params: { weight: 1, density: 0.5, epsilon: 0.1 } }],
        params: { rescale: false, normalize: false },
        masks: new Map([[0, mask]]),
      });
      expect(Array.from(got), method.name).toEqual([1, 0, 0, 4, 5, 0]);
    }
  });
});

describe('ranked (DELLA)', () => {
  it('keeps large magnitudes more often, with mean probability density', async () => {
    const n = 100_000;
    const ramp = Array.from({ length: n }, (_, j) => j + 1);
    const kept = await keptDelta(dellaLinear, ramp, { density: 0.5, epsilon: 0.3 }, { rescale: false });
    const low = kept.slice(0, n / 10).filter((v) => v !== 0).length / (n / 10); // p from 0.2 to 0.26
    const high = kept.slice(-n / 10).filter((v) => v !== 0).length / (n / 10); // p from 0.74 to 0.8
    expect(Math.abs(low - 0.23)).toBeLessThan(0.015);
    expect(Math.abs(high - 0.77)).toBeLessThan(0.015);
    expect(Math.abs(kept.filter((v) => v !== 0).length / n - 0.5)).toBeLessThan(0.01);
  });

  it('rejects density ± epsilon outside (0, 1) naming tensor, model and values', async () => {
    const attempt = keptDelta(della, [1, 2, 3, 4], { density: 0.9, epsilon: 0.15 });
    await expect(attempt).rejects.toThrow(MethodError);
    await expect(keptDelta(della, [1, 2, 3, 4], { density: 0.1, epsilon: 0.15 })).rejects.toThrow(
      /della: tensor model\.layers\.3\.mlp\.down_proj\.weight: model #0 .*density 0\.1 ± epsilon 0\.15/,
    );
  });

  it('density 0 keeps nothing and density 1 keeps everything (no epsilon check)', async () => {
    expect(await keptDelta(della, [1, -2, 3], { density: 0, epsilon: 0.15 })).toEqual([0, 0, 0]);
    expect(await keptDelta(della, [1, -2, 3], { density: 1, epsilon: 0.15 })).toEqual([1, -2, 3]);
  });
});

describe('sign election', () => {
  it('votes on w·δ, so a negative weight flips a model\'s vote', async () => {
    // δ1 = δ2 = +1. Weights 1 and −2: w·δ = +1, −2, sum −1 -> majority −1 -> only model 2 counts.
    // A vote on δ alone would keep both and give 1 − 2 = −1.
    const base = new Float32Array([0.5]);
    const x = new Float32Array([1.5]);
    const got = await runMethod(ties, {
      shape: [1],
      base,
      models: [
        { values: x, params: { weight: 1, density: 1 } },
        { values: x, params: { weight: -2, density: 1 } },
      ],
      params: { normalize: false },
    });
    expect(Array.from(got)).toEqual([0.5 - 2]);
  });
});

describe('16-bit compute emulation (recipes without dtype over BF16/F16 inputs)', () => {
  /** mergekit's torch BF16/F16 steps, each op rounded: δ, δ·w, Σ, ·λ, + base (dense task arithmetic). */
  function roundedReference(base: Float32Array, xs: Float32Array[], w: number[], lambda: number, q: (v: number) => number) {
    return base.map((b, e) => {
      const wd = xs.map((x, i) => q(q(x[e] - b) * q(w[i])));
      let mixed = q(wd.reduce((s, v) => s + v, 0));
      if (lambda !== 1) mixed = q(mixed * lambda);
      return q(b + mixed);
    });
  }
  const bf16 = (v: number) => {
    const f = new Float32Array([v]);
    const u = new Uint32Array(f.buffer);
    const x = u[0];
    u[0] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) << 16;
    return f[0];
  };

  it('task_arithmetic in BF16 rounds after every op, like the reference, and frees what it made', async () => {
    const rand = seeded(77);
    const base = randomValues(257, rand).map(bf16);
    const xs = [fineTune(base, rand, 0.01).map(bf16), fineTune(base, rand, 0.01).map(bf16)];
    const w = [0.7, 0.3];
    const got = await runMethod(taskArithmetic, {
      shape: [257],
      base,
      models: xs.map((values, i) => ({ values, params: { weight: w[i] } })),
      params: { lambda: 0.9 },
      computeDtype: 'BF16',
    });
    const want = roundedReference(base, xs, w, 0.9, bf16);
    expect(Array.from(got)).toEqual(Array.from(want));
    // Plain f32 math rounded once at the end differs: the step-by-step rounding is what makes them equal.
    const plain = await runMethod(taskArithmetic, {
      shape: [257],
      base,
      models: xs.map((values, i) => ({ values, params: { weight: w[i] } })),
      params: { lambda: 0.9 },
    });
    const differing = Array.from(plain.map(bf16)).filter((v, i) => v !== want[i]).length;
    expect(differing).toBeGreaterThan(0);
  });

  it.each([ties, dareTies, breadcrumbsTies, della])('$name in BF16 holds no more tensors at once than in f32 (each step released once used)', async (method) => {
    const peaks: number[] = [];
    for (const computeDtype of ['BF16', undefined] as const) {
      const backend = new CpuBackend();
      let peak = 0;
      // Every op of the backend notes how many tensors are alive once it returns.
      for (const [name, op] of Object.entries(backend)) {
        if (typeof op !== 'function') continue;
        (backend as unknown as Record<string, unknown>)[name] = async (...args: unknown[]) => {
          const r = await (op as (...a: unknown[]) => Promise<unknown>)(...args);
          peak = Math.max(peak, backend.liveTensors);
          return r;
        };
      }
      const rand = seeded(5);
      const baseValues = randomValues(300, rand).map(bf16);
      const base = backend.fromArray(baseValues, [300]);
      const models = [0, 1, 2].map((i) => ({ tensor: backend.fromArray(fineTune(baseValues, rand, 0.05).map(bf16), [300]), params: { weight: 0.5, density: 0.5, gamma: 0.01, epsilon: 0.1 }, isBase: false, deltaIndex: i }));
      const defaults = Object.fromEntries(method.params.map((p) => [p.name, p.default!]));
      const merged = await method.merge({ backend, tensorName: TENSOR, shape: [300], base, models, params: defaults, seed: 1, computeDtype, replayMask: async () => undefined });
      backend.release(merged);
      for (const t of [base, ...models.map((m) => m.tensor)]) backend.release(t);
      expect(backend.liveTensors, `${method.name} ${computeDtype ?? 'F32'}: left alive`).toBe(0);
      peaks.push(peak);
    }
    // 4 inputs plus at most 5 (12 in all before: every model's kept entries, rounded copy and WD_i lived to the end).
    expect(peaks[0], `${method.name}: BF16 peak vs f32 peak`).toBeLessThanOrEqual(peaks[1]);
    expect(peaks[0]).toBeLessThanOrEqual(4 + 5);
  });
});

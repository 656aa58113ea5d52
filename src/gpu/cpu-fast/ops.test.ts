/**
 * Every op of the fast CPU backend against the reference backend (cpu-backend.ts), on one thread and
 * on worker threads, at odd sizes (1 to 150001: one chunk to several), 1-D and 2-D, from BF16, F16
 * and F32 bytes. Elementwise ops, masks, selections, encodes, gramRows, matmul and transpose must be bit-identical;
 * gram and sumAbs (chunked f64 sums) agree within 1e-12 of Σ|terms|.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { encodeFloats, type FloatDType } from '../../core/dtype.ts';
import type { Tensor } from '../backend.ts';
import { CPU_OP_FAMILIES, CpuBackend } from '../cpu-backend.ts';
import { expectSameBits, randomValues, tiedValues } from '../ops/testing.testutil.ts';
import { FastCpuBackend } from './fast-backend.ts';
import { nodeWorkers } from './node-threads.ts';
import { makeRuntime } from './runtime.ts';
import { rankedThresholds } from '../ops/masks.ts';

const reference = new CpuBackend();
const BACKENDS: [string, FastCpuBackend][] = [
  ['1 thread', new FastCpuBackend()],
  ['3 threads', new FastCpuBackend({ threads: 3, workers: nodeWorkers })],
];
const MATMUL_BACKENDS: [string, FastCpuBackend][] = [
  ['1 thread', BACKENDS[0][1]],
  ['2 threads', new FastCpuBackend({ threads: 2, workers: nodeWorkers })],
];
afterAll(() => new Set([...BACKENDS, ...MATMUL_BACKENDS].map(([, b]) => b)).forEach((b) => b.destroy()));

const LENGTHS = [1, 7, 255, 257, 4099, 65537, 150001];
const SHAPES_2D = [
  [15, 17],
  [3, 4099],
  [1, 257],
  [300, 700],
];
const DTYPES: FloatDType[] = ['BF16', 'F16', 'F32'];

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The same values decoded from `dtype` bytes on the fast backend and the reference. */
async function inputs(fast: FastCpuBackend, values: Float32Array, shape: readonly number[], dtype: FloatDType): Promise<[Tensor, Tensor]> {
  const bytes = encodeFloats(values, dtype);
  return [await fast.decode(bytes, dtype, shape), await reference.decode(bytes, dtype, shape)];
}

async function same(fast: FastCpuBackend, f: Tensor, r: Tensor, what: string): Promise<void> {
  expectSameBits(await fast.read(f), await reference.read(r), what);
  fast.release(f);
  reference.release(r);
}

function afterEach(fast: FastCpuBackend, what: string) {
  expect(fast.liveTensors, `${what}: tensors left alive`).toBe(0);
  expect(fast.pool.snapshot().liveBytes, `${what}: storage left alive`).toBe(0);
}

describe.each(BACKENDS)('fast CPU backend (%s) vs the reference', (name, fast) => {
  const sigmas0 = fast.selectTuning.windowSigmas;
  const smallMax0 = fast.selectTuning.smallMax;
  it('decode, read and encode every dtype pair bit for bit (specials included)', async () => {
    for (const n of LENGTHS) {
      const values = randomValues(n, n + 1, 3);
      const specials = [NaN, Infinity, -Infinity, 1e-40, -1e-45, 65504, 65520, 1e-8, 3.4e38, -0, 0];
      specials.forEach((v, k) => k < n && (values[(k * 37) % n] = v));
      for (const from of DTYPES) {
        const [f, r] = await inputs(fast, values, [n], from);
        for (const to of DTYPES) {
          const what = `${name} n=${n} ${from}->${to}`;
          expect(Buffer.from(await fast.encode(f, to)).equals(Buffer.from(await reference.encode(r, to))), what).toBe(true);
        }
        await same(fast, f, r, `${name} n=${n} decode ${from}`);
      }
    }
    // The threaded backend really ran passes on its workers.
    expect(fast.threads.workerCount).toBe(fast.threads.threads - 1);
    afterEach(fast, name);
  });

  it('quantize, lincomb (scalar and per-row coefficients, bias), lincombRounded, nearswap, absAtLeast, multiply, divideAtLeast, expAffine, rampAbove', async () => {
    // Fewer sizes than elsewhere: many ops × dtypes here (and the reference is slow).
    const shapes = [[1], [7], [257], [65537], [150001], [15, 17], [3, 4099], [300, 700]];
    for (const shape of shapes) {
      const n = numel(shape);
      const rows = shape.length >= 2 ? shape[0] : 1;
      for (const dtype of DTYPES) {
        const xs = await Promise.all([0, 1, 2, 3, 4].map((k) => inputs(fast, randomValues(n, 11 * n + k + dtype.length, k + 1), shape, dtype)));
        const what = `${name} [${shape}] ${dtype}`;
        for (const q of DTYPES) await same(fast, await fast.quantize(xs[0][0], q), await reference.quantize(xs[0][1], q), `${what} quantize ${q}`);
        for (const count of [1, 2, 5]) {
          const coefs = [0.3, -1.7, 1e-3, 2.5, -0.0001].slice(0, count);
          const perRow = Float32Array.from({ length: rows }, (_, r) => 0.5 - r / 7);
          const termsOf = (k: 0 | 1) => xs.slice(0, count).map((x, i) => ({ x: x[k], coef: i === 1 ? perRow : coefs[i] }));
          await same(fast, await fast.lincomb(termsOf(0), 0.125), await reference.lincomb(termsOf(1), 0.125), `${what} lincomb ${count}`);
          await same(fast, await fast.lincomb(termsOf(0)), await reference.lincomb(termsOf(1)), `${what} lincomb ${count} no bias`);
        }
        for (const q of DTYPES) {
          // lincombRounded = quantize(lincomb(...)): one step of the engine's BF16/F16 math.
          const terms = (k: 0 | 1) => [
            { x: xs[0][k], coef: 0.7 },
            { x: xs[1][k], coef: -0.3 },
          ];
          const fastRounded = (fast as unknown as { lincombRounded: (t: unknown, d: FloatDType, b?: number) => Promise<Tensor> }).lincombRounded;
          using sum = await reference.lincomb(terms(1), 0.01);
          await same(fast, await fastRounded(terms(0), q, 0.01), await reference.quantize(sum, q), `${what} lincombRounded ${q}`);
        }
        for (const t of [0, 1e-4, 0.3, 5]) await same(fast, await fast.nearswap(xs[0][0], xs[1][0], t), await reference.nearswap(xs[0][1], xs[1][1], t), `${what} nearswap ${t}`);
        await same(fast, await fast.multiply(xs[0][0], xs[1][0]), await reference.multiply(xs[0][1], xs[1][1]), `${what} multiply`);
        for (const f of [1e-3, 0.5]) await same(fast, await fast.divideAtLeast(xs[0][0], xs[1][0], f), await reference.divideAtLeast(xs[0][1], xs[1][1], f), `${what} divideAtLeast ${f}`);
        await same(fast, await fast.expAffine(xs[2][0], 0.1, -3, 0.5), await reference.expAffine(xs[2][1], 0.1, -3, 0.5), `${what} expAffine`);
        await same(fast, await fast.rampAbove(xs[3][0], 0.2, 1.7), await reference.rampAbove(xs[3][1], 0.2, 1.7), `${what} rampAbove`);
        for (const l of [0, 0.4, 1.3]) await same(fast, await fast.absAtLeast(xs[2][0], xs[3][0], l), await reference.absAtLeast(xs[2][1], xs[3][1], l), `${what} absAtLeast ${l}`);
        for (const [f, r] of xs) {
          fast.release(f);
          reference.release(r);
        }
      }
    }
    afterEach(fast, name);
  });

  it('keepRandom, keepWhere, keepRanked (DELLA) and signElect', async () => {
    const shapes = [...LENGTHS.map((n) => [n]), ...SHAPES_2D];
    for (const shape of shapes) {
      const n = numel(shape);
      const what = `${name} [${shape}]`;
      const xs = await Promise.all([0, 1, 2, 3, 4].map((k) => inputs(fast, randomValues(n, 7 * n + k, 1), shape, k % 2 ? 'BF16' : 'F32')));
      const [x, rx] = xs[0];
      for (const p of [0, 0.3, 0.9, 1, 1.5]) {
        const key = { seed: 5, model: 2, tensor: `layers.${n}.w` };
        await same(fast, await fast.keepRandom(x, p, key), await reference.keepRandom(rx, p, key), `${what} keepRandom ${p}`);
      }
      const maskValues = randomValues(n, n, 1).map((v, i) => (i % 3 === 0 ? 0 : i % 7 === 0 ? -0 : i % 11 === 0 ? NaN : v));
      const [m, rm] = await inputs(fast, maskValues, shape, 'F32');
      await same(fast, await fast.keepWhere(x, m), await reference.keepWhere(rx, rm), `${what} keepWhere`);
      fast.release(m);
      reference.release(rm);
      for (const [density, epsilon] of [
        [0.5, 0.1],
        [0.2, 0.15],
      ]) {
        const key = { seed: 3, model: 1, tensor: 'della' };
        await same(fast, await fast.keepRanked(x, density, epsilon, key), await reference.keepRanked(rx, density, epsilon, key), `${what} keepRanked ${density}`);
      }
      for (const count of [1, 2, 4, 5]) {
        for (const normalize of [false, true]) {
          const w = [1, 0.5, -0.3, 0, 2].slice(0, count);
          await same(
            fast,
            await fast.signElect(xs.slice(0, count).map((p) => p[0]), w, normalize),
            await reference.signElect(xs.slice(0, count).map((p) => p[1]), w, normalize),
            `${what} signElect ${count} ${normalize}`,
          );
        }
      }
      for (const [f, r] of xs) {
        fast.release(f);
        reference.release(r);
      }
    }
    afterEach(fast, name);
  });

  it('keepRanked ranks rows of ties, constant rows, one-entry rows and few distinct keys like the reference', async () => {
    const rows: [string, number[], Float32Array][] = [
      ['tied', [40, 1000], tiedValues(40000, 3)],
      ['constant rows', [30, 512], Float32Array.from({ length: 30 * 512 }, (_, i) => (Math.floor(i / 512) % 3) - 1)],
      ['one column', [777, 1], randomValues(777, 5)],
      ['two keys', [20, 3001], Float32Array.from({ length: 20 * 3001 }, (_, i) => (i % 7 === 0 ? 0.5 : -0.25))],
      ['wide range', [16, 4099], randomValues(16 * 4099, 8).map((v, i) => v * 2 ** ((i % 60) - 30))],
    ];
    for (const [kind, shape, values] of rows) {
      for (const dtype of ['BF16', 'F32'] as const) {
        const [f, r] = await inputs(fast, values, shape, dtype);
        const key = { seed: 9, model: 0, tensor: kind };
        // ε < 0: thresholds fall with rank; ε = 0: one threshold; density + ε > 1: capped at 1.
        for (const [density, epsilon] of [
          [0.4, 0.2],
          [0.5, -0.3],
          [0.3, 0],
          [0.9, 0.3],
        ]) {
          await same(fast, await fast.keepRanked(f, density, epsilon, key), await reference.keepRanked(r, density, epsilon, key), `${name} ${kind} ${dtype} ${density} ${epsilon}`);
        }
        fast.release(f);
        reference.release(r);
      }
    }
    afterEach(fast, name);
  });

  it('keepRankBand keeps the same entries (ties by index) and countKeyDigits counts the same', async () => {
    for (const n of LENGTHS) {
      const bands: [number, number][] = [
        [0, n],
        [n - Math.max(1, Math.floor(n / 3)), n],
        [0, Math.floor(n / 2)],
        [Math.floor(n / 7), n - Math.floor(n / 5)],
        [Math.floor(n / 2), Math.floor(n / 2)],
        [-3, n + 10],
        [1.7, n - 0.5],
      ];
      for (const [kind, values] of [
        ['random', randomValues(n, 3 * n)],
        ['tied', tiedValues(n, n)],
      ] as const) {
        for (const dtype of ['BF16', 'F32'] as const) {
          const [f, r] = await inputs(fast, values, [n], dtype);
          // Up to smallMax entries the host selects among gathered keys; smallMax 0 forces the exact passes.
          for (const smallMax of [smallMax0, 0]) {
            fast.selectTuning.smallMax = smallMax;
            for (const [lo, hi] of bands) {
              const before = { ...fast.selectPaths };
              const what = `${name} ${kind} ${dtype} n=${n} [${lo}, ${hi}) smallMax ${smallMax}`;
              await same(fast, await fast.keepRankBand(f, lo, hi), await reference.keepRankBand(r, lo, hi), what);
              const took = fast.selectPaths.small > before.small ? 'small' : fast.selectPaths.exact > before.exact ? 'exact' : 'none';
              const [from, to] = [Math.max(0, Math.floor(lo)), Math.min(n, Math.floor(hi))];
              const band = from < to && !(from === 0 && to === n);
              expect(took, what).toBe(band ? (n <= smallMax ? 'small' : 'exact') : 'none');
            }
          }
          fast.selectTuning.smallMax = smallMax0;
          const selectors = [
            { prefix: 0, mask: 0, shift: 24 },
            { prefix: 0x3f000000, mask: 0xff000000, shift: 16 },
          ];
          expect([...(await fast.countKeyDigits(f, selectors))], `${name} countKeyDigits n=${n}`).toEqual([...(await reference.countKeyDigits(r, selectors))]);
          fast.release(f);
          reference.release(r);
        }
      }
    }
    afterEach(fast, name);
  });

  it('keepRankBand on large tensors (the sampled one-pass path, its exact fallbacks) keeps the same entries', async () => {
    const shape = [301, 997];
    const n = 301 * 997;
    const cases: [string, Float32Array, 'sampled' | 'either'][] = [
      // One pass collecting a key window around each bound.
      ['random', randomValues(n, 17, 2), 'sampled'],
      // Ties everywhere: each bound's window is one key; one pass counts it per chunk.
      ['tied', tiedValues(n, 19), 'sampled'],
      // Mostly zeros (an unchanged task vector): a bound among the zeros and one among the rest
      // make a window too large to collect, and the exact path runs.
      ['sparse', randomValues(n, 23).map((v, i) => (i % 97 === 0 ? v : 0)), 'either'],
    ];
    const bands: [number, number][] = [
      [n - Math.floor(n * 0.2), n],
      [Math.floor(n * 0.4), n - 3001],
    ];
    for (const [kind, values, path] of cases) {
      for (const dtype of ['BF16', 'F32'] as const) {
        const [f, r] = await inputs(fast, values, shape, dtype);
        for (const [lo, hi] of bands) {
          using want = await reference.keepRankBand(r, lo, hi);
          const expected = await reference.read(want);
          // The default window, then one far too narrow: the sample misses and the exact path takes over.
          for (const sigmas of [sigmas0, 0.001]) {
            fast.selectTuning.windowSigmas = sigmas;
            const before = { ...fast.selectPaths };
            const what = `${name} ${kind} ${dtype} [${lo}, ${hi}) window ${sigmas}σ`;
            using got = await fast.keepRankBand(f, lo, hi);
            expectSameBits(await fast.read(got), expected, what);
            const took = fast.selectPaths.sampled > before.sampled ? 'sampled' : 'exact';
            // A narrow window can still hold the rank where many entries share its key (BF16).
            if (sigmas === sigmas0 && path !== 'either') expect(took, what).toBe(path);
            else if (kind === 'random' && dtype === 'F32') expect(took, what).toBe('exact');
          }
        }
        fast.release(f);
        reference.release(r);
      }
    }
    fast.selectTuning.windowSigmas = sigmas0;
    afterEach(fast, name);
  });

  it('gramRows is bit-identical; gram and sumAbs agree within 1e-12 of the sum of |terms|', async () => {
    for (const shape of [...LENGTHS.map((n) => [n]), ...SHAPES_2D]) {
      const n = numel(shape);
      const xs = await Promise.all([0, 1, 2].map((k) => inputs(fast, randomValues(n, 5 * n + k, 1), shape, 'BF16')));
      // A task vector: computed on the fly by the reductions.
      const df = await fast.lincomb([
        { x: xs[0][0], coef: 1 },
        { x: xs[1][0], coef: -1 },
      ]);
      const dr = await reference.lincomb([
        { x: xs[0][1], coef: 1 },
        { x: xs[1][1], coef: -1 },
      ]);
      const fs = [df, xs[1][0], xs[2][0]];
      const rs = [dr, xs[1][1], xs[2][1]];
      const what = `${name} [${shape}]`;
      expect([...(await fast.gramRows(fs))], `${what} gramRows`).toEqual([...(await reference.gramRows(rs))]);
      const g = await fast.gram(fs);
      const want = await reference.gram(rs);
      const bound = 1e-12 * Math.max(...want.map(Math.abs)) + 1e-300;
      g.forEach((v, k) => expect(Math.abs(v - want[k]), `${what} gram[${k}]`).toBeLessThanOrEqual(bound));
      const s = await fast.sumAbs(df);
      const ws = await reference.sumAbs(dr);
      expect(Math.abs(s - ws), `${what} sumAbs`).toBeLessThanOrEqual(1e-12 * ws);
      for (const [f, r] of [[df, dr], ...xs]) {
        fast.release(f);
        reference.release(r);
      }
    }
    afterEach(fast, name);
  });

  it('rescaleL1 (DARE/DELLA): one pass, nothing stored; bit-identical up to one chunk, within an ulp of the factor above', async () => {
    for (const shape of [...LENGTHS.map((n) => [n]), ...SHAPES_2D]) {
      const n = numel(shape);
      const what = `${name} [${shape}] rescaleL1`;
      const [[x, rx], [b, rb]] = await Promise.all([0, 1].map((k) => inputs(fast, randomValues(n, 11 * n + k, 1), shape, 'BF16')));
      const terms = (p: Tensor, q: Tensor) => [
        { x: p, coef: 1 },
        { x: q, coef: -1 },
      ];
      const df = await fast.lincomb(terms(x, b));
      const dr = await reference.lincomb(terms(rx, rb));
      const key = { seed: 9, model: 0, tensor: `t${n}` };
      for (const [kf, kr, eps] of [
        [await fast.keepRandom(df, 0.4, key), await reference.keepRandom(dr, 0.4, key), 1e-7],
        [await fast.keepRandom(df, 0, key), await reference.keepRandom(dr, 0, key), 1e-7], // nothing kept: factor 1
        [await fast.keepRandom(df, 0.4, key), await reference.keepRandom(dr, 0.4, key), 1e9], // norms below eps: factor 1
      ] as const) {
        const stored = fast.pool.snapshot().liveBytes;
        const got = await fast.rescaleL1(kf, df, eps);
        // The norms were summed on the fly: no f32 copy of the task vector or the kept entries.
        expect(fast.pool.snapshot().liveBytes, `${what}: bytes stored`).toBe(stored);
        const want = await reference.rescaleL1(kr, dr, eps);
        const [g, w] = [await fast.read(got), await reference.read(want)];
        if (n <= 65536) expectSameBits(g, w, what);
        else {
          const off = w.findIndex((v, i) => !(Math.abs(g[i] - v) <= 2 ** -22 * Math.abs(v)));
          expect(off, `${what}: first entry off by more than an ulp of the factor (${g[off]} vs ${w[off]})`).toBe(-1);
        }
        for (const t of [got, kf]) fast.release(t);
        for (const t of [want, kr]) reference.release(t);
      }
      for (const t of [x, b, df]) fast.release(t);
      for (const t of [rx, rb, dr]) reference.release(t);
    }
    const [two, one] = [fast.fromArray([1, 2], [2]), fast.fromArray([1], [1])];
    await expect(fast.rescaleL1(two, one, 0)).rejects.toThrow(/rescaleL1: tensor 1 has 1 elements, tensor 0 has 2/);
    for (const t of [two, one]) fast.release(t);
    afterEach(fast, name);
  });

  it("rescaleL1 of keepRanked's result takes the norms its pass summed: the same bits as summing them apart", async () => {
    // [shape, whether keepRanked's pass can sum them]: jobs of whole rows must start on chunk
    // boundaries (rows of 5632 end mid-chunk; 128 rows make 11 chunks) or the tensor be small.
    const cases: [number[], boolean][] = [
      [[64, 5632], true],
      [[70, 2048], true],
      [[300, 700], true],
      [[3, 4099], true],
      [[150001], true],
      [[300, 1001], false],
    ];
    for (const [shape, fused] of cases) {
      const n = numel(shape);
      const what = `${name} [${shape}] rescaleL1 of keepRanked`;
      const [[x], [b]] = await Promise.all([0, 1].map((k) => inputs(fast, randomValues(n, 13 * n + k, 1), shape, 'BF16')));
      const df = await fast.lincomb([
        { x, coef: 1 },
        { x: b, coef: -1 },
      ]);
      const kept = await fast.keepRanked(df, 0.5, 0.2, { seed: 4, model: 1, tensor: what });
      // The same entries as a new node: its norms are summed by rescaleL1's own pass.
      const apart = await fast.lincomb([{ x: kept, coef: 1 }]);
      const runs = vi.spyOn(fast.threads, 'run');
      const got = await fast.rescaleL1(kept, df, 1e-7);
      expect(runs.mock.calls.length, `${what}: passes`).toBe(fused ? 0 : 1);
      runs.mockRestore();
      const want = await fast.rescaleL1(apart, df, 1e-7);
      expectSameBits(await fast.read(got), await fast.read(want), what);
      for (const t of [x, b, df, kept, apart, got, want]) fast.release(t);
    }
    afterEach(fast, name);
  });

  it('has every op of the reference backend', () => {
    const names = CPU_OP_FAMILIES.flatMap((family) => Object.keys(family(new Proxy({}, { get: () => () => undefined }) as never)));
    expect(names.length).toBeGreaterThan(15);
    for (const op of names) expect(typeof (fast as unknown as Record<string, unknown>)[op], op).toBe('function');
  });

  it('transpose and columnDots give the reference results', async () => {
    const a = randomValues(6 * 5, 1);
    const fa = fast.fromArray(a, [6, 5]);
    const ra = reference.fromArray(a, [6, 5]);
    await same(fast, await fast.transpose(fa), await reference.transpose(ra), `${name} transpose`);
    expect([...(await fast.columnDots(fa, fa))]).toEqual([...(await reference.columnDots(ra, ra))]);
    fast.release(fa);
    afterEach(fast, name);
  });
});

/**
 * matmul and transpose (matmul.ts): bit-identical to the reference, on 1 and 2 threads. Sizes cover
 * one row / column / inner index, remainders of the 3×4 register tile, several output tiles (48×64)
 * and several blocks of p (256), tall and wide; every transpose combination, with and without an
 * addend, alpha and beta; operands decoded from BF16 or lazy (stored by the product first).
 */
describe.each(MATMUL_BACKENDS)('fast CPU backend matmul (%s) vs the reference', (name, fast) => {
  /** [m, k, n] of op(A)·op(B). */
  const DIMS: [number, number, number][] = [
    [1, 1, 1],
    [7, 3, 5],
    [63, 129, 65],
    [65, 1, 257],
    [257, 3, 63],
    [7, 129, 257],
    [257, 129, 7],
    [1, 129, 257],
    [257, 129, 1],
    [50, 300, 70],
  ];
  const transposes = [false, true].flatMap((transA) => [false, true].map((transB) => ({ transA, transB })));

  it('every shape and transpose combination, with and without addend, alpha and beta, byte for byte', async () => {
    for (const [m, k, n] of DIMS) {
      for (const t of transposes) {
        const shapeA = t.transA ? [k, m] : [m, k];
        const shapeB = t.transB ? [n, k] : [k, n];
        const seed = m * 1000 + k * 10 + n;
        const [fa, ra] = await inputs(fast, randomValues(m * k, seed, 1), shapeA, 'BF16');
        const [fb, rb] = await inputs(fast, randomValues(k * n, seed + 1, 2), shapeB, 'F32');
        const [fd, rd] = await inputs(fast, randomValues(m * n, seed + 2, 1), [m, n], 'F16');
        const what = `${name} ${m}×${k}·${k}×${n} transA ${t.transA} transB ${t.transB}`;
        await same(fast, await fast.matmul(fa, fb, t), await reference.matmul(ra, rb, t), what);
        for (const [alpha, beta] of [
          [1, 1],
          [-0.37, 2.5],
        ]) {
          const opts = (addend: Tensor) => ({ ...t, alpha, beta, addend });
          await same(fast, await fast.matmul(fa, fb, opts(fd)), await reference.matmul(ra, rb, opts(rd)), `${what} alpha ${alpha} beta ${beta} addend`);
        }
        await same(fast, await fast.matmul(fa, fb, { ...t, alpha: -2 }), await reference.matmul(ra, rb, { ...t, alpha: -2 }), `${what} alpha -2`);
        for (const [f, r] of [
          [fa, ra],
          [fb, rb],
          [fd, rd],
        ]) {
          fast.release(f);
          reference.release(r);
        }
      }
    }
    afterEach(fast, name);
  });

  it('lazy operands and addend (a task vector, a scaled copy) are computed first', async () => {
    const [m, k, n] = [65, 129, 70];
    const xs = await Promise.all([0, 1, 2].map((s) => inputs(fast, randomValues(m * k, 40 + s), [m, k], 'BF16')));
    const [fb, rb] = await inputs(fast, randomValues(n * k, 50), [n, k], 'F32');
    const [fd, rd] = await inputs(fast, randomValues(m * n, 51), [m, n], 'F32');
    const lazy = <T extends Tensor>(be: { lincomb: (terms: { x: T; coef: number }[]) => Promise<Tensor> }, a: T, b: T) =>
      be.lincomb([
        { x: a, coef: 1 },
        { x: b, coef: -1 },
      ]);
    const fdelta = await lazy(fast, xs[0][0], xs[1][0]);
    const rdelta = await lazy(reference, xs[0][1], xs[1][1]);
    const faddend = await fast.lincomb([{ x: fd, coef: 0.5 }]);
    const raddend = await reference.lincomb([{ x: rd, coef: 0.5 }]);
    const opts = (addend: Tensor) => ({ transB: true, alpha: 0.25, beta: -1, addend });
    await same(fast, await fast.matmul(fdelta, fb, opts(faddend)), await reference.matmul(rdelta, rb, opts(raddend)), `${name} lazy operands`);
    for (const [f, r] of [[fdelta, rdelta], [faddend, raddend], [fb, rb], [fd, rd], ...xs]) {
      fast.release(f);
      reference.release(r);
    }
    afterEach(fast, name);
  });

  it('operands released right after the call (before the product resolves) still give the product', async () => {
    const [m, k, n] = [40, 70, 50];
    const values = [randomValues(m * k, 80), randomValues(k * n, 81), randomValues(m * n, 82)];
    const fs = [fast.fromArray(values[0], [m, k]), fast.fromArray(values[1], [k, n]), fast.fromArray(values[2], [m, n])];
    const lazyA = await fast.lincomb([{ x: fs[0], coef: 2 }]);
    const pending = fast.matmul(lazyA, fs[1], { addend: fs[2], beta: -1 });
    for (const t of [lazyA, ...fs]) fast.release(t);
    const rs = [reference.fromArray(values[0], [m, k]), reference.fromArray(values[1], [k, n]), reference.fromArray(values[2], [m, n])];
    const ra = await reference.lincomb([{ x: rs[0], coef: 2 }]);
    await same(fast, await pending, await reference.matmul(ra, rs[1], { addend: rs[2], beta: -1 }), `${name} released operands`);
    const x0 = fast.fromArray(values[0], [m, k]);
    const x = await fast.lincomb([{ x: x0, coef: 2 }]);
    const pendingT = fast.transpose(x);
    fast.release(x);
    fast.release(x0);
    await same(fast, await pendingT, await reference.transpose(ra), `${name} released transpose input`);
    afterEach(fast, name);
  });

  it('signed zeros, NaN, ±∞ and the zeros the reference skips (0·∞ is not summed there)', async () => {
    const [m, k, n] = [20, 300, 67];
    const a = randomValues(m * k, 60);
    const b = randomValues(k * n, 61);
    const d = randomValues(m * n, 62);
    a.fill(0, 0, k); // row 0 of A is zero: alpha·0 + beta·D gives signed zeros
    a.fill(-0, k, 2 * k);
    a[2 * k + 5] = NaN;
    a[3 * k + 7] = Infinity;
    // Row 4 has zeros where column 3, 9, 11 and 66 of B hold ±∞ or NaN (66: a remainder column of
    // the register tile; p = 299: the last block of p).
    for (let p = 0; p < k; p += 17) a[4 * k + p] = 0;
    a[4 * k + 299] = 0;
    b[17 * n + 3] = Infinity;
    b[17 * n + 9] = -Infinity;
    b[34 * n + 11] = NaN;
    b[299 * n + 66] = NaN;
    d.fill(-0, 0, n);
    for (const [alpha, beta] of [
      [1, 1],
      [-1, 1],
      [-0.5, -1],
    ]) {
      const fa = fast.fromArray(a, [m, k]);
      const fb = fast.fromArray(b, [k, n]);
      const fd = fast.fromArray(d, [m, n]);
      const ra = reference.fromArray(a, [m, k]);
      const rb = reference.fromArray(b, [k, n]);
      const rd = reference.fromArray(d, [m, n]);
      const what = `${name} specials alpha ${alpha} beta ${beta}`;
      await same(fast, await fast.matmul(fa, fb, { alpha, beta, addend: fd }), await reference.matmul(ra, rb, { alpha, beta, addend: rd }), `${what} addend`);
      const want = await reference.matmul(ra, rb, { alpha });
      const got = await fast.matmul(fa, fb, { alpha });
      const values = await reference.read(want);
      // The case is real: the skipped zeros give finite values where 0·∞ would give NaN.
      expect(Number.isFinite(values[4 * n + 3]) && Number.isNaN(values[2 * n + 3]), what).toBe(true);
      await same(fast, got, want, what);
      for (const t of [fa, fb, fd]) fast.release(t);
    }
    afterEach(fast, name);
  });

  it('empty products: k = 0 gives beta·D, m = 0 or n = 0 an empty matrix', async () => {
    const d = randomValues(12, 70);
    const cases: [number[], number[], boolean][] = [
      [[3, 0], [0, 4], true],
      [[0, 5], [5, 4], false],
      [[3, 5], [5, 0], false],
    ];
    for (const [sa, sb, withAddend] of cases) {
      const fa = fast.fromArray(new Float32Array(sa[0] * sa[1]), sa);
      const fb = fast.fromArray(new Float32Array(sb[0] * sb[1]), sb);
      const ra = reference.fromArray(new Float32Array(sa[0] * sa[1]), sa);
      const rb = reference.fromArray(new Float32Array(sb[0] * sb[1]), sb);
      const fd = withAddend ? fast.fromArray(d, [3, 4]) : undefined;
      const rd = withAddend ? reference.fromArray(d, [3, 4]) : undefined;
      const got = await fast.matmul(fa, fb, { addend: fd, beta: -2 });
      expect(got.shape, `${name} [${sa}]·[${sb}]`).toEqual([sa[0], sb[1]]);
      await same(fast, got, await reference.matmul(ra, rb, { addend: rd, beta: -2 }), `${name} [${sa}]·[${sb}]`);
      for (const t of [fa, fb, fd]) if (t) fast.release(t);
    }
    afterEach(fast, name);
  });

  it('transpose of tall, wide, single-row and lazy matrices, byte for byte', async () => {
    for (const shape of [
      [1, 1],
      [1, 257],
      [257, 1],
      [33, 65],
      [300, 129],
      [5, 1000],
    ]) {
      const [f, r] = await inputs(fast, randomValues(shape[0] * shape[1], shape[0] + shape[1]), shape, 'BF16');
      const fl = await fast.lincomb([{ x: f, coef: -3 }]);
      const rl = await reference.lincomb([{ x: r, coef: -3 }]);
      const got = await fast.transpose(fl);
      expect(got.shape).toEqual([shape[1], shape[0]]);
      await same(fast, got, await reference.transpose(rl), `${name} transpose [${shape}]`);
      for (const [x, y] of [
        [f, r],
        [fl, rl],
      ]) {
        fast.release(x);
        reference.release(y);
      }
    }
    afterEach(fast, name);
  });
});

describe('DELLA row masks (runtime.ts keepRankedRow): the histogram path against a full sort', () => {
  const rt = makeRuntime();
  const keyOf = (v: Float32Array) => new Uint32Array(v.buffer.slice(0)).map((b) => b & 0x7fffffff);
  /** The mask by definition: sort (key, position), then compare each uniform with its rank's threshold. */
  function sortedMask(keys: Uint32Array, i0: number, seedHash: number, thresholds: Uint32Array): Uint8Array {
    const n = keys.length;
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => keys[a] - keys[b] || a - b);
    const mask = new Uint8Array(i0 + n);
    order.forEach((i, rank) => {
      let h = (seedHash ^ (i0 + i)) >>> 0;
      h ^= h >>> 16;
      h = Math.imul(h, 0x7feb352d) >>> 0;
      h ^= h >>> 15;
      h = Math.imul(h, 0x846ca68b) >>> 0;
      h ^= h >>> 16;
      mask[i0 + i] = h >>> 8 < thresholds[rank] ? 1 : 0;
    });
    return mask;
  }
  const rows: [string, Float32Array][] = [
    ['random 4099', randomValues(4099, 11)],
    ['random 2048 (BF16 deltas: tied keys)', Float32Array.from(randomValues(2048, 12), (v, i) => Math.fround(Math.round(v * 256) / 256 - Math.round(((i * 7) % 13) * 0.3) / 256))],
    ['wide range 5632', randomValues(5632, 13).map((v, i) => v * 2 ** ((i % 60) - 30))],
    ['tied 3001', tiedValues(3001, 14)],
    ['two keys 999', Float32Array.from({ length: 999 }, (_, i) => (i % 7 === 0 ? 0.5 : -0.25))],
    ['constant 257', new Float32Array(257).fill(-3)],
    ['signed zeros, NaN, ±∞ 1031', randomValues(1031, 15).map((v, i) => (i % 5 === 0 ? -0 : i % 7 === 0 ? 0 : i % 11 === 0 ? NaN : i % 13 === 0 ? -Infinity : i % 17 === 0 ? Infinity : v))],
    ['one entry', Float32Array.of(-2)],
    ['short 7', Float32Array.of(1, -1, 0.5, 1, -0, 2, 0.5)],
  ];
  it.each(rows)('%s', (_, values) => {
    const n = values.length;
    const keys = keyOf(values);
    let or = 0;
    let and = 0x7fffffff;
    for (const k of keys) {
      or |= k;
      and &= k;
    }
    const paths = new Set<boolean>();
    for (const [density, epsilon] of [
      [0.5, 0.1],
      [0.4, 0.35],
      [0.6, -0.2],
      [0.3, 0],
    ]) {
      const thresholds = rankedThresholds(n, density, epsilon);
      const i0 = 3 * n + 5;
      const want = sortedMask(keys, i0, 0x9e3779b9, thresholds);
      for (const monotone of [true, false]) {
        const got = new Uint8Array(i0 + n).fill(7);
        paths.add(rt.keepRankedRow(keys.slice(), n, i0, (or ^ and) >>> 0, 0x9e3779b9, thresholds, monotone, got));
        expect(got.subarray(0, i0).every((m) => m === 7), 'writes only its row').toBe(true);
        expect(Array.from(got.subarray(i0)), `density ${density} epsilon ${epsilon} monotone ${monotone}`).toEqual(Array.from(want.subarray(i0)));
      }
    }
    // The histogram path decides monotone thresholds unless ties make exact ranks cost more than a sort.
    expect(paths.has(true)).toBe(true);
    if (or !== and) expect(paths.has(false)).toBe(true);
  });
});

describe('fast CPU backend errors', () => {
  const [, fast] = BACKENDS[1];
  it('names the op and the reason, as the reference does', async () => {
    const a = fast.fromArray([1, 2, 3], [3]);
    const b = fast.fromArray([1, 2], [2]);
    await expect(fast.lincomb([{ x: a, coef: 1 }, { x: b, coef: 1 }])).rejects.toThrow('fast cpu backend: lincomb: term 1 has 2 elements, term 0 has 3');
    await expect(fast.decode(new Uint8Array(5), 'BF16', [3])).rejects.toThrow('fast cpu backend: decode: 5 bytes for BF16 shape [3], expected 6');
    fast.release(b);
    await expect(fast.read(b)).rejects.toThrow('fast cpu backend: read: tensor of shape [2] was released or belongs to another backend');
    await expect(fast.signElect([a], [1, 2], true)).rejects.toThrow('fast cpu backend: signElect: 2 weights for 1 tensors');
    const m = fast.fromArray(new Float32Array(12), [3, 4]);
    await expect(fast.matmul(m, m)).rejects.toThrow('fast cpu backend: matmul: inner dimensions differ: op(A) is 3×4, op(B) is 3×4');
    await expect(fast.matmul(m, a)).rejects.toThrow('fast cpu backend: matmul: B has shape [3], expected a 2-D matrix');
    await expect(fast.transpose(a)).rejects.toThrow('fast cpu backend: transpose: tensor has shape [3], expected a 2-D matrix');
    fast.release(m);
    fast.release(a);
  });
});

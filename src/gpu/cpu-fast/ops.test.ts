/**
 * Every op of the fast CPU backend against the reference backend (cpu-backend.ts), on one thread and
 * on worker threads, at odd sizes (1 to 150001: one chunk to several), 1-D and 2-D, from BF16, F16
 * and F32 bytes. Elementwise ops, masks, selections, encodes and gramRows must be bit-identical;
 * gram and sumAbs (chunked f64 sums) agree within 1e-12 of Σ|terms|.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { encodeFloats, type FloatDType } from '../../core/dtype.ts';
import type { Tensor } from '../backend.ts';
import { CPU_OP_FAMILIES, CpuBackend } from '../cpu-backend.ts';
import { expectSameBits, randomValues, tiedValues } from '../ops/testing.testutil.ts';
import { FastCpuBackend } from './fast-backend.ts';
import { nodeWorkers } from './node-threads.ts';

const reference = new CpuBackend();
const BACKENDS: [string, FastCpuBackend][] = [
  ['1 thread', new FastCpuBackend()],
  ['3 threads', new FastCpuBackend({ threads: 3, workers: nodeWorkers })],
];
afterAll(() => BACKENDS.forEach(([, b]) => b.destroy()));

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
        await same(fast, await fast.keepRanked(f, 0.4, 0.2, key), await reference.keepRanked(r, 0.4, 0.2, key), `${name} ${kind} ${dtype}`);
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
          for (const [lo, hi] of bands) await same(fast, await fast.keepRankBand(f, lo, hi), await reference.keepRankBand(r, lo, hi), `${name} ${kind} ${dtype} n=${n} [${lo}, ${hi})`);
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

  it('has every op of the reference backend', () => {
    const names = CPU_OP_FAMILIES.flatMap((family) => Object.keys(family(new Proxy({}, { get: () => () => undefined }) as never)));
    expect(names.length).toBeGreaterThan(15);
    for (const op of names) expect(typeof (fast as unknown as Record<string, unknown>)[op], op).toBe('function');
  });

  it('linear algebra (delegated to the reference loops) gives the reference results', async () => {
    const a = randomValues(6 * 5, 1);
    const b = randomValues(5 * 4, 2);
    const d = randomValues(6 * 4, 3);
    const fa = fast.fromArray(a, [6, 5]);
    const fb = fast.fromArray(b, [5, 4]);
    const fd0 = fast.fromArray(d, [6, 4]);
    // The addend is lazy: the delegated op stores it first.
    const fd = await fast.lincomb([{ x: fd0, coef: 2 }]);
    const ra = reference.fromArray(a, [6, 5]);
    const rb = reference.fromArray(b, [5, 4]);
    const rd = await reference.lincomb([{ x: reference.fromArray(d, [6, 4]), coef: 2 }]);
    await same(fast, await fast.matmul(fa, fb, { addend: fd, alpha: 0.5, beta: -1 }), await reference.matmul(ra, rb, { addend: rd, alpha: 0.5, beta: -1 }), `${name} matmul`);
    await same(fast, await fast.transpose(fa), await reference.transpose(ra), `${name} transpose`);
    expect([...(await fast.columnDots(fa, fa))]).toEqual([...(await reference.columnDots(ra, ra))]);
    for (const t of [fa, fb, fd0, fd]) fast.release(t);
    afterEach(fast, name);
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
    fast.release(a);
  });
});

/**
 * Elementwise ops on the GPU vs the reference: every op of src/gpu/ops/elementwise.ts against elementwise.cpu.ts at odd sizes and with tensors
 * split into several chunks. Tolerances are stated per op; "exact" means bit-identical.
 */
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../backend.ts';
import { cpu, gpuFor, rng, LENGTHS, CHUNKINGS, SHAPES_2D, randomValues, pair, numel, bits, expectClose, expectSameBits, F32_EPS, release, useGpuBackends } from './testing.testutil.ts';

useGpuBackends();

describe('lincomb vs CPU', () => {
  // Same f32 order as the CPU; a GPU may fuse multiply-adds, so allow 4 ulp of Σ|c·x| + |bias|.
  it('1 to 9 terms, scalar and per-row coefficients, bias, every chunking', async () => {
    const cases: { shape: number[]; terms: number; perRow: boolean; bias: number }[] = [
      ...LENGTHS.map((n, i) => ({ shape: [n], terms: (i % 5) + 1, perRow: false, bias: i % 2 ? 0.25 : 0 })),
      ...SHAPES_2D.map((shape, i) => ({ shape, terms: [2, 5, 9, 3, 6][i], perRow: true, bias: -1.5 })),
    ];
    for (const chunk of [undefined, 777, 1000]) {
      const gpu = gpuFor(chunk);
      for (const { shape, terms, perRow, bias } of cases) {
        const n = numel(shape);
        const rows = shape.length >= 2 ? shape[0] : 1;
        const r = rng(n + terms);
        const xs = await Promise.all(
          Array.from({ length: terms }, (_, k) => pair(chunk, randomValues(n, 100 * k + n), shape)),
        );
        const coefs = xs.map((_, k) =>
          perRow && k % 2 === 0 ? Float32Array.from({ length: rows }, () => r() * 4 - 2) : r() * 4 - 2,
        );
        const got = await gpu.read(await gpu.lincomb(xs.map(([g], k) => ({ x: g, coef: coefs[k] })), bias));
        const cpuOut = await cpu.lincomb(xs.map(([, c], k) => ({ x: c, coef: coefs[k] })), bias);
        const want = await cpu.read(cpuOut);
        const data = await Promise.all(xs.map(([, c]) => cpu.read(c)));
        const rowLen = n / rows;
        const bound = (i: number) => {
          let s = Math.abs(bias);
          const row = Math.floor(i / rowLen);
          coefs.forEach((c, k) => (s += Math.abs((typeof c === 'number' ? Math.fround(c) : c[row]) * data[k][i])));
          return 4 * F32_EPS * s;
        };
        expectClose(got, want, bound, `lincomb shape=[${shape}] terms=${terms} chunk=${chunk}`);
        release(cpuOut, ...xs.flat());
      }
    }
  });

  it('matches the CPU exactly on the f32 cancellation example', async () => {
    const gpu = gpuFor(undefined);
    const one = await gpu.fromArray([1], [1]);
    const r = await gpu.lincomb([
      { x: one, coef: 1e8 },
      { x: one, coef: 1 },
      { x: one, coef: -1e8 },
    ]);
    expect(Array.from(await gpu.read(r))).toEqual([0]);
    gpu.release(r);
    gpu.release(one);
  });
});

describe('lincombRounded (lincomb and quantize in one pass)', () => {
  const cases: { shape: number[]; terms: number; perRow: boolean; bias: number }[] = [
    { shape: [7], terms: 1, perRow: false, bias: 0 },
    { shape: [4099], terms: 3, perRow: false, bias: 0.25 },
    { shape: [65537], terms: 5, perRow: false, bias: 0 },
    { shape: [40, 1000], terms: 9, perRow: true, bias: -1.5 },
    { shape: [3, 4099], terms: 2, perRow: true, bias: 0 },
  ];

  it('GPU = GPU quantize(lincomb) bit for bit, BF16/F16/F32, 1 to 9 terms, every chunking (rounds once, after the last term)', async () => {
    for (const chunk of [undefined, 777]) {
      const gpu = gpuFor(chunk);
      for (const { shape, terms, perRow, bias } of cases) {
        const n = numel(shape);
        const rows = shape.length >= 2 ? shape[0] : 1;
        const r = rng(3 * n + terms);
        const xs = await Promise.all(Array.from({ length: terms }, (_, k) => pair(chunk, randomValues(n, 300 * k + n, 1e-3), shape)));
        const coefs = xs.map((_, k) => (perRow && k % 2 === 0 ? Float32Array.from({ length: rows }, () => r() * 4 - 2) : r() * 4 - 2));
        const gterms = xs.map(([g], k) => ({ x: g, coef: coefs[k] }));
        for (const dtype of ['BF16', 'F16', 'F32'] as const) {
          const fused = await gpu.lincombRounded(gterms, dtype, bias);
          const sum = await gpu.lincomb(gterms, bias);
          const twoPass = await gpu.quantize(sum, dtype);
          const got = await gpu.read(fused);
          expectSameBits(got, await gpu.read(twoPass), `shape=[${shape}] terms=${terms} ${dtype} chunk=${chunk}`);
          if (dtype === 'BF16') expect(bits(got).every((b) => (b & 0xffff) === 0)).toBe(true);
          if (dtype === 'F32') expectSameBits(got, await gpu.read(sum), `F32 = lincomb, shape=[${shape}]`);
          gpu.release(fused);
          gpu.release(sum);
          gpu.release(twoPass);
        }
        release(...xs.flat());
      }
    }
  });

  it('reference: each value is the f32 sum rounded to nearest BF16 / F16 (half an ulp away at most)', async () => {
    const { shape, terms, bias } = cases[3];
    const n = numel(shape);
    const xs = Array.from({ length: terms }, (_, k) => cpu.fromArray(randomValues(n, 500 * k + n), shape));
    const tterms = xs.map((x, k) => ({ x, coef: 0.3 * k - 1.1 }));
    const sum = await cpu.read(await cpu.lincomb(tterms, bias));
    for (const [dtype, mantissa] of [['BF16', 7], ['F16', 10]] as const) {
      const got = await cpu.read(await cpu.lincombRounded(tterms, dtype, bias));
      let changed = 0;
      for (let i = 0; i < n; i++) {
        // |sum| in the normal range of both types here: ulp = 2^(exponent − mantissa bits).
        const ulp = 2 ** (Math.floor(Math.log2(Math.abs(sum[i]))) - mantissa);
        if (Math.abs(got[i] - sum[i]) > ulp / 2) expect.fail(`${dtype} [${i}]: ${got[i]} is not ${sum[i]} rounded`);
        if (got[i] !== sum[i]) changed++;
      }
      expect(changed).toBeGreaterThan(n / 2);
    }
  });
});

// Hardware adapters sum 4096 elements per workgroup, software ones 65536 (fewer barriers): test both.

describe('nearswap vs CPU', () => {
  // w = t / dist goes through a GPU division (2.5 ulp): allow 2^-20 · (|x| + |b|).
  it('at every length and chunking, with near-identical and distant entries', async () => {
    for (const chunk of CHUNKINGS) {
      const gpu = gpuFor(chunk);
      for (const n of LENGTHS) {
        const b = randomValues(n, n);
        const x = randomValues(n, n + 1).map((v, i) => (i % 3 === 0 ? b[i] + v * 1e-7 : v));
        const [gb, cb] = await pair(chunk, b, [n]);
        const [gx, cx] = await pair(chunk, x, [n]);
        for (const t of [0.001, 0.5]) {
          const gt = await gpu.nearswap(gb, gx, t);
          const ct = await cpu.nearswap(cb, cx, t);
          expectClose(await gpu.read(gt), await cpu.read(ct), (i) => 2 ** -20 * (Math.abs(x[i]) + Math.abs(b[i])), `n=${n} t=${t} chunk=${chunk}`);
          release(gt, ct);
        }
        release(gb, cb, gx, cx);
      }
    }
  });
});


describe('absAtLeast vs CPU', () => {
  // One f32 product and one comparison on both sides: the masks must be identical.
  it('at every length and chunking, with exact ties on the boundary', async () => {
    for (const chunk of CHUNKINGS) {
      const gpu = gpuFor(chunk);
      for (const n of LENGTHS) {
        const a = randomValues(n, 3 * n);
        const b = randomValues(n, 3 * n + 1).map((v, i) => (i % 5 === 0 ? a[i] / 0.5 : v));
        const [ga, ca] = await pair(chunk, a, [n]);
        const [gb, cb] = await pair(chunk, b, [n]);
        for (const lambda of [0.5, 0.3, 2]) {
          const gm = await gpu.absAtLeast(ga, gb, lambda);
          const cm = await cpu.absAtLeast(ca, cb, lambda);
          const got = await gpu.read(gm);
          expect(Array.from(got)).toEqual(Array.from(await cpu.read(cm)));
          if (n >= 1000) {
            const kept = got.reduce((s, v) => s + v, 0);
            expect(kept).toBeGreaterThan(0);
            expect(kept).toBeLessThan(n);
          }
          release(gm, cm);
        }
        release(ga, ca, gb, cb);
      }
    }
  });

  it('keeps the boundary and drops below it (hand-computed)', async () => {
    const gpu = gpuFor(undefined);
    const a = await gpu.fromArray([1, -1, 0.4, 0, 3], [5]);
    const b = await gpu.fromArray([2, -2, 1, 0, -7], [5]);
    const m = await gpu.absAtLeast(a, b, 0.5);
    expect(Array.from(await gpu.read(m))).toEqual([1, 1, 0, 1, 0]);
    release(a, b, m);
  });
});

describe('multiply, divideAtLeast, expAffine, rampAbove vs CPU', () => {
  // multiply and rampAbove round once per step on both sides: exact. divideAtLeast: a GPU division
  // (2.5 ulp). expAffine: exp within 3 + 2·|arg| ulp (WGSL), the argument possibly fused (1 ulp of
  // |scale·(x − shift)| + |bias| carried through exp): (8 + 4·|arg|) ulp of the result.
  it('at every length and chunking', async () => {
    for (const chunk of CHUNKINGS) {
      const gpu = gpuFor(chunk);
      for (const n of LENGTHS) {
        const a = randomValues(n, 5 * n);
        const b = randomValues(n, 5 * n + 1).map((v, i) => (i % 7 === 0 ? 0 : v));
        const [ga, ca] = await pair(chunk, a, [n]);
        const [gb, cb] = await pair(chunk, b, [n]);
        const what = `n=${n} chunk=${chunk}`;
        const both = async (g: Promise<Tensor>, c: Promise<Tensor>): Promise<[Float32Array, Float32Array]> => {
          const [gt, ct] = [await g, await c];
          const out: [Float32Array, Float32Array] = [await gpu.read(gt), await cpu.read(ct)];
          release(gt, ct);
          return out;
        };
        const [pg, pc] = await both(gpu.multiply(ga, gb), cpu.multiply(ca, cb));
        expectSameBits(pg, pc, `multiply ${what}`);
        const [dg, dc] = await both(gpu.divideAtLeast(ga, gb, 0.25), cpu.divideAtLeast(ca, cb, 0.25));
        expectClose(dg, dc, (i) => 3 * F32_EPS * Math.abs(dc[i]), `divideAtLeast ${what}`);
        const [eg, ec] = await both(gpu.expAffine(ga, -0.3, 1.7, -2), cpu.expAffine(ca, -0.3, 1.7, -2));
        expectClose(eg, ec, (i) => (8 + 4 * Math.abs(Math.log(ec[i]))) * F32_EPS * ec[i], `expAffine ${what}`);
        const [rg, rc] = await both(gpu.rampAbove(ga, 0.4, 2.5), cpu.rampAbove(ca, 0.4, 2.5));
        expectSameBits(rg, rc, `rampAbove ${what}`);
        release(ga, ca, gb, cb);
      }
    }
  });

  it('hand-computed values', async () => {
    const gpu = gpuFor(undefined);
    const a = await gpu.fromArray([2, -3, 0.5, 1, 4], [5]);
    const b = await gpu.fromArray([4, 2, 0, -1, 1e-13], [5]);
    const p = await gpu.multiply(a, b);
    expect(Array.from(await gpu.read(p))).toEqual([8, -6, 0, -1, Math.fround(4e-13)]);
    const d = await gpu.divideAtLeast(a, b, 0.5);
    expect(Array.from(await gpu.read(d))).toEqual([0.5, -1.5, 1, 2, 8]);
    const e = await gpu.expAffine(a, 1, 0.5, -1);
    const ev = await gpu.read(e);
    [2, -3, 0.5, 1, 4].forEach((x, i) => expect(ev[i]).toBeCloseTo(Math.exp(0.5 * (x - 1) - 1), 6));
    const r = await gpu.rampAbove(a, 1, 2);
    expect(Array.from(await gpu.read(r))).toEqual([2, 0, 0, 0, 6]);
    release(a, b, p, d, e, r);
  });

  it('accept zero elements', async () => {
    const gpu = gpuFor(777);
    const x = await gpu.fromArray([], [0, 5]);
    const outs = [await gpu.multiply(x, x), await gpu.divideAtLeast(x, x, 1), await gpu.expAffine(x, 0, 1, 0), await gpu.rampAbove(x, 0, 1)];
    for (const o of outs) expect(o.shape).toEqual([0, 5]);
    expect(await gpu.minMax(x)).toEqual({ min: Infinity, max: -Infinity });
    release(x, ...outs);
  });
});

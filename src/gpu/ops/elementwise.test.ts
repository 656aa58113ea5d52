/**
 * Elementwise ops on the GPU vs the reference: every op of src/gpu/ops/elementwise.ts against elementwise.cpu.ts at odd sizes and with tensors
 * split into several chunks. Tolerances are stated per op; "exact" means bit-identical.
 */
import { describe, expect, it } from 'vitest';
import { cpu, gpuFor, rng, LENGTHS, CHUNKINGS, SHAPES_2D, randomValues, pair, numel, expectClose, F32_EPS, release, useGpuBackends } from './testing.testutil.ts';

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

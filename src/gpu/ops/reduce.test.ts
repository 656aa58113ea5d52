/**
 * Reductions on the GPU vs the reference: every op of src/gpu/ops/reduce.ts against reduce.cpu.ts at odd sizes and with tensors
 * split into several chunks. Tolerances are stated per op; "exact" means bit-identical.
 */
import { describe, expect, it } from 'vitest';
import { type Tensor } from '../backend.ts';
import { createGpuBackend } from '../gpu-backend.ts';
import { ctx, cpu, LENGTHS, CHUNKINGS, SHAPES_2D, randomValues, numel, release, useGpuBackends } from './testing.testutil.ts';

useGpuBackends();

describe.each([
  [4096, 1e-5],
  [65536, 4e-5],
])('reductions vs CPU (f32 block sums of %d, combined in f64)', (reduceBlock, tol) => {
  // Tolerance: tol · Σ|a_i·b_i| (the f32 rounding of sums over at most reduceBlock terms).
  it('gram, gramRows, sumAbs over 1-D and 2-D tensors, every chunking', async () => {
    const shapes = [...LENGTHS.map((n) => [n]), ...SHAPES_2D];
    for (const chunk of CHUNKINGS) {
      const gpu = createGpuBackend(ctx, { maxChunkElements: chunk, reduceBlock });
      for (const shape of shapes) {
        const n = numel(shape);
        const xs = await Promise.all(
          [0, 1, 2].map(async (k): Promise<[Tensor, Tensor]> => {
            const v = randomValues(n, 7 * k + n, k + 1);
            return [await gpu.fromArray(v, shape), cpu.fromArray(v, shape)];
          }),
        );
        const data = await Promise.all(xs.map(([, c]) => cpu.read(c)));
        const rows = shape.length >= 2 ? shape[0] : 1;
        const rowLen = n / rows;
        const what = `shape=[${shape}] chunk=${chunk}`;

        const g = await gpu.gram(xs.map(([t]) => t));
        const w = await cpu.gram(xs.map(([, t]) => t));
        for (let i = 0; i < 3; i++) {
          for (let j = 0; j < 3; j++) {
            let absSum = 0;
            for (let e = 0; e < n; e++) absSum += Math.abs(data[i][e] * data[j][e]);
            expect(Math.abs(g[i * 3 + j] - w[i * 3 + j]), `gram ${what} (${i},${j})`).toBeLessThanOrEqual(tol * absSum + 1e-30);
          }
        }

        const gr = await gpu.gramRows(xs.map(([t]) => t));
        const wr = await cpu.gramRows(xs.map(([, t]) => t));
        expect(gr.length).toBe(rows * 9);
        for (let r = 0; r < rows; r++) {
          for (let i = 0; i < 3; i++) {
            for (let j = 0; j < 3; j++) {
              let absSum = 0;
              for (let e = r * rowLen; e < (r + 1) * rowLen; e++) absSum += Math.abs(data[i][e] * data[j][e]);
              const k = r * 9 + i * 3 + j;
              expect(Math.abs(gr[k] - wr[k]), `gramRows ${what} row ${r} (${i},${j})`).toBeLessThanOrEqual(tol * absSum + 1e-30);
            }
          }
        }

        const s = await gpu.sumAbs(xs[1][0]);
        const sw = await cpu.sumAbs(xs[1][1]);
        expect(Math.abs(s - sw), `sumAbs ${what}`).toBeLessThanOrEqual(tol * sw);
        for (const [g, c] of xs) {
          gpu.release(g);
          cpu.release(c);
        }
      }
      gpu.destroy();
    }
  });
});

describe('minMax vs CPU (exact)', () => {
  it('1-D and 2-D tensors, every chunking and block size, NaN ignored, ±Inf kept', async () => {
    const shapes = [...LENGTHS.map((n) => [n]), ...SHAPES_2D];
    for (const reduceBlock of [4096, 65536]) {
      for (const chunk of CHUNKINGS) {
        const gpu = createGpuBackend(ctx, { maxChunkElements: chunk, reduceBlock });
        for (const shape of shapes) {
          const n = numel(shape);
          const v = randomValues(n, 11 * n);
          // The extremes sit in the last chunk / block for some sizes, the first for others.
          if (n > 3) v[n % 2 ? n - 2 : 1] = n % 3 ? -9 : 9;
          if (n > 5) v[3] = NaN;
          const g = await gpu.fromArray(v, shape);
          const c = cpu.fromArray(v, shape);
          const want = await cpu.minMax(c);
          expect(await gpu.minMax(g), `shape=[${shape}] chunk=${chunk} block=${reduceBlock}`).toEqual(want);
          expect(Number.isFinite(want.min) && Number.isFinite(want.max)).toBe(true);
          gpu.release(g);
          cpu.release(c);
        }
        const inf = await gpu.fromArray([1, Infinity, -2, NaN], [4]);
        expect(await gpu.minMax(inf)).toEqual({ min: -2, max: Infinity });
        const nan = await gpu.fromArray([NaN, NaN], [2]);
        expect(await gpu.minMax(nan)).toEqual({ min: Infinity, max: -Infinity });
        gpu.destroy();
      }
    }
  });
});

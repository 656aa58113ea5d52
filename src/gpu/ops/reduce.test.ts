/**
 * Reductions on the GPU vs the reference: every op of src/gpu/ops/reduce.ts against reduce.cpu.ts at odd sizes and with tensors
 * split into several chunks. Tolerances are stated per op; "exact" means bit-identical.
 */
import { describe, expect, it } from 'vitest';
import { type Tensor } from '../backend.ts';
import { createGpuBackend } from '../gpu-backend.ts';
import { ctx, cpu, LENGTHS, CHUNKINGS, SHAPES_2D, expectClose, expectSameBits, F32_EPS, randomValues, numel, release, useGpuBackends } from './testing.testutil.ts';

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

describe('softmaxKlRows (arcee_fusion importance)', () => {
  /** KL(P‖Q) of one row, directly as Σ P·ln(P/Q) in f64: independent of the op's formula. */
  function directKl(a: Float32Array, b: Float32Array, start: number, n: number, eps: number): number {
    const soft = (x: Float32Array) => {
      let m = -Infinity;
      for (let j = start; j < start + n; j++) m = Math.max(m, x[j]);
      let s = 0;
      for (let j = start; j < start + n; j++) s += Math.exp(x[j] - m);
      return Array.from({ length: n }, (_, j) => Math.exp(x[start + j] - m) / s + eps);
    };
    const p = soft(a);
    const q = soft(b);
    return p.reduce((sum, pj, j) => sum + pj * Math.log(pj / q[j]), 0);
  }

  it('reference = the direct f64 sum, for far and for nearly equal rows', async () => {
    for (const [rows, rowLen] of [[1, 7], [5, 257], [3, 1000]]) {
      const n = rows * rowLen;
      const a = randomValues(n, 31 + n, 2);
      const far = randomValues(n, 37 + n, 2);
      const near = Float32Array.from(a, (v, i) => v + 1e-3 * far[i]);
      for (const b of [far, near]) {
        const got = await cpu.softmaxKlRows(cpu.fromArray(a, [rows, rowLen]), cpu.fromArray(b, [rows, rowLen]), rowLen, 1e-8);
        expect(got.length).toBe(rows);
        for (let r = 0; r < rows; r++) {
          const want = directKl(a, b, r * rowLen, rowLen, 1e-8);
          expect(want).toBeGreaterThan(0);
          expect(Math.abs(got[r] - want), `rows=${rows} len=${rowLen} row ${r}`).toBeLessThanOrEqual(1e-8 * want + 1e-18);
        }
      }
    }
  });

  it('GPU = reference within 1e-4 relative (f32 terms, all ≥ 0), rows across chunks, both block sizes', async () => {
    for (const [reduceBlock, chunk] of [[4096, undefined], [4096, 777], [65536, 777]] as const) {
      {
        const gpu = createGpuBackend(ctx, { maxChunkElements: chunk, reduceBlock });
        // Rows of up to 256 entries take the one-thread-per-block kernels, longer ones a workgroup per block.
        for (const shape of [[7], [4099], [15, 17], [60, 37], [40, 1000], [3, 4099]]) {
          const n = numel(shape);
          const rowLen = shape[shape.length - 1];
          const a = randomValues(n, 41 + n, 3);
          const noise = randomValues(n, 43 + n);
          // Far apart, nearly equal (where the direct f32 sum cancels), and one huge gap (p ≫ q).
          const cases = [randomValues(n, 47 + n, 3), Float32Array.from(a, (v, i) => v + 2e-4 * noise[i]), Float32Array.from(a, (v, i) => (i % rowLen === 0 ? v - 40 : v))];
          for (const [k, b] of cases.entries()) {
            const [ga, ca] = [await gpu.fromArray(a, shape), cpu.fromArray(a, shape)];
            const [gb, cb] = [await gpu.fromArray(b, shape), cpu.fromArray(b, shape)];
            const got = await gpu.softmaxKlRows(ga, gb, rowLen, 1e-8);
            const want = await cpu.softmaxKlRows(ca, cb, rowLen, 1e-8);
            expect(got.length).toBe(want.length);
            for (let r = 0; r < want.length; r++) {
              expect(Math.abs(got[r] - want[r]), `shape=[${shape}] chunk=${chunk} block=${reduceBlock} case ${k} row ${r}: ${got[r]} vs ${want[r]}`).toBeLessThanOrEqual(1e-4 * want[r] + 1e-12);
            }
            gpu.release(ga);
            gpu.release(gb);
            release(ca, cb);
          }
        }
        gpu.destroy();
      }
    }
  });

  it('refuses a row length that does not divide the tensor', async () => {
    const x = cpu.fromArray(new Float32Array(10), [10]);
    await expect(cpu.softmaxKlRows(x, x, 3, 1e-8)).rejects.toThrow(/row length 3 does not divide 10 elements/);
  });
});

describe('rescaleL1 (DARE/DELLA rescale on the device)', () => {
  /** kept: x with about half its entries zeroed (what a keep-mask leaves). */
  function keptOf(x: Float32Array, seed: number): Float32Array {
    const r = randomValues(x.length, seed);
    return Float32Array.from(x, (v, i) => (r[i] > 0 ? v : 0));
  }

  it('GPU = reference within 4 f32 ulps of the factor, every chunking and block size, more partial sums than threads', async () => {
    // 65537 elements in blocks of 4096 over chunks of 777: hundreds of partial sums per norm.
    const shapes = [[1], [7], [257], [4099], [65537], [40, 1000], [3, 4099]];
    for (const [reduceBlock, chunk] of [[4096, undefined], [4096, 777], [65536, 1000]] as const) {
      const gpu = createGpuBackend(ctx, { maxChunkElements: chunk, reduceBlock });
      for (const shape of shapes) {
        const n = numel(shape);
        const delta = randomValues(n, 51 + n, 0.01);
        const kept = keptOf(delta, 53 + n);
        const [gd, cd] = [await gpu.fromArray(delta, shape), cpu.fromArray(delta, shape)];
        const [gk, ck] = [await gpu.fromArray(kept, shape), cpu.fromArray(kept, shape)];
        const got = await gpu.read(await gpu.rescaleL1(gk, gd, 1e-7));
        const want = await cpu.read(await cpu.rescaleL1(ck, cd, 1e-7));
        expect(got.length).toBe(n);
        const [before, after] = [await cpu.sumAbs(cd), await cpu.sumAbs(ck)];
        const factor = before >= 1e-7 && after >= 1e-7 ? before / after : 1;
        if (n > 100) expect(factor).toBeGreaterThan(1.5);
        const what = `shape=[${shape}] chunk=${chunk} block=${reduceBlock}`;
        expectClose(got, want, (i) => 4 * F32_EPS * Math.abs(want[i]), what);
        expectClose(want, Float32Array.from(kept, (v) => v * factor), (i) => 2 * F32_EPS * Math.abs(want[i]), `${what} (reference vs f64 factor)`);
        [gd, gk].forEach((t) => gpu.release(t));
        release(cd, ck);
      }
      gpu.destroy();
    }
  });

  it('norms below eps (or NaN) leave x as it is; nothing is read back', async () => {
    const gpu = createGpuBackend(ctx, { maxChunkElements: 777 });
    const x = Float32Array.from({ length: 1001 }, (_, i) => (i % 3 ? 1e-9 : -2e-9));
    const big = Float32Array.from({ length: 1001 }, (_, i) => i - 500);
    const withNan = Float32Array.from(big, (v, i) => (i === 600 ? NaN : v));
    const cases: [string, Float32Array, Float32Array, Float32Array][] = [
      // Σ|x| ≈ 1.3e-6 ≥ 1e-7 but the reference is 0: factor 1.
      ['reference norm 0', x, new Float32Array(1001), x],
      ['kept norm below eps', Float32Array.from(x, (v) => v / 100), big, Float32Array.from(x, (v) => v / 100)],
      ['NaN in the reference', big, withNan, big],
    ];
    const mapAsync = GPUBuffer.prototype.mapAsync;
    let maps = 0;
    for (const [what, kept, reference, want] of cases) {
      const [gk, gr] = [await gpu.fromArray(kept, [1001]), await gpu.fromArray(reference, [1001])];
      GPUBuffer.prototype.mapAsync = function (this: GPUBuffer, ...args: Parameters<GPUBuffer['mapAsync']>) {
        maps++;
        return mapAsync.apply(this, args);
      };
      let out;
      try {
        out = await gpu.rescaleL1(gk, gr, 1e-7);
      } finally {
        GPUBuffer.prototype.mapAsync = mapAsync;
      }
      expectSameBits(await gpu.read(out), want, what);
      expectSameBits(await cpu.read(await cpu.rescaleL1(cpu.fromArray(kept, [1001]), cpu.fromArray(reference, [1001]), 1e-7)), want, `${what} (reference)`);
      [gk, gr, out].forEach((t) => gpu.release(t));
    }
    expect(maps).toBe(0);
    gpu.destroy();
  });
});

/**
 * Sign election on the GPU vs the reference: every op of src/gpu/ops/elect.ts against elect.cpu.ts at odd sizes and with tensors
 * split into several chunks. Tolerances are stated per op; "exact" means bit-identical.
 */
import { describe, expect, it } from 'vitest';
import { cpu, gpuFor, randomValues, pair, expectClose, F32_EPS, release, useGpuBackends } from './testing.testutil.ts';

useGpuBackends();

describe('signElect vs CPU', () => {
  // Same f32 sums in the same order; the normalize division may be off by 2.5 ulp on a GPU
  // (WGSL's f32 division accuracy), so allow 4 ulp of the result.
  it('1 to 6 tensors (fused and multi-pass), normalize on and off, negative weights', async () => {
    for (const chunk of [undefined, 777]) {
      const gpu = gpuFor(chunk);
      for (const [n, count] of [
        [1, 1],
        [7, 2],
        [257, 3],
        [1000, 4],
        [4099, 5],
        [65537, 6],
      ]) {
        const weights = [1, -0.5, 2, 0.75, 1.25, 3].slice(0, count);
        const xs = await Promise.all(weights.map((_, k) => pair(chunk, randomValues(n, n * 3 + k), [n])));
        // Votes that cancel exactly: element 0 sums to 0 (majority +1 by the >= rule).
        for (const normalize of [true, false]) {
          const gt = await gpu.signElect(xs.map(([g]) => g), weights, normalize);
          const ct = await cpu.signElect(xs.map(([, c]) => c), weights, normalize);
          const want = await cpu.read(ct);
          expectClose(await gpu.read(gt), want, (i) => 4 * F32_EPS * Math.abs(want[i]), `n=${n} count=${count} normalize=${normalize} chunk=${chunk}`);
          release(gt, ct);
        }
        release(...xs.flat());
      }
    }
  });

  it('elects +1 on a tie and never counts zeros (hand-computed)', async () => {
    const gpu = gpuFor(undefined);
    // element 0: +1, -1 tie -> majority +1, only +1 agrees: mixed 1, divisor w0 = 2 -> 0.5
    // element 1: 0, -3 -> majority -1: mixed -3, divisor w1 = 4 -> -0.75
    // element 2: 0, 0 -> nothing agrees: 0 / 1
    const a = await gpu.fromArray([1, 0, 0], [3]);
    const b = await gpu.fromArray([-1, -3, 0], [3]);
    const r = await gpu.signElect([a, b], [2, 4], true);
    expect(Array.from(await gpu.read(r))).toEqual([0.5, -0.75, 0]);
    const m = await gpu.signElect([a, b], [2, 4], false);
    expect(Array.from(await gpu.read(m))).toEqual([1, -3, 0]);
    for (const t of [a, b, r, m]) gpu.release(t);
  });
});

/**
 * consensus_ta against a direct per-element reference of the TALL-mask consensus (Wang et al. 2024),
 * plus the constructed cases the masks must get right.
 */
import { describe, expect, it } from 'vitest';
import { consensusTa } from './consensus.ts';
import { expectClose, fineTune, randomValues, runMethod, seeded } from './test-harness.ts';

/** Plain loops: τ_MTL, each TALL mask, the count, the consensus, the result. */
function reference(base: Float32Array, xs: Float32Array[], w: number[], tall: number[], k: number, lambda: number): Float32Array {
  const out = new Float32Array(base.length);
  for (let e = 0; e < base.length; e++) {
    const d = xs.map((x) => x[e] - base[e]);
    const mtl = d.reduce((s, v, i) => s + w[i] * v, 0);
    const count = d.filter((v, i) => Math.abs(v) >= tall[i] * Math.abs(mtl - v)).length;
    out[e] = base[e] + (count >= k ? lambda * mtl : 0);
  }
  return out;
}

describe('consensus_ta', () => {
  it.each([
    [[7, 13], 2, 1, [1, 1, 1], [0.4, 0.4, 0.4]],
    [[37], 1, 0.8, [0.5, 1, 0.7], [0.2, 0.6, 0.3]],
    [[5, 11], 3, 1.2, [1, -0.5, 1], [0.3, 0.3, 0.5]],
  ])('shape %j, k %d, lambda %d matches the per-element reference', async (shape, k, lambda, w, tall) => {
    const rand = seeded(shape.reduce((a, b) => a * b, 1) + k);
    const n = shape.reduce((a, b) => a * b, 1);
    const base = randomValues(n, rand);
    const xs = w.map(() => fineTune(base, rand));
    const got = await runMethod(consensusTa, {
      shape,
      base,
      models: xs.map((values, i) => ({ values, params: { weight: w[i], tall_lambda: tall[i] } })),
      params: { k, lambda },
    });
    const want = reference(base, xs, w, tall, k, lambda);
    expectClose(got, want, 1e-6, 1e-6);
    // Some entries kept and some dropped, so the test says something about the mask.
    const changed = got.filter((v, i) => v !== base[i]).length;
    expect(changed).toBeGreaterThan(0);
    if (k >= 2) expect(changed).toBeLessThan(n);
  });

  it('drops entries only one model changes (selfish) and keeps shared ones', async () => {
    const base = Float32Array.from([0, 0, 0, 0]);
    // entry 0: both models move it the same way (kept); entry 1: only model A (selfish, dropped);
    // entry 2: only model B (dropped); entry 3: nobody (catastrophic, stays at the base).
    const a = Float32Array.from([1, 2, 0, 0]);
    const b = Float32Array.from([1, 0, 3, 0]);
    const got = await runMethod(consensusTa, {
      shape: [4],
      base,
      models: [{ values: a, params: { weight: 1, tall_lambda: 0.4 } }, { values: b, params: { weight: 1, tall_lambda: 0.4 } }],
      params: { k: 2, lambda: 1 },
    });
    expect(Array.from(got)).toEqual([2, 0, 0, 0]);
  });

  it('k = 0 is plain task arithmetic', async () => {
    const rand = seeded(9);
    const base = randomValues(50, rand);
    const xs = [fineTune(base, rand), fineTune(base, rand)];
    const got = await runMethod(consensusTa, {
      shape: [50],
      base,
      models: xs.map((values) => ({ values, params: { weight: 0.5, tall_lambda: 0.4 } })),
      params: { k: 0, lambda: 1 },
    });
    expectClose(got, base.map((b, e) => b + 0.5 * (xs[0][e] - b) + 0.5 * (xs[1][e] - b)), 1e-6, 1e-6);
  });
});

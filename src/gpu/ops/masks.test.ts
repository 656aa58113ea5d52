/**
 * Mask ops on the GPU vs the reference (exact): every op of src/gpu/ops/masks.ts against masks.cpu.ts at odd sizes and with tensors
 * split into several chunks. Tolerances are stated per op; "exact" means bit-identical.
 */
import { describe, expect, it } from 'vitest';
import { hashTensorName, uniformAt, type MaskKey } from '../backend.ts';
import { createGpuBackend } from '../gpu-backend.ts';
import { ctx, cpu, gpuFor, rng, LENGTHS, CHUNKINGS, SHAPES_2D, randomValues, tiedValues, pair, numel, expectSameBits, release, useGpuBackends } from './testing.testutil.ts';

useGpuBackends();

describe('keepRandom (exact, the same mask on every chunking)', () => {
  const key: MaskKey = { seed: 42, model: 1, tensor: 'model.layers.3.mlp.down_proj.weight' };

  it('matches the CPU for p in {0, 0.3, 0.5, 0.9, 1, 1.5}', async () => {
    for (const chunk of [undefined, 777, 1000]) {
      const gpu = gpuFor(chunk);
      for (const n of LENGTHS) {
        const [g, c] = await pair(chunk, randomValues(n, n + 5), [n]);
        for (const p of [0, 0.3, 0.5, 0.9, 1, 1.5]) {
          const gt = await gpu.keepRandom(g, p, key);
          const ct = await cpu.keepRandom(c, p, key);
          expectSameBits(await gpu.read(gt), await cpu.read(ct), `n=${n} chunk=${chunk} p=${p}`);
          release(gt, ct);
        }
        release(g, c);
      }
    }
  });

  it('keeps exactly the indices whose uniformAt is below fround(p)', async () => {
    // Independent of CpuBackend: the mask of a tensor of ones against uniformAt directly.
    const n = 65537;
    const ones = new Float32Array(n).fill(1);
    const hash = hashTensorName(key.tensor);
    for (const [chunk, p, k] of [
      [777, 0.35, key],
      [1000, 0.35, key],
      [undefined, 0.7, { ...key, model: 2 }],
      [777, 0.5, { ...key, seed: 0xfffffffe }],
    ] as const) {
      const gpu = gpuFor(chunk);
      const t = await gpu.fromArray(ones, [n]);
      const m = await gpu.keepRandom(t, p, k);
      const got = await gpu.read(m);
      const h = k.tensor === key.tensor ? hash : hashTensorName(k.tensor);
      let kept = 0;
      for (let i = 0; i < n; i++) {
        const want = uniformAt(k.seed, k.model, h, i) < Math.fround(p) ? 1 : 0;
        if (got[i] !== want) expect.fail(`chunk=${chunk} p=${p} index ${i}: got ${got[i]}, want ${want}`);
        kept += want;
      }
      // And the draw is a plausible Bernoulli(p): within 5 standard deviations.
      expect(Math.abs(kept - p * n)).toBeLessThan(5 * Math.sqrt(n * p * (1 - p)));
      gpu.release(m);
      gpu.release(t);
    }
  });

  it('draws different masks for different models, tensors and seeds', async () => {
    const gpu = gpuFor(777);
    const n = 4099;
    const t = await gpu.fromArray(new Float32Array(n).fill(1), [n]);
    const masks: Float32Array[] = [];
    for (const k of [key, { ...key, model: 0 }, { ...key, tensor: 'other' }, { ...key, seed: 43 }]) {
      const m = await gpu.keepRandom(t, 0.5, k);
      masks.push(await gpu.read(m));
      gpu.release(m);
    }
    for (let a = 0; a < masks.length; a++) {
      for (let b = a + 1; b < masks.length; b++) {
        const same = masks[a].filter((v, i) => v === masks[b][i]).length;
        expect(same / n).toBeLessThan(0.6);
      }
    }
    gpu.release(t);
  });
});


describe('keepRanked / DELLA (exact)', () => {
  // The per-rank keep thresholds are computed on the host with the CPU's f32 formula for p, so
  // the GPU mask is identical to the CPU's, with no exception near u ≈ p.
  const key: MaskKey = { seed: 7, model: 2, tensor: 'model.layers.0.self_attn.q_proj.weight' };

  it('matches the CPU on 1-D and 2-D tensors, rows inside and across chunks, with ties', async () => {
    const shapes: number[][] = [[1], [7], [255], [257], [1000], [4099], ...SHAPES_2D, [300, 7]];
    for (const chunk of CHUNKINGS) {
      const gpu = gpuFor(chunk);
      for (const shape of shapes) {
        const n = numel(shape);
        for (const [kind, values] of [
          ['random', randomValues(n, n + 1)],
          ['tied', tiedValues(n, n + 2)],
        ] as const) {
          const [g, c] = await pair(chunk, values, shape);
          for (const [density, epsilon] of [
            [0.5, 0.2],
            [0.9, 0.09],
          ]) {
            const gt = await gpu.keepRanked(g, density, epsilon, key);
            const ct = await cpu.keepRanked(c, density, epsilon, key);
            expectSameBits(await gpu.read(gt), await cpu.read(ct), `${kind} shape=[${shape}] chunk=${chunk} d=${density}`);
            release(gt, ct);
          }
          release(g, c);
        }
      }
    }
  });

  it('sorts in workgroup memory (workgroupSort) with the same result', async () => {
    // The software adapter defaults to global-memory stages only; force the tiled path here.
    for (const chunk of [undefined, 777]) {
      const gpu = createGpuBackend(ctx, { maxChunkElements: chunk, workgroupSort: true });
      for (const shape of [[1], [7], [257], [300, 7], [40, 1000], [3, 4099], [2, 16411]]) {
        const n = numel(shape);
        const values = shape[0] === 40 ? tiedValues(n, 5) : randomValues(n, n + 3);
        const g = await gpu.fromArray(values, shape);
        const c = cpu.fromArray(values, shape);
        const gt = await gpu.keepRanked(g, 0.6, 0.3, key);
        const ct = await cpu.keepRanked(c, 0.6, 0.3, key);
        expectSameBits(await gpu.read(gt), await cpu.read(ct), `shape=[${shape}] chunk=${chunk}`);
        cpu.release(ct);
        cpu.release(c);
      }
      gpu.destroy();
    }
  });

  it('ranks rows of 16k+ entries and one long row', async () => {
    for (const shape of [
      [2, 16411],
      [65537],
    ]) {
      const values = randomValues(numel(shape), 99);
      const [g, c] = await pair(undefined, values, shape);
      const gt = await gpuFor(undefined).keepRanked(g, 0.4, 0.3, key);
      const ct = await cpu.keepRanked(c, 0.4, 0.3, key);
      expectSameBits(await gpuFor(undefined).read(gt), await cpu.read(ct), `shape=[${shape}]`);
      release(gt, ct, g, c);
    }
  });

  it('keeps large magnitudes more often than small ones (p rises with rank)', async () => {
    const n = 4099;
    const values = Float32Array.from({ length: n }, (_, i) => (i % 2 ? 1 : -1) * (i + 1));
    const gpu = gpuFor(1000);
    const t = await gpu.fromArray(values, [n]);
    const m = await gpu.read(await gpu.keepRanked(t, 0.5, 0.4, key));
    const lowKept = m.slice(0, n / 4).filter((v) => v !== 0).length / (n / 4);
    const highKept = m.slice((3 * n) / 4).filter((v) => v !== 0).length / (n / 4);
    // p runs from 0.1 (smallest) to 0.9 (largest): quarter averages about 0.2 and 0.8.
    expect(lowKept).toBeLessThan(0.3);
    expect(highKept).toBeGreaterThan(0.7);
  });
});


describe('keepWhere vs CPU (exact)', () => {
  it('keeps where the mask is nonzero (NaN counts, -0 does not)', async () => {
    for (const chunk of CHUNKINGS) {
      const gpu = gpuFor(chunk);
      for (const n of LENGTHS) {
        const r = rng(n);
        const mask = Float32Array.from({ length: n }, () => {
          const u = r();
          return u < 0.4 ? 0 : u < 0.45 ? -0 : u < 0.5 ? NaN : u < 0.55 ? 1e-42 : 1;
        });
        const [g, c] = await pair(chunk, randomValues(n, n), [n]);
        const [gm, cm] = await pair(chunk, mask, [n]);
        const gt = await gpu.keepWhere(g, gm);
        const ct = await cpu.keepWhere(c, cm);
        expectSameBits(await gpu.read(gt), await cpu.read(ct), `n=${n} chunk=${chunk}`);
        release(gt, ct, g, c, gm, cm);
      }
    }
  });
});

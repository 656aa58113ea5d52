/**
 * What the GPU backend itself owns: chunk layouts, uploads and reads, empty tensors, errors and
 * buffer ownership across ops. The ops are tested per family in src/gpu/ops/*.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { chunkLayout, createGpuBackend, GpuBackendError, MAX_CHUNK_BYTES } from './gpu-backend.ts';
import { ctx, cpu, gpuFor, LENGTHS, randomValues, numel, expectSameBits, release, useGpuBackends } from './ops/testing.testutil.ts';

useGpuBackends();

describe('chunk layout', () => {
  it('cuts on row boundaries when a row fits, else at the capacity', () => {
    expect(chunkLayout([40, 1000], 777)).toMatchObject({ rows: 40, rowLen: 1000, chunkLen: 777, count: 52 });
    expect(chunkLayout([15, 17], 100)).toMatchObject({ rowLen: 17, chunkLen: 85, count: 3 });
    expect(chunkLayout([65537], 777)).toMatchObject({ rows: 1, chunkLen: 777, count: 85 });
    expect(chunkLayout([0, 5], 777)).toMatchObject({ numel: 0, count: 0 });
  });

  it('chunks hold at most MAX_CHUNK_BYTES even where the limits allow 1 GiB buffers (SwiftShader fails to allocate one)', () => {
    const gpu = gpuFor(undefined);
    expect(Math.min(gpu.ctx.limits.maxStorageBufferBindingSize, gpu.ctx.limits.maxBufferSize)).toBeGreaterThanOrEqual(MAX_CHUNK_BYTES);
    expect(gpu.chunkCapacity).toBe(MAX_CHUNK_BYTES / 4);
    // A 128256×4096 embedding (2 GiB in f32) is cut on row boundaries into chunks under the cap.
    const layout = chunkLayout([128256, 4096], gpu.chunkCapacity);
    expect(layout.chunkLen * 4).toBeLessThanOrEqual(MAX_CHUNK_BYTES);
    expect(layout.chunkLen % 4096).toBe(0);
    expect(layout.count).toBe(8);
  });
});


describe('read / decode F32 round trip', () => {
  it('returns the uploaded values at every length and chunking', async () => {
    for (const chunk of [undefined, 777, 1000]) {
      for (const n of LENGTHS) {
        const values = randomValues(n, n);
        const t = await gpuFor(chunk).fromArray(values, [n]);
        expectSameBits(await gpuFor(chunk).read(t), values, `n=${n} chunk=${chunk}`);
        gpuFor(chunk).release(t);
      }
    }
  });
});


describe('empty tensors', () => {
  it('every op accepts zero elements', async () => {
    const gpu = gpuFor(777);
    const key = { seed: 1, model: 0, tensor: 'e' };
    for (const shape of [[0], [0, 5], [5, 0]]) {
      const x = await gpu.decode(new Uint8Array(0), 'BF16', shape);
      const outs = [
        await gpu.lincomb([{ x, coef: 2 }], 1),
        await gpu.keepRankBand(x, 0, 0),
        await gpu.keepRandom(x, 0.5, key),
        await gpu.keepRanked(x, 0.5, 0.1, key),
        await gpu.keepWhere(x, x),
        await gpu.signElect([x, x], [1, 1], true),
        await gpu.nearswap(x, x, 0.5),
      ];
      for (const t of outs) expect((await gpu.read(t)).length).toBe(0);
      expect((await gpu.encode(x, 'F16')).length).toBe(0);
      expect(Array.from(await gpu.gram([x, x]))).toEqual([0, 0, 0, 0]);
      expect(await gpu.sumAbs(x)).toBe(0);
      expect((await gpu.gramRows([x])).length).toBe(shape.length >= 2 ? shape[0] : 1);
      for (const t of [x, ...outs]) gpu.release(t);
    }
  });
});


describe('errors and ownership', () => {
  it('rejects bad input with GpuBackendError naming the op and the reason', async () => {
    const gpu = gpuFor(777);
    await expect(gpu.decode(new Uint8Array(6), 'F32', [2])).rejects.toThrow(/decode: 6 bytes for F32 shape \[2\], expected 8/);
    const a = await gpu.fromArray([1, 2, 3, 4], [2, 2]);
    const b = await gpu.fromArray([1, 2, 3], [3]);
    const c = await gpu.fromArray([1, 2, 3, 4], [4]);
    await expect(gpu.lincomb([{ x: a, coef: 1 }, { x: b, coef: 1 }])).rejects.toThrow(GpuBackendError);
    await expect(gpu.lincomb([{ x: a, coef: 1 }, { x: b, coef: 1 }])).rejects.toThrow(/term 1 has 3 elements/);
    await expect(gpu.lincomb([{ x: a, coef: new Float32Array(3) }])).rejects.toThrow(/3 row coefficients for 2 rows/);
    await expect(gpu.signElect([a], [1, 2], true)).rejects.toThrow(/2 weights for 1 tensors/);
    await expect(gpu.keepWhere(a, b)).rejects.toThrow(/mask has 3 elements/);
    await expect(gpu.gram([])).rejects.toThrow(/no tensors/);
    // Same element count, different rows: chunks would not line up.
    const big1 = await gpu.fromArray(new Float32Array(1000), [10, 100]);
    const big2 = await gpu.fromArray(new Float32Array(1000), [1000]);
    await expect(gpu.nearswap(big1, big2, 0.5)).rejects.toThrow(/share their row layout/);
    await expect(gpu.read(cpu.fromArray([1], [1]))).rejects.toThrow(/is not a GPU tensor/);
    const other = gpuFor(1000);
    await expect(other.read(a)).rejects.toThrow(/released or belongs to another GpuBackend/);
    gpu.release(a);
    gpu.release(a); // twice: no-op
    await expect(gpu.read(a)).rejects.toThrow(/released/);
    for (const t of [b, c, big1, big2]) gpu.release(t);
  });

  it('frees every buffer it made: release, failed ops and destroy leave none', async () => {
    const before = ctx.inUseBuffers;
    const gpu = createGpuBackend(ctx, { maxChunkElements: 777 });
    const n = 4099;
    const x = await gpu.fromArray(randomValues(n, 1), [n]);
    const y = await gpu.fromArray(randomValues(n, 2), [n]);
    const key = { seed: 1, model: 0, tensor: 't' };
    const outs = [
      await gpu.lincomb([{ x, coef: 1 }, { x: y, coef: 2 }], 1),
      await gpu.keepRankBand(x, 10, 4000),
      await gpu.keepRandom(x, 0.5, key),
      await gpu.keepRanked(x, 0.5, 0.1, key),
      await gpu.keepWhere(x, y),
      await gpu.signElect([x, y, x, y, x], [1, 2, 3, 4, 5], true),
      await gpu.nearswap(x, y, 0.1),
      await gpu.decode(await gpu.encode(x, 'BF16'), 'BF16', [n]),
    ];
    await gpu.gram([x, y]);
    await gpu.gramRows([x, y]);
    await gpu.sumAbs(x);
    await gpu.encode(x, 'F16');
    // 6 chunks per tensor; temporaries (params, staging, scratch) are back in the pool.
    expect(gpu.liveTensors).toBe(10);
    expect(ctx.inUseBuffers - before).toBe(10 * 6);
    for (const t of outs) gpu.release(t);
    expect(ctx.inUseBuffers - before).toBe(2 * 6);
    await expect(gpu.lincomb([{ x, coef: new Float32Array(2) }])).rejects.toThrow();
    expect(ctx.inUseBuffers - before).toBe(2 * 6);
    gpu.destroy();
    gpu.destroy(); // safe twice
    expect(ctx.inUseBuffers).toBe(before);
    expect(gpu.liveTensors).toBe(0);
    await expect(gpu.read(x)).rejects.toThrow(/destroyed/);
  });
});

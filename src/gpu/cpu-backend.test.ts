import { describe, expect, it } from 'vitest';
import { encodeFloats } from '../core/dtype.ts';
import { hashTensorName, uniformAt, type Tensor } from './backend.ts';
import { CpuBackend, CpuBackendError } from './cpu-backend.ts';

async function values(be: CpuBackend, t: Tensor): Promise<number[]> {
  return Array.from(await be.read(t));
}

describe('CpuBackend codecs', () => {
  it('decodes BF16 / F16 / F32 bytes and encodes back', async () => {
    const be = new CpuBackend();
    // BF16 0x3FC0 = 1.5, 0xC000 = -2; F16 0x3C00 = 1, 0xC500 = -5.
    const bf = await be.decode(new Uint8Array([0xc0, 0x3f, 0x00, 0xc0]), 'BF16', [2]);
    expect(await values(be, bf)).toEqual([1.5, -2]);
    const h = await be.decode(new Uint8Array([0x00, 0x3c, 0x00, 0xc5]), 'F16', [2]);
    expect(await values(be, h)).toEqual([1, -5]);
    const f = await be.decode(encodeFloats(new Float32Array([0.1, -3]), 'F32'), 'F32', [2]);
    expect(await values(be, f)).toEqual([Math.fround(0.1), -3]);
    // 1 + 2^-8 is halfway between BF16 1 and 1 + 2^-7: ties to even -> 1 (0x3F80).
    const t = be.fromArray([1 + 2 ** -8, NaN], [2]);
    expect(Array.from(await be.encode(t, 'BF16'))).toEqual([0x80, 0x3f, 0xc0, 0x7f]);
  });

  it('rejects a byte count that does not match the shape', async () => {
    const be = new CpuBackend();
    await expect(be.decode(new Uint8Array(6), 'F32', [2])).rejects.toThrow(CpuBackendError);
    await expect(be.decode(new Uint8Array(6), 'F32', [2])).rejects.toThrow(/6 bytes for F32 shape \[2\], expected 8/);
  });
});

describe('CpuBackend.lincomb', () => {
  it('accumulates in f32, term by term from the first', async () => {
    const be = new CpuBackend();
    const one = be.fromArray([1], [1]);
    // f64 gives 1; f32 loses the 1 next to 1e8 (f32 spacing at 1e8 is 8).
    const r = await be.lincomb([
      { x: one, coef: 1e8 },
      { x: one, coef: 1 },
      { x: one, coef: -1e8 },
    ]);
    expect(await values(be, r)).toEqual([0]);
    // The coefficient itself is f32: 0.1 -> fround(0.1).
    const c = await be.lincomb([{ x: one, coef: 0.1 }]);
    expect(await values(be, c)).toEqual([Math.fround(0.1)]);
  });

  it('adds the bias and applies per-row coefficients', async () => {
    const be = new CpuBackend();
    const a = be.fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = be.fromArray([10, 20, 30, 40, 50, 60], [2, 3]);
    const r = await be.lincomb(
      [
        { x: a, coef: new Float32Array([2, -1]) },
        { x: b, coef: 0.5 },
      ],
      1,
    );
    expect(await values(be, r)).toEqual([8, 15, 22, 17, 21, 25]);
    expect(r.shape).toEqual([2, 3]);
  });

  it('rejects mismatched sizes and wrong row-coefficient counts', async () => {
    const be = new CpuBackend();
    const a = be.fromArray([1, 2, 3, 4], [2, 2]);
    const b = be.fromArray([1, 2, 3], [3]);
    await expect(be.lincomb([{ x: a, coef: 1 }, { x: b, coef: 1 }])).rejects.toThrow(/term 1 has 3 elements/);
    await expect(be.lincomb([{ x: a, coef: new Float32Array(3) }])).rejects.toThrow(/3 row coefficients for 2 rows/);
  });
});

describe('CpuBackend reductions', () => {
  it('gram, gramRows and sumAbs match hand sums', async () => {
    const be = new CpuBackend();
    const a = be.fromArray([1, 2, 3, 4], [2, 2]);
    const b = be.fromArray([-1, 0, 2, 1], [2, 2]);
    expect(Array.from(await be.gram([a, b]))).toEqual([30, 9, 9, 6]);
    // row 0: a·a = 5, a·b = -1, b·b = 1; row 1: a·a = 25, a·b = 10, b·b = 5
    expect(Array.from(await be.gramRows([a, b]))).toEqual([5, -1, -1, 1, 25, 10, 10, 5]);
    expect(await be.sumAbs(b)).toBe(4);
    // 1-D tensors are one row.
    const v = be.fromArray([3, 4], [2]);
    expect(Array.from(await be.gramRows([v]))).toEqual([25]);
  });
});

describe('CpuBackend.keepRankBand', () => {
  it('keeps ranks [lo, hi) of |x|, equal magnitudes ranked by index', async () => {
    const be = new CpuBackend();
    // |x| = 2, 1, 2, 3, 1, 0 -> ascending order by (|x|, index): 5, 1, 4, 0, 2, 3
    const x = be.fromArray([2, -1, -2, 3, 1, 0], [6]);
    const top2 = await be.keepRankBand(x, 4, 6);
    expect(await values(be, top2)).toEqual([0, 0, -2, 3, 0, 0]);
    const top3 = await be.keepRankBand(x, 3, 6);
    expect(await values(be, top3)).toEqual([2, 0, -2, 3, 0, 0]);
    const middle = await be.keepRankBand(x, 1, 3);
    expect(await values(be, middle)).toEqual([0, -1, 0, 0, 1, 0]);
    const none = await be.keepRankBand(x, 3, 3);
    expect(await values(be, none)).toEqual([0, 0, 0, 0, 0, 0]);
  });
});

describe('CpuBackend random masks', () => {
  const key = { seed: 7, model: 1, tensor: 'model.layers.0.mlp.up_proj.weight' };

  it('keepRandom keeps i iff uniformAt(seed, model, hash, i) < fround(p)', async () => {
    const be = new CpuBackend();
    const n = 64;
    const x = be.fromArray(Array.from({ length: n }, (_, i) => i + 1), [8, 8]);
    const kept = await values(be, await be.keepRandom(x, 0.3, key));
    const h = hashTensorName(key.tensor);
    const want = Array.from({ length: n }, (_, i) =>
      uniformAt(key.seed, key.model, h, i) < Math.fround(0.3) ? i + 1 : 0,
    );
    expect(kept).toEqual(want);
    expect(kept.some((v) => v === 0) && kept.some((v) => v !== 0)).toBe(true);
    expect(await values(be, await be.keepRandom(x, 1, key))).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(await values(be, await be.keepRandom(x, 0, key))).toEqual(new Array(n).fill(0));
    // A different model index draws a different mask.
    const other = await values(be, await be.keepRandom(x, 0.3, { ...key, model: 2 }));
    expect(other).not.toEqual(kept);
  });

  it('keepRanked uses per-row magnitude ranks for the keep probability', async () => {
    const be = new CpuBackend();
    // Two rows of 4. Row 0 |x| ascending: idx 3 (0.5), 1 (1), 2 (2), 0 (3) -> ranks 3,1,2,0.
    // Row 1 |x| = 4,4,1,1 -> ascending: 6, 7, 4, 5 -> ranks 2,3,0,1.
    const data = [3, -1, 2, 0.5, 4, -4, 1, -1];
    const ranks = [3, 1, 2, 0, 2, 3, 0, 1];
    const x = be.fromArray(data, [2, 4]);
    const h = hashTensorName(key.tensor);
    for (const [density, eps] of [
      [0.5, 0.2],
      [0.6, 0.35],
      [0.3, 0.1],
    ]) {
      const kept = await values(be, await be.keepRanked(x, density, eps, key));
      const want = data.map((v, i) => {
        // p = (density - eps) + 2 eps * rank / 3 in f32
        const low = Math.fround(Math.fround(density) - Math.fround(eps));
        const p = Math.fround(low + Math.fround(Math.fround(2 * Math.fround(eps)) * Math.fround(ranks[i] / 3)));
        return uniformAt(key.seed, key.model, h, i) < p ? v : 0;
      });
      expect(kept).toEqual(want);
    }
  });

  it('keepRanked keeps large magnitudes more often (statistics on one long row)', async () => {
    const be = new CpuBackend();
    const n = 20000;
    const data = Array.from({ length: n }, (_, i) => (i % 2 ? -1 : 1) * (i + 1));
    const x = be.fromArray(data, [n]);
    const kept = await values(be, await be.keepRanked(x, 0.5, 0.4, key));
    // |x| rises with index, so the rank of i is i: p(i) = 0.1 + 0.8 * i / (n - 1).
    const lowQuarter = kept.slice(0, n / 4).filter((v) => v !== 0).length / (n / 4);
    const highQuarter = kept.slice((3 * n) / 4).filter((v) => v !== 0).length / (n / 4);
    expect(lowQuarter).toBeGreaterThan(0.17);
    expect(lowQuarter).toBeLessThan(0.23); // expected 0.2
    expect(highQuarter).toBeGreaterThan(0.77);
    expect(highQuarter).toBeLessThan(0.83); // expected 0.8
  });
});

describe('CpuBackend.keepWhere / signElect / nearswap', () => {
  it('keepWhere keeps entries where the mask is non-zero', async () => {
    const be = new CpuBackend();
    const x = be.fromArray([1, 2, 3, 4], [4]);
    const m = be.fromArray([1, 0, -2, 0], [4]);
    expect(await values(be, await be.keepWhere(x, m))).toEqual([1, 0, 3, 0]);
  });

  it('signElect follows the majority of the weighted deltas', async () => {
    const be = new CpuBackend();
    // element 0: 1 + 2 - 4 = -1 -> majority -1: only -4 kept, divisor w2
    // element 1: 3 + 0 - 1 = 2 -> +1: only 3 kept (zero never matches)
    // element 2: 0 + 0 + 0 = 0 -> +1: nothing kept, divisor 0 -> 1
    // element 3: -2 + 2 + 0 = 0 -> +1: 2 kept
    const a = be.fromArray([1, 3, 0, -2], [4]);
    const b = be.fromArray([2, 0, 0, 2], [4]);
    const c = be.fromArray([-4, -1, 0, 0], [4]);
    const w = [0.5, 0.25, 2];
    expect(await values(be, await be.signElect([a, b, c], w, false))).toEqual([-4, 3, 0, 2]);
    expect(await values(be, await be.signElect([a, b, c], w, true))).toEqual([-4 / 2, 3 / 0.5, 0, 2 / 0.25]);
  });

  it('nearswap moves toward the model only where it is close to the base', async () => {
    const be = new CpuBackend();
    const b = be.fromArray([0, 0, 1, 5], [4]);
    const x = be.fromArray([0.1, 4, 1, 3], [4]);
    // |b-x| = 0.1, 4, 0, 2; t = 0.5 -> w = 1 (clamped), 0.125, 1 (t/1e-6 clamped), 0.25
    const r = await values(be, await be.nearswap(b, x, 0.5));
    const f = Math.fround;
    expect(r).toEqual([f(0.1), 0.5, 1, f(0.25 * 3 + 0.75 * 5)]);
  });
});

describe('CpuBackend ownership', () => {
  it('counts live tensors, releases idempotently, rejects released or foreign tensors', async () => {
    const be = new CpuBackend();
    const other = new CpuBackend();
    const a = be.fromArray([1, 2], [2]);
    const b = await be.lincomb([{ x: a, coef: 2 }]);
    expect(be.liveTensors).toBe(2);
    be.release(b);
    be.release(b);
    expect(be.liveTensors).toBe(1);
    await expect(be.read(b)).rejects.toThrow(/released/);
    const foreign = other.fromArray([1, 2], [2]);
    await expect(be.sumAbs(foreign)).rejects.toThrow(CpuBackendError);
    be.destroy();
    be.destroy();
    expect(be.liveTensors).toBe(0);
    await expect(be.read(a)).rejects.toThrow(CpuBackendError);
  });
});

/**
 * Selection by magnitude rank on the GPU vs the reference (exact): every op of src/gpu/ops/select.ts against select.cpu.ts at odd sizes and with tensors
 * split into several chunks. Tolerances are stated per op; "exact" means bit-identical.
 */
import { describe, expect, it } from 'vitest';
import { cpu, gpuFor, LENGTHS, CHUNKINGS, randomValues, tiedValues, pair, numel, expectSameBits, release, useGpuBackends } from './testing.testutil.ts';

useGpuBackends();

describe('keepRankBand vs CPU (exact)', () => {
  function bands(n: number): [number, number][] {
    // The largest size runs 8 histogram passes over ~85 chunks per band: test fewer bands there.
    if (n > 5000) return [[n - Math.floor(n / 3), n], [Math.floor(n / 7), n - Math.floor(n / 5)], [3, 9]];
    return [
      [0, n],
      [n - Math.max(1, Math.floor(n / 3)), n], // top-k
      [0, Math.floor(n / 2)],
      [Math.floor(n / 7), n - Math.floor(n / 5)], // breadcrumbs-like band
      [Math.floor(n / 2), Math.floor(n / 2)], // empty
      [-3, n + 10], // clamped
      [1.7, n - 0.5], // fractional bounds floor
    ];
  }

  it('keeps exactly hi - lo entries, ties broken by index, random and tied data', async () => {
    for (const chunk of CHUNKINGS) {
      const gpu = gpuFor(chunk);
      for (const n of LENGTHS) {
        for (const [kind, values] of [
          ['random', randomValues(n, 3 * n)],
          ['tied', tiedValues(n, n)],
        ] as const) {
          const [g, c] = await pair(chunk, values, [n]);
          for (const [lo, hi] of bands(n)) {
            const what = `${kind} n=${n} chunk=${chunk} band=[${lo}, ${hi})`;
            const gt = await gpu.keepRankBand(g, lo, hi);
            const ct = await cpu.keepRankBand(c, lo, hi);
            const got = await gpu.read(gt);
            expectSameBits(got, await cpu.read(ct), what);
            if (kind === 'tied') {
              const from = Math.max(0, Math.min(n, Math.floor(lo)));
              const to = Math.max(from, Math.min(n, Math.floor(hi)));
              expect(got.filter((v) => v !== 0).length, what).toBe(to - from);
            }
            release(gt, ct);
          }
          release(g, c);
        }
      }
    }
  });

  it('orders subnormals, infinities and signed zeros by magnitude', async () => {
    const gpu = gpuFor(777);
    const n = 2000;
    const values = randomValues(n, 9);
    const specials = [Infinity, -Infinity, 1e-45, -1e-45, 1e-40, 3e38, -3e38, 0, -0, 1.1754942e-38];
    specials.forEach((v, k) => (values[k * 150 + 3] = v));
    const [g, c] = await pair(777, values, [n]);
    for (const [lo, hi] of [
      [5, 1990],
      [0, 12],
      [1998, 2000],
    ]) {
      const gt = await gpu.keepRankBand(g, lo, hi);
      const ct = await cpu.keepRankBand(c, lo, hi);
      expectSameBits(await gpu.read(gt), await cpu.read(ct), `band [${lo}, ${hi})`);
      release(gt, ct);
    }
    release(g, c);
  });

  it('handles a 2-D tensor as one flat ranking', async () => {
    const shape = [40, 1000];
    const values = tiedValues(numel(shape), 77);
    const [g, c] = await pair(777, values, shape);
    const gt = await gpuFor(777).keepRankBand(g, 12345, 30001);
    const ct = await cpu.keepRankBand(c, 12345, 30001);
    expectSameBits(await gpuFor(777).read(gt), await cpu.read(ct), '[40, 1000]');
    expect(gt.shape).toEqual(shape);
    release(gt, ct, g, c);
  });
});

describe('countKeyDigits vs CPU (exact)', () => {
  it('counts digits of |x| bits under a prefix, per selector, across chunks', async () => {
    for (const chunk of CHUNKINGS) {
      for (const n of [1, 1000, 4099]) {
        const values = randomValues(n, 31 + n);
        const [g, c] = await pair(chunk, values, [n]);
        // Top digit of everything; then the next digit under the most common top digit.
        const top = { prefix: 0, mask: 0, shift: 24 };
        const want = await cpu.countKeyDigits(c, [top]);
        expect(Array.from(await gpuFor(chunk).countKeyDigits(g, [top])), `n ${n}`).toEqual(Array.from(want));
        expect(want.reduce((a, b) => a + b, 0)).toBe(n);
        const digit = want.indexOf(Math.max(...want));
        const next = { prefix: (digit << 24) >>> 0, mask: 0xff000000, shift: 16 };
        const got2 = await gpuFor(chunk).countKeyDigits(g, [top, next]);
        const want2 = await cpu.countKeyDigits(c, [top, next]);
        expect(Array.from(got2)).toEqual(Array.from(want2));
        expect(want2.subarray(256).reduce((a, b) => a + b, 0)).toBe(want[digit]);
        release(g, c);
      }
    }
  });

  it('rejects zero or more than two selectors', async () => {
    const [g, c] = await pair(undefined, new Float32Array([1, 2]), [2]);
    await expect(gpuFor(undefined).countKeyDigits(g, [])).rejects.toThrow(/0 selectors/);
    await expect(cpu.countKeyDigits(c, [1, 2, 3].map(() => ({ prefix: 0, mask: 0, shift: 0 })))).rejects.toThrow(/3 selectors/);
    release(g, c);
  });
});

describe('keepRankBand stays on the GPU', () => {
  it('selects and masks without reading anything back (no buffer is mapped)', async () => {
    const n = 4099;
    const values = tiedValues(n, 77); // ties force the index passes too
    const [g, c] = await pair(777, values, [n]);
    const mapAsync = GPUBuffer.prototype.mapAsync;
    let maps = 0;
    GPUBuffer.prototype.mapAsync = function (this: GPUBuffer, ...args: Parameters<GPUBuffer['mapAsync']>) {
      maps++;
      return mapAsync.apply(this, args);
    };
    let kept;
    try {
      kept = await gpuFor(777).keepRankBand(g, 1000, 3001);
    } finally {
      GPUBuffer.prototype.mapAsync = mapAsync;
    }
    expect(maps).toBe(0);
    const want = await cpu.keepRankBand(c, 1000, 3001);
    expectSameBits(await gpuFor(777).read(kept), await cpu.read(want), 'band 1000..3001');
    release(g, c, kept, want);
  });
});

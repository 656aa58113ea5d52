/**
 * The analysis reductions: the TypeScript reference against hand-computed values, and the WGSL
 * kernels and the fast CPU backend's loops against the reference at odd sizes, with tensors cut into
 * many chunks. Counts and histograms must be identical; the elected-contribution norms agree within
 * f32 summation error (GPU: f32 block sums of 4096 added in f64, division within 2.5 ulp), stated as
 * rel 1e-5; on the fast CPU backend they are identical for one chunk of CHUNK entries and within f64
 * rounding of the chunk sums above (rel 1e-12).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext } from '../context.ts';
import { CpuBackend } from '../cpu-backend.ts';
import { createGpuBackend, type GpuBackend } from '../gpu-backend.ts';
import { nodeGpu } from '../node-gpu.ts';
import { BIN, BIN_COUNT, binEdges, binOf, BINS_PER_OCTAVE, MIN_EXPONENT, subBinMantissas } from './bins.ts';
import { CHUNK, FastCpuBackend } from '../cpu-fast/fast-backend.ts';
import { nodeWorkers } from '../cpu-fast/node-threads.ts';
import type { Tensor } from '../backend.ts';
import { CODE_TABLE_MAX_MODELS, FastAnalysisOps } from './fast-ops.ts';
import { GpuAnalysisOps } from './gpu-ops.ts';
import { AnalysisOpsError, pairIndex } from './ops.ts';
import { analysisOpsFor } from './ops-for.ts';
import { electedContributionNormsSqOf, magnitudeHistogramOf, ReferenceAnalysisOps, signCountsOf } from './reference-ops.ts';
import { seeded } from '../../../tests/helpers/seeded.ts';

const rng = seeded;

/** Mixed magnitudes over many octaves, with zeros, -0, subnormals, Inf and NaN sprinkled in. */
function awkwardValues(n: number, seed: number, sparsity = 0.1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = r();
    if (u < sparsity) out[i] = 0;
    else if (u < sparsity + 0.01) out[i] = -0;
    else if (u < sparsity + 0.012) out[i] = (r() < 0.5 ? -1 : 1) * 1e-40; // subnormal
    else if (u < sparsity + 0.013) out[i] = [Infinity, -Infinity, NaN][Math.floor(r() * 3)];
    else out[i] = (r() < 0.5 ? -1 : 1) * 2 ** (-36 + r() * 40);
  }
  return out;
}

describe('histogram bins', () => {
  it('puts each edge in its own bin and the value just below it in the previous one', () => {
    const edges = binEdges();
    expect(edges[0]).toBe(2 ** MIN_EXPONENT);
    for (let k = 1; k < edges.length - 1; k++) {
      expect(binOf(edges[k], edges)).toBe(BIN.firstRegular + k);
      const below = new Float32Array([edges[k]]);
      new Uint32Array(below.buffer)[0]--; // the f32 just below the edge
      expect(binOf(below[0], edges)).toBe(BIN.firstRegular + k - 1);
    }
    expect(binOf(0, edges)).toBe(BIN.zero);
    expect(binOf(-0, edges)).toBe(BIN.zero);
    expect(binOf(1e-40, edges)).toBe(BIN.below);
    expect(binOf(4, edges)).toBe(BIN.above);
    expect(binOf(-Infinity, edges)).toBe(BIN.nonFinite);
    expect(binOf(NaN, edges)).toBe(BIN.nonFinite);
    // 1 = 2^0 starts octave 30 (k = 0 − MIN_EXPONENT); 1.5 is past 2^0.5 ≈ 1.414: sub-bin 2.
    expect(binOf(1, edges)).toBe(BIN.firstRegular + -MIN_EXPONENT * BINS_PER_OCTAVE);
    expect(binOf(-1.5, edges)).toBe(BIN.firstRegular + -MIN_EXPONENT * BINS_PER_OCTAVE + 2);
  });

  it('gives every edge of one sub-bin the same mantissa (what the kernel compares)', () => {
    const edges = binEdges();
    const mantissas = subBinMantissas();
    const view = new DataView(new ArrayBuffer(4));
    edges.slice(0, -1).forEach((e, k) => {
      view.setFloat32(0, e, true);
      const m = view.getUint32(0, true) & 0x7fffff;
      const s = k % BINS_PER_OCTAVE;
      expect(m).toBe(s === 0 ? 0 : mantissas[s - 1]);
    });
  });
});

describe('reference ops on hand-computed cases', () => {
  it('counts support, uniqueness, consensus and conflicts', () => {
    //          e:  0   1   2   3   4   5
    const a = [1, -2, 0, 3, 0, -0];
    const b = [2, 1, 0, -1, 0, 5];
    const c = [-1, 1, 4, 0, 0, 0];
    const s = signCountsOf([a, b, c]);
    expect(s.nonzero).toEqual([3, 4, 3]);
    // e2: only c; e5: only b (-0 in a is zero).
    expect(s.unique).toEqual([0, 1, 1]);
    // e4: none; e2, e5: one; e3: two (a, b); e0, e1: three.
    expect(s.consensus).toEqual([1, 2, 1, 2]);
    // e0: + + -, e1: - + +, e3: + -.
    expect(s.conflictAll).toBe(3);
    // both nonzero: ab {0,1,3}, ac {0,1}, bc {0,1}; conflicts ab {1,3}, ac {0,1}, bc {0}.
    expect(s.pairBoth).toEqual([3, 3, 2, 3, 4, 2, 2, 2, 3]);
    expect(s.pairConflict).toEqual([0, 2, 2, 2, 0, 1, 2, 1, 0]);
  });

  it('flips the signs of flipped tensors only', () => {
    const s = signCountsOf([[1, -1], [1, -1]], [false, true]);
    expect(s.pairConflict[1]).toBe(2);
    expect(s.conflictAll).toBe(2);
    expect(s.nonzero).toEqual([2, 2]);
  });

  it('bins magnitudes and finds the extremes', () => {
    const h = magnitudeHistogramOf(Float32Array.of(0, -0.5, 0.5, 3, 1e-40, NaN, -Infinity, 8));
    expect(h.counts[BIN.zero]).toBe(1);
    expect(h.counts[BIN.below]).toBe(1);
    expect(h.counts[BIN.above]).toBe(1);
    expect(h.counts[BIN.nonFinite]).toBe(2);
    expect(h.counts[binOf(0.5)]).toBe(2);
    expect(h.counts[binOf(3)]).toBe(1);
    expect(h.counts.reduce((x, y) => x + y, 0)).toBe(8);
    expect(h.minNonzero).toBe(Math.fround(1e-40));
    expect(h.max).toBe(8);
    expect(magnitudeHistogramOf([NaN]).max).toBeNull();
    expect(magnitudeHistogramOf([0, 0]).minNonzero).toBeNull();
  });

  it('splits an elected TIES merge into contributions', () => {
    // e0: total 1 + 2 - 1 = 2 > 0: a, b kept, divisor 1 + 0.5 = 1.5 → a 1/1.5, b 2/1.5.
    // e1: total -3 + 1 = -2 < 0: only a kept, divisor 1 → a -3.
    const wa = [1, -3];
    const wb = [2, 1];
    const wc = [-1, 0];
    const got = electedContributionNormsSqOf([wa, wb, wc], [1, 0.5, 2], true);
    expect(got[0]).toBeCloseTo((1 / 1.5) ** 2 + 9, 6);
    expect(got[1]).toBeCloseTo((2 / 1.5) ** 2, 6);
    expect(got[2]).toBe(0);
    const plain = electedContributionNormsSqOf([wa, wb, wc], [1, 0.5, 2], false);
    expect(plain).toEqual([1 + 9, 4, 0]);
  });
});

describe('GPU analysis ops against the reference', () => {
  let ctx: GpuContext;
  const gpus = new Map<number | undefined, GpuBackend>();
  const cpu = new CpuBackend();
  const reference = new ReferenceAnalysisOps(cpu);

  beforeAll(async () => {
    ctx = await GpuContext.create(nodeGpu());
    for (const c of [undefined, 777]) gpus.set(c, createGpuBackend(ctx, { maxChunkElements: c }));
  });

  afterAll(() => {
    for (const b of gpus.values()) b.destroy();
    ctx?.destroy();
  });

  // 4099 and 9001 span several 4096-entry blocks; with 777-element chunks every tensor here but
  // the smallest spans several chunks (and [7, 1300] has rows longer than a chunk).
  const SHAPES = [[1], [7], [257], [4099], [3, 3000], [7, 1300]].map((shape) => ({ shape, name: shape.join('×') }));

  for (const chunk of [undefined, 777]) {
    describe(`chunks of ${chunk ?? 'any size'}`, () => {
      it.each(SHAPES)('sign counts of 1, 3 and 16 tensors, shape $name', async ({ shape }) => {
        const gpu = gpus.get(chunk)!;
        const ops = new GpuAnalysisOps(gpu);
        const numel = shape.reduce((a, b) => a * b, 1);
        for (const n of [1, 3, 16]) {
          const values = Array.from({ length: n }, (_, i) => awkwardValues(numel, 100 * n + i, i % 2 ? 0.6 : 0.1));
          const flips = values.map((_, i) => i % 3 === 1);
          const ts = await Promise.all(values.map((v) => gpu.fromArray(v, shape)));
          try {
            const got = await ops.signCounts(ts, flips);
            expect(got).toEqual(signCountsOf(values, flips));
          } finally {
            for (const t of ts) gpu.release(t);
          }
        }
      });

      it.each(SHAPES)('magnitude histograms of 3 tensors, shape $name', async ({ shape }) => {
        const gpu = gpus.get(chunk)!;
        const ops = new GpuAnalysisOps(gpu);
        const numel = shape.reduce((a, b) => a * b, 1);
        const values = [awkwardValues(numel, numel), awkwardValues(numel, numel + 1, 0.9), new Float32Array(numel)];
        const ts = await Promise.all(values.map((v) => gpu.fromArray(v, shape)));
        try {
          const got = await ops.magnitudeHistograms(ts);
          expect(got).toHaveLength(3);
          got.forEach((h, k) => {
            expect(h.counts).toHaveLength(BIN_COUNT);
            expect(h, `tensor ${k}`).toEqual(magnitudeHistogramOf(values[k]));
          });
        } finally {
          for (const t of ts) gpu.release(t);
        }
      });

      it.each(SHAPES)('elected contribution norms of 5 tensors, shape $name', async ({ shape }) => {
        const gpu = gpus.get(chunk)!;
        const ops = new GpuAnalysisOps(gpu);
        const numel = shape.reduce((a, b) => a * b, 1);
        const r = rng(numel);
        const values = Array.from({ length: 5 }, () => Float32Array.from({ length: numel }, () => (r() < 0.3 ? 0 : r() * 2 - 1)));
        const weights = [1, 0.5, -0.7, 0.3, 2];
        const ts = await Promise.all(values.map((v) => gpu.fromArray(v, shape)));
        try {
          for (const normalize of [true, false]) {
            const got = await ops.electedContributionNormsSq(ts, weights, normalize);
            const want = electedContributionNormsSqOf(values, weights, normalize);
            got.forEach((g, k) => expect(Math.abs(g - want[k]), `model ${k}, normalize ${normalize}`).toBeLessThanOrEqual(1e-5 * want[k] + 1e-30));
          }
          expect(gpu.liveTensors).toBe(5);
        } finally {
          for (const t of ts) gpu.release(t);
        }
      });
    });
  }

  it('frees every buffer it makes', async () => {
    const gpu = gpus.get(777)!;
    const ops = new GpuAnalysisOps(gpu);
    const before = ctx.inUseBuffers;
    const t = await gpu.fromArray(awkwardValues(5000, 1), [5000]);
    const live = ctx.inUseBuffers;
    await ops.signCounts([t, t]);
    await ops.magnitudeHistograms([t, t]);
    await ops.electedContributionNormsSq([t, t], [1, 1], true);
    expect(ctx.inUseBuffers).toBe(live);
    gpu.release(t);
    expect(ctx.inUseBuffers).toBe(before);
  });

  it('reference ops read any backend and agree with the GPU ops on the same tensors', async () => {
    const gpu = gpus.get(777)!;
    const values = [awkwardValues(3000, 5), awkwardValues(3000, 6)];
    const ts = await Promise.all(values.map((v) => gpu.fromArray(v, [3000])));
    try {
      expect(await new ReferenceAnalysisOps(gpu).signCounts(ts)).toEqual(await new GpuAnalysisOps(gpu).signCounts(ts));
    } finally {
      for (const t of ts) gpu.release(t);
    }
  });

  it('analysisOpsFor picks the GPU ops on the GPU backend', () => {
    expect(analysisOpsFor(gpus.get(undefined)!)).toBeInstanceOf(GpuAnalysisOps);
  });

  it('rejects mismatched sizes and too many tensors with a typed error', async () => {
    const a = cpu.fromArray([1, 2], [2]);
    const b = cpu.fromArray([1, 2, 3], [3]);
    await expect(reference.signCounts([a, b])).rejects.toThrow(AnalysisOpsError);
    await expect(reference.signCounts(Array(17).fill(a))).rejects.toThrow(/at most 16/);
    await expect(reference.electedContributionNormsSq([a], [1, 2], true)).rejects.toThrow(/2 weights for 1 tensors/);
  });
});

describe('fast CPU analysis ops against the reference', () => {
  const backends = [
    ['1 thread', new FastCpuBackend()],
    ['2 threads', new FastCpuBackend({ threads: 2, workers: nodeWorkers })],
  ] as const;
  afterAll(() => {
    for (const [, b] of backends) b.destroy();
  });

  // [2, 40001] spans 2 chunks of CHUNK entries: it runs on both threads, and its norms add chunk sums.
  const SHAPES = [[1], [7], [257], [4099], [3, 3000], [7, 1300], [2, 40001]].map((shape) => ({ shape, name: shape.join('×') }));
  const numelOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
  /** Entries whose f32 bits differ (a plain loop: deep equality of long arrays is slow). */
  const differingBits = (a: Float32Array, b: Float32Array) => {
    const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
    const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
    let n = Math.abs(x.length - y.length);
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) n++;
    return n;
  };

  /**
   * The tensor of `values` as the analysis hands it over: stored f32, a lazy task vector x − base
   * (computed, not stored), or BF16 bytes decoded (stored as BF16). Returns it and its values.
   */
  async function tensorOf(be: FastCpuBackend, values: Float32Array, shape: number[], form: 'f32' | 'lazy' | 'bf16'): Promise<{ t: Tensor; values: Float32Array; made: Tensor[] }> {
    if (form === 'f32') {
      const t = be.fromArray(values, shape);
      return { t, values, made: [t] };
    }
    if (form === 'bf16') {
      const bits = new Uint32Array(values.buffer.slice(0));
      const bytes = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) bytes[i] = bits[i] >>> 16; // truncate: keeps NaN, Inf, ±0 and the sign
      const t = await be.decode(new Uint8Array(bytes.buffer), 'BF16', shape);
      return { t, values: await be.read(t), made: [t] };
    }
    const base = be.fromArray(Float32Array.from(values, (_, i) => (i % 5) * 0.25 - 0.5), shape);
    const x = be.fromArray(Float32Array.from(values, (v, i) => Math.fround(v + ((i % 5) * 0.25 - 0.5))), shape);
    const taskVector = () =>
      be.lincomb([
        { x, coef: 1 },
        { x: base, coef: -1 },
      ]);
    // The values from a twin: `t` stays never computed (the ops compute it first).
    const twin = await taskVector();
    const expected = await be.read(twin);
    be.release(twin);
    const t = await taskVector();
    return { t, values: expected, made: [base, x, t] };
  }

  for (const [label, be] of backends) {
    describe(label, () => {
      const ops = new FastAnalysisOps(be);

      it.each(SHAPES)('sign counts of 1..16 tensors (flips, f32, lazy and BF16 inputs), shape $name', async ({ shape }) => {
        const numel = numelOf(shape);
        const counts = numel > CHUNK ? [3, 16] : Array.from({ length: 16 }, (_, i) => i + 1);
        for (const n of counts) {
          const forms = ['f32', 'lazy', 'bf16'] as const;
          const made: Tensor[] = [];
          try {
            const inputs = [];
            for (let i = 0; i < n; i++) {
              const input = await tensorOf(be, awkwardValues(numel, 100 * n + i, i % 2 ? 0.6 : 0.1), shape, forms[i % 3]);
              made.push(...input.made);
              inputs.push(input);
            }
            const flips = inputs.map((_, i) => i % 3 === 1);
            const got = await ops.signCounts(
              inputs.map((x) => x.t),
              flips,
            );
            expect(got, `${n} tensors`).toEqual(signCountsOf(
              inputs.map((x) => x.values),
              flips,
            ));
            // Stored in place, the tensors keep their values (bit for bit: NaN, -0).
            for (const [i, x] of inputs.entries()) expect(differingBits(await be.read(x.t), x.values), `tensor ${i}`).toBe(0);
          } finally {
            for (const t of made) be.release(t);
          }
        }
        expect(be.liveTensors).toBe(0);
      });

      it.each(SHAPES)('magnitude histograms of 4 tensors, shape $name', async ({ shape }) => {
        const numel = numelOf(shape);
        const made: Tensor[] = [];
        try {
          const inputs = [
            await tensorOf(be, awkwardValues(numel, numel), shape, 'f32'),
            await tensorOf(be, awkwardValues(numel, numel + 1, 0.9), shape, 'lazy'),
            await tensorOf(be, awkwardValues(numel, numel + 2), shape, 'bf16'),
            await tensorOf(be, new Float32Array(numel), shape, 'f32'),
          ];
          for (const x of inputs) made.push(...x.made);
          const got = await ops.magnitudeHistograms(inputs.map((x) => x.t));
          expect(got).toHaveLength(4);
          got.forEach((h, k) => {
            expect(h.counts).toHaveLength(BIN_COUNT);
            expect(h, `tensor ${k}`).toEqual(magnitudeHistogramOf(inputs[k].values));
          });
        } finally {
          for (const t of made) be.release(t);
        }
      });

      it('bins every edge, the f32 just below it, subnormals, ±0, ±Inf and NaN as binOf does', async () => {
        const values: number[] = [0, -0, 1e-45, -1e-40, 2 ** -31, Infinity, -Infinity, NaN, 4, 3.9999998, 2 ** 100];
        const bits = new Uint32Array(1);
        const f = new Float32Array(bits.buffer);
        for (const e of binEdges()) {
          f[0] = e;
          bits[0]--;
          values.push(e, -e, f[0]);
        }
        const t = be.fromArray(values, [values.length]);
        try {
          const [h] = await ops.magnitudeHistograms([t]);
          const want = new Array(BIN_COUNT).fill(0);
          for (const v of Float32Array.from(values)) want[binOf(v)]++;
          expect(h.counts).toEqual(want);
          expect(h.minNonzero).toBe(Math.fround(1e-45));
          expect(h.max).toBe(2 ** 100);
        } finally {
          be.release(t);
        }
        const none = be.fromArray([NaN, Infinity], [2]);
        try {
          expect(await ops.magnitudeHistograms([none])).toEqual([magnitudeHistogramOf([NaN, Infinity])]);
        } finally {
          be.release(none);
        }
      });

      it.each(SHAPES)('elected contribution norms of 1, 2 and 5 tensors, shape $name', async ({ shape }) => {
        const numel = numelOf(shape);
        const r = rng(numel);
        for (const n of [1, 2, 5]) {
          const made: Tensor[] = [];
          try {
            const inputs = [];
            for (let i = 0; i < n; i++) {
              const values = Float32Array.from({ length: numel }, () => (r() < 0.3 ? (r() < 0.5 ? 0 : -0) : r() * 2 - 1));
              const x = await tensorOf(be, values, shape, i % 2 ? 'lazy' : 'f32');
              made.push(...x.made);
              inputs.push(x);
            }
            // With 2 tensors the weights cancel: where both agree, d = 0 and the merge divides by 1.
            const weights = n === 2 ? [1, -1] : [1, 0.5, -0.7, 0.3, 2].slice(0, n);
            for (const normalize of [true, false]) {
              const got = await ops.electedContributionNormsSq(
                inputs.map((x) => x.t),
                weights,
                normalize,
              );
              const want = electedContributionNormsSqOf(
                inputs.map((x) => x.values),
                weights,
                normalize,
              );
              if (numel <= CHUNK) expect(got, `${n} tensors, normalize ${normalize}`).toEqual(want);
              else got.forEach((g, k) => expect(Math.abs(g - want[k]), `model ${k}`).toBeLessThanOrEqual(1e-12 * want[k]));
            }
          } finally {
            for (const t of made) be.release(t);
          }
        }
      });

      it('evaluates large lazy inputs into pooled buffers, and calls that overlap each into their own buffers', async () => {
        const numel = 300_007; // over the 1 MiB scratch kept per input
        const made: Tensor[] = [];
        const liveBytes = be.memoryStats().liveBytes;
        try {
          const big = await Promise.all([0, 1, 2].map((i) => tensorOf(be, awkwardValues(numel, 500 + i), [numel], 'lazy')));
          const small = await Promise.all([0, 1].map((i) => tensorOf(be, awkwardValues(999, 600 + i), [999], 'lazy')));
          for (const x of [...big, ...small]) made.push(...x.made);
          const [signs, hists, norms] = await Promise.all([
            ops.signCounts(big.map((x) => x.t)),
            ops.magnitudeHistograms(small.map((x) => x.t)),
            ops.electedContributionNormsSq(
              small.map((x) => x.t),
              [1, 2],
              true,
            ),
          ]);
          expect(signs).toEqual(signCountsOf(big.map((x) => x.values)));
          // Computed once: evaluated into buffers, not stored in place.
          for (const x of big) expect(be.node(x.t, 'test').isData).toBe(false);
          expect(hists).toEqual(small.map((x) => magnitudeHistogramOf(x.values)));
          expect(norms).toEqual(electedContributionNormsSqOf(
            small.map((x) => x.values),
            [1, 2],
            true,
          ));
        } finally {
          for (const t of made) be.release(t);
        }
        expect(be.memoryStats().liveBytes).toBe(liveBytes);
      });

      it('rejects released tensors, mismatched sizes and too many tensors with a typed error', async () => {
        const a = be.fromArray([1, 2], [2]);
        const b = be.fromArray([1, 2, 3], [3]);
        be.release(b);
        await expect(ops.signCounts([a, b])).rejects.toThrow(AnalysisOpsError);
        await expect(ops.magnitudeHistograms([b])).rejects.toThrow(/tensor 0: .*released/);
        await expect(ops.signCounts(Array(17).fill(a))).rejects.toThrow(/at most 16/);
        await expect(ops.electedContributionNormsSq([a], [1, 2], true)).rejects.toThrow(/2 weights for 1 tensors/);
        be.release(a);
      });
    });
  }

  it('runs where SharedArrayBuffer does not exist (a tab that is not cross-origin isolated)', async () => {
    const saved = globalThis.SharedArrayBuffer;
    // @ts-expect-error: the global is absent in such a tab
    delete globalThis.SharedArrayBuffer;
    try {
      const be = new FastCpuBackend();
      const ops = new FastAnalysisOps(be);
      const values = [awkwardValues(1001, 1), awkwardValues(1001, 2)];
      const xs = values.map((v) => be.fromArray(v, [1001]));
      // Fresh lazy tensors each time: evaluated into the scratch, made on the first call and reused on the next.
      for (let round = 0; round < 2; round++) {
        const lazy = await be.lincomb([{ x: xs[0], coef: 1 }]);
        expect(await ops.signCounts([lazy, xs[1]])).toEqual(signCountsOf(values));
        const again = await be.lincomb([{ x: xs[0], coef: 1 }]);
        expect(await ops.magnitudeHistograms([again])).toEqual([magnitudeHistogramOf(values[0])]);
      }
      be.destroy();
    } finally {
      globalThis.SharedArrayBuffer = saved;
    }
  });

  it('is what analysisOpsFor picks for the fast CPU backend (GPU ops for the GPU, the reference elsewhere)', () => {
    expect(analysisOpsFor(backends[0][1])).toBeInstanceOf(FastAnalysisOps);
    expect(analysisOpsFor(new CpuBackend())).toBeInstanceOf(ReferenceAnalysisOps);
  });
});

describe('pair index', () => {
  it('numbers the pairs i < j in row order', () => {
    const n = 5;
    const seen: number[] = [];
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) seen.push(pairIndex(i, j, n));
    expect(seen).toEqual(Array.from({ length: 10 }, (_, k) => k));
  });
});

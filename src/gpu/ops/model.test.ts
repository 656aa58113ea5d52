/**
 * Transformer ops on the GPU vs the reference (src/gpu/ops/model.ts vs model.cpu.ts), at odd sizes,
 * with activations cut into several chunks (maxChunkElements 777) and whole; plus hand-computed
 * cases that pin the reference itself (rotate_half pairs, causal mask, grouped heads, ties).
 * Tolerances are stated per op (u = 2^-24, one f32 rounding); "exact" means bit-identical.
 */
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../backend.ts';
import { createGpuBackend } from '../gpu-backend.ts';
import { WIDE_ROW } from './model.ts';
import { ctx, cpu, gpuFor, CHUNKINGS, randomValues, pair, expectClose, expectSameBits, release, useGpuBackends } from './testing.testutil.ts';

useGpuBackends();

const U = 2 ** -24;

async function both(chunk: number | undefined, run: (b: typeof cpu | ReturnType<typeof gpuFor>, xs: Tensor[]) => Promise<Tensor>, inputs: [Float32Array, number[]][]) {
  const gpu = gpuFor(chunk);
  const ts = await Promise.all(inputs.map(([v, s]) => pair(chunk, v, s)));
  const g = await run(gpu, ts.map(([x]) => x));
  const c = await run(cpu, ts.map(([, x]) => x));
  const out: [Float32Array, Float32Array] = [await gpu.read(g), await cpu.read(c)];
  release(g, c, ...ts.flat());
  return out;
}

/** Rows of WIDE_ROW elements and more (a workgroup per row), cut into chunks of a few rows. */
describe('wide rows (workgroup reductions) vs CPU', () => {
  it('rmsNorm, argmaxRows, logSoftmaxAt at widths around WIDE_ROW', async () => {
    const gpu = createGpuBackend(ctx, { maxChunkElements: 3 * WIDE_ROW + 5 });
    try {
      for (const [rows, width] of [[7, WIDE_ROW], [3, WIDE_ROW + 3], [2, WIDE_ROW - 1]]) {
        const x = randomValues(rows * width, width + rows, 3).map((v, i) => (i % 997 === 0 ? 9 : v)); // ties at 9
        const w = randomValues(width, width, 0.5);
        const [gx, gw] = [await gpu.fromArray(x, [rows, width]), await gpu.fromArray(w, [width])];
        const [cx, cw] = [cpu.fromArray(x, [rows, width]), cpu.fromArray(w, [width])];
        const what = `[${rows}, ${width}]`;
        expectClose(await gpu.read(await gpu.rmsNorm(gx, gw, 1e-6)), await cpu.read(await cpu.rmsNorm(cx, cw, 1e-6)), (i) => (width / 2 + 8) * 2 * U * Math.abs(x[i] * w[i % width]) + 1e-37, `rmsNorm ${what}`);
        expectSameBits(await gpu.read(await gpu.argmaxRows(gx)), await cpu.read(await cpu.argmaxRows(cx)), `argmaxRows ${what}`);
        const targets = Array.from({ length: rows }, (_, r) => (r * 131) % width);
        const want = await cpu.read(await cpu.logSoftmaxAt(cx, targets));
        expectClose(await gpu.read(await gpu.logSoftmaxAt(gx, targets)), want, (i) => (width + 32) * U + 2 ** -21 + 8 * U * Math.abs(want[i]), `logSoftmaxAt ${what}`);
        release(gx, gw, cx, cw);
      }
    } finally {
      gpu.destroy();
    }
  });
});

describe('rmsNorm vs CPU', () => {
  // GPU: f32 sums in a tree (ss within width·u relative), inverseSqrt within 2 ulp, two products:
  // |Δy| <= (width/2 + 8)·2u·|y|.
  it('odd widths, rows in several chunks', async () => {
    for (const chunk of CHUNKINGS) {
      for (const [rows, width] of [[37, 67], [5, 300], [1, 1], [3, 777], [129, 3]]) {
        const x = randomValues(rows * width, rows + width);
        const w = randomValues(width, width, 0.5);
        const [got, want] = await both(chunk, (b, [xt, wt]) => b.rmsNorm(xt, wt, 1e-5), [[x, [rows, width]], [w, [width]]]);
        expectClose(got, want, (i) => (width / 2 + 8) * 2 * U * Math.abs(want[i]) + 1e-37, `rmsNorm [${rows}, ${width}] chunk=${chunk}`);
      }
    }
  });

  it('normalizes to unit root mean square (hand-computed)', async () => {
    const x = cpu.fromArray([3, 4, 0, 0], [1, 4]); // mean square 25/4
    const w = cpu.fromArray([1, 2, 1, 1], [4]);
    const y = await cpu.read(await cpu.rmsNorm(x, w, 0));
    expect(Array.from(y)).toEqual([1.2, 3.2, 0, 0].map(Math.fround));
  });
});

describe('rope vs CPU', () => {
  // a·c − b·s on both sides, a GPU may fuse one product: |Δ| <= 2u·(|a·c| + |b·s|) <= 4u·(|a| + |b|).
  it('several heads, sequences and a position offset', async () => {
    for (const chunk of CHUNKINGS) {
      for (const { seqs, seqLen, heads, headDim, offset } of [
        { seqs: 2, seqLen: 7, heads: 3, headDim: 8, offset: 4 },
        { seqs: 5, seqLen: 11, heads: 2, headDim: 10, offset: 0 },
        { seqs: 1, seqLen: 1, heads: 1, headDim: 2, offset: 22 },
      ]) {
        const rows = seqs * seqLen;
        const width = heads * headDim;
        const x = randomValues(rows * width, rows * width);
        const table = ropeTable(23, headDim);
        const [got, want] = await both(chunk, (b, [xt, tt]) => b.rope(xt, tt, { heads, seqLen, positionOffset: offset }), [[x, [rows, width]], [table, [23, headDim]]]);
        const half = headDim / 2;
        const partner = (i: number) => x[i % headDim < half ? i + half : i - half];
        expectClose(got, want, (i) => 4 * U * (Math.abs(x[i]) + Math.abs(partner(i))), `rope ${seqs}x${seqLen} heads=${heads} d=${headDim} chunk=${chunk}`);
      }
    }
  });

  it('rotates the pairs (p, p + d/2) by the angle of the row position (hand-computed)', async () => {
    const table = cpu.fromArray(ropeTable(3, 4), [3, 4]);
    // one head of 4: pairs (x0, x2) and (x1, x3); rows are positions 0, 1, 2
    const x = cpu.fromArray([1, 2, 3, 4, 1, 2, 3, 4, 1, 0, 0, 0], [3, 4]);
    const y = await cpu.read(await cpu.rope(x, table, { heads: 1, seqLen: 3 }));
    expect(Array.from(y.subarray(0, 4))).toEqual([1, 2, 3, 4]); // position 0: identity
    const th = 1; // position 1, pair 0: θ = 1·10000^0
    expect(y[4]).toBeCloseTo(Math.cos(th) - 3 * Math.sin(th), 6);
    expect(y[6]).toBeCloseTo(3 * Math.cos(th) + Math.sin(th), 6);
    expect(y[9]).toBe(0);
    expect(y[10]).toBeCloseTo(Math.sin(2), 6); // position 2, pair 0: (1, 0) → (cos 2, sin 2)
  });
});

/** [positions, d]: cos then sin of pos·10000^(−2p/d), as the model runtime builds it. */
function ropeTable(positions: number, d: number): Float32Array {
  const t = new Float32Array(positions * d);
  for (let pos = 0; pos < positions; pos++) {
    for (let p = 0; p < d / 2; p++) {
      const angle = Math.fround(pos * Math.fround(1 / 10000 ** ((2 * p) / d)));
      t[pos * d + p] = Math.cos(angle);
      t[pos * d + d / 2 + p] = Math.sin(angle);
    }
  }
  return t;
}

describe('attention vs CPU', () => {
  // GPU: f32 dot products (d terms), exp within (3 + 2|x|) ulp, f32 sums over S keys, one division:
  // |Δ| <= (2·d·|s|max + 2·range + S + 12)·u·max|v| with |s|max, range of the scores in this test
  // (values in [-3, 3], scale 1/sqrt(d): |s| <= 9·sqrt(d)): bound (40·d + 2·S + 12)·u·max|v|.
  const cases = [
    { batch: 3, seqLen: 13, keys: 13, heads: 4, kvHeads: 2, d: 6 }, // prefill, grouped kv, q in 2 chunks at 777
    { batch: 2, seqLen: 1, keys: 9, heads: 4, kvHeads: 2, d: 6 }, // one decoding step over a cache
    { batch: 1, seqLen: 5, keys: 17, heads: 3, kvHeads: 1, d: 5 }, // several new tokens, one kv head
    { batch: 2, seqLen: 7, keys: 7, heads: 2, kvHeads: 2, d: 9 }, // plain multi-head
  ];
  it('prefill, decoding over a cache, grouped / single / full kv heads', async () => {
    for (const chunk of CHUNKINGS) {
      for (const { batch, seqLen, keys, heads, kvHeads, d } of cases) {
        const q = randomValues(batch * seqLen * heads * d, 7 * d + seqLen);
        const k = randomValues(batch * keys * kvHeads * d, 11 * d + keys);
        const v = randomValues(batch * keys * kvHeads * d, 13 * d + keys);
        const [got, want] = await both(
          chunk,
          (b, [qt, kt, vt]) => b.attention(qt, kt, vt, { batch, heads, kvHeads }),
          [[q, [batch * seqLen, heads * d]], [k, [batch * keys, kvHeads * d]], [v, [batch * keys, kvHeads * d]]],
        );
        const vmax = v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        expectClose(got, want, () => (40 * d + 2 * keys + 12) * U * vmax, `attention ${JSON.stringify({ batch, seqLen, keys, heads, kvHeads, d })} chunk=${chunk}`);
      }
    }
  });

  it('is causal, reads the cache before the queries and maps heads to kv groups (hand-computed)', async () => {
    // 1 sequence, 2 queries after 1 cached key, 2 query heads sharing 1 kv head of width 1.
    // q = 0 gives equal scores: the output is the mean of the visible values.
    const q = cpu.fromArray([0, 0, 0, 0], [2, 2]);
    const k = cpu.fromArray([5, -1, 2], [3, 1]);
    const v = cpu.fromArray([1, 2, 6], [3, 1]);
    const out = await cpu.read(await cpu.attention(q, k, v, { batch: 1, heads: 2, kvHeads: 1 }));
    expect(Array.from(out)).toEqual([1.5, 1.5, 3, 3]); // query 0 sees keys 0..1, query 1 keys 0..2
  });
});

describe('swiglu, addRows vs CPU', () => {
  // swiglu: exp within (3 + 2|g|) ulp, a division (2.5 ulp) and a product: (10 + 2|g|)·u·|out|.
  // addRows: one f32 addition on both: exact.
  it('odd sizes, several chunks', async () => {
    for (const chunk of CHUNKINGS) {
      for (const [rows, width] of [[37, 67], [1, 5], [300, 7]]) {
        const g = randomValues(rows * width, rows, 4);
        const u = randomValues(rows * width, width);
        const [sg, sc] = await both(chunk, (b, [gt, ut]) => b.swiglu(gt, ut), [[g, [rows, width]], [u, [rows, width]]]);
        expectClose(sg, sc, (i) => (10 + 2 * Math.abs(g[i])) * U * Math.abs(sc[i]) + 1e-37, `swiglu [${rows}, ${width}] chunk=${chunk}`);
        const bias = randomValues(width, 3 * width);
        const [ag, ac] = await both(chunk, (b, [xt, bt]) => b.addRows(xt, bt), [[u, [rows, width]], [bias, [width]]]);
        expectSameBits(ag, ac, `addRows [${rows}, ${width}] chunk=${chunk}`);
        const last = rows * width - 1;
        expect(ac[last]).toBe(Math.fround(u[last] + bias[width - 1]));
      }
    }
  });

  it('silu(g)·u (hand-computed)', async () => {
    const out = await cpu.read(await cpu.swiglu(cpu.fromArray([0, 2, -30], [3]), cpu.fromArray([5, 3, 1], [3])));
    expect(out[0]).toBe(0);
    expect(out[1]).toBeCloseTo((2 / (1 + Math.exp(-2))) * 3, 5);
    expect(out[2]).toBeCloseTo(-30 / (1 + Math.exp(30)), 12);
  });
});

describe('gatherRows, concatSequences vs CPU (exact)', () => {
  it('rows of a table spread over chunks, repeated and out of order', async () => {
    for (const chunk of CHUNKINGS) {
      const [rows, width] = [259, 13];
      const table = randomValues(rows * width, 5);
      const ids = [258, 0, 3, 3, 100, 59, 60, 61];
      const [got, want] = await both(chunk, (b, [t]) => b.gatherRows(t, ids), [[table, [rows, width]]]);
      expectSameBits(got, want, `gatherRows chunk=${chunk}`);
      expect(Array.from(want.subarray(13, 26))).toEqual(Array.from(table.subarray(0, 13)));
      expect(Array.from(want.subarray(0, 13))).toEqual(Array.from(table.subarray(258 * 13, 259 * 13)));
    }
    await expect(cpu.gatherRows(cpu.fromArray([1, 2], [2, 1]), [2])).rejects.toThrow(/index 0 is 2, outside \[0, 2\)/);
  });

  it('appends per sequence (the KV cache)', async () => {
    for (const chunk of CHUNKINGS) {
      for (const [batch, p, q, width] of [[3, 17, 1, 21], [2, 5, 4, 7], [1, 1, 1, 1]]) {
        const a = randomValues(batch * p * width, p);
        const b = randomValues(batch * q * width, q + 100);
        const [got, want] = await both(chunk, (be, [at, bt]) => be.concatSequences(at, bt, batch), [[a, [batch * p, width]], [b, [batch * q, width]]]);
        expectSameBits(got, want, `concatSequences ${batch}x(${p}+${q})x${width} chunk=${chunk}`);
        // sequence 1 starts with a's rows of sequence 1
        if (batch > 1) expect(want[(p + q) * width]).toBe(a[p * width]);
        expect(want[p * width]).toBe(b[0]);
      }
    }
  });
});

describe('argmaxRows, logSoftmaxAt vs CPU', () => {
  // argmax: exact (ties: the first index). logSoftmaxAt: f32 tree sum of V exponentials (each within
  // (3 + 2|x − m|) ulp), log within 2^-21 absolute near 1 else 3 ulp: |Δ| <= (V + 8 + 2·range)·u + 2^-21 + 8u·|want|.
  it('odd widths, rows and outputs in several chunks, ties', async () => {
    for (const chunk of CHUNKINGS) {
      for (const [rows, width] of [[37, 43], [1000, 3], [2, 777], [5, 1]]) {
        const x = randomValues(rows * width, rows * 3 + width, 3).map((v, i) => (i % 11 === 0 ? 2.5 : v)); // ties at 2.5
        const [ag, ac] = await both(chunk, (b, [xt]) => b.argmaxRows(xt), [[x, [rows, width]]]);
        expectSameBits(ag, ac, `argmaxRows [${rows}, ${width}] chunk=${chunk}`);
        const targets = Array.from({ length: rows }, (_, r) => (r * 7) % width);
        const [lg, lc] = await both(chunk, (b, [xt]) => b.logSoftmaxAt(xt, targets), [[x, [rows, width]]]);
        expectClose(lg, lc, (i) => (width + 8 + 2 * 12) * U + 2 ** -21 + 8 * U * Math.abs(lc[i]), `logSoftmaxAt [${rows}, ${width}] chunk=${chunk}`);
      }
    }
  });

  it('first maximum, NaN skipped; log-probabilities of a known row (hand-computed)', async () => {
    const x = cpu.fromArray([1, 3, 3, NaN, 0, -Infinity, NaN, NaN, NaN], [3, 3]);
    expect(Array.from(await cpu.read(await cpu.argmaxRows(x)))).toEqual([1, 1, -1]);
    const gpu = gpuFor(undefined);
    const gx = await gpu.fromArray([1, 3, 3, -2, -1, -1, 0, 0, 0], [3, 3]);
    expect(Array.from(await gpu.read(await gpu.argmaxRows(gx)))).toEqual([1, 1, 0]);
    const l = await cpu.read(await cpu.logSoftmaxAt(cpu.fromArray([0, 0, 0, 0, Math.log(3), 0], [2, 3]), [2, 1]));
    expect(l[0]).toBeCloseTo(-Math.log(3), 6);
    expect(l[1]).toBeCloseTo(Math.log(3) - Math.log(5), 6);
  });
});

describe('model ops: bad input', () => {
  it('names the op and the mismatch', async () => {
    const gpu = gpuFor(undefined);
    for (const b of [cpu, gpu]) {
      const x = await b.upload(new Float32Array(12), [3, 4]);
      const w = await b.upload(new Float32Array(3), [3]);
      await expect(b.rmsNorm(x, w, 1e-5)).rejects.toThrow(/rmsNorm: weight has shape \[3\], expected \[4\]/);
      await expect(b.attention(x, x, x, { batch: 1, heads: 3, kvHeads: 2 })).rejects.toThrow(/3 query heads are not a multiple of 2/);
      await expect(b.logSoftmaxAt(x, [0, 1])).rejects.toThrow(/2 targets for 3 rows/);
      release(x, w);
    }
  });
});

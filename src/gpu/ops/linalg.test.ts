/**
 * The linalg family on the GPU against its CPU reference (linalg.cpu.ts), at awkward sizes (1, 7,
 * 63, 65, 257 rows; tall and wide; k not a multiple of the tile) and with tensors cut into many
 * chunks. Tolerances per op:
 * - matmul: |gpu − ref| ≤ (k + 3)·u·(|alpha|·Σ_p |op(A)[i,p]|·|op(B)[p,j]| + |beta|·|D[i,j]|), u = 2^-24
 *   (one sequential f32 sum of k products, the scalings and the final rounding); Σ|a||b| is the
 *   reference product of |A| and |B|.
 * - columnDots: (64 + 1)·u·Σ_i |a[i,j]·b[i,j]| (f32 sums of 64-row blocks added in f64).
 * - transpose, sliceColumns, concatColumns, scaleColumns, addDiagonal: bit for bit.
 * One device for the file; software WebGPU is slow, so sizes stay small.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seeded } from '../../../tests/helpers/seeded.ts';
import type { Tensor } from '../backend.ts';
import { GpuContext } from '../context.ts';
import { CpuBackend } from '../cpu-backend.ts';
import { createGpuBackend, type GpuBackend } from '../gpu-backend.ts';
import { nodeGpu } from '../node-gpu.ts';
import type { MatmulOptions } from './linalg.ts';

const U = 2 ** -24;
let ctx: GpuContext;
let gpu: GpuBackend;
/** 1000 elements per chunk: a 4097×7 matrix spans 29 buffers, a row of 4099 spans 5. */
let chunked: GpuBackend;
const cpu = new CpuBackend();

beforeAll(async () => {
  ctx = await GpuContext.create(nodeGpu());
  gpu = createGpuBackend(ctx);
  chunked = createGpuBackend(ctx, { maxChunkElements: 1000 });
});

afterAll(() => {
  gpu?.destroy();
  chunked?.destroy();
  ctx?.destroy();
});

function randomMatrix(rows: number, cols: number, seed: number): Float32Array {
  const r = seeded(seed);
  return Float32Array.from({ length: rows * cols }, () => (r() + r() + r() - 1.5) * 2);
}

function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

function expectSameBits(got: Float32Array, want: Float32Array, what: string): void {
  expect(got.length, what).toBe(want.length);
  const g = bits(got);
  const w = bits(want);
  const bad = g.findIndex((v, i) => v !== w[i]);
  expect(bad, `${what}: first difference at ${bad}: ${got[bad]} vs ${want[bad]}`).toBe(-1);
}

/** Up to 20% of the bound is allowed to be used at most; reports the worst ratio. */
function expectWithin(got: Float32Array, want: Float32Array, bound: Float64Array | Float32Array, what: string): void {
  expect(got.length, what).toBe(want.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    const ratio = err === 0 ? 0 : err / bound[i];
    if (!(ratio <= worst) || Number.isNaN(got[i])) {
      worst = Number.isNaN(got[i]) ? Infinity : ratio;
      at = i;
    }
  }
  expect(worst, `${what}: worst |err|/bound ${worst} at ${at} (${got[at]} vs ${want[at]})`).toBeLessThanOrEqual(1);
}

interface ProductCase {
  m: number;
  k: number;
  n: number;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
  addend?: boolean;
}

/** Runs a product on `backend` and on the reference, and checks the stated bound. */
async function checkProduct(backend: GpuBackend, c: ProductCase, seed: number): Promise<void> {
  const aShape = c.transA ? [c.k, c.m] : [c.m, c.k];
  const bShape = c.transB ? [c.n, c.k] : [c.k, c.n];
  const av = randomMatrix(aShape[0], aShape[1], seed);
  const bv = randomMatrix(bShape[0], bShape[1], seed + 1);
  const dv = randomMatrix(c.m, c.n, seed + 2);
  const opts = (x: { a: Tensor; d: Tensor }): MatmulOptions => ({
    transA: c.transA,
    transB: c.transB,
    alpha: c.alpha,
    beta: c.beta,
    addend: c.addend ? x.d : undefined,
  });
  using a = await backend.fromArray(av, aShape);
  using b = await backend.fromArray(bv, bShape);
  using d = await backend.fromArray(dv, [c.m, c.n]);
  using got = await backend.matmul(a, b, opts({ a, d }));
  expect(got.shape).toEqual([c.m, c.n]);
  using ra = cpu.fromArray(av, aShape);
  using rb = cpu.fromArray(bv, bShape);
  using rd = cpu.fromArray(dv, [c.m, c.n]);
  using want = await cpu.matmul(ra, rb, opts({ a: ra, d: rd }));
  using absA = cpu.fromArray(av.map(Math.abs), aShape);
  using absB = cpu.fromArray(bv.map(Math.abs), bShape);
  using sums = await cpu.matmul(absA, absB, { transA: c.transA, transB: c.transB });
  const s = await cpu.read(sums);
  const alpha = Math.abs(c.alpha ?? 1);
  const beta = c.addend ? Math.abs(c.beta ?? 1) : 0;
  const bound = Float64Array.from(s, (v, i) => (c.k + 3) * U * (alpha * v + beta * Math.abs(dv[i])) + 1e-30);
  const label = `${c.transA ? 'Aᵀ' : 'A'}·${c.transB ? 'Bᵀ' : 'B'} m=${c.m} k=${c.k} n=${c.n}`;
  expectWithin(await backend.read(got), await cpu.read(want), bound, label);
}

describe('matmul', () => {
  const sizes: [number, number, number][] = [
    [1, 1, 1],
    [7, 3, 5],
    [63, 17, 65],
    [65, 70, 63],
    [257, 33, 9], // tall
    [9, 33, 257], // wide
    [5, 300, 7], // long reduction, k not a multiple of 16
  ];
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      it(`${transA ? 'Aᵀ' : 'A'}·${transB ? 'Bᵀ' : 'B'} at awkward sizes within (k+3)·u·Σ|a||b|`, async () => {
        let seed = 10;
        for (const [m, k, n] of sizes) await checkProduct(gpu, { m, k, n, transA, transB }, (seed += 3));
      });
    }
  }

  it('scales by alpha and adds beta·addend (the Newton–Schulz step)', async () => {
    await checkProduct(gpu, { m: 65, k: 63, n: 63, alpha: -0.5, beta: 1.5, addend: true }, 100);
    await checkProduct(gpu, { m: 63, k: 65, n: 7, transA: true, alpha: 2, addend: true }, 110);
    await checkProduct(gpu, { m: 7, k: 9, n: 257, transB: true, alpha: 1, beta: -1, addend: true }, 120);
  });

  it('handles A, B and C spanning several buffers (4097 rows, 29 chunks), every transposition', async () => {
    // A tall operand on each side: the reduction over k runs over row segments (AᵀB), the output
    // rows follow A's chunks (A·B), B's chunks cut the output columns (A·Bᵀ).
    const cases: ProductCase[] = [
      { m: 7, k: 4097, n: 5, transA: true }, // Gram-like: accumulate over 29 row segments
      { m: 7, k: 4097, n: 5, transA: true, alpha: 0.5, beta: -2, addend: true },
      { m: 4097, k: 7, n: 3 },
      { m: 3, k: 7, n: 999, transB: true }, // B's 8 chunks cut the output columns
      { m: 4097, k: 7, n: 9, transB: true, addend: true, beta: 0.25 },
      { m: 65, k: 257, n: 9, transA: true, transB: true },
      { m: 129, k: 3, n: 129 }, // 7 rows of C per chunk: segments end inside tiles
    ];
    let seed = 200;
    for (const c of cases) await checkProduct(chunked, c, (seed += 3));
    // The layouts really are multi-chunk.
    expect(chunked.layoutOf([4097, 7]).count).toBe(29);
    expect(chunked.layoutOf([129, 129]).count).toBe(19);
  });

  it('an empty reduction gives zeros, or beta·addend; empty outputs are empty', async () => {
    using a = await gpu.fromArray(new Float32Array(0), [3, 0]);
    using b = await gpu.fromArray(new Float32Array(0), [0, 4]);
    using zeros = await gpu.matmul(a, b);
    expect([...(await gpu.read(zeros))]).toEqual(new Array(12).fill(0));
    using d = await gpu.fromArray(Float32Array.from({ length: 12 }, (_, i) => i + 1), [3, 4]);
    using scaled = await gpu.matmul(a, b, { addend: d, beta: -2 });
    expect([...(await gpu.read(scaled))]).toEqual(Array.from({ length: 12 }, (_, i) => -2 * (i + 1)));
    using e = await gpu.fromArray(new Float32Array(0), [0, 5]);
    using f = await gpu.fromArray(randomMatrix(5, 2, 1), [5, 2]);
    using empty = await gpu.matmul(e, f);
    expect(empty.shape).toEqual([0, 2]);
    expect((await gpu.read(empty)).length).toBe(0);
  });

  it('names the mismatch in shape errors, on both backends', async () => {
    for (const backend of [gpu, cpu]) {
      using a = await backend.upload(randomMatrix(3, 4, 1), [3, 4]);
      using b = await backend.upload(randomMatrix(5, 2, 2), [5, 2]);
      using v = await backend.upload(randomMatrix(1, 4, 3), [4]);
      await expect(backend.matmul(a, b)).rejects.toThrow(/matmul: inner dimensions differ: op\(A\) is 3×4, op\(B\) is 5×2/);
      await expect(backend.matmul(a, b, { transA: true })).rejects.toThrow(/op\(A\) is 4×3, op\(B\) is 5×2/);
      await expect(backend.matmul(v, b)).rejects.toThrow(/matmul: A has shape \[4\], expected a 2-D matrix/);
      await expect(backend.matmul(a, a, { transB: true, addend: b })).rejects.toThrow(/matmul: addend is 5×2, the product is 3×3/);
    }
  });

  it('refuses operands whose rows span chunks, saying why', async () => {
    const tiny = createGpuBackend(ctx, { maxChunkElements: 5 });
    try {
      using a = await tiny.fromArray(randomMatrix(3, 7, 1), [3, 7]);
      using b = await tiny.fromArray(randomMatrix(7, 1, 2), [7, 1]);
      await expect(tiny.matmul(a, b)).rejects.toThrow(/A \[3, 7\] has rows of 7 elements, longer than a chunk \(5 elements\)/);
    } finally {
      tiny.destroy();
    }
  });
});

/** The same op on a GPU backend and on the reference, compared bit for bit. */
async function sameAsReference(
  backend: GpuBackend,
  inputs: { values: Float32Array; shape: number[] }[],
  run: (b: GpuBackend | CpuBackend, xs: Tensor[]) => Promise<Tensor>,
  what: string,
): Promise<Float32Array> {
  const gs = await Promise.all(inputs.map((x) => backend.fromArray(x.values, x.shape)));
  const cs = inputs.map((x) => cpu.fromArray(x.values, x.shape));
  try {
    using got = await run(backend, gs);
    using want = await run(cpu, cs);
    expect(got.shape, what).toEqual(want.shape);
    const w = await cpu.read(want);
    expectSameBits(await backend.read(got), w, what);
    return w;
  } finally {
    gs.forEach((t) => backend.release(t));
    cs.forEach((t) => cpu.release(t));
  }
}

const m = (rows: number, cols: number, seed: number) => ({ values: randomMatrix(rows, cols, seed), shape: [rows, cols] });

describe('transpose, column slices and concatenation (exact copies)', () => {
  it('transposes square, tall, wide and single-row/column matrices', async () => {
    for (const [r, c] of [[1, 1], [7, 63], [65, 257], [257, 1], [1, 65], [17, 17]]) {
      const want = await sameAsReference(gpu, [m(r, c, r * 31 + c)], (b, [x]) => b.transpose(x), `transpose ${r}×${c}`);
      expect(want.length).toBe(r * c);
    }
  });

  it('transposes across chunks, including rows longer than a chunk', async () => {
    // [4097, 7] → [7, 4097]: 29 source chunks, destination rows of 4097 span 5 chunks each; and back.
    await sameAsReference(chunked, [m(4097, 7, 1)], (b, [x]) => b.transpose(x), 'transpose 4097×7');
    await sameAsReference(chunked, [m(3, 4099, 2)], (b, [x]) => b.transpose(x), 'transpose 3×4099');
    await sameAsReference(chunked, [m(65, 257, 3)], (b, [x]) => b.transpose(x), 'transpose 65×257');
  });

  it('slices columns on one and many chunks', async () => {
    await sameAsReference(gpu, [m(65, 257, 4)], (b, [x]) => b.sliceColumns(x, 3, 200), 'slice [3, 200) of 65×257');
    await sameAsReference(gpu, [m(7, 9, 5)], (b, [x]) => b.sliceColumns(x, 8, 9), 'last column');
    await sameAsReference(chunked, [m(4097, 7, 6)], (b, [x]) => b.sliceColumns(x, 2, 5), 'slice of 4097×7');
    await sameAsReference(chunked, [m(3, 4099, 7)], (b, [x]) => b.sliceColumns(x, 999, 3101), 'slice of rows spanning chunks');
    const empty = await sameAsReference(gpu, [m(5, 6, 8)], (b, [x]) => b.sliceColumns(x, 4, 4), 'empty slice');
    expect(empty.length).toBe(0);
  });

  it('concatenates columns on one and many chunks', async () => {
    const parts = [m(65, 3, 9), m(65, 64, 10), m(65, 1, 11)];
    const want = await sameAsReference(gpu, parts, (b, xs) => b.concatColumns(xs), 'concat 65×(3|64|1)');
    expect(want[68]).toBe(parts[0].values[3]); // row 1 starts with the first part's row 1
    await sameAsReference(chunked, [m(4097, 7, 12), m(4097, 2, 13)], (b, xs) => b.concatColumns(xs), 'concat 4097×(7|2)');
    await sameAsReference(chunked, [m(3, 999, 14), m(3, 4099, 15)], (b, xs) => b.concatColumns(xs), 'concat with rows spanning chunks');
  });

  it('names bad ranges and mismatched rows, on both backends', async () => {
    for (const backend of [gpu, cpu]) {
      using x = await backend.upload(randomMatrix(3, 4, 1), [3, 4]);
      using y = await backend.upload(randomMatrix(2, 4, 1), [2, 4]);
      await expect(backend.sliceColumns(x, 2, 5)).rejects.toThrow(/sliceColumns: columns \[2, 5\) of a matrix with 4 columns/);
      await expect(backend.sliceColumns(x, 3, 2)).rejects.toThrow(/columns \[3, 2\)/);
      await expect(backend.concatColumns([x, y])).rejects.toThrow(/concatColumns: tensor 1 has 2 rows, tensor 0 has 3/);
      await expect(backend.concatColumns([])).rejects.toThrow(/concatColumns: no tensors/);
      await expect(backend.transpose(await backend.upload(new Float32Array(4), [4]))).rejects.toThrow(/transpose: tensor has shape \[4\], expected a 2-D matrix/);
    }
  });
});

describe('scaleColumns and addDiagonal (bit for bit)', () => {
  it('scales columns on one and many chunks', async () => {
    const s65 = randomMatrix(1, 65, 20);
    await sameAsReference(gpu, [m(63, 65, 21)], (b, [x]) => b.scaleColumns(x, s65), 'scale 63×65');
    const s7 = randomMatrix(1, 7, 22);
    await sameAsReference(chunked, [m(4097, 7, 23)], (b, [x]) => b.scaleColumns(x, s7), 'scale 4097×7');
    const s4099 = randomMatrix(1, 4099, 24);
    await sameAsReference(chunked, [m(3, 4099, 25)], (b, [x]) => b.scaleColumns(x, s4099), 'scale rows spanning chunks');
  });

  it('adds c·I to scale·x for square and rectangular matrices', async () => {
    const sq = await sameAsReference(gpu, [m(65, 65, 30)], (b, [x]) => b.addDiagonal(x, 1.5, -0.5), 'addDiagonal 65×65');
    const x = randomMatrix(65, 65, 30);
    expect(sq[66]).toBe(Math.fround(Math.fround(-0.5 * x[66]) + 1.5)); // (1, 1)
    expect(sq[1]).toBe(Math.fround(-0.5 * x[1])); // (0, 1): off the diagonal
    await sameAsReference(gpu, [m(7, 63, 31)], (b, [y]) => b.addDiagonal(y, -1), 'addDiagonal 7×63');
    await sameAsReference(gpu, [m(63, 7, 32)], (b, [y]) => b.addDiagonal(y, 3, 2), 'addDiagonal 63×7');
    await sameAsReference(chunked, [m(257, 257, 33)], (b, [y]) => b.addDiagonal(y, -1, 0.125), 'addDiagonal 257×257 over 86 chunks');
    await sameAsReference(chunked, [m(5, 2100, 34)], (b, [y]) => b.addDiagonal(y, 2), 'addDiagonal with rows spanning chunks');
  });

  it('names a wrong number of scales', async () => {
    for (const backend of [gpu, cpu]) {
      using x = await backend.upload(randomMatrix(3, 4, 1), [3, 4]);
      await expect(backend.scaleColumns(x, new Float32Array(3))).rejects.toThrow(/scaleColumns: 3 scales for 4 columns/);
    }
  });
});

describe('columnDots', () => {
  async function check(backend: GpuBackend, rows: number, cols: number, seed: number) {
    const av = randomMatrix(rows, cols, seed);
    const bv = randomMatrix(rows, cols, seed + 1);
    using a = await backend.fromArray(av, [rows, cols]);
    using b = await backend.fromArray(bv, [rows, cols]);
    using ra = cpu.fromArray(av, [rows, cols]);
    using rb = cpu.fromArray(bv, [rows, cols]);
    const got = await backend.columnDots(a, b);
    const want = await cpu.columnDots(ra, rb);
    const absSum = new Float64Array(cols);
    for (let i = 0; i < rows * cols; i++) absSum[i % cols] += Math.abs(av[i] * bv[i]);
    expect(got.length).toBe(cols);
    expectWithin(Float32Array.from(got), Float32Array.from(want), absSum.map((s) => 65 * U * s + 1e-30), `columnDots ${rows}×${cols}`);
    // Squared norms: a with itself.
    const norms = await backend.columnDots(a, a);
    for (let j = 0; j < cols; j++) expect(norms[j]).toBeGreaterThan(0);
  }

  it('sums each column at awkward sizes, on one and many chunks, rows spanning chunks', async () => {
    await check(gpu, 1, 1, 1);
    await check(gpu, 65, 300, 2);
    await check(gpu, 257, 7, 3);
    await check(chunked, 4097, 7, 4);
    await check(chunked, 3, 4099, 5);
  });

  it('names a shape mismatch', async () => {
    for (const backend of [gpu, cpu]) {
      using a = await backend.upload(randomMatrix(3, 4, 1), [3, 4]);
      using b = await backend.upload(randomMatrix(4, 3, 1), [4, 3]);
      await expect(backend.columnDots(a, b)).rejects.toThrow(/columnDots: a is 3×4, b is 4×3/);
    }
  });
});

describe('resources', () => {
  it('leaves no tensor or buffer behind, also after a failed op', async () => {
    const before = ctx.inUseBuffers;
    const backend = createGpuBackend(ctx, { maxChunkElements: 1000 });
    const x = await backend.fromArray(randomMatrix(300, 7, 1), [300, 7]);
    const outs = [
      await backend.matmul(x, x, { transA: true }),
      await backend.transpose(x),
      await backend.sliceColumns(x, 1, 3),
      await backend.concatColumns([x, x]),
      await backend.scaleColumns(x, new Float32Array(7).fill(2)),
    ];
    await backend.columnDots(x, x);
    await expect(backend.matmul(x, x)).rejects.toThrow(/inner dimensions/);
    expect(backend.liveTensors).toBe(6);
    for (const t of outs) backend.release(t);
    backend.release(x);
    expect(backend.liveTensors).toBe(0);
    backend.destroy();
    expect(ctx.inUseBuffers).toBe(before);
  });
});

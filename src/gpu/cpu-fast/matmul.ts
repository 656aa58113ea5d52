/**
 * Matrix products and transposes of the fast CPU backend, bit-identical to the reference
 * (src/gpu/ops/linalg.cpu.ts) and run on every thread.
 *
 * The reference computes, per output element, an f64 sum over p = 0..k-1 in ascending order of
 * op(A)[i,p]·op(B)[p,j] (f32 values: each product is exact in f64), skipping p where op(A)[i,p] is
 * ±0, then rounds alpha·sum + (D ? beta·D[i,j] : 0) to f32. Here each element has the same sum in
 * the same order, so the result is the same bit for bit; what changes is how the work is laid out:
 * - Both operands are made contiguous along p: op(A) as rows [m, k] (A itself, or Aᵀ copied) and
 *   op(B) as columns, i.e. op(B)ᵀ as rows [n, k] (B itself with transB, else Bᵀ copied). Copies
 *   are O(mk + kn) against the product's O(mkn).
 * - The output is cut into tiles of TILE_ROWS × TILE_COLS, one chunk each, taken by the threads
 *   from the pool's shared counter (threads.ts). Inside a tile, p runs in blocks of DEPTH (the
 *   operands' slices stay in cache), and 3×4 outputs at a time are summed in registers (7 loads
 *   for 12 products); the f64 sums wait in a per-thread scratch between blocks.
 * - The skip: adding ±0 never changes a sum that starts at +0 (such a sum is never −0), so skipping
 *   a zero op(A) matters only where op(B)[p,j] is ±∞ or NaN (0·∞ = NaN). Those are exactly the
 *   elements whose fast sum is NaN: each such element is summed again with the skip.
 */
import { matmulDims, matrixShape, type MatmulOptions } from '../ops/linalg.ts';
import type { Tensor } from '../backend.ts';
import { Storage } from './buffers.ts';
import { Node } from './expr.ts';
import type { FastCpuBackend, FastTensor } from './fast-backend.ts';
import type { KernelRuntime } from './runtime.ts';

/** Output rows and columns per chunk (a multiple of the 3×4 register tile), and p per block. */
const TILE_ROWS = 48;
const TILE_COLS = 64;
const DEPTH = 256;
/** Products of fewer multiply-adds run on the calling thread alone (about a millisecond's work). */
const MIN_PARALLEL_MACS = 1 << 21;
/** Square block of a transpose (one chunk covers a band of TRANSPOSE_BLOCK source rows). */
const TRANSPOSE_BLOCK = 32;

/** A stateless kernel's work on one chunk (threads.ts's `run`, without begin/end state). */
type ChunkRun = (v: unknown[], prm: Float64Array, state: unknown, start: number, end: number, chunk: number) => void;

/**
 * The product kernel: chunk c is the output tile (c / colTiles, c % colTiles). Views: A [m, k],
 * Bt [n, k], out [m, n], D [m, n] when there is an addend. Self-contained: it is shipped as source
 * to the workers.
 */
function productKernel(rt: KernelRuntime): ChunkRun {
  return function run(v, prm, _s, start, end, chunk) {
    if (end <= start) return;
    const A = v[0] as Float32Array;
    const Bt = v[1] as Float32Array;
    const out = v[2] as Float32Array;
    const D = (prm[5] ? v[3] : v[2]) as Float32Array;
    const m = prm[0] | 0;
    const n = prm[1] | 0;
    const k = prm[2] | 0;
    const alpha = prm[3];
    const beta = prm[4];
    const hasD = prm[5] !== 0;
    const tileRows = prm[6] | 0;
    const tileCols = prm[7] | 0;
    const depth = prm[8] | 0;
    const colTiles = prm[9] | 0;
    const i0 = ((chunk / colTiles) | 0) * tileRows;
    const j0 = (chunk % colTiles) * tileCols;
    const i1 = Math.min(m, i0 + tileRows);
    const j1 = Math.min(n, j0 + tileCols);
    const w = j1 - j0;
    // acc[(i - i0)·w + (j - j0)]: the f64 sums of the tile.
    const acc = rt.scratch('matmul sums', Float64Array, tileRows * tileCols);
    acc.fill(0, 0, (i1 - i0) * w);
    for (let p0 = 0; p0 < k; p0 += depth) {
      const p1 = Math.min(k, p0 + depth);
      let i = i0;
      for (; i + 3 <= i1; i += 3) {
        const a0 = i * k;
        const a1 = a0 + k;
        const a2 = a1 + k;
        const r0 = (i - i0) * w - j0;
        const r1 = r0 + w;
        const r2 = r1 + w;
        let j = j0;
        for (; j + 4 <= j1; j += 4) {
          const b0 = j * k;
          const b1 = b0 + k;
          const b2 = b1 + k;
          const b3 = b2 + k;
          let c00 = acc[r0 + j], c01 = acc[r0 + j + 1], c02 = acc[r0 + j + 2], c03 = acc[r0 + j + 3];
          let c10 = acc[r1 + j], c11 = acc[r1 + j + 1], c12 = acc[r1 + j + 2], c13 = acc[r1 + j + 3];
          let c20 = acc[r2 + j], c21 = acc[r2 + j + 1], c22 = acc[r2 + j + 2], c23 = acc[r2 + j + 3];
          for (let p = p0; p < p1; p++) {
            const x0 = A[a0 + p];
            const x1 = A[a1 + p];
            const x2 = A[a2 + p];
            const y0 = Bt[b0 + p];
            const y1 = Bt[b1 + p];
            const y2 = Bt[b2 + p];
            const y3 = Bt[b3 + p];
            c00 += x0 * y0;
            c01 += x0 * y1;
            c02 += x0 * y2;
            c03 += x0 * y3;
            c10 += x1 * y0;
            c11 += x1 * y1;
            c12 += x1 * y2;
            c13 += x1 * y3;
            c20 += x2 * y0;
            c21 += x2 * y1;
            c22 += x2 * y2;
            c23 += x2 * y3;
          }
          acc[r0 + j] = c00;
          acc[r0 + j + 1] = c01;
          acc[r0 + j + 2] = c02;
          acc[r0 + j + 3] = c03;
          acc[r1 + j] = c10;
          acc[r1 + j + 1] = c11;
          acc[r1 + j + 2] = c12;
          acc[r1 + j + 3] = c13;
          acc[r2 + j] = c20;
          acc[r2 + j + 1] = c21;
          acc[r2 + j + 2] = c22;
          acc[r2 + j + 3] = c23;
        }
        for (; j < j1; j++) {
          const b0 = j * k;
          let c0 = acc[r0 + j], c1 = acc[r1 + j], c2 = acc[r2 + j];
          for (let p = p0; p < p1; p++) {
            const y = Bt[b0 + p];
            c0 += A[a0 + p] * y;
            c1 += A[a1 + p] * y;
            c2 += A[a2 + p] * y;
          }
          acc[r0 + j] = c0;
          acc[r1 + j] = c1;
          acc[r2 + j] = c2;
        }
      }
      for (; i < i1; i++) {
        const a0 = i * k;
        const r0 = (i - i0) * w - j0;
        let j = j0;
        for (; j + 4 <= j1; j += 4) {
          const b0 = j * k;
          const b1 = b0 + k;
          const b2 = b1 + k;
          const b3 = b2 + k;
          let c0 = acc[r0 + j], c1 = acc[r0 + j + 1], c2 = acc[r0 + j + 2], c3 = acc[r0 + j + 3];
          for (let p = p0; p < p1; p++) {
            const x = A[a0 + p];
            c0 += x * Bt[b0 + p];
            c1 += x * Bt[b1 + p];
            c2 += x * Bt[b2 + p];
            c3 += x * Bt[b3 + p];
          }
          acc[r0 + j] = c0;
          acc[r0 + j + 1] = c1;
          acc[r0 + j + 2] = c2;
          acc[r0 + j + 3] = c3;
        }
        for (; j < j1; j++) {
          const b0 = j * k;
          let c = acc[r0 + j];
          for (let p = p0; p < p1; p++) c += A[a0 + p] * Bt[b0 + p];
          acc[r0 + j] = c;
        }
      }
    }
    for (let i = i0; i < i1; i++) {
      const r = (i - i0) * w - j0;
      for (let j = j0; j < j1; j++) {
        let c = acc[r + j];
        if (c !== c) {
          // NaN: maybe a 0·∞ the reference skips; sum again with its skip.
          const a = i * k;
          const b = j * k;
          c = 0;
          for (let p = 0; p < k; p++) {
            const x = A[a + p];
            if (x !== 0) c += x * Bt[b + p];
          }
        }
        out[i * n + j] = alpha * c + (hasD ? beta * D[i * n + j] : 0);
      }
    }
  };
}

/**
 * The transpose kernel: chunk c copies source rows [c·B, (c+1)·B) of x [r, c] into out [c, r] in
 * B×B blocks (reads and writes both stay within a few cache lines per row). Self-contained.
 */
function transposeKernel(): ChunkRun {
  return function run(v, prm, _s, start, end, chunk) {
    if (end <= start) return;
    const x = v[0] as Float32Array;
    const out = v[1] as Float32Array;
    const rows = prm[0] | 0;
    const cols = prm[1] | 0;
    const block = prm[2] | 0;
    const i0 = chunk * block;
    const i1 = Math.min(rows, i0 + block);
    for (let j0 = 0; j0 < cols; j0 += block) {
      const j1 = Math.min(cols, j0 + block);
      for (let i = i0; i < i1; i++) {
        const from = i * cols;
        for (let j = j0; j < j1; j++) out[j * rows + i] = x[from + j];
      }
    }
  };
}

/**
 * threads.ts's kernel source from a self-contained function that makes the per-chunk `run`: these
 * kernels keep no per-thread state, so begin and end do nothing (`__name`: the helper some
 * transpilers insert).
 */
function sourceOf(kernel: (rt: KernelRuntime) => ChunkRun): string {
  return `'use strict';\nvar __name = (f) => f;\nreturn { begin() { return null; }, run: (${kernel.toString()})(rt), end() {} };`;
}

const PRODUCT_SOURCE = sourceOf(productKernel);
const TRANSPOSE_SOURCE = sourceOf(transposeKernel);

/**
 * Run `use` on the nodes of `tensors` (null for absent ones), held until it settles: the values
 * stay valid even if the caller releases a tensor before the op's promise resolves.
 */
async function withNodes<T>(be: FastCpuBackend, op: string, tensors: readonly (Tensor | undefined)[], use: (nodes: (Node | null)[]) => Promise<T>): Promise<T> {
  const nodes = tensors.map((t) => (t ? be.node(t, op) : null));
  for (const n of nodes) n?.retain();
  try {
    return await use(nodes);
  } finally {
    for (const n of nodes) n?.drop();
  }
}

/** The f32 storage of a node (computed and stored first if it is lazy). */
async function stored(be: FastCpuBackend, node: Node, op: string): Promise<Storage> {
  await be.store(node, op);
  if (node.op.kind !== 'data' || node.op.format !== 'F32') throw be.error(op, `internal: an operand is stored as ${node.op.kind}, not f32 data`);
  return node.op.storage;
}

/** out [cols, rows] = xᵀ for x [rows, cols] (both f32 storages of the backend). */
async function transposeInto(be: FastCpuBackend, op: string, x: Storage, rows: number, cols: number, out: Storage): Promise<void> {
  const bands = Math.ceil(rows / TRANSPOSE_BLOCK);
  if (bands === 0 || cols === 0) return;
  // Items: elements (so that small copies stay on the calling thread), one band of rows per chunk.
  const chunkItems = TRANSPOSE_BLOCK * cols;
  await be.threads.run({
    op,
    source: TRANSPOSE_SOURCE,
    bindings: [
      { buffer: x.buffer, type: 'f32', byteOffset: 0, length: rows * cols },
      { buffer: out.buffer, type: 'f32', byteOffset: 0, length: rows * cols, output: true },
    ],
    params: Float64Array.from([rows, cols, TRANSPOSE_BLOCK]),
    items: bands * chunkItems,
    chunkItems,
  });
}

/** A new [rows, cols] tensor of the backend over `storage` (which it takes over). */
function wrapStored(be: FastCpuBackend, storage: Storage, rows: number, cols: number): FastTensor {
  return be.wrap(new Node(rows * cols, { kind: 'data', storage, format: 'F32' }), [rows, cols]);
}

/** C = alpha·op(A)·op(B) + beta·D (see MatmulOptions), bit-identical to the reference. */
export async function fastMatmul(be: FastCpuBackend, a: Tensor, b: Tensor, opts: MatmulOptions = {}): Promise<Tensor> {
  const op = 'matmul';
  const { m, k, n } = matmulDims(be, a, b, opts);
  return withNodes(be, op, [a, b, opts.addend], async ([na, nb, nd]) => {
    const sa = await stored(be, na!, op);
    const sb = await stored(be, nb!, op);
    const sd = nd ? await stored(be, nd, op) : null;
    return product(be, { m, k, n, opts }, sa, sb, sd);
  });
}

/** The product of stored operands (see fastMatmul). */
async function product(be: FastCpuBackend, { m, k, n, opts }: { m: number; k: number; n: number; opts: MatmulOptions }, sa: Storage, sb: Storage, sd: Storage | null): Promise<Tensor> {
  const op = 'matmul';
  const out = Storage.pooled(be.pool, m * n * 4);
  // Operands contiguous along p: op(A) as [m, k] rows, op(B)ᵀ as [n, k] rows.
  const at = opts.transA && m > 1 && k > 1 ? Storage.pooled(be.pool, m * k * 4) : null;
  const bt = !opts.transB && n > 1 && k > 1 ? Storage.pooled(be.pool, k * n * 4) : null;
  try {
    if (at) await transposeInto(be, op, sa, k, m, at);
    if (bt) await transposeInto(be, op, sb, k, n, bt);
    const tileRows = Math.min(TILE_ROWS, m);
    const tileCols = Math.min(TILE_COLS, n);
    const colTiles = Math.ceil(n / TILE_COLS);
    const tiles = Math.ceil(m / TILE_ROWS) * colTiles;
    if (tiles > 0) {
      // The kernel's parameters, in the order it reads them.
      const params = Float64Array.from([m, n, k, opts.alpha ?? 1, opts.beta ?? 1, sd ? 1 : 0, TILE_ROWS, TILE_COLS, DEPTH, colTiles]);
      const view = (s: Storage, length: number, output = false) => ({ buffer: s.buffer, type: 'f32' as const, byteOffset: 0, length, output });
      const bindings = [view(at ?? sa, m * k), view(bt ?? sb, k * n), view(out, m * n, true)];
      if (sd) bindings.push(view(sd, m * n));
      // Items: output elements of a full tile per chunk (so that small products stay on this thread).
      const chunkItems = tileRows * tileCols;
      const serial = m * n * k < MIN_PARALLEL_MACS;
      await be.threads.run({ op, source: PRODUCT_SOURCE, bindings, params, items: tiles * chunkItems, chunkItems, serial });
    }
  } catch (e) {
    out.drop();
    throw e;
  } finally {
    at?.drop();
    bt?.drop();
  }
  return wrapStored(be, out, m, n);
}

/** xᵀ of a 2-D tensor (an exact copy, as the reference). */
export async function fastTranspose(be: FastCpuBackend, x: Tensor): Promise<Tensor> {
  const [r, c] = matrixShape(be, x, 'transpose');
  return withNodes(be, 'transpose', [x], async ([node]) => {
    const sx = await stored(be, node!, 'transpose');
    const out = Storage.pooled(be.pool, r * c * 4);
    try {
      await transposeInto(be, 'transpose', sx, r, c, out);
    } catch (e) {
      out.drop();
      throw e;
    }
    return wrapStored(be, out, c, r);
  });
}

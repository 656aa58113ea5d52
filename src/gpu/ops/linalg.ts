/**
 * Linear algebra on tensors viewed as matrices (src/shaders/linalg.wgsl): products, transposes,
 * column blocks and column-wise reductions. A 2-D tensor [rows, cols] is a row-major matrix; on the
 * GPU it may span several buffers (whole rows per chunk, see gpu-tensor.ts), which every op handles.
 * Reference: linalg.cpu.ts. Factorizations built on these ops (QR, polar, SVD) live in src/gpu/linalg/.
 *
 * Accuracy: products accumulate in f32 on the GPU, in f64 (rounded once) in the reference; each
 * output of a product of inner dimension k is within k·2^-24·Σ_p |op(A)[i,p]|·|op(B)[p,j]| (times
 * |alpha|, plus the rounding of the scalings) of the exact value. Copies are exact; scaleColumns
 * and addDiagonal round once per element on both backends (equal bit for bit).
 */
import linalgWgsl from '../../shaders/linalg.wgsl?raw';
import type { Tensor } from '../backend.ts';
import type { CommandBatch } from '../context.ts';
import { chunkLength, chunkStart, rowsPerChunk, type BufferRange, type ChunkLayout, type GpuTensor } from '../gpu-tensor.ts';
import { defineKernel, groupsFor, shaderModule, WORKGROUP_SIZE } from '../kernel.ts';
import type { GpuOpRuntime } from './runtime.ts';

export interface MatmulOptions {
  /** Use Aᵀ in place of A. */
  transA?: boolean;
  /** Use Bᵀ in place of B. */
  transB?: boolean;
  /** Scale of the product. @default 1 */
  alpha?: number;
  /** D in C = alpha·op(A)·op(B) + beta·D: a tensor of C's shape [m, n]. */
  addend?: Tensor;
  /** Scale of the addend. @default 1 */
  beta?: number;
}

export interface LinalgOps {
  /**
   * C = alpha · op(A) · op(B) (+ beta · D when `addend` D is given) for 2-D tensors, op(X) = X or
   * Xᵀ; f32 inputs, f32 accumulation on the GPU. Shapes must agree: op(A) is m×k, op(B) is k×n,
   * D (if any) is [m, n]; C is [m, n] (zeros, or beta·D, when k = 0). On the GPU every operand must
   * hold whole rows per chunk (true unless a row is longer than a chunk).
   */
  matmul(a: Tensor, b: Tensor, opts?: MatmulOptions): Promise<Tensor>;
  /** The transpose of a 2-D tensor. */
  transpose(x: Tensor): Promise<Tensor>;
  /** Columns [from, to) of a 2-D tensor, as a new [rows, to - from] tensor. */
  sliceColumns(x: Tensor, from: number, to: number): Promise<Tensor>;
  /** [x_1 | x_2 | …]: 2-D tensors with the same number of rows side by side. */
  concatColumns(xs: readonly Tensor[]): Promise<Tensor>;
  /** x with column j multiplied by s[j] (s has one entry per column; the product rounded to f32). */
  scaleColumns(x: Tensor, s: Float32Array): Promise<Tensor>;
  /**
   * scale·x + c·I for a 2-D tensor x: every element times `scale` (rounded to f32), then c added
   * (rounded again) where the row index equals the column index (i < min(rows, cols)).
   * Newton–Schulz uses it for XᵀX − I. @param scale @default 1
   */
  addDiagonal(x: Tensor, c: number, scale?: number): Promise<Tensor>;
  /**
   * Per column j of two [rows, cols] tensors: Σ_i a[i, j]·b[i, j] (a = b gives squared column
   * norms). The GPU sums blocks of 64+ rows in f32 and adds the block sums in f64 on the host; the
   * reference accumulates in f64.
   */
  columnDots(a: Tensor, b: Tensor): Promise<Float64Array>;
}

type ErrorMaker = { error(op: string, reason: string): Error };

/** [rows, cols] of a 2-D tensor, or an error naming the op. */
export function matrixShape(rt: ErrorMaker, x: Tensor, op: string, what = 'tensor'): [number, number] {
  if (x.shape.length !== 2) throw rt.error(op, `${what} has shape [${x.shape.join(', ')}], expected a 2-D matrix`);
  return [x.shape[0], x.shape[1]];
}

/** The m, k, n of a product (both backends validate with this, so their messages agree). */
export function matmulDims(rt: ErrorMaker, a: Tensor, b: Tensor, opts: MatmulOptions): { m: number; k: number; n: number } {
  const [ar, ac] = matrixShape(rt, a, 'matmul', 'A');
  const [br, bc] = matrixShape(rt, b, 'matmul', 'B');
  const [m, k] = opts.transA ? [ac, ar] : [ar, ac];
  const [k2, n] = opts.transB ? [bc, br] : [br, bc];
  if (k !== k2) {
    throw rt.error('matmul', `inner dimensions differ: op(A) is ${m}×${k}, op(B) is ${k2}×${n} (transA ${!!opts.transA}, transB ${!!opts.transB})`);
  }
  if (opts.addend) {
    const [dr, dc] = matrixShape(rt, opts.addend, 'matmul', 'addend');
    if (dr !== m || dc !== n) throw rt.error('matmul', `addend is ${dr}×${dc}, the product is ${m}×${n}`);
  }
  return { m, k, n };
}

export function checkColumnRange(rt: ErrorMaker, cols: number, from: number, to: number): void {
  if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from <= to && to <= cols)) {
    throw rt.error('sliceColumns', `columns [${from}, ${to}) of a matrix with ${cols} columns`);
  }
}

/** [rows, cols] of each tensor of a concatenation, checked for equal row counts. */
export function concatShapes(rt: ErrorMaker, xs: readonly Tensor[]): [number, number][] {
  if (xs.length === 0) throw rt.error('concatColumns', 'no tensors');
  const shapes = xs.map((x, i) => matrixShape(rt, x, 'concatColumns', `tensor ${i}`));
  shapes.forEach(([r], i) => {
    if (r !== shapes[0][0]) throw rt.error('concatColumns', `tensor ${i} has ${r} rows, tensor 0 has ${shapes[0][0]}`);
  });
  return shapes;
}

export function checkSameMatrix(rt: ErrorMaker, a: Tensor, b: Tensor, op: string): [number, number] {
  const [r, c] = matrixShape(rt, a, op, 'a');
  const [rb, cb] = matrixShape(rt, b, op, 'b');
  if (r !== rb || c !== cb) throw rt.error(op, `a is ${r}×${c}, b is ${rb}×${cb}`);
  return [r, c];
}

/** Output tile of one matmul workgroup and its k step (linalg.wgsl: 256 threads of 4×4 outputs). */
export const MATMUL_TILE = { TILE_M: 64, TILE_N: 64, TILE_K: 16 } as const;
if ((MATMUL_TILE.TILE_M * MATMUL_TILE.TILE_N) / 16 !== WORKGROUP_SIZE) throw new Error('linalg: matmul tile must give 4×4 outputs per thread');
/** Side of a transpose tile (one thread per element). */
const TRANSPOSE_TILE = 16;
if (TRANSPOSE_TILE * TRANSPOSE_TILE !== WORKGROUP_SIZE) throw new Error('linalg: transpose tile must have one thread per element');
/** Rows summed per columnDots partial (at least; more when the partials would exceed PARTIALS_CAP). */
const DOT_BLOCK_ROWS = 64;
const PARTIALS_CAP = 1 << 20;

const LINALG = shaderModule('linalg.wgsl', { file: 'linalg.wgsl', code: linalgWgsl });
const KERNELS = {
  matmul: defineKernel(LINALG, 'matmul', { uses: ['a', 'b', 'addend', 'out'], constants: MATMUL_TILE }),
  transpose: defineKernel(LINALG, 'transpose_block', { uses: ['a', 'out'] }),
  copy: defineKernel(LINALG, 'copy_block', { uses: ['a', 'out'] }),
  scaleColumns: defineKernel(LINALG, 'scale_columns', { uses: ['a', 'b', 'out'] }),
  addDiagonal: defineKernel(LINALG, 'add_diagonal', { uses: ['a', 'out'] }),
  columnDots: defineKernel(LINALG, 'column_dots', { uses: ['a', 'b', 'out'] }),
};

/**
 * A rectangle of a matrix that lies in one chunk: rows [r0, r1), columns [c0, c1); element (i, j)
 * of it is at `at + (i - r0)·rowLen + (j - c0)` in chunk `chunk`.
 */
interface Piece {
  r0: number;
  r1: number;
  c0: number;
  c1: number;
  chunk: number;
  at: number;
}

/** The pieces of a layout: one per chunk when rows are whole in chunks, else row pieces. */
function piecesOf(layout: ChunkLayout): Piece[] {
  const { rows, rowLen, chunkLen, count } = layout;
  if (layout.numel === 0) return [];
  const perChunk = count <= 1 ? rows : rowsPerChunk(layout);
  const out: Piece[] = [];
  if (perChunk > 0) {
    for (let c = 0; c < count; c++) out.push({ r0: c * perChunk, r1: Math.min(rows, (c + 1) * perChunk), c0: 0, c1: rowLen, chunk: c, at: 0 });
    return out;
  }
  for (let r = 0; r < rows; r++) {
    const end = (r + 1) * rowLen;
    for (let g = r * rowLen; g < end; ) {
      const chunk = Math.floor(g / chunkLen);
      const stop = Math.min(end, (chunk + 1) * chunkLen);
      out.push({ r0: r, r1: r + 1, c0: g - r * rowLen, c1: stop - r * rowLen, chunk, at: g - chunk * chunkLen });
      g = stop;
    }
  }
  return out;
}

const offsetIn = (p: Piece, rowLen: number, i: number, j: number) => p.at + (i - p.r0) * rowLen + (j - p.c0);

/** [start, end) segments of [0, length) cut at every multiple of each block size. */
function segments(length: number, blocks: readonly number[]): [number, number][] {
  const cuts = new Set([0, length]);
  for (const b of blocks) if (Number.isFinite(b)) for (let x = b; x < length; x += b) cuts.add(x);
  const sorted = [...cuts].sort((x, y) => x - y);
  const out: [number, number][] = [];
  for (let i = 1; i < sorted.length; i++) out.push([sorted[i - 1], sorted[i]]);
  return out;
}

export function linalgGpu(rt: GpuOpRuntime): LinalgOps {
  const { ctx } = rt;

  /** Rows per chunk of a matrix operand (Infinity: one chunk), or an error when rows span chunks. */
  function rowBlock(op: string, layout: ChunkLayout, shape: readonly number[], what: string): number {
    if (layout.count <= 1) return Infinity;
    const r = rowsPerChunk(layout);
    if (r === 0) {
      throw rt.error(
        op,
        `${what} [${shape.join(', ')}] has rows of ${layout.rowLen} elements, longer than a chunk (${layout.chunkLen} elements); ` +
          'matrix products need whole rows in each chunk (raise maxChunkElements)',
      );
    }
    return r;
  }

  /**
   * Record the copy of every element of `src` (restricted to columns [from, to)) into `dst`:
   * dst(i, j + shift) = src(i, j), or dst(j, i) = src(i, j) when `transpose`, one dispatch per
   * rectangle that lies inside one chunk of each.
   */
  function recordCopy(batch: CommandBatch, op: string, src: GpuTensor, dst: readonly BufferRange[], dstLayout: ChunkLayout, how: { transpose: boolean; from: number; to: number; shift: number }): void {
    const srcChunks = rt.chunks(src, op);
    const srcLen = src.layout.rowLen;
    const dstLen = dstLayout.rowLen;
    const dstPieces = piecesOf(dstLayout);
    for (const p of piecesOf(src.layout)) {
      const c0 = Math.max(p.c0, how.from);
      const c1 = Math.min(p.c1, how.to);
      if (c0 >= c1) continue;
      // The source rectangle in destination coordinates.
      const [dr0, dr1, dc0, dc1] = how.transpose ? [c0, c1, p.r0, p.r1] : [p.r0, p.r1, c0 + how.shift, c1 + how.shift];
      for (const q of dstPieces) {
        const R0 = Math.max(dr0, q.r0);
        const R1 = Math.min(dr1, q.r1);
        const C0 = Math.max(dc0, q.c0);
        const C1 = Math.min(dc1, q.c1);
        if (R0 >= R1 || C0 >= C1) continue;
        const buffers = { a: srcChunks[p.chunk], out: dst[q.chunk] };
        const dstAt = offsetIn(q, dstLen, R0, C0);
        if (how.transpose) {
          // Source block: rows [C0, C1), columns [R0, R1).
          const m = C1 - C0;
          const n = R1 - R0;
          const tilesN = Math.ceil(n / TRANSPOSE_TILE);
          const tiles = Math.ceil(m / TRANSPOSE_TILE) * tilesN;
          batch.dispatch(KERNELS.transpose, {
            params: { m, n, a_offset: offsetIn(p, srcLen, C0, R0), lda: srcLen, c_offset: dstAt, ldc: dstLen, tiles_n: tilesN, tiles },
            buffers,
            workgroups: tiles,
          });
        } else {
          const m = R1 - R0;
          const n = C1 - C0;
          batch.dispatch(KERNELS.copy, {
            params: { m, n, a_offset: offsetIn(p, srcLen, R0, C0 - how.shift), lda: srcLen, c_offset: dstAt, ldc: dstLen },
            buffers,
            workgroups: groupsFor(m * n),
          });
        }
      }
    }
  }

  /** A small host array as a storage buffer that goes back to the pool after `batch`. */
  function hostValues(batch: CommandBatch, label: string, values: Float32Array): GPUBuffer {
    const size = Math.max(4, values.byteLength);
    const buffer = batch.temp(ctx.acquire({ label, size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST }));
    if (values.byteLength > 0) ctx.device.queue.writeBuffer(buffer, 0, new Float32Array(values));
    return buffer;
  }

  /** out = scale·x + c·I, chunk by chunk (x has out's layout). */
  async function recordScaled(x: GpuTensor, scale: number, out: readonly BufferRange[], layout: ChunkLayout, c = 0): Promise<void> {
    if (layout.numel === 0) return;
    const batch = ctx.batch('addDiagonal');
    const chunks = rt.chunks(x, 'addDiagonal');
    out.forEach((o, ch) => {
      const len = chunkLength(layout, ch);
      batch.dispatch(KERNELS.addDiagonal, {
        params: { numel: len, offset: chunkStart(layout, ch), row_len: layout.rowLen, alpha: scale, beta: c },
        buffers: { a: chunks[ch], out: o },
        workgroups: groupsFor(len),
      });
    });
    await batch.submit();
  }

  return {
    async matmul(a, b, opts = {}) {
      const op = 'matmul';
      const A = rt.tensor(a, op);
      const B = rt.tensor(b, op);
      const D = opts.addend ? rt.tensor(opts.addend, op) : null;
      const { m, k, n } = matmulDims(rt, A, B, opts);
      const transA = !!opts.transA;
      const transB = !!opts.transB;
      const alpha = opts.alpha ?? 1;
      const beta = opts.beta ?? 1;
      const cLayout = rt.layout(op, [m, n]);
      const rowsA = rowBlock(op, A.layout, A.shape, 'A');
      const rowsB = rowBlock(op, B.layout, B.shape, 'B');
      const rowsC = rowBlock(op, cLayout, [m, n], 'the product');
      // Cut m, k and n where any operand changes chunk: A's rows index m (k when transposed), B's
      // rows index k (n when transposed), C's and D's rows index m.
      const mSegs = segments(m, [rowsC, transA ? Infinity : rowsA]);
      const kSegs = segments(k, [transA ? rowsA : Infinity, transB ? Infinity : rowsB]);
      const nSegs = segments(n, [transB ? rowsB : Infinity]);
      const chunkRow = (rowsPer: number, row: number) => (Number.isFinite(rowsPer) ? [Math.floor(row / rowsPer), row % rowsPer] : [0, row]);
      return rt.output(op, [m, n], async (out, layout) => {
        if (m === 0 || n === 0) return;
        if (k === 0) {
          // An empty sum: C = beta·D (or the zeros asked for below).
          if (D) await recordScaled(D, beta, out, layout);
          return;
        }
        const aChunks = rt.chunks(A, op);
        const bChunks = rt.chunks(B, op);
        const dChunks = D ? rt.chunks(D, op) : null;
        const [ac, bc] = [A.shape[1], B.shape[1]];
        const batch = ctx.batch(op);
        for (const [m0, m1] of mSegs) {
          const [cChunk, cRow] = chunkRow(rowsC, m0);
          for (const [n0, n1] of nSegs) {
            kSegs.forEach(([k0, k1], s) => {
              const [aChunk, aRow] = chunkRow(rowsA, transA ? k0 : m0);
              const [bChunk, bRow] = chunkRow(rowsB, transB ? n0 : k0);
              const tilesN = Math.ceil((n1 - n0) / MATMUL_TILE.TILE_N);
              const tiles = Math.ceil((m1 - m0) / MATMUL_TILE.TILE_M) * tilesN;
              batch.dispatch(KERNELS.matmul, {
                params: {
                  m: m1 - m0,
                  n: n1 - n0,
                  k: k1 - k0,
                  a_offset: aRow * ac + (transA ? m0 : k0),
                  lda: ac,
                  b_offset: bRow * bc + (transB ? k0 : n0),
                  ldb: bc,
                  c_offset: cRow * n + n0,
                  ldc: n,
                  tiles_n: tilesN,
                  tiles,
                  mode: s > 0 ? 1 : dChunks ? 2 : 0,
                  trans_a: transA ? 1 : 0,
                  trans_b: transB ? 1 : 0,
                  alpha,
                  beta,
                },
                buffers: { a: aChunks[aChunk], b: bChunks[bChunk], addend: dChunks ? dChunks[cChunk] : aChunks[aChunk], out: out[cChunk] },
                workgroups: tiles,
              });
            });
          }
        }
        await batch.submit();
      }, { zero: k === 0 && !D });
    },

    async transpose(x) {
      const op = 'transpose';
      const X = rt.tensor(x, op);
      const [r, c] = matrixShape(rt, X, op);
      return rt.output(op, [c, r], async (out, layout) => {
        const batch = ctx.batch(op);
        recordCopy(batch, op, X, out, layout, { transpose: true, from: 0, to: c, shift: 0 });
        await batch.submit();
      });
    },

    async sliceColumns(x, from, to) {
      const op = 'sliceColumns';
      const X = rt.tensor(x, op);
      const [r, c] = matrixShape(rt, X, op);
      checkColumnRange(rt, c, from, to);
      return rt.output(op, [r, to - from], async (out, layout) => {
        const batch = ctx.batch(op);
        recordCopy(batch, op, X, out, layout, { transpose: false, from, to, shift: -from });
        await batch.submit();
      });
    },

    async concatColumns(xs) {
      const op = 'concatColumns';
      const ts = xs.map((x) => rt.tensor(x, op));
      const shapes = concatShapes(rt, ts);
      const total = shapes.reduce((s, [, c]) => s + c, 0);
      return rt.output(op, [shapes[0][0], total], async (out, layout) => {
        const batch = ctx.batch(op);
        let at = 0;
        ts.forEach((t, i) => {
          recordCopy(batch, op, t, out, layout, { transpose: false, from: 0, to: shapes[i][1], shift: at });
          at += shapes[i][1];
        });
        await batch.submit();
      });
    },

    async scaleColumns(x, s) {
      const op = 'scaleColumns';
      const X = rt.tensor(x, op);
      const [, c] = matrixShape(rt, X, op);
      if (s.length !== c) throw rt.error(op, `${s.length} scales for ${c} columns`);
      return rt.output(op, X.shape, async (out, layout) => {
        if (layout.numel === 0) return;
        const batch = ctx.batch(op);
        const scales = hostValues(batch, 'scaleColumns scales', s);
        const chunks = rt.chunks(X, op);
        out.forEach((o, ch) => {
          const len = chunkLength(layout, ch);
          batch.dispatch(KERNELS.scaleColumns, {
            params: { numel: len, offset: chunkStart(layout, ch), row_len: c },
            buffers: { a: chunks[ch], b: { buffer: scales, size: Math.max(4, s.byteLength) }, out: o },
            workgroups: groupsFor(len),
          });
        });
        await batch.submit();
      });
    },

    async addDiagonal(x, c, scale = 1) {
      const X = rt.tensor(x, 'addDiagonal');
      matrixShape(rt, X, 'addDiagonal');
      return rt.output('addDiagonal', X.shape, (out, layout) => recordScaled(X, scale, out, layout, c));
    },

    async columnDots(a, b) {
      const op = 'columnDots';
      const A = rt.tensor(a, op);
      const B = rt.tensor(b, op);
      const [, cols] = checkSameMatrix(rt, A, B, op);
      const result = new Float64Array(cols);
      const layout = A.layout;
      if (layout.numel === 0) return result;
      const align = ctx.limits.minStorageBufferOffsetAlignment / 4;
      const colGroups = Math.ceil(cols / WORKGROUP_SIZE);
      const jobs = Array.from({ length: layout.count }, (_, ch) => {
        const offset = chunkStart(layout, ch);
        const len = chunkLength(layout, ch);
        const firstRow = Math.floor(offset / cols);
        const rows = Math.floor((offset + len - 1) / cols) - firstRow + 1;
        const blockRows = Math.max(DOT_BLOCK_ROWS, Math.ceil(rows / Math.max(1, Math.floor(PARTIALS_CAP / cols))));
        const blocks = Math.ceil(rows / blockRows);
        return { ch, offset, len, firstRow, rows, blockRows, blocks, slot: 0 };
      });
      let slots = 0;
      for (const j of jobs) {
        j.slot = slots;
        slots += Math.ceil((j.blocks * cols) / align) * align;
      }
      const batch = ctx.batch(op);
      const partials = batch.temp(ctx.acquire({ label: 'columnDots partial sums', size: slots * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC }));
      const aChunks = rt.chunks(A, op);
      const bChunks = rt.chunks(B, op);
      for (const j of jobs) {
        const tiles = j.blocks * colGroups;
        batch.dispatch(KERNELS.columnDots, {
          params: { numel: j.len, offset: j.offset, row_len: cols, first_row: j.firstRow, rows: j.rows, block_rows: j.blockRows, tiles_n: colGroups, tiles },
          buffers: { a: aChunks[j.ch], b: bChunks[j.ch], out: { buffer: partials, offset: j.slot * 4, size: j.blocks * cols * 4 } },
          workgroups: tiles,
        });
      }
      batch.readback(partials, 0, slots * 4);
      const [bytes] = await batch.submit();
      const values = new Float32Array(bytes);
      for (const j of jobs) {
        for (let blk = 0; blk < j.blocks; blk++) {
          const base = j.slot + blk * cols;
          for (let c = 0; c < cols; c++) result[c] += values[base + c];
        }
      }
      return result;
    },
  };
}

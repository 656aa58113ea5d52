/**
 * Transformer ops (src/shaders/model.wgsl): what a Llama-family forward pass needs besides matrix
 * products (those are linalg's matmul). Activations are 2-D [rows, width] tensors, one row per
 * token; a batch of B sequences of T tokens each is B·T rows, sequence by sequence. Weights are
 * 1-D (norms, biases) or 2-D (tables). Token ids and targets come from the host as integer arrays.
 * Reference: model.cpu.ts (dot products and sums in f64, rounded once; the GPU sums in f32).
 *
 * Accuracy of the GPU against the reference (model.test.ts states each bound): rmsNorm, attention
 * and logSoftmaxAt differ by f32 summation order and the WGSL accuracy of exp, log and
 * inverseSqrt; rope and addRows by at most a fused multiply-add; swiglu by exp and one division;
 * gatherRows, concatSequences and argmaxRows are exact.
 *
 * On the GPU, row-wise ops need whole rows in each chunk of an activation (true unless a row is
 * longer than a chunk); weights, the rotary table, and attention's keys and values must each be
 * one chunk (at most maxStorageBufferBindingSize bytes).
 */
import modelWgsl from '../../shaders/model.wgsl?raw';
import type { Tensor } from '../backend.ts';
import type { CommandBatch } from '../context.ts';
import { chunkLength, chunkStart, rowsPerChunk, type BufferRange, type ChunkLayout, type GpuTensor } from '../gpu-tensor.ts';
import { defineKernel, groupsFor, shaderModule } from '../kernel.ts';
import type { GpuOpRuntime } from './runtime.ts';

export interface RopeOptions {
  /** Query (or key) heads in a row; head_dim = table width, row width = heads·head_dim. */
  heads: number;
  /** Rows per sequence (a batch of sequences is their rows one after the other). */
  seqLen: number;
  /** Position of each sequence's first row (the tokens already in the KV cache). @default 0 */
  positionOffset?: number;
}

export interface AttentionOptions {
  /** Sequences in the batch: q has batch·T rows, k and v batch·S rows (S ≥ T). */
  batch: number;
  /** Query heads per row of q. */
  heads: number;
  /** Key/value heads per row of k and v (divides heads: query head h reads kv head h / (heads / kvHeads)). */
  kvHeads: number;
}

export interface ModelOps {
  /** RMSNorm of each row: weight[j] · (x[r, j] / sqrt(mean_j x[r, j]² + eps)); weight is [width]. */
  rmsNorm(x: Tensor, weight: Tensor, eps: number): Promise<Tensor>;
  /**
   * Rotary position embeddings on every head of every row (Hugging Face's rotate_half convention:
   * pairs (p, p + head_dim/2)). `table` is [positions, head_dim]: cos θ(pos, p) in columns
   * [0, head_dim/2), sin θ(pos, p) in [head_dim/2, head_dim) (see model/rope.ts); row r has
   * position positionOffset + (r mod seqLen).
   */
  rope(x: Tensor, table: Tensor, opts: RopeOptions): Promise<Tensor>;
  /**
   * Causal scaled-dot-product attention with grouped KV heads, softmax in f32 with the row max
   * subtracted. q [batch·T, heads·d], k and v [batch·S, kvHeads·d] (the KV cache: each sequence's
   * S keys, of which the last T belong to q's rows); query t of a sequence sees keys 0..S−T+t.
   * Scale 1/sqrt(d). Result [batch·T, heads·d].
   */
  attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Promise<Tensor>;
  /** silu(gate) ⊙ up, silu(g) = g / (1 + exp(−g)) (the SwiGLU MLP's hidden activation). */
  swiglu(gate: Tensor, up: Tensor): Promise<Tensor>;
  /** x[r, j] + row[j] for a 2-D x [rows, width] and a 1-D row [width] (a linear layer's bias). */
  addRows(x: Tensor, row: Tensor): Promise<Tensor>;
  /** Rows `indices` of a 2-D table, as a new [indices.length, width] tensor (token embeddings). */
  gatherRows(table: Tensor, indices: ArrayLike<number>): Promise<Tensor>;
  /**
   * Per sequence, a's rows then b's: [batch·P, w] and [batch·Q, w] → [batch·(P+Q), w] (appending a
   * step's keys or values to the KV cache).
   */
  concatSequences(a: Tensor, b: Tensor, batch: number): Promise<Tensor>;
  /**
   * Per row of a 2-D x: the first index of its largest value, as f32 [rows]. The reference skips
   * NaN (−1 for a row of NaN); WGSL may assume finite values, so the GPU's answer for rows with NaN
   * or infinities is unspecified.
   */
  argmaxRows(x: Tensor): Promise<Tensor>;
  /** Per row r of a 2-D x: log_softmax(x[r])[targets[r]], as f32 [rows]. */
  logSoftmaxAt(x: Tensor, targets: ArrayLike<number>): Promise<Tensor>;
}

type ErrorMaker = { error(op: string, reason: string): Error };

/** [rows, width] of a 2-D tensor, or an error naming the op. */
export function rowsOf(rt: ErrorMaker, x: Tensor, op: string, what = 'x'): [number, number] {
  if (x.shape.length !== 2) throw rt.error(op, `${what} has shape [${x.shape.join(', ')}], expected [rows, width]`);
  return [x.shape[0], x.shape[1]];
}

/** A 1-D tensor of `width` elements (a norm weight or a bias), or an error. */
export function checkRowVector(rt: ErrorMaker, v: Tensor, width: number, op: string, what: string): void {
  if (v.shape.length !== 1 || v.shape[0] !== width) {
    throw rt.error(op, `${what} has shape [${v.shape.join(', ')}], expected [${width}] (the width of x)`);
  }
}

export function checkSameShape(rt: ErrorMaker, a: Tensor, b: Tensor, op: string, names: [string, string]): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw rt.error(op, `${names[0]} has shape [${a.shape.join(', ')}], ${names[1]} [${b.shape.join(', ')}]`);
  }
}

/** Validated rope geometry: head_dim, half, positions in the table. */
export function ropeDims(rt: ErrorMaker, x: Tensor, table: Tensor, opts: RopeOptions): { rows: number; width: number; headDim: number; positions: number; offset: number } {
  const [rows, width] = rowsOf(rt, x, 'rope');
  const [positions, headDim] = rowsOf(rt, table, 'rope', 'table');
  const offset = opts.positionOffset ?? 0;
  if (headDim % 2 !== 0 || headDim === 0) throw rt.error('rope', `table width ${headDim} is not an even head_dim`);
  if (!(Number.isInteger(opts.heads) && opts.heads > 0) || opts.heads * headDim !== width) {
    throw rt.error('rope', `x rows have ${width} elements, not heads (${opts.heads}) × head_dim (${headDim})`);
  }
  if (!(Number.isInteger(opts.seqLen) && opts.seqLen > 0) || rows % opts.seqLen !== 0) {
    throw rt.error('rope', `${rows} rows are not whole sequences of ${opts.seqLen}`);
  }
  if (!(Number.isInteger(offset) && offset >= 0) || offset + opts.seqLen > positions) {
    throw rt.error('rope', `positions ${offset}..${offset + opts.seqLen - 1} are beyond the table's ${positions}`);
  }
  return { rows, width, headDim, positions, offset };
}

/** Validated attention geometry. */
export function attentionDims(rt: ErrorMaker, q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions) {
  const [qRows, qWidth] = rowsOf(rt, q, 'attention', 'q');
  const [kRows, kWidth] = rowsOf(rt, k, 'attention', 'k');
  checkSameShape(rt, k, v, 'attention', ['k', 'v']);
  const { batch, heads, kvHeads } = opts;
  for (const [name, value] of Object.entries({ batch, heads, kvHeads })) {
    if (!(Number.isInteger(value) && value > 0)) throw rt.error('attention', `${name} must be a positive integer, not ${value}`);
  }
  if (heads % kvHeads !== 0) throw rt.error('attention', `${heads} query heads are not a multiple of ${kvHeads} kv heads`);
  if (qWidth % heads !== 0) throw rt.error('attention', `q rows of ${qWidth} do not split into ${heads} heads`);
  const headDim = qWidth / heads;
  if (kWidth !== kvHeads * headDim) throw rt.error('attention', `k rows have ${kWidth} elements, not kvHeads (${kvHeads}) × head_dim (${headDim})`);
  if (qRows % batch !== 0 || kRows % batch !== 0) throw rt.error('attention', `q (${qRows} rows) or k (${kRows} rows) is not ${batch} whole sequences`);
  const seqLen = qRows / batch;
  const keys = kRows / batch;
  if (keys < seqLen) throw rt.error('attention', `${keys} keys per sequence for ${seqLen} queries (the cache must hold the queries' own keys)`);
  return { rows: qRows, width: qWidth, headDim, seqLen, keys, kvWidth: kWidth, group: heads / kvHeads };
}

/** Row indices as integers in [0, limit), or an error naming the first bad one. */
export function checkIndices(rt: ErrorMaker, indices: ArrayLike<number>, limit: number, op: string, what: string): Uint32Array<ArrayBuffer> {
  const out = new Uint32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const v = indices[i];
    if (!(Number.isInteger(v) && v >= 0 && v < limit)) throw rt.error(op, `${what} ${i} is ${v}, outside [0, ${limit})`);
    out[i] = v;
  }
  return out;
}

export function concatDims(rt: ErrorMaker, a: Tensor, b: Tensor, batch: number) {
  const [aRows, w] = rowsOf(rt, a, 'concatSequences', 'a');
  const [bRows, bw] = rowsOf(rt, b, 'concatSequences', 'b');
  if (bw !== w) throw rt.error('concatSequences', `a rows have ${w} elements, b rows ${bw}`);
  if (!(Number.isInteger(batch) && batch > 0) || aRows % batch !== 0 || bRows % batch !== 0) {
    throw rt.error('concatSequences', `a (${aRows} rows) or b (${bRows} rows) is not ${batch} whole sequences`);
  }
  return { width: w, p: aRows / batch, q: bRows / batch };
}

/** Threads per workgroup of the wide row reductions (rmsNorm, argmaxRows, logSoftmaxAt). */
export const ROW_THREADS = 64;
/** Rows at least this long are reduced by a workgroup each, shorter ones by one thread each (model.wgsl). */
export const WIDE_ROW = 4096;
/** Largest head_dim the attention kernel's private accumulator holds (MAX_HEAD_DIM in model.wgsl). */
export const MAX_HEAD_DIM = 256;

const MODEL = shaderModule('model.wgsl', { file: 'model.wgsl', code: modelWgsl });
const ROW = { ROW_THREADS };
const KERNELS = {
  rmsNorm: defineKernel(MODEL, 'rms_norm', { uses: ['x', 'w', 'out'] }),
  rmsNormWide: defineKernel(MODEL, 'rms_norm_wide', { uses: ['x', 'w', 'out'], constants: ROW }),
  rope: defineKernel(MODEL, 'rope', { uses: ['x', 'w', 'out'] }),
  attention: defineKernel(MODEL, 'attention', { uses: ['x', 'y', 'z', 'out'] }),
  swiglu: defineKernel(MODEL, 'swiglu', { uses: ['x', 'y', 'out'] }),
  addRows: defineKernel(MODEL, 'add_rows', { uses: ['x', 'w', 'out'] }),
  argmaxRows: defineKernel(MODEL, 'argmax_rows', { uses: ['x', 'out'] }),
  argmaxRowsWide: defineKernel(MODEL, 'argmax_rows_wide', { uses: ['x', 'out'], constants: ROW }),
  logSoftmaxAt: defineKernel(MODEL, 'log_softmax_at', { uses: ['x', 'idx', 'out'] }),
  logSoftmaxAtWide: defineKernel(MODEL, 'log_softmax_at_wide', { uses: ['x', 'idx', 'out'], constants: ROW }),
};

/** The chunks of a row layout as (chunk, first row, rows), or an error when a row spans chunks. */
function rowChunks(rt: GpuOpRuntime, op: string, t: GpuTensor, what: string): { chunk: number; row0: number; rows: number }[] {
  const layout = t.layout;
  if (layout.numel === 0) return [];
  const perChunk = layout.count <= 1 ? layout.rows : rowsPerChunk(layout);
  if (perChunk === 0) {
    throw rt.error(op, `${what} [${t.shape.join(', ')}] has rows of ${layout.rowLen} elements, longer than a chunk (${layout.chunkLen}); raise maxChunkElements`);
  }
  const out = [];
  for (let c = 0; c < layout.count; c++) {
    const row0 = c * perChunk;
    out.push({ chunk: c, row0, rows: Math.min(perChunk, layout.rows - row0) });
  }
  return out;
}

/** The single buffer of a tensor that must be one chunk (weights, tables, keys, values). */
function whole(rt: GpuOpRuntime, op: string, t: GpuTensor, what: string): BufferRange {
  const chunks = rt.chunks(t, op);
  if (chunks.length > 1) {
    throw rt.error(op, `${what} [${t.shape.join(', ')}] spans ${chunks.length} buffers; it must fit one (${rt.chunkCapacity} elements)`);
  }
  return chunks[0];
}

/**
 * Record copies of the global elements [srcStart, srcStart + len) of `src` to [dstStart, …) of a
 * tensor laid out as `dstLayout` in `dst`, cut wherever either side changes chunk.
 */
function recordCopy(batch: CommandBatch, src: readonly BufferRange[], srcLayout: ChunkLayout, srcStart: number, dst: readonly BufferRange[], dstLayout: ChunkLayout, dstStart: number, len: number): void {
  let done = 0;
  while (done < len) {
    const s = srcStart + done;
    const d = dstStart + done;
    const sc = Math.floor(s / srcLayout.chunkLen);
    const dc = Math.floor(d / dstLayout.chunkLen);
    const run = Math.min(len - done, (sc + 1) * srcLayout.chunkLen - s, (dc + 1) * dstLayout.chunkLen - d);
    batch.copy(src[sc].buffer, src[sc].offset + (s - chunkStart(srcLayout, sc)) * 4, dst[dc].buffer, dst[dc].offset + (d - chunkStart(dstLayout, dc)) * 4, run * 4);
    done += run;
  }
}

/** A u32 storage buffer holding `values`, released with the batch. */
function uintBuffer(rt: GpuOpRuntime, batch: CommandBatch, label: string, values: Uint32Array<ArrayBuffer>): BufferRange {
  const size = Math.max(4, values.byteLength);
  const buffer = batch.temp(rt.ctx.acquire({ label, size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST }));
  if (values.byteLength > 0) rt.ctx.device.queue.writeBuffer(buffer, 0, values);
  return { buffer, offset: 0, size };
}

export function modelGpu(rt: GpuOpRuntime): ModelOps {
  const { ctx } = rt;

  /**
   * A row reduction writing one value per row into a 1-D [rows] output: one dispatch per pair of
   * (x chunk, out chunk) that share rows.
   */
  async function perRowScalar(op: string, input: Tensor, targets: Uint32Array<ArrayBuffer> | null) {
    const x = rt.tensor(input, op);
    const [rows] = rowsOf(rt, x, op);
    return rt.output(op, [rows], async (out, outLayout) => {
      const batch = ctx.batch(op);
      const xc = rt.chunks(x, op);
      const idx = targets ? uintBuffer(rt, batch, `${op} targets`, targets) : null;
      for (const { chunk, row0, rows: n } of rowChunks(rt, op, x, 'x')) {
        out.forEach((o, c) => {
          const lo = Math.max(row0, chunkStart(outLayout, c));
          const hi = Math.min(row0 + n, chunkStart(outLayout, c) + chunkLength(outLayout, c));
          if (hi <= lo) return;
          const params = { rows: hi - lo, first_row: lo, x_row0: row0, out_row0: chunkStart(outLayout, c), row_len: x.layout.rowLen };
          const wide = x.layout.rowLen >= WIDE_ROW;
          const workgroups = wide ? hi - lo : groupsFor(hi - lo);
          if (idx) batch.dispatch(wide ? KERNELS.logSoftmaxAtWide : KERNELS.logSoftmaxAt, { params, buffers: { x: xc[chunk], idx, out: o }, workgroups });
          else batch.dispatch(wide ? KERNELS.argmaxRowsWide : KERNELS.argmaxRows, { params, buffers: { x: xc[chunk], out: o }, workgroups });
        });
      }
      await batch.submit();
    });
  }

  return {
    async rmsNorm(input, weight, eps) {
      const x = rt.tensor(input, 'rmsNorm');
      const [, width] = rowsOf(rt, x, 'rmsNorm');
      checkRowVector(rt, weight, width, 'rmsNorm', 'weight');
      const w = whole(rt, 'rmsNorm', rt.tensor(weight, 'rmsNorm'), 'weight');
      return rt.output('rmsNorm', x.shape, async (out) => {
        const batch = ctx.batch('rmsNorm');
        const xc = rt.chunks(x, 'rmsNorm');
        const wide = width >= WIDE_ROW;
        for (const { chunk, row0, rows } of rowChunks(rt, 'rmsNorm', x, 'x')) {
          batch.dispatch(wide ? KERNELS.rmsNormWide : KERNELS.rmsNorm, {
            params: { rows, first_row: row0, x_row0: row0, row_len: width, eps },
            buffers: { x: xc[chunk], w, out: out[chunk] },
            workgroups: wide ? rows : groupsFor(rows),
          });
        }
        await batch.submit();
      });
    },

    async rope(input, tableTensor, opts) {
      const x = rt.tensor(input, 'rope');
      const { width, headDim, offset } = ropeDims(rt, x, tableTensor, opts);
      const table = whole(rt, 'rope', rt.tensor(tableTensor, 'rope'), 'table');
      const half = headDim / 2;
      return rt.output('rope', x.shape, async (out) => {
        const batch = ctx.batch('rope');
        const xc = rt.chunks(x, 'rope');
        for (const { chunk, row0, rows } of rowChunks(rt, 'rope', x, 'x')) {
          const n = rows * opts.heads * half;
          batch.dispatch(KERNELS.rope, {
            params: { n, row_len: width, heads: opts.heads, half, x_row0: row0, seq_len: opts.seqLen, pos_offset: offset },
            buffers: { x: xc[chunk], w: table, out: out[chunk] },
            workgroups: groupsFor(n),
          });
        }
        await batch.submit();
      });
    },

    async attention(qIn, kIn, vIn, opts) {
      const q = rt.tensor(qIn, 'attention');
      const dims = attentionDims(rt, q, kIn, vIn, opts);
      if (dims.headDim > MAX_HEAD_DIM) throw rt.error('attention', `head_dim ${dims.headDim} is above the kernel's ${MAX_HEAD_DIM}`);
      const k = whole(rt, 'attention', rt.tensor(kIn, 'attention'), 'k');
      const v = whole(rt, 'attention', rt.tensor(vIn, 'attention'), 'v');
      return rt.output('attention', q.shape, async (out) => {
        const batch = ctx.batch('attention');
        const qc = rt.chunks(q, 'attention');
        for (const { chunk, row0, rows } of rowChunks(rt, 'attention', q, 'q')) {
          const n = rows * opts.heads;
          batch.dispatch(KERNELS.attention, {
            params: {
              n,
              row_len: dims.width,
              kv_row_len: dims.kvWidth,
              heads: opts.heads,
              head_dim: dims.headDim,
              group: dims.group,
              x_row0: row0,
              seq_len: dims.seqLen,
              keys: dims.keys,
              scale: 1 / Math.sqrt(dims.headDim),
            },
            buffers: { x: qc[chunk], y: k, z: v, out: out[chunk] },
            workgroups: groupsFor(n),
          });
        }
        await batch.submit();
      });
    },

    async swiglu(gateIn, upIn) {
      const gate = rt.tensor(gateIn, 'swiglu');
      const up = rt.tensor(upIn, 'swiglu');
      checkSameShape(rt, gate, up, 'swiglu', ['gate', 'up']);
      return rt.output('swiglu', gate.shape, async (out, layout) => {
        const batch = ctx.batch('swiglu');
        const gc = rt.chunks(gate, 'swiglu');
        const uc = rt.chunks(up, 'swiglu');
        out.forEach((o, c) => {
          const n = chunkLength(layout, c);
          batch.dispatch(KERNELS.swiglu, { params: { n }, buffers: { x: gc[c], y: uc[c], out: o }, workgroups: groupsFor(n) });
        });
        await batch.submit();
      });
    },

    async addRows(input, rowIn) {
      const x = rt.tensor(input, 'addRows');
      const [, width] = rowsOf(rt, x, 'addRows');
      checkRowVector(rt, rowIn, width, 'addRows', 'row');
      const w = whole(rt, 'addRows', rt.tensor(rowIn, 'addRows'), 'row');
      return rt.output('addRows', x.shape, async (out, layout) => {
        const batch = ctx.batch('addRows');
        const xc = rt.chunks(x, 'addRows');
        out.forEach((o, c) => {
          const n = chunkLength(layout, c);
          batch.dispatch(KERNELS.addRows, {
            params: { n, offset: chunkStart(layout, c), row_len: width },
            buffers: { x: xc[c], w, out: o },
            workgroups: groupsFor(n),
          });
        });
        await batch.submit();
      });
    },

    async gatherRows(tableIn, indices) {
      const table = rt.tensor(tableIn, 'gatherRows');
      const [rows, width] = rowsOf(rt, table, 'gatherRows', 'table');
      const ids = checkIndices(rt, indices, rows, 'gatherRows', 'index');
      return rt.output('gatherRows', [ids.length, width], async (out, layout) => {
        const batch = ctx.batch('gatherRows');
        const src = rt.chunks(table, 'gatherRows');
        ids.forEach((id, i) => recordCopy(batch, src, table.layout, id * width, out, layout, i * width, width));
        await batch.submit();
      });
    },

    async concatSequences(aIn, bIn, sequences) {
      const a = rt.tensor(aIn, 'concatSequences');
      const b = rt.tensor(bIn, 'concatSequences');
      const { width, p, q } = concatDims(rt, a, b, sequences);
      return rt.output('concatSequences', [sequences * (p + q), width], async (out, layout) => {
        const batch = ctx.batch('concatSequences');
        const ac = rt.chunks(a, 'concatSequences');
        const bc = rt.chunks(b, 'concatSequences');
        for (let s = 0; s < sequences; s++) {
          const at = s * (p + q) * width;
          recordCopy(batch, ac, a.layout, s * p * width, out, layout, at, p * width);
          recordCopy(batch, bc, b.layout, s * q * width, out, layout, at + p * width, q * width);
        }
        await batch.submit();
      });
    },

    argmaxRows: (x) => perRowScalar('argmaxRows', x, null),

    async logSoftmaxAt(x, targets) {
      const [rows, width] = rowsOf(rt, x, 'logSoftmaxAt');
      if (targets.length !== rows) throw rt.error('logSoftmaxAt', `${targets.length} targets for ${rows} rows`);
      return perRowScalar('logSoftmaxAt', x, checkIndices(rt, targets, width, 'logSoftmaxAt', 'target'));
    },
  };
}

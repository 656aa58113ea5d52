/**
 * Reductions (src/shaders/reduce.wgsl): Gram matrices of flattened tensors or of their rows, L1
 * norms, the smallest and largest entry, and the KL divergence of two tensors' row softmaxes. The GPU sums blocks in f32 and the host adds the block sums in f64; the reference
 * (reduce.cpu.ts) accumulates in f64 throughout, so the two agree to f32 rounding of the blocks.
 * rescaleL1 never leaves the device: its block sums are added by one workgroup in compensated f32
 * (about f64's result rounded to f32) and feed a scaling kernel through a one-value buffer.
 */
import reduceWgsl from '../../shaders/reduce.wgsl?raw';
import type { Tensor } from '../backend.ts';
import type { BufferBinding, CommandBatch } from '../context.ts';
import { type ChunkLayout, chunkLength, chunkStart, type GpuTensor } from '../gpu-tensor.ts';
import { defineKernel, groupsFor, shaderModule, WORKGROUP_SIZE } from '../kernel.ts';
import type { GpuOpRuntime } from './runtime.ts';

export interface ReduceOps {
  /** Gram matrix G[i*N+j] = x_i · x_j of the flattened tensors (f64-accumulated where possible). */
  gram(xs: readonly Tensor[]): Promise<Float64Array>;
  /** Per-row Gram matrices: result[r*N*N + i*N + j] = row r of x_i · row r of x_j. */
  gramRows(xs: readonly Tensor[]): Promise<Float64Array>;
  /** Σ |x| over the whole tensor (L1 norm). */
  sumAbs(x: Tensor): Promise<number>;
  /**
   * x · l1RescaleFactor(‖reference‖₁, ‖x‖₁, eps) as a new tensor: DARE's and DELLA's rescale of
   * what a mask kept (x) to the L1 norm of the task vector it came from (reference). The norms and
   * the factor stay on the device (nothing is read back); the factor is applied as one f32 product
   * per element.
   */
  rescaleL1(x: Tensor, reference: Tensor, eps: number): Promise<Tensor>;
  /** The smallest and largest entry, NaN ignored (+Infinity and −Infinity when there is none). */
  minMax(x: Tensor): Promise<{ min: number; max: number }>;
  /**
   * Per row of `rowLength` entries (rows = numel / rowLength): KL(P‖Q) = Σ P·ln(P/Q) with
   * P = softmax(p row) + eps and Q = softmax(q row) + eps (mergekit's arcee_fusion importance).
   * Computed as Σ Q·φ(P/Q − 1), φ(w) = (1 + w)·ln(1 + w) − w ≥ 0, which is the same sum (Σ P = Σ Q)
   * without cancellation: accurate for nearly equal rows, where the direct f32 sum is not.
   */
  softmaxKlRows(p: Tensor, q: Tensor, rowLength: number, eps: number): Promise<Float64Array>;
}

const REDUCE = shaderModule('reduce.wgsl', { file: 'reduce.wgsl', code: reduceWgsl });
const KERNELS = {
  dotPartials: defineKernel(REDUCE, 'dot_partials', { uses: ['a', 'b', 'partials'] }),
  absPartials: defineKernel(REDUCE, 'abs_partials', { uses: ['a', 'partials'] }),
  rescaleFactor: defineKernel(REDUCE, 'l1_rescale_factor', { uses: ['partials', 'factor'] }),
  scaleByFactor: defineKernel(REDUCE, 'scale_by_factor', { uses: ['a', 'factor', 'out'] }),
  minMaxPartials: defineKernel(REDUCE, 'min_max_partials', { uses: ['a', 'partials'] }),
  softmaxPartials: defineKernel(REDUCE, 'softmax_partials', { uses: ['a', 'partials'] }),
  klPartials: defineKernel(REDUCE, 'kl_partials', { uses: ['a', 'b', 'partials', 'rows'] }),
  softmaxPartialsSerial: defineKernel(REDUCE, 'softmax_partials_serial', { uses: ['a', 'partials'] }),
  klPartialsSerial: defineKernel(REDUCE, 'kl_partials_serial', { uses: ['a', 'b', 'partials', 'rows'] }),
};

/** Rows up to this long are reduced one block per thread (softmaxKlRows), longer ones one per workgroup. */
const SERIAL_ROW_MAX = 256;

/** Elements summed by one reduce.wgsl workgroup (256 threads × 16). */
export const REDUCE_BLOCK = 4096;

/** One (input, chunk) of a block reduction: blocks [first, first + count) into partials from `slot`. */
interface BlockJob {
  input: number;
  chunk: number;
  first: number;
  count: number;
  slot: number;
}

interface BlockPlan {
  jobs: BlockJob[];
  /** f32 slots of the partials buffer, alignment padding included. */
  slots: number;
  blocksPerRow: number;
  /** Elements per block. */
  block: number;
}

export function reduceGpu(rt: GpuOpRuntime): ReduceOps {
  const { ctx } = rt;

  /**
   * The block jobs over `inputs` tensors of `layout`: per (input, chunk), the row blocks its elements
   * fall in (blocks never straddle a row, reduce.wgsl) and the partials slot its `width` values per
   * block start at, each slot aligned to be a storage binding offset.
   */
  function planBlocks(layout: ChunkLayout, inputs: number, rowLen: number, width: number): BlockPlan {
    const block = rt.reduceBlock;
    const blocksPerRow = Math.ceil(rowLen / block);
    const blockOf = (g: number) => Math.floor(g / rowLen) * blocksPerRow + Math.floor((g % rowLen) / block);
    const align = ctx.limits.minStorageBufferOffsetAlignment / 4;
    const jobs: BlockJob[] = [];
    let slots = 0;
    for (let input = 0; input < inputs; input++) {
      for (let c = 0; c < layout.count; c++) {
        const start = chunkStart(layout, c);
        const first = blockOf(start);
        const count = blockOf(start + chunkLength(layout, c) - 1) - first + 1;
        jobs.push({ input, chunk: c, first, count, slot: slots });
        slots += Math.ceil((width * count) / align) * align;
      }
    }
    return { jobs, slots, blocksPerRow, block };
  }

  /** The reduce.wgsl parameters every block kernel takes, for one job of `plan`. */
  function blockParams(layout: ChunkLayout, plan: BlockPlan, job: BlockJob, rowLen: number) {
    return {
      n: chunkLength(layout, job.chunk),
      offset: chunkStart(layout, job.chunk),
      row_len: rowLen,
      block_len: plan.block,
      first_block: job.first,
      blocks_per_row: plan.blocksPerRow,
      count: job.count,
    };
  }

  /**
   * Record the block sums of `pairs` into one partials buffer (a batch temp): (a, b) pairs give dot
   * products, (a, null) Σ|a|. Blocks never straddle a row (reduce.wgsl). Each (pair, chunk) job
   * writes `count` sums from `slot` on; slots between jobs are padding (zeros when `zero`).
   */
  function recordPartialSums(
    batch: CommandBatch,
    op: string,
    pairs: readonly [GpuTensor, GpuTensor | null][],
    rowLen: number,
    opts: { zero?: boolean; usage?: number } = {},
  ): { partials: GPUBuffer } & BlockPlan {
    const layout = pairs[0][0].layout;
    const plan = planBlocks(layout, pairs.length, rowLen, 1);
    const { jobs, slots } = plan;
    const partials = batch.temp(
      ctx.acquire({ label: `${op} partial sums`, size: slots * 4, usage: GPUBufferUsage.STORAGE | (opts.usage ?? 0), zero: opts.zero }),
    );
    const chunkLists = pairs.map(([a, b]) => [rt.chunks(a, op), b ? rt.chunks(b, op) : null] as const);
    for (const job of jobs) {
      const [ac, bc] = chunkLists[job.input];
      const params = blockParams(layout, plan, job, rowLen);
      const target = { buffer: partials, offset: job.slot * 4, size: job.count * 4 };
      if (bc) batch.dispatch(KERNELS.dotPartials, { params, buffers: { a: ac[job.chunk], b: bc[job.chunk], partials: target }, workgroups: job.count });
      else batch.dispatch(KERNELS.absPartials, { params, buffers: { a: ac[job.chunk], partials: target }, workgroups: job.count });
    }
    return { partials, ...plan };
  }

  /**
   * Sums over blocks that never straddle a row (reduce.wgsl), added per row in f64 on the host.
   * `pairs` are (a, b) for dot products or (a, null) for Σ|a|. Returns sums[pair * rows + row].
   */
  async function partialSums(op: string, pairs: readonly [GpuTensor, GpuTensor | null][], rowLen: number, rows: number): Promise<Float64Array> {
    const result = new Float64Array(pairs.length * rows);
    const layout = pairs[0][0].layout;
    if (layout.numel === 0 || rowLen === 0) return result;
    const batch = ctx.batch(op);
    const { partials, slots, jobs, blocksPerRow } = recordPartialSums(batch, op, pairs, rowLen, { usage: GPUBufferUsage.COPY_SRC });
    batch.readback(partials, 0, slots * 4);
    const [bytes] = await batch.submit();
    const values = new Float32Array(bytes);
    for (const job of jobs) {
      for (let w = 0; w < job.count; w++) {
        const row = Math.floor((job.first + w) / blocksPerRow);
        result[job.input * rows + row] += values[job.slot + w];
      }
    }
    return result;
  }

  /**
   * One kernel over the row blocks of each tensor of `inputs` (a, and b when given), `width` f32
   * values per block read back; `rows` (optional) is a per-row host array the kernel reads.
   * Returns, per input, the values of every block as (row, values) in block order.
   */
  async function rowBlocks(
    op: string,
    kernel: (typeof KERNELS)[keyof typeof KERNELS],
    inputs: readonly [GpuTensor, GpuTensor | null][],
    rowLen: number,
    width: number,
    rowValues: Float32Array | null,
    extraParams: Record<string, number> = {},
    /** One block per thread (256 per workgroup) instead of one per workgroup. */
    serial = false,
  ): Promise<{ row: number; values: Float32Array }[][]> {
    const layout = inputs[0][0].layout;
    const out: { row: number; values: Float32Array }[][] = inputs.map(() => []);
    if (layout.numel === 0 || rowLen === 0) return out;
    const plan = planBlocks(layout, inputs.length, rowLen, width);
    const { jobs, slots, blocksPerRow } = plan;
    const batch = ctx.batch(op);
    const partials = batch.temp(ctx.acquire({ label: `${op} partials`, size: slots * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC }));
    let rowsBuffer: GPUBuffer | undefined;
    if (rowValues) {
      rowsBuffer = batch.temp(ctx.acquire({ label: `${op} row values`, size: Math.max(4, rowValues.byteLength), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST }));
      ctx.device.queue.writeBuffer(rowsBuffer, 0, new Float32Array(rowValues));
    }
    const chunkLists = inputs.map(([a, b]) => [rt.chunks(a, op), b ? rt.chunks(b, op) : null] as const);
    for (const job of jobs) {
      const [ac, bc] = chunkLists[job.input];
      const params = { ...blockParams(layout, plan, job, rowLen), ...extraParams };
      const buffers: Record<string, BufferBinding> = { a: ac[job.chunk], partials: { buffer: partials, offset: job.slot * 4, size: width * job.count * 4 } };
      if (bc) buffers.b = bc[job.chunk];
      if (rowsBuffer) buffers.rows = rowsBuffer;
      batch.dispatch(kernel, { params, buffers: buffers as never, workgroups: serial ? Math.ceil(job.count / WORKGROUP_SIZE) : job.count });
    }
    batch.readback(partials, 0, slots * 4);
    const values = new Float32Array((await batch.submit())[0]);
    for (const job of jobs) {
      for (let w = 0; w < job.count; w++) {
        const row = Math.floor((job.first + w) / blocksPerRow);
        out[job.input].push({ row, values: values.subarray(job.slot + width * w, job.slot + width * (w + 1)) });
      }
    }
    return out;
  }

  /** The upper-triangle pairs (i <= j) of n tensors, in row-major order. */
  function upperPairs(ts: readonly GpuTensor[]): [GpuTensor, GpuTensor][] {
    const pairs: [GpuTensor, GpuTensor][] = [];
    for (let i = 0; i < ts.length; i++) for (let j = i; j < ts.length; j++) pairs.push([ts[i], ts[j]]);
    return pairs;
  }

  return {
    async gram(xs) {
      const ts = rt.sameSize(xs, 'gram');
      const n = ts.length;
      const sums = await partialSums('gram', upperPairs(ts), ts[0].numel, 1);
      return symmetricBlocks(sums, n, 1);
    },
    async gramRows(xs) {
      const ts = rt.sameSize(xs, 'gramRows');
      const { rows, rowLen } = ts[0].layout;
      const sums = await partialSums('gramRows', upperPairs(ts), rowLen, rows);
      return symmetricBlocks(sums, ts.length, rows);
    },
    async sumAbs(x) {
      const t = rt.tensor(x, 'sumAbs');
      return (await partialSums('sumAbs', [[t, null]], t.numel, 1))[0];
    },
    async rescaleL1(x, reference, eps) {
      const [t, r] = rt.sameSize([x, reference], 'rescaleL1');
      return rt.output('rescaleL1', t.shape, async (out, layout) => {
        if (layout.numel === 0) return;
        const batch = ctx.batch('rescaleL1');
        // Σ|reference| in the slots before `split`, Σ|x| from it on; zeroed padding between jobs
        // lets the factor kernel add each side's slots as one range.
        const { partials, slots, jobs } = recordPartialSums(batch, 'rescaleL1', [[r, null], [t, null]], t.numel, { zero: true });
        const split = jobs.find((j) => j.input === 1)!.slot;
        const factor = batch.temp(ctx.acquire({ label: 'rescaleL1 factor', size: 16, usage: GPUBufferUsage.STORAGE }));
        const factorRange = { buffer: factor, size: 16 };
        batch.dispatch(KERNELS.rescaleFactor, {
          params: { n: slots, split, eps: Math.fround(eps) },
          buffers: { partials: { buffer: partials, size: slots * 4 }, factor: factorRange },
          workgroups: 1,
        });
        const xc = rt.chunks(t, 'rescaleL1');
        out.forEach((o, c) => {
          const len = chunkLength(layout, c);
          batch.dispatch(KERNELS.scaleByFactor, { params: { n: len }, buffers: { a: xc[c], factor: factorRange, out: o }, workgroups: groupsFor(len) });
        });
        await batch.submit();
      });
    },
    async minMax(x) {
      const t = rt.tensor(x, 'minMax');
      const result = { min: Infinity, max: -Infinity };
      if (t.numel === 0) return result;
      // One workgroup per block of the whole tensor, blocks clipped to chunks (as partialSums):
      // each writes its block's (min, max) pair; the host takes the extremes.
      const { layout } = t;
      const block = rt.reduceBlock;
      const align = ctx.limits.minStorageBufferOffsetAlignment / 4;
      const jobs: { chunk: number; first: number; count: number; slot: number }[] = [];
      let slots = 0;
      for (let c = 0; c < layout.count; c++) {
        const start = chunkStart(layout, c);
        const first = Math.floor(start / block);
        const count = Math.floor((start + chunkLength(layout, c) - 1) / block) - first + 1;
        jobs.push({ chunk: c, first, count, slot: slots });
        slots += Math.ceil((2 * count) / align) * align;
      }
      const batch = ctx.batch('minMax');
      const partials = batch.temp(ctx.acquire({ label: 'minMax partial extremes', size: slots * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC }));
      const chunks = rt.chunks(t, 'minMax');
      for (const job of jobs) {
        const params = {
          n: chunkLength(layout, job.chunk),
          offset: chunkStart(layout, job.chunk),
          row_len: t.numel,
          block_len: block,
          first_block: job.first,
          blocks_per_row: Math.ceil(t.numel / block),
          count: job.count,
        };
        const target = { buffer: partials, offset: job.slot * 4, size: 2 * job.count * 4 };
        batch.dispatch(KERNELS.minMaxPartials, { params, buffers: { a: chunks[job.chunk], partials: target }, workgroups: job.count });
      }
      batch.readback(partials, 0, slots * 4);
      const values = new Float32Array((await batch.submit())[0]);
      for (const job of jobs) {
        for (let w = 0; w < job.count; w++) {
          const lo = values[job.slot + 2 * w];
          const hi = values[job.slot + 2 * w + 1];
          // A block of NaNs only reports +Inf / −Inf, which leave the extremes as they are.
          if (lo < result.min) result.min = lo;
          if (hi > result.max) result.max = hi;
        }
      }
      return result;
    },
    async softmaxKlRows(p, q, rowLength, eps) {
      const [a, b] = rt.sameSize([p, q], 'softmaxKlRows');
      const rows = checkRowLength('softmaxKlRows', a.numel, rowLength, (reason) => rt.error('softmaxKlRows', reason));
      const result = new Float64Array(rows);
      if (rows === 0 || rowLength === 0) return result;
      // Pass 1: per row of p and of q, its max M and log Σ exp(x − M), from the blocks' (max m_b,
      // Σ exp(x − m_b)) pairs: Σ exp(x − M) = Σ_b s_b·exp(m_b − M), added in f64.
      const serial = rowLength <= SERIAL_ROW_MAX;
      const softmaxKernel = serial ? KERNELS.softmaxPartialsSerial : KERNELS.softmaxPartials;
      const blocks = await rowBlocks('softmaxKlRows softmax', softmaxKernel, [[a, null], [b, null]], rowLength, 2, null, {}, serial);
      const maxima = [new Float64Array(rows).fill(-Infinity), new Float64Array(rows).fill(-Infinity)];
      const logSums = [new Float64Array(rows), new Float64Array(rows)];
      blocks.forEach((list, k) => {
        for (const { row, values } of list) maxima[k][row] = Math.max(maxima[k][row], values[0]);
        for (const { row, values } of list) logSums[k][row] += values[1] * Math.exp(values[0] - maxima[k][row]);
        for (let r = 0; r < rows; r++) logSums[k][r] = Math.log(logSums[k][r]);
      });
      // Pass 2: Σ Q·φ(w) with the row's constants from the f64 log-sum-exps.
      const constants = new Float32Array(3 * rows);
      for (let r = 0; r < rows; r++) {
        const lp = logSums[0][r];
        const lq = logSums[1][r];
        constants[3 * r] = maxima[0][r] - maxima[1][r] + (lp - lq);
        constants[3 * r + 1] = maxima[1][r] + lq;
        constants[3 * r + 2] = maxima[0][r] + lp;
      }
      const klKernel = serial ? KERNELS.klPartialsSerial : KERNELS.klPartials;
      const kl = await rowBlocks('softmaxKlRows', klKernel, [[a, b]], rowLength, 1, constants, { eps }, serial);
      for (const { row, values } of kl[0]) result[row] += values[0];
      return result;
    },
  };
}

/**
 * The factor that brings an L1 norm `after` back to `before` (mergekit's rescale of a sparsified
 * task vector): before / after, or 1 when either norm is below `eps` (or NaN). The one rule of
 * rescaleL1: the reference and the analysis use it as is, reduce.wgsl's l1_rescale_factor mirrors it.
 */
export function l1RescaleFactor(before: number, after: number, eps: number): number {
  return before >= eps && after >= eps ? before / after : 1;
}

/** Rows of a tensor of `numel` entries cut in rows of `rowLength`, or an error. */
export function checkRowLength(op: string, numel: number, rowLength: number, error: (reason: string) => Error): number {
  if (!Number.isInteger(rowLength) || rowLength < 0 || (rowLength === 0 ? numel !== 0 : numel % rowLength !== 0)) {
    throw error(`row length ${rowLength} does not divide ${numel} elements`);
  }
  return rowLength === 0 ? 0 : numel / rowLength;
}

/** rows N×N blocks from upper-triangle sums laid out as sums[pair * rows + row]. */
function symmetricBlocks(sums: Float64Array, n: number, rows: number): Float64Array {
  const g = new Float64Array(rows * n * n);
  for (let r = 0; r < rows; r++) {
    let p = 0;
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) {
        const s = sums[p * rows + r];
        g[r * n * n + i * n + j] = s;
        g[r * n * n + j * n + i] = s;
        p++;
      }
    }
  }
  return g;
}

/**
 * Reductions (src/shaders/reduce.wgsl): Gram matrices of flattened tensors or of their rows, L1
 * norms, and the smallest and largest entry. The GPU sums blocks in f32 and the host adds the block sums in f64; the reference
 * (reduce.cpu.ts) accumulates in f64 throughout, so the two agree to f32 rounding of the blocks.
 */
import reduceWgsl from '../../shaders/reduce.wgsl?raw';
import type { Tensor } from '../backend.ts';
import { chunkLength, chunkStart, type GpuTensor } from '../gpu-tensor.ts';
import { defineKernel, shaderModule } from '../kernel.ts';
import type { GpuOpRuntime } from './runtime.ts';

export interface ReduceOps {
  /** Gram matrix G[i*N+j] = x_i · x_j of the flattened tensors (f64-accumulated where possible). */
  gram(xs: readonly Tensor[]): Promise<Float64Array>;
  /** Per-row Gram matrices: result[r*N*N + i*N + j] = row r of x_i · row r of x_j. */
  gramRows(xs: readonly Tensor[]): Promise<Float64Array>;
  /** Σ |x| over the whole tensor (L1 norm). */
  sumAbs(x: Tensor): Promise<number>;
  /** The smallest and largest entry, NaN ignored (+Infinity and −Infinity when there is none). */
  minMax(x: Tensor): Promise<{ min: number; max: number }>;
}

const REDUCE = shaderModule('reduce.wgsl', { file: 'reduce.wgsl', code: reduceWgsl });
const KERNELS = {
  dotPartials: defineKernel(REDUCE, 'dot_partials', { uses: ['a', 'b', 'partials'] }),
  absPartials: defineKernel(REDUCE, 'abs_partials', { uses: ['a', 'partials'] }),
  minMaxPartials: defineKernel(REDUCE, 'min_max_partials', { uses: ['a', 'partials'] }),
};

/** Elements summed by one reduce.wgsl workgroup (256 threads × 16). */
export const REDUCE_BLOCK = 4096;

export function reduceGpu(rt: GpuOpRuntime): ReduceOps {
  const { ctx } = rt;

  /**
   * Sums over blocks that never straddle a row (reduce.wgsl), added per row in f64 on the host.
   * `pairs` are (a, b) for dot products or (a, null) for Σ|a|. Returns sums[pair * rows + row].
   */
  async function partialSums(op: string, pairs: readonly [GpuTensor, GpuTensor | null][], rowLen: number, rows: number): Promise<Float64Array> {
    const result = new Float64Array(pairs.length * rows);
    const layout = pairs[0][0].layout;
    if (layout.numel === 0 || rowLen === 0) return result;
    const block = rt.reduceBlock;
    const blocksPerRow = Math.ceil(rowLen / block);
    const blockOf = (g: number) => Math.floor(g / rowLen) * blocksPerRow + Math.floor((g % rowLen) / block);
    const align = ctx.limits.minStorageBufferOffsetAlignment / 4;
    const jobs: { pair: number; chunk: number; first: number; count: number; slot: number }[] = [];
    let slots = 0;
    pairs.forEach((_, pair) => {
      for (let c = 0; c < layout.count; c++) {
        const start = chunkStart(layout, c);
        const first = blockOf(start);
        const count = blockOf(start + chunkLength(layout, c) - 1) - first + 1;
        jobs.push({ pair, chunk: c, first, count, slot: slots });
        slots += Math.ceil(count / align) * align;
      }
    });
    const batch = ctx.batch(op);
    const partials = batch.temp(ctx.acquire({ label: `${op} partial sums`, size: slots * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC }));
    const chunkLists = pairs.map(([a, b]) => [rt.chunks(a, op), b ? rt.chunks(b, op) : null] as const);
    for (const job of jobs) {
      const [ac, bc] = chunkLists[job.pair];
      const params = {
        n: chunkLength(layout, job.chunk),
        offset: chunkStart(layout, job.chunk),
        row_len: rowLen,
        block_len: block,
        first_block: job.first,
        blocks_per_row: blocksPerRow,
        count: job.count,
      };
      const target = { buffer: partials, offset: job.slot * 4, size: job.count * 4 };
      if (bc) batch.dispatch(KERNELS.dotPartials, { params, buffers: { a: ac[job.chunk], b: bc[job.chunk], partials: target }, workgroups: job.count });
      else batch.dispatch(KERNELS.absPartials, { params, buffers: { a: ac[job.chunk], partials: target }, workgroups: job.count });
    }
    batch.readback(partials, 0, slots * 4);
    const [bytes] = await batch.submit();
    const values = new Float32Array(bytes);
    for (const job of jobs) {
      for (let w = 0; w < job.count; w++) {
        const row = Math.floor((job.first + w) / blocksPerRow);
        result[job.pair * rows + row] += values[job.slot + w];
      }
    }
    return result;
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
  };
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

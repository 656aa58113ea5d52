/**
 * Keep-or-zero masks (src/shaders/masks.wgsl, random.wgsl, bitonic.wgsl): DARE's Bernoulli keep,
 * DELLA's rank-dependent keep (per-row ranks by a bitonic sort), and masks replayed from a file.
 * Random draws come from the counter-based generator keyed by (seed, model, tensor, element), so a
 * mask is the same on every backend and chunking. Reference: masks.cpu.ts.
 */
import bitonicWgsl from '../../shaders/bitonic.wgsl?raw';
import masksWgsl from '../../shaders/masks.wgsl?raw';
import randomWgsl from '../../shaders/random.wgsl?raw';
import { hashTensorName, type MaskKey, type Tensor } from '../backend.ts';
import { chunkLength, chunkStart, chunksTouching } from '../gpu-tensor.ts';
import { defineKernel, groupsFor, shaderModule, WORKGROUP_SIZE } from '../kernel.ts';
import type { GpuOpRuntime } from './runtime.ts';

export interface MaskOps {
  /** Keep each entry with probability p (Bernoulli, from the counter-based generator). */
  keepRandom(x: Tensor, p: number, key: MaskKey): Promise<Tensor>;
  /**
   * DELLA: within each row rank |x| ascending (ties by index), r = rank/(n-1) (0 if n = 1),
   * keep with probability (density - epsilon) + 2·epsilon·r.
   */
  keepRanked(x: Tensor, density: number, epsilon: number, key: MaskKey): Promise<Tensor>;
  /** Keep entries where mask != 0 (mask replayed from a file), zero the rest. */
  keepWhere(x: Tensor, mask: Tensor): Promise<Tensor>;
}

/** Pairs sorted in workgroup memory by one bitonic.wgsl sort_local workgroup (its TILE). */
export const SORT_TILE = 2 * WORKGROUP_SIZE;
/** Largest scratch buffer keepRanked sorts in at once (rows are batched to fit). */
const SORT_SCRATCH_BYTES = 128 * 1024 * 1024;

const MASKS = shaderModule('masks.wgsl', { file: 'random.wgsl', code: randomWgsl }, { file: 'masks.wgsl', code: masksWgsl });
const BITONIC = shaderModule('bitonic.wgsl', { file: 'bitonic.wgsl', code: bitonicWgsl });
const KERNELS = {
  keepWhere: defineKernel(MASKS, 'keep_where', { uses: ['x', 'aux', 'out'] }),
  keepRandom: defineKernel(MASKS, 'keep_random', { uses: ['x', 'out'] }),
  keepRanked: defineKernel(MASKS, 'keep_ranked', { uses: ['x', 'aux', 'thresholds', 'out'] }),
  fillPad: defineKernel(BITONIC, 'fill_pad', { uses: ['pairs'], constants: { TILE: SORT_TILE } }),
  loadKeys: defineKernel(BITONIC, 'load', { uses: ['x', 'pairs'], constants: { TILE: SORT_TILE } }),
  sortStep: defineKernel(BITONIC, 'sort_step', { uses: ['pairs'], constants: { TILE: SORT_TILE } }),
  sortLocal: defineKernel(BITONIC, 'sort_local', { uses: ['pairs'], constants: { TILE: SORT_TILE } }),
  scatterRanks: defineKernel(BITONIC, 'scatter_ranks', { uses: ['pairs', 'ranks'], constants: { TILE: SORT_TILE } }),
};

/**
 * Integer threshold T with (uniform < fround(p)) ⟺ (uniform·2^24 < T), as the CPU reference
 * compares: the uniform is m / 2^24 with integer m, so T = ceil(fround(p)·2^24), clamped to [0, 2^24].
 */
export function uniformThreshold(p: number): number {
  const pf = Math.fround(p);
  if (!(pf > 0)) return 0;
  return Math.min(2 ** 24, Math.ceil(pf * 2 ** 24));
}

/** f32 keep probability of DELLA's rank `rank` in a row of `rowLen`, exactly as both backends compute it. */
export function dellaKeepProbability(rank: number, rowLen: number, density: number, epsilon: number): number {
  const fr = Math.fround;
  const low = fr(fr(density) - fr(epsilon));
  const span = fr(2 * fr(epsilon));
  const rel = rowLen > 1 ? fr(rank / (rowLen - 1)) : 0;
  return fr(low + fr(span * rel));
}

/** Per-rank keep thresholds for DELLA. */
export function rankedThresholds(rowLen: number, density: number, epsilon: number): Uint32Array<ArrayBuffer> {
  const table = new Uint32Array(rowLen);
  for (let rank = 0; rank < rowLen; rank++) table[rank] = uniformThreshold(dellaKeepProbability(rank, rowLen, density, epsilon));
  return table;
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

export function masksGpu(rt: GpuOpRuntime): MaskOps {
  const { ctx } = rt;
  const keyParams = (key: MaskKey, hash: number) => ({ seed: key.seed >>> 0, model: key.model >>> 0, tensor_hash: hash });

  return {
    async keepRandom(x, p, key) {
      const t = rt.tensor(x, 'keepRandom');
      const threshold = uniformThreshold(p);
      const hash = hashTensorName(key.tensor);
      return rt.output(
        'keepRandom',
        t.shape,
        async (out, layout) => {
          if (threshold === 0) return;
          const batch = ctx.batch('keepRandom');
          rt.chunks(t, 'keepRandom').forEach((r, c) => {
            const len = chunkLength(layout, c);
            batch.dispatch(KERNELS.keepRandom, {
              params: { n: len, offset: chunkStart(layout, c), ...keyParams(key, hash), threshold },
              buffers: { x: r, out: out[c] },
              workgroups: groupsFor(len),
            });
          });
          await batch.submit();
        },
        { zero: threshold === 0 },
      );
    },

    async keepRanked(x, density, epsilon, key) {
      const t = rt.tensor(x, 'keepRanked');
      const { rows, rowLen } = t.layout;
      const padded = nextPowerOfTwo(rowLen);
      const maxBinding = ctx.limits.maxStorageBufferBindingSize;
      if (padded * 8 > maxBinding) {
        throw rt.error('keepRanked', `rows of ${rowLen} entries need ${padded * 8} bytes of sort scratch, above maxStorageBufferBindingSize ${maxBinding}`);
      }
      const hash = hashTensorName(key.tensor);
      return rt.output('keepRanked', t.shape, async (out, layout) => {
        if (t.numel === 0) return;
        const src = rt.chunks(t, 'keepRanked');
        // The sort scratch holds at most one chunk's worth of pairs (and at most 128 MiB): rows are
        // sorted in batches that fit, at least one row at a time.
        const scratchPairs = Math.min(SORT_SCRATCH_BYTES / 8, maxBinding / 8, rt.chunkCapacity);
        const batchRows = Math.max(1, Math.min(rows, Math.floor(scratchPairs / padded)));
        const pairsSize = batchRows * padded * 8;
        const ranksSize = batchRows * rowLen * 4;
        const [pairs, ranks, table] = await ctx.allocate('keepRanked scratch', [
          { label: 'keepRanked sort pairs', size: pairsSize, usage: GPUBufferUsage.STORAGE },
          { label: 'keepRanked ranks', size: ranksSize, usage: GPUBufferUsage.STORAGE },
          { label: 'keepRanked thresholds', size: rowLen * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST },
        ]);
        const pairsB = { buffer: pairs, size: pairsSize };
        const ranksB = { buffer: ranks, size: ranksSize };
        try {
          ctx.device.queue.writeBuffer(table, 0, rankedThresholds(rowLen, density, epsilon));
          for (let r0 = 0; r0 < rows; r0 += batchRows) {
            const nRows = Math.min(batchRows, rows - r0);
            const batchStart = r0 * rowLen;
            const batchLen = nRows * rowLen;
            const batch = ctx.batch(`keepRanked rows ${r0}..${r0 + nRows - 1}`);
            const sortParams = { batch_start: batchStart, batch_rows: nRows, row_len: rowLen, padded };
            if (padded > rowLen) {
              batch.dispatch(KERNELS.fillPad, { params: sortParams, buffers: { pairs: pairsB }, workgroups: groupsFor(nRows * (padded - rowLen)) });
            }
            const touched = chunksTouching(layout, batchStart, batchLen);
            for (const c of touched) {
              const len = chunkLength(layout, c);
              batch.dispatch(KERNELS.loadKeys, {
                params: { ...sortParams, n: len, offset: chunkStart(layout, c) },
                buffers: { x: src[c], pairs: pairsB },
                workgroups: groupsFor(len),
              });
            }
            // Bitonic network, one global dispatch per stage (sort_step); with workgroupSort the
            // stages with j < SORT_TILE run in workgroup memory instead (sort_local).
            const localWorkgroups = Math.ceil((nRows * padded) / SORT_TILE);
            const stepWorkgroups = groupsFor(nRows * (padded / 2));
            const step = (k: number, j: number) =>
              batch.dispatch(KERNELS.sortStep, { params: { ...sortParams, k, j }, buffers: { pairs: pairsB }, workgroups: stepWorkgroups });
            const local = (k: number) =>
              batch.dispatch(KERNELS.sortLocal, { params: { ...sortParams, k }, buffers: { pairs: pairsB }, workgroups: localWorkgroups });
            const tile = rt.workgroupSort ? SORT_TILE : 1;
            if (tile > 1) local(0);
            for (let k = tile * 2; k <= padded; k *= 2) {
              for (let j = k / 2; j >= tile; j /= 2) step(k, j);
              if (tile > 1) local(k);
            }
            batch.dispatch(KERNELS.scatterRanks, { params: sortParams, buffers: { pairs: pairsB, ranks: ranksB }, workgroups: groupsFor(batchLen) });
            for (const c of touched) {
              const len = chunkLength(layout, c);
              batch.dispatch(KERNELS.keepRanked, {
                params: { n: len, offset: chunkStart(layout, c), ...keyParams(key, hash), batch_start: batchStart, batch_len: batchLen },
                buffers: { x: src[c], aux: ranksB, thresholds: { buffer: table, size: rowLen * 4 }, out: out[c] },
                workgroups: groupsFor(len),
              });
            }
            await batch.submit();
          }
        } finally {
          for (const b of [pairs, ranks, table]) ctx.recycle(b);
        }
      });
    },

    async keepWhere(x, mask) {
      const t = rt.tensor(x, 'keepWhere');
      const m = rt.tensor(mask, 'keepWhere');
      if (m.numel !== t.numel) throw rt.error('keepWhere', `mask has ${m.numel} elements, tensor has ${t.numel}`);
      rt.sameLayout('keepWhere', t, m, 'mask');
      return rt.output('keepWhere', t.shape, async (out, layout) => {
        const batch = ctx.batch('keepWhere');
        const mc = rt.chunks(m, 'keepWhere');
        rt.chunks(t, 'keepWhere').forEach((r, c) => {
          const len = chunkLength(layout, c);
          batch.dispatch(KERNELS.keepWhere, {
            params: { n: len, offset: chunkStart(layout, c) },
            buffers: { x: r, aux: mc[c], out: out[c] },
            workgroups: groupsFor(len),
          });
        });
        await batch.submit();
      });
    },
  };
}

/**
 * The analysis reductions (ops.ts) as WGSL kernels over a GpuBackend's chunked tensors. Each call
 * records every chunk's dispatches into one command batch and reads back only the small result
 * (counters, bins, partial sums); scratch buffers are one chunk long and reused across chunks.
 */
import { GpuTensor, type GpuBackend } from '../gpu-backend.ts';
import { chunkLength, type BufferRange } from '../gpu-tensor.ts';
import { groupsFor } from '../kernel.ts';
import type { Tensor } from '../backend.ts';
import { BIN_COUNT, BINS_PER_OCTAVE, MIN_EXPONENT, OCTAVES, subBinMantissas } from './bins.ts';
import { ANALYSIS_BLOCK, ANALYSIS_KERNELS, signCounterCount } from './kernels.ts';
import {
  AnalysisOpsError,
  checkElectInputs,
  checkSignInputs,
  emptySignCounts,
  pairIndex,
  type AnalysisOps,
  type MagnitudeHistogram,
  type SignCounts,
} from './ops.ts';

/** Usage of a buffer the kernels write and the host reads back. */
function readableStorage(): number {
  return GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
}

const f32Bits = (() => {
  const view = new DataView(new ArrayBuffer(4));
  return {
    toFloat(bits: number): number {
      view.setUint32(0, bits >>> 0, true);
      return view.getFloat32(0, true);
    },
  };
})();

export class GpuAnalysisOps implements AnalysisOps {
  readonly backend: GpuBackend;

  constructor(backend: GpuBackend) {
    this.backend = backend;
  }

  async signCounts(xs: readonly Tensor[], flips?: readonly boolean[]): Promise<SignCounts> {
    checkSignInputs(xs, flips);
    const ts = this.#tensors(xs, 'signCounts');
    const n = ts.length;
    const layout = ts[0].layout;
    const out = emptySignCounts(n, layout.numel);
    if (layout.numel === 0) return out;
    const ctx = this.backend.ctx;
    const counterCount = signCounterCount(n);
    const [codes, counters] = await ctx.allocate('analysis signCounts', [
      { label: 'analysis sign codes', size: chunkLength(layout, 0) * 4, usage: GPUBufferUsage.STORAGE },
      { label: 'analysis sign counters', size: counterCount * 4, usage: readableStorage() },
    ]);
    const codesRange = { buffer: codes, size: chunkLength(layout, 0) * 4 };
    try {
      ctx.device.queue.writeBuffer(counters, 0, new Uint32Array(counterCount));
      const batch = ctx.batch('analysis signCounts');
      for (let c = 0; c < layout.count; c++) {
        const len = chunkLength(layout, c);
        ts.forEach((t, i) => {
          batch.dispatch(ANALYSIS_KERNELS.signCodes, {
            params: { n: len, model: i, flip: flips?.[i] ? 1 : 0, models: n },
            buffers: { x: this.#chunk(t, c), codes: codesRange },
            workgroups: groupsFor(len),
          });
        });
        batch.dispatch(ANALYSIS_KERNELS.signCounts, {
          params: { n: len, models: n },
          buffers: { codes_in: codesRange, counters: { buffer: counters, size: counterCount * 4 } },
          workgroups: groupsFor(len, ANALYSIS_BLOCK),
        });
      }
      const slot = batch.readback(counters, 0, counterCount * 4);
      const raw = new Uint32Array((await batch.submit())[slot]);
      const pairs = (n * (n - 1)) / 2;
      let above0 = 0;
      for (let i = 0; i < n; i++) {
        out.nonzero[i] = raw[i];
        out.unique[i] = raw[n + i];
      }
      for (let c = 1; c <= n; c++) {
        out.consensus[c] = raw[2 * n + c];
        above0 += raw[2 * n + c];
      }
      out.consensus[0] = layout.numel - above0;
      out.conflictAll = raw[3 * n + 1];
      for (let i = 0; i < n; i++) {
        out.pairBoth[i * n + i] = out.nonzero[i];
        for (let j = i + 1; j < n; j++) {
          const p = pairIndex(i, j, n);
          const both = raw[3 * n + 2 + p];
          const conflict = raw[3 * n + 2 + pairs + p];
          out.pairBoth[i * n + j] = out.pairBoth[j * n + i] = both;
          out.pairConflict[i * n + j] = out.pairConflict[j * n + i] = conflict;
        }
      }
      return out;
    } finally {
      ctx.recycle(codes);
      ctx.recycle(counters);
    }
  }

  async magnitudeHistograms(xs: readonly Tensor[]): Promise<MagnitudeHistogram[]> {
    if (xs.length === 0) return [];
    const ts = xs.map((x, i) => this.#tensor(x, i, 'magnitudeHistograms'));
    const ctx = this.backend.ctx;
    // One slot range per tensor (bins, then min and max bits), aligned for a storage binding offset.
    const slots = BIN_COUNT + 2;
    const align = ctx.limits.minStorageBufferOffsetAlignment / 4;
    const stride = Math.ceil(slots / align) * align;
    const [bins] = await ctx.allocate('analysis magnitudeHistograms', [
      { label: 'analysis magnitude bins', size: ts.length * stride * 4, usage: readableStorage() },
    ]);
    try {
      const init = new Uint32Array(ts.length * stride);
      for (let k = 0; k < ts.length; k++) init[k * stride + BIN_COUNT] = 0xffffffff;
      ctx.device.queue.writeBuffer(bins, 0, init);
      const sub = subBinMantissas();
      const batch = ctx.batch('analysis magnitudeHistograms');
      ts.forEach((t, k) => {
        for (let c = 0; c < t.layout.count; c++) {
          const len = chunkLength(t.layout, c);
          batch.dispatch(ANALYSIS_KERNELS.logHistogram, {
            params: { n: len, min_exponent: MIN_EXPONENT, octaves: OCTAVES, per_octave: BINS_PER_OCTAVE, sub: [0, 1, 2, 3].map((j) => sub[j] ?? 0xffffffff) },
            buffers: { x: this.#chunk(t, c), out: { buffer: bins, offset: k * stride * 4, size: slots * 4 } },
            workgroups: groupsFor(len, ANALYSIS_BLOCK),
          });
        }
      });
      const slot = batch.readback(bins, 0, ts.length * stride * 4);
      const raw = new Uint32Array((await batch.submit())[slot]);
      return ts.map((t, k) => {
        const at = k * stride;
        const counts = Array.from(raw.subarray(at, at + BIN_COUNT));
        const finite = t.layout.numel - counts[BIN_COUNT - 1];
        return {
          counts,
          minNonzero: raw[at + BIN_COUNT] === 0xffffffff ? null : f32Bits.toFloat(raw[at + BIN_COUNT]),
          max: finite > 0 ? f32Bits.toFloat(raw[at + BIN_COUNT + 1]) : null,
        };
      });
    } finally {
      ctx.recycle(bins);
    }
  }

  async electedContributionNormsSq(wds: readonly Tensor[], weights: readonly number[], normalize: boolean): Promise<number[]> {
    checkElectInputs(wds, weights);
    const ts = this.#tensors(wds, 'electedContributionNormsSq');
    const layout = ts[0].layout;
    const sums = new Array<number>(ts.length).fill(0);
    if (layout.numel === 0) return sums;
    const total = (await this.backend.lincomb(ts.map((x) => ({ x, coef: 1 })))) as GpuTensor;
    const ctx = this.backend.ctx;
    const blocksPerChunk = Math.ceil(chunkLength(layout, 0) / ANALYSIS_BLOCK);
    // Partial sums: one slot range per (model, chunk), each aligned for a storage binding offset.
    const align = ctx.limits.minStorageBufferOffsetAlignment / 4;
    const stride = Math.ceil(blocksPerChunk / align) * align;
    let divisor: GPUBuffer | undefined;
    let partials: GPUBuffer | undefined;
    try {
      [divisor, partials] = await ctx.allocate('analysis electedContributionNormsSq', [
        { label: 'analysis elect divisor', size: chunkLength(layout, 0) * 4, usage: GPUBufferUsage.STORAGE },
        { label: 'analysis elect partial sums', size: ts.length * layout.count * stride * 4, usage: readableStorage() },
      ]);
      const divisorRange = { buffer: divisor, size: chunkLength(layout, 0) * 4 };
      const batch = ctx.batch('analysis electedContributionNormsSq');
      for (let c = 0; c < layout.count; c++) {
        const len = chunkLength(layout, c);
        const totalChunk = this.#chunk(total, c);
        if (normalize) {
          ts.forEach((t, k) => {
            batch.dispatch(ANALYSIS_KERNELS.electDivisor, {
              params: { n: len, normalize: 1, weight: weights[k], first: k === 0 ? 1 : 0 },
              buffers: { total: totalChunk, wd: this.#chunk(t, c), divisor: divisorRange! },
              workgroups: groupsFor(len),
            });
          });
        }
        const blocks = Math.ceil(len / ANALYSIS_BLOCK);
        ts.forEach((t, k) => {
          const slot = (k * layout.count + c) * stride;
          batch.dispatch(ANALYSIS_KERNELS.electNorms, {
            params: { n: len, normalize: normalize ? 1 : 0 },
            buffers: {
              total: totalChunk,
              wd: this.#chunk(t, c),
              // Unread without normalize; any read-only buffer of the chunk fits the binding.
              divisor_in: normalize ? divisorRange! : totalChunk,
              partials: { buffer: partials!, offset: slot * 4, size: blocks * 4 },
            },
            workgroups: blocks,
          });
        });
      }
      const slot = batch.readback(partials, 0, ts.length * layout.count * stride * 4);
      const values = new Float32Array((await batch.submit())[slot]);
      for (let k = 0; k < ts.length; k++) {
        for (let c = 0; c < layout.count; c++) {
          const blocks = Math.ceil(chunkLength(layout, c) / ANALYSIS_BLOCK);
          const at = (k * layout.count + c) * stride;
          for (let b = 0; b < blocks; b++) sums[k] += values[at + b];
        }
      }
      return sums;
    } finally {
      if (divisor) ctx.recycle(divisor);
      if (partials) ctx.recycle(partials);
      this.backend.release(total);
    }
  }

  #tensor(x: Tensor, i: number, op: string): GpuTensor {
    if (!(x instanceof GpuTensor) || !x.chunks) {
      throw new AnalysisOpsError(op, `tensor ${i} (shape [${x.shape.join(', ')}]) is not a live tensor of this GPU backend`);
    }
    return x;
  }

  /** Tensors combined elementwise: they must share their chunk layout. */
  #tensors(xs: readonly Tensor[], op: string): GpuTensor[] {
    const ts = xs.map((x, i) => this.#tensor(x, i, op));
    const first = ts[0].layout;
    ts.forEach((t, i) => {
      const same = t.layout.numel === first.numel && (t.layout.chunkLen === first.chunkLen || (t.layout.count <= 1 && first.count <= 1));
      if (!same) {
        throw new AnalysisOpsError(op, `tensor ${i} has shape [${t.shape.join(', ')}], tensor 0 [${ts[0].shape.join(', ')}]: they must share their chunk layout`);
      }
    });
    return ts;
  }

  #chunk(t: GpuTensor, c: number): BufferRange {
    const chunks = t.chunks;
    if (!chunks) throw new AnalysisOpsError('chunk', `tensor of shape [${t.shape.join(', ')}] was released`);
    return chunks[c];
  }
}

/**
 * TIES sign election (src/shaders/elect.wgsl) over weighted task vectors, fused for up to four
 * inputs, in passes beyond that. Reference: elect.cpu.ts (same summation order and rounding).
 */
import electWgsl from '../../shaders/elect.wgsl?raw';
import type { Tensor } from '../backend.ts';
import { chunkLength } from '../gpu-tensor.ts';
import { defineKernel, groupsFor, shaderModule } from '../kernel.ts';
import { recordLincomb, TERMS_PER_PASS } from './elementwise.ts';
import type { GpuOpRuntime } from './runtime.ts';

export interface ElectOps {
  /**
   * TIES sign election over weighted deltas wd_i = w_i·δ_i: majority = sign(Σ wd_i) (>= 0 -> +1),
   * m_i = (sign(wd_i) == majority, zero never matches); mixed = Σ wd_i·m_i; divisor = Σ w_i·m_i
   * (0 -> 1). Returns mixed / divisor when `normalize`, else mixed.
   */
  signElect(wds: readonly Tensor[], weights: readonly number[], normalize: boolean): Promise<Tensor>;
}

const ELECT = shaderModule('elect.wgsl', { file: 'elect.wgsl', code: electWgsl });
const KERNELS = {
  fused: defineKernel(ELECT, 'elect_fused', { uses: ['x0', 'x1', 'x2', 'x3', 'out'] }),
  accumulate: defineKernel(ELECT, 'elect_accumulate', { uses: ['total', 'x0', 'x1', 'x2', 'x3', 'out', 'divisor'] }),
  finish: defineKernel(ELECT, 'elect_finish', { uses: ['out', 'divisor'] }),
};

export function electGpu(rt: GpuOpRuntime): ElectOps {
  const { ctx } = rt;
  return {
    async signElect(wds, weights, normalize) {
      const ts = rt.sameSize(wds, 'signElect');
      if (weights.length !== ts.length) throw rt.error('signElect', `${weights.length} weights for ${ts.length} tensors`);
      const first = ts[0];
      const chunks = ts.map((t) => rt.chunks(t, 'signElect'));
      const params = (len: number, from: number, count: number) => ({
        n: len,
        count,
        normalize: normalize ? 1 : 0,
        w: [0, 1, 2, 3].map((k) => (k < count ? weights[from + k] : 0)),
      });
      const inputs = (c: number, from: number, count: number) => {
        const x = (k: number) => chunks[from + Math.min(k, count - 1)][c];
        return { x0: x(0), x1: x(1), x2: x(2), x3: x(3) };
      };
      // More tensors than one dispatch binds: total first, then the votes 4 tensors at a time.
      const multiPass = ts.length > TERMS_PER_PASS;
      return rt.output(
        'signElect',
        first.shape,
        async (out, layout) => {
          if (!multiPass) {
            const batch = ctx.batch('signElect');
            out.forEach((o, c) => {
              const len = chunkLength(layout, c);
              batch.dispatch(KERNELS.fused, { params: params(len, 0, ts.length), buffers: { ...inputs(c, 0, ts.length), out: o }, workgroups: groupsFor(len) });
            });
            await batch.submit();
            return;
          }
          const sizes = out.map((_, c) => chunkLength(layout, c) * 4);
          const scratch = await ctx.allocate('signElect scratch', [
            ...sizes.map((size, c) => ({ label: `signElect total chunk ${c}`, size, usage: GPUBufferUsage.STORAGE })),
            ...sizes.map((size, c) => ({ label: `signElect divisor chunk ${c}`, size, usage: GPUBufferUsage.STORAGE, zero: true })),
          ]);
          const total = scratch.slice(0, out.length).map((buffer, c) => ({ buffer, offset: 0, size: sizes[c] }));
          const divisor = scratch.slice(out.length).map((buffer, c) => ({ buffer, offset: 0, size: sizes[c] }));
          try {
            const batch = ctx.batch('signElect');
            recordLincomb(rt, batch, ts, ts.map(() => 1), 0, total);
            for (let from = 0; from < ts.length; from += TERMS_PER_PASS) {
              const count = Math.min(TERMS_PER_PASS, ts.length - from);
              out.forEach((o, c) => {
                const len = chunkLength(layout, c);
                batch.dispatch(KERNELS.accumulate, {
                  params: params(len, from, count),
                  buffers: { total: total[c], ...inputs(c, from, count), out: o, divisor: divisor[c] },
                  workgroups: groupsFor(len),
                });
              });
            }
            if (normalize) {
              out.forEach((o, c) => {
                const len = chunkLength(layout, c);
                batch.dispatch(KERNELS.finish, { params: params(len, 0, 0), buffers: { out: o, divisor: divisor[c] }, workgroups: groupsFor(len) });
              });
            }
            await batch.submit();
          } finally {
            for (const b of scratch) ctx.recycle(b);
          }
        },
        // elect_accumulate adds into out: the multi-pass path needs it zeroed.
        { zero: multiPass },
      );
    },
  };
}

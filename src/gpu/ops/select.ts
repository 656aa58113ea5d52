/**
 * Selection by magnitude rank without sorting (src/shaders/select.wgsl): `keepRankBand` keeps the
 * entries whose rank in the order (|x|, index) lies in a band, found by radix select entirely on the
 * GPU (one command batch, nothing read back); and
 * `countKeyDigits`, one digit pass of a radix select, for selections the host drives over many
 * tensors (PCB's k-th largest over a whole model). Reference: select.cpu.ts.
 */
import selectWgsl from '../../shaders/select.wgsl?raw';
import type { Tensor } from '../backend.ts';
import { chunkLength, chunkStart } from '../gpu-tensor.ts';
import { defineKernel, groupsFor, shaderModule, WORKGROUP_SIZE } from '../kernel.ts';
import type { GpuOpRuntime } from './runtime.ts';

/** Counts, among the entries whose |x| bits match `prefix` on `mask`, of the digit (bits >> shift) & 255. */
export interface KeyDigitSelector {
  prefix: number;
  mask: number;
  /** 24, 16, 8 or 0. */
  shift: number;
}

export interface SelectOps {
  /**
   * Keep the entries whose ascending magnitude rank r satisfies lo <= r < hi, zero the rest.
   * Ranks order entries by (|x|, index): among equal magnitudes the lower index ranks lower,
   * so exactly hi - lo entries are kept. Top-k is keepRankBand(x, numel - k, numel).
   */
  keepRankBand(x: Tensor, lo: number, hi: number): Promise<Tensor>;
  /**
   * One radix-select digit pass over the f32 bits of |x| (NaN excluded from nothing: its bits sort
   * above +Inf): for each selector (at most 2), 256 counts, selector s at [256·s, 256·s + 256).
   */
  countKeyDigits(x: Tensor, selectors: readonly KeyDigitSelector[]): Promise<Uint32Array>;
}

/** Elements counted by one histogram workgroup. */
export const HISTOGRAM_BLOCK = 4096;

const SELECT = shaderModule('select.wgsl', { file: 'select.wgsl', code: selectWgsl });
const KERNELS = {
  histogram: defineKernel(SELECT, 'histogram', { uses: ['x', 'hist', 'state_in'], constants: { ELEMENTS_PER_THREAD: HISTOGRAM_BLOCK / WORKGROUP_SIZE } }),
  pick: defineKernel(SELECT, 'pick', { uses: ['hist', 'state'] }),
  keepBand: defineKernel(SELECT, 'keep_band', { uses: ['x', 'out', 'state_in'] }),
};

/** u32 words per selector in the `state` buffer (select.wgsl's Selector). */
const SELECTOR_WORDS = 8;

/** Initial state words of a selector looking for `rank` (absent or negative: inactive). */
function selectorWords(sel: { rank?: number; prefix?: number; mask?: number; shift?: number } | null): number[] {
  if (!sel || (sel.rank !== undefined && sel.rank < 0)) return new Array(SELECTOR_WORDS).fill(0);
  // key_prefix, key_mask, index_prefix, index_mask, shift, from_index, active, rank
  return [sel.prefix ?? 0, sel.mask ?? 0, 0, 0, sel.shift ?? 24, 0, 1, sel.rank ?? 0];
}

export function selectGpu(rt: GpuOpRuntime): SelectOps {
  const { ctx } = rt;

  /** The state and histogram buffers of one selection, with the state written. */
  async function selectionBuffers(op: string, words: number[]): Promise<{ state: GPUBuffer; hist: GPUBuffer; release(): void }> {
    const [state, hist] = await ctx.allocate(`${op} selection`, [
      { label: `${op} selector state`, size: 2 * SELECTOR_WORDS * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST },
      { label: `${op} histogram`, size: 512 * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC, zero: true },
    ]);
    ctx.device.queue.writeBuffer(state, 0, Uint32Array.from(words));
    return { state, hist, release: () => [state, hist].forEach((b) => ctx.recycle(b)) };
  }

  return {
    async keepRankBand(x, lo, hi) {
      const t = rt.tensor(x, 'keepRankBand');
      const n = t.numel;
      const from = Math.max(0, Math.min(n, Math.floor(lo)));
      const to = Math.max(from, Math.min(n, Math.floor(hi)));
      const keepsNothing = from === to;
      return rt.output(
        'keepRankBand',
        t.shape,
        async (out, layout) => {
          if (keepsNothing) return;
          const src = rt.chunks(t, 'keepRankBand');
          const batch = ctx.batch('keepRankBand');
          if (from === 0 && to === n) {
            src.forEach((r, c) => batch.copy(r.buffer, r.offset, out[c].buffer, out[c].offset, chunkLength(layout, c) * 4));
            await batch.submit();
            return;
          }
          // Selector 0 finds the lowest kept rank, selector 1 the first rank above the band; every
          // pass is recorded now and each one reads the state the previous pick left.
          const sel = selectionBuffers('keepRankBand', [...selectorWords(from > 0 ? { rank: from } : null), ...selectorWords(to < n ? { rank: to } : null)]);
          const { state, hist, release } = await sel;
          try {
            const indexTopShift = Math.floor(Math.log2(Math.max(1, n - 1)) / 8) * 8;
            const passes = 4 + indexTopShift / 8 + 1;
            const stateRange = { buffer: state, size: 2 * SELECTOR_WORDS * 4 };
            const histRange = { buffer: hist, size: 512 * 4 };
            for (let p = 0; p < passes; p++) {
              src.forEach((r, c) => {
                const len = chunkLength(layout, c);
                batch.dispatch(KERNELS.histogram, {
                  params: { n: len, offset: chunkStart(layout, c) },
                  buffers: { x: r, hist: histRange, state_in: stateRange },
                  workgroups: groupsFor(len, HISTOGRAM_BLOCK),
                });
              });
              batch.dispatch(KERNELS.pick, { params: { index_top_shift: indexTopShift }, buffers: { hist: histRange, state: stateRange }, workgroups: 1 });
            }
            src.forEach((r, c) => {
              const len = chunkLength(layout, c);
              batch.dispatch(KERNELS.keepBand, {
                params: { n: len, offset: chunkStart(layout, c), has_lo: from > 0 ? 1 : 0, has_hi: to < n ? 1 : 0 },
                buffers: { x: r, out: out[c], state_in: stateRange },
                workgroups: groupsFor(len),
              });
            });
            await batch.submit();
          } finally {
            release();
          }
        },
        { zero: keepsNothing },
      );
    },

    async countKeyDigits(x, selectors) {
      const t = rt.tensor(x, 'countKeyDigits');
      if (selectors.length === 0 || selectors.length > 2) throw rt.error('countKeyDigits', `${selectors.length} selectors (1 or 2 allowed)`);
      const out = new Uint32Array(256 * selectors.length);
      if (t.numel === 0) return out;
      const words = [0, 1].flatMap((i) => selectorWords(selectors[i] ? { prefix: selectors[i].prefix >>> 0, mask: selectors[i].mask >>> 0, shift: selectors[i].shift } : null));
      const { state, hist, release } = await selectionBuffers('countKeyDigits', words);
      try {
        const batch = ctx.batch('countKeyDigits');
        rt.chunks(t, 'countKeyDigits').forEach((r, c) => {
          const len = chunkLength(t.layout, c);
          batch.dispatch(KERNELS.histogram, {
            params: { n: len, offset: chunkStart(t.layout, c) },
            buffers: { x: r, hist: { buffer: hist, size: 512 * 4 }, state_in: { buffer: state, size: 2 * SELECTOR_WORDS * 4 } },
            workgroups: groupsFor(len, HISTOGRAM_BLOCK),
          });
        });
        const slot = batch.readback(hist, 0, 512 * 4);
        out.set(new Uint32Array((await batch.submit())[slot]).subarray(0, out.length));
        return out;
      } finally {
        release();
      }
    },
  };
}

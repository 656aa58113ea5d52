/**
 * Selection by magnitude rank without sorting (src/shaders/select.wgsl): `keepRankBand` keeps the
 * entries whose rank in the order (|x|, index) lies in a band, found by radix select; and
 * `countKeyDigits`, one digit pass of a radix select, for selections the host drives over many
 * tensors (PCB's k-th largest over a whole model). Reference: select.cpu.ts.
 */
import selectWgsl from '../../shaders/select.wgsl?raw';
import type { Tensor } from '../backend.ts';
import { chunkLength, chunkStart, type GpuTensor } from '../gpu-tensor.ts';
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
  histogram: defineKernel(SELECT, 'histogram', { uses: ['x', 'hist'], constants: { ELEMENTS_PER_THREAD: HISTOGRAM_BLOCK / WORKGROUP_SIZE } }),
  keepBand: defineKernel(SELECT, 'keep_band', { uses: ['x', 'out'] }),
};

interface SelectorState {
  rank: number;
  active: boolean;
  key_prefix: number;
  key_mask: number;
  index_prefix: number;
  index_mask: number;
  from_index: boolean;
  shift: number;
}

export function selectGpu(rt: GpuOpRuntime): SelectOps {
  const { ctx } = rt;

  /** Run histogram passes (one per call of `step`) until every selector is done. */
  async function histogramPasses(t: GpuTensor, op: string, selectors: SelectorState[], step: (counts: Uint32Array) => void): Promise<void> {
    const chunks = rt.chunks(t, op);
    const [hist] = await ctx.allocate(`${op} histogram`, [
      { label: `${op} histogram`, size: 512 * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST },
    ]);
    const zeros = new Uint32Array(512);
    try {
      while (selectors.some((s) => s.active)) {
        const batch = ctx.batch(`${op} select`);
        ctx.device.queue.writeBuffer(hist, 0, zeros);
        const sel = (s: SelectorState | undefined) =>
          s
            ? {
                key_prefix: s.key_prefix,
                key_mask: s.key_mask,
                index_prefix: s.index_prefix,
                index_mask: s.index_mask,
                shift: s.shift,
                from_index: s.from_index ? 1 : 0,
                enabled: s.active ? 1 : 0,
              }
            : { enabled: 0 };
        chunks.forEach((r, c) => {
          const len = chunkLength(t.layout, c);
          batch.dispatch(KERNELS.histogram, {
            params: { n: len, offset: chunkStart(t.layout, c), sel0: sel(selectors[0]), sel1: sel(selectors[1]) },
            buffers: { x: r, hist: { buffer: hist, size: 512 * 4 } },
            workgroups: groupsFor(len, HISTOGRAM_BLOCK),
          });
        });
        const slot = batch.readback(hist, 0, 512 * 4);
        step(new Uint32Array((await batch.submit())[slot]));
      }
    } finally {
      ctx.recycle(hist);
    }
  }

  /**
   * The (|x| bits, index) pairs at ascending ranks `targets` (-1: not wanted): 4 passes over the
   * key digits, then passes over the index digits among the entries equal to the selected key
   * when the rank falls inside a run of ties.
   */
  async function selectRanks(t: GpuTensor, targets: readonly number[]): Promise<({ key: number; index: number } | null)[]> {
    const selectors: SelectorState[] = targets.map((rank) => ({
      rank,
      active: rank >= 0,
      key_prefix: 0,
      key_mask: 0,
      index_prefix: 0,
      index_mask: 0,
      from_index: false,
      shift: 24,
    }));
    const indexTopShift = Math.floor(Math.log2(Math.max(1, t.numel - 1)) / 8) * 8;
    await histogramPasses(t, 'keepRankBand', selectors, (counts) => {
      selectors.forEach((s, i) => {
        if (!s.active) return;
        let below = 0;
        let digit = 0;
        while (digit < 256 && below + counts[i * 256 + digit] <= s.rank) below += counts[i * 256 + digit++];
        if (digit === 256) throw rt.error('keepRankBand', `rank ${targets[i]} not found among ${t.numel} entries (histogram counted ${below})`);
        const bits = (digit << s.shift) >>> 0;
        const mask = (0xff << s.shift) >>> 0;
        s.rank -= below;
        if (!s.from_index) {
          s.key_prefix = (s.key_prefix | bits) >>> 0;
          s.key_mask = (s.key_mask | mask) >>> 0;
          if (s.shift > 0) s.shift -= 8;
          else if (s.rank === 0) s.active = false; // first of its ties: (key, 0) bounds it exactly
          else {
            s.from_index = true;
            s.shift = indexTopShift;
          }
        } else {
          s.index_prefix = (s.index_prefix | bits) >>> 0;
          s.index_mask = (s.index_mask | mask) >>> 0;
          if (s.shift > 0) s.shift -= 8;
          else s.active = false;
        }
      });
    });
    return selectors.map((s, i) => (targets[i] >= 0 ? { key: s.key_prefix, index: s.index_prefix } : null));
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
          if (from === 0 && to === n) {
            const batch = ctx.batch('keepRankBand copy');
            src.forEach((r, c) => batch.copy(r.buffer, r.offset, out[c].buffer, out[c].offset, chunkLength(layout, c) * 4));
            await batch.submit();
            return;
          }
          const [lower, upper] = await selectRanks(t, [from > 0 ? from : -1, to < n ? to : -1]);
          const batch = ctx.batch('keepRankBand mask');
          src.forEach((r, c) => {
            const len = chunkLength(layout, c);
            batch.dispatch(KERNELS.keepBand, {
              params: {
                n: len,
                offset: chunkStart(layout, c),
                lo_key: lower?.key ?? 0,
                lo_index: lower?.index ?? 0,
                hi_key: upper?.key ?? 0,
                hi_index: upper?.index ?? 0,
                has_lo: lower ? 1 : 0,
                has_hi: upper ? 1 : 0,
              },
              buffers: { x: r, out: out[c] },
              workgroups: groupsFor(len),
            });
          });
          await batch.submit();
        },
        { zero: keepsNothing },
      );
    },

    async countKeyDigits(x, selectors) {
      const t = rt.tensor(x, 'countKeyDigits');
      if (selectors.length === 0 || selectors.length > 2) throw rt.error('countKeyDigits', `${selectors.length} selectors (1 or 2 allowed)`);
      const out = new Uint32Array(256 * selectors.length);
      if (t.numel === 0) return out;
      const states: SelectorState[] = selectors.map((s) => ({
        rank: 0,
        active: true,
        key_prefix: s.prefix >>> 0,
        key_mask: s.mask >>> 0,
        index_prefix: 0,
        index_mask: 0,
        from_index: false,
        shift: s.shift,
      }));
      await histogramPasses(t, 'countKeyDigits', states, (counts) => {
        out.set(counts.subarray(0, out.length));
        for (const s of states) s.active = false;
      });
      return out;
    },
  };
}

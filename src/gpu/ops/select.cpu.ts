/** Reference selection ops (see select.ts): a full sort by (|x|, index), and plain digit counts. */
import type { SelectOps } from './select.ts';
import type { CpuOpRuntime } from './runtime.ts';

/**
 * Indices start..start+len-1 sorted by (|x|, index) ascending: the rank order every magnitude op
 * uses, so equal magnitudes resolve to the lower index ranking lower.
 */
export function ascendingMagnitudeOrder(d: Float32Array, start: number, len: number): Uint32Array {
  const order = new Uint32Array(len);
  for (let k = 0; k < len; k++) order[k] = start + k;
  order.sort((a, b) => Math.abs(d[a]) - Math.abs(d[b]) || a - b);
  return order;
}

export function selectCpu(rt: CpuOpRuntime): SelectOps {
  return {
    async keepRankBand(x, lo, hi) {
      const d = rt.data(x, 'keepRankBand');
      const order = ascendingMagnitudeOrder(d, 0, d.length);
      const from = Math.max(0, Math.min(d.length, Math.floor(lo)));
      const to = Math.max(from, Math.min(d.length, Math.floor(hi)));
      const out = new Float32Array(d.length);
      for (let rank = from; rank < to; rank++) out[order[rank]] = d[order[rank]];
      return rt.make(out, x.shape);
    },
    async countKeyDigits(x, selectors) {
      const d = rt.data(x, 'countKeyDigits');
      if (selectors.length === 0 || selectors.length > 2) throw rt.error('countKeyDigits', `${selectors.length} selectors (1 or 2 allowed)`);
      const bits = new Uint32Array(d.buffer, d.byteOffset, d.length);
      const out = new Uint32Array(256 * selectors.length);
      selectors.forEach((s, k) => {
        const prefix = s.prefix >>> 0;
        const mask = s.mask >>> 0;
        for (let i = 0; i < bits.length; i++) {
          const key = bits[i] & 0x7fffffff;
          if (((key & mask) >>> 0) === prefix) out[k * 256 + ((key >>> s.shift) & 255)]++;
        }
      });
      return out;
    },
  };
}

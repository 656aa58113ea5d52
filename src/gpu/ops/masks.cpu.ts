/** Reference mask ops (see masks.ts). */
import { hashTensorName, rowCount, uniformAt } from '../backend.ts';
import { dellaKeepProbability, type MaskOps } from './masks.ts';
import { ascendingMagnitudeOrder } from './select.cpu.ts';
import type { CpuOpRuntime } from './runtime.ts';

export function masksCpu(rt: CpuOpRuntime): MaskOps {
  return {
    async keepRandom(x, p, key) {
      const d = rt.data(x, 'keepRandom');
      const out = new Float32Array(d.length);
      if (p >= 1) out.set(d);
      else if (p > 0) {
        const threshold = Math.fround(p);
        const hash = hashTensorName(key.tensor);
        for (let i = 0; i < d.length; i++) if (uniformAt(key.seed, key.model, hash, i) < threshold) out[i] = d[i];
      }
      return rt.make(out, x.shape);
    },
    async keepRanked(x, density, epsilon, key) {
      const d = rt.data(x, 'keepRanked');
      const rows = rowCount(x.shape);
      const rowLen = rows > 0 ? d.length / rows : 0;
      const hash = hashTensorName(key.tensor);
      const out = new Float32Array(d.length);
      for (let r = 0; r < rows; r++) {
        const order = ascendingMagnitudeOrder(d, r * rowLen, rowLen);
        for (let rank = 0; rank < rowLen; rank++) {
          const i = order[rank];
          if (uniformAt(key.seed, key.model, hash, i) < dellaKeepProbability(rank, rowLen, density, epsilon)) out[i] = d[i];
        }
      }
      return rt.make(out, x.shape);
    },
    async keepWhere(x, mask) {
      const d = rt.data(x, 'keepWhere');
      const m = rt.data(mask, 'keepWhere');
      if (m.length !== d.length) throw rt.error('keepWhere', `mask has ${m.length} elements, tensor has ${d.length}`);
      const out = new Float32Array(d.length);
      for (let i = 0; i < d.length; i++) if (m[i] !== 0) out[i] = d[i];
      return rt.make(out, x.shape);
    },
  };
}

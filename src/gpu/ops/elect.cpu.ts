/** Reference sign election (see elect.ts). */
import type { ElectOps } from './elect.ts';
import type { CpuOpRuntime } from './runtime.ts';

const fr = Math.fround;

export function electCpu(rt: CpuOpRuntime): ElectOps {
  return {
    async signElect(wds, weights, normalize) {
      const ds = rt.sameSize(wds, 'signElect');
      if (weights.length !== ds.length) throw rt.error('signElect', `${weights.length} weights for ${ds.length} tensors`);
      const w = weights.map(fr);
      const n = ds[0].length;
      const out = new Float32Array(n);
      for (let e = 0; e < n; e++) {
        let total = 0;
        for (const d of ds) total = fr(total + d[e]);
        const majority = total >= 0 ? 1 : -1;
        let mixed = 0;
        let divisor = 0;
        for (let k = 0; k < ds.length; k++) {
          const v = ds[k][e];
          if (Math.sign(v) === majority) {
            mixed = fr(mixed + v);
            divisor = fr(divisor + w[k]);
          }
        }
        if (normalize) {
          if (divisor === 0) divisor = 1;
          mixed = fr(mixed / divisor);
        }
        out[e] = mixed;
      }
      return rt.make(out, wds[0].shape);
    },
  };
}

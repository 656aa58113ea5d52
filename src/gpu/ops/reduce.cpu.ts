/** Reference reductions (see reduce.ts), accumulated in f64. */
import { rowCount } from '../backend.ts';
import type { ReduceOps } from './reduce.ts';
import type { CpuOpRuntime } from './runtime.ts';

export function reduceCpu(rt: CpuOpRuntime): ReduceOps {
  /** rows×N×N dot products of the row ranges [r·rowLen, (r+1)·rowLen) of every pair. */
  function dots(ds: Float32Array[], rows: number, rowLen: number): Float64Array {
    const n = ds.length;
    const g = new Float64Array(rows * n * n);
    for (let r = 0; r < rows; r++) {
      const start = r * rowLen;
      for (let i = 0; i < n; i++) {
        for (let j = i; j < n; j++) {
          const a = ds[i];
          const b = ds[j];
          let s = 0;
          for (let e = start; e < start + rowLen; e++) s += a[e] * b[e];
          g[r * n * n + i * n + j] = s;
          g[r * n * n + j * n + i] = s;
        }
      }
    }
    return g;
  }
  return {
    async gram(xs) {
      const ds = rt.sameSize(xs, 'gram');
      return dots(ds, 1, ds[0].length);
    },
    async gramRows(xs) {
      const ds = rt.sameSize(xs, 'gramRows');
      const rows = rowCount(xs[0].shape);
      return dots(ds, rows, rows > 0 ? xs[0].numel / rows : 0);
    },
    async sumAbs(x) {
      const d = rt.data(x, 'sumAbs');
      let s = 0;
      for (let i = 0; i < d.length; i++) s += Math.abs(d[i]);
      return s;
    },
    async minMax(x) {
      const d = rt.data(x, 'minMax');
      let min = Infinity;
      let max = -Infinity;
      for (let i = 0; i < d.length; i++) {
        if (d[i] < min) min = d[i];
        if (d[i] > max) max = d[i];
      }
      return { min, max };
    },
  };
}

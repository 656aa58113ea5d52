/** Reference reductions (see reduce.ts), accumulated in f64. */
import { rowCount } from '../backend.ts';
import { checkRowLength, l1RescaleFactor, type ReduceOps } from './reduce.ts';
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
      return sumAbs(rt.data(x, 'sumAbs'));
    },
    async rescaleL1(x, reference, eps) {
      const [d, r] = rt.sameSize([x, reference], 'rescaleL1');
      // The GPU divides the two norms rounded to f32 (f32 arithmetic); so does the reference.
      const factor = Math.fround(l1RescaleFactor(Math.fround(sumAbs(r)), Math.fround(sumAbs(d)), Math.fround(eps)));
      const out = new Float32Array(d.length);
      for (let i = 0; i < d.length; i++) out[i] = d[i] * factor;
      return rt.make(out, x.shape);
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
    async softmaxKlRows(p, q, rowLength, eps) {
      const [a, b] = rt.sameSize([p, q], 'softmaxKlRows');
      const rows = checkRowLength('softmaxKlRows', a.length, rowLength, (reason) => rt.error('softmaxKlRows', reason));
      const out = new Float64Array(rows);
      for (let r = 0; r < rows; r++) out[r] = softmaxKlRow(a, b, r * rowLength, rowLength, eps);
      return out;
    },
  };
}

function sumAbs(d: Float32Array): number {
  let s = 0;
  for (let i = 0; i < d.length; i++) s += Math.abs(d[i]);
  return s;
}

/**
 * KL(P‖Q) of one row in f64, P = softmax(a) + eps, Q = softmax(b) + eps, as Σ Q·φ(P/Q − 1) with
 * φ(w) = (1 + w)·ln(1 + w) − w (equal to Σ P·ln(P/Q) since Σ P = Σ Q; every term ≥ 0).
 */
export function softmaxKlRow(a: ArrayLike<number>, b: ArrayLike<number>, start: number, n: number, eps: number): number {
  let ma = -Infinity;
  let mb = -Infinity;
  for (let j = start; j < start + n; j++) {
    if (a[j] > ma) ma = a[j];
    if (b[j] > mb) mb = b[j];
  }
  let sa = 0;
  let sb = 0;
  for (let j = start; j < start + n; j++) {
    sa += Math.exp(a[j] - ma);
    sb += Math.exp(b[j] - mb);
  }
  const la = ma + Math.log(sa);
  const lb = mb + Math.log(sb);
  const c = ma - mb + (Math.log(sa) - Math.log(sb));
  let kl = 0;
  for (let j = start; j < start + n; j++) {
    const d = a[j] - b[j] - c;
    const qv = Math.exp(b[j] - lb);
    const bigQ = qv + eps;
    const diff = Math.abs(d) < 0.1 ? qv * Math.expm1(d) : Math.exp(a[j] - la) - qv;
    const w = diff / bigQ;
    kl += Math.abs(w) < 0.5 ? bigQ * ((1 + w) * Math.log1p(w) - w) : (bigQ + diff) * Math.log((bigQ + diff) / bigQ) - diff;
  }
  return kl;
}

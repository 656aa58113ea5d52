/**
 * Reference linear algebra (see linalg.ts). Products accumulate in f64 and round once, the most
 * accurate f32 result, which the GPU's f32 accumulation is compared against with a stated tolerance.
 * Copies are exact; scaleColumns and addDiagonal round like the GPU (bit for bit).
 */
import type { Tensor } from '../backend.ts';
import { checkColumnRange, checkSameMatrix, concatShapes, matmulDims, matrixShape, type LinalgOps, type MatmulOptions } from './linalg.ts';
import type { CpuOpRuntime } from './runtime.ts';

const fr = Math.fround;

export function linalgCpu(rt: CpuOpRuntime): LinalgOps {
  return {
    async matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}) {
      const { m, k, n } = matmulDims(rt, a, b, opts);
      const A = rt.data(a, 'matmul');
      const B = rt.data(b, 'matmul');
      const D = opts.addend ? rt.data(opts.addend, 'matmul') : null;
      const [ac, bc] = [a.shape[1], b.shape[1]];
      const alpha = opts.alpha ?? 1;
      const beta = opts.beta ?? 1;
      const at = (i: number, p: number) => (opts.transA ? A[p * ac + i] : A[i * ac + p]);
      const bt = (p: number, j: number) => (opts.transB ? B[j * bc + p] : B[p * bc + j]);
      const out = new Float32Array(m * n);
      const row = new Float64Array(n);
      for (let i = 0; i < m; i++) {
        row.fill(0);
        for (let p = 0; p < k; p++) {
          const v = at(i, p);
          if (v === 0) continue;
          for (let j = 0; j < n; j++) row[j] += v * bt(p, j);
        }
        for (let j = 0; j < n; j++) out[i * n + j] = alpha * row[j] + (D ? beta * D[i * n + j] : 0);
      }
      return rt.make(out, [m, n]);
    },

    async transpose(x: Tensor) {
      const [r, c] = matrixShape(rt, x, 'transpose');
      const d = rt.data(x, 'transpose');
      const out = new Float32Array(r * c);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = d[i * c + j];
      return rt.make(out, [c, r]);
    },

    async sliceColumns(x: Tensor, from: number, to: number) {
      const [r, c] = matrixShape(rt, x, 'sliceColumns');
      checkColumnRange(rt, c, from, to);
      const d = rt.data(x, 'sliceColumns');
      const w = to - from;
      const out = new Float32Array(r * w);
      for (let i = 0; i < r; i++) out.set(d.subarray(i * c + from, i * c + to), i * w);
      return rt.make(out, [r, w]);
    },

    async concatColumns(xs: readonly Tensor[]) {
      const shapes = concatShapes(rt, xs);
      const r = shapes[0][0];
      const total = shapes.reduce((s, [, c]) => s + c, 0);
      const out = new Float32Array(r * total);
      let at = 0;
      xs.forEach((x, k) => {
        const c = shapes[k][1];
        const d = rt.data(x, 'concatColumns');
        for (let i = 0; i < r; i++) out.set(d.subarray(i * c, (i + 1) * c), i * total + at);
        at += c;
      });
      return rt.make(out, [r, total]);
    },

    async scaleColumns(x: Tensor, s: Float32Array) {
      const [r, c] = matrixShape(rt, x, 'scaleColumns');
      if (s.length !== c) throw rt.error('scaleColumns', `${s.length} scales for ${c} columns`);
      const d = rt.data(x, 'scaleColumns');
      const out = new Float32Array(r * c);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[i * c + j] = fr(d[i * c + j] * s[j]);
      return rt.make(out, [r, c]);
    },

    async addDiagonal(x: Tensor, c: number, scale = 1) {
      const [r, cols] = matrixShape(rt, x, 'addDiagonal');
      const d = rt.data(x, 'addDiagonal');
      const s = fr(scale);
      const out = new Float32Array(r * cols);
      for (let i = 0; i < d.length; i++) out[i] = fr(s * d[i]);
      for (let i = 0; i < Math.min(r, cols); i++) out[i * cols + i] = fr(out[i * cols + i] + fr(c));
      return rt.make(out, [r, cols]);
    },

    async columnDots(a: Tensor, b: Tensor) {
      const [r, c] = checkSameMatrix(rt, a, b, 'columnDots');
      const A = rt.data(a, 'columnDots');
      const B = rt.data(b, 'columnDots');
      const out = new Float64Array(c);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j] += A[i * c + j] * B[i * c + j];
      return out;
    },
  };
}

/**
 * Reference linear algebra (see linalg.ts). Products accumulate in f64 and round once, the most
 * accurate f32 result, which the GPU's f32 accumulation is compared against with a stated tolerance.
 */
import type { Tensor } from '../backend.ts';
import type { LinalgOps, MatmulOptions } from './linalg.ts';
import type { CpuOpRuntime } from './runtime.ts';

/** [rows, cols] of a 2-D tensor, or an error naming the op. */
export function matrixShape(rt: { error(op: string, reason: string): Error }, x: Tensor, op: string, what = 'tensor'): [number, number] {
  if (x.shape.length !== 2) throw rt.error(op, `${what} has shape [${x.shape.join(', ')}], expected a 2-D matrix`);
  return [x.shape[0], x.shape[1]];
}

export function linalgCpu(rt: CpuOpRuntime): LinalgOps {
  return {
    async matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}) {
      const [ar, ac] = matrixShape(rt, a, 'matmul', 'A');
      const [br, bc] = matrixShape(rt, b, 'matmul', 'B');
      const A = rt.data(a, 'matmul');
      const B = rt.data(b, 'matmul');
      const [m, k] = opts.transA ? [ac, ar] : [ar, ac];
      const [k2, n] = opts.transB ? [bc, br] : [br, bc];
      if (k !== k2) throw rt.error('matmul', `inner dimensions differ: op(A) is ${m}×${k}, op(B) is ${k2}×${n}`);
      const alpha = opts.alpha ?? 1;
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
        for (let j = 0; j < n; j++) out[i * n + j] = alpha * row[j];
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
      if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from <= to && to <= c)) {
        throw rt.error('sliceColumns', `columns [${from}, ${to}) of a matrix with ${c} columns`);
      }
      const d = rt.data(x, 'sliceColumns');
      const w = to - from;
      const out = new Float32Array(r * w);
      for (let i = 0; i < r; i++) out.set(d.subarray(i * c + from, i * c + to), i * w);
      return rt.make(out, [r, w]);
    },

    async concatColumns(xs: readonly Tensor[]) {
      if (xs.length === 0) throw rt.error('concatColumns', 'no tensors');
      const shapes = xs.map((x, i) => matrixShape(rt, x, 'concatColumns', `tensor ${i}`));
      const r = shapes[0][0];
      shapes.forEach(([ri], i) => {
        if (ri !== r) throw rt.error('concatColumns', `tensor ${i} has ${ri} rows, tensor 0 has ${r}`);
      });
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
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[i * c + j] = Math.fround(d[i * c + j] * s[j]);
      return rt.make(out, [r, c]);
    },

    async columnDots(a: Tensor, b: Tensor) {
      const [r, c] = matrixShape(rt, a, 'columnDots', 'a');
      const [rb, cb] = matrixShape(rt, b, 'columnDots', 'b');
      if (r !== rb || c !== cb) throw rt.error('columnDots', `a is ${r}×${c}, b is ${rb}×${cb}`);
      const A = rt.data(a, 'columnDots');
      const B = rt.data(b, 'columnDots');
      const out = new Float64Array(c);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j] += A[i * c + j] * B[i * c + j];
      return out;
    },
  };
}

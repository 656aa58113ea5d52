/**
 * Reference transformer ops (see model.ts): plain loops. Sums and dot products accumulate in f64
 * and are rounded to f32 once; every other step rounds to f32 in PyTorch's order (the forward
 * pass of scripts/demo-family/llama.py).
 */
import type { Tensor } from '../backend.ts';
import { attentionDims, checkIndices, checkRowVector, checkSameShape, concatDims, ropeDims, rowsOf, type ModelOps } from './model.ts';
import type { CpuOpRuntime } from './runtime.ts';

const fr = Math.fround;

export function modelCpu(rt: CpuOpRuntime): ModelOps {
  return {
    async rmsNorm(x: Tensor, weight: Tensor, eps: number) {
      const [rows, width] = rowsOf(rt, x, 'rmsNorm');
      checkRowVector(rt, weight, width, 'rmsNorm', 'weight');
      const d = rt.data(x, 'rmsNorm');
      const w = rt.data(weight, 'rmsNorm');
      const out = new Float32Array(d.length);
      for (let r = 0; r < rows; r++) {
        const base = r * width;
        let ss = 0;
        for (let j = 0; j < width; j++) ss += d[base + j] * d[base + j];
        const inv = fr(1 / Math.sqrt(fr(fr(fr(ss) / width) + fr(eps))));
        for (let j = 0; j < width; j++) out[base + j] = fr(w[j] * fr(d[base + j] * inv));
      }
      return rt.make(out, x.shape);
    },

    async rope(x, table, opts) {
      const { rows, width, headDim } = ropeDims(rt, x, table, opts);
      const d = rt.data(x, 'rope');
      const t = rt.data(table, 'rope');
      const half = headDim / 2;
      const offset = opts.positionOffset ?? 0;
      const out = new Float32Array(d.length);
      for (let r = 0; r < rows; r++) {
        const pos = offset + (r % opts.seqLen);
        for (let h = 0; h < opts.heads; h++) {
          for (let p = 0; p < half; p++) {
            const at = r * width + h * headDim + p;
            const c = t[pos * headDim + p];
            const s = t[pos * headDim + half + p];
            const a = d[at];
            const b = d[at + half];
            out[at] = fr(fr(a * c) - fr(b * s));
            out[at + half] = fr(fr(b * c) + fr(a * s));
          }
        }
      }
      return rt.make(out, x.shape);
    },

    async attention(q, k, v, opts) {
      const { rows, width, headDim, seqLen, keys, kvWidth, group } = attentionDims(rt, q, k, v, opts);
      const Q = rt.data(q, 'attention');
      const K = rt.data(k, 'attention');
      const V = rt.data(v, 'attention');
      const scale = fr(1 / Math.sqrt(headDim));
      const out = new Float32Array(Q.length);
      const scores = new Float32Array(keys);
      for (let r = 0; r < rows; r++) {
        const b = Math.floor(r / seqLen);
        const last = keys - seqLen + (r % seqLen);
        for (let h = 0; h < opts.heads; h++) {
          const qAt = r * width + h * headDim;
          const kvCol = Math.floor(h / group) * headDim;
          let max = -Infinity;
          for (let j = 0; j <= last; j++) {
            const kAt = (b * keys + j) * kvWidth + kvCol;
            let dot = 0;
            for (let e = 0; e < headDim; e++) dot += Q[qAt + e] * K[kAt + e];
            scores[j] = fr(fr(dot) * scale);
            max = Math.max(max, scores[j]);
          }
          let sum = 0;
          for (let j = 0; j <= last; j++) {
            scores[j] = fr(Math.exp(fr(scores[j] - max)));
            sum += scores[j];
          }
          const total = fr(sum);
          for (let j = 0; j <= last; j++) scores[j] = fr(scores[j] / total);
          for (let e = 0; e < headDim; e++) {
            let acc = 0;
            for (let j = 0; j <= last; j++) acc += scores[j] * V[(b * keys + j) * kvWidth + kvCol + e];
            out[qAt + e] = fr(acc);
          }
        }
      }
      return rt.make(out, q.shape);
    },

    async swiglu(gate, up) {
      checkSameShape(rt, gate, up, 'swiglu', ['gate', 'up']);
      const g = rt.data(gate, 'swiglu');
      const u = rt.data(up, 'swiglu');
      const out = new Float32Array(g.length);
      for (let i = 0; i < g.length; i++) out[i] = fr(fr(g[i] / fr(1 + fr(Math.exp(-g[i])))) * u[i]);
      return rt.make(out, gate.shape);
    },

    async addRows(x, row) {
      const [, width] = rowsOf(rt, x, 'addRows');
      checkRowVector(rt, row, width, 'addRows', 'row');
      const d = rt.data(x, 'addRows');
      const w = rt.data(row, 'addRows');
      const out = new Float32Array(d.length);
      for (let i = 0; i < d.length; i++) out[i] = d[i] + w[i % width];
      return rt.make(out, x.shape);
    },

    async gatherRows(table, indices) {
      const [rows, width] = rowsOf(rt, table, 'gatherRows', 'table');
      const ids = checkIndices(rt, indices, rows, 'gatherRows', 'index');
      const d = rt.data(table, 'gatherRows');
      const out = new Float32Array(ids.length * width);
      ids.forEach((id, i) => out.set(d.subarray(id * width, (id + 1) * width), i * width));
      return rt.make(out, [ids.length, width]);
    },

    async concatSequences(a, b, batch) {
      const { width, p, q } = concatDims(rt, a, b, batch);
      const A = rt.data(a, 'concatSequences');
      const B = rt.data(b, 'concatSequences');
      const out = new Float32Array(batch * (p + q) * width);
      for (let s = 0; s < batch; s++) {
        out.set(A.subarray(s * p * width, (s + 1) * p * width), s * (p + q) * width);
        out.set(B.subarray(s * q * width, (s + 1) * q * width), (s * (p + q) + p) * width);
      }
      return rt.make(out, [batch * (p + q), width]);
    },

    async argmaxRows(x) {
      const [rows, width] = rowsOf(rt, x, 'argmaxRows');
      const d = rt.data(x, 'argmaxRows');
      const out = new Float32Array(rows);
      for (let r = 0; r < rows; r++) {
        let best = -1;
        for (let j = 0; j < width; j++) {
          const v = d[r * width + j];
          if (!Number.isNaN(v) && (best < 0 || v > d[r * width + best])) best = j;
        }
        out[r] = best;
      }
      return rt.make(out, [rows]);
    },

    async logSoftmaxAt(x, targets) {
      const [rows, width] = rowsOf(rt, x, 'logSoftmaxAt');
      if (targets.length !== rows) throw rt.error('logSoftmaxAt', `${targets.length} targets for ${rows} rows`);
      const ids = checkIndices(rt, targets, width, 'logSoftmaxAt', 'target');
      const d = rt.data(x, 'logSoftmaxAt');
      const out = new Float32Array(rows);
      for (let r = 0; r < rows; r++) {
        const row = d.subarray(r * width, (r + 1) * width);
        let max = -Infinity;
        for (const v of row) max = Math.max(max, v);
        let sum = 0;
        for (const v of row) sum += Math.exp(fr(v - max));
        out[r] = fr(fr(row[ids[r]] - max) - fr(Math.log(fr(sum))));
      }
      return rt.make(out, [rows]);
    },
  };
}

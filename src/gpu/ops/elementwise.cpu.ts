/**
 * Reference elementwise ops (see elementwise.ts): plain loops with every intermediate rounded to
 * f32 in the GPU's order.
 */
import { decodeFloats, encodeFloats, type FloatDType } from '../../core/dtype.ts';
import { rowCount, type Tensor, type Term } from '../backend.ts';
import type { ElementwiseOps } from './elementwise.ts';
import type { CpuOpRuntime } from './runtime.ts';

const fr = Math.fround;

export function elementwiseCpu(rt: CpuOpRuntime): ElementwiseOps {
  function pair(op: string, a: Tensor, b: Tensor, names: [string, string]): [Float32Array, Float32Array] {
    const av = rt.data(a, op);
    const bv = rt.data(b, op);
    if (av.length !== bv.length) throw rt.error(op, `${names[0]} has ${av.length} elements, ${names[1]} has ${bv.length}`);
    return [av, bv];
  }

  /** Σ coef_i · x_i (+ bias), each product and sum rounded to f32 in the GPU's order. */
  function combine(op: string, terms: readonly Term[], bias: number): Float32Array {
    if (terms.length === 0) throw rt.error(op, 'no terms');
    const first = terms[0].x;
    const rows = rowCount(first.shape);
    const xs = terms.map((term, i) => {
      const d = rt.data(term.x, op);
      if (d.length !== first.numel) throw rt.error(op, `term ${i} has ${d.length} elements, term 0 has ${first.numel}`);
      if (typeof term.coef !== 'number' && term.coef.length !== rows) {
        throw rt.error(op, `term ${i} has ${term.coef.length} row coefficients for ${rows} rows`);
      }
      return d;
    });
    const n = first.numel;
    const rowLen = rows > 0 ? n / rows : 0;
    const out = new Float32Array(n);
    const b = fr(bias);
    for (let i = 0; i < n; i++) {
      const row = rowLen > 0 ? Math.floor(i / rowLen) : 0;
      let acc = 0;
      for (let k = 0; k < terms.length; k++) {
        const c = terms[k].coef;
        const coef = typeof c === 'number' ? fr(c) : c[row];
        const prod = fr(coef * xs[k][i]);
        acc = k === 0 ? prod : fr(acc + prod);
      }
      if (b !== 0) acc = fr(acc + b);
      out[i] = acc;
    }
    return out;
  }

  return {
    async lincomb(terms: readonly Term[], bias = 0): Promise<Tensor> {
      return rt.make(combine('lincomb', terms, bias), terms[0].x.shape);
    },

    async lincombRounded(terms: readonly Term[], dtype: FloatDType, bias = 0): Promise<Tensor> {
      const sum = combine('lincombRounded', terms, bias);
      return rt.make(dtype === 'F32' ? sum : decodeFloats(encodeFloats(sum, dtype), dtype), terms[0].x.shape);
    },

    async nearswap(base: Tensor, x: Tensor, t: number): Promise<Tensor> {
      const [b, v] = pair('nearswap', base, x, ['base', 'model']);
      const tf = fr(t);
      const floor = fr(1e-6);
      const out = new Float32Array(b.length);
      for (let i = 0; i < b.length; i++) {
        const dist = Math.max(Math.abs(fr(b[i] - v[i])), floor);
        const w = Math.min(Math.max(fr(tf / dist), 0), 1);
        out[i] = fr(fr(w * v[i]) + fr(fr(1 - w) * b[i]));
      }
      return rt.make(out, base.shape);
    },

    async absAtLeast(a: Tensor, b: Tensor, lambda: number): Promise<Tensor> {
      const [av, bv] = pair('absAtLeast', a, b, ['a', 'b']);
      const l = fr(lambda);
      const out = new Float32Array(av.length);
      for (let i = 0; i < av.length; i++) out[i] = Math.abs(av[i]) >= fr(l * Math.abs(bv[i])) ? 1 : 0;
      return rt.make(out, a.shape);
    },

    async multiply(a: Tensor, b: Tensor): Promise<Tensor> {
      const [av, bv] = pair('multiply', a, b, ['a', 'b']);
      return rt.make(Float32Array.from(av, (v, i) => v * bv[i]), a.shape);
    },

    async divideAtLeast(a: Tensor, b: Tensor, floor: number): Promise<Tensor> {
      const [av, bv] = pair('divideAtLeast', a, b, ['a', 'b']);
      const f = fr(floor);
      return rt.make(Float32Array.from(av, (v, i) => v / Math.max(bv[i], f)), a.shape);
    },

    async expAffine(x: Tensor, shift: number, scale: number, bias: number): Promise<Tensor> {
      const d = rt.data(x, 'expAffine');
      const [s, c, b] = [fr(shift), fr(scale), fr(bias)];
      return rt.make(Float32Array.from(d, (v) => Math.exp(fr(fr(fr(v - s) * c) + b))), x.shape);
    },

    async rampAbove(x: Tensor, threshold: number, scale: number): Promise<Tensor> {
      const d = rt.data(x, 'rampAbove');
      const [t, c] = [fr(threshold), fr(scale)];
      return rt.make(Float32Array.from(d, (v) => Math.max(fr(v - t), 0) * c), x.shape);
    },
  };
}

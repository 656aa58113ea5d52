/**
 * The CPU reference backend: every Backend op as plain TypeScript over Float32Array.
 *
 * This is the specification the WGSL kernels are tested against, so it favours being obviously
 * correct over being fast, and keeps f32 semantics wherever the GPU computes in f32 (every
 * intermediate goes through Math.fround or a Float32Array store). Reductions that the GPU combines
 * in f64 (gram, gramRows, sumAbs) accumulate in f64 here.
 */
import { byteLength, decodeFloats, encodeFloats, type FloatDType } from '../core/dtype.ts';
import {
  hashTensorName,
  rowCount,
  uniformAt,
  type Backend,
  type MaskKey,
  type Tensor,
  type Term,
} from './backend.ts';

/** A bad call on the CPU backend (shape mismatch, released or foreign tensor, wrong byte count). */
export class CpuBackendError extends Error {
  constructor(op: string, reason: string) {
    super(`cpu backend: ${op}: ${reason}`);
    this.name = 'CpuBackendError';
  }
}

/** A tensor owned by a CpuBackend: a host Float32Array, dropped on release. */
export class CpuTensor implements Tensor {
  readonly numel: number;
  readonly shape: readonly number[];
  /** null once released. */
  data: Float32Array | null;

  constructor(data: Float32Array, shape: readonly number[]) {
    this.numel = data.length;
    this.shape = [...shape];
    this.data = data;
  }
}

function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

const fr = Math.fround;

export class CpuBackend implements Backend {
  readonly kind = 'cpu' as const;
  readonly description = 'CPU (TypeScript)';
  readonly #live = new Set<CpuTensor>();

  /** Number of tensors made by this backend and not yet released (leak checks in tests). */
  get liveTensors(): number {
    return this.#live.size;
  }

  /** Wrap a copy of host values as a new tensor (tests and host-side setup). */
  fromArray(values: ArrayLike<number>, shape: readonly number[]): CpuTensor {
    const data = Float32Array.from(values);
    if (numelOf(shape) !== data.length) {
      throw new CpuBackendError(
        'fromArray',
        `${data.length} values do not fill shape [${shape.join(', ')}]`,
      );
    }
    return this.#make(data, shape);
  }

  async decode(bytes: Uint8Array, dtype: FloatDType, shape: readonly number[]): Promise<Tensor> {
    const numel = numelOf(shape);
    const want = byteLength(dtype, numel);
    if (bytes.byteLength !== want) {
      throw new CpuBackendError(
        'decode',
        `${bytes.byteLength} bytes for ${dtype} shape [${shape.join(', ')}], expected ${want}`,
      );
    }
    return this.#make(decodeFloats(bytes, dtype), shape);
  }

  async encode(t: Tensor, dtype: FloatDType): Promise<Uint8Array> {
    return encodeFloats(this.#data(t, 'encode'), dtype);
  }

  async read(t: Tensor): Promise<Float32Array> {
    return this.#data(t, 'read').slice();
  }

  async lincomb(terms: readonly Term[], bias = 0): Promise<Tensor> {
    if (terms.length === 0) throw new CpuBackendError('lincomb', 'no terms');
    const first = terms[0].x;
    const rows = rowCount(first.shape);
    const xs = terms.map((term, i) => {
      const d = this.#data(term.x, 'lincomb');
      if (d.length !== first.numel) {
        throw new CpuBackendError(
          'lincomb',
          `term ${i} has ${d.length} elements, term 0 has ${first.numel}`,
        );
      }
      if (typeof term.coef !== 'number' && term.coef.length !== rows) {
        throw new CpuBackendError(
          'lincomb',
          `term ${i} has ${term.coef.length} row coefficients for ${rows} rows`,
        );
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
    return this.#make(out, first.shape);
  }

  async gram(xs: readonly Tensor[]): Promise<Float64Array> {
    const ds = this.#sameSize(xs, 'gram');
    const count = ds.length;
    const g = new Float64Array(count * count);
    for (let i = 0; i < count; i++) {
      for (let j = i; j < count; j++) {
        const a = ds[i];
        const b = ds[j];
        let s = 0;
        for (let e = 0; e < a.length; e++) s += a[e] * b[e];
        g[i * count + j] = s;
        g[j * count + i] = s;
      }
    }
    return g;
  }

  async gramRows(xs: readonly Tensor[]): Promise<Float64Array> {
    const ds = this.#sameSize(xs, 'gramRows');
    const count = ds.length;
    const rows = rowCount(xs[0].shape);
    const rowLen = rows > 0 ? xs[0].numel / rows : 0;
    const g = new Float64Array(rows * count * count);
    for (let r = 0; r < rows; r++) {
      const start = r * rowLen;
      for (let i = 0; i < count; i++) {
        for (let j = i; j < count; j++) {
          const a = ds[i];
          const b = ds[j];
          let s = 0;
          for (let e = start; e < start + rowLen; e++) s += a[e] * b[e];
          g[r * count * count + i * count + j] = s;
          g[r * count * count + j * count + i] = s;
        }
      }
    }
    return g;
  }

  async sumAbs(x: Tensor): Promise<number> {
    const d = this.#data(x, 'sumAbs');
    let s = 0;
    for (let i = 0; i < d.length; i++) s += Math.abs(d[i]);
    return s;
  }

  async keepRankBand(x: Tensor, lo: number, hi: number): Promise<Tensor> {
    const d = this.#data(x, 'keepRankBand');
    const order = ascendingMagnitudeOrder(d, 0, d.length);
    const from = Math.max(0, Math.min(d.length, Math.floor(lo)));
    const to = Math.max(from, Math.min(d.length, Math.floor(hi)));
    const out = new Float32Array(d.length);
    for (let rank = from; rank < to; rank++) out[order[rank]] = d[order[rank]];
    return this.#make(out, x.shape);
  }

  async keepRandom(x: Tensor, p: number, key: MaskKey): Promise<Tensor> {
    const d = this.#data(x, 'keepRandom');
    const out = new Float32Array(d.length);
    if (p >= 1) {
      out.set(d);
    } else if (p > 0) {
      const threshold = fr(p);
      const hash = hashTensorName(key.tensor);
      for (let i = 0; i < d.length; i++) {
        if (uniformAt(key.seed, key.model, hash, i) < threshold) out[i] = d[i];
      }
    }
    return this.#make(out, x.shape);
  }

  async keepRanked(x: Tensor, density: number, epsilon: number, key: MaskKey): Promise<Tensor> {
    const d = this.#data(x, 'keepRanked');
    const rows = rowCount(x.shape);
    const rowLen = rows > 0 ? d.length / rows : 0;
    const hash = hashTensorName(key.tensor);
    const low = fr(fr(density) - fr(epsilon));
    const span = fr(2 * fr(epsilon));
    const out = new Float32Array(d.length);
    for (let r = 0; r < rows; r++) {
      const start = r * rowLen;
      const order = ascendingMagnitudeOrder(d, start, rowLen);
      for (let rank = 0; rank < rowLen; rank++) {
        const i = order[rank];
        const rel = rowLen > 1 ? fr(rank / (rowLen - 1)) : 0;
        const p = fr(low + fr(span * rel));
        if (uniformAt(key.seed, key.model, hash, i) < p) out[i] = d[i];
      }
    }
    return this.#make(out, x.shape);
  }

  async keepWhere(x: Tensor, mask: Tensor): Promise<Tensor> {
    const d = this.#data(x, 'keepWhere');
    const m = this.#data(mask, 'keepWhere');
    if (m.length !== d.length) {
      throw new CpuBackendError('keepWhere', `mask has ${m.length} elements, tensor has ${d.length}`);
    }
    const out = new Float32Array(d.length);
    for (let i = 0; i < d.length; i++) if (m[i] !== 0) out[i] = d[i];
    return this.#make(out, x.shape);
  }

  async signElect(
    wds: readonly Tensor[],
    weights: readonly number[],
    normalize: boolean,
  ): Promise<Tensor> {
    const ds = this.#sameSize(wds, 'signElect');
    if (weights.length !== ds.length) {
      throw new CpuBackendError('signElect', `${weights.length} weights for ${ds.length} tensors`);
    }
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
    return this.#make(out, wds[0].shape);
  }

  async nearswap(base: Tensor, x: Tensor, t: number): Promise<Tensor> {
    const b = this.#data(base, 'nearswap');
    const v = this.#data(x, 'nearswap');
    if (b.length !== v.length) {
      throw new CpuBackendError('nearswap', `base has ${b.length} elements, model has ${v.length}`);
    }
    const tf = fr(t);
    const floor = fr(1e-6);
    const out = new Float32Array(b.length);
    for (let i = 0; i < b.length; i++) {
      const dist = Math.max(Math.abs(fr(b[i] - v[i])), floor);
      const w = Math.min(Math.max(fr(tf / dist), 0), 1);
      out[i] = fr(fr(w * v[i]) + fr(fr(1 - w) * b[i]));
    }
    return this.#make(out, base.shape);
  }

  async absAtLeast(a: Tensor, b: Tensor, lambda: number): Promise<Tensor> {
    const av = this.#data(a, 'absAtLeast');
    const bv = this.#data(b, 'absAtLeast');
    if (av.length !== bv.length) {
      throw new CpuBackendError('absAtLeast', `a has ${av.length} elements, b has ${bv.length}`);
    }
    const l = fr(lambda);
    const out = new Float32Array(av.length);
    for (let i = 0; i < av.length; i++) out[i] = Math.abs(av[i]) >= fr(l * Math.abs(bv[i])) ? 1 : 0;
    return this.#make(out, a.shape);
  }

  async quantize(x: Tensor, dtype: FloatDType): Promise<Tensor> {
    const d = this.#data(x, 'quantize');
    const out = dtype === 'F32' ? d.slice() : decodeFloats(encodeFloats(d, dtype), dtype);
    return this.#make(out, x.shape);
  }

  release(t: Tensor): void {
    if (!(t instanceof CpuTensor)) return;
    t.data = null;
    this.#live.delete(t);
  }

  destroy(): void {
    for (const t of this.#live) t.data = null;
    this.#live.clear();
  }

  #make(data: Float32Array, shape: readonly number[]): CpuTensor {
    const t = new CpuTensor(data, shape);
    this.#live.add(t);
    return t;
  }

  #data(t: Tensor, op: string): Float32Array {
    if (!(t instanceof CpuTensor) || !this.#live.has(t)) {
      const why = t instanceof CpuTensor ? 'was released or belongs to another CpuBackend' : 'is not a CPU tensor';
      throw new CpuBackendError(op, `tensor of shape [${t.shape.join(', ')}] ${why}`);
    }
    return t.data as Float32Array;
  }

  #sameSize(xs: readonly Tensor[], op: string): Float32Array[] {
    if (xs.length === 0) throw new CpuBackendError(op, 'no tensors');
    const ds = xs.map((x) => this.#data(x, op));
    for (let i = 1; i < ds.length; i++) {
      if (ds[i].length !== ds[0].length) {
        throw new CpuBackendError(
          op,
          `tensor ${i} has ${ds[i].length} elements, tensor 0 has ${ds[0].length}`,
        );
      }
    }
    return ds;
  }
}

/**
 * Indices start..start+len-1 sorted by (|x|, index) ascending: the rank order every magnitude op
 * uses, so equal magnitudes resolve to the lower index ranking lower.
 */
function ascendingMagnitudeOrder(d: Float32Array, start: number, len: number): Uint32Array {
  const order = new Uint32Array(len);
  for (let k = 0; k < len; k++) order[k] = start + k;
  order.sort((a, b) => Math.abs(d[a]) - Math.abs(d[b]) || a - b);
  return order;
}

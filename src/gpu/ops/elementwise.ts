/**
 * Elementwise ops (src/shaders/elementwise.wgsl): linear combinations with scalar or per-row
 * coefficients, nearswap's interpolation, the TALL-mask comparison, and the products, exponentials
 * and ramps of PCB's scores. The reference is
 * elementwise.cpu.ts; the GPU sums terms in the same order with the same f32 rounding, so results
 * are equal bit for bit.
 */
import elementwiseWgsl from '../../shaders/elementwise.wgsl?raw';
import float16Wgsl from '../../shaders/float16.wgsl?raw';
import type { FloatDType } from '../../core/dtype.ts';
import type { Tensor, Term } from '../backend.ts';
import type { CommandBatch } from '../context.ts';
import { chunkLength, chunkStart, type BufferRange, type GpuTensor } from '../gpu-tensor.ts';
import { defineKernel, groupsFor, shaderModule } from '../kernel.ts';
import type { GpuOpRuntime } from './runtime.ts';

export interface ElementwiseOps {
  /** Σ coef_i · x_i (all x_i of one shape), plus `bias` added to every element. */
  lincomb(terms: readonly Term[], bias?: number): Promise<Tensor>;
  /**
   * quantize(lincomb(terms, bias), dtype) in one pass: one step of the BF16/F16 math the engine
   * emulates (the f32 sum rounded to dtype and back; F32 leaves it as lincomb's).
   */
  lincombRounded(terms: readonly Term[], dtype: FloatDType, bias?: number): Promise<Tensor>;
  /** nearswap: w = clamp(t / max(|b - x|, 1e-6), 0, 1); result w·x + (1 - w)·b. */
  nearswap(base: Tensor, x: Tensor, t: number): Promise<Tensor>;
  /**
   * 1 where |a| >= lambda·|b| (the product rounded to f32), else 0: the TALL-mask test
   * |τ_t| >= λ·|τ_MTL − τ_t|, and with b = 1 a threshold on counts.
   */
  absAtLeast(a: Tensor, b: Tensor, lambda: number): Promise<Tensor>;
  /** a ⊙ b: one f32 product per element. */
  multiply(a: Tensor, b: Tensor): Promise<Tensor>;
  /** a / max(b, floor) per element (a weighted mean's division with its denominator kept off 0). */
  divideAtLeast(a: Tensor, b: Tensor, floor: number): Promise<Tensor>;
  /**
   * exp(scale·(x − shift) + bias) per element, each step in f32: softmax numerators of a
   * min-max-normalized x (x − shift is exact when x and shift are close).
   */
  expAffine(x: Tensor, shift: number, scale: number, bias: number): Promise<Tensor>;
  /** max(x − threshold, 0)·scale per element: 0 at and below the threshold, a ramp above it. */
  rampAbove(x: Tensor, threshold: number, scale: number): Promise<Tensor>;
}

const ELEMENTWISE = shaderModule('elementwise.wgsl', { file: 'float16.wgsl', code: float16Wgsl }, { file: 'elementwise.wgsl', code: elementwiseWgsl });
const KERNELS = {
  lincomb: defineKernel(ELEMENTWISE, 'lincomb', { uses: ['coefs', 'x0', 'x1', 'x2', 'x3', 'out'] }),
  nearswap: defineKernel(ELEMENTWISE, 'nearswap', { uses: ['x0', 'x1', 'out'] }),
  absAtLeast: defineKernel(ELEMENTWISE, 'abs_at_least', { uses: ['x0', 'x1', 'out'] }),
  multiply: defineKernel(ELEMENTWISE, 'multiply', { uses: ['x0', 'x1', 'out'] }),
  divideAtLeast: defineKernel(ELEMENTWISE, 'divide_at_least', { uses: ['x0', 'x1', 'out'] }),
  expAffine: defineKernel(ELEMENTWISE, 'exp_affine', { uses: ['x0', 'out'] }),
  rampAbove: defineKernel(ELEMENTWISE, 'ramp_above', { uses: ['x0', 'out'] }),
};

/** lincomb's round_to parameter per dtype (elementwise.wgsl). */
const ROUND_TO: Record<FloatDType, number> = { F32: 0, BF16: 1, F16: 2 };

/** Terms per lincomb dispatch: the kernel binds 4 inputs (browsers allow 8 storage buffers). */
export const TERMS_PER_PASS = 4;

/**
 * Record Σ coefs[i]·xs[i] (+ bias) into `out` chunks: 4 terms per dispatch, later dispatches adding
 * to what the earlier ones wrote, the bias added by the last. Coefficient buffers are batch temps.
 * Shared with the sign election, which needs the plain sum of many tensors.
 */
export function recordLincomb(
  rt: GpuOpRuntime,
  batch: CommandBatch,
  xs: readonly GpuTensor[],
  coefs: readonly (number | Float32Array)[],
  bias: number,
  out: readonly BufferRange[],
  roundTo: FloatDType = 'F32',
): void {
  const layout = xs[0].layout;
  const rows = layout.rows;
  const chunks = xs.map((x) => rt.chunks(x, 'lincomb'));
  for (let from = 0; from < xs.length; from += TERMS_PER_PASS) {
    const count = Math.min(TERMS_PER_PASS, xs.length - from);
    const perRow = coefs.slice(from, from + count).some((c) => typeof c !== 'number');
    const stride = perRow ? rows : 1;
    const values = new Float32Array(count * stride);
    for (let k = 0; k < count; k++) {
      const c = coefs[from + k];
      if (typeof c === 'number') values.fill(c, k * stride, (k + 1) * stride);
      else values.set(c, k * stride);
    }
    const coefBuffer = batch.temp(
      rt.ctx.acquire({
        label: `lincomb coefficients ${from}..${from + count - 1}`,
        size: values.byteLength,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
      }),
    );
    rt.ctx.device.queue.writeBuffer(coefBuffer, 0, values);
    const last = from + count >= xs.length;
    out.forEach((o, c) => {
      const len = chunkLength(layout, c);
      const x = (k: number) => chunks[from + Math.min(k, count - 1)][c];
      batch.dispatch(KERNELS.lincomb, {
        params: {
          n: len,
          offset: chunkStart(layout, c),
          row_len: layout.rowLen,
          coef_stride: stride,
          count,
          accumulate: from > 0 ? 1 : 0,
          add_bias: last && bias !== 0 ? 1 : 0,
          bias,
          round_to: last ? ROUND_TO[roundTo] : 0,
        },
        buffers: { coefs: { buffer: coefBuffer, size: values.byteLength }, x0: x(0), x1: x(1), x2: x(2), x3: x(3), out: o },
        workgroups: groupsFor(len),
      });
    });
  }
}

export function elementwiseGpu(rt: GpuOpRuntime): ElementwiseOps {
  const { ctx } = rt;

  /** One elementwise kernel over two equally laid-out tensors (x0, x1) with the scalar `t`. */
  async function pairwise(op: string, kernel: typeof KERNELS.nearswap, first: Tensor, second: Tensor, t: number, names: [string, string]) {
    const a = rt.tensor(first, op);
    const b = rt.tensor(second, op);
    if (a.numel !== b.numel) throw rt.error(op, `${names[0]} has ${a.numel} elements, ${names[1]} has ${b.numel}`);
    rt.sameLayout(op, a, b, names[1]);
    return rt.output(op, a.shape, async (out, layout) => {
      const batch = ctx.batch(op);
      const ac = rt.chunks(a, op);
      const bc = rt.chunks(b, op);
      out.forEach((o, c) => {
        const len = chunkLength(layout, c);
        batch.dispatch(kernel, { params: { n: len, t }, buffers: { x0: ac[c], x1: bc[c], out: o }, workgroups: groupsFor(len) });
      });
      await batch.submit();
    });
  }

  /** One elementwise kernel over one tensor (x0) with scalar params. */
  async function unary(op: string, kernel: typeof KERNELS.expAffine, input: Tensor, params: { shift?: number; scale?: number; bias?: number; t?: number }) {
    const x = rt.tensor(input, op);
    return rt.output(op, x.shape, async (out, layout) => {
      const batch = ctx.batch(op);
      const xc = rt.chunks(x, op);
      out.forEach((o, c) => {
        const len = chunkLength(layout, c);
        batch.dispatch(kernel, { params: { n: len, ...params }, buffers: { x0: xc[c], out: o }, workgroups: groupsFor(len) });
      });
      await batch.submit();
    });
  }

  async function lincomb(op: string, terms: readonly Term[], bias: number, roundTo: FloatDType) {
    if (terms.length === 0) throw rt.error(op, 'no terms');
    const first = rt.tensor(terms[0].x, op);
    const rows = first.layout.rows;
    const xs = terms.map((term, i) => {
      const x = rt.tensor(term.x, op);
      rt.sameLayout(op, first, x, `term ${i}`);
      if (typeof term.coef !== 'number' && term.coef.length !== rows) {
        throw rt.error(op, `term ${i} has ${term.coef.length} row coefficients for ${rows} rows`);
      }
      return x;
    });
    return rt.output(op, first.shape, async (out) => {
      const batch = ctx.batch(op);
      recordLincomb(rt, batch, xs, terms.map((t) => t.coef), Math.fround(bias), out, roundTo);
      await batch.submit();
    });
  }

  return {
    lincomb: (terms, bias = 0) => lincomb('lincomb', terms, bias, 'F32'),
    lincombRounded: (terms, dtype, bias = 0) => lincomb('lincombRounded', terms, bias, dtype),
    nearswap: (base, x, t) => pairwise('nearswap', KERNELS.nearswap, base, x, t, ['base', 'model']),
    absAtLeast: (a, b, lambda) => pairwise('absAtLeast', KERNELS.absAtLeast, a, b, lambda, ['a', 'b']),
    multiply: (a, b) => pairwise('multiply', KERNELS.multiply, a, b, 0, ['a', 'b']),
    divideAtLeast: (a, b, floor) => pairwise('divideAtLeast', KERNELS.divideAtLeast, a, b, floor, ['a', 'b']),
    expAffine: (x, shift, scale, bias) => unary('expAffine', KERNELS.expAffine, x, { shift, scale, bias }),
    rampAbove: (x, threshold, scale) => unary('rampAbove', KERNELS.rampAbove, x, { shift: threshold, scale }),
  };
}

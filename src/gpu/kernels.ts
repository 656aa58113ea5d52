/**
 * Every compute kernel of the GPU backend: its WGSL module and its bind-group layout, declared once.
 * Binding numbers and kinds mirror the `@binding` declarations in src/shaders/*.wgsl.
 */
import bitonicWgsl from '../shaders/bitonic.wgsl?raw';
import codecWgsl from '../shaders/codec.wgsl?raw';
import elementwiseWgsl from '../shaders/elementwise.wgsl?raw';
import masksWgsl from '../shaders/masks.wgsl?raw';
import radixSelectWgsl from '../shaders/radix-select.wgsl?raw';
import randomWgsl from '../shaders/random.wgsl?raw';
import reduceWgsl from '../shaders/reduce.wgsl?raw';
import signElectWgsl from '../shaders/sign-elect.wgsl?raw';
import { defineKernel } from './context.ts';
import { composeShader } from './device.ts';

const single = (file: string, code: string) => composeShader(file, [{ file, code }]);

const CODEC = single('codec.wgsl', codecWgsl);
const ELEMENTWISE = single('elementwise.wgsl', elementwiseWgsl);
const SIGN_ELECT = single('sign-elect.wgsl', signElectWgsl);
const REDUCE = single('reduce.wgsl', reduceWgsl);
const RADIX_SELECT = single('radix-select.wgsl', radixSelectWgsl);
const BITONIC = single('bitonic.wgsl', bitonicWgsl);
const MASKS = composeShader('masks.wgsl', [
  { file: 'random.wgsl', code: randomWgsl },
  { file: 'masks.wgsl', code: masksWgsl },
]);

export const KERNELS = {
  decodeBf16: defineKernel(CODEC, 'decode_bf16', { 0: 'uniform', 1: 'read-only-storage', 2: 'storage' }),
  decodeF16: defineKernel(CODEC, 'decode_f16', { 0: 'uniform', 1: 'read-only-storage', 2: 'storage' }),
  encodeBf16: defineKernel(CODEC, 'encode_bf16', { 0: 'uniform', 1: 'read-only-storage', 2: 'storage' }),
  encodeF16: defineKernel(CODEC, 'encode_f16', { 0: 'uniform', 1: 'read-only-storage', 2: 'storage' }),
  quantizeBf16: defineKernel(CODEC, 'quantize_bf16', { 0: 'uniform', 1: 'read-only-storage', 2: 'storage' }),
  quantizeF16: defineKernel(CODEC, 'quantize_f16', { 0: 'uniform', 1: 'read-only-storage', 2: 'storage' }),

  lincomb: defineKernel(ELEMENTWISE, 'lincomb', {
    0: 'uniform',
    1: 'read-only-storage',
    2: 'read-only-storage',
    3: 'read-only-storage',
    4: 'read-only-storage',
    5: 'read-only-storage',
    6: 'storage',
  }),
  nearswap: defineKernel(ELEMENTWISE, 'nearswap', {
    0: 'uniform',
    2: 'read-only-storage',
    3: 'read-only-storage',
    6: 'storage',
  }),
  absAtLeast: defineKernel(ELEMENTWISE, 'abs_at_least', {
    0: 'uniform',
    2: 'read-only-storage',
    3: 'read-only-storage',
    6: 'storage',
  }),

  electFused: defineKernel(SIGN_ELECT, 'elect_fused', {
    0: 'uniform',
    2: 'read-only-storage',
    3: 'read-only-storage',
    4: 'read-only-storage',
    5: 'read-only-storage',
    6: 'storage',
  }),
  electAccumulate: defineKernel(SIGN_ELECT, 'elect_accumulate', {
    0: 'uniform',
    1: 'read-only-storage',
    2: 'read-only-storage',
    3: 'read-only-storage',
    4: 'read-only-storage',
    5: 'read-only-storage',
    6: 'storage',
    7: 'storage',
  }),
  electFinish: defineKernel(SIGN_ELECT, 'elect_finish', { 0: 'uniform', 6: 'storage', 7: 'storage' }),

  dotPartials: defineKernel(REDUCE, 'dot_partials', {
    0: 'uniform',
    1: 'read-only-storage',
    2: 'read-only-storage',
    3: 'storage',
  }),
  absPartials: defineKernel(REDUCE, 'abs_partials', { 0: 'uniform', 1: 'read-only-storage', 3: 'storage' }),

  histogram: defineKernel(RADIX_SELECT, 'histogram', { 0: 'uniform', 1: 'read-only-storage', 2: 'storage' }),

  keepWhere: defineKernel(MASKS, 'keep_where', { 0: 'uniform', 1: 'read-only-storage', 2: 'read-only-storage', 4: 'storage' }),
  keepBand: defineKernel(MASKS, 'keep_band', { 0: 'uniform', 1: 'read-only-storage', 4: 'storage' }),
  keepRandom: defineKernel(MASKS, 'keep_random', { 0: 'uniform', 1: 'read-only-storage', 4: 'storage' }),
  keepRanked: defineKernel(MASKS, 'keep_ranked', {
    0: 'uniform',
    1: 'read-only-storage',
    2: 'read-only-storage',
    3: 'read-only-storage',
    4: 'storage',
  }),

  fillPad: defineKernel(BITONIC, 'fill_pad', { 0: 'uniform', 2: 'storage' }),
  loadKeys: defineKernel(BITONIC, 'load', { 0: 'uniform', 1: 'read-only-storage', 2: 'storage' }),
  sortStep: defineKernel(BITONIC, 'sort_step', { 0: 'uniform', 2: 'storage' }),
  sortLocal: defineKernel(BITONIC, 'sort_local', { 0: 'uniform', 2: 'storage' }),
  scatterRanks: defineKernel(BITONIC, 'scatter_ranks', { 0: 'uniform', 2: 'storage', 3: 'storage' }),
} as const;

/** Elements summed by one reduce.wgsl workgroup (256 threads × 16). */
export const REDUCE_BLOCK = 4096;
/** Pairs sorted in workgroup memory by one bitonic.wgsl sort_local workgroup. */
export const SORT_TILE = 512;
/** Elements counted by one radix-select.wgsl workgroup (256 threads × ELEMENTS_PER_THREAD 16). */
export const HISTOGRAM_BLOCK = 4096;

/** Sequential writer for a kernel's uniform `Params` struct (fields in declaration order). */
export class ParamWriter {
  readonly #view: DataView;
  #at = 0;

  constructor(bytes = 256) {
    this.#view = new DataView(new ArrayBuffer(bytes));
  }

  u32(v: number): this {
    this.#view.setUint32(this.#at, v >>> 0, true);
    this.#at += 4;
    return this;
  }

  f32(v: number): this {
    this.#view.setFloat32(this.#at, v, true);
    this.#at += 4;
    return this;
  }

  /** Skip to a multiple of `align` bytes (vec4 and struct members in uniforms align to 16). */
  align(align: number): this {
    this.#at = Math.ceil(this.#at / align) * align;
    return this;
  }

  bytes(): Uint8Array {
    return new Uint8Array(this.#view.buffer, 0, Math.max(16, Math.ceil(this.#at / 16) * 16));
  }
}

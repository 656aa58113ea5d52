/**
 * Codec ops (src/shaders/codec.wgsl): safetensors bytes ⇄ f32 tensors, and rounding to a 16-bit
 * type in place of the f32 value (the engine's emulation of mergekit's native BF16/F16 math).
 * The reference is codec.cpu.ts (through src/core/dtype.ts); all three are exact bit manipulations.
 */
import codecWgsl from '../../shaders/codec.wgsl?raw';
import float16Wgsl from '../../shaders/float16.wgsl?raw';
import { byteLength, type FloatDType } from '../../core/dtype.ts';
import type { Tensor } from '../backend.ts';
import { chunkLength, chunkStart } from '../gpu-tensor.ts';
import { defineKernel, groupsFor, shaderModule } from '../kernel.ts';
import type { GpuOpRuntime } from './runtime.ts';

export interface CodecOps {
  /** Decode little-endian BF16/F16/F32 bytes into a new f32 tensor. */
  decode(bytes: Uint8Array, dtype: FloatDType, shape: readonly number[]): Promise<Tensor>;
  /** Encode a tensor to dtype bytes on the host (BF16: round to nearest even, NaN -> 0x7FC0). */
  encode(t: Tensor, dtype: FloatDType): Promise<Uint8Array>;
  /**
   * Round every value to `dtype` and back to f32 (F32: a copy). The engine uses it to emulate math
   * that mergekit does natively in BF16/F16 when a recipe sets no `dtype` (each op rounds).
   */
  quantize(x: Tensor, dtype: FloatDType): Promise<Tensor>;
}

const CODEC = shaderModule('codec.wgsl', { file: 'float16.wgsl', code: float16Wgsl }, { file: 'codec.wgsl', code: codecWgsl });
const io = { uses: ['src', 'dst'] } as const;
const KERNELS = {
  decodeBF16: defineKernel(CODEC, 'decode_bf16', io),
  decodeF16: defineKernel(CODEC, 'decode_f16', io),
  encodeBF16: defineKernel(CODEC, 'encode_bf16', io),
  encodeF16: defineKernel(CODEC, 'encode_f16', io),
  quantizeBF16: defineKernel(CODEC, 'quantize_bf16', io),
  quantizeF16: defineKernel(CODEC, 'quantize_f16', io),
};

export function codecGpu(rt: GpuOpRuntime): CodecOps {
  const { ctx } = rt;

  async function decode(bytes: Uint8Array, dtype: FloatDType, shape: readonly number[]): Promise<Tensor> {
    const layout = rt.layout('decode', shape);
    const want = byteLength(dtype, layout.numel);
    if (bytes.byteLength !== want) {
      throw rt.error('decode', `${bytes.byteLength} bytes for ${dtype} shape [${shape.join(', ')}], expected ${want}`);
    }
    return rt.output('decode', shape, async (chunks) => {
      const queue = ctx.device.queue;
      // writeBuffer copies from any ArrayBuffer-backed view; the DOM typing wants ArrayBuffer.
      const src = bytes as Uint8Array<ArrayBuffer>;
      if (dtype === 'F32') {
        chunks.forEach((r, c) => queue.writeBuffer(r.buffer, r.offset, src, chunkStart(layout, c) * 4, chunkLength(layout, c) * 4));
        return;
      }
      const kernel = dtype === 'BF16' ? KERNELS.decodeBF16 : KERNELS.decodeF16;
      const batch = ctx.batch(`decode ${dtype}`);
      chunks.forEach((out, c) => {
        const start = chunkStart(layout, c);
        const len = chunkLength(layout, c);
        const packed = batch.temp(
          ctx.acquire({
            label: `decode ${dtype} input chunk ${c}`,
            size: Math.ceil(len / 2) * 4,
            usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
          }),
        );
        // writeBuffer needs a multiple of 4 bytes: an odd count sends its last value padded.
        const even = len - (len % 2);
        queue.writeBuffer(packed, 0, src, start * 2, even * 2);
        if (len % 2) {
          const tail = new Uint8Array(4);
          tail.set(bytes.subarray((start + even) * 2, (start + even) * 2 + 2));
          queue.writeBuffer(packed, even * 2, tail);
        }
        batch.dispatch(kernel, { params: { n: len }, buffers: { src: { buffer: packed, size: Math.ceil(len / 2) * 4 }, dst: out }, workgroups: groupsFor(len) });
      });
      await batch.submit();
    });
  }

  async function encode(t: Tensor, dtype: FloatDType): Promise<Uint8Array> {
    const x = rt.tensor(t, 'encode');
    const layout = x.layout;
    if (dtype === 'F32') {
      const out = new Uint8Array(layout.numel * 4);
      if (layout.numel === 0) return out;
      const batch = ctx.batch('encode F32');
      rt.chunks(x, 'encode').forEach((r, c) => batch.readback(r.buffer, r.offset, chunkLength(layout, c) * 4));
      (await batch.submit()).forEach((part, c) => out.set(new Uint8Array(part), chunkStart(layout, c) * 4));
      return out;
    }
    const out = new Uint8Array(layout.numel * 2);
    if (layout.numel === 0) return out;
    const kernel = dtype === 'BF16' ? KERNELS.encodeBF16 : KERNELS.encodeF16;
    const batch = ctx.batch(`encode ${dtype}`);
    rt.chunks(x, 'encode').forEach((r, c) => {
      const len = chunkLength(layout, c);
      const words = Math.ceil(len / 2);
      const packed = batch.temp(
        ctx.acquire({
          label: `encode ${dtype} output chunk ${c}`,
          size: words * 4,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
        }),
      );
      batch.dispatch(kernel, { params: { n: len }, buffers: { src: r, dst: { buffer: packed, size: words * 4 } }, workgroups: groupsFor(words) });
      batch.readback(packed, 0, words * 4);
    });
    const parts = await batch.submit();
    parts.forEach((part, c) => out.set(new Uint8Array(part, 0, chunkLength(layout, c) * 2), chunkStart(layout, c) * 2));
    return out;
  }

  async function quantize(t: Tensor, dtype: FloatDType): Promise<Tensor> {
    const x = rt.tensor(t, 'quantize');
    return rt.output('quantize', x.shape, async (out, layout) => {
      const batch = ctx.batch(`quantize ${dtype}`);
      const xc = rt.chunks(x, 'quantize');
      out.forEach((r, c) => {
        const len = chunkLength(layout, c);
        if (dtype === 'F32') batch.copy(xc[c].buffer, xc[c].offset, r.buffer, r.offset, len * 4);
        else {
          const kernel = dtype === 'BF16' ? KERNELS.quantizeBF16 : KERNELS.quantizeF16;
          batch.dispatch(kernel, { params: { n: len }, buffers: { src: xc[c], dst: r }, workgroups: groupsFor(len) });
        }
      });
      await batch.submit();
    });
  }

  return { decode, encode, quantize };
}

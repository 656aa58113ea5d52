/** Reference codec ops (see codec.ts): the host codecs of src/core/dtype.ts. */
import { byteLength, decodeFloats, encodeFloats, type FloatDType } from '../../core/dtype.ts';
import type { Tensor } from '../backend.ts';
import type { CodecOps } from './codec.ts';
import type { CpuOpRuntime } from './runtime.ts';

export function codecCpu(rt: CpuOpRuntime): CodecOps {
  return {
    async decode(bytes: Uint8Array, dtype: FloatDType, shape: readonly number[]): Promise<Tensor> {
      const numel = shape.reduce((a, b) => a * b, 1);
      const want = byteLength(dtype, numel);
      if (bytes.byteLength !== want) {
        throw rt.error('decode', `${bytes.byteLength} bytes for ${dtype} shape [${shape.join(', ')}], expected ${want}`);
      }
      return rt.make(decodeFloats(bytes, dtype), shape);
    },
    async encode(t: Tensor, dtype: FloatDType): Promise<Uint8Array> {
      return encodeFloats(rt.data(t, 'encode'), dtype);
    },
    async quantize(x: Tensor, dtype: FloatDType): Promise<Tensor> {
      const d = rt.data(x, 'quantize');
      return rt.make(dtype === 'F32' ? d.slice() : decodeFloats(encodeFloats(d, dtype), dtype), x.shape);
    },
  };
}

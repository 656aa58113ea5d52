/**
 * safetensors dtypes and the CPU codecs for the float types the engine merges.
 * All merge math is f32; BF16/F16/F32 decode to f32 and encode back
 * (BF16: round to nearest even, NaN -> 0x7FC0, as torch does).
 */

/** Every dtype of the safetensors spec, with its size in bits. */
export const DTYPE_BITS = {
  BOOL: 8,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  F64: 64,
  I64: 64,
  U64: 64,
  C64: 64,
} as const;

export type DType = keyof typeof DTYPE_BITS;
/** The dtypes the engine decodes, merges and encodes; every other dtype is copied from the base. */
export type FloatDType = 'BF16' | 'F16' | 'F32';

export const FLOAT_DTYPES: readonly FloatDType[] = ['BF16', 'F16', 'F32'];

export function isDType(s: string): s is DType {
  return Object.prototype.hasOwnProperty.call(DTYPE_BITS, s);
}

export function isFloatDType(d: string): d is FloatDType {
  return d === 'BF16' || d === 'F16' || d === 'F32';
}

/** Bytes for `numel` elements of `dtype` (sub-byte types pack, rounding up). */
export function byteLength(dtype: DType, numel: number): number {
  return Math.ceil((numel * DTYPE_BITS[dtype]) / 8);
}

/** mergekit / torch dtype names in recipes and config.json (`torch_dtype`). */
export const TORCH_DTYPE_NAMES: Record<FloatDType, string> = {
  BF16: 'bfloat16',
  F16: 'float16',
  F32: 'float32',
};

export function floatDTypeFromTorchName(name: string): FloatDType | undefined {
  switch (name) {
    case 'bfloat16':
    case 'bf16':
      return 'BF16';
    case 'float16':
    case 'fp16':
    case 'half':
      return 'F16';
    case 'float32':
    case 'fp32':
    case 'float':
      return 'F32';
    default:
      return undefined;
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bf16BitsToF32(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0];
}

export function f32ToBf16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return 0x7fc0; // NaN
  // Round to nearest even on the 16 dropped bits.
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

export function f32ToF16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf / NaN
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> Inf
  if (e <= 0) {
    // Subnormal half (or zero): shift the implicit-1 mantissa right, round to nearest even.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  const rest = mant & 0x1fff;
  let m = mant >>> 13;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

/** Decode little-endian BF16/F16/F32 bytes to f32. */
export function decodeFloats(bytes: Uint8Array, dtype: FloatDType): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = dtype === 'F32' ? 4 : 2;
  if (bytes.byteLength % size !== 0) {
    throw new RangeError(`${bytes.byteLength} bytes is not a whole number of ${dtype} values`);
  }
  const n = bytes.byteLength / size;
  const out = new Float32Array(n);
  if (dtype === 'F32') {
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
  } else if (dtype === 'BF16') {
    for (let i = 0; i < n; i++) out[i] = bf16BitsToF32(view.getUint16(i * 2, true));
  } else {
    for (let i = 0; i < n; i++) out[i] = f16BitsToF32(view.getUint16(i * 2, true));
  }
  return out;
}

/** Encode f32 values to little-endian BF16/F16/F32 bytes. */
export function encodeFloats(values: Float32Array, dtype: FloatDType): Uint8Array {
  const size = dtype === 'F32' ? 4 : 2;
  const out = new Uint8Array(values.length * size);
  const view = new DataView(out.buffer);
  if (dtype === 'F32') {
    for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  } else if (dtype === 'BF16') {
    for (let i = 0; i < values.length; i++) view.setUint16(i * 2, f32ToBf16Bits(values[i]), true);
  } else {
    for (let i = 0; i < values.length; i++) view.setUint16(i * 2, f32ToF16Bits(values[i]), true);
  }
  return out;
}

/** `value` rounded to `dtype` (as a torch tensor of that dtype would store it), as a number. */
export function roundScalar(value: number, dtype: FloatDType): number {
  if (dtype === 'F32') return Math.fround(value);
  return dtype === 'BF16' ? bf16BitsToF32(f32ToBf16Bits(value)) : f16BitsToF32(f32ToF16Bits(value));
}

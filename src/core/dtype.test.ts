import { describe, expect, it } from 'vitest';
import {
  bf16BitsToF32,
  byteLength,
  decodeFloats,
  encodeFloats,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  floatDTypeFromTorchName,
  isDType,
  isFloatDType,
} from './dtype.ts';

// Independent references: values of f16/bf16/f32 bit patterns from the IEEE 754 formulas, written with
// exponent/mantissa arithmetic in doubles (not the shifts the code under test uses).
function refF16(bits: number): number {
  const sign = bits >> 15 ? -1 : 1;
  const exponent = (bits >> 10) & 31;
  const fraction = bits & 1023;
  if (exponent === 31) return fraction === 0 ? sign * Infinity : NaN;
  if (exponent === 0) return sign * Math.pow(2, -14) * (fraction / 1024);
  return sign * Math.pow(2, exponent - 15) * (1 + fraction / 1024);
}

function f32FromBits(bits: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, bits >>> 0);
  return view.getFloat32(0);
}

function f32Bits(value: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, value);
  return view.getUint32(0);
}

/** Nearest value of a sorted grid, ties to the candidate whose bits are even (round to nearest even). */
function nearestEven(value: number, lower: number, lowerBits: number, upper: number, upperBits: number): number {
  const dLow = value - lower;
  const dHigh = upper - value;
  if (dLow < dHigh) return lowerBits;
  if (dHigh < dLow) return upperBits;
  return lowerBits % 2 === 0 ? lowerBits : upperBits;
}

// Every non-negative finite f16 value in increasing order; index = bit pattern (0x0000..0x7bff).
const positiveF16 = Array.from({ length: 0x7c00 }, (_, bits) => refF16(bits));
const F16_MAX = 65504;

/** Reference f32 -> f16 by searching the grid of all f16 values. */
function refF32ToF16(value: number): number {
  if (Number.isNaN(value)) return NaN;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const a = Math.abs(value);
  // Halfway between 65504 and the next step (65536) rounds up, out of range: Inf.
  if (a >= F16_MAX + 16) return sign | 0x7c00;
  if (a >= F16_MAX) return sign | 0x7bff;
  let lo = 0;
  let hi = positiveF16.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (positiveF16[mid] <= a) lo = mid;
    else hi = mid;
  }
  if (positiveF16[lo] === a) return sign | lo;
  return sign | nearestEven(a, positiveF16[lo], lo, positiveF16[hi], hi);
}

/** Deterministic pseudo-random u32s (xorshift32), so a failure reproduces. */
function* randomU32(count: number, seed = 0x9e3779b9): Generator<number> {
  let x = seed >>> 0;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    yield x;
  }
}

describe('f16 codec', () => {
  it('decodes the special values', () => {
    expect(Object.is(f16BitsToF32(0x0000), 0)).toBe(true);
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
    expect(f16BitsToF32(0x3c00)).toBe(1);
    expect(f16BitsToF32(0xc000)).toBe(-2);
    expect(f16BitsToF32(0x7bff)).toBe(65504);
    expect(f16BitsToF32(0x0400)).toBe(2 ** -14); // smallest normal
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24); // smallest subnormal
    expect(f16BitsToF32(0x03ff)).toBe(1023 * 2 ** -24); // largest subnormal
    expect(f16BitsToF32(0x7c00)).toBe(Infinity);
    expect(f16BitsToF32(0xfc00)).toBe(-Infinity);
    expect(f16BitsToF32(0x7e00)).toBeNaN();
    expect(f16BitsToF32(0x7c01)).toBeNaN();
  });

  it('decodes all 65536 patterns like the reference formula', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const got = f16BitsToF32(bits);
      const want = refF16(bits);
      if (!Object.is(got, want)) expect.fail(`bits 0x${bits.toString(16)}: got ${got}, want ${want}`);
    }
  });

  it('encodes the special values', () => {
    expect(f32ToF16Bits(0)).toBe(0x0000);
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65519)).toBe(0x7bff); // below the halfway point to 65536
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // halfway rounds to even: out of range
    expect(f32ToF16Bits(1e6)).toBe(0x7c00);
    expect(f32ToF16Bits(-1e6)).toBe(0xfc00);
    expect(f32ToF16Bits(Infinity)).toBe(0x7c00);
    expect(f32ToF16Bits(-Infinity)).toBe(0xfc00);
    const nan = f32ToF16Bits(NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001);
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // halfway between 0 and the smallest subnormal: even is 0
    expect(f32ToF16Bits(3 * 2 ** -25)).toBe(0x0002); // halfway between 1 and 2 subnormal steps: even is 2
    expect(f32ToF16Bits(2 ** -25 * 1.0001)).toBe(0x0001);
    expect(f32ToF16Bits(2 ** -30)).toBe(0x0000);
    expect(f32ToF16Bits(-(2 ** -30))).toBe(0x8000);
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie, even mantissa kept
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie, rounds up to even
    expect(f32ToF16Bits(2 ** -14 - 2 ** -25)).toBe(0x0400); // largest subnormal + half a step: rounds up to normal
    expect(f32ToF16Bits(f32FromBits(0x00000001))).toBe(0x0000); // f32 subnormal
  });

  it('round-trips every finite f16 value', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0) continue; // NaN payloads are not kept
      const back = f32ToF16Bits(f16BitsToF32(bits));
      if (back !== bits) expect.fail(`bits 0x${bits.toString(16)} came back as 0x${back.toString(16)}`);
    }
  });

  it('rounds random f32 values to the nearest f16, ties to even', () => {
    for (const bits of randomU32(200_000)) {
      // Bias exponents toward the f16 range so subnormals, normals and overflow all get hit.
      const exponent = 100 + (bits % 50);
      const value = f32FromBits((bits & 0x807fffff) | (exponent << 23));
      const got = f32ToF16Bits(value);
      const want = refF32ToF16(value);
      if (got !== want) expect.fail(`${value} (0x${f32Bits(value).toString(16)}): got 0x${got.toString(16)}, want 0x${want.toString(16)}`);
    }
  });
});

describe('bf16 codec', () => {
  /** Reference f32 -> bf16: pick the nearer of the two bf16 neighbours (exact in doubles), ties to even. */
  function refF32ToBf16(value: number): number {
    if (Number.isNaN(value)) return 0x7fc0;
    const bits = f32Bits(value);
    const truncated = bits >>> 16;
    if ((bits & 0xffff) === 0) return truncated;
    const lower = f32FromBits(truncated << 16);
    const upperBits = truncated + 1;
    // The neighbour away from zero; for the largest finite magnitude it is Inf, whose "value" for the
    // distance is the next power of two (the IEEE overflow threshold rule).
    const upper =
      (upperBits & 0x7fff) === 0x7f80 ? Math.sign(value) * 2 ** 128 : f32FromBits((upperBits << 16) >>> 0);
    const dLower = Math.abs(value - lower);
    const dUpper = Math.abs(upper - value);
    if (dLower < dUpper) return truncated;
    if (dUpper < dLower) return upperBits & 0xffff;
    return truncated % 2 === 0 ? truncated : upperBits & 0xffff;
  }

  it('decodes the special values', () => {
    expect(bf16BitsToF32(0x3f80)).toBe(1);
    expect(bf16BitsToF32(0xc000)).toBe(-2);
    expect(Object.is(bf16BitsToF32(0x8000), -0)).toBe(true);
    expect(bf16BitsToF32(0x7f80)).toBe(Infinity);
    expect(bf16BitsToF32(0xff80)).toBe(-Infinity);
    expect(bf16BitsToF32(0x7fc0)).toBeNaN();
    expect(bf16BitsToF32(0x7f7f)).toBe((2 - 2 ** -7) * 2 ** 127); // max finite
    expect(bf16BitsToF32(0x0001)).toBe(2 ** -133); // smallest subnormal
    expect(bf16BitsToF32(0x0080)).toBe(2 ** -126); // smallest normal
  });

  it('encodes the special values', () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(-0)).toBe(0x8000);
    expect(f32ToBf16Bits(Infinity)).toBe(0x7f80);
    expect(f32ToBf16Bits(-Infinity)).toBe(0xff80);
    expect(f32ToBf16Bits(NaN)).toBe(0x7fc0);
    expect(f32ToBf16Bits(f32FromBits(0xffc12345))).toBe(0x7fc0); // any NaN, either sign
    expect(f32ToBf16Bits(f32FromBits(0x7f7fffff))).toBe(0x7f80); // max f32 rounds to Inf, as torch does
    expect(f32ToBf16Bits(f32FromBits(0x3f808000))).toBe(0x3f80); // tie, even kept
    expect(f32ToBf16Bits(f32FromBits(0x3f818000))).toBe(0x3f82); // tie, rounds up to even
    expect(f32ToBf16Bits(f32FromBits(0x3f808001))).toBe(0x3f81);
    expect(f32ToBf16Bits(2 ** -133)).toBe(0x0001);
  });

  it('matches the nearest-even reference on random f32 bit patterns', () => {
    for (const bits of randomU32(200_000, 12345)) {
      const value = f32FromBits(bits);
      const got = f32ToBf16Bits(value);
      const want = refF32ToBf16(value);
      if (got !== want) expect.fail(`0x${bits.toString(16)}: got 0x${got.toString(16)}, want 0x${want.toString(16)}`);
    }
  });

  it('round-trips every non-NaN bf16 value', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0) continue;
      expect(f32ToBf16Bits(bf16BitsToF32(bits))).toBe(bits);
    }
  });
});

describe('decodeFloats / encodeFloats', () => {
  it('reads little-endian values at an unaligned offset', () => {
    // 1.0 and -2.0 as LE F32, BF16, F16, starting at byte 1 of the buffer.
    const f32 = new Uint8Array([0xaa, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]).subarray(1);
    expect([...decodeFloats(f32, 'F32')]).toEqual([1, -2]);
    const bf16 = new Uint8Array([0xaa, 0x80, 0x3f, 0x00, 0xc0]).subarray(1);
    expect([...decodeFloats(bf16, 'BF16')]).toEqual([1, -2]);
    const f16 = new Uint8Array([0xaa, 0x00, 0x3c, 0x00, 0xc0]).subarray(1);
    expect([...decodeFloats(f16, 'F16')]).toEqual([1, -2]);
  });

  it('writes little-endian bytes', () => {
    const values = new Float32Array([1, -2]);
    expect([...encodeFloats(values, 'F32')]).toEqual([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]);
    expect([...encodeFloats(values, 'BF16')]).toEqual([0x80, 0x3f, 0x00, 0xc0]);
    expect([...encodeFloats(values, 'F16')]).toEqual([0x00, 0x3c, 0x00, 0xc0]);
  });

  it('rejects a byte count that is not whole values', () => {
    expect(() => decodeFloats(new Uint8Array(3), 'BF16')).toThrow(/3 bytes.*BF16/);
    expect(() => decodeFloats(new Uint8Array(6), 'F32')).toThrow(/6 bytes.*F32/);
  });

  it('encodes and decodes lengths 0, 1 and odd', () => {
    for (const n of [0, 1, 123]) {
      const values = Float32Array.from({ length: n }, (_, i) => i - 60.5);
      for (const dtype of ['F32', 'BF16', 'F16'] as const) {
        expect([...decodeFloats(encodeFloats(values, dtype), dtype)]).toEqual([...values]);
      }
    }
  });
});

describe('dtype helpers', () => {
  it('sizes tensors, packing sub-byte types', () => {
    expect(byteLength('F32', 6)).toBe(24);
    expect(byteLength('BF16', 7)).toBe(14);
    expect(byteLength('F64', 2)).toBe(16);
    expect(byteLength('BOOL', 5)).toBe(5);
    expect(byteLength('F4', 4)).toBe(2);
    expect(byteLength('F4', 3)).toBe(2);
    expect(byteLength('F6_E2M3', 4)).toBe(3);
  });

  it('recognises dtype names', () => {
    expect(isDType('BF16')).toBe(true);
    expect(isDType('bf16')).toBe(false);
    expect(isDType('toString')).toBe(false); // not fooled by Object.prototype
    expect(isFloatDType('F16')).toBe(true);
    expect(isFloatDType('F64')).toBe(false);
    expect(floatDTypeFromTorchName('bfloat16')).toBe('BF16');
    expect(floatDTypeFromTorchName('half')).toBe('F16');
    expect(floatDTypeFromTorchName('float64')).toBeUndefined();
  });
});

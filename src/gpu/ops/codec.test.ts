/**
 * Codec ops (src/gpu/ops/codec.ts) on the GPU: at the special values (±0, NaN, ±Inf, subnormals,
 * max, rounding ties), then every BF16 / F16 bit pattern and a sweep of f32 patterns against the
 * host codecs of src/core/dtype.ts, and against codec.cpu.ts at odd sizes and chunkings. All exact
 * (integer bit manipulation on both sides).
 */
import { describe, expect, it } from 'vitest';
import { bf16BitsToF32, encodeFloats, f16BitsToF32, type FloatDType } from '../../core/dtype.ts';
import type { GpuBackend } from '../gpu-backend.ts';
import { cpu, gpuFor, LENGTHS, CHUNKINGS, randomValues, pair, numel, expectSameBits, release, useGpuBackends } from './testing.testutil.ts';

useGpuBackends();

describe('decode / encode vs CPU (exact)', () => {
  it('BF16 / F16 / F32 at every length and chunking', async () => {
    for (const chunk of CHUNKINGS) {
      const gpu = gpuFor(chunk);
      for (const n of LENGTHS) {
        // Wide range: rounding, F16 overflow to Inf and F16 subnormals all occur.
        const values = randomValues(n, 11 * n, 1).map((v, i) => v * 2 ** ((i % 41) - 20));
        const [g, c] = await pair(chunk, values, [n]);
        for (const dtype of ['BF16', 'F16', 'F32'] as const) {
          const what = `${dtype} n=${n} chunk=${chunk}`;
          const bytes = await gpu.encode(g, dtype);
          expect(Array.from(bytes), `encode ${what}`).toEqual(Array.from(await cpu.encode(c, dtype)));
          const dg = await gpu.decode(bytes, dtype, [n]);
          const dc = await cpu.decode(bytes, dtype, [n]);
          expectSameBits(await gpu.read(dg), await cpu.read(dc), `decode ${what}`);
          release(dg, dc);
        }
        release(g, c);
      }
    }
  });

  it('decodes a tensor whose chunks start at odd elements (2-byte values straddling words)', async () => {
    const gpu = gpuFor(777);
    const shape = [3, 4099];
    const values = randomValues(numel(shape), 5);
    for (const dtype of ['BF16', 'F16'] as const) {
      const bytes = await cpu.encode(cpu.fromArray(values, shape), dtype);
      const t = await gpu.decode(bytes, dtype, shape);
      expectSameBits(await gpu.read(t), await cpu.read(await cpu.decode(bytes, dtype, shape)), dtype);
      gpu.release(t);
    }
  });
});

function f32FromBits(bitsList: readonly number[]): Float32Array {
  return new Float32Array(Uint32Array.from(bitsList).buffer);
}

function halves(bytes: Uint8Array): number[] {
  return Array.from(new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2));
}

async function encodeOnGpu(be: GpuBackend, values: Float32Array, dtype: FloatDType): Promise<Uint8Array> {
  using t = await be.fromArray(values, [values.length]);
  return await be.encode(t, dtype);
}

async function decodeOnGpu(be: GpuBackend, bytes: Uint8Array, dtype: FloatDType): Promise<Float32Array> {
  const n = bytes.byteLength / (dtype === 'F32' ? 4 : 2);
  using t = await be.decode(bytes, dtype, [n]);
  return await be.read(t);
}

const h = (values: readonly number[]) => Float32Array.from(values);

describe('BF16 encode at special values (hand-computed)', () => {
  it('rounds to nearest even and maps NaN to 0x7FC0', async () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3f80],
      [1 + 2 ** -8, 0x3f80], // tie, even stays
      [1 + 3 * 2 ** -8, 0x3f82], // tie, odd rounds up
      [1 + 2 ** -8 + 2 ** -20, 0x3f81], // just above the tie
      [Infinity, 0x7f80],
      [-Infinity, 0xff80],
      [NaN, 0x7fc0],
      [3.4028234663852886e38, 0x7f80], // f32 max rounds up to Inf
      [-3.3895313892515355e38, 0xff7f], // BF16 max itself
      [1e-45, 0x0000], // smallest f32 subnormal rounds to zero
      [2 ** -133, 0x0001], // smallest BF16 subnormal
      [-1.1754942e-38, 0x8080], // largest f32 subnormal rounds up to the smallest normal
    ];
    const values = h(cases.map(([v]) => v));
    const want = cases.map(([, b]) => b);
    expect(halves(await encodeOnGpu(gpuFor(undefined), values, 'BF16'))).toEqual(want);
    // -NaN (sign bit set) is also 0x7FC0.
    expect(halves(await encodeOnGpu(gpuFor(undefined), f32FromBits([0xffc00001]), 'BF16'))).toEqual([0x7fc0]);
  });
});

describe('F16 encode at special values (hand-computed)', () => {
  it('rounds to nearest even, overflows to Inf, makes subnormals', async () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [1 + 2 ** -11, 0x3c00], // tie, even stays
      [1 + 3 * 2 ** -11, 0x3c02], // tie, odd rounds up
      [65504, 0x7bff], // max
      [65519.99, 0x7bff],
      [65520, 0x7c00], // tie above max rounds to Inf
      [1e6, 0x7c00],
      [-1e6, 0xfc00],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [NaN, 0x7e00],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // tie between 0 and 2^-24: even (0)
      [1.5 * 2 ** -25, 0x0001],
      [3 * 2 ** -25, 0x0002], // tie between 1 and 2 units: even (2)
      [-1023 * 2 ** -24, 0x83ff], // largest subnormal
      [1e-45, 0x0000], // f32 subnormal
      [-1e-45, 0x8000],
    ];
    const values = h(cases.map(([v]) => v));
    expect(halves(await encodeOnGpu(gpuFor(undefined), values, 'F16'))).toEqual(cases.map(([, b]) => b));
  });
});

describe('decode at special values (hand-computed)', () => {
  it('BF16 and F16 bit patterns to f32', async () => {
    const bf = [0x0000, 0x8000, 0x3f80, 0x7f80, 0xff80, 0x0001, 0x7f7f, 0xc040];
    const bfWant = [0, -0, 1, Infinity, -Infinity, 2 ** -133, 3.3895313892515355e38, -3];
    const got = await decodeOnGpu(gpuFor(undefined), new Uint8Array(Uint16Array.from(bf).buffer), 'BF16');
    expect(Array.from(got)).toEqual(bfWant);
    expect(Object.is(got[1], -0)).toBe(true);
    const hf = [0x0000, 0x8000, 0x3c00, 0x7bff, 0x7c00, 0xfc00, 0x0001, 0x03ff, 0x0400, 0x8001, 0xc500];
    const hfWant = [0, -0, 1, 65504, Infinity, -Infinity, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, -(2 ** -24), -5];
    expect(Array.from(await decodeOnGpu(gpuFor(undefined), new Uint8Array(Uint16Array.from(hf).buffer), 'F16'))).toEqual(hfWant);
    const nan = await decodeOnGpu(gpuFor(undefined), new Uint8Array(Uint16Array.from([0x7e00, 0xfc01, 0x7c01]).buffer), 'F16');
    expect(Array.from(nan).every(Number.isNaN)).toBe(true);
  });
});

describe('exhaustive 16-bit decode vs the CPU codecs', () => {
  it('every BF16 and F16 pattern, gpuFor(undefined) and in 777-element chunks', async () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const bytes = new Uint8Array(all.buffer);
    for (const be of [gpuFor(undefined), gpuFor(777)]) {
      for (const [dtype, ref] of [
        ['BF16', bf16BitsToF32],
        ['F16', f16BitsToF32],
      ] as const) {
        const got = await decodeOnGpu(be, bytes, dtype);
        const gotBits = new Uint32Array(got.buffer);
        const want = new Float32Array(1);
        const wantBits = new Uint32Array(want.buffer);
        for (let i = 0; i < 65536; i++) {
          want[0] = ref(i);
          if (Number.isNaN(want[0])) {
            if (!Number.isNaN(got[i])) expect.fail(`${dtype} 0x${i.toString(16)}: got ${got[i]}, want NaN`);
          } else if (gotBits[i] !== wantBits[0]) {
            expect.fail(`${dtype} 0x${i.toString(16)}: got ${got[i]}, want ${want[0]}`);
          }
        }
      }
    }
  });
});

describe('f32 sweep encode vs the CPU codecs', () => {
  it('ties, near-ties and random bit patterns (NaN, subnormal, Inf included), odd length', async () => {
    const patterns: number[] = [];
    // Around every BF16 value: exact, just below / at / just above the half-way point, the top.
    for (let b = 0; b < 65536; b += 3) {
      for (const off of [0, 0x7fff, 0x8000, 0x8001, 0xffff]) patterns.push(((b << 16) | off) >>> 0);
    }
    // Around every F16 value: the f32 bits of the value plus the half-way offsets of F16 rounding.
    const one = new Float32Array(1);
    const oneBits = new Uint32Array(one.buffer);
    for (let b = 0; b < 0x7c00; b += 5) {
      one[0] = f16BitsToF32(b);
      for (const off of [0, 0xfff, 0x1000, 0x1001]) patterns.push(((oneBits[0] + off) | (b & 1 ? 0x80000000 : 0)) >>> 0);
    }
    let seed = 12345;
    for (let i = 0; i < 20001; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      patterns.push(seed);
    }
    if (patterns.length % 2 === 0) patterns.push(0x7f800001);
    const values = f32FromBits(patterns);
    for (const be of [gpuFor(undefined), gpuFor(777)]) {
      for (const dtype of ['BF16', 'F16'] as const) {
        const got = halves(await encodeOnGpu(be, values, dtype));
        const want = halves(encodeFloats(values, dtype));
        for (let i = 0; i < want.length; i++) {
          if (got[i] !== want[i]) {
            expect.fail(`${dtype} of 0x${patterns[i].toString(16)}: got 0x${got[i].toString(16)}, want 0x${want[i].toString(16)}`);
          }
        }
      }
      // F32 round trip keeps every bit, NaN payloads and subnormals included.
      const back = await decodeOnGpu(be, await encodeOnGpu(be, values, 'F32'), 'F32');
      expect(Array.from(new Uint32Array(back.buffer))).toEqual(patterns);
    }
  });
});

describe('quantize (round to BF16/F16 and back) against the CPU codecs', () => {
  it.each(['BF16', 'F16', 'F32'] as const)('%s on odd sizes across chunks, special values included', async (dtype) => {
    const specials = [0, -0, 1, -1, 65504, 65520, 1e-8, -3e-5, 6.1e-5, 2 ** -24, 3.4e38, Infinity, -Infinity];
    const values = new Float32Array(4099);
    let s = 12345;
    for (let i = 0; i < values.length; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      values[i] = i < specials.length ? specials[i] : ((s / 2 ** 32) - 0.5) * 2 ** ((i % 40) - 20);
    }
    const want = dtype === 'F32' ? values : new Float32Array(
      Array.from(values, (v) => {
        const bytes = encodeFloats(Float32Array.of(v), dtype);
        const bits = bytes[0] | (bytes[1] << 8);
        return dtype === 'BF16' ? bf16BitsToF32(bits) : f16BitsToF32(bits);
      }),
    );
    for (const be of [gpuFor(undefined), gpuFor(777)]) {
      const t = await be.fromArray(values, [values.length]);
      const q = await be.quantize(t, dtype);
      const got = await be.read(q);
      be.release(t);
      be.release(q);
      expect(Array.from(got)).toEqual(Array.from(want));
    }
  });
});

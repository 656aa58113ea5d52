/**
 * Shared set-up for the op-family tests (src/gpu/ops/<family>.test.ts): one device per test file,
 * GPU backends with one chunk per tensor or many (maxChunkElements 777 / 1000), the CPU reference,
 * inputs at odd sizes, and comparisons that name the first differing element.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import type { Tensor } from '../backend.ts';
import { GpuContext } from '../context.ts';
import { CpuBackend } from '../cpu-backend.ts';
import { createGpuBackend, type GpuBackend } from '../gpu-backend.ts';
import { nodeGpu } from '../node-gpu.ts';
import { seeded } from '../../../tests/helpers/seeded.ts';

export const LENGTHS = [1, 7, 255, 257, 1000, 4099, 65537];
/** undefined: one chunk per tensor; 777 and 1000 cut most tensors into many chunks. */
export const CHUNKINGS = [undefined, 777] as const;
/** 2-D shapes: rows inside chunks, rows spanning chunks (1000, 4099 > 777), a single row. */
export const SHAPES_2D: number[][] = [
  [15, 17],
  [8, 125],
  [40, 1000],
  [3, 4099],
  [1, 257],
];

/** The file's context (set in beforeAll by useGpuBackends). */
export let ctx: GpuContext;
const backends = new Map<number | undefined, GpuBackend>();
export const cpu = new CpuBackend();

/** Register the file's device and backends (call once at the top of a test file). */
export function useGpuBackends(): void {
  beforeAll(async () => {
    ctx = await GpuContext.create(nodeGpu());
    for (const c of [undefined, 777, 1000]) backends.set(c, createGpuBackend(ctx, { maxChunkElements: c }));
  });
  afterAll(() => {
    for (const b of backends.values()) b.destroy();
    backends.clear();
    ctx?.destroy();
  });
}

export function gpuFor(chunk: number | undefined): GpuBackend {
  return backends.get(chunk) as GpuBackend;
}

export const rng = seeded;


/** Gaussian-ish values with a sprinkling of zeros and negative zeros. */
export function randomValues(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = r();
    if (u < 0.02) out[i] = 0;
    else if (u < 0.03) out[i] = -0;
    else out[i] = (r() + r() + r() - 1.5) * 2 * scale;
  }
  return out;
}

/** Values from a small set: many ties in magnitude (no zeros, so kept counts are visible). */
export function tiedValues(n: number, seed: number): Float32Array {
  const set = [0.5, -0.5, 1, -1, 2, -2, 3, 0.25, -4];
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => set[Math.floor(r() * set.length)]);
}

export async function pair(chunk: number | undefined, values: Float32Array, shape: number[]): Promise<[Tensor, Tensor]> {
  return [await gpuFor(chunk).fromArray(values, shape), cpu.fromArray(values, shape)];
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** Bit-identical, with the first differing index in the failure message. */
export function expectSameBits(got: Float32Array, want: Float32Array, what: string): void {
  expect(got.length, what).toBe(want.length);
  const g = bits(got);
  const w = bits(want);
  for (let i = 0; i < g.length; i++) {
    if (g[i] !== w[i]) {
      expect.fail(`${what}: element ${i}: got ${got[i]} (0x${g[i].toString(16)}), want ${want[i]} (0x${w[i].toString(16)})`);
    }
  }
}

/** |got - want| <= bound(i) for every element, naming the first that is not. */
export function expectClose(got: Float32Array, want: Float32Array, bound: (i: number) => number, what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= bound(i)) && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) {
      expect.fail(`${what}: element ${i}: got ${got[i]}, want ${want[i]}, |diff| ${d} > ${bound(i)}`);
    }
  }
}

export const F32_EPS = 2 ** -23;

export function release(...ts: Tensor[]): void {
  for (const t of ts) {
    for (const b of backends.values()) b.release(t);
    cpu.release(t);
  }
}

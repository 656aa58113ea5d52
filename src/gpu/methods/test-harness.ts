/**
 * Test support for the method modules (imported by *.test.ts only): seeded random inputs, a
 * MergeContext over the CPU reference backend, a leak check around merge(), and tolerance checks.
 */
import { expect } from 'vitest';
import { CpuBackend } from '../cpu-backend.ts';
import type { MergeContext, MethodDescriptor, ResolvedParams } from './types.ts';
import { seeded } from '../../../tests/helpers/seeded.ts';
export { seeded };


/** n values, roughly normal (sum of uniforms) times `scale`, stored as f32. */
export function randomValues(n: number, rand: () => number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() + rand() + rand() - 1.5) * 2 * scale;
  return out;
}

/** base + small perturbation: a fine-tune of `base`. */
export function fineTune(base: Float32Array, rand: () => number, scale = 0.1): Float32Array {
  const d = randomValues(base.length, rand, scale);
  return base.map((b, i) => b + d[i]);
}

export interface ModelSpec {
  values: Float32Array;
  params?: ResolvedParams;
  isBase?: boolean;
}

export interface MergeSpec {
  shape: number[];
  base?: Float32Array;
  models: ModelSpec[];
  params?: ResolvedParams;
  seed?: number;
  tensorName?: string;
  /** Replayed keep-masks by non-base position. */
  masks?: Map<number, Float32Array>;
  /** The dtype mergekit would compute in (BF16/F16: methods emulate 16-bit rounding). */
  computeDtype?: MergeContext['computeDtype'];
}

export const TENSOR = 'model.layers.3.mlp.down_proj.weight';

/**
 * Run method.merge on a fresh CpuBackend and return the result values. Fails the test if merge()
 * leaves any intermediate alive: after releasing the inputs and the result, nothing may be live.
 */
export async function runMethod(method: MethodDescriptor, spec: MergeSpec): Promise<Float32Array> {
  const backend = new CpuBackend();
  const base = spec.base ? backend.fromArray(spec.base, spec.shape) : undefined;
  let deltaIndex = 0;
  const models = spec.models.map((m) => {
    const isBase = m.isBase ?? false;
    return {
      tensor: isBase && base ? base : backend.fromArray(m.values, spec.shape),
      params: m.params ?? {},
      isBase,
      deltaIndex: isBase ? -1 : deltaIndex++,
    };
  });
  const inputs = [...new Set([...(base ? [base] : []), ...models.map((m) => m.tensor)])];
  const defaults = Object.fromEntries(
    method.params.filter((p) => p.default !== undefined).map((p) => [p.name, p.default!]),
  );
  const ctx: MergeContext = {
    backend,
    tensorName: spec.tensorName ?? TENSOR,
    shape: spec.shape,
    base,
    models,
    params: { ...defaults, ...spec.params },
    seed: spec.seed ?? 1234,
    computeDtype: spec.computeDtype,
    replayMask: async (i) => {
      const m = spec.masks?.get(i);
      return m ? backend.fromArray(m, spec.shape) : undefined;
    },
  };
  let result;
  try {
    result = await method.merge(ctx);
  } catch (err) {
    for (const t of inputs) backend.release(t);
    expect(backend.liveTensors, 'tensors left alive after a failed merge').toBe(0);
    throw err;
  }
  const values = await backend.read(result);
  backend.release(result);
  for (const t of inputs) backend.release(t);
  expect(backend.liveTensors, 'intermediate tensors leaked by merge()').toBe(0);
  return values;
}

/** Every |got − want| <= abs + rel·max|want| (tolerances stated by each test). */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, abs: number): void {
  expect(got.length).toBe(want.length);
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= worst)) {
      worst = err;
      worstAt = i;
    }
  }
  const limit = abs + rel * scale;
  expect(
    worst,
    `worst error ${worst} at ${worstAt} (got ${got[worstAt]}, want ${want[worstAt]}), limit ${limit}`,
  ).toBeLessThanOrEqual(limit);
}

/** Indices 0..n−1 ordered by (|v|, index) ascending: the rank rule written independently of the backend. */
export function magnitudeOrder(v: ArrayLike<number>, start = 0, len = v.length): number[] {
  const idx = Array.from({ length: len }, (_, k) => start + k);
  return idx.sort((a, b) => {
    const d = Math.abs(v[a]) - Math.abs(v[b]);
    return d !== 0 ? d : a - b;
  });
}

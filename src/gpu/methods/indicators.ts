/**
 * 0/1 masks built from the Backend's existing ops (no kernel of their own): "x is not zero",
 * "x is positive", "|x| > eps". Shared by SCE, RAM and Arcee Fusion. keepWhere keeps an entry of the
 * ones tensor exactly where its mask argument is non-zero, so each mask is exact (no rounding).
 */
import type { Backend, Tensor } from '../backend.ts';

/** A tensor of ones shaped like `like` (0·x + 1; `like` is a finite weight tensor). */
export function onesLike(backend: Backend, like: Tensor): Promise<Tensor> {
  return backend.lincomb([{ x: like, coef: 0 }], 1);
}

/** 1 where x ≠ 0, else 0. */
export function nonZeroMask(backend: Backend, x: Tensor, ones: Tensor): Promise<Tensor> {
  return backend.keepWhere(ones, x);
}

/** 1 where x > 0, else 0 (max(x, 0) is non-zero exactly there). */
export async function positiveMask(backend: Backend, x: Tensor, ones: Tensor): Promise<Tensor> {
  using positivePart = await backend.rampAbove(x, 0, 1);
  return await backend.keepWhere(ones, positivePart);
}

/** 1 where |x| > eps (strictly, as mergekit's `abs() > epsilon` on f32 values), else 0. */
export function absAboveMask(backend: Backend, x: Tensor, ones: Tensor, eps: number): Promise<Tensor> {
  // For f32 values, |x| > f32(eps) ⟺ |x| >= the next f32 above it.
  return backend.absAtLeast(x, ones, nextUpF32(Math.fround(eps)));
}

/** The smallest f32 above a finite non-negative f32 value. */
export function nextUpF32(v: number): number {
  if (!(v >= 0) || !Number.isFinite(v)) throw new RangeError(`nextUpF32: ${v} is not a finite non-negative number`);
  const f = new Float32Array([v]);
  const bits = new Uint32Array(f.buffer);
  bits[0] += 1;
  return f[0];
}

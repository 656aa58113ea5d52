/**
 * Newton–Schulz polar factors on both backends against the f64 polar factor U·Vᵀ of a one-sided
 * Jacobi SVD (tests/helpers/dense-f64.ts). Tolerances: 5e-7 for well-conditioned matrices (the
 * golden cases' f32 runs reached 2e-7 this way); u·κ for condition number κ (the f32 rounding of X
 * alone moves the polar factor by up to ~u·κ, u = 2^-24).
 */
import { describe, expect, it } from 'vitest';
import { jacobiSvd, maxAbsDiff, orthonormalColumns, polarReference, withSingularValues } from '../../../tests/helpers/dense-f64.ts';
import { BACKEND_NAMES, linalgBackends, type BackendName } from '../../../tests/helpers/linalg-backends.ts';
import type { Backend } from '../backend.ts';
import { frobeniusSquared } from './host.ts';
import { polar } from './polar.ts';

const U = 2 ** -24;
const backend = linalgBackends();
const geometric = (r: number, kappa: number) => Array.from({ length: r }, (_, i) => kappa ** (-i / Math.max(1, r - 1)));

async function checkPolar(b: Backend, m: number, n: number, kappa: number, seed: number, tolerance: number) {
  const xv = withSingularValues(m, n, geometric(Math.min(m, n), kappa), seed);
  using x = await b.upload(xv, [m, n]);
  const result = await polar(b, x);
  using p = result.polar;
  expect(p.shape).toEqual([m, n]);
  const diff = maxAbsDiff(await b.read(p), polarReference(xv, m, n));
  expect(diff, `${m}×${n}, κ = ${kappa}: max |P − P_ref|`).toBeLessThanOrEqual(tolerance);
  expect(result.converged).toBe(true);
  expect(result.residual).toBeLessThan(1e-5);
  return result;
}

describe.each(BACKEND_NAMES)('polar on %s', (name: BackendName) => {
  it('matches the f64 polar factor of tall, wide and square matrices within 5e-7', async () => {
    const b = backend(name);
    const tall = await checkPolar(b, 60, 20, 10, 1, 5e-7);
    const wide = await checkPolar(b, 20, 60, 10, 2, 5e-7);
    await checkPolar(b, 32, 32, 30, 3, 5e-7);
    // κ = 10 needs log₁.₅(10) ≈ 6 slow steps plus the quadratic tail.
    for (const r of [tall, wide]) expect(r.iterations).toBeGreaterThanOrEqual(6);
    for (const r of [tall, wide]) expect(r.iterations).toBeLessThanOrEqual(14);
  });

  it('converges on condition number 1e4 in about log₁.₅(κ) + 5 steps, within u·κ', async () => {
    const r = await checkPolar(backend(name), 48, 16, 1e4, 4, U * 1e4);
    expect(r.iterations).toBeGreaterThanOrEqual(20);
    expect(r.iterations).toBeLessThanOrEqual(35);
  });

  it('returns an orthonormal input unchanged after at most two steps', async () => {
    const b = backend(name);
    const q = Float32Array.from(orthonormalColumns(40, 8, 5));
    using x = await b.upload(q, [40, 8]);
    const r = await polar(b, x);
    using p = r.polar;
    expect(r.iterations).toBeLessThanOrEqual(2);
    expect(maxAbsDiff(await b.read(p), q)).toBeLessThan(5e-7);
  });

  it('stops at maxIterations and says it did not converge; a zero matrix gives zeros', async () => {
    const b = backend(name);
    using x = await b.upload(withSingularValues(30, 10, geometric(10, 1e4), 6), [30, 10]);
    const r = await polar(b, x, { maxIterations: 3 });
    using p = r.polar;
    expect(r.iterations).toBe(3);
    expect(r.converged).toBe(false);
    expect(r.residual).toBeGreaterThan(0.1);
    using zero = await b.upload(new Float32Array(12), [4, 3]);
    const z = await polar(b, zero);
    using zp = z.polar;
    expect(z.converged).toBe(false);
    expect([...(await b.read(zp))]).toEqual(new Array(12).fill(0));
  });

  it("gives Iso-C's mean singular value as trace(polar(M)ᵀ·M)/r", async () => {
    const b = backend(name);
    const [m, n] = [36, 14];
    const mv = withSingularValues(m, n, geometric(n, 50).map((s) => 3 * s), 7);
    using x = await b.upload(mv, [m, n]);
    const r = await polar(b, x);
    using p = r.polar;
    const trace = (await b.columnDots(p, x)).reduce((s, v) => s + v, 0);
    const sigma = jacobiSvd(mv, m, n).S;
    const mean = sigma.reduce((s, v) => s + v, 0) / n;
    expect(Math.abs(trace / n - mean) / mean).toBeLessThan(1e-6);
    expect(await frobeniusSquared(b, p)).toBeCloseTo(n, 5); // n unit singular values
  });
});

describe('polar across chunks', () => {
  it('runs on a 1500×5 matrix spanning 8 buffers', async () => {
    await checkPolar(backend('gpu-chunked'), 1500, 5, 10, 8, 5e-7);
  });
});

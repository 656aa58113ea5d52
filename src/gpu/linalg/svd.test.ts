/**
 * thinSvd and truncatedSvd on both backends against an independent f64 one-sided Jacobi SVD
 * (tests/helpers/dense-f64.ts). Tolerances (u = 2^-24, σ₁ = 1 here):
 * - singular values: |σ − σ_ref| ≤ 32·u·σ₁ (σ from ‖X·w‖ in f64 over f32 products);
 * - the factor computed as X·W/σ (U for tall, V for wide): ‖FᵀF − I‖_max ≤ 4·u·κ² + 1e-6 (the f32
 *   Gram resolves directions to ~u·σ₁²/σ_j²); the eigenvector factor: ≤ 1e-6 (f32 rounding of an
 *   f64-orthonormal matrix);
 * - reconstruction: ‖U·diag(S)·Vᵀ − X‖_max ≤ 1e-6·σ₁;
 * - truncated top-k: σ within 1e-6·σ₁, each u_j within 1 − |u_jᵀu_ref,j| ≤ 1e-6 (spectrum 0.8^j,
 *   so (σ_{l+1}/σ_k)^(2q+1) = 0.8^50 ≈ 1e-5 before the Rayleigh–Ritz step squares the angle).
 */
import { describe, expect, it } from 'vitest';
import { jacobiSvd, maxAbsDiff, orthonormalityError, product, transposed, withSingularValues } from '../../../tests/helpers/dense-f64.ts';
import { BACKEND_NAMES, linalgBackends, type BackendName } from '../../../tests/helpers/linalg-backends.ts';
import type { Backend } from '../backend.ts';
import { LinalgError } from './host.ts';
import { thinSvd, truncatedSvd, type SvdResult } from './svd.ts';

const U = 2 ** -24;
const backend = linalgBackends();
const geometric = (r: number, kappa: number) => Array.from({ length: r }, (_, i) => kappa ** (-i / Math.max(1, r - 1)));

async function read(b: Backend, res: SvdResult) {
  const u = await b.read(res.U);
  const v = await b.read(res.V);
  b.release(res.U);
  b.release(res.V);
  return { u, v, s: res.S };
}

async function checkThin(b: Backend, m: number, n: number, kappa: number, seed: number) {
  const r = Math.min(m, n);
  const xv = withSingularValues(m, n, geometric(r, kappa), seed);
  using x = await b.upload(xv, [m, n]);
  const res = await thinSvd(b, x);
  expect(res.U.shape).toEqual([m, r]);
  expect(res.V.shape).toEqual([n, r]);
  const { u, v, s } = await read(b, res);
  const ref = jacobiSvd(xv, m, n);
  const what = `${m}×${n}, κ = ${kappa}`;
  expect(maxAbsDiff(s, ref.S), `${what}: singular values`).toBeLessThanOrEqual(32 * U);
  for (let j = 1; j < r; j++) expect(s[j]).toBeLessThanOrEqual(s[j - 1]);
  const [computed, fromEigen] = m >= n ? [orthonormalityError(u, m, r), orthonormalityError(v, n, r)] : [orthonormalityError(v, n, r), orthonormalityError(u, m, r)];
  expect(computed, `${what}: X·W/σ factor`).toBeLessThanOrEqual(4 * U * kappa * kappa + 1e-6);
  expect(fromEigen, `${what}: eigenvector factor`).toBeLessThanOrEqual(1e-6);
  const us = Float64Array.from(u, (val, i) => val * s[i % r]);
  expect(maxAbsDiff(product(us, transposed(v, n, r), m, r, n), xv), `${what}: reconstruction`).toBeLessThanOrEqual(1e-6);
}

describe.each(BACKEND_NAMES)('thinSvd on %s', (name: BackendName) => {
  it('decomposes tall, wide and square matrices against a Jacobi SVD', async () => {
    const b = backend(name);
    await checkThin(b, 50, 12, 20, 1);
    await checkThin(b, 12, 50, 20, 2);
    await checkThin(b, 16, 16, 100, 3);
    await checkThin(b, 9, 1, 1, 4);
  });

  it('keeps the k largest triplets when asked for a rank', async () => {
    const b = backend(name);
    const xv = withSingularValues(40, 15, geometric(15, 30), 5);
    using x = await b.upload(xv, [40, 15]);
    const res = await thinSvd(b, x, { rank: 4 });
    expect(res.U.shape).toEqual([40, 4]);
    expect(res.V.shape).toEqual([15, 4]);
    const { s } = await read(b, res);
    expect(maxAbsDiff(s, jacobiSvd(xv, 40, 15).S.slice(0, 4))).toBeLessThanOrEqual(32 * U);
    await expect(thinSvd(b, x, { rank: 16 })).rejects.toThrow(/thinSvd: rank 16 outside \[0, 15\] for a 40×15 matrix/);
  });
});

describe.each(BACKEND_NAMES)('truncatedSvd on %s', (name: BackendName) => {
  const [m, n, k] = [240, 160, 5];
  const sigma = Array.from({ length: n }, (_, i) => 0.8 ** i);
  const xv = withSingularValues(m, n, sigma, 6);

  it('finds the top k triplets of a decaying spectrum, the same for the same seed', async () => {
    const b = backend(name);
    using x = await b.upload(xv, [m, n]);
    const first = await read(b, await truncatedSvd(b, x, k, { seed: 3 }));
    const ref = jacobiSvd(xv, m, n);
    expect(maxAbsDiff(first.s, ref.S.slice(0, k))).toBeLessThanOrEqual(1e-6);
    for (let j = 0; j < k; j++) {
      let dot = 0;
      for (let i = 0; i < m; i++) dot += first.u[i * k + j] * ref.U[i * n + j];
      expect(1 - Math.abs(dot), `u_${j}`).toBeLessThanOrEqual(1e-6);
    }
    expect(orthonormalityError(first.u, m, k)).toBeLessThanOrEqual(1e-6);
    expect(orthonormalityError(first.v, n, k)).toBeLessThanOrEqual(1e-5);
    const again = await read(b, await truncatedSvd(b, x, k, { seed: 3 }));
    expect(maxAbsDiff(again.u, first.u)).toBe(0);
  });

  it('handles a rank below k + oversampling (the basis is completed) and wide inputs', async () => {
    const b = backend(name);
    // Rank 3, asked for 5 triplets with 10 extra columns: X·Ω has rank 3 of 15.
    const low = withSingularValues(120, 90, [2, 1, 0.5], 7);
    using x = await b.upload(low, [120, 90]);
    const res = await read(b, await truncatedSvd(b, x, 5, { oversample: 10 }));
    expect(maxAbsDiff(res.s.slice(0, 3), [2, 1, 0.5])).toBeLessThanOrEqual(1e-6);
    expect(Math.max(res.s[3], res.s[4])).toBeLessThan(1e-5);
    const wideValues = Float32Array.from(transposed(xv, m, n));
    using wide = await b.upload(wideValues, [n, m]);
    const w = await read(b, await truncatedSvd(b, wide, k));
    expect(maxAbsDiff(w.s, sigma.slice(0, k))).toBeLessThanOrEqual(1e-6);
  });

  it('uses the exact thinSvd when k + oversampling reaches half the rank; names a bad k', async () => {
    const b = backend(name);
    const small = withSingularValues(30, 20, geometric(20, 10), 8);
    using x = await b.upload(small, [30, 20]);
    const res = await read(b, await truncatedSvd(b, x, 3));
    expect(maxAbsDiff(res.s, jacobiSvd(small, 30, 20).S.slice(0, 3))).toBeLessThanOrEqual(32 * U);
    await expect(truncatedSvd(b, x, 21)).rejects.toThrow(LinalgError);
    await expect(truncatedSvd(b, x, 2, { oversample: -1 })).rejects.toThrow(/oversample -1/);
  });
});

describe('SVD across chunks', () => {
  it('decomposes a 1500×7 matrix spanning 11 buffers', async () => {
    await checkThin(backend('gpu-chunked'), 1500, 7, 10, 9);
  });
});

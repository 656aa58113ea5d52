/**
 * CholeskyQR2 on both backends against the definition: ‖QᵀQ − I‖_max ≤ 4·n·u and
 * ‖Q·R − X‖_max ≤ 4·n·u·max|X| (u = 2^-24; CholeskyQR2 is orthonormal to O(n·u)), R upper
 * triangular; the shifted pass for κ = 1e5; rank deficiency as an error or a completed basis.
 */
import { describe, expect, it } from 'vitest';
import { maxAbsDiff, orthonormalityError, product, withSingularValues } from '../../../tests/helpers/dense-f64.ts';
import { BACKEND_NAMES, linalgBackends, type BackendName } from '../../../tests/helpers/linalg-backends.ts';
import type { Backend } from '../backend.ts';
import { LinalgError } from './host.ts';
import { qr, RankDeficientError } from './qr.ts';

const U = 2 ** -24;
const backend = linalgBackends();
const geometric = (r: number, kappa: number) => Array.from({ length: r }, (_, i) => kappa ** (-i / Math.max(1, r - 1)));

async function checkQr(b: Backend, xv: Float32Array, m: number, n: number, what: string) {
  using x = await b.upload(xv, [m, n]);
  const { Q, R, shiftedPasses } = await qr(b, x);
  using q = Q;
  expect(q.shape, what).toEqual([m, n]);
  const qv = await b.read(q);
  expect(orthonormalityError(qv, m, n), `${what}: orthonormality`).toBeLessThanOrEqual(4 * n * U);
  const maxX = xv.reduce((s, v) => Math.max(s, Math.abs(v)), 0);
  expect(maxAbsDiff(product(qv, R, m, n, n), xv), `${what}: Q·R − X`).toBeLessThanOrEqual(4 * n * U * maxX);
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(R[i * n + j], `${what}: R below the diagonal`).toBe(0);
  return shiftedPasses;
}

describe.each(BACKEND_NAMES)('qr on %s', (name: BackendName) => {
  it('factors tall and square well-conditioned matrices in two plain passes', async () => {
    const b = backend(name);
    expect(await checkQr(b, withSingularValues(200, 12, geometric(12, 10), 1), 200, 12, '200×12')).toBe(0);
    expect(await checkQr(b, withSingularValues(17, 17, geometric(17, 30), 2), 17, 17, '17×17')).toBe(0);
    expect(await checkQr(b, withSingularValues(65, 1, [3], 3), 65, 1, '65×1')).toBe(0);
  });

  it('needs a shifted pass for condition number 1e5 and still ends orthonormal', async () => {
    const shifted = await checkQr(backend(name), withSingularValues(200, 12, geometric(12, 1e5), 4), 200, 12, 'κ = 1e5');
    expect(shifted).toBeGreaterThan(0);
  });

  it('refuses linearly dependent columns, naming the column, or completes the basis when asked', async () => {
    const b = backend(name);
    const m = 60;
    const n = 6;
    const base = withSingularValues(m, n, geometric(n, 10), 5);
    for (let i = 0; i < m; i++) base[i * n + 4] = base[i * n + 1]; // column 4 = column 1
    using x = await b.upload(base, [m, n]);
    await expect(qr(b, x)).rejects.toThrow(RankDeficientError);
    await expect(qr(b, x)).rejects.toThrow(/linearly dependent to f32 precision: column 4 lies within/);
    const { Q, R } = await qr(b, x, { rankDeficient: 'complete' });
    using q = Q;
    const qv = await b.read(q);
    expect(orthonormalityError(qv, m, n)).toBeLessThanOrEqual(4 * n * U);
    expect(maxAbsDiff(product(qv, R, m, n, n), base)).toBeLessThanOrEqual(1e-5);
    expect(Math.abs(R[4 * n + 4])).toBeLessThan(1e-5 * Math.abs(R[0]));
  });

  it('names wide and zero inputs', async () => {
    const b = backend(name);
    using wide = await b.upload(new Float32Array(12), [3, 4]);
    await expect(qr(b, wide)).rejects.toThrow(LinalgError);
    await expect(qr(b, wide)).rejects.toThrow(/qr: needs at least as many rows as columns, got a 3×4 matrix/);
    using zero = await b.upload(new Float32Array(12), [4, 3]);
    await expect(qr(b, zero)).rejects.toThrow(/qr: the 4×3 matrix is zero/);
  });
});

describe('qr across chunks', () => {
  it('factors a 4097×7 matrix spanning 29 buffers', async () => {
    expect(await checkQr(backend('gpu-chunked'), withSingularValues(4097, 7, geometric(7, 10), 6), 4097, 7, '4097×7 chunked')).toBe(0);
  });
});

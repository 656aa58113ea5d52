/**
 * symmetricEigen (host f64) on known spectra and random symmetric matrices: eigenvalues against the
 * ones built in (1e-13 relative), ‖A·V − V·Λ‖ ≤ 1e-12·‖A‖, ‖VᵀV − I‖ ≤ 1e-13, descending order.
 */
import { describe, expect, it } from 'vitest';
import { gramOf, maxAbsDiff, normals, orthonormalColumns, orthonormalityError, product, transposed } from '../../../tests/helpers/dense-f64.ts';
import { EigenError, symmetricEigen } from './eigh.ts';

function randomSymmetric(n: number, seed: number): Float64Array {
  const g = normals(n * n, seed);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = g[i * n + j] + g[j * n + i];
  return a;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** max |A·v_j − λ_j·v_j| over all j. */
function residual(a: Float64Array, n: number, values: Float64Array, vectors: Float64Array): number {
  const av = product(a, vectors, n, n, n);
  let worst = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) worst = Math.max(worst, Math.abs(av[i * n + j] - values[j] * vectors[i * n + j]));
  return worst;
}

function expectDecomposition(a: Float64Array, n: number, what: string) {
  const { values, vectors } = symmetricEigen(a, n);
  expect(values.length, what).toBe(n);
  for (let j = 1; j < n; j++) expect(values[j], `${what}: descending at ${j}`).toBeLessThanOrEqual(values[j - 1]);
  const scale = Math.max(maxAbs(a), 1e-300);
  expect(residual(a, n, values, vectors) / scale, `${what}: residual`).toBeLessThan(1e-12);
  expect(orthonormalityError(vectors, n, n), `${what}: orthonormality`).toBeLessThan(1e-13);
  return { values, vectors };
}

describe('symmetricEigen', () => {
  it('recovers a prescribed spectrum with negatives, repeats and zeros', () => {
    const n = 40;
    const lambda = Array.from({ length: n }, (_, i) => (i < 5 ? 3 : i < 8 ? 0 : (i % 2 ? -1 : 1) * (1 + i / 7)));
    const q = orthonormalColumns(n, n, 5);
    const a = product(product(q, Float64Array.from({ length: n * n }, (_, k) => (k % (n + 1) === 0 ? lambda[k / (n + 1)] : 0)), n, n, n), transposed(q, n, n), n, n, n);
    const { values } = expectDecomposition(a, n, 'prescribed');
    const want = [...lambda].sort((x, y) => y - x);
    expect(maxAbsDiff(values, want)).toBeLessThan(1e-13 * 7);
  });

  it('decomposes random symmetric matrices of sizes 1, 2, 3, 17 and 120', () => {
    for (const n of [1, 2, 3, 17, 120]) expectDecomposition(randomSymmetric(n, n), n, `random n=${n}`);
  });

  it('handles diagonal (already reduced), zero, rank-one and empty matrices', () => {
    const diag = new Float64Array(25);
    [4, -2, 7, 0, 1].forEach((v, i) => (diag[i * 6] = v));
    expect([...expectDecomposition(diag, 5, 'diagonal').values]).toEqual([7, 4, 1, 0, -2]);
    expect([...expectDecomposition(new Float64Array(9), 3, 'zero').values]).toEqual([0, 0, 0]);
    const x = normals(30, 3);
    const rankOne = product(x, x, 30, 1, 30);
    const { values, vectors } = expectDecomposition(rankOne, 30, 'rank one');
    const norm2 = x.reduce((s, v) => s + v * v, 0);
    expect(Math.abs(values[0] - norm2) / norm2).toBeLessThan(1e-14);
    expect(Math.abs(values[1]) / norm2).toBeLessThan(1e-14);
    // The top eigenvector is ±x/‖x‖.
    const dot = x.reduce((s, v, i) => s + v * vectors[i * 30], 0);
    expect(Math.abs(Math.abs(dot) - Math.sqrt(norm2)) / Math.sqrt(norm2)).toBeLessThan(1e-13);
    expect(symmetricEigen(new Float64Array(0), 0).values.length).toBe(0);
  });

  it('uses the symmetric part of a slightly asymmetric input (a Gram matrix with rounding)', () => {
    const n = 12;
    const g = gramOf(normals(20 * n, 9), 20, n);
    const skewed = Float64Array.from(g, (v, k) => v + Math.sign((k % n) - Math.floor(k / n)) * 1e-9); // +ε above, −ε below
    const a = symmetricEigen(g, n).values;
    const b = symmetricEigen(skewed, n).values;
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-12 * a[0]);
  });

  it('names bad input', () => {
    expect(() => symmetricEigen(new Float64Array(8), 3)).toThrow(/symmetricEigen: 8 values for a 3×3 matrix/);
    const bad = new Float64Array(4);
    bad[1] = NaN;
    expect(() => symmetricEigen(bad, 2)).toThrow(EigenError);
    expect(() => symmetricEigen(bad, 2)).toThrow(/element \(0, 1\) is NaN/);
  });
});

/**
 * Independent f64 references for the linear-algebra tests: a one-sided Jacobi SVD (Hestenes), the
 * polar factor from it, and matrices with prescribed singular values. Row-major Float64Arrays.
 */
import { seeded } from './seeded.ts';

/** Standard normal values from the seeded generator (Box–Muller). */
export function normals(count: number, seed: number): Float64Array {
  const r = seeded(seed);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return out;
}

/** An m×k matrix with orthonormal columns (modified Gram–Schmidt, twice, on Gaussian columns). */
export function orthonormalColumns(m: number, k: number, seed: number): Float64Array {
  const a = normals(m * k, seed);
  for (let pass = 0; pass < 2; pass++) {
    for (let j = 0; j < k; j++) {
      for (let p = 0; p < j; p++) {
        let d = 0;
        for (let i = 0; i < m; i++) d += a[i * k + p] * a[i * k + j];
        for (let i = 0; i < m; i++) a[i * k + j] -= d * a[i * k + p];
      }
      let norm = 0;
      for (let i = 0; i < m; i++) norm += a[i * k + j] ** 2;
      norm = Math.sqrt(norm);
      for (let i = 0; i < m; i++) a[i * k + j] /= norm;
    }
  }
  return a;
}

/** P·diag(sigma)·Qᵀ for random orthonormal P (m×r) and Q (n×r), r = sigma.length, rounded to f32. */
export function withSingularValues(m: number, n: number, sigma: readonly number[], seed: number): Float32Array {
  const r = sigma.length;
  const p = orthonormalColumns(m, r, seed);
  const q = orthonormalColumns(n, r, seed + 7919);
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < r; t++) s += p[i * r + t] * sigma[t] * q[j * r + t];
      out[i * n + j] = s;
    }
  }
  return out;
}

export function transposed(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j];
  return out;
}

/** a (p×q) · b (q×s). */
export function product(a: ArrayLike<number>, b: ArrayLike<number>, p: number, q: number, s: number): Float64Array {
  const out = new Float64Array(p * s);
  for (let i = 0; i < p; i++) for (let k = 0; k < q; k++) for (let j = 0; j < s; j++) out[i * s + j] += a[i * q + k] * b[k * s + j];
  return out;
}

/** aᵀ·a for an m×n matrix. */
export function gramOf(a: ArrayLike<number>, m: number, n: number): Float64Array {
  return product(transposed(a, m, n), a, n, m, n);
}

/** max |a − b| elementwise. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths ${a.length} and ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** max |aᵀa − I| for an m×k matrix (orthonormality of its columns). */
export function orthonormalityError(a: ArrayLike<number>, m: number, k: number): number {
  const g = gramOf(a, m, k);
  let worst = 0;
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) worst = Math.max(worst, Math.abs(g[i * k + j] - (i === j ? 1 : 0)));
  return worst;
}

/**
 * Thin SVD of an m×n matrix in f64 by one-sided Jacobi (Hestenes): rotate pairs of columns until
 * all are orthogonal to 1e-15; σ_j = the column norms, U = the normalized columns, V = the product
 * of the rotations. Singular values come out to high relative accuracy. Wide inputs go through the
 * transpose. Sorted descending.
 */
export function jacobiSvd(a: ArrayLike<number>, m: number, n: number): { U: Float64Array; S: Float64Array; V: Float64Array } {
  if (m < n) {
    const t = jacobiSvd(transposed(a, m, n), n, m);
    return { U: t.V, S: t.S, V: t.U };
  }
  const w = Float64Array.from(a);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < m; i++) {
          const x = w[i * n + p];
          const y = w[i * n + q];
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (gamma === 0) continue;
        off = Math.max(off, Math.abs(gamma) / Math.sqrt(alpha * beta));
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < m; i++) {
          const x = w[i * n + p];
          const y = w[i * n + q];
          w[i * n + p] = c * x - s * y;
          w[i * n + q] = s * x + c * y;
        }
        for (let i = 0; i < n; i++) {
          const x = v[i * n + p];
          const y = v[i * n + q];
          v[i * n + p] = c * x - s * y;
          v[i * n + q] = s * x + c * y;
        }
      }
    }
    if (off < 1e-15) break;
  }
  const norms = Array.from({ length: n }, (_, j) => {
    let s = 0;
    for (let i = 0; i < m; i++) s += w[i * n + j] ** 2;
    return Math.sqrt(s);
  });
  const order = norms.map((_, j) => j).sort((x, y) => norms[y] - norms[x]);
  const U = new Float64Array(m * n);
  const V = new Float64Array(n * n);
  const S = Float64Array.from(order, (j) => norms[j]);
  order.forEach((j, col) => {
    for (let i = 0; i < m; i++) U[i * n + col] = norms[j] > 0 ? w[i * n + j] / norms[j] : 0;
    for (let i = 0; i < n; i++) V[i * n + col] = v[i * n + j];
  });
  return { U, S, V };
}

/** The polar factor U·Vᵀ of an m×n matrix (f64, from jacobiSvd). */
export function polarReference(a: ArrayLike<number>, m: number, n: number): Float64Array {
  const { U, V } = jacobiSvd(a, m, n);
  const r = Math.min(m, n);
  return product(U, transposed(V, n, r), m, r, n);
}

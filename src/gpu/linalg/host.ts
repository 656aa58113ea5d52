/**
 * Host-side pieces shared by the factorizations: small matrices moved between a backend and f64
 * host arrays, seeded Gaussian test matrices, and dense f64 kernels (Cholesky, triangular inverse,
 * products) on the r×r blocks that the factorizations solve on the host.
 */
import { uniformAt, type Backend, type Tensor } from '../backend.ts';
import { matrixShape } from '../ops/linalg.ts';

/** A bad argument to a factorization (names the function and the reason). */
export class LinalgError extends Error {
  constructor(fn: string, reason: string) {
    super(`${fn}: ${reason}`);
    this.name = 'LinalgError';
  }
}

const errors = (fn: string) => ({ error: (_op: string, reason: string) => new LinalgError(fn, reason) });

/** [rows, cols] of a 2-D tensor, or a LinalgError naming `fn`. */
export function shapeOf(fn: string, x: Tensor, what = 'input'): [number, number] {
  return matrixShape(errors(fn), x, fn, what);
}

/** A tensor read back as f64 (values are f32). */
export async function readF64(backend: Backend, t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await backend.read(t));
}

/** Upload host values (rounded to f32) as a [rows, cols] tensor. */
export function uploadMatrix(backend: Backend, values: ArrayLike<number>, rows: number, cols: number): Promise<Tensor> {
  return backend.upload(Float32Array.from(values), [rows, cols]);
}

/** ‖x‖_F² (f64 sum of the per-column sums). */
export async function frobeniusSquared(backend: Backend, x: Tensor): Promise<number> {
  let s = 0;
  for (const v of await backend.columnDots(x, x)) s += v;
  return s;
}

/**
 * A rows×cols matrix of standard normal values, the same for a seed on every backend: Box–Muller
 * on the counter-based uniforms of backend.ts (model slot 0x5eed, tensor hash 0).
 */
export function gaussianMatrix(seed: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i += 2) {
    // (0, 1] so the logarithm is finite.
    const u1 = 1 - uniformAt(seed, 0x5eed, 0, i);
    const u2 = uniformAt(seed, 0x5eed, 0, i + 1);
    const radius = Math.sqrt(-2 * Math.log(u1));
    out[i] = radius * Math.cos(2 * Math.PI * u2);
    if (i + 1 < out.length) out[i + 1] = radius * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

/**
 * Upper-triangular R with RᵀR = g (n×n, row-major, f64), or the first column j whose pivot
 * g_jj − Σ_k R_kj² is not above `minPivot` (that column depends on the previous ones, to the
 * accuracy of g).
 */
export function cholesky(g: Float64Array, n: number, minPivot: (j: number) => number): { r: Float64Array } | { failedAt: number } {
  const r = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let pivot = g[j * n + j];
    for (let k = 0; k < j; k++) pivot -= r[k * n + j] * r[k * n + j];
    if (!(pivot > minPivot(j))) return { failedAt: j };
    const rjj = Math.sqrt(pivot);
    r[j * n + j] = rjj;
    for (let c = j + 1; c < n; c++) {
      let s = g[j * n + c];
      for (let k = 0; k < j; k++) s -= r[k * n + j] * r[k * n + c];
      r[j * n + c] = s / rjj;
    }
  }
  return { r };
}

/** The inverse of an upper-triangular n×n matrix with a non-zero diagonal (upper-triangular too). */
export function invertUpper(r: Float64Array, n: number): Float64Array {
  const inv = new Float64Array(n * n);
  // Column j of R⁻¹ solves R·x = e_j by back substitution (x_i = 0 for i > j).
  for (let j = 0; j < n; j++) {
    inv[j * n + j] = 1 / r[j * n + j];
    for (let i = j - 1; i >= 0; i--) {
      let s = 0;
      for (let k = i + 1; k <= j; k++) s += r[i * n + k] * inv[k * n + j];
      inv[i * n + j] = -s / r[i * n + i];
    }
  }
  return inv;
}

/** a·b for row-major a (p×q) and b (q×s), in f64. */
export function multiply(a: Float64Array, b: Float64Array, p: number, q: number, s: number): Float64Array {
  const out = new Float64Array(p * s);
  for (let i = 0; i < p; i++) {
    for (let k = 0; k < q; k++) {
      const v = a[i * q + k];
      if (v === 0) continue;
      for (let j = 0; j < s; j++) out[i * s + j] += v * b[k * s + j];
    }
  }
  return out;
}

/** Columns [0, k) of a row-major rows×cols matrix. */
export function leadingColumns(a: Float64Array, rows: number, cols: number, k: number): Float64Array {
  const out = new Float64Array(rows * k);
  for (let i = 0; i < rows; i++) for (let j = 0; j < k; j++) out[i * k + j] = a[i * cols + j];
  return out;
}

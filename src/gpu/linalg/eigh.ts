/**
 * Symmetric eigendecomposition on the host in f64: Householder tridiagonalization, then the
 * implicit QL iteration with Wilkinson-style shifts (EISPACK tred2/tql2, as in JAMA), with every
 * matrix stored so that the inner loops run along contiguous rows. Used on small Gram matrices
 * (the SVD's smaller side, Rayleigh–Ritz blocks), which the backend computes.
 *
 * Cost: about 9n³ flops (4/3·n³ to tridiagonalize, 4/3·n³ to form Q, ~6n³ for the QL rotations).
 * In Node on one core that is ~0.1 s for n = 256, ~0.5 s for n = 512, a few seconds for
 * n = 1024 and minutes for n = 4096 (cubic: ×8 per doubling); beyond ~1000 prefer truncatedSvd.
 */

/** Eigenvalues in descending order and the matching unit eigenvectors. */
export interface SymmetricEigen {
  /** n eigenvalues, largest first. */
  values: Float64Array;
  /** n×n row-major: column j (vectors[i·n + j], i = 0..n−1) is the eigenvector of values[j]. */
  vectors: Float64Array;
}

export class EigenError extends Error {
  constructor(reason: string) {
    super(`symmetricEigen: ${reason}`);
    this.name = 'EigenError';
  }
}

/** QL sweeps allowed per eigenvalue before giving up (typically 1–3 are needed). */
const MAX_SWEEPS = 60;

/**
 * Eigendecomposition of the symmetric n×n matrix `a` (row-major; (a + aᵀ)/2 is used, so a Gram
 * matrix with rounding asymmetry is fine). Throws EigenError on non-finite input.
 */
export function symmetricEigen(a: ArrayLike<number>, n: number): SymmetricEigen {
  if (!Number.isInteger(n) || n < 0) throw new EigenError(`size ${n} is not a non-negative integer`);
  if (a.length !== n * n) throw new EigenError(`${a.length} values for a ${n}×${n} matrix`);
  const w = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const v = 0.5 * (a[i * n + j] + a[j * n + i]);
      if (!Number.isFinite(v)) throw new EigenError(`element (${i}, ${j}) is ${a[i * n + j]}`);
      w[i * n + j] = v;
    }
  }
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  const q = tridiagonalize(w, n, d, e);
  const zt = transpose(q, n);
  ql(d, e, zt, n);
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => d[y] - d[x]);
  const values = Float64Array.from(order, (i) => d[i]);
  const vectors = new Float64Array(n * n);
  order.forEach((src, j) => {
    const row = src * n;
    for (let i = 0; i < n; i++) vectors[i * n + j] = zt[row + i];
  });
  return { values, vectors };
}

/**
 * Reduce the symmetric matrix `w` (overwritten) to tridiagonal form Qᵀ·W·Q: diagonal d, and e[k]
 * coupling k and k+1 (e[n−1] = 0). Returns Q (row-major). Step k reflects row k's tail
 * x = w[k, k+1..] (= the column below the diagonal) onto a multiple of e₁ with H = I − τ·v·vᵀ and
 * applies H·W₂₂·H as the symmetric rank-2 update W₂₂ − v·zᵀ − z·vᵀ, z = p − (τ/2)(pᵀv)·v, p = τ·W₂₂·v.
 */
function tridiagonalize(w: Float64Array, n: number, d: Float64Array, e: Float64Array): Float64Array {
  const vs: Float64Array[] = [];
  const taus: number[] = [];
  const p = new Float64Array(n);
  for (let k = 0; k < n - 2; k++) {
    const s = n - k - 1;
    const base = k * n + k + 1;
    d[k] = w[k * n + k];
    let norm2 = 0;
    for (let i = 0; i < s; i++) norm2 += w[base + i] * w[base + i];
    const x0 = w[base];
    if (norm2 - x0 * x0 === 0) {
      // Already reduced: no reflection.
      e[k] = x0;
      vs.push(new Float64Array(0));
      taus.push(0);
      continue;
    }
    const alpha = x0 >= 0 ? -Math.sqrt(norm2) : Math.sqrt(norm2);
    const v = w.slice(base, base + s);
    v[0] -= alpha;
    const vv = norm2 - x0 * x0 + v[0] * v[0];
    const tau = 2 / vv;
    e[k] = alpha;
    // p = τ·W₂₂·v over rows k+1..n−1.
    let pv = 0;
    for (let i = 0; i < s; i++) {
      const row = (k + 1 + i) * n + k + 1;
      let acc = 0;
      for (let j = 0; j < s; j++) acc += w[row + j] * v[j];
      p[i] = tau * acc;
      pv += p[i] * v[i];
    }
    const half = 0.5 * tau * pv;
    for (let i = 0; i < s; i++) p[i] -= half * v[i];
    for (let i = 0; i < s; i++) {
      const row = (k + 1 + i) * n + k + 1;
      const vi = v[i];
      const zi = p[i];
      for (let j = 0; j < s; j++) w[row + j] -= vi * p[j] + zi * v[j];
    }
    vs.push(v);
    taus.push(tau);
  }
  if (n >= 2) {
    d[n - 2] = w[(n - 2) * n + n - 2];
    e[n - 2] = w[(n - 2) * n + n - 1];
  }
  if (n >= 1) d[n - 1] = w[(n - 1) * n + n - 1];
  e[n - 1] = 0;
  // Q = H_0·H_1···H_{n−3}, accumulated from the last reflection (which touches only the trailing
  // block), so step k works on rows and columns k+1.. only.
  const q = new Float64Array(n * n);
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  const row = new Float64Array(n);
  for (let k = vs.length - 1; k >= 0; k--) {
    const v = vs[k];
    const tau = taus[k];
    if (tau === 0) continue;
    const s = v.length;
    const c0 = k + 1;
    row.fill(0, 0, s);
    for (let i = 0; i < s; i++) {
      const vi = v[i];
      const at = (c0 + i) * n + c0;
      for (let j = 0; j < s; j++) row[j] += vi * q[at + j];
    }
    for (let i = 0; i < s; i++) {
      const f = tau * v[i];
      const at = (c0 + i) * n + c0;
      for (let j = 0; j < s; j++) q[at + j] -= f * row[j];
    }
  }
  return q;
}

function transpose(x: Float64Array, n: number): Float64Array {
  const t = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t[j * n + i] = x[i * n + j];
  return t;
}

/**
 * Implicit QL on the tridiagonal (d, e), eigenvalues into d; every rotation is applied to rows i
 * and i+1 of zt (the transposed eigenvector matrix, so the update is contiguous).
 */
function ql(d: Float64Array, e: Float64Array, zt: Float64Array, n: number): void {
  const eps = 2 ** -52;
  let f = 0;
  let tst1 = 0;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]) > eps * tst1) m++;
    if (m > l) {
      let sweeps = 0;
      do {
        if (++sweeps > MAX_SWEEPS) throw new EigenError(`QL iteration did not converge for eigenvalue ${l} of ${n}`);
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = Math.hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          const a = i * n;
          const b = a + n;
          for (let k = 0; k < n; k++) {
            const zb = zt[b + k];
            const za = zt[a + k];
            zt[b + k] = s * za + c * zb;
            zt[a + k] = c * za - s * zb;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
}

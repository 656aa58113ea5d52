/**
 * The engine's compute interface. Methods plan their merge as calls on a Backend; the `cpu` backend
 * (src/gpu/cpu-backend.ts) is the plain TypeScript reference of every op, the `gpu` backend runs the
 * same ops as WGSL kernels. Both must agree within float rounding (tests compare them op by op).
 *
 * Tensors are f32, owned by the backend that made them; whoever gets a tensor from an op releases it.
 * A backend may split a tensor into chunks (GPU: at most maxStorageBufferBindingSize per chunk); ops
 * hide that from callers.
 */
import type { FloatDType } from '../core/dtype.ts';

/** An f32 tensor that lives in a backend (host array or GPU buffers). */
export interface Tensor {
  readonly numel: number;
  readonly shape: readonly number[];
}

/** Row view used by row-wise ops: rows = shape[0] for 2-D+ tensors (trailing dims flattened), 1 for 1-D. */
export function rowCount(shape: readonly number[]): number {
  return shape.length >= 2 ? shape[0] : 1;
}

/** Identifies one random keep-mask: the same key draws the same mask on every backend and chunking. */
export interface MaskKey {
  seed: number;
  /** position of the model among the non-base models */
  model: number;
  /** full tensor name; backends hash it with `hashTensorName` */
  tensor: string;
}

/** A linear-combination term. `coef` per row has one entry per row (see rowCount). */
export interface Term {
  x: Tensor;
  coef: number | Float32Array;
}

export interface Backend {
  readonly kind: 'gpu' | 'cpu';
  /** Human-readable device description (adapter name, or "CPU (TypeScript)"). */
  readonly description: string;

  /** Decode little-endian BF16/F16/F32 bytes into a new f32 tensor. */
  decode(bytes: Uint8Array, dtype: FloatDType, shape: readonly number[]): Promise<Tensor>;
  /** Encode a tensor to dtype bytes on the host (BF16: round to nearest even, NaN -> 0x7FC0). */
  encode(t: Tensor, dtype: FloatDType): Promise<Uint8Array>;
  /** Read a tensor back as f32 (tests, analysis). */
  read(t: Tensor): Promise<Float32Array>;

  /** Σ coef_i · x_i (all x_i of one shape), plus `bias` added to every element. */
  lincomb(terms: readonly Term[], bias?: number): Promise<Tensor>;
  /** Gram matrix G[i*N+j] = x_i · x_j of the flattened tensors (f64-accumulated where possible). */
  gram(xs: readonly Tensor[]): Promise<Float64Array>;
  /** Per-row Gram matrices: result[r*N*N + i*N + j] = row r of x_i · row r of x_j. */
  gramRows(xs: readonly Tensor[]): Promise<Float64Array>;
  /** Σ |x| over the whole tensor (L1 norm). */
  sumAbs(x: Tensor): Promise<number>;

  /**
   * Keep the entries whose ascending magnitude rank r satisfies lo <= r < hi, zero the rest.
   * Ranks order entries by (|x|, index): among equal magnitudes the lower index ranks lower,
   * so exactly hi - lo entries are kept. Top-k is keepRankBand(x, numel - k, numel).
   */
  keepRankBand(x: Tensor, lo: number, hi: number): Promise<Tensor>;
  /** Keep each entry with probability p (Bernoulli, from the counter-based generator). */
  keepRandom(x: Tensor, p: number, key: MaskKey): Promise<Tensor>;
  /**
   * DELLA: within each row rank |x| ascending (ties by index), r = rank/(n-1) (0 if n = 1),
   * keep with probability (density - epsilon) + 2·epsilon·r.
   */
  keepRanked(x: Tensor, density: number, epsilon: number, key: MaskKey): Promise<Tensor>;
  /** Keep entries where mask != 0 (mask replayed from a file), zero the rest. */
  keepWhere(x: Tensor, mask: Tensor): Promise<Tensor>;

  /**
   * TIES sign election over weighted deltas wd_i = w_i·δ_i: majority = sign(Σ wd_i) (>= 0 -> +1),
   * m_i = (sign(wd_i) == majority, zero never matches); mixed = Σ wd_i·m_i; divisor = Σ w_i·m_i
   * (0 -> 1). Returns mixed / divisor when `normalize`, else mixed.
   */
  signElect(wds: readonly Tensor[], weights: readonly number[], normalize: boolean): Promise<Tensor>;
  /**
   * 1 where |a| >= lambda·|b| (the product rounded to f32), else 0: the TALL-mask test
   * |τ_t| >= λ·|τ_MTL − τ_t|, and with b = 1 a threshold on counts.
   */
  absAtLeast(a: Tensor, b: Tensor, lambda: number): Promise<Tensor>;
  /** nearswap: w = clamp(t / max(|b - x|, 1e-6), 0, 1); result w·x + (1 - w)·b. */
  nearswap(base: Tensor, x: Tensor, t: number): Promise<Tensor>;

  /**
   * Round every value to `dtype` and back to f32 (F32: a copy). The engine uses it to emulate math
   * that mergekit does natively in BF16/F16 when a recipe sets no `dtype` (each op rounds).
   */
  quantize(x: Tensor, dtype: FloatDType): Promise<Tensor>;

  /** Free a tensor. Releasing twice is a no-op. */
  release(t: Tensor): void;
  /** Free everything this backend owns (and the device, if it created it). Safe to call twice. */
  destroy(): void;
}

/** FNV-1a 32-bit hash of a tensor name's UTF-8 bytes (the `tensor` part of a MaskKey). */
export function hashTensorName(name: string): number {
  const bytes = new TextEncoder().encode(name);
  let h = 0x811c9dc5;
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * Counter-based uniform in [0, 1) for (seed, model, tensorHash, index): a few rounds of an integer
 * hash (lowbias32-style mixing), identical in WGSL (src/shaders/random.wgsl). Uses 24 bits so the
 * value is exact in f32.
 */
export function uniformAt(seed: number, model: number, tensorHash: number, index: number): number {
  let h = mix32((seed >>> 0) ^ 0x9e3779b9);
  h = mix32(h ^ (model >>> 0));
  h = mix32(h ^ (tensorHash >>> 0));
  h = mix32(h ^ (index >>> 0));
  return (h >>> 8) / 16777216;
}

export function mix32(x: number): number {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

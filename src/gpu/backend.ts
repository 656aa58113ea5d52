/**
 * The engine's compute interface. Methods plan their merge as calls on a Backend; the `cpu` backend
 * runs every op as plain TypeScript (the reference), the `gpu` backend as WGSL kernels. Both must
 * agree within float rounding (tests compare them op by op).
 *
 * The ops come in families, one module each under src/gpu/ops/: `<family>.ts` declares the ops and
 * their WebGPU implementation beside src/shaders/<family>.wgsl, `<family>.cpu.ts` the reference, and
 * `<family>.test.ts` compares the two. GpuBackend and CpuBackend are tables of those families, so
 * adding an op touches its family's module, its reference and its test.
 *
 * Tensors are f32, owned by the backend that made them; whoever gets a tensor from an op releases it,
 * with `using t = await backend.op(...)` (a Tensor is Disposable) or `backend.release(t)`. A backend
 * may split a tensor into chunks (GPU: at most maxStorageBufferBindingSize per chunk); ops hide that.
 */
import type { FloatDType } from '../core/dtype.ts';
import type { CodecOps } from './ops/codec.ts';
import type { ElectOps } from './ops/elect.ts';
import type { ElementwiseOps } from './ops/elementwise.ts';
import type { LinalgOps } from './ops/linalg.ts';
import type { MaskOps } from './ops/masks.ts';
import type { ModelOps } from './ops/model.ts';
import type { ReduceOps } from './ops/reduce.ts';
import type { SelectOps } from './ops/select.ts';

/** An f32 tensor that lives in a backend (host array or GPU buffers); disposing it releases it. */
export interface Tensor extends Disposable {
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

/** What every backend has besides its op families: identity, host transfers and lifetimes. */
export interface BackendCore {
  readonly kind: 'gpu' | 'cpu';
  /** Human-readable device description (adapter name, or "CPU (TypeScript)"). */
  readonly description: string;
  /**
   * The engine may issue the next tensor's uploads and kernels before this tensor's output is read
   * back (true for the GPU: its queue works on while the host waits for the read-back). Absent or
   * false: one tensor at a time (a CPU backend would only hold two tensors' inputs for nothing).
   */
  readonly overlapsTensors?: boolean;
  /** Upload host f32 values as a new tensor of `shape` (small host-computed matrices, tests). */
  upload(values: Float32Array, shape: readonly number[]): Promise<Tensor>;
  /** Read a tensor back as f32 (tests, analysis, small results the host needs). */
  read(t: Tensor): Promise<Float32Array>;
  /** Free a tensor. Releasing twice is a no-op (so is disposing a released tensor). */
  release(t: Tensor): void;
  /** Free everything this backend owns (and the device, if it created it). Safe to call twice. */
  destroy(): void;
}

/** Every op family. */
export interface BackendOps extends CodecOps, ElementwiseOps, ReduceOps, SelectOps, MaskOps, ElectOps, LinalgOps, ModelOps {}

export interface Backend extends BackendCore, BackendOps {}

/**
 * Tensors released together when a scope ends: `using scope = new TensorScope(backend)`, then
 * `scope.add(await op(...))` for each intermediate; `scope.keep(t)` takes one back out (a result
 * the caller returns). For a single tensor, `using t = await op(...)` is enough.
 */
export class TensorScope implements Disposable {
  readonly #backend: BackendCore;
  readonly #items = new Set<Tensor>();

  constructor(backend: BackendCore) {
    this.#backend = backend;
  }

  add<T extends Tensor>(t: T): T {
    this.#items.add(t);
    return t;
  }

  addAll<T extends Tensor>(ts: readonly T[]): T[] {
    for (const t of ts) this.#items.add(t);
    return [...ts];
  }

  /** Release one tensor of the scope now (its last use is past). */
  drop(t: Tensor): void {
    if (this.#items.delete(t)) this.#backend.release(t);
  }

  /** Take `t` out of the scope: it survives the scope's end. */
  keep<T extends Tensor>(t: T): T {
    this.#items.delete(t);
    return t;
  }

  [Symbol.dispose](): void {
    for (const t of [...this.#items].reverse()) this.#backend.release(t);
    this.#items.clear();
  }
}

/** A Disposable releasing every tensor of `ts`: `using _ = releasing(backend, tensors)`. */
export function releasing(backend: BackendCore, ts: readonly Tensor[]): Disposable {
  return { [Symbol.dispose]: () => ts.forEach((t) => backend.release(t)) };
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

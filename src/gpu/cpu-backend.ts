/**
 * The CPU reference backend: a table of the op families' TypeScript references (src/gpu/ops/*.cpu.ts)
 * over Float32Array tensors. This is the specification the WGSL kernels are tested against, so it
 * favours being obviously correct over being fast, and keeps f32 semantics wherever the GPU
 * computes in f32. Reductions that the GPU combines in f64 accumulate in f64 here.
 */
import type { Backend, BackendOps, Tensor } from './backend.ts';
import { codecCpu } from './ops/codec.cpu.ts';
import { electCpu } from './ops/elect.cpu.ts';
import { elementwiseCpu } from './ops/elementwise.cpu.ts';
import { linalgCpu } from './ops/linalg.cpu.ts';
import { masksCpu } from './ops/masks.cpu.ts';
import { modelCpu } from './ops/model.cpu.ts';
import { reduceCpu } from './ops/reduce.cpu.ts';
import type { CpuOpRuntime } from './ops/runtime.ts';
import { selectCpu } from './ops/select.cpu.ts';

/** A bad call on the CPU backend (shape mismatch, released or foreign tensor, wrong byte count). */
export class CpuBackendError extends Error {
  constructor(op: string, reason: string) {
    super(`cpu backend: ${op}: ${reason}`);
    this.name = 'CpuBackendError';
  }
}

/** A tensor owned by a CpuBackend: a host Float32Array, dropped on release. */
export class CpuTensor implements Tensor {
  readonly numel: number;
  readonly shape: readonly number[];
  /** null once released. */
  data: Float32Array | null;
  readonly #release: (t: CpuTensor) => void;

  constructor(data: Float32Array, shape: readonly number[], release: (t: CpuTensor) => void) {
    this.numel = data.length;
    this.shape = [...shape];
    this.data = data;
    this.#release = release;
  }

  [Symbol.dispose](): void {
    this.#release(this);
  }
}

function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** The op families, in the order their tables are merged. */
export const CPU_OP_FAMILIES = [codecCpu, elementwiseCpu, reduceCpu, selectCpu, masksCpu, electCpu, linalgCpu, modelCpu] as const;

// The families' ops are added to the class in the constructor; this declares them on its type.
export interface CpuBackend extends BackendOps {}

export class CpuBackend implements Backend, CpuOpRuntime {
  readonly kind = 'cpu' as const;
  readonly description = 'CPU (TypeScript)';
  readonly #live = new Set<CpuTensor>();
  readonly #release = (t: CpuTensor) => this.release(t);

  constructor() {
    for (const family of CPU_OP_FAMILIES) Object.assign(this, family(this));
  }

  /** Number of tensors made by this backend and not yet released (leak checks in tests). */
  get liveTensors(): number {
    return this.#live.size;
  }

  /** Wrap a copy of host values as a new tensor (tests and host-side setup). */
  fromArray(values: ArrayLike<number>, shape: readonly number[]): CpuTensor {
    const data = Float32Array.from(values);
    if (numelOf(shape) !== data.length) {
      throw new CpuBackendError('fromArray', `${data.length} values do not fill shape [${shape.join(', ')}]`);
    }
    return this.make(data, shape);
  }

  async upload(values: Float32Array, shape: readonly number[]): Promise<Tensor> {
    return this.fromArray(values, shape);
  }

  async read(t: Tensor): Promise<Float32Array> {
    return this.data(t, 'read').slice();
  }

  release(t: Tensor): void {
    if (!(t instanceof CpuTensor)) return;
    t.data = null;
    this.#live.delete(t);
  }

  destroy(): void {
    for (const t of this.#live) t.data = null;
    this.#live.clear();
  }

  // ---- the runtime the op families use (src/gpu/ops/runtime.ts) ----

  error(op: string, reason: string): Error {
    return new CpuBackendError(op, reason);
  }

  make(data: Float32Array, shape: readonly number[]): CpuTensor {
    const t = new CpuTensor(data, shape, this.#release);
    this.#live.add(t);
    return t;
  }

  data(t: Tensor, op: string): Float32Array {
    if (!(t instanceof CpuTensor) || !this.#live.has(t)) {
      const why = t instanceof CpuTensor ? 'was released or belongs to another CpuBackend' : 'is not a CPU tensor';
      throw new CpuBackendError(op, `tensor of shape [${t.shape.join(', ')}] ${why}`);
    }
    return t.data as Float32Array;
  }

  sameSize(xs: readonly Tensor[], op: string): Float32Array[] {
    if (xs.length === 0) throw new CpuBackendError(op, 'no tensors');
    const ds = xs.map((x) => this.data(x, op));
    for (let i = 1; i < ds.length; i++) {
      if (ds[i].length !== ds[0].length) {
        throw new CpuBackendError(op, `tensor ${i} has ${ds[i].length} elements, tensor 0 has ${ds[0].length}`);
      }
    }
    return ds;
  }
}

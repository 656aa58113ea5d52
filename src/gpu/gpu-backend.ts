/**
 * The WebGPU backend: a table of the op families of src/gpu/ops (each a WGSL module and its host
 * code), over tensors stored as chunked storage buffers (src/gpu/gpu-tensor.ts). This file owns
 * what the families share: tensor creation, validation, ownership and release.
 */
import { byteLength } from '../core/dtype.ts';
import type { Backend, BackendOps, Tensor } from './backend.ts';
import { GpuContext } from './context.ts';
import type { GpuHandle } from './device.ts';
import { chunkLayout, chunkLength, chunkStart, GpuTensor, type BufferRange, type ChunkLayout } from './gpu-tensor.ts';
import { codecGpu } from './ops/codec.ts';
import { electGpu } from './ops/elect.ts';
import { elementwiseGpu } from './ops/elementwise.ts';
import { linalgGpu } from './ops/linalg.ts';
import { masksGpu } from './ops/masks.ts';
import { modelGpu } from './ops/model.ts';
import { REDUCE_BLOCK, reduceGpu } from './ops/reduce.ts';
import type { GpuOpRuntime } from './ops/runtime.ts';
import { selectGpu } from './ops/select.ts';

export { chunkLayout, GpuTensor, type ChunkLayout } from './gpu-tensor.ts';
export { rankedThresholds, uniformThreshold } from './ops/masks.ts';

/** A bad call on the GPU backend (shape mismatch, released or foreign tensor, wrong byte count). */
export class GpuBackendError extends Error {
  constructor(op: string, reason: string) {
    super(`gpu backend: ${op}: ${reason}`);
    this.name = 'GpuBackendError';
  }
}

/**
 * Largest chunk of a tensor, in bytes, whatever the limits say: a buffer as large as maxBufferSize
 * may still fail to allocate (SwiftShader reports 1 GiB and allocates at most 1008 MiB, measured by
 * bench/browser-scale.ts), and a smaller chunk costs only another dispatch per op.
 */
export const MAX_CHUNK_BYTES = 256 * 1024 * 1024;

export interface GpuBackendOptions {
  /** Cap on elements per chunk (tests force small chunks to exercise multi-chunk paths). */
  maxChunkElements?: number;
  /** When given a device or a requestGpu handle: destroy that device in destroy(). */
  ownsDevice?: boolean;
  /** When given a device or handle: called once with the first fatal GPU error. */
  onFatal?: (err: Error) => void;
  /**
   * Run the narrow stages of keepRanked's sort in workgroup memory (5x fewer passes over the
   * scratch buffer). Default: on, except on a fallback (software) adapter, where barriers cost more
   * than the passes they save.
   */
  workgroupSort?: boolean;
  /** Elements summed per reduction workgroup (a multiple of 256). @default 4096, 65536 on software adapters */
  reduceBlock?: number;
}

/**
 * A Backend on a GpuContext (shared: destroy() leaves it alive), a requestGpu handle or a device
 * (a context is made for it; `ownsDevice` says whether destroy() also destroys the device).
 */
export function createGpuBackend(source: GpuContext | GpuHandle | GPUDevice, opts: GpuBackendOptions = {}): GpuBackend {
  if (source instanceof GpuContext) return new GpuBackend(source, false, opts);
  const ctxOpts = { ownsDevice: opts.ownsDevice ?? false, onFatal: opts.onFatal };
  const ctx = isHandle(source) ? GpuContext.fromHandle(source, ctxOpts) : new GpuContext(source, ctxOpts);
  return new GpuBackend(ctx, true, opts);
}

function isHandle(source: GpuHandle | GPUDevice): source is GpuHandle {
  return 'device' in source && 'adapterInfo' in source && 'limits' in source && 'queue' in source.device;
}

/** The op families, in the order their tables are merged (names never collide: a test checks). */
export const GPU_OP_FAMILIES = [codecGpu, elementwiseGpu, reduceGpu, selectGpu, masksGpu, electGpu, linalgGpu, modelGpu] as const;

// The families' ops are added to the class in the constructor; this declares them on its type.
export interface GpuBackend extends BackendOps {}

export class GpuBackend implements Backend, GpuOpRuntime {
  readonly kind = 'gpu' as const;
  readonly overlapsTensors = true;
  readonly ctx: GpuContext;
  readonly chunkCapacity: number;
  readonly workgroupSort: boolean;
  readonly reduceBlock: number;
  readonly #ownsContext: boolean;
  readonly #live = new Set<GpuTensor>();
  readonly #release = (t: GpuTensor) => this.release(t);
  #destroyed = false;

  constructor(ctx: GpuContext, ownsContext: boolean, opts: GpuBackendOptions = {}) {
    this.ctx = ctx;
    this.#ownsContext = ownsContext;
    const byBinding = Math.floor(Math.min(ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize, MAX_CHUNK_BYTES) / 4);
    const wanted = opts.maxChunkElements ?? Infinity;
    if (!(wanted >= 1)) throw new GpuBackendError('create', `maxChunkElements must be >= 1, got ${wanted}`);
    this.chunkCapacity = Math.min(byBinding, Math.floor(wanted));
    this.workgroupSort = opts.workgroupSort ?? !ctx.adapterInfo.isFallbackAdapter;
    // Software adapters pay for every workgroup barrier: give each reduction workgroup 16x more.
    this.reduceBlock = opts.reduceBlock ?? (ctx.adapterInfo.isFallbackAdapter ? 16 * REDUCE_BLOCK : REDUCE_BLOCK);
    for (const family of GPU_OP_FAMILIES) Object.assign(this, family(this));
  }

  get description(): string {
    return this.ctx.description;
  }

  /** Tensors made by this backend and not yet released (leak checks in tests). */
  get liveTensors(): number {
    return this.#live.size;
  }

  /** The chunk layout this backend uses for `shape`. */
  layoutOf(shape: readonly number[]): ChunkLayout {
    return chunkLayout(shape, this.chunkCapacity);
  }

  async upload(values: Float32Array, shape: readonly number[]): Promise<GpuTensor> {
    const layout = this.layout('upload', shape);
    if (layout.numel !== values.length) {
      throw new GpuBackendError('upload', `${values.length} values do not fill shape [${shape.join(', ')}]`);
    }
    return this.decode(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), 'F32', shape) as Promise<GpuTensor>;
  }

  /** Upload host values as a new tensor (tests and host-side set-up). */
  async fromArray(values: ArrayLike<number>, shape: readonly number[]): Promise<GpuTensor> {
    // A Float32Array goes up as is (a copy through JS numbers could change NaN payloads).
    return this.upload(values instanceof Float32Array ? values : Float32Array.from(values), shape);
  }

  async read(t: Tensor): Promise<Float32Array> {
    const x = this.tensor(t, 'read');
    const out = new Float32Array(x.numel);
    if (x.numel === 0) return out;
    const batch = this.ctx.batch('read');
    this.chunks(x, 'read').forEach((r, c) => batch.readback(r.buffer, r.offset, chunkLength(x.layout, c) * 4));
    const parts = await batch.submit();
    parts.forEach((part, c) => out.set(new Float32Array(part), chunkStart(x.layout, c)));
    return out;
  }

  release(t: Tensor): void {
    if (!(t instanceof GpuTensor) || !this.#live.has(t)) return;
    this.#live.delete(t);
    for (const r of t.chunks ?? []) this.ctx.recycle(r.buffer);
    t.chunks = null;
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const t of [...this.#live]) this.release(t);
    if (this.#ownsContext) this.ctx.destroy();
  }

  // ---- the runtime the op families use (src/gpu/ops/runtime.ts) ----

  error(op: string, reason: string): Error {
    return new GpuBackendError(op, reason);
  }

  async output(
    op: string,
    shape: readonly number[],
    fill: (out: readonly BufferRange[], layout: ChunkLayout) => Promise<void>,
    opts: { zero?: boolean } = {},
  ): Promise<GpuTensor> {
    this.#assertUsable(op);
    const layout = this.layout(op, shape);
    const reqs = Array.from({ length: layout.count }, (_, c) => ({
      label: `${op} [${shape.join(',')}] chunk ${c}`,
      size: chunkLength(layout, c) * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      zero: opts.zero,
    }));
    const buffers = await this.ctx.allocate(`${op} output [${shape.join(', ')}]`, reqs);
    const chunks = buffers.map((buffer, c) => ({ buffer, offset: 0, size: reqs[c].size }));
    const out = new GpuTensor(shape, layout, chunks, this.#release);
    this.#live.add(out);
    try {
      await fill(chunks, layout);
    } catch (err) {
      this.release(out);
      throw err;
    }
    return out;
  }

  layout(op: string, shape: readonly number[]): ChunkLayout {
    if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new GpuBackendError(op, `invalid shape [${shape.join(', ')}]`);
    }
    const layout = this.layoutOf(shape);
    if (layout.numel >= 2 ** 32) {
      throw new GpuBackendError(op, `shape [${shape.join(', ')}] has ${layout.numel} elements, above the 2^32 the kernels index`);
    }
    return layout;
  }

  tensor(t: Tensor, op: string): GpuTensor {
    this.#assertUsable(op);
    if (!(t instanceof GpuTensor) || !this.#live.has(t)) {
      const why = t instanceof GpuTensor ? 'was released or belongs to another GpuBackend' : 'is not a GPU tensor';
      throw new GpuBackendError(op, `tensor of shape [${t.shape.join(', ')}] ${why}`);
    }
    return t;
  }

  chunks(t: GpuTensor, op: string): readonly BufferRange[] {
    if (!t.chunks) throw new GpuBackendError(op, `tensor of shape [${t.shape.join(', ')}] was released`);
    return t.chunks;
  }

  sameLayout(op: string, a: GpuTensor, b: GpuTensor, what: string): void {
    if (b.numel !== a.numel) {
      throw new GpuBackendError(op, `${what} has ${b.numel} elements, the first tensor has ${a.numel}`);
    }
    // Equal chunks: both whole in one chunk, or cut at the same length.
    const oneChunk = a.layout.count <= 1 && b.layout.count <= 1;
    if (!oneChunk && b.layout.chunkLen !== a.layout.chunkLen) {
      throw new GpuBackendError(
        op,
        `${what} has shape [${b.shape.join(', ')}], the first tensor [${a.shape.join(', ')}]: ` +
          'tensors combined elementwise must share their row layout',
      );
    }
  }

  sameSize(xs: readonly Tensor[], op: string): GpuTensor[] {
    if (xs.length === 0) throw new GpuBackendError(op, 'no tensors');
    const ts = xs.map((x) => this.tensor(x, op));
    ts.forEach((t, i) => this.sameLayout(op, ts[0], t, `tensor ${i}`));
    return ts;
  }

  #assertUsable(op: string): void {
    if (this.#destroyed) throw new GpuBackendError(op, 'the backend was destroyed');
    this.ctx.assertUsable(`gpu backend: ${op}`);
  }
}

/** Bytes of a tensor of `shape` in `dtype` (re-exported for callers sizing uploads). */
export { byteLength };

/**
 * GpuContext: owns a device (and knows whether it created it), the lazily built pipelines, a pool
 * of idle buffers, and every buffer made through it, so a backend can prove it freed what it made.
 * Kernels are declared in src/gpu/kernel.ts; a CommandBatch records dispatches, copies and
 * read-backs and submits them as one command buffer.
 *
 * Buffer pool: `acquire` hands out a buffer of the requested usage and size class (the size rounded
 * up to POOL_GRANULE bytes) from the idle ones when it can, and `recycle` puts one back. A merge
 * meets the same tensor shapes layer after layer, so after the first layer almost nothing is
 * created. Idle buffers are kept up to `maxIdleBytes` (oldest destroyed first); `trimPool` frees
 * them all. Reused buffers are not zero: callers that need zeros say so (`zero: true`).
 */
import {
  adapterLabel,
  createShaderModuleChecked,
  describeAdapter,
  GpuDeviceLostError,
  GpuShaderError,
  readLimits,
  requestGpu,
  watchDevice,
  type GpuAdapterDescription,
  type GpuHandle,
  type GpuLimits,
  type RequestGpuOptions,
  type ShaderSource,
} from './device.ts';
import { encodeParams, PARAMS_SLOT, type Kernel } from './kernel.ts';
import type { LayoutValue } from './wgsl-reflect.ts';

export { WORKGROUP_SIZE } from './kernel.ts';

/** A whole buffer, or a range of one (offsets aligned to minStorageBufferOffsetAlignment). */
export type BufferBinding = GPUBuffer | { buffer: GPUBuffer; offset?: number; size?: number };

export interface DispatchOptions<B extends string = string> {
  /** Values of the kernel's uniform params struct by field name (absent fields are zero). */
  params?: LayoutValue;
  /** Storage buffers by binding name; every binding the kernel uses must be given. */
  buffers: { readonly [K in B]: BufferBinding };
  /** Total workgroups; spread over a 2-D grid when above maxComputeWorkgroupsPerDimension. */
  workgroups: number;
  /** Extra `override` constants of the shader (part of the pipeline cache key). */
  constants?: Readonly<Record<string, number>>;
}

/** A GPU-side failure of a context operation (bad dispatch, use after destroy). */
export class GpuContextError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GpuContextError';
  }
}

/** Thrown when a buffer could not be allocated (names what it was for and its size). */
export class GpuOutOfMemoryError extends Error {
  constructor(label: string, bytes: number, detail: string) {
    super(`GPU out of memory allocating ${label} (${bytes} bytes): ${detail}`);
    this.name = 'GpuOutOfMemoryError';
  }
}

export interface GpuContextOptions {
  /** Destroy the device in destroy() (true when the context requested it). */
  ownsDevice?: boolean;
  adapterInfo?: GpuAdapterDescription;
  /** Called once with the first fatal error (device lost, uncaught validation error). */
  onFatal?: (err: Error) => void;
  /** Bytes of idle buffers the pool keeps for reuse. @default 256 MiB */
  maxIdleBytes?: number;
}

/** Pooled sizes are rounded up to a multiple of this many bytes (one size class per multiple). */
export const POOL_GRANULE = 256;

/** What a buffer request needs; `zero` asks for zero contents even when the buffer is reused. */
export type BufferRequest = GPUBufferDescriptor & { label: string; zero?: boolean };

export class GpuContext {
  readonly device: GPUDevice;
  readonly limits: GpuLimits;
  readonly adapterInfo: GpuAdapterDescription;
  readonly ownsDevice: boolean;
  readonly #live = new Set<GPUBuffer>();
  readonly #modules = new Map<ShaderSource, Promise<GPUShaderModule>>();
  readonly #layouts = new Map<Kernel, { group: GPUBindGroupLayout; pipeline: GPUPipelineLayout }>();
  readonly #pipelines = new Map<string, Promise<GPUComputePipeline>>();
  readonly #kernelIds = new Map<Kernel, number>();
  readonly #detach: () => void;
  #fatal: Error | null = null;
  #destroyed = false;
  #created = 0;
  #reused = 0;
  #dispatches = 0;
  #submits = 0;
  #liveBytes = 0;
  #peakBytes = 0;
  /** Idle buffers by `${usage}:${size}`, and in the order they went idle (oldest first). */
  readonly #idle = new Map<string, GPUBuffer[]>();
  readonly #idleOrder = new Set<GPUBuffer>();
  #idleBytes = 0;
  #maxIdleBytes: number;

  /** Request a device (see requestGpu) and own it. */
  static async create(gpu: GPU | undefined, opts: RequestGpuOptions = {}): Promise<GpuContext> {
    const { onFatal, ...rest } = opts;
    const handle = await requestGpu(gpu, rest);
    return GpuContext.fromHandle(handle, { ownsDevice: true, onFatal });
  }

  static fromHandle(handle: GpuHandle, opts: GpuContextOptions = {}): GpuContext {
    return new GpuContext(handle.device, { adapterInfo: handle.adapterInfo, ...opts });
  }

  constructor(device: GPUDevice, opts: GpuContextOptions = {}) {
    this.device = device;
    this.ownsDevice = opts.ownsDevice ?? false;
    this.limits = readLimits(device);
    this.adapterInfo = opts.adapterInfo ?? describeAdapter(device.adapterInfo);
    this.#maxIdleBytes = opts.maxIdleBytes ?? 256 * 1024 * 1024;
    this.#detach = watchDevice(
      device,
      (err) => {
        this.#fatal = err;
        opts.onFatal?.(err);
      },
      () => this.#destroyed,
    );
  }

  get description(): string {
    return adapterLabel(this.adapterInfo);
  }

  /** Buffers made through this context and not destroyed yet. */
  get liveBuffers(): number {
    return this.#live.size;
  }

  /** Bytes of the buffers alive now, and the most alive at once since the last resetPeak (benchmarks). */
  get liveBytes(): number {
    return this.#liveBytes;
  }

  get peakBytes(): number {
    return this.#peakBytes;
  }

  resetPeak(): void {
    this.#peakBytes = this.#liveBytes;
  }

  /** Buffers made through this context since it was created (tests, the bench's allocation count). */
  get createdBuffers(): number {
    return this.#created;
  }

  /** Compute dispatches and command buffers submitted through this context's batches (the bench's pass count). */
  get dispatchCount(): number {
    return this.#dispatches;
  }

  get submitCount(): number {
    return this.#submits;
  }

  /** Called by CommandBatch.submit. */
  noteSubmitted(dispatches: number): void {
    this.#dispatches += dispatches;
    this.#submits++;
  }

  /** Buffer requests served from the pool instead of a new buffer. */
  get reusedBuffers(): number {
    return this.#reused;
  }

  /** Buffers alive and not idle in the pool: what tensors and running work hold. */
  get inUseBuffers(): number {
    return this.#live.size - this.#idleOrder.size;
  }

  /** Bytes held by idle pooled buffers (part of liveBytes). */
  get idleBytes(): number {
    return this.#idleBytes;
  }

  /** Change the pool's idle budget (0 disables pooling); trims at once. */
  setMaxIdleBytes(bytes: number): void {
    this.#maxIdleBytes = Math.max(0, bytes);
    this.#trimTo(this.#maxIdleBytes);
  }

  /** Destroy every idle pooled buffer. */
  trimPool(): void {
    this.#trimTo(0);
  }

  /** Pipelines built so far (tests check the cache). */
  get pipelineCount(): number {
    return this.#pipelines.size;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** Throw if the device was lost, hit an uncaught error, or this context was destroyed. */
  assertUsable(what: string): void {
    if (this.#fatal) throw this.#fatal;
    if (this.#destroyed) throw new GpuContextError(`${what}: the GPU context was destroyed`);
  }

  /** A labelled buffer tracked by this context (zero-filled, as WebGPU guarantees). */
  createBuffer(desc: GPUBufferDescriptor & { label: string }): GPUBuffer {
    this.assertUsable(desc.label);
    const buffer = this.device.createBuffer(desc);
    this.#live.add(buffer);
    this.#created++;
    this.#liveBytes += buffer.size;
    this.#peakBytes = Math.max(this.#peakBytes, this.#liveBytes);
    return buffer;
  }

  /**
   * A buffer for `req`: an idle pooled one of the same usage and size class (cleared first when
   * `zero`), else a new one (zero-filled, as WebGPU guarantees). Its size may exceed req.size by
   * less than POOL_GRANULE: bind it with an explicit size. Give it back with `recycle`.
   */
  acquire(request: BufferRequest): GPUBuffer {
    this.assertUsable(request.label);
    // Zeroing a reused buffer is a clearBuffer, which needs COPY_DST.
    const req = request.zero ? { ...request, usage: request.usage | GPUBufferUsage.COPY_DST } : request;
    const size = poolSize(req.size);
    const list = this.#idle.get(poolKey(req.usage, size));
    const reused = list?.pop();
    if (reused) {
      this.#idleOrder.delete(reused);
      this.#idleBytes -= reused.size;
      this.#reused++;
      reused.label = req.label;
      if (req.zero) {
        const encoder = this.device.createCommandEncoder({ label: `clear ${req.label}` });
        encoder.clearBuffer(reused);
        this.device.queue.submit([encoder.finish()]);
      }
      return reused;
    }
    const { zero: _zero, ...desc } = req;
    return this.createBuffer({ ...desc, size });
  }

  /** Return a buffer from `acquire` to the pool (or destroy it when the pool is full or off). */
  recycle(buffer: GPUBuffer): void {
    if (!this.#live.has(buffer) || this.#idleOrder.has(buffer)) return;
    if (this.#destroyed || buffer.size > this.#maxIdleBytes || buffer.mapState !== 'unmapped') {
      this.destroyBuffer(buffer);
      return;
    }
    const key = poolKey(buffer.usage, buffer.size);
    let list = this.#idle.get(key);
    if (!list) this.#idle.set(key, (list = []));
    list.push(buffer);
    this.#idleOrder.add(buffer);
    this.#idleBytes += buffer.size;
    this.#trimTo(this.#maxIdleBytes);
  }

  /**
   * Acquire several buffers and check, through an out-of-memory error scope, that the new ones
   * exist. On failure every one of them is given back and GpuOutOfMemoryError names `label`; when
   * the pool held idle buffers, they are freed and the request tried once more first.
   */
  async allocate(label: string, reqs: readonly BufferRequest[]): Promise<GPUBuffer[]> {
    for (let attempt = 0; ; attempt++) {
      this.assertUsable(label);
      const buffers: GPUBuffer[] = [];
      this.device.pushErrorScope('out-of-memory');
      let thrown: unknown = null;
      try {
        for (const r of reqs) buffers.push(this.acquire(r));
      } catch (err) {
        thrown = err;
      }
      const oom = await this.device.popErrorScope();
      if (!thrown && !oom) return buffers;
      for (const b of buffers) this.destroyBuffer(b);
      if (this.#fatal) throw this.#fatal;
      if (thrown) throw thrown;
      if (attempt === 0 && this.#idleBytes > 0) {
        this.trimPool();
        continue;
      }
      const bytes = reqs.reduce((s, d) => s + d.size, 0);
      throw new GpuOutOfMemoryError(label, bytes, oom?.message ?? '');
    }
  }

  /** Destroy a buffer made here (pooled or not). Destroying twice is a no-op. */
  destroyBuffer(buffer: GPUBuffer): void {
    if (!this.#live.delete(buffer)) return;
    if (this.#idleOrder.delete(buffer)) {
      this.#idleBytes -= buffer.size;
      const list = this.#idle.get(poolKey(buffer.usage, buffer.size));
      const at = list?.indexOf(buffer) ?? -1;
      if (list && at >= 0) list.splice(at, 1);
    }
    this.#liveBytes -= buffer.size;
    buffer.destroy();
  }

  #trimTo(limit: number): void {
    for (const b of this.#idleOrder) {
      if (this.#idleBytes <= limit) break;
      this.destroyBuffer(b);
    }
  }

  /** The pipeline for a kernel and extra constants, built once (concurrent callers share the promise). */
  pipeline(kernel: Kernel, extra?: Readonly<Record<string, number>>): Promise<GPUComputePipeline> {
    this.assertUsable(kernel.label);
    let id = this.#kernelIds.get(kernel);
    if (id === undefined) {
      id = this.#kernelIds.size;
      this.#kernelIds.set(kernel, id);
    }
    const constants = { ...kernel.constants, ...extra };
    const constantKey = Object.keys(constants)
      .sort()
      .map((k) => `${k}=${constants[k]}`)
      .join(',');
    const key = `${id}|${constantKey}`;
    let p = this.#pipelines.get(key);
    if (!p) {
      p = this.#buildPipeline(kernel, constants);
      this.#pipelines.set(key, p);
      // A failed build is not cached: the next call reports the error again.
      p.catch(() => this.#pipelines.delete(key));
    }
    return p;
  }

  /** The bind-group layout of a kernel, created on first use. */
  bindGroupLayout(kernel: Kernel): GPUBindGroupLayout {
    return this.#layoutsFor(kernel).group;
  }

  /** Start recording commands; nothing reaches the GPU before `submit()`. */
  batch(label: string): CommandBatch {
    return new CommandBatch(this, label);
  }

  /** Free every buffer made here, forget pipelines, and destroy the device if owned. Safe twice. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const b of this.#live) b.destroy();
    this.#live.clear();
    this.#idle.clear();
    this.#idleOrder.clear();
    this.#idleBytes = 0;
    this.#pipelines.clear();
    this.#layouts.clear();
    this.#modules.clear();
    this.#detach();
    if (this.ownsDevice) this.device.destroy();
  }

  /** Turn a failure during GPU work into the fatal error when the device is gone. */
  explain(err: unknown): unknown {
    return this.#fatal ?? err;
  }

  #layoutsFor(kernel: Kernel): { group: GPUBindGroupLayout; pipeline: GPUPipelineLayout } {
    let l = this.#layouts.get(kernel);
    if (!l) {
      const group = this.device.createBindGroupLayout({
        label: `${kernel.label} bind group layout`,
        entries: kernel.bindings.map(({ binding, kind }) => ({
          binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: kind },
        })),
      });
      const pipeline = this.device.createPipelineLayout({
        label: `${kernel.label} pipeline layout`,
        bindGroupLayouts: [group],
      });
      l = { group, pipeline };
      this.#layouts.set(kernel, l);
    }
    return l;
  }

  async #buildPipeline(kernel: Kernel, constants: Readonly<Record<string, number>>): Promise<GPUComputePipeline> {
    let module = this.#modules.get(kernel.shader);
    if (!module) {
      module = createShaderModuleChecked(this.device, kernel.shader);
      this.#modules.set(kernel.shader, module);
      module.catch(() => this.#modules.delete(kernel.shader));
    }
    const layout = this.#layoutsFor(kernel).pipeline;
    try {
      return await this.device.createComputePipelineAsync({
        label: kernel.label,
        layout,
        compute: { module: await module, entryPoint: kernel.entryPoint, constants: { ...constants } },
      });
    } catch (err) {
      if (err instanceof GpuShaderError) throw err;
      throw new GpuShaderError(kernel.label, err instanceof Error ? err.message : String(err));
    }
  }
}

type Step =
  | { kind: 'dispatch'; kernel: Kernel; opts: DispatchOptions; params: Uint8Array; pipeline: Promise<GPUComputePipeline> }
  | { kind: 'copy'; src: GPUBuffer; srcOffset: number; dst: GPUBuffer; dstOffset: number; size: number }
  | { kind: 'readback'; src: GPUBuffer; offset: number; size: number; slot: number };

/**
 * Records dispatches, buffer copies and read-backs in order, then submits them as one command
 * buffer. Uniform parameters of all dispatches go into one pooled buffer (a 256-byte slot each) and
 * the read-back staging buffers come from the pool and go back to it inside `submit()`.
 */
export class CommandBatch {
  readonly #ctx: GpuContext;
  readonly #label: string;
  readonly #steps: Step[] = [];
  readonly #temps: GPUBuffer[] = [];
  #readbacks = 0;
  #submitted = false;

  constructor(ctx: GpuContext, label: string) {
    this.#ctx = ctx;
    this.#label = label;
  }

  get label(): string {
    return this.#label;
  }

  dispatch<B extends string>(kernel: Kernel<B>, opts: DispatchOptions<B>): this {
    if (opts.workgroups <= 0) return this;
    for (const { name, kind } of kernel.bindings) {
      if (kind !== 'uniform' && !(opts.buffers as Record<string, BufferBinding | undefined>)[name]) {
        throw new GpuContextError(`${this.#label}: ${kernel.label} binding ${name} not given`);
      }
    }
    let params: Uint8Array;
    try {
      params = encodeParams(kernel, opts.params);
    } catch (err) {
      throw new GpuContextError(`${this.#label}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const max = this.#ctx.limits.maxComputeWorkgroupsPerDimension;
    if (opts.workgroups > max * max) {
      throw new GpuContextError(`${this.#label}: ${opts.workgroups} workgroups exceed ${max}²`);
    }
    this.#steps.push({ kind: 'dispatch', kernel, opts: opts as DispatchOptions, params, pipeline: this.#ctx.pipeline(kernel, opts.constants) });
    return this;
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): this {
    if (size > 0) this.#steps.push({ kind: 'copy', src, srcOffset, dst, dstOffset, size });
    return this;
  }

  /** Read `size` bytes (multiple of 4) of `src` after the preceding steps; submit() returns them by slot. */
  readback(src: GPUBuffer, offset: number, size: number): number {
    const slot = this.#readbacks++;
    this.#steps.push({ kind: 'readback', src, offset, size, slot });
    return slot;
  }

  /** Give `buffer` (from the context) back to the pool once the batch is submitted. */
  temp(buffer: GPUBuffer): GPUBuffer {
    this.#temps.push(buffer);
    return buffer;
  }

  /** Submit everything recorded; resolves with the read-back bytes, by slot, once they are mapped. */
  async submit(): Promise<ArrayBuffer[]> {
    if (this.#submitted) throw new GpuContextError(`${this.#label}: batch submitted twice`);
    this.#submitted = true;
    const ctx = this.#ctx;
    const staging: GPUBuffer[] = [];
    let params: GPUBuffer | null = null;
    try {
      ctx.assertUsable(this.#label);
      const dispatches = this.#steps.filter((s) => s.kind === 'dispatch');
      const pipelines = await Promise.all(dispatches.map((s) => s.pipeline));
      ctx.assertUsable(this.#label);
      params = this.#writeParams(dispatches);
      const device = ctx.device;
      const encoder = device.createCommandEncoder({ label: `${this.#label} encoder` });
      let pass: GPUComputePassEncoder | null = null;
      let d = 0;
      const readbacks: { buffer: GPUBuffer; size: number }[] = [];
      for (const step of this.#steps) {
        if (step.kind === 'dispatch') {
          pass ??= encoder.beginComputePass({ label: `${this.#label} pass` });
          pass.setPipeline(pipelines[d]);
          pass.setBindGroup(0, this.#bindGroup(step.kernel, step.opts, params, d));
          const [x, y] = grid(step.opts.workgroups, ctx.limits.maxComputeWorkgroupsPerDimension);
          pass.dispatchWorkgroups(x, y);
          d++;
          continue;
        }
        if (pass) {
          pass.end();
          pass = null;
        }
        if (step.kind === 'copy') {
          encoder.copyBufferToBuffer(step.src, step.srcOffset, step.dst, step.dstOffset, step.size);
        } else {
          const buffer = ctx.acquire({
            label: `${this.#label} read-back ${step.slot}`,
            size: Math.max(4, step.size),
            usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
          });
          staging.push(buffer);
          encoder.copyBufferToBuffer(step.src, step.offset, buffer, 0, step.size);
          readbacks[step.slot] = { buffer, size: step.size };
        }
      }
      pass?.end();
      device.queue.submit([encoder.finish({ label: `${this.#label} commands` })]);
      ctx.noteSubmitted(d);
      if (readbacks.length === 0) return [];
      await Promise.all(readbacks.map((r) => r.buffer.mapAsync(GPUMapMode.READ)));
      return readbacks.map((r) => {
        const bytes = r.buffer.getMappedRange(0, r.size).slice(0);
        r.buffer.unmap();
        return bytes;
      });
    } catch (err) {
      throw ctx.explain(err);
    } finally {
      for (const b of staging) ctx.recycle(b);
      if (params) ctx.recycle(params);
      for (const b of this.#temps) ctx.recycle(b);
    }
  }

  #writeParams(dispatches: Step[]): GPUBuffer | null {
    const withParams = dispatches.some((s) => s.kind === 'dispatch' && s.params.byteLength > 0);
    if (!withParams) return null;
    const bytes = new Uint8Array(dispatches.length * PARAMS_SLOT);
    dispatches.forEach((s, i) => {
      if (s.kind === 'dispatch') bytes.set(s.params, i * PARAMS_SLOT);
    });
    const buffer = this.#ctx.acquire({
      label: `${this.#label} params`,
      size: bytes.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.#ctx.device.queue.writeBuffer(buffer, 0, bytes);
    return buffer;
  }

  #bindGroup(kernel: Kernel, opts: DispatchOptions, params: GPUBuffer | null, index: number): GPUBindGroup {
    const buffers = opts.buffers as Record<string, BufferBinding>;
    const entries: GPUBindGroupEntry[] = kernel.bindings.map(({ name, binding, kind }) => {
      if (kind === 'uniform' && binding === kernel.paramsBinding) {
        return { binding, resource: { buffer: params as GPUBuffer, offset: index * PARAMS_SLOT, size: PARAMS_SLOT } };
      }
      const b = buffers[name];
      return { binding, resource: 'buffer' in b ? { buffer: b.buffer, offset: b.offset ?? 0, size: b.size } : { buffer: b } };
    });
    return this.#ctx.device.createBindGroup({
      label: `${kernel.label} bind group`,
      layout: this.#ctx.bindGroupLayout(kernel),
      entries,
    });
  }
}

/** Workgroup grid for `count` workgroups: (count, 1) or a 2-D grid; shaders skip ids >= count. */
export function grid(count: number, maxPerDimension: number): [number, number] {
  if (count <= maxPerDimension) return [count, 1];
  const y = Math.ceil(count / maxPerDimension);
  return [Math.ceil(count / y), y];
}

function poolSize(size: number): number {
  return Math.max(POOL_GRANULE, Math.ceil(size / POOL_GRANULE) * POOL_GRANULE);
}

function poolKey(usage: number, size: number): string {
  return `${usage}:${size}`;
}

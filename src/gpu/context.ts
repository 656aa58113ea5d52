/**
 * GpuContext: owns a device (and knows whether it created it), the lazily built pipelines, and every
 * buffer made through it, so a backend can prove it freed what it made. Kernels are declared once
 * (shader + entry point + bind-group layout) with `defineKernel`; a CommandBatch records dispatches,
 * copies and read-backs and submits them as one command buffer.
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

/** Threads per workgroup in every kernel (`@workgroup_size(256)` in src/shaders). */
export const WORKGROUP_SIZE = 256;

/** Bytes reserved per dispatch for its uniform parameters (WebGPU's largest uniform offset alignment). */
const PARAMS_SLOT = 256;

export type BindingKind = 'uniform' | 'read-only-storage' | 'storage';

/** A compute entry point and its bind-group layout (group 0), declared once beside its WGSL. */
export interface Kernel {
  readonly label: string;
  readonly shader: ShaderSource;
  readonly entryPoint: string;
  /** Sorted by binding number. Binding 0, when 'uniform', receives the dispatch's params. */
  readonly bindings: readonly { readonly binding: number; readonly kind: BindingKind }[];
}

export function defineKernel(
  shader: ShaderSource,
  entryPoint: string,
  bindings: Readonly<Record<number, BindingKind>>,
): Kernel {
  const list = Object.entries(bindings)
    .map(([b, kind]) => ({ binding: Number(b), kind }))
    .sort((a, b) => a.binding - b.binding);
  return { label: `${shader.name}:${entryPoint}`, shader, entryPoint, bindings: list };
}

/** A whole buffer, or a range of one (offsets aligned to minStorageBufferOffsetAlignment). */
export type BufferBinding = GPUBuffer | { buffer: GPUBuffer; offset: number; size: number };

export interface DispatchOptions {
  /** Uniform parameters for binding 0 (at most 256 bytes). */
  params?: ArrayBufferView;
  /** Storage buffers by binding number; every storage binding of the kernel must be given. */
  buffers: Readonly<Record<number, BufferBinding>>;
  /** Total workgroups; spread over a 2-D grid when above maxComputeWorkgroupsPerDimension. */
  workgroups: number;
  /** `override` constants of the shader (part of the pipeline cache key). */
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
}

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
  #liveBytes = 0;
  #peakBytes = 0;

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

  /** Buffers made through this context since it was created (tests). */
  get createdBuffers(): number {
    return this.#created;
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
   * Allocate several buffers and check, through an out-of-memory error scope, that they exist.
   * On failure every one of them is destroyed and GpuOutOfMemoryError names `label`.
   */
  async allocate(label: string, descs: readonly (GPUBufferDescriptor & { label: string })[]): Promise<GPUBuffer[]> {
    this.assertUsable(label);
    const buffers: GPUBuffer[] = [];
    this.device.pushErrorScope('out-of-memory');
    let thrown: unknown = null;
    try {
      for (const d of descs) buffers.push(this.createBuffer(d));
    } catch (err) {
      thrown = err;
    }
    const scope = this.device.popErrorScope();
    const oom = await scope;
    if (thrown || oom) {
      for (const b of buffers) this.destroyBuffer(b);
      if (this.#fatal) throw this.#fatal;
      if (thrown) throw thrown;
      const bytes = descs.reduce((s, d) => s + d.size, 0);
      throw new GpuOutOfMemoryError(label, bytes, oom?.message ?? '');
    }
    return buffers;
  }

  /** Destroy a buffer made here. Destroying twice is a no-op. */
  destroyBuffer(buffer: GPUBuffer): void {
    if (!this.#live.delete(buffer)) return;
    this.#liveBytes -= buffer.size;
    buffer.destroy();
  }

  /** The pipeline for a kernel and constants, built once (concurrent callers share the promise). */
  pipeline(kernel: Kernel, constants?: Readonly<Record<string, number>>): Promise<GPUComputePipeline> {
    this.assertUsable(kernel.label);
    let id = this.#kernelIds.get(kernel);
    if (id === undefined) {
      id = this.#kernelIds.size;
      this.#kernelIds.set(kernel, id);
    }
    const constantKey = constants
      ? Object.keys(constants)
          .sort()
          .map((k) => `${k}=${constants[k]}`)
          .join(',')
      : '';
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

  async #buildPipeline(kernel: Kernel, constants?: Readonly<Record<string, number>>): Promise<GPUComputePipeline> {
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
        compute: { module: await module, entryPoint: kernel.entryPoint, constants: constants ? { ...constants } : undefined },
      });
    } catch (err) {
      if (err instanceof GpuShaderError) throw err;
      throw new GpuShaderError(kernel.label, err instanceof Error ? err.message : String(err));
    }
  }
}

type Step =
  | { kind: 'dispatch'; kernel: Kernel; opts: DispatchOptions; pipeline: Promise<GPUComputePipeline> }
  | { kind: 'copy'; src: GPUBuffer; srcOffset: number; dst: GPUBuffer; dstOffset: number; size: number }
  | { kind: 'readback'; src: GPUBuffer; offset: number; size: number; slot: number };

/**
 * Records dispatches, buffer copies and read-backs in order, then submits them as one command
 * buffer. Uniform parameters of all dispatches go into one buffer (a 256-byte slot each) and the
 * read-back staging buffers are made and destroyed inside `submit()`.
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

  dispatch(kernel: Kernel, opts: DispatchOptions): this {
    if (opts.workgroups <= 0) return this;
    for (const { binding, kind } of kernel.bindings) {
      if (kind === 'uniform' && binding === 0) {
        if (!opts.params) throw new GpuContextError(`${this.#label}: ${kernel.label} needs params`);
        if (opts.params.byteLength > PARAMS_SLOT) {
          throw new GpuContextError(`${this.#label}: ${kernel.label} params exceed ${PARAMS_SLOT} bytes`);
        }
      } else if (!opts.buffers[binding]) {
        throw new GpuContextError(`${this.#label}: ${kernel.label} binding ${binding} not given`);
      }
    }
    const max = this.#ctx.limits.maxComputeWorkgroupsPerDimension;
    if (opts.workgroups > max * max) {
      throw new GpuContextError(`${this.#label}: ${opts.workgroups} workgroups exceed ${max}²`);
    }
    this.#steps.push({ kind: 'dispatch', kernel, opts, pipeline: this.#ctx.pipeline(kernel, opts.constants) });
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

  /** Destroy `buffer` (made by the context) once the batch is submitted. */
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
          const pipeline = pipelines[d];
          pass.setPipeline(pipeline);
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
          const buffer = ctx.createBuffer({
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
      if (readbacks.length === 0) return [];
      await Promise.all(readbacks.map((r) => r.buffer.mapAsync(GPUMapMode.READ)));
      return readbacks.map((r) => r.buffer.getMappedRange(0, r.size).slice(0));
    } catch (err) {
      throw ctx.explain(err);
    } finally {
      for (const b of staging) ctx.destroyBuffer(b);
      if (params) ctx.destroyBuffer(params);
      for (const b of this.#temps) ctx.destroyBuffer(b);
    }
  }

  #writeParams(dispatches: Step[]): GPUBuffer | null {
    const count = dispatches.length;
    if (count === 0) return null;
    const buffer = this.#ctx.createBuffer({
      label: `${this.#label} params`,
      size: count * PARAMS_SLOT,
      usage: GPUBufferUsage.UNIFORM,
      mappedAtCreation: true,
    });
    const bytes = new Uint8Array(buffer.getMappedRange());
    dispatches.forEach((s, i) => {
      const p = s.kind === 'dispatch' ? s.opts.params : undefined;
      if (p) bytes.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), i * PARAMS_SLOT);
    });
    buffer.unmap();
    return buffer;
  }

  #bindGroup(kernel: Kernel, opts: DispatchOptions, params: GPUBuffer | null, index: number): GPUBindGroup {
    const entries: GPUBindGroupEntry[] = kernel.bindings.map(({ binding, kind }) => {
      if (kind === 'uniform' && binding === 0) {
        return { binding, resource: { buffer: params as GPUBuffer, offset: index * PARAMS_SLOT, size: PARAMS_SLOT } };
      }
      const b = opts.buffers[binding];
      return { binding, resource: 'buffer' in b ? { buffer: b.buffer, offset: b.offset, size: b.size } : { buffer: b } };
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

/**
 * WebGPU device set-up: one `requestGpu()` entry point that turns "no WebGPU / no adapter / limit too
 * low" into typed errors, requests the adapter's real limits (the defaults cap storage bindings at
 * 128 MiB), routes `device.lost` and `uncapturederror` to one fatal handler, and compiles shader
 * modules inside an error scope so a WGSL error names its shader file and line.
 *
 * Works with any `GPU` object: `navigator.gpu` in the browser, `nodeGpu()` (src/gpu/node-gpu.ts) in Node.
 */

/** WebGPU is missing here (no `navigator.gpu`, or the implementation refused to start). */
export class GpuUnavailableError extends Error {
  constructor(reason: string) {
    super(`WebGPU is not available in this browser / Node: ${reason}`);
    this.name = 'GpuUnavailableError';
  }
}

/** WebGPU exists but offered no adapter (blocklisted GPU, headless machine without a driver...). */
export class GpuNoAdapterError extends Error {
  constructor(powerPreference: GPUPowerPreference | undefined) {
    super(
      `WebGPU found no GPU adapter${powerPreference ? ` (powerPreference: ${powerPreference})` : ''}: ` +
        'check that hardware acceleration is enabled, or use the CPU backend',
    );
    this.name = 'GpuNoAdapterError';
  }
}

/** The adapter's limit is below what the engine (or the caller) needs. */
export class GpuLimitError extends Error {
  constructor(
    readonly limit: string,
    readonly needed: number,
    readonly actual: number,
  ) {
    super(`GPU limit ${limit} is too low: needed ${needed}, this adapter offers ${actual}`);
    this.name = 'GpuLimitError';
  }
}

/** The device was lost (driver reset, destroyed elsewhere...); every later op fails with this. */
export class GpuDeviceLostError extends Error {
  constructor(
    readonly reason: string,
    detail: string,
  ) {
    super(`GPU device lost (${reason}): ${detail || 'no details'}; reload to start a new device`);
    this.name = 'GpuDeviceLostError';
  }
}

/** An error no error scope caught (a validation or out-of-memory error in our own commands). */
export class GpuUncapturedError extends Error {
  constructor(
    readonly kind: string,
    detail: string,
  ) {
    super(`GPU ${kind} error: ${detail}`);
    this.name = 'GpuUncapturedError';
  }
}

/** A WGSL module or pipeline failed to compile; the message names the shader file and line. */
export class GpuShaderError extends Error {
  constructor(
    readonly shader: string,
    detail: string,
  ) {
    super(`shader ${shader} failed to compile: ${detail}`);
    this.name = 'GpuShaderError';
  }
}

/** Limits the engine reads; all are "maximum" limits, requested at the adapter's value. */
export const TRACKED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupsPerDimension',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupStorageSize',
  'maxUniformBufferBindingSize',
] as const;

export type TrackedLimit = (typeof TRACKED_LIMITS)[number];

/** The device limits the engine works with (the tracked ones plus the two alignments). */
export type GpuLimits = Record<TrackedLimit, number> & {
  minStorageBufferOffsetAlignment: number;
  minUniformBufferOffsetAlignment: number;
};

/**
 * What the kernels in src/shaders need: 256-thread workgroups, 7 storage buffers in the sign-vote
 * accumulate pass, a 2 KiB workgroup histogram. All are within WebGPU's defaults.
 */
export const ENGINE_MIN_LIMITS: Readonly<Partial<Record<TrackedLimit, number>>> = {
  maxStorageBuffersPerShaderStage: 7,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupStorageSize: 4096,
  maxStorageBufferBindingSize: 1 << 20,
};

export interface GpuAdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A software (CPU) adapter such as SwiftShader: workgroup memory and barriers buy nothing there. */
  isFallbackAdapter: boolean;
}

/** A device from requestGpu, with what the engine needs to know about it. */
export interface GpuHandle {
  device: GPUDevice;
  adapterInfo: GpuAdapterDescription;
  limits: GpuLimits;
}

export interface RequestGpuOptions {
  powerPreference?: GPUPowerPreference;
  /** Minimums beyond the engine's own (e.g. a larger storage binding for big tensors). */
  requiredLimits?: Partial<Record<TrackedLimit, number>>;
  /** Called with the first fatal error: device lost, or an error no scope caught. */
  onFatal?: (err: Error) => void;
}

/**
 * Request an adapter and a device with the adapter's real limits. Throws GpuUnavailableError,
 * GpuNoAdapterError or GpuLimitError.
 */
export async function requestGpu(gpu: GPU | undefined, opts: RequestGpuOptions = {}): Promise<GpuHandle> {
  if (!gpu) throw new GpuUnavailableError('navigator.gpu is undefined (use a WebGPU browser, or Node with the webgpu package)');
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : undefined);
  } catch (err) {
    throw new GpuUnavailableError(`requestAdapter failed: ${errorText(err)}`);
  }
  if (!adapter) throw new GpuNoAdapterError(opts.powerPreference);

  const requiredLimits: Record<string, number> = {};
  for (const name of TRACKED_LIMITS) {
    const actual = adapter.limits[name];
    const needed = Math.max(ENGINE_MIN_LIMITS[name] ?? 0, opts.requiredLimits?.[name] ?? 0);
    if (actual < needed) throw new GpuLimitError(name, needed, actual);
    requiredLimits[name] = actual;
  }

  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ label: 'merge-studio device', requiredLimits });
  } catch (err) {
    throw new GpuUnavailableError(`requestDevice failed: ${errorText(err)}`);
  }
  if (opts.onFatal) watchDevice(device, opts.onFatal);
  return { device, adapterInfo: describeAdapter(adapter.info), limits: readLimits(device) };
}

/** Snapshot of a device's limits (for a device made elsewhere, too). */
export function readLimits(device: GPUDevice): GpuLimits {
  const limits = {} as GpuLimits;
  for (const name of TRACKED_LIMITS) limits[name] = device.limits[name];
  limits.minStorageBufferOffsetAlignment = device.limits.minStorageBufferOffsetAlignment;
  limits.minUniformBufferOffsetAlignment = device.limits.minUniformBufferOffsetAlignment;
  return limits;
}

export function describeAdapter(info: GPUAdapterInfo | undefined): GpuAdapterDescription {
  return {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
    isFallbackAdapter: info?.isFallbackAdapter ?? false,
  };
}

/** One line naming the adapter, e.g. "WebGPU: SwiftShader driver 5.0.0 (google swiftshader)". */
export function adapterLabel(info: GpuAdapterDescription): string {
  const ids = [info.vendor, info.architecture].filter(Boolean).join(' ');
  const main = info.description || info.device || ids || 'unknown adapter';
  return `WebGPU: ${main}${ids && ids !== main ? ` (${ids})` : ''}`;
}

/**
 * Send device loss and uncaught errors to `onFatal`, once (the first fatal error is the one worth
 * showing; later ones are usually consequences). `expected()` returning true marks a loss we caused
 * (our own destroy()), which is not reported. Returns a function that detaches the handlers.
 */
export function watchDevice(
  device: GPUDevice,
  onFatal: (err: Error) => void,
  expected: () => boolean = () => false,
): () => void {
  let active = true;
  let reported = false;
  const report = (err: Error) => {
    if (!active || reported) return;
    reported = true;
    onFatal(err);
  };
  void device.lost.then((info) => {
    if (!expected()) report(new GpuDeviceLostError(info.reason, info.message));
  });
  const onError = (ev: Event) => {
    const error = (ev as GPUUncapturedErrorEvent).error;
    const kind = error.constructor?.name === 'GPUOutOfMemoryError' ? 'out-of-memory' : 'validation';
    report(new GpuUncapturedError(kind, error.message));
  };
  device.addEventListener('uncapturederror', onError);
  return () => {
    active = false;
    device.removeEventListener('uncapturederror', onError);
  };
}

/** A WGSL module's source, assembled from one or more .wgsl files (a library file first). */
export interface ShaderSource {
  /** Label, e.g. "masks.wgsl". */
  readonly name: string;
  readonly code: string;
  /** The files concatenated into `code`, with the first line of each, to map compiler lines back. */
  readonly files: readonly { file: string; firstLine: number }[];
}

/** Join .wgsl files into one module source, remembering where each file starts. */
export function composeShader(name: string, parts: readonly { file: string; code: string }[]): ShaderSource {
  const files: { file: string; firstLine: number }[] = [];
  let code = '';
  let line = 1;
  for (const part of parts) {
    files.push({ file: part.file, firstLine: line });
    const text = part.code.endsWith('\n') ? part.code : `${part.code}\n`;
    code += text;
    line += text.split('\n').length - 1;
  }
  return { name, code, files };
}

/** "masks.wgsl:12:5" for a line of a composed module. */
export function shaderLocation(source: ShaderSource, lineNum: number, linePos: number): string {
  let where = source.files[0] ?? { file: source.name, firstLine: 1 };
  for (const f of source.files) if (f.firstLine <= lineNum) where = f;
  return `${where.file}:${lineNum - where.firstLine + 1}:${linePos}`;
}

/**
 * Compile a WGSL module inside a validation error scope. Throws GpuShaderError naming the file and
 * line of each compiler error. Push and pop happen in the same synchronous step, so concurrent
 * async callers cannot interleave scopes.
 */
export async function createShaderModuleChecked(device: GPUDevice, source: ShaderSource): Promise<GPUShaderModule> {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label: source.name, code: source.code });
  const scopeError = device.popErrorScope();
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length > 0) {
    const lines = errors.map((m) => `${shaderLocation(source, m.lineNum, m.linePos)}: ${m.message}`);
    throw new GpuShaderError(source.name, lines.join('; '));
  }
  const err = await scopeError;
  if (err) throw new GpuShaderError(source.name, err.message);
  return module;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

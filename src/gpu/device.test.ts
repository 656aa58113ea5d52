/**
 * requestGpu's typed errors (with fake GPU objects), the limits it requests, WGSL errors naming
 * their file, and the fatal-error path: an uncaught validation error and a lost device reach
 * onFatal once and turn later ops into that error. One real device for the file; the last test
 * destroys it on purpose.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext } from './context.ts';
import {
  composeShader,
  createShaderModuleChecked,
  ENGINE_MIN_LIMITS,
  GpuDeviceLostError,
  GpuLimitError,
  GpuNoAdapterError,
  GpuShaderError,
  GpuUnavailableError,
  GpuUncapturedError,
  requestGpu,
  TRACKED_LIMITS,
  type GpuHandle,
} from './device.ts';
import { createGpuBackend } from './gpu-backend.ts';
import { nodeGpu } from './node-gpu.ts';

let handle: GpuHandle;

beforeAll(async () => {
  handle = await requestGpu(nodeGpu());
});

afterAll(() => handle?.device.destroy());

/** A GPU whose adapter reports `limits` and records the device descriptor it was asked for. */
function fakeGpu(limits: Record<string, number>, seen: { desc?: GPUDeviceDescriptor } = {}): GPU {
  const adapter = {
    limits,
    info: { vendor: 'acme', architecture: 'toy', device: '', description: 'Acme Toy GPU' },
    requestDevice: async (desc: GPUDeviceDescriptor) => {
      seen.desc = desc;
      return handle.device;
    },
  };
  return { requestAdapter: async () => adapter } as unknown as GPU;
}

function generousLimits(): Record<string, number> {
  const l: Record<string, number> = {};
  for (const name of TRACKED_LIMITS) l[name] = 1 << 30;
  return l;
}

describe('requestGpu errors', () => {
  it('reports missing WebGPU', async () => {
    await expect(requestGpu(undefined)).rejects.toThrow(GpuUnavailableError);
    await expect(requestGpu(undefined)).rejects.toThrow(/WebGPU is not available in this browser \/ Node: navigator\.gpu is undefined/);
  });

  it('reports an adapter request that throws, and no adapter', async () => {
    const throwing = { requestAdapter: async () => Promise.reject(new Error('driver crashed')) } as unknown as GPU;
    await expect(requestGpu(throwing)).rejects.toThrow(/not available.*requestAdapter failed: driver crashed/);
    const none = { requestAdapter: async () => null } as unknown as GPU;
    await expect(requestGpu(none, { powerPreference: 'high-performance' })).rejects.toThrow(GpuNoAdapterError);
    await expect(requestGpu(none, { powerPreference: 'high-performance' })).rejects.toThrow(/no GPU adapter \(powerPreference: high-performance\)/);
  });

  it('states the needed and the actual value of a limit that is too low', async () => {
    const low = { ...generousLimits(), maxStorageBuffersPerShaderStage: 4 };
    const err = await requestGpu(fakeGpu(low)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GpuLimitError);
    expect((err as Error).message).toBe(
      `GPU limit maxStorageBuffersPerShaderStage is too low: needed ${ENGINE_MIN_LIMITS.maxStorageBuffersPerShaderStage}, this adapter offers 4`,
    );
    // A caller's own minimum counts too.
    await expect(
      requestGpu(fakeGpu(generousLimits()), { requiredLimits: { maxBufferSize: 2 ** 31 } }),
    ).rejects.toThrow(/maxBufferSize is too low: needed 2147483648, this adapter offers 1073741824/);
  });

  it("requests the adapter's own limits, not WebGPU's defaults", async () => {
    const seen: { desc?: GPUDeviceDescriptor } = {};
    const limits = { ...generousLimits(), maxStorageBufferBindingSize: 3 << 28 };
    const h = await requestGpu(fakeGpu(limits, seen));
    expect(seen.desc?.requiredLimits?.maxStorageBufferBindingSize).toBe(3 << 28);
    expect(Object.keys(seen.desc?.requiredLimits ?? {}).sort()).toEqual([...TRACKED_LIMITS].sort());
    expect(h.adapterInfo.description).toBe('Acme Toy GPU');
  });
});

describe('requestGpu on Dawn', () => {
  it('gets a device with the adapter limits (above the 128 MiB default binding here)', async () => {
    const adapter = await nodeGpu().requestAdapter();
    expect(adapter).not.toBeNull();
    for (const name of TRACKED_LIMITS) expect(handle.limits[name], name).toBe(adapter?.limits[name]);
    expect(handle.device.limits.maxStorageBufferBindingSize).toBe(adapter?.limits.maxStorageBufferBindingSize);
    expect(handle.limits.minStorageBufferOffsetAlignment).toBeGreaterThan(0);
  });
});

describe('shader compilation', () => {
  it('names the file and line of a WGSL error in a module made of several files', async () => {
    const source = composeShader('masks.wgsl', [
      { file: 'random.wgsl', code: 'fn a() -> u32 {\n  return 1u;\n}\n' },
      { file: 'masks.wgsl', code: 'fn b() -> u32 {\n  return 2u;\n}\nfn c() -> u32 {\n  return 1.5;\n}\n' },
    ]);
    const err = await createShaderModuleChecked(handle.device, source).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GpuShaderError);
    expect((err as Error).message).toMatch(/^shader masks\.wgsl failed to compile: masks\.wgsl:5:\d+: .*abstract-float/);
  });

  it('compiles a valid module', async () => {
    const source = composeShader('ok.wgsl', [{ file: 'ok.wgsl', code: '@compute @workgroup_size(1) fn main() {}' }]);
    await expect(createShaderModuleChecked(handle.device, source)).resolves.toBeDefined();
  });
});

describe('fatal errors', () => {
  it('an uncaught validation error reaches onFatal once and stops later ops', async () => {
    const fatal: Error[] = [];
    const ctx = new GpuContext(handle.device, { onFatal: (e) => fatal.push(e) });
    const be = createGpuBackend(ctx);
    const t = await be.fromArray([1, 2, 3], [3]);
    // Invalid usage outside any error scope: an uncaptured validation error.
    handle.device.createBuffer({ label: 'invalid on purpose', size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE });
    handle.device.createBuffer({ label: 'invalid again', size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE });
    await expect.poll(() => fatal.length).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(fatal.length).toBe(1);
    expect(fatal[0]).toBeInstanceOf(GpuUncapturedError);
    expect(fatal[0].message).toMatch(/GPU validation error: .*invalid on purpose/s);
    await expect(be.read(t)).rejects.toBe(fatal[0]);
    be.destroy();
    ctx.destroy();
  });

  it('a lost device turns every later op into GpuDeviceLostError; our own destroy is not a loss', async () => {
    const watcherFatal: Error[] = [];
    const ownerFatal: Error[] = [];
    // Two contexts on one device: the owner destroys it (expected, not reported); for the watcher
    // the device is lost under it.
    const watcher = new GpuContext(handle.device, { onFatal: (e) => watcherFatal.push(e) });
    const owner = GpuContext.fromHandle(handle, { ownsDevice: true, onFatal: (e) => ownerFatal.push(e) });
    const be = createGpuBackend(watcher, { maxChunkElements: 777 });
    const t = await be.fromArray(new Float32Array(2000).fill(1), [2000]);
    owner.destroy();
    owner.destroy(); // safe twice
    const info = await handle.device.lost;
    expect(info.reason).toBe('destroyed');
    await expect.poll(() => watcherFatal.length).toBe(1);
    expect(watcherFatal[0]).toBeInstanceOf(GpuDeviceLostError);
    expect(watcherFatal[0].message).toMatch(/GPU device lost \(destroyed\)/);
    expect(ownerFatal).toEqual([]);
    for (const op of [() => be.read(t), () => be.lincomb([{ x: t, coef: 2 }]), () => be.sumAbs(t), () => be.fromArray([1], [1])]) {
      await expect(op()).rejects.toBeInstanceOf(GpuDeviceLostError);
    }
    be.destroy();
    watcher.destroy();
    expect(watcher.liveBuffers).toBe(0);
  });
});

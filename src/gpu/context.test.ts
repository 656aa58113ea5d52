/**
 * GpuContext and CommandBatch: pipeline cache, labels on every GPU object, 2-D dispatch grids,
 * and that every buffer made (tensors, params, staging, scratch) is destroyed — checked through a
 * wrapped device that records what was created and what was destroyed, independently of the
 * context's own count. One device for the file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext, GpuOutOfMemoryError, defineKernel, grid } from './context.ts';
import { composeShader, GpuShaderError, requestGpu, type GpuHandle } from './device.ts';
import { createGpuBackend } from './gpu-backend.ts';
import { nodeGpu } from './node-gpu.ts';

let handle: GpuHandle;

beforeAll(async () => {
  handle = await requestGpu(nodeGpu());
});

afterAll(() => handle?.device.destroy());

/** What a wrapped device saw: descriptors by method, and each buffer with whether it was destroyed. */
interface Recorder {
  device: GPUDevice;
  labels: { method: string; label: string | undefined }[];
  buffers: Map<GPUBuffer, { label: string | undefined; destroyed: boolean }>;
}

/** A device proxy that records create* descriptors and tracks destroy() of every buffer. */
function recordingDevice(device: GPUDevice): Recorder {
  const rec: Recorder = { device, labels: [], buffers: new Map() };
  rec.device = new Proxy(device, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const name = String(prop);
      return (...args: unknown[]) => {
        if (name.startsWith('create')) {
          const desc = args[0] as { label?: string } | undefined;
          rec.labels.push({ method: name, label: desc?.label });
        }
        const result = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (name === 'createBuffer') {
          const buffer = result as GPUBuffer;
          const entry = { label: (args[0] as GPUBufferDescriptor).label, destroyed: false };
          rec.buffers.set(buffer, entry);
          const destroy = buffer.destroy.bind(buffer);
          buffer.destroy = () => {
            entry.destroyed = true;
            destroy();
          };
        }
        return result;
      };
    },
  });
  return rec;
}

const SCALE_WGSL = `
// Test kernel: out = SCALE * x + params.shift, one thread per element, 2-D grid aware.
override SCALE: f32 = 1.0;
struct Params { n: u32, shift: f32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid;
  if (i >= params.n) { return; }
  out[i] = SCALE * x[i] + params.shift;
}
`;
const SCALE = defineKernel(composeShader('scale.wgsl', [{ file: 'scale.wgsl', code: SCALE_WGSL }]), 'main', {
  0: 'uniform',
  1: 'read-only-storage',
  2: 'storage',
});

describe('grid', () => {
  it('stays 1-D up to the limit and spreads over y above it, covering every workgroup', () => {
    expect(grid(1, 65535)).toEqual([1, 1]);
    expect(grid(65535, 65535)).toEqual([65535, 1]);
    for (const count of [65536, 65535 * 3 + 1, 1_000_000, 65535 * 65535]) {
      const [x, y] = grid(count, 65535);
      expect(x).toBeLessThanOrEqual(65535);
      expect(y).toBeLessThanOrEqual(65535);
      expect(x * y).toBeGreaterThanOrEqual(count);
      expect(x * (y - 1)).toBeLessThan(count); // no wholly idle row of workgroups
    }
  });
});

describe('CommandBatch with a test kernel', () => {
  it('runs a kernel with override constants and params, caching one pipeline per constants', async () => {
    const ctx = new GpuContext(handle.device);
    const n = 1000;
    const x = Float32Array.from({ length: n }, (_, i) => i - 500);
    const input = ctx.createBuffer({ label: 'x', size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    ctx.device.queue.writeBuffer(input, 0, x);
    const out = ctx.createBuffer({ label: 'out', size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const params = (shift: number) => {
      const b = new ArrayBuffer(16);
      new Uint32Array(b, 0, 1)[0] = n;
      new Float32Array(b, 4, 1)[0] = shift;
      return new Uint8Array(b);
    };
    for (const [scale, shift] of [
      [3, 0.5],
      [3, -1],
      [-2, 0],
    ]) {
      const batch = ctx.batch('scale');
      batch.dispatch(SCALE, { params: params(shift), buffers: { 1: input, 2: out }, workgroups: Math.ceil(n / 256), constants: { SCALE: scale } });
      const slot = batch.readback(out, 0, n * 4);
      const got = new Float32Array((await batch.submit())[slot]);
      expect(Array.from(got)).toEqual(Array.from(x, (v) => Math.fround(scale * v + shift)));
    }
    // Two distinct constant sets: two pipelines; the same set again reuses its pipeline.
    expect(ctx.pipelineCount).toBe(2);
    expect(await ctx.pipeline(SCALE, { SCALE: 3 })).toBe(await ctx.pipeline(SCALE, { SCALE: 3 }));
    expect(ctx.bindGroupLayout(SCALE)).toBe(ctx.bindGroupLayout(SCALE));
    ctx.destroy();
    expect(ctx.liveBuffers).toBe(0);
  });

  it('counts live and peak buffer bytes', async () => {
    const ctx = new GpuContext(handle.device);
    const usage = GPUBufferUsage.STORAGE;
    const a = ctx.createBuffer({ label: 'a', size: 1024, usage });
    const b = ctx.createBuffer({ label: 'b', size: 4096, usage });
    expect([ctx.liveBytes, ctx.peakBytes]).toEqual([5120, 5120]);
    ctx.destroyBuffer(b);
    ctx.destroyBuffer(b);
    expect([ctx.liveBytes, ctx.peakBytes]).toEqual([1024, 5120]);
    ctx.resetPeak();
    expect(ctx.peakBytes).toBe(1024);
    ctx.destroyBuffer(a);
    expect(ctx.liveBytes).toBe(0);
    ctx.destroy();
  });

  it('dispatches more than 65535 workgroups on a 2-D grid', async () => {
    const ctx = new GpuContext(handle.device);
    const n = 65535 * 256 + 1000; // 65539 workgroups
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = i % 1024;
    const input = ctx.createBuffer({ label: 'x', size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    ctx.device.queue.writeBuffer(input, 0, x);
    const out = ctx.createBuffer({ label: 'out', size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const p = new ArrayBuffer(16);
    new Uint32Array(p, 0, 1)[0] = n;
    new Float32Array(p, 4, 1)[0] = 1;
    const batch = ctx.batch('scale 2-D');
    batch.dispatch(SCALE, { params: new Uint8Array(p), buffers: { 1: input, 2: out }, workgroups: Math.ceil(n / 256), constants: { SCALE: 2 } });
    const slot = batch.readback(out, 0, n * 4);
    const got = new Float32Array((await batch.submit())[slot]);
    for (let i = 0; i < n; i++) {
      if (got[i] !== 2 * (i % 1024) + 1) expect.fail(`element ${i}: got ${got[i]}, want ${2 * (i % 1024) + 1}`);
    }
    ctx.destroy();
  });

  it('names the shader file and line of a WGSL error, in a composed module', async () => {
    const ctx = new GpuContext(handle.device);
    const bad = defineKernel(
      composeShader('broken.wgsl', [
        { file: 'lib.wgsl', code: 'fn helper() -> u32 {\n  return 1u;\n}\n' },
        { file: 'broken.wgsl', code: '@compute @workgroup_size(1)\nfn main() {\n  let x: u32 = 1.5;\n}\n' },
      ]),
      'main',
      {},
    );
    const err = await ctx.pipeline(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GpuShaderError);
    expect((err as Error).message).toMatch(/shader broken\.wgsl failed to compile: broken\.wgsl:3:\d+: /);
    ctx.destroy();
  });

  it('rejects a dispatch missing a binding or its params', () => {
    const ctx = new GpuContext(handle.device);
    const buf = ctx.createBuffer({ label: 'b', size: 16, usage: GPUBufferUsage.STORAGE });
    expect(() => ctx.batch('t').dispatch(SCALE, { params: new Uint8Array(16), buffers: { 1: buf }, workgroups: 1 })).toThrow(/binding 2 not given/);
    expect(() => ctx.batch('t').dispatch(SCALE, { buffers: { 1: buf, 2: buf }, workgroups: 1 })).toThrow(/needs params/);
    ctx.destroy();
    expect(() => ctx.createBuffer({ label: 'late', size: 4, usage: GPUBufferUsage.STORAGE })).toThrow(/destroyed/);
  });
});

describe('allocation failures', () => {
  it('turns an out-of-memory scope error into GpuOutOfMemoryError and frees what was made', async () => {
    const rec = recordingDevice(handle.device);
    // The device reports every allocation scope as out of memory.
    const oomDevice = new Proxy(rec.device, {
      get(target, prop) {
        if (prop === 'popErrorScope') {
          return () => {
            void handle.device.popErrorScope();
            return Promise.resolve({ message: 'not enough memory for the test' });
          };
        }
        return Reflect.get(target, prop, target);
      },
    });
    const ctx = new GpuContext(oomDevice);
    const usage = GPUBufferUsage.STORAGE;
    const err = await ctx
      .allocate('lincomb output [4096, 4096]', [
        { label: 'a', size: 1024, usage },
        { label: 'b', size: 2048, usage },
      ])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GpuOutOfMemoryError);
    expect((err as Error).message).toBe(
      'GPU out of memory allocating lincomb output [4096, 4096] (3072 bytes): not enough memory for the test',
    );
    expect([...rec.buffers.values()].every((b) => b.destroyed)).toBe(true);
    expect(ctx.liveBuffers).toBe(0);
    ctx.destroy();
  });
});

describe('ownership, labels and buffer lifetimes (wrapped device)', () => {
  it('labels every object and destroys every buffer it made, after each op and on destroy', async () => {
    const rec = recordingDevice(handle.device);
    const be = createGpuBackend(rec.device, { maxChunkElements: 777 });
    const alive = () => [...rec.buffers.values()].filter((b) => !b.destroyed).map((b) => b.label ?? '');
    const n = 2000; // 3 chunks
    const key = { seed: 3, model: 0, tensor: 'w' };
    const x = await be.fromArray(Float32Array.from({ length: n }, (_, i) => Math.sin(i)), [2, 1000]);
    const y = await be.fromArray(Float32Array.from({ length: n }, (_, i) => Math.cos(i)), [2, 1000]);
    expect(alive().length).toBe(6);
    const ops: (() => Promise<unknown>)[] = [
      () => be.lincomb([{ x, coef: new Float32Array([1, 2]) }, { x: y, coef: 1 }], 2),
      () => be.decode(new Uint8Array(n * 2), 'BF16', [2, 1000]),
      () => be.encode(x, 'F16'),
      () => be.read(x),
      () => be.gram([x, y]),
      () => be.gramRows([x, y]),
      () => be.sumAbs(x),
      () => be.keepRankBand(x, 100, 1500),
      () => be.keepRandom(x, 0.5, key),
      () => be.keepRanked(x, 0.5, 0.1, key),
      () => be.keepWhere(x, y),
      () => be.signElect([x, y, x, y, x], [1, 1, 1, 1, 1], true),
      () => be.nearswap(x, y, 0.1),
    ];
    for (const op of ops) {
      const result = await op();
      // Only the two inputs (and a tensor result) survive an op: params, staging, scratch are gone.
      const resultChunks = result && typeof result === 'object' && 'shape' in result ? 3 : 0;
      expect(alive().length, alive().join(', ')).toBe(6 + resultChunks);
      if (resultChunks) be.release(result as never);
      expect(alive().length).toBe(6);
    }
    be.destroy();
    be.destroy();
    expect(alive()).toEqual([]);
    // Every descriptor carried a label.
    const unlabelled = rec.labels.filter((l) => !l.label);
    expect(unlabelled).toEqual([]);
    expect(new Set(rec.labels.map((l) => l.method))).toEqual(
      new Set([
        'createBuffer',
        'createShaderModule',
        'createBindGroupLayout',
        'createPipelineLayout',
        'createComputePipelineAsync',
        'createCommandEncoder',
        'createBindGroup',
      ]),
    );
    // The backend did not own the device: it is still usable.
    const probe = handle.device.createBuffer({ label: 'probe', size: 4, usage: GPUBufferUsage.STORAGE });
    probe.destroy();
  });
});

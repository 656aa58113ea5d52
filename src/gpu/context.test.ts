/**
 * GpuContext and CommandBatch: pipeline cache, labels on every GPU object, 2-D dispatch grids,
 * and that every buffer made (tensors, params, staging, scratch) is destroyed — checked through a
 * wrapped device that records what was created and what was destroyed, independently of the
 * context's own count. One device for the file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext, GpuContextError, GpuOutOfMemoryError, grid } from './context.ts';
import { composeShader, GpuShaderError, requestGpu, type GpuHandle } from './device.ts';
import { defineKernel, shaderModule } from './kernel.ts';
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
@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) { return; }
  out[i] = SCALE * x[i] + params.shift;
}
`;
const SCALE = defineKernel(shaderModule('scale.wgsl', { file: 'scale.wgsl', code: SCALE_WGSL }), 'main', { uses: ['x', 'out'] });

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
    for (const [scale, shift] of [
      [3, 0.5],
      [3, -1],
      [-2, 0],
    ]) {
      const batch = ctx.batch('scale');
      batch.dispatch(SCALE, { params: { n, shift }, buffers: { x: input, out }, workgroups: Math.ceil(n / 256), constants: { SCALE: scale } });
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
    const batch = ctx.batch('scale 2-D');
    batch.dispatch(SCALE, { params: { n, shift: 1 }, buffers: { x: input, out }, workgroups: Math.ceil(n / 256), constants: { SCALE: 2 } });
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
      { uses: [] },
    );
    const err = await ctx.pipeline(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GpuShaderError);
    expect((err as Error).message).toMatch(/shader broken\.wgsl failed to compile: broken\.wgsl:3:\d+: /);
    ctx.destroy();
  });

  it('rejects a dispatch missing a binding, or with a misspelt or mistyped parameter', () => {
    const ctx = new GpuContext(handle.device);
    const buf = ctx.createBuffer({ label: 'b', size: 16, usage: GPUBufferUsage.STORAGE });
    const dispatch = (opts: object) => () => ctx.batch('t').dispatch(SCALE, { workgroups: 1, ...opts } as never);
    expect(dispatch({ params: { n: 1 }, buffers: { x: buf } })).toThrow(/scale\.wgsl:main binding out not given/);
    expect(dispatch({ params: { n: 1, shfit: 2 }, buffers: { x: buf, out: buf } })).toThrow(GpuContextError);
    expect(dispatch({ params: { n: 1, shfit: 2 }, buffers: { x: buf, out: buf } })).toThrow(/struct Params has no field shfit \(fields: n, shift\)/);
    expect(dispatch({ params: { n: -1 }, buffers: { x: buf, out: buf } })).toThrow(/params\.n: -1 is not a u32/);
    ctx.destroy();
    expect(() => ctx.createBuffer({ label: 'late', size: 4, usage: GPUBufferUsage.STORAGE })).toThrow(/destroyed/);
  });
});

describe('buffer pool', () => {
  it('reuses an idle buffer of the same usage and size class, zeroing it on request', async () => {
    const ctx = new GpuContext(handle.device);
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const a = ctx.acquire({ label: 'a', size: 1000, usage });
    expect(a.size).toBe(1024); // rounded up to the 256-byte class
    ctx.device.queue.writeBuffer(a, 0, new Float32Array(250).fill(7));
    ctx.recycle(a);
    expect(ctx.idleBytes).toBe(1024);
    // Same class: the same buffer, contents as left (no zero asked).
    const b = ctx.acquire({ label: 'b', size: 1020, usage });
    expect(b).toBe(a);
    expect(b.label).toBe('b');
    expect(ctx.reusedBuffers).toBe(1);
    const read = async (buf: GPUBuffer) => {
      const batch = ctx.batch('read');
      const slot = batch.readback(buf, 0, 1000);
      return new Float32Array((await batch.submit())[slot]);
    };
    expect((await read(b))[0]).toBe(7);
    ctx.recycle(b);
    const c = ctx.acquire({ label: 'c', size: 1000, usage, zero: true });
    expect(c).toBe(a);
    expect(Array.from(await read(c)).every((v) => v === 0)).toBe(true);
    // Another usage or size class gets a new buffer.
    const created = ctx.createdBuffers;
    const d = ctx.acquire({ label: 'd', size: 1000, usage: GPUBufferUsage.STORAGE });
    const e = ctx.acquire({ label: 'e', size: 2000, usage });
    expect(ctx.createdBuffers).toBe(created + 2);
    for (const x of [c, d, e]) ctx.recycle(x);
    ctx.recycle(e); // twice: no-op
    // The read-back staging buffer idles in the pool too.
    expect(ctx.idleBytes).toBe(1024 + 1024 + 2048 + 1024);
    ctx.destroy();
    expect(ctx.liveBuffers).toBe(0);
  });

  it('keeps at most maxIdleBytes idle, destroying the oldest first; trimPool frees them all', () => {
    const ctx = new GpuContext(handle.device, { maxIdleBytes: 4096 });
    const usage = GPUBufferUsage.STORAGE;
    const bufs = [1024, 2048, 2048].map((size, i) => ctx.acquire({ label: `b${i}`, size, usage }));
    for (const b of bufs) ctx.recycle(b);
    // 1024 + 2048 + 2048 > 4096: the oldest (1024) went first.
    expect(ctx.idleBytes).toBe(4096);
    expect(ctx.liveBuffers).toBe(2);
    expect(ctx.acquire({ label: 'x', size: 1024, usage })).not.toBe(bufs[0]);
    ctx.trimPool();
    expect(ctx.idleBytes).toBe(0);
    expect(ctx.liveBuffers).toBe(1);
    ctx.setMaxIdleBytes(0);
    const y = ctx.acquire({ label: 'y', size: 256, usage });
    ctx.recycle(y); // pooling off: destroyed at once
    expect(ctx.idleBytes).toBe(0);
    ctx.destroy();
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
      // Only the two inputs (and a tensor result) survive an op: params, staging and scratch buffers
      // went back to the pool, and trimming the pool destroys them.
      const resultChunks = result && typeof result === 'object' && 'shape' in result ? 3 : 0;
      be.ctx.trimPool();
      expect(alive().length, alive().join(', ')).toBe(6 + resultChunks);
      if (resultChunks) be.release(result as never);
      be.ctx.trimPool();
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

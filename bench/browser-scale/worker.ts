/**
 * The measurement's worker: writes procedural Llama-shaped checkpoints (src/core/sources/procedural.ts)
 * into the origin private file system, then merges them with the studio's own engine worker logic
 * (EngineHost from src/ui/worker/host.ts: models opened from OPFS files as a dropped folder would be,
 * the merge written into an OPFS folder as an export to a picked folder is), on either backend.
 * Driven by page.ts; each request answers once, progress goes out as it comes.
 */
/// <reference lib="webworker" />
import { proceduralModelTree, type LlamaShape } from '../../src/core/sources/procedural.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { createGpuBackend } from '../../src/gpu/gpu-backend.ts';
import { EngineHost } from '../../src/ui/worker/host.ts';
import type { FromWorker, MergeRequest, ToWorker } from '../../src/ui/worker/protocol.ts';
import type { ScaleRequest, ScaleReply } from './protocol.ts';

const scope = self as unknown as DedicatedWorkerGlobalScope;

/** Models of a set: a base and three experts (procedural seeds follow this order). */
const MODELS = ['base', 'expert1', 'expert2', 'expert3'];

let context: GpuContext | undefined;
const waiting = new Map<number, (msg: FromWorker) => void>();
const host = new EngineHost({
  post: (msg) => {
    if (msg.kind === 'merge-progress') {
      scope.postMessage({ progress: msg.progress } satisfies ScaleReply);
      return;
    }
    const key = 'requestId' in msg ? msg.requestId : 'jobId' in msg ? msg.jobId : undefined;
    if (key !== undefined) waiting.get(key)?.(msg);
  },
  gpu: scope.navigator.gpu,
  createGpuBackend: (handle) => {
    context ??= GpuContext.fromHandle(handle, { ownsDevice: true });
    return createGpuBackend(context);
  },
  // The page's `?no-tab-limit`: skip the studio's refusal (tab-limit.ts) to see what fails without it.
  mergeStepLimit: scope.name.endsWith('no-tab-limit') ? Infinity : undefined,
});

let nextId = 1;
/** Send one message to the host and wait for the answer carrying its id. */
function ask(make: (id: number) => ToWorker): Promise<FromWorker> {
  const id = nextId++;
  return new Promise((resolve) => {
    waiting.set(id, (msg) => {
      waiting.delete(id);
      resolve(msg);
    });
    void host.handle(make(id));
  });
}

async function opfsDir(path: string, create: boolean): Promise<FileSystemDirectoryHandle> {
  let dir = await navigator.storage.getDirectory();
  for (const part of path.split('/').filter(Boolean)) dir = await dir.getDirectoryHandle(part, { create });
  return dir;
}

/** Write `models` (of MODELS) of `shape` under OPFS `scale/<set>/`, in 64 MiB pieces. */
async function writeSet(set: string, shape: LlamaShape, models: string[]): Promise<{ bytes: number; seconds: number }> {
  const t0 = performance.now();
  let bytes = 0;
  const root = await opfsDir(`scale/${set}`, true);
  for (const name of models) {
    const tree = proceduralModelTree(name, { shape, expert: MODELS.indexOf(name) });
    const dir = await root.getDirectoryHandle(name, { create: true });
    for (const path of await tree.list()) {
      const src = (await tree.open(path))!;
      const handle = await dir.getFileHandle(path, { create: true });
      const access = await handle.createSyncAccessHandle();
      try {
        access.truncate(0);
        for (let at = 0; at < src.size; at += 64 << 20) {
          const piece = await src.read(at, Math.min(64 << 20, src.size - at));
          access.write(piece, { at });
        }
        access.flush();
      } finally {
        access.close();
      }
      bytes += src.size;
    }
  }
  return { bytes, seconds: (performance.now() - t0) / 1000 };
}

/** Open the set's models from OPFS in the host, as the studio opens a dropped folder. */
async function openSet(set: string, models: string[]): Promise<void> {
  const root = await opfsDir(`scale/${set}`, false);
  for (const name of models) {
    const dir = await root.getDirectoryHandle(name);
    const files: { path: string; blob: Blob }[] = [];
    for await (const [path, handle] of dir.entries()) {
      if (handle.kind === 'file') files.push({ path, blob: await (handle as FileSystemFileHandle).getFile() });
    }
    const answer = await ask((requestId) => ({ kind: 'open', requestId, ref: name, source: { kind: 'files', name, files } }));
    if (answer.kind !== 'opened') throw new Error(`opening ${set}/${name}: ${answer.kind === 'request-failed' ? answer.error.message : answer.kind}`);
  }
}

async function merge(req: Extract<ScaleRequest, { op: 'merge' }>): Promise<unknown> {
  await openSet(req.set, req.models);
  const out = await opfsDir('scale-out', true);
  const folderName = `${req.set}-${req.backend}-${Date.now()}`;
  context?.resetPeak();
  const request: MergeRequest = {
    recipe: req.recipe,
    backend: req.backend,
    output: { kind: 'directory', parent: out, folderName },
    seed: 1,
    maxShardBytes: 5e9,
  };
  const t0 = performance.now();
  const answer = await ask((jobId) => ({ kind: 'merge', jobId, request }));
  const seconds = (performance.now() - t0) / 1000;
  const peakGpuBytes = req.backend === 'gpu' ? (context?.peakBytes ?? null) : null;
  await out.removeEntry(folderName, { recursive: true }).catch(() => undefined);
  if (answer.kind === 'merge-done') return { completed: true, seconds, peakGpuBytes, bytes: answer.result.bytes, tensors: answer.result.tensors };
  if (answer.kind === 'merge-failed') return { completed: false, seconds, peakGpuBytes, error: answer.error };
  throw new Error(`unexpected answer ${answer.kind}`);
}

/**
 * The largest single storage buffer the device really allocates (maxBufferSize is what it promises):
 * halves from maxBufferSize until one is made, then bisects to 16 MiB. Each try is created inside an
 * out-of-memory error scope and destroyed at once.
 */
async function largestBuffer(device: GPUDevice, max: number): Promise<number> {
  const fits = async (size: number) => {
    device.pushErrorScope('out-of-memory');
    const buffer = device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    const error = await device.popErrorScope();
    buffer.destroy();
    return !error;
  };
  if (await fits(max)) return max;
  let hi = max;
  let lo = hi / 2;
  while (lo >= 16 << 20 && !(await fits(lo))) [hi, lo] = [lo, lo / 2];
  if (lo < 16 << 20) return 0;
  while (hi - lo > 16 << 20) {
    const mid = Math.floor((lo + hi) / 2 / (16 << 20)) * (16 << 20);
    if (mid <= lo) break;
    if (await fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

/**
 * How many bytes of GPU buffers this tab can fill at once: 1 GiB storage buffers, each filled with
 * queue.writeBuffer in 64 MiB pieces as the engine's decode fills them, made (inside an
 * out-of-memory error scope) until one fails or `capGiB` are held; then all destroyed.
 */
async function gpuMemoryProbe(capGiB: number): Promise<{ largestBuffer: number; piece: number; bytes: number; stoppedBy: string } | null> {
  const adapter = await scope.navigator.gpu?.requestAdapter();
  if (!adapter) return null;
  const device = await adapter.requestDevice({ requiredLimits: { maxBufferSize: adapter.limits.maxBufferSize } });
  const largest = await largestBuffer(device, adapter.limits.maxBufferSize);
  // Fill with the largest power-of-two piece that allocates (at most 1 GiB).
  let piece = Math.min(1 << 30, adapter.limits.maxBufferSize);
  while (piece > largest && piece > 16 << 20) piece /= 2;
  const fill = new Uint8Array(64 << 20).fill(1);
  const held: GPUBuffer[] = [];
  let stoppedBy = `the probe's cap of ${capGiB} GiB`;
  try {
    while (held.length * piece < capGiB * 2 ** 30) {
      device.pushErrorScope('out-of-memory');
      const buffer = device.createBuffer({ size: piece, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
      for (let at = 0; at < piece; at += fill.byteLength) device.queue.writeBuffer(buffer, at, fill, 0, Math.min(fill.byteLength, piece - at));
      await device.queue.onSubmittedWorkDone();
      const error = await device.popErrorScope();
      if (error) {
        buffer.destroy();
        stoppedBy = error.message.split('\n')[0];
        break;
      }
      held.push(buffer);
      console.log(`GPU memory probe: holding ${(held.length * piece) / 2 ** 30} GiB`);
    }
    return { largestBuffer: largest, piece, bytes: held.length * piece, stoppedBy };
  } finally {
    for (const b of held) b.destroy();
    device.destroy();
  }
}

async function limits(probeGiB: number): Promise<unknown> {
  const answer = await ask((requestId) => ({ kind: 'probe-gpu', requestId }));
  const adapter = await scope.navigator.gpu?.requestAdapter();
  return {
    gpuMemoryProbe: probeGiB > 0 ? await gpuMemoryProbe(probeGiB) : null,
    status: answer.kind === 'gpu-status' ? answer.status : null,
    adapterLimits: adapter ? { maxBufferSize: adapter.limits.maxBufferSize, maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize } : null,
    deviceMemoryGb: (navigator as Navigator & { deviceMemory?: number }).deviceMemory ?? null,
    storage: await navigator.storage.estimate(),
  };
}

async function run(req: ScaleRequest): Promise<unknown> {
  switch (req.op) {
    case 'limits':
      return limits(req.probeGiB);
    case 'write':
      return writeSet(req.set, req.shape, req.models);
    case 'merge':
      return merge(req);
    case 'clear': {
      const root = await navigator.storage.getDirectory();
      for (const name of ['scale', 'scale-out']) await root.removeEntry(name, { recursive: true }).catch(() => undefined);
      return null;
    }
  }
}

scope.addEventListener('message', (ev: MessageEvent<ScaleRequest & { id: number }>) => {
  const { id } = ev.data;
  run(ev.data).then(
    (value) => scope.postMessage({ id, ok: true, value } satisfies ScaleReply),
    (err: unknown) => scope.postMessage({ id, ok: false, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) } satisfies ScaleReply),
  );
});

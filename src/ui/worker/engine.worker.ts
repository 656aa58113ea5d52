/**
 * The engine worker: owns the GPU device and runs merges off the main thread. This file is only
 * the glue between `self` and EngineHost (host.ts), where the logic lives.
 */
/// <reference lib="webworker" />
import { CacheApiRangeCache } from '../../core/sources/cache-browser.ts';
import type { LimitedRangeCache } from '../../core/sources/cache.ts';
import { GpuContext } from '../../gpu/context.ts';
import type { GpuHandle } from '../../gpu/device.ts';
import { createGpuBackend } from '../../gpu/gpu-backend.ts';
import { createBrowserFastCpuBackend } from '../../gpu/cpu-fast/web-threads.ts';
import { EngineHost } from './host.ts';
import { isToWorker, ProtocolError, type FromWorker } from './protocol.ts';

const scope = self as unknown as DedicatedWorkerGlobalScope;

/** One context per device: it keeps the compiled pipelines between merges. */
const contexts = new WeakMap<GpuHandle, GpuContext>();

function rangeCache(): LimitedRangeCache | undefined {
  try {
    // 2 GB until the page sends the user's limit (decimal, as the studio shows sizes).
    return 'caches' in scope ? new CacheApiRangeCache({ maxBytes: 2e9 }) : undefined;
  } catch {
    return undefined;
  }
}

const host = new EngineHost({
  post: (message: FromWorker) => scope.postMessage(message),
  gpu: scope.navigator.gpu,
  createGpuBackend: (handle) => {
    let ctx = contexts.get(handle);
    if (!ctx) {
      ctx = GpuContext.fromHandle(handle, { ownsDevice: true });
      contexts.set(handle, ctx);
    }
    return createGpuBackend(ctx);
  },
  createCpuBackend: createBrowserFastCpuBackend,
  rangeCache: rangeCache(),
});

scope.addEventListener('message', (ev: MessageEvent) => {
  if (!isToWorker(ev.data)) {
    console.error(new ProtocolError(`the page sent a message outside the protocol: ${JSON.stringify(ev.data)?.slice(0, 200)}`));
    return;
  }
  void host.handle(ev.data);
});

/**
 * The fast CPU backend in a browser (the studio's engine worker, or a page): Web Workers running
 * threads.ts's script from a Blob URL when the context may share memory (crossOriginIsolated:
 * the page is served with COOP same-origin + COEP require-corp/credentialless), else one thread (the
 * calling one) with plain ArrayBuffers - still the fused, generated loops, just not parallel.
 */
import { FastCpuBackend } from './fast-backend.ts';
import type { WorkerFactory } from './threads.ts';

export const webWorkers: WorkerFactory = {
  host: 'web',
  start(source, onMessage, onFailure) {
    const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
    const worker = new Worker(url);
    worker.onmessage = (e) => onMessage(e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      onFailure(new Error(e.message || 'worker error'));
    };
    return {
      post: (m) => worker.postMessage(m),
      hold: () => undefined,
      terminate: () => {
        worker.terminate();
        URL.revokeObjectURL(url);
      },
    };
  },
};

/** Whether this browser context can run the backend's worker threads (shared memory allowed). */
export function canShareMemory(): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true && typeof Worker !== 'undefined';
}

/**
 * A fast CPU backend for this browser context: every core when memory can be shared, else one
 * thread. Encoded outputs are plain ArrayBuffers (Blobs and file writes refuse shared views).
 */
export function createBrowserFastCpuBackend(): FastCpuBackend {
  const threads = canShareMemory() ? Math.max(1, navigator.hardwareConcurrency || 1) : 1;
  return new FastCpuBackend({ threads, workers: threads > 1 ? webWorkers : undefined, sharedOutputs: false });
}

/**
 * The measurement page: starts the worker (worker.ts) and exposes `window.scale.run(request)` for
 * bench/browser-scale.ts (Playwright). Merge progress is logged to the console, which the driver prints.
 */
import type { ScaleReply, ScaleRequest } from './protocol.ts';

// The page's `?no-tab-limit` reaches the worker through its name (a worker's location is its script's).
const noTabLimit = new URLSearchParams(location.search).has('no-tab-limit');
const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: noTabLimit ? 'browser-scale no-tab-limit' : 'browser-scale' });
const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
let nextId = 1;
let lastLog = 0;

worker.addEventListener('message', (ev: MessageEvent<ScaleReply>) => {
  const msg = ev.data;
  if ('progress' in msg) {
    const now = Date.now();
    if (now - lastLog > 5000 || msg.progress.tensorsDone === msg.progress.tensorsTotal) {
      lastLog = now;
      console.log(`progress ${msg.progress.tensorsDone}/${msg.progress.tensorsTotal} ${msg.progress.currentTensor}`);
    }
    return;
  }
  const p = pending.get(msg.id);
  pending.delete(msg.id);
  if (msg.ok) p?.resolve(msg.value);
  else p?.reject(new Error(msg.error));
});
worker.addEventListener('error', (ev) => console.error(`worker error: ${ev.message}`));

function run(request: ScaleRequest): Promise<unknown> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ ...request, id });
  });
}

/** The page's own JS heap (Chrome's performance.memory; the worker's is not visible from here). */
function heap(): { used: number; limit: number } | null {
  const m = (performance as Performance & { memory?: { usedJSHeapSize: number; jsHeapSizeLimit: number } }).memory;
  return m ? { used: m.usedJSHeapSize, limit: m.jsHeapSizeLimit } : null;
}

declare global {
  interface Window {
    scale: { run: typeof run; heap: typeof heap };
  }
}
window.scale = { run, heap };

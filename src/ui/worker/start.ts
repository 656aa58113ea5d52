/** Starts the engine worker (a module worker, bundled by Vite from this URL). */
export function startEngineWorker(): Worker {
  return new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module', name: 'merge-studio-engine' });
}

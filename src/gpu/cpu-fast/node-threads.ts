/** Worker threads for Node (the CLI, the benchmark, tests): node:worker_threads running threads.ts's script. */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { WorkerFactory } from './threads.ts';

export const nodeWorkers: WorkerFactory = {
  host: 'node',
  start(source, onMessage, onFailure) {
    const worker = new Worker(source, { eval: true });
    worker.on('message', onMessage);
    worker.on('error', onFailure);
    worker.on('exit', (code) => {
      if (code !== 0) onFailure(new Error(`exited with code ${code}`));
    });
    worker.unref();
    return {
      post: (m) => worker.postMessage(m),
      hold: (held) => (held ? worker.ref() : worker.unref()),
      terminate: () => {
        worker.removeAllListeners('exit');
        void worker.terminate();
      },
    };
  },
};

/** Threads to use by default: every core the process may run on. */
export function nodeThreadCount(): number {
  return availableParallelism();
}

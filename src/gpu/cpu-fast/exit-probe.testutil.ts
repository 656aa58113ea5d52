/**
 * Child process of threads.test.ts: runs a merge-sized job on a 3-thread fast backend, prints how
 * many workers it started, then returns - keeping the backend (`keep`) or destroying it (`destroy`).
 * The test checks the process exits by itself either way (no worker keeps Node alive).
 */
import { FastCpuBackend } from './fast-backend.ts';
import { nodeWorkers } from './node-threads.ts';

const mode = process.argv[2];
const be = new FastCpuBackend({ threads: 3, workers: nodeWorkers });
const n = 1 << 20;
const x = be.fromArray(Float32Array.from({ length: n }, (_, i) => Math.sin(i)), [n]);
using y = await be.lincomb([{ x, coef: 2 }], 1);
await be.sumAbs(y);
console.log(`ok ${mode}: ${be.threads.workerCount} workers`);
if (mode === 'destroy') be.destroy();

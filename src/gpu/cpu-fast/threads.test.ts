/**
 * The worker pool of the fast CPU backend: jobs run on every thread, errors in a worker (or in a
 * kernel that does not compile) surface as errors naming the backend op, a failed worker is
 * replaced, and an idle pool keeps no thread alive: a process that never destroys its backend still
 * exits, and destroy stops the workers.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeWorkers } from './node-threads.ts';
import { ThreadPool, workerSource, type Job, type WorkerReply } from './threads.ts';

const pools: ThreadPool[] = [];
afterAll(() => pools.forEach((p) => p.destroy()));

function pool(threads: number): ThreadPool {
  const p = new ThreadPool({ threads, factory: nodeWorkers });
  pools.push(p);
  return p;
}

/**
 * A job of `chunks` chunks that writes slot + 1 into out[chunk] (who did which chunk). With
 * `waitForWorker`, the calling thread spins (up to 30 s) until a worker has started a chunk, so a
 * worker always takes part however busy the machine is; `onWorker` is what a worker's chunk runs
 * first (e.g. throws). out[chunks] is the flag a worker raises.
 */
function job(op: string, chunks: number, out: Int32Array, opts: { waitForWorker?: boolean; onWorker?: string } = {}): Job {
  const source = `
    'use strict';
    return {
      begin(slot) { return { slot }; },
      run(v, p, state, start, end, chunk) {
        const out = v[0];
        if (state.slot > 0) {
          Atomics.store(out, ${chunks}, 1);
          ${opts.onWorker ?? ''}
        } else if (p[0]) {
          const until = Date.now() + 30000;
          while (Atomics.load(out, ${chunks}) === 0 && Date.now() < until);
        }
        if (end > start) out[chunk] = state.slot + 1;
      },
      end() {},
    };`;
  return {
    op,
    source,
    bindings: [{ buffer: out.buffer, type: 'i32', byteOffset: 0, length: out.length, output: true }],
    params: Float64Array.from([opts.waitForWorker ? 1 : 0]),
    // Enough items for the pool to use its workers (small jobs stay on the calling thread).
    items: chunks * 4096,
    chunkItems: 4096,
  };
}

const shared = (n: number) => new Int32Array(new SharedArrayBuffer(4 * (n + 1)));

describe('fast CPU backend thread pool', () => {
  it('runs every chunk once, on the calling thread and the workers', async () => {
    const p = pool(3);
    const out = shared(40);
    await p.run(job('test op', 40, out, { waitForWorker: true }));
    const slots = [...out.subarray(0, 40)];
    expect(slots.every((s) => s >= 1 && s <= 3)).toBe(true);
    expect(slots.some((s) => s > 1)).toBe(true);
    expect(p.workerCount).toBe(2);
  });

  it('an error thrown in a worker fails the job with an error naming the op', async () => {
    const p = pool(2);
    const failing = job('keepRankBand', 20, shared(20), { waitForWorker: true, onWorker: "throw new Error('kernel failed on purpose');" });
    await expect(p.run(failing)).rejects.toThrow(/fast cpu backend: keepRankBand: worker 1: kernel failed on purpose/);
    // The pool still works afterwards.
    const again = shared(20);
    await p.run(job('encode', 20, again, { waitForWorker: true }));
    expect([...again.subarray(0, 20)].every((s) => s >= 1)).toBe(true);
  });

  it('a kernel that does not compile fails with an error naming the op', async () => {
    const p = pool(2);
    const broken = { ...job('gram', 4, shared(4)), source: 'return {' };
    await expect(p.run(broken)).rejects.toThrow(/fast cpu backend: gram: generated kernel does not compile/);
  });

  it('a worker that dies fails the job in flight; the next job starts new workers', async () => {
    const p = pool(2);
    const dying = job('sumAbs', 20, shared(20), { waitForWorker: true, onWorker: 'process.exit(3);' });
    await expect(p.run(dying)).rejects.toThrow(/fast cpu backend: sumAbs: .*worker 1 failed: exited with code 3/);
    const again = shared(20);
    await p.run(job('encode', 20, again, { waitForWorker: true }));
    expect(new Set(again.subarray(0, 20)).size).toBe(2);
  });

  it('the Web Worker script runs jobs with nothing but `self` (no Node API)', () => {
    const posted: WorkerReply[] = [];
    const self: { postMessage: (m: WorkerReply) => void; onmessage?: (e: { data: unknown }) => void } = { postMessage: (m) => posted.push(m) };
    new Function('self', 'require', 'process', workerSource('web'))(self, undefined, undefined);
    const out = shared(6);
    const j = job('lincomb', 6, out);
    const counter = new Int32Array(new SharedArrayBuffer(8));
    self.onmessage!({ data: { kind: 'job', id: 7, kernel: 1, source: j.source, buffers: [out.buffer], views: [[0, 'i32', 0, out.length]], params: j.params, counter, chunks: 6, chunkItems: 4096, items: 6 * 4096, slot: 2 } });
    expect(posted).toEqual([{ kind: 'done', id: 7 }]);
    expect([...out.subarray(0, 6)]).toEqual([3, 3, 3, 3, 3, 3]);
    expect([...counter]).toEqual([7, 6]);
  });

  it('an idle pool keeps no thread alive: the process exits without destroy, and with it', async () => {
    const run = promisify(execFile);
    const probe = resolve(__dirname, 'exit-probe.testutil.ts');
    for (const mode of ['keep', 'destroy']) {
      const started = Date.now();
      const { stdout } = await run(process.execPath, [resolve(__dirname, '../../../bin/run-ts.mjs'), probe, mode], { timeout: 60_000 });
      expect(stdout.trim()).toBe(`ok ${mode}: 2 workers`);
      expect(Date.now() - started).toBeLessThan(60_000);
    }
  });
});

/**
 * Runs generated kernels (codegen.ts) over item ranges on the calling thread and on worker threads.
 *
 * A job is cut into fixed-size chunks (the size never depends on the thread count, so per-chunk
 * partial sums, and with them every result, are the same with any number of threads); each thread
 * takes the next chunk from a shared atomic counter until none is left, so a core slowed by other
 * work simply does fewer chunks. The calling thread works too: N threads = N - 1 workers + the
 * caller. One message per worker per job (a kernel's source travels once per worker; later jobs name
 * it by id), one reply. Workers are referenced (keep Node alive) only while a job is in flight.
 *
 * Threads need SharedArrayBuffers; a job that binds an unshared buffer, or too little work to be
 * worth the messages, runs on the calling thread alone.
 */
import type { ViewType } from './buffers.ts';
import type { Binding } from './codegen.ts';
import { makeRuntime, type KernelRuntime } from './runtime.ts';

/** A worker thread as the pool sees it (node:worker_threads Worker or Web Worker, see node-threads.ts / web-threads.ts). */
export interface WorkerPort {
  post(message: WorkerRequest): void;
  /** Keep the process alive while true (Node); a no-op elsewhere. */
  hold(held: boolean): void;
  terminate(): void;
}

/** Starts workers: `host` says which script they run (workerSource). */
export interface WorkerFactory {
  readonly host: 'node' | 'web';
  /** A worker running `source` (a classic script); replies and failures go to the callbacks. */
  start(source: string, onMessage: (m: WorkerReply) => void, onFailure: (error: Error) => void): WorkerPort;
}

export type WorkerRequest = {
  kind: 'job';
  id: number;
  kernel: number;
  /** The kernel's source, the first time this worker runs it. */
  source?: string;
  buffers: ArrayBufferLike[];
  /** [buffer index, view type, byte offset, length] per binding. */
  views: [number, ViewType, number, number][];
  params: Float64Array;
  counter: Int32Array;
  chunks: number;
  chunkItems: number;
  items: number;
  slot: number;
};

export type WorkerReply = { kind: 'done'; id: number } | { kind: 'failed'; id: number; message: string };

export interface Job {
  /** The backend op, for error messages. */
  op: string;
  source: string;
  bindings: Binding[];
  params: Float64Array;
  /** Elements or rows. */
  items: number;
  /** Items per chunk (results per chunk are indexed by chunk number). */
  chunkItems: number;
  /** First chunk to run (earlier ones are skipped). @default 0 */
  startChunk?: number;
  /** Run on the calling thread alone (the caller knows the job is too small to be worth the messages). */
  serial?: boolean;
}

/** Print each new kernel's source (MERGE_STUDIO_DUMP_KERNELS=1, Node), to read or profile what runs. */
const DUMP_KERNELS = typeof process !== 'undefined' && !!process.env?.MERGE_STUDIO_DUMP_KERNELS;

/** Items below which a job runs on the calling thread alone (messages cost tens of µs). */
const MIN_PARALLEL_WORK = 1 << 15;

/** A compiled kernel on one thread (see codegen.ts). */
interface Kernel {
  /** Set once the thread has warmed the kernel up (see runChunks). */
  warm?: boolean;
  begin(slot: number): unknown;
  run(v: unknown[], p: Float64Array, s: unknown, start: number, end: number, chunk: number): void;
  end(v: unknown[], p: Float64Array, s: unknown, slot: number): void;
}
type Factory = (rt: KernelRuntime) => Kernel;

/** Build the typed views of a job (the same on every thread). Self-contained (workers get its source). */
function viewsOf(buffers: readonly ArrayBufferLike[], specs: readonly [number, ViewType, number, number][]): unknown[] {
  const ctors = { u8: Uint8Array, u16: Uint16Array, u32: Uint32Array, i32: Int32Array, f32: Float32Array, f64: Float64Array } as const;
  return specs.map(([b, type, offset, length]) => new ctors[type](buffers[b] as ArrayBuffer, offset, length));
}

/**
 * The chunk loop every thread runs for a job: take chunks from counter[0] until none is left, flush
 * per-thread state into `slot`, then add the chunks done to counter[1]. A thread that got no chunk
 * writes nothing (it may wake after the job is over and its buffers have been reused).
 */
function runChunks(k: Kernel, v: unknown[], params: Float64Array, counter: Int32Array, chunks: number, chunkItems: number, items: number, slot: number): void {
  let s: unknown = null;
  let done = 0;
  for (;;) {
    const c = Atomics.add(counter, 0, 1);
    if (c >= chunks) break;
    const start = c * chunkItems;
    if (s === null) {
      s = k.begin(slot);
      if (!k.warm) {
        // Empty ranges first, so that the code around the loop has type feedback before V8
        // optimizes the loop in flight (else the optimized code deoptimizes at the loop's end,
        // chunk after chunk). V8 allocates a function's feedback only after some calls' worth of
        // bytecode has run, hence many (cheap) calls.
        for (let w = 0; w < 64; w++) k.run(v, params, s, start, start, c);
        k.warm = true;
      }
    }
    k.run(v, params, s, start, Math.min(items, start + chunkItems), c);
    done++;
  }
  if (done > 0) {
    k.end(v, params, s, slot);
    Atomics.add(counter, 1, done);
  }
}

/**
 * The worker's message handler, shipped as source (with makeRuntime and runChunks): compiles each
 * kernel once and runs the jobs it is sent. Must stay self-contained.
 */
function workerMain(post: (m: WorkerReply) => void, mk: () => KernelRuntime, run: typeof runChunks, views: typeof viewsOf) {
  const rt = mk();
  const kernels = new Map<number, Kernel>();
  return (m: WorkerRequest) => {
    try {
      let k = kernels.get(m.kernel);
      if (!k) {
        if (m.source === undefined) throw new Error(`kernel ${m.kernel} was never sent`);
        k = (new Function('rt', m.source) as Factory)(rt);
        kernels.set(m.kernel, k);
      }
      run(k, views(m.buffers, m.views), m.params, m.counter, m.chunks, m.chunkItems, m.items, m.slot);
      post({ kind: 'done', id: m.id });
    } catch (e) {
      post({ kind: 'failed', id: m.id, message: e instanceof Error ? e.message : String(e) });
    }
  };
}

/** Bytes of buffers a Node worker is sent between two collections of its heap (see workerSource). */
const WORKER_COLLECT_BYTES = 256 << 20;

/**
 * Source of a worker script for `host` ('node': worker_threads' parentPort; 'web': self). Function
 * sources come from Function.prototype.toString; `__name` is the helper some transpilers (esbuild's
 * keepNames) call inside function bodies.
 */
export function workerSource(host: 'node' | 'web'): string {
  const lines = [
    "'use strict';",
    'var __name = (f) => f;',
    `const makeRuntime = (${makeRuntime.toString()});`,
    `const runChunks = (${runChunks.toString()});`,
    `const viewsOf = (${viewsOf.toString()});`,
    `const workerMain = (${workerMain.toString()});`,
  ];
  if (host === 'node') {
    lines.push(
      "const { parentPort } = require('node:worker_threads');",
      'const handle = workerMain((m) => parentPort.postMessage(m), makeRuntime, runChunks, viewsOf);',
      // Each job hands the worker new wrappers of the tensors' SharedArrayBuffers, and a worker's heap,
      // where little else is allocated, is seldom collected: its dead wrappers kept buffers the main
      // thread had let go of alive (0.5–0.9 GB of RSS on the mk set's TIES-family merges). So the
      // worker collects after every WORKER_COLLECT_BYTES of buffers it was sent (a few ms; Node
      // exposes gc to a running isolate once the flag is set; without it, nothing changes).
      "const collect = (() => { try { require('node:v8').setFlagsFromString('--expose-gc'); return require('node:vm').runInNewContext('gc'); } catch { return () => {}; } })();",
      'let sent = 0;',
      `parentPort.on('message', (m) => { handle(m); for (const b of m.buffers) sent += b.byteLength; if (sent >= ${WORKER_COLLECT_BYTES}) { sent = 0; collect(); } });`,
    );
  } else {
    lines.push('const handle = workerMain((m) => self.postMessage(m), makeRuntime, runChunks, viewsOf);', 'self.onmessage = (e) => handle(e.data);');
  }
  return lines.join('\n');
}

/** An error from a kernel, naming the backend op it ran for. */
export class KernelError extends Error {
  constructor(op: string, reason: string) {
    super(`fast cpu backend: ${op}: ${reason}`);
    this.name = 'KernelError';
  }
}

interface Pending {
  op: string;
  /** Workers that have not replied. */
  left: number;
  errors: string[];
  /** Every chunk is done (a worker that failed leaves its chunk undone). */
  finished: () => boolean;
  resolve: () => void;
}

interface WorkerState {
  port: WorkerPort;
  kernels: Set<number>;
}

export interface ThreadPoolOptions {
  /** Threads in all, the calling one included (1: no workers). */
  threads: number;
  /** Makes workers; required when threads > 1. */
  factory?: WorkerFactory;
}

export class ThreadPool {
  readonly threads: number;
  readonly #factory: WorkerFactory | undefined;
  readonly #rt = makeRuntime();
  /** Compiled kernels on this thread, and kernel ids, by source. */
  readonly #kernels = new Map<string, { id: number; kernel: Kernel }>();
  #workers: WorkerState[] | null = null;
  readonly #pending = new Map<number, Pending>();
  #nextJob = 1;
  #inFlight = 0;
  #destroyed = false;

  constructor(opts: ThreadPoolOptions) {
    this.#factory = opts.factory;
    this.threads = opts.factory ? Math.max(1, Math.floor(opts.threads)) : 1;
  }

  /** Workers started and alive (0 before the first parallel job and after destroy). */
  get workerCount(): number {
    return this.#workers?.length ?? 0;
  }

  /** Run a job to completion on this thread and the workers. */
  async run(job: Job): Promise<void> {
    if (this.#destroyed) throw new KernelError(job.op, 'the backend was destroyed');
    const kernel = this.#compile(job);
    const chunks = Math.ceil(job.items / job.chunkItems);
    const start = job.startChunk ?? 0;
    if (chunks <= start) return;
    // [next chunk, chunks done]
    const counter = new Int32Array(typeof SharedArrayBuffer !== 'undefined' && this.threads > 1 ? new SharedArrayBuffer(8) : new ArrayBuffer(8));
    counter[0] = start;
    const buffers: ArrayBufferLike[] = [];
    const index = new Map<ArrayBufferLike, number>();
    const views: [number, ViewType, number, number][] = job.bindings.map((b) => {
      let at = index.get(b.buffer);
      if (at === undefined) {
        at = buffers.length;
        buffers.push(b.buffer);
        index.set(b.buffer, at);
      }
      return [at, b.type, b.byteOffset, b.length];
    });
    const parallel =
      this.threads > 1 &&
      !job.serial &&
      chunks - start > 1 &&
      (job.items - start * job.chunkItems) * Math.max(1, job.bindings.length) >= MIN_PARALLEL_WORK &&
      counter.buffer instanceof SharedArrayBuffer &&
      buffers.every((b) => b instanceof SharedArrayBuffer);
    const v = viewsOf(buffers, views);
    if (!parallel) {
      this.#runHere(job, kernel.kernel, v, counter, chunks, 0);
      return;
    }
    const workers = this.#startWorkers();
    const helpers = workers.slice(0, Math.min(workers.length, chunks - start - 1));
    const id = this.#nextJob++;
    let resolve!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    const finished = () => Atomics.load(counter, 1) === chunks - start;
    const pending: Pending = { op: job.op, left: helpers.length, errors: [], finished, resolve };
    this.#pending.set(id, pending);
    this.#hold(+1);
    try {
      helpers.forEach((w, k) => {
        const first = !w.kernels.has(kernel.id);
        w.kernels.add(kernel.id);
        w.port.post({
          kind: 'job',
          id,
          kernel: kernel.id,
          source: first ? job.source : undefined,
          buffers,
          views,
          params: job.params,
          counter,
          chunks,
          chunkItems: job.chunkItems,
          items: job.items,
          slot: k + 1,
        });
      });
      let mine: unknown;
      try {
        this.#runHere(job, kernel.kernel, v, counter, chunks, 0);
      } catch (e) {
        mine = e;
      }
      // Workers that took no chunk (not scheduled yet on a busy machine) are not waited for.
      if (mine || !finished()) await done;
      if (mine) throw mine;
      if (pending.errors.length > 0) throw new KernelError(job.op, pending.errors.join('; '));
    } finally {
      this.#pending.delete(id);
      this.#hold(-1);
    }
  }

  /** Stop the workers (jobs in flight fail). Safe to call twice. */
  destroy(): void {
    this.#destroyed = true;
    this.#stopWorkers(new Error('the backend was destroyed'));
  }

  #runHere(job: Job, kernel: Kernel, v: unknown[], counter: Int32Array, chunks: number, slot: number): void {
    try {
      runChunks(kernel, v, job.params, counter, chunks, job.chunkItems, job.items, slot);
    } catch (e) {
      throw new KernelError(job.op, e instanceof Error ? e.message : String(e));
    }
  }

  #compile(job: Job): { id: number; kernel: Kernel } {
    let k = this.#kernels.get(job.source);
    if (!k) {
      let factory: Factory;
      try {
        factory = new Function('rt', job.source) as Factory;
      } catch (e) {
        throw new KernelError(job.op, `generated kernel does not compile: ${(e as Error).message}\n${job.source}`);
      }
      k = { id: this.#kernels.size + 1, kernel: factory(this.#rt) };
      if (DUMP_KERNELS) console.error(`fast cpu backend: kernel ${k.id} for ${job.op}:\n${job.source}\n`);
      this.#kernels.set(job.source, k);
    }
    return k;
  }

  #startWorkers(): WorkerState[] {
    if (this.#workers) return this.#workers;
    const factory = this.#factory!;
    const source = workerSource(factory.host);
    const workers: WorkerState[] = [];
    for (let k = 0; k < this.threads - 1; k++) {
      const state: WorkerState = {
        port: factory.start(
          source,
          (m) => this.#onReply(m, k),
          (error) => this.#stopWorkers(new Error(`worker ${k + 1} failed: ${error.message}`)),
        ),
        kernels: new Set(),
      };
      workers.push(state);
    }
    this.#workers = workers;
    this.#hold(0);
    return workers;
  }

  #onReply(m: WorkerReply, worker: number): void {
    const p = this.#pending.get(m.id);
    if (!p) return;
    if (m.kind === 'failed') p.errors.push(`worker ${worker + 1}: ${m.message}`);
    if (--p.left === 0 || (p.errors.length === 0 && p.finished())) p.resolve();
  }

  /** Every job in flight fails with `why`; the workers go (new ones start with the next job). */
  #stopWorkers(why: Error): void {
    const workers = this.#workers;
    this.#workers = null;
    for (const w of workers ?? []) w.port.terminate();
    for (const p of this.#pending.values()) {
      p.errors.push(why.message);
      p.left = 0;
      p.resolve();
    }
  }

  #hold(delta: number): void {
    this.#inFlight += delta;
    for (const w of this.#workers ?? []) w.port.hold(this.#inFlight > 0);
  }
}

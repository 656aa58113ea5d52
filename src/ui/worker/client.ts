/**
 * The page's side of the engine worker: one typed method per request, each answered through a
 * promise. Progress arrives through callbacks; a merge can be cancelled. The worker (or, in tests,
 * an in-process host) sits behind a MessagePort-like `EnginePort`.
 */
import type { AnalysisProgress, AnalysisResult, ModelSetStats } from '../../gpu/analysis/types.ts';
import {
  assertNever,
  isFromWorker,
  ProtocolError,
  type AnalysisRequest,
  type BackendSpeeds,
  type CompatReportInfo,
  type ErrorInfo,
  type FromWorker,
  type JobFailed,
  type GpuStatus,
  type MergeProgressInfo,
  type MergeRequest,
  type MergeResultInfo,
  type ModelSummary,
  type RangeCacheInfo,
  type SourceDescription,
  type SourceProgressInfo,
  type ToWorker,
} from './protocol.ts';
import type { LoraProgressInfo, LoraRequest, LoraResult } from './lora-protocol.ts';
import type { ScoreProgressInfo, ScoreRequest, ScoreResult } from './score-protocol.ts';

/** A failure reported by the engine worker; `name` is the original error class (HubAccessError...). */
export class EngineError extends Error {
  readonly info: ErrorInfo;
  constructor(info: ErrorInfo) {
    super(info.message);
    this.name = info.name;
    this.info = info;
  }
}

/** What the store needs from the engine: the worker in the page, a fake in tests. */
export interface EngineApi {
  open(ref: string, source: SourceDescription, onProgress?: (bytesReceived: number, bytesExpected: number) => void): Promise<ModelSummary>;
  forget(ref: string): void;
  check(refs: string[], baseRef: string | null): Promise<CompatReportInfo>;
  probeGpu(): Promise<GpuStatus>;
  /** Time the same small analysis on both backends (for a software GPU adapter, where either may win). Optional for test fakes. */
  measureBackends?(): Promise<BackendSpeeds>;
  /** `onSourceProgress` hears what each Hub model of the merge has delivered. */
  merge(request: MergeRequest, onProgress: (p: MergeProgressInfo) => void, onSourceProgress?: (p: SourceProgressInfo) => void): MergeHandle;
  /** The Hub range cache's size and limit. */
  cacheInfo(): Promise<RangeCacheInfo>;
  /** A new limit; entries over it are evicted at once. */
  setCacheLimit(maxBytes: number): Promise<RangeCacheInfo>;
  clearCache(): Promise<RangeCacheInfo>;
  /** Task-vector statistics of the recipe's models. Optional so test fakes that do not analyze can leave it out. */
  analyze?(request: AnalysisRequest, onProgress: (p: AnalysisProgress) => void): AnalysisHandle;
  /** Scores of the inputs and the merge (the scoreboard). Optional for test fakes. */
  score?(request: ScoreRequest, onProgress: (p: ScoreProgressInfo) => void): ScoreHandle;
  /** The merge as a LoRA of its base: the rank/error curve, and an adapter of one rank. Optional for test fakes. */
  lora?(request: LoraRequest, onProgress: (p: LoraProgressInfo) => void): LoraHandle;
}

type Cancelled = { status: 'cancelled' };

/** A job started in the worker (merge, analysis, scores, LoRA export). */
export interface JobHandle<Outcome> {
  readonly jobId: number;
  /** Resolves when the job ends (done or cancelled); rejects with EngineError when it fails. */
  readonly outcome: Promise<Outcome>;
  cancel(): void;
}

export type LoraOutcome = { status: 'done'; result: LoraResult } | Cancelled;
export type LoraHandle = JobHandle<LoraOutcome>;
export type ScoreOutcome = { status: 'done'; result: ScoreResult } | Cancelled;
export type ScoreHandle = JobHandle<ScoreOutcome>;
export type AnalysisOutcome = { status: 'done'; result: AnalysisResult } | Cancelled;
export type AnalysisHandle = JobHandle<AnalysisOutcome>;
export type MergeOutcome = { status: 'done'; result: MergeResultInfo; download: { name: string; blob: Blob } | null } | Cancelled;
export type MergeHandle = JobHandle<MergeOutcome>;

/** The part of Worker / MessagePort the client uses. */
export interface EnginePort {
  postMessage(message: ToWorker): void;
  addEventListener(type: 'message', listener: (ev: MessageEvent) => void): void;
  addEventListener(type: 'error', listener: (ev: Event) => void): void;
}

type Answer = Extract<FromWorker, { requestId: number }>;

interface Pending {
  settle(msg: Answer): void;
  fail(error: EngineError): void;
  progress?: (bytesReceived: number, bytesExpected: number) => void;
}

interface RunningJob<Done, Listener> {
  resolve(outcome: Done | Cancelled): void;
  reject(error: EngineError): void;
  listener: Listener;
}

/** The running jobs of one kind: started with a message, ended by `<kind>-done` or `<kind>-failed`. */
class JobTable<Done, Listener> {
  readonly #running = new Map<number, RunningJob<Done, Listener>>();

  /** Registers the job and posts its message; the handle's cancel asks the worker while it runs. */
  start(port: EnginePort, message: Extract<ToWorker, { jobId: number }>, listener: Listener): JobHandle<Done | Cancelled> {
    const { jobId } = message;
    const outcome = new Promise<Done | Cancelled>((resolve, reject) => this.#running.set(jobId, { resolve, reject, listener }));
    port.postMessage(message);
    return {
      jobId,
      outcome,
      cancel: () => {
        if (this.#running.has(jobId)) port.postMessage({ kind: 'cancel', jobId });
      },
    };
  }

  listener(jobId: number): Listener | undefined {
    return this.#running.get(jobId)?.listener;
  }

  /** The job, no longer running (its last message came). */
  take(jobId: number): RunningJob<Done, Listener> | undefined {
    const job = this.#running.get(jobId);
    this.#running.delete(jobId);
    return job;
  }

  failed(msg: JobFailed<string>): void {
    const job = this.take(msg.jobId);
    if (msg.cancelled) job?.resolve({ status: 'cancelled' });
    else job?.reject(new EngineError(msg.error));
  }

  failAll(error: EngineError): void {
    for (const job of this.#running.values()) job.reject(error);
    this.#running.clear();
  }
}

type Done<O> = Exclude<O, Cancelled>;
type Progress<P> = (p: P) => void;

export class EngineClient implements EngineApi {
  readonly #port: EnginePort;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #merges = new JobTable<Done<MergeOutcome>, { progress: Progress<MergeProgressInfo>; sourceProgress?: Progress<SourceProgressInfo> }>();
  readonly #analyses = new JobTable<Done<AnalysisOutcome>, Progress<AnalysisProgress>>();
  /** The last model statistics received (the worker does not send the same ones again). */
  #modelStats: ModelSetStats | null = null;
  readonly #scores = new JobTable<Done<ScoreOutcome>, Progress<ScoreProgressInfo>>();
  readonly #loras = new JobTable<Done<LoraOutcome>, Progress<LoraProgressInfo>>();

  constructor(port: EnginePort) {
    this.#port = port;
    port.addEventListener('message', (ev: MessageEvent) => this.#receive(ev.data));
    port.addEventListener('error', (ev: Event) => {
      // A worker that fails to load or throws at top level: fail everything waiting on it.
      const message = (ev as ErrorEvent).message || 'the engine worker stopped (failed to load or crashed)';
      this.#failAll(new EngineError({ name: 'WorkerError', message }));
    });
  }

  open(ref: string, source: SourceDescription, onProgress?: (bytesReceived: number, bytesExpected: number) => void): Promise<ModelSummary> {
    return this.#request((requestId) => ({ kind: 'open', requestId, ref, source }), onProgress).then((msg) => {
      if (msg.kind !== 'opened') throw unexpected(msg, 'opened');
      return msg.summary;
    });
  }

  forget(ref: string): void {
    this.#port.postMessage({ kind: 'forget', ref });
  }

  check(refs: string[], baseRef: string | null): Promise<CompatReportInfo> {
    return this.#request((requestId) => ({ kind: 'check', requestId, refs, baseRef })).then((msg) => {
      if (msg.kind !== 'checked') throw unexpected(msg, 'checked');
      return msg.report;
    });
  }

  measureBackends(): Promise<BackendSpeeds> {
    return this.#request((requestId) => ({ kind: 'measure-backends', requestId })).then((msg) => {
      if (msg.kind !== 'backend-speeds') throw unexpected(msg, 'backend-speeds');
      return msg.speeds;
    });
  }

  probeGpu(): Promise<GpuStatus> {
    return this.#request((requestId) => ({ kind: 'probe-gpu', requestId })).then((msg) => {
      if (msg.kind !== 'gpu-status') throw unexpected(msg, 'gpu-status');
      return msg.status;
    });
  }

  merge(request: MergeRequest, onProgress: Progress<MergeProgressInfo>, onSourceProgress?: Progress<SourceProgressInfo>): MergeHandle {
    return this.#merges.start(this.#port, { kind: 'merge', jobId: this.#nextId++, request }, { progress: onProgress, sourceProgress: onSourceProgress });
  }

  analyze(request: AnalysisRequest, onProgress: Progress<AnalysisProgress>): AnalysisHandle {
    return this.#analyses.start(this.#port, { kind: 'analyze', jobId: this.#nextId++, request, heldModelStats: this.#modelStats?.key }, onProgress);
  }

  score(request: ScoreRequest, onProgress: Progress<ScoreProgressInfo>): ScoreHandle {
    return this.#scores.start(this.#port, { kind: 'score', jobId: this.#nextId++, request }, onProgress);
  }

  lora(request: LoraRequest, onProgress: Progress<LoraProgressInfo>): LoraHandle {
    return this.#loras.start(this.#port, { kind: 'lora', jobId: this.#nextId++, request }, onProgress);
  }

  cacheInfo(): Promise<RangeCacheInfo> {
    return this.#cacheRequest((requestId) => ({ kind: 'cache-info', requestId }));
  }

  setCacheLimit(maxBytes: number): Promise<RangeCacheInfo> {
    return this.#cacheRequest((requestId) => ({ kind: 'set-cache-limit', requestId, maxBytes }));
  }

  clearCache(): Promise<RangeCacheInfo> {
    return this.#cacheRequest((requestId) => ({ kind: 'clear-cache', requestId }));
  }

  #cacheRequest(make: (requestId: number) => ToWorker): Promise<RangeCacheInfo> {
    return this.#request(make).then((msg) => {
      if (msg.kind !== 'cache-status') throw unexpected(msg, 'cache-status');
      return msg.cache;
    });
  }

  #request(make: (requestId: number) => ToWorker, progress?: Pending['progress']): Promise<Answer> {
    const requestId = this.#nextId++;
    return new Promise<Answer>((resolve, reject) => {
      this.#pending.set(requestId, {
        settle: (msg) => (msg.kind === 'request-failed' ? reject(new EngineError(msg.error)) : resolve(msg)),
        fail: reject,
        progress,
      });
      this.#port.postMessage(make(requestId));
    });
  }

  #receive(data: unknown): void {
    if (!isFromWorker(data)) {
      console.error(new ProtocolError(`the engine worker sent a message outside the protocol: ${JSON.stringify(data)?.slice(0, 200)}`));
      return;
    }
    const msg = data;
    switch (msg.kind) {
      case 'load-progress':
        this.#pending.get(msg.requestId)?.progress?.(msg.bytesReceived, msg.bytesExpected);
        return;
      case 'opened':
      case 'checked':
      case 'gpu-status':
      case 'backend-speeds':
      case 'cache-status':
      case 'request-failed': {
        const pending = this.#pending.get(msg.requestId);
        if (!pending) return;
        this.#pending.delete(msg.requestId);
        pending.settle(msg);
        return;
      }
      case 'merge-progress':
        this.#merges.listener(msg.jobId)?.progress(msg.progress);
        return;
      case 'source-progress':
        this.#merges.listener(msg.jobId)?.sourceProgress?.(msg.progress);
        return;
      case 'merge-done':
        this.#merges.take(msg.jobId)?.resolve({ status: 'done', result: msg.result, download: msg.download });
        return;
      case 'analysis-progress':
        this.#analyses.listener(msg.jobId)?.(msg.progress);
        return;
      case 'analysis-done': {
        const job = this.#analyses.take(msg.jobId);
        // Model statistics are sent once per model set (the bulk of a result); later results refer to them.
        let result = msg.result;
        if (msg.sameModelStats !== undefined) {
          if (this.#modelStats?.key !== msg.sameModelStats) {
            job?.reject(new EngineError({ name: 'ProtocolError', message: `the engine referred to model statistics ${msg.sameModelStats} the page does not hold` }));
            return;
          }
          result = { ...result, modelStats: this.#modelStats };
        } else if (result.modelStats) {
          this.#modelStats = result.modelStats;
        }
        job?.resolve({ status: 'done', result });
        return;
      }
      case 'score-progress':
        this.#scores.listener(msg.jobId)?.(msg.progress);
        return;
      case 'score-done':
        this.#scores.take(msg.jobId)?.resolve({ status: 'done', result: msg.result });
        return;
      case 'lora-progress':
        this.#loras.listener(msg.jobId)?.(msg.progress);
        return;
      case 'lora-done':
        this.#loras.take(msg.jobId)?.resolve({ status: 'done', result: msg.result });
        return;
      case 'merge-failed':
        return this.#merges.failed(msg);
      case 'analysis-failed':
        return this.#analyses.failed(msg);
      case 'score-failed':
        return this.#scores.failed(msg);
      case 'lora-failed':
        return this.#loras.failed(msg);
      default:
        assertNever(msg, 'message from the engine worker');
    }
  }

  #failAll(error: EngineError): void {
    for (const p of this.#pending.values()) p.fail(error);
    this.#pending.clear();
    for (const jobs of [this.#merges, this.#analyses, this.#scores, this.#loras]) jobs.failAll(error);
  }
}

function unexpected(msg: FromWorker, wanted: string): ProtocolError {
  return new ProtocolError(`expected "${wanted}" from the engine worker, got "${msg.kind}"`);
}

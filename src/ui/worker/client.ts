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

export type LoraOutcome = { status: 'done'; result: LoraResult } | { status: 'cancelled' };

export interface LoraHandle {
  readonly jobId: number;
  /** Resolves when the job ends (done or cancelled); rejects with EngineError when it fails. */
  readonly outcome: Promise<LoraOutcome>;
  cancel(): void;
}

export type ScoreOutcome = { status: 'done'; result: ScoreResult } | { status: 'cancelled' };

export interface ScoreHandle {
  readonly jobId: number;
  /** Resolves when scoring ends (done or cancelled); rejects with EngineError when it fails. */
  readonly outcome: Promise<ScoreOutcome>;
  cancel(): void;
}

export type AnalysisOutcome = { status: 'done'; result: AnalysisResult } | { status: 'cancelled' };

export interface AnalysisHandle {
  readonly jobId: number;
  /** Resolves when the analysis ends (done or cancelled); rejects with EngineError when it fails. */
  readonly outcome: Promise<AnalysisOutcome>;
  cancel(): void;
}

export type MergeOutcome =
  | { status: 'done'; result: MergeResultInfo; download: { name: string; blob: Blob } | null }
  | { status: 'cancelled' };

export interface MergeHandle {
  readonly jobId: number;
  /** Resolves when the merge ends (done or cancelled); rejects with EngineError when it fails. */
  readonly outcome: Promise<MergeOutcome>;
  cancel(): void;
}

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

interface RunningAnalysis {
  resolve(outcome: AnalysisOutcome): void;
  reject(error: EngineError): void;
  progress(p: AnalysisProgress): void;
}

interface RunningJob {
  resolve(outcome: MergeOutcome): void;
  reject(error: EngineError): void;
  progress(p: MergeProgressInfo): void;
  sourceProgress?(p: SourceProgressInfo): void;
}

export class EngineClient implements EngineApi {
  readonly #port: EnginePort;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #jobs = new Map<number, RunningJob>();
  readonly #analyses = new Map<number, RunningAnalysis>();
  /** The last model statistics received (the worker does not send the same ones again). */
  #modelStats: ModelSetStats | null = null;
  readonly #scores = new Map<number, { resolve(o: ScoreOutcome): void; reject(e: EngineError): void; progress(p: ScoreProgressInfo): void }>();
  readonly #loras = new Map<number, { resolve(o: LoraOutcome): void; reject(e: EngineError): void; progress(p: LoraProgressInfo): void }>();

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

  merge(request: MergeRequest, onProgress: (p: MergeProgressInfo) => void, onSourceProgress?: (p: SourceProgressInfo) => void): MergeHandle {
    const jobId = this.#nextId++;
    const outcome = new Promise<MergeOutcome>((resolve, reject) => {
      this.#jobs.set(jobId, { resolve, reject, progress: onProgress, sourceProgress: onSourceProgress });
    });
    this.#port.postMessage({ kind: 'merge', jobId, request });
    return {
      jobId,
      outcome,
      cancel: () => {
        if (this.#jobs.has(jobId)) this.#port.postMessage({ kind: 'cancel', jobId });
      },
    };
  }

  analyze(request: AnalysisRequest, onProgress: (p: AnalysisProgress) => void): AnalysisHandle {
    const jobId = this.#nextId++;
    const outcome = new Promise<AnalysisOutcome>((resolve, reject) => {
      this.#analyses.set(jobId, { resolve, reject, progress: onProgress });
    });
    this.#port.postMessage({ kind: 'analyze', jobId, request, heldModelStats: this.#modelStats?.key });
    return {
      jobId,
      outcome,
      cancel: () => {
        if (this.#analyses.has(jobId)) this.#port.postMessage({ kind: 'cancel', jobId });
      },
    };
  }

  score(request: ScoreRequest, onProgress: (p: ScoreProgressInfo) => void): ScoreHandle {
    const jobId = this.#nextId++;
    const outcome = new Promise<ScoreOutcome>((resolve, reject) => {
      this.#scores.set(jobId, { resolve, reject, progress: onProgress });
    });
    this.#port.postMessage({ kind: 'score', jobId, request });
    return {
      jobId,
      outcome,
      cancel: () => {
        if (this.#scores.has(jobId)) this.#port.postMessage({ kind: 'cancel', jobId });
      },
    };
  }

  lora(request: LoraRequest, onProgress: (p: LoraProgressInfo) => void): LoraHandle {
    const jobId = this.#nextId++;
    const outcome = new Promise<LoraOutcome>((resolve, reject) => {
      this.#loras.set(jobId, { resolve, reject, progress: onProgress });
    });
    this.#port.postMessage({ kind: 'lora', jobId, request });
    return {
      jobId,
      outcome,
      cancel: () => {
        if (this.#loras.has(jobId)) this.#port.postMessage({ kind: 'cancel', jobId });
      },
    };
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
        this.#jobs.get(msg.jobId)?.progress(msg.progress);
        return;
      case 'source-progress':
        this.#jobs.get(msg.jobId)?.sourceProgress?.(msg.progress);
        return;
      case 'merge-done': {
        const job = this.#jobs.get(msg.jobId);
        this.#jobs.delete(msg.jobId);
        job?.resolve({ status: 'done', result: msg.result, download: msg.download });
        return;
      }
      case 'merge-failed': {
        const job = this.#jobs.get(msg.jobId);
        this.#jobs.delete(msg.jobId);
        if (msg.cancelled) job?.resolve({ status: 'cancelled' });
        else job?.reject(new EngineError(msg.error));
        return;
      }
      case 'analysis-progress':
        this.#analyses.get(msg.jobId)?.progress(msg.progress);
        return;
      case 'analysis-done': {
        const job = this.#analyses.get(msg.jobId);
        this.#analyses.delete(msg.jobId);
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
      case 'analysis-failed': {
        const job = this.#analyses.get(msg.jobId);
        this.#analyses.delete(msg.jobId);
        if (msg.cancelled) job?.resolve({ status: 'cancelled' });
        else job?.reject(new EngineError(msg.error));
        return;
      }
      case 'score-progress':
        this.#scores.get(msg.jobId)?.progress(msg.progress);
        return;
      case 'score-done': {
        const job = this.#scores.get(msg.jobId);
        this.#scores.delete(msg.jobId);
        job?.resolve({ status: 'done', result: msg.result });
        return;
      }
      case 'score-failed': {
        const job = this.#scores.get(msg.jobId);
        this.#scores.delete(msg.jobId);
        if (msg.cancelled) job?.resolve({ status: 'cancelled' });
        else job?.reject(new EngineError(msg.error));
        return;
      }
      case 'lora-progress':
        this.#loras.get(msg.jobId)?.progress(msg.progress);
        return;
      case 'lora-done': {
        const job = this.#loras.get(msg.jobId);
        this.#loras.delete(msg.jobId);
        job?.resolve({ status: 'done', result: msg.result });
        return;
      }
      case 'lora-failed': {
        const job = this.#loras.get(msg.jobId);
        this.#loras.delete(msg.jobId);
        if (msg.cancelled) job?.resolve({ status: 'cancelled' });
        else job?.reject(new EngineError(msg.error));
        return;
      }
      default:
        assertNever(msg, 'message from the engine worker');
    }
  }

  #failAll(error: EngineError): void {
    for (const p of this.#pending.values()) p.fail(error);
    this.#pending.clear();
    for (const j of this.#jobs.values()) j.reject(error);
    this.#jobs.clear();
    for (const a of this.#analyses.values()) a.reject(error);
    this.#analyses.clear();
    for (const s of this.#scores.values()) s.reject(error);
    this.#scores.clear();
    for (const l of this.#loras.values()) l.reject(error);
    this.#loras.clear();
  }
}

function unexpected(msg: FromWorker, wanted: string): ProtocolError {
  return new ProtocolError(`expected "${wanted}" from the engine worker, got "${msg.kind}"`);
}

/**
 * The typed interface between the page and the engine worker. Every message is a member of a
 * union keyed by `kind`, and each kind fixes its payload; both sides switch over `kind` exhaustively
 * (see `assertNever`). Everything here is structured-cloneable: models cross as descriptions
 * (a Hub reference, or File/Blob objects), never as objects with methods, and the export folder
 * crosses as a FileSystemDirectoryHandle.
 *
 * Requests that expect one answer carry a `requestId`; a merge carries a `jobId` that its progress,
 * result and cancel messages repeat.
 */
import type { Recipe } from '../../core/recipe/types.ts';
import type { AnalysisProgress, AnalysisResult } from '../../gpu/analysis/types.ts';
import type { LoraFromWorker, LoraToWorker } from './lora-protocol.ts';
import type { ScoreFromWorker, ScoreToWorker } from './score-protocol.ts';

/** Where a model's files are: read by the worker, which opens the model and keeps it until forgotten. */
export type SourceDescription =
  | {
      kind: 'hub';
      repo: string;
      revision: string;
      hubUrl: string;
      /** Sent only as an Authorization header by the worker; never in a URL, a recipe or a message. */
      accessToken?: string;
    }
  | {
      kind: 'files';
      /** For messages: the dropped folder's or file's name. */
      name: string;
      files: { path: string; blob: Blob }[];
    };

/** What a shelf card shows about an opened model. */
export interface ModelSummary {
  ref: string;
  /** The tree's name: `org/name@commit`, the dropped folder... */
  location: string;
  /** The Hub commit the revision resolved to. */
  commit?: string;
  tensorCount: number;
  parameterCount: number;
  /** Bytes of tensor data. */
  bytes: number;
  /** Tensor counts per dtype, most common first. */
  dtypes: { dtype: string; tensors: number }[];
  modelType: string | null;
  architecture: string | null;
  /** Layers for the curve editor's axis (config `num_hidden_layers`, else counted from tensor names). */
  numLayers: number;
  /** Non-weight files in the tree (tokenizer, config...), for the card's tooltip. */
  files: string[];
  /** Every tensor's name (a recipe's filters are checked against them). */
  tensorNames: string[];
}

/** An error as it crossed the worker boundary: its class name and message in words. */
export interface ErrorInfo {
  name: string;
  message: string;
}

export interface CompatReportInfo {
  ok: boolean;
  /** When not ok: how the models' configs differ, in words (shown before the per-tensor problems). */
  configDifferences: string[];
  /** Each problem in words (tensor and model named); any problem blocks the merge. */
  problems: string[];
  /** Things the merge handles but the user should know (vocab cut, dtype casts). */
  notes: string[];
}

export type GpuStatus =
  | {
      status: 'ready';
      adapter: string;
      vendor: string;
      architecture: string;
      limits: Record<string, number>;
      /** A software adapter (e.g. SwiftShader): shaders run on the CPU, where the CPU backend is faster. */
      software: boolean;
    }
  | { status: 'unavailable'; error: ErrorInfo };

export type BackendChoice = 'gpu' | 'cpu';

/** The same small analysis timed on each backend (worker/calibrate.ts), in milliseconds. */
export interface BackendSpeeds {
  gpuMs: number;
  cpuMs: number;
}

/** Where the merged files go. */
export type OutputTarget =
  | {
      kind: 'directory';
      /** The folder the user picked (or an OPFS folder in tests); the model goes into `folderName` inside it. */
      parent: FileSystemDirectoryHandle;
      folderName: string;
    }
  | {
      kind: 'download';
      /** The archive's name, without `.zip`; also the folder name inside it. */
      folderName: string;
    };

export interface MergeRequest {
  recipe: Recipe;
  backend: BackendChoice;
  output: OutputTarget;
  seed: number;
  maxShardBytes: number;
}

/** Task-vector statistics of a recipe's models (src/gpu/analysis); cancelled with `cancel` and its jobId. */
export interface AnalysisRequest {
  recipe: Recipe;
  backend: BackendChoice;
  /** The merge's seed, so random masks are the ones a merge would draw. */
  seed: number;
  /** Which statistics (default both); model statistics are cached per model set in the worker. */
  parts?: { model?: boolean; recipe?: boolean };
}

export interface MergeProgressInfo {
  tensorsDone: number;
  tensorsTotal: number;
  bytesDone: number;
  bytesTotal: number;
  /** Output bytes per second since the start. */
  rate: number;
  currentTensor: string;
}

export interface MergeResultInfo {
  files: string[];
  tensors: number;
  bytes: number;
  seconds: number;
  /** Where it went, in words: `"merged-model" in the folder you picked`, or the download's name. */
  destination: string;
  backend: string;
}

/**
 * What one Hub model of a running merge has delivered so far (bytes read since the merge started).
 * `bytesReceived` never decreases within a job.
 */
export interface SourceProgressInfo {
  ref: string;
  /** Tensor bytes delivered to the merge: from the network and from the range cache. */
  bytesReceived: number;
  /** The model's tensor bytes: what the merge reads of it. */
  bytesExpected: number;
  /** Of `bytesReceived`, the bytes the range cache gave. */
  cachedBytes: number;
  /** Network bytes per second over the last couple of seconds. */
  rate: number;
  /** The merge ended (done, failed or cancelled): this is the model's last report of the job. */
  done: boolean;
}

/** The worker's cache of Hub byte ranges. */
export type RangeCacheInfo =
  | { available: true; bytes: number; maxBytes: number }
  | { available: false; reason: string };

/** Page → worker. */
export type ToWorker =
  | { kind: 'open'; requestId: number; ref: string; source: SourceDescription }
  | { kind: 'forget'; ref: string }
  | { kind: 'check'; requestId: number; refs: string[]; baseRef: string | null }
  | { kind: 'probe-gpu'; requestId: number }
  | { kind: 'measure-backends'; requestId: number }
  | { kind: 'merge'; jobId: number; request: MergeRequest }
  /**
   * `heldModelStats`: the key of the model statistics the page already holds (they are not sent again).
   * A newer `analyze` supersedes one still running or waiting: that one answers cancelled.
   */
  | { kind: 'analyze'; jobId: number; request: AnalysisRequest; heldModelStats?: string }
  | { kind: 'cancel'; jobId: number }
  | { kind: 'cache-info'; requestId: number }
  | { kind: 'set-cache-limit'; requestId: number; maxBytes: number }
  | { kind: 'clear-cache'; requestId: number }
  | ScoreToWorker
  | LoraToWorker;

/** Worker → page. */
export type FromWorker =
  | { kind: 'opened'; requestId: number; summary: ModelSummary }
  | { kind: 'load-progress'; requestId: number; bytesReceived: number; bytesExpected: number }
  | { kind: 'checked'; requestId: number; report: CompatReportInfo }
  | { kind: 'gpu-status'; requestId: number; status: GpuStatus }
  | { kind: 'backend-speeds'; requestId: number; speeds: BackendSpeeds }
  | { kind: 'request-failed'; requestId: number; error: ErrorInfo }
  | { kind: 'merge-progress'; jobId: number; progress: MergeProgressInfo }
  | { kind: 'source-progress'; jobId: number; progress: SourceProgressInfo }
  | { kind: 'cache-status'; requestId: number; cache: RangeCacheInfo }
  | { kind: 'merge-done'; jobId: number; result: MergeResultInfo; download: { name: string; blob: Blob } | null }
  | JobFailed<'merge'>
  | { kind: 'analysis-progress'; jobId: number; progress: AnalysisProgress }
  /** `sameModelStats`: the result's model statistics are the page's held ones (sent as null). */
  | { kind: 'analysis-done'; jobId: number; result: AnalysisResult; sameModelStats?: string }
  | JobFailed<'analysis'>
  | ScoreFromWorker
  | LoraFromWorker;

/** A job's last message when it did not finish: `cancelled` when it stopped on request. */
export type JobFailed<K extends string> = { kind: `${K}-failed`; jobId: number; error: ErrorInfo; cancelled: boolean };

/** A job the page starts with a request: `K` in, then `K-progress` reports and `K-done` or `K-failed` out. */
export type JobToWorker<K extends string, Request> = { kind: K; jobId: number; request: Request };

export type JobFromWorker<K extends string, Progress, Result> =
  | { kind: `${K}-progress`; jobId: number; progress: Progress }
  | { kind: `${K}-done`; jobId: number; result: Result }
  | JobFailed<K>;

export type ToWorkerKind = ToWorker['kind'];
export type FromWorkerKind = FromWorker['kind'];

/** Ends an exhaustive switch: a new message kind that is not handled fails to compile here. */
export function assertNever(value: never, what: string): never {
  throw new ProtocolError(`unexpected ${what}: ${JSON.stringify((value as { kind?: unknown })?.kind ?? value)}`);
}

/** A message that is not part of the protocol (a bug, or a stale worker build). */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

const FROM_WORKER_KINDS: readonly FromWorkerKind[] = [
  'opened',
  'load-progress',
  'checked',
  'gpu-status',
  'backend-speeds',
  'request-failed',
  'merge-progress',
  'source-progress',
  'cache-status',
  'merge-done',
  'merge-failed',
  'analysis-progress',
  'analysis-done',
  'analysis-failed',
  'score-progress',
  'score-done',
  'score-failed',
  'lora-progress',
  'lora-done',
  'lora-failed',
];
const TO_WORKER_KINDS: readonly ToWorkerKind[] = [
  'open',
  'forget',
  'check',
  'probe-gpu',
  'measure-backends',
  'merge',
  'analyze',
  'cancel',
  'cache-info',
  'set-cache-limit',
  'clear-cache',
  'score',
  'lora',
];

/** Checks the envelope of a message from the worker (the kind); payloads are trusted as typed. */
export function isFromWorker(data: unknown): data is FromWorker {
  return hasKind(data, FROM_WORKER_KINDS);
}

export function isToWorker(data: unknown): data is ToWorker {
  return hasKind(data, TO_WORKER_KINDS);
}

function hasKind(data: unknown, kinds: readonly string[]): boolean {
  return typeof data === 'object' && data !== null && kinds.includes((data as { kind?: unknown }).kind as string);
}

/** Any thrown value as ErrorInfo (the class name survives the worker boundary; the stack does not). */
export function toErrorInfo(err: unknown): ErrorInfo {
  if (err instanceof Error) return { name: err.name || 'Error', message: err.message };
  if (typeof err === 'object' && err !== null && 'name' in err && 'message' in err) {
    const e = err as { name: unknown; message: unknown };
    return { name: String(e.name), message: String(e.message) };
  }
  return { name: 'Error', message: String(err) };
}

/**
 * The engine worker's logic, apart from the `self.onmessage` glue so it can be tested in Node: it
 * opens models from their descriptions and keeps them by reference, checks compatibility, owns the
 * GPU device, and runs merges into the output folder it is handed, posting typed progress.
 */
import { checkCompatibility, type CompatModel } from '../../core/compat.ts';
import { numLayersOf } from '../../core/recipe/resolve.ts';
import { referencedModels } from '../../core/recipe/references.ts';
import { validateRecipe } from '../../core/recipe/validate.ts';
import { openModel } from '../../core/safetensors/model.ts';
import type { OutputFolder } from '../../core/safetensors/writer.ts';
import type { FileTree, ModelSource } from '../../core/source.ts';
import { blobFileTree } from '../../core/sources/blob.ts';
import type { LimitedRangeCache } from '../../core/sources/cache.ts';
import { openHubTree } from '../../core/sources/hub.ts';
import type { Backend } from '../../gpu/backend.ts';
import { CpuBackend } from '../../gpu/cpu-backend.ts';
import { adapterLabel, requestGpu, type GpuHandle } from '../../gpu/device.ts';
import { MergeCancelledError, MergeInputError, planMerge, runMerge, type MergeProgress } from '../../gpu/engine.ts';
import { checkTabMerge, tabMergeLimit } from '../../gpu/plan/tab-limit.ts';
import { AnalysisCancelledError, analyzeMerge } from '../../gpu/analysis/analyze.ts';
import { AnalysisCache, ResidentTensors } from '../../gpu/analysis/cache.ts';
import type { AnalysisOps } from '../../gpu/analysis/ops.ts';
import { analysisOpsFor } from '../../gpu/analysis/ops-for.ts';
import { GpuBackend } from '../../gpu/gpu-backend.ts';
import { methodLookup } from '../../gpu/methods/index.ts';
import { DirectoryOutputFolder } from '../export/directory-folder.ts';
import { DownloadOutputFolder } from '../export/download-folder.ts';
import {
  assertNever,
  toErrorInfo,
  type CompatReportInfo,
  type FromWorker,
  type GpuStatus,
  type AnalysisRequest,
  type BackendChoice,
  type BackendSpeeds,
  type MergeRequest,
  type ModelSummary,
  type RangeCacheInfo,
  type SourceDescription,
  type ToWorker,
} from './protocol.ts';
import { configDifferences } from '../compat-summary.ts';
import { timeAnalysis } from './calibrate.ts';
import { ScoreCancelledError, ScoreService } from './score-service.ts';
import type { ScoreRequest } from './score-protocol.ts';
import { LoraService } from './lora-service.ts';
import type { LoraRequest } from './lora-protocol.ts';
import { since, TransferMeter } from './transfer.ts';

export interface EngineHostOptions {
  post(message: FromWorker): void;
  /** `navigator.gpu` in the worker; undefined where WebGPU is missing. */
  gpu: GPU | undefined;
  /** Makes the WebGPU backend over the host's device (the host keeps the device across merges). */
  createGpuBackend?: (gpu: GpuHandle) => Backend | Promise<Backend>;
  /**
   * Makes the CPU backend. The worker gives the fast one (generated loops; every core when the page
   * is cross-origin isolated); the default is the reference, for tests in Node.
   */
  createCpuBackend?: () => Backend;
  fetch?: typeof fetch;
  /** Where Hub byte ranges are cached (the Cache API in the browser); its limit is a user setting. */
  rangeCache?: LimitedRangeCache;
  /** Least time between two progress messages of one request or job. @default 100 */
  progressIntervalMs?: number;
  /** Bytes one merge step may hold (see tab-limit.ts). @default tabMergeLimit(navigator.deviceMemory) */
  mergeStepLimit?: number;
}

/** Limits shown in the GPU status, in this order. */
const SHOWN_LIMITS = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupsPerDimension', 'maxStorageBuffersPerShaderStage'] as const;

export class EngineHost {
  readonly #opts: EngineHostOptions;
  readonly #models = new Map<string, ModelSource>();
  /** Opens in flight, so `forget` can stop one. */
  readonly #opening = new Map<string, AbortController>();
  readonly #jobs = new Map<number, AbortController>();
  /** What each opened Hub model has delivered, for per-model progress during merges. */
  readonly #meters = new Map<string, TransferMeter>();
  #gpu: Promise<GpuHandle> | null = null;
  /** Model statistics by model set, so a slider move re-runs only the recipe part of an analysis. */
  readonly #analysisCache = new AnalysisCache();
  /**
   * The analysis keeps its backend between runs (pipelines stay built while a slider moves), and on it
   * the inputs and kept entries of the last runs (ResidentTensors, which owns them).
   */
  #analysisOps: { choice: BackendChoice; ops: Promise<{ ops: AnalysisOps; resident: ResidentTensors }> } | null = null;
  /**
   * The analysis running or waiting to run (one at a time: runs share the resident tensors). A new
   * request supersedes it: the page only ever wants the numbers for the newest values.
   */
  #analysisRun: { controller: AbortController; done: Promise<void> } | null = null;
  /** One read wrapper per opened model, so the analysis cache sees the same source each run. */
  readonly #yielding = new WeakMap<ModelSource, ModelSource>();
  /** The scoreboard: input scores cached per model, the merge kept in memory (score-service.ts). */
  readonly #scores = new ScoreService({
    model: (ref) => {
      const m = this.#models.get(ref);
      if (!m) return undefined;
      let wrapped = this.#yielding.get(m);
      if (!wrapped) this.#yielding.set(m, (wrapped = yieldingReads(m)));
      return wrapped;
    },
    backend: (choice) => this.#backend(choice),
  });
  /** The LoRA export: the merge kept in memory between measuring and exporting (lora-service.ts). */
  readonly #loras = new LoraService({
    model: (ref) => {
      const m = this.#models.get(ref);
      return m && this.#yieldingOf(m);
    },
    backend: (choice) => this.#backend(choice),
    reading: yieldingReads,
  });

  constructor(opts: EngineHostOptions) {
    this.#opts = opts;
  }

  /** Handle one message; answers go out through `post`. Never throws. */
  async handle(msg: ToWorker): Promise<void> {
    switch (msg.kind) {
      case 'open':
        return this.#answer(msg.requestId, async () => ({
          kind: 'opened',
          requestId: msg.requestId,
          summary: await this.#open(msg.requestId, msg.ref, msg.source),
        }));
      case 'forget':
        this.#opening.get(msg.ref)?.abort();
        this.#opening.delete(msg.ref);
        this.#models.delete(msg.ref);
        this.#meters.delete(msg.ref);
        // Its decoded tensors would only wait for eviction.
        return this.#releaseAnalysisTensors();
      case 'check':
        return this.#answer(msg.requestId, async () => ({
          kind: 'checked',
          requestId: msg.requestId,
          report: this.#check(msg.refs, msg.baseRef),
        }));
      case 'probe-gpu':
        return this.#answer(msg.requestId, async () => ({
          kind: 'gpu-status',
          requestId: msg.requestId,
          status: await this.#probeGpu(),
        }));
      case 'measure-backends':
        return this.#answer(msg.requestId, async () => ({
          kind: 'backend-speeds',
          requestId: msg.requestId,
          speeds: await this.#measureBackends(),
        }));
      case 'merge':
        return this.#merge(msg.jobId, msg.request);
      case 'analyze':
        return this.#analyze(msg.jobId, msg.request, msg.heldModelStats);
      case 'score':
        return this.#score(msg.jobId, msg.request);
      case 'lora':
        return this.#lora(msg.jobId, msg.request);
      case 'cancel':
        this.#jobs.get(msg.jobId)?.abort();
        return;
      case 'cache-info':
        return this.#answerCache(msg.requestId, async () => undefined);
      case 'set-cache-limit':
        return this.#answerCache(msg.requestId, async (cache) => {
          if (!(Number.isSafeInteger(msg.maxBytes) && msg.maxBytes >= 0)) {
            throw new RangeError(`the cache limit must be a whole number of bytes >= 0, got ${msg.maxBytes}`);
          }
          await cache.setMaxBytes(msg.maxBytes);
        });
      case 'clear-cache':
        return this.#answerCache(msg.requestId, (cache) => cache.clear());
      default:
        assertNever(msg, 'message to the engine worker');
    }
  }

  async #answer(requestId: number, work: () => Promise<FromWorker>): Promise<void> {
    try {
      this.#opts.post(await work());
    } catch (err) {
      this.#opts.post({ kind: 'request-failed', requestId, error: toErrorInfo(err) });
    }
  }

  /** Run a cache operation (none for a plain query), then answer with the cache's size and limit. */
  #answerCache(requestId: number, op: (cache: LimitedRangeCache) => Promise<void>): Promise<void> {
    return this.#answer(requestId, async () => {
      const cache = this.#opts.rangeCache;
      let info: RangeCacheInfo;
      if (!cache) info = { available: false, reason: 'this browser gives the engine worker no Cache API storage' };
      else {
        await op(cache);
        info = { available: true, bytes: await cache.size(), maxBytes: cache.maxBytes };
      }
      return { kind: 'cache-status', requestId, cache: info };
    });
  }

  async #open(requestId: number, ref: string, source: SourceDescription): Promise<ModelSummary> {
    this.#opening.get(ref)?.abort();
    const controller = new AbortController();
    this.#opening.set(ref, controller);
    const meter = source.kind === 'hub' ? new TransferMeter() : null;
    const throttle = this.#throttle();
    // While opening, the meter's news is the open's progress (headers and configs).
    const stopLoadProgress = meter?.listen(() => {
      if (throttle()) this.#opts.post({ kind: 'load-progress', requestId, ...meter.filesProgress() });
    });
    try {
      const tree = await this.#tree(source, controller.signal, meter);
      const model = await openModel(tree, { id: ref, signal: controller.signal });
      controller.signal.throwIfAborted();
      this.#models.set(ref, model);
      if (meter) this.#meters.set(ref, meter);
      else this.#meters.delete(ref);
      return summarize(ref, model, tree, await tree.list(controller.signal));
    } finally {
      stopLoadProgress?.();
      if (this.#opening.get(ref) === controller) this.#opening.delete(ref);
    }
  }

  async #tree(source: SourceDescription, signal: AbortSignal, meter: TransferMeter | null): Promise<FileTree & { commit?: string }> {
    switch (source.kind) {
      case 'hub': {
        return openHubTree({
          repo: source.repo,
          revision: source.revision,
          hubUrl: source.hubUrl,
          accessToken: source.accessToken,
          fetch: this.#opts.fetch,
          cache: this.#opts.rangeCache,
          signal,
          onProgress: (p) => meter?.add(p),
        });
      }
      case 'files':
        return blobFileTree(source.name, source.files);
      default:
        return assertNever(source, 'model source');
    }
  }

  #check(refs: readonly string[], baseRef: string | null): CompatReportInfo {
    // The base (when there is one) comes first: the others are compared with it.
    const ordered = baseRef !== null ? [baseRef, ...refs.filter((r) => r !== baseRef)] : [...refs];
    const models: CompatModel[] = ordered.map((ref) => {
      const m = this.#models.get(ref);
      if (!m) throw new MergeInputError(`model "${ref}" is not loaded (add it to the shelf again)`);
      return { id: ref, tensors: m.tensors, config: m.config };
    });
    // The engine cuts embeddings to the reference's rows (the base, else the first model): check the same.
    const report = checkCompatibility(models, { baseIndex: 0, embeddingRows: 'base' });
    return {
      ok: report.ok,
      configDifferences: report.ok ? [] : configDifferences(models[0], models.slice(1)),
      problems: report.problems.map((p) => p.message),
      notes: [...report.notes],
    };
  }

  #gpuHandle(): Promise<GpuHandle> {
    this.#gpu ??= requestGpu(this.#opts.gpu, {
      onFatal: (err) => {
        console.error('GPU failure:', err);
        this.#gpu = null;
      },
    }).catch((err) => {
      this.#gpu = null;
      throw err;
    });
    return this.#gpu;
  }

  async #probeGpu(): Promise<GpuStatus> {
    try {
      const handle = await this.#gpuHandle();
      if (!this.#opts.createGpuBackend) throw new Error('this build has no WebGPU backend');
      const limits: Record<string, number> = {};
      for (const name of SHOWN_LIMITS) limits[name] = handle.limits[name];
      return {
        status: 'ready',
        adapter: adapterLabel(handle.adapterInfo),
        vendor: handle.adapterInfo.vendor,
        architecture: handle.adapterInfo.architecture,
        limits,
        software: handle.adapterInfo.isFallbackAdapter,
      };
    } catch (err) {
      return { status: 'unavailable', error: toErrorInfo(err) };
    }
  }

  /**
   * The calibration analysis on each backend (each made for it and destroyed after), as a slider
   * re-runs it (calibrate.ts), twice taking turns, keeping each backend's fastest (what else runs on
   * the machine only ever makes a run slower).
   */
  async #measureBackends(): Promise<BackendSpeeds> {
    const cpu = await this.#backend('cpu');
    let gpu: Backend | undefined;
    try {
      gpu = await this.#backend('gpu');
      const cpuOps = analysisOpsFor(cpu);
      const gpuOps = analysisOpsFor(gpu);
      const times = { cpu: [] as number[], gpu: [] as number[] };
      for (let round = 0; round < 2; round++) {
        times.cpu.push(await timeAnalysis(cpuOps));
        times.gpu.push(await timeAnalysis(gpuOps));
      }
      return { cpuMs: Math.min(...times.cpu), gpuMs: Math.min(...times.gpu) };
    } finally {
      cpu.destroy();
      gpu?.destroy();
    }
  }

  async #merge(jobId: number, request: MergeRequest): Promise<void> {
    const controller = new AbortController();
    this.#jobs.set(jobId, controller);
    let backend: Backend | undefined;
    let output: OutputFolder | undefined;
    let transfers: { finish(): void } | undefined;
    try {
      const { recipe } = request;
      validateRecipe(recipe, methodLookup);
      const sources = new Map<string, ModelSource>();
      for (const ref of referencedModels(recipe)) {
        const model = this.#models.get(ref);
        if (!model) throw new MergeInputError(`model "${ref}" is not loaded: add it to the shelf (or drop its folder) first`);
        sources.set(ref, yieldingReads(model));
      }
      // Before reading a byte: a merge larger than a tab can hold is sent to the command line.
      const deviceMemory = (globalThis.navigator as { deviceMemory?: number } | undefined)?.deviceMemory;
      const merged = planMerge(recipe, sources).tensors.filter((t) => t.merged);
      checkTabMerge(merged, sources.size, this.#opts.mergeStepLimit ?? tabMergeLimit(deviceMemory));
      transfers = this.#watchTransfers(jobId, sources.keys());
      await this.#releaseAnalysisTensors();
      backend = await this.#backend(request.backend);
      controller.signal.throwIfAborted();
      const target = request.output;
      let destination: string;
      switch (target.kind) {
        case 'directory':
          output = await DirectoryOutputFolder.open(target.parent, target.folderName);
          destination = `folder "${target.folderName}" in "${target.parent.name || 'the picked folder'}"`;
          break;
        case 'download':
          output = new DownloadOutputFolder(target.folderName);
          destination = `download ${target.folderName}.zip`;
          break;
        default:
          assertNever(target, 'output target');
      }
      const throttle = this.#throttle();
      const result = await runMerge({
        recipe,
        sources,
        backend,
        output,
        options: {
          seed: request.seed,
          maxShardBytes: request.maxShardBytes,
          signal: controller.signal,
          onProgress: (p: MergeProgress) => {
            if (p.tensorsDone === p.tensorsTotal || throttle()) {
              this.#opts.post({ kind: 'merge-progress', jobId, progress: { ...p } });
            }
          },
        },
      });
      const archive = output instanceof DownloadOutputFolder ? output.archive : null;
      transfers.finish();
      this.#opts.post({
        kind: 'merge-done',
        jobId,
        result: { ...result, destination, backend: backend.description },
        download: archive ? { name: `${target.folderName}.zip`, blob: archive } : null,
      });
    } catch (err) {
      // runMerge aborts the folder itself; an error before it ran must not leave the folder behind.
      await output?.abort().catch(() => undefined);
      const cancelled = err instanceof MergeCancelledError || controller.signal.aborted;
      transfers?.finish();
      this.#opts.post({
        kind: 'merge-failed',
        jobId,
        cancelled,
        error: cancelled ? { name: 'MergeCancelledError', message: 'merge cancelled: nothing was written' } : toErrorInfo(err),
      });
    } finally {
      backend?.destroy();
      this.#jobs.delete(jobId);
    }
  }

  /** Supersede the analysis before (it stops at its next step), wait until it has let go, then run. */
  #analyze(jobId: number, request: AnalysisRequest, heldModelStats?: string): Promise<void> {
    const controller = new AbortController();
    this.#jobs.set(jobId, controller);
    const before = this.#analysisRun;
    before?.controller.abort();
    const done = (before ? before.done : Promise.resolve()).then(() => this.#runAnalysis(jobId, controller, request, heldModelStats));
    const run = { controller, done };
    this.#analysisRun = run;
    return done.finally(() => {
      if (this.#analysisRun === run) this.#analysisRun = null;
    });
  }

  async #runAnalysis(jobId: number, controller: AbortController, request: AnalysisRequest, heldModelStats?: string): Promise<void> {
    try {
      controller.signal.throwIfAborted();
      const { recipe } = request;
      validateRecipe(recipe, methodLookup);
      const sources = new Map<string, ModelSource>();
      for (const ref of referencedModels(recipe)) {
        const model = this.#models.get(ref);
        if (!model) throw new MergeInputError(`model "${ref}" is not loaded: add it to the shelf (or drop its folder) first`);
        let wrapped = this.#yielding.get(model);
        if (!wrapped) {
          wrapped = yieldingReads(model);
          this.#yielding.set(model, wrapped);
        }
        sources.set(ref, wrapped);
      }
      const { ops, resident } = await this.#analysisOpsFor(request.backend);
      controller.signal.throwIfAborted();
      const throttle = this.#throttle();
      const result = await analyzeMerge({
        recipe,
        sources,
        ops: yieldingOps(ops, controller.signal),
        options: {
          seed: request.seed,
          parts: request.parts,
          cache: this.#analysisCache,
          resident,
          signal: controller.signal,
          onProgress: (p) => {
            if (p.tensorsDone === p.tensorsTotal || throttle()) this.#opts.post({ kind: 'analysis-progress', jobId, progress: p });
          },
        },
      });
      // The page holds these model statistics already: the message carries only what changed.
      if (heldModelStats !== undefined && result.modelStats?.key === heldModelStats) {
        this.#opts.post({ kind: 'analysis-done', jobId, result: { ...result, modelStats: null }, sameModelStats: heldModelStats });
      } else {
        this.#opts.post({ kind: 'analysis-done', jobId, result });
      }
    } catch (err) {
      const cancelled = err instanceof AnalysisCancelledError || controller.signal.aborted;
      if (!cancelled) await this.#dropBrokenAnalysisOps();
      this.#opts.post({
        kind: 'analysis-failed',
        jobId,
        cancelled,
        error: cancelled ? { name: 'AnalysisCancelledError', message: 'analysis cancelled' } : toErrorInfo(err),
      });
    } finally {
      this.#jobs.delete(jobId);
    }
  }

  async #score(jobId: number, request: ScoreRequest): Promise<void> {
    const controller = new AbortController();
    this.#jobs.set(jobId, controller);
    try {
      const throttle = this.#throttle();
      const result = await this.#scores.run(request, controller.signal, (progress) => {
        if (progress.done === progress.total || throttle()) this.#opts.post({ kind: 'score-progress', jobId, progress });
      });
      this.#opts.post({ kind: 'score-done', jobId, result });
    } catch (err) {
      const cancelled = err instanceof ScoreCancelledError || controller.signal.aborted;
      this.#opts.post({ kind: 'score-failed', jobId, cancelled, error: cancelled ? { name: 'ScoreCancelledError', message: 'scoring cancelled' } : toErrorInfo(err) });
    } finally {
      this.#jobs.delete(jobId);
    }
  }

  async #lora(jobId: number, request: LoraRequest): Promise<void> {
    const controller = new AbortController();
    this.#jobs.set(jobId, controller);
    try {
      const throttle = this.#throttle();
      let phase = '';
      const result = await this.#loras.run(request, controller.signal, (progress) => {
        // A new phase and a phase's end always go out; the steps between are throttled.
        const news = progress.phase !== phase || progress.done === progress.total;
        phase = progress.phase;
        if (news || throttle()) this.#opts.post({ kind: 'lora-progress', jobId, progress });
      });
      this.#opts.post({ kind: 'lora-done', jobId, result });
    } catch (err) {
      const cancelled = controller.signal.aborted;
      this.#opts.post({ kind: 'lora-failed', jobId, cancelled, error: cancelled ? { name: 'LoraCancelledError', message: 'LoRA export cancelled: nothing was written' } : toErrorInfo(err) });
    } finally {
      this.#jobs.delete(jobId);
    }
  }

  /** One read wrapper per opened model (see yieldingReads), so caches keyed by source see the same one each run. */
  #yieldingOf(model: ModelSource): ModelSource {
    let wrapped = this.#yielding.get(model);
    if (!wrapped) this.#yielding.set(model, (wrapped = yieldingReads(model)));
    return wrapped;
  }

  /** The analysis ops on the chosen backend, made once per choice, with the tensors it keeps between runs. */
  #analysisOpsFor(choice: BackendChoice): Promise<{ ops: AnalysisOps; resident: ResidentTensors }> {
    if (this.#analysisOps?.choice === choice) return this.#analysisOps.ops;
    this.#dropAnalysisOps();
    const ops = this.#backend(choice).then((backend) => ({
      ops: analysisOpsFor(backend),
      resident: new ResidentTensors(backend),
    }));
    const entry = { choice, ops };
    this.#analysisOps = entry;
    ops.catch(() => {
      if (this.#analysisOps === entry) this.#analysisOps = null;
    });
    return ops;
  }

  /** A lost device is not reused: the next analysis makes a new backend. */
  async #dropBrokenAnalysisOps(): Promise<void> {
    const entry = await this.#analysisOps?.ops.catch(() => null);
    if (!(entry?.ops.backend instanceof GpuBackend)) return;
    try {
      entry.ops.backend.ctx.assertUsable('analysis');
    } catch {
      this.#dropAnalysisOps();
    }
  }

  #dropAnalysisOps(): void {
    const old = this.#analysisOps;
    this.#analysisOps = null;
    old?.ops
      .then(({ ops, resident }) => {
        resident.clear();
        ops.backend.destroy();
      })
      .catch(() => undefined);
  }

  /** A merge gets the memory the analysis kept (the next analysis reads its inputs again). */
  async #releaseAnalysisTensors(): Promise<void> {
    const entry = await this.#analysisOps?.ops.catch(() => null);
    entry?.resident.clear();
  }

  /**
   * Per-model progress of a merge's Hub models: a first report at once, throttled ones while their
   * tensors are read, and a last one (`done`) from `finish`, which the caller runs before the merge's
   * own last message. Counts start from where each model's meter stood, so a merge counts only its reads.
   */
  #watchTransfers(jobId: number, refs: Iterable<string>): { finish(): void } {
    const watched: { ref: string; meter: TransferMeter; start: ReturnType<TransferMeter['reading']>; expected: number; stop(): void }[] = [];
    const report = (w: (typeof watched)[number], done: boolean) => {
      const d = since(w.meter, w.start);
      this.#opts.post({
        kind: 'source-progress',
        jobId,
        progress: { ref: w.ref, bytesReceived: d.received, bytesExpected: Math.max(w.expected, d.received), cachedBytes: d.cached, rate: w.meter.rate, done },
      });
    };
    for (const ref of new Set(refs)) {
      const meter = this.#meters.get(ref);
      const model = this.#models.get(ref);
      if (!meter || !model) continue;
      let expected = 0;
      for (const t of model.tensors.values()) expected += t.byteLength;
      const throttle = this.#throttle();
      const w = { ref, meter, start: meter.reading(), expected, stop: () => {} };
      w.stop = meter.listen(() => {
        if (throttle()) report(w, false);
      });
      watched.push(w);
      report(w, false);
    }
    return {
      finish: () => {
        for (const w of watched.splice(0)) {
          w.stop();
          report(w, true);
        }
      },
    };
  }

  async #backend(choice: MergeRequest['backend']): Promise<Backend> {
    switch (choice) {
      case 'cpu':
        return this.#opts.createCpuBackend?.() ?? new CpuBackend();
      case 'gpu': {
        const handle = await this.#gpuHandle();
        if (!this.#opts.createGpuBackend) throw new Error('this build has no WebGPU backend; choose the CPU backend');
        return this.#opts.createGpuBackend(handle);
      }
      default:
        return assertNever(choice, 'backend');
    }
  }

  /** A gate that opens at most once per progress interval. */
  #throttle(): () => boolean {
    const interval = this.#opts.progressIntervalMs ?? 100;
    let last = -Infinity;
    return () => {
      const now = Date.now();
      if (now - last < interval) return false;
      last = now;
      return true;
    };
  }
}

/**
 * Let queued messages (a cancel) run before each tensor read: reads that finish without a macrotask
 * (small Blobs, cached ranges, the CPU backend) would otherwise keep the worker busy to the end.
 */
function yieldingReads(model: ModelSource): ModelSource {
  return {
    id: model.id,
    tree: model.tree,
    tensors: model.tensors,
    config: model.config,
    metadata: model.metadata,
    async readTensor(name, signal) {
      await yieldToEventLoop();
      return model.readTensor(name, signal);
    },
    async readTensorRange(name, offset, length, signal) {
      await yieldToEventLoop();
      return model.readTensorRange(name, offset, length, signal);
    },
  };
}

/** Longest stretch of analysis steps between two turns of the worker's event loop (how late a cancel is heard). */
const YIELD_SLICE_MS = 8;

/**
 * Let queued messages (a cancel, a newer request) run between analysis steps, and stop at a step
 * after the signal fires: a re-run whose inputs are resident reads nothing, so without this it
 * would hold the worker to its end, and every run queued during a slider drag would follow. It
 * stops only before steps whose inputs have an owner (sign counts, contributions: each tensor has
 * one of those); a histogram may be of entries just kept, not yet resident, which would leak.
 */
function yieldingOps(ops: AnalysisOps, signal: AbortSignal): AnalysisOps {
  // The first step always lets in what is already queued; then a turn costs little, but a run has
  // hundreds of steps: at most one turn per slice.
  let last = -Infinity;
  const turn = async () => {
    if (performance.now() - last < YIELD_SLICE_MS) return;
    await yieldToEventLoop();
    last = performance.now();
  };
  const stopPoint = async () => {
    await turn();
    if (signal.aborted) throw new AnalysisCancelledError();
  };
  return {
    backend: ops.backend,
    signCounts: async (xs, flips) => (await stopPoint(), ops.signCounts(xs, flips)),
    magnitudeHistograms: async (xs) => (await turn(), ops.magnitudeHistograms(xs)),
    electedContributionNormsSq: async (wds, weights, normalize) => (await stopPoint(), ops.electedContributionNormsSq(wds, weights, normalize)),
  };
}

/** A macrotask turn without setTimeout's 4 ms clamp. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

/** What a shelf card shows, from headers and config only. */
export function summarize(ref: string, model: ModelSource, tree: FileTree & { commit?: string }, files: readonly string[]): ModelSummary {
  let parameterCount = 0;
  let bytes = 0;
  const dtypeCounts = new Map<string, number>();
  for (const t of model.tensors.values()) {
    parameterCount += t.shape.reduce((a, b) => a * b, 1);
    bytes += t.byteLength;
    dtypeCounts.set(t.dtype, (dtypeCounts.get(t.dtype) ?? 0) + 1);
  }
  const config = model.config;
  const architectures = config?.architectures;
  return {
    ref,
    location: tree.name,
    commit: tree.commit,
    tensorCount: model.tensors.size,
    parameterCount,
    bytes,
    dtypes: [...dtypeCounts].map(([dtype, tensors]) => ({ dtype, tensors })).sort((a, b) => b.tensors - a.tensors),
    modelType: typeof config?.model_type === 'string' ? config.model_type : null,
    architecture: Array.isArray(architectures) && typeof architectures[0] === 'string' ? architectures[0] : null,
    numLayers: numLayersOf(config, model.tensors.keys()),
    files: files.filter((f) => !f.endsWith('.safetensors')).sort(),
    tensorNames: [...model.tensors.keys()],
  };
}

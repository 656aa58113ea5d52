/**
 * The worker's scoreboard engine: scores input models (cached per opened model and settings, so a
 * slider move only re-scores the merge) and the current merge, kept in memory. It keeps one backend
 * per choice between requests (pipelines stay built while a slider moves). A model whose f32
 * weights exceed the request's limit is refused before anything is merged or loaded.
 */
import { validateRecipe } from '../../core/recipe/validate.ts';
import type { ModelSource } from '../../core/source.ts';
import type { Backend } from '../../gpu/backend.ts';
import { MergeCancelledError, planMerge } from '../../gpu/engine.ts';
import { methodLookup } from '../../gpu/methods/index.ts';
import { ModelRunCancelledError } from '../../gpu/model/causal-lm.ts';
import { parseLlamaConfig } from '../../gpu/model/config.ts';
import { evaluateModel, type EvalReport } from '../../gpu/model/eval.ts';
import { mergeInMemory } from '../../gpu/model/in-memory-merge.ts';
import { ModelWeights } from '../../gpu/model/weights.ts';
import { toErrorInfo, type BackendChoice } from './protocol.ts';
import type { ScoreEntry, ScoreProgressInfo, ScoreRequest, ScoreResult } from './score-protocol.ts';

export class ScoreCancelledError extends Error {
  constructor() {
    super('scoring cancelled');
    this.name = 'ScoreCancelledError';
  }
}

export interface ScoreServiceDeps {
  /** An opened model by shelf reference, or undefined. */
  model(ref: string): ModelSource | undefined;
  /** A new backend of the choice (the service keeps it and destroys it when the choice changes). */
  backend(choice: BackendChoice): Promise<Backend>;
}

export class ScoreService {
  readonly #deps: ScoreServiceDeps;
  /** Reports of input models, per opened model (a re-opened ref is another object) and settings. */
  readonly #cache = new WeakMap<ModelSource, Map<string, EvalReport>>();
  #backend: { choice: BackendChoice; backend: Promise<Backend> } | null = null;

  constructor(deps: ScoreServiceDeps) {
    this.#deps = deps;
  }

  async run(request: ScoreRequest, signal: AbortSignal, onProgress: (p: ScoreProgressInfo) => void): Promise<ScoreResult> {
    const started = performance.now();
    const backend = await this.#backendFor(request.backend);
    const settings = JSON.stringify([request.backend, request.tasks, request.text, request.window, request.stride, request.weightLimit]);
    const count = request.inputs.length + (request.recipe ? 1 : 0);
    const entries: ScoreEntry[] = [];
    const evaluate = (source: ModelSource, label: string, index: number) =>
      evaluateModel(source, backend, {
        tasks: request.tasks ?? undefined,
        text: request.text ?? undefined,
        window: request.window,
        stride: request.stride,
        signal,
        model: { weightBudget: request.weightLimit, streaming: false },
        onProgress: (done, total) => onProgress({ label, phase: 'scoring', index, count, done, total }),
      });

    for (const [index, { ref, label }] of request.inputs.entries()) {
      signal.throwIfAborted();
      const source = this.#deps.model(ref);
      if (!source) {
        entries.push({ label, ref, report: null, error: { name: 'Error', message: `${label} is not loaded` }, cached: false });
        continue;
      }
      let perModel = this.#cache.get(source);
      if (!perModel) this.#cache.set(source, (perModel = new Map()));
      const hit = perModel.get(settings);
      if (hit) {
        entries.push({ label, ref, report: hit, error: null, cached: true });
        continue;
      }
      onProgress({ label, phase: 'scoring', index, count, done: 0, total: 0 });
      try {
        const report = await evaluate(source, label, index);
        perModel.set(settings, report);
        entries.push({ label, ref, report, error: null, cached: false });
      } catch (err) {
        if (isCancel(err, signal)) throw new ScoreCancelledError();
        entries.push({ label, ref, report: null, error: toErrorInfo(err), cached: false });
      }
    }

    let mergeSeconds: number | null = null;
    if (request.recipe) {
      const label = 'merge';
      const index = request.inputs.length;
      try {
        const recipe = request.recipe;
        validateRecipe(recipe, methodLookup);
        const sources = new Map<string, ModelSource>();
        for (const ref of [...recipe.models.map((m) => m.model), ...(recipe.baseModel !== undefined ? [recipe.baseModel] : [])]) {
          const m = this.#deps.model(ref);
          if (!m) throw new Error(`model "${ref}" is not loaded`);
          sources.set(ref, m);
        }
        // Refuse a merge too large for the tab before merging it.
        const reference = planMerge(recipe, sources).reference;
        ModelWeights.plan(parseLlamaConfig(reference.config, 'the merge'), 'the merge', request.weightLimit, false);
        onProgress({ label, phase: 'merging', index, count, done: 0, total: 0 });
        const t0 = performance.now();
        const merged = await mergeInMemory({ recipe, sources, backend, options: { seed: request.seed, signal } }, 'merge');
        mergeSeconds = (performance.now() - t0) / 1000;
        entries.push({ label, ref: null, report: await evaluate(merged, label, index), error: null, cached: false });
      } catch (err) {
        if (isCancel(err, signal)) throw new ScoreCancelledError();
        entries.push({ label, ref: null, report: null, error: toErrorInfo(err), cached: false });
      }
    }
    return { entries, seconds: (performance.now() - started) / 1000, mergeSeconds };
  }

  /** Destroy the kept backend (the worker needs the memory, or the device changed). */
  release(): void {
    const old = this.#backend;
    this.#backend = null;
    old?.backend.then((b) => b.destroy()).catch(() => undefined);
  }

  #backendFor(choice: BackendChoice): Promise<Backend> {
    if (this.#backend?.choice === choice) return this.#backend.backend;
    this.release();
    const entry = { choice, backend: this.#deps.backend(choice) };
    this.#backend = entry;
    entry.backend.catch(() => {
      if (this.#backend === entry) this.#backend = null;
    });
    return entry.backend;
  }
}

function isCancel(err: unknown, signal: AbortSignal): boolean {
  return signal.aborted || err instanceof ModelRunCancelledError || err instanceof MergeCancelledError || (err instanceof DOMException && err.name === 'AbortError');
}

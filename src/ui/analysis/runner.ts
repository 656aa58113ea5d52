/**
 * Runs analyses through the engine worker for the studio: one at a time (a new request cancels the
 * one in flight, and a late answer of a cancelled run is ignored), debounced while a slider moves,
 * keeping the last result on screen while the next one is computed. An external store for React's
 * useSyncExternalStore: `getState` returns the same object until something changes.
 */
import type { AnalysisResult } from '../../gpu/analysis/types.ts';
import type { AnalysisHandle, EngineApi } from '../worker/client.ts';
import { toErrorInfo, type AnalysisRequest } from '../worker/protocol.ts';
import type { AnalysisRunStatus } from './AnalysisPanel.tsx';

export interface AnalysisRunnerState {
  status: AnalysisRunStatus;
  /** The latest finished result (kept while a newer one runs or after one fails). */
  result: AnalysisResult | null;
  /** The request of the latest result. */
  resultRequest: AnalysisRequest | null;
  /**
   * The request the runner is working towards: scheduled, running, or the last one that ran (its
   * result, or its failure). A cancelled run falls back to `resultRequest`.
   */
  current: AnalysisRequest | null;
}

/** Whether two requests ask for the same numbers (the same recipe, backend and seed). */
export function sameRequest(a: AnalysisRequest | null, b: AnalysisRequest | null): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

export interface AnalysisRunnerOptions {
  /**
   * Wait this long after the last `schedule` before running (slider drags: a hand moves a slider
   * every frame). Short, since a run that a newer value supersedes stops at its next step. @default 50
   */
  debounceMs?: number;
  setTimeout?: (f: () => void, ms: number) => unknown;
  clearTimeout?: (id: unknown) => void;
}

/** The worker cannot analyze (a build or a test fake without `analyze`). */
export class AnalysisUnavailableError extends Error {
  constructor() {
    super('this engine cannot run analyses');
    this.name = 'AnalysisUnavailableError';
  }
}

/**
 * A performance mark in the e2e build, where e2e/feel.spec.ts reads them to say where a slider's
 * time goes (scheduled → posted → answered, with the engine's own seconds); none elsewhere (marks
 * pile up in the page's timeline).
 */
function mark(name: string, detail?: unknown): void {
  if (import.meta.env?.MODE === 'e2e') performance.mark(name, { detail });
}

export class AnalysisRunner {
  readonly #engine: Pick<EngineApi, 'analyze'>;
  readonly #debounceMs: number;
  readonly #setTimeout: NonNullable<AnalysisRunnerOptions['setTimeout']>;
  readonly #clearTimeout: NonNullable<AnalysisRunnerOptions['clearTimeout']>;
  readonly #listeners = new Set<() => void>();
  #state: AnalysisRunnerState = { status: { status: 'idle' }, result: null, resultRequest: null, current: null };
  #handle: AnalysisHandle | null = null;
  #timer: unknown = null;

  constructor(engine: Pick<EngineApi, 'analyze'>, opts: AnalysisRunnerOptions = {}) {
    this.#engine = engine;
    this.#debounceMs = opts.debounceMs ?? 50;
    this.#setTimeout = opts.setTimeout ?? ((f, ms) => setTimeout(f, ms));
    this.#clearTimeout = opts.clearTimeout ?? ((id) => clearTimeout(id as ReturnType<typeof setTimeout>));
  }

  readonly getState = (): AnalysisRunnerState => this.#state;

  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  /** Run now, cancelling a run in flight or a scheduled one. */
  run(request: AnalysisRequest): void {
    this.#clearTimer();
    this.#handle?.cancel();
    const analyze = this.#engine.analyze?.bind(this.#engine);
    if (!analyze) {
      this.#set({ status: { status: 'failed', error: toErrorInfo(new AnalysisUnavailableError()) }, current: request });
      return;
    }
    const handle = analyze(request, (progress) => {
      if (this.#handle === handle) this.#set({ status: { status: 'running', progress } });
    });
    this.#handle = handle;
    mark('analysis.posted');
    this.#set({ status: { status: 'running', progress: null }, current: request });
    handle.outcome.then(
      (outcome) => {
        if (this.#handle !== handle) return;
        this.#handle = null;
        if (outcome.status === 'done') {
          mark('analysis.answered', { seconds: outcome.result.seconds });
          this.#set({ status: { status: 'done' }, result: outcome.result, resultRequest: request });
        } else this.#set({ status: this.#state.result ? { status: 'done' } : { status: 'idle' }, current: this.#state.resultRequest });
      },
      (err: unknown) => {
        if (this.#handle !== handle) return;
        this.#handle = null;
        this.#set({ status: { status: 'failed', error: toErrorInfo(err) } });
      },
    );
  }

  /** Run after `debounceMs` without another call (each call restarts the wait). */
  schedule(request: AnalysisRequest): void {
    mark('analysis.scheduled');
    this.#clearTimer();
    if (this.#state.current !== request) this.#set({ current: request });
    this.#timer = this.#setTimeout(() => {
      this.#timer = null;
      this.run(request);
    }, this.#debounceMs);
  }

  cancel(): void {
    const scheduled = this.#timer !== null;
    this.#clearTimer();
    this.#handle?.cancel();
    if (scheduled && !this.#handle) this.#set({ current: this.#state.resultRequest });
  }

  /** Forget the result and any failure (what they were computed for is gone); cancels a run. */
  clear(): void {
    this.cancel();
    this.#handle = null;
    const s = this.#state;
    if (s.result === null && s.status.status === 'idle' && s.current === null) return;
    this.#set({ status: { status: 'idle' }, result: null, resultRequest: null, current: null });
  }

  /** A failure no longer applies (the recipe changed): show the last result again, or nothing. */
  dismissError(): void {
    if (this.#state.status.status !== 'failed') return;
    this.#set({ status: this.#state.result ? { status: 'done' } : { status: 'idle' }, current: this.#state.resultRequest });
  }

  /** Stop everything; the runner can still be used afterwards. */
  dispose(): void {
    this.cancel();
    this.#handle = null;
    this.#listeners.clear();
  }

  #clearTimer(): void {
    if (this.#timer !== null) this.#clearTimeout(this.#timer);
    this.#timer = null;
  }

  #set(patch: Partial<AnalysisRunnerState>): void {
    this.#state = { ...this.#state, ...patch };
    for (const l of this.#listeners) l();
  }
}

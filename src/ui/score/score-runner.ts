/**
 * Runs scoreboard requests through the engine worker: one at a time (a new request cancels the one
 * in flight; a late answer of a cancelled run is ignored), debounced while a slider moves, the last
 * result kept on screen while the next one is computed. An external store for useSyncExternalStore.
 * `latencyMs` is the time from the request being made (the slider's last move) to its scores.
 */
import type { ScoreHandle, EngineApi } from '../worker/client.ts';
import { toErrorInfo, type ErrorInfo } from '../worker/protocol.ts';
import type { ScoreProgressInfo, ScoreRequest, ScoreResult } from '../worker/score-protocol.ts';

export type ScoreRunStatus =
  | { status: 'idle' }
  | { status: 'scheduled' }
  | { status: 'running'; progress: ScoreProgressInfo | null }
  | { status: 'done' }
  | { status: 'failed'; error: ErrorInfo }
  | { status: 'cancelled' };

export interface ScoreRunnerState {
  status: ScoreRunStatus;
  result: ScoreResult | null;
  /** The key of the request the result answers (see `schedule`). */
  resultKey: string | null;
  /** From the request to its scores, for the latest result (ms). */
  latencyMs: number | null;
}

export class ScoreRunner {
  readonly #engine: Pick<EngineApi, 'score'>;
  readonly #debounceMs: number;
  readonly #listeners = new Set<() => void>();
  #state: ScoreRunnerState = { status: { status: 'idle' }, result: null, resultKey: null, latencyMs: null };
  #handle: ScoreHandle | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #key: string | null = null;

  constructor(engine: Pick<EngineApi, 'score'>, opts: { debounceMs?: number } = {}) {
    this.#engine = engine;
    this.#debounceMs = opts.debounceMs ?? 150;
  }

  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  readonly getState = (): ScoreRunnerState => this.#state;

  /** Score `request` after the debounce unless a request of the same key is already answered or on its way. */
  schedule(key: string, request: ScoreRequest, opts: { now?: boolean } = {}): void {
    if (key === this.#key && this.#state.status.status !== 'failed' && this.#state.status.status !== 'cancelled') return;
    this.#key = key;
    const asked = performance.now();
    this.#stop();
    this.#set({ status: { status: 'scheduled' } });
    this.#timer = setTimeout(() => this.#run(key, request, asked), opts.now ? 0 : this.#debounceMs);
  }

  cancel(): void {
    const had = this.#handle !== null || this.#timer !== null;
    this.#stop();
    this.#key = null;
    if (had) this.#set({ status: { status: 'cancelled' } });
  }

  #stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#handle?.cancel();
    this.#handle = null;
  }

  #run(key: string, request: ScoreRequest, asked: number): void {
    this.#timer = null;
    if (!this.#engine.score) {
      this.#set({ status: { status: 'failed', error: { name: 'Error', message: 'this engine cannot score models' } } });
      return;
    }
    const handle = this.#engine.score(request, (progress) => {
      if (this.#handle === handle) this.#set({ status: { status: 'running', progress } });
    });
    this.#handle = handle;
    this.#set({ status: { status: 'running', progress: null } });
    handle.outcome.then(
      (outcome) => {
        if (this.#handle !== handle) return;
        this.#handle = null;
        if (outcome.status === 'cancelled') this.#set({ status: { status: 'cancelled' } });
        else this.#set({ status: { status: 'done' }, result: outcome.result, resultKey: key, latencyMs: performance.now() - asked });
      },
      (err) => {
        if (this.#handle !== handle) return;
        this.#handle = null;
        this.#set({ status: { status: 'failed', error: toErrorInfo(err) } });
      },
    );
  }

  #set(patch: Partial<ScoreRunnerState>): void {
    this.#state = { ...this.#state, ...patch };
    for (const l of this.#listeners) l();
  }
}

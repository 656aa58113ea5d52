/**
 * Retry with exponential backoff, for transient failures only. Pure: the clock (`sleep`) is injectable
 * so tests run without waiting and can assert the delays.
 */

export interface RetryPolicy {
  /**
   * Retries after the first attempt (so `retries + 1` attempts in all) without progress in between.
   * @default 4
   */
  retries?: number;
  /** Delay before the first retry; doubled for each further one. @default 500 */
  baseDelayMs?: number;
  /** Cap on the exponential backoff. @default 8000 */
  maxDelayMs?: number;
  /**
   * Cap on a server's `Retry-After` (a rate limit says how long its window has left: the Hub's is
   * 5 minutes; retrying sooner only spends more of it). @default 300000
   */
  maxRetryAfterMs?: number;
  /** A request that sees no byte for this long is aborted and counts as a transient failure. @default 30000 */
  timeoutMs?: number;
  /** Waits `ms` or rejects with `signal.reason` when aborted first. @default a setTimeout-based sleep */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export const DEFAULT_RETRY: Required<RetryPolicy> = {
  retries: 4,
  baseDelayMs: 500,
  maxDelayMs: 8000,
  maxRetryAfterMs: 300_000,
  timeoutMs: 30_000,
  sleep: abortableSleep,
};

export function resolveRetryPolicy(policy: RetryPolicy | undefined): Required<RetryPolicy> {
  const p = { ...DEFAULT_RETRY, ...stripUndefined(policy ?? {}) };
  if (!Number.isInteger(p.retries) || p.retries < 0) throw new RangeError(`retry.retries must be an integer >= 0, got ${p.retries}`);
  for (const key of ['baseDelayMs', 'maxDelayMs', 'maxRetryAfterMs', 'timeoutMs'] as const) {
    if (!(p[key] >= 0)) throw new RangeError(`retry.${key} must be >= 0, got ${p[key]}`);
  }
  return p;
}

/**
 * Delay before retry number `retry` (0-based): base·2^retry capped at maxDelayMs; a server's
 * Retry-After wins when longer, up to maxRetryAfterMs.
 */
export function backoffDelay(retry: number, policy: Required<RetryPolicy>, retryAfterMs?: number): number {
  const exponential = Math.min(policy.baseDelayMs * 2 ** retry, policy.maxDelayMs);
  if (retryAfterMs !== undefined && retryAfterMs > exponential) return Math.min(retryAfterMs, policy.maxRetryAfterMs);
  return exponential;
}

export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RetryOptions {
  policy: Required<RetryPolicy>;
  signal?: AbortSignal;
  /** Whether a failure may succeed on retry. */
  isTransient(err: unknown): boolean;
  /**
   * Called after a failed attempt: true when it got somewhere (e.g. received bytes that the next
   * attempt need not ask for again). Progress resets the retry count, so a long download over a
   * flaky link is not given up on while it advances.
   */
  progressed?(): boolean;
  /** The error to throw when the retries are used up. */
  giveUp(attempts: number, last: unknown): Error;
  /** Told before each wait, e.g. for logging. */
  onRetry?(info: { attempt: number; delayMs: number; error: unknown }): void;
}

/** Run `task` until it succeeds, a permanent error is thrown, the signal aborts, or retries run out. */
export async function withRetry<T>(task: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  let attempt = 0;
  let failuresInARow = 0;
  for (;;) {
    opts.signal?.throwIfAborted();
    try {
      return await task(attempt);
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      if (!opts.isTransient(err)) throw err;
      attempt++;
      failuresInARow = opts.progressed?.() ? 1 : failuresInARow + 1;
      if (failuresInARow > opts.policy.retries) throw opts.giveUp(attempt, err);
      const retryAfterMs = (err as { retryAfterMs?: number }).retryAfterMs;
      const delayMs = backoffDelay(failuresInARow - 1, opts.policy, retryAfterMs);
      opts.onRetry?.({ attempt, delayMs, error: err });
      await opts.policy.sleep(delayMs, opts.signal);
    }
  }
}

/** `Retry-After` as milliseconds (delta-seconds or an HTTP date), or undefined. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

import { describe, expect, it } from 'vitest';
import { HubApiError, isTransientError } from './hub-errors.ts';
import { abortableSleep, backoffDelay, parseRetryAfter, resolveRetryPolicy, withRetry, type RetryPolicy } from './retry.ts';

function policy(extra: RetryPolicy = {}) {
  const delays: number[] = [];
  const p = resolveRetryPolicy({
    retries: 3,
    baseDelayMs: 10,
    maxDelayMs: 50,
    sleep: async (ms) => {
      delays.push(ms);
    },
    ...extra,
  });
  return { p, delays };
}

const transient = () => new HubApiError('x', 503, 'https://h/x');
const permanent = () => new HubApiError('x', 404, 'https://h/x');

describe('backoffDelay', () => {
  it('doubles from the base delay up to the cap, and lets a longer Retry-After win up to its own cap', () => {
    const p = resolveRetryPolicy({ baseDelayMs: 500, maxDelayMs: 8000 });
    expect([0, 1, 2, 3, 4, 5].map((i) => backoffDelay(i, p))).toEqual([500, 1000, 2000, 4000, 8000, 8000]);
    expect(backoffDelay(0, p, 3000)).toBe(3000);
    expect(backoffDelay(2, p, 100)).toBe(2000);
    // A rate limit's Retry-After (the Hub's window is 5 minutes) is waited out, not cut to the backoff cap.
    expect(backoffDelay(0, p, 60_000)).toBe(60_000);
    expect(backoffDelay(0, p, 900_000)).toBe(300_000);
    expect(backoffDelay(0, resolveRetryPolicy({ maxRetryAfterMs: 10_000 }), 60_000)).toBe(10_000);
  });

  it('refuses nonsense policies, naming the field', () => {
    expect(() => resolveRetryPolicy({ retries: -1 })).toThrow(/retry\.retries/);
    expect(() => resolveRetryPolicy({ retries: 1.5 })).toThrow(/retry\.retries/);
    expect(() => resolveRetryPolicy({ timeoutMs: NaN })).toThrow(/retry\.timeoutMs/);
    expect(resolveRetryPolicy({ retries: undefined }).retries).toBe(4);
  });
});

describe('withRetry', () => {
  it('retries transient failures with growing delays until success', async () => {
    const { p, delays } = policy();
    let calls = 0;
    const result = await withRetry(
      async () => {
        if (++calls < 3) throw transient();
        return 'ok';
      },
      { policy: p, isTransient: isTransientError, giveUp: () => new Error('gave up') },
    );
    expect(result).toBe('ok');
    expect(calls).toBe(3);
    expect(delays).toEqual([10, 20]);
  });

  it('throws a permanent error at once', async () => {
    const { p, delays } = policy();
    let calls = 0;
    const err = permanent();
    await expect(
      withRetry(
        async () => {
          calls++;
          throw err;
        },
        { policy: p, isTransient: isTransientError, giveUp: () => new Error('gave up') },
      ),
    ).rejects.toBe(err);
    expect(calls).toBe(1);
    expect(delays).toEqual([]);
  });

  it('gives up after retries + 1 attempts with the last failure', async () => {
    const { p, delays } = policy();
    let calls = 0;
    const last: unknown[] = [];
    await expect(
      withRetry(
        async () => {
          calls++;
          throw transient();
        },
        {
          policy: p,
          isTransient: isTransientError,
          giveUp: (attempts, e) => {
            last.push(e);
            return new Error(`gave up after ${attempts}`);
          },
        },
      ),
    ).rejects.toThrow('gave up after 4');
    expect(calls).toBe(4);
    expect(delays).toEqual([10, 20, 40]);
    expect(last[0]).toBeInstanceOf(HubApiError);
  });

  it('does not count failures that made progress against the limit', async () => {
    const { p, delays } = policy({ retries: 2 });
    let calls = 0;
    let progress = false;
    const result = await withRetry(
      async () => {
        calls++;
        progress = calls <= 5; // the first five attempts each get somewhere before failing
        if (calls <= 6) throw transient();
        return calls;
      },
      { policy: p, isTransient: isTransientError, progressed: () => progress, giveUp: () => new Error('gave up') },
    );
    expect(result).toBe(7);
    // Progress restarts the count: each of the five is a first failure; the sixth (no progress) is a second.
    expect(delays).toEqual([10, 10, 10, 10, 10, 20]);
  });

  it('stops when the signal aborts during a wait, with its reason', async () => {
    const controller = new AbortController();
    const p = resolveRetryPolicy({ retries: 5, baseDelayMs: 10_000 });
    let calls = 0;
    const run = withRetry(
      async () => {
        calls++;
        throw transient();
      },
      { policy: p, signal: controller.signal, isTransient: isTransientError, giveUp: () => new Error('gave up') },
    );
    setTimeout(() => controller.abort(new Error('cancelled')), 20);
    await expect(run).rejects.toThrow('cancelled');
    expect(calls).toBe(1);
  });

  it('treats fetch network TypeErrors as transient, other programming errors as permanent', () => {
    expect(isTransientError(new TypeError('fetch failed'))).toBe(true);
    expect(isTransientError(new RangeError('bad'))).toBe(false);
    expect(isTransientError(new HubApiError('x', 429, 'u'))).toBe(true);
    expect(isTransientError(new HubApiError('x', 416, 'u'))).toBe(false);
    expect(isTransientError('string')).toBe(false);
  });
});

describe('abortableSleep', () => {
  it('rejects at once if already aborted, and on abort during the wait', async () => {
    await expect(abortableSleep(10, AbortSignal.abort(new Error('before')))).rejects.toThrow('before');
    const c = new AbortController();
    const t0 = Date.now();
    const s = abortableSleep(5000, c.signal);
    setTimeout(() => c.abort(new Error('during')), 10);
    await expect(s).rejects.toThrow('during');
    expect(Date.now() - t0).toBeLessThan(2000);
    await expect(abortableSleep(1)).resolves.toBeUndefined();
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter('0.5')).toBe(500);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(10_000);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});

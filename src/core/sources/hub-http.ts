/**
 * HTTP for the Hub source: every request goes through here, with the token as an `Authorization`
 * header only (and only to the Hub: never to the file server its redirects point to), a no-progress
 * timeout per attempt, retries of transient failures (a 429 waits out its `Retry-After`), and Hub
 * answers mapped to typed errors. `fetchRange` resumes a body cut mid-stream by asking only for the
 * bytes not yet received and writing them after the ones it has.
 */
import {
  displayUrl,
  HubAccessError,
  HubCdnRefusedError,
  HubApiError,
  HubNetworkError,
  HubNotFoundError,
  HubTimeoutError,
  HubUnavailableError,
  isTransientError,
  redactSecret,
  type HubMissing,
} from './hub-errors.ts';
import { parseRetryAfter, withRetry, type RetryPolicy } from './retry.ts';

export interface HubHttp {
  repo: string;
  /** The revision as asked (for messages). */
  revision: string;
  /** The Hub's base URL: answers from another origin come from the file server its redirects point to. */
  hubUrl: string;
  accessToken?: string;
  fetch: typeof fetch;
  policy: Required<RetryPolicy>;
  /** Signals that cancel the request: the tree's and the caller's. */
  signals: readonly (AbortSignal | undefined)[];
  /** Told when a rate limit makes a request wait. */
  onWarning?: (message: string) => void;
}

/** A signal that aborts when any of `signals` does; dispose() detaches it from them. */
class LinkedSignal {
  readonly #controller = new AbortController();
  readonly #signals: AbortSignal[];
  readonly #onAbort: (this: AbortSignal) => void;

  constructor(signals: readonly (AbortSignal | undefined)[]) {
    this.#signals = signals.filter((s): s is AbortSignal => s !== undefined);
    const controller = this.#controller;
    this.#onAbort = function (this: AbortSignal) {
      controller.abort(this.reason);
    };
    for (const s of this.#signals) {
      if (s.aborted) controller.abort(s.reason);
      else s.addEventListener('abort', this.#onAbort, { once: true });
    }
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  dispose(): void {
    for (const s of this.#signals) s.removeEventListener('abort', this.#onAbort);
  }
}

/** One attempt's abort controller: follows the caller's signal, and aborts itself after `timeoutMs` without a byte. */
class Attempt {
  readonly controller = new AbortController();
  timedOut = false;
  readonly #caller: AbortSignal;
  readonly #timeoutMs: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #onAbort = () => this.controller.abort(this.#caller.reason);

  constructor(caller: AbortSignal, timeoutMs: number) {
    this.#caller = caller;
    this.#timeoutMs = timeoutMs;
    if (caller.aborted) this.controller.abort(caller.reason);
    else caller.addEventListener('abort', this.#onAbort, { once: true });
    this.touch();
  }

  /** A byte arrived: restart the clock (a timeout of 0 means none). */
  touch(): void {
    if (this.#timeoutMs <= 0) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort(new DOMException('request timed out', 'TimeoutError'));
    }, this.#timeoutMs);
  }

  /** The caller's abort reason, if the caller aborted. */
  get callerAbort(): { reason: unknown } | null {
    return this.#caller.aborted ? { reason: this.#caller.reason } : null;
  }

  dispose(): void {
    clearTimeout(this.#timer);
    this.#caller.removeEventListener('abort', this.#onAbort);
  }
}

/** Run `op` under one signal linked to all of http's, then detach it. */
async function linked<T>(http: HubHttp, op: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const link = new LinkedSignal(http.signals);
  try {
    return await op(link.signal);
  } catch (err) {
    throw redactSecret(err, http.accessToken);
  } finally {
    link.dispose();
  }
}

function headers(http: HubHttp, extra: Record<string, string> = {}, sendToken = true): Record<string, string> {
  return http.accessToken && sendToken ? { ...extra, Authorization: `Bearer ${http.accessToken}` } : extra;
}

/** Whether an answer came from another origin than the Hub's (a redirect to its file server was followed). */
export function isFromElsewhere(http: HubHttp, res: Response): boolean {
  if (!res.url) return false;
  try {
    return new URL(res.url).origin !== new URL(http.hubUrl).origin;
  } catch {
    return false;
  }
}

/** Retry options shared by every request: transient errors only; a rate limit's wait is reported. */
function retryOptions(http: HubHttp, signal: AbortSignal, what: string) {
  return {
    policy: http.policy,
    signal,
    isTransient: isTransientError,
    giveUp: giveUp(http, what),
    onRetry: ({ delayMs, error }: { delayMs: number; error: unknown }) => {
      if (error instanceof HubApiError && error.status === 429) {
        http.onWarning?.(`${what}: the Hub's rate limit was reached; waiting ${Math.round(delayMs / 1000)} s as it asks (Retry-After)`);
      }
    },
  };
}

/** Turn a failure of fetch or of reading a body into a typed error (or the caller's abort reason). */
function classify(err: unknown, attempt: Attempt, what: string, url: string, timeoutMs: number): unknown {
  const abort = attempt.callerAbort;
  if (abort) return abort.reason;
  if (attempt.timedOut) return new HubTimeoutError(what, url, timeoutMs);
  if (err instanceof Error && 'transient' in err) return err; // already one of ours
  return new HubNetworkError(what, url, err);
}

/** The typed error for a non-OK answer. `notFound` says what a bare 404 means at this URL. */
export async function errorFromResponse(
  http: HubHttp,
  res: Response,
  what: string,
  url: string,
  notFound: HubMissing,
  file?: string,
): Promise<Error> {
  const code = res.headers.get('x-error-code');
  const requestId = res.headers.get('x-request-id') ?? undefined;
  let serverMessage = res.headers.get('x-error-message') ?? undefined;
  const body = await res.text().catch(() => '');
  if (serverMessage === undefined && body !== '') {
    try {
      const json: unknown = JSON.parse(body);
      if (json && typeof json === 'object' && typeof (json as { error?: unknown }).error === 'string') {
        serverMessage = (json as { error: string }).error;
      }
    } catch {
      if (body.length <= 200 && !body.includes('<')) serverMessage = body.trim();
    }
  }
  if (serverMessage !== undefined && serverMessage.length > 300) serverMessage = `${serverMessage.slice(0, 300)}…`;
  const tokenGiven = Boolean(http.accessToken);
  const where = { repo: http.repo, revision: http.revision, file };
  let err: Error;
  if (code === 'GatedRepo') err = new HubAccessError(http.repo, res.status, tokenGiven, 'gated', http.hubUrl);
  else if (code === 'RepoNotFound') err = new HubNotFoundError('repo', where, tokenGiven);
  else if (code === 'RevisionNotFound') err = new HubNotFoundError('revision', where, tokenGiven);
  else if (code === 'EntryNotFound') err = new HubNotFoundError('file', where, tokenGiven);
  else if (res.status === 401 || res.status === 403) err = new HubAccessError(http.repo, res.status, tokenGiven);
  else if (res.status === 404) err = new HubNotFoundError(notFound, where, tokenGiven);
  else {
    err = new HubApiError(what, res.status, displayUrl(url), {
      requestId,
      serverMessage,
      retryAfterMs: parseRetryAfter(res.headers.get('retry-after')),
    });
  }
  return redactSecret(err, http.accessToken);
}

function giveUp(http: HubHttp, what: string) {
  return (attempts: number, last: unknown) => redactSecret(new HubUnavailableError(what, attempts, last), http.accessToken);
}

/**
 * GET a JSON document with retries. `what` names the operation in errors ("org/x: listing files").
 * Returns the parsed body and the response headers (for pagination).
 */
export async function getJson(
  http: HubHttp,
  url: string,
  what: string,
  notFound: HubMissing,
): Promise<{ body: unknown; headers: Headers }> {
  const shownUrl = displayUrl(url);
  return linked(http, (signal) => withRetry(
    async () => {
      const attempt = new Attempt(signal, http.policy.timeoutMs);
      try {
        let res: Response;
        let text: string;
        try {
          res = await http.fetch(url, {
            headers: headers(http, { Accept: 'application/json' }),
            signal: attempt.controller.signal,
          });
          if (!res.ok) throw await errorFromResponse(http, res, what, url, notFound);
          text = await res.text();
        } catch (err) {
          throw classify(err, attempt, what, shownUrl, http.policy.timeoutMs);
        }
        try {
          return { body: JSON.parse(text) as unknown, headers: res.headers };
        } catch {
          throw new HubApiError(`${what}: the answer is not JSON`, res.status, shownUrl);
        }
      } finally {
        attempt.dispose();
      }
    },
    retryOptions(http, signal, what),
  ));
}

/**
 * The size of the file at `url` from a HEAD (for listings without sizes). `onResponse` sees the final
 * answer (after redirects), so the caller can keep where the file really is.
 */
export async function headSize(http: HubHttp, url: string, what: string, file: string, onResponse?: (res: Response) => void): Promise<number> {
  const shownUrl = displayUrl(url);
  return linked(http, (signal) => withRetry(
    async () => {
      const attempt = new Attempt(signal, http.policy.timeoutMs);
      try {
        let res: Response;
        try {
          res = await http.fetch(url, { method: 'HEAD', headers: headers(http), signal: attempt.controller.signal });
          if (!res.ok) throw await errorFromResponse(http, res, what, url, 'file', file);
          onResponse?.(res);
        } catch (err) {
          throw classify(err, attempt, what, shownUrl, http.policy.timeoutMs);
        }
        const size = Number(res.headers.get('x-linked-size') ?? res.headers.get('content-length') ?? NaN);
        if (!Number.isSafeInteger(size) || size < 0) {
          throw new HubApiError(`${what}: the answer has no file size (Content-Length)`, res.status, shownUrl);
        }
        return size;
      } finally {
        attempt.dispose();
      }
    },
    retryOptions(http, signal, what),
  ));
}

/** One range read: where, what, and how to report it. */
export interface RangeRequest {
  url: string;
  /** Names the file in errors. */
  label: string;
  /** Path inside the repo. */
  file: string;
  offset: number;
  length: number;
  /** Told of every piece received (never twice for the same byte). */
  onBytes(n: number): void;
  /**
   * Where the bytes go and how many are there already: a read that an earlier request left half done
   * continues after them. @default a fresh buffer
   */
  target?: { out: Uint8Array; got: number };
  /** Sees each answer's headers before its body (after redirects: `res.url` is where the bytes came from). */
  onResponse?(res: Response): void;
  /** Send the token: to the Hub yes, to a signed file-server URL no. @default true */
  withToken?: boolean;
}

/**
 * Read `length` bytes at `offset` of the file at `url` with `Range` requests. A body cut short is
 * resumed from the first missing byte. A refusal by the file server a redirect led to (its signed
 * URL expired) is a HubCdnRefusedError, for the caller to ask the Hub for a fresh URL.
 */
export async function fetchRange(http: HubHttp, req: RangeRequest): Promise<Uint8Array> {
  const { url, label, file, offset, length, onBytes } = req;
  const target = req.target ?? { out: new Uint8Array(length), got: 0 };
  const out = target.out;
  const last = offset + length - 1;
  const what = `${label} bytes ${offset}-${last}`;
  const shownUrl = displayUrl(url);
  let gotBeforeAttempt = target.got;
  return linked(http, (signal) => withRetry(
    async () => {
      gotBeforeAttempt = target.got;
      const from = offset + target.got;
      const attempt = new Attempt(signal, http.policy.timeoutMs);
      let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
      try {
        const res = await http.fetch(url, {
          headers: headers(http, { Range: `bytes=${from}-${last}` }, req.withToken ?? true),
          signal: attempt.controller.signal,
        });
        const elsewhere = isFromElsewhere(http, res);
        if (!res.ok) {
          if (elsewhere && [401, 403, 404, 410].includes(res.status)) {
            await res.body?.cancel().catch(() => undefined);
            throw new HubCdnRefusedError(what, res.status, displayUrl(res.url));
          }
          throw await errorFromResponse(http, res, what, url, 'file', file);
        }
        req.onResponse?.(res);
        // 200: the server ignored Range and sends the whole file; skip to the bytes wanted.
        let skip = 0;
        if (res.status === 200) skip = from;
        else if (res.status === 206) checkContentRange(res, from, last, what, shownUrl);
        else throw new HubApiError(`${what}: unexpected answer to a Range request`, res.status, shownUrl);
        if (res.body === null) throw new HubNetworkError(what, shownUrl, 'empty body');
        reader = res.body.getReader();
        while (target.got < length) {
          const { done, value } = await reader.read();
          if (done) break;
          attempt.touch();
          let piece = value;
          if (skip > 0) {
            const dropped = Math.min(skip, piece.byteLength);
            skip -= dropped;
            piece = piece.subarray(dropped);
          }
          const n = Math.min(piece.byteLength, length - target.got);
          if (n === 0) continue;
          out.set(piece.subarray(0, n), target.got);
          target.got += n;
          onBytes(n);
        }
        if (target.got < length) {
          throw new HubNetworkError(what, shownUrl, `the body ended after ${target.got - gotBeforeAttempt} of ${length - gotBeforeAttempt} bytes`);
        }
        return out;
      } catch (err) {
        throw classify(err, attempt, what, shownUrl, http.policy.timeoutMs);
      } finally {
        // Done early (server ignored Range) or failed: release the connection.
        reader?.cancel().catch(() => undefined);
        attempt.dispose();
      }
    },
    { ...retryOptions(http, signal, what), progressed: () => target.got > gotBeforeAttempt },
  ));
}

/** A 206 must start where we asked and end no later than we asked. */
function checkContentRange(res: Response, from: number, last: number, what: string, url: string): void {
  const header = res.headers.get('content-range');
  const m = header ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header.trim()) : null;
  if (!m) throw new HubApiError(`${what}: 206 answer without a valid Content-Range ("${header ?? ''}")`, 206, url);
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (start !== from || end > last) {
    throw new HubApiError(`${what}: the server sent bytes ${start}-${end} for a request of ${from}-${last}`, 206, url);
  }
}

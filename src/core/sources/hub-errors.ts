/**
 * Errors of the Hub source. Permanent ones (bad ref, no access, not found, other 4xx) are kept apart
 * from transient ones (5xx, 429, network, timeout) by `transient`, so callers retry only what can
 * succeed. No message ever holds the access token: URLs are built without it and are shown without
 * user info, and every message is scrubbed of the token as a last guard (see `redactSecret`).
 */

/** A model reference is not a valid Hub repo id (`org/name` or `name`, optional `@revision`). */
export class HubRefError extends Error {
  readonly ref: string;
  readonly reason: string;

  constructor(ref: string, reason: string) {
    super(`"${ref}" is not a Hub model reference: ${reason}`);
    this.name = 'HubRefError';
    this.ref = ref;
    this.reason = reason;
  }
}

/** 401/403, or a gated repo and no token: the repo is gated or private and the request had no (valid) token. */
export class HubAccessError extends Error {
  readonly repo: string;
  /** The HTTP status, or null when the model info said "gated" and no token was given (nothing was refused yet). */
  readonly status: number | null;
  readonly transient = false;

  constructor(repo: string, status: number | null, tokenGiven: boolean) {
    const hint = tokenGiven
      ? 'the token given was refused (it may lack read access, or the terms are not accepted yet)'
      : status === null
        ? 'the repo is gated and no token was given'
        : 'no token was given';
    super(`${repo}: this repo needs access: accept its terms on the Hub and give a token (${hint}${status === null ? '' : `; HTTP ${status}`})`);
    this.name = 'HubAccessError';
    this.repo = repo;
    this.status = status;
  }
}

/** What could not be found, most specific first. */
export type HubMissing = 'repo' | 'revision' | 'file';

/** 404 (or the Hub's "repo not found" 401): names the repo, the revision and the file when one was asked. */
export class HubNotFoundError extends Error {
  readonly repo: string;
  readonly revision: string;
  readonly file?: string;
  readonly missing: HubMissing;
  readonly transient = false;

  constructor(missing: HubMissing, where: { repo: string; revision: string; file?: string }, tokenGiven: boolean) {
    let message: string;
    switch (missing) {
      case 'repo':
        message =
          `${where.repo}: no such model repo on the Hub` +
          (tokenGiven ? '' : ' (if it is private, give a token that can read it)');
        break;
      case 'revision':
        message = `${where.repo}: no revision "${where.revision}" (not a branch, tag or commit of this repo)`;
        break;
      case 'file':
        message = `${where.repo}@${where.revision}: no file "${where.file ?? ''}" in this repo`;
        break;
      default: {
        const unreachable: never = missing;
        throw new Error(`unknown HubMissing ${String(unreachable)}`);
      }
    }
    super(message);
    this.name = 'HubNotFoundError';
    this.repo = where.repo;
    this.revision = where.revision;
    this.file = where.file;
    this.missing = missing;
  }
}

/** Any other unexpected answer of the Hub API or file server. */
export class HubApiError extends Error {
  readonly status: number;
  /** The URL requested, without user info (tokens are never in our URLs). */
  readonly url: string;
  /** The `X-Request-Id` header, to quote when reporting a Hub problem. */
  readonly requestId?: string;
  /** 5xx and 429 are worth retrying; other statuses will not change on retry. */
  readonly transient: boolean;
  /** From `Retry-After`, when the server sent one. */
  readonly retryAfterMs?: number;

  constructor(
    what: string,
    status: number,
    url: string,
    details: { requestId?: string; serverMessage?: string; retryAfterMs?: number } = {},
  ) {
    const extra = [
      details.serverMessage ? `"${details.serverMessage}"` : '',
      details.requestId ? `request id ${details.requestId}` : '',
    ].filter(Boolean);
    super(`${what}: HTTP ${status} from ${url}${extra.length ? ` (${extra.join(', ')})` : ''}`);
    this.name = 'HubApiError';
    this.status = status;
    this.url = url;
    this.requestId = details.requestId;
    this.transient = isTransientStatus(status);
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** The connection failed or was cut (before or during the body). Transient. */
export class HubNetworkError extends Error {
  readonly url: string;
  readonly transient = true;

  constructor(what: string, url: string, cause: unknown) {
    super(`${what}: network error from ${url}: ${describeCause(cause)}`, { cause });
    this.name = 'HubNetworkError';
    this.url = url;
  }
}

/** No byte arrived for `timeoutMs`. Transient. */
export class HubTimeoutError extends Error {
  readonly url: string;
  readonly timeoutMs: number;
  readonly transient = true;

  constructor(what: string, url: string, timeoutMs: number) {
    super(`${what}: no answer from ${url} for ${timeoutMs} ms`);
    this.name = 'HubTimeoutError';
    this.url = url;
    this.timeoutMs = timeoutMs;
  }
}

/** Every retry of a transient failure failed; `cause` is the last failure. */
export class HubUnavailableError extends Error {
  readonly attempts: number;
  readonly transient = true;

  constructor(what: string, attempts: number, last: unknown) {
    super(`${what}: gave up after ${attempts} attempts; last failure: ${describeCause(last)}`, { cause: last });
    this.name = 'HubUnavailableError';
    this.attempts = attempts;
  }
}

/** The repo has no weights we can read safely (pickle-only, or no safetensors at all). */
export class HubFormatError extends Error {
  readonly repo: string;
  readonly transient = false;

  constructor(repo: string, reason: string) {
    super(`${repo}: ${reason}`);
    this.name = 'HubFormatError';
    this.repo = repo;
  }
}

export function isTransientStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599);
}

/** True for errors a retry may cure: transient Hub errors, and fetch's own network failures. */
export function isTransientError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  if ('transient' in err) return (err as { transient: unknown }).transient === true;
  // fetch() rejects with a TypeError when the connection fails (DNS, refused, reset).
  return err instanceof TypeError;
}

function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const inner = cause.cause instanceof Error ? ` (${cause.cause.message})` : '';
    return `${cause.message}${inner}`;
  }
  return String(cause);
}

/** `url` without user info, for messages. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return url;
  }
}

/**
 * Replace every occurrence of `secret` in `err`'s message (and its causes') by `***`. A guard: we never
 * put the token in a URL or message, but a server could echo it back in an error body.
 */
export function redactSecret<E>(err: E, secret: string | undefined): E {
  if (!secret) return err;
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 5; depth++) {
    if (e.message.includes(secret)) e.message = e.message.split(secret).join('***');
    if (e.stack?.includes(secret)) e.stack = e.stack.split(secret).join('***');
    e = e.cause;
  }
  return err;
}

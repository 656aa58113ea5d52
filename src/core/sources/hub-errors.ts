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

/** Why a repo refused access: its terms must be accepted (gated), or the token (or its absence) does not do. */
export type HubAccessReason = 'gated' | 'denied';

/**
 * 401/403, or a gated repo and no token: the repo is gated (`X-Error-Code: GatedRepo`, or the model
 * info says so) or the request had no token that can read it. Gated repos get their own message: the
 * fix there is accepting the terms on the repo's page, not another token.
 */
export class HubAccessError extends Error {
  readonly repo: string;
  /** The HTTP status, or null when the model info said "gated" and no token was given (nothing was refused yet). */
  readonly status: number | null;
  readonly reason: HubAccessReason;
  readonly transient = false;

  constructor(repo: string, status: number | null, tokenGiven: boolean, reason: HubAccessReason = 'denied', hubUrl?: string) {
    const page = hubUrl ? `${hubUrl.replace(/\/+$/, '')}/${repo}` : null;
    const http = status === null ? '' : `HTTP ${status}`;
    const notes = (...parts: string[]) => ` (${parts.filter(Boolean).join('; ')})`;
    let message: string;
    if (reason === 'gated') {
      const where = page ? `its page: ${page}` : '';
      message = tokenGiven
        ? `${repo}: this repo is gated and the token given was refused: accept its terms on the Hub with the token's account${notes(where, http)}`
        : `${repo}: this repo is gated: accept its terms on the Hub and give a token of that account${notes('no token was given', where, http)}`;
    } else {
      message = tokenGiven
        ? `${repo}: the token given was refused: it cannot read this repo (no read access, or expired)${notes(http)}`
        : `${repo}: this repo needs access: give a token that can read it${notes('no token was given', http)}`;
    }
    super(message);
    this.name = 'HubAccessError';
    this.repo = repo;
    this.status = status;
    this.reason = reason;
  }
}

/** What could not be found, most specific first. */
export type HubMissing = 'repo' | 'revision' | 'file';

/**
 * 404, or the Hub's 401 "repository not found": names the repo, the revision and the file when one
 * was asked. The Hub answers a private repo it hides exactly as a missing one, so the message says
 * both, in the words that fit the request (no token: give one; a token: it cannot see the repo).
 */
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
        message = tokenGiven
          ? `${where.repo}: no such model repo that this token can read (it does not exist, or it is private to an account the token does not belong to)`
          : `${where.repo}: no such model repo on the Hub (if it is private, give a token that can read it)`;
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

/**
 * The file server a `resolve` redirect pointed to (the Hub's CDN) refused its signed URL: it expired
 * (403, 410) or is no longer valid. Not retried as such: the reader asks the Hub for a fresh URL.
 */
export class HubCdnRefusedError extends Error {
  readonly status: number;
  readonly url: string;
  readonly transient = false;

  constructor(what: string, status: number, url: string) {
    super(`${what}: the download URL the Hub redirected to was refused (HTTP ${status} from ${url}); it may have expired`);
    this.name = 'HubCdnRefusedError';
    this.status = status;
    this.url = url;
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

/** Query parameters of signed URLs (S3, CloudFront, ours) whose values are credentials of a kind. */
const SIGNED_PARAM = /signature|credential|policy|key-pair-id|token/i;

/** `url` without user info, and with signed-URL credentials blanked, for messages. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    for (const key of [...u.searchParams.keys()]) if (SIGNED_PARAM.test(key)) u.searchParams.set(key, '…');
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

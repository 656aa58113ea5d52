/**
 * What the real Hub does around `resolve` that a plain file server does not, for the local server to
 * imitate: LFS files are answered with a redirect to a second origin (the CDN) at a signed URL that
 * expires, and `/resolve/` requests count against a rate limit (HTTP 429 with `Retry-After`).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { HttpError } from './hub-server-http.ts';

/** Signed, expiring CDN URLs: `/objects/<repo>/<commit>/<path>?Expires=<unix s>&Signature=<hmac>`. */
export class UrlSigner {
  readonly #secret = randomBytes(32);

  constructor(
    readonly ttlMs: number,
    readonly now: () => number = Date.now,
  ) {}

  #mac(path: string, expires: string): string {
    return createHmac('sha256', this.#secret).update(`${path}\n${expires}`).digest('hex');
  }

  /** The path and query of a fresh URL for a file of a repo at a commit. */
  sign(repo: string, commit: string, filePath: string): string {
    const path = `/objects/${encodeURIComponent(repo)}/${commit}/${filePath.split('/').map(encodeURIComponent).join('/')}`;
    const expires = String(Math.floor((this.now() + this.ttlMs) / 1000));
    return `${path}?Expires=${expires}&Signature=${this.#mac(path, expires)}`;
  }

  /**
   * The repo, commit and file of a signed URL, or the CDN's refusal: 403 for a bad signature or an
   * expired URL (as S3 and CloudFront answer), 404 for a path that is not an object.
   */
  verify(url: URL): { repo: string; commit: string; filePath: string } {
    const m = /^\/objects\/([^/]+)\/([0-9a-f]{40})\/(.+)$/.exec(url.pathname);
    if (!m) throw new HttpError(404, `no object ${url.pathname}`);
    const expires = url.searchParams.get('Expires') ?? '';
    const signature = url.searchParams.get('Signature') ?? '';
    const wanted = Buffer.from(this.#mac(url.pathname, expires), 'hex');
    const given = Buffer.from(signature, 'hex');
    if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) throw new HttpError(403, 'AccessDenied: the signature does not match');
    if (!(Number(expires) * 1000 > this.now())) throw new HttpError(403, 'AccessDenied: Request has expired');
    let repo: string;
    let filePath: string;
    try {
      repo = decodeURIComponent(m[1]);
      filePath = m[3].split('/').map(decodeURIComponent).join('/');
    } catch {
      throw new HttpError(404, `no object ${url.pathname}`);
    }
    return { repo, commit: m[2], filePath };
  }
}

/** A fixed-window limit on a count of requests (the Hub's "resolvers" limit). */
export class FixedWindowLimit {
  #windowStart: number;
  #used = 0;

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    readonly now: () => number = Date.now,
  ) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`rate limit must be an integer >= 1, got ${limit}`);
    if (!(windowMs > 0)) throw new RangeError(`rate limit window must be > 0 ms, got ${windowMs}`);
    this.#windowStart = now();
  }

  /** Count one request, or throw the 429 with `Retry-After` (seconds to the window's end) and the RateLimit headers. */
  take(): void {
    const t = this.now();
    if (t - this.#windowStart >= this.windowMs) {
      this.#windowStart = t;
      this.#used = 0;
    }
    const resetS = Math.max(1, Math.ceil((this.#windowStart + this.windowMs - t) / 1000));
    if (this.#used >= this.limit) {
      throw new HttpError(429, `You have exceeded the rate limit for file downloads (${this.limit} per ${Math.round(this.windowMs / 1000)} s): retry after ${resetS} s`, undefined, {
        'Retry-After': String(resetS),
        RateLimit: `"resolvers";r=0;t=${resetS}`,
        'RateLimit-Policy': `"fixed window";"resolvers";q=${this.limit};w=${Math.round(this.windowMs / 1000)}`,
      });
    }
    this.#used++;
  }
}

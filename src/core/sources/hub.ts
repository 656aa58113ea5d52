/**
 * A Hugging Face Hub model repo as a FileTree, read with HTTP Range requests: opening it resolves the
 * revision to a commit and lists the files (two small API calls); each file is a ByteSource whose
 * read(offset, length) fetches exactly that byte range, or takes it from a RangeCache. Pure: `fetch`
 * is injected, so this runs in pages, workers and Node.
 *
 * Pinning the commit first means every later read sees the same files even if the branch moves, and
 * makes cached ranges valid forever.
 *
 * The real Hub answers `{hub}/{repo}/resolve/{commit}/{path}` of a weights file with a redirect to its
 * CDN at a signed URL that expires, and counts every `/resolve/` request against a rate limit (about
 * 3,000 per 5 minutes without a token). So the first read of a file follows the redirect and keeps the
 * CDN URL; later ranges go there directly, without the token, until it is refused (403/410) or its
 * `Expires` has passed, and then the Hub is asked once more. Reads of a file that start while its
 * location is being found wait for it, so a file costs one `/resolve/` request, not one per tensor.
 * A 429 waits for `Retry-After`. ETags come from `X-Linked-Etag` (the Hub's id of the stored file)
 * when present, and a file whose ETag changes between reads is refused.
 */
import type { ByteSource, FileTree } from '../source.ts';
import { checkRange } from './memory.ts';
import { rangeCacheKey, type RangeCache } from './cache.ts';
import { HubAccessError, HubApiError, HubCdnRefusedError, HubFormatError, HubRefError, displayUrl } from './hub-errors.ts';
import { fetchRange, getJson, headSize, isFromElsewhere, type HubHttp } from './hub-http.ts';
import { repoIdProblem } from './hub-ref.ts';
import { resolveRetryPolicy, type RetryPolicy } from './retry.ts';

export const DEFAULT_HUB_URL = 'https://huggingface.co';

/** One progress report; `bytesReceived` never decreases for a file. */
export interface HubProgress {
  repo: string;
  /** Path inside the repo. */
  file: string;
  /** Bytes of this file delivered so far by this tree: from the network and from the cache. */
  bytesReceived: number;
  /** The file's size: what a full read of it delivers. Reading a range twice without a cache counts it twice. */
  bytesExpected: number;
  /** Network bytes per second over the whole tree, over the last couple of seconds. */
  rate: number;
  /** Whether this report's bytes came from the cache. */
  fromCache: boolean;
}

export interface OpenHubTreeParams {
  /** `org/name` or `name` (see parseHubRef for `org/name@revision`). */
  repo: string;
  /** Branch, tag or commit. @default 'main' */
  revision?: string;
  /** @default 'https://huggingface.co' (the CLI passes `$HF_ENDPOINT`) */
  hubUrl?: string;
  /** Sent only as `Authorization: Bearer`; never in a URL, a message or a log. */
  accessToken?: string;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Where ranges are looked up before any request and stored after. @default none */
  cache?: RangeCache;
  retry?: RetryPolicy;
  onProgress?: (progress: HubProgress) => void;
  /** Aborts the opening and every later read of this tree. */
  signal?: AbortSignal;
  /**
   * Refuse repos without `.safetensors` weights (pickle-only ones in particular), with a message
   * saying why. @default true
   */
  requireSafetensors?: boolean;
  /** Told of problems that do not stop reading (a cache that cannot store). @default console.warn */
  onWarning?: (message: string) => void;
}

export interface HubTree extends FileTree {
  readonly repo: string;
  /** The revision as asked. */
  readonly revision: string;
  /** The commit the revision resolved to; every read is of this commit. */
  readonly commit: string;
  readonly hubUrl: string;
  /** Sizes from the listing; null where the listing gave none (a HEAD finds it on open). */
  readonly sizes: ReadonlyMap<string, number | null>;
  /** Requests made to `/resolve/` URLs so far (each counts against the Hub's rate limit). */
  readonly resolveRequests: number;
  /** A file's ETag once a read has seen it (`X-Linked-Etag`, else `ETag`), unquoted. */
  etagOf(path: string): string | undefined;
}

export async function openHubTree(params: OpenHubTreeParams): Promise<HubTree> {
  const repo = params.repo;
  const problem = repoIdProblem(repo);
  if (problem !== null) {
    throw new HubRefError(repo, repo.includes('@') ? `${problem} (pass the revision separately, or use parseHubRef)` : problem);
  }
  const revision = params.revision ?? 'main';
  const hubUrl = (params.hubUrl ?? DEFAULT_HUB_URL).replace(/\/+$/, '');
  const doFetch = params.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init));
  const http: HubHttp = {
    repo,
    revision,
    hubUrl,
    accessToken: params.accessToken || undefined,
    fetch: doFetch,
    policy: resolveRetryPolicy(params.retry),
    signals: [params.signal],
    onWarning: params.onWarning ?? ((m: string) => console.warn(m)),
  };

  const commit = await resolveCommit(http, hubUrl);
  const sizes = await listFiles(http, hubUrl, commit);
  if (params.requireSafetensors ?? true) checkWeightsFormat(repo, revision, [...sizes.keys()]);
  return new HubRepoTree(params, http, hubUrl, commit, sizes);
}

async function resolveCommit(http: HubHttp, hubUrl: string): Promise<string> {
  const url = `${hubUrl}/api/models/${http.repo}/revision/${encodeURIComponent(http.revision)}`;
  const what = `${http.repo}@${http.revision}: resolving the revision`;
  const { body } = await getJson(http, url, what, 'repo');
  const info = body as { sha?: unknown; gated?: unknown } | null;
  // Model info is public for gated repos but their files are not: without a token, fail now, not at the first read.
  if (!http.accessToken && info?.gated !== undefined && info.gated !== false && info.gated !== null) {
    throw new HubAccessError(http.repo, null, false, 'gated', hubUrl);
  }
  const sha = info?.sha;
  if (typeof sha !== 'string' || !/^[0-9a-f]{40}$/.test(sha)) {
    throw new HubApiError(`${what}: the answer has no commit "sha"`, 200, displayUrl(url));
  }
  return sha;
}

/** Untrusted listings are capped: no repo we can merge has more files or pages than this. */
const MAX_LISTED_FILES = 100_000;
const MAX_LIST_PAGES = 1_000;

async function listFiles(http: HubHttp, hubUrl: string, commit: string): Promise<Map<string, number | null>> {
  const sizes = new Map<string, number | null>();
  const what = `${http.repo}@${http.revision}: listing files`;
  let url: string | undefined = `${hubUrl}/api/models/${http.repo}/tree/${commit}?recursive=true&expand=false`;
  const origin = new URL(hubUrl).origin;
  for (let page = 0; url !== undefined; page++) {
    if (page >= MAX_LIST_PAGES) throw new HubApiError(`${what}: more than ${MAX_LIST_PAGES} pages`, 200, displayUrl(url));
    const { body, headers } = await getJson(http, url, what, 'revision');
    if (!Array.isArray(body)) throw new HubApiError(`${what}: the answer is not a list of files`, 200, displayUrl(url));
    for (const entry of body as unknown[]) {
      const file = listedFile(entry);
      if (file) sizes.set(file.path, file.size);
    }
    if (sizes.size > MAX_LISTED_FILES) throw new HubApiError(`${what}: more than ${MAX_LISTED_FILES} files`, 200, displayUrl(url));
    const next = nextLink(headers.get('link'), url);
    // The token goes with every request: never follow a link to another host.
    if (next !== undefined && new URL(next).origin !== origin) {
      throw new HubApiError(`${what}: the next page is on another host (${new URL(next).origin})`, 200, displayUrl(url));
    }
    url = next;
  }
  return sizes;
}

/** A file entry of the tree API (`{type, path, size, lfs?: {size}}`), or null for folders and junk. */
function listedFile(entry: unknown): { path: string; size: number | null } | null {
  if (!entry || typeof entry !== 'object') return null;
  const e = entry as { type?: unknown; path?: unknown; size?: unknown; lfs?: { size?: unknown } | null };
  if (e.type !== 'file' || typeof e.path !== 'string' || e.path === '') return null;
  // For LFS files `size` may be the pointer's; the object's size is what resolve serves.
  const size = e.lfs && typeof e.lfs === 'object' ? e.lfs.size : e.size;
  return { path: e.path, size: typeof size === 'number' && Number.isSafeInteger(size) && size >= 0 ? size : null };
}

/** The `rel="next"` target of a Link header, resolved against the current URL. */
export function nextLink(header: string | null, base: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(',')) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (m && /(^|;)\s*rel\s*=\s*"?next"?\s*(;|$)/i.test(m[2])) return new URL(m[1], base).toString();
  }
  return undefined;
}

const PICKLE_FILE = /\.(bin|pt|pth|ckpt|pkl|pickle)$/i;

/** Pickle files run code when loaded, so we never open them; say so instead of "no weights". */
export function checkWeightsFormat(repo: string, revision: string, paths: readonly string[]): void {
  if (paths.some((p) => p.endsWith('.safetensors'))) return;
  const pickles = paths.filter((p) => PICKLE_FILE.test(p));
  if (pickles.length > 0) {
    throw new HubFormatError(
      repo,
      `has only pickle weights at ${revision} (${listSome(pickles)}); pickles run code when loaded, so they are ` +
        'not opened: convert the model to safetensors, or choose a repo that has .safetensors files',
    );
  }
  throw new HubFormatError(repo, `has no .safetensors weights at ${revision} (files: ${listSome(paths) || 'none'})`);
}

function listSome(items: readonly string[], max = 5): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

/** Network rate over a sliding window. */
class RateMeter {
  readonly #samples: { t: number; bytes: number }[] = [];
  static readonly WINDOW_MS = 2000;

  add(bytes: number): number {
    const now = Date.now();
    this.#samples.push({ t: now, bytes });
    while (this.#samples.length > 1 && now - this.#samples[0].t > RateMeter.WINDOW_MS) this.#samples.shift();
    const span = Math.max(now - this.#samples[0].t, 250);
    let total = 0;
    for (const s of this.#samples) total += s.bytes;
    return (total * 1000) / span;
  }
}

/**
 * Where one file's bytes are read from. `cdn`: the URL the Hub's redirect led to, used directly until
 * refused or expired. `direct`: the Hub serves the file itself (no redirect), so each read goes there.
 */
interface FileLocation {
  cdn: { url: string; expiresAt: number | null } | null;
  direct: boolean;
  /** A read that is finding the location now; others wait for it. */
  finding: Promise<void> | null;
  etag?: string;
}

/** Use a CDN URL no later than this before the expiry it states. */
const EXPIRY_MARGIN_MS = 5_000;

/** The expiry a signed URL states (`Expires=` in Unix seconds, or S3's `X-Amz-Date` + `X-Amz-Expires`), in ms; null if none. */
export function signedUrlExpiry(url: string): number | null {
  let q: URLSearchParams;
  try {
    q = new URL(url).searchParams;
  } catch {
    return null;
  }
  const expires = Number(q.get('Expires') ?? NaN);
  if (Number.isFinite(expires) && expires > 0) return expires * 1000;
  const date = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(q.get('X-Amz-Date') ?? '');
  const seconds = Number(q.get('X-Amz-Expires') ?? NaN);
  if (date && Number.isFinite(seconds)) {
    const [, y, mo, d, h, mi, se] = date.map(Number);
    return Date.UTC(y, mo - 1, d, h, mi, se) + seconds * 1000;
  }
  return null;
}

function unquoteEtag(value: string | null): string | undefined {
  if (value === null || value === '') return undefined;
  return value.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

class HubRepoTree implements HubTree {
  readonly name: string;
  readonly repo: string;
  readonly revision: string;
  readonly commit: string;
  readonly hubUrl: string;
  readonly sizes: ReadonlyMap<string, number | null>;
  readonly #params: OpenHubTreeParams;
  readonly #http: HubHttp;
  readonly #received = new Map<string, number>();
  readonly #rate = new RateMeter();
  readonly #files = new Map<string, Promise<ByteSource>>();
  readonly #locations = new Map<string, FileLocation>();
  #resolveRequests = 0;
  #warnedCache = false;

  constructor(params: OpenHubTreeParams, http: HubHttp, hubUrl: string, commit: string, sizes: Map<string, number | null>) {
    this.#params = params;
    this.#http = http;
    this.repo = http.repo;
    this.revision = http.revision;
    this.commit = commit;
    this.hubUrl = hubUrl;
    this.sizes = sizes;
    this.name = `${http.repo}@${commit}`;
  }

  get resolveRequests(): number {
    return this.#resolveRequests;
  }

  etagOf(path: string): string | undefined {
    return this.#locations.get(path)?.etag;
  }

  async list(signal?: AbortSignal): Promise<string[]> {
    signal?.throwIfAborted();
    return [...this.sizes.keys()];
  }

  async open(path: string, signal?: AbortSignal): Promise<ByteSource | null> {
    signal?.throwIfAborted();
    if (!this.sizes.has(path)) return null;
    let file = this.#files.get(path);
    if (file === undefined) {
      file = this.#makeFile(path, signal);
      this.#files.set(path, file);
      file.catch(() => this.#files.delete(path)); // a failed HEAD may be retried by a later open
    }
    return file;
  }

  async #makeFile(path: string, signal?: AbortSignal): Promise<ByteSource> {
    const url = this.#fileUrl(path);
    const label = `${this.name}/${path}`;
    let size = this.sizes.get(path) ?? null;
    if (size === null) {
      this.#resolveRequests++;
      size = await headSize({ ...this.#http, signals: [...this.#http.signals, signal] }, url, `${label}: size`, path, (res) =>
        this.#noteAnswer(path, label, res),
      );
    }
    const fileSize = size;
    return {
      name: label,
      size: fileSize,
      read: (offset, length, readSignal) => this.#read(path, url, label, fileSize, offset, length, readSignal),
    };
  }

  #fileUrl(path: string): string {
    const encoded = path.split('/').map(encodeURIComponent).join('/');
    return `${this.hubUrl}/${this.repo}/resolve/${this.commit}/${encoded}`;
  }

  #location(path: string): FileLocation {
    let loc = this.#locations.get(path);
    if (!loc) {
      loc = { cdn: null, direct: false, finding: null };
      this.#locations.set(path, loc);
    }
    return loc;
  }

  /** What an answer tells about the file: where its bytes are (after a redirect), and its ETag. */
  #noteAnswer(path: string, label: string, res: Response): void {
    const loc = this.#location(path);
    const elsewhere = isFromElsewhere(this.#http, res);
    if (elsewhere) loc.cdn = { url: res.url, expiresAt: signedUrlExpiry(res.url) };
    else if (loc.cdn === null) loc.direct = true;
    const etag = unquoteEtag(res.headers.get('x-linked-etag')) ?? unquoteEtag(res.headers.get('etag'));
    if (etag === undefined) return;
    if (loc.etag === undefined) loc.etag = etag;
    else if (loc.etag !== etag) {
      throw new HubApiError(`${label}: the file changed while it was read (ETag ${loc.etag}, now ${etag})`, res.status, displayUrl(res.url || this.#fileUrl(path)));
    }
  }

  async #read(path: string, url: string, label: string, size: number, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    signal?.throwIfAborted();
    this.#params.signal?.throwIfAborted();
    checkRange(label, size, offset, length);
    if (length === 0) return new Uint8Array(0);
    const cache = this.#params.cache;
    const key = rangeCacheKey(this.repo, this.commit, path, offset, offset + length - 1);
    if (cache) {
      const hit = await cache.get(key).catch((err: unknown) => {
        this.#warnOnce(`${label}: cannot read the range cache, reading from the Hub: ${messageOf(err)}`);
        return undefined;
      });
      if (hit !== undefined && hit.byteLength === length) {
        this.#report(path, size, length, true);
        return hit;
      }
    }
    const bytes = await this.#fetchBytes(path, url, label, size, offset, length, signal);
    if (cache) {
      try {
        await cache.put(key, bytes);
      } catch (err) {
        this.#warnOnce(`${label}: cannot store a range in the cache, reading on without it: ${messageOf(err)}`);
      }
    }
    return bytes;
  }

  /**
   * The bytes from where the file is: its CDN URL while valid, else the Hub (which either serves them
   * or redirects, and the redirect is kept). A refused CDN URL sends the read back to the Hub for a
   * fresh one, keeping the bytes already received.
   */
  async #fetchBytes(path: string, url: string, label: string, size: number, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const http = { ...this.#http, signals: [...this.#http.signals, signal] };
    const target = { out: new Uint8Array(length), got: 0 };
    const loc = this.#location(path);
    const request = {
      label,
      file: path,
      offset,
      length,
      target,
      onBytes: (n: number) => this.#report(path, size, n, false),
      onResponse: (res: Response) => this.#noteAnswer(path, label, res),
    };
    let refusals = 0;
    for (;;) {
      signal?.throwIfAborted();
      const cdn = loc.cdn;
      if (cdn && (cdn.expiresAt === null || cdn.expiresAt - EXPIRY_MARGIN_MS > Date.now())) {
        try {
          return await fetchRange(http, { ...request, url: cdn.url, withToken: false });
        } catch (err) {
          // Expired or revoked: forget the URL and ask the Hub again (twice at most in a row).
          if (!(err instanceof HubCdnRefusedError) || ++refusals > 2) throw err;
          if (loc.cdn === cdn) loc.cdn = null;
          continue;
        }
      }
      if (loc.cdn) loc.cdn = null; // expired by its own word
      if (loc.direct) {
        this.#resolveRequests++;
        return await fetchRange(http, { ...request, url });
      }
      if (loc.finding) {
        await loc.finding.catch(() => undefined);
        continue;
      }
      let found!: () => void;
      loc.finding = new Promise<void>((done) => (found = done));
      try {
        this.#resolveRequests++;
        return await fetchRange(http, { ...request, url });
      } catch (err) {
        // A fresh CDN URL refused at once: not an expiry, so asking again would not help.
        if (err instanceof HubCdnRefusedError && refusals > 0) throw err;
        if (err instanceof HubCdnRefusedError) {
          refusals++;
          loc.cdn = null;
          continue;
        }
        throw err;
      } finally {
        loc.finding = null;
        found();
      }
    }
  }

  #report(path: string, size: number, bytes: number, fromCache: boolean): void {
    const received = (this.#received.get(path) ?? 0) + bytes;
    this.#received.set(path, received);
    const rate = fromCache ? this.#rate.add(0) : this.#rate.add(bytes);
    this.#params.onProgress?.({ repo: this.repo, file: path, bytesReceived: received, bytesExpected: size, rate, fromCache });
  }

  #warnOnce(message: string): void {
    if (this.#warnedCache) return;
    this.#warnedCache = true;
    (this.#params.onWarning ?? ((m: string) => console.warn(m)))(message);
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * A local stand-in for the Hugging Face Hub, serving model folders under a root as repos: what the
 * Hub source, @huggingface/hub and a browser page need, read and write, plus faults for tests.
 *
 *   npm run hub -- --root DIR [--port 8800] [--host 127.0.0.1] [--users FILE] [--cdn] [--cdn-ttl S]
 *                  [--rate-limit N/S] [--verbose]
 *
 * Read: model info (`/api/models/{repo}[/revision/{rev}]`), the listing (`/api/models?search=&author=
 * &filter=&sort=`), the file tree, `paths-info`, and `resolve` with Range and CORS. Write (for users of
 * `--users`): `whoami-v2`, create repo, preupload, LFS batch with the basic transfer, NDJSON commit
 * (src/cli/hub-server-write.ts), and OAuth sign-in with PKCE (src/cli/hub-server-auth.ts). As on the
 * real Hub, `--cdn` answers `resolve` of LFS files with a redirect to a second origin at a signed URL
 * that expires, and `--rate-limit` answers `/resolve/` requests over the limit with 429 and
 * `Retry-After` (src/cli/hub-server-cdn.ts).
 *
 * Repos on disk: see src/cli/hub-server-repos.ts. `DIR/org/name/.gated` holding a token makes file
 * downloads need `Authorization: Bearer <token>` (model info and the listing stay public, as on the
 * Hub); `.private` hides the repo from anyone but its namespace's users. The commit sha is a hash of
 * the repo's file list, sizes and mtimes; `main` and `HEAD` resolve to it. Object ids are hashes of
 * path, size and mtime (cheap for multi-GB files), or the sha256 of files pushed here.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkUsers, HubAuth, type HubUser } from './hub-server-auth.ts';
import { FixedWindowLimit, UrlSigner } from './hub-server-cdn.ts';
import {
  answerPreflight,
  bodyCounter,
  delay,
  header,
  HttpError,
  readBody,
  readJsonBody,
  sendError,
  sendJson,
  setCorsHeaders,
} from './hub-server-http.ts';
import {
  cardData,
  configInfo,
  fileOid,
  findRepo,
  isLfs,
  lfsOid,
  listRepos,
  pseudoSha1,
  repoTags,
  safetensorsInfo,
  snapshot,
  treeEntry,
  type RepoFile,
  type RepoSnapshot,
} from './hub-server-repos.ts';
import { HubWriter } from './hub-server-write.ts';

export type { HubUser } from './hub-server-auth.ts';

export type HubFaultKind = 'drop-mid-body' | 'status' | 'slow';

/** A fault for the next `times` requests whose path includes `pathIncludes`. */
export interface HubFault {
  pathIncludes: string;
  kind: HubFaultKind;
  /** Only requests of this method (e.g. 'GET'). */
  method?: string;
  /** Only requests to this origin. @default both */
  origin?: 'hub' | 'cdn';
  /** For 'status': the status to answer with. @default 503 */
  status?: number;
  /** For 'status': extra headers (e.g. Retry-After). */
  headers?: Record<string, string>;
  /** For 'slow': wait this long before answering. @default 1000 */
  delayMs?: number;
  /** For 'drop-mid-body': body bytes sent before the connection is cut. @default half the body */
  afterBytes?: number;
  /** @default 1 */
  times?: number | 'always';
}

export interface HubRequestRecord {
  /** Which server answered: the Hub, or the CDN its redirects point to. */
  origin: 'hub' | 'cdn';
  method: string;
  /** Path and query as requested. */
  url: string;
  /** Decoded path, without the query. */
  path: string;
  status: number;
  /** The Authorization header as received (kept in memory for tests, never logged). */
  authorization?: string;
  range?: string;
  /** Body bytes written (a dropped body counts what was sent). */
  bodyBytes: number;
  fault?: HubFaultKind;
}

export interface HubServerStats {
  readonly log: readonly HubRequestRecord[];
  /** Requests whose path includes `pathIncludes` (all when omitted). */
  count(pathIncludes?: string): number;
  /** Body bytes sent for requests whose path includes `pathIncludes` (all when omitted). */
  bodyBytes(pathIncludes?: string): number;
  byPath(): Map<string, { requests: number; bodyBytes: number }>;
  reset(): void;
}

export interface HubServerOptions {
  root: string;
  /** 0 picks a free port. @default 0 */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** Log one line per request (never the token). @default false */
  verbose?: boolean;
  /** Where log lines go. @default stderr */
  log?: (line: string) => void;
  /** Tree and model listing page size (the Hub pages its listings; small pages test pagination). @default 1000 */
  pageSize?: number;
  /** Accounts that can sign in (tokens, OAuth) and write. @default none: the server is read-only */
  users?: readonly HubUser[];
  /** The account the OAuth authorize endpoint signs in. @default the first user */
  oauthUser?: string;
  /** Redirect `resolve` of LFS files to a second origin at signed URLs living `ttlMs`. @default off */
  cdn?: { ttlMs?: number };
  /** At most `resolves` `/resolve/` requests per `windowMs` (then 429 with Retry-After). @default off */
  rateLimit?: { resolves: number; windowMs: number };
  /** The clock of signed URLs and the rate limit (tests move it). @default Date.now */
  now?: () => number;
}

export interface HubServer {
  /** `http://host:port`, no trailing slash. */
  readonly url: string;
  /** The CDN's origin when `cdn` is on, else null. */
  readonly cdnUrl: string | null;
  readonly port: number;
  readonly stats: HubServerStats;
  /** Replace the pending faults. */
  setFaults(faults: readonly HubFault[]): void;
  /** Repo ids found under the root now. */
  repos(): Promise<string[]>;
  close(): Promise<void>;
}

/** A bad command line or option; the message says which. */
export class HubServerOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HubServerOptionError';
  }
}

const DEFAULT_CDN_TTL_MS = 3600_000;

export async function startHubServer(opts: HubServerOptions): Promise<HubServer> {
  const root = resolve(opts.root);
  const rootStat = await stat(root).catch(() => null);
  if (!rootStat?.isDirectory()) throw new HubServerOptionError(`--root ${opts.root}: not a folder`);
  const pageSize = opts.pageSize ?? 1000;
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new HubServerOptionError(`pageSize must be an integer >= 1, got ${pageSize}`);
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const now = opts.now ?? Date.now;
  let users: HubUser[];
  try {
    users = checkUsers(opts.users ?? []);
  } catch (err) {
    throw new HubServerOptionError((err as Error).message);
  }
  const auth = new HubAuth(users, opts.oauthUser);
  const signer = opts.cdn ? new UrlSigner(opts.cdn.ttlMs ?? DEFAULT_CDN_TTL_MS, now) : null;
  const limit = opts.rateLimit ? new FixedWindowLimit(opts.rateLimit.resolves, opts.rateLimit.windowMs, now) : null;
  let faults: HubFault[] = [];
  const records: HubRequestRecord[] = [];
  let requestCounter = 0;
  const baseUrl = (req: IncomingMessage) => `http://${req.headers.host ?? `${opts.host ?? '127.0.0.1'}`}`;
  const writer = new HubWriter({ root, auth, baseUrl });

  const stats: HubServerStats = {
    get log() {
      return records;
    },
    count: (sub) => records.filter((r) => sub === undefined || r.path.includes(sub)).length,
    bodyBytes: (sub) => records.filter((r) => sub === undefined || r.path.includes(sub)).reduce((a, r) => a + r.bodyBytes, 0),
    byPath() {
      const out = new Map<string, { requests: number; bodyBytes: number }>();
      for (const r of records) {
        const e = out.get(r.path) ?? { requests: 0, bodyBytes: 0 };
        e.requests++;
        e.bodyBytes += r.bodyBytes;
        out.set(r.path, e);
      }
      return out;
    },
    reset() {
      records.length = 0;
    },
  };

  function takeFault(origin: 'hub' | 'cdn', method: string, path: string): HubFault | undefined {
    const i = faults.findIndex(
      (f) =>
        path.includes(f.pathIncludes) &&
        (f.method === undefined || f.method.toUpperCase() === method) &&
        (f.origin === undefined || f.origin === origin),
    );
    if (i < 0) return undefined;
    const fault = faults[i];
    if (fault.times !== 'always') {
      const left = (fault.times ?? 1) - 1;
      if (left <= 0) faults.splice(i, 1);
      else faults[i] = { ...fault, times: left };
    }
    return fault;
  }

  type Route = (req: IncomingMessage, res: ServerResponse, ctx: RequestContext) => Promise<void>;
  interface RequestContext {
    method: string;
    path: string;
    url: URL;
    record: HubRequestRecord;
    fault: HubFault | undefined;
  }

  /** Request wrapper of both origins: records, logs (never a token), faults, errors. */
  function serve(origin: 'hub' | 'cdn', route: Route) {
    return (req: IncomingMessage, res: ServerResponse) => {
      const started = Date.now();
      const requestId = `local-${(++requestCounter).toString(16).padStart(6, '0')}`;
      const rawUrl = req.url ?? '/';
      const url = new URL(rawUrl, 'http://local');
      let path: string;
      try {
        path = decodeURIComponent(url.pathname);
      } catch {
        path = url.pathname;
      }
      const method = (req.method ?? 'GET').toUpperCase();
      setCorsHeaders(res);
      res.setHeader('X-Request-Id', requestId);

      if (origin === 'hub' && path.startsWith('/__')) {
        handleControl(req, res, path, method).catch((err: unknown) => sendError(res, err));
        return;
      }
      const record: HubRequestRecord = {
        origin,
        method,
        url: rawUrl,
        path,
        status: 0,
        authorization: header(req, 'authorization'),
        range: header(req, 'range'),
        bodyBytes: 0,
      };
      records.push(record);
      bodyCounter.set(res, record);
      // The status as sent, at once: a client may have the whole body before 'finish' fires here.
      const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
      res.writeHead = ((...args: unknown[]) => {
        record.status = args[0] as number;
        return writeHead(...args);
      }) as typeof res.writeHead;
      let logged = false;
      const logLine = () => {
        record.status = res.statusCode;
        if (logged || !opts.verbose) return;
        logged = true;
        const auth = record.authorization ? ' auth' : '';
        const range = record.range ? ` ${record.range}` : '';
        const fault = record.fault ? ` fault=${record.fault}` : '';
        const where = origin === 'cdn' ? 'cdn ' : '';
        log(`${where}${method} ${rawUrl}${range}${auth} -> ${res.statusCode} ${record.bodyBytes}B ${Date.now() - started}ms${fault}`);
      };
      res.on('finish', logLine);
      res.on('close', logLine);

      const fault = method === 'OPTIONS' ? undefined : takeFault(origin, method, path);
      if (fault) record.fault = fault.kind;
      (async () => {
        if (method === 'OPTIONS') return answerPreflight(res);
        if (fault?.kind === 'slow') await delay(fault.delayMs ?? 1000);
        if (res.destroyed) return;
        if (fault?.kind === 'status') {
          const status = fault.status ?? 503;
          throw new HttpError(status, `injected fault: HTTP ${status}`, undefined, fault.headers ?? {});
        }
        await route(req, res, { method, path, url, record, fault });
      })().catch((err: unknown) => sendError(res, err));
    };
  }

  async function handleControl(req: IncomingMessage, res: ServerResponse, path: string, method: string): Promise<void> {
    if (path === '/__faults' && method === 'POST') {
      const body = await readBody(req);
      let list: unknown;
      try {
        list = JSON.parse(body);
      } catch {
        throw new HttpError(400, 'POST /__faults: the body is not JSON');
      }
      faults = checkFaults(list);
      sendJson(res, 200, { faults });
    } else if (path === '/__faults' && method === 'GET') {
      sendJson(res, 200, { faults });
    } else if (path === '/__stats' && method === 'GET') {
      sendJson(res, 200, {
        requests: records.length,
        bodyBytes: stats.bodyBytes(),
        byPath: Object.fromEntries(stats.byPath()),
      });
    } else if (path === '/__stats/reset' && method === 'POST') {
      stats.reset();
      sendJson(res, 200, { requests: 0 });
    } else {
      throw new HttpError(404, `no control endpoint ${method} ${path}`);
    }
  }

  const hubRoute: Route = async (req, res, { method, path, url, record, fault }) => {
    const segs = path.split('/').filter((s) => s !== '');
    const is = (m: string, p: string) => method === m && path === p;

    if (is('GET', '/.well-known/openid-configuration')) return sendJson(res, 200, auth.openidConfiguration(baseUrl(req)));
    if (is('GET', '/oauth/authorize')) {
      res.writeHead(302, { Location: auth.authorize(url), 'Content-Length': '0' });
      res.end();
      return;
    }
    if (is('POST', '/oauth/token')) return sendJson(res, 200, auth.token(new URLSearchParams(await readBody(req))));
    if (is('GET', '/oauth/userinfo')) return sendJson(res, 200, auth.userinfo(req));
    if (is('GET', '/api/whoami-v2')) return sendJson(res, 200, auth.whoami(req));
    if (is('POST', '/api/repos/create')) return writer.createRepo(req, res);
    if ((method === 'GET' || method === 'HEAD') && path === '/api/models') return sendModelList(req, res, method, url);
    if (method === 'PUT' && segs[0] === 'lfs-upload' && segs.length === 2) return writer.lfsUpload(req, res, url, segs[1]);

    const batchAt = path.indexOf('.git/info/lfs/objects/batch');
    if (method === 'POST' && batchAt > 0 && path.endsWith('.git/info/lfs/objects/batch')) {
      const repoSegs = path.slice(0, batchAt).split('/').filter((s) => s !== '');
      const { repo, rest } = await findRepo(root, repoSegs);
      if (rest.length !== 0) throw new HttpError(404, `no route ${path}`);
      return writer.lfsBatch(req, res, repo);
    }

    if (segs[0] === 'api' && segs[1] === 'models') {
      const { repo, rest } = await findRepo(root, segs.slice(2));
      const [kind, rev, ...sub] = rest;
      if (method === 'POST' && rev !== undefined && sub.length === 0) {
        if (kind === 'preupload') return writer.preupload(req, res, repo, rev);
        if (kind === 'commit') return writer.commit(req, res, repo, rev);
        if (kind === 'paths-info') {
          auth.checkRead(req, repo);
          checkRevision(repo, rev);
          return sendPathsInfo(req, res, repo);
        }
      }
      if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `method ${method} not allowed on ${path}`);
      auth.checkRead(req, repo);
      if (rest.length === 0) return sendJson(res, 200, await modelInfo(repo), method);
      if (kind === 'revision' && rev !== undefined && sub.length === 0) {
        checkRevision(repo, rev);
        return sendJson(res, 200, await modelInfo(repo), method);
      }
      if (kind === 'tree' && rev !== undefined) {
        checkRevision(repo, rev);
        return sendTree(req, res, method, repo, sub.join('/'), url);
      }
      throw new HttpError(404, `no API route ${path}`);
    }

    const resolveAt = segs[1] === 'resolve' || segs[1] === 'raw' ? 1 : segs[2] === 'resolve' || segs[2] === 'raw' ? 2 : -1;
    if (resolveAt > 0) {
      if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `method ${method} not allowed on ${path}`);
      limit?.take();
      const { repo, rest } = await findRepo(root, segs);
      if (rest[0] !== 'resolve' && rest[0] !== 'raw') throw new HttpError(404, `no route ${path}`);
      const rev = rest[1];
      if (rev === undefined) throw new HttpError(404, `no revision in ${path}`);
      auth.checkRead(req, repo);
      checkRevision(repo, rev);
      checkGate(req, repo);
      const filePath = rest.slice(2).join('/');
      const file = repo.files.find((f) => f.path === filePath);
      if (!file) throw new HttpError(404, `Entry not found: ${filePath} in ${repo.id}`, 'EntryNotFound');
      if (signer && cdnBase && isLfs(file) && rest[0] === 'resolve') return redirectToCdn(res, repo, file);
      return sendFile(req, res, method, file, hubFileHeaders(repo, file), record, fault);
    }
    throw new HttpError(404, `no route ${method} ${path}`);
  };

  /** The Hub's answer for an LFS file when a CDN is on: where the bytes are, and what they are. */
  function redirectToCdn(res: ServerResponse, repo: RepoSnapshot, file: RepoFile): void {
    res.writeHead(302, {
      Location: `${cdnBase}${signer!.sign(repo.id, repo.sha, file.path)}`,
      ETag: `"${fileOid(file)}"`,
      'X-Linked-Etag': `"${lfsOid(file)}"`,
      'X-Linked-Size': String(file.size),
      'X-Repo-Commit': repo.sha,
      'Content-Length': '0',
    });
    res.end();
  }

  const cdnRoute: Route = async (req, res, { method, url, record, fault }) => {
    if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `method ${method} not allowed`);
    const { repo: id, commit, filePath } = signer!.verify(url);
    const repo = await snapshot(root, id);
    if (repo.sha !== commit) throw new HttpError(404, `object ${filePath} of ${id}@${commit} is gone (the repo changed)`);
    const file = repo.files.find((f) => f.path === filePath);
    if (!file) throw new HttpError(404, `no object ${filePath}`);
    return sendFile(req, res, method, file, { ETag: `"${lfsOid(file)}"`, 'Content-Type': 'application/octet-stream' }, record, fault);
  };

  function hubFileHeaders(repo: RepoSnapshot, file: RepoFile): Record<string, string> {
    const etag = `"${isLfs(file) ? lfsOid(file) : fileOid(file)}"`;
    const headers: Record<string, string> = { ETag: etag, 'X-Repo-Commit': repo.sha, 'Content-Type': contentType(file.path) };
    if (isLfs(file)) {
      headers['X-Linked-Etag'] = etag;
      headers['X-Linked-Size'] = String(file.size);
    }
    return headers;
  }

  function sendTree(req: IncomingMessage, res: ServerResponse, method: string, repo: RepoSnapshot, sub: string, url: URL): void {
    const recursive = url.searchParams.get('recursive') === 'true';
    const prefix = sub === '' ? '' : `${sub}/`;
    if (sub !== '' && !repo.files.some((f) => f.path.startsWith(prefix))) {
      throw new HttpError(404, `Entry not found: ${sub} in ${repo.id}`, 'EntryNotFound');
    }
    const entries: Record<string, unknown>[] = [];
    const dirs = new Set<string>();
    for (const f of repo.files) {
      if (!f.path.startsWith(prefix)) continue;
      const parts = f.path.slice(prefix.length).split('/');
      // Folders on the way to the file: every one when recursive, the first level otherwise.
      for (let depth = 1; depth < parts.length && (recursive || depth === 1); depth++) {
        const dir = prefix + parts.slice(0, depth).join('/');
        if (!dirs.has(dir)) {
          dirs.add(dir);
          entries.push(dirEntry(repo, dir));
        }
      }
      if (parts.length === 1 || recursive) entries.push(treeEntry(f));
    }
    sendPage(req, res, method, entries, url);
  }

  /** One page of a listing from `cursor` (an offset), with a `Link: rel="next"` while more remain. */
  function sendPage(req: IncomingMessage, res: ServerResponse, method: string, entries: unknown[], url: URL, size = pageSize): void {
    const cursor = Number(url.searchParams.get('cursor') ?? 0);
    if (!Number.isInteger(cursor) || cursor < 0) throw new HttpError(400, `bad cursor ${url.searchParams.get('cursor')}`);
    const page = entries.slice(cursor, cursor + size);
    const headers: Record<string, string> = {};
    if (cursor + size < entries.length) {
      const next = new URL(url.toString());
      next.searchParams.set('cursor', String(cursor + size));
      headers.Link = `<${baseUrl(req)}${next.pathname}${next.search}>; rel="next"`;
    }
    sendJson(res, 200, page, method, headers);
  }

  async function sendPathsInfo(req: IncomingMessage, res: ServerResponse, repo: RepoSnapshot): Promise<void> {
    // @huggingface/hub posts JSON; huggingface_hub (Python) posts a form.
    let paths: unknown;
    let expand: unknown;
    if ((header(req, 'content-type') ?? '').includes('application/x-www-form-urlencoded')) {
      const form = new URLSearchParams(await readBody(req));
      paths = form.getAll('paths');
      expand = form.get('expand') === 'true' || form.get('expand') === 'True';
    } else {
      const body = (await readJsonBody(req, 'paths-info')) as { paths?: unknown; expand?: unknown } | null;
      paths = body?.paths;
      expand = body?.expand;
    }
    if (!Array.isArray(paths) || !paths.every((p) => typeof p === 'string')) throw new HttpError(400, 'paths-info: "paths" must be a list of strings');
    const out: Record<string, unknown>[] = [];
    for (const p of new Set(paths as string[])) {
      const path = p.replace(/^\/+|\/+$/g, '');
      const file = repo.files.find((f) => f.path === path);
      let entry: Record<string, unknown> | null = null;
      if (file) entry = treeEntry(file);
      else if (path !== '' && repo.files.some((f) => f.path.startsWith(`${path}/`))) entry = dirEntry(repo, path);
      if (!entry) continue; // the Hub leaves out paths that do not exist
      if (expand === true) {
        entry.lastCommit = { id: repo.sha, title: 'Local commit', date: repo.lastModified.toISOString() };
        if (entry.type === 'file') entry.securityFileStatus = { status: 'safe' };
      }
      out.push(entry);
    }
    sendJson(res, 200, out);
  }

  async function sendModelList(req: IncomingMessage, res: ServerResponse, method: string, url: URL): Promise<void> {
    const q = url.searchParams;
    const who = auth.principal(req);
    const search = (q.get('search') ?? '').toLowerCase();
    const author = q.get('author');
    const filters = q.getAll('filter').flatMap((f) => f.split(',')).filter(Boolean);
    const infos: Record<string, unknown>[] = [];
    for (const id of await listRepos(root)) {
      if (search && !id.toLowerCase().includes(search)) continue;
      if (author && id.split('/')[0] !== author) continue;
      const repo = await snapshot(root, id);
      if (!auth.canRead(repo, who)) continue;
      const info = await modelInfo(repo);
      const tags = info.tags as string[];
      if (!filters.every((f) => tags.includes(f))) continue;
      infos.push(info);
    }
    const sort = q.get('sort');
    const key = (i: Record<string, unknown>): number | string => {
      switch (sort) {
        case 'downloads':
        case 'trendingScore':
          return i.downloads as number;
        case 'likes':
        case 'likes30d':
          return i.likes as number;
        case 'lastModified':
        case 'createdAt':
          return Date.parse(i.lastModified as string);
        case 'num_parameters':
          return (i.safetensors as { total?: number } | undefined)?.total ?? 0;
        default:
          return i.id as string;
      }
    };
    if (sort) {
      const dir = q.get('direction') === '1' ? 1 : -1;
      infos.sort((a, b) => {
        const x = key(a);
        const y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * dir || ((a.id as string) < (b.id as string) ? -1 : 1);
      });
    }
    const limitParam = Number(q.get('limit') ?? 1000);
    const size = Number.isInteger(limitParam) && limitParam > 0 ? Math.min(limitParam, pageSize) : pageSize;
    sendPage(req, res, method, infos, url, size);
  }

  async function modelInfo(repo: RepoSnapshot): Promise<Record<string, unknown>> {
    const [tags, card, safetensors, config] = await Promise.all([repoTags(repo), cardData(repo), safetensorsInfo(repo), configInfo(repo)]);
    return {
      _id: repo.sha.slice(0, 24),
      id: repo.id,
      modelId: repo.id,
      author: repo.id.includes('/') ? repo.id.split('/')[0] : undefined,
      sha: repo.sha,
      private: repo.privateReaders !== null,
      gated: repo.gatedToken === null ? false : 'manual',
      disabled: false,
      lastModified: repo.lastModified.toISOString(),
      createdAt: repo.lastModified.toISOString(),
      tags,
      downloads: repo.meta.downloads,
      likes: repo.meta.likes,
      pipeline_tag: repo.meta.pipelineTag,
      library_name: tags.includes('transformers') ? 'transformers' : undefined,
      cardData: card,
      safetensors,
      config,
      siblings: repo.files.map((f) => ({ rfilename: f.path })),
    };
  }

  function checkRevision(repo: RepoSnapshot, rev: string): void {
    if (rev !== 'main' && rev !== 'HEAD' && rev !== repo.sha) {
      throw new HttpError(404, `Invalid rev id: ${rev}`, 'RevisionNotFound');
    }
  }

  function checkGate(req: IncomingMessage, repo: RepoSnapshot): void {
    if (repo.gatedToken === null) return;
    if (header(req, 'authorization') === `Bearer ${repo.gatedToken}`) return;
    throw new HttpError(
      401,
      `Access to model ${repo.id} is restricted. You must have access to it and be authenticated to access it.`,
      'GatedRepo',
    );
  }

  const hub = createServer(serve('hub', hubRoute));
  hub.keepAliveTimeout = 2000;
  const servers: Server[] = [hub];
  let cdnBase: string | null = null;
  const host = opts.host ?? '127.0.0.1';
  if (signer) {
    const cdn = createServer(serve('cdn', cdnRoute));
    cdn.keepAliveTimeout = 2000;
    cdn.listen(0, host);
    await once(cdn, 'listening');
    cdnBase = urlOf(cdn);
    servers.push(cdn);
  }
  hub.listen(opts.port ?? 0, host);
  await once(hub, 'listening');
  return {
    url: urlOf(hub),
    cdnUrl: cdnBase,
    port: (hub.address() as AddressInfo).port,
    stats,
    setFaults(list) {
      faults = checkFaults(list);
    },
    repos: () => listRepos(root),
    close: async () => {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((done, fail) => {
              s.close((err) => (err ? fail(err) : done()));
              s.closeAllConnections();
            }),
        ),
      );
    },
  };
}

function urlOf(server: Server): string {
  const address = server.address() as AddressInfo;
  const hostForUrl = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${hostForUrl}:${address.port}`;
}

function dirEntry(repo: RepoSnapshot, dir: string): Record<string, unknown> {
  return { type: 'directory', oid: pseudoSha1(`dir\0${dir}\0${repo.sha}`), size: 0, path: dir };
}

function checkFaults(list: unknown): HubFault[] {
  if (!Array.isArray(list)) throw new HttpError(400, 'faults must be a JSON list');
  return list.map((f: unknown, i) => {
    const fault = f as Partial<HubFault> | null;
    if (!fault || typeof fault.pathIncludes !== 'string') throw new HttpError(400, `fault ${i}: "pathIncludes" must be a string`);
    if (fault.kind !== 'drop-mid-body' && fault.kind !== 'status' && fault.kind !== 'slow') {
      throw new HttpError(400, `fault ${i}: "kind" must be drop-mid-body, status or slow`);
    }
    if (fault.times !== undefined && fault.times !== 'always' && !(Number.isInteger(fault.times) && fault.times >= 1)) {
      throw new HttpError(400, `fault ${i}: "times" must be an integer >= 1 or "always"`);
    }
    if (fault.origin !== undefined && fault.origin !== 'hub' && fault.origin !== 'cdn') throw new HttpError(400, `fault ${i}: "origin" must be hub or cdn`);
    return { ...fault } as HubFault;
  });
}

/** A file's bytes, whole or one Range, with `headers`; a 'drop-mid-body' fault cuts the body. */
async function sendFile(
  req: IncomingMessage,
  res: ServerResponse,
  method: string,
  file: RepoFile,
  headers: Record<string, string>,
  record: HubRequestRecord,
  fault: HubFault | undefined,
): Promise<void> {
  const base: Record<string, string> = { ...headers, 'Accept-Ranges': 'bytes' };
  const etag = base.ETag;
  const rangeHeader = header(req, 'range');
  let start = 0;
  let end = file.size - 1;
  let status = 200;
  if (rangeHeader !== undefined) {
    const range = parseRange(rangeHeader, file.size);
    if (range === null) {
      throw new HttpError(416, `Range ${rangeHeader} is not satisfiable for ${file.size} bytes`, 'RangeNotSatisfiable', {
        ...base,
        'Content-Range': `bytes */${file.size}`,
      });
    }
    [start, end] = range;
    status = 206;
    base['Content-Range'] = `bytes ${start}-${end}/${file.size}`;
  } else if (etag !== undefined && header(req, 'if-none-match') === etag) {
    res.writeHead(304, base);
    res.end();
    return;
  }
  const length = end - start + 1;
  res.writeHead(status, { ...base, 'Content-Length': String(length) });
  if (method === 'HEAD' || length === 0) {
    res.end();
    return;
  }
  const cutAt = fault?.kind === 'drop-mid-body' ? Math.min(fault.afterBytes ?? Math.max(1, Math.floor(length / 2)), length - 1) : -1;
  const stream = createReadStream(file.abs, { start, end });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (res.destroyed) return;
      let piece = chunk;
      if (cutAt >= 0 && record.bodyBytes + piece.length >= cutAt) {
        piece = piece.subarray(0, cutAt - record.bodyBytes);
        record.bodyBytes += piece.length;
        // Let the partial body reach the client, then cut the connection mid-body.
        res.write(piece, () => res.destroy());
        return;
      }
      record.bodyBytes += piece.length;
      if (!res.write(piece)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
    }
    res.end();
  } finally {
    stream.destroy();
  }
}

function contentType(path: string): string {
  if (path.endsWith('.json')) return 'application/json';
  if (/\.(md|txt|yml|yaml)$/.test(path)) return 'text/plain; charset=utf-8';
  if (path.endsWith('.svg')) return 'image/svg+xml';
  return 'application/octet-stream';
}

/**
 * One `bytes=` range as [start, end] (inclusive), clamped to the file, or null when it cannot be
 * satisfied. Multi-range requests are refused (null): no client of ours sends them.
 */
export function parseRange(value: string, size: number): [number, number] | null {
  const m = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return null;
    return [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || start > end) return null;
  return [start, end];
}

/** The users file of `--users`: a JSON list of `{name, token, orgs?, role?}`. */
export async function readUsersFile(path: string): Promise<HubUser[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new HubServerOptionError(`--users ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return checkUsers(JSON.parse(text));
  } catch (err) {
    throw new HubServerOptionError(`--users ${path}: ${(err as Error).message}`);
  }
}

export interface HubServerArgs {
  root: string;
  port: number;
  host: string;
  verbose: boolean;
  /** `--users FILE`: accounts that can sign in and write. */
  usersFile?: string;
  /** `--cdn [--cdn-ttl S]`: redirect LFS downloads to a second origin with URLs living S seconds. */
  cdnTtlS?: number;
  /** `--rate-limit N/S`: at most N `/resolve/` requests per S seconds. */
  rateLimit?: { resolves: number; windowS: number };
}

export const HUB_SERVER_USAGE =
  'usage: npm run hub -- --root DIR [--port 8800] [--host 127.0.0.1] [--users FILE] [--cdn] [--cdn-ttl SECONDS]\n' +
  '                      [--rate-limit N/SECONDS] [--verbose]';

export function parseHubServerArgs(argv: readonly string[]): HubServerArgs {
  const args: HubServerArgs = { root: '', port: 8800, host: '127.0.0.1', verbose: false };
  let cdn = false;
  let ttl: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new HubServerOptionError(`${arg} needs a value\n${HUB_SERVER_USAGE}`);
      return v;
    };
    switch (arg) {
      case '--root':
        args.root = value();
        break;
      case '--port': {
        const v = value();
        const port = Number(v);
        if (!Number.isInteger(port) || port < 0 || port > 65535) throw new HubServerOptionError(`--port ${v}: not a port number (0-65535)`);
        args.port = port;
        break;
      }
      case '--host':
        args.host = value();
        break;
      case '--verbose':
        args.verbose = true;
        break;
      case '--users':
        args.usersFile = value();
        break;
      case '--cdn':
        cdn = true;
        break;
      case '--cdn-ttl': {
        const v = value();
        ttl = Number(v);
        if (!(ttl > 0)) throw new HubServerOptionError(`--cdn-ttl ${v}: give the signed URLs' life in seconds (> 0)`);
        break;
      }
      case '--rate-limit': {
        const v = value();
        const m = /^(\d+)\/(\d+(?:\.\d+)?)$/.exec(v);
        if (!m || Number(m[1]) < 1 || !(Number(m[2]) > 0)) throw new HubServerOptionError(`--rate-limit ${v}: give N/SECONDS, such as 3000/300`);
        args.rateLimit = { resolves: Number(m[1]), windowS: Number(m[2]) };
        break;
      }
      default:
        throw new HubServerOptionError(`unknown option ${arg}\n${HUB_SERVER_USAGE}`);
    }
  }
  if (ttl !== undefined && !cdn) throw new HubServerOptionError(`--cdn-ttl needs --cdn\n${HUB_SERVER_USAGE}`);
  if (cdn) args.cdnTtlS = ttl ?? DEFAULT_CDN_TTL_MS / 1000;
  if (args.root === '') throw new HubServerOptionError(`--root is required\n${HUB_SERVER_USAGE}`);
  return args;
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${HUB_SERVER_USAGE}\n`);
    return;
  }
  const args = parseHubServerArgs(argv);
  const users = args.usersFile ? await readUsersFile(args.usersFile) : [];
  const server = await startHubServer({
    root: args.root,
    port: args.port,
    host: args.host,
    verbose: args.verbose,
    users,
    cdn: args.cdnTtlS === undefined ? undefined : { ttlMs: args.cdnTtlS * 1000 },
    rateLimit: args.rateLimit && { resolves: args.rateLimit.resolves, windowMs: args.rateLimit.windowS * 1000 },
  });
  const repos = await server.repos();
  process.stdout.write(
    `Hub server on ${server.url} serving ${repos.length} repo(s) from ${resolve(args.root)}: ${repos.join(', ') || '(none)'}\n` +
      (server.cdnUrl ? `LFS downloads redirect to ${server.cdnUrl} (signed URLs living ${args.cdnTtlS} s)\n` : '') +
      (users.length ? `Users: ${users.map((u) => u.name).join(', ')} (tokens from ${args.usersFile})\n` : 'No users: read-only (give --users FILE to push)\n') +
      `Use it with HF_ENDPOINT=${server.url}\n`,
  );
  const stop = () => {
    server.close().finally(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

const entry = process.argv[1];
if (entry !== undefined && resolve(entry) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof HubServerOptionError ? 2 : 1);
  });
}

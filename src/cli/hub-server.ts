/**
 * A local stand-in for the Hugging Face Hub, serving model folders under a root as repos: what the
 * Hub source, @huggingface/hub and a browser page need (model info, file tree, resolve with Range,
 * CORS), plus gated repos and injected faults for tests. Node http only.
 *
 *   npm run hub -- --root DIR [--port 8800] [--host 127.0.0.1] [--verbose]
 *
 * DIR/org/name/… is repo `org/name`; a folder DIR/name holding files itself is repo `name`. Dotfiles
 * are not served. `DIR/org/name/.gated` holding a token makes file downloads need
 * `Authorization: Bearer <token>` (model info and the listing stay public, as on the Hub).
 * The commit sha is a hash of the repo's file list, sizes and mtimes; `main` and `HEAD` resolve to it.
 * Object ids (oid, lfs.oid, ETag) are hashes of path, size and mtime, not of content: stable while
 * the file is, and cheap for multi-GB files.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type HubFaultKind = 'drop-mid-body' | 'status' | 'slow';

/** A fault for the next `times` requests whose path includes `pathIncludes`. */
export interface HubFault {
  pathIncludes: string;
  kind: HubFaultKind;
  /** Only requests of this method (e.g. 'GET'). */
  method?: string;
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
  /** Tree listing page size (the Hub pages its listings; small pages test pagination). @default 1000 */
  pageSize?: number;
}

export interface HubServer {
  /** `http://host:port`, no trailing slash. */
  readonly url: string;
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

const EXPOSED_HEADERS = [
  'Content-Range',
  'Content-Length',
  'ETag',
  'X-Repo-Commit',
  'Accept-Ranges',
  'X-Error-Code',
  'X-Error-Message',
  'X-Request-Id',
  'Link',
].join(', ');
const ALLOWED_HEADERS = 'Range, Authorization, Content-Type, Accept, If-None-Match, If-Range, Cache-Control';

/** Extensions the Hub stores with LFS (its default .gitattributes); the listing gives these an `lfs` entry. */
const LFS_FILE = /\.(safetensors|bin|pt|pth|ckpt|pkl|gguf|onnx|msgpack|h5|npz|zip|tar|gz)$/i;
const LFS_MIN_BYTES = 10 * 1024 * 1024;

interface RepoFile {
  path: string;
  abs: string;
  size: number;
  mtimeMs: number;
}

interface RepoSnapshot {
  id: string;
  dir: string;
  files: RepoFile[];
  sha: string;
  gatedToken: string | null;
  lastModified: Date;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export async function startHubServer(opts: HubServerOptions): Promise<HubServer> {
  const root = resolve(opts.root);
  const rootStat = await stat(root).catch(() => null);
  if (!rootStat?.isDirectory()) throw new HubServerOptionError(`--root ${opts.root}: not a folder`);
  const pageSize = opts.pageSize ?? 1000;
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new HubServerOptionError(`pageSize must be an integer >= 1, got ${pageSize}`);
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  let faults: HubFault[] = [];
  const records: HubRequestRecord[] = [];
  let requestCounter = 0;

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

  function takeFault(method: string, path: string): HubFault | undefined {
    const i = faults.findIndex(
      (f) => path.includes(f.pathIncludes) && (f.method === undefined || f.method.toUpperCase() === method),
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

  const server = createServer((req, res) => {
    const started = Date.now();
    const requestId = `local-${(++requestCounter).toString(16).padStart(6, '0')}`;
    const rawUrl = req.url ?? '/';
    const parsed = new URL(rawUrl, 'http://local');
    let path: string;
    try {
      path = decodeURIComponent(parsed.pathname);
    } catch {
      path = parsed.pathname;
    }
    const method = (req.method ?? 'GET').toUpperCase();
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS);
    res.setHeader('X-Request-Id', requestId);

    if (path.startsWith('/__')) {
      handleControl(req, res, path, method).catch((err: unknown) => sendError(res, err));
      return;
    }
    const record: HubRequestRecord = {
      method,
      url: rawUrl,
      path,
      status: 0,
      authorization: header(req, 'authorization'),
      range: header(req, 'range'),
      bodyBytes: 0,
    };
    records.push(record);
    recordOf.set(res, record);
    res.on('finish', () => logLine());
    res.on('close', () => logLine());
    let logged = false;
    function logLine() {
      record.status = res.statusCode;
      if (logged || !opts.verbose) return;
      logged = true;
      const auth = record.authorization ? ' auth' : '';
      const range = record.range ? ` ${record.range}` : '';
      const fault = record.fault ? ` fault=${record.fault}` : '';
      log(`${method} ${rawUrl}${range}${auth} -> ${res.statusCode} ${record.bodyBytes}B ${Date.now() - started}ms${fault}`);
    }

    const fault = method === 'OPTIONS' ? undefined : takeFault(method, path);
    if (fault) record.fault = fault.kind;
    handle(req, res, method, path, parsed, record, fault).catch((err: unknown) => sendError(res, err));
  });

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

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    path: string,
    url: URL,
    record: HubRequestRecord,
    fault: HubFault | undefined,
  ): Promise<void> {
    if (method === 'OPTIONS') {
      res.writeHead(204, {
        'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS',
        'Access-Control-Allow-Headers': ALLOWED_HEADERS,
        'Access-Control-Max-Age': '86400',
      });
      res.end();
      return;
    }
    if (fault?.kind === 'slow') await delay(fault.delayMs ?? 1000);
    if (res.destroyed) return;
    if (fault?.kind === 'status') {
      const status = fault.status ?? 503;
      throw new HttpError(status, `injected fault: HTTP ${status}`, undefined, fault.headers ?? {});
    }
    if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `method ${method} not allowed`);
    const segs = path.split('/').filter((s) => s !== '');

    if (segs[0] === 'api' && segs[1] === 'models') {
      const { repo, rest } = await findRepo(root, segs.slice(2));
      if (rest.length === 0) return sendJson(res, 200, modelInfo(repo), method);
      const [kind, rev, ...sub] = rest;
      if (kind === 'revision' && rev !== undefined && sub.length === 0) {
        checkRevision(repo, rev);
        return sendJson(res, 200, modelInfo(repo), method);
      }
      if (kind === 'tree' && rev !== undefined) {
        checkRevision(repo, rev);
        return sendTree(req, res, method, repo, rev, sub.join('/'), url);
      }
      throw new HttpError(404, `no API route ${path}`);
    }

    const resolveAt = segs[1] === 'resolve' || segs[1] === 'raw' ? 1 : segs[2] === 'resolve' || segs[2] === 'raw' ? 2 : -1;
    if (resolveAt > 0) {
      const { repo, rest } = await findRepo(root, segs);
      if (rest[0] !== 'resolve' && rest[0] !== 'raw') throw new HttpError(404, `no route ${path}`);
      const rev = rest[1];
      if (rev === undefined) throw new HttpError(404, `no revision in ${path}`);
      checkRevision(repo, rev);
      checkGate(req, repo);
      const filePath = rest.slice(2).join('/');
      const file = repo.files.find((f) => f.path === filePath);
      if (!file) throw new HttpError(404, `Entry not found: ${filePath} in ${repo.id}`, 'EntryNotFound');
      return sendFile(req, res, method, repo, file, record, fault);
    }
    throw new HttpError(404, `no route ${path}`);
  }

  function sendTree(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    repo: RepoSnapshot,
    rev: string,
    sub: string,
    url: URL,
  ): void {
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
          entries.push({ type: 'directory', oid: pseudoSha1(`dir\0${dir}\0${repo.sha}`), size: 0, path: dir });
        }
      }
      if (parts.length === 1 || recursive) entries.push(treeEntry(f));
    }
    const cursor = Number(url.searchParams.get('cursor') ?? 0);
    if (!Number.isInteger(cursor) || cursor < 0) throw new HttpError(400, `bad cursor ${url.searchParams.get('cursor')}`);
    const page = entries.slice(cursor, cursor + pageSize);
    const headers: Record<string, string> = {};
    if (cursor + pageSize < entries.length) {
      const next = new URL(url.toString());
      next.searchParams.set('cursor', String(cursor + pageSize));
      const host = req.headers.host ?? `${opts.host ?? '127.0.0.1'}`;
      headers.Link = `<http://${host}${next.pathname}${next.search}>; rel="next"`;
    }
    sendJson(res, 200, page, method, headers);
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

  async function sendFile(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    repo: RepoSnapshot,
    file: RepoFile,
    record: HubRequestRecord,
    fault: HubFault | undefined,
  ): Promise<void> {
    const etag = `"${isLfs(file) ? pseudoSha256(fileKey(file)) : pseudoSha1(fileKey(file))}"`;
    const base: Record<string, string> = {
      ETag: etag,
      'X-Repo-Commit': repo.sha,
      'Accept-Ranges': 'bytes',
      'Content-Type': contentType(file.path),
    };
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
    } else if (header(req, 'if-none-match') === etag) {
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

  function modelInfo(repo: RepoSnapshot): Record<string, unknown> {
    return {
      _id: repo.sha.slice(0, 24),
      id: repo.id,
      modelId: repo.id,
      sha: repo.sha,
      private: false,
      gated: repo.gatedToken === null ? false : 'manual',
      disabled: false,
      lastModified: repo.lastModified.toISOString(),
      tags: [],
      downloads: 0,
      likes: 0,
      library_name: 'transformers',
      siblings: repo.files.map((f) => ({ rfilename: f.path })),
    };
  }

  server.keepAliveTimeout = 2000;
  server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
  await once(server, 'listening');
  const address = server.address() as AddressInfo;
  const hostForUrl = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${hostForUrl}:${address.port}`,
    port: address.port,
    stats,
    setFaults(list) {
      faults = checkFaults(list);
    },
    repos: () => listRepos(root),
    close: () =>
      new Promise<void>((done, fail) => {
        server.close((err) => (err ? fail(err) : done()));
        server.closeAllConnections();
      }),
  };
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
    return { ...fault } as HubFault;
  });
}

/** Repo ids under `root`: a top-level folder with files of its own is a repo, otherwise its subfolders are. */
async function listRepos(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const top of await visibleDirents(root)) {
    if (!top.isDirectory()) continue;
    const inner = await visibleDirents(join(root, top.name));
    if (inner.some((d) => d.isFile())) out.push(top.name);
    else for (const d of inner) if (d.isDirectory()) out.push(`${top.name}/${d.name}`);
  }
  return out.sort();
}

async function visibleDirents(dir: string) {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((d) => !d.name.startsWith('.'));
}

/** The repo named by the first one or two of `segs` (two when `org/name` is a repo), and the rest. */
async function findRepo(root: string, segs: string[]): Promise<{ repo: RepoSnapshot; rest: string[] }> {
  const safe = (s: string | undefined): s is string => s !== undefined && s !== '' && !s.startsWith('.') && !/[\\/\0]/.test(s);
  const [a, b] = segs;
  if (safe(a)) {
    const top = await visibleDirents(join(root, a));
    const topIsRepo = top.some((d) => d.isFile());
    if (topIsRepo) return { repo: await snapshot(root, a), rest: segs.slice(1) };
    if (safe(b) && top.some((d) => d.isDirectory() && d.name === b)) {
      return { repo: await snapshot(root, `${a}/${b}`), rest: segs.slice(2) };
    }
  }
  const shown = [a, b].filter((s) => s !== undefined).join('/');
  throw new HttpError(404, `Repository not found: ${shown}`, 'RepoNotFound');
}

async function snapshot(root: string, id: string): Promise<RepoSnapshot> {
  const dir = join(root, ...id.split('/'));
  const files: RepoFile[] = [];
  async function walk(rel: string): Promise<void> {
    for (const d of await visibleDirents(rel === '' ? dir : join(dir, rel))) {
      const path = rel === '' ? d.name : `${rel}/${d.name}`;
      if (d.isDirectory()) await walk(path);
      else if (d.isFile()) {
        const abs = join(dir, ...path.split('/'));
        const s = await stat(abs);
        files.push({ path, abs, size: s.size, mtimeMs: s.mtimeMs });
      }
    }
  }
  await walk('');
  files.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  const sha = pseudoSha1(`${id}\n${files.map(fileKey).join('\n')}`);
  const gated = await readFile(join(dir, '.gated'), 'utf8').catch(() => null);
  const lastModified = new Date(Math.max(0, ...files.map((f) => f.mtimeMs)));
  return { id, dir, files, sha, gatedToken: gated === null ? null : gated.trim(), lastModified };
}

function fileKey(f: RepoFile): string {
  return `${f.path}\0${f.size}\0${f.mtimeMs}`;
}

function isLfs(f: RepoFile): boolean {
  return LFS_FILE.test(f.path) || f.size >= LFS_MIN_BYTES;
}

function treeEntry(f: RepoFile): Record<string, unknown> {
  const entry: Record<string, unknown> = { type: 'file', oid: pseudoSha1(fileKey(f)), size: f.size, path: f.path };
  if (isLfs(f)) entry.lfs = { oid: pseudoSha256(fileKey(f)), size: f.size, pointerSize: 134 };
  return entry;
}

function pseudoSha1(s: string): string {
  return createHash('sha1').update(s).digest('hex');
}

function pseudoSha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

function contentType(path: string): string {
  if (path.endsWith('.json')) return 'application/json';
  if (/\.(md|txt|yml|yaml)$/.test(path)) return 'text/plain; charset=utf-8';
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

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The stats record of each response, so that every writer counts the body bytes it sends. */
const recordOf = new WeakMap<ServerResponse, HubRequestRecord>();

function sendJson(res: ServerResponse, status: number, body: unknown, method = 'GET', headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  const record = recordOf.get(res);
  if (record && method !== 'HEAD') record.bodyBytes += Buffer.byteLength(text);
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(text)),
  });
  res.end(method === 'HEAD' ? undefined : text);
}

function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const status = err instanceof HttpError ? err.status : 500;
  const message = err instanceof Error ? err.message : String(err);
  const headers: Record<string, string> = err instanceof HttpError ? { ...err.headers } : {};
  if (err instanceof HttpError && err.code) headers['X-Error-Code'] = err.code;
  headers['X-Error-Message'] = message.replace(/[^\x20-\x7e]/g, '?');
  sendJson(res, status, { error: message }, 'GET', headers);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function delay(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

export interface HubServerArgs {
  root: string;
  port: number;
  host: string;
  verbose: boolean;
}

export const HUB_SERVER_USAGE = 'usage: npm run hub -- --root DIR [--port 8800] [--host 127.0.0.1] [--verbose]';

export function parseHubServerArgs(argv: readonly string[]): HubServerArgs {
  const args: HubServerArgs = { root: '', port: 8800, host: '127.0.0.1', verbose: false };
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
      default:
        throw new HubServerOptionError(`unknown option ${arg}\n${HUB_SERVER_USAGE}`);
    }
  }
  if (args.root === '') throw new HubServerOptionError(`--root is required\n${HUB_SERVER_USAGE}`);
  return args;
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${HUB_SERVER_USAGE}\n`);
    return;
  }
  const args = parseHubServerArgs(argv);
  const server = await startHubServer(args);
  const repos = await server.repos();
  process.stdout.write(
    `Hub server on ${server.url} serving ${repos.length} repo(s) from ${resolve(args.root)}: ${repos.join(', ') || '(none)'}\n` +
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


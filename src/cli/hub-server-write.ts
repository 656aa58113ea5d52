/**
 * The write side of the local Hub server, as @huggingface/hub's `createRepo` and `commit` use it when
 * the server offers no Xet transfer:
 *
 *   POST /api/repos/create                        {name, organization, type, visibility|private}
 *   POST /api/models/{repo}/preupload/{rev}       which files go through LFS ("lfs") or inline ("regular")
 *   POST /{repo}.git/info/lfs/objects/batch       LFS batch API, basic transfer: a signed PUT URL per object
 *   PUT  /lfs-upload/{oid}?…&Signature=…           the object's bytes, hashed while stored, kept if the sha256 matches
 *   POST /api/models/{repo}/commit/{rev}          NDJSON: header, then file / lfsFile / deletedFile lines
 *
 * Objects live in ROOT/.lfs until a commit copies them into the repo. A commit is checked whole before
 * any file changes (a missing object or a bad path changes nothing), then applied file by file
 * through temporary names, one commit per repo at a time.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { HubAuth } from './hub-server-auth.ts';
import { HttpError, readBody, readJsonBody, sendJson } from './hub-server-http.ts';
import { isLfsPath, LFS_OIDS_FILE, readLfsOids, safeSegment, snapshot, visibleDirents, type RepoSnapshot } from './hub-server-repos.ts';

const OID = /^[0-9a-f]{64}$/;
const REPO_NAME = /^[A-Za-z0-9_.-]{1,96}$/;
const UPLOAD_TTL_MS = 3600_000;

export interface WriteContext {
  root: string;
  auth: HubAuth;
  /** `http://host:port` of the request, for URLs in answers. */
  baseUrl(req: IncomingMessage): string;
}

/** One commit at a time per repo. */
const repoLocks = new Map<string, Promise<unknown>>();

async function locked<T>(key: string, task: () => Promise<T>): Promise<T> {
  const before = repoLocks.get(key) ?? Promise.resolve();
  const run = before.then(task, task);
  const tail = run.catch(() => undefined);
  repoLocks.set(key, tail);
  try {
    return await run;
  } finally {
    if (repoLocks.get(key) === tail) repoLocks.delete(key);
  }
}

export class HubWriter {
  readonly #ctx: WriteContext;
  readonly #secret = randomBytes(32);

  constructor(ctx: WriteContext) {
    this.#ctx = ctx;
  }

  get #lfsDir(): string {
    return join(this.#ctx.root, '.lfs');
  }

  #objectPath(oid: string): string {
    return join(this.#lfsDir, oid);
  }

  async createRepo(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = (await readJsonBody(req, 'create repo')) as {
      name?: unknown;
      organization?: unknown;
      type?: unknown;
      visibility?: unknown;
      private?: unknown;
    } | null;
    if (!body || typeof body.name !== 'string') throw new HttpError(400, 'create repo: "name" is required');
    if (body.type !== undefined && body.type !== 'model') throw new HttpError(400, `create repo: this server holds model repos only, not "${String(body.type)}"`);
    const who = this.#ctx.auth.principal(req);
    const namespace = typeof body.organization === 'string' && body.organization !== '' ? body.organization : who?.user.name;
    if (namespace === undefined) throw new HttpError(401, 'You must be authenticated to create a repo: give an access token');
    this.#ctx.auth.checkWrite(req, namespace, 'create');
    const name = body.name;
    for (const part of [namespace, name]) {
      if (!REPO_NAME.test(part) || /^[-.]|[-.]$/.test(part) || part.includes('--') || part.includes('..') || part.endsWith('.git')) {
        throw new HttpError(400, `create repo: "${part}" is not a valid repo name (letters, digits, "_", "-", "."; at most 96)`);
      }
    }
    const id = `${namespace}/${name}`;
    const url = `${this.#ctx.baseUrl(req)}/${id}`;
    const nsDir = join(this.#ctx.root, namespace);
    if ((await visibleDirents(nsDir)).some((d) => d.isFile())) {
      throw new HttpError(409, `"${namespace}" is a repo on this server, not a namespace`);
    }
    const dir = join(nsDir, name);
    const exists = await stat(dir).then(
      () => true,
      () => false,
    );
    if (exists) {
      res.setHeader('X-Error-Code', 'RepoExists');
      sendJson(res, 409, { error: 'You already created this model repo', url });
      return;
    }
    await mkdir(dir, { recursive: true });
    const isPrivate = body.visibility === 'private' || body.private === true;
    if (isPrivate) await writeFile(join(dir, '.private'), '');
    sendJson(res, 200, { url, name: id, id: createHash('sha1').update(id).digest('hex').slice(0, 24) });
  }

  #checkWriteTo(req: IncomingMessage, repo: RepoSnapshot): void {
    const namespace = repo.id.includes('/') ? repo.id.split('/')[0] : repo.id;
    this.#ctx.auth.checkWrite(req, namespace, 'write');
  }

  async preupload(req: IncomingMessage, res: ServerResponse, repo: RepoSnapshot, rev: string): Promise<void> {
    checkBranch(rev);
    this.#checkWriteTo(req, repo);
    const body = (await readJsonBody(req, 'preupload')) as { files?: unknown } | null;
    if (!body || !Array.isArray(body.files)) throw new HttpError(400, 'preupload: "files" must be a list');
    const files = (body.files as { path?: unknown; size?: unknown; sample?: unknown }[]).map((f, i) => {
      if (typeof f?.path !== 'string' || typeof f.size !== 'number') throw new HttpError(400, `preupload: file ${i} needs "path" and "size"`);
      const sample = typeof f.sample === 'string' ? Buffer.from(f.sample, 'base64') : Buffer.alloc(0);
      const binary = sample.includes(0);
      return { path: f.path, uploadMode: isLfsPath(f.path, f.size) || binary ? 'lfs' : 'regular', shouldIgnore: false };
    });
    sendJson(res, 200, { files, commitOid: repo.sha });
  }

  async lfsBatch(req: IncomingMessage, res: ServerResponse, repo: RepoSnapshot): Promise<void> {
    this.#checkWriteTo(req, repo);
    const body = (await readJsonBody(req, 'LFS batch')) as { operation?: unknown; transfers?: unknown; objects?: unknown } | null;
    if (!body || body.operation !== 'upload') throw new HttpError(400, 'LFS batch: only the "upload" operation is served');
    if (Array.isArray(body.transfers) && !body.transfers.includes('basic')) {
      throw new HttpError(400, 'LFS batch: this server offers the "basic" transfer only');
    }
    if (!Array.isArray(body.objects)) throw new HttpError(400, 'LFS batch: "objects" must be a list');
    const base = this.#ctx.baseUrl(req);
    const objects = await Promise.all(
      (body.objects as { oid?: unknown; size?: unknown }[]).map(async (o) => {
        if (typeof o?.oid !== 'string' || !OID.test(o.oid) || typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) {
          return { oid: String(o?.oid), size: Number(o?.size), error: { code: 422, message: 'oid must be a sha256 in hex and size a byte count' } };
        }
        const have = await stat(this.#objectPath(o.oid)).catch(() => null);
        if (have?.size === o.size) return { oid: o.oid, size: o.size, authenticated: true };
        const expires = String(Math.floor((Date.now() + UPLOAD_TTL_MS) / 1000));
        const query = `size=${o.size}&Expires=${expires}&Signature=${this.#mac(o.oid, o.size, expires)}`;
        return {
          oid: o.oid,
          size: o.size,
          authenticated: true,
          actions: { upload: { href: `${base}/lfs-upload/${o.oid}?${query}`, expires_in: UPLOAD_TTL_MS / 1000 } },
        };
      }),
    );
    sendJson(res, 200, { transfer: 'basic', objects }, 'POST', { 'Content-Type': 'application/vnd.git-lfs+json' });
  }

  #mac(oid: string, size: number, expires: string): string {
    return createHmac('sha256', this.#secret).update(`${oid}\n${size}\n${expires}`).digest('hex');
  }

  /** PUT of an object's bytes to its signed URL: streamed to a temporary file, kept only if size and sha256 match. */
  async lfsUpload(req: IncomingMessage, res: ServerResponse, url: URL, oid: string): Promise<void> {
    const size = Number(url.searchParams.get('size'));
    const expires = url.searchParams.get('Expires') ?? '';
    const given = Buffer.from(url.searchParams.get('Signature') ?? '', 'hex');
    const wanted = Buffer.from(this.#mac(oid, size, expires), 'hex');
    if (!OID.test(oid) || given.length !== wanted.length || !timingSafeEqual(given, wanted)) throw new HttpError(403, 'upload URL: the signature does not match');
    if (!(Number(expires) * 1000 > Date.now())) throw new HttpError(403, 'upload URL: expired');
    await mkdir(this.#lfsDir, { recursive: true });
    const tmp = join(this.#lfsDir, `tmp-${randomBytes(8).toString('hex')}`);
    const hash = createHash('sha256');
    let received = 0;
    try {
      await pipeline(
        req,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            received += chunk.length;
            if (received > size) throw new HttpError(400, `upload of ${oid}: more than the ${size} bytes announced`);
            hash.update(chunk);
            yield chunk;
          }
        },
        createWriteStream(tmp),
      );
      if (received !== size) throw new HttpError(400, `upload of ${oid}: ${received} bytes received, ${size} announced`);
      const sha = hash.digest('hex');
      if (sha !== oid) throw new HttpError(400, `upload of ${oid}: the bytes hash to ${sha}`);
      await rename(tmp, this.#objectPath(oid));
    } finally {
      await rm(tmp, { force: true });
    }
    res.writeHead(200, { 'Content-Length': '0', ETag: `"${oid}"` });
    res.end();
  }

  async commit(req: IncomingMessage, res: ServerResponse, repo: RepoSnapshot, rev: string): Promise<void> {
    checkBranch(rev);
    this.#checkWriteTo(req, repo);
    const ops = parseCommit(await readBody(req));
    const result = await locked(repo.dir, async () => {
      const current = await snapshot(this.#ctx.root, repo.id);
      const parent = ops.header.parentCommit;
      if (parent && parent !== current.sha) {
        throw new HttpError(412, `parent commit ${parent} is not the head of ${rev} (${current.sha})`);
      }
      // Check everything before touching a file.
      for (const op of ops.files) {
        if (op.kind === 'lfs') {
          const have = await stat(this.#objectPath(op.oid)).catch(() => null);
          if (!have) throw new HttpError(422, `lfsFile ${op.path}: object ${op.oid} was never uploaded`);
          if (have.size !== op.size) throw new HttpError(422, `lfsFile ${op.path}: object ${op.oid} has ${have.size} bytes, not ${op.size}`);
        }
        if (op.kind === 'delete' && !current.files.some((f) => f.path === op.path || f.path.startsWith(`${op.path}/`))) {
          throw new HttpError(404, `deletedFile ${op.path}: no such file in ${repo.id}`, 'EntryNotFound');
        }
      }
      const oids = await readLfsOids(current.dir);
      for (const op of ops.files) {
        const abs = join(current.dir, ...op.path.split('/'));
        if (op.kind === 'delete') {
          await rm(abs, { recursive: true, force: true });
          delete oids[op.path];
          continue;
        }
        await mkdir(dirname(abs), { recursive: true });
        const tmp = join(dirname(abs), `.tmp-${randomBytes(6).toString('hex')}`);
        try {
          if (op.kind === 'lfs') await copyFile(this.#objectPath(op.oid), tmp);
          else await writeFile(tmp, op.content);
          await rename(tmp, abs);
        } finally {
          await rm(tmp, { force: true });
        }
        if (op.kind === 'lfs') {
          const s = await stat(abs);
          oids[op.path] = { sha256: op.oid, size: s.size, mtimeMs: s.mtimeMs };
        } else {
          delete oids[op.path];
        }
      }
      if (Object.keys(oids).length > 0) await writeFile(join(current.dir, LFS_OIDS_FILE), JSON.stringify(oids));
      else await unlink(join(current.dir, LFS_OIDS_FILE)).catch(() => undefined);
      return snapshot(this.#ctx.root, repo.id);
    });
    sendJson(res, 200, {
      success: true,
      commitOid: result.sha,
      commitUrl: `${this.#ctx.baseUrl(req)}/${repo.id}/commit/${result.sha}`,
      hookOutput: '',
    });
  }
}

function checkBranch(rev: string): void {
  if (rev !== 'main') throw new HttpError(404, `Invalid rev id: ${rev} (this server has one branch, main)`, 'RevisionNotFound');
}

type CommitFileOp =
  | { kind: 'regular'; path: string; content: Buffer }
  | { kind: 'lfs'; path: string; oid: string; size: number }
  | { kind: 'delete'; path: string };

/** A repo path we store: `/`-separated safe segments (no dotfiles: this server never serves them). */
function checkRepoPath(path: unknown, what: string): string {
  if (typeof path !== 'string' || path === '') throw new HttpError(400, `${what}: "path" is required`);
  const parts = path.split('/');
  if (!parts.every(safeSegment)) {
    throw new HttpError(400, `${what}: path "${path}" is not allowed here (empty, "..", or a dotfile: this server does not store those)`);
  }
  return path;
}

/** The NDJSON commit body: a header line, then operations. */
export function parseCommit(text: string): { header: { summary: string; parentCommit?: string }; files: CommitFileOp[] } {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const parsed = lines.map((line, i) => {
    try {
      return JSON.parse(line) as { key?: unknown; value?: Record<string, unknown> };
    } catch {
      throw new HttpError(400, `commit: line ${i + 1} is not JSON`);
    }
  });
  const head = parsed[0];
  if (head?.key !== 'header' || typeof head.value?.summary !== 'string' || head.value.summary.trim() === '') {
    throw new HttpError(400, 'commit: the first line must be the header, with a "summary"');
  }
  const parentCommit = typeof head.value.parentCommit === 'string' ? head.value.parentCommit : undefined;
  const files: CommitFileOp[] = [];
  const seen = new Set<string>();
  for (const [i, line] of parsed.slice(1).entries()) {
    const v = line.value ?? {};
    const what = `commit line ${i + 2} (${String(line.key)})`;
    const path = checkRepoPath(v.path, what);
    if (seen.has(path)) throw new HttpError(400, `${what}: "${path}" appears twice in the commit`);
    seen.add(path);
    if (line.key === 'file') {
      if (typeof v.content !== 'string') throw new HttpError(400, `${what}: "content" is required`);
      if (v.encoding !== 'base64' && v.encoding !== 'utf-8' && v.encoding !== undefined) throw new HttpError(400, `${what}: unknown encoding ${String(v.encoding)}`);
      files.push({ kind: 'regular', path, content: Buffer.from(v.content, v.encoding === 'base64' ? 'base64' : 'utf8') });
    } else if (line.key === 'lfsFile') {
      if (typeof v.oid !== 'string' || !OID.test(v.oid) || typeof v.size !== 'number') throw new HttpError(400, `${what}: needs a sha256 "oid" and a "size"`);
      if (v.algo !== undefined && v.algo !== 'sha256') throw new HttpError(400, `${what}: algo must be sha256`);
      files.push({ kind: 'lfs', path, oid: v.oid, size: v.size });
    } else if (line.key === 'deletedFile' || line.key === 'deletedFolder') {
      files.push({ kind: 'delete', path });
    } else {
      throw new HttpError(400, `${what}: unknown operation`);
    }
  }
  return { header: { summary: head.value.summary, parentCommit }, files };
}

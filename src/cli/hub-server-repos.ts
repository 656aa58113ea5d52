/**
 * The local Hub server's repos: model folders under a root, read fresh on each request (a snapshot:
 * files, commit sha, access markers), and what the Hub's model info says about them (tags, card data,
 * safetensors parameter counts, config), computed from the files and cached per file version.
 *
 * Layout: ROOT/org/name/… is repo `org/name`; a folder ROOT/name holding files itself is repo `name`.
 * Dotfiles are never served. Markers: `.gated` (a token that file downloads need), `.private` (a
 * private repo; its lines name users who may read it besides the namespace's owner and members),
 * `.hub.json` (`{"downloads": n, "likes": n, "pipeline_tag": "…"}` for listings),
 * `.lfs-oids.json` (sha256 of files pushed through LFS, kept by the write routes).
 */
import { createHash } from 'node:crypto';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { HttpError } from './hub-server-http.ts';

/** Extensions the Hub stores with LFS (its default .gitattributes); the listing gives these an `lfs` entry. */
export const LFS_FILE = /\.(safetensors|bin|pt|pth|ckpt|pkl|gguf|onnx|msgpack|h5|npz|zip|tar|gz)$/i;
export const LFS_MIN_BYTES = 10 * 1024 * 1024;

export interface RepoFile {
  path: string;
  abs: string;
  size: number;
  mtimeMs: number;
  /** Content sha256 when known (pushed through LFS), else null (ids are then hashes of path, size and mtime). */
  sha256: string | null;
}

export interface RepoSnapshot {
  id: string;
  dir: string;
  files: RepoFile[];
  sha: string;
  gatedToken: string | null;
  /** Null: public. Otherwise users (besides the namespace's owner and members) who may read it. */
  privateReaders: string[] | null;
  lastModified: Date;
  meta: { downloads: number; likes: number; pipelineTag?: string };
}

export function pseudoSha1(s: string): string {
  return createHash('sha1').update(s).digest('hex');
}

export function pseudoSha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

export function fileKey(f: Pick<RepoFile, 'path' | 'size' | 'mtimeMs'>): string {
  return `${f.path}\0${f.size}\0${f.mtimeMs}`;
}

export function isLfsPath(path: string, size: number): boolean {
  return LFS_FILE.test(path) || size >= LFS_MIN_BYTES;
}

export function isLfs(f: RepoFile): boolean {
  return isLfsPath(f.path, f.size);
}

/** The git blob id of a file as the tree shows it. */
export function fileOid(f: RepoFile): string {
  return pseudoSha1(fileKey(f));
}

/** The LFS object id (sha256): the content's when known, else a stand-in. */
export function lfsOid(f: RepoFile): string {
  return f.sha256 ?? pseudoSha256(fileKey(f));
}

export async function visibleDirents(dir: string) {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((d) => !d.name.startsWith('.'));
}

/** Repo ids under `root`: a top-level folder with files of its own is a repo, otherwise its subfolders are. */
export async function listRepos(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const top of await visibleDirents(root)) {
    if (!top.isDirectory()) continue;
    const inner = await visibleDirents(join(root, top.name));
    if (inner.some((d) => d.isFile())) out.push(top.name);
    else for (const d of inner) if (d.isDirectory()) out.push(`${top.name}/${d.name}`);
  }
  return out.sort();
}

/** A path segment we may join onto the root: no separators, not empty, not a dotfile. */
export function safeSegment(s: string | undefined): s is string {
  return s !== undefined && s !== '' && !s.startsWith('.') && !/[\\/\0]/.test(s);
}

/** The repo named by the first one or two of `segs` (two when `org/name` is a repo), and the rest. */
export async function findRepo(root: string, segs: string[]): Promise<{ repo: RepoSnapshot; rest: string[] }> {
  const [a, b] = segs;
  if (safeSegment(a)) {
    const top = await visibleDirents(join(root, a));
    const topIsRepo = top.some((d) => d.isFile());
    if (topIsRepo) return { repo: await snapshot(root, a), rest: segs.slice(1) };
    if (safeSegment(b) && top.some((d) => d.isDirectory() && d.name === b)) {
      return { repo: await snapshot(root, `${a}/${b}`), rest: segs.slice(2) };
    }
  }
  const shown = [a, b].filter((s) => s !== undefined).join('/');
  throw new HttpError(404, `Repository not found: ${shown}`, 'RepoNotFound');
}

export const LFS_OIDS_FILE = '.lfs-oids.json';

/** Recorded sha256 per path, valid while size and mtime are those recorded. */
export type LfsOidRecord = Record<string, { sha256: string; size: number; mtimeMs: number }>;

export async function readLfsOids(dir: string): Promise<LfsOidRecord> {
  try {
    const parsed = JSON.parse(await readFile(join(dir, LFS_OIDS_FILE), 'utf8')) as unknown;
    return parsed && typeof parsed === 'object' ? (parsed as LfsOidRecord) : {};
  } catch {
    return {};
  }
}

export async function snapshot(root: string, id: string): Promise<RepoSnapshot> {
  const dir = join(root, ...id.split('/'));
  const oids = await readLfsOids(dir);
  const files: RepoFile[] = [];
  async function walk(rel: string): Promise<void> {
    for (const d of await visibleDirents(rel === '' ? dir : join(dir, rel))) {
      const path = rel === '' ? d.name : `${rel}/${d.name}`;
      if (d.isDirectory()) await walk(path);
      else if (d.isFile()) {
        const abs = join(dir, ...path.split('/'));
        const s = await stat(abs);
        const known = oids[path];
        const sha256 = known && known.size === s.size && known.mtimeMs === s.mtimeMs ? known.sha256 : null;
        files.push({ path, abs, size: s.size, mtimeMs: s.mtimeMs, sha256 });
      }
    }
  }
  await walk('');
  files.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  const sha = pseudoSha1(`${id}\n${files.map(fileKey).join('\n')}`);
  const gated = await readFile(join(dir, '.gated'), 'utf8').catch(() => null);
  const privateText = await readFile(join(dir, '.private'), 'utf8').catch(() => null);
  const metaText = await readFile(join(dir, '.hub.json'), 'utf8').catch(() => null);
  let meta: RepoSnapshot['meta'] = { downloads: 0, likes: 0 };
  if (metaText !== null) {
    try {
      const m = JSON.parse(metaText) as { downloads?: unknown; likes?: unknown; pipeline_tag?: unknown };
      meta = {
        downloads: typeof m.downloads === 'number' ? m.downloads : 0,
        likes: typeof m.likes === 'number' ? m.likes : 0,
        pipelineTag: typeof m.pipeline_tag === 'string' ? m.pipeline_tag : undefined,
      };
    } catch {
      // A broken .hub.json is ignored: the counts stay 0.
    }
  }
  const lastModified = new Date(Math.max(0, ...files.map((f) => f.mtimeMs)));
  return {
    id,
    dir,
    files,
    sha,
    gatedToken: gated === null ? null : gated.trim(),
    privateReaders: privateText === null ? null : privateText.split(/\s+/).filter(Boolean),
    lastModified,
    meta,
  };
}

export function treeEntry(f: RepoFile): Record<string, unknown> {
  const entry: Record<string, unknown> = { type: 'file', oid: fileOid(f), size: f.size, path: f.path };
  if (isLfs(f)) entry.lfs = { oid: lfsOid(f), size: f.size, pointerSize: 134 };
  return entry;
}

/** Per file version: small derived facts, so listings do not re-read headers. */
const derivedCache = new Map<string, unknown>();

async function cached<T>(f: RepoFile, kind: string, compute: () => Promise<T>): Promise<T> {
  const key = `${kind}\0${f.abs}\0${f.size}\0${f.mtimeMs}`;
  if (derivedCache.has(key)) return derivedCache.get(key) as T;
  const value = await compute();
  if (derivedCache.size > 10_000) derivedCache.clear();
  derivedCache.set(key, value);
  return value;
}

/** Parameter counts per dtype of one safetensors file (null when its header cannot be read). */
async function safetensorsCounts(f: RepoFile): Promise<Record<string, number> | null> {
  return cached(f, 'st', async () => {
    const fd = await open(f.abs, 'r');
    try {
      const len = Buffer.alloc(8);
      await fd.read(len, 0, 8, 0);
      const n = Number(len.readBigUInt64LE(0));
      if (n <= 0 || n > 100_000_000 || 8 + n > f.size) return null;
      const json = Buffer.alloc(n);
      await fd.read(json, 0, n, 8);
      const header = JSON.parse(json.toString('utf8')) as Record<string, { dtype?: string; shape?: number[] }>;
      const counts: Record<string, number> = {};
      for (const [name, t] of Object.entries(header)) {
        if (name === '__metadata__' || !t || typeof t.dtype !== 'string' || !Array.isArray(t.shape)) continue;
        counts[t.dtype] = (counts[t.dtype] ?? 0) + t.shape.reduce((a, b) => a * b, 1);
      }
      return counts;
    } catch {
      return null;
    } finally {
      await fd.close();
    }
  });
}

/** The Hub's `safetensors` field: parameters per dtype over every .safetensors file, and the total. */
export async function safetensorsInfo(repo: RepoSnapshot): Promise<{ parameters: Record<string, number>; total: number } | undefined> {
  const files = repo.files.filter((f) => f.path.endsWith('.safetensors'));
  if (files.length === 0) return undefined;
  const parameters: Record<string, number> = {};
  for (const f of files) {
    const counts = await safetensorsCounts(f);
    if (!counts) return undefined;
    for (const [dtype, n] of Object.entries(counts)) parameters[dtype] = (parameters[dtype] ?? 0) + n;
  }
  return { parameters, total: Object.values(parameters).reduce((a, b) => a + b, 0) };
}

/** The Hub's `config` field: a few keys of config.json. */
export async function configInfo(repo: RepoSnapshot): Promise<Record<string, unknown> | undefined> {
  const f = repo.files.find((x) => x.path === 'config.json');
  if (!f) return undefined;
  return cached(f, 'config', async () => {
    try {
      const c = JSON.parse(await readFile(f.abs, 'utf8')) as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const k of ['architectures', 'model_type']) if (k in c) out[k] = c[k];
      return out;
    } catch {
      return undefined;
    }
  });
}

/** The README's YAML front matter (the Hub's `cardData`). */
export async function cardData(repo: RepoSnapshot): Promise<Record<string, unknown> | undefined> {
  const f = repo.files.find((x) => x.path === 'README.md');
  if (!f) return undefined;
  return cached(f, 'card', async () => {
    const text = await readFile(f.abs, 'utf8').catch(() => '');
    const m = /^---\r?\n([\s\S]*?)\r?\n---\r?\n/.exec(text);
    if (!m) return undefined;
    try {
      const data = parseYaml(m[1]) as unknown;
      return data && typeof data === 'object' && !Array.isArray(data) ? (data as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  });
}

/** Tags as the Hub derives them: library, format, model type, card tags, license, base models. */
export async function repoTags(repo: RepoSnapshot): Promise<string[]> {
  const tags = new Set<string>();
  if (repo.files.some((f) => f.path === 'config.json')) tags.add('transformers');
  if (repo.files.some((f) => f.path.endsWith('.safetensors'))) tags.add('safetensors');
  const config = await configInfo(repo);
  if (typeof config?.model_type === 'string') tags.add(config.model_type);
  const card = await cardData(repo);
  const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : []);
  for (const t of list(card?.tags)) tags.add(t);
  for (const l of list(card?.license)) tags.add(`license:${l}`);
  for (const b of list(card?.base_model)) tags.add(`base_model:${b}`);
  return [...tags];
}

/**
 * Range cache on disk for the CLI: one file per cached range under `<dir>/ranges/`, named by the
 * SHA-256 of its key. Writes go to a temporary file renamed into place, so a crash never leaves a
 * partial entry. Recency is the file's mtime (touched on each hit), so the LRU order survives
 * restarts; the index is rebuilt from a directory scan on first use. Several processes may share the
 * folder: each keeps its own view of the total, and a file another one evicted is just a miss.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { checkMaxBytes, LruIndex, type RangeCache } from '../core/sources/cache.ts';

export interface DiskRangeCacheOptions {
  /** @default defaultCacheDir() */
  dir?: string;
  /** @default 20 GiB */
  maxBytes?: number;
}

/** `$MERGE_STUDIO_CACHE`, else `~/.cache/merge-studio`. */
export function defaultCacheDir(env: Record<string, string | undefined> = process.env): string {
  const fromEnv = env.MERGE_STUDIO_CACHE;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(homedir(), '.cache', 'merge-studio');
}

export class DiskRangeCache implements RangeCache {
  readonly dir: string;
  readonly maxBytes: number;
  readonly #rangesDir: string;
  #index: Promise<LruIndex> | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: DiskRangeCacheOptions = {}) {
    this.dir = opts.dir ?? defaultCacheDir();
    this.maxBytes = checkMaxBytes(opts.maxBytes ?? 20 * 1024 ** 3);
    this.#rangesDir = join(this.dir, 'ranges');
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const lru = await this.#loadIndex();
    const id = entryId(key);
    let bytes: Buffer;
    try {
      bytes = await readFile(this.#path(id));
    } catch (err) {
      if (isNotFound(err)) {
        lru.delete(id);
        return undefined;
      }
      throw new DiskCacheError(this.#path(id), 'cannot read a cached range', err);
    }
    if (!lru.has(id)) lru.set(id, bytes.byteLength);
    lru.touch(id);
    const now = new Date();
    // Best effort: recency only orders eviction.
    await utimes(this.#path(id), now, now).catch(() => undefined);
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  put(key: string, bytes: Uint8Array): Promise<void> {
    if (bytes.byteLength > this.maxBytes) return Promise.resolve();
    const copy = bytes.slice();
    return this.#serial(async () => {
      const lru = await this.#loadIndex();
      const id = entryId(key);
      lru.delete(id);
      for (const victim of lru.victims(copy.byteLength, this.maxBytes)) {
        await unlink(this.#path(victim)).catch((err: unknown) => {
          if (!isNotFound(err)) throw new DiskCacheError(this.#path(victim), 'cannot evict a cached range', err);
        });
        lru.delete(victim);
      }
      const file = this.#path(id);
      const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
      try {
        await mkdir(join(this.#rangesDir, id.slice(0, 2)), { recursive: true });
        await writeFile(tmp, copy);
        await rename(tmp, file);
      } catch (err) {
        await unlink(tmp).catch(() => undefined);
        throw new DiskCacheError(file, 'cannot write a cached range', err);
      }
      lru.set(id, copy.byteLength);
    });
  }

  clear(): Promise<void> {
    return this.#serial(async () => {
      await rm(this.#rangesDir, { recursive: true, force: true });
      (await this.#loadIndex()).clear();
    });
  }

  async size(): Promise<number> {
    return (await this.#loadIndex()).totalBytes;
  }

  #path(id: string): string {
    return join(this.#rangesDir, id.slice(0, 2), `${id}.bin`);
  }

  #serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(op, op);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #loadIndex(): Promise<LruIndex> {
    this.#index ??= scanEntries(this.#rangesDir);
    return this.#index;
  }
}

/** A cache folder could not be read or written. */
export class DiskCacheError extends Error {
  readonly path: string;

  constructor(path: string, reason: string, cause: unknown) {
    super(`${path}: ${reason}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'DiskCacheError';
    this.path = path;
  }
}

function entryId(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** Every entry with its size, oldest mtime first. */
async function scanEntries(rangesDir: string): Promise<LruIndex> {
  const found: { id: string; bytes: number; mtimeMs: number }[] = [];
  let buckets: string[];
  try {
    buckets = await readdir(rangesDir);
  } catch (err) {
    if (isNotFound(err)) return new LruIndex();
    throw new DiskCacheError(rangesDir, 'cannot list the cache folder', err);
  }
  for (const bucket of buckets) {
    let names: string[];
    try {
      names = await readdir(join(rangesDir, bucket));
    } catch {
      continue; // not a folder
    }
    for (const name of names) {
      if (!/^[0-9a-f]{64}\.bin$/.test(name)) continue; // temporary or foreign files
      const s = await stat(join(rangesDir, bucket, name)).catch(() => null);
      if (s?.isFile()) found.push({ id: name.slice(0, 64), bytes: s.size, mtimeMs: s.mtimeMs });
    }
  }
  found.sort((a, b) => a.mtimeMs - b.mtimeMs);
  const lru = new LruIndex();
  for (const entry of found) lru.set(entry.id, entry.bytes);
  return lru;
}

function isNotFound(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'ENOENT';
}

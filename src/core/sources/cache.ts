/**
 * A cache of byte ranges read from the Hub, so a second merge of the same models sends no request for
 * bytes it has already read. Entries are keyed by `${repo}@${commit}/${path}#${start}-${end}` (end
 * inclusive, as in an HTTP Range): a commit never changes, so an entry never goes stale. Each store
 * has a byte limit and evicts the least recently used entries to stay under it.
 *
 * Stores: MemoryRangeCache (here), CacheApiRangeCache (cache-browser.ts, browsers and workers),
 * DiskRangeCache (src/cli/disk-cache.ts, Node).
 */

export interface RangeCache {
  /** The bytes stored under `key`, or undefined. A hit counts as a use for eviction. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Store `bytes` under `key` (a copy: the caller may reuse its array). Entries over the limit are not kept. */
  put(key: string, bytes: Uint8Array): Promise<void>;
  clear(): Promise<void>;
  /** Bytes stored. */
  size(): Promise<number>;
}

/** A store whose byte limit can change while it is in use (the studio's settings). */
export interface LimitedRangeCache extends RangeCache {
  readonly maxBytes: number;
  /** A new byte limit; entries over it are evicted now, least recently used first. */
  setMaxBytes(maxBytes: number): Promise<void>;
}

export function rangeCacheKey(repo: string, commit: string, path: string, start: number, endInclusive: number): string {
  return `${repo}@${commit}/${path}#${start}-${endInclusive}`;
}

/**
 * Bookkeeping shared by the stores: entry sizes in least-recently-used order (a Map iterates in
 * insertion order; a use re-inserts), and which keys to evict so that `incoming` more bytes fit.
 */
export class LruIndex {
  readonly #sizes = new Map<string, number>();
  #total = 0;

  get totalBytes(): number {
    return this.#total;
  }

  has(key: string): boolean {
    return this.#sizes.has(key);
  }

  /** Mark `key` as just used. */
  touch(key: string): void {
    const size = this.#sizes.get(key);
    if (size === undefined) return;
    this.#sizes.delete(key);
    this.#sizes.set(key, size);
  }

  set(key: string, bytes: number): void {
    this.delete(key);
    this.#sizes.set(key, bytes);
    this.#total += bytes;
  }

  delete(key: string): void {
    const size = this.#sizes.get(key);
    if (size === undefined) return;
    this.#sizes.delete(key);
    this.#total -= size;
  }

  clear(): void {
    this.#sizes.clear();
    this.#total = 0;
  }

  /** Least recently used keys to drop so that `incoming` more bytes stay within `limit`. */
  victims(incoming: number, limit: number): string[] {
    const out: string[] = [];
    let total = this.#total;
    for (const [key, size] of this.#sizes) {
      if (total + incoming <= limit) break;
      out.push(key);
      total -= size;
    }
    return out;
  }

  /** `[key, bytes]`, least recently used first. */
  entries(): IterableIterator<[string, number]> {
    return this.#sizes.entries();
  }
}

export interface MemoryRangeCacheOptions {
  /** @default 256 MiB */
  maxBytes?: number;
}

/** In memory; for tests, and for a browser session without Cache API storage. */
export class MemoryRangeCache implements LimitedRangeCache {
  #maxBytes: number;
  readonly #entries = new Map<string, Uint8Array>();
  readonly #lru = new LruIndex();

  constructor(opts: MemoryRangeCacheOptions = {}) {
    this.#maxBytes = checkMaxBytes(opts.maxBytes ?? 256 * 1024 * 1024);
  }

  get maxBytes(): number {
    return this.#maxBytes;
  }

  async setMaxBytes(maxBytes: number): Promise<void> {
    this.#maxBytes = checkMaxBytes(maxBytes);
    for (const victim of this.#lru.victims(0, this.#maxBytes)) {
      this.#lru.delete(victim);
      this.#entries.delete(victim);
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const bytes = this.#entries.get(key);
    if (bytes === undefined) return undefined;
    this.#lru.touch(key);
    // A copy: a consumer may transfer or detach what it gets (e.g. postMessage to a worker).
    return bytes.slice();
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    if (bytes.byteLength > this.maxBytes) return;
    this.#lru.delete(key);
    this.#entries.delete(key);
    for (const victim of this.#lru.victims(bytes.byteLength, this.maxBytes)) {
      this.#lru.delete(victim);
      this.#entries.delete(victim);
    }
    this.#entries.set(key, bytes.slice());
    this.#lru.set(key, bytes.byteLength);
  }

  async clear(): Promise<void> {
    this.#entries.clear();
    this.#lru.clear();
  }

  async size(): Promise<number> {
    return this.#lru.totalBytes;
  }
}

export function checkMaxBytes(maxBytes: number): number {
  if (!(Number.isFinite(maxBytes) && maxBytes >= 0)) {
    throw new RangeError(`a range cache's maxBytes must be a finite number >= 0, got ${maxBytes}`);
  }
  return maxBytes;
}

/**
 * Range cache on the Cache API (`caches`), which pages and workers both have: entries persist across
 * sessions, within the origin's storage quota. The Cache API keeps no access times, so the LRU order
 * and sizes live in an index entry beside the ranges, rewritten after each put (a session that only
 * reads loses its recency updates; harmless). If the browser drops entries on its own, a miss simply
 * removes them from the index.
 */
import { checkMaxBytes, LruIndex, type LimitedRangeCache } from './cache.ts';

export interface CacheApiRangeCacheOptions {
  /** @default 2 GiB */
  maxBytes?: number;
  /** @default 'merge-studio-ranges' */
  cacheName?: string;
  /** @default globalThis.caches */
  caches?: CacheStorage;
}

/** Cache API keys must be http(s) URLs; `.invalid` can never be a real host. */
const ORIGIN = 'https://merge-studio.invalid';
const INDEX_URL = `${ORIGIN}/index.json`;
const BYTES_HEADER = 'x-range-bytes';

export class CacheApiRangeCache implements LimitedRangeCache {
  #maxBytes: number;
  readonly cacheName: string;
  readonly #storage: CacheStorage;
  #opened: Promise<{ cache: Cache; lru: LruIndex }> | undefined;
  /** Mutations run one at a time so that index writes do not interleave. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: CacheApiRangeCacheOptions = {}) {
    this.#maxBytes = checkMaxBytes(opts.maxBytes ?? 2 * 1024 ** 3);
    this.cacheName = opts.cacheName ?? 'merge-studio-ranges';
    const storage = opts.caches ?? (globalThis as { caches?: CacheStorage }).caches;
    if (!storage) throw new Error('CacheApiRangeCache: this environment has no Cache API (globalThis.caches)');
    this.#storage = storage;
  }

  get maxBytes(): number {
    return this.#maxBytes;
  }

  /** Evicts at once (least recently used first) when the new limit is below what is stored. */
  async setMaxBytes(maxBytes: number): Promise<void> {
    const limit = checkMaxBytes(maxBytes);
    await this.#serial(async () => {
      this.#maxBytes = limit;
      const { cache, lru } = await this.#open();
      const victims = lru.victims(0, limit);
      if (victims.length === 0) return;
      for (const victim of victims) {
        await cache.delete(entryUrl(victim));
        lru.delete(victim);
      }
      await this.#saveIndex(cache, lru);
    });
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const { cache, lru } = await this.#open();
    const res = await cache.match(entryUrl(key));
    if (!res) {
      if (lru.has(key)) await this.#serial(async () => lru.delete(key));
      return undefined;
    }
    if (!lru.has(key)) lru.set(key, Number(res.headers.get(BYTES_HEADER) ?? 0));
    lru.touch(key);
    return new Uint8Array(await res.arrayBuffer());
  }

  put(key: string, bytes: Uint8Array): Promise<void> {
    if (bytes.byteLength > this.#maxBytes) return Promise.resolve();
    const copy = bytes.slice();
    return this.#serial(async () => {
      const { cache, lru } = await this.#open();
      lru.delete(key);
      // The limit as of now: a setMaxBytes queued before this put has taken effect.
      if (copy.byteLength > this.#maxBytes) return;
      for (const victim of lru.victims(copy.byteLength, this.#maxBytes)) {
        await cache.delete(entryUrl(victim));
        lru.delete(victim);
      }
      await cache.put(
        entryUrl(key),
        new Response(copy, {
          headers: { 'content-type': 'application/octet-stream', [BYTES_HEADER]: String(copy.byteLength) },
        }),
      );
      lru.set(key, copy.byteLength);
      await this.#saveIndex(cache, lru);
    });
  }

  clear(): Promise<void> {
    return this.#serial(async () => {
      await this.#storage.delete(this.cacheName);
      this.#opened = undefined;
    });
  }

  async size(): Promise<number> {
    const { lru } = await this.#open();
    return lru.totalBytes;
  }

  #serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(op, op);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #open(): Promise<{ cache: Cache; lru: LruIndex }> {
    this.#opened ??= (async () => {
      const cache = await this.#storage.open(this.cacheName);
      return { cache, lru: await loadIndex(cache) };
    })();
    return this.#opened;
  }

  async #saveIndex(cache: Cache, lru: LruIndex): Promise<void> {
    const body = JSON.stringify([...lru.entries()]);
    await cache.put(INDEX_URL, new Response(body, { headers: { 'content-type': 'application/json' } }));
  }
}

function entryUrl(key: string): string {
  return `${ORIGIN}/ranges/${encodeURIComponent(key)}`;
}

/** The saved index, or one rebuilt from the entries' size headers when it is missing or unreadable. */
async function loadIndex(cache: Cache): Promise<LruIndex> {
  const lru = new LruIndex();
  const saved = await cache.match(INDEX_URL);
  if (saved) {
    try {
      const entries: unknown = await saved.json();
      if (Array.isArray(entries)) {
        for (const entry of entries) {
          if (Array.isArray(entry) && typeof entry[0] === 'string' && typeof entry[1] === 'number') {
            lru.set(entry[0], entry[1]);
          }
        }
        return lru;
      }
    } catch {
      // Unreadable index: rebuild it below.
    }
  }
  const prefix = `${ORIGIN}/ranges/`;
  for (const request of await cache.keys()) {
    if (!request.url.startsWith(prefix)) continue;
    const res = await cache.match(request);
    if (!res) continue;
    lru.set(decodeURIComponent(request.url.slice(prefix.length)), Number(res.headers.get(BYTES_HEADER) ?? 0));
  }
  return lru;
}

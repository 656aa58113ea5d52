import { describe, expect, it } from 'vitest';
import { CacheApiRangeCache } from './cache-browser.ts';
import { LruIndex, MemoryRangeCache, rangeCacheKey, type LimitedRangeCache, type RangeCache } from './cache.ts';

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

/** A CacheStorage in memory with the Cache API's semantics for what the range cache uses. */
class FakeCacheStorage implements Pick<CacheStorage, 'open' | 'delete'> {
  readonly caches = new Map<string, FakeCache>();
  async open(name: string): Promise<Cache> {
    let c = this.caches.get(name);
    if (!c) this.caches.set(name, (c = new FakeCache()));
    return c as unknown as Cache;
  }
  async delete(name: string): Promise<boolean> {
    return this.caches.delete(name);
  }
}

class FakeCache {
  readonly entries = new Map<string, { body: ArrayBuffer; headers: [string, string][] }>();
  async match(req: RequestInfo | URL): Promise<Response | undefined> {
    const e = this.entries.get(urlOf(req));
    return e ? new Response(e.body.slice(0), { headers: e.headers }) : undefined;
  }
  async put(req: RequestInfo | URL, res: Response): Promise<void> {
    const url = urlOf(req);
    if (!/^https?:/.test(url)) throw new TypeError('Cache.put: only http(s) requests');
    this.entries.set(url, { body: await res.arrayBuffer(), headers: [...res.headers] });
  }
  async delete(req: RequestInfo | URL): Promise<boolean> {
    return this.entries.delete(urlOf(req));
  }
  async keys(): Promise<Request[]> {
    return [...this.entries.keys()].map((u) => new Request(u));
  }
}

function urlOf(req: RequestInfo | URL): string {
  return typeof req === 'string' ? req : req instanceof URL ? req.toString() : req.url;
}

function storeTests(make: (maxBytes: number) => { cache: LimitedRangeCache; reopen?: () => RangeCache }) {
  it('returns what was put, as a copy, and undefined for unknown keys', async () => {
    const { cache } = make(1000);
    const b = bytes(10, 7);
    await cache.put('a', b);
    b.fill(0); // the caller reuses its array
    const got = await cache.get('a');
    expect(got).toEqual(bytes(10, 7));
    got!.fill(1);
    expect(await cache.get('a')).toEqual(bytes(10, 7));
    expect(await cache.get('b')).toBeUndefined();
    expect(await cache.size()).toBe(10);
  });

  it('evicts the least recently used entries to stay within the byte limit', async () => {
    const { cache } = make(100);
    await cache.put('a', bytes(40, 1));
    await cache.put('b', bytes(40, 2));
    await cache.get('a'); // a is now more recent than b
    await cache.put('c', bytes(40, 3)); // 120 > 100: b goes
    expect(await cache.get('b')).toBeUndefined();
    expect(await cache.get('a')).toEqual(bytes(40, 1));
    expect(await cache.get('c')).toEqual(bytes(40, 3));
    expect(await cache.size()).toBe(80);
  });

  it('replaces an entry under the same key without counting it twice', async () => {
    const { cache } = make(100);
    await cache.put('a', bytes(60, 1));
    await cache.put('a', bytes(70, 2));
    expect(await cache.size()).toBe(70);
    expect(await cache.get('a')).toEqual(bytes(70, 2));
  });

  it('does not keep an entry larger than the limit, and clears', async () => {
    const { cache } = make(50);
    await cache.put('small', bytes(10, 1));
    await cache.put('huge', bytes(51, 1));
    expect(await cache.get('huge')).toBeUndefined();
    expect(await cache.get('small')).toEqual(bytes(10, 1));
    await cache.clear();
    expect(await cache.get('small')).toBeUndefined();
    expect(await cache.size()).toBe(0);
  });

  it('a lower limit evicts the least recently used entries at once; later puts obey the new limit', async () => {
    const { cache } = make(100);
    await cache.put('a', bytes(30, 1));
    await cache.put('b', bytes(30, 2));
    await cache.put('c', bytes(30, 3));
    await cache.get('a'); // order now b, c, a
    await cache.setMaxBytes(65);
    expect(cache.maxBytes).toBe(65);
    expect(await cache.size()).toBe(60);
    expect(await cache.get('b')).toBeUndefined();
    expect(await cache.get('c')).toEqual(bytes(30, 3));
    expect(await cache.get('a')).toEqual(bytes(30, 1));
    await cache.put('d', bytes(70, 4)); // over the new limit: not kept
    expect(await cache.get('d')).toBeUndefined();
    await cache.setMaxBytes(0);
    expect(await cache.size()).toBe(0);
    await cache.setMaxBytes(200);
    await cache.put('e', bytes(150, 5));
    expect(await cache.size()).toBe(150);
    await expect(cache.setMaxBytes(Number.NaN)).rejects.toThrow(/maxBytes/);
  });
}

describe('rangeCacheKey', () => {
  it('is repo@commit/path#start-end with an inclusive end', () => {
    expect(rangeCacheKey('org/m', 'abc', 'sub/model.safetensors', 8, 107)).toBe('org/m@abc/sub/model.safetensors#8-107');
  });
});

describe('LruIndex', () => {
  it('picks victims oldest first until the incoming bytes fit', () => {
    const lru = new LruIndex();
    lru.set('a', 10);
    lru.set('b', 20);
    lru.set('c', 30);
    lru.touch('a');
    expect(lru.victims(0, 60)).toEqual([]);
    expect(lru.victims(15, 60)).toEqual(['b']);
    expect(lru.victims(45, 60)).toEqual(['b', 'c']);
    expect(lru.victims(100, 60)).toEqual(['b', 'c', 'a']);
    expect([...lru.entries()]).toEqual([['b', 20], ['c', 30], ['a', 10]]);
  });
});

describe('MemoryRangeCache', () => {
  storeTests((maxBytes) => ({ cache: new MemoryRangeCache({ maxBytes }) }));

  it('refuses a nonsense limit', () => {
    expect(() => new MemoryRangeCache({ maxBytes: -1 })).toThrow(/maxBytes/);
  });
});

describe('CacheApiRangeCache', () => {
  storeTests((maxBytes) => {
    const caches = new FakeCacheStorage() as unknown as CacheStorage;
    return { cache: new CacheApiRangeCache({ maxBytes, caches }) };
  });

  it('keeps entries and their LRU order across instances (sessions)', async () => {
    const caches = new FakeCacheStorage();
    const first = new CacheApiRangeCache({ maxBytes: 100, caches: caches as unknown as CacheStorage });
    await first.put('org/m@c/model.safetensors#0-7', bytes(40, 1));
    await first.put('org/m@c/model.safetensors#8-47', bytes(40, 2));
    await first.get('org/m@c/model.safetensors#0-7');
    await first.put('x', bytes(1, 9)); // saves the index with the order after the get
    const second = new CacheApiRangeCache({ maxBytes: 100, caches: caches as unknown as CacheStorage });
    expect(await second.size()).toBe(81);
    expect(await second.get('org/m@c/model.safetensors#8-47')).toEqual(bytes(40, 2));
    await second.put('y', bytes(40, 3)); // evicts the oldest: #0-7 was used after #8-47, but #8-47 was just read
    expect(await second.get('org/m@c/model.safetensors#0-7')).toBeUndefined();
    expect(await second.get('org/m@c/model.safetensors#8-47')).toEqual(bytes(40, 2));
    expect(caches.caches.has('merge-studio-ranges')).toBe(true);
  });

  it('rebuilds a lost index from the entries, and forgets entries the browser dropped', async () => {
    const caches = new FakeCacheStorage();
    const first = new CacheApiRangeCache({ maxBytes: 100, caches: caches as unknown as CacheStorage });
    await first.put('a', bytes(10, 1));
    await first.put('b', bytes(20, 2));
    const store = caches.caches.get('merge-studio-ranges')!;
    store.entries.delete('https://merge-studio.invalid/index.json');
    const second = new CacheApiRangeCache({ maxBytes: 100, caches: caches as unknown as CacheStorage });
    expect(await second.size()).toBe(30);
    for (const url of store.entries.keys()) if (url.endsWith('/a')) store.entries.delete(url);
    expect(await second.get('a')).toBeUndefined();
    expect(await second.size()).toBe(20);
  });

  it('says so when there is no Cache API', () => {
    expect(() => new CacheApiRangeCache()).toThrow(/no Cache API/);
  });
});

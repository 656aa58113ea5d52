/**
 * The studio's Hub settings in the store: the endpoint from `?hub=`, the remembered token
 * (sessionStorage only while asked), the range cache's size, limit and clearing, and each Hub
 * model's download progress during a merge.
 */
import { describe, expect, it, vi } from 'vitest';
import { recipeToYaml } from '../../core/recipe/write.ts';
import type { EngineApi, MergeOutcome } from '../worker/client.ts';
import type { RangeCacheInfo, SourceProgressInfo } from '../worker/protocol.ts';
import { createStudioStore, type KeyValueStore, type StudioDeps } from './index.ts';
import { CACHE_LIMIT_STORAGE_KEY, TOKEN_STORAGE_KEY } from './settings-slice.ts';

const tick = () => new Promise((r) => setTimeout(r, 0));

/** Web Storage in a Map, recording every write. */
class MapStorage implements KeyValueStore {
  readonly items = new Map<string, string>();
  readonly writes: string[] = [];
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.writes.push(`${key}=${value}`);
    this.items.set(key, value);
  }
  removeItem(key: string): void {
    this.writes.push(`-${key}`);
    this.items.delete(key);
  }
}

/** An engine with a range cache of given bytes; merges are answered by the test. */
function fakeEngine(cacheBytes = 5000) {
  const cache = { bytes: cacheBytes, maxBytes: 2e9 };
  const calls: string[] = [];
  const merges: { progress: (p: SourceProgressInfo) => void; finish: (o: MergeOutcome) => void }[] = [];
  const info = (): RangeCacheInfo => ({ available: true, ...cache });
  const engine: EngineApi = {
    open: () => new Promise(() => {}),
    forget: () => {},
    check: () => new Promise(() => {}),
    probeGpu: async () => ({ status: 'unavailable', error: { name: 'GpuUnavailableError', message: 'no WebGPU' } }),
    merge(_request, _onProgress, onSourceProgress) {
      let finish!: (o: MergeOutcome) => void;
      const outcome = new Promise<MergeOutcome>((r) => (finish = r));
      merges.push({ progress: (p) => onSourceProgress?.(p), finish });
      return { jobId: merges.length, outcome, cancel: () => {} };
    },
    cacheInfo: async () => (calls.push('info'), info()),
    setCacheLimit: async (maxBytes) => {
      calls.push(`limit ${maxBytes}`);
      cache.maxBytes = maxBytes;
      cache.bytes = Math.min(cache.bytes, maxBytes);
      return info();
    },
    clearCache: async () => {
      calls.push('clear');
      cache.bytes = 0;
      return info();
    },
  };
  return { engine, calls, merges, cache };
}

function setup(deps: Partial<StudioDeps> = {}) {
  const fake = fakeEngine();
  const store = createStudioStore({
    engine: fake.engine,
    pickDirectory: async () => null,
    loadDemoSet: async () => ({ models: [], recipe: '' }),
    download: vi.fn(),
    ...deps,
  });
  return { store, ...fake };
}

describe('the Hub endpoint', () => {
  it('comes from ?hub= in the page address; a refused one leaves the default and says why', () => {
    const { store } = setup();
    store.getState().applyHubParam('?hub=http://127.0.0.1:9999/');
    expect(store.getState().hubUrl).toBe('http://127.0.0.1:9999');
    store.getState().applyHubParam('');
    expect(store.getState().hubUrl).toBe('http://127.0.0.1:9999');

    const other = setup().store;
    other.getState().applyHubParam('?hub=https://me:hf_secret@mirror.example.org');
    expect(other.getState().hubUrl).toBe('https://huggingface.co');
    expect(other.getState().hubUrlNotice).toMatch(/user name or password/);
    expect(other.getState().hubUrlNotice).not.toContain('hf_secret');
  });

  it('a typed endpoint is checked: a bad one is refused and the old one kept', () => {
    const { store } = setup();
    expect(store.getState().setHubUrl('not an address')).toMatch(/not a web address/);
    expect(store.getState().hubUrl).toBe('https://huggingface.co');
    expect(store.getState().setHubUrl('http://localhost:8080/')).toBeNull();
    expect(store.getState().hubUrl).toBe('http://localhost:8080');
  });
});

describe('the Hub token', () => {
  it('stays out of storage unless remembered; remembered, it follows edits and comes back on reload', () => {
    const session = new MapStorage();
    const { store } = setup({ sessionStorage: session });
    store.getState().setHubToken('hf_one');
    expect(session.items.size).toBe(0);
    expect(store.getState().rememberToken).toBe(false);

    store.getState().setRememberToken(true);
    expect(session.getItem(TOKEN_STORAGE_KEY)).toBe('hf_one');
    store.getState().setHubToken('hf_two');
    expect(session.getItem(TOKEN_STORAGE_KEY)).toBe('hf_two');

    // A reload: a new store over the same session storage.
    const reloaded = setup({ sessionStorage: session }).store;
    expect(reloaded.getState().hubToken).toBe('hf_two');
    expect(reloaded.getState().rememberToken).toBe(true);
    expect(recipeToYaml(reloaded.getState().recipe)).not.toContain('hf_two');

    // Unchecked: gone from storage, kept in memory for this page.
    reloaded.getState().setRememberToken(false);
    expect(session.getItem(TOKEN_STORAGE_KEY)).toBeNull();
    expect(reloaded.getState().hubToken).toBe('hf_two');
    reloaded.getState().setHubToken('hf_three');
    expect(session.items.size).toBe(0);
    expect(setup({ sessionStorage: session }).store.getState()).toMatchObject({ hubToken: '', rememberToken: false });
  });

  it('an emptied token is removed, not stored empty; storage that throws is survived', () => {
    const session = new MapStorage();
    const { store } = setup({ sessionStorage: session });
    store.getState().setRememberToken(true);
    expect(session.writes).toEqual([`-${TOKEN_STORAGE_KEY}`]);
    store.getState().setHubToken('hf_x');
    store.getState().setHubToken('');
    expect(session.getItem(TOKEN_STORAGE_KEY)).toBeNull();

    const broken: KeyValueStore = {
      getItem: () => {
        throw new DOMException('denied', 'SecurityError');
      },
      setItem: () => {
        throw new DOMException('full', 'QuotaExceededError');
      },
      removeItem: () => {},
    };
    const survivor = setup({ sessionStorage: broken }).store;
    survivor.getState().setRememberToken(true);
    survivor.getState().setHubToken('hf_y');
    expect(survivor.getState().hubToken).toBe('hf_y');
  });
});

describe('the range cache settings', () => {
  it('applies the saved limit once, then only asks; a typed limit is parsed, applied and saved', async () => {
    const local = new MapStorage();
    local.setItem(CACHE_LIMIT_STORAGE_KEY, '1000');
    const { store, calls } = setup({ localStorage: local });
    await store.getState().refreshRangeCache();
    expect(calls).toEqual(['limit 1000']);
    expect(store.getState().rangeCache).toEqual({ status: 'ready', bytes: 1000, maxBytes: 1000 });
    await store.getState().refreshRangeCache();
    expect(calls).toEqual(['limit 1000', 'info']);

    expect(await store.getState().setRangeCacheLimit('lots')).toMatch(/cache limit: "lots" is not a size/);
    expect(calls).toHaveLength(2);
    expect(await store.getState().setRangeCacheLimit('500MB')).toBeNull();
    expect(calls.at(-1)).toBe('limit 500000000');
    expect(local.getItem(CACHE_LIMIT_STORAGE_KEY)).toBe('500000000');
    expect(store.getState().rangeCache).toMatchObject({ maxBytes: 500e6 });
  });

  it('clears, and a cache the worker lacks or a failing call is shown as such', async () => {
    const { store, calls } = setup();
    await store.getState().refreshRangeCache();
    expect(store.getState().rangeCache).toEqual({ status: 'ready', bytes: 5000, maxBytes: 2e9 });
    await store.getState().clearRangeCache();
    expect(calls).toEqual(['info', 'clear']);
    expect(store.getState().rangeCache).toEqual({ status: 'ready', bytes: 0, maxBytes: 2e9 });

    const none = fakeEngine();
    none.engine.cacheInfo = async () => ({ available: false, reason: 'no Cache API here' });
    none.engine.clearCache = async () => {
      throw new Error('the worker stopped');
    };
    const s = createStudioStore({ engine: none.engine, pickDirectory: async () => null, loadDemoSet: async () => ({ models: [], recipe: '' }), download: vi.fn() });
    await s.getState().refreshRangeCache();
    expect(s.getState().rangeCache).toEqual({ status: 'unavailable', reason: 'no Cache API here' });
    await s.getState().clearRangeCache();
    expect(s.getState().rangeCache).toEqual({ status: 'failed', error: { name: 'Error', message: 'the worker stopped' } });
  });
});

describe('download progress per Hub model during a merge', () => {
  const progress = (ref: string, bytesReceived: number, cachedBytes = 0, done = false): SourceProgressInfo => ({
    ref,
    bytesReceived,
    bytesExpected: 1000,
    cachedBytes,
    rate: 2000,
    done,
  });

  async function running() {
    const t = setup();
    t.store.getState().importRecipe('models:\n  - model: org/a\n    parameters: {weight: 1}\nmerge_method: linear\n', 'test');
    t.store.setState({
      shelf: t.store.getState().shelf.map((m) => ({
        ...m,
        load: { status: 'ready', summary: { ref: m.ref, location: m.ref, tensorCount: 1, parameterCount: 500, bytes: 1000, dtypes: [], modelType: null, architecture: null, numLayers: 1, files: [], tensorNames: [] } },
      })),
      compat: { status: 'done', key: 'k', report: { ok: true, configDifferences: [], problems: [], notes: [] } },
    });
    void t.store.getState().startMerge('download');
    await tick();
    expect(t.store.getState().job.status).toBe('running');
    return t;
  }

  it('follows each model’s reports; bytes received never go back, even on a late report', async () => {
    const { store, merges } = await running();
    const seen: number[] = [];
    store.subscribe((s) => {
      const t = s.transfers['org/a'];
      if (t) seen.push(t.bytesReceived);
    });
    merges[0].progress(progress('org/a', 0));
    merges[0].progress(progress('org/a', 400, 100));
    merges[0].progress(progress('org/a', 300, 50)); // out of order
    expect(store.getState().transfers['org/a']).toMatchObject({ bytesReceived: 400, cachedBytes: 100, bytesExpected: 1000, rate: 2000, done: false });
    merges[0].progress(progress('org/a', 1000, 100, true));
    merges[0].progress(progress('org/a', 900, 100, false));
    expect(store.getState().transfers['org/a']).toMatchObject({ bytesReceived: 1000, done: true });
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen.at(-1)).toBe(1000);

    // The merge ends: the last numbers stay for the card; a new merge starts from nothing.
    merges[0].finish({ status: 'cancelled' });
    await tick();
    merges[0].progress(progress('org/a', 2000));
    expect(store.getState().transfers['org/a'].bytesReceived).toBe(1000);
    void store.getState().startMerge('download');
    await tick();
    expect(store.getState().transfers).toEqual({});
    merges[0].progress(progress('org/a', 10)); // the old job's report
    expect(store.getState().transfers).toEqual({});
    merges[1].progress(progress('org/a', 10));
    expect(store.getState().transfers['org/a'].bytesReceived).toBe(10);
  });
});

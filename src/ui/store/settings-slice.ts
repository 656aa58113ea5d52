/** Settings: backend, Hub endpoint and token, shard size, seed, output name, the range cache; and the GPU's status. */
import type { StateCreator } from 'zustand/vanilla';
import { DEFAULT_HUB_URL } from '../../core/sources/hub.ts';
import { parseByteSize } from '../../core/units.ts';
import { checkHubEndpoint, hubEndpointFromSearch } from '../hub-endpoint.ts';
import { toErrorInfo, type BackendChoice, type BackendSpeeds, type RangeCacheInfo } from '../worker/protocol.ts';
import type { KeyValueStore, RangeCacheState, SettingsSlice, StudioDeps, StudioState } from './types.ts';

/** sessionStorage key of a remembered token (this browser session only). */
export const TOKEN_STORAGE_KEY = 'merge-studio.hub-token';
/** localStorage key of the range cache's limit, in bytes. */
export const CACHE_LIMIT_STORAGE_KEY = 'merge-studio.cache-limit';
/** localStorage key set once the first-visit line was dismissed. */
export const FIRST_VISIT_STORAGE_KEY = 'merge-studio.first-visit-done';
/** localStorage key of the backends' measured speeds, with the adapter they were measured on. */
export const BACKEND_SPEEDS_STORAGE_KEY = 'merge-studio.backend-speeds';

/** The faster backend by a measurement. */
export function fasterBackend(speeds: BackendSpeeds): BackendChoice {
  return speeds.gpuMs <= speeds.cpuMs ? 'gpu' : 'cpu';
}

/** Web Storage may throw (storage disabled, quota, sandboxed frames): then nothing is kept. */
function readKey(storage: KeyValueStore | undefined, key: string): string | null {
  try {
    return storage?.getItem(key) ?? null;
  } catch {
    return null;
  }
}

function writeKey(storage: KeyValueStore | undefined, key: string, value: string | null): void {
  try {
    if (value === null) storage?.removeItem(key);
    else storage?.setItem(key, value);
  } catch {
    // Not kept: the value still holds in memory for this page.
  }
}

function cacheState(info: RangeCacheInfo): RangeCacheState {
  return info.available ? { status: 'ready', bytes: info.bytes, maxBytes: info.maxBytes } : { status: 'unavailable', reason: info.reason };
}

export function createSettingsSlice(deps: StudioDeps): StateCreator<StudioState, [], [], SettingsSlice> {
  const rememberedToken = readKey(deps.sessionStorage, TOKEN_STORAGE_KEY);
  /** The saved limit goes to the worker once per page (a fresh worker starts with its default). */
  let limitApplied = false;
  const savedLimit = (): number | null => {
    const text = readKey(deps.localStorage, CACHE_LIMIT_STORAGE_KEY);
    const n = text === null ? NaN : Number(text);
    return Number.isSafeInteger(n) && n >= 0 ? n : null;
  };
  return (set, get) => {
    /** The token in sessionStorage exactly while remembering is on (an empty one is not kept). */
    const keepToken = () => writeKey(deps.sessionStorage, TOKEN_STORAGE_KEY, get().rememberToken && get().hubToken !== '' ? get().hubToken : null);
    const cacheCall = async (call: () => Promise<RangeCacheInfo>) => {
      try {
        set({ rangeCache: cacheState(await call()) });
      } catch (err) {
        set({ rangeCache: { status: 'failed', error: toErrorInfo(err) } });
      }
    };
    /** The measured speeds remembered for `adapter`, if any. */
    const rememberedSpeeds = (adapter: string): BackendSpeeds | null => {
      try {
        const saved = JSON.parse(readKey(deps.localStorage, BACKEND_SPEEDS_STORAGE_KEY) ?? 'null') as ({ adapter: string } & BackendSpeeds) | null;
        return saved && saved.adapter === adapter && Number.isFinite(saved.gpuMs) && Number.isFinite(saved.cpuMs) ? { gpuMs: saved.gpuMs, cpuMs: saved.cpuMs } : null;
      } catch {
        return null;
      }
    };
    /** A measurement decides the backend unless the user picked one. */
    const applySpeeds = (speeds: BackendSpeeds) => {
      set({ backendSpeeds: speeds, measuringBackends: false });
      if (get().backendSource !== 'user') set({ backend: fasterBackend(speeds), backendSource: 'measured' });
    };
    return {
      firstVisit: readKey(deps.localStorage, FIRST_VISIT_STORAGE_KEY) === null,
      dismissFirstVisit() {
        writeKey(deps.localStorage, FIRST_VISIT_STORAGE_KEY, '1');
        set({ firstVisit: false });
      },
      backend: 'gpu',
      backendSource: 'default',
      backendSpeeds: null,
      measuringBackends: false,
      gpu: { status: 'probing' },
      hubUrl: DEFAULT_HUB_URL,
      hubUrlNotice: null,
      hubToken: rememberedToken ?? '',
      rememberToken: rememberedToken !== null,
      rangeCache: { status: 'loading' },
      shardSize: '5GB',
      seed: 0,
      outputName: 'merged-model',
      setBackend: (backend) => set({ backend, backendSource: 'user' }),
      setHubUrl(text) {
        const checked = checkHubEndpoint(text);
        if ('problem' in checked) return checked.problem;
        set({ hubUrl: checked.url, hubUrlNotice: null });
        return null;
      },
      applyBackendParam(search) {
        const backend = new URLSearchParams(search).get('backend');
        if (backend === 'gpu' || backend === 'cpu') set({ backend, backendSource: 'user' });
      },
      applyHubParam(search) {
        const found = hubEndpointFromSearch(search);
        if (found === null) return;
        if ('problem' in found) set({ hubUrlNotice: found.problem });
        else set({ hubUrl: found.url, hubUrlNotice: null });
      },
      setHubToken(hubToken) {
        set({ hubToken });
        keepToken();
      },
      setRememberToken(rememberToken) {
        set({ rememberToken });
        keepToken();
      },
      async refreshRangeCache() {
        const limit = limitApplied ? null : savedLimit();
        limitApplied = true;
        await cacheCall(() => (limit !== null ? deps.engine.setCacheLimit(limit) : deps.engine.cacheInfo()));
      },
      async setRangeCacheLimit(text) {
        let maxBytes: number;
        try {
          maxBytes = parseByteSize(text, 'cache limit');
        } catch (err) {
          return toErrorInfo(err).message;
        }
        writeKey(deps.localStorage, CACHE_LIMIT_STORAGE_KEY, String(maxBytes));
        limitApplied = true;
        await cacheCall(() => deps.engine.setCacheLimit(maxBytes));
        return null;
      },
      async clearRangeCache() {
        await cacheCall(() => deps.engine.clearCache());
      },
      setShardSize: (shardSize) => set({ shardSize }),
      setSeed: (seed) => set({ seed: Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff ? seed : get().seed }),
      setOutputName: (outputName) => set({ outputName }),
      async probeGpu() {
        set({ gpu: { status: 'probing' } });
        const gpu = await deps.engine.probeGpu();
        set({ gpu });
        // Without WebGPU the CPU backend is the one that works; the GPU choice comes back if it does.
        if (gpu.status === 'unavailable') {
          set({ backend: 'cpu', backendSource: 'no-gpu' });
          return;
        }
        if (get().backendSource === 'no-gpu') set({ backend: 'gpu', backendSource: 'default' });
        // A software adapter runs shaders on the CPU: either backend may be faster, so measure (once per adapter),
        // unless the user has chosen.
        if (!gpu.software || get().backendSource === 'user') return;
        const remembered = rememberedSpeeds(gpu.adapter);
        if (remembered) return applySpeeds(remembered);
        const measure = deps.engine.measureBackends?.bind(deps.engine);
        if (!measure) return;
        set({ measuringBackends: true });
        try {
          const speeds = await measure();
          writeKey(deps.localStorage, BACKEND_SPEEDS_STORAGE_KEY, JSON.stringify({ adapter: gpu.adapter, ...speeds }));
          applySpeeds(speeds);
        } catch {
          // The GPU failed the measurement: the CPU backend is the one known to work.
          set({ measuringBackends: false });
          if (get().backendSource !== 'user') set({ backend: 'cpu', backendSource: 'measured' });
        }
      },
    };
  };
}

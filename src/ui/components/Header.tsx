/** Title bar: GPU status (adapter and key limits, or why there is none) and the settings. */
import { useState, type ReactNode } from 'react';
import { useShallow } from 'zustand/react/shallow';
import { errorInWords } from '../errors.ts';
import { formatBytes, formatMs } from '../format.ts';
import { useStudio } from '../store-context.tsx';
import { closeOnEscape } from './popover.ts';

const LIMIT_LABELS: Record<string, (v: number) => string> = {
  maxStorageBufferBindingSize: (v) => `storage binding ${formatBytes(v)}`,
  maxBufferSize: (v) => `buffer ${formatBytes(v)}`,
  maxComputeWorkgroupsPerDimension: (v) => `${v.toLocaleString('en')} workgroups / dim`,
  maxStorageBuffersPerShaderStage: (v) => `${v} storage buffers / stage`,
};

export function Header() {
  return (
    <header className="app-header">
      <div className="brand">
        <h1>Merge Studio</h1>
        <p className="tagline">Merge LLM checkpoints in your browser, on your GPU</p>
      </div>
      <div className="header-right">
        <GpuStatus />
        <Settings />
      </div>
    </header>
  );
}

function GpuStatus() {
  const gpu = useStudio((s) => s.gpu);
  const setBackend = useStudio((s) => s.setBackend);
  const backend = useStudio((s) => s.backend);
  const speeds = useStudio((s) => s.backendSpeeds);
  switch (gpu.status) {
    case 'probing':
      return (
        <div className="gpu-status probing" data-testid="gpu.status">
          Looking for a GPU…
        </div>
      );
    case 'ready':
      return (
        <details className="gpu-status ready" data-testid="gpu.status" onKeyDown={closeOnEscape}>
          <summary title="WebGPU adapter and limits">
            <span className="dot" aria-hidden="true" /> {gpu.adapter}
          </summary>
          <div className="popover">
            <p>
              <strong>{gpu.adapter}</strong>
            </p>
            <ul>
              {Object.entries(gpu.limits).map(([k, v]) => (
                <li key={k}>{LIMIT_LABELS[k]?.(v) ?? `${k}: ${v}`}</li>
              ))}
            </ul>
            <p className="hint">Merging runs {backend === 'gpu' ? 'on this GPU' : 'on the CPU (chosen in Merge)'}.</p>
            {gpu.software && (
              <p className="hint" data-testid="gpu.software">
                This is a software adapter: its shaders run on the CPU.{' '}
                {speeds
                  ? `Measured here: the CPU backend took ${formatMs(speeds.cpuMs)}, this adapter ${formatMs(speeds.gpuMs)} for the same analysis, so the ${speeds.cpuMs < speeds.gpuMs ? 'CPU' : 'GPU'} backend is the faster one.`
                  : 'The studio measures both backends once and uses the faster one.'}
              </p>
            )}
          </div>
        </details>
      );
    case 'unavailable': {
      const words = errorInWords(gpu.error);
      return (
        <details className="gpu-status unavailable" data-testid="gpu.status" onKeyDown={closeOnEscape}>
          <summary>
            <span className="dot" aria-hidden="true" /> No WebGPU: using the CPU
          </summary>
          <div className="popover" role="note">
            <p>
              <strong>{words.title}</strong>
            </p>
            <p>{words.text}</p>
            <p>The CPU backend gives the same results, more slowly. Chrome or Edge with hardware acceleration enabled run merges on the GPU.</p>
            <button type="button" className="small" onClick={() => setBackend('cpu')} disabled={backend === 'cpu'}>
              {backend === 'cpu' ? 'CPU backend selected' : 'Use the CPU backend'}
            </button>
          </div>
        </details>
      );
    }
    default: {
      const never: never = gpu;
      return <>{String(never)}</>;
    }
  }
}

function Settings() {
  const s = useStudio(
    useShallow((st) => ({
      hubUrl: st.hubUrl,
      hubUrlNotice: st.hubUrlNotice,
      hubToken: st.hubToken,
      rememberToken: st.rememberToken,
      seed: st.seed,
      setHubUrl: st.setHubUrl,
      setHubToken: st.setHubToken,
      setRememberToken: st.setRememberToken,
      setSeed: st.setSeed,
      refreshRangeCache: st.refreshRangeCache,
    })),
  );
  const [urlProblem, setUrlProblem] = useState<string | null>(null);
  const problem = urlProblem ?? s.hubUrlNotice;
  return (
    <details
      className="settings"
      data-testid="settings"
      onKeyDown={closeOnEscape}
      onToggle={(e) => {
        if ((e.currentTarget as HTMLDetailsElement).open) void s.refreshRangeCache();
      }}
    >
      <summary>
        {s.hubUrlNotice ? <span className="dot warn" aria-label="A setting needs attention" /> : null}
        Settings
      </summary>
      <div className="popover settings-body">
        <div className="field">
          <label htmlFor="hub-url">Hub endpoint</label>
          <input
            id="hub-url"
            key={s.hubUrl}
            type="url"
            defaultValue={s.hubUrl}
            onBlur={(e) => setUrlProblem(s.setHubUrl(e.target.value))}
            onKeyDown={(e) => {
              if (e.key === 'Enter') setUrlProblem(s.setHubUrl(e.currentTarget.value));
            }}
            spellCheck={false}
            aria-invalid={urlProblem ? true : undefined}
            aria-describedby={problem ? 'hub-url-problem' : 'hub-url-hint'}
            data-testid="settings.hub-url"
          />
          {problem ? (
            <p id="hub-url-problem" className="error-text" role="alert" data-testid="settings.hub-url.problem">
              {problem}
            </p>
          ) : (
            <p id="hub-url-hint" className="hint">
              The Hub or a mirror of it; a link can set it with <code>?hub=</code>.
            </p>
          )}
        </div>
        <div className="field">
          <label htmlFor="hub-token">Hub access token (gated repos)</label>
          <input
            id="hub-token"
            type="password"
            value={s.hubToken}
            onChange={(e) => s.setHubToken(e.target.value)}
            placeholder="hf_…"
            autoComplete="off"
            aria-describedby="hub-token-hint"
            data-testid="settings.hub-token"
          />
          <label className="check small">
            <input type="checkbox" checked={s.rememberToken} onChange={(e) => s.setRememberToken(e.target.checked)} data-testid="settings.remember-token" />
            Remember for this browser session
          </label>
          <p id="hub-token-hint" className="hint">
            {s.rememberToken
              ? 'Kept in this browser session’s storage until you close it or untick this; never in the recipe, the link or the exported files.'
              : 'Kept in this tab’s memory only: never in the recipe, the link, storage or the exported files.'}
          </p>
        </div>
        <CacheSettings />
        <div className="field">
          <label htmlFor="seed">Random seed (DARE, DELLA)</label>
          <input id="seed" type="number" min={0} step={1} value={s.seed} onChange={(e) => s.setSeed(e.target.valueAsNumber)} data-testid="settings.seed" />
        </div>
      </div>
    </details>
  );
}

/** The worker's cache of Hub byte ranges: how full it is, its limit, and clearing it. */
function CacheSettings() {
  const { rangeCache, setRangeCacheLimit, clearRangeCache } = useStudio(
    useShallow((st) => ({ rangeCache: st.rangeCache, setRangeCacheLimit: st.setRangeCacheLimit, clearRangeCache: st.clearRangeCache })),
  );
  const [limitProblem, setLimitProblem] = useState<string | null>(null);
  const [clearing, setClearing] = useState(false);
  const applyLimit = async (text: string) => {
    if (rangeCache.status === 'ready' && text.trim() === formatBytes(rangeCache.maxBytes)) return;
    setLimitProblem(await setRangeCacheLimit(text));
  };
  let body: ReactNode;
  switch (rangeCache.status) {
    case 'loading':
      body = <p className="hint">Looking at the cache…</p>;
      break;
    case 'unavailable':
      body = <p className="hint">No download cache in this browser ({rangeCache.reason}): every merge downloads its Hub models again.</p>;
      break;
    case 'failed':
      body = <p className="error-text">The cache cannot be read: {rangeCache.error.message}</p>;
      break;
    case 'ready': {
      const share = rangeCache.maxBytes > 0 ? Math.min(1, rangeCache.bytes / rangeCache.maxBytes) : 0;
      body = (
        <>
          <div className="cache-usage">
            <meter min={0} max={1} value={share} aria-labelledby="cache-title" />
            <span data-testid="settings.cache.size">
              {formatBytes(rangeCache.bytes)} of {formatBytes(rangeCache.maxBytes)}
            </span>
          </div>
          <div className="cache-controls">
            <label htmlFor="cache-limit">Limit</label>
            <input
              id="cache-limit"
              key={rangeCache.maxBytes}
              type="text"
              defaultValue={formatBytes(rangeCache.maxBytes)}
              onBlur={(e) => void applyLimit(e.target.value)}
              onKeyDown={(e) => {
                if (e.key === 'Enter') void applyLimit(e.currentTarget.value);
              }}
              spellCheck={false}
              aria-invalid={limitProblem ? true : undefined}
              aria-describedby="cache-hint"
              data-testid="settings.cache.limit"
            />
            <button
              type="button"
              className="small"
              disabled={clearing || rangeCache.bytes === 0}
              onClick={() => {
                setClearing(true);
                void clearRangeCache().finally(() => setClearing(false));
              }}
              data-testid="settings.cache.clear"
            >
              {clearing ? 'Clearing…' : 'Clear cache'}
            </button>
          </div>
          {limitProblem ? (
            <p className="error-text" role="alert">
              {limitProblem}
            </p>
          ) : null}
        </>
      );
      break;
    }
    default: {
      const never: never = rangeCache;
      body = String(never);
    }
  }
  return (
    <div className="field cache-settings" role="group" aria-labelledby="cache-title" data-testid="settings.cache">
      <span id="cache-title" className="field-title">
        Download cache
      </span>
      {body}
      <p id="cache-hint" className="hint">
        Byte ranges read from the Hub, kept so that merging the same models again downloads nothing. The oldest go first when it is full.
      </p>
    </div>
  );
}

/** Title bar: GPU status (adapter and key limits, or why there is none) and the settings. */
import { useShallow } from 'zustand/react/shallow';
import { errorInWords } from '../errors.ts';
import { formatBytes } from '../format.ts';
import { useStudio } from '../store-context.tsx';

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
  switch (gpu.status) {
    case 'probing':
      return (
        <div className="gpu-status probing" data-testid="gpu.status">
          Looking for a GPU…
        </div>
      );
    case 'ready':
      return (
        <details className="gpu-status ready" data-testid="gpu.status">
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
          </div>
        </details>
      );
    case 'unavailable': {
      const words = errorInWords(gpu.error);
      return (
        <details className="gpu-status unavailable" data-testid="gpu.status" open={false}>
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
    useShallow((st) => ({ hubUrl: st.hubUrl, hubToken: st.hubToken, seed: st.seed, setHubUrl: st.setHubUrl, setHubToken: st.setHubToken, setSeed: st.setSeed })),
  );
  return (
    <details className="settings" data-testid="settings">
      <summary>Settings</summary>
      <div className="popover settings-body">
        <div className="field">
          <label htmlFor="hub-url">Hub endpoint</label>
          <input id="hub-url" type="url" defaultValue={s.hubUrl} onBlur={(e) => s.setHubUrl(e.target.value)} spellCheck={false} data-testid="settings.hub-url" />
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
            data-testid="settings.hub-token"
          />
          <p className="hint">Kept in this tab only: never in the recipe, the link or storage.</p>
        </div>
        <div className="field">
          <label htmlFor="seed">Random seed (DARE, DELLA)</label>
          <input id="seed" type="number" min={0} step={1} value={s.seed} onChange={(e) => s.setSeed(e.target.valueAsNumber)} data-testid="settings.seed" />
        </div>
      </div>
    </details>
  );
}

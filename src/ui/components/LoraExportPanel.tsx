/**
 * "Export as LoRA of the base": the merge's difference from its base, factored per linear module
 * into a PEFT adapter (`merge-studio extract-lora`'s library, in the engine worker). Opened, it
 * merges into the worker's memory and measures the relative error ‖Δ − Δ_r‖/‖Δ‖ of every rank r
 * (a tiny line of error vs rank); the rank slider shows the error at its rank, and Export writes
 * adapter_config.json + adapter_model.safetensors into a ZIP. While open, a changed recipe is
 * measured again (after it has been still for a moment); the merge itself is made once for
 * measuring and exporting. Disabled, with the reason, when the recipe has no base model or cannot
 * be merged yet.
 */
import { line, scaleLinear } from 'd3';
import { useEffect, useRef, useState } from 'react';
import { useShallow } from 'zustand/react/shallow';
import { errorInWords } from '../errors.ts';
import type { StudioState } from '../store/index.ts';
import { useStudio } from '../store-context.tsx';
import type { EngineApi, LoraHandle } from '../worker/client.ts';
import type { LoraExportInfo, LoraProgressInfo, LoraRequest } from '../worker/lora-protocol.ts';
import type { ErrorInfo } from '../worker/protocol.ts';
import { blocker } from './MergePanel.tsx';
import './lora-export.css';

/** The slider's end where the modules allow it (a larger full spectrum costs minutes per module). */
export const LORA_MAX_RANK = 256;
/** The rank the slider starts at (clamped to the measured range). */
const DEFAULT_RANK = 16;
/** How long the recipe must stay still before it is measured again. */
const REMEASURE_MS = 400;

export interface LoraExportPanelProps {
  engine: Pick<EngineApi, 'lora'>;
  download(name: string, blob: Blob): void;
}

/** Why no adapter can be made now, in words, or null. */
export function loraBlocker(s: StudioState): string | null {
  if (s.recipe.baseModel === undefined) return 'the recipe has no base model: mark one model on the shelf as the base (the adapter is the merge minus the base)';
  return blocker(s);
}

type Run =
  | { status: 'idle' }
  | { status: 'running'; what: 'measure' | 'export'; progress: LoraProgressInfo | null; cancelling: boolean }
  | { status: 'failed'; error: ErrorInfo }
  | { status: 'cancelled' };

interface Curve {
  key: string;
  errors: number[];
  modules: number;
}

const pct = (x: number) => `${(100 * x).toFixed(x < 0.001 && x > 0 ? 3 : 1)}%`;

export function LoraExportPanel({ engine, download }: LoraExportPanelProps) {
  const s = useStudio(
    useShallow((st) => ({
      recipe: st.recipe,
      backend: st.backend,
      seed: st.seed,
      outputName: st.outputName,
      reason: loraBlocker(st),
      merging: st.job.status === 'running' || st.job.status === 'picking',
    })),
  );
  const [open, setOpen] = useState(false);
  const [run, setRun] = useState<Run>({ status: 'idle' });
  const [curve, setCurve] = useState<Curve | null>(null);
  const [rank, setRank] = useState(DEFAULT_RANK);
  const [exported, setExported] = useState<(LoraExportInfo & { key: string }) | null>(null);
  const handle = useRef<LoraHandle | null>(null);
  const key = JSON.stringify([s.recipe, s.backend, s.seed]);
  const ready = s.reason === null && !s.merging;
  const maxRank = curve?.errors.length ?? 0;
  const shownRank = Math.min(Math.max(1, rank), Math.max(1, maxRank));

  const start = (what: 'measure' | 'export') => {
    handle.current?.cancel();
    const request: LoraRequest = {
      recipe: s.recipe,
      backend: s.backend,
      seed: s.seed,
      maxRank: LORA_MAX_RANK,
      exportRank: what === 'export' ? shownRank : null,
      folderName: `${s.outputName}-lora`,
    };
    const h = engine.lora!(request, (progress) => {
      if (handle.current === h) setRun((r) => (r.status === 'running' ? { ...r, progress } : r));
    });
    handle.current = h;
    setRun({ status: 'running', what, progress: null, cancelling: false });
    h.outcome.then(
      (outcome) => {
        if (handle.current !== h) return;
        handle.current = null;
        if (outcome.status === 'cancelled') return setRun({ status: 'cancelled' });
        const r = outcome.result;
        setCurve({ key, errors: r.errors, modules: r.modules });
        if (r.export) {
          setExported({ ...r.export, key });
          download(r.export.name, r.export.blob);
        }
        setRun({ status: 'idle' });
      },
      (err: { info?: ErrorInfo; message?: string }) => {
        if (handle.current !== h) return;
        handle.current = null;
        setRun({ status: 'failed', error: err.info ?? { name: 'Error', message: String(err.message ?? err) } });
      },
    );
  };

  // Open and ready: measure the current recipe (again after a change, once it is still).
  useEffect(() => {
    if (!open || !ready || curve?.key === key) return;
    const t = setTimeout(() => start('measure'), curve ? REMEASURE_MS : 0);
    return () => clearTimeout(t);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [open, ready, key, curve?.key]);
  // A merge needs the worker; closing the panel or leaving the page stops the work.
  useEffect(() => {
    if ((s.merging || !open) && handle.current) handle.current.cancel();
  }, [s.merging, open]);
  useEffect(() => () => handle.current?.cancel(), []);

  const running = run.status === 'running' ? run : null;
  const stale = curve !== null && curve.key !== key;
  const error = curve ? curve.errors[shownRank - 1] : null;

  return (
    <section id="lora-export" className="panel lora-export" aria-labelledby="lora-title" data-testid="lora.panel" tabIndex={-1}>
      <div className="panel-head">
        <h2 id="lora-title">Export as LoRA of the base</h2>
        <button type="button" className="small head-toggle" aria-expanded={open} aria-controls="lora-body" onClick={() => setOpen((o) => !o)} data-testid="lora.open">
          {open ? 'Hide' : 'Show'}
        </button>
      </div>
      {open ? (
        <div id="lora-body" className="lora-body">
          <p className="field-note">
            The merge as an adapter for its base: each linear module&apos;s change Δ = W<sub>merge</sub> − W<sub>base</sub> factored by SVD into B·A of rank r (PEFT: adapter_config.json +
            adapter_model.safetensors), as <code>merge-studio extract-lora</code> does. The error is ‖Δ − B·A‖ / ‖Δ‖ over all modules.
          </p>
          {s.reason !== null ? (
            <p className="blocker" data-testid="lora.blocker">
              Before exporting a LoRA: {s.reason}.
            </p>
          ) : null}
          <div className={`lora-rank${stale ? ' is-stale' : ''}`}>
            <div className="field">
              <label htmlFor="lora-rank">Rank</label>
              <input
                id="lora-rank"
                type="range"
                min={1}
                max={Math.max(1, maxRank)}
                step={1}
                value={shownRank}
                disabled={curve === null}
                onChange={(e) => setRank(Number(e.target.value))}
                aria-describedby="lora-error"
                aria-valuetext={error !== null ? `rank ${shownRank}, error ${pct(error)}` : `rank ${shownRank}`}
                data-testid="lora.rank"
              />
            </div>
            <output id="lora-error" htmlFor="lora-rank" className="lora-readout" aria-live="polite" data-testid="lora.error" data-rank={shownRank} data-error={error ?? undefined}>
              {curve ? (
                <>
                  r = <strong>{shownRank}</strong> of {maxRank} · error <strong>{pct(error!)}</strong>
                </>
              ) : (
                'r = –'
              )}
            </output>
            {curve ? <ErrorLine errors={curve.errors} rank={shownRank} /> : null}
          </div>
          <div className="lora-actions">
            <button type="button" className="primary" disabled={!ready || curve === null || running !== null} onClick={() => start('export')} data-testid="lora.export">
              Export LoRA (r = {shownRank}) .zip
            </button>
            <RunView
              run={run}
              stale={stale}
              onCancel={() => {
                handle.current?.cancel();
                setRun((r) => (r.status === 'running' ? { ...r, cancelling: true } : r));
              }}
            />
            {ready && curve?.key !== key && (run.status === 'failed' || run.status === 'cancelled') ? (
              <button type="button" onClick={() => start('measure')} data-testid="lora.measure">
                Measure again
              </button>
            ) : null}
          </div>
          {curve && run.status !== 'running' ? (
            <p className="hint" data-testid="lora.modules">
              {curve.modules} linear modules; norms, embeddings and the LM head are not part of a LoRA (their changes are named after export).
            </p>
          ) : null}
          {exported ? <ExportedView info={exported} stale={exported.key !== key} onDismiss={() => setExported(null)} /> : null}
        </div>
      ) : null}
    </section>
  );
}

function RunView({ run, stale, onCancel }: { run: Run; stale: boolean; onCancel(): void }) {
  switch (run.status) {
    case 'running': {
      const p = run.progress;
      const words = !p ? 'Starting…' : p.phase === 'merging' ? 'Merging in memory…' : `${p.phase === 'measuring' ? 'Measuring the error of each rank' : 'Writing the adapter'}: ${p.done}/${p.total} modules`;
      return (
        <div className="progress" data-testid="lora.progress" aria-live="polite">
          <div className="progress-row">
            <progress max={1} value={p && p.total > 0 ? p.done / p.total : 0} aria-label={words} />
            <button type="button" className="danger" onClick={onCancel} disabled={run.cancelling} data-testid="lora.cancel">
              {run.cancelling ? 'Cancelling…' : 'Cancel'}
            </button>
          </div>
          <p className="status-line">{words}</p>
        </div>
      );
    }
    case 'failed': {
      const e = errorInWords(run.error);
      return (
        <p className="lora-error-text" role="alert" data-testid="lora.failed">
          <strong>{e.title}:</strong> {e.text}
        </p>
      );
    }
    case 'cancelled':
      return (
        <p className="status-line" role="status" data-testid="lora.cancelled">
          Cancelled: nothing was written.
        </p>
      );
    case 'idle':
      return stale ? <p className="status-line">The recipe changed: measuring again…</p> : null;
    default: {
      const never: never = run;
      return <>{String(never)}</>;
    }
  }
}

function ExportedView({ info, stale, onDismiss }: { info: LoraExportInfo; stale: boolean; onDismiss(): void }) {
  return (
    <div className={`result ok${stale ? ' is-stale' : ''}`} role="status" data-testid="lora.done">
      <div className="result-text">
        <strong>
          ✓ {info.name}: rank {info.rank}, error {pct(info.error)} (worst module {pct(info.maxModuleError)})
        </strong>
        <p className="files">{info.files.join(' · ')}</p>
        {info.notCaptured.length > 0 ? (
          <p className="hint" data-testid="lora.not-captured">
            Not in the adapter ({info.notCaptured.length} tensors differ from the base): {info.notCaptured.slice(0, 4).join(', ')}
            {info.notCaptured.length > 4 ? '…' : ''}
          </p>
        ) : null}
      </div>
      <button type="button" className="icon" onClick={onDismiss} aria-label="Dismiss the result">
        ×
      </button>
    </div>
  );
}

const W = 220;
const H = 56;
const M = { left: 4, right: 4, top: 4, bottom: 4 };

/** Error vs rank (d3 scales and line; React draws the SVG), the chosen rank marked. */
function ErrorLine({ errors, rank }: { errors: number[]; rank: number }) {
  const x = scaleLinear()
    .domain([1, Math.max(2, errors.length)])
    .range([M.left, W - M.right]);
  const y = scaleLinear()
    .domain([0, Math.max(1e-12, errors[0])])
    .range([H - M.bottom, M.top]);
  const path = line<number>()
    .x((_, i) => x(i + 1))
    .y((e) => y(e))(errors);
  return (
    <svg className="lora-line" width={W} height={H} viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Error by rank: ${pct(errors[0])} at rank 1, ${pct(errors.at(-1)!)} at rank ${errors.length}`} data-testid="lora.chart">
      <line x1={M.left} x2={W - M.right} y1={y(0)} y2={y(0)} className="lora-axis" />
      <path d={path ?? ''} className="lora-curve" />
      <circle cx={x(rank)} cy={y(errors[rank - 1])} r={3.5} className="lora-mark" />
    </svg>
  );
}

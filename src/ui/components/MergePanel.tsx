/**
 * Output settings, the merge buttons, progress (tensors, bytes, rate, ETA), cancel, and the result or
 * the error in words. What blocks a merge is said next to the buttons.
 */
import { useEffect, useRef, useState } from 'react';
import { useShallow } from 'zustand/react/shallow';
import { isFloatDType, TORCH_DTYPE_NAMES, type FloatDType } from '../../core/dtype.ts';
import { errorInWords } from '../errors.ts';
import { formatBytes, formatDuration, formatMs } from '../format.ts';
import { DTYPE_CHOICES, recipeProblem } from '../recipe-model.ts';
import { mergeRefs } from '../store/analysis-slice.ts';
import { outputNameProblem } from '../store/job-slice.ts';
import { fasterBackend } from '../store/settings-slice.ts';
import type { BackendChoice, BackendSpeeds } from '../worker/protocol.ts';
import type { StudioState } from '../store/index.ts';
import { useStudio } from '../store-context.tsx';

const SHARD_SIZES = ['500MB', '1GB', '2GB', '5GB', '10GB'];

/** Why the merge cannot start yet, in words, or null (the LoRA export waits for the same). */
export function blocker(s: StudioState): string | null {
  const problem = recipeProblem(s.recipe);
  if (problem) return problem.message;
  for (const ref of mergeRefs(s)) {
    const m = s.shelf.find((x) => x.ref === ref);
    if (!m) return `${ref} is not on the shelf`;
    if (m.load.status === 'loading') return `${ref} is still loading`;
    if (m.load.status === 'failed') return `${ref} failed to load: remove it or try again`;
    if (m.load.status === 'missing') return `${ref} has no files yet: drop its folder on the page`;
  }
  if (s.compat.status === 'done' && !s.compat.report.ok) return 'the models are not compatible (see Compatibility)';
  if (s.compat.status === 'checking') return 'checking compatibility…';
  return outputNameProblem(s.outputName);
}

/**
 * The float dtype the merged tensors are written in, as the engine decides it (mergekit's rule):
 * out_dtype, else dtype, else the dtype the reference model (the base, else the first model) stores
 * its tensors in. `from` says which of the three applies; null while nothing is known.
 */
export function effectiveOutDtype(s: Pick<StudioState, 'recipe' | 'shelf'>): { dtype: FloatDType; from: 'out_dtype' | 'dtype' | 'stored' } | null {
  const { recipe } = s;
  if (recipe.outDtype) return { dtype: recipe.outDtype, from: 'out_dtype' };
  if (recipe.dtype) return { dtype: recipe.dtype, from: 'dtype' };
  const ref = recipe.baseModel ?? recipe.models[0]?.model;
  const model = s.shelf.find((m) => m.ref === ref);
  if (model?.load.status !== 'ready') return null;
  const stored = model.load.summary.dtypes.map((d) => d.dtype).find(isFloatDType);
  return stored ? { dtype: stored, from: 'stored' } : null;
}

/** The stored dtype of the reference model, as words for the "as stored" choice. */
function storedDtype(s: Pick<StudioState, 'recipe' | 'shelf'>): string | null {
  const ref = s.recipe.baseModel ?? s.recipe.models[0]?.model;
  const model = s.shelf.find((m) => m.ref === ref);
  if (model?.load.status !== 'ready') return null;
  const stored = model.load.summary.dtypes.map((d) => d.dtype).find(isFloatDType);
  return stored ? TORCH_DTYPE_NAMES[stored] : null;
}

/** " (0.21 s, faster)" after a backend's name, from the measurement; nothing without one. */
function speedLabel(speeds: BackendSpeeds | null, which: BackendChoice): string {
  if (!speeds) return '';
  const ms = which === 'gpu' ? speeds.gpuMs : speeds.cpuMs;
  return ` (${formatMs(ms)}${fasterBackend(speeds) === which ? ', faster' : ''})`;
}

export function MergePanel({ canPickFolder }: { canPickFolder: boolean }) {
  const reason = useStudio(blocker);
  const job = useStudio((s) => s.job);
  const out = useStudio(useShallow((s) => effectiveOutDtype(s) ?? { dtype: null, from: null }));
  const stored = useStudio(storedDtype);
  const panel = useRef<HTMLElement>(null);
  // Keyboard users keep their place: the merge buttons are disabled while a merge runs, so focus
  // moves to Cancel, then to the outcome (never left on <body>).
  useEffect(() => {
    const root = panel.current;
    const active = document.activeElement;
    if (!root || (active && active !== document.body && !root.contains(active))) return;
    const target = root.querySelector<HTMLElement>(job.status === 'running' ? '[data-testid="merge.cancel"]' : '.result');
    target?.focus();
  }, [job.status]);
  const s = useStudio(
    useShallow((st) => ({
      outputName: st.outputName,
      shardSize: st.shardSize,
      backend: st.backend,
      gpuReady: st.gpu.status === 'ready',
      gpuProbing: st.gpu.status === 'probing',
      speeds: st.backendSpeeds,
      measuring: st.measuringBackends,
      backendSource: st.backendSource,
      dtype: st.recipe.dtype,
      outDtype: st.recipe.outDtype,
      setOutputName: st.setOutputName,
      setShardSize: st.setShardSize,
      setBackend: st.setBackend,
      setDtype: st.setDtype,
      setOutDtype: st.setOutDtype,
      startMerge: st.startMerge,
      cancelMerge: st.cancelMerge,
      dismissJob: st.dismissJob,
    })),
  );
  const busy = job.status === 'running' || job.status === 'picking';

  return (
    <section ref={panel} id="merge" className="panel merge" aria-labelledby="merge-title" data-testid="merge.panel" tabIndex={-1}>
      <div className="merge-settings">
        <h2 id="merge-title">Merge</h2>
        <div className="field">
          <label htmlFor="out-name">Output name</label>
          <input id="out-name" type="text" value={s.outputName} onChange={(e) => s.setOutputName(e.target.value)} spellCheck={false} data-testid="merge.output-name" />
        </div>
        <div className="field">
          <label htmlFor="calc-dtype" title="mergekit's dtype: every input is cast to it before the math (which runs in float32); also the output's dtype unless out_dtype says otherwise">
            dtype
          </label>
          <select id="calc-dtype" value={s.dtype ?? ''} onChange={(e) => s.setDtype((e.target.value || undefined) as FloatDType | undefined)} data-testid="merge.dtype">
            {DTYPE_CHOICES.map((d) => (
              <option key={d.value} value={d.value}>
                {d.value === '' ? `as stored${stored ? ` (${stored})` : ''}` : d.label}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="out-dtype" title="mergekit's out_dtype: the dtype the merged tensors are written in (default: the same as dtype)">
            out_dtype
          </label>
          <select id="out-dtype" value={s.outDtype ?? ''} onChange={(e) => s.setOutDtype((e.target.value || undefined) as FloatDType | undefined)} data-testid="merge.out-dtype">
            {DTYPE_CHOICES.map((d) => (
              <option key={d.value} value={d.value}>
                {d.value === '' ? `same as dtype${s.dtype ? ` (${TORCH_DTYPE_NAMES[s.dtype]})` : stored ? ` (as stored: ${stored})` : ''}` : d.label}
              </option>
            ))}
          </select>
          <p className="field-note" data-testid="merge.effective-dtype">
            {out.dtype ? `Writes ${TORCH_DTYPE_NAMES[out.dtype]}${out.from === 'stored' ? ' (as stored)' : out.from === 'dtype' ? ' (= dtype)' : ''}` : 'Writes the stored dtype'}
          </p>
        </div>
        <div className="field">
          <label htmlFor="shard-size">Shard size</label>
          <input id="shard-size" type="text" list="shard-sizes" value={s.shardSize} onChange={(e) => s.setShardSize(e.target.value)} spellCheck={false} data-testid="merge.shard-size" />
          <datalist id="shard-sizes">
            {SHARD_SIZES.map((v) => (
              <option key={v} value={v} />
            ))}
          </datalist>
        </div>
        <fieldset className="field backend" aria-describedby="backend-note">
          <legend>Run on</legend>
          <label className="check">
            <input type="radio" name="backend" checked={s.backend === 'gpu'} disabled={!s.gpuReady} onChange={() => s.setBackend('gpu')} data-testid="merge.backend.gpu" />
            GPU{s.gpuProbing ? ' (checking…)' : s.gpuReady ? speedLabel(s.speeds, 'gpu') : ' (unavailable)'}
          </label>
          <label className="check">
            <input type="radio" name="backend" checked={s.backend === 'cpu'} onChange={() => s.setBackend('cpu')} data-testid="merge.backend.cpu" />
            CPU{speedLabel(s.speeds, 'cpu')}
          </label>
          <p id="backend-note" className="field-note" data-testid="merge.backend.note">
            {s.measuring
              ? 'Measuring which is faster here…'
              : s.speeds
                ? s.backendSource === 'measured'
                  ? `${s.backend.toUpperCase()} chosen: faster here (measured)`
                  : `Measured: ${fasterBackend(s.speeds).toUpperCase()} is faster here`
                : null}
          </p>
        </fieldset>
      </div>
      <div className="merge-bottom">
        <div className="merge-actions">
          <button
            type="button"
            className="primary big"
            disabled={busy || reason !== null || !canPickFolder}
            onClick={() => void s.startMerge('folder')}
            data-testid="merge.folder"
          >
            Merge &amp; save to folder…
          </button>
          <button type="button" className="big" disabled={busy || reason !== null} onClick={() => void s.startMerge('download')} data-testid="merge.download">
            Merge &amp; download .zip
          </button>
        </div>
        <div className="merge-status">
          {reason && !busy && (job.status === 'idle' || job.status === 'done' || job.status === 'cancelled') ? (
            <p className="blocker" data-testid="merge.blocker">
              Before merging: {reason}.
            </p>
          ) : null}
          <JobView job={job} onCancel={s.cancelMerge} onDismiss={s.dismissJob} />
          {!canPickFolder && job.status === 'idle' ? (
            <p className="hint">This browser cannot write to a folder (File System Access API): the .zip download works for models up to 2 GB.</p>
          ) : null}
        </div>
      </div>
    </section>
  );
}

function JobView({ job, onCancel, onDismiss }: { job: StudioState['job']; onCancel(): void; onDismiss(): void }) {
  switch (job.status) {
    case 'idle':
      return null;
    case 'picking':
      return <p className="status-line">Choose a folder for the merged model…</p>;
    case 'running':
      return <Progress job={job} onCancel={onCancel} />;
    case 'done': {
      const r = job.result;
      return (
        <div className="result ok" role="status" data-testid="merge.done" tabIndex={-1}>
          <div className="result-text">
            <strong>
              ✓ Merged {r.tensors} tensors ({formatBytes(r.bytes)}) in {formatDuration(r.seconds)}
            </strong>
            <p>
              Saved to {r.destination} · {r.backend}
            </p>
            <p className="files">{r.files.join(' · ')}</p>
          </div>
          <button type="button" className="icon" onClick={onDismiss} aria-label="Dismiss the result">
            ×
          </button>
        </div>
      );
    }
    case 'failed': {
      const words = errorInWords(job.error);
      return (
        <div className="result error" role="alert" data-testid="merge.error" tabIndex={-1}>
          <div className="result-text">
            <strong>{words.title}</strong>
            <p>{words.text}</p>
          </div>
          <button type="button" className="icon" onClick={onDismiss} aria-label="Dismiss the error">
            ×
          </button>
        </div>
      );
    }
    case 'cancelled':
      return (
        <div className="result cancelled" role="status" data-testid="merge.cancelled" tabIndex={-1}>
          <div className="result-text">
            <strong>Merge cancelled</strong>
            <p>Nothing was saved: the partial files were removed.</p>
          </div>
          <button type="button" className="icon" onClick={onDismiss} aria-label="Dismiss">
            ×
          </button>
        </div>
      );
    default: {
      const never: never = job;
      return <>{String(never)}</>;
    }
  }
}

function Progress({ job, onCancel }: { job: Extract<StudioState['job'], { status: 'running' }>; onCancel(): void }) {
  const p = job.progress;
  // Re-render once a second so the elapsed time moves between progress messages.
  const [, setTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setTick((n) => n + 1), 1000);
    return () => clearInterval(t);
  }, []);
  const fraction = p && p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : 0;
  const eta = p && p.rate > 0 ? (p.bytesTotal - p.bytesDone) / p.rate : NaN;
  return (
    <div className="progress" data-testid="merge.progress" aria-live="polite">
      <div className="progress-row">
        <progress max={1} value={fraction} aria-label="Merge progress" />
        <button type="button" className="danger" onClick={onCancel} disabled={job.cancelling} data-testid="merge.cancel">
          {job.cancelling ? 'Cancelling…' : 'Cancel'}
        </button>
      </div>
      <p className="status-line" data-testid="merge.progress.text">
        {p ? (
          <>
            <span>
              {p.tensorsDone} / {p.tensorsTotal} tensors
            </span>
            <span>
              {formatBytes(p.bytesDone)} of {formatBytes(p.bytesTotal)}
            </span>
            <span>{formatBytes(p.rate)}/s</span>
            <span>{Number.isFinite(eta) ? `about ${formatDuration(eta)} left` : 'estimating…'}</span>
          </>
        ) : (
          'Starting…'
        )}
      </p>
      {p ? <p className="hint current">{p.currentTensor}</p> : null}
    </div>
  );
}

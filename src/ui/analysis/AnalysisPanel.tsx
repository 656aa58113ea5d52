/**
 * The analysis panel: where the models agree (cosine heatmap by scope), what happens per layer
 * (a metric per layer and model, as lines aligned with the curve editor and as a heatmap), and the
 * magnitudes the method trims (histograms with its thresholds). Its props are plain data: the
 * analysis result, the recipe it is shown next to, and the run status; it runs nothing itself.
 */
import { memo, useDeferredValue, useMemo, useState } from 'react';
import type { Recipe } from '../../core/recipe/types.ts';
import { TENSOR_KINDS, type AnalysisProgress, type AnalysisResult, type TensorKind } from '../../gpu/analysis/types.ts';
import { Heatmap } from './Heatmap.tsx';
import { LayerLineChart } from './LayerLineChart.tsx';
import { MagnitudeHistogram } from './MagnitudeHistogram.tsx';
import { SubspaceViews } from './SubspaceViews.tsx';
import {
  coefficientSeries,
  cosineByLayer,
  cosineMatrix,
  histogramData,
  LAYER_METRIC_INFO,
  LAYER_METRICS,
  layerSeries,
  seriesMatrix,
  type CosineScope,
  type LayerMetric,
} from './view-data.ts';

export type AnalysisRunStatus =
  | { status: 'idle' }
  | { status: 'running'; progress: AnalysisProgress | null }
  | { status: 'done' }
  | { status: 'failed'; error: { name: string; message: string } };

export interface AnalysisPanelProps {
  /** The latest result (kept while a new one is computed). */
  result: AnalysisResult | null;
  /** The recipe as it is now: a result computed for another one is marked out of date. */
  recipe: Recipe;
  status?: AnalysisRunStatus;
  /** Why nothing can be analyzed now (the recipe cannot merge yet), in words; shown instead of charts. */
  waiting?: string | null;
  /** The charts are for an older recipe and new numbers are on their way. */
  updating?: boolean;
  /** Start (or restart) the analysis; absent: no button. */
  onRun?(): void;
  /** Why the run button is disabled, or null/absent when it is not. */
  runDisabledReason?: string | null;
  onCancel?(): void;
  download(name: string, blob: Blob): void;
}

const KIND_LABELS: Record<TensorKind, string> = {
  attention: 'Attention',
  mlp: 'MLP',
  norm: 'Norms',
  embedding: 'Embeddings',
  other: 'Other',
};

/** Whether `result` was computed for this recipe's method and models. */
export function isCurrent(result: AnalysisResult, recipe: Recipe): boolean {
  const models = recipe.models.map((m) => m.model).filter((m) => m !== recipe.baseModel);
  return (
    (result.base ?? undefined) === recipe.baseModel &&
    result.models.join('\n') === models.join('\n') &&
    (result.recipeStats === null || result.recipeStats.method === recipe.mergeMethod)
  );
}

export function AnalysisPanel({
  result,
  recipe,
  status = { status: result ? 'done' : 'idle' },
  waiting = null,
  updating = false,
  onRun,
  runDisabledReason = null,
  onCancel,
  download,
}: AnalysisPanelProps) {
  const running = status.status === 'running';
  // New numbers redraw the charts at low priority: React renders them in slices between frames
  // (results come through useSyncExternalStore, which would otherwise render them in one task).
  const shown = useDeferredValue(result);
  // Until the charts hold the newest numbers, they are updating.
  const behind = updating || (shown !== result && result !== null);
  return (
    <section id="analysis" className={`panel analysis${behind ? ' is-updating' : ''}`} aria-labelledby="analysis-title" data-testid="analysis.panel" aria-busy={running} tabIndex={-1}>
      <header className="panel-head">
        <h2 id="analysis-title">Analysis</h2>
        {behind ? <UpdatingBadge /> : null}
        <span className="analysis-actions">
          {running && onCancel ? (
            <button type="button" className="small" onClick={onCancel} data-testid="analysis.cancel">
              Cancel
            </button>
          ) : null}
          {onRun ? (
            <button type="button" className="small" onClick={onRun} disabled={running || runDisabledReason !== null} title={runDisabledReason ?? undefined} data-testid="analysis.run">
              {result ? 'Analyze again' : 'Analyze'}
            </button>
          ) : null}
        </span>
      </header>
      {waiting !== null ? (
        <p className="hint waiting" data-testid="analysis.waiting">
          No analysis yet: {waiting}.
        </p>
      ) : (
        <StatusLine status={status} result={result} recipe={recipe} />
      )}
      {shown && waiting === null ? <AnalysisViews result={shown} download={download} /> : null}
    </section>
  );
}

/** Shown the moment a value changes, until the charts hold the numbers for it. */
export function UpdatingBadge() {
  return (
    <span className="updating" role="status" data-testid="analysis.updating">
      updating…
    </span>
  );
}

function StatusLine({ status, result, recipe }: { status: AnalysisRunStatus; result: AnalysisResult | null; recipe: Recipe }) {
  switch (status.status) {
    case 'idle':
      return result ? null : (
        <p className="hint" data-testid="analysis.status">
          Compare the models before merging: where their task vectors agree, where they conflict, and what the method keeps of each.
        </p>
      );
    case 'running': {
      const p = status.progress;
      return (
        <p className="hint" data-testid="analysis.status" role="status">
          {p ? `Analyzing tensor ${p.tensorsDone} of ${p.tensorsTotal}${p.parts.model ? '' : ' (method statistics)'}…` : 'Starting the analysis…'}
          {p ? <progress max={p.tensorsTotal} value={p.tensorsDone} /> : null}
        </p>
      );
    }
    case 'failed':
      return (
        <div className="problems" role="alert" data-testid="analysis.error">
          <strong>The analysis failed ({status.error.name})</strong>
          <p>{status.error.message}</p>
        </div>
      );
    case 'done':
      return result && !isCurrent(result, recipe) ? (
        <p className="hint" data-testid="analysis.stale">
          The merge's models or method changed since this analysis: run it again to update.
        </p>
      ) : result ? (
        <p className="hint" data-testid="analysis.status">
          {result.models.length} models, {result.modelStats?.tensors.length ?? result.recipeStats?.tensors.length ?? 0} tensors, {result.numLayers} layers — computed on{' '}
          {result.backend} in {result.seconds.toFixed(2)} s.
        </p>
      ) : null;
    default: {
      const never: never = status;
      return never;
    }
  }
}

/** Memoized: a slider move re-renders the panel (status, badge), not the charts, until new numbers come. */
const AnalysisViews = memo(function AnalysisViews({ result, download }: { result: AnalysisResult; download(name: string, blob: Blob): void }) {
  return (
    <div className="analysis-views">
      {result.recipeStats?.notes.length ? (
        <ul className="notes" data-testid="analysis.notes">
          {result.recipeStats.notes.map((n, i) => (
            <li key={i}>{n}</li>
          ))}
        </ul>
      ) : null}
      {result.modelStats ? <CosineView result={result} download={download} /> : null}
      {result.modelStats ? <SubspaceViews result={result} download={download} /> : null}
      <LayerView result={result} download={download} />
      {result.modelStats ? <HistogramView result={result} download={download} /> : null}
    </div>
  );
});

function CosineView({ result, download }: { result: AnalysisResult; download(name: string, blob: Blob): void }) {
  const [scope, setScope] = useState<CosineScope | { kind: 'per-layer' }>({ kind: 'whole' });
  const kinds = TENSOR_KINDS.filter((k) => result.modelStats!.byKind[k]);
  const byLayer = cosineByLayer(result);
  const shown = scope.kind === 'per-layer' && !byLayer ? ({ kind: 'whole' } as CosineScope) : scope;
  const data = shown.kind === 'per-layer' ? byLayer : cosineMatrix(result, shown);
  const scopeKey = shown.kind === 'tensor-kind' ? shown.tensorKind : shown.kind;
  const controls = (
    <div className="segmented" role="radiogroup" aria-label="Tensors compared" data-testid="analysis.cosine.scope">
      {[
        { key: 'whole', label: 'Whole model', scope: { kind: 'whole' } as CosineScope },
        ...(byLayer ? [{ key: 'per-layer', label: 'Per layer', scope: { kind: 'per-layer' } as const }] : []),
        ...kinds.map((k) => ({ key: k, label: KIND_LABELS[k], scope: { kind: 'tensor-kind', tensorKind: k } as CosineScope })),
      ].map((o) => (
        <label key={o.key} className={scopeKey === o.key ? 'on' : ''}>
          <input type="radio" name="cosine-scope" checked={scopeKey === o.key} onChange={() => setScope(o.scope)} data-testid={`analysis.cosine.scope.${o.key}`} />
          {o.label}
        </label>
      ))}
    </div>
  );
  if (!data) return <p className="hint">No tensors in this scope.</p>;
  return shown.kind === 'per-layer' ? (
    <Heatmap testId="analysis.cosine" data={data} scale="diverging" rowTitle="model pair" columnTitle="layer" download={download} controls={controls} />
  ) : (
    <Heatmap testId="analysis.cosine" data={data} scale="diverging" rowTitle="model" columnTitle="model" download={download} controls={controls} />
  );
}

type LayerChoice = { kind: 'metric'; metric: LayerMetric } | { kind: 'coefficient'; param: string };

function LayerView({ result, download }: { result: AnalysisResult; download(name: string, blob: Blob): void }) {
  const [choice, setChoice] = useState<LayerChoice>({ kind: 'metric', metric: 'norm' });
  const hasKept = Boolean(result.recipeStats?.whole.kept);
  const metrics = LAYER_METRICS.filter((m) => {
    const info = LAYER_METRIC_INFO[m];
    if (info.recipe) return hasKept;
    if (!result.modelStats) return false;
    return m !== 'relativeChange' || result.modelStats.whole.relativeChange !== null;
  });
  const params = useMemo(() => {
    const names = new Set<string>();
    for (const l of result.recipeStats?.coefficients.layers ?? []) for (const p of l.perModel) for (const k of Object.keys(p)) names.add(k);
    return [...names];
  }, [result]);
  if (result.numLayers === 0) return null;
  const current: LayerChoice =
    choice.kind === 'metric' && !metrics.includes(choice.metric) ? { kind: 'metric', metric: metrics[0] ?? 'norm' } : choice;
  const data = current.kind === 'metric' ? layerSeries(result, current.metric) : coefficientSeries(result, current.param);
  if (!data) return null;
  const fraction = current.kind === 'metric' ? LAYER_METRIC_INFO[current.metric].fraction : false;
  const value = current.kind === 'metric' ? `metric:${current.metric}` : `coefficient:${current.param}`;
  const controls = (
    <label className="inline-field">
      Per layer
      <select
        value={value}
        onChange={(e) => {
          const [kind, name] = e.target.value.split(':');
          setChoice(kind === 'metric' ? { kind: 'metric', metric: name as LayerMetric } : { kind: 'coefficient', param: name });
        }}
        data-testid="analysis.layers.metric"
      >
        {metrics.map((m) => (
          <option key={m} value={`metric:${m}`}>
            {LAYER_METRIC_INFO[m].label}
          </option>
        ))}
        {params.map((p) => (
          <option key={p} value={`coefficient:${p}`}>
            Effective {p}
          </option>
        ))}
      </select>
    </label>
  );
  return (
    <>
      <LayerLineChart testId="analysis.layers.line" data={data} fraction={fraction} download={download} controls={controls} />
      <Heatmap
        testId="analysis.layers.heatmap"
        data={seriesMatrix(data)}
        scale="sequential"
        fraction={fraction}
        rowTitle="model"
        columnTitle="layer"
        download={download}
      />
    </>
  );
}

function HistogramView({ result, download }: { result: AnalysisResult; download(name: string, blob: Blob): void }) {
  const [tensor, setTensor] = useState<string | null>(null);
  const names = result.modelStats!.tensors.map((t) => t.name);
  const chosen = tensor !== null && names.includes(tensor) ? tensor : null;
  const data = histogramData(result, chosen);
  if (!data) return null;
  const controls = (
    <label className="inline-field">
      Tensor
      <select value={chosen ?? ''} onChange={(e) => setTensor(e.target.value || null)} data-testid="analysis.histogram.tensor">
        <option value="">All tensors (pooled)</option>
        {names.map((n) => (
          <option key={n} value={n}>
            {n}
          </option>
        ))}
      </select>
    </label>
  );
  return <MagnitudeHistogram testId="analysis.histogram" data={data} download={download} controls={controls} />;
}

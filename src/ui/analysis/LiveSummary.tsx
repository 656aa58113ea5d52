/**
 * The live summary beside the sliders: for each model of the merge, the share of its task vector the
 * method keeps, its share of the merged delta (with a line per layer) and how often what it keeps
 * conflicts in sign with the others; above them, the conflict rate of the whole merge. It reads the
 * studio's analysis, so a slider's effect shows next to the slider, with "updating…" until the
 * numbers are for the values on screen.
 */
import { useMemo } from 'react';
import { useStudioAnalysis } from './studio-analysis.tsx';
import { formatValue } from './chart-kit.tsx';
import { UpdatingBadge } from './AnalysisPanel.tsx';
import { liveSummary, type LiveSummary } from './view-data.ts';

function useSummary(): { summary: LiveSummary | null; updating: boolean; waiting: string | null; present: boolean } {
  const analysis = useStudioAnalysis();
  const result = analysis?.state.result ?? null;
  const summary = useMemo(() => (result ? liveSummary(result) : null), [result]);
  return { summary, updating: analysis?.updating ?? false, waiting: analysis?.waiting ?? null, present: analysis !== null };
}

const pct = (v: number | null) => formatValue(v, true);

/** The column head: what the cells show, and the whole merge's conflicts after trimming. */
export function LiveSummaryHead() {
  const { summary, updating, present } = useSummary();
  if (!present) return null;
  return (
    <div role="columnheader" className="param-col live-head" data-testid="live.summary">
      <span className="param-name">
        Effect {updating ? <UpdatingBadge /> : null}
      </span>
      <span className="param-help">
        {summary?.conflictAfterTrim != null
          ? `kept · share of the merge · sign conflicts ${pct(summary.conflictAfterTrim)} after trimming`
          : 'kept entries and share of the merge (task-vector methods)'}
      </span>
    </div>
  );
}

/** One model's cell: kept, share, conflicts, and its share per layer as a small line. */
export function LiveSummaryCell({ modelRef }: { modelRef: string }) {
  const { summary, updating, waiting, present } = useSummary();
  if (!present) return null;
  const m = summary?.perModel.get(modelRef);
  return (
    <div role="cell" className={`live-cell${updating ? ' is-updating' : ''}`} data-testid={`live.summary.${modelRef}`} aria-live="off">
      {m && (m.kept !== null || m.share !== null) ? (
        <>
          <p className="live-numbers">
            <span title="Share of this model's task vector the method keeps">kept {pct(m.kept)}</span>
            <span title="This model's share of the merged delta (‖contribution‖ / Σ ‖contributions‖)">share {pct(m.share)}</span>
          </p>
          <Sparkline values={m.shareByLayer} label={`${modelRef}: share of the merged delta per layer`} />
          {m.conflict !== null ? <p className="live-conflict">sign conflicts {pct(m.conflict)}</p> : null}
        </>
      ) : (
        <p className="live-none">{waiting ? '—' : summary ? `no kept/share numbers for ${summary.method}` : '…'}</p>
      )}
    </div>
  );
}

const W = 120;
const H = 26;

/** Values in [0, 1] over the layers as a small line (the layer axis as in the charts). */
function Sparkline({ values, label }: { values: readonly (number | null)[]; label: string }) {
  const finite = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (values.length < 2 || finite.length === 0) return null;
  const hi = Math.max(0.01, ...finite);
  const x = (k: number) => 3 + (k / (values.length - 1)) * (W - 6);
  const y = (v: number) => H - 3 - (v / hi) * (H - 6);
  let d = '';
  values.forEach((v, k) => {
    if (v === null || !Number.isFinite(v)) return;
    d += `${d === '' || values[k - 1] === null ? 'M' : 'L'}${x(k).toFixed(1)},${y(v).toFixed(1)}`;
  });
  const words = values.map((v, k) => `layer ${k} ${pct(v)}`).join(', ');
  return (
    <svg className="sparkline" viewBox={`0 0 ${W} ${H}`} width={W} height={H} role="img" aria-label={`${label}: ${words}`}>
      <title>{`${label}: ${words}`}</title>
      <line x1={3} x2={W - 3} y1={H - 3} y2={H - 3} stroke="#e1e4ea" />
      <path d={d} fill="none" stroke="#4f46e5" strokeWidth={1.6} />
      {values.map((v, k) => (v !== null && Number.isFinite(v) ? <circle key={k} cx={x(k)} cy={y(v)} r={1.8} fill="#4f46e5" data-value={v} /> : null))}
    </svg>
  );
}

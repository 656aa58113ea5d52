/**
 * The analysis panel wired to the studio: the recipe, backend and seed come from the store, analyses
 * run in the engine worker through an AnalysisRunner. Small merges are analyzed as soon as their
 * models fit together; after the first analysis every recipe change (a slider move) re-runs it,
 * debounced; the worker reuses the model statistics, so only the method's part is recomputed.
 * Nothing new starts while a merge runs; what changed meanwhile is analyzed when it ends.
 */
import { useEffect, useMemo, useSyncExternalStore } from 'react';
import { useStudio } from '../store-context.tsx';
import { AnalysisPanel } from './AnalysisPanel.tsx';
import type { AnalysisRunner } from './runner.ts';

/** Merges up to this many parameters (all models together) are analyzed without asking. */
export const AUTO_ANALYZE_PARAMETERS = 200_000_000;

export interface StudioAnalysisPanelProps {
  runner: AnalysisRunner;
  download(name: string, blob: Blob): void;
}

export function StudioAnalysisPanel({ runner, download }: StudioAnalysisPanelProps) {
  const state = useSyncExternalStore(runner.subscribe, runner.getState, runner.getState);
  const recipe = useStudio((s) => s.recipe);
  const backend = useStudio((s) => s.backend);
  const seed = useStudio((s) => s.seed);
  const ready = useStudio((s) => s.compat.status === 'done' && s.compat.report.ok);
  // No new analyses while a merge runs: both would share the worker and the GPU.
  const merging = useStudio((s) => s.job.status === 'running');
  const parameters = useStudio((s) => {
    const refs = new Set([...s.recipe.models.map((m) => m.model), ...(s.recipe.baseModel ? [s.recipe.baseModel] : [])]);
    let total = 0;
    for (const m of s.shelf) if (refs.has(m.ref) && m.load.status === 'ready') total += m.load.summary.parameterCount;
    return total;
  });
  const request = useMemo(() => ({ recipe, backend, seed }), [recipe, backend, seed]);

  useEffect(() => {
    if (!ready || merging) return;
    const { status, result } = runner.getState();
    if (result !== null || status.status !== 'idle') runner.schedule(request);
    else if (parameters <= AUTO_ANALYZE_PARAMETERS) runner.run(request);
    // Runs when what is analyzed changes, not when the runner's own state does.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [request, ready, merging]);

  useEffect(() => () => runner.cancel(), [runner]);

  return (
    <AnalysisPanel
      result={state.result}
      recipe={recipe}
      status={state.status}
      onRun={ready ? () => runner.run(request) : undefined}
      onCancel={() => runner.cancel()}
      download={download}
    />
  );
}

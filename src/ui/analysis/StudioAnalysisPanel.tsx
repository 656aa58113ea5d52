/**
 * The analysis panel wired to the studio: the recipe, backend and seed come from the store, analyses
 * run in the engine worker through an AnalysisRunner. Small merges are analyzed as soon as their
 * models fit together; after the first analysis every recipe change (a slider move) re-runs it,
 * debounced; the worker reuses the model statistics, so only the method's part is recomputed.
 * Only merges of local models (demo set, dropped files) start on their own: analysing Hub models
 * downloads all their tensors, so that waits for the user's click. A merge cancels a running
 * analysis (both share the worker and the GPU); what changed meanwhile is analyzed when it ends.
 */
import { useEffect, useMemo, useState, useSyncExternalStore } from 'react';
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
  const fromHub = useStudio((s) => {
    const refs = new Set([...s.recipe.models.map((m) => m.model), ...(s.recipe.baseModel ? [s.recipe.baseModel] : [])]);
    return s.shelf.some((m) => refs.has(m.ref) && m.origin.kind === 'hub');
  });
  // The model set the user asked to analyze by hand (Hub models are analyzed only after that).
  const modelSet = useStudio((s) => [...new Set([...s.recipe.models.map((m) => m.model), s.recipe.baseModel ?? ''])].sort().join('\n'));
  const [approvedSet, setApprovedSet] = useState<string | null>(null);
  const automatic = !fromHub || approvedSet === modelSet;
  const request = useMemo(() => ({ recipe, backend, seed }), [recipe, backend, seed]);

  useEffect(() => {
    if (merging) {
      runner.cancel();
      return;
    }
    if (!ready) return;
    const { status, result } = runner.getState();
    if (!automatic) {
      if (status.status === 'running') runner.cancel();
      return;
    }
    if (result !== null || status.status !== 'idle') runner.schedule(request);
    else if (parameters <= AUTO_ANALYZE_PARAMETERS) runner.run(request);
    // Runs when what is analyzed changes, not when the runner's own state does.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [request, ready, merging, automatic]);

  useEffect(() => () => runner.cancel(), [runner]);

  return (
    <AnalysisPanel
      result={state.result}
      recipe={recipe}
      status={state.status}
      onRun={
        ready
          ? () => {
              setApprovedSet(modelSet);
              runner.run(request);
            }
          : undefined
      }
      onCancel={() => runner.cancel()}
      download={download}
    />
  );
}

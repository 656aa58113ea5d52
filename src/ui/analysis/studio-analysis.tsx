/**
 * When the studio analyzes, in one place: the analysis runs only for a recipe that can merge (a
 * valid recipe whose models loaded and fit together), and shows nothing of an older one when the
 * recipe cannot. Merges of local models (demo set, dropped files) are analyzed as soon as they can
 * be and after every change (debounced); Hub models only after the user's click (it reads every
 * tensor). A request equal to the one already answered (or on its way) is not run again, so a merge
 * or a re-render does not re-analyze. A merge cancels a running analysis (both share the worker and
 * the GPU); what changed meanwhile is analyzed when it ends.
 *
 * The provider holds this state; the analysis panel and the live summary read it with
 * useStudioAnalysis. `updating` is derived during render, so "updating…" shows in the same frame as
 * the slider's new value.
 */
import { createContext, useContext, useEffect, useMemo, useRef, useState, useSyncExternalStore, type ReactNode } from 'react';
import { useShallow } from 'zustand/react/shallow';
import { recipeProblem } from '../recipe-model.ts';
import { mergeRefs } from '../store/analysis-slice.ts';
import type { StudioState } from '../store/index.ts';
import { useStudio } from '../store-context.tsx';
import type { AnalysisRequest } from '../worker/protocol.ts';
import { sameRequest, type AnalysisRunner, type AnalysisRunnerState } from './runner.ts';

/** Merges up to this many parameters (all models together) are analyzed without asking. */
export const AUTO_ANALYZE_PARAMETERS = 200_000_000;

export interface StudioAnalysis {
  runner: AnalysisRunner;
  state: AnalysisRunnerState;
  /** Why nothing can be analyzed now, in words (an invalid recipe, models not loaded or not fitting); null when it can. */
  waiting: string | null;
  /** Runs without a click: local models, or Hub models the user asked for. */
  automatic: boolean;
  /** The numbers shown are not for the recipe as it is now and new ones are on their way. */
  updating: boolean;
  /** The user's "Analyze" (for Hub models: from now on, this model set follows the recipe). */
  analyzeNow(): void;
}

const Context = createContext<StudioAnalysis | null>(null);

/** Why the merge's models cannot be analyzed yet, or null. */
function modelsWaiting(s: StudioState): string | null {
  const c = s.compat;
  switch (c.status) {
    case 'idle':
      return 'add models to the merge';
    case 'waiting':
      if (c.failed.length > 0) return `${c.failed.join(', ')} failed to load`;
      if (c.missing.length > 0) return `${c.missing.join(', ')} has no files yet`;
      return `waiting for ${c.loading.join(', ')} to load`;
    case 'checking':
      return 'checking that the models fit together';
    case 'failed':
      return `the compatibility check failed: ${c.error.message}`;
    case 'done':
      return c.report.ok ? null : 'the models do not fit together (see Compatibility)';
    default: {
      const never: never = c;
      return String(never);
    }
  }
}

function waitingReason(s: StudioState): string | null {
  if (s.recipe.slices?.length) return 'the analysis compares whole models (a recipe with models:), not layer slices';
  return recipeProblem(s.recipe)?.message ?? modelsWaiting(s) ?? (s.measuringBackends ? 'measuring which backend is faster on this machine (once)' : null);
}

export function StudioAnalysisProvider({ runner, children }: { runner: AnalysisRunner; children: ReactNode }) {
  const state = useSyncExternalStore(runner.subscribe, runner.getState, runner.getState);
  const recipe = useStudio((s) => s.recipe);
  const backend = useStudio((s) => s.backend);
  const seed = useStudio((s) => s.seed);
  const waiting = useStudio(waitingReason);
  const merging = useStudio((s) => s.job.status === 'running');
  const { parameters, fromHub, modelSet } = useStudio(
    useShallow((s) => {
      const refs = new Set(mergeRefs(s));
      let total = 0;
      let hub = false;
      for (const m of s.shelf) {
        if (!refs.has(m.ref)) continue;
        if (m.load.status === 'ready') total += m.load.summary.parameterCount;
        if (m.origin.kind === 'hub') hub = true;
      }
      return { parameters: total, fromHub: hub, modelSet: [...refs].sort().join('\n') };
    }),
  );
  const [approvedSet, setApprovedSet] = useState<string | null>(null);
  const automatic = !fromHub || approvedSet === modelSet;
  const request = useMemo<AnalysisRequest>(() => ({ recipe, backend, seed }), [recipe, backend, seed]);

  useEffect(() => {
    const st = runner.getState();
    if (merging) {
      if (st.status.status === 'running') runner.cancel();
      return;
    }
    if (waiting !== null) {
      runner.clear();
      return;
    }
    if (!automatic) {
      if (st.status.status === 'running') runner.cancel();
      if (!sameRequest(st.current, request)) runner.dismissError();
      return;
    }
    if (sameRequest(st.current, request)) return;
    if (st.result !== null || st.status.status !== 'idle') runner.schedule(request);
    else if (parameters <= AUTO_ANALYZE_PARAMETERS) runner.run(request);
    // Runs when what is analyzed changes, not when the runner's own state does.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [request, waiting, merging, automatic]);

  useEffect(() => () => runner.cancel(), [runner]);

  const failedNow = state.status.status === 'failed' && sameRequest(state.current, request);
  const updating = automatic && waiting === null && !merging && !failedNow && (state.status.status === 'running' || !sameRequest(state.resultRequest, request));
  // The latest request and model set, for the Analyze button, without making every value change a new context value.
  const latest = useRef({ request, modelSet });
  latest.current = { request, modelSet };
  // A new context value makes React visit the whole tree for its readers: only when what they show changes
  // (not on every slider step).
  const value = useMemo<StudioAnalysis>(
    () => ({
      runner,
      state,
      waiting,
      automatic,
      updating,
      analyzeNow: () => {
        setApprovedSet(latest.current.modelSet);
        runner.run(latest.current.request);
      },
    }),
    [runner, state, waiting, automatic, updating],
  );
  return <Context.Provider value={value}>{children}</Context.Provider>;
}

/** The studio's analysis, or null where the app runs without one (tests of other parts). */
export function useStudioAnalysis(): StudioAnalysis | null {
  return useContext(Context);
}

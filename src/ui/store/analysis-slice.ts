/** What the studio checks before merging: the compatibility of the merge's models (headers only). */
import type { StateCreator } from 'zustand/vanilla';
import { referencedModels } from '../../core/recipe/references.ts';
import { toErrorInfo } from '../worker/protocol.ts';
import type { AnalysisSlice, CompatState, StudioDeps, StudioState } from './types.ts';

/** The models a merge of this state reads (the base, the models or the slices' sources, a tokenizer donor), without repeats. */
export function mergeRefs(state: Pick<StudioState, 'recipe'>): string[] {
  return referencedModels(state.recipe);
}

export function createAnalysisSlice(deps: StudioDeps): StateCreator<StudioState, [], [], AnalysisSlice> {
  return (set, get) => ({
    compat: { status: 'idle' },

    async refreshCompat() {
      const state = get();
      const refs = mergeRefs(state);
      const base = state.recipe.baseModel ?? null;
      const key = JSON.stringify([base, refs]);
      let next: CompatState | null = null;
      if (refs.length === 0) next = { status: 'idle' };
      else {
        const statusOf = (r: string) => state.shelf.find((m) => m.ref === r)?.load.status ?? 'missing';
        const loading = refs.filter((r) => statusOf(r) === 'loading');
        const failed = refs.filter((r) => statusOf(r) === 'failed');
        const missing = refs.filter((r) => statusOf(r) === 'missing');
        if (loading.length + failed.length + missing.length > 0) next = { status: 'waiting', loading, failed, missing };
      }
      if (next) {
        if (JSON.stringify(next) !== JSON.stringify(state.compat)) set({ compat: next });
        return;
      }
      const c = state.compat;
      if ((c.status === 'checking' || c.status === 'done' || c.status === 'failed') && c.key === key) return;
      set({ compat: { status: 'checking', key } });
      try {
        const report = await deps.engine.check(refs.filter((r) => r !== base), base);
        const now = get().compat;
        if (now.status === 'checking' && now.key === key) set({ compat: { status: 'done', key, report } });
      } catch (err) {
        const now = get().compat;
        if (now.status === 'checking' && now.key === key) set({ compat: { status: 'failed', key, error: toErrorInfo(err) } });
      }
    },
  });
}

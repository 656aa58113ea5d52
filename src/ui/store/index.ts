/**
 * The studio store: the five slices combined (zustand's slices pattern, typed
 * `StateCreator<StudioState, [], [], Slice>`), created per app (and per test) by createStudioStore.
 * A subscription keeps the compatibility check in step with the merge's models.
 */
import { createStore, type StoreApi } from 'zustand/vanilla';
import { createAnalysisSlice } from './analysis-slice.ts';
import { createJobSlice } from './job-slice.ts';
import { createModelsSlice } from './models-slice.ts';
import { createRecipeSlice } from './recipe-slice.ts';
import { createSettingsSlice } from './settings-slice.ts';
import type { StudioDeps, StudioState } from './types.ts';

export type StudioStore = StoreApi<StudioState>;

export function createStudioStore(deps: StudioDeps): StudioStore {
  const store = createStore<StudioState>()((...a) => ({
    ...createModelsSlice(deps)(...a),
    ...createRecipeSlice(deps)(...a),
    ...createJobSlice(deps)(...a),
    ...createAnalysisSlice(deps)(...a),
    ...createSettingsSlice(deps)(...a),
  }));
  store.subscribe((state, prev) => {
    if (state.shelf !== prev.shelf || state.recipe.models !== prev.recipe.models || state.recipe.baseModel !== prev.recipe.baseModel) {
      void state.refreshCompat();
    }
  });
  return store;
}

export type * from './types.ts';

/** The recipe being edited: a plain mergekit Recipe, kept valid for the method's schema as it changes. */
import type { StateCreator } from 'zustand/vanilla';
import { isAbsolutePath, parseModelRef } from '../../core/recipe/model-ref.ts';
import { parseRecipe } from '../../core/recipe/parse.ts';
import type { ParamValue, Recipe } from '../../core/recipe/types.ts';
import { RecipeError } from '../../core/recipe/errors.ts';
import { methodLookup } from '../../gpu/methods/index.ts';
import { adaptRecipeToMethod, findMethod, startingGlobalParams, startingModelParams } from '../recipe-model.ts';
import { toErrorInfo } from '../worker/protocol.ts';
import type { ModelOrigin, RecipeSlice, ShelfModel, StudioDeps, StudioState } from './types.ts';

export const DEFAULT_METHOD = 'ties';

export function emptyRecipe(methodName = DEFAULT_METHOD): Recipe {
  const method = findMethod(methodName);
  if (!method) throw new Error(`unknown default method ${methodName}`);
  return { mergeMethod: method.name, models: [], parameters: startingGlobalParams(method) };
}

/** How a reference found in a recipe is brought onto the shelf. */
export function originForRef(ref: string): ModelOrigin {
  if (isAbsolutePath(ref) || /^\.{1,2}([\\/]|$)/.test(ref) || ref.includes('\\')) return { kind: 'local' };
  try {
    const hub = parseModelRef(ref);
    return { kind: 'hub', repo: hub.repo, revision: hub.revision ?? 'main' };
  } catch {
    return { kind: 'local' };
  }
}

function withoutKey<T>(record: Record<string, T>, key: string): Record<string, T> {
  const copy = { ...record };
  delete copy[key];
  return copy;
}

export function createRecipeSlice(_deps: StudioDeps): StateCreator<StudioState, [], [], RecipeSlice> {
  return (set, get) => {
    /** Models in the merge, in shelf order. */
    const sortByShelf = (models: Recipe['models']): Recipe['models'] => {
      const order = new Map(get().shelf.map((m, i) => [m.ref, i]));
      return [...models].sort((a, b) => (order.get(a.model) ?? Infinity) - (order.get(b.model) ?? Infinity));
    };

    const setModels = (models: Recipe['models'], extra: Partial<Recipe> = {}) =>
      set({ recipe: { ...get().recipe, ...extra, models: sortByShelf(models) } });

    return {
      recipe: emptyRecipe(),
      parked: {},
      recipeNotice: null,

      setMethod(name) {
        const method = findMethod(name);
        if (!method) return;
        set({ recipe: adaptRecipeToMethod(get().recipe, method) });
      },

      setGlobalParam(name, value) {
        const recipe = get().recipe;
        const parameters = value === undefined ? withoutKey(recipe.parameters, name) : { ...recipe.parameters, [name]: value };
        set({ recipe: { ...recipe, parameters } });
      },

      setModelParam(ref, name, value) {
        const recipe = get().recipe;
        const models = recipe.models.map((m) => {
          if (m.model !== ref) return m;
          const parameters = value === undefined ? withoutKey(m.parameters, name) : { ...m.parameters, [name]: value };
          return { ...m, parameters };
        });
        set({ recipe: { ...recipe, models } });
      },

      setDtype(dtype) {
        const { dtype: _old, ...rest } = get().recipe;
        set({ recipe: dtype === undefined ? rest : { ...rest, dtype } });
      },

      setOutDtype(dtype) {
        const { outDtype: _old, ...rest } = get().recipe;
        set({ recipe: dtype === undefined ? rest : { ...rest, outDtype: dtype } });
      },

      setBase(ref) {
        const recipe = get().recipe;
        const oldBase = recipe.baseModel;
        if (oldBase === (ref ?? undefined)) return;
        const parked: Record<string, Record<string, ParamValue>> = { ...get().parked };
        let models = recipe.models;
        if (ref !== null) {
          const entry = models.find((m) => m.model === ref);
          if (entry) parked[ref] = entry.parameters;
          models = models.filter((m) => m.model !== ref);
        }
        // The old base becomes an ordinary model of the merge again.
        if (oldBase !== undefined && get().shelf.some((m) => m.ref === oldBase) && !models.some((m) => m.model === oldBase)) {
          const method = findMethod(recipe.mergeMethod);
          models = [...models, { model: oldBase, parameters: parked[oldBase] ?? (method ? startingModelParams(method) : {}) }];
          delete parked[oldBase];
        }
        set({ parked });
        setModels(models, { baseModel: ref ?? undefined });
      },

      setIncluded(ref, included) {
        const recipe = get().recipe;
        const present = recipe.models.find((m) => m.model === ref);
        if (included === !!present) return;
        if (included) {
          const method = findMethod(recipe.mergeMethod);
          const parameters = get().parked[ref] ?? (method ? startingModelParams(method) : {});
          set({ parked: withoutKey(get().parked, ref) });
          setModels([...recipe.models, { model: ref, parameters }]);
        } else {
          set({ parked: { ...get().parked, [ref]: present!.parameters } });
          setModels(recipe.models.filter((m) => m.model !== ref));
        }
      },

      importRecipe(yaml, origin) {
        let recipe: Recipe;
        try {
          recipe = parseRecipe(yaml, methodLookup, { file: origin });
        } catch (err) {
          const line = err instanceof RecipeError && err.line !== undefined ? ` (line ${err.line})` : '';
          set({ recipeNotice: { kind: 'error', text: `${toErrorInfo(err).message}${line}` } });
          return false;
        }
        // The shelf follows the recipe: its models first (base, then the merge order), then the rest.
        const refs = [...new Set([...(recipe.baseModel !== undefined ? [recipe.baseModel] : []), ...recipe.models.map((m) => m.model)])];
        const shelf = get().shelf;
        const known = new Map(shelf.map((m) => [m.ref, m]));
        const added: ShelfModel[] = [];
        const front = refs.map((ref) => {
          const have = known.get(ref);
          if (have) return have;
          const origin = originForRef(ref);
          const model: ShelfModel = {
            ref,
            origin,
            load: origin.kind === 'local' ? { status: 'missing' } : { status: 'loading', bytesReceived: 0, bytesExpected: 0 },
          };
          added.push(model);
          return model;
        });
        const inRecipe = new Set(refs);
        set({
          shelf: [...front, ...shelf.filter((m) => !inRecipe.has(m.ref))],
          recipe,
          parked: {},
          recipeNotice: null,
        });
        for (const m of added) if (m.origin.kind === 'hub') get().retryModel(m.ref);
        const missing = front.filter((m) => m.load.status === 'missing').map((m) => m.ref);
        const text =
          `Recipe imported from ${origin}: ${recipe.mergeMethod} of ${recipe.models.length} model${recipe.models.length === 1 ? '' : 's'}` +
          (missing.length > 0 ? `. Drop the folder${missing.length > 1 ? 's' : ''} of ${missing.join(', ')} to load ${missing.length > 1 ? 'them' : 'it'}.` : '.');
        set({ recipeNotice: { kind: 'info', text } });
        return true;
      },

      dismissRecipeNotice() {
        set({ recipeNotice: null });
      },
    };
  };
}

/** The recipe being edited: a plain mergekit Recipe, kept valid for the method's schema as it changes. */
import type { StateCreator } from 'zustand/vanilla';
import { isAbsolutePath, parseModelRef } from '../../core/recipe/model-ref.ts';
import { referencedModels } from '../../core/recipe/references.ts';
import type { Recipe } from '../../core/recipe/types.ts';
import { adaptRecipeToMethod, EMPTY_MEMORY, findMethod, modelParamsFor, readRecipeText, rememberModels, rememberRecipe, startingGlobalParams } from '../recipe-model.ts';
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

    /**
     * Make `recipe` the studio's: the shelf follows it (its models first: base, then the merge
     * order; models it names that are not on the shelf join it, Hub ones opening at once). A fresh
     * import forgets remembered values and ties its dtypes to its models. Returns the local models it
     * names whose files are missing.
     */
    const applyRecipe = (recipe: Recipe, fresh: boolean): string[] => {
      const refs = referencedModels(recipe);
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
        ...(fresh
          ? {
              memory: EMPTY_MEMORY,
              // Dtypes that come with a recipe belong to its models: they go when the last of them leaves the shelf.
              dtypesFrom: recipe.dtype !== undefined || recipe.outDtype !== undefined ? refs : null,
              recipeNotice: null,
            }
          : {}),
      });
      for (const m of added) if (m.origin.kind === 'hub') get().retryModel(m.ref);
      return front.filter((m) => m.load.status === 'missing').map((m) => m.ref);
    };

    /** The method of the recipe as it is now (a recipe in the store always has a known one). */
    const method = () => findMethod(get().recipe.mergeMethod);

    return {
      recipe: emptyRecipe(),
      memory: EMPTY_MEMORY,
      dtypesFrom: null,
      recipeNotice: null,
      recipeWarnings: [],

      setMethod(name) {
        const next = findMethod(name);
        const { recipe } = get();
        if (!next || next.name === recipe.mergeMethod) return;
        const memory = rememberRecipe(get().memory, recipe);
        set({ memory, recipe: adaptRecipeToMethod(recipe, next, memory) });
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
        set({ recipe: dtype === undefined ? rest : { ...rest, dtype }, dtypesFrom: null });
      },

      setOutDtype(dtype) {
        const { outDtype: _old, ...rest } = get().recipe;
        set({ recipe: dtype === undefined ? rest : { ...rest, outDtype: dtype }, dtypesFrom: null });
      },

      setBase(ref) {
        const recipe = get().recipe;
        const oldBase = recipe.baseModel;
        if (oldBase === (ref ?? undefined)) return;
        const m = method();
        let memory = get().memory;
        let models = recipe.models;
        if (ref !== null) {
          const entry = models.find((x) => x.model === ref);
          if (entry && m) memory = rememberModels(memory, [entry], m);
          models = models.filter((x) => x.model !== ref);
        }
        // The old base becomes an ordinary model of the merge again.
        if (oldBase !== undefined && get().shelf.some((x) => x.ref === oldBase) && !models.some((x) => x.model === oldBase)) {
          models = [...models, { model: oldBase, parameters: m ? modelParamsFor(m, oldBase, memory) : {} }];
        }
        set({ memory });
        setModels(models, { baseModel: ref ?? undefined });
      },

      setIncluded(ref, included) {
        // The user's choice replaces "joins once loaded".
        if (get().shelf.some((x) => x.ref === ref && x.joinsWhenReady)) {
          set({ shelf: get().shelf.map((x) => (x.ref === ref ? { ...x, joinsWhenReady: undefined } : x)) });
        }
        const recipe = get().recipe;
        const present = recipe.models.find((x) => x.model === ref);
        if (included === !!present) return;
        const m = method();
        if (included) {
          setModels([...recipe.models, { model: ref, parameters: m ? modelParamsFor(m, ref, get().memory) : {} }]);
        } else {
          if (m) set({ memory: rememberModels(get().memory, [present!], m) });
          setModels(recipe.models.filter((x) => x.model !== ref));
        }
      },

      importRecipe(yaml, origin) {
        const read = readRecipeText(yaml, origin);
        if ('error' in read) {
          const { message, line, suggestion } = read.error;
          set({ recipeNotice: { kind: 'error', text: `${message}${suggestion ? `; did you mean "${suggestion}"?` : ''}${line !== null ? ` (line ${line})` : ''}` } });
          return false;
        }
        const { recipe, warnings } = read;
        const missing = applyRecipe(recipe, true);
        const text =
          `Recipe imported from ${origin}: ${recipe.mergeMethod} of ${recipe.models.length} model${recipe.models.length === 1 ? '' : 's'}` +
          (missing.length > 0 ? `. Drop the folder${missing.length > 1 ? 's' : ''} of ${missing.join(', ')} to load ${missing.length > 1 ? 'them' : 'it'}.` : '.');
        set({ recipeNotice: { kind: 'info', text }, recipeWarnings: warnings });
        return true;
      },

      editRecipe(yaml) {
        const read = readRecipeText(yaml, 'the recipe');
        if ('error' in read) return read.error;
        const before = get().recipe;
        applyRecipe(read.recipe, false);
        // dtypes typed by the user are theirs: they no longer leave with the models.
        if (read.recipe.dtype !== before.dtype || read.recipe.outDtype !== before.outDtype) set({ dtypesFrom: null });
        set({ recipeWarnings: read.warnings });
        return null;
      },

      dismissRecipeNotice() {
        set({ recipeNotice: null });
      },
    };
  };
}

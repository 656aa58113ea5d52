/** The shelf: models the user brought (Hub, dropped files, demo set), each opened by the engine. */
import type { StateCreator } from 'zustand/vanilla';
import { referencedModels } from '../../core/recipe/references.ts';
import { parseHubRef } from '../../core/sources/hub-ref.ts';
import { toErrorInfo, type SourceDescription } from '../worker/protocol.ts';
import type { Recipe } from '../../core/recipe/types.ts';
import type { ModelOrigin, ModelsSlice, ShelfModel, StudioDeps, StudioState } from './types.ts';

/** A dropped folder's reference: a relative path, so the exported YAML reads as a local model. */
export function localRef(name: string): string {
  return `./${name}`;
}

/** Replace one shelf entry (by ref), keeping the order. */
export function updateShelf(shelf: readonly ShelfModel[], ref: string, change: (m: ShelfModel) => ShelfModel): ShelfModel[] {
  return shelf.map((m) => (m.ref === ref ? change(m) : m));
}

/** Same file names and sizes: the same model dropped again (or re-exported in place). */
function sameFiles(a: readonly { path: string; blob: Blob }[], b: readonly { path: string; blob: Blob }[]): boolean {
  if (a.length !== b.length) return false;
  const sizes = new Map(a.map((f) => [f.path, f.blob.size]));
  return b.every((f) => sizes.get(f.path) === f.blob.size);
}

/** Why `name` cannot name a dropped model (a path segment: no slashes, not "." or ".."), or null. */
export function modelNameProblem(name: string): string | null {
  if (name.trim() === '') return 'give the model a name';
  if (/[\\/]/.test(name)) return 'a name cannot hold "/" or "\\"';
  if (name.trim() === '.' || name.trim() === '..') return `"${name}" cannot name a model`;
  return null;
}

function uniqueRef(shelf: readonly ShelfModel[], wanted: string): string {
  const taken = new Set(shelf.map((m) => m.ref));
  if (!taken.has(wanted)) return wanted;
  for (let i = 2; ; i++) if (!taken.has(`${wanted}-${i}`)) return `${wanted}-${i}`;
}

export function createModelsSlice(deps: StudioDeps): StateCreator<StudioState, [], [], ModelsSlice> {
  /** Latest open per ref: answers of an older open (before a retry or removal) are dropped. */
  const generation = new Map<string, number>();

  return (set, get) => {
    const sourceOf = (origin: ModelOrigin): SourceDescription | null => {
      switch (origin.kind) {
        case 'hub':
          return {
            kind: 'hub',
            repo: origin.repo,
            revision: origin.revision,
            hubUrl: get().hubUrl,
            accessToken: get().hubToken.trim() || undefined,
          };
        case 'files':
        case 'demo':
          return { kind: 'files', name: origin.name, files: origin.files };
        case 'local':
          return null;
        default: {
          const never: never = origin;
          throw new Error(`unknown model origin ${String(never)}`);
        }
      }
    };

    /** Open (or re-open) one shelf model in the engine and track its load state. */
    const open = (ref: string) => {
      const model = get().shelf.find((m) => m.ref === ref);
      if (!model) return;
      const source = sourceOf(model.origin);
      if (!source) {
        set({ shelf: updateShelf(get().shelf, ref, (m) => ({ ...m, load: { status: 'missing' } })) });
        return;
      }
      const gen = (generation.get(ref) ?? 0) + 1;
      generation.set(ref, gen);
      const current = () => generation.get(ref) === gen && get().shelf.some((m) => m.ref === ref);
      set({ shelf: updateShelf(get().shelf, ref, (m) => ({ ...m, load: { status: 'loading', bytesReceived: 0, bytesExpected: 0 } })) });
      deps.engine
        .open(ref, source, (bytesReceived, bytesExpected) => {
          if (!current()) return;
          set({
            shelf: updateShelf(get().shelf, ref, (m) => (m.load.status === 'loading' ? { ...m, load: { status: 'loading', bytesReceived, bytesExpected } } : m)),
          });
        })
        .then(
          (summary) => {
            if (!current()) return;
            const joins = get().shelf.find((m) => m.ref === ref)?.joinsWhenReady === true;
            set({ shelf: updateShelf(get().shelf, ref, (m) => ({ ...m, load: { status: 'ready', summary }, joinsWhenReady: undefined })) });
            if (joins && get().recipe.baseModel !== ref) get().setIncluded(ref, true);
          },
          (err) => {
            if (current()) set({ shelf: updateShelf(get().shelf, ref, (m) => ({ ...m, load: { status: 'failed', error: toErrorInfo(err) } })) });
          },
        );
    };

    /** Put a new model on the shelf and open it; it joins the merge once it has loaded (a model that fails stays out). */
    const add = (model: ShelfModel) => {
      set({ shelf: [...get().shelf, { ...model, joinsWhenReady: true }] });
      open(model.ref);
    };

    return {
      shelf: [],
      shelfNotice: null,

      addHubModel(repoId, revision) {
        let text = repoId.trim();
        let rev = revision?.trim() || 'main';
        if (text === '') return 'type a Hub model id such as org/name';
        if (text.includes('@') && rev === 'main') {
          rev = text.slice(text.indexOf('@') + 1);
          text = text.slice(0, text.indexOf('@'));
        }
        let parsed;
        try {
          parsed = parseHubRef(`${text}@${rev}`);
        } catch (err) {
          return toErrorInfo(err).message;
        }
        const ref = parsed.revision === 'main' ? parsed.repo : `${parsed.repo}@${parsed.revision}`;
        const existing = get().shelf.find((m) => m.ref === ref);
        if (existing && existing.load.status !== 'missing') return `${ref} is already on the shelf`;
        const origin: ModelOrigin = { kind: 'hub', repo: parsed.repo, revision: parsed.revision };
        if (existing) {
          set({ shelf: updateShelf(get().shelf, ref, (m) => ({ ...m, origin })) });
          open(ref);
        } else {
          add({ ref, origin, load: { status: 'loading', bytesReceived: 0, bytesExpected: 0 } });
        }
        return null;
      },

      addDroppedModels(models) {
        const again: string[] = [];
        for (const dropped of models) {
          const origin: ModelOrigin = { kind: 'files', name: dropped.name, files: dropped.files };
          const wanted = localRef(dropped.name);
          const have = get().shelf.find((m) => m.ref === wanted);
          // A model the recipe named but whose files were missing: the dropped folder fills it. The same
          // files dropped again (same names and sizes): the entry reads the new ones, keeping its place.
          const refill = have && (have.load.status === 'missing' || (have.origin.kind === 'files' && sameFiles(have.origin.files, dropped.files)));
          if (refill) {
            if (have.load.status !== 'missing') again.push(wanted);
            set({ shelf: updateShelf(get().shelf, wanted, (m) => ({ ...m, origin })) });
            open(wanted);
            continue;
          }
          add({ ref: uniqueRef(get().shelf, wanted), origin, load: { status: 'loading', bytesReceived: 0, bytesExpected: 0 } });
        }
        if (again.length > 0) {
          set({ shelfNotice: `${again.join(', ')} ${again.length > 1 ? 'were' : 'was'} already on the shelf: it now reads the files just dropped.` });
        }
      },

      renameModel(ref, name) {
        const model = get().shelf.find((m) => m.ref === ref);
        if (!model || model.origin.kind !== 'files') return 'only dropped models can be renamed';
        const problem = modelNameProblem(name);
        if (problem) return problem;
        const to = localRef(name.trim());
        if (to === ref) return null;
        if (get().shelf.some((m) => m.ref === to)) return `${to} is already on the shelf`;
        const origin: ModelOrigin = { ...model.origin, name: name.trim() };
        const { recipe, memory, dtypesFrom } = get();
        const rename = (r: string) => (r === ref ? to : r);
        const { [ref]: remembered, ...otherModels } = memory.models;
        generation.delete(ref);
        deps.engine.forget(ref);
        set({
          shelf: updateShelf(get().shelf, ref, (m) => ({ ...m, ref: to, origin })),
          recipe: {
            ...recipe,
            baseModel: recipe.baseModel === undefined ? undefined : rename(recipe.baseModel),
            models: recipe.models.map((m) => ({ ...m, model: rename(m.model) })),
          },
          memory: { ...memory, models: remembered ? { ...otherModels, [to]: remembered } : otherModels },
          dtypesFrom: dtypesFrom?.map(rename) ?? null,
        });
        open(to);
        return null;
      },

      dismissShelfNotice() {
        set({ shelfNotice: null });
      },

      async loadDemoSet() {
        const demo = await deps.loadDemoSet();
        const demoRefs = new Set(demo.models.map((m) => m.ref));
        // Demo models already on the shelf (or named by the recipe) are replaced in place.
        const shelf = get().shelf.filter((m) => !demoRefs.has(m.ref) || m.load.status === 'missing');
        const fresh: ShelfModel[] = [];
        for (const d of demo.models) {
          const entry: ShelfModel = { ref: d.ref, origin: { kind: 'demo', name: d.name, files: d.files }, load: { status: 'loading', bytesReceived: 0, bytesExpected: 0 } };
          const at = shelf.findIndex((m) => m.ref === d.ref);
          if (at >= 0) shelf[at] = entry;
          else fresh.push(entry);
        }
        set({ shelf: [...fresh, ...shelf] });
        const named = new Set(referencedModels(get().recipe));
        if (![...demoRefs].some((r) => named.has(r)) && get().importRecipe(demo.recipe, 'demo recipe')) set({ recipeNotice: null });
        for (const d of demo.models) open(d.ref);
      },

      retryModel(ref) {
        open(ref);
      },

      removeModel(ref) {
        generation.delete(ref);
        deps.engine.forget(ref);
        const { recipe, memory, dtypesFrom } = get();
        const { [ref]: _gone, ...models } = memory.models;
        const shelf = get().shelf.filter((m) => m.ref !== ref);
        let next: Recipe = {
          ...recipe,
          baseModel: recipe.baseModel === ref ? undefined : recipe.baseModel,
          models: recipe.models.filter((m) => m.model !== ref),
        };
        // The last model of the recipe that set the dtypes is gone: so are its dtypes (they would cast other models silently).
        const dtypesGo = dtypesFrom !== null && !dtypesFrom.some((r) => shelf.some((m) => m.ref === r));
        if (dtypesGo) {
          const { dtype: _d, outDtype: _o, ...rest } = next;
          next = rest;
        }
        set({
          shelf,
          memory: { ...memory, models },
          recipe: next,
          ...(dtypesGo
            ? {
                dtypesFrom: null,
                recipeNotice: { kind: 'info', text: 'The dtype and out_dtype of the removed models’ recipe were cleared: tensors now keep the dtype they are stored in.' },
              }
            : {}),
        });
      },

      moveModel(ref, delta) {
        const shelf = [...get().shelf];
        const i = shelf.findIndex((m) => m.ref === ref);
        const j = i + delta;
        if (i < 0 || j < 0 || j >= shelf.length) return;
        [shelf[i], shelf[j]] = [shelf[j], shelf[i]];
        const order = new Map(shelf.map((m, k) => [m.ref, k]));
        const recipe = get().recipe;
        const models = [...recipe.models].sort((a, b) => (order.get(a.model) ?? Infinity) - (order.get(b.model) ?? Infinity));
        set({ shelf, recipe: { ...recipe, models } });
      },
    };
  };
}

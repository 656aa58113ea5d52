/** The shelf: models the user brought (Hub, dropped files, demo set), each opened by the engine. */
import type { StateCreator } from 'zustand/vanilla';
import { parseHubRef } from '../../core/sources/hub-ref.ts';
import { toErrorInfo, type SourceDescription } from '../worker/protocol.ts';
import type { ModelOrigin, ModelsSlice, ShelfModel, StudioDeps, StudioState } from './types.ts';

/** A dropped folder's reference: a relative path, so the exported YAML reads as a local model. */
export function localRef(name: string): string {
  return `./${name}`;
}

/** Replace one shelf entry (by ref), keeping the order. */
export function updateShelf(shelf: readonly ShelfModel[], ref: string, change: (m: ShelfModel) => ShelfModel): ShelfModel[] {
  return shelf.map((m) => (m.ref === ref ? change(m) : m));
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
            if (current()) set({ shelf: updateShelf(get().shelf, ref, (m) => ({ ...m, load: { status: 'ready', summary } })) });
          },
          (err) => {
            if (current()) set({ shelf: updateShelf(get().shelf, ref, (m) => ({ ...m, load: { status: 'failed', error: toErrorInfo(err) } })) });
          },
        );
    };

    /** Put a new model on the shelf, in the merge (unless it is the base), and open it. */
    const add = (model: ShelfModel) => {
      set({ shelf: [...get().shelf, model] });
      if (get().recipe.baseModel !== model.ref) get().setIncluded(model.ref, true);
      open(model.ref);
    };

    return {
      shelf: [],

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
        for (const dropped of models) {
          const origin: ModelOrigin = { kind: 'files', name: dropped.name, files: dropped.files };
          const wanted = localRef(dropped.name);
          // A model the recipe named but whose files were missing: the dropped folder fills it.
          const placeholder = get().shelf.find((m) => m.ref === wanted && m.load.status === 'missing');
          if (placeholder) {
            set({ shelf: updateShelf(get().shelf, wanted, (m) => ({ ...m, origin })) });
            open(wanted);
            continue;
          }
          add({ ref: uniqueRef(get().shelf, wanted), origin, load: { status: 'loading', bytesReceived: 0, bytesExpected: 0 } });
        }
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
        const named = new Set([get().recipe.baseModel, ...get().recipe.models.map((m) => m.model)]);
        if (![...demoRefs].some((r) => named.has(r)) && get().importRecipe(demo.recipe, 'demo recipe')) set({ recipeNotice: null });
        for (const d of demo.models) open(d.ref);
      },

      retryModel(ref) {
        open(ref);
      },

      removeModel(ref) {
        generation.delete(ref);
        deps.engine.forget(ref);
        const { recipe, parked } = get();
        const rest = { ...parked };
        delete rest[ref];
        set({
          shelf: get().shelf.filter((m) => m.ref !== ref),
          parked: rest,
          recipe: {
            ...recipe,
            baseModel: recipe.baseModel === ref ? undefined : recipe.baseModel,
            models: recipe.models.filter((m) => m.model !== ref),
          },
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

/**
 * The layer-stack editor: a `slices:` recipe as output layers stacked top to bottom, grouped by
 * slice; each row says which model and layer feed it. Slices are added, duplicated (a repeated
 * block), removed and reordered by drag or keyboard (Alt+↑/↓ move, Ctrl/⌘+D duplicate, Delete
 * remove, on a focused slice); a slice's sources, start layers and size are edited in place. Every
 * edit is written back as the recipe's YAML (the store's editRecipe), so the YAML panel and the
 * stack always say the same thing.
 */
import { useState, type DragEvent, type KeyboardEvent } from 'react';
import { recipeToYaml } from '../../core/recipe/write.ts';
import type { Recipe, RecipeSlice } from '../../core/recipe/types.ts';
import {
  addSlice,
  addSource,
  asModelsRecipe,
  asSlices,
  duplicateSlice,
  layerSpan,
  moveSlice,
  removeSlice,
  removeSource,
  setSliceSize,
  setSourceModel,
  setSourceStart,
  sliceSize,
  stackRows,
  withSlices,
} from '../layer-stack.ts';
import { useStudio } from '../store-context.tsx';
import './layer-stack.css';

/** Layer counts of the loaded shelf models (null while a model is not loaded). */
function useLayerCounts(): (ref: string) => number | null {
  const shelf = useStudio((s) => s.shelf);
  return (ref) => {
    const m = shelf.find((x) => x.ref === ref);
    return m?.load.status === 'ready' && m.load.summary.numLayers > 0 ? m.load.summary.numLayers : null;
  };
}

export function LayerStackEditor() {
  const recipe = useStudio((s) => s.recipe);
  const shelf = useStudio((s) => s.shelf);
  const editRecipe = useStudio((s) => s.editRecipe);
  const layersOf = useLayerCounts();
  const [problem, setProblem] = useState<string | null>(null);
  const [dragFrom, setDragFrom] = useState<number | null>(null);
  const [dropAt, setDropAt] = useState<number | null>(null);
  const loaded = shelf.filter((m) => layersOf(m.ref) !== null).map((m) => m.ref);

  const apply = (next: Recipe) => {
    const error = editRecipe(recipeToYaml(next));
    setProblem(error ? error.message : null);
  };
  const update = (slices: RecipeSlice[]) => apply(withSlices(recipe, slices));

  const slices = recipe.slices;
  const asStack = asSlices(recipe, layersOf);
  const backToModels = slices ? asModelsRecipe(recipe, layersOf) : null;

  const onKey = (i: number) => (e: KeyboardEvent<HTMLLIElement>) => {
    if (!slices || e.target !== e.currentTarget) return;
    if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
      e.preventDefault();
      const to = i + (e.key === 'ArrowUp' ? -1 : 1);
      update(moveSlice(slices, i, to));
      focusSlice(Math.max(0, Math.min(slices.length - 1, to)));
    } else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'd') {
      e.preventDefault();
      update(duplicateSlice(slices, i));
      focusSlice(i + 1);
    } else if (e.key === 'Delete' && slices.length > 1) {
      e.preventDefault();
      update(removeSlice(slices, i));
      focusSlice(Math.max(0, i - 1));
    }
  };
  const onDrop = (i: number) => (e: DragEvent<HTMLLIElement>) => {
    e.preventDefault();
    if (slices && dragFrom !== null) update(moveSlice(slices, dragFrom, i));
    setDragFrom(null);
    setDropAt(null);
  };

  return (
    <section id="layers" className="panel layer-stack" aria-labelledby="layers-title" tabIndex={-1} data-testid="layers">
      <header className="panel-head">
        <h2 id="layers-title">Layers</h2>
        {slices ? <span className="count">{stackRows(slices).length} output layers</span> : null}
      </header>
      {!slices ? (
        <div className="stack-actions">
          <p className="hint">The merge takes whole models. Stack layers instead (slices) to build a frankenmerge or merge layer ranges.</p>
          <button type="button" className="small" disabled={!asStack} onClick={() => asStack && update(asStack)} data-testid="layers.edit">
            Edit as a layer stack
          </button>
          {loaded.length > 0 ? (
            <button type="button" className="small" onClick={() => update(addSlice([], loaded[0], 0, layersOf(loaded[0])!))} data-testid="layers.new">
              New stack from {loaded[0]}
            </button>
          ) : null}
        </div>
      ) : (
        <>
          <p className="hint" id="layers-keys">
            Drag a slice by its handle, or focus it and press Alt+↑/↓ to move it, Ctrl+D to duplicate it, Delete to remove it (a stack keeps at least one slice).
          </p>
          <ol className="slices" aria-describedby="layers-keys">
            {slices.map((slice, i) => {
              const start = stackRows(slices.slice(0, i)).length;
              const n = sliceSize(slice);
              return (
                <li
                  key={i}
                  className={`slice${dropAt === i ? ' drop-target' : ''}`}
                  tabIndex={0}
                  aria-label={`Slice ${i + 1}: output ${layerSpan(start, start + n)}`}
                  onKeyDown={onKey(i)}
                  draggable
                  onDragStart={(e) => {
                    setDragFrom(i);
                    e.dataTransfer.effectAllowed = 'move';
                    e.dataTransfer.setData('text/plain', `slice ${i}`);
                  }}
                  onDragOver={(e) => {
                    if (dragFrom === null) return;
                    e.preventDefault();
                    setDropAt(i);
                  }}
                  onDragLeave={() => setDropAt((d) => (d === i ? null : d))}
                  onDrop={onDrop(i)}
                  onDragEnd={() => (setDragFrom(null), setDropAt(null))}
                  data-testid={`layers.slice.${i}`}
                >
                  <div className="slice-head">
                    <span className="drag-handle" aria-hidden="true">
                      ⠿
                    </span>
                    <strong className="grow">
                      Output {layerSpan(start, start + n)}
                    </strong>
                    <label>
                      layers{' '}
                      <input
                        type="number"
                        min={1}
                        value={n}
                        onChange={(e) => update(setSliceSize(slices, i, Number(e.target.value), layersOf))}
                        aria-label={`Slice ${i + 1}: number of layers`}
                        data-testid={`layers.slice.${i}.size`}
                      />
                    </label>
                    <button type="button" className="icon" disabled={i === 0} onClick={() => update(moveSlice(slices, i, i - 1))} aria-label={`Move slice ${i + 1} up`} data-testid={`layers.slice.${i}.up`}>
                      ↑
                    </button>
                    <button type="button" className="icon" disabled={i === slices.length - 1} onClick={() => update(moveSlice(slices, i, i + 1))} aria-label={`Move slice ${i + 1} down`} data-testid={`layers.slice.${i}.down`}>
                      ↓
                    </button>
                    <button type="button" className="small" onClick={() => update(duplicateSlice(slices, i))} aria-label={`Duplicate slice ${i + 1}`} data-testid={`layers.slice.${i}.duplicate`}>
                      Duplicate
                    </button>
                    <button type="button" className="icon danger" disabled={slices.length === 1} onClick={() => update(removeSlice(slices, i))} aria-label={`Remove slice ${i + 1}`} data-testid={`layers.slice.${i}.remove`}>
                      ×
                    </button>
                  </div>
                  {slice.sources.map((source, j) => (
                    <div className="source" key={j}>
                      <select
                        value={source.model}
                        onChange={(e) => update(setSourceModel(slices, i, j, e.target.value, layersOf))}
                        aria-label={`Slice ${i + 1}, source ${j + 1}: model`}
                        data-testid={`layers.slice.${i}.source.${j}.model`}
                      >
                        {[...new Set([source.model, ...loaded])].map((ref) => (
                          <option key={ref} value={ref}>
                            {ref}
                          </option>
                        ))}
                      </select>
                      <label>
                        from layer{' '}
                        <input
                          type="number"
                          min={0}
                          value={source.layerRange[0]}
                          onChange={(e) => update(setSourceStart(slices, i, j, Number(e.target.value), layersOf))}
                          aria-label={`Slice ${i + 1}, source ${j + 1}: first layer`}
                          data-testid={`layers.slice.${i}.source.${j}.from`}
                        />
                      </label>
                      <span className="hint">
                        {layerSpan(source.layerRange[0], source.layerRange[1])}
                        {layersOf(source.model) !== null ? ` of ${layersOf(source.model)}` : ''}
                      </span>
                      {slice.sources.length > 1 ? (
                        <button type="button" className="icon danger" onClick={() => update(removeSource(slices, i, j))} aria-label={`Remove source ${j + 1} of slice ${i + 1}`}>
                          ×
                        </button>
                      ) : null}
                    </div>
                  ))}
                  {loaded.some((ref) => !slice.sources.some((s) => s.model === ref)) ? (
                    <div className="source">
                      <button
                        type="button"
                        className="small"
                        onClick={() => update(addSource(slices, i, loaded.find((ref) => !slice.sources.some((s) => s.model === ref))!))}
                        data-testid={`layers.slice.${i}.add-source`}
                      >
                        Merge another model into this slice
                      </button>
                    </div>
                  ) : null}
                  <ol className="rows" aria-label={`Output layers of slice ${i + 1}`}>
                    {stackRows(slices)
                      .filter((r) => r.slice === i)
                      .map((r) => (
                        <li key={r.output} data-testid={`layers.row.${r.output}`}>
                          <span>L{r.output}</span>
                          <span>{r.sources.map((s) => `${s.model} · layer ${s.layer}`).join(' + ')}</span>
                        </li>
                      ))}
                  </ol>
                </li>
              );
            })}
          </ol>
          <div className="stack-actions">
            {loaded.length > 0 ? (
              <button
                type="button"
                className="small"
                onClick={() => update(addSlice(slices, loaded[0], 0, Math.min(layersOf(loaded[0])!, Math.max(1, sliceSize(slices[slices.length - 1])))))}
                data-testid="layers.add"
              >
                Add a slice
              </button>
            ) : null}
            {backToModels ? (
              <button type="button" className="small" onClick={() => apply(backToModels)} data-testid="layers.whole">
                Merge whole models again
              </button>
            ) : null}
          </div>
        </>
      )}
      {problem ? (
        <p className="error" role="alert" data-testid="layers.problem">
          {problem}
        </p>
      ) : null}
    </section>
  );
}

/** Focus slice i after the list re-renders. */
function focusSlice(i: number) {
  requestAnimationFrame(() => document.querySelector<HTMLElement>(`[data-testid="layers.slice.${i}"]`)?.focus());
}

/**
 * What the analysis keeps between runs, so a slider move recomputes only what the move changed:
 *
 * - AnalysisCache (plain numbers): recipe-independent statistics by model set, and each tensor's
 *   recipe statistics by everything they depend on (the tensor's resolved parameters, method, seed),
 *   so tensors a change does not reach (another layer's curve point, a filter) are not recomputed.
 *   The model-set key names the base, the models and the tensor list; each opened ModelSource also
 *   gets a token of its own, so a model opened again under the same reference (new files dropped) is
 *   a new set. Least recently used first out.
 * - ResidentTensors (backend tensors): the inputs (base and task vectors) and what each model's
 *   sparsifier kept, per tensor, within a byte budget, so a re-run reads and decodes nothing and
 *   re-sparsifies only the models whose parameters changed. It owns what it holds and releases it
 *   on eviction and on clear().
 */
import type { ModelSource } from '../../core/source.ts';
import type { BackendCore, Tensor } from '../backend.ts';
import type { ModelSetStats, TensorRecipeStats } from './types.ts';

/** A few thousand tensors' recipe statistics: a large model's tensors for a few recipes. */
const RECIPE_ENTRIES = 20_000;

export class AnalysisCache {
  readonly #limit: number;
  readonly #entries = new Map<string, ModelSetStats>();
  readonly #recipeEntries = new Map<string, TensorRecipeStats>();
  readonly #tokens = new WeakMap<ModelSource, number>();
  #nextToken = 1;

  constructor(limit = 4) {
    this.#limit = Math.max(1, limit);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The key of a model set: base and models (id and token) and every analyzed tensor with its shape. */
  keyOf(parts: {
    base: ModelSource | undefined;
    models: readonly ModelSource[];
    tensors: readonly { name: string; shape: readonly number[] }[];
    castTo: string | null;
  }): string {
    const who = (m: ModelSource) => `${m.id}#${this.#token(m)}`;
    return JSON.stringify({
      base: parts.base ? who(parts.base) : null,
      models: parts.models.map(who),
      castTo: parts.castTo,
      tensors: parts.tensors.map((t) => `${t.name}[${t.shape.join(',')}]`),
    });
  }

  get(key: string): ModelSetStats | undefined {
    const hit = this.#entries.get(key);
    if (hit) {
      this.#entries.delete(key);
      this.#entries.set(key, hit);
    }
    return hit;
  }

  set(key: string, stats: ModelSetStats): void {
    this.#entries.delete(key);
    this.#entries.set(key, stats);
    while (this.#entries.size > this.#limit) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }

  /** One tensor's recipe statistics, by a key that names everything they depend on (see analyze.ts). */
  getRecipeEntry(key: string): TensorRecipeStats | undefined {
    const hit = this.#recipeEntries.get(key);
    if (hit) {
      this.#recipeEntries.delete(key);
      this.#recipeEntries.set(key, hit);
    }
    return hit;
  }

  setRecipeEntry(key: string, entry: TensorRecipeStats): void {
    this.#recipeEntries.delete(key);
    this.#recipeEntries.set(key, entry);
    while (this.#recipeEntries.size > RECIPE_ENTRIES) this.#recipeEntries.delete(this.#recipeEntries.keys().next().value as string);
  }

  get recipeEntries(): number {
    return this.#recipeEntries.size;
  }

  clear(): void {
    this.#entries.clear();
    this.#recipeEntries.clear();
  }

  #token(m: ModelSource): number {
    let t = this.#tokens.get(m);
    if (t === undefined) {
      t = this.#nextToken++;
      this.#tokens.set(m, t);
    }
    return t;
  }
}

/** A resident entry: tensors it owns and plain data about them. */
export interface Resident<D> {
  tensors: Tensor[];
  data: D;
}

/**
 * Backend tensors kept between analysis runs, least recently used first out once `maxBytes` is
 * exceeded. Entries a run is using are pinned (pin/unpinAll) and never evicted under it.
 */
export class ResidentTensors {
  readonly backend: BackendCore;
  readonly maxBytes: number;
  readonly #entries = new Map<string, Resident<unknown>>();
  readonly #pinned = new Set<string>();
  #bytes = 0;
  /** clear() came while a run had entries pinned: they go when it unpins them. */
  #clearWhenUnpinned = false;

  constructor(backend: BackendCore, maxBytes = 256 * 1024 * 1024) {
    this.backend = backend;
    this.maxBytes = maxBytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The entry under `key`, pinned until unpinAll; undefined when absent. */
  take<D>(key: string): Resident<D> | undefined {
    const hit = this.#entries.get(key) as Resident<D> | undefined;
    if (!hit) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, hit);
    this.#pinned.add(key);
    return hit;
  }

  /** Keep `tensors` (ownership passes here; pinned until unpinAll) and make room by evicting the oldest unpinned entries. */
  put<D>(key: string, tensors: Tensor[], data: D): Resident<D> {
    this.#drop(key);
    const entry: Resident<D> = { tensors, data };
    this.#entries.set(key, entry);
    this.#pinned.add(key);
    this.#bytes += bytesOf(tensors);
    for (const [k] of this.#entries) {
      if (this.#bytes <= this.maxBytes) break;
      if (!this.#pinned.has(k)) this.#drop(k);
    }
    return entry;
  }

  unpinAll(): void {
    this.#pinned.clear();
    if (this.#clearWhenUnpinned) this.clear();
    // What a run pinned may have kept the total over the budget.
    for (const [k] of this.#entries) {
      if (this.#bytes <= this.maxBytes) break;
      this.#drop(k);
    }
  }

  /**
   * Release everything (before the backend goes, or to give its memory to a merge); entries a run
   * is using go as soon as it unpins them.
   */
  clear(): void {
    for (const k of [...this.#entries.keys()]) if (!this.#pinned.has(k)) this.#drop(k);
    this.#clearWhenUnpinned = this.#entries.size > 0;
  }

  #drop(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    this.#pinned.delete(key);
    this.#bytes -= bytesOf(entry.tensors);
    for (const t of entry.tensors) this.backend.release(t);
  }
}

function bytesOf(tensors: readonly Tensor[]): number {
  return tensors.reduce((s, t) => s + t.numel * 4, 0);
}

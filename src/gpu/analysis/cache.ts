/**
 * Recipe-independent statistics by model set, so moving a slider re-runs only the recipe-dependent
 * pass. The key names the base, the models and the tensor list; each opened ModelSource also gets a
 * token of its own, so a model opened again under the same reference (new files dropped) is a new
 * set. Holds a few sets, least recently used first out.
 */
import type { ModelSource } from '../../core/source.ts';
import type { ModelSetStats } from './types.ts';

export class AnalysisCache {
  readonly #limit: number;
  readonly #entries = new Map<string, ModelSetStats>();
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

  clear(): void {
    this.#entries.clear();
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

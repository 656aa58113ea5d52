/** The models a recipe reads, whatever part of it names them. */
import type { Recipe } from './types.ts';

/** Tokenizer sources that are not a model. */
const TOKENIZER_KEYWORDS = ['base', 'union'];

/**
 * Every distinct model reference of the recipe, in the order the recipe names them: the base, the
 * models (or the slices' bases and sources), the tokenizer's source model and token donors.
 */
export function referencedModels(recipe: Recipe): string[] {
  const refs: string[] = [];
  const add = (ref: string | undefined) => {
    if (ref !== undefined && !refs.includes(ref)) refs.push(ref);
  };
  add(recipe.baseModel);
  for (const m of recipe.models) add(m.model);
  for (const slice of recipe.slices ?? []) {
    add(slice.baseModel);
    for (const s of slice.sources) add(s.model);
  }
  const source = recipe.tokenizer?.source ?? recipe.tokenizerSource;
  if (source !== undefined && !TOKENIZER_KEYWORDS.includes(source)) add(source);
  for (const entry of Object.values(recipe.tokenizer?.tokens ?? {})) {
    if (entry.source && entry.source.kind !== 'zero') add(entry.source.model);
  }
  return refs;
}

/** mergekit recipes: parse, validate, write, resolve parameters per tensor, model references. */
export type { ParamCondition, ParamValue, Recipe, RecipeModel } from './types.ts';
export { formatRecipePath, RecipeError, type RecipeKey } from './errors.ts';
export { parseRecipe, recipeFromRaw, RECIPE_KEYS, type ParseRecipeOptions } from './parse.ts';
export { validateRecipe } from './validate.ts';
export { recipeToYaml } from './write.ts';
export {
  evalGradient,
  LayerIndexError,
  layerIndexOf,
  layerPosition,
  numLayersOf,
  resolveParamValue,
  resolveTensorParams,
  type TensorParams,
} from './resolve.ts';
export {
  isAbsolutePath,
  ModelRefError,
  parseModelRef,
  resolveModelRef,
  type HubModelRef,
  type LocalModelRef,
  type ResolvedModelRef,
  type ResolveModelRefOptions,
} from './model-ref.ts';

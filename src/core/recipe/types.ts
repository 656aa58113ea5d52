/** A mergekit recipe, as parsed from YAML (see ../shared/METHODS.md "Recipes"). */
import type { FloatDType } from '../dtype.ts';

/** Scalar, gradient list (interpolated over layers), or `{filter, value}` conditions. */
export type ParamValue = number | boolean | string | number[] | ParamCondition[];

export interface ParamCondition {
  /** Substring of the tensor name; absent or "*" matches every tensor. */
  filter?: string;
  value: number | boolean | string | number[];
}

export interface RecipeModel {
  /** Local path or Hub repo id with optional @revision, exactly as written in the recipe. */
  model: string;
  parameters: Record<string, ParamValue>;
}

export interface Recipe {
  mergeMethod: string;
  models: RecipeModel[];
  baseModel?: string;
  parameters: Record<string, ParamValue>;
  /** Cast inputs before the math. */
  dtype?: FloatDType;
  /** Cast the result. */
  outDtype?: FloatDType;
}

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

/** One input of an output slice: layers [from, to) of a model (mergekit `layer_range`). */
export interface RecipeSliceSource {
  model: string;
  layerRange: [number, number];
  /** Per-model parameters for this slice (looked up first). */
  parameters: Record<string, ParamValue>;
}

/**
 * One output slice (mergekit `slices:`): its sources (each the same number of layers) merged layer
 * by layer into consecutive output layers.
 */
export interface RecipeSlice {
  sources: RecipeSliceSource[];
  /** The slice's base model (else the recipe's). */
  baseModel?: string;
  /** Parameters for this slice, looked up after a source's own and before the top-level ones. */
  parameters: Record<string, ParamValue>;
}

/** Where an added token's embedding row comes from (mergekit `tokenizer.tokens.<token>.source`). */
export type TokenEmbeddingSource =
  /** A model's row for the same token. */
  | { kind: 'model'; model: string }
  /** A model's row for another token, by string or id. */
  | { kind: 'model_token'; model: string; token?: string; tokenId?: number }
  /** A row of zeros. */
  | { kind: 'zero' };

export interface TokenEmbeddingConfig {
  source?: TokenEmbeddingSource;
  /** Use the source even in models that have the token. */
  force?: boolean;
}

/** mergekit's `tokenizer:` block. */
export interface TokenizerConfig {
  /** 'union', 'base', or a model reference. @default 'union' */
  source: string;
  /** Tokens to add or whose embeddings to choose, by token string. */
  tokens?: Record<string, TokenEmbeddingConfig>;
  /** Pad the output vocabulary (embedding rows) to a multiple of this. */
  padToMultipleOf?: number;
}

export interface Recipe {
  mergeMethod: string;
  /** The models to merge whole; empty when the recipe gives `slices` instead. */
  models: RecipeModel[];
  /** Output layer slices (mergekit `slices:`), instead of `models`. */
  slices?: RecipeSlice[];
  baseModel?: string;
  parameters: Record<string, ParamValue>;
  /** Cast inputs before the math. */
  dtype?: FloatDType;
  /** Cast the result. */
  outDtype?: FloatDType;
  /** mergekit `tokenizer_source`: 'base', 'union' or a model reference (absent: the base's tokenizer, copied). */
  tokenizerSource?: string;
  /** mergekit `tokenizer:` (exclusive with tokenizerSource). */
  tokenizer?: TokenizerConfig;
  /** `chat_template`: 'auto', a built-in template name, or a Jinja template. */
  chatTemplate?: string;
}

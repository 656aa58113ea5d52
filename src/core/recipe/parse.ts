/**
 * mergekit recipe YAML → Recipe. Parsing is strict where mergekit is lax: unknown keys and
 * parameter names are errors (a typo like `desnity` must not merge silently with defaults), and
 * mergekit features Merge Studio does not have yet (`modules`) are refused rather than ignored.
 * YAML is read with the YAML 1.2 core schema (`1e-5` is a number, `yes` is a string).
 */
import { LineCounter, parseDocument, type Document } from 'yaml';
import { floatDTypeFromTorchName, type FloatDType } from '../dtype.ts';
import type { MethodLookup } from '../params.ts';
import { RecipeError, type RecipeKey } from './errors.ts';
import { isMapping, modelFromRaw, modelRefFromRaw, parametersFromRaw, type Fail } from './raw.ts';
import { slicesFromRaw } from './slices.ts';
import { chatTemplateFromRaw, tokenizerConfigFromRaw, tokenizerSourceFromRaw } from './tokenizer-config.ts';
import type { Recipe } from './types.ts';
import { quote, show, validateRecipe } from './validate.ts';

/** Top-level keys, in the order recipeToYaml writes them. */
export const RECIPE_KEYS = [
  'slices',
  'models',
  'merge_method',
  'base_model',
  'parameters',
  'dtype',
  'out_dtype',
  'tokenizer_source',
  'tokenizer',
  'chat_template',
] as const;

/**
 * mergekit keys refused with "not supported yet" instead of "unknown key" (the studio can leave them
 * out with a warning in the same words: `unsupported: 'warn'`).
 */
export const UNSUPPORTED_KEYS: Readonly<Record<string, string>> = {
  modules: 'not supported yet (per-module merges): list whole models under models, or layers under slices',
};

const DTYPE_NAMES = ['bfloat16', 'float16', 'float32', 'bf16', 'fp16', 'fp32', 'half', 'float'];

export interface ParseRecipeOptions {
  /** The recipe's file name, used in error messages. */
  file?: string;
  /**
   * mergekit keys Merge Studio does not support yet (UNSUPPORTED_KEYS): refused, as the CLI does
   * (the default), or left out of the recipe and reported to `onWarning` in the same words.
   */
  unsupported?: 'refuse' | 'warn';
  /** Each key left out (`unsupported: 'warn'`), as a RecipeError with its line. */
  onWarning?: (warning: RecipeError) => void;
}

/** YAML text → validated Recipe; a RecipeError (with `line` when it can be found) otherwise. */
export function parseRecipe(text: string, methods: MethodLookup, opts: ParseRecipeOptions = {}): Recipe {
  const { file } = opts;
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0];
    const error = new RecipeError([], `invalid YAML: ${first.message}`, { file });
    error.line = first.linePos?.[0].line;
    throw error;
  }
  try {
    const warn = (w: RecipeError) => {
      w.line = lineOf(doc, lineCounter, w.keys, w.at);
      opts.onWarning?.(w);
    };
    const recipe = recipeFromRaw(doc.toJS({ maxAliasCount: 100 }), file, opts.unsupported === 'warn' ? warn : undefined);
    validateRecipe(recipe, methods, file);
    return recipe;
  } catch (e) {
    if (e instanceof RecipeError) e.line = lineOf(doc, lineCounter, e.keys, e.at);
    throw e;
  }
}

/**
 * Plain data (YAML already decoded) → Recipe, checking structure only: key names, lists vs
 * mappings, dtypes. Parameter names and values are checked by validateRecipe. With `warn`,
 * unsupported keys are left out and reported there instead of refused.
 */
export function recipeFromRaw(raw: unknown, file?: string, warn?: (w: RecipeError) => void): Recipe {
  const fail: Fail = (keys, reason, at) => {
    throw new RecipeError(keys, reason, { file, at });
  };
  if (raw === null || raw === undefined) fail([], 'the recipe is empty (it needs models or slices, and merge_method)');
  if (!isMapping(raw)) fail([], `must be a mapping with the keys ${RECIPE_KEYS.join(', ')}`);
  const top = raw as Record<string, unknown>;

  for (const key of Object.keys(top)) {
    if (Object.hasOwn(UNSUPPORTED_KEYS, key)) {
      if (!warn) fail([key], UNSUPPORTED_KEYS[key]);
      warn(new RecipeError([key], UNSUPPORTED_KEYS[key], { file }));
      continue;
    }
    if (!(RECIPE_KEYS as readonly string[]).includes(key)) {
      fail([key], `unknown key ${quote(key)} (allowed: ${RECIPE_KEYS.join(', ')})`, []);
    }
  }

  const hasSlices = top.slices !== undefined && top.slices !== null;
  const hasModels = top.models !== undefined && top.models !== null;
  if (hasSlices && hasModels) fail(['slices'], 'give either models or slices, not both (models merges whole models, slices merges layer ranges)');
  if (!hasSlices && !hasModels) fail(['models'], 'missing: list the models to merge (or layer ranges under slices)');
  if (hasModels && !Array.isArray(top.models)) fail(['models'], 'must be a list of {model, parameters}');
  const models = hasModels ? (top.models as unknown[]).map((entry, i) => modelFromRaw(entry, i, fail)) : [];

  let mergeMethod = '';
  if (top.merge_method !== undefined && top.merge_method !== null) {
    if (typeof top.merge_method !== 'string') fail(['merge_method'], `${show(top.merge_method)} must be a method name`);
    mergeMethod = top.merge_method as string;
  }

  const recipe: Recipe = {
    mergeMethod,
    models,
    parameters: parametersFromRaw(top.parameters, ['parameters'], fail),
  };
  if (hasSlices) recipe.slices = slicesFromRaw(top.slices, fail);
  if (top.base_model !== undefined && top.base_model !== null) recipe.baseModel = modelRefFromRaw(top.base_model, ['base_model'], fail);
  const dtype = dtypeFromRaw(top.dtype, 'dtype', fail);
  if (dtype) recipe.dtype = dtype;
  const outDtype = dtypeFromRaw(top.out_dtype, 'out_dtype', fail);
  if (outDtype) recipe.outDtype = outDtype;
  if (top.tokenizer_source !== undefined && top.tokenizer_source !== null) {
    recipe.tokenizerSource = tokenizerSourceFromRaw(top.tokenizer_source, ['tokenizer_source'], fail);
  }
  if (top.tokenizer !== undefined && top.tokenizer !== null) recipe.tokenizer = tokenizerConfigFromRaw(top.tokenizer, fail);
  if (top.chat_template !== undefined && top.chat_template !== null) recipe.chatTemplate = chatTemplateFromRaw(top.chat_template, fail);
  return recipe;
}

function dtypeFromRaw(raw: unknown, key: string, fail: Fail): FloatDType | undefined {
  if (raw === undefined || raw === null) return undefined;
  const dtype = typeof raw === 'string' ? floatDTypeFromTorchName(raw) : undefined;
  if (!dtype) fail([key], `unknown dtype ${show(raw)} (allowed: ${DTYPE_NAMES.join(', ')})`);
  return dtype;
}

/**
 * 1-based line of the node at `keys`; when the document has none there (a missing parameter), of
 * the deepest node on the path the message names (`at`).
 */
function lineOf(doc: Document, lineCounter: LineCounter, keys: readonly RecipeKey[], at: readonly RecipeKey[]): number | undefined {
  const lineAt = (path: readonly RecipeKey[]) => {
    const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
    return node && typeof node === 'object' && node.range ? lineCounter.linePos(node.range[0]).line : undefined;
  };
  if (keys.length > 0) {
    const exact = lineAt(keys);
    if (exact !== undefined) return exact;
  }
  for (let n = at.length; n > 0; n--) {
    const line = lineAt(at.slice(0, n));
    if (line !== undefined) return line;
  }
  return undefined;
}

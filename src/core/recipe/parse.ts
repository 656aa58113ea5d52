/**
 * mergekit recipe YAML → Recipe. Parsing is strict where mergekit is lax: unknown keys and
 * parameter names are errors (a typo like `desnity` must not merge silently with defaults), and
 * mergekit features Merge Studio does not have yet (`slices`, tokenizer options) are refused rather
 * than ignored. YAML is read with the YAML 1.2 core schema (`1e-5` is a number, `yes` is a string).
 */
import { LineCounter, parseDocument, type Document } from 'yaml';
import { floatDTypeFromTorchName, type FloatDType } from '../dtype.ts';
import type { MethodLookup } from '../params.ts';
import { RecipeError, type RecipeKey } from './errors.ts';
import type { ParamCondition, ParamValue, Recipe, RecipeModel } from './types.ts';
import { quote, show, validateRecipe } from './validate.ts';

/** Top-level keys, in the order recipeToYaml writes them. */
export const RECIPE_KEYS = ['models', 'merge_method', 'base_model', 'parameters', 'dtype', 'out_dtype'] as const;

/**
 * mergekit keys refused with "not supported yet" instead of "unknown key" (the studio can leave them
 * out with a warning in the same words: `unsupported: 'warn'`).
 */
export const UNSUPPORTED_KEYS: Readonly<Record<string, string>> = {
  slices: 'not supported yet (layer slices, for passthrough / frankenmerges): list whole models under models',
  modules: 'not supported yet (per-module merges): list whole models under models',
  tokenizer_source: 'not supported yet (tokenizer merging; only "base", the base model\'s tokenizer, is): remove it',
  tokenizer: 'not supported yet (tokenizer merging): remove it',
  chat_template: 'not supported yet: remove it',
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
  if (raw === null || raw === undefined) fail([], 'the recipe is empty (it needs models and merge_method)');
  if (!isMapping(raw)) fail([], `must be a mapping with the keys ${RECIPE_KEYS.join(', ')}`);
  const top = raw as Record<string, unknown>;

  for (const key of Object.keys(top)) {
    // The base's tokenizer is what the merge copies anyway.
    if (key === 'tokenizer_source' && top[key] === 'base') continue;
    if (Object.hasOwn(UNSUPPORTED_KEYS, key)) {
      if (!warn) fail([key], UNSUPPORTED_KEYS[key]);
      warn(new RecipeError([key], UNSUPPORTED_KEYS[key], { file }));
      continue;
    }
    if (!(RECIPE_KEYS as readonly string[]).includes(key)) {
      fail([key], `unknown key ${quote(key)} (allowed: ${RECIPE_KEYS.join(', ')})`, []);
    }
  }

  if (top.models === undefined || top.models === null) fail(['models'], 'missing: list the models to merge');
  if (!Array.isArray(top.models)) fail(['models'], 'must be a list of {model, parameters}');
  const models = (top.models as unknown[]).map((entry, i) => modelFromRaw(entry, i, fail));

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
  if (top.base_model !== undefined && top.base_model !== null) {
    if (typeof top.base_model !== 'string') {
      fail(['base_model'], `${show(top.base_model)} must be a local path or a Hub repo id (org/name[@revision])`);
    }
    recipe.baseModel = top.base_model as string;
  }
  const dtype = dtypeFromRaw(top.dtype, 'dtype', fail);
  if (dtype) recipe.dtype = dtype;
  const outDtype = dtypeFromRaw(top.out_dtype, 'out_dtype', fail);
  if (outDtype) recipe.outDtype = outDtype;
  return recipe;
}

type Fail = (keys: readonly RecipeKey[], reason: string, at?: readonly RecipeKey[]) => never;

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function modelFromRaw(entry: unknown, i: number, fail: Fail): RecipeModel {
  const keys = ['models', i];
  if (typeof entry === 'string') fail(keys, `write the model as "- model: ${entry}"`);
  if (!isMapping(entry)) fail(keys, `${show(entry)} must be a mapping {model, parameters}`);
  const m = entry as Record<string, unknown>;
  for (const key of Object.keys(m)) {
    if (key !== 'model' && key !== 'parameters') {
      fail([...keys, key], `unknown key ${quote(key)} (allowed: model, parameters)`, keys);
    }
  }
  if (typeof m.model !== 'string' || m.model.trim() === '') {
    fail([...keys, 'model'], `${m.model === undefined ? 'missing' : show(m.model)}: give a local path or a Hub repo id (org/name[@revision])`);
  }
  return { model: m.model as string, parameters: parametersFromRaw(m.parameters, [...keys, 'parameters'], fail) };
}

function parametersFromRaw(raw: unknown, keys: RecipeKey[], fail: Fail): Record<string, ParamValue> {
  if (raw === undefined || raw === null) return {};
  if (!isMapping(raw)) fail(keys, `${show(raw)} must be a mapping of parameter names to values`);
  const out: Record<string, ParamValue> = {};
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    out[name] = paramValueFromRaw(value, [...keys, name], fail);
  }
  return out;
}

function paramValueFromRaw(value: unknown, keys: RecipeKey[], fail: Fail): ParamValue {
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'string') return value;
  if (value === null || value === undefined) fail(keys, 'has no value');
  // mergekit also takes one {filter, value} mapping on its own.
  if (isMapping(value)) return [conditionFromRaw(value, keys, fail)];
  if (!Array.isArray(value)) fail(keys, `${show(value)} must be a number, a gradient list, or a list of {filter, value}`);
  const list = value as unknown[];
  if (list.every((v) => typeof v === 'number')) return [...(list as number[])];
  if (list.every(isMapping)) return list.map((c, i) => conditionFromRaw(c as Record<string, unknown>, [...keys, i], fail));
  const odd = list.findIndex((v) => (typeof list[0] === 'number' ? typeof v !== 'number' : !isMapping(v)));
  return fail(
    [...keys, odd],
    `${show(list[odd])} does not fit this list: a list holds numbers (a gradient over layers) or {filter, value} conditions`,
  );
}

function conditionFromRaw(raw: Record<string, unknown>, keys: RecipeKey[], fail: Fail): ParamCondition {
  for (const key of Object.keys(raw)) {
    if (key !== 'filter' && key !== 'value') {
      fail([...keys, key], `unknown key ${quote(key)} in a {filter, value} condition (allowed: filter, value)`, keys);
    }
  }
  if (raw.value === undefined || raw.value === null) fail([...keys, 'value'], 'missing: a condition needs a value');
  const value = raw.value;
  let condValue: ParamCondition['value'];
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'string') {
    condValue = value;
  } else if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'number')) {
    condValue = [...(value as number[])];
  } else {
    return fail([...keys, 'value'], `${show(value)} must be a single value or a gradient list (conditions do not nest)`);
  }
  if (raw.filter === undefined || raw.filter === null) return { value: condValue };
  if (typeof raw.filter !== 'string') {
    fail([...keys, 'filter'], `${show(raw.filter)} must be a string (a part of the tensor name, or "*")`);
  }
  return { filter: raw.filter as string, value: condValue };
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

/**
 * Pure helpers the studio uses to edit a Recipe through the method's parameter schemas: starting
 * values for new models, adapting a recipe to another method, the value "kind" a form shows, and
 * validation in words. Everything is generated from the method descriptors (METHODS); nothing here
 * lists methods or parameters.
 */
import type { FloatDType } from '../core/dtype.ts';
import type { ParamSpec } from '../core/params.ts';
import type { ParamCondition, ParamValue, Recipe, RecipeModel } from '../core/recipe/types.ts';
import { parseRecipe } from '../core/recipe/parse.ts';
import { validateRecipe } from '../core/recipe/validate.ts';
import { RecipeError } from '../core/recipe/errors.ts';
import { methodLookup, METHODS } from '../gpu/methods/index.ts';
import type { MethodDescriptor } from '../gpu/methods/types.ts';

const BY_NAME = new Map(METHODS.map((m) => [m.name, m]));

export function findMethod(name: string): MethodDescriptor | undefined {
  return BY_NAME.get(name);
}

/** The range a slider covers: the soft range where given, else the hard range, else [0, 1]. */
export function sliderRange(spec: ParamSpec): { min: number; max: number } {
  const min = spec.softMin ?? spec.min ?? 0;
  let max = spec.softMax ?? spec.max ?? Math.max(1, min + 1);
  if (max <= min) max = min + 1;
  return { min, max };
}

/** Values a parameter may take (the hard range; infinite where open). */
export function hardRange(spec: ParamSpec): { min: number; max: number } {
  return { min: spec.min ?? -Infinity, max: spec.max ?? Infinity };
}

/** A slider step: about 1/100 of the range, rounded to a power of ten (integers step by 1). */
export function sliderStep(spec: ParamSpec): number {
  if (spec.kind === 'integer') return 1;
  const { min, max } = sliderRange(spec);
  const e = Math.floor(Math.log10((max - min) / 100));
  // 1 / 10^k is exact where 10^-k is not (10 ** -4 is 0.00009999999999999999).
  return e < 0 ? 1 / 10 ** -e : 10 ** e;
}

/**
 * The value a new entry starts with: the default when there is one; for a required number, 1 for a
 * per-model parameter (mergekit's usual weight) and the middle of the slider for a global one,
 * both kept inside the slider range.
 */
export function initialValue(spec: ParamSpec, scope: 'global' | 'model'): number | boolean | string {
  if (spec.default !== undefined) return spec.default;
  switch (spec.kind) {
    case 'boolean':
      return false;
    case 'enum':
      return spec.options?.[0] ?? '';
    case 'number':
    case 'integer': {
      const { min, max } = sliderRange(spec);
      const v = scope === 'model' ? Math.min(Math.max(1, min), max) : (min + max) / 2;
      return spec.kind === 'integer' ? Math.round(v) : v;
    }
    default: {
      const never: never = spec.kind;
      throw new Error(`unknown parameter kind ${String(never)}`);
    }
  }
}

/** Parameters a model needs when it joins a merge: the required per-model ones without defaults. */
export function startingModelParams(method: MethodDescriptor): Record<string, ParamValue> {
  const out: Record<string, ParamValue> = {};
  for (const spec of method.perModelParams) {
    if (spec.required && spec.default === undefined) out[spec.name] = initialValue(spec, 'model');
  }
  return out;
}

/** Global parameters the method requires (no default): they must be in the recipe from the start. */
export function startingGlobalParams(method: MethodDescriptor): Record<string, ParamValue> {
  const out: Record<string, ParamValue> = {};
  for (const spec of method.params) {
    if (spec.required && spec.default === undefined) out[spec.name] = initialValue(spec, 'global');
  }
  return out;
}

function keepKnown(params: Record<string, ParamValue> | undefined, names: ReadonlySet<string>): Record<string, ParamValue> {
  return Object.fromEntries(Object.entries(params ?? {}).filter(([name]) => names.has(name)));
}

/**
 * Values the user set that the recipe does not show right now: a method switched away from, a
 * model left out of the merge. Per-model values are one per model and name (a weight is the same
 * weight under every method that has one); top-level values are kept per method.
 */
export interface ParamMemory {
  models: Record<string, Record<string, ParamValue>>;
  methods: Record<string, Record<string, ParamValue>>;
}

export const EMPTY_MEMORY: ParamMemory = { models: {}, methods: {} };

/**
 * Remember what `entries` hold for the method's per-model parameters (a value reset to its
 * fallback is forgotten too, so it does not come back).
 */
export function rememberModels(memory: ParamMemory, entries: readonly RecipeModel[], method: MethodDescriptor): ParamMemory {
  const models = { ...memory.models };
  for (const m of entries) {
    const kept = { ...models[m.model] };
    for (const spec of method.perModelParams) {
      const v = m.parameters[spec.name];
      if (v === undefined) delete kept[spec.name];
      else kept[spec.name] = v;
    }
    models[m.model] = kept;
  }
  return { ...memory, models };
}

/** Remember the whole recipe under its method: the models' values and the method's top-level ones. */
export function rememberRecipe(memory: ParamMemory, recipe: Recipe): ParamMemory {
  const method = findMethod(recipe.mergeMethod);
  if (!method) return memory;
  const next = rememberModels(memory, recipe.models.filter((m) => m.model !== recipe.baseModel), method);
  return { ...next, methods: { ...next.methods, [method.name]: { ...recipe.parameters } } };
}

/** The parameters model `ref` starts with under `method`: what it had (remembered), else the starting values. */
export function modelParamsFor(method: MethodDescriptor, ref: string, memory: ParamMemory): Record<string, ParamValue> {
  const names = new Set(method.perModelParams.map((p) => p.name));
  return { ...startingModelParams(method), ...keepKnown(memory.models[ref], names) };
}

/**
 * The recipe under another method. A value of a name both methods have is kept (weight, density...);
 * the new method's other values come from the memory (what the user set the last time they were
 * shown), else its starting values. Call with a memory that already holds the recipe (rememberRecipe).
 */
export function adaptRecipeToMethod(recipe: Recipe, method: MethodDescriptor, memory: ParamMemory = EMPTY_MEMORY): Recipe {
  const globalNames = new Set(method.params.map((p) => p.name));
  const modelNames = new Set(method.perModelParams.map((p) => p.name));
  const topNames = new Set([...globalNames, ...modelNames]);
  return {
    ...recipe,
    mergeMethod: method.name,
    parameters: { ...startingGlobalParams(method), ...keepKnown(memory.methods[method.name], topNames), ...keepKnown(recipe.parameters, topNames) },
    models: recipe.models.map((m) => ({
      model: m.model,
      parameters:
        m.model === recipe.baseModel
          ? keepKnown(m.parameters, modelNames)
          : { ...modelParamsFor(method, m.model, memory), ...keepKnown(m.parameters, modelNames) },
    })),
  };
}

/** How a value is edited: one number, a curve over the layers, or rules by tensor name. */
export type ValueMode = 'scalar' | 'curve' | 'rules';

export function valueMode(value: ParamValue | undefined): ValueMode {
  if (!Array.isArray(value)) return 'scalar';
  return value.every((v) => typeof v === 'number') ? 'curve' : 'rules';
}

/** A representative number of a value (for switching modes): the scalar, the first point, the first rule. */
export function firstNumber(value: ParamValue | undefined, fallback: number): number {
  if (typeof value === 'number') return value;
  if (!Array.isArray(value) || value.length === 0) return fallback;
  const first = value[0];
  if (typeof first === 'number') return first;
  const v = (first as ParamCondition).value;
  if (typeof v === 'number') return v;
  return Array.isArray(v) && v.length > 0 ? v[0] : fallback;
}

/** Filters the rules editor offers: attention and MLP tensors (substrings of Llama-style names). */
export const RULE_FILTERS = [
  { filter: 'self_attn', label: 'Attention (self_attn)' },
  { filter: 'mlp', label: 'MLP (mlp)' },
] as const;

/** A value converted to another editing mode, keeping what it can. */
export function convertValue(value: ParamValue | undefined, to: ValueMode, fallback: number, numLayers: number | null): ParamValue {
  const v = firstNumber(value, fallback);
  switch (to) {
    case 'scalar':
      return v;
    case 'curve': {
      // A flat curve with a point per layer up to 5 (3 while the layer count is unknown).
      const points = numLayers === null ? 3 : Math.max(2, Math.min(5, numLayers));
      return Array.from({ length: points }, () => v);
    }
    case 'rules': {
      const inner: ParamCondition['value'] = Array.isArray(value) && value.every((x) => typeof x === 'number') ? [...(value as number[])] : v;
      return [...RULE_FILTERS.map((r) => ({ filter: r.filter, value: inner })), { value: v }];
    }
    default: {
      const never: never = to;
      throw new Error(`unknown value mode ${String(never)}`);
    }
  }
}

/** Answers of recipeProblem by recipe: the store keeps a recipe object until it changes, and many views ask. */
const problems = new WeakMap<Recipe, { message: string; path: string } | null>();

/** The recipe's first problem in words (with where it is), or null when it can run. */
export function recipeProblem(recipe: Recipe): { message: string; path: string } | null {
  let answer = problems.get(recipe);
  if (answer === undefined) {
    answer = findRecipeProblem(recipe);
    problems.set(recipe, answer);
  }
  return answer;
}

function findRecipeProblem(recipe: Recipe): { message: string; path: string } | null {
  try {
    validateRecipe(recipe, methodLookup);
    const method = findMethod(recipe.mergeMethod)!;
    if (method.base === 'required' && recipe.baseModel === undefined) {
      return { message: `${method.prettyName} needs a base model: mark one model on the shelf as the base`, path: 'base_model' };
    }
    // A recipe of slices merges each slice's sources (the engine checks them slice by slice).
    if (recipe.slices && recipe.slices.length > 0) return null;
    const count = recipe.models.length;
    if (count < method.minModels) {
      return { message: `${method.prettyName} needs at least ${method.minModels} model${method.minModels > 1 ? 's' : ''} in the merge besides the base`, path: 'models' };
    }
    if (method.maxModels !== undefined && count > method.maxModels) {
      return { message: `${method.prettyName} takes at most ${method.maxModels} model${method.maxModels > 1 ? 's' : ''}; leave some out of the merge`, path: 'models' };
    }
    return null;
  } catch (err) {
    if (err instanceof RecipeError) return { message: err.message, path: err.path };
    throw err;
  }
}

export const DTYPE_CHOICES: readonly { value: FloatDType | ''; label: string }[] = [
  { value: '', label: 'as stored' },
  { value: 'BF16', label: 'bfloat16' },
  { value: 'F16', label: 'float16' },
  { value: 'F32', label: 'float32' },
];

/** Edit distance with adjacent transpositions counting 1 (optimal string alignment): "desnity" → "density" is 1. */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The candidate closest to `word` when it is close enough to be a typo of it (about a third of its letters), else null. */
export function didYouMean(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const c of candidates) {
    if (c === word) continue;
    const dist = editDistance(word.toLowerCase(), c.toLowerCase());
    if (dist < bestDistance) {
      best = c;
      bestDistance = dist;
    }
  }
  return best !== null && bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : null;
}

/**
 * "did you mean `density`?" for a recipe error about an unknown name (a key, a parameter, a method):
 * the name is the last step of the error's path (or the quoted word of the reason), the candidates
 * the list the reason gives ("(allowed: ...)", "(known: ...)").
 */
export function suggestionFor(err: RecipeError): string | null {
  const list = /\((?:allowed|known): ([^)]*)\)/.exec(err.reason);
  if (!list || !/^unknown /.test(err.reason)) return null;
  const quoted = /^unknown \w+ "([^"]+)"/.exec(err.reason);
  const last = err.keys.at(-1);
  const word = quoted?.[1] ?? (typeof last === 'string' ? last : null);
  return word ? didYouMean(word, list[1].split(', ')) : null;
}

/** Filters of a recipe (in top-level and per-model conditions), each with where it is written. */
export function recipeFilters(recipe: Recipe): { filter: string; where: string }[] {
  const out: { filter: string; where: string }[] = [];
  const scan = (params: Record<string, ParamValue>, where: string) => {
    for (const [name, value] of Object.entries(params)) {
      if (!Array.isArray(value)) continue;
      for (const c of value) if (typeof c === 'object' && c.filter !== undefined && c.filter !== '*') out.push({ filter: c.filter, where: `${where}.${name}` });
    }
  };
  scan(recipe.parameters, 'parameters');
  recipe.models.forEach((m, i) => scan(m.parameters, `models[${i}].parameters`));
  return out;
}

/**
 * A warning for each filter that is part of no tensor name (it would never apply), naming it, where
 * it is and the closest name part when there is one.
 */
export function unmatchedFilters(recipe: Recipe, tensorNames: readonly string[], modelRef: string): string[] {
  if (tensorNames.length === 0) return [];
  const unmatched = recipeFilters(recipe).filter((f) => f.filter !== '' && !tensorNames.some((n) => n.includes(f.filter)));
  if (unmatched.length === 0) return [];
  const parts = [...new Set(tensorNames.flatMap((n) => n.split('.')).filter((p) => !/^\d+$/.test(p)))];
  return unmatched.map((f) => {
    const guess = didYouMean(f.filter, parts);
    return `${f.where}: the filter "${f.filter}" matches no tensor of ${modelRef}${guess ? `; did you mean "${guess}"?` : ''}`;
  });
}

/** A recipe text the studio cannot take: the message, its 1-based line when known, and a likely fix. */
export interface RecipeTextError {
  message: string;
  line: number | null;
  /** The name probably meant ("density" for "desnity"), or null. */
  suggestion: string | null;
}

/**
 * YAML → Recipe as the studio reads it: keys Merge Studio does not support yet are left out with a
 * warning (the CLI refuses them, in the same words); any other problem is an error with its line
 * and, for an unknown name, the closest known one.
 */
export function readRecipeText(yaml: string, origin: string): { recipe: Recipe; warnings: string[] } | { error: RecipeTextError } {
  const warnings: string[] = [];
  try {
    const recipe = parseRecipe(yaml, methodLookup, {
      file: origin,
      unsupported: 'warn',
      onWarning: (w) => warnings.push(`${w.message}${w.line !== undefined ? ` (line ${w.line})` : ''}: left out`),
    });
    return { recipe, warnings };
  } catch (err) {
    if (err instanceof RecipeError) return { error: { message: err.message, line: err.line ?? null, suggestion: suggestionFor(err) } };
    return { error: { message: err instanceof Error ? err.message : String(err), line: null, suggestion: null } };
  }
}

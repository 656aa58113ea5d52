/**
 * Recipe validation against the merge method's parameter schemas (src/core/params.ts). The same
 * checks run on recipes parsed from YAML and on recipes the studio builds in memory, so every
 * message uses the YAML spelling of the place (`merge_method`, `models[1].parameters.density`).
 */
import { FLOAT_DTYPES, isFloatDType, TORCH_DTYPE_NAMES } from '../dtype.ts';
import type { MethodLookup, MethodSchema, ParamSpec } from '../params.ts';
import { chatTemplateProblem } from '../tokenizer/chat-templates.ts';
import { RecipeError, type RecipeKey } from './errors.ts';
import { validateSlices } from './slices.ts';
import type { Recipe } from './types.ts';

/** Throws a RecipeError for the first problem found; returns normally for a runnable recipe. */
export function validateRecipe(recipe: Recipe, methods: MethodLookup, file?: string): void {
  const fail: Fail = (keys, reason, at) => {
    throw new RecipeError(keys, reason, { file, at });
  };

  if (typeof recipe.mergeMethod !== 'string' || recipe.mergeMethod === '') {
    fail(['merge_method'], `missing${knownMethodsSuffix(methods, ' (known: ', ')')}`);
  }
  const method = methods(recipe.mergeMethod);
  if (!method) {
    fail(['merge_method'], `unknown method ${quote(recipe.mergeMethod)}${knownMethodsSuffix(methods, ' (known: ', ')')}`);
  }

  const slices = recipe.slices;
  if (slices !== undefined) {
    if (recipe.models.length > 0) fail(['slices'], 'give either models or slices, not both (models merges whole models, slices merges layer ranges)');
    if (slices.length === 0) fail(['slices'], 'the recipe lists no slices (give a list of {sources: [{model, layer_range}]})');
  } else if (!Array.isArray(recipe.models) || recipe.models.length === 0) {
    fail(['models'], 'the recipe lists no models (give a list of {model, parameters})');
  }
  const firstIndexOf = new Map<string, number>();
  recipe.models.forEach((entry, i) => {
    if (typeof entry?.model !== 'string' || entry.model.trim() === '') {
      fail(['models', i, 'model'], 'missing: give a local path or a Hub repo id (org/name[@revision])');
    }
    const seen = firstIndexOf.get(entry.model);
    if (seen !== undefined) {
      fail(['models', i, 'model'], `${quote(entry.model)} is already listed as models[${seen}]`);
    }
    firstIndexOf.set(entry.model, i);
  });
  if (recipe.baseModel !== undefined && (typeof recipe.baseModel !== 'string' || recipe.baseModel.trim() === '')) {
    fail(['base_model'], 'must be a local path or a Hub repo id (org/name[@revision])');
  }
  checkDtype(recipe.dtype, 'dtype', fail);
  checkDtype(recipe.outDtype, 'out_dtype', fail);
  if (recipe.tokenizerSource !== undefined && recipe.tokenizer !== undefined) {
    fail(['tokenizer'], 'give either tokenizer_source or tokenizer, not both (tokenizer.source replaces tokenizer_source)');
  }
  if (recipe.chatTemplate !== undefined) {
    const problem = chatTemplateProblem(recipe.chatTemplate);
    if (problem) fail(['chat_template'], problem);
  }

  const globalSpecs = specMap(method.params);
  const perModelSpecs = specMap(method.perModelParams);
  const topLevel = recipe.parameters ?? {};
  for (const [name, value] of Object.entries(topLevel)) {
    const spec = globalSpecs.get(name) ?? perModelSpecs.get(name);
    if (!spec) {
      fail(['parameters', name], unknownParamReason(name, method, [...globalSpecs.keys(), ...perModelSpecs.keys()]), ['parameters']);
    }
    checkParamValue(spec, value, ['parameters', name], fail);
  }

  recipe.models.forEach((entry, i) => {
    for (const [name, value] of Object.entries(entry.parameters ?? {})) {
      const keys = ['models', i, 'parameters', name];
      const spec = perModelSpecs.get(name);
      if (!spec) {
        if (globalSpecs.has(name)) {
          fail(keys, `${quote(name)} is a global parameter of ${method.name}: put it in the top-level parameters`);
        }
        fail(keys, unknownParamReason(name, method, [...perModelSpecs.keys()]), ['models', i, 'parameters']);
      }
      checkParamValue(spec, value, keys, fail);
    }
  });

  if (slices !== undefined) {
    validateSlices(recipe, method, fail);
    return;
  }

  // Required parameters without a default must be given somewhere. A value given only through
  // conditions may still miss some tensors; resolveTensorParams reports those per tensor.
  for (const spec of method.params) {
    if (isRequired(spec) && !Object.hasOwn(topLevel, spec.name)) {
      fail(['parameters', spec.name], `missing required parameter ${quote(spec.name)} of ${method.name}`, ['parameters']);
    }
  }
  recipe.models.forEach((entry, i) => {
    // The base model listed among the models needs no per-model parameters (as in mergekit).
    if (entry.model === recipe.baseModel) return;
    for (const spec of method.perModelParams) {
      if (!isRequired(spec)) continue;
      if (Object.hasOwn(entry.parameters ?? {}, spec.name) || Object.hasOwn(topLevel, spec.name)) continue;
      fail(
        ['models', i, 'parameters', spec.name],
        `model ${quote(entry.model)} has no ${quote(spec.name)} parameter, required by ${method.name} ` +
          `(set it in the model's parameters or in the top-level parameters)`,
        ['models', i],
      );
    }
  });
}

/** A required parameter with no default must be given by the recipe. */
export function isRequired(spec: ParamSpec): boolean {
  return spec.required === true && spec.default === undefined;
}

type Fail = (keys: readonly RecipeKey[], reason: string, at?: readonly RecipeKey[]) => never;

function checkDtype(value: unknown, key: string, fail: Fail): void {
  if (value === undefined) return;
  if (typeof value !== 'string' || !isFloatDType(value)) {
    fail([key], `${show(value)} is not a float dtype (allowed: ${FLOAT_DTYPES.map((d) => TORCH_DTYPE_NAMES[d]).join(', ')})`);
  }
}

function specMap(specs: readonly ParamSpec[]): Map<string, ParamSpec> {
  return new Map(specs.map((s) => [s.name, s]));
}

export function unknownParamReason(name: string, method: MethodSchema, allowed: string[]): string {
  const list = allowed.length > 0 ? allowed.join(', ') : 'none';
  return `unknown parameter ${quote(name)} for ${method.name} (allowed: ${list})`;
}

function knownMethodsSuffix(methods: MethodLookup, open: string, close: string): string {
  const names = methods.names;
  return names && names.length > 0 ? `${open}${names.join(', ')}${close}` : '';
}

/** Checks a parameter value's shape, type and range against its spec. */
export function checkParamValue(spec: ParamSpec, value: unknown, keys: RecipeKey[], fail: Fail): void {
  if (!Array.isArray(value)) {
    const problem = scalarProblem(spec, value, false);
    if (problem) fail(keys, problem);
    return;
  }
  if (value.length === 0) fail(keys, `is an empty list; ${expected(spec, false)}`);
  if (value.every((v) => typeof v === 'number')) {
    checkGradient(spec, value as number[], keys, fail);
    return;
  }
  if (value.every(isConditionLike)) {
    value.forEach((cond, i) => checkCondition(spec, cond as Record<string, unknown>, [...keys, i], fail));
    return;
  }
  const firstOdd = value.findIndex((v) => (typeof value[0] === 'number' ? typeof v !== 'number' : !isConditionLike(v)));
  fail([...keys, firstOdd], `${show(value[firstOdd])} does not fit this list; ${expected(spec, false)}`);
}

function checkCondition(spec: ParamSpec, cond: Record<string, unknown>, keys: RecipeKey[], fail: Fail): void {
  for (const key of Object.keys(cond)) {
    if (key !== 'filter' && key !== 'value') {
      fail([...keys, key], `unknown key ${quote(key)} in a {filter, value} condition (allowed: filter, value)`, keys);
    }
  }
  if (cond.filter !== undefined && typeof cond.filter !== 'string') {
    fail([...keys, 'filter'], `${show(cond.filter)} must be a string (a part of the tensor name, or "*")`);
  }
  const value = cond.value;
  const valueKeys = [...keys, 'value'];
  if (!Array.isArray(value)) {
    const problem = scalarProblem(spec, value, true);
    if (problem) fail(valueKeys, problem);
    return;
  }
  if (value.length === 0 || !value.every((v) => typeof v === 'number')) {
    fail(valueKeys, `${show(value)} ${expected(spec, true)}`);
  }
  checkGradient(spec, value as number[], valueKeys, fail);
}

function checkGradient(spec: ParamSpec, values: number[], keys: RecipeKey[], fail: Fail): void {
  if (spec.kind !== 'number') {
    fail(keys, `${show(values)}: ${spec.kind} parameter ${quote(spec.name)} cannot vary over layers; ${expected(spec, false)}`);
  }
  values.forEach((v, j) => {
    const problem = numberProblem(spec, v);
    if (problem) fail([...keys, j], problem);
  });
}

function isConditionLike(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && 'value' in v;
}

/**
 * Why `value` is not a valid single value of `spec` (undefined when it is). `inCondition`: the value
 * sits inside a {filter, value} entry, where a nested condition list is not allowed.
 */
export function scalarProblem(spec: ParamSpec, value: unknown, inCondition: boolean): string | undefined {
  switch (spec.kind) {
    case 'number':
    case 'integer':
      if (typeof value !== 'number' || (spec.kind === 'integer' && !Number.isInteger(value))) {
        return `${show(value)} ${expected(spec, inCondition)}`;
      }
      return numberProblem(spec, value);
    case 'boolean':
      return typeof value === 'boolean' ? undefined : `${show(value)} ${expected(spec, inCondition)}`;
    case 'enum':
      return typeof value === 'string' && (spec.options ?? []).includes(value)
        ? undefined
        : `${show(value)} ${expected(spec, inCondition)}`;
    default: {
      const unknownKind: never = spec.kind;
      return `parameter ${quote(spec.name)} has an unknown kind ${show(unknownKind)}`;
    }
  }
}

function numberProblem(spec: ParamSpec, v: number): string | undefined {
  if (!Number.isFinite(v)) return `${show(v)} must be a finite number`;
  const { min, max } = spec;
  if (min !== undefined && max !== undefined && (v < min || v > max)) return `${v} is out of range [${min}, ${max}]`;
  if (min !== undefined && v < min) return `${v} is below the minimum ${min}`;
  if (max !== undefined && v > max) return `${v} is above the maximum ${max}`;
  return undefined;
}

/** "must be ..." for a parameter's kind; conditions cannot nest, so inside one they are not offered. */
function expected(spec: ParamSpec, inCondition: boolean): string {
  const orConditions = inCondition ? '' : ', or a list of {filter, value}';
  switch (spec.kind) {
    case 'number':
      return inCondition ? 'must be a number or a gradient list' : 'must be a number, a gradient list, or a list of {filter, value}';
    case 'integer':
      return `must be an integer${orConditions}`;
    case 'boolean':
      return `must be true or false${orConditions}`;
    case 'enum':
      return `must be one of ${(spec.options ?? []).map(quote).join(', ')}${orConditions}`;
    default: {
      const unknownKind: never = spec.kind;
      return `has an unknown kind ${show(unknownKind)}`;
    }
  }
}

export function quote(s: string): string {
  return JSON.stringify(s);
}

/** A value as the user wrote it, short. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

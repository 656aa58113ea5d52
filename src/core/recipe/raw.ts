/**
 * Structure checks shared by the recipe parser's parts (models, slices, tokenizer): plain decoded
 * YAML → typed values, every problem a RecipeError at its exact place.
 */
import type { RecipeKey } from './errors.ts';
import type { ParamCondition, ParamValue, RecipeModel } from './types.ts';
import { quote, show } from './validate.ts';

export type Fail = (keys: readonly RecipeKey[], reason: string, at?: readonly RecipeKey[]) => never;

export function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function modelFromRaw(entry: unknown, i: number, fail: Fail): RecipeModel {
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

export function parametersFromRaw(raw: unknown, keys: RecipeKey[], fail: Fail): Record<string, ParamValue> {
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


/** A model reference (local path or Hub repo id) at `keys`. */
export function modelRefFromRaw(raw: unknown, keys: RecipeKey[], fail: Fail): string {
  if (typeof raw !== 'string' || raw.trim() === '') {
    fail(keys, `${raw === undefined ? 'missing' : show(raw)}: give a local path or a Hub repo id (org/name[@revision])`);
  }
  return raw as string;
}

/** Fails on the first key of `m` not in `allowed`, reported at the mapping (`at`). */
export function checkKeys(m: Record<string, unknown>, allowed: readonly string[], keys: RecipeKey[], fail: Fail, what = ''): void {
  for (const key of Object.keys(m)) {
    if (!allowed.includes(key)) fail([...keys, key], `unknown key ${quote(key)}${what} (allowed: ${allowed.join(', ')})`, keys);
  }
}

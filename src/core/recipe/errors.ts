/** Errors for recipes that cannot be parsed, validated or resolved. */

/** One step into a recipe: a mapping key or a list index. */
export type RecipeKey = string | number;

/** `['models', 1, 'parameters', 'weight']` → `models[1].parameters.weight`. */
export function formatRecipePath(keys: readonly RecipeKey[]): string {
  let out = '';
  for (const k of keys) {
    if (typeof k === 'number') out += `[${k}]`;
    else out += out === '' ? k : `.${k}`;
  }
  return out;
}

export interface RecipeErrorOptions {
  /** The recipe file, when there is one; it prefixes the message. */
  file?: string;
  /**
   * Where the message says the problem is, when that differs from `keys` (an unknown key is
   * reported at its containing mapping: `models[1].parameters: unknown parameter "desnity" ...`).
   */
  at?: readonly RecipeKey[];
}

/**
 * A recipe the studio cannot run. `path` is the exact place (`models[1].parameters.desnity`);
 * the message reads `<file>: <where>: <reason>`.
 */
export class RecipeError extends Error {
  /** Exact location as a path string, e.g. `models[1].parameters.desnity` ('' for the whole recipe). */
  readonly path: string;
  /** The same location as keys, e.g. `['models', 1, 'parameters', 'desnity']`. */
  readonly keys: readonly RecipeKey[];
  /** Where the message places the problem (a prefix of `keys`, or `keys` itself). */
  readonly at: readonly RecipeKey[];
  readonly reason: string;
  readonly file: string | undefined;
  /** 1-based line in the YAML text, when the recipe came from YAML and the place could be found. */
  line: number | undefined;

  constructor(keys: readonly RecipeKey[], reason: string, opts: RecipeErrorOptions = {}) {
    const where = formatRecipePath(opts.at ?? keys);
    super([opts.file, where, reason].filter((part) => part !== undefined && part !== '').join(': '));
    this.name = 'RecipeError';
    this.keys = [...keys];
    this.at = [...(opts.at ?? keys)];
    this.path = formatRecipePath(keys);
    this.reason = reason;
    this.file = opts.file;
  }
}

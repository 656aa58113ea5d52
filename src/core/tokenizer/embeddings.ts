/**
 * Embedding and LM-head rows gathered per token for a merged vocabulary (mergekit's
 * `PermutedEmbeddings`). Each input model gets a table with one row per output token: its own row
 * for the token when it has one (unless the recipe forces another source), else the token's default
 * row, chosen once per token:
 *  1. the recipe's `tokenizer.tokens.<token>.source`: zeros, another model's row for this token, or a
 *     model's row for a named token / id;
 *  2. else, when exactly one input has the token: that model's row;
 *  3. else, when no input has it: zeros;
 *  4. else, when the base has it: the base's row;
 *  5. else the mean of the rows of the inputs that have it (in f32, then stored in each table's dtype).
 * Rows past the vocabulary (pad_to_multiple_of) are zeros. Rows are copied as bytes when no
 * conversion is needed, so a table that keeps its own rows is exact.
 */
import { byteLength, decodeFloats, encodeFloats, type FloatDType } from '../dtype.ts';
import type { TokenEmbeddingConfig } from '../recipe/types.ts';
import type { BuiltTokenizer } from './build.ts';

export interface EmbeddingInput {
  /** The model, as the recipe names it (a key of the tokenizer's permutations). */
  ref: string;
  bytes: Uint8Array;
  dtype: FloatDType;
  /** [rows, hidden]. */
  shape: readonly number[];
}

export interface GatherOptions {
  /** The base model, when it is one of the inputs. */
  base?: string;
  /** The recipe's per-token settings. */
  tokens?: Readonly<Record<string, TokenEmbeddingConfig>>;
  /** For messages. */
  tensor: string;
}

export class EmbeddingGatherError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EmbeddingGatherError';
  }
}

/** One table per input, in input order, each [built.rows, hidden] in the input's dtype. */
export function gatherEmbeddings(inputs: readonly EmbeddingInput[], built: BuiltTokenizer, opts: GatherOptions): Uint8Array[] {
  const fail = (reason: string) => new EmbeddingGatherError(`tensor ${opts.tensor}: ${reason}`);
  if (inputs.length === 0) return [];
  const hidden = inputs[0].shape[1];
  for (const input of inputs) {
    if (input.shape.length !== 2 || input.shape[1] !== hidden) throw fail(`${input.ref} has shape [${input.shape}], the others [*, ${hidden}]`);
  }
  const perms = inputs.map((input) => {
    const p = built.permutations.get(input.ref);
    if (!p) throw fail(`no token permutation for ${input.ref}`);
    return p;
  });
  const rowOf = (i: number, j: number): number => {
    const id = j < perms[i].length ? perms[i][j] : -1;
    return id >= 0 && id < inputs[i].shape[0] ? id : -1;
  };
  const rowBytes = (i: number, r: number) => {
    const width = byteLength(inputs[i].dtype, hidden);
    return inputs[i].bytes.subarray(r * width, (r + 1) * width);
  };
  const rowValues = (i: number, r: number) => decodeFloats(rowBytes(i, r), inputs[i].dtype);
  const inputIndex = (ref: string, token: string): number => {
    const i = inputs.findIndex((x) => x.ref === ref);
    if (i < 0) throw fail(`token ${JSON.stringify(token)} takes its row from ${ref}, which is not an input of this tensor`);
    return i;
  };
  const baseIndex = opts.base === undefined ? -1 : inputs.findIndex((x) => x.ref === opts.base);

  /** The default row of output token j: [input, row] to copy, or f32 values (zeros, a mean). */
  const defaultRow = (j: number, token: string): { from: [number, number] } | { values: Float32Array } => {
    const setting = opts.tokens?.[token]?.source;
    if (setting?.kind === 'zero') return { values: new Float32Array(hidden) };
    if (setting?.kind === 'model') {
      const i = inputIndex(setting.model, token);
      const r = rowOf(i, j);
      if (r < 0) throw fail(`token ${JSON.stringify(token)} is to come from ${setting.model}, which does not have it`);
      return { from: [i, r] };
    }
    if (setting?.kind === 'model_token') {
      const i = inputIndex(setting.model, token);
      const id = setting.tokenId ?? built.vocabs.get(setting.model)?.get(setting.token!);
      if (id === undefined) throw fail(`token ${JSON.stringify(setting.token)} (the source of ${JSON.stringify(token)}) is not in ${setting.model}'s vocabulary`);
      if (id >= inputs[i].shape[0]) throw fail(`token id ${id} (the source of ${JSON.stringify(token)}) is past the ${inputs[i].shape[0]} rows of ${setting.model}`);
      return { from: [i, id] };
    }
    const present = inputs.map((_, i) => i).filter((i) => rowOf(i, j) >= 0);
    if (present.length === 1) return { from: [present[0], rowOf(present[0], j)] };
    if (present.length === 0) return { values: new Float32Array(hidden) };
    if (baseIndex >= 0 && rowOf(baseIndex, j) >= 0) return { from: [baseIndex, rowOf(baseIndex, j)] };
    const mean = new Float32Array(hidden);
    for (const i of present) {
      const v = rowValues(i, rowOf(i, j));
      for (let k = 0; k < hidden; k++) mean[k] += v[k];
    }
    for (let k = 0; k < hidden; k++) mean[k] /= present.length;
    return { values: mean };
  };

  const outs = inputs.map((input) => new Uint8Array(byteLength(input.dtype, built.rows * hidden)));
  for (let j = 0; j < built.rows; j++) {
    const token = j < built.tokens.length ? built.tokens[j] : undefined;
    if (token === undefined) continue; // padding or an id no token has: zeros
    const force = opts.tokens?.[token]?.force === true;
    let chosen: ReturnType<typeof defaultRow> | undefined;
    inputs.forEach((input, i) => {
      const own = rowOf(i, j);
      const width = byteLength(input.dtype, hidden);
      if (own >= 0 && !force) {
        outs[i].set(rowBytes(i, own), j * width);
        return;
      }
      chosen ??= defaultRow(j, token);
      if ('from' in chosen && inputs[chosen.from[0]].dtype === input.dtype) {
        outs[i].set(rowBytes(chosen.from[0], chosen.from[1]), j * width);
      } else {
        const values = 'from' in chosen ? rowValues(chosen.from[0], chosen.from[1]) : chosen.values;
        outs[i].set(encodeFloats(values, input.dtype), j * width);
      }
    });
  }
  return outs;
}

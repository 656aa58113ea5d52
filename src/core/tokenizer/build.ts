/**
 * The output vocabulary of a merge with tokenizer merging (mergekit's `build_tokenizer`), from the
 * inputs' tokenizer.json files:
 * - `base`: the base's tokenizer, without the tokens whose id has no embedding row;
 * - `union`: the base's tokenizer plus, in model order (base first) and id order, every token of the
 *   other models it lacks: vocabulary tokens as plain added tokens, added tokens with their flags;
 * - a model: that model's tokenizer, as it is;
 * then the recipe's `tokenizer.tokens` that are still missing, as plain added tokens. New tokens get
 * the ids after the last one. For each model, a permutation gives the model's id of each output
 * token (−1 when the model lacks it, or its id has no row in the model's embedding).
 */
import { TokenizerFileError, tokensById, type AddedToken, type TokenizerVocab } from './vocab.ts';

export interface TokenizerInput {
  ref: string;
  /** The model's tokenizer; null when it has no tokenizer.json (then it counts as the base's, as in mergekit). */
  vocab: TokenizerVocab | null;
  /** Rows of its embedding (config vocab_size): tokens with an id at or above do not count. */
  rows: number;
  /** For messages: where the tokenizer came from. */
  file: string;
}

export interface BuildTokenizerOptions {
  /** The base model (the recipe's base_model, else the first model). */
  base: string;
  /** Every model that takes part, the base included. */
  inputs: readonly TokenizerInput[];
  /** 'base', 'union', or a model of `inputs`. */
  source: string;
  /** Tokens the output must have (the recipe's tokenizer.tokens). */
  addTokens: readonly string[];
  padToMultipleOf?: number;
}

export interface BuiltTokenizer {
  /** The output tokenizer.json. */
  json: Record<string, unknown>;
  /** Output tokens by id (undefined for an id no token has). */
  tokens: (string | undefined)[];
  /** Embedding rows of the output: the vocabulary size, padded to pad_to_multiple_of. */
  rows: number;
  /** Added tokens the output has beyond those of the tokenizer it started from. */
  newAddedTokens: AddedToken[];
  /** Per model: output id → the model's id, −1 where it lacks the token. */
  permutations: Map<string, Int32Array>;
  /** The model whose tokenizer files the output starts from. */
  from: string;
  /** Each model's own token → id map (ids with a row only), for sources that name a token. */
  vocabs: Map<string, Map<string, number>>;
}

export function buildTokenizer(opts: BuildTokenizerOptions): BuiltTokenizer {
  const byRef = new Map(opts.inputs.map((i) => [i.ref, i]));
  const base = byRef.get(opts.base);
  if (!base) throw new Error(`buildTokenizer: the base ${opts.base} is not among the inputs`);
  if (!base.vocab) throw new TokenizerFileError(`${base.file}`, 'the base model has no tokenizer.json: tokenizer merging starts from it');
  const usable = (input: TokenizerInput): Map<string, number> => {
    const vocab = input.vocab ?? base.vocab!;
    return new Map([...vocab.ids].filter(([, id]) => id < input.rows));
  };
  const vocabs = new Map(opts.inputs.map((i) => [i.ref, usable(i)]));

  let json: Record<string, unknown>;
  let ids: Map<string, number>;
  let from: string;
  const newAddedTokens: AddedToken[] = [];
  if (opts.source === 'base' || opts.source === 'union') {
    json = strippedJson(base.vocab, base.rows, base.file);
    ids = vocabs.get(opts.base)!;
    from = opts.base;
  } else {
    const source = byRef.get(opts.source);
    if (!source) throw new Error(`tokenizer source ${JSON.stringify(opts.source)} is not one of the merge's models`);
    if (!source.vocab) throw new TokenizerFileError(source.file, 'the tokenizer source has no tokenizer.json');
    json = structuredClone(source.vocab.json);
    ids = new Map(source.vocab.ids);
    from = opts.source;
  }
  let nextId = 0;
  for (const id of ids.values()) if (id >= nextId) nextId = id + 1;
  const add = (token: AddedToken) => {
    if (ids.has(token.content)) return;
    const entry = { ...token, id: nextId++ };
    ids.set(entry.content, entry.id);
    newAddedTokens.push(entry);
  };
  const plain = (content: string): AddedToken => ({ id: -1, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: false });

  if (opts.source === 'union') {
    const vocabTokens: string[] = [];
    const seen = new Set<string>();
    const added = new Map<string, AddedToken>();
    const order = [base, ...opts.inputs.filter((i) => i.ref !== opts.base)];
    for (const input of order) {
      if (!input.vocab) continue;
      const sorted = [...input.vocab.ids].filter(([, id]) => id < input.rows).sort((a, b) => a[1] - b[1]);
      for (const [token] of sorted) {
        if (input.vocab.added.has(token) || seen.has(token)) continue;
        seen.add(token);
        vocabTokens.push(token);
      }
      for (const info of [...input.vocab.added.values()].sort((a, b) => a.id - b.id)) {
        if (info.id < input.rows && !added.has(info.content)) added.set(info.content, info);
      }
    }
    for (const token of vocabTokens) if (!added.has(token)) add(plain(token));
    for (const info of added.values()) add(info);
  }
  for (const token of opts.addTokens) add(plain(token));

  if (newAddedTokens.length > 0) {
    const list = Array.isArray(json.added_tokens) ? [...(json.added_tokens as unknown[])] : [];
    json.added_tokens = [...list, ...newAddedTokens];
  }
  const size = nextId;
  const pad = opts.padToMultipleOf ?? 1;
  const rows = Math.ceil(size / pad) * pad;
  const tokens = tokensById(ids, size);
  const permutations = new Map<string, Int32Array>();
  for (const input of opts.inputs) {
    const own = vocabs.get(input.ref)!;
    permutations.set(input.ref, Int32Array.from(tokens, (t) => (t !== undefined && own.has(t) ? own.get(t)! : -1)));
  }
  return { json, tokens, rows, newAddedTokens, permutations, from, vocabs };
}

/**
 * The tokenizer.json without the tokens whose id is `rows` or more (tokens without an embedding row,
 * as mergekit's stripped base tokenizer). Only BPE vocabularies can lose tokens this way.
 */
function strippedJson(vocab: TokenizerVocab, rows: number, file: string): Record<string, unknown> {
  const json = structuredClone(vocab.json);
  const unused = new Set([...vocab.ids].filter(([, id]) => id >= rows).map(([t]) => t));
  if (unused.size === 0) return json;
  if (vocab.modelType !== 'BPE') {
    throw new TokenizerFileError(file, `has ${unused.size} tokens beyond the model's ${rows} embedding rows, and only a BPE vocabulary can drop them (this one is ${vocab.modelType})`);
  }
  const model = json.model as Record<string, unknown>;
  model.vocab = Object.fromEntries(Object.entries(model.vocab as Record<string, number>).filter(([t]) => !unused.has(t)));
  if (Array.isArray(model.merges)) {
    model.merges = (model.merges as (string | string[])[]).filter((m) => !(typeof m === 'string' ? m.split(' ') : m).some((t) => unused.has(t)));
  }
  if (Array.isArray(json.added_tokens)) json.added_tokens = (json.added_tokens as AddedToken[]).filter((t) => t.id < rows);
  return json;
}

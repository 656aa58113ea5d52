/**
 * The vocabulary of a Hugging Face `tokenizer.json`, read directly from its JSON: the model's
 * vocabulary (`model.vocab`: a token → id map for BPE, WordPiece and WordLevel, a list of
 * [piece, score] whose index is the id for Unigram) and the added tokens (`added_tokens`). This is
 * what transformers' `get_vocab()` returns, without loading a tokenizer library.
 */

/** One entry of `added_tokens` (and of tokenizer_config.json's `added_tokens_decoder`). */
export interface AddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

export interface TokenizerVocab {
  /** Every token → its id (model vocabulary, then added tokens, which win on a clash). */
  ids: Map<string, number>;
  /** Added tokens by content. */
  added: Map<string, AddedToken>;
  /** `model.type` (BPE, Unigram, WordPiece, WordLevel). */
  modelType: string;
  /** The parsed tokenizer.json. */
  json: Record<string, unknown>;
}

export class TokenizerFileError extends Error {
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = 'TokenizerFileError';
  }
}

export function readTokenizerJson(text: string, file: string): TokenizerVocab {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TokenizerFileError(file, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new TokenizerFileError(file, 'is not a tokenizer.json object');
  const root = json as Record<string, unknown>;
  const model = root.model as Record<string, unknown> | undefined;
  if (typeof model !== 'object' || model === null) throw new TokenizerFileError(file, 'has no "model" section');
  const modelType = typeof model.type === 'string' ? model.type : 'BPE';
  const ids = new Map<string, number>();
  for (const [token, id] of modelVocabEntries(model, file)) ids.set(token, id);
  const added = new Map<string, AddedToken>();
  const list = root.added_tokens ?? [];
  if (!Array.isArray(list)) throw new TokenizerFileError(file, '"added_tokens" is not a list');
  for (const [i, raw] of list.entries()) {
    const t = raw as Partial<AddedToken>;
    if (typeof t?.content !== 'string' || !Number.isInteger(t.id) || (t.id as number) < 0) {
      throw new TokenizerFileError(file, `added_tokens[${i}] needs a string "content" and a non-negative integer "id"`);
    }
    const token: AddedToken = {
      id: t.id as number,
      content: t.content,
      single_word: t.single_word ?? false,
      lstrip: t.lstrip ?? false,
      rstrip: t.rstrip ?? false,
      normalized: t.normalized ?? !t.special,
      special: t.special ?? false,
    };
    added.set(token.content, token);
    ids.set(token.content, token.id);
  }
  return { ids, added, modelType, json: root };
}

/** (token, id) pairs of `model.vocab`. */
function modelVocabEntries(model: Record<string, unknown>, file: string): [string, number][] {
  const vocab = model.vocab;
  if (Array.isArray(vocab)) {
    // Unigram: [[piece, score], ...], the id is the index.
    return vocab.map((entry, i) => {
      if (!Array.isArray(entry) || typeof entry[0] !== 'string') throw new TokenizerFileError(file, `model.vocab[${i}] is not a [piece, score] pair`);
      return [entry[0] as string, i];
    });
  }
  if (typeof vocab === 'object' && vocab !== null) {
    return Object.entries(vocab as Record<string, unknown>).map(([token, id]) => {
      if (!Number.isInteger(id) || (id as number) < 0) throw new TokenizerFileError(file, `model.vocab["${token}"] is not a token id`);
      return [token, id as number];
    });
  }
  throw new TokenizerFileError(file, 'has no model.vocab');
}

/** The tokens by id (undefined where no token has an id). */
export function tokensById(ids: ReadonlyMap<string, number>, size: number): (string | undefined)[] {
  const out: (string | undefined)[] = new Array(size).fill(undefined);
  for (const [token, id] of ids) if (id < size) out[id] = token;
  return out;
}

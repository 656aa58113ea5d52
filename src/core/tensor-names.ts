/**
 * What a tensor is, from its Hugging Face name: the rules the engine and the methods share.
 * Names are matched on whole dot-separated parts (`model.embed_tokens.weight`, `lm_head.weight`).
 */

/**
 * Vocabulary tables: input embeddings and LM heads (one row per token). The engine cuts them to
 * the reference model's rows when vocabularies differ, and the subspace methods (TSV, Iso-C,
 * Iso-CTS) merge them like 1-D tensors (METHODS.md "Methods from the papers").
 */
const EMBEDDING_NAME = /(^|\.)(embed_tokens|lm_head|wte|embed_in|embed_out)(\.|$)/;

/** Input embeddings only (token → vector tables; no LM head). */
const INPUT_EMBEDDING_NAME = /(^|\.)(embed_tokens|wte|embed_in)(\.|$)/;

export function isEmbeddingName(name: string): boolean {
  return EMBEDDING_NAME.test(name);
}

/** An input-embedding table (`embed_tokens`, `wte`, `embed_in`): WIDEN transposes it so a column is a token. */
export function isInputEmbeddingName(name: string): boolean {
  return INPUT_EMBEDDING_NAME.test(name);
}

/** A weight matrix for the subspace methods: a 2-D tensor that is not a vocabulary table. */
export function isMatrixTensor(name: string, shape: readonly number[]): boolean {
  return shape.length === 2 && !isEmbeddingName(name);
}

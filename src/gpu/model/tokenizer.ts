/**
 * The model's own tokenizer: tokenizer.json (+ tokenizer_config.json) from its folder, run by
 * @huggingface/tokenizers (pure JS, same in Node and the browser).
 */
import { Tokenizer } from '@huggingface/tokenizers';
import type { FileTree } from '../../core/source.ts';

export class TokenizerError extends Error {
  constructor(where: string, reason: string) {
    super(`${where}: ${reason}`);
    this.name = 'TokenizerError';
  }
}

export interface TextTokenizer {
  /** Token ids of `text`; with special tokens, as the tokenizer's post-processor adds them (e.g. BOS). */
  encode(text: string, opts?: { specialTokens?: boolean }): number[];
  decode(ids: readonly number[]): string;
  /** The end-of-sequence id from tokenizer_config.json's eos_token, if it names one. */
  readonly eosId: number | null;
  readonly bosId: number | null;
}

const MAX_TOKENIZER_BYTES = 100_000_000;

async function readJson(tree: FileTree, path: string, signal?: AbortSignal): Promise<Record<string, unknown> | null> {
  const src = await tree.open(path, signal);
  if (!src) return null;
  if (src.size > MAX_TOKENIZER_BYTES) throw new TokenizerError(`${tree.name}/${path}`, `${src.size} bytes is larger than a tokenizer file should be`);
  const text = new TextDecoder().decode(await src.read(0, src.size, signal));
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new TokenizerError(`${tree.name}/${path}`, `not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
}

/** A special token of tokenizer_config.json (a string, or an AddedToken object with `content`). */
function tokenName(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

export async function loadTokenizer(tree: FileTree, signal?: AbortSignal): Promise<TextTokenizer> {
  const json = await readJson(tree, 'tokenizer.json', signal);
  if (!json) throw new TokenizerError(tree.name, 'has no tokenizer.json (scoring text needs the model\'s own tokenizer)');
  const config = (await readJson(tree, 'tokenizer_config.json', signal)) ?? {};
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(json, config);
  } catch (err) {
    throw new TokenizerError(`${tree.name}/tokenizer.json`, `cannot be loaded: ${err instanceof Error ? err.message : String(err)}`);
  }
  const idOf = (key: string): number | null => {
    const name = tokenName(config[key]);
    return name === null ? null : (tok.token_to_id(name) ?? null);
  };
  return {
    encode: (text, opts = {}) => tok.encode(text, { add_special_tokens: opts.specialTokens ?? true }).ids,
    decode: (ids) => (ids.length === 0 ? '' : tok.decode([...ids], { skip_special_tokens: true })),
    eosId: idOf('eos_token'),
    bosId: idOf('bos_token'),
  };
}

/**
 * The recipe's tokenizer keys, as mergekit reads them: `tokenizer_source` (base | union | a model),
 * the newer `tokenizer:` block (`source`, `tokens` with per-token `source` and `force`,
 * `pad_to_multiple_of`), and `chat_template` (auto | a built-in name | a Jinja template).
 */
import type { RecipeKey } from './errors.ts';
import { checkKeys, isMapping, modelRefFromRaw, type Fail } from './raw.ts';
import type { TokenEmbeddingConfig, TokenEmbeddingSource, TokenizerConfig } from './types.ts';
import { show } from './validate.ts';

export function tokenizerSourceFromRaw(raw: unknown, keys: RecipeKey[], fail: Fail): string {
  if (typeof raw !== 'string' || raw.trim() === '') fail(keys, `${show(raw)} must be "base", "union" or a model (local path or Hub repo id)`);
  return raw as string;
}

export function tokenizerConfigFromRaw(raw: unknown, fail: Fail): TokenizerConfig {
  const keys = ['tokenizer'];
  if (!isMapping(raw)) fail(keys, `${show(raw)} must be a mapping {source, tokens, pad_to_multiple_of}`);
  const m = raw as Record<string, unknown>;
  checkKeys(m, ['source', 'tokens', 'pad_to_multiple_of'], keys, fail, ' in tokenizer');
  const config: TokenizerConfig = {
    source: m.source === undefined || m.source === null ? 'union' : tokenizerSourceFromRaw(m.source, [...keys, 'source'], fail),
  };
  if (m.tokens !== undefined && m.tokens !== null) {
    if (!isMapping(m.tokens)) fail([...keys, 'tokens'], `${show(m.tokens)} must be a mapping of token strings to {source, force}`);
    config.tokens = {};
    for (const [token, entry] of Object.entries(m.tokens as Record<string, unknown>)) {
      config.tokens[token] = tokenEntryFromRaw(entry, [...keys, 'tokens', token], fail);
    }
  }
  if (m.pad_to_multiple_of !== undefined && m.pad_to_multiple_of !== null) {
    const pad = m.pad_to_multiple_of;
    if (typeof pad !== 'number' || !Number.isInteger(pad) || pad < 1) fail([...keys, 'pad_to_multiple_of'], `${show(pad)} must be a positive integer`);
    config.padToMultipleOf = pad as number;
  }
  return config;
}

function tokenEntryFromRaw(raw: unknown, keys: RecipeKey[], fail: Fail): TokenEmbeddingConfig {
  // A token listed with no settings is added, with the default embedding.
  if (raw === null || raw === undefined) return {};
  if (!isMapping(raw)) fail(keys, `${show(raw)} must be a mapping {source, force}`);
  const m = raw as Record<string, unknown>;
  checkKeys(m, ['source', 'force'], keys, fail, ' in a token entry');
  const out: TokenEmbeddingConfig = {};
  if (m.source !== undefined && m.source !== null) out.source = tokenSourceFromRaw(m.source, [...keys, 'source'], fail);
  if (m.force !== undefined && m.force !== null) {
    if (typeof m.force !== 'boolean') fail([...keys, 'force'], `${show(m.force)} must be true or false`);
    out.force = m.force as boolean;
  }
  return out;
}

function tokenSourceFromRaw(raw: unknown, keys: RecipeKey[], fail: Fail): TokenEmbeddingSource {
  if (typeof raw === 'string') return { kind: 'model', model: modelRefFromRaw(raw, keys, fail) };
  if (!isMapping(raw)) fail(keys, `${show(raw)} must be a model, {kind: zero}, or {kind: model_token, model, token | token_id}`);
  const m = raw as Record<string, unknown>;
  if (m.kind === 'zero') {
    checkKeys(m, ['kind'], keys, fail, ' in a zero source');
    return { kind: 'zero' };
  }
  if (m.kind !== 'model_token') fail([...keys, 'kind'], `${show(m.kind)} must be "zero" or "model_token"`);
  checkKeys(m, ['kind', 'model', 'token', 'token_id'], keys, fail, ' in a model_token source');
  const model = modelRefFromRaw(m.model, [...keys, 'model'], fail);
  const hasToken = m.token !== undefined && m.token !== null;
  const hasId = m.token_id !== undefined && m.token_id !== null;
  if (hasToken === hasId) fail(keys, 'give exactly one of token (a token string) and token_id (an id in that model)');
  if (hasToken) {
    if (typeof m.token !== 'string') fail([...keys, 'token'], `${show(m.token)} must be a token string`);
    return { kind: 'model_token', model, token: m.token as string };
  }
  if (typeof m.token_id !== 'number' || !Number.isInteger(m.token_id) || m.token_id < 0) fail([...keys, 'token_id'], `${show(m.token_id)} must be a non-negative integer`);
  return { kind: 'model_token', model, tokenId: m.token_id as number };
}

export function chatTemplateFromRaw(raw: unknown, fail: Fail): string {
  if (typeof raw !== 'string' || raw.trim() === '') fail(['chat_template'], `${show(raw)} must be "auto", a built-in template name, or a Jinja template`);
  return raw as string;
}

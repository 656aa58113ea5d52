/**
 * Tokenizer merging and chat templates for a merge (mergekit's `tokenizer_source`, `tokenizer:` and
 * `chat_template`): reads the inputs' tokenizer files, builds the output vocabulary
 * (src/core/tokenizer/build.ts), makes every embedding/LM-head tensor of the plan gather its rows
 * per token (src/core/tokenizer/embeddings.ts), and gives the tokenizer files and config changes the
 * output gets. Without any of these keys the reference's tokenizer files are copied as they are.
 */
import { isFloatDType, type FloatDType } from '../../core/dtype.ts';
import type { Recipe, TokenEmbeddingConfig } from '../../core/recipe/types.ts';
import type { ModelSource, TensorInfo } from '../../core/source.ts';
import { isEmbeddingName } from '../../core/tensor-names.ts';
import { buildTokenizer, type BuiltTokenizer, type TokenizerInput } from '../../core/tokenizer/build.ts';
import { resolveChatTemplate } from '../../core/tokenizer/chat-templates.ts';
import { gatherEmbeddings } from '../../core/tokenizer/embeddings.ts';
import { readTokenizerJson, TokenizerFileError, type AddedToken } from '../../core/tokenizer/vocab.ts';

/** How one embedding tensor's inputs are regathered per output token. */
export interface VocabGather {
  built: BuiltTokenizer;
  /** The recipe reference of each input model. */
  refs: ReadonlyMap<ModelSource, string>;
  base?: string;
  tokens?: Readonly<Record<string, TokenEmbeddingConfig>>;
}

export interface TokenizerPlan {
  /** Files written instead of the reference's (tokenizer.json, tokenizer_config.json, ...). */
  files: Map<string, Uint8Array>;
  /** The reference's tokenizer files not to copy (replaced, or stale for a new vocabulary). */
  skip: Set<string>;
  /** The output's vocabulary size (config.json `vocab_size`), when the vocabulary is rebuilt. */
  vocabSize?: number;
  notes: string[];
}

/** The plan's parts this module reads and updates (engine.ts MergePlan satisfies it). */
export interface PlanWithTensors {
  reference: ModelSource;
  base: ModelSource | undefined;
  models: ModelSource[];
  tensors: { name: string; shape: number[]; merged: boolean; rows?: number; vocab?: VocabGather }[];
}

/** Whether the recipe rebuilds the vocabulary (then embeddings are gathered per token, not cut). */
export function mergesTokenizer(recipe: Recipe): boolean {
  return (recipe.tokenizer?.source ?? recipe.tokenizerSource) !== undefined;
}

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];
/** Slow-tokenizer files that no longer match a rebuilt tokenizer.json. */
const STALE_FILES = ['tokenizer.model', 'vocab.json', 'merges.txt', 'added_tokens.json'];

/**
 * Plans the tokenizer side of a merge; undefined when the recipe has no tokenizer keys. Sets the
 * shape and `vocab` of each embedding tensor of `plan` when the vocabulary is rebuilt.
 */
export async function planTokenizer(
  recipe: Recipe,
  plan: PlanWithTensors,
  sources: ReadonlyMap<string, ModelSource>,
  signal?: AbortSignal,
): Promise<TokenizerPlan | undefined> {
  const source = recipe.tokenizer?.source ?? recipe.tokenizerSource;
  if (source === undefined && recipe.chatTemplate === undefined) return undefined;
  const inputs = [...new Set([...(plan.base ? [plan.base] : []), ...plan.models])];
  const refOf = new Map<ModelSource, string>();
  for (const [ref, m] of sources) if (inputs.includes(m) && !refOf.has(m)) refOf.set(m, ref);
  const out: TokenizerPlan = { files: new Map(), skip: new Set(), notes: [] };
  const enc = new TextEncoder();
  let from = plan.reference;
  let newAdded: AddedToken[] = [];

  if (source !== undefined) {
    const baseRef = recipe.baseModel ?? refOf.get(inputs[0])!;
    const tokenizerInputs: TokenizerInput[] = [];
    for (const m of inputs) {
      const file = `${m.id}/tokenizer.json`;
      const text = await readText(m, 'tokenizer.json', signal);
      if (text === undefined) out.notes.push(`${m.id} has no tokenizer.json: its tokens are taken to be the base's (as mergekit does)`);
      tokenizerInputs.push({ ref: refOf.get(m)!, vocab: text === undefined ? null : readTokenizerJson(text, file), rows: embeddingRows(m), file });
    }
    const built = buildTokenizer({
      base: baseRef,
      inputs: tokenizerInputs,
      source,
      addTokens: Object.keys(recipe.tokenizer?.tokens ?? {}),
      padToMultipleOf: recipe.tokenizer?.padToMultipleOf,
    });
    from = sources.get(built.from)!;
    newAdded = built.newAddedTokens;
    const gather: VocabGather = { built, refs: refOf, base: refOf.has(sources.get(baseRef)!) ? baseRef : undefined, tokens: recipe.tokenizer?.tokens };
    for (const t of plan.tensors) {
      if (!t.merged || !isEmbeddingName(t.name) || t.shape.length !== 2) continue;
      t.shape = [built.rows, t.shape[1]];
      delete t.rows;
      t.vocab = gather;
    }
    out.files.set('tokenizer.json', enc.encode(JSON.stringify(built.json, null, 2) + '\n'));
    out.vocabSize = built.rows;
    for (const f of [...TOKENIZER_FILES, ...STALE_FILES]) out.skip.add(f);
    const special = await readText(from, 'special_tokens_map.json', signal);
    if (special !== undefined) out.files.set('special_tokens_map.json', enc.encode(special));
    if (newAdded.length > 0) out.notes.push(`the output vocabulary has ${built.rows} entries: ${newAdded.length} tokens added to ${from.id}'s`);
  }

  // tokenizer_config.json: the added tokens and the chat template.
  const configText = await readText(from, 'tokenizer_config.json', signal);
  const config = configText === undefined ? {} : parseJsonObject(configText, `${from.id}/tokenizer_config.json`);
  let changed = source !== undefined;
  if (newAdded.length > 0) {
    const decoder = { ...((config.added_tokens_decoder as Record<string, unknown> | undefined) ?? {}) };
    for (const t of newAdded) {
      decoder[String(t.id)] = { content: t.content, lstrip: t.lstrip, normalized: t.normalized, rstrip: t.rstrip, single_word: t.single_word, special: t.special };
    }
    config.added_tokens_decoder = decoder;
  }
  if (recipe.chatTemplate !== undefined) {
    const templates = await Promise.all(inputs.map((m) => chatTemplateOf(m, signal)));
    const template = resolveChatTemplate(recipe.chatTemplate, templates);
    if (template === undefined) out.notes.push('chat_template: auto found no chat template in the input models; none is set');
    else {
      config.chat_template = template;
      changed = true;
    }
  }
  if (changed && (configText !== undefined || Object.keys(config).length > 0)) {
    out.files.set('tokenizer_config.json', enc.encode(JSON.stringify(config, null, 2) + '\n'));
    out.skip.add('tokenizer_config.json');
  }
  return out;
}

/** Each model's embedding tables regathered for the output vocabulary. */
export function gatherVocab(
  gather: VocabGather,
  tensor: string,
  raw: ReadonlyMap<ModelSource, Uint8Array>,
  infoOf: (m: ModelSource) => TensorInfo,
): Map<ModelSource, Uint8Array> {
  const models = [...raw.keys()];
  const inputs = models.map((m) => {
    const info = infoOf(m);
    if (!isFloatDType(info.dtype)) throw new Error(`tensor ${tensor}: ${m.id} stores ${info.dtype}, not a float`);
    return { ref: gather.refs.get(m)!, bytes: raw.get(m)!, dtype: info.dtype as FloatDType, shape: info.shape };
  });
  const base = gather.base !== undefined && inputs.some((i) => i.ref === gather.base) ? gather.base : undefined;
  const tables = gatherEmbeddings(inputs, gather.built, { base, tokens: gather.tokens, tensor });
  return new Map(models.map((m, i) => [m, tables[i]]));
}

/** Rows of a model's embedding: config.json vocab_size, else the input embedding's first dimension. */
function embeddingRows(m: ModelSource): number {
  const v = m.config?.vocab_size ?? (m.config?.text_config as Record<string, unknown> | undefined)?.vocab_size;
  if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  for (const info of m.tensors.values()) if (isEmbeddingName(info.name)) return info.shape[0];
  return Number.MAX_SAFE_INTEGER;
}

async function readText(m: ModelSource, path: string, signal?: AbortSignal): Promise<string | undefined> {
  const file = await m.tree.open(path, signal);
  if (!file) return undefined;
  return new TextDecoder().decode(await file.read(0, file.size, signal));
}

/** A model's chat template: tokenizer_config.json's `chat_template` (its "default" when a list), else chat_template.jinja. */
async function chatTemplateOf(m: ModelSource, signal?: AbortSignal): Promise<string | undefined> {
  const text = await readText(m, 'tokenizer_config.json', signal);
  if (text !== undefined) {
    const t = parseJsonObject(text, `${m.id}/tokenizer_config.json`).chat_template;
    if (typeof t === 'string') return t;
    if (Array.isArray(t)) {
      const d = (t as { name?: string; template?: string }[]).find((x) => x.name === 'default');
      if (typeof d?.template === 'string') return d.template;
    }
  }
  return readText(m, 'chat_template.jinja', signal);
}

function parseJsonObject(text: string, file: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new TokenizerFileError(file, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TokenizerFileError(file, 'is not a JSON object');
  return v as Record<string, unknown>;
}

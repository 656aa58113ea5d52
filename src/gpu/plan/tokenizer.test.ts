/**
 * Tokenizer merging end to end on tiny in-memory models: a base (20 tokens), an instruct model
 * with added special tokens and a new word (24 embedding rows, one of them padding), and a chat
 * model with other added tokens. The output vocabulary, tokenizer files and config are checked,
 * and every row of every model's regathered embedding is checked against the rule (own row, the
 * recipe's source, the only model that has it, the base's, the mean, zeros) by merging with a
 * one-hot linear weight, which writes that model's regathered table unchanged.
 */
import { describe, expect, it } from 'vitest';
import { decodeFloats, encodeFloats } from '../../core/dtype.ts';
import { parseRecipe } from '../../core/recipe/parse.ts';
import { encodeSafetensorsHeader } from '../../core/safetensors/header.ts';
import { openModel } from '../../core/safetensors/model.ts';
import type { ModelSource } from '../../core/source.ts';
import { memoryFileTree, MemoryOutputFolder } from '../../core/sources/memory.ts';
import { llamaTensors, type LlamaShape } from '../../core/sources/procedural.ts';
import { readSafetensorsBytes, tensorValues } from '../../../tests/helpers/safetensors-file.ts';
import { seeded } from '../../../tests/helpers/seeded.ts';
import { CpuBackend } from '../cpu-backend.ts';
import { runMerge } from '../engine.ts';
import { methodLookup } from '../methods/index.ts';

const HIDDEN = 8;
const WORDS = Array.from({ length: 18 }, (_, i) => `w${i}`);
const BASE_VOCAB = ['<s>', '</s>', ...WORDS]; // ids 0..19

interface ModelSpec {
  name: string;
  /** Tokens after the base's 20, in id order: [token, special?]. */
  extra: [string, boolean][];
  /** Embedding rows (≥ 20 + extra: the rest is padding). */
  rows: number;
  template?: string;
  /** Base tokens this model's tokenizer lacks (their ids stay unused). */
  missing?: string[];
}

/** A tokenizer.json (BPE, no merges) whose base tokens are model vocabulary and whose extras are added tokens or words. */
function tokenizerJson(spec: ModelSpec): string {
  const vocab: Record<string, number> = Object.fromEntries(BASE_VOCAB.map((t, i) => [t, i]).filter(([t]) => !spec.missing?.includes(t as string)));
  const added = [
    { id: 0, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    { id: 1, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
  ];
  spec.extra.forEach(([token, special], k) => {
    const id = BASE_VOCAB.length + k;
    if (special) added.push({ id, content: token, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    else vocab[token] = id;
  });
  return JSON.stringify({ version: '1.0', added_tokens: added, model: { type: 'BPE', vocab, merges: [] } });
}

/** Row r of model m's embedding: distinct values per model, row and table. */
function rowValue(model: number, table: number, r: number, k: number): number {
  return Math.fround(model * 100 + table * 1000 + r + k / 16);
}

async function makeModel(spec: ModelSpec, index: number): Promise<ModelSource> {
  const shape: LlamaShape = { hidden: HIDDEN, intermediate: 12, layers: 1, vocab: spec.rows, heads: 2, kvHeads: 2 };
  const tensors = llamaTensors(shape);
  const rng = seeded(7 + index);
  const datas = tensors.map((t) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    const table = t.name === 'lm_head.weight' ? 1 : t.name === 'model.embed_tokens.weight' ? 0 : -1;
    for (let i = 0; i < n; i++) v[i] = table >= 0 ? rowValue(index, table, Math.floor(i / HIDDEN), i % HIDDEN) : rng() - 0.5;
    return encodeFloats(v, 'F32');
  });
  const header = encodeSafetensorsHeader(tensors.map((t, i) => ({ name: t.name, dtype: 'F32', shape: t.shape, byteLength: datas[i].byteLength })), { format: 'pt' });
  const file = new Uint8Array(header.byteLength + datas.reduce((s, d) => s + d.byteLength, 0));
  file.set(header);
  let at = header.byteLength;
  for (const d of datas) {
    file.set(d, at);
    at += d.byteLength;
  }
  const enc = (s: string) => new TextEncoder().encode(s);
  const config = { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: HIDDEN, num_hidden_layers: 1, vocab_size: spec.rows, torch_dtype: 'float32' };
  const tokenizerConfig: Record<string, unknown> = { model_max_length: 128, bos_token: '<s>', eos_token: '</s>' };
  if (spec.template) tokenizerConfig.chat_template = spec.template;
  const tree = memoryFileTree(spec.name, {
    'model.safetensors': file,
    'config.json': enc(JSON.stringify(config)),
    'tokenizer.json': enc(tokenizerJson(spec)),
    'tokenizer_config.json': enc(JSON.stringify(tokenizerConfig)),
    'special_tokens_map.json': enc(JSON.stringify({ bos_token: '<s>', eos_token: '</s>', from: spec.name })),
  });
  return openModel(tree, { id: spec.name });
}

const SPECS: ModelSpec[] = [
  { name: 'base', extra: [], rows: 20, template: '{{ "chat-b" }}{% for m in messages %}{{ m.content }}{% endfor %}' },
  { name: 'instruct', extra: [['<|im_start|>', true], ['<|im_end|>', true], ['zz', false]], rows: 24, template: '{{ "chat-a" }}{% for m in messages %}{{ m.content }}{% endfor %}' },
  { name: 'chat', extra: [['<|im_start|>', true], ['<pad>', true]], rows: 22, missing: ['w17'], template: '{{ "chat-a" }}{% for m in messages %}{{ m.content }}{% endfor %}' },
];

async function merge(yaml: string) {
  const sources = new Map<string, ModelSource>();
  for (const [i, spec] of SPECS.entries()) sources.set(spec.name, await makeModel(spec, i + 1));
  const recipe = parseRecipe(yaml, methodLookup);
  const out = new MemoryOutputFolder();
  await runMerge({ recipe, sources, backend: new CpuBackend(), output: out });
  const text = (f: string) => new TextDecoder().decode(out.files.get(f)!);
  return { out, text, tensors: readSafetensorsBytes(out.files.get('model.safetensors')!) };
}

/** A linear merge that writes model `who`'s regathered tables (weight 1 for it, 0 for the others). */
const oneHot = (who: string, extra = '') =>
  `models:\n${SPECS.map((s) => `  - model: ${s.name}\n    parameters: {weight: ${s.name === who ? 1 : 0}}\n`).join('')}merge_method: linear\nbase_model: base\n${extra}`;

/** Output row r of a [rows, HIDDEN] table. */
const row = (values: Float32Array, r: number) => Array.from(values.subarray(r * HIDDEN, (r + 1) * HIDDEN));
const modelRow = (model: number, table: number, r: number) => Array.from({ length: HIDDEN }, (_, k) => rowValue(model, table, r, k));

describe('tokenizer_source: union', () => {
  it('builds the union vocabulary: the base, then the new words and added tokens in model order', async () => {
    const { text } = await merge(oneHot('base', 'tokenizer_source: union\n'));
    const json = JSON.parse(text('tokenizer.json')) as { added_tokens: { id: number; content: string; special: boolean }[]; model: { vocab: Record<string, number> } };
    const added = json.added_tokens.map((t) => [t.id, t.content, t.special]);
    // zz is a word of instruct: added as a plain token first; then the special tokens in order.
    expect(added).toEqual([
      [0, '<s>', true],
      [1, '</s>', true],
      [20, 'zz', false],
      [21, '<|im_start|>', true],
      [22, '<|im_end|>', true],
      [23, '<pad>', true],
    ]);
    expect(json.model.vocab).toEqual(Object.fromEntries(BASE_VOCAB.map((t, i) => [t, i])));
    const config = JSON.parse(text('config.json')) as { vocab_size: number };
    expect(config.vocab_size).toBe(24);
    const tokConfig = JSON.parse(text('tokenizer_config.json')) as { added_tokens_decoder: Record<string, { content: string; special: boolean }>; bos_token: string };
    expect(tokConfig.added_tokens_decoder['22']).toEqual({ content: '<|im_end|>', lstrip: false, normalized: false, rstrip: false, single_word: false, special: true });
    expect(tokConfig.added_tokens_decoder['20'].special).toBe(false);
    expect(tokConfig.bos_token).toBe('<s>');
    expect(JSON.parse(text('special_tokens_map.json')).from).toBe('base');
  });

  it.each([
    ['base', 1],
    ['instruct', 2],
    ['chat', 3],
  ])("writes %s's regathered tables: own rows, else the only model with the token, the base's, or the mean", async (who, index) => {
    const { tensors } = await merge(oneHot(who, 'tokenizer_source: union\n'));
    for (const [table, name] of [[0, 'model.embed_tokens.weight'], [1, 'lm_head.weight']] as const) {
      const t = tensors.get(name)!;
      expect(t.shape).toEqual([24, HIDDEN]);
      const v = tensorValues(t);
      // Every model has the base's tokens at the same ids: its own rows.
      for (let r = 0; r < 19; r++) expect(row(v, r), `${who} ${name} row ${r}`).toEqual(modelRow(index, table, r));
      // w17 (19): chat lacks it; base and instruct have it: the base's row for chat (not their mean).
      expect(row(v, 19)).toEqual(who === 'chat' ? modelRow(1, table, 19) : modelRow(index, table, 19));
      // zz (output 20) and <|im_end|> (22) only in instruct (its ids 22 and 21): instruct's rows for everyone.
      expect(row(v, 20)).toEqual(modelRow(2, table, 22));
      expect(row(v, 22)).toEqual(modelRow(2, table, 21));
      // <pad> (23) only in chat (its id 21).
      expect(row(v, 23)).toEqual(modelRow(3, table, 21));
      // <|im_start|> (21): instruct and chat have it (both id 20); the base does not: their mean.
      const mean = modelRow(2, table, 20).map((a, k) => Math.fround((a + modelRow(3, table, 20)[k]) / 2));
      expect(row(v, 21)).toEqual(who === 'base' ? mean : modelRow(index, table, 20));
    }
  });

  it("follows the recipe's token sources: zeros, a named token of a model, forced even where a model has the token", async () => {
    const tokens =
      'tokenizer:\n  source: union\n  tokens:\n    <|im_start|>:\n      source: {kind: zero}\n    <|im_end|>:\n      source: {kind: model_token, model: base, token: </s>}\n      force: true\n    <new>:\n      source: chat\n  pad_to_multiple_of: 16\n';
    await expect(merge(oneHot('instruct', tokens))).rejects.toThrow(/token "<new>" is to come from chat, which does not have it/);
    const ok = tokens.replace('    <new>:\n      source: chat\n', '');
    const { tensors, text } = await merge(oneHot('instruct', ok));
    const v = tensorValues(tensors.get('model.embed_tokens.weight')!);
    expect(tensors.get('model.embed_tokens.weight')!.shape).toEqual([32, HIDDEN]); // 24 padded to 16
    expect(row(v, 21)).toEqual(modelRow(2, 0, 20)); // instruct has <|im_start|>: its own row (not forced)
    expect(row(v, 22)).toEqual(modelRow(1, 0, 1)); // <|im_end|> forced to the base's </s>
    for (let r = 24; r < 32; r++) expect(row(v, r)).toEqual(new Array(HIDDEN).fill(0));
    const base = tensorValues((await merge(oneHot('base', ok))).tensors.get('model.embed_tokens.weight')!);
    expect(row(base, 21)).toEqual(new Array(HIDDEN).fill(0)); // the base lacks <|im_start|>: zeros, as the recipe says
    expect(JSON.parse(text('config.json')).vocab_size).toBe(32);
  });
});

describe('tokenizer_source: base and a model', () => {
  it("base: the base's 20 tokens; each model's rows found by token, not by id", async () => {
    const { tensors, text } = await merge(oneHot('instruct', 'tokenizer_source: base\n'));
    const v = tensorValues(tensors.get('lm_head.weight')!);
    expect(tensors.get('lm_head.weight')!.shape).toEqual([20, HIDDEN]);
    for (let r = 0; r < 20; r++) expect(row(v, r)).toEqual(modelRow(2, 1, r));
    expect(JSON.parse(text('tokenizer.json')).added_tokens).toHaveLength(2);
  });

  it("a model: that model's tokenizer and files", async () => {
    const { tensors, text } = await merge(oneHot('base', 'tokenizer_source: chat\n'));
    expect(tensors.get('model.embed_tokens.weight')!.shape).toEqual([22, HIDDEN]);
    const v = tensorValues(tensors.get('model.embed_tokens.weight')!);
    expect(row(v, 21)).toEqual(modelRow(3, 0, 21)); // <pad>: only chat has it
    expect(JSON.parse(text('special_tokens_map.json')).from).toBe('chat');
  });
});

describe('chat_template', () => {
  it('writes a built-in template, a Jinja string, or the most common template of the inputs (auto)', async () => {
    const chatml = (await merge(oneHot('base', 'chat_template: chatml\n'))).text('tokenizer_config.json');
    expect(JSON.parse(chatml).chat_template).toContain('<|im_start|>');
    expect(JSON.parse(chatml).model_max_length).toBe(128);
    const auto = (await merge(oneHot('base', 'chat_template: auto\n'))).text('tokenizer_config.json');
    expect(JSON.parse(auto).chat_template).toBe(SPECS[1].template);
    const own = '{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}';
    const custom = (await merge(oneHot('base', `chat_template: "${own}"\n`))).text('tokenizer_config.json');
    expect(JSON.parse(custom).chat_template).toBe(own);
  });
});

it('the test models decode as written (the fixture itself)', () => {
  expect(Array.from(decodeFloats(encodeFloats(Float32Array.of(rowValue(2, 1, 3, 5)), 'F32'), 'F32'))).toEqual([rowValue(2, 1, 3, 5)]);
});

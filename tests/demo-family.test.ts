/**
 * The demo family in public/demo (trained by scripts/demo-family/train.py): every model folder is a
 * Hugging Face Llama checkpoint whose weights match its config, the experts really moved away from
 * the base, the tokenizer.json loads with @huggingface/tokenizers and gives one token per character,
 * the held-out tasks are right by their own rule, and the forward-pass fixtures were computed from
 * the weights that are committed now.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { describe, expect, it } from 'vitest';
import { readSafetensorsFile, tensorValues } from './helpers/safetensors-file.ts';

const ROOT = resolve(__dirname, '..');
const DEMO = join(ROOT, 'public', 'demo');
const FORWARD = join(ROOT, 'tests', 'fixtures', 'demo-forward');

interface IndexModel {
  ref: string;
  name: string;
  folder: string;
  files: string[];
  skill?: string;
}
interface TaskFile {
  skills: { name: string; expert: string; examples: { prompt: string; answer: string }[] }[];
}
interface ForwardCases {
  logits_file: string;
  cases: { model: string; model_sha256: string; prompt: string; ids: number[]; logits: string }[];
}

const json = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;
const index = json<{ models: IndexModel[]; recipe: string; tasks: string }>(join(DEMO, 'index.json'));
const tasks = json<TaskFile>(join(DEMO, index.tasks));

/** The tensor names and shapes of a Llama checkpoint with this config (Hugging Face layout). */
function llamaShapes(c: Record<string, number>): Map<string, number[]> {
  const h = c.hidden_size;
  const d = h / c.num_attention_heads;
  const out = new Map<string, number[]>([
    ['model.embed_tokens.weight', [c.vocab_size, h]],
    ['model.norm.weight', [h]],
    ['lm_head.weight', [c.vocab_size, h]],
  ]);
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    out.set(`${p}self_attn.q_proj.weight`, [c.num_attention_heads * d, h]);
    out.set(`${p}self_attn.k_proj.weight`, [c.num_key_value_heads * d, h]);
    out.set(`${p}self_attn.v_proj.weight`, [c.num_key_value_heads * d, h]);
    out.set(`${p}self_attn.o_proj.weight`, [h, c.num_attention_heads * d]);
    out.set(`${p}mlp.gate_proj.weight`, [c.intermediate_size, h]);
    out.set(`${p}mlp.up_proj.weight`, [c.intermediate_size, h]);
    out.set(`${p}mlp.down_proj.weight`, [h, c.intermediate_size]);
    out.set(`${p}input_layernorm.weight`, [h]);
    out.set(`${p}post_attention_layernorm.weight`, [h]);
  }
  return out;
}

function loadTokenizer(folder: string): Tokenizer {
  return new Tokenizer(json<object>(join(folder, 'tokenizer.json')), json<object>(join(folder, 'tokenizer_config.json')));
}

describe('demo family checkpoints', () => {
  it('index.json lists a base and one expert per skill, each folder with config, weights and tokenizer', () => {
    expect(index.models.map((m) => m.name)).toEqual(['base', 'expert-1', 'expert-2', 'expert-3']);
    expect(index.models.slice(1).map((m) => m.skill)).toEqual(tasks.skills.map((s) => s.name));
    expect(tasks.skills.map((s) => s.expert)).toEqual(index.models.slice(1).map((m) => m.ref));
    for (const m of index.models) {
      expect(m.ref).toBe(`./demo/${m.folder}`);
      for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) expect(m.files).toContain(f);
      for (const f of m.files) expect(existsSync(join(DEMO, m.folder, f)), `${m.folder}/${f}`).toBe(true);
    }
    expect(index.recipe).toContain('base_model: ./demo/base');
  });

  it('every model is a bfloat16 Llama with grouped KV heads whose tensors match its config', () => {
    for (const m of index.models) {
      const c = json<Record<string, unknown>>(join(DEMO, m.folder, 'config.json'));
      expect(c).toMatchObject({ architectures: ['LlamaForCausalLM'], model_type: 'llama', tie_word_embeddings: false, torch_dtype: 'bfloat16' });
      const n = c as Record<string, number>;
      expect(n.num_key_value_heads).toBeLessThan(n.num_attention_heads);
      expect(n.rope_theta).toBeGreaterThan(0);
      const tensors = readSafetensorsFile(join(DEMO, m.folder, 'model.safetensors'));
      const want = llamaShapes(n);
      expect([...tensors.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [name, t] of tensors) {
        expect(t.dtype, `${m.folder} ${name}`).toBe('BF16');
        expect(t.shape, `${m.folder} ${name}`).toEqual(want.get(name));
      }
    }
  });

  it('each expert differs from the base in every tensor, and from the other experts', () => {
    const [base, ...experts] = index.models.map((m) => readSafetensorsFile(join(DEMO, m.folder, 'model.safetensors')));
    const changed = (a: Uint8Array, b: Uint8Array) => a.some((x, i) => x !== b[i]);
    for (const [i, e] of experts.entries()) {
      const same = [...e].filter(([name, t]) => !changed(t.bytes, base.get(name)!.bytes)).map(([name]) => name);
      expect(same, `tensors of expert-${i + 1} equal to the base`).toEqual([]);
      for (const other of experts.slice(i + 1)) {
        expect(changed(e.get('lm_head.weight')!.bytes, other.get('lm_head.weight')!.bytes)).toBe(true);
      }
      // A real fine-tune: a small move relative to the weights, not a re-initialisation.
      const b = tensorValues(base.get('model.layers.0.mlp.up_proj.weight')!);
      const x = tensorValues(e.get('model.layers.0.mlp.up_proj.weight')!);
      let dd = 0;
      let bb = 0;
      for (let k = 0; k < b.length; k++) {
        dd += (x[k] - b[k]) ** 2;
        bb += b[k] ** 2;
      }
      expect(Math.sqrt(dd / bb)).toBeGreaterThan(0.005);
      expect(Math.sqrt(dd / bb)).toBeLessThan(1);
    }
  });
});

describe('demo family tokenizer (@huggingface/tokenizers)', () => {
  const tok = loadTokenizer(join(DEMO, 'base'));

  it('gives <bos> then one token per character, and decodes back', () => {
    const e = tok.encode('12+34=46');
    expect(e.tokens).toEqual(['<bos>', '1', '2', '+', '3', '4', '=', '4', '6']);
    expect(tok.decode(e.ids, { skip_special_tokens: true })).toBe('12+34=46');
    expect(tok.token_to_id('<eos>')).toBe(json<Record<string, number>>(join(DEMO, 'base', 'config.json')).eos_token_id);
    // A character outside the vocabulary is <unk>, not dropped.
    expect(tok.encode('A', { add_special_tokens: false }).tokens).toEqual(['<unk>']);
  });

  it('every held-out prompt and answer is in the vocabulary', () => {
    const unk = tok.token_to_id('<unk>');
    for (const s of tasks.skills) {
      for (const t of s.examples) {
        const e = tok.encode(t.prompt + t.answer, { add_special_tokens: false });
        expect(e.ids.length).toBe(t.prompt.length + t.answer.length);
        expect(e.ids).not.toContain(unk);
      }
    }
  });

  it('every model folder carries the same tokenizer', () => {
    const ref = readFileSync(join(DEMO, 'base', 'tokenizer.json'), 'utf8');
    for (const m of index.models) expect(readFileSync(join(DEMO, m.folder, 'tokenizer.json'), 'utf8')).toBe(ref);
  });
});

describe('demo family tasks', () => {
  const rules: Record<string, (prompt: string) => string> = {
    add: (p) => {
      const [a, b] = p.slice(0, -1).split('+').map(Number);
      return String(a + b);
    },
    rev: (p) => [...p.slice(4, -1)].reverse().join(''),
    sort: (p) => [...p.slice(5, -1)].sort().join(''),
    count: (p) => {
      const [, target, s] = p.slice(0, -1).split(':');
      return String([...s].filter((c) => c === target).length);
    },
  };

  it('answers follow each skill rule, prompts are distinct and end with "="', () => {
    expect(tasks.skills.length).toBeGreaterThanOrEqual(3);
    for (const s of tasks.skills) {
      const rule = rules[s.name];
      expect(rule, `a rule for skill ${s.name}`).toBeDefined();
      expect(s.examples.length).toBeGreaterThanOrEqual(50);
      expect(new Set(s.examples.map((t) => t.prompt)).size).toBe(s.examples.length);
      for (const t of s.examples) {
        expect(t.prompt.endsWith('=')).toBe(true);
        expect(t.answer, t.prompt).toBe(rule(t.prompt));
      }
    }
  });
});

describe('forward-pass fixtures (tests/fixtures/demo-forward)', () => {
  const doc = json<ForwardCases>(join(FORWARD, 'cases.json'));
  const logits = readSafetensorsFile(join(FORWARD, doc.logits_file));

  it('were computed from the weights committed now, with the ids the tokenizer gives', () => {
    expect(doc.cases.map((c) => c.model)).toContain('tests/fixtures/demo-forward/qwen2-random');
    for (const c of doc.cases) {
      const weights = readFileSync(join(ROOT, c.model, 'model.safetensors'));
      expect(createHash('sha256').update(weights).digest('hex'), `${c.model}: regenerate with scripts/demo-family/fixtures.py`).toBe(c.model_sha256);
      expect(loadTokenizer(join(ROOT, c.model)).encode(c.prompt).ids).toEqual(c.ids);
      const config = json<{ vocab_size: number }>(join(ROOT, c.model, 'config.json'));
      const l = logits.get(c.logits)!;
      expect(l.dtype).toBe('F32');
      expect(l.shape).toEqual([c.ids.length, config.vocab_size]);
      expect(tensorValues(l).every(Number.isFinite)).toBe(true);
    }
  });

  it('include a Qwen2-style model with q/k/v biases and grouped KV heads', () => {
    const folder = join(FORWARD, 'qwen2-random');
    const c = json<Record<string, number | string[]>>(join(folder, 'config.json'));
    expect(c.architectures).toEqual(['Qwen2ForCausalLM']);
    expect(c.num_key_value_heads).toBeLessThan(c.num_attention_heads as number);
    const tensors = readSafetensorsFile(join(folder, 'model.safetensors'));
    for (const p of ['q', 'k', 'v']) {
      const bias = tensors.get(`model.layers.0.self_attn.${p}_proj.bias`);
      expect(bias, `${p}_proj.bias`).toBeDefined();
      expect(tensorValues(bias!).some((x) => x !== 0)).toBe(true);
    }
    expect(tensors.has('model.layers.0.self_attn.o_proj.bias')).toBe(false);
  });
});

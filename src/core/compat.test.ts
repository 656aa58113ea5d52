import { describe, expect, it } from 'vitest';
import { nodeFileTree } from '../cli/node-files.ts';
import { checkCompatibility, type CompatModel } from './compat.ts';
import type { DType } from './dtype.ts';
import { openModel } from './safetensors/model.ts';
import type { TensorInfo } from './source.ts';

const GOLDEN = new URL('../../tests/fixtures/golden/models/', import.meta.url).pathname;

function model(id: string, tensors: Record<string, [DType, number[]]>, config: Record<string, unknown> | null = { model_type: 'llama' }): CompatModel {
  const map = new Map<string, TensorInfo>();
  for (const [name, [dtype, shape]] of Object.entries(tensors)) {
    map.set(name, { name, dtype, shape, byteLength: shape.reduce((a, b) => a * b, 1) * (dtype === 'F32' ? 4 : 2) });
  }
  return { id, tensors: map, config };
}

const llama = (rows = 259): Record<string, [DType, number[]]> => ({
  'model.embed_tokens.weight': ['BF16', [rows, 64]],
  'model.layers.0.self_attn.q_proj.weight': ['BF16', [64, 64]],
  'model.norm.weight': ['BF16', [64]],
  'lm_head.weight': ['BF16', [rows, 64]],
});

describe('checkCompatibility on constructed headers', () => {
  it('accepts identical architectures without problems or notes', () => {
    const r = checkCompatibility([model('a', llama()), model('b', llama())]);
    expect(r).toEqual({ ok: true, problems: [], notes: [] });
  });

  it('reports a different model_type', () => {
    const r = checkCompatibility([model('base', llama()), model('m', llama(), { model_type: 'mistral' })]);
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([
      {
        kind: 'model-type',
        model: 'm',
        message: 'm is a "mistral" model, the base base is "llama": different architectures cannot be merged',
      },
    ]);
  });

  it('notes a missing config instead of failing', () => {
    const r = checkCompatibility([model('a', llama()), model('b', llama(), null)]);
    expect(r.ok).toBe(true);
    expect(r.notes).toEqual(['no model_type in the config of b: the architecture is checked from tensor names and shapes only']);
  });

  it('lists the tensors each model lacks, whichever side has them', () => {
    const extra = { ...llama(), 'model.layers.1.mlp.up_proj.weight': ['BF16', [176, 64]] as [DType, number[]] };
    const fewer = llama();
    delete (fewer as Record<string, unknown>)['model.norm.weight'];
    const r = checkCompatibility([model('base', llama()), model('big', extra), model('small', fewer)]);
    expect(r.ok).toBe(false);
    const byModel = Object.fromEntries(r.problems.map((p) => [p.model, p]));
    expect(byModel.base.tensors).toEqual(['model.layers.1.mlp.up_proj.weight']);
    expect(byModel.small.tensors).toEqual(['model.norm.weight', 'model.layers.1.mlp.up_proj.weight']);
    expect(byModel.small.message).toBe(
      'small lacks 2 tensors that other models have: model.norm.weight, model.layers.1.mlp.up_proj.weight (e.g. "model.norm.weight" is in base, big)',
    );
    expect(byModel.big).toBeUndefined();
  });

  it('shortens long lists in messages but keeps every name in the problem', () => {
    const many: Record<string, [DType, number[]]> = {};
    for (let i = 0; i < 12; i++) many[`t${i}`] = ['F32', [2]];
    const r = checkCompatibility([model('a', many), model('b', { t0: ['F32', [2]] })]);
    expect(r.problems[0].tensors).toHaveLength(11);
    expect(r.problems[0].message).toContain('t1, t2, t3, t4, t5 and 6 more');
  });

  it('reports shape differences with tensor and both shapes', () => {
    const other = { ...llama(), 'model.layers.0.self_attn.q_proj.weight': ['BF16', [64, 32]] as [DType, number[]] };
    const r = checkCompatibility([model('base', llama()), model('m', other)]);
    expect(r.problems).toEqual([
      {
        kind: 'shape',
        model: 'm',
        tensor: 'model.layers.0.self_attn.q_proj.weight',
        message: 'model.layers.0.self_attn.q_proj.weight: m has shape [64, 32], the base base has [64, 64]',
      },
    ]);
  });

  it('takes the base by index', () => {
    const r = checkCompatibility([model('m', llama(300)), model('base', llama(259))], { baseIndex: 1 });
    expect(r.notes[0]).toContain("cut to the base's 259 rows");
    expect(() => checkCompatibility([model('a', llama())], { baseIndex: 1 })).toThrow(/baseIndex 1/);
  });

  it('notes larger vocabularies, cut to the base rows, per embedding tensor', () => {
    const r = checkCompatibility([model('base', llama(259)), model('big', llama(300))]);
    expect(r.ok).toBe(true);
    expect(r.notes).toEqual([
      "model.embed_tokens.weight: vocab sizes differ (base 259, big 300 rows); larger ones are cut to the base's 259 rows, as the reference does",
      "lm_head.weight: vocab sizes differ (base 259, big 300 rows); larger ones are cut to the base's 259 rows, as the reference does",
    ]);
  });

  it('reports a smaller vocabulary than the base under the base-rows policy, notes it under common-rows', () => {
    const models = [model('base', llama(300)), model('small', llama(259))];
    const strict = checkCompatibility(models);
    expect(strict.ok).toBe(false);
    expect(strict.problems.map((p) => [p.kind, p.model, p.tensor])).toEqual([
      ['vocab', 'small', 'model.embed_tokens.weight'],
      ['vocab', 'small', 'lm_head.weight'],
    ]);
    expect(strict.problems[0].message).toContain("small has 259 rows, fewer than the base base's 300");
    const common = checkCompatibility(models, { embeddingRows: 'common' });
    expect(common.ok).toBe(true);
    expect(common.notes[0]).toBe(
      'model.embed_tokens.weight: vocab sizes differ (base 300, small 259 rows); every model is cut to the 259 rows all have, as the reference does',
    );
  });

  it('does not treat a hidden-size change in an embedding as a vocab difference', () => {
    const other = { ...llama(), 'lm_head.weight': ['BF16', [259, 32]] as [DType, number[]] };
    const r = checkCompatibility([model('base', llama()), model('m', other)]);
    expect(r.problems.map((p) => p.kind)).toEqual(['shape']);
  });

  it('notes dtype differences per model, counting tensors', () => {
    const f32 = Object.fromEntries(Object.entries(llama()).map(([k, [, s]]) => [k, ['F32', s]])) as Record<string, [DType, number[]]>;
    const r = checkCompatibility([model('base', llama()), model('f', f32)]);
    expect(r.ok).toBe(true);
    expect(r.notes).toEqual(['dtypes differ: 4 tensors of f are F32 where the base base has BF16; inputs are decoded to f32 for the math']);
  });

  it('reports a model without tensors', () => {
    const r = checkCompatibility([model('base', llama()), model('empty', {})]);
    expect(r.problems.map((p) => [p.kind, p.message])).toEqual([['no-tensors', 'empty has no tensors']]);
  });
});

describe('checkCompatibility on the golden models', () => {
  async function golden(path: string): Promise<CompatModel> {
    const m = await openModel(await nodeFileTree(`${GOLDEN}${path}`), { id: path });
    return { id: m.id, tensors: m.tensors, config: m.config };
  }

  it('finds the base and experts of one family compatible', async () => {
    const models = await Promise.all(['base', 'expert1', 'expert2', 'expert3'].map((n) => golden(`llama-bf16/${n}`)));
    expect(checkCompatibility(models)).toEqual({ ok: true, problems: [], notes: [] });
  });

  it('notes BF16 against F32 across families, with every tensor counted', async () => {
    const base = await golden('llama-bf16/base');
    const r = checkCompatibility([base, await golden('llama-f32/expert1')]);
    expect(r.ok).toBe(true);
    expect(r.notes).toEqual([
      `dtypes differ: ${base.tensors.size} tensors of llama-f32/expert1 are F32 where the base llama-bf16/base has BF16; inputs are decoded to f32 for the math`,
    ]);
  });

  it('reports a golden model with a layer removed', async () => {
    const base = await golden('llama-bf16/base');
    const cut = await golden('llama-bf16/expert1');
    const tensors = new Map([...cut.tensors].filter(([name]) => !name.startsWith('model.layers.3.')));
    const r = checkCompatibility([base, { ...cut, id: 'cut', tensors }]);
    expect(r.ok).toBe(false);
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0].model).toBe('cut');
    expect(r.problems[0].tensors!.every((n) => n.startsWith('model.layers.3.'))).toBe(true);
    expect(r.problems[0].tensors!.length).toBe([...base.tensors.keys()].filter((n) => n.startsWith('model.layers.3.')).length);
  });
});

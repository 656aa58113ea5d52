/** Reading PEFT adapters: key forms, scales (alpha/r, rsLoRA, rank and alpha patterns), transposed layers, replacements, errors. */
import { describe, expect, it } from 'vitest';
import { encodeFloats } from '../dtype.ts';
import { encodeSafetensorsHeader } from '../safetensors/header.ts';
import { openModel } from '../safetensors/model.ts';
import type { ModelSource } from '../source.ts';
import { memoryFileTree } from '../sources/memory.ts';
import { adaptedModel, isAdaptedModel, LoraAdapterError, openLoraAdapter } from './adapter.ts';

function safetensors(tensors: Record<string, number[]>): Uint8Array {
  const entries = Object.entries(tensors);
  const datas = entries.map(([, shape]) => encodeFloats(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5), 'F32'));
  const header = encodeSafetensorsHeader(entries.map(([name, shape], i) => ({ name, dtype: 'F32', shape, byteLength: datas[i].byteLength })));
  const out = new Uint8Array(header.byteLength + datas.reduce((s, d) => s + d.byteLength, 0));
  out.set(header);
  let at = header.byteLength;
  for (const d of datas) (out.set(d, at), (at += d.byteLength));
  return out;
}

const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
const adapterTree = (config: unknown, tensors: Record<string, number[]>) =>
  memoryFileTree('adapter', { 'adapter_config.json': enc(config), 'adapter_model.safetensors': safetensors(tensors) });

async function baseModel(): Promise<ModelSource> {
  return openModel(memoryFileTree('base', { 'model.safetensors': safetensors({ 'model.layers.0.q.weight': [6, 4], 'model.layers.0.c.weight': [4, 6], 'lm_head.weight': [10, 4], 'model.embed_tokens.weight': [10, 4] }) }), { id: 'base' });
}

describe('openLoraAdapter', () => {
  it('maps PEFT keys to base tensors with scale alpha/r, a rank pattern, transposed fan_in_fan_out layers and replacements', async () => {
    const adapter = await openLoraAdapter(
      adapterTree(
        { peft_type: 'LORA', r: 2, lora_alpha: 8, rank_pattern: { c: 1 }, alpha_pattern: { c: 3 } },
        {
          'base_model.model.model.layers.0.q.lora_A.weight': [2, 4],
          'base_model.model.model.layers.0.q.lora_B.weight': [6, 2],
          'base_model.model.model.layers.0.c.lora_A.default.weight': [1, 6],
          'base_model.model.model.layers.0.c.lora_B.default.weight': [4, 1],
          'base_model.model.model.embed_tokens.lora_embedding_A': [2, 10],
          'base_model.model.model.embed_tokens.lora_embedding_B': [4, 2],
          'base_model.model.lm_head.weight': [10, 4],
        },
      ),
      'adapter',
    );
    expect(adapter.factors.get('model.layers.0.q.weight')).toMatchObject({ scale: 4, transpose: false });
    expect(adapter.factors.get('model.layers.0.c.weight')).toMatchObject({ scale: 3, transpose: false });
    expect(adapter.factors.get('model.embed_tokens.weight')).toMatchObject({ scale: 4, transpose: true });
    expect(adapter.replacements.get('lm_head.weight')).toBe('base_model.model.lm_head.weight');
    const m = adaptedModel(await baseModel(), adapter);
    expect(isAdaptedModel(m)).toBe(true);
    expect(m.id).toBe('base+adapter');
  });

  it('uses alpha/√r with use_rslora', async () => {
    const adapter = await openLoraAdapter(adapterTree({ r: 4, lora_alpha: 8, use_rslora: true }, { 'base_model.model.x.lora_A.weight': [4, 3], 'base_model.model.x.lora_B.weight': [5, 4] }), 'a');
    expect(adapter.factors.get('x.weight')!.scale).toBe(4);
  });

  it.each([
    ['a missing config', memoryFileTree('a', { 'adapter_model.safetensors': safetensors({ 'x.lora_A.weight': [1, 1] }) }), /has no adapter_config.json/],
    ['a factor without its pair', adapterTree({ r: 1 }, { 'base_model.model.x.lora_A.weight': [1, 3] }), /module x has lora_A but not lora_B/],
    ['factors of another rank', adapterTree({ r: 2 }, { 'base_model.model.x.lora_A.weight': [1, 3], 'base_model.model.x.lora_B.weight': [3, 1] }), /the config says r = 2/],
    ['another PEFT method', adapterTree({ peft_type: 'IA3' }, { 'base_model.model.x.lora_A.weight': [1, 3] }), /peft_type "IA3" is not supported/],
  ])('refuses %s', async (_, tree, message) => {
    await expect(openLoraAdapter(tree, 'a')).rejects.toThrow(LoraAdapterError);
    await expect(openLoraAdapter(tree, 'a')).rejects.toThrow(message);
  });

  it('refuses factors that do not fit the base tensor', async () => {
    const adapter = await openLoraAdapter(adapterTree({ r: 2 }, { 'base_model.model.model.layers.0.q.lora_A.weight': [2, 5], 'base_model.model.model.layers.0.q.lora_B.weight': [6, 2] }), 'a');
    await expect(baseModel().then((b) => adaptedModel(b, adapter))).rejects.toThrow('LoRA adapter a: model.layers.0.q.weight: factors of rank 2 make [6,5], base has [6,4]');
  });
});

/**
 * Procedural checkpoints: a real safetensors header, bytes that are the same however a tensor is
 * read (whole, in ranges straddling tensors), experts that differ from the base by a small dense
 * delta, and the named shapes' parameter counts.
 */
import { describe, expect, it } from 'vitest';
import { decodeFloats } from '../dtype.ts';
import { openModel } from '../safetensors/model.ts';
import { LLAMA_SHAPES, llamaParams, llamaTensors, proceduralModelTree } from './procedural.ts';

const small = { hidden: 64, intermediate: 176, layers: 3, vocab: 300, heads: 4, kvHeads: 2 };

describe('proceduralModelTree', () => {
  it('opens as a Llama model with every tensor of the shape', async () => {
    const m = await openModel(proceduralModelTree('p/base', { shape: small }), { id: 'p/base' });
    const want = llamaTensors(small);
    expect([...m.tensors.keys()]).toEqual(want.map((t) => t.name));
    expect(m.tensors.get('model.layers.2.self_attn.k_proj.weight')?.shape).toEqual([32, 64]);
    expect(m.tensors.get('lm_head.weight')).toMatchObject({ dtype: 'BF16', shape: [300, 64], byteLength: 300 * 64 * 2 });
    expect(m.config).toMatchObject({ model_type: 'llama', num_hidden_layers: 3, hidden_size: 64 });
  });

  it('gives the same bytes for a tensor read whole or through ranges across tensor boundaries', async () => {
    const tree = proceduralModelTree('p/base', { shape: small, dtype: 'F16' });
    const m = await openModel(tree, { id: 'p' });
    const file = (await tree.open('model.safetensors'))!;
    const whole = await file.read(0, file.size);
    // Every tensor's bytes equal the matching slice of the whole file; the header is parsed back.
    const headerLen = whole.byteLength - [...m.tensors.values()].reduce((s, t) => s + t.byteLength, 0);
    let at = headerLen;
    for (const t of m.tensors.values()) {
      expect(Buffer.from(await m.readTensor(t.name)).equals(Buffer.from(whole.subarray(at, at + t.byteLength))), t.name).toBe(true);
      at += t.byteLength;
    }
    // Odd ranges, one of them straddling header and data, others straddling tensors.
    for (const [o, n] of [
      [headerLen - 5, 40],
      [headerLen + 64 * 300 * 2 - 3, 11],
      [whole.byteLength - 9, 9],
    ]) {
      expect(Buffer.from(await file.read(o, n)).equals(Buffer.from(whole.subarray(o, o + n)))).toBe(true);
    }
    await expect(file.read(whole.byteLength - 1, 2)).rejects.toThrow(/cannot read 2 bytes/);
  });

  it('makes experts whose task vectors are small, dense and their own', async () => {
    const open = (expert: number) => openModel(proceduralModelTree(`p/${expert}`, { shape: small, dtype: 'F32', expert }), { id: `p${expert}` });
    const [base, e1, e2] = await Promise.all([open(0), open(1), open(2)]);
    const name = 'model.layers.1.mlp.down_proj.weight';
    const b = decodeFloats(await base.readTensor(name), 'F32');
    const d1 = decodeFloats(await e1.readTensor(name), 'F32').map((v, i) => v - b[i]);
    const d2 = decodeFloats(await e2.readTensor(name), 'F32').map((v, i) => v - b[i]);
    const rms = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
    expect(rms(b)).toBeGreaterThan(0.02);
    expect(rms(d1)).toBeGreaterThan(0.0005);
    expect(rms(d1)).toBeLessThan(0.003);
    expect(d1.filter((v) => v === 0).length).toBeLessThan(d1.length / 100);
    let dot = 0;
    for (let i = 0; i < d1.length; i++) dot += d1[i] * d2[i];
    expect(Math.abs(dot / d1.length / rms(d1) / rms(d2))).toBeLessThan(0.1); // nearly orthogonal
  });

  it('counts the parameters of the named shapes', () => {
    // issue 9's comparison set, 337 M: 2·32000·2048 + 4·(4·2048² + 3·5632·2048 + 2·2048) + 2048
    expect(llamaParams(LLAMA_SHAPES.mk)).toBe(2 * 32000 * 2048 + 4 * (4 * 2048 ** 2 + 3 * 5632 * 2048 + 2 * 2048) + 2048);
    expect(Math.round(llamaParams(LLAMA_SHAPES['1b']) / 1e7) / 100).toBe(1.1);
    expect(Math.round(llamaParams(LLAMA_SHAPES['7b']) / 1e8) / 10).toBe(8);
  });
});

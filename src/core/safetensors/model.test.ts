import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ByteSource, FileTree } from '../source.ts';
import { MemoryOutputFolder, memoryFileTree } from '../sources/memory.ts';
import { ModelError, SafetensorsError } from './errors.ts';
import { openModel } from './model.ts';
import { SafetensorsModelWriter, serializeSafetensors } from './writer.ts';

const GOLDEN = new URL('../../../tests/fixtures/golden/models/llama-bf16/base/', import.meta.url);
const goldenBytes = new Uint8Array(readFileSync(new URL('model.safetensors', GOLDEN)));
const goldenConfig = new Uint8Array(readFileSync(new URL('config.json', GOLDEN)));

/** The golden file's tensors, parsed here by hand: name → [dtype, shape, absolute begin, end]. */
function rawTensors(file: Uint8Array): Map<string, { dtype: string; shape: number[]; begin: number; end: number }> {
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const json = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n)));
  const out = new Map<string, { dtype: string; shape: number[]; begin: number; end: number }>();
  for (const [name, v] of Object.entries<any>(json)) {
    if (name === '__metadata__') continue;
    out.set(name, { dtype: v.dtype, shape: v.shape, begin: 8 + n + v.data_offsets[0], end: 8 + n + v.data_offsets[1] });
  }
  return out;
}
const golden = rawTensors(goldenBytes);

/** Wraps a tree so every byte read is counted, per file. */
function countingTree(tree: FileTree): { tree: FileTree; bytesRead: Map<string, number> } {
  const bytesRead = new Map<string, number>();
  return {
    bytesRead,
    tree: {
      name: tree.name,
      list: (s) => tree.list(s),
      async open(path, signal) {
        const src = await tree.open(path, signal);
        if (!src) return null;
        const counted: ByteSource = {
          name: src.name,
          size: src.size,
          read(offset, length, sig) {
            bytesRead.set(path, (bytesRead.get(path) ?? 0) + length);
            return src.read(offset, length, sig);
          },
        };
        return counted;
      },
    },
  };
}

const enc = (s: string) => new TextEncoder().encode(s);

async function modelErrorOf(promise: Promise<unknown>): Promise<ModelError> {
  const err = await promise.then(
    () => expect.fail('expected a ModelError'),
    (e) => e,
  );
  expect(err).toBeInstanceOf(ModelError);
  expect(err.name).toBe('ModelError');
  return err as ModelError;
}

describe('openModel on a single model.safetensors', () => {
  it('lists every tensor in file order, parses config and metadata, reading only headers', async () => {
    const { tree, bytesRead } = countingTree(memoryFileTree('golden', { 'model.safetensors': goldenBytes, 'config.json': goldenConfig }));
    const model = await openModel(tree, { id: 'llama-base' });
    expect(model.id).toBe('llama-base');
    expect(model.tree).toBe(tree);
    const byOffset = [...golden.entries()].sort((a, b) => a[1].begin - b[1].begin).map(([name]) => name);
    expect([...model.tensors.keys()]).toEqual(byOffset);
    expect(model.tensors.get('model.layers.2.mlp.down_proj.weight')).toEqual({
      name: 'model.layers.2.mlp.down_proj.weight',
      dtype: 'BF16',
      shape: [64, 176],
      byteLength: 64 * 176 * 2,
    });
    expect(model.config).toMatchObject({ hidden_size: 64, num_hidden_layers: 4, vocab_size: 259 });
    expect(model.metadata).toEqual({ format: 'pt' });
    const headerBytes = golden.get(byOffset[0])!.begin;
    expect(bytesRead.get('model.safetensors')).toBe(headerBytes);
  });

  it('reads tensors and byte ranges of them on demand', async () => {
    const model = await openModel(memoryFileTree('golden', { 'model.safetensors': goldenBytes }));
    expect(model.id).toBe('golden');
    expect(model.config).toBeNull();
    for (const name of ['model.embed_tokens.weight', 'model.norm.weight', 'lm_head.weight']) {
      const { begin, end } = golden.get(name)!;
      expect(await model.readTensor(name)).toEqual(goldenBytes.subarray(begin, end));
    }
    const { begin } = golden.get('model.layers.1.self_attn.k_proj.weight')!;
    expect(await model.readTensorRange('model.layers.1.self_attn.k_proj.weight', 100, 30)).toEqual(
      goldenBytes.subarray(begin + 100, begin + 130),
    );
  });

  it('names the model and the tensor when a tensor is missing or a range is outside it', async () => {
    const model = await openModel(memoryFileTree('golden', { 'model.safetensors': goldenBytes }), { id: 'org/llama@abc' });
    const missing = await modelErrorOf(model.readTensor('model.layers.9.mlp.up_proj.weight'));
    expect(missing.message).toBe('model "org/llama@abc": tensor "model.layers.9.mlp.up_proj.weight": no such tensor in the model');
    const range = await modelErrorOf(model.readTensorRange('model.norm.weight', 100, 29));
    expect(range.message).toMatch(/model "org\/llama@abc": tensor "model.norm.weight": byte range \[100, 129\) is outside its 128 bytes/);
    await modelErrorOf(model.readTensorRange('model.norm.weight', -1, 2));
  });

  it('opens a single dropped .safetensors file of any name', async () => {
    const model = await openModel(memoryFileTree('dropped files', { 'my-merge.safetensors': goldenBytes, 'notes.txt': enc('hi') }));
    expect(model.tensors.size).toBe(39);
  });

  it('passes on a malformed file as a SafetensorsError naming it', async () => {
    const truncated = goldenBytes.subarray(0, goldenBytes.length - 1000);
    const err = await openModel(memoryFileTree('broken', { 'model.safetensors': truncated })).catch((e) => e);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect(err.message).toMatch(/^broken\/model\.safetensors: /);
  });
});

describe('openModel on sharded weights', () => {
  /** The golden model re-written in shards of at most 100 kB, plus its config. */
  async function shardedGolden(): Promise<Record<string, Uint8Array>> {
    const folder = new MemoryOutputFolder();
    const byOffset = [...golden.entries()].sort((a, b) => a[1].begin - b[1].begin);
    const writer = new SafetensorsModelWriter(
      folder,
      byOffset.map(([name, t]) => ({ name, dtype: t.dtype as 'BF16', shape: t.shape })),
      { maxShardBytes: 100_000, metadata: { format: 'pt' } },
    );
    for (const [name, t] of byOffset) await writer.writeTensor(name, goldenBytes.subarray(t.begin, t.end));
    await writer.finish();
    await folder.commit();
    return { ...Object.fromEntries(folder.files), 'config.json': goldenConfig };
  }

  it('finds every tensor in its shard and reads the same bytes as the single file', async () => {
    const files = await shardedGolden();
    const shardNames = Object.keys(files).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    expect(shardNames.length).toBeGreaterThan(2);
    const model = await openModel(memoryFileTree('sharded', files));
    expect(model.tensors.size).toBe(39);
    expect(model.metadata).toEqual({ format: 'pt' });
    for (const [name, t] of golden) {
      expect(model.tensors.get(name)?.shape).toEqual(t.shape);
      expect(await model.readTensor(name)).toEqual(goldenBytes.subarray(t.begin, t.end));
    }
  });

  it('prefers the index over other .safetensors files in the tree', async () => {
    const files = await shardedGolden();
    const model = await openModel(memoryFileTree('sharded', { ...files, 'extra.safetensors': serializeSafetensors([]) }));
    expect(model.tensors.size).toBe(39);
  });

  it('names the tensor and shard when the index puts a tensor in a shard that lacks it', async () => {
    const files = await shardedGolden();
    const index = JSON.parse(new TextDecoder().decode(files['model.safetensors.index.json']));
    const first = Object.keys(index.weight_map).find((k) => index.weight_map[k] === 'model-00001-of-00005.safetensors') ?? '';
    const wrongShard = Object.values<string>(index.weight_map).find((f) => f !== index.weight_map[first])!;
    index.weight_map[first] = wrongShard;
    files['model.safetensors.index.json'] = enc(JSON.stringify(index));
    const err = await modelErrorOf(openModel(memoryFileTree('sharded', files), { id: 'm' }));
    expect(err.tensor).toBe(first);
    expect(err.file).toBe(wrongShard);
    expect(err.message).toContain(`tensor "${first}"`);
    expect(err.message).toContain(wrongShard);
  });

  it('names a shard the index lists but the tree lacks', async () => {
    const files = await shardedGolden();
    delete files['model-00002-of-00005.safetensors'];
    const err = await modelErrorOf(openModel(memoryFileTree('sharded', files), { id: 'm' }));
    expect(err.message).toMatch(/model "m": model-00002-of-00005\.safetensors: .*missing/);
  });

  it('rejects an index without a usable weight_map', async () => {
    for (const text of ['{"metadata": {}}', '{"weight_map": {"a": 3}}', 'not json']) {
      const err = await modelErrorOf(openModel(memoryFileTree('x', { 'model.safetensors.index.json': enc(text) })));
      expect(err.message).toContain('model.safetensors.index.json');
    }
  });
});

describe('openModel refuses', () => {
  it('pickle-only models, saying why and what to do', async () => {
    const err = await modelErrorOf(
      openModel(memoryFileTree('org/old', { 'pytorch_model.bin': new Uint8Array(10), 'config.json': goldenConfig })),
    );
    expect(err.message).toMatch(/model "org\/old"/);
    expect(err.message).toMatch(/pytorch_model\.bin/);
    expect(err.message).toMatch(/pickle/i);
    expect(err.message).toMatch(/runs arbitrary code/);
    expect(err.message).toMatch(/convert .*safetensors/i);
  });

  it('a tree with no weights', async () => {
    const err = await modelErrorOf(openModel(memoryFileTree('empty', { 'config.json': goldenConfig })));
    expect(err.message).toMatch(/model "empty": no model\.safetensors/);
  });

  it('several .safetensors files with nothing saying which to use', async () => {
    const err = await modelErrorOf(
      openModel(memoryFileTree('two', { 'a.safetensors': serializeSafetensors([]), 'b.safetensors': serializeSafetensors([]) })),
    );
    expect(err.message).toMatch(/found 2 \.safetensors files \(a\.safetensors, b\.safetensors\)/);
  });

  it('a config.json that is not JSON, naming the file', async () => {
    const err = await modelErrorOf(
      openModel(memoryFileTree('m', { 'model.safetensors': goldenBytes, 'config.json': enc('{"hidden_size": 64,') })),
    );
    expect(err.file).toBe('config.json');
    expect(err.message).toMatch(/^model "m": config\.json: not valid JSON/);
    const arr = await modelErrorOf(openModel(memoryFileTree('m', { 'model.safetensors': goldenBytes, 'config.json': enc('[1]') })));
    expect(arr.message).toMatch(/config\.json: must hold a JSON object/);
  });
});

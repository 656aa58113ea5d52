import { describe, expect, it } from 'vitest';
import { MemoryOutputFolder, memoryByteSource } from '../sources/memory.ts';
import { SafetensorsWriteError } from './errors.ts';
import { readSafetensorsHeader } from './header.ts';
import {
  planShards,
  SafetensorsModelWriter,
  serializeSafetensors,
  type ByteSink,
  type OutputFolder,
  type OutputTensorSpec,
} from './writer.ts';

/** Bytes 0, 1, 2, ... offset by `seed`, so each tensor's data is recognisable. */
function pattern(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 7 + seed) & 0xff);
}

/** Header length N and the header JSON, read straight from the bytes (not through our parser). */
function rawHeader(file: Uint8Array): { n: number; text: string; json: Record<string, any> } {
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const text = new TextDecoder().decode(file.subarray(8, 8 + n));
  return { n, text, json: JSON.parse(text) };
}

const SPECS: OutputTensorSpec[] = [
  { name: 'embed', dtype: 'BF16', shape: [10, 4] }, // 80 bytes
  { name: 'layer.0', dtype: 'F32', shape: [5, 3] }, // 60 bytes
  { name: 'norm', dtype: 'F16', shape: [7] }, // 14 bytes
  { name: 'head', dtype: 'F32', shape: [30] }, // 120 bytes
];
const SIZES = [80, 60, 14, 120];

describe('serializeSafetensors', () => {
  it('writes exactly what the reference serializer writes for the same tensor', () => {
    // safetensors' Rust test_serialization: {"attn.0": F32 [1, 2, 3]} holding 0..5.
    const data = new Uint8Array(new Float32Array([0, 1, 2, 3, 4, 5]).buffer);
    const out = serializeSafetensors([{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], data }]);
    expect([...out]).toEqual([
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34,
      70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95,
      111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64,
      0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ]);
  });

  it('pads an empty header with metadata to 8 bytes with spaces, as the reference does', () => {
    // safetensors' Rust test_empty.
    expect([...serializeSafetensors([])]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    expect([...serializeSafetensors([], { framework: 'pt' })]).toEqual([
      40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95, 95, 34, 58, 123, 34, 102, 114,
      97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112, 116, 34, 125, 125, 32, 32, 32, 32, 32,
    ]);
  });

  it('keeps integer-like tensor names in the given order', () => {
    const out = serializeSafetensors([
      { name: 'b', dtype: 'U8', shape: [1], data: new Uint8Array([1]) },
      { name: '0', dtype: 'U8', shape: [1], data: new Uint8Array([2]) },
    ]);
    const { text } = rawHeader(out);
    expect(text.indexOf('"b"')).toBeLessThan(text.indexOf('"0"'));
    expect(rawHeader(out).json['0'].data_offsets).toEqual([1, 2]);
  });

  it('rejects data of the wrong size and duplicate names', () => {
    expect(() => serializeSafetensors([{ name: 'w', dtype: 'F32', shape: [2], data: new Uint8Array(7) }])).toThrow(
      /tensor "w": data is 7 bytes but F32 \[2\] is 8/,
    );
    const t = { name: 'w', dtype: 'U8' as const, shape: [1], data: new Uint8Array(1) };
    expect(() => serializeSafetensors([t, t])).toThrow(SafetensorsWriteError);
  });
});

describe('planShards', () => {
  it('packs greedily in order, starting a shard when the next tensor would not fit', () => {
    const shards = planShards(SPECS, 150);
    // 80+60=140 fits; +14 would be 154 > 150; 14+120=134 fits.
    expect(shards.map((s) => s.tensors.map((t) => t.name))).toEqual([['embed', 'layer.0'], ['norm', 'head']]);
    expect(shards.map((s) => s.file)).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(shards.map((s) => s.dataBytes)).toEqual([140, 134]);
  });

  it('gives a tensor larger than the limit a shard of its own', () => {
    const shards = planShards(SPECS, 70);
    expect(shards.map((s) => s.tensors.map((t) => t.name))).toEqual([['embed'], ['layer.0'], ['norm'], ['head']]);
    expect(shards[3].file).toBe('model-00004-of-00004.safetensors');
  });

  it('names a single shard model.safetensors', () => {
    const shards = planShards(SPECS);
    expect(shards).toHaveLength(1);
    expect(shards[0].file).toBe('model.safetensors');
    expect(shards[0].tensors.map((t) => t.byteLength)).toEqual(SIZES);
  });

  it('counts an exact fit as fitting', () => {
    expect(planShards(SPECS, 140).map((s) => s.dataBytes)).toEqual([140, 134]);
    expect(planShards(SPECS, 139).map((s) => s.dataBytes)).toEqual([80, 74, 120]);
  });

  it('rejects duplicate names, bad dtypes and shapes, the reserved name', () => {
    expect(() => planShards([SPECS[0], SPECS[0]])).toThrow(/tensor "embed": tensor is listed twice/);
    expect(() => planShards([{ name: 'w', dtype: 'X' as never, shape: [1] }])).toThrow(/tensor "w": unknown dtype "X"/);
    expect(() => planShards([{ name: 'w', dtype: 'F32', shape: [-1] }])).toThrow(/tensor "w": shape must be non-negative/);
    expect(() => planShards([{ name: '__metadata__', dtype: 'F32', shape: [1] }])).toThrow(/reserved/);
    expect(() => planShards(SPECS, 0)).toThrow(/maxShardBytes must be positive/);
  });
});

/** Write SPECS with recognisable data; chunkSize splits each tensor into chunks of at most that many bytes. */
async function writeAll(folder: OutputFolder, opts: { maxShardBytes?: number; metadata?: Record<string, string>; chunkSize?: number }) {
  const writer = new SafetensorsModelWriter(folder, SPECS, opts);
  for (let i = 0; i < SPECS.length; i++) {
    const data = pattern(SIZES[i], i * 31);
    if (opts.chunkSize === undefined) {
      await writer.writeTensor(SPECS[i].name, data);
    } else {
      for (let at = 0; at < data.length; at += opts.chunkSize) {
        await writer.writeTensorChunk(SPECS[i].name, data.subarray(at, at + opts.chunkSize));
      }
    }
  }
  return writer.finish();
}

describe('SafetensorsModelWriter', () => {
  it('writes one file whose bytes sit where the header says', async () => {
    const folder = new MemoryOutputFolder('out');
    const files = await writeAll(folder, { metadata: { format: 'pt' } });
    await folder.commit();
    expect(files).toEqual(['model.safetensors']);
    expect([...folder.files.keys()]).toEqual(['model.safetensors']);
    const file = folder.files.get('model.safetensors')!;

    // By hand: u64 length, padded JSON, data back to back in plan order.
    const { n, text, json } = rawHeader(file);
    expect(n % 8).toBe(0);
    expect(text).toMatch(/^\{"__metadata__":\{"format":"pt"\},"embed":/);
    expect(text.trimEnd().length).toBeGreaterThan(n - 8);
    expect(text.slice(text.trimEnd().length)).toMatch(/^ *$/);
    expect(file.length).toBe(8 + n + SIZES.reduce((a, b) => a + b, 0));
    let at = 0;
    SPECS.forEach((spec, i) => {
      expect(json[spec.name]).toEqual({ dtype: spec.dtype, shape: spec.shape, data_offsets: [at, at + SIZES[i]] });
      expect(file.subarray(8 + n + at, 8 + n + at + SIZES[i])).toEqual(pattern(SIZES[i], i * 31));
      at += SIZES[i];
    });

    // And through our own validating parser.
    const header = await readSafetensorsHeader(memoryByteSource('model.safetensors', file));
    expect(header.tensors.map((t) => t.name)).toEqual(SPECS.map((s) => s.name));
    expect(header.metadata).toEqual({ format: 'pt' });
  });

  it('shards, writing an index like transformers does', async () => {
    const folder = new MemoryOutputFolder('out');
    const files = await writeAll(folder, { maxShardBytes: 150, metadata: { format: 'pt' } });
    await folder.commit();
    const shardNames = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
    expect(files).toEqual([...shardNames, 'model.safetensors.index.json']);
    const indexText = new TextDecoder().decode(folder.files.get('model.safetensors.index.json'));
    const index = JSON.parse(indexText);
    expect(index).toEqual({
      metadata: { total_size: 80 + 60 + 14 + 120 },
      weight_map: { embed: shardNames[0], 'layer.0': shardNames[0], norm: shardNames[1], head: shardNames[1] },
    });
    // Sorted keys, two-space indent, as json.dumps(indent=2, sort_keys=True).
    expect(Object.keys(index.weight_map)).toEqual(['embed', 'head', 'layer.0', 'norm']);
    expect(indexText).toBe(JSON.stringify(index, null, 2) + '\n');

    for (const [s, names] of [[0, ['embed', 'layer.0']], [1, ['norm', 'head']]] as const) {
      const file = folder.files.get(shardNames[s])!;
      const header = await readSafetensorsHeader(memoryByteSource(shardNames[s], file));
      expect(header.tensors.map((t) => t.name)).toEqual(names);
      expect(header.metadata).toEqual({ format: 'pt' });
      for (const t of header.tensors) {
        const i = SPECS.findIndex((x) => x.name === t.name);
        expect(file.subarray(header.dataOffset + t.begin, header.dataOffset + t.end)).toEqual(pattern(SIZES[i], i * 31));
      }
    }
  });

  it('accepts chunks that add up to each tensor, giving the same file as whole writes', async () => {
    const whole = new MemoryOutputFolder();
    await writeAll(whole, {});
    await whole.commit();
    for (const chunkSize of [1, 7, 64]) {
      const chunked = new MemoryOutputFolder();
      await writeAll(chunked, { chunkSize });
      await chunked.commit();
      expect(chunked.files.get('model.safetensors')).toEqual(whole.files.get('model.safetensors'));
    }
  });

  it('streams: each chunk reaches the sink before the next call, never a whole shard at once', async () => {
    const writes: number[] = [];
    const folder: OutputFolder = {
      name: 'spy',
      async create(): Promise<ByteSink> {
        return { write: async (c) => void writes.push(c.byteLength), close: async () => {}, abort: async () => {} };
      },
      commit: async () => {},
      abort: async () => {},
    };
    const writer = new SafetensorsModelWriter(folder, SPECS);
    await writer.writeTensorChunk('embed', new Uint8Array(40));
    expect(writes.slice(1)).toEqual([40]); // after the header
    await writer.writeTensorChunk('embed', new Uint8Array(40));
    expect(writes.slice(1)).toEqual([40, 40]);
  });

  it('rejects unknown names, wrong order, wrong byte counts', async () => {
    const writer = new SafetensorsModelWriter(new MemoryOutputFolder(), SPECS);
    await expect(writer.writeTensor('nope', new Uint8Array(4))).rejects.toThrow(/tensor "nope": unknown tensor/);
    await expect(writer.writeTensor('norm', new Uint8Array(14))).rejects.toThrow(
      /model\.safetensors: tensor "norm": out of order: tensor "embed" comes next/,
    );
    await expect(writer.writeTensor('embed', new Uint8Array(79))).rejects.toThrow(/tensor "embed": got 79 bytes but BF16 \[10, 4\] is 80/);
    await writer.writeTensorChunk('embed', new Uint8Array(50));
    await expect(writer.writeTensorChunk('embed', new Uint8Array(31))).rejects.toThrow(/got 81 bytes so far but BF16 \[10, 4\] is 80/);
    await expect(writer.writeTensorChunk('layer.0', new Uint8Array(60))).rejects.toThrow(
      /out of order: tensor "embed" is only partly written \(50 of 80 bytes\)/,
    );
    await expect(writer.writeTensor('embed', new Uint8Array(80))).rejects.toThrow(/already partly written/);
    await expect(writer.finish()).rejects.toThrow(/tensor "embed": 4 tensor\(s\) not written.*\(50 of 80 bytes written\)/);
    await writer.writeTensorChunk('embed', new Uint8Array(30));
    await expect(writer.writeTensor('embed', new Uint8Array(80))).rejects.toThrow(/tensor "embed": already written/);
    const err = await writer.writeTensor('x', new Uint8Array(0)).catch((e) => e);
    expect(err).toBeInstanceOf(SafetensorsWriteError);
    expect(err.name).toBe('SafetensorsWriteError');
  });

  it('refuses overlapping calls and use after finish', async () => {
    const writer = new SafetensorsModelWriter(new MemoryOutputFolder(), [{ name: 'a', dtype: 'U8', shape: [2] }]);
    const first = writer.writeTensorChunk('a', new Uint8Array(1));
    await expect(writer.writeTensorChunk('a', new Uint8Array(1))).rejects.toThrow(/still in progress/);
    await first;
    await writer.writeTensorChunk('a', new Uint8Array(1));
    expect(await writer.finish()).toEqual(['model.safetensors']);
    await expect(writer.finish()).rejects.toThrow(/already finished/);
  });

  it('writes zero-byte tensors and an empty model', async () => {
    const folder = new MemoryOutputFolder();
    const writer = new SafetensorsModelWriter(folder, [{ name: 'e', dtype: 'F32', shape: [0, 3] }]);
    await writer.writeTensor('e', new Uint8Array(0));
    await writer.finish();
    const empty = new MemoryOutputFolder();
    await new SafetensorsModelWriter(empty, []).finish();
    await folder.commit();
    await empty.commit();
    const header = await readSafetensorsHeader(memoryByteSource('e', folder.files.get('model.safetensors')!));
    expect(header.tensors).toMatchObject([{ name: 'e', begin: 0, end: 0 }]);
    expect([...empty.files.get('model.safetensors')!]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
  });

  it('abort leaves nothing in the output folder', async () => {
    const folder = new MemoryOutputFolder();
    const writer = new SafetensorsModelWriter(folder, SPECS, { maxShardBytes: 150 });
    await writer.writeTensor('embed', pattern(80, 0));
    await writer.writeTensor('layer.0', pattern(60, 1)); // closes shard 1
    await writer.writeTensorChunk('norm', pattern(7, 2)); // shard 2 open
    await writer.abort();
    await folder.abort();
    expect(folder.files.size).toBe(0);
    await expect(folder.commit()).rejects.toThrow(/already aborted/);
    await expect(writer.writeTensorChunk('norm', pattern(7, 2))).rejects.toThrow(/aborted or failed/);
  });
});

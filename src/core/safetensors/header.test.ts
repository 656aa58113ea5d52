import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { memoryByteSource } from '../sources/memory.ts';
import { SafetensorsError } from './errors.ts';
import { MAX_HEADER_BYTES, parseSafetensorsHeader, readSafetensorsHeader } from './header.ts';

const FILE = 'model.safetensors';

/** A safetensors file built by hand: u64 LE length, the header text as given, then `dataBytes` bytes. */
function fileWith(header: string | object, dataBytes: number, declaredLength?: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(declaredLength ?? json.length), true);
  out.set(json, 8);
  for (let i = 0; i < dataBytes; i++) out[8 + json.length + i] = i & 0xff;
  return out;
}

async function rejectionOf(bytes: Uint8Array): Promise<SafetensorsError> {
  try {
    await readSafetensorsHeader(memoryByteSource(FILE, bytes));
  } catch (e) {
    expect(e).toBeInstanceOf(SafetensorsError);
    expect((e as Error).name).toBe('SafetensorsError');
    expect((e as SafetensorsError).transient).toBe(false);
    return e as SafetensorsError;
  }
  return expect.fail('the header was accepted');
}

/** Asserts the error names the file, the tensor (when given) and matches the reason. */
function expectNames(err: SafetensorsError, reason: RegExp, tensor?: string): void {
  expect(err.file).toBe(FILE);
  expect(err.message.startsWith(`${FILE}: `)).toBe(true);
  expect(err.reason).toMatch(reason);
  expect(err.message).toMatch(reason);
  expect(err.tensor).toBe(tensor);
  if (tensor !== undefined) expect(err.message).toContain(`tensor "${tensor}"`);
}

const f32x4 = (begin: number) => ({ dtype: 'F32', shape: [2, 2], data_offsets: [begin, begin + 16] });

describe('readSafetensorsHeader accepts', () => {
  it('a well-formed file, reporting tensors in offset order with metadata', async () => {
    // Listed out of offset order on purpose.
    const bytes = fileWith(
      {
        b: { dtype: 'BF16', shape: [3], data_offsets: [16, 22] },
        __metadata__: { format: 'pt' },
        a: f32x4(0),
        empty: { dtype: 'I64', shape: [0, 5], data_offsets: [22, 22] },
        scalar: { dtype: 'U8', shape: [], data_offsets: [22, 23] },
      },
      23,
    );
    const header = await readSafetensorsHeader(memoryByteSource(FILE, bytes));
    const headerLength = bytes.length - 8 - 23;
    expect(header.headerLength).toBe(headerLength);
    expect(header.dataOffset).toBe(8 + headerLength);
    expect(header.metadata).toEqual({ format: 'pt' });
    expect(header.tensors.map((t) => [t.name, t.begin, t.end, t.byteLength])).toEqual([
      ['a', 0, 16, 16],
      ['b', 16, 22, 6],
      ['empty', 22, 22, 0],
      ['scalar', 22, 23, 1],
    ]);
    expect(header.tensors[1]).toMatchObject({ dtype: 'BF16', shape: [3] });
  });

  it('the bytes the reference serializer writes (safetensors test_serialization)', async () => {
    // From the Rust crate's own test: {"attn.0": F32 [1, 2, 3]} holding 0..5.
    const bytes = new Uint8Array([
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34,
      70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95,
      111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64,
      0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ]);
    const header = await readSafetensorsHeader(memoryByteSource(FILE, bytes));
    expect(header.dataOffset).toBe(72);
    expect(header.tensors).toEqual([{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], byteLength: 24, begin: 0, end: 24 }]);
    expect(header.metadata).toEqual({});
  });

  it('a file with no tensors, and a header padded with spaces', async () => {
    const header = await readSafetensorsHeader(memoryByteSource(FILE, fileWith('{}      ', 0)));
    expect(header.tensors).toEqual([]);
    expect(header.headerLength).toBe(8);
  });

  it('the golden llama-bf16 base model: every tensor the config implies, tiling the data', async () => {
    const bytes = readFileSync(new URL('../../../tests/fixtures/golden/models/llama-bf16/base/model.safetensors', import.meta.url));
    const config = JSON.parse(
      readFileSync(new URL('../../../tests/fixtures/golden/models/llama-bf16/base/config.json', import.meta.url), 'utf8'),
    );
    const hidden = config.hidden_size;
    const inter = config.intermediate_size;
    const kv = (hidden / config.num_attention_heads) * config.num_key_value_heads;
    const expected = new Map<string, number[]>([
      ['model.embed_tokens.weight', [config.vocab_size, hidden]],
      ['model.norm.weight', [hidden]],
      ['lm_head.weight', [config.vocab_size, hidden]],
    ]);
    for (let i = 0; i < config.num_hidden_layers; i++) {
      const p = `model.layers.${i}.`;
      expected.set(`${p}self_attn.q_proj.weight`, [hidden, hidden]);
      expected.set(`${p}self_attn.k_proj.weight`, [kv, hidden]);
      expected.set(`${p}self_attn.v_proj.weight`, [kv, hidden]);
      expected.set(`${p}self_attn.o_proj.weight`, [hidden, hidden]);
      expected.set(`${p}mlp.gate_proj.weight`, [inter, hidden]);
      expected.set(`${p}mlp.up_proj.weight`, [inter, hidden]);
      expected.set(`${p}mlp.down_proj.weight`, [hidden, inter]);
      expected.set(`${p}input_layernorm.weight`, [hidden]);
      expected.set(`${p}post_attention_layernorm.weight`, [hidden]);
    }
    expect(expected.size).toBe(39);

    const header = await readSafetensorsHeader(memoryByteSource(FILE, new Uint8Array(bytes)));
    expect(header.tensors).toHaveLength(expected.size);
    for (const t of header.tensors) {
      expect(expected.get(t.name), t.name).toEqual(t.shape);
      expect(t.dtype).toBe('BF16');
      expect(t.byteLength).toBe(t.shape.reduce((a, b) => a * b, 1) * 2);
    }
    const dataBytes = [...expected.values()].reduce((sum, s) => sum + s.reduce((a, b) => a * b, 1) * 2, 0);
    expect(header.dataOffset + dataBytes).toBe(bytes.length);
    expect(header.dataOffset).toBe(8 + Number(bytes.readBigUInt64LE(0)));
    expect(header.metadata).toEqual({ format: 'pt' });
  });
});

describe('readSafetensorsHeader rejects', () => {
  it('a file shorter than the 8-byte length', async () => {
    expectNames(await rejectionOf(new Uint8Array(5)), /5 bytes, too short/);
  });

  it('a header cut short (file shorter than 8 + N)', async () => {
    const whole = fileWith({ a: f32x4(0) }, 16);
    const truncated = whole.subarray(0, 30);
    expectNames(await rejectionOf(truncated), /header length \d+ runs past the end of the 30-byte file/);
  });

  it('a header length larger than the file', async () => {
    expectNames(await rejectionOf(fileWith('{}', 0, 5000)), /header length 5000 runs past the end of the 10-byte file/);
  });

  it('a header length over the limit', async () => {
    const bytes = new Uint8Array(16);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(MAX_HEADER_BYTES + 1), true);
    expectNames(await rejectionOf(bytes), /header length 100000001 is over the 100000000-byte limit/);
    new DataView(bytes.buffer).setBigUint64(0, 0xffffffffffffffffn, true);
    expectNames(await rejectionOf(bytes), /header length 18446744073709551615 is over/);
  });

  it('bad JSON', async () => {
    expectNames(await rejectionOf(fileWith('{"a": {"dtype": "F32",', 0)), /header is not valid JSON/);
  });

  it('a header that is not UTF-8', async () => {
    const bytes = fileWith('{"a":1}', 0);
    bytes[10] = 0xff;
    expectNames(await rejectionOf(bytes), /not valid UTF-8/);
  });

  it('JSON that is not an object', async () => {
    expectNames(await rejectionOf(fileWith('[1, 2]', 0)), /header is not a JSON object/);
    expectNames(await rejectionOf(fileWith('"x"', 0)), /header is not a JSON object/);
  });

  it('a tensor entry that is not an object', async () => {
    expectNames(await rejectionOf(fileWith({ w: [1, 2] }, 0)), /entry must be an object/, 'w');
  });

  it('an unknown dtype', async () => {
    const err = await rejectionOf(fileWith({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, 16));
    expectNames(err, /unknown dtype "F128"/, 'w');
    // Lower-case names are not safetensors dtypes either.
    expectNames(await rejectionOf(fileWith({ w: { dtype: 'f32', shape: [1], data_offsets: [0, 4] } }, 4)), /unknown dtype "f32"/, 'w');
  });

  it('a bad shape', async () => {
    for (const shape of [[2, -1], [1.5], ['2'], 4, null]) {
      const err = await rejectionOf(fileWith({ w: { dtype: 'U8', shape, data_offsets: [0, 2] } }, 2));
      expectNames(err, /shape must be an array of non-negative integers/, 'w');
    }
  });

  it('bad data_offsets', async () => {
    for (const data_offsets of [[0], [0, 4, 8], [-4, 0], [0, 'x'], [4, 0]]) {
      const err = await rejectionOf(fileWith({ w: { dtype: 'U8', shape: [4], data_offsets } }, 4));
      expectNames(err, /data_offsets/, 'w');
    }
  });

  it('a missing key', async () => {
    const err = await rejectionOf(fileWith({ w: { dtype: 'U8', data_offsets: [0, 4] } }, 4));
    expectNames(err, /shape must be an array/, 'w');
  });

  it('an unknown key in a tensor entry', async () => {
    const err = await rejectionOf(fileWith({ w: { dtype: 'U8', shape: [4], data_offsets: [0, 4], offsets: [0, 4] } }, 4));
    expectNames(err, /unknown key "offsets"/, 'w');
  });

  it('overlapping offsets', async () => {
    const err = await rejectionOf(fileWith({ a: f32x4(0), b: f32x4(8) }, 24));
    expectNames(err, /overlap tensor "a" at \[0, 16\]/, 'b');
  });

  it('offsets out of range', async () => {
    const err = await rejectionOf(fileWith({ a: f32x4(0), b: f32x4(16) }, 20));
    expectNames(err, /data_offsets \[16, 32\] run past the end of the 20-byte data region/, 'b');
  });

  it('a gap between tensors, or before the first', async () => {
    expectNames(await rejectionOf(fileWith({ a: f32x4(0), b: f32x4(20) }, 36)), /gap of 4 bytes after tensor "a"/, 'b');
    expectNames(await rejectionOf(fileWith({ a: f32x4(8) }, 24)), /gap of 8 bytes at the start/, 'a');
  });

  it('bytes after the last tensor', async () => {
    expectNames(await rejectionOf(fileWith({ a: f32x4(0) }, 20)), /data region is 20 bytes but the last tensor "a" ends at 16/);
    expectNames(await rejectionOf(fileWith({}, 3)), /data region is 3 bytes but there are no tensors/);
  });

  it('a size mismatch between offsets and dtype × shape', async () => {
    const err = await rejectionOf(fileWith({ 'x.weight': { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, 12));
    expectNames(err, /data_offsets \[0, 12\] is 12 bytes but F32 \[2, 2\] needs 16/, 'x.weight');
    expect(err.message).toBe('model.safetensors: tensor "x.weight": data_offsets [0, 12] is 12 bytes but F32 [2, 2] needs 16');
  });

  it('a sub-byte tensor that does not fill whole bytes (as the reference does)', async () => {
    const err = await rejectionOf(fileWith({ w: { dtype: 'F4', shape: [3], data_offsets: [0, 2] } }, 2));
    expectNames(err, /F4 \[3\] is 12 bits, not a whole number of bytes/, 'w');
  });

  it('a shape whose size overflows', async () => {
    const err = await rejectionOf(fileWith({ w: { dtype: 'F32', shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 4] } }, 4));
    expectNames(err, /too many elements/, 'w');
  });

  it('bad __metadata__', async () => {
    expectNames(await rejectionOf(fileWith({ __metadata__: { format: 1 } }, 0)), /__metadata__ value of "format" must be a string/);
    expectNames(await rejectionOf(fileWith({ __metadata__: ['pt'] }, 0)), /__metadata__ must be an object of strings/);
    expectNames(await rejectionOf(fileWith({ __metadata__: 'pt' }, 0)), /__metadata__ must be an object of strings/);
  });
});

describe('parseSafetensorsHeader', () => {
  it('checks the header bytes against the declared length', () => {
    expect(() => parseSafetensorsHeader(new TextEncoder().encode('{}'), { file: FILE, fileSize: 12, headerLength: 4 })).toThrow(
      /model\.safetensors: header is 2 bytes but its length field says 4/,
    );
  });

  it('keeps a "__proto__" metadata key as data', () => {
    const json = new TextEncoder().encode('{"__metadata__":{"__proto__":"x"}}');
    const header = parseSafetensorsHeader(json, { file: FILE, fileSize: 8 + json.length, headerLength: json.length });
    expect(Object.getPrototypeOf(header.metadata)).toBe(Object.prototype);
    expect(Object.entries(header.metadata)).toEqual([['__proto__', 'x']]);
  });
});

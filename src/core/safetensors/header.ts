/**
 * The safetensors header: reading and validating it (as the reference Rust implementation does) and
 * encoding it for the writer.
 *
 * File layout: u64 little-endian N, then N bytes of UTF-8 JSON, then the data region. The JSON maps each
 * tensor name to `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to the data region) and
 * may hold `__metadata__`, a string→string map. Sorted by offset, the tensors must tile the data region
 * exactly.
 */
import { DTYPE_BITS, isDType, type DType } from '../dtype.ts';
import type { ByteSource, TensorInfo } from '../source.ts';
import { SafetensorsError } from './errors.ts';

/** The reference refuses longer headers; an untrusted length must not make us allocate more. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Bytes before the header JSON: its length as a u64. */
export const HEADER_LENGTH_BYTES = 8;

/** A tensor of a parsed header. `begin`/`end` are relative to the data region. */
export interface TensorEntry extends TensorInfo {
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** N, the header JSON's length in bytes (padding included). */
  headerLength: number;
  /** Where the data region starts in the file: 8 + N. */
  dataOffset: number;
  /** In offset order. */
  tensors: TensorEntry[];
  /** `__metadata__`, or {} when absent. */
  metadata: Record<string, string>;
}

const TENSOR_KEYS = new Set(['dtype', 'shape', 'data_offsets']);

/** Elements of `shape`, or null when the count is not a safe integer. */
function elementCount(shape: readonly number[]): number | null {
  let numel = 1;
  for (const dim of shape) {
    numel *= dim;
    if (!Number.isSafeInteger(numel)) return null;
  }
  return numel;
}

/**
 * Bytes of data for a tensor of `dtype` and `shape`, or a reason why there is no whole number of them:
 * like the reference, sub-byte dtypes must fill whole bytes, and sizes must not overflow.
 */
export function tensorDataBytes(dtype: DType, shape: readonly number[]): number | string {
  const numel = elementCount(shape);
  if (numel === null) return `${dtype} ${formatShape(shape)} has too many elements`;
  const bits = numel * DTYPE_BITS[dtype];
  if (!Number.isSafeInteger(bits)) return `${dtype} ${formatShape(shape)} has too many elements`;
  if (bits % 8 !== 0) return `${dtype} ${formatShape(shape)} is ${bits} bits, not a whole number of bytes`;
  return bits / 8;
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function isNonNegativeInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function describe(v: unknown): string {
  const text = JSON.stringify(v);
  if (text === undefined) return String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parse and validate the N header bytes of a safetensors file.
 * `fileSize` and `headerLength` fix where the data region ends, which the tensors must reach exactly.
 */
export function parseSafetensorsHeader(
  headerJson: Uint8Array,
  opts: { file: string; fileSize: number; headerLength: number },
): SafetensorsHeader {
  const { file, fileSize, headerLength } = opts;
  const fail = (reason: string, tensor?: string): never => {
    throw new SafetensorsError(file, reason, tensor);
  };
  if (headerJson.byteLength !== headerLength) {
    fail(`header is ${headerJson.byteLength} bytes but its length field says ${headerLength}`);
  }
  const dataOffset = HEADER_LENGTH_BYTES + headerLength;
  const dataLength = fileSize - dataOffset;
  if (dataLength < 0) fail(`header length ${headerLength} runs past the end of the ${fileSize}-byte file`);

  let text: string;
  try {
    text = utf8.decode(headerJson);
  } catch {
    return fail('header is not valid UTF-8');
  }
  if (!text.startsWith('{')) {
    fail(`header is not a JSON object (it starts with ${describe(text.slice(0, 20))})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(json)) return fail('header is not a JSON object');

  let metadata: Record<string, string> = {};
  const tensors: TensorEntry[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isPlainObject(value)) fail(`__metadata__ must be an object of strings, got ${describe(value)}`);
      const entries = Object.entries(value as Record<string, unknown>);
      for (const [key, v] of entries) {
        if (typeof v !== 'string') fail(`__metadata__ value of "${key}" must be a string, got ${describe(v)}`);
      }
      // fromEntries defines own properties, so a key like "__proto__" stays an ordinary key.
      metadata = Object.fromEntries(entries) as Record<string, string>;
      continue;
    }
    tensors.push(parseTensorEntry(name, value, fail));
  }

  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expectedBegin = 0;
  let previous: TensorEntry | undefined;
  for (const t of tensors) {
    if (t.begin < expectedBegin) {
      fail(`data_offsets [${t.begin}, ${t.end}] overlap tensor "${previous!.name}" at [${previous!.begin}, ${previous!.end}]`, t.name);
    }
    if (t.begin > expectedBegin) {
      const after = previous ? `after tensor "${previous.name}" (ends at ${expectedBegin})` : 'at the start of the data region';
      fail(`data_offsets [${t.begin}, ${t.end}] leave a gap of ${t.begin - expectedBegin} bytes ${after}`, t.name);
    }
    if (t.end > dataLength) {
      fail(`data_offsets [${t.begin}, ${t.end}] run past the end of the ${dataLength}-byte data region`, t.name);
    }
    expectedBegin = t.end;
    previous = t;
  }
  if (expectedBegin !== dataLength) {
    const last = previous ? `the last tensor "${previous.name}" ends at ${expectedBegin}` : 'there are no tensors';
    fail(`data region is ${dataLength} bytes but ${last}: ${dataLength - expectedBegin} bytes are not covered by any tensor`);
  }
  return { headerLength, dataOffset, tensors, metadata };
}

function parseTensorEntry(name: string, value: unknown, fail: (reason: string, tensor?: string) => never): TensorEntry {
  if (!isPlainObject(value)) return fail(`entry must be an object, got ${describe(value)}`, name);
  for (const key of Object.keys(value)) {
    if (!TENSOR_KEYS.has(key)) fail(`unknown key "${key}" (allowed: dtype, shape, data_offsets)`, name);
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string' || !isDType(dtype)) {
    fail(`unknown dtype ${describe(dtype)} (known: ${Object.keys(DTYPE_BITS).join(', ')})`, name);
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
    fail(`shape must be an array of non-negative integers, got ${describe(shape)}`, name);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
    fail(`data_offsets must be [begin, end] with non-negative integers, got ${describe(offsets)}`, name);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) fail(`data_offsets [${begin}, ${end}] end before they begin`, name);
  const dt = dtype as DType;
  const dims = shape as number[];
  const needed = tensorDataBytes(dt, dims);
  if (typeof needed === 'string') fail(needed, name);
  if (end - begin !== needed) {
    fail(`data_offsets [${begin}, ${end}] is ${end - begin} bytes but ${dt} ${formatShape(dims)} needs ${needed}`, name);
  }
  return { name, dtype: dt, shape: dims, byteLength: end - begin, begin, end };
}

function throwIfAborted(signal?: AbortSignal): void {
  signal?.throwIfAborted();
}

/** Read and validate the header of a safetensors file with two range reads (length, then JSON). */
export async function readSafetensorsHeader(src: ByteSource, signal?: AbortSignal): Promise<SafetensorsHeader> {
  const file = src.name;
  throwIfAborted(signal);
  if (src.size < HEADER_LENGTH_BYTES) {
    throw new SafetensorsError(file, `file is ${src.size} bytes, too short for the 8-byte header length`);
  }
  const prefix = await src.read(0, HEADER_LENGTH_BYTES, signal);
  if (prefix.byteLength !== HEADER_LENGTH_BYTES) {
    throw new SafetensorsError(file, `read ${prefix.byteLength} bytes of the 8-byte header length`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(file, `header length ${n} is over the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const headerLength = Number(n);
  if (HEADER_LENGTH_BYTES + headerLength > src.size) {
    throw new SafetensorsError(
      file,
      `header length ${headerLength} runs past the end of the ${src.size}-byte file (truncated file?)`,
    );
  }
  const headerJson = await src.read(HEADER_LENGTH_BYTES, headerLength, signal);
  return parseSafetensorsHeader(headerJson, { file, fileSize: src.size, headerLength });
}

export interface HeaderTensorSpec {
  name: string;
  dtype: DType;
  shape: readonly number[];
  byteLength: number;
}

const utf8Encoder = new TextEncoder();

/**
 * The bytes a safetensors file starts with: u64 LE length, then the header JSON padded with spaces to a
 * multiple of 8 (as the reference pads it, so the data region stays 8-byte aligned). Tensors are laid
 * out back to back in the given order. `__metadata__` comes first when given.
 */
export function encodeSafetensorsHeader(
  tensors: readonly HeaderTensorSpec[],
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  // Built entry by entry: a JS object would move integer-like tensor names ("0", "1") to the front.
  const entries: string[] = [];
  if (metadata !== undefined) {
    const pairs = Object.entries(metadata).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    entries.push(`"__metadata__":{${pairs.join(',')}}`);
  }
  let offset = 0;
  for (const t of tensors) {
    const info = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.byteLength] };
    entries.push(`${JSON.stringify(t.name)}:${JSON.stringify(info)}`);
    offset += t.byteLength;
  }
  const json = utf8Encoder.encode(`{${entries.join(',')}}`);
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(HEADER_LENGTH_BYTES + padded);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, HEADER_LENGTH_BYTES);
  out.fill(0x20, HEADER_LENGTH_BYTES + json.byteLength);
  return out;
}

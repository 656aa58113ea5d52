/**
 * A deliberately tiny, independent safetensors reader for tests (no validation): tests compare the
 * engine's output with golden files without going through the code under test.
 */
import { readFileSync } from 'node:fs';

export interface RawTensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

export function readSafetensorsFile(path: string): Map<string, RawTensor> {
  return readSafetensorsBytes(new Uint8Array(readFileSync(path)));
}

export function readSafetensorsBytes(buf: Uint8Array): Map<string, RawTensor> {
  const n = Number(new DataView(buf.buffer, buf.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n))) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const out = new Map<string, RawTensor>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = e.data_offsets;
    out.set(name, { dtype: e.dtype, shape: e.shape, bytes: buf.subarray(8 + n + a, 8 + n + b) });
  }
  return out;
}

/** f32 values of an F32/BF16/F16 tensor, decoded here without the project's codecs. */
export function tensorValues(t: RawTensor): Float32Array {
  const view = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  if (t.dtype === 'F32') {
    const out = new Float32Array(t.bytes.byteLength / 4);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  }
  const out = new Float32Array(t.bytes.byteLength / 2);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < out.length; i++) {
    const h = view.getUint16(i * 2, true);
    if (t.dtype === 'BF16') {
      u[0] = h << 16;
      out[i] = f[0];
    } else if (t.dtype === 'F16') {
      const e = (h >> 10) & 31;
      const m = h & 1023;
      const s = h & 0x8000 ? -1 : 1;
      out[i] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    } else {
      throw new Error(`tensorValues: unsupported dtype ${t.dtype}`);
    }
  }
  return out;
}

/** BF16 bit patterns mapped to a monotone integer line, so |a - b| counts units in the last place. */
export function bf16OrderedInts(t: RawTensor): Int32Array {
  const view = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const out = new Int32Array(t.bytes.byteLength / 2);
  for (let i = 0; i < out.length; i++) {
    const h = view.getUint16(i * 2, true);
    out[i] = h & 0x8000 ? -(h & 0x7fff) : h;
  }
  return out;
}

export type Tolerance = { rel: number; abs: number } | { bf16_ulps: number };

/** Returns a list of human-readable mismatches (empty when within tolerance). */
export function compareTensors(name: string, got: RawTensor, want: RawTensor, tol: Tolerance, limit = 5): string[] {
  const problems: string[] = [];
  if (got.dtype !== want.dtype) problems.push(`${name}: dtype ${got.dtype}, want ${want.dtype}`);
  if (got.shape.join() !== want.shape.join()) problems.push(`${name}: shape [${got.shape}], want [${want.shape}]`);
  if (problems.length) return problems;
  if ('bf16_ulps' in tol) {
    const g = bf16OrderedInts(got);
    const w = bf16OrderedInts(want);
    const gv = tensorValues(got);
    const wv = tensorValues(want);
    // Where a result cancels to almost zero, one f32 rounding of an operand is many bf16 ulps of the
    // result, and no two f32 implementations agree there bit for bit: compare such elements in
    // absolute terms, to 8 f32 ulps of the tensor's largest value (2^-20 · max |want|).
    const floor = 2 ** -20 * wv.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    for (let i = 0; i < g.length && problems.length < limit; i++) {
      if (Math.abs(g[i] - w[i]) > tol.bf16_ulps && !(Math.abs(gv[i] - wv[i]) <= floor)) {
        problems.push(`${name}[${i}]: ${g[i]} vs ${w[i]} (bf16 ordered bits; ${gv[i]} vs ${wv[i]})`);
      }
    }
  } else {
    const g = tensorValues(got);
    const w = tensorValues(want);
    for (let i = 0; i < g.length && problems.length < limit; i++) {
      if (!(Math.abs(g[i] - w[i]) <= tol.abs + tol.rel * Math.abs(w[i]))) problems.push(`${name}[${i}]: ${g[i]} vs ${w[i]}`);
    }
  }
  return problems;
}

/**
 * A minimal ZIP reader for tests, written from the format description (APPNOTE 4.3) and independent
 * of the project's buildZip: stored (uncompressed) entries only, each checked against its CRC-32.
 */
import { crc32 } from '../../src/ui/export/zip.ts';

export function readZip(bytes: Uint8Array): Map<string, Uint8Array> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const expectSignature = (at: number, signature: number, what: string) => {
    const got = view.getUint32(at, true);
    if (got !== signature) throw new Error(`zip: ${what} at ${at} has signature 0x${got.toString(16)}, not 0x${signature.toString(16)}`);
  };
  const endAt = bytes.byteLength - 22;
  expectSignature(endAt, 0x06054b50, 'end of central directory');
  const count = view.getUint16(endAt + 10, true);
  let at = view.getUint32(endAt + 16, true);
  const out = new Map<string, Uint8Array>();
  for (let i = 0; i < count; i++) {
    expectSignature(at, 0x02014b50, 'central directory entry');
    const nameLen = view.getUint16(at + 28, true);
    const crc = view.getUint32(at + 16, true);
    const size = view.getUint32(at + 24, true);
    const localAt = view.getUint32(at + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLen));
    expectSignature(localAt, 0x04034b50, `local header of ${name}`);
    const localNameLen = view.getUint16(localAt + 26, true);
    const extraLen = view.getUint16(localAt + 28, true);
    const dataAt = localAt + 30 + localNameLen + extraLen;
    const data = bytes.slice(dataAt, dataAt + size);
    if (crc32(data) !== crc) throw new Error(`zip: ${name} fails its CRC-32 check`);
    out.set(name, data);
    at += 46 + nameLen + view.getUint16(at + 30, true) + view.getUint16(at + 32, true);
  }
  return out;
}

/** Byte sizes as people write them ("5GB", "500MB", "1.5GiB", "123") and as we print them. */

const UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
};

export class ByteSizeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ByteSizeError';
  }
}

/** Parse a byte size; `what` names the option or field in the error. */
export function parseByteSize(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? UNITS[m[2].toUpperCase()] : undefined;
  if (!m || unit === undefined) {
    throw new ByteSizeError(`${what}: "${text}" is not a size (examples: 5GB, 500MB, 2GiB, 1000000)`);
  }
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes < 1) throw new ByteSizeError(`${what}: "${text}" must be at least 1 byte`);
  return bytes;
}

/** 1234567 -> "1.23 MB" (decimal units, as the Hub shows sizes). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '? B';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}

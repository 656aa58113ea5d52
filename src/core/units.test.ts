import { describe, expect, it } from 'vitest';
import { ByteSizeError, formatBytes, parseByteSize } from './units.ts';

describe('parseByteSize', () => {
  it.each([
    ['5GB', 5_000_000_000],
    ['500MB', 500_000_000],
    ['2GiB', 2 * 1024 ** 3],
    ['1.5kb', 1500],
    ['123', 123],
    [' 64 KiB ', 65536],
  ])('%s is %d bytes', (text, bytes) => {
    expect(parseByteSize(text, '--shard-size')).toBe(bytes);
  });

  it.each(['', 'GB', '5XB', '-1MB', '0'])('rejects %j naming the option', (text) => {
    expect(() => parseByteSize(text, '--shard-size')).toThrow(ByteSizeError);
    expect(() => parseByteSize(text, '--shard-size')).toThrow(/--shard-size/);
  });
});

describe('formatBytes', () => {
  it('uses decimal units', () => {
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(1234567)).toBe('1.23 MB');
    expect(formatBytes(45_600_000_000)).toBe('45.6 GB');
  });
});

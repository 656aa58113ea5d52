import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OutputFolderError } from '../../core/safetensors/errors.ts';
import { DownloadOutputFolder } from './download-folder.ts';
import { readZip } from '../../../tests/helpers/zip-file.ts';
import { buildZip, crc32 } from './zip.ts';

const text = (s: string) => new TextEncoder().encode(s);

describe('crc32', () => {
  it('matches the standard check values', () => {
    expect(crc32(text('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(text('The quick brown fox jumps over the lazy dog'))).toBe(0x414fa339);
  });

  it('continues across chunks', () => {
    expect(crc32(text('56789'), crc32(text('1234')))).toBe(0xcbf43926);
  });
});

describe('buildZip', () => {
  it('stores files that an independent reader (and unzip, when installed) reads back', async () => {
    const files = { 'm/model.safetensors': new Uint8Array(1000).map((_, i) => (i * 7) & 255), 'm/README.md': text('# card é\n'), 'm/empty': new Uint8Array(0) };
    const zip = buildZip(Object.entries(files).map(([path, data]) => ({ path, data: new Blob([data]), crc: crc32(data) })));
    const bytes = new Uint8Array(await zip.arrayBuffer());
    const read = readZip(bytes);
    expect([...read.keys()]).toEqual(Object.keys(files));
    for (const [path, data] of Object.entries(files)) expect([...read.get(path)!]).toEqual([...data]);

    const unzip = spawnSync('unzip', ['-v'], { encoding: 'utf8' });
    if (unzip.status === 0) {
      const dir = mkdtempSync(join(tmpdir(), 'zip-test-'));
      try {
        writeFileSync(join(dir, 'a.zip'), bytes);
        const test = spawnSync('unzip', ['-t', join(dir, 'a.zip')], { encoding: 'utf8' });
        expect(test.stdout).toMatch(/No errors detected/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});

describe('DownloadOutputFolder', () => {
  it('packs the committed files under the folder name', async () => {
    const folder = new DownloadOutputFolder('merged');
    const a = await folder.create('model.safetensors');
    await a.write(text('ab'));
    await a.write(text('cd'));
    await a.close();
    const b = await folder.create('config.json');
    await b.write(text('{}'));
    await b.close();
    expect(folder.archive).toBeNull();
    await folder.commit();
    const read = readZip(new Uint8Array(await folder.archive!.arrayBuffer()));
    expect(new TextDecoder().decode(read.get('merged/model.safetensors'))).toBe('abcd');
    expect(new TextDecoder().decode(read.get('merged/config.json'))).toBe('{}');
  });

  it('refuses models over its limit with a message saying what to do, and abort drops everything', async () => {
    const folder = new DownloadOutputFolder('big', { maxBytes: 10 });
    const sink = await folder.create('model.safetensors');
    await sink.write(new Uint8Array(8));
    const err = await sink.write(new Uint8Array(8)).catch((e) => e);
    expect(err).toBeInstanceOf(OutputFolderError);
    expect(err.message).toMatch(/big\.zip\/model\.safetensors: the model is over 10 B.*save to a folder instead/);
    await folder.abort();
    expect(folder.archive).toBeNull();
    await expect(folder.create('x')).rejects.toThrow(/already aborted/);
  });
});

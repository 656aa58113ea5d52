import { describe, expect, it } from 'vitest';
import { OutputFolderError } from '../../core/safetensors/errors.ts';
import { DirectoryOutputFolder } from './directory-folder.ts';
import { FakeDir, FakeFile, fakeDirectoryHandle } from './fake-fs.testutil.ts';

const bytes = (...v: number[]) => new Uint8Array(v);

async function writeFile(folder: DirectoryOutputFolder, path: string, chunks: Uint8Array[], close = true) {
  const sink = await folder.create(path);
  for (const c of chunks) await sink.write(c);
  if (close) await sink.close();
  return sink;
}

describe('DirectoryOutputFolder', () => {
  it('publishes every file only at commit, inside a new sub-folder', async () => {
    const root = new FakeDir('picked');
    const folder = await DirectoryOutputFolder.open(fakeDirectoryHandle(root), 'merged');
    await writeFile(folder, 'model.safetensors', [bytes(1, 2), bytes(3)]);
    await writeFile(folder, 'config.json', [bytes(123)]);
    await writeFile(folder, 'sub/dir/file.txt', [bytes(9)]);
    // Before commit: placeholders exist but hold no data.
    const before = root.listFiles();
    expect([...before.values()].every((d) => d.byteLength === 0)).toBe(true);
    await folder.commit();
    const after = root.listFiles();
    expect([...after.keys()].sort()).toEqual(['merged/config.json', 'merged/model.safetensors', 'merged/sub/dir/file.txt']);
    expect([...after.get('merged/model.safetensors')!]).toEqual([1, 2, 3]);
    expect([...after.get('merged/sub/dir/file.txt')!]).toEqual([9]);
  });

  it('abort leaves nothing behind: files, sub-folders and the new folder are removed', async () => {
    const root = new FakeDir('picked');
    const keep = new FakeFile('keep.txt');
    keep.data = bytes(7);
    root.children.set('keep.txt', keep);
    const folder = await DirectoryOutputFolder.open(fakeDirectoryHandle(root), 'merged');
    await writeFile(folder, 'model-00001-of-00002.safetensors', [bytes(1)]);
    await writeFile(folder, 'nested/x.bin', [bytes(2)], false);
    await folder.abort();
    expect(root.listEntries()).toEqual(['keep.txt']);
    // abort twice is harmless; the folder refuses further use.
    await folder.abort();
    await expect(folder.create('late.txt')).rejects.toThrow(/already aborted/);
  });

  it('a failed write aborts cleanly when the engine aborts the folder', async () => {
    const root = new FakeDir('picked');
    const folder = await DirectoryOutputFolder.open(fakeDirectoryHandle(root, { failWriteNumber: 3 }), 'merged');
    const sink = await folder.create('model.safetensors');
    await sink.write(bytes(1));
    await sink.write(bytes(2));
    await expect(sink.write(bytes(3))).rejects.toThrow(/model\.safetensors: writing failed .*QuotaExceededError/);
    await folder.abort();
    expect(root.listEntries()).toEqual([]);
  });

  it('refuses a sub-folder that already holds files, and reuses an empty one (kept on abort)', async () => {
    const root = new FakeDir('picked');
    const first = await DirectoryOutputFolder.open(fakeDirectoryHandle(root), 'merged');
    await writeFile(first, 'model.safetensors', [bytes(1)]);
    await first.commit();
    const err = await DirectoryOutputFolder.open(fakeDirectoryHandle(root), 'merged').catch((e) => e);
    expect(err).toBeInstanceOf(OutputFolderError);
    expect(err.message).toMatch(/picked\/merged: a folder of this name already exists and holds files \(e\.g\. "model\.safetensors"\)/);

    root.children.set('empty', new FakeDir('empty'));
    const reuse = await DirectoryOutputFolder.open(fakeDirectoryHandle(root), 'empty');
    await writeFile(reuse, 'a.txt', [bytes(1)]);
    await reuse.abort();
    expect(root.listEntries()).toContain('empty/');
    expect(root.listEntries()).not.toContain('empty/a.txt');
  });

  it('commit refuses a file whose sink was not closed, then abort still cleans up', async () => {
    const root = new FakeDir('picked');
    const folder = await DirectoryOutputFolder.open(fakeDirectoryHandle(root), 'out');
    await writeFile(folder, 'a.txt', [bytes(1)], false);
    await expect(folder.commit()).rejects.toThrow(/out\/a\.txt: file is still open at commit/);
    await folder.abort();
    expect(root.listEntries()).toEqual([]);
  });

  it('rejects unsafe paths and names', async () => {
    const root = new FakeDir('picked');
    await expect(DirectoryOutputFolder.open(fakeDirectoryHandle(root), '..')).rejects.toThrow(OutputFolderError);
    await expect(DirectoryOutputFolder.open(fakeDirectoryHandle(root), 'a/b')).rejects.toThrow(/one folder name/);
    const folder = await DirectoryOutputFolder.open(fakeDirectoryHandle(root), 'ok');
    await expect(folder.create('../escape')).rejects.toThrow(OutputFolderError);
  });
});

import { describe, expect, it } from 'vitest';
import { OutputFolderError } from '../safetensors/errors.ts';
import { MemoryOutputFolder, memoryFileTree } from './memory.ts';

const bytes = (...v: number[]) => new Uint8Array(v);

describe('memoryFileTree', () => {
  const tree = memoryFileTree('mem', { 'a.bin': bytes(1, 2, 3, 4, 5), 'sub/b.txt': bytes(9) });

  it('lists and opens files, reading ranges', async () => {
    expect((await tree.list()).sort()).toEqual(['a.bin', 'sub/b.txt']);
    const a = (await tree.open('a.bin'))!;
    expect(a.name).toBe('mem/a.bin');
    expect(a.size).toBe(5);
    expect(await a.read(1, 3)).toEqual(bytes(2, 3, 4));
    expect(await a.read(5, 0)).toEqual(bytes());
    expect(await tree.open('missing')).toBeNull();
  });

  it('returns copies, so the caller cannot change the file', async () => {
    const a = (await tree.open('a.bin'))!;
    const got = await a.read(0, 2);
    got[0] = 99;
    expect(await a.read(0, 2)).toEqual(bytes(1, 2));
  });

  it('rejects reads outside the file, naming it', async () => {
    const a = (await tree.open('a.bin'))!;
    await expect(a.read(3, 3)).rejects.toThrow(/mem\/a\.bin: cannot read 3 bytes at offset 3: the file is 5 bytes/);
    await expect(a.read(-1, 1)).rejects.toThrow(RangeError);
  });

  it('honours an aborted signal', async () => {
    const a = (await tree.open('a.bin'))!;
    const controller = new AbortController();
    controller.abort();
    await expect(a.read(0, 1, controller.signal)).rejects.toThrow(/abort/i);
  });
});

describe('MemoryOutputFolder', () => {
  it('shows files only after commit, with the chunks concatenated', async () => {
    const folder = new MemoryOutputFolder('out');
    const sink = await folder.create('x/model.bin');
    const chunk = bytes(1, 2);
    await sink.write(chunk);
    chunk[0] = 7; // the sink copied it
    await sink.write(bytes(3));
    await sink.close();
    expect(folder.files.size).toBe(0);
    await folder.commit();
    expect([...folder.files]).toEqual([['x/model.bin', bytes(1, 2, 3)]]);
    await expect(folder.create('y')).rejects.toThrow(/already committed/);
  });

  it('refuses to commit with a file still open, and unsafe or repeated paths', async () => {
    const folder = new MemoryOutputFolder('out');
    await folder.create('a');
    await expect(folder.commit()).rejects.toThrow(/out\/a: file is still open at commit/);
    await expect(folder.create('a')).rejects.toThrow(/already created/);
    for (const bad of ['', '/abs', '../up', 'a/../b', 'a//b', 'a\\b']) {
      await expect(folder.create(bad)).rejects.toBeInstanceOf(OutputFolderError);
    }
  });

  it('drops an aborted file, and everything on abort', async () => {
    const folder = new MemoryOutputFolder();
    const dropped = await folder.create('dropped');
    await dropped.write(bytes(1));
    await dropped.abort();
    await expect(dropped.write(bytes(2))).rejects.toThrow(/after close or abort/);
    const kept = await folder.create('kept');
    await kept.close();
    await folder.commit();
    expect([...folder.files.keys()]).toEqual(['kept']);

    const aborted = new MemoryOutputFolder();
    const s = await aborted.create('a');
    await s.write(bytes(1));
    await s.close();
    await aborted.abort();
    await expect(aborted.commit()).rejects.toThrow(/already aborted/);
    expect(aborted.files.size).toBe(0);
  });
});

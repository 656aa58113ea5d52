import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OutputFolderError } from '../core/safetensors/errors.ts';
import { openModel } from '../core/safetensors/model.ts';
import { LocalFileError, NodeOutputFolder, nodeFileTree } from './node-files.ts';

const GOLDEN = new URL('../../tests/fixtures/golden/models/llama-f32/expert1/', import.meta.url).pathname;

let work: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'node-files-test-'));
});
afterEach(() => {
  rmSync(work, { recursive: true, force: true });
});

const bytes = (n: number, seed = 0) => Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);

describe('nodeFileTree', () => {
  it('lists a folder recursively, following symlinked files, and reads at offsets', async () => {
    mkdirSync(join(work, 'm/sub/deeper'), { recursive: true });
    mkdirSync(join(work, 'blobs'));
    writeFileSync(join(work, 'm/a.bin'), bytes(300));
    writeFileSync(join(work, 'm/sub/deeper/c.txt'), 'hello');
    writeFileSync(join(work, 'blobs/xyz'), bytes(50, 7));
    symlinkSync(join(work, 'blobs/xyz'), join(work, 'm/linked.bin')); // as in the Hugging Face cache
    symlinkSync(join(work, 'm'), join(work, 'm/sub/loop')); // a cycle must not hang the listing
    symlinkSync(join(work, 'gone'), join(work, 'm/dangling'));

    const tree = await nodeFileTree(join(work, 'm'));
    expect(tree.name).toBe(join(work, 'm'));
    expect((await tree.list()).sort()).toEqual(['a.bin', 'linked.bin', 'sub/deeper/c.txt']);
    const a = (await tree.open('a.bin'))!;
    expect(a.size).toBe(300);
    expect(await a.read(250, 50)).toEqual(bytes(300).subarray(250, 300));
    await expect(a.read(290, 20)).rejects.toThrow(/a\.bin: cannot read 20 bytes at offset 290: the file is 300 bytes/);
    expect(await (await tree.open('linked.bin'))!.read(0, 50)).toEqual(bytes(50, 7));
    expect(new TextDecoder().decode(await (await tree.open('sub/deeper/c.txt'))!.read(0, 5))).toBe('hello');
    expect(await tree.open('missing.bin')).toBeNull();
    expect(await tree.open('sub')).toBeNull();
    expect(await tree.open('../blobs/xyz')).toBeNull();
    expect(await tree.open('/etc/passwd')).toBeNull();
  });

  it('makes a tree of one .safetensors file', async () => {
    const path = join(GOLDEN, 'model.safetensors');
    const tree = await nodeFileTree(path);
    expect(await tree.list()).toEqual(['model.safetensors']);
    expect((await tree.open('model.safetensors'))!.size).toBe(readFileSync(path).length);
    expect(await tree.open('config.json')).toBeNull();
  });

  it('rejects a missing path and a file that is not .safetensors, naming the path', async () => {
    const missing = join(work, 'nope');
    const err = await nodeFileTree(missing).catch((e) => e);
    expect(err).toBeInstanceOf(LocalFileError);
    expect(err.name).toBe('LocalFileError');
    expect(err.message).toMatch(new RegExp(`^${missing}: cannot open \\(ENOENT\\)`));
    await expect(nodeFileTree(join(GOLDEN, 'config.json'))).rejects.toThrow(/config\.json: is a file but not a \.safetensors file/);
  });

  it('opens the golden model from disk with the same bytes as the file', async () => {
    const model = await openModel(await nodeFileTree(GOLDEN));
    expect(model.tensors.size).toBe(39);
    expect(model.config).toMatchObject({ torch_dtype: 'float32' });
    const file = readFileSync(join(GOLDEN, 'model.safetensors'));
    const n = Number(file.readBigUInt64LE(0));
    const entry = JSON.parse(file.subarray(8, 8 + n).toString())['model.layers.3.mlp.up_proj.weight'];
    const [begin, end] = entry.data_offsets;
    expect(await model.readTensor('model.layers.3.mlp.up_proj.weight')).toEqual(new Uint8Array(file.subarray(8 + n + begin, 8 + n + end)));
  });
});

describe('NodeOutputFolder', () => {
  async function writeFile(folder: NodeOutputFolder, path: string, data: Uint8Array): Promise<void> {
    const sink = await folder.create(path);
    await sink.write(data.subarray(0, 3));
    await sink.write(data.subarray(3));
    await sink.close();
  }

  it('writes into a sibling temp folder and renames it into place on commit', async () => {
    const out = join(work, 'merged');
    const folder = new NodeOutputFolder(out);
    await writeFile(folder, 'model.safetensors', bytes(100));
    await writeFile(folder, 'nested/readme.md', bytes(10, 1));
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(work)).toEqual([expect.stringMatching(/^merged\.partial-[0-9a-f]+$/)]);
    await folder.commit();
    expect(readdirSync(work)).toEqual(['merged']);
    expect(new Uint8Array(readFileSync(join(out, 'model.safetensors')))).toEqual(bytes(100));
    expect(new Uint8Array(readFileSync(join(out, 'nested/readme.md')))).toEqual(bytes(10, 1));
    await expect(folder.create('late')).rejects.toThrow(/already committed/);
  });

  it('abort removes everything written, open files included', async () => {
    const out = join(work, 'merged');
    const folder = new NodeOutputFolder(out);
    await writeFile(folder, 'a.bin', bytes(10));
    const open = await folder.create('b.bin');
    await open.write(bytes(5));
    await folder.abort();
    expect(readdirSync(work)).toEqual([]);
  });

  it('a file aborted on its own is gone at commit', async () => {
    const out = join(work, 'merged');
    const folder = new NodeOutputFolder(out);
    await writeFile(folder, 'kept.bin', bytes(10));
    const dropped = await folder.create('dropped.bin');
    await dropped.write(bytes(5));
    await dropped.abort();
    await folder.commit();
    expect(readdirSync(out)).toEqual(['kept.bin']);
  });

  it('refuses to commit while a file is open, and unsafe paths', async () => {
    const folder = new NodeOutputFolder(join(work, 'merged'));
    await folder.create('open.bin');
    await expect(folder.commit()).rejects.toThrow(/open\.bin still open at commit/);
    for (const bad of ['../escape', '/abs', 'a/./b', '']) {
      await expect(folder.create(bad)).rejects.toBeInstanceOf(OutputFolderError);
    }
    await folder.abort();
    expect(readdirSync(work)).toEqual([]);
  });

  it('refuses an existing non-empty folder unless overwrite, and then replaces it only at commit', async () => {
    const out = join(work, 'merged');
    mkdirSync(out);
    writeFileSync(join(out, 'old.txt'), 'old');
    expect(() => new NodeOutputFolder(out)).toThrow(OutputFolderError);
    expect(() => new NodeOutputFolder(out)).toThrow(/merged: exists and is not empty \(pass overwrite to replace it\)/);

    const folder = new NodeOutputFolder(out, { overwrite: true });
    await writeFile(folder, 'new.txt', bytes(4));
    expect(readdirSync(out)).toEqual(['old.txt']);
    await folder.commit();
    expect(readdirSync(out)).toEqual(['new.txt']);
    expect(readdirSync(work)).toEqual(['merged']);

    const aborted = new NodeOutputFolder(out, { overwrite: true });
    await writeFile(aborted, 'newer.txt', bytes(4));
    await aborted.abort();
    expect(readdirSync(out)).toEqual(['new.txt']);
  });

  it('uses an existing empty folder, and refuses a path that is a file', async () => {
    const out = join(work, 'empty');
    mkdirSync(out);
    const folder = new NodeOutputFolder(out);
    await writeFile(folder, 'x.bin', bytes(4));
    await folder.commit();
    expect(readdirSync(out)).toEqual(['x.bin']);
    writeFileSync(join(work, 'file'), 'x');
    expect(() => new NodeOutputFolder(join(work, 'file'), { overwrite: true })).toThrow(/exists and is not a folder/);
  });
});

import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiskRangeCache, defaultCacheDir } from './disk-cache.ts';

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'merge-studio-disk-cache-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function files(): Promise<string[]> {
  const out: string[] = [];
  const ranges = join(dir, 'ranges');
  for (const b of await readdir(ranges).catch(() => [])) for (const f of await readdir(join(ranges, b))) out.push(f);
  return out;
}

describe('defaultCacheDir', () => {
  it('is $MERGE_STUDIO_CACHE, else ~/.cache/merge-studio', () => {
    expect(defaultCacheDir({ MERGE_STUDIO_CACHE: '/data/c' })).toBe('/data/c');
    expect(defaultCacheDir({})).toBe(join(homedir(), '.cache', 'merge-studio'));
    expect(defaultCacheDir({ MERGE_STUDIO_CACHE: '' })).toBe(join(homedir(), '.cache', 'merge-studio'));
  });
});

describe('DiskRangeCache', () => {
  it('stores ranges as files that a new instance finds', async () => {
    const a = new DiskRangeCache({ dir });
    await a.put('org/m@c/model.safetensors#0-7', bytes(8, 3));
    const b = new DiskRangeCache({ dir });
    expect(await b.get('org/m@c/model.safetensors#0-7')).toEqual(bytes(8, 3));
    expect(await b.get('org/m@c/model.safetensors#0-8')).toBeUndefined();
    expect(await b.size()).toBe(8);
    expect(await files()).toHaveLength(1);
    expect((await files())[0]).toMatch(/^[0-9a-f]{64}\.bin$/);
  });

  it('evicts least recently used files to stay within the limit, using mtimes across restarts', async () => {
    const a = new DiskRangeCache({ dir, maxBytes: 100 });
    await a.put('old', bytes(40, 1));
    await a.put('new', bytes(40, 2));
    // A read in a new instance makes "old" the most recent, on disk too.
    const b = new DiskRangeCache({ dir, maxBytes: 100 });
    expect(await b.get('old')).toEqual(bytes(40, 1));
    await b.put('third', bytes(40, 3));
    expect(await b.get('new')).toBeUndefined();
    expect(await b.get('old')).toEqual(bytes(40, 1));
    expect(await files()).toHaveLength(2);

    const c = new DiskRangeCache({ dir, maxBytes: 100 });
    expect(await c.size()).toBe(80);
  });

  it('orders a fresh scan by mtime', async () => {
    const a = new DiskRangeCache({ dir, maxBytes: 1000 });
    await a.put('x', bytes(50, 1));
    await a.put('y', bytes(50, 2));
    const ranges = join(dir, 'ranges');
    // Backdate y's file so that a new scan sees it as the older one.
    for (const bucket of await readdir(ranges)) {
      for (const f of await readdir(join(ranges, bucket))) {
        const content = await readFile(join(ranges, bucket, f));
        if (content[0] === 2) await utimes(join(ranges, bucket, f), new Date(1e12), new Date(1e12));
      }
    }
    const b = new DiskRangeCache({ dir, maxBytes: 60 });
    await b.put('z', bytes(10, 3));
    expect(await b.get('y')).toBeUndefined();
    expect(await b.get('x')).toEqual(bytes(50, 1));
  });

  it('ignores foreign and temporary files, and clears', async () => {
    await mkdir(join(dir, 'ranges', 'ab'), { recursive: true });
    await writeFile(join(dir, 'ranges', 'ab', 'junk.tmp'), 'x');
    await writeFile(join(dir, 'ranges', 'README'), 'x');
    const a = new DiskRangeCache({ dir });
    expect(await a.size()).toBe(0);
    await a.put('k', bytes(5, 1));
    await a.clear();
    expect(await a.get('k')).toBeUndefined();
    expect(await a.size()).toBe(0);
  });

  it('serialises concurrent puts without losing entries or leaving temporary files', async () => {
    const a = new DiskRangeCache({ dir });
    await Promise.all(Array.from({ length: 20 }, (_, i) => a.put(`k${i}`, bytes(10, i))));
    expect(await a.size()).toBe(200);
    for (let i = 0; i < 20; i++) expect(await a.get(`k${i}`)).toEqual(bytes(10, i));
    expect((await files()).every((f) => f.endsWith('.bin'))).toBe(true);
  });

  it('reports an unusable folder with a typed error naming the path', async () => {
    await writeFile(join(dir, 'ranges'), 'a file where the folder should be');
    const a = new DiskRangeCache({ dir });
    await expect(a.put('k', bytes(5, 1))).rejects.toMatchObject({ name: 'DiskCacheError' });
    await expect(a.get('k')).rejects.toThrow(`${join(dir, 'ranges')}: cannot list the cache folder`);
  });

  it('reports a range it cannot write, naming the file', async () => {
    const id = createHash('sha256').update('k').digest('hex');
    await mkdir(join(dir, 'ranges'), { recursive: true });
    await writeFile(join(dir, 'ranges', id.slice(0, 2)), 'a file where the bucket folder should be');
    const a = new DiskRangeCache({ dir });
    const err = await a.put('k', bytes(5, 1)).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'DiskCacheError' });
    expect(String(err)).toContain(`${id}.bin: cannot write a cached range`);
  });
});

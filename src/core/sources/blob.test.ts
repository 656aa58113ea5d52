import { describe, expect, it } from 'vitest';
import { blobFileTree } from './blob.ts';

/** A Blob whose every read is recorded: `arrayBuffer()` on the whole blob would show up as a full-size read. */
function spyBlob(bytes: Uint8Array<ArrayBuffer>): { blob: Blob; reads: number[] } {
  const real = new Blob([bytes]);
  const reads: number[] = [];
  const fake = {
    size: real.size,
    type: '',
    slice(start?: number, end?: number) {
      const part = real.slice(start, end);
      return {
        size: part.size,
        arrayBuffer: async () => {
          reads.push(part.size);
          return part.arrayBuffer();
        },
      };
    },
    arrayBuffer: async () => {
      reads.push(real.size);
      return real.arrayBuffer();
    },
  };
  return { blob: fake as unknown as Blob, reads };
}

describe('blobFileTree', () => {
  const data = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);

  it('reads only the requested range of a blob', async () => {
    const { blob, reads } = spyBlob(data);
    const tree = blobFileTree('dropped files', [{ path: 'model.safetensors', blob }]);
    expect(await tree.list()).toEqual(['model.safetensors']);
    const src = (await tree.open('model.safetensors'))!;
    expect(src.size).toBe(1000);
    expect(src.name).toBe('dropped files/model.safetensors');
    expect(await src.read(500, 10)).toEqual(data.subarray(500, 510));
    expect(await src.read(990, 10)).toEqual(data.subarray(990, 1000));
    expect(reads).toEqual([10, 10]);
  });

  it('works on real Blobs and rejects reads outside the file', async () => {
    const tree = blobFileTree('dropped files', [{ path: 'a/b.bin', blob: new Blob([data]) }]);
    const src = (await tree.open('a/b.bin'))!;
    expect(await src.read(0, 4)).toEqual(data.subarray(0, 4));
    await expect(src.read(998, 4)).rejects.toThrow(/dropped files\/a\/b\.bin: cannot read 4 bytes at offset 998: the file is 1000 bytes/);
    expect(await tree.open('nope')).toBeNull();
  });
});

/**
 * Files the user dropped or picked in the browser, read by range: `blob.slice(...).arrayBuffer()` reads
 * only that range, so a multi-gigabyte checkpoint is never loaded whole.
 */
import type { ByteSource, FileTree } from '../source.ts';
import { checkRange, fileTreeOf } from './memory.ts';

export function blobByteSource(name: string, blob: Blob): ByteSource {
  return {
    name,
    size: blob.size,
    async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
      signal?.throwIfAborted();
      checkRange(name, blob.size, offset, length);
      const buffer = await blob.slice(offset, offset + length).arrayBuffer();
      signal?.throwIfAborted();
      return new Uint8Array(buffer);
    },
  };
}

/** A FileTree over blobs (e.g. `File`s from a drop, with `webkitRelativePath` or plain names as paths). */
export function blobFileTree(name: string, files: readonly { path: string; blob: Blob }[]): FileTree {
  return fileTreeOf(name, files.map((f): [string, Blob] => [f.path, f.blob]), blobByteSource);
}

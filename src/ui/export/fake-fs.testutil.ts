/**
 * An in-memory stand-in for FileSystemDirectoryHandle with the browser's semantics where the export
 * code depends on them: getFileHandle({create}) makes an empty file at once; createWritable() writes
 * to a swap copy that replaces the file only on close(); abort() discards the swap copy; removeEntry
 * of a non-empty folder needs {recursive: true}. Tests only.
 */

type Node = FakeFile | FakeDir;

export class FakeFile {
  readonly kind = 'file' as const;
  data = new Uint8Array(0);
  openStreams = 0;
  constructor(readonly name: string) {}
}

export class FakeDir {
  readonly kind = 'directory' as const;
  readonly children = new Map<string, Node>();
  constructor(readonly name: string) {}

  /** Every file under this folder, by path, with its visible bytes. */
  listFiles(prefix = ''): Map<string, Uint8Array> {
    const out = new Map<string, Uint8Array>();
    for (const [name, node] of this.children) {
      if (node.kind === 'file') out.set(prefix + name, node.data);
      else for (const [p, d] of node.listFiles(`${prefix}${name}/`)) out.set(p, d);
    }
    return out;
  }

  /** Every entry (files and folders) under this folder. */
  listEntries(prefix = ''): string[] {
    const out: string[] = [];
    for (const [name, node] of this.children) {
      out.push(prefix + name + (node.kind === 'directory' ? '/' : ''));
      if (node.kind === 'directory') out.push(...node.listEntries(`${prefix}${name}/`));
    }
    return out;
  }
}

function domError(name: string, message: string): Error {
  const e = new Error(message);
  e.name = name;
  return e;
}

export interface FakeFsOptions {
  /** Fail the n-th write of any stream (1-based), to test failures mid-export. */
  failWriteNumber?: number;
}

export function fakeDirectoryHandle(dir: FakeDir, opts: FakeFsOptions = {}, counter = { writes: 0 }): FileSystemDirectoryHandle {
  const handle = {
    kind: 'directory',
    name: dir.name,
    async getDirectoryHandle(name: string, o?: { create?: boolean }) {
      let node = dir.children.get(name);
      if (!node) {
        if (!o?.create) throw domError('NotFoundError', `no folder ${name}`);
        node = new FakeDir(name);
        dir.children.set(name, node);
      }
      if (node.kind !== 'directory') throw domError('TypeMismatchError', `${name} is a file`);
      return fakeDirectoryHandle(node, opts, counter);
    },
    async getFileHandle(name: string, o?: { create?: boolean }) {
      let node = dir.children.get(name);
      if (!node) {
        if (!o?.create) throw domError('NotFoundError', `no file ${name}`);
        node = new FakeFile(name);
        dir.children.set(name, node);
      }
      if (node.kind !== 'file') throw domError('TypeMismatchError', `${name} is a folder`);
      return fakeFileHandle(node, opts, counter);
    },
    async removeEntry(name: string, o?: { recursive?: boolean }) {
      const node = dir.children.get(name);
      if (!node) throw domError('NotFoundError', `no entry ${name}`);
      if (node.kind === 'directory' && node.children.size > 0 && !o?.recursive) {
        throw domError('InvalidModificationError', `${name} is not empty`);
      }
      dir.children.delete(name);
    },
    async *entries() {
      for (const [name, node] of [...dir.children]) {
        yield [name, node.kind === 'file' ? fakeFileHandle(node, opts, counter) : fakeDirectoryHandle(node, opts, counter)];
      }
    },
  };
  return handle as unknown as FileSystemDirectoryHandle;
}

function fakeFileHandle(file: FakeFile, opts: FakeFsOptions, counter: { writes: number }): FileSystemFileHandle {
  return {
    kind: 'file',
    name: file.name,
    async getFile() {
      return new File([file.data as Uint8Array<ArrayBuffer>], file.name);
    },
    async createWritable() {
      let swap: Uint8Array[] = [];
      let open = true;
      file.openStreams++;
      return {
        async write(chunk: Uint8Array) {
          if (!open) throw domError('InvalidStateError', 'stream closed');
          counter.writes++;
          if (opts.failWriteNumber === counter.writes) throw domError('QuotaExceededError', 'disk full');
          swap.push(chunk.slice());
        },
        async close() {
          if (!open) throw domError('InvalidStateError', 'stream closed');
          open = false;
          file.openStreams--;
          const total = swap.reduce((s, c) => s + c.byteLength, 0);
          const data = new Uint8Array(total);
          let at = 0;
          for (const c of swap) {
            data.set(c, at);
            at += c.byteLength;
          }
          file.data = data;
        },
        async abort() {
          if (open) file.openStreams--;
          open = false;
          swap = [];
        },
      };
    },
  } as unknown as FileSystemFileHandle;
}

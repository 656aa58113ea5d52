/**
 * In-memory files: a FileTree over byte arrays (tests, generated demo models) and an OutputFolder whose
 * files appear only when it is committed.
 */
import type { ByteSource, FileTree } from '../source.ts';
import { OutputFolderError } from '../safetensors/errors.ts';
import { checkOutputPath, type ByteSink, type OutputFolder } from '../safetensors/writer.ts';

/** A ByteSource over bytes already in memory. Reads return copies, so callers may keep or mutate them. */
export function memoryByteSource(name: string, bytes: Uint8Array): ByteSource {
  return {
    name,
    size: bytes.byteLength,
    async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
      signal?.throwIfAborted();
      checkRange(name, bytes.byteLength, offset, length);
      return bytes.slice(offset, offset + length);
    },
  };
}

/** Rejects a read outside [0, size), naming the file. Shared by the sources that read ranges. */
export function checkRange(name: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new RangeError(`${name}: cannot read ${length} bytes at offset ${offset}`);
  }
  if (offset + length > size) {
    throw new RangeError(`${name}: cannot read ${length} bytes at offset ${offset}: the file is ${size} bytes`);
  }
}

/**
 * A FileTree over files already at hand: `open` makes each file's ByteSource with `source`, named
 * `<tree>/<path>` for messages. Shared by the in-memory and Blob trees.
 */
export function fileTreeOf<T>(name: string, files: Iterable<[string, T]>, source: (name: string, file: T) => ByteSource): FileTree {
  const byPath = new Map(files);
  return {
    name,
    async list(signal?: AbortSignal): Promise<string[]> {
      signal?.throwIfAborted();
      return [...byPath.keys()];
    },
    async open(path: string, signal?: AbortSignal): Promise<ByteSource | null> {
      signal?.throwIfAborted();
      const file = byPath.get(path);
      return file === undefined ? null : source(`${name}/${path}`, file);
    },
  };
}

/** A FileTree over `files` (paths relative to the root, `/`-separated). */
export function memoryFileTree(name: string, files: Record<string, Uint8Array>): FileTree {
  return fileTreeOf(name, Object.entries(files), memoryByteSource);
}

type FolderState = 'open' | 'committed' | 'aborted';

/** An OutputFolder in memory: `files` stays empty until commit(), and abort() drops everything. */
export class MemoryOutputFolder implements OutputFolder {
  readonly name: string;
  #state: FolderState = 'open';
  /** Files being written; `chunks` is null once the sink is closed. */
  readonly #pending = new Map<string, { chunks: Uint8Array[] | null; bytes: Uint8Array | null }>();
  readonly #files = new Map<string, Uint8Array>();

  constructor(name = 'memory') {
    this.name = name;
  }

  /** The committed files (empty before commit()). */
  get files(): ReadonlyMap<string, Uint8Array> {
    return this.#files;
  }

  async create(path: string): Promise<ByteSink> {
    this.#checkOpen(path);
    checkOutputPath(this.name, path);
    if (this.#pending.has(path)) throw new OutputFolderError(this.name, 'file was already created', path);
    const entry: { chunks: Uint8Array[] | null; bytes: Uint8Array | null } = { chunks: [], bytes: null };
    this.#pending.set(path, entry);
    const folder = this;
    return {
      async write(chunk: Uint8Array): Promise<void> {
        if (entry.chunks === null || folder.#pending.get(path) !== entry) {
          throw new OutputFolderError(folder.name, 'write after close or abort', path);
        }
        entry.chunks.push(chunk.slice());
      },
      async close(): Promise<void> {
        if (entry.chunks === null) return;
        entry.bytes = concat(entry.chunks);
        entry.chunks = null;
      },
      async abort(): Promise<void> {
        entry.chunks = null;
        if (folder.#pending.get(path) === entry) folder.#pending.delete(path);
      },
    };
  }

  async commit(): Promise<void> {
    this.#checkOpen();
    for (const [path, entry] of this.#pending) {
      if (entry.bytes === null) throw new OutputFolderError(this.name, 'file is still open at commit', path);
    }
    for (const [path, entry] of this.#pending) this.#files.set(path, entry.bytes!);
    this.#pending.clear();
    this.#state = 'committed';
  }

  async abort(): Promise<void> {
    if (this.#state === 'committed') return;
    for (const entry of this.#pending.values()) entry.chunks = null;
    this.#pending.clear();
    this.#state = 'aborted';
  }

  #checkOpen(path?: string): void {
    if (this.#state !== 'open') throw new OutputFolderError(this.name, `folder was already ${this.#state}`, path);
  }
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const c of chunks) total += c.byteLength;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

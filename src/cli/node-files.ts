/**
 * Local files for the CLI: a FileTree over a model folder (or one .safetensors file) read at offsets,
 * and an OutputFolder that writes into a sibling temp folder and renames it into place on commit, so
 * the output folder is either complete or absent.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, open, readdir, realpath, rename, rm, rmdir, stat, type FileHandle } from 'node:fs/promises';
import * as nodePath from 'node:path';
import type { ByteSource, FileTree } from '../core/source.ts';
import { OutputFolderError } from '../core/safetensors/errors.ts';
import { checkOutputPath, type ByteSink, type OutputFolder } from '../core/safetensors/writer.ts';
import { checkRange } from '../core/sources/memory.ts';

/** A local path that cannot be opened as a model (missing, wrong kind of file). */
export class LocalFileError extends Error {
  readonly path: string;
  readonly reason: string;

  constructor(path: string, reason: string) {
    super(`${path}: ${reason}`);
    this.name = 'LocalFileError';
    this.path = path;
    this.reason = reason;
  }
}

/** Node reads at most ~2 GiB per call; bigger reads loop. */
const MAX_READ_CHUNK = 1 << 30;

/** A ByteSource over a local file: each read opens, reads at the offset, and closes. */
export function nodeByteSource(filePath: string, size: number): ByteSource {
  return {
    name: filePath,
    size,
    async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
      signal?.throwIfAborted();
      checkRange(filePath, size, offset, length);
      const out = new Uint8Array(length);
      const handle = await open(filePath, 'r');
      try {
        let done = 0;
        while (done < length) {
          signal?.throwIfAborted();
          const want = Math.min(length - done, MAX_READ_CHUNK);
          const { bytesRead } = await handle.read(out, done, want, offset + done);
          if (bytesRead === 0) {
            throw new RangeError(`${filePath}: file ended at ${offset + done} bytes while reading ${length} at ${offset} (it changed on disk?)`);
          }
          done += bytesRead;
        }
      } finally {
        await handle.close();
      }
      return out;
    },
  };
}

/**
 * A FileTree over a local folder (listed recursively, symlinks followed, as in the Hugging Face cache)
 * or over a single `.safetensors` file (a tree of that one file).
 */
export async function nodeFileTree(path: string): Promise<FileTree> {
  const target = nodePath.resolve(path);
  let info;
  try {
    info = await stat(target);
  } catch (e) {
    throw new LocalFileError(path, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (info.isFile()) {
    if (!target.endsWith('.safetensors')) {
      throw new LocalFileError(path, 'is a file but not a .safetensors file; give a model folder or a .safetensors file');
    }
    const fileName = nodePath.basename(target);
    const size = info.size;
    return {
      name: path,
      async list() {
        return [fileName];
      },
      async open(p: string) {
        return p === fileName ? nodeByteSource(target, size) : null;
      },
    };
  }
  if (!info.isDirectory()) throw new LocalFileError(path, 'is neither a folder nor a file');
  return {
    name: path,
    async list(signal?: AbortSignal) {
      return listRecursive(target, signal);
    },
    async open(p: string, signal?: AbortSignal) {
      signal?.throwIfAborted();
      // Paths come from index files too; never let one leave the folder.
      if (p === '' || p.startsWith('/') || p.includes('\\') || p.split('/').some((s) => s === '..' || s === '.' || s === '')) {
        return null;
      }
      const full = nodePath.join(target, ...p.split('/'));
      try {
        const s = await stat(full);
        return s.isFile() ? nodeByteSource(full, s.size) : null;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw e;
      }
    },
  };
}

async function listRecursive(root: string, signal?: AbortSignal): Promise<string[]> {
  const out: string[] = [];
  const visited = new Set<string>();
  const walk = async (dir: string, prefix: string): Promise<void> => {
    signal?.throwIfAborted();
    const real = await realpath(dir);
    if (visited.has(real)) return; // a symlink cycle
    visited.add(real);
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const full = nodePath.join(dir, entry.name);
      const rel = prefix + entry.name;
      let isDir = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        try {
          const s = await stat(full);
          isDir = s.isDirectory();
          isFile = s.isFile();
        } catch {
          continue; // a dangling link
        }
      }
      if (isFile) out.push(rel);
      else if (isDir) await walk(full, `${rel}/`);
    }
  };
  await walk(root, '');
  return out;
}

function randomSuffix(): string {
  return randomBytes(6).toString('hex');
}

function isNonEmptyDir(dir: string): boolean {
  return readdirSync(dir).length > 0;
}

/**
 * Writes into `<outDir>.partial-<random>`; commit() renames it to `outDir`. An existing non-empty
 * `outDir` is refused unless `overwrite`, and then it is replaced only at commit.
 */
export class NodeOutputFolder implements OutputFolder {
  readonly name: string;
  readonly #outDir: string;
  readonly #tempDir: string;
  readonly #overwrite: boolean;
  #tempCreated: Promise<void> | null = null;
  readonly #open = new Map<string, FileHandle>();
  readonly #created = new Set<string>();
  #state: 'open' | 'committed' | 'aborted' = 'open';

  constructor(outDir: string, opts: { overwrite?: boolean } = {}) {
    this.name = outDir;
    this.#outDir = nodePath.resolve(outDir);
    this.#overwrite = opts.overwrite ?? false;
    this.#tempDir = `${this.#outDir}.partial-${randomSuffix()}`;
    this.#checkTarget();
  }

  /** The temp folder files are written to before commit. */
  get tempDir(): string {
    return this.#tempDir;
  }

  async create(path: string): Promise<ByteSink> {
    this.#checkOpen(path);
    checkOutputPath(this.name, path);
    if (this.#created.has(path)) throw new OutputFolderError(this.name, 'file was already created', path);
    this.#created.add(path);
    this.#tempCreated ??= mkdir(this.#tempDir, { recursive: true }).then(() => undefined);
    await this.#tempCreated;
    const full = nodePath.join(this.#tempDir, ...path.split('/'));
    await mkdir(nodePath.dirname(full), { recursive: true });
    const handle = await open(full, 'wx');
    this.#open.set(path, handle);
    const folder = this;
    let closed = false;
    return {
      async write(chunk: Uint8Array): Promise<void> {
        if (closed) throw new OutputFolderError(folder.name, 'write after close or abort', path);
        let done = 0;
        while (done < chunk.byteLength) {
          const { bytesWritten } = await handle.write(chunk, done, chunk.byteLength - done);
          done += bytesWritten;
        }
      },
      async close(): Promise<void> {
        if (closed) return;
        closed = true;
        folder.#open.delete(path);
        await handle.close();
      },
      async abort(): Promise<void> {
        if (closed && !folder.#created.has(path)) return;
        closed = true;
        folder.#open.delete(path);
        folder.#created.delete(path);
        await handle.close().catch(() => undefined);
        await rm(full, { force: true });
      },
    };
  }

  async commit(): Promise<void> {
    this.#checkOpen();
    if (this.#open.size > 0) {
      throw new OutputFolderError(this.name, `${[...this.#open.keys()].join(', ')} still open at commit`);
    }
    this.#tempCreated ??= mkdir(this.#tempDir, { recursive: true }).then(() => undefined);
    await this.#tempCreated;
    this.#checkTarget();
    if (existsSync(this.#outDir)) {
      if (!isNonEmptyDir(this.#outDir)) {
        await rmdir(this.#outDir);
      } else {
        // Move the old folder aside first so a failed rename leaves it in place.
        const old = `${this.#outDir}.old-${randomSuffix()}`;
        await rename(this.#outDir, old);
        try {
          await rename(this.#tempDir, this.#outDir);
        } catch (e) {
          await rename(old, this.#outDir);
          throw e;
        }
        this.#state = 'committed';
        await rm(old, { recursive: true, force: true });
        return;
      }
    }
    await rename(this.#tempDir, this.#outDir);
    this.#state = 'committed';
  }

  async abort(): Promise<void> {
    if (this.#state !== 'open') return;
    this.#state = 'aborted';
    for (const handle of this.#open.values()) await handle.close().catch(() => undefined);
    this.#open.clear();
    await this.#tempCreated?.catch(() => undefined);
    await rm(this.#tempDir, { recursive: true, force: true });
  }

  #checkTarget(): void {
    if (!existsSync(this.#outDir)) return;
    if (!statSync(this.#outDir).isDirectory()) {
      throw new OutputFolderError(this.name, 'exists and is not a folder');
    }
    if (!this.#overwrite && isNonEmptyDir(this.#outDir)) {
      throw new OutputFolderError(this.name, 'exists and is not empty (pass overwrite to replace it)');
    }
  }

  #checkOpen(path?: string): void {
    if (this.#state !== 'open') throw new OutputFolderError(this.name, `folder was already ${this.#state}`, path);
  }
}

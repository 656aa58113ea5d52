/**
 * An OutputFolder over a folder the user picked with the File System Access API (or an OPFS folder):
 * the model is written into a new sub-folder `folderName` of it.
 *
 * Complete or absent: every file is written through `createWritable()`, whose data only replaces the
 * file when the stream is closed, and no stream is closed before commit(); commit() closes them all,
 * abort() aborts them and removes every file and folder this export created. The only thing visible
 * while a merge runs is the new sub-folder with empty placeholder files, and it is removed on abort.
 * Runs in the engine worker (handles are structured-cloneable; createWritable exists in workers).
 */
import { OutputFolderError } from '../../core/safetensors/errors.ts';
import { checkOutputPath, type ByteSink, type OutputFolder } from '../../core/safetensors/writer.ts';

interface PendingFile {
  path: string;
  dir: FileSystemDirectoryHandle;
  fileName: string;
  writable: FileSystemWritableFileStream;
  /** writing → ready (sink closed, data not yet published) → published (stream closed); or dropped. */
  state: 'writing' | 'ready' | 'published' | 'dropped';
}

export class DirectoryOutputFolder implements OutputFolder {
  readonly name: string;
  readonly #parent: FileSystemDirectoryHandle;
  readonly #folderName: string;
  readonly #dir: FileSystemDirectoryHandle;
  /** Whether this export made the sub-folder (then abort removes it whole). */
  readonly #createdDir: boolean;
  readonly #files = new Map<string, PendingFile>();
  /** Sub-folders made for nested paths, deepest last (removed in reverse on abort). */
  readonly #createdSubdirs: { parent: FileSystemDirectoryHandle; name: string }[] = [];
  #state: 'open' | 'committing' | 'committed' | 'aborted' = 'open';

  private constructor(parent: FileSystemDirectoryHandle, folderName: string, dir: FileSystemDirectoryHandle, createdDir: boolean) {
    this.#parent = parent;
    this.#folderName = folderName;
    this.#dir = dir;
    this.#createdDir = createdDir;
    this.name = `${parent.name || 'picked folder'}/${folderName}`;
  }

  /**
   * Make (or reuse, when empty) the sub-folder `folderName` in `parent`. Refuses a sub-folder that
   * already holds files, so an export never mixes with or overwrites an earlier one.
   */
  static async open(parent: FileSystemDirectoryHandle, folderName: string): Promise<DirectoryOutputFolder> {
    const label = `${parent.name || 'picked folder'}/${folderName}`;
    checkOutputPath(label, folderName);
    if (folderName.includes('/')) throw new OutputFolderError(label, 'the output name must be one folder name, without "/"');
    let existing: FileSystemDirectoryHandle | null = null;
    try {
      existing = await parent.getDirectoryHandle(folderName);
    } catch (err) {
      if (!isNotFound(err)) throw folderError(label, 'cannot open the folder', err);
    }
    if (existing) {
      for await (const [name] of existing.entries()) {
        throw new OutputFolderError(
          label,
          `a folder of this name already exists and holds files (e.g. "${name}"): choose another output name or another folder`,
        );
      }
      return new DirectoryOutputFolder(parent, folderName, existing, false);
    }
    let dir: FileSystemDirectoryHandle;
    try {
      dir = await parent.getDirectoryHandle(folderName, { create: true });
    } catch (err) {
      throw folderError(label, 'cannot create the folder (is it writable?)', err);
    }
    return new DirectoryOutputFolder(parent, folderName, dir, true);
  }

  async create(path: string): Promise<ByteSink> {
    if (this.#state !== 'open') throw new OutputFolderError(this.name, `folder was already ${this.#state}`, path);
    checkOutputPath(this.name, path);
    if (this.#files.has(path)) throw new OutputFolderError(this.name, 'file was already created', path);
    const parts = path.split('/');
    const fileName = parts.pop()!;
    let dir = this.#dir;
    for (const part of parts) dir = await this.#subdir(dir, part);
    let writable: FileSystemWritableFileStream;
    try {
      const handle = await dir.getFileHandle(fileName, { create: true });
      writable = await handle.createWritable({ keepExistingData: false });
    } catch (err) {
      throw folderError(this.name, 'cannot create the file', err, path);
    }
    const file: PendingFile = { path, dir, fileName, writable, state: 'writing' };
    this.#files.set(path, file);
    const folder = this;
    return {
      async write(chunk: Uint8Array): Promise<void> {
        if (file.state !== 'writing') throw new OutputFolderError(folder.name, 'write after close or abort', path);
        try {
          await file.writable.write(chunk as Uint8Array<ArrayBuffer>);
        } catch (err) {
          throw folderError(folder.name, 'writing failed (is the disk full?)', err, path);
        }
      },
      async close(): Promise<void> {
        // Publishing waits for commit(): the stream stays open so its data is not visible yet.
        if (file.state === 'writing') file.state = 'ready';
      },
      async abort(): Promise<void> {
        await folder.#drop(file);
      },
    };
  }

  async commit(): Promise<void> {
    if (this.#state !== 'open') throw new OutputFolderError(this.name, `folder was already ${this.#state}`);
    for (const file of this.#files.values()) {
      if (file.state === 'writing') throw new OutputFolderError(this.name, 'file is still open at commit', file.path);
    }
    this.#state = 'committing';
    try {
      for (const file of this.#files.values()) {
        if (file.state !== 'ready') continue;
        await file.writable.close();
        file.state = 'published';
      }
    } catch (err) {
      this.#state = 'open';
      await this.abort();
      throw folderError(this.name, 'saving the files failed; nothing was kept', err);
    }
    this.#state = 'committed';
  }

  async abort(): Promise<void> {
    if (this.#state === 'committed' || this.#state === 'aborted') return;
    this.#state = 'aborted';
    for (const file of this.#files.values()) await this.#drop(file);
    for (const sub of this.#createdSubdirs.reverse()) await removeQuietly(sub.parent, sub.name, true);
    if (this.#createdDir) await removeQuietly(this.#parent, this.#folderName, true);
  }

  async #drop(file: PendingFile): Promise<void> {
    const wasPublished = file.state === 'published';
    if (file.state === 'dropped') return;
    file.state = 'dropped';
    if (!wasPublished) await file.writable.abort().catch(() => undefined);
    await removeQuietly(file.dir, file.fileName, false);
  }

  async #subdir(parent: FileSystemDirectoryHandle, name: string): Promise<FileSystemDirectoryHandle> {
    try {
      return await parent.getDirectoryHandle(name);
    } catch (err) {
      if (!isNotFound(err)) throw folderError(this.name, `cannot open sub-folder "${name}"`, err);
    }
    const dir = await parent.getDirectoryHandle(name, { create: true });
    this.#createdSubdirs.push({ parent, name });
    return dir;
  }
}

function isNotFound(err: unknown): boolean {
  return (err as { name?: string } | null)?.name === 'NotFoundError';
}

async function removeQuietly(dir: FileSystemDirectoryHandle, name: string, recursive: boolean): Promise<void> {
  try {
    await dir.removeEntry(name, { recursive });
  } catch (err) {
    if (!isNotFound(err)) console.warn(`could not remove ${name}:`, err);
  }
}

function folderError(folder: string, reason: string, cause: unknown, path?: string): OutputFolderError {
  const detail = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
  return new OutputFolderError(folder, `${reason} (${detail})`, path);
}

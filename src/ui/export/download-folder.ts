/**
 * The download fallback, for browsers without the File System Access API: an OutputFolder that keeps
 * the files as Blobs and, at commit, packs them into one ZIP (folder `folderName` inside) for the page
 * to download. Nothing reaches the user's disk unless the merge completes. Holding the model in
 * memory limits this to small models (MAX_DOWNLOAD_BYTES).
 */
import { OutputFolderError } from '../../core/safetensors/errors.ts';
import { checkOutputPath, type ByteSink, type OutputFolder } from '../../core/safetensors/writer.ts';
import { formatBytes } from '../../core/units.ts';
import { buildZip, crc32, type ZipEntry } from './zip.ts';

/** Largest model the download fallback takes (it is held in memory until the archive is built). */
export const MAX_DOWNLOAD_BYTES = 2_000_000_000;

interface PendingFile {
  path: string;
  chunks: Uint8Array<ArrayBuffer>[];
  crc: number;
  blob: Blob | null;
}

export class DownloadOutputFolder implements OutputFolder {
  readonly name: string;
  readonly #folderName: string;
  readonly #limit: number;
  readonly #files = new Map<string, PendingFile>();
  #bytes = 0;
  #state: 'open' | 'committed' | 'aborted' = 'open';
  #archive: Blob | null = null;

  constructor(folderName: string, opts: { maxBytes?: number } = {}) {
    checkOutputPath(`${folderName}.zip`, folderName);
    this.#folderName = folderName;
    this.name = `${folderName}.zip`;
    this.#limit = opts.maxBytes ?? MAX_DOWNLOAD_BYTES;
  }

  /** The ZIP once committed, else null. */
  get archive(): Blob | null {
    return this.#archive;
  }

  async create(path: string): Promise<ByteSink> {
    if (this.#state !== 'open') throw new OutputFolderError(this.name, `folder was already ${this.#state}`, path);
    checkOutputPath(this.name, path);
    if (this.#files.has(path)) throw new OutputFolderError(this.name, 'file was already created', path);
    const file: PendingFile = { path, chunks: [], crc: 0, blob: null };
    this.#files.set(path, file);
    const folder = this;
    return {
      async write(chunk: Uint8Array): Promise<void> {
        if (file.blob !== null || folder.#files.get(path) !== file) {
          throw new OutputFolderError(folder.name, 'write after close or abort', path);
        }
        folder.#bytes += chunk.byteLength;
        if (folder.#bytes > folder.#limit) {
          throw new OutputFolderError(
            folder.name,
            `the model is over ${formatBytes(folder.#limit)}, the most a download can hold: ` +
              'save to a folder instead (needs a browser with the File System Access API, such as Chrome or Edge)',
            path,
          );
        }
        file.crc = crc32(chunk, file.crc);
        file.chunks.push(chunk.slice());
      },
      async close(): Promise<void> {
        if (file.blob !== null) return;
        file.blob = new Blob(file.chunks);
        file.chunks = [];
      },
      async abort(): Promise<void> {
        file.chunks = [];
        if (folder.#files.get(path) === file) folder.#files.delete(path);
      },
    };
  }

  async commit(): Promise<void> {
    if (this.#state !== 'open') throw new OutputFolderError(this.name, `folder was already ${this.#state}`);
    const entries: ZipEntry[] = [];
    for (const f of this.#files.values()) {
      if (f.blob === null) throw new OutputFolderError(this.name, 'file is still open at commit', f.path);
      entries.push({ path: `${this.#folderName}/${f.path}`, data: f.blob, crc: f.crc });
    }
    this.#archive = buildZip(entries);
    this.#files.clear();
    this.#state = 'committed';
  }

  async abort(): Promise<void> {
    if (this.#state === 'committed') return;
    this.#files.clear();
    this.#state = 'aborted';
  }
}

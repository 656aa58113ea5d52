/**
 * A typed test API on `window.__mergeStudioTest`, for Playwright's page.evaluate: folder pickers
 * cannot be clicked in a headless browser, so tests hand the real export code an OPFS folder, then
 * read the exported files back from OPFS. Installed by main.tsx in test builds only (`vite build
 * --mode e2e`): it hands out the whole store, the Hub token included, so a production build must not
 * have it (tests/build.test.ts checks the bundle).
 */
import { recipeToYaml } from '../core/recipe/write.ts';
import type { StudioStore } from './store/index.ts';

export interface TestSnapshot {
  shelf: { ref: string; status: string; error?: string }[];
  recipeYaml: string;
  job: string;
  compat: string;
  gpu: string;
  backend: string;
}

export interface MergeStudioTestApi {
  /** Export into OPFS folder `name` (made if absent) instead of asking with the picker; null restores the picker. */
  useOpfsExport(name: string | null): Promise<void>;
  /** Every file under OPFS path `path` (`a/b`), base64 by relative path. */
  readOpfsFiles(path: string): Promise<Record<string, string>>;
  /** Every entry under OPFS path `path`, folders ending in `/` (empty list if it does not exist). */
  listOpfs(path: string): Promise<string[]>;
  /** Remove everything from OPFS. */
  clearOpfs(): Promise<void>;
  snapshot(): TestSnapshot;
  /** Downloads handed to the browser so far. */
  downloads(): { name: string; size: number }[];
  store: StudioStore;
}

declare global {
  interface Window {
    __mergeStudioTest?: MergeStudioTestApi;
  }
}

async function opfsDir(path: string, create: boolean): Promise<FileSystemDirectoryHandle | null> {
  let dir = await navigator.storage.getDirectory();
  for (const part of path.split('/').filter(Boolean)) {
    try {
      dir = await dir.getDirectoryHandle(part, { create });
    } catch (err) {
      if ((err as Error).name === 'NotFoundError') return null;
      throw err;
    }
  }
  return dir;
}

async function walk(dir: FileSystemDirectoryHandle, prefix: string, visit: (path: string, handle: FileSystemHandle) => Promise<void>) {
  for await (const [name, handle] of dir.entries()) {
    await visit(prefix + name, handle);
    if (handle.kind === 'directory') await walk(handle as FileSystemDirectoryHandle, `${prefix}${name}/`, visit);
  }
}

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function installTestApi(opts: {
  store: StudioStore;
  setExportDirectory(dir: FileSystemDirectoryHandle | null): void;
  downloads: { name: string; size: number }[];
}): void {
  const api: MergeStudioTestApi = {
    async useOpfsExport(name) {
      opts.setExportDirectory(name === null ? null : await opfsDir(name, true));
    },
    async readOpfsFiles(path) {
      const dir = await opfsDir(path, false);
      const out: Record<string, string> = {};
      if (!dir) return out;
      await walk(dir, '', async (p, h) => {
        if (h.kind === 'file') out[p] = toBase64(new Uint8Array(await (await (h as FileSystemFileHandle).getFile()).arrayBuffer()));
      });
      return out;
    },
    async listOpfs(path) {
      const dir = await opfsDir(path, false);
      const out: string[] = [];
      if (dir) await walk(dir, '', async (p, h) => void out.push(h.kind === 'directory' ? `${p}/` : p));
      return out.sort();
    },
    async clearOpfs() {
      const root = await navigator.storage.getDirectory();
      const names: string[] = [];
      for await (const [name] of root.entries()) names.push(name);
      for (const name of names) await root.removeEntry(name, { recursive: true });
    },
    snapshot() {
      const s = opts.store.getState();
      return {
        shelf: s.shelf.map((m) => ({ ref: m.ref, status: m.load.status, error: m.load.status === 'failed' ? m.load.error.message : undefined })),
        recipeYaml: recipeToYaml(s.recipe),
        job: s.job.status,
        compat: s.compat.status,
        gpu: s.gpu.status,
        backend: s.backend,
      };
    },
    downloads: () => [...opts.downloads],
    store: opts.store,
  };
  window.__mergeStudioTest = api;
}

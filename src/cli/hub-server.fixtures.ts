/**
 * Test fixtures for the local Hub server: a temporary root holding copies of the golden models (and
 * any extra files) laid out as repos. Node-only; used by tests.
 */
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const GOLDEN_MODELS_DIR = fileURLToPath(new URL('../../tests/fixtures/golden/models/', import.meta.url));

/** Per repo id: a golden model (`'llama-bf16/expert1'`) or explicit files (path → content). */
export type RepoSpec = string | Record<string, Uint8Array | string>;

export interface HubRoot {
  root: string;
  /** Absolute path of a file of a repo in the root. */
  file(repo: string, path: string): string;
  cleanup(): Promise<void>;
}

export async function makeHubRoot(repos: Record<string, RepoSpec>): Promise<HubRoot> {
  const root = await mkdtemp(join(tmpdir(), 'merge-studio-hub-'));
  for (const [repo, spec] of Object.entries(repos)) {
    const dir = join(root, ...repo.split('/'));
    if (typeof spec === 'string') {
      await cp(join(GOLDEN_MODELS_DIR, spec), dir, { recursive: true });
    } else {
      for (const [path, content] of Object.entries(spec)) {
        const abs = join(dir, ...path.split('/'));
        await mkdir(dirname(abs), { recursive: true });
        await writeFile(abs, content);
      }
    }
  }
  return {
    root,
    file: (repo, path) => join(root, ...repo.split('/'), ...path.split('/')),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

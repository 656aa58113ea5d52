/** `merge-studio analyze` run beside the studio, for e2e tests that compare the tab's numbers with the CLI's. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AnalysisResult } from '../src/gpu/analysis/types.ts';
import { expect } from './studio.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** `merge-studio analyze` on `yaml` (its ./demo/ references resolved to public/demo), CPU backend. */
export function cliAnalysis(yaml: string): AnalysisResult {
  const work = mkdtempSync(join(tmpdir(), 'merge-studio-analysis-e2e-'));
  try {
    symlinkSync(join(ROOT, 'public', 'demo'), join(work, 'demo'));
    writeFileSync(join(work, 'recipe.yml'), yaml);
    const cli = spawnSync(process.execPath, ['bin/merge-studio.mjs', 'analyze', join(work, 'recipe.yml'), '--json', '-', '--backend', 'cpu', '--quiet'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    expect(cli.status, cli.stderr).toBe(0);
    return JSON.parse(cli.stdout) as AnalysisResult;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Shared set-up for the tests of the `merge-studio` command (src/cli/*.test.ts, tests/*.test.ts):
 * the command run in-process with its output captured, its analysis as JSON, and the environment
 * that points it at a local Hub server.
 */
import { expect } from 'vitest';
import type { AnalysisResult } from '../gpu/analysis/types.ts';
import { main } from './main.ts';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `merge-studio <args>` in this process; its exit code and what it wrote to each stream. */
export async function cli(args: string[]): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    stdout: { write: (s: string) => ((stdout += s), true) } as unknown as NodeJS.WritableStream,
    stderr: { write: (s: string) => ((stderr += s), true) } as unknown as NodeJS.WritableStream,
  });
  return { code, stdout, stderr };
}

/** `merge-studio analyze RECIPE --json -` (CPU backend): the analysis the CLI writes. */
export async function cliAnalysis(recipePath: string): Promise<AnalysisResult> {
  const run = await cli(['analyze', recipePath, '--json', '-', '--backend', 'cpu', '--quiet']);
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as AnalysisResult;
}

const HUB_ENV = ['HF_ENDPOINT', 'MERGE_STUDIO_CACHE', 'HF_TOKEN'] as const;

/**
 * Points the command at the Hub server at `hubUrl` (HF_ENDPOINT), with its range cache in `cacheDir`
 * and no token; returns the function that puts the three variables back as they were.
 */
export function useHubEnv(hubUrl: string, cacheDir: string): () => void {
  const saved = HUB_ENV.map((key) => [key, process.env[key]] as const);
  process.env.HF_ENDPOINT = hubUrl;
  process.env.MERGE_STUDIO_CACHE = cacheDir;
  delete process.env.HF_TOKEN;
  return () => {
    for (const [key, value] of saved) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
}

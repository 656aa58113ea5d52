/**
 * A merge read from a Hub that behaves like the real one: weights redirect to a CDN at signed URLs,
 * and `/resolve/` requests are rate-limited (a limit far below one request per tensor). The merge
 * gives the same bytes as from local folders, makes one `/resolve/` request per file it reads (not
 * one per tensor), and prints the count.
 */
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, useHubEnv } from '../src/cli/cli.testutil.ts';
import { startHubServer, type HubServer } from '../src/cli/hub-server.ts';

const MODELS = resolve(__dirname, 'fixtures/golden/models/llama-bf16');
const work = mkdtempSync(join(tmpdir(), 'merge-studio-cdn-'));
const root = join(work, 'hub');
let hub: HubServer;
let restoreEnv: (() => void) | undefined;

function recipe(name: string, refs: { base: string; e1: string; e2: string }) {
  const path = join(work, name);
  writeFileSync(
    path,
    `models:\n  - model: ${refs.e1}\n    parameters: {weight: 0.7, density: 0.6}\n  - model: ${refs.e2}\n    parameters: {weight: 0.5, density: 0.8}\n` +
      `merge_method: dare_ties\nbase_model: ${refs.base}\ndtype: float32\nout_dtype: bfloat16\n`,
  );
  return path;
}

beforeAll(async () => {
  for (const name of ['base', 'expert1']) cpSync(join(MODELS, name), join(root, 'golden', name), { recursive: true });
  // A sharded checkpoint (index + several shards), written by a one-model linear merge in 100 kB shards.
  const one = join(work, 'one.yml');
  writeFileSync(one, `models:\n  - model: ${join(MODELS, 'expert2')}\n    parameters: {weight: 1}\nmerge_method: linear\ndtype: float32\nout_dtype: bfloat16\n`);
  expect((await cli(['merge', one, '--out', join(root, 'golden', 'sharded'), '--quiet', '--backend', 'cpu', '--shard-size', '100kB'])).code).toBe(0);
  hub = await startHubServer({ root, cdn: { ttlMs: 600_000 }, rateLimit: { resolves: 30, windowMs: 300_000 } });
  restoreEnv = useHubEnv(hub.url, join(work, 'cache'));
});

afterAll(async () => {
  await hub?.close();
  restoreEnv?.();
  rmSync(work, { recursive: true, force: true });
});

describe('a merge through a CDN-redirecting, rate-limited Hub', () => {
  it('gives the local result with one /resolve/ request per file read, and prints the count', async () => {
    const localOut = join(work, 'local-out');
    const local = await cli(['merge', recipe('local.yml', { base: join(MODELS, 'base'), e1: join(MODELS, 'expert1'), e2: join(root, 'golden', 'sharded') }), '--out', localOut, '--quiet', '--backend', 'cpu', '--seed', '7']);
    expect(local).toEqual({ code: 0, stdout: '', stderr: '' });

    hub.stats.reset();
    const hubOut = join(work, 'hub-out');
    const fromHub = await cli(['merge', recipe('hub.yml', { base: 'golden/base', e1: 'golden/expert1', e2: 'golden/sharded' }), '--out', hubOut, '--quiet', '--backend', 'cpu', '--seed', '7']);
    expect(fromHub).toEqual({ code: 0, stdout: '', stderr: '' });
    for (const f of readdirSync(localOut).filter((n) => n !== 'mergekit_config.yml' && n !== 'README.md')) {
      expect(readFileSync(join(hubOut, f)).equals(readFileSync(join(localOut, f))), f).toBe(true);
    }

    const log = hub.stats.log;
    const resolves = log.filter((r) => r.path.includes('/resolve/'));
    const cdnReads = log.filter((r) => r.origin === 'cdn');
    const filesRead = new Set(resolves.map((r) => r.path));
    const shards = readdirSync(join(root, 'golden', 'sharded')).filter((n) => n.endsWith('.safetensors')).length;
    expect(shards).toBeGreaterThan(2);
    // Each file resolved once; every other byte range from the CDN; nothing refused by the limit.
    expect(resolves.length).toBe(filesRead.size);
    expect(resolves.every((r) => r.status === 302 || r.status === 206)).toBe(true);
    expect(resolves.filter((r) => r.status === 302).length).toBe(2 + shards);
    expect(cdnReads.length).toBeGreaterThan(3 * resolves.length);
    expect(cdnReads.every((r) => r.status === 206 && r.authorization === undefined)).toBe(true);
    console.log(
      `/resolve/ requests for a dare_ties merge of 3 models (${2 + shards} weight files, ${filesRead.size} files in all): ` +
        `${resolves.length}; byte ranges read from the CDN: ${cdnReads.length}`,
    );
  }, 120_000);
});

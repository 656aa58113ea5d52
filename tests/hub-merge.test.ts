/**
 * Merging models served by the local Hub-compatible server gives byte-identical output to merging
 * the same models from local folders; only headers and tensor ranges are fetched; a second run is
 * served from the range cache; a malformed checkpoint and a gated repo fail with clear messages.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, useHubEnv } from '../src/cli/cli.testutil.ts';
import { startHubServer, type HubServer } from '../src/cli/hub-server.ts';

const MODELS = resolve(__dirname, 'fixtures/golden/models/llama-bf16');
const work = mkdtempSync(join(tmpdir(), 'merge-studio-hub-'));
const root = join(work, 'hub');
let hub: HubServer;
let restoreEnv: (() => void) | undefined;

beforeAll(async () => {
  for (const name of ['base', 'expert1', 'expert2']) cpSync(join(MODELS, name), join(root, 'golden', name), { recursive: true });
  cpSync(join(MODELS, 'expert1'), join(root, 'golden', 'gated'), { recursive: true });
  writeFileSync(join(root, 'golden', 'gated', '.gated'), 'hf_secret_token_123');
  mkdirSync(join(root, 'golden', 'broken'));
  cpSync(join(MODELS, 'expert2', 'config.json'), join(root, 'golden', 'broken', 'config.json'));
  writeFileSync(join(root, 'golden', 'broken', 'model.safetensors'), Buffer.from([16, 0, 0, 0, 0, 0, 0, 0, ...Buffer.from('{"a": {"dtype": ')]));
  hub = await startHubServer({ root, port: 0 });
  restoreEnv = useHubEnv(hub.url, join(work, 'cache'));
});

afterAll(async () => {
  await hub?.close();
  restoreEnv?.();
  rmSync(work, { recursive: true, force: true });
});

function recipe(name: string, refs: { base: string; e1: string; e2: string }) {
  const path = join(work, name);
  writeFileSync(
    path,
    `models:\n  - model: ${refs.e1}\n    parameters: {weight: 1, density: 0.5}\n  - model: ${refs.e2}\n    parameters: {weight: 0.6, density: 0.7}\n` +
      `merge_method: ties\nbase_model: ${refs.base}\ndtype: float32\nout_dtype: bfloat16\n`,
  );
  return path;
}

const TENSOR_BYTES = 3 * (440128 - 8 - 4024); // three models' tensor data (file minus header)

describe('merging from the Hub', () => {
  it('gives the same bytes as local folders, fetching only headers and tensor ranges, then hits the cache', async () => {
    const local = join(work, 'local-out');
    const fromLocal = await cli(['merge', recipe('local.yml', { base: join(MODELS, 'base'), e1: join(MODELS, 'expert1'), e2: join(MODELS, 'expert2') }), '--out', local, '--quiet', '--backend', 'cpu']);
    expect(fromLocal).toEqual({ code: 0, stdout: '', stderr: '' });

    hub.stats.reset();
    const remote = join(work, 'hub-out');
    const hubRecipe = recipe('hub.yml', { base: 'golden/base', e1: 'golden/expert1@main', e2: 'golden/expert2' });
    const fromHub = await cli(['merge', hubRecipe, '--out', remote, '--quiet', '--backend', 'cpu']);
    expect(fromHub).toEqual({ code: 0, stdout: '', stderr: '' });
    for (const f of ['model.safetensors', 'config.json']) {
      expect(readFileSync(join(remote, f)).equals(readFileSync(join(local, f)))).toBe(true);
    }
    expect(readFileSync(join(remote, 'mergekit_config.yml'), 'utf8')).toContain('golden/expert1@main');

    const sent = hub.stats.bodyBytes('/resolve/');
    // Every tensor byte once, plus headers and config files: close to the data, never whole files twice.
    expect(sent).toBeGreaterThanOrEqual(TENSOR_BYTES);
    expect(sent).toBeLessThan(TENSOR_BYTES + 3 * 20_000);
    expect(hub.stats.log.filter((r) => r.path.endsWith('.safetensors') && r.method === 'GET').every((r) => r.range !== undefined)).toBe(true);

    hub.stats.reset();
    const again = await cli(['merge', hubRecipe, '--out', join(work, 'hub-out-2'), '--quiet', '--backend', 'cpu']);
    expect(again).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(hub.stats.bodyBytes('.safetensors')).toBe(0);
    expect(readFileSync(join(work, 'hub-out-2', 'model.safetensors')).equals(readFileSync(join(local, 'model.safetensors')))).toBe(true);
  });

  it('reads a sharded model (index + shards) from the Hub like the same folder on disk', async () => {
    // A sharded checkpoint: expert2 passed through a one-model linear merge written in 100 kB shards.
    const sharded = join(root, 'golden', 'sharded');
    const one = join(work, 'one.yml');
    writeFileSync(one, `models:\n  - model: ${join(MODELS, 'expert2')}\n    parameters: {weight: 1}\nmerge_method: linear\n`);
    expect((await cli(['merge', one, '--out', sharded, '--quiet', '--backend', 'cpu', '--shard-size', '100kB'])).code).toBe(0);
    const out = { local: join(work, 'sharded-local'), hub: join(work, 'sharded-hub') };
    const local = await cli(['merge', recipe('sh-local.yml', { base: join(MODELS, 'base'), e1: join(MODELS, 'expert1'), e2: sharded }), '--out', out.local, '--quiet', '--backend', 'cpu']);
    expect(local).toEqual({ code: 0, stdout: '', stderr: '' });
    hub.stats.reset();
    const remote = await cli(['merge', recipe('sh-hub.yml', { base: 'golden/base', e1: 'golden/expert1', e2: 'golden/sharded' }), '--out', out.hub, '--quiet', '--backend', 'cpu']);
    expect(remote).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(hub.stats.count('model.safetensors.index.json')).toBeGreaterThan(0);
    expect(hub.stats.count('/golden/sharded/resolve/')).toBeGreaterThan(0);
    expect(hub.stats.count('model-00003-of-')).toBeGreaterThan(0);
    expect(readFileSync(join(out.hub, 'model.safetensors')).equals(readFileSync(join(out.local, 'model.safetensors')))).toBe(true);
  });

  it('names the repo and asks for a token when a gated repo is read without one', async () => {
    const { code, stderr } = await cli(['merge', recipe('gated.yml', { base: 'golden/base', e1: 'golden/gated', e2: 'golden/expert2' }), '--out', join(work, 'gated-out')]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/golden\/gated/);
    expect(stderr).toMatch(/accept its terms on the Hub and give a token/);
  });

  it('reads a gated repo with $HF_TOKEN, sent only in the Authorization header', async () => {
    process.env.HF_TOKEN = 'hf_secret_token_123';
    try {
      hub.stats.reset();
      const out = join(work, 'gated-ok');
      const { code, stderr } = await cli(['merge', recipe('gated2.yml', { base: 'golden/base', e1: 'golden/gated', e2: 'golden/expert2' }), '--out', out, '--backend', 'cpu']);
      expect(code).toBe(0);
      expect(stderr).not.toContain('hf_secret_token_123');
      expect(hub.stats.log.some((r) => r.authorization === 'Bearer hf_secret_token_123')).toBe(true);
      expect(hub.stats.log.every((r) => !r.url.includes('hf_secret'))).toBe(true);
      for (const f of ['README.md', 'mergekit_config.yml', 'config.json']) expect(readFileSync(join(out, f), 'utf8')).not.toContain('hf_secret');
    } finally {
      delete process.env.HF_TOKEN;
    }
  });

  it('reports a malformed checkpoint on the Hub as a safetensors error naming the repo', async () => {
    const { code, stderr } = await cli(['merge', recipe('broken.yml', { base: 'golden/base', e1: 'golden/broken', e2: 'golden/expert2' }), '--out', join(work, 'broken-out')]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/golden\/broken/);
    expect(stderr).toMatch(/model\.safetensors/);
  });

  it('reports a repo that does not exist', async () => {
    const { code, stderr } = await cli(['merge', recipe('missing.yml', { base: 'golden/base', e1: 'golden/nope', e2: 'golden/expert2' }), '--out', join(work, 'missing-out')]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/golden\/nope/);
  });
});

/**
 * `merge-studio push` and publishToHub against the local Hub server: a merge of Hub models is
 * exported, then pushed; every file lands byte-identical (the card rewritten for the Hub: license
 * carried over, base models, tags, coefficients image, analysis), large files through LFS, the token
 * only in Authorization headers and nowhere in output, files or URLs. Cancel, refusals, re-push.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, cpSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, useHubEnv } from './cli.testutil.ts';
import { folderFiles } from './push.ts';
import { startHubServer, type HubServer } from './hub-server.ts';
import { publishToHub, type PublishProgress } from '../core/publish/upload.ts';
import { preparePublish, PublishError } from '../core/publish/prepare.ts';
import { METHODS } from '../gpu/methods/index.ts';

const MODELS = resolve(__dirname, '../../tests/fixtures/golden/models/llama-bf16');
const ALICE = { name: 'alice', token: 'hf_alice_push_token_1', orgs: ['acme'] };
const READER = { name: 'rita', token: 'hf_rita_read_token_2', role: 'read' as const };
const work = mkdtempSync(join(tmpdir(), 'merge-studio-push-'));
const root = join(work, 'hub');
const out = join(work, 'merged');
let hub: HubServer;
let restoreEnv: (() => void) | undefined;
const methods = Object.assign((name: string) => METHODS.find((m) => m.name === name), { names: METHODS.map((m) => m.name) });

async function served(repo: string, path: string, token = ALICE.token): Promise<Buffer> {
  const res = await fetch(`${hub.url}/${repo}/resolve/main/${path}`, { headers: { Authorization: `Bearer ${token}` } });
  expect(res.status, `${repo}/${path}`).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

const RECIPE = `models:
  - model: golden/expert1
    parameters:
      weight: [0.2, 1.0]
      density: 0.6
  - model: golden/expert2
    parameters:
      weight: 0.5
      density: [{filter: self_attn, value: 0.9}, {value: 0.4}]
merge_method: ties
base_model: golden/base
dtype: float32
out_dtype: bfloat16
`;

beforeAll(async () => {
  for (const name of ['base', 'expert1', 'expert2']) {
    cpSync(join(MODELS, name), join(root, 'golden', name), { recursive: true });
    writeFileSync(join(root, 'golden', name, 'README.md'), '---\nlicense: apache-2.0\n---\n# golden\n');
  }
  hub = await startHubServer({ root, users: [ALICE, READER] });
  restoreEnv = useHubEnv(hub.url, join(work, 'cache'));
  writeFileSync(join(work, 'recipe.yml'), RECIPE);
  const merged = await cli(['merge', join(work, 'recipe.yml'), '--out', out, '--quiet', '--backend', 'cpu']);
  expect(merged.code, merged.stderr).toBe(0);
  const analyzed = await cli(['analyze', join(work, 'recipe.yml'), '--json', join(work, 'analysis.json'), '--backend', 'cpu', '--quiet']);
  expect(analyzed.code, analyzed.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  await hub?.close();
  restoreEnv?.();
  rmSync(work, { recursive: true, force: true });
});

describe('merge-studio push', () => {
  it('creates the repo and uploads the folder byte for byte, with the card written for the Hub', async () => {
    process.env.HF_TOKEN = ALICE.token;
    hub.stats.reset();
    const pushed = await cli(['push', out, 'alice/golden-ties', '--private', '--analysis', join(work, 'analysis.json')]);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stdout).toBe(`${hub.url}/alice/golden-ties\n`);
    expect(pushed.stderr).toContain(`pushing ${out} to ${hub.url}/alice/golden-ties as alice (private)`);
    expect(pushed.stderr).toContain('uploaded model.safetensors');
    expect(pushed.stderr).toContain('license apache-2.0: every input is apache-2.0');

    // Every exported file but the card, byte for byte; the card and the image added.
    const exported = readdirSync(out).sort();
    for (const f of exported.filter((n) => n !== 'README.md')) {
      expect((await served('alice/golden-ties', f)).equals(readFileSync(join(out, f))), f).toBe(true);
    }
    const card = (await served('alice/golden-ties', 'README.md')).toString('utf8');
    const front = parseYaml(/^---\n([\s\S]*?)\n---\n/.exec(card)![1]) as Record<string, unknown>;
    expect(front).toEqual({
      base_model: ['golden/base', 'golden/expert1', 'golden/expert2'],
      library_name: 'transformers',
      license: 'apache-2.0',
      tags: ['merge', 'mergekit', 'merge-studio'],
    });
    expect(card).toContain('# alice/golden-ties');
    expect(card).toContain('![Per-layer merge coefficients](merge_coefficients.svg)');
    const analysis = JSON.parse(readFileSync(join(work, 'analysis.json'), 'utf8')) as { modelStats: { whole: { cosine: number[]; conflictAll: number } } };
    const c01 = analysis.modelStats.whole.cosine[1].toFixed(3);
    expect(card).toContain(`| \`golden/expert1\` | 1.000 | ${c01} |`);
    expect(card).toContain(`- Sign conflict rate: ${(analysis.modelStats.whole.conflictAll * 100).toFixed(1)}% of parameters`);
    expect(card).toContain(`\`\`\`yaml\n${readFileSync(join(out, 'mergekit_config.yml'), 'utf8').trimEnd()}\n\`\`\``);
    const svg = (await served('alice/golden-ties', 'merge_coefficients.svg')).toString('utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('>weight</text>');
    expect(svg).toContain('>density</text>');
    expect(svg).toContain('golden/expert1');

    // The repo is private; the weights went through LFS; the token only ever in Authorization.
    expect((await fetch(`${hub.url}/api/models/alice/golden-ties`)).status).toBe(401);
    expect(hub.stats.log.filter((r) => r.method === 'PUT').length).toBeGreaterThan(0);
    for (const r of hub.stats.log) {
      expect(r.url).not.toContain(ALICE.token);
      if (r.method === 'PUT') expect(r.authorization).toBeUndefined();
      else if (r.authorization !== undefined) expect(r.authorization).toBe(`Bearer ${ALICE.token}`);
    }
    expect(pushed.stdout + pushed.stderr).not.toContain(ALICE.token);
    for (const f of [...exported, 'merge_coefficients.svg']) expect((await served('alice/golden-ties', f)).includes(ALICE.token), f).toBe(false);
  });

  it('pushes again to the same repo as a new commit, uploading no weights twice', async () => {
    process.env.HF_TOKEN = ALICE.token;
    hub.stats.reset();
    const again = await cli(['push', out, 'alice/golden-ties', '--license', 'mit', '--quiet']);
    expect(again.code, again.stderr).toBe(0);
    expect(hub.stats.log.filter((r) => r.method === 'PUT')).toEqual([]);
    expect((await served('alice/golden-ties', 'README.md')).toString('utf8')).toMatch(/^license: mit$/m);
  });

  it('refuses clearly: no token, a read-only token, another namespace, a folder that is no export', async () => {
    delete process.env.HF_TOKEN;
    expect(await cli(['push', out, 'alice/x'])).toMatchObject({ code: 2, stderr: expect.stringContaining('push needs $HF_TOKEN') });
    process.env.HF_TOKEN = ALICE.token;
    expect(await cli(['push', out, 'x'])).toMatchObject({ code: 2, stderr: expect.stringContaining('"x" needs a namespace') });
    const other = await cli(['push', out, 'golden/taken']);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('namespace "golden"');
    expect(other.stderr).not.toContain(ALICE.token);
    const notExport = join(work, 'not-export');
    cpSync(join(MODELS, 'base'), notExport, { recursive: true });
    expect((await cli(['push', notExport, 'alice/base-copy'])).stderr).toContain('the folder has no mergekit_config.yml');
    process.env.HF_TOKEN = READER.token;
    expect((await cli(['push', out, 'rita/x'])).stderr).toContain('the token of rita can only read');
  });
});

describe('publishToHub', () => {
  it('reports progress per file up to done, and cancels mid-upload without committing', async () => {
    const prepared = await preparePublish({ files: await folderFiles(out), methods });
    const seen: PublishProgress[] = [];
    const done = await publishToHub({ repo: 'acme/progress', hubUrl: hub.url, accessToken: ALICE.token, private: false, files: prepared.files, onProgress: (p) => seen.push(p) });
    expect(done).toMatchObject({ repoUrl: `${hub.url}/acme/progress`, created: true });
    const last = seen.at(-1)!;
    expect(last.phase).toBe('done');
    expect(Object.keys(last.files).sort()).toEqual(prepared.files.map((f) => f.path).sort());
    expect(Object.values(last.files).every((f) => f.stage === 'done' && f.fraction === 1)).toBe(true);
    expect(seen.some((p) => p.files['model.safetensors'].stage === 'hashing')).toBe(true);

    // Cancel while the weights are being sent: the commit never happens.
    hub.setFaults([{ pathIncludes: '/lfs-upload/', kind: 'slow', delayMs: 3000 }]);
    const controller = new AbortController();
    const reason = new Error('user cancelled');
    const cancelled = publishToHub({
      repo: 'acme/cancelled',
      hubUrl: hub.url,
      accessToken: ALICE.token,
      private: false,
      files: prepared.files,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === 'uploading') controller.abort(reason);
      },
    });
    await expect(cancelled).rejects.toBe(reason);
    hub.setFaults([]);
    expect(existsSync(join(root, 'acme', 'cancelled'))).toBe(true);
    expect(readdirSync(join(root, 'acme', 'cancelled'))).toEqual([]);
  });

  it('refuses a folder whose files hold the token, naming the file', async () => {
    const files = await folderFiles(out);
    const config = files.find((f) => f.path === 'config.json')!;
    const leaked = files.map((f) => (f === config ? { path: f.path, blob: new Blob([`{"token": "${ALICE.token}"}`]) } : f));
    const err = await preparePublish({ files: leaked, methods, secrets: [ALICE.token] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PublishError);
    expect(String(err)).toBe('PublishError: config.json contains your access token: remove it from the file before publishing');
  });
});

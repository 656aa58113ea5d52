/**
 * Publishing from the studio to a local Hub (src/cli/hub-server.ts with a user): merge the demo set
 * into a folder, sign in with a token or with Hugging Face OAuth (a pop-up, PKCE), publish with
 * progress per file and a link at the end; the files on the Hub are the exported ones byte for byte,
 * and `merge-studio push` of the same folder lands the very same bytes (no upload twice). Cancel
 * commits nothing. The token is never in the address, storage, the console or a published file.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Page } from '@playwright/test';
import { startHubServer, type HubServer } from '../src/cli/hub-server.ts';
import { expect, test, type StudioPage } from './studio.ts';

const ALICE = { name: 'alice', token: 'hf_e2e_alice_write_token', orgs: ['acme'] };
let hub: HubServer;
let root: string;

test.beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'merge-studio-e2e-publish-'));
  hub = await startHubServer({ root, users: [ALICE] });
});

test.afterAll(async () => {
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

/** Console lines of the page, to check that no token is ever logged. */
function recordConsole(page: Page): string[] {
  const lines: string[] = [];
  page.on('console', (m) => lines.push(m.text()));
  page.on('pageerror', (e) => lines.push(String(e)));
  return lines;
}

async function mergeDemoIntoOpfs(studio: StudioPage, page: Page, folder: string, outDtype?: string): Promise<void> {
  await studio.open(`/?hub=${encodeURIComponent(hub.url)}`);
  await studio.waitForDemo();
  await studio.useOpfsExport(folder);
  if (outDtype) await page.getByTestId('merge.out-dtype').selectOption(outDtype);
  await page.getByTestId('merge.folder').click();
  await expect(page.getByTestId('merge.done')).toBeVisible({ timeout: 90_000 });
  await expect(page.getByTestId('publish.source')).toContainText('merged-model');
}

/** Run the CLI without blocking this process (it hosts the test Hub the CLI talks to). */
function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/merge-studio.mjs', ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), 90_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Every file of a repo on the test Hub, by path. */
async function repoFiles(repo: string): Promise<Map<string, Buffer>> {
  const auth = { Authorization: `Bearer ${ALICE.token}` };
  const tree = (await (await fetch(`${hub.url}/api/models/${repo}/tree/main?recursive=true`, { headers: auth })).json()) as { type: string; path: string }[];
  const out = new Map<string, Buffer>();
  for (const e of tree.filter((x) => x.type === 'file')) {
    out.set(e.path, Buffer.from(await (await fetch(`${hub.url}/${repo}/resolve/main/${e.path}`, { headers: auth })).arrayBuffer()));
  }
  return out;
}

test('publish a merge with a token: progress, a link, the exported bytes; the CLI pushes the same bytes', async ({ studio, page }) => {
  const logs = recordConsole(page);
  await mergeDemoIntoOpfs(studio, page, 'pub');
  const panel = page.getByTestId('publish.panel');
  await panel.scrollIntoViewIfNeeded();
  await expect(page.getByTestId('publish.blocker')).toContainText('sign in, or give a token with write access');
  await page.getByTestId('publish.token').fill(ALICE.token);
  await expect(page.getByTestId('publish.account')).toContainText('Signed in as alice');
  await expect(page.getByTestId('publish.namespace')).toHaveValue('alice');
  await page.getByTestId('publish.name').fill('studio-pub');
  await expect(page.getByTestId('publish.private')).toBeChecked();
  // The analysis summary is the studio's own; left out here so the CLI can match the card byte for byte.
  const withAnalysis = page.getByTestId('publish.with-analysis');
  if (await withAnalysis.isChecked()) await withAnalysis.uncheck();
  await studio.shot('ready');
  await page.getByTestId('publish.start').click();
  await expect(page.getByTestId('publish.file.model.safetensors')).toBeVisible();
  await expect(page.getByTestId('publish.done')).toBeVisible({ timeout: 60_000 });
  await studio.shot('published');
  await expect(page.getByTestId('publish.link')).toHaveAttribute('href', `${hub.url}/alice/studio-pub`);

  // On the Hub: the exported files byte for byte, the card written for the Hub, the image beside it.
  const exported = await studio.readOpfs('pub/merged-model');
  const published = await repoFiles('alice/studio-pub');
  expect([...published.keys()].sort()).toEqual([...new Set([...exported.keys(), 'merge_coefficients.svg'])].sort());
  for (const [path, bytes] of exported) {
    if (path !== 'README.md') expect(published.get(path)!.equals(bytes), path).toBe(true);
  }
  const card = published.get('README.md')!.toString('utf8');
  expect(card).toContain('tags:\n  - merge\n  - mergekit\n  - merge-studio');
  expect(card).toContain('# alice/studio-pub');
  expect(card).toContain('![Per-layer merge coefficients](merge_coefficients.svg)');
  expect((await fetch(`${hub.url}/api/models/alice/studio-pub`)).status).toBe(401); // private

  // The same folder pushed from the command line: the very same bytes, and no weights sent again.
  const dir = mkdtempSync(join(tmpdir(), 'merge-studio-e2e-push-'));
  try {
    for (const [path, bytes] of exported) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), bytes);
    }
    hub.stats.reset();
    const cli = await runCli(['push', dir, 'alice/studio-pub', '--private'], { HF_TOKEN: ALICE.token, HF_ENDPOINT: hub.url });
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout + cli.stderr).not.toContain(ALICE.token);
    expect(hub.stats.log.filter((r) => r.method === 'PUT')).toEqual([]);
    const pushed = await repoFiles('alice/studio-pub');
    expect([...pushed.keys()].sort()).toEqual([...published.keys()].sort());
    for (const [path, bytes] of published) expect(pushed.get(path)!.equals(bytes), path).toBe(true);
    expect(readdirSync(join(root, 'alice', 'studio-pub')).filter((n) => !n.startsWith('.')).sort()).toEqual([...published.keys()].sort());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // The token: only ever in Authorization headers; never in the address, storage, the console or a file.
  expect(page.url()).not.toContain(ALICE.token);
  const storage = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  expect(storage).not.toContain(ALICE.token);
  expect(logs.join('\n')).not.toContain(ALICE.token);
  for (const [path, bytes] of published) expect(bytes.includes(ALICE.token), path).toBe(false);
});

test('sign in with Hugging Face OAuth in a pop-up, then publish into an org', async ({ studio, page }) => {
  await mergeDemoIntoOpfs(studio, page, 'oauth');
  await page.getByTestId('publish.panel').scrollIntoViewIfNeeded();
  await expect(page.getByTestId('publish.sign-in')).toBeDisabled(); // no client ID yet
  await page.getByText('OAuth app for sign-in').click();
  await page.getByTestId('publish.client-id').fill('merge-studio-e2e');
  const popupOpened = page.waitForEvent('popup');
  await page.getByTestId('publish.sign-in').click();
  const popup = await popupOpened;
  await popup.waitForEvent('close', { timeout: 30_000 });
  await expect(page.getByTestId('publish.account')).toContainText('Signed in as alice');
  // PKCE and the exchange left nothing behind: no verifier, no code, no token in storage.
  const storage = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  expect(storage).not.toMatch(/oauth:code_verifier|oauth:nonce|hf_oauth_/);
  expect(hub.stats.log.some((r) => r.path === '/oauth/token' && r.method === 'POST')).toBe(true);

  await page.getByTestId('publish.namespace').selectOption('acme');
  await page.getByTestId('publish.name').fill('oauth-pub');
  await page.getByTestId('publish.private').uncheck();
  await page.getByTestId('publish.license').selectOption('apache-2.0');
  // The demo's analysis (it runs by itself for local models) goes into the card once it is there.
  await expect(page.getByTestId('publish.with-analysis')).toBeChecked({ timeout: 90_000 });
  await page.getByTestId('publish.start').click();
  await expect(page.getByTestId('publish.done')).toContainText('license apache-2.0', { timeout: 60_000 });
  await expect(page.getByTestId('publish.done')).not.toContainText('analysis on screen is of another recipe');
  await expect(page.getByTestId('publish.link')).toHaveAttribute('href', `${hub.url}/acme/oauth-pub`);
  const info = (await (await fetch(`${hub.url}/api/models/acme/oauth-pub`)).json()) as { private: boolean; cardData: { license: string } };
  expect(info).toMatchObject({ private: false, cardData: { license: 'apache-2.0' } });
  // The studio's analysis of this recipe is summarised in the card.
  const card = await (await fetch(`${hub.url}/acme/oauth-pub/resolve/main/README.md`)).text();
  expect(card).toContain('## Analysis');
  expect(card).toMatch(/\| `\.\/demo\/expert-1` \| 1\.000 \| -?\d\.\d{3} \| -?\d\.\d{3} \|/);
  expect(card).toMatch(/- Sign conflict rate: \d+\.\d% of parameters/);
  await studio.shot('oauth-published');
});

test('cancel while uploading commits nothing; a refused name says why', async ({ studio, page }) => {
  // Float32 weights: bytes the Hub has not stored yet, so they must be uploaded (and can be cancelled).
  await mergeDemoIntoOpfs(studio, page, 'cancel', 'F32');
  await page.getByTestId('publish.panel').scrollIntoViewIfNeeded();
  await page.getByTestId('publish.token').fill(ALICE.token);
  await expect(page.getByTestId('publish.account')).toContainText('Signed in as alice');
  await page.getByTestId('publish.name').fill('bad name');
  await expect(page.getByTestId('publish.blocker')).toContainText('may only hold');
  await expect(page.getByTestId('publish.start')).toBeDisabled();

  await page.getByTestId('publish.name').fill('cancelled-pub');
  hub.setFaults([{ pathIncludes: '/lfs-upload/', kind: 'slow', delayMs: 8000, times: 'always' }]);
  try {
    await page.getByTestId('publish.start').click();
    await expect(page.getByTestId('publish.file.model.safetensors')).toContainText(/uploading/, { timeout: 30_000 });
    await page.getByTestId('publish.cancel').click();
    await expect(page.getByTestId('publish.cancelled')).toContainText('no files were committed');
  } finally {
    hub.setFaults([]);
  }
  expect(readdirSync(join(root, 'alice', 'cancelled-pub')).filter((n) => !n.startsWith('.'))).toEqual([]); // only the private marker
  expect(hub.stats.log.some((r) => r.path.endsWith('/alice/cancelled-pub/commit/main'))).toBe(false);
});

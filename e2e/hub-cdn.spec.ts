/**
 * The studio merging from a Hub that behaves like the real one: weights redirect to a second origin
 * (the CDN) at signed URLs, with CORS, and `/resolve/` is rate-limited. In the browser, each weights
 * file is resolved once and every later range is read from the CDN; the token (a gated repo) goes to
 * the Hub only, never to the CDN.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHubServer, type HubServer } from '../src/cli/hub-server.ts';
import { expect, GOLDEN, test } from './studio.ts';

const MODELS = join(GOLDEN, 'models/llama-bf16');
const TOKEN = 'hf_e2e_cdn_gated_token';
let hub: HubServer;
let root: string;

test.beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'merge-studio-e2e-cdn-'));
  cpSync(join(MODELS, 'base'), join(root, 'org', 'base'), { recursive: true });
  cpSync(join(MODELS, 'expert1'), join(root, 'org', 'gated'), { recursive: true });
  writeFileSync(join(root, 'org', 'gated', '.gated'), TOKEN);
  hub = await startHubServer({ root, cdn: { ttlMs: 600_000 }, rateLimit: { resolves: 40, windowMs: 300_000 } });
});

test.afterAll(async () => {
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

test('a merge reads each weights file through one resolve, then from the CDN without the token', async ({ studio, page }) => {
  await studio.open(`/?hub=${encodeURIComponent(hub.url)}`);
  await studio.waitForDemo();
  await studio.removeAll();
  await studio.setHubEndpoint(hub.url, TOKEN);
  await studio.addHubModel('org/base');
  await studio.addHubModel('org/gated');
  await studio.waitReady('org/base');
  await studio.waitReady('org/gated');
  await studio.markBase('org/base');
  await studio.useOpfsExport('cdn');
  await page.getByTestId('merge.folder').click();
  await expect(page.getByTestId('merge.done')).toBeVisible({ timeout: 90_000 });

  const log = hub.stats.log.filter((r) => r.method === 'GET');
  const resolves = log.filter((r) => r.path.includes('/resolve/'));
  const cdn = log.filter((r) => r.origin === 'cdn');
  const weightResolves = resolves.filter((r) => r.path.endsWith('.safetensors'));
  // One redirect per weights file (headers and every tensor range came from the CDN after it).
  expect(weightResolves.map((r) => `${r.path.split('/').slice(1, 3).join('/')} ${r.status}`).sort()).toEqual(['org/base 302', 'org/gated 302']);
  expect(cdn.length).toBeGreaterThan(20);
  expect(cdn.every((r) => r.status === 206)).toBe(true);
  // The token went with the Hub's requests for the gated repo, and never to the CDN.
  expect(resolves.filter((r) => r.path.startsWith('/org/gated/')).every((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true);
  expect(cdn.every((r) => r.authorization === undefined)).toBe(true);
  console.log(`browser merge: /resolve/ requests ${resolves.length} (weights ${weightResolves.length}), CDN ranges ${cdn.length}`);
});

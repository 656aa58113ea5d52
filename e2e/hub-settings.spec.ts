/**
 * The Hub settings of the studio against the test Hub: the endpoint from `?hub=`, per-model download
 * progress during a merge, the range cache (a second merge downloads no tensor bytes; after "Clear
 * cache" the next one does), and the remembered token (restored on reload, never in the URL, the
 * recipe, the exported files or the console).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from '@playwright/test';
import { GATED_TOKEN, hubUrl } from './hub.ts';
import { expect, GOLDEN, test, type StudioPage } from './studio.ts';

const MODELS = join(GOLDEN, 'models/llama-bf16');

/** Tensor data bytes of a golden model (file size less the 8-byte length and the header), read here. */
function tensorBytes(name: string): number {
  const bytes = readFileSync(join(MODELS, name, 'model.safetensors'));
  return bytes.length - 8 - Number(bytes.readBigUInt64LE(0));
}

/** Body bytes the test Hub sent for `.safetensors` files since its last stats reset. */
async function safetensorsBytesSent(): Promise<number> {
  const stats = (await (await fetch(`${hubUrl()}/__stats`)).json()) as { byPath: Record<string, { bodyBytes: number }> };
  return Object.entries(stats.byPath)
    .filter(([path]) => path.endsWith('.safetensors'))
    .reduce((sum, [, e]) => sum + e.bodyBytes, 0);
}

async function resetStats(): Promise<void> {
  await fetch(`${hubUrl()}/__stats/reset`, { method: 'POST' });
}

async function setFaults(faults: unknown[]): Promise<void> {
  await fetch(`${hubUrl()}/__faults`, { method: 'POST', body: JSON.stringify(faults) });
}

/** Open the studio on the test Hub through the link parameter, with an empty shelf. */
async function openOnTestHub(studio: StudioPage): Promise<void> {
  await studio.open(`/?hub=${encodeURIComponent(hubUrl())}`);
  await studio.waitForDemo();
  await studio.removeAll();
}

async function mergeInto(studio: StudioPage, page: Page, name: string): Promise<void> {
  await page.getByLabel('Output name').fill(name);
  await page.getByTestId('merge.folder').click();
  await expect(page.getByTestId('merge.done')).toBeVisible({ timeout: 90_000 });
}

async function openSettings(page: Page): Promise<void> {
  const settings = page.getByTestId('settings');
  if ((await settings.getAttribute('open')) === null) await settings.locator('summary').click();
}

async function closeSettings(page: Page): Promise<void> {
  const settings = page.getByTestId('settings');
  if ((await settings.getAttribute('open')) !== null) await settings.locator('summary').click();
}

test.afterEach(async () => {
  await setFaults([]);
});

test('?hub= sets the endpoint; each Hub model shows its download; a second merge comes from the cache, and after "Clear cache" from the Hub again', async ({ studio, page }) => {
  await openOnTestHub(studio);
  await openSettings(page);
  await expect(page.getByLabel('Hub endpoint')).toHaveValue(hubUrl());
  await closeSettings(page);

  await studio.addHubModel('org/base');
  await studio.addHubModel('org/expert1');
  await studio.waitReady('org/base');
  await studio.waitReady('org/expert1');
  await studio.markBase('org/base');
  await expect(page.getByTestId('compat.ok')).toBeVisible();
  await studio.useOpfsExport('exports');
  const tensors = { base: tensorBytes('base'), expert1: tensorBytes('expert1') };

  // First merge, with slow tensor reads from expert1 so that its progress can be watched.
  await setFaults([{ pathIncludes: '/org/expert1/resolve/', method: 'GET', kind: 'slow', delayMs: 120, times: 'always' }]);
  await resetStats();
  await page.getByLabel('Output name').fill('first');
  await page.getByTestId('merge.folder').click();
  const transfer = page.getByTestId('shelf.model.org/expert1.transfer');
  const bar = transfer.locator('progress');
  await expect(bar).toBeVisible({ timeout: 30_000 });
  const seen: number[] = [];
  let shot = false;
  while (!(await page.getByTestId('merge.done').isVisible())) {
    const value = await bar.getAttribute('value', { timeout: 1000 }).catch(() => null);
    if (value !== null) seen.push(Number(value));
    if (!shot && value !== null && Number(value) > tensors.expert1 / 3) {
      await expect(transfer).toContainText(/\/s/);
      await studio.card('org/expert1').scrollIntoViewIfNeeded();
      await studio.shot('downloading');
      shot = true;
    }
    await page.waitForTimeout(80);
  }
  expect(seen.length, 'progress samples while expert1 was read').toBeGreaterThan(3);
  expect(seen, 'bytes received never decrease').toEqual([...seen].sort((a, b) => a - b));
  expect(new Set(seen).size).toBeGreaterThan(2);
  await expect(transfer).toHaveText(`Last merge read ${kB(tensors.expert1)} · from the Hub`);
  await expect(studio.card('org/base').getByTestId('shelf.model.org/base.transfer')).toHaveText(`Last merge read ${kB(tensors.base)} · from the Hub`);
  expect(await safetensorsBytesSent()).toBe(tensors.base + tensors.expert1);
  await setFaults([]);

  // Second merge: every tensor byte from the range cache.
  await resetStats();
  await mergeInto(studio, page, 'second');
  expect(await safetensorsBytesSent()).toBe(0);
  await expect(transfer).toHaveText(`Last merge read ${kB(tensors.expert1)} · all from the cache`);
  await openSettings(page);
  const size = page.getByTestId('settings.cache.size');
  await expect(size).toContainText(/ of 2\.00 GB$/);
  const cachedText = (await size.textContent()) ?? '';
  expect(cachedText).not.toMatch(/^0 B/);
  await studio.shot('cache-settings');

  // Clear it: the size drops to nothing, and the next merge downloads again.
  await page.getByTestId('settings.cache.clear').click();
  await expect(size).toHaveText('0 B of 2.00 GB');
  await closeSettings(page);
  await resetStats();
  await mergeInto(studio, page, 'third');
  expect(await safetensorsBytesSent()).toBe(tensors.base + tensors.expert1);
  await expect(transfer).toHaveText(`Last merge read ${kB(tensors.expert1)} · from the Hub`);
  await studio.shot('after-clear');

  // A lower limit evicts at once, and survives a reload (localStorage).
  await openSettings(page);
  const limit = page.getByTestId('settings.cache.limit');
  await limit.fill('100KB');
  await limit.press('Enter');
  await expect(limit).toHaveValue('100 kB');
  const after = (await size.textContent()) ?? '';
  expect(after).toMatch(/ of 100 kB$/);
  expect(parseSize(after.split(' of ')[0])).toBeLessThanOrEqual(100_000);
  await limit.fill('lots');
  await limit.press('Enter');
  await expect(page.getByTestId('settings.cache').getByRole('alert')).toContainText('"lots" is not a size');
  await page.reload();
  await openSettings(page);
  await expect(page.getByTestId('settings.cache.size')).toContainText(/ of 100 kB$/);
});

test('a refused ?hub= says why and keeps the default endpoint', async ({ studio, page }) => {
  await studio.open('/?hub=https://someone:hf_in_a_link@example.org');
  await openSettings(page);
  await expect(page.getByLabel('Hub endpoint')).toHaveValue('https://huggingface.co');
  await expect(page.getByTestId('settings.hub-url.problem')).toContainText('user name or password');
  await expect(page.getByTestId('settings')).not.toContainText('hf_in_a_link');
  await studio.shot('refused-hub-param');
});

test('a remembered token comes back on reload, is never in the URL, the recipe, the exported files or the console; unticked, it is gone', async ({
  studio,
  page,
}) => {
  const consoleLines: string[] = [];
  page.on('console', (msg) => consoleLines.push(msg.text()));
  await openOnTestHub(studio);
  await openSettings(page);
  const remember = page.getByLabel('Remember for this browser session');
  await expect(remember).not.toBeChecked();
  await page.getByLabel('Hub access token (gated repos)').fill(GATED_TOKEN);
  expect(await page.evaluate(() => Object.keys(sessionStorage))).toEqual([]);
  await remember.check();
  await studio.shot('token-remembered');
  await closeSettings(page);

  await studio.addHubModel('org/base');
  await studio.addHubModel('org/gated');
  await studio.waitReady('org/gated');
  await studio.markBase('org/base');
  await studio.waitForLink();

  // Reload: the recipe comes back from the link and the gated model opens with the remembered token.
  await page.reload();
  await studio.waitReady('org/base');
  await studio.waitReady('org/gated');
  await openSettings(page);
  await expect(page.getByLabel('Hub access token (gated repos)')).toHaveValue(GATED_TOKEN);
  await expect(page.getByLabel('Remember for this browser session')).toBeChecked();
  await closeSettings(page);

  // Merge with it and look for it everywhere it must not be.
  await studio.useOpfsExport('exports');
  await mergeInto(studio, page, 'with-gated');
  const exported = await studio.readOpfs('exports/with-gated');
  expect([...exported.keys()].sort()).toEqual(['README.md', 'config.json', 'mergekit_config.yml', 'model.safetensors']);
  for (const [name, bytes] of exported) expect(bytes.includes(GATED_TOKEN), `${name} holds the token`).toBe(false);
  expect(await studio.recipeYaml()).toContain('org/gated');
  expect(await studio.recipeYaml()).not.toContain(GATED_TOKEN);
  expect(page.url()).not.toContain(GATED_TOKEN);
  expect(decodeURIComponent(page.url())).not.toContain(GATED_TOKEN);
  expect(await page.evaluate(() => JSON.stringify(localStorage))).not.toContain('hf_');
  expect(consoleLines.filter((l) => l.includes(GATED_TOKEN))).toEqual([]);

  // Unticked: removed from the session storage at once, and not there after a reload.
  await openSettings(page);
  await page.getByLabel('Remember for this browser session').uncheck();
  expect(await page.evaluate(() => JSON.stringify(sessionStorage))).not.toContain(GATED_TOKEN);
  await page.reload();
  await openSettings(page);
  await expect(page.getByLabel('Hub access token (gated repos)')).toHaveValue('');
  await expect(page.getByLabel('Remember for this browser session')).not.toBeChecked();
});

/** What formatBytes shows for a byte count under 1 MB (kB with the studio's rounding). */
function kB(bytes: number): string {
  const v = bytes / 1000;
  return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} kB`;
}

function parseSize(text: string): number {
  const m = /^([\d.]+) (B|kB|MB|GB)$/.exec(text.trim());
  if (!m) throw new Error(`not a size: ${text}`);
  return Number(m[1]) * { B: 1, kB: 1e3, MB: 1e6, GB: 1e9 }[m[2] as 'B' | 'kB' | 'MB' | 'GB'];
}

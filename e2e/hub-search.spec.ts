/**
 * The shelf's Hub field searches as it is typed (a local Hub with the official client's listing):
 * only repos with safetensors weights, most downloaded first, each with its parameter count, dtype
 * and architecture before it is added; once a base is chosen, "same architecture as the base" hides
 * models of another architecture.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHubServer, type HubServer } from '../src/cli/hub-server.ts';
import { expect, GOLDEN, test } from './studio.ts';

const MODELS = join(GOLDEN, 'models/llama-bf16');
let hub: HubServer;
let root: string;

/** A safetensors file of zeros (independent of the project's writer). */
function zeros(tensors: Record<string, number[]>): Buffer {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of Object.entries(tensors)) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: 'F16', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  out.write(json, 8, 'utf8');
  return out;
}

test.beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'merge-studio-e2e-search-'));
  const downloads: Record<string, number> = { base: 500, expert1: 40, expert2: 9000 };
  for (const [name, n] of Object.entries(downloads)) {
    cpSync(join(MODELS, name), join(root, 'org', `merge-${name}`), { recursive: true });
    writeFileSync(join(root, 'org', `merge-${name}`, '.hub.json'), JSON.stringify({ downloads: n }));
  }
  mkdirSync(join(root, 'org', 'merge-gpt'), { recursive: true });
  writeFileSync(join(root, 'org', 'merge-gpt', 'model.safetensors'), zeros({ 'h.0.attn.weight': [32, 32], 'wte.weight': [100, 32] }));
  writeFileSync(join(root, 'org', 'merge-gpt', 'config.json'), JSON.stringify({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' }));
  writeFileSync(join(root, 'org', 'merge-gpt', '.hub.json'), JSON.stringify({ downloads: 1200 }));
  // No safetensors: never offered.
  mkdirSync(join(root, 'org', 'merge-pickle'), { recursive: true });
  writeFileSync(join(root, 'org', 'merge-pickle', 'pytorch_model.bin'), 'x');
  writeFileSync(join(root, 'org', 'merge-pickle', '.hub.json'), JSON.stringify({ downloads: 99999 }));
  hub = await startHubServer({ root });
});

test.afterAll(async () => {
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

test('search as you type, see size and dtype, add; filter by the base architecture', async ({ studio, page }) => {
  await studio.open(`/?hub=${encodeURIComponent(hub.url)}`);
  await studio.waitForDemo();
  await studio.removeAll();

  await page.getByLabel('Hub model').pressSequentially('merge', { delay: 30 });
  const hits = page.locator('[data-testid^="hub-search.hit."]');
  await expect(hits).toHaveCount(4);
  await expect(hits.locator('.hub-search-id')).toHaveText(['org/merge-expert2', 'org/merge-gpt', 'org/merge-base', 'org/merge-expert1']);
  const expert2 = page.getByTestId('hub-search.hit.org/merge-expert2');
  await expect(expert2).toContainText('218K params · BF16 · LlamaForCausalLM · 9.00K downloads');
  await expect(page.getByTestId('hub-search.hit.org/merge-gpt')).toContainText('4.22K params · F16 · GPT2LMHeadModel · 1.20K downloads');
  // The listing is one request for the whole page of results (no per-model header reads).
  expect(hub.stats.log.filter((r) => r.path.includes('/resolve/'))).toEqual([]);
  await studio.shot('results');

  await page.getByTestId('hub-search.add.org/merge-base').click();
  await studio.waitReady('org/merge-base');
  await expect(page.getByLabel('Hub model')).toHaveValue('');
  await expect(page.getByTestId('hub-search')).toHaveCount(0);
  await studio.markBase('org/merge-base');

  await page.getByLabel('Hub model').fill('merge');
  const same = page.getByTestId('hub-search.same-arch');
  await expect(same).toBeChecked();
  await expect(page.getByText('Same architecture as the base (LlamaForCausalLM)')).toBeVisible();
  await expect(hits.locator('.hub-search-id')).toHaveText(['org/merge-expert2', 'org/merge-base', 'org/merge-expert1']);
  await expect(page.getByTestId('hub-search.add.org/merge-base')).toHaveText('On the shelf');
  await expect(page.getByTestId('hub-search.add.org/merge-base')).toBeDisabled();
  await same.uncheck();
  await expect(hits).toHaveCount(4);
  await studio.shot('filter-off');

  await page.getByLabel('Hub model').fill('nothing-like-this');
  await expect(page.getByTestId('hub-search.none')).toContainText('matches “nothing-like-this”');
});

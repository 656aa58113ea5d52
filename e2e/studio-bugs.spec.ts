/**
 * Issue 10's bugs, each as a user meets them: settings kept across methods, no analysis of an
 * invalid recipe, failed models named as failed, the output dtype said as mergekit writes it,
 * demo dtypes gone with the demo, no re-analysis after a merge, focus and Escape, and the shelf
 * neither duplicating a folder nor taking a failed model into the merge.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Locator, Page } from '@playwright/test';
import { parse as parseYaml } from 'yaml';
import { hubUrl } from './hub.ts';
import { expect, test, type StudioPage } from './studio.ts';

const DEMO = fileURLToPath(new URL('../public/demo/', import.meta.url));

interface RecipeYaml {
  merge_method: string;
  base_model?: string;
  dtype?: string;
  out_dtype?: string;
  parameters?: Record<string, unknown>;
  models: { model: string; parameters?: Record<string, unknown> }[];
}

async function recipe(studio: StudioPage): Promise<RecipeYaml> {
  return parseYaml(await studio.recipeYaml()) as RecipeYaml;
}

/** Per-model values of one parameter, by model. */
function perModel(r: RecipeYaml, name: string): Record<string, unknown> {
  return Object.fromEntries(r.models.map((m) => [m.model, m.parameters?.[name]]));
}

/** A safetensors file of F32 tensors with small varied values (written here, apart from the project's writer). */
function f32Safetensors(tensors: Record<string, number[]>, seed: number): Uint8Array {
  const header: Record<string, unknown> = {};
  let offset = 0;
  const numels = Object.values(tensors).map((shape) => shape.reduce((a, b) => a * b, 1));
  Object.entries(tensors).forEach(([name, shape], k) => {
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + numels[k] * 4] };
    offset += numels[k] * 4;
  });
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  out.write(json, 8, 'utf8');
  const data = new Float32Array(out.buffer, out.byteOffset + 8 + json.length, offset / 4);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37 + seed) * 0.05 + seed * 0.001;
  return new Uint8Array(out);
}

/** dtypes of the tensors in a safetensors file. */
function dtypesOf(bytes: Buffer): Set<string> {
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string }>;
  return new Set(Object.entries(header).filter(([k]) => k !== '__metadata__').map(([, v]) => v.dtype));
}

/** Count the analysis runs the page starts from now on (the panel turning busy). */
async function countAnalysisRuns(page: Page): Promise<() => Promise<number>> {
  await page.evaluate(() => {
    const w = window as unknown as { __analysisRuns: number };
    w.__analysisRuns = 0;
    const panel = document.querySelector('[data-testid="analysis.panel"]')!;
    new MutationObserver(() => {
      if (panel.getAttribute('aria-busy') === 'true') w.__analysisRuns++;
    }).observe(panel, { attributes: true, attributeFilter: ['aria-busy'] });
  });
  return () => page.evaluate(() => (window as unknown as { __analysisRuns: number }).__analysisRuns);
}

async function isOpen(details: Locator): Promise<boolean> {
  return details.evaluate((el) => (el as HTMLDetailsElement).open);
}

test('1. switching method keeps per-model values by name and each method’s own values', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  const start = await recipe(studio);
  expect(start.merge_method).toBe('ties');
  const weights = perModel(start, 'weight');
  const densities = perModel(start, 'density');
  expect(Object.values(densities).every((d) => typeof d === 'number')).toBe(true);

  // TIES → Linear → TIES: the densities come back.
  await studio.chooseMethod('linear');
  expect(perModel(await recipe(studio), 'weight')).toEqual(weights);
  await studio.chooseMethod('ties');
  expect(perModel(await recipe(studio), 'density')).toEqual(densities);

  // Through SLERP and Model Stock (no per-model weight): the weights come back.
  for (const other of ['slerp', 'model_stock']) {
    await studio.chooseMethod(other);
    await studio.chooseMethod('ties');
    const back = await recipe(studio);
    expect(perModel(back, 'weight'), `weights after ${other}`).toEqual(weights);
    expect(perModel(back, 'density'), `densities after ${other}`).toEqual(densities);
  }

  // A value changed under Linear is the value under TIES (one weight per model, whatever the method).
  const first = start.models[0].model;
  await studio.chooseMethod('linear');
  await page.getByTestId(`model.${first}.param.weight.number`).fill('0.3');
  await studio.chooseMethod('ties');
  expect(perModel(await recipe(studio), 'weight')[first]).toBe(0.3);

  // Each method keeps its own global values: SLERP's t comes back after a detour through TIES.
  await studio.chooseMethod('slerp');
  await page.getByTestId('method.param.t.number').fill('0.25');
  await studio.chooseMethod('ties');
  await studio.chooseMethod('slerp');
  expect((await recipe(studio)).parameters?.t).toBe(0.25);
});

test('2. an invalid recipe is not analyzed: no error, no stale charts; fixed, it is analyzed again', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  const panel = page.getByTestId('analysis.panel');
  await expect(panel.getByTestId('analysis.cosine')).toBeVisible({ timeout: 120_000 });

  // Without the base, TIES cannot run: the panel says why, shows no charts and no failure.
  await page.getByTestId('shelf.model../demo/base.base').click();
  await expect(panel.getByTestId('analysis.waiting')).toContainText('needs a base model');
  await expect(panel.getByTestId('analysis.cosine')).toHaveCount(0);
  await page.waitForTimeout(1000);
  await expect(panel.getByTestId('analysis.error')).toHaveCount(0);

  // SLERP with three models: the same.
  await studio.markBase('./demo/base');
  await studio.chooseMethod('slerp');
  await expect(panel.getByTestId('analysis.waiting')).toContainText('at most 2');
  await page.waitForTimeout(1000);
  await expect(panel.getByTestId('analysis.error')).toHaveCount(0);
  await expect(panel.getByTestId('analysis.layers.line')).toHaveCount(0);

  // Fixed (one expert left out): analyzed again.
  const experts = (await recipe(studio)).models.map((m) => m.model);
  await page.getByTestId(`shelf.model.${experts.at(-1)}.include`).uncheck();
  await expect(panel.getByTestId('analysis.layers.line')).toBeVisible({ timeout: 120_000 });
  await expect(panel.getByTestId('analysis.waiting')).toHaveCount(0);
  await expect(panel.getByTestId('analysis.error')).toHaveCount(0);
});

test('2. with Hub models, Analyze waits for a valid recipe and no error outlives the fix', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  await studio.removeAll();
  await studio.setHubEndpoint(hubUrl());
  for (const repo of ['org/base', 'org/expert1', 'org/expert2']) await studio.addHubModel(repo);
  for (const repo of ['org/base', 'org/expert1', 'org/expert2']) await studio.waitReady(repo);
  await studio.markBase('org/base');
  await studio.chooseMethod('ties');
  const panel = page.getByTestId('analysis.panel');
  await panel.getByTestId('analysis.run').click();
  await expect(panel.getByTestId('analysis.cosine')).toBeVisible({ timeout: 120_000 });

  await page.getByTestId('shelf.model.org/base.base').click();
  await expect(panel.getByTestId('analysis.waiting')).toContainText('needs a base model');
  await expect(panel.getByTestId('analysis.run')).toBeDisabled();
  await expect(panel.getByTestId('analysis.cosine')).toHaveCount(0);

  // Fixed: the model set the user asked for follows the recipe again, with no error left over.
  await studio.markBase('org/base');
  await expect(panel.getByTestId('analysis.cosine')).toBeVisible({ timeout: 120_000 });
  await expect(panel.getByTestId('analysis.run')).toBeEnabled();
  await expect(panel.getByTestId('analysis.error')).toHaveCount(0);
  await expect(panel.getByTestId('analysis.waiting')).toHaveCount(0);
});

test('3. the compatibility panel names failed models as failed, not as loading', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  await studio.setHubEndpoint(hubUrl());
  const yaml =
    'models:\n  - model: ./demo/expert-1\n    parameters: {weight: 1}\n  - model: org/no-such-model\n    parameters: {weight: 1}\n' +
    'merge_method: task_arithmetic\nbase_model: ./demo/base\n';
  await page.getByTestId('recipe.import.open').click();
  await page.getByLabel('Paste a mergekit recipe (YAML)').fill(yaml);
  await page.getByTestId('recipe.import.submit').click();
  await expect(page.getByTestId('shelf.model.org/no-such-model.error')).toBeVisible({ timeout: 30_000 });
  const compat = page.getByTestId('compat.panel');
  await expect(compat).toContainText('org/no-such-model failed to load');
  await expect(compat).not.toContainText('Waiting');
});

test('4. the output dtype is said as mergekit writes it: out_dtype defaults to dtype', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  const stored = (await studio.card('./demo/base').getByTestId('shelf.model../demo/base.facts').innerText()).match(/BF16|F16|F32/)![0];
  // dtype float32, out_dtype left at its default.
  await page.getByTestId('merge.dtype').selectOption('F32');
  await page.getByTestId('merge.out-dtype').selectOption('');
  const defaultOption = page.getByTestId('merge.out-dtype').locator('option[value=""]');
  await expect(defaultOption).not.toContainText('as the base');
  await expect(defaultOption).toContainText('same as dtype');
  await expect(page.getByTestId('merge.effective-dtype')).toContainText('float32');

  await studio.useOpfsExport('exports');
  await page.getByTestId('merge.folder').click();
  await expect(page.getByTestId('merge.done')).toBeVisible({ timeout: 60_000 });
  const files = await studio.readOpfs('exports/merged-model');
  expect(JSON.parse(files.get('config.json')!.toString()).torch_dtype).toBe('float32');
  expect(dtypesOf(files.get('model.safetensors')!)).toEqual(new Set(['F32']));

  // Nothing set: the stored dtype, said as such.
  await page.getByTestId('merge.dtype').selectOption('');
  await expect(page.getByTestId('merge.effective-dtype')).toContainText(stored === 'BF16' ? 'bfloat16' : stored === 'F16' ? 'float16' : 'float32');
});

test('5. the demo recipe’s dtypes leave with the demo models: F32 models then merge to F32', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  const demo = await recipe(studio);
  expect(demo.out_dtype ?? demo.dtype).toBeDefined();
  await studio.removeAll();
  const shapes = { 'model.layers.0.mlp.up_proj.weight': [12, 8], 'model.layers.0.input_layernorm.weight': [8], 'model.norm.weight': [8] };
  for (const [name, seed] of [['f32-base', 1], ['f32-a', 2], ['f32-b', 3]] as const) {
    await studio.dropFiles([{ name: `${name}.safetensors`, bytes: f32Safetensors(shapes, seed) }]);
    await studio.waitReady(`./${name}`);
  }
  await studio.markBase('./f32-base');
  const r = await recipe(studio);
  expect(r.dtype).toBeUndefined();
  expect(r.out_dtype).toBeUndefined();
  await expect(page.getByTestId('merge.effective-dtype')).toContainText('float32');
  await studio.useOpfsExport('exports');
  await page.getByTestId('merge.folder').click();
  await expect(page.getByTestId('merge.done')).toBeVisible({ timeout: 60_000 });
  const files = await studio.readOpfs('exports/merged-model');
  expect(dtypesOf(files.get('model.safetensors')!)).toEqual(new Set(['F32']));
});

test('6. a merge does not re-run the analysis when nothing changed', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  await expect(page.getByTestId('analysis.cosine')).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('analysis.panel')).toHaveAttribute('aria-busy', 'false');
  const runs = await countAnalysisRuns(page);
  await studio.useOpfsExport('exports');
  await page.getByTestId('merge.folder').click();
  await expect(page.getByTestId('merge.done')).toBeVisible({ timeout: 60_000 });
  await page.waitForTimeout(1500);
  expect(await runs()).toBe(0);
});

test('7. after a keyboard merge focus stays in the merge panel; Escape closes Settings and popovers', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  await studio.useOpfsExport('exports');
  await page.getByTestId('merge.folder').focus();
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('merge.done')).toBeVisible({ timeout: 60_000 });
  const focused = await page.evaluate(() => ({
    tag: document.activeElement?.tagName,
    inMerge: !!document.activeElement?.closest('[data-testid="merge.panel"]'),
  }));
  expect(focused.tag).not.toBe('BODY');
  expect(focused.inMerge).toBe(true);

  const settings = page.getByTestId('settings');
  await settings.locator('summary').click();
  expect(await isOpen(settings)).toBe(true);
  await page.getByLabel('Hub endpoint').focus();
  await page.keyboard.press('Escape');
  expect(await isOpen(settings)).toBe(false);
  await expect(settings.locator('summary')).toBeFocused();

  const gpu = page.getByTestId('gpu.status');
  await gpu.locator('summary').click();
  expect(await isOpen(gpu)).toBe(true);
  await page.keyboard.press('Escape');
  expect(await isOpen(gpu)).toBe(false);
});

test('8. the same file twice is one model; a loose file can be renamed; a failed model stays out of the merge', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  const weights = new Uint8Array(readFileSync(`${DEMO}expert-2/model.safetensors`));
  const config = new Uint8Array(readFileSync(`${DEMO}expert-2/config.json`));

  // The same file dropped twice: one card, no "-2".
  await studio.dropFiles([{ name: 'solo.safetensors', bytes: weights }]);
  await studio.waitReady('./solo');
  await studio.dropFiles([{ name: 'solo.safetensors', bytes: weights }]);
  await expect(page.locator('[data-testid="shelf.model../solo-2"]')).toHaveCount(0);
  await expect(page.locator('[data-testid="shelf.model../solo"]')).toHaveCount(1);

  // A loose model.safetensors is named in the card and in the recipe after renaming.
  await studio.dropFiles([
    { name: 'model.safetensors', bytes: weights },
    { name: 'config.json', bytes: config },
  ]);
  await studio.waitReady('./dropped-model');
  await page.getByTestId('shelf.model../dropped-model.rename').click();
  const name = page.getByTestId('shelf.model../dropped-model.name');
  await name.fill('my-expert');
  await name.press('Enter');
  await studio.waitReady('./my-expert');
  const yaml = await studio.recipeYaml();
  expect(yaml).toContain('./my-expert');
  expect(yaml).not.toContain('dropped-model');

  // A file that fails to open is on the shelf, not in the merge.
  const junk = new Uint8Array(200);
  new DataView(junk.buffer).setBigUint64(0, 5000n, true);
  await studio.dropFiles([{ name: 'broken.safetensors', bytes: junk }]);
  await expect(page.getByTestId('shelf.model../broken.error')).toBeVisible();
  expect(await studio.recipeYaml()).not.toContain('./broken');
  await expect(page.locator('[data-testid="model../broken"]')).toHaveCount(0);
  await expect(page.getByTestId('shelf.model../broken.include')).not.toBeChecked();
});

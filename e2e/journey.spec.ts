/**
 * The user journey of issue 4: two models from the (test) Hub and one dropped, base marked, TIES,
 * a density slider moved, a per-layer weight curve, merge, export to a folder (OPFS here); then every
 * exported tensor is compared with what the CLI writes for the exported recipe.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { hubUrl } from './hub.ts';
import { expect, GOLDEN, test } from './studio.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MODELS = join(GOLDEN, 'models/llama-bf16');

/** Tensors of a safetensors file, read here without the project's code. */
function tensors(bytes: Buffer): Map<string, { dtype: string; shape: number[]; data: Buffer }> {
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, { dtype: string; shape: number[]; data: Buffer }>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    out.set(name, { dtype: e.dtype, shape: e.shape, data: bytes.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]) });
  }
  return out;
}

test('add from the Hub and by drop, TIES with a density slider and a weight curve, merge, export = CLI', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  await studio.shot('open');

  // Start from an empty shelf and the test Hub.
  await studio.removeAll();
  await studio.setHubEndpoint(hubUrl());
  await studio.addHubModel('org/base');
  await studio.addHubModel('org/expert1');
  await studio.waitReady('org/base');
  await studio.waitReady('org/expert1');
  await expect(studio.card('org/base')).toContainText('Hugging Face Hub · main');
  await expect(studio.card('org/base')).toContainText('BF16');
  await studio.shot('hub-models');

  await studio.dropFiles(studio.folderFiles(join(MODELS, 'expert2')));
  await studio.waitReady('./dropped-model');
  await expect(studio.card('./dropped-model')).toContainText('Local files · 2 files');

  await studio.markBase('org/base');
  await studio.chooseMethod('ties');
  await expect(page.getByTestId('compat.ok')).toBeVisible();
  await studio.shot('base-and-ties');

  // Density of org/expert1: from the default (1) down the slider with the keyboard.
  const density = page.getByTestId('model.org/expert1.param.density.slider');
  await density.focus();
  for (let i = 0; i < 5; i++) await density.press('PageDown');
  let recipe = parseYaml(await studio.recipeYaml());
  expect(recipe.models[0]).toEqual({ model: 'org/expert1', parameters: { weight: 1, density: 0.5 } });
  await studio.shot('density');

  // Weight of the dropped model as a per-layer curve: two points moved with the keyboard.
  await page.getByTestId('model../dropped-model.param.weight').getByText('Curve', { exact: true }).click();
  const points = page.getByTestId('model../dropped-model.param.weight.curve').getByRole('slider');
  await expect(points).toHaveCount(4);
  await points.nth(1).focus();
  for (let i = 0; i < 3; i++) await page.keyboard.press('Shift+ArrowDown');
  await points.nth(3).focus();
  for (let i = 0; i < 5; i++) await page.keyboard.press('Shift+ArrowDown');
  recipe = parseYaml(await studio.recipeYaml());
  expect(recipe.models[1]).toEqual({ model: './dropped-model', parameters: { weight: [1, 0.7, 1, 0.5] } });
  expect(recipe).toMatchObject({ merge_method: 'ties', base_model: 'org/base' });
  await page.getByTestId('model../dropped-model.param.weight.curve').scrollIntoViewIfNeeded();
  await studio.shot('weight-curve');

  // Merge into a folder (an OPFS folder stands in for the picker's), watching the main thread.
  await studio.useOpfsExport('exports');
  const started = await studio.now();
  await page.getByTestId('merge.folder').click();
  await expect(page.getByTestId('merge.progress')).toBeVisible();
  await studio.shot('merging');
  await expect(page.getByTestId('merge.done')).toBeVisible({ timeout: 90_000 });
  const ended = await studio.now();
  await studio.shot('merged');
  const longTasks = await studio.longTasksBetween(started, ended);
  expect(longTasks.filter((t) => t.duration > 100), 'main-thread tasks over 100 ms during the merge').toEqual([]);

  const exported = await studio.readOpfs('exports/merged-model');
  expect([...exported.keys()].sort()).toEqual(['README.md', 'config.json', 'mergekit_config.yml', 'model.safetensors']);

  // The exported recipe through the CLI, with local folders for the model references.
  const work = mkdtempSync(join(tmpdir(), 'merge-studio-journey-'));
  try {
    const exportedRecipe = parseYaml(exported.get('mergekit_config.yml')!.toString('utf8'));
    expect(exportedRecipe).toEqual(recipe);
    const local: Record<string, string> = { 'org/base': join(MODELS, 'base'), 'org/expert1': join(MODELS, 'expert1'), './dropped-model': join(MODELS, 'expert2') };
    exportedRecipe.base_model = local[exportedRecipe.base_model];
    for (const m of exportedRecipe.models) m.model = local[m.model];
    writeFileSync(join(work, 'recipe.yml'), stringifyYaml(exportedRecipe));
    const cli = spawnSync(process.execPath, ['bin/merge-studio.mjs', 'merge', join(work, 'recipe.yml'), '--out', join(work, 'out'), '--quiet'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
    });
    // (stderr may hold driver chatter such as Vulkan's XDG_RUNTIME_DIR warning; the exit code decides.)
    expect(cli.status, cli.stderr).toBe(0);
    const want = tensors(readFileSync(join(work, 'out', 'model.safetensors')));
    const got = tensors(exported.get('model.safetensors')!);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    const differing = [...want].filter(([name, w]) => {
      const g = got.get(name)!;
      return g.dtype !== w.dtype || g.shape.join() !== w.shape.join() || !g.data.equals(w.data);
    });
    expect(differing.map(([name]) => name), 'tensors that differ from the CLI output').toEqual([]);
    expect(JSON.parse(exported.get('config.json')!.toString())).toEqual(JSON.parse(readFileSync(join(work, 'out', 'config.json'), 'utf8')));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

/** The studio opens with the demo checkpoints on the shelf, base marked, and merges them offline. */
import { expect, test } from './studio.ts';

test('opens with the demo set ready and merges it into a folder', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  await expect(studio.card('./demo/base').getByText('base', { exact: true })).toBeVisible();
  await expect(page.getByTestId('compat.ok')).toBeVisible();
  // The GPU status names the adapter and shows its key limits.
  const gpu = page.getByTestId('gpu.status');
  await expect(gpu).toContainText('WebGPU:', { timeout: 60_000 }); // the adapter is probed (and both backends measured) first
  await gpu.locator('summary').click();
  await expect(gpu).toContainText('storage binding');
  await expect(gpu).toContainText('workgroups / dim');
  await studio.shot('demo-open');
  await gpu.locator('summary').click();
  const snapshot = await studio.snapshot();
  expect(snapshot.recipeYaml).toContain('base_model: ./demo/base');
  expect(page.url()).toMatch(/#recipe=/);

  await studio.useOpfsExport('exports');
  await page.getByTestId('merge.folder').click();
  await expect(page.getByTestId('merge.done')).toBeVisible({ timeout: 60_000 });
  await studio.shot('demo-merged');
  expect(await studio.listOpfs('exports/merged-model')).toEqual([
    'README.md',
    'config.json',
    'generation_config.json',
    'mergekit_config.yml',
    'model.safetensors',
    'tokenizer.json',
    'tokenizer_config.json',
  ]);

  // Again, in shards of at most 150 kB, as float32, under another name: shards plus their index.
  await page.getByLabel('Output name').fill('sharded');
  await page.getByLabel('Shard size').fill('150KB');
  await page.getByTestId('merge.out-dtype').selectOption('F32');
  await page.getByTestId('merge.folder').click();
  await expect(page.getByTestId('merge.done')).toContainText('model.safetensors.index.json', { timeout: 60_000 });
  const files = await studio.readOpfs('exports/sharded');
  const shards = [...files.keys()].filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).sort();
  // 405 kB of bf16 weights are 811 kB as float32: at least 6 shards of at most 150 kB (a big tensor may get its own).
  expect(shards.length).toBeGreaterThanOrEqual(6);
  const index = JSON.parse(files.get('model.safetensors.index.json')!.toString());
  expect(new Set(Object.values(index.weight_map))).toEqual(new Set(shards));
  expect(Object.keys(index.weight_map)).toHaveLength(39);
  expect(JSON.parse(files.get('config.json')!.toString()).torch_dtype).toBe('float32');
  expect(files.get('README.md')!.toString()).toContain('ties');
  expect(files.has('tokenizer_config.json')).toBe(true);

  // A third export to the same name is refused in words, and leaves the first one untouched.
  await page.getByTestId('merge.folder').click();
  await expect(page.getByTestId('merge.error')).toContainText('a folder of this name already exists');
  expect((await studio.readOpfs('exports/sharded')).size).toBe(files.size);
});

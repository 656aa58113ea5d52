/** The studio opens with the demo checkpoints on the shelf, base marked, and merges them offline. */
import { expect, test } from './studio.ts';

test('opens with the demo set ready and merges it into a folder', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  await expect(studio.card('./demo/base').getByText('base', { exact: true })).toBeVisible();
  await expect(page.getByTestId('compat.ok')).toBeVisible();
  await expect(page.getByTestId('gpu.status')).not.toHaveText(/Looking for a GPU/);
  await studio.shot('demo-open');
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
    'mergekit_config.yml',
    'model.safetensors',
    'tokenizer_config.json',
  ]);
});

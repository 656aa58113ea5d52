/**
 * The layer-stack editor: the demo merge turned into a stack of slices, a slice duplicated with the
 * keyboard, resized, moved by keyboard and by drag; the recipe's YAML says the same at each step,
 * and the merge writes the stacked model (config and card).
 */
import { parse as parseYaml } from 'yaml';
import { expect, test } from './studio.ts';

type Slices = { sources: { model: string; layer_range: [number, number] }[] }[];
const slicesOf = async (studio: { recipeYaml(): Promise<string> }) => (parseYaml(await studio.recipeYaml()) as { slices?: Slices }).slices;

test('stack, duplicate, resize, reorder (keys and drag), merge', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  const layers = page.getByTestId('layers');
  await layers.getByTestId('layers.edit').click();
  await expect(page.getByTestId('layers.slice.0')).toBeVisible();
  await expect(layers.locator('[data-testid^="layers.row."]')).toHaveCount(4);
  const first = await slicesOf(studio);
  expect(first).toHaveLength(1);
  expect(first![0].sources.every((s) => s.layer_range[0] === 0 && s.layer_range[1] === 4)).toBe(true);
  await studio.shot('stack');

  // Ctrl+D on a focused slice repeats it: 8 output layers.
  await page.getByTestId('layers.slice.0').focus();
  await page.keyboard.press('Control+d');
  await expect(page.getByTestId('layers.slice.1')).toBeVisible();
  await expect(layers.locator('[data-testid^="layers.row."]')).toHaveCount(8);
  expect(await slicesOf(studio)).toHaveLength(2);

  // Slice 2 keeps layers 1-2 of each model: 6 output layers.
  await page.getByTestId('layers.slice.1.size').fill('2');
  for (let j = 0; j < first![0].sources.length; j++) await page.getByTestId(`layers.slice.1.source.${j}.from`).fill('1');
  await expect(layers.locator('[data-testid^="layers.row."]')).toHaveCount(6);
  await expect(page.getByTestId('layers.row.4')).toContainText('layer 1');
  expect((await slicesOf(studio))![1].sources.map((s) => s.layer_range)).toEqual(first![0].sources.map(() => [1, 3]));

  // Alt+↑ moves it to the top; a drag puts it back.
  await page.getByTestId('layers.slice.1').focus();
  await page.keyboard.press('Alt+ArrowUp');
  await expect.poll(async () => (await slicesOf(studio))![0].sources[0].layer_range).toEqual([1, 3]);
  await expect(page.getByTestId('layers.row.0')).toContainText('layer 1');
  await studio.shot('moved');
  await page.getByTestId('layers.slice.0').dragTo(page.getByTestId('layers.slice.1'));
  await expect.poll(async () => (await slicesOf(studio))![0].sources[0].layer_range).toEqual([0, 4]);

  await studio.useOpfsExport('exports');
  await page.getByTestId('merge.folder').click();
  await expect(page.getByTestId('merge.done')).toBeVisible({ timeout: 90_000 });
  const exported = await studio.readOpfs('exports/merged-model');
  expect(JSON.parse(exported.get('config.json')!.toString('utf8')).num_hidden_layers).toBe(6);
  expect(exported.get('README.md')!.toString('utf8')).toContain('| 4–5 |');
  expect((parseYaml(exported.get('mergekit_config.yml')!.toString('utf8')) as { slices: Slices }).slices).toHaveLength(2);
  await studio.shot('merged');
});

/**
 * YAML round trip: every golden recipe imported (pasted), exported (the "Download .yml" file) and
 * restored from the share link gives the same recipe back.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { expect, GOLDEN, test } from './studio.ts';

const CASES = readdirSync(join(GOLDEN, 'cases')).sort();

test('each golden recipe: paste, export, link: same recipe', async ({ studio, page }) => {
  expect(CASES.length).toBeGreaterThanOrEqual(12);
  await studio.open();
  await studio.waitForDemo();
  let previous = page.url();
  for (const name of CASES) {
    const text = readFileSync(join(GOLDEN, 'cases', name, 'recipe.yml'), 'utf8');
    const want = parseYaml(text);

    await page.getByTestId('recipe.import.open').click();
    await page.getByLabel('Paste a mergekit recipe (YAML)').fill(text);
    await page.getByTestId('recipe.import.submit').click();
    await expect(page.getByTestId('recipe.notice')).toContainText('Recipe imported from pasted recipe');
    if (name === 'ties-f32') await studio.shot('imported-ties');

    const downloading = page.waitForEvent('download');
    await page.getByTestId('recipe.export').click();
    const download = await downloading;
    expect(download.suggestedFilename()).toBe('mergekit_config.yml');
    const exported = readFileSync(await download.path(), 'utf8');
    expect(parseYaml(exported), `${name}: exported YAML`).toEqual(want);

    // The link restores the same recipe in a fresh page (the address follows the recipe once it has been still a moment).
    await expect.poll(() => page.url()).not.toBe(previous);
    const link = page.url();
    previous = link;
    expect(link).toMatch(/#recipe=[A-Za-z0-9_-]+$/);
    await page.goto('about:blank');
    await page.goto(link);
    await expect(page.getByRole('heading', { name: 'Merge Studio' })).toBeVisible();
    await expect.poll(async () => parseYaml((await studio.snapshot()).recipeYaml), { message: `${name}: recipe from the link` }).toEqual(want);
  }
  await studio.shot('last-restored-from-link');
});

test('a recipe file dropped on the page or opened is imported', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  const path = join(GOLDEN, 'cases', 'slerp-gradient', 'recipe.yml');
  await studio.dropFiles([{ name: 'slerp.yml', bytes: new Uint8Array(readFileSync(path)) }]);
  await expect(page.getByTestId('recipe.notice')).toContainText('Recipe imported from slerp.yml');
  expect(parseYaml(await studio.recipeYaml())).toEqual(parseYaml(readFileSync(path, 'utf8')));
  // The conditions show as rules (attention / MLP / everything else), each a curve over the layers.
  await expect(page.getByTestId('method.param.t.rule.0.filter')).toHaveValue('self_attn');
  await expect(page.getByTestId('method.param.t.rule.1.filter')).toHaveValue('mlp');
  await expect(page.getByTestId('method.param.t.rule.0.curve').getByRole('slider')).toHaveCount(5);
  await studio.shot('slerp-rules');

  const other = join(GOLDEN, 'cases', 'task-arithmetic', 'recipe.yml');
  await page.getByTestId('recipe.import.input').setInputFiles(other);
  await expect(page.getByTestId('recipe.notice')).toContainText('Recipe imported from recipe.yml');
  expect(parseYaml(await studio.recipeYaml())).toEqual(parseYaml(readFileSync(other, 'utf8')));
});

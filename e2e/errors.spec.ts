/**
 * Error paths, each shown in the page in words: a malformed file dropped, a gated repo without a
 * token (401), an incompatible model, a cancelled merge (which leaves no files), a bad recipe.
 */
import { GATED_TOKEN, hubUrl } from './hub.ts';
import { expect, test } from './studio.ts';

test.afterEach(async () => {
  await fetch(`${hubUrl()}/__faults`, { method: 'POST', body: '[]' });
});

test('a malformed safetensors file dropped on the page', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  const junk = new Uint8Array(200);
  new DataView(junk.buffer).setBigUint64(0, 5000n, true); // a header longer than the file
  await studio.dropFiles([{ name: 'broken.safetensors', bytes: junk }]);
  const error = page.getByTestId('shelf.model../broken.error');
  await expect(error).toContainText('This is not a valid safetensors file');
  await expect(error).toContainText('broken.safetensors');
  await studio.card('./broken').scrollIntoViewIfNeeded();
  await studio.shot('malformed-file');
  // It stays out of the merge (nothing to merge), so the demo merge can still run.
  await expect(studio.card('./broken').getByTestId('shelf.model../broken.include')).not.toBeChecked();
  await expect(page.getByTestId('merge.blocker')).toHaveCount(0);
});

test('a gated repo without a token, then with one', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  await studio.setHubEndpoint(hubUrl());
  await studio.addHubModel('org/gated');
  const error = page.getByTestId('shelf.model.org/gated.error');
  await expect(error).toContainText('This repository needs access');
  await expect(error).toContainText('accept its terms on the Hub and give a token');
  await expect(error).toContainText('no token was given');
  await studio.shot('gated-401');
  // The token is never in the page URL (the recipe link).
  await studio.setHubEndpoint(hubUrl(), GATED_TOKEN);
  await page.getByTestId('shelf.model.org/gated.retry').click();
  await studio.waitReady('org/gated');
  expect(page.url()).not.toContain(GATED_TOKEN);
  expect(await studio.recipeYaml()).not.toContain(GATED_TOKEN);
});

test('an incompatible model is named in the compatibility panel and blocks the merge', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  await studio.setHubEndpoint(hubUrl());
  await studio.addHubModel('org/tiny-gpt');
  await studio.waitReady('org/tiny-gpt');
  const problems = page.getByTestId('compat.problems');
  await expect(problems).toContainText('These models cannot be merged');
  await expect(problems).toContainText('org/tiny-gpt');
  await expect(problems).toContainText(/gpt2|shape|missing/);
  await expect(page.getByTestId('merge.blocker')).toContainText('not compatible');
  await expect(page.getByTestId('merge.folder')).toBeDisabled();
  await studio.shot('incompatible');
});

test('a cancelled merge says so and leaves no files behind', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  await studio.removeAll();
  await studio.setHubEndpoint(hubUrl());
  await studio.addHubModel('org/base');
  await studio.addHubModel('org/expert3');
  await studio.waitReady('org/base');
  await studio.waitReady('org/expert3');
  await studio.markBase('org/base');
  // Slow every tensor read from now on, so the merge is still running when cancelled.
  await fetch(`${hubUrl()}/__faults`, {
    method: 'POST',
    body: JSON.stringify([{ pathIncludes: '/org/expert3/resolve/', kind: 'slow', delayMs: 300, times: 'always' }]),
  });
  await studio.useOpfsExport('exports');
  await page.getByTestId('merge.folder').click();
  await expect(page.getByTestId('merge.progress.text')).toContainText('tensors', { timeout: 30_000 });
  await studio.shot('merging-slowly');
  await page.getByTestId('merge.cancel').click();
  await expect(page.getByTestId('merge.cancelled')).toContainText('Merge cancelled');
  await expect(page.getByTestId('merge.cancelled')).toContainText('Nothing was saved');
  await studio.shot('cancelled');
  expect(await studio.listOpfs('exports')).toEqual([]);
});

test('a recipe with a typo is refused in words, naming the place', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  await page.getByTestId('recipe.import.open').click();
  await page.getByLabel('Paste a mergekit recipe (YAML)').fill('models:\n  - model: org/a\n    parameters: {weight: 1, desnity: 0.5}\nmerge_method: ties\nbase_model: org/b\n');
  await page.getByTestId('recipe.import.submit').click();
  const notice = page.getByTestId('recipe.notice');
  await expect(notice).toContainText('models[0].parameters: unknown parameter "desnity"');
  await expect(notice).toContainText('line 3');
  await studio.shot('bad-recipe');
});

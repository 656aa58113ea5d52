/**
 * What the studio says to a new user: the first-visit line, incompatibility summarised from the
 * configs, an unreachable Hub named with its endpoint, the YAML panel's inline errors and warnings.
 */
import { hubUrl } from './hub.ts';
import { expect, test } from './studio.ts';

test('a first-visit line says what to do, and stays dismissed', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  const line = page.getByTestId('first-visit');
  await expect(line).toContainText('The demo set is loaded: move a slider, watch the charts, press Merge');
  await page.getByTestId('first-visit.dismiss').click();
  await expect(line).toHaveCount(0);
  await page.reload();
  await studio.waitForDemo();
  await expect(line).toHaveCount(0);
});

test('incompatible models are summarised from their configs first, the per-tensor list folded under it', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  await studio.setHubEndpoint(hubUrl());
  await studio.addHubModel('org/tiny-gpt');
  await studio.waitReady('org/tiny-gpt');
  const problems = page.getByTestId('compat.problems');
  await expect(problems.getByTestId('compat.config')).toContainText('model_type gpt2 in org/tiny-gpt vs llama in ./demo/base');
  const tensors = problems.getByTestId('compat.tensors');
  await expect(tensors).not.toHaveAttribute('open', '');
  await expect(tensors.locator('summary')).toContainText(/\d+ problems? with tensor names and shapes/);
  await studio.shot('incompatible-config-first');
});

test('an unreachable Hub endpoint is named, may be offline or refuse CORS, and links to its setting', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  const dead = 'http://127.0.0.1:9';
  await studio.setHubEndpoint(dead);
  await studio.addHubModel('org/base');
  const note = page.getByTestId('shelf.model.org/base.unreachable');
  await expect(note).toContainText(dead, { timeout: 90_000 });
  await expect(note).toContainText('offline');
  await expect(note).toContainText('CORS');
  await note.getByRole('button', { name: 'Change the Hub endpoint' }).click();
  await expect(page.getByLabel('Hub endpoint')).toBeFocused();
  await studio.shot('hub-unreachable');
});

test('the YAML panel: typed edits apply, a typo is marked on its line with the fix, unsupported keys and dead filters are warnings', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  const editor = page.getByTestId('recipe.yaml');
  await editor.scrollIntoViewIfNeeded();
  const yaml = await editor.inputValue();
  expect(yaml).toContain('density:');

  // A typo: the line is named, the likely name offered, and one click fixes it.
  const typo = yaml.replace('density:', 'desnity:');
  await editor.fill(typo);
  const error = page.getByTestId('recipe.yaml.error');
  const line = typo.split('\n').findIndex((l) => l.includes('desnity')) + 1;
  await expect(error).toContainText(`Line ${line}:`);
  await expect(error).toContainText('did you mean density?');
  expect(await studio.recipeYaml()).not.toContain('desnity');
  await studio.shot('yaml-typo');
  await page.getByTestId('recipe.yaml.fix').click();
  await expect(error).toHaveCount(0);

  // A change typed in the YAML is the recipe; a key the studio does not support yet is left out with a warning,
  // tokenizer_source: base is what the studio does anyway.
  const edited = `${yaml.replace(/weight: [\d.]+/, 'weight: 0.42')}modules:\n  text_decoder: {}\ntokenizer_source: base\n`;
  await editor.fill(edited);
  await expect.poll(async () => studio.recipeYaml()).toContain('weight: 0.42');
  const warnings = page.getByTestId('recipe.warnings');
  await expect(warnings).toContainText('modules: not supported yet');
  await expect(warnings).not.toContainText('tokenizer_source');
  await expect(error).toHaveCount(0);

  // A filter that matches no tensor name is named, with the closest name part.
  const first = (await studio.snapshot()).recipeYaml.match(/- model: (\S+)/)![1];
  await page.getByTestId(`model.${first}.param.weight`).getByText('Rules', { exact: true }).click();
  const filter = page.getByTestId(`model.${first}.param.weight.rule.0.filter`);
  await filter.fill('self_atn');
  await expect(warnings).toContainText('the filter "self_atn" matches no tensor');
  await expect(warnings).toContainText('did you mean "self_attn"?');
  await editor.scrollIntoViewIfNeeded();
  await studio.shot('yaml-warnings');
});

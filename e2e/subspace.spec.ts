/**
 * Subspace analysis in the studio: with the demo set and TSV-M, the subspace-overlap heatmap shows
 * beside the cosine one, says what TSV-M does with it, and holds the numbers `merge-studio analyze
 * --json` gives for the same recipe (whole model and per layer, also in its CSV); the spectrum of a
 * chosen matrix shows the CLI's singular values; moving alpha re-runs the method's part and leaves
 * the overlap as it was (model statistics come from the cache).
 */
import { readFileSync } from 'node:fs';
import { overlapMatrix } from '../src/ui/analysis/subspace-view-data.ts';
import { cliAnalysis } from './cli-analysis.ts';
import { expect, test, type StudioPage } from './studio.ts';

/**
 * The subspace statistics are f64 on the host from the same f32 task vectors in the tab and in the
 * CLI, so the numbers agree to f64 rounding (in practice bit for bit).
 */
const TOL = 1e-12;

function expectValues(got: (string | null)[], want: (number | null)[], what: string) {
  expect(got.length, what).toBe(want.length);
  got.forEach((g, k) => {
    const w = want[k];
    if (w === null) expect(g, `${what}[${k}]`).toBe('');
    else expect(Math.abs(Number(g) - w), `${what}[${k}]: tab ${g}, CLI ${w}`).toBeLessThanOrEqual(TOL);
  });
}

const cellValues = (studio: StudioPage, id: string) =>
  studio.page
    .getByTestId(id)
    .locator('rect[data-value]')
    .evaluateAll((els) => els.map((e) => e.getAttribute('data-value')));

test('TSV-M on the demo set: the subspace overlap of the experts, as the CLI computes it', async ({ studio, page }) => {
  test.setTimeout(300_000);
  await studio.open();
  await studio.waitForDemo();
  await expect(page.getByTestId('compat.ok')).toBeVisible();
  await studio.chooseMethod('tsv');
  await expect(page.getByTestId('method.select')).toHaveValue('tsv');

  const overlap = page.getByTestId('analysis.overlap');
  await expect(overlap).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('analysis.status')).toContainText('computed on', { timeout: 120_000 });
  await expect(page.getByTestId('analysis.overlap.note')).toContainText('TSV-M decorrelates these subspaces');
  await expect(overlap.locator('rect[data-value]')).toHaveCount(9);
  await expect(overlap).toContainText('Subspace overlap of task vectors, whole model (28 matrices)');
  await expect(overlap).toContainText('left singular vectors');
  await overlap.scrollIntoViewIfNeeded();
  await studio.shot('overlap');

  // The cell after the cosine heatmap: under it on this 1280-wide page, beside it where the grid has two columns.
  const boxes = async () => [(await page.getByTestId('analysis.cosine').boundingBox())!, (await overlap.boundingBox())!];
  const [cosineBox, overlapBox] = await boxes();
  expect(overlapBox.y).toBeGreaterThan(cosineBox.y + cosineBox.height - 1);
  expect(overlapBox.y).toBeLessThan(cosineBox.y + cosineBox.height + 200);
  await page.setViewportSize({ width: 1920, height: 1080 });
  await expect.poll(async () => {
    const [c, o] = await boxes();
    return o.x > c.x + c.width && Math.abs(o.y - c.y) < 200;
  }).toBe(true);
  await studio.shot('overlap-beside-cosine');
  await page.setViewportSize({ width: 1280, height: 800 });

  const yaml = await studio.recipeYaml();
  expect(yaml).toContain('merge_method: tsv');
  const cli = cliAnalysis(yaml);
  const sub = cli.modelStats!.subspace;
  expectValues(await cellValues(studio, 'analysis.overlap'), sub.whole.overlap, 'whole-model overlap');
  // Hovering a cell names the pair and its value.
  await overlap.locator('rect[data-value]').nth(1).hover();
  await expect(overlap.locator('.chart-readout')).toContainText('expert-1 × expert-2:');

  // Per layer, by pair: the CLI's layer means, in the cells and in the CSV.
  const scope = page.getByTestId('analysis.overlap.scope');
  await scope.getByText('Per layer', { exact: true }).click();
  await expect(page.getByTestId('analysis.overlap.scope.per-layer')).toBeChecked();
  await expect(overlap.locator('rect[data-value]')).toHaveCount(3 * 4);
  const perLayer = overlapMatrix(cli, { kind: 'per-layer', tensorKind: 'all' })!;
  expectValues(await cellValues(studio, 'analysis.overlap'), perLayer.values, 'per-layer overlap');
  const [csvFile] = await Promise.all([page.waitForEvent('download'), page.getByTestId('analysis.overlap.export.csv').click()]);
  expect(csvFile.suggestedFilename()).toBe('subspace-overlap-of-task-vectors-per-layer-by-pair-of-models-weight-matrices.csv');
  const csv = readFileSync((await csvFile.path())!, 'utf8').trim().split('\r\n').map((r) => r.split(','));
  expect(csv[0]).toEqual(['', ...perLayer.columnLabels]);
  expect(csv.slice(1).map((r) => r[0])).toEqual(perLayer.rowLabels);
  expectValues(csv.slice(1).flatMap((r) => r.slice(1)), perLayer.values, 'per-layer CSV');
  const [svgFile] = await Promise.all([page.waitForEvent('download'), page.getByTestId('analysis.overlap.export.svg').click()]);
  expect(readFileSync((await svgFile.path())!, 'utf8')).toContain('Subspace overlap of task vectors per layer');
  const [pngFile] = await Promise.all([page.waitForEvent('download'), page.getByTestId('analysis.overlap.export.png').click()]);
  expect([...readFileSync((await pngFile.path())!).subarray(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]);

  // The spectrum of layer 2's down_proj: the CLI's σ_1..σ_16 per model.
  await page.getByTestId('analysis.spectrum.layer').selectOption('2');
  await page.getByTestId('analysis.spectrum.matrix').selectOption('mlp.down_proj.weight');
  const spectrum = page.getByTestId('analysis.spectrum');
  await expect(spectrum).toContainText('model.layers.2.mlp.down_proj.weight');
  const tensor = cli.modelStats!.tensors.find((t) => t.name === 'model.layers.2.mlp.down_proj.weight')!;
  const points = await spectrum.locator('circle[data-value]').evaluateAll((els) => els.map((e) => e.getAttribute('data-value')));
  expectValues(points, tensor.subspace!.singularValues.flat(), 'σ of layer 2 down_proj');
  await spectrum.scrollIntoViewIfNeeded();
  await studio.shot('spectrum');

  // A slider move re-runs the method's part only: the overlap keeps its numbers, and the run that
  // reads no weights (TSV-M's statistics are its parameters; the model statistics are cached) is
  // much faster than the first.
  await scope.getByText('Whole model', { exact: true }).click();
  await expect(overlap.locator('rect[data-value]')).toHaveCount(9);
  const before = await cellValues(studio, 'analysis.overlap');
  const seconds = async () => Number(/in ([\d.]+) s\./.exec((await page.getByTestId('analysis.status').textContent()) ?? '')?.[1]);
  const firstRun = await seconds();
  expect(firstRun).toBeGreaterThan(0);
  const alpha = page.getByTestId('method.param.alpha.slider');
  await alpha.focus();
  await alpha.press('PageDown');
  await expect.poll(async () => (await studio.recipeYaml()).includes('alpha'), { timeout: 30_000 }).toBe(true);
  await expect(page.getByTestId('analysis.updating')).toHaveCount(0, { timeout: 120_000 });
  await expect(page.getByTestId('analysis.status')).toContainText('computed on');
  expect(await cellValues(studio, 'analysis.overlap')).toEqual(before);
  // A new run (its own time) that skipped the weights.
  expect(await seconds()).toBeLessThan(firstRun / 2);
});

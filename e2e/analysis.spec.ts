/**
 * The analysis panel on the demo models: it analyzes them once they fit together, its views render,
 * moving a density slider re-runs the method's part and changes the conflict-after-trim chart, and
 * the CSV it exports holds the numbers `merge-studio analyze --json` gives for the same recipe.
 */
import { readFileSync } from 'node:fs';
import { cosineMatrix, layerCsv, layerSeries, matrixCsv } from '../src/ui/analysis/view-data.ts';
import { cliAnalysis } from './cli-analysis.ts';
import { expect, test } from './studio.ts';

test('analysis views for the demo models follow the density slider and export the CLI numbers', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  await expect(page.getByTestId('compat.ok')).toBeVisible();

  const panel = page.getByTestId('analysis.panel');
  await expect(panel.getByTestId('analysis.cosine')).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('analysis.cosine').locator('rect[data-value]')).toHaveCount(9);
  await expect(page.getByTestId('analysis.histogram')).toBeVisible();
  await expect(page.getByTestId('analysis.layers.heatmap')).toBeVisible();
  await panel.scrollIntoViewIfNeeded();
  await studio.shot('analysis');

  // Hovering a cell names it and shows its value.
  await page.getByTestId('analysis.cosine').locator('rect[data-value]').nth(1).hover();
  await expect(page.getByTestId('analysis.cosine').locator('.chart-readout')).toContainText('expert-1 × expert-2:');

  await page.getByTestId('analysis.layers.metric').selectOption('metric:conflictAfterTrim');
  const points = page.getByTestId('analysis.layers.line').locator('circle[data-value]');
  const values = () => points.evaluateAll((els) => els.map((e) => e.getAttribute('data-value')).join(','));
  const before = await values();
  expect(before.split(',').length).toBeGreaterThanOrEqual(4 * 3);

  // Density of expert-1 from 0.6 down to 0.1: fewer kept entries, so fewer conflicts after trimming.
  const density = page.getByTestId('model../demo/expert-1.param.density.slider');
  await density.focus();
  for (let i = 0; i < 5; i++) await density.press('PageDown');
  await expect.poll(values, { timeout: 120_000 }).not.toBe(before);
  await expect(page.getByTestId('analysis.status')).toContainText('computed on', { timeout: 120_000 });
  await page.getByTestId('analysis.layers.line').scrollIntoViewIfNeeded();
  await studio.shot('after-density');

  const yaml = await studio.recipeYaml();
  expect(yaml).toContain('density: 0.1');
  const cli = cliAnalysis(yaml);

  // The per-layer CSV: counts are exact on any backend, so the text is the CLI's to the last digit.
  const [layersFile] = await Promise.all([page.waitForEvent('download'), page.getByTestId('analysis.layers.line.export.csv').click()]);
  const layers = readFileSync((await layersFile.path())!, 'utf8');
  expect(layers).toBe(layerCsv(layerSeries(cli, 'conflictAfterTrim')));

  // The same chart as SVG and PNG files.
  const [svgFile] = await Promise.all([page.waitForEvent('download'), page.getByTestId('analysis.layers.line.export.svg').click()]);
  expect(svgFile.suggestedFilename()).toBe('sign-conflict-rate-after-trimming-per-layer-ties.svg');
  const svg = readFileSync((await svgFile.path())!, 'utf8');
  expect(svg).toMatch(/^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  expect(svg).toContain('Sign-conflict rate after trimming per layer (ties)');
  const [pngFile] = await Promise.all([page.waitForEvent('download'), page.getByTestId('analysis.layers.line.export.png').click()]);
  const png = readFileSync((await pngFile.path())!);
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  // The chart is drawn at the page's width: the PNG is its view box at 2×.
  const viewBoxWidth = Number((await page.getByTestId('analysis.layers.line').locator('svg').getAttribute('viewBox'))!.split(' ')[2]);
  expect(viewBoxWidth).toBeGreaterThanOrEqual(520);
  expect(png.readUInt32BE(16)).toBe(2 * viewBoxWidth);

  // The cosine CSV: dot products summed on the GPU agree with the CLI's CPU sums to 1e-5.
  const [cosineFile] = await Promise.all([page.waitForEvent('download'), page.getByTestId('analysis.cosine.export.csv').click()]);
  const cosine = readFileSync((await cosineFile.path())!, 'utf8').trim().split('\r\n');
  const want = matrixCsv(cosineMatrix(cli, { kind: 'whole' })!).trim().split('\r\n');
  expect(cosine[0]).toBe(want[0]);
  for (let r = 1; r < want.length; r++) {
    const got = cosine[r].split(',');
    const exp = want[r].split(',');
    expect(got[0]).toBe(exp[0]);
    for (let c = 1; c < exp.length; c++) expect(Math.abs(Number(got[c]) - Number(exp[c]))).toBeLessThanOrEqual(1e-5);
  }
});

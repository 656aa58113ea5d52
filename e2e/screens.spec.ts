/**
 * The studio at the widths people use (1024, 1280, 1920 px): the demo set analyzed, full-page
 * screenshots in test-results/screens/ for a person to look at, and what every width must hold: no
 * sideways scrolling, the sliders and the live summary side by side, charts that use the width.
 */
import { expect, test } from './studio.ts';

for (const [width, height] of [
  [1024, 768],
  [1280, 800],
  [1920, 1080],
] as const) {
  test(`the studio at ${width}×${height}`, async ({ studio, page }) => {
    await page.setViewportSize({ width, height });
    await studio.open('/', { backend: 'auto' });
    await studio.waitForDemo();
    const panel = page.getByTestId('analysis.panel');
    await expect(panel.getByTestId('analysis.layers.line')).toBeVisible({ timeout: 120_000 });
    await expect(panel.getByTestId('analysis.updating')).toHaveCount(0, { timeout: 60_000 });
    await expect(page.getByTestId('live.summary')).toBeVisible();

    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow, 'sideways scrolling').toBeLessThanOrEqual(0);

    // The first density slider and the live summary are on screen together.
    const first = (await studio.snapshot()).recipeYaml.match(/- model: (\S+)/)![1];
    const slider = page.getByTestId(`model.${first}.param.density.slider`);
    await slider.scrollIntoViewIfNeeded();
    await expect(slider).toBeInViewport();
    await expect(page.getByTestId(`live.summary.${first}`)).toBeInViewport();

    // Charts grow with the page: on a wide screen they are wider than the old fixed 560 px.
    const chartWidth = (await panel.getByTestId('analysis.layers.line').locator('svg').boundingBox())!.width;
    if (width >= 1920) expect(chartWidth).toBeGreaterThan(560);

    await studio.shot(`top-${width}`);
    await panel.scrollIntoViewIfNeeded();
    await page.screenshot({ path: `test-results/screens/studio-${width}-full.png`, fullPage: true });
  });
}

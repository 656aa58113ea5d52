/**
 * Keyboard alone, labels on every control, and the 1280×800 fit: a merge is set up and run with Tab,
 * arrows and Enter only; every control the page shows has an accessible name.
 */
import type { Page } from '@playwright/test';
import { parse as parseYaml } from 'yaml';
import { expect, test } from './studio.ts';

/** Press Tab until the focused element matches (a user moving through the page), at most `limit` times. */
async function tabTo(page: Page, what: string, matches: (el: { testId: string | null; label: string | null; text: string }) => boolean, limit = 250) {
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press('Tab');
    const el = await page.evaluate(() => {
      const a = document.activeElement as HTMLElement | null;
      return { testId: a?.getAttribute('data-testid') ?? null, label: a?.getAttribute('aria-label') ?? null, text: (a?.textContent ?? '').trim() };
    });
    if (matches(el)) return;
  }
  throw new Error(`Tab never reached ${what}`);
}

test('set up and run a merge with the keyboard alone', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  await studio.useOpfsExport('exports');
  await page.locator('body').click({ position: { x: 5, y: 400 } }); // focus starts on the page, not a control

  // Method: TIES → Task Arithmetic (the option above it) with an arrow key.
  await tabTo(page, 'the method select', (e) => e.testId === 'method.select');
  await page.keyboard.press('ArrowUp');
  await expect(page.getByTestId('method.select')).toHaveValue('task_arithmetic');

  // The weight of expert-2 down by 0.1 with the slider's arrow keys.
  await tabTo(page, 'the weight slider of expert-2', (e) => e.testId === 'model../demo/expert-2.param.weight.slider');
  for (let i = 0; i < 10; i++) await page.keyboard.press('ArrowLeft');

  // The weight of expert-1 becomes a curve (radio group: arrow to "Curve"), and its last point goes down.
  await tabTo(page, 'the value/curve switch of expert-1 weight', (e) => e.testId === 'model../demo/expert-1.param.weight.mode.scalar');
  await page.keyboard.press('ArrowRight');
  await expect(page.getByTestId('model../demo/expert-1.param.weight.curve')).toBeVisible();
  await tabTo(page, 'the last curve point', (e) => (e.label ?? '').startsWith('weight of ./demo/expert-1: point 4 of 4'));
  for (let i = 0; i < 4; i++) await page.keyboard.press('Shift+ArrowDown');
  await studio.shot('keyboard-curve');

  const recipe = parseYaml(await studio.recipeYaml());
  expect(recipe.merge_method).toBe('task_arithmetic');
  expect(recipe.models[0].parameters.weight).toEqual([1, 1, 1, 0.6]);
  expect(recipe.models[1].parameters.weight).toBeCloseTo(0.7, 10);

  await tabTo(page, 'the merge button', (e) => e.testId === 'merge.folder');
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('merge.done')).toBeVisible({ timeout: 60_000 });
  expect(await studio.listOpfs('exports/merged-model')).toContain('model.safetensors');
});

test('every control has an accessible name, and the page fits 1280×800 without sideways scrolling', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  // Show the rarer controls too: a curve, rules, the paste box, the settings.
  await page.getByTestId('model../demo/expert-1.param.density').getByText('Curve', { exact: true }).click();
  await page.getByTestId('model../demo/expert-2.param.density').getByText('Rules', { exact: true }).click();
  await page.getByTestId('model../demo/expert-1.param.density.curve').scrollIntoViewIfNeeded();
  await studio.shot('curve-and-rules');
  await page.getByTestId('recipe.import.open').click();
  await page.getByText('Settings', { exact: true }).click();

  const unnamed = await page.evaluate(() => {
    const controls = document.querySelectorAll<HTMLElement>('input:not([type=hidden]), select, textarea, button, [role=slider], summary');
    const out: string[] = [];
    for (const el of controls) {
      if (el.hidden || el.closest('[hidden]')) continue;
      const input = el as HTMLInputElement;
      const named =
        el.getAttribute('aria-label') ||
        el.getAttribute('aria-labelledby') ||
        (input.labels && input.labels.length > 0) ||
        (el.tagName === 'BUTTON' || el.tagName === 'SUMMARY' ? (el.textContent ?? '').trim() : '') ||
        el.getAttribute('title');
      if (!named) out.push(el.outerHTML.slice(0, 160));
    }
    return out;
  });
  expect(unnamed).toEqual([]);

  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await studio.shot('controls');
});

test('skip links: under 20 Tab presses from the top of the page to the Merge button with three experts', async ({ studio, page }) => {
  await studio.open();
  await studio.waitForDemo();
  const experts = (await studio.snapshot()).recipeYaml.match(/- model: /g)!.length;
  expect(experts).toBeGreaterThanOrEqual(3);

  // From the top of a freshly opened page: Tab, and one Enter on "Skip to Merge".
  let presses = 0;
  const focused = () => page.evaluate(() => document.activeElement?.getAttribute('data-testid') ?? null);
  while ((await focused()) !== 'skip.merge' && presses < 40) {
    await page.keyboard.press('Tab');
    presses++;
  }
  await expect(page.getByTestId('skip.merge')).toBeVisible();
  await page.keyboard.press('Enter');
  while ((await focused()) !== 'merge.folder' && presses < 40) {
    await page.keyboard.press('Tab');
    presses++;
  }
  expect(await focused()).toBe('merge.folder');
  expect(presses, 'Tab presses from the top to the Merge button').toBeLessThan(20);
  await studio.shot('skip-to-merge');

  // Each of the other skip links takes focus into its part of the page.
  for (const [id, heading] of [
    ['models', 'Models'],
    ['method', 'Method'],
    ['analysis', 'Analysis'],
  ] as const) {
    await page.getByTestId(`skip.${id}`).focus();
    await expect(page.getByTestId(`skip.${id}`)).toBeVisible();
    await page.keyboard.press('Enter');
    await expect(page.getByRole('heading', { name: heading, exact: true })).toBeInViewport();
    expect(await page.evaluate(() => document.activeElement?.id)).toBe(id);
  }
});

import { expect, test } from '@playwright/test';

test('studio page loads and WebGPU is available', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Merge Studio' })).toBeVisible();
  const hasAdapter = await page.evaluate(async () => !!(await navigator.gpu?.requestAdapter()));
  expect(hasAdapter).toBe(true);
});

import { expect, test } from '@playwright/test';

test('studio page loads and WebGPU is available', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Merge Studio' })).toBeVisible();
  const hasAdapter = await page.evaluate(async () => !!(await navigator.gpu?.requestAdapter()));
  expect(hasAdapter).toBe(true);
});

test('the GPU status says when the adapter is a software one (SwiftShader here) and suggests the CPU', async ({ page }) => {
  await page.goto('/');
  const isSoftware = await page.evaluate(async () => (await navigator.gpu.requestAdapter())!.info.isFallbackAdapter);
  expect(isSoftware).toBe(true);
  const status = page.getByTestId('gpu.status');
  await expect(status).toContainText('swiftshader');
  await status.locator('summary').click();
  await expect(page.getByTestId('gpu.software')).toContainText('its shaders run on the CPU');
});

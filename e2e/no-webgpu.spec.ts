/** Without WebGPU the page says so in words, offers the CPU backend, and a merge still works on it. */
import { CHROMIUM_PATH } from './chromium.ts';
import { expect, test } from './studio.ts';

// A browser without WebGPU: no --enable-unsafe-webgpu and no GPU, so no adapter is offered.
test.use({ launchOptions: { executablePath: CHROMIUM_PATH, args: ['--no-sandbox', '--disable-gpu', '--disable-blink-features=WebGPU'] } });

test('no WebGPU: a clear message, the CPU backend chosen, and the demo merge works', async ({ studio, page }) => {
  await studio.open();
  expect(await page.evaluate(async () => !!(await navigator.gpu?.requestAdapter()))).toBe(false);
  const status = page.getByTestId('gpu.status');
  await expect(status).toContainText('No WebGPU: using the CPU');
  await status.getByText('No WebGPU: using the CPU').click();
  await expect(status).toContainText(/WebGPU is not available|WebGPU found no GPU/);
  await expect(status).toContainText('The CPU backend gives the same results');
  await expect(page.getByTestId('merge.backend.cpu')).toBeChecked();
  await expect(page.getByTestId('merge.backend.gpu')).toBeDisabled();
  await studio.waitForDemo();
  await studio.shot('no-webgpu');

  await studio.useOpfsExport('exports');
  await page.getByTestId('merge.folder').click();
  await expect(page.getByTestId('merge.done')).toContainText('CPU', { timeout: 60_000 });
  expect(await studio.listOpfs('exports/merged-model')).toContain('model.safetensors');
});

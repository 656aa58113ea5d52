/**
 * "Export as LoRA of the base" on the demo family: opened, the panel merges in the worker and shows
 * the error of each rank; the slider (keyboard) moves the rank and the error shown with it (larger at
 * rank 1, zero at the full rank 64); Export downloads a ZIP holding PEFT's adapter_config.json (r =
 * the slider's rank) and adapter_model.safetensors (lora_A [r, in], lora_B [out, r] for the 28 linear
 * modules), with an error no better than the curve's. Without a base model the export is disabled
 * and says why.
 */
import { readFileSync } from 'node:fs';
import { readSafetensorsBytes } from '../tests/helpers/safetensors-file.ts';
import { readZip } from '../tests/helpers/zip-file.ts';
import { expect, test } from './studio.ts';

test('LoRA export: the rank slider shows the error, Export downloads a PEFT adapter of that rank', async ({ studio, page }) => {
  test.setTimeout(300_000);
  await studio.open('/', { backend: 'cpu' });
  await studio.waitForDemo();
  await expect(page.getByTestId('compat.ok')).toBeVisible();
  const panel = page.getByTestId('lora.panel');
  await panel.scrollIntoViewIfNeeded();
  await page.getByTestId('lora.open').click();
  await expect(page.getByTestId('lora.open')).toHaveAttribute('aria-expanded', 'true');

  const slider = page.getByTestId('lora.rank');
  const readout = page.getByTestId('lora.error');
  await expect(slider).toBeEnabled({ timeout: 120_000 });
  await expect(slider).toHaveAttribute('max', '64');
  const errorAt = async () => Number(await readout.getAttribute('data-error'));
  await expect(readout).toHaveAttribute('data-rank', '16');
  const at16 = await errorAt();
  await studio.shot('measured');

  // The keyboard moves the slider: Home (rank 1), End (full rank: nothing lost), then rank 8.
  await slider.focus();
  await page.keyboard.press('Home');
  await expect(readout).toHaveAttribute('data-rank', '1');
  const at1 = await errorAt();
  await page.keyboard.press('End');
  await expect(readout).toHaveAttribute('data-rank', '64');
  expect(await errorAt()).toBe(0);
  await page.keyboard.press('Home');
  for (let i = 0; i < 7; i++) await page.keyboard.press('ArrowRight');
  await expect(readout).toHaveAttribute('data-rank', '8');
  await expect(readout).toContainText('r = 8 of 64');
  const at8 = await errorAt();
  expect(at1).toBeLessThan(1);
  expect(at1).toBeGreaterThan(at8);
  expect(at8).toBeGreaterThan(at16);
  expect(at16).toBeGreaterThan(0);
  await expect(readout).toContainText(`${(100 * at8).toFixed(1)}%`);
  console.log(`demo merge as a LoRA: error at rank 1 ${at1.toFixed(4)}, 8 ${at8.toFixed(4)}, 16 ${at16.toFixed(4)}, 64 0`);

  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('lora.export').click()]);
  expect(download.suggestedFilename()).toBe('merged-model-lora.zip');
  const zip = readZip(new Uint8Array(readFileSync(await download.path())));
  expect([...zip.keys()].sort()).toEqual(['merged-model-lora/adapter_config.json', 'merged-model-lora/adapter_model.safetensors']);
  const config = JSON.parse(new TextDecoder().decode(zip.get('merged-model-lora/adapter_config.json')));
  expect(config).toMatchObject({ peft_type: 'LORA', r: 8, lora_alpha: 8, base_model_name_or_path: './demo/base' });
  const tensors = readSafetensorsBytes(zip.get('merged-model-lora/adapter_model.safetensors')!);
  expect(tensors.size).toBe(2 * 28);
  expect(tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')).toMatchObject({ dtype: 'F32', shape: [8, 64] });
  expect(tensors.get('base_model.model.model.layers.3.mlp.down_proj.lora_B.weight')).toMatchObject({ dtype: 'F32', shape: [64, 8] });
  const done = page.getByTestId('lora.done');
  await expect(done).toContainText('merged-model-lora.zip: rank 8');
  const reported = Number(/error ([\d.]+)%/.exec((await done.textContent())!)![1]) / 100;
  expect(reported).toBeGreaterThanOrEqual(at8 - 0.001);
  expect(reported).toBeLessThan(1.05 * at8);
  await studio.shot('exported');

  // No base model: the export says why and stays disabled.
  await page.getByTestId('shelf.model../demo/base.base').click();
  await expect(page.getByTestId('lora.blocker')).toContainText('the recipe has no base model: mark one model on the shelf as the base');
  await expect(page.getByTestId('lora.export')).toBeDisabled();
});

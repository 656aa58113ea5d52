/**
 * The rank/error curve the studio's slider shows: spectrumError's arithmetic on a spectrum worked by
 * hand, and on the golden checkpoints the curve falls with the rank, its singular values carry the
 * whole ‖D‖² at full rank, and it agrees with the error extractLora measures on the factors it writes.
 */
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openLocalModel } from '../../cli/open-models.ts';
import { MemoryOutputFolder } from '../../core/sources/memory.ts';
import { CpuBackend } from '../cpu-backend.ts';
import { extractLora, LoraExtractError } from './extract.ts';
import { combinedError, loraSpectrum, spectrumError, type LoraSpectrum } from './spectrum.ts';

const MODELS = resolve(__dirname, '../../../tests/fixtures/golden/models/llama-f32');

describe('spectrumError', () => {
  // A: σ = 4, 3 (‖D‖² = 25, full rank 2). B: σ = 10, 4, 3 (‖D‖² = 125, full rank 3), measured to rank 2.
  const s: LoraSpectrum = {
    modules: [
      { module: 'a', total: 25, sigma: Float64Array.of(4, 3), fullRank: 2 },
      { module: 'b', total: 125, sigma: Float64Array.of(10, 4), fullRank: 3 },
    ],
    maxRank: 2,
    fullRank: 3,
  };

  it('sums the modules\' discarded σ² over their norms, capping each at its full rank', () => {
    expect(spectrumError(s, 1)).toBeCloseTo(Math.sqrt((9 + 25) / 150), 12);
    expect(spectrumError(s, 2)).toBeCloseTo(Math.sqrt(9 / 150), 12);
    // Rank 3 is B's full rank (its third σ was never measured): nothing is left.
    expect(spectrumError(s, 3)).toBe(0);
  });

  it('combines per-module errors by the same weights', () => {
    expect(combinedError(s, [{ module: 'a', relativeError: 0.6 }, { module: 'b', relativeError: Math.sqrt(0.2) }])).toBeCloseTo(Math.sqrt((0.36 * 25 + 0.2 * 125) / 150), 12);
    expect(() => combinedError(s, [{ module: 'c', relativeError: 0 }])).toThrow(/module c was not measured/);
  });
});

describe('loraSpectrum', () => {
  it('gives the error of each rank, as the extracted factors have it', async () => {
    const backend = new CpuBackend();
    const [model, base] = await Promise.all([openLocalModel(join(MODELS, 'expert2')), openLocalModel(join(MODELS, 'base'))]);
    const spectrum = await loraSpectrum({ model, base, backend, maxRank: 64 });
    // 4 layers × 7 linear modules; hidden 64 is the largest full rank (k/v: 32).
    expect(spectrum.modules).toHaveLength(28);
    expect(spectrum.fullRank).toBe(64);
    expect(spectrum.modules.find((m) => m.module === 'model.layers.0.self_attn.k_proj')!.fullRank).toBe(32);

    // At full rank the singular values carry the whole change: Σσ² = ‖D‖² per module (f32 data, f64 sums).
    for (const m of spectrum.modules) {
      expect(m.total).toBeGreaterThan(0);
      const kept = m.sigma.reduce((a, x) => a + x * x, 0);
      expect(Math.abs(m.total - kept) / m.total, m.module).toBeLessThan(1e-4);
    }

    const curve = Array.from({ length: 64 }, (_, k) => spectrumError(spectrum, k + 1));
    for (let i = 1; i < curve.length; i++) expect(curve[i], `rank ${i + 1}`).toBeLessThanOrEqual(curve[i - 1]);
    expect(curve[0]).toBeGreaterThan(0.5);
    expect(curve[0]).toBeLessThan(1);
    expect(curve[7]).toBeLessThan(curve[0]);
    expect(curve[63]).toBe(0);

    // The factors written at rank 8 have the curve's error: randomized factors are at most a little
    // worse than the best rank-8 ones the curve assumes, never better.
    const at8 = await extractLora({ model, base, rank: 8, backend, output: new MemoryOutputFolder(), baseName: 'base' });
    const measured8 = combinedError(spectrum, at8.modules);
    expect(measured8).toBeGreaterThanOrEqual(curve[7] - 1e-6);
    expect(measured8).toBeLessThan(1.02 * curve[7]);
    // At rank 32 (exact SVD for every module) they agree to f32 rounding.
    const at32 = await extractLora({ model, base, rank: 32, backend, output: new MemoryOutputFolder(), baseName: 'base' });
    expect(Math.abs(combinedError(spectrum, at32.modules) - curve[31])).toBeLessThan(1e-4);
    console.log(`golden expert2 − base: error at rank 1 ${curve[0].toFixed(4)}, 8 ${curve[7].toFixed(4)} (factors ${measured8.toFixed(4)}), 32 ${curve[31].toFixed(4)}, 64 ${curve[63]}`);
  });

  it('refuses a rank below 1 and models with no shared linear layers', async () => {
    const backend = new CpuBackend();
    const base = await openLocalModel(join(MODELS, 'base'));
    await expect(loraSpectrum({ model: base, base, backend, maxRank: 0 })).rejects.toThrow(LoraExtractError);
    const empty = { ...base, tensors: new Map() };
    await expect(loraSpectrum({ model: empty, base, backend, maxRank: 4 })).rejects.toThrow(/share no linear layer weights/);
  });
});

/**
 * The analysis of the golden checkpoints (tests/fixtures/golden/models) on the WebGPU backend
 * against the TypeScript reference on the CPU backend, with tensors whole and cut into 1000-element
 * chunks, and the whole-model statistics against sums written independently here.
 *
 * Tolerances: counts and histograms exact (the same f32 task vectors and keep-masks on both);
 * dot products rel 1e-5 (GPU: f32 sums of 4096-entry blocks, added in f64); cosines abs 1e-5.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFloats, type FloatDType } from '../../core/dtype.ts';
import { parseRecipe } from '../../core/recipe/parse.ts';
import type { Recipe } from '../../core/recipe/types.ts';
import type { ModelSource } from '../../core/source.ts';
import { openModelsForRecipe } from '../../cli/open-models.ts';
import { GpuContext } from '../context.ts';
import { CpuBackend } from '../cpu-backend.ts';
import { createGpuBackend, type GpuBackend } from '../gpu-backend.ts';
import { methodLookup } from '../methods/index.ts';
import { nodeGpu } from '../node-gpu.ts';
import { analyzeMerge } from './analyze.ts';
import { GpuAnalysisOps } from './gpu-ops.ts';
import { ReferenceAnalysisOps } from './reference-ops.ts';
import type { AnalysisResult, MagnitudeHistogram } from './types.ts';

const CASES = resolve(__dirname, '../../../tests/fixtures/golden/cases');
/** ties (gradient densities), DARE and DELLA (random masks), breadcrumbs (bands), the BF16 models. */
const NAMES = ['ties-f32', 'dare-ties-f32', 'della-f32', 'breadcrumbs-ties-f32', 'task-arithmetic-native-bf16'];
/**
 * Chunkings per recipe: every recipe whole; the cheap ones also in 1000-element chunks (the software
 * adapter makes the magnitude selections slow; ops.test.ts covers chunking kernel by kernel).
 */
const CHUNKINGS: Record<string, (number | undefined)[]> = {
  'ties-f32': [undefined],
  'dare-ties-f32': [undefined, 1000],
  'della-f32': [undefined],
  'breadcrumbs-ties-f32': [undefined],
  'task-arithmetic-native-bf16': [undefined, 1000],
};

async function load(name: string): Promise<{ recipe: Recipe; sources: Map<string, ModelSource> }> {
  const path = join(CASES, name, 'recipe.yml');
  const recipe = parseRecipe(readFileSync(path, 'utf8'), methodLookup, { file: path });
  return { recipe, sources: await openModelsForRecipe(recipe, path) };
}

function close(got: readonly number[], want: readonly number[], rel: number, abs: number, what: string) {
  expect(got.length, what).toBe(want.length);
  got.forEach((g, k) => {
    const err = Math.abs(g - want[k]);
    if (!(err <= abs + rel * Math.abs(want[k]))) expect.fail(`${what}[${k}]: got ${g}, want ${want[k]} (|diff| ${err})`);
  });
}

function histogramsEqual(got: MagnitudeHistogram[] | null, want: MagnitudeHistogram[] | null, what: string) {
  expect(got, what).toEqual(want);
}

/** GPU result against CPU result, statistic by statistic. */
function compare(gpu: AnalysisResult, cpu: AnalysisResult) {
  const gm = gpu.modelStats!;
  const cm = cpu.modelStats!;
  expect(gm.tensors.length).toBe(cm.tensors.length);
  gm.tensors.forEach((g, k) => {
    const c = cm.tensors[k];
    close(g.gram, c.gram, 1e-5, 1e-12, `${g.name} gram`);
    close([g.baseNormSq ?? 0], [c.baseNormSq ?? 0], 1e-5, 0, `${g.name} ‖base‖²`);
    expect(g.signs, `${g.name} signs`).toEqual(c.signs);
    histogramsEqual(g.histograms, c.histograms, `${g.name} histograms`);
  });
  for (const [g, c] of [[gm.whole, cm.whole], ...gm.layers.map((l, k) => [l, cm.layers[k]])]) {
    close(g.cosine, c.cosine, 0, 1e-5, `${g.label} cosine`);
    close(g.norms, c.norms, 1e-5, 0, `${g.label} norms`);
    close(g.relativeChange!, c.relativeChange!, 1e-5, 0, `${g.label} relative change`);
    expect(g.pairConflict).toEqual(c.pairConflict);
  }
  expect(gm.pooledHistograms).toEqual(cm.pooledHistograms);

  const gr = gpu.recipeStats!;
  const cr = cpu.recipeStats!;
  gr.tensors.forEach((g, k) => {
    const c = cr.tensors[k];
    expect(g.kept, `${g.name} kept`).toEqual(c.kept);
    histogramsEqual(g.keptHistograms, c.keptHistograms, `${g.name} kept histograms`);
    close(g.keptGram!, c.keptGram!, 1e-5, 1e-12, `${g.name} kept gram`);
    close(g.contributionNormSq!, c.contributionNormSq!, 1e-5, 1e-12, `${g.name} contributions`);
    expect(g.params).toEqual(c.params);
  });
  close(gr.whole.share!, cr.whole.share!, 1e-5, 1e-7, 'share');
  expect(gr.whole.jaccard).toEqual(cr.whole.jaccard);
  expect(gr.coefficients).toEqual(cr.coefficients);
}

let ctx: GpuContext;
const gpus = new Map<number | undefined, GpuBackend>();

beforeAll(async () => {
  ctx = await GpuContext.create(nodeGpu());
  for (const c of [undefined, 1000]) gpus.set(c, createGpuBackend(ctx, { maxChunkElements: c }));
});

afterAll(() => {
  for (const b of gpus.values()) b.destroy();
  ctx?.destroy();
});

describe.each(NAMES)('golden models, recipe %s', (name) => {
  let cpuResult: AnalysisResult;
  let job: { recipe: Recipe; sources: Map<string, ModelSource> };

  beforeAll(async () => {
    job = await load(name);
    const cpu = new CpuBackend();
    cpuResult = await analyzeMerge({ ...job, ops: new ReferenceAnalysisOps(cpu), options: { seed: 42 } });
    expect(cpu.liveTensors).toBe(0);
  });

  it.each(CHUNKINGS[name])('GPU (chunks of %s elements) equals the reference', async (chunk) => {
    const gpu = gpus.get(chunk)!;
    const buffers = ctx.inUseBuffers;
    const result = await analyzeMerge({ ...job, ops: new GpuAnalysisOps(gpu), options: { seed: 42 } });
    compare(result, cpuResult);
    expect(gpu.liveTensors).toBe(0);
    expect(ctx.inUseBuffers).toBe(buffers);
  });

  it('whole-model statistics equal sums written independently', async () => {
    const { recipe, sources } = job;
    const base = sources.get(recipe.baseModel!)!;
    const models = recipe.models.filter((m) => m.model !== recipe.baseModel).map((m) => sources.get(m.model)!);
    const n = models.length;
    const dots = new Float64Array(n * n);
    const conflicts = new Float64Array(n * n);
    let baseSq = 0;
    let numel = 0;
    const castTo = recipe.dtype;
    const values = async (m: ModelSource, tensor: string) => {
      const info = m.tensors.get(tensor)!;
      const v = decodeFloats(await m.readTensor(tensor), info.dtype as FloatDType);
      return castTo && castTo !== info.dtype ? Float32Array.from(v) : v;
    };
    for (const t of cpuResult.modelStats!.tensors) {
      const b = await values(base, t.name);
      const ds: Float32Array[] = [];
      for (const m of models) {
        const x = await values(m, t.name);
        ds.push(x.map((v, e) => v - b[e])); // Float32Array.map rounds each difference to f32, as the engine does
      }
      for (let e = 0; e < b.length; e++) {
        baseSq += b[e] * b[e];
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) {
            dots[i * n + j] += ds[i][e] * ds[j][e];
            if (ds[i][e] * ds[j][e] < 0) conflicts[i * n + j]++;
          }
        }
      }
      numel += b.length;
    }
    const whole = cpuResult.modelStats!.whole;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const cos = dots[i * n + j] / Math.sqrt(dots[i * n + i] * dots[j * n + j]);
        expect(Math.abs(whole.cosine[i * n + j] - cos), `cosine ${i},${j}`).toBeLessThanOrEqual(1e-5);
        expect(whole.pairConflict[i * n + j]).toBeCloseTo(conflicts[i * n + j] / numel, 12);
      }
      expect(whole.relativeChange![i]).toBeCloseTo(Math.sqrt(dots[i * n + i] / baseSq), 8);
    }
    expect(whole.numel).toBe(numel);
    // The experts are fine-tunes of one base: related, not identical, task vectors.
    expect(whole.cosine.some((c, k) => k % (n + 1) !== 0 && Math.abs(c) > 0.001)).toBe(true);
  });
});

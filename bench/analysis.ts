/**
 * Analysis latency on the demo checkpoints (public/demo), as the studio's worker runs it: the first
 * analysis of a model set (model statistics + the recipe's masks), then re-runs as one expert's
 * density slider moves, with the worker's caches (model statistics, per-tensor recipe statistics,
 * resident inputs and kept entries) and, for comparison, with the model statistics cache alone (the
 * studio before issue 10). Both backends. Run by `npm run bench`.
 *
 * The slider → chart time a user sees (debounce, worker round trip, rendering) is measured in the
 * browser by e2e/feel.spec.ts, which writes test-results/slider-to-chart.json with where the time
 * went; `reportAnalysis` prints the last such measurement with the engine's numbers.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseRecipe } from '../src/core/recipe/parse.ts';
import { openModel } from '../src/core/safetensors/model.ts';
import type { ModelSource } from '../src/core/source.ts';
import { createBackend, type BackendKind } from '../src/cli/backend.ts';
import { nodeFileTree } from '../src/cli/node-files.ts';
import { analyzeMerge } from '../src/gpu/analysis/analyze.ts';
import { AnalysisCache, ResidentTensors } from '../src/gpu/analysis/cache.ts';
import { GpuAnalysisOps } from '../src/gpu/analysis/gpu-ops.ts';
import { ReferenceAnalysisOps } from '../src/gpu/analysis/reference-ops.ts';
import { GpuBackend } from '../src/gpu/gpu-backend.ts';
import { methodLookup } from '../src/gpu/methods/index.ts';

export interface AnalysisRow {
  backend: string;
  firstMs: number;
  /** Median re-run after one expert's density changed, with every cache the worker keeps. */
  rerunMs: number;
  /** The same re-runs with the model-statistics cache only. */
  rerunModelCacheOnlyMs: number;
}

const ROOT = join(import.meta.dirname, '..');
const DEMO = join(ROOT, 'public', 'demo');
const SLIDER_RECORD = join(ROOT, 'test-results', 'slider-to-chart.json');
const DENSITIES = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6];

/** TIES over the three demo experts; `density` is the first expert's (a slider move). */
function recipe(density: number) {
  const experts = [
    ['expert-1', density],
    ['expert-2', 0.5],
    ['expert-3', 0.7],
  ] as const;
  return parseRecipe(
    `models:\n${experts.map(([e, d]) => `  - model: ${e}\n    parameters: {weight: 1, density: ${d}}\n`).join('')}merge_method: ties\nbase_model: base\n`,
    methodLookup,
  );
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export async function benchAnalysis(backends: BackendKind[]): Promise<AnalysisRow[]> {
  const index = JSON.parse(readFileSync(join(DEMO, 'index.json'), 'utf8')) as { models: { name: string; folder: string }[] };
  const sources = new Map<string, ModelSource>();
  for (const m of index.models) sources.set(m.name, await openModel(await nodeFileTree(join(DEMO, m.folder)), { id: m.name }));
  const rows: AnalysisRow[] = [];
  for (const kind of backends) {
    const backend = await createBackend(kind);
    const ops = backend instanceof GpuBackend ? new GpuAnalysisOps(backend) : new ReferenceAnalysisOps(backend);
    const resident = new ResidentTensors(backend);
    try {
      const time = async (density: number, options: Parameters<typeof analyzeMerge>[0]['options']) => {
        const t0 = performance.now();
        await analyzeMerge({ recipe: recipe(density), sources, ops, options });
        return performance.now() - t0;
      };
      // With the model-statistics cache only (each run reads, decodes and sparsifies every model again).
      const modelCache = new AnalysisCache();
      await time(0.5, { cache: modelCache });
      const cold: number[] = [];
      for (const d of DENSITIES) cold.push(await time(d, { cache: modelCache }));
      // As the worker runs it now.
      const cache = new AnalysisCache();
      const firstMs = await time(0.5, { cache, resident });
      const warm: number[] = [];
      for (const d of DENSITIES) warm.push(await time(d, { cache, resident }));
      rows.push({ backend: kind, firstMs, rerunMs: median(warm), rerunModelCacheOnlyMs: median(cold) });
    } finally {
      resident.clear();
      backend.destroy();
    }
  }
  return rows;
}

/** The analysis table for the bench's output, and the browser's last slider → chart measurement. */
export function reportAnalysis(rows: readonly AnalysisRow[]): void {
  console.log('');
  console.log(`| backend | first analysis (ms) | re-run after one density change, median of ${DENSITIES.length} (ms) | same, model-statistics cache only (ms) |`);
  console.log(`|---|---|---|---|`);
  for (const a of rows) console.log(`| ${a.backend} | ${a.firstMs.toFixed(0)} | ${a.rerunMs.toFixed(0)} | ${a.rerunModelCacheOnlyMs.toFixed(0)} |`);
  if (existsSync(SLIDER_RECORD)) {
    const r = JSON.parse(readFileSync(SLIDER_RECORD, 'utf8')) as {
      sliderToChartMs: number;
      backend: string;
      date: string;
      postedMs?: number;
      answeredMs?: number;
      engineMs?: number;
      workerCpuMs?: number;
    };
    console.log('');
    console.log(`Slider → updated charts in the studio (headless Chromium, e2e/feel.spec.ts, ${r.date}): ${r.sliderToChartMs} ms on the ${r.backend} backend.`);
    if (r.answeredMs !== undefined) {
      console.log(
        `After the last input: the run posted at +${r.postedMs} ms, answered at +${r.answeredMs} ms (the engine's run ${r.engineMs} ms wall, ` +
          `${r.workerCpuMs ?? '?'} ms of the worker's CPU: the rest waited for a core), on screen at +${r.sliderToChartMs} ms.`,
      );
    }
  } else {
    console.log('');
    console.log('Slider → updated charts in the studio: run `npx playwright test e2e/feel.spec.ts` to measure it (it writes test-results/slider-to-chart.json).');
  }
}

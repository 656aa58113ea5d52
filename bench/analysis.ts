/**
 * Analysis latency on the demo checkpoints (public/demo): the first analysis of a model set
 * (model statistics + the recipe's masks), then recipe-only re-runs as a density slider moves
 * (model statistics served from the cache), on both backends. Run by `npm run bench`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseRecipe } from '../src/core/recipe/parse.ts';
import { openModel } from '../src/core/safetensors/model.ts';
import type { ModelSource } from '../src/core/source.ts';
import { createBackend, type BackendKind } from '../src/cli/backend.ts';
import { nodeFileTree } from '../src/cli/node-files.ts';
import { analyzeMerge } from '../src/gpu/analysis/analyze.ts';
import { AnalysisCache } from '../src/gpu/analysis/cache.ts';
import { GpuAnalysisOps } from '../src/gpu/analysis/gpu-ops.ts';
import { ReferenceAnalysisOps } from '../src/gpu/analysis/reference-ops.ts';
import { GpuBackend } from '../src/gpu/gpu-backend.ts';
import { methodLookup } from '../src/gpu/methods/index.ts';

export interface AnalysisRow {
  backend: string;
  firstMs: number;
  /** Median of the recipe-only re-runs. */
  rerunMs: number;
}

const DEMO = join(import.meta.dirname, '..', 'public', 'demo');

function recipe(density: number) {
  const experts = ['expert-1', 'expert-2', 'expert-3'];
  return parseRecipe(
    `models:\n${experts.map((e) => `  - model: ${e}\n    parameters: {weight: 1, density: ${density}}\n`).join('')}merge_method: ties\nbase_model: base\n`,
    methodLookup,
  );
}

export async function benchAnalysis(backends: BackendKind[]): Promise<AnalysisRow[]> {
  const index = JSON.parse(readFileSync(join(DEMO, 'index.json'), 'utf8')) as { models: { name: string; folder: string }[] };
  const sources = new Map<string, ModelSource>();
  for (const m of index.models) sources.set(m.name, await openModel(await nodeFileTree(join(DEMO, m.folder)), { id: m.name }));
  const rows: AnalysisRow[] = [];
  for (const kind of backends) {
    const backend = await createBackend(kind);
    const ops = backend instanceof GpuBackend ? new GpuAnalysisOps(backend) : new ReferenceAnalysisOps(backend);
    const cache = new AnalysisCache();
    try {
      let t0 = performance.now();
      await analyzeMerge({ recipe: recipe(0.5), sources, ops, options: { cache } });
      const firstMs = performance.now() - t0;
      const reruns: number[] = [];
      for (const density of [0.3, 0.4, 0.6, 0.7, 0.8]) {
        t0 = performance.now();
        await analyzeMerge({ recipe: recipe(density), sources, ops, options: { cache } });
        reruns.push(performance.now() - t0);
      }
      reruns.sort((a, b) => a - b);
      rows.push({ backend: kind, firstMs, rerunMs: reruns[2] });
    } finally {
      backend.destroy();
    }
  }
  return rows;
}

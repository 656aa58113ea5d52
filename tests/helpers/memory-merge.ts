/**
 * Child-process side of tests/memory.test.ts (and usable by hand): merges procedural Llama-shaped
 * models (src/core/sources/procedural.ts) into a folder that discards bytes, sampling the process's
 * RSS, and prints one JSON line: the RSS before the merge, the peak during it, the memory bound
 * of issue 9, (models + 3) × the largest tensor in f32 + 512 MB, and (fast CPU backend) the most
 * bytes its tensors held at once.
 *
 *   node bin/run-ts.mjs tests/helpers/memory-merge.ts '{"shape": {...}, "method": "linear", "backend": "cpu"}'
 */
import { parseRecipe } from '../../src/core/recipe/parse.ts';
import { openModel } from '../../src/core/safetensors/model.ts';
import { DiscardOutputFolder } from '../../src/core/sources/discard.ts';
import { llamaTensors, proceduralModelTree, type LlamaShape } from '../../src/core/sources/procedural.ts';
import type { ModelSource } from '../../src/core/source.ts';
import { createBackend, type BackendKind } from '../../src/cli/backend.ts';
import { runMerge } from '../../src/gpu/engine.ts';
import { methodLookup } from '../../src/gpu/methods/index.ts';

interface Args {
  shape: LlamaShape;
  method: string;
  backend: BackendKind;
  experts?: number;
}

const args = JSON.parse(process.argv[2]) as Args;
const experts = args.experts ?? 3;
const sources = new Map<string, ModelSource>();
sources.set('base', await openModel(proceduralModelTree('base', { shape: args.shape }), { id: 'base' }));
for (let e = 1; e <= experts; e++) sources.set(`expert${e}`, await openModel(proceduralModelTree(`expert${e}`, { shape: args.shape, expert: e }), { id: `expert${e}` }));
const names = [...sources.keys()].filter((n) => n !== 'base');
const yaml =
  args.method === 'linear'
    ? `models:\n${names.map((m) => `  - model: ${m}\n    parameters: {weight: 1}\n`).join('')}merge_method: linear\n`
    : `models:\n${names.map((m) => `  - model: ${m}\n    parameters: {weight: 0.5, density: 0.5}\n`).join('')}merge_method: ${args.method}\nbase_model: base\n`;
const recipe = parseRecipe(yaml, methodLookup, { file: 'memory.yml' });
const backend = await createBackend(args.backend);
const largest = Math.max(...llamaTensors(args.shape).map((t) => t.shape.reduce((a, b) => a * b, 1))) * 4;
const models = recipe.models.length + (recipe.baseModel && !recipe.models.some((m) => m.model === recipe.baseModel) ? 1 : 0);
globalThis.gc?.();
const before = process.memoryUsage().rss;
let peak = before;
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
const out = new DiscardOutputFolder();
const t0 = performance.now();
await runMerge({ recipe, sources, backend, output: out, options: { seed: 1 } });
clearInterval(sampler);
peak = Math.max(peak, process.memoryUsage().rss);
// The fast CPU backend's pool: the most bytes its tensors held at once (stored data, not free buffers).
const poolPeakLive = 'memoryStats' in backend ? (backend as { memoryStats(): { peakLiveBytes: number } }).memoryStats().peakLiveBytes : undefined;
backend.destroy();
console.log(
  JSON.stringify({
    before,
    peak,
    growth: peak - before,
    bound: (models + 3) * largest + 512 * 1024 * 1024,
    largestTensorF32: largest,
    poolPeakLive,
    models,
    outputBytes: out.bytes,
    seconds: (performance.now() - t0) / 1000,
    device: backend.description,
  }),
);
process.exit(0);

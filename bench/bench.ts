/**
 * `npm run bench`: merge throughput and peak memory of the engine on synthetic Llama-shaped BF16
 * checkpoints held in memory (so disk speed does not count), for several methods and both backends.
 *
 *   npm run bench -- [--hidden 512] [--layers 8] [--vocab 8000] [--methods linear,ties,...]
 *                    [--backends gpu,cpu] [--json out.json]
 *
 * Throughput counts input bytes read (all models) per second and output parameters per second.
 * Then the analysis latency on the demo checkpoints (bench/analysis.ts).
 * Peak memory is the process RSS sampled during each run, and the GPU bytes the backend held at most
 * when it reports them.
 */
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { encodeFloats } from '../src/core/dtype.ts';
import { parseRecipe } from '../src/core/recipe/parse.ts';
import { openModel } from '../src/core/safetensors/model.ts';
import { serializeSafetensors, type ByteSink, type OutputFolder } from '../src/core/safetensors/writer.ts';
import { memoryFileTree } from '../src/core/sources/memory.ts';
import type { ModelSource } from '../src/core/source.ts';
import { formatBytes } from '../src/core/units.ts';
import { createBackend, type BackendKind } from '../src/cli/backend.ts';
import { runMerge } from '../src/gpu/engine.ts';
import { methodLookup } from '../src/gpu/methods/index.ts';
import { GpuBackend } from '../src/gpu/gpu-backend.ts';
import { benchAnalysis } from './analysis.ts';

const { values } = parseArgs({
  options: {
    hidden: { type: 'string', default: '512' },
    layers: { type: 'string', default: '8' },
    vocab: { type: 'string', default: '8000' },
    methods: { type: 'string', default: 'linear,task_arithmetic,ties,dare_ties,slerp,model_stock' },
    backends: { type: 'string', default: 'gpu,cpu' },
    json: { type: 'string' },
  },
});
const hidden = Number(values.hidden);
const layers = Number(values.layers);
const vocab = Number(values.vocab);
const intermediate = Math.round((hidden * 11) / 4 / 8) * 8;

/** Deterministic pseudo-normal values (sum of uniforms), so runs are comparable. */
function synthetic(numel: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(numel);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < numel; i++) {
    let acc = 0;
    for (let k = 0; k < 3; k++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      acc += (s >>> 0) / 4294967296;
    }
    out[i] = (acc - 1.5) * scale;
  }
  return out;
}

function shapes(): [string, number[]][] {
  const list: [string, number[]][] = [['model.embed_tokens.weight', [vocab, hidden]]];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    list.push(
      [`${p}self_attn.q_proj.weight`, [hidden, hidden]],
      [`${p}self_attn.k_proj.weight`, [hidden / 2, hidden]],
      [`${p}self_attn.v_proj.weight`, [hidden / 2, hidden]],
      [`${p}self_attn.o_proj.weight`, [hidden, hidden]],
      [`${p}mlp.gate_proj.weight`, [intermediate, hidden]],
      [`${p}mlp.up_proj.weight`, [intermediate, hidden]],
      [`${p}mlp.down_proj.weight`, [hidden, intermediate]],
      [`${p}input_layernorm.weight`, [hidden]],
      [`${p}post_attention_layernorm.weight`, [hidden]],
    );
  }
  list.push(['model.norm.weight', [hidden]], ['lm_head.weight', [vocab, hidden]]);
  return list;
}

async function makeModel(name: string, seed: number, base?: Map<string, Float32Array>) {
  const values = new Map<string, Float32Array>();
  const tensors = shapes().map(([tensor, shape], i) => {
    const numel = shape.reduce((a, b) => a * b, 1);
    const v = base ? synthetic(numel, seed * 7919 + i, 0.002) : synthetic(numel, seed * 104729 + i, 0.05);
    if (base) {
      const b = base.get(tensor)!;
      for (let j = 0; j < numel; j++) v[j] += b[j];
    }
    values.set(tensor, v);
    return { name: tensor, dtype: 'BF16' as const, shape, data: encodeFloats(v, 'BF16') };
  });
  const config = { model_type: 'llama', hidden_size: hidden, num_hidden_layers: layers, vocab_size: vocab, torch_dtype: 'bfloat16' };
  const tree = memoryFileTree(name, {
    'model.safetensors': serializeSafetensors(tensors),
    'config.json': new TextEncoder().encode(JSON.stringify(config)),
  });
  return { source: await openModel(tree, { id: name }), values };
}

/** Counts bytes and drops them: the benchmark measures merging, not storage. */
class DiscardFolder implements OutputFolder {
  readonly name = 'discard';
  bytes = 0;
  async create(): Promise<ByteSink> {
    return {
      write: async (chunk: Uint8Array) => void (this.bytes += chunk.byteLength),
      close: async () => undefined,
      abort: async () => undefined,
    };
  }
  async commit() {}
  async abort() {}
}

function recipeFor(method: string): string {
  const models = ['expert1', 'expert2', 'expert3'];
  switch (method) {
    case 'slerp':
      return `models:\n  - model: base\n  - model: expert1\nmerge_method: slerp\nbase_model: base\nparameters: {t: 0.4}\n`;
    case 'linear':
      return `models:\n${models.map((m) => `  - model: ${m}\n    parameters: {weight: 1}\n`).join('')}merge_method: linear\n`;
    case 'task_arithmetic':
      return `models:\n${models.map((m) => `  - model: ${m}\n    parameters: {weight: 0.5}\n`).join('')}merge_method: task_arithmetic\nbase_model: base\n`;
    case 'model_stock':
      return `models:\n${models.map((m) => `  - model: ${m}\n`).join('')}merge_method: model_stock\nbase_model: base\n`;
    default:
      return `models:\n${models.map((m) => `  - model: ${m}\n    parameters: {weight: 0.5, density: 0.5}\n`).join('')}merge_method: ${method}\nbase_model: base\n`;
  }
}

interface Row {
  backend: string;
  device: string;
  method: string;
  seconds: number;
  inputBytes: number;
  params: number;
  gbPerSecond: number;
  paramsPerSecond: number;
  peakRssBytes: number;
  /** GPU buffer bytes alive at once, at most (gpu backend only). */
  peakGpuBytes?: number;
}

async function main() {
  console.error(`building synthetic models: hidden ${hidden}, ${layers} layers, vocab ${vocab} (BF16)`);
  const base = await makeModel('base', 1);
  const sources = new Map<string, ModelSource>([['base', base.source]]);
  for (let i = 1; i <= 3; i++) sources.set(`expert${i}`, (await makeModel(`expert${i}`, i + 1, base.values)).source);
  base.values.clear();
  const paramsPerModel = [...base.source.tensors.values()].reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const bytesPerModel = [...base.source.tensors.values()].reduce((s, t) => s + t.byteLength, 0);
  console.error(`${(paramsPerModel / 1e6).toFixed(1)} M parameters, ${formatBytes(bytesPerModel)} per model`);

  const rows: Row[] = [];
  for (const kind of (values.backends as string).split(',') as BackendKind[]) {
    const backend = await createBackend(kind);
    try {
      for (const method of (values.methods as string).split(',')) {
        const recipe = parseRecipe(recipeFor(method), methodLookup, { file: `${method}.yml` });
        const used = new Set([...recipe.models.map((m) => m.model), ...(recipe.baseModel ? [recipe.baseModel] : [])]);
        const output = new DiscardFolder();
        let peak = process.memoryUsage().rss;
        const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
        if (backend instanceof GpuBackend) backend.ctx.resetPeak();
        const t0 = performance.now();
        await runMerge({ recipe, sources, backend, output, options: { seed: 1 } });
        const seconds = (performance.now() - t0) / 1000;
        clearInterval(sampler);
        peak = Math.max(peak, process.memoryUsage().rss);
        const inputBytes = used.size * bytesPerModel;
        const row: Row = {
          backend: kind,
          device: backend.description,
          method,
          seconds,
          inputBytes,
          params: paramsPerModel,
          gbPerSecond: inputBytes / seconds / 1e9,
          paramsPerSecond: paramsPerModel / seconds,
          peakRssBytes: peak,
          peakGpuBytes: backend instanceof GpuBackend ? backend.ctx.peakBytes : undefined,
        };
        rows.push(row);
        console.error(
          `${kind.padEnd(4)} ${method.padEnd(16)} ${seconds.toFixed(2).padStart(7)} s  ${row.gbPerSecond.toFixed(3)} GB/s in  ${(row.paramsPerSecond / 1e6).toFixed(1)} M params/s  peak RSS ${formatBytes(peak)}${row.peakGpuBytes !== undefined ? `  peak GPU ${formatBytes(row.peakGpuBytes)}` : ''}`,
        );
      }
    } finally {
      backend.destroy();
    }
  }
  console.log(`| backend | device | method | time (s) | input GB/s | output params/s | peak RSS | peak GPU buffers |`);
  console.log(`|---|---|---|---|---|---|---|---|`);
  for (const r of rows) {
    console.log(
      `| ${r.backend} | ${r.device} | ${r.method} | ${r.seconds.toFixed(2)} | ${r.gbPerSecond.toFixed(3)} | ${(r.paramsPerSecond / 1e6).toFixed(1)} M | ${formatBytes(r.peakRssBytes)} | ${r.peakGpuBytes !== undefined ? formatBytes(r.peakGpuBytes) : '–'} |`,
    );
  }
  console.error('analysis of the demo checkpoints (TIES, three experts): first run, then recipe-only re-runs');
  const analysis = await benchAnalysis((values.backends as string).split(',') as BackendKind[]);
  console.log('');
  console.log(`| backend | first analysis (ms) | re-run after a density change, median of 5 (ms) |`);
  console.log(`|---|---|---|`);
  for (const a of analysis) console.log(`| ${a.backend} | ${a.firstMs.toFixed(0)} | ${a.rerunMs.toFixed(0)} |`);
  if (values.json) writeFileSync(values.json as string, JSON.stringify({ hidden, layers, vocab, paramsPerModel, bytesPerModel, rows, analysis }, null, 2));
}

await main();
process.exit(0);

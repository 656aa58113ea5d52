/**
 * `npm run bench:cpu`: the CPU backends on mergekit's reference shape, from disk to disk.
 *
 *   npm run bench:cpu -- [--hidden 2048] [--intermediate 5632] [--layers 4] [--vocab 32000]
 *                        [--methods linear,slerp,...] [--backends cpu,cpu-reference] [--threads N]
 *                        [--repeat 3] [--dir /tmp/merge-studio-bench-cpu] [--json out.json]
 *
 * Synthetic Llama-shaped BF16 checkpoints (base + 3 experts; 337 M parameters each at the default
 * shape) are written once to `--dir` (kept between runs: delete it to regenerate). Each merge reads
 * the models from disk and writes the merged model to disk, as `merge-studio merge` does; a plain
 * copy of the same bytes (read every input tensor, write the base's) is timed in the same process as
 * the floor. Every measurement is repeated and the median reported, with the ratio to mergekit
 * 0.1.4's time for the same shape (single-threaded torch, reading and writing included) and to the
 * copy. CPU is the process's CPU time (all threads, user + system: page faults count) and CPU use
 * CPU time / wall time (2.0 = both cores busy on a 2-core machine); on a machine shared with other
 * work, CPU time is the steadier figure.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { encodeFloats } from '../src/core/dtype.ts';
import { parseRecipe } from '../src/core/recipe/parse.ts';
import { openModel } from '../src/core/safetensors/model.ts';
import { SafetensorsModelWriter } from '../src/core/safetensors/writer.ts';
import type { ModelSource } from '../src/core/source.ts';
import { llamaTensors, pseudoNormal } from '../src/core/sources/procedural.ts';
import { formatBytes } from '../src/core/units.ts';
import { createBackend, isBackendKind } from '../src/cli/backend.ts';
import { nodeFileTree, NodeOutputFolder } from '../src/cli/node-files.ts';
import { FastCpuBackend } from '../src/gpu/cpu-fast/fast-backend.ts';
import { runMerge } from '../src/gpu/engine.ts';
import { methodLookup } from '../src/gpu/methods/index.ts';

const { values } = parseArgs({
  options: {
    hidden: { type: 'string', default: '2048' },
    intermediate: { type: 'string', default: '5632' },
    layers: { type: 'string', default: '4' },
    vocab: { type: 'string', default: '32000' },
    methods: { type: 'string', default: 'linear,slerp,model_stock,task_arithmetic,ties,breadcrumbs,della,dare_ties' },
    backends: { type: 'string', default: 'cpu' },
    threads: { type: 'string' },
    repeat: { type: 'string', default: '3' },
    dir: { type: 'string', default: join(tmpdir(), 'merge-studio-bench-cpu') },
    json: { type: 'string' },
  },
});
const hidden = Number(values.hidden);
const intermediate = Number(values.intermediate);
const layers = Number(values.layers);
const vocab = Number(values.vocab);
const repeat = Number(values.repeat);
const root = values.dir as string;

/** mergekit 0.1.4 wall times (s) on the default shape, single-threaded torch, read and write included. */
const MERGEKIT_SECONDS: Record<string, number> = {
  linear: 21.3,
  slerp: 31.5,
  model_stock: 26.8,
  task_arithmetic: 25.8,
  dare_ties: 82.3,
  // TIES: ~2.4 M output parameters/s.
  ties: 337e6 / 2.4e6,
};

/** The bench's Llama shape (full-width k/v projections, as mergekit's reference shape has). */
function shapes(): [string, number[]][] {
  return llamaTensors({ hidden, intermediate, layers, vocab, heads: 1, kvHeads: 1 }).map((t) => [t.name, t.shape]);
}

const MODELS = ['base', 'expert1', 'expert2', 'expert3'];

/** Write the four models (an expert = base + small noise) unless they are there already. */
async function ensureModels(): Promise<void> {
  const stamp = join(root, `shape-${hidden}-${intermediate}-${layers}-${vocab}.done`);
  if (existsSync(stamp)) return;
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  const list = shapes();
  const config = { model_type: 'llama', hidden_size: hidden, intermediate_size: intermediate, num_hidden_layers: layers, vocab_size: vocab, torch_dtype: 'bfloat16' };
  for (const [m, name] of MODELS.entries()) {
    console.error(`writing ${name}…`);
    const folder = new NodeOutputFolder(join(root, name));
    const writer = new SafetensorsModelWriter(
      folder,
      list.map(([tensor, shape]) => ({ name: tensor, dtype: 'BF16' as const, shape })),
      { maxShardBytes: 10e9 },
    );
    for (const [i, [tensor, shape]] of list.entries()) {
      const numel = shape.reduce((a, b) => a * b, 1);
      const v = pseudoNormal(numel, 104729 + i, 0.05);
      if (m > 0) {
        const noise = pseudoNormal(numel, m * 7919 + i, 0.002);
        for (let j = 0; j < numel; j++) v[j] += noise[j];
      }
      await writer.writeTensor(tensor, encodeFloats(v, 'BF16'));
    }
    await writer.finish();
    const sink = await folder.create('config.json');
    await sink.write(new TextEncoder().encode(JSON.stringify(config)));
    await sink.close();
    await folder.commit();
  }
  writeFileSync(stamp, '');
}

function recipeFor(method: string): string {
  const experts = ['expert1', 'expert2', 'expert3'];
  switch (method) {
    case 'slerp':
      return `models:\n  - model: base\n  - model: expert1\nmerge_method: slerp\nbase_model: base\nparameters: {t: 0.4}\n`;
    case 'linear':
      return `models:\n${experts.map((m) => `  - model: ${m}\n    parameters: {weight: 1}\n`).join('')}merge_method: linear\n`;
    case 'task_arithmetic':
      return `models:\n${experts.map((m) => `  - model: ${m}\n    parameters: {weight: 0.5}\n`).join('')}merge_method: task_arithmetic\nbase_model: base\n`;
    case 'model_stock':
      return `models:\n${experts.map((m) => `  - model: ${m}\n`).join('')}merge_method: model_stock\nbase_model: base\n`;
    case 'breadcrumbs':
      return `models:\n${experts.map((m) => `  - model: ${m}\n    parameters: {weight: 0.5, density: 0.5, gamma: 0.01}\n`).join('')}merge_method: breadcrumbs\nbase_model: base\n`;
    case 'della':
      return `models:\n${experts.map((m) => `  - model: ${m}\n    parameters: {weight: 0.5, density: 0.5, epsilon: 0.1}\n`).join('')}merge_method: della\nbase_model: base\n`;
    default:
      return `models:\n${experts.map((m) => `  - model: ${m}\n    parameters: {weight: 0.5, density: 0.5}\n`).join('')}merge_method: ${method}\nbase_model: base\n`;
  }
}

async function openAll(): Promise<Map<string, ModelSource>> {
  const sources = new Map<string, ModelSource>();
  for (const name of MODELS) sources.set(name, await openModel(await nodeFileTree(join(root, name)), { id: name }));
  return sources;
}

interface Sample {
  seconds: number;
  cpuSeconds: number;
  peakRss: number;
  /** ArrayBuffer and SharedArrayBuffer bytes alive at once, at most (includes garbage not yet collected). */
  peakArrayBuffers: number;
}

/** Time `run` with CPU time and sampled peak RSS. */
async function measure(run: () => Promise<void>): Promise<Sample> {
  let peakRss = process.memoryUsage().rss;
  let peakArrayBuffers = process.memoryUsage().arrayBuffers;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakArrayBuffers = Math.max(peakArrayBuffers, m.arrayBuffers);
  }, 10);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  try {
    await run();
  } finally {
    clearInterval(sampler);
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, peakRss: Math.max(peakRss, process.memoryUsage().rss), peakArrayBuffers };
}

/** The floor: read every input tensor of every model, write the base's bytes as the output. */
async function plainCopy(sources: Map<string, ModelSource>, out: string): Promise<void> {
  const base = sources.get('base')!;
  const folder = new NodeOutputFolder(out, { overwrite: true });
  const writer = new SafetensorsModelWriter(folder, [...base.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })));
  for (const t of base.tensors.values()) {
    const all = await Promise.all(MODELS.map((m) => sources.get(m)!.readTensor(t.name)));
    await writer.writeTensor(t.name, all[0]);
  }
  await writer.finish();
  await folder.commit();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface Row {
  backend: string;
  method: string;
  seconds: number[];
  cpuSeconds: number[];
  peakRss: number;
  peakArrayBuffers: number;
  inputBytes: number;
  freshBytes?: number;
}

async function main() {
  await ensureModels();
  const sources = await openAll();
  const base = sources.get('base')!;
  const params = [...base.tensors.values()].reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const bytesPerModel = [...base.tensors.values()].reduce((s, t) => s + t.byteLength, 0);
  const largestF32 = Math.max(...[...base.tensors.values()].map((t) => t.shape.reduce((a, b) => a * b, 1) * 4));
  console.error(`${(params / 1e6).toFixed(1)} M parameters, ${formatBytes(bytesPerModel)} per model, in ${root}`);
  const out = join(root, 'out');

  const copy: Sample[] = [];
  for (let r = 0; r < repeat; r++) copy.push(await measure(() => plainCopy(sources, out)));
  const copySeconds = median(copy.map((s) => s.seconds));
  const copyCpu = median(copy.map((s) => s.cpuSeconds));
  console.error(`plain copy (read 4 models, write 1): ${copySeconds.toFixed(2)} s (CPU ${copyCpu.toFixed(1)} s) median of ${copy.map((s) => s.seconds.toFixed(2)).join(', ')}`);

  const rows: Row[] = [];
  for (const kind of (values.backends as string).split(',')) {
    if (!isBackendKind(kind)) throw new Error(`unknown backend ${kind}`);
    const backend = await createBackend(kind, { threads: values.threads ? Number(values.threads) : undefined });
    console.error(`backend ${kind}: ${backend.description}`);
    try {
      for (const method of (values.methods as string).split(',')) {
        const recipe = parseRecipe(recipeFor(method), methodLookup, { file: `${method}.yml` });
        const used = new Set([...recipe.models.map((m) => m.model), ...(recipe.baseModel ? [recipe.baseModel] : [])]);
        const row: Row = { backend: kind, method, seconds: [], cpuSeconds: [], peakRss: 0, peakArrayBuffers: 0, inputBytes: used.size * bytesPerModel };
        const fresh0 = backend instanceof FastCpuBackend ? backend.memoryStats().freshBytes : 0;
        for (let r = 0; r < repeat; r++) {
          const s = await measure(async () => {
            await runMerge({ recipe, sources, backend, output: new NodeOutputFolder(out, { overwrite: true }), options: { seed: 1 } });
          });
          row.seconds.push(s.seconds);
          row.cpuSeconds.push(s.cpuSeconds);
          row.peakRss = Math.max(row.peakRss, s.peakRss);
          row.peakArrayBuffers = Math.max(row.peakArrayBuffers, s.peakArrayBuffers);
          console.error(`  ${method}: ${s.seconds.toFixed(2)} s, CPU ${s.cpuSeconds.toFixed(1)} s (${(s.cpuSeconds / s.seconds).toFixed(2)}×), peak RSS ${formatBytes(s.peakRss)}`);
        }
        if (backend instanceof FastCpuBackend) row.freshBytes = (backend.memoryStats().freshBytes - fresh0) / repeat;
        rows.push(row);
      }
    } finally {
      backend.destroy();
    }
  }
  rmSync(out, { recursive: true, force: true });

  console.log(`\n${(params / 1e6).toFixed(1)} M parameters per model (BF16), base + 3 experts, disk to disk; medians of ${repeat}. Plain copy: ${copySeconds.toFixed(2)} s, CPU ${copyCpu.toFixed(1)} s.`);
  console.log(`Memory bound (models + 3) × largest f32 tensor + 512 MB = ${formatBytes(7 * largestF32 + 512e6)} (4 models).\n`);
  console.log('| backend | method | time (s) | runs (s) | CPU (s) | CPU use | input GB/s | output M params/s | vs mergekit | vs copy (time) | vs copy (CPU) | peak RSS | peak buffers | fresh pool buffers per run |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const t = median(r.seconds);
    const mk = MERGEKIT_SECONDS[r.method];
    console.log(
      `| ${r.backend} | ${r.method} | ${t.toFixed(2)} | ${r.seconds.map((s) => s.toFixed(1)).join(' ')} | ${median(r.cpuSeconds).toFixed(1)} | ${(median(r.cpuSeconds) / t).toFixed(2)} | ${(r.inputBytes / t / 1e9).toFixed(2)} | ${(params / t / 1e6).toFixed(1)} | ${mk ? `${(mk / t).toFixed(2)}×` : '–'} | ${(t / copySeconds).toFixed(2)}× | ${(median(r.cpuSeconds) / copyCpu).toFixed(2)}× | ${formatBytes(r.peakRss)} | ${formatBytes(r.peakArrayBuffers)} | ${r.freshBytes !== undefined ? formatBytes(r.freshBytes) : '–'} |`,
    );
  }
  if (values.json) writeFileSync(values.json as string, JSON.stringify({ hidden, intermediate, layers, vocab, params, bytesPerModel, copy, rows }, null, 2));
}

await main();
process.exit(0);

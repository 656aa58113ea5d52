/**
 * `npm run bench`: merge throughput and peak memory on Llama-shaped BF16 checkpoints (a base and
 * three experts), per size × backend × method, beside a plain copy of the same bytes and, for the
 * `mk` set, mergekit 0.1.4's times. Then the analysis latency on the demo checkpoints.
 *
 *   npm run bench -- [--sizes small,mk,1b,7b] [--methods linear,ties,...] [--backends gpu,cpu]
 *                    [--from procedural|disk] [--compare-mergekit] [--no-pool] [--no-overlap] [--no-analysis]
 *                    [--json FILE] [--linalg | --linalg-only] [--linalg-large]
 *                    [--linalg-sizes 256,512,1024] [--linalg-factor-sizes 1024]
 *                    [--subspace | --subspace-only] [--subspace-large]
 *                    [--subspace-methods] [--subspace-methods-large]
 *
 * Sizes: `small` (hidden 512, 8 layers, vocab 8000), `mk` (issue 9's mergekit comparison set: hidden
 * 2048, intermediate 5632, 4 layers, vocab 32000, 337 M parameters), `1b` (TinyLlama-1.1B's shape),
 * `7b` (32 layers, 4096, 14336, vocab 128256). Models are procedural (src/core/sources/procedural.ts:
 * bytes made on demand, so a 7B merge needs no disk), or with `--from disk` written once to a
 * temporary folder and read from there, the output written to disk too (as mergekit does).
 * `--compare-mergekit` runs `mergekit-yaml` on the same disk models when a Python environment with
 * mergekit exists (the bench never installs anything); otherwise the `mk` rows are compared with
 * the times measured for issue 9 on the 2-core development VM.
 *
 * Per row: wall time, input GB/s (bytes of every model read), output parameters/s, peak RSS (sampled
 * every 20 ms), the most GPU buffer memory alive at once, the buffers created/reused, the dispatches,
 * submits and read-backs (buffers mapped) (gpu; `--no-overlap`: one tensor at a time, without the
 * engine's overlap of the next tensor's uploads with this one's read-back), the
 * ratio to a plain copy (read every input, write one model) and to mergekit. JSON goes to
 * bench/results/<date>-<host>.json (or --json). `--linalg` adds matrix-product GFLOP/s and the
 * polar / SVD times of src/gpu/linalg (bench/linalg.ts); `--linalg-only` runs just that.
 * `--subspace` adds the analysis's subspace statistics (bench/subspace.ts); `--subspace-only` runs just that.
 * `--subspace-methods` adds one merge of a single matrix per subspace method (tsv, iso_c, iso_cts)
 * per backend (with `--linalg-only` or `--subspace-only`: no model merges).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, cpus, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseRecipe } from '../src/core/recipe/parse.ts';
import { openModel } from '../src/core/safetensors/model.ts';
import type { OutputFolder } from '../src/core/safetensors/writer.ts';
import { DiscardOutputFolder } from '../src/core/sources/discard.ts';
import { LLAMA_SHAPES, llamaParams, proceduralModelTree, type LlamaShape } from '../src/core/sources/procedural.ts';
import type { ModelSource } from '../src/core/source.ts';
import { formatBytes } from '../src/core/units.ts';
import { createBackend, type BackendKind } from '../src/cli/backend.ts';
import { nodeFileTree, NodeOutputFolder } from '../src/cli/node-files.ts';
import type { Backend } from '../src/gpu/backend.ts';
import { runMerge } from '../src/gpu/engine.ts';
import { FastCpuBackend } from '../src/gpu/cpu-fast/fast-backend.ts';
import { GpuBackend } from '../src/gpu/gpu-backend.ts';
import { methodLookup } from '../src/gpu/methods/index.ts';
import { benchAnalysis, reportAnalysis } from './analysis.ts';
import { benchLinalg, reportLinalg, type LinalgRow } from './linalg.ts';
import { benchSubspace, benchSubspaceMethods, reportSubspace, reportSubspaceMethods, type SubspaceMethodRow, type SubspaceRow } from './subspace.ts';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: 'small' },
    methods: { type: 'string', default: 'linear,task_arithmetic,ties,dare_ties,slerp,model_stock' },
    backends: { type: 'string', default: 'gpu,cpu' },
    from: { type: 'string', default: 'procedural' },
    'compare-mergekit': { type: 'boolean', default: false },
    'no-pool': { type: 'boolean', default: false },
    'no-overlap': { type: 'boolean', default: false },
    'no-analysis': { type: 'boolean', default: false },
    json: { type: 'string' },
    linalg: { type: 'boolean', default: false },
    'linalg-only': { type: 'boolean', default: false },
    'linalg-large': { type: 'boolean', default: false },
    'linalg-sizes': { type: 'string', default: '256,512,1024' },
    'linalg-factor-sizes': { type: 'string', default: '1024' },
    subspace: { type: 'boolean', default: false },
    'subspace-only': { type: 'boolean', default: false },
    'subspace-large': { type: 'boolean', default: false },
    'subspace-methods': { type: 'boolean', default: false },
    'subspace-methods-large': { type: 'boolean', default: false },
  },
});

const SHAPES: Record<string, LlamaShape> = {
  small: { hidden: 512, intermediate: 1408, layers: 8, vocab: 8000, heads: 8, kvHeads: 4 },
  ...LLAMA_SHAPES,
};

/**
 * mergekit 0.1.4's wall times on the `mk` set (reading and writing included, single-threaded torch,
 * the 2-core development VM), measured for issue 9.
 */
const MERGEKIT_MK_SECONDS: Record<string, number> = {
  linear: 21.3,
  slerp: 31.5,
  model_stock: 26.8,
  task_arithmetic: 25.8,
  dare_ties: 82.3,
};

const EXPERTS = ['expert1', 'expert2', 'expert3'];

/** The recipe a method is benchmarked with (mergekit syntax; model names are resolved by `ref`). */
function recipeYaml(method: string, ref: (name: string) => string): string {
  const list = (params: string) => EXPERTS.map((m) => `  - model: ${ref(m)}\n${params ? `    parameters: {${params}}\n` : ''}`).join('');
  const base = `base_model: ${ref('base')}\n`;
  switch (method) {
    case 'slerp':
      return `models:\n  - model: ${ref('base')}\n  - model: ${ref('expert1')}\nmerge_method: slerp\n${base}parameters: {t: 0.4}\ndtype: bfloat16\n`;
    case 'nuslerp':
      return `models:\n  - model: ${ref('expert1')}\n    parameters: {weight: 0.5}\n  - model: ${ref('expert2')}\n    parameters: {weight: 0.5}\nmerge_method: nuslerp\n${base}dtype: bfloat16\n`;
    case 'linear':
      return `models:\n${list('weight: 1')}merge_method: linear\ndtype: bfloat16\n`;
    case 'task_arithmetic':
      return `models:\n${list('weight: 0.5')}merge_method: task_arithmetic\n${base}dtype: bfloat16\n`;
    case 'model_stock':
      return `models:\n${list('')}merge_method: model_stock\n${base}dtype: bfloat16\n`;
    case 'tsv':
    case 'iso_c':
    case 'iso_cts':
      return `models:\n${list('')}merge_method: ${method}\n${base}dtype: bfloat16\n`;
    case 'lines':
      return `models:\n${list('')}merge_method: lines\n${base}parameters: {beta: 0.5}\ndtype: bfloat16\n`;
    case 'breadcrumbs':
    case 'breadcrumbs_ties':
      return `models:\n${list('weight: 0.5, density: 0.9, gamma: 0.01')}merge_method: ${method}\n${base}dtype: bfloat16\n`;
    case 'della':
    case 'della_linear':
      return `models:\n${list('weight: 0.5, density: 0.5, epsilon: 0.1')}merge_method: ${method}\n${base}dtype: bfloat16\n`;
    default:
      return `models:\n${list('weight: 0.5, density: 0.5')}merge_method: ${method}\n${base}dtype: bfloat16\n`;
  }
}

interface ModelSet {
  size: string;
  shape: LlamaShape;
  params: number;
  bytesPerModel: number;
  sources: Map<string, ModelSource>;
  /** Folder holding the models (base, expert1..3) when they are read from disk. */
  dir?: string;
}

async function modelSet(size: string): Promise<ModelSet> {
  const shape = SHAPES[size];
  if (!shape) throw new Error(`unknown size ${size} (${Object.keys(SHAPES).join(', ')})`);
  const trees = ['base', ...EXPERTS].map((name, i) => [name, proceduralModelTree(name, { shape, expert: i })] as const);
  const sources = new Map<string, ModelSource>();
  let dir: string | undefined;
  if (values.from === 'disk') {
    dir = mkdtempSync(join(tmpdir(), `merge-studio-bench-${size}-`));
    for (const [name, tree] of trees) {
      mkdirSync(join(dir, name));
      for (const path of await tree.list()) {
        const src = (await tree.open(path))!;
        // Written in 64 MiB pieces so even 7B models never sit in memory whole.
        const { openSync, writeSync, closeSync } = await import('node:fs');
        const fd = openSync(join(dir, name, path), 'w');
        for (let at = 0; at < src.size; at += 64 << 20) writeSync(fd, await src.read(at, Math.min(64 << 20, src.size - at)));
        closeSync(fd);
      }
      sources.set(name, await openModel(await nodeFileTree(join(dir, name)), { id: name }));
    }
  } else if (values.from === 'procedural') {
    for (const [name, tree] of trees) sources.set(name, await openModel(tree, { id: name }));
  } else throw new Error(`--from must be procedural or disk, not ${values.from}`);
  const base = sources.get('base')!;
  const bytesPerModel = [...base.tensors.values()].reduce((s, t) => s + t.byteLength, 0);
  return { size, shape, params: llamaParams(shape), bytesPerModel, sources, dir };
}

function outputFolder(set: ModelSet): { folder: OutputFolder; cleanup: () => void } {
  if (!set.dir) return { folder: new DiscardOutputFolder(), cleanup: () => undefined };
  const target = join(set.dir, `out-${Date.now()}`);
  return { folder: new NodeOutputFolder(target, { overwrite: true }), cleanup: () => rmSync(target, { recursive: true, force: true }) };
}

/** Peak RSS while `run` runs, sampled every 20 ms. */
async function withPeakRss<T>(run: () => Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    const result = await run();
    return { result, peak: Math.max(peak, process.memoryUsage().rss) };
  } finally {
    clearInterval(sampler);
  }
}

/** Read every tensor of every model and write one model's bytes: the floor a merge cannot beat. */
async function plainCopy(set: ModelSet): Promise<number> {
  const { folder, cleanup } = outputFolder(set);
  const t0 = performance.now();
  const sink = await folder.create('model.safetensors');
  const models = [...set.sources.values()];
  for (const name of models[0].tensors.keys()) {
    const bytes = await Promise.all(models.map((m) => m.readTensor(name)));
    await sink.write(bytes[0]);
  }
  await sink.close();
  await folder.commit();
  const seconds = (performance.now() - t0) / 1000;
  cleanup();
  return seconds;
}

interface Row {
  size: string;
  backend: string;
  device: string;
  method: string;
  seconds: number;
  /** CPU time of the whole process (every thread) during the merge: steadier than wall time on a shared machine. */
  cpuUserSeconds: number;
  cpuSystemSeconds: number;
  inputBytes: number;
  params: number;
  gbPerSecond: number;
  paramsPerSecond: number;
  peakRssBytes: number;
  peakGpuBytes?: number;
  buffersCreated?: number;
  buffersReused?: number;
  /** Compute dispatches and command-buffer submissions (gpu): the passes a merge makes. */
  dispatches?: number;
  submits?: number;
  /** GPU buffers mapped for reading (gpu): the host round trips a merge makes. */
  readbacks?: number;
  /** Merge time / plain copy time of the same bytes. */
  vsCopy: number;
  mergekitSeconds?: number;
  /** mergekit's time / ours (above 1: faster than mergekit). */
  vsMergekit?: number;
  mergekitSource?: 'measured' | 'issue-9';
}

/** GPU buffers mapped since countBufferMaps() (read-backs: the only way data comes back to the host). */
let bufferMaps = 0;
function countBufferMaps(): void {
  const proto = globalThis.GPUBuffer.prototype as GPUBuffer & { countedByBench?: true };
  if (proto.countedByBench) return;
  const mapAsync = proto.mapAsync;
  proto.mapAsync = function (this: GPUBuffer, ...args: Parameters<GPUBuffer['mapAsync']>) {
    bufferMaps++;
    return mapAsync.apply(this, args);
  };
  proto.countedByBench = true;
}

function mergekitAvailable(): boolean {
  const r = spawnSync('python3', ['-c', 'import mergekit'], { encoding: 'utf8' });
  return r.status === 0 && spawnSync('mergekit-yaml', ['--help'], { encoding: 'utf8' }).status === 0;
}

function timeMergekit(set: ModelSet, method: string): number | undefined {
  if (!set.dir) return undefined;
  const recipe = join(set.dir, `${method}.yml`);
  writeFileSync(recipe, recipeYaml(method, (n) => join(set.dir!, n)));
  const out = join(set.dir, `mergekit-${method}`);
  const t0 = performance.now();
  const r = spawnSync('mergekit-yaml', [recipe, out, '--lazy-unpickle'], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  const seconds = (performance.now() - t0) / 1000;
  rmSync(out, { recursive: true, force: true });
  if (r.status !== 0) {
    console.error(`mergekit ${method} failed: ${r.stderr.slice(-500)}`);
    return undefined;
  }
  return seconds;
}

async function benchSet(set: ModelSet, backends: Map<BackendKind, Backend>, useMergekit: boolean): Promise<Row[]> {
  const copySeconds = await plainCopy(set);
  console.error(`${set.size}: plain copy of the inputs ${copySeconds.toFixed(2)} s (${((set.bytesPerModel * 4) / copySeconds / 1e9).toFixed(2)} GB/s in)`);
  const rows: Row[] = [];
  const mergekitTimes = new Map<string, { seconds: number; source: 'measured' | 'issue-9' }>();
  for (const method of (values.methods as string).split(',')) {
    const measured = useMergekit ? timeMergekit(set, method) : undefined;
    if (measured !== undefined) mergekitTimes.set(method, { seconds: measured, source: 'measured' });
    else if (set.size === 'mk' && MERGEKIT_MK_SECONDS[method] !== undefined) mergekitTimes.set(method, { seconds: MERGEKIT_MK_SECONDS[method], source: 'issue-9' });
  }
  for (const [kind, backend] of backends) {
    for (const method of (values.methods as string).split(',')) {
      const recipe = parseRecipe(recipeYaml(method, (n) => n), methodLookup, { file: `${method}.yml` });
      const used = new Set([...recipe.models.map((m) => m.model), ...(recipe.baseModel ? [recipe.baseModel] : [])]);
      const { folder, cleanup } = outputFolder(set);
      const gpu = backend instanceof GpuBackend ? backend : undefined;
      gpu?.ctx.trimPool();
      gpu?.ctx.resetPeak();
      // Each row starts as a fresh CLI run would: no free buffers pooled by the rows before it (they
      // would count in this row's peak RSS; a pooled buffer is also faster to touch than a fresh one).
      if (backend instanceof FastCpuBackend) backend.pool.trim();
      const created0 = gpu?.ctx.createdBuffers ?? 0;
      const reused0 = gpu?.ctx.reusedBuffers ?? 0;
      const dispatches0 = gpu?.ctx.dispatchCount ?? 0;
      const submits0 = gpu?.ctx.submitCount ?? 0;
      const readbacks0 = bufferMaps;
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      const { peak } = await withPeakRss(() => runMerge({ recipe, sources: set.sources, backend, output: folder, options: { seed: 1 } }));
      const seconds = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      cleanup();
      const inputBytes = used.size * set.bytesPerModel;
      const mk = mergekitTimes.get(method);
      const row: Row = {
        size: set.size,
        backend: kind,
        device: backend.description,
        method,
        seconds,
        cpuUserSeconds: cpu.user / 1e6,
        cpuSystemSeconds: cpu.system / 1e6,
        inputBytes,
        params: set.params,
        gbPerSecond: inputBytes / seconds / 1e9,
        paramsPerSecond: set.params / seconds,
        peakRssBytes: peak,
        peakGpuBytes: gpu?.ctx.peakBytes,
        buffersCreated: gpu ? gpu.ctx.createdBuffers - created0 : undefined,
        buffersReused: gpu ? gpu.ctx.reusedBuffers - reused0 : undefined,
        dispatches: gpu ? gpu.ctx.dispatchCount - dispatches0 : undefined,
        submits: gpu ? gpu.ctx.submitCount - submits0 : undefined,
        readbacks: gpu ? bufferMaps - readbacks0 : undefined,
        // The copy read all four models; scale to the models this method reads.
        vsCopy: seconds / ((copySeconds * used.size) / 4),
        mergekitSeconds: mk?.seconds,
        vsMergekit: mk ? mk.seconds / seconds : undefined,
        mergekitSource: mk?.source,
      };
      rows.push(row);
      console.error(
        `${set.size} ${kind.padEnd(4)} ${method.padEnd(16)} ${seconds.toFixed(2).padStart(8)} s  ${row.gbPerSecond.toFixed(3)} GB/s in  ` +
          `${(row.paramsPerSecond / 1e6).toFixed(1)} M params/s  CPU ${row.cpuUserSeconds.toFixed(1)} s user + ${row.cpuSystemSeconds.toFixed(1)} s sys  peak RSS ${formatBytes(peak)}` +
          (gpu ? `  peak GPU ${formatBytes(row.peakGpuBytes ?? 0)}  buffers +${row.buffersCreated} (${row.buffersReused} reused)  ${row.dispatches} dispatches in ${row.submits} submits, ${row.readbacks} read-backs` : '') +
          `  ${row.vsCopy.toFixed(2)}× copy` +
          (row.vsMergekit !== undefined ? `  ${row.vsMergekit.toFixed(2)}× mergekit's speed` : ''),
      );
    }
  }
  return rows;
}

function table(rows: readonly Row[]): void {
  console.log('| size | backend | device | method | time (s) | input GB/s | output params/s | peak RSS | peak GPU buffers | × plain copy | vs mergekit |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.size} | ${r.backend} | ${r.device} | ${r.method} | ${r.seconds.toFixed(2)} | ${r.gbPerSecond.toFixed(3)} | ${(r.paramsPerSecond / 1e6).toFixed(1)} M | ` +
        `${formatBytes(r.peakRssBytes)} | ${r.peakGpuBytes !== undefined ? formatBytes(r.peakGpuBytes) : '–'} | ${r.vsCopy.toFixed(2)} | ` +
        `${r.vsMergekit !== undefined ? `${r.vsMergekit.toFixed(2)}×${r.mergekitSource === 'issue-9' ? '*' : ''}` : '–'} |`,
    );
  }
  if (rows.some((r) => r.mergekitSource === 'issue-9')) console.log('\n\\* mergekit 0.1.4 times measured for issue 9 on the 2-core development VM (not in this run).');
}

async function main() {
  const linalgOnly = values['linalg-only'] === true;
  const subspaceOnly = values['subspace-only'] === true;
  const sizes = linalgOnly || subspaceOnly ? [] : (values.sizes as string).split(',');
  const useMergekit = values['compare-mergekit'] === true && values.from === 'disk' && mergekitAvailable();
  if (values['compare-mergekit'] && !useMergekit) {
    console.error(values.from !== 'disk' ? 'mergekit comparison needs --from disk' : 'mergekit is not installed here: comparing with the times recorded for issue 9');
  }
  const backends = new Map<BackendKind, Backend>();
  /** Each backend's device (the GPU adapter's name), for the JSON. */
  const adapters: Record<string, string> = {};
  for (const kind of (values.backends as string).split(',') as BackendKind[]) {
    const backend = await createBackend(kind);
    if (values['no-pool'] && backend instanceof GpuBackend) backend.ctx.setMaxIdleBytes(0);
    // The engine's overlap of tensors off, to measure what it gains (the field is the backend's own).
    if (values['no-overlap'] && backend instanceof GpuBackend) Object.defineProperty(backend, 'overlapsTensors', { value: false });
    if (backend instanceof GpuBackend) countBufferMaps();
    backends.set(kind, backend);
    adapters[kind] = backend.description;
    console.error(`${kind}: ${backend.description}`);
  }
  const rows: Row[] = [];
  const sets: Omit<ModelSet, 'sources' | 'dir'>[] = [];
  let linalg: LinalgRow[] | undefined;
  try {
    for (const size of sizes) {
      const set = await modelSet(size);
      console.error(`${size}: ${(set.params / 1e6).toFixed(1)} M parameters, ${formatBytes(set.bytesPerModel)} per model (BF16, ${values.from})`);
      sets.push({ size, shape: set.shape, params: set.params, bytesPerModel: set.bytesPerModel });
      try {
        rows.push(...(await benchSet(set, backends, useMergekit)));
      } finally {
        if (set.dir) rmSync(set.dir, { recursive: true, force: true });
      }
    }
    if (values.linalg || linalgOnly) {
      const list = (v: unknown) => String(v).split(',').map(Number);
      linalg = await benchLinalg(backends, { sizes: list(values['linalg-sizes']), factorSizes: list(values['linalg-factor-sizes']), large: values['linalg-large'] === true });
    }
  } finally {
    for (const b of backends.values()) b.destroy();
  }
  if (!linalgOnly && !subspaceOnly) table(rows);
  if (linalg) reportLinalg(linalg);
  let analysis: Awaited<ReturnType<typeof benchAnalysis>> | undefined;
  if (!values['no-analysis'] && !linalgOnly && !subspaceOnly) {
    console.error('analysis of the demo checkpoints (TIES, three experts): first run, then re-runs as one density slider moves');
    analysis = await benchAnalysis((values.backends as string).split(',') as BackendKind[]);
    reportAnalysis(analysis);
  }
  let subspace: SubspaceRow[] | undefined;
  if (values.subspace || subspaceOnly) {
    subspace = await benchSubspace((values.backends as string).split(',') as BackendKind[], { large: values['subspace-large'] === true });
    reportSubspace(subspace);
  }
  let subspaceMethods: SubspaceMethodRow[] | undefined;
  if (values['subspace-methods'] || values['subspace-methods-large']) {
    subspaceMethods = await benchSubspaceMethods((values.backends as string).split(',') as BackendKind[], { large: values['subspace-methods-large'] === true });
    reportSubspaceMethods(subspaceMethods);
  }
  const machine = { host: hostname(), cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memory: totalmem(), node: process.version };
  const date = new Date().toISOString();
  const file = values.json ?? join(import.meta.dirname, 'results', `${date.slice(0, 10)}-${machine.host}-${linalgOnly ? 'linalg' : subspaceOnly ? 'subspace' : sizes.join('_')}.json`);
  mkdirSync(join(file, '..'), { recursive: true });
  const overlap = !values['no-overlap'];
  writeFileSync(file, JSON.stringify({ date, machine, adapters, from: values.from, pool: !values['no-pool'], overlap, sets, rows, analysis, linalg, subspace, subspaceMethods }, null, 2) + '\n');
  console.error(`results: ${file}`);
}

await main();
process.exit(0);

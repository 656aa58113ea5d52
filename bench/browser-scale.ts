/**
 * `npm run bench:browser`: how large a merge a browser tab can do. Builds the measurement page
 * (bench/browser-scale/, the studio's engine worker logic in a worker of its own), serves it with
 * `vite preview`, and drives headless Chromium (/usr/bin/chromium with --enable-unsafe-webgpu, as
 * playwright.config.ts) through it:
 *
 *   1. the GPU's limits as the tab sees them (maxBufferSize, maxStorageBufferBindingSize, ...);
 *   2. per set: a base and three experts written into OPFS (procedural BF16 checkpoints), then merged
 *      from OPFS into an OPFS folder on each backend, timed, with the browser's processes' memory
 *      sampled every 250 ms (renderer = page + worker, GPU process = WebGPU buffers on SwiftShader);
 *   `--gpu-probe-gib N` also finds the largest single buffer the device allocates, then fills GPU
 *      buffers of up to 1 GiB (written, as decode writes them) until one fails or N GiB are held:
 *      how much GPU memory the tab really gets;
 *   3. `--tensor7b`: the 7B shape's largest tensor alone (embed_tokens 128256×4096, a 0-layer model
 *      with tied embeddings) the same way: the studio refuses it (tab-limit.ts); with `--no-tab-limit`
 *      the engine tries, to find what fails first (mind the machine's memory: the CPU backend would
 *      hold ~21 GB).
 *
 * Results: bench/results/<date>-<host>-browser-<sets>-<method>.json (or --json), with the machine.
 *
 *   npm run bench:browser -- [--sets mk,1b] [--backends gpu,cpu] [--method task_arithmetic]
 *                            [--tensor7b] [--gpu-probe-gib N] [--no-tab-limit] [--port 4306] [--skip-build] [--keep-opfs]
 *                            [--json FILE]
 *
 * Not part of `npm test`. Chromium's processes get oom_score_adj 1000, so if memory runs out the
 * kernel stops the browser before anything else on the machine.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, hostname, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium, type Page } from '@playwright/test';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../e2e/chromium.ts';
import { parseRecipe } from '../src/core/recipe/parse.ts';
import { LLAMA_SHAPES, llamaParams, llamaTensors, type LlamaShape } from '../src/core/sources/procedural.ts';
import { formatBytes } from '../src/core/units.ts';
import { methodLookup } from '../src/gpu/methods/index.ts';

const { values } = parseArgs({
  options: {
    sets: { type: 'string', default: 'mk' },
    backends: { type: 'string', default: 'gpu,cpu' },
    method: { type: 'string', default: 'task_arithmetic' },
    tensor7b: { type: 'boolean', default: false },
    port: { type: 'string', default: '4306' },
    'skip-build': { type: 'boolean', default: false },
    'keep-opfs': { type: 'boolean', default: false },
    'gpu-probe-gib': { type: 'string', default: '0' },
    /** Skip the studio's refusal of merges too large for a tab (src/gpu/plan/tab-limit.ts). */
    'no-tab-limit': { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});

const SETS: Record<string, LlamaShape> = {
  small: { hidden: 512, intermediate: 1408, layers: 8, vocab: 8000, heads: 8, kvHeads: 4 },
  ...LLAMA_SHAPES,
  /** The 7B shape's largest tensor alone: its input embeddings (tied: no lm_head), no layers. */
  '7b-embed': { ...LLAMA_SHAPES['7b'], layers: 0, tiedEmbeddings: true },
};

const ROOT = join(import.meta.dirname, '..');
const CONFIG = join(import.meta.dirname, 'browser-scale', 'vite.config.ts');
const OUT_DIR = join(ROOT, 'test-results', 'browser-scale-dist');

/** The recipe measured: f32 math (no BF16 emulation passes), BF16 output. */
function recipeFor(method: string) {
  const experts = ['expert1', 'expert2', 'expert3'];
  const params = method === 'linear' ? 'weight: 1' : method === 'task_arithmetic' ? 'weight: 0.5' : 'weight: 0.5, density: 0.5';
  const yaml =
    `models:\n${experts.map((m) => `  - model: ${m}\n    parameters: {${params}}\n`).join('')}merge_method: ${method}\n` +
    `${method === 'linear' ? '' : 'base_model: base\n'}dtype: float32\nout_dtype: bfloat16\n`;
  return parseRecipe(yaml, methodLookup, { file: `${method}.yml` });
}

/** Every process under `pid` (Chromium's browser, renderer, GPU and utility processes). */
function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const visit = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) visit(c);
  };
  visit(pid);
  return out;
}

function processKind(pid: number): string {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const type = /--type=([a-z-]+)/.exec(cmd)?.[1];
    return type === 'renderer' ? 'renderer' : type === 'gpu-process' ? 'gpu' : type ? 'other' : 'browser';
  } catch {
    return 'gone';
  }
}

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

interface MemoryPeaks {
  total: number;
  renderer: number;
  gpu: number;
}

function isChromium(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('chromium');
  } catch {
    return false;
  }
}

/**
 * Samples Chromium's processes (this process's descendants whose command line names chromium) every
 * 250 ms; also marks them first to be killed on OOM.
 */
class MemorySampler {
  #timer: NodeJS.Timeout | undefined;
  peaks: MemoryPeaks = { total: 0, renderer: 0, gpu: 0 };

  start(): void {
    this.peaks = { total: 0, renderer: 0, gpu: 0 };
    this.#timer = setInterval(() => this.sample(), 250);
  }

  sample(): void {
    let total = 0;
    const byKind: Record<string, number> = {};
    for (const p of processTree(process.pid).filter(isChromium)) {
      try {
        writeFileSync(`/proc/${p}/oom_score_adj`, '1000');
      } catch {
        // not ours, or gone
      }
      const rss = rssOf(p);
      total += rss;
      const kind = processKind(p);
      byKind[kind] = (byKind[kind] ?? 0) + rss;
    }
    this.peaks.total = Math.max(this.peaks.total, total);
    this.peaks.renderer = Math.max(this.peaks.renderer, byKind.renderer ?? 0);
    this.peaks.gpu = Math.max(this.peaks.gpu, byKind.gpu ?? 0);
  }

  stop(): MemoryPeaks {
    clearInterval(this.#timer);
    this.sample();
    return { ...this.peaks };
  }
}

async function waitForServer(url: string, server: ChildProcess): Promise<void> {
  for (let i = 0; i < 240; i++) {
    if (server.exitCode !== null) throw new Error(`vite preview exited with ${server.exitCode}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${url} did not answer`);
}

interface Row {
  set: string;
  params: number;
  largestTensor: { name: string; shape: number[]; f32Bytes: number };
  backend: string;
  method: string;
  completed: boolean;
  seconds: number;
  error?: string;
  peakGpuBufferBytes: number | null;
  peakProcessBytes: MemoryPeaks;
  writeSeconds: number;
  setBytes: number;
  /** Bytes of the input models read per second of merge (0 when it did not complete). */
  inputGBps: number;
}

async function call<T>(page: Page, request: unknown): Promise<T> {
  return (await page.evaluate((r) => window.scale.run(r as never), request)) as T;
}

async function main() {
  const port = Number(values.port);
  const sets = [...(values.sets as string).split(',').filter(Boolean), ...(values.tensor7b ? ['7b-embed'] : [])];
  const backends = (values.backends as string).split(',') as ('gpu' | 'cpu')[];
  const recipe = recipeFor(values.method as string);
  const models = [...(recipe.baseModel !== undefined ? [recipe.baseModel] : []), ...recipe.models.map((m) => m.model)];
  if (!values['skip-build']) {
    console.error('building the measurement page…');
    const r = spawnSync('npx', ['vite', 'build', '--config', CONFIG, '--outDir', OUT_DIR], { cwd: ROOT, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('vite build failed');
  }
  const server = spawn('npx', ['vite', 'preview', '--config', CONFIG, '--outDir', OUT_DIR, '--port', String(port), '--strictPort'], { cwd: ROOT, stdio: 'ignore', detached: true });
  const url = `http://localhost:${port}/`;
  // A persistent profile: OPFS on disk with the ordinary quota (a fresh context is off the record,
  // and its OPFS lives in memory).
  const profile = mkdtempSync(join(tmpdir(), 'merge-studio-scale-'));
  const browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  const rows: Row[] = [];
  let limits: unknown;
  try {
    await waitForServer(url, server);
    const sampler = new MemorySampler();
    const page = browser.pages()[0] ?? (await browser.newPage());
    page.on('console', (m) => console.error(`  [page] ${m.text()}`));
    page.on('crash', () => console.error('  [page] CRASHED'));
    await page.goto(values['no-tab-limit'] ? `${url}?no-tab-limit` : url);
    await page.waitForFunction(() => 'scale' in window);
    limits = await call(page, { op: 'limits', probeGiB: Number(values['gpu-probe-gib']) });
    console.error(`limits: ${JSON.stringify(limits)}`);
    const quota = (limits as { storage: StorageEstimate }).storage.quota ?? Infinity;
    await call(page, { op: 'clear' });
    for (const set of sets) {
      const shape = SETS[set];
      if (!shape) throw new Error(`unknown set ${set} (${Object.keys(SETS).join(', ')})`);
      const tensors = llamaTensors(shape).map((t) => ({ ...t, numel: t.shape.reduce((a, b) => a * b, 1) }));
      const largest = tensors.reduce((a, b) => (b.numel > a.numel ? b : a));
      console.error(`${set}: ${(llamaParams(shape) / 1e6).toFixed(1)} M parameters; largest tensor ${largest.name} [${largest.shape}] (${formatBytes(largest.numel * 4)} in f32)`);
      // The inputs and one merged model (all BF16) must fit in the origin's OPFS quota.
      const modelBytes = llamaParams(shape) * 2;
      if ((models.length + 1) * modelBytes > quota) {
        console.error(`${set}: not run: ${models.length} models and the merge (${formatBytes((models.length + 1) * modelBytes)}) exceed the OPFS quota of ${formatBytes(quota)}`);
        continue;
      }
      const written = await call<{ bytes: number; seconds: number }>(page, { op: 'write', set, shape, models });
      console.error(`${set}: wrote ${formatBytes(written.bytes)} into OPFS in ${written.seconds.toFixed(1)} s`);
      for (const backend of backends) {
        sampler.start();
        let result: { completed: boolean; seconds: number; peakGpuBytes: number | null; error?: { name: string; message: string } };
        try {
          result = await call(page, { op: 'merge', set, models, recipe, backend });
        } catch (err) {
          // The page or its worker died (a crash is how a tab runs out of memory).
          result = { completed: false, seconds: NaN, peakGpuBytes: null, error: { name: 'PageError', message: String(err) } };
        }
        const peaks = sampler.stop();
        const row: Row = {
          set,
          params: llamaParams(shape),
          largestTensor: { name: largest.name, shape: largest.shape, f32Bytes: largest.numel * 4 },
          backend,
          method: values.method as string,
          completed: result.completed,
          seconds: result.seconds,
          error: result.error ? `${result.error.name}: ${result.error.message}` : undefined,
          peakGpuBufferBytes: result.peakGpuBytes,
          peakProcessBytes: peaks,
          writeSeconds: written.seconds,
          setBytes: written.bytes,
          inputGBps: result.completed ? written.bytes / result.seconds / 1e9 : 0,
        };
        rows.push(row);
        console.error(
          `${set} ${backend}: ${row.completed ? `done in ${row.seconds.toFixed(1)} s` : `FAILED after ${row.seconds.toFixed(1)} s: ${row.error}`}; ` +
            `peak browser RSS ${formatBytes(peaks.total)} (renderer ${formatBytes(peaks.renderer)}, GPU process ${formatBytes(peaks.gpu)})` +
            (row.peakGpuBufferBytes !== null ? `, peak GPU buffers ${formatBytes(row.peakGpuBufferBytes)}` : ''),
        );
        if (page.isClosed()) break;
      }
      if (!values['keep-opfs'] && !page.isClosed()) await call(page, { op: 'clear' });
    }
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
    if (server.pid) process.kill(-server.pid);
  }
  console.log('| set | parameters | backend | method | completed | time (s) | input GB/s | peak browser RSS | renderer | GPU process | peak GPU buffers |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.set} | ${(r.params / 1e6).toFixed(0)} M | ${r.backend} | ${r.method} | ${r.completed ? 'yes' : `no: ${r.error}`} | ${r.seconds.toFixed(1)} | ${r.inputGBps.toFixed(3)} | ` +
        `${formatBytes(r.peakProcessBytes.total)} | ${formatBytes(r.peakProcessBytes.renderer)} | ${formatBytes(r.peakProcessBytes.gpu)} | ${r.peakGpuBufferBytes !== null ? formatBytes(r.peakGpuBufferBytes) : '–'} |`,
    );
  }
  const date = new Date().toISOString();
  const file = values.json ?? join(import.meta.dirname, 'results', `${date.slice(0, 10)}-${hostname()}-browser-${sets.join('_')}-${values.method}.json`);
  mkdirSync(join(file, '..'), { recursive: true });
  const machine = { host: hostname(), cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memory: totalmem(), node: process.version };
  writeFileSync(file, JSON.stringify({ date, machine, limits, rows }, null, 2) + '\n');
  console.error(`results: ${file}`);
}

await main();
process.exit(0);

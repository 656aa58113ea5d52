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
import { join, resolve } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseRecipe } from '../src/core/recipe/parse.ts';
import { openModel } from '../src/core/safetensors/model.ts';
import type { ModelSource } from '../src/core/source.ts';
import { createBackend, type BackendKind } from '../src/cli/backend.ts';
import { nodeFileTree } from '../src/cli/node-files.ts';
import { analyzeMerge } from '../src/gpu/analysis/analyze.ts';
import { AnalysisCache, ResidentTensors } from '../src/gpu/analysis/cache.ts';
import type { AnalysisOps } from '../src/gpu/analysis/ops.ts';
import { analysisOpsFor } from '../src/gpu/analysis/ops-for.ts';
import { ReferenceAnalysisOps } from '../src/gpu/analysis/reference-ops.ts';
import { methodLookup } from '../src/gpu/methods/index.ts';

export interface AnalysisRow {
  backend: string;
  firstMs: number;
  /** Median re-run after one expert's density changed, with every cache the worker keeps. */
  rerunMs: number;
  /** The same re-runs with the model-statistics cache only. */
  rerunModelCacheOnlyMs: number;
  /** Where the cached re-runs' time went (medians over the re-runs; Node only). */
  rerun?: RerunBreakdown;
}

/** One cached re-run, split: wall, the process's CPU (all threads), GC pauses, and time in the ops called from the analysis (outermost calls only). */
export interface RerunBreakdown {
  wallMs: number;
  cpuMs: number;
  gcMs: number;
  /** Time inside AnalysisOps calls (signCounts, magnitudeHistograms, electedContributionNormsSq). */
  analysisOpsMs: number;
  /** Time inside Backend calls made by the analysis outside the ops, by op name. */
  backendMs: Record<string, number>;
}

const ROOT = join(import.meta.dirname, '..');
const DEMO = join(ROOT, 'public', 'demo');
const SLIDER_RECORD = join(ROOT, 'test-results', 'slider-to-chart.json');
/** The slider positions of the re-runs (each a new density for expert-1), the median taken over them. */
const DENSITIES = [0.3, 0.35, 0.4, 0.45, 0.6];

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

export async function benchAnalysis(backends: BackendKind[], opts: { threads?: number; referenceOps?: boolean } = {}): Promise<AnalysisRow[]> {
  const index = JSON.parse(readFileSync(join(DEMO, 'index.json'), 'utf8')) as { models: { name: string; folder: string }[] };
  const sources = new Map<string, ModelSource>();
  for (const m of index.models) sources.set(m.name, await openModel(await nodeFileTree(join(DEMO, m.folder)), { id: m.name }));
  const rows: AnalysisRow[] = [];
  for (const kind of backends) {
    const backend = await createBackend(kind, { threads: opts.threads });
    const ops = opts.referenceOps ? new ReferenceAnalysisOps(backend) : analysisOpsFor(backend);
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
      const parts: RerunBreakdown[] = [];
      const probe = instrument(ops);
      try {
        for (const d of DENSITIES) {
          probe.start();
          const t0 = performance.now();
          await analyzeMerge({ recipe: recipe(d), sources, ops: probe.ops, options: { cache, resident } });
          warm.push(performance.now() - t0);
          parts.push(await probe.stop(warm[warm.length - 1]));
        }
      } finally {
        probe.restore();
      }
      rows.push({ backend: opts.referenceOps ? `${kind} (reference analysis ops)` : kind, firstMs, rerunMs: median(warm), rerunModelCacheOnlyMs: median(cold), rerun: medianBreakdown(parts) });
    } finally {
      resident.clear();
      backend.destroy();
    }
  }
  return rows;
}

/** Backend ops the analysis calls (timed when it calls them outside the analysis ops). */
const TIMED_BACKEND_OPS = [
  'decode', 'read', 'lincomb', 'lincombRounded', 'quantize', 'keepRankBand', 'keepRanked', 'keepRandom', 'keepWhere',
  'rescaleL1', 'sumAbs', 'gram', 'gramRows', 'matmul', 'transpose', 'signElect', 'countKeyDigits',
] as const;

/**
 * Times the analysis ops and the backend's ops (outermost calls only: the ops' own backend calls count
 * as ops time), the process's CPU time and GC pauses between start() and stop(). Wraps the backend's
 * methods in place (the analysis checks that resident tensors belong to ops.backend) until restore().
 */
function instrument(inner: AnalysisOps) {
  const backend = inner.backend as unknown as Record<string, unknown>;
  let depth = 0;
  let opsMs = 0;
  const backendMs: Record<string, number> = {};
  const timed = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, add: (ms: number) => void) => async (...args: A): Promise<R> => {
    const outer = depth++ === 0;
    const t0 = performance.now();
    try {
      return await fn(...args);
    } finally {
      depth--;
      if (outer) add(performance.now() - t0);
    }
  };
  const saved = new Map<string, { own: boolean; value: unknown }>();
  for (const name of TIMED_BACKEND_OPS) {
    const fn = backend[name];
    if (typeof fn !== 'function') continue;
    saved.set(name, { own: Object.hasOwn(backend, name), value: fn });
    backend[name] = timed((...args: unknown[]) => (fn as (...a: unknown[]) => Promise<unknown>).apply(backend, args), (ms) => (backendMs[name] = (backendMs[name] ?? 0) + ms));
  }
  const addOps = (ms: number) => (opsMs += ms);
  const ops: AnalysisOps = {
    backend: inner.backend,
    signCounts: timed((xs, flips) => inner.signCounts(xs, flips), addOps),
    magnitudeHistograms: timed((xs) => inner.magnitudeHistograms(xs), addOps),
    electedContributionNormsSq: timed((wds, w, n) => inner.electedContributionNormsSq(wds, w, n), addOps),
  };
  let gcMs = 0;
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcMs += e.duration;
  });
  let cpu0 = process.cpuUsage();
  return {
    ops,
    start() {
      opsMs = 0;
      gcMs = 0;
      for (const k of Object.keys(backendMs)) delete backendMs[k];
      gc.observe({ entryTypes: ['gc'] });
      cpu0 = process.cpuUsage();
    },
    async stop(wallMs: number): Promise<RerunBreakdown> {
      const cpu = process.cpuUsage(cpu0);
      await new Promise((r) => setTimeout(r, 0)); // GC entries arrive asynchronously
      gc.disconnect();
      return { wallMs, cpuMs: (cpu.user + cpu.system) / 1000, gcMs, analysisOpsMs: opsMs, backendMs: { ...backendMs } };
    },
    restore() {
      gc.disconnect();
      for (const [name, { own, value }] of saved) {
        if (own) backend[name] = value;
        else delete backend[name];
      }
    },
  };
}

/** The median of each part over the re-runs. */
function medianBreakdown(parts: readonly RerunBreakdown[]): RerunBreakdown {
  const names = [...new Set(parts.flatMap((p) => Object.keys(p.backendMs)))];
  return {
    wallMs: median(parts.map((p) => p.wallMs)),
    cpuMs: median(parts.map((p) => p.cpuMs)),
    gcMs: median(parts.map((p) => p.gcMs)),
    analysisOpsMs: median(parts.map((p) => p.analysisOpsMs)),
    backendMs: Object.fromEntries(names.map((n) => [n, median(parts.map((p) => p.backendMs[n] ?? 0))])),
  };
}

/** The analysis table for the bench's output, and the browser's last slider → chart measurement. */
export function reportAnalysis(rows: readonly AnalysisRow[]): void {
  console.log('');
  console.log(`| backend | first analysis (ms) | re-run after one density change, median of ${DENSITIES.length} (ms) | same, model-statistics cache only (ms) |`);
  console.log(`|---|---|---|---|`);
  for (const a of rows) console.log(`| ${a.backend} | ${a.firstMs.toFixed(0)} | ${a.rerunMs.toFixed(0)} | ${a.rerunModelCacheOnlyMs.toFixed(0)} |`);
  for (const a of rows) {
    const r = a.rerun;
    if (!r) continue;
    const ms = (v: number) => v.toFixed(1);
    const backendOps = Object.entries(r.backendMs)
      .sort((x, y) => y[1] - x[1])
      .map(([name, v]) => `${name} ${ms(v)}`)
      .join(', ');
    console.log(
      `${a.backend}: a cached re-run, medians: ${ms(r.wallMs)} ms wall, ${ms(r.cpuMs)} ms CPU (all threads), GC ${ms(r.gcMs)} ms; ` +
        `analysis ops ${ms(r.analysisOpsMs)} ms; backend ops outside them: ${backendOps || 'none'}`,
    );
  }
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

// `node bin/run-ts.mjs bench/analysis.ts [--backends cpu,cpu-reference,gpu] [--threads N] [--reference-ops]`: this
// part of `npm run bench` alone; --threads sets the fast CPU backend's (the studio's tab runs it on 1 when not
// cross-origin isolated); --reference-ops analyses with ReferenceAnalysisOps on every backend (the comparison).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { backends: { type: 'string', default: 'cpu' }, threads: { type: 'string' }, 'reference-ops': { type: 'boolean', default: false } } });
  const threads = values.threads === undefined ? undefined : Number(values.threads);
  console.error(`analysis of the demo checkpoints (TIES, three experts): first run, then ${DENSITIES.length} re-runs as one density slider moves`);
  reportAnalysis(await benchAnalysis((values.backends as string).split(',') as BackendKind[], { threads, referenceOps: values['reference-ops'] }));
  process.exit(0);
}

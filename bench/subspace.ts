/**
 * Subspace-statistics section of `npm run bench` (`--subspace`; `--subspace-only` skips the rest):
 * what src/gpu/analysis/subspace.ts costs.
 * - Demo checkpoints (public/demo), per backend: the first analysis of the set (TSV-M recipe, fresh
 *   caches: model statistics, subspace statistics included) and, within it, the subspace statistics
 *   alone (tensorSubspace over every weight matrix with the three experts' task vectors, k = 16;
 *   these matrices take the host path). A re-run after a slider move computes none of it (the model
 *   statistics are cached), as the analysis section's re-run column shows.
 * - `--subspace-large` (GPU only): one weight matrix of a 7B model's shapes (4096×4096 attention,
 *   14336×4096 and 4096×14336 MLP) with three task vectors of decaying spectrum, k = 16, on the
 *   backend path (truncatedSvd per model + one product for the overlaps).
 * - `--subspace-methods`, per backend: one merge of one weight matrix by each subspace method (tsv,
 *   iso_c, iso_cts; default parameters) with a base and three task vectors of decaying spectrum, at
 *   1024×1024 and 1024×3584 (`--subspace-methods-large` adds 4096×4096): one timed merge after an
 *   untimed one at 256×256 (kernels compiled), the result read back.
 * Times are best of 3 after one untimed run (pipelines built), GPU work included (read-backs wait).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createBackend, type BackendKind } from '../src/cli/backend.ts';
import { nodeFileTree } from '../src/cli/node-files.ts';
import { isMatrixTensor } from '../src/core/tensor-names.ts';
import { parseRecipe } from '../src/core/recipe/parse.ts';
import { openModel } from '../src/core/safetensors/model.ts';
import type { ModelSource } from '../src/core/source.ts';
import { analyzeMerge } from '../src/gpu/analysis/analyze.ts';
import { AnalysisCache } from '../src/gpu/analysis/cache.ts';
import { analysisOpsFor } from '../src/gpu/analysis/ops-for.ts';
import { DEFAULT_SUBSPACE_RANK, HOST_SVD_MAX_DIM, tensorSubspace } from '../src/gpu/analysis/subspace.ts';
import type { Backend, Tensor } from '../src/gpu/backend.ts';
import { gaussianMatrix } from '../src/gpu/linalg/host.ts';
import { getMethod, methodLookup } from '../src/gpu/methods/index.ts';

export interface SubspaceMethodRow {
  backend: string;
  device: string;
  method: string;
  /** m×n of the merged matrix. */
  shape: string;
  models: number;
  ms: number;
}

export interface SubspaceRow {
  backend: string;
  device: string;
  /** `demo` or a matrix shape. */
  what: string;
  matrices: number;
  models: number;
  k: number;
  path: 'host' | 'backend';
  /** tensorSubspace over all the matrices. */
  ms: number;
  /** Demo only: the first analysis of the set, subspace statistics included. */
  firstAnalysisMs?: number;
}

const DEMO = join(import.meta.dirname, '..', 'public', 'demo');
const EXPERTS = ['expert-1', 'expert-2', 'expert-3'];

async function bestOf3(f: () => Promise<unknown>): Promise<number> {
  await f();
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await f();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

async function demoSources(): Promise<Map<string, ModelSource>> {
  const index = JSON.parse(readFileSync(join(DEMO, 'index.json'), 'utf8')) as { models: { name: string; folder: string }[] };
  const sources = new Map<string, ModelSource>();
  for (const m of index.models) sources.set(m.name, await openModel(await nodeFileTree(join(DEMO, m.folder)), { id: m.name }));
  return sources;
}

async function demoRow(kind: BackendKind, sources: Map<string, ModelSource>): Promise<SubspaceRow> {
  const backend = await createBackend(kind);
  const ops = analysisOpsFor(backend);
  const made: Tensor[] = [];
  try {
    const recipe = parseRecipe(
      `models:\n${EXPERTS.map((e) => `  - model: ${e}\n    parameters: {weight: 1}\n`).join('')}merge_method: tsv\nbase_model: base\ndtype: float32\n`,
      methodLookup,
    );
    const firstAnalysisMs = await bestOf3(() => analyzeMerge({ recipe, sources, ops, options: { cache: new AnalysisCache() } }));
    // The task vectors of every weight matrix, made once; then the subspace statistics alone.
    const base = sources.get('base')!;
    const sets: Tensor[][] = [];
    for (const [name, info] of base.tensors) {
      if (!isMatrixTensor(name, info.shape)) continue;
      const decode = async (m: ModelSource) => backend.decode(await m.readTensor(name), m.tensors.get(name)!.dtype as 'BF16', info.shape);
      const b = await decode(base);
      const taus: Tensor[] = [];
      for (const e of EXPERTS) {
        const x = await decode(sources.get(e)!);
        const tau = await backend.lincomb([
          { x, coef: 1 },
          { x: b, coef: -1 },
        ]);
        backend.release(x);
        made.push(tau);
        taus.push(tau);
      }
      backend.release(b);
      sets.push(taus);
    }
    const ms = await bestOf3(async () => {
      for (const taus of sets) await tensorSubspace(backend, taus);
    });
    return { backend: kind, device: backend.description, what: 'demo', matrices: sets.length, models: EXPERTS.length, k: DEFAULT_SUBSPACE_RANK, path: 'host', ms, firstAnalysisMs };
  } finally {
    for (const t of made) backend.release(t);
    backend.destroy();
  }
}

/** τ = A·diag(0.97^j)·B, rank 256 (a decaying spectrum, as fine-tunes' task vectors have). */
async function decayingTaskVector(backend: Backend, m: number, n: number, seed: number): Promise<Tensor> {
  const r = 256;
  using a = await backend.upload(gaussianMatrix(seed, m, r), [m, r]);
  using b = await backend.upload(gaussianMatrix(seed + 1, r, n), [r, n]);
  using scaled = await backend.scaleColumns(a, Float32Array.from({ length: r }, (_, j) => 0.97 ** j / Math.sqrt(m * n)));
  return await backend.matmul(scaled, b);
}

async function largeRows(): Promise<SubspaceRow[]> {
  const backend = await createBackend('gpu');
  const rows: SubspaceRow[] = [];
  try {
    for (const [m, n] of [
      [4096, 4096],
      [14336, 4096],
      [4096, 14336],
    ]) {
      const taus: Tensor[] = [];
      try {
        for (let t = 0; t < EXPERTS.length; t++) taus.push(await decayingTaskVector(backend, m, n, 17 + 5 * t));
        const ms = await bestOf3(() => tensorSubspace(backend, taus));
        rows.push({ backend: 'gpu', device: backend.description, what: `${m}×${n}`, matrices: 1, models: taus.length, k: DEFAULT_SUBSPACE_RANK, path: 'backend', ms });
        console.error(`subspace ${m}×${n}: ${ms.toFixed(0)} ms`);
      } finally {
        for (const t of taus) backend.release(t);
      }
    }
  } finally {
    backend.destroy();
  }
  return rows;
}

export async function benchSubspace(backends: BackendKind[], opts: { large: boolean }): Promise<SubspaceRow[]> {
  const sources = await demoSources();
  const rows: SubspaceRow[] = [];
  for (const kind of backends) {
    rows.push(await demoRow(kind, sources));
    console.error(`subspace demo ${kind}: ${rows.at(-1)!.ms.toFixed(0)} ms`);
  }
  if (opts.large) rows.push(...(await largeRows()));
  return rows;
}

export function reportSubspace(rows: readonly SubspaceRow[]): void {
  console.log('');
  console.log(`Subspace statistics (top-${DEFAULT_SUBSPACE_RANK} singular vectors; host path up to a smaller side of ${HOST_SVD_MAX_DIM}):`);
  console.log('| backend | device | matrices | models | path | subspace statistics (ms) | first analysis, all included (ms) |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.backend} | ${r.device} | ${r.what === 'demo' ? `demo: ${r.matrices}` : r.what} | ${r.models} | ${r.path} | ${r.ms.toFixed(0)} | ${r.firstAnalysisMs !== undefined ? r.firstAnalysisMs.toFixed(0) : '–'} |`,
    );
  }
}

/** A base and `models` fine-tunes of shape [m, n] with decaying-spectrum task vectors, merged once by `method`. */
async function mergeOnce(backend: Backend, method: string, m: number, n: number, models: number): Promise<number> {
  const descriptor = getMethod(method);
  const made: Tensor[] = [];
  try {
    const base = await backend.upload(gaussianMatrix(3, m, n).map((v) => v / Math.sqrt(n)), [m, n]);
    made.push(base);
    const inputs = [];
    for (let t = 0; t < models; t++) {
      using tau = await decayingTaskVector(backend, m, n, 17 + 5 * t);
      const x = await backend.lincomb([
        { x: base, coef: 1 },
        { x: tau, coef: 1 },
      ]);
      made.push(x);
      inputs.push({ tensor: x, params: { weight: 1 }, isBase: false, deltaIndex: t });
    }
    const params = Object.fromEntries(descriptor.params.filter((p) => p.default !== undefined).map((p) => [p.name, p.default!]));
    const t0 = performance.now();
    const merged = await descriptor.merge({
      backend,
      tensorName: 'model.layers.0.mlp.down_proj.weight',
      shape: [m, n],
      base,
      models: [{ tensor: base, params: {}, isBase: true, deltaIndex: -1 }, ...inputs],
      params,
      seed: 1,
      replayMask: async () => undefined,
    });
    await backend.read(merged);
    backend.release(merged);
    return performance.now() - t0;
  } finally {
    for (const t of made) backend.release(t);
  }
}

export const SUBSPACE_METHODS = ['tsv', 'iso_c', 'iso_cts'];

export async function benchSubspaceMethods(backends: BackendKind[], opts: { large: boolean }): Promise<SubspaceMethodRow[]> {
  const shapes: [number, number][] = [
    [1024, 1024],
    [1024, 3584],
  ];
  if (opts.large) shapes.push([4096, 4096]);
  const rows: SubspaceMethodRow[] = [];
  for (const kind of backends) {
    const backend = await createBackend(kind);
    try {
      for (const method of SUBSPACE_METHODS) await mergeOnce(backend, method, 256, 256, EXPERTS.length);
      for (const [m, n] of shapes) {
        for (const method of SUBSPACE_METHODS) {
          const ms = await mergeOnce(backend, method, m, n, EXPERTS.length);
          rows.push({ backend: kind, device: backend.description, method, shape: `${m}×${n}`, models: EXPERTS.length, ms });
          console.error(`subspace method ${kind} ${method} ${m}×${n}: ${(ms / 1000).toFixed(2)} s`);
        }
      }
    } finally {
      backend.destroy();
    }
  }
  return rows;
}

export function reportSubspaceMethods(rows: readonly SubspaceMethodRow[]): void {
  console.log('');
  console.log('Subspace merge methods, one weight matrix, a base and three task vectors (default parameters):');
  console.log('| backend | device | method | shape | merge (s) |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.backend} | ${r.device} | ${r.method} | ${r.shape} | ${(r.ms / 1000).toFixed(2)} |`);
}

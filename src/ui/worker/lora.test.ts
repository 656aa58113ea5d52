/**
 * The LoRA export's worker side end to end, in-process (EngineClient ↔ EngineHost, dropped files as
 * Blobs, the CPU backend): measuring gives the library's rank/error curve of the merge against its
 * base; exporting at rank r reuses the kept merge (no second merge) and downloads a ZIP with PEFT's
 * adapter_config.json and adapter_model.safetensors, whose factors rebuild the merge from the base
 * with the error the result reports; a changed recipe merges again; a recipe without a base is
 * refused in words; a job can be cancelled.
 */
import { describe, expect, it } from 'vitest';
import { readSafetensorsBytes, tensorValues } from '../../../tests/helpers/safetensors-file.ts';
import { readZip } from '../../../tests/helpers/zip-file.ts';
import { openLoraAdapter } from '../../core/lora/adapter.ts';
import { parseRecipe } from '../../core/recipe/parse.ts';
import { openModel } from '../../core/safetensors/model.ts';
import { memoryFileTree } from '../../core/sources/memory.ts';
import { CpuBackend } from '../../gpu/cpu-backend.ts';
import { loraSpectrum, spectrumError } from '../../gpu/lora/spectrum.ts';
import { methodLookup } from '../../gpu/methods/index.ts';
import { mergeInMemory } from '../../gpu/model/in-memory-merge.ts';
import { tinyModelFiles, type TinyModelSpec } from '../../gpu/model/testing.testutil.ts';
import { EngineClient, EngineError, type EnginePort } from './client.ts';
import { EngineHost } from './host.ts';
import type { LoraProgressInfo, LoraRequest } from './lora-protocol.ts';
import type { SourceDescription, ToWorker } from './protocol.ts';

// Linear modules per layer: q, o 32×32; k, v 16×32; gate, up 48×32; down 32×48 (full ranks 32 and 16).
const SPEC: TinyModelSpec = { hidden: 32, intermediate: 48, layers: 2, heads: 4, kvHeads: 2, seed: 4, dtype: 'F32' };
const FILES = {
  './base': tinyModelFiles(SPEC),
  './a': tinyModelFiles({ ...SPEC, delta: { seed: 1, scale: 0.25 } }),
  './b': tinyModelFiles({ ...SPEC, delta: { seed: 2, scale: 0.25 } }),
};
const recipeYaml = (wa: number, base = true) =>
  `models:\n  - model: ./a\n    parameters: {weight: ${wa}}\n  - model: ./b\n    parameters: {weight: 0.5}\nmerge_method: ${base ? 'task_arithmetic' : 'linear'}\n${base ? 'base_model: ./base\n' : ''}dtype: float32\n`;
const recipe = (wa: number, base = true) => parseRecipe(recipeYaml(wa, base), methodLookup, { file: 'r.yml' });

function connect() {
  const listeners: ((ev: MessageEvent) => void)[] = [];
  const host = new EngineHost({ gpu: undefined, post: (m) => setTimeout(() => listeners.forEach((l) => l({ data: m } as MessageEvent)), 0) });
  const port: EnginePort = {
    postMessage: (m: ToWorker) => setTimeout(() => void host.handle(m), 0),
    addEventListener: (type: string, l: (ev: never) => void) => {
      if (type === 'message') listeners.push(l as (ev: MessageEvent) => void);
    },
  };
  return new EngineClient(port);
}

async function opened() {
  const client = connect();
  for (const [ref, files] of Object.entries(FILES)) {
    const source: SourceDescription = { kind: 'files', name: ref, files: Object.entries(files).map(([path, bytes]) => ({ path, blob: new Blob([bytes as Uint8Array<ArrayBuffer>]) })) };
    await client.open(ref, source);
  }
  return client;
}

const request = (wa: number, exportRank: number | null, maxRank = 64): LoraRequest => ({ recipe: recipe(wa), backend: 'cpu', seed: 0, maxRank, exportRank, folderName: 'merge-lora' });

/** The library's merge (as `merge-studio merge` makes it), its curve, and its weights and the base's as f32. */
async function library(wa: number) {
  const backend = new CpuBackend();
  const sources = new Map(await Promise.all(Object.entries(FILES).map(async ([ref, files]) => [ref, await openModel(memoryFileTree(ref, files), { id: ref })] as const)));
  const merged = await mergeInMemory({ recipe: recipe(wa), sources, backend }, 'merge');
  const spectrum = await loraSpectrum({ model: merged, base: sources.get('./base')!, backend, maxRank: 64 });
  const f32 = async (name: string, m: typeof merged) => {
    const bytes = await m.readTensor(name);
    return tensorValues({ dtype: m.tensors.get(name)!.dtype, shape: m.tensors.get(name)!.shape, bytes });
  };
  return { spectrum, merged: (n: string) => f32(n, merged), base: (n: string) => f32(n, sources.get('./base')!) };
}

describe('LoRA export in the worker', () => {
  it('measures the curve once, exports an adapter of the chosen rank as PEFT reads it, re-merges only for a new recipe', async () => {
    const client = await opened();
    const progress: LoraProgressInfo[] = [];
    const measured = await client.lora(request(1, null), (p) => progress.push(p)).outcome;
    if (measured.status !== 'done') throw new Error('cancelled');
    const m = measured.result;
    // 2 layers × 7 modules; the slider ends at the largest full rank (32), not the 64 asked for.
    expect(m.modules).toBe(14);
    expect(m.errors).toHaveLength(32);
    expect(m.merged).toBe(true);
    expect(m.export).toBeNull();
    const want = await library(1);
    m.errors.forEach((e, k) => expect(e, `rank ${k + 1}`).toBeCloseTo(spectrumError(want.spectrum, k + 1), 12));
    for (let k = 1; k < 32; k++) expect(m.errors[k]).toBeLessThanOrEqual(m.errors[k - 1]);
    expect(m.errors[0]).toBeGreaterThan(0.5);
    expect(m.errors[31]).toBe(0);
    expect(progress[0]).toEqual({ phase: 'merging', done: 0, total: 0 });
    expect(progress.at(-1)).toEqual({ phase: 'measuring', done: 14, total: 14 });

    // Export at rank 4: the kept merge and curve are used (no merging, no measuring).
    progress.length = 0;
    const done = await client.lora(request(1, 4), (p) => progress.push(p)).outcome;
    if (done.status !== 'done') throw new Error('cancelled');
    const r = done.result;
    expect(r.merged).toBe(false);
    expect(progress.map((p) => p.phase)).not.toContain('merging');
    expect(progress.map((p) => p.phase)).not.toContain('measuring');
    expect(progress.at(-1)).toEqual({ phase: 'extracting', done: 14, total: 14 });
    expect(r.errors).toEqual(m.errors);
    const ex = r.export!;
    expect(ex.name).toBe('merge-lora.zip');
    expect(ex.rank).toBe(4);
    expect(ex.files.sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    // Randomized rank-4 factors: no better than the best rank-4 ones, and not much worse.
    expect(ex.error).toBeGreaterThanOrEqual(m.errors[3] - 1e-6);
    expect(ex.error).toBeLessThan(1.05 * m.errors[3]);
    expect(ex.maxModuleError).toBeGreaterThanOrEqual(ex.error);
    expect(ex.maxModuleError).toBeLessThan(1);
    // The fine-tunes also changed norms and embeddings: a LoRA cannot carry them, and they are named.
    expect(ex.notCaptured).toContain('model.embed_tokens.weight');

    const zip = readZip(new Uint8Array(await ex.blob.arrayBuffer()));
    expect([...zip.keys()].sort()).toEqual(['merge-lora/adapter_config.json', 'merge-lora/adapter_model.safetensors']);
    const config = JSON.parse(new TextDecoder().decode(zip.get('merge-lora/adapter_config.json')));
    expect(config).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 4, base_model_name_or_path: './base', rank_pattern: {} });
    expect(config.target_modules).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    // PEFT's reading of the folder (the project's adapter reader): 14 modules, scale 1.
    const adapter = await openLoraAdapter(memoryFileTree('merge-lora', { 'adapter_config.json': zip.get('merge-lora/adapter_config.json')!, 'adapter_model.safetensors': zip.get('merge-lora/adapter_model.safetensors')! }), 'merge-lora');
    expect(adapter.factors.size).toBe(14);
    expect([...adapter.factors.values()].every((f) => f.scale === 1 && !f.transpose)).toBe(true);

    // base + B·A (f64, read by an independent safetensors reader) against the library's merge: the reported error.
    const tensors = readSafetensorsBytes(zip.get('merge-lora/adapter_model.safetensors')!);
    let residual = 0;
    let total = 0;
    for (const [name] of adapter.factors) {
      const module = name.slice(0, -'.weight'.length);
      const a = tensors.get(`base_model.model.${module}.lora_A.weight`)!;
      const b = tensors.get(`base_model.model.${module}.lora_B.weight`)!;
      const [rank, n] = a.shape;
      const rows = b.shape[0];
      expect(rank).toBe(4);
      expect(b.shape[1]).toBe(4);
      const [av, bv, w, x] = [tensorValues(a), tensorValues(b), await want.base(name), await want.merged(name)];
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < n; j++) {
          let v = w[i * n + j];
          for (let k = 0; k < rank; k++) v += bv[i * rank + k] * av[k * n + j];
          residual += (x[i * n + j] - v) ** 2;
          total += (x[i * n + j] - w[i * n + j]) ** 2;
        }
      }
    }
    expect(Math.abs(Math.sqrt(residual / total) - ex.error)).toBeLessThan(1e-5);

    // Another weight: merged again, and the curve is the new merge's.
    progress.length = 0;
    const next = await client.lora(request(0.2, null), (p) => progress.push(p)).outcome;
    if (next.status !== 'done') throw new Error('cancelled');
    expect(next.result.merged).toBe(true);
    expect(progress[0].phase).toBe('merging');
    const want2 = await library(0.2);
    expect(next.result.errors[3]).toBeCloseTo(spectrumError(want2.spectrum, 4), 12);
    expect(next.result.errors[3]).not.toBeCloseTo(m.errors[3], 4);
  });

  it('refuses a recipe without a base model, in words', async () => {
    const client = await opened();
    const err = await client.lora({ ...request(1, 4), recipe: recipe(1, false) }, () => undefined).outcome.catch((e) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect(err.message).toMatch(/a LoRA is exported against the base model: mark one model on the shelf as the base/);
  });

  it('can be cancelled', async () => {
    const client = await opened();
    const handle = client.lora(request(1, 4), () => handle.cancel());
    expect(await handle.outcome).toEqual({ status: 'cancelled' });
  });
});

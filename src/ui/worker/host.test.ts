/**
 * The engine worker's protocol end to end, in-process: EngineClient ↔ EngineHost over a fake port,
 * golden checkpoints as Blobs (what a drop gives the page), the CPU backend, and an in-memory
 * stand-in for a picked folder. Results are checked against mergekit's golden output.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRecipe } from '../../core/recipe/parse.ts';
import { serializeSafetensors } from '../../core/safetensors/writer.ts';
import { methodLookup } from '../../gpu/methods/index.ts';
import { compareTensors, type RawTensor, type Tolerance } from '../../../tests/helpers/safetensors-file.ts';
import { FakeDir, fakeDirectoryHandle } from '../export/fake-fs.testutil.ts';
import { EngineClient, EngineError, type EnginePort } from './client.ts';
import { EngineHost, type EngineHostOptions } from './host.ts';
import type { FromWorker, SourceDescription, ToWorker } from './protocol.ts';

const GOLDEN = resolve(__dirname, '../../../tests/fixtures/golden');

function folderSource(dir: string, name = dir.split('/').pop()!): SourceDescription {
  const files = readdirSync(dir).map((path) => ({ path, blob: new Blob([readFileSync(join(dir, path))]) }));
  return { kind: 'files', name, files };
}

/** Client and host joined by a port that delivers asynchronously, as postMessage does. */
function connect(opts: Partial<EngineHostOptions> = {}) {
  const listeners: ((ev: MessageEvent) => void)[] = [];
  const sent: ToWorker[] = [];
  const received: FromWorker[] = [];
  const host = new EngineHost({
    gpu: undefined,
    post: (m) => {
      received.push(m);
      setTimeout(() => listeners.forEach((l) => l({ data: m } as MessageEvent)), 0);
    },
    ...opts,
  });
  const port: EnginePort = {
    postMessage: (m: ToWorker) => {
      sent.push(m);
      setTimeout(() => void host.handle(m), 0);
    },
    addEventListener: (type: string, l: (ev: never) => void) => {
      if (type === 'message') listeners.push(l as (ev: MessageEvent) => void);
    },
  };
  return { client: new EngineClient(port), sent, received };
}

/** Reads a safetensors file's bytes independently of the code under test. */
function parseSafetensors(buf: Uint8Array): Map<string, RawTensor> {
  const n = Number(new DataView(buf.buffer, buf.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n)));
  const out = new Map<string, RawTensor>();
  for (const [name, e] of Object.entries(header) as [string, { dtype: string; shape: number[]; data_offsets: [number, number] }][]) {
    if (name === '__metadata__') continue;
    out.set(name, { dtype: e.dtype, shape: e.shape, bytes: buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]) });
  }
  return out;
}

describe('engine worker protocol', () => {
  it('opens dropped files and summarizes the model from its header and config', async () => {
    const { client } = connect();
    const summary = await client.open('./base', folderSource(join(GOLDEN, 'models/llama-bf16/base')));
    // hidden 64, intermediate 176, 4 layers, 4 heads / 2 kv heads (head dim 16), vocab 259, untied lm_head.
    const perLayer = 64 * 64 + 32 * 64 + 32 * 64 + 64 * 64 + 3 * 176 * 64 + 2 * 64;
    expect(summary).toMatchObject({
      ref: './base',
      tensorCount: 4 * 9 + 3,
      parameterCount: 2 * 259 * 64 + 64 + 4 * perLayer,
      dtypes: [{ dtype: 'BF16', tensors: 39 }],
      modelType: 'llama',
      architecture: 'LlamaForCausalLM',
      numLayers: 4,
      files: ['config.json'],
    });
    expect(summary.bytes).toBe(2 * summary.parameterCount);
  });

  it('reports a malformed file by its class and in words', async () => {
    const { client } = connect();
    const bad = new Uint8Array(64);
    new DataView(bad.buffer).setBigUint64(0, 1000n, true);
    const err = await client
      .open('./broken', { kind: 'files', name: 'broken', files: [{ path: 'broken.safetensors', blob: new Blob([bad]) }] })
      .catch((e) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect(err.name).toBe('SafetensorsError');
    expect(err.message).toMatch(/broken\.safetensors/);
  });

  it('checks compatibility in words: a model with other shapes is a problem naming tensor and model', async () => {
    const { client } = connect();
    await client.open('./base', folderSource(join(GOLDEN, 'models/llama-bf16/base')));
    await client.open('./expert1', folderSource(join(GOLDEN, 'models/llama-f32/expert1')));
    const fine = await client.check(['./expert1'], './base');
    expect(fine.ok).toBe(true);
    expect(fine.problems).toEqual([]);

    const odd = serializeSafetensors([{ name: 'model.embed_tokens.weight', dtype: 'F32', shape: [259, 32], data: new Uint8Array(259 * 32 * 4) }]);
    await client.open('./odd', { kind: 'files', name: 'odd', files: [{ path: 'model.safetensors', blob: new Blob([odd as Uint8Array<ArrayBuffer>]) }] });
    // The base is compared too, though it is not among the merge's models.
    const report = await client.check(['./odd'], './base');
    expect(report.ok).toBe(false);
    expect(report.problems.join('\n')).toMatch(/\.\/odd/);
    expect(report.problems.join('\n')).toMatch(/embed_tokens\.weight: \.\/odd has shape \[259, 32\], the base \.\/base has \[259, 64\]/);
    // Said first from the configs: ./odd has none to compare.
    expect(report.configDifferences).toEqual(['./odd has no config.json: only its tensor names and shapes can be compared']);
    expect(fine.configDifferences).toEqual([]);
  });

  it('merges a golden recipe into a picked folder and matches mergekit', async () => {
    const { client } = connect({ progressIntervalMs: 0 });
    const dir = join(GOLDEN, 'cases/ties-f32');
    const recipe = parseRecipe(readFileSync(join(dir, 'recipe.yml'), 'utf8'), methodLookup);
    for (const ref of new Set([recipe.baseModel!, ...recipe.models.map((m) => m.model)])) {
      await client.open(ref, folderSource(resolve(dir, ref)));
    }
    const root = new FakeDir('picked');
    const progress: number[] = [];
    const handle = client.merge(
      { recipe, backend: 'cpu', seed: 0, maxShardBytes: 5e9, output: { kind: 'directory', parent: fakeDirectoryHandle(root), folderName: 'ties' } },
      (p) => progress.push(p.tensorsDone),
    );
    const outcome = await handle.outcome;
    expect(outcome.status).toBe('done');
    if (outcome.status !== 'done') return;
    expect(outcome.result.tensors).toBe(39);
    expect(outcome.result.destination).toBe('folder "ties" in "picked"');
    expect(outcome.download).toBeNull();
    expect(progress[progress.length - 1]).toBe(39);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));

    const files = root.listFiles();
    expect([...files.keys()].sort()).toEqual(['ties/README.md', 'ties/config.json', 'ties/mergekit_config.yml', 'ties/model.safetensors']);
    const got = parseSafetensors(files.get('ties/model.safetensors')!);
    const want = parseSafetensors(new Uint8Array(readFileSync(join(dir, 'expected.safetensors'))));
    const tolerance = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')).tolerance as Tolerance;
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    expect([...want].flatMap(([t, w]) => compareTensors(t, got.get(t)!, w, tolerance))).toEqual([]);
  });

  it('a cancelled merge resolves as cancelled and leaves no files', async () => {
    const { client } = connect();
    const base = join(GOLDEN, 'models/llama-bf16');
    await client.open('./base', folderSource(join(base, 'base')));
    await client.open('./expert1', folderSource(join(base, 'expert1')));
    const recipe = parseRecipe(
      'models:\n  - model: ./expert1\n    parameters: {weight: 1}\nmerge_method: task_arithmetic\nbase_model: ./base\n',
      methodLookup,
    );
    const root = new FakeDir('picked');
    const handle = client.merge(
      { recipe, backend: 'cpu', seed: 0, maxShardBytes: 5e9, output: { kind: 'directory', parent: fakeDirectoryHandle(root), folderName: 'out' } },
      () => handle.cancel(),
    );
    expect(await handle.outcome).toEqual({ status: 'cancelled' });
    expect(root.listEntries()).toEqual([]);
  });

  it('a failed merge names the cause; a model that was never opened is named', async () => {
    const { client } = connect();
    const recipe = parseRecipe('models:\n  - model: org/missing\n    parameters: {weight: 1}\nmerge_method: linear\n', methodLookup);
    const handle = client.merge({ recipe, backend: 'cpu', seed: 0, maxShardBytes: 5e9, output: { kind: 'download', folderName: 'x' } }, () => {});
    const err = await handle.outcome.catch((e) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect(err.name).toBe('MergeInputError');
    expect(err.message).toMatch(/"org\/missing" is not loaded/);
  });

  it('a merge whose largest tensor exceeds the tab limit is refused before reading, naming the tensor, the limit and the CLI', async () => {
    const base = join(GOLDEN, 'models/llama-bf16');
    // The largest tensor, read from the file's header independently of the engine.
    const header = parseSafetensors(new Uint8Array(readFileSync(join(base, 'base', 'model.safetensors'))));
    const [largest, info] = [...header].reduce((a, b) => (b[1].shape.reduce((x, y) => x * y, 1) > a[1].shape.reduce((x, y) => x * y, 1) ? b : a));
    const stepBytes = info.shape.reduce((x, y) => x * y, 1) * 4 * (2 * 2 + 2);
    const { client } = connect({ mergeStepLimit: stepBytes - 1 });
    await client.open('./base', folderSource(join(base, 'base')));
    await client.open('./expert1', folderSource(join(base, 'expert1')));
    const recipe = parseRecipe('models:\n  - model: ./expert1\n    parameters: {weight: 1}\nmerge_method: task_arithmetic\nbase_model: ./base\n', methodLookup);
    const root = new FakeDir('picked');
    const handle = client.merge({ recipe, backend: 'cpu', seed: 0, maxShardBytes: 5e9, output: { kind: 'directory', parent: fakeDirectoryHandle(root), folderName: 'out' } }, () => {});
    const err = await handle.outcome.catch((e) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect(err.name).toBe('MergeTooLargeError');
    expect(err.message).toContain(`${largest} [${info.shape.join(', ')}]`);
    expect(err.message).toContain('too large for a browser tab');
    expect(err.message).toContain('merge-studio merge');
    expect(root.listEntries()).toEqual([]);

    // At the limit it merges.
    const ok = connect({ mergeStepLimit: stepBytes });
    await ok.client.open('./base', folderSource(join(base, 'base')));
    await ok.client.open('./expert1', folderSource(join(base, 'expert1')));
    const done = await ok.client.merge({ recipe, backend: 'cpu', seed: 0, maxShardBytes: 5e9, output: { kind: 'download', folderName: 'x' } }, () => {}).outcome;
    expect(done.status).toBe('done');
  });

  it('the download target hands back one ZIP with the whole folder', async () => {
    const { client } = connect();
    await client.open('./a', folderSource(join(GOLDEN, 'models/llama-bf16/expert1')));
    await client.open('./b', folderSource(join(GOLDEN, 'models/llama-bf16/expert2')));
    const recipe = parseRecipe(
      'models:\n  - model: ./a\n    parameters: {weight: 0.5}\n  - model: ./b\n    parameters: {weight: 0.5}\nmerge_method: linear\n',
      methodLookup,
    );
    const outcome = await client.merge({ recipe, backend: 'cpu', seed: 0, maxShardBytes: 5e9, output: { kind: 'download', folderName: 'soup' } }, () => {}).outcome;
    expect(outcome.status).toBe('done');
    if (outcome.status !== 'done') return;
    expect(outcome.download?.name).toBe('soup.zip');
    const zip = new Uint8Array(await outcome.download!.blob.arrayBuffer());
    const names = new TextDecoder('latin1').decode(zip);
    for (const f of ['soup/model.safetensors', 'soup/config.json', 'soup/README.md', 'soup/mergekit_config.yml']) expect(names).toContain(f);
  });

  it('without WebGPU the GPU probe says so in words, and a GPU merge fails the same way', async () => {
    const { client } = connect();
    const status = await client.probeGpu();
    expect(status.status).toBe('unavailable');
    if (status.status === 'unavailable') {
      expect(status.error.name).toBe('GpuUnavailableError');
      expect(status.error.message).toMatch(/WebGPU is not available/);
    }
  });

  it('forget drops a model, so a later merge names it as not loaded', async () => {
    const { client } = connect();
    await client.open('./a', folderSource(join(GOLDEN, 'models/llama-bf16/expert1')));
    client.forget('./a');
    const recipe = parseRecipe('models:\n  - model: ./a\n    parameters: {weight: 1}\nmerge_method: linear\n', methodLookup);
    const err = await client.merge({ recipe, backend: 'cpu', seed: 0, maxShardBytes: 5e9, output: { kind: 'download', folderName: 'x' } }, () => {}).outcome.catch((e) => e);
    expect(err.message).toMatch(/"\.\/a" is not loaded/);
  });
});

import { describe, expect, it, vi } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { recipeToYaml } from '../../core/recipe/write.ts';
import type { EngineApi, MergeHandle, MergeOutcome } from '../worker/client.ts';
import { EngineError } from '../worker/client.ts';
import type { CompatReportInfo, MergeProgressInfo, MergeRequest, ModelSummary, SourceDescription } from '../worker/protocol.ts';
import { createStudioStore, type StudioDeps } from './index.ts';

/** A promise with its resolve/reject outside. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((a, b) => ((resolve = a), (reject = b)));
  return { promise, resolve, reject };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

function summary(ref: string): ModelSummary {
  return { ref, location: ref, tensorCount: 39, parameterCount: 1000, bytes: 2000, dtypes: [{ dtype: 'BF16', tensors: 39 }], modelType: 'llama', architecture: 'LlamaForCausalLM', numLayers: 4, files: [], tensorNames: ['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.mlp.up_proj.weight'] };
}

/** An engine whose answers the test gives: opens succeed unless told otherwise. */
function fakeEngine() {
  const opens: { ref: string; source: SourceDescription; done: ReturnType<typeof deferred<ModelSummary>> }[] = [];
  const checks: { refs: string[]; base: string | null; done: ReturnType<typeof deferred<CompatReportInfo>> }[] = [];
  const merges: { request: MergeRequest; progress: (p: MergeProgressInfo) => void; done: ReturnType<typeof deferred<MergeOutcome>>; cancelled: boolean }[] = [];
  const forgotten: string[] = [];
  const engine: EngineApi = {
    open(ref, source) {
      const done = deferred<ModelSummary>();
      opens.push({ ref, source, done });
      return done.promise;
    },
    forget: (ref) => void forgotten.push(ref),
    check(refs, base) {
      const done = deferred<CompatReportInfo>();
      checks.push({ refs, base, done });
      return done.promise;
    },
    probeGpu: async () => ({ status: 'unavailable', error: { name: 'GpuUnavailableError', message: 'WebGPU is not available in this browser / Node: navigator.gpu is undefined' } }),
    merge(request, progress): MergeHandle {
      const done = deferred<MergeOutcome>();
      const entry = { request, progress, done, cancelled: false };
      merges.push(entry);
      return { jobId: merges.length, outcome: done.promise, cancel: () => void (entry.cancelled = true) };
    },
    cacheInfo: async () => ({ available: false, reason: 'no cache in this fake' }),
    setCacheLimit: async () => ({ available: false, reason: 'no cache in this fake' }),
    clearCache: async () => ({ available: false, reason: 'no cache in this fake' }),
  };
  /** Answer every open still pending with a summary. */
  const finishOpens = async () => {
    await tick();
    for (const o of opens) o.done.resolve(summary(o.ref));
    await tick();
  };
  return { engine, opens, checks, merges, forgotten, finishOpens };
}

function setup(overrides: Partial<StudioDeps> = {}) {
  const fake = fakeEngine();
  const deps: StudioDeps = {
    engine: fake.engine,
    pickDirectory: async () => ({ name: 'picked' }) as FileSystemDirectoryHandle,
    loadDemoSet: async () => ({
      models: ['base', 'expert-1'].map((n) => ({ ref: `./demo/${n}`, name: n, files: [{ path: 'model.safetensors', blob: new Blob([n]) }] })),
      recipe: 'models:\n  - model: ./demo/expert-1\n    parameters: {weight: 1, density: 0.5}\nmerge_method: ties\nbase_model: ./demo/base\n',
    }),
    download: vi.fn(),
    now: () => 1000,
    ...overrides,
  };
  return { store: createStudioStore(deps), deps, ...fake };
}

describe('models on the shelf', () => {
  it('adds a Hub model by id and revision; a bad id is answered in words', async () => {
    const { store, opens, finishOpens } = setup();
    expect(store.getState().addHubModel('not a repo!')).toMatch(/"not a repo!" may only hold letters/);
    expect(store.getState().addHubModel('org/expert-1', 'v2')).toBeNull();
    expect(store.getState().addHubModel('org/expert-2@main')).toBeNull();
    expect(store.getState().addHubModel('org/expert-2')).toMatch(/already on the shelf/);
    expect(store.getState().shelf.map((m) => [m.ref, m.load.status])).toEqual([
      ['org/expert-1@v2', 'loading'],
      ['org/expert-2', 'loading'],
    ]);
    expect(opens[0].source).toEqual({ kind: 'hub', repo: 'org/expert-1', revision: 'v2', hubUrl: 'https://huggingface.co', accessToken: undefined });
    await finishOpens();
    expect(store.getState().shelf.every((m) => m.load.status === 'ready')).toBe(true);
  });

  it('sends the token only with Hub opens, and a failed open shows the error in words', async () => {
    const { store, opens } = setup();
    store.getState().setHubToken('hf_secret');
    store.getState().addHubModel('org/gated');
    expect(opens[0].source).toMatchObject({ accessToken: 'hf_secret' });
    opens[0].done.reject(new EngineError({ name: 'HubAccessError', message: 'org/gated: this repo needs access' }));
    await tick();
    expect(store.getState().shelf[0].load).toEqual({ status: 'failed', error: { name: 'HubAccessError', message: 'org/gated: this repo needs access' } });
    store.getState().retryModel('org/gated');
    expect(opens).toHaveLength(2);
    expect(store.getState().shelf[0].load.status).toBe('loading');
    // The recipe never holds the token.
    expect(recipeToYaml(store.getState().recipe)).not.toContain('hf_secret');
  });

  it('new models join the merge with the method’s starting parameters once they loaded; a failed one stays out', async () => {
    const { store, opens, finishOpens } = setup();
    const file = (text: string) => [{ path: 'model.safetensors', blob: new Blob([text]) }];
    store.getState().addDroppedModels([{ name: 'expert3', files: file('abc') }]);
    expect(store.getState().recipe.models).toEqual([]);
    expect(store.getState().shelf[0].joinsWhenReady).toBe(true);
    await finishOpens();
    expect(store.getState().recipe.models).toEqual([{ model: './expert3', parameters: { weight: 1 } }]);
    // Another folder of the same name (other sizes) is another model; it can be renamed.
    store.getState().addDroppedModels([{ name: 'expert3', files: file('abcdef') }]);
    expect(store.getState().shelf.map((m) => m.ref)).toEqual(['./expert3', './expert3-2']);
    opens[1].done.reject(new EngineError({ name: 'SafetensorsError', message: 'broken' }));
    await tick();
    expect(store.getState().recipe.models.map((m) => m.model)).toEqual(['./expert3']);
  });

  it('the same files dropped again refill the model in place (no duplicate), and say so', async () => {
    const { store, opens, finishOpens } = setup();
    const files = [{ path: 'model.safetensors', blob: new Blob(['abc']) }];
    store.getState().addDroppedModels([{ name: 'solo', files }]);
    await finishOpens();
    store.getState().setModelParam('./solo', 'weight', 0.4);
    store.getState().addDroppedModels([{ name: 'solo', files: [{ path: 'model.safetensors', blob: new Blob(['xyz']) }] }]);
    expect(store.getState().shelf.map((m) => m.ref)).toEqual(['./solo']);
    expect(opens).toHaveLength(2);
    expect(store.getState().shelfNotice).toMatch(/\.\/solo was already on the shelf/);
    await finishOpens();
    expect(store.getState().recipe.models).toEqual([{ model: './solo', parameters: { weight: 0.4 } }]);
  });

  it('a dropped model is renamed everywhere: shelf, recipe, base, remembered values; the engine opens it under the new name', async () => {
    const { store, opens, forgotten, finishOpens } = setup();
    store.getState().addDroppedModels([{ name: 'dropped-model', files: [] }, { name: 'b', files: [] }]);
    await finishOpens();
    store.getState().setBase('./b');
    store.getState().setModelParam('./dropped-model', 'weight', 0.7);
    expect(store.getState().renameModel('./dropped-model', 'a/b')).toMatch(/cannot hold "\/"/);
    expect(store.getState().renameModel('./dropped-model', 'b')).toBe('./b is already on the shelf');
    expect(store.getState().renameModel('./dropped-model', 'my-expert')).toBeNull();
    expect(forgotten).toEqual(['./dropped-model']);
    expect(opens.at(-1)!.ref).toBe('./my-expert');
    expect(store.getState().shelf.map((m) => m.ref)).toEqual(['./my-expert', './b']);
    expect(store.getState().recipe.models).toEqual([{ model: './my-expert', parameters: { weight: 0.7 } }]);
    expect(store.getState().renameModel('./b', 'base')).toBeNull();
    expect(store.getState().recipe.baseModel).toBe('./base');
  });

  it('removing a model forgets it in the engine and takes it out of the recipe', async () => {
    const { store, forgotten, finishOpens } = setup();
    store.getState().addHubModel('org/base');
    store.getState().addHubModel('org/a');
    await finishOpens();
    store.getState().setBase('org/base');
    store.getState().removeModel('org/base');
    expect(forgotten).toEqual(['org/base']);
    expect(store.getState().recipe.baseModel).toBeUndefined();
    expect(store.getState().shelf.map((m) => m.ref)).toEqual(['org/a']);
  });

  it('reordering the shelf reorders the merge', async () => {
    const { store, finishOpens } = setup();
    store.getState().addHubModel('org/a');
    store.getState().addHubModel('org/b');
    await finishOpens();
    store.getState().moveModel('org/b', -1);
    expect(store.getState().recipe.models.map((m) => m.model)).toEqual(['org/b', 'org/a']);
    store.getState().moveModel('org/b', -1);
    expect(store.getState().shelf.map((m) => m.ref)).toEqual(['org/b', 'org/a']);
  });
});

describe('the recipe', () => {
  it('marking a base takes it out of the merge; changing the base brings the old one back', async () => {
    const { store, finishOpens } = setup();
    for (const r of ['org/base', 'org/a', 'org/b']) store.getState().addHubModel(r);
    await finishOpens();
    store.getState().setModelParam('org/base', 'weight', 0.25);
    store.getState().setBase('org/base');
    expect(store.getState().recipe.baseModel).toBe('org/base');
    expect(store.getState().recipe.models.map((m) => m.model)).toEqual(['org/a', 'org/b']);
    store.getState().setBase('org/a');
    expect(store.getState().recipe.models).toEqual([
      { model: 'org/base', parameters: { weight: 0.25 } },
      { model: 'org/b', parameters: { weight: 1 } },
    ]);
  });

  it('leaving a model out keeps its parameters for when it comes back', async () => {
    const { store, finishOpens } = setup();
    store.getState().addHubModel('org/a');
    await finishOpens();
    store.getState().setModelParam('org/a', 'density', [1, 0.5]);
    store.getState().setIncluded('org/a', false);
    expect(store.getState().recipe.models).toEqual([]);
    store.getState().setIncluded('org/a', true);
    expect(store.getState().recipe.models[0].parameters).toEqual({ weight: 1, density: [1, 0.5] });
  });

  it('switching method keeps shared parameters, drops the others and fills required ones', async () => {
    const { store, finishOpens } = setup();
    store.getState().addHubModel('org/a');
    await finishOpens();
    store.getState().setModelParam('org/a', 'density', 0.4);
    store.getState().setGlobalParam('lambda', 0.9);
    store.getState().setMethod('dare_ties');
    expect(store.getState().recipe.models[0].parameters).toEqual({ weight: 1, density: 0.4 });
    expect(store.getState().recipe.parameters).toEqual({ lambda: 0.9 });
    store.getState().setMethod('slerp');
    expect(store.getState().recipe).toMatchObject({ mergeMethod: 'slerp', parameters: { t: 0.5 }, models: [{ model: 'org/a', parameters: {} }] });
    store.getState().setMethod('breadcrumbs');
    expect(store.getState().recipe.models[0].parameters).toEqual({ weight: 1, density: 0.4 });
  });

  it('switching method and back restores every value: per model by name, top-level per method', async () => {
    const { store, finishOpens } = setup();
    for (const r of ['org/a', 'org/b']) store.getState().addHubModel(r);
    await finishOpens();
    store.getState().setMethod('ties');
    store.getState().setModelParam('org/a', 'weight', 0.3);
    store.getState().setModelParam('org/a', 'density', 0.6);
    store.getState().setModelParam('org/b', 'density', [0.2, 0.8]);
    store.getState().setGlobalParam('lambda', 0.8);
    store.getState().setMethod('slerp');
    store.getState().setGlobalParam('t', 0.2);
    store.getState().setMethod('linear');
    // The weight is the same weight under linear; a change there is the weight under TIES too.
    expect(store.getState().recipe.models.map((m) => m.parameters)).toEqual([{ weight: 0.3 }, { weight: 1 }]);
    store.getState().setModelParam('org/b', 'weight', 0.5);
    store.getState().setMethod('ties');
    expect(store.getState().recipe.models.map((m) => m.parameters)).toEqual([
      { weight: 0.3, density: 0.6 },
      { weight: 0.5, density: [0.2, 0.8] },
    ]);
    expect(store.getState().recipe.parameters).toEqual({ lambda: 0.8 });
    store.getState().setMethod('slerp');
    expect(store.getState().recipe.parameters).toEqual({ t: 0.2 });
    // A value reset to its fallback stays reset.
    store.getState().setMethod('ties');
    store.getState().setModelParam('org/a', 'density', undefined);
    store.getState().setMethod('linear');
    store.getState().setMethod('ties');
    expect(store.getState().recipe.models[0].parameters).toEqual({ weight: 0.3 });
  });

  it('dtypes that came with a recipe go when its last model leaves the shelf; the user’s own stay', async () => {
    const { store, finishOpens } = setup();
    await store.getState().loadDemoSet();
    await finishOpens();
    store.getState().importRecipe(
      'models:\n  - model: ./demo/expert-1\n    parameters: {weight: 1}\nmerge_method: linear\nbase_model: ./demo/base\ndtype: float32\nout_dtype: bfloat16\n',
      'recipe.yml',
    );
    store.getState().removeModel('./demo/expert-1');
    expect(store.getState().recipe).toMatchObject({ dtype: 'F32', outDtype: 'BF16' });
    store.getState().removeModel('./demo/base');
    expect(store.getState().recipe.dtype).toBeUndefined();
    expect(store.getState().recipe.outDtype).toBeUndefined();
    expect(store.getState().recipeNotice?.text).toMatch(/dtype and out_dtype .* were cleared/);
    // Set by the user, they stay.
    store.getState().addHubModel('org/a');
    await finishOpens();
    store.getState().setOutDtype('F16');
    store.getState().removeModel('org/a');
    expect(store.getState().recipe.outDtype).toBe('F16');
  });

  it('imports YAML: the shelf follows, Hub models open, local ones wait for their folder', async () => {
    const { store, opens } = setup();
    const yaml = 'models:\n  - model: org/expert@v1\n    parameters: {weight: 0.3}\n  - model: ./local-expert\n    parameters: {weight: [0, 1]}\nmerge_method: task_arithmetic\nbase_model: org/base\n';
    expect(store.getState().importRecipe(yaml, 'pasted recipe')).toBe(true);
    const s = store.getState();
    expect(s.shelf.map((m) => [m.ref, m.load.status])).toEqual([
      ['org/base', 'loading'],
      ['org/expert@v1', 'loading'],
      ['./local-expert', 'missing'],
    ]);
    expect(opens.map((o) => o.source)).toEqual([
      { kind: 'hub', repo: 'org/base', revision: 'main', hubUrl: 'https://huggingface.co', accessToken: undefined },
      { kind: 'hub', repo: 'org/expert', revision: 'v1', hubUrl: 'https://huggingface.co', accessToken: undefined },
    ]);
    expect(s.recipeNotice?.text).toMatch(/Drop the folder of \.\/local-expert/);
    expect(parseYaml(recipeToYaml(s.recipe))).toEqual(parseYaml(yaml));
    // Dropping a folder of that name fills the placeholder.
    store.getState().addDroppedModels([{ name: 'local-expert', files: [] }]);
    expect(store.getState().shelf[2]).toMatchObject({ ref: './local-expert', origin: { kind: 'files' }, load: { status: 'loading' } });
  });

  it('a bad recipe is refused with its reason and line, keeping the current one', () => {
    const { store } = setup();
    store.getState().addHubModel('org/a');
    const before = store.getState().recipe;
    expect(store.getState().importRecipe('models:\n  - model: x\n    parameters: {desnity: 1}\nmerge_method: ties\n', 'recipe.yml')).toBe(false);
    expect(store.getState().recipeNotice).toEqual({ kind: 'error', text: expect.stringMatching(/recipe\.yml: models\[0\]\.parameters: unknown parameter "desnity".*\(line 3\)/) });
    expect(store.getState().recipe).toBe(before);
  });

  it('the YAML panel: a typed recipe that reads is applied (new models join the shelf); one that does not is answered with line and fix', async () => {
    const { store, finishOpens } = setup();
    store.getState().addHubModel('org/a');
    await finishOpens();
    const before = store.getState().recipe;
    expect(store.getState().editRecipe('models:\n  - model: org/a\n    parameters: {weight: 1, desnity: 0.5}\nmerge_method: ties\nbase_model: org/b\n')).toEqual({
      message: expect.stringContaining('unknown parameter "desnity"'),
      line: 3,
      suggestion: 'density',
    });
    expect(store.getState().recipe).toBe(before);
    expect(store.getState().editRecipe('models:\n  - model: org/a\n    parameters: {weight: 1, density: 0.5}\nmerge_method: ties\nbase_model: org/b\nmodules: {text_decoder: {}}\n')).toBeNull();
    expect(store.getState().recipe).toMatchObject({ mergeMethod: 'ties', baseModel: 'org/b', models: [{ model: 'org/a', parameters: { weight: 1, density: 0.5 } }] });
    expect(store.getState().shelf.map((m) => m.ref)).toEqual(['org/b', 'org/a']);
    expect(store.getState().recipeWarnings).toEqual([expect.stringContaining('modules: not supported yet')]);
    expect(store.getState().recipeNotice).toBeNull();
  });

  it('a recipe of slices brings every source onto the shelf, and the merge waits for them all', async () => {
    const { store, checks, finishOpens } = setup();
    const yaml =
      'slices:\n  - sources:\n      - model: org/a\n        layer_range: [0, 2]\n      - model: org/b\n        layer_range: [0, 2]\n' +
      'merge_method: slerp\nbase_model: org/a\nparameters:\n  t: 0.5\n';
    expect(store.getState().importRecipe(yaml, 'recipe.yml')).toBe(true);
    expect(store.getState().shelf.map((m) => m.ref)).toEqual(['org/a', 'org/b']);
    expect(store.getState().compat).toMatchObject({ status: 'waiting', loading: ['org/a', 'org/b'] });
    await finishOpens();
    expect(checks.at(-1)).toMatchObject({ refs: ['org/b'], base: 'org/a' });
  });

  it('the demo set lands on the shelf with its recipe, base marked', async () => {
    const { store, opens, finishOpens } = setup();
    await store.getState().loadDemoSet();
    await finishOpens();
    const s = store.getState();
    expect(s.shelf.map((m) => [m.ref, m.load.status])).toEqual([
      ['./demo/base', 'ready'],
      ['./demo/expert-1', 'ready'],
    ]);
    expect(opens.map((o) => o.source.kind)).toEqual(['files', 'files']);
    expect(s.recipe).toMatchObject({ mergeMethod: 'ties', baseModel: './demo/base', models: [{ model: './demo/expert-1' }] });
    expect(s.recipeNotice).toBeNull();
  });
});

describe('compatibility check', () => {
  it('waits for loading models, then checks base and models once; stale answers are dropped', async () => {
    const { store, checks, opens } = setup();
    store.getState().importRecipe('models:\n  - model: org/a\n    parameters: {weight: 1}\nmerge_method: linear\nbase_model: org/base\n', 'recipe.yml');
    expect(store.getState().compat).toEqual({ status: 'waiting', loading: ['org/base', 'org/a'], failed: [], missing: [] });
    opens[0].done.resolve(summary('org/base'));
    opens[1].done.resolve(summary('org/a'));
    await tick();
    expect(checks.map((c) => [c.refs, c.base])).toEqual([[['org/a'], 'org/base']]);
    expect(store.getState().compat.status).toBe('checking');
    // The merge changes before the answer: the old answer must not show.
    store.getState().setIncluded('org/a', false);
    checks[0].done.resolve({ ok: false, configDifferences: [], problems: ['old'], notes: [] });
    await tick();
    expect(store.getState().compat.status).not.toBe('done');
  });

  it('names failed and missing models as such, not as loading', async () => {
    const { store, opens } = setup();
    store.getState().importRecipe('models:\n  - model: org/a\n    parameters: {weight: 1}\n  - model: ./local\n    parameters: {weight: 1}\nmerge_method: linear\nbase_model: org/base\n', 'recipe.yml');
    opens[0].done.resolve(summary('org/base'));
    opens[1].done.reject(new EngineError({ name: 'HubNotFoundError', message: 'org/a: no such model repo on the Hub' }));
    await tick();
    expect(store.getState().compat).toEqual({ status: 'waiting', loading: [], failed: ['org/a'], missing: ['./local'] });
  });

  it('shows the report for the current models', async () => {
    const { store, checks, finishOpens } = setup();
    store.getState().addHubModel('org/a');
    await finishOpens();
    checks[0].done.resolve({ ok: false, configDifferences: [], problems: ['model.norm.weight: org/a has shape [3]'], notes: [] });
    await tick();
    expect(store.getState().compat).toMatchObject({ status: 'done', report: { ok: false, configDifferences: [], problems: ['model.norm.weight: org/a has shape [3]'] } });
  });
});

describe('the merge job', () => {
  async function ready() {
    const s = setup();
    for (const r of ['org/base', 'org/a']) s.store.getState().addHubModel(r);
    s.store.getState().setBase('org/base');
    await s.finishOpens();
    s.checks[0]?.done.resolve({ ok: true, configDifferences: [], problems: [], notes: [] });
    await tick();
    return s;
  }

  it('refuses an invalid recipe with the reason, before asking for a folder', async () => {
    const pick = vi.fn();
    const { store } = setup({ pickDirectory: pick });
    await store.getState().startMerge('folder');
    expect(store.getState().job).toEqual({ status: 'failed', error: { name: 'RecipeError', message: expect.stringMatching(/no models/) } });
    expect(pick).not.toHaveBeenCalled();
  });

  it('runs into the picked folder with the settings, shows progress, and finishes', async () => {
    const { store, merges } = await ready();
    store.getState().setShardSize('2MB');
    store.getState().setOutputName('my-merge');
    const started = store.getState().startMerge('folder');
    await tick();
    expect(merges).toHaveLength(1);
    expect(merges[0].request).toMatchObject({ backend: 'gpu', seed: 0, maxShardBytes: 2_000_000, output: { kind: 'directory', folderName: 'my-merge' } });
    const progress = { tensorsDone: 3, tensorsTotal: 39, bytesDone: 300, bytesTotal: 3900, rate: 100, currentTensor: 'x' };
    merges[0].progress(progress);
    expect(store.getState().job).toMatchObject({ status: 'running', progress });
    merges[0].done.resolve({ status: 'done', result: { files: ['model.safetensors'], tensors: 39, bytes: 3900, seconds: 1, destination: 'folder', backend: 'cpu' }, download: null });
    await started;
    expect(store.getState().job.status).toBe('done');
    // The folder it wrote stays known, for publishing.
    expect(store.getState().job).toMatchObject({ folder: { name: 'my-merge' } });
  });

  it('cancel asks the engine and ends as cancelled', async () => {
    const { store, merges } = await ready();
    const started = store.getState().startMerge('download');
    await tick();
    store.getState().cancelMerge();
    expect(merges[0].cancelled).toBe(true);
    expect(store.getState().job).toMatchObject({ status: 'running', cancelling: true });
    merges[0].done.resolve({ status: 'cancelled' });
    await started;
    expect(store.getState().job).toEqual({ status: 'cancelled' });
  });

  it('a download is handed to the browser', async () => {
    const { store, merges, deps } = await ready();
    const started = store.getState().startMerge('download');
    await tick();
    const blob = new Blob(['zip']);
    merges[0].done.resolve({ status: 'done', result: { files: [], tensors: 1, bytes: 1, seconds: 1, destination: 'd', backend: 'cpu' }, download: { name: 'merged-model.zip', blob } });
    await started;
    expect(deps.download).toHaveBeenCalledWith('merged-model.zip', blob);
  });

  it('closing the folder picker is not an error; a browser without the picker is told what to do', async () => {
    const abort = Object.assign(new Error('The user aborted a request.'), { name: 'AbortError' });
    const s1 = await ready();
    const { store } = s1;
    const pick = vi.fn().mockRejectedValueOnce(abort).mockResolvedValueOnce(null);
    const s2 = setup({ pickDirectory: pick });
    for (const r of ['org/base', 'org/a']) s2.store.getState().addHubModel(r);
    s2.store.getState().setBase('org/base');
    await s2.finishOpens();
    await s2.store.getState().startMerge('folder');
    expect(s2.store.getState().job).toEqual({ status: 'idle' });
    await s2.store.getState().startMerge('folder');
    expect(s2.store.getState().job).toMatchObject({ status: 'failed', error: { message: expect.stringMatching(/Download \.zip/) } });
    expect(store.getState().job.status).toBe('idle');
  });

  it('a failed merge shows the engine error; a bad shard size is named', async () => {
    const { store, merges } = await ready();
    store.getState().setShardSize('lots');
    await store.getState().startMerge('download');
    expect(store.getState().job).toMatchObject({ status: 'failed', error: { message: expect.stringMatching(/shard size: "lots" is not a size/) } });
    store.getState().setShardSize('5GB');
    const started = store.getState().startMerge('download');
    await tick();
    merges[0].done.reject(new EngineError({ name: 'MethodError', message: 'ties: tensor x: density 0 keeps nothing' }));
    await started;
    expect(store.getState().job).toEqual({ status: 'failed', error: { name: 'MethodError', message: 'ties: tensor x: density 0 keeps nothing' } });
  });
});

describe('settings', () => {
  it('without WebGPU the CPU backend is chosen', async () => {
    const { store } = setup();
    expect(store.getState().backend).toBe('gpu');
    await store.getState().probeGpu();
    expect(store.getState().gpu).toMatchObject({ status: 'unavailable' });
    expect(store.getState().backend).toBe('cpu');
  });

  it('on a software adapter both backends are measured once, the faster chosen and remembered; the user’s pick wins', async () => {
    const software = { status: 'ready' as const, adapter: 'WebGPU: swiftshader', vendor: 'google', architecture: 'swiftshader', limits: {}, software: true };
    const saved = new Map<string, string>();
    const localStorage = { getItem: (k: string) => saved.get(k) ?? null, setItem: (k: string, v: string) => void saved.set(k, v), removeItem: (k: string) => void saved.delete(k) };
    const answer = deferred<{ gpuMs: number; cpuMs: number }>();
    const measure = vi.fn(() => answer.promise);
    const make = () => {
      const fake = fakeEngine();
      const engine = { ...fake.engine, probeGpu: async () => software, measureBackends: measure };
      return setup({ engine, localStorage }).store;
    };
    const first = make();
    const probing = first.getState().probeGpu();
    await tick();
    expect(first.getState().measuringBackends).toBe(true);
    answer.resolve({ gpuMs: 900, cpuMs: 200 });
    await probing;
    expect(first.getState()).toMatchObject({ backend: 'cpu', backendSource: 'measured', backendSpeeds: { gpuMs: 900, cpuMs: 200 }, measuringBackends: false });
    // A second page on the same adapter uses the remembered numbers.
    const second = make();
    await second.getState().probeGpu();
    expect(measure).toHaveBeenCalledTimes(1);
    expect(second.getState().backend).toBe('cpu');
    // The user's choice is kept over a measurement.
    const third = make();
    third.getState().setBackend('gpu');
    await third.getState().probeGpu();
    expect(third.getState()).toMatchObject({ backend: 'gpu', backendSource: 'user' });
  });

  it('on a hardware adapter nothing is measured and the GPU stays chosen', async () => {
    const hardware = { status: 'ready' as const, adapter: 'WebGPU: nvidia', vendor: 'nvidia', architecture: 'ampere', limits: {}, software: false };
    const measure = vi.fn(async () => ({ gpuMs: 1, cpuMs: 2 }));
    const fake = fakeEngine();
    const { store } = setup({ engine: { ...fake.engine, probeGpu: async () => hardware, measureBackends: measure } });
    await store.getState().probeGpu();
    expect(measure).not.toHaveBeenCalled();
    expect(store.getState().backend).toBe('gpu');
  });
});

/**
 * The merge engine: runs a validated recipe over opened model sources on a Backend, one tensor at a
 * time, and streams the merged model into an OutputFolder that is committed only when every file is
 * complete (a failed or cancelled merge leaves nothing behind).
 *
 * Peak memory is a few copies of the largest tensor: each tensor's inputs are read, decoded, merged,
 * encoded and written before the next tensor is touched. Methods that need statistics of the whole
 * model (PCB, LiNeS) first run passes over it the same way (a method's `prepare`, see ModelPass):
 * each pass reads every tensor again from the sources and keeps only host-side numbers.
 */
import { byteLength, isFloatDType, TORCH_DTYPE_NAMES, type FloatDType } from '../core/dtype.ts';
import type { Recipe } from '../core/recipe/types.ts';
import { numLayersOf, resolveTensorParams } from '../core/recipe/resolve.ts';
import { recipeToYaml } from '../core/recipe/write.ts';
import type { ModelSource, TensorInfo } from '../core/source.ts';
import { SafetensorsModelWriter, type OutputFolder, type OutputTensorSpec } from '../core/safetensors/writer.ts';
import type { Backend, Tensor } from './backend.ts';
import { getMethod } from './methods/index.ts';
import type { MethodDescriptor, MethodInput, ModelPass, TensorInputs } from './methods/types.ts';
import { modelCard } from '../core/model-card.ts';
import { isEmbeddingName } from '../core/tensor-names.ts';
import { planSlices, type TensorSources } from './plan/slices.ts';
import { gatherVocab, mergesTokenizer, planTokenizer, type TokenizerPlan, type VocabGather } from './plan/tokenizer.ts';
import { withAdapter } from './plan/lora.ts';

export interface MergeProgress {
  tensorsDone: number;
  tensorsTotal: number;
  /** Output bytes written so far / in total. */
  bytesDone: number;
  bytesTotal: number;
  /** Output bytes per second since the start. */
  rate: number;
  currentTensor: string;
  /**
   * Set while a whole-model method (PCB, LiNeS's automatic alpha) runs a pass over the model before
   * writing anything: which pass, and how many tensors it has visited (tensorsDone stays 0 then).
   */
  pass?: PassProgress;
}

export interface PassProgress {
  /** What the pass computes, e.g. "pcb: min/max of v_t⊙v_j". */
  label: string;
  /** 1-based number of this pass among those run so far. */
  index: number;
  tensorsDone: number;
  tensorsTotal: number;
}

export interface MergeOptions {
  /** Seed of the counter-based generator for random masks (DARE, DELLA). */
  seed?: number;
  /** Maximum bytes per output shard (default 5 GB, as transformers). */
  maxShardBytes?: number;
  /** A source of `<tensor>::mask<i>` keep-masks to replay instead of drawing them. */
  replayMasks?: ModelSource;
  signal?: AbortSignal;
  onProgress?: (p: MergeProgress) => void;
}

export interface MergeJob {
  recipe: Recipe;
  /** Opened models, keyed by the model reference exactly as written in the recipe. */
  sources: ReadonlyMap<string, ModelSource>;
  backend: Backend;
  output: OutputFolder;
  options?: MergeOptions;
}

export interface MergeResult {
  files: string[];
  tensors: number;
  bytes: number;
  seconds: number;
}

/** A problem with the inputs of a merge, named by model and tensor. */
export class MergeInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MergeInputError';
  }
}

export class MergeCancelledError extends Error {
  constructor() {
    super('merge cancelled');
    this.name = 'MergeCancelledError';
  }
}

const DEFAULT_SHARD_BYTES = 5_000_000_000;
/** Files copied from the base (or first) model into the output, when present. */
const COPIED_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'added_tokens.json',
  'generation_config.json',
];

/** One output tensor and how it is produced. */
export interface TensorPlan {
  name: string;
  shape: number[];
  outDtype: TensorInfo['dtype'];
  /** float tensors are merged; others (I64 position ids, ...) are copied from the reference model. */
  merged: boolean;
  /** Rows to keep when embeddings of different vocab sizes are cut to the reference's rows. */
  rows?: number;
  /** Slices: the models, input tensor names and parameter view this tensor is made from (absent: every model's tensor of the same name). */
  inputs?: TensorSources;
  /** Tokenizer merging: the inputs' rows regathered per output token (embeddings and LM heads). */
  vocab?: VocabGather;
}

export interface MergePlan {
  method: MethodDescriptor;
  /** The model whose tensor list, config and tokenizer the output takes (base, else the first model). */
  reference: ModelSource;
  base: ModelSource | undefined;
  models: ModelSource[];
  numLayers: number;
  tensors: TensorPlan[];
  notes: string[];
  /** The output's config.json when it differs from the reference's (slices: the new layer count). */
  config?: Record<string, unknown> | null;
}

function sourceFor(sources: ReadonlyMap<string, ModelSource>, ref: string): ModelSource {
  const s = sources.get(ref);
  if (!s) throw new MergeInputError(`model "${ref}" was not opened`);
  return s;
}


/** Check shapes and names over all models and decide what each output tensor is. Headers only. */
export function planMerge(recipe: Recipe, sources: ReadonlyMap<string, ModelSource>): MergePlan {
  const method = getMethod(recipe.mergeMethod);
  if (recipe.slices) {
    const sliced = planSlices(recipe, sources, method);
    const models = [...new Set(sliced.tensors.flatMap((t) => t.inputs.models))];
    const base = recipe.baseModel !== undefined ? sources.get(recipe.baseModel) : undefined;
    return { method, reference: sliced.reference, base, models, numLayers: sliced.numLayers, tensors: sliced.tensors, notes: sliced.notes, config: sliced.config };
  }
  const base = recipe.baseModel !== undefined ? sourceFor(sources, recipe.baseModel) : undefined;
  const models = recipe.models.map((m) => sourceFor(sources, m.model));
  if (method.base === 'required' && !base) {
    throw new MergeInputError(`${method.name} needs a base_model`);
  }
  const count = recipe.models.length;
  if (count < method.minModels || (method.maxModels !== undefined && count > method.maxModels)) {
    const range = method.maxModels === undefined ? `at least ${method.minModels}` : method.minModels === method.maxModels ? `exactly ${method.minModels}` : `${method.minModels} to ${method.maxModels}`;
    throw new MergeInputError(`${method.name} takes ${range} models, the recipe lists ${count}`);
  }
  const reference = base ?? models[0];
  const everyone = base ? [base, ...models.filter((m) => m !== base)] : models;
  // A rebuilt vocabulary gathers embedding rows per token (plan/tokenizer.ts) instead of cutting them.
  const vocabRebuilt = mergesTokenizer(recipe);
  const notes: string[] = [];
  const tensors: TensorPlan[] = [];
  const outDtypeOf = (info: TensorInfo): TensorInfo['dtype'] =>
    isFloatDType(info.dtype) ? (recipe.outDtype ?? recipe.dtype ?? info.dtype) : info.dtype;

  for (const info of reference.tensors.values()) {
    const merged = isFloatDType(info.dtype);
    let rows: number | undefined;
    for (const m of everyone) {
      if (m === reference) continue;
      const other = m.tensors.get(info.name);
      if (!other) {
        throw new MergeInputError(`tensor ${info.name} is missing from model ${m.id} (present in ${reference.id})`);
      }
      if (!merged) continue;
      if (!isFloatDType(other.dtype)) {
        throw new MergeInputError(`tensor ${info.name}: ${m.id} stores ${other.dtype}, ${reference.id} stores ${info.dtype}`);
      }
      if (sameShape(other.shape, info.shape) || (vocabRebuilt && isEmbeddingName(info.name))) continue;
      const vocabCut =
        isEmbeddingName(info.name) &&
        other.shape.length === info.shape.length &&
        sameShape(other.shape.slice(1), info.shape.slice(1)) &&
        other.shape[0] > info.shape[0];
      if (!vocabCut) {
        throw new MergeInputError(
          `tensor ${info.name}: shape [${other.shape}] in ${m.id} does not match [${info.shape}] in ${reference.id}`,
        );
      }
      rows = info.shape[0];
      notes.push(`${info.name}: ${m.id} has ${other.shape[0]} rows; using the first ${info.shape[0]} (the ${reference === base ? 'base' : 'first'} model's vocabulary)`);
    }
    tensors.push({ name: info.name, shape: [...info.shape], outDtype: outDtypeOf(info), merged, rows });
  }
  const numLayers = numLayersOf(reference.config, reference.tensors.keys());
  return { method, reference, base, models, numLayers, tensors, notes };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function checkAborted(signal: AbortSignal | undefined) {
  if (signal?.aborted) throw new MergeCancelledError();
}

/** Run the merge and write the output folder (model, index, config, tokenizer, recipe, model card). */
export async function runMerge(job: MergeJob): Promise<MergeResult> {
  const { recipe, sources, backend, output } = job;
  const opts = job.options ?? {};
  const started = Date.now();
  try {
    const plan = planMerge(recipe, sources);
    const tokenizer = await planTokenizer(recipe, plan, sources, opts.signal);
    const prepared = plan.method.prepare ? await plan.method.prepare(modelPass(plan, job)) : undefined;
    checkAborted(opts.signal);
    const specs: OutputTensorSpec[] = plan.tensors.map((t) => ({ name: t.name, dtype: t.outDtype, shape: t.shape }));
    const writer = new SafetensorsModelWriter(output, specs, {
      maxShardBytes: opts.maxShardBytes ?? DEFAULT_SHARD_BYTES,
      metadata: { format: 'pt', merged_with: 'merge-studio' },
    });
    const bytesTotal = specs.reduce((s, t) => s + outputBytes(t), 0);
    let bytesDone = 0;
    // Read the next tensor's inputs while this one merges (network and disk overlap the GPU work);
    // at most two tensors' raw bytes are held at once.
    const readAt = (i: number) => {
      const reading = readInputs(plan, plan.tensors[i], opts.signal);
      reading.catch(() => undefined); // a failure surfaces when awaited
      return reading;
    };
    // On a backend that overlaps tensors (a GPU queue), tensor i+1's uploads and kernels are issued
    // once tensor i's encode (kernels and read-back copy) is, and tensor i's bytes are awaited and
    // written after that: at most two tensors' inputs on the device. Elsewhere one tensor at a time.
    const overlap = job.backend.overlapsTensors === true;
    type Pending = { i: number; t: TensorPlan; bytes: Promise<Uint8Array> };
    const write = async ({ i, t, bytes: out }: Pending) => {
      const bytes = await out;
      await writer.writeTensor(t.name, bytes);
      bytesDone += bytes.byteLength;
      const seconds = (Date.now() - started) / 1000;
      opts.onProgress?.({
        tensorsDone: i + 1,
        tensorsTotal: plan.tensors.length,
        bytesDone,
        bytesTotal,
        rate: seconds > 0 ? bytesDone / seconds : 0,
        currentTensor: t.name,
      });
    };
    const queue: Pending[] = [];
    let next = plan.tensors.length > 0 ? readAt(0) : undefined;
    for (let i = 0; i < plan.tensors.length; i++) {
      checkAborted(opts.signal);
      const t = plan.tensors[i];
      const raw = await next!;
      next = i + 1 < plan.tensors.length ? readAt(i + 1) : undefined;
      let issued: Promise<void> | undefined;
      let onIssued: (() => void) | undefined;
      if (overlap && t.merged) issued = new Promise<void>((resolve) => (onIssued = resolve));
      const bytes = t.merged ? mergeTensor(plan, t, raw, job, prepared, onIssued) : Promise.resolve(raw.get(copiedFrom(plan, t))!);
      bytes.catch(() => undefined); // a failure surfaces when awaited
      if (issued) await Promise.race([issued, bytes]);
      // Written in order; on an overlapping backend the newest merged tensor stays in flight.
      queue.push({ i, t, bytes });
      const inFlight = overlap ? queue.findLast((p) => p.t.merged) : undefined;
      while (queue.length > 0 && queue[0] !== inFlight) await write(queue.shift()!);
    }
    for (const p of queue) await write(p);
    const files = await writer.finish();
    checkAborted(opts.signal);
    await writeSideFiles(plan, recipe, output, tokenizer, opts.signal);
    await output.commit();
    return {
      files: [...files, ...(await sideFileNames(plan, tokenizer))],
      tensors: plan.tensors.length,
      bytes: bytesDone,
      seconds: (Date.now() - started) / 1000,
    };
  } catch (err) {
    await output.abort().catch(() => undefined);
    throw err;
  }
}

function outputBytes(t: OutputTensorSpec): number {
  return byteLength(t.dtype, t.shape.reduce((a, b) => a * b, 1));
}

/** The raw bytes of one output tensor in every model that takes part (the reference only, for copies). */
async function readInputs(plan: MergePlan, t: TensorPlan, signal?: AbortSignal): Promise<Map<ModelSource, Uint8Array>> {
  const models = !t.merged
    ? [copiedFrom(plan, t)]
    : t.inputs
      ? t.inputs.models
      : [...new Set([...(plan.base && plan.method.base !== 'unused' ? [plan.base] : []), ...plan.models])];
  const bytes = await Promise.all(models.map((m) => readTensorBytes(m, t, signal)));
  const raw = new Map(models.map((m, i) => [m, bytes[i]]));
  return t.vocab ? gatherVocab(t.vocab, t.name, raw, (m) => m.tensors.get(inputName(t, m))!) : raw;
}

/** The model a tensor that is not merged (I64 ids, ...) is copied from. */
function copiedFrom(plan: MergePlan, t: TensorPlan): ModelSource {
  return t.inputs ? (t.inputs.base ?? t.inputs.models[0]) : plan.reference;
}

/** The name of the tensor `m` gives for output tensor `t` (slices renumber layers). */
function inputName(t: TensorPlan, m: ModelSource): string {
  return t.inputs ? t.inputs.tensors[t.inputs.models.indexOf(m)] : t.name;
}

/** One model's bytes of a tensor, cut to the plan's rows when vocabularies differ. */
export function readTensorBytes(m: ModelSource, t: TensorPlan, signal?: AbortSignal): Promise<Uint8Array> {
  const name = inputName(t, m);
  const info = m.tensors.get(name)!;
  if (t.rows !== undefined && info.shape[0] !== t.rows) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    return m.readTensorRange(name, 0, byteLength(info.dtype, numel), signal);
  }
  return m.readTensor(name, signal);
}

/**
 * Decode one tensor's inputs and resolve its parameters; `use` runs with them, and every tensor
 * decoded here (plus those `use` registers with `own`) is released when it settles.
 */
async function withTensorInputs<R>(
  plan: MergePlan,
  t: TensorPlan,
  raw: Map<ModelSource, Uint8Array>,
  job: MergeJob,
  use: (inputs: TensorInputs, own: (x: Tensor) => Tensor) => Promise<R>,
): Promise<R> {
  const { backend } = job;
  // Slices: the tensor's own slice view (its sources, base and parameters); else the whole recipe.
  const recipe = t.inputs?.recipe ?? job.recipe;
  const baseModel = t.inputs ? t.inputs.base : plan.base && plan.method.base !== 'unused' ? plan.base : undefined;
  const inputModels = t.inputs?.models ?? plan.models;
  const live: Tensor[] = [];
  const own = (x: Tensor) => (live.push(x), x);
  const loaded = new Map<ModelSource, Tensor>();
  const load = async (m: ModelSource): Promise<Tensor> => {
    const have = loaded.get(m);
    if (have) return have;
    const name = inputName(t, m);
    const adapt = (x: Tensor) => withAdapter(backend, m, name, x, job.options?.signal);
    // Decoded, the raw bytes are dead (backends keep their own copy): drop them from the map now, not
    // after the merge, or they sit beside the decoded inputs and the next tensor's bytes read meanwhile.
    const bytes = raw.get(m)!;
    raw.delete(m);
    const tensor = own(await decodeInput(backend, bytes, m.tensors.get(name)!.dtype as FloatDType, t.shape, recipe.dtype, adapt));
    loaded.set(m, tensor);
    return tensor;
  };
  try {
    const { global, perModel } = resolveTensorParams(recipe, plan.method, t.name, plan.numLayers, t.inputs?.slice);
    const base = baseModel ? await load(baseModel) : undefined;
    const models: MethodInput[] = [];
    let deltaIndex = 0;
    for (let i = 0; i < inputModels.length; i++) {
      const m = inputModels[i];
      const isBase = t.inputs ? m === t.inputs.base : m === plan.base;
      models.push({
        tensor: await load(m),
        params: perModel[i],
        isBase,
        deltaIndex: isBase ? -1 : deltaIndex++,
        label: recipe.models[i].model,
      });
    }
    const inputs: TensorInputs = {
      backend,
      tensorName: t.name,
      shape: t.shape,
      base,
      models,
      params: global,
      seed: job.options?.seed ?? 0,
      computeDtype: recipe.dtype ?? computeDtypeOf(t.inputs ? t.inputs.models[0].tensors.get(t.inputs.tensors[0])!.dtype : plan.reference.tensors.get(t.name)!.dtype),
    };
    return await use(inputs, own);
  } finally {
    for (const x of live) backend.release(x);
  }
}

/** Merge one float tensor; returns its bytes in the output dtype. `onEncodeIssued`: called once the encode is issued. */
function mergeTensor(
  plan: MergePlan,
  t: TensorPlan,
  raw: Map<ModelSource, Uint8Array>,
  job: MergeJob,
  prepared: unknown,
  onEncodeIssued?: () => void,
): Promise<Uint8Array> {
  const { backend } = job;
  const replayMasks = job.options?.replayMasks;
  return withTensorInputs(plan, t, raw, job, async (inputs, own) => {
    const result = own(
      await plan.method.merge({
        ...inputs,
        prepared,
        replayMask: async (i) => (replayMasks ? own(await loadMask(backend, replayMasks, `${t.name}::mask${i}`, t)) : undefined),
      }),
    );
    if (!isFloatDType(t.outDtype)) throw new MergeInputError(`tensor ${t.name}: cannot write merged values as ${t.outDtype}`);
    const encoding = backend.encode(result, t.outDtype);
    onEncodeIssued?.();
    return await encoding;
  });
}

/**
 * The whole-model passes a method's `prepare` runs: each visits every merged tensor in output order,
 * reading its inputs again from the sources (the next tensor's bytes are read while this one is
 * visited, as in the merge), and reports progress with the pass's label.
 */
function modelPass(plan: MergePlan, job: MergeJob): ModelPass {
  const opts = job.options ?? {};
  const merged = plan.tensors.filter((t) => t.merged);
  const bytesTotal = plan.tensors.reduce((sum, t) => sum + outputBytes({ name: t.name, dtype: t.outDtype, shape: t.shape }), 0);
  let passes = 0;
  return {
    backend: job.backend,
    tensors: merged.map((t) => ({ name: t.name, shape: t.shape })),
    numLayers: plan.numLayers,
    params: (tensorName) => resolveTensorParams(job.recipe, plan.method, tensorName, plan.numLayers),
    async forEachTensor(label, visit) {
      const index = ++passes;
      const readAt = (i: number) => {
        const reading = readInputs(plan, merged[i], opts.signal);
        reading.catch(() => undefined); // a failure surfaces when awaited
        return reading;
      };
      let next = merged.length > 0 ? readAt(0) : undefined;
      for (let i = 0; i < merged.length; i++) {
        checkAborted(opts.signal);
        const t = merged[i];
        const raw = await next!;
        next = i + 1 < merged.length ? readAt(i + 1) : undefined;
        await withTensorInputs(plan, t, raw, job, (inputs) => visit(inputs));
        opts.onProgress?.({
          tensorsDone: 0,
          tensorsTotal: plan.tensors.length,
          bytesDone: 0,
          bytesTotal,
          rate: 0,
          currentTensor: t.name,
          pass: { label, index, tensorsDone: i + 1, tensorsTotal: merged.length },
        });
      }
      checkAborted(opts.signal);
    },
  };
}

function computeDtypeOf(dtype: TensorInfo['dtype']): FloatDType {
  return isFloatDType(dtype) ? dtype : 'F32';
}

/**
 * Decode one model's tensor; cast through the recipe's `dtype` first, as mergekit casts its inputs.
 * `adjust` (a LoRA adapter's delta) runs on the decoded values before the cast and may return a new tensor.
 */
export async function decodeInput(
  backend: Backend,
  bytes: Uint8Array,
  dtype: FloatDType,
  shape: readonly number[],
  castTo: FloatDType | undefined,
  adjust?: (x: Tensor) => Promise<Tensor>,
): Promise<Tensor> {
  let tensor = await backend.decode(bytes, dtype, shape);
  if (adjust) {
    try {
      const adjusted = await adjust(tensor);
      if (adjusted !== tensor) {
        backend.release(tensor);
        tensor = adjusted;
      }
    } catch (err) {
      backend.release(tensor);
      throw err;
    }
  }
  // Widening to F32 is exact; narrowing (or F16 <-> BF16) rounds, and the math must see the rounded values.
  if (!castTo || castTo === 'F32' || castTo === dtype) return tensor;
  try {
    return await backend.quantize(tensor, castTo);
  } finally {
    backend.release(tensor);
  }
}

async function loadMask(backend: Backend, masks: ModelSource, key: string, t: TensorPlan): Promise<Tensor> {
  const info = masks.tensors.get(key);
  if (!info) throw new MergeInputError(`mask file ${masks.id} has no tensor ${key}`);
  const numel = t.shape.reduce((a, b) => a * b, 1);
  const maskNumel = info.shape.reduce((a, b) => a * b, 1);
  if (maskNumel !== numel) {
    throw new MergeInputError(`mask ${key} in ${masks.id} has shape [${info.shape}], tensor ${t.name} has [${t.shape}]`);
  }
  const bytes = await masks.readTensor(key);
  if (isFloatDType(info.dtype)) return backend.decode(bytes, info.dtype, t.shape);
  if (info.dtype === 'U8' || info.dtype === 'BOOL' || info.dtype === 'I8') {
    const f = new Float32Array(numel);
    for (let i = 0; i < numel; i++) f[i] = bytes[i] ? 1 : 0;
    return backend.decode(new Uint8Array(f.buffer), 'F32', t.shape);
  }
  throw new MergeInputError(`mask ${key} in ${masks.id}: dtype ${info.dtype} is not a mask (use F32, BF16, F16, U8 or BOOL)`);
}

async function sideFileNames(plan: MergePlan, tokenizer: TokenizerPlan | undefined): Promise<string[]> {
  const names = ['mergekit_config.yml', 'README.md'];
  if (plan.config !== undefined ? plan.config : plan.reference.config) names.push('config.json');
  const present = new Set(await plan.reference.tree.list());
  for (const f of COPIED_FILES) if (present.has(f) && !tokenizer?.skip.has(f)) names.push(f);
  if (tokenizer) names.push(...tokenizer.files.keys());
  return names;
}

/** config.json (torch_dtype updated), tokenizer files, the recipe and a model card. */
async function writeSideFiles(plan: MergePlan, recipe: Recipe, output: OutputFolder, tokenizer: TokenizerPlan | undefined, signal?: AbortSignal) {
  const enc = new TextEncoder();
  const put = async (path: string, bytes: Uint8Array) => {
    const sink = await output.create(path);
    await sink.write(bytes);
    await sink.close();
  };
  const floatOut = plan.tensors.find((t) => t.merged)?.outDtype;
  const outputConfig = plan.config !== undefined ? plan.config : plan.reference.config;
  if (outputConfig) {
    const config: Record<string, unknown> = { ...outputConfig };
    if (floatOut && isFloatDType(floatOut)) config.torch_dtype = TORCH_DTYPE_NAMES[floatOut];
    if (tokenizer?.vocabSize !== undefined) config.vocab_size = tokenizer.vocabSize;
    await put('config.json', enc.encode(JSON.stringify(config, null, 2) + '\n'));
  }
  const present = new Set(await plan.reference.tree.list(signal));
  for (const f of COPIED_FILES) {
    if (!present.has(f) || tokenizer?.skip.has(f)) continue;
    const src = await plan.reference.tree.open(f, signal);
    if (src) await put(f, await src.read(0, src.size, signal));
  }
  for (const [f, bytes] of tokenizer?.files ?? []) await put(f, bytes);
  const yaml = recipeToYaml(recipe);
  await put('mergekit_config.yml', enc.encode(yaml));
  await put('README.md', enc.encode(modelCard({ recipe, yaml, methodPrettyName: plan.method.prettyName, referenceUrl: plan.method.referenceUrl })));
}

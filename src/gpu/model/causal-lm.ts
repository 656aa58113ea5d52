/**
 * A Llama-family causal LM (Llama, Mistral, Qwen2) running on a Backend: the forward pass of
 * transformers' LlamaForCausalLM / Qwen2ForCausalLM (scripts/demo-family/README.md spells it out),
 * greedy decoding with a KV cache, log-likelihoods of continuations, and perplexity over a sliding
 * window. Everything is f32 on the backend; token ids and the per-row results go through the host.
 *
 * Per decoder layer, on rows = tokens of every sequence of the batch (sequence after sequence):
 *   h = rmsNorm(x); q, k, v = h·Wqᵀ (+b), h·Wkᵀ (+b), h·Wvᵀ (+b); rope(q), rope(k);
 *   K, V = cache ++ k, v; x += attention(q, K, V)·Woᵀ (+b);
 *   h = rmsNorm(x); x += (silu(h·Wgᵀ (+b)) ⊙ h·Wuᵀ (+b))·Wdᵀ (+b).
 * Then logits = rmsNorm(x)·Wheadᵀ, for the rows the caller needs only.
 */
import type { ModelSource } from '../../core/source.ts';
import { TensorScope, type Backend, type Tensor } from '../backend.ts';
import { parseLlamaConfig, type LlamaConfig } from './config.ts';
import { inverseFrequencies, ropeTable } from './rope.ts';
import { ModelWeights, type LayerWeights, type Residency, type WeightLoadOptions } from './weights.ts';

export class ModelRunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelRunError';
  }
}

export class ModelRunCancelledError extends Error {
  constructor() {
    super('model run cancelled');
    this.name = 'ModelRunCancelledError';
  }
}

/** The keys and values of every layer for a batch of sequences of `length` tokens each. */
export class KvCache implements Disposable {
  constructor(
    readonly backend: Backend,
    readonly batch: number,
    readonly length: number,
    readonly layers: { k: Tensor; v: Tensor }[],
  ) {}

  [Symbol.dispose](): void {
    for (const { k, v } of this.layers) {
      this.backend.release(k);
      this.backend.release(v);
    }
    this.layers.length = 0;
  }
}

export interface RunOptions {
  signal?: AbortSignal;
  /** Work done so far of the call's total (items, or predicted tokens for perplexity). */
  onProgress?: (done: number, total: number) => void;
}

export interface ContinuationScore {
  /** Σ log p(continuation token | everything before it), natural log. */
  logProb: number;
  /** log p of each continuation token. */
  tokenLogProbs: number[];
  /** Every continuation token is the argmax of its row: greedy decoding would produce exactly it. */
  greedy: boolean;
}

export interface PerplexityResult {
  /** Tokens predicted (all but the first of the text). */
  tokens: number;
  /** Mean negative log-likelihood per predicted token (nats). */
  meanNll: number;
  perplexity: number;
  /** Window and stride used. */
  window: number;
  stride: number;
}

export interface CausalLMOptions extends WeightLoadOptions {
  /** Bytes of activations one forward pass may hold (sets how many rows go in a batch). @default 256 MB */
  activationBudget?: number;
  /** Bytes of logits computed at once (rows per LM-head block). @default 64 MB */
  logitBudget?: number;
}

const DEFAULT_ACTIVATION_BUDGET = 256 * 2 ** 20;
const DEFAULT_LOGIT_BUDGET = 64 * 2 ** 20;
/** Padded rows of a scoring batch at most this many times its real tokens (more batches, less waste). */
const PADDING_LIMIT = 1.25;
/** Most rows in one forward pass, whatever the budget (keeps attention's keys in one GPU buffer). */
const MAX_BATCH_ROWS = 16384;

export class CausalLM implements Disposable {
  readonly config: LlamaConfig;
  readonly id: string;
  readonly backend: Backend;
  readonly #weights: ModelWeights;
  readonly #inverseFrequencies: Float32Array;
  #rope: { table: Tensor; positions: number } | null = null;
  /** Rows per forward pass and per LM-head block. */
  readonly maxBatchRows: number;
  readonly #logitRows: number;

  private constructor(source: ModelSource, backend: Backend, config: LlamaConfig, weights: ModelWeights, opts: CausalLMOptions) {
    this.id = source.id;
    this.backend = backend;
    this.config = config;
    this.#weights = weights;
    this.#inverseFrequencies = inverseFrequencies(config);
    const c = config;
    const q = c.numHeads * c.headDim;
    const kv = c.numKvHeads * c.headDim;
    // Live per row at the peak (the MLP): x, h, gate, up, their product, plus q/k/v/attention of the layer.
    const bytesPerRow = 4 * (3 * c.hiddenSize + 2 * q + 2 * kv + 3 * c.intermediateSize);
    this.maxBatchRows = Math.max(1, Math.min(MAX_BATCH_ROWS, Math.floor((opts.activationBudget ?? DEFAULT_ACTIVATION_BUDGET) / bytesPerRow)));
    this.#logitRows = Math.max(1, Math.floor((opts.logitBudget ?? DEFAULT_LOGIT_BUDGET) / (4 * c.vocabSize)));
  }

  /** Read config.json, check and decode the weights (see weights.ts for the residency rule). */
  static async load(source: ModelSource, backend: Backend, opts: CausalLMOptions = {}): Promise<CausalLM> {
    const config = parseLlamaConfig(source.config, source.id);
    const weights = await ModelWeights.load(backend, source, config, opts);
    return new CausalLM(source, backend, config, weights, opts);
  }

  get residency(): Residency {
    return this.#weights.residency;
  }

  [Symbol.dispose](): void {
    this.#weights[Symbol.dispose]();
    if (this.#rope) this.backend.release(this.#rope.table);
    this.#rope = null;
  }

  /**
   * Logits [batch·T, vocab] of `tokens` (batch sequences of T tokens each, continuing `cache` if
   * given: positions start at its length). With `keepCache`, the returned cache holds every
   * position so far (the given one is left as it was; release both).
   */
  async forward(tokens: readonly (readonly number[])[], opts: { cache?: KvCache; keepCache?: boolean; signal?: AbortSignal } = {}): Promise<{ logits: Tensor; cache: KvCache | null }> {
    const { ids, batch, seqLen } = this.#flatten(tokens);
    const { hidden, cache } = await this.#hidden(ids, batch, seqLen, opts.cache ?? null, opts.keepCache ?? false, opts.signal);
    try {
      return { logits: await this.backend.matmul(hidden, this.#weights.lmHead, { transB: true }), cache };
    } catch (err) {
      cache?.[Symbol.dispose]();
      throw err;
    } finally {
      this.backend.release(hidden);
    }
  }

  /**
   * Greedy decoding of prompts of one length (a batch): up to maxNewTokens per prompt, each stopping
   * after the first token in `stop` (kept in its output). One forward pass over the prompts, then
   * one per new token over the KV cache.
   */
  async generate(prompts: readonly (readonly number[])[], opts: { maxNewTokens: number; stop?: readonly number[]; signal?: AbortSignal }): Promise<number[][]> {
    const { ids, batch, seqLen } = this.#flatten(prompts);
    const stop = new Set(opts.stop ?? this.config.eosTokenIds);
    const out: number[][] = prompts.map(() => []);
    const done = new Array<boolean>(batch).fill(opts.maxNewTokens <= 0);
    let cache: KvCache | null = null;
    let step = ids;
    let stepLen = seqLen;
    try {
      while (!done.every(Boolean)) {
        const run: { hidden: Tensor; cache: KvCache | null } = await this.#hidden(step, batch, stepLen, cache, true, opts.signal);
        cache?.[Symbol.dispose]();
        cache = run.cache;
        const lastRows = Array.from({ length: batch }, (_, b) => b * stepLen + stepLen - 1);
        const next = await this.#argmaxAt(run.hidden, lastRows).finally(() => this.backend.release(run.hidden));
        next.forEach((t, b) => {
          if (done[b]) return;
          out[b].push(t);
          if (stop.has(t) || out[b].length >= opts.maxNewTokens) done[b] = true;
        });
        step = Uint32Array.from(next);
        stepLen = 1;
      }
      return out;
    } finally {
      cache?.[Symbol.dispose]();
    }
  }

  /**
   * log p(continuation | context) for each item, with teacher forcing: one forward pass over
   * context ++ continuation (items batched by length, right-padded: padding comes after every row
   * that is read, so causal attention never sees it).
   */
  async scoreContinuations(items: readonly { context: readonly number[]; continuation: readonly number[] }[], opts: RunOptions = {}): Promise<ContinuationScore[]> {
    items.forEach((it, i) => {
      if (it.context.length === 0) throw new ModelRunError(`item ${i}: the context is empty (it needs at least a BOS token)`);
      if (it.continuation.length === 0) throw new ModelRunError(`item ${i}: the continuation is empty`);
    });
    const order = items.map((_, i) => i).sort((a, b) => length(items[a]) - length(items[b]));
    const results: ContinuationScore[] = new Array(items.length);
    let doneCount = 0;
    for (let start = 0; start < order.length; ) {
      // The longest run of consecutive (by length) items whose padded rows fit and whose padding
      // stays under a quarter of the real tokens.
      let end = start + 1;
      let tokens = length(items[order[start]]);
      while (end < order.length) {
        const len = length(items[order[end]]);
        const padded = (end - start + 1) * len;
        if (padded > this.maxBatchRows || padded > PADDING_LIMIT * (tokens + len)) break;
        tokens += len;
        end++;
      }
      const group = order.slice(start, end);
      const seqLen = length(items[group[group.length - 1]]);
      const sequences = group.map((i) => {
        const seq = [...items[i].context, ...items[i].continuation];
        while (seq.length < seqLen) seq.push(0);
        return seq;
      });
      const rows: number[] = [];
      const targets: number[] = [];
      group.forEach((i, b) => {
        const { context, continuation } = items[i];
        continuation.forEach((t, k) => {
          rows.push(b * seqLen + context.length - 1 + k);
          targets.push(t);
        });
      });
      const { ids } = this.#flatten(sequences);
      const { hidden } = await this.#hidden(ids, group.length, seqLen, null, false, opts.signal);
      const scored = await this.#scoreRows(hidden, rows, targets).finally(() => this.backend.release(hidden));
      let at = 0;
      for (const i of group) {
        const n = items[i].continuation.length;
        const lp = scored.logProbs.slice(at, at + n);
        const greedy = scored.argmax.slice(at, at + n).every((t, k) => t === items[i].continuation[k]);
        results[i] = { logProb: lp.reduce((s, v) => s + v, 0), tokenLogProbs: lp, greedy };
        at += n;
      }
      doneCount += group.length;
      opts.onProgress?.(doneCount, items.length);
      start = end;
    }
    return results;
  }

  /**
   * Perplexity of a token sequence with a sliding window (transformers' "perplexity of fixed-length
   * models"): windows of `window` tokens starting every `stride` tokens; each token is predicted
   * once, in the first window that ends at or after it, from the window's earlier tokens. Windows of
   * full length are batched. @default window = min(max_position_embeddings, 1024, sliding_window), stride = window / 2
   */
  async perplexity(ids: readonly number[], opts: RunOptions & { window?: number; stride?: number } = {}): Promise<PerplexityResult> {
    const window = opts.window ?? Math.min(this.config.maxPositions, 1024, this.config.slidingWindow ?? Infinity);
    const stride = opts.stride ?? Math.max(1, Math.floor(window / 2));
    if (!(Number.isInteger(window) && window >= 2)) throw new ModelRunError(`perplexity window must be an integer of at least 2, not ${window}`);
    if (!(Number.isInteger(stride) && stride >= 1 && stride <= window)) throw new ModelRunError(`perplexity stride must be an integer in [1, ${window}], not ${stride}`);
    if (ids.length < 2) throw new ModelRunError(`the text has ${ids.length} token${ids.length === 1 ? '' : 's'}; perplexity needs at least 2`);
    const windows: { begin: number; end: number; first: number }[] = [];
    for (let begin = 0, prevEnd = 0; ; begin += stride) {
      const end = Math.min(begin + window, ids.length);
      windows.push({ begin, end, first: Math.max(prevEnd, begin + 1) });
      prevEnd = end;
      if (end === ids.length) break;
    }
    const total = ids.length - 1;
    let nll = 0;
    let done = 0;
    for (let w = 0; w < windows.length; ) {
      const len = windows[w].end - windows[w].begin;
      let n = 1;
      while (w + n < windows.length && windows[w + n].end - windows[w + n].begin === len && (n + 1) * len <= this.maxBatchRows) n++;
      const group = windows.slice(w, w + n);
      const rows: number[] = [];
      const targets: number[] = [];
      group.forEach(({ begin, end, first }, b) => {
        for (let j = first; j < end; j++) {
          rows.push(b * len + j - 1 - begin);
          targets.push(ids[j]);
        }
      });
      const tokens = group.map(({ begin, end }) => ids.slice(begin, end));
      const { ids: flat } = this.#flatten(tokens);
      const { hidden } = await this.#hidden(flat, n, len, null, false, opts.signal);
      const scored = await this.#scoreRows(hidden, rows, targets).finally(() => this.backend.release(hidden));
      for (const lp of scored.logProbs) nll -= lp;
      done += rows.length;
      opts.onProgress?.(done, total);
      w += n;
    }
    const meanNll = nll / total;
    return { tokens: total, meanNll, perplexity: Math.exp(meanNll), window, stride };
  }

  // ---- the forward pass ----

  #flatten(tokens: readonly (readonly number[])[]): { ids: Uint32Array; batch: number; seqLen: number } {
    const batch = tokens.length;
    if (batch === 0) throw new ModelRunError('no sequences');
    const seqLen = tokens[0].length;
    if (seqLen === 0) throw new ModelRunError('empty sequence');
    const ids = new Uint32Array(batch * seqLen);
    tokens.forEach((seq, b) => {
      if (seq.length !== seqLen) throw new ModelRunError(`sequence ${b} has ${seq.length} tokens, sequence 0 has ${seqLen} (a batch needs one length)`);
      seq.forEach((t, k) => {
        if (!(Number.isInteger(t) && t >= 0 && t < this.config.vocabSize)) {
          throw new ModelRunError(`${this.id}: token id ${t} (sequence ${b}, position ${k}) is outside the vocabulary of ${this.config.vocabSize}`);
        }
        ids[b * seqLen + k] = t;
      });
    });
    return { ids, batch, seqLen };
  }

  async #ropeTable(positions: number): Promise<Tensor> {
    if (this.#rope && this.#rope.positions >= positions) return this.#rope.table;
    const size = Math.max(positions, Math.min(this.config.maxPositions, 2 * (this.#rope?.positions ?? 0)), 64);
    const table = await this.backend.upload(ropeTable(this.#inverseFrequencies, size), [size, this.config.headDim]);
    if (this.#rope) this.backend.release(this.#rope.table);
    this.#rope = { table, positions: size };
    return table;
  }

  /** The final-normed hidden states [batch·seqLen, hidden] of `ids`, and the cache if kept. */
  async #hidden(ids: Uint32Array, batch: number, seqLen: number, cache: KvCache | null, keepCache: boolean, signal?: AbortSignal): Promise<{ hidden: Tensor; cache: KvCache | null }> {
    const be = this.backend;
    const c = this.config;
    const past = cache?.length ?? 0;
    if (cache && cache.batch !== batch) throw new ModelRunError(`the cache holds ${cache.batch} sequences, the step has ${batch}`);
    if (c.slidingWindow !== null && past + seqLen > c.slidingWindow) {
      throw new ModelRunError(`${this.id}: ${past + seqLen} positions exceed the model's sliding_window of ${c.slidingWindow}, which the runtime does not apply`);
    }
    const table = await this.#ropeTable(past + seqLen);
    using scope = new TensorScope(be);
    let x = scope.add(await be.gatherRows(this.#weights.embed, ids));
    const kept: { k: Tensor; v: Tensor }[] = [];
    try {
      for (let i = 0; i < c.numLayers; i++) {
        if (signal?.aborted) throw new ModelRunCancelledError();
        using layer = await this.#weights.layer(i, signal);
        const step = await this.#layer(layer.weights, x, table, { batch, seqLen, past, cached: cache?.layers[i] ?? null, keep: keepCache });
        scope.drop(x);
        x = scope.add(step.x);
        if (step.kv) kept.push(step.kv);
      }
      const hidden = await be.rmsNorm(x, this.#weights.finalNorm, c.rmsNormEps);
      return { hidden, cache: keepCache ? new KvCache(be, batch, past + seqLen, kept) : null };
    } catch (err) {
      for (const { k, v } of kept) {
        be.release(k);
        be.release(v);
      }
      throw err;
    }
  }

  async #linear(scope: TensorScope, x: Tensor, w: Tensor, bias?: Tensor): Promise<Tensor> {
    const y = scope.add(await this.backend.matmul(x, w, { transB: true }));
    if (!bias) return y;
    const out = scope.add(await this.backend.addRows(y, bias));
    scope.drop(y);
    return out;
  }

  /** One decoder layer; returns the new residual stream (and the layer's cache when kept). */
  async #layer(
    w: LayerWeights,
    x: Tensor,
    table: Tensor,
    at: { batch: number; seqLen: number; past: number; cached: { k: Tensor; v: Tensor } | null; keep: boolean },
  ): Promise<{ x: Tensor; kv: { k: Tensor; v: Tensor } | null }> {
    const be = this.backend;
    const c = this.config;
    using scope = new TensorScope(be);
    const h = scope.add(await be.rmsNorm(x, w.inputNorm, c.rmsNormEps));
    const rope = (t: Tensor, heads: number) => be.rope(t, table, { heads, seqLen: at.seqLen, positionOffset: at.past });
    const q = scope.add(await rope(await this.#linear(scope, h, w.q, w.qBias), c.numHeads));
    let k = scope.add(await rope(await this.#linear(scope, h, w.k, w.kBias), c.numKvHeads));
    let v = await this.#linear(scope, h, w.v, w.vBias);
    scope.drop(h);
    if (at.cached) {
      k = scope.add(await be.concatSequences(at.cached.k, k, at.batch));
      v = scope.add(await be.concatSequences(at.cached.v, v, at.batch));
    }
    const attn = scope.add(await be.attention(q, k, v, { batch: at.batch, heads: c.numHeads, kvHeads: c.numKvHeads }));
    const o = await this.#linear(scope, attn, w.o, w.oBias);
    const x1 = scope.add(await be.lincomb([{ x, coef: 1 }, { x: o, coef: 1 }]));
    const h2 = scope.add(await be.rmsNorm(x1, w.postNorm, c.rmsNormEps));
    const gate = await this.#linear(scope, h2, w.gate, w.gateBias);
    const up = await this.#linear(scope, h2, w.up, w.upBias);
    const act = scope.add(await be.swiglu(gate, up));
    scope.drop(gate);
    scope.drop(up);
    const down = await this.#linear(scope, act, w.down, w.downBias);
    const out = await be.lincomb([{ x: x1, coef: 1 }, { x: down, coef: 1 }]);
    return { x: out, kv: at.keep ? { k: scope.keep(k), v: scope.keep(v) } : null };
  }

  // ---- the LM head on selected rows ----

  async #scoreRows(hidden: Tensor, rows: readonly number[], targets: readonly number[]): Promise<{ logProbs: number[]; argmax: number[] }> {
    const logProbs: number[] = [];
    const argmax: number[] = [];
    for (let from = 0; from < rows.length; from += this.#logitRows) {
      const block = rows.slice(from, from + this.#logitRows);
      using picked = await this.backend.gatherRows(hidden, block);
      using logits = await this.backend.matmul(picked, this.#weights.lmHead, { transB: true });
      using lp = await this.backend.logSoftmaxAt(logits, targets.slice(from, from + block.length));
      using am = await this.backend.argmaxRows(logits);
      logProbs.push(...(await this.backend.read(lp)));
      argmax.push(...(await this.backend.read(am)));
    }
    return { logProbs, argmax };
  }

  async #argmaxAt(hidden: Tensor, rows: readonly number[]): Promise<number[]> {
    const out: number[] = [];
    for (let from = 0; from < rows.length; from += this.#logitRows) {
      using picked = await this.backend.gatherRows(hidden, rows.slice(from, from + this.#logitRows));
      using logits = await this.backend.matmul(picked, this.#weights.lmHead, { transB: true });
      using am = await this.backend.argmaxRows(logits);
      out.push(...(await this.backend.read(am)));
    }
    return out;
  }
}

function length(item: { context: readonly number[]; continuation: readonly number[] }): number {
  return item.context.length + item.continuation.length;
}

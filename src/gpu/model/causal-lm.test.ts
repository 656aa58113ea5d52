/**
 * The model runtime (src/gpu/model): config parsing, the weight residency rule, the forward pass on
 * the CPU reference and on the GPU (tiny random Llama and Qwen2 models with grouped KV heads and
 * biases), the KV cache against full recomputation, greedy decoding, continuation scores and
 * perplexity against host computations from the logits. Comparisons with PyTorch / transformers
 * logits are in forward-fixtures.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../cpu-backend.ts';
import type { Backend } from '../backend.ts';
import { memoryFileTree } from '../../core/sources/memory.ts';
import { gpuFor, useGpuBackends } from '../ops/testing.testutil.ts';
import { CausalLM, ModelRunError } from './causal-lm.ts';
import { parseLlamaConfig, ModelConfigError } from './config.ts';
import { inverseFrequencies } from './rope.ts';
import { ModelTooLargeError, ModelWeights } from './weights.ts';
import { logitsOf, tinyModel, tinyModelFiles, type TinyModelSpec } from './testing.testutil.ts';
import { loadTokenizer } from './tokenizer.ts';

useGpuBackends();

const LLAMA: TinyModelSpec = { modelType: 'llama', vocab: 37, hidden: 24, intermediate: 40, layers: 2, heads: 4, kvHeads: 2, seed: 3 };
const QWEN2: TinyModelSpec = { modelType: 'qwen2', vocab: 41, hidden: 36, intermediate: 44, layers: 2, heads: 6, kvHeads: 2, seed: 5, dtype: 'BF16' };
const SEQ = [1, 5, 9, 14, 3, 22, 7, 30, 11, 4, 19];

/** log_softmax(row)[t] in f64. */
function logProb(logits: Float32Array, vocab: number, row: number, t: number): number {
  const r = logits.subarray(row * vocab, (row + 1) * vocab);
  const m = Math.max(...r);
  return r[t] - m - Math.log(r.reduce((s, v) => s + Math.exp(v - m), 0));
}

function argmax(logits: Float32Array, vocab: number, row: number): number {
  const r = logits.subarray(row * vocab, (row + 1) * vocab);
  let best = 0;
  for (let j = 1; j < vocab; j++) if (r[j] > r[best]) best = j;
  return best;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

describe('config.json', () => {
  const base = JSON.parse(new TextDecoder().decode(tinyModelFiles(LLAMA)['config.json'])) as Record<string, unknown>;

  it('reads the architecture with transformers\' defaults', () => {
    const c = parseLlamaConfig(base, 'tiny');
    expect(c).toMatchObject({ hiddenSize: 24, numHeads: 4, numKvHeads: 2, headDim: 6, attentionBias: false, tieWordEmbeddings: false, eosTokenIds: [2] });
    const q = parseLlamaConfig({ ...base, model_type: 'qwen2', num_key_value_heads: undefined }, 'q');
    expect(q).toMatchObject({ attentionBias: true, numKvHeads: 4 });
    expect(parseLlamaConfig({ ...base, head_dim: 8 }, 't').headDim).toBe(8);
  });

  it('refuses what the runtime cannot run, naming the file and key', () => {
    expect(() => parseLlamaConfig({ ...base, model_type: 'gpt2' }, 'm')).toThrow(/m\/config.json: model_type: "gpt2" is not one the runtime runs/);
    expect(() => parseLlamaConfig({ ...base, hidden_size: undefined }, 'm')).toThrow(/hidden_size: missing/);
    expect(() => parseLlamaConfig({ ...base, hidden_act: 'gelu' }, 'm')).toThrow(/hidden_act: "gelu"/);
    expect(() => parseLlamaConfig({ ...base, rope_scaling: { rope_type: 'yarn', factor: 4 } }, 'm')).toThrow(/rope_scaling: type "yarn" is not supported/);
    expect(() => parseLlamaConfig({ ...base, num_key_value_heads: 3 }, 'm')).toThrow(/3 does not divide num_attention_heads 4/);
    expect(() => parseLlamaConfig(null, 'm')).toThrow(ModelConfigError);
  });

  it('llama3 rope scaling: short wavelengths kept, long ones divided by the factor, a blend between', () => {
    const plain = inverseFrequencies({ headDim: 64, ropeTheta: 500000, ropeScaling: { type: 'default' } });
    const scaled = inverseFrequencies({ headDim: 64, ropeTheta: 500000, ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 } });
    expect(scaled[0]).toBe(plain[0]); // wavelength 2π < 8192 / 4
    expect(scaled[31]).toBe(Math.fround(plain[31] / 8)); // wavelength > 8192
    const mid = [...Array(32).keys()].filter((p) => scaled[p] !== plain[p] && scaled[p] !== Math.fround(plain[p] / 8));
    expect(mid.length).toBeGreaterThan(0);
    for (const p of mid) expect(scaled[p] < plain[p] && scaled[p] > plain[p] / 8).toBe(true);
  });
});

describe('weights: the residency rule', () => {
  it('resident when everything fits, streamed when embeddings + head + one layer fit, else refused with both numbers', async () => {
    const c = parseLlamaConfig(JSON.parse(new TextDecoder().decode(tinyModelFiles(LLAMA)['config.json'])), 'tiny');
    // 37·24 embeddings + 37·24 + 24 head + 2 layers of (24·24 + 2·24·12 + 24·24 + 3·24·40 + 2·24)
    const layer = 24 * 24 + 2 * 24 * 12 + 24 * 24 + 3 * 24 * 40 + 2 * 24;
    const total = 4 * (2 * 37 * 24 + 24 + 2 * layer);
    expect(ModelWeights.plan(c, 'tiny', total)).toBe('resident');
    expect(ModelWeights.plan(c, 'tiny', total - 1)).toBe('streamed');
    const minimum = total - 4 * layer;
    expect(ModelWeights.plan(c, 'tiny', minimum)).toBe('streamed');
    expect(() => ModelWeights.plan(c, 'tiny', minimum - 1)).toThrow(ModelTooLargeError);
    expect(() => ModelWeights.plan(c, 'tiny', minimum - 1)).toThrow(/tiny is too large to run here: .* the limit is/);
    // Without streaming (the studio's tab), over the budget is refused, naming the limit.
    expect(ModelWeights.plan(c, 'tiny', total, false)).toBe('resident');
    expect(() => ModelWeights.plan(c, 'tiny', total - 1, false)).toThrow(/^tiny is too large to run here: its f32 weights take 44.4 kB; the limit is 44.4 kB$/);
  });

  it('a streamed model gives the resident logits and holds no layer between passes', async () => {
    const be = new CpuBackend();
    const resident = await CausalLM.load(await tinyModel(QWEN2), be);
    const want = await logitsOf(resident, [SEQ]);
    const before = be.liveTensors;
    const streamed = await CausalLM.load(await tinyModel(QWEN2), be, { residency: 'streamed' });
    expect(streamed.residency).toBe('streamed');
    expect(be.liveTensors - before).toBe(3); // embeddings, final norm, head
    expect(maxAbsDiff(await logitsOf(streamed, [SEQ]), want)).toBe(0);
    expect(be.liveTensors - before).toBe(3 + 1); // + the rope table
    streamed[Symbol.dispose]();
    resident[Symbol.dispose]();
    expect(be.liveTensors).toBe(0);
  });

  it('names a missing or misshapen tensor', async () => {
    const files = tinyModelFiles(LLAMA);
    const config = JSON.parse(new TextDecoder().decode(files['config.json']));
    const bad = { ...files, 'config.json': new TextEncoder().encode(JSON.stringify({ ...config, intermediate_size: 41 })) };
    const { openModel } = await import('../../core/safetensors/model.ts');
    const source = await openModel(memoryFileTree('bad', bad), { id: 'bad' });
    await expect(CausalLM.load(source, new CpuBackend())).rejects.toThrow(/bad: tensor model.layers.0.mlp.gate_proj.weight has shape \[40, 24\]; config.json implies \[41, 24\]/);
    const qwenAsLlama = await openModel(memoryFileTree('q', { ...files, 'config.json': new TextEncoder().encode(JSON.stringify({ ...config, model_type: 'qwen2' })) }), { id: 'q' });
    await expect(CausalLM.load(qwenAsLlama, new CpuBackend())).rejects.toThrow(/q: tensor model.layers.0.self_attn.q_proj.bias is missing/);
  });
});

/** Runtime behaviour that must hold on every backend. */
function runtimeChecks(name: string, backend: () => Backend) {
  describe(`runtime on ${name}`, () => {
    it('KV cache: prefix then the rest (one token, then three) gives the full pass\'s logits', async () => {
      const model = await CausalLM.load(await tinyModel(LLAMA), backend());
      const full = await logitsOf(model, [SEQ, [...SEQ].reverse()]);
      const V = model.config.vocabSize;
      const prefix = await model.forward([SEQ.slice(0, 7), [...SEQ].reverse().slice(0, 7)], { keepCache: true });
      model.backend.release(prefix.logits);
      let cache = prefix.cache!;
      const pieces = [[7], [8, 9, 10]];
      let at = 7;
      for (const piece of pieces) {
        const step = await model.forward(
          [piece.map((p) => SEQ[p]), piece.map((p) => [...SEQ].reverse()[p])],
          { cache, keepCache: true },
        );
        cache[Symbol.dispose]();
        cache = step.cache!;
        expect(cache.length).toBe(at + piece.length);
        const got = await model.backend.read(step.logits);
        model.backend.release(step.logits);
        for (let b = 0; b < 2; b++) {
          for (let k = 0; k < piece.length; k++) {
            const want = full.subarray((b * SEQ.length + at + k) * V, (b * SEQ.length + at + k + 1) * V);
            const row = got.subarray((b * piece.length + k) * V, (b * piece.length + k + 1) * V);
            expect(maxAbsDiff(row, want), `sequence ${b} position ${at + k}`).toBeLessThan(2e-5);
          }
        }
        at += piece.length;
      }
      cache[Symbol.dispose]();
      model[Symbol.dispose]();
    });

    it('greedy decoding: the same tokens twice, each the argmax of a full recomputation', async () => {
      const model = await CausalLM.load(await tinyModel(QWEN2), backend());
      const prompts = [SEQ.slice(0, 4), SEQ.slice(4, 8)];
      const first = await model.generate(prompts, { maxNewTokens: 6, stop: [] });
      const second = await model.generate(prompts, { maxNewTokens: 6, stop: [] });
      expect(second).toEqual(first);
      expect(first.map((o) => o.length)).toEqual([6, 6]);
      for (let b = 0; b < 2; b++) {
        const seq = [...prompts[b]];
        for (const t of first[b]) {
          const logits = await logitsOf(model, [seq]);
          expect(t).toBe(argmax(logits, model.config.vocabSize, seq.length - 1));
          seq.push(t);
        }
      }
      // A stop token ends a sequence (kept in its output); the other runs on.
      const stopped = await model.generate(prompts, { maxNewTokens: 6, stop: [first[0][2]] });
      expect(stopped[0]).toEqual(first[0].slice(0, first[0].indexOf(first[0][2]) + 1));
      model[Symbol.dispose]();
    });

    it('continuation scores: log-probabilities and greedy flags from the logits, batched across lengths', async () => {
      const model = await CausalLM.load(await tinyModel(LLAMA), backend());
      const V = model.config.vocabSize;
      const greedyTail = (await model.generate([SEQ.slice(0, 3)], { maxNewTokens: 3, stop: [] }))[0];
      const items = [
        { context: SEQ.slice(0, 5), continuation: SEQ.slice(5, 8) },
        { context: SEQ.slice(0, 3), continuation: greedyTail },
        { context: [1], continuation: [30] },
        { context: SEQ.slice(0, 9), continuation: SEQ.slice(9, 11) },
      ];
      const scores = await model.scoreContinuations(items);
      for (const [i, item] of items.entries()) {
        const seq = [...item.context, ...item.continuation];
        const logits = await logitsOf(model, [seq]);
        item.continuation.forEach((t, k) => {
          expect(scores[i].tokenLogProbs[k]).toBeCloseTo(logProb(logits, V, item.context.length - 1 + k, t), 4);
        });
        expect(scores[i].logProb).toBeCloseTo(scores[i].tokenLogProbs.reduce((a, b) => a + b, 0), 6);
        const greedy = item.continuation.every((t, k) => argmax(logits, V, item.context.length - 1 + k) === t);
        expect(scores[i].greedy).toBe(greedy);
      }
      expect(scores[1].greedy).toBe(true);
      expect(scores[0].logProb).toBeLessThan(0);
      await expect(model.scoreContinuations([{ context: [], continuation: [3] }])).rejects.toThrow(ModelRunError);
      model[Symbol.dispose]();
    });

    it('perplexity: one window = the full pass\'s mean NLL; sliding windows predict every token once', async () => {
      const model = await CausalLM.load(await tinyModel(QWEN2), backend());
      const V = model.config.vocabSize;
      const ids = [...SEQ, ...SEQ.slice(1, 8), 9, 9, 2];
      const logits = await logitsOf(model, [ids]);
      let nll = 0;
      for (let j = 1; j < ids.length; j++) nll -= logProb(logits, V, j - 1, ids[j]);
      const whole = await model.perplexity(ids, { window: ids.length });
      expect(whole.tokens).toBe(ids.length - 1);
      expect(whole.meanNll).toBeCloseTo(nll / (ids.length - 1), 4);
      expect(whole.perplexity).toBeCloseTo(Math.exp(whole.meanNll), 6);
      // window 8, stride 3: token j is predicted in the first window ending after it, from that
      // window's start (computed here window by window, one forward pass each).
      const progress: number[] = [];
      const slid = await model.perplexity(ids, { window: 8, stride: 3, onProgress: (d) => progress.push(d) });
      let want = 0;
      for (let begin = 0, prevEnd = 0; ; begin += 3) {
        const end = Math.min(begin + 8, ids.length);
        const win = ids.slice(begin, end);
        const wl = await logitsOf(model, [win]);
        for (let j = Math.max(prevEnd, begin + 1); j < end; j++) want -= logProb(wl, V, j - 1 - begin, ids[j]);
        prevEnd = end;
        if (end === ids.length) break;
      }
      expect(slid.meanNll).toBeCloseTo(want / (ids.length - 1), 4);
      expect(slid.meanNll).not.toBeCloseTo(whole.meanNll, 4); // shorter contexts: a different number
      expect(progress.at(-1)).toBe(ids.length - 1);
      await expect(model.perplexity([5])).rejects.toThrow(/perplexity needs at least 2/);
      model[Symbol.dispose]();
    });
  });
}

runtimeChecks('the CPU reference', () => new CpuBackend());
runtimeChecks('the GPU', () => gpuFor(undefined));

describe('GPU forward pass vs the CPU reference', () => {
  // Both compute every step in f32 except the reference's f64 dot products and sums; through two
  // layers the logits stay within 2e-5 · (1 + |logit|) of each other on these models.
  it('tiny Llama (grouped KV heads) and Qwen2 (q/k/v biases, BF16 weights), two sequences, one chunked backend', async () => {
    for (const spec of [LLAMA, QWEN2, { ...LLAMA, tie: true, ropeScaling: { rope_type: 'llama3', factor: 4, low_freq_factor: 1, high_freq_factor: 2, original_max_position_embeddings: 8 } }]) {
      for (const chunk of [undefined, 777]) {
        const cpuModel = await CausalLM.load(await tinyModel(spec), new CpuBackend());
        const gpuModel = await CausalLM.load(await tinyModel(spec), gpuFor(chunk));
        const tokens = [SEQ, [...SEQ].reverse()];
        const want = await logitsOf(cpuModel, tokens);
        const got = await logitsOf(gpuModel, tokens);
        for (let i = 0; i < want.length; i++) {
          if (!(Math.abs(got[i] - want[i]) <= 2e-5 * (1 + Math.abs(want[i])))) {
            expect.fail(`${spec.modelType} chunk=${chunk}: logit ${i}: got ${got[i]}, want ${want[i]}`);
          }
        }
        gpuModel[Symbol.dispose]();
        cpuModel[Symbol.dispose]();
      }
    }
  });

  it('the same greedy tokens as the reference', async () => {
    const cpuModel = await CausalLM.load(await tinyModel(QWEN2), new CpuBackend());
    const gpuModel = await CausalLM.load(await tinyModel(QWEN2), gpuFor(undefined));
    const prompts = [SEQ.slice(0, 5), SEQ.slice(3, 8), SEQ.slice(6, 11)];
    expect(await gpuModel.generate(prompts, { maxNewTokens: 8, stop: [] })).toEqual(await cpuModel.generate(prompts, { maxNewTokens: 8, stop: [] }));
    gpuModel[Symbol.dispose]();
    cpuModel[Symbol.dispose]();
  });
});

describe('tokenizer', () => {
  it('needs the model\'s tokenizer.json and names the folder', async () => {
    await expect(loadTokenizer(memoryFileTree('m', {}))).rejects.toThrow(/m: has no tokenizer.json/);
    await expect(loadTokenizer(memoryFileTree('m', { 'tokenizer.json': new TextEncoder().encode('{') }))).rejects.toThrow(/m\/tokenizer.json: not valid JSON/);
  });
});

/**
 * The model runtime (src/gpu/model) on the fast CPU backend: its products are the fast matmul
 * (matmul.ts) and everything else is bit-identical to the reference, so logits, KV-cached steps and
 * greedy decoding must equal the CPU reference's bit for bit, on 1 and 2 threads. The model is
 * large enough (hidden 96, MLP 200, 4 × 40 tokens) for its products to run on the worker threads.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../cpu-backend.ts';
import { CausalLM } from '../model/causal-lm.ts';
import { logitsOf, tinyModel, type TinyModelSpec } from '../model/testing.testutil.ts';
import { expectSameBits } from '../ops/testing.testutil.ts';
import { FastCpuBackend } from './fast-backend.ts';
import { nodeWorkers } from './node-threads.ts';

const BACKENDS: [string, FastCpuBackend][] = [
  ['1 thread', new FastCpuBackend()],
  ['2 threads', new FastCpuBackend({ threads: 2, workers: nodeWorkers })],
];
afterAll(() => BACKENDS.forEach(([, b]) => b.destroy()));

const SPECS: [string, TinyModelSpec][] = [
  ['llama F32', { modelType: 'llama', vocab: 53, hidden: 96, intermediate: 200, layers: 2, heads: 4, kvHeads: 2, seed: 7 }],
  ['qwen2 BF16', { modelType: 'qwen2', vocab: 61, hidden: 96, intermediate: 200, layers: 2, heads: 6, kvHeads: 2, seed: 8, dtype: 'BF16' }],
];

/** 4 sequences of 40 tokens below `vocab`. */
function sequences(vocab: number): number[][] {
  return [0, 1, 2, 3].map((s) => Array.from({ length: 40 }, (_, i) => 1 + ((i * (7 + 2 * s) + 3 * s) % (vocab - 1))));
}

describe.each(BACKENDS)('model runtime on the fast CPU backend (%s) vs the reference', (name, fast) => {
  it.each(SPECS)('%s: logits of a full pass and of KV-cached steps, bit for bit', async (spec, config) => {
    const reference = await CausalLM.load(await tinyModel(config), new CpuBackend());
    const model = await CausalLM.load(await tinyModel(config), fast);
    const tokens = sequences(config.vocab!);
    expectSameBits(await logitsOf(model, tokens), await logitsOf(reference, tokens), `${name} ${spec} full pass`);
    // A prefix with the cache kept, then one more token per sequence.
    const step = async (m: CausalLM) => {
      const prefix = await m.forward(
        tokens.map((t) => t.slice(0, 30)),
        { keepCache: true },
      );
      m.backend.release(prefix.logits);
      const next = await m.forward(
        tokens.map((t) => t.slice(30, 31)),
        { cache: prefix.cache!, keepCache: false },
      );
      prefix.cache![Symbol.dispose]();
      try {
        return await m.backend.read(next.logits);
      } finally {
        m.backend.release(next.logits);
      }
    };
    expectSameBits(await step(model), await step(reference), `${name} ${spec} cached step`);
    model[Symbol.dispose]();
    reference[Symbol.dispose]();
    expect(fast.liveTensors, `${name} ${spec}: tensors left alive`).toBe(0);
  });

  it('greedy decoding gives the reference tokens', async () => {
    const config = SPECS[1][1];
    const reference = await CausalLM.load(await tinyModel(config), new CpuBackend());
    const model = await CausalLM.load(await tinyModel(config), fast);
    const prompts = sequences(config.vocab!).map((t) => t.slice(0, 12));
    const want = await reference.generate(prompts, { maxNewTokens: 5, stop: [] });
    expect(want.flat().length).toBe(20);
    expect(await model.generate(prompts, { maxNewTokens: 5, stop: [] })).toEqual(want);
    model[Symbol.dispose]();
    reference[Symbol.dispose]();
  });
});

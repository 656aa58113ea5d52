/**
 * The runtime on the trained demo family (public/demo, scripts/demo-family):
 * - the reference forward pass against PyTorch's logits (tests/fixtures/demo-forward: base and
 *   expert-1 on three prompts, a random Qwen2 with grouped KV heads and q/k/v biases), and the
 *   fixture's greedy answers reproduced by greedy decoding over the KV cache;
 * - the GPU forward pass against the reference on the demo models and the Qwen2 model.
 * The skills themselves are measured in demo-skills.test.ts.
 *
 * Tolerance against PyTorch: |Δlogit| <= 5e-5 · (1 + |logit|): both compute in f32 from the same
 * BF16 weights; summation order and exp/rsqrt rounding differ (measured below 1e-5).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openLocalModel } from '../../cli/open-models.ts';
import type { ModelSource } from '../../core/source.ts';
import { readSafetensorsFile, tensorValues } from '../../../tests/helpers/safetensors-file.ts';
import type { Backend } from '../backend.ts';
import { CpuBackend } from '../cpu-backend.ts';
import { gpuFor, useGpuBackends } from '../ops/testing.testutil.ts';
import { CausalLM } from './causal-lm.ts';
import { logitsOf } from './testing.testutil.ts';
import { parseTaskSet } from './eval.ts';
import { loadTokenizer } from './tokenizer.ts';

useGpuBackends();

const DEMO = 'public/demo';
const FIXTURES = 'tests/fixtures/demo-forward';
const cases = JSON.parse(readFileSync(join(FIXTURES, 'cases.json'), 'utf8')) as {
  cases: { model: string; prompt: string; ids: number[]; logits: string; greedy: string }[];
};
const logits = readSafetensorsFile(join(FIXTURES, 'logits.safetensors'));
const tasks = parseTaskSet(JSON.parse(readFileSync(join(DEMO, 'tasks.json'), 'utf8')), `${DEMO}/tasks.json`);

async function withModel<T>(path: string, backend: Backend, use: (m: CausalLM, source: ModelSource) => Promise<T>): Promise<T> {
  const source = await openLocalModel(path);
  const model = await CausalLM.load(source, backend);
  try {
    return await use(model, source);
  } finally {
    model[Symbol.dispose]();
  }
}

describe('demo family: forward pass vs PyTorch (tests/fixtures/demo-forward)', () => {
  it('reference logits within tolerance; greedy decoding gives the fixture\'s answers', async () => {
    expect(cases.cases.length).toBeGreaterThanOrEqual(7);
    let worst = 0;
    for (const c of cases.cases) {
      await withModel(c.model, new CpuBackend(), async (model, source) => {
        const tok = await loadTokenizer(source.tree);
        expect(tok.encode(c.prompt), `${c.model} ${c.prompt}`).toEqual(c.ids);
        const want = tensorValues(logits.get(c.logits)!);
        const got = await logitsOf(model, [c.ids]);
        expect(got.length).toBe(want.length);
        for (let i = 0; i < got.length; i++) {
          const d = Math.abs(got[i] - want[i]);
          worst = Math.max(worst, d);
          if (!(d <= 5e-5 * (1 + Math.abs(want[i])))) expect.fail(`${c.model} "${c.prompt}": logit ${i}: got ${got[i]}, want ${want[i]}`);
        }
        const eos = tok.eosId!;
        const [out] = await model.generate([c.ids], { maxNewTokens: 12, stop: [eos] });
        expect(tok.decode(out.filter((t) => t !== eos)), `${c.model} "${c.prompt}" greedy`).toBe(c.greedy);
      });
    }
    console.log(`reference vs PyTorch on ${cases.cases.length} demo-forward cases: max |Δlogit| ${worst.toExponential(2)}`);
  });
});

describe('demo family: GPU forward pass vs the reference', () => {
  // Through 4 layers in f32 (GPU sums in f32, the reference in f64): within 5e-5 · (1 + |logit|).
  it('base, each expert and the random Qwen2 on prompts of every skill', async () => {
    const prompts = tasks.skills.map((s) => s.examples[0].prompt);
    let worst = 0;
    for (const path of [...['base', 'expert-1', 'expert-2', 'expert-3'].map((n) => join(DEMO, n)), join(FIXTURES, 'qwen2-random')]) {
      const source = await openLocalModel(path);
      const tok = await loadTokenizer(source.tree);
      const ids = prompts.map((p) => tok.encode(p));
      const cpuModel = await CausalLM.load(source, new CpuBackend());
      const gpuModel = await CausalLM.load(source, gpuFor(undefined));
      for (const seq of ids) {
        const want = await logitsOf(cpuModel, [seq]);
        const got = await logitsOf(gpuModel, [seq]);
        for (let i = 0; i < want.length; i++) {
          const d = Math.abs(got[i] - want[i]);
          worst = Math.max(worst, d);
          if (!(d <= 5e-5 * (1 + Math.abs(want[i])))) expect.fail(`${path}: logit ${i}: got ${got[i]}, want ${want[i]}`);
        }
      }
      gpuModel[Symbol.dispose]();
      cpuModel[Symbol.dispose]();
    }
    console.log(`GPU vs reference on the demo family: max |Δlogit| ${worst.toExponential(2)}`);
  });
});

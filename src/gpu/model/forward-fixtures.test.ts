/**
 * The runtime's forward pass against logits computed by PyTorch: transformers' own
 * LlamaForCausalLM / MistralForCausalLM on tiny random models (tests/fixtures/hf-forward, made by
 * scripts/model-fixtures/hf_forward.py: llama3 rope scaling, tied embeddings, head_dim ≠ hidden /
 * heads, attention and MLP biases, BF16; Mistral with one KV head, F16), on the CPU reference and on
 * the GPU.
 *
 * Tolerance: |Δlogit| <= 2e-5 · (1 + |logit|). Both sides compute in f32 from the same stored
 * weights; what differs is summation order (the reference sums in f64) and exp/rsqrt rounding,
 * measured at most ~2e-6 here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nodeFileTree } from '../../cli/node-files.ts';
import { openModel } from '../../core/safetensors/model.ts';
import { readSafetensorsFile, tensorValues } from '../../../tests/helpers/safetensors-file.ts';
import type { Backend } from '../backend.ts';
import { CpuBackend } from '../cpu-backend.ts';
import { gpuFor, useGpuBackends } from '../ops/testing.testutil.ts';
import { CausalLM } from './causal-lm.ts';

useGpuBackends();

const HF = 'tests/fixtures/hf-forward';
const doc = JSON.parse(readFileSync(`${HF}/cases.json`, 'utf8')) as { sequences: number[][]; cases: { model: string; architecture: string; logits: string }[] };
const logits = readSafetensorsFile(`${HF}/logits.safetensors`);

function expectLogits(got: Float32Array, want: Float32Array, what: string): number {
  expect(got.length, what).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    worst = Math.max(worst, d);
    if (!(d <= 2e-5 * (1 + Math.abs(want[i])))) expect.fail(`${what}: logit ${i}: got ${got[i]}, want ${want[i]}`);
  }
  return worst;
}

async function runCase(backend: Backend, c: (typeof doc.cases)[number]): Promise<number> {
  const model = await CausalLM.load(await openModel(await nodeFileTree(c.model), { id: c.model }), backend);
  try {
    const { logits: out } = await model.forward(doc.sequences);
    const got = await backend.read(out);
    backend.release(out);
    const want = tensorValues(logits.get(c.logits)!);
    return expectLogits(got, want, `${c.architecture} ${c.model} on ${backend.kind}`);
  } finally {
    model[Symbol.dispose]();
  }
}

describe('forward pass vs transformers (tests/fixtures/hf-forward)', () => {
  it('the CPU reference', async () => {
    expect(doc.cases.map((c) => c.architecture)).toEqual(['LlamaForCausalLM', 'MistralForCausalLM']);
    for (const c of doc.cases) {
      const worst = await runCase(new CpuBackend(), c);
      console.log(`reference vs transformers, ${c.model}: max |Δlogit| ${worst.toExponential(2)}`);
    }
  });

  it('the GPU', async () => {
    for (const c of doc.cases) {
      const worst = await runCase(gpuFor(undefined), c);
      console.log(`GPU vs transformers, ${c.model}: max |Δlogit| ${worst.toExponential(2)}`);
    }
  });
});

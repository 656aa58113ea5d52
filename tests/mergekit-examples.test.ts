/**
 * mergekit's own example recipes (examples/*.yml of mergekit 0.1.4: linear, ties, bio-merge,
 * gradient-slerp, orcamini-platy-44layer, arcee_fusion), written with the golden checkpoints in place
 * of the Hub models and layer ranges that fit their 4 layers, all merge through the CLI, each with a
 * check of what its method must give.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.ts';
import { f32ToBf16Bits, f32ToF16Bits } from '../src/core/dtype.ts';
import { readSafetensorsFile, tensorValues, type RawTensor } from './helpers/safetensors-file.ts';

const EXAMPLES = resolve(__dirname, 'fixtures/mergekit-examples');
const MODELS = resolve(__dirname, 'fixtures/golden/models/llama-f32');
const work = mkdtempSync(join(tmpdir(), 'merge-studio-examples-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const model = (name: string) => readSafetensorsFile(join(MODELS, name, 'model.safetensors'));
const [base, e1, e2, e3] = ['base', 'expert1', 'expert2', 'expert3'].map(model);

async function merge(example: string, backend = 'cpu') {
  let stderr = '';
  const sink = { write: (s: string) => ((stderr += s), true) } as unknown as NodeJS.WritableStream;
  const out = join(work, `${example}-${backend}`);
  const code = await main(['merge', join(EXAMPLES, `${example}.yml`), '--out', out, '--quiet', '--backend', backend], { stdout: sink, stderr: sink });
  expect(stderr).toBe('');
  expect(code).toBe(0);
  return {
    tensors: readSafetensorsFile(join(out, 'model.safetensors')),
    config: JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>,
  };
}

/** The values as 16-bit floats read back (what a copy into F16 / BF16 gives). */
const rounded = (dtype: 'F16' | 'BF16', v: ArrayLike<number>) =>
  tensorValues({ dtype, shape: [v.length], bytes: new Uint8Array(Uint16Array.from(v, dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits).buffer) });
const asF16 = (v: number) => rounded('F16', [v])[0];
const values = (t: RawTensor | undefined) => tensorValues(t!);

describe("mergekit's example recipes merge", () => {
  it('linear.yml: a weighted mean of three models in float16', async () => {
    const { tensors, config } = await merge('linear');
    expect(tensors.size).toBe(base.size);
    expect(config.torch_dtype).toBe('float16');
    for (const [name, t] of tensors) {
      expect(t.dtype).toBe('F16');
      const v = values(t);
      const [a, b, c] = [e1, e2, e3].map((m) => rounded('F16', values(m.get(name))));
      const off = [...v.keys()].filter((i) => {
        const want = (1 * a[i] + 0.3 * b[i] + 0.5 * c[i]) / 1.8;
        return !(Math.abs(v[i] - want) <= 2e-3 * Math.abs(want) + 1e-6);
      });
      expect(off, name).toEqual([]);
    }
  });

  it.each(['ties', 'bio-merge'])('%s.yml: TIES with int8_mask (accepted, no effect) moves every tensor off the base', async (example) => {
    const { tensors } = await merge(example);
    expect(tensors.size).toBe(base.size);
    for (const [name, t] of tensors) {
      const v = values(t);
      expect(v.every(Number.isFinite), name).toBe(true);
      const b = rounded('F16', values(base.get(name)));
      expect(v.some((x, i) => x !== b[i]), name).toBe(true);
    }
  });

  it('gradient-slerp.yml: per-tensor gradients over the slice (self_attn from expert1 at layer 0, expert2 at the last)', async () => {
    const { tensors } = await merge('gradient-slerp');
    const q = (k: number) => `model.layers.${k}.self_attn.q_proj.weight`;
    const up = (k: number) => `model.layers.${k}.mlp.up_proj.weight`;
    // t = 0 gives the base (expert1), t = 1 the other model, in float16.
    expect(Array.from(values(tensors.get(q(0))))).toEqual(Array.from(values(e1.get(q(0)))).map(asF16));
    expect(Array.from(values(tensors.get(q(3))))).toEqual(Array.from(values(e2.get(q(3)))).map(asF16));
    expect(Array.from(values(tensors.get(up(0))))).toEqual(Array.from(values(e2.get(up(0)))).map(asF16));
    expect(Array.from(values(tensors.get(up(3))))).toEqual(Array.from(values(e1.get(up(3)))).map(asF16));
  });

  it('orcamini-platy-44layer.yml: a frankenmerge, layers 0-2 of one model and 1-3 of the other', async () => {
    const { tensors, config } = await merge('orcamini-platy-44layer');
    expect(config.num_hidden_layers).toBe(6);
    const o = (k: number) => `model.layers.${k}.self_attn.o_proj.weight`;
    for (const [out, from, k] of [[0, e1, 0], [2, e1, 2], [3, e2, 1], [5, e2, 3]] as const) {
      expect(Array.from(values(tensors.get(o(out)))), `output layer ${out}`).toEqual(Array.from(values(from.get(o(k)))).map(asF16));
    }
    expect(tensors.has(o(6))).toBe(false);
  });

  it('arcee_fusion.yml: every entry is the base or the fine-tune, in bfloat16', async () => {
    const { tensors } = await merge('arcee_fusion');
    let fromExpert = 0;
    let total = 0;
    for (const [name, t] of tensors) {
      const v = values(t);
      const b = rounded('BF16', values(base.get(name)));
      const x = rounded('BF16', values(e1.get(name)));
      const neither = [...v.keys()].filter((i) => v[i] !== b[i] && v[i] !== x[i]);
      expect(neither, name).toEqual([]);
      fromExpert += [...v.keys()].filter((i) => v[i] === x[i] && v[i] !== b[i]).length;
      total += v.length;
    }
    // The importance threshold keeps a minority of the changes.
    expect(fromExpert / total).toBeGreaterThan(0.001);
    expect(fromExpert / total).toBeLessThan(0.5);
  });
});

/**
 * PCB against a plain f64 reference written here from the paper's equations (METHODS.md): the
 * whole model concatenated into one vector per task, min-max normalization, softmaxes over all
 * entries, a sort for the k-th largest — none of the method's streamed passes. Merged through the
 * engine on small in-memory models, so the six whole-model passes run as they do on checkpoints.
 * Tolerance: |got − want| <= 1e-6 + 1e-5·max|want| per tensor.
 */
import { describe, expect, it } from 'vitest';
import { parseRecipe } from '../../core/recipe/parse.ts';
import { methodLookup } from './index.ts';
import { backendsUnderTest, makeModels, numelOf, mergeModels, type ModelValues, type TensorSpec } from './model-harness.ts';
import { expectClose } from './test-harness.ts';

const SPECS: TensorSpec[] = [
  { name: 'model.embed_tokens.weight', shape: [7, 5] },
  { name: 'model.layers.0.self_attn.q_proj.weight', shape: [5, 5] },
  { name: 'model.layers.0.input_layernorm.weight', shape: [5] },
  { name: 'model.layers.1.mlp.down_proj.weight', shape: [5, 9] },
  { name: 'model.norm.weight', shape: [5] },
];

/** PCB on the concatenated model, in f64. Returns the merged tensors and the kept count per task. */
function pcbRef(base: ModelValues, models: ModelValues[], density: number, lambda: number) {
  const T = models.length;
  const b = SPECS.flatMap((s) => Array.from(base.get(s.name)!));
  const v = models.map((m) => SPECS.flatMap((s) => Array.from(m.get(s.name)!)).map((x, i) => x - b[i]));
  const D = b.length;
  const norm = (z: number[]) => {
    const lo = Math.min(...z);
    const hi = Math.max(...z);
    return z.map((x) => (hi > lo ? (x - lo) / (hi - lo) : 0));
  };
  const softmax = (z: number[]) => {
    const e = z.map((x) => Math.exp(x));
    const s = e.reduce((a, x) => a + x, 0);
    return e.map((x) => x / s);
  };
  const prod = (a: number[], c: number[]) => a.map((x, i) => x * c[i]);
  const k = Math.max(1, Math.floor(density * D));
  const c = v.map((vt) => {
    const intra = softmax(norm(prod(vt, vt)).map((x) => T * x));
    const inter = new Array<number>(D).fill(0);
    for (const vj of v) softmax(norm(prod(vt, vj))).forEach((x, i) => (inter[i] += x));
    const beta = intra.map((x, i) => x * inter[i]);
    const sorted = [...beta].sort((x, y) => y - x);
    const theta = sorted[k - 1];
    const top = sorted[0];
    return beta.map((x) => (top > theta ? (Math.max(x, theta) - theta) / (top - theta) : x === theta ? 1 : 0));
  });
  const merged = b.map((bi, i) => {
    const den = c.reduce((s, ct) => s + ct[i], 0);
    const num = c.reduce((s, ct, t) => s + ct[i] * v[t][i], 0);
    return bi + (lambda * num) / Math.max(den, 1e-12);
  });
  const out = new Map<string, Float64Array>();
  let at = 0;
  for (const s of SPECS) {
    out.set(s.name, Float64Array.from(merged.slice(at, at + numelOf(s))));
    at += numelOf(s);
  }
  return { out, kept: c.map((ct) => ct.filter((x) => x > 0).length), k };
}

describe.each(backendsUnderTest())('pcb ($name)', ({ get }) => {
  it('three models, density 0.3: the paper equations over the whole model', async () => {
    const { base, models } = makeModels(SPECS, 1, 3);
    const { out, kept, k } = pcbRef(base, models, 0.3, 1);
    expect(kept).toEqual([k - 1, k - 1, k - 1]); // θ's own entry gets weight 0
    const got = await mergeModels({ backend: get(), method: 'pcb', specs: SPECS, base, models, params: '{density: 0.3}' });
    for (const s of SPECS) expectClose(got.tensors.get(s.name)!, out.get(s.name)!, 1e-5, 1e-6);
  });

  it('two models, density 1 and lambda 0.5', async () => {
    const { base, models } = makeModels(SPECS, 2, 2);
    const { out } = pcbRef(base, models, 1, 0.5);
    const got = await mergeModels({ backend: get(), method: 'pcb', specs: SPECS, base, models, params: '{density: 1, lambda: 0.5}' });
    for (const s of SPECS) expectClose(got.tensors.get(s.name)!, out.get(s.name)!, 1e-5, 1e-6);
  });

  it('k = 1: θ is the maximum, and only the top entry of each task counts', async () => {
    const { base, models } = makeModels(SPECS, 3, 2);
    const { out, kept } = pcbRef(base, models, 0.001, 1);
    expect(kept).toEqual([1, 1]);
    const got = await mergeModels({ backend: get(), method: 'pcb', specs: SPECS, base, models, params: '{density: 0.001}' });
    let changed = 0;
    for (const s of SPECS) {
      expectClose(got.tensors.get(s.name)!, out.get(s.name)!, 1e-5, 1e-6);
      changed += got.tensors.get(s.name)!.filter((x, i) => x !== base.get(s.name)![i]).length;
    }
    expect(changed).toBeGreaterThanOrEqual(1);
    expect(changed).toBeLessThanOrEqual(2);
  });

  it('streams six passes over the model before the merge, each tensor read once per pass and model', async () => {
    const { base, models } = makeModels(SPECS, 4, 2);
    const got = await mergeModels({ backend: get(), method: 'pcb', specs: SPECS, base, models });
    const labels = [...new Set(got.progress.filter((p) => p.pass).map((p) => `${p.pass!.index} ${p.pass!.label}`))];
    expect(labels).toEqual([
      '1 pcb: min/max of v_t⊙v_j',
      '2 pcb: softmax sums',
      '3 pcb: k-th largest β_t (digit 1 of 4)',
      '4 pcb: k-th largest β_t (digit 2 of 4)',
      '5 pcb: k-th largest β_t (digit 3 of 4)',
      '6 pcb: k-th largest β_t (digit 4 of 4)',
    ]);
    expect(got.reads).toBe(7 * SPECS.length * 3);
  });
});

describe('pcb parameters', () => {
  const recipe = (extra: string, params: string) => `models:\n  - model: a\n${extra}merge_method: pcb\nbase_model: b\nparameters: ${params}\n`;

  it('takes no per-model weight, density in [0, 1], refuses unknown names', () => {
    expect(() => parseRecipe(recipe('    parameters: {weight: 1}\n', '{density: 0.2}'), methodLookup)).toThrow(/weight/);
    expect(() => parseRecipe(recipe('', '{density: 1.5}'), methodLookup)).toThrow(/1.5 is out of range \[0, 1\]/);
    expect(() => parseRecipe(recipe('', '{densty: 0.5}'), methodLookup)).toThrow(/densty/);
    expect(() => parseRecipe(recipe('', '{density: 0.2, lambda: 0.8}'), methodLookup)).not.toThrow();
  });

  it('refuses density 0 and a density that differs between tensors, naming the reason', async () => {
    const { base, models } = makeModels(SPECS, 5, 2);
    await expect(mergeModels({ method: 'pcb', specs: SPECS, base, models, params: '{density: 0}' })).rejects.toThrow(/density must be in \(0, 1\], got 0/);
    await expect(mergeModels({ method: 'pcb', specs: SPECS, base, models, params: '{density: [0.2, 0.5]}' })).rejects.toThrow(
      /density must be one value for the whole model/,
    );
  });
});

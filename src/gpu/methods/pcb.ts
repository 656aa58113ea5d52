/**
 * PCB merging (Du et al., "Parameter Competition Balancing for Model Merging", NeurIPS 2024), the
 * paper's equations over the whole model (METHODS.md "Methods from the papers"). Each task's
 * entries over every float tensor form one vector v_t = x_t − b of D entries (no weights);
 * Norm(z) = (z − min z)/(max z − min z) over the whole model (0 when max = min); T tasks.
 *
 *   β_t = softmax_D(T·Norm(v_t⊙v_t)) ⊙ Σ_j softmax_D(Norm(v_t⊙v_j))
 *   θ_t = the k-th largest entry of β_t, k = max(1, floor(density·D)); M_t = max β_t
 *   c_t = (max(β_t, θ_t) − θ_t)/(M_t − θ_t)   (M_t = θ_t: c_t = 1 where β_t = θ_t, else 0)
 *   result = b + λ·Σ_t c_t⊙v_t / max(Σ_t c_t, 1e-12)
 *
 * Nothing of the model is held: `prepare` streams the model once for the min/max of each v_t⊙v_j
 * (t ≤ j), once for the softmax denominators, and four times for θ_t and M_t by radix select (one
 * 8-bit digit of β's f32 bits per pass, countKeyDigits per tensor, counts added on the host);
 * β_t is recomputed from the inputs each time, with the same ops, so its bits are the same in every
 * pass and in the merge. Softmaxes subtract their maximum (a for exp(a·Norm), a ∈ {1, T}) first.
 */
import type { KeyDigitSelector } from '../ops/select.ts';
import { TensorScope, type Backend, type Tensor } from '../backend.ts';
import { copyOf, nonBaseModels, ParamReader, requireBase, taskVectors } from './common.ts';
import type { MethodDescriptor, ModelPass, TensorInputs } from './types.ts';

/** Whole-model statistics the merge of each tensor needs. */
export interface PcbState {
  tasks: number;
  /** Pair (t, j), t <= j, at pairIndex(t, j): min and max of v_t⊙v_j over the model. */
  pairs: { min: number; max: number; interSum: number }[];
  /** Σ_e exp(T·Norm(v_t⊙v_t) − T) per task. */
  intraSums: number[];
  /** θ_t and M_t per task. */
  thresholds: number[];
  maxima: number[];
}

function pairIndex(t: number, j: number, tasks: number): number {
  const [a, b] = t <= j ? [t, j] : [j, t];
  return a * tasks - (a * (a - 1)) / 2 + (b - a);
}

/** exp(a·Norm(z) − a) of one pair's product z = v_t⊙v_j. */
function expNormalized(backend: Backend, z: Tensor, pair: { min: number; max: number }, a: number): Promise<Tensor> {
  const range = pair.max - pair.min;
  return backend.expAffine(z, pair.min, range > 0 ? a / range : 0, -a);
}

/** The task vectors of one tensor (non-base models in recipe order); the caller releases them. */
async function pcbTaskVectors(inputs: TensorInputs): Promise<Tensor[]> {
  const reader = new ParamReader('pcb', inputs.tensorName);
  if (!inputs.base) throw reader.error('needs a base model (base_model)');
  return taskVectors(
    inputs.backend,
    inputs.base,
    inputs.models.filter((m) => !m.isBase).map((m) => m.tensor),
  );
}

/** β_t of one tensor from its task vectors `vs` and the whole-model sums. */
async function beta(backend: Backend, vs: readonly Tensor[], t: number, s: Omit<PcbState, 'thresholds' | 'maxima'>): Promise<Tensor> {
  const T = vs.length;
  using scope = new TensorScope(backend);
  let inter: Tensor | undefined;
  let intra: Tensor | undefined;
  for (let j = 0; j < T; j++) {
    const pair = s.pairs[pairIndex(t, j, T)];
    const z = scope.add(await backend.multiply(vs[t], vs[j]));
    const e = scope.add(await expNormalized(backend, z, pair, 1));
    if (j === t) intra = scope.add(await expNormalized(backend, z, pair, T));
    scope.drop(z);
    // Σ_j e_tj / S_tj, with the intra softmax's denominator folded in.
    const coef = 1 / (pair.interSum * s.intraSums[t]);
    const next = scope.add(await backend.lincomb(inter ? [{ x: inter, coef: 1 }, { x: e, coef }] : [{ x: e, coef }]));
    if (inter) scope.drop(inter);
    scope.drop(e);
    inter = next;
  }
  return await backend.multiply(intra!, inter!);
}

/** Pick the digit holding the `rank`-th largest key (1-based) from 256 counts; returns [digit, rank within it]. */
function digitFromTop(counts: ArrayLike<number>, offset: number, rank: number): [number, number] {
  let above = 0;
  for (let d = 255; d >= 0; d--) {
    const c = counts[offset + d];
    if (above + c >= rank) return [d, rank - above];
    above += c;
  }
  throw new Error(`pcb: radix select lost its rank (${rank} of ${above} entries)`);
}

async function prepare(pass: ModelPass): Promise<PcbState> {
  const { backend } = pass;
  const reader = new ParamReader('pcb', pass.tensors[0]?.name ?? '(no tensors)');
  const densities = new Set(pass.tensors.map((t) => pass.params(t.name).global.density));
  if (densities.size > 1) throw reader.error(`density must be one value for the whole model (PCB ranks β over all tensors), got ${[...densities].join(', ')}`);
  const density = pass.tensors.length > 0 ? reader.number(pass.params(pass.tensors[0].name).global, 'density') : 1;
  if (!(density > 0 && density <= 1)) throw reader.error(`density must be in (0, 1], got ${density}`);

  // Pass 1: min and max of every v_t⊙v_j.
  let tasks = -1;
  let pairs: PcbState['pairs'] = [];
  await pass.forEachTensor('pcb: min/max of v_t⊙v_j', async (inputs) => {
    using scope = new TensorScope(backend);
    const vs = scope.addAll(await pcbTaskVectors(inputs));
    if (tasks < 0) {
      tasks = vs.length;
      pairs = Array.from({ length: (tasks * (tasks + 1)) / 2 }, () => ({ min: Infinity, max: -Infinity, interSum: 0 }));
    }
    for (let t = 0; t < tasks; t++) {
      for (let j = t; j < tasks; j++) {
        using z = await backend.multiply(vs[t], vs[j]);
        const { min, max } = await backend.minMax(z);
        const p = pairs[pairIndex(t, j, tasks)];
        p.min = Math.min(p.min, min);
        p.max = Math.max(p.max, max);
      }
    }
  });
  if (tasks <= 0) return { tasks: Math.max(tasks, 0), pairs: [], intraSums: [], thresholds: [], maxima: [] };

  // Pass 2: the softmax denominators.
  const intraSums = new Array<number>(tasks).fill(0);
  await pass.forEachTensor('pcb: softmax sums', async (inputs) => {
    using scope = new TensorScope(backend);
    const vs = scope.addAll(await pcbTaskVectors(inputs));
    for (let t = 0; t < tasks; t++) {
      for (let j = t; j < tasks; j++) {
        const p = pairs[pairIndex(t, j, tasks)];
        using z = await backend.multiply(vs[t], vs[j]);
        {
          using e = await expNormalized(backend, z, p, 1);
          p.interSum += await backend.sumAbs(e);
        }
        if (j === t) {
          using e = await expNormalized(backend, z, p, tasks);
          intraSums[t] += await backend.sumAbs(e);
        }
      }
    }
  });

  // Passes 3–6: θ_t (the k-th largest β_t) and M_t (the largest), one key digit per pass.
  const sums = { tasks, pairs, intraSums };
  const D = pass.tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const k = Math.max(1, Math.floor(density * D));
  // Per task: [θ selector, max selector], each with the rank it still looks for among its prefix.
  const selectors = Array.from({ length: tasks }, () => [
    { prefix: 0, mask: 0, shift: 24, rank: k },
    { prefix: 0, mask: 0, shift: 24, rank: 1 },
  ]);
  for (let digit = 1; digit <= 4; digit++) {
    const counts = Array.from({ length: tasks }, () => new Float64Array(512));
    await pass.forEachTensor(`pcb: k-th largest β_t (digit ${digit} of 4)`, async (inputs) => {
      using scope = new TensorScope(backend);
      const vs = scope.addAll(await pcbTaskVectors(inputs));
      for (let t = 0; t < tasks; t++) {
        using b = await beta(backend, vs, t, sums);
        const sel: KeyDigitSelector[] = selectors[t].map(({ prefix, mask, shift }) => ({ prefix, mask, shift }));
        const c = await backend.countKeyDigits(b, sel);
        for (let i = 0; i < 512; i++) counts[t][i] += c[i];
      }
    });
    for (let t = 0; t < tasks; t++) {
      selectors[t].forEach((s, i) => {
        const [d, rank] = digitFromTop(counts[t], 256 * i, s.rank);
        s.prefix = (s.prefix | (d << s.shift)) >>> 0;
        s.mask = (s.mask | (0xff << s.shift)) >>> 0;
        s.rank = rank;
        s.shift -= 8;
      });
    }
  }
  const asFloat = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0];
  return {
    ...sums,
    thresholds: selectors.map((s) => asFloat(s[0].prefix)),
    maxima: selectors.map((s) => asFloat(s[1].prefix)),
  };
}

export const pcb: MethodDescriptor<PcbState> = {
  name: 'pcb',
  prettyName: 'PCB merging',
  help: 'Parameter competition balancing: entries scored within and across tasks over the whole model, the top fraction kept and weighted',
  referenceUrl: 'https://arxiv.org/abs/2410.02396',
  params: [
    {
      name: 'density',
      kind: 'number',
      help: "Fraction of each task's entries kept (ranked by their balanced score over the whole model)",
      default: 0.2,
      min: 0,
      max: 1,
      softMin: 0.05,
      softMax: 1,
    },
    {
      name: 'lambda',
      kind: 'number',
      help: 'Scale of the merged task vector before it is added to the base',
      default: 1,
      softMin: 0,
      softMax: 2,
    },
  ],
  perModelParams: [],
  base: 'required',
  minModels: 1,
  prepare,
  async merge(ctx) {
    const { backend } = ctx;
    const reader = new ParamReader('pcb', ctx.tensorName);
    const base = requireBase(ctx, 'pcb');
    if (nonBaseModels(ctx).length === 0) return copyOf(backend, base);
    const state = ctx.prepared;
    if (!state || state.tasks === 0) throw reader.error('the engine did not run the whole-model passes (prepare) first');
    const lambda = reader.number(ctx.params, 'lambda');
    using scope = new TensorScope(backend);
    const vs = scope.addAll(await taskVectors(backend, base, nonBaseModels(ctx).map((m) => m.tensor)));
    let num: Tensor | undefined;
    let den: Tensor | undefined;
    for (let t = 0; t < vs.length; t++) {
      const b = scope.add(await beta(backend, vs, t, state));
      const theta = state.thresholds[t];
      const top = state.maxima[t];
      let c: Tensor;
      if (top > theta) {
        c = scope.add(await backend.rampAbove(b, theta, 1 / (top - theta)));
      } else {
        // Every entry is at most θ = M: weight 1 exactly where β = θ.
        const ones = scope.add(await backend.lincomb([{ x: b, coef: 0 }], 1));
        c = scope.add(await backend.absAtLeast(b, ones, theta));
      }
      scope.drop(b);
      const cv = scope.add(await backend.multiply(c, vs[t]));
      const nextNum = scope.add(await backend.lincomb(num ? [{ x: num, coef: 1 }, { x: cv, coef: 1 }] : [{ x: cv, coef: 1 }]));
      const nextDen = scope.add(await backend.lincomb(den ? [{ x: den, coef: 1 }, { x: c, coef: 1 }] : [{ x: c, coef: 1 }]));
      for (const old of [num, den, cv, c]) if (old) scope.drop(old);
      num = nextNum;
      den = nextDen;
    }
    const mixed = scope.add(await backend.divideAtLeast(num!, den!, 1e-12));
    return await backend.lincomb([
      { x: base, coef: 1 },
      { x: mixed, coef: lambda },
    ]);
  },
};

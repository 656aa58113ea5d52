/**
 * Scoring (src/gpu/model/eval.ts): task sets, per-skill exact match (teacher-forced) against real
 * greedy decoding, answer loss against log-probabilities from the logits, text perplexity through the
 * tokenizer, and evaluateModel on a merge kept in memory.
 */
import { describe, expect, it } from 'vitest';
import { parseRecipe } from '../../core/recipe/parse.ts';
import { CpuBackend } from '../cpu-backend.ts';
import { methodLookup } from '../methods/index.ts';
import { CausalLM } from './causal-lm.ts';
import { evaluateModel, exampleTokens, parseTaskSet, scoreTasks, textPerplexity, type TaskSet } from './eval.ts';
import { mergeInMemory } from './in-memory-merge.ts';
import { CHAR_VOCAB, tinyModel } from './testing.testutil.ts';
import { loadTokenizer } from './tokenizer.ts';

const SPEC = { vocab: CHAR_VOCAB.length, tokenizer: true, hidden: 32, intermediate: 48, layers: 2, heads: 4, kvHeads: 2, seed: 21 } as const;

describe('task sets', () => {
  it('reads {prompt, answer} objects and [prompt, answer] pairs', () => {
    const t = parseTaskSet({ skills: [{ name: 'add', expert: 'expert-1', examples: [{ prompt: '1+1=', answer: '2' }] }, { name: 'rev', examples: [['rev:ab=', 'ba']] }] }, 'tasks.json');
    expect(t.skills).toEqual([
      { name: 'add', expert: 'expert-1', examples: [{ prompt: '1+1=', answer: '2' }] },
      { name: 'rev', examples: [{ prompt: 'rev:ab=', answer: 'ba' }] },
    ]);
  });

  it('names the file and the problem', () => {
    expect(() => parseTaskSet({}, 'x.json')).toThrow(/x.json: expected \{"skills": \[...\]\}/);
    expect(() => parseTaskSet({ skills: [{ name: 'a', examples: [] }] }, 'x.json')).toThrow(/skill a has no examples/);
    expect(() => parseTaskSet({ skills: [{ name: 'a', examples: [{ prompt: 1 }] }] }, 'x.json')).toThrow(/skill a, example 0: expected \{prompt, answer\} strings/);
    expect(() => parseTaskSet({ skills: [{ name: 'a', examples: [['p', 'a']] }, { name: 'a', examples: [['p', 'a']] }] }, 'x.json')).toThrow(/skill a is listed twice/);
  });
});

describe('scoreTasks', () => {
  it('exact match = greedy decoding up to <eos>; loss = mean answer-token NLL per example, then over examples', async () => {
    const source = await tinyModel(SPEC);
    const tok = await loadTokenizer(source.tree);
    const model = await CausalLM.load(source, new CpuBackend());
    const eos = tok.eosId!;
    expect(eos).toBe(2);
    expect(tok.encode('12+34=')).toEqual([1, 5, 6, 40, 7, 8, 41]);
    // Answers the model gets right: its own greedy continuations that end in <eos> (random weights
    // end a few of 120 prompts); and answers it gets wrong: continuations with a changed character.
    const prompts = Array.from({ length: 120 }, (_, i) => `${i % 37}+${(i * 7) % 23}=`);
    const byLength = new Map<number, string[]>();
    for (const p of prompts) byLength.set(tok.encode(p).length, [...(byLength.get(tok.encode(p).length) ?? []), p]);
    const right: { prompt: string; answer: string }[] = [];
    const wrong: { prompt: string; answer: string }[] = [];
    for (const group of byLength.values()) {
      const outs = await model.generate(group.map((p) => tok.encode(p)), { maxNewTokens: 4, stop: [eos] });
      outs.forEach((out, i) => {
        const text = tok.decode(out.filter((t) => t >= 4));
        if (out.at(-1) === eos && out.length > 1 && out.slice(0, -1).every((t) => t >= 4)) right.push({ prompt: group[i], answer: text });
        else if (wrong.length < 12) wrong.push({ prompt: group[i], answer: (text[0] === '7' ? '8' : '7') + text.slice(1) });
      });
    }
    expect(right.length, 'some greedy continuations end in <eos>').toBeGreaterThan(1);
    const tasks: TaskSet = { skills: [{ name: 'mixed', examples: [...right, ...wrong] }, { name: 'right', examples: right }] };
    const [mixed, allRight] = await scoreTasks(model, tok, tasks);
    expect(mixed.examples).toBe(right.length + wrong.length);
    expect(mixed.accuracy).toBeCloseTo(right.length / (right.length + wrong.length), 12);
    expect(allRight.accuracy).toBe(1);
    // The loss from the forward pass's logits, example by example.
    let sum = 0;
    for (const e of right) {
      const { context, continuation } = exampleTokens(tok, eos, e);
      const seq = [...context, ...continuation];
      const { logits } = await model.forward([seq]);
      const l = await model.backend.read(logits);
      const V = model.config.vocabSize;
      let nll = 0;
      continuation.forEach((t, k) => {
        const row = l.subarray((context.length - 1 + k) * V, (context.length + k) * V);
        const m = Math.max(...row);
        nll -= row[t] - m - Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
      });
      sum += nll / continuation.length;
    }
    expect(allRight.meanLoss).toBeCloseTo(sum / right.length, 4);
    model[Symbol.dispose]();
  });

  it('perplexity of a text is the model\'s over its tokens (BOS first), and a shuffled text scores differently', async () => {
    const source = await tinyModel(SPEC);
    const tok = await loadTokenizer(source.tree);
    const model = await CausalLM.load(source, new CpuBackend());
    const text = 'copy:abc=abc12+34=46rev:hello=olleh';
    const p = await textPerplexity(model, tok, text, { window: 16, stride: 8 });
    expect(p.tokens).toBe(text.length); // BOS + one token per character, all but the first predicted
    const direct = await model.perplexity([1, ...tok.encode(text, { specialTokens: false })], { window: 16, stride: 8 });
    expect(p.perplexity).toBe(direct.perplexity);
    const other = await textPerplexity(model, tok, [...text].reverse().join(''), { window: 16, stride: 8 });
    expect(other.perplexity).not.toBeCloseTo(p.perplexity, 3);
    model[Symbol.dispose]();
  });
});

describe('evaluateModel on a merge in memory', () => {
  it('scores the merged weights (not the base\'s), with the base\'s tokenizer', async () => {
    const base = await tinyModel(SPEC, 'base');
    const expert = await tinyModel({ ...SPEC, delta: { seed: 5, scale: 0.3 } }, 'expert');
    const recipe = parseRecipe('models:\n  - model: expert\n    parameters: {weight: 1}\nmerge_method: task_arithmetic\nbase_model: base\ndtype: float32\n', methodLookup, { file: 'r.yml' });
    const backend = new CpuBackend();
    const merged = await mergeInMemory({ recipe, sources: new Map([['base', base], ['expert', expert]]), backend }, 'merge');
    expect([...(await merged.tree.list())].sort()).toContain('tokenizer.json');
    const tasks: TaskSet = { skills: [{ name: 'add', examples: [{ prompt: '1+2=', answer: '3' }, { prompt: '40+2=', answer: '42' }] }] };
    const text = 'sort:cba=abc';
    const [m, e, b] = await Promise.all([merged, expert, base].map((s) => evaluateModel(s, backend, { tasks, text })));
    // task arithmetic with weight 1 = the expert itself up to f32 rounding of base + (expert − base).
    expect(m.skills![0].accuracy).toBe(e.skills![0].accuracy);
    expect(m.skills![0].meanLoss).toBeCloseTo(e.skills![0].meanLoss, 4);
    expect(m.skills![0].meanLoss).not.toBeCloseTo(b.skills![0].meanLoss, 2);
    expect(Math.abs(m.perplexity!.meanNll - e.perplexity!.meanNll)).toBeLessThan(1e-5);
    expect(Math.abs(m.perplexity!.meanNll - b.perplexity!.meanNll)).toBeGreaterThan(1e-2);
    expect(m.model).toBe('merge');
    expect(backend.liveTensors).toBe(0);
  });
});

/**
 * Scoring a model: skills (held-out prompt → answer pairs, e.g. the demo family's tasks.json) and the
 * perplexity of a text, with the model's own tokenizer. The scores are those of
 * scripts/demo-family/train.py: per skill, exact-match accuracy of the greedy answer (up to EOS)
 * and the mean answer loss (nats per answer token, EOS included, averaged per example, then over
 * examples).
 *
 * Exact match is computed by teacher forcing, in the same forward pass as the loss: greedy decoding
 * reproduces answer + EOS exactly if and only if every one of those tokens is the argmax of its row
 * when the correct prefix is fed (ties broken alike); causal-lm.test.ts and eval.test.ts check this
 * against real greedy decoding.
 */
import type { FileTree, ModelSource } from '../../core/source.ts';
import type { Backend } from '../backend.ts';
import { CausalLM, type CausalLMOptions, type PerplexityResult, type RunOptions } from './causal-lm.ts';
import { loadTokenizer, type TextTokenizer } from './tokenizer.ts';

export interface SkillExample {
  prompt: string;
  answer: string;
}

export interface Skill {
  name: string;
  description?: string;
  /** The model folder trained for this skill, if the task set names one (demo family: "expert-1"). */
  expert?: string;
  examples: SkillExample[];
}

export interface TaskSet {
  skills: Skill[];
}

export interface SkillScore {
  skill: string;
  examples: number;
  /** Share of examples whose greedy answer is exactly right, in [0, 1]. */
  accuracy: number;
  /** Mean over examples of the mean negative log-likelihood per answer token (EOS included). */
  meanLoss: number;
}

export class TaskSetError extends Error {
  constructor(where: string, reason: string) {
    super(`${where}: ${reason}`);
    this.name = 'TaskSetError';
  }
}

/** A task set from JSON: `{skills: [{name, description?, expert?, examples: [{prompt, answer}] | [[prompt, answer]]}]}`. */
export function parseTaskSet(json: unknown, where: string): TaskSet {
  const doc = json as { skills?: unknown };
  if (!doc || typeof doc !== 'object' || !Array.isArray(doc.skills) || doc.skills.length === 0) {
    throw new TaskSetError(where, 'expected {"skills": [...]} with at least one skill');
  }
  const names = new Set<string>();
  const skills = doc.skills.map((raw, i) => {
    const s = raw as Record<string, unknown>;
    const name = s?.name;
    if (typeof name !== 'string' || name === '') throw new TaskSetError(where, `skill ${i} has no name`);
    if (names.has(name)) throw new TaskSetError(where, `skill ${name} is listed twice`);
    names.add(name);
    const list = s.examples;
    if (!Array.isArray(list) || list.length === 0) throw new TaskSetError(where, `skill ${name} has no examples`);
    const examples = list.map((e, k) => {
      const [prompt, answer] = Array.isArray(e) ? e : [(e as SkillExample)?.prompt, (e as SkillExample)?.answer];
      if (typeof prompt !== 'string' || typeof answer !== 'string') {
        throw new TaskSetError(where, `skill ${name}, example ${k}: expected {prompt, answer} strings`);
      }
      return { prompt, answer };
    });
    return {
      name,
      ...(typeof s.description === 'string' ? { description: s.description } : {}),
      ...(typeof s.expert === 'string' ? { expert: s.expert } : {}),
      examples,
    };
  });
  return { skills };
}

/** The first `n` examples of each skill (the studio's quick scoreboard; `merge-studio eval --examples n`). */
export function firstExamples(tasks: TaskSet, n: number): TaskSet {
  if (!(Number.isInteger(n) && n >= 1)) throw new TaskSetError('examples per skill', `must be a positive integer, not ${n}`);
  return { skills: tasks.skills.map((s) => ({ ...s, examples: s.examples.slice(0, n) })) };
}

/** Read a task set file from a tree (e.g. tasks.json beside the demo models). */
export async function readTaskSet(tree: FileTree, path: string, signal?: AbortSignal): Promise<TaskSet> {
  const src = await tree.open(path, signal);
  if (!src) throw new TaskSetError(`${tree.name}/${path}`, 'not found');
  const text = new TextDecoder().decode(await src.read(0, src.size, signal));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new TaskSetError(`${tree.name}/${path}`, `not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  return parseTaskSet(json, `${tree.name}/${path}`);
}

/** The end-of-sequence token an answer ends with: the tokenizer's eos_token, else config.json's first. */
export function eosOf(model: CausalLM, tokenizer: TextTokenizer): number {
  const eos = tokenizer.eosId ?? model.config.eosTokenIds[0];
  if (eos === undefined) throw new TaskSetError(model.id, 'neither tokenizer_config.json nor config.json names an end-of-sequence token');
  return eos;
}

/** Token ids of one example: the prompt as the tokenizer encodes a text (BOS included), answer + EOS. */
export function exampleTokens(tokenizer: TextTokenizer, eos: number, e: SkillExample): { context: number[]; continuation: number[] } {
  return { context: tokenizer.encode(e.prompt), continuation: [...tokenizer.encode(e.answer, { specialTokens: false }), eos] };
}

/** Accuracy and answer loss per skill, in the task set's order. Progress counts examples. */
export async function scoreTasks(model: CausalLM, tokenizer: TextTokenizer, tasks: TaskSet, opts: RunOptions = {}): Promise<SkillScore[]> {
  const eos = eosOf(model, tokenizer);
  const items = tasks.skills.flatMap((s) => s.examples.map((e) => exampleTokens(tokenizer, eos, e)));
  const scores = await model.scoreContinuations(items, opts);
  const out: SkillScore[] = [];
  let at = 0;
  for (const s of tasks.skills) {
    const mine = scores.slice(at, at + s.examples.length);
    at += s.examples.length;
    const losses = mine.map((r) => -r.logProb / r.tokenLogProbs.length);
    out.push({
      skill: s.name,
      examples: mine.length,
      accuracy: mine.filter((r) => r.greedy).length / mine.length,
      meanLoss: losses.reduce((a, b) => a + b, 0) / losses.length,
    });
  }
  return out;
}

/** Perplexity of a text tokenized as the model reads text (with BOS when its tokenizer adds one). */
export function textPerplexity(model: CausalLM, tokenizer: TextTokenizer, text: string, opts: RunOptions & { window?: number; stride?: number } = {}) {
  return model.perplexity(tokenizer.encode(text), opts);
}

export interface EvalReport {
  /** The model's id (folder, or the merge). */
  model: string;
  backend: string;
  /** How the weights were held (see weights.ts). */
  residency: 'resident' | 'streamed';
  skills?: SkillScore[];
  perplexity?: PerplexityResult;
}

export interface EvaluateOptions extends RunOptions {
  tasks?: TaskSet;
  text?: string;
  window?: number;
  stride?: number;
  /** Weight budget and residency (CausalLMOptions). */
  model?: CausalLMOptions;
}

/**
 * Load a model, score it on `tasks` and/or the perplexity of `text`, and release it: the one path
 * the CLI (`merge-studio eval`) and the studio's worker both take, so they print the same numbers.
 * Progress: examples scored, then predicted tokens of the text.
 */
export async function evaluateModel(source: ModelSource, backend: Backend, opts: EvaluateOptions): Promise<EvalReport> {
  const tokenizer = await loadTokenizer(source.tree, opts.signal);
  using model = await CausalLM.load(source, backend, { signal: opts.signal, ...opts.model });
  const report: EvalReport = { model: source.id, backend: backend.description, residency: model.residency };
  if (opts.tasks) report.skills = await scoreTasks(model, tokenizer, opts.tasks, opts);
  if (opts.text !== undefined) report.perplexity = await textPerplexity(model, tokenizer, opts.text, opts);
  return report;
}

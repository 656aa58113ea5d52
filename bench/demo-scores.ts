/**
 * The demo family's scores, method by method (README.md's table): the inputs, then one merge per
 * method with the parameters below, each merged in memory by the engine and scored by evaluateModel
 * on every held-out example of public/demo/tasks.json — the numbers `merge-studio eval RECIPE --tasks
 * demo` prints. Markdown on stdout; `--json FILE` for the raw reports.
 *
 *   node bin/run-ts.mjs bench/demo-scores.ts [--backend cpu-reference|cpu|gpu] [--only ties,tsv] [--json FILE]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseRecipe } from '../src/core/recipe/parse.ts';
import type { ModelSource } from '../src/core/source.ts';
import { createBackend, isBackendKind } from '../src/cli/backend.ts';
import { openLocalModel } from '../src/cli/open-models.ts';
import { methodLookup } from '../src/gpu/methods/index.ts';
import { evaluateModel, parseTaskSet, type EvalReport } from '../src/gpu/model/eval.ts';
import { mergeInMemory } from '../src/gpu/model/in-memory-merge.ts';

process.env.VK_ICD_FILENAMES ??= '/usr/lib/chromium/vk_swiftshader_icd.json';

const { values } = parseArgs({ options: { backend: { type: 'string', default: 'cpu-reference' }, only: { type: 'string' }, json: { type: 'string' } } });
const DEMO = 'public/demo';
const index = JSON.parse(readFileSync(join(DEMO, 'index.json'), 'utf8')) as { models: { ref: string; name: string; folder: string }[]; recipe: string };
const tasks = parseTaskSet(JSON.parse(readFileSync(join(DEMO, 'tasks.json'), 'utf8')), 'tasks.json');
const experts = tasks.skills.map((s) => s.expert!);

/** models: each expert with `params` (a YAML flow map body), the base as base_model. */
const each = (method: string, params: string, globals = '', withBase = true) =>
  `models:\n${experts.map((e) => `  - model: ${e}\n    parameters: {${params}}\n`).join('')}merge_method: ${method}\n${globals}${withBase ? 'base_model: ./demo/base\n' : ''}dtype: float32\nout_dtype: bfloat16\n`;

const RECIPES: [string, string][] = [
  ['ties (the studio default recipe)', index.recipe],
  ['linear (experts, weight 1/3 each)', each('linear', 'weight: 0.3333', '', false)],
  ['task_arithmetic (weight 0.5 each)', each('task_arithmetic', 'weight: 0.5')],
  ['task_arithmetic (weight 1 each)', each('task_arithmetic', 'weight: 1')],
  ['ties (weight 1, density 0.5)', each('ties', 'weight: 1, density: 0.5')],
  ['dare_ties (weight 1, density 0.5)', each('dare_ties', 'weight: 1, density: 0.5')],
  ['dare_linear (weight 0.5, density 0.5)', each('dare_linear', 'weight: 0.5, density: 0.5')],
  ['breadcrumbs (weight 0.5, density 0.9, gamma 0.01)', each('breadcrumbs', 'weight: 0.5, density: 0.9, gamma: 0.01')],
  ['della (weight 1, density 0.5, epsilon 0.1)', each('della', 'weight: 1, density: 0.5, epsilon: 0.1')],
  ['consensus_ta (k 2, lambda 0.5)', each('consensus_ta', 'weight: 1', 'parameters: {k: 2, lambda: 0.5}\n')],
  ['model_stock', each('model_stock', '')],
  ['karcher (experts)', each('karcher', '', '', false)],
  ['multislerp (weight 1 each)', each('multislerp', 'weight: 1')],
  ['tsv (alpha 1)', each('tsv', '', 'parameters: {alpha: 1}\n')],
  ['iso_c (alpha 1)', each('iso_c', '', 'parameters: {alpha: 1}\n')],
  ['sce (weight 1, select_topk 0.5)', each('sce', 'weight: 1', 'parameters: {select_topk: 0.5}\n')],
  ['ram', each('ram', '')],
];

const backendKind = values.backend;
if (!isBackendKind(backendKind)) throw new Error(`unknown backend ${backendKind}`);
const backend = await createBackend(backendKind);
const sources = new Map<string, ModelSource>();
for (const m of index.models) sources.set(m.ref, await openLocalModel(join(DEMO, m.folder)));
const only = values.only ? new Set(values.only.split(',')) : null;
const rows: { name: string; report: EvalReport | null; error?: string }[] = [];
for (const m of index.models) rows.push({ name: m.name, report: await evaluateModel(sources.get(m.ref)!, backend, { tasks }) });
for (const [name, yaml] of RECIPES) {
  if (only && !only.has(name.split(' ')[0])) continue;
  try {
    const recipe = parseRecipe(yaml, methodLookup, { file: `${name}.yml` });
    const merged = await mergeInMemory({ recipe, sources, backend }, name);
    rows.push({ name, report: await evaluateModel(merged, backend, { tasks }) });
  } catch (err) {
    rows.push({ name, report: null, error: err instanceof Error ? err.message : String(err) });
  }
  process.stderr.write(`${name}: done\n`);
}
backend.destroy();

const skills = tasks.skills.map((s) => s.name);
const baseScores = rows[0].report!.skills!;
const lines = [
  `| model | ${skills.map((s) => `${s}: exact match | ${s}: answer loss`).join(' | ')} | mean exact match | above the base on every skill |`,
  `|---|${skills.map(() => '---|---|').join('')}---|---|`,
];
for (const r of rows) {
  if (!r.report) {
    lines.push(`| ${r.name} | ${r.error} |`);
    continue;
  }
  const sc = r.report.skills!;
  const mean = sc.reduce((a, s) => a + s.accuracy, 0) / sc.length;
  const above = sc.every((s, k) => s.accuracy > baseScores[k].accuracy);
  lines.push(`| ${r.name} | ${sc.map((s) => `${(100 * s.accuracy).toFixed(1)}% | ${s.meanLoss.toFixed(3)}`).join(' | ')} | ${(100 * mean).toFixed(1)}% | ${r === rows[0] ? '' : above ? 'yes' : 'no'} |`);
}
console.log(lines.join('\n'));
if (values.json) writeFileSync(values.json, JSON.stringify({ backend: backendKind, rows }, null, 2) + '\n');

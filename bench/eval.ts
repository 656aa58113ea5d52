/**
 * Scoring speed on the demo family (`node bin/run-ts.mjs bench/eval.ts`): per backend, the time to
 * score each input model once (what the studio's scoreboard does on its first run; later runs take
 * inputs from its cache) and the time of "a slider moved → merge in memory → scores of the merge"
 * (the scoreboard's update), with the first 16 examples per skill (the studio's default) and all of
 * them. Median of `--repeats` runs, each with different weights so nothing is cached.
 *
 *   node bin/run-ts.mjs bench/eval.ts [--demo public/demo] [--backends cpu-reference,cpu,gpu] [--repeats 3] [--json FILE]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseRecipe } from '../src/core/recipe/parse.ts';
import type { ModelSource } from '../src/core/source.ts';
import { createBackend, isBackendKind } from '../src/cli/backend.ts';
import { openLocalModel } from '../src/cli/open-models.ts';
import { methodLookup } from '../src/gpu/methods/index.ts';
import { evaluateModel, firstExamples, parseTaskSet, type TaskSet } from '../src/gpu/model/eval.ts';
import { mergeInMemory } from '../src/gpu/model/in-memory-merge.ts';

process.env.VK_ICD_FILENAMES ??= '/usr/lib/chromium/vk_swiftshader_icd.json';

const { values } = parseArgs({
  options: {
    demo: { type: 'string', default: 'public/demo' },
    backends: { type: 'string', default: 'cpu-reference,cpu,gpu' },
    repeats: { type: 'string', default: '3' },
    json: { type: 'string' },
  },
});
const demo = resolve(values.demo);
const repeats = Number(values.repeats);
const index = JSON.parse(readFileSync(join(demo, 'index.json'), 'utf8')) as { models: { ref: string; name: string; folder: string }[]; recipe: string };
const allTasks = parseTaskSet(JSON.parse(readFileSync(join(demo, 'tasks.json'), 'utf8')), 'tasks.json');
const sources = new Map<string, ModelSource>();
for (const m of index.models) sources.set(m.ref, await openLocalModel(join(demo, m.folder)));
const recipeText = index.recipe;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

interface Row {
  backend: string;
  device: string;
  examplesPerSkill: number;
  inputsSeconds: number[];
  updateSeconds: number;
  mergeSeconds: number;
}
const rows: Row[] = [];

for (const kind of values.backends.split(',')) {
  if (!isBackendKind(kind)) throw new Error(`unknown backend ${kind}`);
  const backend = await createBackend(kind);
  try {
    for (const n of [16, 0]) {
      const tasks: TaskSet = n > 0 ? firstExamples(allTasks, n) : allTasks;
      const inputsSeconds: number[] = [];
      for (const m of index.models) {
        const t0 = performance.now();
        await evaluateModel(sources.get(m.ref)!, backend, { tasks });
        inputsSeconds.push((performance.now() - t0) / 1000);
      }
      const updates: number[] = [];
      const merges: number[] = [];
      for (let r = 0; r < repeats; r++) {
        // A slider move: the first model's weight changes.
        const recipe = parseRecipe(recipeText.replace(/weight: ([\d.]+)/, (_m, w) => `weight: ${(Number(w) * (0.9 + 0.05 * r)).toFixed(3)}`), methodLookup, { file: 'index.json' });
        const t0 = performance.now();
        const merged = await mergeInMemory({ recipe, sources, backend }, 'merge');
        const t1 = performance.now();
        await evaluateModel(merged, backend, { tasks });
        updates.push((performance.now() - t0) / 1000);
        merges.push((t1 - t0) / 1000);
      }
      const row = { backend: kind, device: backend.description, examplesPerSkill: n > 0 ? n : allTasks.skills[0].examples.length, inputsSeconds, updateSeconds: median(updates), mergeSeconds: median(merges) };
      rows.push(row);
      console.log(
        `${kind.padEnd(14)} ${row.device.slice(0, 40).padEnd(40)} ${String(row.examplesPerSkill).padStart(3)} ex/skill  inputs ${inputsSeconds.map((s) => s.toFixed(2)).join(' / ')} s  update ${row.updateSeconds.toFixed(2)} s (merge ${row.mergeSeconds.toFixed(2)} s)`,
      );
    }
  } finally {
    backend.destroy();
  }
}

const out = { date: new Date().toISOString(), host: hostname(), cpus: cpus().length, cpuModel: cpus()[0]?.model, memory: totalmem(), recipe: recipeText, rows };
if (values.json) writeFileSync(values.json, JSON.stringify(out, null, 2) + '\n');

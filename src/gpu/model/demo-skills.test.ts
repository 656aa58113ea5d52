/**
 * The demo family's skills, measured (public/demo, tasks.json: every held-out example, CPU
 * reference): each expert scores clearly higher on its own skill than the base and the other experts
 * (at least 20 accuracy points, and a lower answer loss), and merges made by the engine — the
 * studio's default TIES recipe and task arithmetic at weight 0.5 per expert — score above the base on
 * every skill (add, sort and rev; train.py's Plan.merged_skills), in accuracy and in answer loss.
 * README.md's method-by-method table comes from bench/demo-scores.ts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openLocalModel } from '../../cli/open-models.ts';
import { parseRecipe } from '../../core/recipe/parse.ts';
import type { ModelSource } from '../../core/source.ts';
import { CpuBackend } from '../cpu-backend.ts';
import { methodLookup } from '../methods/index.ts';
import { evaluateModel, parseTaskSet, type SkillScore } from './eval.ts';
import { mergeInMemory } from './in-memory-merge.ts';

const DEMO = 'public/demo';
/** The skills the merges keep above the base (scripts/demo-family/train.py, Plan.merged_skills): all of them. */
const MERGED_SKILLS = ['add', 'sort', 'rev'];
const tasks = parseTaskSet(JSON.parse(readFileSync(join(DEMO, 'tasks.json'), 'utf8')), `${DEMO}/tasks.json`);

function table(rows: [string, SkillScore[]][]): string {
  const skills = rows[0][1].map((s) => s.skill);
  const head = `${'model'.padEnd(28)}${skills.map((s) => s.padStart(18)).join('')}`;
  return [head, ...rows.map(([name, sc]) => `${name.padEnd(28)}${sc.map((s) => `${(100 * s.accuracy).toFixed(1).padStart(7)}% ${s.meanLoss.toFixed(3).padStart(8)}`.padStart(18)).join('')}`)].join('\n');
}

describe('demo family: skills (all held-out examples, CPU reference)', () => {
  it('each expert beats the base and the other experts on its own skill; TA and TIES merges beat the base on add, sort and rev', { timeout: 1_800_000 }, async () => {
    const backend = new CpuBackend();
    const index = JSON.parse(readFileSync(join(DEMO, 'index.json'), 'utf8')) as { models: { ref: string; folder: string }[]; recipe: string };
    const sources = new Map<string, ModelSource>();
    for (const m of index.models) sources.set(m.ref, await openLocalModel(join(DEMO, m.folder)));
    const score = async (s: ModelSource) => (await evaluateModel(s, backend, { tasks })).skills!;
    const base = await score(sources.get('./demo/base')!);
    const experts = new Map<string, SkillScore[]>();
    for (const skill of tasks.skills) experts.set(skill.expert!, await score(sources.get(skill.expert!)!));

    // The studio's default recipe (TIES, index.json) and task arithmetic at weight 0.5 per expert.
    const merges: [string, string][] = [
      ['ties (the studio default)', index.recipe],
      [
        'task_arithmetic (weight 0.5 each)',
        `models:\n${tasks.skills.map((s) => `  - model: ${s.expert}\n    parameters: {weight: 0.5}\n`).join('')}merge_method: task_arithmetic\nbase_model: ./demo/base\ndtype: float32\nout_dtype: bfloat16\n`,
      ],
    ];
    const mergeScores: [string, SkillScore[]][] = [];
    for (const [name, yaml] of merges) {
      const recipe = parseRecipe(yaml, methodLookup, { file: `${name}.yml` });
      mergeScores.push([name, await score(await mergeInMemory({ recipe, sources, backend }, name))]);
    }
    console.log(table([['base', base], ...[...experts].map(([n, s]) => [n, s] as [string, SkillScore[]]), ...mergeScores]));

    tasks.skills.forEach((skill, k) => {
      const own = experts.get(skill.expert!)![k];
      // "Clearly": at least 20 accuracy points above the base and every other expert, and a lower loss.
      expect(own.accuracy, `${skill.expert} on ${skill.name} vs base`).toBeGreaterThanOrEqual(base[k].accuracy + 0.2);
      expect(own.meanLoss).toBeLessThan(base[k].meanLoss);
      for (const [name, other] of experts) {
        if (name === skill.expert) continue;
        expect(own.accuracy, `${skill.expert} vs ${name} on ${skill.name}`).toBeGreaterThanOrEqual(other[k].accuracy + 0.2);
        expect(own.meanLoss).toBeLessThan(other[k].meanLoss);
      }
    });
    expect(tasks.skills.map((s) => s.name)).toEqual(MERGED_SKILLS);
    for (const [name, sc] of mergeScores) {
      sc.forEach((s, k) => {
        expect(s.accuracy, `${name} on ${s.skill} vs base`).toBeGreaterThan(base[k].accuracy);
        expect(s.meanLoss, `${name} on ${s.skill} vs base`).toBeLessThan(base[k].meanLoss);
      });
    }
  });
});

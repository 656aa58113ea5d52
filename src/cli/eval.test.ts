/**
 * `merge-studio eval`: a model folder and a recipe merged in memory, on tasks and on a text, print
 * and write the numbers the library computes (evaluateModel on the same inputs), on the CPU
 * reference and the GPU; bad input ends with one line.
 */
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRecipe } from '../core/recipe/parse.ts';
import { CpuBackend } from '../gpu/cpu-backend.ts';
import { methodLookup } from '../gpu/methods/index.ts';
import { evaluateModel, parseTaskSet, type EvalReport } from '../gpu/model/eval.ts';
import { mergeInMemory } from '../gpu/model/in-memory-merge.ts';
import { CHAR_VOCAB, tinyModelFiles } from '../gpu/model/testing.testutil.ts';
import { cli } from './cli.testutil.ts';
import { openLocalModel } from './open-models.ts';

const work = mkdtempSync(join(tmpdir(), 'merge-studio-eval-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const SPEC = { vocab: CHAR_VOCAB.length, tokenizer: true, hidden: 32, intermediate: 48, layers: 2, heads: 4, kvHeads: 2, seed: 9, dtype: 'BF16' } as const;
for (const [name, spec] of [
  ['base', SPEC],
  ['expert-a', { ...SPEC, delta: { seed: 1, scale: 0.2 } }],
  ['expert-b', { ...SPEC, delta: { seed: 2, scale: 0.2 } }],
] as const) {
  mkdirSync(join(work, name));
  for (const [file, bytes] of Object.entries(tinyModelFiles(spec))) writeFileSync(join(work, name, file), bytes);
}
const TASKS = { skills: [{ name: 'add', examples: [['1+2=', '3'], ['10+20=', '30'], ['7+7=', '14']] }, { name: 'rev', examples: [{ prompt: 'rev:abc=', answer: 'cba' }] }] };
writeFileSync(join(work, 'tasks.json'), JSON.stringify(TASKS));
writeFileSync(join(work, 'text.txt'), 'copy:abc=abc 12+34=46 sort:cab=abc\n');
const RECIPE = `models:
  - model: expert-a
    parameters: {weight: 0.7, density: 0.6}
  - model: expert-b
    parameters: {weight: 0.5, density: 0.8}
merge_method: ties
base_model: base
dtype: float32
out_dtype: bfloat16
`;
writeFileSync(join(work, 'ties.yml'), RECIPE);

function withoutBackend(r: EvalReport) {
  const { backend: _backend, ...rest } = r;
  return rest;
}

describe('merge-studio eval', () => {
  it('a model folder: the table and the JSON are the library\'s numbers', async () => {
    const json = join(work, 'base.json');
    const { code, stdout, stderr } = await cli(['eval', join(work, 'base'), '--tasks', join(work, 'tasks.json'), '--text', join(work, 'text.txt'), '--json', json, '--backend', 'cpu-reference', '--window', '16', '--stride', '8']);
    expect(stderr).not.toMatch(/error/);
    expect(code).toBe(0);
    const report = JSON.parse(readFileSync(json, 'utf8')) as EvalReport;
    const want = await evaluateModel(await openLocalModel(join(work, 'base')), new CpuBackend(), {
      tasks: parseTaskSet(TASKS, 'tasks.json'),
      text: readFileSync(join(work, 'text.txt'), 'utf8'),
      window: 16,
      stride: 8,
    });
    expect(withoutBackend(report)).toEqual(withoutBackend(want));
    expect(report.skills!.map((s) => s.examples)).toEqual([3, 1]);
    for (const s of want.skills!) expect(stdout).toContain(`${(100 * s.accuracy).toFixed(1)}%  ${s.meanLoss.toFixed(4).padStart(11)}`);
    expect(stdout).toContain(`perplexity: ${want.perplexity!.perplexity.toFixed(4)}`);

    const firstTwo = join(work, 'base-2.json');
    expect((await cli(['eval', join(work, 'base'), '--tasks', join(work, 'tasks.json'), '--examples', '2', '--json', firstTwo, '--backend', 'cpu-reference', '--quiet'])).code).toBe(0);
    const two = JSON.parse(readFileSync(firstTwo, 'utf8')) as EvalReport;
    expect(two.skills!.map((s) => s.examples)).toEqual([2, 1]);
    const wantTwo = await evaluateModel(await openLocalModel(join(work, 'base')), new CpuBackend(), { tasks: { skills: [{ name: 'add', examples: [{ prompt: '1+2=', answer: '3' }, { prompt: '10+20=', answer: '30' }] }, { name: 'rev', examples: [{ prompt: 'rev:abc=', answer: 'cba' }] }] } });
    expect(two.skills).toEqual(wantTwo.skills);
  });

  it('a recipe: merged in memory (nothing written), scored like the library\'s merge; the GPU agrees', async () => {
    const before = readdirSync(work).sort();
    const json = join(work, 'merge.json');
    const { code, stderr } = await cli(['eval', join(work, 'ties.yml'), '--tasks', join(work, 'tasks.json'), '--json', json, '--backend', 'cpu-reference']);
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/merging .*ties.yml \(ties, 2 models\) in memory/);
    expect(readdirSync(work).sort()).toEqual([...before, 'merge.json'].sort());
    const report = JSON.parse(readFileSync(json, 'utf8')) as EvalReport;
    const recipe = parseRecipe(RECIPE, methodLookup, { file: 'ties.yml' });
    const sources = new Map(await Promise.all(['base', 'expert-a', 'expert-b'].map(async (n) => [n, await openLocalModel(join(work, n))] as const)));
    const backend = new CpuBackend();
    const merged = await mergeInMemory({ recipe, sources, backend }, 'm');
    const want = await evaluateModel(merged, backend, { tasks: parseTaskSet(TASKS, 'tasks.json') });
    expect(report.skills).toEqual(want.skills);
    const base = await evaluateModel(sources.get('base')!, backend, { tasks: parseTaskSet(TASKS, 'tasks.json') });
    expect(report.skills![0].meanLoss).not.toBeCloseTo(base.skills![0].meanLoss, 3);

    const gpuJson = join(work, 'merge-gpu.json');
    const gpu = await cli(['eval', join(work, 'ties.yml'), '--tasks', join(work, 'tasks.json'), '--json', gpuJson, '--backend', 'gpu', '--quiet']);
    expect(gpu.code, gpu.stderr).toBe(0);
    const onGpu = JSON.parse(readFileSync(gpuJson, 'utf8')) as EvalReport;
    onGpu.skills!.forEach((s, i) => {
      expect(s.accuracy).toBe(want.skills![i].accuracy);
      expect(s.meanLoss).toBeCloseTo(want.skills![i].meanLoss, 4);
    });
  });

  it('one line for bad input', async () => {
    expect((await cli(['eval', join(work, 'base')])).stderr).toMatch(/^merge-studio: error: eval needs --tasks demo\|FILE and\/or --text FILE\n$/);
    const missing = await cli(['eval', join(work, 'nope'), '--tasks', join(work, 'tasks.json'), '--backend', 'cpu-reference']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nope.*cannot open \(ENOENT\)/);
    writeFileSync(join(work, 'bad-tasks.json'), '{"skills": []}');
    const bad = await cli(['eval', join(work, 'base'), '--tasks', join(work, 'bad-tasks.json'), '--backend', 'cpu-reference']);
    expect(bad.stderr).toMatch(/bad-tasks.json: expected \{"skills": \[...\]\} with at least one skill/);
    const tooBig = await cli(['eval', join(work, 'base'), '--tasks', join(work, 'tasks.json'), '--backend', 'cpu-reference', '--weight-budget', '1KB']);
    expect(tooBig.stderr).toMatch(/base is too large to run here: its f32 weights take 73.1 kB, .* the limit is 1.00 kB\n$/);
  });
});

/** `merge-studio analyze`: the JSON it writes, its summary, and its usage errors. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRecipe } from '../core/recipe/parse.ts';
import { analyzeMerge } from '../gpu/analysis/analyze.ts';
import { ReferenceAnalysisOps } from '../gpu/analysis/reference-ops.ts';
import type { AnalysisResult } from '../gpu/analysis/types.ts';
import { CpuBackend } from '../gpu/cpu-backend.ts';
import { methodLookup } from '../gpu/methods/index.ts';
import { cli } from './cli.testutil.ts';
import { openModelsForRecipe } from './open-models.ts';

const MODELS = resolve(__dirname, '../../tests/fixtures/golden/models/llama-f32');
const work = mkdtempSync(join(tmpdir(), 'merge-studio-analyze-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const RECIPE = `models:
  - model: ${MODELS}/expert1
    parameters: {weight: 1, density: 0.5}
  - model: ${MODELS}/expert2
    parameters: {weight: 0.5, density: [1, 0.3]}
  - model: ${MODELS}/expert3
    parameters: {weight: 0.8, density: 0.7}
merge_method: dare_ties
base_model: ${MODELS}/base
`;
const recipePath = join(work, 'dare.yml');
writeFileSync(recipePath, RECIPE);

/** The result without what differs from run to run (time) or by device (its name). */
function comparable(r: AnalysisResult) {
  return { ...r, seconds: 0, backend: '' };
}

describe('merge-studio analyze', () => {
  it('writes the same numbers as the analysis API, with a summary on stdout and progress on stderr', async () => {
    const out = join(work, 'analysis.json');
    const { code, stdout, stderr } = await cli(['analyze', recipePath, '--json', out, '--backend', 'cpu', '--seed', '7']);
    expect(stderr).not.toMatch(/error/);
    expect(code).toBe(0);
    const written = JSON.parse(readFileSync(out, 'utf8')) as AnalysisResult;
    expect(written.format).toBe('merge-studio-analysis');
    expect(written.models).toEqual([`${MODELS}/expert1`, `${MODELS}/expert2`, `${MODELS}/expert3`]);
    expect(written.recipeStats!.seed).toBe(7);

    const recipe = parseRecipe(RECIPE, methodLookup, { file: recipePath });
    const direct = await analyzeMerge({
      recipe,
      sources: await openModelsForRecipe(recipe, recipePath),
      ops: new ReferenceAnalysisOps(new CpuBackend()),
      options: { seed: 7 },
    });
    expect(comparable(written)).toEqual(JSON.parse(JSON.stringify(comparable(direct))));

    expect(stderr).toMatch(/39\/39 tensors/);
    expect(stderr).toContain(`wrote ${out}`);
    expect(stdout).toContain('cosine similarity (whole model)');
    const w = written.modelStats!.whole;
    expect(stdout).toContain(w.cosine[1].toFixed(4));
    expect(stdout).toMatch(/share of merge/);
    expect(stdout).toContain(`after dare_ties's trimming: ${(100 * written.recipeStats!.whole.conflictAll!).toFixed(1)}%`);
  });

  it('--json - writes only the JSON to stdout; the GPU backend gives the same counts', async () => {
    const cpu = await cli(['analyze', recipePath, '--json', '-', '--backend', 'cpu', '--quiet']);
    const gpu = await cli(['analyze', recipePath, '--json', '-', '--backend', 'gpu', '--quiet', '--chunk-elements', '4096']);
    expect(cpu.code).toBe(0);
    expect(gpu.code).toBe(0);
    expect(cpu.stderr).toBe('');
    const a = JSON.parse(cpu.stdout) as AnalysisResult;
    const b = JSON.parse(gpu.stdout) as AnalysisResult;
    expect(b.backend).not.toBe(a.backend);
    expect(b.modelStats!.whole.signs).toEqual(a.modelStats!.whole.signs);
    expect(b.recipeStats!.whole.kept).toEqual(a.recipeStats!.whole.kept);
    b.modelStats!.whole.cosine.forEach((c, k) => expect(Math.abs(c - a.modelStats!.whole.cosine[k])).toBeLessThanOrEqual(1e-5));
  });

  it('reports bad usage with exit code 2 and one line', async () => {
    const none = await cli(['analyze']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/analyze takes one recipe file/);
    const backend = await cli(['analyze', recipePath, '--backend', 'tpu']);
    expect(backend.code).toBe(2);
    expect(backend.stderr).toMatch(/--backend must be one of auto, gpu, cpu, cpu-reference/);
    const option = await cli(['analyze', recipePath, '--jsn', 'x']);
    expect(option.code).toBe(2);
    expect(option.stderr.trim().split('\n')).toHaveLength(1);
    const missing = await cli(['analyze', join(work, 'nope.yml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read recipe .*nope\.yml/);
    const help = await cli(['help']);
    expect(help.stdout).toMatch(/merge-studio analyze RECIPE\.yml/);
  });
});

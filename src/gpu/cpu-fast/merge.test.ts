/**
 * Whole merges through the CLI: the fast CPU backend (`--backend cpu`, 2 threads) writes the same
 * bytes as the reference backend (`--backend cpu-reference`) for every golden case, and for a
 * recipe of each method on the golden BF16 models (whose default compute dtype makes the task-vector
 * family round every step to BF16: the fused path with quantize nodes).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli } from '../../cli/cli.testutil.ts';

const GOLDEN = resolve(__dirname, '../../../tests/fixtures/golden');
const BF16 = join(GOLDEN, 'models/llama-bf16');
const work = mkdtempSync(join(tmpdir(), 'merge-studio-fast-cpu-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Merge `recipe` on both CPU backends; returns the two model.safetensors files. */
async function both(name: string, recipe: string, extra: string[] = []): Promise<[Buffer, Buffer]> {
  const files: Buffer[] = [];
  for (const backend of ['cpu', 'cpu-reference']) {
    const out = join(work, `${name}-${backend}`);
    const { code, stdout, stderr } = await cli(['merge', recipe, '--out', out, '--quiet', '--backend', backend, '--seed', '5', ...extra]);
    expect(stdout + stderr, `${name} on ${backend}`).toBe('');
    expect(code).toBe(0);
    files.push(readFileSync(join(out, 'model.safetensors')));
  }
  return [files[0], files[1]];
}

function expectSameFile(got: Buffer, want: Buffer, what: string) {
  expect(got.length, what).toBe(want.length);
  const at = got.findIndex((b, i) => b !== want[i]);
  expect(at, `${what}: first differing byte`).toBe(-1);
}

describe('merges on the fast CPU backend = the reference backend, byte for byte', () => {
  const cases = readdirSync(join(GOLDEN, 'cases')).sort();

  it.each(cases)('golden case %s', async (name) => {
    const dir = join(GOLDEN, 'cases', name);
    const masks = join(dir, 'masks.safetensors');
    const [fast, ref] = await both(name, join(dir, 'recipe.yml'), existsSync(masks) ? ['--replay-masks', masks] : []);
    expectSameFile(fast, ref, name);
  });

  const experts = ['expert1', 'expert2', 'expert3'].map((e) => join(BF16, e));
  const base = join(BF16, 'base');
  const listed = (params: (i: number) => string) => experts.map((m, i) => `  - model: ${m}\n    parameters: {${params(i)}}\n`).join('');
  /** Recipes on the BF16 models (no dtype: the inputs' BF16 is the compute dtype). */
  const RECIPES: Record<string, string> = {
    linear: `models:\n${listed((i) => `weight: ${0.2 + 0.3 * i}`)}merge_method: linear\n`,
    task_arithmetic: `models:\n${listed((i) => `weight: ${0.5 - 0.3 * i}`)}merge_method: task_arithmetic\nbase_model: ${base}\nparameters: {lambda: 0.9}\n`,
    ties: `models:\n${listed((i) => `weight: ${1 - 0.25 * i}, density: ${0.3 + 0.2 * i}`)}merge_method: ties\nbase_model: ${base}\n`,
    dare_ties: `models:\n${listed((i) => `weight: 0.5, density: ${0.4 + 0.1 * i}`)}merge_method: dare_ties\nbase_model: ${base}\n`,
    dare_linear: `models:\n${listed(() => 'weight: 0.7, density: 0.5')}merge_method: dare_linear\nbase_model: ${base}\nparameters: {rescale_mode: density}\n`,
    breadcrumbs: `models:\n${listed((i) => `weight: 0.5, density: ${0.5 + 0.1 * i}, gamma: 0.05`)}merge_method: breadcrumbs\nbase_model: ${base}\n`,
    breadcrumbs_ties: `models:\n${listed(() => 'weight: 0.6, density: 0.6, gamma: 0.02')}merge_method: breadcrumbs_ties\nbase_model: ${base}\n`,
    della: `models:\n${listed((i) => `weight: 1, density: ${0.4 + 0.1 * i}, epsilon: 0.1`)}merge_method: della\nbase_model: ${base}\n`,
    della_linear: `models:\n${listed(() => 'weight: 0.5, density: 0.5, epsilon: 0.2')}merge_method: della_linear\nbase_model: ${base}\n`,
    model_stock: `models:\n${listed(() => '')}merge_method: model_stock\nbase_model: ${base}\n`,
    model_stock_filter_wise: `models:\n${listed(() => '')}merge_method: model_stock\nbase_model: ${base}\nparameters: {filter_wise: true}\n`,
    slerp: `models:\n  - model: ${base}\n  - model: ${experts[0]}\nmerge_method: slerp\nbase_model: ${base}\nparameters: {t: 0.3}\n`,
    nearswap: `models:\n  - model: ${base}\n  - model: ${experts[1]}\nmerge_method: nearswap\nbase_model: ${base}\nparameters: {t: 0.001}\n`,
    multislerp: `models:\n${listed((i) => `weight: ${1 + i}`)}merge_method: multislerp\nbase_model: ${base}\n`,
    karcher: `models:\n${listed(() => '')}merge_method: karcher\n`,
    consensus_ta: `models:\n${listed(() => 'weight: 1')}merge_method: consensus_ta\nbase_model: ${base}\nparameters: {k: 2}\n`,
  };

  it.each(Object.keys(RECIPES))('%s on the BF16 models', async (name) => {
    const recipe = join(work, `bf16-${name}.yml`);
    writeFileSync(recipe, RECIPES[name]);
    const [fast, ref] = await both(`bf16-${name}`, recipe);
    expectSameFile(fast, ref, name);
  });
});

/**
 * The scoreboard on the demo family: scrolled into view, it merges the demo experts in the worker's
 * memory and shows base, each expert and the merge per skill, with exactly the numbers
 * `merge-studio eval --tasks demo --examples 16` gives (same library, same CPU reference); a slider
 * move re-scores the merge (time from the move to the new scores printed); perplexity of a pasted
 * text for every model side by side, and cancel.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EvalReport } from '../src/gpu/model/eval.ts';
import { expect, test } from './studio.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** `merge-studio eval TARGET --tasks demo --examples 16 --json` (./demo/ references resolved to public/demo). */
function cliEval(target: { recipe: string } | { folder: string }): EvalReport {
  const work = mkdtempSync(join(tmpdir(), 'merge-studio-scores-e2e-'));
  try {
    symlinkSync(join(ROOT, 'public', 'demo'), join(work, 'demo'));
    const path = 'recipe' in target ? join(work, 'recipe.yml') : join(ROOT, 'public', 'demo', target.folder);
    if ('recipe' in target) writeFileSync(path, target.recipe);
    const cli = spawnSync(process.execPath, ['bin/merge-studio.mjs', 'eval', path, '--tasks', 'demo', '--examples', '16', '--json', join(work, 'out.json'), '--backend', 'cpu-reference', '--quiet'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 600_000,
    });
    expect(cli.status, cli.stderr).toBe(0);
    return JSON.parse(readFileSync(join(work, 'out.json'), 'utf8')) as EvalReport;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

test('the scoreboard shows the CLI numbers for base, experts and the merge, and follows a slider', async ({ studio, page }) => {
  test.setTimeout(1_200_000);
  await studio.open('/', { backend: 'cpu' });
  await studio.waitForDemo();
  await expect(page.getByTestId('compat.ok')).toBeVisible();
  const board = page.getByTestId('scores.panel');
  await board.scrollIntoViewIfNeeded();
  await expect(page.getByTestId('scores.row.merge').locator('td').first()).toHaveAttribute('data-accuracy', /./, { timeout: 900_000 });
  await expect(page.getByTestId('scores.skills.timing')).toBeVisible();
  await studio.shot('scores-board');

  const skills = (await page.getByTestId('scores.board').locator('thead th').allTextContents()).slice(1, -1);
  const cell = (row: string, skill: string) => page.getByTestId(`scores.cell.${row}.${skill}`);
  const expectRow = async (row: string, report: EvalReport) => {
    expect(report.skills!.map((s) => s.skill)).toEqual(skills);
    for (const s of report.skills!) {
      await expect(cell(row, s.skill)).toHaveAttribute('data-accuracy', String(s.accuracy));
      const loss = Number(await cell(row, s.skill).getAttribute('data-loss'));
      expect(Math.abs(loss - s.meanLoss), `${row} ${s.skill} loss`).toBeLessThanOrEqual(1e-6 * s.meanLoss);
    }
  };
  for (const name of ['base', 'expert-1', 'expert-2', 'expert-3']) await expectRow(name, cliEval({ folder: name }));
  await expectRow('merge', cliEval({ recipe: await studio.recipeYaml() }));
  console.log(`scoreboard, first run (4 inputs + merge): ${await page.getByTestId('scores.skills.timing').textContent()}`);

  // A slider move: the merge is merged and scored again (the inputs come from the worker's cache).
  const before = await cell('merge', skills[0]).getAttribute('data-loss');
  const slider = page.getByTestId('model../demo/expert-1.param.weight.slider');
  await slider.focus();
  await page.keyboard.press('ArrowLeft');
  // The board scores while it is on screen: back to it, as a user looking at the scores would.
  await board.scrollIntoViewIfNeeded();
  await expect(cell('merge', skills[0])).not.toHaveAttribute('data-loss', before!, { timeout: 600_000 });
  await expect(page.getByTestId('scores.skills.timing')).toBeVisible({ timeout: 600_000 });
  console.log(`scoreboard after a slider move (merge + scores of the merge): ${await page.getByTestId('scores.skills.timing').textContent()}`);
  await expectRow('merge', cliEval({ recipe: await studio.recipeYaml() }));

  // Perplexity of a pasted text, every model side by side; a second run can be cancelled.
  await page.getByTestId('scores.text').fill('copy:abc=abc12+34=46sort:dcba=abcdrev:abc=cba');
  await page.getByTestId('scores.perplexity.run').click();
  await expect(page.getByTestId('scores.perplexity.merge')).toHaveAttribute('data-perplexity', /\d/, { timeout: 600_000 });
  for (const name of ['base', 'expert-1', 'expert-2', 'expert-3']) await expect(page.getByTestId(`scores.perplexity.${name}`)).toHaveAttribute('data-perplexity', /\d/);
  await studio.shot('scores-perplexity');
  await page.getByTestId('scores.text').fill('sort:zyx=xyz');
  await page.getByTestId('scores.perplexity.run').click();
  await page.getByTestId('scores.perplexity.cancel').click();
  await expect(page.getByTestId('scores.perplexity.status')).toContainText('Cancelled.');
});

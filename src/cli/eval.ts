/**
 * `merge-studio eval MODEL [--tasks demo|FILE] [--text FILE] [--json FILE]`: run a model and score it
 * with the library's evaluateModel (src/gpu/model/eval.ts), the same code the studio runs. MODEL is a
 * model folder (or .safetensors file with its config beside it), or a mergekit recipe (.yml/.yaml),
 * which is merged into memory first (nothing is written).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseRecipe } from '../core/recipe/parse.ts';
import type { ModelSource } from '../core/source.ts';
import { formatBytes, parseByteSize } from '../core/units.ts';
import type { Backend } from '../gpu/backend.ts';
import { methodLookup } from '../gpu/methods/index.ts';
import { evaluateModel, firstExamples, parseTaskSet, type EvalReport, type TaskSet } from '../gpu/model/eval.ts';
import { mergeInMemory } from '../gpu/model/in-memory-merge.ts';
import { BACKEND_CHOICES, backendKindArg, chooseBackend } from './backend.ts';
import { parseCommandArgs } from './command-args.ts';
import { nodeFileTree } from './node-files.ts';
import { openLocalModel, openModelsForRecipe } from './open-models.ts';

export interface EvalIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** The CLI's usage error (exit code 2), passed in so this module does not import main.ts back. */
  usageError(message: string): Error;
}

export const EVAL_USAGE = `  merge-studio eval MODEL [--tasks demo|FILE] [--examples N] [--text FILE] [--json FILE] [--backend ${BACKEND_CHOICES}]
                         [--window N] [--stride N] [--weight-budget SIZE] [--seed N] [--quiet]
                                  score a model folder, or a recipe merged in memory: per-skill accuracy and
                                  answer loss (--tasks; demo = public/demo/tasks.json; --examples: the first N
                                  of each skill), perplexity of a text`;

/** The demo family's task set, shipped beside the demo models. */
export const DEMO_TASKS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'public', 'demo', 'tasks.json');

export async function evalCommand(args: string[], io: EvalIo): Promise<EvalReport> {
  const usage = io.usageError;
  const { values, positionals } = parseCommandArgs(
    args,
    {
      tasks: { type: 'string' },
      examples: { type: 'string' },
      text: { type: 'string' },
      json: { type: 'string' },
      backend: { type: 'string', default: 'auto' },
      window: { type: 'string' },
      stride: { type: 'string' },
      'weight-budget': { type: 'string' },
      seed: { type: 'string', default: '0' },
      quiet: { type: 'boolean', default: false },
    },
    usage,
  );
  if (positionals.length !== 1) throw usage('eval takes one model folder or recipe: merge-studio eval MODEL --tasks demo');
  if (values.tasks === undefined && values.text === undefined) throw usage('eval needs --tasks demo|FILE and/or --text FILE');
  const backendKind = backendKindArg(values.backend, usage);
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw usage(`--seed must be an integer in [0, 4294967295], not "${values.seed}"`);
  const positive = (name: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!(Number.isInteger(n) && n >= 1)) throw usage(`--${name} must be a positive integer, not "${text}"`);
    return n;
  };
  const window = positive('window', values.window);
  const stride = positive('stride', values.stride);
  const weightBudget = values['weight-budget'] === undefined ? undefined : parseByteSize(values['weight-budget'], '--weight-budget');
  const log = (line: string) => void (!values.quiet && io.stderr.write(`merge-studio: ${line}\n`));

  const examples = positive('examples', values.examples);
  if (examples !== undefined && values.tasks === undefined) throw usage('--examples needs --tasks');
  const allTasks = values.tasks === undefined ? undefined : await readTasks(values.tasks, usage);
  const tasks = allTasks && examples !== undefined ? firstExamples(allTasks, examples) : allTasks;
  const text = values.text === undefined ? undefined : await readFile(values.text, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw usage(`cannot read --text ${values.text}: ${e.code ?? e.message}`);
  });

  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  let backend: Backend | undefined;
  try {
    const chosen = await chooseBackend(backendKind);
    backend = chosen.backend;
    if (chosen.note) log(`note: ${chosen.note}`);
    const source = await openTarget(positionals[0], backend, seed, controller.signal, log);
    log(`scoring ${source.id} on ${backend.description}`);
    let lastLine = 0;
    const report = await evaluateModel(source, backend, {
      tasks,
      text,
      window,
      stride,
      signal: controller.signal,
      model: { weightBudget },
      onProgress: (done, total) => {
        const now = Date.now();
        if (done < total && now - lastLine < 1000) return;
        lastLine = now;
        log(`${done}/${total}`);
      },
    });
    if (report.residency === 'streamed') log(`weights streamed layer by layer (the model's f32 weights exceed --weight-budget ${formatBytes(weightBudget ?? Infinity)})`);
    io.stdout.write(formatReport(report));
    if (values.json !== undefined) {
      await writeFile(values.json, JSON.stringify(report, null, 2) + '\n');
      log(`wrote ${values.json}`);
    }
    return report;
  } finally {
    process.off('SIGINT', onSignal);
    backend?.destroy();
  }
}

async function readTasks(spec: string, usage: EvalIo['usageError']): Promise<TaskSet> {
  const path = spec === 'demo' ? DEMO_TASKS : spec;
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw usage(`cannot read --tasks ${path}: ${e.code ?? e.message}`);
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw usage(`--tasks ${path} is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  return parseTaskSet(json, path);
}

/** A folder (or .safetensors file) as is; a recipe merged into memory on `backend`. */
async function openTarget(target: string, backend: Backend, seed: number, signal: AbortSignal, log: (line: string) => void): Promise<ModelSource> {
  if (!/\.ya?ml$/i.test(target)) {
    await nodeFileTree(target); // a clear error for a missing path
    return openLocalModel(target, signal);
  }
  const recipeText = await readFile(target, 'utf8');
  const recipe = parseRecipe(recipeText, methodLookup, { file: target });
  const sources = await openModelsForRecipe(recipe, target, { signal, log });
  log(`merging ${target} (${recipe.mergeMethod}, ${recipe.models.length} models) in memory`);
  return mergeInMemory({ recipe, sources, backend, options: { seed, signal } }, `merge of ${target}`);
}

/** The report as a table (what `eval` prints on stdout). */
export function formatReport(r: EvalReport): string {
  const lines = [`model: ${r.model}`, `backend: ${r.backend}`];
  if (r.skills) {
    const w = Math.max(5, ...r.skills.map((s) => s.skill.length));
    lines.push(`${'skill'.padEnd(w)}  examples  accuracy  answer loss`);
    for (const s of r.skills) {
      lines.push(`${s.skill.padEnd(w)}  ${String(s.examples).padStart(8)}  ${(100 * s.accuracy).toFixed(1).padStart(7)}%  ${s.meanLoss.toFixed(4).padStart(11)}`);
    }
    const meanAcc = r.skills.reduce((a, s) => a + s.accuracy, 0) / r.skills.length;
    const meanLoss = r.skills.reduce((a, s) => a + s.meanLoss, 0) / r.skills.length;
    lines.push(`${'mean'.padEnd(w)}  ${''.padStart(8)}  ${(100 * meanAcc).toFixed(1).padStart(7)}%  ${meanLoss.toFixed(4).padStart(11)}`);
  }
  if (r.perplexity) {
    const p = r.perplexity;
    lines.push(`perplexity: ${p.perplexity.toFixed(4)} (${p.tokens} tokens, mean NLL ${p.meanNll.toFixed(4)} nats, window ${p.window}, stride ${p.stride})`);
  }
  return lines.join('\n') + '\n';
}

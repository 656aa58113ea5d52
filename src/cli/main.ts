/**
 * `merge-studio` command line: merge a mergekit recipe, analyze its models, inspect a checkpoint.
 * Every error ends the command with one clear line on stderr and a non-zero exit code.
 */
import { parseCommandArgs } from './command-args.ts';
import { readFile } from 'node:fs/promises';
import { openModelsForRecipe, openLocalModel } from './open-models.ts';
import { BACKEND_CHOICES, backendKindArg, chooseBackend } from './backend.ts';
import { NodeOutputFolder } from './node-files.ts';
import { parseRecipe } from '../core/recipe/parse.ts';
import { methodLookup, METHODS } from '../gpu/methods/index.ts';
import { runMerge, type MergeProgress } from '../gpu/engine.ts';
import type { Backend } from '../gpu/backend.ts';
import { formatBytes, parseByteSize } from '../core/units.ts';
import { checkCompatibility } from '../core/compat.ts';
import type { Recipe } from '../core/recipe/types.ts';
import type { ModelSource } from '../core/source.ts';
import { analyzeCommand } from './analyze.ts';
import { pushCommand } from './push.ts';
import { extractLoraCommand } from './extract-lora.ts';
import { evalCommand, EVAL_USAGE } from './eval.ts';

const USAGE = `merge-studio: model merging on WebGPU (mergekit recipes)

usage:
  merge-studio merge RECIPE.yml --out DIR [--backend ${BACKEND_CHOICES}] [--shard-size 5GB] [--seed N]
                                [--replay-masks FILE] [--chunk-elements N] [--overwrite] [--quiet]
  merge-studio analyze RECIPE.yml [--json FILE] [--backend ${BACKEND_CHOICES}] [--seed N] [--chunk-elements N]
                                  [--subspace-rank K] [--quiet]   task-vector statistics of the recipe's models,
                                  top-K singular directions per weight matrix (default 16; FILE -: stdout)
  merge-studio push DIR org/name [--private] [--license ID] [--analysis FILE] [--message TEXT] [--quiet]
                                  publish an exported merge to the Hub with $HF_TOKEN (FILE: analyze --json)
${EVAL_USAGE}
  merge-studio extract-lora MODEL --base BASE --rank R --out DIR [--backend ${BACKEND_CHOICES}] [--overwrite] [--quiet]
                                  a PEFT LoRA adapter turning BASE into MODEL (truncated SVD per linear module;
                                  the relative error of each on stderr). A recipe reads it back as BASE+DIR.
  merge-studio inspect PATH       tensors of a .safetensors file or model folder
  merge-studio methods            the merge methods and their parameters

--backend: auto (default: WebGPU on a hardware adapter, else cpu), gpu (WebGPU, even on a software
adapter), cpu (generated loops on every core), cpu-reference (the plain one-thread TypeScript reference
the others are tested against; slow, for debugging).
--chunk-elements splits GPU tensors into chunks of at most N elements (default: as large as the
device's maxStorageBufferBindingSize allows).

Hub models (org/name[@revision]) are read from $HF_ENDPOINT (default https://huggingface.co) with
$HF_TOKEN for gated repos; downloaded ranges are cached in $MERGE_STUDIO_CACHE (default ~/.cache/merge-studio).`;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export async function main(argv: string[], io: { stdout?: NodeJS.WritableStream; stderr?: NodeJS.WritableStream } = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'merge':
        await mergeCommand(rest, stderr);
        return 0;
      case 'analyze':
        await analyzeCommand(rest, { stdout, stderr, usageError: (message) => new UsageError(message) });
        return 0;
      case 'push':
        await pushCommand(rest, { stdout, stderr, usageError: (message) => new UsageError(message) });
        return 0;
      case 'eval':
        await evalCommand(rest, { stdout, stderr, usageError: (message) => new UsageError(message) });
        return 0;
      case 'extract-lora':
        await extractLoraCommand(rest, { stdout, stderr, usageError: (message) => new UsageError(message) });
        return 0;
      case 'inspect':
        await inspectCommand(rest, stdout);
        return 0;
      case 'methods':
        stdout.write(methodsHelp());
        return 0;
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        stdout.write(USAGE + '\n');
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}" (commands: merge, analyze, push, eval, extract-lora, inspect, methods)`);
    }
  } catch (err) {
    stderr.write(`merge-studio: error: ${describeError(err)}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}

function describeError(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0];
  return String(err);
}

async function mergeCommand(args: string[], stderr: NodeJS.WritableStream) {
  const { values, positionals } = parseCli(args, {
    out: { type: 'string' },
    backend: { type: 'string', default: 'auto' },
    'shard-size': { type: 'string', default: '5GB' },
    seed: { type: 'string', default: '0' },
    'replay-masks': { type: 'string' },
    'chunk-elements': { type: 'string' },
    overwrite: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  });
  if (positionals.length !== 1) throw new UsageError('merge takes one recipe file: merge-studio merge RECIPE.yml --out DIR');
  const out = values.out as string | undefined;
  if (!out) throw new UsageError('merge needs --out DIR');
  const backendKind = backendKindArg(values.backend, (m) => new UsageError(m));
  const maxShardBytes = parseByteSize(values['shard-size'] as string, '--shard-size');
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new UsageError(`--seed must be an integer in [0, 4294967295], not "${values.seed}"`);

  const chunkText = values['chunk-elements'] as string | undefined;
  const maxChunkElements = chunkText === undefined ? undefined : Number(chunkText);
  if (maxChunkElements !== undefined && !(Number.isInteger(maxChunkElements) && maxChunkElements >= 256)) {
    throw new UsageError(`--chunk-elements must be an integer of at least 256, not "${chunkText}"`);
  }

  const recipePath = positionals[0];
  const text = await readFile(recipePath, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read recipe ${recipePath}: ${e.code ?? e.message}`);
  });
  const recipe = parseRecipe(text, methodLookup, { file: recipePath });
  const output = new NodeOutputFolder(out, { overwrite: values.overwrite as boolean });
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  let backend: Backend | undefined;
  try {
    const sources = await openModelsForRecipe(recipe, recipePath, { signal: controller.signal, log: (line) => !values.quiet && stderr.write(line + '\n') });
    // Slices take layer ranges of models that may differ in depth: the planner checks what they use.
    if (!recipe.slices) reportCompatibility(recipe, sources, (line) => !values.quiet && stderr.write(line + '\n'));
    const replayMasks = values['replay-masks'] ? await openLocalModel(values['replay-masks'] as string) : undefined;
    const chosen = await chooseBackend(backendKind, { maxChunkElements });
    backend = chosen.backend;
    if (!values.quiet) {
      const what = recipe.slices ? `${recipe.slices.length} slices` : `${recipe.models.length} models`;
      stderr.write(`merge-studio: ${recipe.mergeMethod} of ${what} on ${backend.description}\n`);
      if (chosen.note) stderr.write(`merge-studio: note: ${chosen.note}\n`);
    }
    const report = progressReporter(stderr, values.quiet as boolean);
    const result = await runMerge({
      recipe,
      sources,
      backend,
      output,
      options: { seed, maxShardBytes, replayMasks, signal: controller.signal, onProgress: report },
    });
    if (!values.quiet) {
      stderr.write(
        `merge-studio: wrote ${out} (${result.tensors} tensors, ${formatBytes(result.bytes)}, ${result.seconds.toFixed(1)} s): ${result.files.join(', ')}\n`,
      );
    }
  } finally {
    process.off('SIGINT', onSignal);
    backend?.destroy();
  }
}

/** The header-only compatibility check, before any tensor byte is read: notes to stderr, problems fail. */
function reportCompatibility(recipe: Recipe, sources: Map<string, ModelSource>, log: (line: string) => void) {
  const refs = [...sources.keys()];
  const report = checkCompatibility(
    refs.map((ref) => sources.get(ref)!),
    { baseIndex: recipe.baseModel ? refs.indexOf(recipe.baseModel) : 0 },
  );
  for (const note of report.notes) log(`merge-studio: note: ${note}`);
  if (!report.ok) {
    const rest = report.problems.length - 1;
    const more = rest > 0 ? ` (and ${rest} more problem${rest > 1 ? 's' : ''})` : '';
    throw new IncompatibleModelsError(`models cannot be merged: ${report.problems[0].message}${more}`);
  }
}

export class IncompatibleModelsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IncompatibleModelsError';
  }
}

function progressReporter(stderr: NodeJS.WritableStream, quiet: boolean) {
  let lastLine = 0;
  return (p: MergeProgress) => {
    if (quiet) return;
    const now = Date.now();
    const last = p.pass ? p.pass.tensorsDone === p.pass.tensorsTotal : p.tensorsDone === p.tensorsTotal;
    if (!last && now - lastLine < 1000) return;
    lastLine = now;
    if (p.pass) {
      // A whole-model pass before the merge (PCB, LiNeS's default alpha): nothing written yet.
      stderr.write(`merge-studio: pass ${p.pass.index} (${p.pass.label}): ${p.pass.tensorsDone}/${p.pass.tensorsTotal} tensors\n`);
      return;
    }
    stderr.write(
      `merge-studio: ${p.tensorsDone}/${p.tensorsTotal} tensors, ${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)}, ${formatBytes(p.rate)}/s\n`,
    );
  };
}

async function inspectCommand(args: string[], stdout: NodeJS.WritableStream) {
  const { positionals } = parseCli(args, {});
  if (positionals.length !== 1) throw new UsageError('inspect takes one path: merge-studio inspect PATH');
  const model = await openLocalModel(positionals[0]);
  const rows = [...model.tensors.values()];
  const nameWidth = Math.max(4, ...rows.map((r) => r.name.length));
  stdout.write(`${'name'.padEnd(nameWidth)}  dtype  ${'shape'.padEnd(16)}  bytes\n`);
  let bytes = 0;
  let params = 0;
  for (const r of rows) {
    const shape = `[${r.shape.join(', ')}]`;
    stdout.write(`${r.name.padEnd(nameWidth)}  ${r.dtype.padEnd(5)}  ${shape.padEnd(16)}  ${r.byteLength}\n`);
    bytes += r.byteLength;
    params += r.shape.reduce((a, b) => a * b, 1);
  }
  stdout.write(`${rows.length} tensors, ${params} parameters, ${bytes} bytes (${formatBytes(bytes)})\n`);
}

function methodsHelp(): string {
  const lines: string[] = [];
  for (const m of METHODS) {
    lines.push(`${m.name}: ${m.help}`);
    for (const p of [...m.params.map((p) => ({ p, scope: 'global' })), ...m.perModelParams.map((p) => ({ p, scope: 'per model' }))]) {
      const range = p.p.min !== undefined || p.p.max !== undefined ? ` [${p.p.min ?? '-inf'}, ${p.p.max ?? 'inf'}]` : '';
      const options = p.p.options ? ` (${p.p.options.join(' | ')})` : '';
      const dflt = p.p.required ? 'required' : p.p.default === undefined ? 'optional, no default' : `default ${String(p.p.default)}`;
      lines.push(`  ${p.p.name} (${p.scope}, ${p.p.kind}${range}${options}, ${dflt}): ${p.p.help}`);
    }
  }
  return lines.join('\n') + '\n';
}

type OptionSpec = Record<string, { type: 'string' | 'boolean'; default?: string | boolean }>;

function parseCli(args: string[], options: OptionSpec) {
  return parseCommandArgs(args, options, (message) => new UsageError(message));
}

/**
 * `merge-studio extract-lora MODEL --base BASE --rank R --out DIR`: a PEFT LoRA adapter that turns
 * BASE into MODEL (src/gpu/lora/extract.ts), with the relative reconstruction error of each module
 * on stderr and the tensors a LoRA cannot carry listed.
 */
import { formatBytes } from '../core/units.ts';
import { extractLora } from '../gpu/lora/extract.ts';
import { backendKindArg, chooseBackend } from './backend.ts';
import { parseCommandArgs } from './command-args.ts';
import { NodeOutputFolder } from './node-files.ts';
import { openModelsForRecipe } from './open-models.ts';

export interface ExtractLoraIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** The CLI's usage error (exit code 2), passed in so this module does not import main.ts back. */
  usageError(message: string): Error;
}

export async function extractLoraCommand(args: string[], io: ExtractLoraIo): Promise<void> {
  const { values, positionals } = parseCommandArgs(
    args,
    {
      base: { type: 'string' },
      rank: { type: 'string' },
      out: { type: 'string' },
      backend: { type: 'string', default: 'auto' },
      'chunk-elements': { type: 'string' },
      overwrite: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
    },
    io.usageError,
  );
  if (positionals.length !== 1) throw io.usageError('extract-lora takes one model: merge-studio extract-lora MODEL --base BASE --rank R --out DIR');
  if (!values.base) throw io.usageError('extract-lora needs --base BASE (the model the adapter applies to)');
  if (!values.out) throw io.usageError('extract-lora needs --out DIR');
  const rank = Number(values.rank);
  if (!(Number.isInteger(rank) && rank >= 1)) throw io.usageError(`--rank must be a positive integer, not "${values.rank ?? ''}"`);
  const backendKind = backendKindArg(values.backend, io.usageError);
  const chunkText = values['chunk-elements'];
  const maxChunkElements = chunkText === undefined ? undefined : Number(chunkText);
  if (maxChunkElements !== undefined && !(Number.isInteger(maxChunkElements) && maxChunkElements >= 256)) {
    throw io.usageError(`--chunk-elements must be an integer of at least 256, not "${chunkText}"`);
  }
  const say = (line: string) => !values.quiet && io.stderr.write(`merge-studio: ${line}\n`);
  const model = positionals[0];
  const base = values.base;
  // Opened as a recipe's models are: local folders or Hub repos, relative to the working directory.
  const sources = await openModelsForRecipe({ mergeMethod: 'extract-lora', models: [{ model, parameters: {} }], baseModel: base, parameters: {} }, 'extract-lora.yml', { log: say });
  const { backend, note } = await chooseBackend(backendKind, { maxChunkElements });
  try {
    if (note) say(`note: ${note}`);
    say(`extracting a rank-${rank} LoRA of ${model} over ${base} on ${backend.description}`);
    const result = await extractLora({
      model: sources.get(model)!,
      base: sources.get(base)!,
      rank,
      backend,
      output: new NodeOutputFolder(values.out, { overwrite: values.overwrite }),
      baseName: base,
      onModule: (r, done, total) => say(`${done}/${total} ${r.module} [${r.shape.join('×')}] r=${r.rank}: relative error ${r.relativeError.toExponential(3)}`),
    });
    const errors = result.modules.map((m) => m.relativeError);
    const mean = errors.reduce((a, b) => a + b, 0) / errors.length;
    say(`${result.modules.length} modules, relative error mean ${mean.toExponential(3)}, max ${Math.max(...errors).toExponential(3)}`);
    for (const t of result.notCaptured) say(`not in the adapter (not a linear layer): ${t.tensor} changed by ${(100 * t.relativeChange).toFixed(3)}%`);
    const bytes = result.modules.reduce((s, m) => s + 4 * m.rank * (m.shape[0] + m.shape[1]), 0);
    say(`wrote ${values.out}: ${result.files.join(', ')} (${formatBytes(bytes)} of factors)`);
  } finally {
    backend.destroy();
  }
}

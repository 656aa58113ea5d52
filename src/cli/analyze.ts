/**
 * `merge-studio analyze RECIPE.yml [--json FILE]`: the studio's analysis numbers from the command
 * line. Prints a short summary (cosines, norms, kept fractions, shares, subspace overlap, sign conflicts) and writes
 * the whole AnalysisResult (src/gpu/analysis/types.ts) as JSON to FILE ("-": stdout).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { parseRecipe } from '../core/recipe/parse.ts';
import { analyzeMerge } from '../gpu/analysis/analyze.ts';
import type { AnalysisOps } from '../gpu/analysis/ops.ts';
import { analysisOpsFor } from '../gpu/analysis/ops-for.ts';
import { DEFAULT_SUBSPACE_RANK } from '../gpu/analysis/subspace.ts';
import type { AnalysisProgress, AnalysisResult } from '../gpu/analysis/types.ts';
import { methodLookup } from '../gpu/methods/index.ts';
import { backendKindArg, chooseBackend, type BackendKind } from './backend.ts';
import { parseCommandArgs } from './command-args.ts';
import { openModelsForRecipe } from './open-models.ts';

export interface AnalyzeIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** The CLI's usage error (exit code 2), passed in so this module does not import main.ts back. */
  usageError(message: string): Error;
}

export async function analyzeCommand(args: string[], io: AnalyzeIo): Promise<void> {
  const usage = io.usageError;
  const { values, positionals } = parse(args, usage);
  if (positionals.length !== 1) throw usage('analyze takes one recipe file: merge-studio analyze RECIPE.yml [--json FILE]');
  const backendKind = backendKindArg(values.backend, usage);
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw usage(`--seed must be an integer in [0, 4294967295], not "${values.seed}"`);
  const chunkText = values['chunk-elements'];
  const maxChunkElements = chunkText === undefined ? undefined : Number(chunkText);
  if (maxChunkElements !== undefined && !(Number.isInteger(maxChunkElements) && maxChunkElements >= 256)) {
    throw usage(`--chunk-elements must be an integer of at least 256, not "${chunkText}"`);
  }
  const subspaceText = values['subspace-rank'];
  const subspaceRank = Number(subspaceText);
  if (!(Number.isInteger(subspaceRank) && subspaceRank >= 1 && subspaceRank <= MAX_SUBSPACE_RANK)) {
    throw usage(`--subspace-rank must be an integer in [1, ${MAX_SUBSPACE_RANK}], not "${subspaceText}"`);
  }
  const jsonPath = values.json;
  const quiet = values.quiet;
  const log = (line: string) => {
    if (!quiet) io.stderr.write(`merge-studio: ${line}\n`);
  };

  const recipePath = positionals[0];
  const text = await readFile(recipePath, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw usage(`cannot read recipe ${recipePath}: ${e.code ?? e.message}`);
  });
  const recipe = parseRecipe(text, methodLookup, { file: recipePath });
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  let ops: AnalysisOps | undefined;
  try {
    const sources = await openModelsForRecipe(recipe, recipePath, { signal: controller.signal, log });
    ops = await createOps(backendKind, maxChunkElements, log);
    log(`analyzing ${recipe.models.length} models (${recipe.mergeMethod}) on ${ops.backend.description}`);
    const result = await analyzeMerge({
      recipe,
      sources,
      ops,
      options: { seed, subspaceRank, signal: controller.signal, onProgress: progressReporter(log) },
    });
    if (jsonPath === '-') io.stdout.write(JSON.stringify(result) + '\n');
    else {
      if (!quiet) io.stdout.write(summary(result));
      if (jsonPath !== undefined) {
        await writeFile(jsonPath, JSON.stringify(result) + '\n');
        log(`wrote ${jsonPath}`);
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    ops?.backend.destroy();
  }
}

function parse(args: string[], usage: AnalyzeIo['usageError']) {
  return parseCommandArgs(
    args,
    {
      json: { type: 'string' },
      backend: { type: 'string', default: 'auto' },
      seed: { type: 'string', default: '0' },
      'chunk-elements': { type: 'string' },
      'subspace-rank': { type: 'string', default: String(DEFAULT_SUBSPACE_RANK) },
      quiet: { type: 'boolean', default: false },
    },
    usage,
  );
}

async function createOps(kind: BackendKind, maxChunkElements: number | undefined, log: (line: string) => void): Promise<AnalysisOps> {
  const { backend, note } = await chooseBackend(kind, { maxChunkElements });
  if (note) log(`note: ${note}`);
  return analysisOpsFor(backend);
}

function progressReporter(log: (line: string) => void) {
  let last = 0;
  return (p: AnalysisProgress) => {
    const now = Date.now();
    if (p.tensorsDone !== p.tensorsTotal && now - last < 1000) return;
    last = now;
    log(`${p.tensorsDone}/${p.tensorsTotal} tensors`);
  };
}

/** More singular directions than this per matrix would make the subspace statistics cost like a full SVD. */
const MAX_SUBSPACE_RANK = 256;

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

/** The headline numbers, as a few aligned lines. */
export function summary(r: AnalysisResult): string {
  const lines: string[] = [];
  const names = r.models;
  const width = Math.max(8, ...names.map((m) => m.length));
  const n = names.length;
  const m = r.modelStats;
  const rs = r.recipeStats;
  lines.push(
    `task vectors of ${n} model${n === 1 ? '' : 's'} ${r.base ? `against base ${r.base}` : '(no base: raw weights)'}, ` +
      `${m?.tensors.length ?? rs?.tensors.length ?? 0} tensors, ${r.numLayers} layers, on ${r.backend}`,
  );
  if (m) {
    lines.push('', 'cosine similarity (whole model)');
    lines.push(`${''.padEnd(width)}  ${names.map((x) => x.slice(-8).padStart(8)).join('  ')}`);
    for (let i = 0; i < n; i++) {
      lines.push(`${names[i].padEnd(width)}  ${names.map((_, j) => m.whole.cosine[i * n + j].toFixed(4).padStart(8)).join('  ')}`);
    }
  }
  const columns: [string, (i: number) => string][] = [];
  if (m) columns.push(['‖δ‖', (i) => m.whole.norms[i].toPrecision(4)]);
  if (m?.whole.relativeChange) columns.push(['‖δ‖/‖base‖', (i) => m.whole.relativeChange![i].toPrecision(3)]);
  if (rs?.whole.keptFraction) columns.push(['kept', (i) => pct(rs.whole.keptFraction![i])]);
  if (rs?.whole.uniqueFraction) columns.push(['unique', (i) => pct(rs.whole.uniqueFraction![i])]);
  if (rs?.whole.share) columns.push(['share of merge', (i) => pct(rs.whole.share![i])]);
  if (columns.length > 0) {
    lines.push('', `${''.padEnd(width)}  ${columns.map(([h]) => h.padStart(14)).join('  ')}`);
    for (let i = 0; i < n; i++) lines.push(`${names[i].padEnd(width)}  ${columns.map(([, f]) => f(i).padStart(14)).join('  ')}`);
  }
  lines.push('');
  if (m && m.subspace.whole.tensors > 0) {
    const s = m.subspace.whole;
    lines.push(
      `subspace overlap of the top-${m.subspace.rank} left singular vectors (‖U_iᵀU_j‖²_F / k, mean over ${s.tensors} weight matrices; ` +
        `random subspaces: ${s.chance!.toFixed(4)})`,
    );
    lines.push(`${''.padEnd(width)}  ${names.map((x) => x.slice(-8).padStart(8)).join('  ')}  ${'eff. rank'.padStart(9)}`);
    for (let i = 0; i < n; i++) {
      const row = names.map((_, j) => (s.overlap[i * n + j] === null ? '–' : s.overlap[i * n + j]!.toFixed(4)).padStart(8)).join('  ');
      lines.push(`${names[i].padEnd(width)}  ${row}  ${(s.effectiveRank[i] === null ? '–' : s.effectiveRank[i]!.toFixed(2)).padStart(9)}`);
    }
    lines.push('');
  }
  if (m) lines.push(`sign conflicts: ${pct(m.whole.conflictAll)} of parameters have task vectors of both signs`);
  if (rs?.whole.conflictAll != null) lines.push(`after ${rs.method}'s trimming: ${pct(rs.whole.conflictAll)}`);
  for (const note of rs?.notes ?? []) lines.push(`note: ${note}`);
  return lines.join('\n') + '\n';
}

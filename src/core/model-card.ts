/**
 * The README.md model card of a merged model, as the Hub reads model cards: YAML front matter with
 * `base_model` (the inputs that are Hub repos), `library_name: transformers`, `tags: [merge, mergekit,
 * merge-studio]` and the license when one is known; then the method, the models, the per-layer
 * coefficients (an image beside the card, when given), the analysis summary (when given: cosine
 * matrix of the task vectors and how often they disagree in sign) and the recipe.
 *
 * The engine writes the plain card with the export; publishing (src/core/publish) writes it again with
 * the license, the image and the analysis.
 */
import { stringify as yamlStringify } from 'yaml';
import { referencedModels } from './recipe/references.ts';
import { layerMapMarkdown } from './recipe/slices.ts';
import type { Recipe } from './recipe/types.ts';

/** What the card says about the task vectors, from an analysis of the merge's models. */
export interface CardAnalysis {
  /** The analyzed (non-base) models, in recipe order. */
  models: string[];
  /** Cosine similarity of the task vectors, N×N row-major. */
  cosine: number[];
  /** Fraction of parameters where some task vector is positive and another negative. */
  conflictAll: number;
  /** The same after the method's trimming (task-vector family), else null. */
  keptConflictAll: number | null;
  /** ‖δ_i‖ / ‖base‖ per model, null without a base. */
  relativeChange: number[] | null;
  /** Each model's share of the merged change, null outside the task-vector family. */
  share: number[] | null;
}

export interface ModelCardInput {
  recipe: Recipe;
  /** The recipe as written to mergekit_config.yml. */
  yaml: string;
  methodPrettyName: string;
  referenceUrl?: string;
  /** SPDX-style license id for the front matter (when every input agrees on one, or the user chose it). */
  license?: string;
  /** Title line; defaults to "Merged model". */
  title?: string;
  /** Path (beside the card) of the per-layer coefficients image. */
  coefficientsImage?: string;
  analysis?: CardAnalysis;
}

/** Local paths are not Hub ids: only `org/name` references go into the card's `base_model` list. */
function looksLikeHubId(ref: string): boolean {
  return /^[\w.-]+\/[\w.-]+(@[\w./-]+)?$/.test(ref) && !ref.startsWith('.') && !ref.startsWith('/');
}

/** Hub repo ids among the recipe's models (base first), without revisions, each once. */
export function hubBaseModels(recipe: Recipe): string[] {
  const refs = referencedModels(recipe);
  return [...new Set(refs.filter(looksLikeHubId).map((r) => r.split('@')[0]))];
}

/** The models merged: the recipe's models, or every source of its slices (each once). */
function mergedModels(recipe: Recipe): string[] {
  return recipe.slices ? [...new Set(recipe.slices.flatMap((s) => s.sources.map((x) => x.model)))] : recipe.models.map((m) => m.model);
}

export function modelCard(input: ModelCardInput): string {
  const { recipe, yaml, methodPrettyName, referenceUrl } = input;
  const front: Record<string, unknown> = {};
  const baseModels = hubBaseModels(recipe);
  if (baseModels.length) front.base_model = baseModels;
  front.library_name = 'transformers';
  if (input.license) front.license = input.license;
  front.tags = ['merge', 'mergekit', 'merge-studio'];
  const method = referenceUrl ? `[${methodPrettyName}](${referenceUrl})` : methodPrettyName;
  const lines = [
    '---',
    yamlStringify(front).trimEnd(),
    '---',
    '',
    `# ${input.title ?? 'Merged model'}`,
    '',
    `This model was merged with Merge Studio using the ${method} method (\`${recipe.mergeMethod}\`).`,
    '',
    '## Models',
    '',
    ...(recipe.baseModel ? [`Base model: \`${recipe.baseModel}\``, ''] : []),
    'Merged models:',
    '',
    ...mergedModels(recipe).map((m) => `- \`${m}\``),
    '',
    ...(recipe.slices ? layerMapMarkdown(recipe.slices) : []),
  ];
  if (input.coefficientsImage) {
    lines.push(
      '## Per-layer coefficients',
      '',
      'The parameters each model gets at each layer (gradients over depth interpolated, filters taken into account):',
      '',
      `![Per-layer merge coefficients](${input.coefficientsImage})`,
      '',
    );
  }
  if (input.analysis) lines.push(...analysisSection(input.analysis));
  lines.push('## Recipe', '', 'The recipe in mergekit format (also in `mergekit_config.yml`):', '', '```yaml', yaml.trimEnd(), '```', '');
  return lines.join('\n');
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

function analysisSection(a: CardAnalysis): string[] {
  const n = a.models.length;
  const out = ['## Analysis', '', 'Task vectors (each model minus the base), over every tensor of the merge:', ''];
  if (n > 0 && a.cosine.length === n * n) {
    out.push(`| cosine | ${a.models.map((m) => `\`${m}\``).join(' | ')} |`, `|---|${'---:|'.repeat(n)}`);
    for (let i = 0; i < n; i++) out.push(`| \`${a.models[i]}\` | ${a.cosine.slice(i * n, i * n + n).map((c) => c.toFixed(3)).join(' | ')} |`);
    out.push('');
  }
  out.push(`- Sign conflict rate: ${pct(a.conflictAll)} of parameters have task vectors pulling in opposite directions.`);
  if (a.keptConflictAll !== null) out.push(`- After the method's trimming: ${pct(a.keptConflictAll)}.`);
  if (a.relativeChange) out.push(`- Change relative to the base: ${a.models.map((m, i) => `\`${m}\` ${pct(a.relativeChange![i])}`).join(', ')}.`);
  if (a.share) out.push(`- Share of the merged change: ${a.models.map((m, i) => `\`${m}\` ${pct(a.share![i])}`).join(', ')}.`);
  out.push('');
  return out;
}

/** The card's analysis numbers from an analysis result (`merge-studio analyze --json`, or the studio's). */
export function cardAnalysisOf(result: {
  models: string[];
  modelStats: { whole: { cosine: number[]; conflictAll: number; relativeChange: number[] | null } } | null;
  recipeStats: { whole: { conflictAll: number | null; share: number[] | null } } | null;
}): CardAnalysis | null {
  if (!result.modelStats) return null;
  const whole = result.modelStats.whole;
  return {
    models: result.models,
    cosine: whole.cosine,
    conflictAll: whole.conflictAll,
    keptConflictAll: result.recipeStats?.whole.conflictAll ?? null,
    relativeChange: whole.relativeChange,
    share: result.recipeStats?.whole.share ?? null,
  };
}

/** The README.md model card written beside a merged model (Hugging Face model-card front matter). */
import type { Recipe } from './recipe/types.ts';

export interface ModelCardInput {
  recipe: Recipe;
  /** The recipe as written to mergekit_config.yml. */
  yaml: string;
  methodPrettyName: string;
  referenceUrl?: string;
}

/** Local paths are not Hub ids: only `org/name` references go into the card's `base_model` list. */
function looksLikeHubId(ref: string): boolean {
  return /^[\w.-]+\/[\w.-]+(@[\w./-]+)?$/.test(ref) && !ref.startsWith('.') && !ref.startsWith('/');
}

export function modelCard({ recipe, yaml, methodPrettyName, referenceUrl }: ModelCardInput): string {
  const refs = [...new Set([...(recipe.baseModel ? [recipe.baseModel] : []), ...recipe.models.map((m) => m.model)])];
  const hubRefs = refs.filter(looksLikeHubId).map((r) => r.split('@')[0]);
  const front = ['---', 'library_name: transformers', 'tags:', '- merge', '- merge-studio', '- mergekit'];
  if (hubRefs.length) front.push('base_model:', ...hubRefs.map((r) => `- ${r}`));
  front.push('---', '');
  const method = referenceUrl ? `[${methodPrettyName}](${referenceUrl})` : methodPrettyName;
  const lines = [
    '# Merged model',
    '',
    `This model was merged with Merge Studio using the ${method} method (\`${recipe.mergeMethod}\`).`,
    '',
    '## Models',
    '',
    ...(recipe.baseModel ? [`Base model: \`${recipe.baseModel}\``, ''] : []),
    'Merged models:',
    '',
    ...recipe.models.map((m) => `- \`${m.model}\``),
    '',
    '## Recipe',
    '',
    'The recipe in mergekit format (also in `mergekit_config.yml`):',
    '',
    '```yaml',
    yaml.trimEnd(),
    '```',
    '',
  ];
  return [...front, ...lines].join('\n');
}

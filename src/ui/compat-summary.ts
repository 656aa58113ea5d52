/**
 * Why models do not fit together, said first from their configs ("hidden_size 32 in org/x vs 64 in
 * the base ./demo/base"), as a person would compare them; the per-tensor problems of the
 * compatibility check (src/core/compat.ts) come under it. Pure: config records in, lines out.
 */

/** Config keys that decide tensor shapes and layout, in the order they are reported. */
export const SHAPE_KEYS = [
  'model_type',
  'architectures',
  'hidden_size',
  'num_hidden_layers',
  'intermediate_size',
  'num_attention_heads',
  'num_key_value_heads',
  'head_dim',
] as const;

export interface ConfiguredModel {
  id: string;
  config: Record<string, unknown> | null;
}

function shown(v: unknown): string {
  if (Array.isArray(v)) return v.map(String).join(', ');
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/**
 * One line per config key where a model differs from the reference (the base, else the first model),
 * and one per model without a config. Keys a config leaves out are not compared.
 */
export function configDifferences(reference: ConfiguredModel, others: readonly ConfiguredModel[]): string[] {
  const lines: string[] = [];
  const refName = (key: string) => `${shown(reference.config?.[key])} in ${reference.id}`;
  for (const m of others) {
    if (!m.config) {
      lines.push(`${m.id} has no config.json: only its tensor names and shapes can be compared`);
      continue;
    }
    if (!reference.config) continue;
    for (const key of SHAPE_KEYS) {
      const a = m.config[key];
      const b = reference.config[key];
      if (a === undefined || b === undefined || JSON.stringify(a) === JSON.stringify(b)) continue;
      lines.push(`${key} ${shown(a)} in ${m.id} vs ${refName(key)}`);
    }
  }
  if (!reference.config && others.length > 0) lines.unshift(`${reference.id} has no config.json: only tensor names and shapes can be compared`);
  return lines;
}

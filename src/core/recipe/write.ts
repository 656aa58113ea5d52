/**
 * Recipe → mergekit YAML: snake_case keys in mergekit's usual order (slices or models, merge_method,
 * base_model, parameters, dtype, out_dtype, tokenizer_source, tokenizer, chat_template), gradient
 * lists and layer ranges in flow style (`[1, 0.7, 0.1]`) as mergekit writes them.
 * parseRecipe(recipeToYaml(r)) deep-equals r.
 *
 * The text is also read correctly by PyYAML (YAML 1.1), which mergekit uses: strings that YAML 1.1
 * would take for booleans or numbers (`yes`, `on`, `1_000`) are quoted, and floats in exponent
 * form get a decimal point (`1.0e-7`: PyYAML reads `1e-7` as a string).
 */
import { Document, isScalar, visit, type ScalarTag } from 'yaml';
import { TORCH_DTYPE_NAMES } from '../dtype.ts';
import type { ParamCondition, ParamValue, Recipe, RecipeSlice, TokenEmbeddingConfig, TokenizerConfig } from './types.ts';

export function recipeToYaml(recipe: Recipe): string {
  const out: Record<string, unknown> = {};
  if (recipe.slices !== undefined) {
    out.slices = recipe.slices.map(plainSlice);
  } else {
    out.models = recipe.models.map((m) => {
      const entry: Record<string, unknown> = { model: m.model };
      if (Object.keys(m.parameters ?? {}).length > 0) entry.parameters = plainParams(m.parameters);
      return entry;
    });
  }
  out.merge_method = recipe.mergeMethod;
  if (recipe.baseModel !== undefined) out.base_model = recipe.baseModel;
  if (Object.keys(recipe.parameters ?? {}).length > 0) out.parameters = plainParams(recipe.parameters);
  if (recipe.dtype !== undefined) out.dtype = TORCH_DTYPE_NAMES[recipe.dtype];
  if (recipe.outDtype !== undefined) out.out_dtype = TORCH_DTYPE_NAMES[recipe.outDtype];
  if (recipe.tokenizerSource !== undefined) out.tokenizer_source = recipe.tokenizerSource;
  if (recipe.tokenizer !== undefined) out.tokenizer = plainTokenizer(recipe.tokenizer);
  if (recipe.chatTemplate !== undefined) out.chat_template = recipe.chatTemplate;

  const doc = new Document(out, { version: '1.1', customTags: [pyYamlExponentFloat] });
  visit(doc, {
    Seq(_, seq) {
      if (seq.items.length > 0 && seq.items.every((item) => isScalar(item) && typeof item.value === 'number')) {
        seq.flow = true;
      }
    },
    Scalar(_, node) {
      if (typeof node.value === 'number' && Number.isFinite(node.value) && String(node.value).includes('e')) {
        node.format = PY_EXP;
      }
    },
  });
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

const PY_EXP = 'PY_EXP';

/** Exponent-form floats as PyYAML reads them: a '.' in the mantissa and a signed exponent. */
const pyYamlExponentFloat: ScalarTag = {
  identify: (value) => typeof value === 'number',
  default: true,
  tag: 'tag:yaml.org,2002:float',
  format: PY_EXP,
  // Only used for writing; the test never matches, so reading is unaffected.
  test: /$^/,
  resolve: (text) => Number(text),
  stringify: ({ value }) => {
    const [mantissa, exponent] = String(value).split('e');
    const sign = exponent.startsWith('-') || exponent.startsWith('+') ? '' : '+';
    return `${mantissa.includes('.') ? mantissa : `${mantissa}.0`}e${sign}${exponent}`;
  },
};

/** Conditions written `filter` first, and without `filter` when it has none. */
function plainParams(params: Record<string, ParamValue>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(params)) {
    if (Array.isArray(value) && !value.every((v) => typeof v === 'number')) {
      out[name] = (value as ParamCondition[]).map((c) => (c.filter !== undefined ? { filter: c.filter, value: c.value } : { value: c.value }));
    } else {
      out[name] = value;
    }
  }
  return out;
}

function plainSlice(slice: RecipeSlice): Record<string, unknown> {
  const out: Record<string, unknown> = {
    sources: slice.sources.map((s) => {
      const entry: Record<string, unknown> = { model: s.model, layer_range: [...s.layerRange] };
      if (Object.keys(s.parameters).length > 0) entry.parameters = plainParams(s.parameters);
      return entry;
    }),
  };
  if (slice.baseModel !== undefined) out.base_model = slice.baseModel;
  if (Object.keys(slice.parameters).length > 0) out.parameters = plainParams(slice.parameters);
  return out;
}

function plainTokenizer(config: TokenizerConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { source: config.source };
  if (config.tokens !== undefined) {
    out.tokens = Object.fromEntries(Object.entries(config.tokens).map(([token, entry]) => [token, plainTokenEntry(entry)]));
  }
  if (config.padToMultipleOf !== undefined) out.pad_to_multiple_of = config.padToMultipleOf;
  return out;
}

function plainTokenEntry(entry: TokenEmbeddingConfig): Record<string, unknown> | null {
  const out: Record<string, unknown> = {};
  const src = entry.source;
  if (src?.kind === 'model') out.source = src.model;
  else if (src?.kind === 'zero') out.source = { kind: 'zero' };
  else if (src?.kind === 'model_token') out.source = src.token !== undefined ? { kind: 'model_token', model: src.model, token: src.token } : { kind: 'model_token', model: src.model, token_id: src.tokenId };
  if (entry.force !== undefined) out.force = entry.force;
  return Object.keys(out).length > 0 ? out : null;
}

/**
 * What a push uploads: the exported folder as it is, except the model card, which is written again
 * for the Hub (license, per-layer coefficients image, analysis summary) with the image beside it.
 * The CLI (`merge-studio push`) and the studio both call this, so the same folder and the same
 * inputs give the same bytes on the Hub. Files are Blobs (read from disk or OPFS when uploaded, never
 * all in memory); only the recipe, the config, the index or safetensors headers, and small text files
 * checked for the token are read here.
 */
import { hubBaseModels, modelCard, type CardAnalysis } from '../model-card.ts';
import type { MethodSchema } from '../params.ts';
import { parseRecipe } from '../recipe/parse.ts';
import { numLayersOf } from '../recipe/resolve.ts';
import type { Recipe } from '../recipe/types.ts';
import { readSafetensorsHeader } from '../safetensors/header.ts';
import { blobByteSource } from '../sources/blob.ts';
import { coefficientsSvg, layerCoefficients } from './coefficients.ts';

export interface PublishFile {
  /** Path in the repo, `/`-separated. */
  path: string;
  blob: Blob;
}

/** A merge method as publishing needs it: its parameters, and how the card names it. */
export interface PublishMethodInfo extends MethodSchema {
  prettyName: string;
  referenceUrl?: string;
}

/** Finds a method by name; `names`, when given, lets an unknown `merge_method` be answered with the valid ones. */
export type PublishMethodLookup = ((name: string) => PublishMethodInfo | undefined) & { readonly names?: readonly string[] };

/** A folder that cannot be published as it is; the message says which file and why. */
export class PublishError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PublishError';
  }
}

export const CARD_FILE = 'README.md';
export const RECIPE_FILE = 'mergekit_config.yml';
export const COEFFICIENTS_IMAGE = 'merge_coefficients.svg';
const PICKLE = /\.(bin|pt|pth|ckpt|pkl|pickle)$/i;
/** Text files up to this size are checked for the token before anything is sent. */
const SCANNED_TEXT_BYTES = 4 * 1024 * 1024;

export interface PrepareOptions {
  /** The exported folder's files (paths relative to it). */
  files: readonly PublishFile[];
  /** The merge methods by name (the engine's registry, passed in: core does not import the GPU code). */
  methods: PublishMethodLookup;
  /** The license of each input, by recipe reference (null: unknown or none), e.g. from hubLicenses. */
  licenses?: Readonly<Record<string, string | null>>;
  /** A license chosen by the user: wins over the inputs'. */
  license?: string | null;
  analysis?: CardAnalysis | null;
  /** The card's title (the repo id). */
  title?: string;
  /** Strings that must appear in no published file (the access token). */
  secrets?: readonly string[];
}

export interface PreparedPublish {
  /** What to upload, sorted by path. */
  files: PublishFile[];
  card: string;
  recipe: Recipe;
  /** The license in the card, or null. */
  license: string | null;
  /** Things the user may want to know (a file left out, why there is no license). */
  notes: string[];
}

/** A repo path we publish: `/`-separated, no empty, `.` or `..` segments. */
function pathProblem(path: string): string | null {
  if (path === '' || path.startsWith('/') || path.includes('\\')) return 'is not a relative path';
  if (path.split('/').some((s) => s === '' || s === '.' || s === '..')) return 'has an empty, "." or ".." part';
  return null;
}

/**
 * The license every input agrees on: each one (base and merged models) must have a known license, and
 * the same one. Otherwise null, with the reason.
 */
export function agreedLicense(recipe: Recipe, licenses: Readonly<Record<string, string | null>>): { license: string | null; reason: string } {
  const refs = [...new Set([...(recipe.baseModel ? [recipe.baseModel] : []), ...recipe.models.map((m) => m.model)])];
  const unknown = refs.filter((r) => !licenses[r]);
  if (unknown.length > 0) return { license: null, reason: `no known license for ${unknown.join(', ')}` };
  const found = [...new Set(refs.map((r) => licenses[r]!))];
  if (found.length > 1) return { license: null, reason: `the inputs have different licenses (${found.join(', ')})` };
  return { license: found[0], reason: `every input is ${found[0]}` };
}

async function textOf(file: PublishFile | undefined): Promise<string | null> {
  return file ? file.blob.text() : null;
}

/** Tensor names of the merged model: from the shard index when there is one, else from each file's header. */
async function tensorNames(files: readonly PublishFile[]): Promise<string[]> {
  const index = files.find((f) => f.path === 'model.safetensors.index.json');
  if (index) {
    try {
      const json = JSON.parse(await index.blob.text()) as { weight_map?: Record<string, string> };
      if (json.weight_map && typeof json.weight_map === 'object') return Object.keys(json.weight_map);
    } catch {
      throw new PublishError('model.safetensors.index.json is not valid JSON');
    }
  }
  const names: string[] = [];
  for (const f of files.filter((x) => x.path.endsWith('.safetensors'))) {
    const header = await readSafetensorsHeader(blobByteSource(f.path, f.blob));
    for (const t of header.tensors) names.push(t.name);
  }
  return names;
}

export async function preparePublish(opts: PrepareOptions): Promise<PreparedPublish> {
  const notes: string[] = [];
  const kept: PublishFile[] = [];
  for (const f of opts.files) {
    const problem = pathProblem(f.path);
    if (problem) throw new PublishError(`file "${f.path}" ${problem}`);
    if (f.path.split('/').some((s) => s.startsWith('.'))) {
      notes.push(`${f.path} left out (hidden file)`);
      continue;
    }
    if (PICKLE.test(f.path)) {
      throw new PublishError(`${f.path}: pickle files run code when loaded and are not published; keep only .safetensors weights`);
    }
    kept.push(f);
  }
  const byPath = new Map(kept.map((f) => [f.path, f]));
  const recipeText = await textOf(byPath.get(RECIPE_FILE));
  if (recipeText === null) throw new PublishError(`the folder has no ${RECIPE_FILE}: publish a folder exported by Merge Studio (or mergekit)`);
  if (!kept.some((f) => f.path.endsWith('.safetensors'))) throw new PublishError('the folder has no .safetensors weights');
  const recipe = parseRecipe(recipeText, opts.methods, { file: RECIPE_FILE });
  const method = opts.methods(recipe.mergeMethod)!;

  let license: string | null = opts.license ? opts.license : null;
  if (!license && opts.licenses) {
    const agreed = agreedLicense(recipe, opts.licenses);
    license = agreed.license;
    notes.push(license ? `license ${license}: ${agreed.reason}` : `no license in the card: ${agreed.reason}`);
  }

  let config: Record<string, unknown> | null = null;
  const configText = await textOf(byPath.get('config.json'));
  if (configText === null) notes.push('the folder has no config.json: transformers will not load the model from the Hub');
  else {
    try {
      config = JSON.parse(configText) as Record<string, unknown>;
    } catch {
      throw new PublishError('config.json is not valid JSON');
    }
  }
  const names = await tensorNames(kept);
  const numLayers = numLayersOf(config, names);
  const series = numLayers > 0 ? layerCoefficients(recipe, method, names, numLayers) : [];

  let analysis = opts.analysis ?? undefined;
  const merged = recipe.models.map((m) => m.model).filter((m) => m !== recipe.baseModel);
  if (analysis && analysis.models.join('\n') !== merged.join('\n')) {
    notes.push('the analysis is of other models than this recipe\'s: left out of the card');
    analysis = undefined;
  }
  const card = modelCard({
    recipe,
    yaml: recipeText,
    methodPrettyName: method.prettyName,
    referenceUrl: method.referenceUrl,
    license: license ?? undefined,
    title: opts.title,
    coefficientsImage: series.length > 0 ? COEFFICIENTS_IMAGE : undefined,
    analysis,
  });
  byPath.set(CARD_FILE, { path: CARD_FILE, blob: new Blob([card], { type: 'text/markdown' }) });
  if (series.length > 0) {
    const svg = coefficientsSvg(series, `${method.prettyName}: per-layer coefficients`);
    byPath.set(COEFFICIENTS_IMAGE, { path: COEFFICIENTS_IMAGE, blob: new Blob([svg], { type: 'image/svg+xml' }) });
  }
  const files = [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  await checkNoSecrets(files, opts.secrets ?? []);
  if (hubBaseModels(recipe).length === 0) notes.push('no input is a Hub repo: the card has no base_model');
  return { files, card, recipe, license, notes };
}

/** Refuse to publish a text file that holds one of `secrets` (an access token pasted into a config, say). */
async function checkNoSecrets(files: readonly PublishFile[], secrets: readonly string[]): Promise<void> {
  const live = secrets.filter((s) => s.length >= 8);
  if (live.length === 0) return;
  for (const f of files) {
    if (f.path.endsWith('.safetensors') || f.blob.size > SCANNED_TEXT_BYTES) continue;
    const text = await f.blob.text();
    if (live.some((s) => text.includes(s))) {
      throw new PublishError(`${f.path} contains your access token: remove it from the file before publishing`);
    }
  }
}

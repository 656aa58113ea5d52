/**
 * What the user dropped (or picked with the file inputs), sorted into models and recipes.
 *
 * Folders are walked with the entries API (`DataTransferItem.webkitGetAsEntry()`); each folder that
 * holds `.safetensors` files is one model named after it (a dropped folder of model folders gives
 * one model per sub-folder). Loose files make one model when they form one (a `model.safetensors`,
 * an index with its shards, or a single weights file with its config), else one model per weights
 * file. `.yml`/`.yaml` files are recipes to import.
 */

export interface DroppedFile {
  /** Path inside the model's folder, `/`-separated. */
  path: string;
  blob: Blob;
}

export interface DroppedModel {
  /** The folder's name, or the weights file's name without `.safetensors`. */
  name: string;
  files: DroppedFile[];
}

export interface DropContents {
  models: DroppedModel[];
  /** Recipe files (`.yml`/`.yaml`), by name. */
  recipes: { name: string; blob: Blob }[];
}

const RECIPE_FILE = /\.ya?ml$/i;
const WEIGHTS_FILE = /\.safetensors$/i;
const SHARD_FILE = /^model-\d{5}-of-\d{5}\.safetensors$/;
/** Name for loose files that do not name their model (a bare `model.safetensors`). */
export const LOOSE_MODEL_NAME = 'dropped-model';

/**
 * Take the entries out of a drop. Must run synchronously inside the `drop` handler: the items are
 * emptied once it returns. Items without an entry (synthetic drops, some platforms) come as files.
 */
export function takeDroppedItems(dt: DataTransfer): { entries: FileSystemEntry[]; looseFiles: File[] } {
  const entries: FileSystemEntry[] = [];
  const looseFiles: File[] = [];
  for (const item of Array.from(dt.items)) {
    if (item.kind !== 'file') continue;
    const entry = typeof item.webkitGetAsEntry === 'function' ? item.webkitGetAsEntry() : null;
    if (entry) entries.push(entry);
    else {
      const file = item.getAsFile();
      if (file) looseFiles.push(file);
    }
  }
  if (entries.length === 0 && looseFiles.length === 0) looseFiles.push(...Array.from(dt.files));
  return { entries, looseFiles };
}

/** Walk dropped entries and sort everything into models and recipes. */
export async function readDrop(entries: readonly FileSystemEntry[], looseFiles: readonly File[]): Promise<DropContents> {
  const models: DroppedModel[] = [];
  const recipes: DropContents['recipes'] = [];
  const loose = [...looseFiles];
  for (const entry of entries) {
    if (entry.isDirectory) {
      const files = await walkDirectory(entry as FileSystemDirectoryEntry, '');
      models.push(...modelsInFolder(entry.name, files, recipes));
    } else if (entry.isFile) {
      loose.push(await fileOf(entry as FileSystemFileEntry));
    }
  }
  const grouped = groupLooseFiles(loose);
  return { models: [...models, ...grouped.models], recipes: [...recipes, ...grouped.recipes] };
}

/**
 * Files picked with `<input type=file webkitdirectory>`: each has `webkitRelativePath`
 * (`folder/sub/file`); the top folder plays the dropped folder.
 */
export function readPickedFolder(files: readonly File[]): DropContents {
  const byTop = new Map<string, DroppedFile[]>();
  const loose: File[] = [];
  for (const file of files) {
    const rel = file.webkitRelativePath;
    const slash = rel.indexOf('/');
    if (!rel || slash < 0) {
      loose.push(file);
      continue;
    }
    const top = rel.slice(0, slash);
    let list = byTop.get(top);
    if (!list) byTop.set(top, (list = []));
    list.push({ path: rel.slice(slash + 1), blob: file });
  }
  const recipes: DropContents['recipes'] = [];
  const models = [...byTop].flatMap(([name, list]) => modelsInFolder(name, list, recipes));
  const grouped = groupLooseFiles(loose);
  return { models: [...models, ...grouped.models], recipes: [...recipes, ...grouped.recipes] };
}

/** A folder's files as models: itself when it holds weights, else each sub-folder that does. */
function modelsInFolder(name: string, files: DroppedFile[], recipes: DropContents['recipes']): DroppedModel[] {
  const topLevel = files.filter((f) => !f.path.includes('/'));
  for (const f of topLevel) if (RECIPE_FILE.test(f.path)) recipes.push({ name: f.path, blob: f.blob });
  const modelFiles = files.filter((f) => !(RECIPE_FILE.test(f.path) && !f.path.includes('/')));
  if (topLevel.some((f) => WEIGHTS_FILE.test(f.path))) return [{ name, files: modelFiles }];
  const bySub = new Map<string, DroppedFile[]>();
  for (const f of files) {
    const slash = f.path.indexOf('/');
    if (slash < 0) continue;
    const sub = f.path.slice(0, slash);
    let list = bySub.get(sub);
    if (!list) bySub.set(sub, (list = []));
    list.push({ path: f.path.slice(slash + 1), blob: f.blob });
  }
  const subModels = [...bySub].filter(([, list]) => list.some((f) => !f.path.includes('/') && WEIGHTS_FILE.test(f.path)));
  if (subModels.length > 0) return subModels.map(([sub, list]) => ({ name: sub, files: list }));
  // No weights anywhere: still one model, so opening it says what is missing (or that pickles are refused).
  return modelFiles.length > 0 ? [{ name, files: modelFiles }] : [];
}

/** Loose files (no folder): recipes apart, the rest as one model when they form one. */
export function groupLooseFiles(files: readonly File[]): DropContents {
  const recipes = files.filter((f) => RECIPE_FILE.test(f.name)).map((f) => ({ name: f.name, blob: f as Blob }));
  const rest = files.filter((f) => !RECIPE_FILE.test(f.name));
  const weights = rest.filter((f) => WEIGHTS_FILE.test(f.name));
  const oneModel =
    weights.length <= 1 ||
    rest.some((f) => f.name === 'model.safetensors' || f.name === 'model.safetensors.index.json') ||
    weights.every((f) => SHARD_FILE.test(f.name));
  const asFiles = (list: readonly File[]) => list.map((blob) => ({ path: blob.name, blob }));
  if (rest.length === 0) return { models: [], recipes };
  if (oneModel) {
    const named = weights.length === 1 && weights[0].name !== 'model.safetensors' ? weights[0].name.replace(WEIGHTS_FILE, '') : LOOSE_MODEL_NAME;
    return { models: [{ name: named, files: asFiles(rest) }], recipes };
  }
  // Several unrelated weights files: one model each (other loose files cannot be assigned, so are left out).
  return { models: weights.map((w) => ({ name: w.name.replace(WEIGHTS_FILE, ''), files: asFiles([w]) })), recipes };
}

async function walkDirectory(dir: FileSystemDirectoryEntry, prefix: string): Promise<DroppedFile[]> {
  const out: DroppedFile[] = [];
  for (const entry of await readAllEntries(dir)) {
    if (entry.name.startsWith('.')) continue; // .git, .DS_Store, .cache
    if (entry.isDirectory) out.push(...(await walkDirectory(entry as FileSystemDirectoryEntry, `${prefix}${entry.name}/`)));
    else if (entry.isFile) out.push({ path: `${prefix}${entry.name}`, blob: await fileOf(entry as FileSystemFileEntry) });
  }
  return out;
}

/** readEntries returns entries in batches (100 in Chromium) until an empty batch. */
async function readAllEntries(dir: FileSystemDirectoryEntry): Promise<FileSystemEntry[]> {
  const reader = dir.createReader();
  const all: FileSystemEntry[] = [];
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) return all;
    all.push(...batch);
  }
}

function fileOf(entry: FileSystemFileEntry): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

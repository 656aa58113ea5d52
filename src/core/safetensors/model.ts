/**
 * Opening a model from a FileTree: find its safetensors (sharded with an index, single, or one dropped
 * file), read and validate every header with range reads, and read tensor bytes only when asked.
 */
import type { ByteSource, FileTree, ModelSource, TensorInfo } from '../source.ts';
import { ModelError } from './errors.ts';
import { readSafetensorsHeader, type SafetensorsHeader, type TensorEntry } from './header.ts';
import { INDEX_FILE_NAME, SINGLE_FILE_NAME } from './writer.ts';

export { ModelError };

const CONFIG_FILE_NAME = 'config.json';
/** Index files are small; a bigger one is not an index we should parse. */
const MAX_JSON_FILE_BYTES = 50_000_000;
const PICKLE_EXTENSIONS = ['.bin', '.pt', '.pth', '.ckpt', '.pkl'];

interface Located {
  source: ByteSource;
  /** Absolute offset of the tensor's first byte in its file. */
  offset: number;
  info: TensorInfo;
}

/** Open the model in `tree`; only headers (and config/index JSON) are read. */
export async function openModel(tree: FileTree, opts: { id?: string; signal?: AbortSignal } = {}): Promise<ModelSource> {
  const id = opts.id ?? tree.name;
  const { signal } = opts;
  const paths = await tree.list(signal);
  const pathSet = new Set(paths);

  let shards: { path: string; names: Set<string> | null }[];
  if (pathSet.has(INDEX_FILE_NAME)) {
    shards = await readIndex(tree, id, signal);
  } else if (pathSet.has(SINGLE_FILE_NAME)) {
    shards = [{ path: SINGLE_FILE_NAME, names: null }];
  } else {
    shards = [{ path: pickSingleSafetensors(paths, id), names: null }];
  }

  const located = new Map<string, Located>();
  let metadata: Record<string, string> | null = null;
  for (const shard of shards) {
    const source = await tree.open(shard.path, signal);
    if (source === null) {
      throw new ModelError(id, `${INDEX_FILE_NAME} names this shard but the file is missing`, { file: shard.path });
    }
    const header = await readSafetensorsHeader(source, signal);
    metadata ??= header.metadata;
    addShardTensors(located, header, source, shard, id);
  }

  const config = pathSet.has(CONFIG_FILE_NAME) ? await readConfig(tree, id, signal) : null;
  return new OpenedModel(id, tree, located, config, metadata ?? {});
}

function addShardTensors(
  located: Map<string, Located>,
  header: SafetensorsHeader,
  source: ByteSource,
  shard: { path: string; names: Set<string> | null },
  id: string,
): void {
  const byName = new Map<string, TensorEntry>(header.tensors.map((t) => [t.name, t]));
  if (shard.names !== null) {
    for (const name of shard.names) {
      if (!byName.has(name)) {
        throw new ModelError(id, `${INDEX_FILE_NAME} puts this tensor in ${shard.path}, which does not hold it`, {
          file: shard.path,
          tensor: name,
        });
      }
    }
  }
  for (const t of header.tensors) {
    // With an index, the weight map decides which shard a tensor is read from (as transformers does).
    if (shard.names !== null && !shard.names.has(t.name)) continue;
    located.set(t.name, {
      source,
      offset: header.dataOffset + t.begin,
      info: { name: t.name, dtype: t.dtype, shape: t.shape, byteLength: t.byteLength },
    });
  }
}

/** Shards in file-name order, each with the tensors the weight map assigns to it. */
async function readIndex(
  tree: FileTree,
  id: string,
  signal?: AbortSignal,
): Promise<{ path: string; names: Set<string> }[]> {
  const index = await readJsonFile(tree, INDEX_FILE_NAME, id, signal);
  const weightMap = index.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new ModelError(id, '"weight_map" must be an object mapping tensor names to shard files', { file: INDEX_FILE_NAME });
  }
  const byShard = new Map<string, Set<string>>();
  for (const [tensor, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string' || !shard.endsWith('.safetensors')) {
      throw new ModelError(id, `weight_map entry must name a .safetensors file, got ${JSON.stringify(shard)}`, {
        file: INDEX_FILE_NAME,
        tensor,
      });
    }
    let names = byShard.get(shard);
    if (!names) byShard.set(shard, (names = new Set()));
    names.add(tensor);
  }
  if (byShard.size === 0) throw new ModelError(id, 'weight_map is empty', { file: INDEX_FILE_NAME });
  return [...byShard.keys()].sort().map((path) => ({ path, names: byShard.get(path)! }));
}

/** Without model.safetensors(.index.json): a tree holding exactly one .safetensors file (a dropped file). */
function pickSingleSafetensors(paths: readonly string[], id: string): string {
  const safetensors = paths.filter((p) => p.endsWith('.safetensors'));
  if (safetensors.length === 1) return safetensors[0];
  if (safetensors.length > 1) {
    throw new ModelError(
      id,
      `found ${safetensors.length} .safetensors files (${safetensors.slice(0, 5).join(', ')}${safetensors.length > 5 ? ', ...' : ''}) ` +
        `but no ${SINGLE_FILE_NAME} or ${INDEX_FILE_NAME} saying which make up the model`,
    );
  }
  const pickles = paths.filter((p) => PICKLE_EXTENSIONS.some((ext) => p.endsWith(ext)));
  if (pickles.length > 0) {
    throw new ModelError(
      id,
      `has only PyTorch pickle weights (${pickles.slice(0, 3).join(', ')}); pickles are refused because loading ` +
        'them runs arbitrary code. Convert the model to safetensors, or pick a repository that has .safetensors files',
    );
  }
  throw new ModelError(id, `no ${SINGLE_FILE_NAME}, ${INDEX_FILE_NAME} or other .safetensors file found`);
}

async function readJsonFile(
  tree: FileTree,
  path: string,
  id: string,
  signal?: AbortSignal,
): Promise<Record<string, unknown>> {
  const source = await tree.open(path, signal);
  if (source === null) throw new ModelError(id, 'file is listed but cannot be opened', { file: path });
  if (source.size > MAX_JSON_FILE_BYTES) {
    throw new ModelError(id, `file is ${source.size} bytes, over the ${MAX_JSON_FILE_BYTES}-byte limit for JSON`, { file: path });
  }
  const bytes = await source.read(0, source.size, signal);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new ModelError(id, `not valid JSON (${(e as Error).message})`, { file: path });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ModelError(id, 'must hold a JSON object', { file: path });
  }
  return json as Record<string, unknown>;
}

function readConfig(tree: FileTree, id: string, signal?: AbortSignal): Promise<Record<string, unknown>> {
  return readJsonFile(tree, CONFIG_FILE_NAME, id, signal);
}

class OpenedModel implements ModelSource {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly #located: ReadonlyMap<string, Located>;

  constructor(
    readonly id: string,
    readonly tree: FileTree,
    located: Map<string, Located>,
    readonly config: Record<string, unknown> | null,
    readonly metadata: Record<string, string>,
  ) {
    this.#located = located;
    this.tensors = new Map([...located].map(([name, l]) => [name, l.info]));
  }

  async readTensor(name: string, signal?: AbortSignal): Promise<Uint8Array> {
    const l = this.#locate(name);
    return l.source.read(l.offset, l.info.byteLength, signal);
  }

  async readTensorRange(name: string, byteOffset: number, byteLength: number, signal?: AbortSignal): Promise<Uint8Array> {
    const l = this.#locate(name);
    const size = l.info.byteLength;
    if (
      !Number.isSafeInteger(byteOffset) ||
      !Number.isSafeInteger(byteLength) ||
      byteOffset < 0 ||
      byteLength < 0 ||
      byteOffset + byteLength > size
    ) {
      throw new ModelError(this.id, `byte range [${byteOffset}, ${byteOffset + byteLength}) is outside its ${size} bytes`, {
        tensor: name,
      });
    }
    return l.source.read(l.offset + byteOffset, byteLength, signal);
  }

  #locate(name: string): Located {
    const l = this.#located.get(name);
    if (l === undefined) throw new ModelError(this.id, 'no such tensor in the model', { tensor: name });
    return l;
  }
}

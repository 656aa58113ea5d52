/**
 * Streaming safetensors output: tensors are planned into shards up front (so every header is known
 * before its data), then written tensor by tensor, chunk by chunk, straight to the sinks of an output
 * folder. A shard is never held in memory whole.
 */
import { isDType, type DType } from '../dtype.ts';
import { encodeSafetensorsHeader, formatShape, tensorDataBytes, type HeaderTensorSpec } from './header.ts';
import { OutputFolderError, SafetensorsWriteError } from './errors.ts';

/** Where one output file's bytes go. */
export interface ByteSink {
  write(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

/** A folder being written: complete or absent. commit() makes every file visible at once; abort() removes all. */
export interface OutputFolder {
  readonly name: string;
  create(path: string): Promise<ByteSink>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

export interface OutputTensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

/** mergekit's and transformers' default shard size. */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

export const SINGLE_FILE_NAME = 'model.safetensors';
export const INDEX_FILE_NAME = 'model.safetensors.index.json';

export interface PlannedTensor extends OutputTensorSpec {
  byteLength: number;
}

export interface ShardPlan {
  /** `model.safetensors`, or `model-00001-of-00003.safetensors` when there are several. */
  file: string;
  tensors: PlannedTensor[];
  /** Sum of the tensors' bytes (header excluded). */
  dataBytes: number;
}

/**
 * Rejects output paths that could escape the folder or that no file system accepts:
 * relative, `/`-separated, no empty, `.` or `..` segments, no backslashes or NUL.
 */
export function checkOutputPath(folder: string, path: string): void {
  const reason =
    path === ''
      ? 'empty path'
      : path.startsWith('/')
        ? 'absolute path'
        : /[\\\0]/.test(path)
          ? 'path contains a backslash or NUL'
          : path.split('/').some((s) => s === '' || s === '.' || s === '..')
            ? 'path has an empty, "." or ".." segment'
            : null;
  if (reason !== null) throw new OutputFolderError(folder, reason, path);
}

function shardFileName(index: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

function planTensor(t: OutputTensorSpec): PlannedTensor {
  const where = { tensor: t.name };
  if (typeof t.name !== 'string' || t.name === '') throw new SafetensorsWriteError('tensor name must be a non-empty string', where);
  if (t.name === '__metadata__') throw new SafetensorsWriteError('"__metadata__" is reserved for the header metadata', where);
  if (!isDType(t.dtype)) throw new SafetensorsWriteError(`unknown dtype ${JSON.stringify(t.dtype)}`, where);
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsWriteError(`shape must be non-negative integers, got ${JSON.stringify(t.shape)}`, where);
  }
  const bytes = tensorDataBytes(t.dtype, t.shape);
  if (typeof bytes === 'string') throw new SafetensorsWriteError(bytes, where);
  return { name: t.name, dtype: t.dtype, shape: [...t.shape], byteLength: bytes };
}

/**
 * Split tensors into shards, greedily in the given order: a new shard starts when the next tensor would
 * push the current one over `maxShardBytes` (a tensor larger than the limit gets a shard of its own).
 * No tensors gives one empty `model.safetensors`.
 */
export function planShards(tensors: readonly OutputTensorSpec[], maxShardBytes = DEFAULT_MAX_SHARD_BYTES): ShardPlan[] {
  if (!(maxShardBytes > 0)) throw new SafetensorsWriteError(`maxShardBytes must be positive, got ${maxShardBytes}`);
  const seen = new Set<string>();
  const groups: PlannedTensor[][] = [[]];
  let currentBytes = 0;
  for (const spec of tensors) {
    const t = planTensor(spec);
    if (seen.has(t.name)) throw new SafetensorsWriteError('tensor is listed twice', { tensor: t.name });
    seen.add(t.name);
    let current = groups[groups.length - 1];
    if (current.length > 0 && currentBytes + t.byteLength > maxShardBytes) {
      current = [];
      groups.push(current);
      currentBytes = 0;
    }
    current.push(t);
    currentBytes += t.byteLength;
  }
  return groups.map((group, i) => ({
    file: groups.length === 1 ? SINGLE_FILE_NAME : shardFileName(i, groups.length),
    tensors: group,
    dataBytes: group.reduce((sum, t) => sum + t.byteLength, 0),
  }));
}

/**
 * The index transformers writes beside sharded weights (`json.dumps(index, indent=2, sort_keys=True)`).
 */
export function encodeShardIndex(shards: readonly ShardPlan[]): string {
  const totalSize = shards.reduce((sum, s) => sum + s.dataBytes, 0);
  const weights: [string, string][] = [];
  for (const shard of shards) for (const t of shard.tensors) weights.push([t.name, shard.file]);
  weights.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // Written out by hand: an object would reorder integer-like names ahead of the sorted order.
  const weightLines = weights.map(([name, file]) => `    ${JSON.stringify(name)}: ${JSON.stringify(file)}`);
  return [
    '{',
    '  "metadata": {',
    `    "total_size": ${totalSize}`,
    '  },',
    weightLines.length ? ['  "weight_map": {', weightLines.join(',\n'), '  }'].join('\n') : '  "weight_map": {}',
    '}',
    '',
  ].join('\n');
}

function checkMetadata(metadata: Record<string, string> | undefined): void {
  if (metadata === undefined) return;
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new SafetensorsWriteError(`metadata value of "${k}" must be a string`);
  }
}

/**
 * Writes a model as safetensors shards into an OutputFolder. Tensors must arrive in plan order
 * (`shards[].tensors`), each whole (`writeTensor`) or in consecutive chunks (`writeTensorChunk`); calls
 * must not overlap. `finish()` writes the index when sharded; committing the folder is the caller's.
 */
export class SafetensorsModelWriter {
  readonly shards: readonly ShardPlan[];
  readonly #folder: OutputFolder;
  readonly #metadata?: Record<string, string>;
  readonly #order: { tensor: PlannedTensor; shard: number }[] = [];
  readonly #known = new Set<string>();
  /** Index into #order of the tensor being written. */
  #cursor = 0;
  /** Bytes of the current tensor written so far. */
  #written = 0;
  #sink: ByteSink | null = null;
  #sinkShard = -1;
  #busy = false;
  #state: 'writing' | 'finished' | 'failed' = 'writing';

  constructor(
    folder: OutputFolder,
    tensors: readonly OutputTensorSpec[],
    opts: { maxShardBytes?: number; metadata?: Record<string, string> } = {},
  ) {
    checkMetadata(opts.metadata);
    this.#folder = folder;
    this.#metadata = opts.metadata;
    this.shards = planShards(tensors, opts.maxShardBytes);
    this.shards.forEach((shard, i) => {
      for (const tensor of shard.tensors) {
        this.#order.push({ tensor, shard: i });
        this.#known.add(tensor.name);
      }
    });
  }

  /** The name of the tensor expected next, or null when all were written. */
  get nextTensor(): string | null {
    return this.#cursor < this.#order.length ? this.#order[this.#cursor].tensor.name : null;
  }

  /** Write one tensor's bytes whole. */
  async writeTensor(name: string, bytes: Uint8Array): Promise<void> {
    this.#checkWritable();
    const current = this.#order[this.#cursor];
    if (current?.tensor.name === name) {
      if (this.#written > 0) throw this.#error(name, 'writeTensor called on a tensor already partly written in chunks');
      if (bytes.byteLength !== current.tensor.byteLength) {
        throw this.#error(name, `got ${bytes.byteLength} bytes but ${describeTensor(current.tensor)} is ${current.tensor.byteLength}`);
      }
    }
    await this.writeTensorChunk(name, bytes);
  }

  /** Write the next consecutive chunk of a tensor's bytes; the chunks must add up to its size exactly. */
  async writeTensorChunk(name: string, bytes: Uint8Array): Promise<void> {
    this.#checkWritable();
    const current = this.#order[this.#cursor];
    if (current === undefined || current.tensor.name !== name) throw this.#orderError(name);
    const tensor = current.tensor;
    if (this.#written + bytes.byteLength > tensor.byteLength) {
      throw this.#error(
        name,
        `got ${this.#written + bytes.byteLength} bytes so far but ${describeTensor(tensor)} is ${tensor.byteLength}`,
      );
    }
    this.#busy = true;
    try {
      if (this.#sinkShard !== current.shard) await this.#openShard(current.shard);
      if (bytes.byteLength > 0) await this.#sink!.write(bytes);
      this.#written += bytes.byteLength;
      if (this.#written === tensor.byteLength) {
        this.#cursor++;
        this.#written = 0;
        const next = this.#order[this.#cursor];
        if (next === undefined || next.shard !== current.shard) await this.#closeShard();
      }
    } catch (e) {
      this.#state = 'failed';
      throw e;
    } finally {
      this.#busy = false;
    }
  }

  /** Check every tensor was written, write the index when sharded; returns the files written. */
  async finish(): Promise<string[]> {
    this.#checkWritable();
    const missing = this.#order.length - this.#cursor;
    if (missing > 0) {
      const name = this.#order[this.#cursor].tensor.name;
      const partly = this.#written > 0 ? ` (${this.#written} of ${this.#order[this.#cursor].tensor.byteLength} bytes written)` : '';
      throw this.#error(name, `${missing} tensor(s) not written, starting with this one${partly}`);
    }
    this.#busy = true;
    try {
      // Only an empty model has a shard no tensor opened.
      for (let i = 0; i < this.shards.length; i++) {
        if (this.shards[i].tensors.length === 0) {
          await this.#openShard(i);
          await this.#closeShard();
        }
      }
      const files = this.shards.map((s) => s.file);
      if (this.shards.length > 1) {
        const sink = await this.#folder.create(INDEX_FILE_NAME);
        try {
          await sink.write(new TextEncoder().encode(encodeShardIndex(this.shards)));
          await sink.close();
        } catch (e) {
          await sink.abort();
          throw e;
        }
        files.push(INDEX_FILE_NAME);
      }
      this.#state = 'finished';
      return files;
    } catch (e) {
      this.#state = 'failed';
      throw e;
    } finally {
      this.#busy = false;
    }
  }

  /** Stop writing: the open shard's sink is aborted. Removing the folder is its owner's abort(). */
  async abort(): Promise<void> {
    this.#state = 'failed';
    const sink = this.#sink;
    this.#sink = null;
    if (sink) await sink.abort();
  }

  async #openShard(index: number): Promise<void> {
    const shard = this.shards[index];
    const header = encodeSafetensorsHeader(shard.tensors as HeaderTensorSpec[], this.#metadata);
    this.#sink = await this.#folder.create(shard.file);
    this.#sinkShard = index;
    await this.#sink.write(header);
  }

  async #closeShard(): Promise<void> {
    const sink = this.#sink;
    this.#sink = null;
    await sink?.close();
  }

  #checkWritable(): void {
    if (this.#busy) throw new SafetensorsWriteError('a write is still in progress: await each call before the next');
    if (this.#state === 'finished') throw new SafetensorsWriteError('writer already finished');
    if (this.#state === 'failed') throw new SafetensorsWriteError('writer was aborted or failed earlier');
  }

  #orderError(name: string): SafetensorsWriteError {
    if (!this.#known.has(name)) return this.#error(name, 'unknown tensor: not in the output plan');
    const current = this.#order[this.#cursor];
    if (current === undefined) return this.#error(name, 'all tensors were already written');
    if (this.#written > 0) {
      return this.#error(
        name,
        `out of order: tensor "${current.tensor.name}" is only partly written (${this.#written} of ${current.tensor.byteLength} bytes)`,
      );
    }
    const position = this.#order.findIndex((o) => o.tensor.name === name);
    if (position < this.#cursor) return this.#error(name, 'already written');
    return this.#error(name, `out of order: tensor "${current.tensor.name}" comes next`);
  }

  #error(tensor: string, reason: string): SafetensorsWriteError {
    const entry = this.#order.find((o) => o.tensor.name === tensor);
    return new SafetensorsWriteError(reason, { file: entry ? this.shards[entry.shard].file : undefined, tensor });
  }
}

function describeTensor(t: PlannedTensor): string {
  return `${t.dtype} ${formatShape(t.shape)}`;
}

export interface InMemoryTensor {
  name: string;
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

/** A whole safetensors file in memory (tests, demo models); same header code as the streaming writer. */
export function serializeSafetensors(tensors: readonly InMemoryTensor[], metadata?: Record<string, string>): Uint8Array {
  checkMetadata(metadata);
  const seen = new Set<string>();
  const planned = tensors.map((t) => {
    const p = planTensor(t);
    if (seen.has(p.name)) throw new SafetensorsWriteError('tensor is listed twice', { tensor: p.name });
    seen.add(p.name);
    if (t.data.byteLength !== p.byteLength) {
      throw new SafetensorsWriteError(`data is ${t.data.byteLength} bytes but ${describeTensor(p)} is ${p.byteLength}`, {
        tensor: p.name,
      });
    }
    return p;
  });
  const header = encodeSafetensorsHeader(planned, metadata);
  const total = planned.reduce((sum, t) => sum + t.byteLength, header.byteLength);
  const out = new Uint8Array(total);
  out.set(header, 0);
  let at = header.byteLength;
  tensors.forEach((t) => {
    out.set(t.data, at);
    at += t.data.byteLength;
  });
  return out;
}

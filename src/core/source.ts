/**
 * Where checkpoint bytes come from. Every source (local disk in Node, dropped files in the browser,
 * the Hugging Face Hub over HTTP range reads, memory in tests) is a FileTree of ByteSources; a model is
 * opened from a FileTree by reading safetensors headers only, and tensors are read on demand.
 */
import type { DType } from './dtype.ts';

/** Random-access bytes of one file. */
export interface ByteSource {
  /** For messages: the file's path or URL (never with a token in it). */
  readonly name: string;
  readonly size: number;
  /** Read `length` bytes at `offset`; rejects if the range is outside the file. */
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
}

/** A folder of files (a model folder, a Hub repo at one commit, a set of dropped files). */
export interface FileTree {
  /** For messages: the folder path, `org/name@commit`, or "dropped files". */
  readonly name: string;
  /** Paths relative to the tree root, `/`-separated. */
  list(signal?: AbortSignal): Promise<string[]>;
  /** The file at `path`, or null if absent. */
  open(path: string, signal?: AbortSignal): Promise<ByteSource | null>;
}

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Bytes of tensor data. */
  byteLength: number;
}

/** An opened model: headers parsed, tensor data read on demand. */
export interface ModelSource {
  /** For messages and the model card: path or `org/name@revision`. */
  readonly id: string;
  readonly tree: FileTree;
  /** Every tensor, in file order (shard order, then offset). */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** Parsed config.json, or null when the model has none. */
  readonly config: Record<string, unknown> | null;
  /** The `__metadata__` of the (first) safetensors file. */
  readonly metadata: Record<string, string>;
  /** Read one tensor's bytes, or a byte range of them (for chunked processing). */
  readTensor(name: string, signal?: AbortSignal): Promise<Uint8Array>;
  readTensorRange(name: string, byteOffset: number, byteLength: number, signal?: AbortSignal): Promise<Uint8Array>;
}

/**
 * Errors of safetensors I/O. All are permanent (`transient = false`): retrying the same read or write
 * cannot succeed, so callers retry only transport errors (those come from the ByteSource, not from here).
 */

/** A safetensors file is malformed (bad header, offsets, sizes). */
export class SafetensorsError extends Error {
  /** The file's path or URL, as its ByteSource names it. */
  readonly file: string;
  /** The tensor the problem is in, when it is in one. */
  readonly tensor?: string;
  readonly reason: string;
  /** Permanent, like hub-errors' non-transient errors: retrying cannot help. */
  readonly transient = false;

  constructor(file: string, reason: string, tensor?: string) {
    super(tensor === undefined ? `${file}: ${reason}` : `${file}: tensor "${tensor}": ${reason}`);
    this.name = 'SafetensorsError';
    this.file = file;
    this.tensor = tensor;
    this.reason = reason;
  }
}

/** A model cannot be opened or read (no weights, pickle-only, bad index or config, unknown tensor). */
export class ModelError extends Error {
  /** The model's id (path or `org/name@revision`). */
  readonly model: string;
  /** The file inside the model the problem is in, when it is in one. */
  readonly file?: string;
  readonly tensor?: string;
  readonly reason: string;
  /** Permanent, like hub-errors' non-transient errors: retrying cannot help. */
  readonly transient = false;

  constructor(model: string, reason: string, where: { file?: string; tensor?: string } = {}) {
    const parts = [`model "${model}"`];
    if (where.file !== undefined) parts.push(where.file);
    if (where.tensor !== undefined) parts.push(`tensor "${where.tensor}"`);
    super(`${parts.join(': ')}: ${reason}`);
    this.name = 'ModelError';
    this.model = model;
    this.file = where.file;
    this.tensor = where.tensor;
    this.reason = reason;
  }
}

/** Tensors handed to the safetensors writer do not match its plan (order, sizes, names). */
export class SafetensorsWriteError extends Error {
  /** The output file being written, when one is concerned. */
  readonly file?: string;
  readonly tensor?: string;
  readonly reason: string;
  /** Permanent, like hub-errors' non-transient errors: retrying cannot help. */
  readonly transient = false;

  constructor(reason: string, where: { file?: string; tensor?: string } = {}) {
    const parts: string[] = [];
    if (where.file !== undefined) parts.push(where.file);
    if (where.tensor !== undefined) parts.push(`tensor "${where.tensor}"`);
    parts.push(reason);
    super(parts.join(': '));
    this.name = 'SafetensorsWriteError';
    this.file = where.file;
    this.tensor = where.tensor;
    this.reason = reason;
  }
}

/** An output folder refused an operation (unsafe path, existing folder, file still open, already committed). */
export class OutputFolderError extends Error {
  readonly folder: string;
  readonly path?: string;
  readonly reason: string;
  /** Permanent, like hub-errors' non-transient errors: retrying cannot help. */
  readonly transient = false;

  constructor(folder: string, reason: string, path?: string) {
    super(path === undefined ? `${folder}: ${reason}` : `${folder}/${path}: ${reason}`);
    this.name = 'OutputFolderError';
    this.folder = folder;
    this.path = path;
    this.reason = reason;
  }
}

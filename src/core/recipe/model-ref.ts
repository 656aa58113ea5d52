/**
 * Model references as recipes write them: a local folder/file path, or a Hugging Face Hub repo id
 * with an optional `@revision` (`org/name`, `name`, `org/name@main`). As in mergekit, a reference
 * that exists on disk is local and anything else is a Hub repo. Pure: file-system access is injected.
 */

export interface HubModelRef {
  kind: 'hub';
  repo: string;
  /** Branch, tag or commit; absent = the default branch. */
  revision?: string;
}

export interface LocalModelRef {
  kind: 'local';
  /** The path that exists (joined with the folder it was found in). */
  path: string;
}

export type ResolvedModelRef = LocalModelRef | HubModelRef;

/** A model reference that is neither an existing local path nor a valid Hub repo id. */
export class ModelRefError extends Error {
  constructor(
    readonly ref: string,
    readonly reason: string,
  ) {
    super(`model ${JSON.stringify(ref)}: ${reason}`);
    this.name = 'ModelRefError';
  }
}

// The Hub's repo id rules: one or two parts, word characters, '-' and '.', starting and ending with
// a word character, no '--' or '..', the name at most 96 characters.
const REPO_PART = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/;
const MAX_NAME_LENGTH = 96;

/** Syntax check of a Hub reference `org/name[@revision]` or `name[@revision]`. */
export function parseModelRef(ref: string): HubModelRef {
  const at = ref.indexOf('@');
  const repo = at < 0 ? ref : ref.slice(0, at);
  const revision = at < 0 ? undefined : ref.slice(at + 1);
  const problem = repoIdProblem(repo) ?? (revision !== undefined ? revisionProblem(revision) : undefined);
  if (problem) throw new ModelRefError(ref, `not a Hub repo id (org/name[@revision]): ${problem}`);
  return revision === undefined ? { kind: 'hub', repo } : { kind: 'hub', repo, revision };
}

function repoIdProblem(repo: string): string | undefined {
  if (repo === '') return 'the repo id is empty';
  if (repo.includes('+')) return '"+" joins a model and a LoRA adapter (model+adapter): resolve each part on its own (splitAdapterRef)';
  const parts = repo.split('/');
  if (parts.length > 2) return `${parts.length} parts separated by "/" (at most 2: org/name)`;
  for (const part of parts) {
    if (!REPO_PART.test(part)) {
      return `${JSON.stringify(part)} may only use letters, digits, "_", "-" and ".", and must start and end with a letter, digit or "_"`;
    }
    if (part.includes('--') || part.includes('..')) return `${JSON.stringify(part)} contains "--" or ".."`;
  }
  const name = parts[parts.length - 1];
  if (name.length > MAX_NAME_LENGTH) return `the name is ${name.length} characters long (at most ${MAX_NAME_LENGTH})`;
  return undefined;
}

function revisionProblem(revision: string): string | undefined {
  if (revision === '') return 'the revision after "@" is empty';
  if (/\s/.test(revision)) return 'the revision contains white space';
  return undefined;
}

export interface ResolveModelRefOptions {
  /** Folder of the recipe file: relative paths are tried here first. */
  recipeDir?: string;
  /** Working directory: relative paths are tried here next. */
  cwd?: string;
  exists: (path: string) => boolean;
  join: (a: string, b: string) => string;
}

/** POSIX absolute, Windows drive-absolute (`C:\`, `C:/`) or UNC (`\\server`) path. */
export function isAbsolutePath(path: string): boolean {
  return path.startsWith('/') || path.startsWith('\\\\') || /^[A-Za-z]:[\\/]/.test(path);
}

/**
 * Local when the path exists: an absolute path as is, a relative one in the recipe's folder, then
 * in the working directory (or as given, when no cwd is passed). Otherwise a Hub repo id; a
 * reference that is neither throws ModelRefError naming where it looked.
 */
export function resolveModelRef(ref: string, opts: ResolveModelRefOptions): ResolvedModelRef {
  const candidates: string[] = [];
  if (isAbsolutePath(ref)) {
    candidates.push(ref);
  } else {
    if (opts.recipeDir !== undefined) candidates.push(opts.join(opts.recipeDir, ref));
    candidates.push(opts.cwd !== undefined ? opts.join(opts.cwd, ref) : ref);
  }
  for (const path of candidates) {
    if (opts.exists(path)) return { kind: 'local', path };
  }
  const looksLocal = isAbsolutePath(ref) || /^\.{1,2}([\\/]|$)/.test(ref) || ref.includes('\\');
  if (looksLocal) throw new ModelRefError(ref, `no such local path (looked for ${candidates.join(', ')})`);
  try {
    return parseModelRef(ref);
  } catch (e) {
    if (!(e instanceof ModelRefError)) throw e;
    throw new ModelRefError(ref, `no such local path (looked for ${candidates.join(', ')}), and ${e.reason}`);
  }
}

/**
 * mergekit's `model+adapter` reference (a model with a PEFT LoRA adapter applied): the two parts,
 * split at the first "+", or undefined for a plain reference. A local path that exists with a "+" in
 * its name is the caller's to check first.
 */
export function splitAdapterRef(ref: string): { model: string; adapter: string } | undefined {
  const plus = ref.indexOf('+');
  if (plus < 0) return undefined;
  const model = ref.slice(0, plus);
  const adapter = ref.slice(plus + 1);
  if (model.trim() === '' || adapter.trim() === '') throw new ModelRefError(ref, 'write a model with a LoRA adapter as model+adapter, both parts given');
  return { model, adapter };
}

/**
 * Hub model references as recipes write them: `org/name`, `name`, optionally `@revision`
 * (a branch, tag or commit). A syntax check only; whether the repo exists is the Hub's to say.
 * The rules are the Hub's own (huggingface_hub `validate_repo_id`): names of word characters, `-`
 * and `.`, at most 96 characters, no `--` or `..`, not ending in `.git`.
 */
import { HubRefError } from './hub-errors.ts';

export interface HubRef {
  /** `org/name` or `name`. */
  repo: string;
  /** @default 'main' */
  revision: string;
}

const NAME = /^[A-Za-z0-9_.-]{1,96}$/;

/** Parse `org/name[@revision]`; throws HubRefError saying what is wrong. */
export function parseHubRef(ref: string): HubRef {
  const at = ref.indexOf('@');
  const repo = at < 0 ? ref : ref.slice(0, at);
  const revision = at < 0 ? 'main' : ref.slice(at + 1);
  const problem = repoIdProblem(repo) ?? revisionProblem(revision);
  if (problem !== null) throw new HubRefError(ref, problem);
  return { repo, revision };
}

/** Why `repo` is not a valid repo id, or null when it is. */
export function repoIdProblem(repo: string): string | null {
  if (repo === '') return 'the repo id is empty';
  const parts = repo.split('/');
  if (parts.length > 2) return `a repo id is "org/name" or "name", not ${parts.length} parts`;
  for (const part of parts) {
    if (part === '') return 'an empty org or name';
    if (!NAME.test(part)) {
      return part.length > 96
        ? `"${part}" is longer than 96 characters`
        : `"${part}" may only hold letters, digits, "_", "-" and "."`;
    }
    if (/^[-.]|[-.]$/.test(part)) return `"${part}" may not start or end with "-" or "."`;
  }
  if (repo.includes('--') || repo.includes('..')) return 'a repo id may not contain "--" or ".."';
  if (repo.endsWith('.git')) return 'a repo id may not end with ".git"';
  return null;
}

function revisionProblem(revision: string): string | null {
  if (revision === '') return 'the revision after "@" is empty';
  if (/[\s\x00-\x1f\x7f~^:?*[\\]/.test(revision)) return `revision "${revision}" has characters git refuses`;
  if (revision.includes('..') || revision.startsWith('/') || revision.endsWith('/')) {
    return `revision "${revision}" is not a valid branch, tag or commit name`;
  }
  return null;
}

/** A full commit id: resolving it again cannot give another commit. */
export function isCommitSha(revision: string): boolean {
  return /^[0-9a-f]{40}$/.test(revision);
}

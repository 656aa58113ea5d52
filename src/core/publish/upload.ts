/**
 * Publishing to the Hub with the official client: create the repo (an existing one of the user's is
 * committed to), then one commit of every file through `uploadFilesWithProgress`, which hashes and
 * uploads each file from its Blob (large ones through LFS or Xet, as the Hub offers), so the model is
 * never all in memory. Progress per file, cancel through the signal. The token goes to the client as
 * `accessToken` (an `Authorization` header), and every message is scrubbed of it.
 */
import { createRepo, modelInfo, uploadFilesWithProgress, whoAmI } from '@huggingface/hub';
import { repoIdProblem } from '../sources/hub-ref.ts';
import { redactSecret } from '../sources/hub-errors.ts';
import type { Recipe } from '../recipe/types.ts';
import { PublishError, type PublishFile } from './prepare.ts';

export type FileStage = 'waiting' | 'hashing' | 'uploading' | 'done';

export interface PublishProgress {
  phase: 'creating' | 'preparing' | 'uploading' | 'committing' | 'done';
  /** Per file: its stage and how far through it (0..1). */
  files: Record<string, { stage: FileStage; fraction: number; bytes: number }>;
}

export interface PublishParams {
  /** `namespace/name`. */
  repo: string;
  hubUrl: string;
  accessToken: string;
  private: boolean;
  files: readonly PublishFile[];
  commitTitle?: string;
  signal?: AbortSignal;
  onProgress?(progress: PublishProgress): void;
  /** Hash large files in web workers (the studio). @default false */
  useWebWorkers?: boolean;
}

export interface PublishResult {
  repoUrl: string;
  commitUrl: string | null;
  /** False when the repo already existed and the files were committed to it. */
  created: boolean;
}

/** Why a repo id cannot be published to, or null: it must be `namespace/name`. */
export function publishRepoProblem(repo: string): string | null {
  if (!repo.includes('/')) return `"${repo}" needs a namespace: your user name or an organization, as in "name/${repo || 'my-merge'}"`;
  return repoIdProblem(repo);
}

function tokenProblem(token: string): string | null {
  if (token === '') return 'no access token: sign in, or give a token with write access';
  if (/\s/.test(token)) return 'the access token has spaces in it: paste it again';
  return null;
}

/** The signed-in account: its name and the namespaces it may publish to (itself, then its orgs). */
export async function hubAccount(params: { hubUrl: string; accessToken: string; fetch?: typeof fetch }): Promise<{ name: string; namespaces: string[]; canWrite: boolean }> {
  const problem = tokenProblem(params.accessToken);
  if (problem) throw new PublishError(problem);
  try {
    const me = await whoAmI({ hubUrl: params.hubUrl, accessToken: params.accessToken, fetch: params.fetch });
    const orgs = me.type === 'user' ? me.orgs.map((o) => o.name) : [];
    const role = me.auth.accessToken?.role;
    return { name: me.name, namespaces: [me.name, ...orgs], canWrite: role === undefined || role !== 'read' };
  } catch (err) {
    throw redactSecret(err, params.accessToken);
  }
}

/** The license of each Hub input (its card's `license`), by recipe reference; null when unknown or local. */
export async function hubLicenses(params: {
  recipe: Recipe;
  hubUrl: string;
  accessToken?: string;
  fetch?: typeof fetch;
  isHubRef(ref: string): boolean;
}): Promise<Record<string, string | null>> {
  const refs = [...new Set([...(params.recipe.baseModel ? [params.recipe.baseModel] : []), ...params.recipe.models.map((m) => m.model)])];
  const out: Record<string, string | null> = {};
  await Promise.all(
    refs.map(async (ref) => {
      out[ref] = null;
      if (!params.isHubRef(ref)) return;
      const [name, revision] = ref.split('@');
      try {
        const info = await modelInfo({
          name,
          revision,
          hubUrl: params.hubUrl,
          accessToken: params.accessToken || undefined,
          fetch: params.fetch,
          additionalFields: ['cardData'],
        });
        const license = (info.cardData as { license?: unknown } | undefined)?.license;
        if (typeof license === 'string' && license !== '') out[ref] = license;
        else if (Array.isArray(license) && license.length === 1 && typeof license[0] === 'string') out[ref] = license[0];
      } catch {
        // Unknown: the card then says no license unless the user picks one.
      }
    }),
  );
  return out;
}

export async function publishToHub(params: PublishParams): Promise<PublishResult> {
  const problem = publishRepoProblem(params.repo) ?? tokenProblem(params.accessToken);
  if (problem) throw new PublishError(problem);
  const progress: PublishProgress = {
    phase: 'creating',
    files: Object.fromEntries(params.files.map((f) => [f.path, { stage: 'waiting' as FileStage, fraction: 0, bytes: f.blob.size }])),
  };
  // Each report is a snapshot: the caller may keep it (React state), and later events must not change it.
  const report = () =>
    params.onProgress?.({ phase: progress.phase, files: Object.fromEntries(Object.entries(progress.files).map(([path, f]) => [path, { ...f }])) });
  report();
  const hubUrl = params.hubUrl.replace(/\/+$/, '');
  try {
    let created = true;
    try {
      await createRepo({ repo: params.repo, hubUrl, accessToken: params.accessToken, private: params.private });
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 409) throw err;
      created = false; // the user's own repo: the files are committed to it
    }
    params.signal?.throwIfAborted();
    progress.phase = 'preparing';
    report();
    const upload = uploadFilesWithProgress({
      repo: params.repo,
      hubUrl,
      accessToken: params.accessToken,
      files: params.files.map((f) => ({ path: f.path, content: f.blob })),
      commitTitle: params.commitTitle ?? 'Upload merged model (Merge Studio)',
      abortSignal: params.signal,
      useWebWorkers: params.useWebWorkers ?? false,
    });
    let step = await upload.next();
    while (!step.done) {
      const ev = step.value;
      if (ev.event === 'phase') {
        progress.phase = ev.phase === 'preuploading' ? 'preparing' : ev.phase === 'uploadingLargeFiles' ? 'uploading' : 'committing';
      } else if (ev.state === 'error') {
        throw new PublishError(`${ev.path}: the Hub refused the file`);
      } else {
        const f = progress.files[ev.path];
        if (f) {
          f.stage = ev.state === 'hashing' ? 'hashing' : ev.progress >= 1 ? 'done' : 'uploading';
          f.fraction = ev.progress;
        }
      }
      report();
      step = await upload.next();
    }
    for (const f of Object.values(progress.files)) {
      f.stage = 'done';
      f.fraction = 1;
    }
    progress.phase = 'done';
    report();
    return { repoUrl: `${hubUrl}/${params.repo}`, commitUrl: step.value?.commit.url ?? null, created };
  } catch (err) {
    if (params.signal?.aborted) throw params.signal.reason;
    throw redactSecret(err, params.accessToken);
  }
}

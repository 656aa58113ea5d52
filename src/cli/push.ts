/**
 * `merge-studio push DIR org/name [--private] [--license ID] [--analysis FILE]`: publish an exported
 * merge to the Hub ($HF_ENDPOINT, default https://huggingface.co) with $HF_TOKEN, as the studio's
 * "Publish to the Hub" does (src/core/publish): the repo is created (or committed to when it is the
 * user's already), the model card is written for the Hub (license when the inputs agree, per-layer
 * coefficients image, the analysis summary from `merge-studio analyze --json FILE`), and every file is
 * uploaded from disk. Progress on stderr; the repo's URL on stdout.
 */
import { existsSync, openAsBlob } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { cardAnalysisOf } from '../core/model-card.ts';
import { resolveModelRef } from '../core/recipe/model-ref.ts';
import { preparePublish, type PublishFile, type PublishMethodLookup } from '../core/publish/prepare.ts';
import { hubAccount, hubLicenses, publishRepoProblem, publishToHub, type PublishProgress } from '../core/publish/upload.ts';
import { DEFAULT_HUB_URL } from '../core/sources/hub.ts';
import { formatBytes } from '../core/units.ts';
import { METHODS } from '../gpu/methods/index.ts';
import { parseCommandArgs } from './command-args.ts';
import { nodeFileTree } from './node-files.ts';

export interface PushIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** The CLI's usage error (exit code 2), passed in so this module does not import main.ts back. */
  usageError(message: string): Error;
  /** @default process.env */
  env?: Record<string, string | undefined>;
}

/** The files of a folder as Blobs backed by the files on disk (read when uploaded, not now). */
export async function folderFiles(dir: string): Promise<PublishFile[]> {
  const tree = await nodeFileTree(dir);
  const paths = await tree.list();
  return Promise.all(paths.map(async (path) => ({ path, blob: await openAsBlob(join(dir, ...path.split('/'))) })));
}

export async function pushCommand(args: string[], io: PushIo): Promise<void> {
  const env = io.env ?? process.env;
  const { values, positionals } = parseCommandArgs(
    args,
    {
      private: { type: 'boolean', default: false },
      license: { type: 'string' },
      analysis: { type: 'string' },
      message: { type: 'string' },
      quiet: { type: 'boolean', default: false },
    },
    io.usageError,
  );
  if (positionals.length !== 2) throw io.usageError('push takes a folder and a repo: merge-studio push DIR org/name [--private]');
  const [dir, repo] = positionals;
  const repoProblem = publishRepoProblem(repo);
  if (repoProblem) throw io.usageError(`push: ${repoProblem}`);
  const dirStat = await stat(dir).catch(() => null);
  if (!dirStat?.isDirectory()) throw io.usageError(`push: ${dir} is not a folder`);
  const accessToken = env.HF_TOKEN ?? '';
  if (accessToken === '') throw io.usageError('push needs $HF_TOKEN: a Hugging Face token with write access');
  const hubUrl = (env.HF_ENDPOINT || DEFAULT_HUB_URL).replace(/\/+$/, '');
  const log = (line: string) => {
    if (!values.quiet) io.stderr.write(`merge-studio: ${line}\n`);
  };

  const account = await hubAccount({ hubUrl, accessToken });
  if (!account.canWrite) throw new Error(`the token of ${account.name} can only read: give a token with write access`);
  log(`pushing ${dir} to ${hubUrl}/${repo} as ${account.name}${values.private ? ' (private)' : ''}`);

  let analysis = null;
  if (values.analysis) {
    const text = await readFile(values.analysis, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw io.usageError(`cannot read --analysis ${values.analysis}: ${e.code ?? e.message}`);
    });
    try {
      analysis = cardAnalysisOf(JSON.parse(text) as Parameters<typeof cardAnalysisOf>[0]);
    } catch {
      throw io.usageError(`--analysis ${values.analysis}: not the JSON of merge-studio analyze --json`);
    }
    if (!analysis) log(`note: ${values.analysis} has no model statistics; the card has no analysis section`);
  }

  const files = await folderFiles(dir);
  const methods: PublishMethodLookup = Object.assign((name: string) => METHODS.find((m) => m.name === name), { names: METHODS.map((m) => m.name) });
  // The recipe first (for the inputs' licenses), then the folder as it will be published.
  const firstPass = values.license ? null : await preparePublish({ files, methods });
  const licenses = firstPass
    ? await hubLicenses({
        recipe: firstPass.recipe,
        hubUrl,
        accessToken,
        isHubRef: (ref) => {
          try {
            return resolveModelRef(ref, { cwd: process.cwd(), exists: existsSync, join }).kind === 'hub';
          } catch {
            return false;
          }
        },
      })
    : undefined;
  const prepared = await preparePublish({ files, methods, licenses, license: values.license, analysis, title: repo, secrets: [accessToken] });
  for (const note of prepared.notes) log(`note: ${note}`);
  const total = prepared.files.reduce((a, f) => a + f.blob.size, 0);
  log(`${prepared.files.length} files, ${formatBytes(total)}`);

  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error('push cancelled'));
  process.once('SIGINT', onSignal);
  const announced = new Set<string>();
  let lastLine = 0;
  const onProgress = (p: PublishProgress) => {
    for (const [path, f] of Object.entries(p.files)) {
      if (f.stage === 'done' && !announced.has(path) && p.phase !== 'done') {
        announced.add(path);
        log(`uploaded ${path} (${formatBytes(f.bytes)})`);
      }
    }
    const now = Date.now();
    if (p.phase === 'uploading' && now - lastLine > 2000) {
      lastLine = now;
      const sent = Object.values(p.files).reduce((a, f) => a + f.bytes * (f.stage === 'uploading' || f.stage === 'done' ? f.fraction : 0), 0);
      log(`uploading: ${formatBytes(sent)} / ${formatBytes(total)}`);
    }
  };
  try {
    const result = await publishToHub({
      repo,
      hubUrl,
      accessToken,
      private: values.private ?? false,
      files: prepared.files,
      commitTitle: values.message,
      signal: controller.signal,
      onProgress,
    });
    log(`${result.created ? 'created' : 'updated'} ${result.repoUrl}${prepared.license ? ` (license ${prepared.license})` : ''}`);
    io.stdout.write(`${result.repoUrl}\n`);
  } finally {
    process.off('SIGINT', onSignal);
  }
}

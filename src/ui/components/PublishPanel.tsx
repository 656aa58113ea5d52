/**
 * "Publish to the Hub": after a merge into a folder (or for a folder chosen here), sign in (Hugging
 * Face OAuth in a pop-up, or a pasted token), name the repo, pick private/public and the license,
 * and upload: the same preparation as `merge-studio push` (src/core/publish), files read from the
 * folder as they are sent, progress per file, cancel, and a link to the repo at the end. The token is
 * the studio's Hub token (Settings): in memory, never in a URL, a file or a log.
 */
import { useEffect, useRef, useState, useSyncExternalStore } from 'react';
import { useShallow } from 'zustand/react/shallow';
import { cardAnalysisOf } from '../../core/model-card.ts';
import { preparePublish, RECIPE_FILE, type PublishFile, type PublishMethodLookup } from '../../core/publish/prepare.ts';
import { hubAccount, hubLicenses, publishRepoProblem, publishToHub, type PublishProgress, type PublishResult } from '../../core/publish/upload.ts';
import { recipeToYaml } from '../../core/recipe/write.ts';
import { METHODS } from '../../gpu/methods/index.ts';
import type { AnalysisRunner } from '../analysis/runner.ts';
import { formatBytes } from '../format.ts';
import { filesOfDirectory, filesOfPickedFolder } from '../publish/folder.ts';
import { CLIENT_ID_STORAGE_KEY, defaultClientId, signInWithPopup } from '../publish/oauth.ts';
import { useStudio } from '../store-context.tsx';
import './publish.css';

const METHOD_INFO: PublishMethodLookup = Object.assign((name: string) => METHODS.find((m) => m.name === name), { names: METHODS.map((m) => m.name) });

/** Licenses offered besides "as the inputs" (the Hub's ids). */
const LICENSES = ['apache-2.0', 'mit', 'cc-by-4.0', 'cc-by-nc-4.0', 'llama3.1', 'gemma', 'openrail', 'other'];

type Source = { kind: 'merge'; name: string; parent: FileSystemDirectoryHandle } | { kind: 'picked'; name: string; files: PublishFile[] };

type Account =
  | { status: 'none' }
  | { status: 'checking' }
  | { status: 'ok'; name: string; namespaces: string[]; canWrite: boolean }
  | { status: 'failed'; message: string };

type Run =
  | { status: 'idle' }
  | { status: 'preparing' }
  | { status: 'running'; progress: PublishProgress; cancelling: boolean }
  | { status: 'done'; result: PublishResult; repo: string; license: string | null; notes: string[] }
  | { status: 'failed'; message: string }
  /** `committing`: cancelled while the commit was sent, so it may have landed. */
  | { status: 'cancelled'; committing: boolean };

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));
const NO_ANALYSIS = { getState: () => null, subscribe: () => () => undefined };

/** The signed-in account of the Hub token, checked when the token or the endpoint changes. */
function useAccount(hubUrl: string, token: string): Account {
  const [account, setAccount] = useState<Account>({ status: 'none' });
  useEffect(() => {
    if (token.trim() === '') {
      setAccount({ status: 'none' });
      return;
    }
    let live = true;
    setAccount({ status: 'checking' });
    const timer = setTimeout(() => {
      hubAccount({ hubUrl, accessToken: token.trim() }).then(
        (a) => live && setAccount({ status: 'ok', ...a }),
        (err: unknown) => live && setAccount({ status: 'failed', message: messageOf(err).replaceAll(token, '***') }),
      );
    }, 400);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [hubUrl, token]);
  return account;
}

export function PublishPanel({ analysisRunner }: { analysisRunner?: AnalysisRunner }) {
  const s = useStudio(
    useShallow((st) => ({
      job: st.job,
      hubUrl: st.hubUrl,
      hubToken: st.hubToken,
      outputName: st.outputName,
      shelf: st.shelf,
      setHubToken: st.setHubToken,
    })),
  );
  const analysis = useSyncExternalStore(analysisRunner?.subscribe ?? NO_ANALYSIS.subscribe, analysisRunner?.getState ?? NO_ANALYSIS.getState);
  const account = useAccount(s.hubUrl, s.hubToken);
  const [picked, setPicked] = useState<Source | null>(null);
  const [pickProblem, setPickProblem] = useState<string | null>(null);
  const [namespace, setNamespace] = useState('');
  const [name, setName] = useState('');
  const [isPrivate, setPrivate] = useState(true);
  const [license, setLicense] = useState('');
  const [withAnalysis, setWithAnalysis] = useState(true);
  const [clientId, setClientId] = useState(defaultClientId);
  const [signIn, setSignIn] = useState<{ status: 'idle' } | { status: 'waiting' } | { status: 'failed'; message: string }>({ status: 'idle' });
  const [run, setRun] = useState<Run>({ status: 'idle' });
  const controller = useRef<AbortController | null>(null);
  const folderInput = useRef<HTMLInputElement>(null);

  const fromMerge: Source | null = s.job.status === 'done' && s.job.folder ? { kind: 'merge', name: s.job.folder.name, parent: s.job.folder.parent } : null;
  const source = picked ?? fromMerge;
  const repoName = name || source?.name || s.outputName;
  const ns = account.status === 'ok' ? (account.namespaces.includes(namespace) ? namespace : account.namespaces[0]) : namespace;
  const repo = `${ns}/${repoName}`;
  const repoProblem = account.status === 'ok' ? publishRepoProblem(repo) : null;
  const busy = run.status === 'preparing' || run.status === 'running';
  const analysisResult = analysis?.result ?? null;

  const blocker = !source
    ? 'merge into a folder first, or choose an exported folder'
    : account.status !== 'ok'
      ? 'sign in, or give a token with write access'
      : !account.canWrite
        ? 'this token can only read: sign in, or give a token with write access'
        : repoProblem;

  const startSignIn = async () => {
    setSignIn({ status: 'waiting' });
    try {
      const result = await signInWithPopup({ hubUrl: s.hubUrl, clientId });
      s.setHubToken(result.accessToken);
      setSignIn({ status: 'idle' });
    } catch (err) {
      setSignIn({ status: 'failed', message: messageOf(err) });
    }
  };

  const publish = async () => {
    if (!source || blocker) return;
    const abort = new AbortController();
    controller.current = abort;
    const token = s.hubToken.trim();
    setRun({ status: 'preparing' });
    try {
      const files = source.kind === 'picked' ? source.files : await filesOfDirectory(await source.parent.getDirectoryHandle(source.name));
      const recipeText = await files.find((f) => f.path === RECIPE_FILE)?.blob.text();
      // The analysis on screen, when it is of this very recipe.
      const notes: string[] = [];
      const analysisOfThis = analysis?.resultRequest && recipeText !== undefined && recipeToYaml(analysis.resultRequest.recipe) === recipeText;
      if (withAnalysis && analysisResult && !analysisOfThis) notes.push('the analysis on screen is of another recipe than the folder’s: left out of the card');
      const cardAnalysis = withAnalysis && analysisResult && analysisOfThis ? cardAnalysisOf(analysisResult) : null;
      const first = license ? null : await preparePublish({ files, methods: METHOD_INFO });
      const licenses = first
        ? await hubLicenses({
            recipe: first.recipe,
            hubUrl: s.hubUrl,
            accessToken: token,
            isHubRef: (ref) => s.shelf.find((m) => m.ref === ref)?.origin.kind === 'hub',
          })
        : undefined;
      const prepared = await preparePublish({ files, methods: METHOD_INFO, licenses, license: license || null, analysis: cardAnalysis, title: repo, secrets: [token] });
      abort.signal.throwIfAborted();
      const result = await publishToHub({
        repo,
        hubUrl: s.hubUrl,
        accessToken: token,
        private: isPrivate,
        files: prepared.files,
        signal: abort.signal,
        useWebWorkers: true,
        onProgress: (progress) => setRun((r) => ({ status: 'running', progress, cancelling: r.status === 'running' && r.cancelling })),
      });
      setRun({ status: 'done', result, repo, license: prepared.license, notes: [...notes, ...prepared.notes] });
    } catch (err) {
      if (abort.signal.aborted) setRun((r) => ({ status: 'cancelled', committing: r.status === 'running' && r.progress.phase === 'committing' }));
      else setRun({ status: 'failed', message: messageOf(err).replaceAll(token, '***') });
    } finally {
      if (controller.current === abort) controller.current = null;
    }
  };

  const cancel = () => {
    controller.current?.abort(new Error('publishing cancelled'));
    setRun((r) => (r.status === 'running' ? { ...r, cancelling: true } : r));
  };

  return (
    <section className="panel publish" aria-labelledby="publish-title" data-testid="publish.panel">
      <header className="panel-head">
        <h2 id="publish-title">Publish to the Hub</h2>
      </header>

      <div className="publish-source">
        {source ? (
          <p data-testid="publish.source">
            Folder: <strong>{source.name}</strong> {source.kind === 'merge' ? '(the merge just saved)' : '(chosen here)'}
          </p>
        ) : (
          <p className="hint" data-testid="publish.source">
            Merge into a folder first (“Merge into folder…”), or choose a folder the studio or mergekit exported.
          </p>
        )}
        <button type="button" className="small" onClick={() => folderInput.current?.click()} disabled={busy} data-testid="publish.choose-folder">
          Choose folder…
        </button>
        <input
          ref={folderInput}
          type="file"
          hidden
          // @ts-expect-error webkitdirectory is not in React's input attributes
          webkitdirectory=""
          multiple
          onChange={(e) => {
            const chosen = filesOfPickedFolder(Array.from(e.target.files ?? []));
            e.target.value = '';
            setPickProblem(chosen ? null : 'choose one folder');
            if (chosen) setPicked({ kind: 'picked', name: chosen.name, files: chosen.files });
          }}
          data-testid="publish.input.folder"
        />
        {pickProblem ? <p className="error-text">{pickProblem}</p> : null}
      </div>

      <fieldset className="publish-account" aria-label="Hugging Face account">
        {account.status === 'ok' ? (
          <p data-testid="publish.account">
            Signed in as <strong>{account.name}</strong>
            {account.canWrite ? '' : ' (read-only token)'} ·{' '}
            <button type="button" className="link" onClick={() => s.setHubToken('')} disabled={busy} data-testid="publish.sign-out">
              Sign out
            </button>
          </p>
        ) : (
          <>
            <div className="publish-sign-in">
              <button type="button" onClick={() => void startSignIn()} disabled={busy || signIn.status === 'waiting' || clientId.trim() === ''} data-testid="publish.sign-in">
                {signIn.status === 'waiting' ? 'Signing in…' : 'Sign in with Hugging Face'}
              </button>
              <span className="hint">or</span>
              <div className="field grow">
                <label htmlFor="publish-token">Access token with write access</label>
                <input
                  id="publish-token"
                  type="password"
                  value={s.hubToken}
                  onChange={(e) => s.setHubToken(e.target.value)}
                  placeholder="hf_…"
                  autoComplete="off"
                  data-testid="publish.token"
                />
              </div>
            </div>
            <details className="publish-oauth-app">
              <summary>OAuth app for sign-in</summary>
              <div className="field">
                <label htmlFor="publish-client-id">Client ID</label>
                <input
                  id="publish-client-id"
                  type="text"
                  value={clientId}
                  onChange={(e) => {
                    setClientId(e.target.value);
                    try {
                      localStorage.setItem(CLIENT_ID_STORAGE_KEY, e.target.value);
                    } catch {
                      // not kept: it still holds for this page
                    }
                  }}
                  spellCheck={false}
                  data-testid="publish.client-id"
                />
                <p className="hint">
                  Sign-in uses an OAuth app of yours on the Hub (scopes openid, profile, write-repos, manage-repos) whose redirect URL is{' '}
                  <code>{new URL(`${import.meta.env.BASE_URL}oauth-callback.html`, location.origin).toString()}</code>.
                </p>
              </div>
            </details>
            {account.status === 'checking' ? <p className="hint">Checking the token…</p> : null}
            {account.status === 'failed' ? (
              <p className="error-text" data-testid="publish.account-error">
                The token was not accepted: {account.message}
              </p>
            ) : null}
            {signIn.status === 'failed' ? (
              <p className="error-text" data-testid="publish.sign-in-error">
                {signIn.message}
              </p>
            ) : null}
          </>
        )}
      </fieldset>

      <div className="publish-repo">
        <div className="field">
          <label htmlFor="publish-namespace">Owner</label>
          {account.status === 'ok' ? (
            <select id="publish-namespace" value={ns} onChange={(e) => setNamespace(e.target.value)} disabled={busy} data-testid="publish.namespace">
              {account.namespaces.map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </select>
          ) : (
            <input id="publish-namespace" type="text" value={namespace} onChange={(e) => setNamespace(e.target.value)} placeholder="your name" disabled={busy} />
          )}
        </div>
        <span className="publish-slash">/</span>
        <div className="field grow">
          <label htmlFor="publish-name">Repo name</label>
          <input id="publish-name" type="text" value={repoName} onChange={(e) => setName(e.target.value)} spellCheck={false} disabled={busy} data-testid="publish.name" />
        </div>
      </div>
      <div className="publish-options">
        <label className="check">
          <input type="checkbox" checked={isPrivate} onChange={(e) => setPrivate(e.target.checked)} disabled={busy} data-testid="publish.private" />
          Private
        </label>
        <div className="field">
          <label htmlFor="publish-license">License</label>
          <select id="publish-license" value={license} onChange={(e) => setLicense(e.target.value)} disabled={busy} data-testid="publish.license">
            <option value="">as the inputs (when they all agree)</option>
            {LICENSES.map((l) => (
              <option key={l} value={l}>
                {l}
              </option>
            ))}
          </select>
        </div>
        <label className="check" title={analysisResult ? 'The cosine matrix and sign conflicts of the analysis on screen' : 'Run the analysis first'}>
          <input type="checkbox" checked={withAnalysis && analysisResult !== null} disabled={busy || analysisResult === null} onChange={(e) => setWithAnalysis(e.target.checked)} data-testid="publish.with-analysis" />
          Analysis summary in the card
        </label>
      </div>
      {repoProblem ? <p className="error-text">Repo name: {repoProblem}</p> : null}

      <div className="publish-actions">
        <button type="button" className="primary" onClick={() => void publish()} disabled={busy || blocker !== null} data-testid="publish.start">
          Publish to {repo}
        </button>
        {run.status === 'running' || run.status === 'preparing' ? (
          <button type="button" onClick={cancel} disabled={run.status === 'running' && run.cancelling} data-testid="publish.cancel">
            {run.status === 'running' && run.cancelling ? 'Cancelling…' : 'Cancel'}
          </button>
        ) : null}
        {blocker && !busy ? (
          <p className="hint" data-testid="publish.blocker">
            To publish: {blocker}.
          </p>
        ) : null}
      </div>
      <RunView run={run} />
    </section>
  );
}

const STAGE_WORDS = { waiting: 'waiting', hashing: 'hashing', uploading: 'uploading', done: 'done' } as const;
const PHASE_WORDS = { creating: 'Creating the repo…', preparing: 'Asking the Hub how to send each file…', uploading: 'Uploading…', committing: 'Committing…', done: 'Done' } as const;

function RunView({ run }: { run: Run }) {
  switch (run.status) {
    case 'idle':
      return null;
    case 'preparing':
      return <p className="hint" role="status">Reading the folder and writing the model card…</p>;
    case 'running': {
      const files = Object.entries(run.progress.files);
      return (
        <div className="publish-progress" data-testid="publish.progress">
          <p role="status">{run.cancelling ? 'Cancelling…' : PHASE_WORDS[run.progress.phase]}</p>
          <ul>
            {files.map(([path, f]) => (
              <li key={path} data-testid={`publish.file.${path}`}>
                <span className="publish-file">{path}</span>
                <span className="publish-size">{formatBytes(f.bytes)}</span>
                <progress value={f.stage === 'done' ? 1 : f.stage === 'waiting' ? 0 : f.fraction} max={1} aria-label={`${path}: ${STAGE_WORDS[f.stage]}`} />
                <span className="publish-stage">
                  {STAGE_WORDS[f.stage]}
                  {f.stage === 'hashing' || f.stage === 'uploading' ? ` ${Math.round(f.fraction * 100)}%` : ''}
                </span>
              </li>
            ))}
          </ul>
        </div>
      );
    }
    case 'done':
      return (
        <div className="result ok" role="status" data-testid="publish.done">
          <p>
            ✓ {run.result.created ? 'Published' : 'Updated'}{' '}
            <a href={run.result.repoUrl} target="_blank" rel="noreferrer" data-testid="publish.link">
              {run.repo}
            </a>
            {run.license ? ` · license ${run.license}` : ' · no license in the card'}
          </p>
          {run.notes.length ? (
            <ul className="hint">
              {run.notes.map((n) => (
                <li key={n}>{n}</li>
              ))}
            </ul>
          ) : null}
        </div>
      );
    case 'failed':
      return (
        <div className="result error" role="alert" data-testid="publish.error">
          <strong>Publishing failed</strong>
          <p>{run.message}</p>
        </div>
      );
    case 'cancelled':
      return (
        <p className="hint" role="status" data-testid="publish.cancelled">
          {run.committing
            ? 'Cancelled while committing: the commit may have landed; look at the repo.'
            : 'Cancelled: no files were committed (a repo created for this stays empty).'}
        </p>
      );
    default: {
      const never: never = run;
      return <>{String(never)}</>;
    }
  }
}

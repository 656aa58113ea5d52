/**
 * The model shelf: add by Hub id (with revision), by files/folders (drop anywhere, or the file
 * inputs), or the demo set; each card shows name, source, size, dtype, parameters and load progress,
 * and lets the user mark the base, leave a model out, reorder and remove.
 */
import { useRef, useState, type FormEvent } from 'react';
import { useShallow } from 'zustand/react/shallow';
import { errorInWords } from '../errors.ts';
import { formatBytes, formatCount } from '../format.ts';
import { readPickedFolder, groupLooseFiles, type DropContents } from '../sources/dropped.ts';
import { HubSearch } from './HubSearch.tsx';
import type { ShelfModel } from '../store/index.ts';
import { useStudio } from '../store-context.tsx';
import { openSettingsAt } from './popover.ts';

export function Shelf({ onFiles }: { onFiles(contents: DropContents): void }) {
  const refs = useStudio(useShallow((s) => s.shelf.map((m) => m.ref)));
  const notice = useStudio((s) => s.shelfNotice);
  const dismiss = useStudio((s) => s.dismissShelfNotice);
  return (
    <section id="models" className="panel shelf" aria-labelledby="shelf-title" tabIndex={-1}>
      <header className="panel-head">
        <h2 id="shelf-title">Models</h2>
        <span className="count">{refs.length}</span>
      </header>
      <AddModel onFiles={onFiles} />
      {notice ? (
        <div className="notice info" role="status" data-testid="shelf.notice">
          <p>{notice}</p>
          <button type="button" className="icon" onClick={dismiss} aria-label="Dismiss">
            ×
          </button>
        </div>
      ) : null}
      {refs.length === 0 ? (
        <p className="empty">No models yet. Add one from the Hub, drop model folders anywhere on the page, or load the demo set.</p>
      ) : (
        <ol className="cards">
          {refs.map((ref, i) => (
            <ModelCard key={ref} modelRef={ref} first={i === 0} last={i === refs.length - 1} />
          ))}
        </ol>
      )}
    </section>
  );
}

function AddModel({ onFiles }: { onFiles(contents: DropContents): void }) {
  const addHubModel = useStudio((s) => s.addHubModel);
  const loadDemoSet = useStudio((s) => s.loadDemoSet);
  const [repo, setRepo] = useState('');
  const [revision, setRevision] = useState('main');
  const [error, setError] = useState<string | null>(null);
  const folderInput = useRef<HTMLInputElement>(null);
  const filesInput = useRef<HTMLInputElement>(null);

  const submit = (ev: FormEvent) => {
    ev.preventDefault();
    const problem = addHubModel(repo, revision);
    setError(problem);
    if (!problem) setRepo('');
  };

  return (
    <div className="add-model">
      <form onSubmit={submit} className="hub-form" aria-label="Add a model from the Hugging Face Hub">
        <div className="field grow">
          <label htmlFor="hub-repo">Hub model</label>
          <input
            id="hub-repo"
            type="text"
            placeholder="org/name"
            value={repo}
            onChange={(e) => setRepo(e.target.value)}
            autoComplete="off"
            spellCheck={false}
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? 'hub-repo-error' : undefined}
            data-testid="shelf.add.repo"
          />
        </div>
        <div className="field revision">
          <label htmlFor="hub-revision">Revision</label>
          <input id="hub-revision" type="text" value={revision} onChange={(e) => setRevision(e.target.value)} spellCheck={false} data-testid="shelf.add.revision" />
        </div>
        <button type="submit" className="primary" data-testid="shelf.add.submit">
          Add
        </button>
      </form>
      {error ? (
        <p id="hub-repo-error" className="error-text" role="alert">
          {error}
        </p>
      ) : null}
      <HubSearch
        query={repo}
        onAdded={() => {
          setRepo('');
          setError(null);
        }}
      />
      <div className="file-buttons">
        <button type="button" onClick={() => folderInput.current?.click()} data-testid="shelf.add.folder">
          Choose folder…
        </button>
        <button type="button" onClick={() => filesInput.current?.click()} data-testid="shelf.add.files">
          Choose files…
        </button>
        <button type="button" className="ghost" onClick={() => void loadDemoSet()} data-testid="shelf.add.demo">
          Demo set
        </button>
        <input
          ref={folderInput}
          type="file"
          hidden
          // @ts-expect-error webkitdirectory is not in React's input attributes
          webkitdirectory=""
          multiple
          onChange={(e) => {
            onFiles(readPickedFolder(Array.from(e.target.files ?? [])));
            e.target.value = '';
          }}
          data-testid="shelf.input.folder"
        />
        <input
          ref={filesInput}
          type="file"
          hidden
          multiple
          accept=".safetensors,.json,.yml,.yaml,.model,.txt"
          onChange={(e) => {
            onFiles(groupLooseFiles(Array.from(e.target.files ?? [])));
            e.target.value = '';
          }}
          data-testid="shelf.input.files"
        />
      </div>
      <p className="hint drop-hint">…or drop model folders, .safetensors files or a recipe (.yml) anywhere on the page.</p>
    </div>
  );
}

function sourceLine(m: ShelfModel): string {
  switch (m.origin.kind) {
    case 'hub':
      return `Hugging Face Hub · ${m.origin.revision}`;
    case 'files':
      return `Local files · ${m.origin.files.length} file${m.origin.files.length === 1 ? '' : 's'}`;
    case 'demo':
      return 'Demo checkpoint';
    case 'local':
      return 'Local folder (named by the recipe)';
    default: {
      const never: never = m.origin;
      return String(never);
    }
  }
}

function ModelCard({ modelRef, first, last }: { modelRef: string; first: boolean; last: boolean }) {
  const model = useStudio((s) => s.shelf.find((m) => m.ref === modelRef)!);
  const isBase = useStudio((s) => s.recipe.baseModel === modelRef);
  const included = useStudio((s) => s.recipe.models.some((m) => m.model === modelRef));
  const [renaming, setRenaming] = useState(false);
  const { setBase, setIncluded, removeModel, moveModel, retryModel } = useStudio(
    useShallow((s) => ({ setBase: s.setBase, setIncluded: s.setIncluded, removeModel: s.removeModel, moveModel: s.moveModel, retryModel: s.retryModel })),
  );
  if (!model) return null;
  const load = model.load;
  const titleId = `card-${modelRef}`;
  // A model added a moment ago shows the merge it is about to join; one that failed is out of it.
  const joining = model.joinsWhenReady === true && load.status === 'loading';
  return (
    <li className={`card status-${load.status}${isBase ? ' is-base' : ''}${!included && !isBase ? ' is-out' : ''}`} data-testid={`shelf.model.${modelRef}`} aria-labelledby={titleId}>
      <div className="card-top">
        <div className="card-title">
          {renaming ? (
            <RenameField modelRef={modelRef} onDone={() => setRenaming(false)} />
          ) : (
            <>
              <h3 id={titleId} title={modelRef}>
                {modelRef}
              </h3>
              {isBase ? <span className="badge base">base</span> : null}
              {model.origin.kind === 'files' ? (
                <button type="button" className="link small" onClick={() => setRenaming(true)} aria-label={`Rename ${modelRef}`} data-testid={`shelf.model.${modelRef}.rename`}>
                  Rename
                </button>
              ) : null}
            </>
          )}
        </div>
        <div className="card-actions">
          <button type="button" className="icon" disabled={first} onClick={() => moveModel(modelRef, -1)} aria-label={`Move ${modelRef} up`} data-testid={`shelf.model.${modelRef}.up`}>
            ↑
          </button>
          <button type="button" className="icon" disabled={last} onClick={() => moveModel(modelRef, 1)} aria-label={`Move ${modelRef} down`} data-testid={`shelf.model.${modelRef}.down`}>
            ↓
          </button>
          <button type="button" className="icon danger" onClick={() => removeModel(modelRef)} aria-label={`Remove ${modelRef}`} data-testid={`shelf.model.${modelRef}.remove`}>
            ×
          </button>
        </div>
      </div>
      <p className="card-source">{sourceLine(model)}</p>
      <CardStatus model={model} onRetry={() => retryModel(modelRef)} />
      {load.status === 'ready' && model.origin.kind === 'hub' ? <TransferLine modelRef={modelRef} /> : null}
      <div className="card-roles">
        <label className="check">
          <input
            type="checkbox"
            checked={included || joining}
            disabled={!included && (load.status === 'failed' || load.status === 'missing')}
            onChange={(e) => setIncluded(modelRef, e.target.checked)}
            aria-label={`Include ${modelRef} in the merge`}
            data-testid={`shelf.model.${modelRef}.include`}
          />
          {joining ? 'In merge once loaded' : 'In merge'}
        </label>
        <button
          type="button"
          className={`toggle${isBase ? ' is-on' : ''}`}
          aria-pressed={isBase}
          onClick={() => setBase(isBase ? null : modelRef)}
          data-testid={`shelf.model.${modelRef}.base`}
        >
          {isBase ? 'Base model' : 'Use as base'}
        </button>
      </div>
    </li>
  );
}

/** A Hub model's bytes in the running (or last) merge: received / expected, rate, and how much the cache gave. */
function TransferLine({ modelRef }: { modelRef: string }) {
  const t = useStudio((s) => s.transfers[modelRef]);
  if (!t) return null;
  const network = t.bytesReceived - t.cachedBytes;
  const origin =
    t.bytesReceived === 0
      ? ''
      : network === 0
        ? 'all from the cache'
        : t.cachedBytes === 0
          ? 'from the Hub'
          : `${formatBytes(t.cachedBytes)} from the cache`;
  if (t.done) {
    return (
      <p className="card-transfer done" data-testid={`shelf.model.${modelRef}.transfer`}>
        Last merge read {formatBytes(t.bytesReceived)}
        {origin ? ` · ${origin}` : ''}
      </p>
    );
  }
  return (
    <div className="card-transfer" data-testid={`shelf.model.${modelRef}.transfer`}>
      <progress value={t.bytesReceived} max={t.bytesExpected || 1} aria-label={`${modelRef}: tensor bytes read for the merge`} />
      <span>
        {formatBytes(t.bytesReceived)} / {formatBytes(t.bytesExpected)}
        {network > 0 ? ` · ${formatBytes(t.rate)}/s` : ''}
        {origin && origin !== 'from the Hub' ? ` · ${origin}` : ''}
      </span>
    </div>
  );
}

/** The name of a dropped model, edited in place: Enter renames, Escape keeps the old name. */
function RenameField({ modelRef, onDone }: { modelRef: string; onDone(): void }) {
  const renameModel = useStudio((s) => s.renameModel);
  const [text, setText] = useState(modelRef.replace(/^\.\//, ''));
  const [problem, setProblem] = useState<string | null>(null);
  const apply = () => {
    const p = renameModel(modelRef, text);
    setProblem(p);
    if (!p) onDone();
  };
  return (
    <form
      className="rename"
      onSubmit={(e) => {
        e.preventDefault();
        apply();
      }}
    >
      <span aria-hidden="true">./</span>
      <input
        type="text"
        value={text}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === 'Escape') {
            e.preventDefault();
            onDone();
          }
        }}
        // eslint-disable-next-line jsx-a11y/no-autofocus -- the user asked to rename: the field is where they type next
        autoFocus
        spellCheck={false}
        aria-label={`New name of ${modelRef} (its reference in the recipe)`}
        aria-invalid={problem ? true : undefined}
        data-testid={`shelf.model.${modelRef}.name`}
      />
      <button type="submit" className="small">
        Rename
      </button>
      {problem ? (
        <p className="error-text" role="alert">
          {problem}
        </p>
      ) : null}
    </form>
  );
}

/** Errors that mean the endpoint did not answer (offline, wrong address, or CORS refused by the browser). */
const UNREACHABLE = new Set(['HubNetworkError', 'HubUnavailableError', 'HubTimeoutError']);

function CardStatus({ model, onRetry }: { model: ShelfModel; onRetry(): void }) {
  const hubUrl = useStudio((s) => s.hubUrl);
  const load = model.load;
  switch (load.status) {
    case 'loading':
      return (
        <div className="card-loading" data-testid={`shelf.model.${model.ref}.loading`}>
          <progress aria-label={`Loading ${model.ref}`} />
          <span>Reading headers{load.bytesReceived > 0 ? ` · ${formatBytes(load.bytesReceived)}` : '…'}</span>
        </div>
      );
    case 'ready': {
      const s = load.summary;
      const dtype = s.dtypes.map((d) => d.dtype).join(' + ') || '—';
      return (
        <ul className="card-facts" data-testid={`shelf.model.${model.ref}.facts`} aria-label={`${model.ref}: size, dtype, parameters, layers`}>
          <li title="Size of the weights">{formatBytes(s.bytes)}</li>
          <li title="Stored dtype">{dtype}</li>
          <li title={`${s.parameterCount.toLocaleString('en')} parameters in ${s.tensorCount} tensors`}>{formatCount(s.parameterCount)} params</li>
          <li title={s.architecture ?? undefined}>
            {s.numLayers} layers{s.modelType ? ` · ${s.modelType}` : ''}
          </li>
        </ul>
      );
    }
    case 'failed': {
      const words = errorInWords(load.error);
      return (
        <div className="card-error" role="alert" data-testid={`shelf.model.${model.ref}.error`}>
          <strong>{words.title}</strong>
          {model.origin.kind === 'hub' && UNREACHABLE.has(load.error.name) ? (
            <p data-testid={`shelf.model.${model.ref}.unreachable`}>
              The studio asked the Hub endpoint <code>{hubUrl}</code>: it may be offline, or not let this page read its answers
              (browsers need CORS headers).{' '}
              <button type="button" className="link" onClick={() => openSettingsAt('hub-url')}>
                Change the Hub endpoint
              </button>
            </p>
          ) : null}
          <p>{words.text}</p>
          {model.origin.kind === 'hub' ? (
            <button type="button" className="small" onClick={onRetry} data-testid={`shelf.model.${model.ref}.retry`}>
              Try again
            </button>
          ) : null}
        </div>
      );
    }
    case 'missing':
      return (
        <p className="card-missing" data-testid={`shelf.model.${model.ref}.missing`}>
          The recipe names this local model: drop its folder (named “{model.ref.split(/[\\/]/).filter(Boolean).pop()}”) on the page to load it.
        </p>
      );
    default: {
      const never: never = load;
      return <>{String(never)}</>;
    }
  }
}

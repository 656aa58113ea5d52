/**
 * The recipe as mergekit YAML: shown live, copied, downloaded, shared as a link (`#recipe=`, never
 * a token), and imported by pasting or opening a .yml (dropping one on the page works too).
 */
import { useDeferredValue, useEffect, useMemo, useRef, useState } from 'react';
import { useShallow } from 'zustand/react/shallow';
import { recipeToYaml } from '../../core/recipe/write.ts';
import { encodeRecipeHash } from '../recipe-link.ts';
import { unmatchedFilters, type RecipeTextError } from '../recipe-model.ts';
import { useStudio } from '../store-context.tsx';

export function RecipePanel({ onDownload }: { onDownload(name: string, blob: Blob): void }) {
  // The YAML follows the recipe at low priority: a slider move is not held up by re-writing it.
  const recipe = useDeferredValue(useStudio((s) => s.recipe));
  const notice = useStudio((s) => s.recipeNotice);
  const importRecipe = useStudio((s) => s.importRecipe);
  const dismiss = useStudio((s) => s.dismissRecipeNotice);
  const yaml = useMemo(() => recipeToYaml(recipe), [recipe]);
  const [pasting, setPasting] = useState(false);
  const [text, setText] = useState('');
  const [copied, setCopied] = useState<string | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);

  const copy = async (what: string, value: string) => {
    try {
      await navigator.clipboard.writeText(value);
      setCopied(what);
    } catch {
      setCopied(`${what}: copying was refused; select the text instead`);
    }
    setTimeout(() => setCopied(null), 2500);
  };
  const link = () => `${location.origin}${location.pathname}${encodeRecipeHash(yaml)}`;

  return (
    <section id="recipe" className="panel recipe" aria-labelledby="recipe-title">
      <header className="panel-head">
        <h2 id="recipe-title">Recipe</h2>
        <div className="head-actions">
          <button type="button" className="small" onClick={() => setPasting((p) => !p)} aria-expanded={pasting} data-testid="recipe.import.open">
            Import…
          </button>
          <button type="button" className="small" onClick={() => fileInput.current?.click()} data-testid="recipe.import.file">
            Open .yml…
          </button>
          <button type="button" className="small" onClick={() => onDownload('mergekit_config.yml', new Blob([yaml], { type: 'application/yaml' }))} data-testid="recipe.export">
            Download .yml
          </button>
          <button type="button" className="small" onClick={() => void copy('YAML copied', yaml)} data-testid="recipe.copy">
            Copy
          </button>
          <button type="button" className="small" onClick={() => void copy('Link copied', link())} data-testid="recipe.share">
            Copy link
          </button>
        </div>
        <input
          ref={fileInput}
          type="file"
          hidden
          accept=".yml,.yaml,text/yaml"
          onChange={async (e) => {
            const file = e.target.files?.[0];
            e.target.value = '';
            if (file) importRecipe(await file.text(), file.name);
          }}
          data-testid="recipe.import.input"
        />
      </header>
      {copied ? (
        <p className="hint" role="status">
          {copied}
        </p>
      ) : null}
      {notice ? (
        <div className={`notice ${notice.kind}`} role={notice.kind === 'error' ? 'alert' : 'status'} data-testid="recipe.notice">
          <p>{notice.text}</p>
          <button type="button" className="icon" onClick={dismiss} aria-label="Dismiss">
            ×
          </button>
        </div>
      ) : null}
      {pasting ? (
        <form
          className="paste"
          onSubmit={(e) => {
            e.preventDefault();
            if (importRecipe(text, 'pasted recipe')) {
              setPasting(false);
              setText('');
            }
          }}
        >
          <label htmlFor="recipe-paste">Paste a mergekit recipe (YAML)</label>
          <textarea id="recipe-paste" rows={8} value={text} onChange={(e) => setText(e.target.value)} spellCheck={false} data-testid="recipe.import.text" />
          <div className="row">
            <button type="submit" className="primary" data-testid="recipe.import.submit">
              Import recipe
            </button>
            <button type="button" className="ghost" onClick={() => setPasting(false)}>
              Cancel
            </button>
          </div>
        </form>
      ) : null}
      <YamlEditor yaml={yaml} />
      <RecipeWarnings />
    </section>
  );
}

/** Line height of the editor in px (styles.css .yaml-editor), for the error line's highlight. */
const LINE_PX = 19;

/**
 * The recipe as YAML, editable: it follows the recipe until the user types; what they type is
 * applied after a pause when it reads, else the line at fault is marked and the problem said under
 * it, with the likely fix one click away. Leaving the field shows the recipe as the studio writes it
 * again (a text that does not read is kept until it is fixed or reverted).
 */
function YamlEditor({ yaml }: { yaml: string }) {
  const editRecipe = useStudio((s) => s.editRecipe);
  const [draft, setDraft] = useState<string | null>(null);
  const [error, setError] = useState<RecipeTextError | null>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const text = draft ?? yaml;
  const lines = text.split('\n').length;

  useEffect(() => {
    if (draft === null) return;
    const t = setTimeout(() => setError(editRecipe(draft)), 300);
    return () => clearTimeout(t);
  }, [draft, editRecipe]);

  const fix = () => {
    if (!error?.suggestion || error.line === null || draft === null) return;
    const word = /"([^"]+)"/.exec(error.message.slice(error.message.indexOf('unknown')))?.[1];
    if (!word) return;
    const all = draft.split('\n');
    all[error.line - 1] = all[error.line - 1].replace(word, error.suggestion);
    setDraft(all.join('\n'));
  };

  return (
    <div className="yaml-box">
      <div className={`yaml-editor${error ? ' has-error' : ''}`}>
        <div className="yaml-gutter" aria-hidden="true" style={{ transform: `translateY(${-scrollTop}px)` }}>
          {Array.from({ length: lines }, (_, i) => (
            <span key={i} className={error?.line === i + 1 ? 'bad' : undefined}>
              {i + 1}
            </span>
          ))}
        </div>
        {error?.line ? <div className="yaml-bad-line" style={{ top: 8 + (error.line - 1) * LINE_PX - scrollTop }} aria-hidden="true" /> : null}
        <textarea
          value={text}
          rows={Math.min(18, Math.max(6, lines))}
          spellCheck={false}
          onChange={(e) => setDraft(e.target.value)}
          onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}
          onBlur={() => {
            if (draft !== null && error === null) {
              // Apply at once what is still waiting for the pause, then follow the recipe again.
              const problem = editRecipe(draft);
              if (problem) setError(problem);
              else setDraft(null);
            }
          }}
          aria-label="The recipe as YAML (editable)"
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? 'yaml-error' : undefined}
          data-testid="recipe.yaml"
        />
      </div>
      {error ? (
        <div id="yaml-error" className="yaml-error" role="alert" data-testid="recipe.yaml.error">
          <p>
            {error.line !== null ? <strong>Line {error.line}: </strong> : null}
            {error.message}
            {error.suggestion ? (
              <>
                {' '}
                — did you mean <code>{error.suggestion}</code>?
              </>
            ) : null}
          </p>
          <div className="row">
            {error.suggestion ? (
              <button type="button" className="small" onClick={fix} data-testid="recipe.yaml.fix">
                Use “{error.suggestion}”
              </button>
            ) : null}
            <button
              type="button"
              className="small ghost"
              onClick={() => {
                setDraft(null);
                setError(null);
              }}
              data-testid="recipe.yaml.revert"
            >
              Back to the current recipe
            </button>
          </div>
        </div>
      ) : null}
    </div>
  );
}

/** What the studio left out of the last recipe read, and filters that would never apply. */
function RecipeWarnings() {
  const left = useStudio((s) => s.recipeWarnings);
  const filters = useStudio(
    useShallow((s) => {
      const ref = s.recipe.baseModel ?? s.recipe.models[0]?.model;
      const model = s.shelf.find((m) => m.ref === ref);
      return model?.load.status === 'ready' ? unmatchedFilters(s.recipe, model.load.summary.tensorNames, model.ref) : [];
    }),
  );
  const all = [...left, ...filters];
  if (all.length === 0) return null;
  return (
    <ul className="notes warnings" data-testid="recipe.warnings">
      {all.map((w, i) => (
        <li key={i}>{w}</li>
      ))}
    </ul>
  );
}

/**
 * The recipe as mergekit YAML: shown live, copied, downloaded, shared as a link (`#recipe=`, never
 * a token), and imported by pasting or opening a .yml (dropping one on the page works too).
 */
import { useDeferredValue, useMemo, useRef, useState } from 'react';
import { recipeToYaml } from '../../core/recipe/write.ts';
import { encodeRecipeHash } from '../recipe-link.ts';
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
    <section className="panel recipe" aria-labelledby="recipe-title">
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
      <pre className="yaml" tabIndex={0} aria-label="The recipe as YAML" data-testid="recipe.yaml">
        {yaml}
      </pre>
    </section>
  );
}

/** The compatibility check of the merge's models, shown before merging, each problem in words. */
import { errorInWords } from '../errors.ts';
import { useStudio } from '../store-context.tsx';

function listOf(refs: readonly string[]): string {
  return refs.length <= 1 ? (refs[0] ?? '') : `${refs.slice(0, -1).join(', ')} and ${refs.at(-1)}`;
}

export function CompatPanel() {
  const compat = useStudio((s) => s.compat);
  let body;
  switch (compat.status) {
    case 'idle':
      body = <p className="hint">Add models to the merge to check that they fit together.</p>;
      break;
    case 'waiting':
      body = (
        <>
          {compat.failed.length > 0 ? (
            <p className="error-text" data-testid="compat.failed">
              {listOf(compat.failed)} failed to load (see {compat.failed.length > 1 ? 'their cards' : 'its card'}): remove {compat.failed.length > 1 ? 'them' : 'it'} or try again.
            </p>
          ) : null}
          {compat.missing.length > 0 ? (
            <p className="hint">
              {listOf(compat.missing)} {compat.missing.length > 1 ? 'have' : 'has'} no files yet: drop {compat.missing.length > 1 ? 'their folders' : 'its folder'} on the page.
            </p>
          ) : null}
          {compat.loading.length > 0 ? <p className="hint">Waiting for {listOf(compat.loading)} to load.</p> : null}
        </>
      );
      break;
    case 'checking':
      body = <p className="hint">Checking names, shapes and architectures…</p>;
      break;
    case 'failed': {
      const words = errorInWords(compat.error);
      body = (
        <div className="problems" role="alert">
          <strong>{words.title}</strong>
          <p>{words.text}</p>
        </div>
      );
      break;
    }
    case 'done': {
      const { report } = compat;
      body = (
        <>
          {report.ok ? (
            <p className="ok-text" data-testid="compat.ok">
              ✓ The models fit together: same architecture, tensor names and shapes.
            </p>
          ) : (
            <div className="problems" role="alert" data-testid="compat.problems">
              <strong>These models cannot be merged:</strong>
              {report.configDifferences.length > 0 ? (
                <ul data-testid="compat.config">
                  {report.configDifferences.map((p, i) => (
                    <li key={i}>{p}</li>
                  ))}
                </ul>
              ) : null}
              <details open={report.configDifferences.length === 0} data-testid="compat.tensors">
                <summary>
                  {report.problems.length} problem{report.problems.length === 1 ? '' : 's'} with tensor names and shapes
                </summary>
                <ul>
                  {report.problems.map((p, i) => (
                    <li key={i}>{p}</li>
                  ))}
                </ul>
              </details>
            </div>
          )}
          {report.notes.length > 0 ? (
            <ul className="notes" data-testid="compat.notes">
              {report.notes.map((n, i) => (
                <li key={i}>{n}</li>
              ))}
            </ul>
          ) : null}
        </>
      );
      break;
    }
    default: {
      const never: never = compat;
      body = String(never);
    }
  }
  return (
    <section className="panel compat" aria-labelledby="compat-title" aria-live="polite" data-testid="compat.panel">
      <header className="panel-head">
        <h2 id="compat-title">Compatibility</h2>
      </header>
      {body}
    </section>
  );
}

/**
 * Results under the shelf's Hub field while it is typed: Hub models with safetensors weights, most
 * downloaded first, each with its parameter count, dtype and architecture, and an Add button; once a
 * base is chosen, "same architecture as the base" keeps only models that can merge with it.
 */
import { useEffect, useState } from 'react';
import { useShallow } from 'zustand/react/shallow';
import { formatCount } from '../format.ts';
import { sameArchitecture, searchHub, searchText, type SearchHit } from '../hub-search.ts';
import { useStudio } from '../store-context.tsx';
import './publish.css';

type Search = { status: 'idle' } | { status: 'searching' } | { status: 'done'; query: string; hits: SearchHit[] } | { status: 'failed'; message: string };

const DEBOUNCE_MS = 300;

export function HubSearch({ query, onAdded }: { query: string; onAdded(): void }) {
  const s = useStudio(
    useShallow((st) => {
      const b = st.shelf.find((m) => m.ref === st.recipe.baseModel);
      const summary = b?.load.status === 'ready' ? b.load.summary : null;
      return {
        hubUrl: st.hubUrl,
        hubToken: st.hubToken,
        addHubModel: st.addHubModel,
        baseArchitecture: summary?.architecture ?? null,
        baseModelType: summary?.modelType ?? null,
      };
    }),
  );
  const onShelf = useStudio(useShallow((st) => st.shelf.map((m) => m.ref)));
  const base = s.baseArchitecture !== null || s.baseModelType !== null ? { architecture: s.baseArchitecture, modelType: s.baseModelType } : null;
  const [search, setSearch] = useState<Search>({ status: 'idle' });
  const [sameArch, setSameArch] = useState(true);
  const text = searchText(query);
  const filtering = sameArch && base !== null;

  useEffect(() => {
    if (text === null) {
      setSearch({ status: 'idle' });
      return;
    }
    const controller = new AbortController();
    const timer = setTimeout(() => {
      setSearch({ status: 'searching' });
      searchHub({ hubUrl: s.hubUrl, query: text, accessToken: s.hubToken, limit: filtering ? 30 : 10, signal: controller.signal }).then(
        (hits) => setSearch({ status: 'done', query: text, hits }),
        (err: unknown) => {
          if (!controller.signal.aborted) setSearch({ status: 'failed', message: err instanceof Error ? err.message : String(err) });
        },
      );
    }, DEBOUNCE_MS);
    return () => {
      clearTimeout(timer);
      controller.abort();
    };
  }, [text, s.hubUrl, s.hubToken, filtering]);

  if (text === null || search.status === 'idle') return null;
  const hits = search.status === 'done' ? search.hits.filter((h) => !filtering || sameArchitecture(h, base!)) : [];
  return (
    <div className="hub-search" data-testid="hub-search">
      {base ? (
        <label className="check small">
          <input type="checkbox" checked={sameArch} onChange={(e) => setSameArch(e.target.checked)} data-testid="hub-search.same-arch" />
          Same architecture as the base ({base.architecture ?? base.modelType})
        </label>
      ) : null}
      {search.status === 'searching' ? <p className="hint">Searching the Hub…</p> : null}
      {search.status === 'failed' ? <p className="hint" data-testid="hub-search.failed">Hub search failed: {search.message}</p> : null}
      {search.status === 'done' && hits.length === 0 ? (
        <p className="hint" data-testid="hub-search.none">
          No model with safetensors weights{filtering ? ' of the base’s architecture' : ''} matches “{search.query}”.
        </p>
      ) : null}
      {hits.length > 0 ? (
        <ul className="hub-search-results" aria-label={`Search results for “${search.status === 'done' ? search.query : ''}”`}>
          {hits.map((h) => {
            const added = onShelf.includes(h.id);
            return (
              <li key={h.id} data-testid={`hub-search.hit.${h.id}`}>
                <span className="hub-search-id" title={h.id}>
                  {h.id}
                </span>
                <span className="hub-search-facts">
                  {[
                    h.parameters !== null ? `${formatCount(h.parameters)} params` : null,
                    h.dtypes.join(' + ') || null,
                    h.architecture ?? h.modelType,
                    `${formatCount(h.downloads)} downloads`,
                    h.gated ? 'gated' : null,
                  ]
                    .filter(Boolean)
                    .join(' · ')}
                </span>
                <button
                  type="button"
                  className="small"
                  disabled={added}
                  onClick={() => {
                    if (s.addHubModel(h.id, 'main') === null) onAdded();
                  }}
                  aria-label={`Add ${h.id}`}
                  data-testid={`hub-search.add.${h.id}`}
                >
                  {added ? 'On the shelf' : 'Add'}
                </button>
              </li>
            );
          })}
        </ul>
      ) : null}
    </div>
  );
}

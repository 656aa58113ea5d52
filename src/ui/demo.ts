/**
 * The demo checkpoints served from public/demo/: a small Llama-shaped base and three experts in the
 * Hugging Face layout, listed with the recipe the studio opens with in `demo/index.json`.
 */
import type { DemoSet } from './store/index.ts';

export interface DemoIndex {
  models: { ref: string; name: string; folder: string; files: string[] }[];
  recipe: string;
}

export class DemoLoadError extends Error {
  constructor(what: string, reason: string) {
    super(`demo checkpoints: ${what}: ${reason}`);
    this.name = 'DemoLoadError';
  }
}

export async function fetchDemoSet(baseUrl: string, fetchFn: typeof fetch = fetch): Promise<DemoSet> {
  const indexUrl = `${baseUrl}index.json`;
  const res = await fetchFn(indexUrl);
  if (!res.ok) throw new DemoLoadError(indexUrl, `HTTP ${res.status}`);
  const index = (await res.json()) as DemoIndex;
  const models = await Promise.all(
    index.models.map(async (m) => ({
      ref: m.ref,
      name: m.name,
      files: await Promise.all(
        m.files.map(async (path) => {
          const url = `${baseUrl}${m.folder}/${path}`;
          const r = await fetchFn(url);
          if (!r.ok) throw new DemoLoadError(url, `HTTP ${r.status}`);
          return { path, blob: await r.blob() };
        }),
      ),
    })),
  );
  return { models, recipe: index.recipe };
}

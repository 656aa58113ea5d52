/**
 * Search the Hub for models to merge, as the shelf's Hub field is typed: @huggingface/hub's
 * listModels with the text, only repos with safetensors weights, most downloaded first, with the
 * parameter count and dtypes the Hub reads from the safetensors headers and the architecture from
 * config.json, so a model can be judged before it is added.
 */
import { listModels } from '@huggingface/hub';

export interface SearchHit {
  id: string;
  downloads: number;
  /** Parameters over every safetensors file, or null when the Hub does not say. */
  parameters: number | null;
  /** Stored dtypes, most parameters first. */
  dtypes: string[];
  architecture: string | null;
  modelType: string | null;
  gated: boolean;
  private: boolean;
}

/** The part of a typed Hub reference to search for (no revision, trimmed); null when too short to search. */
export function searchText(typed: string): string | null {
  const text = typed.split('@')[0].trim();
  return text.length >= 2 ? text : null;
}

export async function searchHub(params: { hubUrl: string; query: string; accessToken?: string; limit?: number; signal?: AbortSignal }): Promise<SearchHit[]> {
  const signal = params.signal;
  const hits: SearchHit[] = [];
  for await (const m of listModels({
    hubUrl: params.hubUrl,
    search: { query: params.query, tags: ['safetensors'] },
    sort: 'downloads',
    limit: params.limit ?? 10,
    additionalFields: ['safetensors', 'config'],
    accessToken: params.accessToken || undefined,
    fetch: (input, init) => globalThis.fetch(input, { ...init, signal }),
  })) {
    const st = m.safetensors as { parameters?: Record<string, number>; total?: number } | undefined;
    const config = m.config as { architectures?: unknown; model_type?: unknown } | undefined;
    const dtypes = Object.entries(st?.parameters ?? {})
      .sort((a, b) => b[1] - a[1])
      .map(([d]) => d);
    hits.push({
      id: m.name,
      downloads: m.downloads,
      parameters: typeof st?.total === 'number' ? st.total : null,
      dtypes,
      architecture: Array.isArray(config?.architectures) && typeof config.architectures[0] === 'string' ? config.architectures[0] : null,
      modelType: typeof config?.model_type === 'string' ? config.model_type : null,
      gated: m.gated !== false,
      private: m.private,
    });
  }
  return hits;
}

/** Whether a hit has the base's architecture (class name when both have one, else model type). */
export function sameArchitecture(hit: SearchHit, base: { architecture: string | null; modelType: string | null }): boolean {
  if (hit.architecture && base.architecture) return hit.architecture === base.architecture;
  if (hit.modelType && base.modelType) return hit.modelType === base.modelType;
  return false;
}

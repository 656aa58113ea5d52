/** Open every model a recipe names: local folders/files from disk, anything else from the Hub. */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Recipe } from '../core/recipe/types.ts';
import { resolveModelRef } from '../core/recipe/model-ref.ts';
import { referencedModels } from '../core/recipe/references.ts';
import { openModel } from '../core/safetensors/model.ts';
import type { ModelSource } from '../core/source.ts';
import { openHubTree } from '../core/sources/hub.ts';
import { nodeFileTree } from './node-files.ts';
import { DiskRangeCache } from './disk-cache.ts';

export interface OpenOptions {
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** Hub endpoint; defaults to $HF_ENDPOINT, then the public Hub. */
  hubUrl?: string;
  /** Defaults to $HF_TOKEN. Never logged. */
  accessToken?: string;
}

export async function openLocalModel(path: string, signal?: AbortSignal): Promise<ModelSource> {
  return openModel(await nodeFileTree(path), { id: path, signal });
}

/** Opens each distinct model reference of the recipe once (headers only), keyed by the reference. */
export async function openModelsForRecipe(recipe: Recipe, recipePath: string, opts: OpenOptions = {}): Promise<Map<string, ModelSource>> {
  const refs = referencedModels(recipe);
  const sources = new Map<string, ModelSource>();
  const hubUrl = opts.hubUrl ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co';
  const accessToken = opts.accessToken ?? process.env.HF_TOKEN ?? undefined;
  let cache: DiskRangeCache | undefined;
  for (const ref of refs) {
    const where = resolveModelRef(ref, {
      recipeDir: dirname(resolve(recipePath)),
      cwd: process.cwd(),
      exists: existsSync,
      join,
    });
    if (where.kind === 'local') {
      sources.set(ref, await openModel(await nodeFileTree(where.path), { id: ref, signal: opts.signal }));
    } else {
      cache ??= new DiskRangeCache();
      opts.log?.(`merge-studio: opening ${where.repo}${where.revision ? '@' + where.revision : ''} from ${hubUrl}`);
      const tree = await openHubTree({
        repo: where.repo,
        revision: where.revision,
        hubUrl,
        accessToken,
        cache,
        signal: opts.signal,
      });
      sources.set(ref, await openModel(tree, { id: ref, signal: opts.signal }));
    }
  }
  return sources;
}

/** Open every model a recipe names: local folders/files from disk, anything else from the Hub. */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Recipe } from '../core/recipe/types.ts';
import { adaptedModel, openLoraAdapter } from '../core/lora/adapter.ts';
import { resolveModelRef, splitAdapterRef } from '../core/recipe/model-ref.ts';
import { referencedModels } from '../core/recipe/references.ts';
import { openModel } from '../core/safetensors/model.ts';
import type { FileTree, ModelSource } from '../core/source.ts';
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
  const resolveOpts = { recipeDir: dirname(resolve(recipePath)), cwd: process.cwd(), exists: existsSync, join };
  const isExistingPath = (ref: string) => {
    try {
      return resolveModelRef(ref, resolveOpts).kind === 'local';
    } catch {
      return false;
    }
  };
  /** The folder a reference names, on disk or on the Hub. */
  const treeOf = async (ref: string): Promise<FileTree> => {
    const where = resolveModelRef(ref, resolveOpts);
    if (where.kind === 'local') return nodeFileTree(where.path);
    cache ??= new DiskRangeCache();
    opts.log?.(`merge-studio: opening ${where.repo}${where.revision ? '@' + where.revision : ''} from ${hubUrl}`);
    return openHubTree({ repo: where.repo, revision: where.revision, hubUrl, accessToken, cache, signal: opts.signal });
  };
  for (const ref of refs) {
    // mergekit's model+adapter: a base with a PEFT LoRA adapter (unless a local path has the "+").
    const split = isExistingPath(ref) ? undefined : splitAdapterRef(ref);
    if (split) {
      const base = await openModel(await treeOf(split.model), { id: split.model, signal: opts.signal });
      const adapter = await openLoraAdapter(await treeOf(split.adapter), split.adapter, opts.signal);
      sources.set(ref, adaptedModel(base, adapter));
      continue;
    }
    sources.set(ref, await openModel(await treeOf(ref), { id: ref, signal: opts.signal }));
  }
  return sources;
}

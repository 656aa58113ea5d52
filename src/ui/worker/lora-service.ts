/**
 * The worker's LoRA export: merges the recipe into memory (kept for the next request of the same
 * recipe, seed, backend and opened models, so measuring then exporting merges once), measures the
 * rank/error curve against the base, and extracts an adapter of the chosen rank into a ZIP.
 */
import { referencedModels } from '../../core/recipe/references.ts';
import type { Recipe } from '../../core/recipe/types.ts';
import { validateRecipe } from '../../core/recipe/validate.ts';
import type { ModelSource } from '../../core/source.ts';
import type { Backend } from '../../gpu/backend.ts';
import { extractLora, LoraExtractError } from '../../gpu/lora/extract.ts';
import { combinedError, loraSpectrum, spectrumError, type LoraSpectrum } from '../../gpu/lora/spectrum.ts';
import { methodLookup } from '../../gpu/methods/index.ts';
import { mergeInMemory } from '../../gpu/model/in-memory-merge.ts';
import { DownloadOutputFolder } from '../export/download-folder.ts';
import type { BackendChoice } from './protocol.ts';
import type { LoraProgressInfo, LoraRequest, LoraResult } from './lora-protocol.ts';

export interface LoraServiceDeps {
  /** An opened model by shelf reference, or undefined. */
  model(ref: string): ModelSource | undefined;
  /** A new backend of the choice (the service destroys it when the request ends). */
  backend(choice: BackendChoice): Promise<Backend>;
  /** How the service reads the merge it made (the worker lets queued messages, a cancel, run before each read). */
  reading?(model: ModelSource): ModelSource;
}

export class LoraService {
  readonly #deps: LoraServiceDeps;
  /** The last merge and its curve, by recipe, seed and backend, and the opened models it was made from. */
  #kept: { key: string; inputs: ModelSource[]; merged: ModelSource; spectrum: LoraSpectrum | null } | null = null;

  constructor(deps: LoraServiceDeps) {
    this.#deps = deps;
  }

  async run(request: LoraRequest, signal: AbortSignal, onProgress: (p: LoraProgressInfo) => void): Promise<LoraResult> {
    const { recipe, maxRank, exportRank } = request;
    validateRecipe(recipe, methodLookup);
    if (recipe.baseModel === undefined) throw new LoraExtractError('a LoRA is exported against the base model: mark one model on the shelf as the base');
    if (!Number.isInteger(maxRank) || maxRank < 1) throw new LoraExtractError(`the largest rank must be a positive integer, got ${maxRank}`);
    if (exportRank !== null && !(Number.isInteger(exportRank) && exportRank >= 1)) throw new LoraExtractError(`rank must be a positive integer, got ${exportRank}`);
    const sources = this.#sources(recipe);
    const base = sources.get(recipe.baseModel)!;
    const inputs = [...sources.values()];
    const backend = await this.#deps.backend(request.backend);
    try {
      const key = JSON.stringify([recipe, request.seed, request.backend]);
      const kept0 = this.#kept;
      const same = kept0 !== null && kept0.key === key && kept0.inputs.length === inputs.length && kept0.inputs.every((m, i) => m === inputs[i]);
      if (!same) {
        this.#kept = null;
        onProgress({ phase: 'merging', done: 0, total: 0 });
        const merged = await mergeInMemory({ recipe, sources, backend, options: { seed: request.seed, signal } }, 'merge');
        this.#kept = { key, inputs, merged: this.#deps.reading?.(merged) ?? merged, spectrum: null };
      }
      const kept = this.#kept!;
      const old = kept.spectrum;
      if (!old || (old.maxRank < maxRank && old.maxRank < old.fullRank)) {
        kept.spectrum = await loraSpectrum({
          model: kept.merged,
          base,
          backend,
          maxRank,
          signal,
          onModule: (done, total) => onProgress({ phase: 'measuring', done, total }),
        });
      }
      const spectrum = kept.spectrum!;
      const errors = Array.from({ length: Math.min(maxRank, spectrum.fullRank) }, (_, k) => spectrumError(spectrum, k + 1));
      let exported: LoraResult['export'] = null;
      if (exportRank !== null) {
        const folder = new DownloadOutputFolder(request.folderName);
        const report = await extractLora({
          model: kept.merged,
          base,
          rank: exportRank,
          backend,
          output: folder,
          baseName: recipe.baseModel,
          signal,
          onModule: (_, done, total) => onProgress({ phase: 'extracting', done, total }),
        });
        exported = {
          name: folder.name,
          blob: folder.archive!,
          files: report.files,
          rank: exportRank,
          error: combinedError(spectrum, report.modules),
          maxModuleError: Math.max(0, ...report.modules.map((m) => m.relativeError)),
          notCaptured: report.notCaptured.map((t) => t.tensor),
        };
      }
      return { errors, modules: spectrum.modules.length, export: exported, merged: !same };
    } finally {
      backend.destroy();
    }
  }

  /** The recipe's models by reference (the base among them), as opened in the worker. */
  #sources(recipe: Recipe): Map<string, ModelSource> {
    const sources = new Map<string, ModelSource>();
    for (const ref of referencedModels(recipe)) {
      const m = this.#deps.model(ref);
      if (!m) throw new Error(`model "${ref}" is not loaded: add it to the shelf (or drop its folder) first`);
      sources.set(ref, m);
    }
    return sources;
  }
}

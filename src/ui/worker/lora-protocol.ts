/**
 * The LoRA export's part of the worker protocol (its message kinds are listed in protocol.ts): the
 * current merge (merged into memory, kept between requests) measured against its base as LoRA
 * adapters of every rank up to a maximum (src/gpu/lora/spectrum.ts), and exported as a PEFT adapter
 * of a chosen rank (src/gpu/lora/extract.ts), zipped for download.
 */
import type { Recipe } from '../../core/recipe/types.ts';
import type { BackendChoice, JobFromWorker, JobToWorker } from './protocol.ts';

export interface LoraRequest {
  /** The merge (its base_model is the adapter's base). */
  recipe: Recipe;
  backend: BackendChoice;
  seed: number;
  /** Largest rank measured: the slider's end (less where no module has that rank). */
  maxRank: number;
  /** Export an adapter of this rank, or null to measure only. */
  exportRank: number | null;
  /** The archive's name without `.zip`, also the folder inside it. */
  folderName: string;
}

export interface LoraExportInfo {
  /** The ZIP's file name, and its bytes: `folderName/adapter_config.json`, `folderName/adapter_model.safetensors`. */
  name: string;
  blob: Blob;
  /** Files inside the folder. */
  files: string[];
  rank: number;
  /** ‖Δ − B·A‖/‖Δ‖ over all modules, of the factors written (the curve's number is the best possible). */
  error: number;
  /** The worst module's error. */
  maxModuleError: number;
  /** Tensors that differ from the base but a LoRA cannot carry (norms, embeddings, LM head). */
  notCaptured: string[];
}

export interface LoraResult {
  /** errors[k − 1]: relative error ‖Δ − Δ_k‖/‖Δ‖ over the linear modules at rank k, k = 1..errors.length. */
  errors: number[];
  /** Linear modules the adapter carries. */
  modules: number;
  /** The export (exportRank set), else null. */
  export: LoraExportInfo | null;
  /** The merge into memory ran for this request (false: the kept one was used). */
  merged: boolean;
}

export interface LoraProgressInfo {
  phase: 'merging' | 'measuring' | 'extracting';
  /** Modules done of their total (0/0 while merging). */
  done: number;
  total: number;
}

export type LoraToWorker = JobToWorker<'lora', LoraRequest>;

export type LoraFromWorker = JobFromWorker<'lora', LoraProgressInfo, LoraResult>;

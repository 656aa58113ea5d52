/**
 * The studio's state: five slices (models, recipe, job, analysis, settings) combined in one store.
 * Only plain data lives here (ids, statuses, Files, summaries); GPU objects and the worker stay
 * in the engine, reached through StudioDeps.
 */
import type { FloatDType } from '../../core/dtype.ts';
import type { ParamValue, Recipe } from '../../core/recipe/types.ts';
import type { EngineApi } from '../worker/client.ts';
import type {
  BackendChoice,
  BackendSpeeds,
  CompatReportInfo,
  ErrorInfo,
  GpuStatus,
  MergeProgressInfo,
  MergeResultInfo,
  ModelSummary,
  RangeCacheInfo,
  SourceProgressInfo,
} from '../worker/protocol.ts';
import type { DroppedModel } from '../sources/dropped.ts';
import type { ParamMemory, RecipeTextError } from '../recipe-model.ts';

export type LoadState =
  | { status: 'loading'; bytesReceived: number; bytesExpected: number }
  | { status: 'ready'; summary: ModelSummary }
  | { status: 'failed'; error: ErrorInfo }
  /** Named by an imported recipe, but its files are not here: the user has to drop them. */
  | { status: 'missing' };

export type ModelOrigin =
  | { kind: 'hub'; repo: string; revision: string }
  | { kind: 'files'; name: string; files: { path: string; blob: Blob }[] }
  | { kind: 'demo'; name: string; files: { path: string; blob: Blob }[] }
  | { kind: 'local' };

export interface ShelfModel {
  /** The model's reference in the recipe (`org/name[@rev]`, `./folder`); unique on the shelf. */
  ref: string;
  origin: ModelOrigin;
  load: LoadState;
  /** Added by the user and not loaded yet: it joins the merge once it loads (a model that fails stays out). */
  joinsWhenReady?: boolean;
}

export interface ModelsSlice {
  shelf: ShelfModel[];
  /** Add `org/name` (revision apart, or `org/name@rev`); returns an error in words, or null. */
  addHubModel(repoId: string, revision?: string): string | null;
  addDroppedModels(models: readonly DroppedModel[]): void;
  /** Give a dropped model another name (its `./name` reference); returns the problem in words, or null. */
  renameModel(ref: string, name: string): string | null;
  /** What the last addition did that the user may not expect (a model already there), or null. */
  shelfNotice: string | null;
  dismissShelfNotice(): void;
  /** Put the demo checkpoints on the shelf with their recipe. */
  loadDemoSet(): Promise<void>;
  /** Open a failed model again (after giving a token, starting the hub...). */
  retryModel(ref: string): void;
  removeModel(ref: string): void;
  moveModel(ref: string, delta: -1 | 1): void;
}

export interface RecipeNotice {
  kind: 'error' | 'info';
  text: string;
}

export interface RecipeSlice {
  recipe: Recipe;
  /** Values not shown right now (another method's, a model left out), restored when they are shown again. */
  memory: ParamMemory;
  /**
   * The models of the recipe that brought `dtype`/`out_dtype` (the demo's, an imported one's); when
   * none of them is on the shelf any more, those dtypes go too. Null once the user sets a dtype.
   */
  dtypesFrom: string[] | null;
  recipeNotice: RecipeNotice | null;
  setMethod(name: string): void;
  /** Top-level parameter (global, or the all-models fallback of a per-model one); undefined removes it. */
  setGlobalParam(name: string, value: ParamValue | undefined): void;
  setModelParam(ref: string, name: string, value: ParamValue | undefined): void;
  setDtype(dtype: FloatDType | undefined): void;
  setOutDtype(dtype: FloatDType | undefined): void;
  setBase(ref: string | null): void;
  setIncluded(ref: string, included: boolean): void;
  /** Replace the recipe with YAML text; models it names join the shelf. Returns false on an error (shown in the notice). */
  importRecipe(yaml: string, origin: string): boolean;
  /**
   * The recipe as the user typed it in the YAML panel: applied when it reads, else the error (with
   * its line and a likely fix) is returned and the recipe stays as it was.
   */
  editRecipe(yaml: string): RecipeTextError | null;
  /** Keys the last imported or typed recipe held that the studio left out (not supported yet), in words. */
  recipeWarnings: string[];
  dismissRecipeNotice(): void;
}

export type JobState =
  | { status: 'idle' }
  | { status: 'picking' }
  | {
      status: 'running';
      jobId: number;
      startedAt: number;
      progress: MergeProgressInfo | null;
      cancelling: boolean;
      destination: 'folder' | 'download';
    }
  | {
      status: 'done';
      result: MergeResultInfo;
      /** The folder the merge wrote (in the picked folder, or OPFS), for publishing; absent for a download. */
      folder?: { parent: FileSystemDirectoryHandle; name: string };
    }
  | { status: 'failed'; error: ErrorInfo }
  | { status: 'cancelled' };

export interface JobSlice {
  job: JobState;
  /**
   * What each Hub model delivered to the running (or last) merge, by ref; emptied when a merge
   * starts. A model's `bytesReceived` never decreases within a merge.
   */
  transfers: Record<string, SourceProgressInfo>;
  startMerge(destination: 'folder' | 'download'): Promise<void>;
  cancelMerge(): void;
  dismissJob(): void;
}

export type CompatState =
  | { status: 'idle' }
  /** Some models of the merge are still loading, failed to load, or have no files yet. */
  | { status: 'waiting'; loading: string[]; failed: string[]; missing: string[] }
  | { status: 'checking'; key: string }
  | { status: 'done'; key: string; report: CompatReportInfo }
  | { status: 'failed'; key: string; error: ErrorInfo };

export interface AnalysisSlice {
  compat: CompatState;
  /** Re-run the compatibility check when the merge's models changed. */
  refreshCompat(): Promise<void>;
}

export type RangeCacheState =
  | { status: 'loading' }
  | ({ status: 'ready' } & Omit<Extract<RangeCacheInfo, { available: true }>, 'available'>)
  | { status: 'unavailable'; reason: string }
  | { status: 'failed'; error: ErrorInfo };

export interface SettingsSlice {
  /** No first-visit line dismissed in this browser yet. */
  firstVisit: boolean;
  /** Hide the first-visit line, here and on later visits. */
  dismissFirstVisit(): void;
  backend: BackendChoice;
  /** Who chose `backend`: the start value, a measurement (software adapters), the user, or the lack of WebGPU. */
  backendSource: 'default' | 'measured' | 'user' | 'no-gpu';
  /** Both backends timed on this machine (software adapters only; remembered per adapter). */
  backendSpeeds: BackendSpeeds | null;
  /** The measurement is running (analyses wait for its answer). */
  measuringBackends: boolean;
  gpu: { status: 'probing' } | GpuStatus;
  hubUrl: string;
  /** Why the `?hub=` of the page address was not used, or null. */
  hubUrlNotice: string | null;
  /**
   * In memory, and in sessionStorage while `rememberToken` is on; never in the URL, the recipe, an
   * exported file or a log.
   */
  hubToken: string;
  rememberToken: boolean;
  /** The worker's cache of Hub byte ranges: size and limit. */
  rangeCache: RangeCacheState;
  /** As typed ("5GB"); parsed when a merge starts. */
  shardSize: string;
  seed: number;
  outputName: string;
  setBackend(backend: BackendChoice): void;
  /** Returns why the endpoint is refused (kept unchanged), or null. */
  setHubUrl(url: string): string | null;
  /** `?backend=gpu|cpu` in the page address picks the backend as the user would (no measurement then). */
  applyBackendParam(search: string): void;
  /** Take the Hub endpoint from a page address's query (`?hub=http://host:port`), if it has one. */
  applyHubParam(search: string): void;
  setHubToken(token: string): void;
  /** On: the token is kept in sessionStorage (and restored on reload); off: it is removed from there. */
  setRememberToken(on: boolean): void;
  /** Ask the worker for the cache's size (applying the saved limit the first time). */
  refreshRangeCache(): Promise<void>;
  /** A limit as typed ("2GB", "500MB"); returns the problem in words, or null. Saved in localStorage. */
  setRangeCacheLimit(text: string): Promise<string | null>;
  clearRangeCache(): Promise<void>;
  setShardSize(text: string): void;
  setSeed(seed: number): void;
  setOutputName(name: string): void;
  probeGpu(): Promise<void>;
}

export type StudioState = ModelsSlice & RecipeSlice & JobSlice & AnalysisSlice & SettingsSlice;

/** A demo checkpoint, fetched from public/demo/. */
export interface DemoModel {
  ref: string;
  name: string;
  files: { path: string; blob: Blob }[];
}

export interface DemoSet {
  models: DemoModel[];
  /** The recipe the studio opens with (YAML). */
  recipe: string;
}

/** What the store reaches outside itself; tests pass fakes. */
export interface StudioDeps {
  engine: EngineApi;
  /** The folder to export into; null where the File System Access API is missing. Rejects with AbortError when the user cancels. */
  pickDirectory(): Promise<FileSystemDirectoryHandle | null>;
  loadDemoSet(): Promise<DemoSet>;
  /** Hand a finished download to the browser. */
  download(name: string, blob: Blob): void;
  now?: () => number;
  /** Where a remembered token is kept (the browser's sessionStorage); none: it cannot be remembered. */
  sessionStorage?: KeyValueStore;
  /** Where the cache limit is kept (the browser's localStorage). */
  localStorage?: KeyValueStore;
}

/** The part of the Web Storage API the studio uses. */
export type KeyValueStore = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

/**
 * The scoreboard's part of the worker protocol (its message kinds are listed in protocol.ts): score
 * the shelf's input models and the current merge (kept in memory, never exported) on a task set and/or
 * the perplexity of a text, with src/gpu/model/eval.ts's evaluateModel — the numbers of
 * `merge-studio eval`.
 */
import type { Recipe } from '../../core/recipe/types.ts';
import type { EvalReport, TaskSet } from '../../gpu/model/eval.ts';
import type { BackendChoice, ErrorInfo, JobFromWorker, JobToWorker } from './protocol.ts';

export interface ScoreRequest {
  /** The merge to score (merged into memory first), or null to score the inputs only. */
  recipe: Recipe | null;
  /** Shelf models scored beside the merge, in display order. Their scores are cached in the worker. */
  inputs: { ref: string; label: string }[];
  backend: BackendChoice;
  /** The merge's seed (random masks). */
  seed: number;
  tasks: TaskSet | null;
  text: string | null;
  /** Perplexity window and stride (defaults: the library's). */
  window?: number;
  stride?: number;
  /** Bytes of f32 weights a model may take in this tab; a larger one is refused with a message naming this limit. */
  weightLimit: number;
}

export interface ScoreEntry {
  /** Shown on the board: the shelf name, or "merge". */
  label: string;
  /** The shelf model, or null for the merge. */
  ref: string | null;
  report: EvalReport | null;
  /** Why this model has no scores (too large for the tab, no tokenizer...). */
  error: ErrorInfo | null;
  /** Taken from the worker's cache (an input scored before with the same settings). */
  cached: boolean;
}

export interface ScoreResult {
  entries: ScoreEntry[];
  /** Wall time of the whole request, and of the merge into memory (null without a recipe). */
  seconds: number;
  mergeSeconds: number | null;
}

export interface ScoreProgressInfo {
  /** The model being worked on. */
  label: string;
  phase: 'merging' | 'scoring';
  /** Position of that model among the request's models (0-based), and their count. */
  index: number;
  count: number;
  /** Examples (or predicted tokens of the text) done of the model's total; 0/0 while merging. */
  done: number;
  total: number;
}

export type ScoreToWorker = JobToWorker<'score', ScoreRequest>;

export type ScoreFromWorker = JobFromWorker<'score', ScoreProgressInfo, ScoreResult>;

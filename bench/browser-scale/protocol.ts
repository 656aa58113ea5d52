/** Messages between the measurement page (page.ts) and its worker (worker.ts). */
import type { Recipe } from '../../src/core/recipe/types.ts';
import type { LlamaShape } from '../../src/core/sources/procedural.ts';
import type { MergeProgressInfo } from '../../src/ui/worker/protocol.ts';

export type ScaleRequest =
  /** probeGiB > 0: also fill GPU buffers up to that many GiB (or the first failure). */
  | { op: 'limits'; probeGiB: number }
  /** `models`: the models the recipe reads (a base and three experts, or the experts alone for linear). */
  | { op: 'write'; set: string; shape: LlamaShape; models: string[] }
  | { op: 'merge'; set: string; models: string[]; recipe: Recipe; backend: 'gpu' | 'cpu' }
  | { op: 'clear' };

export type ScaleReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string } | { progress: MergeProgressInfo };

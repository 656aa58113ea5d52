/**
 * What a browser tab may merge. The engine holds one tensor at a time, so a merge's memory is set by
 * its largest tensor: the inputs decoded to f32, a task vector per model and the method's result
 * (bench/browser-scale.ts measured 8.9× the largest tensor's f32 bytes in GPU buffers for task
 * arithmetic over a base and three experts; we count 2 per model + 2). A browser tells a page neither
 * its GPU memory nor how much the tab may use, and running out loses the GPU device or kills the tab
 * mid-merge, so the studio refuses up front a merge whose step exceeds a budget: half the memory the
 * browser reports (navigator.deviceMemory, rounded down by the browser), at most 8 GiB, 4 GiB where
 * it reports none. The command line (`merge-studio merge`) has no such budget.
 */
import { formatBytes } from '../../core/units.ts';

/** Budget of one merge step when the browser reports no device memory. */
export const DEFAULT_TAB_MERGE_LIMIT = 4 * 2 ** 30;
/** Largest budget of one merge step, whatever the device memory. */
export const MAX_TAB_MERGE_LIMIT = 8 * 2 ** 30;

/** A merge whose largest tensor needs more memory than a tab may use; the message names the tensor, the limit and the CLI. */
export class MergeTooLargeError extends Error {
  constructor(
    readonly tensor: string,
    readonly bytes: number,
    readonly limit: number,
    message: string,
  ) {
    super(message);
    this.name = 'MergeTooLargeError';
  }
}

/** The tab's budget for one merge step, from navigator.deviceMemory (GB) where the browser reports it. */
export function tabMergeLimit(deviceMemoryGB: number | undefined): number {
  if (!(deviceMemoryGB && deviceMemoryGB > 0)) return DEFAULT_TAB_MERGE_LIMIT;
  return Math.min(MAX_TAB_MERGE_LIMIT, (deviceMemoryGB * 2 ** 30) / 2);
}

export interface MergeStep {
  tensor: string;
  shape: readonly number[];
  /** Bytes the merge of this tensor holds at once (estimate). */
  bytes: number;
}

/** f32 copies of a tensor a merge of `models` inputs holds at once: each input and its task vector, plus the result and one intermediate. */
export function stepCopies(models: number): number {
  return 2 * models + 2;
}

/** The largest step of a merge of `tensors` over `models` input models (null when there are no tensors). */
export function largestMergeStep(tensors: readonly { name: string; shape: readonly number[] }[], models: number): MergeStep | null {
  let largest: MergeStep | null = null;
  for (const t of tensors) {
    const bytes = 4 * t.shape.reduce((a, b) => a * b, 1) * stepCopies(models);
    if (!largest || bytes > largest.bytes) largest = { tensor: t.name, shape: t.shape, bytes };
  }
  return largest;
}

/** Throw MergeTooLargeError when the merge's largest step exceeds `limit` bytes. */
export function checkTabMerge(tensors: readonly { name: string; shape: readonly number[] }[], models: number, limit: number): void {
  const step = largestMergeStep(tensors, models);
  if (!step || step.bytes <= limit) return;
  const f32 = step.bytes / stepCopies(models);
  throw new MergeTooLargeError(
    step.tensor,
    step.bytes,
    limit,
    `This merge is too large for a browser tab: its largest tensor, ${step.tensor} [${step.shape.join(', ')}] ` +
      `(${formatBytes(f32)} in f32), merged from ${models} models holds about ${formatBytes(step.bytes)} at once ` +
      `(${stepCopies(models)} f32 copies), above this tab's limit of ${formatBytes(limit)} per tensor. ` +
      `Run it with the command line, which has no such limit: merge-studio merge RECIPE.yml --out DIR ` +
      `(the Recipe panel's "Download .yml" saves RECIPE.yml).`,
  );
}

/**
 * The tab's merge budget (tab-limit.ts): the budget from the device memory the browser reports, the
 * largest step of a merge, and the refusal that names the tensor, the limit and the command line,
 * on the real Llama shapes of the browser-scale measurement (mk, 1b fit; the 7B shape's embeddings do not).
 */
import { describe, expect, it } from 'vitest';
import { LLAMA_SHAPES, llamaTensors } from '../../core/sources/procedural.ts';
import { checkTabMerge, DEFAULT_TAB_MERGE_LIMIT, largestMergeStep, MAX_TAB_MERGE_LIMIT, MergeTooLargeError, stepCopies, tabMergeLimit } from './tab-limit.ts';

const GiB = 2 ** 30;

describe('tabMergeLimit', () => {
  it('is half the reported device memory, at most 8 GiB, 4 GiB when none is reported', () => {
    expect([2, 4, 8, 16, 32].map(tabMergeLimit)).toEqual([1 * GiB, 2 * GiB, 4 * GiB, 8 * GiB, 8 * GiB]);
    expect([undefined, 0, NaN].map(tabMergeLimit)).toEqual([DEFAULT_TAB_MERGE_LIMIT, DEFAULT_TAB_MERGE_LIMIT, DEFAULT_TAB_MERGE_LIMIT]);
    expect(MAX_TAB_MERGE_LIMIT).toBe(8 * GiB);
  });
});

describe('largestMergeStep', () => {
  it('is the largest tensor times 2 f32 copies per model plus 2', () => {
    const step = largestMergeStep(
      [
        { name: 'a', shape: [3, 5] },
        { name: 'b', shape: [7, 11] },
        { name: 'c', shape: [13] },
      ],
      3,
    );
    expect(step).toEqual({ tensor: 'b', shape: [7, 11], bytes: 7 * 11 * 4 * 8 });
    expect(stepCopies(4)).toBe(10);
    expect(largestMergeStep([], 4)).toBeNull();
  });
});

describe('checkTabMerge', () => {
  it('lets the mk and 1B sets through on a 16 GB device (4 models)', () => {
    for (const shape of [LLAMA_SHAPES.mk, LLAMA_SHAPES['1b']]) {
      expect(() => checkTabMerge(llamaTensors(shape), 4, tabMergeLimit(16))).not.toThrow();
    }
  });

  it("refuses the 7B shape's embeddings, naming the tensor, its shape, the limit and the CLI", () => {
    let err: unknown;
    try {
      checkTabMerge(llamaTensors(LLAMA_SHAPES['7b']), 4, tabMergeLimit(16));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MergeTooLargeError);
    const e = err as MergeTooLargeError;
    expect(e.name).toBe('MergeTooLargeError');
    expect(e.tensor).toBe('model.embed_tokens.weight');
    expect(e.bytes).toBe(128256 * 4096 * 4 * 10);
    expect(e.limit).toBe(8 * GiB);
    expect(e.message).toContain('model.embed_tokens.weight [128256, 4096]');
    expect(e.message).toContain('2.10 GB in f32');
    expect(e.message).toContain('about 21.0 GB at once');
    expect(e.message).toContain('limit of 8.59 GB');
    expect(e.message).toContain('merge-studio merge RECIPE.yml --out DIR');
    expect(e.message).toContain('"Download .yml"');
  });

  it('passes a step exactly at the limit and refuses one byte less', () => {
    const tensors = [{ name: 'w', shape: [9, 7] }];
    const bytes = 9 * 7 * 4 * stepCopies(2);
    expect(() => checkTabMerge(tensors, 2, bytes)).not.toThrow();
    expect(() => checkTabMerge(tensors, 2, bytes - 1)).toThrow(MergeTooLargeError);
  });
});

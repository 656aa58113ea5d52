/**
 * Bounded memory (issue 9): merging a 24-layer procedural model keeps the process's peak RSS growth
 * under (models + 3) × the largest tensor in f32 + 512 MB, independent of the number of layers.
 * The shape is chosen so that holding every layer's inputs would break the bound: 4 models ×
 * 170 M BF16 parameters are 1.36 GB of raw input alone, against a bound of about 0.6 GB (the
 * largest tensor is the 4000 × 768 embedding, 12.3 MB in f32). A second shape, where the tensor
 * term dominates the bound, checks the task-vector family (TIES, DARE-TIES) on the fast CPU backend.
 * Measured in a child process.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { llamaParams, type LlamaShape } from '../src/core/sources/procedural.ts';

const shape = { hidden: 768, intermediate: 2048, layers: 24, vocab: 4000, heads: 12, kvHeads: 12 };
/**
 * One small layer between a large embedding and LM head (32000 × 1024 each: 131 MB in f32): the
 * bound, 7 × 131 MB + 512 MB = 1.45 GB, is mostly the tensor term, so a method that keeps f32 copies
 * of the large tensors breaks it (DARE-TIES's l1 rescale stored 6, the pool held 1.05 GB at once,
 * and RSS grew 1.62 GB before it was fused).
 */
const wideShape: LlamaShape = { hidden: 1024, intermediate: 1024, layers: 1, vocab: 32000, heads: 16, kvHeads: 16 };

function measure(method: string, backend: string, modelShape: LlamaShape = shape) {
  const res = spawnSync(
    process.execPath,
    ['--expose-gc', 'bin/run-ts.mjs', 'tests/helpers/memory-merge.ts', JSON.stringify({ shape: modelShape, method, backend })],
    { cwd: new URL('..', import.meta.url).pathname, encoding: 'utf8', timeout: 600_000, maxBuffer: 1 << 20 },
  );
  const line = res.stdout.trim().split('\n').pop() ?? '';
  if (res.status !== 0 || !line.startsWith('{')) throw new Error(`memory-merge failed (${res.status}): ${res.stderr.slice(-2000)}`);
  return JSON.parse(line) as { growth: number; bound: number; largestTensorF32: number; poolPeakLive?: number; outputBytes: number; seconds: number; device: string };
}

describe('peak memory of a merge', () => {
  it('stays under (models + 3) × largest tensor + 512 MB on a 24-layer model (linear, CPU backend)', () => {
    const params = llamaParams(shape);
    expect(params).toBeGreaterThan(160e6); // so that holding every layer would exceed the bound
    const m = measure('linear', 'cpu');
    console.log(`linear on ${m.device}: RSS grew ${(m.growth / 2 ** 20).toFixed(0)} MiB, bound ${(m.bound / 2 ** 20).toFixed(0)} MiB, ${m.seconds.toFixed(1)} s`);
    // Every merged tensor was written (plus the header, config, recipe and model card).
    expect(m.outputBytes).toBeGreaterThan(params * 2);
    expect(m.outputBytes).toBeLessThan(params * 2 + 200_000);
    expect(4 * params * 2).toBeGreaterThan(2 * m.bound); // the raw inputs alone are twice the bound
    expect(m.growth).toBeLessThan(m.bound);
  });

  it('stays under the same bound for TIES (top-k selection per task vector, sign vote), CPU backend', () => {
    const m = measure('ties', 'cpu');
    console.log(`ties on ${m.device}: RSS grew ${(m.growth / 2 ** 20).toFixed(0)} MiB, bound ${(m.bound / 2 ** 20).toFixed(0)} MiB, ${m.seconds.toFixed(1)} s`);
    expect(m.outputBytes).toBeGreaterThan(llamaParams(shape) * 2);
    expect(m.growth).toBeLessThan(m.bound);
  });

  // The task-vector family on the fast CPU backend, where the tensor term dominates. The pool check is
  // the sharper one: BF16 inputs stay BF16 there and every step is fused into the encode pass, so its
  // tensors never hold more than the 4 decoded inputs (4 × 65.5 MB) plus half an f32 embedding.
  it.each(['ties', 'dare_ties'])('%s stays under the bound where one tensor dominates it (32000 × 1024 embedding), fast CPU backend', (method) => {
    const m = measure(method, 'cpu', wideShape);
    const mib = (x: number) => (x / 2 ** 20).toFixed(0);
    console.log(`${method} on ${m.device}: RSS grew ${mib(m.growth)} MiB, bound ${mib(m.bound)} MiB, tensors held at most ${mib(m.poolPeakLive!)} MiB, ${m.seconds.toFixed(1)} s`);
    expect(m.largestTensorF32).toBe(32000 * 1024 * 4);
    expect(7 * m.largestTensorF32).toBeGreaterThan(512 * 2 ** 20); // the tensor term is most of the bound
    expect(m.outputBytes).toBeGreaterThan(llamaParams(wideShape) * 2);
    expect(m.growth).toBeLessThan(m.bound);
    expect(m.poolPeakLive).toBeLessThan(4 * (m.largestTensorF32 / 2) + m.largestTensorF32 / 2);
  });
});

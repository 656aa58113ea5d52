/**
 * Bounded memory (issue 9): merging a 24-layer procedural model keeps the process's peak RSS growth
 * under (models + 3) × the largest tensor in f32 + 512 MB, independent of the number of layers.
 * The shape is chosen so that holding every layer's inputs would break the bound: 4 models ×
 * 170 M BF16 parameters are 1.36 GB of raw input alone, against a bound of about 0.6 GB (the
 * largest tensor is the 4000 × 768 embedding, 12.3 MB in f32). Measured in a child process.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { llamaParams } from '../src/core/sources/procedural.ts';

const shape = { hidden: 768, intermediate: 2048, layers: 24, vocab: 4000, heads: 12, kvHeads: 12 };

function measure(method: string, backend: string) {
  const res = spawnSync(
    process.execPath,
    ['--expose-gc', 'bin/run-ts.mjs', 'tests/helpers/memory-merge.ts', JSON.stringify({ shape, method, backend })],
    { cwd: new URL('..', import.meta.url).pathname, encoding: 'utf8', timeout: 600_000, maxBuffer: 1 << 20 },
  );
  const line = res.stdout.trim().split('\n').pop() ?? '';
  if (res.status !== 0 || !line.startsWith('{')) throw new Error(`memory-merge failed (${res.status}): ${res.stderr.slice(-2000)}`);
  return JSON.parse(line) as { growth: number; bound: number; outputBytes: number; seconds: number; device: string };
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
});

/**
 * The backends are tables of the op families (src/gpu/ops): both have every op, under the same
 * names, and no two families define the same op (a later family would silently replace it).
 */
import { describe, expect, it } from 'vitest';
import { CPU_OP_FAMILIES, CpuBackend } from './cpu-backend.ts';
import { GPU_OP_FAMILIES } from './gpu-backend.ts';

const fakeRuntime = new Proxy({}, { get: () => () => undefined }) as never;

function opNames(families: readonly ((rt: never) => object)[]): string[][] {
  return families.map((f) => Object.keys(f(fakeRuntime)).sort());
}

describe('op family tables', () => {
  it('GPU and CPU families define the same ops, family by family', () => {
    expect(opNames(GPU_OP_FAMILIES)).toEqual(opNames(CPU_OP_FAMILIES));
  });

  it('no op is defined by two families', () => {
    const all = opNames(CPU_OP_FAMILIES).flat();
    expect(all.length).toBeGreaterThan(15);
    expect(new Set(all).size).toBe(all.length);
  });

  it('a CpuBackend has every family op as a function', () => {
    const be = new CpuBackend();
    for (const name of opNames(CPU_OP_FAMILIES).flat()) expect(typeof (be as unknown as Record<string, unknown>)[name], name).toBe('function');
  });
});

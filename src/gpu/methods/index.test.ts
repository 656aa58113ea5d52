import { describe, expect, it } from 'vitest';
import type { ParamSpec } from '../../core/params.ts';
import { buildMethodMap, getMethod, METHOD_NAMES, methodLookup, METHODS, UnknownMethodError } from './index.ts';
import { linear } from './linear.ts';

const EXPECTED = [
  'linear',
  'task_arithmetic',
  'ties',
  'dare_ties',
  'dare_linear',
  'breadcrumbs',
  'breadcrumbs_ties',
  'della',
  'della_linear',
  'slerp',
  'nuslerp',
  'multislerp',
  'karcher',
  'model_stock',
  'nearswap',
  'passthrough',
  // beyond mergekit (METHODS.md "Beyond the reference")
  'consensus_ta',
  // the papers' methods (METHODS.md "Methods from the papers in seeds/")
  'tsv',
  'iso_c',
  'iso_cts',
  'lines',
  'pcb',
  'widen',
  // more of mergekit's methods
  'sce',
  'ram',
  'ramplus_tl',
  'arcee_fusion',
];

describe('method registry', () => {
  it('registers every method of METHODS.md once, and the ones beyond the reference', () => {
    expect([...METHOD_NAMES].sort()).toEqual([...EXPECTED].sort());
    for (const name of EXPECTED) expect(getMethod(name).name).toBe(name);
  });

  it('throws on a duplicate name', () => {
    expect(() => buildMethodMap([linear, { ...linear }])).toThrow(/"linear" is registered twice/);
  });

  it('answers an unknown name with the list of valid ones', () => {
    expect(() => getMethod('tie')).toThrow(UnknownMethodError);
    try {
      getMethod('tie');
    } catch (err) {
      const message = (err as Error).message;
      expect(message).toContain('"tie"');
      for (const name of EXPECTED) expect(message).toContain(name);
    }
  });

  it('methodLookup serves schemas and lists names', () => {
    expect(methodLookup('ties')?.perModelParams.map((p) => p.name)).toEqual(['weight', 'density']);
    expect(methodLookup('nope')).toBeUndefined();
    expect(methodLookup.names).toEqual(METHOD_NAMES);
  });
});

function checkSpec(method: string, spec: ParamSpec) {
  const where = `${method}.${spec.name}`;
  expect(spec.help.length, where).toBeGreaterThan(0);
  expect(spec.help, where).not.toContain('\n');
  if (spec.required) expect(spec.default, `${where}: required with a default`).toBeUndefined();
  if (spec.min !== undefined && spec.max !== undefined) expect(spec.min, where).toBeLessThanOrEqual(spec.max);
  if (spec.softMin !== undefined && spec.softMax !== undefined) expect(spec.softMin, where).toBeLessThan(spec.softMax);
  const d = spec.default;
  if (d === undefined) return;
  switch (spec.kind) {
    case 'number':
    case 'integer':
      expect(typeof d, where).toBe('number');
      if (spec.kind === 'integer') expect(Number.isInteger(d), where).toBe(true);
      if (spec.min !== undefined) expect(d as number, where).toBeGreaterThanOrEqual(spec.min);
      if (spec.max !== undefined) expect(d as number, where).toBeLessThanOrEqual(spec.max);
      break;
    case 'boolean':
      expect(typeof d, where).toBe('boolean');
      break;
    case 'enum':
      expect(spec.options, where).toContain(d);
      break;
    default: {
      const unreachable: never = spec.kind;
      throw new Error(`unknown kind ${unreachable}`);
    }
  }
}

describe('method descriptors', () => {
  it.each(METHODS.map((m) => [m.name, m] as const))('%s has consistent metadata and defaults within ranges', (_name, m) => {
    expect(m.prettyName.length).toBeGreaterThan(0);
    expect(m.help).not.toContain('\n');
    if (m.maxModels !== undefined) expect(m.minModels).toBeLessThanOrEqual(m.maxModels);
    const names = [...m.params, ...m.perModelParams].map((p) => p.name);
    expect(new Set(names).size, 'a parameter is declared twice').toBe(names.length);
    for (const spec of [...m.params, ...m.perModelParams]) checkSpec(m.name, spec);
  });
});

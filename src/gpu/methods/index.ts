/**
 * The method registry: every merge method in one explicit list (no registration by import side
 * effect), a Map by name built once at module load (a duplicate name throws there), and lookups.
 */
import type { MethodLookup } from '../../core/params.ts';
import { arceeFusion } from './arcee-fusion.ts';
import { breadcrumbs } from './breadcrumbs.ts';
import { breadcrumbsTies } from './breadcrumbs-ties.ts';
import { consensusTa } from './consensus.ts';
import { dareLinear } from './dare-linear.ts';
import { dareTies } from './dare-ties.ts';
import { della } from './della.ts';
import { dellaLinear } from './della-linear.ts';
import { isoC } from './iso-c.ts';
import { isoCts } from './iso-cts.ts';
import { karcher } from './karcher.ts';
import { linear } from './linear.ts';
import { lines } from './lines.ts';
import { modelStock } from './model-stock.ts';
import { multislerp } from './multislerp.ts';
import { nearswap } from './nearswap.ts';
import { nuslerp } from './nuslerp.ts';
import { passthrough } from './passthrough.ts';
import { ram } from './ram.ts';
import { ramplusTl } from './ramplus-tl.ts';
import { sce } from './sce.ts';
import { pcb } from './pcb.ts';
import { slerp } from './slerp.ts';
import { taskArithmetic } from './task-arithmetic.ts';
import { ties } from './ties.ts';
import { tsv } from './tsv.ts';
import type { MethodDescriptor } from './types.ts';
import { widen } from './widen.ts';

export const METHODS = [
  linear,
  taskArithmetic,
  ties,
  dareTies,
  dareLinear,
  breadcrumbs,
  breadcrumbsTies,
  della,
  dellaLinear,
  consensusTa,
  slerp,
  nuslerp,
  multislerp,
  karcher,
  modelStock,
  nearswap,
  passthrough,
  tsv,
  isoC,
  isoCts,
  lines,
  pcb,
  widen,
  sce,
  ram,
  ramplusTl,
  arceeFusion,
] as const satisfies readonly MethodDescriptor[];

/** Name → descriptor; throws on a duplicate name so two methods can never shadow each other. */
export function buildMethodMap(methods: readonly MethodDescriptor[]): ReadonlyMap<string, MethodDescriptor> {
  const map = new Map<string, MethodDescriptor>();
  for (const m of methods) {
    if (map.has(m.name)) throw new Error(`merge method "${m.name}" is registered twice`);
    map.set(m.name, m);
  }
  return map;
}

const BY_NAME = buildMethodMap(METHODS);

export const METHOD_NAMES: readonly string[] = METHODS.map((m) => m.name);

/** Thrown for a merge method name that is not registered; lists the valid ones. */
export class UnknownMethodError extends Error {
  constructor(readonly method: string) {
    super(`unknown merge method "${method}"; valid methods: ${METHOD_NAMES.join(', ')}`);
    this.name = 'UnknownMethodError';
  }
}

export function getMethod(name: string): MethodDescriptor {
  const m = BY_NAME.get(name);
  if (!m) throw new UnknownMethodError(name);
  return m;
}

/** Schema lookup for the recipe validator (undefined for an unknown name; `names` lists them all). */
export const methodLookup: MethodLookup = Object.assign((name: string) => BY_NAME.get(name), {
  names: METHOD_NAMES,
});

/**
 * Method schemas for the recipe tests, written from ../../shared/METHODS.md so the recipe layer is
 * tested without the real registry. `karcher` carries an integer and `dare_ties` an enum parameter
 * (`rescale_mode`, made up here) so every parameter kind is exercised.
 */
import type { MethodLookup, MethodSchema, ParamSpec } from '../params.ts';

const weight: ParamSpec = { name: 'weight', kind: 'number', help: 'model weight', required: true };
const density: ParamSpec = { name: 'density', kind: 'number', help: 'fraction kept', default: 1, min: 0, max: 1 };
const gamma: ParamSpec = { name: 'gamma', kind: 'number', help: 'largest fraction dropped', default: 0.01, min: 0, max: 1 };
const epsilon: ParamSpec = { name: 'epsilon', kind: 'number', help: 'DELLA spread', default: 0.15, min: 0, max: 1 };
const lambda: ParamSpec = { name: 'lambda', kind: 'number', help: 'scale of the merged task vector', default: 1 };
const int8Mask: ParamSpec = { name: 'int8_mask', kind: 'boolean', help: 'store masks as int8', default: false };
const normalize = (d: boolean): ParamSpec => ({ name: 'normalize', kind: 'boolean', help: 'divide by the weight sum', default: d });
const rescale = (d: boolean): ParamSpec => ({ name: 'rescale', kind: 'boolean', help: 'rescale kept deltas', default: d });

const schemas: MethodSchema[] = [
  { name: 'linear', params: [normalize(true)], perModelParams: [weight] },
  { name: 'task_arithmetic', params: [normalize(false), lambda, int8Mask], perModelParams: [weight] },
  { name: 'ties', params: [normalize(true), lambda, int8Mask], perModelParams: [weight, density] },
  {
    name: 'dare_ties',
    params: [
      normalize(false),
      rescale(true),
      lambda,
      int8Mask,
      { name: 'rescale_mode', kind: 'enum', help: 'how kept deltas are rescaled', default: 'l1', options: ['l1', 'density'] },
    ],
    perModelParams: [weight, density],
  },
  { name: 'breadcrumbs_ties', params: [normalize(false), lambda, int8Mask], perModelParams: [weight, density, gamma] },
  { name: 'della', params: [normalize(true), rescale(true), lambda, int8Mask], perModelParams: [weight, density, epsilon] },
  { name: 'slerp', params: [{ name: 't', kind: 'number', help: 'interpolation factor', required: true, min: 0, max: 1 }], perModelParams: [] },
  {
    name: 'nuslerp',
    params: [
      { name: 'nuslerp_flatten', kind: 'boolean', help: 'slerp the whole tensor', default: true },
      { name: 'nuslerp_row_wise', kind: 'boolean', help: 'slerp rows', default: false },
    ],
    perModelParams: [weight],
  },
  { name: 'model_stock', params: [{ name: 'filter_wise', kind: 'boolean', help: 'per row', default: false }], perModelParams: [] },
  {
    name: 'karcher',
    params: [
      { name: 'max_iter', kind: 'integer', help: 'iterations', default: 10, min: 1 },
      { name: 'tol', kind: 'number', help: 'tolerance', default: 1e-5, min: 0 },
    ],
    perModelParams: [],
  },
  { name: 'sce', params: [{ name: 'select_topk', kind: 'number', help: 'fraction kept', default: 1, min: 0, max: 1 }, int8Mask], perModelParams: [] },
  { name: 'ram', params: [{ name: 'epsilon', kind: 'number', help: 'threshold', default: 1e-5, min: 0 }], perModelParams: [] },
  {
    name: 'ramplus_tl',
    params: [
      { name: 'r', kind: 'number', help: 'boost', default: 0.1, min: 0 },
      { name: 'alpha', kind: 'number', help: 'cap', default: 0.2, min: 0 },
      { name: 'epsilon', kind: 'number', help: 'threshold', default: 1e-5, min: 0 },
    ],
    perModelParams: [],
  },
  { name: 'arcee_fusion', params: [], perModelParams: [] },
  // The papers' methods: an `alpha` scale and unit default weights for the subspace methods.
  { name: 'tsv', params: [{ name: 'alpha', kind: 'number', help: 'scale', default: 1 }], perModelParams: [{ ...weight, required: false, default: 1 }] },
  { name: 'iso_c', params: [{ name: 'alpha', kind: 'number', help: 'scale', default: 1 }], perModelParams: [{ ...weight, required: false, default: 1 }] },
  {
    name: 'iso_cts',
    params: [
      { name: 'alpha', kind: 'number', help: 'scale', default: 1 },
      { name: 'common_space_fraction', kind: 'number', help: 'common share', default: 0.8, min: 0, max: 1 },
    ],
    perModelParams: [{ ...weight, required: false, default: 1 }],
  },
  {
    name: 'lines',
    params: [
      { name: 'beta', kind: 'number', help: 'depth scale', required: true, min: 0 },
      { name: 'alpha', kind: 'number', help: 'shallow scale' },
    ],
    perModelParams: [{ ...weight, required: false, default: 1 }],
  },
  { name: 'pcb', params: [{ ...density, default: 0.2 }, lambda], perModelParams: [] },
  {
    name: 'widen',
    params: [
      { name: 'above_average_value_ratio', kind: 'number', help: 'significance ratio', default: 1, min: 0 },
      { name: 'score_calibration_value', kind: 'number', help: 'calibrated score', default: 1 },
    ],
    perModelParams: [],
  },
  { name: 'passthrough', params: [], perModelParams: [{ name: 'scale', kind: 'number', help: 'scale' }] },
];

const byName = new Map(schemas.map((s) => [s.name, s]));

/** Lookup with `names`, as the real registry offers. */
export const fakeMethods: MethodLookup = Object.assign((name: string) => byName.get(name), {
  names: schemas.map((s) => s.name),
});

/** Lookup that is a plain function (no `names`). */
export const fakeMethodsWithoutNames: MethodLookup = (name: string) => byName.get(name);

export function fakeMethod(name: string): MethodSchema {
  const m = byName.get(name);
  if (!m) throw new Error(`no fake method ${name}`);
  return m;
}

/**
 * Model Breadcrumbs: the task-vector family with election = false, sparsifier = band.
 * Deliberate difference from mergekit: when gamma·n rounds down to 0 outliers, mergekit keeps
 * nothing (its slice `indices[n_bot:-0]` is empty); we keep the band, as the paper intends.
 */
import { taskArithmeticFamily } from './task-arithmetic-family.ts';

export const breadcrumbs = taskArithmeticFamily({
  name: 'breadcrumbs',
  prettyName: 'Model Breadcrumbs',
  help: 'Drop the smallest and the largest (outlier) task-vector entries, then add the rest to the base (unlike mergekit, keeps the band when gamma·n rounds to 0)',
  referenceUrl: 'https://arxiv.org/abs/2312.06795',
  election: false,
  sparsifier: 'band',
  normalizeDefault: false,
});

/**
 * Model Breadcrumbs with TIES: the task-vector family with election = true, sparsifier = band.
 * Deliberate difference from mergekit: when gamma·n rounds down to 0 outliers, mergekit keeps
 * nothing (its slice `indices[n_bot:-0]` is empty); we keep the band, as the paper intends.
 */
import { taskArithmeticFamily } from './task-arithmetic-family.ts';

export const breadcrumbsTies = taskArithmeticFamily({
  name: 'breadcrumbs_ties',
  prettyName: 'Model Breadcrumbs with TIES',
  help: 'Drop the smallest and the largest task-vector entries, then TIES sign election (unlike mergekit, keeps the band when gamma·n rounds to 0)',
  referenceUrl: 'https://arxiv.org/abs/2312.06795',
  election: true,
  sparsifier: 'band',
  normalizeDefault: false,
});

/** DELLA Linear: the task-vector family with election = false, sparsifier = ranked (METHODS.md table). */
import { taskArithmeticFamily } from './task-arithmetic-family.ts';

export const dellaLinear = taskArithmeticFamily({
  name: 'della_linear',
  prettyName: 'DELLA Linear',
  help: 'Drop task-vector entries with magnitude-ranked probabilities (DELLA), rescale, then add them to the base',
  referenceUrl: 'https://arxiv.org/abs/2406.11617',
  election: false,
  sparsifier: 'ranked',
  normalizeDefault: false,
  rescaleDefault: true,
});

/** DELLA: the task-vector family with election = true, sparsifier = ranked (METHODS.md table). */
import { taskArithmeticFamily } from './task-arithmetic-family.ts';

export const della = taskArithmeticFamily({
  name: 'della',
  prettyName: 'DELLA',
  help: 'Drop task-vector entries with magnitude-ranked probabilities (DELLA), rescale, then TIES sign election',
  referenceUrl: 'https://arxiv.org/abs/2406.11617',
  election: true,
  sparsifier: 'ranked',
  normalizeDefault: true,
  rescaleDefault: true,
});

/** DARE TIES: the task-vector family with election = true, sparsifier = random (METHODS.md table). */
import { taskArithmeticFamily } from './task-arithmetic-family.ts';

export const dareTies = taskArithmeticFamily({
  name: 'dare_ties',
  prettyName: 'DARE TIES',
  help: 'Drop task-vector entries at random (DARE), rescale, then TIES sign election',
  referenceUrl: 'https://arxiv.org/abs/2311.03099',
  election: true,
  sparsifier: 'random',
  normalizeDefault: false,
  rescaleDefault: true,
});

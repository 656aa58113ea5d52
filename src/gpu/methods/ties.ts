/** TIES: the task-vector family with election = true, sparsifier = magnitude (METHODS.md table). */
import { taskArithmeticFamily } from './task-arithmetic-family.ts';

export const ties = taskArithmeticFamily({
  name: 'ties',
  prettyName: 'TIES',
  help: 'Keep the largest entries of each task vector, elect a sign per entry, average the agreeing ones',
  referenceUrl: 'https://arxiv.org/abs/2306.01708',
  election: true,
  sparsifier: 'magnitude',
  normalizeDefault: true,
});

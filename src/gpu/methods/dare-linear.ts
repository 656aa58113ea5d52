/** DARE Linear: the task-vector family with election = false, sparsifier = random (METHODS.md table). */
import { taskArithmeticFamily } from './task-arithmetic-family.ts';

export const dareLinear = taskArithmeticFamily({
  name: 'dare_linear',
  prettyName: 'DARE Linear',
  help: 'Drop task-vector entries at random (DARE), rescale, then add them to the base',
  referenceUrl: 'https://arxiv.org/abs/2311.03099',
  election: false,
  sparsifier: 'random',
  normalizeDefault: false,
  rescaleDefault: true,
});

/** Task Arithmetic: the task-vector family with election = false, sparsifier = none (METHODS.md table). */
import { taskArithmeticFamily } from './task-arithmetic-family.ts';

export const taskArithmetic = taskArithmeticFamily({
  name: 'task_arithmetic',
  prettyName: 'Task Arithmetic',
  help: 'Add the weighted task vectors (model − base) to the base',
  referenceUrl: 'https://arxiv.org/abs/2212.04089',
  election: false,
  sparsifier: 'none',
  normalizeDefault: false,
});

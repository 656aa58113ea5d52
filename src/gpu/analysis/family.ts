/**
 * How each task-vector method combines its models (METHODS.md "Task-vector family"): sign election
 * and sparsifier by method name, the same table src/gpu/methods/*.ts register. The analysis replays
 * these steps (sparsify with the method's own SPARSIFY functions, rescale, weight, elect) to report
 * what each model keeps and contributes; analyze.test.ts checks that the contributions it derives
 * add up to the method's merged delta, so the table cannot drift from the methods silently.
 */
import type { Sparsifier } from '../methods/sparsifiers.ts';

export interface FamilySteps {
  election: boolean;
  sparsifier: Sparsifier;
}

export const TASK_VECTOR_FAMILY: Readonly<Record<string, FamilySteps>> = {
  task_arithmetic: { election: false, sparsifier: 'none' },
  ties: { election: true, sparsifier: 'magnitude' },
  dare_ties: { election: true, sparsifier: 'random' },
  dare_linear: { election: false, sparsifier: 'random' },
  breadcrumbs: { election: false, sparsifier: 'band' },
  breadcrumbs_ties: { election: true, sparsifier: 'band' },
  della: { election: true, sparsifier: 'ranked' },
  della_linear: { election: false, sparsifier: 'ranked' },
};

/** The family steps of a method, or null for methods outside the task-vector family. */
export function familyStepsOf(method: string): FamilySteps | null {
  return Object.hasOwn(TASK_VECTOR_FAMILY, method) ? TASK_VECTOR_FAMILY[method] : null;
}

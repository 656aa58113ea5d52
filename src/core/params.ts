/**
 * Parameter schemas: the single source of truth for a merge method's parameters. The recipe
 * validator, the CLI help and the studio's forms are all generated from these.
 */

export type ParamKind = 'number' | 'integer' | 'boolean' | 'enum';

export interface ParamSpec {
  name: string;
  kind: ParamKind;
  /** One line of help, shown in forms and the CLI. */
  help: string;
  /** Absent default + required: the recipe must give it. */
  default?: number | boolean | string;
  required?: boolean;
  /** Allowed range for numbers (inclusive); the studio's sliders use softMin/softMax when set. */
  min?: number;
  max?: number;
  softMin?: number;
  softMax?: number;
  /** Allowed values for `enum`. */
  options?: readonly string[];
}

/** A resolved parameter value for one tensor. */
export type ParamScalar = number | boolean | string;

/** What the recipe layer needs to know about a method (a MethodDescriptor satisfies it). */
export interface MethodSchema {
  name: string;
  /** Global parameters (top-level `parameters:`). */
  params: readonly ParamSpec[];
  /** Per-model parameters (a model's `parameters:`, falling back to top-level ones). */
  perModelParams: readonly ParamSpec[];
}

/**
 * Finds a method's schema by name. `names`, when the lookup has it, lists every known method so an
 * unknown `merge_method` can be answered with the valid ones (a plain function still satisfies this).
 */
export type MethodLookup = ((name: string) => MethodSchema | undefined) & { readonly names?: readonly string[] };

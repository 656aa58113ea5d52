/**
 * A merge method = one small module exporting a MethodDescriptor: its parameters (schemas from
 * src/core/params.ts) and its plan, written as calls on a Backend so the same plan runs on the GPU and
 * on the CPU reference backend. Methods never read files or parse recipes.
 */
import type { MethodSchema, ParamScalar, ParamSpec } from '../../core/params.ts';
import type { FloatDType } from '../../core/dtype.ts';
import type { Backend, Tensor } from '../backend.ts';

export type ResolvedParams = Readonly<Record<string, ParamScalar>>;

/** One recipe model's tensor, with its per-model parameters resolved for this tensor. */
export interface MethodInput {
  tensor: Tensor;
  params: ResolvedParams;
  /** True when this recipe entry is the base model. */
  isBase: boolean;
  /** Position among the non-base models (recipe order), -1 for the base. Keys random masks. */
  deltaIndex: number;
  /** The model as written in the recipe, for error messages (optional: methods fall back to deltaIndex). */
  label?: string;
}

/** One tensor's decoded inputs, parameters resolved: what a method sees of a tensor. */
export interface TensorInputs {
  backend: Backend;
  tensorName: string;
  shape: readonly number[];
  /** The base model's tensor (also present in `models` when the recipe lists the base there). */
  base: Tensor | undefined;
  /** Every recipe model, in recipe order. */
  models: readonly MethodInput[];
  /** Global parameters resolved for this tensor, defaults applied. */
  params: ResolvedParams;
  seed: number;
  /**
   * The dtype mergekit would do this tensor's math in: the recipe's `dtype`, else the inputs' own.
   * BF16/F16 make methods that emulate 16-bit math round after each op (absent or F32: plain f32).
   */
  computeDtype?: FloatDType;
}

export interface MergeContext<State = unknown> extends TensorInputs {
  /** What the method's `prepare` returned (undefined for methods without one). */
  prepared?: State;
  /**
   * A keep-mask replayed from a file for non-base model `deltaIndex`, or undefined to draw one.
   * The method may release the mask once used (the engine's own release after that is a no-op).
   */
  replayMask(deltaIndex: number): Promise<Tensor | undefined>;
}

/**
 * Whole-model passes for methods whose per-tensor merge needs statistics of the whole model (PCB's
 * normalizations and k-th largest, LiNeS's L1 norms). Each pass streams: every merged (float)
 * tensor's inputs are read again from the sources, decoded, handed to `visit`, and released when
 * `visit` returns, one tensor at a time. Progress is reported per pass.
 */
export interface ModelPass {
  readonly backend: Backend;
  /** The merged tensors, in output order. */
  readonly tensors: readonly { readonly name: string; readonly shape: readonly number[] }[];
  /** Layer count of the model (as parameters resolve it). */
  readonly numLayers: number;
  /** Parameters resolved for one tensor, without reading it: global and per recipe model. */
  params(tensorName: string): { global: ResolvedParams; perModel: readonly ResolvedParams[] };
  /**
   * Visit every merged tensor in order. `label` names the pass in progress reports
   * (e.g. "PCB: softmax sums"). The inputs are released once `visit` returns.
   */
  forEachTensor(label: string, visit: (inputs: TensorInputs) => Promise<void>): Promise<void>;
}

export interface MethodDescriptor<State = unknown> extends MethodSchema {
  name: string;
  prettyName: string;
  /** One line for pickers and the CLI. */
  help: string;
  referenceUrl?: string;
  params: readonly ParamSpec[];
  perModelParams: readonly ParamSpec[];
  /** Whether the method needs a base model. */
  base: 'required' | 'optional' | 'unused';
  /** Number of recipe models allowed (base included when listed). */
  minModels: number;
  maxModels?: number;
  /**
   * Whole-model passes before the merge (optional): returns host-side state (numbers, not tensors)
   * that every `merge` call receives as `ctx.prepared`.
   */
  prepare?(pass: ModelPass): Promise<State>;
  /** Merge one tensor. Returns a new tensor the caller releases; releases its own intermediates. */
  merge(ctx: MergeContext<State>): Promise<Tensor>;
}

/** Thrown by a method for an input it cannot merge (names the tensor and the reason). */
export class MethodError extends Error {
  constructor(
    readonly method: string,
    readonly tensor: string,
    reason: string,
  ) {
    super(`${method}: tensor ${tensor}: ${reason}`);
    this.name = 'MethodError';
  }
}

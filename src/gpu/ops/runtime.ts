/**
 * What an op family sees of its backend. A family is a function from a runtime to its ops
 * (`elementwiseGpu(rt)`, `elementwiseCpu(rt)`); GpuBackend and CpuBackend are the runtimes and
 * assemble their op tables from the families.
 */
import type { Tensor } from '../backend.ts';
import type { GpuContext } from '../context.ts';
import type { BufferRange, ChunkLayout, GpuTensor } from '../gpu-tensor.ts';

export interface GpuOpRuntime {
  readonly ctx: GpuContext;
  /** Elements per chunk at most. */
  readonly chunkCapacity: number;
  /** Elements summed per reduction workgroup. */
  readonly reduceBlock: number;
  /** Sort narrow bitonic stages in workgroup memory. */
  readonly workgroupSort: boolean;
  /** The validated chunk layout of a new tensor of `shape`. */
  layout(op: string, shape: readonly number[]): ChunkLayout;
  /** `t` as a live tensor of this backend, or an error naming `op`. */
  tensor(t: Tensor, op: string): GpuTensor;
  chunks(t: GpuTensor, op: string): readonly BufferRange[];
  /** Throws unless b can be combined elementwise with a (same numel, same chunking). */
  sameLayout(op: string, a: GpuTensor, b: GpuTensor, what: string): void;
  sameSize(xs: readonly Tensor[], op: string): GpuTensor[];
  /**
   * A new tensor of `shape`, filled by `fill` (released again if fill throws). Its buffers hold
   * garbage unless `zero`: fill must write every element or ask for zeros.
   */
  output(op: string, shape: readonly number[], fill: (out: readonly BufferRange[], layout: ChunkLayout) => Promise<void>, opts?: { zero?: boolean }): Promise<GpuTensor>;
  error(op: string, reason: string): Error;
}

export interface CpuOpRuntime {
  /** The values of a live tensor of this backend (not a copy), or an error naming `op`. */
  data(t: Tensor, op: string): Float32Array;
  /** A new tensor owning `data`. */
  make(data: Float32Array, shape: readonly number[]): Tensor;
  /** Values of tensors that must all have the same number of elements. */
  sameSize(xs: readonly Tensor[], op: string): Float32Array[];
  error(op: string, reason: string): Error;
}

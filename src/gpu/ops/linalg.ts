/**
 * Linear algebra on tensors viewed as matrices (src/shaders/linalg.wgsl): products, transposes,
 * column blocks and column-wise reductions. A 2-D tensor [rows, cols] is a row-major matrix; on the
 * GPU it may span several buffers (whole rows per chunk, see gpu-tensor.ts), which every op handles.
 * Reference: linalg.cpu.ts. Factorizations built on these ops (QR, polar, SVD) live in src/gpu/linalg/.
 */
import type { Tensor } from '../backend.ts';
import type { GpuOpRuntime } from './runtime.ts';

export interface MatmulOptions {
  /** Use Aᵀ in place of A. */
  transA?: boolean;
  /** Use Bᵀ in place of B. */
  transB?: boolean;
  /** Scale of the product. @default 1 */
  alpha?: number;
}

export interface LinalgOps {
  /**
   * C = alpha · op(A) · op(B) for 2-D tensors, op(X) = X or Xᵀ; f32 inputs, f32 accumulation.
   * Shapes must agree: op(A) is m×k, op(B) is k×n; C is [m, n].
   */
  matmul(a: Tensor, b: Tensor, opts?: MatmulOptions): Promise<Tensor>;
  /** The transpose of a 2-D tensor. */
  transpose(x: Tensor): Promise<Tensor>;
  /** Columns [from, to) of a 2-D tensor, as a new [rows, to - from] tensor. */
  sliceColumns(x: Tensor, from: number, to: number): Promise<Tensor>;
  /** [x_1 | x_2 | …]: 2-D tensors with the same number of rows side by side. */
  concatColumns(xs: readonly Tensor[]): Promise<Tensor>;
  /** x with column j multiplied by s[j] (s has one entry per column). */
  scaleColumns(x: Tensor, s: Float32Array): Promise<Tensor>;
  /** Per column j of two [rows, cols] tensors: Σ_i a[i, j]·b[i, j] (f64 on the host; a = b gives squared norms). */
  columnDots(a: Tensor, b: Tensor): Promise<Float64Array>;
}

export function linalgGpu(rt: GpuOpRuntime): LinalgOps {
  const todo = (op: string) => () => Promise.reject(rt.error(op, 'not implemented on the GPU backend yet'));
  return {
    matmul: todo('matmul'),
    transpose: todo('transpose'),
    sliceColumns: todo('sliceColumns'),
    concatColumns: todo('concatColumns'),
    scaleColumns: todo('scaleColumns'),
    columnDots: todo('columnDots'),
  };
}

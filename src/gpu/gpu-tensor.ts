/**
 * How the WebGPU backend stores a tensor: a list of f32 storage buffers ("chunks") of at most
 * `capacity` elements. When a row fits in a chunk, the chunk length is a whole number of rows, so
 * row-wise and matrix ops see whole rows and a dispatch over one chunk never straddles buffers;
 * longer rows span chunks and the row-wise kernels handle that. The layout depends only on the shape
 * and the capacity, so tensors of one shape always have the same chunks and elementwise kernels go
 * chunk by chunk.
 */
import { rowCount, type Tensor } from './backend.ts';

/** How a tensor of a given shape is cut into chunks. */
export interface ChunkLayout {
  readonly numel: number;
  readonly rows: number;
  readonly rowLen: number;
  /** Elements per chunk (the last one may be shorter). */
  readonly chunkLen: number;
  readonly count: number;
}

/** The chunking of `shape` for chunks of at most `capacity` elements (whole rows when one fits). */
export function chunkLayout(shape: readonly number[], capacity: number): ChunkLayout {
  const numel = shape.reduce((a, b) => a * b, 1);
  const rows = rowCount(shape);
  const rowLen = rows > 0 ? numel / rows : 0;
  const cap = Math.max(1, Math.floor(capacity));
  const chunkLen = rowLen > 0 && rowLen <= cap ? Math.floor(cap / rowLen) * rowLen : cap;
  return { numel, rows, rowLen, chunkLen, count: Math.ceil(numel / chunkLen) };
}

export function chunkStart(layout: ChunkLayout, c: number): number {
  return c * layout.chunkLen;
}

export function chunkLength(layout: ChunkLayout, c: number): number {
  return Math.min(layout.chunkLen, layout.numel - c * layout.chunkLen);
}

/** Rows per chunk when rows are whole in chunks (0 when a row spans several chunks). */
export function rowsPerChunk(layout: ChunkLayout): number {
  return layout.rowLen > 0 && layout.chunkLen % layout.rowLen === 0 ? layout.chunkLen / layout.rowLen : 0;
}

/** Chunks holding any of the global elements [start, start + len). */
export function chunksTouching(layout: ChunkLayout, start: number, len: number): number[] {
  const first = Math.floor(start / layout.chunkLen);
  const last = Math.floor((start + len - 1) / layout.chunkLen);
  const list: number[] = [];
  for (let c = first; c <= last; c++) list.push(c);
  return list;
}

/** A buffer range holding one chunk (pooled buffers may be longer than the chunk). */
export interface BufferRange {
  readonly buffer: GPUBuffer;
  readonly offset: number;
  readonly size: number;
}

/** An f32 tensor in GPU buffers, owned by one GpuBackend (which releases it on dispose). */
export class GpuTensor implements Tensor {
  readonly numel: number;
  readonly shape: readonly number[];
  readonly layout: ChunkLayout;
  /** null once released. */
  chunks: BufferRange[] | null;
  readonly #release: (t: GpuTensor) => void;

  constructor(shape: readonly number[], layout: ChunkLayout, chunks: BufferRange[], release: (t: GpuTensor) => void) {
    this.shape = [...shape];
    this.numel = layout.numel;
    this.layout = layout;
    this.chunks = chunks;
    this.#release = release;
  }

  [Symbol.dispose](): void {
    this.#release(this);
  }
}

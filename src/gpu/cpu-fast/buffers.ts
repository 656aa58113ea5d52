/**
 * Host memory of the fast CPU backend: a pool of large buffers reused across tensors, and
 * reference-counted storages cut from them.
 *
 * Why a pool: first touching fresh memory is the most expensive thing a merge does on some hosts
 * (in the VMs we measured, a page fault costs ~15 µs: 0.3 GB/s, fifty times slower than writing
 * memory that is already mapped). Every layer of a model has the same shapes, so the buffers of one
 * tensor serve the next: a merge faults its working set in once. Buffers are SharedArrayBuffers when
 * the backend runs worker threads (they read and write them in place), plain ArrayBuffers otherwise.
 */

/** Buffers below this size are not pooled (the allocator reuses small blocks well by itself). */
const POOL_MIN_BYTES = 1 << 20;
/** A free buffer serves a request of at least 1/WASTE_RATIO of its size (no hogging giant buffers). */
const WASTE_RATIO = 16;

export interface PoolStats {
  /** Buffers made new (and bytes): each costs page faults on first touch. */
  freshBuffers: number;
  freshBytes: number;
  /** Requests served by a free pooled buffer. */
  reusedBuffers: number;
  /** Bytes held by storages now, at most so far, and kept free for reuse now. */
  liveBytes: number;
  peakLiveBytes: number;
  freeBytes: number;
}

export class BufferPool {
  readonly shared: boolean;
  /** Free buffers, least recently freed first. */
  #free: ArrayBufferLike[] = [];
  #freeBytes = 0;
  #largest = 0;
  readonly #minLimit: number;
  readonly stats: Omit<PoolStats, 'freeBytes'> = { freshBuffers: 0, freshBytes: 0, reusedBuffers: 0, liveBytes: 0, peakLiveBytes: 0 };

  /**
   * @param shared SharedArrayBuffers (for worker threads) or ArrayBuffers.
   * @param minLimitBytes free bytes kept at least; the pool keeps up to 4× the largest buffer asked
   * for (the inputs of one merged tensor) when that is more.
   */
  constructor(shared: boolean, minLimitBytes = 256 << 20) {
    this.shared = shared;
    this.#minLimit = minLimitBytes;
  }

  /** A buffer of at least `bytes` bytes (contents undefined). */
  acquire(bytes: number): ArrayBufferLike {
    this.#largest = Math.max(this.#largest, bytes);
    if (bytes >= POOL_MIN_BYTES) {
      let best = -1;
      for (let i = 0; i < this.#free.length; i++) {
        const size = this.#free[i].byteLength;
        if (size >= bytes && size <= bytes * WASTE_RATIO && (best < 0 || size < this.#free[best].byteLength)) best = i;
      }
      if (best >= 0) {
        const [buffer] = this.#free.splice(best, 1);
        this.#freeBytes -= buffer.byteLength;
        this.stats.reusedBuffers++;
        this.#count(buffer.byteLength);
        return buffer;
      }
    }
    const buffer = this.shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
    this.stats.freshBuffers++;
    this.stats.freshBytes += bytes;
    this.#count(bytes);
    return buffer;
  }

  /** Hand a buffer back: kept for reuse (large ones), the least recently freed dropped over the limit. */
  give(buffer: ArrayBufferLike): void {
    this.stats.liveBytes -= buffer.byteLength;
    if (buffer.byteLength < POOL_MIN_BYTES) return;
    this.#free.push(buffer);
    this.#freeBytes += buffer.byteLength;
    const limit = Math.max(this.#minLimit, 4 * this.#largest);
    while (this.#freeBytes > limit && this.#free.length > 0) {
      this.#freeBytes -= this.#free.shift()!.byteLength;
    }
  }

  /** Drop every free buffer (the memory goes back to the system once collected). */
  trim(): void {
    this.#free = [];
    this.#freeBytes = 0;
  }

  snapshot(): PoolStats {
    return { ...this.stats, freeBytes: this.#freeBytes };
  }

  #count(bytes: number): void {
    this.stats.liveBytes += bytes;
    this.stats.peakLiveBytes = Math.max(this.stats.peakLiveBytes, this.stats.liveBytes);
  }
}

/** Element types of storages and kernel bindings. */
export type ViewType = 'u8' | 'u16' | 'u32' | 'i32' | 'f32' | 'f64';

export const VIEW_BYTES: Record<ViewType, number> = { u8: 1, u16: 2, u32: 4, i32: 4, f32: 4, f64: 8 };

/**
 * Bytes held for one or more tensors: a pooled buffer (returned to the pool when the last reference
 * goes) or a buffer someone handed over (dropped then).
 */
export class Storage {
  readonly buffer: ArrayBufferLike;
  readonly byteLength: number;
  #refs = 1;
  readonly #pool: BufferPool | null;

  private constructor(buffer: ArrayBufferLike, byteLength: number, pool: BufferPool | null) {
    this.buffer = buffer;
    this.byteLength = byteLength;
    this.#pool = pool;
  }

  /** A new pooled storage of `byteLength` bytes (contents undefined), with one reference. */
  static pooled(pool: BufferPool, byteLength: number): Storage {
    return new Storage(pool.acquire(Math.max(byteLength, 8)), byteLength, pool);
  }

  /** A storage over bytes the caller hands over (never reused by the pool). */
  static adopt(view: ArrayBufferView): Storage {
    if (view.byteOffset !== 0) {
      const copy = new Uint8Array(view.byteLength);
      copy.set(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
      return new Storage(copy.buffer, view.byteLength, null);
    }
    return new Storage(view.buffer, view.byteLength, null);
  }

  get live(): boolean {
    return this.#refs > 0;
  }

  retain(): this {
    if (this.#refs <= 0) throw new Error('fast cpu backend: storage used after it was freed');
    this.#refs++;
    return this;
  }

  /** Drop one reference; the last one returns a pooled buffer to its pool. */
  drop(): void {
    if (this.#refs <= 0) return;
    if (--this.#refs === 0) this.#pool?.give(this.buffer);
  }

  u8(): Uint8Array {
    return new Uint8Array(this.buffer, 0, this.byteLength);
  }

  f32(): Float32Array {
    return new Float32Array(this.buffer, 0, this.byteLength >> 2);
  }
}

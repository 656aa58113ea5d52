/**
 * The WebGPU backend: every Backend op (src/gpu/backend.ts) as WGSL kernels (src/shaders), matching
 * the CPU reference (src/gpu/cpu-backend.ts) op by op.
 *
 * A tensor is a list of f32 storage buffers ("chunks") of at most
 * min(maxStorageBufferBindingSize / 4, maxChunkElements) elements. When a row fits in a chunk the
 * chunk length is a whole number of rows, so row-wise ops see whole rows; longer rows span chunks
 * and the row-wise kernels handle that. The layout depends only on the shape, so tensors of one
 * shape always have the same chunks and elementwise kernels go chunk by chunk.
 */
import { byteLength, type FloatDType } from '../core/dtype.ts';
import { hashTensorName, rowCount, type Backend, type MaskKey, type Tensor, type Term } from './backend.ts';
import { GpuContext, WORKGROUP_SIZE, type CommandBatch } from './context.ts';
import type { GpuHandle } from './device.ts';
import { HISTOGRAM_BLOCK, KERNELS, ParamWriter, REDUCE_BLOCK, SORT_TILE } from './kernels.ts';

/** A bad call on the GPU backend (shape mismatch, released or foreign tensor, wrong byte count). */
export class GpuBackendError extends Error {
  constructor(op: string, reason: string) {
    super(`gpu backend: ${op}: ${reason}`);
    this.name = 'GpuBackendError';
  }
}

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

function chunkStart(layout: ChunkLayout, c: number): number {
  return c * layout.chunkLen;
}

function chunkLength(layout: ChunkLayout, c: number): number {
  return Math.min(layout.chunkLen, layout.numel - c * layout.chunkLen);
}

/** An f32 tensor in GPU buffers, owned by one GpuBackend. */
export class GpuTensor implements Tensor {
  readonly numel: number;
  readonly shape: readonly number[];
  readonly layout: ChunkLayout;
  /** null once released. */
  chunks: GPUBuffer[] | null;

  constructor(shape: readonly number[], layout: ChunkLayout, chunks: GPUBuffer[]) {
    this.shape = [...shape];
    this.numel = layout.numel;
    this.layout = layout;
    this.chunks = chunks;
  }
}

export interface GpuBackendOptions {
  /** Cap on elements per chunk (tests force small chunks to exercise multi-chunk paths). */
  maxChunkElements?: number;
  /** When given a device or a requestGpu handle: destroy that device in destroy(). */
  ownsDevice?: boolean;
  /** When given a device or handle: called once with the first fatal GPU error. */
  onFatal?: (err: Error) => void;
  /**
   * Run the narrow stages of keepRanked's sort in workgroup memory (5x fewer passes over the
   * scratch buffer). Default: on, except on a fallback (software) adapter, where barriers cost more
   * than the passes they save.
   */
  workgroupSort?: boolean;
  /** Elements summed per reduction workgroup (a multiple of 256). @default 4096, 65536 on software adapters */
  reduceBlock?: number;
}

/**
 * A Backend on a GpuContext (shared: destroy() leaves it alive), a requestGpu handle or a device
 * (a context is made for it; `ownsDevice` says whether destroy() also destroys the device).
 */
export function createGpuBackend(source: GpuContext | GpuHandle | GPUDevice, opts: GpuBackendOptions = {}): GpuBackend {
  if (source instanceof GpuContext) return new GpuBackend(source, false, opts);
  const ctxOpts = { ownsDevice: opts.ownsDevice ?? false, onFatal: opts.onFatal };
  const ctx = isHandle(source) ? GpuContext.fromHandle(source, ctxOpts) : new GpuContext(source, ctxOpts);
  return new GpuBackend(ctx, true, opts);
}

function isHandle(source: GpuHandle | GPUDevice): source is GpuHandle {
  return 'device' in source && 'adapterInfo' in source && 'limits' in source && 'queue' in source.device;
}

/** Largest scratch buffer keepRanked sorts in at once (rows are batched to fit). */
const SORT_SCRATCH_BYTES = 128 * 1024 * 1024;

/** Terms (or sign-vote tensors) per dispatch: the kernels bind 4 inputs (browser limit: 8 buffers). */
const TERMS_PER_PASS = 4;

export class GpuBackend implements Backend {
  readonly kind = 'gpu' as const;
  readonly ctx: GpuContext;
  readonly #ownsContext: boolean;
  readonly #chunkCapacity: number;
  readonly #workgroupSort: boolean;
  readonly #reduceBlock: number;
  readonly #live = new Set<GpuTensor>();
  #destroyed = false;

  constructor(ctx: GpuContext, ownsContext: boolean, opts: GpuBackendOptions = {}) {
    this.ctx = ctx;
    this.#ownsContext = ownsContext;
    const byBinding = Math.floor(Math.min(ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize) / 4);
    const wanted = opts.maxChunkElements ?? Infinity;
    if (!(wanted >= 1)) throw new GpuBackendError('create', `maxChunkElements must be >= 1, got ${wanted}`);
    this.#chunkCapacity = Math.min(byBinding, Math.floor(wanted));
    this.#workgroupSort = opts.workgroupSort ?? !ctx.adapterInfo.isFallbackAdapter;
    // Software adapters pay for every workgroup barrier: give each reduction workgroup 16x more.
    this.#reduceBlock = opts.reduceBlock ?? (ctx.adapterInfo.isFallbackAdapter ? 16 * REDUCE_BLOCK : REDUCE_BLOCK);
  }

  get description(): string {
    return this.ctx.description;
  }

  /** Elements per chunk at most. */
  get chunkCapacity(): number {
    return this.#chunkCapacity;
  }

  /** Tensors made by this backend and not yet released (leak checks in tests). */
  get liveTensors(): number {
    return this.#live.size;
  }

  /** The chunk layout this backend uses for `shape`. */
  layoutOf(shape: readonly number[]): ChunkLayout {
    return chunkLayout(shape, this.#chunkCapacity);
  }

  /** Upload host f32 values as a new tensor (tests and host-side set-up). */
  async fromArray(values: ArrayLike<number>, shape: readonly number[]): Promise<GpuTensor> {
    // A Float32Array goes up as is (a copy through JS numbers could change NaN payloads).
    const data = values instanceof Float32Array ? values : Float32Array.from(values);
    const layout = this.#layout('fromArray', shape);
    if (layout.numel !== data.length) {
      throw new GpuBackendError('fromArray', `${data.length} values do not fill shape [${shape.join(', ')}]`);
    }
    return this.decode(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 'F32', shape) as Promise<GpuTensor>;
  }

  async decode(bytes: Uint8Array, dtype: FloatDType, shape: readonly number[]): Promise<Tensor> {
    const layout = this.#layout('decode', shape);
    const want = byteLength(dtype, layout.numel);
    if (bytes.byteLength !== want) {
      throw new GpuBackendError('decode', `${bytes.byteLength} bytes for ${dtype} shape [${shape.join(', ')}], expected ${want}`);
    }
    return this.#withOutput('decode', shape, layout, async (chunks) => {
      const queue = this.ctx.device.queue;
      // writeBuffer copies from any ArrayBuffer-backed view; the DOM typing wants ArrayBuffer.
      const src = bytes as Uint8Array<ArrayBuffer>;
      if (dtype === 'F32') {
        chunks.forEach((buf, c) => {
          queue.writeBuffer(buf, 0, src, chunkStart(layout, c) * 4, chunkLength(layout, c) * 4);
        });
        return;
      }
      const kernel = dtype === 'BF16' ? KERNELS.decodeBf16 : KERNELS.decodeF16;
      const batch = this.ctx.batch(`decode ${dtype}`);
      chunks.forEach((buf, c) => {
        const start = chunkStart(layout, c);
        const len = chunkLength(layout, c);
        const packed = batch.temp(
          this.ctx.createBuffer({
            label: `decode ${dtype} input chunk ${c}`,
            size: Math.ceil(len / 2) * 4,
            usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
          }),
        );
        // writeBuffer needs a multiple of 4 bytes: an odd count sends its last value padded.
        const even = len - (len % 2);
        queue.writeBuffer(packed, 0, src, start * 2, even * 2);
        if (len % 2) {
          const tail = new Uint8Array(4);
          tail.set(bytes.subarray((start + even) * 2, (start + even) * 2 + 2));
          queue.writeBuffer(packed, even * 2, tail);
        }
        batch.dispatch(kernel, {
          params: new ParamWriter().u32(len).bytes(),
          buffers: { 1: packed, 2: buf },
          workgroups: Math.ceil(len / WORKGROUP_SIZE),
        });
      });
      await batch.submit();
    });
  }

  async encode(t: Tensor, dtype: FloatDType): Promise<Uint8Array> {
    const x = this.#tensor(t, 'encode');
    if (dtype === 'F32') {
      const values = await this.read(x);
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    }
    const layout = x.layout;
    const out = new Uint8Array(layout.numel * 2);
    if (layout.numel === 0) return out;
    const kernel = dtype === 'BF16' ? KERNELS.encodeBf16 : KERNELS.encodeF16;
    const batch = this.ctx.batch(`encode ${dtype}`);
    const chunks = this.#chunks(x, 'encode');
    chunks.forEach((buf, c) => {
      const len = chunkLength(layout, c);
      const words = Math.ceil(len / 2);
      const packed = batch.temp(
        this.ctx.createBuffer({
          label: `encode ${dtype} output chunk ${c}`,
          size: words * 4,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
        }),
      );
      batch.dispatch(kernel, {
        params: new ParamWriter().u32(len).bytes(),
        buffers: { 1: buf, 2: packed },
        workgroups: Math.ceil(words / WORKGROUP_SIZE),
      });
      batch.readback(packed, 0, words * 4);
    });
    const parts = await batch.submit();
    parts.forEach((part, c) => {
      out.set(new Uint8Array(part, 0, chunkLength(layout, c) * 2), chunkStart(layout, c) * 2);
    });
    return out;
  }

  async read(t: Tensor): Promise<Float32Array> {
    const x = this.#tensor(t, 'read');
    const out = new Float32Array(x.numel);
    if (x.numel === 0) return out;
    const batch = this.ctx.batch('read');
    this.#chunks(x, 'read').forEach((buf, c) => batch.readback(buf, 0, chunkLength(x.layout, c) * 4));
    const parts = await batch.submit();
    parts.forEach((part, c) => out.set(new Float32Array(part), chunkStart(x.layout, c)));
    return out;
  }

  async lincomb(terms: readonly Term[], bias = 0): Promise<Tensor> {
    if (terms.length === 0) throw new GpuBackendError('lincomb', 'no terms');
    const first = this.#tensor(terms[0].x, 'lincomb');
    const rows = first.layout.rows;
    const xs = terms.map((term, i) => {
      const x = this.#tensor(term.x, 'lincomb');
      this.#sameLayout('lincomb', first, x, `term ${i}`);
      if (typeof term.coef !== 'number' && term.coef.length !== rows) {
        throw new GpuBackendError('lincomb', `term ${i} has ${term.coef.length} row coefficients for ${rows} rows`);
      }
      return x;
    });
    return this.#withOutput('lincomb', first.shape, first.layout, async (out) => {
      const batch = this.ctx.batch('lincomb');
      this.#recordLincomb(batch, xs, terms.map((t) => t.coef), Math.fround(bias), out);
      await batch.submit();
    });
  }

  async gram(xs: readonly Tensor[]): Promise<Float64Array> {
    const ts = this.#sameSize(xs, 'gram');
    const n = ts.length;
    const pairs: [GpuTensor, GpuTensor][] = [];
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) pairs.push([ts[i], ts[j]]);
    const sums = await this.#partialSums('gram', pairs, ts[0].numel, 1);
    const g = new Float64Array(n * n);
    let p = 0;
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) {
        g[i * n + j] = sums[p];
        g[j * n + i] = sums[p];
        p++;
      }
    }
    return g;
  }

  async gramRows(xs: readonly Tensor[]): Promise<Float64Array> {
    const ts = this.#sameSize(xs, 'gramRows');
    const n = ts.length;
    const { rows, rowLen } = ts[0].layout;
    const pairs: [GpuTensor, GpuTensor][] = [];
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) pairs.push([ts[i], ts[j]]);
    const sums = await this.#partialSums('gramRows', pairs, rowLen, rows);
    const g = new Float64Array(rows * n * n);
    for (let r = 0; r < rows; r++) {
      let p = 0;
      for (let i = 0; i < n; i++) {
        for (let j = i; j < n; j++) {
          const s = sums[p * rows + r];
          g[r * n * n + i * n + j] = s;
          g[r * n * n + j * n + i] = s;
          p++;
        }
      }
    }
    return g;
  }

  async sumAbs(x: Tensor): Promise<number> {
    const t = this.#tensor(x, 'sumAbs');
    const sums = await this.#partialSums('sumAbs', [[t, null]], t.numel, 1);
    return sums[0];
  }

  async keepRankBand(x: Tensor, lo: number, hi: number): Promise<Tensor> {
    const t = this.#tensor(x, 'keepRankBand');
    const n = t.numel;
    const from = Math.max(0, Math.min(n, Math.floor(lo)));
    const to = Math.max(from, Math.min(n, Math.floor(hi)));
    return this.#withOutput('keepRankBand', t.shape, t.layout, async (out) => {
      if (from === to) return; // keeps nothing: the new buffers are zero
      const src = this.#chunks(t, 'keepRankBand');
      if (from === 0 && to === n) {
        const batch = this.ctx.batch('keepRankBand copy');
        src.forEach((buf, c) => batch.copy(buf, 0, out[c], 0, chunkLength(t.layout, c) * 4));
        await batch.submit();
        return;
      }
      const targets = [from > 0 ? from : -1, to < n ? to : -1];
      const [lower, upper] = await this.#selectRanks(t, targets);
      const batch = this.ctx.batch('keepRankBand mask');
      src.forEach((buf, c) => {
        const len = chunkLength(t.layout, c);
        batch.dispatch(KERNELS.keepBand, {
          params: new ParamWriter()
            .u32(len)
            .u32(chunkStart(t.layout, c))
            .u32(lower?.key ?? 0)
            .u32(lower?.index ?? 0)
            .u32(upper?.key ?? 0)
            .u32(upper?.index ?? 0)
            .u32(lower ? 1 : 0)
            .u32(upper ? 1 : 0)
            .bytes(),
          buffers: { 1: buf, 4: out[c] },
          workgroups: Math.ceil(len / WORKGROUP_SIZE),
        });
      });
      await batch.submit();
    });
  }

  async keepRandom(x: Tensor, p: number, key: MaskKey): Promise<Tensor> {
    const t = this.#tensor(x, 'keepRandom');
    const threshold = uniformThreshold(p);
    const hash = hashTensorName(key.tensor);
    return this.#withOutput('keepRandom', t.shape, t.layout, async (out) => {
      if (threshold === 0) return;
      const batch = this.ctx.batch('keepRandom');
      this.#chunks(t, 'keepRandom').forEach((buf, c) => {
        const len = chunkLength(t.layout, c);
        batch.dispatch(KERNELS.keepRandom, {
          params: maskParams(len, chunkStart(t.layout, c), key, hash, threshold, 0, 0),
          buffers: { 1: buf, 4: out[c] },
          workgroups: Math.ceil(len / WORKGROUP_SIZE),
        });
      });
      await batch.submit();
    });
  }

  async keepRanked(x: Tensor, density: number, epsilon: number, key: MaskKey): Promise<Tensor> {
    const t = this.#tensor(x, 'keepRanked');
    const { rows, rowLen } = t.layout;
    const padded = nextPowerOfTwo(rowLen);
    const maxBinding = this.ctx.limits.maxStorageBufferBindingSize;
    if (padded * 8 > maxBinding) {
      throw new GpuBackendError(
        'keepRanked',
        `rows of ${rowLen} entries need ${padded * 8} bytes of sort scratch, above maxStorageBufferBindingSize ${maxBinding}`,
      );
    }
    const hash = hashTensorName(key.tensor);
    return this.#withOutput('keepRanked', t.shape, t.layout, async (out) => {
      if (t.numel === 0) return;
      const src = this.#chunks(t, 'keepRanked');
      // The sort scratch holds at most one chunk's worth of pairs (and at most 128 MiB): rows are
      // sorted in batches that fit, at least one row at a time.
      const scratchPairs = Math.min(SORT_SCRATCH_BYTES / 8, maxBinding / 8, this.#chunkCapacity);
      const batchRows = Math.max(1, Math.min(rows, Math.floor(scratchPairs / padded)));
      const [pairs, ranks, table] = await this.ctx.allocate('keepRanked scratch', [
        { label: 'keepRanked sort pairs', size: batchRows * padded * 8, usage: GPUBufferUsage.STORAGE },
        { label: 'keepRanked ranks', size: batchRows * rowLen * 4, usage: GPUBufferUsage.STORAGE },
        {
          label: 'keepRanked thresholds',
          size: rowLen * 4,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
        },
      ]);
      try {
        this.ctx.device.queue.writeBuffer(table, 0, rankedThresholds(rowLen, density, epsilon));
        for (let r0 = 0; r0 < rows; r0 += batchRows) {
          const nRows = Math.min(batchRows, rows - r0);
          const batchStart = r0 * rowLen;
          const batchLen = nRows * rowLen;
          const batch = this.ctx.batch(`keepRanked rows ${r0}..${r0 + nRows - 1}`);
          const sortParams = (n: number, offset: number, k: number, j: number) =>
            new ParamWriter().u32(n).u32(offset).u32(batchStart).u32(nRows).u32(rowLen).u32(padded).u32(k).u32(j).bytes();
          if (padded > rowLen) {
            batch.dispatch(KERNELS.fillPad, {
              params: sortParams(0, 0, 0, 0),
              buffers: { 2: pairs },
              workgroups: Math.ceil((nRows * (padded - rowLen)) / WORKGROUP_SIZE),
            });
          }
          const touched = chunksTouching(t.layout, batchStart, batchLen);
          for (const c of touched) {
            const len = chunkLength(t.layout, c);
            batch.dispatch(KERNELS.loadKeys, {
              params: sortParams(len, chunkStart(t.layout, c), 0, 0),
              buffers: { 1: src[c], 2: pairs },
              workgroups: Math.ceil(len / WORKGROUP_SIZE),
            });
          }
          // Bitonic network, one global dispatch per stage (sort_step); with workgroupSort the
          // stages with j < SORT_TILE run in workgroup memory instead (sort_local).
          const localWorkgroups = Math.ceil((nRows * padded) / SORT_TILE);
          const stepWorkgroups = Math.ceil((nRows * (padded / 2)) / WORKGROUP_SIZE);
          const step = (k: number, j: number) =>
            batch.dispatch(KERNELS.sortStep, { params: sortParams(0, 0, k, j), buffers: { 2: pairs }, workgroups: stepWorkgroups });
          const local = (k: number) =>
            batch.dispatch(KERNELS.sortLocal, { params: sortParams(0, 0, k, 0), buffers: { 2: pairs }, workgroups: localWorkgroups });
          const tile = this.#workgroupSort ? SORT_TILE : 1;
          if (tile > 1) local(0);
          for (let k = tile * 2; k <= padded; k *= 2) {
            for (let j = k / 2; j >= tile; j /= 2) step(k, j);
            if (tile > 1) local(k);
          }
          batch.dispatch(KERNELS.scatterRanks, {
            params: sortParams(0, 0, 0, 0),
            buffers: { 2: pairs, 3: ranks },
            workgroups: Math.ceil(batchLen / WORKGROUP_SIZE),
          });
          for (const c of touched) {
            const len = chunkLength(t.layout, c);
            batch.dispatch(KERNELS.keepRanked, {
              params: maskParams(len, chunkStart(t.layout, c), key, hash, 0, batchStart, batchLen),
              buffers: { 1: src[c], 2: ranks, 3: table, 4: out[c] },
              workgroups: Math.ceil(len / WORKGROUP_SIZE),
            });
          }
          await batch.submit();
        }
      } finally {
        for (const b of [pairs, ranks, table]) this.ctx.destroyBuffer(b);
      }
    });
  }

  async keepWhere(x: Tensor, mask: Tensor): Promise<Tensor> {
    const t = this.#tensor(x, 'keepWhere');
    const m = this.#tensor(mask, 'keepWhere');
    if (m.numel !== t.numel) {
      throw new GpuBackendError('keepWhere', `mask has ${m.numel} elements, tensor has ${t.numel}`);
    }
    this.#sameLayout('keepWhere', t, m, 'mask');
    return this.#withOutput('keepWhere', t.shape, t.layout, async (out) => {
      const batch = this.ctx.batch('keepWhere');
      const mc = this.#chunks(m, 'keepWhere');
      this.#chunks(t, 'keepWhere').forEach((buf, c) => {
        const len = chunkLength(t.layout, c);
        batch.dispatch(KERNELS.keepWhere, {
          params: maskParams(len, chunkStart(t.layout, c), null, 0, 0, 0, 0),
          buffers: { 1: buf, 2: mc[c], 4: out[c] },
          workgroups: Math.ceil(len / WORKGROUP_SIZE),
        });
      });
      await batch.submit();
    });
  }

  async signElect(wds: readonly Tensor[], weights: readonly number[], normalize: boolean): Promise<Tensor> {
    const ts = this.#sameSize(wds, 'signElect');
    if (weights.length !== ts.length) {
      throw new GpuBackendError('signElect', `${weights.length} weights for ${ts.length} tensors`);
    }
    const first = ts[0];
    return this.#withOutput('signElect', first.shape, first.layout, async (out) => {
      const chunks = ts.map((t) => this.#chunks(t, 'signElect'));
      const electParams = (len: number, from: number, count: number) => {
        const p = new ParamWriter().u32(len).u32(count).u32(normalize ? 1 : 0).u32(0);
        for (let k = 0; k < 4; k++) p.f32(k < count ? weights[from + k] : 0);
        return p.bytes();
      };
      const inputs = (c: number, from: number, count: number) => {
        const b: Record<number, GPUBuffer> = {};
        for (let k = 0; k < 4; k++) b[2 + k] = chunks[from + Math.min(k, count - 1)][c];
        return b;
      };
      if (ts.length <= TERMS_PER_PASS) {
        const batch = this.ctx.batch('signElect');
        out.forEach((buf, c) => {
          const len = chunkLength(first.layout, c);
          batch.dispatch(KERNELS.electFused, {
            params: electParams(len, 0, ts.length),
            buffers: { ...inputs(c, 0, ts.length), 6: buf },
            workgroups: Math.ceil(len / WORKGROUP_SIZE),
          });
        });
        await batch.submit();
        return;
      }
      // More tensors than one dispatch binds: total first, then the votes 4 tensors at a time.
      const sizes = out.map((_, c) => chunkLength(first.layout, c) * 4);
      const scratch = await this.ctx.allocate('signElect scratch', [
        ...sizes.map((size, c) => ({ label: `signElect total chunk ${c}`, size, usage: GPUBufferUsage.STORAGE })),
        ...sizes.map((size, c) => ({ label: `signElect divisor chunk ${c}`, size, usage: GPUBufferUsage.STORAGE })),
      ]);
      const total = scratch.slice(0, out.length);
      const divisor = scratch.slice(out.length);
      try {
        const batch = this.ctx.batch('signElect');
        this.#recordLincomb(batch, ts, ts.map(() => 1), 0, total);
        for (let from = 0; from < ts.length; from += TERMS_PER_PASS) {
          const count = Math.min(TERMS_PER_PASS, ts.length - from);
          out.forEach((buf, c) => {
            const len = chunkLength(first.layout, c);
            batch.dispatch(KERNELS.electAccumulate, {
              params: electParams(len, from, count),
              buffers: { 1: total[c], ...inputs(c, from, count), 6: buf, 7: divisor[c] },
              workgroups: Math.ceil(len / WORKGROUP_SIZE),
            });
          });
        }
        if (normalize) {
          out.forEach((buf, c) => {
            const len = chunkLength(first.layout, c);
            batch.dispatch(KERNELS.electFinish, {
              params: electParams(len, 0, 0),
              buffers: { 6: buf, 7: divisor[c] },
              workgroups: Math.ceil(len / WORKGROUP_SIZE),
            });
          });
        }
        await batch.submit();
      } finally {
        for (const b of scratch) this.ctx.destroyBuffer(b);
      }
    });
  }

  async nearswap(base: Tensor, x: Tensor, t: number): Promise<Tensor> {
    return this.#pairwise('nearswap', KERNELS.nearswap, base, x, t, ['base', 'model']);
  }

  async absAtLeast(a: Tensor, b: Tensor, lambda: number): Promise<Tensor> {
    return this.#pairwise('absAtLeast', KERNELS.absAtLeast, a, b, lambda, ['a', 'b']);
  }

  /** One elementwise kernel over two equally laid-out tensors (x0, x1) with the scalar `t`. */
  async #pairwise(op: string, kernel: typeof KERNELS.nearswap, first: Tensor, second: Tensor, t: number, names: [string, string]): Promise<Tensor> {
    const a = this.#tensor(first, op);
    const b = this.#tensor(second, op);
    if (a.numel !== b.numel) {
      throw new GpuBackendError(op, `${names[0]} has ${a.numel} elements, ${names[1]} has ${b.numel}`);
    }
    this.#sameLayout(op, a, b, names[1]);
    return this.#withOutput(op, a.shape, a.layout, async (out) => {
      const batch = this.ctx.batch(op);
      const ac = this.#chunks(a, op);
      const bc = this.#chunks(b, op);
      out.forEach((buf, c) => {
        const len = chunkLength(a.layout, c);
        batch.dispatch(kernel, {
          params: new ParamWriter().u32(len).u32(0).u32(0).u32(0).u32(0).u32(0).u32(0).f32(0).f32(t).bytes(),
          buffers: { 2: ac[c], 3: bc[c], 6: buf },
          workgroups: Math.ceil(len / WORKGROUP_SIZE),
        });
      });
      await batch.submit();
    });
  }

  async quantize(t: Tensor, dtype: FloatDType): Promise<Tensor> {
    const x = this.#tensor(t, 'quantize');
    if (dtype === 'F32') return this.lincomb([{ x, coef: 1 }]);
    const kernel = dtype === 'BF16' ? KERNELS.quantizeBf16 : KERNELS.quantizeF16;
    return this.#withOutput('quantize', x.shape, x.layout, async (out) => {
      const batch = this.ctx.batch(`quantize ${dtype}`);
      const xc = this.#chunks(x, 'quantize');
      out.forEach((buf, c) => {
        const len = chunkLength(x.layout, c);
        batch.dispatch(kernel, {
          params: new ParamWriter().u32(len).bytes(),
          buffers: { 1: xc[c], 2: buf },
          workgroups: Math.ceil(len / WORKGROUP_SIZE),
        });
      });
      await batch.submit();
    });
  }

  release(t: Tensor): void {
    if (!(t instanceof GpuTensor) || !this.#live.has(t)) return;
    this.#live.delete(t);
    for (const b of t.chunks ?? []) this.ctx.destroyBuffer(b);
    t.chunks = null;
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const t of [...this.#live]) this.release(t);
    if (this.#ownsContext) this.ctx.destroy();
  }

  // ---- internals ----

  /**
   * Record Σ coefs[i]·xs[i] (+ bias) into `out` chunks: 4 terms per dispatch, later dispatches adding
   * to what the earlier ones wrote, the bias added by the last. Coefficient buffers are batch temps.
   */
  #recordLincomb(
    batch: CommandBatch,
    xs: readonly GpuTensor[],
    coefs: readonly (number | Float32Array)[],
    bias: number,
    out: readonly GPUBuffer[],
  ): void {
    const layout = xs[0].layout;
    const rows = layout.rows;
    const chunks = xs.map((x) => this.#chunks(x, 'lincomb'));
    for (let from = 0; from < xs.length; from += TERMS_PER_PASS) {
      const count = Math.min(TERMS_PER_PASS, xs.length - from);
      const perRow = coefs.slice(from, from + count).some((c) => typeof c !== 'number');
      const stride = perRow ? rows : 1;
      const values = new Float32Array(count * stride);
      for (let k = 0; k < count; k++) {
        const c = coefs[from + k];
        if (typeof c === 'number') values.fill(c, k * stride, (k + 1) * stride);
        else values.set(c, k * stride);
      }
      const coefBuffer = batch.temp(
        this.ctx.createBuffer({
          label: `lincomb coefficients ${from}..${from + count - 1}`,
          size: values.byteLength,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
        }),
      );
      this.ctx.device.queue.writeBuffer(coefBuffer, 0, values);
      const last = from + count >= xs.length;
      out.forEach((buf, c) => {
        const len = chunkLength(layout, c);
        const buffers: Record<number, GPUBuffer> = { 1: coefBuffer, 6: buf };
        for (let k = 0; k < 4; k++) buffers[2 + k] = chunks[from + Math.min(k, count - 1)][c];
        batch.dispatch(KERNELS.lincomb, {
          params: new ParamWriter()
            .u32(len)
            .u32(chunkStart(layout, c))
            .u32(layout.rowLen)
            .u32(stride)
            .u32(count)
            .u32(from > 0 ? 1 : 0)
            .u32(last && bias !== 0 ? 1 : 0)
            .f32(bias)
            .f32(0)
            .bytes(),
          buffers,
          workgroups: Math.ceil(len / WORKGROUP_SIZE),
        });
      });
    }
  }

  /**
   * Sums over blocks that never straddle a row (reduce.wgsl), added per row in f64 on the host.
   * `pairs` are (a, b) for dot products or (a, null) for Σ|a|. Returns sums[pair * rows + row].
   */
  async #partialSums(
    op: string,
    pairs: readonly [GpuTensor, GpuTensor | null][],
    rowLen: number,
    rows: number,
  ): Promise<Float64Array> {
    const result = new Float64Array(pairs.length * rows);
    const layout = pairs[0][0].layout;
    if (layout.numel === 0 || rowLen === 0) return result;
    const block = this.#reduceBlock;
    const blocksPerRow = Math.ceil(rowLen / block);
    const blockOf = (g: number) => Math.floor(g / rowLen) * blocksPerRow + Math.floor((g % rowLen) / block);
    const align = this.ctx.limits.minStorageBufferOffsetAlignment / 4;
    const jobs: { pair: number; chunk: number; first: number; count: number; slot: number }[] = [];
    let slots = 0;
    pairs.forEach((_, pair) => {
      for (let c = 0; c < layout.count; c++) {
        const start = chunkStart(layout, c);
        const first = blockOf(start);
        const count = blockOf(start + chunkLength(layout, c) - 1) - first + 1;
        jobs.push({ pair, chunk: c, first, count, slot: slots });
        slots += Math.ceil(count / align) * align;
      }
    });
    const batch = this.ctx.batch(op);
    const partials = batch.temp(
      this.ctx.createBuffer({
        label: `${op} partial sums`,
        size: slots * 4,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
      }),
    );
    const chunkLists = pairs.map(([a, b]) => [this.#chunks(a, op), b ? this.#chunks(b, op) : null] as const);
    for (const job of jobs) {
      const [ac, bc] = chunkLists[job.pair];
      const len = chunkLength(layout, job.chunk);
      const target = { buffer: partials, offset: job.slot * 4, size: job.count * 4 };
      batch.dispatch(bc ? KERNELS.dotPartials : KERNELS.absPartials, {
        params: new ParamWriter()
          .u32(len)
          .u32(chunkStart(layout, job.chunk))
          .u32(rowLen)
          .u32(block)
          .u32(job.first)
          .u32(blocksPerRow)
          .u32(job.count)
          .bytes(),
        buffers: bc ? { 1: ac[job.chunk], 2: bc[job.chunk], 3: target } : { 1: ac[job.chunk], 3: target },
        workgroups: job.count,
      });
    }
    batch.readback(partials, 0, slots * 4);
    const [bytes] = await batch.submit();
    const values = new Float32Array(bytes);
    for (const job of jobs) {
      for (let w = 0; w < job.count; w++) {
        const row = Math.floor((job.first + w) / blocksPerRow);
        result[job.pair * rows + row] += values[job.slot + w];
      }
    }
    return result;
  }

  /**
   * The (|x| bits, index) pairs at ascending ranks `targets` (-1: not wanted), by radix select
   * (radix-select.wgsl): 4 passes over the key digits, then passes over the index digits among
   * the entries equal to the selected key when the rank falls inside a run of ties.
   */
  async #selectRanks(t: GpuTensor, targets: readonly number[]): Promise<({ key: number; index: number } | null)[]> {
    const selectors = targets.map((rank) => ({
      rank,
      active: rank >= 0,
      keyPrefix: 0,
      keyMask: 0,
      indexPrefix: 0,
      indexMask: 0,
      fromIndex: false,
      shift: 24,
    }));
    const indexTopShift = Math.floor(Math.log2(Math.max(1, t.numel - 1)) / 8) * 8;
    const chunks = this.#chunks(t, 'keepRankBand');
    const [hist] = await this.ctx.allocate('keepRankBand histogram', [
      {
        label: 'keepRankBand histogram',
        size: 512 * 4,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      },
    ]);
    const zeros = new Uint32Array(512);
    try {
      while (selectors.some((s) => s.active)) {
        const batch = this.ctx.batch('keepRankBand select');
        this.ctx.device.queue.writeBuffer(hist, 0, zeros);
        chunks.forEach((buf, c) => {
          const len = chunkLength(t.layout, c);
          const params = new ParamWriter().u32(len).u32(chunkStart(t.layout, c)).u32(0).u32(0);
          for (const s of selectors) {
            params.u32(s.keyPrefix).u32(s.keyMask).u32(s.indexPrefix).u32(s.indexMask);
            params.u32(s.shift).u32(s.fromIndex ? 1 : 0).u32(s.active ? 1 : 0).u32(0);
          }
          batch.dispatch(KERNELS.histogram, {
            params: params.bytes(),
            buffers: { 1: buf, 2: hist },
            workgroups: Math.ceil(len / HISTOGRAM_BLOCK),
          });
        });
        const slot = batch.readback(hist, 0, 512 * 4);
        const counts = new Uint32Array((await batch.submit())[slot]);
        selectors.forEach((s, i) => {
          if (!s.active) return;
          let below = 0;
          let digit = 0;
          while (digit < 256 && below + counts[i * 256 + digit] <= s.rank) below += counts[i * 256 + digit++];
          if (digit === 256) {
            throw new GpuBackendError('keepRankBand', `rank ${targets[i]} not found among ${t.numel} entries (histogram counted ${below})`);
          }
          const bits = (digit << s.shift) >>> 0;
          const mask = (0xff << s.shift) >>> 0;
          s.rank -= below;
          if (!s.fromIndex) {
            s.keyPrefix = (s.keyPrefix | bits) >>> 0;
            s.keyMask = (s.keyMask | mask) >>> 0;
            if (s.shift > 0) s.shift -= 8;
            else if (s.rank === 0) s.active = false; // first of its ties: (key, 0) bounds it exactly
            else {
              s.fromIndex = true;
              s.shift = indexTopShift;
            }
          } else {
            s.indexPrefix = (s.indexPrefix | bits) >>> 0;
            s.indexMask = (s.indexMask | mask) >>> 0;
            if (s.shift > 0) s.shift -= 8;
            else s.active = false;
          }
        });
      }
    } finally {
      this.ctx.destroyBuffer(hist);
    }
    return selectors.map((s, i) => (targets[i] >= 0 ? { key: s.keyPrefix, index: s.indexPrefix } : null));
  }

  /** Allocate an output like `layout`, run `fill`, and release the output if anything fails. */
  async #withOutput(
    op: string,
    shape: readonly number[],
    layout: ChunkLayout,
    fill: (out: GPUBuffer[]) => Promise<void>,
  ): Promise<GpuTensor> {
    this.#assertUsable(op);
    const descs = Array.from({ length: layout.count }, (_, c) => ({
      label: `${op} [${shape.join(',')}] chunk ${c}`,
      size: chunkLength(layout, c) * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    }));
    const chunks = await this.ctx.allocate(`${op} output [${shape.join(', ')}]`, descs);
    const out = new GpuTensor(shape, layout, chunks);
    this.#live.add(out);
    try {
      await fill(chunks);
    } catch (err) {
      this.release(out);
      throw err;
    }
    return out;
  }

  #assertUsable(op: string): void {
    if (this.#destroyed) throw new GpuBackendError(op, 'the backend was destroyed');
    this.ctx.assertUsable(`gpu backend: ${op}`);
  }

  #layout(op: string, shape: readonly number[]): ChunkLayout {
    if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new GpuBackendError(op, `invalid shape [${shape.join(', ')}]`);
    }
    const layout = this.layoutOf(shape);
    if (layout.numel >= 2 ** 32) {
      throw new GpuBackendError(op, `shape [${shape.join(', ')}] has ${layout.numel} elements, above the 2^32 the kernels index`);
    }
    return layout;
  }

  #tensor(t: Tensor, op: string): GpuTensor {
    this.#assertUsable(op);
    if (!(t instanceof GpuTensor) || !this.#live.has(t)) {
      const why = t instanceof GpuTensor ? 'was released or belongs to another GpuBackend' : 'is not a GPU tensor';
      throw new GpuBackendError(op, `tensor of shape [${t.shape.join(', ')}] ${why}`);
    }
    return t;
  }

  #chunks(t: GpuTensor, op: string): GPUBuffer[] {
    if (!t.chunks) throw new GpuBackendError(op, `tensor of shape [${t.shape.join(', ')}] was released`);
    return t.chunks;
  }

  #sameLayout(op: string, a: GpuTensor, b: GpuTensor, what: string): void {
    if (b.numel !== a.numel) {
      throw new GpuBackendError(op, `${what} has ${b.numel} elements, the first tensor has ${a.numel}`);
    }
    // Equal chunks: both whole in one chunk, or cut at the same length.
    const oneChunk = a.layout.count <= 1 && b.layout.count <= 1;
    if (!oneChunk && b.layout.chunkLen !== a.layout.chunkLen) {
      throw new GpuBackendError(
        op,
        `${what} has shape [${b.shape.join(', ')}], the first tensor [${a.shape.join(', ')}]: ` +
          'tensors combined elementwise must share their row layout',
      );
    }
  }

  #sameSize(xs: readonly Tensor[], op: string): GpuTensor[] {
    if (xs.length === 0) throw new GpuBackendError(op, 'no tensors');
    const ts = xs.map((x) => this.#tensor(x, op));
    ts.forEach((t, i) => this.#sameLayout(op, ts[0], t, `tensor ${i}`));
    return ts;
  }
}

/** Uniform params for masks.wgsl (field order of its Params struct). */
function maskParams(
  n: number,
  offset: number,
  key: MaskKey | null,
  hash: number,
  threshold: number,
  batchStart: number,
  batchLen: number,
): Uint8Array {
  return new ParamWriter()
    .u32(n)
    .u32(offset)
    .u32(0)
    .u32(0)
    .u32(0)
    .u32(0)
    .u32(0)
    .u32(0)
    .u32(key ? key.seed >>> 0 : 0)
    .u32(key ? key.model >>> 0 : 0)
    .u32(hash)
    .u32(threshold)
    .u32(batchStart)
    .u32(batchLen)
    .bytes();
}

/**
 * Integer threshold T with (uniform < fround(p)) ⟺ (uniform·2^24 < T), as the CPU reference
 * compares: the uniform is m / 2^24 with integer m, so T = ceil(fround(p)·2^24), clamped to [0, 2^24].
 */
export function uniformThreshold(p: number): number {
  const pf = Math.fround(p);
  if (!(pf > 0)) return 0;
  return Math.min(2 ** 24, Math.ceil(pf * 2 ** 24));
}

/** Per-rank keep thresholds for DELLA, with the CPU reference's f32 formula for p(rank). */
export function rankedThresholds(rowLen: number, density: number, epsilon: number): Uint32Array<ArrayBuffer> {
  const fr = Math.fround;
  const low = fr(fr(density) - fr(epsilon));
  const span = fr(2 * fr(epsilon));
  const table = new Uint32Array(rowLen);
  for (let rank = 0; rank < rowLen; rank++) {
    const rel = rowLen > 1 ? fr(rank / (rowLen - 1)) : 0;
    table[rank] = uniformThreshold(fr(low + fr(span * rel)));
  }
  return table;
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Chunks holding any of the global elements [start, start + len). */
function chunksTouching(layout: ChunkLayout, start: number, len: number): number[] {
  const first = Math.floor(start / layout.chunkLen);
  const last = Math.floor((start + len - 1) / layout.chunkLen);
  const list: number[] = [];
  for (let c = first; c <= last; c++) list.push(c);
  return list;
}

/**
 * The fast CPU backend: the Backend interface on the host, for merges without a (hardware) GPU.
 * Same results as the reference backend (cpu-backend.ts) bit for bit wherever the math is the same
 * (elementwise ops, masks, selections, encodes); reductions add per-chunk f64 partials in chunk order
 * (see "Reductions" below). Tests in this folder compare every op with the reference.
 *
 * How it is fast:
 * - Lazy values (expr.ts). decode keeps the raw BF16/F16/F32 bytes; lincomb, quantize, nearswap,
 *   absAtLeast, keepRandom, keepWhere, keepRankBand (once its bounds are found), keepRanked (a stored
 *   byte mask), rescaleL1 (once one pass has summed both norms) and signElect only build nodes. Values are computed when something needs them: encode
 *   (fused: the loop writes the output dtype's bytes), read, reductions (computed on the fly, never
 *   stored), selection passes, row-wise ops, matrix products (matmul.ts) and the delegated ops - so a task
 *   arithmetic merge of 4 BF16 models is one pass reading 4×2 bytes and writing 2 per element.
 * - Generated loops (codegen.ts): each DAG shape compiles once to a JavaScript loop with the
 *   reference's f32 rounding, cached by its source; values are parameters.
 * - Threads (threads.ts): every pass runs on all cores over chunks of a shared counter.
 * - Selection without sorting (select.ts): radix select over the f32 bits of |x|; DELLA decides
 *   each row's entries from a histogram of its keys, ranking exactly only the few entries whose
 *   bucket straddles their keep threshold (runtime.ts keepRankedRow), rows in parallel.
 * - Pooled memory (buffers.ts): buffers are reused across tensors; fresh memory is slow to touch.
 *
 * Materialization rule: a pass evaluates its roots from stored data. Before it runs, a computed node
 * is stored (as f32, and its inputs dropped) when
 *   (a) the DAG has grown past MAX_NODES computed nodes or MAX_LEAVES data inputs (long chains, as
 *       iterative methods build): its largest inputs are stored until it fits; or
 *   (b) it was already computed by an earlier pass and costs more than REEVALUATE_COST per element to
 *       compute again (cost = bytes read from data + 1 per op): a value used twice that is dear
 *       enough is stored on its second use; or
 *   (c) a multi-pass consumer (a selection: 2–3 passes) would compute it and it costs more than
 *       REEVALUATE_COST.
 * With BF16 inputs a task vector x − base costs 2+2+1 = 5: recomputing it in each pass reads fewer
 * bytes than storing and re-reading f32 (4+4), so it is never stored.
 *
 * Reductions (gram, sumAbs, rescaleL1's two norms) sum each chunk of CHUNK elements in f64 in element
 * order, then the chunk sums in chunk order: the same result with any thread count; against the
 * reference's single f64 running sum the difference is f64 rounding, |Δ| ≤ n·2^-52·Σ|terms| (tests
 * use 1e-12 relative to Σ|terms|). A tensor of one chunk sums exactly as the reference. rescaleL1
 * rounds each norm to f32 (as the reference), so its factor differs only where that f64 difference
 * straddles an f32 rounding boundary: never below CHUNK elements, rarely above (then by one ulp).
 * gramRows sums each row in element order, exactly as the reference (bit-identical).
 */
import { byteLength, type FloatDType } from '../../core/dtype.ts';
import { hashTensorName, mix32, rowCount, type Backend, type BackendOps, type MaskKey, type Tensor, type Term } from '../backend.ts';
import { CPU_OP_FAMILIES } from '../cpu-backend.ts';
import type { MatmulOptions } from '../ops/linalg.ts';
import { rankedThresholds, uniformThreshold } from '../ops/masks.ts';
import { l1RescaleFactor } from '../ops/reduce.ts';
import type { CpuOpRuntime } from '../ops/runtime.ts';
import type { KeyDigitSelector } from '../ops/select.ts';
import { BufferPool, Storage, VIEW_BYTES, type PoolStats, type ViewType } from './buffers.ts';
import { isRowConsumer, planKernel, type Binding, type Consumer } from './codegen.ts';
import { fastMatmul, fastTranspose } from './matmul.ts';
import { evaluationCost, inputsOf, Node, topoOrder, type DataFormat, type LinTerm } from './expr.ts';
import { DEFAULT_SELECT_TUNING, selectBand, type SelectTuning } from './select.ts';
import { ThreadPool, type WorkerFactory } from './threads.ts';

/** Elements per chunk of a pass (and per partial sum of a reduction). */
export const CHUNK = 1 << 16;
const MAX_NODES = 64;
const MAX_LEAVES = 16;
const REEVALUATE_COST = 16;

export class FastCpuBackendError extends Error {
  constructor(op: string, reason: string) {
    super(`fast cpu backend: ${op}: ${reason}`);
    this.name = 'FastCpuBackendError';
  }
}

/** A tensor of a FastCpuBackend: a handle on a (lazy) node. */
export class FastTensor implements Tensor {
  readonly numel: number;
  readonly shape: readonly number[];
  /** null once released. */
  node: Node | null;
  readonly #release: (t: FastTensor) => void;

  constructor(node: Node, shape: readonly number[], release: (t: FastTensor) => void) {
    this.numel = node.numel;
    this.shape = [...shape];
    this.node = node.retain();
    this.#release = release;
  }

  [Symbol.dispose](): void {
    this.#release(this);
  }
}

export interface FastCpuBackendOptions {
  /** Threads in all, the calling one included. @default 1 (no factory) */
  threads?: number;
  /** Starts worker threads (node-threads.ts, web-threads.ts); without it everything runs on the calling thread. */
  workers?: WorkerFactory;
  /**
   * encode returns bytes in a SharedArrayBuffer (written in place by the workers). Browsers refuse
   * shared views in Blobs and file writes: set false there to get a copy in a plain ArrayBuffer.
   * @default true
   */
  sharedOutputs?: boolean;
}

function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// The ops are assigned in the constructor (native ones over delegated references); this declares them.
export interface FastCpuBackend extends BackendOps {}

export class FastCpuBackend implements Backend {
  readonly kind = 'cpu' as const;
  readonly description: string;
  readonly pool: BufferPool;
  readonly threads: ThreadPool;
  readonly #sharedOutputs: boolean;
  /** Σ|x| and Σ|kept| of keepRanked's results (summed by its pass, as sumAbs would), for rescaleL1. */
  readonly #rankedNorms = new WeakMap<Node, { x: Node; sumX: number; sumKept: number }>();
  /** keepRankBand's sampled path (select.ts); tests narrow the window to force the exact fallback. */
  selectTuning: SelectTuning = { ...DEFAULT_SELECT_TUNING };
  /** How many keepRankBand selections took each path (tests, benchmarks). */
  readonly selectPaths = { small: 0, sampled: 0, exact: 0 };
  readonly #live = new Set<FastTensor>();
  readonly #release = (t: FastTensor) => this.release(t);

  constructor(opts: FastCpuBackendOptions = {}) {
    const canShare = typeof SharedArrayBuffer !== 'undefined';
    const threads = opts.workers && canShare ? Math.max(1, Math.floor(opts.threads ?? 1)) : 1;
    this.threads = new ThreadPool({ threads, factory: threads > 1 ? opts.workers : undefined });
    this.pool = new BufferPool(threads > 1);
    this.#sharedOutputs = opts.sharedOutputs ?? true;
    this.description = `CPU (${threads} thread${threads === 1 ? '' : 's'})`;
    // Every reference op first (the delegated ones run on stored f32 values), then the native ones.
    const reference = referenceRuntime(this);
    for (const family of CPU_OP_FAMILIES) {
      const ops = family(reference) as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
      for (const [name, op] of Object.entries(ops)) {
        (this as unknown as Record<string, unknown>)[name] = async (...args: unknown[]) => {
          await this.#storeArgs(args, name);
          return op(...args);
        };
      }
    }
    Object.assign(this, this.#nativeOps(), { lincombRounded: this.#lincombRounded });
  }

  /** Tensors made by this backend and not yet released (leak checks in tests). */
  get liveTensors(): number {
    return this.#live.size;
  }

  /** Memory statistics of the buffer pool (benchmarks). */
  memoryStats(): PoolStats {
    return this.pool.snapshot();
  }

  /** A tensor holding a copy of host values (tests). */
  fromArray(values: ArrayLike<number>, shape: readonly number[]): FastTensor {
    const n = numelOf(shape);
    if (values.length !== n) throw this.error('fromArray', `${values.length} values do not fill shape [${shape.join(', ')}]`);
    const storage = Storage.pooled(this.pool, n * 4);
    storage.f32().set(values);
    return this.wrap(new Node(n, { kind: 'data', storage, format: 'F32' }), shape);
  }

  async upload(values: Float32Array, shape: readonly number[]): Promise<Tensor> {
    return this.fromArray(values, shape);
  }

  async read(t: Tensor): Promise<Float32Array> {
    const node = this.node(t, 'read');
    await this.#prepare([node], 'read', 1);
    if (node.op.kind === 'data' && node.op.format === 'F32') return node.op.storage.f32().slice(0, node.numel);
    const out = Storage.pooled(this.pool, node.numel * 4);
    try {
      await this.#pass('read', [node], { kind: 'store', out: binding(out, 'f32', node.numel, true) }, node.numel);
      this.counted([node]);
      return out.f32().slice(0, node.numel);
    } finally {
      out.drop();
    }
  }

  release(t: Tensor): void {
    if (!(t instanceof FastTensor) || !t.node) return;
    const node = t.node;
    t.node = null;
    this.#live.delete(t);
    node.drop();
  }

  destroy(): void {
    for (const t of [...this.#live]) this.release(t);
    this.threads.destroy();
    this.pool.trim();
  }

  error(op: string, reason: string): Error {
    return new FastCpuBackendError(op, reason);
  }

  // ---- tensors and nodes ----

  /** A new handle on `node` (which it retains). */
  wrap(node: Node, shape: readonly number[]): FastTensor {
    const t = new FastTensor(node, shape, this.#release);
    this.#live.add(t);
    return t;
  }

  /** The node of a live tensor of this backend, or an error naming `op`. */
  node(t: Tensor, op: string): Node {
    if (!(t instanceof FastTensor) || !t.node || !this.#live.has(t)) {
      const why = t instanceof FastTensor ? 'was released or belongs to another backend' : 'is not a fast CPU tensor';
      throw this.error(op, `tensor of shape [${t.shape.join(', ')}] ${why}`);
    }
    return t.node;
  }

  /** Nodes of tensors that must all have the same number of elements (the reference's messages). */
  sameSize(xs: readonly Tensor[], op: string): Node[] {
    if (xs.length === 0) throw this.error(op, 'no tensors');
    const ns = xs.map((x) => this.node(x, op));
    for (let i = 1; i < ns.length; i++) {
      if (ns[i].numel !== ns[0].numel) throw this.error(op, `tensor ${i} has ${ns[i].numel} elements, tensor 0 has ${ns[0].numel}`);
    }
    return ns;
  }

  /** A small host array as a view the workers can read (a shared copy when threads run). */
  hostArray<T extends Float32Array | Uint32Array>(values: T): T {
    if (!this.pool.shared) return values;
    const copy = new (values.constructor as new (b: ArrayBufferLike) => T)(new SharedArrayBuffer(values.byteLength));
    copy.set(values as never);
    return copy;
  }

  /**
   * Pooled storage for results of `length` elements of `type`, zeroed unless `zero` is false
   * (threads that get no chunk leave their slot as it is).
   */
  results(type: ViewType, length: number, zero = true): { storage: Storage; binding: Binding } {
    const bytes = VIEW_BYTES[type] * length;
    const storage = Storage.pooled(this.pool, bytes);
    if (zero) storage.u8().fill(0);
    return { storage, binding: binding(storage, type, length, true) };
  }

  /**
   * Run one pass of `consumer` over `roots` (items: elements, or rows for row consumers). Does not
   * apply the materialization rule: callers run #prepare first (once per consumer, not per pass).
   */
  async pass(op: string, roots: readonly Node[], consumer: Consumer, items: number, startChunk = 0): Promise<void> {
    const plan = planKernel(roots, consumer);
    const chunkItems = isRowConsumer(consumer)
      ? consumer.kind === 'ranked' && consumer.norms
        ? consumer.norms.rowsPerJob
        : Math.max(1, Math.floor(CHUNK / Math.max(1, consumer.rowLen)))
      : CHUNK;
    await this.threads.run({ op, source: plan.source, bindings: plan.bindings, params: plan.params, items, chunkItems, startChunk });
  }

  /** Apply the materialization rule to `roots` before a consumer that makes `passes` passes over them. */
  async prepare(roots: readonly Node[], op: string, passes: number): Promise<void> {
    await this.#prepare(roots, op, passes);
  }

  /** Count a finished consumer's evaluation of the computed nodes under `roots`. */
  counted(roots: readonly Node[]): void {
    for (const n of topoOrder(roots)) if (!n.isData) n.evaluations++;
  }

  // ---- materialization ----

  async #pass(op: string, roots: readonly Node[], consumer: Consumer, items: number): Promise<void> {
    await this.pass(op, roots, consumer, items);
  }

  async #prepare(roots: readonly Node[], op: string, passes: number): Promise<void> {
    // (a) shrink DAGs that grew too large.
    for (const r of roots) await this.#shrink(r, op);
    // (b) computed before and dear: store.
    for (const n of topoOrder(roots)) {
      if (!n.isData && n.evaluations > 0 && evaluationCost([n]).cost > REEVALUATE_COST) await this.store(n, op);
    }
    // (c) several passes over a dear root: store it once.
    if (passes > 1) {
      for (const r of roots) if (!r.isData && evaluationCost([r]).cost > REEVALUATE_COST) await this.store(r, op);
    }
  }

  async #shrink(node: Node, op: string): Promise<void> {
    const fits = () => {
      const c = evaluationCost([node]);
      return c.nodes <= MAX_NODES && c.leaves <= MAX_LEAVES;
    };
    if (node.isData || fits()) return;
    const inputs = inputsOf(node.op);
    for (const x of inputs) await this.#shrink(x, op);
    if (fits()) return;
    // Store the dearest inputs until the node fits.
    const byCost = [...new Set(inputs)].filter((x) => !x.isData).sort((a, b) => evaluationCost([b]).nodes - evaluationCost([a]).nodes);
    for (const x of byCost) {
      await this.store(x, op);
      if (fits()) return;
    }
  }

  /** Compute `node` into f32 storage; it becomes a data node (its inputs are dropped). */
  async store(node: Node, op: string): Promise<void> {
    if (node.op.kind === 'data' && node.op.format === 'F32') return;
    await this.#shrink(node, op);
    const storage = Storage.pooled(this.pool, node.numel * 4);
    try {
      await this.#pass(op, [node], { kind: 'store', out: binding(storage, 'f32', node.numel, true) }, node.numel);
    } catch (e) {
      storage.drop();
      throw e;
    }
    node.settle(storage, 'F32');
  }

  /** Store every tensor among a delegated op's arguments as f32 (the reference reads them directly). */
  async #storeArgs(args: unknown[], op: string): Promise<void> {
    const seen = new Set<unknown>();
    const visit = async (a: unknown): Promise<void> => {
      if (a === null || typeof a !== 'object' || seen.has(a)) return;
      seen.add(a);
      if (a instanceof FastTensor) {
        await this.store(this.node(a, op), op);
      } else if (Array.isArray(a)) {
        for (const x of a) await visit(x);
      } else if (Object.getPrototypeOf(a) === Object.prototype) {
        for (const x of Object.values(a)) await visit(x);
      }
    };
    for (const a of args) await visit(a);
  }

  // ---- reductions ----

  /** Σ over chunks (in chunk order) of per-chunk f64 partials of `pairs` values each. */
  async #chunkSums(op: string, roots: Node[], consumer: 'sumAbs' | 'dots', pairs: number): Promise<Float64Array> {
    const n = roots[0].numel;
    const chunks = Math.ceil(n / CHUNK);
    const sums = new Float64Array(pairs);
    if (chunks === 0) return sums;
    await this.#prepare(roots, op, 1);
    const res = this.results('f64', chunks * pairs);
    try {
      await this.#pass(op, roots, { kind: consumer, res: res.binding }, n);
      const partials = new Float64Array(res.storage.buffer, 0, chunks * pairs);
      for (let c = 0; c < chunks; c++) for (let q = 0; q < pairs; q++) sums[q] += partials[c * pairs + q];
    } finally {
      res.storage.drop();
    }
    this.counted(roots);
    return sums;
  }

  async #dots(op: string, roots: Node[]): Promise<Float64Array> {
    const n = roots.length;
    const pairs = (n * (n + 1)) / 2;
    const sums = await this.#chunkSums(op, roots, 'dots', pairs);
    const g = new Float64Array(n * n);
    let q = 0;
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) {
        g[i * n + j] = sums[q];
        g[j * n + i] = sums[q];
        q++;
      }
    }
    return g;
  }

  // ---- the native ops ----

  #nativeOps(): Partial<BackendOps> {
    const lazy = (node: Node, shape: readonly number[]) => this.wrap(node, shape);
    const fr = Math.fround;
    const ops: Partial<BackendOps> = {
      decode: async (bytes: Uint8Array, dtype: FloatDType, shape: readonly number[]) => {
        const numel = numelOf(shape);
        const want = byteLength(dtype, numel);
        if (bytes.byteLength !== want) {
          throw this.error('decode', `${bytes.byteLength} bytes for ${dtype} shape [${shape.join(', ')}], expected ${want}`);
        }
        const storage = Storage.pooled(this.pool, want);
        storage.u8().set(bytes);
        return lazy(new Node(numel, { kind: 'data', storage, format: dtype }), shape);
      },

      encode: async (t: Tensor, dtype: FloatDType) => {
        const node = this.node(t, 'encode');
        const size = dtype === 'F32' ? 4 : 2;
        const bytes = node.numel * size;
        const direct = !this.pool.shared || this.#sharedOutputs;
        const buffer = direct ? (this.pool.shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes)) : null;
        const pooled = buffer ? null : Storage.pooled(this.pool, bytes);
        const target = buffer ?? pooled!.buffer;
        try {
          await this.#prepare([node], 'encode', 1);
          const out: Binding = { buffer: target, type: dtype === 'F32' ? 'f32' : 'u16', byteOffset: 0, length: node.numel, output: true };
          await this.#pass('encode', [node], { kind: 'encode', format: dtype, out }, node.numel);
          this.counted([node]);
          return buffer ? new Uint8Array(buffer) : new Uint8Array(target, 0, bytes).slice();
        } finally {
          pooled?.drop();
        }
      },

      quantize: async (x: Tensor, dtype: FloatDType) => {
        const node = this.node(x, 'quantize');
        // F32: a copy; values never change, so the copy is the same node.
        return lazy(dtype === 'F32' ? node : new Node(node.numel, { kind: 'quantize', x: node, dtype }), x.shape);
      },

      lincomb: async (terms: readonly Term[], bias = 0) => lazy(this.#lincomb('lincomb', terms, bias), terms[0].x.shape),

      nearswap: async (base: Tensor, x: Tensor, t: number) => {
        const [b, v] = this.#pair('nearswap', base, x, ['base', 'model']);
        return lazy(new Node(b.numel, { kind: 'nearswap', base: b, x: v, t: fr(t) }), base.shape);
      },

      absAtLeast: async (a: Tensor, b: Tensor, lambda: number) => {
        const [an, bn] = this.#pair('absAtLeast', a, b, ['a', 'b']);
        return lazy(new Node(an.numel, { kind: 'absAtLeast', a: an, b: bn, lambda: fr(lambda) }), a.shape);
      },

      multiply: async (a: Tensor, b: Tensor) => {
        const [an, bn] = this.#pair('multiply', a, b, ['a', 'b']);
        return lazy(new Node(an.numel, { kind: 'multiply', a: an, b: bn }), a.shape);
      },

      divideAtLeast: async (a: Tensor, b: Tensor, floor: number) => {
        const [an, bn] = this.#pair('divideAtLeast', a, b, ['a', 'b']);
        return lazy(new Node(an.numel, { kind: 'divideAtLeast', a: an, b: bn, floor: fr(floor) }), a.shape);
      },

      expAffine: async (x: Tensor, shift: number, scale: number, bias: number) => {
        const node = this.node(x, 'expAffine');
        return lazy(new Node(node.numel, { kind: 'expAffine', x: node, shift: fr(shift), scale: fr(scale), bias: fr(bias) }), x.shape);
      },

      rampAbove: async (x: Tensor, threshold: number, scale: number) => {
        const node = this.node(x, 'rampAbove');
        return lazy(new Node(node.numel, { kind: 'rampAbove', x: node, threshold: fr(threshold), scale: fr(scale) }), x.shape);
      },

      keepRandom: async (x: Tensor, p: number, key: MaskKey) => {
        const node = this.node(x, 'keepRandom');
        return lazy(new Node(node.numel, { kind: 'keepRandom', x: node, seedHash: seedHash(key), threshold: uniformThreshold(p) }), x.shape);
      },

      keepWhere: async (x: Tensor, mask: Tensor) => {
        const node = this.node(x, 'keepWhere');
        const m = this.node(mask, 'keepWhere');
        if (m.numel !== node.numel) throw this.error('keepWhere', `mask has ${m.numel} elements, tensor has ${node.numel}`);
        return lazy(new Node(node.numel, { kind: 'keepWhere', x: node, mask: m }), x.shape);
      },

      keepRanked: async (x: Tensor, density: number, epsilon: number, key: MaskKey) => {
        const node = this.node(x, 'keepRanked');
        const rows = rowCount(x.shape);
        const rowLen = rows > 0 ? node.numel / rows : 0;
        const mask = Storage.pooled(this.pool, node.numel);
        // DELLA's l1 rescale (rescaleL1(kept, x)) needs Σ|x| and Σ|kept|: this pass sums them
        // too, per chunk as sumAbs does, when jobs of whole rows can start on chunk boundaries.
        const rowsPerJob = rowLen > 0 ? CHUNK / gcd(rowLen, CHUNK) : 1;
        const chunks = Math.ceil(node.numel / CHUNK);
        const fuse = node.numel > 0 && (rowsPerJob * rowLen <= 16 * CHUNK || node.numel <= 4 * CHUNK);
        const norms = fuse ? this.results('f64', 2 * chunks) : undefined;
        let sums: [number, number] | undefined;
        try {
          if (node.numel > 0) {
            await this.#prepare([node], 'keepRanked', 1);
            const table = rankedThresholds(rowLen, density, epsilon);
            const thresholds = this.hostArray(table);
            await this.#pass(
              'keepRanked',
              [node],
              {
                kind: 'ranked',
                rowLen,
                seedHash: seedHash(key),
                thresholds: { buffer: thresholds.buffer, type: 'u32', byteOffset: 0, length: rowLen },
                monotone: isMonotone(table),
                mask: binding(mask, 'u8', node.numel, true),
                norms: norms ? { res: norms.binding, chunk: CHUNK, rowsPerJob } : undefined,
              },
              rows,
            );
            this.counted([node]);
            if (norms) {
              const partials = new Float64Array(norms.storage.buffer, 0, 2 * chunks);
              sums = [0, 0];
              for (let c = 0; c < chunks; c++) {
                sums[0] += partials[2 * c];
                sums[1] += partials[2 * c + 1];
              }
            }
          }
        } catch (e) {
          mask.drop();
          throw e;
        } finally {
          norms?.storage.drop();
        }
        const maskNode = new Node(node.numel, { kind: 'data', storage: mask, format: 'U8' });
        const kept = new Node(node.numel, { kind: 'keepWhere', x: node, mask: maskNode });
        if (sums) this.#rankedNorms.set(kept, { x: node, sumX: sums[0], sumKept: sums[1] });
        return lazy(kept, x.shape);
      },

      keepRankBand: async (x: Tensor, lo: number, hi: number) => {
        const node = this.node(x, 'keepRankBand');
        const n = node.numel;
        const from = Math.max(0, Math.min(n, Math.floor(lo)));
        const to = Math.max(from, Math.min(n, Math.floor(hi)));
        if (from >= to) return lazy(new Node(n, { kind: 'fill', value: 0 }), x.shape);
        if (from === 0 && to === n) return lazy(node, x.shape);
        const band = await selectBand(this, node, from, to, this.selectTuning);
        return lazy(new Node(n, { kind: 'keepBand', x: node, band }), x.shape);
      },

      countKeyDigits: async (x: Tensor, selectors: readonly KeyDigitSelector[]) => {
        const node = this.node(x, 'countKeyDigits');
        if (selectors.length === 0 || selectors.length > 2) throw this.error('countKeyDigits', `${selectors.length} selectors (1 or 2 allowed)`);
        const out = new Uint32Array(256 * selectors.length);
        if (node.numel === 0) return out;
        await this.#prepare([node], 'countKeyDigits', 1);
        const slots = this.threads.threads;
        const res = this.results('u32', slots * out.length);
        try {
          const sel = selectors.map((s) => ({ prefix: s.prefix >>> 0, mask: s.mask >>> 0, shift: s.shift }));
          await this.#pass('countKeyDigits', [node], { kind: 'histogram', bins: 256, selectors: sel, res: res.binding }, node.numel);
          const counts = new Uint32Array(res.storage.buffer, 0, slots * out.length);
          for (let s = 0; s < slots; s++) for (let k = 0; k < out.length; k++) out[k] += counts[s * out.length + k];
        } finally {
          res.storage.drop();
        }
        this.counted([node]);
        return out;
      },

      signElect: async (wds: readonly Tensor[], weights: readonly number[], normalize: boolean) => {
        const xs = this.sameSize(wds, 'signElect');
        if (weights.length !== xs.length) throw this.error('signElect', `${weights.length} weights for ${xs.length} tensors`);
        return lazy(new Node(xs[0].numel, { kind: 'signElect', xs, weights: [...weights], normalize }), wds[0].shape);
      },

      gram: async (xs: readonly Tensor[]) => this.#dots('gram', this.sameSize(xs, 'gram')),

      gramRows: async (xs: readonly Tensor[]) => {
        const ns = this.sameSize(xs, 'gramRows');
        const rows = rowCount(xs[0].shape);
        const rowLen = rows > 0 ? ns[0].numel / rows : 0;
        const n = ns.length;
        const out = new Float64Array(rows * n * n);
        if (rows === 0) return out;
        if (rowLen === 0) return out;
        await this.#prepare(ns, 'gramRows', 1);
        const res = this.results('f64', out.length);
        try {
          await this.#pass('gramRows', ns, { kind: 'rowDots', rowLen, res: res.binding }, rows);
          out.set(new Float64Array(res.storage.buffer, 0, out.length));
        } finally {
          res.storage.drop();
        }
        this.counted(ns);
        return out;
      },

      sumAbs: async (x: Tensor) => {
        const node = this.node(x, 'sumAbs');
        return (await this.#chunkSums('sumAbs', [node], 'sumAbs', 1))[0];
      },

      // Both norms in one pass over the (lazy) inputs, then a lazy product: nothing is stored, so a
      // DARE task vector costs one pass here and is computed again by the pass that consumes it.
      rescaleL1: async (x: Tensor, reference: Tensor, eps: number) => {
        const [xn, rn] = this.sameSize([x, reference], 'rescaleL1');
        const known = this.#rankedNorms.get(xn);
        let before: number;
        let after: number;
        if (known && known.x === rn) {
          [before, after] = [known.sumX, known.sumKept];
          this.counted([rn, xn]);
        } else [before, after] = await this.#chunkSums('rescaleL1', [rn, xn], 'sumAbs', 2);
        // As the reference: the two norms rounded to f32, their f32 quotient, one f32 product per element.
        const factor = Math.fround(l1RescaleFactor(Math.fround(before), Math.fround(after), Math.fround(eps)));
        return lazy(this.#lincomb('rescaleL1', [{ x, coef: factor }], 0), x.shape);
      },

      matmul: (a: Tensor, b: Tensor, opts?: MatmulOptions) => fastMatmul(this, a, b, opts),

      transpose: (x: Tensor) => fastTranspose(this, x),
    };
    return ops;
  }

  /** The node of Σ coef_i · x_i + bias (the reference's checks and messages, under `op`). */
  #lincomb(op: string, terms: readonly Term[], bias: number): Node {
    if (terms.length === 0) throw this.error(op, 'no terms');
    const first = terms[0].x;
    const rows = rowCount(first.shape);
    const lin: LinTerm[] = terms.map((term, i) => {
      const x = this.node(term.x, op);
      if (x.numel !== first.numel) throw this.error(op, `term ${i} has ${x.numel} elements, term 0 has ${first.numel}`);
      if (typeof term.coef !== 'number' && term.coef.length !== rows) {
        throw this.error(op, `term ${i} has ${term.coef.length} row coefficients for ${rows} rows`);
      }
      return { x, coef: typeof term.coef === 'number' ? Math.fround(term.coef) : this.hostArray(Float32Array.from(term.coef)) };
    });
    const n = first.numel;
    return new Node(n, { kind: 'lincomb', terms: lin, bias: Math.fround(bias), rowLen: rows > 0 ? n / rows : 0 });
  }

  /**
   * lincombRounded(terms, dtype, bias) = quantize(lincomb(terms, bias), dtype): the engine's step of
   * BF16/F16 math, a lincomb node under a quantize node. Assigned beside the typed ops so that it
   * serves the op as soon as the elementwise family declares it.
   */
  #lincombRounded = async (terms: readonly Term[], dtype: FloatDType, bias = 0): Promise<Tensor> => {
    const sum = this.#lincomb('lincombRounded', terms, bias);
    return this.wrap(dtype === 'F32' ? sum : new Node(sum.numel, { kind: 'quantize', x: sum, dtype }), terms[0].x.shape);
  };

  #pair(op: string, a: Tensor, b: Tensor, names: [string, string]): [Node, Node] {
    const an = this.node(a, op);
    const bn = this.node(b, op);
    if (an.numel !== bn.numel) throw this.error(op, `${names[0]} has ${an.numel} elements, ${names[1]} has ${bn.numel}`);
    return [an, bn];
  }
}

/** A binding over the first `length` elements of a storage. */
export function binding(storage: Storage, type: ViewType, length: number, output = false): Binding {
  return { buffer: storage.buffer, type, byteOffset: 0, length, output };
}

/** The generator state after (seed, model, tensor): kernels finish uniformAt with the element index. */
function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Whether a table never rises after falling nor falls after rising (DELLA's thresholds always are). */
function isMonotone(table: Uint32Array): boolean {
  let rises = false;
  let falls = false;
  for (let k = 1; k < table.length; k++) {
    if (table[k] > table[k - 1]) rises = true;
    else if (table[k] < table[k - 1]) falls = true;
  }
  return !(rises && falls);
}

function seedHash(key: MaskKey): number {
  let h = mix32((key.seed >>> 0) ^ 0x9e3779b9);
  h = mix32(h ^ (key.model >>> 0));
  return mix32(h ^ hashTensorName(key.tensor));
}

/**
 * The runtime the delegated reference ops see: tensors as stored f32 arrays (the wrapper stores
 * every tensor argument first), results wrapped as data nodes.
 */
function referenceRuntime(be: FastCpuBackend): CpuOpRuntime {
  return {
    data(t: Tensor, op: string): Float32Array {
      const node = be.node(t, op);
      if (node.op.kind !== 'data' || node.op.format !== 'F32') throw be.error(op, 'internal: a delegated op got a tensor that is not stored as f32');
      return node.op.storage.f32().subarray(0, node.numel);
    },
    make(data: Float32Array, shape: readonly number[]): Tensor {
      const storage = Storage.pooled(be.pool, data.length * 4);
      storage.f32().set(data);
      return be.wrap(new Node(data.length, { kind: 'data', storage, format: 'F32' as DataFormat }), shape);
    },
    sameSize(xs: readonly Tensor[], op: string): Float32Array[] {
      be.sameSize(xs, op);
      return xs.map((x) => this.data(x, op));
    },
    error: (op: string, reason: string) => be.error(op, reason),
  };
}

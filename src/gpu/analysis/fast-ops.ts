/**
 * The analysis reductions on the fast CPU backend (src/gpu/cpu-fast): the same results as
 * ReferenceAnalysisOps (reference-ops.ts), from tight loops over the backend's own f32 storage.
 *
 * - Inputs: f32 data is read where the backend stores it, with no copy. A lazy tensor already
 *   computed by an earlier pass (a task vector, a resident kept band) is stored in place with the
 *   backend's `store`, as the backend does with values used twice: later passes and re-runs read it.
 *   One computed for the first time (the weighted wd_i of a re-run) and BF16/F16 bytes are evaluated
 *   into scratch buffers this object reuses, so a re-run allocates no per-entry arrays.
 * - Loops: one kernel per reduction and model count, generated as source and run by the backend's
 *   thread pool (cpu-fast/threads.ts) over chunks of CHUNK entries: a tensor of one chunk (every
 *   tensor of the demo set) runs on the calling thread, larger ones on every thread.
 * - Sign counts: each entry's signs as two N-bit masks (positive, negative; flips swap them). For
 *   N <= CODE_TABLE_MAX_MODELS the loop only counts the code pos | neg << N (4^N counters) and the
 *   statistics are derived from the code counts; above, it walks the set bits.
 * - Magnitude bins from the f32 bits of |x|: the octave is the exponent, the sub-bin a comparison of
 *   the mantissa with each sub-bin edge's mantissa (bins.ts makes every edge of a sub-bin share its
 *   mantissa; the constructor checks this against binOf on every edge).
 *
 * Counts and histograms equal the reference's exactly. The elected-contribution norms sum each
 * chunk's squares in f64 in element order (as the reference), then the chunk sums in chunk order:
 * bit-identical for a tensor of one chunk, else within f64 rounding, |Δ| ≤ n·2^-52·Σ terms, far below
 * f32 rounding (the same with any thread count).
 */
import type { Tensor } from '../backend.ts';
import { Storage } from '../cpu-fast/buffers.ts';
import type { Binding } from '../cpu-fast/codegen.ts';
import type { Node } from '../cpu-fast/expr.ts';
import { CHUNK, type FastCpuBackend } from '../cpu-fast/fast-backend.ts';
import { BIN, BIN_COUNT, binEdges, binOf, BINS_PER_OCTAVE, MIN_EXPONENT, OCTAVES, subBinMantissas } from './bins.ts';
import {
  AnalysisOpsError,
  checkElectInputs,
  checkSignInputs,
  emptySignCounts,
  type AnalysisOps,
  type MagnitudeHistogram,
  type SignCounts,
} from './ops.ts';

/** Most models whose sign codes are counted in a table (4^N u32 counters per thread: 16 KiB at 6). */
export const CODE_TABLE_MAX_MODELS = 6;

const F32_EXPONENT_BIAS = 127;
/** Biased exponents of the regular range [2^MIN_EXPONENT, 2^(MIN_EXPONENT + OCTAVES)). */
const LOW_EXPONENT = MIN_EXPONENT + F32_EXPONENT_BIAS;
const HIGH_EXPONENT = LOW_EXPONENT + OCTAVES;
/** Per-thread slots of a magnitude histogram: the bins, then the bits of the least nonzero and the largest finite |x|. */
const HIST_MIN = BIN_COUNT;
const HIST_MAX = BIN_COUNT + 1;
const HIST_SLOT = BIN_COUNT + 2;
const F32_INFINITY_BITS = 0x7f800000;
/** Largest input evaluated into this object's own scratch (the pool reuses buffers from 1 MiB up). */
const SCRATCH_MAX_BYTES = 1 << 20;

export class FastAnalysisOps implements AnalysisOps {
  readonly backend: FastCpuBackend;
  /** Converts the bits of |x| back to the f32 value. */
  readonly #bits = new Uint32Array(1);
  readonly #float = new Float32Array(this.#bits.buffer);
  /** Scratch f32 values of input i (up to SCRATCH_MAX_BYTES each), reused call after call. */
  readonly #scratch: ArrayBufferLike[] = [];
  /** A call is using the scratch (a call made meanwhile evaluates into pooled buffers). */
  #scratchBusy = false;

  constructor(backend: FastCpuBackend) {
    this.backend = backend;
    checkBitBinning();
  }

  async signCounts(xs: readonly Tensor[], flips?: readonly boolean[]): Promise<SignCounts> {
    checkSignInputs(xs, flips);
    const n = xs.length;
    const numel = xs[0].numel;
    let flipMask = 0;
    for (let i = 0; i < n; i++) if (flips?.[i]) flipMask |= 1 << i;
    const out = emptySignCounts(n, numel);
    const nodes = this.#nodes(xs, 'signCounts');
    if (numel === 0) return out;
    const table = n <= CODE_TABLE_MAX_MODELS;
    const slotSize = table ? 4 ** n : signSlotLayout(n).size;
    const slots = this.backend.threads.threads;
    const inputs = await this.#values(nodes, 'signCounts', 'f32');
    const res = this.backend.results('u32', slots * slotSize);
    try {
      await this.#run('signCounts', table ? signTableKernel(n) : signBitsKernel(n), [...inputs, res.binding], [flipMask, slotSize], numel);
      const counts = new Uint32Array(res.storage.buffer, 0, slots * slotSize);
      if (table) addCodeCounts(out, counts, slots, n);
      else addBitCounts(out, counts, slots, n);
    } finally {
      res.storage.drop();
      inputs.release();
    }
    return out;
  }

  async magnitudeHistograms(xs: readonly Tensor[]): Promise<MagnitudeHistogram[]> {
    const out: MagnitudeHistogram[] = [];
    const slots = this.backend.threads.threads;
    const nodes = this.#nodes(xs, 'magnitudeHistograms');
    for (const node of nodes) {
      const counts = new Array<number>(BIN_COUNT).fill(0);
      let minBits = F32_INFINITY_BITS;
      let maxBits = -1;
      if (node.numel > 0) {
        const input = await this.#values([node], 'magnitudeHistograms', 'u32');
        const res = this.backend.results('u32', slots * HIST_SLOT);
        try {
          await this.#run('magnitudeHistograms', histogramKernel(), [...input, res.binding], [], node.numel);
          const r = new Uint32Array(res.storage.buffer, 0, slots * HIST_SLOT);
          for (let s = 0; s < slots; s++) {
            const o = s * HIST_SLOT;
            let seen = 0;
            for (let b = 0; b < BIN_COUNT; b++) {
              counts[b] += r[o + b];
              seen += r[o + b];
            }
            if (seen === 0) continue; // a thread that took no chunk wrote nothing
            const finite = seen - r[o + BIN.nonFinite];
            if (finite > 0) maxBits = Math.max(maxBits, r[o + HIST_MAX]);
            if (finite - r[o + BIN.zero] > 0) minBits = Math.min(minBits, r[o + HIST_MIN]);
          }
        } finally {
          res.storage.drop();
          input.release();
        }
      }
      out.push({
        counts,
        minNonzero: minBits === F32_INFINITY_BITS ? null : this.#fromBits(minBits),
        max: maxBits < 0 ? null : this.#fromBits(maxBits),
      });
    }
    return out;
  }

  async electedContributionNormsSq(wds: readonly Tensor[], weights: readonly number[], normalize: boolean): Promise<number[]> {
    checkElectInputs(wds, weights);
    const n = wds.length;
    const numel = wds[0].numel;
    const nodes = this.#nodes(wds, 'electedContributionNormsSq');
    const sums = new Array<number>(n).fill(0);
    const chunks = Math.ceil(numel / CHUNK);
    if (chunks === 0) return sums;
    const inputs = await this.#values(nodes, 'electedContributionNormsSq', 'f32');
    const res = this.backend.results('f64', chunks * n);
    try {
      await this.#run('electedContributionNormsSq', electKernel(n), [...inputs, res.binding], [normalize ? 1 : 0, ...weights.map(Math.fround)], numel);
      const partials = new Float64Array(res.storage.buffer, 0, chunks * n);
      for (let c = 0; c < chunks; c++) for (let i = 0; i < n; i++) sums[i] += partials[c * n + i];
    } finally {
      res.storage.drop();
      inputs.release();
    }
    return sums;
  }

  /** The nodes of live tensors of this backend (an AnalysisOpsError naming the tensor otherwise). */
  #nodes(xs: readonly Tensor[], op: string): Node[] {
    return xs.map((x, i) => {
      try {
        return this.backend.node(x, op);
      } catch (e) {
        throw new AnalysisOpsError(op, `tensor ${i}: ${(e as Error).message}`);
      }
    });
  }

  /**
   * The f32 values of each node, as bindings of `type` (f32 or its bits) for a kernel; release()
   * once the kernel is done. Stored f32 data is bound in place. A computed node that an earlier pass
   * computed already (a task vector, a kept band used again) is stored in place first, so later
   * passes and re-runs read it; one computed for the first time, or BF16/F16 bytes, is evaluated
   * into scratch: small ones into buffers this object keeps (no garbage per call), large ones into
   * the backend's pooled buffers.
   */
  async #values(nodes: readonly Node[], op: string, type: 'f32' | 'u32'): Promise<Binding[] & { release(): void }> {
    const be = this.backend;
    const pooled: Storage[] = [];
    const useScratch = !this.#scratchBusy;
    this.#scratchBusy = true;
    const out = Object.assign([] as Binding[], {
      release: () => {
        for (const s of pooled) s.drop();
        if (useScratch) this.#scratchBusy = false;
      },
    });
    try {
      for (let i = 0; i < nodes.length; i++) {
        const node = nodes[i];
        const stored = () => node.op.kind === 'data' && node.op.format === 'F32';
        if (!stored() && node.op.kind !== 'data' && node.evaluations > 0) await be.store(node, op);
        else if (!stored()) await be.prepare([node], op, 1);
        if (node.op.kind === 'data' && node.op.format === 'F32') {
          out.push({ buffer: node.op.storage.buffer, type, byteOffset: 0, length: node.numel });
          continue;
        }
        const bytes = node.numel * 4;
        let buffer: ArrayBufferLike;
        if (useScratch && bytes <= SCRATCH_MAX_BYTES) {
          buffer = this.#scratch[i];
          // Shared like the pool's (the backend's threads write it); the pool's kind never changes.
          if (!buffer || buffer.byteLength < bytes) {
            const size = Math.max(bytes, 4096);
            buffer = this.#scratch[i] = be.pool.shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size);
          }
        } else {
          const storage = Storage.pooled(be.pool, bytes);
          pooled.push(storage);
          buffer = storage.buffer;
        }
        await be.pass(op, [node], { kind: 'store', out: { buffer, type: 'f32', byteOffset: 0, length: node.numel, output: true } }, node.numel);
        be.counted([node]);
        out.push({ buffer, type, byteOffset: 0, length: node.numel });
      }
    } catch (e) {
      out.release();
      throw e;
    }
    return out;
  }

  async #run(op: string, source: string, bindings: Binding[], params: number[], items: number): Promise<void> {
    await this.backend.threads.run({ op: `analysis: ${op}`, source, bindings, params: Float64Array.from(params), items, chunkItems: CHUNK });
  }

  #fromBits(bits: number): number {
    this.#bits[0] = bits;
    return this.#float[0];
  }
}

// ---- kernels (sources for the backend's thread pool: `new Function('rt', source)` returns { begin, run, end }) ----

const kernelCache = new Map<string, string>();

function cached(key: string, make: () => string): string {
  let source = kernelCache.get(key);
  if (source === undefined) kernelCache.set(key, (source = make()));
  return source;
}

/** `pos` and `neg`: the N-bit sign masks of entry e of inputs v0..v{n-1}, flips applied (flip mask in p0). */
function signMaskLines(n: number): string[] {
  const lines = ['let pos = 0, neg = 0, a;'];
  for (let i = 0; i < n; i++) lines.push(`a = x${i}[e]; if (a > 0) pos |= ${1 << i}; else if (a < 0) neg |= ${1 << i};`);
  lines.push('const swap = (pos ^ neg) & flip; pos ^= swap; neg ^= swap;');
  return lines;
}

function inputLocals(n: number, type = 'x'): string[] {
  return Array.from({ length: n }, (_, i) => `const ${type}${i} = v[${i}];`);
}

/**
 * A sign-count kernel over inputs v0..v{n-1} into res (v{n}): per entry, the masks `pos` and `neg`
 * (signMaskLines), then `perEntry` counts into the thread's slot at `o` (slot size in p1).
 */
function signKernel(n: number, perEntry: string[]): string {
  return [
    'return {',
    '  begin(slot) { return slot; },',
    '  run(v, p, slot, start, end) {',
    ...inputLocals(n).map((l) => '    ' + l),
    `    const res = v[${n}]; const flip = p[0] | 0; const o = slot * p[1];`,
    '    for (let e = start; e < end; e++) {',
    ...signMaskLines(n).map((l) => '      ' + l),
    ...perEntry.map((l) => '      ' + l),
    '    }',
    '  },',
    '  end() {},',
    '};',
  ].join('\n');
}

/** Counts of each sign code pos | neg << N, per thread: res[slot·4^N + code]. */
function signTableKernel(n: number): string {
  return cached(`signTable:${n}`, () => signKernel(n, [`res[o + (pos | (neg << ${n}))]++;`]));
}

/** Offsets in a thread's slot of the bit-walking sign count (signBitsKernel). */
function signSlotLayout(n: number) {
  const nonzero = 0;
  const unique = n;
  const consensus = 2 * n;
  const conflictAll = 3 * n + 1;
  const pairBoth = 3 * n + 2;
  const pairConflict = pairBoth + n * n;
  return { nonzero, unique, consensus, conflictAll, pairBoth, pairConflict, size: pairConflict + n * n };
}

/** The statistics counted per entry by walking the set bits (any N <= 16), per thread into its slot of res. */
function signBitsKernel(n: number): string {
  const L = signSlotLayout(n);
  return cached(`signBits:${n}`, () =>
    signKernel(n, [
      'const nz = pos | neg;',
      `if (nz === 0) { res[o + ${L.consensus}]++; continue; }`,
      'let c = nz - ((nz >>> 1) & 0x55555555);',
      'c = (c & 0x33333333) + ((c >>> 2) & 0x33333333);',
      'c = Math.imul((c + (c >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;',
      `res[o + ${L.consensus} + c]++;`,
      `if (pos !== 0 && neg !== 0) res[o + ${L.conflictAll}]++;`,
      'if (c === 1) {',
      '  const i = 31 - Math.clz32(nz);',
      `  res[o + ${L.nonzero} + i]++; res[o + ${L.unique} + i]++;`,
      '  continue;',
      '}',
      'for (let rest = nz; rest !== 0; ) {',
      '  const i = 31 - Math.clz32(rest);',
      '  rest ^= 1 << i;',
      `  res[o + ${L.nonzero} + i]++;`,
      '  const si = (pos >>> i) & 1;',
      `  const row = o + i * ${n};`,
      '  for (let others = rest; others !== 0; ) {',
      '    const j = 31 - Math.clz32(others);',
      '    others ^= 1 << j;',
      `    res[row + ${L.pairBoth} + j]++;`,
      `    res[row + ${L.pairConflict} + j] += si ^ ((pos >>> j) & 1);`,
      '  }',
      '}',
    ]),
  );
}

/**
 * Pairs are counted once, at (i, j) with i > j (bits are walked from the top): the statistics
 * want them at i < j and mirrored.
 */
function addBitCounts(out: SignCounts, counts: Uint32Array, slots: number, n: number): void {
  const L = signSlotLayout(n);
  for (let s = 0; s < slots; s++) {
    const o = s * L.size;
    for (let i = 0; i < n; i++) {
      out.nonzero[i] += counts[o + L.nonzero + i];
      out.unique[i] += counts[o + L.unique + i];
    }
    for (let c = 0; c <= n; c++) out.consensus[c] += counts[o + L.consensus + c];
    out.conflictAll += counts[o + L.conflictAll];
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < i; j++) {
        out.pairBoth[j * n + i] += counts[o + L.pairBoth + i * n + j];
        out.pairConflict[j * n + i] += counts[o + L.pairConflict + i * n + j];
      }
    }
  }
  mirrorPairs(out);
}

/** The statistics of every sign code, weighted by how many entries had it. */
function addCodeCounts(out: SignCounts, counts: Uint32Array, slots: number, n: number): void {
  const codes = 4 ** n;
  const all = (1 << n) - 1;
  for (let code = 0; code < codes; code++) {
    let k = 0;
    for (let s = 0; s < slots; s++) k += counts[s * codes + code];
    if (k === 0) continue;
    const pos = code & all;
    const neg = code >>> n;
    const nz = pos | neg;
    let c = 0;
    for (let i = 0; i < n; i++) c += (nz >>> i) & 1;
    out.consensus[c] += k;
    if (pos !== 0 && neg !== 0) out.conflictAll += k;
    for (let i = 0; i < n; i++) {
      if (!((nz >>> i) & 1)) continue;
      out.nonzero[i] += k;
      if (c === 1) out.unique[i] += k;
      for (let j = i + 1; j < n; j++) {
        if (!((nz >>> j) & 1)) continue;
        out.pairBoth[i * n + j] += k;
        if (((pos >>> i) & 1) !== ((pos >>> j) & 1)) out.pairConflict[i * n + j] += k;
      }
    }
  }
  mirrorPairs(out);
}

/** Diagonal and lower triangle from the counts above the diagonal (as the reference fills them). */
function mirrorPairs(out: SignCounts): void {
  const n = out.models;
  for (let i = 0; i < n; i++) {
    out.pairBoth[i * n + i] = out.nonzero[i];
    for (let j = 0; j < i; j++) {
      out.pairBoth[i * n + j] = out.pairBoth[j * n + i];
      out.pairConflict[i * n + j] = out.pairConflict[j * n + i];
    }
  }
}

/** Magnitude bins of input v0 (u32 bits), per thread into its slot of res (v1): bins, then min/max bits. */
function histogramKernel(): string {
  return cached('histogram', () => {
    const mantissas = subBinMantissas();
    return [
      'return {',
      '  begin(slot) { return slot; },',
      '  run(v, p, slot, start, end) {',
      `    const x = v[0]; const res = v[1]; const o = slot * ${HIST_SLOT};`,
      // Threads that took no chunk write nothing, so min/max start from the slot only once it has counts.
      `    let seen = 0; for (let b = 0; b < ${BIN_COUNT}; b++) seen += res[o + b];`,
      `    let mn = seen > 0 ? res[o + ${HIST_MIN}] : ${F32_INFINITY_BITS}, mx = seen > 0 ? res[o + ${HIST_MAX}] : 0;`,
      '    for (let e = start; e < end; e++) {',
      '      const b = x[e] & 0x7fffffff;',
      `      if (b === 0) { res[o + ${BIN.zero}]++; continue; }`,
      `      if (b >= ${F32_INFINITY_BITS}) { res[o + ${BIN.nonFinite}]++; continue; }`,
      '      if (b < mn) mn = b;',
      '      if (b > mx) mx = b;',
      '      const ex = b >>> 23;',
      `      if (ex < ${LOW_EXPONENT}) { res[o + ${BIN.below}]++; continue; }`,
      `      if (ex >= ${HIGH_EXPONENT}) { res[o + ${BIN.above}]++; continue; }`,
      '      const m = b & 0x7fffff;',
      `      res[o + ${BIN.firstRegular - LOW_EXPONENT * BINS_PER_OCTAVE} + ex * ${BINS_PER_OCTAVE}${mantissas.map((s) => ` + (m >= ${s} ? 1 : 0)`).join('')}]++;`,
      '    }',
      `    res[o + ${HIST_MIN}] = mn; res[o + ${HIST_MAX}] = mx;`,
      '  },',
      '  end() {},',
      '};',
    ].join('\n');
  });
}

/**
 * Σ (wd_i·m_i / d)² per chunk into res[chunk·N + i] (f64), in the reference's f32 arithmetic
 * (electedContributionNormsSqOf): p0 = normalize, p1.. = f32 weights.
 */
function electKernel(n: number): string {
  const idx = Array.from({ length: n }, (_, i) => i);
  return cached(`elect:${n}`, () =>
    [
      'const fr = Math.fround;',
      'return {',
      '  begin() { return null; },',
      '  run(v, p, s, start, end, chunk) {',
      ...inputLocals(n).map((l) => '    ' + l),
      `    const res = v[${n}]; const normalize = p[0] !== 0;`,
      ...idx.map((i) => `    const w${i} = p[${i + 1}]; let s${i} = 0;`),
      '    for (let e = start; e < end; e++) {',
      ...idx.map((i) => `      const a${i} = x${i}[e];`),
      `      const total = ${idx.reduce((acc, i) => (i === 0 ? `fr(0 + a0)` : `fr(${acc} + a${i})`), '')};`,
      '      const majority = total >= 0 ? 1 : -1;',
      ...idx.map((i) => `      const k${i} = Math.sign(a${i}) === majority;`),
      '      let d = 0;',
      ...idx.map((i) => `      if (k${i}) d = fr(d + w${i});`),
      '      if (d === 0) d = 1;',
      ...idx.map((i) => `      if (k${i}) { const c = normalize ? fr(a${i} / d) : a${i}; s${i} += c * c; }`),
      '    }',
      ...idx.map((i) => `    res[chunk * ${n} + ${i}] = s${i};`),
      '  },',
      '  end() {},',
      '};',
    ].join('\n'),
  );
}

let bitBinningChecked = false;

/** The kernel bins by exponent and mantissa bits: that must agree with binOf on every edge and just below it. */
function checkBitBinning(): void {
  if (bitBinningChecked) return;
  const edges = binEdges();
  const mantissas = subBinMantissas();
  const bits = new Uint32Array(1);
  const f = new Float32Array(bits.buffer);
  const byBits = (b: number) => {
    const ex = b >>> 23;
    if (b === 0) return BIN.zero;
    if (ex < LOW_EXPONENT) return BIN.below;
    if (ex >= HIGH_EXPONENT) return BIN.above;
    const m = b & 0x7fffff;
    return BIN.firstRegular + (ex - LOW_EXPONENT) * BINS_PER_OCTAVE + mantissas.filter((s) => m >= s).length;
  };
  for (const edge of edges) {
    f[0] = edge;
    const edgeBits = bits[0];
    for (const b of [edgeBits, edgeBits - 1]) {
      bits[0] = b;
      if (byBits(b) !== binOf(f[0], edges)) {
        throw new AnalysisOpsError('magnitudeHistograms', `the bins of bins.ts cannot be found from f32 bits (at ${f[0]}); the fast ops need edges 2^k·fround(2^(s/B))`);
      }
    }
  }
  bitBinningChecked = true;
}

/**
 * keepRankBand's bounds by radix select, without sorting: ranks order entries by (key, index) with
 * key = the f32 bits of |x| (sign cleared; for non-NaN values the same order as |x|, NaN above +Inf),
 * as the reference's sort orders them. For each bound rank r (lo, and hi unless it is n):
 *   pass 1: histogram of key >>> 16 (32768 bins) → the bucket holding rank r;
 *   pass 2: histogram of the low 16 bits within that bucket (65536 bins) → the key K of rank r, and
 *           t = how many entries with key K rank below r (they come first by index);
 *   ties:   if t > 0, count entries with key K per chunk, then scan the one chunk holding the
 *           t-th to find its index I (t = 0: I = 0 is as good).
 * An entry (k, i) then ranks at or above r iff k > K or (k = K and i >= I). Both bounds share every
 * pass; each pass evaluates the (lazy) input on the fly, in parallel, with per-thread histograms.
 */
import type { Band } from './expr.ts';
import type { Node } from './expr.ts';
import { CHUNK, type FastCpuBackend } from './fast-backend.ts';

const HIGH_BINS = 1 << 15;
const LOW_BINS = 1 << 16;

interface Target {
  rank: number;
  bucket: number;
  /** rank within the bucket, then within the key */
  within: number;
  key: number;
  index: number;
}

/** Per-thread histograms of one pass, summed: counts[selector · bins + digit]. */
async function histogram(be: FastCpuBackend, node: Node, bins: number, selectors: { prefix: number; mask: number; shift: number }[]): Promise<Uint32Array> {
  const slots = be.threads.threads;
  const size = selectors.length * bins;
  const res = be.results('u32', slots * size);
  try {
    await be.pass('keepRankBand', [node], { kind: 'histogram', bins, selectors, res: res.binding }, node.numel);
    const all = new Uint32Array(res.storage.buffer, 0, slots * size);
    const sum = new Uint32Array(size);
    for (let s = 0; s < slots; s++) for (let k = 0; k < size; k++) sum[k] += all[s * size + k];
    return sum;
  } finally {
    res.storage.drop();
  }
}

/** The digit whose cumulative count passes `rank` (0-based), and the rank within that digit. */
function locate(counts: Uint32Array, from: number, bins: number, rank: number): [number, number] {
  let below = 0;
  for (let d = 0; d < bins; d++) {
    const c = counts[from + d];
    if (rank < below + c) return [d, rank - below];
    below += c;
  }
  throw new Error(`fast cpu backend: keepRankBand: rank ${rank} beyond the ${below} entries counted`);
}

/** The band of ranks [from, to) of `node` (0 <= from < to <= n, not the whole range). */
export async function selectBand(be: FastCpuBackend, node: Node, from: number, to: number): Promise<Band> {
  const n = node.numel;
  await be.prepare([node], 'keepRankBand', 3);
  const targets: Target[] = [];
  const lo = from > 0 ? { rank: from, bucket: 0, within: 0, key: 0, index: 0 } : undefined;
  const hi = to < n ? { rank: to, bucket: 0, within: 0, key: 0, index: 0 } : undefined;
  if (lo) targets.push(lo);
  if (hi) targets.push(hi);

  const high = await histogram(be, node, HIGH_BINS, [{ prefix: 0, mask: 0, shift: 16 }]);
  for (const t of targets) [t.bucket, t.within] = locate(high, 0, HIGH_BINS, t.rank);

  const buckets = [...new Set(targets.map((t) => t.bucket))];
  const low = await histogram(
    be,
    node,
    LOW_BINS,
    buckets.map((b) => ({ prefix: b << 16, mask: 0xffff0000, shift: 0 })),
  );
  for (const t of targets) {
    const s = buckets.indexOf(t.bucket);
    const [digit, within] = locate(low, s * LOW_BINS, LOW_BINS, t.within);
    t.key = ((t.bucket << 16) | digit) >>> 0;
    t.within = within;
  }

  const tied = targets.filter((t) => t.within > 0);
  if (tied.length > 0) {
    const keys = [...new Set(tied.map((t) => t.key))];
    const chunks = Math.ceil(n / CHUNK);
    const res = be.results('u32', chunks * keys.length);
    let counts: Uint32Array;
    try {
      await be.pass('keepRankBand', [node], { kind: 'keyCount', keys, res: res.binding }, n);
      counts = new Uint32Array(res.storage.buffer, 0, chunks * keys.length).slice();
    } finally {
      res.storage.drop();
    }
    for (const t of tied) {
      const k = keys.indexOf(t.key);
      let left = t.within;
      let chunk = 0;
      while (left >= counts[chunk * keys.length + k]) left -= counts[chunk++ * keys.length + k];
      const found = be.results('u32', 2);
      try {
        const hit = new Uint32Array(found.storage.buffer, 0, 2);
        hit[1] = 0;
        // One chunk: the pass runs on this thread alone.
        await be.pass('keepRankBand', [node], { kind: 'keyFind', key: t.key, nth: left, res: found.binding }, Math.min(n, (chunk + 1) * CHUNK), chunk);
        if (hit[1] !== 1) throw new Error(`fast cpu backend: keepRankBand: tie ${left} of key ${t.key} not found in chunk ${chunk}`);
        t.index = hit[0];
      } finally {
        found.storage.drop();
      }
    }
  }
  be.counted([node]);
  return {
    lo: lo ? { key: lo.key, index: lo.index } : undefined,
    hi: hi ? { key: hi.key, index: hi.index } : undefined,
  };
}

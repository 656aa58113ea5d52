/**
 * keepRankBand's bounds without sorting. Ranks order entries by (key, index) with key = the f32 bits
 * of |x| (sign cleared: for non-NaN values the order of |x|, NaN above +Inf), as the reference's sort
 * orders them. A bound at rank r is the entry (K, I) of rank r: an entry (k, i) ranks at or above r
 * iff k > K or (k = K and i >= I). Both bounds of a band are found together.
 *
 * Large tensors, one pass (sampled select, as Floyd–Rivest): the keys of 65536 evenly spaced
 * entries give, for each bound, a key window [lo, hi] that holds rank r with overwhelming
 * probability (±5 standard deviations of the sample's rank estimate); one parallel pass
 * counts the entries below each window and collects those inside (index, key), per chunk in index
 * order; the host then finds K and I among the few collected. If the window missed r, or holds too
 * many entries (heavily tied data), the exact path below runs instead — the result is exact either
 * way.
 *
 * Small tensors (below the sampled path's size, as the analysis's re-runs on demo checkpoints): one
 * pass gathers every key and the host selects among them (11/10/10-bit digits over shrinking
 * candidate lists), instead of 2–3 passes with 32768- and 65536-bin per-thread histograms, which cost
 * more than a small tensor (3000 entries: 0.085 ms against 1.76 ms; 100000: 1.2 against 2.2 ms).
 *
 * Exact path (the sampled path's fallback): radix select in 2–3 passes over the tensor:
 *   pass 1: histogram of key >>> 16 (32768 bins) → the bucket holding rank r;
 *   pass 2: histogram of the low 16 bits within that bucket → K, and t = how many entries with key
 *           K rank below r (they come first by index);
 *   ties:   if t > 0, count entries with key K per chunk, then scan the one chunk holding the t-th
 *           for its index I (t = 0: I = 0 is as good).
 * Every pass evaluates the (lazy) input on the fly, in parallel, with per-thread histograms.
 */
import type { Band, Node } from './expr.ts';
import { CHUNK, type FastCpuBackend } from './fast-backend.ts';

const HIGH_BINS = 1 << 15;
const LOW_BINS = 1 << 16;
export interface SelectTuning {
  /** Entries sampled by the one-pass path. */
  sample: number;
  /** The least tensor size the one-pass path runs on. */
  sampledMin: number;
  /** Half-width of a bound's key window, in standard deviations of its sampled rank. */
  windowSigmas: number;
  /** Window share of the tensor above which the exact path is cheaper (tied data). */
  maxWindowShare: number;
  /** The largest tensor whose keys are gathered and selected on the host. */
  smallMax: number;
}

export const DEFAULT_SELECT_TUNING: SelectTuning = { sample: 1 << 16, sampledMin: 1 << 18, windowSigmas: 5, maxWindowShare: 1 / 16, smallMax: (1 << 18) - 1 };

interface Bound {
  rank: number;
  key: number;
  index: number;
}

/** The band of ranks [from, to) of `node` (0 <= from < to <= n, not the whole range). */
export async function selectBand(be: FastCpuBackend, node: Node, from: number, to: number, tuning = DEFAULT_SELECT_TUNING): Promise<Band> {
  const n = node.numel;
  const bounds: Bound[] = [];
  const lo = from > 0 ? { rank: from, key: 0, index: 0 } : undefined;
  const hi = to < n ? { rank: to, key: 0, index: 0 } : undefined;
  if (lo) bounds.push(lo);
  if (hi) bounds.push(hi);
  // The small and sampled paths make one pass (plus a sample); the exact one up to three passes.
  const small = n <= tuning.smallMax;
  const sampled = !small && n >= tuning.sampledMin;
  await be.prepare([node], 'keepRankBand', small || sampled ? 1 : 3);
  if (small) {
    await smallBounds(be, node, bounds);
    be.selectPaths.small++;
  } else if (sampled && (await sampledBounds(be, node, bounds, tuning))) be.selectPaths.sampled++;
  else {
    await exactBounds(be, node, bounds);
    be.selectPaths.exact++;
  }
  be.counted([node]);
  return {
    lo: lo ? { key: lo.key, index: lo.index } : undefined,
    hi: hi ? { key: hi.key, index: hi.index } : undefined,
  };
}

// ---- small tensors: every key on the host ----

async function smallBounds(be: FastCpuBackend, node: Node, bounds: Bound[]): Promise<void> {
  const n = node.numel;
  const positions = be.results('u32', n);
  const gathered = be.results('u32', n);
  let keys: Uint32Array;
  try {
    const at = new Uint32Array(positions.storage.buffer, 0, n);
    for (let k = 0; k < n; k++) at[k] = k;
    await be.pass('keepRankBand', [node], { kind: 'gather', index: positions.binding, keys: gathered.binding }, n);
    keys = new Uint32Array(gathered.storage.buffer, 0, n).slice();
  } finally {
    positions.storage.drop();
    gathered.storage.drop();
  }
  for (const b of bounds) [b.key, b.index] = rankAmong(keys, b.rank);
}

/** Digits of the 31-bit keys, most significant first: [shift, bits]. */
const KEY_DIGITS: [number, number][] = [
  [20, 11],
  [10, 10],
  [0, 10],
];

/** The (key, index) of rank r (0 <= r < keys.length) among `keys` in index order: radix select, then a scan for ties. */
function rankAmong(keys: Uint32Array, r: number): [number, number] {
  let candidates = keys;
  let key = 0;
  let within = r;
  for (const [shift, bits] of KEY_DIGITS) {
    const bins = 1 << bits;
    const counts = new Uint32Array(bins);
    for (let k = 0; k < candidates.length; k++) counts[(candidates[k] >>> shift) & (bins - 1)]++;
    const [digit, rest] = locate(counts, 0, bins, within);
    key |= digit << shift;
    within = rest;
    if (shift > 0) {
      // The candidates share every digit so far: keep those with this one.
      const next = new Uint32Array(counts[digit]);
      let at = 0;
      for (let k = 0; k < candidates.length; k++) if (((candidates[k] >>> shift) & (bins - 1)) === digit) next[at++] = candidates[k];
      candidates = next;
    }
  }
  if (within === 0) return [key, 0];
  let seen = 0;
  for (let i = 0; i < keys.length; i++) if (keys[i] === key && seen++ === within) return [key, i];
  throw new Error(`fast cpu backend: keepRankBand: tie ${within} of key ${key} not found`);
}

// ---- one pass over a sampled window ----

/** Finds every bound from a sample and one collecting pass; false when the exact path must run. */
async function sampledBounds(be: FastCpuBackend, node: Node, bounds: Bound[], tuning: SelectTuning): Promise<boolean> {
  const n = node.numel;
  const sample = await sampleKeys(be, node, n, tuning.sample);
  const s = sample.length;
  const windows: [number, number][] = [];
  let expected = 0;
  for (const b of bounds) {
    const p = b.rank / n;
    const spread = tuning.windowSigmas * Math.sqrt(s * p * (1 - p)) + 8 * Math.min(1, tuning.windowSigmas);
    const a = Math.floor(p * s - spread);
    const z = Math.ceil(p * s + spread);
    const lo = a < 0 ? 0 : sample[a];
    const hi = z >= s ? 0x7fffffff : sample[z];
    windows.push([lo, hi]);
    expected += (upperIndex(sample, hi) - lowerIndex(sample, lo)) / s;
  }
  // Windows of one key each (the rank falls among many equal entries, as zeros of an unchanged
  // tensor): count per chunk instead of collecting.
  if (windows.every(([lo, hi]) => lo === hi)) return singleKeyBounds(be, node, bounds, windows.map(([key]) => key));
  if (expected > tuning.maxWindowShare) return false;
  // Room for twice the expected entries (and then some) per thread: a thread may take every chunk.
  const capacity = Math.ceil(2 * expected * n) + 4 * CHUNK;
  const chunks = Math.ceil(n / CHUNK);
  const slots = be.threads.threads;
  const below = be.results('u32', chunks * windows.length);
  const table = be.results('u32', chunks * 3);
  const candIndex = be.results('u32', slots * capacity, false);
  const candKey = be.results('u32', slots * capacity, false);
  try {
    await be.pass('keepRankBand', [node], { kind: 'collect', windows, capacity, below: below.binding, table: table.binding, candIndex: candIndex.binding, candKey: candKey.binding }, n);
    const belowCounts = new Uint32Array(below.storage.buffer, 0, chunks * windows.length);
    const where = new Uint32Array(table.storage.buffer, 0, chunks * 3);
    const ci = new Uint32Array(candIndex.storage.buffer, 0, slots * capacity);
    const ck = new Uint32Array(candKey.storage.buffer, 0, slots * capacity);
    let total = 0;
    for (let c = 0; c < chunks; c++) {
      if (where[c * 3 + 1] + where[c * 3 + 2] > capacity) return false;
      total += where[c * 3 + 2];
    }
    // The collected entries in index order: chunk by chunk, each chunk's run in order.
    const index = new Uint32Array(total);
    const keys = new Uint32Array(total);
    let at = 0;
    for (let c = 0; c < chunks; c++) {
      const [slot, first, count] = [where[c * 3], where[c * 3 + 1], where[c * 3 + 2]];
      index.set(ci.subarray(slot * capacity + first, slot * capacity + first + count), at);
      keys.set(ck.subarray(slot * capacity + first, slot * capacity + first + count), at);
      at += count;
    }
    const found: [number, number][] = [];
    for (let w = 0; w < bounds.length; w++) {
      let before = 0;
      for (let c = 0; c < chunks; c++) before += belowCounts[c * windows.length + w];
      const [lo, hi] = windows[w];
      const r = bounds[w].rank - before;
      const hit = r >= 0 ? rankInWindow(index, keys, lo, hi, r) : undefined;
      if (!hit) return false; // the window missed the rank (an unlucky sample)
      found.push(hit);
    }
    bounds.forEach((b, w) => ([b.key, b.index] = found[w]));
    return true;
  } finally {
    for (const r of [below, table, candIndex, candKey]) r.storage.drop();
  }
}

/**
 * Bounds whose rank lies, per the sample, among the entries of one key each: one pass counts, per
 * chunk, the entries equal to and below each key; the index comes from a scan of one chunk.
 */
async function singleKeyBounds(be: FastCpuBackend, node: Node, bounds: Bound[], keys: number[]): Promise<boolean> {
  const n = node.numel;
  const chunks = Math.ceil(n / CHUNK);
  const s = keys.length;
  const equal = be.results('u32', chunks * s);
  const below = be.results('u32', chunks * s);
  let counts: Uint32Array;
  let lower: Uint32Array;
  try {
    await be.pass('keepRankBand', [node], { kind: 'keyCount', keys, res: equal.binding, below: below.binding }, n);
    counts = new Uint32Array(equal.storage.buffer, 0, chunks * s).slice();
    lower = new Uint32Array(below.storage.buffer, 0, chunks * s).slice();
  } finally {
    equal.storage.drop();
    below.storage.drop();
  }
  const ties: number[] = [];
  for (let w = 0; w < s; w++) {
    let before = 0;
    let inside = 0;
    for (let c = 0; c < chunks; c++) {
      before += lower[c * s + w];
      inside += counts[c * s + w];
    }
    const t = bounds[w].rank - before;
    if (t < 0 || t >= inside) return false;
    ties.push(t);
  }
  for (let w = 0; w < s; w++) {
    bounds[w].key = keys[w];
    bounds[w].index = ties[w] === 0 ? 0 : await tieIndex(be, node, keys[w], ties[w], counts, s, w);
  }
  return true;
}

/** Index of the entry number `t` (0-based, index order) with key `key`, from per-chunk counts of that key. */
async function tieIndex(be: FastCpuBackend, node: Node, key: number, t: number, counts: Uint32Array, stride: number, at: number): Promise<number> {
  const n = node.numel;
  let left = t;
  let chunk = 0;
  while (left >= counts[chunk * stride + at]) left -= counts[chunk++ * stride + at];
  const found = be.results('u32', 2);
  try {
    // One chunk: the pass runs on this thread alone.
    await be.pass('keepRankBand', [node], { kind: 'keyFind', key, nth: left, res: found.binding }, Math.min(n, (chunk + 1) * CHUNK), chunk);
    const hit = new Uint32Array(found.storage.buffer, 0, 2);
    if (hit[1] !== 1) throw be.error('keepRankBand', `internal: tie ${left} of key ${key} not found in chunk ${chunk}`);
    return hit[0];
  } finally {
    found.storage.drop();
  }
}

/** Sorted keys of `sample` entries spread evenly over the tensor. */
async function sampleKeys(be: FastCpuBackend, node: Node, n: number, sample: number): Promise<Uint32Array> {
  const s = Math.min(sample, n);
  const positions = be.results('u32', s);
  const keys = be.results('u32', s);
  try {
    const at = new Uint32Array(positions.storage.buffer, 0, s);
    for (let k = 0; k < s; k++) at[k] = Math.floor(((k + 0.5) * n) / s);
    await be.pass('keepRankBand', [node], { kind: 'gather', index: positions.binding, keys: keys.binding }, s);
    return new Uint32Array(keys.storage.buffer, 0, s).slice().sort();
  } finally {
    positions.storage.drop();
    keys.storage.drop();
  }
}

/** First position of a sorted array holding a value >= key. */
function lowerIndex(sorted: Uint32Array, key: number): number {
  let a = 0;
  let b = sorted.length;
  while (a < b) {
    const m = (a + b) >>> 1;
    if (sorted[m] < key) a = m + 1;
    else b = m;
  }
  return a;
}

/** First position of a sorted array holding a value > key. */
function upperIndex(sorted: Uint32Array, key: number): number {
  let a = 0;
  let b = sorted.length;
  while (a < b) {
    const m = (a + b) >>> 1;
    if (sorted[m] <= key) a = m + 1;
    else b = m;
  }
  return a;
}

/**
 * The (key, index) of rank r among the entries with keys in [lo, hi] (given in index order), or
 * undefined when fewer than r + 1 are there. A two-level histogram finds the key; a scan the index.
 */
function rankInWindow(index: Uint32Array, keys: Uint32Array, lo: number, hi: number, r: number): [number, number] | undefined {
  const high = new Uint32Array(HIGH_BINS);
  let inside = 0;
  for (let k = 0; k < keys.length; k++) {
    const key = keys[k];
    if (key >= lo && key <= hi) {
      high[key >>> 16]++;
      inside++;
    }
  }
  if (r >= inside) return undefined;
  const [bucket, r1] = locate(high, 0, HIGH_BINS, r);
  const low = new Uint32Array(LOW_BINS);
  for (let k = 0; k < keys.length; k++) {
    const key = keys[k];
    if (key >= lo && key <= hi && key >>> 16 === bucket) low[key & 0xffff]++;
  }
  const [digit, t] = locate(low, 0, LOW_BINS, r1);
  const key = ((bucket << 16) | digit) >>> 0;
  if (t === 0) return [key, 0];
  let seen = 0;
  for (let k = 0; k < keys.length; k++) {
    if (keys[k] === key && seen++ === t) return [key, index[k]];
  }
  return undefined;
}

// ---- exact radix select ----

async function exactBounds(be: FastCpuBackend, node: Node, bounds: Bound[]): Promise<void> {
  const n = node.numel;
  const targets = bounds.map((b) => ({ bound: b, bucket: 0, within: 0 }));
  const high = await histogram(be, node, HIGH_BINS, [{ prefix: 0, mask: 0, shift: 16 }]);
  for (const t of targets) [t.bucket, t.within] = locate(high, 0, HIGH_BINS, t.bound.rank);

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
    t.bound.key = ((t.bucket << 16) | digit) >>> 0;
    t.bound.index = 0;
    t.within = within;
  }

  const tied = targets.filter((t) => t.within > 0);
  if (tied.length === 0) return;
  const keys = [...new Set(tied.map((t) => t.bound.key))];
  const chunks = Math.ceil(n / CHUNK);
  const res = be.results('u32', chunks * keys.length);
  let counts: Uint32Array;
  try {
    await be.pass('keepRankBand', [node], { kind: 'keyCount', keys, res: res.binding }, n);
    counts = new Uint32Array(res.storage.buffer, 0, chunks * keys.length).slice();
  } finally {
    res.storage.drop();
  }
  for (const t of tied) t.bound.index = await tieIndex(be, node, t.bound.key, t.within, counts, keys.length, keys.indexOf(t.bound.key));
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

// Radix select: the element of a given rank in the order (|x|, index) without sorting, and the
// band of ranks it bounds. Keys are the f32 bit patterns of |x| (x & 0x7fffffff), which order like
// |x| for non-NaN values.
//
// histogram: one digit pass of the selection.
//
// The host runs up to two selections at once (the lower and upper bound of a rank band), each as
// digit passes of 8 bits, most significant first: 4 passes over the key, then, only when several
// entries share the selected key, passes over the global index among the entries equal to it.
// A pass counts, per selector, the candidates (entries whose already-fixed bits match the prefix)
// by their current 8-bit digit into 256 bins; the host reads the bins, finds the bin holding the
// wanted rank, fixes that digit and subtracts the counts below it. Histograms accumulate across the
// chunks of a tensor (the host zeroes them before each pass).
//
// Each workgroup counts WORKGROUP_SIZE · ELEMENTS_PER_THREAD consecutive elements into workgroup-memory bins, then
// adds its nonzero bins to the global histogram: hist[0..255] for selector 0, [256..511] for 1.
//
// Dispatch: ceil(n / (WORKGROUP_SIZE · ELEMENTS_PER_THREAD)) workgroups per chunk (2-D grid above maxComputeWorkgroupsPerDimension;
// elements past n are skipped).

struct Selector {
  key_prefix: u32,
  key_mask: u32,     // key bits fixed so far
  index_prefix: u32,
  index_mask: u32,   // index bits fixed so far
  shift: u32,        // the digit is (value >> shift) & 255
  from_index: u32,   // 1: digit of the index, 0: digit of the key
  enabled: u32,
  _pad: u32,         // a multiple of 16 bytes (see wgsl-reflect.ts)
}

struct Params {
  n: u32,          // elements in this chunk
  offset: u32,     // global index of the chunk's first element
  _pad0: u32,      // sel0 on a 16-byte boundary
  _pad1: u32,
  sel0: Selector,
  sel1: Selector,
  // keep_band's bounds, (key, index) pairs from the histogram passes; has_* = 0 drops a bound.
  lo_key: u32,
  lo_index: u32,
  hi_key: u32,
  hi_index: u32,
  has_lo: u32,
  has_hi: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> hist: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

var<workgroup> bins: array<atomic<u32>, 512>;

// Elements counted per thread (the host passes HISTOGRAM_BLOCK / WORKGROUP_SIZE).
override ELEMENTS_PER_THREAD: u32 = 16u;

fn vote(s: Selector, base: u32, key: u32, index: u32) {
  if (s.enabled == 0u || (key & s.key_mask) != s.key_prefix || (index & s.index_mask) != s.index_prefix) {
    return;
  }
  let value = select(key, index, s.from_index != 0u);
  atomicAdd(&bins[base + ((value >> s.shift) & 255u)], 1u);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn histogram(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  for (var b = lid; b < 512u; b = b + WORKGROUP_SIZE) {
    atomicStore(&bins[b], 0u);
  }
  workgroupBarrier();
  let start = workgroup_index(wid, nwg) * WORKGROUP_SIZE * ELEMENTS_PER_THREAD;
  for (var e = 0u; e < ELEMENTS_PER_THREAD; e = e + 1u) {
    let i = start + e * WORKGROUP_SIZE + lid;
    if (i < params.n) {
      let key = x[i] & 0x7fffffffu;
      let index = params.offset + i;
      vote(params.sel0, 0u, key, index);
      vote(params.sel1, 256u, key, index);
    }
  }
  workgroupBarrier();
  for (var b = lid; b < 512u; b = b + WORKGROUP_SIZE) {
    let c = atomicLoad(&bins[b]);
    if (c != 0u) {
      atomicAdd(&hist[b], c);
    }
  }
}

// keep_band: keep x where (lo_key, lo_index) <= (|x| bits, global index) < (hi_key, hi_index),
// lexicographically; |x| bits = x & 0x7fffffff order like |x| for non-NaN floats. Values move as raw
// bits, so kept entries are copied exactly. One thread per element, ceil(n / WORKGROUP_SIZE) workgroups.
@compute @workgroup_size(WORKGROUP_SIZE)
fn keep_band(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  let bits = x[i];
  let key = bits & 0x7fffffffu;
  let index = params.offset + i;
  let above_lo = params.has_lo == 0u || key > params.lo_key || (key == params.lo_key && index >= params.lo_index);
  let below_hi = params.has_hi == 0u || key < params.hi_key || (key == params.hi_key && index < params.hi_index);
  out[i] = select(0u, bits, above_lo && below_hi);
}


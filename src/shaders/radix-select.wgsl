// Radix select, histogram pass: finds the element of a given rank in the order (|x|, index) without
// sorting. Keys are the f32 bit patterns of |x| (x & 0x7fffffff), which order like |x|.
//
// The host runs up to two selections at once (the lower and upper bound of a rank band), each as
// digit passes of 8 bits, most significant first: 4 passes over the key, then, only when several
// entries share the selected key, passes over the global index among the entries equal to it.
// A pass counts, per selector, the candidates (entries whose already-fixed bits match the prefix)
// by their current 8-bit digit into 256 bins; the host reads the bins, finds the bin holding the
// wanted rank, fixes that digit and subtracts the counts below it. Histograms accumulate across the
// chunks of a tensor (the host zeroes them before each pass).
//
// Each workgroup counts 4096 consecutive elements (16 per thread) into workgroup-memory bins, then
// adds its nonzero bins to the global histogram: hist[0..255] for selector 0, [256..511] for 1.
//
// Dispatch: ceil(n / 4096) workgroups per chunk (2-D grid above maxComputeWorkgroupsPerDimension;
// elements past n are skipped).

struct Selector {
  key_prefix: u32,
  key_mask: u32,     // key bits fixed so far
  index_prefix: u32,
  index_mask: u32,   // index bits fixed so far
  shift: u32,        // the digit is (value >> shift) & 255
  from_index: u32,   // 1: digit of the index, 0: digit of the key
  enabled: u32,
  _pad: u32,
}

struct Params {
  n: u32,          // elements in this chunk
  offset: u32,     // global index of the chunk's first element
  _pad0: u32,
  _pad1: u32,
  sel0: Selector,
  sel1: Selector,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> hist: array<atomic<u32>>;

var<workgroup> bins: array<atomic<u32>, 512>;

const ELEMENTS_PER_THREAD: u32 = 16u;

fn vote(s: Selector, base: u32, key: u32, index: u32) {
  if (s.enabled == 0u || (key & s.key_mask) != s.key_prefix || (index & s.index_mask) != s.index_prefix) {
    return;
  }
  let value = select(key, index, s.from_index != 0u);
  atomicAdd(&bins[base + ((value >> s.shift) & 255u)], 1u);
}

@compute @workgroup_size(256)
fn histogram(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  atomicStore(&bins[lid], 0u);
  atomicStore(&bins[lid + 256u], 0u);
  workgroupBarrier();
  let start = (wid.y * nwg.x + wid.x) * 256u * ELEMENTS_PER_THREAD;
  for (var e = 0u; e < ELEMENTS_PER_THREAD; e = e + 1u) {
    let i = start + e * 256u + lid;
    if (i < params.n) {
      let key = x[i] & 0x7fffffffu;
      let index = params.offset + i;
      vote(params.sel0, 0u, key, index);
      vote(params.sel1, 256u, key, index);
    }
  }
  workgroupBarrier();
  for (var b = lid; b < 512u; b = b + 256u) {
    let c = atomicLoad(&bins[b]);
    if (c != 0u) {
      atomicAdd(&hist[b], c);
    }
  }
}

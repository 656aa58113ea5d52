// Radix select on the GPU: the element of a given rank in the order (|x|, index), found without
// sorting and without the host, and the band of ranks it bounds. Keys are the f32 bit patterns of
// |x| (x & 0x7fffffff), which order like |x| for non-NaN values.
//
// Up to two selections run at once (the lower and upper bound of a rank band). Each is a sequence of
// 8-bit digit passes, most significant first: 4 over the key, then, only when several entries share
// the selected key, passes over the global index among the entries equal to it. The state of each
// selection (the bits fixed so far, the rank still to find, the current digit) lives in the storage
// buffer `state`, so the host records every pass up front and reads nothing back:
//
//   histogram: counts, per enabled selector, the candidates (entries whose fixed bits match) by their
//              current digit into 256 bins (hist[0..255] selector 0, [256..511] selector 1). Each
//              workgroup counts WORKGROUP_SIZE · ELEMENTS_PER_THREAD consecutive elements into
//              workgroup-memory bins, then adds its nonzero bins to hist. Histograms accumulate over
//              the chunks of a tensor. A pass with no enabled selector returns at once.
//              Dispatch: ceil(n / (WORKGROUP_SIZE · ELEMENTS_PER_THREAD)) workgroups per chunk.
//   pick:      one thread per selector: find the bin holding the wanted rank, fix that digit,
//              subtract the counts below it, move to the next digit (or to the index, or finish),
//              and clear the selector's bins for the next pass. Dispatch: 1 workgroup.
//   keep_band: keep x where (lo key, lo index) <= (|x| bits, global index) < (hi key, hi index)
//              lexicographically, the bounds being selectors 0 and 1 (has_lo / has_hi = 0 drops a
//              bound). Values move as raw bits, so kept entries are copied exactly.
//              Dispatch: one thread per element, ceil(n / WORKGROUP_SIZE) workgroups.
// The host can also run a single histogram pass and read `hist` (countKeyDigits), for selections it
// drives over many tensors.

struct Selector {
  key_prefix: u32,
  key_mask: u32,     // key bits fixed so far
  index_prefix: u32,
  index_mask: u32,   // index bits fixed so far
  shift: u32,        // the digit is (value >> shift) & 255
  from_index: u32,   // 1: digit of the index, 0: digit of the key
  enabled: u32,
  rank: u32,         // rank still to find among the candidates
}

struct Params {
  n: u32,                // elements in this chunk
  offset: u32,           // global index of the chunk's first element
  index_top_shift: u32,  // pick: shift of the index's most significant digit
  has_lo: u32,           // keep_band
  has_hi: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> hist: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<storage, read> state_in: array<Selector, 2>;
@group(0) @binding(5) var<storage, read_write> state: array<Selector, 2>;

var<workgroup> bins: array<atomic<u32>, 512>;
var<workgroup> selectors: array<Selector, 2>;
var<workgroup> any_active: u32;

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
  if (lid == 0u) {
    selectors[0] = state_in[0];
    selectors[1] = state_in[1];
    any_active = selectors[0].enabled | selectors[1].enabled;
  }
  // Uniform for the whole workgroup, so the early return keeps the barriers below uniform.
  if (workgroupUniformLoad(&any_active) == 0u) {
    return;
  }
  for (var b = lid; b < 512u; b = b + WORKGROUP_SIZE) {
    atomicStore(&bins[b], 0u);
  }
  workgroupBarrier();
  let s0 = selectors[0];
  let s1 = selectors[1];
  let start = workgroup_index(wid, nwg) * WORKGROUP_SIZE * ELEMENTS_PER_THREAD;
  for (var e = 0u; e < ELEMENTS_PER_THREAD; e = e + 1u) {
    let i = start + e * WORKGROUP_SIZE + lid;
    if (i < params.n) {
      let key = x[i] & 0x7fffffffu;
      let index = params.offset + i;
      vote(s0, 0u, key, index);
      vote(s1, 256u, key, index);
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

@compute @workgroup_size(WORKGROUP_SIZE)
fn pick(@builtin(local_invocation_index) lid: u32) {
  if (lid >= 2u) {
    return;
  }
  var s = state[lid];
  let base = lid * 256u;
  if (s.enabled != 0u) {
    var below = 0u;
    var digit = 0u;
    loop {
      if (digit == 255u) {
        break; // the last bin holds whatever rank is left (the counts always reach it)
      }
      let c = atomicLoad(&hist[base + digit]);
      if (below + c > s.rank) {
        break;
      }
      below = below + c;
      digit = digit + 1u;
    }
    let bits = digit << s.shift;
    let mask = 0xffu << s.shift;
    s.rank = s.rank - below;
    if (s.from_index == 0u) {
      s.key_prefix = s.key_prefix | bits;
      s.key_mask = s.key_mask | mask;
      if (s.shift > 0u) {
        s.shift = s.shift - 8u;
      } else if (s.rank == 0u) {
        s.enabled = 0u; // first of its ties: (key, index 0) bounds it exactly
      } else {
        s.from_index = 1u;
        s.shift = params.index_top_shift;
      }
    } else {
      s.index_prefix = s.index_prefix | bits;
      s.index_mask = s.index_mask | mask;
      if (s.shift > 0u) {
        s.shift = s.shift - 8u;
      } else {
        s.enabled = 0u;
      }
    }
    state[lid] = s;
  }
  for (var b = 0u; b < 256u; b = b + 1u) {
    atomicStore(&hist[base + b], 0u);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn keep_band(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  let lo = state_in[0];
  let hi = state_in[1];
  let bits = x[i];
  let key = bits & 0x7fffffffu;
  let index = params.offset + i;
  let above_lo = params.has_lo == 0u || key > lo.key_prefix || (key == lo.key_prefix && index >= lo.index_prefix);
  let below_hi = params.has_hi == 0u || key < hi.key_prefix || (key == hi.key_prefix && index < hi.index_prefix);
  out[i] = select(0u, bits, above_lo && below_hi);
}

// Log-binned histogram of |x| (src/gpu/analysis/bins.ts), plus the smallest nonzero and the largest
// finite |x|. Values are read as bits: a = bits & 0x7fffffff orders like |x| for non-NaN floats,
// so the bin follows from the exponent e = (a >> 23) − 127 and the mantissa m = a & 0x7fffff:
//   a == 0                      → bin ZERO (0)
//   a >= 0x7f800000 (Inf, NaN)  → bin NON_FINITE (3 + R)
//   k = e − min_exponent < 0    → bin BELOW (1)       (subnormals too: their e is −127)
//   k >= octaves                → bin ABOVE (2 + R)
//   else                        → bin 2 + k·B + s, s = number of sub-bin mantissas <= m
// where B = per_octave (<= 4), R = octaves·B, and the B − 1 sub-bin mantissas are those of
// fround(2^(s/B)) (every edge of sub-bin s shares that mantissa). Output layout (u32):
//   [0, 4 + R) counts · [4 + R] min nonzero finite |x| bits (host starts it at 0xffffffff) ·
//   [5 + R] max finite |x| bits (starts at 0)
// Each workgroup bins its BLOCK = 4096 entries in workgroup atomics, then adds its nonzero counts
// (and atomicMin / atomicMax of its extremes) to the output. Counts stay below 2^32 per tensor.
//
// Dispatch: one workgroup per BLOCK elements of the chunk, ceil(n / 4096) workgroups (2-D grid
// above maxComputeWorkgroupsPerDimension; blocks past n do nothing).

// Elements per workgroup (the host passes ANALYSIS_BLOCK).
override BLOCK: u32 = 4096u;
// 4 + 32 octaves · 4 bins, the most bins.ts asks for.
const MAX_BINS: u32 = 132u;

struct Params {
  n: u32,              // elements in this chunk
  min_exponent: i32,
  octaves: u32,
  per_octave: u32,
  sub: vec4<u32>,      // mantissas of sub-bin edges 1..per_octave-1 (unused lanes 0xffffffff)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<atomic<u32>>;

var<workgroup> local_counts: array<atomic<u32>, MAX_BINS>;
var<workgroup> local_min: atomic<u32>;
var<workgroup> local_max: atomic<u32>;

fn bin_of(a: u32) -> u32 {
  let regular = params.octaves * params.per_octave;
  if (a == 0u) {
    return 0u;
  }
  if (a >= 0x7f800000u) {
    return 3u + regular;
  }
  let k = i32(a >> 23u) - 127 - params.min_exponent;
  if (k < 0) {
    return 1u;
  }
  if (u32(k) >= params.octaves) {
    return 2u + regular;
  }
  let m = a & 0x7fffffu;
  var s = 0u;
  for (var j = 0u; j + 1u < params.per_octave; j = j + 1u) {
    if (m >= params.sub[j]) {
      s = s + 1u;
    }
  }
  return 2u + u32(k) * params.per_octave + s;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn log_histogram(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let bins = 4u + params.octaves * params.per_octave;
  for (var k = lid; k < bins; k = k + WORKGROUP_SIZE) {
    atomicStore(&local_counts[k], 0u);
  }
  if (lid == 0u) {
    atomicStore(&local_min, 0xffffffffu);
    atomicStore(&local_max, 0u);
  }
  workgroupBarrier();

  let start = workgroup_index(wid, nwg) * BLOCK;
  let end = min(start + BLOCK, params.n);
  var lo = 0xffffffffu;
  var hi = 0u;
  var seen = false;
  for (var e = start + lid; e < end; e = e + WORKGROUP_SIZE) {
    let a = x[e] & 0x7fffffffu;
    atomicAdd(&local_counts[bin_of(a)], 1u);
    if (a < 0x7f800000u) {
      seen = true;
      hi = max(hi, a);
      if (a != 0u) {
        lo = min(lo, a);
      }
    }
  }
  if (seen) {
    atomicMin(&local_min, lo);
    atomicMax(&local_max, hi);
  }
  workgroupBarrier();

  for (var k = lid; k < bins; k = k + WORKGROUP_SIZE) {
    let v = atomicLoad(&local_counts[k]);
    if (v != 0u) {
      atomicAdd(&out[k], v);
    }
  }
  if (lid == 0u) {
    atomicMin(&out[bins], atomicLoad(&local_min));
    atomicMax(&out[bins + 1u], atomicLoad(&local_max));
  }
}

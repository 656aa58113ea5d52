// Keep-or-zero masks over one chunk. Values move as raw bits (array<u32>), so kept entries are
// copied exactly (subnormals and NaN payloads included). Uses random.wgsl (prepended).
//
// keep_where:  keep x where mask != ±0 (mask replayed from a file; NaN counts as nonzero).
// keep_band:   keep x where (lo_key, lo_index) <= (|x| bits, global index) < (hi_key, hi_index),
//              lexicographically; has_lo / has_hi = 0 drops that bound. |x| bits = x & 0x7fffffff
//              order like |x| for non-NaN floats. The bounds come from radix-select.wgsl.
// keep_random: keep x where uniform_bits(seed, model, tensor_hash, global index) < threshold,
//              threshold = ceil(p · 2^24) from the host (exactly "uniform < p").
// keep_ranked: DELLA. aux holds, for the row batch [batch_start, batch_start + batch_len), the rank
//              of each entry within its row (from bitonic.wgsl); keep where
//              uniform_bits(...) < thresholds[rank], the host's ceil(p(rank) · 2^24) table. Entries
//              outside the batch are left as they are (out starts zeroed; each batch writes its rows).
//
// Dispatch: one thread per element of the chunk, ceil(n / 256) workgroups (2-D grid above
// maxComputeWorkgroupsPerDimension; threads past n return).

struct Params {
  n: u32,            // elements in this chunk
  offset: u32,       // global index of the chunk's first element
  lo_key: u32,
  lo_index: u32,
  hi_key: u32,
  hi_index: u32,
  has_lo: u32,
  has_hi: u32,
  seed: u32,
  model: u32,
  tensor_hash: u32,
  threshold: u32,
  batch_start: u32,
  batch_len: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> aux: array<u32>;
@group(0) @binding(3) var<storage, read> thresholds: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

fn thread_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * 256u + lid;
}

@compute @workgroup_size(256)
fn keep_where(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let i = thread_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  out[i] = select(0u, x[i], (aux[i] & 0x7fffffffu) != 0u);
}

@compute @workgroup_size(256)
fn keep_band(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = thread_index(wid, nwg, lid);
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

@compute @workgroup_size(256)
fn keep_random(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = thread_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  let u = uniform_bits(params.seed, params.model, params.tensor_hash, params.offset + i);
  out[i] = select(0u, x[i], u < params.threshold);
}

@compute @workgroup_size(256)
fn keep_ranked(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = thread_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  let g = params.offset + i;
  if (g < params.batch_start || g - params.batch_start >= params.batch_len) {
    return;
  }
  let rank = aux[g - params.batch_start];
  let u = uniform_bits(params.seed, params.model, params.tensor_hash, g);
  out[i] = select(0u, x[i], u < thresholds[rank]);
}

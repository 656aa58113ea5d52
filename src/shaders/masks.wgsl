// Keep-or-zero masks over one chunk. Values move as raw bits (array<u32>), so kept entries are
// copied exactly (subnormals and NaN payloads included). Uses random.wgsl (prepended).
//
// keep_where:  keep x where mask != ±0 (mask replayed from a file; NaN counts as nonzero).
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
  seed: u32,
  model: u32,
  tensor_hash: u32,
  threshold: u32,
  batch_start: u32,
  batch_len: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> aux: array<u32>;
@group(0) @binding(3) var<storage, read> thresholds: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn keep_where(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  out[i] = select(0u, x[i], (aux[i] & 0x7fffffffu) != 0u);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn keep_random(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  let u = uniform_bits(params.seed, params.model, params.tensor_hash, params.offset + i);
  out[i] = select(0u, x[i], u < params.threshold);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn keep_ranked(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
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

// Sign and support counts across up to 16 tensors of one shape (analysis: overlap, consensus and
// sign conflicts of task vectors or of the entries a sparsifier kept).
//
// sign_codes:  one dispatch per tensor i (i = params.model) and chunk: codes[e] |= bit i when x[e] is
//              positive, bit 16 + i when negative (flipped when params.flip != 0). Signs come from the
//              bits, so subnormals count and are never flushed: ±0 and NaN set nothing.
//              codes starts zeroed (a fresh buffer), so after N dispatches it holds every sign.
// sign_counts: one dispatch per chunk over the finished codes. Per entry with pos = code & 0xffff,
//              neg = code >> 16, nz = pos | neg and c = popcount(nz) (c = 0 entries add nothing; the
//              host derives consensus[0] = numel - Σ consensus[c > 0]):
//                nonzero[i]         += 1 for each i in nz
//                unique[i]          += 1 when nz = {i}
//                consensus[c]       += 1
//                conflict_all       += 1 when pos != 0 and neg != 0
//                pair_both[p(i,j)]  += 1 for i < j both in nz
//                pair_conflict[p]   += 1 when moreover their pos bits differ (opposite signs)
//              with p(i, j) = i·N − i(i+1)/2 + (j − i − 1). Counter layout (3N + 2 + 2P of them,
//              P = N(N−1)/2, at most 290 for N = 16):
//                [0, N) nonzero · [N, 2N) unique · [2N, 3N] consensus 0..N · 3N+1 conflict_all ·
//                [3N+2, 3N+2+P) pair_both · [3N+2+P, 3N+2+2P) pair_conflict
//              Each workgroup counts its block of BLOCK = 4096 entries in workgroup atomics, then
//              adds its nonzero counters to the global ones (the host reads them back after the last
//              chunk; per-tensor counts stay below 2^32 because tensors do).
//
// Dispatch: sign_codes one thread per element, ceil(n / 256) workgroups; sign_counts one workgroup
// per BLOCK entries, ceil(n / 4096) workgroups (both on a 2-D grid above
// maxComputeWorkgroupsPerDimension; threads and blocks past n do nothing).

// Elements per workgroup (the host passes ANALYSIS_BLOCK).
override BLOCK: u32 = 4096u;
const MAX_COUNTERS: u32 = 290u;

struct Params {
  n: u32,         // elements in this chunk
  model: u32,     // sign_codes: which tensor (bit) this dispatch writes
  flip: u32,      // sign_codes: 1 = count this tensor's signs flipped
  models: u32,    // sign_counts: N
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> codes: array<u32>;
@group(0) @binding(3) var<storage, read> codes_in: array<u32>;
@group(0) @binding(4) var<storage, read_write> counters: array<atomic<u32>>;

var<workgroup> local_counts: array<atomic<u32>, MAX_COUNTERS>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn sign_codes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  let bits = x[i];
  let magnitude = bits & 0x7fffffffu;
  // ±0 and NaN have no sign.
  var mark = 0u;
  if (magnitude != 0u && magnitude <= 0x7f800000u) {
    let negative = ((bits >> 31u) ^ (params.flip & 1u)) == 1u;
    mark = 1u << select(params.model, 16u + params.model, negative);
  }
  // Tensor 0 overwrites, so one codes buffer serves every chunk without clearing.
  let before = select(codes[i], 0u, params.model == 0u);
  codes[i] = before | mark;
}

fn pair_index(i: u32, j: u32, n: u32) -> u32 {
  return i * n - (i * (i + 1u)) / 2u + (j - i - 1u);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sign_counts(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let n_models = params.models;
  let pairs = n_models * (n_models - 1u) / 2u;
  let total = 3u * n_models + 2u + 2u * pairs;
  for (var k = lid; k < total; k = k + WORKGROUP_SIZE) {
    atomicStore(&local_counts[k], 0u);
  }
  workgroupBarrier();

  let start = workgroup_index(wid, nwg) * BLOCK;
  let end = min(start + BLOCK, params.n);
  let both_at = 3u * n_models + 2u;
  let conflict_at = both_at + pairs;
  for (var e = start + lid; e < end; e = e + WORKGROUP_SIZE) {
    let code = codes_in[e];
    let pos = code & 0xffffu;
    let neg = code >> 16u;
    let nz = pos | neg;
    if (nz == 0u) {
      continue;
    }
    let c = countOneBits(nz);
    atomicAdd(&local_counts[2u * n_models + c], 1u);
    if (c == 1u) {
      atomicAdd(&local_counts[n_models + firstTrailingBit(nz)], 1u);
    }
    if (pos != 0u && neg != 0u) {
      atomicAdd(&local_counts[3u * n_models + 1u], 1u);
    }
    var rest = nz;
    loop {
      if (rest == 0u) {
        break;
      }
      let a = firstTrailingBit(rest);
      rest = rest & (rest - 1u);
      atomicAdd(&local_counts[a], 1u);
      var others = rest;
      loop {
        if (others == 0u) {
          break;
        }
        let b = firstTrailingBit(others);
        others = others & (others - 1u);
        let p = pair_index(a, b, n_models);
        atomicAdd(&local_counts[both_at + p], 1u);
        if ((((pos >> a) ^ (pos >> b)) & 1u) != 0u) {
          atomicAdd(&local_counts[conflict_at + p], 1u);
        }
      }
    }
  }
  workgroupBarrier();

  for (var k = lid; k < total; k = k + WORKGROUP_SIZE) {
    let v = atomicLoad(&local_counts[k]);
    if (v != 0u) {
      atomicAdd(&counters[k], v);
    }
  }
}

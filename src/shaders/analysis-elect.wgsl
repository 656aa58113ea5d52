// Per-model norms of a TIES merge's elected contributions (analysis: each model's share of the
// merged delta). With total = Σ wd_k (the host computes it with the lincomb kernel, in model
// order, like the CPU reference):
//   majority = +1 if total >= 0 else −1;  m_k = (wd_k > 0 and majority > 0) or (wd_k < 0 and majority < 0)
//   d = Σ w_k·m_k (0 → 1) when normalize, else 1;  contribution_k = wd_k·m_k / d
//
// elect_divisor: one dispatch per model k, in model order: divisor[e] += w_k where m_k (model 0
//                starts the sum from zero; the f32 sum is in the CPU reference's order).
// elect_norms:   one dispatch per model k: workgroup w writes Σ contribution_k² over its BLOCK of
//                4096 entries to partials[w]; the host adds the partials in f64.
//
// Dispatch: elect_divisor one thread per element, ceil(n / 256) workgroups; elect_norms one
// workgroup per BLOCK, ceil(n / 4096) workgroups (both on a 2-D grid above
// maxComputeWorkgroupsPerDimension; threads past n return, blocks past n write nothing).

// Elements per workgroup (the host passes ANALYSIS_BLOCK).
override BLOCK: u32 = 4096u;

struct Params {
  n: u32,           // elements in this chunk
  normalize: u32,
  weight: f32,      // elect_divisor: w_k
  first: u32,       // elect_divisor: 1 for model 0 (overwrite instead of add)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> total: array<f32>;
@group(0) @binding(2) var<storage, read> wd: array<f32>;
@group(0) @binding(3) var<storage, read_write> divisor: array<f32>;
@group(0) @binding(4) var<storage, read> divisor_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;

var<workgroup> sums: array<f32, WORKGROUP_SIZE>;

fn agrees(v: f32, majority_positive: bool) -> bool {
  return (majority_positive && v > 0.0) || (!majority_positive && v < 0.0);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn elect_divisor(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  // The first model starts the sum, so one divisor buffer serves every chunk without clearing.
  var d = select(divisor[i], 0.0, params.first != 0u);
  if (agrees(wd[i], total[i] >= 0.0)) {
    d = d + params.weight;
  }
  divisor[i] = d;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn elect_norms(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let w = workgroup_index(wid, nwg);
  let start = w * BLOCK;
  let end = min(start + BLOCK, params.n);
  var acc = 0.0;
  for (var e = start + lid; e < end; e = e + WORKGROUP_SIZE) {
    let v = wd[e];
    if (agrees(v, total[e] >= 0.0)) {
      var c = v;
      if (params.normalize != 0u) {
        var d = divisor_in[e];
        if (d == 0.0) {
          d = 1.0;
        }
        c = v / d;
      }
      acc = acc + c * c;
    }
  }
  sums[lid] = acc;
  workgroupBarrier();
  for (var s = WORKGROUP_SIZE / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      sums[lid] = sums[lid] + sums[lid + s];
    }
    workgroupBarrier();
  }
  if (lid == 0u && start < params.n) {
    partials[w] = sums[0];
  }
}

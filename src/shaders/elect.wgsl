// TIES sign election over weighted deltas wd_k (the CPU reference's order and f32 rounding):
//   total = Σ wd_k;  majority = +1 if total >= 0 else -1
//   m_k = (wd_k > 0 and majority > 0) or (wd_k < 0 and majority < 0)   (zero and NaN never match)
//   mixed = Σ wd_k·m_k;  divisor = Σ w_k·m_k;  out = normalize ? mixed / (divisor == 0 ? 1 : divisor) : mixed
//
// elect_fused: up to 4 tensors in one pass (x0..x3, weights in w).
// For more tensors the host first computes total with the lincomb kernel, then:
//   elect_accumulate: adds the votes of up to 4 tensors at a time into out (mixed) and divisor
//                     (both start at zero),
//   elect_finish:     divides out by divisor when normalize.
//
// Dispatch: one thread per element of the chunk, ceil(n / 256) workgroups (2-D grid above
// maxComputeWorkgroupsPerDimension; threads past n return). Unused x slots are bound to x0.

struct Params {
  n: u32,          // elements in this chunk
  count: u32,      // tensors in this dispatch, 1..4
  normalize: u32,
  w: vec4<f32>,    // their weights
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> total: array<f32>;
@group(0) @binding(2) var<storage, read> x0: array<f32>;
@group(0) @binding(3) var<storage, read> x1: array<f32>;
@group(0) @binding(4) var<storage, read> x2: array<f32>;
@group(0) @binding(5) var<storage, read> x3: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> divisor: array<f32>;

fn wd(k: u32, i: u32) -> f32 {
  switch k {
    case 0u: { return x0[i]; }
    case 1u: { return x1[i]; }
    case 2u: { return x2[i]; }
    default: { return x3[i]; }
  }
}

fn agrees(v: f32, majority_positive: bool) -> bool {
  return (majority_positive && v > 0.0) || (!majority_positive && v < 0.0);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn elect_fused(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  var sum = 0.0;
  for (var k = 0u; k < params.count; k = k + 1u) {
    sum = sum + wd(k, i);
  }
  let positive = sum >= 0.0;
  var mixed = 0.0;
  var div = 0.0;
  for (var k = 0u; k < params.count; k = k + 1u) {
    let v = wd(k, i);
    if (agrees(v, positive)) {
      mixed = mixed + v;
      div = div + params.w[k];
    }
  }
  if (params.normalize != 0u) {
    if (div == 0.0) {
      div = 1.0;
    }
    mixed = mixed / div;
  }
  out[i] = mixed;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn elect_accumulate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  let positive = total[i] >= 0.0;
  var mixed = out[i];
  var div = divisor[i];
  for (var k = 0u; k < params.count; k = k + 1u) {
    let v = wd(k, i);
    if (agrees(v, positive)) {
      mixed = mixed + v;
      div = div + params.w[k];
    }
  }
  out[i] = mixed;
  divisor[i] = div;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn elect_finish(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  var div = divisor[i];
  if (div == 0.0) {
    div = 1.0;
  }
  out[i] = out[i] / div;
}

// Elementwise f32 arithmetic over one chunk of equally shaped tensors.
//
// lincomb: out = Σ_t coef(t, row) · x_t (+ bias), up to 4 terms per dispatch. More terms run as
//   several dispatches: the first writes out, the next ones add to it (accumulate = 1), the last
//   adds the bias (add_bias = 1) and, for lincombRounded, rounds the sum to BF16/F16 (round_to =
//   1 / 2; round_to_dtype from float16.wgsl, composed before this file). The sum runs term by term
//   from the first, in f32, in the same order as the CPU reference. coef(t, row) =
//   coefs[t * coef_stride + row], row = global row of the element when coef_stride > 1 (per-row
//   coefficients), else coefs[t].
// nearswap: w = clamp(t / max(|b - x|, 1e-6), 0, 1); out = w·x + (1 - w)·b  (x0 = b, x1 = x).
// abs_at_least: out = 1 where |x0| >= t·|x1| else 0 (TALL masks, count thresholds).
// multiply: out = x0 · x1.
// divide_at_least: out = x0 / max(x1, t).
// exp_affine: out = exp(scale·(x0 − shift) + bias), each step rounded to f32 (PCB's softmax terms).
// ramp_above: out = max(x0 − shift, 0) · scale (PCB's drop weights; shift = the threshold).
//
// Dispatch: one thread per element of the chunk, ceil(n / 256) workgroups (2-D grid above
// maxComputeWorkgroupsPerDimension; threads past n return). Unused x slots are bound to x0.

struct Params {
  n: u32,            // elements in this chunk
  offset: u32,       // global index of the chunk's first element
  row_len: u32,      // elements per row (per-row coefficients)
  coef_stride: u32,  // 1 (scalar coefficients) or the tensor's row count
  count: u32,        // terms in this dispatch, 1..4
  accumulate: u32,   // 1: add to out instead of overwriting it
  add_bias: u32,     // 1: add bias after the terms
  bias: f32,
  t: f32,            // nearswap, abs_at_least, divide_at_least
  shift: f32,        // exp_affine, ramp_above
  scale: f32,        // exp_affine, ramp_above
  round_to: u32,     // lincomb: 0 keep f32, 1 round to BF16, 2 round to F16 (last dispatch only)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> coefs: array<f32>;
@group(0) @binding(2) var<storage, read> x0: array<f32>;
@group(0) @binding(3) var<storage, read> x1: array<f32>;
@group(0) @binding(4) var<storage, read> x2: array<f32>;
@group(0) @binding(5) var<storage, read> x3: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

fn term(t: u32, i: u32, row: u32) -> f32 {
  let c = coefs[t * params.coef_stride + row];
  switch t {
    case 0u: { return c * x0[i]; }
    case 1u: { return c * x1[i]; }
    case 2u: { return c * x2[i]; }
    default: { return c * x3[i]; }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn lincomb(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  var row = 0u;
  if (params.coef_stride > 1u) {
    row = (params.offset + i) / params.row_len;
  }
  var acc: f32;
  var first = 0u;
  if (params.accumulate != 0u) {
    acc = out[i];
  } else {
    acc = term(0u, i, row);
    first = 1u;
  }
  for (var t = first; t < params.count; t = t + 1u) {
    acc = acc + term(t, i, row);
  }
  if (params.add_bias != 0u) {
    acc = acc + params.bias;
  }
  out[i] = round_to_dtype(acc, params.round_to);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn nearswap(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  let b = x0[i];
  let x = x1[i];
  let dist = max(abs(b - x), 1e-6);
  let w = clamp(params.t / dist, 0.0, 1.0);
  out[i] = w * x + (1.0 - w) * b;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn abs_at_least(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  out[i] = select(0.0, 1.0, abs(x0[i]) >= params.t * abs(x1[i]));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn multiply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  out[i] = x0[i] * x1[i];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn divide_at_least(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  out[i] = x0[i] / max(x1[i], params.t);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn exp_affine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  let centred = x0[i] - params.shift;
  let scaled = centred * params.scale;
  out[i] = exp(scaled + params.bias);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn ramp_above(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  out[i] = max(x0[i] - params.shift, 0.0) * params.scale;
}

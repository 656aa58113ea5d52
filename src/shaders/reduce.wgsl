// Partial sums for dot products (gram, gramRows) and L1 norms (sumAbs), combined on the host in f64;
// and per-block extremes (minMax): min_max_partials writes the pair (min, max) of its block to
// partials[2w], partials[2w + 1] (NaN skipped; +Inf, −Inf for a block without numbers).
//
// The tensor is cut into blocks that never straddle a row: block k of row r covers the global
// elements [r·row_len + k·block_len, min(r·row_len + (k+1)·block_len, (r+1)·row_len)), and global
// block id = r·blocks_per_row + k. (For whole-tensor sums the host passes row_len = numel.)
// A chunk holds the global elements [offset, offset + n); workgroup w of a dispatch handles global
// block first_block + w, clipped to the chunk, and writes its f32 sum to partials[w]. The host knows
// each block's row, so it adds partials of the same row across workgroups and chunks in f64.
//
// In a workgroup each of the 256 threads sums a strided slice of the block (block_len / 256
// elements, 16 for the usual 4096), then a tree reduction in workgroup memory adds the 256 sums.
//
// Dispatch: one workgroup per block touching the chunk (count of them, 2-D grid above
// maxComputeWorkgroupsPerDimension; workgroups past count write nothing).
//
// Softmax KL per row (softmaxKlRows, arcee_fusion's importance), over the same row blocks:
//   softmax_partials: per block its max m and Σ exp(a − m) (2 values; the host combines the blocks
//     of a row into the row's log-sum-exp in f64);
//   kl_partials:      Σ Q·φ(w) with the row's (c, aq, ap) = rows[3·row ..]: d = (a − b) − c is
//     log p − log q, q = exp(b − aq), p = exp(a − ap), Q = q + eps, w = (p − q)/Q and
//     φ(w) = (1 + w)·ln(1 + w) − w ≥ 0. Σ_j Q_j·φ(w_j) equals Σ P log(P/Q) (P = p + eps) because
//     Σ P = Σ Q, and its terms are never negative: no cancellation between near-equal rows.
//     Small d and w use series (expm1, φ), large ones the direct forms P·ln(P/Q) − (p − q).

//
// L1 rescale on the device (rescaleL1, DARE/DELLA): abs_partials writes the block sums of Σ|reference|
// to partials[0 .. split) and of Σ|x| to partials[split .. n) (padding slots zeroed), then
//   l1_rescale_factor: one workgroup; each thread adds a strided slice of each range with Kahan
//     compensation, a tree of two-sums adds the 256 (sum, error) pairs, and thread 0 writes
//     factor[0] = before / after, or 1 when either sum is below eps or NaN (l1RescaleFactor in
//     reduce.ts is the same rule). Dispatch: 1 workgroup.
//   scale_by_factor: out[i] = a[i] · factor[0], one thread per element (ceil(n / 256) workgroups).

struct Params {
  n: u32,               // elements in this chunk (l1_rescale_factor: partial sums in all)
  offset: u32,          // global index of the chunk's first element
  row_len: u32,
  block_len: u32,
  first_block: u32,     // global block id of the block holding the chunk's first element
  blocks_per_row: u32,  // ceil(row_len / block_len)
  count: u32,           // workgroups (blocks) in this dispatch
  eps: f32,             // kl_partials: added to both softmaxes; l1_rescale_factor: the norm floor
  split: u32,           // l1_rescale_factor: first partial sum of the second norm
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
@group(0) @binding(4) var<storage, read> rows: array<f32>;
@group(0) @binding(5) var<storage, read_write> factor: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

var<workgroup> sums: array<f32, WORKGROUP_SIZE>;

// The chunk-local range [x, y) of this workgroup's block (empty past count).
fn block_range(w: u32) -> vec2<u32> {
  if (w >= params.count) {
    return vec2<u32>(0u, 0u);
  }
  let gb = params.first_block + w;
  let row = gb / params.blocks_per_row;
  let k = gb % params.blocks_per_row;
  let row_start = row * params.row_len;
  let lo = row_start + k * params.block_len;
  let hi = min(lo + params.block_len, row_start + params.row_len);
  let x = max(lo, params.offset) - params.offset;
  let y = min(hi, params.offset + params.n) - params.offset;
  return vec2<u32>(x, max(x, y));
}

// The workgroup's sum of every thread's `acc` (tree reduction in `sums`), for every thread.
fn workgroup_sum(lid: u32, acc: f32) -> f32 {
  sums[lid] = acc;
  workgroupBarrier();
  for (var s = WORKGROUP_SIZE / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      sums[lid] = sums[lid] + sums[lid + s];
    }
    workgroupBarrier();
  }
  return sums[0];
}

fn finish(w: u32, lid: u32, acc: f32) {
  let total = workgroup_sum(lid, acc);
  if (lid == 0u && w < params.count) {
    partials[w] = total;
  }
}

// +Inf and −Inf, the extremes of an empty range. Built from a runtime value: an infinite
// const-expression is a shader-creation error.
fn pos_inf() -> f32 {
  return bitcast<f32>(0x7f800000u | (params.count & 0u));
}

fn neg_inf() -> f32 {
  return bitcast<f32>(0xff800000u | (params.count & 0u));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn dot_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let w = workgroup_index(wid, nwg);
  let r = block_range(w);
  var acc = 0.0;
  for (var i = r.x + lid; i < r.y; i = i + WORKGROUP_SIZE) {
    acc = acc + a[i] * b[i];
  }
  finish(w, lid, acc);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn abs_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let w = workgroup_index(wid, nwg);
  let r = block_range(w);
  var acc = 0.0;
  for (var i = r.x + lid; i < r.y; i = i + WORKGROUP_SIZE) {
    acc = acc + abs(a[i]);
  }
  finish(w, lid, acc);
}

var<workgroup> lows: array<f32, WORKGROUP_SIZE>;
var<workgroup> highs: array<f32, WORKGROUP_SIZE>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn min_max_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let w = workgroup_index(wid, nwg);
  let r = block_range(w);
  var lo = pos_inf();
  var hi = neg_inf();
  for (var i = r.x + lid; i < r.y; i = i + WORKGROUP_SIZE) {
    let v = a[i];
    // NaN compares false both ways: never taken.
    if (v < lo) {
      lo = v;
    }
    if (v > hi) {
      hi = v;
    }
  }
  lows[lid] = lo;
  highs[lid] = hi;
  workgroupBarrier();
  for (var s = WORKGROUP_SIZE / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      lows[lid] = min(lows[lid], lows[lid + s]);
      highs[lid] = max(highs[lid], highs[lid + s]);
    }
    workgroupBarrier();
  }
  if (lid == 0u && w < params.count) {
    partials[2u * w] = lows[0];
    partials[2u * w + 1u] = highs[0];
  }
}

// The row of this workgroup's block (blocks never straddle a row).
fn block_row(w: u32) -> u32 {
  return (params.first_block + w) / params.blocks_per_row;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn softmax_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let w = workgroup_index(wid, nwg);
  let r = block_range(w);
  var hi = neg_inf();
  for (var i = r.x + lid; i < r.y; i = i + WORKGROUP_SIZE) {
    hi = max(hi, a[i]);
  }
  highs[lid] = hi;
  workgroupBarrier();
  for (var s = WORKGROUP_SIZE / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      highs[lid] = max(highs[lid], highs[lid + s]);
    }
    workgroupBarrier();
  }
  let m = highs[0];
  var acc = 0.0;
  for (var i = r.x + lid; i < r.y; i = i + WORKGROUP_SIZE) {
    acc = acc + exp(a[i] - m);
  }
  let total = workgroup_sum(lid, acc);
  if (lid == 0u && w < params.count) {
    partials[2u * w] = m;
    partials[2u * w + 1u] = total;
  }
}

// e^d − 1 without the cancellation of exp(d) − 1 for small d (Taylor to d^7 below 0.1).
fn expm1_small(d: f32) -> f32 {
  return d * (1.0 + d * (1.0 / 2.0 + d * (1.0 / 6.0 + d * (1.0 / 24.0 + d * (1.0 / 120.0 + d * (1.0 / 720.0 + d * (1.0 / 5040.0)))))));
}

// φ(w) = (1 + w)·ln(1 + w) − w = Σ_{k≥2} (−1)^k w^k / (k(k−1)), for |w| < 0.3 (terms to k = 14).
fn phi_small(w: f32) -> f32 {
  var s = 0.0;
  for (var k = 14u; k >= 2u; k = k - 1u) {
    let kf = f32(k);
    var c = 1.0 / (kf * (kf - 1.0));
    if ((k & 1u) == 1u) {
      c = -c;
    }
    s = s * w + c;
  }
  return s * w * w;
}

// One entry's Q·φ(w) (see the header) with its row's constants (c, aq, ap).
fn kl_term(x: f32, y: f32, c: f32, aq: f32, ap: f32) -> f32 {
  let d = (x - y) - c;
  let q = exp(y - aq);
  let big_q = q + params.eps;
  var diff: f32;
  if (abs(d) < 0.1) {
    diff = q * expm1_small(d);
  } else {
    diff = exp(x - ap) - q;
  }
  let wv = diff / big_q;
  if (abs(wv) < 0.3) {
    return big_q * phi_small(wv);
  }
  let big_p = big_q + diff;
  return big_p * log(big_p / big_q) - diff;
}

// The (c, aq, ap) of the row of this workgroup's (or thread's) block.
fn kl_row_constants(w: u32) -> vec3<f32> {
  let row = block_row(w);
  return vec3<f32>(rows[3u * row], rows[3u * row + 1u], rows[3u * row + 2u]);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn kl_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let w = workgroup_index(wid, nwg);
  let r = block_range(w);
  var acc = 0.0;
  if (r.y > r.x) {
    let k = kl_row_constants(w);
    for (var i = r.x + lid; i < r.y; i = i + WORKGROUP_SIZE) {
      acc = acc + kl_term(a[i], b[i], k.x, k.y, k.z);
    }
  }
  finish(w, lid, acc);
}

// The same two passes with one thread per block, for short rows (blocks of at most 256 entries):
// no workgroup reduction, WORKGROUP_SIZE blocks per workgroup. Dispatch: ceil(count / 256) workgroups.
@compute @workgroup_size(WORKGROUP_SIZE)
fn softmax_partials_serial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
  let w = global_index(wid, nwg, lid);
  if (w >= params.count) {
    return;
  }
  let r = block_range(w);
  var m = neg_inf();
  for (var i = r.x; i < r.y; i = i + 1u) {
    m = max(m, a[i]);
  }
  var acc = 0.0;
  for (var i = r.x; i < r.y; i = i + 1u) {
    acc = acc + exp(a[i] - m);
  }
  partials[2u * w] = m;
  partials[2u * w + 1u] = acc;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn kl_partials_serial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
  let w = global_index(wid, nwg, lid);
  if (w >= params.count) {
    return;
  }
  let r = block_range(w);
  let k = kl_row_constants(w);
  var acc = 0.0;
  for (var i = r.x; i < r.y; i = i + 1u) {
    acc = acc + kl_term(a[i], b[i], k.x, k.y, k.z);
  }
  partials[w] = acc;
}

// Error-free sum: a + b = s + e exactly (Knuth's two-sum; needs IEEE f32 addition, no reassociation).
fn two_sum(a: f32, b: f32) -> vec2<f32> {
  let s = a + b;
  let bb = s - a;
  return vec2<f32>(s, (a - (s - bb)) + (b - bb));
}

// (sum, error) of partials[first .. end) over this thread's strided slice, Kahan-compensated.
fn compensated_slice(first: u32, end: u32, lid: u32) -> vec2<f32> {
  var acc = vec2<f32>(0.0, 0.0);
  for (var i = first + lid; i < end; i = i + WORKGROUP_SIZE) {
    let t = two_sum(acc.x, partials[i]);
    acc = vec2<f32>(t.x, acc.y + t.y);
  }
  return acc;
}

var<workgroup> pair_sums: array<vec4<f32>, WORKGROUP_SIZE>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn l1_rescale_factor(@builtin(local_invocation_index) lid: u32) {
  pair_sums[lid] = vec4<f32>(compensated_slice(0u, params.split, lid), compensated_slice(params.split, params.n, lid));
  workgroupBarrier();
  for (var s = WORKGROUP_SIZE / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      let p = pair_sums[lid];
      let q = pair_sums[lid + s];
      let before = two_sum(p.x, q.x);
      let after = two_sum(p.z, q.z);
      pair_sums[lid] = vec4<f32>(before.x, before.y + p.y + q.y, after.x, after.y + p.w + q.w);
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let total = pair_sums[0];
    let before = total.x + total.y;
    let after = total.z + total.w;
    // NaN fails both comparisons: factor 1, as the reference.
    factor[0] = select(1.0, before / after, before >= params.eps && after >= params.eps);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn scale_by_factor(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  out[i] = a[i] * factor[0];
}

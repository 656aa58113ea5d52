// The non-matmul kernels of a Llama-family transformer (src/gpu/ops/model.ts), over row-major f32
// activations [rows, row_len] where each bound buffer holds whole rows. The host cuts multi-chunk
// tensors into per-chunk dispatches and passes, per chunk, the global row of its first row (x_row0,
// out_row0); weights, tables, keys and values are bound whole (one chunk each).
//
// rms_norm: out[r, j] = w[j] · (x[r, j] · inverseSqrt(Σ_j x[r, j]² / row_len + eps)).
//
// The three row reductions (rms_norm, argmax_rows, log_softmax_at) come in two forms: `*_wide`
// runs one workgroup of ROW_THREADS threads per row (each thread reduces a strided slice in f32,
// then a tree reduction in workgroup memory combines the ROW_THREADS partials; `rows` workgroups),
// for long rows (vocabularies); the plain form runs one thread per row (a sequential f32 loop, no
// barriers: software adapters pay dearly for those; ceil(rows / 256) workgroups), for short rows.
// The host picks by row length (WIDE_ROW in model.ts). Both give the same values up to summation
// order.
// rope: rotary embeddings, "rotate_half" convention, on `heads` heads of head_dim = 2·half per row:
//   (a, b) = (x[p], x[p + half]) of a head → (a·cos − b·sin, b·cos + a·sin), with cos = w[pos, p],
//   sin = w[pos, half + p] from the host's table [positions, head_dim] and pos = pos_offset +
//   (global row mod seq_len). One thread per (row, head, p < half): n = rows·heads·half threads.
// attention: causal softmax attention with grouped KV heads. Rows of x are queries [batch·seq_len,
//   heads·head_dim]; y and z are keys and values [batch·keys, kv_heads·head_dim] (the cache: the
//   first keys − seq_len positions of a sequence precede its queries). Query t of sequence b, head
//   h, reads kv head h / group and keys 0 ..= keys − seq_len + t:
//   s_j = scale·(q·k_j); out = Σ_j exp(s_j − max s)·v_j / Σ_j exp(s_j − max s), all f32.
//   One thread per (row, head), two passes over the keys (the max, then exponentials and the
//   weighted sum in a private accumulator of head_dim ≤ MAX_HEAD_DIM). n = rows·heads threads.
// swiglu: out[i] = silu(x[i])·y[i], silu(g) = g / (1 + exp(−g)). One thread per element.
// add_rows: out[i] = x[i] + w[(offset + i) mod row_len] (a bias on every row). One per element.
// argmax_rows: out[r] = the first j of the largest x[r, j] (NaN skipped where the compiler keeps
//   v == v; -1 when the row has no number), as f32. Wide form: a tree reduction of (value, index)
//   pairs.
// log_softmax_at: out[r] = (x[r, t] − m) − log(Σ_j exp(x[r, j] − m)), m = max_j x[r, j],
//   t = idx[r]. Wide form: a tree reduction for m, another for the sum.

struct Params {
  n: u32,           // threads doing work in this dispatch (per-thread kernels)
  offset: u32,      // add_rows: global element index of the chunk's first element
  row_len: u32,     // elements per row of x (and out, except for argmax_rows/log_softmax_at)
  rows: u32,        // row kernels: rows (workgroups) in this dispatch
  first_row: u32,   // row kernels: global row handled by workgroup 0
  x_row0: u32,      // global row of the bound x chunk's first row
  out_row0: u32,    // argmax_rows, log_softmax_at: global row of the bound out chunk's first element
  heads: u32,       // rope, attention: query heads per row
  half: u32,        // rope: head_dim / 2
  head_dim: u32,    // attention
  group: u32,       // attention: query heads per kv head
  kv_row_len: u32,  // attention: elements per row of keys and values
  seq_len: u32,     // rope, attention: rows per sequence in x
  keys: u32,        // attention: key rows per sequence
  pos_offset: u32,  // rope: position of each sequence's first row
  eps: f32,         // rms_norm
  scale: f32,       // attention: 1/sqrt(head_dim)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> z: array<f32>;
@group(0) @binding(4) var<storage, read> w: array<f32>;
@group(0) @binding(5) var<storage, read> idx: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

override ROW_THREADS: u32 = 64u;
const MAX_HEAD_DIM: u32 = 256u;
const NO_INDEX: u32 = 0xffffffffu;

var<workgroup> red: array<f32, ROW_THREADS>;
var<workgroup> red_index: array<u32, ROW_THREADS>;

// Tree sum of red[0..ROW_THREADS) into red[0] (ROW_THREADS is a power of two).
fn reduce_sum(lid: u32) {
  workgroupBarrier();
  for (var s = ROW_THREADS / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      red[lid] = red[lid] + red[lid + s];
    }
    workgroupBarrier();
  }
}

// Tree max of red[0..ROW_THREADS) into red[0].
fn reduce_max(lid: u32) {
  workgroupBarrier();
  for (var s = ROW_THREADS / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      red[lid] = max(red[lid], red[lid + s]);
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.rows) {
    return;
  }
  let base = (params.first_row + i - params.x_row0) * params.row_len;
  var acc = 0.0;
  for (var j = 0u; j < params.row_len; j = j + 1u) {
    let v = x[base + j];
    acc = acc + v * v;
  }
  let r = inverseSqrt(acc / f32(params.row_len) + params.eps);
  for (var j = 0u; j < params.row_len; j = j + 1u) {
    out[base + j] = w[j] * (x[base + j] * r);
  }
}

@compute @workgroup_size(ROW_THREADS)
fn rms_norm_wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let wg = workgroup_index(wid, nwg);
  if (wg >= params.rows) {
    return;  // uniform per workgroup: the barriers below are still reached by all or none
  }
  let base = (params.first_row + wg - params.x_row0) * params.row_len;
  var acc = 0.0;
  for (var j = lid; j < params.row_len; j = j + ROW_THREADS) {
    let v = x[base + j];
    acc = acc + v * v;
  }
  red[lid] = acc;
  reduce_sum(lid);
  let r = inverseSqrt(red[0] / f32(params.row_len) + params.eps);
  for (var j = lid; j < params.row_len; j = j + ROW_THREADS) {
    out[base + j] = w[j] * (x[base + j] * r);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  let per_row = params.heads * params.half;
  let local_row = i / per_row;
  let h = (i % per_row) / params.half;
  let p = i % params.half;
  let pos = params.pos_offset + (params.x_row0 + local_row) % params.seq_len;
  let head_dim = 2u * params.half;
  let at = local_row * params.row_len + h * head_dim + p;
  let c = w[pos * head_dim + p];
  let s = w[pos * head_dim + params.half + p];
  let a = x[at];
  let b = x[at + params.half];
  out[at] = a * c - b * s;
  out[at + params.half] = b * c + a * s;
}

fn score(q_at: u32, k_at: u32) -> f32 {
  var dot = 0.0;
  for (var d = 0u; d < params.head_dim; d = d + 1u) {
    dot = dot + x[q_at + d] * y[k_at + d];
  }
  return dot * params.scale;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn attention(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  let local_row = i / params.heads;
  let h = i % params.heads;
  let row = params.x_row0 + local_row;
  let b = row / params.seq_len;
  let t = row % params.seq_len;
  let last = params.keys - params.seq_len + t;  // the query's own position
  let q_at = local_row * params.row_len + h * params.head_dim;
  let kv_col = (h / params.group) * params.head_dim;
  let k0 = b * params.keys;
  var m = score(q_at, k0 * params.kv_row_len + kv_col);
  for (var j = 1u; j <= last; j = j + 1u) {
    m = max(m, score(q_at, (k0 + j) * params.kv_row_len + kv_col));
  }
  var acc: array<f32, MAX_HEAD_DIM>;
  for (var d = 0u; d < params.head_dim; d = d + 1u) {
    acc[d] = 0.0;
  }
  var l = 0.0;
  for (var j = 0u; j <= last; j = j + 1u) {
    let at = (k0 + j) * params.kv_row_len + kv_col;
    let p = exp(score(q_at, at) - m);
    l = l + p;
    for (var d = 0u; d < params.head_dim; d = d + 1u) {
      acc[d] = acc[d] + p * z[at + d];
    }
  }
  for (var d = 0u; d < params.head_dim; d = d + 1u) {
    out[q_at + d] = acc[d] / l;
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn swiglu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  let g = x[i];
  out[i] = (g / (1.0 + exp(-g))) * y[i];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn add_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  out[i] = x[i] + w[(params.offset + i) % params.row_len];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn argmax_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.rows) {
    return;
  }
  let row = params.first_row + i;
  let base = (row - params.x_row0) * params.row_len;
  var best = 0.0;
  var best_j = NO_INDEX;
  for (var j = 0u; j < params.row_len; j = j + 1u) {
    let v = x[base + j];
    if (v == v && (best_j == NO_INDEX || v > best)) {
      best = v;
      best_j = j;
    }
  }
  out[row - params.out_row0] = select(f32(best_j), -1.0, best_j == NO_INDEX);
}

@compute @workgroup_size(ROW_THREADS)
fn argmax_rows_wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let wg = workgroup_index(wid, nwg);
  if (wg >= params.rows) {
    return;
  }
  let row = params.first_row + wg;
  let base = (row - params.x_row0) * params.row_len;
  var best = 0.0;
  var best_j = NO_INDEX;
  for (var j = lid; j < params.row_len; j = j + ROW_THREADS) {
    let v = x[base + j];
    if (v == v && (best_j == NO_INDEX || v > best)) {
      best = v;
      best_j = j;
    }
  }
  red[lid] = best;
  red_index[lid] = best_j;
  workgroupBarrier();
  for (var s = ROW_THREADS / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      let v = red[lid + s];
      let j = red_index[lid + s];
      // Larger value wins; equal values: the smaller index; a thread without an index never wins.
      let mine = red_index[lid];
      if (j != NO_INDEX && (mine == NO_INDEX || v > red[lid] || (v == red[lid] && j < mine))) {
        red[lid] = v;
        red_index[lid] = j;
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    out[row - params.out_row0] = select(f32(red_index[0]), -1.0, red_index[0] == NO_INDEX);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn log_softmax_at(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.rows) {
    return;
  }
  let row = params.first_row + i;
  let base = (row - params.x_row0) * params.row_len;
  var m = x[base];
  for (var j = 1u; j < params.row_len; j = j + 1u) {
    m = max(m, x[base + j]);
  }
  var acc = 0.0;
  for (var j = 0u; j < params.row_len; j = j + 1u) {
    acc = acc + exp(x[base + j] - m);
  }
  out[row - params.out_row0] = (x[base + idx[row]] - m) - log(acc);
}

@compute @workgroup_size(ROW_THREADS)
fn log_softmax_at_wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let wg = workgroup_index(wid, nwg);
  if (wg >= params.rows) {
    return;
  }
  let row = params.first_row + wg;
  let base = (row - params.x_row0) * params.row_len;
  var m = x[base + min(lid, params.row_len - 1u)];
  for (var j = lid; j < params.row_len; j = j + ROW_THREADS) {
    m = max(m, x[base + j]);
  }
  red[lid] = m;
  reduce_max(lid);
  let row_max = red[0];
  workgroupBarrier();
  var acc = 0.0;
  for (var j = lid; j < params.row_len; j = j + ROW_THREADS) {
    acc = acc + exp(x[base + j] - row_max);
  }
  red[lid] = acc;
  reduce_sum(lid);
  if (lid == 0u) {
    out[row - params.out_row0] = (x[base + idx[row]] - row_max) - log(red[0]);
  }
}

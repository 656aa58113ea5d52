// Matrix kernels over row-major f32 blocks. Every kernel works on a block that lies inside one
// chunk buffer of each operand: the host (src/gpu/ops/linalg.ts) cuts a multi-chunk tensor into
// such blocks and passes each block's element offset inside its chunk and its row stride (ld).
//
// matmul: C = alpha·op(A)·op(B) for one block, op(X) = X or Xᵀ (trans_a, trans_b: uniform
//   flags, so one pipeline serves all four products). op(A)[i, p] = a[a_offset + i·lda + p], or
//   a[a_offset + p·lda + i] when trans_a; op(B)[p, j] = b[b_offset + p·ldb + j], or
//   b[b_offset + j·ldb + p] when trans_b.
//   mode 0 writes C = alpha·acc, mode 1 adds alpha·acc to C (a later reduction segment, when the
//   k range of the product spans several chunks), mode 2 writes alpha·acc + beta·D (the addend D
//   has C's layout, so it shares c_offset and ldc).
//   Tiling: a workgroup computes a TILE_M×TILE_N tile of C (override constants from the host);
//   its 256 threads form a (TILE_M/4)×(TILE_N/4) grid and thread (ty, tx) accumulates the 4×4
//   block at rows 4·ty.., columns 4·tx.. in four vec4 registers. The k range goes by TILE_K: the
//   workgroup stages an op(A) tile [TILE_K][TILE_M] and an op(B) tile [TILE_K][TILE_N] in
//   workgroup memory as vec4s (loads ordered along each operand's contiguous axis; out-of-range
//   elements are 0), then every thread does TILE_K rank-1 updates of its block, one vec4 of A and
//   one of B per step. Each output is one sequential f32 sum over p, so
//   |error| <= k·u·Σ_p |op(A)[i,p]|·|op(B)[p,j]| (u = 2^-24) plus the roundings of the scalings.
//   (On SwiftShader this vec4 form runs ~6x faster than scalar per-thread arrays.)
//   Workgroup memory: 4·TILE_K·(TILE_M + TILE_N) bytes (8 KiB for 64, 64, 16).
//   Dispatch: tiles = ceil(m / TILE_M)·ceil(n / TILE_N) workgroups (2-D grid above
//   maxComputeWorkgroupsPerDimension; workgroups past `tiles` return). TILE_M·TILE_N/16 must equal
//   WORKGROUP_SIZE (the host checks).
//
// transpose_block: dst[j, i] = src[i, j] for a rows×cols block of src. 16×16 tiles through
//   workgroup memory (padded rows against bank conflicts), so reads and writes both go along rows.
//   Dispatch: ceil(rows/16)·ceil(cols/16) workgroups of 256 threads.
// copy_block: dst[i, j] = src[i, j] for a rows×cols block (column slices and concatenation).
//   Dispatch: one thread per element, ceil(rows·cols / 256) workgroups.
// scale_columns: out[i] = x[i]·s[column of i] over one chunk (x and out share the layout);
//   column = (offset + i) mod row_len. One thread per element.
// add_diagonal: out[i] = scale·x[i], plus c where the element's row equals its column. One
//   thread per element of the chunk.
// column_dots: partial sums of a[i, j]·b[i, j] per column over blocks of block_rows rows, for
//   the rows that touch this chunk (whole rows or pieces of rows); elements outside the chunk
//   are skipped. Workgroup w: row block w / col_groups, columns (w mod col_groups)·256 + lid.
//   Partial (block, j) goes to partials[block·row_len + j]; the host adds the partials of a
//   column in f64. Dispatch: row_blocks·ceil(row_len / 256) workgroups.

struct Params {
  // matmul and block copies (copies: src = a_*, dst = c_*, block m×n)
  m: u32,
  n: u32,
  k: u32,          // matmul: reduction length of this segment
  a_offset: u32,   // element offsets inside the bound chunk, and row strides
  lda: u32,
  b_offset: u32,
  ldb: u32,
  c_offset: u32,
  ldc: u32,
  tiles_n: u32,    // workgroups per row of tiles (column_dots: column groups)
  tiles: u32,      // workgroups that do work
  mode: u32,       // matmul: 0 write, 1 accumulate, 2 add beta·addend
  trans_a: u32,    // matmul: 1 uses Aᵀ
  trans_b: u32,    // matmul: 1 uses Bᵀ
  alpha: f32,      // matmul scale; add_diagonal: scale of x
  beta: f32,       // matmul addend scale; add_diagonal: c
  // per-chunk kernels (scale_columns, add_diagonal, column_dots)
  numel: u32,      // elements in this chunk
  offset: u32,     // global index of the chunk's first element
  row_len: u32,    // elements per row
  first_row: u32,  // column_dots: global row of the chunk's first element
  rows: u32,       // column_dots: rows touching the chunk
  block_rows: u32, // column_dots: rows per partial sum
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> addend: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

override TILE_M: u32 = 64u;
override TILE_N: u32 = 64u;
override TILE_K: u32 = 16u;

// op(A) tile [TILE_K][TILE_M] and op(B) tile [TILE_K][TILE_N], four consecutive rows (columns)
// per vec4: thread (ty, tx) reads its 4 rows of A and 4 columns of B as one vec4 each.
var<workgroup> a_tile: array<vec4<f32>, TILE_K * TILE_M / 4u>;
var<workgroup> b_tile: array<vec4<f32>, TILE_K * TILE_N / 4u>;

fn load_a(i: u32, p: u32) -> f32 {
  if (params.trans_a != 0u) {
    return a[params.a_offset + p * params.lda + i];
  }
  return a[params.a_offset + i * params.lda + p];
}

fn load_b(p: u32, j: u32) -> f32 {
  if (params.trans_b != 0u) {
    return b[params.b_offset + j * params.ldb + p];
  }
  return b[params.b_offset + p * params.ldb + j];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let w = workgroup_index(wid, nwg);
  if (w >= params.tiles) {
    return;
  }
  let row0 = (w / params.tiles_n) * TILE_M;
  let col0 = (w % params.tiles_n) * TILE_N;
  let vm = TILE_M / 4u;
  let vn = TILE_N / 4u;
  let tx = lid % vn;
  let ty = lid / vn;
  var c0 = vec4<f32>();
  var c1 = vec4<f32>();
  var c2 = vec4<f32>();
  var c3 = vec4<f32>();
  for (var k0 = 0u; k0 < params.k; k0 = k0 + TILE_K) {
    // Loads run along the operand's contiguous axis (i for Aᵀ, p for A; j for B, p for Bᵀ).
    for (var e = lid; e < TILE_M * TILE_K; e = e + WORKGROUP_SIZE) {
      var i = e / TILE_K;
      var p = e % TILE_K;
      if (params.trans_a != 0u) {
        p = e / TILE_M;
        i = e % TILE_M;
      }
      var v = 0.0;
      if (row0 + i < params.m && k0 + p < params.k) {
        v = load_a(row0 + i, k0 + p);
      }
      a_tile[p * vm + i / 4u][i % 4u] = v;
    }
    for (var e = lid; e < TILE_N * TILE_K; e = e + WORKGROUP_SIZE) {
      var p = e / TILE_N;
      var j = e % TILE_N;
      if (params.trans_b != 0u) {
        j = e / TILE_K;
        p = e % TILE_K;
      }
      var v = 0.0;
      if (col0 + j < params.n && k0 + p < params.k) {
        v = load_b(k0 + p, col0 + j);
      }
      b_tile[p * vn + j / 4u][j % 4u] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TILE_K; kk = kk + 1u) {
      let av = a_tile[kk * vm + ty];
      let bv = b_tile[kk * vn + tx];
      c0 = c0 + av.x * bv;
      c1 = c1 + av.y * bv;
      c2 = c2 + av.z * bv;
      c3 = c3 + av.w * bv;
    }
    workgroupBarrier();
  }
  let acc = mat4x4<f32>(c0, c1, c2, c3);
  for (var r = 0u; r < 4u; r = r + 1u) {
    let gi = row0 + ty * 4u + r;
    if (gi >= params.m) {
      break;
    }
    for (var c = 0u; c < 4u; c = c + 1u) {
      let gj = col0 + tx * 4u + c;
      if (gj >= params.n) {
        break;
      }
      let idx = params.c_offset + gi * params.ldc + gj;
      var v = params.alpha * acc[r][c];
      if (params.mode == 1u) {
        v = out[idx] + v;
      } else if (params.mode == 2u) {
        v = v + params.beta * addend[idx];
      }
      out[idx] = v;
    }
  }
}

const T = 16u;
var<workgroup> t_tile: array<f32, T * (T + 1u)>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn transpose_block(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let w = workgroup_index(wid, nwg);
  if (w >= params.tiles) {
    return;
  }
  let r0 = (w / params.tiles_n) * T;
  let c0 = (w % params.tiles_n) * T;
  let ty = lid / T;
  let tx = lid % T;
  if (r0 + ty < params.m && c0 + tx < params.n) {
    t_tile[ty * (T + 1u) + tx] = a[params.a_offset + (r0 + ty) * params.lda + c0 + tx];
  }
  workgroupBarrier();
  // Thread (ty, tx) writes dst row c0 + ty (a source column), element r0 + tx (a source row).
  if (c0 + ty < params.n && r0 + tx < params.m) {
    out[params.c_offset + (c0 + ty) * params.ldc + r0 + tx] = t_tile[tx * (T + 1u) + ty];
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn copy_block(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let e = global_index(wid, nwg, lid);
  if (e >= params.m * params.n) {
    return;
  }
  let i = e / params.n;
  let j = e % params.n;
  out[params.c_offset + i * params.ldc + j] = a[params.a_offset + i * params.lda + j];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn scale_columns(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.numel) {
    return;
  }
  out[i] = a[i] * b[(params.offset + i) % params.row_len];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn add_diagonal(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.numel) {
    return;
  }
  let g = params.offset + i;
  var v = params.alpha * a[i];
  if (g / params.row_len == g % params.row_len) {
    v = v + params.beta;
  }
  out[i] = v;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn column_dots(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let w = workgroup_index(wid, nwg);
  if (w >= params.tiles) {
    return;
  }
  let block = w / params.tiles_n;
  let j = (w % params.tiles_n) * WORKGROUP_SIZE + lid;
  if (j >= params.row_len) {
    return;
  }
  let first = block * params.block_rows;
  let last = min(first + params.block_rows, params.rows);
  let lo = params.offset;
  let hi = params.offset + params.numel;
  var acc = 0.0;
  for (var r = first; r < last; r = r + 1u) {
    let g = (params.first_row + r) * params.row_len + j;
    if (g >= lo && g < hi) {
      acc = acc + a[g - lo] * b[g - lo];
    }
  }
  out[block * params.row_len + j] = acc;
}

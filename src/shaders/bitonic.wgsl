// Per-row ranks for DELLA: the rank of each entry within its row in the order (|x|, column),
// ascending, ties by column (so ranks are a permutation of 0..row_len-1).
//
// For a batch of rows [batch_start / row_len, + batch_rows), pairs holds each row padded to a power
// of two `padded` >= row_len: pairs[r·padded + c] = (|x| bits, c), padding = (0xffffffff,
// 0xffffffff), which sorts after every real key (|x| bits <= 0x7fffffff).
//   fill_pad:      write the padding (batch_rows · (padded - row_len) threads).
//   load:          one thread per element of one chunk; elements of the batch write their pair
//                  (rows may span chunks: the host runs load once per chunk touching the batch).
//   The bitonic sorting network sorts every row: for k = 2, 4, .., padded and j = k/2, .., 1,
//   compare-exchange elements i and i + j (i & j == 0) of a row, ascending where (i & k) == 0.
//   sort_local:    the stages with j < 512 in workgroup memory: each workgroup loads a tile of 512
//                  consecutive pairs (whole rows when padded <= 512, else a 512-aligned part of a
//                  row, which is all those stages touch), runs them with a barrier after each, and
//                  stores the tile. k = 0 runs every stage of k = 2 .. min(padded, 512); k > 512 runs
//                  the stages j = 256 .. 1 of that k. ceil(batch_rows · padded / 512) workgroups.
//   sort_step:     one stage with j >= 512 in global memory: thread t of a row compares
//                  i = 2j·floor(t / j) + t mod j and i + j (batch_rows · padded / 2 threads).
//   For padded = 2^m > 512 the host runs sort_local(0), then for each k = 1024 .. padded the
//   sort_step stages j = k/2 .. 512 and sort_local(k): m - 9 + Σ (log2 k - 9) dispatches instead of
//   m(m+1)/2.
//   scatter_ranks: ranks[r·row_len + column] = position in the sorted row (batch_rows · row_len
//                  threads).
//
// Dispatch: ceil(threads / 256) workgroups (2-D grid above maxComputeWorkgroupsPerDimension;
// threads past the count return).

struct Params {
  n: u32,           // load: elements in this chunk
  offset: u32,      // load: global index of the chunk's first element
  batch_start: u32, // global index of the batch's first element
  batch_rows: u32,
  row_len: u32,
  padded: u32,      // power of two >= row_len
  k: u32,           // sort_step / sort_local: size of the bitonic sequences being merged
  j: u32,           // sort_step: compare distance
}

// Pairs per sort_local workgroup: two per thread (the host passes the same SORT_TILE).
override TILE: u32 = 2u * WORKGROUP_SIZE;
const PAD: vec2<u32> = vec2<u32>(0xffffffffu, 0xffffffffu);

var<workgroup> tile: array<vec2<u32>, TILE>;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> pairs: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read_write> ranks: array<u32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn fill_pad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let t = global_index(wid, nwg, lid);
  let pad = params.padded - params.row_len;
  if (t >= params.batch_rows * pad) {
    return;
  }
  let row = t / pad;
  let col = params.row_len + t % pad;
  pairs[row * params.padded + col] = PAD;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn load(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  let g = params.offset + i;
  if (g < params.batch_start) {
    return;
  }
  let rel = g - params.batch_start;
  let row = rel / params.row_len;
  if (row >= params.batch_rows) {
    return;
  }
  let col = rel % params.row_len;
  pairs[row * params.padded + col] = vec2<u32>(x[i] & 0x7fffffffu, col);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sort_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let t = global_index(wid, nwg, lid);
  let half = params.padded >> 1u;
  if (t >= params.batch_rows * half) {
    return;
  }
  let row = t / half;
  let u = t % half;
  let j = params.j;
  let i = 2u * j * (u / j) + u % j;
  let base = row * params.padded;
  let a = pairs[base + i];
  let b = pairs[base + i + j];
  let a_greater = a.x > b.x || (a.x == b.x && a.y > b.y);
  let ascending = (i & params.k) == 0u;
  if (a_greater == ascending) {
    pairs[base + i] = b;
    pairs[base + i + j] = a;
  }
}

fn compare_exchange(i: u32, l: u32, ascending: bool) {
  let a = tile[i];
  let b = tile[l];
  let a_greater = a.x > b.x || (a.x == b.x && a.y > b.y);
  if (a_greater == ascending) {
    tile[i] = b;
    tile[l] = a;
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sort_local(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let base = workgroup_index(wid, nwg) * TILE;
  let total = params.batch_rows * params.padded;
  for (var e = 0u; e < TILE / WORKGROUP_SIZE; e = e + 1u) {
    let li = lid + e * WORKGROUP_SIZE;
    if (base + li < total) {
      tile[li] = pairs[base + li];
    } else {
      tile[li] = PAD;
    }
  }
  workgroupBarrier();
  var k_first = params.k;
  var k_last = params.k;
  if (params.k == 0u) {
    k_first = 2u;
    k_last = min(params.padded, TILE);
  }
  for (var k = k_first; k <= k_last; k = k << 1u) {
    for (var j = min(k >> 1u, TILE >> 1u); j > 0u; j = j >> 1u) {
      let i = 2u * j * (lid / j) + lid % j;
      // Direction from the index within the row (rows are padded-aligned, padded a power of two).
      let in_row = (base + i) & (params.padded - 1u);
      compare_exchange(i, i + j, (in_row & k) == 0u);
      workgroupBarrier();
    }
  }
  for (var e = 0u; e < TILE / WORKGROUP_SIZE; e = e + 1u) {
    let li = lid + e * WORKGROUP_SIZE;
    if (base + li < total) {
      pairs[base + li] = tile[li];
    }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn scatter_ranks(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let t = global_index(wid, nwg, lid);
  if (t >= params.batch_rows * params.row_len) {
    return;
  }
  let row = t / params.row_len;
  let pos = t % params.row_len;
  let p = pairs[row * params.padded + pos];
  ranks[row * params.row_len + p.y] = pos;
}

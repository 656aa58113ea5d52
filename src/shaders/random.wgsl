// Counter-based random numbers, bit-identical to uniformAt / mix32 in src/gpu/backend.ts:
//   h = mix32(seed ^ 0x9e3779b9); h = mix32(h ^ model); h = mix32(h ^ tensor_hash); h = mix32(h ^ index)
//   uniform = (h >> 8) / 2^24
// mix32 is a lowbias32-style integer hash (xorshift-multiply; u32 multiply wraps as Math.imul).
// The tensor hash (FNV-1a of the name) is computed on the host. Masks compare the 24-bit integer
// uniform_bits against an integer threshold computed on the host, so "u < p" is exact.
// Library file: prepended to the mask kernels, no bindings and no entry points.

fn mix32(v: u32) -> u32 {
  var x = v;
  x = x ^ (x >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  x = x ^ (x >> 16u);
  return x;
}

// The uniform of (seed, model, tensor, index) times 2^24: an integer in [0, 2^24).
fn uniform_bits(seed: u32, model: u32, tensor_hash: u32, index: u32) -> u32 {
  var h = mix32(seed ^ 0x9e3779b9u);
  h = mix32(h ^ model);
  h = mix32(h ^ tensor_hash);
  h = mix32(h ^ index);
  return h >> 8u;
}

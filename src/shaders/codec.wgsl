// Float codecs between the safetensors storage types and the engine's f32 tensors.
//
// Everything is done on the integer bit patterns (no float arithmetic), so the results are exact and
// do not depend on how a GPU treats subnormals:
//   decode_bf16: f32 bits = bf16 bits << 16.
//   decode_f16:  normal: rebias the exponent (15 -> 127); subnormal m·2^-24: normalise with
//                firstLeadingBit; Inf/NaN: exponent 0xff, payload kept.
//   encode_bf16: round to nearest even on the 16 dropped bits; NaN -> 0x7FC0 (as torch).
//   encode_f16:  round to nearest even; overflow -> Inf; results below 2^-14 become f16 subnormals,
//                below half the smallest subnormal -> ±0; NaN -> quiet NaN.
// 2-byte values are packed two per u32, little-endian: element 2w in the low half of word w.
//
// Dispatch: decode_* runs one thread per element (ceil(n / 256) workgroups); encode_* runs one
// thread per output word (ceil(ceil(n / 2) / 256) workgroups). Workgroup ids may form a 2-D grid
// when above maxComputeWorkgroupsPerDimension; ids past the end return.

struct Params {
  n: u32,       // elements in this chunk
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

fn half_at(i: u32) -> u32 {
  return (src[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu;
}

// f16_to_f32_bits, f32_bits_to_bf16 and f32_bits_to_f16 come from float16.wgsl.

@compute @workgroup_size(WORKGROUP_SIZE)
fn decode_bf16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  dst[i] = half_at(i) << 16u;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn decode_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  dst[i] = f16_to_f32_bits(half_at(i));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn encode_bf16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let w = global_index(wid, nwg, lid);
  let i = 2u * w;
  if (i >= params.n) {
    return;
  }
  var hi = 0u;
  if (i + 1u < params.n) {
    hi = f32_bits_to_bf16(src[i + 1u]);
  }
  dst[w] = f32_bits_to_bf16(src[i]) | (hi << 16u);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn encode_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let w = global_index(wid, nwg, lid);
  let i = 2u * w;
  if (i >= params.n) {
    return;
  }
  var hi = 0u;
  if (i + 1u < params.n) {
    hi = f32_bits_to_f16(src[i + 1u]);
  }
  dst[w] = f32_bits_to_f16(src[i]) | (hi << 16u);
}

// quantize_*: round f32 values to BF16/F16 and widen them back to f32 (one thread per element, src
// and dst both one f32 bit pattern per u32). Emulates math that mergekit does natively in 16 bits.
@compute @workgroup_size(WORKGROUP_SIZE)
fn quantize_bf16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  dst[i] = f32_bits_to_bf16(src[i]) << 16u;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn quantize_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i = global_index(wid, nwg, lid);
  if (i >= params.n) {
    return;
  }
  dst[i] = f16_to_f32_bits(f32_bits_to_f16(src[i]));
}

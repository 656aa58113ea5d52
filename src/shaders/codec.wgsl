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

fn f16_to_f32_bits(h: u32) -> u32 {
  let sign = (h & 0x8000u) << 16u;
  let exp = (h >> 10u) & 0x1fu;
  let frac = h & 0x3ffu;
  if (exp == 0u) {
    if (frac == 0u) {
      return sign;
    }
    // frac·2^-24 with the leading one at bit p: 2^(p-24) · 1.xxx
    let p = firstLeadingBit(frac);
    return sign | ((p + 103u) << 23u) | ((frac << (23u - p)) & 0x7fffffu);
  }
  if (exp == 0x1fu) {
    return sign | 0x7f800000u | (frac << 13u);
  }
  return sign | ((exp + 112u) << 23u) | (frac << 13u);
}

fn f32_bits_to_bf16(x: u32) -> u32 {
  if ((x & 0x7fffffffu) > 0x7f800000u) {
    return 0x7fc0u;
  }
  return ((x + 0x7fffu + ((x >> 16u) & 1u)) >> 16u) & 0xffffu;
}

fn f32_bits_to_f16(x: u32) -> u32 {
  let sign = (x >> 16u) & 0x8000u;
  let exp = (x >> 23u) & 0xffu;
  var mant = x & 0x7fffffu;
  if (exp == 0xffu) {
    return sign | 0x7c00u | select(0u, 0x200u, mant != 0u);
  }
  var e = i32(exp) - 112;
  if (e >= 31) {
    return sign | 0x7c00u;
  }
  if (e <= 0) {
    if (e < -10) {
      return sign;
    }
    mant = mant | 0x800000u;
    let shift = u32(14 - e);
    let half = 1u << (shift - 1u);
    let rest = mant & ((1u << shift) - 1u);
    var m = mant >> shift;
    if (rest > half || (rest == half && (m & 1u) != 0u)) {
      m = m + 1u;
    }
    return sign | m;
  }
  let rest = mant & 0x1fffu;
  var m = mant >> 13u;
  if (rest > 0x1000u || (rest == 0x1000u && (m & 1u) != 0u)) {
    m = m + 1u;
    if (m == 0x400u) {
      m = 0u;
      e = e + 1;
      if (e >= 31) {
        return sign | 0x7c00u;
      }
    }
  }
  return sign | (u32(e) << 10u) | m;
}

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

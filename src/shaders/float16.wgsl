// Bit-exact conversions between f32 and the 16-bit float types, shared by the codec kernels
// (codec.wgsl) and kernels that round their results (elementwise.wgsl's lincomb). Integer bit
// manipulation only, so results do not depend on how a GPU treats subnormals:
//   f16_to_f32_bits: normal: rebias the exponent (15 -> 127); subnormal m·2^-24: normalise with
//                    firstLeadingBit; Inf/NaN: exponent 0xff, payload kept.
//   f32_bits_to_bf16: round to nearest even on the 16 dropped bits; NaN -> 0x7FC0 (as torch).
//   f32_bits_to_f16:  round to nearest even; overflow -> Inf; results below 2^-14 become f16
//                     subnormals, below half the smallest subnormal -> ±0; NaN -> quiet NaN.
//   round_to_dtype:   x rounded to BF16 (to = 1) or F16 (to = 2) and widened back; to = 0: x.
// No bindings and no entry points: the host composes this file into the modules that need it.

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

fn round_to_dtype(x: f32, to: u32) -> f32 {
  if (to == 1u) {
    return bitcast<f32>(f32_bits_to_bf16(bitcast<u32>(x)) << 16u);
  }
  if (to == 2u) {
    return bitcast<f32>(f16_to_f32_bits(f32_bits_to_f16(bitcast<u32>(x))));
  }
  return x;
}

#include "core/dtype.h"

#include <algorithm>

namespace dsinfer {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32:
      return "f32";
    case DType::bf16:
      return "bf16";
    case DType::f16:
      return "f16";
    case DType::fp8_e4m3:
      return "fp8_e4m3";
    case DType::ue8m0:
      return "ue8m0";
    case DType::i8:
      return "i8";
    case DType::i32:
      return "i32";
    case DType::i64:
      return "i64";
    case DType::u8:
      return "u8";
    case DType::u4:
      return "u4";
  }
  return "?";
}

bool dtype_from_safetensors(std::string_view name, DType* out) {
  struct Entry {
    std::string_view name;
    DType type;
  };
  static constexpr Entry kTable[] = {
      {"F32", DType::f32},          {"BF16", DType::bf16},     {"F16", DType::f16},
      {"F8_E4M3", DType::fp8_e4m3}, {"F8_E8M0", DType::ue8m0}, {"I8", DType::i8},
      {"I32", DType::i32},          {"I64", DType::i64},       {"U8", DType::u8}};
  for (const Entry& e : kTable)
    if (e.name == name) {
      *out = e.type;
      return true;
    }
  return false;
}

f16 f32_to_f16(float f) {
  uint32_t u = f32_bits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return f16{uint16_t(sign | 0x7e00u)};
  if (abs >= 0x477ff000u) return f16{uint16_t(sign | 0x7c00u)};  // rounds to >= 65520 -> inf
  if (abs < 0x38800000u) {  // below the smallest normal 2^-14: subnormal, step 2^-24
    float a = f32_from_bits(abs);
    // Adding 0.5 (2^-1) pushes the value's 2^-24 multiples into the low f32 mantissa bits, where
    // the hardware's round-to-nearest-even does the rounding for us.
    uint32_t r = f32_bits(a + 0.5f) - f32_bits(0.5f);
    return f16{uint16_t(sign | r)};
  }
  uint32_t mant_odd = (abs >> 13) & 1u;
  abs += 0xfffu + mant_odd;  // round to nearest even at bit 13
  return f16{uint16_t(sign | ((abs - (112u << 23)) >> 13))};
}

fp8_e4m3 f32_to_fp8_e4m3(float f) {
  uint32_t u = f32_bits(f);
  uint8_t sign = uint8_t((u >> 24) & 0x80u);
  float a = std::fabs(f);
  if (std::isnan(f)) return fp8_e4m3{uint8_t(sign | 0x7f)};
  if (a >= 448.0f) return fp8_e4m3{uint8_t(sign | 0x7e)};  // saturate (includes inf)
  if (a < 0.015625f) {                                     // below 2^-6: subnormal, step 2^-9
    // a * 2^9 is the subnormal mantissa; nearbyint rounds half to even.
    int m = int(std::nearbyint(a * 512.0f));
    return fp8_e4m3{uint8_t(sign | m)};  // m == 8 is exactly the smallest normal 0x08
  }
  uint32_t abs = f32_bits(a);
  uint32_t lsb = (abs >> 20) & 1u;
  abs += 0x7ffffu + lsb;  // round to nearest even at bit 20 (3 mantissa bits kept)
  uint32_t e = (abs >> 23) - 120, m = (abs >> 20) & 7u;
  uint32_t code = (e << 3) | m;
  if (code > 0x7e) code = 0x7e;  // 464 and above rounded past 448: saturate
  return fp8_e4m3{uint8_t(sign | code)};
}

ue8m0 ue8m0_ceil_pow2(float x) {
  uint32_t u = f32_bits(x);
  if (std::isnan(x) || x <= 0) return ue8m0{0xff};
  uint32_t e = u >> 23;
  if (e == 0) {  // subnormal input: scale it up for the exponent, the ceil stays a power of two
    int ex;
    float m = std::frexp(x, &ex);  // x = m * 2^ex, m in [0.5, 1)
    int ceil_log2 = (m == 0.5f) ? ex - 1 : ex;
    int code = ceil_log2 + 127;
    return ue8m0{uint8_t(code < 0 ? 0 : code)};
  }
  if ((u & 0x7fffffu) != 0) e += 1;  // not a power of two: round the exponent up
  if (e >= 0xff) e = 0xfe;
  return ue8m0{uint8_t(e)};
}

int64_t find_fp8_nan(const uint8_t* codes, int64_t n) {
  // Blocks of 4 KiB with a branch-free test the compiler vectorizes; the exact place only when a
  // block has one.
  constexpr int64_t kBlock = 4096;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    uint8_t any = 0;
    for (int64_t i = b; i < e; ++i) any |= uint8_t((codes[i] & 0x7f) == 0x7f);
    if (!any) continue;
    for (int64_t i = b; i < e; ++i)
      if ((codes[i] & 0x7f) == 0x7f) return i;
  }
  return -1;
}

}  // namespace dsinfer

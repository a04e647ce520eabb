// Every tile op against a scalar reference, under every ISA backend this CPU supports.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "test_util.h"
#include "tile_ops_driver.h"

namespace dsinfer {
namespace {

using testing::for_each_isa;
using tile_test::kCols;
using tile_test::kRows;
constexpr int kN = kRows * kCols;

struct Extent {
  int rows, cols;
};
const Extent kExtents[] = {{16, 64}, {1, 1}, {3, 7}, {16, 9}, {5, 63}, {0, 0}, {9, 17}};

TEST(TileOps, LoadConvertsAndZeroFillsPastTheValidExtent) {
  const int64_t ld = 70;
  std::vector<float> src = testing::random_floats(kRows * ld, 1, -3, 3);
  std::vector<bf16> src16 = testing::to_bf16(src);
  std::vector<fp8_e4m3> src8 = testing::random_fp8(kRows * ld, 2);
  std::vector<float> scale = testing::random_floats(kRows, 3, 0.1f, 2.0f);
  for_each_isa([&](Isa) {
    for (Extent e : kExtents) {
      std::vector<float> a(kN), b(kN), c(kN);
      DSINFER_DISPATCH(tt_load_f32)(src.data(), ld, e.rows, e.cols, a.data());
      DSINFER_DISPATCH(tt_load_bf16)(src16.data(), ld, e.rows, e.cols, b.data());
      DSINFER_DISPATCH(tt_load_fp8_scaled)(src8.data(), ld, scale.data(), e.rows, e.cols, c.data());
      for (int r = 0; r < kRows; ++r)
        for (int col = 0; col < kCols; ++col) {
          const bool in = r < e.rows && col < e.cols;
          const int64_t s = r * ld + col;
          ASSERT_EQ(a[r * kCols + col], in ? src[s] : 0.0f) << r << "," << col;
          ASSERT_EQ(b[r * kCols + col], in ? bf16_to_f32(src16[s]) : 0.0f);
          ASSERT_EQ(c[r * kCols + col], in ? fp8_e4m3_to_f32(src8[s]) * scale[r] : 0.0f);
        }
    }
  });
}

// Every code except the two NaNs (checkpoints hold none), subnormals included: the fast decode
// gives exactly 2^-120 times the value, so that kFp8RawScale restores it exactly.
TEST(TileOps, RawFp8WeightDecodeIsExactForEveryCode) {
  std::vector<uint8_t> codes(256);
  for (int i = 0; i < 256; ++i) codes[i] = uint8_t(i);
  for_each_isa([&](Isa) {
    std::vector<float> out(256);
    DSINFER_DISPATCH(tt_load_fp8_raw)(codes.data(), 256, out.data());
    for (int i = 0; i < 256; ++i) {
      if ((i & 0x7f) == 0x7f) continue;
      const float want = fp8_e4m3_to_f32(fp8_e4m3{uint8_t(i)});
      ASSERT_EQ(double(out[i]) * 0x1p120, double(want)) << "code " << i;
      ASSERT_EQ(std::signbit(out[i]), std::signbit(want)) << "code " << i;
    }
  });
}

// The int8 dot product ops of W8A8 / W4A8 (gemm_int8): lane l sums its own 4 byte products,
// exactly, at the extremes (255 x -128) too; nibble split, sign flip and quad broadcast; the
// int32 load and low-half multiply of the zero-point seeds.
TEST(TileOps, Int8DotProductsAreExactPerLane) {
  for_each_isa([&](Isa) {
    const int lanes = DSINFER_DISPATCH(tt_lanes)();
    std::mt19937 rng(5);
    for (int rep = 0; rep < 20; ++rep) {
      std::vector<uint8_t> u(static_cast<size_t>(4 * lanes)), s(static_cast<size_t>(4 * lanes));
      std::vector<int32_t> acc(static_cast<size_t>(lanes)), out(static_cast<size_t>(5 * lanes));
      for (auto& b : u) b = uint8_t(rng());
      for (auto& b : s) b = uint8_t(rng());
      for (auto& a : acc) a = int32_t(rng() % 2000001) - 1000000;
      if (rep == 0) std::fill(u.begin(), u.end(), 255), std::fill(s.begin(), s.end(), 0x80);
      const int32_t m = rep == 0 ? -2147 : int32_t(rng() % 4001) - 2000;  // a seed's -sum(x)
      DSINFER_DISPATCH(tt_int8_dots)(u.data(), s.data(), acc.data(), m, out.data());
      for (int l = 0; l < lanes; ++l) {
        int64_t d = 0, lo = 0, hi = 0, fb = 0;
        for (int j = 0; j < 4; ++j) {
          const int64_t a = u[size_t(4 * l + j)], b = int8_t(s[size_t(4 * l + j)]);
          d += a * b, lo += (a & 15) * b, hi += (a >> 4) * b;
          fb += int64_t(a ^ 0x80) * int8_t(s[size_t(j)]);
        }
        ASSERT_EQ(out[size_t(l)], acc[size_t(l)] + d) << "lane " << l;
        ASSERT_EQ(out[size_t(lanes + l)], acc[size_t(l)] + lo) << "lane " << l;
        ASSERT_EQ(out[size_t(2 * lanes + l)], acc[size_t(l)] + hi) << "lane " << l;
        ASSERT_EQ(out[size_t(3 * lanes + l)], acc[size_t(l)] + fb) << "lane " << l;
        ASSERT_EQ(out[size_t(4 * lanes + l)], acc[size_t(l)] * m) << "lane " << l;  // mul_i
      }
    }
  });
}

// reduce_lanes (the dot-form GEMM's sums): lane i is reduce_add's halving tree over vector i,
// bitwise, for every i (values spread over many magnitudes, so any other order shows).
TEST(TileOps, ReduceLanesIsTheHalvingTreeOfEachVector) {
  for_each_isa([&](Isa) {
    const int lanes = DSINFER_DISPATCH(tt_lanes)();
    std::mt19937 rng(8);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (int rep = 0; rep < 50; ++rep) {
      std::vector<float> in(size_t(lanes) * size_t(lanes)), out(static_cast<size_t>(lanes));
      for (auto& x : in) x = u(rng) * std::ldexp(1.0f, int(rng() % 40) - 20);
      DSINFER_DISPATCH(tt_reduce_lanes)(in.data(), out.data());
      for (int i = 0; i < lanes; ++i) {
        std::vector<float> t(in.begin() + i * lanes, in.begin() + (i + 1) * lanes);
        for (int w = lanes / 2; w >= 1; w /= 2)
          for (int l = 0; l < w; ++l) t[size_t(l)] += t[size_t(l + w)];
        ASSERT_EQ(f32_bits(out[size_t(i)]), f32_bits(t[0])) << "vector " << i << " rep " << rep;
      }
    }
  });
}

// reduce_lanes_i (the row-dot int8 GEMV's group sums): lane i is the exact sum of vector i, with
// wrap-around at the int32 extremes, for every i.
TEST(TileOps, ReduceLanesIntIsTheExactSumOfEachVector) {
  for_each_isa([&](Isa) {
    const int lanes = DSINFER_DISPATCH(tt_lanes)();
    std::mt19937 rng(9);
    for (int rep = 0; rep < 50; ++rep) {
      std::vector<int32_t> in(size_t(lanes) * size_t(lanes)), out(static_cast<size_t>(lanes));
      for (auto& x : in) x = int32_t(rng());
      if (rep == 0) std::fill(in.begin(), in.end(), INT32_MAX);
      DSINFER_DISPATCH(tt_reduce_lanes_i)(in.data(), out.data());
      for (int i = 0; i < lanes; ++i) {
        uint32_t want = 0;
        for (int l = 0; l < lanes; ++l) want += uint32_t(in[size_t(i * lanes + l)]);
        ASSERT_EQ(uint32_t(out[size_t(i)]), want) << "vector " << i << " rep " << rep;
      }
    }
  });
}

// FP8 codes times 2^(c - 120) straight to bf16 (the dot-form GEMM's weight decode): every code,
// exact against the plain decode, with subnormal codes reported (their output is not used).
TEST(TileOps, Fp8ToBf16Pow2IsExactAndFlagsSubnormals) {
  for_each_isa([&](Isa) {
    const int n = 2 * DSINFER_DISPATCH(tt_lanes)();
    for (int c : {3, 60, 111, 120, 126})
      for (int start = 0; start < 256; start += n) {
        std::vector<uint8_t> codes(static_cast<size_t>(n));
        bool sub = false;
        for (int i = 0; i < n; ++i) {
          codes[size_t(i)] = uint8_t((start + i) % 256);
          sub |= (codes[size_t(i)] & 0x78) == 0 && (codes[size_t(i)] & 0x07) != 0;
        }
        std::replace(codes.begin(), codes.end(), uint8_t(0x7f), uint8_t(0x7e));  // no NaN codes
        std::replace(codes.begin(), codes.end(), uint8_t(0xff), uint8_t(0xfe));
        std::vector<uint16_t> out(static_cast<size_t>(n));
        const uint32_t flagged = DSINFER_DISPATCH(tt_fp8_to_bf16_pow2)(codes.data(), c, out.data());
        ASSERT_EQ(flagged != 0, sub) << "c " << c << " codes from " << start;
        for (int i = 0; i < n; ++i) {
          const uint8_t code = codes[size_t(i)];
          if ((code & 0x78) == 0 && (code & 0x07) != 0) continue;
          const float want = fp8_e4m3_to_f32(fp8_e4m3{code}) * std::ldexp(1.0f, c - 120);
          ASSERT_EQ(out[size_t(i)], f32_to_bf16(want).bits) << "code " << int(code) << " c " << c;
        }
      }
  });
}

// The four-op decode for blocks without zero or subnormal codes: every such code, at every lane,
// exact against the plain decode; and the block scan that decides where it may be used finds a
// zero or subnormal code (of either sign) at every position of blocks of 32..256 codes.
TEST(TileOps, Fp8ToBf16NormalIsExactWhereTheScanFindsNoZeroExponent) {
  for_each_isa([&](Isa) {
    const int n = 2 * DSINFER_DISPATCH(tt_lanes)();
    std::vector<uint8_t> normal;
    for (int code = 0; code < 256; ++code)
      if ((code & 0x78) != 0 && (code & 0x7f) != 0x7f) normal.push_back(uint8_t(code));
    for (int c : {3, 60, 111, 120, 126})
      for (size_t start = 0; start < normal.size(); ++start) {
        std::vector<uint8_t> codes(static_cast<size_t>(n));
        for (int i = 0; i < n; ++i) codes[size_t(i)] = normal[(start + size_t(i)) % normal.size()];
        std::vector<uint16_t> out(static_cast<size_t>(n));
        DSINFER_DISPATCH(tt_fp8_to_bf16_normal)(codes.data(), c, out.data());
        for (int i = 0; i < n; ++i) {
          const float want =
              fp8_e4m3_to_f32(fp8_e4m3{codes[size_t(i)]}) * std::ldexp(1.0f, c - 120);
          ASSERT_EQ(out[size_t(i)], f32_to_bf16(want).bits)
              << "code " << int(codes[size_t(i)]) << " c " << c << " lane " << i;
        }
      }
    std::mt19937 rng(11);
    for (int len : {32, 64, 96, 128, 160, 256}) {
      std::vector<uint8_t> block(static_cast<size_t>(len));
      for (auto& b : block) b = normal[rng() % normal.size()];
      ASSERT_FALSE(DSINFER_DISPATCH(tt_fp8_any_zero_exponent)(block.data(), len)) << len;
      for (int at = 0; at < len; ++at)
        for (int code : {0x00, 0x01, 0x07, 0x80, 0x83, 0x87}) {
          const uint8_t keep = block[size_t(at)];
          block[size_t(at)] = uint8_t(code);
          ASSERT_TRUE(DSINFER_DISPATCH(tt_fp8_any_zero_exponent)(block.data(), len))
              << "code " << code << " at " << at << " of " << len;
          block[size_t(at)] = keep;
        }
    }
  });
}

// Rows transposed into bf16 column pairs (the pair form's query and key layouts): every pair
// vector, every lane, rounded to nearest even like the scalar conversion; a row stride wider than
// the block, values that round up, down and to even, an infinity and a NaN.
TEST(TileOps, ColumnPairsTransposeRowsIntoRoundedPairs) {
  for_each_isa([&](Isa) {
    const int L = DSINFER_DISPATCH(tt_lanes)();
    const int64_t ld = 2 * L + 3;
    std::mt19937 rng(7);
    std::normal_distribution<float> nd;
    std::vector<float> rows(size_t(L * ld));
    for (auto& x : rows) x = nd(rng) * 3.0f;
    rows[1] = bf16_to_f32(f32_to_bf16(1.5f)) + std::ldexp(1.0f, -8);  // a tie: rounds to even
    rows[size_t(ld + 2)] = std::numeric_limits<float>::infinity();
    rows[size_t(2 * ld + 5)] = std::numeric_limits<float>::quiet_NaN();
    std::vector<uint16_t> out(size_t(2 * L * L));
    DSINFER_DISPATCH(tt_column_pairs)(rows.data(), ld, out.data());
    for (int j = 0; j < L; ++j)
      for (int i = 0; i < L; ++i)
        for (int e = 0; e < 2; ++e)
          ASSERT_EQ(out[size_t(j * 2 * L + 2 * i + e)],
                    f32_to_bf16(rows[size_t(i * ld + 2 * j + e)]).bits)
              << "pair " << j << " row " << i << " element " << e;
  });
}

// Two rows zipped into pairs (two keys' values side by side for the P . V pair product).
TEST(TileOps, ZipPairsInterleavesTwoRowsInOrder) {
  for_each_isa([&](Isa) {
    const int n = 2 * DSINFER_DISPATCH(tt_lanes)();
    std::vector<uint16_t> a(static_cast<size_t>(n)), b(a.size()), out(2 * a.size());
    for (int i = 0; i < n; ++i)
      a[size_t(i)] = uint16_t(1000 + i), b[size_t(i)] = uint16_t(5000 + 7 * i);
    DSINFER_DISPATCH(tt_zip_pairs)(a.data(), b.data(), out.data());
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(out[size_t(2 * i)], a[size_t(i)]) << "column " << i;
      ASSERT_EQ(out[size_t(2 * i + 1)], b[size_t(i)]) << "column " << i;
    }
  });
}

// Every lane pattern of bits (AVX-512's 16 lanes: a sample of them), and bits above the lanes
// ignored.
TEST(TileOps, SelectBitsTakesTheLanesOfTheSetBits) {
  for_each_isa([&](Isa) {
    const int n = DSINFER_DISPATCH(tt_lanes)();
    std::vector<float> a(static_cast<size_t>(n)), b(a.size()), out(a.size());
    for (int i = 0; i < n; ++i) a[size_t(i)] = float(i + 1), b[size_t(i)] = -float(i + 100);
    for (uint32_t bits = 0; bits<(1u << n); bits += n> 8 ? 37 : 1)
      for (uint32_t high : {0u, 0xffff0000u}) {
        const uint32_t arg = bits | (n > 8 ? high : high | 0xff00u);
        DSINFER_DISPATCH(tt_select_bits)(arg, a.data(), b.data(), out.data());
        for (int i = 0; i < n; ++i)
          ASSERT_EQ(out[size_t(i)], (bits >> i) & 1u ? a[size_t(i)] : b[size_t(i)])
              << "bits " << bits << " lane " << i;
      }
  });
}

// The vector FP8 encoder (the indexer's quantization) is f32_to_fp8_e4m3 bit for bit: every
// exponent, the rounding halfway points of every code, the subnormal range, saturation, NaN,
// infinities and signed zeros.
TEST(TileOps, StoreFp8MatchesTheScalarEncoder) {
  std::vector<float> in;
  std::mt19937 rng(5);
  for (int i = 0; i < 20000; ++i) {  // random bit patterns with exponents around e4m3's range
    const uint32_t e = 100 + rng() % 50;
    in.push_back(f32_from_bits((rng() & 0x80000000u) | e << 23 | (rng() & 0x7fffffu)));
  }
  for (int c = 0; c < 256; ++c) {  // each code, its neighbours' midpoints, one ulp either side
    const float v = fp8_e4m3_to_f32(fp8_e4m3{uint8_t(c)});
    const float w = fp8_e4m3_to_f32(fp8_e4m3{uint8_t(c + 1)});
    if (std::isnan(v) || std::isnan(w)) continue;
    const float mid = 0.5f * (v + w);
    for (float x : {v, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) in.push_back(x);
  }
  for (float x :
       {0.0f, -0.0f, 448.0f, -448.0f, 464.0f, 463.99f, 1e30f, -1e30f, 0.015625f,
        std::nextafter(0.015625f, 0.0f), 1.0f / 1024, 3.0f / 1024, 1e-30f,
        std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
        std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN()})
    in.push_back(x);
  while (in.size() % 16) in.push_back(1.0f);
  for_each_isa([&](Isa) {
    std::vector<uint8_t> out(in.size());
    DSINFER_DISPATCH(tt_store_fp8)(in.data(), int(in.size()), out.data());
    for (size_t i = 0; i < in.size(); ++i)
      ASSERT_EQ(int(out[i]), int(f32_to_fp8_e4m3(in[i]).bits)) << "x " << in[i] << " at " << i;
  });
}

// 8- and 4-bit unsigned codes as f32 (integer weights decoded along a row).
TEST(TileOps, UnsignedCodeLoadsAreExact) {
  for_each_isa([&](Isa) {
    const int lanes = DSINFER_DISPATCH(tt_lanes)();
    std::vector<uint8_t> bytes(256);
    for (int i = 0; i < 256; ++i) bytes[size_t(i)] = uint8_t(i * 37 + 11);
    std::vector<float> out(static_cast<size_t>(lanes));
    for (int off = 0; off + lanes <= 256; off += lanes) {
      DSINFER_DISPATCH(tt_load_uint)(bytes.data() + off, false, out.data());
      for (int i = 0; i < lanes; ++i) ASSERT_EQ(out[size_t(i)], float(bytes[size_t(off + i)]));
      DSINFER_DISPATCH(tt_load_uint)(bytes.data() + off / 2, true, out.data());
      for (int i = 0; i < lanes; ++i) {
        const uint8_t b = bytes[size_t(off / 2 + i / 2)];
        ASSERT_EQ(out[size_t(i)], float(i % 2 ? b >> 4 : b & 15)) << i;
      }
    }
  });
}

// The pair form's integer operand (W4A16 / W8A16 on bf16 dots): every code minus biases over the
// offsets and zero points' range is exact in bf16, in the documented column order (INT4: even
// columns, then odd), with every first-n tail zero past n and reading only its bytes.
TEST(TileOps, CodePairsAreExactInColumnOrder) {
  std::mt19937 rng(11);
  for_each_isa([&](Isa) {
    const int vec = 2 * DSINFER_DISPATCH(tt_lanes)();
    for (DType dt : {DType::u4, DType::u8, DType::i8}) {
      const bool u4 = dt == DType::u4;
      const float offset = u4 ? 8.0f : dt == DType::u8 ? 128.0f : 0.0f;
      for (float zero : u4 ? std::vector<float>{0, -8, 7, 3} : std::vector<float>{0, -128, 127, -5})
        for (int rep = 0; rep < 8; ++rep) {
          std::vector<uint8_t> bytes(static_cast<size_t>(vec));
          for (auto& b : bytes) b = uint8_t(rng());
          if (rep == 0) std::fill(bytes.begin(), bytes.end(), uint8_t(0));
          if (rep == 1) std::fill(bytes.begin(), bytes.end(), uint8_t(0xff));
          const float bias = offset + zero;
          std::vector<uint16_t> out(static_cast<size_t>(2 * vec));
          const int cols = DSINFER_DISPATCH(tt_code_pairs)(dt, bytes.data(), u4 ? 2 * vec : vec,
                                                           bias, out.data());
          ASSERT_EQ(cols, u4 ? 2 * vec : vec);
          auto code = [&](int c) {
            if (u4) return float(c % 2 ? bytes[size_t(c / 2)] >> 4 : bytes[size_t(c / 2)] & 15);
            return dt == DType::i8 ? float(int8_t(bytes[size_t(c)])) : float(bytes[size_t(c)]);
          };
          auto word = [&](int c) {
            return u4 ? out[size_t((c % 2) * vec + c / 2)] : out[size_t(c)];
          };
          for (int c = 0; c < cols; ++c)
            ASSERT_EQ(word(c), f32_to_bf16(code(c) - bias).bits)
                << dtype_name(dt) << " column " << c << " bias " << bias;
          for (int n = 1; n < cols; n += u4 ? 3 : 5) {  // tails: bytes past n are not read
            std::vector<uint8_t> part(bytes.begin(), bytes.begin() + (u4 ? (n + 1) / 2 : n));
            std::fill(out.begin(), out.end(), uint16_t(0x7fc0));
            DSINFER_DISPATCH(tt_code_pairs)(dt, part.data(), n, bias, out.data());
            for (int c = 0; c < cols; ++c)
              ASSERT_EQ(word(c), c < n ? f32_to_bf16(code(c) - bias).bits : uint16_t(0))
                  << dtype_name(dt) << " n " << n << " column " << c;
          }
        }
    }
    // x in the same order: INT4 steps split into even then odd columns, zero-padded.
    for (int64_t n : {int64_t(1), int64_t(2 * vec - 1), int64_t(2 * vec), int64_t(5 * vec + 3)}) {
      std::vector<uint16_t> src(static_cast<size_t>(n)),
          dst(static_cast<size_t>(n + 2 * vec), 0xffff);
      for (int64_t i = 0; i < n; ++i) src[size_t(i)] = uint16_t(1000 + i);
      const int64_t padded =
          DSINFER_DISPATCH(tt_split_columns)(DType::u4, src.data(), n, dst.data());
      ASSERT_EQ(padded % (2 * vec), 0);
      for (int64_t c = 0; c < padded; ++c) {
        const int64_t step = c / (2 * vec) * (2 * vec), i = c % (2 * vec);
        const int64_t col = step + (i < vec ? 2 * i : 2 * (i - vec) + 1);
        ASSERT_EQ(dst[size_t(c)], col < n ? src[size_t(col)] : uint16_t(0))
            << "n " << n << " " << c;
      }
      std::fill(dst.begin(), dst.end(), uint16_t(0xffff));
      const int64_t p8 = DSINFER_DISPATCH(tt_split_columns)(DType::u8, src.data(), n, dst.data());
      for (int64_t c = 0; c < p8; ++c)
        ASSERT_EQ(dst[size_t(c)], c < n ? src[size_t(c)] : uint16_t(0)) << "u8 n " << n << " " << c;
    }
    // bf16_in_order: a's lanes then b's, the high halves of their bits.
    const int lanes = vec / 2;
    std::vector<float> a(static_cast<size_t>(lanes)), b(static_cast<size_t>(lanes));
    for (int i = 0; i < lanes; ++i)
      a[size_t(i)] = float(i) - 200.0f, b[size_t(i)] = 0.5f * float(i + 1);
    std::vector<uint16_t> out(static_cast<size_t>(vec));
    DSINFER_DISPATCH(tt_bf16_in_order)(a.data(), b.data(), out.data());
    for (int i = 0; i < lanes; ++i) {
      ASSERT_EQ(out[size_t(i)], f32_to_bf16(a[size_t(i)]).bits) << i;
      ASSERT_EQ(out[size_t(lanes + i)], f32_to_bf16(b[size_t(i)]).bits) << i;
    }
  });
}

// INT8 codes (the C8 latent cache) as f32: every code, and every tail length.
TEST(TileOps, Int8LoadIsExactWithTails) {
  std::vector<int8_t> codes(256 + 16);
  for (int i = 0; i < 256; ++i) codes[size_t(i)] = int8_t(i - 128);
  for_each_isa([&](Isa) {
    const int lanes = DSINFER_DISPATCH(tt_lanes)();
    for (int tail = 0; tail < lanes; ++tail) {
      std::vector<float> out(256 + 16, 99.0f);
      DSINFER_DISPATCH(tt_load_i8)(codes.data(), 256, tail, out.data());
      for (int i = 0; i < 256 + tail; ++i) ASSERT_EQ(out[size_t(i)], float(codes[size_t(i)])) << i;
      for (int i = 256 + tail; i < 256 + lanes; ++i) ASSERT_EQ(out[size_t(i)], 0.0f) << i;
    }
  });
}

TEST(TileOps, GatherSkipsMinusOneIndices) {
  const int64_t ld = 64, n_rows = 40;
  std::vector<float> base = testing::random_floats(n_rows * ld, 4);
  const std::vector<int32_t> idx = {5, -1, 39, 0, 0, -1, 17, 3, -1};
  for_each_isa([&](Isa) {
    std::vector<float> out(kN);
    bool valid[kRows];
    int real = DSINFER_DISPATCH(tt_gather)(base.data(), ld, idx.data(), int(idx.size()), 50,
                                           out.data(), valid);
    EXPECT_EQ(real, 6);
    for (int r = 0; r < kRows; ++r)
      for (int c = 0; c < kCols; ++c) {
        const bool ok = r < int(idx.size()) && idx[r] >= 0 && c < 50;
        ASSERT_EQ(out[r * kCols + c], ok ? base[idx[r] * ld + c] : 0.0f) << r << "," << c;
      }
    for (size_t r = 0; r < idx.size(); ++r) EXPECT_EQ(valid[r], idx[r] >= 0);
  });
}

TEST(TileOps, StoreBf16RoundsToNearestEvenWithinTheExtent) {
  std::vector<float> in = testing::random_floats(kN, 5, -100, 100);
  in[0] = f32_from_bits(0x3f808000u);  // exact tie: rounds to even 0x3f80
  in[1] = f32_from_bits(0x3f818000u);  // exact tie: rounds up to 0x3f82
  for_each_isa([&](Isa) {
    for (Extent e : kExtents) {
      const int64_t ld = 80;
      std::vector<bf16> dst(kRows * ld, bf16{0x1234});
      DSINFER_DISPATCH(tt_store_bf16)(in.data(), e.rows, e.cols, dst.data(), ld);
      for (int r = 0; r < kRows; ++r)
        for (int c = 0; c < ld; ++c) {
          const bool inside = r < e.rows && c < e.cols;
          ASSERT_EQ(dst[r * ld + c].bits, inside ? f32_to_bf16(in[r * kCols + c]).bits : 0x1234)
              << r << "," << c;
        }
    }
  });
}

TEST(TileOps, ElementwiseMaps) {
  std::vector<float> in = testing::random_floats(kN, 6, -90, 90);
  in[0] = -std::numeric_limits<float>::infinity();
  in[1] = 0.0f;
  in[2] = -87.0f;
  in[3] = 88.0f;
  for_each_isa([&](Isa) {
    std::vector<float> out(kN);
    DSINFER_DISPATCH(tt_map)(tile_test::MapOp::scale, 0.37f, in.data(), out.data());
    for (int i = 0; i < kN; ++i) ASSERT_EQ(out[i], in[i] * 0.37f);
    DSINFER_DISPATCH(tt_map)(tile_test::MapOp::relu, 0, in.data(), out.data());
    for (int i = 0; i < kN; ++i) ASSERT_EQ(out[i], in[i] > 0 ? in[i] : 0.0f);
    DSINFER_DISPATCH(tt_map)(tile_test::MapOp::exp, 0, in.data(), out.data());
    EXPECT_EQ(out[0], 0.0f);  // exp(-inf) is exactly 0: softmax over masked keys needs it
    EXPECT_EQ(out[1], 1.0f);
    for (int i = 0; i < kN; ++i) {
      const double ref = std::exp(double(in[i]));
      if (ref > std::numeric_limits<float>::max())
        ASSERT_EQ(out[i], INFINITY) << in[i];
      else
        ASSERT_NEAR(out[i], ref, 2e-6 * ref + 1e-37) << in[i];
    }
    DSINFER_DISPATCH(tt_map)(tile_test::MapOp::silu, 0, in.data(), out.data());
    for (int i = 1; i < kN; ++i) {
      const double x = in[i], ref = x / (1 + std::exp(-x));
      ASSERT_NEAR(out[i], ref, 1e-5 * std::fabs(ref) + 1e-30) << x;
    }
  });
}

TEST(TileOps, RowAndColumnReductionsRespectTheExtent) {
  std::vector<float> in = testing::random_floats(kN, 7, -5, 5);
  for_each_isa([&](Isa) {
    for (Extent e : kExtents) {
      // Zero padding as tile loads produce it; negative data so a max over padding would show.
      std::vector<float> t(kN, 0.0f);
      for (int r = 0; r < e.rows; ++r)
        for (int c = 0; c < e.cols; ++c) t[r * kCols + c] = in[r * kCols + c] - 6.0f;
      std::vector<float> rmax(kRows), rsum(kRows), cmax(kCols), csum(kCols);
      DSINFER_DISPATCH(tt_reduce)
      (t.data(), e.rows, e.cols, rmax.data(), rsum.data(), cmax.data(), csum.data());
      for (int r = 0; r < e.rows; ++r) {
        double m = -INFINITY, s = 0;
        for (int c = 0; c < e.cols; ++c)
          m = std::max(m, double(t[r * kCols + c])), s += t[r * kCols + c];
        ASSERT_EQ(rmax[r], float(m)) << r;
        ASSERT_NEAR(rsum[r], s, 1e-4);
      }
      for (int c = 0; c < e.cols; ++c) {
        double m = -INFINITY, s = 0;
        for (int r = 0; r < e.rows; ++r)
          m = std::max(m, double(t[r * kCols + c])), s += t[r * kCols + c];
        ASSERT_EQ(cmax[c], float(m));
        ASSERT_NEAR(csum[c], s, 1e-4);
      }
    }
  });
}

TEST(TileOps, RowAndColumnBroadcasts) {
  std::vector<float> in = testing::random_floats(kN, 8), rowv = testing::random_floats(kRows, 9),
                     colv = testing::random_floats(kCols, 10);
  for_each_isa([&](Isa) {
    std::vector<float> out(kN);
    DSINFER_DISPATCH(tt_broadcast)(in.data(), rowv.data(), colv.data(), out.data());
    for (int r = 0; r < kRows; ++r)
      for (int c = 0; c < kCols; ++c) {
        const float ref = (in[r * kCols + c] - rowv[r]) * rowv[r] * colv[c] + colv[c];
        ASSERT_NEAR(out[r * kCols + c], ref, 1e-6);
      }
  });
}

TEST(TileOps, MmaAgainstPlainLoops) {
  std::vector<float> a = testing::random_floats(kN, 11),
                     b = testing::random_floats(kCols * kCols, 12);
  for_each_isa([&](Isa) {
    for (Extent e : {Extent{16, 64}, Extent{1, 1}, Extent{7, 13}, Extent{9, 64}, Extent{16, 33}}) {
      std::vector<float> c(kN);
      DSINFER_DISPATCH(tt_mma_ab)(a.data(), e.rows, e.cols, b.data(), c.data());
      for (int i = 0; i < kRows; ++i)
        for (int j = 0; j < kCols; ++j) {
          double ref = 1.0;
          if (i < e.rows)
            for (int k = 0; k < e.cols; ++k) ref += double(a[i * kCols + k]) * b[k * kCols + j];
          ASSERT_NEAR(c[i * kCols + j], ref, 1e-4) << i << "," << j;
        }
      const int n = 1 + e.cols % 31;
      std::vector<float> ct(kRows * 32);
      DSINFER_DISPATCH(tt_mma_abt)(a.data(), e.rows, e.cols, b.data(), n, ct.data());
      for (int i = 0; i < kRows; ++i)
        for (int j = 0; j < 32; ++j) {
          double ref = 0;
          if (i < e.rows && j < n)
            for (int k = 0; k < e.cols; ++k) ref += double(a[i * kCols + k]) * b[j * kCols + k];
          ASSERT_NEAR(ct[i * 32 + j], ref, 1e-4) << i << "," << j;
        }
    }
  });
}

TEST(TileOps, OnlineSoftmaxMatchesOneShotSoftmax) {
  const int ld = kCols * 4;
  std::vector<float> s = testing::random_floats(kRows * ld, 13, -20, 20);
  for (int c = 0; c < ld; ++c) s[2 * ld + c] = -INFINITY;   // a row with no valid key
  for (int c = 0; c < 100; ++c) s[3 * ld + c] = -INFINITY;  // first blocks fully masked
  for_each_isa([&](Isa) {
    for (int total : {1, 37, 64, 200, 256})
      for (int block : {8, 64, 24}) {
        std::vector<float> p(kRows * ld, 0.0f), lse(kRows);
        DSINFER_DISPATCH(tt_softmax_blocks)(s.data(), kRows, total, block, p.data(), lse.data());
        for (int r = 0; r < kRows; ++r) {
          double m = -INFINITY, sum = 0;
          for (int c = 0; c < total; ++c) m = std::max(m, double(s[r * ld + c]));
          for (int c = 0; c < total; ++c) sum += m == -INFINITY ? 0 : std::exp(s[r * ld + c] - m);
          const double ref_lse = sum > 0 ? m + std::log(sum) : -INFINITY;
          if (ref_lse == -INFINITY) {
            ASSERT_EQ(lse[r], -INFINITY) << "row " << r;
          } else {
            ASSERT_NEAR(lse[r], ref_lse, 1e-5 * std::fabs(ref_lse) + 1e-5) << "row " << r;
          }
          for (int c = 0; c < total; ++c) {
            const double ref = sum > 0 ? std::exp(s[r * ld + c] - m) / sum : 0.0;
            ASSERT_FALSE(std::isnan(p[r * ld + c]));
            ASSERT_NEAR(p[r * ld + c], ref, 2e-6) << "row " << r << " col " << c;
          }
        }
      }
  });
}

}  // namespace
}  // namespace dsinfer

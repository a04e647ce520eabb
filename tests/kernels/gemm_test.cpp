#include "kernels/gemm.h"
#include "kernels/gemm_int8.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <vector>

#include "core/thread_pool.h"
#include "test_util.h"

namespace dsinfer {
namespace {

using testing::for_each_isa;

struct Case {
  int64_t M, N, K;
};

// Holds one random weight matrix in a given dtype, with block scales for fp8.
struct Weight {
  std::vector<float> f32;
  std::vector<bf16> b16;
  std::vector<fp8_e4m3> f8;
  std::vector<float> scales;
  WeightView view;
};

Weight make_weight(DType dtype, int64_t N, int64_t K, uint32_t seed) {
  Weight w;
  w.view.dtype = dtype;
  w.view.rows = N;
  w.view.cols = K;
  w.view.ld = K;
  if (dtype == DType::f32) {
    w.f32 = testing::random_floats(N * K, seed);
    w.view.data = w.f32.data();
  } else if (dtype == DType::bf16) {
    w.b16 = testing::to_bf16(testing::random_floats(N * K, seed));
    w.view.data = w.b16.data();
  } else {
    w.f8 = testing::random_fp8(N * K, seed);
    const int64_t sr = (N + 127) / 128, sc = (K + 127) / 128;
    // Mixed scales: powers of two (ue8m0 checkpoints) and arbitrary values.
    w.scales = testing::random_floats(sr * sc, seed + 1, 1e-3f, 2e-2f);
    for (size_t i = 0; i < w.scales.size(); i += 2) w.scales[i] = std::ldexp(1.0f, -int(6 + i % 4));
    w.view.data = w.f8.data();
    w.view.scale_inv = w.scales.data();
    w.view.scale_ld = sc;
  }
  return w;
}

// |y - ref| must stay within a bound proportional to sum_k |x_k w_k| (the conditioning).
void expect_close(const std::vector<float>& y, const std::vector<float>& ref,
                  const std::vector<float>& abs_ref, int64_t M, int64_t N, double rel) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      const size_t i = m * N + n;
      ASSERT_NEAR(y[i], ref[i], rel * abs_ref[i] + 1e-6) << "m=" << m << " n=" << n;
    }
}

void run_case(const Case& c, DType xt, DType wt) {
  SCOPED_TRACE("M=" + std::to_string(c.M) + " N=" + std::to_string(c.N) +
               " K=" + std::to_string(c.K) + " x=" + std::string(dtype_name(xt)) +
               " w=" + std::string(dtype_name(wt)));
  const uint32_t seed = uint32_t(c.M * 7919 + c.N * 104729 + c.K);
  std::vector<float> xf = testing::random_floats(c.M * c.K, seed);
  std::vector<bf16> xb = testing::to_bf16(xf);
  GemmInput x{xt, xt == DType::f32 ? (const void*)xf.data() : (const void*)xb.data(), c.M, c.K,
              c.K};
  Weight w = make_weight(wt, c.N, c.K, seed + 3);

  std::vector<float> ref(c.M * c.N), abs_ref(c.M * c.N);
  gemm_reference(x, w.view, ref.data(), c.N);
  // Conditioning: the same product over absolute values.
  {
    std::vector<float> xa(c.M * c.K);
    for (int64_t i = 0; i < c.M * c.K; ++i)
      xa[i] = std::fabs(xt == DType::f32 ? xf[i] : bf16_to_f32(xb[i]));
    Weight wa = w;
    if (wt == DType::f32)
      for (auto& v : wa.f32) v = std::fabs(v);
    if (wt == DType::bf16)
      for (auto& v : wa.b16) v.bits &= 0x7fff;
    if (wt == DType::fp8_e4m3)
      for (auto& v : wa.f8) v.bits &= 0x7f;
    wa.view.data = wt == DType::f32    ? (const void*)wa.f32.data()
                   : wt == DType::bf16 ? (const void*)wa.b16.data()
                                       : (const void*)wa.f8.data();
    wa.view.scale_inv = wa.scales.data();
    GemmInput xa_in{DType::f32, xa.data(), c.M, c.K, c.K};
    gemm_reference(xa_in, wa.view, abs_ref.data(), c.N);
  }
  for_each_isa([&](Isa isa) {
    std::vector<float> y(c.M * c.N, 12345.0f);
    gemm(x, w.view, y.data(), c.N);
    // Native bf16 dot products round fp8 * scale to bf16 in the packed panel: a looser bound.
    const bool bf16_panels = isa == Isa::avx512bf16 && xt == DType::bf16 && wt != DType::f32;
    expect_close(y, ref, abs_ref, c.M, c.N, bf16_panels ? 1e-2 : 2e-5);
  });
}

const Case kCases[] = {{1, 1, 1},
                       {1, 7, 5},
                       {1, 130, 300},
                       {3, 17, 129},
                       {8, 64, 256},
                       {8, 33, 1000},
                       {9, 50, 77},
                       {17, 200, 520},
                       {33, 129, 257},
                       {64, 96, 640},
                       {100, 300, 130},
                       // GEMV with K cut into L1-sized chunks (M >= 3) and a K tail in the last
                       {2, 45, 3001},
                       {5, 40, 2100},
                       {7, 33, 4100},
                       {8, 19, 1500}};

TEST(Gemm, AllDtypeCombinationsAndAwkwardShapes) {
  for (const Case& c : kCases)
    for (DType xt : {DType::f32, DType::bf16})
      for (DType wt : {DType::f32, DType::bf16, DType::fp8_e4m3}) run_case(c, xt, wt);
}

// FP8 GEMV folds 2^120 into x times the block scale: with large activations and scales that
// would overflow f32 unless the kernel takes the headroom it needs (and gives it back after).
TEST(Gemm, Fp8GemvWithLargeActivationsAndScales) {
  const int64_t N = 150, K = 700;
  Weight w = make_weight(DType::fp8_e4m3, N, K, 41);
  for (float& s : w.scales) s *= 64.0f;  // up to ~1.3, as in a checkpoint with large weights
  for (float amp : {1e-20f, 1.0f, 3e4f, 1e9f}) {
    for (int64_t M : {1, 4, 8}) {
      SCOPED_TRACE("amplitude " + std::to_string(amp) + " M " + std::to_string(M));
      std::vector<float> xf = testing::random_floats(M * K, 42);
      for (float& v : xf) v *= amp;
      GemmInput x{DType::f32, xf.data(), M, K, K};
      std::vector<float> ref(M * N);
      gemm_reference(x, w.view, ref.data(), N);
      double mag = 0;
      for (float v : ref) mag = std::max(mag, double(std::fabs(v)));
      for_each_isa([&](Isa) {
        std::vector<float> y(M * N);
        gemm(x, w.view, y.data(), N);
        for (int64_t i = 0; i < M * N; ++i) {
          ASSERT_TRUE(std::isfinite(y[i])) << i;
          ASSERT_NEAR(y[i], ref[i], 1e-5 * mag) << i;
        }
      });
    }
  }
}

TEST(Gemm, SingleAndManyThreadsAgreeExactly) {
  Weight w = make_weight(DType::fp8_e4m3, 300, 700, 5);
  std::vector<float> xf = testing::random_floats(40 * 700, 6);
  GemmInput x{DType::f32, xf.data(), 40, 700, 700};
  std::vector<float> y1(40 * 300), y4(40 * 300);
  const int saved = num_threads();
  set_num_threads(1);
  gemm(x, w.view, y1.data(), 300);
  set_num_threads(4);
  gemm(x, w.view, y4.data(), 300);
  set_num_threads(saved);
  EXPECT_EQ(y1, y4);  // the work split never changes the summation order of one output
}

TEST(Gemm, StridedInputAndOutput) {
  const int64_t M = 20, N = 40, K = 150, ldx = 170, ldy = 45;
  std::vector<float> xf = testing::random_floats(M * ldx, 9);
  Weight w = make_weight(DType::bf16, N, K, 10);
  GemmInput x{DType::f32, xf.data(), M, K, ldx};
  std::vector<float> ref(M * ldy, -7.0f), y(M * ldy, -7.0f);
  gemm_reference(x, w.view, ref.data(), ldy);
  for_each_isa([&](Isa) {
    std::fill(y.begin(), y.end(), -7.0f);
    gemm(x, w.view, y.data(), ldy);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < ldy; ++n) {
        if (n >= N)
          ASSERT_EQ(y[m * ldy + n], -7.0f) << "wrote past N";
        else
          ASSERT_NEAR(y[m * ldy + n], ref[m * ldy + n], 1e-4);
      }
  });
}

TEST(Gemm, RejectsBadArguments) {
  std::vector<float> xf(10), yf(10);
  Weight w = make_weight(DType::fp8_e4m3, 2, 5, 1);
  GemmInput x{DType::f32, xf.data(), 2, 4, 4};  // K mismatch
  EXPECT_THROW(gemm(x, w.view, yf.data(), 2), std::invalid_argument);
  x.cols = 5;
  x.ld = 5;
  WeightView no_scale = w.view;
  no_scale.scale_inv = nullptr;
  EXPECT_THROW(gemm(x, no_scale, yf.data(), 2), std::invalid_argument);
  GemmInput bad{DType::i32, xf.data(), 2, 5, 5};
  EXPECT_THROW(gemm(bad, w.view, yf.data(), 2), std::invalid_argument);
}

}  // namespace
}  // namespace dsinfer

namespace dsinfer {
namespace {

// A [rows, cols] fp8 matrix with 128 x 128 block scales, dequantized independently of the kernel.
struct BigFp8 {
  int64_t rows, cols;
  std::vector<fp8_e4m3> q;
  std::vector<float> scales;
  int64_t scale_ld;
  double at(int64_t r, int64_t c) const {
    return double(fp8_e4m3_to_f32(q[r * cols + c])) * scales[(r / 128) * scale_ld + c / 128];
  }
};
BigFp8 make_big(int64_t rows, int64_t cols, uint32_t seed) {
  BigFp8 b{rows, cols, testing::random_fp8(rows * cols, seed), {}, (cols + 127) / 128};
  b.scales = testing::random_floats(((rows + 127) / 128) * b.scale_ld, seed + 1, 0.01f, 0.1f);
  return b;
}

TEST(Gemm, SubViewOfABlockScaledWeightInBothLayouts) {
  // One "head" of kv_b_proj: rows [r0, r0 + n) of a [300, W] weight, as W[N, K] (x . W^T) and,
  // like W_UK, as storage [K, N] (x . W with K = the head's rows). W = 256 takes the streaming
  // [K, N] GEMV for small M, W = 200 the packed path.
  for (int64_t width : {200, 256}) {
    const BigFp8 big = make_big(300, width, 21);
    const int64_t r0 = 70, n_rows = 90;  // starts and ends mid-block
    for (int64_t M : {1, 3, 5, 30}) {
      SCOPED_TRACE("width " + std::to_string(width) + " M " + std::to_string(M));
      std::vector<float> xf = testing::random_floats(M * width, 22);
      WeightView a{DType::fp8_e4m3,
                   big.q.data() + r0 * width,
                   n_rows,
                   width,
                   width,
                   big.scales.data(),
                   big.scale_ld,
                   false,
                   r0,
                   0};
      WeightView b{DType::fp8_e4m3,
                   big.q.data() + r0 * width,
                   width,
                   n_rows,
                   width,
                   big.scales.data(),
                   big.scale_ld,
                   true,
                   r0,
                   0};
      std::vector<float> xb = testing::random_floats(M * n_rows, 23);
      for_each_isa([&](Isa) {
        std::vector<float> ya(M * n_rows), yb(M * width);
        gemm(GemmInput{DType::f32, xf.data(), M, width, width}, a, ya.data(), n_rows);
        gemm(GemmInput{DType::f32, xb.data(), M, n_rows, n_rows}, b, yb.data(), width);
        for (int64_t m = 0; m < M; ++m) {
          for (int64_t n = 0; n < n_rows; ++n) {
            double ref = 0, mag = 0;
            for (int64_t k = 0; k < width; ++k) {
              const double p = xf[m * width + k] * big.at(r0 + n, k);
              ref += p, mag += std::fabs(p);
            }
            ASSERT_NEAR(ya[m * n_rows + n], ref, 2e-5 * mag + 1e-6)
                << "[N,K] m=" << m << " n=" << n;
          }
          for (int64_t n = 0; n < width; ++n) {
            double ref = 0, mag = 0;
            for (int64_t k = 0; k < n_rows; ++k) {
              const double p = xb[m * n_rows + k] * big.at(r0 + k, n);
              ref += p, mag += std::fabs(p);
            }
            ASSERT_NEAR(yb[m * width + n], ref, 2e-5 * mag + 1e-6) << "[K,N] m=" << m << " n=" << n;
          }
        }
      });
    }
  }
}

TEST(Gemm, F16Weights) {
  const int64_t M = 3, N = 37, K = 300;
  std::vector<float> wf = testing::random_floats(N * K, 31), xf = testing::random_floats(M * K, 32);
  std::vector<f16> wh(N * K);
  for (int64_t i = 0; i < N * K; ++i) wh[i] = f32_to_f16(wf[i]);
  WeightView w{DType::f16, wh.data(), N, K, K};
  for (int64_t m_rows : {M, int64_t(20)}) {
    std::vector<float> x = testing::random_floats(m_rows * K, 33);
    for_each_isa([&](Isa) {
      std::vector<float> y(m_rows * N);
      gemm(GemmInput{DType::f32, x.data(), m_rows, K, K}, w, y.data(), N);
      for (int64_t m = 0; m < m_rows; ++m)
        for (int64_t n = 0; n < N; ++n) {
          double ref = 0;
          for (int64_t k = 0; k < K; ++k) ref += x[m * K + k] * double(f16_to_f32(wh[n * K + k]));
          ASSERT_NEAR(y[m * N + n], ref, 1e-4);
        }
    });
  }
}

}  // namespace
}  // namespace dsinfer

// ---- batch invariance ---------------------------------------------------------------------------
// A serving engine batches many sequences into one forward: every y[m, n] must be bitwise the
// same whatever else is in the batch (M, the row's index), whatever the thread count and however
// the weight is viewed (sub-views, N split). gemm has one canonical summation order per ISA.
namespace dsinfer {
namespace {

// A random weight of any dtype stored [R, C] (fp8: 128 x 128 block scales, powers of two and
// arbitrary values mixed), viewed as [N, K] or, with kn, [K, N] from any (r0, c0).
struct StoredWeight {
  DType dtype;
  int64_t R, C;
  std::vector<float> f32;
  std::vector<bf16> b16;
  std::vector<f16> h16;
  std::vector<fp8_e4m3> f8;
  std::vector<float> scales;
  int64_t scale_ld = 0;
  // Integer weights (u4, u8, i8): the bytes, and one scale per `group` columns of a row.
  std::vector<uint8_t> codes;
  std::vector<float> qs_f32;
  std::vector<bf16> qs_bf16;
  DType qs_dtype = DType::bf16;
  int64_t group = 0, qs_ld = 0;
  std::vector<int8_t> zeros;  // asymmetric: one zero point per scale ([R, qs_ld]) or none

  // Zero points over their whole range (INT4: -8 .. 7), the extremes included.
  StoredWeight& with_zero_points(uint32_t seed) {
    const float lo = dtype == DType::u4 ? -8.0f : -128.0f;
    std::vector<float> z = testing::random_floats(R * qs_ld, seed, lo, -lo);
    for (float x : z) zeros.push_back(int8_t(std::clamp(std::floor(x), lo, -lo - 1)));
    zeros[0] = int8_t(lo), zeros[1] = int8_t(-lo - 1);
    return *this;
  }

  // An integer weight: codes over the whole range (the extremes included), positive and
  // negative scales of about 1e-2 (held as bf16 or f32), `grp` columns per scale.
  StoredWeight(DType dt, int64_t r, int64_t c, uint32_t seed, int64_t grp, DType scale_dtype)
      : dtype(dt), R(r), C(c), qs_dtype(scale_dtype), group(grp) {
    const int64_t bytes = dt == DType::u4 ? R * C / 2 : R * C;
    std::vector<float> v = testing::random_floats(bytes, seed, 0.0f, 256.0f);
    for (float x : v) codes.push_back(uint8_t(std::min(255.0f, x)));
    codes[0] = 0, codes[1] = 255, codes[bytes - 1] = 0x0f;
    qs_ld = (C + grp - 1) / grp;
    std::vector<float> q = testing::random_floats(R * qs_ld, seed + 1, 1e-3f, 2e-2f);
    for (size_t i = 3; i < q.size(); i += 5) q[i] = -q[i];
    if (scale_dtype == DType::bf16) {
      qs_bf16 = testing::to_bf16(q);
    } else {
      qs_f32 = q;
    }
  }

  // normal_fp8: no codes with a zero exponent (the integer fp8 -> bf16 path), except a few exact
  // zeros in rows from 64 on (its masked variant); otherwise every code, subnormals included.
  StoredWeight(DType dt, int64_t r, int64_t c, uint32_t seed, bool normal_fp8 = false)
      : dtype(dt), R(r), C(c) {
    std::vector<float> v = testing::random_floats(R * C, seed);
    if (dt == DType::f32) f32 = v;
    if (dt == DType::bf16) b16 = testing::to_bf16(v);
    if (dt == DType::f16)
      for (float x : v) h16.push_back(f32_to_f16(x));
    if (dt == DType::fp8_e4m3) {
      f8 = testing::random_fp8(R * C, seed);
      if (normal_fp8)
        for (int64_t i = 0; i < R * C; ++i) {
          if ((f8[i].bits & 0x78) == 0) f8[i].bits |= 0x08;
          if (i / C >= 64 && i % 97 == 0) f8[i].bits &= 0x80;  // +-0
        }
      scale_ld = (C + 127) / 128;
      scales = testing::random_floats(((R + 127) / 128) * scale_ld, seed + 1, 1e-3f, 2e-2f);
      for (size_t i = 0; i < scales.size(); i += 2) scales[i] = std::ldexp(1.0f, -int(6 + i % 4));
      for (size_t i = 3; i < scales.size(); i += 5) scales[i] = -scales[i];  // sign flips too
    }
  }
  const void* data() const {
    switch (dtype) {
      case DType::f32:
        return f32.data();
      case DType::bf16:
        return b16.data();
      case DType::f16:
        return h16.data();
      case DType::u4:
      case DType::u8:
      case DType::i8:
        return codes.data();
      default:
        return f8.data();
    }
  }
  // Storage rows [r0, r0 + nr) x columns [c0, c0 + nc).
  WeightView view(int64_t r0, int64_t nr, int64_t c0, int64_t nc, bool kn) const {
    WeightView w;
    w.dtype = dtype;
    w.data = static_cast<const char*>(data()) + (r0 * C + c0) * dtype_bits(dtype) / 8;
    w.ld = C;
    w.kn = kn;
    w.rows = kn ? nc : nr;
    w.cols = kn ? nr : nc;
    w.row0 = r0, w.col0 = c0;
    if (dtype == DType::fp8_e4m3) w.scale_inv = scales.data(), w.scale_ld = scale_ld;
    if (group) {
      w.qscale = qs_dtype == DType::bf16 ? static_cast<const void*>(qs_bf16.data())
                                         : static_cast<const void*>(qs_f32.data());
      w.qscale_dtype = qs_dtype, w.qscale_ld = qs_ld, w.group = group;
      if (!zeros.empty()) w.qzero = zeros.data(), w.qzero_ld = qs_ld;
    }
    return w;
  }
};

// Activations [M, ld] in f32 and bf16; rows 2 and 3 (when present) are all +0 and all -0.
struct Activations {
  int64_t M, K, ld;
  std::vector<float> f;
  std::vector<bf16> b;
  Activations(int64_t m, int64_t k, int64_t ldx, uint32_t seed, float amp = 1.0f)
      : M(m), K(k), ld(ldx), f(testing::random_floats(m * ldx, seed)) {
    for (float& v : f) v *= amp;
    for (int64_t j = 0; j < K; ++j) {
      if (M > 2) f[2 * ld + j] = 0.0f;
      if (M > 3) f[3 * ld + j] = -0.0f;
    }
    b = testing::to_bf16(f);
  }
  // Rows [m0, m0 + rows).
  GemmInput rows(DType dt, int64_t m0, int64_t n) const {
    const void* p = dt == DType::f32 ? static_cast<const void*>(f.data() + m0 * ld)
                                     : static_cast<const void*>(b.data() + m0 * ld);
    return GemmInput{dt, p, n, K, ld};
  }
};

std::vector<float> run_gemm(const GemmInput& x, const WeightView& w, int64_t ldy) {
  std::vector<float> y(size_t(x.rows * ldy), -12345.0f);
  gemm(x, w, y.data(), ldy);
  return y;
}

// Rows [0, rows) x columns [0, N) of a (stride lda) and b (stride ldb) are bitwise equal.
::testing::AssertionResult same_bits(const float* a, int64_t lda, const float* b, int64_t ldb,
                                     int64_t rows, int64_t N) {
  for (int64_t m = 0; m < rows; ++m)
    if (std::memcmp(a + m * lda, b + m * ldb, size_t(N) * 4) != 0)
      for (int64_t n = 0; n < N; ++n) {
        uint32_t ua, ub;
        std::memcpy(&ua, a + m * lda + n, 4), std::memcpy(&ub, b + m * ldb + n, 4);
        if (ua != ub) {
          char buf[96];
          std::snprintf(buf, sizeof buf, "%.9g (0x%08x) vs %.9g (0x%08x)", a[m * lda + n], ua,
                        b[m * ldb + n], ub);
          return ::testing::AssertionFailure() << "row " << m << " col " << n << ": " << buf;
        }
      }
  return ::testing::AssertionSuccess();
}

// W[n, k] of any view (either layout, any offset), exactly, as the reference sees it.
double weight_value(const WeightView& w, int64_t n, int64_t k) {
  const int64_t r = w.kn ? k : n, c = w.kn ? n : k, i = r * w.ld + c;
  switch (w.dtype) {
    case DType::f32:
      return static_cast<const float*>(w.data)[i];
    case DType::bf16:
      return bf16_to_f32(static_cast<const bf16*>(w.data)[i]);
    case DType::f16:
      return f16_to_f32(static_cast<const f16*>(w.data)[i]);
    case DType::u4:
    case DType::u8:
    case DType::i8: {  // decoded here from the bytes, not with WeightView's helpers
      const uint8_t* b = static_cast<const uint8_t*>(w.data);
      const int code = w.dtype == DType::u4   ? int((b[i / 2] >> (4 * (i % 2))) & 15) - 8
                       : w.dtype == DType::u8 ? int(b[i]) - 128
                                              : int(int8_t(b[i]));
      const int64_t si = (w.row0 + r) * w.qscale_ld + (w.col0 + c) / w.group;
      const double sc = w.qscale_dtype == DType::bf16
                            ? bf16_to_f32(static_cast<const bf16*>(w.qscale)[si])
                            : static_cast<const float*>(w.qscale)[si];
      const int z = w.qzero ? int(w.qzero[si]) : 0;  // zero points share the scales' grid
      return (code - z) * sc;
    }
    default:
      return double(fp8_e4m3_to_f32(static_cast<const fp8_e4m3*>(w.data)[i])) * w.scale_at(r, c);
  }
}

// y against a double-precision reference, within tol * sum_k |x w| (bf16 pair panels round fp8
// times an arbitrary scale to bf16: a looser tol).
::testing::AssertionResult close_to_reference(const Activations& acts, DType xt,
                                              const WeightView& w, const float* y, int64_t ldy,
                                              double tol, int64_t row_step) {
  for (int64_t m = 0; m < acts.M; m += row_step)
    for (int64_t n = 0; n < w.rows; ++n) {
      double ref = 0, mag = 0;
      for (int64_t k = 0; k < acts.K; ++k) {
        const double xv = xt == DType::f32 ? double(acts.f[m * acts.ld + k])
                                           : double(bf16_to_f32(acts.b[m * acts.ld + k]));
        const double p = xv * weight_value(w, n, k);
        ref += p, mag += std::fabs(p);
      }
      if (!(std::fabs(y[m * ldy + n] - ref) <= tol * mag + 1e-30))
        return ::testing::AssertionFailure()
               << "m=" << m << " n=" << n << ": " << y[m * ldy + n] << " vs reference " << ref
               << " (sum |x w| " << mag << ")";
    }
  return ::testing::AssertionSuccess();
}

// The whole check for one weight view and one activation matrix: the full batch against every
// single row, a set of row ranges (M across the small-M / packed threshold) and other thread
// counts, and the N split as separate views of W's row ranges.
void expect_batch_invariant(const Activations& acts, DType xt, const WeightView& w,
                            bool all_single_rows = true) {
  const int64_t M = acts.M, N = w.rows, ldy = N + 3;
  set_num_threads(2);
  const std::vector<float> full = run_gemm(acts.rows(xt, 0, M), w, ldy);
  const bool pairs = active_isa() == Isa::avx512bf16 && xt == DType::bf16 &&
                     (w.dtype == DType::bf16 || w.dtype == DType::fp8_e4m3);
  ASSERT_TRUE(close_to_reference(acts, xt, w, full.data(), ldy, pairs ? 1e-2 : 1e-4,
                                 all_single_rows ? 1 : 5));
  for (int64_t m = 0; m < M; ++m) {
    if (!all_single_rows && m % 7 != 0 && m != M - 1) continue;
    const std::vector<float> one = run_gemm(acts.rows(xt, m, 1), w, N);
    ASSERT_TRUE(same_bits(full.data() + m * ldy, ldy, one.data(), N, 1, N))
        << "row " << m << " alone";
  }
  // Small M in one pass of the decode kernel, in two (5..8: FP8 decoded again per pass), the GEMM.
  const std::pair<int64_t, int64_t> ranges[] = {{0, 2}, {1, 4},  {2, 5},  {1, 7},  {3, 8}, {5, 9},
                                                {0, 8}, {2, 16}, {7, 24}, {1, 33}, {0, M}};
  for (auto [m0, n_rows] : ranges) {
    if (m0 + n_rows > M) continue;
    const std::vector<float> part = run_gemm(acts.rows(xt, m0, n_rows), w, N);
    ASSERT_TRUE(same_bits(full.data() + m0 * ldy, ldy, part.data(), N, n_rows, N))
        << "rows [" << m0 << ", " << m0 + n_rows << ")";
  }
  for (int threads : {1, 3}) {
    set_num_threads(threads);
    const std::vector<float> y = run_gemm(acts.rows(xt, 0, M), w, ldy);
    ASSERT_TRUE(same_bits(full.data(), ldy, y.data(), ldy, M, N)) << threads << " threads";
  }
  set_num_threads(2);
  // W's rows [n0, n1) alone give the same columns (lane positions and groups move).
  for (auto [n0, n1] : {std::pair<int64_t, int64_t>{1, N}, {N / 3, N - N / 4}}) {
    if (n1 <= n0) continue;
    if (w.kn && w.dtype == DType::u4 && n0 % 2) continue;  // no view starts mid-byte
    WeightView part = w;
    if (w.kn) {  // a column range of the storage
      part.rows = n1 - n0, part.col0 = w.col0 + n0;
      part.data = w.element_ptr(0, n0);
    } else {
      part = w.storage_rows(n0, n1 - n0);
    }
    for (int64_t m0 : {int64_t(0), M / 2}) {
      const int64_t n_rows = std::min<int64_t>(M - m0, 9);
      const std::vector<float> y = run_gemm(acts.rows(xt, m0, n_rows), part, n1 - n0);
      ASSERT_TRUE(same_bits(full.data() + m0 * ldy + n0, ldy, y.data(), n1 - n0, n_rows, n1 - n0))
          << "W rows [" << n0 << ", " << n1 << ") from x row " << m0;
    }
  }
}

const DType kWeightTypes[] = {DType::f32, DType::bf16, DType::f16, DType::fp8_e4m3};

TEST(GemmInvariance, RowsBatchesThreadsAndNSplitForEveryDtypeAndKTail) {
  const int saved = num_threads();
  const int64_t kKs[] = {1, 7, 100, 128, 511, 512, 513, 1100, 2051};
  const int64_t kNs[] = {1, 17, 70, 100, 33, 64, 129, 16, 80};
  for_each_isa([&](Isa) {
    for (size_t i = 0; i < std::size(kKs); ++i) {
      const int64_t K = kKs[i], N = kNs[i], M = 40;
      const Activations acts(M, K, K + (i % 2) * 5, uint32_t(100 + i));
      for (int wi = 0; wi < 5; ++wi) {  // the four dtypes, then fp8 with only normal codes
        const DType wt = wi < 4 ? kWeightTypes[wi] : DType::fp8_e4m3;
        const StoredWeight sw(wt, N, K, uint32_t(200 + i), wi == 4);
        for (DType xt : {DType::f32, DType::bf16}) {
          SCOPED_TRACE("K=" + std::to_string(K) + " N=" + std::to_string(N) +
                       " x=" + std::string(dtype_name(xt)) + " w=" + std::string(dtype_name(wt)) +
                       (wi == 4 ? " (normal codes)" : ""));
          expect_batch_invariant(acts, xt, sw.view(0, N, 0, K, false));
          if (HasFatalFailure()) return set_num_threads(saved);
        }
      }
    }
  });
  set_num_threads(saved);
}

// [K, N] storage (MLA's W_UK) and sub-views that start mid-block in rows and columns (one head
// of kv_b_proj), both layouts.
TEST(GemmInvariance, KnLayoutAndSubViews) {
  const int saved = num_threads();
  for_each_isa([&](Isa) {
    for (DType wt : kWeightTypes) {
      const StoredWeight sw(wt, 700, 600, 7);
      struct V {
        int64_t r0, nr, c0, nc;
        bool kn;
      };
      const V views[] = {{70, 90, 0, 600, false},   {256, 128, 0, 512, true},
                         {70, 90, 0, 200, true},    {3, 300, 131, 469, false},
                         {129, 513, 5, 77, true},   {0, 700, 0, 600, true},
                         {200, 37, 300, 300, false}};
      for (const V& v : views)
        for (DType xt : {DType::f32, DType::bf16}) {
          SCOPED_TRACE("w=" + std::string(dtype_name(wt)) + " x=" + std::string(dtype_name(xt)) +
                       " r0=" + std::to_string(v.r0) + " c0=" + std::to_string(v.c0) +
                       (v.kn ? " kn" : " nk"));
          const WeightView w = sw.view(v.r0, v.nr, v.c0, v.nc, v.kn);
          const Activations acts(20, w.cols, w.cols, 9);
          expect_batch_invariant(acts, xt, w, false);
          if (HasFatalFailure()) return set_num_threads(saved);
        }
    }
  });
  set_num_threads(saved);
}

// INT4 / INT8 codes with group scales (compressed-tensors): group sizes 32 / 64 / 128 and a whole
// row (channel-wise), bf16 and f32 scales, K tails and groups that do not divide K, sub-views of
// storage rows from an odd row, the [K, N] layout (one row of f32 x: decoded in registers; else the
// generic panel path), and M across the small-M /
// packed threshold; zero points (asymmetric checkpoints) on two shapes in three. The packed codes
// decode exactly, so the tolerance is the f32 one.
TEST(GemmInvariance, IntegerWeightsWithGroupScales) {
  const int saved = num_threads();
  struct Shape {
    int64_t N, K, group;
  };
  const Shape shapes[] = {{70, 256, 32}, {33, 512, 64}, {100, 1100, 128}, {17, 384, 384},
                          {129, 96, 32}, {5, 200, 64},  {64, 130, 128}};
  for_each_isa([&](Isa) {
    for (DType wt : {DType::u4, DType::u8, DType::i8})
      for (size_t i = 0; i < std::size(shapes); ++i) {
        const Shape sh = shapes[i];
        const DType st = i % 2 ? DType::f32 : DType::bf16;
        StoredWeight sw(wt, sh.N + 3, sh.K, uint32_t(300 + i), sh.group, st);
        if (i % 3 != 0) sw.with_zero_points(uint32_t(350 + i));
        for (DType xt : {DType::f32, DType::bf16}) {
          SCOPED_TRACE("w=" + std::string(dtype_name(wt)) + (i % 3 ? " asymmetric" : "") +
                       " N=" + std::to_string(sh.N) + " K=" + std::to_string(sh.K) + " group=" +
                       std::to_string(sh.group) + " scales=" + std::string(dtype_name(st)) +
                       " x=" + std::string(dtype_name(xt)));
          const Activations acts(20, sh.K, sh.K + 3, uint32_t(400 + i));
          expect_batch_invariant(acts, xt, sw.view(3, sh.N, 0, sh.K, false), i != 0);
          if (HasFatalFailure()) return set_num_threads(saved);
          if (i == 1) {  // [K, N] storage: the whole stored matrix as W^T
            const Activations acts_kn(12, sh.N + 3, sh.N + 3, 17);
            expect_batch_invariant(acts_kn, xt, sw.view(0, sh.N + 3, 0, sh.K, true), false);
            if (HasFatalFailure()) return set_num_threads(saved);
            // One head's W_UK: storage rows from an odd one, columns from a later group.
            const Activations acts_head(12, 20, 20, 18);
            expect_batch_invariant(acts_head, xt, sw.view(5, 20, 64, 384, true), false);
            if (HasFatalFailure()) return set_num_threads(saved);
          }
        }
      }
  });
  set_num_threads(saved);
}

// M = 300 (many packed strips) against single rows and small batches.
TEST(GemmInvariance, LargeBatch) {
  const int saved = num_threads();
  for_each_isa([&](Isa) {
    for (DType wt : kWeightTypes)
      for (DType xt : {DType::f32, DType::bf16}) {
        SCOPED_TRACE("w=" + std::string(dtype_name(wt)) + " x=" + std::string(dtype_name(xt)));
        const StoredWeight sw(wt, 150, 1100, 11);
        const Activations acts(300, 1100, 1100, 12);
        expect_batch_invariant(acts, xt, sw.view(0, 150, 0, 1100, false), false);
        if (HasFatalFailure()) return set_num_threads(saved);
      }
  });
  set_num_threads(saved);
}

// FP8 with large activations and scales (the old GEMV took a headroom factor over all rows of
// the batch): rows of very different magnitudes, scales past 2^7 (the exact slow decode) and a
// negative scale, both layouts.
TEST(GemmInvariance, Fp8LargeActivationsAndScales) {
  const int saved = num_threads();
  StoredWeight sw(DType::fp8_e4m3, 300, 700, 13);
  for (size_t i = 0; i < sw.scales.size(); ++i) sw.scales[i] *= i % 3 == 0 ? 64.0f : 1.0f;
  sw.scales[1] = 300.0f, sw.scales[4] = -0.02f, sw.scales[sw.scale_ld + 2] = 0x1p9f;
  Activations acts(24, 700, 700, 14);
  const float amps[] = {1e-20f, 1.0f, 3e4f, 1e4f, 1e9f, 1e-3f};
  for (int64_t m = 0; m < acts.M; ++m)
    for (int64_t k = 0; k < acts.K; ++k) acts.f[m * acts.ld + k] *= amps[m % 6];
  acts.b = testing::to_bf16(acts.f);
  for_each_isa([&](Isa) {
    for (DType xt : {DType::f32, DType::bf16}) {
      SCOPED_TRACE(std::string(dtype_name(xt)));
      expect_batch_invariant(acts, xt, sw.view(0, 300, 0, 700, false));
      if (HasFatalFailure()) return set_num_threads(saved);
      Activations acts_kn(24, 300, 300, 15);
      expect_batch_invariant(acts_kn, xt, sw.view(0, 300, 0, 700, true));
      if (HasFatalFailure()) return set_num_threads(saved);
    }
  });
  set_num_threads(saved);
}

// FP8 with power-of-two scales (ue8m0, as DeepSeek's and our checkpoints): on AVX512-BF16 the
// decode GEMV turns the codes into bf16 in registers, a few rows at a time, and takes a 128-column
// block that holds a zero or subnormal code from its decoded copy (the GEMM's decode too: four
// integer ops per vector where a block has neither, the flagged decode where it has zeros only,
// through f32 where it has a subnormal). Single rows against batches, with
// views whose row groups straddle a 128-row scale block, that start mid-block in the columns, or
// end in a partial block, so every fallback meets the fast path.
TEST(GemmInvariance, Fp8PowerOfTwoScalesDecodedInRegisters) {
  const int saved = num_threads();
  StoredWeight sw(DType::fp8_e4m3, 300, 1600, 21, true);
  for (size_t i = 0; i < sw.scales.size(); ++i) sw.scales[i] = std::ldexp(1.0f, -int(4 + i % 7));
  for (int64_t i = 0; i < 300 * 1600; i += 4999) sw.f8[size_t(i)].bits = i % 2 ? 0x03 : 0x86;
  for (int64_t i = 2500; i < 300 * 1600; i += 7001) sw.f8[size_t(i)].bits = i % 2 ? 0x00 : 0x80;
  for_each_isa([&](Isa) {
    struct V {
      int64_t r0, nr, c0, nc;
    };
    for (const V& v :
         {V{0, 300, 0, 1600}, V{3, 250, 0, 1536}, V{0, 130, 128, 1408}, V{64, 200, 5, 1100}}) {
      SCOPED_TRACE("r0=" + std::to_string(v.r0) + " c0=" + std::to_string(v.c0) +
                   " K=" + std::to_string(v.nc));
      const Activations acts(20, v.nc, v.nc, uint32_t(30 + v.r0));
      for (DType xt : {DType::bf16, DType::f32}) {
        expect_batch_invariant(acts, xt, sw.view(v.r0, v.nr, v.c0, v.nc, false));
        if (HasFatalFailure()) return set_num_threads(saved);
      }
    }
  });
  set_num_threads(saved);
}

// ---- W8A8 / W4A8: int8 activations times integer weights (gemm_int8.h) -----------------------

TEST(QuantizeInt8Row, AmaxOver127RoundHalfEven) {
  const float x[] = {1.27f, -0.635f, 0.005f, 0.015f, -1.27f, 0.0f};
  int8_t q[6];
  const float s = quantize_int8_row(x, 6, q);
  EXPECT_FLOAT_EQ(s, 0.01f);
  const int8_t want[] = {127,
                         int8_t(std::nearbyint(-0.635f / s)),
                         int8_t(std::nearbyint(0.005f / s)),
                         int8_t(std::nearbyint(0.015f / s)),
                         -127,
                         0};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(q[i], want[i]) << i;
  const float zeros[3] = {0, 0, 0};
  EXPECT_EQ(quantize_int8_row(zeros, 3, q), 1.0f);
  EXPECT_EQ(q[0], 0);
}

// y = sx * sum_g sw * (xq . wq) against the double reference on every ISA: the int8-dot paths
// (u8 / i8 / u4 codes, groups that are and are not a multiple of the kernel's column step, and
// channel-wise; 16 and 32 groups for the transposed scale packing; M = 1 with whole-load groups
// takes the row-dot form), zero points on two shapes in three, the f32 fallback (K not a multiple
// of the step, the [K, N] layout), tails in M and N, zero rows; each row bitwise the same at M = 1
// and in a batch, at 1, 2 and 3 threads.
TEST(GemmInt8, MatchesTheReferenceAndIsBatchInvariant) {
  const int saved = num_threads();
  struct Shape {
    int64_t N, K, group;
  };
  const Shape shapes[] = {{37, 512, 128}, {9, 1024, 1024}, {70, 256, 256},
                          {5, 384, 128},  {21, 256, 32},   {6, 96, 32},
                          {33, 200, 200}, {45, 2048, 128}, {18, 1024, 64}};
  for_each_isa([&](Isa) {
    for (DType wt : {DType::u8, DType::i8, DType::u4})
      for (size_t i = 0; i < std::size(shapes); ++i) {
        const Shape sh = shapes[i];
        StoredWeight sw(wt, sh.N + 2, sh.K, uint32_t(500 + i), sh.group,
                        i % 2 ? DType::f32 : DType::bf16);
        if (i % 3 != 0) sw.with_zero_points(uint32_t(550 + i));
        SCOPED_TRACE("w=" + std::string(dtype_name(wt)) + (i % 3 ? " asymmetric" : "") +
                     " N=" + std::to_string(sh.N) + " K=" + std::to_string(sh.K) +
                     " group=" + std::to_string(sh.group));
        const WeightView w = sw.view(2, sh.N, 0, sh.K, false);
        const Activations acts(19, sh.K, sh.K + 5, uint32_t(600 + i));
        const int64_t M = acts.M, ldy = sh.N + 1;
        std::vector<float> want(size_t(M * ldy)), got(size_t(M * ldy), -1.0f);
        gemm_int8_activations_reference(acts.f.data(), M, acts.ld, w, want.data(), ldy);
        set_num_threads(2);
        gemm_int8_activations(acts.f.data(), M, acts.ld, w, got.data(), ldy);
        std::vector<int8_t> q(size_t(sh.K));
        for (int64_t m = 0; m < M; ++m) {
          // The bound: the f32 steps on sum |sx sw xq wq|.
          const float sx = quantize_int8_row(acts.f.data() + m * acts.ld, sh.K, q.data());
          for (int64_t n = 0; n < sh.N; ++n) {
            double mag = 0;
            for (int64_t k = 0; k < sh.K; ++k)
              mag += std::fabs(double(q[size_t(k)]) * w.value_at(n, k));
            ASSERT_NEAR(got[size_t(m * ldy + n)], want[size_t(m * ldy + n)],
                        2e-6 * sx * mag + 1e-30)
                << "m " << m << " n " << n;
          }
        }
        for (int threads : {1, 3}) {
          set_num_threads(threads);
          for (int64_t m : {int64_t(0), int64_t(2), M - 1}) {  // alone, at M = 1
            std::vector<float> one(size_t(ldy), -1.0f);
            gemm_int8_activations(acts.f.data() + m * acts.ld, 1, acts.ld, w, one.data(), ldy);
            ASSERT_TRUE(same_bits(one.data(), ldy, got.data() + m * ldy, ldy, 1, sh.N))
                << "threads " << threads << " row " << m;
          }
          std::vector<float> part(size_t(7 * ldy), -1.0f);  // a batch of 7 from row 5
          gemm_int8_activations(acts.f.data() + 5 * acts.ld, 7, acts.ld, w, part.data(), ldy);
          ASSERT_TRUE(same_bits(part.data(), ldy, got.data() + 5 * ldy, ldy, 7, sh.N));
        }
      }
  });
  set_num_threads(saved);
}

// A view starting at a later group (the zero points and scales of its own columns), and enough
// rows that decode hands each task a run of blocks (the runs prefetch their next rows): M = 1
// against the reference and bitwise against a batch of 9 (the packed path), 1 and 2 threads.
TEST(GemmInt8, ColumnViewsAndRunsOfBlocks) {
  const int saved = num_threads();
  for_each_isa([&](Isa) {
    for (DType wt : {DType::u8, DType::i8, DType::u4}) {
      SCOPED_TRACE(dtype_name(wt));
      StoredWeight sw(wt, 700, 640, 710, 128, DType::bf16);
      sw.with_zero_points(711);
      const WeightView w = sw.view(3, 690, 128, 512, false);  // columns 128 .. 639
      const Activations acts(9, 512, 520, 712);
      const int64_t ldy = 690;
      std::vector<float> want(size_t(9 * ldy)), batch(size_t(9 * ldy), -1.0f);
      gemm_int8_activations_reference(acts.f.data(), 9, acts.ld, w, want.data(), ldy);
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        gemm_int8_activations(acts.f.data(), 9, acts.ld, w, batch.data(), ldy);
        for (int64_t m : {int64_t(0), int64_t(8)}) {
          std::vector<float> one(size_t(ldy), -1.0f);
          gemm_int8_activations(acts.f.data() + m * acts.ld, 1, acts.ld, w, one.data(), ldy);
          ASSERT_TRUE(same_bits(one.data(), ldy, batch.data() + m * ldy, ldy, 1, 690))
              << "threads " << threads << " row " << m;
          for (int64_t n = 0; n < 690; ++n)
            ASSERT_NEAR(one[size_t(n)], want[size_t(m * ldy + n)],
                        1e-4 * std::fabs(want[size_t(m * ldy + n)]) + 1e-4)
                << "row " << m << " n " << n;
        }
      }
    }
  });
  set_num_threads(saved);
}

TEST(GemmInt8, KnLayoutAndBadArguments) {
  const StoredWeight sw(DType::u8, 64, 128, 77, 64, DType::bf16);
  const Activations acts(3, 64, 64, 78);
  const WeightView w = sw.view(0, 64, 0, 128, true);  // [K = 64, N = 128] storage
  std::vector<float> want(3 * 128), got(3 * 128);
  gemm_int8_activations_reference(acts.f.data(), 3, 64, w, want.data(), 128);
  gemm_int8_activations(acts.f.data(), 3, 64, w, got.data(), 128);
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 1e-4 * std::fabs(want[i]) + 1e-6);
  const StoredWeight f(DType::bf16, 8, 64, 79);
  EXPECT_THROW(
      gemm_int8_activations(acts.f.data(), 3, 64, f.view(0, 8, 0, 64, false), got.data(), 8),
      std::invalid_argument);
  EXPECT_THROW(gemm_int8_activations(acts.f.data(), 3, 10, w, got.data(), 128),
               std::invalid_argument);
}

}  // namespace
}  // namespace dsinfer

#include "kernels/gemm.h"

#include <gtest/gtest.h>

#include <cmath>
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

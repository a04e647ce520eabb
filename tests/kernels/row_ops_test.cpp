// The forward's row ops (norms, RoPE, MoE routing) against the reference operators, under every
// ISA this CPU runs: shapes with vector tails, strided rows, aliasing, ties in the router.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/convert.h"
#include "kernels/moe_router.h"
#include "kernels/norms.h"
#include "kernels/reference/moe_router.h"
#include "kernels/reference/norms.h"
#include "kernels/reference/rope.h"
#include "kernels/rope.h"
#include "test_util.h"

namespace dsinfer {
namespace {

using testing::expect_close;
using testing::for_each_isa;
using testing::random_floats;

// The bf16 rounding of activations: bit for bit f32_to_bf16 (ties to even, NaN stays NaN, inf and
// values that round up to inf), strided rows, vector tails.
TEST(Convert, Bf16RoundingMatchesTheScalarRounding) {
  for_each_isa([](Isa) {
    for (int64_t cols : {1, 7, 16, 33, 512}) {
      const int64_t rows = 41, ld = cols + 5;
      auto x = random_floats(size_t(rows * ld), 7 + uint32_t(cols), -1e3f, 1e3f);
      const float specials[] = {NAN,
                                INFINITY,
                                -INFINITY,
                                0.0f,
                                -0.0f,
                                3.3895314e38f,
                                1.0f + 1.0f / 256,  // a tie: rounds to even (1.0)
                                1.0f + 3.0f / 256,  // a tie: rounds to even (up)
                                1e-40f};            // subnormal
      for (size_t i = 0; i < std::size(specials); ++i) x[i * 3 % x.size()] = specials[i];
      const int64_t ldo = cols + 3;  // strided output: the gaps between rows stay untouched
      std::vector<bf16> b(size_t(rows * ldo), bf16{0x1234});
      to_bf16(x.data(), rows, cols, ld, b.data(), ldo);
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < ldo; ++j) {
          const bf16 got = b[size_t(i * ldo + j)];
          if (j >= cols) {
            ASSERT_EQ(got.bits, 0x1234) << i << "," << j;
            continue;
          }
          const float v = x[size_t(i * ld + j)];
          if (std::isnan(v)) {
            ASSERT_TRUE(std::isnan(bf16_to_f32(got))) << i << "," << j;
            continue;
          }
          ASSERT_EQ(got.bits, f32_to_bf16(v).bits) << v << " at " << i << "," << j;
        }
    }
    std::vector<float> z(4);
    std::vector<bf16> zb(4);
    EXPECT_THROW(to_bf16(z.data(), 1, 4, 3, zb.data(), 4), std::invalid_argument);
  });
}

TEST(Norms, RmsNormMatchesReferenceOnStridedRowsInPlace) {
  for_each_isa([](Isa) {
    for (int64_t dim : {512, 1536, 7, 100, 16, 17}) {
      const int64_t rows = 37, ld = dim + 9;
      auto x = random_floats(size_t(rows * ld), 31 + uint32_t(dim), -3, 5);
      x[0] = 0;  // an all-zero row gives zeros, not NaN
      for (int64_t j = 0; j < dim; ++j) x[size_t(j)] = 0;
      auto w = random_floats(size_t(dim), 32, 0.5f, 1.5f);
      std::vector<float> want(size_t(rows * dim));
      for (int64_t r = 0; r < rows; ++r)
        ref::rms_norm(x.data() + r * ld, 1, dim, w.data(), 1e-6f, want.data() + r * dim);
      // Out of place, packed output.
      std::vector<float> y(size_t(rows * dim));
      rms_norm(x.data(), rows, dim, ld, w.data(), 1e-6f, y.data(), dim);
      expect_close(y, want, 2e-6f, 1e-7f);
      // In place on the strided rows: the padding between rows is untouched.
      auto xi = x;
      rms_norm(xi.data(), rows, dim, ld, w.data(), 1e-6f, xi.data(), ld);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < ld; ++j) {
          const size_t i = size_t(r * ld + j);
          if (j >= dim)
            ASSERT_EQ(xi[i], x[i]);
          else
            ASSERT_EQ(xi[i], y[size_t(r * dim + j)]) << r << "," << j;
        }
      for (int64_t j = 0; j < dim; ++j) ASSERT_EQ(y[size_t(j)], 0.0f);
    }
    std::vector<float> z(4);
    EXPECT_THROW(rms_norm(z.data(), 1, 4, 3, z.data(), 1e-6f, z.data(), 4), std::invalid_argument);
  });
}

TEST(Norms, RmsNormDoesNotDependOnTheThreadCount) {
  const int saved = num_threads();
  for_each_isa([&](Isa) {
    const int64_t rows = 300, dim = 1024;
    auto x = random_floats(size_t(rows * dim), 5);
    auto w = random_floats(size_t(dim), 6);
    std::vector<float> a(x.size()), b(x.size());
    set_num_threads(1);
    rms_norm(x.data(), rows, dim, dim, w.data(), 1e-6f, a.data(), dim);
    set_num_threads(saved);
    rms_norm(x.data(), rows, dim, dim, w.data(), 1e-6f, b.data(), dim);
    ASSERT_EQ(a, b);
    // A row's result is the same alone as in a batch.
    std::vector<float> one(static_cast<size_t>(dim));
    rms_norm(x.data() + 123 * dim, 1, dim, dim, w.data(), 1e-6f, one.data(), dim);
    for (int64_t j = 0; j < dim; ++j) ASSERT_EQ(one[size_t(j)], b[size_t(123 * dim + j)]);
  });
  set_num_threads(saved);
}

TEST(Rope, InterleavedMatchesReference) {
  for_each_isa([](Isa) {
    const int64_t T = 11;
    auto inv = ref::yarn_inv_freq(64, 10000.0, 40.0, 4096, 32, 1);
    std::vector<int32_t> pos(T);
    for (int64_t t = 0; t < T; ++t) pos[size_t(t)] = int32_t(t * 7919 % 160000);
    pos[0] = 0;
    // MLA q: [T, H, 192] with the rope part at 128; the kv row: [T, 576] with it at 512.
    for (auto [H, stride, offset] :
         {std::tuple<int, int64_t, int64_t>{5, 192, 128}, {1, 576, 512}}) {
      auto x = random_floats(size_t(T * H * stride), 9 + uint32_t(H), -2, 2);
      auto want = x;
      ref::rope_interleaved(want.data() + offset, T, H, stride, 64, pos.data(), inv.data());
      rope_interleaved(x.data() + offset, T, H, stride, 64, pos.data(), inv.data());
      expect_close(x, want, 1e-6f, 1e-6f);  // and the non-rope dims untouched
    }
    // A width that is not a multiple of the vector: the scalar tail.
    auto inv2 = ref::rope_inv_freq(22, 10000.0);
    auto y = random_floats(size_t(T) * 2 * 26, 10);
    auto ywant = y;
    ref::rope_interleaved(ywant.data(), T, 2, 26, 22, pos.data(), inv2.data());
    rope_interleaved(y.data(), T, 2, 26, 22, pos.data(), inv2.data());
    expect_close(y, ywant, 1e-6f, 1e-6f);
    EXPECT_THROW(rope_interleaved(y.data(), T, 1, 20, 22, pos.data(), inv2.data()),
                 std::invalid_argument);
  });
}

TEST(Rope, HalvesMatchesReference) {
  for_each_isa([](Isa) {
    const int64_t T = 9;
    const int H = 3, stride = 128;
    auto inv = ref::yarn_inv_freq(64, 10000.0, 40.0, 4096, 32, 1);
    std::vector<int32_t> pos(T);
    for (int64_t t = 0; t < T; ++t) pos[size_t(t)] = int32_t(t * 7919 % 160000);
    auto x = random_floats(size_t(T) * H * stride, 9, -2, 2);
    auto want = x;
    ref::rope_halves(want.data(), T, H, stride, 64, pos.data(), inv.data());
    rope_halves(x.data(), T, H, stride, 64, pos.data(), inv.data());
    expect_close(x, want, 1e-6f, 1e-6f);
    // dims [64, 128) untouched (checked by equality above); an odd tail width too:
    auto inv2 = ref::rope_inv_freq(20, 10000.0);
    auto y = random_floats(size_t(T) * 24, 10);
    auto ywant = y;
    ref::rope_halves(ywant.data(), T, 1, 24, 20, pos.data(), inv2.data());
    rope_halves(y.data(), T, 1, 24, 20, pos.data(), inv2.data());
    expect_close(y, ywant, 1e-6f, 1e-6f);
  });
}

TEST(Norms, LayerNormMatchesReference) {
  for_each_isa([](Isa) {
    for (int64_t dim : {128, 100}) {
      const int64_t rows = 33;
      auto x = random_floats(size_t(rows * dim), 21, -3, 5);
      auto w = random_floats(size_t(dim), 22, 0.5f, 1.5f);
      auto b = random_floats(size_t(dim), 23);
      std::vector<float> y(x.size()), want(x.size());
      layer_norm(x.data(), rows, dim, w.data(), b.data(), 1e-6f, y.data());
      ref::layer_norm(x.data(), rows, dim, w.data(), b.data(), 1e-6f, want.data());
      expect_close(y, want, 1e-5f, 1e-5f);
    }
  });
}

TEST(MoeRouter, BitwiseTheReferenceIncludingTies) {
  struct Case {
    int E, G, KG, K;
    bool norm;
  };
  for (const Case& c : {Case{256, 8, 4, 8, true}, Case{16, 4, 2, 4, true}, Case{64, 1, 1, 6, false},
                        Case{8, 8, 3, 3, true}, Case{32, 4, 4, 32, true}}) {
    SCOPED_TRACE(::testing::Message() << "E=" << c.E << " G=" << c.G << " K=" << c.K);
    const int64_t T = 97;
    auto logits = random_floats(size_t(T * c.E), uint32_t(c.E + c.K), -4, 4);
    auto bias = random_floats(size_t(c.E), 77, -0.1f, 0.1f);
    // Ties: equal logits in a row, equal biased scores across groups, a row of one value.
    for (int e = 0; e < c.E; ++e) logits[size_t(3 * c.E + e)] = 0.5f;
    for (int e = 0; e < c.E; e += 2) logits[size_t(5 * c.E + e)] = logits[size_t(5 * c.E + e + 1)];
    for (int e = 0; e < c.E; ++e) logits[size_t(7 * c.E + e)] = float(e % 3);
    const MoeRouting r{c.E, c.G, c.KG, c.K, c.norm, 2.5f};
    for (const float* b :
         {static_cast<const float*>(bias.data()), static_cast<const float*>(nullptr)}) {
      std::vector<int32_t> ids(size_t(T * c.K)), want_ids(ids.size());
      std::vector<float> w(ids.size()), want_w(ids.size());
      ref::moe_route(logits.data(), b, T, r, want_ids.data(), want_w.data());
      moe_route(logits.data(), b, T, r, ids.data(), w.data());
      ASSERT_EQ(ids, want_ids);
      ASSERT_EQ(w, want_w);
    }
  }
  std::vector<float> l(16);
  std::vector<int32_t> ids(8);
  std::vector<float> w(8);
  EXPECT_THROW(
      moe_route(l.data(), nullptr, 1, MoeRouting{16, 3, 1, 2, true, 1}, ids.data(), w.data()),
      std::invalid_argument);
  EXPECT_THROW(
      moe_route(l.data(), nullptr, 1, MoeRouting{16, 4, 1, 5, true, 1}, ids.data(), w.data()),
      std::invalid_argument);
}

}  // namespace
}  // namespace dsinfer

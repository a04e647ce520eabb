// Indexer prolog ops against the reference operators, under every ISA this CPU runs.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/indexer_prolog.h"
#include "kernels/reference/fp8_quant.h"
#include "kernels/reference/hadamard.h"
#include "test_util.h"

namespace dsinfer {
namespace {

using testing::expect_close;
using testing::for_each_isa;
using testing::random_floats;

TEST(IndexerProlog, HadamardMatchesReference) {
  for_each_isa([](Isa) {
    for (int64_t rows : {1, 3, 257}) {
      auto x = random_floats(size_t(rows) * 128, 11 + uint32_t(rows), -4, 4);
      auto want = x;
      ref::hadamard_128(want.data(), rows);
      hadamard_128(x.data(), rows);
      expect_close(x, want, 2e-6f, 2e-6f);
    }
  });
}

TEST(IndexerProlog, HadamardIsItsOwnInverse) {
  for_each_isa([](Isa) {
    auto x = random_floats(128 * 5, 3);
    auto y = x;
    hadamard_128(y.data(), 5);
    hadamard_128(y.data(), 5);
    expect_close(y, x, 1e-5f, 1e-6f);
  });
}

TEST(IndexerProlog, Fp8QuantizationIsBitExact) {
  for_each_isa([](Isa) {
    for (bool ue8m0 : {true, false}) {
      const int64_t nb = 67;
      auto x = random_floats(size_t(nb) * 128, 5, -3, 3);
      for (int j = 0; j < 128; ++j) x[size_t(j)] = 0.0f;                    // all-zero block
      for (int j = 0; j < 128; ++j) x[128 + size_t(j)] *= 1e-7f;            // tiny block
      for (int j = 0; j < 128; ++j) x[256 + size_t(j)] *= 1e5f;             // large block
      for (int j = 0; j < 128; ++j) x[384 + size_t(j)] = float(j % 9) - 4;  // ties to even
      std::vector<uint8_t> q(x.size()), qr(x.size());
      std::vector<float> s(static_cast<size_t>(nb)), sr(static_cast<size_t>(nb));
      quantize_fp8_blocks(x.data(), nb, ue8m0, q.data(), s.data());
      ref::quantize_fp8_blocks(x.data(), nb, ue8m0, qr.data(), sr.data());
      for (int64_t b = 0; b < nb; ++b) ASSERT_EQ(s[size_t(b)], sr[size_t(b)]) << "block " << b;
      for (size_t i = 0; i < q.size(); ++i) ASSERT_EQ(q[i], qr[i]) << "at " << i;
    }
  });
}

}  // namespace
}  // namespace dsinfer

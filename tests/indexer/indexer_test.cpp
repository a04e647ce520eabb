// Lightning indexer with fused top-k against the reference scores + reference top-k. The data is
// integer-valued (small e4m3 integers, power-of-two weights and key scales) so every score is
// exact in f32 whatever the summation order: indices and scores must be equal, ties included.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/indexer.h"
#include "kernels/reference/indexer.h"
#include "kernels/reference/topk.h"
#include "test_util.h"

namespace dsinfer {
namespace {

using testing::for_each_isa;

struct Case {
  int64_t T, N;
  int HI, K;
  bool causal;
};

struct Data {
  std::vector<uint8_t> q8, k8;
  std::vector<float> qf, kf, w, ks;
  std::vector<int64_t> nv;
};

Data make(const Case& c, uint32_t seed, int range) {
  std::mt19937 rng(seed);
  Data d;
  auto ival = [&] { return float(int(rng() % uint32_t(2 * range + 1)) - range); };
  d.qf.resize(size_t(c.T * c.HI * 128));
  d.kf.resize(size_t(c.N * 128));
  for (auto& x : d.qf) x = ival();
  for (auto& x : d.kf) x = ival();
  d.q8.resize(d.qf.size());
  d.k8.resize(d.kf.size());
  for (size_t i = 0; i < d.qf.size(); ++i) d.q8[i] = f32_to_fp8_e4m3(d.qf[i]).bits;
  for (size_t i = 0; i < d.kf.size(); ++i) d.k8[i] = f32_to_fp8_e4m3(d.kf[i]).bits;
  const float wv[] = {0.25f, 0.5f, 1.0f, 2.0f, -0.5f, 1.0f};
  d.w.resize(size_t(c.T * c.HI));
  for (auto& x : d.w) x = wv[rng() % 6];
  const float sv[] = {0.5f, 1.0f, 2.0f, 0.25f};
  d.ks.resize(size_t(c.N));
  for (auto& x : d.ks) x = sv[rng() % 4];
  d.nv.resize(size_t(c.T));
  for (int64_t t = 0; t < c.T; ++t)
    d.nv[size_t(t)] = c.causal ? std::min<int64_t>(c.N, c.N - c.T + t + 1) : c.N;
  return d;
}

void expect_equal(const std::vector<int32_t>& idx, const std::vector<int32_t>& idx_ref,
                  const std::vector<float>& sc, const std::vector<float>& sc_ref) {
  ASSERT_EQ(idx.size(), idx_ref.size());
  for (size_t i = 0; i < idx.size(); ++i) {
    ASSERT_EQ(idx[i], idx_ref[i]) << "slot " << i;
    ASSERT_EQ(sc[i], sc_ref[i]) << "slot " << i;
  }
}

// The same selection in position order (TopKOrder::by_position): each row's used slots sorted
// by position, their scores with them, the -1 / -inf padding after them.
void to_position_order(int64_t T, int K, std::vector<int32_t>& idx, std::vector<float>& sc) {
  for (int64_t t = 0; t < T; ++t) {
    std::vector<std::pair<int32_t, float>> row;
    for (int j = 0; j < K; ++j)
      if (idx[size_t(t * K + j)] >= 0)
        row.emplace_back(idx[size_t(t * K + j)], sc[size_t(t * K + j)]);
    std::sort(row.begin(), row.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (int j = 0; j < K; ++j) {
      const bool used = size_t(j) < row.size();
      idx[size_t(t * K + j)] = used ? row[size_t(j)].first : -1;
      sc[size_t(t * K + j)] = used ? row[size_t(j)].second : -__builtin_inff();
    }
  }
}

// Reference: full score matrix, then reference top-k with n_valid.
void reference(const Case& c, const Data& d, bool fp8, std::vector<int32_t>& idx,
               std::vector<float>& sc) {
  std::vector<float> scores(size_t(c.T * c.N));
  if (fp8)
    ref::indexer_scores_fp8(d.q8.data(), d.w.data(), c.T, c.HI, d.k8.data(), d.ks.data(), c.N,
                            nullptr, scores.data());
  else
    ref::indexer_scores_f32(d.qf.data(), d.w.data(), c.T, c.HI, d.kf.data(), c.N, nullptr,
                            scores.data());
  idx.resize(size_t(c.T * c.K));
  sc.resize(idx.size());
  ref::topk_indices(scores.data(), c.T, c.N, d.nv.data(), c.K, idx.data(), sc.data());
}

void run_case(const Case& c, uint32_t seed, int range = 3) {
  SCOPED_TRACE("T " + std::to_string(c.T) + " N " + std::to_string(c.N) + " HI " +
               std::to_string(c.HI) + " K " + std::to_string(c.K));
  Data d = make(c, seed, range);
  std::vector<int32_t> idx_ref_fp8, idx_ref_f32;
  std::vector<float> sc_ref_fp8, sc_ref_f32;
  reference(c, d, true, idx_ref_fp8, sc_ref_fp8);
  reference(c, d, false, idx_ref_f32, sc_ref_f32);
  // Paged copy of the fp8 keys, pages in a scrambled order.
  const int64_t n_pages = (c.N + kIndexerPageTokens - 1) / kIndexerPageTokens;
  std::vector<int32_t> table(static_cast<size_t>(n_pages));
  std::iota(table.begin(), table.end(), 0);
  std::shuffle(table.begin(), table.end(), std::mt19937(seed));
  std::vector<uint8_t> pages(size_t(n_pages + 1) * kIndexerPageBytes, 0xee);
  for (auto& p : table) p += 1;  // page 0 unused
  for (int64_t s = 0; s < c.N; ++s) {
    uint8_t* dst = indexer_page_token(pages.data(), table.data(), s);
    std::copy(d.k8.begin() + s * 128, d.k8.begin() + (s + 1) * 128, dst);
    std::memcpy(dst + 128, &d.ks[size_t(s)], 4);
  }
  std::vector<int32_t> pos_ref_fp8 = idx_ref_fp8, pos_ref_f32 = idx_ref_f32;
  std::vector<float> pos_sc_fp8 = sc_ref_fp8, pos_sc_f32 = sc_ref_f32;
  to_position_order(c.T, c.K, pos_ref_fp8, pos_sc_fp8);
  to_position_order(c.T, c.K, pos_ref_f32, pos_sc_f32);
  for_each_isa([&](Isa) {
    std::vector<int32_t> idx(size_t(c.T * c.K));
    std::vector<float> sc(idx.size());
    IndexerQueries q8{DType::fp8_e4m3, d.q8.data(), d.w.data(), c.T, c.HI};
    IndexerKeys k8{DType::fp8_e4m3, c.N, d.k8.data(), d.ks.data(), nullptr, nullptr};
    IndexerKeys kp{DType::fp8_e4m3, c.N, nullptr, nullptr, pages.data(), table.data()};
    IndexerQueries qf{DType::f32, d.qf.data(), d.w.data(), c.T, c.HI};
    IndexerKeys kf{DType::f32, c.N, d.kf.data(), nullptr, nullptr, nullptr};
    for (TopKOrder order : {TopKOrder::by_score, TopKOrder::by_position}) {
      const bool by_score = order == TopKOrder::by_score;
      SCOPED_TRACE(by_score ? "by score" : "by position");
      indexer_topk(q8, k8, d.nv.data(), c.K, idx.data(), sc.data(), order);
      {
        SCOPED_TRACE("fp8 contiguous");
        expect_equal(idx, by_score ? idx_ref_fp8 : pos_ref_fp8, sc,
                     by_score ? sc_ref_fp8 : pos_sc_fp8);
      }
      indexer_topk(q8, kp, d.nv.data(), c.K, idx.data(), sc.data(), order);
      {
        SCOPED_TRACE("fp8 paged");
        expect_equal(idx, by_score ? idx_ref_fp8 : pos_ref_fp8, sc,
                     by_score ? sc_ref_fp8 : pos_sc_fp8);
      }
      indexer_topk(qf, kf, d.nv.data(), c.K, idx.data(), sc.data(), order);
      {
        SCOPED_TRACE("f32");
        expect_equal(idx, by_score ? idx_ref_f32 : pos_ref_f32, sc,
                     by_score ? sc_ref_f32 : pos_sc_f32);
      }
    }
  });
}

TEST(Indexer, PrefillCausalSmall) {
  run_case({5, 5, 1, 3, true}, 1);
  run_case({37, 37, 4, 8, true}, 2);
  run_case({70, 70, 64, 16, true}, 3);
  run_case({50, 200, 9, 32, true}, 4);  // chunked prefill: 150 cached keys before the batch
}

TEST(Indexer, PrefillHeadCounts) {
  for (int hi : {2, 8, 16, 24, 33}) run_case({20, 300, hi, 64, true}, 10 + uint32_t(hi));
}

TEST(Indexer, DecodeManyKeysWithChunks) {
  const int saved = num_threads();
  set_num_threads(4);  // forces the key-chunk split and the merge
  run_case({1, 20000, 64, 2048, false}, 7);
  run_case({3, 9000, 8, 100, false}, 8, 1);  // range 1: very many exact ties
  run_case({4, 12000, 16, 300, true}, 13);   // chunks with per-query causal limits
  run_case({40, 6000, 16, 512, true}, 14);   // prefill: keys converted once, by all threads
  set_num_threads(saved);
}

// k most of the valid keys (a prefill chunk past index_topk: 2048 of 2-4K): the selection runs
// the radix path of keep_top on the whole row, with and without many exact ties.
TEST(Indexer, PrefillKeepsMostKeys) {
  run_case({24, 1200, 8, 800, true}, 15);
  run_case({16, 900, 4, 700, true}, 16, 1);  // range 1: ties at the k-th score
  run_case({8, 700, 2, 600, true}, 17, 0);   // all-zero data: every score ties
}

TEST(Indexer, KLargerThanValidKeys) {
  run_case({6, 10, 4, 32, true}, 9);
  run_case({2, 40, 3, 64, false}, 12, 0);  // all-zero data: every score ties at 0
}

}  // namespace
}  // namespace dsinfer

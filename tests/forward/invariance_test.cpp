// Batch invariance of the forward: a sequence's logits must be bitwise the same however its
// tokens are cut into chunks, whatever other sequences share its batches (prefill chunks and
// decode steps, in any order), at any thread count, and when its prefix comes from cache
// blocks another sequence wrote. Checked in every precision, attention mode and form, on the
// tiny preset (sparse attention after 16 tokens) and on mini (the real attention shapes).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"
#include "synthetic/gen_model.h"
#include "synthetic_models.h"

namespace dsinfer {
namespace {

std::vector<int32_t> random_tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(rng() % uint32_t(vocab));
  return t;
}

using Rows = std::vector<std::vector<float>>;  // logits of each position

// Logits of every position of `tokens` run alone in one entry.
Rows run_alone(Model& m, const std::vector<int32_t>& tokens, int64_t prompt_len) {
  const int seq = m.create_sequence();
  BatchEntry e{seq, tokens, true};
  e.prompt_len = prompt_len;
  const ForwardOutput out = m.forward({e});
  m.free_sequence(seq);
  const int64_t V = m.config().vocab_size;
  Rows rows;
  for (size_t i = 0; i < tokens.size(); ++i)
    rows.emplace_back(out.logits.data<float>() + int64_t(i) * V,
                      out.logits.data<float>() + int64_t(i + 1) * V);
  return rows;
}

// The same tokens in chunks (`cuts` = chunk sizes, cycled), each forward call also carrying other
// sequences: some prefilling random chunks, some decoding, entries in a random order.
Rows run_mixed(Model& m, const std::vector<int32_t>& tokens, int64_t prompt_len,
               const std::vector<int>& cuts, uint32_t seed, int start_seq_tokens = 0,
               int reuse_seq = -1) {
  std::mt19937 rng(seed);
  const int64_t V = m.config().vocab_size;
  const int seq = reuse_seq >= 0 ? reuse_seq : m.create_sequence();
  std::vector<int> others;
  for (int i = 0; i < 5; ++i) others.push_back(m.create_sequence());
  Rows rows(tokens.size());
  size_t pos = size_t(start_seq_tokens), c = 0;
  while (pos < tokens.size()) {
    const size_t n = std::min(tokens.size() - pos, size_t(cuts[c++ % cuts.size()]));
    std::vector<BatchEntry> batch;
    BatchEntry mine{
        seq, std::vector<int32_t>(tokens.begin() + long(pos), tokens.begin() + long(pos + n)),
        true};
    mine.prompt_len = prompt_len;
    batch.push_back(mine);
    for (int o : others) {
      const int k = int(rng() % 3);  // 0: skip, 1: decode, 2: a prefill chunk
      if (k == 0) continue;
      BatchEntry e{o, random_tokens(k == 1 ? 1 : 1 + int(rng() % 20), int(V), rng()),
                   rng() % 2 == 0};
      e.prompt_len = int64_t(rng() % 64);
      batch.push_back(e);
    }
    std::shuffle(batch.begin(), batch.end(), rng);
    const ForwardOutput out = m.forward(batch);
    for (size_t e = 0; e < batch.size(); ++e) {
      if (batch[e].seq != seq) continue;
      for (size_t i = 0; i < n; ++i) {
        const float* row = out.logits.data<float>() + (out.first_row[e] + int64_t(i)) * V;
        rows[pos + i].assign(row, row + V);
      }
    }
    pos += n;
  }
  for (int o : others) m.free_sequence(o);
  m.free_sequence(seq);
  return rows;
}

void expect_bitwise(const Rows& want, const Rows& got, size_t from, const std::string& what) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = from; i < want.size(); ++i) {
    ASSERT_EQ(want[i].size(), got[i].size()) << what << " position " << i;
    ASSERT_EQ(std::memcmp(want[i].data(), got[i].data(), want[i].size() * 4), 0)
        << what << ": logits of position " << i << " differ (first value " << want[i][0] << " vs "
        << got[i][0] << ")";
  }
}

struct Variant {
  const char* name;
  Precision precision;
  AttentionMode attention;
  AttentionForm form;
  bool indexer_fp8;
  GenDtype dtype;
};

class TinyInvariance : public ::testing::TestWithParam<Variant> {};

TEST_P(TinyInvariance, ChunksBatchesThreadsAndCachedPrefixes) {
  const Variant v = GetParam();
  ModelOptions mo;
  mo.precision = v.precision;
  mo.attention = v.attention;
  mo.attention_form = v.form;
  mo.indexer_fp8 = v.indexer_fp8;
  mo.mha_segment = 64;
  mo.kv_cache_tokens = 64 * 512;
  auto m = Model::load(testing::preset_dir(GenPreset::tiny, v.dtype), mo);
  const int V = int(m->config().vocab_size);
  // 150 tokens: sparse after 16; the first 100 are the prompt (MHA-eligible), the rest decode.
  const std::vector<int32_t> tokens = random_tokens(150, V, 5);
  const int64_t prompt_len = 100;
  const int saved = num_threads();
  set_num_threads(1);
  const Rows base = run_alone(*m, tokens, prompt_len);
  set_num_threads(2);
  expect_bitwise(base, run_mixed(*m, tokens, prompt_len, {1, 7, 30, 62}, 1), 0, "chunks 1/7/30/62");
  set_num_threads(3);
  expect_bitwise(base, run_mixed(*m, tokens, prompt_len, {1}, 2), 0, "token by token");
  expect_bitwise(base, run_mixed(*m, tokens, prompt_len, {64, 13}, 3), 0, "chunks 64/13");
  // A cached prefix: another sequence writes the first 64 positions; this one shares its block.
  set_num_threads(2);
  const int writer = m->create_sequence();
  BatchEntry w{writer, std::vector<int32_t>(tokens.begin(), tokens.begin() + 64), false};
  w.prompt_len = prompt_len;
  w.no_logits = true;
  m->forward({w});
  const int reader = m->create_sequence();
  m->cache().attach_blocks(reader, {m->cache().block_table(writer)[0]});
  m->free_sequence(writer);
  expect_bitwise(base, run_mixed(*m, tokens, prompt_len, {5, 40}, 4, 64, reader), 64,
                 "after a cached prefix");
  set_num_threads(saved);
  EXPECT_EQ(m->cache().blocks_in_use(), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Variants, TinyInvariance,
    ::testing::Values(Variant{"bf16_sparse_auto", Precision::bf16, AttentionMode::sparse,
                              AttentionForm::automatic, true, GenDtype::fp8},
                      Variant{"bf16_sparse_mha", Precision::bf16, AttentionMode::sparse,
                              AttentionForm::mha, true, GenDtype::fp8},
                      Variant{"bf16_sparse_absorbed", Precision::bf16, AttentionMode::sparse,
                              AttentionForm::absorbed, true, GenDtype::bf16},
                      Variant{"f32_sparse_mha", Precision::f32, AttentionMode::sparse,
                              AttentionForm::mha, true, GenDtype::fp8},
                      Variant{"f32_sparse_unquantized_indexer", Precision::f32,
                              AttentionMode::sparse, AttentionForm::automatic, false,
                              GenDtype::bf16},
                      Variant{"bf16_dense_mha", Precision::bf16, AttentionMode::dense,
                              AttentionForm::mha, true, GenDtype::fp8},
                      Variant{"f32_dense_absorbed", Precision::f32, AttentionMode::dense,
                              AttentionForm::absorbed, true, GenDtype::bf16}),
    [](const auto& info) { return std::string(info.param.name); });

// The real attention shapes (128 heads, top-k 2048, a 512-wide latent): 300 tokens with MHA
// segments of 64, cut and batched differently, on two thread counts.
TEST(MiniInvariance, ChunksBatchesAndThreads) {
  ModelOptions mo;
  mo.mha_segment = 64;
  mo.kv_cache_tokens = 64 * 512;
  auto m = Model::load(testing::preset_dir(GenPreset::mini, GenDtype::fp8), mo);
  ASSERT_GT(m->mha_limit(), 0);
  const std::vector<int32_t> tokens = random_tokens(300, int(m->config().vocab_size), 9);
  const int saved = num_threads();
  set_num_threads(1);
  const Rows base = run_alone(*m, tokens, 200);
  set_num_threads(2);
  expect_bitwise(base, run_mixed(*m, tokens, 200, {128, 3, 40, 1}, 6), 0, "mini chunks");
  set_num_threads(saved);
}

// The automatic form's rule: a whole segment below the limit is MHA; a partial last segment is
// when the prompt has at least mha_min_tokens of it; every token of a segment shares the form.
TEST(MiniInvariance, AttentionFormIsPerSegmentAndPartialSegmentsNeedEnoughTokens) {
  ModelOptions mo;
  mo.kv_cache_tokens = 64 * 4;
  auto m = Model::load(testing::preset_dir(GenPreset::mini, GenDtype::fp8), mo);
  const int64_t S = mo.mha_segment, limit = m->mha_limit();
  ASSERT_GE(limit, 2 * S);
  for (int64_t seg = 0; seg * S < limit; ++seg) {
    const int64_t s = seg * S, need = m->mha_min_tokens(seg);
    ASSERT_GE(need, 1);
    ASSERT_LE(need, S);
    EXPECT_TRUE(m->uses_mha(s, s + S)) << "whole segment " << seg;
    EXPECT_TRUE(m->uses_mha(s + S - 1, s + 10 * S));
    EXPECT_TRUE(m->uses_mha(s, s + need)) << seg;
    EXPECT_TRUE(m->uses_mha(s + need - 1, s + need)) << seg;
    if (need > 1) {
      EXPECT_FALSE(m->uses_mha(s, s + need - 1)) << seg;
    }
    EXPECT_FALSE(m->uses_mha(s + need, s + need)) << "a generated token";
  }
  // Past the limit, and for a later segment's tokens, never.
  EXPECT_FALSE(m->uses_mha(limit, limit + S));
  EXPECT_FALSE(m->uses_mha(limit + S - 1, 10 * limit));
  // A cached 2K prefix's 256-token tail on V3.2's shapes: long enough to pay for MHA.
  if (limit > 2048 + S) {
    EXPECT_LT(m->mha_min_tokens(2048 / S), 256);
  }
}

}  // namespace
}  // namespace dsinfer

#include "model/kv_cache.h"

#include <gtest/gtest.h>

#include <cstring>

namespace dsinfer {
namespace {

CacheLayout small_layout(bool fp8) {
  CacheLayout l;
  l.n_layers = 2;
  l.latent = 16;
  l.rope = 8;
  l.mla_dtype = DType::f32;
  l.has_indexer = true;
  l.indexer_fp8 = fp8;
  return l;
}

TEST(KvCache, GrowsOnDemandAndKeepsRowsAcrossGrowth) {
  KvCache cache(small_layout(true));
  const int a = cache.create_sequence(), b = cache.create_sequence();
  cache.reserve(a, 70);  // two blocks
  for (int64_t p = 0; p < 70; ++p) {
    static_cast<float*>(cache.c_row(1, a, p))[3] = float(p);
    static_cast<float*>(cache.k_pe_row(0, a, p))[7] = float(-p);
    cache.indexer_token(1, a, p)[131] = uint8_t(p);
  }
  cache.reserve(b, 64 * 40);  // forces the pools to grow and be copied
  for (int64_t p = 0; p < 70; ++p) {
    EXPECT_EQ(static_cast<float*>(cache.c_row(1, a, p))[3], float(p));
    EXPECT_EQ(static_cast<float*>(cache.k_pe_row(0, a, p))[7], float(-p));
    EXPECT_EQ(cache.indexer_token(1, a, p)[131], uint8_t(p));
  }
  cache.set_length(a, 70);
  const MlaCacheView v = cache.mla_view(1, a);
  EXPECT_EQ(v.n_tokens, 70);
  EXPECT_EQ(static_cast<const float*>(v.c)[v.row(65) * v.ld_c + 3], 65.0f);
  const IndexerKeys k = cache.indexer_keys_fp8(1, a);
  EXPECT_EQ(indexer_page_token(const_cast<uint8_t*>(k.pages), k.block_table, 69)[131], 69);
}

TEST(KvCache, SequencesNeverShareBlocksAndFreedBlocksAreReused) {
  KvCache cache(small_layout(false));
  const int a = cache.create_sequence(), b = cache.create_sequence();
  cache.reserve(a, 200);
  cache.reserve(b, 200);
  for (int64_t p = 0; p < 200; ++p) {
    cache.indexer_key_f32(0, a, p)[0] = 1.0f;
    cache.indexer_key_f32(0, b, p)[0] = 2.0f;
  }
  for (int64_t p = 0; p < 200; ++p) EXPECT_EQ(cache.indexer_key_f32(0, a, p)[0], 1.0f);
  const int64_t used = cache.blocks_in_use();
  EXPECT_EQ(used, 8);  // 4 blocks each
  cache.free_sequence(a);
  EXPECT_EQ(cache.blocks_in_use(), 4);
  const int c = cache.create_sequence();
  EXPECT_EQ(c, a);  // the slot is reused
  cache.reserve(c, 256);
  EXPECT_EQ(cache.blocks_in_use(), 8);
  EXPECT_EQ(cache.bytes_per_token(), size_t(2 * ((16 + 8) * 4 + 128 * 4)));
}

TEST(KvCache, ErrorsNameTheProblem) {
  KvCache cache(small_layout(true));
  const int a = cache.create_sequence();
  cache.reserve(a, 10);
  EXPECT_THROW(cache.c_row(0, a, 64), std::out_of_range);  // not reserved
  EXPECT_THROW(cache.set_length(a, 65), std::out_of_range);
  EXPECT_THROW(cache.length(7), std::invalid_argument);
  cache.free_sequence(a);
  EXPECT_THROW(cache.free_sequence(a), std::invalid_argument);
  CacheLayout bad = small_layout(true);
  bad.mla_dtype = DType::fp8_e4m3;
  EXPECT_THROW(KvCache{bad}, std::invalid_argument);
}

}  // namespace
}  // namespace dsinfer

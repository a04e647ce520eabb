#include "model/kv_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

namespace dsinfer {
namespace {

CacheLayout small_layout(bool fp8) {
  CacheLayout l;
  l.n_layers = 2;
  l.latent = 16;
  l.rope = 8;
  l.latent_dtype = l.rope_dtype = DType::f32;
  l.has_indexer = true;
  l.indexer_fp8 = fp8;
  return l;
}

TEST(KvCache, RowsOfEveryLayerLiveInTheSequencesBlocks) {
  KvCache cache(small_layout(true), 64 * 8);
  const int a = cache.create_sequence();
  cache.reserve(a, 70);  // two blocks
  for (int64_t p = 0; p < 70; ++p) {
    static_cast<float*>(cache.c_row(1, a, p))[3] = float(p);
    static_cast<float*>(cache.k_pe_row(0, a, p))[7] = float(-p);
    cache.indexer_token(1, a, p)[131] = uint8_t(p);
  }
  cache.set_length(a, 70);
  const MlaCacheView v = cache.mla_view(1, a);
  EXPECT_EQ(v.n_tokens, 70);
  EXPECT_EQ(static_cast<const float*>(v.c)[v.row(65) * v.ld_c + 3], 65.0f);
  EXPECT_EQ(cache.mla_view(1, a, 12).n_tokens, 12);
  const IndexerKeys k = cache.indexer_keys_fp8(1, a);
  EXPECT_EQ(indexer_page_token(const_cast<uint8_t*>(k.pages), k.block_table, 69)[131], 69);
}

TEST(KvCache, TheBudgetIsFixedAndFullReservationsFailCleanly) {
  KvCache cache(small_layout(false), 64 * 4);
  EXPECT_EQ(cache.capacity_blocks(), 4);
  EXPECT_EQ(cache.capacity_tokens(), 256);
  const int a = cache.create_sequence(), b = cache.create_sequence();
  cache.reserve(a, 200);  // 4 blocks: all of them
  for (int64_t p = 0; p < 200; ++p) cache.indexer_key_f32(0, a, p)[0] = 1.0f;
  EXPECT_EQ(cache.blocks_needed(b, 1), 1);
  EXPECT_FALSE(cache.try_reserve(b, 1));
  EXPECT_TRUE(cache.block_table(b).empty());  // nothing changed
  EXPECT_THROW(cache.reserve(b, 1), KvCacheFull);
  cache.free_sequence(a);
  EXPECT_EQ(cache.blocks_in_use(), 0);
  EXPECT_TRUE(cache.try_reserve(b, 256));
  EXPECT_EQ(cache.blocks_in_use(), 4);
  EXPECT_EQ(cache.bytes_per_token(), size_t(2 * ((16 + 8) * 4 + 128 * 4)));
  EXPECT_EQ(cache.bytes_reserved(), cache.bytes_per_token() * 256);
}

TEST(KvCache, SharedBlocksAreReferenceCountedAndTruncateReleasesWholeBlocks) {
  KvCache cache(small_layout(true), 64 * 8);
  const int a = cache.create_sequence();
  cache.reserve(a, 128);
  cache.set_length(a, 128);
  const std::vector<int32_t> prefix = cache.block_table(a);
  const int b = cache.create_sequence();
  cache.attach_blocks(b, prefix);
  EXPECT_EQ(cache.length(b), 128);
  EXPECT_EQ(cache.pool().refs(prefix[0]), 2);
  EXPECT_EQ(cache.c_row(0, a, 70), cache.c_row(0, b, 70));  // the same rows
  cache.reserve(b, 130);
  EXPECT_EQ(cache.blocks_in_use(), 3);
  cache.free_sequence(a);
  EXPECT_EQ(cache.pool().refs(prefix[0]), 1);
  EXPECT_EQ(cache.blocks_in_use(), 3);
  cache.set_length(b, 130);
  cache.truncate(b, 65);  // keeps blocks 0 and 1
  EXPECT_EQ(cache.block_table(b).size(), 2u);
  EXPECT_EQ(cache.blocks_in_use(), 2);
  EXPECT_THROW(cache.attach_blocks(b, prefix), std::logic_error);  // b no longer ends on a block
  cache.truncate(b, 0);
  EXPECT_EQ(cache.blocks_in_use(), 0);
  cache.pool().check_consistency();
}

TEST(KvCache, MtpLengthTrailsAndIsClippedByTruncation) {
  KvCache cache(small_layout(true), 64 * 2);
  const int a = cache.create_sequence();
  cache.reserve(a, 100);
  cache.set_length(a, 100);
  cache.set_mtp_length(a, 99);
  EXPECT_EQ(cache.mtp_length(a), 99);
  cache.truncate(a, 50);
  EXPECT_EQ(cache.mtp_length(a), 50);
  EXPECT_THROW(cache.set_mtp_length(a, 129), std::out_of_range);
}

TEST(KvCache, ErrorsNameTheProblem) {
  KvCache cache(small_layout(true), 64);
  const int a = cache.create_sequence();
  cache.reserve(a, 10);
  EXPECT_THROW(cache.c_row(0, a, 64), std::out_of_range);  // not reserved
  EXPECT_THROW(cache.set_length(a, 65), std::out_of_range);
  EXPECT_THROW(cache.length(7), std::invalid_argument);
  cache.free_sequence(a);
  EXPECT_THROW(cache.free_sequence(a), std::invalid_argument);
  CacheLayout bad = small_layout(true);
  bad.latent_dtype = DType::u8;
  EXPECT_THROW((KvCache{bad, 64}), std::invalid_argument);
  bad = small_layout(true);
  bad.rope_dtype = DType::fp8_e4m3;  // only the latent has an 8-bit format
  EXPECT_THROW((KvCache{bad, 64}), std::invalid_argument);
}

// C8: the latent as 8-bit codes followed by one f32 scale per 128 values, k_pe in bf16; rows are
// written in that format and the view points the kernels at them.
TEST(KvCache, EightBitLatentRowsHoldCodesThenScales) {
  for (DType dt : {DType::fp8_e4m3, DType::i8}) {
    CacheLayout l = small_layout(true);
    l.latent = 512, l.rope = 64, l.latent_dtype = dt, l.rope_dtype = DType::bf16;
    KvCache cache(l, 128);
    EXPECT_EQ(l.latent_bytes(), 512 + 16);
    EXPECT_EQ(cache.bytes_per_token(), size_t(2) * (528 + 128 + kIndexerTokenBytes));
    const int a = cache.create_sequence();
    cache.reserve(a, 70);
    std::vector<float> x(512), back(512);
    for (int i = 0; i < 512; ++i) x[size_t(i)] = std::sin(0.37f * float(i)) * float(1 + i / 128);
    encode_latent_row(dt, x.data(), 512, cache.c_row(1, a, 66));
    cache.set_length(a, 70);
    const MlaCacheView v = cache.mla_view(1, a);
    EXPECT_EQ(v.c_dtype, dt);
    EXPECT_EQ(v.pe_dtype, DType::bf16);
    EXPECT_EQ(v.ld_c, 528);
    const uint8_t* row = static_cast<const uint8_t*>(v.c) + v.row(66) * v.ld_c;
    EXPECT_EQ(row, cache.c_row(1, a, 66));
    decode_latent_row(dt, row, 512, back.data());
    for (int b = 0; b < 4; ++b) {
      float scale;
      std::memcpy(&scale, row + 512 + 4 * b, 4);
      float amax = 0;
      for (int i = 128 * b; i < 128 * (b + 1); ++i) amax = std::max(amax, std::fabs(x[size_t(i)]));
      EXPECT_FLOAT_EQ(scale, amax / (dt == DType::i8 ? 127.0f : 448.0f));
      for (int i = 128 * b; i < 128 * (b + 1); ++i)  // half a step of the format at most
        EXPECT_LE(std::fabs(back[size_t(i)] - x[size_t(i)]),
                  dt == DType::i8 ? 0.5f * scale : std::fabs(x[size_t(i)]) / 16 + 0.002f * scale)
            << i;
    }
  }
}

// Resident set size in bytes (Linux).
size_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (f) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return size_t(resident) * 4096;
}

TEST(KvCache, TheBudgetCostsNothingUntilWritten) {
  // 32 M tokens of this layout is 14 GiB of address space; only written pages are committed.
  const size_t before = resident_bytes();
  KvCache cache(small_layout(true), int64_t(32) << 20);
  EXPECT_GT(cache.bytes_reserved(), size_t(8) << 30);
  EXPECT_LT(resident_bytes(), before + (size_t(256) << 20));
  const int a = cache.create_sequence();
  cache.reserve(a, 64);
  static_cast<float*>(cache.c_row(0, a, 0))[0] = 1.0f;
  EXPECT_EQ(static_cast<float*>(cache.c_row(0, a, 1))[0], 0.0f);  // untouched pages read zero
}

// Data-parallel attention: the root's cache books every group's blocks but stores one group's
// rows; a worker of group g mirrors tables with its first block id subtracted.
TEST(KvCache, GroupsReserveFromTheirOwnBlocksAndWorkersMirrorThem) {
  KvCache root(small_layout(true), 2 * kKvBlockTokens, 2);
  EXPECT_EQ(root.capacity_blocks(), 4);
  EXPECT_EQ(root.group_capacity_blocks(), 2);
  const int a = root.create_sequence(0), b = root.create_sequence(1);
  EXPECT_EQ(root.group(b), 1);
  root.reserve(a, 2 * kKvBlockTokens);
  root.reserve(b, 2 * kKvBlockTokens);
  EXPECT_EQ(root.block_table(a), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(root.block_table(b), (std::vector<int32_t>{2, 3}));
  EXPECT_FALSE(root.try_reserve(a, 3 * kKvBlockTokens));  // group 0 is full, group 1 too
  EXPECT_THROW(root.attach_blocks(root.create_sequence(0), {3}), std::logic_error);
  EXPECT_THROW(root.create_sequence(2), std::out_of_range);
  // Group 1's worker: blocks 2, 3 are its rows 0, 1.
  KvCache worker(small_layout(true), 2 * kKvBlockTokens);
  worker.mirror(b, root.block_table(b), 100, 0, 2);
  EXPECT_EQ(worker.block_table(b), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(worker.length(b), 100);
  EXPECT_THROW(worker.mirror(a, root.block_table(a), 1, 0, 2), std::invalid_argument);
  EXPECT_EQ(root.bytes_reserved(), worker.bytes_reserved());  // one group's rows each
}

}  // namespace
}  // namespace dsinfer

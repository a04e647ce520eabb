// Paged caches for many sequences (spec §6): per layer, the MLA latent c and rotated k_pe rows
// (f32 or bf16) and the indexer's key cache (128 FP8 codes + f32 scale = 132 bytes per token, or
// f32 keys when the indexer runs unquantized). Memory is handed out in blocks of 64 tokens; a
// sequence owns a block table shared by all layers, and grows on demand. Pools grow by doubling,
// so views (pointers) are valid until the next reserve().
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kernels/indexer.h"
#include "kernels/kv_cache_view.h"

namespace dsinfer {

struct CacheLayout {
  int n_layers = 0;               // decoder layers + MTP modules
  int64_t latent = 512;           // kv_lora_rank
  int64_t rope = 64;              // qk_rope_head_dim
  DType mla_dtype = DType::bf16;  // f32 or bf16
  bool has_indexer = true;
  bool indexer_fp8 = true;  // false: f32 keys [128]
};

class KvCache {
 public:
  explicit KvCache(const CacheLayout& layout);

  int create_sequence();
  void free_sequence(int seq);  // its blocks return to the free list
  bool has_sequence(int seq) const;
  int64_t length(int seq) const;  // tokens whose cache rows are written
  void set_length(int seq, int64_t len);
  // Makes room for `tokens` positions (allocating blocks, maybe growing the pools).
  void reserve(int seq, int64_t tokens);

  // Row addresses of position `pos` of `seq` (reserved) in `layer`.
  void* c_row(int layer, int seq, int64_t pos);
  void* k_pe_row(int layer, int seq, int64_t pos);
  uint8_t* indexer_token(int layer, int seq, int64_t pos);  // fp8: 128 codes then the f32 scale
  float* indexer_key_f32(int layer, int seq, int64_t pos);  // unquantized: 128 floats

  // Views for the attention kernels and the indexer (n_tokens = length(seq)).
  MlaCacheView mla_view(int layer, int seq) const;
  IndexerKeys indexer_keys_fp8(int layer, int seq) const;

  const CacheLayout& layout() const { return layout_; }
  int64_t blocks_in_use() const { return int64_t(capacity_blocks_) - int64_t(free_.size()); }
  size_t bytes_reserved() const;  // all pools
  size_t bytes_per_token() const;

 private:
  struct Sequence {
    bool live = false;
    int64_t length = 0;
    std::vector<int32_t> blocks;
  };
  struct LayerPools {
    Tensor c, k_pe;  // [capacity * 64, latent] / [capacity * 64, rope]
    Tensor index;    // fp8: [capacity, 64 * 132] bytes; f32: [capacity * 64, 128]
  };
  void grow(int64_t min_blocks);
  int64_t row(int seq, int64_t pos) const;

  CacheLayout layout_;
  std::vector<LayerPools> pools_;
  std::vector<Sequence> seqs_;
  std::vector<int32_t> free_;
  int64_t capacity_blocks_ = 0;
};

}  // namespace dsinfer

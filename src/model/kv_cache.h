// Paged caches for many sequences (spec §6): per layer, the MLA latent c (f32, bf16, or 8-bit codes
// with block scales) and rotated k_pe rows (f32 or bf16), and the indexer's key cache (128 FP8
// codes + f32 scale = 132 bytes per token, or f32 keys when the indexer runs unquantized). The
// layers are the decoder layers, then the MTP module's, so a block holds every cache the model
// keeps for its 64 positions.
//
// The memory is a fixed budget of blocks, reserved once (address space only: the OS commits a
// page when it is first written, so an unused budget costs nothing) and handed out by a
// BlockPool: a sequence is a block table plus a length, blocks may be shared between sequences
// (a cached prefix), and views stay valid for the cache's lifetime.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/indexer.h"
#include "kernels/kv_cache_view.h"
#include "model/block_pool.h"

namespace dsinfer {

struct CacheLayout {
  int n_layers = 0;                  // decoder layers + MTP modules
  int64_t latent = 512;              // kv_lora_rank
  int64_t rope = 64;                 // qk_rope_head_dim
  DType latent_dtype = DType::bf16;  // f32, bf16, or 8-bit codes: fp8_e4m3 / i8 (kv_cache_view.h)
  DType rope_dtype = DType::bf16;    // f32 or bf16
  int64_t latent_bytes() const { return latent_row_bytes(latent_dtype, latent); }
  int64_t rope_bytes() const { return rope * int64_t(dtype_size(rope_dtype)); }
  bool has_indexer = true;
  bool indexer_fp8 = true;  // false: f32 keys [128]
};

// Thrown when the budget cannot supply the blocks a sequence needs.
struct KvCacheFull : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The default budget in tokens: half of the memory available now (MemAvailable) beyond the mapped
// weights (which still have to be paged in), at least 16 blocks.
int64_t default_kv_cache_tokens(size_t bytes_per_token, size_t weight_bytes);

class KvCache {
 public:
  // capacity_tokens is rounded up to whole blocks (at least one). With groups > 1 (data-parallel
  // attention) the pool has that many blocks per group, but this process stores the rows of one
  // group only (see BlockPool and mirror()).
  KvCache(const CacheLayout& layout, int64_t capacity_tokens, int groups = 1);

  // A sequence whose blocks come from `group`.
  int create_sequence(int group = 0);
  int group(int seq) const;
  void free_sequence(int seq);  // drops its references (cached blocks stay findable)
  bool has_sequence(int seq) const;
  int64_t length(int seq) const;  // tokens whose cache rows are written
  void set_length(int seq, int64_t len);
  // Tokens of the MTP layer written for `seq` (it trails the main layers: see Model::mtp_forward).
  int64_t mtp_length(int seq) const;
  void set_mtp_length(int seq, int64_t len);

  // Makes room for `tokens` positions. try_reserve returns false, changing nothing, when the
  // budget cannot supply the blocks; reserve throws KvCacheFull.
  bool try_reserve(int seq, int64_t tokens);
  void reserve(int seq, int64_t tokens);
  // Blocks a sequence of `tokens` positions needs beyond what `seq` holds.
  int64_t blocks_needed(int seq, int64_t tokens) const;
  // Appends already written blocks (a cached prefix) to `seq`, which must end on a block
  // boundary; takes a reference on each and extends the length over them.
  void attach_blocks(int seq, const std::vector<int32_t>& blocks);
  // Forgets positions past `len` and releases the blocks that no longer hold any.
  void truncate(int seq, int64_t len);
  const std::vector<int32_t>& block_table(int seq) const;
  // A worker rank of a distributed job (src/dist): makes `seq` exactly the root's sequence of that
  // id (its block table, less first_block, and lengths), without reference counting: the root's
  // pool decides which blocks hold what, and every rank of the group writes the same rows.
  void mirror(int seq, std::vector<int32_t> blocks, int64_t length, int64_t mtp_length,
              int32_t first_block = 0);

  // Row addresses of position `pos` of `seq` (reserved) in `layer`.
  void* c_row(int layer, int seq, int64_t pos);
  void* k_pe_row(int layer, int seq, int64_t pos);
  uint8_t* indexer_token(int layer, int seq, int64_t pos);  // fp8: 128 codes then the f32 scale
  float* indexer_key_f32(int layer, int seq, int64_t pos);  // unquantized: 128 floats

  // Views for the attention kernels and the indexer over the first n_tokens positions (-1: the
  // sequence's length).
  MlaCacheView mla_view(int layer, int seq, int64_t n_tokens = -1) const;
  IndexerKeys indexer_keys_fp8(int layer, int seq, int64_t n_tokens = -1) const;

  const CacheLayout& layout() const { return layout_; }
  BlockPool& pool() { return pool_; }
  const BlockPool& pool() const { return pool_; }
  int64_t capacity_blocks() const { return pool_.capacity(); }
  // Blocks one sequence can ever hold: its group's.
  int64_t group_capacity_blocks() const { return pool_.group_capacity(); }
  int64_t group_capacity_tokens() const { return group_capacity_blocks() * kKvBlockTokens; }
  int64_t capacity_tokens() const { return capacity_blocks() * kKvBlockTokens; }
  int64_t blocks_in_use() const { return pool_.referenced(); }
  size_t bytes_reserved() const;  // the whole budget (address space)
  size_t bytes_per_token() const;
  int live_sequences() const;

 private:
  struct Sequence {
    bool live = false;
    int64_t length = 0, mtp_length = 0;
    std::vector<int32_t> blocks;
    int group = 0;
  };
  struct LayerPools {
    Tensor c, k_pe;  // [capacity * 64, latent (8-bit codes: latent_bytes)] / [.., rope]
    Tensor index;    // fp8: [capacity, 64 * 132] bytes; f32: [capacity * 64, 128]
  };
  Sequence& seq_at(int seq);
  const Sequence& seq_at(int seq) const;
  int64_t row(int seq, int64_t pos) const;

  CacheLayout layout_;
  BlockPool pool_;
  std::vector<LayerPools> pools_;
  std::vector<Sequence> seqs_;
};

}  // namespace dsinfer

#include "model/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

namespace dsinfer {

namespace {

int32_t blocks_for(int64_t capacity_tokens) {
  const int64_t blocks =
      std::max<int64_t>(1, (capacity_tokens + kKvBlockTokens - 1) / kKvBlockTokens);
  if (blocks > std::numeric_limits<int32_t>::max())
    throw std::invalid_argument("kv cache: a budget of " + std::to_string(capacity_tokens) +
                                " tokens is too large");
  return int32_t(blocks);
}

// MemAvailable from /proc/meminfo in bytes (0 when it cannot be read).
size_t mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream ss(line.substr(13));
      size_t kib = 0;
      ss >> kib;
      return kib * 1024;
    }
  return 0;
}

}  // namespace

int64_t default_kv_cache_tokens(size_t bytes_per_token, size_t weight_bytes) {
  const size_t avail = mem_available_bytes();
  // Mapped weights count as page cache in MemAvailable until they are touched: leave them room.
  const size_t spare = avail > weight_bytes ? avail - weight_bytes : 0;
  int64_t tokens = int64_t(spare / 2 / std::max<size_t>(1, bytes_per_token));
  // At least a few blocks, and never so many that block ids overflow.
  tokens = std::clamp<int64_t>(tokens, 16 * kKvBlockTokens,
                               int64_t(std::numeric_limits<int32_t>::max() / 2) * kKvBlockTokens);
  return tokens / kKvBlockTokens * kKvBlockTokens;
}

KvCache::KvCache(const CacheLayout& layout, int64_t capacity_tokens, int groups)
    : layout_(layout),
      pool_(blocks_for(capacity_tokens) * groups, groups),
      pools_(size_t(layout.n_layers)) {
  if (layout.latent_dtype != DType::f32 && layout.latent_dtype != DType::bf16 &&
      !latent_is_coded(layout.latent_dtype))
    throw std::invalid_argument("kv cache: the latent cache dtype must be f32, bf16, fp8 or int8");
  if (layout.rope_dtype != DType::f32 && layout.rope_dtype != DType::bf16)
    throw std::invalid_argument("kv cache: the rope cache dtype must be f32 or bf16");
  // Storage for one group: this process holds the rows of group 0's blocks (a worker of another
  // group mirrors its tables to these rows, see mirror()).
  const int64_t cap = pool_.group_capacity(), rows = cap * kKvBlockTokens;
  for (LayerPools& p : pools_) {
    p.c = latent_is_coded(layout_.latent_dtype)
              ? Tensor::lazy(DType::u8, {rows, layout_.latent_bytes()})
              : Tensor::lazy(layout_.latent_dtype, {rows, layout_.latent});
    p.k_pe = Tensor::lazy(layout_.rope_dtype, {rows, layout_.rope});
    if (layout_.has_indexer)
      p.index = layout_.indexer_fp8 ? Tensor::lazy(DType::u8, {cap, kIndexerPageBytes})
                                    : Tensor::lazy(DType::f32, {rows, kIndexerDim});
  }
}

KvCache::Sequence& KvCache::seq_at(int seq) {
  if (!has_sequence(seq))
    throw std::invalid_argument("kv cache: no sequence " + std::to_string(seq));
  return seqs_[size_t(seq)];
}
const KvCache::Sequence& KvCache::seq_at(int seq) const {
  if (!has_sequence(seq))
    throw std::invalid_argument("kv cache: no sequence " + std::to_string(seq));
  return seqs_[size_t(seq)];
}

int KvCache::create_sequence(int group) {
  if (group < 0 || group >= pool_.groups())
    throw std::out_of_range("kv cache: no block group " + std::to_string(group));
  for (size_t i = 0; i < seqs_.size(); ++i)
    if (!seqs_[i].live) {
      seqs_[i] = Sequence{true, 0, 0, {}, group};
      return int(i);
    }
  seqs_.push_back(Sequence{true, 0, 0, {}, group});
  return int(seqs_.size() - 1);
}

int KvCache::group(int seq) const {
  return seq_at(seq).group;
}

void KvCache::mirror(int seq, std::vector<int32_t> blocks, int64_t length, int64_t mtp_length,
                     int32_t first_block) {
  if (seq < 0) throw std::invalid_argument("kv cache: mirror of sequence " + std::to_string(seq));
  for (int32_t& b : blocks) {
    b -= first_block;
    if (b < 0 || b >= pool_.group_capacity())
      throw std::invalid_argument("kv cache: mirrored block " + std::to_string(b + first_block) +
                                  " outside this rank's blocks " + std::to_string(first_block) +
                                  " .. " +
                                  std::to_string(first_block + pool_.group_capacity() - 1));
  }
  if (size_t(seq) >= seqs_.size()) seqs_.resize(size_t(seq) + 1);
  seqs_[size_t(seq)] = Sequence{true, length, mtp_length, std::move(blocks), 0};
}

bool KvCache::has_sequence(int seq) const {
  return seq >= 0 && size_t(seq) < seqs_.size() && seqs_[size_t(seq)].live;
}

int KvCache::live_sequences() const {
  return int(std::count_if(seqs_.begin(), seqs_.end(), [](const Sequence& s) { return s.live; }));
}

void KvCache::free_sequence(int seq) {
  Sequence& s = seq_at(seq);
  for (int32_t b : s.blocks) pool_.decref(b);
  s = Sequence{};
}

int64_t KvCache::length(int seq) const {
  return seq_at(seq).length;
}
int64_t KvCache::mtp_length(int seq) const {
  return seq_at(seq).mtp_length;
}

void KvCache::set_length(int seq, int64_t len) {
  Sequence& s = seq_at(seq);
  if (len < 0 || len > int64_t(s.blocks.size()) * kKvBlockTokens)
    throw std::out_of_range("kv cache: length " + std::to_string(len) + " beyond reserved blocks");
  s.length = len;
  s.mtp_length = std::min(s.mtp_length, len);
}

void KvCache::set_mtp_length(int seq, int64_t len) {
  Sequence& s = seq_at(seq);
  if (len < 0 || len > int64_t(s.blocks.size()) * kKvBlockTokens)
    throw std::out_of_range("kv cache: MTP length " + std::to_string(len) +
                            " beyond reserved blocks");
  s.mtp_length = len;
}

int64_t KvCache::blocks_needed(int seq, int64_t tokens) const {
  const int64_t need = (tokens + kKvBlockTokens - 1) / kKvBlockTokens;
  return std::max<int64_t>(0, need - int64_t(seq_at(seq).blocks.size()));
}

bool KvCache::try_reserve(int seq, int64_t tokens) {
  const int64_t more = blocks_needed(seq, tokens);
  if (more == 0) return true;
  Sequence& s = seq_at(seq);
  if (more > pool_.available(s.group)) return false;
  for (int64_t i = 0; i < more; ++i) s.blocks.push_back(pool_.allocate(s.group));
  return true;
}

void KvCache::reserve(int seq, int64_t tokens) {
  if (!try_reserve(seq, tokens))
    throw KvCacheFull("kv cache: " + std::to_string(tokens) + " tokens need " +
                      std::to_string(blocks_needed(seq, tokens)) + " more blocks of " +
                      std::to_string(kKvBlockTokens) + " tokens, but only " +
                      std::to_string(pool_.available(seq_at(seq).group)) + " of the budget's " +
                      std::to_string(pool_.group_capacity()) + " are unreferenced");
}

void KvCache::attach_blocks(int seq, const std::vector<int32_t>& blocks) {
  Sequence& s = seq_at(seq);
  if (s.length != int64_t(s.blocks.size()) * kKvBlockTokens)
    throw std::logic_error("kv cache: attaching blocks to a sequence that does not end on a block");
  for (int32_t b : blocks)
    if (pool_.group_of(b) != s.group)
      throw std::logic_error("kv cache: attaching block " + std::to_string(b) + " of group " +
                             std::to_string(pool_.group_of(b)) + " to a sequence of group " +
                             std::to_string(s.group));
  for (int32_t b : blocks) pool_.incref(b);
  s.blocks.insert(s.blocks.end(), blocks.begin(), blocks.end());
  s.length = int64_t(s.blocks.size()) * kKvBlockTokens;
}

void KvCache::truncate(int seq, int64_t len) {
  Sequence& s = seq_at(seq);
  if (len < 0 || len > s.length)
    throw std::out_of_range("kv cache: truncate to " + std::to_string(len) + " of " +
                            std::to_string(s.length) + " tokens");
  const size_t keep = size_t((len + kKvBlockTokens - 1) / kKvBlockTokens);
  for (size_t i = keep; i < s.blocks.size(); ++i) pool_.decref(s.blocks[i]);
  s.blocks.resize(keep);
  s.length = len;
  s.mtp_length = std::min(s.mtp_length, len);
}

const std::vector<int32_t>& KvCache::block_table(int seq) const {
  return seq_at(seq).blocks;
}

int64_t KvCache::row(int seq, int64_t pos) const {
  const Sequence& s = seqs_[size_t(seq)];
  if (pos < 0 || pos >= int64_t(s.blocks.size()) * kKvBlockTokens)
    throw std::out_of_range("kv cache: position " + std::to_string(pos) + " not reserved");
  return int64_t(s.blocks[size_t(pos / kKvBlockTokens)]) * kKvBlockTokens + pos % kKvBlockTokens;
}

void* KvCache::c_row(int layer, int seq, int64_t pos) {
  return static_cast<char*>(pools_[size_t(layer)].c.raw()) + row(seq, pos) * layout_.latent_bytes();
}
void* KvCache::k_pe_row(int layer, int seq, int64_t pos) {
  Tensor& t = pools_[size_t(layer)].k_pe;
  return static_cast<char*>(t.raw()) + row(seq, pos) * layout_.rope * dtype_size(t.dtype());
}
uint8_t* KvCache::indexer_token(int layer, int seq, int64_t pos) {
  const int64_t r = row(seq, pos);
  return pools_[size_t(layer)].index.data<uint8_t>() + (r / kKvBlockTokens) * kIndexerPageBytes +
         (r % kKvBlockTokens) * kIndexerTokenBytes;
}
float* KvCache::indexer_key_f32(int layer, int seq, int64_t pos) {
  return pools_[size_t(layer)].index.data<float>() + row(seq, pos) * kIndexerDim;
}

MlaCacheView KvCache::mla_view(int layer, int seq, int64_t n_tokens) const {
  const LayerPools& p = pools_[size_t(layer)];
  const Sequence& s = seq_at(seq);
  MlaCacheView v;
  v.c_dtype = layout_.latent_dtype;
  v.pe_dtype = layout_.rope_dtype;
  v.c = p.c.raw();
  v.k_pe = p.k_pe.raw();
  v.ld_c = latent_is_coded(layout_.latent_dtype) ? layout_.latent_bytes() : layout_.latent;
  v.ld_pe = layout_.rope;
  v.n_tokens = n_tokens < 0 ? s.length : n_tokens;
  v.block_table = s.blocks.data();
  return v;
}

IndexerKeys KvCache::indexer_keys_fp8(int layer, int seq, int64_t n_tokens) const {
  const Sequence& s = seq_at(seq);
  IndexerKeys k;
  k.dtype = DType::fp8_e4m3;
  k.n_keys = n_tokens < 0 ? s.length : n_tokens;
  k.pages = pools_[size_t(layer)].index.data<uint8_t>();
  k.block_table = s.blocks.data();
  return k;
}

size_t KvCache::bytes_per_token() const {
  size_t per = size_t(layout_.latent_bytes() + layout_.rope_bytes());
  if (layout_.has_indexer) per += layout_.indexer_fp8 ? kIndexerTokenBytes : kIndexerDim * 4;
  return per * size_t(layout_.n_layers);
}

size_t KvCache::bytes_reserved() const {
  return bytes_per_token() * size_t(group_capacity_tokens());
}

}  // namespace dsinfer

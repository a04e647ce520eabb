#include "model/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace dsinfer {

KvCache::KvCache(const CacheLayout& layout) : layout_(layout), pools_(size_t(layout.n_layers)) {
  if (layout.mla_dtype != DType::f32 && layout.mla_dtype != DType::bf16)
    throw std::invalid_argument("kv cache: MLA cache dtype must be f32 or bf16");
}

int KvCache::create_sequence() {
  for (size_t i = 0; i < seqs_.size(); ++i)
    if (!seqs_[i].live) {
      seqs_[i] = Sequence{true, 0, {}};
      return int(i);
    }
  seqs_.push_back(Sequence{true, 0, {}});
  return int(seqs_.size() - 1);
}

bool KvCache::has_sequence(int seq) const {
  return seq >= 0 && size_t(seq) < seqs_.size() && seqs_[size_t(seq)].live;
}

void KvCache::free_sequence(int seq) {
  if (!has_sequence(seq))
    throw std::invalid_argument("kv cache: no sequence " + std::to_string(seq));
  Sequence& s = seqs_[size_t(seq)];
  free_.insert(free_.end(), s.blocks.begin(), s.blocks.end());
  s = Sequence{};
}

int64_t KvCache::length(int seq) const {
  if (!has_sequence(seq))
    throw std::invalid_argument("kv cache: no sequence " + std::to_string(seq));
  return seqs_[size_t(seq)].length;
}

void KvCache::set_length(int seq, int64_t len) {
  Sequence& s = seqs_.at(size_t(seq));
  if (len < 0 || len > int64_t(s.blocks.size()) * kKvBlockTokens)
    throw std::out_of_range("kv cache: length " + std::to_string(len) + " beyond reserved blocks");
  s.length = len;
}

void KvCache::reserve(int seq, int64_t tokens) {
  if (!has_sequence(seq))
    throw std::invalid_argument("kv cache: no sequence " + std::to_string(seq));
  const int64_t need = (tokens + kKvBlockTokens - 1) / kKvBlockTokens;
  const int64_t have = int64_t(seqs_[size_t(seq)].blocks.size());
  if (need <= have) return;
  if (int64_t(free_.size()) < need - have)
    grow(capacity_blocks_ + (need - have) - int64_t(free_.size()));
  Sequence& s = seqs_[size_t(seq)];
  for (int64_t i = have; i < need; ++i) {
    s.blocks.push_back(free_.back());
    free_.pop_back();
  }
}

void KvCache::grow(int64_t min_blocks) {
  const int64_t cap = std::max<int64_t>({min_blocks, capacity_blocks_ * 2, 4});
  const int64_t rows = cap * kKvBlockTokens;
  for (LayerPools& p : pools_) {
    auto regrow = [&](Tensor& t, DType dtype, std::vector<int64_t> shape) {
      Tensor n = Tensor::empty(dtype, std::move(shape));
      if (t.defined() && t.numel() > 0) std::memcpy(n.raw(), t.raw(), t.nbytes());
      t = n;
    };
    regrow(p.c, layout_.mla_dtype, {rows, layout_.latent});
    regrow(p.k_pe, layout_.mla_dtype, {rows, layout_.rope});
    if (layout_.has_indexer) {
      if (layout_.indexer_fp8)
        regrow(p.index, DType::u8, {cap, kIndexerPageBytes});
      else
        regrow(p.index, DType::f32, {rows, kIndexerDim});
    }
  }
  for (int64_t b = cap - 1; b >= capacity_blocks_; --b) free_.push_back(int32_t(b));
  capacity_blocks_ = cap;
}

int64_t KvCache::row(int seq, int64_t pos) const {
  const Sequence& s = seqs_[size_t(seq)];
  if (pos < 0 || pos >= int64_t(s.blocks.size()) * kKvBlockTokens)
    throw std::out_of_range("kv cache: position " + std::to_string(pos) + " not reserved");
  return int64_t(s.blocks[size_t(pos / kKvBlockTokens)]) * kKvBlockTokens + pos % kKvBlockTokens;
}

void* KvCache::c_row(int layer, int seq, int64_t pos) {
  Tensor& t = pools_[size_t(layer)].c;
  return static_cast<char*>(t.raw()) + row(seq, pos) * layout_.latent * dtype_size(t.dtype());
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

MlaCacheView KvCache::mla_view(int layer, int seq) const {
  const LayerPools& p = pools_[size_t(layer)];
  const Sequence& s = seqs_.at(size_t(seq));
  MlaCacheView v;
  v.dtype = layout_.mla_dtype;
  v.c = p.c.raw();
  v.k_pe = p.k_pe.raw();
  v.ld_c = layout_.latent;
  v.ld_pe = layout_.rope;
  v.n_tokens = s.length;
  v.block_table = s.blocks.data();
  return v;
}

IndexerKeys KvCache::indexer_keys_fp8(int layer, int seq) const {
  const Sequence& s = seqs_.at(size_t(seq));
  IndexerKeys k;
  k.dtype = DType::fp8_e4m3;
  k.n_keys = s.length;
  k.pages = pools_[size_t(layer)].index.data<uint8_t>();
  k.block_table = s.blocks.data();
  return k;
}

size_t KvCache::bytes_per_token() const {
  size_t per = size_t(layout_.latent + layout_.rope) * dtype_size(layout_.mla_dtype);
  if (layout_.has_indexer) per += layout_.indexer_fp8 ? kIndexerTokenBytes : kIndexerDim * 4;
  return per * size_t(layout_.n_layers);
}

size_t KvCache::bytes_reserved() const {
  return bytes_per_token() * size_t(capacity_blocks_ * kKvBlockTokens);
}

}  // namespace dsinfer

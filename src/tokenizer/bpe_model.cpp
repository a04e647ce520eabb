#include "tokenizer/bpe_model.h"

#include <algorithm>
#include <climits>
#include <queue>

#include "tokenizer/byte_level.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/utf8.h"

namespace dsinfer::tokenizer {
namespace {

constexpr size_t kMaxCachedWordBytes = 64;
// Above this many symbols the linear scan's quadratic cost outweighs the heap's overhead.
constexpr size_t kLinearMergeLimit = 128;

template <class Where>
int32_t vocab_id(const StringMap<int32_t>& vocab, std::string_view token, const Where& where) {
  auto it = vocab.find(token);
  if (it == vocab.end())
    json_error(where(), "token \"" + std::string(token) + "\" is not in the vocabulary");
  return it->second;
}

// One entry of "merges": "left right" (one space) or ["left", "right"]. The views point into
// `m`. `where()` names the entry (built only for an error: there are 100k+ entries).
template <class Where>
std::pair<std::string_view, std::string_view> parse_merge(const nlohmann::json& m,
                                                          const Where& where) {
  if (m.is_string()) {
    std::string_view s = m.get_ref<const std::string&>();
    size_t space = s.find(' ');
    if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
      json_error(where(), "expected \"left right\" with exactly one space, got " + m.dump());
    return {s.substr(0, space), s.substr(space + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
    return {m[0].get_ref<const std::string&>(), m[1].get_ref<const std::string&>()};
  json_error(where(), "expected \"left right\" or [\"left\", \"right\"], got " + m.dump());
}

}  // namespace

BpeModel BpeModel::from_json(const nlohmann::json& model, const std::string& where) {
  std::string type = json_string(model, "type", where);
  if (type != "BPE")
    json_error(where + ".type", "unsupported model type \"" + type + "\" (supported: BPE)");
  auto must_be_null = [&](const char* key) {
    if (model.contains(key) && !model[key].is_null())
      json_error(where + "." + key, "not supported (must be null), got " + model[key].dump());
  };
  must_be_null("continuing_subword_prefix");
  must_be_null("end_of_word_suffix");
  must_be_null("dropout");
  if (json_bool(model, "byte_fallback", where, false))
    json_error(where + ".byte_fallback", "not supported (byte-level BPE needs no fallback)");

  BpeModel bpe;
  const nlohmann::json& vocab = json_required(model, "vocab", where);
  if (!vocab.is_object()) json_error(where + ".vocab", "expected an object of token: id");
  bpe.vocab_.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const nlohmann::json& id = it.value();
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
      json_error(where + ".vocab[\"" + it.key() + "\"]",
                 "expected a non-negative integer id, got " + id.dump());
    bpe.vocab_.emplace(it.key(), id.get<int32_t>());
  }
  bpe.ignore_merges_ = json_bool(model, "ignore_merges", where, false);
  if (bpe.ignore_merges_)
    for (const auto& [token, id] : bpe.vocab_)
      if (auto bytes = byte_level_to_bytes(token)) bpe.bytes_vocab_[*bytes] = id;
  for (int b = 0; b < 256; ++b) {
    std::string spelled;
    append_utf8(spelled, byte_to_char(uint8_t(b)));
    auto it = bpe.vocab_.find(spelled);
    bpe.byte_id_[b] = it == bpe.vocab_.end() ? -1 : it->second;
  }

  const nlohmann::json& merges = json_required(model, "merges", where);
  if (!merges.is_array()) json_error(where + ".merges", "expected an array");
  std::string joined;
  for (size_t i = 0; i < merges.size(); ++i) {
    // Errors name the entry; the name is only built when there is one.
    auto mwhere = [&] { return where + ".merges[" + std::to_string(i) + "]"; };
    auto [left, right] = parse_merge(merges[i], mwhere);
    joined.assign(left).append(right);
    int32_t l = vocab_id(bpe.vocab_, left, mwhere);
    int32_t r = vocab_id(bpe.vocab_, right, mwhere);
    int32_t result = vocab_id(bpe.vocab_, joined, mwhere);
    bpe.merges_.insert(l, r, Merge{int32_t(i), result});
  }

  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    std::string unk = json_string(model, "unk_token", where);
    bpe.unk_id_ = vocab_id(bpe.vocab_, unk, [&] { return where + ".unk_token"; });
  }
  bpe.fuse_unk_ = json_bool(model, "fuse_unk", where, false);
  return bpe;
}

void BpeModel::set_cache_capacity(size_t entries) {
  std::lock_guard lock(cache_->mu);
  cache_->capacity = entries;
  cache_->words.clear();
}

void BpeModel::encode(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (ignore_merges_) {
    auto it = bytes_vocab_.find(piece);
    if (it != bytes_vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (piece.size() > kMaxCachedWordBytes) return encode_uncached(piece, out);
  Cache& cache = *cache_;
  {
    std::lock_guard lock(cache.mu);
    auto it = cache.words.find(piece);
    if (it != cache.words.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t first = out.size();
  encode_uncached(piece, out);
  std::lock_guard lock(cache.mu);
  if (cache.capacity == 0) return;
  // Forget everything rather than track recency: cheap, and the working set refills fast.
  if (cache.words.size() >= cache.capacity) cache.words.clear();
  cache.words.emplace(std::string(piece), std::vector<int32_t>(out.begin() + first, out.end()));
}

void BpeModel::encode_uncached(std::string_view piece, std::vector<int32_t>& out) const {
  std::vector<int32_t> ids;
  ids.reserve(piece.size());
  for (unsigned char b : piece) {
    int32_t id = byte_id_[b];
    if (id >= 0) {
      ids.push_back(id);
    } else if (unk_id_ >= 0) {
      // HF drops a character it has no token for unless the model names an unknown token.
      if (!(fuse_unk_ && !ids.empty() && ids.back() == unk_id_)) ids.push_back(unk_id_);
    }
  }
  merge(ids);
  out.insert(out.end(), ids.begin(), ids.end());
}

void BpeModel::merge(std::vector<int32_t>& ids, bool force_heap) const {
  if (ids.size() < 2) return;
  if (force_heap || ids.size() > kLinearMergeLimit)
    merge_heap(ids);
  else
    merge_linear(ids);
}

void BpeModel::merge_linear(std::vector<int32_t>& ids) const {
  // rank[i] / result[i] describe the pair (ids[i], ids[i + 1]).
  size_t n = ids.size();
  int32_t rank[kLinearMergeLimit], result[kLinearMergeLimit];
  auto look = [&](size_t i) {
    const Merge* m = merges_.find(ids[i], ids[i + 1]);
    rank[i] = m ? m->rank : INT32_MAX;
    result[i] = m ? m->result : -1;
  };
  for (size_t i = 0; i + 1 < n; ++i) look(i);
  while (n > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < n; ++i)
      if (rank[i] < rank[best]) best = i;  // strict: ties go to the leftmost pair
    if (rank[best] == INT32_MAX) break;
    ids[best] = result[best];
    // Drop symbol best+1 and the pair entry that started at it.
    for (size_t i = best + 1; i + 1 < n; ++i) ids[i] = ids[i + 1];
    for (size_t i = best + 1; i + 2 < n; ++i) rank[i] = rank[i + 1], result[i] = result[i + 1];
    --n;
    if (best > 0) look(best - 1);
    if (best + 1 < n) look(best);
  }
  ids.resize(n);
}

void BpeModel::merge_heap(std::vector<int32_t>& ids) const {
  size_t n = ids.size();
  std::vector<int32_t> prev(n), next(n);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = int32_t(i) - 1;
    next[i] = i + 1 < n ? int32_t(i + 1) : -1;
  }
  std::vector<bool> alive(n, true);
  // Min-heap on (rank, position): the position keeps ties leftmost. Entries go stale when
  // a neighbour merges; a popped entry is used only if its pair still has that rank.
  using Entry = std::pair<int32_t, int32_t>;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap;
  auto push = [&](int32_t pos) {
    if (pos < 0 || next[pos] < 0) return;
    if (const Merge* m = merges_.find(ids[pos], ids[next[pos]])) heap.push({m->rank, pos});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(int32_t(i));
  while (!heap.empty()) {
    auto [rank, pos] = heap.top();
    heap.pop();
    if (!alive[pos] || next[pos] < 0) continue;
    const Merge* m = merges_.find(ids[pos], ids[next[pos]]);
    if (!m || m->rank != rank) continue;
    int32_t gone = next[pos];
    ids[pos] = m->result;
    alive[gone] = false;
    next[pos] = next[gone];
    if (next[pos] >= 0) prev[next[pos]] = pos;
    push(prev[pos]);
    push(pos);
  }
  size_t w = 0;
  for (int32_t i = 0; i >= 0; i = next[i]) ids[w++] = ids[i];
  ids.resize(w);
}

}  // namespace dsinfer::tokenizer

#include "tokenizer/added_tokens.h"

#include <algorithm>
#include <cstring>

#include "tokenizer/json_fields.h"
#include "tokenizer/utf8.h"

namespace dsinfer::tokenizer {

AddedTokens AddedTokens::from_json(const nlohmann::json& list, const std::string& where) {
  AddedTokens added;
  if (list.is_null()) return added;
  if (!list.is_array()) json_error(where, "expected an array");
  for (size_t i = 0; i < list.size(); ++i) {
    std::string w = where + "[" + std::to_string(i) + "]";
    const nlohmann::json& t = list[i];
    AddedToken tok;
    const nlohmann::json& id = json_required(t, "id", w);
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
      json_error(w + ".id", "expected a non-negative integer, got " + id.dump());
    tok.id = id.get<int32_t>();
    tok.content = json_string(t, "content", w);
    if (tok.content.empty()) json_error(w + ".content", "must not be empty");
    if (find_invalid_utf8(tok.content) != kValidUtf8)
      json_error(w + ".content", "is not valid UTF-8");
    tok.special = json_bool(t, "special", w, false);
    tok.normalized = json_bool(t, "normalized", w, !tok.special);
    tok.lstrip = json_bool(t, "lstrip", w, false);
    tok.rstrip = json_bool(t, "rstrip", w, false);
    if (json_bool(t, "single_word", w, false))
      json_error(w + ".single_word", "true is not supported");
    added.tokens_.push_back(std::move(tok));
  }
  for (uint32_t i = 0; i < added.tokens_.size(); ++i) {
    Pass& pass = added.tokens_[i].normalized ? added.normalized_ : added.raw_;
    pass.by_first_byte[static_cast<unsigned char>(added.tokens_[i].content[0])].push_back(i);
    pass.empty = false;
  }
  for (Pass* pass : {&added.raw_, &added.normalized_})
    for (auto& bucket : pass->by_first_byte)
      std::stable_sort(bucket.begin(), bucket.end(), [&](uint32_t a, uint32_t b) {
        return added.tokens_[a].content.size() > added.tokens_[b].content.size();
      });
  return added;
}

std::vector<Segment> AddedTokens::split(std::string_view text, bool allow_special) const {
  std::vector<Segment> first, out;
  split_pass(raw_, text, 0, text.size(), allow_special, first);
  // The normalizer is the identity (anything else is rejected at load), so the second pass
  // runs on the same bytes, but only inside the plain text the first pass left.
  for (const Segment& s : first) {
    if (s.id >= 0)
      out.push_back(s);
    else
      split_pass(normalized_, text, s.begin, s.end, allow_special, out);
  }
  return out;
}

void AddedTokens::split_pass(const Pass& pass, std::string_view text, size_t begin, size_t end,
                             bool allow_special, std::vector<Segment>& out) const {
  size_t plain = begin;  // start of the plain text not yet emitted
  auto emit_plain = [&](size_t upto) {
    if (upto > plain) out.push_back({plain, upto, -1});
  };
  size_t pos = begin;
  while (!pass.empty && pos < end) {
    const auto& bucket = pass.by_first_byte[static_cast<unsigned char>(text[pos])];
    const AddedToken* hit = nullptr;
    for (uint32_t idx : bucket) {
      const AddedToken& t = tokens_[idx];
      if (t.content.size() <= end - pos &&
          std::memcmp(text.data() + pos, t.content.data(), t.content.size()) == 0) {
        hit = &t;
        break;  // the bucket is longest first
      }
    }
    if (!hit) {
      ++pos;
      continue;
    }
    size_t match_begin = pos, match_end = pos + hit->content.size();
    pos = match_end;
    if (hit->special && !allow_special) continue;  // its text stays plain
    if (hit->lstrip) {
      size_t start;
      while (match_begin > plain && is_white_space(previous_code_point(text, match_begin, start)))
        match_begin = start;
    }
    if (hit->rstrip) {
      size_t i = match_end;
      while (i < end) {
        size_t j = i;
        if (!is_white_space(next_code_point(text, j))) break;
        i = j;
      }
      match_end = pos = i;
    }
    emit_plain(match_begin);
    out.push_back({match_begin, match_end, hit->id});
    plain = match_end;
  }
  emit_plain(end);
}

}  // namespace dsinfer::tokenizer

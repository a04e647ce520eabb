#include "synthetic/gen_tokenizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <unordered_map>

namespace dsinfer {

using ordered_json = nlohmann::ordered_json;

namespace {

// The pre-tokenizer of the released DeepSeek-V3 tokenizer.json, verbatim (as JSON text, since its
// regexes hold literal CR and LF characters written as JSON escapes).
constexpr std::string_view kPreTokenizerJson =
    R"json({"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": false}, {"type": "Split", "pattern": {"Regex": "[一-龥぀-ゟ゠-ヿ]+"}, "behavior": "Isolated", "invert": false}, {"type": "Split", "pattern": {"Regex": "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]})json";

// The chat_template of the released DeepSeek-V3 tokenizer_config.json, verbatim (a JSON string).
constexpr std::
    string_view kChatTemplateJson = R"tmpl("{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else %}{{'\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %}")tmpl";

// Special tokens in id order, with the flags of the real file. The first three are also BPE
// vocabulary entries (ids 0, 1, 2); the rest follow the learned vocabulary.
const std::vector<GenSpecialToken>& special_tokens() {
  static const std::vector<GenSpecialToken> list = {
      {"<｜begin▁of▁sentence｜>", true, false},
      {"<｜end▁of▁sentence｜>", true, false},
      {"<｜▁pad▁｜>", true, false},
      {"<think>", false, true},
      {"</think>", false, true},
      {"<｜fim▁hole｜>", false, true},
      {"<｜fim▁begin｜>", false, true},
      {"<｜fim▁end｜>", false, true},
      {"<｜User｜>", false, true},
      {"<｜Assistant｜>", false, true},
      {"<|EOT|>", true, true},
      {"<｜tool▁calls▁begin｜>", false, true},
      {"<｜tool▁calls▁end｜>", false, true},
      {"<｜tool▁call▁begin｜>", false, true},
      {"<｜tool▁call▁end｜>", false, true},
      {"<｜tool▁outputs▁begin｜>", false, true},
      {"<｜tool▁outputs▁end｜>", false, true},
      {"<｜tool▁output▁begin｜>", false, true},
      {"<｜tool▁output▁end｜>", false, true},
      {"<｜tool▁sep｜>", false, true},
  };
  return list;
}
constexpr int kLeadingSpecials = 3;  // bos, eos, pad: in the vocabulary too

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xc0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3f));
  } else {
    s += char(0xe0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3f));
    s += char(0x80 | (cp & 0x3f));
  }
  return s;
}

// GPT-2's bytes_to_unicode, in its order: the printable bytes map to themselves, the other 68 to
// U+0100.. in byte order. The real vocabulary lists the 256 byte tokens in this order.
struct ByteLevelTable {
  std::array<uint32_t, 256> code_point{};
  std::array<uint8_t, 256> order{};  // order[i]: the i-th byte of the listing
  ByteLevelTable() {
    std::array<bool, 256> printable{};
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      printable[b] = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      if (printable[b]) {
        code_point[b] = uint32_t(b);
        order[n++] = uint8_t(b);
      }
    }
    int extra = 0;
    for (int b = 0; b < 256; ++b)
      if (!printable[b]) {
        code_point[b] = 256u + uint32_t(extra++);
        order[n++] = uint8_t(b);
      }
  }
};
const ByteLevelTable& byte_table() {
  static const ByteLevelTable table;
  return table;
}

// ---- the ASCII reading of the pre-tokenizer regexes ------------------------------------------

bool is_letter(unsigned char c) {  // \p{L}\p{M}; non-ASCII bytes count as letters
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c >= 0x80;
}
bool is_ascii_letter(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
bool is_punct(unsigned char c) {  // \p{P}\p{S} in ASCII
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
         (c >= 123 && c <= 126);
}
bool is_newline(unsigned char c) {
  return c == '\r' || c == '\n';
}
bool is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}

// The length of the third Split regex's match at `i`, or 0 when no alternative matches there.
size_t match_at(std::string_view s, size_t i) {
  const size_t n = s.size();
  auto at = [&](size_t k) -> unsigned char { return k < n ? uint8_t(s[k]) : 0; };
  auto letters_from = [&](size_t k) {
    while (k < n && is_letter(at(k))) ++k;
    return k;
  };
  // [punct][A-Za-z]+
  if (is_punct(at(i)) && is_ascii_letter(at(i + 1))) {
    size_t k = i + 1;
    while (k < n && is_ascii_letter(at(k))) ++k;
    return k - i;
  }
  // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
  unsigned char c = at(i);
  if (i < n && !is_newline(c) && !is_letter(c) && !is_punct(c) && is_letter(at(i + 1)))
    return letters_from(i + 1) - i;
  if (is_letter(c)) return letters_from(i) - i;
  // ' ?[\p{P}\p{S}]+[\r\n]*'
  size_t k = i + (c == ' ' ? 1 : 0);
  if (is_punct(at(k))) {
    while (k < n && is_punct(at(k))) ++k;
    while (k < n && is_newline(at(k))) ++k;
    return k - i;
  }
  // \s*[\r\n]+ : the whitespace run up to its last newline
  size_t end = i;
  while (end < n && is_space(at(end))) ++end;
  for (size_t j = end; j > i; --j)
    if (is_newline(at(j - 1))) return j - i;
  // \s+(?!\S) then \s+
  if (end == i) return 0;
  if (end == n || end - i == 1) return end - i;
  return end - 1 - i;
}

void split_regex(std::string_view s, std::vector<std::string>& out) {
  size_t gap = 0, i = 0;  // unmatched text [gap, i) is a piece of its own (Isolated)
  while (i < s.size()) {
    size_t len = match_at(s, i);
    if (len == 0) {
      ++i;
      continue;
    }
    if (gap < i) out.emplace_back(s.substr(gap, i - gap));
    out.emplace_back(s.substr(i, len));
    i += len;
    gap = i;
  }
  if (gap < s.size()) out.emplace_back(s.substr(gap));
}

// ---- learning merges ---------------------------------------------------------------------------

struct Learned {
  std::vector<std::string> tokens;  // byte tokens in listing order, then each merge's result
  std::vector<std::pair<std::string, std::string>> merges;
};

// Classic BPE training on the corpus' pre-tokenized words: repeatedly merge the most frequent
// adjacent pair (ties: the lexicographically smallest pair of token strings) until
// `max_new_tokens` tokens were added or every word is one token.
Learned learn_merges(int max_new_tokens) {
  Learned out;
  std::unordered_map<std::string, int> id_of;
  const ByteLevelTable& table = byte_table();
  std::array<int, 256> byte_id{};
  for (int i = 0; i < 256; ++i) {
    uint8_t b = table.order[i];
    byte_id[b] = i;
    out.tokens.push_back(utf8(table.code_point[b]));
    id_of[out.tokens.back()] = i;
  }
  std::map<std::string, int> word_counts;  // ordered, so the training is deterministic
  for (const std::string& w : gen_pre_tokenize(gen_tokenizer_corpus())) ++word_counts[w];
  std::vector<std::vector<int>> words;
  std::vector<int64_t> counts;
  for (const auto& [w, count] : word_counts) {
    std::vector<int> ids;
    for (unsigned char b : w) ids.push_back(byte_id[b]);
    words.push_back(std::move(ids));
    counts.push_back(count);
  }

  int added = 0;
  while (added < max_new_tokens) {
    std::map<std::pair<int, int>, int64_t> pairs;
    for (size_t w = 0; w < words.size(); ++w)
      for (size_t i = 0; i + 1 < words[w].size(); ++i)
        pairs[{words[w][i], words[w][i + 1]}] += counts[w];
    const std::pair<int, int>* best = nullptr;
    int64_t best_count = 0;  // pairs seen once only when no other is left
    for (const auto& [pair, count] : pairs) {
      bool better =
          count > best_count ||
          (best && count == best_count &&
           std::tie(out.tokens[size_t(pair.first)], out.tokens[size_t(pair.second)]) <
               std::tie(out.tokens[size_t(best->first)], out.tokens[size_t(best->second)]));
      if (better) {
        best = &pair;
        best_count = count;
      }
    }
    if (!best) break;
    const auto [a, b] = *best;
    std::string merged = out.tokens[size_t(a)] + out.tokens[size_t(b)];
    out.merges.emplace_back(out.tokens[size_t(a)], out.tokens[size_t(b)]);
    auto [it, fresh] = id_of.emplace(merged, int(out.tokens.size()));
    if (fresh) {
      out.tokens.push_back(merged);
      ++added;
    }
    const int m = it->second;
    for (std::vector<int>& word : words) {
      size_t o = 0;
      for (size_t i = 0; i < word.size(); ++i) {
        if (i + 1 < word.size() && word[i] == a && word[i + 1] == b) {
          word[o++] = m;
          ++i;
        } else {
          word[o++] = word[i];
        }
      }
      word.resize(o);
    }
  }
  return out;
}

int fixed_tokens() {
  return 256 + int(special_tokens().size());
}

ordered_json added_token_json(int id, const GenSpecialToken& t) {
  return {
      {"id", id},        {"content", t.content},       {"single_word", false}, {"lstrip", false},
      {"rstrip", false}, {"normalized", t.normalized}, {"special", t.special}};
}

ordered_json config_token_json(const std::string& content) {
  return {{"__type", "AddedToken"}, {"content", content}, {"lstrip", false},
          {"normalized", true},     {"rstrip", false},    {"single_word", false}};
}

}  // namespace

std::string byte_level_char(unsigned char byte) {
  return utf8(byte_table().code_point[byte]);
}

std::string byte_level_encode(std::string_view bytes) {
  std::string out;
  for (unsigned char b : bytes) out += byte_level_char(b);
  return out;
}

std::vector<std::string> gen_pre_tokenize(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;  // \p{N}{1,3} isolated first; the text between goes to the third regex
  for (size_t i = 0; i < text.size();) {
    if (!is_digit(uint8_t(text[i]))) {
      ++i;
      continue;
    }
    split_regex(text.substr(start, i - start), out);
    size_t end = i;
    while (end < text.size() && end - i < 3 && is_digit(uint8_t(text[end]))) ++end;
    out.emplace_back(text.substr(i, end - i));
    i = start = end;
  }
  split_regex(text.substr(start), out);
  return out;
}

int GenTokenizer::special_id(std::string_view content) const {
  for (size_t i = 0; i < specials.size(); ++i)
    if (specials[i].content == content)
      return int(i) < kLeadingSpecials ? int(i) : vocab_end + int(i) - kLeadingSpecials;
  return -1;
}

int gen_tokenizer_max_size() {
  static const int size =
      fixed_tokens() + int(learn_merges(std::numeric_limits<int>::max()).tokens.size()) - 256;
  return size;
}

GenTokenizer build_gen_tokenizer(int vocab_size) {
  if (vocab_size < fixed_tokens() || vocab_size > gen_tokenizer_max_size())
    throw std::invalid_argument(
        fmt::format("generated tokenizer: vocab_size {} is outside [{}, {}] (the {} special and "
                    "256 byte tokens, up to what the built-in text's merges give)",
                    vocab_size, fixed_tokens(), gen_tokenizer_max_size(), special_tokens().size()));
  Learned learned = learn_merges(vocab_size - fixed_tokens());
  GenTokenizer t;
  t.specials = special_tokens();
  for (int i = 0; i < kLeadingSpecials; ++i) t.tokens.push_back(t.specials[size_t(i)].content);
  t.tokens.insert(t.tokens.end(), learned.tokens.begin(), learned.tokens.end());
  t.vocab_end = int(t.tokens.size());
  for (size_t i = kLeadingSpecials; i < t.specials.size(); ++i)
    t.tokens.push_back(t.specials[i].content);
  t.merges = std::move(learned.merges);
  return t;
}

std::string gen_tokenizer_json(const GenTokenizer& t) {
  ordered_json added = ordered_json::array();
  for (size_t i = 0; i < t.specials.size(); ++i)
    added.push_back(added_token_json(t.special_id(t.specials[i].content), t.specials[i]));
  ordered_json vocab = ordered_json::object();
  for (int id = 0; id < t.vocab_end; ++id) vocab[t.tokens[size_t(id)]] = id;
  ordered_json merges = ordered_json::array();
  for (const auto& [a, b] : t.merges) merges.push_back(a + " " + b);
  ordered_json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", std::move(added)},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", ordered_json::array()}}},
      {"pre_tokenizer", ordered_json::parse(kPreTokenizerJson)},
      {"post_processor",
       {{"type", "ByteLevel"},
        {"add_prefix_space", true},
        {"trim_offsets", false},
        {"use_regex", true}}},
      {"decoder",
       {{"type", "ByteLevel"},
        {"add_prefix_space", true},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"vocab", std::move(vocab)},
        {"merges", std::move(merges)}}},
  };
  return j.dump(2) + "\n";
}

const std::string& deepseek_v3_chat_template() {
  static const std::string text = nlohmann::json::parse(kChatTemplateJson).get<std::string>();
  return text;
}

std::string gen_tokenizer_config_json(const GenTokenizer& t, int model_max_length) {
  const std::string& bos = t.tokens[size_t(t.bos_id())];
  const std::string& eos = t.tokens[size_t(t.eos_id())];
  ordered_json j = {
      {"add_bos_token", true},
      {"add_eos_token", false},
      {"bos_token", config_token_json(bos)},
      {"clean_up_tokenization_spaces", false},
      {"eos_token", config_token_json(eos)},
      {"legacy", true},
      {"model_max_length", model_max_length},
      {"pad_token", config_token_json(eos)},
      {"sp_model_kwargs", ordered_json::object()},
      {"unk_token", nullptr},
      {"tokenizer_class", "LlamaTokenizerFast"},
      {"chat_template", deepseek_v3_chat_template()},
  };
  return j.dump(2) + "\n";
}

}  // namespace dsinfer

#include "tokenizer/tokenizer.h"

#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace dsinfer {

using namespace tokenizer;

struct Tokenizer::Impl {
  AddedTokens added;
  PreTokenizer pre;
  BpeModel bpe;
  // Indexed by id; has[id] is false for ids that no token uses.
  std::vector<std::string> spelling, bytes;
  std::vector<bool> has, special;
  StringMap<int32_t> added_ids;  // content -> id
  std::string bos_token, eos_token;
  int32_t bos_id = -1, eos_id = -1;
};

namespace {

nlohmann::json parse_json(std::string_view text, const std::string& source) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw std::invalid_argument(source + ": invalid JSON: " + e.what());
  }
}

// Only normalizers that change nothing are supported: null or (nested) empty Sequences.
void check_normalizer(const nlohmann::json& n, const std::string& where) {
  if (n.is_null()) return;
  std::string type = json_string(n, "type", where);
  if (type != "Sequence")
    json_error(where + ".type", "unsupported normalizer \"" + type +
                                    "\" (supported: null or a Sequence of supported ones)");
  const nlohmann::json& list = json_required(n, "normalizers", where);
  if (!list.is_array()) json_error(where + ".normalizers", "expected an array");
  for (size_t i = 0; i < list.size(); ++i)
    check_normalizer(list[i], where + ".normalizers[" + std::to_string(i) + "]");
}

void check_decoder(const nlohmann::json& d, const std::string& where) {
  if (d.is_null()) json_error(where, "missing (a ByteLevel decoder is required)");
  std::string type = json_string(d, "type", where);
  if (type != "ByteLevel")
    json_error(where + ".type", "unsupported decoder \"" + type + "\" (supported: ByteLevel)");
}

// tokenizer_config.json writes special tokens as a string or as {"content": ...}.
std::string config_token(const nlohmann::json& config, const char* key, const std::string& where) {
  if (!config.is_object() || !config.contains(key) || config[key].is_null()) return {};
  const nlohmann::json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  return json_string(v, "content", where + "." + key);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& model_dir) {
  namespace fs = std::filesystem;
  fs::path dir(model_dir);
  if (!fs::exists(dir))
    throw std::runtime_error("model directory '" + model_dir + "' does not exist");
  if (!fs::is_directory(dir)) throw std::runtime_error("'" + model_dir + "' is not a directory");
  fs::path tok = dir / "tokenizer.json";
  if (!fs::exists(tok))
    throw std::runtime_error(tok.string() +
                             ": not found (the model directory needs tokenizer.json)");
  fs::path cfg = dir / "tokenizer_config.json";
  std::string cfg_text = fs::exists(cfg) ? read_file(cfg) : std::string();
  return from_json(read_file(tok), cfg_text, tok.string());
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json,
                               std::string_view tokenizer_config_json, const std::string& source) {
  nlohmann::json j = parse_json(tokenizer_json, source);
  if (!j.is_object()) json_error(source, "expected a JSON object");
  auto impl = std::make_shared<Impl>();
  check_normalizer(j.value("normalizer", nlohmann::json()), source + ": normalizer");
  check_decoder(j.value("decoder", nlohmann::json()), source + ": decoder");
  impl->pre = PreTokenizer::from_json(j.value("pre_tokenizer", nlohmann::json()),
                                      source + ": pre_tokenizer");
  if (!impl->pre.ends_with_byte_level())
    json_error(source + ": pre_tokenizer",
               "must end with a ByteLevel pre-tokenizer (only "
               "byte-level BPE is supported)");
  impl->bpe = BpeModel::from_json(json_required(j, "model", source), source + ": model");
  impl->added =
      AddedTokens::from_json(j.value("added_tokens", nlohmann::json()), source + ": added_tokens");

  int32_t max_id = -1;
  for (const auto& [s, id] : impl->bpe.vocab()) max_id = std::max(max_id, id);
  for (const AddedToken& t : impl->added.tokens()) max_id = std::max(max_id, t.id);
  size_t n = size_t(max_id + 1);
  impl->spelling.resize(n);
  impl->bytes.resize(n);
  impl->has.assign(n, false);
  impl->special.assign(n, false);
  auto set = [&](int32_t id, const std::string& s) {
    impl->spelling[id] = s;
    impl->bytes[id] = byte_level_decode_token(s);
    impl->has[id] = true;
  };
  for (const auto& [s, id] : impl->bpe.vocab()) set(id, s);
  // An added token's content wins over a vocabulary entry with the same id, as in HF.
  for (const AddedToken& t : impl->added.tokens()) {
    set(t.id, t.content);
    impl->special[t.id] = t.special;
    impl->added_ids[t.content] = t.id;
  }

  Tokenizer result(impl);
  if (!tokenizer_config_json.empty()) {
    std::string cfg_source = "tokenizer_config.json";
    nlohmann::json cfg = parse_json(tokenizer_config_json, cfg_source);
    impl->bos_token = config_token(cfg, "bos_token", cfg_source);
    impl->eos_token = config_token(cfg, "eos_token", cfg_source);
    for (auto [token, id, key] : {std::tuple{&impl->bos_token, &impl->bos_id, "bos_token"},
                                  std::tuple{&impl->eos_token, &impl->eos_id, "eos_token"}}) {
      if (token->empty()) continue;
      *id = result.token_id(*token);
      if (*id < 0)
        json_error(cfg_source + ": " + key, "\"" + *token + "\" is not a token of " + source);
    }
  }
  return result;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
  if (size_t bad = find_invalid_utf8(text); bad != kValidUtf8)
    throw std::invalid_argument("encode: text is not valid UTF-8 at byte offset " +
                                std::to_string(bad));
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3);
  std::vector<std::string_view> pieces;
  std::deque<std::string> arena;
  for (const Segment& seg : impl_->added.split(text, allow_special)) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    pieces.clear();
    impl_->pre.split(text.substr(seg.begin, seg.end - seg.begin), pieces, arena);
    for (std::string_view piece : pieces) impl_->bpe.encode(piece, ids);
  }
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string bytes;
  for (size_t i = 0; i < ids.size(); ++i) {
    int32_t id = ids[i];
    if (id < 0 || size_t(id) >= impl_->has.size() || !impl_->has[id])
      throw std::out_of_range("decode: token id " + std::to_string(id) + " at position " +
                              std::to_string(i) + " is not in the vocabulary (size " +
                              std::to_string(vocab_size()) + ")");
    if (skip_special && impl_->special[id]) continue;
    bytes += impl_->bytes[id];
  }
  std::string text;
  text.reserve(bytes.size());
  append_utf8_lossy(text, bytes, /*final=*/true);
  return text;
}

int32_t Tokenizer::token_id(std::string_view token) const {
  if (auto it = impl_->added_ids.find(token); it != impl_->added_ids.end()) return it->second;
  if (auto it = impl_->bpe.vocab().find(token); it != impl_->bpe.vocab().end()) return it->second;
  return -1;
}

std::optional<std::string> Tokenizer::token_text(int32_t id) const {
  if (id < 0 || size_t(id) >= impl_->has.size() || !impl_->has[id]) return std::nullopt;
  return impl_->spelling[id];
}

std::optional<std::string> Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || size_t(id) >= impl_->has.size() || !impl_->has[id]) return std::nullopt;
  return impl_->bytes[id];
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && size_t(id) < impl_->special.size() && impl_->special[id];
}

int32_t Tokenizer::bos_id() const {
  return impl_->bos_id;
}
int32_t Tokenizer::eos_id() const {
  return impl_->eos_id;
}
const std::string& Tokenizer::bos_token() const {
  return impl_->bos_token;
}
const std::string& Tokenizer::eos_token() const {
  return impl_->eos_token;
}
size_t Tokenizer::vocab_size() const {
  return impl_->has.size();
}
void Tokenizer::set_cache_capacity(size_t words) {
  impl_->bpe.set_cache_capacity(words);
}

}  // namespace dsinfer

// Loading a model directory: clear errors for missing files, bad JSON and unsupported
// components; BOS/EOS from tokenizer_config.json; encode/decode input checks.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tiny_tokenizer.h"

namespace dsinfer::testing {
namespace {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed afterwards.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("dsinfer_tok_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string str() const { return path_.string(); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name, std::ios::binary) << text;
  }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

TEST(TokenizerLoad, MissingDirectoryOrFile) {
  EXPECT_CONTAINS(error_of([] { Tokenizer::load("/no/such/model/dir"); }),
                  "model directory '/no/such/model/dir' does not exist");
  TempDir dir;
  EXPECT_CONTAINS(error_of([&] { Tokenizer::load(dir.str()); }), "tokenizer.json: not found");
  dir.write("file", "x");
  EXPECT_CONTAINS(error_of([&] { Tokenizer::load(dir.str() + "/file"); }), "is not a directory");
}

TEST(TokenizerLoad, BadJsonNamesTheFile) {
  TempDir dir;
  dir.write("tokenizer.json", "{\"model\": ");
  std::string e = error_of([&] { Tokenizer::load(dir.str()); });
  EXPECT_CONTAINS(e, dir.str() + "/tokenizer.json: invalid JSON");
  dir.write("tokenizer.json", tiny_tokenizer_json().dump());
  dir.write("tokenizer_config.json", "[1,");
  EXPECT_CONTAINS(error_of([&] { Tokenizer::load(dir.str()); }),
                  "tokenizer_config.json: invalid JSON");
  dir.write("tokenizer.json", "[]");
  EXPECT_CONTAINS(error_of([&] { Tokenizer::load(dir.str()); }), "expected a JSON object");
}

TEST(TokenizerLoad, UnsupportedComponentsNameTheField) {
  nlohmann::json j = tiny_tokenizer_json();
  j["normalizer"] = {{"type", "NFC"}};
  EXPECT_CONTAINS(error_of([&] { tiny_tokenizer(j); }),
                  "normalizer.type: unsupported normalizer \"NFC\"");
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "Lowercase"}}}}};
  EXPECT_CONTAINS(error_of([&] { tiny_tokenizer(j); }), "normalizer.normalizers[0].type");
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", nlohmann::json::array()}};
  EXPECT_NO_THROW(tiny_tokenizer(j));

  j = tiny_tokenizer_json();
  j["decoder"] = {{"type", "WordPiece"}};
  EXPECT_CONTAINS(error_of([&] { tiny_tokenizer(j); }),
                  "decoder.type: unsupported decoder \"WordPiece\"");
  j["decoder"] = nullptr;
  EXPECT_CONTAINS(error_of([&] { tiny_tokenizer(j); }), "decoder: missing");

  j = tiny_tokenizer_json();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Removed"}};
  EXPECT_CONTAINS(error_of([&] { tiny_tokenizer(j); }), "must end with a ByteLevel");
}

TEST(TokenizerLoad, BosAndEosFromTheConfig) {
  nlohmann::json j = tiny_tokenizer_json();
  j["added_tokens"] = {added_token(256, "<bos>", true), added_token(257, "<eos>", true)};
  Tokenizer tok = tiny_tokenizer(
      j, R"({"bos_token": {"__type": "AddedToken", "content": "<bos>"}, "eos_token": "<eos>"})");
  EXPECT_EQ(tok.bos_id(), 256);
  EXPECT_EQ(tok.eos_id(), 257);
  EXPECT_EQ(tok.bos_token(), "<bos>");
  EXPECT_EQ(tok.eos_token(), "<eos>");

  Tokenizer none = tiny_tokenizer(j, R"({"bos_token": null})");
  EXPECT_EQ(none.bos_id(), -1);
  EXPECT_EQ(none.eos_id(), -1);
  EXPECT_EQ(none.bos_token(), "");

  EXPECT_CONTAINS(error_of([&] { tiny_tokenizer(j, R"({"eos_token": "<end>"})"); }),
                  "tokenizer_config.json: eos_token: \"<end>\" is not a token");
}

TEST(TokenizerLoad, TokenLookups) {
  Tokenizer tok = tiny_tokenizer(tiny_tokenizer_json({{" ", "t"}}));
  EXPECT_EQ(tok.token_id("Ġt"), 256);  // the byte-level spelling
  EXPECT_EQ(tok.token_id(" t"), -1);
  EXPECT_EQ(tok.token_text(256), "Ġt");
  EXPECT_EQ(tok.token_bytes(256), " t");
  EXPECT_EQ(tok.token_text(9999), std::nullopt);
  EXPECT_EQ(tok.token_bytes(-1), std::nullopt);
  EXPECT_EQ(tok.vocab_size(), 257u);
}

TEST(TokenizerLoad, EncodeRejectsInvalidUtf8AndDecodeUnknownIds) {
  Tokenizer tok = tiny_tokenizer(tiny_tokenizer_json());
  EXPECT_CONTAINS(error_of([&] { tok.encode("abc\xFFz", false); }),
                  "not valid UTF-8 at byte offset 3");
  std::vector<int32_t> ids = {'a', 4000};
  EXPECT_CONTAINS(error_of([&] { tok.decode(ids); }), "token id 4000 at position 1");
  EXPECT_THROW(tok.decode(ids), std::out_of_range);
  EXPECT_EQ(tok.encode("", false), std::vector<int32_t>{});
  EXPECT_EQ(tok.decode(std::vector<int32_t>{}), "");
}

TEST(TokenizerLoad, DecodeReplacesIllFormedUtf8) {
  Tokenizer tok = tiny_tokenizer(tiny_tokenizer_json());
  // The first two bytes of "你" (E4 BD A0), then 'a'.
  EXPECT_EQ(tok.decode(std::vector<int32_t>{0xE4, 0xBD, 'a'}),
            "\uFFFD"
            "a");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{0xE4, 0xBD, 0xA0}), "你");
}

}  // namespace
}  // namespace dsinfer::testing

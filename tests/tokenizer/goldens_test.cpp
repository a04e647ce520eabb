// The tokenizer against the reference encodings in ../shared: every case must match exactly.
#include <gtest/gtest.h>

#include "shared_data.h"
#include "tokenizer/streaming_decoder.h"

namespace dsinfer::testing {
namespace {

nlohmann::json load_goldens(const char* name) {
  return nlohmann::json::parse(read_text(shared_path(std::string("data/") + name)));
}

TEST(TokenizerGoldens, EncodesEveryTextExactly) {
  DSINFER_REQUIRE_SHARED(kDeepSeekDir);
  DSINFER_REQUIRE_SHARED("data/tokenizer-goldens.json");
  const Tokenizer& tok = deepseek_tokenizer();
  nlohmann::json goldens = load_goldens("tokenizer-goldens.json");
  ASSERT_GT(goldens.size(), 100u);
  int mismatches = 0;
  for (const auto& g : goldens) {
    std::string text = g["text"];
    std::vector<int32_t> want = g["ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> got = tok.encode(text, /*allow_special=*/false);
    if (got != want) {
      ++mismatches;
      ADD_FAILURE() << "text " << nlohmann::json(text).dump() << "\n  want "
                    << nlohmann::json(want).dump() << "\n  got  " << nlohmann::json(got).dump();
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << goldens.size();
}

TEST(TokenizerGoldens, DecodeRestoresEveryText) {
  DSINFER_REQUIRE_SHARED(kDeepSeekDir);
  DSINFER_REQUIRE_SHARED("data/tokenizer-goldens.json");
  const Tokenizer& tok = deepseek_tokenizer();
  for (const auto& g : load_goldens("tokenizer-goldens.json")) {
    std::vector<int32_t> ids = g["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok.decode(ids), g["text"].get<std::string>());
  }
}

TEST(TokenizerGoldens, StreamingDecodeMatchesDecode) {
  DSINFER_REQUIRE_SHARED(kDeepSeekDir);
  DSINFER_REQUIRE_SHARED("data/tokenizer-goldens.json");
  const Tokenizer& tok = deepseek_tokenizer();
  for (const auto& g : load_goldens("tokenizer-goldens.json")) {
    StreamingDecoder stream(tok);
    std::string text;
    for (int32_t id : g["ids"].get<std::vector<int32_t>>()) {
      std::string piece = stream.push(id);
      // Every piece handed out must be whole UTF-8 on its own.
      EXPECT_EQ(tok.decode(tok.encode(piece, false)), piece);
      text += piece;
    }
    text += stream.flush();
    EXPECT_EQ(text, g["text"].get<std::string>());
  }
}

}  // namespace
}  // namespace dsinfer::testing

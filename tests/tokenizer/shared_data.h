// Access to the reference data in ../shared for the tokenizer tests: skipped with a message
// when it is absent, a failure when CI=true (where it must be present).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tokenizer/tokenizer.h"

namespace dsinfer::testing {

inline std::string shared_path(const std::string& relative) {
  return std::string(DSINFER_SHARED_DIR) + "/" + relative;
}

inline bool running_in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

// Use at the top of a test: returns from it (skip, or fail in CI) when `relative` is missing.
#define DSINFER_REQUIRE_SHARED(relative)                                                         \
  do {                                                                                           \
    if (!std::filesystem::exists(::dsinfer::testing::shared_path(relative))) {                   \
      if (::dsinfer::testing::running_in_ci())                                                   \
        FAIL() << "missing reference data " << ::dsinfer::testing::shared_path(relative);        \
      GTEST_SKIP() << "reference data not found: " << ::dsinfer::testing::shared_path(relative); \
    }                                                                                            \
  } while (0)

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline const char* kDeepSeekDir = "data/deepseek-v3-tokenizer";

// The DeepSeek-V3 tokenizer, loaded once per test binary (call after DSINFER_REQUIRE_SHARED).
inline const Tokenizer& deepseek_tokenizer() {
  static const Tokenizer tok = Tokenizer::load(shared_path(kDeepSeekDir));
  return tok;
}

}  // namespace dsinfer::testing

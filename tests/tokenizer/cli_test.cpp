// `dsinfer tokenize` end to end, when the CLI has been built next to this test binary.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "shared_data.h"

namespace dsinfer::testing {
namespace {

struct CommandResult {
  int code;
  std::string output;  // stdout and stderr
};

CommandResult run(const std::string& args) {
  std::string cmd = std::string(DSINFER_BIN_DIR) + "/dsinfer tokenize " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  CommandResult r{-1, ""};
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string shell_quote(const std::string& s) {
  return "'" + s + "'";
}

class TokenizeCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(std::string(DSINFER_BIN_DIR) + "/dsinfer"))
      GTEST_SKIP() << "dsinfer CLI not built in " << DSINFER_BIN_DIR;
    DSINFER_REQUIRE_SHARED(kDeepSeekDir);
    model_ = shell_quote(shared_path(kDeepSeekDir));
  }
  std::string model_;
};

TEST_F(TokenizeCommand, TextToIdsAndBack) {
  CommandResult r = run("-m " + model_ + " -p 'Hello world! 12345'");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output, "19923,2058,3,223,6895,1883\n");
  r = run("-m " + model_ + " --decode '19923, 2058,3'");
  EXPECT_EQ(r.output, "Hello world!\n");
}

TEST_F(TokenizeCommand, SpecialFlagAndFiles) {
  std::string path = std::filesystem::temp_directory_path() / "dsinfer_cli_text.txt";
  std::ofstream(path) << "<｜begin▁of▁sentence｜>Hi";
  EXPECT_EQ(run("-m " + model_ + " -f " + shell_quote(path) + " --special").output, "0,23166\n");
  EXPECT_NE(run("-m " + model_ + " -f " + shell_quote(path)).output.rfind("0,", 0), 0u);
  std::filesystem::remove(path);
}

TEST_F(TokenizeCommand, ChatMatchesTheGolden) {
  std::string path = std::filesystem::temp_directory_path() / "dsinfer_cli_chat.json";
  std::ofstream(path)
      << R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Tell me a joke."}])";
  CommandResult r = run("-m " + model_ + " --chat " + shell_quote(path) + " --generation-prompt");
  EXPECT_EQ(r.output,
            "0,7153,9708,16,128803,23166,128804,19923,16,1,128803,50433,678,260,38112,16,128804\n");
  r = run("-m " + model_ + " --chat " + shell_quote(path) +
          " --format v3.1 --think --generation-prompt --render");
  EXPECT_EQ(r.output,
            "<｜begin▁of▁sentence｜>Be "
            "brief.<｜User｜>Hi<｜Assistant｜></think>Hello.<｜end▁of▁sentence｜>"
            "<｜User｜>Tell me a joke.<｜Assistant｜><think>\n");
  std::filesystem::remove(path);
}

TEST_F(TokenizeCommand, ErrorsAreOneClearLine) {
  auto expect_error = [&](const std::string& args, const std::string& message) {
    CommandResult r = run(args);
    EXPECT_EQ(r.code, 1) << args;
    EXPECT_EQ(r.output.rfind("dsinfer: error: ", 0), 0u) << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << r.output;
  };
  expect_error("-m /no/such/dir -p x", "model directory '/no/such/dir' does not exist");
  expect_error("-m " + shell_quote(std::filesystem::temp_directory_path()) + " -p x",
               "tokenizer.json: not found");
  expect_error("-m " + model_ + " --decode 1,x", "--decode: entry 2 ('x') is not a token id");
  expect_error("-m " + model_ + " --decode 999999", "token id 999999");
  expect_error("-m " + model_ + " -p a --decode 1", "give exactly one of");
  expect_error("-m " + model_ + " --chat /no/such.json", "/no/such.json: cannot open");
  expect_error("-m " + model_ + " -p x --think", "need --chat");
}

}  // namespace
}  // namespace dsinfer::testing

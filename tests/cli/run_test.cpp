// `dsinfer run` through the real binary on a random tiny checkpoint: reproducible greedy output
// across runs and thread counts, raw and chat modes, interactive turns, and one-line errors.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "synthetic/gen_model.h"

namespace dsinfer {
namespace {

namespace fs = std::filesystem;

const std::string& tiny_dir() {
  static std::string dir;
  if (dir.empty()) {
    char tmpl[] = "/tmp/dsinfer-run-XXXXXX";
    const char* d = mkdtemp(tmpl);
    if (!d) throw std::runtime_error("mkdtemp failed");
    GenModelOptions o;
    o.preset = GenPreset::tiny;
    o.output_dir = std::string(d) + "/tiny";
    o.seed = 3;
    generate_model(o);
    dir = o.output_dir;
    static struct Cleanup {
      std::string root;
      ~Cleanup() { fs::remove_all(root); }
    } cleanup{d};
  }
  return dir;
}

struct Result {
  int status;
  std::string out, err;
};

// Runs `dsinfer ARGS` with `input` on stdin; captures stdout and stderr separately.
Result dsinfer(const std::string& args, const std::string& input = "") {
  const std::string base =
      fs::temp_directory_path() / ("dsinfer-run-" + std::to_string(::getpid()));
  { std::ofstream(base + ".in") << input; }
  const std::string cmd = std::string(DSINFER_BIN_DIR) + "/dsinfer " + args + " < " + base +
                          ".in > " + base + ".out 2> " + base + ".err";
  const int rc = std::system(cmd.c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  Result r{WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, slurp(base + ".out"), slurp(base + ".err")};
  fs::remove(base + ".in"), fs::remove(base + ".out"), fs::remove(base + ".err");
  return r;
}

TEST(RunCli, GreedyOutputIsReproducibleAcrossRunsAndThreadCounts) {
  const std::string args = "run -m " + tiny_dir() + " -p 'The engine reads' -n 24 --temp 0 -q";
  const Result a = dsinfer(args + " -t 1"), b = dsinfer(args + " -t 2"),
               c = dsinfer(args + " -t 2");
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_FALSE(a.out.empty());
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(b.out, c.out);
}

TEST(RunCli, SeededSamplingIsReproducibleAndSeedsDiffer) {
  const std::string args = "run -m " + tiny_dir() + " --raw -p 'Once' -n 40 --temp 1.0 -q --seed ";
  const Result a = dsinfer(args + "11"), b = dsinfer(args + "11"), c = dsinfer(args + "12");
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
}

TEST(RunCli, SpeculativeDecodingGivesTheSameGreedyTextAndReportsAcceptance) {
  const std::string args = "run -m " + tiny_dir() + " --raw -p 'The engine reads' -n 30 --temp 0";
  const Result plain = dsinfer(args + " -q");
  ASSERT_EQ(plain.status, 0) << plain.err;
  for (const char* k : {"1", "3"}) {
    const Result spec = dsinfer(args + " --speculative mtp --draft-tokens " + k);
    ASSERT_EQ(spec.status, 0) << spec.err;
    EXPECT_EQ(spec.out, plain.out) << "--draft-tokens " << k;
    EXPECT_NE(spec.err.find("drafts accepted"), std::string::npos) << spec.err;
  }
  const Result bad = dsinfer(args + " --speculative eagle");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("eagle"), std::string::npos) << bad.err;
}

TEST(RunCli, PrintsTheTimingSummary) {
  const Result r = dsinfer("run -m " + tiny_dir() + " -p 'hello' -n 8 --temp 0");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* field : {"prompt", "TTFT", "prefill", "TPOT", "decode", "peak memory"})
    EXPECT_NE(r.err.find(field), std::string::npos) << field << " missing in: " << r.err;
}

TEST(RunCli, InteractiveChatKeepsHistoryAcrossTurns) {
  const Result r =
      dsinfer("run -m " + tiny_dir() + " -n 6 --temp 0", "first question\nsecond one\n");
  ASSERT_EQ(r.status, 0) << r.err;
  // Two answers, each followed by its summary; the second turn's prompt reuses the cached first.
  size_t first = r.err.find("[prompt "), second = r.err.find("[prompt ", first + 1);
  ASSERT_NE(first, std::string::npos) << r.err;
  ASSERT_NE(second, std::string::npos) << r.err;
}

TEST(RunCli, ErrorsAreOneClearLine) {
  Result r = dsinfer("run -m /nonexistent/model -p hi");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("no such model directory"), std::string::npos) << r.err;

  char tmpl[] = "/tmp/dsinfer-notok-XXXXXX";
  const std::string empty = mkdtemp(tmpl);
  r = dsinfer("run -m " + empty + " -p hi");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("no tokenizer.json"), std::string::npos) << r.err;
  fs::remove_all(empty);

  r = dsinfer("run -m " + tiny_dir() +
              " -c 8 -p 'a prompt that is certainly longer than eight tokens'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("does not fit the context"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace dsinfer

namespace dsinfer {
namespace {

// The mini preset has the real attention shapes (H = 128, top-k 2048): run it through the CLI
// too, greedy, at two thread counts.
TEST(RunCli, MiniCheckpointGreedyIsReproducibleAcrossThreadCounts) {
  char tmpl[] = "/tmp/dsinfer-mini-XXXXXX";
  const std::string root = mkdtemp(tmpl);
  GenModelOptions o;
  o.preset = GenPreset::mini;
  o.output_dir = root + "/mini";
  generate_model(o);
  const std::string args = "run -m " + o.output_dir + " -p 'Hello there' -n 6 --temp 0 -q";
  const Result a = dsinfer(args + " -t 1"), b = dsinfer(args + " -t 2");
  fs::remove_all(root);
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_FALSE(a.out.empty());
  EXPECT_EQ(a.out, b.out);
}

}  // namespace
}  // namespace dsinfer

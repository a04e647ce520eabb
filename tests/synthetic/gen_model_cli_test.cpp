// `dsinfer gen-model` from the command line: options, the summary it prints, and its errors.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>

#include "genmodel_test_util.h"

namespace dsinfer::testing {
namespace {

const std::string kCli = DSINFER_BIN_DIR "/dsinfer";

struct CliRun {
  int status = -1;
  std::string output;  // stdout and stderr
};

CliRun run_cli(const std::string& args) {
  CliRun r;
  FILE* p = ::popen((kCli + " " + args + " 2>&1").c_str(), "r");
  if (!p) throw std::runtime_error("popen failed");
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int raw = ::pclose(p);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

class GenModelCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kCli)) GTEST_SKIP() << kCli << " not built";
  }
};

TEST_F(GenModelCli, WritesTheModelAndPrintsASummary) {
  TempDir dir;
  const std::string out = dir.file("m");
  CliRun r = run_cli("gen-model --preset tiny -o " + out + " --dtype bf16 --arch v3 --seed 5");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("DeepseekV3ForCausalLM"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("bf16"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("MiB on disk"), std::string::npos) << r.output;
  ModelConfig c = load_config(out + "/config.json");
  EXPECT_FALSE(c.has_indexer);
  EXPECT_FALSE(c.quantization.has_value());

  // The same options through the library give the same bytes.
  GenModelResult lib = gen_tiny(dir.file("lib"), GenDtype::bf16, GenArch::v3, 5);
  for (const std::string& f : lib.files)
    EXPECT_EQ(read_bytes(out + "/" + f), read_bytes(dir.file("lib/" + f))) << f;

  r = run_cli("gen-model -o " + out);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("--force"), std::string::npos) << r.output;
  r = run_cli("gen-model -o " + out + " --force --shard-mb 8");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find(" 1 shards"), std::string::npos) << r.output;
}

TEST_F(GenModelCli, RejectsBadOptions) {
  TempDir dir;
  for (const char* bad : {"--preset huge", "--dtype fp16", "--arch v4", "--shard-mb -3"}) {
    CliRun r = run_cli(std::string("gen-model -o ") + dir.file("x") + " " + bad);
    EXPECT_NE(r.status, 0) << bad;
    EXPECT_FALSE(std::filesystem::exists(dir.file("x/config.json"))) << bad;
  }
  CliRun r = run_cli("gen-model --preset tiny");  // no -o
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--output"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace dsinfer::testing

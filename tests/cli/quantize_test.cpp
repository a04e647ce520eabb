// `dsinfer quantize` through the real binary: progress on a pipe, the summary, the checkpoint it
// writes running under `dsinfer eval`, and one-line errors for bad flags.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "../model/model_test_util.h"
#include "synthetic/gen_model.h"

namespace dsinfer {
namespace {

namespace fs = std::filesystem;

struct Dirs {
  testing::TempDir tmp;
  std::string root = tmp.path();
  Dirs() {
    GenModelOptions o;
    o.preset = GenPreset::tiny, o.output_dir = root + "/tiny", o.seed = 9;
    generate_model(o);
  }
};

int run(const Dirs& d, const std::string& cmd, std::string* out, std::string* err) {
  const std::string of = d.root + "/out.txt", ef = d.root + "/err.txt";
  const int rc = std::system(
      (std::string(DSINFER_BIN_DIR) + "/dsinfer " + cmd + " > " + of + " 2> " + ef).c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  *out = slurp(of), *err = slurp(ef);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(QuantizeCli, WritesARunnableCheckpoint) {
  Dirs d;
  std::string out, err;
  ASSERT_EQ(run(d,
                "quantize -m " + d.root + "/tiny -o " + d.root +
                    "/q --scheme w4a16 --group 32 --targets all-linear",
                &out, &err),
            0)
      << err;
  EXPECT_NE(out.find("w4a16, targets all-linear"), std::string::npos) << out;
  EXPECT_NE(out.find("quantized"), std::string::npos) << out;
  EXPECT_NE(err.find("quantize: 100%"), std::string::npos) << err;  // a pipe: lines per 10%
  ASSERT_EQ(run(d, "eval -m " + d.root + "/q --tokens 1,2,3 --logits-out " + d.root + "/l.bin",
                &out, &err),
            0)
      << err;
  EXPECT_EQ(fs::file_size(d.root + "/l.bin") % 4, 0u);
  EXPECT_GT(fs::file_size(d.root + "/l.bin"), 0u);
  // Bad flags: one clear line, non-zero exit.
  EXPECT_NE(
      run(d, "quantize -m " + d.root + "/tiny -o " + d.root + "/r --scheme w3a16", &out, &err), 0);
  EXPECT_NE(err.find("w3a16"), std::string::npos) << err;
  EXPECT_NE(run(d, "quantize -m " + d.root + "/tiny -o " + d.root + "/q --group 32", &out, &err),
            0);
  EXPECT_NE(err.find("not empty"), std::string::npos) << err;
}

}  // namespace
}  // namespace dsinfer

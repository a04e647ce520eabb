// `dsinfer quantize` through the real binary: progress on a pipe, the summary, the checkpoint it
// writes running under `dsinfer eval`, and one-line errors for bad flags.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
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

// `bench accuracy --quick`: every scheme's prefill and decode rows with sane metrics, and the
// ordering the formats imply (8-bit weights and the INT8 cache are more faithful than 4-bit
// weights and the 3-mantissa-bit FP8 cache). `eval --kv-cache-dtype` runs the C8 cache.
TEST(QuantizeCli, BenchAccuracyRanksTheSchemes) {
  Dirs d;
  std::string out, err;
  ASSERT_EQ(run(d, "bench accuracy --quick -t 1 --json -", &out, &err), 0) << err;
  const nlohmann::json j = nlohmann::json::parse(out);
  std::map<std::string, double> rel;
  int rows = 0;
  for (const auto& r : j["results"]) {
    ++rows;
    const double agree = r["argmax_agree"], kl = r["mean_kl"], m = r["median_rel"];
    EXPECT_GE(agree, 0.0);
    EXPECT_LE(agree, 1.0);
    EXPECT_GE(kl, 0.0);
    EXPECT_TRUE(std::isfinite(m) && m > 0) << r.dump();  // quantization changes every scheme
    if (r["params"]["phase"] == "prefill")
      rel[r["params"]["scheme"].get<std::string>() + "/" +
          r["params"]["targets"].get<std::string>()] = m;
  }
  EXPECT_EQ(rows, 14);
  EXPECT_LT(rel["w8a16/all-linear"], rel["w4a16/mlp"]);
  EXPECT_LT(rel["c8-int8/kv-cache"], rel["c8-fp8/kv-cache"]);
  EXPECT_LT(rel["w4a16/experts"], rel["w4a16/mlp"]);  // fewer layers quantized
  for (const char* kv : {"fp8", "int8", "bf16"})
    EXPECT_EQ(run(d,
                  "eval -m " + d.root + "/tiny --tokens 1,2,3,4 --kv-cache-dtype " + kv +
                      " --logits-out " + d.root + "/c8.bin",
                  &out, &err),
              0)
        << err;
  EXPECT_NE(run(d, "eval -m " + d.root + "/tiny --tokens 1 --kv-cache-dtype fp4 --logits-out x",
                &out, &err),
            0);
  EXPECT_NE(err.find("fp4"), std::string::npos) << err;
}

}  // namespace
}  // namespace dsinfer

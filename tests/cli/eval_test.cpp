// `dsinfer eval` through the real binary: the logits file layout and agreement between chunkings,
// and one-line errors for bad token lists.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "model/config.h"
#include "synthetic/gen_model.h"

namespace dsinfer {
namespace {

namespace fs = std::filesystem;

struct Tiny {
  std::string root, dir;
  Tiny() {
    char tmpl[] = "/tmp/dsinfer-eval-XXXXXX";
    root = mkdtemp(tmpl);
    GenModelOptions o;
    o.preset = GenPreset::tiny;
    o.output_dir = root + "/tiny";
    o.seed = 5;
    generate_model(o);
    dir = o.output_dir;
  }
  ~Tiny() { fs::remove_all(root); }
};
const Tiny& tiny() {
  static Tiny t;
  return t;
}

int run(const std::string& args, std::string* err = nullptr) {
  const std::string errf = tiny().root + "/err.txt";
  const int rc = std::system(
      (std::string(DSINFER_BIN_DIR) + "/dsinfer eval -m " + tiny().dir + " " + args + " 2> " + errf)
          .c_str());
  if (err) {
    std::ifstream in(errf);
    *err = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::vector<float> read_floats(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes(std::istreambuf_iterator<char>(in), {});
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

TEST(EvalCli, WritesEveryPositionsLogitsAndChunkingsAgree) {
  const ModelConfig c = load_config(tiny().dir + "/config.json");
  std::string tokens;
  const int n = 2 * c.index_topk + 7;  // past index_topk: the sparse path
  for (int i = 0; i < n; ++i)
    tokens += (i ? "," : "") + std::to_string((i * 37 + 11) % c.vocab_size);
  { std::ofstream(tiny().root + "/tokens.txt") << tokens; }
  const std::string common = " --precision f32 --indexer-quant none --logits-out " + tiny().root;
  ASSERT_EQ(run("--tokens " + tokens + common + "/whole.bin"), 0);
  ASSERT_EQ(
      run("--tokens @" + tiny().root + "/tokens.txt --prefill-chunk 1" + common + "/decode.bin"),
      0);
  ASSERT_EQ(run("--tokens " + tokens + " --prefill-chunk 5" + common + "/chunk.bin"), 0);
  const auto whole = read_floats(tiny().root + "/whole.bin");
  ASSERT_EQ(whole.size(), size_t(n) * c.vocab_size);
  for (const char* other : {"/decode.bin", "/chunk.bin"}) {
    const auto v = read_floats(tiny().root + other);
    ASSERT_EQ(v.size(), whole.size());
    for (int p = 0; p < n; ++p) {
      double diff = 0, mag = 1e-30;
      for (int t = 0; t < c.vocab_size; ++t) {
        diff = std::max(diff,
                        double(std::fabs(v[p * c.vocab_size + t] - whole[p * c.vocab_size + t])));
        mag = std::max(mag, double(std::fabs(whole[p * c.vocab_size + t])));
      }
      ASSERT_LT(diff / mag, 1e-5) << other << " position " << p;
    }
  }
}

TEST(EvalCli, RejectsBadTokenLists) {
  std::string err;
  const std::string out = " --logits-out " + tiny().root + "/x.bin";
  EXPECT_NE(run("--tokens ''" + out, &err), 0);
  EXPECT_NE(err.find("empty"), std::string::npos) << err;
  EXPECT_NE(run("--tokens 1,2,99999999" + out, &err), 0);
  EXPECT_NE(err.find("outside the vocabulary"), std::string::npos) << err;
  EXPECT_NE(run("--tokens 1,x,3" + out, &err), 0);
  EXPECT_NE(err.find("not an integer"), std::string::npos) << err;
  EXPECT_NE(run("--tokens @/nonexistent/tokens" + out, &err), 0);
  EXPECT_NE(err.find("cannot read"), std::string::npos) << err;
  const ModelConfig c = load_config(tiny().dir + "/config.json");
  std::string many;
  for (int i = 0; i <= c.max_position_embeddings; ++i) many += "1,";
  { std::ofstream(tiny().root + "/many.txt") << many; }
  EXPECT_NE(run("--tokens @" + tiny().root + "/many.txt" + out, &err), 0);
  EXPECT_NE(err.find("max_position_embeddings"), std::string::npos) << err;
}

}  // namespace
}  // namespace dsinfer

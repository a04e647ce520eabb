// The byte counts the benchmarks judge decode steps by: the schema-based count (used to project
// the 671B) against the tensors of a real checkpoint, the release config's size, and the
// speculative suite's rows.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "../forward/synthetic_models.h"
#include "../model/model_test_util.h"
#include "bench_harness.h"
#include "bench_models.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "quant/quantize.h"

namespace dsinfer::bench {
namespace {

using testing::preset_dir;

TEST(BenchModels, SchemaBytesMatchTheCheckpointsTensors) {
  for (GenDtype dtype : {GenDtype::fp8, GenDtype::bf16}) {
    auto model = Model::load(preset_dir(GenPreset::tiny, dtype));
    const StepBytes b = schema_step_bytes(model->config(), dtype == GenDtype::fp8);
    // Routed experts are linears only: exact. The schema count also holds the norms and biases
    // (as BF16), which the count over a loaded model leaves out: 1-2% of tiny's bytes (hidden
    // size 64), under 0.1% at real shapes.
    EXPECT_DOUBLE_EQ(b.routed_expert, routed_expert_bytes(*model));
    EXPECT_GE(b.shared, shared_weight_bytes(*model));
    EXPECT_NEAR(b.shared, shared_weight_bytes(*model), 0.02 * shared_weight_bytes(*model));
    EXPECT_NEAR(b.step(model->config().num_experts_per_tok), decode_weight_bytes(*model),
                0.02 * decode_weight_bytes(*model));
    EXPECT_EQ(b.mtp_moe_layers, 1);
    // The draft reads the shared head again: at least the lm_head's bytes.
    EXPECT_GT(b.mtp_shared, double(model->weights().lm_head().w.nbytes()));
  }
}

TEST(BenchModels, ReleaseConfigIsThe685BModel) {
  const ModelConfig c = deepseek_v32_release_config();
  double params = 0;
  for (const ExpectedTensor& t : checkpoint_schema(c, 1)) {
    double n = 1;
    for (int64_t d : t.shape) n *= double(d);
    params += n;
  }
  // 671B in the main model, 14B in the MTP module, as the model card counts them (the V3.2
  // indexer adds under 1B).
  EXPECT_GT(params, 684e9);
  EXPECT_LT(params, 688e9);
  const StepBytes b = schema_step_bytes(c, true);
  EXPECT_EQ(b.moe_layers, 58);
  // One expert: 3 x 7168 x 2048 FP8 bytes plus its block scales.
  EXPECT_NEAR(b.routed_expert, 3 * 7168.0 * 2048, 3 * 56 * 16 * 4 + 1);
}

// Quantized checkpoints (dsinfer quantize's compressed-tensors config): the schema count from
// the config alone equals the loaded tensors' bytes, and the 671B's INT4 experts are a quarter
// of a byte per weight plus bf16 group scales.
TEST(BenchModels, SchemaBytesOfQuantizedCheckpoints) {
  testing::TempDir tmp;
  struct Case {
    QuantScheme scheme;
    QuantTargets targets;
    int group;
    bool keep_fp8;
  };
  for (const Case& k : {Case{QuantScheme::w4a16, QuantTargets::experts, 32, true},
                        Case{QuantScheme::w8a8, QuantTargets::all_linear, -1, false}}) {
    QuantizeOptions q;
    q.src = preset_dir(GenPreset::tiny, GenDtype::fp8);
    q.dst = tmp.path() + "/" + quant_scheme_name(k.scheme);
    q.scheme = k.scheme, q.targets = k.targets, q.group = k.group;
    q.keep_fp8 = k.keep_fp8;
    quantize_checkpoint(q);
    auto model = Model::load(q.dst);
    const StepBytes b = schema_step_bytes(model->config(), true);
    EXPECT_DOUBLE_EQ(b.routed_expert, routed_expert_bytes(*model)) << q.dst;
    EXPECT_NEAR(b.shared, shared_weight_bytes(*model), 0.02 * shared_weight_bytes(*model));
  }
  const ModelConfig w4 = deepseek_v32_release_config(
      compressed_tensors_config(QuantScheme::w4a16, 128, QuantTargets::experts, true));
  const StepBytes b4 = schema_step_bytes(w4, true),
                  b8 = schema_step_bytes(deepseek_v32_release_config(), true);
  // gate and up [2048, 7168] with 56 scales per row, down [7168, 2048] with 16.
  EXPECT_DOUBLE_EQ(b4.routed_expert, 3 * 7168.0 * 2048 / 2 + 2.0 * (2 * 2048 * 56 + 7168 * 16));
  // --targets experts --keep-fp8: everything but the routed experts as the release stores it.
  EXPECT_DOUBLE_EQ(b4.shared, b8.shared);
  // A decode step reads 38.6 GB in FP8 and 28.7 GB with INT4 routed experts.
  EXPECT_NEAR(b8.step(8), 38.6e9, 0.1e9);
  EXPECT_NEAR(b4.step(8), 28.7e9, 0.1e9);
}

TEST(BenchModels, ExpectedDistinctExperts) {
  EXPECT_NEAR(expected_distinct_experts(16, 4, 1), 4, 1e-12);
  EXPECT_NEAR(expected_distinct_experts(16, 4, 2), 7, 1e-12);
  EXPECT_NEAR(expected_distinct_experts(256, 8, 2), 15.75, 1e-12);
}

TEST(BenchModel, SpeculativeRows) {
  Options o;
  o.quick = true;
  o.threads = {1};
  o.model_dir = preset_dir(GenPreset::tiny, GenDtype::fp8);
  o.args = {"--speculative"};
  Report report;
  suites().at("model").second(o, report);
  const nlohmann::json j = report.to_json();
  ASSERT_EQ(j["results"].size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const nlohmann::json& r = j["results"][i];
    EXPECT_EQ(r["name"], "speculative");
    EXPECT_EQ(r["params"]["depth"], 1024);
    EXPECT_EQ(r["params"]["draft_tokens"], int(i) + 1);
    EXPECT_GT(r["verify_ratio"].get<double>(), 0);
    // K+1 tokens run at least the experts one token does, and no more than K+1 times as many.
    const double e1 = r["experts_decode"], ek = r["experts_verify"];
    EXPECT_NEAR(e1, 2, 1e-9);  // tiny: 2 experts per token
    EXPECT_GE(ek, e1);
    EXPECT_LE(ek, 2.0 * (i + 2));
    EXPECT_GE(r["bytes_ratio"].get<double>(), 1.0);
    EXPECT_GT(r["bytes_ratio_671b"].get<double>(), 1.0);
    // More drafts, more tokens per step at the same acceptance.
    EXPECT_GT(r["speedup_671b_a85"].get<double>(), r["speedup_671b_a50"].get<double>());
  }
}

TEST(BenchModel, DecodeDepthsOnlyDecodeAndSummarizeDsaVsDense) {
  Options o;
  o.quick = true;
  o.threads = {1};
  o.model_dir = preset_dir(GenPreset::tiny, GenDtype::fp8);
  o.args = {"--decode-depths", "40,70"};
  Report report;
  ::testing::internal::CaptureStdout();
  suites().at("model").second(o, report);
  const std::string out = ::testing::internal::GetCapturedStdout();
  const nlohmann::json j = report.to_json();
  ASSERT_EQ(j["results"].size(), 4u);  // no prefill rows
  for (const nlohmann::json& r : j["results"]) {
    EXPECT_EQ(r["name"], "model_decode");
    const int depth = r["params"]["depth"];
    EXPECT_TRUE(depth == 40 || depth == 70) << depth;
    for (const char* k : {"proj_ms", "indexer_prolog_ms", "indexer_topk_ms", "cache_ms", "attn_ms"})
      EXPECT_TRUE(r.contains(k)) << k;
  }
  EXPECT_NE(out.find("DSA vs dense"), std::string::npos) << out;
  EXPECT_NE(out.find("        40"), std::string::npos) << out;
  EXPECT_NE(out.find("        70"), std::string::npos) << out;
  for (const char* bad : {"40,x", "0", "", "40,"}) {
    o.args = {"--decode-depths", bad};
    Report r2;
    EXPECT_THROW(suites().at("model").second(o, r2), std::invalid_argument) << bad;
  }
}

}  // namespace
}  // namespace dsinfer::bench

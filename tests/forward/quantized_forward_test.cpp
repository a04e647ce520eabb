// INT4 / INT8 compressed-tensors checkpoints (written by dsinfer quantize from tiny FP8 and BF16
// checkpoints) through the whole model in f32, against the independent reference forward run on
// the same weights dequantized to f32 (reference_model.cpp decodes the packed words itself): the
// integer weight paths of every gemm (small-M and packed, [N, K] and the [K, N] W_UK view) on
// every ISA the machine has. W8A8 / W4A8 quantize activations as well: those are compared with
// loose bounds (the reference keeps f32 activations).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../model/model_test_util.h"
#include "../test_util.h"
#include "model/model.h"
#include "quant/quantize.h"
#include "reference_model.h"
#include "synthetic/gen_model.h"

namespace dsinfer {
namespace {

namespace fs = std::filesystem;

std::string quantized(GenDtype dtype, QuantScheme scheme, QuantTargets targets, int group,
                      bool asymmetric = false) {
  static testing::TempDir dirs;
  const std::string src = dirs.path() + (dtype == GenDtype::fp8 ? "/fp8" : "/bf16");
  if (!fs::exists(src)) {
    GenModelOptions o;
    o.preset = GenPreset::tiny, o.dtype = dtype, o.output_dir = src, o.seed = 11;
    generate_model(o);
  }
  const std::string dst = dirs.path() + "/" + std::to_string(int(dtype)) +
                          quant_scheme_name(scheme) + quant_targets_name(targets) +
                          std::to_string(group) + (asymmetric ? "asym" : "");
  if (!fs::exists(dst)) {
    QuantizeOptions q;
    q.src = src, q.dst = dst, q.scheme = scheme, q.targets = targets, q.group = group;
    q.asymmetric = asymmetric;
    quantize_checkpoint(q);
  }
  return dst;
}

std::vector<float> run_all(Model& model, const std::vector<int32_t>& tokens) {
  const int seq = model.create_sequence();
  BatchEntry e{seq, tokens, true};
  const ForwardOutput r = model.forward({e});
  model.free_sequence(seq);
  return std::vector<float>(r.logits.data<float>(), r.logits.data<float>() + r.logits.numel());
}

// The model in f32 with the plain (not FP8) indexer, as the reference computes.
std::unique_ptr<Model> load_f32(const std::string& dir, int64_t cache_tokens) {
  ModelOptions o;
  o.precision = Precision::f32;
  o.indexer_fp8 = false;
  o.kv_cache_tokens = cache_tokens;
  return Model::load(dir, o);
}

struct Case {
  GenDtype dtype;
  QuantScheme scheme;
  QuantTargets targets;
  int group;
  bool asymmetric = false;  // zero points
};

TEST(QuantizedForward, WeightOnlyMatchesTheReferenceOnEveryIsa) {
  const Case cases[] = {{GenDtype::fp8, QuantScheme::w4a16, QuantTargets::experts, -1},
                        {GenDtype::fp8, QuantScheme::w4a16, QuantTargets::all_linear, 32},
                        {GenDtype::bf16, QuantScheme::w8a16, QuantTargets::all_linear, 32},
                        {GenDtype::bf16, QuantScheme::w8a16, QuantTargets::mlp, -1},
                        {GenDtype::fp8, QuantScheme::w4a16, QuantTargets::all_linear, 32, true},
                        {GenDtype::bf16, QuantScheme::w8a16, QuantTargets::mlp, -1, true}};
  for (const Case& c : cases) {
    const std::string dir = quantized(c.dtype, c.scheme, c.targets, c.group, c.asymmetric);
    SCOPED_TRACE(dir);
    testing::for_each_isa([&](Isa) {
      auto model = load_f32(dir, 1024);
      const ModelConfig& cfg = model->config();
      std::mt19937 rng(3);
      std::vector<int32_t> tokens(size_t(2 * cfg.index_topk + 9));
      for (auto& t : tokens) t = int32_t(rng() % uint32_t(cfg.vocab_size));
      const auto got = run_all(*model, tokens);
      const auto want = testing::reference_forward(cfg, model->weights(), tokens, {false, false});
      int64_t bad = 0;
      const double worst = testing::worst_relative(got, want, cfg.vocab_size, &bad, 1e-4);
      EXPECT_EQ(bad, 0) << "worst relative error " << worst;
    });
  }
}

// W8A8 / W4A8: the activations are int8 per token, the reference's are f32: close, not equal.
TEST(QuantizedForward, Int8ActivationsStayClose) {
  for (QuantScheme s : {QuantScheme::w8a8, QuantScheme::w4a8}) {
    const std::string dir = quantized(GenDtype::bf16, s, QuantTargets::all_linear, 32);
    auto model = load_f32(dir, 256);
    const ModelConfig& cfg = model->config();
    const std::vector<int32_t> tokens = {5, 9, 2, 77, 31, 4, 8};
    const auto got = run_all(*model, tokens);
    const auto want = testing::reference_forward(cfg, model->weights(), tokens, {false, false});
    // Per position max |a - b| / max |b|; the median, as fp8_activations_test bounds it.
    std::vector<double> rel;
    for (size_t p = 0; p < tokens.size(); ++p) {
      const std::vector<float> a(got.begin() + p * cfg.vocab_size,
                                 got.begin() + (p + 1) * cfg.vocab_size);
      const std::vector<float> b(want.begin() + p * cfg.vocab_size,
                                 want.begin() + (p + 1) * cfg.vocab_size);
      rel.push_back(testing::worst_relative(a, b, cfg.vocab_size));
    }
    std::sort(rel.begin(), rel.end());
    const double median = rel[rel.size() / 2];
    std::printf("%s: median relative logit error vs f32 activations %.4f\n", quant_scheme_name(s),
                median);
    EXPECT_LT(median, 0.2) << quant_scheme_name(s);
    EXPECT_GT(median, 1e-7) << "activations were not quantized";
  }
}

}  // namespace
}  // namespace dsinfer

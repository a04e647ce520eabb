// INT4 / INT8 compressed-tensors checkpoints (written by dsinfer quantize from tiny FP8 and BF16
// checkpoints) through the whole model in f32, against the independent reference forward run on
// the same weights dequantized to f32 (reference_model.cpp decodes the packed words itself): the
// integer weight paths of every gemm (small-M and packed, [N, K] and the [K, N] W_UK view) on
// every ISA the machine has. W8A8 / W4A8 quantize activations as well: those are compared with
// loose bounds (the reference keeps f32 activations).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "../model/model_test_util.h"
#include "../test_util.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "model/safetensors_writer.h"
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
std::unique_ptr<Model> load_f32(const std::string& dir, int64_t cache_tokens,
                                AttentionForm form = AttentionForm::automatic) {
  ModelOptions o;
  o.attention_form = form;
  o.precision = Precision::f32;
  o.indexer_fp8 = false;
  o.kv_cache_tokens = cache_tokens;
  return Model::load(dir, o);
}

// The whole forward of a prompt of 2 x index_topk + 9 random tokens (seeded) against the
// reference on the same weights: no position's logits more than 1e-4 off (relative).
void expect_matches_reference(Model& model, uint32_t seed) {
  const ModelConfig& cfg = model.config();
  std::mt19937 rng(seed);
  std::vector<int32_t> tokens(size_t(2 * cfg.index_topk + 9));
  for (auto& t : tokens) t = int32_t(rng() % uint32_t(cfg.vocab_size));
  const auto got = run_all(model, tokens);
  const auto want = testing::reference_forward(cfg, model.weights(), tokens, {false, false});
  int64_t bad = 0;
  const double worst = testing::worst_relative(got, want, cfg.vocab_size, &bad, 1e-4);
  EXPECT_EQ(bad, 0) << "worst relative error " << worst;
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
    testing::for_each_isa([&](Isa) { expect_matches_reference(*load_f32(dir, 1024), 3); });
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

// ---- group activation ordering (actorder "group", weight_g_idx) -------------------------------

// A stored integer weight's codes as signed values [out, in] (pack-quantized I32 words of 32 /
// bits fields, lowest bits first, offset 2^(bits - 1); or int-quantized I8).
std::vector<int> stored_codes(const Tensor& t, int64_t out, int64_t in) {
  std::vector<int> v(static_cast<size_t>(out * in));
  if (t.dtype() == DType::i8) {
    for (int64_t i = 0; i < out * in; ++i) v[size_t(i)] = t.data<int8_t>()[i];
    return v;
  }
  const int bits = int(32 * t.size(1) / in), per = 32 / bits;
  for (int64_t r = 0; r < out; ++r)
    for (int64_t c = 0; c < in; ++c) {
      const uint32_t word = uint32_t(t.data<int32_t>()[r * t.size(1) + c / per]);
      v[size_t(r * in + c)] =
          int((word >> (bits * (c % per))) & ((1u << bits) - 1)) - (1 << (bits - 1));
    }
  return v;
}

// `src` (a symmetric group-quantized checkpoint of dsinfer quantize) stored the way GPTQ's group
// activation ordering stores one: every group split in two (each scale stored twice, so tiny's
// 32-wide latent has two groups), then per integer weight a random permutation P of its inputs,
// stored column P[j] holding the codes of column j and weight_g_idx[P[j]] = j / group (every
// group's columns scattered over the row); actorder "group" in the config.
std::string with_group_actorder(const std::string& src) {
  const std::string dst = src + "-actorder";
  if (fs::exists(dst)) return dst;
  fs::create_directories(dst);
  for (const auto& f : fs::directory_iterator(src)) {
    const std::string n = f.path().filename().string();
    if (n.find(".safetensors") == std::string::npos && n != "config.json")
      fs::copy_file(f.path(), dst + "/" + n);
  }
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(src + "/config.json"));
  for (auto& [key, group] : cfg["quantization_config"]["config_groups"].items()) {
    group["weights"]["actorder"] = "group";
    group["weights"]["group_size"] = group["weights"]["group_size"].get<int>() / 2;
  }
  std::ofstream(dst + "/config.json") << cfg.dump(2);
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(src);
  std::vector<NamedTensor> tensors;
  std::mt19937 rng(21);
  for (const std::string& name : ck.names()) {
    const Tensor t = ck.get(name);
    const bool packed = name.ends_with(".weight_packed");
    if (!packed && !(t.dtype() == DType::i8 && name.ends_with(".weight"))) {
      const std::string weight = name.substr(0, name.size() - 6);  // of a "*.weight_scale"
      if (name.ends_with(".weight_scale") &&
          (ck.has(weight + "_packed") || (ck.has(weight) && ck.info(weight)->dtype == DType::i8))) {
        Tensor split = Tensor::empty(t.dtype(), {t.size(0), 2 * t.size(1)});
        const size_t es = dtype_size(t.dtype());
        for (int64_t i = 0; i < t.numel(); ++i)
          for (int h = 0; h < 2; ++h)
            std::memcpy(static_cast<char*>(split.raw()) + (2 * i + h) * es,
                        static_cast<const char*>(t.raw()) + i * es, es);
        tensors.push_back({name, split});
        continue;
      }
      tensors.push_back({name, t});
      continue;
    }
    const std::string base = packed ? name.substr(0, name.size() - 7) : name;
    const Tensor scale = ck.get(base + "_scale");
    int64_t in = t.size(1);
    if (packed) {  // weight_shape [2]: I32 or I64
      const Tensor shape = ck.get(base + "_shape");
      in = shape.dtype() == DType::i32 ? shape.data<int32_t>()[1] : shape.data<int64_t>()[1];
    }
    const int64_t out = scale.size(0);
    const int64_t group = in / scale.size(1) / 2;
    std::vector<int32_t> P(static_cast<size_t>(in));
    std::iota(P.begin(), P.end(), 0);
    std::shuffle(P.begin(), P.end(), rng);
    const std::vector<int> codes = stored_codes(t, out, in);
    Tensor shuffled = Tensor::empty(t.dtype(), t.shape());
    Tensor gidx = Tensor::empty(DType::i32, {in});
    for (int64_t j = 0; j < in; ++j) gidx.data<int32_t>()[P[size_t(j)]] = int32_t(j / group);
    if (t.dtype() == DType::i8) {
      for (int64_t r = 0; r < out; ++r)
        for (int64_t j = 0; j < in; ++j)
          shuffled.data<int8_t>()[r * in + P[size_t(j)]] = int8_t(codes[size_t(r * in + j)]);
    } else {
      const int bits = int(32 * t.size(1) / in), per = 32 / bits;
      uint32_t* words = reinterpret_cast<uint32_t*>(shuffled.data<int32_t>());
      std::fill(words, words + t.numel(), 0u);
      for (int64_t r = 0; r < out; ++r)
        for (int64_t j = 0; j < in; ++j) {
          const int64_t k = P[size_t(j)];
          const uint32_t field = uint32_t(codes[size_t(r * in + j)] + (1 << (bits - 1)));
          words[r * t.size(1) + k / per] |= field << (bits * (k % per));
        }
    }
    tensors.push_back({name, shuffled});
    tensors.push_back({base + "_g_idx", gidx});
  }
  write_safetensors(dst + "/model.safetensors", tensors);
  return dst;
}

// What the model multiplies by (the loader's sorted codes through perm) is the stored matrix,
// value for value, decoded here straight from the file: codes times the scale of g_idx's group.
void expect_stored_matrix(const SafetensorsCheckpoint& ck, const std::string& name,
                          const LinearWeight& lw) {
  ASSERT_TRUE(lw.perm.defined()) << name;
  const bool packed = ck.has(name + "_packed");
  const int64_t out = lw.out, in = lw.in;
  const std::vector<int> codes = stored_codes(ck.get(packed ? name + "_packed" : name), out, in);
  const Tensor scale = ck.get(name + "_scale"), gidx = ck.get(name + "_g_idx");
  const std::vector<float> got = testing::dequantize_linear(lw);
  for (int64_t r = 0; r < out; ++r)
    for (int64_t k = 0; k < in; ++k) {
      const int64_t at = r * scale.size(1) + gidx.data<int32_t>()[k];
      const float s = scale.dtype() == DType::bf16 ? bf16_to_f32(scale.data<bf16>()[at])
                                                   : scale.data<float>()[at];
      ASSERT_EQ(got[size_t(r * in + k)], float(codes[size_t(r * in + k)]) * s)
          << name << " [" << r << ", " << k << "]";
    }
}

// The loader sorts an actorder checkpoint's columns by group (one resident copy, perm[j] = the
// input of column j): what the model multiplies by is the stored matrix, value for value, decoded
// here straight from the file (codes times the scale of g_idx's group); then the whole forward in
// f32 against the reference on every ISA (weight-only), and W4A8 close to it.
TEST(QuantizedForward, GroupActivationOrderingMatchesTheStoredMatrix) {
  struct ActCase {
    GenDtype dtype;
    QuantScheme scheme;
    QuantTargets targets;
  };
  for (const ActCase& c : {ActCase{GenDtype::fp8, QuantScheme::w4a16, QuantTargets::all_linear},
                           ActCase{GenDtype::bf16, QuantScheme::w8a16, QuantTargets::mlp}}) {
    const std::string dir = with_group_actorder(quantized(c.dtype, c.scheme, c.targets, 32));
    SCOPED_TRACE(dir);
    auto model = load_f32(dir, 1024);
    const ModelConfig& cfg = model->config();
    const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir);
    const MlpWeights& expert = model->weights().layer(cfg.first_k_dense_replace).moe->experts[1];
    std::vector<std::pair<std::string, const LinearWeight*>> layers = {
        {fmt::format("model.layers.{}.mlp.experts.1.up_proj.weight", cfg.first_k_dense_replace),
         &expert.up_proj}};
    if (c.targets == QuantTargets::all_linear)
      layers.push_back(
          {"model.layers.0.self_attn.kv_b_proj.weight", &model->weights().layer(0).attn.kv_b_proj});
    for (const auto& [name, lw] : layers) expect_stored_matrix(ck, name, *lw);
    // Both attention forms: the absorbed one scatters W_UK's latent columns and gathers the
    // attention's latent output, the MHA one gathers the context's latent rows.
    testing::for_each_isa([&](Isa) {
      for (AttentionForm form : {AttentionForm::absorbed, AttentionForm::mha}) {
        SCOPED_TRACE("form " + std::to_string(int(form)));
        expect_matches_reference(*load_f32(dir, 1024, form), 4);
      }
    });
  }
  // Int8 activations: W4A8 (pack-quantized) and W8A8 with groups (int-quantized I8 codes).
  for (QuantScheme scheme : {QuantScheme::w4a8, QuantScheme::w8a8}) {
    const std::string a8 =
        with_group_actorder(quantized(GenDtype::bf16, scheme, QuantTargets::all_linear, 32));
    SCOPED_TRACE(a8);
    auto model = load_f32(a8, 256);
    expect_stored_matrix(SafetensorsCheckpoint::open(a8), "model.layers.0.self_attn.o_proj.weight",
                         model->weights().layer(0).attn.o_proj);
    const std::vector<int32_t> tokens = {5, 9, 2, 77, 31, 4, 8};
    const auto got = run_all(*model, tokens);
    const auto want =
        testing::reference_forward(model->config(), model->weights(), tokens, {false, false});
    EXPECT_LT(testing::worst_relative(got, want, model->config().vocab_size), 0.5);
  }
}

// Bad weight_g_idx: a group with the wrong number of inputs, a value out of range, a missing
// tensor -- each a clear error naming the tensor.
TEST(QuantizedForward, BadGroupIndexIsAClearError) {
  const std::string good =
      with_group_actorder(quantized(GenDtype::bf16, QuantScheme::w8a16, QuantTargets::mlp, 32));
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(good);
  std::string victim;
  for (const std::string& n : ck.names())
    if (n.ends_with("_g_idx")) victim = n;
  ASSERT_FALSE(victim.empty());
  struct Bad {
    const char* what;
    std::function<void(Tensor&)> edit;
    const char* message;
  };
  const Bad bads[] = {
      {"moved", [](Tensor& g) { g.data<int32_t>()[0] = (g.data<int32_t>()[0] + 1) % 2; },
       "inputs, expected group_size 16"},
      {"range", [](Tensor& g) { g.data<int32_t>()[3] = 1000; }, "is not a group of"},
      {"missing", nullptr, "missing tensor"}};
  for (const Bad& b : bads) {
    SCOPED_TRACE(b.what);
    testing::TempDir tmp;
    for (const auto& f : fs::directory_iterator(good))
      if (f.path().filename() != "model.safetensors")
        fs::copy_file(f.path(), tmp.path() + "/" + f.path().filename().string());
    std::vector<NamedTensor> tensors;
    for (const std::string& n : ck.names()) {
      if (n == victim && !b.edit) continue;
      Tensor t = ck.get(n);
      if (n == victim) {
        Tensor c = Tensor::empty(t.dtype(), t.shape());
        std::memcpy(c.raw(), t.raw(), t.nbytes());
        b.edit(c);
        t = c;
      }
      tensors.push_back({n, t});
    }
    write_safetensors(tmp.path() + "/model.safetensors", tensors);
    try {
      load_f32(tmp.path(), 64);
      ADD_FAILURE() << "loaded";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(b.message), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(victim), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace dsinfer

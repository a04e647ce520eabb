// `dsinfer gen-model`: the generated tiny model loads back, matches the schema, and is seeded,
// deterministic and scaled as documented in docs/gen-model.md.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/thread_pool.h"
#include "genmodel_test_util.h"
#include "model/safetensors.h"

namespace dsinfer::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct Variant {
  GenDtype dtype;
  GenArch arch;
};

class GenModelVariants : public ::testing::TestWithParam<Variant> {};

TEST_P(GenModelVariants, LoadsBackAndMatchesTheSchema) {
  const Variant v = GetParam();
  TempDir dir;
  GenModelResult r = gen_tiny(dir.path(), v.dtype, v.arch);

  ModelConfig c = load_config(dir.file("config.json"));
  const bool v32 = v.arch == GenArch::v32;
  EXPECT_EQ(c.architecture, v32 ? "DeepseekV32ForCausalLM" : "DeepseekV3ForCausalLM");
  EXPECT_EQ(c.has_indexer, v32);
  EXPECT_EQ(c.quantization.has_value(), v.dtype == GenDtype::fp8);
  EXPECT_EQ(c.quantization && c.quantization->scale_fmt_ue8m0, v.dtype == GenDtype::fp8);
  EXPECT_EQ(c.num_nextn_predict_layers, 1);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_hidden_layers, 3);
  EXPECT_EQ(c.first_k_dense_replace, 1);
  EXPECT_EQ(c.qk_rope_head_dim % 2, 0);
  EXPECT_EQ(c.index_topk, v32 ? 16 : 0);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_position_embeddings, 4096);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_EQ(c.rope_scaling->factor, 40);
  EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 256);
  bool dense = false, moe = false;
  for (int l = 0; l < c.num_hidden_layers; ++l) (c.is_moe_layer(l) ? moe : dense) = true;
  EXPECT_TRUE(dense && moe);
  EXPECT_EQ(r.config.vocab_size, c.vocab_size);

  SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir.path());
  EXPECT_GT(ckpt.files().size(), 1u) << "the tiny preset's default shard size gives >1 shard";
  EXPECT_EQ(ckpt.files().size(), r.shards.size());
  CheckpointReport report = check_checkpoint(c, ckpt);
  EXPECT_TRUE(report.ok()) << (report.errors.empty() ? "" : report.errors.front());
  EXPECT_EQ(report.warning_count, 0u) << (report.warnings.empty() ? "" : report.warnings.front());
  EXPECT_EQ(report.mtp_modules, 1);
  EXPECT_EQ(ckpt.size(), r.num_tensors);
  EXPECT_EQ(ckpt.total_bytes(), r.tensor_bytes);

  // Every schema tensor is present, the optional MTP embedding included.
  for (const ExpectedTensor& t : checkpoint_schema(c, 1)) EXPECT_TRUE(ckpt.has(t.name)) << t.name;
  // FP8 for the linear weights the released checkpoints quantize, BF16 for the rest.
  for (const ExpectedTensor& t : checkpoint_schema(c, 1)) {
    const TensorInfo* info = ckpt.info(t.name);
    ASSERT_NE(info, nullptr) << t.name;
    bool kept_bf16 = t.name == "lm_head.weight" || ends_with(t.name, "shared_head.head.weight") ||
                     ends_with(t.name, "eh_proj.weight") ||
                     ends_with(t.name, "weights_proj.weight");
    DType want = DType::bf16;
    if (t.kind == WeightKind::linear && v.dtype == GenDtype::fp8 && !kept_bf16)
      want = DType::fp8_e4m3;
    if (ends_with(t.name, "e_score_correction_bias") || ends_with(t.name, "k_norm.weight") ||
        ends_with(t.name, "k_norm.bias"))
      want = DType::f32;
    EXPECT_EQ(info->dtype, want) << t.name;
    EXPECT_EQ(ckpt.has(scale_inv_name(t.name)), want == DType::fp8_e4m3) << t.name;
  }

  json index = read_json(dir.file("model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<size_t>(), r.tensor_bytes);
  EXPECT_EQ(index["weight_map"].size(), r.num_tensors);

  CheckpointWeights w = CheckpointWeights::load(c, ckpt);
  EXPECT_EQ(w.num_layers(), 3);
  ASSERT_EQ(w.mtp().size(), 1u);
  EXPECT_EQ(w.layer(0).attn.indexer.has_value(), v32);
  EXPECT_TRUE(w.layer(0).mlp.has_value());
  EXPECT_TRUE(w.layer(1).moe.has_value());

  // Every written file exists and the byte count adds up.
  size_t bytes = 0;
  for (const std::string& f : r.files) bytes += fs::file_size(dir.file(f));
  EXPECT_EQ(bytes, r.file_bytes);
  for (const char* f : {"config.json", "generation_config.json", "tokenizer.json",
                        "tokenizer_config.json", "model.safetensors.index.json"})
    EXPECT_TRUE(fs::exists(dir.file(f))) << f;
  json generation = read_json(dir.file("generation_config.json"));
  EXPECT_EQ(generation["bos_token_id"], 0);
  EXPECT_EQ(generation["eos_token_id"], 1);
}

INSTANTIATE_TEST_SUITE_P(DtypeArch, GenModelVariants,
                         ::testing::Values(Variant{GenDtype::fp8, GenArch::v32},
                                           Variant{GenDtype::bf16, GenArch::v32},
                                           Variant{GenDtype::fp8, GenArch::v3},
                                           Variant{GenDtype::bf16, GenArch::v3}),
                         [](const auto& info) {
                           return std::string(info.param.dtype == GenDtype::fp8 ? "fp8" : "bf16") +
                                  (info.param.arch == GenArch::v32 ? "_v32" : "_v3");
                         });

TEST(GenModel, SameSeedSameBytesAtAnyThreadCount) {
  const int threads = num_threads();
  TempDir a, b, c;
  set_num_threads(1);
  gen_tiny(a.path(), GenDtype::fp8, GenArch::v32, 7);
  set_num_threads(3);
  GenModelResult rb = gen_tiny(b.path(), GenDtype::fp8, GenArch::v32, 7);
  set_num_threads(threads);
  gen_tiny(c.path(), GenDtype::fp8, GenArch::v32, 8);

  std::set<std::string> names_a, names_b;
  for (const auto& e : fs::directory_iterator(a.path())) names_a.insert(e.path().filename());
  for (const auto& e : fs::directory_iterator(b.path())) names_b.insert(e.path().filename());
  EXPECT_EQ(names_a, names_b);
  EXPECT_EQ(names_a, std::set<std::string>(rb.files.begin(), rb.files.end()));
  for (const std::string& f : names_a)
    EXPECT_EQ(read_bytes(a.file(f)), read_bytes(b.file(f))) << f << " differs for the same seed";

  // Another seed: other weights, the same config and tokenizer.
  for (const std::string& f : rb.shards)
    EXPECT_NE(read_bytes(a.file(f)), read_bytes(c.file(f))) << f;
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"})
    EXPECT_EQ(read_bytes(a.file(f)), read_bytes(c.file(f))) << f;
  SafetensorsCheckpoint ca = SafetensorsCheckpoint::open(a.path());
  SafetensorsCheckpoint cc = SafetensorsCheckpoint::open(c.path());
  for (const std::string& name : ca.names()) {
    Tensor ta = ca.get(name), tc = cc.get(name);
    bool constant = ends_with(name, "norm.weight") || ends_with(name, "k_norm.bias");
    bool same = std::memcmp(ta.raw(), tc.raw(), ta.nbytes()) == 0;
    if (ends_with(name, "_scale_inv")) continue;  // may coincide: powers of two
    EXPECT_EQ(same, constant) << name;
  }
}

TEST(GenModel, MtpSharesTheMainModelsEmbeddingAndHead) {
  TempDir dir;
  gen_tiny(dir.path());
  SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir.path());
  for (auto [mtp, main] :
       {std::pair{"model.layers.3.embed_tokens.weight", "model.embed_tokens.weight"},
        std::pair{"model.layers.3.shared_head.head.weight", "lm_head.weight"}}) {
    Tensor a = ckpt.get(mtp), b = ckpt.get(main);
    ASSERT_EQ(a.shape(), b.shape());
    ASSERT_EQ(a.dtype(), b.dtype());
    EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << mtp << " vs " << main;
  }
  // Other tensors of the same shape are not copies of each other.
  Tensor l1 = ckpt.get("model.layers.1.self_attn.o_proj.weight");
  Tensor l2 = ckpt.get("model.layers.2.self_attn.o_proj.weight");
  EXPECT_NE(std::memcmp(l1.raw(), l2.raw(), l1.nbytes()), 0);
}

TEST(GenModel, Fp8ScalesArePowersOfTwoAndBlocksUseTheFp8Range) {
  TempDir dir;
  gen_tiny(dir.path(), GenDtype::fp8);
  SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir.path());
  int fp8_weights = 0;
  for (const std::string& name : ckpt.names()) {
    if (ckpt.info(name)->dtype != DType::fp8_e4m3) continue;
    ++fp8_weights;
    Tensor w = ckpt.get(name), s = ckpt.get(scale_inv_name(name));
    ASSERT_EQ(s.shape(), scale_inv_shape(w.shape())) << name;
    for (int64_t i = 0; i < s.numel(); ++i) {
      int exp = 0;
      float m = std::frexp(s.data<float>()[i], &exp);
      EXPECT_EQ(m, 0.5f) << name << " scale " << s.data<float>()[i] << " is not a power of two";
    }
    // With scale = 2^ceil(log2(amax / 448)), each block's largest |w / scale| is in (224, 448].
    std::vector<float> amax(size_t(s.numel()), 0.0f);
    const int64_t cols = w.size(1);
    for (int64_t i = 0; i < w.numel(); ++i) {
      float x = fp8_e4m3_to_f32(w.data<fp8_e4m3>()[i]);
      ASSERT_TRUE(std::isfinite(x)) << name;
      size_t blk = size_t((i / cols) / kFp8BlockSize * s.size(1) + (i % cols) / kFp8BlockSize);
      amax[blk] = std::max(amax[blk], std::fabs(x));
    }
    for (float a : amax) {
      EXPECT_GT(a, 224.0f) << name;
      EXPECT_LE(a, 448.0f) << name;
    }
  }
  EXPECT_GT(fp8_weights, 100);
}

// Expected standard deviations (docs/gen-model.md): linear ~ 1/sqrt(in), o_proj and down_proj
// further by 1/sqrt(2 * layers), embeddings 1, router 1/sqrt(hidden), correction bias 0.02.
double expected_std(const ModelConfig& c, const std::string& name, int64_t in_features) {
  if (ends_with(name, "embed_tokens.weight")) return 1.0;
  if (ends_with(name, "e_score_correction_bias")) return 0.02;
  double s = 1.0 / std::sqrt(double(in_features));
  if (ends_with(name, "o_proj.weight") || ends_with(name, "down_proj.weight"))
    s /= std::sqrt(2.0 * c.num_hidden_layers);
  return s;
}

class GenModelDtypes : public ::testing::TestWithParam<GenDtype> {};

TEST_P(GenModelDtypes, WeightsHaveTheIntendedVariance) {
  TempDir dir;
  gen_tiny(dir.path(), GetParam());
  ModelConfig c = load_config(dir.file("config.json"));
  SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir.path());
  double pooled_ratio = 0;  // sum over elements of (w / expected std)^2
  int64_t pooled_n = 0;
  int checked = 0;
  for (const ExpectedTensor& t : checkpoint_schema(c, 1)) {
    const std::string& n = t.name;
    std::vector<float> v;
    if (t.kind == WeightKind::linear) {
      LinearWeight lw;
      lw.w = ckpt.get(n);
      if (lw.is_fp8()) lw.scale_inv = ckpt.get(scale_inv_name(n));
      v = to_f32(lw);
    } else {
      v = to_f32(ckpt.get(n));
    }
    if (ends_with(n, "norm.weight")) {  // RMSNorm and the indexer's LayerNorm: ones
      for (float x : v) ASSERT_EQ(x, 1.0f) << n;
      continue;
    }
    if (ends_with(n, "k_norm.bias")) {
      for (float x : v) ASSERT_EQ(x, 0.0f) << n;
      continue;
    }
    const double want = expected_std(c, n, t.shape.back());
    Moments m = moments(v);
    const double n_el = double(v.size());
    // Uniform weights: var(sample variance) = (9/5 - 1) sigma^4 / n; 6 sigma of slack, plus 2%
    // for FP8 / BF16 rounding.
    const double tol = 6 * std::sqrt(0.8 / n_el) + 0.02;
    EXPECT_NEAR(m.var / (want * want), 1.0, tol) << n;
    EXPECT_NEAR(m.mean / want, 0.0, 6 / std::sqrt(n_el) + 0.01) << n;
    for (float x : v) pooled_ratio += double(x) * x / (want * want);
    pooled_n += int64_t(v.size());
    ++checked;
  }
  EXPECT_GT(checked, 100);
  EXPECT_NEAR(pooled_ratio / double(pooled_n), 1.0, 0.01);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GenModelDtypes, ::testing::Values(GenDtype::fp8, GenDtype::bf16),
                         [](const auto& info) {
                           return std::string(info.param == GenDtype::fp8 ? "fp8" : "bf16");
                         });

TEST(GenModel, RefusesANonEmptyDirectoryUnlessForced) {
  TempDir dir;
  const std::string out = dir.file("model");
  fs::create_directories(out);
  write_bytes(out + "/notes.txt", "keep me");
  expect_error([&] { gen_tiny(out); }, {out, "not empty", "--force"});
  EXPECT_EQ(std::distance(fs::directory_iterator(out), fs::directory_iterator()), 1);

  // --force replaces the model's own files (stale shards too) and leaves others alone.
  write_bytes(out + "/model-00007-of-00009.safetensors", "stale");
  GenModelOptions o;
  o.output_dir = out;
  o.force = true;
  GenModelResult r = generate_model(o);
  EXPECT_EQ(read_bytes(out + "/notes.txt"), "keep me");
  EXPECT_FALSE(fs::exists(out + "/model-00007-of-00009.safetensors"));
  EXPECT_TRUE(check_checkpoint(r.config, SafetensorsCheckpoint::open(out)).ok());

  // Regenerating over a model needs --force too.
  expect_error([&] { gen_tiny(out); }, {"not empty"});
}

TEST(GenModel, CreatesMissingDirectoriesAndRejectsAFile) {
  TempDir dir;
  GenModelResult r = gen_tiny(dir.file("a/b/c"));
  EXPECT_TRUE(fs::exists(dir.file("a/b/c/config.json")));
  EXPECT_FALSE(r.shards.empty());
  write_bytes(dir.file("plain"), "x");
  expect_error([&] { gen_tiny(dir.file("plain")); }, {"plain", "not a directory"});
}

TEST(GenModel, ShardSizeOption) {
  TempDir dir;
  GenModelOptions o;
  o.output_dir = dir.file("one");
  o.shard_mb = 64;
  GenModelResult one = generate_model(o);
  EXPECT_EQ(one.shards, std::vector<std::string>{"model-00001-of-00001.safetensors"});
  o.output_dir = dir.file("many");
  o.shard_mb = 0.05;
  GenModelResult many = generate_model(o);
  EXPECT_GT(many.shards.size(), 5u);
  EXPECT_TRUE(check_checkpoint(many.config, SafetensorsCheckpoint::open(dir.file("many"))).ok());
  o.shard_mb = -1;
  EXPECT_THROW(generate_model(o), std::invalid_argument);
}

TEST(GenModel, ParsesOptionNames) {
  EXPECT_EQ(parse_gen_preset("tiny"), GenPreset::tiny);
  EXPECT_EQ(parse_gen_preset("mini"), GenPreset::mini);
  EXPECT_EQ(parse_gen_dtype("bf16"), GenDtype::bf16);
  EXPECT_EQ(parse_gen_arch("v3"), GenArch::v3);
  EXPECT_THROW(parse_gen_preset("huge"), std::invalid_argument);
  EXPECT_THROW(parse_gen_dtype("fp16"), std::invalid_argument);
  EXPECT_THROW(parse_gen_arch("v4"), std::invalid_argument);
  GenModelOptions o;  // no output directory
  EXPECT_THROW(generate_model(o), std::invalid_argument);
}

TEST(GenModel, MiniPresetConfigHasTheRealAttentionShapes) {
  // Only the config: generating mini takes seconds and ~0.6 GB (docs/gen-model.md).
  ModelConfig c = parse_config(gen_model_config_json(GenPreset::mini, GenArch::v32, GenDtype::fp8),
                               "mini/config.json");
  EXPECT_EQ(c.num_attention_heads, 128);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.qk_rope_head_dim, 64);
  EXPECT_EQ(c.qk_nope_head_dim, 128);
  EXPECT_EQ(c.v_head_dim, 128);
  EXPECT_EQ(c.index_n_heads, 64);
  EXPECT_EQ(c.index_head_dim, 128);
  EXPECT_EQ(c.index_topk, 2048);
  EXPECT_EQ(c.max_position_embeddings, 163840);
  EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 4096);
  EXPECT_NEAR(c.softmax_scale(), std::pow(0.1 * std::log(40.0) + 1, 2) / std::sqrt(192.0), 1e-12);
  // Under ~2 GB in FP8, even with every tensor counted at 2 bytes (BF16).
  int64_t bytes = 0;
  for (const ExpectedTensor& t : checkpoint_schema(c, 1)) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    bytes += 2 * n;
  }
  EXPECT_LT(bytes, int64_t(2) << 30);
}

}  // namespace
}  // namespace dsinfer::testing

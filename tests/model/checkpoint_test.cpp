#include "model/checkpoint.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include "model/safetensors_writer.h"
#include "model_test_util.h"

namespace dsinfer {
namespace {

using testing::drop;
using testing::expect_error;
using testing::filled_tensor;
using testing::put;
using testing::schema_tensors;
using testing::TempDir;
using testing::tiny_config;
using testing::tiny_config_json;

std::map<std::string, ExpectedTensor> by_name(const std::vector<ExpectedTensor>& schema) {
  std::map<std::string, ExpectedTensor> m;
  for (const ExpectedTensor& t : schema) EXPECT_TRUE(m.emplace(t.name, t).second) << t.name;
  return m;
}

std::string layer(int l, const std::string& rest) {
  return "model.layers." + std::to_string(l) + "." + rest;
}

TEST(CheckpointSchema, TinyConfigTensorsAndShapes) {
  ModelConfig c = tiny_config();
  // Per layer: 2 norms, 7 attention tensors, 5 indexer tensors; dense MLP 3; MoE: router 2,
  // 4 experts x 3, shared expert 3. Globals: embed, norm, lm_head. MTP: a MoE layer plus
  // embed_tokens (optional), enorm, hnorm, eh_proj, shared_head.norm, shared_head.head.
  const size_t dense = 2 + 7 + 5 + 3, moe = 2 + 7 + 5 + 2 + 12 + 3;
  EXPECT_EQ(checkpoint_schema(c, 0).size(), dense + moe + 3);
  auto schema = by_name(checkpoint_schema(c, 1));
  EXPECT_EQ(schema.size(), dense + moe + 3 + moe + 6);

  struct Expect {
    std::string name;
    std::vector<int64_t> shape;
    WeightKind kind;
  };
  const WeightKind L = WeightKind::linear, P = WeightKind::param;
  for (const Expect& e : std::vector<Expect>{
           {"model.embed_tokens.weight", {300, 160}, P},
           {"model.norm.weight", {160}, P},
           {"lm_head.weight", {300, 160}, L},
           {layer(0, "input_layernorm.weight"), {160}, P},
           {layer(0, "self_attn.q_a_proj.weight"), {48, 160}, L},
           {layer(0, "self_attn.q_a_layernorm.weight"), {48}, P},
           {layer(0, "self_attn.q_b_proj.weight"), {2 * (16 + 8), 48}, L},
           {layer(0, "self_attn.kv_a_proj_with_mqa.weight"), {32 + 8, 160}, L},
           {layer(0, "self_attn.kv_a_layernorm.weight"), {32}, P},
           {layer(0, "self_attn.kv_b_proj.weight"), {2 * (16 + 16), 32}, L},
           {layer(0, "self_attn.o_proj.weight"), {160, 2 * 16}, L},
           {layer(0, "self_attn.indexer.wq_b.weight"), {2 * 128, 48}, L},
           {layer(0, "self_attn.indexer.wk.weight"), {128, 160}, L},
           {layer(0, "self_attn.indexer.weights_proj.weight"), {2, 160}, L},
           {layer(0, "self_attn.indexer.k_norm.weight"), {128}, P},
           {layer(0, "self_attn.indexer.k_norm.bias"), {128}, P},
           {layer(0, "mlp.gate_proj.weight"), {96, 160}, L},
           {layer(0, "mlp.down_proj.weight"), {160, 96}, L},
           {layer(1, "mlp.gate.weight"), {4, 160}, P},
           {layer(1, "mlp.gate.e_score_correction_bias"), {4}, P},
           {layer(1, "mlp.experts.3.up_proj.weight"), {48, 160}, L},
           {layer(1, "mlp.experts.3.down_proj.weight"), {160, 48}, L},
           {layer(1, "mlp.shared_experts.gate_proj.weight"), {48, 160}, L},
           {layer(2, "eh_proj.weight"), {160, 320}, L},
           {layer(2, "enorm.weight"), {160}, P},
           {layer(2, "shared_head.head.weight"), {300, 160}, L},
           {layer(2, "mlp.experts.0.gate_proj.weight"), {48, 160}, L},
           {layer(2, "self_attn.indexer.wk.weight"), {128, 160}, L},
       }) {
    SCOPED_TRACE(e.name);
    ASSERT_TRUE(schema.count(e.name));
    EXPECT_EQ(schema[e.name].shape, e.shape);
    EXPECT_EQ(schema[e.name].kind, e.kind);
    EXPECT_FALSE(schema[e.name].optional);
  }
  EXPECT_TRUE(schema[layer(2, "embed_tokens.weight")].optional);
  EXPECT_FALSE(schema.count(layer(0, "mlp.gate.weight")));
  EXPECT_FALSE(schema.count(layer(1, "mlp.gate_proj.weight")));
  EXPECT_FALSE(schema.count(layer(1, "mlp.experts.4.up_proj.weight")));
}

// The released model's layout: 3 dense layers, 58 MoE layers of 256 experts, one MTP module.
TEST(CheckpointSchema, ReleasedModelTensorCounts) {
  ModelConfig c = parse_config(testing::released_config(), "config.json");
  const size_t attention = 2 + 7 + 5, dense = attention + 3, moe = attention + 2 + 256 * 3 + 3;
  EXPECT_EQ(checkpoint_schema(c, 0).size(), 3 * dense + 58 * moe + 3);
  std::vector<ExpectedTensor> schema = checkpoint_schema(c, 1);
  EXPECT_EQ(schema.size(), 3 * dense + 58 * moe + 3 + moe + 6);
  size_t linear = 0;
  for (const ExpectedTensor& t : schema) linear += t.kind == WeightKind::linear;
  // Each FP8 linear weight comes with a scale_inv in the released checkpoint.
  EXPECT_EQ(linear, 3 * (5 + 3 + 3) + 58 * (5 + 3 + 768 + 3) + 1 + (5 + 3 + 768 + 3) + 2);
  auto m = by_name(schema);
  EXPECT_EQ(m[layer(61, "self_attn.kv_b_proj.weight")].shape, (std::vector<int64_t>{32768, 512}));
  EXPECT_EQ(m[layer(5, "self_attn.indexer.wq_b.weight")].shape, (std::vector<int64_t>{8192, 1536}));
  EXPECT_EQ(m[layer(60, "mlp.experts.255.down_proj.weight")].shape,
            (std::vector<int64_t>{7168, 2048}));
}

TEST(CheckpointSchema, V3WithoutIndexerOrQLora) {
  auto j = tiny_config_json();
  j["architectures"] = {"DeepseekV3ForCausalLM"};
  j["q_lora_rank"] = nullptr;
  j["n_shared_experts"] = nullptr;
  j["tie_word_embeddings"] = true;
  ModelConfig c = parse_config(j, "v3/config.json");
  auto schema = by_name(checkpoint_schema(c, 0));
  for (const auto& [name, t] : schema) EXPECT_EQ(name.find("indexer"), std::string::npos) << name;
  EXPECT_EQ(schema[layer(0, "self_attn.q_proj.weight")].shape, (std::vector<int64_t>{48, 160}));
  EXPECT_FALSE(schema.count(layer(0, "self_attn.q_a_proj.weight")));
  EXPECT_FALSE(schema.count(layer(1, "mlp.shared_experts.up_proj.weight")));
  EXPECT_TRUE(schema["lm_head.weight"].optional);
}

TEST(CheckpointSchema, ScaleInvNameAndShape) {
  EXPECT_EQ(scale_inv_name("a.weight"), "a.weight_scale_inv");
  EXPECT_EQ(scale_inv_shape({7168, 2048}), (std::vector<int64_t>{56, 16}));
  EXPECT_EQ(scale_inv_shape({129, 128}), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(scale_inv_shape({1, 1}), (std::vector<int64_t>{1, 1}));
}

// Writes `tensors` as a sharded checkpoint and opens it.
SafetensorsCheckpoint write_and_open(const TempDir& dir, const std::vector<NamedTensor>& tensors) {
  write_sharded_checkpoint(dir.path(), tensors, 64 << 10);
  return SafetensorsCheckpoint::open(dir.path());
}

TEST(CheckpointWeights, LoadsAValidBf16Checkpoint) {
  TempDir dir;
  ModelConfig c = tiny_config();
  SafetensorsCheckpoint ckpt = write_and_open(dir, schema_tensors(c, 1, /*fp8=*/false));
  ASSERT_GT(ckpt.files().size(), 1u);
  CheckpointReport report = check_checkpoint(c, ckpt);
  EXPECT_TRUE(report.ok()) << (report.errors.empty() ? "" : report.errors[0]);
  EXPECT_TRUE(report.warnings.empty());
  EXPECT_EQ(report.mtp_modules, 1);

  CheckpointWeights w = CheckpointWeights::load(c, ckpt);
  ASSERT_EQ(w.num_layers(), 2);
  EXPECT_TRUE(w.layer(0).mlp.has_value());
  EXPECT_FALSE(w.layer(0).moe.has_value());
  ASSERT_TRUE(w.layer(1).moe.has_value());
  EXPECT_EQ(w.layer(1).moe->experts.size(), 4u);
  EXPECT_EQ(w.layer(1).moe->experts[3].down_proj.w.shape(), (std::vector<int64_t>{160, 48}));
  EXPECT_EQ(w.layer(1).moe->experts[3].down_proj.w.raw(),
            ckpt.get(layer(1, "mlp.experts.3.down_proj.weight")).raw());  // zero copy
  EXPECT_FALSE(w.layer(1).moe->experts[3].down_proj.is_fp8());
  EXPECT_FALSE(w.layer(1).moe->experts[3].down_proj.scale_inv.defined());
  EXPECT_TRUE(w.layer(1).moe->shared_experts.has_value());
  ASSERT_TRUE(w.layer(0).attn.indexer.has_value());
  EXPECT_EQ(w.layer(0).attn.indexer->k_norm_bias.shape(), (std::vector<int64_t>{128}));
  EXPECT_EQ(w.layer(0).attn.q_b_proj.out_features(), 48);
  EXPECT_EQ(w.layer(0).attn.q_b_proj.in_features(), 48);
  EXPECT_EQ(w.lm_head().w.shape(), (std::vector<int64_t>{300, 160}));
  ASSERT_EQ(w.mtp().size(), 1u);
  EXPECT_EQ(w.mtp()[0].eh_proj.in_features(), 320);
  EXPECT_EQ(w.mtp()[0].embed_tokens.raw(), w.embed_tokens().raw());  // no own copy stored
  EXPECT_TRUE(w.mtp()[0].layer.moe.has_value());
  EXPECT_EQ(w.resident_bytes(), ckpt.total_bytes());  // every stored tensor is used once
  EXPECT_THROW(w.layer(2), std::out_of_range);
}

TEST(CheckpointWeights, LoadsAValidFp8Checkpoint) {
  TempDir dir;
  ModelConfig c = tiny_config();
  std::vector<NamedTensor> tensors = schema_tensors(c, 0, /*fp8=*/true);
  put(tensors, layer(2, "embed_tokens.weight"), filled_tensor(DType::bf16, {300, 160}, 1));
  SafetensorsCheckpoint ckpt = write_and_open(dir, tensors);
  // The MTP module's own embedding alone makes the module "present", and the rest is missing.
  EXPECT_FALSE(check_checkpoint(c, ckpt).ok());
  drop(tensors, layer(2, "embed_tokens.weight"));
  TempDir dir2;
  ckpt = write_and_open(dir2, tensors);

  CheckpointWeights w = CheckpointWeights::load(c, ckpt);
  EXPECT_TRUE(w.mtp().empty());
  const LinearWeight& q_b = w.layer(0).attn.q_b_proj;
  EXPECT_TRUE(q_b.is_fp8());
  EXPECT_EQ(q_b.scale_inv.dtype(), DType::f32);
  EXPECT_EQ(q_b.scale_inv.shape(), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(w.layer(1).moe->experts[0].down_proj.scale_inv.shape(), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(w.layer(1).moe->gate.dtype(), DType::bf16);  // the router is never FP8
  EXPECT_EQ(w.resident_bytes(), ckpt.total_bytes());
}

TEST(CheckpointWeights, Fp8NanCodesAreRejectedNamingTensorAndElement) {
  ModelConfig c = tiny_config();
  std::vector<NamedTensor> tensors = schema_tensors(c, 0, /*fp8=*/true);
  {
    TempDir dir;
    CheckpointWeights w = CheckpointWeights::load(c, write_and_open(dir, tensors));
    EXPECT_NO_THROW(w.check_fp8_codes());
  }
  // A NaN code (either sign) in a routed expert's weight, at row 1, column 5.
  for (uint8_t code : {uint8_t(0x7f), uint8_t(0xff)}) {
    const std::string name = layer(1, "mlp.experts.1.up_proj.weight");
    std::vector<NamedTensor> bad = tensors;
    for (NamedTensor& n : bad)
      if (n.name == name) {
        Tensor t = Tensor::empty(n.tensor.dtype(), n.tensor.shape());
        std::memcpy(t.raw(), n.tensor.raw(), n.tensor.nbytes());
        static_cast<uint8_t*>(t.raw())[1 * t.size(1) + 5] = code;
        n.tensor = t;
      }
    TempDir dir;
    CheckpointWeights w = CheckpointWeights::load(c, write_and_open(dir, bad));
    expect_error([&] { w.check_fp8_codes(); },
                 {name, "NaN", fmt::format("0x{:02x}", code), "[1, 5]", ".safetensors"});
    // A rank that does not keep that expert never reads it.
    w.keep_experts(0, 1);
    EXPECT_NO_THROW(w.check_fp8_codes());
  }
  EXPECT_EQ(find_fp8_nan(nullptr, 0), -1);
  std::vector<uint8_t> codes(10000, 0x7e);
  EXPECT_EQ(find_fp8_nan(codes.data(), int64_t(codes.size())), -1);
  codes[9999] = 0xff;
  codes[4100] = 0x7f;
  EXPECT_EQ(find_fp8_nan(codes.data(), int64_t(codes.size())), 4100);
}

TEST(CheckpointWeights, TiedEmbeddingsWithoutLmHead) {
  TempDir dir;
  auto j = tiny_config_json();
  j["tie_word_embeddings"] = true;
  ModelConfig c = parse_config(j, "tied/config.json");
  std::vector<NamedTensor> tensors = schema_tensors(c, 1, false);
  ASSERT_TRUE(std::none_of(tensors.begin(), tensors.end(),
                           [](const NamedTensor& t) { return t.name == "lm_head.weight"; }));
  SafetensorsCheckpoint ckpt = write_and_open(dir, tensors);
  CheckpointWeights w = CheckpointWeights::load(c, ckpt);
  EXPECT_EQ(w.lm_head().w.raw(), w.embed_tokens().raw());
  EXPECT_EQ(w.resident_bytes(), ckpt.total_bytes());  // the embedding is counted once

  // Untied, the same checkpoint lacks lm_head.
  expect_error([&] { CheckpointWeights::load(tiny_config(), ckpt); },
               {dir.path(), "'lm_head.weight'", "missing"});
}

TEST(CheckpointValidation, ReportsEveryProblemNamingTensorAndFile) {
  TempDir dir;
  ModelConfig c = tiny_config();
  std::vector<NamedTensor> tensors = schema_tensors(c, 1, /*fp8=*/true);
  const std::string missing = layer(1, "mlp.experts.2.up_proj.weight");
  const std::string wrong_shape = layer(0, "self_attn.kv_b_proj.weight");
  const std::string int_norm = layer(0, "input_layernorm.weight");
  const std::string fp8_norm = layer(1, "post_attention_layernorm.weight");
  const std::string nan_scaled = layer(1, "self_attn.o_proj.weight");
  const std::string unscaled = layer(0, "mlp.up_proj.weight");
  const std::string bad_scale_shape = layer(2, "eh_proj.weight");
  const std::string zero_scaled = "lm_head.weight";
  drop(tensors, missing);
  drop(tensors, scale_inv_name(missing));
  put(tensors, wrong_shape, filled_tensor(DType::fp8_e4m3, {64, 33}, 1));
  put(tensors, int_norm, testing::patterned_tensor(DType::i32, {160}, 1));
  put(tensors, fp8_norm, filled_tensor(DType::fp8_e4m3, {160}, 1));
  Tensor nan_scale = filled_tensor(DType::f32, {2, 1}, 1);
  nan_scale.data<float>()[1] = std::numeric_limits<float>::quiet_NaN();
  put(tensors, scale_inv_name(nan_scaled), nan_scale);
  drop(tensors, scale_inv_name(unscaled));
  put(tensors, scale_inv_name(bad_scale_shape), filled_tensor(DType::f32, {2, 2}, 1));
  put(tensors, scale_inv_name(zero_scaled), filled_tensor(DType::f32, {3, 2}, 0));
  put(tensors, "model.rotary_emb.inv_freq", filled_tensor(DType::f32, {4}, 1));
  SafetensorsCheckpoint ckpt = write_and_open(dir, tensors);

  CheckpointReport report = check_checkpoint(c, ckpt);
  EXPECT_EQ(report.error_count, 8u);
  ASSERT_EQ(report.errors.size(), 8u);
  auto error_about = [&](const std::string& name) -> std::string {
    for (const std::string& e : report.errors)
      if (e.find("'" + name + "'") != std::string::npos) return e;
    ADD_FAILURE() << "no error names " << name;
    return "";
  };
  auto file_of = [&](const std::string& name) { return ckpt.info(name)->file; };
  EXPECT_NE(error_about(missing).find(dir.path()), std::string::npos);
  EXPECT_NE(error_about(missing).find("missing"), std::string::npos);
  EXPECT_NE(error_about(wrong_shape).find("[64, 33], expected [64, 32]"), std::string::npos);
  EXPECT_NE(error_about(wrong_shape).find(file_of(wrong_shape)), std::string::npos);
  EXPECT_NE(error_about(int_norm).find("I32"), std::string::npos);
  EXPECT_NE(error_about(int_norm).find(file_of(int_norm)), std::string::npos);
  EXPECT_NE(error_about(fp8_norm).find("F8_E4M3 is not allowed"), std::string::npos);
  EXPECT_NE(error_about(scale_inv_name(nan_scaled)).find("nan at [1, 0]"), std::string::npos);
  EXPECT_NE(error_about(scale_inv_name(nan_scaled)).find(file_of(scale_inv_name(nan_scaled))),
            std::string::npos);
  EXPECT_NE(error_about(unscaled).find("missing"), std::string::npos);
  EXPECT_NE(error_about(unscaled).find(file_of(unscaled)), std::string::npos);
  EXPECT_NE(error_about(scale_inv_name(bad_scale_shape)).find("expected [2, 3]"),
            std::string::npos);
  EXPECT_NE(error_about(scale_inv_name(zero_scaled)).find("not a finite positive"),
            std::string::npos);
  ASSERT_EQ(report.warning_count, 1u);
  EXPECT_NE(report.warnings[0].find("'model.rotary_emb.inv_freq'"), std::string::npos);

  // The exception carries all of them.
  expect_error([&] { validate_checkpoint(c, ckpt); },
               {"8 problems", missing, wrong_shape, int_norm, fp8_norm, nan_scaled, unscaled,
                bad_scale_shape, zero_scaled});

  CheckpointReport capped = check_checkpoint(c, ckpt, 3);
  EXPECT_EQ(capped.error_count, 8u);
  EXPECT_EQ(capped.errors.size(), 3u);
}

TEST(CheckpointValidation, ScaleInvMustBeF32AndIgnoredForNonFp8Weights) {
  TempDir dir;
  ModelConfig c = tiny_config();
  std::vector<NamedTensor> tensors = schema_tensors(c, 1, /*fp8=*/true);
  const std::string bf16_scaled = layer(0, "mlp.gate_proj.weight");
  const std::string w = layer(0, "self_attn.o_proj.weight");
  put(tensors, scale_inv_name(w), filled_tensor(DType::bf16, {2, 1}, 1));
  put(tensors, bf16_scaled, filled_tensor(DType::bf16, {96, 160}, 1));
  SafetensorsCheckpoint ckpt = write_and_open(dir, tensors);
  CheckpointReport report = check_checkpoint(c, ckpt);
  ASSERT_EQ(report.error_count, 1u);
  EXPECT_NE(report.errors[0].find("'" + scale_inv_name(w) + "': dtype BF16, expected F32"),
            std::string::npos);
  ASSERT_EQ(report.warning_count, 1u);
  EXPECT_NE(report.warnings[0].find(scale_inv_name(bf16_scaled)), std::string::npos);
}

TEST(CheckpointValidation, WrongConfigForTheCheckpoint) {
  TempDir dir;
  ModelConfig c = tiny_config();
  SafetensorsCheckpoint ckpt = write_and_open(dir, schema_tensors(c, 1, false));
  auto j = tiny_config_json();
  j["n_routed_experts"] = 8;
  j["n_group"] = 4;
  expect_error([&] { validate_checkpoint(parse_config(j, "x"), ckpt); },
               {"'model.layers.1.mlp.gate.weight'", "shape [4, 160], expected [8, 160]",
                "'model.layers.1.mlp.experts.7.up_proj.weight'"});
  // V3 config on a V3.2 checkpoint: the indexer tensors are ignored, with warnings.
  j = tiny_config_json();
  j["architectures"] = {"DeepseekV3ForCausalLM"};
  CheckpointReport report = check_checkpoint(parse_config(j, "x"), ckpt);
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.warning_count, 3u * 5u);  // 2 layers + MTP, 5 indexer tensors each
}

}  // namespace
}  // namespace dsinfer

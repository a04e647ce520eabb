#include "model/config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "model_test_util.h"

namespace dsinfer {
namespace {

using nlohmann::json;
using testing::expect_error;

using testing::released_config;

ModelConfig parse(const json& j) {
  return parse_config(j, "some/config.json");
}

TEST(ModelConfig, ParsesTheReleasedConfig) {
  ModelConfig c = parse(released_config());
  EXPECT_TRUE(c.has_indexer);
  EXPECT_EQ(c.vocab_size, 129280);
  EXPECT_EQ(c.hidden_size, 7168);
  EXPECT_EQ(c.num_hidden_layers, 61);
  EXPECT_EQ(c.first_k_dense_replace, 3);
  EXPECT_EQ(c.intermediate_size, 18432);
  EXPECT_EQ(c.moe_intermediate_size, 2048);
  EXPECT_EQ(c.n_routed_experts, 256);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_EQ(c.topk_group, 4);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.num_attention_heads, 128);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.qk_nope_head_dim, 128);
  EXPECT_EQ(c.qk_rope_head_dim, 64);
  EXPECT_EQ(c.v_head_dim, 128);
  EXPECT_EQ(c.index_n_heads, 64);
  EXPECT_EQ(c.index_head_dim, 128);
  EXPECT_EQ(c.index_topk, 2048);
  EXPECT_FALSE(c.indexer_rope_interleave);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 40);
  EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c.rope_scaling->beta_fast, 32);
  EXPECT_DOUBLE_EQ(c.rope_scaling->beta_slow, 1);
  EXPECT_DOUBLE_EQ(c.rope_scaling->mscale_all_dim, 1.0);
  EXPECT_EQ(c.max_position_embeddings, 163840);
  EXPECT_EQ(c.num_nextn_predict_layers, 1);
  ASSERT_TRUE(c.quantization.has_value());
  EXPECT_TRUE(c.quantization->scale_fmt_ue8m0);
  EXPECT_EQ(c.quantization->weight_block_out, 128);
  EXPECT_EQ(c.bos_token_id, 0);
  EXPECT_TRUE(c.is_eos(1));
  EXPECT_FALSE(c.is_eos(0));
  EXPECT_FALSE(c.tie_word_embeddings);
}

TEST(ModelConfig, SoftmaxScaleCarriesTheYarnMscale) {
  ModelConfig c = parse(released_config());
  double m = std::sqrt(c.softmax_scale() * std::sqrt(192.0));
  EXPECT_NEAR(m, 1.3689, 1e-4);  // the spec's value for factor 40
  EXPECT_NEAR(m, 0.1 * std::log(40.0) + 1, 1e-12);

  json j = released_config();
  j.erase("rope_scaling");
  EXPECT_DOUBLE_EQ(parse(j).softmax_scale(), 1 / std::sqrt(192.0));
}

// YaRN frequencies computed straight from the spec's formula, with its 671B numbers written out.
TEST(ModelConfig, YarnInvFreqMatchesTheSpecFormula) {
  std::vector<float> f = parse(released_config()).rope_inv_freq();
  ASSERT_EQ(f.size(), 32u);
  const double pi = std::acos(-1.0), theta = 10000;
  double low = std::floor(64 * std::log(4096 / (32 * 2 * pi)) / (2 * std::log(theta)));
  double high = std::ceil(64 * std::log(4096 / (1 * 2 * pi)) / (2 * std::log(theta)));
  low = std::max(low, 0.0);
  high = std::min(high, 63.0);
  ASSERT_EQ(low, 10);  // the ramp for these numbers, computed by hand
  ASSERT_EQ(high, 23);
  for (int i = 0; i < 32; ++i) {
    double base = std::pow(theta, -2.0 * i / 64);
    double ramp = std::min(1.0, std::max(0.0, (i - low) / (high - low)));
    double expect = base / 40 * ramp + base * (1 - ramp);
    EXPECT_NEAR(f[i], expect, 1e-6 * expect) << "i=" << i;
    if (i <= 10) {
      EXPECT_FLOAT_EQ(f[i], float(base)) << "high frequencies stay unscaled, i=" << i;
    }
    if (i >= 23) {
      EXPECT_FLOAT_EQ(f[i], float(base / 40)) << "low frequencies are divided, i=" << i;
    }
  }
}

TEST(ModelConfig, PlainRopeWithoutScaling) {
  json j = released_config();
  j["rope_scaling"] = nullptr;
  std::vector<float> f = parse(j).rope_inv_freq();
  ASSERT_EQ(f.size(), 32u);
  for (int i = 0; i < 32; ++i) EXPECT_FLOAT_EQ(f[i], float(std::pow(10000.0, -i / 32.0)));
}

TEST(ModelConfig, MoeLayersStartAtFirstKDenseReplaceAndIncludeMtp) {
  ModelConfig c = parse(released_config());
  for (int l = 0; l < 3; ++l) EXPECT_FALSE(c.is_moe_layer(l)) << l;
  for (int l = 3; l <= 61; ++l) EXPECT_TRUE(c.is_moe_layer(l)) << l;
}

TEST(ModelConfig, V3HasNoIndexerAndNeedsNoIndexerFields) {
  json j = released_config();
  j["architectures"] = {"DeepseekV3ForCausalLM"};
  for (const char* k : {"index_n_heads", "index_head_dim", "index_topk"}) j.erase(k);
  j["q_lora_rank"] = nullptr;  // some V3-family configs have no q LoRA
  ModelConfig c = parse(j);
  EXPECT_FALSE(c.has_indexer);
  EXPECT_EQ(c.index_head_dim, 0);
  EXPECT_EQ(c.q_lora_rank, 0);
  EXPECT_FALSE(c.has_q_lora());
}

TEST(ModelConfig, OptionalFieldsGetTheirDefaults) {
  json j = released_config();
  for (const char* k :
       {"n_group", "topk_group", "routed_scaling_factor", "scoring_func", "topk_method",
        "norm_topk_prob", "rms_norm_eps", "rope_theta", "rope_scaling", "max_position_embeddings",
        "num_nextn_predict_layers", "quantization_config", "bos_token_id", "eos_token_id",
        "tie_word_embeddings", "moe_layer_freq", "hidden_act"})
    j.erase(k);
  ModelConfig c = parse(j);
  EXPECT_EQ(c.n_group, 1);
  EXPECT_EQ(c.topk_group, 1);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 1.0);
  EXPECT_EQ(c.scoring_func, "sigmoid");
  EXPECT_EQ(c.topk_method, "noaux_tc");
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000);
  EXPECT_FALSE(c.rope_scaling.has_value());
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_EQ(c.num_nextn_predict_layers, 0);
  EXPECT_FALSE(c.quantization.has_value());
  EXPECT_EQ(c.bos_token_id, 0);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{1});
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.indexer_rope_interleave);
}

TEST(ModelConfig, ReadsIndexerRopeInterleaveAndEosList) {
  json j = released_config();
  j["indexer_rope_interleave"] = true;
  j["eos_token_id"] = {1, 7};
  ModelConfig c = parse(j);
  EXPECT_TRUE(c.indexer_rope_interleave);
  EXPECT_TRUE(c.is_eos(7));
  EXPECT_TRUE(c.is_eos(1));
}

TEST(ModelConfig, MissingRequiredFieldIsNamed) {
  for (const char* field :
       {"architectures", "vocab_size", "hidden_size", "num_hidden_layers", "first_k_dense_replace",
        "intermediate_size", "moe_intermediate_size", "n_routed_experts", "num_experts_per_tok",
        "n_shared_experts", "num_attention_heads", "q_lora_rank", "kv_lora_rank",
        "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "index_n_heads", "index_head_dim",
        "index_topk"}) {
    SCOPED_TRACE(field);
    json j = released_config();
    j.erase(field);
    expect_error([&] { parse(j); },
                 {"some/config.json", std::string("'") + field + "'", "missing"});
  }
  json j = released_config();
  j["rope_scaling"].erase("factor");
  expect_error([&] { parse(j); }, {"some/config.json", "'rope_scaling.factor'"});
  j = released_config();
  j["quantization_config"].erase("quant_method");
  expect_error([&] { parse(j); }, {"'quantization_config.quant_method'"});
}

TEST(ModelConfig, IllTypedFieldIsNamed) {
  struct Case {
    const char* field;
    json value;
  };
  for (const Case& c :
       {Case{"hidden_size", "7168"}, Case{"hidden_size", 7168.5}, Case{"hidden_size", true},
        Case{"vocab_size", -5}, Case{"num_hidden_layers", 0}, Case{"norm_topk_prob", "yes"},
        Case{"rms_norm_eps", "small"}, Case{"kv_lora_rank", nullptr},
        Case{"architectures", "DeepseekV32ForCausalLM"}, Case{"eos_token_id", 129280},
        Case{"rope_scaling", 40}, Case{"quantization_config", json::array()},
        Case{"n_routed_experts", 18446744073709551615ull}}) {
    SCOPED_TRACE(c.field);
    json j = released_config();
    j[c.field] = c.value;
    expect_error([&] { parse(j); }, {"some/config.json", std::string("'") + c.field + "'"});
  }
  json j = released_config();
  j["rope_scaling"]["factor"] = "forty";
  expect_error([&] { parse(j); }, {"'rope_scaling.factor'", "number"});
  j = released_config();
  j["quantization_config"]["weight_block_size"] = {128, "128"};
  expect_error([&] { parse(j); }, {"'quantization_config.weight_block_size[1]'"});
}

TEST(ModelConfig, UnsupportedValuesAreNamed) {
  struct Case {
    const char* field;
    json value;
    const char* named;  // the field the error must name
  };
  for (const Case& c : {
           Case{"architectures", {"LlamaForCausalLM"}, "architectures"},
           Case{"n_group", 3, "n_routed_experts"},  // 256 % 3 != 0
           Case{"topk_group", 9, "topk_group"},     // more than n_group
           Case{"qk_rope_head_dim", 63, "qk_rope_head_dim"},
           Case{"index_head_dim", 64, "index_head_dim"},
           Case{"q_lora_rank", nullptr, "q_lora_rank"},              // the indexer needs the q LoRA
           Case{"num_experts_per_tok", 200, "num_experts_per_tok"},  // > 4 groups * 32
           Case{"n_group", 256, "n_group"},  // one expert per group: no top-2 score
           Case{"scoring_func", "softmax", "scoring_func"},
           Case{"topk_method", "greedy", "topk_method"},
           Case{"hidden_act", "gelu", "hidden_act"},
           Case{"first_k_dense_replace", 62, "first_k_dense_replace"},
       }) {
    SCOPED_TRACE(c.field);
    json j = released_config();
    j[c.field] = c.value;
    if (std::string(c.field) == "n_group" && c.value == 256) j["topk_group"] = 4;
    expect_error([&] { parse(j); }, {"some/config.json", std::string("'") + c.named + "'"});
  }
  json j = released_config();
  j["rope_scaling"]["type"] = "linear";
  expect_error([&] { parse(j); }, {"'rope_scaling.type'", "linear"});
  j = released_config();
  j["quantization_config"]["weight_block_size"] = {64, 64};
  expect_error([&] { parse(j); }, {"'quantization_config.weight_block_size'"});
  j = released_config();
  j["quantization_config"]["scale_fmt"] = "fp32";
  expect_error([&] { parse(j); }, {"'quantization_config.scale_fmt'"});
}

TEST(ModelConfig, LoadConfigNamesTheFile) {
  testing::TempDir dir;
  std::string path = dir.file("config.json");
  expect_error([&] { load_config(path); }, {path});  // missing
  testing::write_bytes(path, "{\"architectures\": [");
  expect_error([&] { load_config(path); }, {path, "invalid JSON"});
  testing::write_bytes(path, released_config().dump());
  EXPECT_EQ(load_config(path).hidden_size, 7168);
  json j = released_config();
  j.erase("hidden_size");
  testing::write_bytes(path, j.dump());
  expect_error([&] { load_config(path); }, {path, "'hidden_size'"});
}

}  // namespace
}  // namespace dsinfer

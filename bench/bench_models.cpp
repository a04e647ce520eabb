#include "bench_models.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <string_view>

#include "bench_harness.h"
#include "model/checkpoint.h"
#include "synthetic/gen_model.h"

namespace dsinfer::bench {

namespace {

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

size_t linear_bytes(const LinearWeight& w) {
  return w.bytes();
}
size_t mlp_bytes(const MlpWeights& m) {
  return linear_bytes(m.gate_proj) + linear_bytes(m.up_proj) + linear_bytes(m.down_proj);
}

}  // namespace

std::vector<int32_t> random_tokens(int64_t n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(rng() % uint32_t(vocab));
  return t;
}

StepRun time_prefill(Model& m, int64_t T, uint32_t seed) {
  const std::vector<int32_t> toks = random_tokens(T, m.config().vocab_size, seed);
  const int seq = m.create_sequence();
  const OpTimes before = m.op_times();
  const double t0 = now_s();
  for (int64_t s = 0; s < T; s += 2048)
    m.forward({BatchEntry{seq, {toks.begin() + s, toks.begin() + std::min(T, s + 2048)}, false}});
  StepRun r{now_s() - t0, m.op_times().since(before)};
  m.free_sequence(seq);
  return r;
}

StepRun time_decode(Model& m, int64_t depth, int steps) {
  const int seq = m.create_sequence();
  m.fill_cache_synthetic(seq, depth, 1);
  std::vector<StepRun> runs;
  for (int i = 0; i <= steps; ++i) {
    const OpTimes before = m.op_times();
    BatchEntry e{seq, {int32_t((i + 1) % m.config().vocab_size)}, false};
    e.prompt_len = depth;  // a generated token: the absorbed form, as decoding runs it
    const double t0 = now_s();
    m.forward({e});
    // The first step warms up.
    if (i > 0) runs.push_back(StepRun{now_s() - t0, m.op_times().since(before)});
  }
  m.free_sequence(seq);
  std::sort(runs.begin(), runs.end(),
            [](const StepRun& a, const StepRun& b) { return a.total_s < b.total_s; });
  return runs[runs.size() / 2];
}

std::string default_model_dir() {
  const char* env = std::getenv("DSINFER_MODELS");
  const std::string dir = std::string(env && *env ? env : "models") + "/mini-v32-fp8";
  if (!exists(dir + "/config.json")) {
    std::fprintf(stderr, "bench: generating the mini model into %s (once)\n", dir.c_str());
    GenModelOptions o;
    o.preset = GenPreset::mini;
    o.output_dir = dir;
    o.force = true;
    generate_model(o);
  }
  return dir;
}

double shared_weight_bytes(const Model& m) {
  const ModelConfig& c = m.config();
  const CheckpointWeights& w = m.weights();
  double bytes = double(linear_bytes(w.lm_head())) + double(w.norm().nbytes());
  bytes += double(w.embed_tokens().nbytes()) / c.vocab_size;
  for (int l = 0; l < w.num_layers(); ++l) {
    const LayerWeights& L = w.layer(l);
    const AttentionWeights& a = L.attn;
    bytes += linear_bytes(a.q_a_proj) + linear_bytes(a.q_b_proj) +
             linear_bytes(a.kv_a_proj_with_mqa) + linear_bytes(a.kv_b_proj) +
             linear_bytes(a.o_proj);
    if (a.indexer)
      bytes += linear_bytes(a.indexer->wq_b) + linear_bytes(a.indexer->wk) +
               linear_bytes(a.indexer->weights_proj);
    if (L.mlp) bytes += mlp_bytes(*L.mlp);
    if (L.moe) {
      bytes += L.moe->gate.nbytes();
      if (L.moe->shared_experts) bytes += mlp_bytes(*L.moe->shared_experts);
    }
  }
  return bytes;
}

int moe_layers(const Model& m) {
  int n = 0;
  for (int l = 0; l < m.weights().num_layers(); ++l) n += m.weights().layer(l).moe.has_value();
  return n;
}

double routed_expert_bytes(const Model& m) {
  for (int l = 0; l < m.weights().num_layers(); ++l)
    if (m.weights().layer(l).moe) return double(mlp_bytes(m.weights().layer(l).moe->experts[0]));
  return 0;
}

double decode_weight_bytes(const Model& m) {
  return shared_weight_bytes(m) +
         routed_expert_bytes(m) * m.config().num_experts_per_tok * moe_layers(m);
}

StepBytes schema_step_bytes(const ModelConfig& c, bool fp8) {
  StepBytes b;
  const int mtp = c.num_nextn_predict_layers > 0 ? 1 : 0;
  for (int l = 0; l < c.num_hidden_layers + mtp; ++l)
    if (c.is_moe_layer(l)) ++(l < c.num_hidden_layers ? b.moe_layers : b.mtp_moe_layers);
  const std::string mtp_prefix = "model.layers." + std::to_string(c.num_hidden_layers) + ".";
  double head = 0;
  bool mtp_has_head = false;
  std::string first_experts;
  auto elements = [](const std::vector<int64_t>& shape) {
    double e = 1;
    for (int64_t d : shape) e *= double(d);
    return e;
  };
  for (const ExpectedTensor& t : checkpoint_schema(c, mtp)) {
    double bytes = 2 * elements(t.shape);  // BF16
    const double fp8_bytes = elements(t.shape) + 4 * elements(scale_inv_shape(t.shape));
    if (t.kind == WeightKind::linear && c.compressed) {
      const std::string module = t.name.substr(0, t.name.size() - std::string(".weight").size());
      if (const CompressedGroup* g = c.compressed->group_for(module)) {
        const double out = double(t.shape[0]), in = double(t.shape[1]);
        const double scales = g->group_size > 0 ? std::ceil(in / double(g->group_size)) : 1;
        bytes = g->is_float ? fp8_bytes : out * in * g->num_bits / 8 + 2 * out * scales;
      }
    } else if (t.kind == WeightKind::linear && fp8 && !released_fp8_keeps_bf16(t.name)) {
      bytes = fp8_bytes;  // and f32 scales
    }
    const std::string_view n = t.name;
    const bool in_mtp = n.starts_with(mtp_prefix);
    if (const size_t at = n.find(".mlp.experts."); at != std::string_view::npos) {
      // Every routed expert has the same tensors: count those of the first layer's expert 0.
      if (first_experts.empty()) first_experts = std::string(n.substr(0, at)) + ".mlp.experts.0.";
      if (n.starts_with(first_experts)) b.routed_expert += bytes;
      continue;
    }
    if (n.ends_with("embed_tokens.weight")) {
      (in_mtp ? b.mtp_shared : b.shared) += bytes / c.vocab_size;  // one row
      continue;
    }
    if (n == "lm_head.weight") head = bytes;
    if (in_mtp && n.find("shared_head.head.") != std::string_view::npos) mtp_has_head = true;
    (in_mtp ? b.mtp_shared : b.shared) += bytes;
  }
  if (mtp && !mtp_has_head) b.mtp_shared += head;  // the head is shared with the main model
  return b;
}

ModelConfig deepseek_v32_release_config(const nlohmann::json& quantization) {
  nlohmann::json j = gen_model_config_json(GenPreset::mini, GenArch::v32, GenDtype::fp8);
  const std::pair<const char*, int> sizes[] = {{"vocab_size", 129280},
                                               {"hidden_size", 7168},
                                               {"num_hidden_layers", 61},
                                               {"first_k_dense_replace", 3},
                                               {"intermediate_size", 18432},
                                               {"moe_intermediate_size", 2048},
                                               {"n_routed_experts", 256},
                                               {"num_experts_per_tok", 8},
                                               {"n_shared_experts", 1},
                                               {"n_group", 8},
                                               {"topk_group", 4},
                                               {"num_attention_heads", 128},
                                               {"num_key_value_heads", 128},
                                               {"q_lora_rank", 1536},
                                               {"kv_lora_rank", 512},
                                               {"qk_nope_head_dim", 128},
                                               {"qk_rope_head_dim", 64},
                                               {"v_head_dim", 128},
                                               {"index_n_heads", 64},
                                               {"index_head_dim", 128},
                                               {"index_topk", 2048},
                                               {"max_position_embeddings", 163840}};
  for (const auto& [key, value] : sizes) j[key] = value;
  if (!quantization.is_null()) j["quantization_config"] = quantization;
  return parse_config(j, "the DeepSeek-V3.2 release config");
}

double expected_distinct_experts(int experts, int per_token, int tokens) {
  return experts * (1.0 - std::pow(1.0 - double(per_token) / experts, tokens));
}

}  // namespace dsinfer::bench

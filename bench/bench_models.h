// Models the benchmark suites run on, and what they read per decode step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"

namespace dsinfer::bench {

// n token ids uniform in [0, vocab), from `seed`.
std::vector<int32_t> random_tokens(int64_t n, int vocab, uint32_t seed);

// One timed forward: its wall time and per-operator times (the model's op_times() keep
// accumulating across runs).
struct StepRun {
  double total_s = 0;
  OpTimes ops;
};
// A prefill of `tokens` random tokens into a new sequence, in chunks of 2048 as the engine
// schedules them (the sequence is freed after).
StepRun time_prefill(Model& m, int64_t tokens, uint32_t seed);
// The median of `steps` decode steps at `depth` (a synthetic cache; one warm-up step first).
StepRun time_decode(Model& m, int64_t depth, int steps);

// The default benchmark model: the mini preset (real attention shapes), FP8, generated once
// under $DSINFER_MODELS (default models/).
std::string default_model_dir();

// Weight bytes every decode step reads whatever the tokens (all but the routed experts, plus one
// embedding row), and the bytes of one routed expert.
double shared_weight_bytes(const Model& m);
double routed_expert_bytes(const Model& m);
// The main model's layers with routed experts (the MTP module's layer is held apart).
int moe_layers(const Model& m);
// One token's decode step: the shared weights plus its num_experts_per_tok experts per layer.
double decode_weight_bytes(const Model& m);

// What decode steps read, from a config alone (the checkpoint schema with the released FP8
// checkpoints' dtypes: FP8 linears with their 128 x 128 block scales, BF16 heads, eh_proj, indexer
// weights_proj and every norm, bias and router): for models that are not at hand, the 671B.
struct StepBytes {
  double shared = 0;         // every main-model step: all but the routed experts, one embedding row
  double routed_expert = 0;  // one routed expert (gate, up and down projections)
  int moe_layers = 0;        // main-model layers with routed experts
  double mtp_shared = 0;     // one MTP draft: its layer without routed experts, eh_proj, norms and
                             // the output head it shares with the main model (read again)
  int mtp_moe_layers = 0;
  // A step whose tokens run `experts_per_layer` distinct routed experts in every MoE layer.
  double step(double experts_per_layer) const {
    return shared + experts_per_layer * routed_expert * moe_layers;
  }
  double draft(double experts_per_layer) const {
    return mtp_shared + experts_per_layer * routed_expert * mtp_moe_layers;
  }
};
// A compressed-tensors config (c.compressed) counts every linear layer as its group stores it:
// integer codes of num_bits with one bf16 scale per group_size inputs (or per row), FP8 blocks
// with f32 scales, or BF16 when no group claims it.
StepBytes schema_step_bytes(const ModelConfig& c, bool fp8);

// The released DeepSeek-V3.2(-Exp) config (671B, FP8, one MTP module); with a `quantization`
// JSON object (a compressed-tensors quantization_config, e.g. what `dsinfer quantize` writes) in
// place of the release's FP8 one, that checkpoint's config.
ModelConfig deepseek_v32_release_config(const nlohmann::json& quantization = nullptr);

// The expected number of distinct experts `tokens` tokens route to in one layer when each picks
// `per_token` of `experts` uniformly at random: experts * (1 - (1 - per_token/experts)^tokens).
double expected_distinct_experts(int experts, int per_token, int tokens);

}  // namespace dsinfer::bench

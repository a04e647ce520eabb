// DeepSeek-V3 MoE routing on the forward path (spec §3.5): sigmoid scores, bias-corrected,
// group-limited top-k, threaded over tokens with no allocation per token. Bitwise the result of
// kernels/reference/moe_router.h (the test checks it), which states the exact rule.
#pragma once

#include <cstdint>

namespace dsinfer {

struct MoeRouting {
  int n_experts;                // n_routed_experts
  int n_group;                  // experts split into this many equal, contiguous groups
  int topk_group;               // groups kept
  int top_k;                    // num_experts_per_tok
  bool norm_topk_prob;          // normalize the chosen weights to sum 1 before scaling
  float routed_scaling_factor;  // multiplies every chosen weight
};

// logits: [T, n_experts] (x @ gate.weight^T); bias: [n_experts] (nullptr = zeros);
// expert_ids: [T, top_k] int32, ordered by biased score descending, then expert id ascending;
// weights: [T, top_k]. Throws std::invalid_argument for an inconsistent configuration.
void moe_route(const float* logits, const float* bias, int64_t n_tokens, const MoeRouting& cfg,
               int32_t* expert_ids, float* weights);

}  // namespace dsinfer

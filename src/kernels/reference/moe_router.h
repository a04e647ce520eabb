// DeepSeek-V3 MoE routing (spec §3.5): sigmoid scores, bias-corrected group-limited top-k.
#pragma once

#include <cstdint>

#include "kernels/moe_router.h"  // the MoeRouting parameters (shared; the code here is separate)

namespace dsinfer::ref {

using dsinfer::MoeRouting;

// For each token t, from the router logits (x @ gate.weight^T):
//   u = sigmoid(logit) in f32 (evaluated in double, rounded); b = u + bias (f32 add).
//   group score = sum of the two largest b in the group (f32; the one b when a group has a
//   single expert); keep the topk_group best groups (ties: smaller group id);
//   choose the top_k largest b among the kept experts (ties: smaller expert id).
//   weight_e = u_e / sum(u_chosen) * routed_scaling_factor when norm_topk_prob, else
//   u_e * routed_scaling_factor (in double, rounded to f32). The bias selects, never weighs.
// Output order: by b descending, then expert id ascending.
// logits: [T, n_experts]; bias: [n_experts] (nullptr = zeros);
// expert_ids: [T, top_k] int32; weights: [T, top_k]. NaN logits are not supported.
void moe_route(const float* logits, const float* bias, int64_t n_tokens, const MoeRouting& cfg,
               int32_t* expert_ids, float* weights);

}  // namespace dsinfer::ref

// Models the benchmark suites run on, and what they read per decode step.
#pragma once

#include <string>

#include "model/model.h"

namespace dsinfer::bench {

// The default benchmark model: the mini preset (real attention shapes), FP8, generated once
// under $DSINFER_MODELS (default models/).
std::string default_model_dir();

// Weight bytes every decode step reads whatever the tokens (all but the routed experts, plus one
// embedding row), and the bytes of one routed expert.
double shared_weight_bytes(const Model& m);
double routed_expert_bytes(const Model& m);
// One token's decode step: the shared weights plus its num_experts_per_tok experts per layer.
double decode_weight_bytes(const Model& m);

}  // namespace dsinfer::bench

// A straightforward f32 implementation of the whole DeepSeek-V3.2 forward (spec §3–4), written
// independently of src/model/model.cpp: weights dequantized to f32, plain matmuls in double,
// the non-absorbed MHA with a -inf mask outside the indexer's top-k, the reference indexer and
// router. It processes a whole prompt at once (causal), the way the release's prefill does.
#pragma once

#include <cstdint>
#include <vector>

#include "model/checkpoint.h"
#include "model/config.h"

namespace dsinfer::testing {

struct ReferenceOptions {
  bool indexer_fp8 = true;
  bool dense = false;  // ignore the indexer: plain causal attention
  // The indexer's activation scales (spec §3.2): ue8m0 powers of two on every checkpoint; false
  // gives plain amax / 448 scales (what a BF16 checkpoint's missing scale_fmt once selected), to
  // show a test can tell the two apart.
  bool indexer_ue8m0 = true;
  // The latent cache's storage (`--kv-cache-dtype`): f32 (none), bf16, or fp8_e4m3 / i8 with one
  // scale per 128 values; the attention then reads the stored values (and k_pe in bf16, as the
  // model keeps it beside a bf16 or 8-bit latent).
  DType latent_cache = DType::f32;
};

// Logits [tokens.size(), vocab] for every position; hidden_out (optional) gets the final-normed
// hidden states [tokens.size(), hidden].
std::vector<float> reference_forward(const ModelConfig& config, const CheckpointWeights& weights,
                                     const std::vector<int32_t>& tokens,
                                     const ReferenceOptions& options,
                                     std::vector<float>* hidden_out = nullptr);

// A linear weight as the reference multiplies by: [out, in] f32, decoded from the stored bytes.
std::vector<float> dequantize_linear(const LinearWeight& w);

// Max over positions of max|a - b| / max|b| (per position): the relative logit error; with
// bad_positions, how many positions exceed tol.
double worst_relative(const std::vector<float>& a, const std::vector<float>& b, int64_t vocab,
                      int64_t* bad_positions = nullptr, double tol = 0);

}  // namespace dsinfer::testing

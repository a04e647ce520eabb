// The model hyper-parameters read from a Hugging Face `config.json` (spec §1), validated so that
// the rest of the engine can trust every size without re-checking it.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace dsinfer {

// `rope_scaling` with `type` (or `rope_type`) "yarn"; the only scaling the spec uses.
struct YarnScaling {
  double factor = 1.0;
  int original_max_position_embeddings = 0;
  double beta_fast = 32.0;      // default as in the HF DeepSeek-V3 code
  double beta_slow = 1.0;       // default as in the HF DeepSeek-V3 code
  double mscale = 1.0;          // default as in the HF DeepSeek-V3 code
  double mscale_all_dim = 0.0;  // default as in the HF DeepSeek-V3 code (0 = no softmax rescale)
};

// `quantization_config` of an FP8 checkpoint: e4m3 weights with per-block f32 scale_inv.
struct Fp8Quantization {
  int weight_block_out = 128;  // weight_block_size[0]
  int weight_block_in = 128;   // weight_block_size[1]
  // "ue8m0": activation scales are powers of two (2^ceil(log2(amax/448))); false: amax/448.
  bool scale_fmt_ue8m0 = false;
};

// `quantization_config` with quant_method "compressed-tensors" (llm-compressor's format, what
// vLLM and SGLang load; docs/checkpoints.md): config groups of quantized linear layers.
struct CompressedGroup {
  std::string name;                  // the config_groups key ("group_0")
  std::vector<std::string> targets;  // "Linear", module names, or "re:" regexes on module names
  std::string format;                // pack-quantized | int-quantized | naive-quantized |
                                     // float-quantized
  int num_bits = 0;                  // weights: 4 or 8 (int), 8 (float)
  bool is_float = false;             // weights.type "float": FP8 e4m3 with 128 x 128 block scales
  int64_t group_size = 0;            // int weights: columns per scale; 0 = channel-wise (a row)
  bool symmetric = true;             // int weights: false adds weight_zero_point (one per scale)
  // actorder "group" (alias "dynamic", or true): GPTQ's activation order defined the groups, the
  // columns stay in their original order and weight_g_idx [in] names each one's group. "weight"
  // / "static" (or null / false) change only the calibration: groups are contiguous as usual.
  bool actorder_group = false;
  bool int8_activations = false;  // W8A8: input_activations int8, dynamic, per token
  bool fp8_activations = false;   // float weights: input_activations fp8, dynamic, group 128
};
struct CompressedTensors {
  std::vector<CompressedGroup> groups;
  std::vector<std::string> ignore;  // module names or "re:" regexes left unquantized
  // The group that quantizes linear module `module` ("model.layers.3.mlp.experts.7.up_proj"), or
  // nullptr: ignored or not targeted (stored as it is, BF16 / FP8). Targets are matched as
  // compressed-tensors does (an exact name, a "re:" pattern matched from the name's start, or
  // the class name "Linear", which every projection here is); throws std::runtime_error when
  // two groups claim the module.
  const CompressedGroup* group_for(const std::string& module) const;
};

struct ModelConfig {
  std::string architecture;  // "DeepseekV32ForCausalLM" or "DeepseekV3ForCausalLM"
  bool has_indexer = false;  // true for V3.2 (DeepSeek Sparse Attention), false for V3

  int vocab_size = 0;
  int hidden_size = 0;
  int num_hidden_layers = 0;
  int first_k_dense_replace = 0;  // layers < this use the dense MLP
  int moe_layer_freq = 1;         // optional; from there on, every moe_layer_freq-th layer is MoE
  int intermediate_size = 0;      // dense MLP width
  int moe_intermediate_size = 0;  // routed expert width
  int n_routed_experts = 0;
  int num_experts_per_tok = 0;
  int n_shared_experts = 0;              // null in config.json parses as 0 = no shared expert
  int n_group = 1;                       // optional, default 1 (no group-limited routing)
  int topk_group = 1;                    // optional, default 1
  double routed_scaling_factor = 1.0;    // optional, default 1
  std::string scoring_func = "sigmoid";  // optional; only "sigmoid" is supported
  std::string topk_method = "noaux_tc";  // optional; only "noaux_tc" is supported
  bool norm_topk_prob = true;            // optional, default true

  int num_attention_heads = 0;
  int q_lora_rank = 0;  // null in config.json parses as 0: no q LoRA, q_proj used directly
  int kv_lora_rank = 0;
  int qk_nope_head_dim = 0;
  int qk_rope_head_dim = 0;
  int v_head_dim = 0;

  // Indexer (DSA); required when has_indexer, zero otherwise.
  int index_n_heads = 0;
  int index_head_dim = 0;
  int index_topk = 0;
  bool indexer_rope_interleave = false;  // optional, default false (the fixed V3.2 release)

  double rms_norm_eps = 1e-6;               // optional
  double rope_theta = 10000.0;              // optional
  std::optional<YarnScaling> rope_scaling;  // absent or null: plain RoPE
  int max_position_embeddings = 4096;       // optional, HF default
  int num_nextn_predict_layers = 0;         // optional; MTP modules stored after the last layer

  std::optional<Fp8Quantization> quantization;  // quant_method "fp8"; absent for BF16 checkpoints
  std::optional<CompressedTensors> compressed;  // quant_method "compressed-tensors"

  int bos_token_id = 0;                  // optional, default 0
  std::vector<int> eos_token_ids = {1};  // optional, default 1; config.json may give a list
  bool tie_word_embeddings = false;      // optional; true: lm_head may be absent (embed is used)

  // (qk_nope + qk_rope)^-0.5, times m^2 with the YaRN m = 0.1 * mscale_all_dim * ln(factor) + 1
  // (spec §3.1; 1 when there is no YaRN scaling, factor <= 1 or mscale_all_dim = 0).
  double softmax_scale() const;
  // The qk_rope_head_dim / 2 RoPE frequencies, YaRN-corrected when rope_scaling is set (§3.1).
  std::vector<float> rope_inv_freq() const;
  // Layer `layer` (0 .. num_hidden_layers + num_nextn_predict_layers - 1) has a MoE MLP.
  bool is_moe_layer(int layer) const;
  bool has_q_lora() const { return q_lora_rank > 0; }
  bool is_eos(int token) const;
  // Layers stored in the checkpoint: the decoder layers and the MTP modules after them.
  int num_stored_layers() const { return num_hidden_layers + num_nextn_predict_layers; }
};

// Reads and validates `path_to_config_json`. Throws std::runtime_error naming the file and the
// field at fault.
ModelConfig load_config(const std::string& path_to_config_json);
// Validates an already parsed config; `source_name` prefixes every error message.
ModelConfig parse_config(const nlohmann::json& json, const std::string& source_name);

}  // namespace dsinfer

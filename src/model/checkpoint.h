// The DeepSeek-V3 / V3.2 checkpoint schema (spec §2): which tensors a config implies, checking a
// checkpoint against it before anything runs, and typed per-layer access to the weights.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/weight_view.h"
#include "model/config.h"
#include "model/safetensors.h"

namespace dsinfer {

// FP8 weights carry one f32 scale per 128 x 128 block (kFp8BlockSize, core/weight_view.h;
// config.cpp accepts no other block size).

// How a tensor may be stored.
enum class WeightKind {
  linear,  // a [out, in] projection: F32, BF16, F16, or F8_E4M3 with a sibling NAME_scale_inv
  param,   // norms, biases, the router gate, embeddings: F32, BF16 or F16, never FP8
};

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
  WeightKind kind = WeightKind::param;
  bool optional = false;  // may be absent: a tied lm_head, the MTP module's own embed_tokens
};

// "x.weight" -> "x.weight_scale_inv", the DeepSeek naming of an FP8 weight's block scales.
std::string scale_inv_name(const std::string& weight_name);
// [ceil(out/128), ceil(in/128)] for a [out, in] weight.
std::vector<int64_t> scale_inv_shape(const std::vector<int64_t>& weight_shape);

// The MTP modules actually stored: those of the config's num_nextn_predict_layers for which the
// checkpoint has any `model.layers.{num_hidden_layers + k}.` tensor (counted from k = 0; many
// converted checkpoints drop them).
int stored_mtp_modules(const ModelConfig& config, const SafetensorsCheckpoint& checkpoint);

// The compressed-tensors config group that quantizes linear weight `weight_name`
// ("model.layers.3.mlp.experts.7.up_proj.weight": its module is the name without ".weight"), or
// nullptr (not a compressed-tensors checkpoint, or the module is ignored / not targeted).
const CompressedGroup* quantization_group(const ModelConfig& config,
                                          const std::string& weight_name);

// Linear weights the released FP8 checkpoints keep in BF16: the output heads (lm_head, MTP's
// shared_head.head), MTP's eh_proj and the indexer's weights_proj.
bool released_fp8_keeps_bf16(const std::string& name);

// Every tensor the config implies, in layer order, with `mtp_modules` MTP modules.
std::vector<ExpectedTensor> checkpoint_schema(const ModelConfig& config, int mtp_modules);

struct CheckpointReport {
  std::vector<std::string> errors;    // the first max_messages problems, each naming tensor+file
  size_t error_count = 0;             // all problems found
  std::vector<std::string> warnings;  // tensors that will be ignored (first max_messages)
  size_t warning_count = 0;
  int mtp_modules = 0;
  bool ok() const { return error_count == 0; }
};

// Checks presence, dtype and shape of every expected tensor, FP8 weights' scale_inv (present,
// F32, right shape, every value finite and positive), and lists unexpected tensors as warnings.
// Reads only the scales, never the weights.
CheckpointReport check_checkpoint(const ModelConfig& config,
                                  const SafetensorsCheckpoint& checkpoint,
                                  size_t max_messages = 50);
// check_checkpoint, then throws std::runtime_error listing the problems if there are any;
// warnings go to the log.
void validate_checkpoint(const ModelConfig& config, const SafetensorsCheckpoint& checkpoint);

// ---- typed access for the forward pass --------------------------------------------------------

struct LinearWeight {
  Tensor w;          // [out, in]; INT4 / pack-quantized INT8: the I32 words [out, in * bits / 32]
  Tensor scale_inv;  // [ceil(out/128), ceil(in/128)] f32 when w is FP8; undefined otherwise
  // Integer weights (compressed-tensors, docs/checkpoints.md): the group scales weight_scale
  // [out, ceil(in / group)] (bf16, f16 or f32), what the codes in w are, and the logical shape.
  Tensor scale;
  Tensor zero;               // asymmetric only: signed zero points, int8 [out, ceil(in / group)]
  DType codes = DType::f32;  // u4 (INT4 packed), u8 (8-bit packed, offset 128) or i8
  int64_t out = 0, in = 0, group = 0;
  bool int8_activations = false;  // W8A8: activations quantized to int8 per token
  // Group activation ordering (actorder "group"): w holds the codes with columns sorted by group
  // (a resident copy), column j multiplying input perm[j] (i32 [in]); undefined otherwise.
  Tensor perm;

  bool is_fp8() const { return w.dtype() == DType::fp8_e4m3; }
  bool is_int() const { return scale.defined(); }
  int64_t out_features() const { return is_int() ? out : w.size(0); }
  int64_t in_features() const { return is_int() ? in : w.size(1); }
  // Bytes of checkpoint data behind it (weights and scales).
  size_t bytes() const;
  // What gemm multiplies by.
  WeightView view() const;
};

// down(silu(gate(x)) * up(x)).
struct MlpWeights {
  LinearWeight gate_proj;  // [width, hidden]
  LinearWeight up_proj;    // [width, hidden]
  LinearWeight down_proj;  // [hidden, width]
};

struct IndexerWeights {
  LinearWeight wq_b;          // [index_n_heads * index_head_dim, q_lora_rank]
  LinearWeight wk;            // [index_head_dim, hidden]
  LinearWeight weights_proj;  // [index_n_heads, hidden]
  Tensor k_norm_weight;       // [index_head_dim] LayerNorm weight
  Tensor k_norm_bias;         // [index_head_dim] LayerNorm bias
};

struct AttentionWeights {
  // With q LoRA (q_lora_rank > 0): q = q_b_proj(RMSNorm(q_a_proj(x))); without: q = q_proj(x).
  LinearWeight q_a_proj;                  // [q_lora_rank, hidden]
  Tensor q_a_layernorm;                   // [q_lora_rank]
  LinearWeight q_b_proj;                  // [H * (qk_nope + qk_rope), q_lora_rank]
  LinearWeight q_proj;                    // [H * (qk_nope + qk_rope), hidden], only without q LoRA
  LinearWeight kv_a_proj_with_mqa;        // [kv_lora_rank + qk_rope, hidden]
  Tensor kv_a_layernorm;                  // [kv_lora_rank]
  LinearWeight kv_b_proj;                 // [H * (qk_nope + v), kv_lora_rank]
  LinearWeight o_proj;                    // [hidden, H * v]
  std::optional<IndexerWeights> indexer;  // DeepSeek-V3.2 only
};

struct MoeWeights {
  Tensor gate;                               // [n_routed_experts, hidden] router
  Tensor e_score_correction_bias;            // [n_routed_experts]
  std::vector<MlpWeights> experts;           // n_routed_experts of width moe_intermediate_size
  std::optional<MlpWeights> shared_experts;  // width n_shared_experts * moe_intermediate_size
};

struct LayerWeights {
  Tensor input_layernorm;           // [hidden]
  Tensor post_attention_layernorm;  // [hidden]
  AttentionWeights attn;
  std::optional<MlpWeights> mlp;  // dense layers (config.is_moe_layer false), width intermediate
  std::optional<MoeWeights> moe;  // MoE layers
};

// A multi-token-prediction module (spec §4), stored as layer num_hidden_layers + k.
struct MtpWeights {
  Tensor enorm;                   // [hidden] for the embedding
  Tensor hnorm;                   // [hidden] for the main model's hidden state
  LinearWeight eh_proj;           // [hidden, 2 * hidden]
  LayerWeights layer;             // a full decoder layer
  Tensor shared_head_norm;        // [hidden]
  LinearWeight shared_head_head;  // [vocab, hidden]
  Tensor embed_tokens;            // [vocab, hidden]: its own copy, else the model's
};

class WeightBinder;  // checkpoint.cpp: walks the schema for both checking and loading

class CheckpointWeights {
 public:
  // validate_checkpoint, then zero-copy views of every weight (the mappings stay alive with them).
  static CheckpointWeights load(const ModelConfig& config, const SafetensorsCheckpoint& checkpoint);

  int num_layers() const { return int(layers_.size()); }
  const LayerWeights& layer(int i) const { return layers_.at(size_t(i)); }
  const Tensor& embed_tokens() const { return embed_tokens_; }  // [vocab, hidden]
  const Tensor& norm() const { return norm_; }                  // [hidden]
  const LinearWeight& lm_head() const { return lm_head_; }      // [vocab, hidden]; embed if tied
  const std::vector<MtpWeights>& mtp() const { return mtp_; }   // empty without stored MTP
  // Bytes of checkpoint data the weights view (each tensor once), i.e. what stays mapped.
  size_t resident_bytes() const { return resident_bytes_; }
  // Expert parallelism: drops the views of the routed experts outside [begin, end) in every MoE
  // layer (MTP's too), so this process never touches their pages; resident_bytes() follows.
  void keep_experts(int64_t begin, int64_t end);
  // Reads every byte of the FP8 weights this process keeps and throws std::runtime_error naming
  // the file, the tensor, the element and the code at the first NaN code (0x7f / 0xff): the fast
  // weight paths decode those as finite values, so a checkpoint holding one would give silent
  // garbage. Threaded; about a second per 10 GB of weights (the model reads them anyway).
  void check_fp8_codes() const;

  struct Fp8Weight {  // every FP8 weight, for check_fp8_codes
    std::string name, file;
    Tensor w;
    int64_t expert = -1;  // a routed expert's id, -1 for every other weight
  };

 private:
  friend std::vector<ExpectedTensor> checkpoint_schema(const ModelConfig&, int);
  void bind(const ModelConfig& config, int mtp_modules, WeightBinder& binder);

  std::vector<LayerWeights> layers_;
  Tensor embed_tokens_, norm_;
  LinearWeight lm_head_;
  std::vector<MtpWeights> mtp_;
  size_t resident_bytes_ = 0;
  std::vector<Fp8Weight> fp8_;
};

}  // namespace dsinfer

// Helpers for the model tests: temporary directories, hand-made safetensors files, and a small
// DeepSeek-V3.2 config whose checkpoint fits in a few hundred kilobytes.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/safetensors_writer.h"

namespace dsinfer::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/dsinfer_model_XXXXXX";
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char(uint8_t(v >> (8 * i)));
  return s;
}

// A safetensors file with exactly the given header text and data bytes, for malformed inputs.
inline void write_raw_safetensors(const std::string& path, const std::string& header,
                                  const std::string& data) {
  write_bytes(path, u64_le(header.size()) + header + data);
}

// A contiguous tensor of `dtype` and `shape` whose bytes are a function of `seed`.
inline Tensor patterned_tensor(DType dtype, std::vector<int64_t> shape, uint32_t seed) {
  Tensor t = Tensor::empty(dtype, std::move(shape));
  auto* p = t.data<uint8_t>();
  uint32_t x = seed * 2654435761u + 12345u;
  for (size_t i = 0; i < t.nbytes(); ++i) {
    x = x * 1664525u + 1013904223u;
    p[i] = uint8_t(x >> 24);
  }
  return t;
}

// A filled tensor of a float dtype (f32, bf16 or f16) or fp8 holding `value` everywhere.
inline Tensor filled_tensor(DType dtype, std::vector<int64_t> shape, float value) {
  Tensor t = Tensor::empty(dtype, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) switch (dtype) {
      case DType::f32:
        t.data<float>()[i] = value;
        break;
      case DType::bf16:
        t.data<bf16>()[i] = f32_to_bf16(value);
        break;
      case DType::f16:
        t.data<f16>()[i] = f32_to_f16(value);
        break;
      case DType::fp8_e4m3:
        t.data<fp8_e4m3>()[i] = f32_to_fp8_e4m3(value);
        break;
      default:
        throw std::invalid_argument("filled_tensor: unsupported dtype");
    }
  return t;
}

// The released DeepSeek-V3.2-Exp config.json (spec §1), verbatim in the fields that matter.
inline nlohmann::json released_config() {
  return nlohmann::json::parse(R"({
    "architectures": ["DeepseekV32ForCausalLM"], "attention_bias": false,
    "bos_token_id": 0, "eos_token_id": 1, "first_k_dense_replace": 3, "hidden_act": "silu",
    "hidden_size": 7168, "index_head_dim": 128, "index_n_heads": 64, "index_topk": 2048,
    "intermediate_size": 18432, "kv_lora_rank": 512, "max_position_embeddings": 163840,
    "model_type": "deepseek_v32", "moe_intermediate_size": 2048, "moe_layer_freq": 1,
    "n_group": 8, "n_routed_experts": 256, "n_shared_experts": 1, "norm_topk_prob": true,
    "num_attention_heads": 128, "num_experts_per_tok": 8, "num_hidden_layers": 61,
    "num_key_value_heads": 128, "num_nextn_predict_layers": 1, "q_lora_rank": 1536,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                            "weight_block_size": [128, 128], "scale_fmt": "ue8m0"},
    "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0,
                     "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
                     "type": "yarn"},
    "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid",
    "tie_word_embeddings": false, "topk_group": 4, "topk_method": "noaux_tc",
    "torch_dtype": "bfloat16", "v_head_dim": 128, "vocab_size": 129280})");
}

// A small V3.2 config: 2 layers (one dense, one MoE), one MTP module, 4 experts in 2 groups,
// widths that are not multiples of 128 so FP8 scale grids have partial blocks.
inline nlohmann::json tiny_config_json() {
  return {
      {"architectures", {"DeepseekV32ForCausalLM"}},
      {"model_type", "deepseek_v32"},
      {"vocab_size", 300},
      {"hidden_size", 160},
      {"num_hidden_layers", 2},
      {"first_k_dense_replace", 1},
      {"intermediate_size", 96},
      {"moe_intermediate_size", 48},
      {"n_routed_experts", 4},
      {"num_experts_per_tok", 2},
      {"n_shared_experts", 1},
      {"n_group", 2},
      {"topk_group", 1},
      {"routed_scaling_factor", 2.5},
      {"scoring_func", "sigmoid"},
      {"topk_method", "noaux_tc"},
      {"norm_topk_prob", true},
      {"num_attention_heads", 2},
      {"q_lora_rank", 48},
      {"kv_lora_rank", 32},
      {"qk_nope_head_dim", 16},
      {"qk_rope_head_dim", 8},
      {"v_head_dim", 16},
      {"index_n_heads", 2},
      {"index_head_dim", 128},
      {"index_topk", 4},
      {"rms_norm_eps", 1e-6},
      {"rope_theta", 10000},
      {"rope_scaling",
       {{"type", "yarn"},
        {"factor", 4},
        {"original_max_position_embeddings", 64},
        {"beta_fast", 32},
        {"beta_slow", 1},
        {"mscale", 1.0},
        {"mscale_all_dim", 1.0}}},
      {"max_position_embeddings", 256},
      {"num_nextn_predict_layers", 1},
      {"bos_token_id", 0},
      {"eos_token_id", 1},
      {"tie_word_embeddings", false},
  };
}

inline ModelConfig tiny_config() {
  return parse_config(tiny_config_json(), "tiny/config.json");
}

// Every tensor the schema asks for; linear weights in FP8 with scale_inv when `fp8`, else BF16.
inline std::vector<NamedTensor> schema_tensors(const ModelConfig& config, int mtp_modules,
                                               bool fp8) {
  std::vector<NamedTensor> out;
  for (const ExpectedTensor& t : checkpoint_schema(config, mtp_modules)) {
    if (t.optional) continue;
    if (fp8 && t.kind == WeightKind::linear) {
      out.push_back({t.name, filled_tensor(DType::fp8_e4m3, t.shape, 0.5f)});
      out.push_back(
          {scale_inv_name(t.name), filled_tensor(DType::f32, scale_inv_shape(t.shape), 0.01f)});
    } else {
      out.push_back({t.name, filled_tensor(DType::bf16, t.shape, 1.0f)});
    }
  }
  return out;
}

// Replaces (or adds) tensor `name` in `tensors`.
inline void put(std::vector<NamedTensor>& tensors, const std::string& name, Tensor t) {
  for (NamedTensor& n : tensors)
    if (n.name == name) {
      n.tensor = std::move(t);
      return;
    }
  tensors.push_back({name, std::move(t)});
}

inline void drop(std::vector<NamedTensor>& tensors, const std::string& name) {
  std::erase_if(tensors, [&](const NamedTensor& n) { return n.name == name; });
}

// Runs `f`, expecting a std::runtime_error whose message contains every one of `parts`.
template <class F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << ::testing::PrintToString(parts);
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    for (const std::string& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

}  // namespace dsinfer::testing

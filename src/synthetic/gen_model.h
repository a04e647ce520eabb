// Random DeepSeek-V3.2 / V3 checkpoints in the exact Hugging Face layout (`dsinfer gen-model`):
// config.json, generation_config.json, sharded safetensors with model.safetensors.index.json,
// FP8 (e4m3 + power-of-two 128 x 128 block scales) or BF16 weights, one MTP module, and a
// byte-level BPE tokenizer (tokenizer.json, tokenizer_config.json; synthetic/gen_tokenizer.h).
//
// The tensors are exactly checkpoint_schema()'s, scaled so activations stay O(1) through the
// layers (docs/gen-model.md). Generation is seeded and deterministic: every 128-row block of every
// tensor draws from its own generator seeded by (seed, tensor name, block), so the bytes do not
// depend on the thread count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"
#include "model/safetensors_writer.h"

namespace dsinfer {

enum class GenPreset {
  tiny,  // for tests: hidden 64, 3 layers, 4 heads, index_topk 16, 8 experts, 512 tokens
  mini,  // for benchmarks: the 671B model's attention shapes, hidden 1024, 4 layers, 16 experts
};
enum class GenDtype { fp8, bf16 };
enum class GenArch { v32, v3 };  // DeepseekV32ForCausalLM (with indexer) or DeepseekV3ForCausalLM

// Parse the CLI spellings ("tiny"/"mini", "fp8"/"bf16", "v32"/"v3"); throw std::invalid_argument
// listing the accepted values.
GenPreset parse_gen_preset(std::string_view name);
GenDtype parse_gen_dtype(std::string_view name);
GenArch parse_gen_arch(std::string_view name);
std::string_view gen_preset_name(GenPreset preset);

struct GenModelOptions {
  GenPreset preset = GenPreset::tiny;
  std::string output_dir;
  GenDtype dtype = GenDtype::fp8;
  GenArch arch = GenArch::v32;
  uint64_t seed = 0;
  double shard_mb = 0;  // largest shard in MiB (1 << 20 bytes); 0: the preset's default
  bool force = false;   // overwrite a non-empty output directory
};

struct GenModelResult {
  ModelConfig config;               // as parsed back from the written config.json
  std::vector<std::string> files;   // file names written into the output directory
  std::vector<std::string> shards;  // the safetensors shards among them
  size_t num_tensors = 0;           // safetensors entries, scale_inv included
  int64_t parameters = 0;           // weight elements, scale_inv excluded
  size_t tensor_bytes = 0;          // safetensors data bytes
  size_t file_bytes = 0;            // all files written
  double seconds = 0;               // wall time of generate_model
};

// The preset's config.json (keys as in the released config; quantization_config for fp8 only).
nlohmann::json gen_model_config_json(GenPreset preset, GenArch arch, GenDtype dtype);

// Every tensor of `config`'s checkpoint (one MTP module when the config has one), random as
// described above, in schema order with each FP8 weight followed by its scale_inv. `config` must
// satisfy parse_config's checks.
std::vector<NamedTensor> gen_model_tensors(const ModelConfig& config, GenDtype dtype,
                                           uint64_t seed);

// Writes the whole model directory. Creates `output_dir` if needed; refuses (std::runtime_error)
// a non-empty one unless `force`, which replaces only the files this function writes (and stale
// model-*-of-*.safetensors shards). Throws std::runtime_error naming the path on I/O errors.
GenModelResult generate_model(const GenModelOptions& options);

}  // namespace dsinfer

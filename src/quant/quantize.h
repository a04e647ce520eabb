// `dsinfer quantize`: writes a compressed-tensors INT4 / INT8 checkpoint (what llm-compressor
// writes and vLLM / SGLang load; docs/checkpoints.md) from an FP8 or BF16 DeepSeek checkpoint.
// Round-to-nearest, symmetric (or asymmetric with zero points), bf16 scales; one tensor at a time
// (FP8 sources dequantized tensor by tensor, never the whole model), each output shard written as
// soon as it is full.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace dsinfer {

enum class QuantScheme { w4a16, w4a8, w8a16, w8a8 };
enum class QuantTargets { experts, mlp, all_linear };

QuantScheme parse_quant_scheme(const std::string& s);  // throws std::invalid_argument
QuantTargets parse_quant_targets(const std::string& s);
const char* quant_scheme_name(QuantScheme s);
const char* quant_targets_name(QuantTargets t);

struct QuantizeOptions {
  std::string src, dst;
  QuantScheme scheme = QuantScheme::w4a16;
  // Inputs per scale: 32, 64 or 128; 0 = the scheme's default (128; w8a8: one per channel);
  // -1 = one per output channel.
  int group = 0;
  QuantTargets targets = QuantTargets::experts;
  // FP8 projections left unquantized stay FP8 (a float-quantized block group) instead of BF16:
  // attention, and with targets = experts the shared experts and dense MLPs too.
  bool keep_fp8 = false;
  // Asymmetric: a zero point per scale (min/max range instead of +-amax), weight_zero_point.
  bool asymmetric = false;
  size_t max_shard_bytes = size_t(2) << 30;
  bool force = false;  // write into a non-empty dst
  // Called after every tensor: (tensors done, tensors in all, source bytes done, in all).
  std::function<void(size_t, size_t, size_t, size_t)> progress;
};

struct QuantizeResult {
  size_t tensors_in = 0, tensors_out = 0, quantized = 0, kept_fp8 = 0, to_bf16 = 0;
  size_t bytes_in = 0, bytes_out = 0;
  std::vector<std::string> shards;
  double seconds = 0;
};

// Throws std::runtime_error naming the file / tensor at fault.
QuantizeResult quantize_checkpoint(const QuantizeOptions& o);

// The config.json `quantization_config` that quantize_checkpoint writes (the loader reads the
// same fields back: config.h's CompressedTensors). group as resolved (> 0, or -1 per channel).
nlohmann::json compressed_tensors_config(QuantScheme scheme, int group, QuantTargets targets,
                                         bool keep_fp8, bool asymmetric = false);

// Symmetric round-to-nearest of one row of `n` weights with `bits` (4 or 8) in groups of `group`
// (n for channel-wise), as compressed-tensors' minmax observer: scale = bf16(amax / ((2^bits -
// 1) / 2)), codes = clamp(round_half_even(w / scale), -2^(bits-1), 2^(bits-1) - 1).
// With `zeros` (one per group), asymmetric as the same observer: the range [min(w, 0), max(w, 0)]
// over the 2^bits - 1 steps, scale = bf16((max - min) / (2^bits - 1)), zero = clamp(round(qmin -
// min / scale), qmin, qmax), codes = clamp(round(w / scale + zero), qmin, qmax); the weight is
// (code - zero) * scale.
void quantize_row(const float* w, int64_t n, int bits, int64_t group, int8_t* codes,
                  uint16_t* scales_bf16, int8_t* zeros = nullptr);

}  // namespace dsinfer

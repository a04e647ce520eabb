#include "synthetic/gen_model.h"

#include "core/rng.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "core/weight_view.h"
#include "model/checkpoint.h"
#include "synthetic/gen_tokenizer.h"

namespace dsinfer {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// ---- presets -----------------------------------------------------------------------------------

struct PresetDims {
  int hidden, layers, first_dense, heads, q_lora, kv_lora, qk_nope, qk_rope, v_head;
  int index_heads, index_topk;
  int experts, experts_per_tok, n_group, topk_group, shared_experts, moe_width, dense_width;
  int vocab, max_positions, yarn_original;
  double default_shard_mb;
};

PresetDims preset_dims(GenPreset preset) {
  switch (preset) {
    case GenPreset::tiny:
      return {.hidden = 64,
              .layers = 3,
              .first_dense = 1,
              .heads = 4,
              .q_lora = 32,
              .kv_lora = 32,
              .qk_nope = 16,
              .qk_rope = 8,
              .v_head = 16,
              .index_heads = 4,
              .index_topk = 16,
              .experts = 8,
              .experts_per_tok = 2,
              .n_group = 4,
              .topk_group = 2,
              .shared_experts = 1,
              .moe_width = 32,
              .dense_width = 96,
              .vocab = 512,
              .max_positions = 4096,
              .yarn_original = 256,
              .default_shard_mb = 0.25};
    case GenPreset::mini:
      return {.hidden = 1024,
              .layers = 4,
              .first_dense = 1,
              .heads = 128,
              .q_lora = 1536,
              .kv_lora = 512,
              .qk_nope = 128,
              .qk_rope = 64,
              .v_head = 128,
              .index_heads = 64,
              .index_topk = 2048,
              .experts = 16,
              .experts_per_tok = 4,
              .n_group = 4,
              .topk_group = 2,
              .shared_experts = 1,
              .moe_width = 256,
              .dense_width = 2816,
              .vocab = 1024,
              .max_positions = 163840,
              .yarn_original = 4096,
              .default_shard_mb = 256};
  }
  throw std::invalid_argument("unknown gen-model preset");
}

// ---- random numbers ----------------------------------------------------------------------------

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// ---- what each tensor holds --------------------------------------------------------------------

enum class Fill { ones, zeros, uniform };

struct TensorPlan {
  std::string name;
  std::string seed_name;  // tensors that share parameters (MTP embed / head) draw the same numbers
  std::vector<int64_t> shape;
  Fill fill = Fill::uniform;
  float stddev = 0;
  DType dtype = DType::bf16;  // fp8_e4m3 gets a scale_inv
};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The layer-less name of an MTP module's tensor that shares the main model's parameters.
std::string shared_parameter(const ModelConfig& c, const std::string& name) {
  for (int k = 0; k < c.num_nextn_predict_layers; ++k) {
    std::string prefix = fmt::format("model.layers.{}.", c.num_hidden_layers + k);
    if (name == prefix + "embed_tokens.weight") return "model.embed_tokens.weight";
    if (name == prefix + "shared_head.head.weight") return "lm_head.weight";
  }
  return name;
}

TensorPlan plan_tensor(const ModelConfig& c, const ExpectedTensor& t, GenDtype dtype) {
  TensorPlan p{t.name, shared_parameter(c, t.name), t.shape};
  const std::string& n = t.name;
  const double in_features = double(t.shape.back());
  // The residual stream gets 2 updates per layer; scaling each by 1/sqrt(2 * layers) keeps its
  // variance bounded by a constant however deep the model is.
  const double residual_scale = 1.0 / std::sqrt(2.0 * c.num_hidden_layers);
  if (t.kind == WeightKind::linear) {
    p.stddev = float(1.0 / std::sqrt(in_features));
    if (ends_with(n, ".o_proj.weight") || ends_with(n, ".down_proj.weight"))
      p.stddev *= float(residual_scale);
    p.dtype = dtype == GenDtype::fp8 && !released_fp8_keeps_bf16(n) ? DType::fp8_e4m3 : DType::bf16;
    return p;
  }
  if (ends_with(n, "embed_tokens.weight")) {
    p.stddev = 1.0f;
  } else if (ends_with(n, ".mlp.gate.weight")) {
    p.stddev = float(1.0 / std::sqrt(in_features));  // router logits ~ N(0, 1)
  } else if (ends_with(n, ".e_score_correction_bias")) {
    p.stddev = 0.02f;
    p.dtype = DType::f32;
  } else if (ends_with(n, ".k_norm.bias")) {
    p.fill = Fill::zeros;
    p.dtype = DType::f32;
  } else if (ends_with(n, ".k_norm.weight")) {
    p.fill = Fill::ones;
    p.dtype = DType::f32;
  } else if (ends_with(n, "norm.weight")) {  // RMSNorm weights: *_layernorm, norm, enorm, hnorm
    p.fill = Fill::ones;
  } else {
    throw std::logic_error("gen-model: no initialization rule for tensor '" + n + "'");
  }
  return p;
}

// ---- filling one block of rows -----------------------------------------------------------------

struct Block {
  size_t tensor;
  int64_t row0, row1;
};

// The generator of rows [row0, row0 + 128) of tensor `seed_name`.
Xoshiro256 block_rng(uint64_t seed, const std::string& seed_name, int64_t row0) {
  uint64_t s = seed;
  uint64_t a = splitmix64(s) ^ fnv1a(seed_name);
  uint64_t b = splitmix64(a) ^ uint64_t(row0 / kFp8BlockSize);
  return Xoshiro256(splitmix64(b));
}

void fill_block(const TensorPlan& p, Tensor& w, Tensor& scale_inv, const Block& blk,
                uint64_t seed) {
  const int64_t cols = p.shape.size() == 1 ? p.shape[0] : p.shape[1];
  const int64_t rows = blk.row1 - blk.row0;
  std::vector<float> v(size_t(rows * cols));  // (rows, cols)
  if (p.fill == Fill::uniform) {
    Xoshiro256 rng = block_rng(seed, p.seed_name, blk.row0);
    const float a = p.stddev * std::sqrt(3.0f);  // U(-a, a) has variance a^2 / 3
    for (float& x : v) x = rng.symmetric() * a;
  } else {
    std::fill(v.begin(), v.end(), p.fill == Fill::ones ? 1.0f : 0.0f);
  }
  const size_t first = size_t(blk.row0 * cols);
  switch (p.dtype) {
    case DType::f32:
      std::copy(v.begin(), v.end(), w.data<float>() + first);
      return;
    case DType::bf16:
      for (size_t i = 0; i < v.size(); ++i) w.data<bf16>()[first + i] = f32_to_bf16(v[i]);
      return;
    case DType::fp8_e4m3: {
      // One power-of-two scale per 128 x 128 block: 2^ceil(log2(amax / 448)), so the largest
      // value lands in (224, 448] and dividing by the scale is exact.
      fp8_e4m3* out = w.data<fp8_e4m3>() + first;
      float* scales = scale_inv.data<float>() + (blk.row0 / kFp8BlockSize) * scale_inv.size(1);
      for (int64_t c0 = 0; c0 < cols; c0 += kFp8BlockSize) {
        const int64_t c1 = std::min(cols, c0 + kFp8BlockSize);
        float amax = 0;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = c0; c < c1; ++c)
            amax = std::max(amax, std::fabs(v[size_t(r * cols + c)]));
        const float scale = amax > 0 ? ue8m0_to_f32(ue8m0_ceil_pow2(amax / kFp8E4m3Max)) : 1.0f;
        scales[c0 / kFp8BlockSize] = scale;
        const float inv = 1.0f / scale;  // exact: a power of two
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = c0; c < c1; ++c)
            out[r * cols + c] = f32_to_fp8_e4m3(v[size_t(r * cols + c)] * inv);
      }
      return;
    }
    default:
      throw std::logic_error("gen-model: unexpected dtype");
  }
}

// ---- files -------------------------------------------------------------------------------------

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(path.string() + ": cannot create file");
  out.write(text.data(), std::streamsize(text.size()));
  out.close();
  if (!out) throw std::runtime_error(path.string() + ": write failed");
}

// "model-00001-of-00003.safetensors": the shard names this writer produces.
bool is_shard_name(const std::string& name) {
  static constexpr std::string_view kPattern = "model-#####-of-#####.safetensors";
  if (name.size() != kPattern.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const bool digit = name[i] >= '0' && name[i] <= '9';
    if (kPattern[i] == '#' ? !digit : name[i] != kPattern[i]) return false;
  }
  return true;
}

const char* const kOwnFiles[] = {"config.json", "generation_config.json", "tokenizer.json",
                                 "tokenizer_config.json", "model.safetensors.index.json"};

void prepare_directory(const fs::path& dir, bool force) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    if (!fs::create_directories(dir, ec) && ec)
      throw std::runtime_error(
          fmt::format("{}: cannot create the output directory: {}", dir.string(), ec.message()));
    return;
  }
  if (!fs::is_directory(dir))
    throw std::runtime_error(dir.string() + ": exists and is not a directory");
  if (fs::is_empty(dir)) return;
  if (!force)
    throw std::runtime_error(
        dir.string() + ": directory is not empty (pass --force to overwrite the model in it)");
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    bool own = is_shard_name(name) ||
               std::find(std::begin(kOwnFiles), std::end(kOwnFiles), name) != std::end(kOwnFiles);
    if (own && e.is_regular_file()) fs::remove(e.path());
  }
}

}  // namespace

GenPreset parse_gen_preset(std::string_view name) {
  if (name == "tiny") return GenPreset::tiny;
  if (name == "mini") return GenPreset::mini;
  throw std::invalid_argument(fmt::format("unknown preset '{}' (expected tiny or mini)", name));
}

GenDtype parse_gen_dtype(std::string_view name) {
  if (name == "fp8") return GenDtype::fp8;
  if (name == "bf16") return GenDtype::bf16;
  throw std::invalid_argument(fmt::format("unknown dtype '{}' (expected fp8 or bf16)", name));
}

GenArch parse_gen_arch(std::string_view name) {
  if (name == "v32") return GenArch::v32;
  if (name == "v3") return GenArch::v3;
  throw std::invalid_argument(fmt::format("unknown arch '{}' (expected v32 or v3)", name));
}

std::string_view gen_preset_name(GenPreset preset) {
  return preset == GenPreset::tiny ? "tiny" : "mini";
}

json gen_model_config_json(GenPreset preset, GenArch arch, GenDtype dtype) {
  const PresetDims d = preset_dims(preset);
  const bool v32 = arch == GenArch::v32;
  json j = {
      {"architectures", {v32 ? "DeepseekV32ForCausalLM" : "DeepseekV3ForCausalLM"}},
      {"model_type", v32 ? "deepseek_v32" : "deepseek_v3"},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"bos_token_id", 0},
      {"eos_token_id", 1},
      {"ep_size", 1},
      {"first_k_dense_replace", d.first_dense},
      {"hidden_act", "silu"},
      {"hidden_size", d.hidden},
      {"initializer_range", 0.02},
      {"intermediate_size", d.dense_width},
      {"kv_lora_rank", d.kv_lora},
      {"max_position_embeddings", d.max_positions},
      {"moe_intermediate_size", d.moe_width},
      {"moe_layer_freq", 1},
      {"n_group", d.n_group},
      {"n_routed_experts", d.experts},
      {"n_shared_experts", d.shared_experts},
      {"norm_topk_prob", true},
      {"num_attention_heads", d.heads},
      {"num_experts_per_tok", d.experts_per_tok},
      {"num_hidden_layers", d.layers},
      {"num_key_value_heads", d.heads},
      {"num_nextn_predict_layers", 1},
      {"q_lora_rank", d.q_lora},
      {"qk_nope_head_dim", d.qk_nope},
      {"qk_rope_head_dim", d.qk_rope},
      {"rms_norm_eps", 1e-6},
      {"rope_scaling",
       {{"beta_fast", 32},
        {"beta_slow", 1},
        {"factor", 40},
        {"mscale", 1.0},
        {"mscale_all_dim", 1.0},
        {"original_max_position_embeddings", d.yarn_original},
        {"type", "yarn"}}},
      {"rope_theta", 10000},
      {"routed_scaling_factor", 2.5},
      {"scoring_func", "sigmoid"},
      {"tie_word_embeddings", false},
      {"topk_group", d.topk_group},
      {"topk_method", "noaux_tc"},
      {"torch_dtype", "bfloat16"},
      {"use_cache", true},
      {"v_head_dim", d.v_head},
      {"vocab_size", d.vocab},
  };
  if (v32) {
    j["index_head_dim"] = 128;  // structural: one FP8 block per indexer head (spec §3.2)
    j["index_n_heads"] = d.index_heads;
    j["index_topk"] = d.index_topk;
  }
  if (dtype == GenDtype::fp8)
    j["quantization_config"] = {{"activation_scheme", "dynamic"},
                                {"fmt", "e4m3"},
                                {"quant_method", "fp8"},
                                {"scale_fmt", "ue8m0"},
                                {"weight_block_size", {128, 128}}};
  return j;
}

std::vector<NamedTensor> gen_model_tensors(const ModelConfig& config, GenDtype dtype,
                                           uint64_t seed) {
  std::vector<TensorPlan> plans;
  for (const ExpectedTensor& t : checkpoint_schema(config, config.num_nextn_predict_layers))
    plans.push_back(plan_tensor(config, t, dtype));

  std::vector<NamedTensor> out;
  std::vector<size_t> weight_index(plans.size()), scale_index(plans.size(), SIZE_MAX);
  std::vector<Block> blocks;
  for (size_t i = 0; i < plans.size(); ++i) {
    const TensorPlan& p = plans[i];
    weight_index[i] = out.size();
    out.push_back({p.name, Tensor::empty(p.dtype, p.shape)});
    if (p.dtype == DType::fp8_e4m3) {
      scale_index[i] = out.size();
      out.push_back({scale_inv_name(p.name), Tensor::empty(DType::f32, scale_inv_shape(p.shape))});
    }
    const int64_t rows = p.shape.size() == 1 ? 1 : p.shape[0];
    for (int64_t r = 0; r < rows; r += kFp8BlockSize)
      blocks.push_back({i, r, std::min(rows, r + kFp8BlockSize)});
  }
  parallel_for(int64_t(blocks.size()), 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      const Block& blk = blocks[size_t(b)];
      Tensor none;
      Tensor& scale =
          scale_index[blk.tensor] == SIZE_MAX ? none : out[scale_index[blk.tensor]].tensor;
      fill_block(plans[blk.tensor], out[weight_index[blk.tensor]].tensor, scale, blk, seed);
    }
  });
  return out;
}

GenModelResult generate_model(const GenModelOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (options.output_dir.empty())
    throw std::invalid_argument("gen-model: no output directory given (-o DIR)");
  if (!(options.shard_mb >= 0) || !std::isfinite(options.shard_mb))
    throw std::invalid_argument(fmt::format(
        "gen-model: --shard-mb {} must be >= 0 (0: the preset's default)", options.shard_mb));
  const PresetDims dims = preset_dims(options.preset);
  const fs::path dir(options.output_dir);

  // Everything that can fail on its own is computed before the directory is touched.
  const json config_json = gen_model_config_json(options.preset, options.arch, options.dtype);
  const ModelConfig config = parse_config(config_json, (dir / "config.json").string());
  const GenTokenizer tokenizer = build_gen_tokenizer(dims.vocab);
  if (tokenizer.size() != config.vocab_size)
    throw std::logic_error("gen-model: tokenizer size differs from vocab_size");

  prepare_directory(dir, options.force);
  GenModelResult result;
  std::vector<NamedTensor> tensors = gen_model_tensors(config, options.dtype, options.seed);
  const double shard_mb = options.shard_mb > 0 ? options.shard_mb : dims.default_shard_mb;
  result.shards =
      write_sharded_checkpoint(dir.string(), tensors, size_t(std::ceil(shard_mb * (1 << 20))));
  for (const NamedTensor& t : tensors) {
    result.tensor_bytes += t.tensor.nbytes();
    if (!ends_with(t.name, "_scale_inv")) result.parameters += t.tensor.numel();
  }
  result.num_tensors = tensors.size();
  tensors.clear();

  const json generation = {{"_from_model_config", true},
                           {"bos_token_id", config.bos_token_id},
                           {"eos_token_id", config.eos_token_ids.front()},
                           {"do_sample", true},
                           {"temperature", 0.6},
                           {"top_p", 0.95}};
  write_text(dir / "config.json", config_json.dump(2) + "\n");
  write_text(dir / "generation_config.json", generation.dump(2) + "\n");
  write_text(dir / "tokenizer.json", gen_tokenizer_json(tokenizer));
  write_text(
      dir / "tokenizer_config.json",
      gen_tokenizer_config_json(tokenizer, std::min(config.max_position_embeddings, 131072)));

  result.files = {"config.json", "generation_config.json", "tokenizer.json",
                  "tokenizer_config.json", "model.safetensors.index.json"};
  result.files.insert(result.files.end(), result.shards.begin(), result.shards.end());
  for (const std::string& f : result.files) result.file_bytes += fs::file_size(dir / f);
  result.config = load_config((dir / "config.json").string());
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace dsinfer

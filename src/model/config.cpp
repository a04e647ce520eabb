#include "model/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numbers>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace dsinfer {
namespace {

using nlohmann::json;

// Generous limits that only exist so an absurd value is an error instead of a huge allocation.
constexpr int kMaxWidth = 1 << 20;    // hidden / MLP widths, LoRA ranks
constexpr int kMaxHeadDim = 1 << 12;  // per-head widths
constexpr int kMaxCount = 1 << 16;    // heads, experts, layers
constexpr int kMaxTokens = 1 << 30;   // vocabulary, positions, top-k

// Reads typed fields of one JSON object; every error names the source file and the field.
class FieldReader {
 public:
  FieldReader(const json& object, const std::string& source, std::string prefix = "")
      : object_(object), source_(source), prefix_(std::move(prefix)) {}

  [[noreturn]] void fail(std::string_view key, std::string_view problem) const {
    throw std::runtime_error(fmt::format("{}: field '{}{}': {}", source_, prefix_, key, problem));
  }
  // Absent and null both count as "not given" for optional fields, as in the HF config classes.
  bool given(const char* key) const {
    auto it = object_.find(key);
    return it != object_.end() && !it->is_null();
  }
  // For fields that must be written out even though null is a valid value.
  void require_present(const char* key) const {
    if (!object_.contains(key)) fail(key, "is required but missing");
  }
  const json& get(const char* key) const {
    auto it = object_.find(key);
    if (it == object_.end()) fail(key, "is required but missing");
    if (it->is_null()) fail(key, "is required but null");
    return *it;
  }

  int integer(const char* key, int min, int max) const { return as_int(key, get(key), min, max); }
  int integer_or(const char* key, int fallback, int min, int max) const {
    return given(key) ? integer(key, min, max) : fallback;
  }
  double number(const char* key, double min, double max) const {
    const json& v = get(key);
    if (!v.is_number()) fail(key, fmt::format("must be a number, got {}", v.dump()));
    double d = v.get<double>();
    if (!std::isfinite(d) || d < min || d > max)
      fail(key, fmt::format("{} is outside [{}, {}]", d, min, max));
    return d;
  }
  double number_or(const char* key, double fallback, double min, double max) const {
    return given(key) ? number(key, min, max) : fallback;
  }
  bool boolean_or(const char* key, bool fallback) const {
    if (!given(key)) return fallback;
    const json& v = get(key);
    if (!v.is_boolean()) fail(key, fmt::format("must be true or false, got {}", v.dump()));
    return v.get<bool>();
  }
  std::string string(const char* key) const {
    const json& v = get(key);
    if (!v.is_string()) fail(key, fmt::format("must be a string, got {}", v.dump()));
    return v.get<std::string>();
  }
  std::string string_or(const char* key, const std::string& fallback) const {
    return given(key) ? string(key) : fallback;
  }
  // Reads a value in [min, max]; `key` is only used in the error message.
  int as_int(std::string_view key, const json& v, int min, int max) const {
    if (!v.is_number_integer()) fail(key, fmt::format("must be an integer, got {}", v.dump()));
    // Unsigned JSON integers above INT64_MAX must not wrap into range.
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(max))
      fail(key, fmt::format("{} is outside [{}, {}]", v.dump(), min, max));
    int64_t i = v.get<int64_t>();
    if (i < min || i > max) fail(key, fmt::format("{} is outside [{}, {}]", i, min, max));
    return int(i);
  }
  const std::string& source() const { return source_; }

 private:
  const json& object_;
  const std::string& source_;
  std::string prefix_;
};

std::string read_architecture(const FieldReader& r) {
  const json& archs = r.get("architectures");
  if (!archs.is_array() || archs.size() != 1 || !archs[0].is_string())
    r.fail("architectures", fmt::format("must be a list of one string, got {}", archs.dump()));
  std::string arch = archs[0].get<std::string>();
  if (arch != "DeepseekV32ForCausalLM" && arch != "DeepseekV3ForCausalLM")
    r.fail("architectures", fmt::format("unsupported architecture '{}' (supported: "
                                        "DeepseekV32ForCausalLM, DeepseekV3ForCausalLM)",
                                        arch));
  return arch;
}

std::optional<YarnScaling> read_rope_scaling(const FieldReader& r, const json& root) {
  if (!r.given("rope_scaling")) return std::nullopt;
  const json& obj = root.at("rope_scaling");
  if (!obj.is_object())
    r.fail("rope_scaling", fmt::format("must be an object, got {}", obj.dump()));
  FieldReader s(obj, r.source(), "rope_scaling.");
  // Older HF configs spell the kind `type`, newer ones `rope_type`.
  const char* type_key = s.given("rope_type") ? "rope_type" : "type";
  std::string type = s.string(type_key);
  if (type != "yarn")
    s.fail(type_key, fmt::format("unsupported RoPE scaling '{}' (only \"yarn\")", type));
  YarnScaling y;
  y.factor = s.number("factor", 1e-3, 1e6);
  y.original_max_position_embeddings = s.integer("original_max_position_embeddings", 1, kMaxTokens);
  y.beta_fast = s.number_or("beta_fast", y.beta_fast, 1e-6, 1e6);
  y.beta_slow = s.number_or("beta_slow", y.beta_slow, 1e-6, 1e6);
  if (y.beta_slow > y.beta_fast)
    s.fail("beta_slow", fmt::format("{} exceeds beta_fast {}", y.beta_slow, y.beta_fast));
  y.mscale = s.number_or("mscale", y.mscale, 0, 1e6);
  y.mscale_all_dim = s.number_or("mscale_all_dim", y.mscale_all_dim, 0, 1e6);
  return y;
}

Fp8Quantization read_fp8(const FieldReader& q, const json& obj) {
  std::string method = q.string("quant_method");
  if (method != "fp8")
    q.fail("quant_method",
           fmt::format("unsupported '{}' (only \"fp8\" or \"compressed-tensors\")", method));
  std::string format = q.string_or("fmt", "e4m3");
  if (format != "e4m3") q.fail("fmt", fmt::format("unsupported '{}' (only \"e4m3\")", format));
  std::string activations = q.string_or("activation_scheme", "dynamic");
  if (activations != "dynamic")
    q.fail("activation_scheme", fmt::format("unsupported '{}' (only \"dynamic\")", activations));
  Fp8Quantization f;
  if (q.given("weight_block_size")) {
    const json& block = obj.at("weight_block_size");
    if (!block.is_array() || block.size() != 2)
      q.fail("weight_block_size", fmt::format("must be [out, in], got {}", block.dump()));
    f.weight_block_out = q.as_int("weight_block_size[0]", block[0], 1, kMaxWidth);
    f.weight_block_in = q.as_int("weight_block_size[1]", block[1], 1, kMaxWidth);
    // The kernels and the indexer's FP8 block are built around 128 x 128 (spec §2, §3).
    if (f.weight_block_out != 128 || f.weight_block_in != 128)
      q.fail("weight_block_size", fmt::format("{} is unsupported (only [128, 128])", block.dump()));
  }
  if (q.given("scale_fmt")) {
    std::string scale_fmt = q.string("scale_fmt");
    if (scale_fmt != "ue8m0")
      q.fail("scale_fmt", fmt::format("unsupported '{}' (only \"ue8m0\" or absent)", scale_fmt));
    f.scale_fmt_ue8m0 = true;
  }
  return f;
}

std::vector<std::string> read_string_list(const FieldReader& r, const json& obj, const char* key) {
  std::vector<std::string> out;
  if (!r.given(key)) return out;
  const json& v = obj.at(key);
  if (!v.is_array()) r.fail(key, fmt::format("must be a list of strings, got {}", v.dump()));
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string())
      r.fail(fmt::format("{}[{}]", key, i), fmt::format("must be a string, got {}", v[i].dump()));
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

// One config group; `path` is its JSON path for messages. Every unsupported combination is an
// error naming the group and the field.
CompressedGroup read_compressed_group(const std::string& source, const std::string& path,
                                      const std::string& name, const json& obj,
                                      const std::string& default_format) {
  if (!obj.is_object())
    throw std::runtime_error(
        fmt::format("{}: field '{}': must be an object, got {}", source, path, obj.dump()));
  FieldReader g(obj, source, path + ".");
  CompressedGroup c;
  c.name = name;
  c.targets = read_string_list(g, obj, "targets");
  if (c.targets.empty()) g.fail("targets", "must list at least one target");
  for (size_t i = 0; i < c.targets.size(); ++i) {
    const std::string& t = c.targets[i];
    // Class names other than Linear would need the module tree (not in a checkpoint).
    if (t != "Linear" && !t.starts_with("re:") && t.find('.') == std::string::npos)
      g.fail(
          fmt::format("targets[{}]", i),
          fmt::format("unsupported target '{}' (\"Linear\", a module name or \"re:\" pattern)", t));
  }
  c.format = g.string_or("format", default_format);
  const json& w = g.get("weights");
  if (!w.is_object()) g.fail("weights", fmt::format("must be an object, got {}", w.dump()));
  FieldReader wr(w, source, path + ".weights.");
  const std::string type = wr.string_or("type", "int");
  c.num_bits = wr.integer("num_bits", 1, 64);
  c.symmetric = wr.boolean_or("symmetric", true);
  if (wr.boolean_or("dynamic", false)) wr.fail("dynamic", "dynamic weight scales are meaningless");
  if (wr.given("actorder")) {  // compressed-tensors ActivationOrdering (booleans: group / none)
    const json& a = w.at("actorder");
    if (a.is_boolean()) {
      c.actorder_group = a.get<bool>();
    } else if (a.is_string()) {
      std::string v = a.get<std::string>();
      std::transform(v.begin(), v.end(), v.begin(),
                     [](unsigned char ch) { return std::tolower(ch); });
      if (v == "group" || v == "dynamic")
        c.actorder_group = true;
      else if (v != "weight" && v != "static")
        wr.fail("actorder", fmt::format("unknown '{}' (group, weight, dynamic, static, a boolean "
                                        "or null)",
                                        a.get<std::string>()));
    } else if (!a.is_null()) {
      wr.fail("actorder", fmt::format("must be a string, a boolean or null, got {}", a.dump()));
    }
  }
  const std::string strategy = wr.string("strategy");
  if (c.actorder_group && strategy != "group")
    wr.fail("actorder", fmt::format("group activation ordering needs strategy \"group\", got "
                                    "'{}'",
                                    strategy));
  if (c.actorder_group && type != "int")
    wr.fail("actorder", "group activation ordering applies to int weights only");
  if (type == "int") {
    if (c.num_bits != 4 && c.num_bits != 8)
      wr.fail("num_bits", fmt::format("{} is unsupported for int weights (4 or 8)", c.num_bits));
    if (strategy == "group") {
      c.group_size = wr.integer("group_size", 1, kMaxWidth);
    } else if (strategy != "channel") {
      wr.fail("strategy",
              fmt::format("unsupported '{}' for int weights (group or channel)", strategy));
    }
    const bool packed = c.format == "pack-quantized";
    if (!packed && c.format != "int-quantized" && c.format != "naive-quantized")
      g.fail("format", fmt::format("'{}' does not store int weights (pack-quantized, "
                                   "int-quantized or naive-quantized)",
                                   c.format));
    if (!packed && c.num_bits != 8)
      g.fail("format", fmt::format("'{}' stores 8-bit codes, but weights.num_bits is {}", c.format,
                                   c.num_bits));
  } else if (type == "float") {
    c.is_float = true;
    if (!c.symmetric) wr.fail("symmetric", "asymmetric FP8 weights are not supported");
    if (c.num_bits != 8) wr.fail("num_bits", fmt::format("{} is unsupported (8)", c.num_bits));
    if (c.format != "float-quantized" && c.format != "naive-quantized")
      g.fail("format", fmt::format("'{}' does not store FP8 weights (float-quantized)", c.format));
    const json* block = w.contains("block_structure") ? &w.at("block_structure") : nullptr;
    if (strategy != "block" || !block || *block != json::array({128, 128}))
      wr.fail(strategy != "block" ? "strategy" : "block_structure",
              "FP8 weights are supported with strategy \"block\" and block_structure [128, 128]");
  } else {
    wr.fail("type", fmt::format("unsupported '{}' (int or float)", type));
  }
  if (g.given("input_activations")) {
    const json& a = obj.at("input_activations");
    if (!a.is_object())
      g.fail("input_activations", fmt::format("must be an object or null, got {}", a.dump()));
    FieldReader ar(a, source, path + ".input_activations.");
    const std::string atype = ar.string_or("type", "int");
    const int abits = ar.integer("num_bits", 1, 64);
    const std::string astrategy = ar.string("strategy");
    if (!ar.boolean_or("dynamic", false))
      ar.fail("dynamic", "static activation scales are not supported (dynamic: true)");
    if (!c.is_float && atype == "int" && abits == 8 && astrategy == "token") {
      c.int8_activations = true;
    } else if (c.is_float && atype == "float" && abits == 8 && astrategy == "group" &&
               ar.integer_or("group_size", 128, 1, kMaxWidth) == 128) {
      c.fp8_activations = true;
    } else {
      g.fail("input_activations",
             fmt::format("unsupported {} {}-bit '{}' activations with {}-bit {} weights "
                         "(supported: int8 per token with int weights, fp8 group 128 with FP8 "
                         "weights)",
                         atype, abits, astrategy, c.num_bits, type));
    }
  }
  if (g.given("output_activations")) g.fail("output_activations", "is not supported");
  return c;
}

CompressedTensors read_compressed_tensors(const FieldReader& q, const json& obj) {
  const std::string& source = q.source();
  const std::string status = q.string_or("quantization_status", "compressed");
  if (status != "compressed")
    q.fail("quantization_status",
           fmt::format("'{}' is unsupported: the weights must be stored compressed", status));
  if (q.given("sparsity_config") && !obj.at("sparsity_config").empty())
    q.fail("sparsity_config", "sparse checkpoints are not supported");
  if (q.given("kv_cache_scheme")) q.fail("kv_cache_scheme", "is not supported");
  const std::string format = q.string_or("format", "");
  CompressedTensors ct;
  ct.ignore = read_string_list(q, obj, "ignore");
  const json& groups = q.get("config_groups");
  if (!groups.is_object() || groups.empty())
    q.fail("config_groups", fmt::format("must be a non-empty object, got {}", groups.dump()));
  for (auto it = groups.begin(); it != groups.end(); ++it)
    ct.groups.push_back(read_compressed_group(
        source, "quantization_config.config_groups." + it.key(), it.key(), it.value(), format));
  return ct;
}

void read_quantization(const FieldReader& r, const json& root, ModelConfig& c) {
  if (!r.given("quantization_config")) return;
  const json& obj = root.at("quantization_config");
  if (!obj.is_object())
    r.fail("quantization_config", fmt::format("must be an object, got {}", obj.dump()));
  FieldReader q(obj, r.source(), "quantization_config.");
  if (q.string("quant_method") == "compressed-tensors")
    c.compressed = read_compressed_tensors(q, obj);
  else
    c.quantization = read_fp8(q, obj);
}

std::vector<int> read_eos(const FieldReader& r, const json& root, int vocab) {
  if (!r.given("eos_token_id")) return {1};
  const json& v = root.at("eos_token_id");
  std::vector<int> ids;
  if (v.is_array()) {
    if (v.empty()) r.fail("eos_token_id", "is an empty list");
    for (size_t i = 0; i < v.size(); ++i)
      ids.push_back(r.as_int(fmt::format("eos_token_id[{}]", i), v[i], 0, vocab - 1));
  } else {
    ids.push_back(r.as_int("eos_token_id", v, 0, vocab - 1));
  }
  return ids;
}

// Rules that tie several fields together; every later stage relies on them.
void check_consistency(const FieldReader& r, const ModelConfig& c) {
  if (c.qk_rope_head_dim % 2 != 0)
    r.fail("qk_rope_head_dim", fmt::format("{} is odd; RoPE rotates pairs", c.qk_rope_head_dim));
  bool any_moe = false;
  for (int l = 0; l < c.num_stored_layers(); ++l) any_moe |= c.is_moe_layer(l);
  if (any_moe) {
    if (c.n_routed_experts % c.n_group != 0)
      r.fail("n_routed_experts",
             fmt::format("{} is not divisible by n_group {}", c.n_routed_experts, c.n_group));
    if (c.topk_group > c.n_group)
      r.fail("topk_group", fmt::format("{} exceeds n_group {}", c.topk_group, c.n_group));
    const int64_t per_group = c.n_routed_experts / c.n_group;
    // A group's score is the sum of its two best experts (spec §3.5).
    if (c.n_group > 1 && per_group < 2)
      r.fail("n_group", fmt::format("{} groups of {} routed experts leave fewer than 2 per group",
                                    c.n_group, c.n_routed_experts));
    if (c.num_experts_per_tok > c.topk_group * per_group)
      r.fail("num_experts_per_tok",
             fmt::format("{} exceeds the {} experts in the topk_group={} kept groups",
                         c.num_experts_per_tok, c.topk_group * per_group, c.topk_group));
  }
  if (c.has_indexer) {
    if (c.index_head_dim != 128)
      r.fail("index_head_dim", fmt::format("{} is unsupported; the indexer works on one 128-wide "
                                           "FP8 block per head",
                                           c.index_head_dim));
    if (c.qk_rope_head_dim > c.index_head_dim)
      r.fail("qk_rope_head_dim",
             fmt::format("{} exceeds index_head_dim {}", c.qk_rope_head_dim, c.index_head_dim));
    if (!c.has_q_lora())
      r.fail("q_lora_rank", "is null, but the indexer (DeepseekV32ForCausalLM) reads the q LoRA");
  }
  if (c.bos_token_id >= c.vocab_size)
    r.fail("bos_token_id",
           fmt::format("{} is not below vocab_size {}", c.bos_token_id, c.vocab_size));
}

}  // namespace

ModelConfig parse_config(const json& root, const std::string& source_name) {
  if (!root.is_object()) throw std::runtime_error(source_name + ": config must be a JSON object");
  FieldReader r(root, source_name);
  ModelConfig c;
  c.architecture = read_architecture(r);
  c.has_indexer = c.architecture == "DeepseekV32ForCausalLM";

  c.vocab_size = r.integer("vocab_size", 1, kMaxTokens);
  c.hidden_size = r.integer("hidden_size", 1, kMaxWidth);
  c.num_hidden_layers = r.integer("num_hidden_layers", 1, kMaxCount);
  c.num_nextn_predict_layers = r.integer_or("num_nextn_predict_layers", 0, 0, kMaxCount);
  c.first_k_dense_replace = r.integer("first_k_dense_replace", 0, c.num_hidden_layers);
  c.moe_layer_freq = r.integer_or("moe_layer_freq", 1, 1, kMaxCount);

  // A size only has to be given when some layer uses it. Which layers are MoE follows from their
  // position alone, so a missing n_routed_experts cannot silently turn MoE layers dense.
  bool any_dense = false, any_moe = false;
  for (int l = 0; l < c.num_stored_layers(); ++l) {
    bool moe_position = l >= c.first_k_dense_replace && l % c.moe_layer_freq == 0;
    (moe_position ? any_moe : any_dense) = true;
  }
  auto size_if = [&](bool needed, const char* key, int min, int max) {
    return needed || r.given(key) ? r.integer(key, min, max) : 0;
  };
  c.intermediate_size = size_if(any_dense, "intermediate_size", 1, kMaxWidth);
  c.moe_intermediate_size = size_if(any_moe, "moe_intermediate_size", 1, kMaxWidth);
  c.n_routed_experts = size_if(any_moe, "n_routed_experts", 1, kMaxCount);
  c.num_experts_per_tok =
      size_if(any_moe, "num_experts_per_tok", 1, std::max(1, c.n_routed_experts));
  if (any_moe) r.require_present("n_shared_experts");  // must be present; null means "none"
  c.n_shared_experts = r.integer_or("n_shared_experts", 0, 0, kMaxCount);
  c.n_group = r.integer_or("n_group", 1, 1, kMaxCount);
  c.topk_group = r.integer_or("topk_group", 1, 1, kMaxCount);
  c.routed_scaling_factor = r.number_or("routed_scaling_factor", 1.0, 0, 1e6);
  c.scoring_func = r.string_or("scoring_func", "sigmoid");
  if (c.scoring_func != "sigmoid")
    r.fail("scoring_func", fmt::format("unsupported '{}' (only \"sigmoid\")", c.scoring_func));
  c.topk_method = r.string_or("topk_method", "noaux_tc");
  if (c.topk_method != "noaux_tc")
    r.fail("topk_method", fmt::format("unsupported '{}' (only \"noaux_tc\")", c.topk_method));
  c.norm_topk_prob = r.boolean_or("norm_topk_prob", true);
  std::string act = r.string_or("hidden_act", "silu");
  if (act != "silu") r.fail("hidden_act", fmt::format("unsupported '{}' (only \"silu\")", act));
  if (r.boolean_or("attention_bias", false)) r.fail("attention_bias", "true is unsupported");

  c.num_attention_heads = r.integer("num_attention_heads", 1, kMaxCount);
  r.require_present("q_lora_rank");  // must be present; null means "no q LoRA"
  c.q_lora_rank = r.integer_or("q_lora_rank", 0, 1, kMaxWidth);
  c.kv_lora_rank = r.integer("kv_lora_rank", 1, kMaxWidth);
  c.qk_nope_head_dim = r.integer("qk_nope_head_dim", 1, kMaxHeadDim);
  c.qk_rope_head_dim = r.integer("qk_rope_head_dim", 2, kMaxHeadDim);
  c.v_head_dim = r.integer("v_head_dim", 1, kMaxHeadDim);

  if (c.has_indexer) {
    c.index_n_heads = r.integer("index_n_heads", 1, kMaxCount);
    c.index_head_dim = r.integer("index_head_dim", 1, kMaxHeadDim);
    c.index_topk = r.integer("index_topk", 1, kMaxTokens);
    c.indexer_rope_interleave = r.boolean_or("indexer_rope_interleave", false);
  }

  c.rms_norm_eps = r.number_or("rms_norm_eps", 1e-6, 1e-30, 1);
  c.rope_theta = r.number_or("rope_theta", 10000.0, 1.0 + 1e-9, 1e12);
  c.rope_scaling = read_rope_scaling(r, root);
  c.max_position_embeddings = r.integer_or("max_position_embeddings", 4096, 1, kMaxTokens);
  read_quantization(r, root, c);
  c.bos_token_id = r.integer_or("bos_token_id", 0, 0, kMaxTokens);
  c.eos_token_ids = read_eos(r, root, c.vocab_size);
  c.tie_word_embeddings = r.boolean_or("tie_word_embeddings", false);

  check_consistency(r, c);
  return c;
}

ModelConfig load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open config");
  std::stringstream text;
  text << in.rdbuf();
  json root;
  try {
    root = json::parse(text.str());
  } catch (const json::parse_error& e) {
    throw std::runtime_error(path + ": invalid JSON: " + e.what());
  }
  return parse_config(root, path);
}

double ModelConfig::softmax_scale() const {
  double m = 1.0;
  if (rope_scaling && rope_scaling->factor > 1.0 && rope_scaling->mscale_all_dim != 0.0)
    m = 0.1 * rope_scaling->mscale_all_dim * std::log(rope_scaling->factor) + 1.0;
  return m * m / std::sqrt(double(qk_nope_head_dim + qk_rope_head_dim));
}

std::vector<float> ModelConfig::rope_inv_freq() const {
  const int dim = qk_rope_head_dim;
  const int half = dim / 2;
  std::vector<double> freq(half);
  for (int i = 0; i < half; ++i) freq[i] = std::pow(rope_theta, -2.0 * i / dim);
  if (rope_scaling) {
    const YarnScaling& y = *rope_scaling;
    // The dimension whose wavelength completes `rotations` turns over the original context.
    auto correction_dim = [&](double rotations) {
      return dim *
             std::log(y.original_max_position_embeddings / (rotations * 2 * std::numbers::pi)) /
             (2 * std::log(rope_theta));
    };
    double low = std::max(std::floor(correction_dim(y.beta_fast)), 0.0);
    double high = std::min(std::ceil(correction_dim(y.beta_slow)), double(dim - 1));
    if (low == high) high += 0.001;  // avoids 0/0 in the ramp
    for (int i = 0; i < half; ++i) {
      double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
      freq[i] = freq[i] / y.factor * ramp + freq[i] * (1 - ramp);
    }
  }
  return std::vector<float>(freq.begin(), freq.end());
}

bool ModelConfig::is_moe_layer(int layer) const {
  return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
}

bool ModelConfig::is_eos(int token) const {
  return std::find(eos_token_ids.begin(), eos_token_ids.end(), token) != eos_token_ids.end();
}

namespace {

// compressed-tensors' rule: an exact module name, or "re:" + a pattern matched (Python re.match)
// from the start of the name; "Linear" is every projection's class.
bool target_matches(const std::string& target, const std::string& module) {
  if (target == "Linear") return true;
  if (!target.starts_with("re:")) return target == module;
  thread_local std::map<std::string, std::regex> compiled;
  auto it = compiled.find(target);
  if (it == compiled.end()) {
    try {
      it = compiled.emplace(target, std::regex(target.substr(3), std::regex::ECMAScript)).first;
    } catch (const std::regex_error& e) {
      throw std::runtime_error(fmt::format(
          "quantization_config: target '{}' is not a valid pattern: {}", target, e.what()));
    }
  }
  return std::regex_search(module, it->second, std::regex_constants::match_continuous);
}

}  // namespace

const CompressedGroup* CompressedTensors::group_for(const std::string& module) const {
  for (const std::string& i : ignore)
    if (i != "Linear" && target_matches(i, module)) return nullptr;
  const CompressedGroup* found = nullptr;
  for (const CompressedGroup& g : groups)
    for (const std::string& t : g.targets)
      if (target_matches(t, module)) {
        if (found && found != &g)
          throw std::runtime_error(fmt::format(
              "quantization_config: module '{}' is targeted by both config group '{}' and '{}'",
              module, found->name, g.name));
        found = &g;
      }
  return found;
}

}  // namespace dsinfer

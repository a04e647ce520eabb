#include "model/checkpoint.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>
#include <string_view>

#include "core/log.h"
#include "core/thread_pool.h"

namespace dsinfer {

// The schema is written once, as the walk in CheckpointWeights::bind; a binder decides what a
// step does: record the expected tensor (schema) or fetch it into the weights (load).
class WeightBinder {
 public:
  virtual ~WeightBinder() = default;
  virtual void linear(const std::string& name, std::vector<int64_t> shape, LinearWeight& dst,
                      bool optional = false) = 0;
  virtual void param(const std::string& name, std::vector<int64_t> shape, Tensor& dst,
                     bool optional = false) = 0;
};

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

void bind_mlp(const std::string& prefix, int64_t hidden, int64_t width, MlpWeights& w,
              WeightBinder& b) {
  b.linear(prefix + "gate_proj.weight", {width, hidden}, w.gate_proj);
  b.linear(prefix + "up_proj.weight", {width, hidden}, w.up_proj);
  b.linear(prefix + "down_proj.weight", {hidden, width}, w.down_proj);
}

void bind_attention(const ModelConfig& c, const std::string& prefix, AttentionWeights& w,
                    WeightBinder& b) {
  const int64_t hidden = c.hidden_size, heads = c.num_attention_heads;
  const int64_t q_width = heads * (c.qk_nope_head_dim + c.qk_rope_head_dim);
  if (c.has_q_lora()) {
    b.linear(prefix + "q_a_proj.weight", {c.q_lora_rank, hidden}, w.q_a_proj);
    b.param(prefix + "q_a_layernorm.weight", {c.q_lora_rank}, w.q_a_layernorm);
    b.linear(prefix + "q_b_proj.weight", {q_width, c.q_lora_rank}, w.q_b_proj);
  } else {
    b.linear(prefix + "q_proj.weight", {q_width, hidden}, w.q_proj);
  }
  b.linear(prefix + "kv_a_proj_with_mqa.weight", {c.kv_lora_rank + c.qk_rope_head_dim, hidden},
           w.kv_a_proj_with_mqa);
  b.param(prefix + "kv_a_layernorm.weight", {c.kv_lora_rank}, w.kv_a_layernorm);
  b.linear(prefix + "kv_b_proj.weight",
           {heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank}, w.kv_b_proj);
  b.linear(prefix + "o_proj.weight", {hidden, heads * c.v_head_dim}, w.o_proj);
  if (c.has_indexer) {
    IndexerWeights& ix = w.indexer.emplace();
    const std::string p = prefix + "indexer.";
    b.linear(p + "wq_b.weight", {int64_t(c.index_n_heads) * c.index_head_dim, c.q_lora_rank},
             ix.wq_b);
    b.linear(p + "wk.weight", {c.index_head_dim, hidden}, ix.wk);
    b.linear(p + "weights_proj.weight", {c.index_n_heads, hidden}, ix.weights_proj);
    b.param(p + "k_norm.weight", {c.index_head_dim}, ix.k_norm_weight);
    b.param(p + "k_norm.bias", {c.index_head_dim}, ix.k_norm_bias);
  }
}

void bind_layer(const ModelConfig& c, int layer, LayerWeights& w, WeightBinder& b) {
  const std::string prefix = fmt::format("model.layers.{}.", layer);
  const int64_t hidden = c.hidden_size;
  b.param(prefix + "input_layernorm.weight", {hidden}, w.input_layernorm);
  bind_attention(c, prefix + "self_attn.", w.attn, b);
  b.param(prefix + "post_attention_layernorm.weight", {hidden}, w.post_attention_layernorm);
  if (!c.is_moe_layer(layer)) {
    bind_mlp(prefix + "mlp.", hidden, c.intermediate_size, w.mlp.emplace(), b);
    return;
  }
  MoeWeights& moe = w.moe.emplace();
  const int64_t experts = c.n_routed_experts;
  b.param(prefix + "mlp.gate.weight", {experts, hidden}, moe.gate);
  b.param(prefix + "mlp.gate.e_score_correction_bias", {experts}, moe.e_score_correction_bias);
  moe.experts.resize(size_t(experts));
  for (int64_t e = 0; e < experts; ++e)
    bind_mlp(fmt::format("{}mlp.experts.{}.", prefix, e), hidden, c.moe_intermediate_size,
             moe.experts[size_t(e)], b);
  if (c.n_shared_experts > 0)
    bind_mlp(prefix + "mlp.shared_experts.", hidden,
             int64_t(c.n_shared_experts) * c.moe_intermediate_size, moe.shared_experts.emplace(),
             b);
}

void bind_mtp(const ModelConfig& c, int layer, MtpWeights& w, WeightBinder& b) {
  const std::string prefix = fmt::format("model.layers.{}.", layer);
  const int64_t hidden = c.hidden_size, vocab = c.vocab_size;
  b.param(prefix + "embed_tokens.weight", {vocab, hidden}, w.embed_tokens, /*optional=*/true);
  b.param(prefix + "enorm.weight", {hidden}, w.enorm);
  b.param(prefix + "hnorm.weight", {hidden}, w.hnorm);
  b.linear(prefix + "eh_proj.weight", {hidden, 2 * hidden}, w.eh_proj);
  bind_layer(c, layer, w.layer, b);
  b.param(prefix + "shared_head.norm.weight", {hidden}, w.shared_head_norm);
  b.linear(prefix + "shared_head.head.weight", {vocab, hidden}, w.shared_head_head);
}

// Records the schema.
class SchemaBinder final : public WeightBinder {
 public:
  std::vector<ExpectedTensor> tensors;
  void linear(const std::string& name, std::vector<int64_t> shape, LinearWeight&,
              bool optional) override {
    tensors.push_back({name, std::move(shape), WeightKind::linear, optional});
  }
  void param(const std::string& name, std::vector<int64_t> shape, Tensor&, bool optional) override {
    tensors.push_back({name, std::move(shape), WeightKind::param, optional});
  }
};

// compressed-tensors tensor names: "x.weight" -> "x.weight_packed", "x.weight_scale", ...
std::string ct_name(const std::string& weight_name, const char* suffix) {
  return weight_name + suffix;
}

// The zero points of an asymmetric pack-quantized weight: I32 words packed along the output
// dimension (compressed-tensors pack_to_int32 with packed_dim 0: row n of the weight in field
// n % (32 / bits) of word row n / (32 / bits), lowest bits first, offset by 2^(bits-1)), unpacked
// to signed int8 [out, groups].
Tensor unpack_zero_points(const Tensor& packed, int bits, int64_t out) {
  const int64_t groups = packed.size(1), per_word = 32 / bits;
  const uint32_t mask = (1u << bits) - 1, offset = 1u << (bits - 1);
  Tensor z = Tensor::empty(DType::i8, {out, groups});
  const uint32_t* p = reinterpret_cast<const uint32_t*>(packed.raw());
  for (int64_t n = 0; n < out; ++n)
    for (int64_t g = 0; g < groups; ++g) {
      const uint32_t field = (p[(n / per_word) * groups + g] >> (bits * (n % per_word))) & mask;
      z.data<int8_t>()[n * groups + g] = int8_t(int32_t(field) - int32_t(offset));
    }
  return z;
}

// Group activation ordering (docs/checkpoints.md): the columns of group g are those with
// g_idx == g, anywhere in the row. The codes are copied once, columns sorted by group (stable), so
// every kernel sees contiguous groups; perm[j] names the input that column j multiplies, and
// Model::linear gathers x the same way (vLLM's Marlin path sorts by g_idx likewise). Returns
// false (nothing copied) when g_idx already is the contiguous grouping.
bool group_columns(LinearWeight& w, const Tensor& g_idx) {
  const int64_t in = w.in, out = w.out;
  const int32_t* gi = g_idx.data<int32_t>();
  std::vector<int32_t> perm(static_cast<size_t>(in));
  for (int64_t k = 0; k < in; ++k) perm[size_t(k)] = int32_t(k);
  std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return gi[a] < gi[b]; });
  bool identity = true;
  for (int64_t k = 0; k < in; ++k) identity &= perm[size_t(k)] == k;
  if (identity) return false;
  const int bits = w.codes == DType::u4 ? 4 : 8;
  Tensor codes = Tensor::empty(w.w.dtype(), w.w.shape());
  if (w.w.dtype() == DType::i8) {  // int-quantized: one signed byte per column
    parallel_for(out, 16, [&](int64_t r0, int64_t r1, int) {
      for (int64_t r = r0; r < r1; ++r) {
        const int8_t* src = w.w.data<int8_t>() + r * in;
        int8_t* dst = codes.data<int8_t>() + r * in;
        for (int64_t j = 0; j < in; ++j) dst[j] = src[perm[size_t(j)]];
      }
    });
  } else {  // pack-quantized I32 words: 32 / bits fields each, lowest bits first
    const int per = 32 / bits;
    const int64_t words = w.w.size(1);
    const uint32_t mask = (1u << bits) - 1;
    parallel_for(out, 16, [&](int64_t r0, int64_t r1, int) {
      for (int64_t r = r0; r < r1; ++r) {
        const uint32_t* src = reinterpret_cast<const uint32_t*>(w.w.data<int32_t>()) + r * words;
        uint32_t* dst = reinterpret_cast<uint32_t*>(codes.data<int32_t>()) + r * words;
        std::fill(dst, dst + words, 0u);
        for (int64_t j = 0; j < in; ++j) {
          const int64_t k = perm[size_t(j)];
          const uint32_t field = (src[k / per] >> (bits * (k % per))) & mask;
          dst[j / per] |= field << (bits * (j % per));
        }
      }
    });
  }
  w.w = codes;
  w.perm = Tensor::empty(DType::i32, {in});
  std::copy(perm.begin(), perm.end(), w.perm.data<int32_t>());
  return true;
}

// Fetches views of tensors that check_checkpoint has already vetted.
class LoadBinder final : public WeightBinder {
 public:
  LoadBinder(const ModelConfig& config, const SafetensorsCheckpoint& ckpt)
      : config_(config), ckpt_(ckpt) {}
  size_t resident_bytes = 0;
  std::vector<CheckpointWeights::Fp8Weight> fp8;

  void linear(const std::string& name, std::vector<int64_t> shape, LinearWeight& dst,
              bool optional) override {
    const CompressedGroup* g = quantization_group(config_, name);
    if (g && !g->is_float) {
      if (optional && !ckpt_.has(ct_name(name, "_scale"))) return;
      const bool packed = g->format == "pack-quantized";
      fetch(packed ? ct_name(name, "_packed") : name, dst.w, false);
      fetch(ct_name(name, "_scale"), dst.scale, false);
      if (!g->symmetric) {
        Tensor zp;
        fetch(ct_name(name, "_zero_point"), zp, false);
        if (packed) {
          dst.zero = unpack_zero_points(zp, g->num_bits, shape[0]);
          resident_bytes += dst.zero.nbytes();
        } else {
          dst.zero = zp;
        }
      }
      dst.out = shape[0], dst.in = shape[1];
      dst.group = g->group_size ? g->group_size : dst.in;
      dst.codes = !packed ? DType::i8 : g->num_bits == 4 ? DType::u4 : DType::u8;
      dst.int8_activations = g->int8_activations;
      if (g->actorder_group) {
        const Tensor gidx = ckpt_.get(ct_name(name, "_g_idx"));
        if (group_columns(dst, gidx)) resident_bytes += dst.w.nbytes() + dst.perm.nbytes();
      }
      return;
    }
    if (!fetch(name, dst.w, optional)) return;
    if (!dst.is_fp8()) return;
    fetch(g ? ct_name(name, "_scale") : scale_inv_name(name), dst.scale_inv, false);
    const size_t at = name.find(".mlp.experts.");
    const int64_t expert = at == std::string::npos ? -1 : std::stoll(name.substr(at + 13));
    fp8.push_back({name, ckpt_.info(name)->file, dst.w, expert});
  }
  void param(const std::string& name, std::vector<int64_t>, Tensor& dst, bool optional) override {
    fetch(name, dst, optional);
  }

 private:
  bool fetch(const std::string& name, Tensor& dst, bool optional) {
    if (optional && !ckpt_.has(name)) return false;
    dst = ckpt_.get(name);
    resident_bytes += dst.nbytes();
    return true;
  }
  const ModelConfig& config_;
  const SafetensorsCheckpoint& ckpt_;
};

std::string_view allowed_dtypes(WeightKind kind) {
  return kind == WeightKind::linear ? "F32, BF16, F16 or F8_E4M3" : "F32, BF16 or F16";
}
bool dtype_allowed(WeightKind kind, DType t) {
  return t == DType::f32 || t == DType::bf16 || t == DType::f16 ||
         (kind == WeightKind::linear && t == DType::fp8_e4m3);
}

// Collects problems, keeping only the first `cap` messages of each sort.
class Problems {
 public:
  Problems(CheckpointReport& report, size_t cap) : report_(report), cap_(cap) {}
  template <class... Args>
  void error(fmt::format_string<Args...> f, Args&&... args) {
    if (report_.error_count++ < cap_)
      report_.errors.push_back(fmt::format(f, std::forward<Args>(args)...));
  }
  template <class... Args>
  void warning(fmt::format_string<Args...> f, Args&&... args) {
    if (report_.warning_count++ < cap_)
      report_.warnings.push_back(fmt::format(f, std::forward<Args>(args)...));
  }

 private:
  CheckpointReport& report_;
  size_t cap_;
};

void check_scale_inv(const SafetensorsCheckpoint& ckpt, const std::string& weight,
                     const TensorInfo& w_info, Problems& problems, const std::string& name) {
  const TensorInfo* info = ckpt.info(name);
  if (!info) {
    problems.error("{}: tensor '{}' is F8_E4M3 but its scale tensor '{}' is missing", w_info.file,
                   weight, name);
    return;
  }
  if (info->dtype != DType::f32) {
    problems.error("{}: tensor '{}': dtype {}, expected F32", info->file, name,
                   safetensors_dtype_name(info->dtype));
    return;
  }
  std::vector<int64_t> expected = scale_inv_shape(w_info.shape);
  if (info->shape != expected) {
    problems.error("{}: tensor '{}': shape {}, expected {} for weight {}", info->file, name,
                   shape_text(info->shape), shape_text(expected), shape_text(w_info.shape));
    return;
  }
  // A NaN, infinite, zero or negative scale would silently poison every output.
  Tensor scales = ckpt.get(name);
  const float* s = scales.data<float>();
  for (int64_t i = 0; i < scales.numel(); ++i)
    if (!(std::isfinite(s[i]) && s[i] > 0)) {
      problems.error("{}: tensor '{}': value {} at [{}, {}] is not a finite positive scale",
                     info->file, name, s[i], i / expected[1], i % expected[1]);
      return;
    }
}

// A compressed-tensors integer weight of logical shape [out, in] (docs/checkpoints.md): the codes
// (pack-quantized I32 words, or int-quantized I8), weight_shape, the group scales and, when
// asymmetric, the zero points.
void check_int_weight(const SafetensorsCheckpoint& ckpt, const ExpectedTensor& t,
                      const CompressedGroup& g, Problems& problems, std::set<std::string>& known) {
  const int64_t out = t.shape[0], in = t.shape[1];
  const bool packed = g.format == "pack-quantized";
  const std::string where = fmt::format("config group '{}'", g.name);
  if (g.group_size && in % g.group_size != 0) {
    problems.error("{}: tensor '{}': {} group_size {} does not divide its {} input features",
                   ckpt.source(), t.name, where, g.group_size, in);
    return;
  }
  auto need = [&](const std::string& name) -> const TensorInfo* {
    known.insert(name);
    const TensorInfo* info = ckpt.info(name);
    if (!info)
      problems.error("{}: missing tensor '{}' ({} quantizes '{}' as {})", ckpt.source(), name,
                     where, t.name, g.format);
    return info;
  };
  const std::string codes = packed ? ct_name(t.name, "_packed") : t.name;
  if (const TensorInfo* info = need(codes)) {
    const std::vector<int64_t> shape =
        packed ? std::vector<int64_t>{out, (in * g.num_bits + 31) / 32} : t.shape;
    const DType dt = packed ? DType::i32 : DType::i8;
    if (info->dtype != dt || info->shape != shape)
      problems.error("{}: tensor '{}': {} {}, expected {} {} ({}-bit {} codes of a {} weight)",
                     info->file, codes, safetensors_dtype_name(info->dtype),
                     shape_text(info->shape), safetensors_dtype_name(dt), shape_text(shape),
                     g.num_bits, g.format, shape_text(t.shape));
  }
  if (packed)
    if (const TensorInfo* info = need(ct_name(t.name, "_shape"))) {
      const std::string name = ct_name(t.name, "_shape");
      bool ok = (info->dtype == DType::i32 || info->dtype == DType::i64) &&
                info->shape == std::vector<int64_t>{2};
      if (ok) {
        const Tensor v = ckpt.get(name);
        auto at = [&](int i) {
          return v.dtype() == DType::i32 ? int64_t(v.data<int32_t>()[i]) : v.data<int64_t>()[i];
        };
        ok = at(0) == out && at(1) == in;
      }
      if (!ok)
        problems.error("{}: tensor '{}' must be I32 [2] holding {} (the weight's shape)",
                       info->file, name, shape_text(t.shape));
    }
  if (!g.symmetric) {
    const std::string zp = ct_name(t.name, "_zero_point");
    if (const TensorInfo* info = need(zp)) {
      const int64_t groups = g.group_size ? in / g.group_size : 1;
      const int per_word = 32 / g.num_bits;
      const std::vector<int64_t> shape =
          packed ? std::vector<int64_t>{(out + per_word - 1) / per_word, groups}
                 : std::vector<int64_t>{out, groups};
      const DType dt = packed ? DType::i32 : DType::i8;
      if (info->dtype != dt || info->shape != shape)
        problems.error(
            "{}: tensor '{}': {} {}, expected {} {} (the zero points of an asymmetric {} weight{})",
            info->file, zp, safetensors_dtype_name(info->dtype), shape_text(info->shape),
            safetensors_dtype_name(dt), shape_text(shape), shape_text(t.shape),
            packed ? fmt::format(", {} per I32 along the outputs", per_word) : "");
    }
  }
  // weight_g_idx: required with group activation ordering (each group exactly group_size columns,
  // as GPTQ forms them); otherwise, when present, it must be the contiguous grouping.
  const std::string gidx = ct_name(t.name, "_g_idx");
  auto check_gidx = [&](const TensorInfo* info) {
    if (info->dtype != DType::i32 || info->shape != std::vector<int64_t>{in}) {
      problems.error(
          "{}: tensor '{}': {} {}, expected I32 [{}] (the group of each input of a "
          "{} weight)",
          info->file, gidx, safetensors_dtype_name(info->dtype), shape_text(info->shape), in,
          shape_text(t.shape));
    } else if (g.group_size) {
      const Tensor v = ckpt.get(gidx);
      const int32_t* idx = v.data<int32_t>();
      const int64_t groups = in / g.group_size;
      std::vector<int64_t> count(static_cast<size_t>(groups));
      for (int64_t k = 0; k < in; ++k) {
        if (idx[k] < 0 || idx[k] >= groups) {
          problems.error("{}: tensor '{}': value {} at [{}] is not a group of {} (0 .. {})",
                         info->file, gidx, idx[k], k, t.name, groups - 1);
          return;
        }
        if (!g.actorder_group && idx[k] != k / g.group_size) {
          problems.error(
              "{}: tensor '{}': input {} is in group {}, but {} has no group "
              "activation ordering (actorder \"group\") and groups of {} columns",
              info->file, gidx, k, idx[k], where, g.group_size);
          return;
        }
        ++count[size_t(idx[k])];
      }
      for (int64_t gi = 0; gi < groups; ++gi)
        if (count[size_t(gi)] != g.group_size) {
          problems.error("{}: tensor '{}': group {} has {} inputs, expected group_size {}",
                         info->file, gidx, gi, count[size_t(gi)], g.group_size);
          return;
        }
    }
  };
  if (g.actorder_group || ckpt.has(gidx))
    if (const TensorInfo* info = need(gidx)) check_gidx(info);
  const std::string scale = ct_name(t.name, "_scale");
  if (const TensorInfo* info = need(scale)) {
    const std::vector<int64_t> shape{out, g.group_size ? in / g.group_size : 1};
    if ((info->dtype != DType::bf16 && info->dtype != DType::f16 && info->dtype != DType::f32) ||
        info->shape != shape) {
      problems.error("{}: tensor '{}': {} {}, expected BF16, F16 or F32 {} ({} of a {} weight)",
                     info->file, scale, safetensors_dtype_name(info->dtype),
                     shape_text(info->shape), shape_text(shape),
                     g.group_size ? fmt::format("one scale per {} inputs", g.group_size)
                                  : std::string("one scale per output channel"),
                     shape_text(t.shape));
      return;
    }
    const Tensor v = ckpt.get(scale);
    for (int64_t i = 0; i < v.numel(); ++i) {
      const float x = v.dtype() == DType::f32    ? v.data<float>()[i]
                      : v.dtype() == DType::bf16 ? bf16_to_f32(v.data<bf16>()[i])
                                                 : f16_to_f32(v.data<f16>()[i]);
      if (!std::isfinite(x)) {
        problems.error("{}: tensor '{}': value {} at [{}, {}] is not a finite scale", info->file,
                       scale, x, i / shape[1], i % shape[1]);
        return;
      }
    }
  }
}

}  // namespace

size_t LinearWeight::bytes() const {
  size_t n = w.defined() ? w.nbytes() : 0;
  if (scale_inv.defined()) n += scale_inv.nbytes();
  if (scale.defined()) n += scale.nbytes();
  if (zero.defined()) n += zero.nbytes();
  return n;
}

WeightView LinearWeight::view() const {
  WeightView v;
  v.data = w.raw();
  if (is_int()) {
    v.dtype = codes;
    v.rows = out, v.cols = in;
    v.ld = w.size(1) * (codes == DType::u4 ? 8 : codes == DType::u8 ? 4 : 1);
    v.qscale = scale.raw(), v.qscale_dtype = scale.dtype(), v.qscale_ld = scale.size(1);
    v.group = group;
    if (zero.defined()) v.qzero = zero.data<int8_t>(), v.qzero_ld = zero.size(1);
    return v;
  }
  v.dtype = w.dtype();
  v.rows = w.size(0), v.cols = w.size(1), v.ld = w.size(1);
  if (is_fp8()) v.scale_inv = scale_inv.data<float>(), v.scale_ld = scale_inv.size(1);
  return v;
}

const CompressedGroup* quantization_group(const ModelConfig& config,
                                          const std::string& weight_name) {
  if (!config.compressed) return nullptr;
  return config.compressed->group_for(
      weight_name.substr(0, weight_name.size() - std::string_view(".weight").size()));
}

bool released_fp8_keeps_bf16(const std::string& name) {
  const std::string_view n = name;
  return n == "lm_head.weight" || n.ends_with(".shared_head.head.weight") ||
         n.ends_with(".eh_proj.weight") || n.ends_with(".indexer.weights_proj.weight");
}

std::string scale_inv_name(const std::string& weight_name) {
  return weight_name + "_scale_inv";
}

std::vector<int64_t> scale_inv_shape(const std::vector<int64_t>& weight_shape) {
  std::vector<int64_t> s;
  for (int64_t d : weight_shape) s.push_back((d + kFp8BlockSize - 1) / kFp8BlockSize);
  return s;
}

int stored_mtp_modules(const ModelConfig& config, const SafetensorsCheckpoint& checkpoint) {
  std::vector<std::string> names = checkpoint.names();  // sorted: a prefix search suffices
  int k = 0;
  for (; k < config.num_nextn_predict_layers; ++k) {
    std::string prefix = fmt::format("model.layers.{}.", config.num_hidden_layers + k);
    auto it = std::lower_bound(names.begin(), names.end(), prefix);
    if (it == names.end() || it->compare(0, prefix.size(), prefix) != 0) break;
  }
  return k;
}

void CheckpointWeights::bind(const ModelConfig& c, int mtp_modules, WeightBinder& b) {
  const int64_t vocab = c.vocab_size, hidden = c.hidden_size;
  b.param("model.embed_tokens.weight", {vocab, hidden}, embed_tokens_);
  layers_.resize(size_t(c.num_hidden_layers));
  for (int l = 0; l < c.num_hidden_layers; ++l) bind_layer(c, l, layers_[size_t(l)], b);
  b.param("model.norm.weight", {hidden}, norm_);
  // Tied embeddings are usually not saved a second time.
  b.linear("lm_head.weight", {vocab, hidden}, lm_head_, /*optional=*/c.tie_word_embeddings);
  mtp_.resize(size_t(mtp_modules));
  for (int k = 0; k < mtp_modules; ++k) bind_mtp(c, c.num_hidden_layers + k, mtp_[size_t(k)], b);
}

std::vector<ExpectedTensor> checkpoint_schema(const ModelConfig& config, int mtp_modules) {
  CheckpointWeights scratch;
  SchemaBinder binder;
  scratch.bind(config, mtp_modules, binder);
  return std::move(binder.tensors);
}

CheckpointReport check_checkpoint(const ModelConfig& config,
                                  const SafetensorsCheckpoint& checkpoint, size_t max_messages) {
  CheckpointReport report;
  Problems problems(report, max_messages);
  report.mtp_modules = stored_mtp_modules(config, checkpoint);
  std::set<std::string> known;
  for (const ExpectedTensor& t : checkpoint_schema(config, report.mtp_modules)) {
    known.insert(t.name);
    const CompressedGroup* group =
        t.kind == WeightKind::linear ? quantization_group(config, t.name) : nullptr;
    if (group && !group->is_float) {
      if (t.optional && !checkpoint.has(ct_name(t.name, "_scale"))) continue;
      check_int_weight(checkpoint, t, *group, problems, known);
      continue;
    }
    const TensorInfo* info = checkpoint.info(t.name);
    if (!info) {
      if (!t.optional)
        problems.error("{}: missing tensor '{}' (expected shape {})", checkpoint.source(), t.name,
                       shape_text(t.shape));
      continue;
    }
    if (!dtype_allowed(t.kind, info->dtype))
      problems.error("{}: tensor '{}': dtype {} is not allowed (expected {})", info->file, t.name,
                     safetensors_dtype_name(info->dtype), allowed_dtypes(t.kind));
    if (info->shape != t.shape)
      problems.error("{}: tensor '{}': shape {}, expected {}", info->file, t.name,
                     shape_text(info->shape), shape_text(t.shape));
    if (t.kind != WeightKind::linear) continue;
    if (group) {  // float-quantized: FP8 with 128 x 128 block scales named weight_scale
      known.insert(ct_name(t.name, "_scale"));
      if (info->dtype != DType::fp8_e4m3)
        problems.error("{}: tensor '{}': dtype {}, but config group '{}' stores it as F8_E4M3",
                       info->file, t.name, safetensors_dtype_name(info->dtype), group->name);
      else if (info->shape == t.shape)
        check_scale_inv(checkpoint, t.name, *info, problems, ct_name(t.name, "_scale"));
      continue;
    }
    known.insert(scale_inv_name(t.name));
    if (info->dtype == DType::fp8_e4m3) {
      if (info->shape == t.shape)
        check_scale_inv(checkpoint, t.name, *info, problems, scale_inv_name(t.name));
    } else if (const TensorInfo* scale = checkpoint.info(scale_inv_name(t.name))) {
      problems.warning("{}: tensor '{}' ignored: its weight is {}, not FP8", scale->file,
                       scale_inv_name(t.name), safetensors_dtype_name(info->dtype));
    }
  }
  for (const std::string& name : checkpoint.names())
    if (!known.count(name))
      problems.warning("{}: unexpected tensor '{}' ignored", checkpoint.info(name)->file, name);
  return report;
}

void validate_checkpoint(const ModelConfig& config, const SafetensorsCheckpoint& checkpoint) {
  CheckpointReport report = check_checkpoint(config, checkpoint);
  for (const std::string& w : report.warnings) log_warn("%s", w.c_str());
  if (report.warning_count > report.warnings.size())
    log_warn("%s: ... and %zu more ignored tensors", checkpoint.source().c_str(),
             report.warning_count - report.warnings.size());
  if (report.ok()) return;
  std::string message =
      fmt::format("{}: checkpoint does not match {} ({} problems):", checkpoint.source(),
                  config.architecture, report.error_count);
  for (const std::string& e : report.errors) message += "\n  " + e;
  if (report.error_count > report.errors.size())
    message += fmt::format("\n  ... and {} more", report.error_count - report.errors.size());
  throw std::runtime_error(message);
}

CheckpointWeights CheckpointWeights::load(const ModelConfig& config,
                                          const SafetensorsCheckpoint& checkpoint) {
  validate_checkpoint(config, checkpoint);
  CheckpointWeights weights;
  LoadBinder binder(config, checkpoint);
  weights.bind(config, stored_mtp_modules(config, checkpoint), binder);
  if (!weights.lm_head_.w.defined()) weights.lm_head_.w = weights.embed_tokens_;
  for (MtpWeights& m : weights.mtp_)
    if (!m.embed_tokens.defined()) m.embed_tokens = weights.embed_tokens_;
  weights.resident_bytes_ = binder.resident_bytes;
  weights.fp8_ = std::move(binder.fp8);
  log_info("%s: %d layers, %zu MTP modules, %.3f GiB of weights mapped",
           checkpoint.source().c_str(), weights.num_layers(), weights.mtp_.size(),
           double(weights.resident_bytes_) / (1 << 30));
  return weights;
}

void CheckpointWeights::keep_experts(int64_t begin, int64_t end) {
  auto bytes = [](const LinearWeight& l) { return l.bytes(); };
  auto drop = [&](LayerWeights& lw) {
    if (!lw.moe) return;
    for (size_t e = 0; e < lw.moe->experts.size(); ++e) {
      if (int64_t(e) >= begin && int64_t(e) < end) continue;
      MlpWeights& m = lw.moe->experts[e];
      if (!m.gate_proj.w.defined()) continue;
      resident_bytes_ -= bytes(m.gate_proj) + bytes(m.up_proj) + bytes(m.down_proj);
      m = MlpWeights{};
    }
  };
  for (LayerWeights& lw : layers_) drop(lw);
  for (MtpWeights& m : mtp_) drop(m.layer);
  std::erase_if(fp8_, [&](const Fp8Weight& f) {
    return f.expert >= 0 && (f.expert < begin || f.expert >= end);
  });
}

void CheckpointWeights::check_fp8_codes() const {
  // One task per 4 MiB piece of every tensor, so a few huge tensors still split across threads.
  constexpr int64_t kPiece = int64_t(4) << 20;
  struct Piece {
    size_t weight;
    int64_t begin, end;
  };
  std::vector<Piece> pieces;
  for (size_t i = 0; i < fp8_.size(); ++i)
    for (int64_t b = 0, n = int64_t(fp8_[i].w.nbytes()); b < n; b += kPiece)
      pieces.push_back({i, b, std::min(n, b + kPiece)});
  std::vector<int64_t> first_nan(pieces.size(), -1);
  parallel_for(int64_t(pieces.size()), 1, [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; ++p) {
      const Piece& pc = pieces[size_t(p)];
      const auto* bytes = static_cast<const uint8_t*>(fp8_[pc.weight].w.raw());
      const int64_t at = find_fp8_nan(bytes + pc.begin, pc.end - pc.begin);
      if (at >= 0) first_nan[size_t(p)] = pc.begin + at;
    }
  });
  for (size_t p = 0; p < pieces.size(); ++p) {
    if (first_nan[p] < 0) continue;
    const Fp8Weight& f = fp8_[pieces[p].weight];
    const int64_t cols = f.w.size(1), at = first_nan[p];
    const uint8_t code = static_cast<const uint8_t*>(f.w.raw())[at];
    throw std::runtime_error(fmt::format(
        "{}: tensor '{}' holds the FP8 NaN code 0x{:02x} at [{}, {}] (element {}): a valid "
        "checkpoint has only finite weights",
        f.file, f.name, code, at / cols, at % cols, at));
  }
}

}  // namespace dsinfer

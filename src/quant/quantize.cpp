#include "quant/quantize.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/safetensors_writer.h"

namespace dsinfer {

namespace fs = std::filesystem;
using json = nlohmann::json;

QuantScheme parse_quant_scheme(const std::string& s) {
  if (s == "w4a16") return QuantScheme::w4a16;
  if (s == "w4a8") return QuantScheme::w4a8;
  if (s == "w8a16") return QuantScheme::w8a16;
  if (s == "w8a8") return QuantScheme::w8a8;
  throw std::invalid_argument("unknown scheme '" + s + "' (w4a16, w4a8, w8a16 or w8a8)");
}
QuantTargets parse_quant_targets(const std::string& s) {
  if (s == "experts") return QuantTargets::experts;
  if (s == "mlp") return QuantTargets::mlp;
  if (s == "all-linear") return QuantTargets::all_linear;
  throw std::invalid_argument("unknown targets '" + s + "' (experts, mlp or all-linear)");
}
const char* quant_scheme_name(QuantScheme s) {
  switch (s) {
    case QuantScheme::w4a16:
      return "w4a16";
    case QuantScheme::w4a8:
      return "w4a8";
    case QuantScheme::w8a16:
      return "w8a16";
    case QuantScheme::w8a8:
      return "w8a8";
  }
  return "?";
}
const char* quant_targets_name(QuantTargets t) {
  return t == QuantTargets::experts ? "experts" : t == QuantTargets::mlp ? "mlp" : "all-linear";
}

namespace {

int scheme_bits(QuantScheme s) {
  return s == QuantScheme::w4a16 || s == QuantScheme::w4a8 ? 4 : 8;
}
bool scheme_int8_activations(QuantScheme s) {
  return s == QuantScheme::w4a8 || s == QuantScheme::w8a8;
}
// W8A8 is int-quantized (I8 weights, as llm-compressor writes it); the others pack into I32.
const char* scheme_format(QuantScheme s) {
  return s == QuantScheme::w8a8 ? "int-quantized" : "pack-quantized";
}

// The attention projections a float-quantized group keeps in FP8.
constexpr const char* kAttentionPattern =
    "re:.*self_attn\\.(q_a_proj|q_b_proj|q_proj|kv_a_proj_with_mqa|kv_b_proj|o_proj|"
    "indexer\\.wq_b|indexer\\.wk)$";

// The shared experts' and dense MLP layers' projections (not the routed experts').
constexpr const char* kDenseMlpPattern = "re:.*mlp\\.(shared_experts\\.)?(gate|up|down)_proj$";

// A source linear weight as f32, FP8 block scales applied.
std::vector<float> dequantize(const Tensor& w, const Tensor* scale_inv) {
  LinearWeight lw;
  lw.w = w;
  if (scale_inv) lw.scale_inv = *scale_inv;
  const WeightView v = lw.view();
  std::vector<float> out(size_t(v.rows * v.cols));
  parallel_for(v.rows, 16, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < v.cols; ++c) out[size_t(r * v.cols + c)] = float(v.value_at(r, c));
  });
  return out;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  try {
    return json::parse(in);
  } catch (const json::parse_error& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

// What one source tensor becomes.
enum class Action { copy, quantize, keep_fp8, to_bf16, drop };

}  // namespace

json compressed_tensors_config(QuantScheme scheme, int group, QuantTargets targets, bool keep_fp8,
                               bool asymmetric) {
  const int bits = scheme_bits(scheme);
  json weights = {{"num_bits", bits},          {"type", "int"},       {"symmetric", !asymmetric},
                  {"dynamic", false},          {"actorder", nullptr}, {"observer", "minmax"},
                  {"block_structure", nullptr}};
  if (group > 0) {
    weights["strategy"] = "group", weights["group_size"] = group;
  } else {
    weights["strategy"] = "channel", weights["group_size"] = nullptr;
  }
  json activations = nullptr;
  if (scheme_int8_activations(scheme))
    activations = {{"num_bits", 8},       {"type", "int"},   {"symmetric", true},
                   {"strategy", "token"}, {"dynamic", true}, {"observer", nullptr}};
  std::string target;
  switch (targets) {
    case QuantTargets::experts:
      target = "re:.*mlp\\.experts\\.[0-9]+\\.(gate|up|down)_proj$";
      break;
    case QuantTargets::mlp:
      target = "re:.*mlp\\.(experts\\.[0-9]+\\.|shared_experts\\.)?(gate|up|down)_proj$";
      break;
    case QuantTargets::all_linear:
      target = "Linear";
      break;
  }
  json groups = {{"group_0",
                  {{"targets", {target}},
                   {"weights", weights},
                   {"input_activations", activations},
                   {"output_activations", nullptr},
                   {"format", scheme_format(scheme)}}}};
  // The FP8 projections group_0 does not claim stay FP8: attention, and with routed experts as
  // the targets also the shared experts and the dense layers' MLPs.
  json fp8_targets = {kAttentionPattern};
  if (targets == QuantTargets::experts) fp8_targets.push_back(kDenseMlpPattern);
  if (keep_fp8)
    groups["group_1"] = {{"targets", fp8_targets},
                         {"weights",
                          {{"num_bits", 8},
                           {"type", "float"},
                           {"symmetric", true},
                           {"strategy", "block"},
                           {"block_structure", {128, 128}},
                           {"dynamic", false}}},
                         {"input_activations",
                          {{"num_bits", 8},
                           {"type", "float"},
                           {"symmetric", true},
                           {"strategy", "group"},
                           {"group_size", 128},
                           {"dynamic", true}}},
                         {"output_activations", nullptr},
                         {"format", "float-quantized"}};
  // The output heads, MTP's eh_proj and the indexer's head weights stay as they are (the
  // released FP8 checkpoint keeps them in BF16 too).
  json ignore = {"lm_head", "re:.*shared_head\\.head$", "re:.*eh_proj$",
                 "re:.*indexer\\.weights_proj$"};
  return {{"quant_method", "compressed-tensors"},
          {"format", keep_fp8 ? "mixed-precision" : scheme_format(scheme)},
          {"quantization_status", "compressed"},
          {"config_groups", groups},
          {"ignore", ignore},
          {"kv_cache_scheme", nullptr},
          {"sparsity_config", json::object()},
          {"global_compression_ratio", nullptr}};
}

void quantize_row(const float* w, int64_t n, int bits, int64_t group, int8_t* codes,
                  uint16_t* scales_bf16, int8_t* zeros) {
  const float qmax = float((1 << (bits - 1)) - 1), qmin = -qmax - 1;
  for (int64_t g0 = 0, gi = 0; g0 < n; g0 += group, ++gi) {
    const int64_t g1 = std::min(n, g0 + group);
    if (zeros) {
      float lo = 0, hi = 0;
      for (int64_t k = g0; k < g1; ++k) lo = std::min(lo, w[k]), hi = std::max(hi, w[k]);
      bf16 s = f32_to_bf16((hi - lo) / (qmax - qmin));
      if (!(bf16_to_f32(s) > 0)) s = f32_to_bf16(1.0f);  // an all-zero group: any scale
      scales_bf16[gi] = s.bits;
      const float scale = bf16_to_f32(s);
      const float z = std::clamp(std::nearbyint(qmin - lo / scale), qmin, qmax);
      zeros[gi] = int8_t(z);
      for (int64_t k = g0; k < g1; ++k)
        codes[k] = int8_t(std::clamp(std::nearbyint(w[k] / scale + z), qmin, qmax));
      continue;
    }
    float amax = 0;
    for (int64_t k = g0; k < g1; ++k) amax = std::max(amax, std::fabs(w[k]));
    bf16 s = f32_to_bf16(amax / ((qmax - qmin) / 2));
    if (!(bf16_to_f32(s) > 0)) s = f32_to_bf16(1.0f);  // an all-zero group: any scale
    scales_bf16[gi] = s.bits;
    const float scale = bf16_to_f32(s);
    for (int64_t k = g0; k < g1; ++k)
      codes[k] = int8_t(std::clamp(std::nearbyint(w[k] / scale), qmin, qmax));
  }
}

QuantizeResult quantize_checkpoint(const QuantizeOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path src_dir =
      fs::is_directory(o.src) ? fs::path(o.src) : fs::path(o.src).parent_path();
  const std::string config_path = (src_dir / "config.json").string();
  json root = read_json(config_path);
  const ModelConfig config = parse_config(root, config_path);
  if (config.compressed)
    throw std::runtime_error(config_path + ": the checkpoint is already compressed-tensors");
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(o.src);
  validate_checkpoint(config, ckpt);

  const int bits = scheme_bits(o.scheme);
  int group = o.group == 0 ? (o.scheme == QuantScheme::w8a8 ? -1 : 128) : o.group;
  if (group != -1 && group != 32 && group != 64 && group != 128)
    throw std::invalid_argument(fmt::format("--group {}: must be 32, 64 or 128", group));
  QuantTargets targets = o.targets;
  // Attention kept in FP8 cannot also be a Linear target.
  if (o.keep_fp8 && targets == QuantTargets::all_linear) targets = QuantTargets::mlp;
  const json qc = compressed_tensors_config(o.scheme, group, targets, o.keep_fp8, o.asymmetric);
  root["quantization_config"] = qc;
  const ModelConfig out_config = parse_config(root, config_path);  // what the loader will read

  std::set<std::string> linears;
  for (const ExpectedTensor& t : checkpoint_schema(config, stored_mtp_modules(config, ckpt)))
    if (t.kind == WeightKind::linear) linears.insert(t.name);
  // The plan: every source tensor's action and output bytes, in name order.
  struct Job {
    std::string name;
    Action action;
    size_t out_bytes;
    size_t in_bytes;
  };
  std::vector<Job> jobs;
  QuantizeResult r;
  for (const std::string& name : ckpt.names()) {
    const TensorInfo& info = *ckpt.info(name);
    Job j{name, Action::copy, 0, 0};
    j.in_bytes = ckpt.get(name).nbytes();
    r.bytes_in += j.in_bytes;
    if (name.ends_with("_scale_inv") &&
        linears.count(name.substr(0, name.size() - std::string("_scale_inv").size()))) {
      j.action = Action::drop;  // travels with its weight
    } else if (linears.count(name)) {
      const CompressedGroup* g = quantization_group(out_config, name);
      const int64_t out = info.shape[0], in = info.shape[1];
      const int64_t per_scale = group > 0 ? group : in;
      if (g && !g->is_float) {
        if (in % per_scale != 0)
          throw std::runtime_error(
              fmt::format("{}: tensor '{}': {} input features are not a multiple of --group {}",
                          ckpt.source(), name, in, group));
        j.action = Action::quantize;
        const size_t code_bytes = o.scheme == QuantScheme::w8a8
                                      ? size_t(out * in)
                                      : size_t(out * ((in * bits + 31) / 32) * 4);
        j.out_bytes = code_bytes + size_t(out * (in / per_scale)) * (o.asymmetric ? 3 : 2) + 8;
      } else if (g) {
        if (info.dtype != DType::fp8_e4m3)
          throw std::runtime_error(
              fmt::format("{}: tensor '{}' is {}, not FP8: --keep-fp8 needs an FP8 checkpoint",
                          ckpt.source(), name, dtype_name(info.dtype)));
        j.action = Action::keep_fp8;
        j.out_bytes = j.in_bytes + ckpt.get(scale_inv_name(name)).nbytes();
      } else if (info.dtype == DType::fp8_e4m3) {
        j.action = Action::to_bf16;
        j.out_bytes = size_t(out * in) * 2;
      } else {
        j.out_bytes = j.in_bytes;
      }
    } else {
      j.out_bytes = j.in_bytes;
    }
    jobs.push_back(std::move(j));
  }

  // Shards: filled in order, closed when the next tensor would pass the limit.
  std::vector<std::vector<size_t>> shards;
  size_t shard_bytes = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i].action == Action::drop) continue;
    if (shards.empty() ||
        (!shards.back().empty() && shard_bytes + jobs[i].out_bytes > o.max_shard_bytes))
      shards.emplace_back(), shard_bytes = 0;
    shards.back().push_back(i);
    shard_bytes += jobs[i].out_bytes;
  }

  const fs::path dst(o.dst);
  if (fs::exists(dst) && !fs::is_directory(dst))
    throw std::runtime_error(o.dst + ": exists and is not a directory");
  if (fs::exists(dst) && fs::equivalent(src_dir, dst))
    throw std::runtime_error(o.dst + ": is the source directory");
  if (fs::exists(dst) && !fs::is_empty(dst) && !o.force)
    throw std::runtime_error(o.dst + ": directory is not empty (--force to write into it)");
  fs::create_directories(dst);

  std::map<std::string, std::string> weight_map;
  size_t done = 0, done_bytes = 0, total = 0;
  for (const auto& sh : shards) total += sh.size();
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file = fmt::format("model-{:05}-of-{:05}.safetensors", s + 1, shards.size());
    std::vector<NamedTensor> out;
    for (size_t ji : shards[s]) {
      const Job& j = jobs[ji];
      const Tensor w = ckpt.get(j.name);
      switch (j.action) {
        case Action::copy:
          out.push_back({j.name, w});
          break;
        case Action::to_bf16: {
          const Tensor si = ckpt.get(scale_inv_name(j.name));
          const std::vector<float> f = dequantize(w, &si);
          Tensor b = Tensor::empty(DType::bf16, w.shape());
          for (size_t i = 0; i < f.size(); ++i) b.data<bf16>()[i] = f32_to_bf16(f[i]);
          out.push_back({j.name, b});
          ++r.to_bf16;
          break;
        }
        case Action::keep_fp8:
          out.push_back({j.name, w});
          out.push_back({j.name + "_scale", ckpt.get(scale_inv_name(j.name))});
          ++r.kept_fp8;
          break;
        case Action::quantize: {
          const int64_t rows = w.size(0), in = w.size(1);
          const int64_t per_scale = group > 0 ? group : in, n_scales = in / per_scale;
          const Tensor si =
              w.dtype() == DType::fp8_e4m3 ? ckpt.get(scale_inv_name(j.name)) : Tensor();
          const std::vector<float> f = dequantize(w, si.defined() ? &si : nullptr);
          std::vector<int8_t> codes(size_t(rows * in));
          Tensor scales = Tensor::empty(DType::bf16, {rows, n_scales});
          std::vector<int8_t> zeros(o.asymmetric ? size_t(rows * n_scales) : 0);
          parallel_for(rows, 8, [&](int64_t r0, int64_t r1, int) {
            for (int64_t row = r0; row < r1; ++row)
              quantize_row(&f[size_t(row * in)], in, bits, per_scale, &codes[size_t(row * in)],
                           reinterpret_cast<uint16_t*>(scales.data<bf16>()) + row * n_scales,
                           o.asymmetric ? &zeros[size_t(row * n_scales)] : nullptr);
          });
          if (o.scheme == QuantScheme::w8a8) {
            Tensor c = Tensor::empty(DType::i8, {rows, in});
            std::memcpy(c.raw(), codes.data(), codes.size());
            out.push_back({j.name, c});
            if (o.asymmetric) {  // int-quantized: I8 [out, groups] as they are
              Tensor z = Tensor::empty(DType::i8, {rows, n_scales});
              std::memcpy(z.raw(), zeros.data(), zeros.size());
              out.push_back({j.name + "_zero_point", z});
            }
          } else {
            // compressed-tensors pack_to_int32: codes + 2^(bits-1) as unsigned fields, 32 / bits
            // per int32 along the input, lowest bits first, the last word zero-padded.
            const int per_word = 32 / bits;
            const int64_t words = (in + per_word - 1) / per_word;
            Tensor p = Tensor::empty(DType::i32, {rows, words});
            uint32_t* pw = reinterpret_cast<uint32_t*>(p.raw());
            const uint32_t mask = (1u << bits) - 1, offset = 1u << (bits - 1);
            for (int64_t row = 0; row < rows; ++row)
              for (int64_t wi = 0; wi < words; ++wi) {
                uint32_t word = 0;
                for (int q = 0; q < per_word; ++q) {
                  const int64_t k = wi * per_word + q;
                  if (k < in)
                    word |=
                        ((uint32_t(int32_t(codes[size_t(row * in + k)]) + int32_t(offset))) & mask)
                        << (bits * q);
                }
                pw[row * words + wi] = word;
              }
            Tensor shape = Tensor::empty(DType::i32, {2});
            shape.data<int32_t>()[0] = int32_t(rows), shape.data<int32_t>()[1] = int32_t(in);
            out.push_back({j.name + "_packed", p});
            out.push_back({j.name + "_shape", shape});
            if (o.asymmetric) {
              // pack_to_int32 along the outputs (packed_dim 0): row n in field n % per_word of
              // word row n / per_word, offset like the codes.
              const int64_t zrows = (rows + per_word - 1) / per_word;
              Tensor z = Tensor::empty(DType::i32, {zrows, n_scales});
              uint32_t* zw = reinterpret_cast<uint32_t*>(z.raw());
              std::fill(zw, zw + zrows * n_scales, 0u);
              for (int64_t row = 0; row < rows; ++row)
                for (int64_t g = 0; g < n_scales; ++g)
                  zw[(row / per_word) * n_scales + g] |=
                      (uint32_t(int32_t(zeros[size_t(row * n_scales + g)]) + int32_t(offset)) &
                       mask)
                      << (bits * (row % per_word));
              out.push_back({j.name + "_zero_point", z});
            }
          }
          out.push_back({j.name + "_scale", scales});
          ++r.quantized;
          break;
        }
        case Action::drop:
          break;
      }
      done_bytes += j.in_bytes;
      // A weight's dropped scale_inv counts as done with it.
      if (j.action != Action::copy && ckpt.has(scale_inv_name(j.name)))
        done_bytes += ckpt.get(scale_inv_name(j.name)).nbytes();
      ++done;
      if (o.progress) o.progress(done, total, done_bytes, r.bytes_in);
    }
    write_safetensors((dst / file).string(), out, {{"format", "pt"}});
    for (const NamedTensor& t : out) {
      weight_map[t.name] = file;
      r.bytes_out += t.tensor.nbytes();
    }
    r.tensors_out += out.size();
    r.shards.push_back(file);
  }
  r.tensors_in = jobs.size();
  write_checkpoint_index(dst.string(), weight_map, r.bytes_out);
  {
    std::ofstream cfg(dst / "config.json", std::ios::trunc);
    cfg << root.dump(2) << '\n';
    if (!cfg) throw std::runtime_error((dst / "config.json").string() + ": write failed");
  }
  // Everything else (tokenizer, generation config, chat template) as it is.
  for (const fs::directory_entry& e : fs::directory_iterator(src_dir)) {
    const std::string fname = e.path().filename().string();
    if (!e.is_regular_file() || fname == "config.json" || fname.ends_with(".safetensors") ||
        fname == "model.safetensors.index.json")
      continue;
    fs::copy_file(e.path(), dst / fname, fs::copy_options::overwrite_existing);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace dsinfer

// dsinfer quantize and the compressed-tensors loader: the RTN rule, the exact byte layout of what
// is written (decoded here independently), config round trips, and clear errors for malformed
// quantized checkpoints (codes / scale / weight_shape tensors, bits, group sizes).
#include "quant/quantize.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "../model/model_test_util.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "synthetic/gen_model.h"

namespace dsinfer {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::TempDir;

TEST(Quantize, RowRoundToNearestWithBf16Scales) {
  // One group of 8 with amax 3: int4 scale bf16(3 / 7.5), codes round(w / scale) clamped.
  const float w[8] = {3.0f, -3.0f, 0.2f, -0.2f, 1.0f, 0.0f, 2.9f, -1.5f};
  int8_t codes[8];
  uint16_t scale;
  quantize_row(w, 8, 4, 8, codes, &scale);
  const float s = bf16_to_f32(bf16{scale});
  EXPECT_EQ(s, bf16_to_f32(f32_to_bf16(3.0f / 7.5f)));
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(codes[i], int8_t(std::clamp(std::nearbyint(w[i] / s), -8.0f, 7.0f))) << i;
  EXPECT_EQ(codes[0], 7);   // +amax clips to 7
  EXPECT_EQ(codes[1], -7);  // bf16 rounded the scale up: -amax / scale = -7.49
  // int8, two groups, one all zero.
  float w2[6] = {0, 0, 0, 1.0f, -0.5f, 0.25f};
  int8_t c2[6];
  uint16_t s2[2];
  quantize_row(w2, 6, 8, 3, c2, s2);
  EXPECT_EQ(c2[0], 0);
  EXPECT_GT(bf16_to_f32(bf16{s2[0]}), 0.0f);
  EXPECT_EQ(bf16_to_f32(bf16{s2[1]}), bf16_to_f32(f32_to_bf16(1.0f / 127.5f)));
  EXPECT_EQ(c2[3], 127);
}

TEST(Quantize, RowAsymmetricMinMaxWithZeroPoints) {
  // One int4 group over [-1, 2]: scale bf16(3 / 15), zero clamp(round(-8 + 1 / scale)) = -3,
  // codes clamp(round(w / scale + zero)); the range's ends map to -8 and 7.
  const float w[6] = {-1.0f, 2.0f, 0.0f, 0.5f, 1.3f, -0.4f};
  int8_t codes[6], zero;
  uint16_t scale;
  quantize_row(w, 6, 4, 6, codes, &scale, &zero);
  const float s = bf16_to_f32(bf16{scale});
  EXPECT_EQ(s, bf16_to_f32(f32_to_bf16(3.0f / 15.0f)));
  EXPECT_EQ(zero, int8_t(std::nearbyint(-8.0f + 1.0f / s)));
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(codes[i], int8_t(std::clamp(std::nearbyint(w[i] / s + zero), -8.0f, 7.0f))) << i;
    EXPECT_LE(std::fabs((codes[i] - zero) * s - w[i]), s / 2 + 1e-6f) << i;  // within a step
  }
  EXPECT_EQ(codes[0], -8);
  EXPECT_EQ(codes[1], 7);
  EXPECT_EQ(codes[2], zero);  // 0 is exact
  // All positive: the range starts at 0, so the zero point is qmin; int8; an all-zero group.
  const float w2[4] = {0.5f, 1.0f, 0, 0};
  int8_t c2[4], z2[2];
  uint16_t s2[2];
  quantize_row(w2, 4, 8, 2, c2, s2, z2);
  EXPECT_EQ(z2[0], -128);
  EXPECT_EQ(bf16_to_f32(bf16{s2[0]}), bf16_to_f32(f32_to_bf16(1.0f / 255.0f)));
  EXPECT_EQ(c2[1], int8_t(std::nearbyint(1.0f / bf16_to_f32(bf16{s2[0]}) - 128)));  // 126: bf16
  EXPECT_EQ(c2[0], int8_t(std::nearbyint(0.5f / bf16_to_f32(bf16{s2[0]}) - 128)));
  EXPECT_GT(bf16_to_f32(bf16{s2[1]}), 0.0f);
  EXPECT_EQ(c2[2], z2[1]);
}

std::string make_tiny(const std::string& dir, GenDtype dtype) {
  GenModelOptions o;
  o.preset = GenPreset::tiny;
  o.dtype = dtype;
  o.output_dir = dir;
  o.seed = 5;
  generate_model(o);
  return dir;
}

QuantizeResult quantize(const std::string& src, const std::string& dst, QuantScheme scheme,
                        QuantTargets targets, int group = 0, bool keep_fp8 = false,
                        bool asymmetric = false) {
  QuantizeOptions o;
  o.src = src, o.dst = dst, o.scheme = scheme, o.targets = targets, o.group = group;
  o.keep_fp8 = keep_fp8, o.asymmetric = asymmetric;
  o.max_shard_bytes = 64 << 10;  // several shards
  return quantize_checkpoint(o);
}

// What quantize wrote for one routed expert weight, decoded from the raw words, equals
// quantize_row on the dequantized FP8 source.
TEST(Quantize, WritesTheCompressedTensorsLayout) {
  TempDir tmp;
  const std::string src = make_tiny(tmp.file("src"), GenDtype::fp8);
  size_t calls = 0;
  QuantizeOptions o;
  o.src = src, o.dst = tmp.file("w4"), o.scheme = QuantScheme::w4a16, o.group = 32;
  o.max_shard_bytes = 64 << 10;
  o.progress = [&](size_t done, size_t total, size_t bytes, size_t total_bytes) {
    ++calls;
    EXPECT_LE(done, total);
    EXPECT_LE(bytes, total_bytes);
  };
  const QuantizeResult r = quantize_checkpoint(o);
  EXPECT_GT(r.quantized, 0u);
  EXPECT_GT(r.shards.size(), 1u);
  EXPECT_GT(calls, 0u);
  EXPECT_LT(r.bytes_out, r.bytes_in * 2);
  EXPECT_TRUE(fs::exists(tmp.file("w4/tokenizer.json")));
  EXPECT_TRUE(fs::exists(tmp.file("w4/model.safetensors.index.json")));

  const ModelConfig cfg = load_config(tmp.file("w4/config.json"));
  ASSERT_TRUE(cfg.compressed.has_value());
  const auto in = SafetensorsCheckpoint::open(src);
  const auto out = SafetensorsCheckpoint::open(tmp.file("w4"));
  int moe_layer = cfg.first_k_dense_replace;
  const std::string name = fmt::format("model.layers.{}.mlp.experts.1.down_proj.weight", moe_layer);
  ASSERT_TRUE(out.has(name + "_packed")) << name;
  EXPECT_FALSE(out.has(name));
  EXPECT_FALSE(out.has(name + "_scale_inv"));
  const Tensor w = in.get(name), si = in.get(name + "_scale_inv");
  const int64_t rows = w.size(0), cols = w.size(1);
  const Tensor packed = out.get(name + "_packed"), scale = out.get(name + "_scale");
  const Tensor shape = out.get(name + "_shape");
  EXPECT_EQ(packed.dtype(), DType::i32);
  EXPECT_EQ(packed.shape(), (std::vector<int64_t>{rows, (cols + 7) / 8}));
  EXPECT_EQ(scale.dtype(), DType::bf16);
  EXPECT_EQ(scale.shape(), (std::vector<int64_t>{rows, cols / 32}));
  EXPECT_EQ(shape.data<int32_t>()[0], rows);
  EXPECT_EQ(shape.data<int32_t>()[1], cols);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> f(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c)
      f[c] = fp8_e4m3_to_f32(w.data<fp8_e4m3>()[r * cols + c]) *
             si.data<float>()[(r / 128) * si.size(1) + c / 128];
    std::vector<int8_t> codes(static_cast<size_t>(cols));
    std::vector<uint16_t> sc(static_cast<size_t>(cols / 32));
    quantize_row(f.data(), cols, 4, 32, codes.data(), sc.data());
    for (int64_t c = 0; c < cols; ++c) {
      const uint32_t word = uint32_t(packed.data<int32_t>()[r * packed.size(1) + c / 8]);
      ASSERT_EQ(int((word >> (4 * (c % 8))) & 15) - 8, codes[c]) << r << "," << c;
    }
    for (int64_t g = 0; g < cols / 32; ++g)
      ASSERT_EQ(scale.data<bf16>()[r * scale.size(1) + g].bits, sc[g]);
  }
  // Asymmetric: the zero points packed along the outputs (8 rows per I32 word, offset 8), and
  // the same codes as quantize_row with zero points; the loaded view decodes (code - zero) * s.
  o.dst = tmp.file("w4a"), o.asymmetric = true;
  quantize_checkpoint(o);
  const auto outa = SafetensorsCheckpoint::open(tmp.file("w4a"));
  const Tensor pa = outa.get(name + "_packed"), sa = outa.get(name + "_scale");
  const Tensor za = outa.get(name + "_zero_point");
  EXPECT_EQ(za.dtype(), DType::i32);
  ASSERT_EQ(za.shape(), (std::vector<int64_t>{(rows + 7) / 8, cols / 32}));
  EXPECT_FALSE(load_config(tmp.file("w4a/config.json")).compressed->groups[0].symmetric);
  ModelOptions mo;
  mo.kv_cache_tokens = 64;
  const auto model = Model::load(tmp.file("w4a"), mo);
  const WeightView lv = model->weights().layer(moe_layer).moe->experts[1].down_proj.view();
  ASSERT_NE(lv.qzero, nullptr);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> f(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c)
      f[c] = fp8_e4m3_to_f32(w.data<fp8_e4m3>()[r * cols + c]) *
             si.data<float>()[(r / 128) * si.size(1) + c / 128];
    std::vector<int8_t> codes(static_cast<size_t>(cols)), zeros(static_cast<size_t>(cols / 32));
    std::vector<uint16_t> sc(static_cast<size_t>(cols / 32));
    quantize_row(f.data(), cols, 4, 32, codes.data(), sc.data(), zeros.data());
    for (int64_t g = 0; g < cols / 32; ++g) {
      const uint32_t zw = uint32_t(za.data<int32_t>()[(r / 8) * za.size(1) + g]);
      ASSERT_EQ(int((zw >> (4 * (r % 8))) & 15) - 8, zeros[g]) << r << "," << g;
      ASSERT_EQ(sa.data<bf16>()[r * sa.size(1) + g].bits, sc[g]);
    }
    for (int64_t c = 0; c < cols; ++c) {
      const uint32_t word = uint32_t(pa.data<int32_t>()[r * pa.size(1) + c / 8]);
      ASSERT_EQ(int((word >> (4 * (c % 8))) & 15) - 8, codes[c]) << r << "," << c;
      const double want = double(codes[c] - zeros[c / 32]) * bf16_to_f32(bf16{sc[c / 32]});
      ASSERT_EQ(lv.value_at(r, c), want) << r << "," << c;
      // Within half a step, or one where the range's end clips.
      ASSERT_LE(std::fabs(want - f[c]), bf16_to_f32(bf16{sc[c / 32]}) * 1.01) << r << "," << c;
    }
  }

  // Not targeted: attention, shared experts, the router and norms (FP8 -> BF16 for linears).
  const std::string attn = fmt::format("model.layers.{}.self_attn.o_proj.weight", moe_layer);
  EXPECT_EQ(out.info(attn)->dtype, DType::bf16);
  const std::string router = fmt::format("model.layers.{}.mlp.gate.weight", moe_layer);
  EXPECT_EQ(out.info(router)->dtype, in.info(router)->dtype);
}

TEST(Quantize, SchemesLoadAndShrinkTheWeights) {
  TempDir tmp;
  const std::string src = make_tiny(tmp.file("src"), GenDtype::fp8);
  ModelOptions mo;
  mo.kv_cache_tokens = 256;
  const std::vector<int32_t> prompt{1, 2, 3, 4, 5, 9, 17, 3};
  auto logits_of = [&](Model& m) {
    BatchEntry e{m.create_sequence(), prompt, true};
    const ForwardOutput out = m.forward({e});
    return std::vector<float>(out.logits.data<float>(),
                              out.logits.data<float>() + out.logits.numel());
  };
  const auto fp8_model = Model::load(src, mo);
  const size_t fp8_bytes = fp8_model->weights().resident_bytes();
  const std::vector<float> ref = logits_of(*fp8_model);
  struct Case {
    QuantScheme s;
    QuantTargets t;
    int group;
    bool keep, asym;
    double max_rel;  // of the logits against the FP8 model's (about twice the measured)
  };
  const Case cases[] = {{QuantScheme::w4a16, QuantTargets::experts, 32, false, false, 0.12},
                        {QuantScheme::w4a8, QuantTargets::mlp, 32, false, false, 0.2},
                        {QuantScheme::w8a16, QuantTargets::all_linear, 32, false, false, 0.02},
                        {QuantScheme::w8a8, QuantTargets::all_linear, 0, false, false, 0.03},
                        {QuantScheme::w4a16, QuantTargets::experts, -1, true, false, 0.12},
                        {QuantScheme::w4a16, QuantTargets::mlp, 32, false, false, 0.4},
                        {QuantScheme::w4a16, QuantTargets::mlp, 32, false, true, 0.4},
                        {QuantScheme::w4a8, QuantTargets::experts, 32, false, true, 0.12},
                        {QuantScheme::w8a16, QuantTargets::all_linear, -1, false, true, 0.02},
                        {QuantScheme::w8a8, QuantTargets::all_linear, 32, false, true, 0.03}};
  int i = 0;
  for (const Case& c : cases) {
    const std::string dst = tmp.file("q" + std::to_string(i++));
    SCOPED_TRACE(std::string(quant_scheme_name(c.s)) + " " + quant_targets_name(c.t) +
                 (c.asym ? " asymmetric" : ""));
    quantize(src, dst, c.s, c.t, c.group, c.keep, c.asym);
    auto m = Model::load(dst, mo);
    const std::vector<float> got = logits_of(*m);
    double num = 0, den = 0;
    for (size_t k = 0; k < got.size(); ++k) {
      ASSERT_TRUE(std::isfinite(got[k]));
      num += (got[k] - ref[k]) * double(got[k] - ref[k]), den += double(ref[k]) * ref[k];
    }
    const double rel = std::sqrt(num / den);
    EXPECT_LT(rel, c.max_rel);
    if (c.keep) {  // every unquantized FP8 projection stays FP8 under a float-quantized group
      EXPECT_TRUE(m->weights().layer(0).attn.o_proj.is_fp8());
      EXPECT_TRUE(m->weights().layer(0).mlp->down_proj.is_fp8());  // a dense layer's MLP
      const int moe = m->config().first_k_dense_replace;
      EXPECT_TRUE(m->weights().layer(moe).moe->shared_experts->gate_proj.is_fp8());
      EXPECT_TRUE(m->weights().layer(moe).moe->experts[0].up_proj.is_int());
      EXPECT_LT(m->weights().resident_bytes(), fp8_bytes);
    }
  }
}

// A quantized checkpoint rewritten with one tensor (or one config field) broken.
class Malformed : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = make_tiny(tmp_.file("src"), GenDtype::bf16);
    quantize(src_, tmp_.file(good_), QuantScheme::w4a16, QuantTargets::experts, 32);
    config_ = load_config(tmp_.file("good/config.json"));
    expert_ =
        fmt::format("model.layers.{}.mlp.experts.0.up_proj.weight", config_.first_k_dense_replace);
  }
  // Copies "good" into a new directory, replacing tensor `name` (or dropping it when undefined;
  // adding it when "good" has none)
  // and applying `edit` to config.json; returns the load error.
  std::string load_error(const std::string& name, const Tensor& replacement,
                         const std::function<void(json&)>& edit = {}) {
    const std::string dir = tmp_.file("bad" + std::to_string(n_++));
    fs::create_directories(dir);
    const auto ck = SafetensorsCheckpoint::open(tmp_.file(good_));
    std::vector<NamedTensor> all;
    for (const std::string& t : ck.names()) {
      if (t == name) {
        if (replacement.defined()) all.push_back({t, replacement});
        continue;
      }
      all.push_back({t, ck.get(t)});
    }
    if (!ck.has(name) && replacement.defined()) all.push_back({name, replacement});  // an extra
    write_safetensors(dir + "/model.safetensors", all);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      if (fs::exists(tmp_.file(good_ + "/" + f)))
        fs::copy_file(tmp_.file(good_ + "/" + f), dir + "/" + f);
    json cfg = json::parse(std::ifstream(tmp_.file(good_ + "/config.json")));
    if (edit) edit(cfg);
    std::ofstream(dir + "/config.json") << cfg.dump();
    try {
      ModelOptions mo;
      mo.kv_cache_tokens = 64;
      Model::load(dir, mo);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  }
  TempDir tmp_;
  std::string good_ = "good";  // the checkpoint load_error starts from
  std::string src_, expert_;
  ModelConfig config_;
  int n_ = 0;
};

TEST_F(Malformed, GoodOneLoads) {
  EXPECT_EQ(load_error("", Tensor()), "");
}

TEST_F(Malformed, WrongPackedShapeOrDtype) {
  const auto ck = SafetensorsCheckpoint::open(tmp_.file("good"));
  const Tensor p = ck.get(expert_ + "_packed");
  std::string e =
      load_error(expert_ + "_packed", Tensor::empty(DType::i32, {p.size(0), p.size(1) + 1}));
  EXPECT_NE(e.find(expert_ + "_packed"), std::string::npos) << e;
  EXPECT_NE(e.find("expected I32"), std::string::npos) << e;
  e = load_error(expert_ + "_packed", Tensor::empty(DType::i8, p.shape()));
  EXPECT_NE(e.find("I8"), std::string::npos) << e;
  e = load_error(expert_ + "_packed", Tensor());
  EXPECT_NE(e.find("missing tensor '" + expert_ + "_packed'"), std::string::npos) << e;
}

TEST_F(Malformed, WrongScaleShapeDtypeOrValue) {
  const auto ck = SafetensorsCheckpoint::open(tmp_.file("good"));
  const Tensor s = ck.get(expert_ + "_scale");
  std::string e =
      load_error(expert_ + "_scale", Tensor::empty(DType::bf16, {s.size(0), s.size(1) / 2}));
  EXPECT_NE(e.find(expert_ + "_scale"), std::string::npos) << e;
  EXPECT_NE(e.find("one scale per 32 inputs"), std::string::npos) << e;
  e = load_error(expert_ + "_scale", Tensor::empty(DType::i32, s.shape()));
  EXPECT_NE(e.find("expected BF16, F16 or F32"), std::string::npos) << e;
  Tensor nan = Tensor::empty(DType::f32, s.shape());
  for (int64_t i = 0; i < nan.numel(); ++i) nan.data<float>()[i] = i == 5 ? NAN : 0.01f;
  e = load_error(expert_ + "_scale", nan);
  EXPECT_NE(e.find("not a finite scale"), std::string::npos) << e;
}

// Asymmetric: the zero points' tensor missing, of the wrong dtype or of the unpacked shape.
TEST_F(Malformed, WrongZeroPoints) {
  QuantizeOptions o;
  o.src = src_, o.dst = tmp_.file("good_asym"), o.group = 32, o.asymmetric = true;
  quantize_checkpoint(o);
  good_ = "good_asym";
  EXPECT_EQ(load_error("", Tensor()), "");
  const std::string zp = expert_ + "_zero_point";
  const Tensor z = SafetensorsCheckpoint::open(tmp_.file("good_asym")).get(zp);
  std::string e = load_error(zp, Tensor());
  EXPECT_NE(e.find("missing tensor '" + zp + "'"), std::string::npos) << e;
  e = load_error(zp, Tensor::empty(DType::i8, z.shape()));
  EXPECT_NE(e.find(zp), std::string::npos) << e;
  EXPECT_NE(e.find("expected I32"), std::string::npos) << e;
  e = load_error(zp, Tensor::empty(DType::i32, {z.size(0) * 8, z.size(1)}));
  EXPECT_NE(e.find("8 per I32 along the outputs"), std::string::npos) << e;
}

TEST_F(Malformed, WrongWeightShapeTensor) {
  Tensor sh = Tensor::empty(DType::i32, {2});
  sh.data<int32_t>()[0] = 1, sh.data<int32_t>()[1] = 2;
  const std::string e = load_error(expert_ + "_shape", sh);
  EXPECT_NE(e.find(expert_ + "_shape"), std::string::npos) << e;
}

TEST_F(Malformed, ConfigFields) {
  auto group = [](json& c) -> json& {
    return c["quantization_config"]["config_groups"]["group_0"];
  };
  std::string e = load_error("", Tensor(), [&](json& c) { group(c)["weights"]["num_bits"] = 3; });
  EXPECT_NE(e.find("config_groups.group_0.weights.num_bits"), std::string::npos) << e;
  // group_size 48 does not divide the experts' inputs (the tiny hidden size is a power of two).
  e = load_error("", Tensor(), [&](json& c) { group(c)["weights"]["group_size"] = 48; });
  EXPECT_NE(e.find("group_size 48 does not divide"), std::string::npos) << e;
  e = load_error("", Tensor(), [&](json& c) { group(c)["weights"]["symmetric"] = false; });
  EXPECT_NE(e.find("weight_zero_point"), std::string::npos) << e;
  e = load_error("", Tensor(), [&](json& c) { group(c)["weights"]["strategy"] = "tensor"; });
  EXPECT_NE(e.find("weights.strategy"), std::string::npos) << e;
  e = load_error("", Tensor(), [&](json& c) { group(c)["format"] = "marlin-24"; });
  EXPECT_NE(e.find("group_0.format"), std::string::npos) << e;
  e = load_error("", Tensor(), [&](json& c) { group(c)["targets"] = {"DeepseekV3MLP"}; });
  EXPECT_NE(e.find("targets[0]"), std::string::npos) << e;
  e = load_error("", Tensor(),
                 [&](json& c) { c["quantization_config"]["config_groups"]["group_1"] = group(c); });
  EXPECT_NE(e.find("both config group"), std::string::npos) << e;
  e = load_error("", Tensor(),
                 [&](json& c) { c["quantization_config"]["quantization_status"] = "frozen"; });
  EXPECT_NE(e.find("quantization_status"), std::string::npos) << e;
  // actorder: "weight" / "static" (and null / false) keep the format -- they load; "group" /
  // "dynamic" / true need weight_g_idx (missing here) and strategy "group"; anything else fails.
  for (json a : {json("weight"), json("static"), json("Static"), json(nullptr), json(false)})
    EXPECT_EQ(load_error("", Tensor(), [&](json& c) { group(c)["weights"]["actorder"] = a; }), "")
        << a;
  for (json a : {json("group"), json("dynamic"), json(true)}) {
    e = load_error("", Tensor(), [&](json& c) { group(c)["weights"]["actorder"] = a; });
    EXPECT_NE(e.find("missing tensor '" + expert_ + "_g_idx'"), std::string::npos) << a << e;
  }
  e = load_error("", Tensor(), [&](json& c) { group(c)["weights"]["actorder"] = "columns"; });
  EXPECT_NE(e.find("weights.actorder"), std::string::npos) << e;
  e = load_error("", Tensor(), [&](json& c) {
    group(c)["weights"]["actorder"] = "group";
    group(c)["weights"]["strategy"] = "channel";
  });
  EXPECT_NE(e.find("needs strategy \"group\""), std::string::npos) << e;
  // A weight_g_idx beside a layer without group ordering must be the contiguous grouping.
  Tensor gidx = Tensor::empty(DType::i32, {config_.hidden_size});
  for (int64_t k = 0; k < config_.hidden_size; ++k) gidx.data<int32_t>()[k] = int32_t(k / 32);
  EXPECT_EQ(load_error(expert_ + "_g_idx", gidx), "");
  std::swap(gidx.data<int32_t>()[0], gidx.data<int32_t>()[40]);
  e = load_error(expert_ + "_g_idx", gidx);
  EXPECT_NE(e.find("has no group activation ordering"), std::string::npos) << e;
}

TEST(Quantize, RefusesBadRequests) {
  TempDir tmp;
  const std::string src = make_tiny(tmp.file("src"), GenDtype::bf16);
  // BF16 attention cannot be "kept FP8".
  EXPECT_THROW(quantize(src, tmp.file("a"), QuantScheme::w4a16, QuantTargets::experts, 32, true),
               std::runtime_error);
  // The tiny experts' 32 inputs: the default group of 128 does not fit.
  EXPECT_THROW(quantize(src, tmp.file("e"), QuantScheme::w4a16, QuantTargets::experts),
               std::runtime_error);
  quantize(src, tmp.file("b"), QuantScheme::w4a16, QuantTargets::experts, 32);
  try {  // a non-empty output
    quantize(src, tmp.file("b"), QuantScheme::w4a16, QuantTargets::experts, 32);
    ADD_FAILURE() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("not empty"), std::string::npos) << e.what();
  }
  try {  // already quantized
    quantize(tmp.file("b"), tmp.file("c"), QuantScheme::w8a8, QuantTargets::experts);
    ADD_FAILURE() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("already compressed-tensors"), std::string::npos);
  }
  EXPECT_THROW(quantize(src, tmp.file("d"), QuantScheme::w4a16, QuantTargets::experts, 48),
               std::invalid_argument);
}

}  // namespace
}  // namespace dsinfer

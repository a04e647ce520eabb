#include "model/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/safetensors_writer.h"
#include "model_test_util.h"

namespace dsinfer {
namespace {

using nlohmann::json;
using testing::patterned_tensor;
using testing::TempDir;

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

TEST(Safetensors, RoundTripsEveryDtype) {
  TempDir dir;
  std::vector<NamedTensor> tensors;
  const DType all[] = {DType::f32, DType::bf16, DType::f16, DType::fp8_e4m3, DType::ue8m0,
                       DType::i8,  DType::i32,  DType::i64, DType::u8};
  uint32_t seed = 1;
  for (DType t : all) {
    std::string name(dtype_name(t));
    // Odd sizes, so a naive writer would misalign what follows.
    tensors.push_back({name + ".matrix", patterned_tensor(t, {3, 5}, seed++)});
    tensors.push_back({name + ".scalar", patterned_tensor(t, {}, seed++)});
    tensors.push_back({name + ".empty", patterned_tensor(t, {0, 7}, seed++)});
  }
  std::string path = dir.file("all.safetensors");
  write_safetensors(path, tensors, {{"format", "pt"}});

  SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(path);
  EXPECT_EQ(ckpt.size(), tensors.size());
  size_t total = 0;
  for (const NamedTensor& t : tensors) {
    SCOPED_TRACE(t.name);
    ASSERT_TRUE(ckpt.has(t.name));
    const TensorInfo* info = ckpt.info(t.name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->dtype, t.tensor.dtype());
    EXPECT_EQ(info->shape, t.tensor.shape());
    EXPECT_EQ(info->file, path);
    Tensor back = ckpt.get(t.name);
    EXPECT_EQ(back.dtype(), t.tensor.dtype());
    EXPECT_EQ(back.shape(), t.tensor.shape());
    EXPECT_TRUE(same_bytes(back, t.tensor));
    if (back.nbytes() > 0) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(back.raw()) % dtype_size(back.dtype()), 0u);
    }
    total += t.tensor.nbytes();
  }
  EXPECT_EQ(ckpt.total_bytes(), total);
  EXPECT_FALSE(ckpt.has("F32.matrix"));
  EXPECT_EQ(ckpt.info("nope"), nullptr);
  std::vector<std::string> names = ckpt.names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
}

// The layout the `safetensors` library itself accepts: padded header, contiguous data from 0.
TEST(Safetensors, WriterProducesTheReferenceLayout) {
  TempDir dir;
  std::string path = dir.file("x.safetensors");
  write_safetensors(path,
                    {{"b", patterned_tensor(DType::u8, {3}, 1)},
                     {"a", patterned_tensor(DType::f32, {2}, 2)},
                     {"c", patterned_tensor(DType::bf16, {5}, 3)}},
                    {{"format", "pt"}});
  std::string bytes = testing::read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);  // little-endian host
  EXPECT_EQ((8 + n) % 8, 0u);
  json header = json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["__metadata__"]["format"], "pt");
  // Largest element first, then by name; no gaps.
  EXPECT_EQ(header["a"]["data_offsets"], json({0, 8}));
  EXPECT_EQ(header["c"]["data_offsets"], json({8, 18}));
  EXPECT_EQ(header["b"]["data_offsets"], json({18, 21}));
  EXPECT_EQ(header["c"]["dtype"], "BF16");
  EXPECT_EQ(header["c"]["shape"], json({5}));
  EXPECT_EQ(bytes.size(), 8 + n + 21);
}

TEST(Safetensors, ShardedCheckpointWithIndex) {
  TempDir dir;
  std::vector<NamedTensor> tensors;
  for (int i = 0; i < 10; ++i)
    tensors.push_back(
        {"layer." + std::to_string(i) + ".w", patterned_tensor(DType::bf16, {16, 8}, i)});
  tensors.push_back({"big", patterned_tensor(DType::f32, {300}, 99)});  // alone in its shard
  std::vector<std::string> shards = write_sharded_checkpoint(dir.path(), tensors, 600);
  ASSERT_GT(shards.size(), 3u);
  EXPECT_EQ(shards.front(), "model-00001-of-0000" + std::to_string(shards.size()) + ".safetensors");

  json index = json::parse(testing::read_bytes(dir.file("model.safetensors.index.json")));
  size_t total = 0;
  for (const NamedTensor& t : tensors) total += t.tensor.nbytes();
  EXPECT_EQ(index["metadata"]["total_size"], total);
  EXPECT_EQ(index["weight_map"]["big"], shards.back());

  for (const std::string& source : {dir.path(), dir.file("model.safetensors.index.json")}) {
    SCOPED_TRACE(source);
    SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(source);
    EXPECT_EQ(ckpt.files().size(), shards.size());
    EXPECT_EQ(ckpt.size(), tensors.size());
    EXPECT_EQ(ckpt.total_bytes(), total);
    for (const NamedTensor& t : tensors) {
      EXPECT_TRUE(same_bytes(ckpt.get(t.name), t.tensor)) << t.name;
      EXPECT_EQ(ckpt.info(t.name)->file, dir.file(index["weight_map"][t.name]));
    }
  }
}

TEST(Safetensors, DirectoryWithoutIndexReadsEveryFile) {
  TempDir dir;
  write_safetensors(dir.file("one.safetensors"), {{"a", patterned_tensor(DType::f16, {4}, 1)}});
  write_safetensors(dir.file("two.safetensors"), {{"b", patterned_tensor(DType::f16, {4}, 2)}});
  testing::write_bytes(dir.file("notes.txt"), "not a shard");
  SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir.path());
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ckpt.info("b")->file, dir.file("two.safetensors"));
}

TEST(Safetensors, ViewsAreZeroCopyAndOutliveTheCheckpoint) {
  TempDir dir;
  Tensor original = patterned_tensor(DType::f32, {64}, 5);
  write_safetensors(dir.file("m.safetensors"), {{"w", original}});
  Tensor kept;
  {
    SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir.file("m.safetensors"));
    kept = ckpt.get("w");
    EXPECT_EQ(ckpt.get("w").raw(), kept.raw());  // the same mapped bytes, not a copy
  }
  EXPECT_TRUE(same_bytes(kept, original));  // the mapping lives on with the view
}

// Files written before the library aligned its header leave typed data misaligned; those
// tensors come back as aligned copies with the right contents.
TEST(Safetensors, MisalignedDataIsCopied) {
  TempDir dir;
  std::string header = R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})";
  ASSERT_NE((8 + header.size()) % 4, 0u);
  float values[3] = {1.5f, -2.0f, 3.25f};
  std::string data(reinterpret_cast<const char*>(values), 12);
  testing::write_raw_safetensors(dir.file("old.safetensors"), header, data);
  SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir.file("old.safetensors"));
  Tensor w = ckpt.get("w");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w.raw()) % 4, 0u);
  EXPECT_EQ(w.data<float>()[0], 1.5f);
  EXPECT_EQ(w.data<float>()[2], 3.25f);
}

TEST(Safetensors, WriterRejectsBadInput) {
  TempDir dir;
  std::string path = dir.file("bad.safetensors");
  Tensor t = patterned_tensor(DType::f32, {4}, 1);
  testing::expect_error([&] { write_safetensors(path, {{"x", t}, {"x", t}}); }, {path, "'x'"});
  testing::expect_error([&] { write_safetensors(path, {{"", t}}); }, {path, "empty name"});
  testing::expect_error(
      [&] {
        write_safetensors(path, {{"__metadata__", t}});
      },
      {path, "__metadata__"});
  testing::expect_error(
      [&] {
        write_safetensors(path, {{"undefined", Tensor()}});
      },
      {path, "'undefined'"});
  testing::expect_error(
      [&] {
        write_safetensors(dir.file("missing/dir.safetensors"), {{"x", t}});
      },
      {"missing/dir.safetensors"});
}

}  // namespace
}  // namespace dsinfer

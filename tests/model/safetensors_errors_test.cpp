// Every malformed checkpoint is an error that names the file and, where there is one, the tensor.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/safetensors.h"
#include "model/safetensors_writer.h"
#include "model_test_util.h"

namespace dsinfer {
namespace {

using nlohmann::json;
using testing::expect_error;
using testing::TempDir;
using testing::write_raw_safetensors;

void expect_open_error(const std::string& source, const std::vector<std::string>& parts) {
  expect_error([&] { SafetensorsCheckpoint::open(source); }, parts);
}

// A header with one tensor "w" of F32 [2, 2] over `data_bytes` bytes of data.
void write_one(const std::string& path, const json& entry, size_t data_bytes = 16) {
  write_raw_safetensors(path, json{{"w", entry}}.dump(), std::string(data_bytes, '\0'));
}

json good_entry() {
  return {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {0, 16}}};
}

TEST(SafetensorsErrors, GoodEntryIsAccepted) {
  TempDir dir;
  write_one(dir.file("m.safetensors"), good_entry());
  EXPECT_EQ(SafetensorsCheckpoint::open(dir.file("m.safetensors")).size(), 1u);
}

TEST(SafetensorsErrors, FileTooSmallForTheHeaderLength) {
  TempDir dir;
  std::string path = dir.file("m.safetensors");
  testing::write_bytes(path, "abc");
  expect_open_error(path, {path, "too small"});
  testing::write_bytes(path, "");
  expect_open_error(path, {path, "too small"});
}

TEST(SafetensorsErrors, HeaderLengthBeyondTheFile) {
  TempDir dir;
  std::string path = dir.file("m.safetensors");
  testing::write_bytes(path, testing::u64_le(1000) + "{}");
  expect_open_error(path, {path, "header length 1000"});
  testing::write_bytes(path, testing::u64_le(~uint64_t(0)) + "{}");
  expect_open_error(path, {path, "header length"});
}

TEST(SafetensorsErrors, TruncatedFile) {
  TempDir dir;
  std::string path = dir.file("m.safetensors");
  write_safetensors(path, {{"first", testing::patterned_tensor(DType::f32, {8}, 1)},
                           {"second", testing::patterned_tensor(DType::f32, {8}, 2)}});
  std::string bytes = testing::read_bytes(path);
  testing::write_bytes(path, bytes.substr(0, bytes.size() - 4));
  expect_open_error(path, {path, "'second'", "truncated"});
}

TEST(SafetensorsErrors, InvalidJsonHeader) {
  TempDir dir;
  std::string path = dir.file("m.safetensors");
  write_raw_safetensors(path, R"({"w": {"dtype": "F32",)", "");
  expect_open_error(path, {path, "invalid JSON"});
  write_raw_safetensors(path, R"([1, 2])", "");
  expect_open_error(path, {path, "not a JSON object"});
}

TEST(SafetensorsErrors, MalformedEntries) {
  TempDir dir;
  std::string path = dir.file("m.safetensors");
  struct Case {
    const char* what;
    json entry;
    const char* message;
  };
  json no_dtype = good_entry(), no_shape = good_entry(), no_offsets = good_entry();
  no_dtype.erase("dtype");
  no_shape.erase("shape");
  no_offsets.erase("data_offsets");
  for (const Case& c : {
           Case{"unknown dtype",
                {{"dtype", "Q4_K"}, {"shape", {2, 2}}, {"data_offsets", {0, 16}}},
                "unknown dtype"},
           Case{"missing dtype", no_dtype, "'dtype'"},
           Case{"missing shape", no_shape, "'shape'"},
           Case{"missing offsets", no_offsets, "'data_offsets'"},
           Case{"negative dim",
                {{"dtype", "F32"}, {"shape", {-2, 2}}, {"data_offsets", {0, 16}}},
                "non-negative"},
           Case{"fractional dim",
                {{"dtype", "F32"}, {"shape", {2.5}}, {"data_offsets", {0, 16}}},
                "non-negative"},
           Case{"too many dims",
                {{"dtype", "U8"}, {"shape", {1, 1, 1, 1, 1, 1, 16}}, {"data_offsets", {0, 16}}},
                "dimensions"},
           Case{"size mismatch",
                {{"dtype", "F32"}, {"shape", {2, 3}}, {"data_offsets", {0, 16}}},
                "needs 24"},
           Case{"overflowing shape",
                {{"dtype", "F32"},
                 {"shape", {1ull << 40, 1ull << 40, 1ull << 40}},
                 {"data_offsets", {0, 16}}},
                "overflows"},
           Case{"product wrapping to zero",
                {{"dtype", "U8"}, {"shape", {1ull << 32, 1ull << 32}}, {"data_offsets", {0, 0}}},
                "overflows"},
           Case{"offsets reversed",
                {{"dtype", "F32"}, {"shape", {0}}, {"data_offsets", {16, 0}}},
                "outside"},
           Case{"offsets past the end",
                {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {8, 24}}},
                "outside"},
           Case{"offsets not a pair",
                {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {16}}},
                "data_offsets"},
           Case{"entry not an object", json(5), "object"},
       }) {
    SCOPED_TRACE(c.what);
    write_one(path, c.entry);
    expect_open_error(path, {path, "'w'", c.message});
  }
}

TEST(SafetensorsErrors, BadMetadata) {
  TempDir dir;
  std::string path = dir.file("m.safetensors");
  write_raw_safetensors(path, json{{"__metadata__", {{"format", 1}}}, {"w", good_entry()}}.dump(),
                        std::string(16, '\0'));
  expect_open_error(path, {path, "__metadata__", "'format'"});
}

TEST(SafetensorsErrors, OverlappingTensors) {
  TempDir dir;
  std::string path = dir.file("m.safetensors");
  json header = {{"a", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 16}}}},
                 {"b", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {8, 16}}}}};
  write_raw_safetensors(path, header.dump(), std::string(16, '\0'));
  expect_open_error(path, {path, "'b'", "'a'", "overlaps"});
}

TEST(SafetensorsErrors, DuplicateNameInOneHeader) {
  TempDir dir;
  std::string path = dir.file("m.safetensors");
  std::string entry = good_entry().dump();
  write_raw_safetensors(path, "{\"w\": " + entry + ", \"w\": " + entry + "}",
                        std::string(16, '\0'));
  expect_open_error(path, {path, "'w'", "twice"});
}

TEST(SafetensorsErrors, DuplicateNameAcrossShards) {
  TempDir dir;
  write_one(dir.file("a.safetensors"), good_entry());
  write_one(dir.file("b.safetensors"), good_entry());
  expect_open_error(dir.path(), {dir.file("a.safetensors"), dir.file("b.safetensors"), "'w'"});
}

TEST(SafetensorsErrors, IndexProblems) {
  TempDir dir;
  std::string index = dir.file("model.safetensors.index.json");
  write_one(dir.file("s1.safetensors"), good_entry());

  testing::write_bytes(index, R"({"weight_map": {"w": "s1.safetensors", "v": "s2.safetensors"}})");
  expect_open_error(dir.path(), {index, "'v'", "s2.safetensors", "missing"});

  testing::write_bytes(index, R"({"weight_map": {"w": "s1.safetensors", "v": "s1.safetensors"}})");
  expect_open_error(dir.path(), {dir.file("s1.safetensors"), "'v'", "missing from this shard"});

  testing::write_bytes(index, R"({"weight_map": {"w": "s1.safetensors")");
  expect_open_error(dir.path(), {index, "invalid JSON"});

  testing::write_bytes(index, R"({"metadata": {}})");
  expect_open_error(dir.path(), {index, "weight_map"});

  testing::write_bytes(index, R"({"weight_map": {"w": 3}})");
  expect_open_error(dir.path(), {index, "'w'"});

  // A shard's own problem names the shard and tensor even when reached through the index.
  testing::write_bytes(index, R"({"weight_map": {"w": "s1.safetensors"}})");
  write_one(dir.file("s1.safetensors"),
            {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {0, 32}}});
  expect_open_error(dir.path(), {dir.file("s1.safetensors"), "'w'"});
}

TEST(SafetensorsErrors, NothingToOpen) {
  TempDir dir;
  expect_open_error(dir.file("absent"), {dir.file("absent"), "no such file"});
  expect_open_error(dir.path(), {dir.path(), "*.safetensors"});
  std::filesystem::create_directory(dir.file("sub"));
  expect_open_error(dir.file("sub"), {dir.file("sub")});
}

TEST(SafetensorsErrors, GetOfAnAbsentTensorNamesIt) {
  TempDir dir;
  write_one(dir.file("m.safetensors"), good_entry());
  SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir.file("m.safetensors"));
  expect_error([&] { ckpt.get("nope"); }, {dir.file("m.safetensors"), "'nope'"});
}

}  // namespace
}  // namespace dsinfer

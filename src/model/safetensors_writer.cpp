#include "model/safetensors_writer.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "model/safetensors.h"

namespace dsinfer {

using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& file, std::string_view problem) {
  throw std::runtime_error(fmt::format("{}: {}", file, problem));
}

void check_names(const std::string& file, const std::vector<const NamedTensor*>& tensors) {
  std::set<std::string_view> seen;
  for (const NamedTensor* t : tensors) {
    if (t->name.empty()) fail(file, "a tensor has an empty name");
    if (t->name == "__metadata__") fail(file, "'__metadata__' is reserved, not a tensor name");
    if (!seen.insert(t->name).second) fail(file, fmt::format("tensor '{}' given twice", t->name));
    if (!t->tensor.is_contiguous() || !t->tensor.defined())
      fail(file, fmt::format("tensor '{}' is not a contiguous defined tensor", t->name));
  }
}

void write_file(const std::string& path, const std::vector<const NamedTensor*>& tensors,
                const std::map<std::string, std::string>& metadata) {
  check_names(path, tensors);
  std::vector<const NamedTensor*> order = tensors;
  // Larger element sizes first: every offset then stays a multiple of the element size.
  std::sort(order.begin(), order.end(), [](const NamedTensor* a, const NamedTensor* b) {
    size_t sa = dtype_size(a->tensor.dtype()), sb = dtype_size(b->tensor.dtype());
    return sa != sb ? sa > sb : a->name < b->name;
  });
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const NamedTensor* t : order) {
    size_t end = offset + t->tensor.nbytes();
    header[t->name] = {{"dtype", safetensors_dtype_name(t->tensor.dtype())},
                       {"shape", t->tensor.shape()},
                       {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');  // data starts 8-byte aligned

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(path, "cannot create file");
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(text.data(), std::streamsize(text.size()));
  for (const NamedTensor* t : order)
    if (t->tensor.nbytes() > 0)
      out.write(static_cast<const char*>(t->tensor.raw()), std::streamsize(t->tensor.nbytes()));
  out.close();
  if (!out) fail(path, "write failed");
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const NamedTensor*> all;
  for (const NamedTensor& t : tensors) all.push_back(&t);
  write_file(path, all, metadata);
}

std::vector<std::string> write_sharded_checkpoint(const std::string& dir,
                                                  const std::vector<NamedTensor>& tensors,
                                                  size_t max_shard_bytes) {
  const std::string index_path =
      (std::filesystem::path(dir) / "model.safetensors.index.json").string();
  std::vector<const NamedTensor*> all;
  for (const NamedTensor& t : tensors) all.push_back(&t);
  check_names(index_path, all);  // before any shard is written

  std::vector<std::vector<const NamedTensor*>> shards;
  size_t shard_bytes = 0;
  for (const NamedTensor* t : all) {
    size_t bytes = t->tensor.nbytes();
    if (shards.empty() || (!shards.back().empty() && shard_bytes + bytes > max_shard_bytes)) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(t);
    shard_bytes += bytes;
  }

  std::vector<std::string> names;
  std::map<std::string, std::string> weight_map;
  size_t total = 0;
  for (size_t i = 0; i < shards.size(); ++i) {
    names.push_back(fmt::format("model-{:05}-of-{:05}.safetensors", i + 1, shards.size()));
    write_file((std::filesystem::path(dir) / names.back()).string(), shards[i], {{"format", "pt"}});
    for (const NamedTensor* t : shards[i]) {
      weight_map[t->name] = names.back();
      total += t->tensor.nbytes();
    }
  }
  write_checkpoint_index(dir, weight_map, total);
  return names;
}

void write_checkpoint_index(const std::string& dir,
                            const std::map<std::string, std::string>& weight_map,
                            size_t total_bytes) {
  const std::string index_path =
      (std::filesystem::path(dir) / "model.safetensors.index.json").string();
  json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
  std::ofstream out(index_path, std::ios::trunc);
  if (!out) fail(index_path, "cannot create file");
  out << index.dump(2) << '\n';
  out.close();
  if (!out) fail(index_path, "write failed");
}

}  // namespace dsinfer

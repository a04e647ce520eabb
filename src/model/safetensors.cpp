#include "model/safetensors.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "core/log.h"

namespace dsinfer {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
// The reference implementation refuses larger headers; a bigger one means a corrupt length.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

[[noreturn]] void fail(const std::string& file, std::string_view problem) {
  throw std::runtime_error(fmt::format("{}: {}", file, problem));
}

std::string shape_text(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// Parses JSON text, turning a syntax error into a message naming the file and what it holds.
// Reports the first key that repeats among the top-level keys: nlohmann would silently keep the
// last one, hiding a second tensor of the same name.
json parse_json(const std::string& file, std::string_view text, std::string_view what,
                std::string* duplicate_key) {
  std::vector<std::string> keys;
  json::parser_callback_t note_keys = [&](int depth, json::parse_event_t event, json& parsed) {
    if (duplicate_key && depth == 1 && event == json::parse_event_t::key)
      keys.push_back(parsed.get<std::string>());
    return true;
  };
  json parsed;
  try {
    parsed = json::parse(text.begin(), text.end(), note_keys);
  } catch (const json::parse_error& e) {
    fail(file, fmt::format("invalid JSON in the {}: {}", what, e.what()));
  }
  if (duplicate_key) {
    std::sort(keys.begin(), keys.end());
    auto dup = std::adjacent_find(keys.begin(), keys.end());
    *duplicate_key = dup == keys.end() ? "" : *dup;
  }
  return parsed;
}

uint64_t read_u64_le(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// dtype, shape and data_offsets of one header entry, checked against the data area's size.
TensorInfo parse_entry(const std::string& file, const std::string& name, const json& entry,
                       size_t data_start, size_t data_size) {
  auto bad = [&](std::string_view problem) {
    fail(file, fmt::format("tensor '{}': {}", name, problem));
  };
  if (!entry.is_object()) bad(fmt::format("header entry must be an object, got {}", entry.dump()));
  auto field = [&](const char* key) -> const json& {
    auto it = entry.find(key);
    if (it == entry.end()) bad(fmt::format("header entry has no '{}'", key));
    return *it;
  };
  TensorInfo info;
  info.file = file;
  const json& dtype = field("dtype");
  if (!dtype.is_string() || !dtype_from_safetensors(dtype.get<std::string>(), &info.dtype))
    bad(fmt::format("unknown dtype {}", dtype.dump()));

  const json& shape = field("shape");
  if (!shape.is_array()) bad(fmt::format("shape must be a list, got {}", shape.dump()));
  if (shape.size() > size_t(Tensor::kMaxDims))
    bad(fmt::format("shape {} has more than {} dimensions", shape.dump(), Tensor::kMaxDims));
  uint64_t need = dtype_size(info.dtype);  // bytes the shape needs
  bool overflow = false, empty = false;
  for (const json& d : shape) {
    if (!d.is_number_unsigned())
      bad(fmt::format("shape {} is not all non-negative integers", shape.dump()));
    uint64_t n = d.get<uint64_t>();
    if (n > uint64_t(INT64_MAX)) bad(fmt::format("shape {} is too large", shape.dump()));
    info.shape.push_back(int64_t(n));
    overflow |= __builtin_mul_overflow(need, n, &need);
    empty |= n == 0;
  }
  if (overflow && !empty) bad(fmt::format("shape {} overflows 64 bits", shape.dump()));

  const json& offsets = field("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    bad(fmt::format("data_offsets must be [begin, end], got {}", offsets.dump()));
  uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
  if (begin > end || end > data_size)
    bad(fmt::format("data_offsets [{}, {}] are outside the {} data bytes of the file (truncated?)",
                    begin, end, data_size));
  if (end - begin != need)
    bad(fmt::format("data_offsets [{}, {}] hold {} bytes, but shape {} of {} needs {}", begin, end,
                    end - begin, shape_text(info.shape), safetensors_dtype_name(info.dtype), need));
  info.offset = data_start + begin;
  info.nbytes = size_t(need);
  return info;
}

void check_metadata(const std::string& file, const json& metadata) {
  if (!metadata.is_object())
    fail(file, fmt::format("__metadata__ must be an object, got {}", metadata.dump()));
  for (const auto& [key, value] : metadata.items())
    if (!value.is_string())
      fail(file, fmt::format("__metadata__ '{}' must be a string, got {}", key, value.dump()));
}

// Two tensors whose bytes overlap would alias each other: a corrupt or hostile header.
void check_no_overlap(const std::string& file,
                      const std::vector<std::pair<std::string, TensorInfo>>& tensors) {
  std::vector<const std::pair<std::string, TensorInfo>*> by_offset;
  for (const auto& t : tensors)
    if (t.second.nbytes > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](auto* a, auto* b) { return a->second.offset < b->second.offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const auto& prev = *by_offset[i - 1];
    const auto& cur = *by_offset[i];
    if (cur.second.offset < prev.second.offset + prev.second.nbytes)
      fail(file, fmt::format("tensor '{}': data overlaps tensor '{}'", cur.first, prev.first));
  }
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) fail(path, "read error");
  return text.str();
}

}  // namespace

std::string_view safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "F32";
    case DType::bf16:
      return "BF16";
    case DType::f16:
      return "F16";
    case DType::fp8_e4m3:
      return "F8_E4M3";
    case DType::ue8m0:
      return "F8_E8M0";
    case DType::i8:
      return "I8";
    case DType::i32:
      return "I32";
    case DType::i64:
      return "I64";
    case DType::u8:
      return "U8";
    case DType::u4:
      return "U4 (not a safetensors dtype)";
  }
  return "?";
}

struct SafetensorsCheckpoint::Shard {
  std::shared_ptr<MappedFile> map;
  std::vector<std::pair<std::string, TensorInfo>> tensors;

  explicit Shard(const std::string& path) : map(std::make_shared<MappedFile>(path)) {
    const size_t size = map->bytes();
    if (size < 8)
      fail(path, fmt::format("file of {} bytes is too small for a safetensors header", size));
    const auto* bytes = static_cast<const unsigned char*>(map->data());
    uint64_t header_len = read_u64_le(bytes);
    if (header_len > size - 8)
      fail(path, fmt::format("header length {} exceeds the {} bytes after it (truncated file?)",
                             header_len, size - 8));
    if (header_len > kMaxHeaderBytes)
      fail(path, fmt::format("header length {} is larger than the {} bytes allowed", header_len,
                             kMaxHeaderBytes));
    std::string_view text(reinterpret_cast<const char*>(bytes + 8), header_len);
    std::string duplicate;
    json header = parse_json(path, text, "safetensors header", &duplicate);
    if (!header.is_object()) fail(path, "safetensors header is not a JSON object");
    if (!duplicate.empty())
      fail(path, fmt::format("tensor '{}': declared twice in the header", duplicate));
    const size_t data_start = 8 + header_len;
    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        check_metadata(path, entry);
        continue;
      }
      tensors.emplace_back(name, parse_entry(path, name, entry, data_start, size - data_start));
    }
    check_no_overlap(path, tensors);
  }
};

void SafetensorsCheckpoint::add_shard(const Shard& shard,
                                      const std::map<std::string, std::string>* expected) {
  const std::string& path = shard.map->path();
  int index = int(shards_.size());
  shards_.push_back(shard.map);
  size_t unlisted = 0;
  for (const auto& [name, info] : shard.tensors) {
    auto [it, inserted] = tensors_.try_emplace(name, Entry{info, index});
    if (!inserted)
      fail(path, fmt::format("tensor '{}': also present in {}", name, it->second.info.file));
    total_bytes_ += info.nbytes;
    if (expected && !expected->count(name)) ++unlisted;
  }
  // Loaders that follow the index ignore such tensors; they are kept, but worth a word.
  if (unlisted) log_warn("%s: %zu tensors are not listed in the index", path.c_str(), unlisted);
}

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::string& dir_or_file) {
  SafetensorsCheckpoint ckpt;
  ckpt.source_ = dir_or_file;
  std::error_code ec;
  fs::path root(dir_or_file);
  fs::path index;
  std::vector<fs::path> files;
  if (fs::is_directory(root, ec)) {
    if (fs::exists(root / kIndexName, ec)) {
      index = root / kIndexName;
    } else {
      for (const auto& e : fs::directory_iterator(root, ec))
        if (e.path().extension() == ".safetensors") files.push_back(e.path());
      if (ec) fail(dir_or_file, "cannot list directory: " + ec.message());
      if (files.empty())
        fail(dir_or_file,
             fmt::format("directory has neither {} nor *.safetensors files", kIndexName));
      std::sort(files.begin(), files.end());
    }
  } else if (!fs::exists(root, ec)) {
    fail(dir_or_file, "no such file or directory");
  } else if (root.extension() == ".json") {
    index = root;
  } else {
    files.push_back(root);
  }

  if (index.empty()) {
    for (const fs::path& f : files) ckpt.add_shard(Shard(f.string()), nullptr);
    return ckpt;
  }

  const std::string index_path = index.string();
  json index_json = parse_json(index_path, read_text_file(index_path), "index", nullptr);
  if (!index_json.is_object() || !index_json.contains("weight_map") ||
      !index_json["weight_map"].is_object())
    fail(index_path, "index has no 'weight_map' object");
  std::map<std::string, std::string> weight_map;                // tensor -> shard file name
  std::map<std::string, std::vector<std::string>> shard_names;  // shard file name -> tensors
  for (const auto& [name, file] : index_json["weight_map"].items()) {
    if (!file.is_string() || file.get<std::string>().empty())
      fail(index_path, fmt::format("tensor '{}': weight_map value must be a file name, got {}",
                                   name, file.dump()));
    weight_map[name] = file.get<std::string>();
    shard_names[file.get<std::string>()].push_back(name);
  }
  const fs::path dir = index.parent_path();
  for (const auto& [file, names] : shard_names) {
    fs::path shard_path = dir / file;
    if (!fs::is_regular_file(shard_path, ec))
      fail(index_path, fmt::format("tensor '{}' (and {} more) maps to shard {}, which is missing",
                                   names.front(), names.size() - 1, shard_path.string()));
    Shard shard(shard_path.string());
    ckpt.add_shard(shard, &weight_map);
    for (const std::string& name : names) {
      auto it = ckpt.tensors_.find(name);
      if (it == ckpt.tensors_.end() || it->second.shard != int(ckpt.shards_.size()) - 1)
        fail(shard_path.string(), fmt::format("tensor '{}': listed in {} but missing from this "
                                              "shard",
                                              name, index_path));
    }
  }
  // total_size is informative only (loaders do not use it), so a mismatch is worth a warning.
  const json& meta = index_json.value("metadata", json::object());
  if (meta.is_object() && meta.contains("total_size") && meta["total_size"].is_number_unsigned() &&
      meta["total_size"].get<uint64_t>() != ckpt.total_bytes_)
    log_warn("%s: metadata.total_size %llu differs from the %zu tensor bytes found",
             index_path.c_str(), (unsigned long long)meta["total_size"].get<uint64_t>(),
             ckpt.total_bytes_);
  return ckpt;
}

Tensor SafetensorsCheckpoint::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail(source_, fmt::format("no tensor '{}'", name));
  const TensorInfo& info = it->second.info;
  const std::shared_ptr<MappedFile>& map = shards_[it->second.shard];
  // The map itself is page aligned, so the file offset decides the data's alignment. Typed loads
  // from a misaligned address are undefined behaviour; such (rare, old) files get a copy.
  if (info.offset % dtype_size(info.dtype) != 0) {
    Tensor copy = Tensor::empty(info.dtype, info.shape);
    std::memcpy(copy.raw(), static_cast<const char*>(map->data()) + info.offset, info.nbytes);
    return copy;
  }
  return Tensor::view(map, info.offset, info.dtype, info.shape);
}

const TensorInfo* SafetensorsCheckpoint::info(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second.info;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& [name, entry] : tensors_) out.push_back(name);
  return out;
}

std::vector<std::string> SafetensorsCheckpoint::files() const {
  std::vector<std::string> out;
  for (const auto& map : shards_) out.push_back(map->path());
  return out;
}

}  // namespace dsinfer

// Reading safetensors checkpoints: one file, several files, or shards listed by a Hugging Face
// `model.safetensors.index.json`. Every shard is memory-mapped and its header fully validated
// when the checkpoint is opened, so a later get() cannot read outside the file.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace dsinfer {

// The safetensors spelling of a dtype ("F32", "BF16", "F8_E4M3", ...).
std::string_view safetensors_dtype_name(DType dtype);

struct TensorInfo {
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  std::string file;   // path of the shard holding the data
  size_t offset = 0;  // byte offset of the data within that file
  size_t nbytes = 0;
};

class SafetensorsCheckpoint {
 public:
  // `dir_or_file` is one of: a directory with `model.safetensors.index.json`; a directory of
  // `*.safetensors` files (all are read); an index `.json` file; a single `.safetensors` file.
  // Throws std::runtime_error naming the file (and tensor) at fault.
  static SafetensorsCheckpoint open(const std::string& dir_or_file);

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // A zero-copy view into the mapped file (copied only when the file leaves the data misaligned
  // for its dtype). Throws when `name` is absent.
  Tensor get(const std::string& name) const;
  // nullptr when absent.
  const TensorInfo* info(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  size_t size() const { return tensors_.size(); }
  size_t total_bytes() const { return total_bytes_; }    // sum of all tensors' data bytes
  const std::string& source() const { return source_; }  // the path given to open()
  std::vector<std::string> files() const;                // the mapped shards

 private:
  struct Entry {
    TensorInfo info;
    int shard = 0;  // index into shards_
  };
  struct Shard;  // a mapped file and the tensors its header declares
  void add_shard(const Shard& shard, const std::map<std::string, std::string>* expected);

  std::string source_;
  std::vector<std::shared_ptr<MappedFile>> shards_;
  std::map<std::string, Entry> tensors_;
  size_t total_bytes_ = 0;
};

}  // namespace dsinfer

// Writing safetensors files and sharded Hugging Face checkpoints, byte-compatible with the
// `safetensors` library: header padded with spaces to 8 bytes, tensors contiguous, ordered by
// element size (largest first) then name so every tensor's data is aligned to its element size.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dsinfer {

struct NamedTensor {
  std::string name;
  Tensor tensor;  // must be contiguous
};

// Writes one `.safetensors` file. Throws std::runtime_error naming the file or tensor at fault
// (duplicate or empty name, non-contiguous tensor, I/O error).
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes `model-0000i-of-0000n.safetensors` shards into `dir` (which must exist) plus
// `model.safetensors.index.json` with metadata.total_size and the weight_map. Tensors fill shards
// in the given order; a shard is closed when the next tensor would take it past
// `max_shard_bytes` (a larger tensor gets a shard of its own). Returns the shard file names.
std::vector<std::string> write_sharded_checkpoint(const std::string& dir,
                                                  const std::vector<NamedTensor>& tensors,
                                                  size_t max_shard_bytes);

// Writes `dir`/model.safetensors.index.json: metadata.total_size and the weight_map (tensor name
// -> shard file name), for shards written one by one with write_safetensors.
void write_checkpoint_index(const std::string& dir,
                            const std::map<std::string, std::string>& weight_map,
                            size_t total_bytes);

}  // namespace dsinfer

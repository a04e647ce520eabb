// Synthetic checkpoints made once per test process (removed at exit), by preset and dtype.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "synthetic/gen_model.h"

namespace dsinfer::testing {

inline const std::string& preset_dir(GenPreset preset, GenDtype dtype) {
  static std::string dirs[2][2];
  static std::vector<std::string> roots;
  static struct Cleanup {
    ~Cleanup() {
      for (auto& d : roots) std::filesystem::remove_all(d);
    }
  } cleanup;
  std::string& d = dirs[int(preset)][int(dtype)];
  if (d.empty()) {
    char tmpl[] = "/tmp/dsinfer-invariance-XXXXXX";
    const char* root = mkdtemp(tmpl);
    if (!root) throw std::runtime_error("mkdtemp failed");
    roots.push_back(root);
    GenModelOptions o;
    o.preset = preset;
    o.dtype = dtype;
    o.output_dir = std::string(root) + "/model";
    o.seed = 21;
    generate_model(o);
    d = o.output_dir;
  }
  return d;
}

}  // namespace dsinfer::testing

// Subcommands of the `dsinfer` CLI register themselves here, one file each (tools/cmd_*.cpp).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "dist/layout.h"
#include "model/model.h"

namespace dsinfer::cli {

struct Command {
  const char* name;
  const char* help;
  // Adds the subcommand's options to `app` and returns the function that runs it (its exit code).
  std::function<std::function<int()>(CLI::App& app)> setup;
};

std::vector<Command>& commands();

// Use at namespace scope in a cmd_*.cpp file: `DSINFER_COMMAND(bench_cmd, {...});`.
struct CommandRegistrar {
  explicit CommandRegistrar(Command c) { commands().push_back(std::move(c)); }
};

// `--speculative mtp [--draft-tokens K]`, as `run` and `serve` take them.
struct SpeculativeOptions {
  std::string method;  // "" (off) or "mtp"
  int draft_tokens = 1;
  // EngineOptions::speculative_draft_tokens: K with speculation, 0 without.
  int engine_draft_tokens() const { return method.empty() ? 0 : draft_tokens; }
};
inline void add_speculative_options(CLI::App& app, SpeculativeOptions& o) {
  app.add_option("--speculative", o.method,
                 "Speculative decoding: mtp (the checkpoint's MTP module drafts)")
      ->check(CLI::IsMember({"mtp"}));
  app.add_option("--draft-tokens", o.draft_tokens, "Drafts per step with --speculative (1)")
      ->check(CLI::Range(1, 8));
}

// `--ep E --cp C --dp D`: how the ranks of an MPI job (mpirun -np N dsinfer ...) share the model.
inline void add_dist_options(CLI::App& app, dist::Layout& l) {
  app.add_option("--ep", l.ep, "Expert parallelism: split the routed experts over E ranks (1)");
  app.add_option("--cp", l.cp, "Context parallelism: split every step's tokens over C ranks (1)");
  app.add_option("--dp", l.dp, "Data-parallel attention over D rank groups (1; not yet)");
}

// `--kv-cache-dtype auto|bf16|fp8|int8` (parsed by kv_cache_dtype_from_name).
inline void add_kv_cache_dtype_option(CLI::App& app, std::string& name) {
  app.add_option("--kv-cache-dtype", name,
                 "KV cache latent storage: auto (as --precision computes), bf16, or 8-bit codes "
                 "with a scale per 128 values, fp8 or int8 (656 instead of 1,152 bytes per token "
                 "and layer)")
      ->check(CLI::IsMember({"auto", "bf16", "fp8", "int8"}));
}

// On every rank but the root of an MPI job: load the same model and run the root's steps until it
// is done. Returns true when this process is such a worker (its command is then finished).
inline bool serve_as_worker(const std::string& dir, const ModelOptions& options) {
  if (dist::world().is_root()) return false;
  std::unique_ptr<Model> model = Model::load(dir, options);
  model->run_worker();
  return true;
}

}  // namespace dsinfer::cli

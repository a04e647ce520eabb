// Subcommands of the `dsinfer` CLI register themselves here, one file each (tools/cmd_*.cpp).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

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

}  // namespace dsinfer::cli

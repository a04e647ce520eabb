// Subcommands of the `dsinfer` CLI register themselves here, one file each (tools/cmd_*.cpp).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
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

}  // namespace dsinfer::cli

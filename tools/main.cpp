// The `dsinfer` command line: one binary, one subcommand per job (see `dsinfer --help`).
#include <cstdio>
#include <exception>
#include <memory>

#include "command.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace dsinfer::cli {
std::vector<Command>& commands() {
  static std::vector<Command> list;
  return list;
}
}  // namespace dsinfer::cli

int main(int argc, char** argv) {
  using namespace dsinfer;
  CLI::App app{"dsinfer: DeepSeek Sparse Attention inference engine"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "dsinfer 0.1");
  std::vector<std::function<int()>> runners;
  std::vector<CLI::App*> subs;
  for (auto& cmd : cli::commands()) {
    CLI::App* sub = app.add_subcommand(cmd.name, cmd.help);
    subs.push_back(sub);
    runners.push_back(cmd.setup(*sub));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (size_t i = 0; i < subs.size(); ++i)
      if (subs[i]->parsed()) return runners[i]();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dsinfer: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

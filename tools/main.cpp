// The `dsinfer` command line: one binary, one subcommand per job (see `dsinfer --help`).
#include <cstdio>
#include <exception>
#include <memory>

#include "command.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "dist/communicator.h"

namespace dsinfer::cli {
std::vector<Command>& commands() {
  static std::vector<Command> list;
  return list;
}
}  // namespace dsinfer::cli

namespace {
int run_cli(int argc, char** argv);
}

// MPI (under mpirun) starts before anything else and ends after every model is gone.
int main(int argc, char** argv) {
  dsinfer::dist::init_world(&argc, &argv);
  const int rc = run_cli(argc, argv);
  // A rank that failed alone must not wait in MPI_Finalize for ranks that wait for it.
  if (rc != 0 && dsinfer::dist::world().size() > 1)
    dsinfer::dist::world().abort("stopping the job after the error above");
  dsinfer::dist::finalize_world();
  return rc;
}

namespace {
int run_cli(int argc, char** argv) {
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
}  // namespace

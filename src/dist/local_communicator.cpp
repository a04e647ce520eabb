// The one-process communicator: size 1, every collective copies this rank's bytes to itself.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "dist/communicator.h"

namespace dsinfer::dist {

namespace {

class Done final : public PendingExchange {
 public:
  void wait() override {}
};

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void barrier() override {}
  void quiet_barrier() override {}
  void broadcast(void*, size_t, int, Traffic::Kind kind) override { ++traffic_.calls[kind]; }
  void allgather(const void* in, size_t bytes, void* out, Traffic::Kind kind) override {
    copy(in, bytes, out, kind);
  }
  void allgatherv(const void* in, const std::vector<int64_t>& counts,
                  const std::vector<int64_t>& displs, void* out, Traffic::Kind kind) override {
    copy(in, size_t(counts[0]), static_cast<char*>(out) + displs[0], kind);
  }
  std::unique_ptr<PendingExchange> iallgatherv(const void* in, const std::vector<int64_t>& counts,
                                               const std::vector<int64_t>& displs, void* out,
                                               Traffic::Kind kind) override {
    allgatherv(in, counts, displs, out, kind);
    return std::make_unique<Done>();
  }
  void gatherv(const void* in, const std::vector<int64_t>& counts,
               const std::vector<int64_t>& displs, void* out, int, Traffic::Kind kind) override {
    copy(in, size_t(counts[0]), static_cast<char*>(out) + displs[0], kind);
  }
  void alltoallv(const void* in, const std::vector<int64_t>& send_counts,
                 const std::vector<int64_t>& send_displs, void* out, const std::vector<int64_t>&,
                 const std::vector<int64_t>& recv_displs, Traffic::Kind kind) override {
    copy(static_cast<const char*>(in) + send_displs[0], size_t(send_counts[0]),
         static_cast<char*>(out) + recv_displs[0], kind);
  }
  std::unique_ptr<Communicator> split(int, int) override {
    return std::make_unique<LocalCommunicator>();
  }
  [[noreturn]] void abort(const std::string& message) override {
    std::fprintf(stderr, "dsinfer: fatal: %s\n", message.c_str());
    std::exit(1);
  }

 private:
  void copy(const void* in, size_t bytes, void* out, Traffic::Kind kind) {
    if (bytes > 0 && in != out) std::memmove(out, in, bytes);
    ++traffic_.calls[kind];
  }
};

}  // namespace

std::unique_ptr<Communicator> make_local_communicator() {
  return std::make_unique<LocalCommunicator>();
}

const char* Traffic::name(Kind k) {
  switch (k) {
    case control:
      return "control";
    case ep_dispatch:
      return "ep_dispatch";
    case ep_combine:
      return "ep_combine";
    case cp_gather:
      return "cp_gather";
    case replica_gather:
      return "replica_gather";
    case output_gather:
      return "output_gather";
    default:
      return "?";
  }
}

}  // namespace dsinfer::dist

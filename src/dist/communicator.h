// The small set of collectives the model needs across processes (spec-level exchanges of DSA
// inference: expert dispatch/combine, context-parallel cache gathers, step broadcasts), behind an
// interface so that model/ never includes MPI. One process uses LocalCommunicator (every call a
// copy or a no-op); `mpirun` launches get MpiCommunicator (src/dist/mpi_communicator.cpp, the only
// file that includes mpi.h). Buffers are bytes; counts and displacements are in bytes too.
//
// Every call also adds its bytes and wall time to traffic(), per Traffic::Kind, so `bench dist`
// reports what each exchange moved.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace dsinfer::dist {

struct Traffic {
  enum Kind { control, ep_dispatch, ep_combine, cp_gather, replica_gather, output_gather, n_kinds };
  static const char* name(Kind k);
  // Bytes this rank sent to other ranks, received from them, calls, and seconds inside the call
  // (for a non-blocking call: the wait).
  double sent[n_kinds] = {}, received[n_kinds] = {}, seconds[n_kinds] = {};
  int64_t calls[n_kinds] = {};
  void reset() { *this = Traffic{}; }
};

// An outstanding non-blocking collective; wait() finishes it (the destructor waits too).
class PendingExchange {
 public:
  virtual ~PendingExchange() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  bool is_root() const { return rank() == 0; }

  virtual void barrier() = 0;
  // A barrier that sleeps while it waits (1 ms polls) instead of spinning: for ranks idling while
  // another measures something alone on shared cores.
  virtual void quiet_barrier() = 0;
  virtual void broadcast(void* data, size_t bytes, int root, Traffic::Kind kind) = 0;
  // Every rank's `bytes` bytes into out[rank * bytes ...].
  virtual void allgather(const void* in, size_t bytes, void* out, Traffic::Kind kind) = 0;
  // Rank r contributes counts[r] bytes, placed at out + displs[r] on every rank.
  virtual void allgatherv(const void* in, const std::vector<int64_t>& counts,
                          const std::vector<int64_t>& displs, void* out, Traffic::Kind kind) = 0;
  virtual std::unique_ptr<PendingExchange> iallgatherv(const void* in,
                                                       const std::vector<int64_t>& counts,
                                                       const std::vector<int64_t>& displs,
                                                       void* out, Traffic::Kind kind) = 0;
  // Rank r's counts[r] bytes at out + displs[r] of `root` (others' out is unused).
  virtual void gatherv(const void* in, const std::vector<int64_t>& counts,
                       const std::vector<int64_t>& displs, void* out, int root,
                       Traffic::Kind kind) = 0;
  // Bytes to each rank from in + send_displs[d] (send_counts[d] bytes), from each rank into
  // out + recv_displs[s] (recv_counts[s] bytes).
  virtual void alltoallv(const void* in, const std::vector<int64_t>& send_counts,
                         const std::vector<int64_t>& send_displs, void* out,
                         const std::vector<int64_t>& recv_counts,
                         const std::vector<int64_t>& recv_displs, Traffic::Kind kind) = 0;
  // The ranks with the same color, ordered by (key, rank): a new communicator.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
  // Ends every process of the job with `message` on stderr (a rank-local fatal error must not
  // leave the others waiting in a collective).
  [[noreturn]] virtual void abort(const std::string& message) = 0;

  Traffic& traffic() { return traffic_; }

  // Convenience: fixed-size exchange of one trivially copyable value per rank.
  template <class T>
  std::vector<T> allgather_value(const T& v, Traffic::Kind kind = Traffic::control) {
    std::vector<T> out(static_cast<size_t>(size()));
    allgather(&v, sizeof(T), out.data(), kind);
    return out;
  }

 protected:
  Traffic traffic_;
};

// The displacements of packed blocks of these sizes: d[0] = 0, d[i] = d[i - 1] + counts[i - 1].
inline std::vector<int64_t> displacements(const std::vector<int64_t>& counts) {
  std::vector<int64_t> d(counts.size(), 0);
  for (size_t i = 1; i < counts.size(); ++i) d[i] = d[i - 1] + counts[i - 1];
  return d;
}

// A one-process communicator (size 1): every collective is a local copy.
std::unique_ptr<Communicator> make_local_communicator();

// The job's world: MPI's when this process was started by mpirun (or another MPI launcher), else a
// local one. init_world() must run first (from main, before any thread starts); it is idempotent.
// finalize_world() ends MPI cleanly (call it once at the end of main).
void init_world(int* argc, char*** argv);
Communicator& world();
bool launched_by_mpi();  // from the launcher's environment (no MPI call)
void finalize_world();

}  // namespace dsinfer::dist

// The MPI communicator (Open MPI from Debian), and the job's world: MPI is initialized only when a
// launcher started this process, so a plain `dsinfer` never touches MPI.
// The C API only (Open MPI would also pull in its deprecated C++ bindings).
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "dist/communicator.h"

namespace dsinfer::dist {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int as_int(int64_t bytes, const char* what) {
  if (bytes < 0 || bytes > INT_MAX)
    throw std::runtime_error(std::string("MPI ") + what + ": " + std::to_string(bytes) +
                             " bytes in one exchange exceed the 2 GiB an MPI count can address");
  return int(bytes);
}

std::vector<int> ints(const std::vector<int64_t>& v, const char* what) {
  std::vector<int> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = as_int(v[i], what);
  return out;
}

int64_t sum(const std::vector<int64_t>& v) {
  int64_t s = 0;
  for (int64_t x : v) s += x;
  return s;
}

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw std::runtime_error(std::string("MPI ") + what +
                           " failed: " + std::string(msg, size_t(len)));
}

class MpiPending final : public PendingExchange {
 public:
  MpiPending(Traffic& t, Traffic::Kind k, std::vector<int> counts, std::vector<int> displs)
      : counts_(std::move(counts)), displs_(std::move(displs)), traffic_(t), kind_(k) {}
  ~MpiPending() override {
    if (!done_) wait();
  }
  void wait() override {
    if (done_) return;
    done_ = true;
    const double t0 = now_s();
    check(MPI_Wait(&request_, MPI_STATUS_IGNORE), "Iallgatherv wait");
    traffic_.seconds[kind_] += now_s() - t0;
  }
  std::vector<int> counts_, displs_;  // read by MPI until the request completes
  MPI_Request request_ = MPI_REQUEST_NULL;

 private:
  Traffic& traffic_;
  Traffic::Kind kind_;
  bool done_ = false;
};

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    if (comm_ != MPI_COMM_WORLD) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void barrier() override {
    Timer t(traffic_, Traffic::control);
    check(MPI_Barrier(comm_), "Barrier");
  }
  void quiet_barrier() override {
    MPI_Request req;
    check(MPI_Ibarrier(comm_, &req), "Ibarrier");
    for (int done = 0;;) {
      check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "Test");
      if (done) return;
      ::usleep(1000);
    }
  }
  void broadcast(void* data, size_t bytes, int root, Traffic::Kind kind) override {
    Timer t(traffic_, kind);
    check(MPI_Bcast(data, as_int(int64_t(bytes), "Bcast"), MPI_BYTE, root, comm_), "Bcast");
    (rank_ == root ? traffic_.sent : traffic_.received)[kind] +=
        double(bytes) * (rank_ == root ? size_ - 1 : 1);
  }
  void allgather(const void* in, size_t bytes, void* out, Traffic::Kind kind) override {
    Timer t(traffic_, kind);
    const int n = as_int(int64_t(bytes), "Allgather");
    check(MPI_Allgather(in, n, MPI_BYTE, out, n, MPI_BYTE, comm_), "Allgather");
    traffic_.sent[kind] += double(bytes) * (size_ - 1);
    traffic_.received[kind] += double(bytes) * (size_ - 1);
  }
  void allgatherv(const void* in, const std::vector<int64_t>& counts,
                  const std::vector<int64_t>& displs, void* out, Traffic::Kind kind) override {
    Timer t(traffic_, kind);
    const std::vector<int> c = ints(counts, "Allgatherv"), d = ints(displs, "Allgatherv");
    check(MPI_Allgatherv(in, c[size_t(rank_)], MPI_BYTE, out, c.data(), d.data(), MPI_BYTE, comm_),
          "Allgatherv");
    account_gather(counts, kind);
  }
  std::unique_ptr<PendingExchange> iallgatherv(const void* in, const std::vector<int64_t>& counts,
                                               const std::vector<int64_t>& displs, void* out,
                                               Traffic::Kind kind) override {
    auto p = std::make_unique<MpiPending>(traffic_, kind, ints(counts, "Iallgatherv"),
                                          ints(displs, "Iallgatherv"));
    check(MPI_Iallgatherv(in, p->counts_[size_t(rank_)], MPI_BYTE, out, p->counts_.data(),
                          p->displs_.data(), MPI_BYTE, comm_, &p->request_),
          "Iallgatherv");
    ++traffic_.calls[kind];
    account_gather(counts, kind);
    return p;
  }
  void gatherv(const void* in, const std::vector<int64_t>& counts,
               const std::vector<int64_t>& displs, void* out, int root,
               Traffic::Kind kind) override {
    Timer t(traffic_, kind);
    const std::vector<int> c = ints(counts, "Gatherv"), d = ints(displs, "Gatherv");
    check(
        MPI_Gatherv(in, c[size_t(rank_)], MPI_BYTE, out, c.data(), d.data(), MPI_BYTE, root, comm_),
        "Gatherv");
    if (rank_ == root)
      traffic_.received[kind] += double(sum(counts) - counts[size_t(rank_)]);
    else
      traffic_.sent[kind] += double(counts[size_t(rank_)]);
  }
  void alltoallv(const void* in, const std::vector<int64_t>& send_counts,
                 const std::vector<int64_t>& send_displs, void* out,
                 const std::vector<int64_t>& recv_counts, const std::vector<int64_t>& recv_displs,
                 Traffic::Kind kind) override {
    Timer t(traffic_, kind);
    const std::vector<int> sc = ints(send_counts, "Alltoallv"), sd = ints(send_displs, "Alltoallv"),
                           rc = ints(recv_counts, "Alltoallv"), rd = ints(recv_displs, "Alltoallv");
    check(MPI_Alltoallv(in, sc.data(), sd.data(), MPI_BYTE, out, rc.data(), rd.data(), MPI_BYTE,
                        comm_),
          "Alltoallv");
    traffic_.sent[kind] += double(sum(send_counts) - send_counts[size_t(rank_)]);
    traffic_.received[kind] += double(sum(recv_counts) - recv_counts[size_t(rank_)]);
  }
  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm sub;
    check(MPI_Comm_split(comm_, color, key, &sub), "Comm_split");
    return std::make_unique<MpiCommunicator>(sub);
  }
  [[noreturn]] void abort(const std::string& message) override {
    std::fprintf(stderr, "dsinfer rank %d: fatal: %s\n", rank_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);
  }

 private:
  struct Timer {
    Traffic& t;
    Traffic::Kind k;
    double t0 = now_s();
    Timer(Traffic& tr, Traffic::Kind kind) : t(tr), k(kind) {}
    ~Timer() {
      t.seconds[k] += now_s() - t0;
      ++t.calls[k];
    }
  };
  void account_gather(const std::vector<int64_t>& counts, Traffic::Kind kind) {
    const double mine = double(counts[size_t(rank_)]);
    traffic_.sent[kind] += mine * (size_ - 1);
    traffic_.received[kind] += double(sum(counts)) - mine;
  }
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

bool g_mpi = false;
std::unique_ptr<Communicator> g_world;

// Under mpirun a failing rank makes the launcher terminate the others; say so instead of
// vanishing silently.
void on_terminate(int) {
  static const char msg[] =
      "dsinfer: terminated by the MPI launcher (another rank failed or the job was stopped)\n";
  ssize_t ignored = write(2, msg, sizeof(msg) - 1);
  (void)ignored;
  std::_Exit(143);
}

}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

void init_world(int* argc, char*** argv) {
  if (g_world) return;
  if (!launched_by_mpi()) {
    g_world = make_local_communicator();
    return;
  }
  int provided = 0;
  // SERIALIZED: the engine's scheduler thread runs the forward on the root, the main thread
  // everywhere else; never two threads at once.
  check(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "Init_thread");
  if (provided < MPI_THREAD_SERIALIZED) {
    std::fprintf(stderr, "dsinfer: this MPI library does not support MPI_THREAD_SERIALIZED\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  g_mpi = true;
  g_world = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
  if (g_world->size() > 1) std::signal(SIGTERM, on_terminate);
}

Communicator& world() {
  if (!g_world) g_world = make_local_communicator();
  return *g_world;
}

void finalize_world() {
  if (!g_mpi) return;
  g_world.reset();
  MPI_Finalize();
  g_mpi = false;
}

}  // namespace dsinfer::dist

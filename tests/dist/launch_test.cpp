// `mpirun -np N dsinfer ...` end to end on the tiny preset: eval logits with EP 2 / EP 4 / CP 2 /
// CP 4 / CP 2 x EP 2 bitwise identical to one process (FP8 and BF16 checkpoints, bf16 and f32
// precision, whole and chunked prefill, FP8 activations), greedy `run` text identical (with and
// without MTP drafts), `serve` answering a batch of concurrent requests as one process does, and
// the failures: ranks that disagree, layouts that do not fit, and a rank killed mid-run.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "synthetic/gen_model.h"

namespace dsinfer {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

bool have_mpirun() {
  return std::system("command -v mpirun > /dev/null 2>&1") == 0;
}

#define REQUIRE_MPIRUN()                                                              \
  do {                                                                                \
    if (!have_mpirun()) {                                                             \
      if (const char* ci = std::getenv("CI"); ci && std::string(ci) == "true")        \
        FAIL() << "mpirun is missing (scripts/install-deps.sh installs openmpi-bin)"; \
      GTEST_SKIP() << "mpirun is missing: run scripts/install-deps.sh";               \
    }                                                                                 \
  } while (0)

struct Models {
  std::string root, fp8, bf16;
  Models() {
    char tmpl[] = "/tmp/dsinfer-dist-XXXXXX";
    root = mkdtemp(tmpl);
    for (auto [dtype, dir] : {std::pair{GenDtype::fp8, &fp8}, std::pair{GenDtype::bf16, &bf16}}) {
      GenModelOptions o;
      o.preset = GenPreset::tiny;
      o.dtype = dtype;
      o.output_dir = root + (dtype == GenDtype::fp8 ? "/tiny-fp8" : "/tiny-bf16");
      o.seed = 11;
      generate_model(o);
      *dir = o.output_dir;
    }
  }
  ~Models() { fs::remove_all(root); }
};
const Models& models() {
  static Models m;
  return m;
}

std::string bin() {
  return std::string(DSINFER_BIN_DIR) + "/dsinfer";
}
// Open MPI refuses root without these; one thread per rank (the ranks share 2 cores).
std::string mpirun(int np) {
  return "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 300 mpirun "
         "--oversubscribe -np " +
         std::to_string(np) + " ";
}

struct Result {
  int rc = -1;
  std::string out, err;
};
Result shell(const std::string& cmd) {
  const std::string base = models().root + "/cmd." + std::to_string(::getpid());
  const int rc = std::system((cmd + " > " + base + ".out 2> " + base + ".err").c_str());
  Result r;
  r.rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  for (auto [path, dst] : {std::pair{base + ".out", &r.out}, std::pair{base + ".err", &r.err}}) {
    std::ifstream in(path);
    *dst = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return r;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string tokens(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? "," : "") + std::to_string(rng() % 512);
  return s;
}

TEST(DistLaunch, EvalLogitsAreBitwiseThoseOfOneProcess) {
  REQUIRE_MPIRUN();
  // 90 tokens: past the tiny preset's index_topk (16), so DSA's indexer and top-k are in play.
  const std::string toks = tokens(90, 3);
  const std::vector<std::pair<int, std::string>> layouts = {{2, "--ep 2"},
                                                            {4, "--ep 4"},
                                                            {2, "--cp 2"},
                                                            {4, "--cp 4"},
                                                            {4, "--cp 2 --ep 2"},
                                                            {2, "--cp 2 --ep 2"},
                                                            {4, "--dp 2 --cp 2 --ep 4"}};
  struct Variant {
    const std::string* model;
    std::string flags;
  };
  const std::vector<Variant> variants = {
      {&models().fp8, ""},
      {&models().fp8, "--precision f32"},
      {&models().fp8, "--prefill-chunk 13"},
      {&models().fp8, "--fp8-activations --prefill-chunk 40"},
      {&models().fp8, "--precision f32 --prefill-chunk 13"},
      {&models().bf16, ""},
      {&models().bf16, "--prefill-chunk 13"},
      {&models().bf16, "--precision f32"},
      {&models().bf16, "--precision f32 --prefill-chunk 1"},
  };
  for (const Variant& v : variants) {
    const std::string one = models().root + "/one.bin";
    const std::string args =
        " eval -m " + *v.model + " --tokens " + toks + " -t 1 " + v.flags + " --logits-out ";
    Result r = shell(bin() + args + one);
    ASSERT_EQ(r.rc, 0) << r.err;
    const std::string want = read_bytes(one);
    ASSERT_EQ(want.size(), size_t(90 * 512 * 4));
    for (const auto& [np, layout] : layouts) {
      SCOPED_TRACE(*v.model + " " + v.flags + " | -np " + std::to_string(np) + " " + layout);
      const std::string many = models().root + "/many.bin";
      fs::remove(many);
      r = shell(mpirun(np) + bin() + args + many + " " + layout);
      ASSERT_EQ(r.rc, 0) << r.err;
      EXPECT_TRUE(read_bytes(many) == want) << "logits differ from one process";
    }
  }
}

TEST(DistLaunch, GreedyRunPrintsTheSameTextAsOneProcess) {
  REQUIRE_MPIRUN();
  const std::string args = " run -m " + models().fp8 +
                           " --raw -p 'the quick brown fox jumps over the lazy dog' -n 24 "
                           "--temp 0 -q -t 1 ";
  for (const std::string& extra :
       {std::string(""), std::string("--speculative mtp --draft-tokens 2")}) {
    const Result one = shell(bin() + args + extra);
    ASSERT_EQ(one.rc, 0) << one.err;
    ASSERT_FALSE(one.out.empty());
    for (const auto& [np, layout] : std::vector<std::pair<int, std::string>>{
             {2, "--ep 2"}, {2, "--cp 2"}, {4, "--cp 2 --ep 2"}}) {
      SCOPED_TRACE(extra + " | " + layout);
      const Result many = shell(mpirun(np) + bin() + args + extra + " " + layout);
      ASSERT_EQ(many.rc, 0) << many.err;
      EXPECT_EQ(many.out, one.out);
    }
  }
}

// A server (under mpirun or alone) on a free port, stopped with SIGINT.
class Server {
 public:
  Server(const std::string& launcher, const std::string& flags, int port_offset) {
    port_ = 21000 + int(::getpid() % 9000) + port_offset;
    log_ = models().root + "/serve." + std::to_string(port_) + ".log";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      const std::string cmd = "exec " + launcher + bin() + " serve -m " + models().fp8 +
                              " --port " + std::to_string(port_) + " --kv-cache-tokens 8192 -t 1 " +
                              flags + " > " + log_ + " 2>&1";
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
      ::_exit(127);
    }
    for (int i = 0; i < 600; ++i) {
      httplib::Client c("127.0.0.1", port_);
      if (auto r = c.Get("/health"); r && r->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "the server did not become ready:\n" << log();
  }
  ~Server() {
    if (pid_ > 0) {
      ::kill(-pid_, SIGINT);
      for (int i = 0; i < 200 && ::waitpid(pid_, nullptr, WNOHANG) == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log() const { return read_bytes(log_); }
  // Exit status after waiting up to `seconds` (-2: still running).
  int wait_exit(double seconds) {
    for (int i = 0; i < int(seconds * 20); ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -2;
  }

 private:
  int port_ = 0;
  pid_t pid_ = -1;
  std::string log_;
};

std::vector<std::string> answers(int port, int n) {
  std::vector<std::string> out(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", port);
      c.set_read_timeout(120);
      json body = {{"prompt", "request " + std::to_string(i) + " asks for something"},
                   {"max_tokens", 12 + i % 5},
                   {"temperature", 0}};
      auto r = c.Post("/v1/completions", body.dump(), "application/json");
      out[size_t(i)] = r && r->status == 200
                           ? json::parse(r->body)["choices"][0]["text"].get<std::string>()
                           : "HTTP error " + (r ? std::to_string(r->status) : std::string("-"));
    });
  for (auto& t : threads) t.join();
  return out;
}

// The same long prompt twice: the second finds its prefix cached (in the attention group that
// holds it, with --dp) and must answer the same.
std::vector<std::string> cached_answers(int port) {
  std::string prompt;
  for (int i = 0; i < 120; ++i) prompt += "word" + std::to_string(i) + " ";
  std::vector<std::string> out;
  for (int i = 0; i < 2; ++i) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(120);
    json body = {{"prompt", prompt}, {"max_tokens", 8}, {"temperature", 0}};
    auto r = c.Post("/v1/completions", body.dump(), "application/json");
    if (!r || r->status != 200) {
      out.push_back("HTTP error");
      continue;
    }
    const json j = json::parse(r->body);
    out.push_back(j["choices"][0]["text"].get<std::string>());
    if (i == 1) {
      EXPECT_GT(j["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 0);
    }
  }
  return out;
}

TEST(DistLaunch, ServeAnswersConcurrentRequestsAsOneProcess) {
  REQUIRE_MPIRUN();
  std::vector<std::string> want, want_cached;
  {
    Server one("", "", 0);
    want = answers(one.port(), 6);
    want_cached = cached_answers(one.port());
  }
  for (const auto& [np, layout] :
       std::vector<std::pair<int, std::string>>{{2, "--ep 2"},
                                                {2, "--cp 2 --ep 2"},
                                                {2, "--dp 2 --ep 2"},
                                                {4, "--dp 2 --cp 2 --ep 4"}}) {
    SCOPED_TRACE(layout);
    Server many(mpirun(np), layout, 1 + np + int(layout.size()));
    EXPECT_EQ(answers(many.port(), 6), want) << many.log();
    EXPECT_EQ(cached_answers(many.port()), want_cached) << many.log();
  }
}

TEST(DistLaunch, RanksThatDisagreeStopWithAClearErrorOnEveryRank) {
  REQUIRE_MPIRUN();
  const std::string env = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 120 ";
  const std::string eval = bin() + " eval --tokens 1,2,3 --logits-out /dev/null -t 1 --ep 2 ";
  // MPMD: rank 1 runs another precision, then another checkpoint.
  Result r = shell(env + "mpirun --oversubscribe -np 1 " + eval + "-m " + models().fp8 +
                   " : -np 1 " + eval + "-m " + models().fp8 + " --precision f32");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("rank 1 differs from rank 0 in: --precision"), std::string::npos) << r.err;
  r = shell(env + "mpirun --oversubscribe -np 1 " + eval + "-m " + models().fp8 + " : -np 1 " +
            eval + "-m " + models().bf16);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("rank 1 differs from rank 0 in: config.json, checkpoint tensors"),
            std::string::npos)
      << r.err;
  r = shell(env + "mpirun --oversubscribe -np 1 " + eval + "-m " + models().fp8 + " : -np 1 " +
            eval + "-m /nonexistent");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("rank 1 could not open the model"), std::string::npos) << r.err;
  // A layout that does not fit the job, and one that does not fit the model.
  r = shell(mpirun(2) + eval + "-m " + models().fp8 + " --cp 4");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("--cp 4 does not divide the 2 ranks"), std::string::npos) << r.err;
  r = shell(mpirun(3) + bin() + " eval --tokens 1,2 --logits-out /dev/null -t 1 --ep 3 -m " +
            models().fp8);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("--ep 3 does not divide the model's 8 routed experts"), std::string::npos)
      << r.err;
  // MTP drafts need every sequence's MTP cache on every rank, which data-parallel groups do not
  // share.
  r = shell(mpirun(2) + bin() + " run -m " + models().fp8 +
            " --raw -p hello -n 4 -q -t 1 --dp 2 --ep 2 --speculative mtp");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("speculative decoding with data-parallel attention (--dp) is not supported"),
            std::string::npos)
      << r.err;
  // Without mpirun the same flags name the problem too.
  r = shell(bin() + " eval --tokens 1,2 --logits-out /dev/null -t 1 --ep 2 -m " + models().fp8);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("--ep 2 does not divide the 1 ranks"), std::string::npos) << r.err;
}

TEST(DistLaunch, ARankThatExitsEndsTheJob) {
  REQUIRE_MPIRUN();
  // Rank 1 leaves (exit code 3) while rank 0 starts up and waits for it.
  const auto t0 = std::chrono::steady_clock::now();
  const Result r = shell(
      "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 60 mpirun "
      "--oversubscribe -np 1 " +
      bin() + " eval --tokens 1,2,3 --logits-out /dev/null -t 1 --ep 2 -m " + models().fp8 +
      " : -np 1 sh -c 'sleep 1; exit 3'");
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.rc, 124) << "the job hung until the timeout";
  EXPECT_LT(took, 30.0);
  EXPECT_NE((r.out + r.err).find("exited with non-zero status"), std::string::npos) << r.err;
}

// The rank processes mpirun started (children of the launcher, found by their MPI rank).
std::vector<pid_t> rank_pids(int rank, int port) {
  std::vector<pid_t> out;
  for (const auto& p : fs::directory_iterator("/proc")) {
    const std::string name = p.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string env = read_bytes(p.path().string() + "/environ");
    const std::string key = std::string("OMPI_COMM_WORLD_RANK=") + std::to_string(rank) + '\0';
    const std::string cmd = read_bytes(p.path().string() + "/cmdline");
    const std::string port_arg = std::string("--port") + '\0' + std::to_string(port) + '\0';
    if (env.find(key) != std::string::npos && cmd.find(port_arg) != std::string::npos &&
        cmd.rfind(bin(), 0) == 0)
      out.push_back(pid_t(std::stoi(name)));
  }
  return out;
}

TEST(DistLaunch, AKilledRankEndsTheJobWithinSeconds) {
  REQUIRE_MPIRUN();
  Server s(mpirun(2), "--ep 2", 7);
  // A request in flight while rank 1 dies.
  std::thread client([&] {
    httplib::Client c("127.0.0.1", s.port());
    c.set_read_timeout(30);
    json body = {{"prompt", "hello"}, {"max_tokens", 200}, {"temperature", 0}};
    c.Post("/v1/completions", body.dump(), "application/json");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::vector<pid_t> workers = rank_pids(1, s.port());
  if (workers.size() != 1) client.detach();
  ASSERT_EQ(workers.size(), 1u) << s.log();
  const auto t0 = std::chrono::steady_clock::now();
  ::kill(workers[0], SIGKILL);
  const int rc = s.wait_exit(20);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  client.join();
  EXPECT_NE(rc, -2) << "the job was still running 20 s after a rank was killed:\n" << s.log();
  EXPECT_NE(rc, 0);
  EXPECT_LT(took, 10.0);
  EXPECT_TRUE(rank_pids(0, s.port()).empty()) << "rank 0 outlived the job";
  EXPECT_NE(s.log().find("exited on signal 9"), std::string::npos) << s.log();
}

// `bench dist` moves exactly the bytes the formulas of docs/distributed.md give (timings are
// reported, not asserted), and `bench project` prints its calibration, checks and projections.
TEST(DistBench, ExchangeVolumesMatchTheFormulasAndTheProjectionPrints) {
  REQUIRE_MPIRUN();
  const std::string out = models().root + "/dist.json";
  Result r = shell(mpirun(2) + bin() + " bench dist --quick -t 1 --ep 2 --cp 2 -m " + models().fp8 +
                   " --json " + out);
  ASSERT_EQ(r.rc, 0) << r.err;
  const json j = json::parse(read_bytes(out));
  int phases = 0, ranks = 0;
  for (const json& row : j["results"]) {
    const std::string name = row["name"];
    if (name == "dist_rank_memory") {
      ++ranks;
      EXPECT_GT(row["weights_gib"].get<double>(), 0);
      continue;
    }
    if (name != "dist_prefill" && name != "dist_decode") continue;
    ++phases;
    const json& x = row;  // the extras sit beside name and params
    EXPECT_GT(x["cp_gather_kb_per_layer"].get<double>(), 0) << name;
    EXPECT_NEAR(x["cp_gather_kb_per_layer"].get<double>(), x["cp_gather_formula_kb"].get<double>(),
                1e-9 * x["cp_gather_formula_kb"].get<double>() + 1e-9)
        << name;
    EXPECT_GT(x["ep_dispatch_kb_per_layer"].get<double>(), 0) << name;
    EXPECT_NEAR(x["ep_dispatch_kb_per_layer"].get<double>(),
                x["ep_dispatch_formula_kb"].get<double>(),
                1e-9 * x["ep_dispatch_formula_kb"].get<double>())
        << name;
    EXPECT_NEAR(x["ep_combine_kb_per_layer"].get<double>(),
                x["ep_combine_formula_kb"].get<double>(),
                1e-9 * x["ep_combine_formula_kb"].get<double>())
        << name;
    EXPECT_GT(x["one_process_ms"].get<double>(), 0) << name;
  }
  EXPECT_EQ(phases, 2);
  EXPECT_EQ(ranks, 2);

  const std::string proj = models().root + "/project.json";
  r = shell(bin() + " bench project --quick -t 1 -m " + models().fp8 + " --json " + proj +
            " --hw ranks=8,cores=32,gflops=300,dram=400,net=25,lat=2,eff_weights=0.8");
  ASSERT_EQ(r.rc, 0) << r.err;
  const json p = json::parse(read_bytes(proj));
  std::set<std::string> names;
  for (const json& row : p["results"]) {
    names.insert(row["name"].get<std::string>());
    if (row["name"] == "project_671b") {
      EXPECT_EQ(row["params"]["ranks"].get<int>(), 8);
      EXPECT_GT(row["ttft_s"].get<double>(), 0);
      EXPECT_GT(row["tpot_ms"].get<double>(), 0);
    }
  }
  for (const char* n : {"project_calibration", "project_check_prefill", "project_check_decode",
                        "project_mini_dist", "project_671b", "project_671b_target"})
    EXPECT_TRUE(names.count(n)) << n;
  r = shell(bin() + " bench project --quick -t 1 -m " + models().fp8 + " --hw cores=x");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("--hw: cores is not a number"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace dsinfer

// `dsinfer serve` as a process: it answers once loaded, greedy output over HTTP equals `dsinfer
// run`, `bench serve` drives it without errors, and SIGTERM stops it cleanly (exit 0) while a
// request is in flight.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "synthetic/gen_model.h"

namespace dsinfer {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string& tiny_dir() {
  static std::string dir;
  if (dir.empty()) {
    char tmpl[] = "/tmp/dsinfer-serve-XXXXXX";
    const char* d = mkdtemp(tmpl);
    if (!d) throw std::runtime_error("mkdtemp failed");
    GenModelOptions o;
    o.preset = GenPreset::tiny;
    o.output_dir = std::string(d) + "/tiny";
    o.seed = 3;
    generate_model(o);
    dir = o.output_dir;
    static struct Cleanup {
      std::string root;
      ~Cleanup() { fs::remove_all(root); }
    } cleanup{d};
  }
  return dir;
}

std::string bin() {
  return std::string(DSINFER_BIN_DIR) + "/dsinfer";
}

// A `dsinfer serve` child on a free port.
class ServeProcess {
 public:
  explicit ServeProcess(const std::string& extra = "") {
    port_ = 20000 + int(::getpid() % 20000);
    log_ = fs::temp_directory_path() / ("dsinfer-serve-" + std::to_string(::getpid()) + ".log");
    // The model is generated here, not in the child: a forked child has none of the parent's
    // thread-pool workers, and generate_model there waited on them forever whenever an earlier
    // test of this process had started the pool.
    const std::string& model = tiny_dir();
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string cmd = "exec " + bin() + " serve -m " + model + " --port " +
                              std::to_string(port_) + " --kv-cache-tokens 65536 " + extra + " > " +
                              log_ + " 2>&1";
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
      ::_exit(127);
    }
    for (int i = 0; i < 300; ++i) {  // up to 30 s to answer /health
      httplib::Client c("127.0.0.1", port_);
      if (auto r = c.Get("/health"); r && r->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "the server did not become ready:\n" << log();
  }
  ~ServeProcess() {
    if (pid_ > 0 && !waited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    fs::remove(log_);
  }
  int port() const { return port_; }
  std::string log() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // Sends `sig` and returns the exit status (-1: killed by a signal or no exit in 60 s).
  int stop(int sig) {
    ::kill(pid_, sig);
    for (int i = 0; i < 600; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        waited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return -1;
  }

 private:
  int port_ = 0;
  pid_t pid_ = -1;
  bool waited_ = false;
  std::string log_;
};

std::string capture(const std::string& cmd) {
  std::string out;
  std::FILE* p = ::popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while (p && (n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  if (p) ::pclose(p);
  return out;
}

TEST(ServeCli, GreedyOutputEqualsRunAndBenchServeHasNoErrors) {
  ServeProcess s;
  httplib::Client c("127.0.0.1", s.port());
  c.set_read_timeout(120, 0);
  const json body = {
      {"messages", json::array({{{"role", "user"}, {"content", "The engine reads"}}})},
      {"max_tokens", 24},
      {"temperature", 0}};
  auto r = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const std::string served = json::parse(r->body)["choices"][0]["message"]["content"];
  const std::string run = capture(bin() + " run -m " + tiny_dir() +
                                  " -p 'The engine reads' -n 24 --temp 0 -q 2>/dev/null");
  EXPECT_EQ(run, served + "\n");

  const std::string out =
      capture(bin() + " bench serve --url http://127.0.0.1:" + std::to_string(s.port()) +
              " --concurrency 4 --requests 8 --input-len 40 --output-len 6 --json - 2>&1");
  const size_t at = out.find('{');
  ASSERT_NE(at, std::string::npos) << out;
  const json j = json::parse(out.substr(at));
  const json& res = j["results"][0];
  EXPECT_EQ(res["name"], "serve");
  EXPECT_EQ(res["errors"], 0) << out;
  EXPECT_GT(res["output_tok_s"].get<double>(), 0);
  EXPECT_EQ(s.stop(SIGINT), 0) << s.log();
  EXPECT_NE(s.log().find("stopping"), std::string::npos) << s.log();
}

TEST(ServeCli, SigtermLetsAnInFlightRequestFinish) {
  ServeProcess s("--grace 30");
  std::thread client([&] {
    httplib::Client c("127.0.0.1", s.port());
    c.set_read_timeout(120, 0);
    const json body = {{"prompt", "hello"}, {"max_tokens", 400}, {"ignore_eos", true}};
    auto r = c.Post("/v1/completions", body.dump(), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(json::parse(r->body)["usage"]["completion_tokens"], 400);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_EQ(s.stop(SIGTERM), 0) << s.log();
  client.join();
}

}  // namespace
}  // namespace dsinfer

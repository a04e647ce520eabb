// Real clients against the server: the official OpenAI SDK (Node.js) and a headless Chromium on
// the built-in chat page, both from tests/clients (installed by `make deps`: npm ci there, and
// Debian's chromium). Without them these tests skip, except under CI=true, where they fail.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "server_test_util.h"

namespace dsinfer {
namespace {

namespace fs = std::filesystem;

const std::string kClients = std::string(DSINFER_SOURCE_DIR) + "/tests/clients";

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

// Skips (or fails under CI) when something the client tests need is missing.
#define REQUIRE_TOOL(cond, what)                                     \
  do {                                                               \
    if (!(cond)) {                                                   \
      if (in_ci()) FAIL() << what << " is missing (run make deps)";  \
      GTEST_SKIP() << what << " is missing (make deps installs it)"; \
    }                                                                \
  } while (0)

int run(const std::string& cmd, std::string* out) {
  std::FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  const int rc = ::pclose(p);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

bool have_node() {
  std::string out;
  return run("node --version", &out) == 0;
}

TEST(Clients, OfficialOpenAISdk) {
  REQUIRE_TOOL(have_node(), "node");
  REQUIRE_TOOL(fs::exists(kClients + "/node_modules/openai"), "the openai npm package");
  server::ServerOptions o;
  o.api_key = "test-key-123";
  testing::TestServer s(o);
  std::string out;
  const std::string cmd =
      "cd " + kClients + " && DSINFER_URL=http://127.0.0.1:" + std::to_string(s.port()) +
      " DSINFER_KEY=test-key-123 DSINFER_MODEL=model node --test openai_sdk.test.mjs";
  const int rc = run(cmd, &out);
  EXPECT_EQ(rc, 0) << out;
}

TEST(Clients, ChatPageInHeadlessChromium) {
  REQUIRE_TOOL(have_node(), "node");
  REQUIRE_TOOL(fs::exists(kClients + "/node_modules/playwright-core"), "playwright-core");
  REQUIRE_TOOL(fs::exists("/usr/bin/chromium"), "chromium");
  server::ServerOptions o;
  o.engine.context_limit = 512;  // the test sets the page's max tokens to keep replies short
  testing::TestServer s(o);
  std::string out;
  const std::string cmd = "cd " + kClients +
                          " && DSINFER_URL=http://127.0.0.1:" + std::to_string(s.port()) +
                          " node --test web_page.test.mjs";
  const int rc = run(cmd, &out);
  EXPECT_EQ(rc, 0) << out;
}

}  // namespace
}  // namespace dsinfer

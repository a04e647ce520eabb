#include "core/log.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace dsinfer {

namespace {
LogLevel level_from_env() {
  const char* env = std::getenv("DSINFER_LOG");
  if (!env) return LogLevel::warn;
  if (!std::strcmp(env, "debug")) return LogLevel::debug;
  if (!std::strcmp(env, "info")) return LogLevel::info;
  if (!std::strcmp(env, "error")) return LogLevel::error;
  return LogLevel::warn;
}
std::atomic<int> g_level{int(level_from_env())};
}  // namespace

void set_log_level(LogLevel level) {
  g_level = int(level);
}
LogLevel log_level() {
  return LogLevel(g_level.load());
}

void log_message(LogLevel level, const char* fmt, ...) {
  if (int(level) < g_level.load()) return;
  static const char* kTags[] = {"debug", "info", "warning", "error"};
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  const int tag = int(level) < 0 ? 0 : int(level) > 3 ? 3 : int(level);  // never index past kTags
  std::fprintf(stderr, "dsinfer %s: %s\n", kTags[tag], buf);
}

}  // namespace dsinfer

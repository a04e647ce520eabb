// Minimal leveled logging to stderr. DSINFER_LOG=debug|info|warn|error sets the threshold.
#pragma once

namespace dsinfer {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };
void set_log_level(LogLevel level);
LogLevel log_level();
void log_message(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) ::dsinfer::log_message(::dsinfer::LogLevel::debug, __VA_ARGS__)
#define log_info(...) ::dsinfer::log_message(::dsinfer::LogLevel::info, __VA_ARGS__)
#define log_warn(...) ::dsinfer::log_message(::dsinfer::LogLevel::warn, __VA_ARGS__)
#define log_error(...) ::dsinfer::log_message(::dsinfer::LogLevel::error, __VA_ARGS__)

}  // namespace dsinfer

#include "core/log.h"

#include <gtest/gtest.h>

#include <string>

namespace dsinfer {
namespace {

class Log : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = log_level(); }
  void TearDown() override { set_log_level(saved_); }
  LogLevel saved_ = LogLevel::warn;
};

TEST_F(Log, LevelRoundTrips) {
  for (LogLevel l : {LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error}) {
    set_log_level(l);
    EXPECT_EQ(log_level(), l);
  }
}

TEST_F(Log, MessagesBelowTheLevelAreDropped) {
  set_log_level(LogLevel::warn);
  ::testing::internal::CaptureStderr();
  log_debug("hidden %d", 1);
  log_info("hidden %d", 2);
  log_warn("shown %d %s", 3, "three");
  log_error("shown %.1f", 4.5);
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(out, "dsinfer warning: shown 3 three\ndsinfer error: shown 4.5\n");
}

TEST_F(Log, DebugLevelShowsEverythingWithItsTag) {
  set_log_level(LogLevel::debug);
  ::testing::internal::CaptureStderr();
  log_debug("a");
  log_info("b");
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(out, "dsinfer debug: a\ndsinfer info: b\n");
  set_log_level(LogLevel::error);
  ::testing::internal::CaptureStderr();
  log_warn("dropped");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

TEST_F(Log, LongMessagesAreTruncatedNotOverflowed) {
  set_log_level(LogLevel::warn);
  const std::string big(5000, 'x');
  ::testing::internal::CaptureStderr();
  log_warn("%s", big.c_str());
  const std::string out = ::testing::internal::GetCapturedStderr();
  const std::string prefix = "dsinfer warning: ";
  ASSERT_EQ(out.rfind(prefix, 0), 0u) << out.substr(0, 40);
  EXPECT_GT(out.size(), prefix.size() + 1000);
  EXPECT_LT(out.size(), prefix.size() + big.size());
  EXPECT_EQ(out.back(), '\n');
}

TEST_F(Log, OutOfRangeLevelDoesNotReadPastTheTagTable) {
  set_log_level(LogLevel::debug);
  ::testing::internal::CaptureStderr();
  log_message(LogLevel(7), "odd level");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "dsinfer error: odd level\n");
}

}  // namespace
}  // namespace dsinfer

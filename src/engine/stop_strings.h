// Streams generated text while holding back any tail that could still become a stop string,
// so a stop string is never released, even when it arrives split across tokens.
#pragma once

#include <string>
#include <vector>

namespace dsinfer {

class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops);

  // Adds text; returns what can be released now. Sets *hit when a stop string completed: the
  // text before it is released, the stop string and anything after it are dropped, and every
  // later push returns nothing.
  std::string push(const std::string& text, bool* hit);
  // What is still held back (call at the end when no stop string matched).
  std::string flush();
  bool empty() const { return stops_.empty(); }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool done_ = false;
};

}  // namespace dsinfer

// UTF-8 helpers the tokenizer needs: validation, code point iteration, and the lossy
// conversion HF's decoders use (each maximal ill-formed subpart becomes one U+FFFD, as Rust's
// String::from_utf8_lossy and Python's errors="replace" do).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace dsinfer::tokenizer {

inline constexpr size_t kValidUtf8 = std::string_view::npos;

// Byte offset of the first byte that is not part of a well-formed UTF-8 sequence (a truncated
// sequence at the end counts as ill-formed), or kValidUtf8 when all of `s` is well-formed.
size_t find_invalid_utf8(std::string_view s);

// Appends `in` to `out` as UTF-8, replacing ill-formed subparts with U+FFFD. When `final` is
// false, a sequence that is well-formed so far but cut off by the end of `in` is left
// unconsumed, so that a later call can complete it. Returns the number of bytes consumed.
size_t append_utf8_lossy(std::string& out, std::string_view in, bool final);

// Decodes the code point at s[i] and advances i past it. `s` must be well-formed UTF-8.
char32_t next_code_point(std::string_view s, size_t& i);

// Decodes the code point that ends at s[end - 1]; returns its first byte's offset in `start`.
// `s` must be well-formed UTF-8 and end > 0.
char32_t previous_code_point(std::string_view s, size_t end, size_t& start);

void append_utf8(std::string& out, char32_t cp);

// Unicode's White_Space property (what Rust's char::is_whitespace tests).
bool is_white_space(char32_t cp);

}  // namespace dsinfer::tokenizer

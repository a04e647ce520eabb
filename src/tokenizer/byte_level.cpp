#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace dsinfer::tokenizer {
namespace {

struct Table {
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, 512> to_byte{};  // every mapped character is below U+0200

  Table() {
    to_byte.fill(-1);
    // Printable Latin-1 bytes stand for themselves; the others (controls, space, DEL, NBSP,
    // soft hyphen) are moved to U+0100 onwards in byte order.
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      to_char[b] = printable ? char32_t(b) : next++;
      to_byte[to_char[b]] = int16_t(b);
    }
  }
};

const Table& table() {
  static const Table t;
  return t;
}

}  // namespace

char32_t byte_to_char(uint8_t byte) {
  return table().to_char[byte];
}

int char_to_byte(char32_t c) {
  return c < 512 ? table().to_byte[c] : -1;
}

std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) append_utf8(out, byte_to_char(b));
  return out;
}

std::optional<std::string> byte_level_to_bytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    int b = char_to_byte(next_code_point(text, i));
    if (b < 0) return std::nullopt;
    out += char(b);
  }
  return out;
}

std::string byte_level_decode_token(std::string_view token) {
  auto bytes = byte_level_to_bytes(token);
  return bytes ? std::move(*bytes) : std::string(token);
}

}  // namespace dsinfer::tokenizer

// The byte <-> character table of byte-level BPE (GPT-2's bytes_to_unicode, used by HF's
// ByteLevel pre-tokenizer and decoder): every byte maps to one printable character, so a
// vocabulary of strings can spell arbitrary bytes ("Ġ" is the space byte).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dsinfer::tokenizer {

char32_t byte_to_char(uint8_t byte);
// The byte that `c` stands for, or -1 when `c` is not in the table.
int char_to_byte(char32_t c);

// UTF-8 of the characters that spell `bytes`.
std::string bytes_to_byte_level(std::string_view bytes);

// The bytes a byte-level spelling stands for; nullopt if some character is not in the table.
// `text` must be well-formed UTF-8.
std::optional<std::string> byte_level_to_bytes(std::string_view text);

// What HF's ByteLevel decoder makes of one token: its bytes, or the token's own UTF-8 when it
// has a character outside the table (added tokens such as "<｜User｜>").
std::string byte_level_decode_token(std::string_view token);

}  // namespace dsinfer::tokenizer

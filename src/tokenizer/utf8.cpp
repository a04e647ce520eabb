#include "tokenizer/utf8.h"

#include <cstdint>
#include <cstring>

namespace dsinfer::tokenizer {
namespace {

enum class SeqStatus { valid, invalid, truncated };

// Classifies the sequence at p[0..n). `len` is the sequence length when valid, the length of
// the maximal ill-formed subpart when invalid (at least 1), and n when truncated.
// The byte ranges are Table 3-7 of the Unicode standard (well-formed UTF-8 byte sequences).
SeqStatus classify(const unsigned char* p, size_t n, size_t& len) {
  unsigned char lead = p[0];
  if (lead < 0x80) {
    len = 1;
    return SeqStatus::valid;
  }
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 1;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 2;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;  // excludes the UTF-16 surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 3;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    len = 1;
    return SeqStatus::invalid;
  }
  for (size_t k = 1; k <= need; ++k) {
    if (k >= n) {
      len = n;
      return SeqStatus::truncated;
    }
    unsigned char b = p[k];
    bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) {
      len = k;
      return SeqStatus::invalid;
    }
  }
  len = need + 1;
  return SeqStatus::valid;
}

}  // namespace

size_t find_invalid_utf8(std::string_view s) {
  auto p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    // ASCII runs are by far the common case; skip them eight bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    if (classify(p + i, n - i, len) != SeqStatus::valid) return i;
    i += len;
  }
  return kValidUtf8;
}

size_t append_utf8_lossy(std::string& out, std::string_view in, bool final) {
  auto p = reinterpret_cast<const unsigned char*>(in.data());
  size_t n = in.size(), i = 0;
  while (i < n) {
    size_t len;
    switch (classify(p + i, n - i, len)) {
      case SeqStatus::valid:
        out.append(in.data() + i, len);
        break;
      case SeqStatus::invalid:
        out += "\xEF\xBF\xBD";
        break;
      case SeqStatus::truncated:
        if (!final) return i;
        out += "\xEF\xBF\xBD";
        break;
    }
    i += len;
  }
  return n;
}

char32_t next_code_point(std::string_view s, size_t& i) {
  auto p = reinterpret_cast<const unsigned char*>(s.data());
  unsigned char b = p[i];
  if (b < 0x80) return p[i++];
  if (b < 0xE0) {
    char32_t cp = (char32_t(b & 0x1F) << 6) | (p[i + 1] & 0x3F);
    i += 2;
    return cp;
  }
  if (b < 0xF0) {
    char32_t cp = (char32_t(b & 0x0F) << 12) | (char32_t(p[i + 1] & 0x3F) << 6) | (p[i + 2] & 0x3F);
    i += 3;
    return cp;
  }
  char32_t cp = (char32_t(b & 0x07) << 18) | (char32_t(p[i + 1] & 0x3F) << 12) |
                (char32_t(p[i + 2] & 0x3F) << 6) | (p[i + 3] & 0x3F);
  i += 4;
  return cp;
}

char32_t previous_code_point(std::string_view s, size_t end, size_t& start) {
  start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  size_t i = start;
  return next_code_point(s, i);
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

bool is_white_space(char32_t cp) {
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

}  // namespace dsinfer::tokenizer

#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdexcept>

namespace dsinfer::tokenizer {

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

namespace {

// The contents of a character class for each translated escape. \s is ECMAScript's white
// space (tab, VT, FF, CR, LF, U+FEFF and the Z categories), as in transformers.js, which
// produced the reference encodings; Oniguruma's differs only in having U+0085 instead of
// U+FEFF. \w and \h are Oniguruma's.
constexpr std::string_view kSpaceClass = R"(\t\n\x0B\f\r\x{FEFF}\p{Z})";
constexpr std::string_view kWordClass = R"(\p{L}\p{M}\p{Nd}\p{Pc})";
constexpr std::string_view kHexClass = "0-9A-Fa-f";

std::string pcre2_error(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

// Per-thread match state: the match data only needs the whole-match offsets, and a JIT stack
// larger than the 32 KiB default so long runs of one character class cannot exhaust it.
struct MatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  MatchState() { pcre2_jit_stack_assign(context, nullptr, stack); }
  ~MatchState() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(data);
  }
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

std::shared_ptr<const Regex::Code> compile_code(const std::string& pcre2_pattern,
                                                const std::string& shown, uint32_t options) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre2_pattern.data()), pcre2_pattern.size(),
                    options | PCRE2_UTF, &err, &offset, nullptr);
  if (!code)
    throw std::invalid_argument("regex '" + shown + "': " + pcre2_error(err) + " at offset " +
                                std::to_string(offset));
  auto owned = std::make_shared<Regex::Code>();
  owned->code = code;
  owned->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return owned;
}

}  // namespace

std::string oniguruma_to_pcre2(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 32);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[++i];
      std::string_view cls;
      bool negated = false;
      switch (e) {
        case 's':
          cls = kSpaceClass;
          break;
        case 'S':
          cls = kSpaceClass, negated = true;
          break;
        case 'w':
          cls = kWordClass;
          break;
        case 'W':
          cls = kWordClass, negated = true;
          break;
        case 'h':
          cls = kHexClass;
          break;
        case 'H':
          cls = kHexClass, negated = true;
          break;
        default:
          out += c;
          out += e;
          continue;
      }
      if (in_class) {
        if (negated)
          throw std::invalid_argument("regex '" + std::string(p) + "': \\" + e +
                                      " inside [...] is not supported (offset " +
                                      std::to_string(i - 1) + ")");
        out += cls;
      } else {
        out += negated ? "[^" : "[";
        out += cls;
        out += ']';
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal, not the end of the class.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      // A POSIX class such as [:alpha:] inside a class: copy it whole.
      size_t close = p.find(":]", i + 2);
      if (close != std::string_view::npos) {
        out.append(p.substr(i, close + 2 - i));
        i = close + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

Regex Regex::compile(std::string_view pattern) {
  std::string shown(pattern);
  return Regex(compile_code(oniguruma_to_pcre2(pattern), shown, PCRE2_UCP), shown);
}

Regex Regex::literal(std::string_view text) {
  std::string shown(text);
  return Regex(compile_code(shown, shown, PCRE2_LITERAL), shown);
}

bool Regex::find(std::string_view subject, size_t start, size_t& match_begin,
                 size_t& match_end) const {
  MatchState& st = match_state();
  auto s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  int rc = code_->jit
               ? pcre2_jit_match(code_->code, s, subject.size(), start, 0, st.data, st.context)
               : pcre2_match(code_->code, s, subject.size(), start, PCRE2_NO_UTF_CHECK, st.data,
                             st.context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  // rc == 0 only says the ovector had no room for capture groups; the match itself is there.
  if (rc < 0)
    throw std::runtime_error("regex '" + pattern_ + "': matching failed: " + pcre2_error(rc));
  PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.data);
  match_begin = ov[0];
  match_end = ov[1];
  return true;
}

}  // namespace dsinfer::tokenizer

#include "tokenizer/pre_tokenizer.h"

#include "tokenizer/json_fields.h"

namespace dsinfer::tokenizer {
namespace {

// The split HF's ByteLevel pre-tokenizer does when use_regex is true (GPT-2's pattern).
constexpr std::string_view kByteLevelPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Part {
  size_t begin, end;
  bool is_match;
};

SplitBehavior parse_behavior(const std::string& s, const std::string& where) {
  if (s == "Removed") return SplitBehavior::removed;
  if (s == "Isolated") return SplitBehavior::isolated;
  if (s == "MergedWithPrevious") return SplitBehavior::merged_with_previous;
  if (s == "MergedWithNext") return SplitBehavior::merged_with_next;
  if (s == "Contiguous") return SplitBehavior::contiguous;
  json_error(where, "unsupported split behavior \"" + s +
                        "\" (supported: Removed, Isolated, MergedWithPrevious, MergedWithNext, "
                        "Contiguous)");
}

// Folds parts into the ones HF's SplitDelimiterBehavior keeps, marking none as matches.
std::vector<Part> apply_behavior(std::vector<Part> parts, SplitBehavior behavior) {
  std::vector<Part> out;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::removed:
      for (const Part& p : parts)
        if (!p.is_match) out.push_back(p);
      return out;
    case SplitBehavior::isolated:
      return parts;
    case SplitBehavior::merged_with_previous:
      for (const Part& p : parts) {
        if (p.is_match && !previous_match && !out.empty())
          out.back().end = p.end;
        else
          out.push_back({p.begin, p.end, false});
        previous_match = p.is_match;
      }
      return out;
    case SplitBehavior::merged_with_next:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty())
          out.back().begin = it->begin;
        else
          out.push_back({it->begin, it->end, false});
        previous_match = it->is_match;
      }
      return {out.rbegin(), out.rend()};
    case SplitBehavior::contiguous:
      for (const Part& p : parts) {
        if (p.is_match == previous_match && !out.empty())
          out.back().end = p.end;
        else
          out.push_back({p.begin, p.end, false});
        previous_match = p.is_match;
      }
      return out;
  }
  return out;
}

}  // namespace

void split_piece(std::string_view text, const Regex& regex, SplitBehavior behavior, bool invert,
                 std::vector<std::string_view>& out) {
  size_t prev = 0;
  if (behavior == SplitBehavior::isolated) {
    // The common case, without building the part list: every gap and match is a piece.
    regex.for_each_match(text, [&](size_t b, size_t e) {
      if (b > prev) out.push_back(text.substr(prev, b - prev));
      if (e > b) out.push_back(text.substr(b, e - b));
      prev = e;
    });
    if (prev < text.size()) out.push_back(text.substr(prev));
    return;
  }
  std::vector<Part> parts;
  regex.for_each_match(text, [&](size_t b, size_t e) {
    if (b > prev) parts.push_back({prev, b, invert});
    parts.push_back({b, e, !invert});
    prev = e;
  });
  if (prev < text.size()) parts.push_back({prev, text.size(), invert});
  for (const Part& p : apply_behavior(std::move(parts), behavior))
    if (p.end > p.begin) out.push_back(text.substr(p.begin, p.end - p.begin));
}

PreTokenizer PreTokenizer::from_json(const nlohmann::json& j, const std::string& where) {
  PreTokenizer pt;
  if (!j.is_null()) pt.add_steps(j, where);
  for (size_t i = 0; i + 1 < pt.steps_.size(); ++i)
    if (pt.steps_[i].byte_level)
      json_error(where,
                 "ByteLevel must be the last pre-tokenizer (steps after it would see "
                 "byte-level characters)");
  return pt;
}

void PreTokenizer::add_steps(const nlohmann::json& j, const std::string& where) {
  std::string type = json_string(j, "type", where);
  if (type == "Sequence") {
    const nlohmann::json& list = json_required(j, "pretokenizers", where);
    if (!list.is_array()) json_error(where + ".pretokenizers", "expected an array");
    for (size_t i = 0; i < list.size(); ++i)
      add_steps(list[i], where + ".pretokenizers[" + std::to_string(i) + "]");
  } else if (type == "Split") {
    Step step;
    const nlohmann::json& pattern = json_required(j, "pattern", where);
    std::string pwhere = where + ".pattern";
    try {
      if (pattern.is_object() && pattern.contains("Regex"))
        step.regex = Regex::compile(json_string(pattern, "Regex", pwhere));
      else if (pattern.is_object() && pattern.contains("String"))
        step.regex = Regex::literal(json_string(pattern, "String", pwhere));
      else
        json_error(pwhere, "expected {\"Regex\": ...} or {\"String\": ...}, got " + pattern.dump());
    } catch (const std::invalid_argument& e) {
      if (std::string_view(e.what()).starts_with(pwhere)) throw;
      json_error(pwhere, e.what());
    }
    step.behavior = parse_behavior(json_string(j, "behavior", where), where + ".behavior");
    step.invert = json_bool(j, "invert", where, false);
    steps_.push_back(std::move(step));
  } else if (type == "ByteLevel") {
    Step step;
    step.byte_level = true;
    // HF's defaults when the fields are absent.
    step.add_prefix_space = json_bool(j, "add_prefix_space", where, true);
    if (json_bool(j, "use_regex", where, true)) step.regex = Regex::compile(kByteLevelPattern);
    steps_.push_back(std::move(step));
  } else {
    json_error(where + ".type", "unsupported pre-tokenizer type \"" + type +
                                    "\" (supported: Sequence, Split, "
                                    "ByteLevel)");
  }
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& out,
                         std::deque<std::string>& arena) const {
  if (text.empty()) return;
  std::vector<std::string_view> current{text}, next;
  for (const Step& step : steps_) {
    next.clear();
    for (std::string_view piece : current) {
      if (step.byte_level) {
        // HF prepends the space to every piece that lacks one, not just the first.
        if (step.add_prefix_space && piece.front() != ' ') {
          arena.push_back(" " + std::string(piece));
          piece = arena.back();
        }
        if (step.regex)
          split_piece(piece, *step.regex, SplitBehavior::isolated, false, next);
        else
          next.push_back(piece);
      } else {
        split_piece(piece, *step.regex, step.behavior, step.invert, next);
      }
    }
    current.swap(next);
  }
  out.insert(out.end(), current.begin(), current.end());
}

}  // namespace dsinfer::tokenizer

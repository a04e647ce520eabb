#include "tokenizer/chat_output_parser.h"

#include <algorithm>
#include <initializer_list>
#include <stdexcept>
#include <utility>

#include "tokenizer/python_json.h"
#include "tokenizer/utf8.h"

namespace dsinfer {
namespace {

using Kind = ChatOutputDelta::Kind;
using Markers = std::initializer_list<std::string_view>;

constexpr std::string_view kEos = "<｜end▁of▁sentence｜>";
constexpr std::string_view kThinkEnd = "</think>";

// V3.2 (DSML)
constexpr std::string_view kDsmlBlockNl = "\n\n<｜DSML｜function_calls>";
constexpr std::string_view kDsmlBlock = "<｜DSML｜function_calls>";
constexpr std::string_view kDsmlBlockEnd = "</｜DSML｜function_calls>";
constexpr std::string_view kDsmlInvoke = "<｜DSML｜invoke name=\"";
constexpr std::string_view kDsmlInvokeRest = "\">";
constexpr std::string_view kDsmlInvokeEnd = "</｜DSML｜invoke>";
constexpr std::string_view kDsmlParam = "<｜DSML｜parameter name=\"";
constexpr std::string_view kDsmlStringTrue = "\" string=\"true\">";
constexpr std::string_view kDsmlStringFalse = "\" string=\"false\">";
constexpr std::string_view kDsmlParamEnd = "</｜DSML｜parameter>";

// V3 / V3.1
constexpr std::string_view kCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kSep = "<｜tool▁sep｜>";
constexpr std::string_view kV3JsonFence = "\n```json\n";
constexpr std::string_view kV3ArgsEndFenced = "\n```<｜tool▁call▁end｜>";
constexpr std::string_view kV3ArgsEndFence = "```<｜tool▁call▁end｜>";

// Names longer than this, or with a newline or '<' in them, are not names.
constexpr size_t kMaxName = 512;

bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

enum class Match { full, partial, none };

// Whether `text` starts with `lit` (full) or is a proper prefix of it (partial).
Match match(std::string_view text, std::string_view lit) {
  if (text.size() >= lit.size())
    return text.substr(0, lit.size()) == lit ? Match::full : Match::none;
  return lit.substr(0, text.size()) == text ? Match::partial : Match::none;
}

// A name at the start of `text`, up to (not including) the first `stop`: full with its length,
// partial while `stop` has not come yet, none when a forbidden character or the length limit
// comes first.
struct Field {
  Match status;
  size_t size;
};

Field read_field(std::string_view text, char stop, std::string_view forbidden) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == stop) return {Match::full, i};
    if (i >= kMaxName || forbidden.find(text[i]) != std::string_view::npos) return {Match::none, i};
  }
  return {text.size() > kMaxName ? Match::none : Match::partial, text.size()};
}

struct Found {
  size_t pos = std::string_view::npos;
  std::string_view marker;
};

// The earliest occurrence of any marker (the longest one on a tie).
Found find_first(std::string_view text, Markers markers) {
  Found best;
  for (std::string_view m : markers) {
    size_t p = text.find(m);
    if (p == std::string_view::npos) continue;
    if (p < best.pos || (p == best.pos && m.size() > best.marker.size())) best = {p, m};
  }
  return best;
}

// The length of the longest end of `text` that is a proper prefix of a marker: the text that
// must wait for the next piece before it is known not to be a marker.
size_t held_back(std::string_view text, Markers markers) {
  size_t longest = 0;
  for (std::string_view m : markers) {
    for (size_t k = std::min(text.size(), m.size() - 1); k > longest; --k) {
      if (text[text.size() - k] == m[0] && text.substr(text.size() - k) == m.substr(0, k)) {
        longest = k;
        break;
      }
    }
  }
  return longest;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// The "type" of a JSON schema as a list of names.
bool schema_allows(const nlohmann::ordered_json& schema, std::string_view type) {
  if (!schema.is_object()) return false;
  auto it = schema.find("type");
  if (it == schema.end()) return false;
  if (it->is_string()) return it->get_ref<const std::string&>() == type;
  if (it->is_array())
    for (const auto& t : *it)
      if (t.is_string() && t.get_ref<const std::string&>() == type) return true;
  return false;
}

}  // namespace

void ParsedChatOutput::add(const ChatOutputDelta& delta) {
  switch (delta.kind) {
    case ChatOutputDelta::Kind::reasoning:
      reasoning_content += delta.text;
      return;
    case ChatOutputDelta::Kind::content:
      content += delta.text;
      return;
    case ChatOutputDelta::Kind::tool_call_start:
    case ChatOutputDelta::Kind::tool_call_arguments:
      if (delta.tool_index < 0) return;
      if (size_t(delta.tool_index) >= tool_calls.size())
        tool_calls.resize(size_t(delta.tool_index) + 1);
      if (delta.kind == ChatOutputDelta::Kind::tool_call_start)
        tool_calls[size_t(delta.tool_index)].name = delta.text;
      else
        tool_calls[size_t(delta.tool_index)].arguments += delta.text;
      return;
  }
}

ChatOutputParser::ChatOutputParser(ChatFormat format, bool thinking,
                                   const nlohmann::ordered_json& tools)
    : format_(format), state_(thinking ? State::reasoning : State::content) {
  if (thinking && format == ChatFormat::deepseek_v3)
    throw std::invalid_argument("the v3 chat format has no thinking mode (use v3.1 or v3.2)");
  if (tools.is_array()) {
    for (const auto& t : tools) {
      const nlohmann::ordered_json* fn = &t;
      if (t.is_object() && t.contains("function")) fn = &t["function"];
      if (!fn->is_object()) continue;
      auto name = fn->find("name");
      auto params = fn->find("parameters");
      if (name != fn->end() && name->is_string() && params != fn->end() && params->is_object())
        schemas_[name->get<std::string>()] = *params;
    }
  }
}

std::vector<ChatOutputDelta> ChatOutputParser::push(std::string_view text) {
  if (state_ == State::done) throw std::logic_error("ChatOutputParser::push after finish");
  std::string input = std::move(utf8_tail_);
  input += text;
  std::string clean;
  size_t used = tokenizer::append_utf8_lossy(clean, input, /*final=*/false);
  utf8_tail_ = input.substr(used);
  feed(clean, false);
  run(false);
  return std::exchange(out_, {});
}

std::vector<ChatOutputDelta> ChatOutputParser::finish() {
  if (state_ == State::done) throw std::logic_error("ChatOutputParser::finish called twice");
  std::string clean;
  tokenizer::append_utf8_lossy(clean, utf8_tail_, /*final=*/true);
  utf8_tail_.clear();
  feed(clean, true);
  run(true);
  state_ = State::done;
  return std::exchange(out_, {});
}

// Passes the text on to buf_ without <｜end▁of▁sentence｜>, holding back a possible start of it.
void ChatOutputParser::feed(std::string_view text, bool final) {
  eos_hold_ += text;
  std::string_view rest = eos_hold_;
  for (size_t p; (p = rest.find(kEos)) != std::string_view::npos;) {
    buf_ += rest.substr(0, p);
    rest.remove_prefix(p + kEos.size());
  }
  size_t keep = final ? 0 : held_back(rest, {kEos});
  buf_ += rest.substr(0, rest.size() - keep);
  eos_hold_ = std::string(rest.substr(rest.size() - keep));
}

void ChatOutputParser::run(bool final) {
  for (bool more = true; more;) {
    switch (state_) {
      case State::reasoning:
      case State::content:
        more = step_text(final);
        break;
      case State::dsml_block:
        more = step_dsml_block(final);
        break;
      case State::dsml_invoke:
        more = step_dsml_invoke(final);
        break;
      case State::dsml_value:
        more = step_dsml_value(final);
        break;
      case State::calls_block:
        more = step_calls_block(final);
        break;
      case State::call_args:
        more = step_call_args(final);
        break;
      case State::done:
        more = false;
        break;
    }
  }
  buf_.erase(0, mark_);
  pos_ -= mark_;
  mark_ = 0;
}

void ChatOutputParser::emit(Kind kind, std::string_view text, int tool_index) {
  if (text.empty() && kind != Kind::tool_call_start) return;
  if (!out_.empty() && kind != Kind::tool_call_start && out_.back().kind == kind &&
      out_.back().tool_index == tool_index) {
    out_.back().text += text;
    return;
  }
  out_.push_back({kind, std::string(text), tool_index});
}

bool ChatOutputParser::step_text(bool final) {
  bool reasoning = state_ == State::reasoning;
  Kind kind = reasoning ? Kind::reasoning : Kind::content;
  std::string_view view = std::string_view(buf_).substr(pos_);
  Found f;
  Markers markers_v32_r = {kThinkEnd, kDsmlBlockNl, kDsmlBlock};
  Markers markers_v32_c = {kDsmlBlockNl, kDsmlBlock};
  Markers markers_v31_r = {kThinkEnd, kCallsBegin};
  Markers markers_c = {kCallsBegin};
  Markers markers = format_ == ChatFormat::deepseek_v3_2
                        ? (reasoning ? markers_v32_r : markers_v32_c)
                    : reasoning ? markers_v31_r
                                : markers_c;
  f = find_first(view, markers);
  if (f.pos == std::string_view::npos) {
    size_t keep = final ? 0 : held_back(view, markers);
    emit(kind, view.substr(0, view.size() - keep));
    pos_ += view.size() - keep;
    mark_ = pos_;
    return false;
  }
  emit(kind, view.substr(0, f.pos));
  pos_ += f.pos;
  if (f.marker == kThinkEnd) {
    pos_ += f.marker.size();
    mark_ = pos_;
    state_ = State::content;
    return true;
  }
  // A tool-call block: its opening stays unaccounted for until it has produced a call.
  mark_ = pos_;
  pos_ += f.marker.size();
  block_origin_ = state_;
  block_has_call_ = false;
  state_ = format_ == ChatFormat::deepseek_v3_2 ? State::dsml_block : State::calls_block;
  return true;
}

void ChatOutputParser::skip_space() {
  while (pos_ < buf_.size() && is_space(buf_[pos_])) ++pos_;
  // Between the tags of a block that has produced a call, white space is markup.
  if (block_has_call_) mark_ = pos_;
}

// The text from the end of the last complete unit up to pos_ goes back to the content (or to the
// reasoning, for a block that produced nothing and started there), and parsing resumes at pos_.
void ChatOutputParser::fail() {
  if (call_open_) {
    if (format_ == ChatFormat::deepseek_v3_2) emit_args("}");
    call_open_ = false;
  }
  State back = block_has_call_ ? State::content : block_origin_;
  emit(back == State::reasoning ? Kind::reasoning : Kind::content,
       std::string_view(buf_).substr(mark_, pos_ - mark_));
  mark_ = pos_;
  state_ = back;
}

void ChatOutputParser::start_tool(std::string name) {
  current_tool_ = next_tool_++;
  emit(Kind::tool_call_start, name, current_tool_);
  tool_name_ = std::move(name);
  if (format_ == ChatFormat::deepseek_v3_2) emit_args("{");
  call_open_ = true;
  call_has_param_ = false;
  block_has_call_ = true;
}

bool ChatOutputParser::step_dsml_block(bool final) {
  skip_space();
  std::string_view view = std::string_view(buf_).substr(pos_);
  Match end = match(view, kDsmlBlockEnd);
  if (end == Match::full) {
    pos_ += kDsmlBlockEnd.size();
    mark_ = pos_;  // a block without calls is dropped
    state_ = State::content;
    return true;
  }
  Match wait = end;
  if (Match invoke = match(view, kDsmlInvoke); invoke == Match::full) {
    std::string_view after = view.substr(kDsmlInvoke.size());
    Field name = read_field(after, '"', "\n<>");
    wait = name.status;
    if (name.status == Match::full) {
      wait = match(after.substr(name.size), kDsmlInvokeRest);
      if (wait == Match::full) {
        start_tool(std::string(after.substr(0, name.size)));
        pos_ += kDsmlInvoke.size() + name.size + kDsmlInvokeRest.size();
        mark_ = pos_;
        state_ = State::dsml_invoke;
        return true;
      }
    }
  } else if (invoke == Match::partial || view.empty()) {
    wait = Match::partial;
  }
  if (wait == Match::partial && !final) return false;
  fail();
  return true;
}

bool ChatOutputParser::step_dsml_invoke(bool final) {
  skip_space();
  std::string_view view = std::string_view(buf_).substr(pos_);
  Match end = match(view, kDsmlInvokeEnd);
  if (end == Match::full) {
    emit_args("}");
    call_open_ = false;
    pos_ += kDsmlInvokeEnd.size();
    mark_ = pos_;
    state_ = State::dsml_block;
    return true;
  }
  Match wait = end;
  if (Match param = match(view, kDsmlParam); param == Match::full) {
    std::string_view after = view.substr(kDsmlParam.size());
    Field key = read_field(after, '"', "\n<>");
    wait = key.status;
    if (key.status == Match::full) {
      std::string_view rest = after.substr(key.size);
      Match is_true = match(rest, kDsmlStringTrue), is_false = match(rest, kDsmlStringFalse);
      if (is_true == Match::full || is_false == Match::full) {
        value_is_string_ = is_true == Match::full;
        value_key_ = std::string(after.substr(0, key.size));
        value_raw_.clear();
        std::string piece = call_has_param_ ? ", " : "";
        piece += tokenizer::python_json_string(value_key_);
        piece += value_is_string_ ? ": \"" : ": ";
        emit_args(piece);
        call_has_param_ = true;
        pos_ += kDsmlParam.size() + key.size +
                (value_is_string_ ? kDsmlStringTrue : kDsmlStringFalse).size();
        mark_ = pos_;
        state_ = State::dsml_value;
        return true;
      }
      wait = is_true == Match::partial || is_false == Match::partial ? Match::partial : Match::none;
    }
  } else if (param == Match::partial || view.empty()) {
    wait = Match::partial;
  }
  if (wait == Match::partial && !final) return false;
  fail();
  return true;
}

void ChatOutputParser::value_text(std::string_view text) {
  if (text.empty()) return;
  if (value_is_string_) {
    std::string escaped;
    tokenizer::append_python_json_escaped(escaped, text);
    emit_args(escaped);
  } else {
    value_raw_ += text;
  }
}

void ChatOutputParser::end_value() {
  emit_args(value_is_string_ ? "\"" : decide_raw_value(value_raw_));
  value_raw_.clear();
}

std::string ChatOutputParser::decide_raw_value(const std::string& raw) const {
  if (nlohmann::ordered_json::accept(raw)) return raw;
  auto tool = schemas_.find(tool_name_);
  if (tool != schemas_.end()) {
    auto props = tool->second.find("properties");
    if (props != tool->second.end() && props->is_object()) {
      auto prop = props->find(value_key_);
      if (prop != props->end()) {
        std::string_view t = trim(raw);
        if ((t == "True" || t == "False") && schema_allows(*prop, "boolean"))
          return t == "True" ? "true" : "false";
        if (t == "None" && schema_allows(*prop, "null")) return "null";
      }
    }
  }
  return tokenizer::python_json_string(raw);
}

bool ChatOutputParser::step_dsml_value(bool final) {
  std::string_view view = std::string_view(buf_).substr(pos_);
  size_t end = view.find(kDsmlParamEnd);
  if (end != std::string_view::npos) {
    value_text(view.substr(0, end));
    pos_ += end + kDsmlParamEnd.size();
    mark_ = pos_;
    end_value();
    state_ = State::dsml_invoke;
    return true;
  }
  size_t keep = final ? 0 : held_back(view, {kDsmlParamEnd});
  value_text(view.substr(0, view.size() - keep));
  pos_ += view.size() - keep;
  mark_ = pos_;
  if (!final) return false;
  end_value();
  emit_args("}");
  call_open_ = false;
  state_ = State::content;
  return true;
}

bool ChatOutputParser::step_calls_block(bool final) {
  skip_space();
  std::string_view view = std::string_view(buf_).substr(pos_);
  Match end = match(view, kCallsEnd);
  if (end == Match::full) {
    pos_ += kCallsEnd.size();
    mark_ = pos_;
    state_ = State::content;
    return true;
  }
  Match wait = end;
  if (Match call = match(view, kCallBegin); call == Match::full) {
    // V3.1: NAME<｜tool▁sep｜>;  V3: TYPE<｜tool▁sep｜>NAME\n```json\n
    std::string_view rest = view.substr(kCallBegin.size());
    size_t used = kCallBegin.size();
    std::string_view name;
    Field first = read_field(rest, '<', "\n");
    wait = first.status;
    if (first.status == Match::full) {
      name = rest.substr(0, first.size);
      rest.remove_prefix(first.size);
      used += first.size;
      wait = match(rest, kSep);
      if (wait == Match::full) {
        rest.remove_prefix(kSep.size());
        used += kSep.size();
        if (format_ == ChatFormat::deepseek_v3) {
          Field second = read_field(rest, '\n', "<");
          wait = second.status;
          if (second.status == Match::full) {
            name = rest.substr(0, second.size);
            wait = match(rest.substr(second.size), kV3JsonFence);
            used += second.size + kV3JsonFence.size();
          }
        }
      }
    }
    if (wait == Match::full) {
      start_tool(std::string(name));
      pos_ += used;
      mark_ = pos_;
      state_ = State::call_args;
      return true;
    }
  } else if (call == Match::partial || view.empty()) {
    wait = Match::partial;
  }
  if (wait == Match::partial && !final) return false;
  fail();
  return true;
}

bool ChatOutputParser::step_call_args(bool final) {
  std::string_view view = std::string_view(buf_).substr(pos_);
  Markers v3 = {kV3ArgsEndFenced, kV3ArgsEndFence, kCallEnd};
  Markers v31 = {kCallEnd};
  Markers markers = format_ == ChatFormat::deepseek_v3 ? v3 : v31;
  Found f = find_first(view, markers);
  if (f.pos != std::string_view::npos) {
    emit_args(view.substr(0, f.pos));
    pos_ += f.pos + f.marker.size();
    mark_ = pos_;
    call_open_ = false;
    state_ = State::calls_block;
    return true;
  }
  size_t keep = final ? 0 : held_back(view, markers);
  emit_args(view.substr(0, view.size() - keep));
  pos_ += view.size() - keep;
  mark_ = pos_;
  if (!final) return false;
  call_open_ = false;
  state_ = State::content;
  return true;
}

ParsedChatOutput parse_chat_output(ChatFormat format, bool thinking, std::string_view text,
                                   const nlohmann::ordered_json& tools) {
  ChatOutputParser parser(format, thinking, tools);
  ParsedChatOutput out;
  out.add(parser.push(text));
  out.add(parser.finish());
  return out;
}

}  // namespace dsinfer

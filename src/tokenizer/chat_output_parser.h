// The model's output as an OpenAI-style assistant message, incrementally: reasoning text,
// answer text and tool calls, for DeepSeek's chat formats.
//
//   ChatOutputParser parser(ChatFormat::deepseek_v3_2, /*thinking=*/true, request_tools);
//   for (each decoded text piece) for (const ChatOutputDelta& d : parser.push(piece)) send(d);
//   for (const ChatOutputDelta& d : parser.finish()) send(d);
//
// What the formats look like (the prompt ended with the assistant opening; in thinking mode that
// is <think>, so the output starts inside the reasoning):
//  - V3.2 (DSML):  REASONING</think>CONTENT\n\n<｜DSML｜function_calls>\n
//                  <｜DSML｜invoke name="NAME">\n
//                  <｜DSML｜parameter name="KEY" string="true|false">VALUE</｜DSML｜parameter>\n
//                  </｜DSML｜invoke>\n</｜DSML｜function_calls><｜end▁of▁sentence｜>
//  - V3.1:  REASONING</think>CONTENT<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>
//           ARGS<｜tool▁call▁end｜>...<｜tool▁calls▁end｜><｜end▁of▁sentence｜>
//  - V3:    CONTENT<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n
//           ARGS\n```<｜tool▁call▁end｜>\n...<｜tool▁calls▁end｜><｜end▁of▁sentence｜>
//           (no thinking mode)
//
// Streaming rules:
//  - Thinking mode starts in the reasoning and </think> ends it; chat mode starts in the content.
//    In the reasoning, the start of a tool-call block also ends it (a model that forgot
//    </think>).
//  - <｜end▁of▁sentence｜> is dropped wherever it appears (it ends generation, so normally it is
//    the last thing).
//  - Text that could still be the start of a marker is held back until it is decided, like a
//    stop string; so no marker, or part of one, ever reaches the content or the reasoning. For
//    V3.2 the "\n\n" just before <｜DSML｜function_calls> belongs to the marker (the renderer
//    writes it), so content that ends with "\n" is held back until the next character.
//  - Every delta is valid UTF-8: bytes of a character split across push() calls are held back;
//    ill-formed input bytes become U+FFFD (each maximal ill-formed subpart, as the decoder does).
//  - Consecutive deltas of one kind (and one tool call) from one push() are merged.
//
// Tool calls: a tool_call_start delta (index from 0 in this output, the function name) comes as
// soon as the name is complete, then tool_call_arguments pieces whose concatenation is the call's
// arguments string:
//  - V3.2: a JSON object written as the official parser does (Python json.dumps style:
//    {"key": value, "key2": value2}, non-ASCII kept). "{" comes with the start; each parameter
//    adds `"key": ` (after ", " from the second on) as soon as its tag is complete; a
//    string="true" value is streamed as it is generated, escaped inside a JSON string; a
//    string="false" value is the raw JSON text, so it arrives whole once its closing tag is seen
//    (only then can it be checked): kept verbatim when it is valid JSON, else, if the tool's JSON
//    schema (from `tools`) gives the parameter a boolean or null type and the value is Python's
//    True / False / None, that literal, and otherwise the value as a JSON string. "}" comes
//    with </｜DSML｜invoke>.
//  - V3.1 / V3: the model's arguments text, verbatim (not validated), streamed as generated.
//
// Malformed output never throws and never loses text:
//  - Inside a tool-call block, anything that does not continue the grammar (junk between tags,
//    a bad invoke or parameter tag, a name longer than 512 bytes or with a newline or a '<' in
//    it) ends the block. The text from the end of the last complete tag (from the start of the
//    block, "\n\n" included, when the block has produced no tool call yet) up to where the tag
//    or text that does not fit begins is returned as text of the state the block started from
//    (no call yet: content or reasoning) or as content (some call started), and parsing
//    resumes there in that state: the misfit and what follows are text again, unless they start
//    a new block. A call already started stays: its arguments are closed ("}" for V3.2) so
//    they remain a complete string.
//  - At finish(), held-back text is released: in the content or reasoning as text, inside a
//    parameter value or V3.1/V3 arguments as part of them (the call is then closed: a V3.2
//    string value gets its closing quote, a string="false" value is decided as above, then
//    "}"), and an unfinished tag inside a block as above (as content or reasoning).
//  - Whitespace between the tags of a block is markup; an empty block is dropped. Text after a
//    closed block is content again (and may start another block; tool indices continue).
//  - A V3.2 value runs to the first </｜DSML｜parameter>, as in the official parser, even when it
//    contains other DSML tags.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/chat_format.h"

namespace dsinfer {

struct ChatOutputDelta {
  enum class Kind { reasoning, content, tool_call_start, tool_call_arguments };
  Kind kind;
  // reasoning / content: the text; tool_call_start: the function name; tool_call_arguments: a
  // piece of the arguments string.
  std::string text;
  // tool_call_start / tool_call_arguments: the call's index in this output (0, 1, ...).
  int tool_index = -1;

  bool operator==(const ChatOutputDelta&) const = default;
};

struct ParsedToolCall {
  std::string name;
  std::string arguments;  // JSON text (see ChatOutputParser for V3.1 / V3)
  bool operator==(const ParsedToolCall&) const = default;
};

struct ParsedChatOutput {
  std::string content;
  std::string reasoning_content;
  std::vector<ParsedToolCall> tool_calls;

  // Folds one delta in (what a client does with a stream).
  void add(const ChatOutputDelta& delta);
  void add(const std::vector<ChatOutputDelta>& deltas) {
    for (const auto& d : deltas) add(d);
  }
  bool operator==(const ParsedChatOutput&) const = default;
};

class ChatOutputParser {
 public:
  // `thinking`: the prompt ended with the thinking opening (V3.1 / V3.2; std::invalid_argument
  // for V3). `tools`: the request's OpenAI tools array (or null), used only for the JSON schemas
  // of string="false" V3.2 parameters whose value is not valid JSON.
  ChatOutputParser(ChatFormat format, bool thinking, const nlohmann::ordered_json& tools = nullptr);

  // The deltas that `text` (the next piece of the output) completes.
  std::vector<ChatOutputDelta> push(std::string_view text);
  // The end of the output: everything still held back. After it, push() and finish() throw
  // std::logic_error.
  std::vector<ChatOutputDelta> finish();

  // Tool calls started so far.
  int tool_call_count() const { return next_tool_; }

 private:
  enum class State {
    reasoning,
    content,
    dsml_block,   // inside <｜DSML｜function_calls>: an invoke or the block's end next
    dsml_invoke,  // inside an invoke: a parameter or the invoke's end next
    dsml_value,   // inside a parameter value
    calls_block,  // V3 / V3.1 inside <｜tool▁calls▁begin｜>: a call or the block's end next
    call_args,    // V3 / V3.1 arguments
    done,
  };

  void feed(std::string_view text, bool final);
  void run(bool final);
  void skip_space();
  bool step_text(bool final);
  bool step_dsml_block(bool final);
  bool step_dsml_invoke(bool final);
  bool step_dsml_value(bool final);
  bool step_calls_block(bool final);
  bool step_call_args(bool final);
  void fail();
  void emit(ChatOutputDelta::Kind kind, std::string_view text, int tool_index = -1);
  void emit_args(std::string_view text) {
    emit(ChatOutputDelta::Kind::tool_call_arguments, text, current_tool_);
  }
  void start_tool(std::string name);
  void value_text(std::string_view text);
  void end_value();
  std::string decide_raw_value(const std::string& raw) const;

  ChatFormat format_;
  std::unordered_map<std::string, nlohmann::ordered_json> schemas_;  // name -> "parameters"

  std::string utf8_tail_;  // an incomplete character at the end of the input so far
  std::string eos_hold_;   // a possible start of <｜end▁of▁sentence｜>
  // Input not yet accounted for: buf_[mark_, pos_) is consumed but not yet turned into deltas
  // (the tags of an unfinished tool-call unit); buf_[pos_, end) is not yet looked at.
  std::string buf_;
  size_t pos_ = 0, mark_ = 0;

  State state_;
  State block_origin_ = State::content;  // the state a tool-call block started from
  bool block_has_call_ = false;
  int next_tool_ = 0, current_tool_ = -1;
  bool call_open_ = false, call_has_param_ = false;
  bool value_is_string_ = false;
  std::string value_key_, value_raw_, tool_name_;

  std::vector<ChatOutputDelta> out_;
};

// push(text) + finish(), folded into one message.
ParsedChatOutput parse_chat_output(ChatFormat format, bool thinking, std::string_view text,
                                   const nlohmann::ordered_json& tools = nullptr);

}  // namespace dsinfer

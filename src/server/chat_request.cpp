#include "server/chat_request.h"

#include "tokenizer/chat_message.h"

namespace dsinfer::server {

namespace {

using ojson = nlohmann::ordered_json;

// "messages[2].content: expected a string" -> 400 with param "messages[2].content".
ApiError field_error(const std::string& message) {
  const size_t end = message.find_first_of(" :");
  return ApiError(400, "invalid_request_error", message,
                  end == std::string::npos ? "" : message.substr(0, end));
}

bool thinking_of(const ojson& body) {
  auto it = body.find("chat_template_kwargs");
  if (it == body.end() || it->is_null()) return false;
  if (!it->is_object()) throw bad_request("chat_template_kwargs", "expected an object");
  for (const char* key : {"thinking", "enable_thinking"}) {
    auto t = it->find(key);
    if (t == it->end() || t->is_null()) continue;
    if (!t->is_boolean())
      throw bad_request(std::string("chat_template_kwargs.") + key, "expected true or false");
    return t->get<bool>();
  }
  return false;
}

}  // namespace

ChatPrompt render_chat_request(const ServerContext& ctx, const ojson& body) {
  auto m = body.find("messages");
  if (m == body.end() || m->is_null()) throw bad_request("messages", "is required");
  if (!m->is_array() || m->empty()) throw bad_request("messages", "expected a non-empty array");
  std::vector<ChatMessage> messages;
  try {
    messages = chat_messages_from_json(*m);
  } catch (const std::invalid_argument& e) {
    throw field_error(e.what());
  }
  ChatPrompt p;
  ChatOptions o;
  o.add_generation_prompt = true;
  o.thinking = thinking_of(body);

  // Tools and the choice among them.
  auto t = body.find("tools");
  if (t != body.end() && !t->is_null()) {
    try {
      check_chat_tools(*t, "tools");
    } catch (const std::invalid_argument& e) {
      throw field_error(e.what());
    }
    if (!t->empty()) o.tools = *t;
  }
  std::string forced_name;
  bool force_call = false;
  auto tc = body.find("tool_choice");
  if (tc != body.end() && !tc->is_null()) {
    if (tc->is_string()) {
      const std::string v = tc->get<std::string>();
      if (v == "none")
        o.tools = nullptr;
      else if (v == "required")
        force_call = true;
      else if (v != "auto")
        throw bad_request("tool_choice", "expected \"auto\", \"none\", \"required\" or a function");
    } else if (tc->is_object() && tc->contains("function") && (*tc)["function"].is_object() &&
               (*tc)["function"].contains("name") && (*tc)["function"]["name"].is_string()) {
      forced_name = (*tc)["function"]["name"].get<std::string>();
      bool known = false;
      if (o.tools.is_array())
        for (const auto& tool : o.tools)
          known |= tool.contains("function") && tool["function"].value("name", "") == forced_name;
      if (!known)
        throw bad_request("tool_choice.function.name", "no tool named \"" + forced_name + "\"");
      force_call = true;
    } else {
      throw bad_request("tool_choice",
                        "expected \"auto\", \"none\", \"required\" or {\"type\": \"function\", "
                        "\"function\": {\"name\": ...}}");
    }
    if (force_call && o.tools.is_null()) throw bad_request("tool_choice", "needs tools");
  }
  if (force_call) {
    // The answer starts with the tool-call block (no reasoning first: the model calls at once).
    o.thinking = false;
    if (ctx.format == ChatFormat::deepseek_v3_2) {
      p.forced_prefix = "\n\n<｜DSML｜function_calls>\n";
      if (!forced_name.empty())
        p.forced_prefix += "<｜DSML｜invoke name=\"" + forced_name + "\">\n";
    } else if (ctx.format == ChatFormat::deepseek_v3_1) {
      p.forced_prefix = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>";
      if (!forced_name.empty()) p.forced_prefix += forced_name + "<｜tool▁sep｜>";
    } else {
      throw bad_request("tool_choice", "the v3 chat format has no tool rendering");
    }
  }
  auto rf = body.find("response_format");
  if (rf != body.end() && !rf->is_null()) {
    if (!rf->is_object() || !rf->contains("type") || !(*rf)["type"].is_string())
      throw bad_request("response_format", "expected an object with a \"type\"");
    if ((*rf)["type"].get<std::string>() != "text") o.response_format = *rf;
  }
  try {
    p.tokens = encode_chat(*ctx.tokenizer, ctx.format, messages, o);
    if (!p.forced_prefix.empty()) {
      const auto more = ctx.tokenizer->encode(p.forced_prefix, true);
      p.tokens.insert(p.tokens.end(), more.begin(), more.end());
    }
  } catch (const std::invalid_argument& e) {
    throw field_error(e.what());
  }
  p.thinking = o.thinking;
  p.tools = o.tools;
  return p;
}

}  // namespace dsinfer::server

// The built-in chat page served at GET /: one self-contained HTML file (no build step, no external
// assets) that streams from /v1/chat/completions: multi-turn chat, a thinking toggle with the
// reasoning shown apart, a max-tokens field, a stop button, and each reply's TTFT and tokens/s.
#pragma once

#include <string_view>

namespace dsinfer::server {

inline constexpr std::string_view kWebPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dsinfer chat</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; display: flex; flex-direction: column; height: 100vh; background: #fafafa; }
  header { padding: 8px 16px; background: #1f2937; color: #fff; display: flex; gap: 16px; align-items: center; }
  header .model { opacity: .8; font-size: 13px; }
  #log { flex: 1; overflow-y: auto; padding: 16px; }
  .msg { max-width: 860px; margin: 0 auto 12px; padding: 10px 14px; border-radius: 8px; white-space: pre-wrap; word-wrap: break-word; }
  .user { background: #dbeafe; }
  .assistant { background: #fff; border: 1px solid #e5e7eb; }
  .reasoning { color: #6b7280; font-style: italic; border-left: 3px solid #d1d5db; padding-left: 8px; margin-bottom: 6px; white-space: pre-wrap; }
  .stats { color: #6b7280; font-size: 12px; margin-top: 6px; }
  .error { background: #fee2e2; }
  form { display: flex; gap: 8px; padding: 12px 16px; background: #fff; border-top: 1px solid #e5e7eb; }
  textarea { flex: 1; font: inherit; padding: 8px; resize: vertical; min-height: 42px; }
  button { font: inherit; padding: 0 16px; }
</style>
</head>
<body>
<header><strong>dsinfer</strong><span class="model" id="model"></span>
  <label><input type="checkbox" id="thinking"> thinking</label>
  <label>max tokens <input type="number" id="max-tokens" min="1" placeholder="context" style="width: 6em"></label>
  <button id="clear" type="button">new chat</button></header>
<div id="log"></div>
<form id="form">
  <textarea id="input" placeholder="Send a message (Enter to send, Shift+Enter for a new line)"></textarea>
  <button id="send" type="submit">Send</button>
  <button id="stop" type="button" disabled>Stop</button>
</form>
<script>
const log = document.getElementById('log'), input = document.getElementById('input');
const sendBtn = document.getElementById('send'), stopBtn = document.getElementById('stop');
let history = [], controller = null, modelName = '';
fetch('/v1/models').then(r => r.json()).then(j => {
  modelName = j.data[0].id; document.getElementById('model').textContent = modelName;
}).catch(() => {});
function add(cls, text) {
  const d = document.createElement('div'); d.className = 'msg ' + cls; d.textContent = text;
  log.appendChild(d); log.scrollTop = log.scrollHeight; return d;
}
// Empty: the rest of the context (the server's default).
function maxTokens() {
  const v = parseInt(document.getElementById('max-tokens').value, 10); return v > 0 ? v : undefined;
}
document.getElementById('clear').onclick = () => { history = []; log.textContent = ''; };
stopBtn.onclick = () => { if (controller) controller.abort(); };
input.addEventListener('keydown', e => {
  if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); document.getElementById('form').requestSubmit(); }
});
document.getElementById('form').onsubmit = async e => {
  e.preventDefault();
  const text = input.value.trim(); if (!text || controller) return;
  input.value = ''; add('user', text); history.push({role: 'user', content: text});
  const box = add('assistant', ''), reasoning = document.createElement('div'), content = document.createElement('div');
  const stats = document.createElement('div'); reasoning.className = 'reasoning'; stats.className = 'stats';
  box.appendChild(reasoning); box.appendChild(content); box.appendChild(stats); reasoning.hidden = true;
  controller = new AbortController(); sendBtn.disabled = true; stopBtn.disabled = false;
  const t0 = performance.now(); let tFirst = 0, pieces = 0, answer = '', usage = null;
  try {
    const res = await fetch('/v1/chat/completions', {method: 'POST', signal: controller.signal,
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({model: modelName || undefined, messages: history, stream: true,
        stream_options: {include_usage: true}, max_tokens: maxTokens(),
        chat_template_kwargs: {thinking: document.getElementById('thinking').checked}})});
    if (!res.ok) throw new Error((await res.json()).error.message);
    const reader = res.body.getReader(), dec = new TextDecoder(); let buf = '';
    for (;;) {
      const {value, done} = await reader.read(); if (done) break;
      buf += dec.decode(value, {stream: true});
      let at;
      while ((at = buf.indexOf('\n\n')) >= 0) {
        const line = buf.slice(0, at).trim(); buf = buf.slice(at + 2);
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6); if (data === '[DONE]') continue;
        const j = JSON.parse(data);
        if (j.error) throw new Error(j.error.message);
        if (j.usage) usage = j.usage;
        for (const c of j.choices || []) {
          const d = c.delta || {};
          if (d.reasoning_content) { reasoning.hidden = false; reasoning.textContent += d.reasoning_content; }
          if (d.content) { content.textContent += d.content; answer += d.content; }
          if (d.reasoning_content || d.content) { if (!tFirst) tFirst = performance.now(); ++pieces; }
        }
        log.scrollTop = log.scrollHeight;
      }
    }
  } catch (err) {
    if (err.name !== 'AbortError') { box.classList.add('error'); content.textContent += '\n[' + err.message + ']'; }
  }
  const t1 = performance.now(), n = usage ? usage.completion_tokens : pieces;
  stats.textContent = tFirst ? `TTFT ${((tFirst - t0) / 1000).toFixed(2)} s · ${n} tokens · ` +
    `${(n > 1 ? (n - 1) / ((t1 - tFirst) / 1000) : 0).toFixed(1)} tokens/s` :
    (box.classList.contains('error') ? 'failed' : 'no tokens');
  history.push({role: 'assistant', content: answer});
  controller = null; sendBtn.disabled = false; stopBtn.disabled = true;
};
</script>
</body>
</html>
)HTML";

}  // namespace dsinfer::server

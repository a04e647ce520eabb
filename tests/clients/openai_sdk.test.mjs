// dsinfer serve driven by the official OpenAI SDK (the `openai` npm package), as users' code
// drives it. DSINFER_URL is the server (started by tests/server/clients_test.cpp on the tiny
// model, with API key DSINFER_KEY).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.DSINFER_URL + '/v1';
const client = new OpenAI({ baseURL, apiKey: process.env.DSINFER_KEY, maxRetries: 0 });
const model = process.env.DSINFER_MODEL;
const user = (content) => [{ role: 'user', content }];

test('models.list names the served model', async () => {
  const list = await client.models.list();
  const ids = [];
  for await (const m of list) ids.push(m.id);
  assert.deepEqual(ids, [model]);
});

test('chat completion: message, finish reason and usage', async () => {
  const r = await client.chat.completions.create({
    model, messages: user('Hello there'), max_tokens: 12, temperature: 0, ignore_eos: true,
  });
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 12);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 12);
  assert.equal(typeof r.usage.prompt_tokens_details.cached_tokens, 'number');
});

test('streaming chat gives the same text, then usage', async () => {
  const args = { model, messages: user('Tell me a story'), max_tokens: 16, temperature: 0, ignore_eos: true };
  const whole = await client.chat.completions.create(args);
  const stream = await client.chat.completions.create({ ...args, stream: true, stream_options: { include_usage: true } });
  let text = '', role = null, finish = null, usage = null, chunks = 0;
  for await (const chunk of stream) {
    ++chunks;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) role = c.delta.role;
      if (c.delta.content) text += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.ok(chunks > 3);
  assert.equal(role, 'assistant');
  assert.equal(finish, 'length');
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(usage.completion_tokens, 16);
});

test('text completions with logprobs and echo', async () => {
  const r = await client.completions.create({
    model, prompt: 'Once upon a time', max_tokens: 5, temperature: 0, logprobs: 2, echo: true,
  });
  assert.equal(r.object, 'text_completion');
  assert.ok(r.choices[0].text.startsWith('Once upon a time'));
  assert.equal(r.choices[0].logprobs.tokens.length, 5);
  assert.equal(Object.keys(r.choices[0].logprobs.top_logprobs[0]).length, 2);
  const s = await client.completions.create({ model, prompt: 'Once', max_tokens: 4, stream: true });
  let n = 0;
  for await (const chunk of s) n += chunk.choices.length;
  assert.ok(n >= 1);
});

test('n choices, seeds, stop strings and chat logprobs', async () => {
  const r = await client.chat.completions.create({
    model, messages: user('Pick a word'), max_tokens: 6, n: 3, temperature: 1, seed: 7, ignore_eos: true,
  });
  assert.equal(r.choices.length, 3);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  assert.equal(r.usage.completion_tokens, 18);
  const again = await client.chat.completions.create({
    model, messages: user('Pick a word'), max_tokens: 6, n: 3, temperature: 1, seed: 7, ignore_eos: true,
  });
  assert.deepEqual(again.choices.map((c) => c.message.content), r.choices.map((c) => c.message.content));
  const lp = await client.chat.completions.create({
    model, messages: user('hi'), max_tokens: 3, logprobs: true, top_logprobs: 2,
  });
  assert.equal(lp.choices[0].logprobs.content.length, lp.usage.completion_tokens);
  assert.equal(lp.choices[0].logprobs.content[0].top_logprobs.length, 2);
  const full = await client.completions.create({ model, prompt: 'abc', max_tokens: 20, temperature: 0, ignore_eos: true });
  const letters = full.choices[0].text.match(/[A-Za-z]{2}/);
  if (letters) {
    const cut = await client.completions.create({ model, prompt: 'abc', max_tokens: 20, temperature: 0, stop: [letters[0]] });
    assert.equal(cut.choices[0].finish_reason, 'stop');
    assert.ok(!cut.choices[0].text.includes(letters[0]));
  }
});

test('tools and thinking are accepted and rendered', async () => {
  const tools = [{
    type: 'function',
    function: { name: 'get_weather', description: 'Weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
  }];
  const r = await client.chat.completions.create({
    model, messages: user('Weather in Paris?'), tools, tool_choice: 'auto', max_tokens: 8,
  });
  assert.equal(r.choices.length, 1);
  assert.ok(['stop', 'length', 'tool_calls'].includes(r.choices[0].finish_reason));
  const t = await client.chat.completions.create({
    model, messages: user('Why?'), max_tokens: 8, chat_template_kwargs: { thinking: true },
  });
  const m = t.choices[0].message;
  assert.ok(typeof m.reasoning_content === 'string' || typeof m.content === 'string');
});

test('errors surface as the SDK error classes', async () => {
  await assert.rejects(
    client.chat.completions.create({ model, messages: [{ role: 'wizard', content: 'x' }], max_tokens: 2 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400);
  await assert.rejects(
    client.chat.completions.create({ model, messages: user('x'), max_tokens: 100000 }),
    (e) => e instanceof OpenAI.BadRequestError && /context length/.test(e.message));
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: user('x'), max_tokens: 2 }),
    (e) => e instanceof OpenAI.NotFoundError);
  const wrong = new OpenAI({ baseURL, apiKey: 'wrong-key', maxRetries: 0 });
  await assert.rejects(wrong.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
});

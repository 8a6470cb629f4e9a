// The official `openai` and `@anthropic-ai/sdk` clients against the gateway with a
// GitHub Copilot account behind it (tests/integration/test_copilot.py starts the
// mock GitHub and Copilot API, logs the account in, and sets COPILOT_MOCK_URL to
// the Copilot API the account's token names). Without COPILOT_MOCK_URL (the
// general SDK suite) every test here is skipped.
//
// What the mock Copilot API received is checked: Copilot's editor headers, the
// Bearer Copilot token, X-Initiator (`user` for the user's own turn, `agent` for a
// tool-result turn) and copilot-vision-request for images.

import { it } from 'node:test';
import assert from 'node:assert/strict';
import {
  TOOL_ARGS, THINKING_TEXT, SIGNATURE, OPENAI_WEATHER_TOOL, ANTHROPIC_WEATHER_TOOL, PNG_B64,
  PNG_DATA_URI, openai, anthropic, directive, tag, deltas, answer, requestWithTag, header,
} from './helpers.mjs';

const COPILOT = (process.env.COPILOT_MOCK_URL || '').replace(/\/+$/, '');
const T = { timeout: 30_000, skip: COPILOT ? false : 'no Copilot account (COPILOT_MOCK_URL)' };
const GPT = 'gpt-4.1';
const CLAUDE = 'claude-sonnet-4';

const EDITOR = {
  'copilot-integration-id': 'vscode-chat', 'editor-version': 'vscode/1.99.3',
  'editor-plugin-version': 'copilot-chat/0.26.7', 'user-agent': 'GitHubCopilotChat/0.26.7',
  'openai-intent': 'conversation-panel', 'x-github-api-version': '2025-04-01',
};

function assertCopilotCall(rec, path, initiator, vision = false) {
  assert.equal(rec.path, path);
  for (const [k, v] of Object.entries(EDITOR)) assert.equal(header(rec, k), v, k);
  assert.match(header(rec, 'authorization'), /^Bearer tid=\d+;/);
  assert.match(header(rec, 'x-request-id'), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(header(rec, 'x-initiator'), initiator, 'X-Initiator');
  assert.equal(header(rec, 'copilot-vision-request'), vision ? 'true' : undefined, 'vision');
}

it('copilot, openai SDK: chat.completions.create, a user turn', T, async () => {
  const t = tag();
  const r = await openai().chat.completions.create({
    model: GPT, messages: [{ role: 'user', content: `${t} hello` }],
  });
  assert.equal(r.choices[0].message.content, answer());
  assert.equal(r.choices[0].finish_reason, 'stop');
  const rec = await requestWithTag(COPILOT, t);
  assertCopilotCall(rec, '/chat/completions', 'user');
  assert.deepEqual(rec.json, { model: GPT, messages: [{ role: 'user', content: `${t} hello` }] });
});

it('copilot, openai SDK: streamed tool call, then the tool-result turn as agent', T, async () => {
  const client = openai();
  const t1 = tag();
  const first = [{ role: 'user', content: `${t1} weather? ${directive({ tool: 'get_weather' })}` }];
  const stream = await client.chat.completions.create({
    model: GPT, messages: first, tools: [OPENAI_WEATHER_TOOL], stream: true,
  });
  let id, name, args = '', finish;
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    if (!c) continue;
    for (const tc of c.delta.tool_calls ?? []) {
      id ??= tc.id;
      name ??= tc.function?.name;
      args += tc.function?.arguments ?? '';
    }
    finish = c.finish_reason ?? finish;
  }
  assert.equal(finish, 'tool_calls');
  assert.equal(name, 'get_weather');
  assert.deepEqual(JSON.parse(args), TOOL_ARGS);
  assertCopilotCall(await requestWithTag(COPILOT, t1), '/chat/completions', 'user');
  const t2 = tag();
  const second = await client.chat.completions.create({
    model: GPT, tools: [OPENAI_WEATHER_TOOL],
    messages: [...first,
      { role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name, arguments: args } }] },
      { role: 'tool', tool_call_id: id, content: `${t2} 18 degrees` }],
  });
  assert.equal(second.choices[0].message.content, answer());
  const rec = await requestWithTag(COPILOT, t2);
  assertCopilotCall(rec, '/chat/completions', 'agent');
  assert.equal(rec.json.messages.length, 3, 'the paired call went unchanged');
});

it('copilot, openai SDK: an image sets copilot-vision-request', T, async () => {
  const t = tag();
  const r = await openai().chat.completions.create({
    model: 'gpt-4o',
    messages: [{ role: 'user', content: [{ type: 'text', text: `${t} what is this?` },
      { type: 'image_url', image_url: { url: PNG_DATA_URI } }] }],
  });
  assert.equal(r.choices[0].message.content, answer());
  assertCopilotCall(await requestWithTag(COPILOT, t), '/chat/completions', 'user', true);
});

it('copilot, anthropic SDK: Claude streamed natively with thinking', T, async () => {
  const t = tag();
  const stream = anthropic().messages.stream({
    model: CLAUDE, max_tokens: 1024, thinking: { type: 'enabled', budget_tokens: 1024 },
    messages: [{ role: 'user', content: `${t} think ${directive({ thinking: 1 })}` }],
  });
  const text = [];
  stream.on('text', (d) => text.push(d));
  const msg = await stream.finalMessage();
  assert.deepEqual(text, deltas());
  assert.equal(msg.content[0].type, 'thinking');
  assert.equal(msg.content[0].thinking, THINKING_TEXT);
  assert.equal(msg.content[0].signature, SIGNATURE, 'the signature survives');
  const rec = await requestWithTag(COPILOT, t);
  assertCopilotCall(rec, '/v1/messages', 'user');
  assert.match(header(rec, 'anthropic-version'), /^\d{4}-\d{2}-\d{2}$/);
});

it('copilot, anthropic SDK: tool round trip, the tool_result turn as agent', T, async () => {
  const client = anthropic();
  const t1 = tag();
  const first = [{ role: 'user', content: `${t1} weather? ${directive({ tool: 'get_weather' })}` }];
  const msg = await client.messages.create({
    model: CLAUDE, max_tokens: 256, tools: [ANTHROPIC_WEATHER_TOOL], messages: first,
  });
  assert.equal(msg.stop_reason, 'tool_use');
  const use = msg.content.find((b) => b.type === 'tool_use');
  assert.deepEqual(use.input, TOOL_ARGS);
  assertCopilotCall(await requestWithTag(COPILOT, t1), '/v1/messages', 'user');
  const t2 = tag();
  const done = await client.messages.create({
    model: CLAUDE, max_tokens: 256, tools: [ANTHROPIC_WEATHER_TOOL],
    messages: [...first, { role: 'assistant', content: msg.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: `${t2} 18 degrees` }] }],
  });
  assert.equal(done.content[0].text, answer());
  assertCopilotCall(await requestWithTag(COPILOT, t2), '/v1/messages', 'agent');
});

it('copilot, anthropic SDK: a GPT model through the conversion, streamed, with an image', T, async () => {
  const t = tag();
  const stream = anthropic().messages.stream({
    model: GPT, max_tokens: 256,
    messages: [{ role: 'user', content: [{ type: 'text', text: `${t} look` },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG_B64 } }] }],
  });
  const msg = await stream.finalMessage();
  assert.equal(msg.content[0].text, answer());
  assert.equal(msg.stop_reason, 'end_turn');
  const rec = await requestWithTag(COPILOT, t);
  assertCopilotCall(rec, '/chat/completions', 'user', true);
  assert.equal(rec.json.messages[0].content[1].image_url.url, PNG_DATA_URI);
});

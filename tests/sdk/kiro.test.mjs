// The official `openai` and `@anthropic-ai/sdk` clients against the gateway with
// Kiro accounts behind it (tests/integration/test_kiro.py starts two mock Kiro
// APIs, imports an account for each through antigw-admin, and sets KIRO_MOCK_URL
// to the first one, which the priority strategy sends every call to). Without
// KIRO_MOCK_URL (the general SDK suite) every test here is skipped.
//
// What the mock Kiro API received is checked field by field: the IDE's headers,
// the Bearer access token, and the generateAssistantResponse body (history,
// current message, tools, tool results, images, the profile ARN).

import { it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import {
  TOOL_ARGS, OPENAI_WEATHER_TOOL, ANTHROPIC_WEATHER_TOOL, PNG_B64, PNG_DATA_URI, openai,
  anthropic, directive, tag, deltas, answer, requestWithTag, header,
} from './helpers.mjs';

const KIRO = (process.env.KIRO_MOCK_URL || '').replace(/\/+$/, '');
const TOKEN = process.env.KIRO_TOKEN || '';
const ARN = process.env.KIRO_PROFILE_ARN || '';
const T = { timeout: 30_000, skip: KIRO ? false : 'no Kiro account (KIRO_MOCK_URL)' };
const MODEL = 'claude-sonnet-4-5-20250929';
const KIRO_MODEL = 'claude-sonnet-4.5';
// The Kiro mock's thinking (tests/mock/kiro_api.py thinking=1) and usage.
const KIRO_THINKING = 'Thinking it through.';
const INPUT_TOKENS = 5000; // contextUsagePercentage 2.5 of a 200k window

/** The one generateAssistantResponse tagged `t`: its headers checked, its body. */
async function kiroCall(t) {
  const rec = await requestWithTag(KIRO, t);
  assert.equal(rec.path, '/generateAssistantResponse');
  assert.equal(header(rec, 'authorization'), `Bearer ${TOKEN}`);
  assert.match(header(rec, 'x-amz-user-agent'), /^aws-sdk-js\/1\.0\.34 KiroIDE-[\d.]+-[0-9a-f]{64}$/);
  assert.match(header(rec, 'user-agent'), / api\/codewhispererstreaming#1\.0\.34 m\/E KiroIDE-/);
  assert.equal(header(rec, 'x-amzn-codewhisperer-optout'), 'true');
  assert.equal(header(rec, 'content-type'), 'application/json');
  const body = rec.json;
  assert.equal(body.profileArn, ARN);
  assert.equal(body.conversationState.chatTriggerType, 'MANUAL');
  return body.conversationState;
}

function user(content, extra = {}) {
  return { userInputMessage: { content, modelId: KIRO_MODEL, origin: 'AI_EDITOR', ...extra } };
}

it('kiro, openai SDK: a system prompt and a question, not streamed', T, async () => {
  const t = tag();
  const r = await openai().chat.completions.create({
    model: MODEL, messages: [{ role: 'system', content: 'Be brief.' },
      { role: 'user', content: `${t} hello` }],
  });
  assert.equal(r.choices[0].message.content, answer());
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.model, MODEL);
  assert.equal(r.usage.prompt_tokens, INPUT_TOKENS);
  const cs = await kiroCall(t);
  assert.match(cs.conversationId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.deepEqual(cs.history, [user('Be brief.'),
    { assistantResponseMessage: { content: 'I will follow these instructions.' } }]);
  assert.deepEqual(cs.currentMessage, user(`${t} hello`));
});

it('kiro, openai SDK: streamed text with the usage chunk', T, async () => {
  const t = tag();
  const stream = await openai().chat.completions.create({
    model: MODEL, stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: `${t} ${directive({ events: 5 })}` }],
  });
  const text = [];
  let usage, finish;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    if (c.delta.content) text.push(c.delta.content);
    finish = c.finish_reason ?? finish;
  }
  assert.equal(text.join(''), answer(5));
  assert.equal(finish, 'stop');
  assert.equal(usage.prompt_tokens, INPUT_TOKENS);
  assert.ok(usage.completion_tokens > 0);
  await kiroCall(t);
});

it('kiro, openai SDK: streamed tool call, then the tool result turn', T, async () => {
  const client = openai();
  const t1 = tag();
  const first = [{ role: 'user', content: `${t1} weather? ${directive({ tool: 'get_weather' })}` }];
  const stream = await client.chat.completions.create({
    model: MODEL, messages: first, tools: [OPENAI_WEATHER_TOOL], stream: true,
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
  assert.equal(id, 'tooluse_mock0');
  assert.equal(name, 'get_weather');
  assert.deepEqual(JSON.parse(args), TOOL_ARGS);
  const cs1 = await kiroCall(t1);
  assert.deepEqual(cs1.currentMessage.userInputMessage.userInputMessageContext.tools, [
    { toolSpecification: { name: 'get_weather', description: 'Current weather for a place',
      inputSchema: { json: OPENAI_WEATHER_TOOL.function.parameters } } }]);
  const t2 = tag();
  const second = await client.chat.completions.create({
    model: MODEL, tools: [OPENAI_WEATHER_TOOL],
    messages: [...first,
      { role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name, arguments: args } }] },
      { role: 'tool', tool_call_id: id, content: `${t2} 18 degrees` }],
  });
  assert.equal(second.choices[0].message.content, `Result: ${t2} 18 degrees`);
  const cs2 = await kiroCall(t2);
  assert.deepEqual(cs2.history, [
    user(first[0].content),
    { assistantResponseMessage: { content: '(tool call)', toolUses: [{ toolUseId: id, name, input: TOOL_ARGS }] } }]);
  assert.deepEqual(cs2.currentMessage.userInputMessage.userInputMessageContext.toolResults, [
    { toolUseId: id, content: [{ text: `${t2} 18 degrees` }], status: 'success' }]);
  assert.equal(cs2.currentMessage.userInputMessage.content, 'Tool results provided.');
});

it('kiro, openai SDK: an image as a data URI', T, async () => {
  const t = tag();
  const r = await openai().chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: [{ type: 'text', text: `${t} what is this?` },
      { type: 'image_url', image_url: { url: PNG_DATA_URI } }] }],
  });
  assert.equal(r.choices[0].message.content, answer());
  const cs = await kiroCall(t);
  assert.deepEqual(cs.currentMessage, user(`${t} what is this?`,
    { images: [{ format: 'png', source: { bytes: PNG_B64 } }] }));
});

it('kiro, anthropic SDK: streamed text', T, async () => {
  const t = tag();
  const stream = anthropic().messages.stream({
    model: MODEL, max_tokens: 256, messages: [{ role: 'user', content: `${t} hi` }],
  });
  const text = [];
  stream.on('text', (d) => text.push(d));
  const msg = await stream.finalMessage();
  assert.deepEqual(text, deltas());
  assert.equal(msg.stop_reason, 'end_turn');
  assert.equal(msg.usage.input_tokens, INPUT_TOKENS);
  assert.deepEqual((await kiroCall(t)).currentMessage, user(`${t} hi`));
});

it('kiro, anthropic SDK: thinking split out of the stream', T, async () => {
  const t = tag();
  const stream = anthropic().messages.stream({
    model: MODEL, max_tokens: 4096, thinking: { type: 'enabled', budget_tokens: 2048 },
    system: 'Think first.',
    messages: [{ role: 'user', content: `${t} think ${directive({ thinking: 1 })}` }],
  });
  const thinking = [];
  stream.on('thinking', (d) => thinking.push(d));
  const msg = await stream.finalMessage();
  assert.equal(thinking.join(''), KIRO_THINKING);
  assert.equal(msg.content[0].type, 'thinking');
  assert.equal(msg.content[0].thinking, KIRO_THINKING);
  assert.equal(msg.content[1].text, answer());
  const cs = await kiroCall(t);
  assert.equal(cs.history[0].userInputMessage.content,
    '<thinking_mode>enabled</thinking_mode><max_thinking_length>2048</max_thinking_length>\n\nThink first.');
});

it('kiro, anthropic SDK: tool round trip, not streamed', T, async () => {
  const client = anthropic();
  const t1 = tag();
  const first = [{ role: 'user', content: `${t1} weather? ${directive({ tool: 'get_weather' })}` }];
  const msg = await client.messages.create({
    model: MODEL, max_tokens: 256, tools: [ANTHROPIC_WEATHER_TOOL], messages: first,
  });
  assert.equal(msg.stop_reason, 'tool_use');
  const use = msg.content.find((b) => b.type === 'tool_use');
  assert.deepEqual(use.input, TOOL_ARGS);
  assert.equal(use.name, 'get_weather');
  const t2 = tag();
  const done = await client.messages.create({
    model: MODEL, max_tokens: 256, tools: [ANTHROPIC_WEATHER_TOOL],
    messages: [...first, { role: 'assistant', content: msg.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: `${t2} 18 degrees`, is_error: true }] }],
  });
  assert.equal(done.content[0].text, `Result: ${t2} 18 degrees`);
  const cs = await kiroCall(t2);
  assert.deepEqual(cs.history[1].assistantResponseMessage.toolUses,
    [{ toolUseId: use.id, name: 'get_weather', input: TOOL_ARGS }]);
  assert.deepEqual(cs.currentMessage.userInputMessage.userInputMessageContext.toolResults,
    [{ toolUseId: use.id, content: [{ text: `${t2} 18 degrees` }], status: 'error' }]);
});

it('kiro, both SDKs: errors in their own classes', T, async () => {
  // Kiro's 400 keeps its status.
  await assert.rejects(openai().chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: `${tag()} ${directive({ status: 400 })}` }],
  }), (e) => e instanceof OpenAI.BadRequestError && /mock error 400/.test(e.message));
  // A tool call the upstream cut off ends the stream with an error, not `{}`.
  await assert.rejects(async () => {
    const stream = anthropic().messages.stream({
      model: MODEL, max_tokens: 256, tools: [ANTHROPIC_WEATHER_TOOL],
      messages: [{ role: 'user', content: `${tag()} ${directive({ tool: 'get_weather', cut_tool: 1 })}` }],
    });
    await stream.finalMessage();
  }, (e) => /cut off/.test(e.message));
  // Throttled on every account: the client's rate-limit error (last: both accounts cool down).
  await assert.rejects(anthropic().messages.create({
    model: MODEL, max_tokens: 16,
    messages: [{ role: 'user', content: `${tag()} ${directive({ status: 'throttle' })}` }],
  }), (e) => e instanceof Anthropic.RateLimitError);
});

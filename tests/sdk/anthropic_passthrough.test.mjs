// The official `@anthropic-ai/sdk` against the gateway, model served by the
// Anthropic-type provider: the gateway relays the request and the answer unchanged.

import { it } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import {
  CLAUDE, ANTHROPIC_MOCK_URL, OPENAI_MOCK_URL, TOOL_ARGS, THINKING_TEXT, SIGNATURE,
  ANTHROPIC_WEATHER_TOOL, PNG_B64,
  anthropic, directive, tag, deltas, answer, requestWithTag, requestsWithTag, header, mockStats,
  waitFor, recordingFetch,
} from './helpers.mjs';

const T = { timeout: 30_000 };

const usage = (input, output) => ({
  input_tokens: input, cache_creation_input_tokens: 0, cache_read_input_tokens: 0,
  output_tokens: output,
});

it('anthropic passthrough: messages.create, not streamed', T, async () => {
  const t = tag();
  const rf = recordingFetch();
  const client = anthropic({ fetch: rf.fetch });
  const msg = await client.messages.create({
    model: CLAUDE, max_tokens: 256, system: 'You are terse.',
    messages: [{ role: 'user', content: `${t} ${directive({ events: 2, input_tokens: 11, output_tokens: 4 })}` }],
  });
  assert.equal(msg.type, 'message');
  assert.equal(msg.role, 'assistant');
  assert.equal(msg.model, CLAUDE);
  assert.match(msg.id, /^msg_mock\d+$/);
  assert.deepEqual(msg.content, [{ type: 'text', text: answer(2) }]);
  assert.equal(msg.stop_reason, 'end_turn');
  assert.equal(msg.stop_sequence, null);
  assert.deepEqual(msg.usage, usage(11, 4));
  const rec = await requestWithTag(ANTHROPIC_MOCK_URL, t);
  assert.equal(rec.path, '/v1/messages');
  assert.deepEqual(rec.json, {
    model: CLAUDE, max_tokens: 256, system: 'You are terse.',
    messages: [{ role: 'user', content: `${t} ${directive({ events: 2, input_tokens: 11, output_tokens: 4 })}` }],
  });
  // The SDK's own anthropic-version (and beta header, if any) reach the provider.
  assert.equal(rf.sent.length, 1);
  assert.match(rf.sent[0].headers.get('anthropic-version'), /^\d{4}-\d{2}-\d{2}$/);
  assert.equal(header(rec, 'anthropic-version'), rf.sent[0].headers.get('anthropic-version'));
  assert.equal(header(rec, 'anthropic-beta'), rf.sent[0].headers.get('anthropic-beta') ?? undefined);
  assert.deepEqual(await requestsWithTag(OPENAI_MOCK_URL, t), [], 'nothing went to OpenAI');
});

it('anthropic passthrough: messages.stream() + finalMessage(): text, usage, stop_reason', T, async () => {
  const client = anthropic();
  const stream = client.messages.stream({
    model: CLAUDE, max_tokens: 256,
    messages: [{ role: 'user', content: `${tag()} ${directive({ events: 5, input_tokens: 9, output_tokens: 10 })}` }],
  });
  const got = [];
  stream.on('text', (delta) => got.push(delta));
  const msg = await stream.finalMessage();
  assert.deepEqual(got, deltas(5));
  assert.deepEqual(msg.content, [{ type: 'text', text: answer(5) }]);
  assert.equal(msg.stop_reason, 'end_turn');
  assert.equal(msg.model, CLAUDE);
  assert.equal(msg.usage.input_tokens, 9);
  assert.equal(msg.usage.output_tokens, 10);
  assert.equal(msg.usage.cache_read_input_tokens, 0);
  assert.equal(msg.usage.cache_creation_input_tokens, 0);
});

it('anthropic passthrough: thinking blocks keep their signature (streamed and not)', T, async () => {
  const client = anthropic();
  const params = () => ({
    model: CLAUDE, max_tokens: 2048, thinking: { type: 'enabled', budget_tokens: 1024 },
    messages: [{ role: 'user', content: `${tag()} ${directive({ thinking: 1, events: 2 })}` }],
  });
  const stream = client.messages.stream(params());
  const thinking = [];
  stream.on('thinking', (delta) => thinking.push(delta));
  const msg = await stream.finalMessage();
  assert.deepEqual(thinking, ['Let me think', ' about this.']);
  assert.deepEqual(msg.content, [
    { type: 'thinking', thinking: THINKING_TEXT, signature: SIGNATURE },
    { type: 'text', text: answer(2) },
  ]);
  const plain = await client.messages.create(params());
  assert.deepEqual(plain.content, [
    { type: 'thinking', thinking: THINKING_TEXT, signature: SIGNATURE },
    { type: 'text', text: answer(2) },
  ]);
});

it('anthropic passthrough: tool_use, not streamed and streamed', T, async () => {
  const client = anthropic();
  const params = () => ({
    model: CLAUDE, max_tokens: 256, tools: [ANTHROPIC_WEATHER_TOOL],
    messages: [{ role: 'user', content: `${tag()} weather? ${directive({ tool: 'get_weather' })}` }],
  });
  const plain = await client.messages.create(params());
  assert.equal(plain.stop_reason, 'tool_use');
  assert.equal(plain.content.length, 1);
  assert.match(plain.content[0].id, /^toolu_mock\d+$/);
  assert.deepEqual(plain.content[0], {
    type: 'tool_use', id: plain.content[0].id, name: 'get_weather', input: TOOL_ARGS,
  });

  const stream = client.messages.stream(params());
  const json = [];
  stream.on('inputJson', (delta) => json.push(delta));
  const msg = await stream.finalMessage();
  assert.equal(msg.stop_reason, 'tool_use');
  assert.equal(msg.content.length, 1);
  assert.match(msg.content[0].id, /^toolu_mock\d+$/);
  assert.deepEqual(msg.content[0], {
    type: 'tool_use', id: msg.content[0].id, name: 'get_weather', input: TOOL_ARGS,
  });
  assert.deepEqual(JSON.parse(json.join('')), TOOL_ARGS);
});

it('anthropic passthrough: an image block is relayed', T, async () => {
  const t = tag();
  const client = anthropic();
  const content = [
    { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG_B64 } },
    { type: 'text', text: `${t} what is this? ${directive({ events: 1 })}` },
  ];
  const msg = await client.messages.create({
    model: CLAUDE, max_tokens: 64, messages: [{ role: 'user', content }],
  });
  assert.deepEqual(msg.content, [{ type: 'text', text: answer(1) }]);
  const rec = await requestWithTag(ANTHROPIC_MOCK_URL, t);
  assert.deepEqual(rec.json.messages, [{ role: 'user', content }]);
});

it('anthropic passthrough: messages.countTokens goes to the provider', T, async () => {
  const t = tag();
  const client = anthropic();
  const res = await client.messages.countTokens({
    model: CLAUDE, messages: [{ role: 'user', content: `${t} ${directive({ input_tokens: 42 })}` }],
  });
  assert.deepEqual(res, { input_tokens: 42 });
  const rec = await requestWithTag(ANTHROPIC_MOCK_URL, t);
  assert.equal(rec.path, '/v1/messages/count_tokens');
});

it('anthropic passthrough: error: upstream 429 -> RateLimitError', T, async () => {
  const client = anthropic();
  const err = await client.messages.create({
    model: CLAUDE, max_tokens: 64,
    messages: [{ role: 'user', content: directive({ status: 429, retry_after: 0 }) }],
  }).then(() => assert.fail('no error'), (e) => e);
  assert.ok(err instanceof Anthropic.RateLimitError, `got ${err?.constructor?.name}: ${err}`);
  assert.equal(err.status, 429);
  assert.deepEqual(err.error, {
    type: 'error', error: { type: 'rate_limit_error', message: 'rate_limit_error (mock)' },
  });
  assert.equal(err.headers.get('retry-after'), '0');
});

it('anthropic passthrough: error: upstream 529 -> an InternalServerError (OverloadedError) with status 529', T, async () => {
  const client = anthropic();
  const err = await client.messages.create({
    model: CLAUDE, max_tokens: 64, messages: [{ role: 'user', content: directive({ status: 529 }) }],
  }).then(() => assert.fail('no error'), (e) => e);
  assert.ok(err instanceof Anthropic.InternalServerError, `got ${err?.constructor?.name}: ${err}`);
  // This SDK version maps 529 to its own subclass of InternalServerError.
  assert.ok(err instanceof Anthropic.OverloadedError, `got ${err?.constructor?.name}`);
  assert.ok(err instanceof Anthropic.APIError);
  assert.equal(err.status, 529);
  assert.equal(err.error.error.type, 'overloaded_error');

  // The same through the stream helper (the error comes before any event).
  const stream = client.messages.stream({
    model: CLAUDE, max_tokens: 64, messages: [{ role: 'user', content: directive({ status: 529 }) }],
  });
  const serr = await stream.finalMessage().then(() => assert.fail('no error'), (e) => e);
  assert.ok(serr instanceof Anthropic.InternalServerError, `got ${serr?.constructor?.name}: ${serr}`);
  assert.equal(serr.status, 529);
});

it('anthropic passthrough: error: wrong gateway key -> AuthenticationError', T, async () => {
  const t = tag();
  const client = anthropic({ apiKey: 'agw-wrong-key' });
  const err = await client.messages.create({
    model: CLAUDE, max_tokens: 64, messages: [{ role: 'user', content: t }],
  }).then(() => assert.fail('no error'), (e) => e);
  assert.ok(err instanceof Anthropic.AuthenticationError, `got ${err?.constructor?.name}: ${err}`);
  assert.equal(err.status, 401);
  assert.equal(err.error.type, 'error');
  assert.equal(err.error.error.type, 'authentication_error');
  assert.deepEqual(await requestsWithTag(ANTHROPIC_MOCK_URL, t), [], 'nothing went upstream');
});

it('anthropic passthrough: error: unknown model -> NotFoundError', T, async () => {
  const client = anthropic();
  const err = await client.messages.create({
    model: 'no-such-model', max_tokens: 64, messages: [{ role: 'user', content: 'x' }],
  }).then(() => assert.fail('no error'), (e) => e);
  assert.ok(err instanceof Anthropic.NotFoundError, `got ${err?.constructor?.name}: ${err}`);
  assert.equal(err.status, 404);
  assert.equal(err.error.error.type, 'not_found_error');
  assert.match(err.error.error.message, /no-such-model/);
});

it('anthropic passthrough: stream.abort() mid-stream -> APIUserAbortError, and the upstream stream stops', T, async () => {
  const t = tag();
  const client = anthropic();
  const stream = client.messages.stream({
    model: CLAUDE, max_tokens: 256,
    messages: [{ role: 'user', content: `${t} ${directive({ events: 50, delay_ms: 100 })}` }],
  });
  const got = [];
  stream.on('text', (delta) => {
    got.push(delta);
    if (got.length === 3) stream.abort();
  });
  const err = await stream.finalMessage().then(() => assert.fail('no error'), (e) => e);
  assert.ok(err instanceof Anthropic.APIUserAbortError, `got ${err?.constructor?.name}: ${err}`);
  assert.equal(stream.aborted, true);
  assert.deepEqual(got, deltas(3));
  const rec = await requestWithTag(ANTHROPIC_MOCK_URL, t);
  const ab = await waitFor(async () => (await mockStats(ANTHROPIC_MOCK_URL)).aborted
    .find((a) => a.seq === rec.seq), 3000);
  assert.ok(ab, 'the mock saw the stream aborted within 3 s of the client leaving');
  assert.ok(ab.events_sent < 50, `the upstream stream was cut short (${ab.events_sent} events sent)`);
});

// The official `openai` SDK against the gateway, model served by the OpenAI-type
// provider: the gateway relays the request and the answer unchanged.

import { it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  GPT, OPENAI_MOCK_URL, ANTHROPIC_MOCK_URL, TOOL_ARGS, PNG_DATA_URI, OPENAI_WEATHER_TOOL,
  openai, directive, tag, deltas, answer, requestWithTag, requestsWithTag, mockStats, waitFor,
} from './helpers.mjs';

const T = { timeout: 30_000 };

it('openai passthrough: chat.completions.create, not streamed', T, async () => {
  const t = tag();
  const client = openai();
  const res = await client.chat.completions.create({
    model: GPT,
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: `${t} ${directive({ events: 4, input_tokens: 12, output_tokens: 8 })}` },
    ],
    temperature: 0.5,
  });
  assert.equal(res.object, 'chat.completion');
  assert.equal(res.model, GPT);
  assert.match(res.id, /^chatcmpl-mock\d+$/);
  assert.equal(res.choices.length, 1);
  assert.deepEqual(res.choices[0].message,
    { role: 'assistant', content: answer(4), refusal: null });
  assert.equal(res.choices[0].finish_reason, 'stop');
  assert.deepEqual(res.usage, {
    prompt_tokens: 12, completion_tokens: 8, total_tokens: 20,
    prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 },
  });
  // What went upstream is exactly what the SDK sent.
  const rec = await requestWithTag(OPENAI_MOCK_URL, t);
  assert.equal(rec.path, '/v1/chat/completions');
  assert.deepEqual(rec.json, {
    model: GPT,
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: `${t} ${directive({ events: 4, input_tokens: 12, output_tokens: 8 })}` },
    ],
    temperature: 0.5,
  });
  assert.deepEqual(await requestsWithTag(ANTHROPIC_MOCK_URL, t), [], 'nothing went to Anthropic');
});

it('openai passthrough: chat.completions.stream() + finalChatCompletion()', T, async () => {
  const client = openai();
  const stream = client.chat.completions.stream({
    model: GPT,
    messages: [{ role: 'user', content: `${tag()} ${directive({ events: 5 })}` }],
  });
  const got = [];
  stream.on('content', (delta) => got.push(delta));
  const final = await stream.finalChatCompletion();
  assert.deepEqual(got, deltas(5), 'content deltas in order');
  assert.equal(final.choices[0].message.content, answer(5));
  assert.equal(final.choices[0].message.role, 'assistant');
  assert.equal(final.choices[0].finish_reason, 'stop');
  assert.equal(final.model, GPT);
  assert.equal(await stream.finalContent(), answer(5));
});

it('openai passthrough: stream_options.include_usage yields a usage chunk', T, async () => {
  const client = openai();
  const chunks = [];
  const stream = await client.chat.completions.create({
    model: GPT,
    stream: true,
    stream_options: { include_usage: true },
    messages: [{ role: 'user', content: `${tag()} ${directive({ input_tokens: 21, output_tokens: 5 })}` }],
  });
  for await (const c of stream) chunks.push(c);
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.usage, {
    prompt_tokens: 21, completion_tokens: 5, total_tokens: 26,
    prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 },
  });
  const text = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? '')).join('');
  assert.equal(text, answer(3));
  assert.equal(chunks.filter((c) => c.usage).length, 1, 'exactly one chunk carries usage');

  // The stream helper keeps it on the final completion too.
  const helper = client.chat.completions.stream({
    model: GPT, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: `${tag()} ${directive({ input_tokens: 21, output_tokens: 5 })}` }],
  });
  const final = await helper.finalChatCompletion();
  assert.equal(final.usage.prompt_tokens, 21);
  assert.equal(final.usage.completion_tokens, 5);
  assert.equal(final.usage.total_tokens, 26);
});

it('openai passthrough: tool call, not streamed: arguments parse to the object', T, async () => {
  const client = openai();
  const res = await client.chat.completions.create({
    model: GPT,
    tools: [OPENAI_WEATHER_TOOL],
    messages: [{ role: 'user', content: `${tag()} weather? ${directive({ tool: 'get_weather' })}` }],
  });
  const ch = res.choices[0];
  assert.equal(ch.finish_reason, 'tool_calls');
  assert.equal(ch.message.content, null);
  assert.equal(ch.message.tool_calls.length, 1);
  const call = ch.message.tool_calls[0];
  assert.match(call.id, /^call_mock\d+$/);
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), TOOL_ARGS);
});

it('openai passthrough: tool call, streamed: the stream helper assembles the call', T, async () => {
  const client = openai();
  const stream = client.chat.completions.stream({
    model: GPT,
    tools: [OPENAI_WEATHER_TOOL],
    messages: [{ role: 'user', content: `${tag()} weather? ${directive({ tool: 'get_weather' })}` }],
  });
  const argDeltas = [];
  stream.on('tool_calls.function.arguments.delta', (e) => argDeltas.push(e.arguments_delta));
  const final = await stream.finalChatCompletion();
  const ch = final.choices[0];
  assert.equal(ch.finish_reason, 'tool_calls');
  assert.equal(ch.message.tool_calls.length, 1);
  const call = ch.message.tool_calls[0];
  assert.match(call.id, /^call_mock\d+$/);
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), TOOL_ARGS);
  // The mock sends "" with the call's head, then the arguments in three pieces.
  const args = JSON.stringify(TOOL_ARGS); // the mock's exact string
  const third = Math.floor(args.length / 3);
  assert.deepEqual(argDeltas.filter((d) => d !== ''),
    [args.slice(0, third), args.slice(third, 2 * third), args.slice(2 * third)]);
});

it('openai passthrough: an image part (data URI) is accepted and relayed', T, async () => {
  const t = tag();
  const client = openai();
  const content = [
    { type: 'text', text: `${t} what is this? ${directive({ events: 2 })}` },
    { type: 'image_url', image_url: { url: PNG_DATA_URI, detail: 'low' } },
  ];
  const res = await client.chat.completions.create({
    model: GPT, messages: [{ role: 'user', content }],
  });
  assert.equal(res.choices[0].message.content, answer(2));
  const rec = await requestWithTag(OPENAI_MOCK_URL, t);
  assert.deepEqual(rec.json.messages, [{ role: 'user', content }]);
});

it('openai passthrough: error: upstream 429 -> RateLimitError, retry-after kept', T, async () => {
  const client = openai();
  const err = await client.chat.completions.create({
    model: GPT, messages: [{ role: 'user', content: directive({ status: 429, retry_after: 0 }) }],
  }).then(() => assert.fail('no error'), (e) => e);
  assert.ok(err instanceof OpenAI.RateLimitError, `got ${err?.constructor?.name}: ${err}`);
  assert.equal(err.status, 429);
  assert.equal(err.code, 'rate_limit_exceeded');
  assert.equal(err.error.message, 'Rate limit reached for requests (mock).');
  assert.equal(err.headers.get('retry-after'), '0');
});

it('openai passthrough: error: upstream 429 on a stream request -> RateLimitError', T, async () => {
  const client = openai();
  const err = await client.chat.completions.create({
    model: GPT, stream: true,
    messages: [{ role: 'user', content: directive({ status: 429, retry_after: 0 }) }],
  }).then(() => assert.fail('no error'), (e) => e);
  assert.ok(err instanceof OpenAI.RateLimitError, `got ${err?.constructor?.name}: ${err}`);
  assert.equal(err.status, 429);
});

it('openai passthrough: error: wrong gateway key -> AuthenticationError', T, async () => {
  const t = tag();
  const client = openai({ apiKey: 'agw-wrong-key' });
  const err = await client.chat.completions.create({
    model: GPT, messages: [{ role: 'user', content: t }],
  }).then(() => assert.fail('no error'), (e) => e);
  assert.ok(err instanceof OpenAI.AuthenticationError, `got ${err?.constructor?.name}: ${err}`);
  assert.equal(err.status, 401);
  assert.equal(err.type, 'authentication_error');
  assert.deepEqual(await requestsWithTag(OPENAI_MOCK_URL, t), [], 'nothing went upstream');
});

it('openai passthrough: error: unknown model -> NotFoundError', T, async () => {
  const client = openai();
  const err = await client.chat.completions.create({
    model: 'no-such-model', messages: [{ role: 'user', content: 'x' }],
  }).then(() => assert.fail('no error'), (e) => e);
  assert.ok(err instanceof OpenAI.NotFoundError, `got ${err?.constructor?.name}: ${err}`);
  assert.equal(err.status, 404);
  assert.equal(err.code, 'model_not_found');
  assert.match(err.message, /no-such-model/);
});

it('openai passthrough: error: invalid request -> BadRequestError (from the gateway and from upstream)', T, async () => {
  const client = openai();
  const t = tag();
  const err = await client.chat.completions.create({
    model: 42, messages: [{ role: 'user', content: t }],
  }).then(() => assert.fail('no error'), (e) => e);
  assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name}: ${err}`);
  assert.equal(err.status, 400);
  assert.equal(err.type, 'invalid_request_error');
  assert.match(err.message, /model/);
  assert.deepEqual(await requestsWithTag(OPENAI_MOCK_URL, t), [], 'nothing went upstream');

  const up = await client.chat.completions.create({
    model: GPT, messages: [{ role: 'user', content: directive({ status: 400 }) }],
  }).then(() => assert.fail('no error'), (e) => e);
  assert.ok(up instanceof OpenAI.BadRequestError, `got ${up?.constructor?.name}: ${up}`);
  assert.equal(up.status, 400);
  assert.equal(up.error.message, 'Bad request (mock).');
});

it('openai passthrough: AbortController mid-stream -> APIUserAbortError, and the upstream stream stops', T, async () => {
  const t = tag();
  const client = openai();
  const ac = new AbortController();
  const stream = client.chat.completions.stream({
    model: GPT,
    messages: [{ role: 'user', content: `${t} ${directive({ events: 50, delay_ms: 100 })}` }],
  }, { signal: ac.signal });
  const got = [];
  stream.on('content', (delta) => {
    got.push(delta);
    if (got.length === 3) ac.abort();
  });
  const err = await stream.finalChatCompletion().then(() => assert.fail('no error'), (e) => e);
  assert.ok(err instanceof OpenAI.APIUserAbortError, `got ${err?.constructor?.name}: ${err}`);
  assert.deepEqual(got, deltas(3));
  const rec = await requestWithTag(OPENAI_MOCK_URL, t);
  const ab = await waitFor(async () => (await mockStats(OPENAI_MOCK_URL)).aborted
    .find((a) => a.seq === rec.seq), 3000);
  assert.ok(ab, 'the mock saw the stream aborted within 3 s of the client leaving');
  assert.ok(ab.events_sent < 50, `the upstream stream was cut short (${ab.events_sent} events sent)`);
});

// Protocol conversion: each official SDK against a model served by a provider of the
// other protocol. The gateway converts the request, sends it to the other mock, and
// converts the answer (streamed or not), the usage, the stop reason and the errors back.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import {
  GPT, CLAUDE, OPENAI_MOCK_URL, ANTHROPIC_MOCK_URL, TOOL_ARGS, THINKING_TEXT, PNG_B64,
  PNG_DATA_URI, OPENAI_WEATHER_TOOL, ANTHROPIC_WEATHER_TOOL,
  openai, anthropic, directive, tag, deltas, answer, requestWithTag, requestsWithTag, header,
  mockStats, waitFor, anthropicText, openaiText,
} from './helpers.mjs';

const T = { timeout: 30_000 };

const fail = () => assert.fail('no error was raised');

describe('conversion', () => {
  describe('openai SDK -> Anthropic provider', () => {
    it('chat.completions.create, not streamed: answer, usage and the Anthropic request', T, async () => {
      const t = tag();
      const text = `${t} ${directive({ events: 4, input_tokens: 12, output_tokens: 6 })}`;
      const client = openai();
      const res = await client.chat.completions.create({
        model: CLAUDE, max_completion_tokens: 300, temperature: 0.5,
        messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: text }],
      });
      assert.equal(res.object, 'chat.completion');
      assert.equal(res.model, CLAUDE);
      assert.match(res.id, /^chatcmpl-/);
      assert.equal(typeof res.created, 'number');
      assert.equal(res.choices.length, 1);
      assert.equal(res.choices[0].index, 0);
      assert.equal(res.choices[0].message.role, 'assistant');
      assert.equal(res.choices[0].message.content, answer(4));
      assert.equal(res.choices[0].finish_reason, 'stop');
      assert.equal(res.usage.prompt_tokens, 12);
      assert.equal(res.usage.completion_tokens, 6);
      assert.equal(res.usage.total_tokens, 18);

      const rec = await requestWithTag(ANTHROPIC_MOCK_URL, t);
      assert.equal(rec.path, '/v1/messages');
      assert.equal(header(rec, 'anthropic-version'), '2023-06-01');
      assert.equal(rec.json.model, CLAUDE);
      assert.equal(rec.json.max_tokens, 300);
      assert.equal(rec.json.temperature, 0.5);
      assert.equal(anthropicText(rec.json.system), 'You are terse.');
      assert.equal(rec.json.messages.length, 1);
      assert.equal(rec.json.messages[0].role, 'user');
      assert.equal(anthropicText(rec.json.messages[0].content), text);
      assert.deepEqual(await requestsWithTag(OPENAI_MOCK_URL, t), [], 'nothing went to OpenAI');
    });

    it('chat.completions.stream() + finalChatCompletion()', T, async () => {
      const client = openai();
      const stream = client.chat.completions.stream({
        model: CLAUDE, messages: [{ role: 'user', content: `${tag()} ${directive({ events: 5 })}` }],
      });
      const got = [];
      const chunks = [];
      stream.on('content', (delta) => got.push(delta));
      stream.on('chunk', (c) => chunks.push(c));
      const final = await stream.finalChatCompletion();
      assert.deepEqual(got, deltas(5));
      assert.equal(final.choices[0].message.content, answer(5));
      assert.equal(final.choices[0].message.role, 'assistant');
      assert.equal(final.choices[0].finish_reason, 'stop');
      assert.equal(final.model, CLAUDE);
      assert.ok(chunks.length >= 7, `role + 5 deltas + finish: got ${chunks.length} chunks`);
      for (const c of chunks) {
        assert.equal(c.object, 'chat.completion.chunk');
        assert.equal(c.id, chunks[0].id, 'one id for the whole stream');
        assert.equal(c.model, CLAUDE);
      }
      assert.equal(chunks.filter((c) => c.choices[0]?.finish_reason).length, 1,
        'exactly one chunk has a finish_reason');
    });

    it('usage, not streamed: cached tokens are counted into prompt_tokens', T, async () => {
      const client = openai();
      const res = await client.chat.completions.create({
        model: CLAUDE,
        messages: [{ role: 'user', content: `${tag()} ${directive({ input_tokens: 12, output_tokens: 6, cache_read: 3, cache_write: 2 })}` }],
      });
      assert.equal(res.usage.prompt_tokens, 17, 'prompt_tokens = input + cache_read + cache_write');
      assert.equal(res.usage.completion_tokens, 6);
      assert.equal(res.usage.total_tokens, 23);
      assert.equal(res.usage.prompt_tokens_details?.cached_tokens, 3);
    });

    it('stream_options.include_usage: one usage chunk, cached tokens counted in', T, async () => {
      const client = openai();
      const stream = await client.chat.completions.create({
        model: CLAUDE, stream: true, stream_options: { include_usage: true },
        messages: [{ role: 'user', content: `${tag()} ${directive({ input_tokens: 12, output_tokens: 6, cache_read: 3 })}` }],
      });
      const chunks = [];
      for await (const c of stream) chunks.push(c);
      const last = chunks.at(-1);
      assert.deepEqual(last.choices, []);
      assert.equal(last.usage.prompt_tokens, 15, 'prompt_tokens = input + cache_read + cache_write');
      assert.equal(last.usage.completion_tokens, 6);
      assert.equal(last.usage.total_tokens, 21);
      assert.equal(last.usage.prompt_tokens_details?.cached_tokens, 3);
      assert.equal(chunks.filter((c) => c.usage).length, 1, 'exactly one chunk carries usage');
      const text = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? '')).join('');
      assert.equal(text, answer(3));

      // Without include_usage there is no usage chunk.
      const plain = await client.chat.completions.create({
        model: CLAUDE, stream: true, messages: [{ role: 'user', content: `${tag()} x` }],
      });
      const pchunks = [];
      for await (const c of plain) pchunks.push(c);
      assert.deepEqual(pchunks.filter((c) => c.choices.length === 0 || c.usage), []);
      assert.equal(pchunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? '')).join(''),
        answer(3));
    });

    it('tool call, not streamed: tool_calls with parsed arguments, finish_reason tool_calls', T, async () => {
      const t = tag();
      const client = openai();
      const res = await client.chat.completions.create({
        model: CLAUDE, tools: [OPENAI_WEATHER_TOOL], tool_choice: 'auto',
        messages: [{ role: 'user', content: `${t} weather? ${directive({ tool: 'get_weather' })}` }],
      });
      const ch = res.choices[0];
      assert.equal(ch.finish_reason, 'tool_calls');
      assert.equal(ch.message.content, null);
      assert.equal(ch.message.tool_calls.length, 1);
      const call = ch.message.tool_calls[0];
      assert.match(call.id, /^toolu_mock\d+$/, 'the upstream tool_use id is the call id');
      assert.equal(call.type, 'function');
      assert.equal(call.function.name, 'get_weather');
      assert.deepEqual(JSON.parse(call.function.arguments), TOOL_ARGS);

      const rec = await requestWithTag(ANTHROPIC_MOCK_URL, t);
      assert.deepEqual(rec.json.tools, [ANTHROPIC_WEATHER_TOOL]);
      assert.deepEqual(rec.json.tool_choice, { type: 'auto' });
    });

    it('tool call, streamed: the stream helper assembles the call', T, async () => {
      const client = openai();
      const stream = client.chat.completions.stream({
        model: CLAUDE, tools: [OPENAI_WEATHER_TOOL],
        messages: [{ role: 'user', content: `${tag()} weather? ${directive({ tool: 'get_weather' })}` }],
      });
      const final = await stream.finalChatCompletion();
      const ch = final.choices[0];
      assert.equal(ch.finish_reason, 'tool_calls');
      assert.equal(ch.message.tool_calls.length, 1);
      const call = ch.message.tool_calls[0];
      assert.match(call.id, /^toolu_mock\d+$/);
      assert.equal(call.type, 'function');
      assert.equal(call.function.name, 'get_weather');
      assert.deepEqual(JSON.parse(call.function.arguments), TOOL_ARGS);
    });

    it('a tool result goes back as tool_use + tool_result', T, async () => {
      const t = tag();
      const client = openai();
      const res = await client.chat.completions.create({
        model: CLAUDE, tools: [OPENAI_WEATHER_TOOL],
        messages: [
          { role: 'user', content: `${t} weather in Paris?` },
          { role: 'assistant', content: null, tool_calls: [{ id: 'toolu_abc123', type: 'function',
            function: { name: 'get_weather', arguments: JSON.stringify(TOOL_ARGS) } }] },
          { role: 'tool', tool_call_id: 'toolu_abc123', content: '18C and sunny' },
        ],
      });
      assert.equal(res.choices[0].message.content, answer(3));
      const msgs = (await requestWithTag(ANTHROPIC_MOCK_URL, t)).json.messages;
      assert.deepEqual(msgs.map((m) => m.role), ['user', 'assistant', 'user']);
      assert.equal(anthropicText(msgs[0].content), `${t} weather in Paris?`);
      assert.deepEqual(msgs[1].content.filter((b) => b.type !== 'text' || b.text !== ''), [
        { type: 'tool_use', id: 'toolu_abc123', name: 'get_weather', input: TOOL_ARGS },
      ]);
      assert.equal(msgs[2].content.length, 1);
      assert.equal(msgs[2].content[0].type, 'tool_result');
      assert.equal(msgs[2].content[0].tool_use_id, 'toolu_abc123');
      assert.equal(anthropicText(msgs[2].content[0].content), '18C and sunny');
    });

    it("finish_reason 'length' for max_tokens (streamed and not)", T, async () => {
      const client = openai();
      const body = () => ({
        model: CLAUDE, max_tokens: 5,
        messages: [{ role: 'user', content: `${tag()} ${directive({ finish: 'length' })}` }],
      });
      const res = await client.chat.completions.create(body());
      assert.equal(res.choices[0].finish_reason, 'length');
      assert.equal(res.choices[0].message.content, answer(3));
      const final = await client.chat.completions.stream(body()).finalChatCompletion();
      assert.equal(final.choices[0].finish_reason, 'length');
      assert.equal(final.choices[0].message.content, answer(3));
    });

    it('thinking arrives as reasoning_content', T, async () => {
      const client = openai();
      const body = { model: CLAUDE,
        messages: [{ role: 'user', content: `${tag()} ${directive({ thinking: 1, events: 2 })}` }] };
      const stream = await client.chat.completions.create({ ...body, stream: true });
      let reasoning = '';
      let text = '';
      for await (const c of stream) {
        reasoning += c.choices[0]?.delta?.reasoning_content ?? '';
        text += c.choices[0]?.delta?.content ?? '';
      }
      assert.equal(reasoning, THINKING_TEXT);
      assert.equal(text, answer(2));
      const res = await client.chat.completions.create(body);
      assert.equal(res.choices[0].message.reasoning_content, THINKING_TEXT);
      assert.equal(res.choices[0].message.content, answer(2));
    });

    it('an image data URI becomes a base64 image block', T, async () => {
      const t = tag();
      const client = openai();
      const text = `${t} what is this? ${directive({ events: 1 })}`;
      const res = await client.chat.completions.create({
        model: CLAUDE,
        messages: [{ role: 'user', content: [
          { type: 'text', text },
          { type: 'image_url', image_url: { url: PNG_DATA_URI } },
        ] }],
      });
      assert.equal(res.choices[0].message.content, answer(1));
      const rec = await requestWithTag(ANTHROPIC_MOCK_URL, t);
      assert.deepEqual(rec.json.messages, [{ role: 'user', content: [
        { type: 'text', text },
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG_B64 } },
      ] }]);
    });

    describe('errors', () => {
      it('upstream 529 -> 503 -> InternalServerError', T, async () => {
        const client = openai();
        const err = await client.chat.completions.create({
          model: CLAUDE, messages: [{ role: 'user', content: directive({ status: 529 }) }],
        }).then(fail, (e) => e);
        assert.ok(err instanceof OpenAI.InternalServerError, `got ${err?.constructor?.name}: ${err}`);
        assert.equal(err.status, 503);
        assert.equal(err.type, 'server_error');
        assert.equal(err.error.message, 'overloaded_error (mock)');

        const serr = await client.chat.completions.create({
          model: CLAUDE, stream: true, messages: [{ role: 'user', content: directive({ status: 529 }) }],
        }).then(fail, (e) => e);
        assert.ok(serr instanceof OpenAI.InternalServerError, `got ${serr?.constructor?.name}: ${serr}`);
        assert.equal(serr.status, 503);
      });

      it('upstream 429 -> RateLimitError', T, async () => {
        const client = openai();
        const err = await client.chat.completions.create({
          model: CLAUDE, messages: [{ role: 'user', content: directive({ status: 429, retry_after: 0 }) }],
        }).then(fail, (e) => e);
        assert.ok(err instanceof OpenAI.RateLimitError, `got ${err?.constructor?.name}: ${err}`);
        assert.equal(err.status, 429);
        assert.equal(err.type, 'rate_limit_error');
        assert.equal(err.error.message, 'rate_limit_error (mock)');
        assert.equal(err.headers.get('retry-after'), '0');
      });
    });

    it('AbortController mid-stream -> APIUserAbortError, and the upstream stream stops', T, async () => {
      const t = tag();
      const client = openai();
      const ac = new AbortController();
      const stream = client.chat.completions.stream({
        model: CLAUDE,
        messages: [{ role: 'user', content: `${t} ${directive({ events: 50, delay_ms: 100 })}` }],
      }, { signal: ac.signal });
      const got = [];
      stream.on('content', (delta) => {
        got.push(delta);
        if (got.length === 3) ac.abort();
      });
      const err = await stream.finalChatCompletion().then(fail, (e) => e);
      assert.ok(err instanceof OpenAI.APIUserAbortError, `got ${err?.constructor?.name}: ${err}`);
      assert.deepEqual(got, deltas(3));
      const rec = await requestWithTag(ANTHROPIC_MOCK_URL, t);
      const ab = await waitFor(async () => (await mockStats(ANTHROPIC_MOCK_URL)).aborted
        .find((a) => a.seq === rec.seq), 3000);
      assert.ok(ab, 'the mock saw the stream aborted within 3 s of the client leaving');
    });
  });

  describe('@anthropic-ai/sdk -> OpenAI provider', () => {
    it('messages.create, not streamed: answer, usage and the OpenAI request', T, async () => {
      const t = tag();
      const text = `${t} ${directive({ events: 2, input_tokens: 11, output_tokens: 4 })}`;
      const client = anthropic();
      const msg = await client.messages.create({
        model: GPT, max_tokens: 256, system: 'You are terse.', temperature: 0.5,
        messages: [{ role: 'user', content: text }],
      });
      assert.equal(msg.type, 'message');
      assert.equal(msg.role, 'assistant');
      assert.equal(msg.model, GPT);
      assert.match(msg.id, /^msg_/);
      assert.deepEqual(msg.content, [{ type: 'text', text: answer(2) }]);
      assert.equal(msg.stop_reason, 'end_turn');
      assert.equal(msg.stop_sequence, null);
      assert.equal(msg.usage.input_tokens, 11);
      assert.equal(msg.usage.output_tokens, 4);

      const rec = await requestWithTag(OPENAI_MOCK_URL, t);
      assert.equal(rec.path, '/v1/chat/completions');
      assert.equal(rec.json.model, GPT);
      assert.equal(rec.json.temperature, 0.5);
      assert.equal(rec.json.max_completion_tokens ?? rec.json.max_tokens, 256);
      assert.deepEqual(rec.json.messages.map((m) => [m.role, openaiText(m.content)]),
        [['system', 'You are terse.'], ['user', text]]);
      assert.deepEqual(await requestsWithTag(ANTHROPIC_MOCK_URL, t), [], 'nothing went to Anthropic');
    });

    it('messages.stream() + finalMessage(): text, usage, stop_reason', T, async () => {
      const client = anthropic();
      const stream = client.messages.stream({
        model: GPT, max_tokens: 256,
        messages: [{ role: 'user', content: `${tag()} ${directive({ events: 5, input_tokens: 9, output_tokens: 10 })}` }],
      });
      const got = [];
      const events = [];
      stream.on('text', (delta) => got.push(delta));
      stream.on('streamEvent', (e) => events.push(e.type));
      const msg = await stream.finalMessage();
      assert.deepEqual(got, deltas(5));
      assert.deepEqual(msg.content, [{ type: 'text', text: answer(5) }]);
      assert.equal(msg.stop_reason, 'end_turn');
      assert.equal(msg.model, GPT);
      assert.equal(msg.usage.input_tokens, 9);
      assert.equal(msg.usage.output_tokens, 10);
      assert.equal(events[0], 'message_start');
      assert.equal(events.at(-1), 'message_stop');
      assert.equal(events.filter((e) => e === 'message_delta').length, 1);
    });

    it('tool_use, not streamed and streamed', T, async () => {
      const t = tag();
      const client = anthropic();
      const params = (x) => ({
        model: GPT, max_tokens: 256, tools: [ANTHROPIC_WEATHER_TOOL],
        messages: [{ role: 'user', content: `${x} weather? ${directive({ tool: 'get_weather' })}` }],
      });
      const plain = await client.messages.create(params(t));
      assert.equal(plain.stop_reason, 'tool_use');
      assert.equal(plain.content.length, 1);
      assert.match(plain.content[0].id, /^call_mock\d+$/, 'the upstream call id is the tool_use id');
      assert.deepEqual(plain.content[0],
        { type: 'tool_use', id: plain.content[0].id, name: 'get_weather', input: TOOL_ARGS });
      const rec = await requestWithTag(OPENAI_MOCK_URL, t);
      assert.deepEqual(rec.json.tools, [OPENAI_WEATHER_TOOL]);

      const stream = client.messages.stream(params(tag()));
      const msg = await stream.finalMessage();
      assert.equal(msg.stop_reason, 'tool_use');
      assert.equal(msg.content.length, 1);
      assert.match(msg.content[0].id, /^call_mock\d+$/);
      assert.deepEqual(msg.content[0],
        { type: 'tool_use', id: msg.content[0].id, name: 'get_weather', input: TOOL_ARGS });
    });

    it('a tool_result goes back as an assistant tool_calls + tool message', T, async () => {
      const t = tag();
      const client = anthropic();
      const msg = await client.messages.create({
        model: GPT, max_tokens: 256, tools: [ANTHROPIC_WEATHER_TOOL],
        messages: [
          { role: 'user', content: `${t} weather in Paris?` },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'call_abc123', name: 'get_weather', input: TOOL_ARGS }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_abc123', content: '18C and sunny' }] },
        ],
      });
      assert.deepEqual(msg.content, [{ type: 'text', text: answer(3) }]);
      const msgs = (await requestWithTag(OPENAI_MOCK_URL, t)).json.messages;
      assert.deepEqual(msgs.map((m) => m.role), ['user', 'assistant', 'tool']);
      assert.equal(openaiText(msgs[0].content), `${t} weather in Paris?`);
      assert.equal(msgs[1].tool_calls.length, 1);
      assert.equal(msgs[1].tool_calls[0].id, 'call_abc123');
      assert.equal(msgs[1].tool_calls[0].type, 'function');
      assert.equal(msgs[1].tool_calls[0].function.name, 'get_weather');
      assert.deepEqual(JSON.parse(msgs[1].tool_calls[0].function.arguments), TOOL_ARGS);
      assert.equal(msgs[2].tool_call_id, 'call_abc123');
      assert.equal(openaiText(msgs[2].content), '18C and sunny');
    });

    it("stop_reason 'max_tokens' for finish=length (streamed and not)", T, async () => {
      const client = anthropic();
      const params = () => ({
        model: GPT, max_tokens: 5,
        messages: [{ role: 'user', content: `${tag()} ${directive({ finish: 'length' })}` }],
      });
      const plain = await client.messages.create(params());
      assert.equal(plain.stop_reason, 'max_tokens');
      assert.deepEqual(plain.content, [{ type: 'text', text: answer(3) }]);
      const msg = await client.messages.stream(params()).finalMessage();
      assert.equal(msg.stop_reason, 'max_tokens');
      assert.deepEqual(msg.content, [{ type: 'text', text: answer(3) }]);
    });

    it('usage: cached prompt tokens are split out of input_tokens', T, async () => {
      const client = anthropic();
      const params = () => ({
        model: GPT, max_tokens: 64,
        messages: [{ role: 'user', content: `${tag()} ${directive({ input_tokens: 20, output_tokens: 4, cache_read: 3 })}` }],
      });
      for (const msg of [await client.messages.create(params()),
        await client.messages.stream(params()).finalMessage()]) {
        assert.equal(msg.usage.input_tokens, 17, 'input_tokens = prompt_tokens - cached_tokens');
        assert.equal(msg.usage.cache_read_input_tokens, 3);
        assert.equal(msg.usage.output_tokens, 4);
      }
    });

    it('an image block becomes an image_url data URI', T, async () => {
      const t = tag();
      const client = anthropic();
      const text = `${t} what is this? ${directive({ events: 1 })}`;
      const msg = await client.messages.create({
        model: GPT, max_tokens: 64,
        messages: [{ role: 'user', content: [
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG_B64 } },
          { type: 'text', text },
        ] }],
      });
      assert.deepEqual(msg.content, [{ type: 'text', text: answer(1) }]);
      const rec = await requestWithTag(OPENAI_MOCK_URL, t);
      assert.equal(rec.json.messages.length, 1);
      const parts = rec.json.messages[0].content;
      assert.equal(parts.length, 2);
      assert.deepEqual(parts[0].type, 'image_url');
      assert.equal(parts[0].image_url.url, PNG_DATA_URI);
      assert.deepEqual(parts[1], { type: 'text', text });
    });

    describe('errors', () => {
      it('upstream 429 -> RateLimitError', T, async () => {
        const client = anthropic();
        const err = await client.messages.create({
          model: GPT, max_tokens: 64,
          messages: [{ role: 'user', content: directive({ status: 429, retry_after: 0 }) }],
        }).then(fail, (e) => e);
        assert.ok(err instanceof Anthropic.RateLimitError, `got ${err?.constructor?.name}: ${err}`);
        assert.equal(err.status, 429);
        assert.deepEqual(err.error, { type: 'error',
          error: { type: 'rate_limit_error', message: 'Rate limit reached for requests (mock).' } });
        assert.equal(err.headers.get('retry-after'), '0');

        const stream = client.messages.stream({
          model: GPT, max_tokens: 64,
          messages: [{ role: 'user', content: directive({ status: 429, retry_after: 0 }) }],
        });
        const serr = await stream.finalMessage().then(fail, (e) => e);
        assert.ok(serr instanceof Anthropic.RateLimitError, `got ${serr?.constructor?.name}: ${serr}`);
      });

      it('upstream 500 -> InternalServerError', T, async () => {
        const client = anthropic();
        const err = await client.messages.create({
          model: GPT, max_tokens: 64, messages: [{ role: 'user', content: directive({ status: 500 }) }],
        }).then(fail, (e) => e);
        assert.ok(err instanceof Anthropic.InternalServerError, `got ${err?.constructor?.name}: ${err}`);
        assert.equal(err.status, 500);
        assert.equal(err.error.type, 'error');
        assert.equal(err.error.error.type, 'api_error');
        assert.equal(err.error.error.message,
          'The server had an error while processing your request (mock).');
      });

      it('upstream 401 (provider key refused) -> 502 InternalServerError, not the client\'s AuthenticationError', T, async () => {
        // The provider refused the gateway's key: the client's own key is fine,
        // so it must not see an authentication error, nor the provider's body.
        const client = anthropic();
        const err = await client.messages.create({
          model: GPT, max_tokens: 64, messages: [{ role: 'user', content: directive({ status: 401 }) }],
        }).then(fail, (e) => e);
        assert.ok(err instanceof Anthropic.InternalServerError, `got ${err?.constructor?.name}: ${err}`);
        assert.equal(err.status, 502);
        assert.equal(err.error.error.type, 'api_error');
        assert.equal(err.error.error.message, "the provider rejected the gateway's credentials");
      });
    });

    it('stream.abort() mid-stream -> APIUserAbortError, and the upstream stream stops', T, async () => {
      const t = tag();
      const client = anthropic();
      const stream = client.messages.stream({
        model: GPT, max_tokens: 256,
        messages: [{ role: 'user', content: `${t} ${directive({ events: 50, delay_ms: 100 })}` }],
      });
      const got = [];
      stream.on('text', (delta) => {
        got.push(delta);
        if (got.length === 3) stream.abort();
      });
      const err = await stream.finalMessage().then(fail, (e) => e);
      assert.ok(err instanceof Anthropic.APIUserAbortError, `got ${err?.constructor?.name}: ${err}`);
      assert.deepEqual(got, deltas(3));
      const rec = await requestWithTag(OPENAI_MOCK_URL, t);
      const ab = await waitFor(async () => (await mockStats(OPENAI_MOCK_URL)).aborted
        .find((a) => a.seq === rec.seq), 3000);
      assert.ok(ab, 'the mock saw the stream aborted within 3 s of the client leaving');
    });

    it('messages.countTokens for a gpt model is a local estimate', T, async () => {
      const t = tag();
      const client = anthropic();
      const { data, response } = await client.messages.countTokens({
        model: GPT, system: 'You are terse.', messages: [{ role: 'user', content: `${t} hello there` }],
      }).withResponse();
      assert.ok(Number.isInteger(data.input_tokens) && data.input_tokens > 0,
        `input_tokens: ${data.input_tokens}`);
      assert.equal(response.headers.get('x-antigateway-token-count'), 'estimate');
      const long = await client.messages.countTokens({
        model: GPT, messages: [{ role: 'user', content: `${t} ` + 'lorem ipsum dolor '.repeat(200) }],
      });
      assert.ok(long.input_tokens > data.input_tokens * 10,
        `a 3600-character message counts more: ${long.input_tokens} vs ${data.input_tokens}`);
      assert.deepEqual(await requestsWithTag(OPENAI_MOCK_URL, t), [], 'no upstream call');
      assert.deepEqual(await requestsWithTag(ANTHROPIC_MOCK_URL, t), [], 'no upstream call');
    });
  });
});

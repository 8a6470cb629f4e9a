// The OpenAI Responses API through the official `openai` SDK: client.responses.create
// (streamed and not) and client.responses.stream() with finalResponse(), passed through
// to a Responses provider (mock-openai's *-codex models) and converted to an Anthropic
// provider and to a chat-completions provider, with tools and images; errors in the
// SDK's error classes.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  GPT, CLAUDE, OPENAI_MOCK_URL, ANTHROPIC_MOCK_URL, TOOL_ARGS, THINKING_TEXT, PNG_B64,
  PNG_DATA_URI, WEATHER_SCHEMA, openai, directive, tag, deltas, answer, requestWithTag,
  requestsWithTag, anthropicText,
} from './helpers.mjs';

const T = { timeout: 30_000 };
const CODEX = 'gpt-5-codex';
const WEATHER = {
  type: 'function', name: 'get_weather', description: 'Current weather for a place',
  parameters: WEATHER_SCHEMA, strict: false,
};

/** Every event's sequence_number counts up from 0, and the stream has the typed shape. */
function checkEvents(events) {
  events.forEach((e, i) => assert.equal(e.sequence_number, i, `sequence_number of ${e.type}`));
  assert.equal(events[0].type, 'response.created');
  assert.equal(events[1].type, 'response.in_progress');
  assert.equal(events.at(-1).type, 'response.completed');
}

describe('responses', () => {
  describe('passthrough to a Responses provider', () => {
    it('responses.create, not streamed: the mock\'s own object, the client\'s bytes upstream', T, async () => {
      const t = tag();
      const client = openai();
      const res = await client.responses.create({
        model: CODEX, instructions: 'Be terse.', store: false,
        input: `${t} ${directive({ events: 3, input_tokens: 11, output_tokens: 5 })}`,
        tools: [{ type: 'web_search_preview' }],
      });
      assert.equal(res.object, 'response');
      assert.equal(res.status, 'completed');
      assert.match(res.id, /^resp_mock/);
      assert.equal(res.output_text, answer(3));
      assert.equal(res.usage.input_tokens, 11);
      assert.equal(res.usage.output_tokens, 5);
      const rec = await requestWithTag(OPENAI_MOCK_URL, t);
      assert.equal(rec.path, '/v1/responses');
      assert.deepEqual(rec.json.tools, [{ type: 'web_search_preview' }], 'hosted tools pass through');
      assert.equal(rec.json.instructions, 'Be terse.');
    });

    it('responses.stream() + finalResponse()', T, async () => {
      const client = openai();
      const stream = client.responses.stream({
        model: CODEX, input: `${tag()} ${directive({ events: 4 })}`,
      });
      const got = [];
      const events = [];
      stream.on('response.output_text.delta', (e) => got.push(e.delta));
      stream.on('event', (e) => events.push(e));
      const final = await stream.finalResponse();
      assert.deepEqual(got, deltas(4));
      assert.equal(final.output_text, answer(4));
      assert.equal(final.status, 'completed');
      checkEvents(events);
    });

    it('a function call, streamed with responses.create({stream: true})', T, async () => {
      const client = openai();
      const stream = await client.responses.create({
        model: CODEX, stream: true, tools: [WEATHER],
        input: [{ role: 'user', content: `${tag()} ${directive({ tool: 'get_weather' })}` }],
      });
      const events = [];
      for await (const e of stream) events.push(e);
      checkEvents(events);
      const done = events.find((e) => e.type === 'response.function_call_arguments.done');
      assert.deepEqual(JSON.parse(done.arguments), TOOL_ARGS);
    });

    it('a stateful request is refused before anything goes upstream', T, async () => {
      const t = tag();
      const client = openai();
      await assert.rejects(
        client.responses.create({ model: CODEX, input: t, previous_response_id: 'resp_123' }),
        (e) => {
          assert.ok(e instanceof OpenAI.BadRequestError, `a BadRequestError: ${e}`);
          assert.equal(e.status, 400);
          assert.equal(e.type, 'invalid_request_error');
          assert.match(e.message, /previous_response_id.*stateless/);
          return true;
        });
      assert.deepEqual(await requestsWithTag(OPENAI_MOCK_URL, t), []);
    });
  });

  describe('converted to an Anthropic provider', () => {
    it('responses.create with an image: answer, usage and the Anthropic request', T, async () => {
      const t = tag();
      const client = openai();
      const res = await client.responses.create({
        model: CLAUDE, instructions: 'You are terse.', max_output_tokens: 300, temperature: 0.5,
        input: [{
          role: 'user',
          content: [
            { type: 'input_text', text: `${t} ${directive({ events: 2, input_tokens: 12, output_tokens: 6 })}` },
            { type: 'input_image', image_url: PNG_DATA_URI, detail: 'auto' },
          ],
        }],
      });
      assert.equal(res.object, 'response');
      assert.equal(res.model, CLAUDE);
      assert.match(res.id, /^resp_msg_mock/);
      assert.equal(res.output_text, answer(2));
      assert.equal(res.usage.input_tokens, 12);
      assert.equal(res.usage.output_tokens, 6);
      assert.equal(res.usage.total_tokens, 18);
      const rec = await requestWithTag(ANTHROPIC_MOCK_URL, t);
      assert.equal(rec.path, '/v1/messages');
      assert.equal(anthropicText(rec.json.system), 'You are terse.');
      assert.equal(rec.json.max_tokens, 300);
      assert.equal(rec.json.temperature, 0.5);
      const [text, image] = rec.json.messages[0].content;
      assert.equal(text.type, 'text');
      assert.deepEqual(image, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG_B64 } });
      assert.deepEqual(await requestsWithTag(OPENAI_MOCK_URL, t), [], 'nothing went to OpenAI');
    });

    it('responses.stream() with a tool and thinking: typed events and finalResponse()', T, async () => {
      const t = tag();
      const client = openai();
      const stream = client.responses.stream({
        model: CLAUDE, tools: [WEATHER], tool_choice: 'auto', reasoning: { effort: 'medium' },
        input: `${t} ${directive({ tool: 'get_weather', thinking: 1 })}`,
      });
      const events = [];
      const args = [];
      stream.on('event', (e) => events.push(e));
      stream.on('response.function_call_arguments.delta', (e) => args.push(e.delta));
      const final = await stream.finalResponse();
      checkEvents(events);
      assert.deepEqual(final.output.map((i) => i.type), ['reasoning', 'function_call']);
      assert.equal(final.output[0].summary[0].text, THINKING_TEXT);
      const call = final.output[1];
      assert.equal(call.name, 'get_weather');
      assert.match(call.call_id, /^toolu_mock/);
      assert.deepEqual(JSON.parse(call.arguments), TOOL_ARGS);
      assert.deepEqual(JSON.parse(args.join('')), TOOL_ARGS);
      const rec = await requestWithTag(ANTHROPIC_MOCK_URL, t);
      assert.equal(rec.json.tools[0].name, 'get_weather');
      assert.deepEqual(rec.json.thinking, { type: 'enabled', budget_tokens: 8192 });
    });

    it('the tool result goes back: function_call + function_call_output items', T, async () => {
      const t = tag();
      const client = openai();
      const res = await client.responses.create({
        model: CLAUDE, tools: [WEATHER],
        input: [
          { role: 'user', content: 'Weather in Paris?' },
          { type: 'function_call', call_id: 'toolu_1', name: 'get_weather', arguments: JSON.stringify(TOOL_ARGS) },
          { type: 'function_call_output', call_id: 'toolu_1', output: `18C ${t}` },
        ],
      });
      assert.equal(res.status, 'completed');
      const rec = await requestWithTag(ANTHROPIC_MOCK_URL, t);
      assert.deepEqual(rec.json.messages.map((m) => m.role), ['user', 'assistant', 'user']);
      assert.deepEqual(rec.json.messages[1].content[0].input, TOOL_ARGS);
      assert.equal(rec.json.messages[2].content[0].tool_use_id, 'toolu_1');
    });

    it('a hosted tool is refused: the provider cannot serve it', T, async () => {
      const client = openai();
      await assert.rejects(
        client.responses.create({ model: CLAUDE, input: 'hi', tools: [{ type: 'web_search_preview' }] }),
        (e) => e instanceof OpenAI.BadRequestError && /web_search_preview/.test(e.message));
    });

    it('upstream 429 reaches the SDK as a RateLimitError', T, async () => {
      const client = openai();
      await assert.rejects(
        client.responses.create({ model: CLAUDE, input: directive({ status: 429 }) }),
        (e) => e instanceof OpenAI.RateLimitError && e.status === 429);
    });
  });

  describe('converted to a chat-completions provider', () => {
    it('responses.create, streamed: text and usage with cached tokens', T, async () => {
      const t = tag();
      const client = openai();
      const stream = await client.responses.create({
        model: GPT, stream: true,
        input: `${t} ${directive({ events: 3, input_tokens: 40, output_tokens: 7, cache_read: 30 })}`,
      });
      const events = [];
      for await (const e of stream) events.push(e);
      checkEvents(events);
      const text = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta);
      assert.deepEqual(text, deltas(3));
      const usage = events.at(-1).response.usage;
      assert.equal(usage.input_tokens, 40);
      assert.equal(usage.input_tokens_details.cached_tokens, 30);
      assert.equal(usage.output_tokens, 7);
      const rec = await requestWithTag(OPENAI_MOCK_URL, t);
      assert.equal(rec.path, '/v1/chat/completions');
      assert.equal(rec.json.stream, true);
    });

    it('responses.stream() with a tool and an image + finalResponse()', T, async () => {
      const t = tag();
      const client = openai();
      const stream = client.responses.stream({
        model: GPT, tools: [WEATHER],
        input: [{
          role: 'user',
          content: [
            { type: 'input_text', text: `${t} ${directive({ tool: 'get_weather' })}` },
            { type: 'input_image', image_url: PNG_DATA_URI, detail: 'auto' },
          ],
        }],
      });
      const final = await stream.finalResponse();
      assert.equal(final.output.length, 1);
      assert.equal(final.output[0].type, 'function_call');
      assert.equal(final.output[0].name, 'get_weather');
      assert.deepEqual(JSON.parse(final.output[0].arguments), TOOL_ARGS);
      const rec = await requestWithTag(OPENAI_MOCK_URL, t);
      assert.equal(rec.json.messages[0].content[1].image_url.url, PNG_DATA_URI);
      assert.equal(rec.json.tools[0].function.name, 'get_weather');
    });

    it('max_output_tokens reached: an incomplete response', T, async () => {
      const client = openai();
      const res = await client.responses.create({
        model: GPT, max_output_tokens: 16, input: directive({ finish: 'length' }),
      });
      assert.equal(res.status, 'incomplete');
      assert.deepEqual(res.incomplete_details, { reason: 'max_output_tokens' });
    });
  });

  describe('other clients on a Responses provider', () => {
    it('chat.completions.create is converted to /v1/responses', T, async () => {
      const t = tag();
      const client = openai();
      const res = await client.chat.completions.create({
        model: CODEX, messages: [{ role: 'user', content: `${t} ${directive({ events: 2 })}` }],
      });
      assert.equal(res.choices[0].message.content, answer(2));
      const rec = await requestWithTag(OPENAI_MOCK_URL, t);
      assert.equal(rec.path, '/v1/responses');
      assert.equal(rec.json.store, false);
    });
  });
});

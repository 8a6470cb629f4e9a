// Continuation: an answer cut by the provider's own output cap reaches each official
// SDK as one message. The mock answers in rounds (tests/mock/README.md, `rounds`);
// the gateway asks again after each cut one and streams every round into the same
// response, so the SDK's own assembly (stream helpers, final message) sees one answer.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ANTHROPIC_MOCK_URL, openai, anthropic, directive, tag, requestsWithTag } from './helpers.mjs';

const T = { timeout: 30_000 };
// Served by the "cont-anthropic" provider of test_sdk.py's configuration: an
// Anthropic-type provider on the mock with `continuation = true`.
const MODEL = 'cont-claude-sdk';

function rounds(...rs) {
  return directive({ rounds: Buffer.from(JSON.stringify(rs)).toString('hex') });
}

describe('continuation', () => {
  it('anthropic SDK messages.stream: one message, every round\'s text', T, async () => {
    const t = tag();
    const stream = anthropic().messages.stream({
      model: MODEL, max_tokens: 1000,
      messages: [{ role: 'user', content: `${t} ${rounds(['Once upon ', 'a ti'], ['me there ', 'was '], ['a gateway.'])}` }],
    });
    let starts = 0;
    stream.on('streamEvent', (ev) => { if (ev.type === 'message_start') starts += 1; });
    const msg = await stream.finalMessage();
    assert.equal(starts, 1);
    assert.equal(msg.content.length, 1);
    assert.equal(msg.content[0].type, 'text');
    assert.equal(msg.content[0].text, 'Once upon a time there was a gateway.');
    assert.equal(msg.stop_reason, 'end_turn');
    const sent = await requestsWithTag(ANTHROPIC_MOCK_URL, t);
    assert.equal(sent.length, 3);
  });

  it('openai SDK chat.completions.stream: one completion, one finish', T, async () => {
    const t = tag();
    const stream = openai().chat.completions.stream({
      model: MODEL,
      messages: [{ role: 'user', content: `${t} ${rounds(['Grüße ', 'aus '], ['Berlin€'])}` }],
    });
    const done = await stream.finalChatCompletion();
    assert.equal(done.choices.length, 1);
    assert.equal(done.choices[0].message.content, 'Grüße aus Berlin€');
    assert.equal(done.choices[0].finish_reason, 'stop');
  });

  it('openai SDK, not streamed: the joined answer and both rounds\' usage', T, async () => {
    const t = tag();
    const res = await openai().chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: `${t} ${rounds(['a', 'b'], ['c'])}` }],
    });
    assert.equal(res.choices[0].message.content, 'abc');
    assert.equal(res.choices[0].finish_reason, 'stop');
    assert.equal(res.usage.completion_tokens, 4 + 2);
  });
});

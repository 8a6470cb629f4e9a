// Shared helpers for the SDK conformance tests (tests/sdk/*.test.mjs).
//
// The gateway and the mock upstreams are started by tests/integration/test_sdk.py,
// which passes their addresses in the environment:
//   GATEWAY_URL         http://127.0.0.1:PORT of lighttpd + the antigw-fcgi pool
//   GATEWAY_KEY         the client key (auth.api_key)
//   OPENAI_MOCK_URL     http://127.0.0.1:PORT of the mock OpenAI upstream
//   ANTHROPIC_MOCK_URL  http://127.0.0.1:PORT of the mock Anthropic upstream
//
// The mocks (tests/mock/upstream.py) answer deterministically and are steered by a
// `[[mock: key=value, ...]]` directive inside the last message's text. Test files may
// run in parallel against the same mocks, so nothing here resets a mock: each request
// carries a unique tag in its text, and the mock's records are searched for that tag.

import { createHash, randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is not set (run tests/integration/test_sdk.py)`);
  return v.replace(/\/+$/, '');
}

export const GATEWAY_URL = need('GATEWAY_URL');
export const GATEWAY_KEY = need('GATEWAY_KEY');
export const OPENAI_MOCK_URL = need('OPENAI_MOCK_URL');
export const ANTHROPIC_MOCK_URL = need('ANTHROPIC_MOCK_URL');

export const GPT = 'gpt-4o-mini';
export const CLAUDE = 'claude-sonnet-4-20250514';

// What the mocks send back (tests/mock/upstream.py).
export const TOOL_ARGS = { location: 'Paris, France', unit: 'celsius' };
export const THINKING_TEXT = 'Let me think about this.';
export const SIGNATURE = createHash('sha256').update('mock-signature').digest('base64');

// Every test sees a failure at once: no retries hide a status, no long waits.
export function openai(opts = {}) {
  return new OpenAI({
    apiKey: GATEWAY_KEY, baseURL: `${GATEWAY_URL}/v1`, maxRetries: 0, timeout: 30_000, ...opts,
  });
}

export function anthropic(opts = {}) {
  return new Anthropic({
    apiKey: GATEWAY_KEY, baseURL: GATEWAY_URL, maxRetries: 0, timeout: 30_000, ...opts,
  });
}

/** `[[mock: k=v, ...]]` */
export function directive(kw) {
  return '[[mock: ' + Object.entries(kw).map(([k, v]) => `${k}=${v}`).join(', ') + ']]';
}

/** A tag unique to one request, so its record can be found at the mock. */
export function tag() {
  return 'sdk-' + randomBytes(6).toString('hex');
}

/** The deltas the mock streams: "Hello0", " Hello1", ... */
export function deltas(n = 3, word = 'Hello') {
  return Array.from({ length: n }, (_, i) => (i === 0 ? '' : ' ') + word + i);
}

/** The mock's whole answer text for `events=n`. */
export function answer(n = 3, word = 'Hello') {
  return deltas(n, word).join('');
}

// A 1x1 red PNG.
export const PNG_B64 =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
export const PNG_DATA_URI = 'data:image/png;base64,' + PNG_B64;

export const WEATHER_SCHEMA = {
  type: 'object',
  properties: {
    location: { type: 'string', description: 'City and country' },
    unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
  },
  required: ['location'],
};

export const OPENAI_WEATHER_TOOL = {
  type: 'function',
  function: { name: 'get_weather', description: 'Current weather for a place', parameters: WEATHER_SCHEMA },
};

export const ANTHROPIC_WEATHER_TOOL = {
  name: 'get_weather', description: 'Current weather for a place', input_schema: WEATHER_SCHEMA,
};

/** A `fetch` for the SDK clients' `fetch` option that records each request's headers. */
export function recordingFetch() {
  const sent = [];
  const f = (url, init = {}) => {
    sent.push({ url: String(url), headers: new Headers(init.headers) });
    return fetch(url, init);
  };
  return { fetch: f, sent };
}

async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`GET ${url}: HTTP ${r.status}`);
  return r.json();
}

/** Every request the mock at `base` recorded, bodies decoded (`.text`, `.json`). */
export async function mockRequests(base) {
  const recs = await getJSON(`${base}/_mock/requests`);
  return recs.map((r) => {
    const text = Buffer.from(r.body_b64, 'base64').toString('utf8');
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { ...r, text, json };
  });
}

/** The one request the mock at `base` received whose body contains `t`. */
export async function requestWithTag(base, t) {
  const found = (await mockRequests(base)).filter((r) => r.text.includes(t));
  if (found.length !== 1) {
    throw new Error(`expected exactly one request tagged ${t} at ${base}, found ${found.length}`);
  }
  return found[0];
}

/** Requests tagged `t` at `base` (for checking that none went there). */
export async function requestsWithTag(base, t) {
  return (await mockRequests(base)).filter((r) => r.text.includes(t));
}

export function mockStats(base) {
  return getJSON(`${base}/_mock/stats`);
}

export function header(rec, name) {
  const h = rec.headers.filter(([k]) => k.toLowerCase() === name.toLowerCase());
  return h.length ? h[h.length - 1][1] : undefined;
}

/** Polls `fn` until it returns a truthy value or `ms` pass; returns the value or undefined. */
export async function waitFor(fn, ms, step = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() >= end) return undefined;
    await new Promise((r) => setTimeout(r, step));
  }
}

/** Text of an Anthropic `system` or message `content` (string or blocks). */
export function anthropicText(content) {
  if (typeof content === 'string') return content;
  return content.filter((b) => b.type === 'text').map((b) => b.text).join('');
}

/** Text of an OpenAI message `content` (string or parts). */
export function openaiText(content) {
  if (typeof content === 'string') return content;
  if (content == null) return '';
  return content.filter((p) => p.type === 'text').map((p) => p.text).join('');
}

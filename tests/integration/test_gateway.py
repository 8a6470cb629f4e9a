#!/usr/bin/env python3
"""End-to-end tests of the passthrough gateway through real lighttpd and the
real antigw-fcgi pool, against mock OpenAI and Anthropic upstreams."""

import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ANTHROPIC_KEY, CLIENT_KEY, FCGI_BIN, OPENAI_KEY, Gateway,  # noqa: E402
                     bail, chat, check, directive, eq, messages, process_gone, refused_port,
                     run_suite,
                     sse_events, standard_config, suite_setup, test, wait_for)

PROCESSES, THREADS = 2, 32
MAX_BODY = 2 * 1024 * 1024


GW_ADMIN_KEY = "gw-admin-key-0123456789abcdef"
METRICS_TOKEN = "scrape-token-0123456789"
# Room for two bodies of LARGE_BODY per process, not three.
MAX_MEMORY = 3 * 1024 * 1024
LARGE_BODY = 1200 * 1024


def config(openai_port, anthropic_port, dead_port):
    text = standard_config(openai_port, anthropic_port, dead_port, max_body_bytes=MAX_BODY,
                           threads=THREADS, connect_timeout_ms=2000, idle_timeout_seconds=2,
                           sse_ping_seconds=1, max_memory_bytes=MAX_MEMORY)
    # The admin key (for /health's details) and the scraper's token.
    text = text.replace('auth: { api_key = "%s"; };' % CLIENT_KEY,
                        'auth: { api_key = "%s"; admin_key = "%s"; };\n'
                        'metrics: { token = "%s"; };' % (CLIENT_KEY, GW_ADMIN_KEY, METRICS_TOKEN))
    check(GW_ADMIN_KEY in text, "the admin key made it into the config")
    return text


class Ctx:
    pass


def last_request(mock, path):
    reqs = [r for r in mock.requests() if r["path"] == path]
    check(reqs, "the mock saw no request to " + path)
    return reqs[-1]


def header(req, name):
    vals = [v for k, v in req["headers"] if k.lower() == name.lower()]
    return vals[-1] if vals else None


def body_of(req):
    return base64.b64decode(req["body_b64"])


# ---- basics ----

@test()
def health_reports_providers(ctx):
    # Without the admin key, only the verdict a load balancer needs.
    for key in (None, CLIENT_KEY, GW_ADMIN_KEY + "x"):
        status, _, body = ctx.gw.call("GET", "/health", key=key)
        eq((status, json.loads(body)), (200, {"status": "ok"}), "bare health with key %r" % key)
    status, _, body = ctx.gw.call("GET", "/health", key=GW_ADMIN_KEY)
    eq(status, 200, "status")
    doc = json.loads(body)
    eq(doc["status"], "ok", "health status")
    eq([p["name"] for p in doc["providers"]], ["mock-openai", "mock-anthropic", "dead"], "providers")


@test()
def metrics_need_the_token(ctx):
    for key in (None, CLIENT_KEY, METRICS_TOKEN + "x"):
        status, _, body = ctx.gw.call("GET", "/metrics", key=key)
        eq(status, 401, "/metrics with key %r" % key)
        check(b"metrics.token" in body, "the 401 says what is needed: %r" % body)
    status, h, body = ctx.gw.call("GET", "/metrics", key=METRICS_TOKEN)
    eq(status, 200, "/metrics with the token")
    check(h["content-type"].startswith("text/plain") and b"antigateway_" in body, "metrics text")


@test()
def cors_is_off_unless_configured(ctx):
    origin = {"Origin": "https://evil.example"}
    status, h, _ = ctx.gw.call("POST", "/v1/chat/completions", body=chat("hi"), headers=origin)
    eq(status, 200, "status")
    check("access-control-allow-origin" not in h, "no CORS header by default: %r" % h)
    status, h, _ = ctx.gw.call("OPTIONS", "/v1/chat/completions", headers=origin, key=None)
    check("access-control-allow-origin" not in h, "no CORS header on a preflight: %r" % h)


@test()
def models_list_in_both_shapes(ctx):
    # The raw ids, then each again with its provider type as prefix (a name
    # that routes as well, so clients that pick from the list can use it).
    # Raw ids: what each mock's own list names and the provider's globs
    # admit (once the prober has read it), then its literal names.
    want = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"]

    def listed():
        status, _, body = ctx.gw.call("GET", "/v1/models")
        eq(status, 200, "status")
        doc = json.loads(body)
        return [m["id"] for m in doc["data"]][:4] == want and doc
    doc = wait_for(listed, 10, "the providers' own model lists")
    eq(doc["object"], "list", "object")
    ids = [m["id"] for m in doc["data"]]
    eq(ids, want + ["openai/" + i for i in want[:2]] + ["anthropic/" + i for i in want[2:]],
       "ids (patterns are not models; text-embedding-3-small is not gpt-*)")
    check(all(m["object"] == "model" and isinstance(m["created"], int) for m in doc["data"]))
    eq(doc["data"][0]["owned_by"], "mock-openai", "owned_by")
    status, _, body = ctx.gw.call("GET", "/v1/models", headers={"anthropic-version": "2023-06-01"})
    doc = json.loads(body)
    eq([m["type"] for m in doc["data"]], ["model"] * 8, "anthropic shape")
    eq((doc["has_more"], doc["first_id"], doc["last_id"]),
       (False, "gpt-4o-mini", "anthropic/claude-3-5-haiku-20241022"), "anthropic paging fields")


# ---- OpenAI passthrough ----

@test()
def openai_non_stream_passthrough(ctx):
    ctx.openai.reset()
    body = json.dumps(chat("hi " + directive(events=4), temperature=0.5, seed=12345678901234567890,
                           extra_field={"kept": [1, 2.50, "x"]})).encode()
    status, h, data = ctx.gw.call("POST", "/v1/chat/completions", body=body,
                                  headers={"Content-Type": "application/json"})
    eq(status, 200, "status")
    check(h["content-type"].startswith("application/json"), h["content-type"])
    doc = json.loads(data)
    eq(doc["object"], "chat.completion", "object")
    eq(doc["choices"][0]["message"]["content"], "Hello0 Hello1 Hello2 Hello3", "content")
    req = last_request(ctx.openai, "/v1/chat/completions")
    eq(body_of(req), body, "the body goes upstream byte for byte")
    eq(header(req, "authorization"), "Bearer " + OPENAI_KEY, "provider key upstream")
    raw = json.dumps(req["headers"]) + body_of(req).decode()
    check(CLIENT_KEY not in raw, "the client key must never go upstream")


@test()
def model_prefix_is_stripped(ctx):
    ctx.openai.reset()
    body = json.dumps(chat("x", model="openai/gpt-4o-mini")).encode()
    status, _, _ = ctx.gw.call("POST", "/v1/chat/completions", body=body)
    eq(status, 200, "status")
    sent = body_of(last_request(ctx.openai, "/v1/chat/completions"))
    eq(sent, body.replace(b'"openai/gpt-4o-mini"', b'"gpt-4o-mini"'), "only the model changes")
    # A provider name works as a prefix too.
    status, _, _ = ctx.gw.call("POST", "/v1/chat/completions",
                               body=chat("x", model="mock-openai/o3-mini"))
    eq(status, 200, "status with provider-name prefix")
    eq(json.loads(body_of(last_request(ctx.openai, "/v1/chat/completions")))["model"], "o3-mini",
       "model upstream")


@test()
def openai_stream_events_arrive_as_sent(ctx):
    n, gap = 6, 200
    status, h, lines = ctx.gw.stream("/v1/chat/completions",
                                     chat(directive(events=n, delay_ms=gap), stream=True))
    eq(status, 200, "status")
    check(h["content-type"].startswith("text/event-stream"), h["content-type"])
    data_times = [t for t, raw in lines if raw.startswith(b"data: {")]
    events = sse_events(lines)
    eq(events[-1], (None, "[DONE]"), "last event")
    text = "".join(json.loads(d)["choices"][0]["delta"].get("content") or ""
                   for _, d in events[:-1] if json.loads(d)["choices"])
    eq(text, "".join(("" if i == 0 else " ") + "Hello%d" % i for i in range(n)), "assembled text")
    # role chunk + n deltas + finish chunk; the deltas are `gap` ms apart upstream.
    deltas = data_times[1:n + 1]
    gaps = [(b - a) * 1000 for a, b in zip(deltas, deltas[1:])]
    if not all(gap * 0.5 < g < gap * 2.0 for g in gaps):
        # Same clock on both sides: how long each event spent between the
        # mock's write and the client's read tells a held event from a late one.
        sent = last_request(ctx.openai, "/v1/chat/completions")["sent_mono"]
        transit = ["%.1f" % ((got - out) * 1000) for got, out in zip(data_times, sent)]
        check(False, "gaps between events (ms): %r; each event's time from the mock's write "
              "to the client's read (ms, the role chunk first): %s" % (gaps, ", ".join(transit)))
    total = data_times[-1] - data_times[0]
    check(total > (n - 1) * gap / 1000 * 0.8, "the first event came long before the last")


@test()
def stream_bytes_survive_utf8_splits_and_crlf(ctx):
    for d in (dict(split=1, events=3), dict(crlf=1, events=3), dict(split=1, crlf=1)):
        content = directive(**d)
        # The gateway asks for the usage chunk (for its token count) and keeps
        # it from a client that did not: the client gets what the provider
        # sends for include_usage, without that one chunk.
        _, _, direct = Gateway.__dict__["stream"](
            DirectMock(ctx.openai.port), "/v1/chat/completions",
            chat(content, stream=True, stream_options={"include_usage": True}), key=OPENAI_KEY)
        usage_chunk = [i for i, (_, raw) in enumerate(direct) if b'"choices":[]' in raw]
        eq(len(usage_chunk), 1, "one usage chunk from the provider")
        del direct[usage_chunk[0]:usage_chunk[0] + 2]  # its data line and blank line
        status, _, via = ctx.gw.stream("/v1/chat/completions", chat(content, stream=True))
        eq(status, 200, "status")
        norm = lambda ls: re.sub(rb"chatcmpl-mock\d+|\"created\":\d+", b"X",
                                 b"".join(raw for _, raw in ls))
        eq(norm(via), norm(direct), "bytes through the gateway for %r" % d)


class DirectMock:
    """Lets Gateway.stream() talk to a mock directly, for byte comparisons."""

    def __init__(self, port):
        self.port = port

    def conn(self, timeout=30):
        import http.client
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)


@test()
def unicode_and_nul_survive_the_body(ctx):
    content = "nul:\u0000 pair:\U0001F600 sep:\u2028 é " + directive(echo=1)
    status, _, data = ctx.gw.call("POST", "/v1/chat/completions", body=chat(content))
    eq(status, 200, "status")
    eq(json.loads(data)["choices"][0]["message"]["content"], content, "echoed content")


# ---- Anthropic passthrough ----

@test()
def anthropic_non_stream_and_headers(ctx):
    ctx.anthropic.reset()
    status, _, data = ctx.gw.call(
        "POST", "/v1/messages", body=messages("hi " + directive(events=2)), auth="x-api-key",
        headers={"anthropic-version": "2023-06-01", "anthropic-beta": "prompt-caching-2024-07-31"})
    eq(status, 200, "status")
    doc = json.loads(data)
    eq((doc["type"], doc["content"][0]["text"]), ("message", "Hello0 Hello1"), "message")
    req = last_request(ctx.anthropic, "/v1/messages")
    eq(header(req, "x-api-key"), ANTHROPIC_KEY, "provider key upstream")
    eq(header(req, "anthropic-version"), "2023-06-01", "anthropic-version kept")
    eq(header(req, "anthropic-beta"), "prompt-caching-2024-07-31", "anthropic-beta kept")
    check(header(req, "authorization") is None, "no Authorization header to Anthropic")
    check(CLIENT_KEY not in json.dumps(req["headers"]), "client key never upstream")
    # Without a client anthropic-version the gateway still sends one.
    ctx.gw.call("POST", "/v1/messages", body=messages("x"))
    eq(header(last_request(ctx.anthropic, "/v1/messages"), "anthropic-version"), "2023-06-01",
       "default anthropic-version")


@test()
def anthropic_stream_keeps_every_event(ctx):
    content = directive(events=3, thinking=1)
    hdrs = {"anthropic-version": "2023-06-01", "x-api-key": ANTHROPIC_KEY}
    _, _, direct = Gateway.__dict__["stream"](DirectMock(ctx.anthropic.port), "/v1/messages",
                                              messages(content, stream=True), headers=hdrs,
                                              key="unused")
    status, h, via = ctx.gw.stream("/v1/messages", messages(content, stream=True),
                                   headers={"anthropic-version": "2023-06-01"})
    eq(status, 200, "status")
    norm = lambda ls: re.sub(rb"msg_mock\d+", b"X", b"".join(raw for _, raw in ls))
    eq(norm(via), norm(direct), "the stream passes byte for byte")
    names = [n for n, _ in sse_events(via)]
    for want in ("message_start", "ping", "content_block_delta", "message_delta", "message_stop"):
        check(want in names, "missing event " + want)
    check(b"signature_delta" in norm(via) and b"thinking_delta" in norm(via), "thinking kept")


# ---- upstream errors ----

@test()
def upstream_error_status_body_and_retry_after(ctx):
    status, h, data = ctx.gw.call("POST", "/v1/chat/completions",
                                  body=chat(directive(status=429, retry_after=7)))
    eq(status, 429, "status")
    eq(h.get("retry-after"), "7", "retry-after")
    eq(json.loads(data)["error"]["code"], "rate_limit_exceeded", "upstream error body kept")
    status, h, data = ctx.gw.call("POST", "/v1/messages",
                                  body=messages(directive(status=529)))
    eq(status, 529, "anthropic status kept on passthrough")
    eq(json.loads(data)["error"]["type"], "overloaded_error", "anthropic error body")
    # A stream request that fails before any byte keeps the status too.
    status, _, lines = ctx.gw.stream("/v1/chat/completions",
                                     chat(directive(status=503), stream=True))
    eq(status, 503, "stream request status")


@test()
def upstream_garbage_becomes_502(ctx):
    status, h, data = ctx.gw.call("POST", "/v1/chat/completions", body=chat(directive(garbage=1)))
    eq(status, 502, "status")
    eq(json.loads(data)["error"]["type"], "server_error", "openai shape")
    status, h, data = ctx.gw.call("POST", "/v1/messages", body=messages(directive(garbage=1)))
    eq(status, 502, "status")
    doc = json.loads(data)
    eq((doc["type"], doc["error"]["type"]), ("error", "api_error"), "anthropic shape")


@test()
def upstream_reset_mid_stream_ends_with_error_event(ctx):
    status, _, lines = ctx.gw.stream("/v1/chat/completions",
                                     chat(directive(events=5, reset_after=3), stream=True))
    eq(status, 200, "status")
    events = sse_events(lines)
    check((None, "[DONE]") not in events, "no clean end after a reset")
    last = json.loads(events[-1][1])
    check("error" in last and last["error"]["type"] == "server_error", "error event: %r" % last)
    status, _, lines = ctx.gw.stream("/v1/messages",
                                     messages(directive(events=5, reset_after=4), stream=True))
    events = sse_events(lines)
    eq(events[-1][0], "error", "anthropic error event")
    check("message_stop" not in [n for n, _ in events], "no message_stop after a reset")
    eq(json.loads(events[-1][1])["type"], "error", "anthropic error payload")


def requests_by_status_class(ctx):
    """antigateway_requests_total summed over every series, by status class."""
    status, _, body = ctx.gw.call("GET", "/metrics", key=METRICS_TOKEN)
    eq(status, 200, "/metrics")
    counts = {}
    for line in body.decode().splitlines():
        m = re.match(r'antigateway_requests_total\{.*status="([0-9a-z]+)"\} (\d+)$', line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + int(m.group(2))
    return counts


def newest_usage_status(ctx, want):
    """The newest usage row's (status, streamed) once it is `want`, or as it
    is after 5 s: rows reach the database a few milliseconds after the
    response (through the usage ring)."""
    import sqlite3

    def newest():
        c = sqlite3.connect(os.path.join(ctx.gw.var, "antigw.db"), timeout=10)
        try:
            return c.execute("SELECT status, streamed FROM usage ORDER BY id DESC LIMIT 1"
                             ).fetchone()
        finally:
            c.close()
    end = time.time() + 5
    while newest() != want and time.time() < end:
        time.sleep(0.02)
    return newest()


@test()
def broken_streams_are_recorded_as_errors(ctx):
    # The head said 200, then the stream broke and ended with an error
    # event: the usage row and antigateway_requests_total say 502, and a
    # stream that ended properly still says 200.
    cases = [("/v1/chat/completions", chat(directive(events=5, reset_after=3), stream=True)),
             ("/v1/messages", messages(directive(events=5, reset_after=4), stream=True)),
             ("/v1/chat/completions", chat(directive(no_done=1), stream=True)),
             ("/v1/messages", messages(directive(no_done=1), stream=True))]
    for path, body in cases:
        before = requests_by_status_class(ctx)
        status, _, _ = ctx.gw.stream(path, body)
        eq(status, 200, "the head went out as 200: %s" % path)
        eq(newest_usage_status(ctx, (502, 1)), (502, 1), "usage row of a broken stream: %s" % path)
        after = requests_by_status_class(ctx)
        eq(after.get("5xx", 0) - before.get("5xx", 0), 1, "counted as 5xx: %s" % path)
        eq(after.get("2xx", 0), before.get("2xx", 0), "not as 2xx: %s" % path)
    before = requests_by_status_class(ctx)
    status, _, _ = ctx.gw.stream("/v1/chat/completions", chat(directive(events=3), stream=True))
    eq(newest_usage_status(ctx, (200, 1)), (200, 1), "a whole stream")
    eq(requests_by_status_class(ctx).get("2xx", 0) - before.get("2xx", 0), 1, "counted as 2xx")


@test()
def stream_without_final_event_is_not_clean(ctx):
    _, _, lines = ctx.gw.stream("/v1/chat/completions", chat(directive(no_done=1), stream=True))
    events = sse_events(lines)
    check("error" in json.loads(events[-1][1]), "an error event ends the stream")
    _, _, lines = ctx.gw.stream("/v1/messages", messages(directive(no_done=1), stream=True))
    eq(sse_events(lines)[-1][0], "error", "anthropic")


@test()
def upstream_unreachable_is_502_and_timeout_504(ctx):
    status, _, data = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x", model="dead-1"))
    eq(status, 502, "unreachable")
    check("unreachable" in json.loads(data)["error"]["message"], data)
    status, _, data = ctx.gw.call("POST", "/v1/chat/completions",
                                  body=chat(directive(stall_ms=4000)))
    eq(status, 504, "idle timeout")
    status, _, data = ctx.gw.call("POST", "/v1/messages", body=messages(directive(stall_ms=4000)))
    eq(status, 504, "idle timeout, anthropic")
    eq(json.loads(data)["type"], "error", "anthropic shape")


# ---- conversion between protocols ----

@test()
def openai_client_reaches_anthropic_provider(ctx):
    ctx.anthropic.reset()
    body = {"model": "anthropic/claude-sonnet-4-20250514",
            "messages": [{"role": "system", "content": "be brief"},
                         {"role": "user", "content": "hi " + directive(events=2)}],
            "stop": "END", "user": "u-1"}
    s, h, data = ctx.gw.call("POST", "/v1/chat/completions", body=body)
    eq(s, 200, "status")
    doc = json.loads(data)
    eq((doc["object"], doc["model"]), ("chat.completion", "anthropic/claude-sonnet-4-20250514"),
       "OpenAI shape, the client's model name")
    eq(doc["choices"][0]["message"]["content"], "Hello0 Hello1", "content")
    eq(doc["choices"][0]["finish_reason"], "stop", "finish_reason")
    req = last_request(ctx.anthropic, "/v1/messages")
    sent = json.loads(body_of(req))
    eq(sent["model"], "claude-sonnet-4-20250514", "prefix stripped")
    eq(sent["system"], "be brief", "system lifted to the top level")
    eq(sent["max_tokens"], 4096, "the documented default max_tokens")
    eq(sent["stop_sequences"], ["END"], "stop -> stop_sequences")
    eq(sent["metadata"], {"user_id": "u-1"}, "user -> metadata.user_id")
    check("stream" not in sent, "a non-streaming client gets a non-streamed call: %r" % sent)
    eq(header(req, "x-api-key"), ANTHROPIC_KEY, "provider key")
    eq(header(req, "anthropic-version"), "2023-06-01", "anthropic-version")
    check(CLIENT_KEY not in json.dumps(req["headers"]), "client key never upstream")


@test()
def anthropic_client_reaches_openai_provider_streaming_tools(ctx):
    ctx.openai.reset()
    body = messages("weather? " + directive(tool="get_weather"), model="gpt-4o-mini", stream=True,
                    tools=[{"name": "get_weather", "description": "d",
                            "input_schema": {"type": "object", "properties": {}}}])
    s, h, lines = ctx.gw.stream("/v1/messages", body, headers={"anthropic-version": "2023-06-01"})
    eq(s, 200, "status")
    events = sse_events(lines)
    names = [n for n, _ in events]
    eq(names[0], "message_start", "first event")
    eq(names[-1], "message_stop", "last event")
    start = [json.loads(d) for n, d in events if n == "content_block_start"][0]
    eq((start["content_block"]["type"], start["content_block"]["name"]), ("tool_use", "get_weather"),
       "tool_use block")
    args = "".join(json.loads(d)["delta"]["partial_json"] for n, d in events
                   if n == "content_block_delta")
    eq(json.loads(args), {"location": "Paris, France", "unit": "celsius"}, "tool input")
    delta = [json.loads(d) for n, d in events if n == "message_delta"][0]
    eq(delta["delta"]["stop_reason"], "tool_use", "stop_reason")
    sent = json.loads(body_of(last_request(ctx.openai, "/v1/chat/completions")))
    eq(sent["stream_options"], {"include_usage": True}, "usage always asked of OpenAI")
    eq(sent["tools"][0]["function"]["name"], "get_weather", "tools converted")
    eq(sent["max_completion_tokens"], 256, "max_tokens")


# Tool output as agents send it: code with quotes, backslashes, newlines,
# tabs, non-ASCII and an escaped NUL, so that long strings hold escapes.
def tool_output(i):
    return ("#include \"module_%d.h\"\n\tint copy(char *d, const char *s) {\n"
            "\t\twhile ((*d++ = *s++) != '\\0');\n\t}\n/* é 日本 \u0000 %s */" % (i, "x" * 150))


@test()
def long_conversations_convert_whole(ctx):
    """Bodies of agent size (past the size from which the decoders jump over
    long values instead of scanning them, 8 KB) convert whole both ways:
    every tool call, result and text arrives upstream, in order, exact."""
    rounds = 60
    ctx.anthropic.reset()
    msgs = [{"role": "system", "content": "be brief"}]
    for i in range(rounds):
        msgs.append({"role": "user", "content": [{"type": "text", "text": "step %d" % i}]})
        msgs.append({"role": "assistant", "content": "reading",
                     "tool_calls": [{"id": "call_%d_%s" % (i, k), "type": "function",
                                     "function": {"name": "read_file",
                                                  "arguments": json.dumps({"path": "f%d%s" % (i, k),
                                                                           "pad": "y" * 140})}}
                                    for k in "ab"]})
        for k in "ab":
            msgs.append({"role": "tool", "tool_call_id": "call_%d_%s" % (i, k),
                         "content": tool_output(i) + k})
    msgs.append({"role": "user", "content": "now the tests " + directive(events=1)})
    body = {"model": "anthropic/claude-sonnet-4-20250514", "messages": msgs}
    check(len(json.dumps(body)) > 40000, "a long body")
    s, h, data = ctx.gw.call("POST", "/v1/chat/completions", body=body)
    eq(s, 200, "status")
    sent = json.loads(body_of(last_request(ctx.anthropic, "/v1/messages")))
    eq(sent["system"], "be brief", "system")
    uses = [b for m in sent["messages"] if m["role"] == "assistant" for b in m["content"]
            if b["type"] == "tool_use"]
    eq([(u["id"], u["input"]["path"]) for u in uses],
       [("call_%d_%s" % (i, k), "f%d%s" % (i, k)) for i in range(rounds) for k in "ab"],
       "every tool call, in order")

    def text(c):
        return c if isinstance(c, str) else "".join(b["text"] for b in c)
    results = [(b["tool_use_id"], text(b["content"])) for m in sent["messages"]
               if m["role"] == "user" and isinstance(m["content"], list)
               for b in m["content"] if b["type"] == "tool_result"]
    eq(results, [("call_%d_%s" % (i, k), tool_output(i) + k) for i in range(rounds) for k in "ab"],
       "every tool result, exact")
    eq(sent["messages"][-1]["content"][-1]["text"], "now the tests " + directive(events=1),
       "the last user text")

    # and back: an Anthropic client's long conversation to an OpenAI model
    ctx.openai.reset()
    amsgs = []
    for i in range(rounds):
        content = [{"type": "text", "text": "step %d" % i}]
        if i:
            content = [{"type": "tool_result", "tool_use_id": "toolu_%d" % (i - 1),
                        "content": [{"type": "text", "text": tool_output(i)}]}] + content
        amsgs.append({"role": "user", "content": content})
        amsgs.append({"role": "assistant", "content": [
            {"type": "text", "text": "reading"},
            {"type": "tool_use", "id": "toolu_%d" % i, "name": "read_file",
             "input": {"path": "f%d" % i, "nested": [[{"pad": "z" * 140}]]}}]})
    amsgs.append({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_%d" % (rounds - 1), "content": "done"},
        {"type": "text", "text": "tests " + directive(events=1)}]})
    s, h, data = ctx.gw.call("POST", "/v1/messages",
                             body={"model": "gpt-4o-mini", "max_tokens": 64, "messages": amsgs},
                             headers={"anthropic-version": "2023-06-01"})
    eq(s, 200, "status")
    sent = json.loads(body_of(last_request(ctx.openai, "/v1/chat/completions")))
    calls = [c for m in sent["messages"] if m["role"] == "assistant" for c in m["tool_calls"]]
    eq([(c["id"], json.loads(c["function"]["arguments"])) for c in calls],
       [("toolu_%d" % i, {"path": "f%d" % i, "nested": [[{"pad": "z" * 140}]]})
        for i in range(rounds)], "every tool call, in order, its input exact")
    tools = [(m["tool_call_id"], text(m["content"])) for m in sent["messages"]
             if m["role"] == "tool"]
    eq(tools, [("toolu_%d" % (i - 1), tool_output(i)) for i in range(1, rounds)] +
       [("toolu_%d" % (rounds - 1), "done")], "every tool result, exact")


@test()
def converted_errors_keep_status_and_shape(ctx):
    s, h, data = ctx.gw.call("POST", "/v1/chat/completions",
                             body=chat(directive(status=529), model="claude-sonnet-4-20250514"))
    eq(s, 503, "529 becomes 503 for an OpenAI client")
    check("error" in json.loads(data), data)
    s, h, data = ctx.gw.call("POST", "/v1/chat/completions",
                             body=chat(directive(status=429, retry_after=3),
                                       model="claude-sonnet-4-20250514"))
    eq((s, h.get("retry-after")), (429, "3"), "429 and retry-after kept")
    # A provider refusing the gateway's key: a 502 in the client's shape,
    # never the provider's body (it may quote the key).
    for status in (401, 403):
        s, h, data = ctx.gw.call("POST", "/v1/messages", body=messages(directive(status=status),
                                                                       model="gpt-4o-mini"))
        eq(s, 502, "upstream %d on a converted call" % status)
        doc = json.loads(data)
        eq((doc["type"], doc["error"]["type"]), ("error", "api_error"), "Anthropic shape")
        eq(doc["error"]["message"], "the provider rejected the gateway's credentials", "message")
        s, h, data = ctx.gw.call("POST", "/v1/chat/completions", body=chat(directive(status=status)))
        eq(s, 502, "upstream %d on a passthrough call" % status)
        check(b"mock" not in data and b"API key" not in data, data)
        s, h, lines = ctx.gw.stream("/v1/chat/completions",
                                    chat(directive(status=status), stream=True))
        eq(s, 502, "upstream %d on a stream" % status)
    _, _, lines = ctx.gw.stream("/v1/chat/completions",
                                chat(directive(events=5, reset_after=4), stream=True,
                                     model="claude-sonnet-4-20250514"))
    events = sse_events(lines)
    check((None, "[DONE]") not in events, "no [DONE] after a reset")
    check("error" in json.loads(events[-1][1]), "ends with an error event")


def text_of_openai_stream(events):
    return "".join(json.loads(d)["choices"][0]["delta"].get("content") or ""
                   for _, d in events if d != "[DONE]" and json.loads(d)["choices"])


@test()
def upstream_answer_form_follows_the_client(ctx):
    # Each client's choice goes upstream, passthrough and converted alike.
    ctx.openai.reset()
    ctx.anthropic.reset()
    eq(ctx.gw.call("POST", "/v1/messages", body=messages("x"))[0], 200, "anthropic")
    check("stream" not in json.loads(body_of(last_request(ctx.anthropic, "/v1/messages"))),
          "non-streamed passthrough call")
    eq(ctx.gw.call("POST", "/v1/messages", body=messages("x", model="gpt-4o-mini"))[0], 200, "conv")
    sent = json.loads(body_of(last_request(ctx.openai, "/v1/chat/completions")))
    check("stream" not in sent and "stream_options" not in sent, "non-streamed call: %r" % sent)
    # A provider that answers JSON to a stream request: a streaming client
    # still gets a proper stream of that answer, in both protocols.
    s, h, lines = ctx.gw.stream("/v1/chat/completions",
                                chat(directive(answer="json", events=2), stream=True))
    eq(s, 200, "status")
    check(h["content-type"].startswith("text/event-stream"), h["content-type"])
    events = sse_events(lines)
    eq(events[-1], (None, "[DONE]"), "last event")
    eq(text_of_openai_stream(events), "Hello0 Hello1", "text")
    check(all('"choices":[]' not in d for _, d in events), "no usage chunk unasked")
    s, h, lines = ctx.gw.stream("/v1/messages", messages(directive(answer="json"), stream=True))
    eq(s, 200, "status")
    names = [n for n, _ in sse_events(lines)]
    eq((names[0], names[-1]), ("message_start", "message_stop"), "anthropic stream of a JSON answer")
    s, h, lines = ctx.gw.stream("/v1/messages", messages(directive(answer="json"), stream=True,
                                                         model="gpt-4o-mini"))
    eq(s, 200, "status, converted")
    events = sse_events(lines)
    eq((events[0][0], events[-1][0]), ("message_start", "message_stop"), "converted stream")
    text = "".join(json.loads(d)["delta"].get("text", "") for n, d in events
                   if n == "content_block_delta")
    eq(text, "Hello0 Hello1 Hello2", "converted text")
    # ...and one that streams to a non-stream request: the folded object.
    s, h, data = ctx.gw.call("POST", "/v1/chat/completions", body=chat(directive(answer="sse")))
    eq(s, 200, "status")
    doc = json.loads(data)
    eq((doc["object"], doc["choices"][0]["message"]["content"]),
       ("chat.completion", "Hello0 Hello1 Hello2"), "folded passthrough answer")
    s, h, data = ctx.gw.call("POST", "/v1/messages", body=messages(directive(answer="sse")))
    eq(s, 200, "status")
    doc = json.loads(data)
    eq((doc["type"], doc["content"][0]["text"]), ("message", "Hello0 Hello1 Hello2"),
       "folded anthropic answer")
    s, h, data = ctx.gw.call("POST", "/v1/chat/completions",
                             body=chat(directive(answer="sse"), model="claude-sonnet-4-20250514"))
    eq(s, 200, "status, converted")
    eq(json.loads(data)["choices"][0]["message"]["content"], "Hello0 Hello1 Hello2", "converted")


def usage_row(ctx, input_tokens):
    """The newest row with `input_tokens`, waiting up to 5 s for it to
    arrive through the usage ring."""
    import sqlite3

    def row():
        c = sqlite3.connect(os.path.join(ctx.gw.var, "antigw.db"), timeout=10)
        try:
            return c.execute("SELECT input_tokens, output_tokens, tokens_estimated FROM usage"
                             " WHERE input_tokens = ? ORDER BY id DESC LIMIT 1",
                             (input_tokens,)).fetchone()
        finally:
            c.close()
    end = time.time() + 5
    while row() is None and time.time() < end:
        time.sleep(0.02)
    return row()


def usage_rows_of(ctx, models):
    """The usage rows of these models, one per model in the order given
    (provider, input_tokens, output_tokens, tokens_estimated, ttft_ms,
    streamed), waiting up to 5 s for them to arrive through the usage ring."""
    import sqlite3

    def rows():
        c = sqlite3.connect(os.path.join(ctx.gw.var, "antigw.db"), timeout=10)
        try:
            got = {r[0]: r[1:] for r in c.execute(
                "SELECT model, provider, input_tokens, output_tokens, tokens_estimated, ttft_ms,"
                " streamed FROM usage WHERE model IN (%s)" % ",".join("?" * len(models)),
                models)}
            return [got[m] for m in models if m in got]
        finally:
            c.close()
    end = time.time() + 5
    got = rows()
    while len(got) < len(models) and time.time() < end:
        time.sleep(0.02)
        got = rows()
    return got


@test()
def converted_stream_usage_and_ttft(ctx):
    # An answer a codec converts is read by the codec and not by the relay's
    # usage tap (relay.h): the counts, the time to first token and, when the
    # upstream reports no usage, the output that the estimate counts all come
    # from the conversion. (Models of their own, to find the rows.)
    head = {"anthropic-version": "2023-06-01"}
    models = ["gpt-conv-usage-a", "claude-conv-usage-b", "gpt-conv-usage-c"]
    s, _, lines = ctx.gw.stream("/v1/messages", messages(
        directive(input_tokens=4331, output_tokens=17, first_delay_ms=30), model=models[0],
        stream=True), headers=head)
    eq(s, 200, "Anthropic client, OpenAI provider")
    check(any(e == "message_stop" for e, _ in sse_events(lines)), "converted to the end")
    s, _, lines = ctx.gw.stream("/v1/chat/completions", chat(
        directive(input_tokens=4332, output_tokens=19), model=models[1], stream=True))
    eq(s, 200, "OpenAI client, Anthropic provider")
    # 43 bytes of text in 4 deltas, and no usage reported at all.
    s, _, lines = ctx.gw.stream("/v1/messages", messages(
        directive(no_usage=1, events=4, text="abcdefghi"), model=models[2], stream=True),
        headers=head)
    eq(s, 200, "an upstream that reports no usage")
    rows = usage_rows_of(ctx, models)
    eq(len(rows), 3, "one row per call: %r" % rows)
    eq(rows[0][:4], ("mock-openai", 4331, 17, 0), "reported counts, converted from OpenAI")
    eq(rows[1][:4], ("mock-anthropic", 4332, 19, 0), "reported counts, converted from Anthropic")
    check(all(r[4] is not None and r[4] >= 0 and r[5] == 1 for r in rows),
          "streamed, with a time to first token: %r" % rows)
    check(rows[0][4] >= 30, "ttft counts the upstream's first delay: %r" % (rows[0],))
    eq((rows[2][0], rows[2][3]), ("mock-openai", 1), "estimated")
    eq(rows[2][2], (len("abcdefghi0 abcdefghi1 abcdefghi2 abcdefghi3") + 3) // 4,
       "output estimated from the converted text")


@test()
def passthrough_stream_usage_is_exact(ctx):
    # The client did not ask for the usage chunk: the gateway asks upstream
    # (a splice, nothing else changes), counts from it, and keeps it back.
    ctx.openai.reset()
    body = chat(directive(input_tokens=4321, output_tokens=12), stream=True)
    s, _, lines = ctx.gw.stream("/v1/chat/completions", body)
    eq(s, 200, "status")
    events = sse_events(lines)
    check(all('"choices":[]' not in d for _, d in events), "the usage chunk is not relayed")
    eq(events[-1], (None, "[DONE]"), "last event")
    sent = body_of(last_request(ctx.openai, "/v1/chat/completions"))
    want = json.dumps(body).encode()
    eq(sent, b'{"stream_options":{"include_usage":true},' + want[1:], "spliced body")
    eq(usage_row(ctx, 4321), (4321, 12, 0), "usage row with the real counts")
    # A client that asked keeps its chunk, byte for byte, and the body as sent.
    body = chat(directive(input_tokens=4322, output_tokens=13), stream=True,
                stream_options={"include_usage": True})
    s, _, lines = ctx.gw.stream("/v1/chat/completions", body)
    chunk = [raw for _, raw in lines if b'"choices":[]' in raw]
    eq(len(chunk), 1, "usage chunk kept")
    check(b'"prompt_tokens":4322' in chunk[0], chunk[0])
    eq(body_of(last_request(ctx.openai, "/v1/chat/completions")), json.dumps(body).encode(),
       "body untouched")
    eq(usage_row(ctx, 4322), (4322, 13, 0), "usage row")
    # include_usage false or stream_options without it: the value is set.
    for opts, want_opts in (({"include_usage": False}, b'{"include_usage":true}'),
                            ({}, b'{"include_usage":true}'),
                            (None, b'{"include_usage":true}')):
        body = chat("x", stream=True, stream_options=opts)
        s, _, lines = ctx.gw.stream("/v1/chat/completions", body)
        eq(s, 200, "status for %r" % opts)
        sent = json.loads(body_of(last_request(ctx.openai, "/v1/chat/completions")))
        eq(sent["stream_options"], json.loads(want_opts), "stream_options for %r" % opts)
        check(all('"choices":[]' not in d for _, d in sse_events(lines)), "chunk kept back")


@test()
def duplicate_top_level_keys_refused(ctx):
    for path, body in (("/v1/chat/completions",
                        b'{"model":"gpt-4o-mini","model":"claude-sonnet-4-20250514",'
                        b'"messages":[{"role":"user","content":"x"}]}'),
                       ("/v1/messages",
                        b'{"model":"claude-sonnet-4-20250514","max_tokens":5,"stream":false,'
                        b'"messages":[],"str\\u0065am":true}')):
        s, _, d = ctx.gw.call("POST", path, body=body)
        eq(s, 400, "duplicate member on " + path)
        doc = json.loads(d)
        msg = doc["error"]["message"]
        check("more than once" in msg, msg)
        if path == "/v1/messages":
            eq(doc["type"], "error", "Anthropic shape")
    # The same key in a nested object is not a top-level duplicate.
    s, _, _ = ctx.gw.call("POST", "/v1/chat/completions",
                          body=chat("x", metadata={"a": 1}, extra={"a": 1}))
    eq(s, 200, "nested keys may repeat across objects")


@test()
def converted_streams_survive_utf8_splits_and_crlf(ctx):
    want = "".join(("" if i == 0 else " ") + "Grüße€%d" % i for i in range(3))
    for extra in (dict(split=1), dict(split=1, crlf=1)):
        _, _, lines = ctx.gw.stream("/v1/chat/completions",
                                    chat(directive(**extra), stream=True,
                                         model="claude-sonnet-4-20250514"))
        events = sse_events(lines)
        eq(events[-1], (None, "[DONE]"), "clean end for %r" % extra)
        text = "".join(json.loads(d)["choices"][0]["delta"].get("content") or ""
                       for _, d in events[:-1] if json.loads(d)["choices"])
        eq(text, want, "assembled text for %r" % extra)
        _, _, lines = ctx.gw.stream("/v1/messages",
                                    messages(directive(**extra), stream=True, model="gpt-4o-mini"))
        text = "".join(json.loads(d)["delta"].get("text", "") for n, d in sse_events(lines)
                       if n == "content_block_delta")
        eq(text, want, "assembled text, Anthropic client, for %r" % extra)


@test()
def count_tokens_forwarded_or_estimated(ctx):
    s, h, data = ctx.gw.call("POST", "/v1/messages/count_tokens",
                             body={"model": "claude-sonnet-4-20250514",
                                   "messages": [{"role": "user",
                                                 "content": directive(input_tokens=77)}]})
    eq((s, json.loads(data)), (200, {"input_tokens": 77}), "the Anthropic provider counts")
    check("x-antigateway-token-count" not in h, "not marked as an estimate")
    s, h, data = ctx.gw.call("POST", "/v1/messages/count_tokens",
                             body={"model": "gpt-4o-mini", "system": "s" * 40,
                                   "messages": [{"role": "user", "content": "x" * 400}]})
    eq(s, 200, "status")
    doc = json.loads(data)
    eq(h.get("x-antigateway-token-count"), "estimate", "marked as an estimate")
    eq(doc["estimated"], True, "estimate field")
    check(100 < doc["input_tokens"] < 140, "estimate of ~440 bytes: %r" % doc)


# ---- the client leaving ----

def leave_mid_stream(ctx, delay_ms):
    """Reads 3 events of a 100-event stream (events delay_ms apart), then
    closes the connection; returns (seconds from the close until the
    upstream transfer stopped, events the upstream had sent)."""
    ctx.openai.reset()
    closed_at = {}

    def on_line(line, lines, conn):
        if sum(1 for _, l in lines if l.startswith(b"data: {")) >= 3:
            closed_at["t"] = time.time()
            conn.sock.close()
            return False
    try:
        ctx.gw.stream("/v1/chat/completions",
                      chat(directive(events=100, delay_ms=delay_ms), stream=True),
                      on_line=on_line)
    except OSError:
        pass
    stats = wait_for(lambda: (lambda s: s if s["aborted"] else None)(ctx.openai.stats()), 10,
                     "the upstream transfer to stop")
    return stats["aborted"][0]["time"] - closed_at["t"], stats["aborted"][0]["events_sent"]


@test(timeout=40)
def client_disconnect_stops_upstream(ctx):
    lag, sent = leave_mid_stream(ctx, 200)
    check(lag < 1.0, "upstream stopped %.2fs after the client left" % lag)
    check(sent < 20, "the stream was cut short")
    # Every worker still serves.
    for _ in range(PROCESSES * 4):
        eq(ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"))[0], 200, "next request")


# ---- bad input ----

@test()
def bad_input_gets_protocol_shaped_errors(ctx):
    gw = ctx.gw
    def openai_err(status, data):
        doc = json.loads(data)
        check(set(doc["error"]) >= {"message", "type", "param", "code"}, data)
        return doc["error"]

    def anthropic_err(data):
        doc = json.loads(data)
        eq(doc["type"], "error", "anthropic envelope")
        return doc["error"]

    s, _, d = gw.call("POST", "/v1/chat/completions", body=b'{"model": "gpt-4o-mini", "messages": [')
    eq(s, 400, "broken JSON")
    check("JSON" in openai_err(s, d)["message"])
    s, _, d = gw.call("POST", "/v1/messages", body=b'{"model": nope}')
    eq((s, anthropic_err(d)["type"]), (400, "invalid_request_error"), "broken JSON, anthropic")
    s, _, d = gw.call("POST", "/v1/chat/completions", body=b"[1,2]")
    eq(s, 400, "array body")
    s, _, d = gw.call("POST", "/v1/chat/completions", body=b"")
    eq(s, 400, "empty body")
    s, _, d = gw.call("POST", "/v1/chat/completions", body={"model": 42, "messages": []})
    eq(s, 400, "model of the wrong type")
    check("model" in openai_err(s, d)["message"])
    s, _, d = gw.call("POST", "/v1/chat/completions", body=dict(chat("x"), stream="yes"))
    eq(s, 400, "stream of the wrong type")
    s, _, d = gw.call("POST", "/v1/chat/completions", body=b"[" * 5000 + b"]" * 5000)
    eq(s, 400, "nesting too deep")
    s, _, d = gw.call("POST", "/v1/chat/completions", body=chat("x", model="no-such-model"))
    eq((s, openai_err(s, d)["code"]), (404, "model_not_found"), "unknown model")
    check("no-such-model" in openai_err(s, d)["message"])
    s, _, d = gw.call("POST", "/v1/messages", body=messages("x", model="no-such-model"))
    eq((s, anthropic_err(d)["type"]), (404, "not_found_error"), "unknown model, anthropic")
    s, _, d = gw.call("POST", "/v1/chat/completions", body=chat("x", model="claude-3-haiku", n=2))
    eq(s, 400, "a parameter the other protocol cannot honour")
    check("n" in openai_err(s, d)["message"], d)
    s, _, d = gw.call("GET", "/v1/nothing-here")
    eq(s, 404, "unknown path")
    openai_err(s, d)
    s, h, d = gw.call("GET", "/v1/chat/completions")
    eq(s, 405, "wrong method")
    check("POST" in h.get("allow", ""), "Allow header")
    s, _, d = gw.call("PUT", "/v1/messages", body=b"{}")
    eq((s, anthropic_err(d)["type"]), (405, "invalid_request_error"), "wrong method, anthropic")
    s, _, d = gw.call("POST", "/v1/chat/completions",
                      body=b'{"model":"gpt-4o-mini","pad":"' + b"a" * (MAX_BODY + 10) + b'"}')
    eq(s, 413, "body over max_body_bytes")
    openai_err(s, d)
    s, _, d = gw.call("POST", "/v1/messages",
                      body=b'{"pad":"' + b"a" * (MAX_BODY + 10) + b'"}')
    eq((s, anthropic_err(d)["type"]), (413, "request_too_large"), "413, anthropic")
    # The status is what counts: a web server that refuses the header itself
    # (Caddy) may close at once, and the reset can then cut the body short.
    c = gw.conn(30)
    try:
        c.request("POST", "/v1/messages", body=json.dumps(messages("x")),
                  headers={"Authorization": "Bearer " + CLIENT_KEY,
                           "Content-Type": "application/json",
                           "anthropic-version": "2023-06-01\x7f"})
        s = c.getresponse().status
    finally:
        c.close()
    check(s == 400, "a control character in anthropic-version: %d" % s)


@test()
def client_keys_are_checked(ctx):
    gw = ctx.gw
    s, _, d = gw.call("POST", "/v1/chat/completions", body=chat("x"), key=None)
    eq(s, 401, "missing key")
    eq(json.loads(d)["error"]["type"], "authentication_error", "openai shape")
    s, _, d = gw.call("POST", "/v1/chat/completions", body=chat("x"), key="wrong")
    eq(s, 401, "wrong bearer key")
    s, _, d = gw.call("POST", "/v1/messages", body=messages("x"), key="wrong", auth="x-api-key")
    eq(s, 401, "wrong x-api-key")
    eq(json.loads(d)["error"]["type"], "authentication_error", "anthropic shape")
    eq(json.loads(d)["type"], "error", "anthropic envelope")
    s, _, d = gw.call("POST", "/v1/messages", body=messages("x"), key=CLIENT_KEY, auth="x-api-key")
    eq(s, 200, "right x-api-key")
    s, _, d = gw.call("GET", "/v1/models", key=CLIENT_KEY + "x")
    eq(s, 401, "models need the key too")


# ---- size and concurrency ----

@test()
def one_megabyte_body_passes_intact(ctx):
    ctx.openai.reset()
    filler = "".join(chr(0x20 + (i * 7919) % 90) for i in range(1024 * 1024))
    body = json.dumps(chat(filler + " é€\U0001F600")).encode()
    check(len(body) > 1024 * 1024, "the body is over 1 MB")
    s, _, _ = ctx.gw.call("POST", "/v1/chat/completions", body=body)
    eq(s, 200, "status")
    got = body_of(last_request(ctx.openai, "/v1/chat/completions"))
    eq(hashlib.sha256(got).hexdigest(), hashlib.sha256(body).hexdigest(), "sha256 of the body")
    check(header(last_request(ctx.openai, "/v1/chat/completions"), "expect") is None,
          "no Expect: 100-continue")


@test(timeout=60)
def fifty_concurrent_streams_complete(ctx):
    # Each stream lasts 1 s and the pool has a thread for each: served side
    # by side they all end in about that time. A pool whose idle workers
    # never got their turn (a lost hand-over of the lead, fcgi_server.h)
    # serves about two at a time per process, as workers finish: 18 s.
    results = [None] * 50

    def one(i):
        try:
            if i % 2:
                s, _, lines = ctx.gw.stream("/v1/messages", messages(
                    directive(events=10, delay_ms=100, text="a%d_" % i), stream=True))
                ev = sse_events(lines)
                text = "".join(json.loads(d)["delta"].get("text", "") for n, d in ev
                               if n == "content_block_delta")
                ok = ev[-1][0] == "message_stop"
            else:
                s, _, lines = ctx.gw.stream("/v1/chat/completions", chat(
                    directive(events=10, delay_ms=100, text="o%d_" % i), stream=True))
                ev = sse_events(lines)
                text = "".join(json.loads(d)["choices"][0]["delta"].get("content") or ""
                               for _, d in ev[:-1] if json.loads(d)["choices"])
                ok = ev[-1][1] == "[DONE]"
            word = ("a%d_" if i % 2 else "o%d_") % i
            want = "".join(("" if k == 0 else " ") + word + str(k) for k in range(10))
            results[i] = (s == 200 and ok and text == want, (s, ok, text[:40]))
        except Exception as e:  # recorded, asserted below
            results[i] = (False, repr(e))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - began
    bad = [(i, r) for i, r in enumerate(results) if not r or not r[0]]
    eq(bad, [], "streams that failed")
    # mod_fcgid gives a process one request at a time and starts a process
    # per waiting request, at its own pace (about 4 s for these 50); one at a
    # time would take 50 s.
    bound = 10 if ctx.gw.server == "fcgid" else 4
    check(took < bound, "50 streams of 1 s each took %.1f s together" % took)


@test(timeout=60)
def an_idle_pool_stops_at_once(ctx):
    # Idle workers wait for their turn to take connections (fcgi_server.h);
    # a stop must end those waits, not leave the process to its grace period.
    for _ in range(20):
        eq(ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"))[0], 200, "status")
    marker = len(ctx.gw.log_text())
    pids = ctx.gw.pool_processes()
    began = time.monotonic()
    ctx.gw.stop_pool()
    took = time.monotonic() - began
    log = ctx.gw.log_text()[marker:]
    check(took < 3, "the idle pool stopped in %.1f s" % took)
    for pid in pids:
        check("antigw[%d] info: stopped" % pid in log, "process %d says it stopped" % pid)
    check("grace period over" not in log, "no process waited out its grace period")
    ctx.gw.restart_pool()


@test(timeout=60)
def upstream_connections_are_reused(ctx):
    ctx.openai.reset()
    for _ in range(200):
        s, _, _ = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"))
        eq(s, 200, "status")
    accepts = ctx.openai.stats()["accepts"]
    conns = {r["conn_id"] for r in ctx.openai.requests() if r["path"] == "/v1/chat/completions"}
    eq(len([r for r in ctx.openai.requests() if r["path"] == "/v1/chat/completions"]), 200,
       "requests seen upstream")
    # Connections opened before this test may carry some of the requests, so
    # count both the new ones and every distinct connection that was used.
    check(accepts <= PROCESSES * THREADS and len(conns) <= PROCESSES * THREADS,
          "200 requests used %d connections, %d of them new (limit %d)"
          % (len(conns), accepts, PROCESSES * THREADS))


# ---- the binary and the pool ----

@test()
def version_and_check_config(ctx):
    out = subprocess.run([FCGI_BIN, "--version"], capture_output=True, text=True)
    eq(out.returncode, 0, "--version exit")
    check(re.match(r"antigw-fcgi \d+\.\d+\.\d+", out.stdout), out.stdout)
    bad = os.path.join(ctx.work, "bad.cfg")
    with open(bad, "w") as f:
        f.write('server: {\n  threads = 4;\n  thread = 5;\n};\n')
    out = subprocess.run([FCGI_BIN, "--check-config", "-c", bad], capture_output=True, text=True)
    eq(out.returncode, 1, "bad config exit")
    check("bad.cfg:3" in out.stderr and "server.thread" in out.stderr, out.stderr)
    out = subprocess.run([FCGI_BIN, "--check-config", "-c", ctx.gw.config],
                         capture_output=True, text=True)
    eq(out.returncode, 0, "good config: " + out.stderr)
    out = subprocess.run([FCGI_BIN, "-c", ctx.gw.config], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL)
    eq(out.returncode, 2, "refuses to run without a listening socket")


@test()
def database_is_created_with_wal(ctx):
    db = os.path.join(ctx.gw.var, "antigw.db")
    check(os.path.exists(db), "database file")
    import sqlite3
    c = sqlite3.connect(db)
    eq(c.execute("PRAGMA journal_mode").fetchone()[0], "wal", "journal mode")
    check(c.execute("PRAGMA user_version").fetchone()[0] >= 1, "migrated")
    c.close()


def stream_in_background(ctx, events):
    """Starts a stream of `events` events 100 ms apart on a thread; returns
    (the thread, a dict that gets "status" and "events" when it ends)."""
    result = {}

    def long_stream():
        s, _, lines = ctx.gw.stream("/v1/chat/completions",
                                    chat(directive(events=events, delay_ms=100), stream=True))
        result["status"], result["events"] = s, sse_events(lines)
    t = threading.Thread(target=long_stream)
    t.start()
    return t, result


@test(timeout=60)
def graceful_stop_finishes_streams_in_flight(ctx):
    t, result = stream_in_background(ctx, 15)
    time.sleep(0.5)
    pid = ctx.gw.pool_pid()
    stopped = time.monotonic()
    ctx.gw.stop_pool()
    took = time.monotonic() - stopped
    t.join(20)
    eq(result.get("status"), 200, "status")
    eq(result["events"][-1], (None, "[DONE]"), "the stream in flight completed")
    check(took < 15, "the pool stopped in %.1fs" % took)
    check(process_gone(pid), "multiwatch exited")
    ctx.gw.restart_pool()


@test(timeout=60)
def concurrent_large_bodies_meet_the_memory_budget(ctx):
    # Eight streams with bodies of 1.2 MiB at once on two processes that may
    # each hold 3 MiB of bodies: at most four are held at a time, the others
    # get a 503 in the client's shape that says why. The budget comes back.
    body = chat(directive(events=4, delay_ms=400) + "x" * LARGE_BODY, stream=True)
    results = [None] * 8
    barrier = threading.Barrier(8)

    def one(i):
        barrier.wait()
        s, _, data = ctx.gw.call("POST", "/v1/chat/completions", body=body)
        results[i] = (s, data)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    statuses = sorted(r[0] for r in results)
    ok, busy = statuses.count(200), statuses.count(503)
    eq(ok + busy, 8, "every answer is 200 or 503: %r" % statuses)
    check(1 <= ok <= 2 * PROCESSES, "at most two bodies per process held at once: %r" % statuses)
    check(busy >= 8 - 2 * PROCESSES, "the rest refused: %r" % statuses)
    err = json.loads([r[1] for r in results if r[0] == 503][0])
    eq(err["error"]["code"], "server_busy", "OpenAI error shape")
    check("max_memory_bytes" in err["error"]["message"], "message: %r" % err)
    # Nothing stays taken: one at a time, every process takes a large body.
    for _ in range(2 * PROCESSES):
        s, _, _ = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x" * LARGE_BODY))
        eq(s, 200, "a large body after the burst")


def hup_pool(gw, processes):
    """SIGHUP to each of the pool's `processes` processes; returns their pids."""
    pids = gw.pool_processes()
    eq(len(pids), processes, "pool processes")
    for pid in pids:
        os.kill(pid, signal.SIGHUP)
    return pids


def thread_policies(pid):
    """[(tid, name, scheduling policy)] of one process's threads."""
    out = []
    for t in sorted(int(x) for x in os.listdir("/proc/%d/task" % pid)):
        try:
            with open("/proc/%d/task/%d/comm" % (pid, t)) as f:
                out.append((t, f.read().strip(), os.sched_getscheduler(t)))
        except OSError:
            pass  # a thread that just ended
    return out


def check_policies(pids, threads, worker_policy):
    """Each process: `threads` workers (the threads that carry the program's
    name, besides the main one) under worker_policy; the main (signal) thread
    and the named helper threads (log writer, usage drainer) under the normal
    policy, but for the elected drainer's helper for a nearly empty ring,
    under SCHED_IDLE (tenant/usage.h). Returns how many of those there are."""
    idle_helpers = 0
    for pid in pids:
        seen = thread_policies(pid)
        workers = [(t, pol) for t, name, pol in seen if name == "antigw-fcgi" and t != pid]
        helpers = [(name, pol) for t, name, pol in seen if name.startswith("agw-")]
        eq(len(workers), threads, "worker threads of %d: %r" % (pid, seen))
        eq(sorted(set(pol for _, pol in workers)), [worker_policy],
           "the workers' policy in %d: %r" % (pid, seen))
        eq([pol for t, _, pol in seen if t == pid], [os.SCHED_OTHER], "the main thread's policy")
        check("agw-logger" in [name for name, _ in helpers], "the log writer runs: %r" % seen)
        idle = [pol for name, pol in helpers if name == "agw-drain-idle"]
        eq(idle, [os.SCHED_IDLE] * len(idle), "the idle drainer's policy in %d: %r" % (pid, seen))
        idle_helpers += len(idle)
        eq(sorted(set(pol for name, pol in helpers if name != "agw-drain-idle")),
           [os.SCHED_OTHER], "the helper threads' policy in %d: %r" % (pid, helpers))
    return idle_helpers


@test()
def workers_run_under_batch_scheduling(ctx):
    # The default: a woken worker does not preempt the web server (fcgi_server.h).
    # One process is elected drainer (within 200 ms of a pool's start).
    wait_for(lambda: check_policies(ctx.gw.pool_processes(), THREADS, os.SCHED_BATCH) == 1, 10,
             "one idle drainer helper in the pool")
    s, _, _ = ctx.gw.call("POST", "/v1/chat/completions", body=chat("hi"))
    eq(s, 200, "served by batch-scheduled workers")


@test(timeout=90)
def batch_scheduling_off_keeps_the_normal_policy(ctx):
    work = os.path.join(ctx.work, "normal-sched")
    os.makedirs(work, exist_ok=True)
    gw = Gateway(work, standard_config(ctx.openai.port, ctx.anthropic.port, threads=2,
                                       batch_scheduling=False), processes=1, threads=2)
    gw.start()
    try:
        check_policies(gw.pool_processes(), 2, os.SCHED_OTHER)
        eq(gw.call("POST", "/v1/chat/completions", body=chat("hi"))[0], 200, "served")
        # The policy is set when the workers start: a reload that changes it
        # is refused whole, and says why.
        with open(gw.config) as f:
            text = f.read()
        with open(gw.config, "w") as f:
            f.write(text.replace("batch_scheduling = false;", "batch_scheduling = true;")
                    .replace('"gpt-4o-mini", "gpt-*"', '"gpt-4o-mini", "reloaded-*", "gpt-*"'))
        marker = len(gw.log_text())
        hup_pool(gw, 1)
        wait_for(lambda: "server.batch_scheduling changed, which needs a restart"
                 in gw.log_text()[marker:], 10, "the reload's refusal in the log")
        check_policies(gw.pool_processes(), 2, os.SCHED_OTHER)
        eq(gw.call("POST", "/v1/chat/completions", body=chat("hi", model="reloaded-x"))[0], 404,
           "nothing of the refused file applies")
    finally:
        gw.stop()
    gw.check_logs_clean()


@test(timeout=90)
def reload_names_the_settings_it_cannot_change(ctx):
    work = os.path.join(ctx.work, "start-only")
    os.makedirs(work, exist_ok=True)
    gw = Gateway(work, standard_config(ctx.openai.port, ctx.anthropic.port, threads=2,
                                       shutdown_grace_seconds=30), processes=1, threads=2)
    gw.start()
    try:
        with open(gw.config) as f:
            text = f.read()
        # The pool is started with -t, so the file's server.threads is not
        # read at all and its change is no news; the grace period and the
        # usage ring's retention and place are read once, at start; the new
        # model applies at once.
        with open(gw.config, "w") as f:
            f.write(text.replace("threads = 2;", "threads = 9;")
                    .replace("shutdown_grace_seconds = 30;", "shutdown_grace_seconds = 5;")
                    .replace('database: { path = "antigw.db"; };',
                             'database: { path = "antigw.db"; };\n'
                             'usage: { retention_days = 7; ring_dir = ""; };')
                    .replace('"gpt-4o-mini", "gpt-*"', '"gpt-4o-mini", "reloaded-*", "gpt-*"'))
        marker = len(gw.log_text())
        hup_pool(gw, 1)
        want = ("reload: these settings keep their values until the pool restarts: "
                "server.shutdown_grace_seconds (30 -> 5), usage.retention_days (90 -> 7), "
                'usage.ring_dir ("/dev/shm" -> "")\n')
        wait_for(lambda: want in gw.log_text()[marker:], 10, "the warning in the log")
        eq(gw.call("POST", "/v1/chat/completions", body=chat("hi", model="reloaded-x"))[0], 200,
           "the rest of the file applies")
        check("server.threads" not in gw.log_text()[marker:], "no word of server.threads")
    finally:
        gw.stop()
    gw.check_logs_clean()


@test(timeout=90)
def sighup_reloads_the_configuration(ctx):
    def reloaded():
        return ctx.gw.call("POST", "/v1/chat/completions", body=chat("hi", model="reloaded-x"))[0]
    with open(ctx.gw.config) as f:
        original = f.read()
    marker = len(ctx.gw.log_text())
    result = {}

    def long_stream():
        s, _, lines = ctx.gw.stream("/v1/chat/completions",
                                    chat(directive(events=12, delay_ms=150), stream=True))
        result["status"], result["events"] = s, sse_events(lines)
    try:
        t = threading.Thread(target=long_stream)
        t.start()
        time.sleep(0.4)
        # New models for mock-openai, and a provider whose host is
        # 169.254.169.254 written as one number: no literal check sees it,
        # the upstream client refuses it after resolution.
        eq(reloaded(), 404, "reloaded-* routes nowhere before the reload")
        changed = original.replace('"gpt-4o-mini", "gpt-*"', '"gpt-4o-mini", "reloaded-*", "gpt-*"')
        changed = changed.replace("providers = (\n", 'providers = (\n  { name = "sneaky"; type = '
                                  '"openai"; base_url = "http://2852039166/v1"; api_key = "x";'
                                  ' models = [ "sneaky-*" ]; },\n')
        check(changed.count("reloaded-*") == 1 and "sneaky" in changed, "config edited")
        with open(ctx.gw.config, "w") as f:
            f.write(changed)
        pids = hup_pool(ctx.gw, PROCESSES)
        wait_for(lambda: all(reloaded() == 200 for _ in range(8)), 10,
                 "every process to route by the new model list")
        t.join(20)
        eq(result.get("status"), 200, "the stream across the reload")
        eq(result["events"][-1], (None, "[DONE]"), "the stream in flight completed")
        eq(sorted(ctx.gw.pool_processes()), sorted(pids), "no process restarted")
        started = time.monotonic()
        s, _, _ = ctx.gw.call("POST", "/v1/chat/completions", body=chat("hi", model="sneaky-x"))
        eq(s, 502, "a provider resolving to a metadata address is not connected to")
        check(time.monotonic() - started < 1.5, "refused at once, not timed out")
        wait_for(lambda: "refusing to connect to a link-local" in ctx.gw.log_text()[marker:], 5,
                 "the refusal's log line")
        # A file that does not load is refused; the running one stays.
        with open(ctx.gw.config, "w") as f:
            f.write(changed + "\nserver: { nonsense = 1; };\n")
        hup_pool(ctx.gw, PROCESSES)
        wait_for(lambda: ctx.gw.log_text()[marker:].count("reload refused") >= PROCESSES, 10,
                 "each process to refuse the bad file")
        check(all(reloaded() == 200 for _ in range(8)), "the last good configuration stays")
        eq(ctx.gw.call("POST", "/v1/chat/completions", body=chat("hi"))[0], 200, "still serving")
    finally:
        with open(ctx.gw.config, "w") as f:
            f.write(original)
        hup_pool(ctx.gw, PROCESSES)
    wait_for(lambda: all(reloaded() == 404 for _ in range(8)), 10, "back to the original")


@test()
def link_local_base_url_refused_at_load(ctx):
    path = os.path.join(ctx.work, "ll.cfg")
    for url, ok in (("http://169.254.169.254/v1", False), ("http://[fe80::1]/v1", False),
                    ("http://10.0.0.1/v1", True)):
        with open(path, "w") as f:
            f.write('providers = ( { name = "p"; type = "openai"; base_url = "%s"; } );\n' % url)
        out = subprocess.run([FCGI_BIN, "--check-config", "-c", path], capture_output=True,
                             text=True)
        eq(out.returncode == 0, ok, "%s: %s" % (url, out.stderr))
        if not ok:
            check("upstream.allow_link_local" in out.stderr, "the error says how: " + out.stderr)
    with open(path, "a") as f:
        f.write("upstream: { allow_link_local = true; };\n")
    eq(subprocess.run([FCGI_BIN, "--check-config", "-c", path], capture_output=True).returncode,
       0, "allowed when asked for")


def main():
    ctx = Ctx()
    why = suite_setup(ctx)
    if why:
        return bail(why)
    dead = refused_port()
    ctx.gw = Gateway(ctx.work, config(ctx.openai.port, ctx.anthropic.port, dead.getsockname()[1]),
                     processes=PROCESSES, threads=THREADS)
    return run_suite(ctx, stop_after=(ctx.openai, ctx.anthropic, dead))


if __name__ == "__main__":
    sys.exit(main())

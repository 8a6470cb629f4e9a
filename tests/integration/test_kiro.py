#!/usr/bin/env python3
"""The Kiro provider's data path through real lighttpd, a pool of
antigw-fcgi processes, antigw-admin (the accounts are imported through it)
and two mock Kiro APIs (tests/mock/kiro_api.py: real AWS event-stream frames
with real CRCs, written in random byte splits): both client protocols,
streamed and not, text, tools (several, large inputs), thinking, images,
exceptions, throttling with failover, cut-off tools, garbage frames, usage
rows marked estimated, count_tokens, the model list; what the mock received
is checked field by field."""

import base64
import json
import os
import re
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CLIENT_KEY, OPENAI_KEY, SRCDIR, Gateway, Mock, bail, chat, check,  # noqa: E402
                     directive, eq, messages, run_suite, sse_events, suite_setup, test,
                     wait_for)

KIRO_API = os.path.join(SRCDIR, "tests", "mock", "kiro_api.py")
PROCESSES, THREADS = 2, 8
ADMIN_KEY = "agw-admin-kiro-test-key-0123456789"
TOKEN_A = "kiro-access-token-a-0123456789"
TOKEN_B = "kiro-access-token-b-9876543210"
ARN_A = "arn:aws:codewhisperer:us-east-1:111111111111:profile/AAAA"
ARN_B = "arn:aws:codewhisperer:eu-central-1:222222222222:profile/BBBB"
MODEL = "claude-sonnet-4-5-20250929"
KIRO_MODEL = "claude-sonnet-4.5"
PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5E"
           "rkJggg==")


class Ctx:
    pass


class KiroMock(Mock):
    """tests/mock/kiro_api.py taking one access token."""

    def __init__(self, workdir, name, token):
        super().__init__(workdir, name, "--token", token, script=KIRO_API)

    def force(self, text):
        import urllib.request
        req = urllib.request.Request("http://127.0.0.1:%d/_mock/force" % self.port,
                                     data=text.encode(), method="POST")
        urllib.request.urlopen(req).read()


def config(ctx):
    return """
server: {
  log_level = "info";
  threads = %d;
  connect_timeout_ms = 2000;
  idle_timeout_seconds = 10;
  sse_ping_seconds = 5;
  stream_commit_ms = 10000;
};
auth: { api_key = "%s"; admin_key = "%s"; };
database: { path = "antigw.db"; };
secrets: { key_file = "secret.key"; };
defaults: { lb_strategy = "priority"; health_check_seconds = 2; cooldown_seconds = 2; };
providers = (
  { name = "kiro-a"; type = "kiro"; base_url = "http://127.0.0.1:%d"; weight = 200;
    models = [ "claude-*", "auto" ]; kiro_version = "0.9.2"; },
  { name = "kiro-b"; type = "kiro"; base_url = "http://127.0.0.1:%d"; weight = 100;
    models = [ "claude-*", "auto" ]; },
  { name = "mock-openai"; type = "openai"; base_url = "http://127.0.0.1:%d/v1";
    api_key = "%s"; models = [ "gpt-*" ]; }
);
""" % (THREADS, CLIENT_KEY, ADMIN_KEY, ctx.kiro_a.port, ctx.kiro_b.port, ctx.openai.port,
       OPENAI_KEY)


def admin(ctx, method, path, body=None):
    s, h, d = ctx.gw.call(method, path, body=body, key=ADMIN_KEY)
    return s, (json.loads(d) if d else None)


def import_account(ctx, provider, token, arn):
    s, doc = admin(ctx, "POST", "/admin/kiro/import", {
        "provider": provider,
        "kiro_auth_token": {"accessToken": token, "refreshToken": "refresh-" + provider,
                            "expiresAt": "2099-01-01T00:00:00.000Z", "authMethod": "social",
                            "provider": "Google", "profileArn": arn}})
    eq(s, 201, "import of %s: %r" % (provider, doc))


def last_kiro_request(mock):
    reqs = [r for r in mock.requests() if r["path"] == "/generateAssistantResponse"]
    check(reqs, "the mock got no generateAssistantResponse")
    r = reqs[-1]
    return dict((k.lower(), v) for k, v in r["headers"]), json.loads(base64.b64decode(r["body_b64"]))


def reset(ctx):
    for m in (ctx.kiro_a, ctx.kiro_b):
        m.reset()


def anthropic_stream(ctx, body):
    status, headers, lines = ctx.gw.stream("/v1/messages", dict(body, stream=True),
                                           headers={"anthropic-version": "2023-06-01"})
    return status, headers, [(n, json.loads(d)) for n, d in sse_events(lines)]


def openai_stream(ctx, body):
    status, headers, lines = ctx.gw.stream("/v1/chat/completions", dict(body, stream=True))
    ev = [d for _, d in sse_events(lines)]
    check(ev and ev[-1] == "[DONE]" or any('"error"' in e for e in ev), "no [DONE]: %r" % ev[-3:])
    return status, headers, [json.loads(e) for e in ev if e != "[DONE]"]


def post(ctx, path, body, **kw):
    headers = {"anthropic-version": "2023-06-01"} if path == "/v1/messages" else {}
    s, h, d = ctx.gw.call("POST", path, body=body, headers=headers, **kw)
    return s, h, (json.loads(d) if d else None)


# ---- the call itself ----

@test(timeout=30)
def openai_text_and_what_kiro_received(ctx):
    reset(ctx)
    body = {"model": MODEL, "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hi " + directive(events=4, text="Hi")}]}
    s, h, doc = post(ctx, "/v1/chat/completions", body)
    eq(s, 200, "status: %r" % doc)
    eq(doc["choices"][0]["message"]["content"], "Hi0 Hi1 Hi2 Hi3", "content")
    eq(doc["choices"][0]["finish_reason"], "stop", "finish_reason")
    eq(doc["model"], MODEL, "the client's model echoed")
    eq(doc["usage"]["prompt_tokens"], 5000, "input = 2.5% of 200k")
    eq(doc["usage"]["completion_tokens"], 4, "output estimated from 15 bytes")
    hd, kb = last_kiro_request(ctx.kiro_a)
    eq(hd["authorization"], "Bearer " + TOKEN_A, "token")
    eq(hd["content-type"], "application/json", "content type")
    check(re.fullmatch(r"aws-sdk-js/1\.0\.34 KiroIDE-0\.9\.2-[0-9a-f]{64}",
                       hd["x-amz-user-agent"]), hd["x-amz-user-agent"])
    check(re.fullmatch(r"aws-sdk-js/1\.0\.34 ua/2\.1 os/linux lang/js md/nodejs#22\.21\.1 "
                       r"api/codewhispererstreaming#1\.0\.34 m/E KiroIDE-0\.9\.2-[0-9a-f]{64}",
                       hd["user-agent"]), hd["user-agent"])
    eq(hd["x-amzn-codewhisperer-optout"], "true", "optout")
    eq(hd["x-amzn-kiro-agent-mode"], "vibe", "agent mode")
    eq(hd["amz-sdk-request"], "attempt=1; max=3", "sdk request")
    check(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                       hd["amz-sdk-invocation-id"]), hd["amz-sdk-invocation-id"])
    eq(kb["profileArn"], ARN_A, "profileArn")
    cs = kb["conversationState"]
    eq(cs["chatTriggerType"], "MANUAL", "trigger")
    check(re.fullmatch(r"[0-9a-f-]{36}", cs["conversationId"]), cs["conversationId"])
    eq(len(cs["history"]), 2, "the system pair")
    eq(cs["history"][0]["userInputMessage"]["content"], "You are terse.", "system text")
    eq(cs["history"][0]["userInputMessage"]["modelId"], KIRO_MODEL, "model id")
    check(cs["history"][1]["assistantResponseMessage"]["content"], "acknowledgement")
    cur = cs["currentMessage"]["userInputMessage"]
    eq(cur["content"], body["messages"][1]["content"], "content")
    eq(cur["modelId"], KIRO_MODEL, "modelId")
    eq(cur["origin"], "AI_EDITOR", "origin")
    check("userInputMessageContext" not in cur, "no tools, no context")


@test(timeout=30)
def anthropic_stream_text_with_usage(ctx):
    reset(ctx)
    s, h, ev = anthropic_stream(ctx, messages("hello " + directive(events=3, context_pct=10),
                                              model=MODEL))
    eq(s, 200, "status")
    check(h["content-type"].startswith("text/event-stream"), h["content-type"])
    names = [n for n, _ in ev]
    eq(names[0], "message_start", "first event")
    eq(names[-2:], ["message_delta", "message_stop"], "last events")
    text = "".join(d["delta"]["text"] for n, d in ev if n == "content_block_delta")
    eq(text, "Hello0 Hello1 Hello2", "text")
    md = [d for n, d in ev if n == "message_delta"][0]
    eq(md["delta"]["stop_reason"], "end_turn", "stop")
    eq(md["usage"]["input_tokens"], 20000, "10% of 200k")


@test(timeout=30)
def anthropic_non_stream_and_image(ctx):
    reset(ctx)
    body = messages([{"type": "text", "text": "What is this?"},
                     {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                  "data": PNG_1PX}}], model=MODEL)
    s, h, doc = post(ctx, "/v1/messages", body)
    eq(s, 200, "status: %r" % doc)
    eq(doc["type"], "message", "type")
    eq(doc["content"][0]["text"], "Hello0 Hello1 Hello2", "text")
    eq(doc["stop_reason"], "end_turn", "stop")
    _, kb = last_kiro_request(ctx.kiro_a)
    cur = kb["conversationState"]["currentMessage"]["userInputMessage"]
    eq(cur["images"], [{"format": "png", "source": {"bytes": PNG_1PX}}], "images")
    eq(cur["content"], "What is this?", "text beside the image")
    # OpenAI's data URI with image/jpg becomes jpeg.
    body = {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "and this"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + PNG_1PX}}]}]}
    s, _, doc = post(ctx, "/v1/chat/completions", body)
    eq(s, 200, "status: %r" % doc)
    _, kb = last_kiro_request(ctx.kiro_a)
    eq(kb["conversationState"]["currentMessage"]["userInputMessage"]["images"][0]["format"],
       "jpeg", "format")
    # A URL image cannot go to Kiro: 400 in the client's shape, nothing sent.
    n = len(ctx.kiro_a.requests())
    body["messages"][0]["content"][1]["image_url"]["url"] = "https://example.com/x.png"
    s, _, doc = post(ctx, "/v1/chat/completions", body)
    eq(s, 400, "URL image")
    check("URL" in doc["error"]["message"], doc)
    eq(len(ctx.kiro_a.requests()), n, "nothing went upstream")


# ---- tools ----

TOOLS = [{"name": "get_weather", "description": "Weather of a city",
          "input_schema": {"type": "object", "additionalProperties": False,
                           "properties": {"location": {"type": "string"}},
                           "required": ["location"]}},
         {"name": "get_time", "description": "",
          "input_schema": {"type": "object", "properties": {}, "required": []}}]


@test(timeout=30)
def anthropic_stream_several_tools_with_large_inputs(ctx):
    reset(ctx)
    body = messages("weather and time " + directive(tool="get_weather:get_time", tool_kb=40),
                    model=MODEL, tools=TOOLS)
    s, _, ev = anthropic_stream(ctx, body)
    eq(s, 200, "status")
    starts = [d["content_block"] for n, d in ev if n == "content_block_start"]
    tools = [b for b in starts if b["type"] == "tool_use"]
    eq([(t["id"], t["name"]) for t in tools],
       [("tooluse_mock0", "get_weather"), ("tooluse_mock1", "get_time")], "tool blocks")
    for i, t in enumerate(tools):
        idx = [d["index"] for n, d in ev if n == "content_block_start"
               and d["content_block"].get("id") == t["id"]][0]
        parts = [d["delta"]["partial_json"] for n, d in ev
                 if n == "content_block_delta" and d["index"] == idx]
        check(len(parts) > 20, "streamed in many pieces: %d" % len(parts))
        inp = json.loads("".join(parts))
        eq(inp["location"], "Paris, France", "input")
        eq(len(inp["blob"]), 40 * 1024, "large input whole")
    md = [d for n, d in ev if n == "message_delta"][0]
    eq(md["delta"]["stop_reason"], "tool_use", "stop")
    # What Kiro got: the tools, cleaned; the empty description filled in.
    _, kb = last_kiro_request(ctx.kiro_a)
    specs = [t["toolSpecification"] for t in kb["conversationState"]["currentMessage"]
             ["userInputMessage"]["userInputMessageContext"]["tools"]]
    eq([s["name"] for s in specs], ["get_weather", "get_time"], "tool names")
    eq(specs[0]["inputSchema"]["json"], {"type": "object", "properties": {
        "location": {"type": "string"}}, "required": ["location"]}, "schema cleaned")
    eq(specs[1]["inputSchema"]["json"], {"type": "object", "properties": {}}, "empty required")
    check(specs[1]["description"], "placeholder description")


@test(timeout=30)
def openai_stream_tool_call_deltas_and_long_names(ctx):
    reset(ctx)
    long_name = "mcp__filesystem__read_multiple_files_with_a_really_long_descriptive_name"
    check(len(long_name) > 64, "the name is long")
    body = {"model": MODEL, "messages": [{"role": "user", "content": "read " + directive(
        tool=long_name[:55] + "_XXXX")}], "tools": [{"type": "function", "function": {
            "name": long_name, "parameters": {"type": "object", "properties": {}}}}]}
    # The mock calls the tool by the name Kiro was given; find it first.
    s, _, _ = post(ctx, "/v1/chat/completions", dict(body, messages=[
        {"role": "user", "content": "hi"}]))
    eq(s, 200, "status")
    _, kb = last_kiro_request(ctx.kiro_a)
    short = kb["conversationState"]["currentMessage"]["userInputMessage"][
        "userInputMessageContext"]["tools"][0]["toolSpecification"]["name"]
    eq(len(short), 64, "shortened to 64")
    check(short.startswith(long_name[:55]), short)
    body["messages"][0]["content"] = "read " + directive(tool=short)
    s, _, chunks = openai_stream(ctx, body)
    eq(s, 200, "status")
    calls = [tc for c in chunks for ch in c.get("choices", [])
             for tc in ch.get("delta", {}).get("tool_calls", [])]
    eq(calls[0]["function"]["name"], long_name, "the client's own name back")
    eq(calls[0]["id"], "tooluse_mock0", "id")
    eq(sum(1 for tc in calls if "id" in tc), 1, "id only in the first delta")
    args = "".join(tc["function"].get("arguments", "") for tc in calls)
    eq(json.loads(args)["unit"], "celsius", "arguments")
    finish = [ch["finish_reason"] for c in chunks for ch in c.get("choices", [])
              if ch.get("finish_reason")]
    eq(finish, ["tool_calls"], "finish_reason")


@test(timeout=30)
def two_turn_tool_round_trip(ctx):
    reset(ctx)
    body = messages("weather? " + directive(tool="get_weather"), model=MODEL, tools=TOOLS)
    s, _, doc = post(ctx, "/v1/messages", body)
    eq(s, 200, "turn 1: %r" % doc)
    eq(doc["stop_reason"], "tool_use", "stop")
    use = [b for b in doc["content"] if b["type"] == "tool_use"][0]
    body["messages"] += [{"role": "assistant", "content": doc["content"]},
                         {"role": "user", "content": [{"type": "tool_result",
                                                       "tool_use_id": use["id"],
                                                       "content": "18C and sunny"}]}]
    s, _, doc = post(ctx, "/v1/messages", body)
    eq(s, 200, "turn 2: %r" % doc)
    eq(doc["content"][0]["text"], "Result: 18C and sunny", "the mock read the result")
    _, kb = last_kiro_request(ctx.kiro_a)
    cs = kb["conversationState"]
    asst = cs["history"][-1]["assistantResponseMessage"]
    eq(asst["toolUses"][0]["toolUseId"], use["id"], "tool use in history")
    eq(asst["toolUses"][0]["input"], use["input"], "its input")
    res = cs["currentMessage"]["userInputMessage"]["userInputMessageContext"]["toolResults"]
    eq(res, [{"toolUseId": use["id"], "content": [{"text": "18C and sunny"}],
              "status": "success"}], "tool results")
    # The same history without tools in the request: Kiro still gets them declared.
    del body["tools"]
    s, _, doc = post(ctx, "/v1/messages", body)
    eq(s, 200, "no tools: %r" % doc)


@test(timeout=30)
def cut_off_tool_is_an_error_not_empty_input(ctx):
    reset(ctx)
    body = messages("x " + directive(tool="get_weather", cut_tool=1), model=MODEL, tools=TOOLS)
    s, _, ev = anthropic_stream(ctx, body)
    eq(s, 200, "stream status")
    eq(ev[-1][0], "error", "ends with an error event")
    check("cut off" in ev[-1][1]["error"]["message"], ev[-1])
    check("message_stop" not in [n for n, _ in ev], "no clean end")
    s, _, doc = post(ctx, "/v1/messages", dict(body, stream=False))
    eq(s, 502, "non-stream: %r" % doc)
    eq(doc["type"], "error", "Anthropic error shape")
    s, _, doc = post(ctx, "/v1/chat/completions", {"model": MODEL, "messages": [
        {"role": "user", "content": body["messages"][0]["content"]}], "tools": [
        {"type": "function", "function": {"name": "get_weather", "parameters": {}}}]})
    eq(s, 502, "OpenAI non-stream")
    check("cut off" in doc["error"]["message"], doc)


# ---- thinking ----

@test(timeout=30)
def thinking_split_out_when_asked(ctx):
    reset(ctx)
    body = messages("think " + directive(thinking=1), model=MODEL, max_tokens=4000,
                    thinking={"type": "enabled", "budget_tokens": 2000})
    s, _, ev = anthropic_stream(ctx, body)
    eq(s, 200, "status")
    kinds = [d["content_block"]["type"] for n, d in ev if n == "content_block_start"]
    eq(kinds, ["thinking", "text"], "blocks")
    thinking = "".join(d["delta"].get("thinking", "") for n, d in ev
                       if n == "content_block_delta")
    eq(thinking, "Thinking it through.", "thinking")
    text = "".join(d["delta"].get("text", "") for n, d in ev if n == "content_block_delta")
    eq(text, "Hello0 Hello1 Hello2", "text without tags")
    _, kb = last_kiro_request(ctx.kiro_a)
    sys_text = kb["conversationState"]["history"][0]["userInputMessage"]["content"]
    check(sys_text.startswith("<thinking_mode>enabled</thinking_mode><max_thinking_length>2000"
                              "</max_thinking_length>"), sys_text)
    # Native reasoning events, non-streamed, with the signature.
    s, _, doc = post(ctx, "/v1/messages", dict(body, stream=False, messages=[
        {"role": "user", "content": "r " + directive(reasoning=1)}]))
    eq(s, 200, "status")
    eq(doc["content"][0], {"type": "thinking", "thinking": "Let me reason.",
                           "signature": "sig-mock-1"}, "thinking block")
    # OpenAI's reasoning_effort asks too: reasoning_content deltas.
    s, _, chunks = openai_stream(ctx, chat("think " + directive(thinking=1), model=MODEL,
                                           reasoning_effort="medium"))
    eq(s, 200, "status")
    deltas = [ch["delta"] for c in chunks for ch in c.get("choices", [])]
    eq("".join(d.get("reasoning_content", "") for d in deltas), "Thinking it through.",
       "reasoning_content")
    eq("".join(d.get("content") or "" for d in deltas), "Hello0 Hello1 Hello2", "content")
    _, kb = last_kiro_request(ctx.kiro_a)
    check(kb["conversationState"]["history"][0]["userInputMessage"]["content"].startswith(
        "<thinking_mode>enabled</thinking_mode><max_thinking_length>8192<"), "medium budget")
    # Not asked: the tags stay in the text, nothing about thinking goes upstream.
    s, _, doc = post(ctx, "/v1/messages", messages("t " + directive(thinking=1), model=MODEL))
    eq(s, 200, "status")
    check(doc["content"][0]["text"].startswith("<thinking>"), doc["content"][0])
    _, kb = last_kiro_request(ctx.kiro_a)
    eq(kb["conversationState"]["history"], [], "no system pair")


# ---- errors ----

@test(timeout=30)
def throttling_fails_over_then_429(ctx):
    reset(ctx)
    ctx.kiro_a.force("status=throttle")
    try:
        s, h, doc = post(ctx, "/v1/chat/completions", chat("x", model=MODEL))
        eq(s, 200, "kiro-b took it: %r" % doc)
        eq(len([r for r in ctx.kiro_b.requests() if r["path"] == "/generateAssistantResponse"]),
           1, "kiro-b got it")
        ctx.kiro_b.force("status=throttle")
        time.sleep(2.5)  # both cooled down and back
        s, h, doc = post(ctx, "/v1/messages", messages("x", model=MODEL))
        eq(s, 429, "both throttled: %r" % doc)
        eq(doc["error"]["type"], "rate_limit_error", "Anthropic type")
    finally:
        ctx.kiro_a.force("")
        ctx.kiro_b.force("")
        time.sleep(2.5)


@test(timeout=30)
def throttling_exception_in_the_stream_fails_over(ctx):
    reset(ctx)
    ctx.kiro_a.force("exception_first=ThrottlingException")
    try:
        s, _, ev = anthropic_stream(ctx, messages("x", model=MODEL))
        eq(s, 200, "kiro-b answered")
        eq(ev[-1][0], "message_stop", "clean")
        ctx.kiro_b.force("exception_first=ThrottlingException")
        time.sleep(2.5)
        s, h, lines = ctx.gw.stream("/v1/chat/completions",
                                    dict(chat("x", model=MODEL), stream=True))
        eq(s, 429, "both throttled in the stream: a 429 before any byte")
        doc = json.loads(b"".join(l for _, l in lines))
        eq(doc["error"]["type"], "rate_limit_error", "OpenAI type")
    finally:
        ctx.kiro_a.force("")
        ctx.kiro_b.force("")
        time.sleep(2.5)


@test(timeout=30)
def exceptions_and_broken_streams_end_with_errors(ctx):
    for d, what in ((directive(exception="InternalServerException"), "mid-stream exception"),
                    (directive(garbage=1), "garbage"), (directive(bad_crc=1), "bad CRC"),
                    (directive(truncate=1), "cut inside a frame")):
        reset(ctx)
        s, _, ev = anthropic_stream(ctx, messages("x " + d, model=MODEL))
        eq(s, 200, what)
        eq(ev[-1][0], "error", "%s: error event" % what)
        check("message_stop" not in [n for n, _ in ev], what)
        s, _, chunks = openai_stream(ctx, chat("x " + d, model=MODEL))
        check("error" in chunks[-1], "%s: OpenAI error chunk %r" % (what, chunks[-1]))
        s, _, doc = post(ctx, "/v1/chat/completions", chat("x " + d, model=MODEL))
        check(s >= 500, "%s non-stream: %d" % (what, s))
        check(doc["error"]["message"], what)
    # The output limit is a normal end: max_tokens / length.
    s, _, doc = post(ctx, "/v1/chat/completions", chat("x " + directive(length=1), model=MODEL))
    eq(s, 200, "length")
    eq(doc["choices"][0]["finish_reason"], "length", "finish_reason")
    # Kiro's 400 keeps its status and message, in the client's shape.
    s, _, doc = post(ctx, "/v1/messages", messages("x " + directive(status=400), model=MODEL))
    eq(s, 400, "400")
    eq(doc["error"]["type"], "invalid_request_error", "type")


@test(timeout=30)
def shapes_kiro_refuses_are_never_sent(ctx):
    reset(ctx)
    cases = [
        # adjacent user turns, a trailing assistant prefill, system in the middle
        {"model": MODEL, "messages": [
            {"role": "user", "content": "a"}, {"role": "user", "content": "b"},
            {"role": "system", "content": "late system"},
            {"role": "assistant", "content": "prefill"}]},
        # an assistant turn first, an empty user text
        {"model": MODEL, "messages": [
            {"role": "assistant", "content": "I start"}, {"role": "user", "content": ""}]},
        # tool calls with empty content and two results for one call
        {"model": MODEL, "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": ""}],
         "tools": [{"type": "function", "function": {"name": "f", "description": "",
                                                      "parameters": {"type": "object",
                                                                     "additionalProperties": {},
                                                                     "required": []}}}]},
    ]
    for i, body in enumerate(cases):
        s, h, doc = post(ctx, "/v1/chat/completions", body)
        eq(s, 200, "case %d: %r" % (i, doc))
    st = ctx.kiro_a.stats()
    eq(st["requests"], len(cases), "all reached the mock")


# ---- the rest of the surface ----

@test(timeout=30)
def count_tokens_is_a_local_estimate(ctx):
    reset(ctx)
    s, h, doc = post(ctx, "/v1/messages/count_tokens",
                     {"model": MODEL, "messages": [{"role": "user", "content": "x" * 400}]})
    eq(s, 200, "status")
    check(doc["input_tokens"] >= 100, doc)
    eq(doc.get("estimated"), True, "marked")
    eq(h.get("x-antigateway-token-count"), "estimate", "header")
    eq(ctx.kiro_a.stats()["requests"], 0, "nothing went to Kiro")


@test(timeout=30)
def models_list_holds_the_live_list(ctx):
    def ids():
        s, _, d = ctx.gw.call("GET", "/v1/models")
        return {m["id"] for m in json.loads(d)["data"]}
    # claude-opus-4.5 is in the mock's list, not in kiro-a's configured names.
    # The maintained static list stands in only for an account with no list
    # read yet: claude-opus-4.6 is in it, not in the live ones.
    wait_for(lambda: "kiro/claude-opus-4.5" in ids() and "claude-opus-4.6" not in ids(), 15,
             "the prober's lists of both accounts")
    check("claude-opus-4.5" in ids(), "unprefixed too")
    ctx.kiro_a.reset()

    def probes():
        return [r for r in ctx.kiro_a.requests() if r["path"].startswith("/ListAvailableModels")]
    wait_for(probes, 10, "the prober's next call of kiro-a's list")
    reqs = probes()
    eq(reqs[-1]["path"], "/ListAvailableModels?origin=AI_EDITOR&profileArn=" +
       ARN_A.replace(":", "%3A").replace("/", "%2F"), "the list's query")


@test(timeout=30)
def usage_rows_are_estimated_and_streams_fine_in_parallel(ctx):
    from concurrent.futures import ThreadPoolExecutor
    reset(ctx)

    def one(i):
        if i % 2:
            s, _, ev = anthropic_stream(ctx, messages("p%d " % i + directive(events=20),
                                                      model=MODEL))
            return s == 200 and ev[-1][0] == "message_stop"
        s, _, doc = post(ctx, "/v1/chat/completions", chat("p%d" % i, model=MODEL))
        return s == 200 and doc["choices"][0]["message"]["content"]
    with ThreadPoolExecutor(8) as ex:
        eq(all(ex.map(one, range(24))), True, "all answered")
    s, _, _ = post(ctx, "/v1/chat/completions", chat("an OpenAI call"))
    eq(s, 200, "OpenAI call")
    time.sleep(0.5)
    db = sqlite3.connect(os.path.join(ctx.gw.var, "antigw.db"))
    rows = db.execute("SELECT provider, tokens_estimated, input_tokens, output_tokens, status, "
                      "credits, ttft_ms FROM usage WHERE provider LIKE 'kiro-%' ORDER BY id DESC LIMIT 24"
                      ).fetchall()
    other = db.execute("SELECT credits FROM usage WHERE provider = 'mock-openai'").fetchall()
    db.close()
    eq(len(rows), 24, "rows")
    check(all(r[1] == 1 and r[2] == 5000 and r[3] > 0 and r[4] == 200 for r in rows), rows[:3])
    check(all(abs(r[5] - 0.0123) < 1e-9 for r in rows), "credits from meteringEvent: %r" % rows[:3])
    check(all(r[6] is not None and r[6] >= 0 for r in rows), "time to first token: %r" % rows[:3])
    check(all(r[0] is None for r in other), "no credits where none were charged")
    s, doc = admin(ctx, "GET", "/admin/usage?provider=kiro-a")
    eq(s, 200, "admin usage")
    check(doc["totals"]["credits"] >= 24 * 0.0123 - 1e-6, doc["totals"])
    # /metrics: the estimates apart from the reported counts.
    s, _, body = ctx.gw.call("GET", "/metrics", key=None)
    eq(s, 200, "/metrics")
    text = body.decode()
    est = re.findall(r'^antigateway_tokens_estimated_total\{provider="kiro-a",model="[^"]*",'
                     r'type="input"\} (\d+)$', text, re.M)
    check(est and sum(int(x) for x in est) >= 24 * 5000, "estimated input: %r" % est)
    check(not re.search(r'^antigateway_tokens_total\{provider="kiro-a"', text, re.M),
          "no reported counts for Kiro")


@test(timeout=300)
def official_sdks(ctx):
    """tests/sdk/kiro.test.mjs: both SDKs, streamed and not, text, a two-turn
    tool round trip, images, thinking, errors; the mock's records checked
    field by field (the priority strategy sends every call to kiro-a)."""
    import shutil
    import test_sdk
    reset(ctx)
    node = shutil.which("node")
    check(node, "node is not installed (deploy/quickstart.sh check installs it)")
    where = test_sdk.sdk_dir_ready()
    check(where, "npm ci in tests/sdk failed")
    env = dict(os.environ, GATEWAY_URL="http://127.0.0.1:%d" % ctx.gw.port,
               GATEWAY_KEY=CLIENT_KEY,
               OPENAI_MOCK_URL="http://127.0.0.1:%d" % ctx.openai.port,
               ANTHROPIC_MOCK_URL="http://127.0.0.1:%d" % ctx.anthropic.port,
               KIRO_MOCK_URL="http://127.0.0.1:%d" % ctx.kiro_a.port,
               KIRO_TOKEN=TOKEN_A, KIRO_PROFILE_ARN=ARN_A)
    for k in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
              "ANTHROPIC_AUTH_TOKEN"):
        env.pop(k, None)
    r = subprocess.run([node, "--test", "--test-reporter=tap",
                        os.path.join(where, "kiro.test.mjs")], cwd=where, env=env,
                       capture_output=True, text=True, timeout=280)
    passed = len(re.findall(r"^ok \d+ - kiro", r.stdout, re.M))
    failed = [line for line in r.stdout.splitlines() if line.startswith("not ok")]
    check(r.returncode == 0 and not failed and passed == 8,
          "SDK tests: %d passed, failed %r:\n%s" % (passed, failed, r.stdout[-4000:]))
    time.sleep(2.5)  # the last one throttled both accounts: let them cool down


@test(timeout=30)
def tokens_never_reach_a_log(ctx):
    for t in (TOKEN_A, TOKEN_B, "refresh-kiro-a"):
        check(t not in ctx.gw.log_text(), "token in the pool's log")
        check(t not in ctx.gw.admin_log_text(), "token in the admin log")


# ---- continuation (on by default for Kiro) ----

def rounds(*rs):
    return directive(rounds=json.dumps([list(r) for r in rs]).encode().hex())


def kiro_requests(mock):
    return [json.loads(base64.b64decode(r["body_b64"])) for r in mock.requests()
            if r["path"] == "/generateAssistantResponse"]


@test(timeout=30)
def cut_answers_continue_into_one_message(ctx):
    reset(ctx)
    s, _, events = anthropic_stream(ctx, messages("go " + rounds(["Once upon ", "a ti"],
                                                                  ["me there was ", "a gateway."]),
                                                  model=MODEL))
    eq(s, 200, "status")
    text = "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
    eq(text, "Once upon a time there was a gateway.", "one seamless text")
    names = [n for n, _ in events if n != "ping"]
    eq((names.count("message_start"), names.count("message_stop")), (1, 1), "one message")
    eq([d["delta"]["stop_reason"] for n, d in events if n == "message_delta"], ["end_turn"],
       "the last round's stop")
    sent = kiro_requests(ctx.kiro_a)
    eq(len(sent), 2, "two rounds")
    cs = sent[1]["conversationState"]
    eq(cs["history"][-1]["assistantResponseMessage"]["content"], "Once upon a ti",
       "round 2: the answer so far as the assistant's turn")
    cur = cs["currentMessage"]["userInputMessage"]["content"]
    check(cur.startswith("Your previous message was cut off"), "then the instruction: %r" % cur)
    check(json.dumps(sent[1]).count("Once upon a ti") == 1, "the text so far is sent once")


@test(timeout=30)
def continuation_seam_is_sanitized_and_bounded(ctx):
    reset(ctx)
    # Kiro's default rules see a name split between two rounds
    s, _, doc = post(ctx, "/v1/chat/completions",
                     chat("go " + rounds(["I am Ki"], ["ro, at your service."]), model=MODEL))
    eq(s, 200, "status")
    eq(doc["choices"][0]["message"]["content"], "I am Claude, at your service.", "seam")
    # continuation.max_rounds (3 by default) follow-up calls, then the cut shows
    reset(ctx)
    s, _, doc = post(ctx, "/v1/chat/completions",
                     chat("go " + rounds(*[["r%d " % i] for i in range(8)]), model=MODEL))
    eq(s, 200, "status")
    eq((doc["choices"][0]["message"]["content"], doc["choices"][0]["finish_reason"]),
       ("r0 r1 r2 r3 ", "length"), "four calls, then cut")
    eq(len(kiro_requests(ctx.kiro_a)), 4, "four calls")


@test(timeout=30)
def responses_client_reaches_kiro(ctx):
    # the fourth client protocol on the third upstream one, streamed and not
    reset(ctx)
    body = {"model": MODEL, "instructions": "be brief",
            "input": [{"role": "user", "content": [
                {"type": "input_text", "text": "hi " + directive(events=2, text="Yo")}]}]}
    s, _, d = ctx.gw.call("POST", "/v1/responses", body=body)
    eq(s, 200, d)
    doc = json.loads(d)
    eq((doc["object"], doc["status"]), ("response", "completed"), "a completed response")
    texts = [c["text"] for item in doc["output"] if item["type"] == "message"
             for c in item["content"] if c["type"] == "output_text"]
    eq(texts, ["Yo0 Yo1"], "output text")
    _, kb = last_kiro_request(ctx.kiro_a)
    cs = kb["conversationState"]
    eq(cs["history"][0]["userInputMessage"]["content"], "be brief", "instructions as the system pair")
    s, _, lines = ctx.gw.stream("/v1/responses", dict(body, stream=True))
    eq(s, 200, "status")
    names = [n for n, _ in sse_events(lines)]
    eq((names[0], names[-1]), ("response.created", "response.completed"), "typed events")
    deltas = "".join(json.loads(dd)["delta"] for n, dd in sse_events(lines)
                     if n == "response.output_text.delta")
    eq(deltas, "Yo0 Yo1", "streamed text")


def main():
    ctx = Ctx()
    why = suite_setup(ctx)
    if why:
        return bail(why)
    ctx.kiro_a = KiroMock(ctx.work, "kiro-a", TOKEN_A)
    ctx.kiro_b = KiroMock(ctx.work, "kiro-b", TOKEN_B)
    ctx.gw = Gateway(ctx.work, config(ctx), processes=PROCESSES, threads=THREADS, admin=True)
    with open(os.path.join(ctx.gw.var, "secret.key"), "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(base64.b16encode(os.urandom(32)).decode().lower() + "\n")

    def ready():
        import_account(ctx, "kiro-a", TOKEN_A, ARN_A)
        import_account(ctx, "kiro-b", TOKEN_B, ARN_B)
    return run_suite(ctx, stop_after=(ctx.kiro_a, ctx.kiro_b, ctx.openai, ctx.anthropic),
                     ready=ready)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The OpenAI Responses API end to end, through real lighttpd and the real
antigw-fcgi pool: POST /v1/responses passed through to a Responses provider
(mock-openai's *-codex models, responses_models) and converted to chat
completions and Anthropic providers; chat and Anthropic clients converted to
the Responses provider; the stateless refusals and other bad input as 400s
in the Responses error shape; usage rows; a broken stream."""

import base64
import json
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (OPENAI_KEY, Gateway, bail, chat, check, directive, eq, messages,  # noqa: E402
                     refused_port, run_suite, sse_events, standard_config, suite_setup, test,
                     wait_for)

CODEX = "gpt-5-codex"      # mock-openai serves it through /v1/responses
GPT = "gpt-4o-mini"        # mock-openai, chat completions
CLAUDE = "claude-sonnet-4-20250514"
TOOL = {"type": "function", "name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHw"
       "AFBQIAX8jx0gAAAABJRU5ErkJggg==")


class Ctx:
    pass


def responses(content, model=CODEX, stream=False, **extra):
    body = {"model": model, "input": content}
    if stream:
        body["stream"] = True
    body.update(extra)
    return body


def mock_posts(mock, path):
    return [r for r in mock.requests() if r["path"] == path and r["method"] == "POST"]


def sent_body(mock, path):
    reqs = mock_posts(mock, path)
    check(reqs, "the mock saw no request to " + path)
    return base64.b64decode(reqs[-1]["body_b64"])


def stream_events(ctx, body, path="/v1/responses"):
    s, h, lines = ctx.gw.stream(path, body)
    eq(s, 200, "status")
    check(h["content-type"].startswith("text/event-stream"), "an event stream: %r" % h)
    return [(n, json.loads(d) if d != "[DONE]" else d) for n, d in sse_events(lines)]


def check_sequence(events):
    """Every event names its type twice and is numbered from 0 without gaps."""
    for i, (name, data) in enumerate(events):
        eq(name, data["type"], "event %d: its event line names its type" % i)
        eq(data["sequence_number"], i, "event %d: sequence_number" % i)


def usage_row(ctx, input_tokens):
    c = sqlite3.connect(os.path.join(ctx.gw.var, "antigw.db"), timeout=10)
    try:
        return c.execute("SELECT provider, model, status, input_tokens, output_tokens,"
                         " cache_read_tokens, streamed, tokens_estimated FROM usage"
                         " WHERE input_tokens = ? ORDER BY id DESC LIMIT 1",
                         (input_tokens,)).fetchone()
    finally:
        c.close()


def error_of(data):
    doc = json.loads(data)
    check(set(doc) == {"error"}, "an OpenAI-shaped error body: %r" % doc)
    check(set(doc["error"]) == {"message", "type", "param", "code"}, "error fields: %r" % doc)
    return doc["error"]


# ---- passthrough ----

@test()
def passthrough_is_byte_for_byte(ctx):
    ctx.openai.reset()
    body = json.dumps(responses("hi " + directive(events=2), instructions="terse",
                                tools=[{"type": "web_search_preview"}],
                                include=["reasoning.encrypted_content"], store=False),
                      separators=(",", ":")).encode()
    s, h, data = ctx.gw.call("POST", "/v1/responses", body=body,
                             headers={"Content-Type": "application/json"})
    eq(s, 200, "status")
    eq(sent_body(ctx.openai, "/v1/responses"), body, "the client's bytes went upstream unchanged")
    doc = json.loads(data)
    eq((doc["object"], doc["status"], doc["output"][0]["content"][0]["text"]),
       ("response", "completed", "Hello0 Hello1"), "the mock's response object")
    check(doc["id"].startswith("resp_mock"), "the upstream's own id: %r" % doc["id"])


@test()
def passthrough_stream_and_usage_row(ctx):
    events = stream_events(ctx, responses(directive(events=3, input_tokens=7771, output_tokens=9,
                                                    cache_read=5), stream=True))
    check_sequence(events)
    eq(events[0][0], "response.created", "first event")
    eq(events[-1][0], "response.completed", "last event")
    text = "".join(d["delta"] for n, d in events if n == "response.output_text.delta")
    eq(text, "Hello0 Hello1 Hello2", "deltas")
    row = wait_for(lambda: usage_row(ctx, 7771), 10, "the usage row")
    eq(row, ("mock-openai", CODEX, 200, 7771, 9, 5, 1, 0), "usage row (input excludes cached)")


@test()
def passthrough_answer_in_the_form_asked(ctx):
    # The upstream streams though the client did not ask: the gateway folds
    # the stream into one response object; and the other way round.
    s, h, data = ctx.gw.call("POST", "/v1/responses", body=responses(directive(events=2,
                                                                               answer="sse")))
    eq(s, 200, "status")
    check(h["content-type"].startswith("application/json"), "a JSON answer: %r" % h)
    doc = json.loads(data)
    eq((doc["object"], doc["status"]), ("response", "completed"), "folded")
    eq(doc["output"][0]["content"][0]["text"], "Hello0 Hello1", "text")
    events = stream_events(ctx, responses(directive(events=2, answer="json"), stream=True))
    check_sequence(events)
    eq(events[-1][0], "response.completed", "a stream made of the JSON answer")
    text = "".join(d["delta"] for n, d in events if n == "response.output_text.delta")
    eq(text, "Hello0 Hello1", "its text")


@test()
def stateless_refusals_on_every_path(ctx):
    cases = [({"previous_response_id": "resp_1"}, "previous_response_id"),
             ({"background": True}, "background"),
             ({"store": True}, "store"),
             ({"conversation": "conv_1"}, "conversation")]
    for model in (CODEX, GPT, CLAUDE):
        for extra, word in cases:
            ctx.openai.reset()
            s, _, data = ctx.gw.call("POST", "/v1/responses", body=responses("hi", model, **extra))
            eq(s, 400, "%s with %r" % (model, extra))
            err = error_of(data)
            eq(err["type"], "invalid_request_error", "type")
            check(word in err["message"] and "stateless" in err["message"],
                  "the message names %s and says why: %r" % (word, err["message"]))
            eq(mock_posts(ctx.openai, "/v1/responses"), [], "nothing went upstream")


# ---- a Responses client on other providers ----

@test()
def converted_to_chat_not_streamed(ctx):
    ctx.openai.reset()
    s, _, data = ctx.gw.call("POST", "/v1/responses", body=responses(
        [{"role": "developer", "content": "be brief"},
         {"role": "user", "content": [{"type": "input_text", "text": "look " + directive(
             events=2, input_tokens=30, output_tokens=4, cache_read=10)},
             {"type": "input_image", "image_url": PNG}]}],
        model=GPT, instructions="You are terse.", max_output_tokens=77, temperature=0.5))
    eq(s, 200, "status")
    doc = json.loads(data)
    eq((doc["object"], doc["status"], doc["model"]), ("response", "completed", GPT), "response")
    eq(doc["output"][0]["type"], "message", "item type")
    eq(doc["output"][0]["content"][0]["text"], "Hello0 Hello1", "text")
    # The chat mock's prompt_tokens (30) include its 10 cached ones.
    eq(doc["usage"], {"input_tokens": 30, "input_tokens_details": {"cached_tokens": 10},
                      "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": 34}, "usage")
    up = json.loads(sent_body(ctx.openai, "/v1/chat/completions"))
    eq(up["messages"][0], {"role": "system", "content": "You are terse.\n\nbe brief"}, "system")
    eq(up["messages"][1]["content"][1]["image_url"]["url"], PNG, "the image went along")
    eq((up["max_completion_tokens"], up["temperature"]), (77, 0.5), "parameters")


@test()
def converted_to_anthropic_stream_with_tool(ctx):
    ctx.anthropic.reset()
    events = stream_events(ctx, responses(
        [{"role": "user", "content": "weather? " + directive(tool="get_weather")}],
        model=CLAUDE, stream=True, tools=[TOOL], tool_choice="required", max_output_tokens=50))
    check_sequence(events)
    names = [n for n, _ in events]
    eq(names[:3], ["response.created", "response.in_progress", "response.output_item.added"],
       "opening events")
    eq(names[-2:], ["response.output_item.done", "response.completed"], "closing events")
    added = events[2][1]["item"]
    eq((added["type"], added["name"], added["call_id"][:10]),
       ("function_call", "get_weather", "toolu_mock"), "the call as it starts")
    eq(added["id"], "fc_" + added["call_id"], "its item id")
    args = "".join(d["delta"] for n, d in events if n == "response.function_call_arguments.delta")
    eq(json.loads(args), {"location": "Paris, France", "unit": "celsius"}, "arguments")
    done = [d for n, d in events if n == "response.function_call_arguments.done"][0]
    eq((done["name"], json.loads(done["arguments"])), ("get_weather", json.loads(args)), "done")
    final = events[-1][1]["response"]
    eq(final["output"][0]["arguments"], args, "the final output holds the call")
    up = json.loads(sent_body(ctx.anthropic, "/v1/messages"))
    eq(up["tools"][0]["name"], "get_weather", "tool to Anthropic")
    eq(up["tool_choice"], {"type": "any"}, "required -> any")
    eq(up["max_tokens"], 50, "max_output_tokens")


@test()
def tool_round_trip_to_anthropic(ctx):
    ctx.anthropic.reset()
    s, _, data = ctx.gw.call("POST", "/v1/responses", body=responses([
        {"role": "user", "content": "weather?"},
        {"type": "reasoning", "id": "rs_msg_01_0", "summary": [{"type": "summary_text", "text": "hm"}],
         "encrypted_content": "c2ln"},
        {"type": "function_call", "call_id": "toolu_1", "name": "get_weather",
         "arguments": "{\"location\":\"Paris\"}"},
        {"type": "function_call_output", "call_id": "toolu_1", "output": "sunny " + directive(events=1)},
    ], model=CLAUDE, tools=[TOOL]))
    eq(s, 200, "status %r" % data)
    up = json.loads(sent_body(ctx.anthropic, "/v1/messages"))
    eq([m["role"] for m in up["messages"]], ["user", "assistant", "user"], "turns")
    eq(up["messages"][1]["content"][0], {"type": "thinking", "thinking": "hm", "signature": "c2ln"},
       "reasoning item -> thinking with its signature")
    eq(up["messages"][1]["content"][1]["type"], "tool_use", "call")
    eq(up["messages"][1]["content"][1]["input"], {"location": "Paris"}, "call input")
    eq(up["messages"][2]["content"][0]["type"], "tool_result", "result")
    eq(up["messages"][2]["content"][0]["tool_use_id"], "toolu_1", "result id")


@test()
def thinking_from_anthropic_becomes_reasoning(ctx):
    s, _, data = ctx.gw.call("POST", "/v1/responses", body=responses(
        "think " + directive(thinking=1, events=1), model=CLAUDE,
        reasoning={"effort": "low"}))
    eq(s, 200, "status")
    doc = json.loads(data)
    eq([i["type"] for i in doc["output"]], ["reasoning", "message"], "items")
    eq(doc["output"][0]["summary"], [{"type": "summary_text", "text": "Let me think about this."}],
       "summary")
    check(doc["output"][0]["encrypted_content"], "the signature travels as encrypted_content")


@test()
def bad_input_gets_400_in_the_responses_shape(ctx):
    cases = [
        (responses("hi", CLAUDE, tools=[{"type": "web_search_preview"}]), "web_search_preview"),
        (responses("hi", GPT, tools=[{"type": "file_search", "vector_store_ids": ["v"]}]),
         "file_search"),
        (responses("hi", GPT, text={"format": {"type": "json_schema", "name": "x",
                                               "schema": {}}}), "text.format"),
        ({"model": GPT}, "input: required"),
        (responses([{"type": "item_reference", "id": "msg_1"}], GPT), "item_reference"),
        (responses([{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}],
                   CLAUDE), "input_file"),
        (responses("hi", CLAUDE, max_output_tokens=0), "max_output_tokens"),
        (responses("hi", CLAUDE, reasoning={"effort": "extreme"}), "reasoning.effort"),
        (responses([{"role": "wizard", "content": "x"}], CLAUDE), "input[0].role"),
    ]
    for body, word in cases:
        s, _, data = ctx.gw.call("POST", "/v1/responses", body=body)
        eq(s, 400, "status for %r" % body)
        err = error_of(data)
        check(word in err["message"], "%r names %r" % (err["message"], word))
    s, _, data = ctx.gw.call("POST", "/v1/responses", body=b"{\"model\":",
                             headers={"Content-Type": "application/json"})
    eq(s, 400, "invalid JSON")
    error_of(data)
    s, _, data = ctx.gw.call("GET", "/v1/responses")
    eq(s, 405, "GET")
    error_of(data)
    s, _, data = ctx.gw.call("GET", "/v1/responses/resp_123")
    eq(s, 404, "retrieval")
    err = error_of(data)
    check("stateless" in err["message"] and "resp_123" in err["message"], err["message"])
    eq(err["code"], "response_not_found", "code")


@test()
def upstream_errors_reach_a_responses_client(ctx):
    s, h, data = ctx.gw.call("POST", "/v1/responses",
                             body=responses(directive(status=429, retry_after=3), CLAUDE))
    eq(s, 429, "Anthropic 429")
    eq(error_of(data)["type"], "rate_limit_error", "type")
    s, _, data = ctx.gw.call("POST", "/v1/responses",
                             body=responses(directive(status=529), CLAUDE))
    eq(s, 503, "Anthropic 529 -> 503")
    s, _, data = ctx.gw.call("POST", "/v1/responses", body=responses(directive(status=400)))
    eq(s, 400, "passthrough 400")
    error_of(data)


@test()
def broken_stream_ends_with_an_error_event(ctx):
    for model in (CODEX, GPT, CLAUDE):
        s, _, lines = ctx.gw.stream("/v1/responses",
                                    responses(directive(events=5, reset_after=3), model,
                                              stream=True))
        eq(s, 200, "status")
        events = sse_events(lines)
        name, data = events[-1]
        doc = json.loads(data)
        check(name in ("error", "response.failed"), "%s: ends with %r" % (model, name))
        eq(doc["type"], name, "type")
        if name == "error":
            check(doc["message"] and doc["code"] == "server_error", "error: %r" % doc)
        eq(doc["sequence_number"], json.loads(events[-2][1])["sequence_number"] + 1,
           "%s: the last event is numbered after the others" % model)


@test()
def incomplete_when_out_of_tokens(ctx):
    for model in (GPT, CLAUDE):
        s, _, data = ctx.gw.call("POST", "/v1/responses",
                                 body=responses(directive(finish="length"), model))
        eq(s, 200, "status")
        doc = json.loads(data)
        eq((doc["status"], doc["incomplete_details"]), ("incomplete",
                                                       {"reason": "max_output_tokens"}), model)
        events = stream_events(ctx, responses(directive(finish="length"), model, stream=True))
        eq(events[-1][0], "response.incomplete", "%s: streamed" % model)


# ---- other clients on the Responses provider ----

@test()
def chat_client_on_a_responses_provider(ctx):
    ctx.openai.reset()
    s, _, data = ctx.gw.call("POST", "/v1/chat/completions", body=chat(
        "hi " + directive(events=2, input_tokens=20, output_tokens=3, reasoning_tokens=2),
        model=CODEX, max_tokens=40, tools=[{"type": "function", "function": {
            "name": "f", "parameters": {"type": "object"}}}]))
    eq(s, 200, "status")
    doc = json.loads(data)
    eq(doc["choices"][0]["message"]["content"], "Hello0 Hello1", "text")
    eq((doc["usage"]["prompt_tokens"], doc["usage"]["completion_tokens"],
        doc["usage"]["completion_tokens_details"]["reasoning_tokens"]), (20, 3, 2), "usage")
    up = json.loads(sent_body(ctx.openai, "/v1/responses"))
    eq(up["input"][0]["role"], "user", "input item")
    eq(up["max_output_tokens"], 40, "max_tokens -> max_output_tokens")
    eq(up["store"], False, "the gateway keeps nothing and asks the upstream to keep nothing")
    eq(up["tools"][0], {"type": "function", "name": "f", "parameters": {"type": "object"},
                        "strict": False}, "tool")
    ev = stream_events(ctx, chat(directive(events=3), model=CODEX, stream=True,
                                 stream_options={"include_usage": True}),
                       path="/v1/chat/completions")
    eq(ev[-1], (None, "[DONE]"), "ends with [DONE]")
    text = "".join(d["choices"][0]["delta"].get("content") or "" for _, d in ev[:-1]
                   if d["choices"])
    eq(text, "Hello0 Hello1 Hello2", "streamed text")


@test()
def anthropic_client_on_a_responses_provider(ctx):
    ctx.openai.reset()
    events = stream_events(ctx, messages("w " + directive(tool="get_weather", thinking=1),
                                         model=CODEX, stream=True,
                                         tools=[{"name": "get_weather",
                                                 "input_schema": {"type": "object"}}]),
                           path="/v1/messages")
    names = [n for n, _ in events]
    eq(names[0], "message_start", "start")
    eq(names[-1], "message_stop", "stop")
    blocks = [d["content_block"]["type"] for n, d in events if n == "content_block_start"]
    eq(blocks, ["thinking", "tool_use"], "reasoning -> thinking, function_call -> tool_use")
    delta = [d for n, d in events if n == "message_delta"][0]
    eq(delta["delta"]["stop_reason"], "tool_use", "stop reason")
    up = json.loads(sent_body(ctx.openai, "/v1/responses"))
    eq(up["tools"][0]["name"], "get_weather", "tool")
    eq(up["stream"], True, "streamed upstream")


# ---- failover ----

@test()
def failover_between_responses_providers(ctx):
    # fo-* is served by a dead Responses provider (tried first: priority, the
    # higher weight) and by the mock: the call moves on before its first byte.
    ctx.openai.reset()
    body = responses("hi " + directive(events=2, input_tokens=6161), model="fo-model",
                     stream=True)
    events = stream_events(ctx, body)
    eq(events[-1][0], "response.completed", "the second provider answered")
    sent = json.loads(sent_body(ctx.openai, "/v1/responses"))
    eq(sent["model"], "fo-model", "the client's body went to the live provider")
    row = wait_for(lambda: usage_row(ctx, 6161), 10, "the usage row")
    eq(row[:3], ("live-resp", "fo-model", 200), "the answering provider is recorded")
    s, _, text = ctx.gw.call("GET", "/metrics")
    check(b'antigateway_failovers_total{provider="dead-resp"}' in text, "failover counted")


def config(openai_port, anthropic_port, dead_port):
    text = standard_config(openai_port, anthropic_port)
    extra = ('  { name = "dead-resp"; type = "openai"; base_url = "http://127.0.0.1:%d/v1";\n'
             '    api = "responses"; weight = 1000; models = [ "fo-*" ]; },\n'
             '  { name = "live-resp"; type = "openai"; base_url = "http://127.0.0.1:%d/v1";\n'
             '    api_key = "%s"; api = "responses"; weight = 1; models = [ "fo-*" ]; },\n'
             % (dead_port, openai_port, OPENAI_KEY))
    text = text.replace("providers = (\n", "providers = (\n" + extra, 1)
    return text + 'defaults: { lb_strategy = "priority"; health_check_enabled = false; };\n'


def main():
    ctx = Ctx()
    why = suite_setup(ctx)
    if why:
        return bail(why)
    dead = refused_port()
    ctx.gw = Gateway(ctx.work, config(ctx.openai.port, ctx.anthropic.port, dead.getsockname()[1]),
                     processes=2, threads=16)
    return run_suite(ctx, stop_after=(ctx.openai, ctx.anthropic, dead))


if __name__ == "__main__":
    sys.exit(main())

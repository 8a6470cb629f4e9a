#!/usr/bin/env python3
"""What the gateway does to answers on their way back, through real lighttpd
and a pool of antigw-fcgi processes: text rewritten by a provider's sanitize
rules (matches split across events, both client protocols, streamed and not,
passthrough and converted; tool calls left alone)."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Gateway, bail, chat, check, directive, eq, messages,  # noqa: E402
                     run_suite, sse_events, standard_config, suite_setup, test)

PROCESSES, THREADS = 2, 8


class Ctx:
    pass


def parts(*pieces):
    """The directive that makes the mock stream exactly these text deltas."""
    return directive(parts=json.dumps(list(pieces)).encode().hex())


# The rules of the "san-*" providers below, and an answer that needs each.
RULES = ('sanitize = true; sanitize_rules = (\n'
         '      { replace = "Amazon Q"; with = "Claude"; word = true; },\n'
         '      { replace = "Paris"; with = "PARIS"; },\n'
         '      { remove = "<tool_call>"; until = "</tool_call>"; } );')
PIECES = ("I am Ama", "zon Q, ask <tool", "_call>{\"x\":1}</tool", "_call>me. amazon q", "uick")
CLEAN = "I am Claude, ask me. amazon quick"


def openai_text(events):
    text = ""
    for _, d in events:
        if d == "[DONE]":
            continue
        doc = json.loads(d)
        if doc["choices"]:
            text += doc["choices"][0]["delta"].get("content") or ""
    return text


def anthropic_text(events):
    return "".join(json.loads(d)["delta"].get("text", "") for name, d in events
                   if name == "content_block_delta")


@test()
def openai_stream_rewritten_across_events(ctx):
    s, _, lines = ctx.gw.stream("/v1/chat/completions",
                                chat("hi " + parts(*PIECES), model="san-gpt-1", stream=True))
    eq(s, 200, "status")
    events = sse_events(lines)
    eq(events[-1], (None, "[DONE]"), "ends as OpenAI streams end")
    eq(openai_text(events), CLEAN, "rewritten text")
    finish = [json.loads(d)["choices"][0].get("finish_reason") for _, d in events[:-1]
              if json.loads(d)["choices"]]
    eq([f for f in finish if f], ["stop"], "one finish")


@test()
def openai_non_stream_rewritten(ctx):
    s, _, data = ctx.gw.call("POST", "/v1/chat/completions",
                             body=chat("hi " + parts(*PIECES), model="san-gpt-1"))
    eq(s, 200, "status")
    eq(json.loads(data)["choices"][0]["message"]["content"], CLEAN, "content")


@test()
def anthropic_stream_and_body_rewritten(ctx):
    s, _, lines = ctx.gw.stream("/v1/messages",
                                messages("hi " + parts(*PIECES), model="san-claude-1",
                                         stream=True))
    eq(s, 200, "status")
    events = sse_events(lines)
    eq(anthropic_text(events), CLEAN, "rewritten text")
    names = [n for n, _ in events if n != "ping"]
    eq(names.count("message_start"), 1, "one message")
    eq(names[-1], "message_stop", "ends with message_stop")
    s, _, data = ctx.gw.call("POST", "/v1/messages",
                             body=messages("hi " + parts(*PIECES), model="san-claude-1"))
    eq(s, 200, "status")
    eq(json.loads(data)["content"][0]["text"], CLEAN, "content")


@test()
def converted_answers_rewritten_too(ctx):
    # an Anthropic client on the OpenAI-type provider, and the other way
    s, _, lines = ctx.gw.stream("/v1/messages",
                                messages("hi " + parts(*PIECES), model="san-gpt-1", stream=True))
    eq(s, 200, "status")
    eq(anthropic_text(sse_events(lines)), CLEAN, "Anthropic client, OpenAI provider")
    s, _, data = ctx.gw.call("POST", "/v1/chat/completions",
                             body=chat("hi " + parts(*PIECES), model="san-claude-1"))
    eq(s, 200, "status")
    eq(json.loads(data)["choices"][0]["message"]["content"], CLEAN,
       "OpenAI client, Anthropic provider")


@test()
def tool_calls_are_not_touched(ctx):
    # the mock's tool arguments say "Paris, France"; the rules would change
    # "Paris" in text, never in arguments or names
    tools = [{"type": "function", "function": {"name": "Paris", "parameters": {"type": "object"}}}]
    s, _, data = ctx.gw.call("POST", "/v1/chat/completions",
                             body=chat("go " + directive(tool="Paris"), model="san-gpt-1",
                                       tools=tools))
    eq(s, 200, "status")
    call = json.loads(data)["choices"][0]["message"]["tool_calls"][0]["function"]
    eq(call["name"], "Paris", "tool name")
    eq(json.loads(call["arguments"])["location"], "Paris, France", "arguments")
    s, _, lines = ctx.gw.stream("/v1/messages",
                                messages("go " + directive(tool="Paris"), model="san-claude-1",
                                         stream=True,
                                         tools=[{"name": "Paris", "input_schema": {"type": "object"}}]))
    eq(s, 200, "status")
    events = sse_events(lines)
    args = "".join(json.loads(d)["delta"].get("partial_json", "") for n, d in events
                   if n == "content_block_delta")
    eq(json.loads(args)["location"], "Paris, France", "streamed arguments")
    starts = [json.loads(d)["content_block"] for n, d in events if n == "content_block_start"]
    eq([b.get("name") for b in starts if b["type"] == "tool_use"], ["Paris"], "tool name")


@test()
def providers_without_rules_pass_answers_unchanged(ctx):
    s, _, data = ctx.gw.call("POST", "/v1/chat/completions",
                             body=chat("hi " + parts(*PIECES), model="gpt-4o-mini"))
    eq(s, 200, "status")
    eq(json.loads(data)["choices"][0]["message"]["content"], "".join(PIECES), "untouched")


def main():
    ctx = Ctx()
    why = suite_setup(ctx)
    if why:
        return bail(why)
    cfg = standard_config(ctx.openai.port, ctx.anthropic.port, threads=THREADS)
    extra = (',\n  { name = "san-openai"; type = "openai"; base_url = "http://127.0.0.1:%d/v1";\n'
             '    api_key = "%s"; models = [ "san-gpt-*" ];\n    %s }'
             ',\n  { name = "san-anthropic"; type = "anthropic"; base_url = "http://127.0.0.1:%d";\n'
             '    api_key = "%s"; models = [ "san-claude-*" ];\n    %s }\n);\n')
    from harness import ANTHROPIC_KEY, OPENAI_KEY
    cfg = cfg.rstrip().rstrip(";").rstrip().rstrip(")").rstrip() + extra % (
        ctx.openai.port, OPENAI_KEY, RULES, ctx.anthropic.port, ANTHROPIC_KEY, RULES)
    cfg += 'defaults: { health_check_enabled = false; };\n'
    ctx.gw = Gateway(ctx.work, cfg, processes=PROCESSES, threads=THREADS)
    return run_suite(ctx, stop_after=(ctx.openai, ctx.anthropic))


if __name__ == "__main__":
    sys.exit(main())

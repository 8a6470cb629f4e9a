#!/usr/bin/env python3
"""What the gateway does to answers on their way back, through real lighttpd
and a pool of antigw-fcgi processes: text rewritten by a provider's sanitize
rules (matches split across events, both client protocols, streamed and not,
passthrough and converted; tool calls left alone), and answers cut by an
output cap continued into one message (prefill for Anthropic providers, an
instruction for the others; the client's own max_tokens, tool calls and the
round limit respected; failed rounds)."""

import json
import os
import sqlite3
import sys
import time

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


# ---- continuation ----

def rounds(*rs, **kw):
    return directive(rounds=json.dumps([list(r) for r in rs]).encode().hex(), **kw)


def upstream_requests(mock, path):
    return [json.loads(__import__("base64").b64decode(r["body_b64"])) for r in mock.requests()
            if r["path"] == path]


def usage_row_with_rounds(ctx, provider, rounds):
    """(output_tokens, status) of the newest usage row of `provider` whose
    answer took `rounds` continuation rounds, waiting for it (rows reach the
    database a moment after their response ends)."""
    deadline = time.time() + 10
    while True:
        c = sqlite3.connect(os.path.join(ctx.gw.var, "antigw.db"), timeout=10)
        try:
            row = c.execute("SELECT output_tokens, status FROM usage WHERE provider = ? AND"
                            " continuations = ? ORDER BY id DESC LIMIT 1",
                            (provider, rounds)).fetchone()
        finally:
            c.close()
        if row or time.time() > deadline:
            return row
        time.sleep(0.05)


def text_blocks(content):
    return [p for p in content if p.get("type") == "text"] if isinstance(content, list) else []


@test()
def anthropic_prefill_continuation_streams_one_message(ctx):
    ctx.anthropic.reset()
    script = rounds(["Hello, ", "wor"], ["ld. This is ", "long. "], [" The", " end."])
    s, _, lines = ctx.gw.stream("/v1/messages", messages("go " + script, model="cont-claude-1",
                                                         stream=True))
    eq(s, 200, "status")
    events = sse_events(lines)
    eq(anthropic_text(events), "Hello, world. This is long. The end.", "one seamless text")
    names = [n for n, _ in events if n != "ping"]
    eq((names.count("message_start"), names.count("message_stop"),
        names.count("content_block_start"), names.count("content_block_stop")),
       (1, 1, 1, 1), "one message, one text block")
    deltas = [json.loads(d) for n, d in events if n == "message_delta"]
    eq(len(deltas), 1, "one message_delta")
    eq(deltas[0]["delta"]["stop_reason"], "end_turn", "the last round's stop")
    eq(deltas[0]["usage"]["output_tokens"], 4 + 4 + 4, "output tokens of every round")
    sent = upstream_requests(ctx.anthropic, "/v1/messages")
    eq(len(sent), 3, "three rounds upstream")
    eq(sent[1]["messages"][-1], {"role": "assistant",
                                 "content": [{"type": "text", "text": "Hello, wor"}]},
       "round 2: the answer so far as prefill")
    eq(sent[2]["messages"][-1]["content"], [{"type": "text", "text": "Hello, world. This is long."}],
       "round 3: prefill without its trailing whitespace, nothing repeated")
    eq([m["role"] for m in sent[2]["messages"]], ["user", "assistant"], "no instruction")
    eq(usage_row_with_rounds(ctx, "cont-anthropic", 2), (12, 200),
       "one usage row with every round's tokens, saying there were two more rounds")


@test()
def openai_instruction_continuation_non_stream(ctx):
    ctx.openai.reset()
    s, _, data = ctx.gw.call("POST", "/v1/chat/completions",
                             body=chat("go " + rounds(["abc ", "def"], ["ghi"]),
                                       model="cont-gpt-1"))
    eq(s, 200, "status")
    doc = json.loads(data)
    eq(doc["choices"][0]["message"]["content"], "abc defghi", "joined")
    eq(doc["choices"][0]["finish_reason"], "stop", "finish of the last round")
    eq(doc["usage"]["completion_tokens"], 4 + 2, "completion tokens of both rounds")
    sent = upstream_requests(ctx.openai, "/v1/chat/completions")
    eq(len(sent), 2, "two rounds")
    msgs = sent[1]["messages"]
    eq(msgs[-2], {"role": "assistant", "content": "abc def"}, "the answer so far, whole")
    eq(msgs[-1]["role"], "user", "then the instruction")
    check("Continue" in msgs[-1]["content"] and "abc def" not in msgs[-1]["content"],
          "the instruction does not repeat the text: %r" % msgs[-1]["content"])


@test()
def openai_client_on_anthropic_provider_streams_one_message(ctx):
    ctx.anthropic.reset()
    s, _, lines = ctx.gw.stream("/v1/chat/completions",
                                chat("go " + rounds(["Grüße€ ", "über"], ["all€s"]),
                                     model="cont-claude-1", stream=True,
                                     stream_options={"include_usage": True}))
    eq(s, 200, "status")
    events = sse_events(lines)
    eq(openai_text(events), "Grüße€ überall€s", "joined at a multibyte seam")
    docs = [json.loads(d) for _, d in events if d != "[DONE]"]
    eq([c["choices"][0]["finish_reason"] for c in docs if c["choices"] and
        c["choices"][0].get("finish_reason")], ["stop"], "one finish")
    eq(len({c["id"] for c in docs}), 1, "one completion id")
    eq(docs[-1]["usage"]["completion_tokens"], 4 + 2, "usage of both rounds")


@test()
def client_max_tokens_is_honoured(ctx):
    ctx.anthropic.reset()
    # the client's own cap reached: not continued
    s, _, data = ctx.gw.call("POST", "/v1/messages",
                             body=messages("go " + rounds(["a", "b"], ["c"], output_tokens=10),
                                           model="cont-claude-1", max_tokens=10))
    eq(s, 200, "status")
    doc = json.loads(data)
    eq((doc["content"][0]["text"], doc["stop_reason"]), ("ab", "max_tokens"), "not continued")
    eq(len(upstream_requests(ctx.anthropic, "/v1/messages")), 1, "one call")
    # a cap below the client's (the model's own): continued, within what is left
    ctx.anthropic.reset()
    s, _, data = ctx.gw.call("POST", "/v1/messages",
                             body=messages("go " + rounds(["a", "b"], ["c"], output_tokens=10),
                                           model="cont-claude-1", max_tokens=100))
    eq(s, 200, "status")
    eq(json.loads(data)["content"][0]["text"], "abc", "continued")
    sent = upstream_requests(ctx.anthropic, "/v1/messages")
    eq([r["max_tokens"] for r in sent], [100, 90], "the second round gets what is left")


@test()
def tool_calls_are_never_continued(ctx):
    ctx.openai.reset()
    tools = [{"type": "function", "function": {"name": "get_weather",
                                               "parameters": {"type": "object"}}}]
    s, _, data = ctx.gw.call("POST", "/v1/chat/completions",
                             body=chat("go " + directive(tool="get_weather", finish="length"),
                                       model="cont-gpt-1", tools=tools))
    eq(s, 200, "status")
    eq(json.loads(data)["choices"][0]["finish_reason"], "length", "the cut is the client's to see")
    eq(len(upstream_requests(ctx.openai, "/v1/chat/completions")), 1, "one call")


@test()
def round_limit_holds(ctx):
    ctx.anthropic.reset()
    script = rounds(*[["r%d " % i] for i in range(8)])
    s, _, lines = ctx.gw.stream("/v1/messages", messages("go " + script, model="cont-claude-1",
                                                         stream=True))
    eq(s, 200, "status")
    events = sse_events(lines)
    eq(anthropic_text(events), "r0 r1 r2 r3 ", "the first call and max_rounds (3) more")
    eq([json.loads(d)["delta"]["stop_reason"] for n, d in events if n == "message_delta"],
       ["max_tokens"], "ends cut, once")
    eq(len(upstream_requests(ctx.anthropic, "/v1/messages")), 4, "four calls")


@test()
def failed_round_ends_the_answer(ctx):
    # streaming: what was sent, then the protocol's error event
    ctx.anthropic.reset()
    s, _, lines = ctx.gw.stream("/v1/messages",
                                messages("go " + rounds(["one "], ["two"], fail_round=1),
                                         model="cont-claude-1", stream=True))
    eq(s, 200, "status")
    events = sse_events(lines)
    eq(anthropic_text(events), "one ", "the first round's text")
    eq(events[-1][0], "error", "then an error event")
    check("message_stop" not in [n for n, _ in events], "no clean end")
    # not streaming: the answer so far, cut
    s, _, data = ctx.gw.call("POST", "/v1/chat/completions",
                             body=chat("go " + rounds(["one "], ["two"], fail_round=1),
                                       model="cont-claude-1"))
    eq(s, 200, "status")
    doc = json.loads(data)
    eq((doc["choices"][0]["message"]["content"], doc["choices"][0]["finish_reason"]),
       ("one ", "length"), "the first round, cut")


@test()
def continuations_are_counted(ctx):
    s, _, body = ctx.gw.call("GET", "/metrics", key=None)
    eq(s, 200, "status")
    lines = [l for l in body.decode().splitlines()
             if l.startswith('antigateway_continuations_total{provider="cont-anthropic"}')]
    check(lines and float(lines[0].split()[-1]) >= 6, "continuation rounds counted: %r" % lines)


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
    cont = ('  { name = "cont-openai"; type = "openai"; base_url = "http://127.0.0.1:%d/v1";\n'
            '    api_key = "%s"; models = [ "cont-gpt-*" ]; continuation = true; },\n'
            '  { name = "cont-anthropic"; type = "anthropic"; base_url = "http://127.0.0.1:%d";\n'
            '    api_key = "%s"; models = [ "cont-claude-*" ]; continuation = true; },\n'
            % (ctx.openai.port, OPENAI_KEY, ctx.anthropic.port, ANTHROPIC_KEY))
    cfg = cfg.replace("providers = (\n", "providers = (\n" + cont, 1)
    cfg += "continuation: { max_rounds = 3; };\n"
    cfg += 'defaults: { health_check_enabled = false; };\n'
    ctx.gw = Gateway(ctx.work, cfg, processes=PROCESSES, threads=THREADS)
    return run_suite(ctx, stop_after=(ctx.openai, ctx.anthropic))


if __name__ == "__main__":
    sys.exit(main())

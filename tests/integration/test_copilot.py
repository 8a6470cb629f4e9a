#!/usr/bin/env python3
"""GitHub Copilot end to end: the device flow through antigw-admin with every
outcome, the Copilot token shared by a pool of 4 processes (one exchange for
200 concurrent requests on an expired token, renewal at refresh_in - 60 s),
Copilot's headers and endpoints, failover on 402, and the bad input of the
admin endpoints. Real lighttpd, the real pools, a real SQLite file; GitHub
and the Copilot API are the mocks tests/mock/github.py and copilot_api.py."""

import base64
import json
import os
import re
import sqlite3
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CLIENT_KEY, SRCDIR, Gateway, Mock, bail, chat, check, eq,  # noqa: E402
                     messages, read_lines, run_suite, sse_events, suite_setup, test, wait_for)

PROCESSES, THREADS = 4, 16
ADMIN_KEY = "agw-copilot-admin-key-0123456789abcdef"
SECRET = "copilot-mock-signing-secret"
PRESET_GITHUB_TOKEN = "ghu_presetAdminToken0123456789"
GITHUB = os.path.join(SRCDIR, "tests", "mock", "github.py")
COPILOT = os.path.join(SRCDIR, "tests", "mock", "copilot_api.py")
# What a Copilot call must carry besides its token and the per-call ones.
EDITOR_HEADERS = {"copilot-integration-id": "vscode-chat", "editor-version": "vscode/1.99.3",
                  "editor-plugin-version": "copilot-chat/0.26.7",
                  "user-agent": "GitHubCopilotChat/0.26.7", "openai-intent": "conversation-panel",
                  "x-github-api-version": "2025-04-01"}


class Ctx:
    pass


def config(ctx):
    gh = "http://127.0.0.1:%d" % ctx.github.port
    return """
server: {
  log_level = "info";
  threads = %d;
  connect_timeout_ms = 2000;
  idle_timeout_seconds = 20;
  stream_commit_ms = 10000;
  shutdown_grace_seconds = 5;
};
auth: { api_key = "%s"; admin_key = "%s"; };
database: { path = "antigw.db"; };
secrets: { key_file = "secret.key"; };
defaults: { lb_strategy = "priority"; health_check_enabled = false; cooldown_seconds = 2;
            max_attempts = 3; };
providers = (
  { name = "cp1"; type = "copilot"; weight = 300; github_url = "%s"; github_api_url = "%s"; },
  { name = "cp2"; type = "copilot"; weight = 200; base_url = "http://127.0.0.1:%d";
    github_url = "%s"; github_api_url = "%s"; },
  { name = "cp3"; type = "copilot"; weight = 100; github_url = "%s"; github_api_url = "%s"; },
  { name = "mock-openai"; type = "openai"; base_url = "http://127.0.0.1:%d/v1";
    api_key = "k"; models = [ "oa-*" ]; }
);
""" % (THREADS, CLIENT_KEY, ADMIN_KEY, gh, gh, ctx.copilot_b.port, gh, gh, gh, gh,
       ctx.openai.port)


# ---- helpers ----

def admin(ctx, method, path, body=None):
    """An admin call: (status, parsed JSON or None, raw bytes)."""
    s, _, d = ctx.gw.call(method, path, body=body, key=ADMIN_KEY)
    try:
        return s, json.loads(d), d
    except ValueError:
        return s, None, d


def mock_post(mock, path, obj=None):
    data = json.dumps(obj).encode() if obj is not None else b""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (mock.port, path), data=data,
                                 method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def github_config(ctx, **settings):
    return mock_post(ctx.github, "/_mock/config", settings)


def github_stats(ctx):
    return ctx.github.get("stats")


def calls(mock, path=None):
    """The API calls `mock` recorded (optionally to `path`): [(headers dict
    lower-cased, body bytes)]."""
    out = []
    for r in mock.requests():
        if path is None or r["path"].split("?")[0] == path:
            out.append(({k.lower(): v for k, v in r["headers"]}, base64.b64decode(r["body_b64"])))
    return out


def reset_copilot(ctx):
    ctx.copilot_a.reset()
    ctx.copilot_b.reset()


def login(ctx, provider, outcomes, **settings):
    """Starts a device login for `provider` with GitHub scripted to answer
    `outcomes`; returns the 201 answer."""
    cfg = {"interval": 1, "slow_down_interval": None}
    cfg.update(settings)
    github_config(ctx, outcomes=outcomes, **cfg)
    s, j, d = admin(ctx, "POST", "/admin/copilot/login", {"provider": provider})
    eq(s, 201, "login start: %r" % d)
    return j


def poll_until(ctx, login_id, want, timeout=15):
    """GETs the session every 0.2 s until its status is `want` (or a 410 for
    "expired"); returns the last answer."""
    end = time.time() + timeout
    while True:
        s, j, d = admin(ctx, "GET", "/admin/copilot/login/" + login_id)
        status = "expired" if s == 410 else (j or {}).get("status")
        if status == want:
            return s, j
        check(s in (200, 410), "login status answered %d: %r" % (s, d))
        check(status == "pending", "login became %r, not %r: %r" % (status, want, d))
        check(time.time() < end, "login %s never became %s" % (login_id, want))
        time.sleep(0.2)


def no_secret_in(what, data):
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    for mark in ("gho_mock", "tid=", PRESET_GITHUB_TOKEN, "dc-"):
        check(mark not in text, "%s holds a token (%r)" % (what, mark))


# ---- the device flow ----

@test(timeout=60)
def device_flow_completes_after_pending(ctx):
    j = login(ctx, "cp1", ["authorization_pending", "ok"])
    for k in ("id", "user_code", "verification_uri", "interval", "expires_at"):
        check(k in j, "login answer lacks %s: %r" % (k, j))
    eq(j["status"], "pending")
    eq(j["interval"], 1)
    check(re.fullmatch(r"[0-9a-f]{32}", j["id"]), "login id %r" % j["id"])
    check(j["expires_at"] > time.time(), "expires_at in the past")
    no_secret_in("the login answer", json.dumps(j))
    # A second login for the same account while one is pending: 409, nothing new.
    before = github_stats(ctx)["device_codes"]
    s, e, d = admin(ctx, "POST", "/admin/copilot/login", {"provider": "cp1"})
    eq(s, 409, "second login: %r" % d)
    eq(e["error"]["field"], "provider")
    check("cp1" in e["error"]["message"], e["error"]["message"])
    # Asked at once, before the interval: no poll goes to GitHub.
    polls = github_stats(ctx)["polls"]
    s, st, _ = admin(ctx, "GET", "/admin/copilot/login/" + j["id"])
    eq((s, st["status"]), (200, "pending"))
    eq(github_stats(ctx)["polls"], polls, "polls before the interval")
    s, st = poll_until(ctx, j["id"], "completed")
    eq(st["github_login"], "octo-mock")
    stats = github_stats(ctx)
    eq(stats["early_polls"], 0, "polls earlier than GitHub's interval")
    eq(stats["polls"] - polls, 2, "polls: one pending, one ok")
    eq(stats["device_codes"], before, "the refused second login started a device code")
    # The status names the account and its token's times, never a token.
    s, st, raw = admin(ctx, "GET", "/admin/copilot/cp1/status")
    eq(s, 200)
    eq((st["logged_in"], st["state"], st["github_login"]), (True, "ok", "octo-mock"))
    eq(st["plan"], "copilot_for_individuals")
    check(st["token_expires_at"] > time.time() + 1000, "token expiry %r" % st)
    eq(st["models"], 6)
    no_secret_in("the status", raw)


@test(timeout=60)
def device_flow_honours_slow_down(ctx):
    j = login(ctx, "cp2", ["slow_down", "ok"], slow_down_interval=3)
    polls = github_stats(ctx)["polls"]

    def slowed():
        s, st, _ = admin(ctx, "GET", "/admin/copilot/login/" + j["id"])
        eq((s, st["status"]), (200, "pending"))
        return st["interval"] == 3
    wait_for(slowed, 8, "the session to take GitHub's slow_down interval")
    eq(github_stats(ctx)["polls"], polls + 1)
    # Within the new interval nothing is sent, however often the admin asks.
    for _ in range(5):
        time.sleep(0.3)
        s, st, _ = admin(ctx, "GET", "/admin/copilot/login/" + j["id"])
        eq(st["status"], "pending")
    eq(github_stats(ctx)["polls"], polls + 1, "polls inside the slowed interval")
    poll_until(ctx, j["id"], "completed")
    eq(github_stats(ctx)["early_polls"], 0)


@test(timeout=60)
def device_flow_expired_denied_error(ctx):
    j = login(ctx, "cp3", ["expired_token"])
    s, e = poll_until(ctx, j["id"], "expired")
    eq(s, 410)
    check(j["id"] in e["error"]["message"], e["error"]["message"])
    # The account is free for a new login; the user declines this one.
    j = login(ctx, "cp3", ["authorization_pending", "access_denied"])
    s, st = poll_until(ctx, j["id"], "denied")
    eq(s, 200)
    check("declined" in st["error"], st)
    j = login(ctx, "cp3", ["unsupported_grant_type"])
    s, st = poll_until(ctx, j["id"], "error")
    check("unsupported_grant_type" in st["error"], st)
    # None of them stored an account.
    s, st, _ = admin(ctx, "GET", "/admin/copilot/cp3/status")
    eq((s, st["logged_in"]), (200, False))
    # A session past its lifetime answers 410 too.
    j = login(ctx, "cp3", ["authorization_pending"])
    db = sqlite3.connect(os.path.join(ctx.gw.var, "antigw.db"), timeout=10)
    db.execute("UPDATE login_sessions SET expires_at = ? WHERE id = ?",
               (int(time.time()) - 1, j["id"]))
    db.commit()
    db.close()
    s, e, _ = admin(ctx, "GET", "/admin/copilot/login/" + j["id"])
    eq(s, 410, "an expired session")


@test(timeout=30)
def login_bad_input(ctx):
    devices = github_stats(ctx)["device_codes"]
    s, e, _ = admin(ctx, "POST", "/admin/copilot/login", {"provider": "nope"})
    eq((s, e["error"]["field"]), (404, "provider"))
    check("nope" in e["error"]["message"], e)
    s, e, _ = admin(ctx, "POST", "/admin/copilot/login", {"provider": "mock-openai"})
    eq((s, e["error"]["field"]), (400, "provider"))
    check("mock-openai" in e["error"]["message"] and "openai" in e["error"]["message"], e)
    s, e, _ = admin(ctx, "POST", "/admin/copilot/login", {})
    eq((s, e["error"]["field"]), (400, "provider"))
    s, e, _ = admin(ctx, "POST", "/admin/copilot/login", {"provider": "cp1", "x": 1})
    eq((s, e["error"]["field"]), (400, "x"))
    s, e, _ = admin(ctx, "POST", "/admin/copilot/login", {"provider": 5})
    eq(s, 400)
    eq(github_stats(ctx)["device_codes"], devices, "a refused login reached GitHub")
    for bad in ("0" * 32, "abc", "g" * 32, "f" * 200):
        s, e, _ = admin(ctx, "GET", "/admin/copilot/login/" + bad)
        eq(s, 404, "login id %r" % bad)
        check("no copilot login session" in e["error"]["message"], e)
    s, _, _ = admin(ctx, "GET", "/admin/copilot/login")
    eq(s, 405)
    s, _, _ = admin(ctx, "DELETE", "/admin/copilot/login/" + "0" * 32)
    eq(s, 405)
    for what in ("status", "quota"):
        s, e, _ = admin(ctx, "GET", "/admin/copilot/nope/" + what)
        eq(s, 404)
        check("nope" in e["error"]["message"], e)
        s, e, _ = admin(ctx, "GET", "/admin/copilot/mock-openai/" + what)
        eq(s, 400)
        check("mock-openai" in e["error"]["message"], e)
    s, _, _ = admin(ctx, "GET", "/admin/copilot/cp1/tokens")
    eq(s, 404)
    # Without the admin key nothing is served.
    s, _, _ = ctx.gw.call("POST", "/admin/copilot/login", body={"provider": "cp1"},
                          key="wrong-key-0123456789abcdef")
    eq(s, 401)


@test(timeout=30)
def quota(ctx):
    s, q, raw = admin(ctx, "GET", "/admin/copilot/cp1/quota")
    eq(s, 200, raw)
    eq(q["plan"], "individual")
    eq(q["premium_interactions"]["remaining"], 250)
    eq(q["premium_interactions"]["entitlement"], 300)
    no_secret_in("the quota", raw)
    s, all_, raw = admin(ctx, "GET", "/admin/copilot/status")
    eq(s, 200, raw)
    eq([(a["provider"], a["logged_in"]) for a in all_["data"]],
       [("cp1", True), ("cp2", True), ("cp3", False)])
    no_secret_in("the statuses", raw)


# ---- calls ----

def check_copilot_headers(h, initiator):
    for k, v in EDITOR_HEADERS.items():
        eq(h.get(k), v, "header " + k)
    check(h.get("authorization", "").startswith("Bearer tid="), "Copilot token as Bearer")
    check(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}",
                       h.get("x-request-id", "")), "x-request-id %r" % h.get("x-request-id"))
    eq(h.get("x-initiator"), initiator, "X-Initiator")
    check("x-api-key" not in h and CLIENT_KEY not in json.dumps(h), "client key upstream")


@test(timeout=30)
def openai_chat_passthrough_user_turn(ctx):
    reset_copilot(ctx)
    body = json.dumps(chat("hello there", model="gpt-4.1"), separators=(",", ":"))
    s, h, d = ctx.gw.call("POST", "/v1/chat/completions", body=body,
                          headers={"Content-Type": "application/json"})
    eq(s, 200, d)
    eq(json.loads(d)["choices"][0]["message"]["content"], "Hello0 Hello1 Hello2")
    got = calls(ctx.copilot_a, "/chat/completions")
    eq(len(got), 1, "calls at cp1's host (the token's endpoints.api)")
    check_copilot_headers(got[0][0], "user")
    check("copilot-vision-request" not in got[0][0], "vision header without images")
    eq(got[0][1], body.encode(), "the body byte for byte")


@test(timeout=30)
def openai_stream_tool_result_turn(ctx):
    reset_copilot(ctx)
    msgs = [{"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    body = {"model": "gpt-4.1", "messages": msgs, "stream": True,
            "tools": [{"type": "function", "function": {"name": "get_weather",
                                                        "parameters": {"type": "object"}}}]}
    s, h, lines = ctx.gw.stream("/v1/chat/completions", body)
    eq(s, 200)
    ev = sse_events(lines)
    eq(ev[-1][1], "[DONE]")
    text = "".join(json.loads(e[1])["choices"][0]["delta"].get("content") or ""
                   for e in ev[:-1] if json.loads(e[1])["choices"])
    eq(text, "Hello0 Hello1 Hello2")
    got = calls(ctx.copilot_a, "/chat/completions")
    eq(len(got), 1)
    check_copilot_headers(got[0][0], "agent")
    sent = json.loads(got[0][1])
    eq(sent["messages"], msgs, "paired tool calls go unchanged")


@test(timeout=30)
def images_set_the_vision_header(ctx):
    reset_copilot(ctx)
    img = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()
    body = chat([{"type": "text", "text": "what is this?"},
                 {"type": "image_url", "image_url": {"url": img}}], model="gpt-4o")
    s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=body)
    eq(s, 200, d)
    h = calls(ctx.copilot_a, "/chat/completions")[0][0]
    eq(h.get("copilot-vision-request"), "true")
    eq(h.get("x-initiator"), "user")


@test(timeout=30)
def anthropic_claude_goes_native(ctx):
    reset_copilot(ctx)
    body = json.dumps(messages("hi claude", model="claude-sonnet-4", stream=True),
                      separators=(",", ":"))
    s, h, lines = ctx.gw.stream("/v1/messages", json.loads(body),
                                headers={"anthropic-version": "2023-06-01",
                                         "anthropic-beta": "interleaved-thinking-2025-05-14"})
    eq(s, 200)
    names = [n for n, _ in sse_events(lines)]
    eq(names[0], "message_start")
    eq(names[-1], "message_stop")
    got = calls(ctx.copilot_a, "/v1/messages")
    eq(len(got), 1, "Claude for an Anthropic client goes to /v1/messages")
    hd, sent = got[0]
    check_copilot_headers(hd, "user")
    eq(hd.get("anthropic-version"), "2023-06-01")
    eq(hd.get("anthropic-beta"), "interleaved-thinking-2025-05-14")
    eq(json.loads(sent), json.loads(body), "the native body")
    eq(calls(ctx.copilot_a, "/chat/completions"), [])


@test(timeout=30)
def anthropic_tool_result_is_agent(ctx):
    reset_copilot(ctx)
    body = {"model": "claude-sonnet-4", "max_tokens": 100, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                           "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": "sunny"}]}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]}
    s, _, d = ctx.gw.call("POST", "/v1/messages", body=body,
                          headers={"anthropic-version": "2023-06-01"})
    eq(s, 200, d)
    eq(calls(ctx.copilot_a, "/v1/messages")[0][0].get("x-initiator"), "agent")


@test(timeout=30)
def anthropic_gpt_model_is_converted(ctx):
    reset_copilot(ctx)
    s, _, d = ctx.gw.call("POST", "/v1/messages", body=messages("hi gpt", model="gpt-4.1"),
                          headers={"anthropic-version": "2023-06-01"})
    eq(s, 200, d)
    j = json.loads(d)
    eq(j["type"], "message")
    eq(j["content"][0]["text"], "Hello0 Hello1 Hello2")
    got = calls(ctx.copilot_a, "/chat/completions")
    eq(len(got), 1, "a GPT model for an Anthropic client goes to /chat/completions")
    eq(got[0][0].get("x-initiator"), "user")
    eq(json.loads(got[0][1])["messages"][-1]["content"], "hi gpt")
    # A turn of tool results and text becomes a tool message and a user
    # message upstream: still the agent's step.
    reset_copilot(ctx)
    body = {"model": "gpt-4.1", "max_tokens": 100, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                           "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": "sunny"},
                                     {"type": "text", "text": "<system-reminder>x</system-reminder>"}]}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]}
    s, _, d = ctx.gw.call("POST", "/v1/messages", body=body,
                          headers={"anthropic-version": "2023-06-01"})
    eq(s, 200, d)
    got = calls(ctx.copilot_a, "/chat/completions")
    eq(json.loads(got[0][1])["messages"][-1]["role"], "user")
    eq(got[0][0].get("x-initiator"), "agent", "a converted tool-result turn")


@test(timeout=30)
def responses_only_model_goes_to_responses(ctx):
    # gpt-5-codex is served by Copilot's /responses only: every client
    # protocol reaches it there, converted (chat, messages) or as it is
    reset_copilot(ctx)
    s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("hi codex", model="gpt-5-codex"))
    eq(s, 200, d)
    eq(json.loads(d)["choices"][0]["message"]["content"], "Hello0 Hello1 Hello2", "chat answer")
    s, _, d = ctx.gw.call("POST", "/v1/messages", body=messages("hi codex", model="gpt-5-codex"),
                          headers={"anthropic-version": "2023-06-01"})
    eq(s, 200, d)
    eq(json.loads(d)["content"][0]["text"], "Hello0 Hello1 Hello2", "messages answer")
    body = {"model": "gpt-5-codex", "input": "hi codex directly"}
    s, _, d = ctx.gw.call("POST", "/v1/responses", body=body)
    eq(s, 200, d)
    eq(json.loads(d)["object"], "response", "Responses answer")
    got = calls(ctx.copilot_a, "/responses")
    eq(len(got), 3, "each went to /responses")
    for h, _ in got:
        check_copilot_headers(h, "user")
    eq(json.loads(got[2][1]), body, "the Responses client's body as it was sent")
    eq(calls(ctx.copilot_a, "/chat/completions"), [], "nothing to /chat/completions")
    # a tool result as the last input item is the agent's step
    reset_copilot(ctx)
    s, _, d = ctx.gw.call("POST", "/v1/responses", body={
        "model": "gpt-5-codex",
        "input": [{"role": "user", "content": "weather?"},
                  {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
                  {"type": "function_call_output", "call_id": "c1", "output": "18 degrees"}]})
    eq(s, 200, d)
    eq(calls(ctx.copilot_a, "/responses")[0][0].get("x-initiator"), "agent", "tool output turn")


@test(timeout=30)
def model_not_supported_is_the_clients(ctx):
    reset_copilot(ctx)
    s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x", model="cp1/no-such-model"))
    eq(s, 400, d)
    check("model_not_supported" in d.decode(), d)
    # Not held against the provider: the next call goes to cp1 again.
    s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x", model="gpt-4.1"))
    eq(s, 200, d)
    eq(len(calls(ctx.copilot_a, "/chat/completions")), 2)
    eq(calls(ctx.copilot_b), [])


@test(timeout=30)
def unpaired_tool_calls_are_repaired(ctx):
    reset_copilot(ctx)
    msgs = [{"role": "user", "content": "go"},
            {"role": "assistant", "content": "let me look", "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "lookup", "arguments": "not json"}},
                {"id": "call_b", "type": "function",
                 "function": {"name": "lookup", "arguments": "{}"}},
                {"id": "call_c", "type": "function", "function": {"name": "", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_a", "content": "A"},
            {"role": "tool", "tool_call_id": "call_zzz", "content": "orphan"},
            {"role": "user", "content": "and?"}]
    s, _, d = ctx.gw.call("POST", "/v1/chat/completions",
                          body={"model": "gpt-4.1", "messages": msgs})
    eq(s, 200, d)
    sent = json.loads(calls(ctx.copilot_a, "/chat/completions")[0][1])
    m = sent["messages"]
    eq(len(m), 4, "messages after the repair: %r" % m)
    eq([c["id"] for c in m[1]["tool_calls"]], ["call_a"])
    eq(m[1]["tool_calls"][0]["function"]["arguments"], "{}")
    eq(m[2], {"role": "tool", "tool_call_id": "call_a", "content": "A"})
    eq(m[3]["content"], "and?")


@test(timeout=30)
def embeddings(ctx):
    reset_copilot(ctx)
    s, _, d = ctx.gw.call("POST", "/v1/embeddings",
                          body={"model": "text-embedding-3-small", "input": "hello"})
    eq(s, 200, d)
    eq(json.loads(d)["object"], "list")
    got = calls(ctx.copilot_a, "/embeddings")
    eq(len(got), 1)
    for k, v in EDITOR_HEADERS.items():
        eq(got[0][0].get(k), v, k)


@test(timeout=300)
def official_sdks(ctx):
    """tests/sdk/copilot.test.mjs: both SDKs, streamed and not, tools, images,
    thinking, against the account cp1 (its calls reach copilot-a)."""
    import shutil
    import subprocess
    import test_sdk
    node = shutil.which("node")
    check(node, "node is not installed (deploy/quickstart.sh check installs it)")
    where = test_sdk.sdk_dir_ready()
    check(where, "npm ci in tests/sdk failed")
    env = dict(os.environ, GATEWAY_URL="http://127.0.0.1:%d" % ctx.gw.port,
               GATEWAY_KEY=CLIENT_KEY,
               OPENAI_MOCK_URL="http://127.0.0.1:%d" % ctx.openai.port,
               ANTHROPIC_MOCK_URL="http://127.0.0.1:%d" % ctx.anthropic.port,
               COPILOT_MOCK_URL="http://127.0.0.1:%d" % ctx.copilot_a.port)
    for k in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
              "ANTHROPIC_AUTH_TOKEN"):
        env.pop(k, None)
    r = subprocess.run([node, "--test", "--test-reporter=tap",
                        os.path.join(where, "copilot.test.mjs")], cwd=where, env=env,
                       capture_output=True, text=True, timeout=280)
    passed = len(re.findall(r"^ok \d+ - copilot", r.stdout, re.M))
    failed = [line for line in r.stdout.splitlines() if line.startswith("not ok")]
    check(r.returncode == 0 and not failed and passed == 6,
          "SDK tests: %d passed, failed %r:\n%s" % (passed, failed, r.stdout[-4000:]))


@test(timeout=30)
def models_listed_from_the_account(ctx):
    s, _, d = ctx.gw.call("GET", "/v1/models")
    eq(s, 200)
    ids = {m["id"] for m in json.loads(d)["data"]}
    for want in ("gpt-4.1", "claude-sonnet-4.5", "text-embedding-3-small", "copilot/gpt-4.1",
                 "copilot/claude-sonnet-4"):
        check(want in ids, "%s not in /v1/models" % want)


@test(timeout=40)
def quota_402_cools_down_and_fails_over(ctx):
    reset_copilot(ctx)
    mock_post(ctx.copilot_a, "/_mock/force", None)
    req = urllib.request.Request("http://127.0.0.1:%d/_mock/force" % ctx.copilot_a.port,
                                 data=b"status=402", method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    try:
        for _ in range(3):
            s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x", model="gpt-4.1"))
            eq(s, 200, d)
        eq(len(calls(ctx.copilot_a, "/chat/completions")), 1, "cp1 tried once, then cooling")
        eq(len(calls(ctx.copilot_b, "/chat/completions")), 3, "cp2 took the calls")
        _, _, hd = ctx.gw.call("GET", "/health", key=ADMIN_KEY)
        cp1 = [p for p in json.loads(hd)["providers"] if p["name"] == "cp1"][0]
        check(cp1["cooldown_ms"] > 0, "cp1 cools down: %r" % cp1)
    finally:
        req = urllib.request.Request("http://127.0.0.1:%d/_mock/force" % ctx.copilot_a.port,
                                     data=b"", method="POST")
        urllib.request.urlopen(req, timeout=10).read()
    time.sleep(2.2)  # the cooldown


@test(timeout=120)
def expired_token_under_load_one_exchange(ctx):
    # Every process has used the token once.
    for _ in range(8):
        s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("warm", model="gpt-4.1"))
        eq(s, 200, d)
    reset_copilot(ctx)
    before = github_stats(ctx)["exchanges"]
    mock_post(ctx.copilot_a, "/_mock/expire")

    def one(i):
        return ctx.gw.call("POST", "/v1/chat/completions",
                           body=chat("req %d" % i, model="gpt-4.1"), timeout=60)
    with ThreadPoolExecutor(64) as ex:
        results = list(ex.map(one, range(200)))
    bad = [(s, d[:200]) for s, _, d in results if s != 200]
    eq(bad, [], "failed requests")
    eq(github_stats(ctx)["exchanges"] - before, 1, "token exchanges for 200 requests")
    rejected = ctx.copilot_a.get("rejected")["rejected"]
    check(rejected >= 1, "no request met the expired token")
    eq(len(calls(ctx.copilot_b, "/chat/completions")), 0, "failed over instead of renewing")
    ctx.expired_rejections = rejected


@test(timeout=60)
def token_renewed_at_refresh_in(ctx):
    github_config(ctx, refresh_in=61)  # renew one second after issue (5 s at least)
    mock_post(ctx.copilot_a, "/_mock/expire")
    s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x", model="gpt-4.1"))
    eq(s, 200, d)
    n = github_stats(ctx)["exchanges"]
    rejected = ctx.copilot_a.get("rejected")["rejected"]
    s, st, _ = admin(ctx, "GET", "/admin/copilot/cp1/status")
    check(st["token_refresh_at"] - time.time() <= 6, "refresh_at %r" % st)
    time.sleep(max(0, st["token_refresh_at"] - time.time()) + 1.2)
    github_config(ctx, refresh_in=1500)
    s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x", model="gpt-4.1"))
    eq(s, 200, d)
    eq(github_stats(ctx)["exchanges"], n + 1, "renewed before the call")
    eq(ctx.copilot_a.get("rejected")["rejected"], rejected, "no 401 on the way")


@test(timeout=60)
def failed_renewal_keeps_the_valid_token(ctx):
    github_config(ctx, refresh_in=61)
    mock_post(ctx.copilot_a, "/_mock/expire")
    s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x", model="gpt-4.1"))
    eq(s, 200, d)
    s, st, _ = admin(ctx, "GET", "/admin/copilot/cp1/status")
    time.sleep(max(0, st["token_refresh_at"] - time.time()) + 1.2)
    github_config(ctx, exchange_status=503)
    try:
        before = github_stats(ctx)
        for _ in range(8):
            s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("y", model="gpt-4.1"))
            eq(s, 200, d)
        after = github_stats(ctx)
        eq(after["exchanges"], before["exchanges"])
        check(1 <= after["failed_exchanges"] - before["failed_exchanges"] <= PROCESSES,
              "renewal attempts in GitHub's outage: %r -> %r" % (before, after))
        s, st, _ = admin(ctx, "GET", "/admin/copilot/cp1/status")
        eq(st["state"], "ok")
        check(st["last_error"] and "503" in st["last_error"], "last_error %r" % st["last_error"])
    finally:
        github_config(ctx, exchange_status=0, refresh_in=1500)
    # A 401 renews at once, whatever the pause.
    mock_post(ctx.copilot_a, "/_mock/expire")
    n = github_stats(ctx)["exchanges"]
    s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("z", model="gpt-4.1"))
    eq(s, 200, d)
    eq(github_stats(ctx)["exchanges"], n + 1)


@test(timeout=30)
def github_token_from_the_admin(ctx):
    # A non-Copilot provider and mixed bodies are refused, and change nothing.
    s, e, _ = admin(ctx, "PUT", "/admin/providers/cfg:mock-openai",
                    {"github_token": PRESET_GITHUB_TOKEN})
    eq((s, e["error"]["field"]), (400, "github_token"))
    check("mock-openai" in e["error"]["message"], e)
    s, e, _ = admin(ctx, "PUT", "/admin/providers/cfg:cp3",
                    {"github_token": PRESET_GITHUB_TOKEN, "weight": 5})
    eq(s, 400)
    s, e, _ = admin(ctx, "PUT", "/admin/providers/cfg:cp3", {"github_token": ""})
    eq(s, 400)
    s, e, _ = admin(ctx, "PUT", "/admin/providers/cfg:cp3", {"weight": 5})
    eq(s, 409, "a file's provider stays read-only")
    s, st, _ = admin(ctx, "GET", "/admin/copilot/cp3/status")
    eq(st["logged_in"], False)
    s, j, raw = admin(ctx, "PUT", "/admin/providers/cfg:cp3",
                      {"github_token": PRESET_GITHUB_TOKEN})
    eq(s, 200, raw)
    no_secret_in("the PUT answer", raw)
    s, st, _ = admin(ctx, "GET", "/admin/copilot/cp3/status")
    eq((st["logged_in"], st["token_expires_at"]), (True, None), "stored, not exchanged yet")
    before = github_stats(ctx)["exchanges"]
    s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x", model="cp3/gpt-4.1"))
    eq(s, 200, d)
    eq(github_stats(ctx)["exchanges"], before + 1)
    s, st, _ = admin(ctx, "GET", "/admin/copilot/cp3/status")
    check(st["token_expires_at"] is not None, "exchanged on first use: %r" % st)
    db = sqlite3.connect(os.path.join(ctx.gw.var, "antigw.db"), timeout=10)
    rows = db.execute("SELECT action, object_id, detail FROM audit_log "
                      "WHERE action = 'set_github_token'").fetchall()
    db.close()
    eq(len(rows), 1, "audit rows of the token")
    no_secret_in("the audit row", json.dumps(rows))


@test(timeout=60)
def refused_github_token_needs_login(ctx):
    github_config(ctx, revoke_all=True)
    try:
        mock_post(ctx.copilot_a, "/_mock/expire")
        reset_copilot(ctx)
        # cp1's token is refused, its renewal too: cp2 takes the call.
        s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x", model="gpt-4.1"))
        eq(s, 200, d)
        eq(len(calls(ctx.copilot_b, "/chat/completions")), 1)
        s, st, _ = admin(ctx, "GET", "/admin/copilot/cp1/status")
        eq(st["state"], "needs_login")
        _, _, hd = ctx.gw.call("GET", "/health", key=ADMIN_KEY)
        cp1 = [p for p in json.loads(hd)["providers"] if p["name"] == "cp1"][0]
        eq((cp1.get("credential"), cp1["usable"]), ("needs_login", False), "/health: %r" % cp1)
        check(st["last_error"] and "log in" in st["last_error"], st)
        no_secret_in("last_error", st["last_error"])
        # Out of routing: nothing more goes to cp1.
        reset_copilot(ctx)
        s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("y", model="gpt-4.1"))
        eq(s, 200, d)
        eq(calls(ctx.copilot_a), [], "a needs_login account was called")
    finally:
        github_config(ctx, revoke_all=False)


@test(timeout=30)
def no_token_in_logs_or_database_text(ctx):
    no_secret_in("the pool's log", ctx.gw.log_text())
    no_secret_in("the admin log", ctx.gw.admin_log_text())
    db = sqlite3.connect(os.path.join(ctx.gw.var, "antigw.db"), timeout=10)
    for table, in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        for row in db.execute("SELECT * FROM %s" % table).fetchall():
            no_secret_in("table " + table, json.dumps([c if not isinstance(c, bytes)
                                                       else c.hex() for c in row]))
    db.close()


def main():
    ctx = Ctx()
    why = suite_setup(ctx)
    if why:
        return bail(why)
    ctx.copilot_a = Mock(ctx.work, "copilot-a", "--secret", SECRET, script=COPILOT)
    ctx.copilot_b = Mock(ctx.work, "copilot-b", "--secret", SECRET, script=COPILOT)
    ctx.github = Mock(ctx.work, "github", "--secret", SECRET, "--api-url",
                      "http://127.0.0.1:%d" % ctx.copilot_a.port,
                      "--github-token", PRESET_GITHUB_TOKEN, script=GITHUB)
    ctx.gw = Gateway(ctx.work, config(ctx), processes=PROCESSES, threads=THREADS, admin=True)
    with open(os.path.join(ctx.gw.var, "secret.key"), "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(base64.b16encode(os.urandom(32)).decode().lower() + "\n")
    return run_suite(ctx, stop_after=(ctx.openai, ctx.anthropic, ctx.copilot_a, ctx.copilot_b,
                                      ctx.github),
                     ready=lambda: wait_for(
                         lambda: admin(ctx, "GET", "/admin/copilot/cp1/status")[0] == 200, 10,
                         "antigw-admin"))


if __name__ == "__main__":
    sys.exit(main())

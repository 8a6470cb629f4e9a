#!/usr/bin/env python3
"""Mock OpenAI / Anthropic upstream for AntiGateway integration tests.

Standard library only (Python 3.11).  Speaks the public wire formats so real
SDKs can parse its output through the gateway.  See tests/mock/README.md.

    upstream.py --port 0 --portfile PATH [--openai-key K] [--anthropic-key K]
                [--name NAME] [--quiet]

Tests steer a response with a directive inside the text of the LAST message
(or the embeddings `input`):  "[[mock: events=5, delay_ms=20, text=Hi]]".

Text scheme: with `text=W` (default "Hello", or "Grüße€" when split=1) and
`events=N` (default 3), delta i is  ("" if i == 0 else " ") + W + str(i),
e.g. "Hello0", " Hello1", " Hello2"; the non-streamed content is the exact
concatenation "Hello0 Hello1 Hello2".  `echo=1` makes the answer one delta
equal to the whole last-message text (directive included), byte for byte.
"""

import argparse
import base64
import faulthandler
import hashlib
import json
import os
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DIRECTIVE_RE = re.compile(r"\[\[mock:(.*?)\]\]", re.S)
SPLIT_DEFAULT_TEXT = "Grüße€"  # multibyte, so split=1 really cuts a character
THINKING_DELTAS = ["Let me think", " about this."]
SIGNATURE = base64.b64encode(hashlib.sha256(b"mock-signature").digest()).decode()
TOOL_ARGS = '{"location":"Paris, France","unit":"celsius"}'
GARBAGE = b"<html>upstream broke</html>"
OPENAI_MODELS = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
ANTHROPIC_MODELS = [("claude-sonnet-4-20250514", "Claude Sonnet 4"),
                    ("claude-3-5-haiku-20241022", "Claude Haiku 3.5")]

# Error "type" per status, as the public API references document them.
OPENAI_ERRORS = {
    400: ("invalid_request_error", None, "Bad request (mock)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided (mock)."),
    403: ("permission_error", None, "You are not allowed to do this (mock)."),
    404: ("invalid_request_error", "model_not_found",
          "The model does not exist or you do not have access to it (mock)."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests (mock)."),
    500: ("server_error", None, "The server had an error while processing your request (mock)."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later (mock)."),
}
ANTHROPIC_ERRORS = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error",
    529: "overloaded_error",
}
EXTRA_REASONS = {529: "Overloaded"}  # not in http.HTTPStatus


def dumps(obj):
    """Compact JSON as UTF-8 bytes.

    ensure_ascii=False keeps non-ASCII text as raw UTF-8 (so split=1 has real
    multibyte characters to cut).  A lone surrogate (legal in JSON as an
    escape, impossible in UTF-8) is written back as its \\uXXXX escape by
    "backslashreplace", which is exactly valid JSON inside a string literal.
    """
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "backslashreplace")


def content_text(content):
    """Text of an OpenAI or Anthropic message `content` (string or parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and p.get("type") in ("text", "input_text")
                       and isinstance(p.get("text"), str))
    return ""


# Directives every request gets unless its text says otherwise, set with
# POST /_mock/force (body: "key=value,..."; empty clears); reset clears them.
FORCED = {}


class Directives(dict):
    """key=value pairs parsed from the first [[mock: ...]] in a text, over the
    forced ones."""

    @classmethod
    def parse(cls, text):
        d = cls(FORCED)
        m = DIRECTIVE_RE.search(text or "")
        if m:
            for item in m.group(1).split(","):
                key, _, value = item.strip().partition("=")
                if key:
                    d[key.strip()] = value.strip() if _ else "1"
        return d

    def int(self, key, default=0):
        try:
            return int(self[key])
        except (KeyError, ValueError):
            return default

    def flag(self, key, default=False):
        return self.int(key, 1 if default else 0) != 0


def scripted(msgs):
    """The text directives are read from, and the directives. Normally the
    last message's. When an earlier message holds the directive and later
    ones are the answer so far (a continuation request: the assistant's text,
    maybe followed by an instruction), that message's; and with `rounds=HEX`
    (the hex of a UTF-8 JSON list of rounds, each a list of text deltas) the
    answer is the first round the assistant's text does not already hold:
    ending in `length` unless it is the last round."""
    texts = [content_text(m.get("content")) if isinstance(m, dict) else "" for m in msgs]
    at = len(texts) - 1
    while at > 0 and not DIRECTIVE_RE.search(texts[at]):
        at -= 1
    if at < 0:
        return "", Directives.parse("")
    d = Directives.parse(texts[at])
    if at < len(texts) - 1 and not d.get("rounds"):
        # an earlier message's directive steers only a continuation
        return texts[-1], Directives.parse(texts[-1])
    if d.get("rounds"):
        rounds = json.loads(bytes.fromhex(d["rounds"]).decode("utf-8"))
        said = "".join(texts[i] for i in range(at + 1, len(msgs))
                       if isinstance(msgs[i], dict) and msgs[i].get("role") == "assistant")
        k = 0
        while k < len(rounds) and said.startswith("".join("".join(r) for r in rounds[:k + 1]).rstrip()):
            k += 1
        d["parts"] = json.dumps(rounds[k] if k < len(rounds) else []).encode("utf-8").hex()
        if k < len(rounds) - 1:
            d["finish"] = "length"
        if d.get("fail_round") == str(k):
            d["status"] = "500"
    return texts[-1] if texts else "", d


class State:
    """Everything the control API reports; guarded by one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.next_conn_id = 0      # never reset, so conn ids stay unique
        self.conn_ids = {}         # fileno -> (conn_id, generation) until handler picks it up
        self.generation = 0        # bumped by reset; tells old connections apart
        self.reset()

    def reset(self):
        # Called from __init__ or with self.lock held (POST /_mock/reset).
        self.records = []
        self.seq = 0
        self.accepts = 0           # connections that carried API traffic (see README)
        self.accepts_all = 0       # every accepted TCP connection
        self.aborted = []
        self.completed_streams = 0
        self.generation += 1


class MockServer(ThreadingHTTPServer):
    daemon_threads = True          # stalled handlers must not block exit
    block_on_close = False
    request_queue_size = 256       # 50+ simultaneous streams connect at once
    allow_reuse_address = True

    def __init__(self, addr, cfg, handler=None, state=None):
        """The other mocks of tests/mock/ pass their own Handler subclass and
        State (subclass) instance."""
        self.cfg = cfg
        self.state = state if state is not None else State()
        super().__init__(addr, handler or Handler)

    def get_request(self):
        # Overridden to count accepts (tests check connection reuse) and to
        # disable Nagle so each SSE chunk leaves as soon as it is written.
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        st = self.state
        with st.lock:
            st.next_conn_id += 1
            st.accepts += 1
            st.accepts_all += 1
            st.conn_ids[sock.fileno()] = (st.next_conn_id, st.generation)
        return sock, addr

    def handle_error(self, request, client_address):
        # Clients (the gateway) dropping connections is routine here.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive by default
    server_version = "mock-upstream/1.0"

    def version_string(self):
        return self.server_version

    # ---- plumbing ---------------------------------------------------------

    def setup(self):
        super().setup()
        st = self.server.state
        with st.lock:
            self.conn_id, self.conn_gen = st.conn_ids.pop(self.connection.fileno(), (0, 0))
        self.conn_requests = 0

    def log_message(self, fmt, *args):
        if not self.server.cfg.quiet:
            sys.stderr.write("[%s] %s\n" % (self.server.cfg.name, fmt % args))

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    do_PUT = do_DELETE = do_PATCH = do_POST

    def read_body(self):
        """Request body from Content-Length or chunked transfer coding."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # skip trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def start(self, status, headers):
        reason = EXTRA_REASONS.get(status)
        self.send_response(status, reason)
        self.send_header("x-mock-upstream", self.server.cfg.name)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()  # flushes the status line and headers in one write

    def send_body(self, status, body, ctype="application/json", headers=(), head_delay=0):
        """Complete response with Content-Length (never chunked)."""
        self.start(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))]
                   + list(headers))
        if head_delay:
            time.sleep(head_delay / 1000)
        try:
            self.wfile.write(body)
        except OSError:
            self.close_connection = True

    def send_json(self, status, obj, headers=(), head_delay=0):
        self.send_body(status, dumps(obj), headers=headers, head_delay=head_delay)

    def api_error(self, api, status, message=None, retry_after=None, headers=(), code=""):
        """Error body in the shape of the given API ("openai" or "anthropic").

        `code` overrides the OpenAI "code" picked from the status table."""
        headers = list(headers)
        if retry_after is not None:
            headers.append(("retry-after", str(retry_after)))
        if api == "anthropic":
            etype = ANTHROPIC_ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")
            body = {"type": "error", "error": {"type": etype, "message": message or etype + " (mock)"}}
            headers.append(("request-id", "req_mock%d" % self.seq))
        else:
            etype, tcode, msg = OPENAI_ERRORS.get(
                status, ("server_error" if status >= 500 else "invalid_request_error", None, None))
            body = {"error": {"message": message or msg or "mock error %d" % status,
                              "type": etype, "param": None, "code": tcode if code == "" else code}}
            headers.append(("x-request-id", "req_mock%d" % self.seq))
        self.send_json(status, body, headers=headers)

    # ---- routing ----------------------------------------------------------

    def dispatch(self):
        got = self.begin_request(self.control, {"error": {
            "message": "bad request body", "type": "invalid_request_error", "param": None,
            "code": None}})
        if got is None:
            return
        path, body = got

        is_anthropic = path.startswith("/v1/messages") or (
            path == "/v1/models" and "anthropic-version" in self.headers)
        api = "anthropic" if is_anthropic else "openai"
        routes = {"/v1/chat/completions": ("POST", self.openai_chat),
                  "/v1/embeddings": ("POST", self.openai_embeddings),
                  "/v1/models": ("GET", self.list_models),
                  "/v1/messages": ("POST", self.anthropic_messages),
                  "/v1/messages/count_tokens": ("POST", self.anthropic_count_tokens),
                  "/v1/responses": ("POST", self.openai_responses)}
        if path not in routes:
            return self.api_error(api, 404, "Invalid URL (%s %s)" % (self.command, path), code=None)
        method, func = routes[path]
        if self.command != method:
            return self.api_error(api, 405, "Method %s not allowed on %s" % (self.command, path),
                                  headers=[("Allow", method)], code=None)
        if not self.check_auth(api):
            return
        req = {}
        if method == "POST":
            try:
                req = json.loads(body)
                if not isinstance(req, dict):
                    raise ValueError("body is not a JSON object")
            except ValueError as e:
                return self.api_error(api, 400, "Invalid JSON body: %s" % e)
        self.api = api
        func(req)

    def check_auth(self, api):
        cfg = self.server.cfg
        if api == "anthropic":
            if cfg.anthropic_key is not None and self.headers.get("x-api-key") != cfg.anthropic_key:
                self.api_error("anthropic", 401, "invalid x-api-key")
                return False
            if "anthropic-version" not in self.headers:
                self.api_error("anthropic", 400, "anthropic-version: header is required")
                return False
        elif cfg.openai_key is not None and \
                self.headers.get("Authorization") != "Bearer " + cfg.openai_key:
            self.api_error("openai", 401, "Incorrect API key provided.")
            return False
        return True

    def begin_request(self, control, bad_body=None):
        """The start of a mock's dispatch: reads the body (a bad one is
        answered 400 with `bad_body`), hands /_mock/* to control(path, body),
        records the rest. Returns (path without the query, body), or None
        once answered."""
        self.seq = 0
        self.record_entry = None
        path = urlsplit(self.path).path
        try:
            body = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self.send_json(400, bad_body or {"message": "bad request body"})
            return None
        self.conn_requests += 1
        if path == "/_mock" or path.startswith("/_mock/"):
            control(path, body)
            return None
        self.record(body)
        return path, body

    def record(self, body):
        st = self.server.state
        with st.lock:
            st.seq += 1
            self.seq = st.seq
            # sent_mono: CLOCK_MONOTONIC (the clients' time.monotonic()) after
            # each streamed event left, so a test can tell a late event held in
            # transit from one the mock sent late.
            self.record_entry = {
                "seq": st.seq, "time": time.time(), "method": self.command, "path": self.path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body_b64": base64.b64encode(body).decode(), "body_len": len(body),
                "conn_id": self.conn_id, "sent_mono": []}
            st.records.append(self.record_entry)

    def control(self, path, body=b""):
        """/_mock/* endpoints: no auth, never recorded."""
        st = self.server.state
        with st.lock:
            # A connection whose first request is a control request belongs to
            # the test harness, not the gateway: keep it out of `accepts`.
            if self.conn_requests == 1 and self.conn_gen == st.generation:
                st.accepts -= 1
            if path == "/_mock/requests" and self.command == "GET":
                out = list(st.records)
            elif path == "/_mock/stats" and self.command == "GET":
                out = {"accepts": st.accepts, "accepts_all": st.accepts_all,
                       "requests": len(st.records), "aborted": list(st.aborted),
                       "completed_streams": st.completed_streams, "name": self.server.cfg.name}
            elif path == "/_mock/force" and self.command == "POST":
                FORCED.clear()
                FORCED.update(Directives.parse("[[mock:%s]]" % body.decode()))
                out = {"ok": True, "forced": dict(FORCED)}
            elif path == "/_mock/reset" and self.command == "POST":
                FORCED.clear()
                st.reset()
                self.conn_gen = -1  # this connection predates the reset
                out = {"ok": True}
            elif path in ("/_mock/requests", "/_mock/stats", "/_mock/reset", "/_mock/force"):
                out = 405
            else:
                out = 404
        if isinstance(out, int):
            return self.send_json(out, {"error": {"message": "%s %s" % (self.command, path)}})
        self.send_json(200, out)

    # ---- shared directive handling ---------------------------------------

    def pre_response(self, d, streaming=False):
        """Delays, forced errors and garbage shared by all POST routes.

        Returns True when a response was already sent.  A streamed garbage=1
        is handled by stream() instead (valid head, then a garbage line)."""
        wait = d.int("stall_ms") + d.int("first_delay_ms")
        if wait > 0:
            time.sleep(wait / 1000)
        status = d.int("status", 200)
        if status != 200:
            self.api_error(self.api, status, retry_after=d.get("retry_after"))
            return True
        if d.flag("garbage") and not streaming:
            self.send_body(200, GARBAGE, "text/html")
            return True
        return False

    @staticmethod
    def streams(d, req):
        """Whether to answer with a stream: what the request asked, unless
        `answer=json` (one JSON body whatever was asked) or `answer=sse` (a
        stream whatever was asked) says otherwise."""
        form = d.get("answer")
        return form == "sse" if form in ("json", "sse") else req.get("stream") is True

    def usage_numbers(self, d, input_chars, n_deltas):
        return {"input": d.int("input_tokens", input_chars // 4 + 1),
                "output": d.int("output_tokens", n_deltas * 2),
                "cache_read": d.int("cache_read"), "cache_write": d.int("cache_write")}

    @staticmethod
    def answer_parts(d, last_text):
        """The text deltas; their concatenation is the non-streamed content."""
        if d.flag("echo"):
            return [last_text]
        if d.get("parts"):
            return json.loads(bytes.fromhex(d.get("parts")).decode("utf-8"))
        word = d.get("text") or (SPLIT_DEFAULT_TEXT if d.flag("split") else "Hello")
        return [("" if i == 0 else " ") + word + str(i) for i in range(max(0, d.int("events", 3)))]

    @staticmethod
    def tool_pieces():
        third = len(TOOL_ARGS) // 3
        return [TOOL_ARGS[:third], TOOL_ARGS[third:2 * third], TOOL_ARGS[2 * third:]]

    # ---- streaming --------------------------------------------------------

    def peer_closed(self):
        """True if the client has closed its side (EOF readable, or reset).

        Writes into a half-dead socket often succeed once, so peeking lets us
        report `events_sent` accurately instead of one event late."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def stream(self, d, events, ctype):
        """Send pre-framed SSE events (bytes using "\\n" line ends) chunked.

        Every event is its own HTTP chunk, written with one sendall() so the
        gateway sees real incremental delivery."""
        delay, reset_after = d.int("delay_ms"), d.int("reset_after", -1)
        crlf, split = d.flag("crlf"), d.flag("split")
        sent = 0

        def chunk(data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

        try:
            self.start(200, [("Content-Type", ctype), ("Transfer-Encoding", "chunked"),
                             ("Cache-Control", "no-cache"),
                             ("x-request-id" if self.api == "openai" else "request-id",
                              "req_mock%d" % self.seq)])
            if d.int("head_then_delay_ms") > 0:
                time.sleep(d.int("head_then_delay_ms") / 1000)
            for i, ev in enumerate(events):
                if i and delay:
                    time.sleep(delay / 1000)
                if self.peer_closed():
                    raise ConnectionResetError("peer closed")
                if crlf:
                    ev = ev.replace(b"\n", b"\r\n")
                if split:
                    cut = next((j + 1 for j, b in enumerate(ev) if b >= 0xC0), len(ev) // 2)
                    chunk(ev[:cut])
                    time.sleep(0.05)
                    chunk(ev[cut:])
                else:
                    chunk(ev)
                if self.record_entry is not None:
                    self.record_entry["sent_mono"].append(time.monotonic())
                sent += 1
                if i == 0 and d.flag("garbage"):
                    chunk(GARBAGE + (b"\r\n\r\n" if crlf else b"\n\n"))
                if sent == reset_after:
                    return self.reset_connection()
            if self.peer_closed():
                raise ConnectionResetError("peer closed")
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            st = self.server.state
            with st.lock:
                st.aborted.append({"path": self.path, "events_sent": sent,
                                   "time": time.time(), "seq": self.seq})
            self.close_connection = True
            return
        with self.server.state.lock:
            self.server.state.completed_streams += 1

    def reset_connection(self):
        """Abort with a TCP RST and no terminating zero-length chunk."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # rfile holds a reference on the socket; drop it so close() is real.
            self.rfile.close()
            self.connection.close()
        except OSError:
            pass

    # ---- OpenAI -----------------------------------------------------------

    def openai_chat(self, req):
        msgs = req.get("messages") if isinstance(req.get("messages"), list) else []
        last, d = scripted(msgs)
        if self.pre_response(d, req.get("stream") is True):
            return
        chars = sum(len(content_text(m.get("content"))) for m in msgs if isinstance(m, dict))
        tool = d.get("tool")
        parts = self.tool_pieces() if tool else self.answer_parts(d, last)
        u = self.usage_numbers(d, chars, len(parts))
        usage = {"prompt_tokens": u["input"], "completion_tokens": u["output"],
                 "total_tokens": u["input"] + u["output"],
                 "prompt_tokens_details": {"cached_tokens": u["cache_read"]},
                 "completion_tokens_details": {"reasoning_tokens": 0}}
        finish = d.get("finish") or ("tool_calls" if tool else "stop")
        call_id = "call_mock%d" % self.seq
        created, model = int(time.time()), req.get("model", "mock-model")

        def head(obj):  # key order as in the API reference examples
            return {"id": "chatcmpl-mock%d" % self.seq, "object": obj, "created": created,
                    "model": model}

        if not self.streams(d, req):
            message = {"role": "assistant", "content": None if tool else "".join(parts),
                       "refusal": None}
            if tool:
                message["tool_calls"] = [{"id": call_id, "type": "function",
                                          "function": {"name": tool, "arguments": TOOL_ARGS}}]
            return self.send_json(200, dict(
                head("chat.completion"),
                choices=[{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                usage=usage, system_fingerprint="fp_mock"), head_delay=d.int("head_then_delay_ms"))

        opts = req.get("stream_options")
        # no_usage=1: an OpenAI-compatible server that ignores include_usage
        with_usage = (isinstance(opts, dict) and opts.get("include_usage") is True
                      and not d.flag("no_usage"))

        def chunk(delta, finish_reason=None, choices=True):
            c = dict(head("chat.completion.chunk"), system_fingerprint="fp_mock",
                     choices=[{"index": 0, "delta": delta, "logprobs": None,
                               "finish_reason": finish_reason}] if choices else [])
            if with_usage:  # the real API adds "usage": null to every chunk then
                c["usage"] = None if choices else usage
            return b"data: " + dumps(c) + b"\n\n"

        if tool:
            events = [chunk({"role": "assistant", "content": None, "tool_calls": [
                {"index": 0, "id": call_id, "type": "function",
                 "function": {"name": tool, "arguments": ""}}]})]
            events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]})
                       for p in parts]
        else:
            events = [chunk({"role": "assistant", "content": ""})]
            events += [chunk({"content": p}) for p in parts]
        events.append(chunk({}, finish))
        if with_usage:
            events.append(chunk(None, choices=False))
        if not d.flag("no_done"):
            events.append(b"data: [DONE]\n\n")
        self.stream(d, events, "text/event-stream; charset=utf-8")

    # ---- OpenAI Responses -------------------------------------------------

    @staticmethod
    def responses_last(req):
        """Text of the last user message of a Responses `input` (string or items)."""
        inp = req.get("input")
        if isinstance(inp, str):
            return inp
        if isinstance(inp, list):
            for item in reversed(inp):
                if isinstance(item, dict) and item.get("role") == "user":
                    return content_text(item.get("content"))
                if isinstance(item, dict) and item.get("type") == "function_call_output":
                    out = item.get("output")
                    return out if isinstance(out, str) else content_text(out)
        return ""

    def openai_responses(self, req):
        """POST /v1/responses: a response object, or the typed event stream
        (event: lines, sequence_number on every event) as the API reference
        documents it. Directives: tool=NAME (a function call), thinking=1 (a
        reasoning item with a summary first), finish=length (incomplete)."""
        last = self.responses_last(req)
        d = Directives.parse(last)
        if self.pre_response(d, req.get("stream") is True):
            return
        tool, thinking = d.get("tool"), d.flag("thinking")
        parts = self.tool_pieces() if tool else self.answer_parts(d, last)
        u = self.usage_numbers(d, len(json.dumps(req.get("input"))), len(parts))
        usage = {"input_tokens": u["input"] + u["cache_read"],
                 "input_tokens_details": {"cached_tokens": u["cache_read"]},
                 "output_tokens": u["output"],
                 "output_tokens_details": {"reasoning_tokens": d.int("reasoning_tokens")},
                 "total_tokens": u["input"] + u["cache_read"] + u["output"]}
        incomplete = d.get("finish") == "length"
        rid, model = "resp_mock%d" % self.seq, req.get("model", "mock-model")
        created = int(time.time())

        def response(status, output, with_usage):
            return {"id": rid, "object": "response", "created_at": created, "status": status,
                    "background": False, "error": None,
                    "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
                    "instructions": req.get("instructions"), "max_output_tokens": req.get("max_output_tokens"),
                    "model": model, "output": output, "parallel_tool_calls": True,
                    "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
                    "store": req.get("store", True), "temperature": 1.0,
                    "text": {"format": {"type": "text"}}, "tool_choice": req.get("tool_choice", "auto"),
                    "tools": req.get("tools", []), "top_p": 1.0, "truncation": "disabled",
                    "usage": usage if with_usage else None, "user": None, "metadata": {}}

        items = []
        if thinking:
            items.append({"id": "rs_mock%d" % self.seq, "type": "reasoning",
                          "summary": [{"type": "summary_text", "text": "".join(THINKING_DELTAS)}]})
        if tool:
            items.append({"id": "fc_mock%d" % self.seq, "type": "function_call", "status": "completed",
                          "arguments": TOOL_ARGS, "call_id": "call_mock%d" % self.seq, "name": tool})
        else:
            items.append({"id": "msg_mock%d" % self.seq, "type": "message", "status": "completed",
                          "content": [{"type": "output_text", "annotations": [], "logprobs": [],
                                       "text": "".join(parts)}], "role": "assistant"})
        final_status = "incomplete" if incomplete else "completed"
        if not self.streams(d, req):
            return self.send_json(200, response(final_status, items, True),
                                  head_delay=d.int("head_then_delay_ms"))

        seq = [0]

        def ev(name, data):
            obj = dict(type=name, sequence_number=seq[0], **data)
            seq[0] += 1
            return b"event: " + name.encode() + b"\ndata: " + dumps(obj) + b"\n\n"

        events = [ev("response.created", {"response": response("in_progress", [], False)}),
                  ev("response.in_progress", {"response": response("in_progress", [], False)})]
        for oi, item in enumerate(items):
            iid = item["id"]
            if item["type"] == "reasoning":
                events.append(ev("response.output_item.added", {"output_index": oi, "item": dict(item, summary=[])}))
                events.append(ev("response.reasoning_summary_part.added", {
                    "item_id": iid, "output_index": oi, "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""}}))
                events += [ev("response.reasoning_summary_text.delta", {
                    "item_id": iid, "output_index": oi, "summary_index": 0, "delta": t})
                    for t in THINKING_DELTAS]
                text = "".join(THINKING_DELTAS)
                events.append(ev("response.reasoning_summary_text.done", {
                    "item_id": iid, "output_index": oi, "summary_index": 0, "text": text}))
                events.append(ev("response.reasoning_summary_part.done", {
                    "item_id": iid, "output_index": oi, "summary_index": 0,
                    "part": {"type": "summary_text", "text": text}}))
            elif item["type"] == "function_call":
                events.append(ev("response.output_item.added", {"output_index": oi, "item": dict(
                    item, status="in_progress", arguments="")}))
                events += [ev("response.function_call_arguments.delta", {
                    "item_id": iid, "output_index": oi, "delta": p}) for p in parts]
                events.append(ev("response.function_call_arguments.done", {
                    "item_id": iid, "output_index": oi, "name": tool, "arguments": TOOL_ARGS}))
            else:
                text = item["content"][0]["text"]
                events.append(ev("response.output_item.added", {"output_index": oi, "item": dict(
                    item, status="in_progress", content=[])}))
                events.append(ev("response.content_part.added", {
                    "item_id": iid, "output_index": oi, "content_index": 0,
                    "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}}))
                events += [ev("response.output_text.delta", {
                    "item_id": iid, "output_index": oi, "content_index": 0, "delta": p,
                    "logprobs": []}) for p in parts]
                events.append(ev("response.output_text.done", {
                    "item_id": iid, "output_index": oi, "content_index": 0, "text": text,
                    "logprobs": []}))
                events.append(ev("response.content_part.done", {
                    "item_id": iid, "output_index": oi, "content_index": 0,
                    "part": item["content"][0]}))
            events.append(ev("response.output_item.done", {"output_index": oi, "item": item}))
        if not d.flag("no_done"):
            events.append(ev("response." + final_status, {"response": response(final_status, items, True)}))
        self.stream(d, events, "text/event-stream; charset=utf-8")

    def openai_embeddings(self, req):
        inp = req.get("input")
        items = inp if isinstance(inp, list) and inp and not isinstance(inp[0], int) else [inp]
        texts = [i if isinstance(i, str) else json.dumps(i) for i in items]
        d = Directives.parse("".join(i for i in items if isinstance(i, str)))
        if self.pre_response(d):
            return
        dims = req.get("dimensions") if isinstance(req.get("dimensions"), int) else 8
        as_b64 = req.get("encoding_format") == "base64"
        data = []
        for idx, text in enumerate(texts):
            # Deterministic values in [-1, 1), rounded to float32 so the JSON
            # floats and the base64 float32 encoding describe the same vector.
            packed = b"".join(struct.pack("<f", int.from_bytes(hashlib.sha256(
                ("%d:%s" % (k, text)).encode("utf-8", "surrogatepass")).digest()[:4], "little")
                / 2 ** 31 - 1.0) for k in range(dims))
            vec = (base64.b64encode(packed).decode() if as_b64
                   else list(struct.unpack("<%df" % dims, packed)))
            data.append({"object": "embedding", "index": idx, "embedding": vec})
        tokens = d.int("input_tokens", sum(len(t) for t in texts) // 4 + 1)
        self.send_json(200, {"object": "list", "data": data,
                             "model": req.get("model", "mock-embedding"),
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
                       head_delay=d.int("head_then_delay_ms"))

    def list_models(self, req):
        # Forced directives steer the list too: models_status=N answers N in
        # the API's error shape (401 for a revoked key); models_page=N cuts
        # Anthropic's pages to N models (its ?limit= and ?after_id= are
        # honoured as the real API does, 20 per page by default).
        d = Directives.parse("")
        if d.int("models_status"):
            return self.api_error(self.api, d.int("models_status"))
        if self.api == "anthropic":
            q = parse_qs(urlsplit(self.path).query)
            try:
                limit = int(q.get("limit", ["20"])[0])
            except ValueError:
                return self.api_error("anthropic", 400, "limit: not a number")
            limit = max(1, min(limit, d.int("models_page", 1000)))
            after = q.get("after_id", [None])[0]
            ids = [mid for mid, _ in ANTHROPIC_MODELS]
            start = ids.index(after) + 1 if after in ids else 0
            data = [{"type": "model", "id": mid, "display_name": name,
                     "created_at": "2025-05-14T00:00:00Z"}
                    for mid, name in ANTHROPIC_MODELS[start:start + limit]]
            return self.send_json(200, {"data": data,
                                        "has_more": start + limit < len(ids),
                                        "first_id": data[0]["id"] if data else None,
                                        "last_id": data[-1]["id"] if data else None})
        self.send_json(200, {"object": "list", "data": [
            {"id": m, "object": "model", "created": 1715367049, "owned_by": "system"}
            for m in OPENAI_MODELS]})

    # ---- Anthropic --------------------------------------------------------

    @staticmethod
    def anthropic_input_chars(req):
        msgs = req.get("messages") if isinstance(req.get("messages"), list) else []
        return len(content_text(req.get("system"))) + sum(
            len(content_text(m.get("content"))) for m in msgs if isinstance(m, dict))

    @staticmethod
    def anthropic_last(req):
        msgs = req.get("messages") if isinstance(req.get("messages"), list) else []
        return content_text(msgs[-1].get("content")) if msgs and isinstance(msgs[-1], dict) else ""

    def anthropic_count_tokens(self, req):
        d = Directives.parse(self.anthropic_last(req))
        if self.pre_response(d):
            return
        self.send_json(200, {"input_tokens": d.int("input_tokens",
                                                   self.anthropic_input_chars(req) // 4 + 1)})

    def anthropic_messages(self, req):
        last, d = scripted(req.get("messages") if isinstance(req.get("messages"), list) else [])
        if self.pre_response(d, req.get("stream") is True):
            return
        tool, thinking = d.get("tool"), d.flag("thinking")
        parts = self.tool_pieces() if tool else self.answer_parts(d, last)
        u = self.usage_numbers(d, self.anthropic_input_chars(req), len(parts))
        finish = d.get("finish")
        stop = {"length": "max_tokens", None: "tool_use" if tool else "end_turn"}.get(finish, finish)
        tool_id = "toolu_mock%d" % self.seq
        model = req.get("model", "mock-model")
        msg_id = "msg_mock%d" % self.seq

        if not self.streams(d, req):
            content = []
            if thinking:
                content.append({"type": "thinking", "thinking": "".join(THINKING_DELTAS),
                                "signature": SIGNATURE})
            content.append({"type": "tool_use", "id": tool_id, "name": tool,
                            "input": json.loads(TOOL_ARGS)} if tool
                           else {"type": "text", "text": "".join(parts)})
            return self.send_json(200, {
                "id": msg_id, "type": "message", "role": "assistant", "model": model,
                "content": content, "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": u["input"], "cache_creation_input_tokens": u["cache_write"],
                          "cache_read_input_tokens": u["cache_read"], "output_tokens": u["output"]}},
                head_delay=d.int("head_then_delay_ms"))

        def ev(name, data):
            return b"event: " + name.encode() + b"\ndata: " + dumps(dict(type=name, **data)) + b"\n\n"

        events = [ev("message_start", {"message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": u["input"], "cache_creation_input_tokens": u["cache_write"],
                      "cache_read_input_tokens": u["cache_read"], "output_tokens": 1}}})]
        if d.flag("ping", True):
            events.append(ev("ping", {}))
        index = 0
        if thinking:
            events.append(ev("content_block_start", {"index": 0, "content_block":
                                                     {"type": "thinking", "thinking": ""}}))
            events += [ev("content_block_delta", {"index": 0, "delta":
                                                  {"type": "thinking_delta", "thinking": t}})
                       for t in THINKING_DELTAS]
            events.append(ev("content_block_delta", {"index": 0, "delta":
                                                     {"type": "signature_delta", "signature": SIGNATURE}}))
            events.append(ev("content_block_stop", {"index": 0}))
            index = 1
        if tool:
            events.append(ev("content_block_start", {"index": index, "content_block": {
                "type": "tool_use", "id": tool_id, "name": tool, "input": {}}}))
            events += [ev("content_block_delta", {"index": index, "delta":
                                                  {"type": "input_json_delta", "partial_json": p}})
                       for p in [""] + parts]
        else:
            events.append(ev("content_block_start", {"index": index, "content_block":
                                                     {"type": "text", "text": ""}}))
            events += [ev("content_block_delta", {"index": index, "delta":
                                                  {"type": "text_delta", "text": p}}) for p in parts]
        events.append(ev("content_block_stop", {"index": index}))
        events.append(ev("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None},
                                           "usage": {"output_tokens": u["output"]}}))
        if not d.flag("no_done"):
            events.append(ev("message_stop", {}))
        self.stream(d, events, "text/event-stream")


def main():
    ap = argparse.ArgumentParser(description="Mock OpenAI/Anthropic upstream")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--portfile", help="written (atomically) once listening")
    ap.add_argument("--openai-key", help="require Authorization: Bearer KEY on OpenAI routes")
    ap.add_argument("--anthropic-key", help="require x-api-key: KEY on Anthropic routes")
    ap.add_argument("--name", default="upstream", help="label for logs and x-mock-upstream")
    ap.add_argument("--quiet", action="store_true", help="no per-request log lines")
    cfg = ap.parse_args()

    server = MockServer(("127.0.0.1", cfg.port), cfg)  # bind + listen happen here
    serve(server, cfg)


def run_mock(description, name, make_server, add_args=None):
    """main() of the other mocks: --port, --portfile, --name (default `name`),
    --quiet and what add_args(parser) adds; make_server(addr, cfg) builds the
    server, which then serves as serve() says."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--portfile", help="written (atomically) once listening")
    ap.add_argument("--name", default=name, help="label for logs")
    ap.add_argument("--quiet", action="store_true", help="no per-request log lines")
    if add_args:
        add_args(ap)
    cfg = ap.parse_args()
    serve(make_server(("127.0.0.1", cfg.port), cfg), cfg)


def serve(server, cfg):
    """Writes the port file, serves until SIGTERM or SIGINT, exits 0 (the
    other mocks in tests/mock/ share it)."""
    port = server.server_address[1]
    if cfg.portfile:
        tmp = "%s.tmp.%d" % (cfg.portfile, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, cfg.portfile)  # readers never see a partial file
    if not cfg.quiet:
        sys.stderr.write("[%s] listening on 127.0.0.1:%d\n" % (cfg.name, port))

    # serve_forever runs in a thread because shutdown() deadlocks if called
    # from the serving thread, and signal handlers run on the main thread.
    # The harness asks for every thread's stack with SIGUSR1 when a mock
    # does not stop in time.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                     daemon=True).start()
    while not stop.wait(0.1):
        pass
    server.shutdown()
    server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()

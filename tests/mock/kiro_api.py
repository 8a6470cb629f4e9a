#!/usr/bin/env python3
"""Mock Kiro API (Amazon Q Developer / CodeWhisperer streaming).

Standard library only.  Reuses upstream.py's control API (/_mock/requests,
/_mock/reset, /_mock/force, /_mock/stats) and its [[mock: ...]] directives.

    kiro_api.py --port 0 --portfile PATH [--token T ...] [--secret S]
                [--name NAME] [--quiet]

Routes:
    POST /generateAssistantResponse   the answer as an AWS event stream
                                      (application/vnd.amazon.eventstream):
                                      real framing, real CRC-32s, written in
                                      random byte splits
    GET  /ListAvailableModels         {"models":[{modelId, tokenLimits}]}
    GET  /getUsageLimits              a CREDIT usage breakdown

Auth: `Authorization: Bearer <token>`, where the token is one of --token, or
(with --secret) one signed like github.py's ("body:<hmac-sha256 hex>", with
an `exp=UNIX` field in the body that is still ahead).  Anything else is 403
with the body the real service sends for a bad token ("The bearer token
included in the request is invalid.").

Every generateAssistantResponse body is checked against the shapes Kiro
refuses with `400 {"message":"Improperly formed request.","reason":null}`
(PROVIDERS.md 1.2): the reason the mock found is in an `x-mock-reason`
header, so a test sees why.

Directives, in the current message's content (or, failing that, the latest
user content of the history that has one): `[[mock: key=value, ...]]`.

| key | effect |
|---|---|
| `events=N`, `text=W` | N text events `W0`, ` W1`, ... (default 3, `Hello`) |
| `echo=1` | one text event: the current message's content |
| `thinking=1` | `<thinking>...</thinking>` first, cut inside both tags |
| `reasoning=1` | native reasoningContentEvent text + signature first |
| `tool=NAME[:NAME...]` | tool calls after the text (input streamed in fragments) |
| `tool_kb=K` | each tool's input holds a K KiB string (many fragments) |
| `cut_tool=1` | the last tool call never gets its `stop` |
| `exception=TYPE` | an exception frame after the first text event |
| `exception_first=TYPE` | an exception frame before anything else |
| `length=1` | ContentLengthExceededException after the text |
| `parts=HEX` | the text events exactly (hex of a UTF-8 JSON list of strings) |
| `rounds=HEX` | an answer in rounds, for continuation (rounds_script) |
| `status=C` | HTTP C with Kiro's error body (`throttle`: 429 ThrottlingException) |
| `garbage=1` | bytes that are not a frame after the first frame |
| `bad_crc=1` | the second frame's message CRC is wrong |
| `truncate=1` | the stream stops in the middle of its last frame |
| `chunk=N` | the largest write (default 64 bytes, random sizes 1..N) |
| `seed=N` | the random split's seed (default: the request's seq) |
| `delay_ms=N` | pause between writes |
| `context_pct=X`, `credits=X` | contextUsageEvent and meteringEvent values |
| `models_status=C` | ListAvailableModels answers C |

When the current message carries toolResults, the text answer is
`Result: <first result's text>` (a two-turn tool round trip can check it).
"""

import argparse
import hashlib
import hmac
import json
import os
import random
import struct
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import upstream  # noqa: E402
from upstream import Directives, MockServer  # noqa: E402

MODELS = [("auto", 200000), ("claude-sonnet-4.5", 200000), ("claude-sonnet-4", 200000),
          ("claude-haiku-4.5", 200000), ("claude-opus-4.5", 200000)]
IMAGE_FORMATS = {"jpeg", "png", "gif", "webp"}
MALFORMED = {"message": "Improperly formed request.", "reason": None}


# ---- the event-stream framing ---------------------------------------------

def header(name, value):
    """One header: a string (type 7), or (type, value) for the others."""
    n = name.encode()
    if isinstance(value, str):
        v = value.encode()
        return bytes([len(n)]) + n + bytes([7]) + struct.pack(">H", len(v)) + v
    t, x = value
    fixed = {2: ">b", 3: ">h", 4: ">i", 5: ">q", 8: ">q"}
    if t in (0, 1):
        body = b""
    elif t in fixed:
        body = struct.pack(fixed[t], x)
    elif t == 6:
        body = struct.pack(">H", len(x)) + x
    else:  # 9: UUID
        body = x
    return bytes([len(n)]) + n + bytes([t]) + body


def frame(headers, payload, bad_crc=False):
    hs = b"".join(header(k, v) for k, v in headers)
    total = 16 + len(hs) + len(payload)
    prelude = struct.pack(">II", total, len(hs))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    msg = prelude + hs + payload
    crc = zlib.crc32(msg) ^ (1 if bad_crc else 0)
    return msg + struct.pack(">I", crc)


def event(event_type, obj, **kw):
    # Every header type rides along on events now and then, as the decoder
    # must take them all.
    extra = [("x-mock-seq", (5, 7)), ("x-mock-flag", (0, None))]
    return frame([(":event-type", event_type), (":content-type", "application/json"),
                  (":message-type", "event")] + extra,
                 json.dumps(obj, separators=(",", ":")).encode(), **kw)


def exception(exc_type, message):
    return frame([(":exception-type", exc_type), (":content-type", "application/json"),
                  (":message-type", "exception")],
                 json.dumps({"message": message}).encode())


# ---- the request checks ---------------------------------------------------

def malformed(req):
    """Why Kiro would refuse the body (PROVIDERS.md 1.2), or None."""
    cs = req.get("conversationState")
    if not isinstance(cs, dict):
        return "no conversationState"
    if cs.get("chatTriggerType") != "MANUAL":
        return "chatTriggerType is not MANUAL"
    if not isinstance(cs.get("conversationId"), str) or not cs["conversationId"]:
        return "no conversationId"
    cur = (cs.get("currentMessage") or {}).get("userInputMessage")
    if not isinstance(cur, dict):
        return "currentMessage is not a userInputMessage"
    history = cs.get("history", [])
    if not isinstance(history, list):
        return "history is not a list"
    turns = history + [{"userInputMessage": cur}]
    expect_user = True
    used_tools, result_ids_seen = set(), set()
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or len(t) != 1:
            return "turn %d is not one message" % i
        if expect_user != ("userInputMessage" in t):
            return "turn %d breaks the user/assistant alternation" % i
        expect_user = not expect_user
        if "userInputMessage" in t:
            m = t["userInputMessage"]
            if not isinstance(m.get("content"), str) or not m["content"]:
                return "turn %d: empty user content" % i
            if not m.get("modelId") or m.get("origin") != "AI_EDITOR":
                return "turn %d: modelId/origin missing" % i
            for img in m.get("images", []):
                if img.get("format") not in IMAGE_FORMATS or \
                        not isinstance((img.get("source") or {}).get("bytes"), str):
                    return "turn %d: bad image %r" % (i, img.get("format"))
            ctx = m.get("userInputMessageContext") or {}
            ids = set()
            for r in ctx.get("toolResults", []):
                if r.get("toolUseId") in ids:
                    return "turn %d: duplicate toolUseId" % i
                ids.add(r.get("toolUseId"))
                result_ids_seen.add(r.get("toolUseId"))
                if r.get("status") not in ("success", "error"):
                    return "turn %d: bad tool result status" % i
                texts = [c.get("text") for c in r.get("content", []) if isinstance(c, dict)]
                if not texts or not all(isinstance(x, str) and x for x in texts):
                    return "turn %d: empty tool result content" % i
            if "tools" in ctx and i != len(turns) - 1:
                return "tools outside the current message"
        else:
            m = t["assistantResponseMessage"]
            if not isinstance(m.get("content"), str) or not m["content"]:
                return "turn %d: empty assistant content" % i
            for u in m.get("toolUses", []):
                if not isinstance(u.get("input"), dict):
                    return "turn %d: tool input is not an object" % i
                used_tools.add(u.get("name"))
    tools = (cur.get("userInputMessageContext") or {}).get("tools", [])
    declared = set()
    for t in tools:
        spec = t.get("toolSpecification") or {}
        name, desc = spec.get("name"), spec.get("description")
        if not isinstance(name, str) or not name or len(name) > 64:
            return "tool name missing or over 64 characters"
        if not isinstance(desc, str) or not desc or len(desc) > 10000:
            return "tool description empty or over 10000 characters"
        schema = (spec.get("inputSchema") or {}).get("json")
        if not isinstance(schema, dict):
            return "tool %s: no inputSchema.json" % name
        if bad_schema(schema):
            return "tool %s: additionalProperties or empty required" % name
        declared.add(name)
    if used_tools - declared:
        return "history uses tools that are not declared: %s" % sorted(used_tools - declared)
    return None


def bad_schema(v):
    if isinstance(v, dict):
        if "additionalProperties" in v or v.get("required") == []:
            return True
        return any(bad_schema(x) for x in v.values())
    if isinstance(v, list):
        return any(bad_schema(x) for x in v)
    return False


def directive_text(cur, history):
    if upstream.DIRECTIVE_RE.search(cur.get("content", "")):
        return cur["content"]
    for t in reversed(history):
        c = (t.get("userInputMessage") or {}).get("content", "")
        if upstream.DIRECTIVE_RE.search(c):
            return c
    return cur.get("content", "")


def rounds_script(d, history):
    """`rounds=HEX` (the hex of a UTF-8 JSON list of rounds, each a list of
    text events), for continuation: the answer is the first round that the
    assistant turns of the history after the directive's message do not
    already hold, cut with ContentLengthExceededException unless it is the
    last round."""
    if not d.get("rounds"):
        return
    rounds = json.loads(bytes.fromhex(d["rounds"]).decode("utf-8"))
    at = -1
    for i, t in enumerate(history):
        c = (t.get("userInputMessage") or {}).get("content", "")
        if upstream.DIRECTIVE_RE.search(c):
            at = i
    said = "".join((t.get("assistantResponseMessage") or {}).get("content", "")
                   for t in history[at + 1:]) if at >= 0 else ""
    k = 0
    while k < len(rounds) and said.startswith("".join("".join(r) for r in rounds[:k + 1]).rstrip()):
        k += 1
    d["parts"] = json.dumps(rounds[k] if k < len(rounds) else []).encode("utf-8").hex()
    if k < len(rounds) - 1:
        d["length"] = "1"


# ---- the server -----------------------------------------------------------

class Handler(upstream.Handler):
    server_version = "mock-kiro/1.0"

    def token_ok(self):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return False
        tok = auth[7:]
        cfg = self.server.cfg
        if tok in (cfg.token or []):
            return True
        if cfg.secret:
            body, _, sig = tok.rpartition(":")
            want = hmac.new(cfg.secret.encode(), body.encode(), hashlib.sha256).hexdigest()
            if body and hmac.compare_digest(sig, want):
                fields = dict(f.split("=", 1) for f in body.split(";") if "=" in f)
                try:
                    return int(fields.get("exp", "0")) > time.time()
                except ValueError:
                    return False
        return not cfg.token and not cfg.secret

    def kiro_error(self, status, obj, reason_header=None):
        headers = [("x-amzn-requestid", "mock-%d" % self.seq)]
        if reason_header:
            headers.append(("x-mock-reason", reason_header))
        self.send_json(status, obj, headers=headers)

    def dispatch(self):
        self.seq = 0
        path = self.path.split("?", 1)[0]
        try:
            body = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return self.send_json(400, MALFORMED)
        self.conn_requests += 1
        if path == "/_mock" or path.startswith("/_mock/"):
            return self.control(path, body)
        self.record(body)
        routes = {"/generateAssistantResponse": ("POST", self.generate),
                  "/ListAvailableModels": ("GET", self.list_models),
                  "/getUsageLimits": ("GET", self.usage_limits)}
        if path not in routes or routes[path][0] != self.command:
            return self.kiro_error(404, {"message": "Not Found"})
        if not self.token_ok():
            return self.kiro_error(403, {
                "message": "The bearer token included in the request is invalid.",
                "reason": None})
        routes[path][1](body)

    def list_models(self, body):
        d = Directives(upstream.FORCED)
        status = d.int("models_status", 200)
        if status != 200:
            return self.kiro_error(status, {"message": "mock models error"})
        self.send_json(200, {"models": [
            {"modelId": m, "modelName": m, "description": m, "rateMultiplier": 1.0,
             "rateUnit": "credit", "supportedInputTypes": ["TEXT", "IMAGE"],
             "tokenLimits": {"maxInputTokens": w, "maxOutputTokens": 64000}}
            for m, w in MODELS], "defaultModel": {"modelId": "auto"}})

    def usage_limits(self, body):
        self.send_json(200, {"usageBreakdownList": [{
            "resourceType": "CREDIT", "usageLimitWithPrecision": 50.0,
            "currentUsageWithPrecision": 1.5, "nextDateReset": 1767225600}]})

    def generate(self, body):
        try:
            req = json.loads(body)
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError:
            return self.kiro_error(400, MALFORMED, "body is not a JSON object")
        why = malformed(req)
        if why:
            return self.kiro_error(400, MALFORMED, why)
        cs = req["conversationState"]
        cur = cs["currentMessage"]["userInputMessage"]
        d = Directives.parse(directive_text(cur, cs.get("history", [])))
        if d.get("status"):
            st = d.int("status")
            if d.get("status") == "throttle" or st == 429:
                return self.kiro_error(429, {
                    "__type": "com.amazon.aws.codewhisperer#ThrottlingException",
                    "message": "Rate exceeded", "reason": "USER_REQUEST_RATE_EXCEEDED"})
            return self.kiro_error(st, {"message": "mock error %d" % st, "reason": None})
        rounds_script(d, cs.get("history", []))
        frames = self.script(d, cur)
        self.send_stream(d, frames)

    def script(self, d, cur):
        f = []
        if d.get("exception_first"):
            return [exception(d["exception_first"], "mock %s" % d["exception_first"])]
        if d.flag("reasoning"):
            f.append(event("reasoningContentEvent", {"text": "Let me reason."}))
            f.append(event("reasoningContentEvent", {"signature": "sig-mock-1"}))
        if d.flag("thinking"):
            for piece in ["<thin", "king>Thinking ", "it through.</th", "inking>\n\n"]:
                f.append(event("assistantResponseEvent", {"content": piece}))
        results = (cur.get("userInputMessageContext") or {}).get("toolResults", [])
        if results:
            parts = ["Result: " + results[0]["content"][0]["text"]]
        elif d.flag("echo"):
            parts = [cur["content"]]
        elif d.get("parts"):
            parts = json.loads(bytes.fromhex(d["parts"]).decode("utf-8"))
        else:
            word = d.get("text") or "Hello"
            parts = [("" if i == 0 else " ") + word + str(i) for i in range(d.int("events", 3))]
        for i, p in enumerate(parts):
            f.append(event("assistantResponseEvent", {"content": p}))
            if i == 0 and d.get("exception"):
                f.append(exception(d["exception"], "mock %s" % d["exception"]))
        if d.get("tool") and not results:
            names = d["tool"].split(":")
            kb = d.int("tool_kb")
            for n, name in enumerate(names):
                tid = "tooluse_mock%d" % n
                args = {"location": "Paris, France", "unit": "celsius"}
                if kb:
                    args["blob"] = "x" * (kb * 1024)
                inp = json.dumps(args, separators=(",", ":"))
                step = max(1, len(inp) // 4) if kb == 0 else 700
                pieces = [inp[i:i + step] for i in range(0, len(inp), step)]
                last = n == len(names) - 1
                for p in pieces:
                    f.append(event("toolUseEvent", {"toolUseId": tid, "name": name, "input": p}))
                if not (last and d.flag("cut_tool")):
                    f.append(event("toolUseEvent", {"toolUseId": tid, "name": name,
                                                    "stop": True}))
        if d.flag("length"):
            f.append(exception("ContentLengthExceededException", "Response too long"))
        f.append(event("meteringEvent", {"unit": "credit", "unitPlural": "credits",
                                         "usage": float(d.get("credits", "0.0123"))}))
        f.append(event("contextUsageEvent",
                       {"contextUsagePercentage": float(d.get("context_pct", "2.5"))}))
        if d.flag("bad_crc") and len(f) > 1:
            f[1] = f[1][:-4] + struct.pack(">I", struct.unpack(">I", f[1][-4:])[0] ^ 1)
        if d.flag("garbage"):
            f.insert(1, b"<html>not a frame</html>")
        if d.flag("truncate"):
            f[-1] = f[-1][:len(f[-1]) // 2]
        return f

    def send_stream(self, d, frames):
        data = b"".join(frames)
        rng = random.Random(d.int("seed", self.seq))
        chunk = max(1, d.int("chunk", 64))
        delay = d.int("delay_ms")
        self.start(200, [("Content-Type", "application/vnd.amazon.eventstream"),
                         ("Transfer-Encoding", "chunked"),
                         ("x-amzn-requestid", "mock-%d" % self.seq)])
        i = 0
        try:
            while i < len(data):
                n = rng.randint(1, chunk)
                piece = data[i:i + n]
                i += n
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
                if delay:
                    time.sleep(delay / 1000)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            with self.server.state.lock:
                self.server.state.completed_streams += 1
        except OSError:
            self.close_connection = True
            with self.server.state.lock:
                self.server.state.aborted.append({"path": self.path, "events_sent": i,
                                                  "time": time.time(), "seq": self.seq})


class Server(MockServer):
    def __init__(self, addr, cfg):
        self.cfg = cfg
        self.state = upstream.State()
        super(MockServer, self).__init__(addr, Handler)


def main():
    ap = argparse.ArgumentParser(description="Mock Kiro (CodeWhisperer) API")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--portfile")
    ap.add_argument("--token", action="append", help="an access token the API takes")
    ap.add_argument("--secret", help="also take tokens signed with this (see the top)")
    ap.add_argument("--name", default="kiro")
    ap.add_argument("--quiet", action="store_true")
    cfg = ap.parse_args()
    server = Server(("127.0.0.1", cfg.port), cfg)
    upstream.serve(server, cfg)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Mock GitHub Copilot API (the host a Copilot token's endpoints.api names).

Standard library only.  Reuses upstream.py's OpenAI and Anthropic answers and
its control API (/_mock/requests, /_mock/reset, /_mock/force, /_mock/stats),
and its [[mock: ...]] directives, on Copilot's paths:

    POST /chat/completions   OpenAI Chat Completions
    POST /v1/messages        Anthropic Messages (Claude models only)
    POST /embeddings         OpenAI embeddings
    GET  /models             {"data":[{id, supported_endpoints, capabilities}]}

    copilot_api.py --port 0 --portfile PATH --secret S [--name NAME] [--quiet]

Every call needs `Authorization: Bearer <copilot token>` where the token is one
that github.py minted with the same --secret: "tid=N;exp=UNIX;sku=...:<hmac>".
An expired or forged token gets 401 (what the real API answers when the
half-hour token has run out).  POST /_mock/expire expires every token seen so
far (tid below the next one); GET /_mock/rejected counts the 401s.  A model the list does not hold gets 400
model_not_supported; a model served only by /responses gets 400
unsupported_api_for_model on /chat/completions.  `status=402` answers
quota_exceeded (directive or /_mock/force).
"""

import hashlib
import hmac
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import upstream  # noqa: E402
from upstream import Directives, MockServer  # noqa: E402

# id, endpoints, vendor
MODELS = [
    ("gpt-4.1", ["/chat/completions"], "Azure OpenAI"),
    ("gpt-4o", ["/chat/completions"], "Azure OpenAI"),
    ("claude-sonnet-4", ["/chat/completions", "/v1/messages"], "Anthropic"),
    ("claude-sonnet-4.5", ["/chat/completions", "/v1/messages"], "Anthropic"),
    ("gpt-5-codex", ["/responses"], "OpenAI"),
    ("text-embedding-3-small", ["/embeddings"], "Azure OpenAI"),
]
SERVED = {m for m, _, _ in MODELS}


EXPIRED = {"below_tid": 0, "max_tid": 0, "rejected": 0}
EXPIRED_LOCK = threading.Lock()


def token_valid(secret, token):
    """1 for a token github.py minted with `secret` whose exp is still ahead
    and that POST /_mock/expire has not expired."""
    body, _, sig = token.rpartition(":")
    want = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    if not body or not hmac.compare_digest(sig, want):
        return False
    fields = dict(f.split("=", 1) for f in body.split(";") if "=" in f)
    try:
        tid, exp = int(fields.get("tid", "0")), int(fields.get("exp", "0"))
    except ValueError:
        return False
    with EXPIRED_LOCK:
        EXPIRED["max_tid"] = max(EXPIRED["max_tid"], tid)
        return exp > time.time() and tid >= EXPIRED["below_tid"]


class Handler(upstream.Handler):
    server_version = "mock-copilot/1.0"

    def copilot_control(self, path, body):
        if path == "/_mock/expire" and self.command == "POST":
            # Every token seen so far expires now, as a half-hour token does.
            with EXPIRED_LOCK:
                EXPIRED["below_tid"] = EXPIRED["max_tid"] + 1
                out = {"ok": True, "below_tid": EXPIRED["below_tid"]}
            return self.send_json(200, out)
        if path == "/_mock/rejected" and self.command == "GET":
            with EXPIRED_LOCK:
                out = {"rejected": EXPIRED["rejected"]}
            return self.send_json(200, out)
        return self.control(path, body)

    def dispatch(self):
        got = self.begin_request(self.copilot_control)
        if got is None:
            return
        path, body = got
        api = "anthropic" if path == "/v1/messages" else "openai"
        self.api = api
        routes = {"/chat/completions": ("POST", self.openai_chat),
                  "/embeddings": ("POST", self.openai_embeddings),
                  "/models": ("GET", self.copilot_models),
                  "/v1/messages": ("POST", self.anthropic_messages),
                  "/responses": ("POST", self.openai_responses)}
        if path not in routes:
            return self.api_error(api, 404, "Not Found (%s %s)" % (self.command, path), code=None)
        method, func = routes[path]
        if self.command != method:
            return self.api_error(api, 405, "Method not allowed", code=None)
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not token_valid(self.server.cfg.secret, auth[7:]):
            # The real service answers a bare text body here.
            with EXPIRED_LOCK:
                EXPIRED["rejected"] += 1
            return self.send_body(401, b"unauthorized: token expired\n", "text/plain")
        req = {}
        if method == "POST":
            try:
                req = upstream.json.loads(body)
                if not isinstance(req, dict):
                    raise ValueError("not an object")
            except ValueError as e:
                return self.api_error(api, 400, "Invalid JSON body: %s" % e)
            d = Directives.parse(self.last_text(req))
            if d.int("status") == 402:
                return self.send_json(402, {"error": {
                    "message": "You have exceeded your premium request allowance (mock).",
                    "code": "quota_exceeded"}})
            model = req.get("model")
            if model not in SERVED:
                return self.send_json(400, {"error": {
                    "message": "The requested model is not supported.",
                    "code": "model_not_supported", "param": "model",
                    "type": "invalid_request_error"}})
            endpoints = next(e for m, e, _ in MODELS if m == model)
            if path not in endpoints:
                return self.send_json(400, {"error": {
                    "message": "model %s is not accessible via the %s endpoint" % (model, path),
                    "code": "unsupported_api_for_model"}})
        func(req)

    @staticmethod
    def last_text(req):
        msgs = req.get("messages")
        if isinstance(msgs, list) and msgs and isinstance(msgs[-1], dict):
            return upstream.content_text(msgs[-1].get("content"))
        inp = req.get("input")
        return inp if isinstance(inp, str) else ""

    def copilot_models(self, req):
        data = []
        for mid, endpoints, vendor in MODELS:
            kind = "embeddings" if endpoints == ["/embeddings"] else "chat"
            data.append({"id": mid, "name": mid, "object": "model", "vendor": vendor,
                         "version": mid, "model_picker_enabled": kind == "chat",
                         "supported_endpoints": endpoints,
                         "capabilities": {"type": kind, "family": mid, "limits": {
                             "max_context_window_tokens": 128000,
                             "max_prompt_tokens": 128000, "max_output_tokens": 16384},
                             "supports": {"streaming": True, "tool_calls": True}}})
        self.send_json(200, {"object": "list", "data": data})


if __name__ == "__main__":
    upstream.run_mock(
        "Mock GitHub Copilot API", "copilot",
        lambda addr, cfg: MockServer(addr, cfg, Handler),
        lambda ap: ap.add_argument("--secret", required=True,
                                   help="shared with github.py: signs tokens"))

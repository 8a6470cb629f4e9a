#!/usr/bin/env python3
"""Mock GitHub for the Copilot provider: the device flow (github.com), the
Copilot token exchange, the user and the Copilot quota (api.github.com).

Standard library only.  One server answers both hosts' paths:

    POST /login/device/code              form client_id, scope -> device_code, user_code,
                                         verification_uri, expires_in, interval
    POST /login/oauth/access_token       form client_id, device_code, grant_type -> the
                                         scripted outcome (below)
    GET  /copilot_internal/v2/token      Authorization: token <github token> -> {token,
                                         expires_at, refresh_in, endpoints: {api}, sku}
    GET  /user                           -> {login, id}
    GET  /copilot_internal/user          -> {copilot_plan, quota_snapshots: {...}}

    github.py --port 0 --portfile PATH --secret S [--api-url URL] [--github-token T]...

Copilot tokens are "tid=N;exp=UNIX;sku=...:<hmac-sha256 of the rest under S>", so
copilot_api.py (same --secret) can tell a live token from an expired or forged one.

Control (never recorded): GET /_mock/requests, GET /_mock/stats (exchanges, polls,
early_polls, device_codes), POST /_mock/reset, POST /_mock/config with a JSON object
merged into the settings:
    interval (s, default 1), expires_in (s, 900), outcomes (what successive polls of a
    device code answer: "authorization_pending", "slow_down", "expired_token",
    "access_denied" or "ok"; the last repeats; default ["ok"]), slow_down_interval (the
    interval slow_down returns; default interval + 5), token_ttl (s, 1800), refresh_in
    (s, 1500), api_url (endpoints.api), exchange_delay_ms, exchange_status (what every
    exchange of a known token answers instead, counted in failed_exchanges; 0: none),
    revoked (GitHub tokens the
    exchange refuses with 401), revoke_all (refuse every GitHub token), login, plan,
    premium_remaining, premium_entitlement.
A poll earlier than the interval allows (since the code's previous poll) counts in
early_polls and answers slow_down, as GitHub does.
"""

import hashlib
import hmac
import json
import os
import sys
import time
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import upstream  # noqa: E402
from upstream import MockServer  # noqa: E402

DEFAULTS = {"interval": 1, "expires_in": 900, "outcomes": ["ok"], "slow_down_interval": None,
            "token_ttl": 1800, "refresh_in": 1500, "api_url": "", "exchange_delay_ms": 0,
            "exchange_status": 0,
            "revoked": [], "revoke_all": False, "login": "octo-mock", "plan": "individual",
            "premium_remaining": 250, "premium_entitlement": 300}


class GitHubState(upstream.State):
    def reset(self):
        super().reset()
        self.settings = dict(DEFAULTS)
        self.devices = {}        # device_code -> {polls, last_poll, issued, interval}
        self.tokens = set()      # GitHub tokens the device flow issued
        self.exchanges = 0
        self.failed_exchanges = 0
        self.polls = 0
        self.early_polls = 0
        self.next_id = 0


class Handler(upstream.Handler):
    server_version = "mock-github/1.0"

    def dispatch(self):
        got = self.begin_request(self.github_control)
        if got is None:
            return
        path, body = got
        routes = {"/login/device/code": ("POST", self.device_code),
                  "/login/oauth/access_token": ("POST", self.access_token),
                  "/copilot_internal/v2/token": ("GET", self.copilot_token),
                  "/user": ("GET", self.user),
                  "/copilot_internal/user": ("GET", self.copilot_user)}
        if path not in routes or routes[path][0] != self.command:
            return self.send_json(404, {"message": "Not Found"})
        routes[path][1](body)

    # ---- control ----------------------------------------------------------

    def github_control(self, path, body):
        st = self.server.state
        if path == "/_mock/config" and self.command == "POST":
            try:
                cfg = json.loads(body or b"{}")
            except ValueError:
                return self.send_json(400, {"message": "config is not JSON"})
            with st.lock:
                st.settings.update(cfg)
                out = dict(st.settings)
            return self.send_json(200, out)
        if path == "/_mock/stats" and self.command == "GET":
            with st.lock:
                out = {"exchanges": st.exchanges, "failed_exchanges": st.failed_exchanges,
                       "polls": st.polls,
                       "early_polls": st.early_polls, "device_codes": len(st.devices),
                       "requests": len(st.records)}
            return self.send_json(200, out)
        return self.control(path, body)

    # ---- helpers ----------------------------------------------------------

    def form(self, body):
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}

    def github_token(self):
        auth = self.headers.get("Authorization", "")
        return auth[6:] if auth.startswith("token ") else None

    def known(self, tok):
        st = self.server.state
        return tok is not None and (tok in st.tokens or tok in self.server.cfg.github_token) \
            and tok not in st.settings["revoked"] and not st.settings["revoke_all"]

    # ---- device flow ------------------------------------------------------

    def device_code(self, body):
        f = self.form(body)
        if f.get("client_id") != self.server.cfg.client_id:
            return self.send_json(400, {"error": "unauthorized_client",
                                        "error_description": "unknown client_id"})
        st = self.server.state
        with st.lock:
            st.next_id += 1
            n = st.next_id
            s = st.settings
            code = "dc-%d-%s" % (n, os.urandom(6).hex())
            st.devices[code] = {"polls": 0, "last_poll": 0.0, "issued": time.time(),
                                "interval": s["interval"], "expires_in": s["expires_in"]}
            out = {"device_code": code, "user_code": "MOCK-%04d" % n,
                   "verification_uri": "https://github.com/login/device",
                   "expires_in": s["expires_in"], "interval": s["interval"]}
        self.send_json(200, out)

    def access_token(self, body):
        f = self.form(body)
        st = self.server.state
        if f.get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code" or \
                f.get("client_id") != self.server.cfg.client_id:
            return self.send_json(200, {"error": "unsupported_grant_type"})
        with st.lock:
            st.polls += 1
            dev = st.devices.get(f.get("device_code", ""))
            if dev is None:
                return self.send_json(200, {"error": "incorrect_device_code",
                                            "error_description": "unknown device code"})
            now = time.time()
            if now > dev["issued"] + dev["expires_in"]:
                return self.send_json(200, {"error": "expired_token"})
            early = dev["last_poll"] and now - dev["last_poll"] < dev["interval"] - 0.05
            dev["last_poll"] = now
            if early:
                st.early_polls += 1
                dev["interval"] += 5
                return self.send_json(200, {"error": "slow_down", "interval": dev["interval"]})
            outcomes = st.settings["outcomes"]
            what = outcomes[min(dev["polls"], len(outcomes) - 1)]
            dev["polls"] += 1
            if what == "ok":
                st.next_id += 1
                tok = "gho_mock%d%s" % (st.next_id, os.urandom(8).hex())
                st.tokens.add(tok)
                del st.devices[f["device_code"]]
                return self.send_json(200, {"access_token": tok, "token_type": "bearer",
                                            "scope": "read:user"})
            if what == "slow_down":
                sd = st.settings["slow_down_interval"]
                dev["interval"] = sd if sd else dev["interval"] + 5
                return self.send_json(200, {"error": "slow_down", "interval": dev["interval"]})
        self.send_json(200, {"error": what})

    # ---- api.github.com ---------------------------------------------------

    def copilot_token(self, body):
        st = self.server.state
        tok = self.github_token()
        with st.lock:
            ok = self.known(tok)
            s = dict(st.settings)
            if ok and s["exchange_status"]:
                st.failed_exchanges += 1
                ok = None
            if ok:
                st.exchanges += 1
                st.next_id += 1
                n = st.next_id
        if ok is None:
            return self.send_json(s["exchange_status"], {"message": "mock outage"})
        if not ok:
            return self.send_json(401, {"message": "Bad credentials",
                                        "documentation_url": "https://docs.github.com/rest"})
        if s["exchange_delay_ms"]:
            time.sleep(s["exchange_delay_ms"] / 1000)
        exp = int(time.time()) + int(s["token_ttl"])
        claims = "tid=%d;exp=%d;sku=copilot_for_individuals;proxy-ep=mock" % (n, exp)
        sig = hmac.new(self.server.cfg.secret.encode(), claims.encode(),
                       hashlib.sha256).hexdigest()
        self.send_json(200, {"token": claims + ":" + sig, "expires_at": exp,
                             "refresh_in": s["refresh_in"], "sku": "copilot_for_individuals",
                             "chat_enabled": True,
                             "endpoints": {"api": s["api_url"] or self.server.cfg.api_url,
                                           "telemetry": "http://127.0.0.1:9/telemetry"}})

    def user(self, body):
        if not self.known(self.github_token()):
            return self.send_json(401, {"message": "Bad credentials"})
        s = self.server.state.settings
        self.send_json(200, {"login": s["login"], "id": 4242, "type": "User"})

    def copilot_user(self, body):
        if not self.known(self.github_token()):
            return self.send_json(401, {"message": "Bad credentials"})
        s = self.server.state.settings
        ent, rem = s["premium_entitlement"], s["premium_remaining"]
        self.send_json(200, {"login": s["login"], "copilot_plan": s["plan"],
                             "quota_reset_date": "2027-01-01",
                             "quota_snapshots": {
                                 "chat": {"entitlement": 0, "remaining": 0, "unlimited": True,
                                          "percent_remaining": 100.0},
                                 "premium_interactions": {
                                     "entitlement": ent, "remaining": rem, "unlimited": False,
                                     "percent_remaining": 100.0 * rem / ent if ent else 0.0}}})


def add_args(ap):
    ap.add_argument("--secret", required=True, help="shared with copilot_api.py")
    ap.add_argument("--api-url", default="", help="endpoints.api of the tokens it mints")
    ap.add_argument("--client-id", default="Iv1.b507a08c87ecfe98")
    ap.add_argument("--github-token", action="append", default=[],
                    help="a GitHub token the exchange accepts from the start (repeatable)")


if __name__ == "__main__":
    upstream.run_mock("Mock GitHub (device flow, Copilot token)", "github",
                      lambda addr, cfg: MockServer(addr, cfg, Handler, GitHubState()), add_args)

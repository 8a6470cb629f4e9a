#!/usr/bin/env python3
"""Mock Kiro accounts service: Kiro's social auth service, AWS SSO OIDC, the
account calls of the CodeWhisperer API, and a minimal generateAssistantResponse
that checks the bearer token.  Standard library only; one server answers every
host's paths (point auth_url, oidc_url, signin_url and base_url at it).

Social sign-in (Kiro's auth service, JSON, camelCase):
    GET  /signin?state&code_challenge&code_challenge_method=S256&redirect_uri&redirect_from
             -> 302 to {redirect_uri}/oauth/callback?code=C&state=S&login_option=google
             (the code remembers its challenge and redirect_uri; single use)
    POST /oauth/token {code, code_verifier, redirect_uri}
             -> {accessToken, refreshToken, profileArn, expiresIn}; a bad verifier, an
             unknown or used code, or another redirect_uri -> 400 invalid_grant
    POST /refreshToken {refreshToken} -> the same fields (refreshToken rotated when
             rotate is on); unknown or revoked -> 401 {"error": "invalid_grant"}
OIDC (AWS SSO OIDC):
    POST /client/register {clientName, clientType, scopes, grantTypes, issuerUrl}
             -> {clientId, clientSecret, clientIdIssuedAt, clientSecretExpiresAt}
    POST /device_authorization {clientId, clientSecret, startUrl}
             -> {deviceCode, userCode, verificationUri, verificationUriComplete,
                 expiresIn, interval}
    POST /token {clientId, clientSecret, deviceCode, grantType=device_code}
             -> the scripted outcome (400 {"error": ...} or the tokens); a poll sooner
             than the interval -> slow_down (interval + 5), as AWS does
    POST /token {clientId, clientSecret, grantType=refresh_token, refreshToken}
             -> {accessToken, refreshToken?, expiresIn, tokenType}; bad -> 400 invalid_grant
CodeWhisperer API (Authorization: Bearer <an access token it issued>, else reject_status):
    POST /ListAvailableProfiles (x-amz-target ...ListAvailableProfiles) -> {profiles}
    GET  /getUsageLimits?origin&resourceType[&profileArn] -> {usageBreakdownList, ...}
    POST /generateAssistantResponse -> an AWS event stream (real frames and CRCs):
             two assistantResponseEvents, a meteringEvent, a contextUsageEvent

    kiro_auth.py --port 0 --portfile PATH [--secret S] [--name NAME] [--quiet]

Control (never recorded): GET /_mock/requests, POST /_mock/reset, GET /_mock/secrets (every
token, code and client secret it handed out, for leak checks), GET /_mock/stats
(refreshes, social_refreshes, oidc_refreshes, exchanges, polls, early_polls, api_calls,
api_rejected, registrations), POST /_mock/config with a JSON object merged into the settings:
    interval (s, 1), expires_in (device code, s, 600), outcomes (successive device polls:
    "authorization_pending", "slow_down", "expired_token", "access_denied", "ok"; the
    last repeats; default ["ok"]), rotate (bool, true), token_ttl (s, 3600),
    refresh_delay_ms (each refresh waits this long first), refresh_status (forces a
    refresh answer's status, e.g. 500), revoked (refresh tokens refused with
    invalid_grant), revoke_access (bool: every access token issued so far stops
    working), profile_arn, profiles (list of ARNs ListAvailableProfiles names),
    reject_status (what the API answers a bad bearer token: 403 with "The bearer token
    included in the request is invalid." as the service does, or 401).
    POST /_mock/grant {access_token, refresh_token, expires_in} makes tokens valid
    (an account as the Kiro IDE would have it).
Tokens are random: "kat-..." (access), "krt-..." (refresh), "kcs-..." (client secret);
with --secret S access tokens are "kat=N;exp=UNIX;r=R:<hmac-sha256 hex of the rest under S>",
which kiro_api.py --secret S accepts until exp.
"""

import base64
import hashlib
import hmac
import json
import os
import struct
import sys
import threading
import time
import zlib
from urllib.parse import parse_qs, urlencode, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import upstream  # noqa: E402
from upstream import MockServer  # noqa: E402

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_ARN = "arn:aws:codewhisperer:us-east-1:123456789012:profile/MOCKPROFILE"
DEFAULTS = {"interval": 1, "expires_in": 600, "outcomes": ["ok"], "rotate": True,
            "token_ttl": 3600, "refresh_delay_ms": 0, "refresh_status": 0, "revoked": [],
            "revoke_access": False, "profile_arn": DEFAULT_ARN, "profiles": [DEFAULT_ARN],
            "reject_status": 403}


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def frame(event_type, payload):
    """One AWS event-stream message (prelude, headers, payload, both CRCs)."""
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"),
                        (":message-type", "event")):
        n, v = name.encode(), value.encode()
        headers += bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v
    body = json.dumps(payload).encode()
    total = 16 + len(headers) + len(body)
    prelude = struct.pack(">II", total, len(headers))
    msg = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + body
    return msg + struct.pack(">I", zlib.crc32(msg))


class KiroAuthState(upstream.State):
    def reset(self):
        super().reset()
        self.settings = json.loads(json.dumps(DEFAULTS))
        self.access = {}         # access token -> expiry (unix s)
        self.refresh = {}        # refresh token -> {"kind": social|oidc, "client": id}
        self.clients = {}        # clientId -> clientSecret
        self.codes = {}          # social code -> {challenge, redirect_uri}
        self.devices = {}        # deviceCode -> {client, polls, last_poll, issued, interval}
        self.issued = []         # every token, code and client secret handed out
        self.counts = {k: 0 for k in ("refreshes", "social_refreshes", "oidc_refreshes",
                                      "exchanges", "polls", "early_polls", "api_calls",
                                      "api_rejected", "registrations")}
        self.next_id = 0


class Handler(upstream.Handler):
    server_version = "mock-kiro-auth/1.0"

    def dispatch(self):
        got = self.begin_request(self.kiro_control)
        if got is None:
            return
        path, body = got
        self.query = parse_qs(urlsplit(self.path).query)
        routes = {"/signin": ("GET", self.signin),
                  "/oauth/token": ("POST", self.social_token),
                  "/refreshToken": ("POST", self.social_refresh),
                  "/client/register": ("POST", self.register),
                  "/device_authorization": ("POST", self.device_authorization),
                  "/token": ("POST", self.oidc_token),
                  "/ListAvailableProfiles": ("POST", self.list_profiles),
                  "/getUsageLimits": ("GET", self.usage_limits),
                  "/generateAssistantResponse": ("POST", self.generate)}
        if path not in routes or routes[path][0] != self.command:
            return self.send_json(404, {"message": "Not Found"})
        if self.command == "POST" and path not in ("/signin",):
            try:
                doc = json.loads(body or b"{}")
                if not isinstance(doc, dict):
                    raise ValueError
            except ValueError:
                return self.send_json(400, {"error": "invalid_request",
                                            "error_description": "the body is not a JSON object"})
        else:
            doc = {}
        routes[path][1](doc)

    # ---- control ----------------------------------------------------------

    def kiro_control(self, path, body):
        st = self.server.state
        if path == "/_mock/config" and self.command == "POST":
            try:
                cfg = json.loads(body or b"{}")
            except ValueError:
                return self.send_json(400, {"message": "config is not JSON"})
            with st.lock:
                if cfg.get("revoke_access"):
                    st.access.clear()
                    cfg.pop("revoke_access")
                st.settings.update(cfg)
                out = dict(st.settings)
            return self.send_json(200, out)
        if path == "/_mock/grant" and self.command == "POST":
            g = json.loads(body or b"{}")
            with st.lock:
                if g.get("access_token"):
                    st.access[g["access_token"]] = time.time() + int(g.get("expires_in", 3600))
                if g.get("refresh_token"):
                    st.refresh[g["refresh_token"]] = {"kind": g.get("kind", "social"),
                                                      "client": g.get("client_id")}
                if g.get("client_id"):
                    st.clients[g["client_id"]] = g.get("client_secret", "")
            return self.send_json(200, {"ok": True})
        if path == "/_mock/secrets" and self.command == "GET":
            with st.lock:
                out = list(st.issued)
            return self.send_json(200, out)
        if path == "/_mock/stats" and self.command == "GET":
            with st.lock:
                out = dict(st.counts)
                out["requests"] = len(st.records)
            return self.send_json(200, out)
        return self.control(path, body)

    # ---- tokens -------------------------------------------------------------

    def mint(self, st, kind, client=None, old_refresh=None):
        """New tokens (under st.lock); the refresh token rotates unless told not to."""
        st.next_id += 1
        ttl = int(st.settings["token_ttl"])
        access = "kat-%d-%s" % (st.next_id, os.urandom(12).hex())
        if self.server.cfg.secret:
            # Signed so that kiro_api.py (same --secret) takes it too.
            claims = "kat=%d;exp=%d;r=%s" % (st.next_id, int(time.time()) + ttl,
                                             os.urandom(6).hex())
            access = claims + ":" + hmac.new(self.server.cfg.secret.encode(), claims.encode(),
                                             hashlib.sha256).hexdigest()
        st.access[access] = time.time() + ttl
        st.issued.append(access)
        out = {"accessToken": access, "expiresIn": ttl}
        if old_refresh is None or st.settings["rotate"]:
            refresh = "krt-%d-%s" % (st.next_id, os.urandom(12).hex())
            st.refresh[refresh] = {"kind": kind, "client": client}
            st.issued.append(refresh)
            if old_refresh is not None:
                st.refresh.pop(old_refresh, None)
            out["refreshToken"] = refresh
        return out

    def bearer_ok(self):
        auth = self.headers.get("Authorization", "")
        tok = auth[7:] if auth.startswith("Bearer ") else None
        st = self.server.state
        with st.lock:
            st.counts["api_calls"] += 1
            ok = tok is not None and st.access.get(tok, 0) > time.time()
            if not ok:
                st.counts["api_rejected"] += 1
        if not ok:
            # What the service answers a stale or unknown bearer token.
            self.send_json(st.settings["reject_status"],
                           {"__type": "com.amazon.aws.codewhisperer#AccessDeniedException",
                            "message": "The bearer token included in the request is invalid."})
        return ok

    def refresh_common(self, st, kind, token, client=None):
        """The shared part of both refreshes: (status, body)."""
        s = st.settings
        if s["refresh_delay_ms"]:
            time.sleep(s["refresh_delay_ms"] / 1000)
        with st.lock:
            st.counts["refreshes"] += 1
            st.counts[kind + "_refreshes"] += 1
            if s["refresh_status"]:
                return s["refresh_status"], {"error": "server_error", "message": "forced"}
            known = st.refresh.get(token)
            if not known or token in s["revoked"] or known["kind"] != kind or \
                    (client is not None and known.get("client") != client):
                return (401 if kind == "social" else 400), {
                    "error": "invalid_grant", "error_description": "Invalid refresh token provided"}
            out = self.mint(st, kind, client, old_refresh=token)
        if kind == "social":
            out["profileArn"] = s["profile_arn"]
        else:
            out["tokenType"] = "Bearer"
        return 200, out

    # ---- social -------------------------------------------------------------

    def signin(self, doc):
        q = {k: v[0] for k, v in self.query.items()}
        for k in ("state", "code_challenge", "redirect_uri"):
            if not q.get(k):
                return self.send_json(400, {"message": "missing " + k})
        if q.get("code_challenge_method") != "S256":
            return self.send_json(400, {"message": "code_challenge_method must be S256"})
        st = self.server.state
        with st.lock:
            st.next_id += 1
            code = "kc-%d-%s" % (st.next_id, os.urandom(8).hex())
            redirect = q["redirect_uri"] + "/oauth/callback?login_option=google"
            st.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": redirect}
            st.issued.append(code)
        loc = "%s/oauth/callback?%s" % (q["redirect_uri"], urlencode(
            {"code": code, "state": q["state"], "login_option": "google"}))
        self.send_body(302, b"", "text/plain", headers=[("Location", loc)])

    def social_token(self, doc):
        st = self.server.state
        with st.lock:
            st.counts["exchanges"] += 1
            c = st.codes.pop(doc.get("code", ""), None)
            verifier = doc.get("code_verifier", "")
            if c is None or b64url(hashlib.sha256(verifier.encode()).digest()) != c["challenge"] \
                    or doc.get("redirect_uri") != c["redirect_uri"]:
                return self.send_json(400, {"error": "invalid_grant",
                                            "error_description": "bad code, verifier or redirect"})
            out = self.mint(st, "social")
            out["profileArn"] = st.settings["profile_arn"]
        self.send_json(200, out)

    def social_refresh(self, doc):
        status, out = self.refresh_common(self.server.state, "social", doc.get("refreshToken"))
        self.send_json(status, out)

    # ---- OIDC ---------------------------------------------------------------

    def register(self, doc):
        if doc.get("clientType") != "public" or DEVICE_GRANT not in doc.get("grantTypes", []):
            return self.send_json(400, {"error": "invalid_client_metadata"})
        st = self.server.state
        with st.lock:
            st.counts["registrations"] += 1
            st.next_id += 1
            cid = "kci-%d-%s" % (st.next_id, os.urandom(6).hex())
            st.clients[cid] = "kcs-%s" % os.urandom(16).hex()
            st.issued.append(st.clients[cid])
            out = {"clientId": cid, "clientSecret": st.clients[cid],
                   "clientIdIssuedAt": int(time.time()),
                   "clientSecretExpiresAt": int(time.time()) + 90 * 86400}
        self.send_json(200, out)

    def client_ok(self, st, doc):
        return st.clients.get(doc.get("clientId")) == doc.get("clientSecret") and \
            doc.get("clientId") in st.clients

    def device_authorization(self, doc):
        st = self.server.state
        with st.lock:
            if not self.client_ok(st, doc) or not doc.get("startUrl"):
                return self.send_json(400, {"error": "invalid_client"})
            st.next_id += 1
            code = "kdc-%d-%s" % (st.next_id, os.urandom(8).hex())
            st.issued.append(code)
            s = st.settings
            st.devices[code] = {"client": doc["clientId"], "polls": 0, "last_poll": 0.0,
                                "issued": time.time(), "interval": s["interval"],
                                "expires_in": s["expires_in"]}
            user = "MOCK-%04d" % st.next_id
            out = {"deviceCode": code, "userCode": user,
                   "verificationUri": "https://device.sso.us-east-1.amazonaws.com/",
                   "verificationUriComplete":
                       "https://device.sso.us-east-1.amazonaws.com/?user_code=" + user,
                   "expiresIn": s["expires_in"], "interval": s["interval"]}
        self.send_json(200, out)

    def oidc_token(self, doc):
        st = self.server.state
        if doc.get("grantType") == "refresh_token":
            with st.lock:
                ok = self.client_ok(st, doc)
            if not ok:
                return self.send_json(400, {"error": "invalid_client"})
            status, out = self.refresh_common(st, "oidc", doc.get("refreshToken"),
                                              doc.get("clientId"))
            return self.send_json(status, out)
        if doc.get("grantType") != DEVICE_GRANT:
            return self.send_json(400, {"error": "unsupported_grant_type"})
        with st.lock:
            st.counts["polls"] += 1
            if not self.client_ok(st, doc):
                return self.send_json(400, {"error": "invalid_client"})
            dev = st.devices.get(doc.get("deviceCode", ""))
            if dev is None or dev["client"] != doc["clientId"]:
                return self.send_json(400, {"error": "invalid_grant"})
            now = time.time()
            if now > dev["issued"] + dev["expires_in"]:
                return self.send_json(400, {"error": "expired_token"})
            early = dev["last_poll"] and now - dev["last_poll"] < dev["interval"] - 0.05
            dev["last_poll"] = now
            if early:
                st.counts["early_polls"] += 1
                dev["interval"] += 5
                return self.send_json(400, {"error": "slow_down"})
            outcomes = st.settings["outcomes"]
            what = outcomes[min(dev["polls"], len(outcomes) - 1)]
            dev["polls"] += 1
            if what == "ok":
                del st.devices[doc["deviceCode"]]
                out = self.mint(st, "oidc", doc["clientId"])
                out["tokenType"] = "Bearer"
                return self.send_json(200, out)
            if what == "slow_down":
                dev["interval"] += 5
        self.send_json(400, {"error": what})

    # ---- the API ------------------------------------------------------------

    def list_profiles(self, doc):
        if not self.bearer_ok():
            return
        if self.headers.get("x-amz-target") != "AmazonCodeWhispererService.ListAvailableProfiles":
            return self.send_json(400, {"message": "wrong x-amz-target"})
        arns = self.server.state.settings["profiles"]
        self.send_json(200, {"profiles": [{"arn": a, "profileName": "Mock %d" % i}
                                          for i, a in enumerate(arns)]})

    def usage_limits(self, doc):
        if not self.bearer_ok():
            return
        q = {k: v[0] for k, v in self.query.items()}
        if q.get("origin") != "AI_EDITOR" or q.get("resourceType") != "AGENTIC_REQUEST":
            return self.send_json(400, {"message": "origin and resourceType are required"})
        self.send_json(200, {
            "daysUntilReset": 12, "nextDateReset": 1767225600.0,
            "subscriptionInfo": {"subscriptionTitle": "KIRO FREE", "type": "Q_DEVELOPER_STANDALONE_FREE"},
            "usageBreakdownList": [{
                "resourceType": "CREDIT", "currency": "USD", "unit": "INVOCATIONS",
                "usageLimitWithPrecision": 50.0, "currentUsageWithPrecision": 12.25,
                "nextDateReset": 1767225600.0,
                "freeTrialInfo": {"freeTrialStatus": "ACTIVE", "usageLimitWithPrecision": 500.0,
                                  "currentUsageWithPrecision": 3.5}}],
            "profileArn": q.get("profileArn")})

    def generate(self, doc):
        if not self.bearer_ok():
            return
        events = [frame("assistantResponseEvent", {"content": "Hello"}),
                  frame("assistantResponseEvent", {"content": " from Kiro"}),
                  frame("meteringEvent", {"unit": "credit", "unitPlural": "credits",
                                          "usage": 0.01}),
                  frame("contextUsageEvent", {"contextUsagePercentage": 1.5})]
        self.send_body(200, b"".join(events), "application/vnd.amazon.eventstream")


def add_args(ap):
    ap.add_argument("--secret", default="",
                    help="sign access tokens as kiro_api.py --secret S takes them")


def main():
    upstream.run_mock("Mock Kiro accounts service", "kiro-auth",
                      lambda addr, cfg: MockServer(addr, cfg, Handler, KiroAuthState()), add_args)


if __name__ == "__main__":
    threading.current_thread().name = "kiro-auth-mock"
    main()

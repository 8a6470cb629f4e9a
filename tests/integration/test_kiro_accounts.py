#!/usr/bin/env python3
"""Kiro accounts end to end: every login method through lighttpd and
antigw-admin (social sign-in with a wrong state, an expired session and a
replayed code; Builder ID and IAM Identity Center device flows with pending
and slow_down honoured, an expired user code, a refusal), imports (the Kiro
IDE's token file with its client registration, kiro-cli's database, a
server-side path) and the bad ones, forced refresh, status, quota; the pool
of 4 processes x 16 threads refreshing an expired or refused token exactly
once under 200 concurrent requests; invalid_grant taking an account out of
routing and into /health and /metrics; and no token anywhere in the logs,
the audit table or an answer. Against tests/mock/kiro_auth.py."""

import base64
import http.client
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SRCDIR, Gateway, bail, chat, check, eq, run_suite,  # noqa: E402
                     suite_setup, test, wait_for)

PROCESSES, THREADS = 4, 16
ADMIN_KEY = "agw-admin-test-key-kiro-0123456789abcdef"
KIRO_AUTH = os.path.join(SRCDIR, "tests", "mock", "kiro_auth.py")
PROVIDERS = ("kiro-social", "kiro-replay", "kiro-expire", "kiro-busy", "kiro-bid", "kiro-idc",
             "kiro-dev-exp", "kiro-denied", "kiro-imp", "kiro-imp-idc", "kiro-cli", "kiro-path",
             "kiro-bad", "kiro-load", "kiro-load403", "kiro-dead", "kiro-live")


class Ctx:
    pass


class AuthMock:
    """tests/mock/kiro_auth.py in its own process."""

    def __init__(self, workdir, name):
        portfile = os.path.join(workdir, name + ".port")
        self.log = open(os.path.join(workdir, name + ".log"), "wb")
        self.proc = subprocess.Popen([sys.executable, KIRO_AUTH, "--port", "0", "--portfile",
                                      portfile, "--name", name, "--quiet"],
                                     stdout=self.log, stderr=self.log)
        wait_for(lambda: os.path.exists(portfile), 10, "mock " + name)
        self.port = int(open(portfile).read())
        self.url = "http://127.0.0.1:%d" % self.port

    def call(self, method, what, body=None):
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        req = urllib.request.Request(self.url + "/_mock/" + what, data=data, method=method)
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())

    def stats(self):
        return self.call("GET", "stats")

    def config(self, **kw):
        return self.call("POST", "config", kw)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def config(mock_url):
    provs = ",\n".join(
        '  { name = "%s"; type = "kiro"; base_url = "%s"; auth_url = "%s"; oidc_url = "%s";\n'
        '    signin_url = "%s/signin"; models = [ "claude-*" ]; }'
        % (name, mock_url, mock_url, mock_url, mock_url) for name in PROVIDERS)
    return """
server: {
  log_level = "info";
  threads = %d;
  connect_timeout_ms = 2000;
  idle_timeout_seconds = 10;
  stream_commit_ms = 10000;
  shutdown_grace_seconds = 20;
};
auth: { api_key = "agw-test-client-key-0123456789"; admin_key = "%s"; };
database: { path = "antigw.db"; };
secrets: { key_file = "secret.key"; };
defaults: { health_check_enabled = false; };
providers = (
%s
);
""" % (THREADS, ADMIN_KEY, provs)


# ---- helpers ----

def admin(ctx, method, path, body=None, key=ADMIN_KEY):
    s, h, data = ctx.gw.call(method, path, body=body, key=key)
    ctx.answers.append(data)
    try:
        doc = json.loads(data) if data else None
    except ValueError:
        doc = None
    return s, doc


def error_of(doc):
    return (doc or {}).get("error", {}).get("message", "")


def browser_signin(auth_url):
    """What the admin's browser does: open the sign-in page, get sent to the
    loopback callback. Returns the callback URL."""
    parts = urlsplit(auth_url)
    c = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    c.request("GET", parts.path + "?" + parts.query)
    r = c.getresponse()
    r.read()
    c.close()
    eq(r.status, 302, "the sign-in page's answer")
    return r.getheader("Location")


def start_social(ctx, provider):
    s, doc = admin(ctx, "POST", "/admin/kiro/login", {"provider": provider, "method": "social"})
    eq(s, 201, "social login start: %s" % doc)
    check(re.fullmatch(r"[0-9a-f]{32}", doc["id"]), "session id: %r" % doc["id"])
    check(doc["auth_url"].startswith(ctx.mock.url + "/signin?state="), doc["auth_url"])
    q = parse_qs(urlsplit(doc["auth_url"]).query)
    eq(q["code_challenge_method"], ["S256"], "PKCE method")
    eq(q["redirect_uri"], ["http://localhost:3128"], "redirect_uri")
    eq(doc["status"], "pending", "status")
    return doc


def status_of(ctx, provider):
    return admin(ctx, "GET", "/admin/kiro/%s/status" % provider)


def db(ctx):
    h = sqlite3.connect(os.path.join(ctx.gw.var, "antigw.db"), timeout=10)
    return h


def model_call(ctx, provider, text="hi"):
    return ctx.gw.call("POST", "/v1/chat/completions",
                       body=chat(text, model=provider + "/claude-sonnet-4.5"))


def import_social(ctx, provider, access, refresh, expires_at):
    ctx.test_secrets += [access, refresh]
    s, doc = admin(ctx, "POST", "/admin/kiro/import", {
        "provider": provider,
        "kiro_auth_token": {"accessToken": access, "refreshToken": refresh,
                            "expiresAt": expires_at, "authMethod": "social",
                            "provider": "Google",
                            "profileArn": "arn:aws:codewhisperer:us-east-1:1:profile/IMP"}})
    eq(s, 201, "import: %s" % doc)
    return doc


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# ---- social sign-in ----

@test(timeout=60)
def social_login_end_to_end(ctx):
    doc = start_social(ctx, "kiro-social")
    cb = browser_signin(doc["auth_url"])
    check(cb.startswith("http://localhost:3128/oauth/callback?"), cb)
    s, got = admin(ctx, "GET", "/admin/kiro/login/" + doc["id"])
    eq((s, got["status"]), (200, "pending"), "before the callback")
    s, acct = admin(ctx, "POST", "/admin/kiro/login/%s/complete" % doc["id"], {"callback_url": cb})
    eq(s, 200, "complete: %s" % acct)
    eq((acct["provider"], acct["method"], acct["state"]), ("kiro-social", "social", "ok"), "account")
    eq(acct["profile_arn"], "arn:aws:codewhisperer:us-east-1:123456789012:profile/MOCKPROFILE",
       "profile ARN from the token answer")
    check(acct["expires_at"] > time.time() + 3000, "expiry")
    check("access_token" not in json.dumps(acct) and "kat-" not in json.dumps(acct), "no token")
    s, got = admin(ctx, "GET", "/admin/kiro/login/" + doc["id"])
    eq((s, got["status"]), (200, "completed"), "after")
    # What the auth service got: the code, its verifier and the callback without code/state.
    reqs = [r for r in ctx.mock.call("GET", "requests") if r["path"] == "/oauth/token"]
    body = json.loads(base64.b64decode(reqs[-1]["body_b64"]))
    eq(sorted(body), ["code", "code_verifier", "redirect_uri"], "exchange fields")
    eq(body["redirect_uri"], "http://localhost:3128/oauth/callback?login_option=google", "redirect")
    # The account serves calls through the pool.
    s, _, data = model_call(ctx, "kiro-social")
    eq(s, 200, "model call: %s" % data[:300])
    # (the mock says "Hello from Kiro"; Kiro's default sanitize rules name it Claude)
    check("Hello from Claude" in json.loads(data)["choices"][0]["message"]["content"], data[:300])
    s, st = status_of(ctx, "kiro-social")
    eq((s, st["state"], st["method"]), (200, "ok", "social"), "status")
    for k in ("expires_at", "profile_arn", "last_refresh", "last_error", "region"):
        check(k in st, "status has " + k)
    rows = db(ctx).execute("SELECT action, object_type, object_id FROM audit_log WHERE"
                           " object_id = 'kiro-social'").fetchall()
    eq(rows, [("login", "kiro_account", "kiro-social")], "audit row")


@test(timeout=60)
def social_login_refuses_wrong_state_and_replayed_code(ctx):
    exchanges = ctx.mock.stats()["exchanges"]
    doc = start_social(ctx, "kiro-replay")
    cb = browser_signin(doc["auth_url"])
    q = parse_qs(urlsplit(cb).query)
    wrong = cb.replace("state=" + q["state"][0], "state=" + "0" * len(q["state"][0]))
    s, err = admin(ctx, "POST", "/admin/kiro/login/%s/complete" % doc["id"], {"callback_url": wrong})
    eq(s, 400, "wrong state: %s" % err)
    check("state does not match" in error_of(err), err)
    s, err = admin(ctx, "POST", "/admin/kiro/login/%s/complete" % doc["id"],
                   {"code": q["code"][0], "state": "nope"})
    eq(s, 400, "wrong state as fields")
    eq(status_of(ctx, "kiro-replay")[0], 404, "no account after a wrong state")
    eq(ctx.mock.stats()["exchanges"], exchanges, "nothing sent upstream")
    # The right state still works (code + state + login_option form) ...
    s, acct = admin(ctx, "POST", "/admin/kiro/login/%s/complete" % doc["id"],
                    {"code": q["code"][0], "state": q["state"][0], "login_option": "google"})
    eq(s, 200, "complete: %s" % acct)
    # ... once: the same callback again is refused, and changes nothing.
    v = acct["version"]
    s, err = admin(ctx, "POST", "/admin/kiro/login/%s/complete" % doc["id"], {"callback_url": cb})
    eq(s, 409, "replayed code: %s" % err)
    check("completed" in error_of(err), err)
    eq(status_of(ctx, "kiro-replay")[1]["version"], v, "the account untouched")
    # A callback without code or state, and one from the sign-in page's error.
    doc2 = start_social(ctx, "kiro-replay")
    for bad in ("http://localhost:3128/oauth/callback?state=x",
                "http://localhost:3128/oauth/callback?error=access_denied&state=x", "nonsense"):
        s, err = admin(ctx, "POST", "/admin/kiro/login/%s/complete" % doc2["id"],
                       {"callback_url": bad})
        eq(s, 400, "bad callback %r" % bad)
        eq(err["error"]["field"], "callback_url", "field")


@test(timeout=60)
def social_login_session_expires(ctx):
    doc = start_social(ctx, "kiro-expire")
    cb = browser_signin(doc["auth_url"])
    check(abs(doc["expires_at"] - (time.time() + 600)) < 30, "sessions live 10 minutes")
    h = db(ctx)
    h.execute("UPDATE login_sessions SET expires_at = ? WHERE id = ?", (int(time.time()) - 1,
                                                                       doc["id"]))
    h.commit()
    s, err = admin(ctx, "POST", "/admin/kiro/login/%s/complete" % doc["id"], {"callback_url": cb})
    eq(s, 410, "expired session: %s" % err)
    s, got = admin(ctx, "GET", "/admin/kiro/login/" + doc["id"])
    eq((s, got["status"]), (200, "expired"), "status")
    eq(status_of(ctx, "kiro-expire")[0], 404, "no account")
    # Unknown ids, malformed ids, other paths.
    for path in ("/admin/kiro/login/" + "f" * 32, "/admin/kiro/login/xyz",
                 "/admin/kiro/login/" + "F" * 32, "/admin/kiro/login/../../etc"):
        s, err = admin(ctx, "GET", path)
        eq(s, 404, "GET " + path)
    s, err = admin(ctx, "POST", "/admin/kiro/login/%s/complete" % ("a" * 32), {"callback_url": cb})
    eq(s, 404, "complete of an unknown id")
    check("no Kiro login" in error_of(err), err)


@test(timeout=60)
def second_concurrent_login_is_refused(ctx):
    first = start_social(ctx, "kiro-busy")
    before = db(ctx).execute("SELECT count(*) FROM login_sessions").fetchone()[0]
    for method in ("social", "builder-id"):
        s, err = admin(ctx, "POST", "/admin/kiro/login", {"provider": "kiro-busy", "method": method})
        eq(s, 409, "second login (%s): %s" % (method, err))
        check("already has a login in progress" in error_of(err), err)
    eq(db(ctx).execute("SELECT count(*) FROM login_sessions").fetchone()[0], before, "no row added")
    s, got = admin(ctx, "GET", "/admin/kiro/login/" + first["id"])
    eq(got["status"], "pending", "the first is untouched")
    # Bad requests.
    cases = [({"provider": "nope", "method": "social"}, 404, "provider"),
             ({"provider": "kiro-busy", "method": "password"}, 400, "method"),
             ({"provider": "kiro-busy"}, 400, "method"),
             ({"method": "social"}, 400, "provider"),
             ({"provider": "kiro-busy", "method": "idc"}, 400, "start_url"),
             ({"provider": "kiro-busy", "method": "builder-id", "region": "us east"}, 400, "region"),
             ({"provider": "kiro-busy", "method": "social", "extra": 1}, 400, "extra")]
    for body, want, field in cases:
        s, err = admin(ctx, "POST", "/admin/kiro/login", body)
        eq(s, want, "login %s: %s" % (body, err))
        eq(err["error"]["field"], field, "field of %s" % body)
    s, err = admin(ctx, "GET", "/admin/kiro/login")
    eq(s, 405, "GET /admin/kiro/login")


# ---- device flows ----

def poll_until_done(ctx, sid, limit=30):
    seen = []
    end = time.time() + limit
    while time.time() < end:
        s, got = admin(ctx, "GET", "/admin/kiro/login/" + sid)
        eq(s, 200, "poll")
        seen.append(got["status"])
        if got["status"] != "pending":
            return got, seen
        time.sleep(0.3)
    raise AssertionError("the login stayed pending: %s" % seen)


@test(timeout=90)
def builder_id_device_flow_honours_pending_and_slow_down(ctx):
    ctx.mock.config(outcomes=["authorization_pending", "slow_down", "ok"], interval=1)
    before = ctx.mock.stats()
    s, doc = admin(ctx, "POST", "/admin/kiro/login", {"provider": "kiro-bid", "method": "builder-id"})
    eq(s, 201, "start: %s" % doc)
    for k in ("id", "user_code", "verification_uri_complete", "interval", "expires_at"):
        check(k in doc, "answer has " + k)
    check("device_code" not in json.dumps(doc) and "client_secret" not in json.dumps(doc),
          "no secret in the answer")
    eq(doc["interval"], 1, "interval")
    t0 = time.time()
    got, seen = poll_until_done(ctx, doc["id"], 60)
    eq(got["status"], "completed", "final status (%s)" % seen)
    after = ctx.mock.stats()
    eq(after["polls"] - before["polls"], 3, "upstream polls: pending, slow_down, ok")
    eq(after["early_polls"] - before["early_polls"], 0, "no poll sooner than the interval")
    # 1 s, then 1 s, then 1 + 5 s after slow_down (whole seconds, so a little more).
    check(time.time() - t0 >= 8, "slow_down waited 5 s more: %.1f s" % (time.time() - t0))
    s, st = status_of(ctx, "kiro-bid")
    eq((s, st["method"], st["state"]), (200, "builder-id", "ok"), "account")
    ctx.mock.config(outcomes=["ok"])


@test(timeout=60)
def idc_device_flow_gets_its_profile_arn(ctx):
    arn = "arn:aws:codewhisperer:eu-central-1:210987654321:profile/IDCPROFILE"
    ctx.mock.config(outcomes=["ok"], profiles=[arn])
    s, doc = admin(ctx, "POST", "/admin/kiro/login",
                   {"provider": "kiro-idc", "method": "idc",
                    "start_url": "https://corp.awsapps.com/start", "region": "eu-west-1"})
    eq(s, 201, "start: %s" % doc)
    reg = [r for r in ctx.mock.call("GET", "requests") if r["path"] == "/client/register"][-1]
    body = json.loads(base64.b64decode(reg["body_b64"]))
    eq(body["issuerUrl"], "https://corp.awsapps.com/start", "issuerUrl")
    eq(body["clientType"], "public", "clientType")
    got, _ = poll_until_done(ctx, doc["id"])
    eq(got["status"], "completed", "status")
    s, st = status_of(ctx, "kiro-idc")
    # The login's region stays the account's (its OIDC refreshes go there); the
    # profile's region is where its calls go.
    eq((st["method"], st["profile_arn"], st["region"]), ("idc", arn, "eu-west-1"), "account")
    ctx.mock.config(profiles=["arn:aws:codewhisperer:us-east-1:123456789012:profile/MOCKPROFILE"])


@test(timeout=60)
def device_flow_expired_or_denied(ctx):
    for provider, outcome, want in (("kiro-dev-exp", "expired_token", "expired"),
                                    ("kiro-denied", "access_denied", "error")):
        ctx.mock.config(outcomes=[outcome])
        s, doc = admin(ctx, "POST", "/admin/kiro/login", {"provider": provider,
                                                          "method": "builder-id"})
        eq(s, 201, "start")
        got, _ = poll_until_done(ctx, doc["id"])
        eq(got["status"], want, outcome)
        eq(status_of(ctx, provider)[0], 404, "no account after " + outcome)
        # The provider is free for a new login.
        ctx.mock.config(outcomes=["authorization_pending"])
        s, doc = admin(ctx, "POST", "/admin/kiro/login", {"provider": provider,
                                                          "method": "builder-id"})
        eq(s, 201, "a new login after " + outcome)
    ctx.mock.config(outcomes=["ok"])


# ---- imports ----

@test(timeout=60)
def imports_of_every_kind(ctx):
    now = int(time.time())
    # The Kiro IDE's token file, social.
    ctx.mock.call("POST", "grant", {"access_token": "imp-access-1", "refresh_token": "imp-refresh-1"})
    doc = import_social(ctx, "kiro-imp", "imp-access-1", "imp-refresh-1", iso(now + 3600))
    eq((doc["method"], doc["state"], doc["expires_at"]), ("social", "ok", now + 3600), "import")
    check("stale" in doc["note"], "the note says the admin's copy goes stale")
    s, _, data = model_call(ctx, "kiro-imp")
    eq(s, 200, "a call on the imported token: %s" % data[:200])
    # IdC: token file and client registration; the profile ARN from ListAvailableProfiles.
    ctx.test_secrets += ["imp-idc-access", "imp-idc-refresh", "imp-idc-secret"]
    ctx.mock.call("POST", "grant", {"access_token": "imp-idc-access",
                                     "refresh_token": "imp-idc-refresh", "kind": "oidc",
                                     "client_id": "imp-idc-client",
                                     "client_secret": "imp-idc-secret"})
    s, doc = admin(ctx, "POST", "/admin/kiro/import", {
        "provider": "kiro-imp-idc",
        "kiro_auth_token": {"accessToken": "imp-idc-access", "refreshToken": "imp-idc-refresh",
                            "expiresAt": iso(now + 3600), "authMethod": "IdC",
                            "provider": "Enterprise", "region": "us-east-1",
                            "clientIdHash": "abc"},
        "client_registration": {"clientId": "imp-idc-client", "clientSecret": "imp-idc-secret",
                                "expiresAt": iso(now + 86400)}})
    eq(s, 201, "IdC import: %s" % doc)
    eq((doc["method"], doc["profile_arn"]),
       ("idc", "arn:aws:codewhisperer:us-east-1:123456789012:profile/MOCKPROFILE"), "IdC account")
    s, doc = admin(ctx, "POST", "/admin/kiro/kiro-imp-idc/refresh")
    eq(s, 200, "OIDC refresh of the imported account: %s" % doc)
    # kiro-cli's database, base64.
    ctx.test_secrets += ["cli-access", "cli-refresh"]
    ctx.mock.call("POST", "grant", {"access_token": "cli-access", "refresh_token": "cli-refresh"})
    dbfile = os.path.join(ctx.work, "kiro-cli.sqlite3")
    h = sqlite3.connect(dbfile)
    h.execute("CREATE TABLE auth_kv (key TEXT PRIMARY KEY, value TEXT)")
    h.execute("CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB)")
    h.execute("INSERT INTO auth_kv VALUES ('kirocli:social:token', ?)", (json.dumps(
        {"access_token": "cli-access", "refresh_token": "cli-refresh",
         "expires_at": iso(now + 1800), "provider": "Github"}),))
    h.execute("INSERT INTO state VALUES ('api.codewhisperer.profile', ?)",
              (json.dumps({"arn": "arn:aws:codewhisperer:us-east-1:5:profile/CLI"}),))
    h.commit()
    h.close()
    raw = open(dbfile, "rb").read()
    s, doc = admin(ctx, "POST", "/admin/kiro/import",
                   {"provider": "kiro-cli", "kiro_cli_db": base64.b64encode(raw).decode()})
    eq(s, 201, "kiro-cli import: %s" % doc)
    eq((doc["method"], doc["profile_arn"], doc["expires_at"]),
       ("social", "arn:aws:codewhisperer:us-east-1:5:profile/CLI", now + 1800), "kiro-cli account")
    # A server-side path (the file the Kiro IDE keeps).
    ctx.test_secrets += ["path-access", "path-refresh"]
    path = os.path.join(ctx.work, "kiro-auth-token.json")
    with open(path, "w") as f:
        json.dump({"accessToken": "path-access", "refreshToken": "path-refresh",
                   "expiresAt": iso(now + 600), "authMethod": "social", "provider": "Github"}, f)
    s, doc = admin(ctx, "POST", "/admin/kiro/import", {"provider": "kiro-path", "path": path})
    eq(s, 201, "path import: %s" % doc)
    eq(doc["method"], "social", "path account")
    s, doc = admin(ctx, "POST", "/admin/kiro/import", {"provider": "kiro-path", "path": dbfile})
    eq(s, 201, "a kiro-cli database by path: %s" % doc)
    audits = db(ctx).execute("SELECT count(*) FROM audit_log WHERE action = 'import'").fetchone()[0]
    check(audits >= 5, "audit rows of the imports: %d" % audits)


@test(timeout=60)
def bad_imports_change_nothing(ctx):
    ok_token = {"accessToken": "x", "refreshToken": "bad-import-refresh", "authMethod": "social"}
    ctx.test_secrets += ["bad-import-refresh"]
    cases = [
        ({"provider": "kiro-bad", "kiro_auth_token": "not an object"}, 400, "kiro_auth_token"),
        ({"provider": "kiro-bad", "kiro_auth_token": {"accessToken": "a"}}, 400, "kiro_auth_token"),
        ({"provider": "kiro-bad", "kiro_auth_token": dict(ok_token, authMethod="IdC")}, 400,
         "kiro_auth_token"),
        ({"provider": "kiro-bad", "kiro_auth_token": dict(ok_token, authMethod="IdC"),
          "client_registration": {"clientId": "c"}}, 400, "client_registration"),
        ({"provider": "kiro-bad", "kiro_auth_token": dict(ok_token, authMethod="magic")}, 400,
         "kiro_auth_token"),
        ({"provider": "kiro-bad", "kiro_cli_db": "!!!notbase64"}, 400, "kiro_cli_db"),
        ({"provider": "kiro-bad", "kiro_cli_db": base64.b64encode(b"x" * 600).decode()}, 400,
         "kiro_cli_db"),
        ({"provider": "kiro-bad", "path": "/nonexistent/kiro-auth-token.json"}, 400, "path"),
        ({"provider": "kiro-bad", "path": "relative.json"}, 400, "path"),
        ({"provider": "kiro-bad", "path": "/etc"}, 400, "path"),
        ({"provider": "kiro-bad"}, 400, None),
        ({"provider": "kiro-bad", "kiro_auth_token": ok_token, "path": "/x"}, 400, None),
        ({"provider": "nope", "kiro_auth_token": ok_token}, 404, "provider"),
        ({"kiro_auth_token": ok_token}, 400, "provider"),
    ]
    for body, want, field in cases:
        s, err = admin(ctx, "POST", "/admin/kiro/import", body)
        eq(s, want, "import %s: %s" % (json.dumps(body)[:120], err))
        eq(err["error"]["field"], field, "field of %s" % json.dumps(body)[:120])
        check(err["error"]["message"], "a message")
    eq(status_of(ctx, "kiro-bad")[0], 404, "no account")
    eq(db(ctx).execute("SELECT count(*) FROM credentials WHERE provider = 'kiro-bad'").fetchone()[0],
       0, "no row")
    # A provider of another type, or unknown, on every per-account endpoint.
    for path, method in (("refresh", "POST"), ("status", "GET"), ("quota", "GET")):
        s, err = admin(ctx, method, "/admin/kiro/nope/" + path)
        eq(s, 404, "%s of an unknown provider" % path)
        s, err = admin(ctx, method, "/admin/kiro/kiro-bad/" + path)
        eq(s, 404, "%s of a provider without an account: %s" % (path, err))
        check("no account" in error_of(err), err)
    s, err = admin(ctx, "GET", "/admin/kiro/kiro-bad/refresh")
    eq(s, 405, "GET refresh")
    s, err = admin(ctx, "GET", "/admin/kiro/kiro-bad/whatever")
    eq(s, 404, "unknown action")
    s, err = admin(ctx, "POST", "/admin/kiro/import", {"provider": "kiro-bad",
                                                       "kiro_auth_token": ok_token},
                   key="wrong-admin-key-0123456789")
    eq(s, 401, "without the admin key")


# ---- refresh, status, quota ----

@test(timeout=60)
def forced_refresh_status_and_quota(ctx):
    ctx.mock.call("POST", "grant", {"access_token": "live-access", "refresh_token": "live-refresh"})
    import_social(ctx, "kiro-live", "live-access", "live-refresh", iso(time.time() + 3600))
    before = ctx.mock.stats()["social_refreshes"]
    s, doc = admin(ctx, "POST", "/admin/kiro/kiro-live/refresh")
    eq(s, 200, "refresh: %s" % doc)
    eq(ctx.mock.stats()["social_refreshes"], before + 1, "one refresh upstream")
    eq(doc["version"], 2, "a new version")
    check(doc["last_refresh"] >= int(time.time()) - 5, "last_refresh")
    # The rotated refresh token was sent next time, not the old one.
    s, doc = admin(ctx, "POST", "/admin/kiro/kiro-live/refresh")
    eq(s, 200, "second refresh")
    sent = [json.loads(base64.b64decode(r["body_b64"]))["refreshToken"]
            for r in ctx.mock.call("GET", "requests") if r["path"] == "/refreshToken"]
    check(sent[-1] != "live-refresh" and sent[-1].startswith("krt-"), "rotated token used")
    s, q = admin(ctx, "GET", "/admin/kiro/kiro-live/quota")
    eq(s, 200, "quota: %s" % q)
    eq((q["credits"]["limit"], q["credits"]["used"]), (50.0, 12.25), "credits")
    eq(q["usage"]["usageBreakdownList"][0]["resourceType"], "CREDIT", "raw usage")
    req = [r for r in ctx.mock.call("GET", "requests")
           if r["path"].startswith("/getUsageLimits?")][-1]
    q = parse_qs(urlsplit(req["path"]).query)
    # The profile ARN the last refresh answered with.
    eq((q["origin"], q["resourceType"], q["profileArn"]),
       (["AI_EDITOR"], ["AGENTIC_REQUEST"],
        ["arn:aws:codewhisperer:us-east-1:123456789012:profile/MOCKPROFILE"]),
       "getUsageLimits query")
    # A quota call on a token the service refuses renews it once.
    ctx.mock.config(revoke_access=True)
    before = ctx.mock.stats()["social_refreshes"]
    s, q = admin(ctx, "GET", "/admin/kiro/kiro-live/quota")
    eq(s, 200, "quota after the token was refused: %s" % q)
    eq(ctx.mock.stats()["social_refreshes"], before + 1, "renewed once")


# ---- the pool under load ----

def concurrent_calls(ctx, provider, n=200):
    results = [None] * n
    start = threading.Event()

    def one(i):
        start.wait()
        try:
            s, _, data = model_call(ctx, provider, "call %d" % i)
            results[i] = (s, data)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = (0, repr(e).encode())
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    start.set()
    for t in threads:
        t.join(60)
    bad = [(i, r) for i, r in enumerate(results) if not r or r[0] != 200]
    check(not bad, "%d of %d calls failed, first: %r" % (len(bad), n, bad[:1]))


@test(timeout=120)
def expired_token_is_refreshed_once_under_load(ctx):
    ctx.mock.config(refresh_delay_ms=500)
    ctx.mock.call("POST", "grant", {"refresh_token": "load-refresh"})
    import_social(ctx, "kiro-load", "load-access-expired", "load-refresh", iso(time.time() - 60))
    before = ctx.mock.stats()
    t0 = time.time()
    concurrent_calls(ctx, "kiro-load")
    ctx.load_seconds = time.time() - t0
    after = ctx.mock.stats()
    eq(after["social_refreshes"] - before["social_refreshes"], 1, "refresh calls at the mock")
    eq(after["api_rejected"] - before["api_rejected"], 0, "no call went out with the old token")
    ctx.mock.config(refresh_delay_ms=0)
    print("# 200 calls on an expired token (4 x 16 pool): %.2f s, 1 refresh" % ctx.load_seconds)


@test(timeout=120)
def refused_token_is_refreshed_once_under_load(ctx):
    ctx.mock.config(refresh_delay_ms=300, reject_status=403)
    ctx.mock.call("POST", "grant", {"refresh_token": "load403-refresh"})
    # Valid for an hour by its own account, unknown to the service: every call gets
    # Kiro's 403 "bearer token ... invalid" until one renewal replaces it.
    import_social(ctx, "kiro-load403", "load403-access-unknown", "load403-refresh",
                  iso(time.time() + 3600))
    before = ctx.mock.stats()
    concurrent_calls(ctx, "kiro-load403")
    after = ctx.mock.stats()
    eq(after["social_refreshes"] - before["social_refreshes"], 1, "refresh calls at the mock")
    check(after["api_rejected"] - before["api_rejected"] >= 1, "the old token was refused")
    ctx.mock.config(refresh_delay_ms=0)


@test(timeout=60)
def invalid_grant_takes_the_account_out_of_routing(ctx):
    ctx.mock.call("POST", "grant", {"refresh_token": "dead-refresh"})
    import_social(ctx, "kiro-dead", "dead-access", "dead-refresh", iso(time.time() - 60))
    ctx.mock.config(revoked=["dead-refresh"])
    s, _, data = model_call(ctx, "kiro-dead")
    check(s >= 400, "a call on a dead account fails: %d" % s)
    check(b"dead-refresh" not in data and b"dead-access" not in data, "no token in the error")
    s, st = status_of(ctx, "kiro-dead")
    eq((s, st["state"]), (200, "needs_login"), "status")
    check("invalid_grant" in st["last_error"], st["last_error"])
    before = ctx.mock.stats()["social_refreshes"]
    s, _, data = model_call(ctx, "kiro-dead")
    check(s >= 400, "still failing: %d %s" % (s, data[:200]))
    eq(ctx.mock.stats()["social_refreshes"], before, "not refreshed again")
    # /health (with the admin key) and /metrics show it.
    s, _, data = ctx.gw.call("GET", "/health", key=ADMIN_KEY)
    health = {p["name"]: p for p in json.loads(data)["providers"]}
    eq(health["kiro-dead"].get("credential"), "needs_login", "/health")
    eq(health["kiro-dead"]["usable"], False, "not usable")
    eq(health["kiro-live"].get("credential"), "ok", "/health of a live account")
    eq(health["kiro-bad"].get("credential"), "none", "/health of one never logged in")
    s, _, data = ctx.gw.call("GET", "/metrics", key=None)
    text = data.decode()
    check('antigateway_provider_needs_login{provider="kiro-dead"} 1' in text, "metrics: dead")
    check('antigateway_provider_needs_login{provider="kiro-live"} 0' in text, "metrics: live")
    # Routing by type leaves out the dead account and those never logged in:
    # no call even tries them (the pool would log "has no usable credential").
    mark = len(ctx.gw.log_text())
    for i in range(20):
        s, _, data = ctx.gw.call("POST", "/v1/chat/completions",
                                 body=chat("routed %d" % i, model="kiro/claude-sonnet-4.5"))
        eq(s, 200, "a call routed by type: %s" % data[:200])
    tried = ctx.gw.log_text()[mark:]
    check("has no usable credential" not in tried, "a call tried an account without a token")
    check("provider=kiro-dead" not in tried and "provider=kiro-bad" not in tried,
          "the pool touched an account out of routing")
    # A forced refresh is tried (an admin asked) and says so.
    s, err = admin(ctx, "POST", "/admin/kiro/kiro-dead/refresh")
    eq(s, 409, "forced refresh of a dead account: %s" % err)
    check("needs a new login" in error_of(err), err)
    # A new import brings it back.
    ctx.mock.call("POST", "grant", {"access_token": "dead-access-2", "refresh_token": "dead-2"})
    import_social(ctx, "kiro-dead", "dead-access-2", "dead-2", iso(time.time() + 3600))
    s, _, data = model_call(ctx, "kiro-dead")
    eq(s, 200, "back after a new import: %s" % data[:200])
    s, _, data = ctx.gw.call("GET", "/health", key=ADMIN_KEY)
    health = {p["name"]: p for p in json.loads(data)["providers"]}
    eq(health["kiro-dead"].get("credential"), "ok", "/health after")


@test(timeout=60)
def no_token_in_logs_audit_or_answers(ctx):
    secrets = ctx.mock.call("GET", "secrets") + ctx.test_secrets
    check(len(secrets) > 20, "the mock handed out secrets: %d" % len(secrets))
    logs = {"pool": ctx.gw.log_text(), "admin": ctx.gw.admin_log_text()}
    for name in os.listdir(os.path.join(ctx.gw.var, "log")):
        with open(os.path.join(ctx.gw.var, "log", name), errors="replace") as f:
            logs[name] = f.read()
    h = db(ctx)
    audit = "\n".join(repr(r) for r in h.execute("SELECT * FROM audit_log").fetchall())
    plain = "\n".join(repr(r) for r in h.execute(
        "SELECT provider, method, client_id, region, profile_arn, extra, last_error FROM"
        " credentials").fetchall())
    sessions = "\n".join(repr(r) for r in h.execute(
        "SELECT id, provider, kind, status, public, error FROM login_sessions").fetchall())
    answers = b"\n".join(a for a in ctx.answers if a).decode(errors="replace")
    for sec in secrets:
        for what, text in list(logs.items()) + [("audit_log", audit), ("credentials", plain),
                                                ("login_sessions", sessions),
                                                ("admin answers", answers)]:
            check(sec not in text, "%s holds a token (%s...)" % (what, sec[:8]))
    raw = open(os.path.join(ctx.gw.var, "antigw.db"), "rb").read()
    for sec in secrets:
        check(sec.encode() not in raw, "the database file holds a token in the clear (%s...)"
              % sec[:8])


def main():
    ctx = Ctx()
    why = suite_setup(ctx)
    if why:
        return bail(why)
    ctx.mock = AuthMock(ctx.work, "kiro-auth")
    ctx.answers = []
    ctx.test_secrets = []
    ctx.gw = Gateway(ctx.work, config(ctx.mock.url), processes=PROCESSES, threads=THREADS,
                     admin=True)
    with open(os.path.join(ctx.gw.var, "secret.key"), "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(base64.b16encode(os.urandom(32)).decode().lower() + "\n")
    return run_suite(ctx, stop_after=(ctx.openai, ctx.anthropic, ctx.mock),
                     ready=lambda: wait_for(
                         lambda: admin(ctx, "GET", "/admin/kiro/none/status")[0] == 404, 10,
                         "antigw-admin"))


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Multi-tenancy end to end: antigw-admin (providers, keys, usage, audit) and tenant
mode in antigw-fcgi (per-key auth, QPM/TPM limits exact across the pool,
usage records, changes without restarts), through real lighttpd, a real pool
of 4 processes x 16 threads, antigw-admin on its own socket, a real SQLite
file and mock upstreams."""

import base64
import hashlib
import http.client
import json
import os
import re
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ADMIN_BIN, ANTHROPIC_KEY, OPENAI_KEY, SANITIZER_MARKS, Gateway,  # noqa: E402
                     Mock, bail, chat, check, check_log_clean, directive, eq,
                     messages, run_suite, read_lines, sse_events, suite_setup, test, wait_for)

PROCESSES, THREADS = 4, 16
ADMIN_KEY = "agw-admin-test-key-0123456789abcdef"
DB_PROVIDER_KEY = "sk-db-provider-secret-7f3a9c1e5b"


def config(openai_port, anthropic_port):
    return """
server: {
  log_level = "info";
  threads = %d;
  connect_timeout_ms = 2000;
  idle_timeout_seconds = 10;
  sse_ping_seconds = 1;
  stream_commit_ms = 10000;
  shutdown_grace_seconds = 20;
};
auth: { admin_key = "%s"; };
database: { path = "antigw.db"; };
tenant: { enabled = true; };
secrets: { key_file = "secret.key"; };
providers = (
  { name = "cfg-openai"; type = "openai"; base_url = "http://127.0.0.1:%d/v1";
    api_key = "%s"; models = [ "gpt-*" ]; },
  { name = "cfg-anthropic"; type = "anthropic"; base_url = "http://127.0.0.1:%d";
    api_key = "%s"; models = [ "claude-*" ]; }
);
""" % (THREADS, ADMIN_KEY, openai_port, OPENAI_KEY, anthropic_port, ANTHROPIC_KEY)


class Ctx:
    pass


# ---- helpers ----

def admin(ctx, method, path, body=None, key=ADMIN_KEY, raw=None, src=None):
    """An admin call; returns (status, headers, parsed JSON or None). `src`
    is the client's source address (another 127.x.y.z): antigw-admin counts
    wrong admin keys per address."""
    data = raw if raw is not None else body
    if src is None:
        s, h, d = ctx.gw.call(method, path, body=data, key=key,
                              headers={"Content-Type": "application/json"}
                              if data is not None else None)
    else:
        c = http.client.HTTPConnection("127.0.0.1", ctx.gw.port, timeout=30,
                                       source_address=(src, 0))
        try:
            hd = {"Authorization": "Bearer " + key} if key is not None else {}
            if data is not None:
                hd["Content-Type"] = "application/json"
                if not isinstance(data, bytes):
                    data = json.dumps(data).encode()
            c.request(method, path, body=data, headers=hd)
            r = c.getresponse()
            s, h, d = r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()
    try:
        doc = json.loads(d) if d else None
    except ValueError:
        doc = None
    return s, h, doc


def new_key(ctx, **fields):
    s, _, doc = admin(ctx, "POST", "/admin/keys", fields)
    eq(s, 201, "creating key %r: %r" % (fields.get("name"), doc))
    return doc


def db(ctx):
    return sqlite3.connect(os.path.join(ctx.gw.var, "antigw.db"), timeout=10)


def dump(ctx):
    """The admin-owned tables, for 'nothing changed' checks."""
    c = db(ctx)
    try:
        out = []
        for t in ("providers", "api_keys", "audit_log"):
            out.append((t, c.execute("SELECT * FROM %s ORDER BY id" % t).fetchall()))
        return out
    finally:
        c.close()


def shm_counter(ctx, offset):
    """A 64-bit counter of the shared segment's header (lib/state/shm.h)."""
    with open(os.path.join(ctx.gw.var, "antigw.db.state"), "rb") as f:
        f.seek(offset)
        return struct.unpack("<Q", f.read(8))[0]


GENERATION_OFF, RATE_LIMIT_HITS_OFF = 120, 128


def bad(ctx, method, path, body, status, field, raw=None):
    """A request that must be refused with `status` naming `field`, leaving
    the database as it was."""
    before = dump(ctx)
    s, _, doc = admin(ctx, method, path, body, raw=raw)
    eq(s, status, "%s %s %r status (%r)" % (method, path, body if raw is None else raw, doc))
    check(doc and "error" in doc, "JSON error body: %r" % (doc,))
    if field is not False:
        eq(doc["error"].get("field"), field, "field named by %s %s %r" % (method, path, body or raw))
    eq(dump(ctx), before, "the database after a refused %s %s" % (method, path))
    return doc


def concurrent(n, fn):
    """Runs fn(i) for i in range(n) in threads started together; returns results."""
    results = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        try:
            results[i] = fn(i, barrier)
        except Exception as e:  # recorded, asserted by the caller
            results[i] = e
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def fire(ctx, path, body, key, headers=None):
    """A callable for concurrent(): connects first, waits at the barrier, then
    sends, so all requests reach the gateway within a few milliseconds."""
    payload = json.dumps(body).encode() if not isinstance(body, bytes) else body

    def one(i, barrier):
        c = http.client.HTTPConnection("127.0.0.1", ctx.gw.port, timeout=60)
        c.connect()
        h = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
        h.update(headers or {})
        barrier.wait()
        c.request("POST", path, body=payload, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    return one


# ---- the admin key ----

@test()
def admin_refuses_to_start_without_a_key(ctx):
    cfg = os.path.join(ctx.work, "nokey.cfg")
    with open(cfg, "w") as f:
        f.write('database: { path = "x.db"; };\n')
    env = {k: v for k, v in os.environ.items() if k != "ANTIGW_ADMIN_KEY"}
    out = subprocess.run([ADMIN_BIN, "--check-config", "-c", cfg], capture_output=True,
                         text=True, env=env)
    eq(out.returncode, 1, "exit without an admin key")
    check("admin key" in out.stderr, out.stderr)
    out = subprocess.run([ADMIN_BIN, "--check-config", "-c", cfg], capture_output=True,
                         text=True, env=dict(env, ANTIGW_ADMIN_KEY="short"))
    eq(out.returncode, 1, "a short admin key is refused too")
    out = subprocess.run([ADMIN_BIN, "--check-config", "-c", cfg], capture_output=True,
                         text=True, env=dict(env, ANTIGW_ADMIN_KEY="x" * 32))
    eq(out.returncode, 0, "ANTIGW_ADMIN_KEY is enough: " + out.stderr)
    # Even under spawn-fcgi it will not serve without one.
    out = subprocess.run([ADMIN_BIN, "-c", cfg], capture_output=True, text=True, env=env,
                         stdin=subprocess.DEVNULL, timeout=10)
    eq(out.returncode, 1, "no serving without a key")


@test()
def every_admin_request_needs_the_key(ctx):
    before = dump(ctx)
    gen = shm_counter(ctx, GENERATION_OFF)
    probes = [("GET", "/admin/providers", None), ("POST", "/admin/providers",
              {"name": "x", "type": "openai"}), ("GET", "/admin/keys", None),
              ("POST", "/admin/keys", {"name": "sneaky"}), ("PUT", "/admin/keys/1", {"enabled": False}),
              ("DELETE", "/admin/providers/1", None), ("GET", "/admin/usage", None),
              ("GET", "/admin/audit", None), ("GET", "/admin/nothing-here", None)]
    # Each wrong key from its own address: fewer wrong keys than one address
    # may send before it is slowed down (admin_key_guessing_is_slowed_per_address).
    for i, key in enumerate((None, "wrong-admin-key-0123456789", ADMIN_KEY + "x", "Bearer", "")):
        for method, path, body in probes:
            s, h, doc = admin(ctx, method, path, body, key=key, src="127.0.1.%d" % (i + 1))
            eq(s, 401, "%s %s with key %r" % (method, path, key))
            eq(doc["error"]["type"], "authentication_error", "401 shape")
            eq(h.get("www-authenticate"), "Bearer", "WWW-Authenticate")
    # x-api-key is not how the admin API authenticates.
    s, _, _ = ctx.gw.call("GET", "/admin/keys", key=ADMIN_KEY, auth="x-api-key")
    eq(s, 401, "x-api-key is not accepted by /admin")
    # The data-plane key of a tenant is not an admin key.
    k = new_key(ctx, name="not-an-admin")
    before = dump(ctx)
    s, _, _ = admin(ctx, "GET", "/admin/keys", key=k["key"])
    eq(s, 401, "a client key on /admin")
    eq(dump(ctx), before, "nothing changed")
    check(shm_counter(ctx, GENERATION_OFF) >= gen + 1, "only the real create bumped the generation")


ADMIN_FAIL_MAX, ADMIN_FAIL_WINDOW_S, ADMIN_THREADS = 10, 60, 4  # admin.h; harness.py


@test(timeout=150)
def admin_key_guessing_is_slowed_per_address(ctx):
    # 1,000 wrong keys from 20 threads of one address: the first
    # ADMIN_FAIL_MAX are compared and get 401 (a few more may be in flight in
    # the admin's threads when the count is reached), every later one gets
    # 429 with Retry-After without its key being looked at.
    guesser = "127.0.2.1"

    def guess(i, barrier):
        barrier.wait()
        return [admin(ctx, "GET", "/admin/keys", key="agw-guess-%d-%d" % (i, j), src=guesser)
                for j in range(50)]
    res = concurrent(20, guess)
    got = [r for batch in res for r in (batch if isinstance(batch, list) else [batch])]
    eq([r for r in got if isinstance(r, Exception)], [], "client errors")
    codes = [r[0] for r in got]
    eq(len(codes), 1000, "answers")
    n401 = codes.count(401)
    check(ADMIN_FAIL_MAX <= n401 <= ADMIN_FAIL_MAX + ADMIN_THREADS,
          "%d wrong keys were compared (%d allowed per window)" % (n401, ADMIN_FAIL_MAX))
    eq(codes.count(429), 1000 - n401, "the rest slowed down: %r" % sorted(set(codes)))
    s, h, doc = [r for r in got if r[0] == 429][-1]
    eq(doc["error"]["type"], "rate_limit_error", "429 shape")
    check(1 <= int(h["retry-after"]) <= ADMIN_FAIL_WINDOW_S, "Retry-After %r" % h.get("retry-after"))
    # The right key is never locked out: from another address it works at once...
    eq(admin(ctx, "GET", "/admin/keys", src="127.0.2.2")[0], 200, "the right key elsewhere")
    eq(admin(ctx, "GET", "/admin/keys")[0], 200, "the right key from the usual address")
    # ...from the blocked address it waits for the window like any attempt
    # (nothing from there is compared meanwhile), and then works.
    s, h, _ = admin(ctx, "GET", "/admin/keys", src=guesser)
    eq(s, 429, "the blocked address, right key, inside the window")
    wait_for(lambda: admin(ctx, "GET", "/admin/keys", src=guesser)[0] == 200,
             ADMIN_FAIL_WINDOW_S + 5, "the right key from the blocked address after the window")
    # A right key clears the address's count: ADMIN_FAIL_MAX - 1 wrong keys,
    # the right one, and as many wrong ones again are all compared.
    for _ in range(2):
        for j in range(ADMIN_FAIL_MAX - 1):
            eq(admin(ctx, "GET", "/admin/keys", key="agw-nope-%d" % j, src="127.0.2.3")[0], 401,
               "a wrong key under the limit")
        eq(admin(ctx, "GET", "/admin/keys", src="127.0.2.3")[0], 200, "the right key")


# ---- providers ----

@test()
def providers_from_config_are_listed_read_only(ctx):
    s, _, doc = admin(ctx, "GET", "/admin/providers")
    eq(s, 200, "status")
    cfgs = [p for p in doc["data"] if p["source"] == "config"]
    eq([p["id"] for p in cfgs], ["cfg:cfg-openai", "cfg:cfg-anthropic"], "config providers")
    check(all(p["read_only"] for p in cfgs), "read-only")
    eq(cfgs[0]["api_key_hint"], OPENAI_KEY[:3] + "..." + OPENAI_KEY[-4:], "hint")
    raw = json.dumps(doc)
    check(OPENAI_KEY not in raw and ANTHROPIC_KEY not in raw, "no secret in the listing")
    s, _, one = admin(ctx, "GET", "/admin/providers/cfg:cfg-openai")
    eq((s, one["name"], one["type"]), (200, "cfg-openai", "openai"), "one config provider")
    bad(ctx, "PUT", "/admin/providers/cfg:cfg-openai", {"weight": 5}, 409, None)
    bad(ctx, "DELETE", "/admin/providers/cfg:cfg-openai", None, 409, None)
    bad(ctx, "GET", "/admin/providers/cfg:nope", None, 404, None)


@test()
def providers_crud_and_routing_without_restart(ctx):
    gen = shm_counter(ctx, GENERATION_OFF)
    body = {"name": "db-openai", "type": "openai",
            "base_url": "http://127.0.0.1:%d/v1/" % ctx.extra.port,
            "api_key": DB_PROVIDER_KEY, "models": ["dbm-*", "dbm-one"], "weight": 7}
    s, _, p = admin(ctx, "POST", "/admin/providers", body)
    eq(s, 201, "create: %r" % (p,))
    check(isinstance(p["id"], str) and p["id"].isdigit(), "id %r" % p["id"])
    eq(p["base_url"], "http://127.0.0.1:%d/v1" % ctx.extra.port, "trailing slash dropped")
    eq(p["api_key_hint"], DB_PROVIDER_KEY[:3] + "..." + DB_PROVIDER_KEY[-4:], "hint")
    eq((p["weight"], p["enabled"], p["models"], p["default_model"], p["read_only"]),
       (7, True, ["dbm-*", "dbm-one"], None, False), "fields")
    check(DB_PROVIDER_KEY not in json.dumps(p), "the secret is not returned")
    check(shm_counter(ctx, GENERATION_OFF) > gen, "the generation moved")
    pid = p["id"]
    ctx.db_provider_id = pid

    # A key that may use it, and a request within a second: no restart.
    k = new_key(ctx, name="db-user")
    ctx.extra.reset()
    wait_for(lambda: ctx.gw.call("POST", "/v1/chat/completions", body=chat("hi", model="dbm-x"),
                                 key=k["key"])[0] == 200, 1.0, "the new provider to serve")
    req = [r for r in ctx.extra.requests() if r["path"] == "/v1/chat/completions"][-1]
    auth = [v for n, v in req["headers"] if n.lower() == "authorization"]
    eq(auth, ["Bearer " + DB_PROVIDER_KEY], "the decrypted key goes upstream")

    # Partial update: only weight changes.
    s, _, p2 = admin(ctx, "PUT", "/admin/providers/" + pid, {"weight": 9})
    eq(s, 200, "update")
    eq((p2["weight"], p2["models"], p2["base_url"], p2["api_key_hint"]),
       (9, p["models"], p["base_url"], p["api_key_hint"]), "partial update")
    # Rename: the sealed key follows the new name and still decrypts upstream.
    s, _, p3 = admin(ctx, "PUT", "/admin/providers/" + pid, {"name": "db-openai-2"})
    eq((s, p3["name"], p3["api_key_hint"]), (200, "db-openai-2", p["api_key_hint"]), "rename")
    ctx.extra.reset()
    s, _, _ = ctx.gw.call("POST", "/v1/chat/completions", body=chat("hi", model="db-openai-2/x"),
                          key=k["key"])
    eq(s, 200, "routed by the new name as prefix")
    req = ctx.extra.requests()[-1]
    eq([v for n, v in req["headers"] if n.lower() == "authorization"],
       ["Bearer " + DB_PROVIDER_KEY], "the key survived the rename")
    # Disabled: gone from routing within a second.
    s, _, _ = admin(ctx, "PUT", "/admin/providers/" + pid, {"enabled": False})
    eq(s, 200, "disable")
    wait_for(lambda: ctx.gw.call("POST", "/v1/chat/completions", body=chat("hi", model="dbm-x"),
                                 key=k["key"])[0] == 404, 1.0, "the disabled provider to go")
    s, _, _ = admin(ctx, "PUT", "/admin/providers/" + pid, {"enabled": True})
    eq(s, 200, "enable again")
    # GET one, then delete.
    s, _, one = admin(ctx, "GET", "/admin/providers/" + pid)
    eq((s, one["enabled"]), (200, True), "get")
    s, _, gone = admin(ctx, "DELETE", "/admin/providers/" + pid)
    eq((s, gone), (200, {"id": pid, "deleted": True}), "delete")
    bad(ctx, "GET", "/admin/providers/" + pid, None, 404, None)
    wait_for(lambda: ctx.gw.call("POST", "/v1/chat/completions", body=chat("hi", model="dbm-x"),
                                 key=k["key"])[0] == 404, 1.0, "the deleted provider to go")


@test(timeout=60)
def admin_reload_names_the_settings_it_cannot_change(ctx):
    with open(ctx.gw.config) as f:
        original = f.read()
    admins = ctx.gw.admin_processes()
    check(admins, "antigw-admin runs")

    def hup_admin(text):
        with open(ctx.gw.config, "w") as f:
            f.write(text)
        marker = len(ctx.gw.admin_log_text())
        for pid in admins:
            os.kill(pid, signal.SIGHUP)
        wait_for(lambda: "reloaded " in ctx.gw.admin_log_text()[marker:], 10, "the reload")
        return ctx.gw.admin_log_text()[marker:]
    try:
        # antigw-admin reads the grace period once, at start; the pool's own
        # start-only settings (usage) are no concern of it.
        log = hup_admin(original.replace("shutdown_grace_seconds = 20;",
                                         "shutdown_grace_seconds = 3;")
                        .replace("tenant: { enabled = true; };",
                                 "tenant: { enabled = true; };\nusage: { retention_days = 5; };"))
        check("reload: these settings keep their values until antigw-admin restarts: "
              "server.shutdown_grace_seconds (20 -> 3)\n" in log, "the warning: %r" % log)
        check("usage." not in log, "nothing about the pool's settings: %r" % log)
        eq(admin(ctx, "GET", "/admin/providers")[0], 200, "the admin API answers")
    finally:
        log = hup_admin(original)
    check("keep their values" not in log, "the file as at start: no warning: %r" % log)


@test(timeout=60)
def a_stream_in_flight_survives_its_provider_being_deleted(ctx):
    s, _, p = admin(ctx, "POST", "/admin/providers", {
        "name": "db-stream", "type": "openai", "base_url": "http://127.0.0.1:%d/v1" % ctx.extra.port,
        "api_key": DB_PROVIDER_KEY, "models": ["dbs-*"]})
    eq(s, 201, "create")
    k = new_key(ctx, name="streamer")
    wait_for(lambda: ctx.gw.call("POST", "/v1/chat/completions", body=chat("x", model="dbs-1"),
                                 key=k["key"])[0] == 200, 2, "provider live")
    result = {}

    def long_stream():
        s, _, lines = ctx.gw.stream("/v1/chat/completions",
                                    chat(directive(events=20, delay_ms=100), model="dbs-1",
                                         stream=True), key=k["key"])
        result["status"], result["events"] = s, sse_events(lines)
    t = threading.Thread(target=long_stream)
    t.start()
    time.sleep(0.5)
    s, _, _ = admin(ctx, "DELETE", "/admin/providers/" + p["id"])
    eq(s, 200, "delete while streaming")
    wait_for(lambda: ctx.gw.call("POST", "/v1/chat/completions", body=chat("x", model="dbs-1"),
                                 key=k["key"])[0] == 404, 1.0, "new requests see the deletion")
    t.join(30)
    eq(result.get("status"), 200, "status")
    eq(result["events"][-1], (None, "[DONE]"), "the stream in flight completed")
    eq(len(result["events"]), 20 + 3, "every event arrived")


@test()
def provider_bad_input_changes_nothing(ctx):
    P = "/admin/providers"
    ok = {"name": "good", "type": "openai"}
    bad(ctx, "POST", P, None, 400, None, raw=b'{"name": "x",')
    bad(ctx, "POST", P, None, 400, None, raw=b'')
    bad(ctx, "POST", P, None, 400, None, raw=b'["name"]')
    bad(ctx, "POST", P, None, 400, None, raw=b'{"name": "x"} trailing')
    bad(ctx, "POST", P, None, 400, "name", raw=b'{"name": "a", "name": "b", "type": "openai"}')
    bad(ctx, "POST", P, dict(ok, colour="red"), 400, "colour")
    bad(ctx, "POST", P, {"type": "openai"}, 400, "name")
    bad(ctx, "POST", P, {"name": "x"}, 400, "type")
    bad(ctx, "POST", P, dict(ok, name=5), 400, "name")
    bad(ctx, "POST", P, dict(ok, name="has space"), 400, "name")
    bad(ctx, "POST", P, dict(ok, name="x" * 65), 400, "name")
    # 63 bytes is the longest name (what usage rows and metrics labels hold);
    # one byte more is refused, as antigw.cfg refuses it.
    doc = bad(ctx, "POST", P, dict(ok, name="x" * 64), 400, "name")
    check("1 to 63" in doc["error"]["message"], "the limit is named: %r" % (doc,))
    bad(ctx, "POST", P, dict(ok, type="azure"), 400, "type")
    bad(ctx, "POST", P, dict(ok, type=None), 400, "type")
    bad(ctx, "POST", P, dict(ok, base_url="ftp://x"), 400, "base_url")
    bad(ctx, "POST", P, dict(ok, base_url="http://a b"), 400, "base_url")
    bad(ctx, "POST", P, {"name": "k", "type": "kiro"}, 400, "base_url")
    bad(ctx, "POST", P, dict(ok, api_key=123), 400, "api_key")
    bad(ctx, "POST", P, None, 400, "api_key",
        raw=b'{"name": "x", "type": "openai", "api_key": "sk-\\u0000rest"}')
    bad(ctx, "POST", P, dict(ok, api_key="sk-a\nb"), 400, "api_key")
    bad(ctx, "POST", P, dict(ok, weight="100"), 400, "weight")
    bad(ctx, "POST", P, dict(ok, weight=1.5), 400, "weight")
    bad(ctx, "POST", P, dict(ok, weight=-1), 400, "weight")
    bad(ctx, "POST", P, dict(ok, weight=True), 400, "weight")
    bad(ctx, "POST", P, dict(ok, enabled="yes"), 400, "enabled")
    bad(ctx, "POST", P, dict(ok, enabled=None), 400, "enabled")
    bad(ctx, "POST", P, dict(ok, models="gpt-*"), 400, "models")
    bad(ctx, "POST", P, dict(ok, models=[1]), 400, "models")
    bad(ctx, "POST", P, dict(ok, models=[""]), 400, "models")
    bad(ctx, "POST", P, dict(ok, default_model=5), 400, "default_model")
    bad(ctx, "POST", P, dict(ok, name="cfg-openai"), 409, "name")
    s, _, p = admin(ctx, "POST", P, {"name": "dup", "type": "anthropic", "models": ["dup-*"]})
    eq(s, 201, "a provider to collide with")
    bad(ctx, "POST", P, {"name": "dup", "type": "openai"}, 409, "name")
    s, _, other = admin(ctx, "POST", P, {"name": "dup2", "type": "openai"})
    eq(s, 201, "a second one")
    bad(ctx, "PUT", P + "/" + other["id"], {"name": "dup"}, 409, "name")
    bad(ctx, "PUT", P + "/" + other["id"], {"weight": "x"}, 400, "weight")
    bad(ctx, "PUT", P + "/" + other["id"], {"nope": 1}, 400, "nope")
    bad(ctx, "PUT", P + "/" + other["id"], None, 400, None, raw=b"{")
    bad(ctx, "PUT", P + "/999999", {"weight": 1}, 404, None)
    bad(ctx, "PUT", P + "/abc", {"weight": 1}, 404, None)
    bad(ctx, "DELETE", P + "/999999", None, 404, None)
    bad(ctx, "GET", P + "/0", None, 404, None)
    bad(ctx, "PATCH", P + "/" + other["id"], {"weight": 1}, 405, None)
    bad(ctx, "DELETE", P, None, 405, None)
    bad(ctx, "POST", P, None, 413, None, raw=b'{"name": "' + b"x" * (1100 * 1024) + b'"}')
    deep = b'{"name": "d", "type": "openai", "models": ' + b"[" * 40 + b"]" * 40 + b"}"
    bad(ctx, "POST", P, None, 400, None, raw=deep)
    s, _, longest = admin(ctx, "POST", P, dict(ok, name="x" * 63))
    eq((s, longest.get("name")), (201, "x" * 63), "a name of 63 bytes: %r" % (longest,))
    bad(ctx, "PUT", P + "/" + longest["id"], {"name": "y" * 64}, 400, "name")
    # Model names as long as a client may send (255 bytes), not one more.
    eq(admin(ctx, "PUT", P + "/" + longest["id"],
             {"models": ["m" * 255], "default_model": "d" * 255})[0], 200, "255-byte models")
    bad(ctx, "PUT", P + "/" + longest["id"], {"models": ["m" * 256]}, 400, "models")
    bad(ctx, "PUT", P + "/" + longest["id"], {"default_model": "d" * 256}, 400, "default_model")
    for pid in (p["id"], other["id"], longest["id"]):
        eq(admin(ctx, "DELETE", P + "/" + pid)[0], 200, "cleanup")


# ---- keys ----

@test()
def keys_crud_and_the_key_shown_once(ctx):
    k = new_key(ctx, name="team-a", qpm=10, tpm_limit=5000, allowed_models=["gpt-*"],
                metadata={"team": "a", "cost_center": 42}, expires_at="2099-01-02T03:04:05Z")
    key = k["key"]
    check(re.fullmatch(r"agw-[0-9a-f]{64}", key), "format of %r" % key)
    eq(k["key_prefix"], key[:12], "display prefix")
    eq((k["qpm_limit"], k["tpm_limit"], k["allowed_models"], k["metadata"], k["enabled"]),
       (10, 5000, ["gpt-*"], {"team": "a", "cost_center": 42}, True), "fields")
    eq(k["expires_at"], 4071006245, "expires_at parsed (2099-01-02T03:04:05Z)")
    s, _, listed = admin(ctx, "GET", "/admin/keys")
    eq(s, 200, "list")
    check(key not in json.dumps(listed), "the key is never listed")
    check("key" not in [x for x in listed["data"] if x["id"] == k["id"]][0], "no key member")
    s, _, one = admin(ctx, "GET", "/admin/keys/%d" % k["id"])
    eq((s, one["name"], "key" in one), (200, "team-a", False), "get")
    s, _, up = admin(ctx, "PUT", "/admin/keys/%d" % k["id"], {"tpm": 7000, "enabled": False})
    eq((s, up["tpm_limit"], up["qpm_limit"], up["enabled"], up["allowed_models"]),
       (200, 7000, 10, False, ["gpt-*"]), "partial update")
    s, _, up = admin(ctx, "PUT", "/admin/keys/%d" % k["id"],
                     {"expires_at": None, "metadata": None, "allowed_models": None})
    eq((up["expires_at"], up["metadata"], up["allowed_models"]), (None, None, None), "nulls clear")
    s, _, gone = admin(ctx, "DELETE", "/admin/keys/%d" % k["id"])
    eq((s, gone), (200, {"id": k["id"], "deleted": True}), "delete")
    bad(ctx, "GET", "/admin/keys/%d" % k["id"], None, 404, None)
    s, _, _ = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"), key=key)
    eq(s, 401, "a deleted key is unknown")
    # Two keys never collide, and the database holds only hashes.
    k2 = new_key(ctx, name="team-b")
    c = db(ctx)
    row = c.execute("SELECT key_hash, key_prefix FROM api_keys WHERE id = ?", (k2["id"],)).fetchone()
    c.close()
    eq(bytes(row[0]), hashlib.sha256(k2["key"].encode()).digest(), "SHA-256 stored")
    eq(row[1], k2["key"][:12], "prefix stored")


@test()
def key_bad_input_changes_nothing(ctx):
    K = "/admin/keys"
    k = new_key(ctx, name="existing")
    bad(ctx, "POST", K, {}, 400, "name")
    bad(ctx, "POST", K, {"name": ""}, 400, "name")
    bad(ctx, "POST", K, {"name": None}, 400, "name")
    bad(ctx, "POST", K, {"name": "x", "role": "admin"}, 400, "role")
    bad(ctx, "POST", K, {"name": "existing"}, 409, "name")
    bad(ctx, "POST", K, {"name": "x", "qpm": 5, "qpm_limit": 5}, 400, "qpm")
    bad(ctx, "POST", K, {"name": "x", "tpm": 5, "tpm_limit": 6}, 400, "tpm")
    bad(ctx, "POST", K, {"name": "x", "qpm": -1}, 400, "qpm")
    bad(ctx, "POST", K, {"name": "x", "qpm_limit": 2.5}, 400, "qpm_limit")
    bad(ctx, "POST", K, {"name": "x", "tpm": "100"}, 400, "tpm")
    bad(ctx, "POST", K, {"name": "x", "tpm": 10 ** 12}, 400, "tpm")
    bad(ctx, "POST", K, {"name": "x", "enabled": 1}, 400, "enabled")
    bad(ctx, "POST", K, {"name": "x", "allowed_models": "gpt-*"}, 400, "allowed_models")
    bad(ctx, "POST", K, {"name": "x", "allowed_models": [None]}, 400, "allowed_models")
    bad(ctx, "POST", K, {"name": "x", "allowed_providers": ["nope"]}, 400, "allowed_providers")
    bad(ctx, "POST", K, {"name": "x", "default_provider": "nope"}, 400, "default_provider")
    bad(ctx, "POST", K, {"name": "x", "default_provider": "cfg-openai",
                         "allowed_providers": ["cfg-anthropic"]}, 400, "default_provider")
    bad(ctx, "POST", K, {"name": "x", "expires_at": "tomorrow"}, 400, "expires_at")
    bad(ctx, "POST", K, {"name": "x", "expires_at": "2024-02-30"}, 400, "expires_at")
    bad(ctx, "POST", K, {"name": "x", "expires_at": True}, 400, "expires_at")
    bad(ctx, "POST", K, {"name": "x", "metadata": [1, 2]}, 400, "metadata")
    bad(ctx, "POST", K, {"name": "x", "metadata": "m"}, 400, "metadata")
    bad(ctx, "POST", K, None, 400, "metadata",
        raw=b'{"name": "x", "metadata": {"a": 1, "a": 2}}')
    bad(ctx, "POST", K, None, 400, None, raw=b'{"name": "x"')
    bad(ctx, "POST", K, None, 400, None, raw=b'"just a string"')
    bad(ctx, "PUT", K + "/%d" % k["id"], {"qpm": "fast"}, 400, "qpm")
    bad(ctx, "PUT", K + "/%d" % k["id"], {"key": "agw-mine"}, 400, "key")
    bad(ctx, "PUT", K + "/%d" % k["id"], {"allowed_providers": ["cfg-openai"],
                                          "default_provider": "cfg-anthropic"}, 400,
        "default_provider")
    other = new_key(ctx, name="other")
    bad(ctx, "PUT", K + "/%d" % other["id"], {"name": "existing"}, 409, "name")
    bad(ctx, "PUT", K + "/424242", {"enabled": False}, 404, None)
    bad(ctx, "DELETE", K + "/424242", None, 404, None)
    bad(ctx, "GET", K + "/-1", None, 404, None)
    bad(ctx, "GET", K + "/1x", None, 404, None)
    bad(ctx, "POST", K + "/%d" % k["id"], {"name": "y"}, 405, None)
    bad(ctx, "PUT", K, {"name": "y"}, 405, None)


# ---- the data plane in tenant mode ----

@test()
def client_auth_errors_in_each_protocol(ctx):
    gw = ctx.gw
    s, _, d = gw.call("POST", "/v1/chat/completions", body=chat("x"), key=None)
    e = json.loads(d)
    eq((s, e["error"]["type"], e["error"]["code"]), (401, "authentication_error", "missing_api_key"),
       "missing, OpenAI shape")
    s, _, d = gw.call("POST", "/v1/messages", body=messages("x"), key=None)
    e = json.loads(d)
    eq((s, e["type"], e["error"]["type"]), (401, "error", "authentication_error"),
       "missing, Anthropic shape")
    s, _, d = gw.call("POST", "/v1/messages", body=messages("x"), key="agw-" + "0" * 64,
                      auth="x-api-key")
    eq((s, json.loads(d)["error"]["type"]), (401, "authentication_error"), "unknown x-api-key")
    s, _, _ = gw.call("GET", "/v1/models", key="agw-unknown")
    eq(s, 401, "models need a key")

    k = new_key(ctx, name="auth-ok")
    s, _, _ = gw.call("POST", "/v1/messages", body=messages("x"), key=k["key"], auth="x-api-key")
    eq(s, 200, "x-api-key works on /v1/messages")
    s, _, _ = gw.call("POST", "/v1/messages", body=messages("x"), key=k["key"])
    eq(s, 200, "Bearer works on /v1/messages")
    s, _, _ = gw.call("POST", "/v1/chat/completions", body=chat("x"), key=k["key"])
    eq(s, 200, "Bearer works on /v1/chat/completions")

    off = new_key(ctx, name="auth-disabled", enabled=False)
    s, _, d = gw.call("POST", "/v1/chat/completions", body=chat("x"), key=off["key"])
    e = json.loads(d)
    eq((s, e["error"]["type"], e["error"]["code"]), (403, "permission_error", "key_disabled"),
       "disabled, OpenAI shape")
    s, _, d = gw.call("POST", "/v1/messages", body=messages("x"), key=off["key"], auth="x-api-key")
    e = json.loads(d)
    eq((s, e["type"], e["error"]["type"]), (403, "error", "permission_error"),
       "disabled, Anthropic shape")
    old = new_key(ctx, name="auth-expired", expires_at=int(time.time()) - 5)
    s, _, d = gw.call("POST", "/v1/chat/completions", body=chat("x"), key=old["key"])
    eq((s, json.loads(d)["error"]["code"]), (403, "key_expired"), "expired")

    narrow = new_key(ctx, name="auth-narrow", allowed_models=["gpt-4o-mini", "claude-3-*"],
                     allowed_providers=["cfg-openai"])
    s, _, _ = gw.call("POST", "/v1/chat/completions", body=chat("x", model="gpt-4o-mini"),
                      key=narrow["key"])
    eq(s, 200, "an allowed model")
    s, _, d = gw.call("POST", "/v1/chat/completions", body=chat("x", model="gpt-4o"),
                      key=narrow["key"])
    eq((s, json.loads(d)["error"]["code"]), (403, "model_not_allowed"), "a model not allowed")
    s, _, d = gw.call("POST", "/v1/messages", body=messages("x", model="claude-3-haiku"),
                      key=narrow["key"])
    e = json.loads(d)
    eq((s, e["error"]["type"]), (403, "permission_error"), "a provider not allowed (Anthropic)")
    check("cfg-anthropic" in e["error"]["message"], e["error"]["message"])
    # /v1/models lists what the mocks' own model lists name (the prober reads
    # them), filtered by the key: only its allowed model, on its allowed provider.
    s, _, d = gw.call("GET", "/v1/models", key=narrow["key"])
    eq(sorted(m["id"] for m in json.loads(d)["data"]), ["gpt-4o-mini", "openai/gpt-4o-mini"],
       "only the models the key may use")


@test()
def emptied_lists_allow_nothing(ctx):
    # null (or absent) allows everything; [] allows nothing: an admin who
    # empties a list revokes access, never widens it.
    k = new_key(ctx, name="emptied", allowed_models=[])
    eq((k["allowed_models"], k["allowed_providers"]), ([], None), "[] and null kept apart")
    s, _, one = admin(ctx, "GET", "/admin/keys/%d" % k["id"])
    eq((s, one["allowed_models"], one["allowed_providers"]), (200, [], None), "read back")
    c = db(ctx)
    row = c.execute("SELECT allowed_models, allowed_providers FROM api_keys WHERE id = ?",
                    (k["id"],)).fetchone()
    c.close()
    eq(row, ("[]", None), "stored distinctly")
    s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"), key=k["key"])
    eq((s, json.loads(d)["error"]["code"]), (403, "model_not_allowed"), "no model allowed")
    s, _, d = ctx.gw.call("GET", "/v1/models", key=k["key"])
    eq((s, json.loads(d)["data"]), (200, []), "/v1/models lists nothing")
    s, _, up = admin(ctx, "PUT", "/admin/keys/%d" % k["id"],
                     {"allowed_models": None, "allowed_providers": []})
    eq((s, up["allowed_models"], up["allowed_providers"]), (200, None, []), "swapped")
    s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"), key=k["key"])
    eq((s, json.loads(d)["error"]["type"]), (403, "permission_error"), "no provider allowed")
    bad(ctx, "PUT", "/admin/keys/%d" % k["id"], {"default_provider": "cfg-openai"}, 400,
        "default_provider")
    s, _, up = admin(ctx, "PUT", "/admin/keys/%d" % k["id"], {"allowed_providers": None})
    eq((s, up["allowed_providers"]), (200, None), "null allows every provider again")
    s, _, _ = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"), key=k["key"])
    eq(s, 200, "everything allowed again")


MODEL_MAX = 255  # AGW_CONFIG_MODEL_MAX, lib/core/config.h


@test()
def model_names_at_the_limit(ctx):
    longest = "gpt-" + "x" * (MODEL_MAX - 4)
    k = new_key(ctx, name="long-models", allowed_models=[longest, "gpt-4o-mini"])
    eq(k["allowed_models"][0], longest, "an allowed_models entry of %d bytes" % MODEL_MAX)
    bad(ctx, "PUT", "/admin/keys/%d" % k["id"], {"allowed_models": [longest + "x"]}, 400,
        "allowed_models")
    s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x", model=longest),
                          key=k["key"])
    eq(s, 200, "a model name of %d bytes: %r" % (MODEL_MAX, d[:200]))
    s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x", model=longest + "x"),
                          key=k["key"])
    eq(s, 400, "a model name of %d bytes" % (MODEL_MAX + 1))
    check(str(MODEL_MAX) in json.loads(d)["error"]["message"], d)

    def stored():
        c = db(ctx)
        try:
            return [r[0] for r in c.execute("SELECT model FROM usage WHERE key_id = ?"
                                            " AND status = 200", (k["id"],))]
        finally:
            c.close()
    wait_for(lambda: stored(), 5, "the usage row")
    eq(stored(), [longest], "the usage row keeps the whole name")
    # (The metrics label of such a name is checked in tests/unit/test_metrics.c:
    # /metrics names only models listed literally, and these match a glob.)


@test()
def key_default_provider_comes_first(ctx):
    k = new_key(ctx, name="prefers-anthropic", default_provider="cfg-anthropic")
    ctx.anthropic.reset()
    s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("hi", model="gpt-4o-mini"),
                          key=k["key"])
    eq(s, 200, "status: %r" % d[:200])
    check(any(r["path"] == "/v1/messages" for r in ctx.anthropic.requests()),
          "gpt-4o-mini went to the key's default provider (converted)")
    s, _, _ = ctx.gw.call("POST", "/v1/chat/completions", body=chat("hi", model="openai/gpt-4o"),
                          key=k["key"])
    eq(s, 200, "an explicit prefix still wins")


@test(timeout=60)
def disabling_a_key_takes_effect_within_a_second(ctx):
    k = new_key(ctx, name="to-disable")
    for _ in range(20):  # warm every process's cache
        eq(ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"), key=k["key"])[0], 200, "ok")
    s, _, _ = admin(ctx, "PUT", "/admin/keys/%d" % k["id"], {"enabled": False})
    eq(s, 200, "disable")
    t0 = time.monotonic()
    wait_for(lambda: ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"),
                                 key=k["key"])[0] == 403, 1.0, "403 after disabling")
    took = time.monotonic() - t0
    # And every process refuses it from then on (each noticed the generation).
    for _ in range(40):
        eq(ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"), key=k["key"])[0], 403,
           "still refused")
    s, _, _ = admin(ctx, "PUT", "/admin/keys/%d" % k["id"], {"enabled": True})
    wait_for(lambda: ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"),
                                 key=k["key"])[0] == 200, 1.0, "200 after enabling")
    check(took < 1.0, "refused after %.3f s" % took)


@test(timeout=120)
def qpm_is_exact_across_the_pool(ctx):
    # 60 per minute refills one request per second (limiter.h), so "exactly
    # 60 of 200" holds for a burst that ends within that second. It normally
    # takes a fraction of it; on a machine so loaded that it does not, the
    # burst is repeated with a fresh key (and the refill bound still checked).
    for attempt in range(3):
        k = new_key(ctx, name="qpm-60-%d" % attempt, qpm=60)
        hits = shm_counter(ctx, RATE_LIMIT_HITS_OFF)
        t0 = time.monotonic()
        res = concurrent(200, fire(ctx, "/v1/chat/completions",
                                   chat("hi " + directive(events=1)), k["key"]))
        took = time.monotonic() - t0
        errs = [r for r in res if isinstance(r, Exception)]
        eq(errs, [], "client errors")
        codes = [r[0] for r in res]
        eq(codes.count(200) + codes.count(429), 200, "only 200s and 429s")
        if took < 0.9:
            break
        check(60 <= codes.count(200) <= 60 + int(took) + 1,
              "%d admitted in a %.2f s burst" % (codes.count(200), took))
        print("# burst took %.2f s: %d admitted; again" % (took, codes.count(200)), flush=True)
    else:
        raise AssertionError("no burst of 200 requests ended within a second; the last took %.2f s"
                             % took)
    eq((codes.count(200), codes.count(429)), (60, 140),
       "200s and 429s of 200 concurrent requests (burst of %.2f s)" % took)
    ok = [r for r in res if r[0] == 200]
    limited = [r for r in res if r[0] == 429]
    remaining = sorted(int(r[1]["x-ratelimit-remaining-requests"]) for r in ok)
    eq(remaining, list(range(60)), "remaining-requests counts down through the burst")
    for s, h, d in limited[:10]:
        e = json.loads(d)["error"]
        eq((e["type"], e["code"]), ("rate_limit_error", "rate_limit_exceeded"), "429 body")
        eq(h["x-ratelimit-limit-requests"], "60", "limit header")
        eq(h["x-ratelimit-remaining-requests"], "0", "remaining header")
        check(1 <= int(h["retry-after"]) <= 2, "Retry-After %r" % h["retry-after"])
    eq(shm_counter(ctx, RATE_LIMIT_HITS_OFF) - hits, 140, "antigateway_rate_limit_hits_total")
    # The Anthropic endpoint answers a 429 in its own shape.
    s, h, d = ctx.gw.call("POST", "/v1/messages", body=messages("x"), key=k["key"],
                          auth="x-api-key")
    e = json.loads(d)
    eq((s, e["type"], e["error"]["type"]), (429, "error", "rate_limit_error"), "Anthropic 429")
    check("retry-after" in h, "Retry-After on the Anthropic 429")


def tpm_body(cost):
    """A request whose gateway estimate (limiter.h: ceil(body bytes / 4) +
    max_tokens) is exactly `cost`, and which the mock answers with exactly that
    usage: input = ceil(body bytes / 4) and output = max_tokens, set by the
    directive. Numbers are zero-padded so the body's length does not depend
    on them."""
    def build(n, m):
        return json.dumps(chat("count me " + directive(input_tokens="%05d" % n,
                                                       output_tokens="%05d" % m),
                               max_tokens=m)).encode()
    for m in range(cost - 1, 0, -1):
        body = build(0, m)
        n = (len(body) + 3) // 4
        if n + m == cost and len(build(n, m)) == len(body):
            return build(n, m), n + m
    raise AssertionError("no body costs %d" % cost)


@test(timeout=90)
def tpm_is_exact_across_the_pool(ctx):
    # 12000 tokens per minute; each request costs exactly 2000 (estimate and
    # real count agree), so exactly 6 fit the bucket; refilling 2000 tokens
    # takes 10 s, far longer than the burst lasts.
    body, cost = tpm_body(2000)
    eq(cost, 2000, "cost per request")
    k = new_key(ctx, name="tpm-12000", tpm=12000)
    res = concurrent(50, fire(ctx, "/v1/chat/completions", body, k["key"]))
    eq([r for r in res if isinstance(r, Exception)], [], "client errors")
    codes = [r[0] for r in res]
    eq((codes.count(200), codes.count(429)), (6, 44), "200s and 429s of 50 concurrent requests")
    ok = [r for r in res if r[0] == 200]
    # The bucket refills one token every 5 ms while the burst runs, so the
    # figures may be a little above the bare arithmetic.
    remaining = sorted(int(r[1]["x-ratelimit-remaining-tokens"]) for r in ok)
    check(all(0 <= got - want < 200 for got, want in zip(remaining, range(0, 12000, 2000))),
          "remaining-tokens %r" % remaining)
    limited = [r for r in res if r[0] == 429]
    eq(json.loads(limited[0][2])["error"]["type"], "rate_limit_error", "429 type")
    check(int(limited[0][1]["retry-after"]) >= 9, "Retry-After %r" % limited[0][1]["retry-after"])
    # Settled with the real counts: the rows hold them, and a cheaper request
    # is still refused while the bucket refills.
    def settled():
        c = db(ctx)
        try:
            return c.execute("SELECT input_tokens, output_tokens, status, tokens_estimated"
                             " FROM usage WHERE key_id = ? AND status = 200",
                             (k["id"],)).fetchall()
        finally:
            c.close()
    # Rows arrive through the usage ring, a few milliseconds after the answers.
    rows = settled()
    for _ in range(250):
        if len(rows) >= 6:
            break
        time.sleep(0.02)
        rows = settled()
    eq(len(rows), 6, "one usage row per admitted request")
    check(all(r[0] + r[1] == 2000 and r[3] == 0 for r in rows), "real counts: %r" % rows)


@test(timeout=60)
def a_changed_limit_starts_with_a_full_bucket(ctx):
    k = new_key(ctx, name="qpm-changes", qpm=1)
    path = "/admin/keys/%d" % k["id"]
    eq(ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"), key=k["key"])[0], 200, "1 of 1")
    eq(ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"), key=k["key"])[0], 429, "empty")
    for qpm in (0, 30):
        eq(admin(ctx, "PUT", path, {"qpm": qpm})[0], 200, "qpm %d" % qpm)
    wait_for(lambda: ctx.gw.call("GET", "/v1/models", key=k["key"])[1]
             .get("x-ratelimit-limit-requests", "30") == "30", 2, "the new limit everywhere")
    t0 = time.monotonic()
    res = concurrent(100, fire(ctx, "/v1/chat/completions", chat("hi"), k["key"]))
    took = time.monotonic() - t0
    codes = [r[0] if not isinstance(r, Exception) else r for r in res]
    eq(codes.count(200) + codes.count(429), 100, "only 200s and 429s: %r" % set(map(str, codes)))
    check(30 <= codes.count(200) <= 30 + int(took / 2) + 1,
          "%d of 100 passed a fresh bucket of 30 (burst of %.2f s)" % (codes.count(200), took))
    # TPM likewise; and a request whose estimate alone exceeds the limit is
    # refused whatever the bucket holds.
    t = new_key(ctx, name="tpm-changes", tpm=1000)
    spend = chat("x " + directive(input_tokens=10, output_tokens=880), max_tokens=900)
    eq(ctx.gw.call("POST", "/v1/chat/completions", body=spend, key=t["key"])[0], 200,
       "most of the bucket, really spent")
    eq(ctx.gw.call("POST", "/v1/chat/completions", body=spend, key=t["key"])[0], 429, "empty")
    eq(admin(ctx, "PUT", "/admin/keys/%d" % t["id"], {"tpm": 2000})[0], 200, "tpm 2000")
    wait_for(lambda: ctx.gw.call("POST", "/v1/chat/completions", body=chat("x", max_tokens=1900),
                                 key=t["key"])[0] == 200, 2, "a fresh bucket of 2000")
    s, h, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x", max_tokens=5000),
                          key=t["key"])
    err = json.loads(d)["error"]
    eq((s, err["type"], err["code"]), (429, "rate_limit_error", "request_too_large"),
       "larger than the bucket")
    check("lower max_tokens" in err["message"] and "2000" in err["message"],
          "the message says why waiting cannot help: %r" % err["message"])
    eq(h.get("retry-after"), None, "no Retry-After: no wait lets it pass")


@test(timeout=60)
def tpm_settles_with_the_real_count(ctx):
    # The estimate reserves max_tokens; the answer uses 10: the difference
    # comes back to the bucket when the response ends.
    k = new_key(ctx, name="tpm-settle", tpm=1000)
    body = chat("hi " + directive(input_tokens=5, output_tokens=10), max_tokens=900)
    s, h, _ = ctx.gw.call("POST", "/v1/chat/completions", body=body, key=k["key"])
    eq(s, 200, "first")
    est = int(h["x-ratelimit-remaining-tokens"])
    check(est < 100, "the reservation took most of the bucket (remaining %d)" % est)
    s, h, _ = ctx.gw.call("POST", "/v1/chat/completions",
                          body=chat("hi " + directive(input_tokens=5, output_tokens=10),
                                    max_tokens=10), key=k["key"])
    eq(s, 200, "a second request fits because the first was settled at 15 tokens")
    check(int(h["x-ratelimit-remaining-tokens"]) > 900, "remaining %s" % h["x-ratelimit-remaining-tokens"])


@test(timeout=60)
def usage_rows_and_admin_usage_totals(ctx):
    k = new_key(ctx, name="usage-team")
    t0 = int(time.time())
    gw = ctx.gw
    s, _, _ = gw.call("POST", "/v1/chat/completions",
                      body=chat("a " + directive(input_tokens=11, output_tokens=7, cache_read=3)),
                      key=k["key"])
    eq(s, 200, "openai non-stream")
    s, _, lines = gw.stream("/v1/chat/completions",
                            chat("b " + directive(input_tokens=13, output_tokens=5), stream=True,
                                 stream_options={"include_usage": True}), key=k["key"])
    eq(s, 200, "openai stream with usage")
    s, _, lines = gw.stream("/v1/messages",
                            messages("c " + directive(input_tokens=17, output_tokens=9,
                                                      cache_write=2), stream=True),
                            key=k["key"], headers={"anthropic-version": "2023-06-01"})
    eq(s, 200, "anthropic stream")
    s, _, lines = gw.stream("/v1/chat/completions",
                            chat("d " + directive(events=4, text="abcdefgh"), stream=True),
                            key=k["key"])
    eq(s, 200, "openai stream whose client did not ask for usage")
    s, _, _ = gw.call("POST", "/v1/chat/completions",
                      body=chat("e " + directive(status=500)), key=k["key"])
    eq(s, 500, "an upstream error")
    s, _, _ = gw.call("POST", "/v1/chat/completions",
                      body=chat("f " + directive(input_tokens=19, output_tokens=23, cache_read=4,
                                                 cache_write=6),
                                model="claude-sonnet-4-20250514"), key=k["key"])
    eq(s, 200, "converted OpenAI -> Anthropic")
    def stored():
        c = db(ctx)
        try:
            return c.execute("SELECT provider, model, status, input_tokens, output_tokens,"
                             " cache_read_tokens, cache_write_tokens, streamed,"
                             " tokens_estimated, ttft_ms IS NOT NULL, latency_ms >= 0, ts >= ?"
                             " FROM usage WHERE key_id = ? ORDER BY id",
                             (t0 - 1, k["id"])).fetchall()
        finally:
            c.close()
    # Rows arrive through the usage ring, a few milliseconds after the answers.
    rows = stored()
    for _ in range(250):
        if len(rows) >= 6:
            break
        time.sleep(0.02)
        rows = stored()
    eq(len(rows), 6, "one row per request: %r" % rows)
    eq(rows[0][:9], ("cfg-openai", "gpt-4o-mini", 200, 8, 7, 3, 0, 0, 0), "non-stream row")
    eq(rows[1][:9], ("cfg-openai", "gpt-4o-mini", 200, 13, 5, 0, 0, 1, 0), "stream row")
    check(rows[1][9], "ttft recorded for a stream")
    eq(rows[2][:9], ("cfg-anthropic", "claude-sonnet-4-20250514", 200, 17, 9, 0, 2, 1, 0),
       "anthropic row")
    # The gateway asks the provider for usage itself (and keeps the extra
    # chunk from the client), so even this row holds reported counts.
    eq((rows[3][2], rows[3][7], rows[3][8]), (200, 1, 0), "reported, not estimated")
    check(rows[3][4] > 0 and rows[3][3] > 0, "counts are not zero: %r" % (rows[3],))
    eq((rows[4][2], rows[4][3], rows[4][4]), (500, 0, 0), "error row")
    # The converted answer's counts, cached ones included, come from its conversion.
    eq(rows[5][:9], ("cfg-anthropic", "claude-sonnet-4-20250514", 200, 19, 23, 4, 6, 0, 0),
       "converted row")
    check(all(r[10] and r[11] for r in rows), "latency and time")

    s, _, u = admin(ctx, "GET", "/admin/usage?key_id=%d" % k["id"])
    eq(s, 200, "usage")
    t = u["totals"]
    eq((t["requests"], t["input_tokens"], t["output_tokens"], t["errors"], t["cache_read_tokens"],
        t["cache_write_tokens"], t["streamed"], t["estimated_token_counts"]),
       (6, 8 + 13 + 17 + rows[3][3] + 19, 7 + 5 + 9 + rows[3][4] + 23, 1, 3 + 4, 2 + 6, 3, 0),
       "totals")
    lat = t["latency_ms"]
    check(lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"], "percentiles %r" % lat)
    for g, label in (("model", "model"), ("provider", "provider"), ("key", "key_id"),
                     ("key_model", "model"), ("day", "day"), ("hour", "hour")):
        s, _, u = admin(ctx, "GET", "/admin/usage?key_id=%d&group_by=%s" % (k["id"], g))
        eq(s, 200, "group_by " + g)
        eq(sum(x["requests"] for x in u["groups"]), 6, "groups of %s add up" % g)
        check(all(label in x for x in u["groups"]), "groups name their %s" % label)
    s, _, u = admin(ctx, "GET", "/admin/usage?key_id=%d&group_by=provider" % k["id"])
    eq({x["provider"]: x["requests"] for x in u["groups"]}, {"cfg-openai": 4, "cfg-anthropic": 2},
       "per provider")
    s, _, u = admin(ctx, "GET", "/admin/usage?key_id=%d&group_by=key" % k["id"])
    eq((u["groups"][0]["key_id"], u["groups"][0]["key_name"]), (k["id"], "usage-team"), "key name")
    s, _, u = admin(ctx, "GET", "/admin/usage?key_id=%d&provider=cfg-anthropic&model=claude-sonnet-4-20250514"
                    % k["id"])
    eq(u["totals"]["requests"], 2, "provider and model filters")
    day = time.strftime("%Y-%m-%d", time.gmtime(t0))
    s, _, u = admin(ctx, "GET", "/admin/usage?key_id=%d&from=%d&to=%d" % (k["id"], t0 - 1,
                                                                           int(time.time()) + 2))
    eq(u["totals"]["requests"], 6, "from/to as Unix seconds")
    s, _, u = admin(ctx, "GET", "/admin/usage?key_id=%d&to=%s" % (k["id"], "2000-01-01"))
    eq(u["totals"]["requests"], 0, "nothing before 2000")
    s, _, u = admin(ctx, "GET", "/admin/usage?key_id=%d&from=%sT00:00:00Z" % (k["id"], day))
    eq(u["totals"]["requests"], 6, "RFC 3339 from")
    for q, field in (("group_by=week", "group_by"), ("key_id=abc", "key_id"), ("from=yesterday", "from"),
                     ("to=2024-13-01", "to"), ("colour=red", "colour"),
                     ("model=a&model=b", "model")):
        bad(ctx, "GET", "/admin/usage?" + q, None, 400, field)
    bad(ctx, "POST", "/admin/usage", {}, 405, None)


@test()
def audit_log_records_changes_without_secrets(ctx):
    s, _, p = admin(ctx, "POST", "/admin/providers", {
        "name": "audited", "type": "openai", "api_key": "sk-audit-secret-value-123456"})
    eq(s, 201, "create")
    s, _, _ = admin(ctx, "PUT", "/admin/providers/" + p["id"], {"api_key": "sk-audit-secret-2-abcdef",
                                                                "weight": 1})
    eq(s, 200, "update")
    s, _, _ = admin(ctx, "DELETE", "/admin/providers/" + p["id"])
    eq(s, 200, "delete")
    s, _, a = admin(ctx, "GET", "/admin/audit?object_type=provider&object_id=" + p["id"])
    eq(s, 200, "audit")
    eq([(e["action"], e["object_type"], e["object_id"]) for e in a["data"]],
       [("delete", "provider", p["id"]), ("update", "provider", p["id"]),
        ("create", "provider", p["id"])], "newest first")
    eq(a["data"][1]["detail"], {"name": "audited", "fields": ["api_key", "weight"]}, "update detail")
    raw = json.dumps(a)
    check("sk-audit-secret" not in raw, "no secret in the audit log")
    s, _, a = admin(ctx, "GET", "/admin/audit?limit=2")
    eq((s, len(a["data"])), (200, 2), "limit")
    s, _, b = admin(ctx, "GET", "/admin/audit?limit=2&before_id=%d" % a["next_before_id"])
    check(b["data"][0]["id"] < a["data"][-1]["id"], "paging")
    s, _, keys = admin(ctx, "GET", "/admin/audit?object_type=key")
    check(keys["data"] and all(e["object_type"] == "key" for e in keys["data"]), "key entries")
    bad(ctx, "GET", "/admin/audit?limit=0", None, 400, "limit")
    bad(ctx, "GET", "/admin/audit?object_type=user", None, 400, "object_type")
    bad(ctx, "GET", "/admin/audit?since=1", None, 400, "since")


@test(timeout=90)
def sigkill_mid_stream_loses_no_completed_row(ctx):
    k = new_key(ctx, name="survivor")
    kids = ctx.gw.pool_processes()
    eq(len(kids), PROCESSES, "children of multiwatch")
    n = PROCESSES * THREADS  # one long stream per worker thread: every process is mid-stream
    results = [None] * n
    started = threading.Barrier(n + 1)

    def one(i):
        c = http.client.HTTPConnection("127.0.0.1", ctx.gw.port, timeout=60)
        body = chat("s%d " % i + directive(events=30, delay_ms=100, output_tokens=10000 + i),
                    stream=True, stream_options={"include_usage": True})
        lines = []
        try:
            c.connect()
            started.wait()
            c.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(),
                      headers={"Authorization": "Bearer " + k["key"],
                               "Content-Type": "application/json"})
            r = c.getresponse()
            read_lines(r, lines)
            results[i] = ("ok", r.status, sse_events(lines))
        except Exception as e:  # a stream cut by the kill
            results[i] = ("cut", repr(e), sse_events(lines))
        finally:
            c.close()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(1.2)
    victim = kids[1]
    os.kill(victim, signal.SIGKILL)
    # Requests during the outage go to the surviving processes.
    for t in threads:
        t.join(60)
    complete = [i for i, r in enumerate(results)
                if r and r[0] == "ok" and r[1] == 200 and r[2] and r[2][-1] == (None, "[DONE]")]
    cut = [i for i in range(n) if i not in complete]
    check(1 <= len(cut) <= THREADS, "streams cut by the kill: %d (%r)" % (
        len(cut), [results[i] for i in cut][:2]))
    eq(len(complete) + len(cut), n, "every stream accounted for")
    for i in complete:
        text = "".join(json.loads(d)["choices"][0]["delta"].get("content") or ""
                       for _, d in results[i][2][:-1] if json.loads(d)["choices"])
        eq(text, " ".join("Hello%d" % j for j in range(30)), "stream %d intact" % i)
    # The pool recovers: multiwatch restarts the child, new requests work.
    wait_for(lambda: len(ctx.gw.pool_processes()) == PROCESSES
             and victim not in ctx.gw.pool_processes(), 15,
             "multiwatch to restart the child")
    for _ in range(20):
        eq(ctx.gw.call("POST", "/v1/chat/completions", body=chat("after"), key=k["key"])[0], 200,
           "after the restart")
    # Every completed response has its usage row: in the usage ring before
    # its end, in the database once the drainer (maybe another process now)
    # has stored it.
    def missing_rows():
        c = db(ctx)
        got = {r[0] for r in c.execute("SELECT output_tokens FROM usage WHERE key_id = ? AND"
                                       " output_tokens >= 10000", (k["id"],))}
        c.close()
        return sorted(10000 + i for i in complete if 10000 + i not in got)
    missing = missing_rows()
    for _ in range(250):
        if not missing:
            break
        time.sleep(0.02)
        missing = missing_rows()
    eq(missing, [], "usage rows of completed streams")


@test()
def no_secret_or_key_in_the_database_files(ctx):
    # Make sure the WAL holds recent writes too: a provider with a secret and keys.
    s, _, p = admin(ctx, "POST", "/admin/providers", {
        "name": "secret-check", "type": "anthropic", "api_key": "sk-ant-plaintext-canary-998877"})
    eq(s, 201, "create")
    all_keys = [new_key(ctx, name="canary-%d" % i)["key"] for i in range(3)]
    blobs = {}
    for suffix in ("", "-wal", "-shm"):
        path = os.path.join(ctx.gw.var, "antigw.db" + suffix)
        if os.path.exists(path):
            with open(path, "rb") as f:
                blobs[suffix or "db"] = f.read()
    check("-wal" in blobs and len(blobs["-wal"]) > 0, "the WAL exists")
    secrets = [b"sk-ant-plaintext-canary-998877", DB_PROVIDER_KEY.encode(), ADMIN_KEY.encode(),
               OPENAI_KEY.encode(), ANTHROPIC_KEY.encode()] + [k.encode() for k in all_keys]
    secrets += [k.encode() for k in ctx.seen_client_keys]
    for name, data in blobs.items():
        for sec in secrets:
            check(sec not in data, "%s holds %r in plaintext" % (name, sec[:12]))
            # The hex body of a client key is its secret too.
            if sec.startswith(b"agw-") and len(sec) == 68:
                check(sec[4:] not in data, "%s holds a key body" % name)
    # Stored sealed: the blob opens only with the key file, and is bound to its name.
    c = db(ctx)
    blob, hint = c.execute("SELECT secret_enc, secret_hint FROM providers WHERE name = ?",
                           ("secret-check",)).fetchone()
    c.close()
    eq(len(blob), len("sk-ant-plaintext-canary-998877") + 28, "nonce + ciphertext + tag")
    eq(hint, "sk-...8877", "hint")
    eq(admin(ctx, "DELETE", "/admin/providers/" + p["id"])[0], 200, "cleanup")


def upstream_auth(mock):
    req = [r for r in mock.requests() if r["path"] == "/v1/chat/completions"][-1]
    return [v for n, v in req["headers"] if n.lower() == "authorization"]


@test(timeout=60)
def a_provider_key_is_bound_to_its_base_url(ctx):
    # Through the admin API a change of base_url re-seals the key, which keeps
    # working; the same change made in the database directly leaves a key that
    # no longer opens: calls go out without it, and the pool says why.
    url = "http://127.0.0.1:%d/v1" % ctx.extra.port
    s, _, p = admin(ctx, "POST", "/admin/providers",
                    {"name": "bound", "type": "openai", "base_url": url,
                     "api_key": DB_PROVIDER_KEY, "models": ["bound-*"]})
    eq(s, 201, "create: %r" % (p,))
    k = new_key(ctx, name="bound-user")
    call = lambda: ctx.gw.call("POST", "/v1/chat/completions", body=chat("hi", model="bound-x"),
                               key=k["key"])
    ctx.extra.reset()
    wait_for(lambda: call()[0] == 200, 2, "the provider to serve")
    eq(upstream_auth(ctx.extra), ["Bearer " + DB_PROVIDER_KEY], "the key goes upstream")
    # Another origin for the same mock (localhost), through the API: re-sealed.
    moved = "http://localhost:%d/v1" % ctx.extra.port
    s, _, p2 = admin(ctx, "PUT", "/admin/providers/" + p["id"], {"base_url": moved})
    eq((s, p2 and p2["base_url"]), (200, moved), "PUT base_url")
    ctx.extra.reset()
    wait_for(lambda: call()[0] == 200 and upstream_auth(ctx.extra) == ["Bearer " + DB_PROVIDER_KEY],
             2, "the key to keep working after PUT base_url")
    # A type change through the API is re-sealed too (and changed back).
    for t in ("anthropic", "openai"):
        eq(admin(ctx, "PUT", "/admin/providers/" + p["id"], {"type": t})[0], 200, "PUT type " + t)
    ctx.extra.reset()
    wait_for(lambda: call()[0] == 200 and upstream_auth(ctx.extra) == ["Bearer " + DB_PROVIDER_KEY],
             2, "the key to keep working after PUT type")
    # The database edited behind the API's back: back to 127.0.0.1.
    c = db(ctx)
    c.execute("UPDATE providers SET base_url = ? WHERE id = ?", (url, int(p["id"])))
    c.commit()
    c.close()
    new_key(ctx, name="bump-the-generation")  # any admin write makes the pool reload

    def keyless():
        ctx.extra.reset()
        status = call()[0]
        return (status != 200 and any(r["path"] == "/v1/chat/completions"
                                      for r in ctx.extra.requests())
                and upstream_auth(ctx.extra) == [])
    wait_for(keyless, 2, "calls to go out without the key (and the mock to refuse them)")
    wait_for(lambda: "provider bound: its key does not open" in ctx.gw.log_text(), 5,
             "the log line naming the provider")
    eq(admin(ctx, "DELETE", "/admin/providers/" + p["id"])[0], 200, "cleanup")


@test()
def link_local_base_url_refused_by_the_admin_api(ctx):
    for url in ("http://169.254.169.254/latest", "http://[fe80::1]:8080/v1",
                "http://[fd00:ec2::254]/v1"):
        doc = bad(ctx, "POST", "/admin/providers",
                  {"name": "meta", "type": "openai", "base_url": url}, 400, "base_url")
        check("link-local" in doc["error"]["message"], "message: %r" % doc)
    # Loopback and private addresses stay allowed.
    s, _, p = admin(ctx, "POST", "/admin/providers",
                    {"name": "private", "type": "openai", "base_url": "http://10.0.0.7/v1"})
    eq(s, 201, "a private address: %r" % (p,))
    eq(admin(ctx, "DELETE", "/admin/providers/" + p["id"])[0], 200, "cleanup")


def legacy_seal(key_hex, name, plain):
    """A provider key sealed the way it was before type and origin were
    bound: AES-256-GCM, associated data "provider:<name>", stored as
    nonce || ciphertext || tag."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    nonce = os.urandom(12)
    return nonce + AESGCM(bytes.fromhex(key_hex)).encrypt(nonce, plain.encode(),
                                                          ("provider:" + name).encode())


@test(timeout=90)
def old_sealed_keys_are_migrated_when_antigw_admin_starts(ctx):
    with open(os.path.join(ctx.gw.var, "secret.key")) as f:
        key_hex = f.read().strip()
    url = "http://127.0.0.1:%d/v1" % ctx.extra.port
    c = db(ctx)
    c.execute("INSERT INTO providers(name, type, base_url, secret_enc, secret_hint, weight,"
              " enabled, models, created_at, updated_at) VALUES (?, 'openai', ?, ?, 'sk-...', 100,"
              " 1, '[\"legacy-*\"]', 0, 0)",
              ("legacy", url, legacy_seal(key_hex, "legacy", DB_PROVIDER_KEY)))
    c.commit()
    c.close()
    ctx.gw.stop_admin()
    ctx.gw.start_admin()
    wait_for(lambda: admin(ctx, "GET", "/admin/keys")[0] == 200, 10, "admin back")
    check("re-sealed 1 provider keys" in ctx.gw.admin_log_text(), "the migration's log line")
    k = new_key(ctx, name="legacy-user")
    ctx.extra.reset()
    wait_for(lambda: ctx.gw.call("POST", "/v1/chat/completions", body=chat("hi", model="legacy-x"),
                                 key=k["key"])[0] == 200, 5, "the migrated provider to serve")
    eq(upstream_auth(ctx.extra), ["Bearer " + DB_PROVIDER_KEY], "the migrated key goes upstream")
    c = db(ctx)
    pid = c.execute("SELECT id FROM providers WHERE name = 'legacy'").fetchone()[0]
    c.close()
    eq(admin(ctx, "DELETE", "/admin/providers/%d" % pid)[0], 200, "cleanup")


@test(timeout=90)
def pools_stop_cleanly_and_start_again(ctx):
    # A graceful stop runs every process's exit path (LeakSanitizer reports
    # there in the sanitizer build); state and keys survive a restart.
    k = new_key(ctx, name="restart", qpm=1000)
    ctx.gw.stop_pool()
    ctx.gw.stop_admin()
    for name, log in (("pool", ctx.gw.log_text()), ("admin", ctx.gw.admin_log_text())):
        check_log_clean("the %s log" % name, log, SANITIZER_MARKS)
    ctx.gw.start_pool()
    ctx.gw.start_admin()
    wait_for(lambda: ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"),
                                 key=k["key"])[0] == 200, 10, "the pool back with the key")
    wait_for(lambda: admin(ctx, "GET", "/admin/keys/%d" % k["id"])[0] == 200, 10, "admin back")


# ---- answer settings: per provider, per key ----

def rounds_directive(*rs):
    return directive(rounds=json.dumps([list(r) for r in rs]).encode().hex())


def chat_calls(mock):
    return [r for r in mock.requests() if r["path"] == "/v1/chat/completions"]


@test(timeout=60)
def answer_settings_per_provider_and_key(ctx):
    body = {"name": "db-answers", "type": "openai",
            "base_url": "http://127.0.0.1:%d/v1" % ctx.extra.port,
            "api_key": DB_PROVIDER_KEY, "models": ["ans-*"]}
    s, _, p = admin(ctx, "POST", "/admin/providers", body)
    eq(s, 201, "create: %r" % (p,))
    eq(p["answers"], {"continuation": None, "sanitize": None, "sanitize_defaults": True,
                      "sanitize_thinking": False, "sanitize_rules": []}, "the type's defaults")
    pid = p["id"]
    plain = new_key(ctx, name="answers-plain")
    eq(plain["continuation"], None, "a key follows the provider by default")
    script = rounds_directive(["one "], ["two"])

    def ask(key):
        ctx.extra.reset()
        s, _, d = ctx.gw.call("POST", "/v1/chat/completions",
                              body=chat("hi Amazon Q " + script, model="ans-1"), key=key)
        eq(s, 200, "status (%r)" % d)
        return json.loads(d)["choices"][0]["message"]["content"], len(chat_calls(ctx.extra))

    eq(ask(plain["key"]), ("one ", 1), "openai providers do not continue by default")
    # the provider continues and rewrites, from the admin API
    settings = {"continuation": True, "sanitize": True,
                "sanitize_rules": [{"replace": "one", "with": "ONE", "word": True}]}
    s, _, p = admin(ctx, "PUT", "/admin/providers/%s/answers" % pid, settings)
    eq(s, 200, "put answers: %r" % (p,))
    eq(p["answers"]["sanitize_rules"], [{"replace": "one", "with": "ONE", "word": True}], "rules")
    wait_for(lambda: ask(plain["key"]) == ("ONE two", 2), 2.0, "the settings to apply")
    # a key that says no continues nothing; one that says yes overrides a provider's no
    never = new_key(ctx, name="answers-never", continuation=False)
    eq(ask(never["key"]), ("ONE ", 1), "the key's override")
    s, _, p = admin(ctx, "PUT", "/admin/providers/%s/answers" % pid, {"continuation": False})
    eq(s, 200, "continuation off")
    eq(p["answers"]["sanitize"], None, "a PUT replaces the whole settings object")
    always = new_key(ctx, name="answers-always", continuation=True)
    wait_for(lambda: ask(always["key"]) == ("one two", 2), 2.0, "key on, provider off")
    s, _, k = admin(ctx, "PUT", "/admin/keys/%d" % always["id"], {"continuation": None})
    eq((s, k["continuation"]), (200, None), "back to the provider's setting")
    # the usage rows say how many rounds there were (rows reach the database
    # a moment after their answers)
    def rounds_seen():
        c = db(ctx)
        try:
            rows = c.execute("SELECT continuations FROM usage WHERE provider = 'db-answers'"
                             " ORDER BY id").fetchall()
        finally:
            c.close()
        return (1,) in rows and (0,) in rows
    wait_for(rounds_seen, 10.0, "usage rows with and without a continuation round")
    # the audit log names the change
    c = db(ctx)
    try:
        detail = c.execute("SELECT detail FROM audit_log WHERE object_type = 'provider'"
                           " AND object_id = ? ORDER BY id DESC LIMIT 1", (pid,)).fetchone()[0]
    finally:
        c.close()
    eq(json.loads(detail)["fields"], ["answers"], "audit row")
    ctx.answers_provider_id = pid


@test()
def answer_settings_bad_input_changes_nothing(ctx):
    pid = getattr(ctx, "answers_provider_id", None)
    check(pid, "answer_settings_per_provider_and_key ran first")
    path = "/admin/providers/%s/answers" % pid
    bad(ctx, "PUT", path, {"sanitize_rules": [{"replace": " x", "word": True}]}, 400,
        "sanitize_rules[0].replace")
    bad(ctx, "PUT", path, {"sanitize_rules": [{"remove": "<a>"}]}, 400, "sanitize_rules[0]")
    bad(ctx, "PUT", path, {"continuation": "yes"}, 400, "continuation")
    bad(ctx, "PUT", path, {"colour": True}, 400, "colour")
    bad(ctx, "PUT", path, None, 400, False, raw=b"[1]")
    bad(ctx, "POST", path, {}, 405, False)
    bad(ctx, "PUT", "/admin/providers/cfg:cfg-openai/answers", {"continuation": True}, 409, False)
    bad(ctx, "PUT", "/admin/providers/999999/answers", {"continuation": True}, 404, False)
    bad(ctx, "POST", "/admin/keys", {"name": "k-bad-cont", "continuation": 1}, 400,
        "continuation")


@test(timeout=60)
def provider_test_makes_one_probe_call(ctx):
    """POST /admin/providers/:id/test: one model-list call with the key the
    pool would send, its verdict, and nothing written."""
    from harness import refused_port
    before = dump(ctx)
    n = len([r for r in ctx.openai.requests() if r["path"].endswith("/models")])
    s, _, doc = admin(ctx, "POST", "/admin/providers/cfg:cfg-openai/test", {})
    eq(s, 200, "test of a provider from antigw.cfg: %r" % (doc,))
    eq((doc["provider"], doc["ok"], doc["reason"], doc["status"]), ("cfg-openai", True, "none", 200),
       "verdict")
    check(doc["latency_ms"] >= 0 and doc["models"] >= 1, "latency and model count: %r" % (doc,))
    probes = [r for r in ctx.openai.requests() if r["path"].endswith("/models")]
    eq(len(probes), n + 1, "calls at the mock")
    eq([v for k, v in probes[-1]["headers"] if k.lower() == "authorization"],
       ["Bearer " + OPENAI_KEY], "the provider's key went with it")
    eq(dump(ctx), before, "the database after a test")
    # A database provider whose key the upstream refuses; then one nobody answers.
    s, _, p = admin(ctx, "POST", "/admin/providers", {
        "name": "tested", "type": "openai", "api_key": "sk-wrong-key-for-the-test",
        "base_url": "http://127.0.0.1:%d/v1" % ctx.extra.port, "models": ["tested-*"]})
    eq(s, 201, "create")
    s, _, doc = admin(ctx, "POST", "/admin/providers/%s/test" % p["id"], {})
    eq((s, doc["ok"], doc["reason"], doc["status"]), (200, False, "auth_rejected", 401),
       "a refused key: %r" % (doc,))
    check("refused the gateway's key" in doc["message"], doc["message"])
    s, _, _ = admin(ctx, "PUT", "/admin/providers/" + p["id"], {"api_key": DB_PROVIDER_KEY})
    eq(s, 200, "fix the key")
    s, _, doc = admin(ctx, "POST", "/admin/providers/%s/test" % p["id"], {})
    eq((s, doc["ok"], doc["status"]), (200, True, 200), "the right key: %r" % (doc,))
    dead = refused_port()
    try:
        s, _, _ = admin(ctx, "PUT", "/admin/providers/" + p["id"], {
            "base_url": "http://127.0.0.1:%d/v1" % dead.getsockname()[1]})
        eq(s, 200, "point it at a closed port")
        s, _, doc = admin(ctx, "POST", "/admin/providers/%s/test" % p["id"], {})
        eq((s, doc["ok"], doc["reason"], doc["status"]), (200, False, "probe_failed", None),
           "nobody answers: %r" % (doc,))
        check(doc["message"], "a message says why")
    finally:
        dead.close()
    eq(admin(ctx, "DELETE", "/admin/providers/" + p["id"])[0], 200, "delete")
    # Bad input: each refused, nothing changed.
    bad(ctx, "POST", "/admin/providers/999999/test", {}, 404, None)
    bad(ctx, "POST", "/admin/providers/cfg:nope/test", {}, 404, None)
    bad(ctx, "POST", "/admin/providers/abc/test", {}, 404, None)
    bad(ctx, "POST", "/admin/providers/cfg:cfg-openai/test", {"x": 1}, 400, "x")
    bad(ctx, "POST", "/admin/providers/cfg:cfg-openai/test", None, 400, False, raw=b"{")
    s, h, _ = admin(ctx, "GET", "/admin/providers/cfg:cfg-openai/test")
    eq((s, h.get("allow")), (405, "POST"), "GET of a test")


def main():
    ctx = Ctx()
    why = suite_setup(ctx)
    if why:
        return bail(why)
    ctx.extra = Mock(ctx.work, "extra", "--openai-key", DB_PROVIDER_KEY)
    ctx.gw = Gateway(ctx.work, config(ctx.openai.port, ctx.anthropic.port),
                     processes=PROCESSES, threads=THREADS, admin=True)
    with open(os.path.join(ctx.gw.var, "secret.key"), "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(base64.b16encode(os.urandom(32)).decode().lower() + "\n")
    # Every client key any test creates, for the plaintext check at the end.
    ctx.seen_client_keys = []
    global new_key
    plain_new_key = new_key

    def recording_new_key(c, **fields):
        doc = plain_new_key(c, **fields)
        c.seen_client_keys.append(doc["key"])
        return doc
    new_key = recording_new_key
    return run_suite(ctx, stop_after=(ctx.openai, ctx.anthropic, ctx.extra),
                     ready=lambda: wait_for(lambda: admin(ctx, "GET", "/admin/keys")[0] == 200,
                                            10, "antigw-admin"))


if __name__ == "__main__":
    sys.exit(main())

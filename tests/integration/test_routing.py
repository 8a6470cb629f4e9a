#!/usr/bin/env python3
"""Routing end to end: load balancing with state shared by the whole pool,
failover before the first byte, cooldown and health checks, through real
lighttpd, a real pool of 4 processes and several mock upstreams (each its own
provider). Providers are steered with the mock's POST /_mock/force, so one
provider fails whatever the request says while the others answer."""

import json
import os
import re
import signal
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CLIENT_KEY, Gateway, Mock, bail, chat, check, check_log_clean,  # noqa: E402
                     clean_up_workdir, eq, exit_code, free_port, make_workdir,
                     pool_tools_missing, run_all, test, wait_for)

PROCESSES, THREADS = 4, 8
ADMIN_KEY = "agw-routing-admin-key-0123456789abcdef"


class Ctx:
    pass


def config(providers, strategy, **defaults):
    """antigw.cfg with `providers` [(name, port, weight[, type[, models]])],
    serving lb-* unless `models` (a list of names and globs) says otherwise
    (type openai unless given)."""
    d = {"lb_strategy": strategy, "health_check_enabled": False, "max_attempts": 3,
         "cooldown_seconds": 2, "lb_half_life_seconds": 30}
    d.update(defaults)
    dv = "".join("  %s = %s;\n" % (k, ("true" if v else "false") if isinstance(v, bool)
                                   else ('"%s"' % v if isinstance(v, str) else v))
                 for k, v in d.items())
    ps = ",\n".join(
        '  { name = "%s"; type = "%s"; base_url = "http://127.0.0.1:%d%s";\n'
        '    api_key = "k"; weight = %d; models = [ %s ]; }'
        % (p[0], p[3] if len(p) > 3 else "openai", p[1],
           "" if len(p) > 3 and p[3] == "anthropic" else "/v1", p[2],
           ", ".join('"%s"' % m for m in (p[4] if len(p) > 4 else ["lb-*"])))
        for p in providers)
    return ("server: {\n  log_level = \"info\";\n  threads = %d;\n  connect_timeout_ms = 1000;\n"
            "  idle_timeout_seconds = 2;\n  stream_commit_ms = 10000;\n"
            "  shutdown_grace_seconds = 5;\n};\n"
            'auth: { api_key = "%s"; admin_key = "%s"; };\n'
            'database: { path = "antigw.db"; };\n'
            "defaults: {\n%s};\n"
            "providers = (\n%s\n);\n") % (THREADS, CLIENT_KEY, ADMIN_KEY, dv, ps)


def force(mock, directives=""):
    """Directives for every request `mock` gets; its answer text always
    names it (text=<name>x), which tells the client who answered."""
    d = "text=%sx" % mock.name + ("," + directives if directives else "")
    req = urllib.request.Request("http://127.0.0.1:%d/_mock/force" % mock.port,
                                 data=d.encode(), method="POST")
    urllib.request.urlopen(req, timeout=10).read()


def posts(mock):
    return sum(1 for r in mock.requests() if r["method"] == "POST")


def ask(gw, content="hi", stream=False):
    s, h, d = gw.call("POST", "/v1/chat/completions", chat(content, model="lb-model",
                                                           stream=stream))
    m = re.search(rb"([a-z]+[0-9]+)x0", d)
    return s, m.group(1).decode() if m else None, d


class Pool:
    """A gateway over `n` fresh mocks, for one test."""

    def __init__(self, ctx, tag, weights, strategy, **defaults):
        self.mocks = [Mock(ctx.work, "%s%d" % (tag, i)) for i in range(len(weights))]
        for m in self.mocks:
            force(m)
        provs = [(m.name, m.port, w) for m, w in zip(self.mocks, weights)]
        os.makedirs(os.path.join(ctx.work, tag), exist_ok=True)
        self.gw = Gateway(os.path.join(ctx.work, tag), config(provs, strategy, **defaults),
                          processes=PROCESSES, threads=THREADS)
        self.gw.start()

    def close(self):
        try:
            check_log_clean("fcgi.log", self.gw.log_text())
        finally:
            self.gw.stop()
            for m in self.mocks:
                if m.proc.poll() is None:
                    m.stop()


def many(gw, n, workers=16):
    with ThreadPoolExecutor(workers) as ex:
        return list(ex.map(lambda i: ask(gw, "r%d" % i), range(n)))


@test(timeout=120)
def round_robin_is_exact_across_the_pool(ctx):
    p = Pool(ctx, "rr", [100] * 4, "round-robin")
    try:
        got = many(p.gw, 400)
        eq(sorted(set(s for s, _, _ in got)), [200], "statuses")
        counts = [posts(m) for m in p.mocks]
        eq(counts, [100] * 4, "requests per provider (400 over 4, pool of %d)" % PROCESSES)
    finally:
        p.close()


@test(timeout=120)
def weighted_within_binomial_bound(ctx):
    p = Pool(ctx, "wt", [1, 3], "weighted")
    try:
        got = many(p.gw, 800)
        eq(sorted(set(s for s, _, _ in got)), [200], "statuses")
        a, b = posts(p.mocks[0]), posts(p.mocks[1])
        eq(a + b, 800, "total")
        # Each request picks the weight-1 provider with p = 0.25: over 800
        # requests its share has sd sqrt(.25 * .75 / 800) = 1.53 points, so
        # +-6 points is 3.9 sd (a false failure about once in 10^4 runs).
        share = a / 800.0
        check(0.19 <= share <= 0.31, "weight-1 share %.3f not within 0.25 +- 0.06" % share)
    finally:
        p.close()


@test(timeout=120)
def priority_moves_only_on_failure_and_comes_back(ctx):
    p = Pool(ctx, "pr", [100, 50], "priority")
    first, second = p.mocks
    try:
        for s, who, _ in many(p.gw, 40, 4):
            eq((s, who), (200, "pr0"), "priority: the heaviest provider")
        eq(posts(second), 0, "second provider untouched")
        force(first, "status=500")
        s, who, _ = ask(p.gw)
        eq((s, who), (200, "pr1"), "failover to the next provider")
        # pr0 cools down (2 s): meanwhile pr1 serves without trying pr0.
        before = posts(first)
        for s, who, _ in many(p.gw, 20, 4):
            eq((s, who), (200, "pr1"), "during the cooldown")
        eq(posts(first), before, "cooling provider not tried")
        force(first, "")
        time.sleep(2.3)
        for s, who, _ in many(p.gw, 20, 4):
            eq((s, who), (200, "pr0"), "back after the cooldown")
    finally:
        p.close()


@test(timeout=120)
def failover_connect_500_429_stall(ctx):
    dead = free_port()  # nothing listens there
    p = Pool(ctx, "fo", [400, 300, 200, 100], "priority", max_attempts=4, cooldown_seconds=60)
    m = p.mocks
    try:
        # Point fo0 at a dead port is not possible after start: use 500, 429
        # (retry-after), and a stall past idle_timeout (2 s) on fo0..fo2.
        force(m[0], "status=500")
        force(m[1], "status=429,retry_after=1")
        force(m[2], "stall_ms=4000")
        t0 = time.monotonic()
        s, who, d = ask(p.gw)
        eq((s, who), (200, "fo3"), "answer from the last healthy provider: %r" % d[:200])
        check(json.loads(d)["choices"][0]["message"]["content"].startswith("fo3x0"), "content")
        check(time.monotonic() - t0 < 8, "failover took too long")
        eq([posts(x) for x in m], [1, 1, 1, 1], "each tried once")
        log = p.gw.log_text()
        check(log.count("trying the next provider") >= 3, "failovers logged")
        # Streams fail over too while nothing was sent.
        for x in m[:3]:
            force(x, "")
        force(m[3], "status=503")
        # fo0..fo2 are cooling down (60 s), fo3 fails: the cooling ones are
        # still tried after it rather than answering 503.
        s, who, d = ask(p.gw, stream=True)
        eq(s, 200, "stream after failover: %r" % d[:200])
        check(b"[DONE]" in d, "complete stream")
    finally:
        p.close()
    # A provider whose port refuses connections.
    m0 = Mock(ctx.work, "cr0")
    force(m0)
    os.makedirs(os.path.join(ctx.work, "cr"), exist_ok=True)
    gw = Gateway(os.path.join(ctx.work, "cr"),
                 config([("refuses", dead, 100), ("cr0", m0.port, 10)], "priority",
                        cooldown_seconds=30),
                 processes=PROCESSES, threads=THREADS)
    gw.start()
    try:
        s, who, d = ask(gw)
        eq((s, who), (200, "cr0"), "after a refused connection: %r" % d[:200])
        s, who, d = ask(gw, stream=True)
        eq((s, who), (200, "cr0"), "stream after a refused connection (cooling: cr0 first)")
        h = json.loads(gw.call("GET", "/health", key=ADMIN_KEY)[2])
        byname = {x["name"]: x for x in h["providers"]}
        check(byname["refuses"]["cooldown_ms"] > 0, "refused provider cooling: %r" % byname)
        eq(byname["cr0"]["healthy"], True, "cr0 healthy")
    finally:
        gw.stop()
        m0.stop()


@test(timeout=60)
def failover_to_the_other_protocol_converts(ctx):
    # An OpenAI client; the OpenAI provider fails, the Anthropic one answers:
    # the request is re-encoded for it and the answer converted back.
    ma, mb = Mock(ctx.work, "cv0"), Mock(ctx.work, "cv1")
    force(ma, "status=502")
    force(mb)
    os.makedirs(os.path.join(ctx.work, "cv"), exist_ok=True)
    gw = Gateway(os.path.join(ctx.work, "cv"),
                 config([("cv0", ma.port, 100), ("cv1", mb.port, 10, "anthropic")], "priority"),
                 processes=2, threads=THREADS)
    gw.start()
    try:
        for stream in (False, True):
            s, who, d = ask(gw, stream=stream)
            eq((s, who), (200, "cv1"), "converted failover (stream=%s): %r" % (stream, d[:300]))
            if stream:
                check(b"[DONE]" in d, "an OpenAI stream end")
            else:
                eq(json.loads(d)["object"], "chat.completion", "OpenAI shape")
        paths = [r["path"] for r in mb.requests() if r["method"] == "POST"]
        eq(paths, ["/v1/messages"] * 2, "Anthropic requests at cv1")
        check_log_clean("fcgi.log", gw.log_text())
    finally:
        gw.stop()
        ma.stop()
        mb.stop()


@test(timeout=150)
def smart_avoids_429_and_slow_then_returns(ctx):
    # half-life 3 s here (30 s by default) so the recovery fits in a test.
    p = Pool(ctx, "sm", [100, 100], "smart", cooldown_seconds=1, lb_half_life_seconds=3)
    a, b = p.mocks
    try:
        many(p.gw, 40, 2)
        check(posts(a) >= 8 and posts(b) >= 8, "both used while equal: %d/%d"
              % (posts(a), posts(b)))
        # a answers 429: every request still succeeds (failover to b).
        force(a, "status=429")
        for s, who, _ in many(p.gw, 10, 2):
            eq((s, who), (200, "sm1"), "away from the 429s")
        force(a, "")
        time.sleep(1.1)  # past the 1 s cooldown; the 429s are still recent
        before = posts(a)
        many(p.gw, 40, 2)
        # score 10000 / (1 + 10 * ~0.7) -> a gets ~11 % (expected ~4 of 40)
        check(posts(a) - before <= 12, "a still mostly avoided: %d of 40" % (posts(a) - before))
        # Five half-lives later a has its share back (~45 %).
        time.sleep(15)
        before = posts(a)
        many(p.gw, 40, 2)
        check(posts(a) - before >= 8, "a back after the decay: %d of 40" % (posts(a) - before))
        # A slow provider (latency EWMA) loses most of its share: b at 400 ms
        # scores 10000 / 5 against a's ~9900, about 17 % once its EWMA caught
        # up (expected ~20 of 80 with the warm-up; 30 is 2.6 sd above).
        force(b, "first_delay_ms=400")
        before = posts(b)
        many(p.gw, 80, 4)
        check(posts(b) - before <= 30, "slow b avoided: %d of 80" % (posts(b) - before))
        force(b, "")
    finally:
        p.close()


@test(timeout=120)
def health_probe_takes_out_and_brings_back(ctx):
    p = Pool(ctx, "hc", [100, 100], "round-robin", health_check_enabled=True,
             health_check_seconds=1)
    a, b = p.mocks
    port = a.port
    try:
        many(p.gw, 8, 2)
        eq(posts(a), 4, "equal share while both up")
        a.stop()  # connection refused from now on

        def out():
            h = json.loads(p.gw.call("GET", "/health", key=ADMIN_KEY)[2])
            x = {v["name"]: v for v in h["providers"]}["hc0"]
            return not x["healthy"] and h
        h = wait_for(out, 10, "hc0 unhealthy in /health")
        eq(h["status"], "ok", "one provider left")
        for s, who, _ in many(p.gw, 10, 2):
            eq((s, who), (200, "hc1"), "only hc1 while hc0 is down")
        # Back on the same port: the next probe brings it back.
        os.remove(os.path.join(ctx.work, "hc0.port"))  # Mock waits for a new one
        a2 = Mock(ctx.work, "hc0", "--port", str(port))
        p.mocks[0] = a2  # stopped by close() whatever happens next
        force(a2)

        def back():
            h = json.loads(p.gw.call("GET", "/health", key=ADMIN_KEY)[2])
            return {v["name"]: v for v in h["providers"]}["hc0"]["usable"]
        wait_for(back, 10, "hc0 healthy again")
        many(p.gw, 10, 2)
        check(posts(a2) >= 3, "hc0 back in the rotation: %d" % posts(a2))
        # Everything down: /health says 503.
        a2.stop()
        b.stop()
        wait_for(lambda: p.gw.call("GET", "/health", key=None)[0] == 503, 10, "/health 503")
        # Exactly one process probes (flock): probes are not multiplied by 4.
        leaders = [l for l in p.gw.log_text().splitlines() if "probes the providers" in l]
        eq(len(leaders), 1, "one prober in the pool")
    finally:
        p.close()


def model_ids(gw, anthropic=False):
    s, _, d = gw.call("GET", "/v1/models",
                      headers={"anthropic-version": "2023-06-01"} if anthropic else None)
    eq(s, 200, "GET /v1/models: %r" % d[:300])
    return [m["id"] for m in json.loads(d)["data"]]


@test(timeout=120)
def models_from_the_providers_lists_and_a_refused_key(ctx):
    # The quickstart's own configuration: globs only. Once the prober has
    # read each provider's list, /v1/models holds the models those globs
    # admit (Anthropic's list read page by page); a key the provider starts
    # refusing (401 to the probe) takes it out, with the reason in /health
    # and in the admin API, and its models leave the list.
    mo, ma = Mock(ctx.work, "ml0"), Mock(ctx.work, "ml1")
    force(mo)
    force(ma, "models_page=1")
    os.makedirs(os.path.join(ctx.work, "ml"), exist_ok=True)
    gw = Gateway(os.path.join(ctx.work, "ml"),
                 config([("ml0", mo.port, 100, "openai", ["gpt-*"]),
                         ("ml1", ma.port, 100, "anthropic", ["claude-*"])], "priority",
                        health_check_enabled=True, health_check_seconds=1),
                 processes=PROCESSES, threads=THREADS, admin=True)
    gw.start()
    try:
        want = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"]
        wait_for(lambda: model_ids(gw)[:4] == want, 15, "the providers' own models listed")
        ids = model_ids(gw)
        eq(ids, want + ["openai/gpt-4o-mini", "openai/gpt-4o",
                        "anthropic/claude-sonnet-4-20250514",
                        "anthropic/claude-3-5-haiku-20241022"], "catalog")
        check("text-embedding-3-small" not in ids, "a model the globs do not admit")
        eq(model_ids(gw, anthropic=True), ids, "Anthropic shape, same ids")
        pages = [r["path"] for r in ma.requests() if r["method"] == "GET"]
        check(any("after_id=claude-sonnet-4-20250514" in p for p in pages),
              "Anthropic's second page asked for: %r" % pages[:4])
        # One model, in each client's shape; ids may hold '/'.
        s, _, d = gw.call("GET", "/v1/models/openai/gpt-4o")
        eq((s, json.loads(d)), (200, {"id": "openai/gpt-4o", "object": "model",
                                      "created": json.loads(d).get("created"),
                                      "owned_by": "ml0"}), "retrieve, OpenAI")
        s, _, d = gw.call("GET", "/v1/models/claude-3-5-haiku-20241022",
                          headers={"anthropic-version": "2023-06-01"})
        m = json.loads(d)
        eq((s, m["type"], m["id"], m["display_name"]),
           (200, "model", "claude-3-5-haiku-20241022", "claude-3-5-haiku-20241022"),
           "retrieve, Anthropic: %r" % d)
        s, _, d = gw.call("GET", "/v1/models/gpt-nope")
        eq((s, json.loads(d)["error"]["code"]), (404, "model_not_found"), "unknown, OpenAI")
        s, _, d = gw.call("GET", "/v1/models/gpt-nope", headers={"anthropic-version": "2023-06-01"})
        eq((s, json.loads(d)["type"], json.loads(d)["error"]["type"]),
           (404, "error", "not_found_error"), "unknown, Anthropic: %r" % d)
        eq(gw.call("GET", "/v1/models/openai/gpt-4o", key="wrong")[0], 401, "retrieve needs a key")
        # Paths match exactly.
        for path in ("/metrics/", "/health/", "/v1/models/", "/v1/chat/completions/"):
            eq(gw.call("GET", path)[0], 404, path)
        eq(gw.call("GET", "/metrics")[0], 200, "/metrics itself")
        # The OpenAI provider's key is revoked: its probe gets 401.
        force(mo, "models_status=401")

        def refused():
            h = json.loads(gw.call("GET", "/health", key=ADMIN_KEY)[2])
            x = {v["name"]: v for v in h["providers"]}
            return x["ml0"]["reason"] == "auth_rejected" and x
        x = wait_for(refused, 10, "ml0 out with reason auth_rejected")
        eq((x["ml0"]["healthy"], x["ml0"]["usable"]), (False, False), "ml0 out of the rotation")
        eq((x["ml1"]["healthy"], x["ml1"]["reason"]), (True, "none"), "ml1 untouched")
        s, _, d = gw.call("GET", "/admin/providers", key=ADMIN_KEY)
        eq(s, 200, "admin listing: %r" % d[:300])
        rows = {p["name"]: p for p in json.loads(d)["data"]}
        eq((rows["ml0"]["healthy"], rows["ml0"]["health_reason"]), (False, "auth_rejected"),
           "admin listing of ml0")
        eq(rows["ml1"]["health_reason"], "none", "admin listing of ml1")
        # No list any more for ml0 and no literal names: none of its models.
        ids = model_ids(gw)
        check(not any(i.startswith("gpt-") or i.startswith("openai/") for i in ids),
              "ml0's models gone: %r" % ids)
        # The key works again: back in, list back.
        force(mo)
        wait_for(lambda: "gpt-4o" in model_ids(gw), 10, "ml0's models back")
        check_log_clean("fcgi.log", gw.log_text())
    finally:
        gw.stop()
        mo.stop()
        ma.stop()


def metric(gw, name):
    s, _, d = gw.call("GET", "/metrics")
    eq(s, 200, "/metrics")
    m = re.search(r"^%s (\d+)$" % name, d.decode(), re.M)
    return int(m.group(1)) if m else None


def in_flight(gw):
    h = json.loads(gw.call("GET", "/health", key=ADMIN_KEY)[2])
    return {v["name"]: v["in_flight"] for v in h["providers"]}


def streams_through(gw, n):
    """Starts `n` streams; returns their threads and a list that holds each
    one's outcome when it is done (a stream cut by a kill is an exception)."""
    out = []

    def one(i):
        try:
            out.append(ask(gw, "s%d" % i, stream=True)[0])
        except Exception as e:  # noqa: BLE001: cut by the kill
            out.append(repr(e))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, out


@test(timeout=180)
def a_killed_worker_gives_back_what_it_held(ctx):
    # 28 streams of 3 s over two providers; one worker is SIGKILLed while it
    # holds some of them. Which process takes a connection depends on the
    # order the kernel keeps the idle workers in, so a worker may hold none:
    # with 28 of the pool's 32 threads busy, every process holds at least 4.
    # The streams gauge and both providers' in-flight counts must come back
    # to 0 (what the dead process held is given back), and least-used must
    # then share the traffic again: a count left behind would keep that
    # provider out of it for good. Then the whole pool is killed mid-stream
    # and started again on the same shared state.
    p = Pool(ctx, "kw", [100, 100], "least-used")
    gw = p.gw
    try:
        for m in p.mocks:
            force(m, "events=20,delay_ms=150")
        total = PROCESSES * THREADS - 4  # 4 threads left for /metrics and /health
        threads, out = streams_through(gw, total)
        # the two counts move a moment apart while streams start: a moment
        # when all are under way and both agree
        def under_way():
            streams = metric(gw, "antigateway_streams_in_flight") or 0
            return streams == total and sum(in_flight(gw).values()) == streams
        wait_for(under_way, 15, "streams under way, in flight = streams")
        victim = gw.pool_processes()[0]
        os.kill(victim, signal.SIGKILL)
        for t in threads:
            t.join(60)
        eq(len(out), total, "every stream ended")
        cut = [o for o in out if o != 200]
        check(0 < len(cut) <= THREADS, "streams cut by the kill: %d" % len(cut))
        wait_for(lambda: metric(gw, "antigateway_streams_in_flight") == 0, 15,
                 "streams gauge back to 0")
        eq(in_flight(gw), {"kw0": 0, "kw1": 0}, "in flight back to 0")
        wait_for(lambda: victim not in gw.pool_processes() and len(gw.pool_processes()) == PROCESSES,
                 15, "multiwatch replaced the worker")
        for m in p.mocks:
            force(m)
        got = many(gw, 100, 8)
        eq(sorted(set(s for s, _, _ in got)), [200], "statuses")
        shares = [sum(1 for _, who, _ in got if who == m.name) for m in p.mocks]
        check(min(shares) >= 20, "least-used shares both providers: %r of 100" % shares)

        # The whole pool killed mid-stream: nobody is left to notice, the
        # pool started again on the same state file gives it all back.
        for m in p.mocks:
            force(m, "events=20,delay_ms=150")
        threads, out = streams_through(gw, 16)
        wait_for(lambda: (metric(gw, "antigateway_streams_in_flight") or 0) >= 12, 15,
                 "streams under way again")
        workers, mw = gw.pool_processes(), gw.pool_pid()
        os.kill(mw, signal.SIGKILL)
        for w in workers:
            os.kill(w, signal.SIGKILL)
        for t in threads:
            t.join(60)
        wait_for(lambda: not any(os.path.exists("/proc/%d" % w) for w in workers + [mw]), 15,
                 "the old pool gone")
        gw.restart_pool(timeout=15)
        eq(metric(gw, "antigateway_streams_in_flight"), 0, "streams gauge after a restart")
        eq(in_flight(gw), {"kw0": 0, "kw1": 0}, "in flight after a restart")
        for m in p.mocks:
            force(m)
        got = many(gw, 100, 8)
        shares = [sum(1 for _, who, _ in got if who == m.name) for m in p.mocks]
        check(min(shares) >= 20, "least-used after a restart: %r of 100" % shares)
    finally:
        p.close()


def main():
    why = pool_tools_missing()
    if why:
        return bail(why)
    ctx = Ctx()
    ctx.work = make_workdir()
    failed = 1
    try:
        failed = run_all(ctx)
    finally:
        clean_up_workdir(ctx.work, failed == 0)
    return exit_code(failed)


if __name__ == "__main__":
    sys.exit(main())

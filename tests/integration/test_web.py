#!/usr/bin/env python3
"""The gateway behind each shipped web server config: the same subset of the
integration suite (test_gateway.py's tests for streaming, client aborts, large
bodies, both key headers, relayed errors, concurrency and a graceful pool
stop) plus the web UI, the admin app, pings on a quiet stream, a chunked
upload, a pool restart and (Apache) its locks, run through the server named
on the command line:
    test_web.py lighttpd|apache|caddy|nginx|fcgid
fcgid is Apache + mod_fcgid from deploy/shared-hosting/, run wholly as an
unprivileged user from a folder it owns, with mod_fcgid spawning the app."""

import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_gateway as tg  # noqa: E402  (registers its tests; the subset is kept below)
from harness import (CLIENT_KEY, POOL, Gateway, bail, chat, check, directive, eq,  # noqa: E402
                     process_gone, refused_port, run_suite, sse_events, suite_setup, test, wait_for)

# test_gateway.py's tests that depend on the web server in front.
SUBSET = ("openai_stream_events_arrive_as_sent", "anthropic_stream_keeps_every_event",
          "client_disconnect_stops_upstream", "one_megabyte_body_passes_intact",
          "client_keys_are_checked", "upstream_error_status_body_and_retry_after",
          "bad_input_gets_protocol_shaped_errors", "fifty_concurrent_streams_complete",
          "graceful_stop_finishes_streams_in_flight")
# What only a pool under spawn-fcgi + multiwatch has (mod_fcgid runs none).
POOL_TESTS = ("graceful_stop_finishes_streams_in_flight", "pool_restart_leaves_no_503_window",
              "orphaned_workers_are_found_and_stopped")
harness._tests[:] = [t for t in harness._tests if t[0] in SUBSET]

ADMIN_KEY = tg.GW_ADMIN_KEY
UI_INDEX = b"<!doctype html><title>AntiGateway</title><div id=app></div>\n"
UI_ASSET = b"console.log('antigateway ui');\n"


@test()
def bearer_and_x_api_key_reach_the_app(ctx):
    s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"), auth="bearer")
    eq(s, 200, "Authorization: Bearer")
    s, _, d = ctx.gw.call("POST", "/v1/messages", body=tg.messages("x"), auth="x-api-key")
    eq(s, 200, "x-api-key")
    eq(json.loads(d)["type"], "message", "an Anthropic answer")


@test()
def chunked_upload_arrives_whole(ctx):
    # A body sent without Content-Length (chunked, as HTTP/2 clients and
    # streaming uploads do): the server must give the app all of it.
    ctx.openai.reset()
    body = json.dumps(chat("c" * (600 * 1024))).encode()

    def pieces():
        for i in range(0, len(body), 64 * 1024):
            yield body[i:i + 64 * 1024]
    c = ctx.gw.conn()
    try:
        c.request("POST", "/v1/chat/completions", body=pieces(), encode_chunked=True,
                  headers={"Authorization": "Bearer " + CLIENT_KEY,
                           "Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        r = c.getresponse()
        data = r.read()
    finally:
        c.close()
    eq(r.status, 200, "status: %r" % data[:200])
    got = tg.body_of(tg.last_request(ctx.openai, "/v1/chat/completions"))
    eq(len(got), len(body), "bytes the upstream got")
    eq(got, body, "the body")


@test()
def pings_flow_while_the_upstream_is_silent(ctx):
    # The upstream sends its first event, then says nothing for 3 s; the
    # app pings every second (sse_ping_seconds = 1) and each ping must reach
    # the client when sent, not with the next event.
    status, h, lines = ctx.gw.stream("/v1/chat/completions", chat(
        directive(events=1, delay_ms=3000), stream=True))
    eq(status, 200, "status")
    data = [t for t, raw in lines if raw.startswith(b"data: {")]
    pings = [t for t, raw in lines if raw.startswith(b": ping") and data[1] < t < data[2]]
    check(len(pings) >= 2, "pings in the silence: %d (%r)" % (
        len(pings), [raw[:30] for _, raw in lines]))
    # Held back, they would arrive together with the next event.
    marks = [data[1]] + pings
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    check(all(0.5 < g < 1.6 for g in gaps), "seconds between the event and each ping: %r" % gaps)
    eq(sse_events(lines)[-1], (None, "[DONE]"), "the stream ended cleanly")


@test(timeout=40)
def client_disconnect_stops_upstream_behind_caddy(ctx):
    # Caddy 2.6 closes the FastCGI connection only after about five more
    # events have failed to reach a departed client (measured: 5-6 writes,
    # whatever their spacing), so the app, which learns of it when its next
    # write fails, stops the upstream that many events later. The same
    # check as client_disconnect_stops_upstream with events 100 ms apart,
    # bounded by event count as well.
    lag, sent = tg.leave_mid_stream(ctx, 100)
    check(lag < 1.0, "upstream stopped %.2fs after the client left" % lag)
    check(sent <= 10, "events sent: %d" % sent)


@test()
def admin_app_answers_under_admin(ctx):
    s, _, d = ctx.gw.call("GET", "/admin/providers", key=ADMIN_KEY)
    eq(s, 200, "with the admin key: " + d.decode(errors="replace")[:200])
    check(isinstance(json.loads(d), (list, dict)), "JSON")
    s, _, _ = ctx.gw.call("GET", "/admin/providers", key=CLIENT_KEY)
    eq(s, 401, "a client key is not the admin key")
    s, _, _ = ctx.gw.call("GET", "/admin/providers", key=None)
    eq(s, 401, "no key")


def ui_fixture(ctx):
    ui = os.path.join(ctx.gw.www, "ui")
    os.makedirs(os.path.join(ui, "assets"), exist_ok=True)
    with open(os.path.join(ui, "index.html"), "wb") as f:
        f.write(UI_INDEX)
    with open(os.path.join(ui, "assets", "index-3f9a1c2b.js"), "wb") as f:
        f.write(UI_ASSET)
    if ctx.gw.server == "fcgid" and ctx.gw.as_root:
        for p in (ui, os.path.join(ui, "assets"), os.path.join(ui, "index.html"),
                  os.path.join(ui, "assets", "index-3f9a1c2b.js")):
            os.chown(p, *harness.site_owner())


@test()
def ui_files_spa_fallback_and_cache(ctx):
    ui_fixture(ctx)
    s, h, d = ctx.gw.call("GET", "/ui/", key=None)
    eq(s, 200, "/ui/")
    eq(d, UI_INDEX, "/ui/ is index.html")
    check(h.get("content-type", "").startswith("text/html"), h.get("content-type"))
    check("max-age=31536000" not in h.get("cache-control", ""), "index.html is not cached long")
    s, _, d = ctx.gw.call("GET", "/ui/index.html", key=None)
    eq((s, d), (200, UI_INDEX), "/ui/index.html")
    for route in ("/ui/keys", "/ui/providers/mock-openai/edit"):
        s, h, d = ctx.gw.call("GET", route, key=None)
        eq((s, d), (200, UI_INDEX), "client-side route %s falls back to index.html" % route)
    s, h, d = ctx.gw.call("GET", "/ui/assets/index-3f9a1c2b.js", key=None)
    eq((s, d), (200, UI_ASSET), "hashed asset")
    cc = h.get("cache-control", "")
    check("max-age=31536000" in cc and "immutable" in cc, "asset cache-control: %r" % cc)
    s, _, d = ctx.gw.call("GET", "/ui/assets/missing-00000000.js", key=None)
    eq(s, 404, "a missing asset is 404, not index.html")
    s, h, _ = ctx.gw.call("GET", "/ui", key=None)
    check(s in (301, 302) and h.get("location", "").endswith("/ui/"), "/ui redirects: %d %r"
          % (s, h.get("location")))


@test(timeout=60)
def pool_restart_leaves_no_503_window(ctx):
    t, result = tg.stream_in_background(ctx, 10)
    time.sleep(0.4)
    ctx.gw.stop_pool()
    # While the pool is down the server answers an error (not a hang).
    s = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"), timeout=10)[0]
    check(s in (502, 503), "with the pool down: %d" % s)
    ctx.gw.start_pool()
    back = time.monotonic()
    # A server that keeps the backend disabled after a failed connect (Apache's
    # retry=60 default) would answer 503 here for a minute; lighttpd's
    # disable-time is 1 s, checked on its once-a-second timer.
    wait_for(lambda: ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"))[0] == 200,
             6, "a 200 after the pool came back")
    took = time.monotonic() - back
    check(took < 4.0, "first 200 %.2fs after the pool was back" % took)
    t.join(20)
    eq(result.get("status"), 200, "stream status")
    eq(result["events"][-1], (None, "[DONE]"), "the stream in flight completed")


@test()
def apache_locks_are_not_fcntl(ctx):
    # With fcntl locks, the kernel's deadlock check counts a threaded child as
    # one owner and answers EDEADLK with no deadlock; mod_fcgid then ends the
    # child with every stream it serves. Asked of Apache itself, from the
    # shipped config (the failure it prevents is too rare to wait for).
    cmd = [a for a in ctx.gw.web_command() if a != "-DFOREGROUND"]
    i = cmd.index("-f")
    out = subprocess.run(cmd[:i] + ["-t", "-D", "DUMP_RUN_CFG"] + cmd[i:], env=ctx.gw.env,
                         capture_output=True, text=True)
    eq(out.returncode, 0, "apache2 -t: " + out.stderr[-500:])
    mutexes = [ln for ln in out.stdout.splitlines() if ln.startswith("Mutex ")]
    check(any("mechanism=" in ln for ln in mutexes), "Apache lists its mutexes: %r" % out.stdout)
    for ln in mutexes:
        check(not re.search(r"mechanism=(fcntl|flock|file)", ln), "a file lock: " + ln)


@test(timeout=60)
def fcgid_graceful_restart_finishes_the_stream(ctx):
    # mod_fcgid has no pool to restart: Apache's graceful restart (SIGUSR1)
    # makes it stop its processes (SIGTERM); the one serving a stream must
    # finish it first, and new processes serve the next requests.
    t, result = tg.stream_in_background(ctx, 15)
    time.sleep(0.5)
    before = app_processes(ctx)
    check(before, "mod_fcgid runs antigw-fcgi processes")
    os.kill(ctx.gw.lighttpd.pid, signal.SIGUSR1)
    t.join(20)
    eq(result.get("status"), 200, "stream status")
    eq(result["events"][-1], (None, "[DONE]"), "the stream in flight completed")
    wait_for(lambda: ctx.gw.call("POST", "/v1/chat/completions", body=chat("x"))[0] == 200,
             10, "a 200 after the restart")
    wait_for(lambda: all(process_gone(p) for p in before), 10, "the old processes to exit")


def app_processes(ctx):
    """The pids of the antigw-fcgi processes mod_fcgid started for ctx.gw."""
    binary = os.path.join(ctx.gw.var, "bin", "antigw-fcgi").encode()
    pids = []
    for d in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                if f.read().split(b"\0")[0] == binary and not process_gone(int(d)):
                    pids.append(int(d))
        except (OSError, ValueError):
            continue
    return pids


@test(timeout=60)
def orphaned_workers_are_found_and_stopped(ctx):
    env = ctx.gw.env
    leader = ctx.gw.pool_pid()
    workers = ctx.gw.pool_processes()
    eq(len(workers), tg.PROCESSES, "workers")
    os.kill(leader, signal.SIGKILL)
    wait_for(lambda: process_gone(leader), 5, "multiwatch gone")
    check(not any(process_gone(w) for w in workers), "the workers live on")
    st = subprocess.run([POOL, "status"], env=env, capture_output=True, text=True)
    check(st.returncode != 0 and "orphaned" in st.stdout + st.stderr, "status: %r" % (st,))
    subprocess.run([POOL, "stop"], env=env, check=True, timeout=40)
    wait_for(lambda: all(process_gone(w) for w in workers), 5, "the orphans to exit")
    ctx.gw.restart_pool()


def not_behind(server):
    """The names of the tests that do not apply behind `server`."""
    drop = set()
    if server == "fcgid":
        drop.update(POOL_TESTS)
    else:
        drop.add("fcgid_graceful_restart_finishes_the_stream")
    if server not in ("apache", "fcgid"):
        drop.add("apache_locks_are_not_fcntl")
    if server != "lighttpd":  # the pool's own behaviour needs one run only
        drop.add("orphaned_workers_are_found_and_stopped")
    # Caddy notices a departed client later: its own bound.
    drop.add("client_disconnect_stops_upstream" if server == "caddy"
             else "client_disconnect_stops_upstream_behind_caddy")
    return drop


def main():
    server = sys.argv[1] if len(sys.argv) > 1 else "lighttpd"
    why = harness.server_missing(server)
    if why:
        print("1..0 # SKIP " + why)
        return 0
    harness._tests[:] = [t for t in harness._tests if t[0] not in not_behind(server)]
    ctx = tg.Ctx()
    why = suite_setup(ctx)
    if why:
        return bail(why)
    dead = refused_port()
    # Quiet upstreams get 10 s here (the pings test waits 3 s for one).
    text = tg.config(ctx.openai.port, ctx.anthropic.port, dead.getsockname()[1])
    check("idle_timeout_seconds = 2;" in text, "the idle timeout is where expected")
    text = text.replace("idle_timeout_seconds = 2;", "idle_timeout_seconds = 10;")
    ctx.gw = Gateway(ctx.work, text,
                     processes=tg.PROCESSES, threads=tg.THREADS, admin=True, server=server)
    return run_suite(ctx, stop_after=(ctx.openai, ctx.anthropic, dead))


if __name__ == "__main__":
    sys.exit(main())

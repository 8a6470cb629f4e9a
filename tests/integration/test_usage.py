#!/usr/bin/env python3
"""Integration tests of the usage records' durability (tenant/usage.h): the
real lighttpd, the real antigw-fcgi pool under spawn-fcgi + multiwatch, a real
SQLite file, the mock upstreams.

Every call carries its own number in the mock's output_tokens, so each usage
row says which response it belongs to. The guarantees checked: workers
killed with SIGKILL mid-run lose no row of a completed response; every row is
written exactly once, also when the drainer is killed again and again while it
works; the database locked by another process for 30 s and a full disk (a
small tmpfs) lose no row while clients keep getting answers, and the rows
arrive once the database takes them; a full ring answers new model calls with
503 in the OpenAI and the Anthropic shape (/health and /metrics say why),
while `usage.required = false` serves them and counts what it could not
record; the WAL stays under its limit through a sustained run; the ring
lives in /dev/shm, records that waited reach its image on the disk, and a
ring file removed under the pool (systemd-logind's RemoveIPC) restarts the
pool onto a new one without losing a row.
"""

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
from harness import (CLIENT_KEY, SANITIZER_MARKS, Gateway, Skip, bail, chat, check,  # noqa: E402
                     check_log_clean, directive, eq, make_workdir, messages,
                     remove_workdir, run_suite, standard_config, suite_setup, test,
                     usage_ring_path, wait_for)

PROCESSES = 4
THREADS = 16
ADMIN_KEY = "agw-usage-admin-key-0123456789abcdef"
WAL_RESET_MIB = 1      # usage.wal_reset_mib of wal_stays_under_its_limit's pool
WAL_OVERSHOOT = 4 << 20  # what a batch may add before the drainer's reset
RESETS = 3


class Ctx:
    pass


def config(ctx, db="antigw.db", **usage):
    cfg = standard_config(ctx.openai.port, ctx.anthropic.port, threads=THREADS)
    cfg = cfg.replace('auth: { api_key = "%s"; };' % CLIENT_KEY,
                      'auth: { api_key = "%s"; admin_key = "%s"; };' % (CLIENT_KEY, ADMIN_KEY))
    cfg = cfg.replace('database: { path = "antigw.db"; };', 'database: { path = "%s"; };' % db)
    cfg += "defaults: { health_check_enabled = false; };\n"
    if usage:
        cfg += "usage: { %s };\n" % " ".join(
            "%s = %s;" % (k, ("true" if v else "false") if isinstance(v, bool) else v)
            for k, v in usage.items())
    return cfg


def db_path(gw, name="antigw.db"):
    return os.path.join(gw.var, name)


def health(gw):
    s, _, d = gw.call("GET", "/health", key=ADMIN_KEY)
    return s, json.loads(d)


def metric(gw, name):
    s, _, d = gw.call("GET", "/metrics")
    eq(s, 200, "/metrics")
    m = re.search(r"^%s (\d+)$" % name, d.decode(), re.M)
    check(m, "%s in /metrics" % name)
    return int(m.group(1))


def drained(gw):
    return metric(gw, "antigateway_usage_ring_records") == 0


def rows_by_tag(path, lo, hi):
    """{output_tokens: number of rows} for rows tagged lo <= tag < hi."""
    c = sqlite3.connect(path, timeout=30)
    try:
        return dict(c.execute("SELECT output_tokens, count(*) FROM usage WHERE output_tokens >= ?"
                              " AND output_tokens < ? GROUP BY output_tokens", (lo, hi)))
    finally:
        c.close()


def one_call(gw, tag, kind, results, timeout=60, delay_ms=0):
    """A model call tagged `tag` (its row's output_tokens), answered after
    `delay_ms`; results[tag] gets True when its whole answer arrived."""
    d = directive(output_tokens=tag, events=3, first_delay_ms=delay_ms)
    try:
        if kind == "stream":
            s, _, data = gw.call("POST", "/v1/chat/completions",
                                 body=chat(d, stream=True), timeout=timeout)
            ok = s == 200 and data.rstrip().endswith(b"data: [DONE]")
        elif kind == "anthropic":
            s, _, data = gw.call("POST", "/v1/messages", body=messages(d), auth="x-api-key",
                                 timeout=timeout)
            ok = s == 200 and json.loads(data)["content"][0]["text"] == "Hello0 Hello1 Hello2"
        else:
            s, _, data = gw.call("POST", "/v1/chat/completions", body=chat(d), timeout=timeout)
            ok = s == 200 and json.loads(data)["choices"][0]["message"]["content"] == \
                "Hello0 Hello1 Hello2"
    except (OSError, ValueError, KeyError, IndexError):
        ok = False
    results[tag] = ok


KINDS = ("json", "stream", "anthropic")


def load(gw, first, n, workers, results, pace=0.0, delay_ms=0):
    """n calls tagged first..first+n-1 from `workers` client threads."""
    nxt = [first]
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                tag = nxt[0]
                if tag >= first + n:
                    return
                nxt[0] += 1
            one_call(gw, tag, KINDS[tag % 3], results, delay_ms=delay_ms)
            if pace:
                time.sleep(pace)
    ts = [threading.Thread(target=worker) for _ in range(workers)]
    for t in ts:
        t.start()
    return ts


def check_rows(gw, results, lo, hi, path=None):
    """Every completed call of lo..hi-1 has exactly one row, and no call has
    two."""
    wait_for(lambda: drained(gw), 60, "the usage ring to drain")
    got = rows_by_tag(path or db_path(gw), lo, hi)
    done = [t for t in range(lo, hi) if results.get(t)]
    missing = [t for t in done if got.get(t, 0) == 0]
    twice = sorted(t for t, k in got.items() if k > 1)
    eq(missing, [], "rows of completed responses missing")
    eq(twice, [], "calls with more than one row")
    return done


def drainer_pid(gw):
    return health(gw)[1]["usage"]["drainer_pid"]


def ring_path(gw):
    """The pool's ring in /dev/shm."""
    return usage_ring_path(db_path(gw))


def image_records(path):
    """How many READY records the ring image at `path` (state/ring.h's
    layout) holds between its tail and head."""
    with open(path, "rb") as f:
        data = f.read()
    check(data[:8] == b"!AGWRNG1", "%s is a ring image" % path)
    slots = struct.unpack_from("<I", data, 16)[0]
    head, tail = struct.unpack_from("<Q", data, 128)[0], struct.unpack_from("<Q", data, 192)[0]
    ready = 0
    for seq in range(tail, head):
        state = struct.unpack_from("<Q", data, 4096 + (seq % slots) * 512)[0]
        ready += state == (seq << 2 | 2)
    return ready


@test(timeout=120)
def workers_killed_mid_run_lose_no_row(ctx):
    gw = ctx.gw
    results = {}
    # Calls of 50 ms and more: every process has some in flight when it dies.
    ts = load(gw, 100000, 1500, 48, results, delay_ms=50)
    killed = []
    for _ in range(3):
        time.sleep(0.5)
        kids = gw.pool_processes()
        victim = kids[len(killed) % len(kids)]
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)
    for t in ts:
        t.join()
    wait_for(lambda: len(gw.pool_processes()) == PROCESSES, 20, "multiwatch to restart the children")
    done = check_rows(gw, results, 100000, 101500)
    check(len(done) >= 1200, "most calls completed: %d of 1500" % len(done))
    check(len(done) < 1500, "the kills cut calls in flight")
    print("# %d of 1500 calls completed, %d cut by %d kills; every completed one has its row"
          % (len(done), 1500 - len(done), len(killed)))


@test(timeout=150)
def drainer_killed_repeatedly_writes_every_row_once(ctx):
    # A pool of its own: children killed within 10 s of their start count
    # against multiwatch's retries ("died to often"), which is the test's
    # doing, not a crash; its log is checked for sanitizer reports only.
    work = make_workdir()
    gw = Gateway(work, config(ctx), processes=PROCESSES, threads=THREADS)
    gw.start()
    try:
        drainer_kills(gw)
        check_log_clean("the drainer-kill pool's log", gw.log_text(), SANITIZER_MARKS)
    finally:
        gw.stop()
    remove_workdir(work)


def drainer_kills(gw):
    results = {}
    ts = load(gw, 200000, 3000, 24, results)
    kills = 0
    before = metric(gw, "antigateway_usage_rows_already_stored_total")
    end = time.time() + 60
    while any(t.is_alive() for t in ts) and time.time() < end and kills < 6:
        pid = drainer_pid(gw)
        if pid:
            time.sleep(0.3)
            try:
                os.kill(pid, signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
            # A follower takes over within AGW_USAGE_ELECT_MS.
            wait_for(lambda: drainer_pid(gw) not in (0, pid), 10, "another drainer")
    for t in ts:
        t.join()
    check(kills >= 3, "drainers killed: %d" % kills)
    done = check_rows(gw, results, 200000, 203000)
    again = metric(gw, "antigateway_usage_rows_already_stored_total") - before
    print("# %d drainers killed during %d calls; %d records were stored again by a successor "
          "and recognised" % (kills, len(done), again))


@test(timeout=150)
def database_locked_for_30_s_loses_no_row(ctx):
    gw = ctx.gw
    wait_for(lambda: drained(gw), 30, "an empty ring")
    errors_before = metric(gw, "antigateway_usage_drainer_errors_total")
    locker = sqlite3.connect(db_path(gw), timeout=30, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    locked_at = time.time()
    try:
        results = {}
        ts = load(gw, 300000, 600, 6, results, pace=0.02)
        for t in ts:
            t.join()
        eq(sum(1 for v in results.values() if v), 600, "calls answered while the database "
                                                       "is locked")
        check(metric(gw, "antigateway_usage_ring_records") > 0, "records wait in the ring")
        s, h = health(gw)
        eq(s, 200, "still healthy: the ring has room")
        time.sleep(max(0, 30 - (time.time() - locked_at)))
        check(metric(gw, "antigateway_usage_drainer_errors_total") > errors_before,
              "the drainer's failed commits are counted")
        eq(health(gw)[1]["usage"]["last_error"], "database is locked", "/health says why")
        eq(rows_by_tag(db_path(gw), 300000, 300600), {}, "nothing stored while locked")
        # They wait in the ring in memory, and, having waited more than
        # 5 s, in its image on the disk too: what a power loss would leave.
        check(os.path.exists(ring_path(gw)), "the ring lives in /dev/shm")
        check(image_records(db_path(gw) + ".usage.image") >= 600,
              "the waiting records are in the image on the disk")
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    check_rows(gw, results, 300000, 300600)
    eq(health(gw)[1]["usage"]["last_error"], None, "the error clears")


@test(timeout=120)
def removed_ring_restarts_the_pool_and_loses_no_row(ctx):
    # systemd-logind removes a user's /dev/shm files when their last session
    # ends: the pool restarts onto a new ring, the last process on the old
    # one stores what it held.
    gw = ctx.gw
    wait_for(lambda: drained(gw), 30, "an empty ring")
    before = set(gw.pool_processes())
    ring = ring_path(gw)
    old_inode = os.stat(ring).st_ino
    results = {}
    ts = load(gw, 700000, 900, 12, results, pace=0.01, delay_ms=20)
    time.sleep(1)
    os.unlink(ring)
    for t in ts:
        t.join()
    wait_for(lambda: len(gw.pool_processes()) == PROCESSES and
             not before & set(gw.pool_processes()), 30, "every process restarted")
    done = check_rows(gw, results, 700000, 700900)
    check(len(done) >= 800, "most calls completed: %d of 900" % len(done))
    check(os.stat(ring).st_ino != old_inode, "a new ring in its place")
    check("ring's file was removed" in gw.log_text(), "the log says why the pool restarted")
    print("# %d of 900 calls completed across the restart; every one has its row" % len(done))


def mount_tmpfs(where, size):
    os.makedirs(where, exist_ok=True)
    if os.geteuid() != 0:
        raise Skip("mounting a small tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", where],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise Skip("cannot mount a tmpfs for the full-disk test: %s" % r.stderr.strip())


def fill(path):
    """Writes zeros into `path` until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for n in (64 << 10, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * n)
            except OSError:
                pass
    finally:
        os.close(fd)


@test(timeout=150)
def full_disk_loses_no_row(ctx):
    work = make_workdir()
    mnt = os.path.join(work, "var", "disk")
    try:
        mount_tmpfs(mnt, "12m")
    except Skip:
        remove_workdir(work)
        raise
    gw = Gateway(work, config(ctx, db="disk/antigw.db", ring_records=4096), processes=2,
                 threads=8)
    try:
        gw.start()
        results = {}
        for t in load(gw, 400000, 30, 4, results):
            t.join()
        check_rows(gw, results, 400000, 400030, db_path(gw, "disk/antigw.db"))
        filler = os.path.join(mnt, "filler")
        fill(filler)
        errors_before = metric(gw, "antigateway_usage_drainer_errors_total")
        for t in load(gw, 400030, 300, 6, results):
            t.join()
        eq(sum(1 for t in range(400030, 400330) if results.get(t)), 300,
           "calls answered on a full disk")
        wait_for(lambda: metric(gw, "antigateway_usage_drainer_errors_total") > errors_before,
                 20, "the drainer to fail on the full disk")
        check(metric(gw, "antigateway_usage_ring_records") > 0, "records wait in the ring")
        eq(health(gw)[1]["usage"]["last_error"], "database or disk is full", "/health says why")
        os.unlink(filler)
        check_rows(gw, results, 400000, 400330, db_path(gw, "disk/antigw.db"))
        gw.check_logs_clean()
    finally:
        gw.stop()
        subprocess.run(["umount", "-l", mnt])
        remove_workdir(work)


def busy_shape(status, data, proto):
    eq(status, 503, "status")
    doc = json.loads(data)
    if proto == "openai":
        eq(doc["error"]["code"], "server_busy", "OpenAI error code")
        check("usage" in doc["error"]["message"], doc)
    else:
        eq(doc["type"], "error", "Anthropic error shape")
        eq(doc["error"]["type"], "overloaded_error", "Anthropic error type")
        check("usage" in doc["error"]["message"], doc)


@test(timeout=120)
def full_ring_refuses_calls_in_both_shapes(ctx):
    work = make_workdir()
    gw = Gateway(work, config(ctx, ring_records=16), processes=1, threads=4)
    gw.start()
    locker = None
    try:
        results = {}
        for t in load(gw, 500000, 4, 2, results):
            t.join()
        check_rows(gw, results, 500000, 500004)
        locker = sqlite3.connect(db_path(gw), timeout=30, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        # 7/8 of 16: the 15th record closes the door for new calls.
        for tag in range(500004, 500018):
            one_call(gw, tag, KINDS[tag % 3], results)
            check(results[tag], "call %d served" % tag)
        s, _, d = gw.call("POST", "/v1/chat/completions", body=chat("x"))
        busy_shape(s, d, "openai")
        s, h, d = gw.call("POST", "/v1/messages", body=messages("x"), auth="x-api-key")
        busy_shape(s, d, "anthropic")
        eq(h.get("retry-after"), "1", "Retry-After")
        s, doc = health(gw)
        eq(s, 503, "/health")
        eq(doc["status"], "unavailable", "/health status")
        check("usage ring is full" in doc["reason"], doc)
        eq(doc["usage"]["accepting"], False, "/health usage.accepting")
        eq(gw.call("GET", "/health", key=None)[:1], (503,), "/health without the admin key")
        eq(metric(gw, "antigateway_usage_rejected_total"), 2, "rejected calls counted")
        eq(metric(gw, "antigateway_usage_ring_records"), 14, "ring fill")
        eq(metric(gw, "antigateway_usage_ring_capacity"), 16, "ring capacity")
        locker.execute("ROLLBACK")
        locker.close()
        locker = None
        wait_for(lambda: drained(gw), 30, "the ring to drain")
        eq(health(gw)[0], 200, "/health once drained")
        one_call(gw, 500018, "json", results)
        check(results[500018], "served again")
        check_rows(gw, results, 500000, 500019)
        gw.check_logs_clean()
    finally:
        if locker:
            locker.close()
        gw.stop()
        remove_workdir(work)


@test(timeout=120)
def usage_not_required_serves_and_counts_drops(ctx):
    work = make_workdir()
    gw = Gateway(work, config(ctx, ring_records=16, required=False), processes=1, threads=4)
    gw.start()
    locker = sqlite3.connect(db_path(gw), timeout=30, isolation_level=None)
    try:
        wait_for(lambda: drainer_pid(gw), 10, "a drainer")
        locker.execute("BEGIN EXCLUSIVE")
        results = {}
        for tag in range(600000, 600030):
            one_call(gw, tag, KINDS[tag % 3], results)
            check(results[tag], "call %d served" % tag)
        eq(metric(gw, "antigateway_usage_dropped_total"), 14, "records that found no room")
        eq(metric(gw, "antigateway_usage_rejected_total"), 0, "nothing refused")
        eq(health(gw)[0], 200, "/health stays ok")
        locker.execute("ROLLBACK")
        wait_for(lambda: drained(gw), 30, "the ring to drain")
        eq(len(rows_by_tag(db_path(gw), 600000, 600030)), 16, "the records the ring held")
        gw.check_logs_clean()
    finally:
        locker.close()
        gw.stop()
        remove_workdir(work)


@test(timeout=330)
def wal_stays_under_its_limit(ctx):
    # Readers that always hold a snapshot (a dashboard querying usage in a
    # loop, two at once, overlapping) starve PASSIVE checkpoints, so the WAL
    # only grows, unless the drainer's TRUNCATE (which waits for them to move
    # on) resets it. A pool of its own, with usage.wal_reset_mib = 1: how
    # much WAL a row costs depends on how many rows a commit carries (a slow
    # machine batches more of them and writes fewer pages per row), so the
    # run goes on until the watcher has seen the file shrink (only a reset
    # does that) RESETS times, whatever the machine's speed.
    work = make_workdir()
    gw = Gateway(work, config(ctx, wal_reset_mib=WAL_RESET_MIB), processes=PROCESSES,
                 threads=THREADS)
    gw.start()
    try:
        wal_resets_under_load(gw)
        gw.check_logs_clean()
    finally:
        gw.stop()
        remove_workdir(work)


def wal_resets_under_load(gw):
    wal = db_path(gw) + "-wal"
    stop = threading.Event()
    peak = [0]
    grown = [0]
    resets = [0]

    def reader(offset):
        c = sqlite3.connect(db_path(gw), timeout=30, isolation_level=None)
        time.sleep(offset)
        while not stop.is_set():
            c.execute("BEGIN")
            c.execute("SELECT count(*), sum(output_tokens) FROM usage").fetchone()
            time.sleep(0.05)
            c.execute("COMMIT")
        c.close()

    def watch():
        last = 0
        while not stop.is_set():
            try:
                size = os.path.getsize(wal)
            except OSError:
                size = 0
            peak[0] = max(peak[0], size)
            grown[0] += max(0, size - last)
            if size < last:
                resets[0] += 1
            last = size
            time.sleep(0.02)
    helpers = [threading.Thread(target=reader, args=(0,)), threading.Thread(target=reader,
                                                                           args=(0.025,)),
               threading.Thread(target=watch)]
    for t in helpers:
        t.start()
    results = {}
    t0 = time.time()
    first, n = 1000000, 0
    try:
        while n < 20000 or (resets[0] < RESETS and time.time() - t0 < 200):
            ts = load(gw, first + n, 10000, 32, results)
            for t in ts:
                t.join()
            n += 10000
    finally:
        stop.set()
        for t in helpers:
            t.join()
    check_rows(gw, results, first, first + n)
    rows = metric(gw, "antigateway_usage_rows_written_total")
    print("# %d rows in %.1f s; %.1f MiB written to the WAL, which peaked at %.2f MiB and was "
          "reset %d times" % (rows, time.time() - t0, grown[0] / 1048576.0,
                              peak[0] / 1048576.0, resets[0]))
    check(resets[0] >= RESETS, "the WAL was reset %d times under load: %.1f MiB written, peak "
          "%d bytes" % (resets[0], grown[0] / 1048576.0, peak[0]))
    check(peak[0] < (WAL_RESET_MIB << 20) + WAL_OVERSHOOT,
          "the WAL is reset near %d MiB: it peaked at %d bytes" % (WAL_RESET_MIB, peak[0]))


def main():
    ctx = Ctx()
    why = suite_setup(ctx)
    if why:
        return bail(why)
    ctx.gw = Gateway(ctx.work, config(ctx), processes=PROCESSES, threads=THREADS)
    return run_suite(ctx, stop_after=(ctx.openai, ctx.anthropic))


if __name__ == "__main__":
    sys.exit(main())

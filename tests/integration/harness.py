"""The integration harness: real lighttpd from deploy/lighttpd.conf, the real
antigw-fcgi pool under spawn-fcgi + multiwatch (deploy/pool.sh), a real SQLite
file, and mock upstreams on 127.0.0.1 (tests/mock/upstream.py).

Tests are plain functions registered with @test; each runs with a time limit,
and the results are printed as TAP so automake counts every case. Standard
library only: the project's install step provides python3 and nothing else.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

SRCDIR = os.environ.get("ANTIGW_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILDDIR = os.environ.get("ANTIGW_BUILDDIR") or SRCDIR
FCGI_BIN = os.path.join(BUILDDIR, "fcgi-app", "antigw-fcgi")
ADMIN_BIN = os.path.join(BUILDDIR, "admin-cgi", "antigw-admin")
MOCK = os.path.join(SRCDIR, "tests", "mock", "upstream.py")
POOL = os.path.join(SRCDIR, "deploy", "pool.sh")
LIGHTTPD_CONF = os.path.join(SRCDIR, "deploy", "lighttpd.conf")

CLIENT_KEY = "agw-test-client-key-0123456789"
OPENAI_KEY = "sk-provider-openai-secret"
ANTHROPIC_KEY = "sk-ant-provider-secret"

_tests = []


def test(timeout=30):
    def wrap(fn):
        _tests.append((fn.__name__, fn, timeout))
        return fn
    return wrap


class Timeout(Exception):
    pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def lighttpd_bin():
    return shutil.which("lighttpd") or "/usr/sbin/lighttpd"


class Mock:
    """One mock upstream process: tests/mock/upstream.py, or `script` (another
    mock of tests/mock/ taking the same --port/--portfile/--name/--quiet)."""

    def __init__(self, workdir, name, *args, script=MOCK):
        self.name = name
        portfile = os.path.join(workdir, name + ".port")
        self.log = open(os.path.join(workdir, name + ".log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, script, "--port", "0", "--portfile", portfile, "--name", name,
             "--quiet"] + list(args), stdout=self.log, stderr=self.log)
        wait_for(lambda: os.path.exists(portfile), 10, "mock " + name)
        self.port = int(open(portfile).read())

    def get(self, what):
        with urllib.request.urlopen("http://127.0.0.1:%d/_mock/%s" % (self.port, what)) as r:
            return json.loads(r.read())

    def reset(self):
        req = urllib.request.Request("http://127.0.0.1:%d/_mock/reset" % self.port,
                                     data=b"", method="POST")
        urllib.request.urlopen(req).read()

    def requests(self):
        return self.get("requests")

    def stats(self):
        return self.get("stats")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


class Gateway:
    """lighttpd + the antigw-fcgi pool, from the shipped deploy files; with
    admin=True also antigw-admin on its own socket (its config needs
    auth.admin_key)."""

    def __init__(self, workdir, config_text, processes=2, threads=32, admin=False):
        self.var = os.path.join(workdir, "var")
        for d in ("run", "log", "www"):
            os.makedirs(os.path.join(self.var, d), exist_ok=True)
        self.config = os.path.join(self.var, "antigw.cfg")
        with open(self.config, "w") as f:
            f.write(config_text)
        self.port = free_port()
        self.processes = processes
        self.threads = threads
        self.env = dict(os.environ, ANTIGW_VAR=self.var, ANTIGW_BIND="127.0.0.1",
                        ANTIGW_PORT=str(self.port), ANTIGW_BIN=FCGI_BIN,
                        ANTIGW_CONFIG=self.config, ANTIGW_PROCESSES=str(processes),
                        ANTIGW_THREADS=str(threads), ANTIGW_STOP_WAIT="20")
        self.lighttpd = None
        self.admin = admin
        self.admin_env = dict(self.env, ANTIGW_POOL_NAME="admin", ANTIGW_BIN=ADMIN_BIN,
                              ANTIGW_PROCESSES="1", ANTIGW_THREADS="4")

    def start_admin(self):
        subprocess.run([POOL, "start"], env=self.admin_env, check=True)

    def stop_admin(self):
        subprocess.run([POOL, "stop"], env=self.admin_env, check=True)

    def admin_log_text(self):
        with open(os.path.join(self.var, "log", "admin.log"), errors="replace") as f:
            return f.read()

    def start_pool(self):
        subprocess.run([POOL, "start"], env=self.env, check=True)

    def stop_pool(self):
        subprocess.run([POOL, "stop"], env=self.env, check=True)

    def start(self):
        self.start_pool()
        if self.admin:
            self.start_admin()
        self.lighttpd = subprocess.Popen([lighttpd_bin(), "-D", "-f", LIGHTTPD_CONF], env=self.env)

        def up():
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                return c.getresponse().status in (200, 503)
            except OSError:
                return False
        wait_for(up, 15, "gateway on port %d" % self.port)

    def stop(self):
        if self.lighttpd:
            self.lighttpd.terminate()
            try:
                self.lighttpd.wait(10)
            except subprocess.TimeoutExpired:
                self.lighttpd.kill()
        self.stop_pool()
        if self.admin:
            self.stop_admin()

    def pool_pid(self):
        with open(os.path.join(self.var, "run", "pool.pid")) as f:
            return int(f.read())

    def log_text(self):
        with open(os.path.join(self.var, "log", "fcgi.log"), errors="replace") as f:
            return f.read()

    def check_logs_clean(self):
        """Fails when the pool's log, or with admin=True antigw-admin's, holds
        a sanitizer or crash report (check_log_clean)."""
        check_log_clean("the pool's log", self.log_text())
        if self.admin:
            check_log_clean("the admin log", self.admin_log_text())

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def call(self, method, path, body=None, headers=None, key=CLIENT_KEY, auth="bearer",
             timeout=30):
        """One request; returns (status, headers dict lower-cased, body bytes)."""
        h = {}
        if key is not None:
            if auth == "bearer":
                h["Authorization"] = "Bearer " + key
            else:
                h["x-api-key"] = key
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        if isinstance(body, str):
            body = body.encode()
        h.update(headers or {})
        c = self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def stream(self, path, body, headers=None, key=CLIENT_KEY, on_line=None, timeout=30):
        """A streamed request read line by line as it arrives. Returns
        (status, headers, [(arrival_time, raw_line_bytes), ...])."""
        h = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
        h.update(headers or {})
        c = self.conn(timeout)
        lines = []
        try:
            c.request("POST", path, body=json.dumps(body).encode(), headers=h)
            r = c.getresponse()
            read_lines(r, lines, on_line, c)
            return r.status, {k.lower(): v for k, v in r.getheaders()}, lines
        finally:
            c.close()


def read_lines(r, lines, on_line=None, conn=None):
    """Reads the response r line by line as it arrives, appending
    (arrival_time, raw_line_bytes) to `lines`, which so keeps what arrived
    before an exception; stops at the end, or when on_line(line, lines, conn)
    returns False."""
    while True:
        line = r.readline()
        if not line:
            break
        lines.append((time.monotonic(), line))
        if on_line and on_line(line, lines, conn) is False:
            break


def sse_events(lines):
    """Splits raw SSE lines into events: [(event_name or None, data string)]."""
    events, name, data = [], None, []
    for _, raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line == "":
            if data:
                events.append((name, "\n".join(data)))
            name, data = None, []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:][1:] if line[5:].startswith(" ") else line[5:])
    return events


def directive(**kw):
    return "[[mock:" + ",".join("%s=%s" % (k, v) for k, v in kw.items()) + "]]"


def chat(content, model="gpt-4o-mini", stream=False, **extra):
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    body.update(extra)
    return body


def messages(content, model="claude-sonnet-4-20250514", stream=False, **extra):
    body = {"model": model, "max_tokens": 256,
            "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    body.update(extra)
    return body


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def eq(got, want, what="value"):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


# What a sanitizer leaves in a log, and with them what a crash leaves
# (agw_fatal's "fatal at", multiwatch's "died to often").
SANITIZER_MARKS = ("AddressSanitizer", "runtime error:", "LeakSanitizer")
CRASH_MARKS = SANITIZER_MARKS + ("fatal at", "died to often")


def check_log_clean(what, log, marks=CRASH_MARKS):
    """Fails on the first of `marks` in `log`: "<what> mentions <mark>", with
    the log's tail."""
    for mark in marks:
        check(mark not in log, "%s mentions %r:\n%s" % (what, mark, log[-3000:]))


def run_all(ctx):
    """Runs every registered test; prints TAP; returns the number that failed."""
    print("1..%d" % len(_tests), flush=True)
    failed = 0

    def on_alarm(signum, frame):
        raise Timeout("test exceeded its time limit")
    signal.signal(signal.SIGALRM, on_alarm)
    only = os.environ.get("ANTIGW_TEST_ONLY")
    for i, (name, fn, limit) in enumerate(_tests, 1):
        if only and name not in only.split(","):
            print("ok %d - %s # SKIP not selected" % (i, name), flush=True)
            continue
        start = time.monotonic()
        signal.alarm(limit)
        try:
            fn(ctx)
            signal.alarm(0)
            print("ok %d - %s (%.2fs)" % (i, name, time.monotonic() - start), flush=True)
        except BaseException as e:  # one test's failure must not stop the others
            signal.alarm(0)
            failed += 1
            print("not ok %d - %s" % (i, name), flush=True)
            for line in traceback.format_exception(type(e), e, e.__traceback__):
                for sub in line.rstrip("\n").split("\n"):
                    print("# " + sub, flush=True)
            if isinstance(e, KeyboardInterrupt):
                raise
    return failed


def make_workdir():
    return tempfile.mkdtemp(prefix="antigw-it-")


def standard_mocks(ctx):
    """Starts ctx.openai and ctx.anthropic in ctx.work: the upstreams of
    standard_config()'s mock-openai and mock-anthropic, each requiring that
    provider's key."""
    ctx.openai = Mock(ctx.work, "openai", "--openai-key", OPENAI_KEY)
    ctx.anthropic = Mock(ctx.work, "anthropic", "--anthropic-key", ANTHROPIC_KEY)


def refused_port():
    """A socket bound to a port of 127.0.0.1 and never listening, so that
    connections to the port are refused (standard_config()'s dead provider).
    Close it when the suite ends (run_suite's stop_after does)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


def suite_setup(ctx):
    """What a suite that runs the pools does first: checks that their tools
    are installed, then gives ctx a fresh working directory (ctx.work) and
    the standard mocks (standard_mocks). Returns why the suite cannot run,
    or None."""
    why = pool_tools_missing()
    if why:
        return why
    ctx.work = make_workdir()
    standard_mocks(ctx)
    return None


def no_sanitizer_or_crash_reports(ctx):
    ctx.gw.check_logs_clean()


def run_suite(ctx, stop_after=(), ready=None):
    """Starts ctx.gw, waits for `ready` (a callable, optional), runs every
    registered test and last no_sanitizer_or_crash_reports (the logs of the
    whole run), then stops the gateway and each of `stop_after` (mocks with
    stop(), sockets with close()) and removes ctx.work if all passed.
    Returns the process exit code."""
    failed = 1
    test()(no_sanitizer_or_crash_reports)
    try:
        ctx.gw.start()
        if ready:
            ready()
        failed = run_all(ctx)
    finally:
        ctx.gw.stop()
        for thing in stop_after:
            (getattr(thing, "stop", None) or thing.close)()
        clean_up_workdir(ctx.work, failed == 0)
    return 1 if failed else 0


def clean_up_workdir(work, passed, note=None):
    """Removes the work directory after a run that passed, unless
    ANTIGW_KEEP_WORKDIR is set; otherwise says where it is kept, with
    note(text) (default: a TAP comment on stdout)."""
    if passed and not os.environ.get("ANTIGW_KEEP_WORKDIR"):
        shutil.rmtree(work, ignore_errors=True)
    elif note:
        note("work directory kept: " + work)
    else:
        print("# work directory kept: " + work)


def pool_tools_missing():
    """Why a suite cannot run: spawn-fcgi or multiwatch, which deploy/pool.sh
    runs the pools with, is not installed. None when both are."""
    for tool in ("spawn-fcgi", "multiwatch"):
        if not shutil.which(tool):
            return "%s is not installed (deploy/quickstart.sh check installs it)" % tool
    return None


def bail(msg):
    """TAP's "Bail out!" line; returns the exit status 1."""
    print("Bail out! " + msg, flush=True)
    return 1


# The [server] settings of standard_config(), in the order they are written;
# None leaves a setting out (the gateway's own default applies).
_SERVER_DEFAULTS = (
    ("log_level", "info"),
    ("max_body_bytes", None),
    ("threads", 32),
    ("connect_timeout_ms", 5000),
    ("idle_timeout_seconds", 30),
    ("sse_ping_seconds", 5),
    ("stream_commit_ms", 10000),
    ("shutdown_grace_seconds", 20),
)


def _cfg_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"%s"' % v
    return "%d" % v


def standard_config(openai_port, anthropic_port, dead_port=None, **overrides):
    """The antigw.cfg text the integration suites run the gateway with: the
    client key CLIENT_KEY, the SQLite file antigw.db in the working directory,
    and the providers
      mock-openai     (openai, http://127.0.0.1:openai_port/v1/, OPENAI_KEY)
                      models gpt-4o-mini, gpt-*, o[0-9]*
      mock-anthropic  (anthropic, http://127.0.0.1:anthropic_port, ANTHROPIC_KEY)
                      models claude-sonnet-4-20250514, claude-*
      dead            (openai, http://127.0.0.1:dead_port/v1, models dead-*),
                      only when dead_port is given: a port nothing answers on.
    overrides set server settings by name (see _SERVER_DEFAULTS): a value
    replaces the default, None leaves the setting out, and names without a
    default are added after the others. Strings are quoted, numbers and
    booleans written bare."""
    settings = dict(_SERVER_DEFAULTS)
    settings.update(overrides)
    server = "".join("  %s = %s;\n" % (k, _cfg_value(v)) for k, v in settings.items()
                     if v is not None)
    providers = [
        '  { name = "mock-openai"; type = "openai"; base_url = "http://127.0.0.1:%d/v1/";\n'
        '    api_key = "%s"; models = [ "gpt-4o-mini", "gpt-*", "o[0-9]*" ]; }'
        % (openai_port, OPENAI_KEY),
        '  { name = "mock-anthropic"; type = "anthropic"; base_url = "http://127.0.0.1:%d";\n'
        '    api_key = "%s"; models = [ "claude-sonnet-4-20250514", "claude-*" ]; }'
        % (anthropic_port, ANTHROPIC_KEY),
    ]
    if dead_port is not None:
        providers.append(
            '  { name = "dead"; type = "openai"; base_url = "http://127.0.0.1:%d/v1";\n'
            '    api_key = "x"; models = [ "dead-*" ]; }' % dead_port)
    return ("\nserver: {\n%s};\n"
            'auth: { api_key = "%s"; };\n'
            'database: { path = "antigw.db"; };\n'
            "providers = (\n%s\n);\n") % (server, CLIENT_KEY, ",\n".join(providers))

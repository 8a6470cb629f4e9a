"""The integration harness: a real web server from its shipped deploy/ config
(lighttpd by default; ANTIGW_WEB_SERVER or Gateway(server=...) picks apache,
caddy, nginx, or fcgid: Apache + mod_fcgid spawning the app itself, the
shared-hosting recipe), the real antigw-fcgi pool under spawn-fcgi +
multiwatch (deploy/pool.sh), a real SQLite file, and mock upstreams on
127.0.0.1 (tests/mock/upstream.py).

Tests are plain functions registered with @test; each runs with a time limit,
and the results are printed as TAP so automake counts every case. Standard
library only: the project's install step provides python3 and nothing else.
"""

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
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
DEPLOY = os.path.join(SRCDIR, "deploy")
LIGHTTPD_CONF = os.path.join(DEPLOY, "lighttpd.conf")
WEB_SERVERS = ("lighttpd", "apache", "caddy", "nginx", "fcgid")
# The binary each web server needs (server_missing()).
WEB_SERVER_BINS = {"lighttpd": "lighttpd", "apache": "apache2", "caddy": "caddy",
                   "nginx": "nginx", "fcgid": "apache2"}
# Run as root, Apache and nginx hand their workers to this user, whose group
# then owns the pool's sockets; mod_fcgid's site belongs to SITE_USER, and
# Apache runs wholly as that user, as on a shared host.
WEB_USER = "www-data"
SITE_USER, SITE_GROUP = "nobody", "nogroup"

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


class Skip(Exception):
    """Raised by a test that cannot run here (a missing privilege or tool):
    TAP's "ok N - name # SKIP <reason>"."""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def process_gone(pid):
    """True when pid has exited: no such process, or a zombie its parent has
    not reaped yet."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def child_pids(ppid):
    """The pids of the processes whose parent is `ppid` (a pool's multiwatch:
    its workers), sorted."""
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == ppid:
                    kids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return sorted(kids)


def _user_name():
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name


def site_owner():
    """(uid, gid) of SITE_USER, who owns the mod_fcgid site when run as root."""
    import grp
    import pwd
    return pwd.getpwnam(SITE_USER).pw_uid, grp.getgrnam(SITE_GROUP).gr_gid


def server_missing(server):
    """Why the suite cannot run behind `server`: its binary (or for fcgid,
    mod_fcgid) is not installed. None when it is."""
    binary = WEB_SERVER_BINS[server]
    if not shutil.which(binary) and not os.path.exists("/usr/sbin/" + binary):
        return "%s is not installed (deploy/quickstart.sh check installs it)" % binary
    if server == "fcgid" and not os.path.exists("/usr/lib/apache2/modules/mod_fcgid.so"):
        return "mod_fcgid is not installed (libapache2-mod-fcgid)"
    return None


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
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            # Seen once under a loaded sanitizer run: a mock still there 10 s
            # after SIGTERM. Its threads' stacks go to its log (faulthandler,
            # SIGUSR1) and into the TAP output; then it is killed, so the
            # suite's own results stand.
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(1)
            self.proc.kill()
            self.proc.wait(10)
            self.log.flush()
            with open(self.log.name, "rb") as f:
                tail = f.read()[-4000:].decode("utf-8", "replace")
            print("# mock %s did not stop within 10 s of SIGTERM; killed. Its log ends:" % self.name)
            for line in tail.splitlines():
                print("#   " + line)
        self.log.close()


class Gateway:
    """lighttpd + the antigw-fcgi pool, from the shipped deploy files; with
    admin=True also antigw-admin on its own socket (its config needs
    auth.admin_key)."""

    def __init__(self, workdir, config_text, processes=2, threads=32, admin=False, server=None):
        self.server = server or os.environ.get("ANTIGW_WEB_SERVER") or "lighttpd"
        check(self.server in WEB_SERVERS, "unknown web server " + self.server)
        self.as_root = os.geteuid() == 0
        self.deploy = DEPLOY
        if self.server == "fcgid":
            # The shared-hosting layout: ~/antigateway (bin/, antigw.cfg, the
            # database; here also run/ and log/) beside the web root
            # ~/public_html, which holds .htaccess and the wrappers.
            home = os.path.join(workdir, "home")
            self.var = os.path.join(home, "antigateway")
            self.www = os.path.join(home, "public_html")
            if self.as_root:
                # Apache runs as the site's owner, who may not read the
                # source tree (a checkout under /root): the recipe's files
                # are copied into the home it owns.
                self.deploy = os.path.join(home, "deploy")
        else:
            self.var = os.path.join(workdir, "var")
            self.www = os.path.join(self.var, "www")
        for d in (os.path.join(self.var, "run"), os.path.join(self.var, "log"), self.www):
            os.makedirs(d, exist_ok=True)
        self.config = os.path.join(self.var, "antigw.cfg")
        with open(self.config, "w") as f:
            f.write(config_text)
        self.port = free_port()
        self.processes = processes
        self.threads = threads
        self.env = dict(os.environ, ANTIGW_VAR=self.var, ANTIGW_BIND="127.0.0.1",
                        ANTIGW_PORT=str(self.port), ANTIGW_BIN=FCGI_BIN,
                        ANTIGW_CONFIG=self.config, ANTIGW_PROCESSES=str(processes),
                        ANTIGW_THREADS=str(threads), ANTIGW_STOP_WAIT="20",
                        ANTIGW_DEPLOY=self.deploy, ANTIGW_SITE=self.www)
        if self.as_root and self.server in ("apache", "nginx"):
            # The workers run as WEB_USER: the sockets are its group's, and
            # the folders above them must let it pass.
            self.env.update(ANTIGW_WEB_USER=WEB_USER, ANTIGW_SOCKET_GROUP=WEB_USER)
            os.chmod(workdir, 0o711)
        else:
            self.env["ANTIGW_WEB_USER"] = _user_name()
        self.lighttpd = None  # the web server's process, whichever it is
        self.admin = admin
        self.admin_env = dict(self.env, ANTIGW_POOL_NAME="admin", ANTIGW_BIN=ADMIN_BIN,
                              ANTIGW_PROCESSES="1", ANTIGW_THREADS="4")
        if self.server == "fcgid":
            self._make_site(workdir, home)

    def _make_site(self, workdir, home):
        """The shared-hosting site: the wrappers and .htaccess in the web
        root, the binaries in ~/antigateway/bin; owned by SITE_USER when run
        as root."""
        bindir = os.path.join(self.var, "bin")
        os.makedirs(bindir, exist_ok=True)
        for src in (FCGI_BIN, ADMIN_BIN):
            shutil.copy(src, bindir)
        hosting = os.path.join(DEPLOY, "shared-hosting")
        if self.deploy != DEPLOY:
            shutil.copytree(hosting, os.path.join(self.deploy, "shared-hosting"))
        shutil.copy(os.path.join(hosting, "htaccess"), os.path.join(self.www, ".htaccess"))
        for w in ("antigw.fcgi", "admin.fcgi"):
            shutil.copy(os.path.join(hosting, w), self.www)
        if self.as_root:
            os.chmod(workdir, 0o711)
            for d, dirs, files in os.walk(home):
                shutil.chown(d, SITE_USER, SITE_GROUP)
                for f in files:
                    shutil.chown(os.path.join(d, f), SITE_USER, SITE_GROUP)

    def start_admin(self):
        if self.server != "fcgid":  # mod_fcgid starts antigw-admin itself
            subprocess.run([POOL, "start"], env=self.admin_env, check=True)

    def stop_admin(self):
        if self.server != "fcgid":
            subprocess.run([POOL, "stop"], env=self.admin_env, check=True)

    def admin_log_text(self):
        if self.server == "fcgid":
            return self.web_log_text()
        with open(os.path.join(self.var, "log", "admin.log"), errors="replace") as f:
            return f.read()

    def start_pool(self):
        if self.server != "fcgid":  # mod_fcgid starts antigw-fcgi itself
            subprocess.run([POOL, "start"], env=self.env, check=True)

    def stop_pool(self):
        if self.server != "fcgid":
            subprocess.run([POOL, "stop"], env=self.env, check=True)

    def restart_pool(self, timeout=10):
        """Starts the pool stopped by the caller and waits until /health
        answers 200 (the pool serves and its providers are up)."""
        self.start_pool()
        wait_for(lambda: self.call("GET", "/health", key=None)[0] == 200, timeout, "pool back")

    def web_command(self):
        """The command line that runs the web server in the foreground from
        its shipped config."""
        run = os.path.join(self.var, "run")
        if self.server == "lighttpd":
            return [lighttpd_bin(), "-D", "-f", LIGHTTPD_CONF]
        if self.server == "apache":
            return ["apache2", "-DFOREGROUND", "-f", os.path.join(DEPLOY, "apache",
                                                                  "standalone.conf")]
        if self.server == "fcgid":
            cmd = ["apache2", "-DFOREGROUND", "-f", os.path.join(self.deploy, "shared-hosting",
                                                                 "standalone.conf")]
            if self.as_root:  # the whole server as the site's owner, as on a shared host
                cmd = ["setpriv", "--reuid=" + SITE_USER, "--regid=" + SITE_GROUP,
                       "--clear-groups", "--"] + cmd
            return cmd
        if self.server == "caddy":
            home = os.path.join(run, "caddy-home")
            os.makedirs(home, exist_ok=True)
            self.env.update(HOME=home, XDG_CONFIG_HOME=home, XDG_DATA_HOME=home)
            return ["caddy", "run", "--config", os.path.join(DEPLOY, "caddy", "Caddyfile"),
                    "--adapter", "caddyfile"]
        conf = os.path.join(run, "nginx.conf")
        with open(conf, "wb") as f:
            f.write(subprocess.run([os.path.join(DEPLOY, "nginx", "render.sh")], env=self.env,
                                   check=True, stdout=subprocess.PIPE).stdout)
        return ["nginx", "-e", os.path.join(self.var, "log", "nginx.log"), "-c", conf,
                "-g", "daemon off;"]

    def web_log_text(self):
        name = {"lighttpd": "lighttpd.log", "caddy": "caddy.log", "nginx": "nginx.log"}.get(
            self.server, "apache.log")
        try:
            with open(os.path.join(self.var, "log", name), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def start(self):
        self.start_pool()
        if self.admin:
            self.start_admin()
        cmd = self.web_command()
        log = None
        if self.server == "caddy":  # Caddy logs to stderr only
            log = open(os.path.join(self.var, "log", "caddy.log"), "ab")
        self.lighttpd = subprocess.Popen(cmd, env=self.env, stderr=log)

        def up():
            check(self.lighttpd.poll() is None, "%s exited: %s" % (self.server,
                                                                   self.web_log_text()[-2000:]))
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                return c.getresponse().status in (200, 503)
            except OSError:
                return False
        wait_for(up, 15, "%s on port %d" % (self.server, self.port))

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

    def pool_pid(self, name="pool"):
        """The pid of a pool's multiwatch (deploy/pool.sh): run/pool.pid for the
        antigw-fcgi pool, run/<name>.pid for one started with ANTIGW_POOL_NAME=<name>."""
        with open(os.path.join(self.var, "run", name + ".pid")) as f:
            return int(f.read())

    def pool_processes(self):
        """The antigw-fcgi processes: the children of the pool's multiwatch."""
        return child_pids(self.pool_pid())

    def admin_processes(self):
        """The antigw-admin processes: the children of the admin pool's multiwatch."""
        return child_pids(self.pool_pid("admin"))

    def log_text(self):
        # antigw-fcgi buffers info lines and writes them out every 100 ms
        # (core.h, agw_log_buffer_start): give the last ones time to land.
        time.sleep(0.25)
        if self.server == "fcgid":  # mod_fcgid sends the app's stderr to Apache's log
            return self.web_log_text()
        with open(os.path.join(self.var, "log", "fcgi.log"), errors="replace") as f:
            return f.read()

    def check_logs_clean(self):
        """Fails when the pool's log, or with admin=True antigw-admin's, holds
        a sanitizer or crash report, or the web server's log a failure of
        its own (check_log_clean)."""
        check_log_clean("the pool's log", self.log_text())
        check_log_clean("%s's log" % self.server, self.web_log_text(), WEB_SERVER_MARKS)
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
# (agw_fatal's "fatal at", multiwatch's "died to often") and what a request
# that left its body's record of long values behind does (dispatch.c).
SANITIZER_MARKS = ("AddressSanitizer", "runtime error:", "LeakSanitizer")
CRASH_MARKS = SANITIZER_MARKS + ("fatal at", "died to often", "outlived its call")
# What the web server logs when one of its own processes fails or dies: Apache
# (and mod_fcgid, which ends the child on a lock failure) and nginx levels,
# and Apache's note of a child killed by a signal.
WEB_SERVER_MARKS = (":emerg]", ":alert]", "[emerg]", "[alert]", "exit signal")


def check_log_clean(what, log, marks=CRASH_MARKS):
    """Fails on the first of `marks` in `log`: "<what> mentions <mark>", with
    the first line that does and the log's tail."""
    for mark in marks:
        if mark in log:
            line = next(ln for ln in log.splitlines() if mark in ln)
            check(False, "%s mentions %r:\n%s\n...\n%s" % (what, mark, line, log[-3000:]))


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
        except Skip as e:
            signal.alarm(0)
            print("ok %d - %s # SKIP %s" % (i, name, e), flush=True)
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


def usage_ring_path(db, ring_dir="/dev/shm"):
    """The usage ring in `ring_dir` of the pool whose database is `db`
    (agw_usage_ring_path: named after the database's real path)."""
    real = os.path.join(os.path.realpath(os.path.dirname(db)), os.path.basename(db))
    digest = hashlib.sha256(real.encode()).hexdigest()
    return os.path.join(ring_dir, "antigw-%s.usage" % digest[:16])


def remove_workdir(work):
    """Removes `work` and the usage rings in /dev/shm of the databases in it.
    A pool that was killed, or stopped with records waiting, leaves its ring
    for its next start to read: after a test nothing starts again, and the
    rings would pile up in the machine's memory."""
    for d, _, files in os.walk(work):
        for f in files:
            try:
                os.unlink(usage_ring_path(os.path.join(d, f)))
            except OSError:
                pass
    shutil.rmtree(work, ignore_errors=True)


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
    return exit_code(failed)


def exit_code(failed):
    """The suite's exit code: 1 if a test failed. A thread a test started and
    left running (not a daemon) would keep the process, and `make check` with
    it, from ever ending: after 5 s of grace the suite names such threads and
    ends at once with 1."""
    def left():
        return [t for t in threading.enumerate()
                if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    end = time.monotonic() + 5
    while left() and time.monotonic() < end:
        time.sleep(0.05)
    if left():
        print("# threads a test left running: " + ", ".join(t.name for t in left()), flush=True)
        sys.stderr.flush()
        os._exit(1)
    return 1 if failed else 0


def clean_up_workdir(work, passed, note=None):
    """Removes the work directory (remove_workdir) after a run that passed, unless
    ANTIGW_KEEP_WORKDIR is set; otherwise says where it is kept, with
    note(text) (default: a TAP comment on stdout)."""
    if passed and not os.environ.get("ANTIGW_KEEP_WORKDIR"):
        remove_workdir(work)
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
                      models gpt-4o-mini, gpt-*, o[0-9]*; the *-codex ones
                      through its Responses API (responses_models)
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
        '    api_key = "%s"; models = [ "gpt-4o-mini", "gpt-*", "o[0-9]*" ];\n'
        '    responses_models = [ "*-codex" ]; }'
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

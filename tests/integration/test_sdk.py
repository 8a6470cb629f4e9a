#!/usr/bin/env python3
"""Conformance of the gateway with the official SDKs as clients: starts the mock
upstreams and the real gateway (lighttpd + the antigw-fcgi pool) with the harness,
then runs the Node test files in tests/sdk/ (the `openai` and `@anthropic-ai/sdk`
npm packages, pinned in tests/sdk/package-lock.json) against it.

Node's TAP goes to stdout unchanged and node's exit code is ours. Everything this
script says itself goes to stderr, except a `Bail out!` line when it cannot run.
The packages are installed with `npm ci` when tests/sdk/node_modules is missing or
older than package-lock.json. ANTIGW_SDK_ONLY=PATTERN runs only the tests whose
names match (node's --test-name-pattern).
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ANTHROPIC_KEY, CLIENT_KEY, CRASH_MARKS, OPENAI_KEY, SRCDIR,  # noqa: E402
                     BUILDDIR, Gateway, Mock, bail, clean_up_workdir, make_workdir,
                     pool_tools_missing, standard_config)

SDK_DIR = os.path.join(SRCDIR, "tests", "sdk")
# The pinned SDKs name Node 20 as their supported floor and run on Node 20 in
# CI; Debian 12's own nodejs is 18, on which the whole suite was verified to
# pass too, so a fresh Debian machine runs it rather than bailing out.
MIN_NODE = 18
NODE_TIMEOUT = int(os.environ.get("ANTIGW_SDK_TIMEOUT", "600"))


def say(msg):
    sys.stderr.write("test_sdk: %s\n" % msg)
    sys.stderr.flush()


def installed(d):
    """node_modules is there and was installed from the current package-lock.json."""
    stamp = os.path.join(d, "node_modules", ".package-lock.json")  # written by npm ci
    return os.path.exists(stamp) and \
        os.path.getmtime(stamp) >= os.path.getmtime(os.path.join(d, "package-lock.json"))


def sdk_dir_ready():
    """The directory to run the tests from, with the pinned SDKs installed; None when
    npm ci failed. A read-only source tree (make distcheck) gets a copy in the build
    tree."""
    where = SDK_DIR
    if not installed(SDK_DIR) and not os.access(SDK_DIR, os.W_OK):
        where = os.path.join(BUILDDIR, "tests", "sdk")
        # copy2 keeps mtimes, so installed() still compares against the source lock.
        shutil.copytree(SDK_DIR, where, ignore=shutil.ignore_patterns("node_modules"),
                        dirs_exist_ok=True)
    if installed(where):
        return where
    npm = shutil.which("npm")
    if not npm:
        say("npm is not installed")
        return None
    say("installing the SDKs: npm ci in " + where)
    # npm's output must not mix with the TAP on stdout.
    r = subprocess.run([npm, "ci", "--prefer-offline", "--no-audit", "--no-fund"], cwd=where,
                       stdout=sys.stderr, stderr=sys.stderr)
    return where if r.returncode == 0 else None


def node_major(node):
    out = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    try:
        return int(out.lstrip("v").split(".")[0]), out
    except ValueError:
        return 0, out


def main():
    node = shutil.which("node")
    if not node:
        return bail("node is not installed (deploy/quickstart.sh check installs it)")
    major, version = node_major(node)
    if major < MIN_NODE:
        return bail("node %s is too old: the pinned SDKs need Node.js %d or later"
                    % (version or "?", MIN_NODE))
    why = pool_tools_missing()
    if why:
        return bail(why)
    where = sdk_dir_ready()
    if not where:
        return bail("npm ci in tests/sdk failed: the SDKs are not installed")

    work = make_workdir()
    openai = Mock(work, "openai", "--openai-key", OPENAI_KEY)
    anthropic = Mock(work, "anthropic", "--anthropic-key", ANTHROPIC_KEY)
    cfg = standard_config(openai.port, anthropic.port)
    # continuation.test.mjs: an Anthropic-type provider that continues cut answers
    cfg = cfg.replace("providers = (\n", "providers = (\n"
                      '  { name = "cont-anthropic"; type = "anthropic";\n'
                      '    base_url = "http://127.0.0.1:%d"; api_key = "%s";\n'
                      '    models = [ "cont-*" ]; continuation = true; },\n'
                      % (anthropic.port, ANTHROPIC_KEY), 1)
    gw = Gateway(work, cfg, processes=2, threads=32)
    rc = 1
    try:
        try:
            gw.start()
        except Exception as e:  # reported as TAP, details on stderr
            say("the gateway did not start: %r" % e)
            return bail("the gateway did not start (see stderr)")
        env = dict(os.environ,
                   GATEWAY_URL="http://127.0.0.1:%d" % gw.port,
                   GATEWAY_KEY=CLIENT_KEY,
                   OPENAI_MOCK_URL="http://127.0.0.1:%d" % openai.port,
                   ANTHROPIC_MOCK_URL="http://127.0.0.1:%d" % anthropic.port)
        # The SDKs read these; the tests pass everything explicitly.
        for k in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
                  "ANTHROPIC_AUTH_TOKEN", "OPENAI_LOG", "ANTHROPIC_LOG"):
            env.pop(k, None)
        cmd = [node, "--test", "--test-reporter=tap"]
        only = os.environ.get("ANTIGW_SDK_ONLY")
        if only:
            cmd.append("--test-name-pattern=" + only)
        cmd.append(where + os.sep)
        try:
            rc = subprocess.run(cmd, cwd=where, env=env, timeout=NODE_TIMEOUT).returncode
        except subprocess.TimeoutExpired:
            print("Bail out! the SDK tests did not finish within %d s" % NODE_TIMEOUT, flush=True)
            rc = 1
        # A worker that crashed or tripped a sanitizer may still have answered the
        # tests well enough: its log says so.
        log = gw.log_text()
        bad = [m for m in CRASH_MARKS if m in log]
        if bad:
            say("the pool's log mentions %r:\n%s" % (bad, log[-3000:]))
            print("Bail out! the gateway's log has a sanitizer or crash report (see stderr)",
                  flush=True)
            rc = 1
    finally:
        gw.stop()
        openai.stop()
        anthropic.stop()
        clean_up_workdir(work, rc == 0, say)
    return rc


if __name__ == "__main__":
    sys.exit(main())

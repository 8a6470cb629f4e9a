#!/usr/bin/env python3
"""The admin web UI end to end: the built UI (frontend/dist) served at /ui/ by
the real lighttpd from deploy/lighttpd.conf, antigw-admin and a pool of
antigw-fcgi on a real SQLite file with mock upstreams (OpenAI, Anthropic,
GitHub and the Copilot API for a Copilot provider, Kiro's auth service and
API for a Kiro one), driven in Debian's
headless Chromium by playwright-core (frontend/e2e/run.mjs, one case per
test below; each case checks the database with the sqlite3 tool). The
first test runs the UI's unit tests (Vitest).

Needs the frontend's packages (npm ci in frontend/) and chromium; without
them the suite is skipped. Screenshots of each page in both themes go to
<builddir>/frontend/screenshots."""

import base64
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ANTHROPIC_KEY, BUILDDIR, OPENAI_KEY, SRCDIR, Gateway, Mock,  # noqa: E402
                     bail, chat, check, eq, messages, run_suite, suite_setup, test, wait_for)

ADMIN_KEY = "agw-admin-ui-test-key-0123456789abcdef"
COPILOT_SECRET = "ui-copilot-mock-signing-secret"
GITHUB = os.path.join(SRCDIR, "tests", "mock", "github.py")
COPILOT = os.path.join(SRCDIR, "tests", "mock", "copilot_api.py")
KIRO_AUTH = os.path.join(SRCDIR, "tests", "mock", "kiro_auth.py")
FRONTEND = os.path.join(SRCDIR, "frontend")
E2E = os.path.join(FRONTEND, "e2e", "run.mjs")
SHOTS = os.path.join(BUILDDIR, "frontend", "screenshots")


def config(ctx):
    gh = "http://127.0.0.1:%d" % ctx.github.port
    kiro = "http://127.0.0.1:%d" % ctx.kiro.port
    return """
server: {
  log_level = "info";
  threads = 8;
  connect_timeout_ms = 2000;
  idle_timeout_seconds = 10;
  stream_commit_ms = 10000;
  shutdown_grace_seconds = 10;
};
auth: { admin_key = "%s"; };
database: { path = "antigw.db"; };
tenant: { enabled = true; };
secrets: { key_file = "secret.key"; };
providers = (
  { name = "cfg-openai"; type = "openai"; base_url = "http://127.0.0.1:%d/v1";
    api_key = "%s"; models = [ "gpt-*" ]; },
  { name = "cfg-anthropic"; type = "anthropic"; base_url = "http://127.0.0.1:%d";
    api_key = "%s"; models = [ "claude-*" ]; },
  { name = "cfg-copilot"; type = "copilot"; github_url = "%s"; github_api_url = "%s";
    models = [ "ui-copilot-*" ]; },
  { name = "cfg-kiro"; type = "kiro"; base_url = "%s"; auth_url = "%s"; oidc_url = "%s";
    signin_url = "%s/signin"; models = [ "ui-kiro-*" ]; },
  { name = "cfg-kiro-login"; type = "kiro"; base_url = "%s"; auth_url = "%s"; oidc_url = "%s";
    signin_url = "%s/signin"; models = [ "ui-kiro-login-*" ]; }
);
""" % ((ADMIN_KEY, ctx.openai.port, OPENAI_KEY, ctx.anthropic.port, ANTHROPIC_KEY, gh, gh)
       + (kiro,) * 8)


class Ctx:
    pass


def ui_dist():
    for d in (os.path.join(BUILDDIR, "frontend", "dist"), os.path.join(FRONTEND, "dist")):
        if os.path.isfile(os.path.join(d, "index.html")):
            return d
    return None


def chromium_bin():
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    return None


def missing():
    """Why the suite cannot run, or None."""
    if not shutil.which("node"):
        return "node is not installed (deploy/quickstart.sh check installs it)"
    if not os.path.isdir(os.path.join(FRONTEND, "node_modules", "playwright-core")):
        return "frontend/node_modules is missing (npm ci in frontend/)"
    if not ui_dist():
        return "the UI is not built (make)"
    if not chromium_bin():
        return "chromium is not installed (deploy/quickstart.sh check installs it)"
    if not shutil.which("sqlite3"):
        return "the sqlite3 tool is not installed"
    return None


def admin(ctx, method, path, body=None):
    s, _, data = ctx.gw.call(method, path, body=body, key=ADMIN_KEY)
    return s, json.loads(data) if data else None


def seed_usage(ctx):
    """Two keys and some traffic, so the dashboard and the usage page have
    figures to show: key ui-alpha 5 OpenAI calls, key ui-beta 3 Anthropic
    calls and one refused model."""
    keys = {}
    for name in ("ui-alpha", "ui-beta"):
        s, doc = admin(ctx, "POST", "/admin/keys", {"name": name})
        eq(s, 201, "creating " + name)
        keys[name] = doc["key"]
    for i in range(5):
        s, _, _ = ctx.gw.call("POST", "/v1/chat/completions", chat("hello %d" % i),
                              key=keys["ui-alpha"])
        eq(s, 200, "seed call")
    for i in range(3):
        s, _, _ = ctx.gw.call("POST", "/v1/messages", messages("hi %d" % i), key=keys["ui-beta"],
                              headers={"anthropic-version": "2023-06-01"})
        eq(s, 200, "seed call")
    ctx.gw.call("POST", "/v1/chat/completions", chat("x", model="no-such-model"),
                key=keys["ui-beta"])

    def rows():
        s, doc = admin(ctx, "GET", "/admin/usage")
        return s == 200 and doc["totals"]["requests"] >= 8
    wait_for(rows, 10, "usage rows")


def run_case(ctx, name, timeout=90):
    env = dict(os.environ, UI_URL="http://127.0.0.1:%d/ui/" % ctx.gw.port,
               GATEWAY_URL="http://127.0.0.1:%d" % ctx.gw.port, ADMIN_KEY=ADMIN_KEY,
               DB_PATH=os.path.join(ctx.gw.var, "antigw.db"), SHOTS_DIR=SHOTS,
               CHROMIUM=chromium_bin(), EXTRA_UPSTREAM="http://127.0.0.1:%d/v1" % ctx.extra.port,
               EXTRA_KEY=ctx.extra_key, GITHUB_MOCK="http://127.0.0.1:%d" % ctx.github.port,
               KIRO_MOCK="http://127.0.0.1:%d" % ctx.kiro.port, WORK_DIR=ctx.work)
    p = subprocess.run(["node", E2E, name], cwd=FRONTEND, env=env, capture_output=True,
                       text=True, timeout=timeout)
    for line in (p.stdout + p.stderr).splitlines():
        print("# " + line, flush=True)
    check(p.returncode == 0, "e2e case %s failed (exit %d)" % (name, p.returncode))


@test(timeout=180)
def vitest_unit_tests(ctx):
    p = subprocess.run(["npx", "--no-install", "vitest", "run", "--reporter=dot"], cwd=FRONTEND,
                       capture_output=True, text=True, timeout=170)
    tail = (p.stdout + p.stderr).strip().splitlines()[-12:]
    for line in tail:
        print("# " + line, flush=True)
    check(p.returncode == 0, "vitest failed")


def case(name, timeout=90):
    def fn(ctx):
        run_case(ctx, name, timeout - 5)
    fn.__name__ = "ui_" + name
    test(timeout)(fn)


for _name in ("ui_is_served_with_cache_headers", "sign_in_wrong_right_sign_out",
              "dashboard_matches_admin_usage", "providers_crud_test_and_field_errors",
              "keys_crud_and_key_shown_once", "usage_filters_and_csv", "audit_log_pages",
              "keyboard_and_narrow_screen", "chinese_ui", "dark_mode_and_screenshots",
              "copilot_device_flow", "kiro_import_refresh_quota", "kiro_social_and_device_login",
              "copilot_provider_with_github_token",
              "sign_in_slowed_down_after_wrong_keys"):
    case(_name, 120 if _name == "dark_mode_and_screenshots" else 90)


def main():
    why = missing()
    if why:
        print("1..0 # SKIP " + why)
        return 0
    ctx = Ctx()
    why = suite_setup(ctx)
    if why:
        return bail(why)
    ctx.extra_key = "sk-ui-extra-provider-key-0123"
    ctx.extra = Mock(ctx.work, "extra", "--openai-key", ctx.extra_key)
    ctx.copilot = Mock(ctx.work, "copilot", "--secret", COPILOT_SECRET, script=COPILOT)
    ctx.github = Mock(ctx.work, "github", "--secret", COPILOT_SECRET, "--api-url",
                      "http://127.0.0.1:%d" % ctx.copilot.port, script=GITHUB)
    ctx.kiro = Mock(ctx.work, "kiro-auth", script=KIRO_AUTH)
    ctx.gw = Gateway(ctx.work, config(ctx), processes=2, threads=8, admin=True)
    with open(os.path.join(ctx.gw.var, "secret.key"), "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(base64.b16encode(os.urandom(32)).decode().lower() + "\n")
    # The web server's document root holds the UI as the quickstart installs it.
    os.symlink(ui_dist(), os.path.join(ctx.gw.var, "www", "ui"))
    os.makedirs(SHOTS, exist_ok=True)

    def ready():
        wait_for(lambda: admin(ctx, "GET", "/admin/keys")[0] == 200, 10, "antigw-admin")
        seed_usage(ctx)
        time.sleep(0.2)
    return run_suite(ctx, stop_after=(ctx.openai, ctx.anthropic, ctx.extra, ctx.copilot,
                                                   ctx.github, ctx.kiro), ready=ready)


if __name__ == "__main__":
    sys.exit(main())

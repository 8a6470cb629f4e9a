// End-to-end cases of the admin UI in a real headless Chromium (Debian's
// chromium, driven by playwright-core) against a running gateway started by
// tests/integration/test_ui.py: `node e2e/run.mjs <case>`. Each case checks
// what the page shows against the database (the sqlite3 tool) and the
// admin API. Exit status 0 when the case passed.
//
// Environment: UI_URL (…/ui/), GATEWAY_URL, ADMIN_KEY, DB_PATH, SHOTS_DIR,
// CHROMIUM, EXTRA_UPSTREAM and EXTRA_KEY (a mock OpenAI upstream and its key),
// GITHUB_MOCK and KIRO_MOCK (the mock GitHub and Kiro auth service of the
// providers cfg-copilot and cfg-kiro), WORK_DIR (where files to upload go).
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import assert from "node:assert/strict";
import path from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const UI = env("UI_URL");
const GW = env("GATEWAY_URL");
const ADMIN_KEY = env("ADMIN_KEY");
const DB = env("DB_PATH");

function db(sql) {
  const out = execFileSync("sqlite3", ["-json", "-cmd", ".timeout 5000", DB, sql], { encoding: "utf8" });
  return out.trim() ? JSON.parse(out) : [];
}

async function adminApi(method, p, body) {
  const res = await fetch(GW + p, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_KEY}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, headers: res.headers, doc: await res.json().catch(() => null) };
}

async function launch(opts = {}) {
  const browser = await chromium.launch({
    executablePath: env("CHROMIUM"),
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-US",
                                             ...opts });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // The web server's Content-Security-Policy must not block anything the UI does.
  context.on("console", (m) => { if (/Content Security Policy/i.test(m.text())) errors.push(m.text()); });
  return { browser, context, page, errors };
}

/** Signs in through the form (or with the key preset when `preset`). */
async function signIn(page, { preset = false } = {}) {
  if (preset) {
    await page.addInitScript((k) => sessionStorage.setItem("antigw.adminKey", k), ADMIN_KEY);
    await page.goto(UI);
  } else {
    await page.goto(UI);
    await page.fill("#admin-key", ADMIN_KEY);
    await page.click("button[type=submit]");
  }
  await page.waitForSelector("[data-testid=dashboard]");
}

async function goNav(page, label) {
  await page.getByRole("navigation").getByRole("link", { name: label, exact: true }).click();
}

/** A control call of a mock service (tests/mock/): GET without a body. */
async function mockCtl(base, what, body) {
  const res = await fetch(`${base}/_mock/${what}`, body === undefined ? {}
    : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  assert.equal(res.status, 200, `mock ${what}`);
  return res.json();
}

/** The Account dialog of provider `name`, opened from the Providers page. */
async function openAccount(page, name, testId) {
  await goNav(page, "Providers");
  await page.locator(`[data-testid=providers-table] tr[data-provider="${name}"]`)
    .getByRole("button", { name: "Account" }).click();
  const dlg = page.locator(`[data-testid=${testId}]`);
  await dlg.waitFor();
  return dlg;
}

/** The value shown for `key` in the dialog's account status. */
const shown = (dlg, key) => dlg.locator(`[data-testid=account-status] [data-key=${key}] dd`);

const note = (s) => console.log(s);
const sha256hex = (s) => createHash("sha256").update(s).digest("hex");

const cases = {
  async ui_is_served_with_cache_headers() {
    const idx = await fetch(UI + "keys");
    assert.equal(idx.status, 200, "a client-side route falls back to index.html");
    assert.match(idx.headers.get("content-type"), /^text\/html/);
    assert.equal(idx.headers.get("cache-control"), "no-cache");
    assert.match(idx.headers.get("content-security-policy"), /default-src 'self'.*frame-ancestors 'none'/);
    assert.equal(idx.headers.get("x-content-type-options"), "nosniff");
    const html = await idx.text();
    const assets = [...html.matchAll(/\/ui\/assets\/[^"]+/g)].map((m) => m[0]);
    assert.ok(assets.some((a) => a.endsWith(".js")) && assets.some((a) => a.endsWith(".css")), html);
    for (const a of assets) {
      const r = await fetch(GW + a);
      assert.equal(r.status, 200, a);
      assert.equal(r.headers.get("cache-control"), "public, max-age=31536000, immutable", a);
      assert.match(r.headers.get("content-type"), a.endsWith(".js") ? /javascript/ : /text\/css/);
    }
    const bare = await fetch(GW + "/ui", { redirect: "manual" });
    assert.equal(bare.status, 301);
    assert.match(bare.headers.get("location"), /\/ui\/$/);
    const missing = await fetch(GW + "/ui/assets/nope-123.js");
    assert.equal(missing.status, 404, "a missing asset is a 404, not index.html");
    // Nothing the page loads comes from elsewhere than the gateway.
    assert.doesNotMatch(html, /https?:\/\//, "index.html references no other site");
  },

  async sign_in_wrong_right_sign_out() {
    const { browser, context, page, errors } = await launch();
    try {
      await page.goto(UI + "providers");
      await page.fill("#admin-key", "agw-not-the-admin-key-0000000000");
      await page.click("button[type=submit]");
      await page.waitForSelector("[data-testid=signin-error]");
      assert.match(await page.textContent("[data-testid=signin-error]"), /not right/);
      assert.equal(await page.evaluate(() => sessionStorage.getItem("antigw.adminKey")), null);
      await page.fill("#admin-key", ADMIN_KEY);
      await page.click("button[type=submit]");
      await page.waitForSelector("[data-testid=providers]");
      assert.equal(await page.evaluate(() => sessionStorage.getItem("antigw.adminKey")), ADMIN_KEY);
      assert.equal(await page.evaluate(() => localStorage.getItem("antigw.adminKey")), null,
                   "not remembered unless asked");
      await page.reload();
      await page.waitForSelector("[data-testid=providers]");
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.waitForSelector("#admin-key");
      assert.equal(await page.evaluate(() => sessionStorage.getItem("antigw.adminKey")), null);
      // Remembered: another tab of the same browser profile is signed in.
      await page.fill("#admin-key", ADMIN_KEY);
      await page.check("text=Remember on this computer");
      await page.click("button[type=submit]");
      await page.waitForSelector("[data-testid=providers]");
      assert.equal(await page.evaluate(() => localStorage.getItem("antigw.adminKey")), ADMIN_KEY);
      const other = await context.newPage();
      await other.goto(UI + "keys");
      await other.waitForSelector("[data-testid=keys]");
      // A 401 from any call (the stored key went stale) returns to sign-in.
      await other.evaluate(() => { sessionStorage.setItem("antigw.adminKey", "agw-stale-key-000000000000000");
                                   localStorage.removeItem("antigw.adminKey"); });
      await other.getByRole("navigation").getByRole("link", { name: "Audit log" }).click();
      await other.waitForSelector("#admin-key");
      assert.match(await other.textContent("[data-testid=signin-error]"), /session ended/);
      assert.equal(await other.evaluate(() => sessionStorage.getItem("antigw.adminKey")), null);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  },

  async dashboard_matches_admin_usage() {
    const { browser, page, errors } = await launch();
    try {
      await page.addInitScript((k) => sessionStorage.setItem("antigw.adminKey", k), ADMIN_KEY);
      const t0 = Date.now();
      await page.goto(UI);
      await page.waitForSelector("[data-testid=totals] [data-stat=requests] strong");
      await page.waitForSelector("[data-testid=pool-table]");
      const wall = Date.now() - t0;
      const inPage = await page.evaluate(() => Math.round(performance.now()));
      note(`dashboard time to first render (figures and pool table shown): ${inPage} ms after navigation start, ${wall} ms from the goto call`);
      // The window the page asks for: the last 24 whole hours up to the current one.
      const to = Math.floor(Date.now() / 1000 / 3600) * 3600 + 3600, from = to - 24 * 3600;
      const { doc } = await adminApi("GET", `/admin/usage?from=${from}&to=${to}&group_by=hour`);
      const t = doc.totals;
      assert.ok(t.requests >= 9, `seeded traffic: ${t.requests}`);
      const fmt = (n) => new Intl.NumberFormat("en-US").format(n);
      const stat = async (name) => (await page.textContent(`[data-testid=totals] [data-stat=${name}] strong`)).trim();
      assert.equal(await stat("requests"), fmt(t.requests));
      assert.ok((await stat("errors")).startsWith(fmt(t.errors)), await stat("errors"));
      assert.equal(await stat("tokens"), fmt(t.input_tokens + t.output_tokens + t.cache_read_tokens + t.cache_write_tokens));
      for (const p of ["p50", "p90", "p99", "max"]) {
        const shown = (await page.textContent(`[data-testid=latency] [data-stat=${p}] dd`)).trim();
        assert.equal(shown, t.latency_ms[p] === null ? "—" : `${t.latency_ms[p]} ms`, p);
      }
      // Top keys and models, as group_by=key and group_by=model count them.
      const keys = (await adminApi("GET", `/admin/usage?from=${from}&to=${to}&group_by=key`)).doc.groups
        .filter((g) => g.key_name).sort((a, b) => b.requests - a.requests);
      const topKeys = await page.$$eval("[data-testid=top-keys] li", (li) => li.map((x) => x.textContent));
      assert.ok(topKeys[0].startsWith(keys[0].key_name) && topKeys[0].endsWith(String(keys[0].requests)),
                `${topKeys[0]} vs ${JSON.stringify(keys[0])}`);
      const models = await page.$$eval("[data-testid=top-models] li .top-name", (x) => x.map((e) => e.textContent));
      assert.ok(models.includes("gpt-4o-mini"), models.join(","));
      // Pool health: the providers of antigw.cfg are usable; the version is /health's.
      const health = await (await fetch(GW + "/health", { headers: { Authorization: `Bearer ${ADMIN_KEY}` } })).json();
      assert.equal((await page.textContent("[data-testid=version]")).trim(), `Version: ${health.version}`);
      for (const name of ["cfg-openai", "cfg-anthropic"])
        assert.match(await page.textContent(`[data-testid=pool-table] tr[data-provider=${name}]`), /Usable/);
      // By day: the same figures for the last 30 days.
      await page.getByRole("button", { name: "Daily" }).click();
      await page.waitForSelector("text=Last 30 days (by day)");
      const dto = Math.floor(Date.now() / 1000 / 86400) * 86400 + 86400;
      const day = (await adminApi("GET", `/admin/usage?from=${dto - 30 * 86400}&to=${dto}&group_by=day`)).doc;
      await page.waitForFunction((n) => document.querySelector("[data-testid=totals] [data-stat=requests] strong")?.textContent === n,
                                 fmt(day.totals.requests));
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  },

  async providers_crud_test_and_field_errors() {
    const { browser, page, errors } = await launch();
    const row = (name) => page.locator(`[data-testid=providers-table] tr[data-provider="${name}"]`);
    const dlg = () => page.locator("[data-testid=provider-dialog]");
    try {
      await signIn(page, { preset: true });
      await goNav(page, "Providers");
      await page.waitForSelector("[data-testid=providers-table]");
      // antigw.cfg's providers: read-only rows, but they can be tested.
      assert.match(await row("cfg-openai").textContent(), /antigw\.cfg \(read-only\)/);
      assert.equal(await row("cfg-openai").getByRole("button", { name: "Edit" }).count(), 0);
      await row("cfg-openai").getByRole("button", { name: "Test" }).click();
      await page.waitForFunction(() => /answered in \d+ ms/.test(document.querySelector("tr[data-provider=cfg-openai] [data-testid=test-result]")?.textContent ?? ""));
      // Create with a bad base_url: the API's message shows next to the field, nothing is stored.
      const bad = { name: "ui-prov", type: "openai", base_url: "ftp://example.invalid/v1", api_key: process.env.EXTRA_KEY,
                    weight: 1, enabled: true, models: ["ui-*"], default_model: null };
      await page.getByRole("button", { name: "Add provider" }).click();
      await dlg().getByLabel("Name").fill(bad.name);
      await dlg().getByLabel("Base URL").fill(bad.base_url);
      await dlg().getByLabel("API key").fill(bad.api_key);
      await dlg().getByLabel("Weight").fill("1");
      await dlg().getByLabel("Models").fill("ui-*");
      await dlg().getByRole("button", { name: "Create" }).click();
      const fieldErr = dlg().locator("[data-field=base_url] .field-error");
      await fieldErr.waitFor();
      const api = await adminApi("POST", "/admin/providers", bad);
      assert.equal(api.status, 400);
      assert.equal(api.doc.error.field, "base_url");
      assert.equal((await fieldErr.textContent()).trim(), api.doc.error.message);
      assert.deepEqual(db("SELECT id FROM providers WHERE name = 'ui-prov'"), []);
      // Fixed: created, and the row holds what the form said.
      await dlg().getByLabel("Base URL").fill(process.env.EXTRA_UPSTREAM);
      await dlg().getByRole("button", { name: "Create" }).click();
      await dlg().waitFor({ state: "detached" });
      await row("ui-prov").waitFor();
      let r = db("SELECT type, base_url, weight, enabled, models, default_model, secret_hint FROM providers WHERE name = 'ui-prov'");
      assert.deepEqual(r, [{ type: "openai", base_url: process.env.EXTRA_UPSTREAM, weight: 1, enabled: 1,
                             models: '["ui-*"]', default_model: null, secret_hint: r[0].secret_hint }]);
      assert.ok(r[0].secret_hint && !r[0].secret_hint.includes(process.env.EXTRA_KEY.slice(3, -4)));
      // The test action makes its call with the stored key.
      await row("ui-prov").getByRole("button", { name: "Test" }).click();
      await page.waitForFunction(() => /answered in \d+ ms/.test(document.querySelector("tr[data-provider=ui-prov] [data-testid=test-result]")?.textContent ?? ""));
      // Edit (partial): weight and default model; the audit row names just those.
      await row("ui-prov").getByRole("button", { name: "Edit" }).click();
      await dlg().getByLabel("Weight").fill("7");
      await dlg().getByLabel("Default model").fill("ui-model");
      await dlg().getByRole("button", { name: "Save" }).click();
      await dlg().waitFor({ state: "detached" });
      await page.waitForFunction(() => document.querySelector("tr[data-provider=ui-prov]")?.textContent.includes("ui-model"));
      r = db("SELECT id, weight, default_model FROM providers WHERE name = 'ui-prov'");
      assert.equal(r[0].weight, 7);
      assert.equal(r[0].default_model, "ui-model");
      const audit = db(`SELECT action, detail FROM audit_log WHERE object_type = 'provider' AND object_id = '${r[0].id}' ORDER BY id DESC LIMIT 1`);
      assert.equal(audit[0].action, "update");
      assert.deepEqual(JSON.parse(audit[0].detail).fields, ["weight", "default_model"]);
      // Disable, then delete after the confirmation.
      await row("ui-prov").getByRole("button", { name: "Disable" }).click();
      await row("ui-prov").getByRole("button", { name: "Enable" }).waitFor();
      assert.equal(db("SELECT enabled FROM providers WHERE name = 'ui-prov'")[0].enabled, 0);
      await row("ui-prov").getByRole("button", { name: "Delete" }).click();
      const confirm = page.locator("[data-testid=confirm-dialog]");
      assert.match(await confirm.textContent(), /Delete provider "ui-prov"\?/);
      await confirm.getByRole("button", { name: "Cancel" }).click();
      assert.equal(db("SELECT count(*) AS n FROM providers WHERE name = 'ui-prov'")[0].n, 1, "cancel keeps it");
      await row("ui-prov").getByRole("button", { name: "Delete" }).click();
      await confirm.getByRole("button", { name: "Delete" }).click();
      await row("ui-prov").waitFor({ state: "detached" });
      assert.deepEqual(db("SELECT id FROM providers WHERE name = 'ui-prov'"), []);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  },

  async keys_crud_and_key_shown_once() {
    const { browser, page, errors } = await launch();
    const row = (name) => page.locator(`[data-testid=keys-table] tr[data-key="${name}"]`);
    const dlg = () => page.locator("[data-testid=key-dialog]");
    try {
      await signIn(page, { preset: true });
      await goNav(page, "Keys");
      await page.waitForSelector("[data-testid=keys-table]");
      const before = db("SELECT count(*) AS n FROM api_keys")[0].n;
      // A name already taken: the API's 409 message next to the name.
      await page.getByRole("button", { name: "Create key" }).click();
      await dlg().getByLabel("Name").fill("ui-alpha");
      await dlg().getByRole("button", { name: "Create" }).click();
      const nameErr = dlg().locator("[data-field=name] .field-error");
      await nameErr.waitFor();
      const api = await adminApi("POST", "/admin/keys", { name: "ui-alpha", enabled: true, qpm_limit: 0, tpm_limit: 0 });
      assert.equal(api.status, 409);
      assert.equal((await nameErr.textContent()).trim(), api.doc.error.message);
      // A limit that is not a number: the form says so before any call.
      await dlg().getByLabel("Name").fill("ui-new");
      await dlg().getByLabel("Requests / min").fill("lots");
      await dlg().getByRole("button", { name: "Create" }).click();
      assert.match(await dlg().locator("[data-field=qpm_limit] .field-error").textContent(), /whole number/);
      assert.equal(db("SELECT count(*) AS n FROM api_keys")[0].n, before, "nothing stored");
      // Created: the key is shown once.
      await dlg().getByLabel("Requests / min").fill("60");
      await dlg().getByLabel("Tokens / min").fill("100000");
      await dlg().locator("fieldset").first().getByLabel("Restrict").check();
      await dlg().getByLabel("Models", { exact: true }).fill("gpt-*\nclaude-*");
      await dlg().getByLabel("Metadata (JSON object)").fill('{"team": "ui"}');
      await dlg().getByRole("button", { name: "Create" }).click();
      const shown = page.locator("[data-testid=new-key]");
      await shown.waitFor();
      const key = (await shown.textContent()).trim();
      assert.match(key, /^agw-[0-9a-f]{64}$/);
      assert.match(await page.locator("[data-testid=new-key-dialog]").textContent(), /shown only this once/);
      const r = db(`SELECT id, hex(key_hash) AS h, key_prefix, qpm_limit, tpm_limit, allowed_models, metadata, enabled FROM api_keys WHERE name = 'ui-new'`);
      assert.equal(r.length, 1);
      assert.equal(r[0].h.toLowerCase(), sha256hex(key), "the database keeps the key's SHA-256");
      assert.equal(key.startsWith(r[0].key_prefix), true);
      assert.deepEqual([r[0].qpm_limit, r[0].tpm_limit, JSON.parse(r[0].allowed_models), JSON.parse(r[0].metadata), r[0].enabled],
                       [60, 100000, ["gpt-*", "claude-*"], { team: "ui" }, 1]);
      await page.locator("[data-testid=new-key-dialog]").getByRole("button", { name: "Close", exact: true }).last().click();
      await shown.waitFor({ state: "detached" });
      await row("ui-new").waitFor();
      assert.ok(!(await page.content()).includes(key), "the key is gone from the page");
      await page.reload();
      await row("ui-new").waitFor();
      assert.ok(!(await page.content()).includes(key), "and not shown again");
      // The key works against the gateway.
      const call = await fetch(GW + "/v1/chat/completions", { method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }) });
      assert.equal(call.status, 200);
      // Edit a limit; disable; delete.
      await row("ui-new").getByRole("button", { name: "Edit" }).click();
      await dlg().getByLabel("Tokens / min").fill("2000");
      await dlg().getByRole("button", { name: "Save" }).click();
      await dlg().waitFor({ state: "detached" });
      await page.waitForFunction(() => document.querySelector('tr[data-key="ui-new"]')?.textContent.includes("2,000"));
      assert.equal(db("SELECT tpm_limit FROM api_keys WHERE name = 'ui-new'")[0].tpm_limit, 2000);
      const audit = db(`SELECT detail FROM audit_log WHERE object_type = 'key' AND object_id = '${r[0].id}' ORDER BY id DESC LIMIT 1`);
      assert.deepEqual(JSON.parse(audit[0].detail).fields, ["tpm_limit"]);
      await row("ui-new").getByRole("button", { name: "Disable" }).click();
      await row("ui-new").getByRole("button", { name: "Enable" }).waitFor();
      assert.equal(db("SELECT enabled FROM api_keys WHERE name = 'ui-new'")[0].enabled, 0);
      await row("ui-new").getByRole("button", { name: "Delete" }).click();
      await page.locator("[data-testid=confirm-dialog]").getByRole("button", { name: "Delete" }).click();
      await row("ui-new").waitFor({ state: "detached" });
      assert.deepEqual(db("SELECT id FROM api_keys WHERE name = 'ui-new'"), []);
      // Per-key usage: the row's figures and its usage page.
      const alpha = db("SELECT id FROM api_keys WHERE name = 'ui-alpha'")[0].id;
      const u = (await adminApi("GET", `/admin/usage?key_id=${alpha}`)).doc.totals;
      await row("ui-alpha").getByRole("link", { name: "Usage" }).click();
      await page.waitForSelector("[data-testid=usage-totals]");
      assert.ok(page.url().includes(`key_id=${alpha}`));
      await page.waitForFunction((n) => document.querySelector("[data-testid=usage-totals] [data-stat=requests] strong")?.textContent === n, String(u.requests));
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  },

  async usage_filters_and_csv() {
    const { browser, page, errors } = await launch({ acceptDownloads: true });
    try {
      await signIn(page, { preset: true });
      await goNav(page, "Usage");
      await page.waitForSelector("[data-testid=usage-totals]");
      await page.getByLabel("Group by").selectOption("model");
      await page.getByLabel("Provider").selectOption("cfg-anthropic");
      await page.getByRole("button", { name: "Apply" }).click();
      await page.waitForURL(/group_by=model/);
      const api = (await adminApi("GET", "/admin/usage?provider=cfg-anthropic&group_by=model")).doc;
      await page.waitForFunction((n) => document.querySelector("[data-testid=usage-totals] [data-stat=requests] strong")?.textContent === n,
                                 String(api.totals.requests));
      const rows = await page.$$eval("[data-testid=usage-table] tbody tr", (tr) => tr.map((r) => [...r.children].map((c) => c.textContent)));
      assert.deepEqual(rows.map((r) => [r[0], r[1]]), api.groups.map((g) => [g.model, String(g.requests)]));
      const [dl] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export CSV" }).click()]);
      const csv = readFileSync(await dl.path(), "utf8");
      const lines = csv.trim().split("\r\n");
      assert.equal(lines[0].split(",")[0], "model");
      assert.equal(lines.length, api.groups.length + 1);
      assert.equal(lines[1].split(",")[1], String(api.groups[0].requests));
      // A bad filter: the API's message next to its field.
      await page.goto(UI + "usage?from=yesterday-ish&group_by=day");
      const err = page.locator("[data-field=from] .field-error");
      await err.waitFor();
      const bad = await adminApi("GET", "/admin/usage?from=yesterday-ish&group_by=day");
      assert.equal((await err.textContent()).trim(), bad.doc.error.message);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  },

  async audit_log_pages() {
    // Enough rows for two pages of 25.
    for (let i = 0; i < 14; i++) {
      const { doc } = await adminApi("POST", "/admin/keys", { name: `ui-audit-${i}` });
      await adminApi("DELETE", `/admin/keys/${doc.id}`);
    }
    const { browser, page, errors } = await launch();
    try {
      await signIn(page, { preset: true });
      await goNav(page, "Audit log");
      await page.waitForSelector("[data-testid=audit-table] tbody tr[data-audit-id]");
      const ids = async () => page.$$eval("[data-testid=audit-table] tr[data-audit-id]", (tr) => tr.map((r) => Number(r.dataset.auditId)));
      const first = await ids();
      const newest = db("SELECT id FROM audit_log ORDER BY id DESC LIMIT 25").map((r) => r.id);
      assert.deepEqual(first, newest, "newest first, 25 a page");
      await page.getByRole("button", { name: "Older" }).click();
      await page.waitForFunction((top) => Number(document.querySelector("[data-testid=audit-table] tr[data-audit-id]")?.dataset.auditId) < top, first[24]);
      assert.deepEqual(await ids(), db(`SELECT id FROM audit_log WHERE id < ${first[24]} ORDER BY id DESC LIMIT 25`).map((r) => r.id));
      await page.getByRole("button", { name: "Newer" }).click();
      await page.waitForFunction((top) => Number(document.querySelector("[data-testid=audit-table] tr[data-audit-id]")?.dataset.auditId) === top, first[0]);
      // Filter by object.
      await page.getByLabel("Object type").selectOption("provider");
      await page.getByRole("button", { name: "Apply" }).click();
      // Wait for the filtered rows themselves: "every row says provider"
      // also holds for the empty table shown while the page reloads.
      const providerRows = db("SELECT id FROM audit_log WHERE object_type = 'provider' ORDER BY id DESC LIMIT 25").map((r) => r.id);
      await page.waitForFunction(
        (want) => JSON.stringify([...document.querySelectorAll("[data-testid=audit-table] tr[data-audit-id]")].map((r) => Number(r.dataset.auditId))) === JSON.stringify(want),
        providerRows,
      );
      assert.ok((await page.$$eval("[data-testid=audit-table] tr[data-audit-id]", (tr) => tr.every((r) => r.textContent.includes("provider")))), "each row names a provider");
      assert.deepEqual(await ids(), providerRows);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  },

  async keyboard_and_narrow_screen() {
    const { browser, page, errors } = await launch({ viewport: { width: 360, height: 740 } });
    try {
      // Sign in with the keyboard alone.
      await page.goto(UI);
      await page.waitForSelector("#admin-key");
      assert.equal(await page.evaluate(() => document.activeElement?.id), "admin-key", "the key field has focus");
      await page.keyboard.type(ADMIN_KEY);
      await page.keyboard.press("Enter");
      await page.waitForSelector("[data-testid=dashboard]");
      for (const p of ["", "providers", "keys", "usage", "audit"]) {
        await page.goto(UI + p);
        await page.waitForSelector("main .page");
        await page.waitForLoadState("networkidle");
        const w = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(w <= 360, `${p || "dashboard"} is ${w} px wide at 360`);
      }
      // The menu opens from the keyboard; a dialog closes with Escape.
      await page.focus(".menu-btn");
      await page.keyboard.press("Enter");
      await page.getByRole("link", { name: "Keys" }).waitFor();
      await page.keyboard.press("Tab");
      await page.keyboard.press("Tab");
      await page.keyboard.press("Tab");
      await page.keyboard.press("Enter");
      await page.waitForSelector("[data-testid=keys]");
      await page.getByRole("button", { name: "Create key" }).focus();
      await page.keyboard.press("Enter");
      await page.locator("[data-testid=key-dialog]").waitFor();
      assert.equal(await page.evaluate(() => document.activeElement?.closest("dialog") !== null), true, "focus moved into the dialog");
      await page.keyboard.press("Escape");
      await page.locator("[data-testid=key-dialog]").waitFor({ state: "detached" });
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  },

  async chinese_ui() {
    const { browser, page, errors } = await launch({ locale: "zh-CN" });
    try {
      await page.goto(UI);
      // A Chinese browser gets Chinese from the start.
      await page.getByRole("heading", { name: "管理员登录" }).waitFor();
      await page.fill("#admin-key", ADMIN_KEY);
      await page.getByRole("button", { name: "登录" }).click();
      await page.waitForSelector("[data-testid=dashboard]");
      assert.equal(await page.evaluate(() => document.documentElement.lang), "zh-CN");
      const nav = await page.$$eval("nav a", (a) => a.map((x) => x.textContent));
      assert.deepEqual(nav, ["仪表盘", "上游提供商", "密钥", "用量", "审计日志"]);
      for (const [p, heading] of [["providers", "上游提供商"], ["keys", "密钥"], ["usage", "用量"], ["audit", "审计日志"]]) {
        await page.goto(UI + p);
        await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
      }
      await page.goto(UI);
      await page.getByRole("heading", { name: "连接池健康状况" }).waitFor();
      // Switching back to English stays across a reload.
      await page.getByTestId("lang").selectOption("en");
      await page.getByRole("heading", { name: "Pool health" }).waitFor();
      await page.reload();
      await page.getByRole("heading", { name: "Pool health" }).waitFor();
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  },

  async dark_mode_and_screenshots() {
    const shots = env("SHOTS_DIR");
    mkdirSync(shots, { recursive: true });
    const { browser, context, page, errors } = await launch({ colorScheme: "dark" });
    const foreign = [];
    context.on("request", (r) => { if (!r.url().startsWith(GW) && !r.url().startsWith("data:")) foreign.push(r.url()); });
    const bg = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    try {
      await signIn(page, { preset: true });
      // The system's dark preference applies by default.
      assert.equal(await bg(), "rgb(15, 19, 26)", "dark by the system's preference");
      await page.getByTestId("theme").selectOption("light");
      assert.equal(await bg(), "rgb(246, 247, 249)", "light when chosen");
      await page.getByTestId("theme").selectOption("dark");
      await page.emulateMedia({ colorScheme: "light" });
      assert.equal(await bg(), "rgb(15, 19, 26)", "dark when chosen, whatever the system says");
      await page.reload();
      await page.waitForSelector("[data-testid=dashboard]");
      assert.equal(await bg(), "rgb(15, 19, 26)", "the choice is kept");
      const pages = [["dashboard", ""], ["providers", "providers"], ["keys", "keys"], ["usage", "usage?group_by=model"], ["audit", "audit"]];
      for (const theme of ["light", "dark"]) {
        await page.getByTestId("theme").selectOption(theme);
        for (const [name, p] of pages) {
          await page.goto(UI + p);
          await page.waitForSelector("main .page");
          await page.waitForLoadState("networkidle");
          await page.screenshot({ path: path.join(shots, `${name}-${theme}.png`), fullPage: true });
        }
      }
      // The sign-in page, and the key dialog, in both themes too.
      for (const theme of ["light", "dark"]) {
        await page.getByTestId("theme").selectOption(theme);
        await page.goto(UI + "keys");
        await page.getByRole("button", { name: "Create key" }).click();
        await page.locator("[data-testid=key-dialog]").waitFor();
        await page.screenshot({ path: path.join(shots, `key-dialog-${theme}.png`) });
      }
      await page.keyboard.press("Escape");
      await page.getByRole("button", { name: "Sign out" }).click();
      for (const theme of ["light", "dark"]) {
        await page.getByTestId("theme").selectOption(theme);
        await page.waitForSelector("#admin-key");
        await page.screenshot({ path: path.join(shots, `signin-${theme}.png`) });
      }
      note(`screenshots in ${shots}`);
      assert.deepEqual(foreign, [], "no request leaves the gateway");
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  },

  // Last: it blocks this address for wrong keys for the rest of the window.
  async copilot_device_flow() {
    const GH = env("GITHUB_MOCK");
    // GitHub: the first poll finds the code not entered yet, the next one approved.
    await mockCtl(GH, "config", { outcomes: ["authorization_pending", "ok"], interval: 1 });
    const before = await mockCtl(GH, "stats");
    const { browser, context, page, errors } = await launch({ permissions: ["clipboard-read", "clipboard-write"] });
    // The verification page the dialog opens (the machine has no internet).
    await context.route("https://github.com/**", (r) => r.fulfill({ status: 200, contentType: "text/html",
                                                                    body: "<title>Device activation</title>" }));
    try {
      await signIn(page, { preset: true });
      assert.deepEqual(db("SELECT provider FROM credentials WHERE provider = 'cfg-copilot'"), []);
      // No account yet: the pool says it waits for a login, and so does the page.
      const prow = page.locator("[data-testid=providers-table] tr[data-provider=cfg-copilot]");
      await goNav(page, "Providers");
      await prow.filter({ hasText: "Needs login" }).waitFor();
      const pool = async () => (await (await fetch(GW + "/health", { headers: { Authorization: `Bearer ${ADMIN_KEY}` } })).json())
        .providers.find((p) => p.name === "cfg-copilot");
      assert.equal((await pool()).credential, "none");
      const dlg = await openAccount(page, "cfg-copilot", "copilot-dialog");
      await shown(dlg, "logged_in").waitFor();
      assert.equal((await shown(dlg, "logged_in").textContent()).trim(), "No");
      const opened = context.waitForEvent("page");
      await dlg.getByRole("button", { name: "Sign in with GitHub" }).click();
      // The code, as GitHub issued it and the session keeps it.
      const code = (await dlg.getByTestId("user-code").textContent()).trim();
      assert.match(code, /^MOCK-\d{4}$/);
      const sess = db("SELECT id, status, public FROM login_sessions WHERE provider = 'cfg-copilot' ORDER BY created_at DESC LIMIT 1");
      assert.equal(sess[0].status, "pending");
      assert.equal(JSON.parse(sess[0].public).user_code, code);
      assert.equal(await dlg.getByTestId("login-status").getAttribute("data-status"), "pending");
      assert.equal((await dlg.getByTestId("login-status").textContent()).trim(), "Waiting for you to approve…");
      // The verification page is opened, and linked.
      const tab = await opened;
      await tab.waitForLoadState();
      assert.equal(tab.url(), "https://github.com/login/device");
      assert.equal(await dlg.getByRole("link", { name: "Open page" }).getAttribute("href"), "https://github.com/login/device");
      // Copyable.
      await dlg.getByTestId("device-code").getByRole("button", { name: "Copy" }).click();
      await dlg.getByTestId("device-code").getByRole("button", { name: "Copied" }).waitFor();
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), code);
      // Closed while it runs and opened again: the same login, still polled
      // (the admin app would refuse a second one for the account).
      await page.keyboard.press("Escape");
      await dlg.waitFor({ state: "detached" });
      await openAccount(page, "cfg-copilot", "copilot-dialog");
      assert.equal((await dlg.getByTestId("user-code").textContent()).trim(), code);
      // Polled until GitHub answers the token: completed.
      await dlg.locator("[data-testid=login-status][data-status=completed]").waitFor({ timeout: 20_000 });
      assert.equal((await dlg.getByTestId("login-status").textContent()).trim(), "Signed in.");
      const after = await mockCtl(GH, "stats");
      assert.ok(after.polls - before.polls >= 2, `GitHub polled ${after.polls - before.polls} times`);
      assert.equal(after.early_polls, before.early_polls, "no poll sooner than GitHub's interval");
      // The database holds the account (its tokens sealed) and the audit row.
      const cred = db("SELECT method, state, hex(secret_enc) AS sealed, extra FROM credentials WHERE provider = 'cfg-copilot'");
      assert.equal(cred.length, 1);
      assert.equal(cred[0].method, "copilot");
      assert.equal(cred[0].state, "ok");
      assert.equal(JSON.parse(cred[0].extra).login, "octo-mock");
      assert.ok(!cred[0].sealed.includes(Buffer.from("gho_").toString("hex").toUpperCase()), "the GitHub token is sealed");
      assert.equal(db(`SELECT status FROM login_sessions WHERE id = '${sess[0].id}'`)[0].status, "completed");
      assert.equal(db("SELECT count(*) AS n FROM audit_log WHERE action = 'login' AND object_id = 'cfg-copilot'")[0].n, 1);
      // The status is read again: login, plan, token expiry as the admin API says.
      const st = (await adminApi("GET", "/admin/copilot/cfg-copilot/status")).doc;
      assert.equal(st.logged_in, true);
      await dlg.locator("[data-testid=account-status] [data-key=github_login] dd", { hasText: "octo-mock" }).waitFor();
      assert.equal((await shown(dlg, "logged_in").textContent()).trim(), "Yes");
      assert.equal((await shown(dlg, "plan").textContent()).trim(), st.plan);
      assert.ok(st.token_expires_at > Date.now() / 1000, JSON.stringify(st));
      assert.equal(await shown(dlg, "token_expires_at").locator("time").getAttribute("datetime"),
                   new Date(st.token_expires_at * 1000).toISOString());
      // Premium quota, from GitHub through the admin app.
      await dlg.getByRole("button", { name: "Quota" }).click();
      const q = (await adminApi("GET", "/admin/copilot/cfg-copilot/quota")).doc.premium_interactions;
      assert.deepEqual([q.remaining, q.entitlement], [250, 300]);
      assert.equal((await dlg.getByTestId("quota-summary").textContent()).trim(),
                   `Premium requests: ${q.remaining} left of ${q.entitlement}`);
      await page.screenshot({ path: path.join(env("SHOTS_DIR"), "copilot-dialog-light.png") });
      // Reopened in the dark theme: the account as stored, no login running.
      await page.keyboard.press("Escape");
      await dlg.waitFor({ state: "detached" });
      await page.getByTestId("theme").selectOption("dark");
      await openAccount(page, "cfg-copilot", "copilot-dialog");
      await shown(dlg, "github_login").waitFor();
      assert.equal((await shown(dlg, "github_login").textContent()).trim(), "octo-mock");
      assert.equal(await dlg.getByTestId("login-status").count(), 0);
      await page.screenshot({ path: path.join(env("SHOTS_DIR"), "copilot-dialog-dark.png") });
      // Signed in: usable by the pool, and the page says so without a reload.
      await page.keyboard.press("Escape");
      await dlg.waitFor({ state: "detached" });
      assert.equal((await pool()).credential, "ok");
      await prow.filter({ hasNotText: "Needs login" }).waitFor();
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  },

  async kiro_import_refresh_quota() {
    const KM = env("KIRO_MOCK");
    const now = Math.floor(Date.now() / 1000);
    const access = `ui-kiro-access-${now}`, refresh = `ui-kiro-refresh-${now}`;
    await mockCtl(KM, "grant", { access_token: access, refresh_token: refresh });
    // The Kiro IDE's file, as it writes it (milliseconds in expiresAt).
    const token = { accessToken: access, refreshToken: refresh, expiresAt: new Date((now + 3600) * 1000).toISOString(),
                    authMethod: "social", provider: "Google", profileArn: "arn:aws:codewhisperer:us-east-1:1:profile/UI" };
    const good = path.join(env("WORK_DIR"), "kiro-auth-token.json");
    writeFileSync(good, JSON.stringify(token));
    const bad = path.join(env("WORK_DIR"), "bad", "kiro-auth-token.json");
    mkdirSync(path.dirname(bad), { recursive: true });
    const { refreshToken: _r, ...noRefresh } = token;
    writeFileSync(bad, JSON.stringify(noRefresh));
    const { browser, page, errors } = await launch();
    try {
      await signIn(page, { preset: true });
      const dlg = await openAccount(page, "cfg-kiro", "kiro-dialog");
      // No account yet: said so.
      await dlg.getByTestId("account-none").waitFor();
      await dlg.getByRole("tab", { name: "Import credentials" }).click();
      // A file the admin app refuses: its message next to the field, nothing stored.
      await dlg.getByLabel("kiro-auth-token.json").setInputFiles(bad);
      await dlg.getByRole("button", { name: "Import", exact: true }).click();
      const fieldErr = dlg.locator("[data-field=kiro_auth_token] .field-error");
      await fieldErr.waitFor();
      const api = await adminApi("POST", "/admin/kiro/import", { provider: "cfg-kiro", kiro_auth_token: noRefresh });
      assert.equal(api.status, 400);
      assert.equal(api.doc.error.field, "kiro_auth_token");
      assert.equal((await fieldErr.textContent()).trim(), api.doc.error.message);
      assert.deepEqual(db("SELECT provider FROM credentials WHERE provider = 'cfg-kiro'"), []);
      // The right file: imported, the note shown, the status read again.
      await dlg.getByLabel("kiro-auth-token.json").setInputFiles(good);
      await dlg.getByRole("button", { name: "Import", exact: true }).click();
      await dlg.getByTestId("account-notice").waitFor();
      assert.match(await dlg.getByTestId("account-notice").textContent(), /^Credentials imported\..*stale/);
      await shown(dlg, "method").waitFor();
      assert.equal((await shown(dlg, "method").textContent()).trim(), "social");
      assert.equal((await shown(dlg, "state").textContent()).trim(), "ok");
      assert.equal(await shown(dlg, "expires_at").locator("time").getAttribute("datetime"),
                   new Date((now + 3600) * 1000).toISOString());
      assert.equal(await dlg.getByTestId("account-none").count(), 0);
      let cred = db("SELECT method, state, expires_at, profile_arn, version, last_refresh, hex(secret_enc) AS sealed FROM credentials WHERE provider = 'cfg-kiro'");
      assert.equal(cred.length, 1);
      assert.deepEqual([cred[0].method, cred[0].state, cred[0].expires_at, cred[0].profile_arn],
                       ["social", "ok", now + 3600, token.profileArn]);
      for (const secret of [access, refresh])
        assert.ok(!cred[0].sealed.includes(Buffer.from(secret).toString("hex").toUpperCase()), "tokens are sealed");
      assert.equal(db("SELECT count(*) AS n FROM audit_log WHERE action = 'import' AND object_id = 'cfg-kiro'")[0].n, 1);
      // Forced refresh, against the mock Kiro auth service.
      const s0 = await mockCtl(KM, "stats");
      await dlg.getByRole("button", { name: "Refresh token now" }).click();
      await dlg.getByTestId("account-notice").filter({ hasText: "Token refreshed." }).waitFor();
      const s1 = await mockCtl(KM, "stats");
      assert.equal(s1.social_refreshes - s0.social_refreshes, 1, "one refresh reached Kiro's auth service");
      const cred2 = db("SELECT version, last_refresh, expires_at FROM credentials WHERE provider = 'cfg-kiro'")[0];
      assert.ok(cred2.version > cred[0].version && cred2.last_refresh >= now, JSON.stringify(cred2));
      await dlg.locator("[data-testid=account-status] [data-key=version] dd", { hasText: String(cred2.version) }).waitFor();
      assert.equal(await shown(dlg, "last_refresh").locator("time").getAttribute("datetime"),
                   new Date(cred2.last_refresh * 1000).toISOString());
      assert.equal(db("SELECT count(*) AS n FROM audit_log WHERE action = 'refresh' AND object_id = 'cfg-kiro'")[0].n, 1);
      // Quota: getUsageLimits through the admin app.
      await dlg.getByRole("button", { name: "Quota" }).click();
      const c = (await adminApi("GET", "/admin/kiro/cfg-kiro/quota")).doc.credits;
      assert.ok(c && c.limit > 0, JSON.stringify(c));
      assert.equal((await dlg.getByTestId("quota-summary").textContent()).trim(),
                   `Credits: ${Math.round((c.limit - c.used) * 100) / 100} left of ${c.limit}`);
      // The service's whole answer, folded away until asked for.
      assert.equal(await dlg.getByTestId("quota-raw").locator("pre").isVisible(), false);
      await dlg.getByTestId("quota-raw").locator("summary").click();
      assert.match(await dlg.getByTestId("quota-raw").locator("pre").textContent(), /"usageBreakdownList"/);
      // kiro-cli's database file instead: the account is replaced by its.
      const cliDb = path.join(env("WORK_DIR"), "kiro-cli-data.sqlite3");
      const cliExp = now + 1800, cliArn = "arn:aws:codewhisperer:us-east-1:5:profile/UICLI";
      const cliToken = { access_token: `ui-cli-access-${now}`, refresh_token: `ui-cli-refresh-${now}`,
                         expires_at: new Date(cliExp * 1000).toISOString(), provider: "Github" };
      await mockCtl(KM, "grant", { access_token: cliToken.access_token, refresh_token: cliToken.refresh_token });
      const q = (v) => `'${JSON.stringify(v).replace(/'/g, "''")}'`;
      execFileSync("sqlite3", [cliDb, "CREATE TABLE auth_kv (key TEXT PRIMARY KEY, value TEXT);" +
        "CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB);" +
        `INSERT INTO auth_kv VALUES ('kirocli:social:token', ${q(cliToken)});` +
        `INSERT INTO state VALUES ('api.codewhisperer.profile', ${q({ arn: cliArn })});`]);
      await dlg.getByLabel("kiro-cli database file").setInputFiles(cliDb);
      await dlg.getByRole("button", { name: "Import", exact: true }).click();
      await dlg.getByTestId("account-notice").filter({ hasText: "Credentials imported." }).waitFor();
      await dlg.locator("[data-testid=account-status] [data-key=profile_arn] dd", { hasText: cliArn }).waitFor();
      assert.equal(await shown(dlg, "expires_at").locator("time").getAttribute("datetime"),
                   new Date(cliExp * 1000).toISOString());
      assert.deepEqual(db("SELECT method, expires_at, profile_arn FROM credentials WHERE provider = 'cfg-kiro'"),
                       [{ method: "social", expires_at: cliExp, profile_arn: cliArn }]);
      assert.equal(db("SELECT count(*) AS n FROM audit_log WHERE action = 'import' AND object_id = 'cfg-kiro'")[0].n, 2);
      await page.screenshot({ path: path.join(env("SHOTS_DIR"), "kiro-dialog-light.png") });
      // Reopened in the dark theme and in Chinese: every label translated.
      await page.keyboard.press("Escape");
      await dlg.waitFor({ state: "detached" });
      await page.getByTestId("theme").selectOption("dark");
      await page.getByTestId("lang").selectOption("zh");
      await page.locator("[data-testid=providers-table] tr[data-provider=cfg-kiro]").getByRole("button", { name: "账号" }).click();
      await dlg.getByRole("heading", { name: "Kiro 账号：cfg-kiro" }).waitFor();
      await dlg.locator("[data-key=method] dt", { hasText: "登录方式" }).waitFor();
      assert.equal((await dlg.locator("[data-key=has_refresh_token] dd").textContent()).trim(), "是");
      await dlg.getByRole("button", { name: "配额" }).click();
      await dlg.getByTestId("quota-summary").waitFor();
      assert.equal((await dlg.getByTestId("quota-summary").textContent()).trim(),
                   `额度：剩余 ${Math.round((c.limit - c.used) * 100) / 100} / 共 ${c.limit}`);
      await page.screenshot({ path: path.join(env("SHOTS_DIR"), "kiro-dialog-dark-zh.png") });
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  },

  async kiro_social_and_device_login() {
    const KM = env("KIRO_MOCK");
    await mockCtl(KM, "config", { outcomes: ["authorization_pending", "ok"], interval: 1 });
    const { browser, context, page, errors } = await launch();
    // Where the sign-in page sends the browser: Kiro's loopback callback,
    // which nothing answers on the admin's machine either; the admin copies
    // its address from the address bar.
    const landed = new Promise((resolve) => context.on("request", (r) => {
      if (r.url().startsWith("http://localhost:3128/oauth/callback?")) resolve(r.url());
    }));
    try {
      await signIn(page, { preset: true });
      const dlg = await openAccount(page, "cfg-kiro-login", "kiro-dialog");
      await dlg.getByTestId("account-none").waitFor();
      // Social sign-in: the page opens, its callback address is pasted back.
      const opened = context.waitForEvent("page");
      await dlg.getByRole("button", { name: "Open sign-in page" }).click();
      const tab = await opened;
      const callback = await landed;
      await tab.close();
      // A callback of another sign-in (its state changed): the API's message at the field.
      const forged = callback.replace(/state=[^&]+/, "state=forged");
      await dlg.getByLabel("Callback URL").fill(forged);
      await dlg.getByRole("button", { name: "Finish sign-in" }).click();
      const fieldErr = dlg.locator("[data-field=callback_url] .field-error");
      await fieldErr.waitFor();
      assert.match(await fieldErr.textContent(), /state/);
      assert.deepEqual(db("SELECT provider FROM credentials WHERE provider = 'cfg-kiro-login'"), []);
      await dlg.getByLabel("Callback URL").fill(callback);
      await dlg.getByRole("button", { name: "Finish sign-in" }).click();
      await dlg.getByTestId("account-notice").filter({ hasText: "Signed in." }).waitFor();
      await dlg.locator("[data-testid=account-status] [data-key=method] dd", { hasText: "social" }).waitFor();
      assert.equal(db("SELECT method FROM credentials WHERE provider = 'cfg-kiro-login'")[0].method, "social");
      // AWS Builder ID: the device flow, the code shown, polled to completion.
      await dlg.getByRole("tab", { name: /Builder ID/ }).click();
      await dlg.getByLabel("AWS Builder ID").check();
      await dlg.getByRole("button", { name: "Start", exact: true }).click();
      const code = (await dlg.getByTestId("user-code").textContent()).trim();
      const sess = db("SELECT kind, public FROM login_sessions WHERE provider = 'cfg-kiro-login' AND status = 'pending'");
      assert.equal(sess.length, 1);
      assert.equal(sess[0].kind, "kiro-builder-id");
      assert.equal(JSON.parse(sess[0].public).user_code, code);
      assert.equal(await dlg.getByRole("link", { name: "Open page" }).getAttribute("href"),
                   JSON.parse(sess[0].public).verification_uri_complete);
      await dlg.locator("[data-testid=login-status][data-status=completed]").waitFor({ timeout: 20_000 });
      await dlg.locator("[data-testid=account-status] [data-key=method] dd", { hasText: "builder-id" }).waitFor();
      const cred = db("SELECT method, client_id FROM credentials WHERE provider = 'cfg-kiro-login'")[0];
      assert.equal(cred.method, "builder-id");
      assert.ok(cred.client_id, "the OIDC client is kept for refreshes");
      assert.equal((await mockCtl(KM, "stats")).early_polls, 0, "no poll sooner than the interval");
      assert.equal(db("SELECT count(*) AS n FROM audit_log WHERE action = 'login' AND object_id = 'cfg-kiro-login'")[0].n, 2);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  },

  async copilot_provider_with_github_token() {
    const { browser, page, errors } = await launch();
    const dlg = () => page.locator("[data-testid=provider-dialog]");
    const token = "ghu_uiProviderFormToken0123456789";
    try {
      await signIn(page, { preset: true });
      await goNav(page, "Providers");
      // A new Copilot provider with the GitHub token of an account the admin
      // already has: the provider, then the token in a PUT of its own.
      await page.getByRole("button", { name: "Add provider" }).click();
      await dlg().getByLabel("Name").fill("ui-copilot-db");
      await dlg().getByLabel("Type").selectOption("copilot");
      await dlg().getByLabel("GitHub token (optional)").fill(token);
      await dlg().getByLabel("Weight").fill("1");
      // Without a base URL the admin app refuses it: its message at the field, nothing stored.
      await dlg().getByRole("button", { name: "Create" }).click();
      const fieldErr = dlg().locator("[data-field=base_url] .field-error");
      await fieldErr.waitFor();
      assert.equal((await fieldErr.textContent()).trim(), "'base_url' is required for type copilot");
      assert.deepEqual(db("SELECT id FROM providers WHERE name = 'ui-copilot-db'"), []);
      assert.deepEqual(db("SELECT provider FROM credentials WHERE provider = 'ui-copilot-db'"), []);
      await dlg().getByLabel("Base URL").fill("https://api.githubcopilot.com");
      await dlg().getByRole("button", { name: "Create" }).click();
      await dlg().waitFor({ state: "detached" });
      await page.locator("[data-testid=providers-table] tr[data-provider=ui-copilot-db]").waitFor();
      const row = db("SELECT id, type FROM providers WHERE name = 'ui-copilot-db'");
      assert.equal(row[0].type, "copilot");
      const cred = db("SELECT method, hex(secret_enc) AS sealed FROM credentials WHERE provider = 'ui-copilot-db'");
      assert.equal(cred.length, 1, "the account's token is stored");
      assert.equal(cred[0].method, "copilot");
      assert.ok(!cred[0].sealed.includes(Buffer.from(token).toString("hex").toUpperCase()), "sealed");
      assert.equal(db("SELECT count(*) AS n FROM audit_log WHERE action = 'set_github_token' AND object_id = 'ui-copilot-db'")[0].n, 1);
      // Edited later with another field changed too: both are stored.
      await page.locator("[data-testid=providers-table] tr[data-provider=ui-copilot-db]").getByRole("button", { name: "Edit" }).click();
      await dlg().getByLabel("Weight").fill("4");
      await dlg().getByLabel("GitHub token (optional)").fill(token + "x");
      await dlg().getByRole("button", { name: "Save" }).click();
      await dlg().waitFor({ state: "detached" });
      assert.equal(db("SELECT weight FROM providers WHERE name = 'ui-copilot-db'")[0].weight, 4);
      assert.equal(db("SELECT count(*) AS n FROM audit_log WHERE action = 'set_github_token' AND object_id = 'ui-copilot-db'")[0].n, 2);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  },

  async sign_in_slowed_down_after_wrong_keys() {
    const { browser, page, errors } = await launch();
    try {
      await page.goto(UI);
      let blocked = false;
      for (let i = 0; i < 12 && !blocked; i++) {
        await page.fill("#admin-key", `agw-wrong-guess-${i}-0000000000000`);
        await page.click("button[type=submit]");
        await page.waitForSelector("[data-testid=signin-error]");
        await page.waitForFunction(() => !document.querySelector("button[type=submit]")?.hasAttribute("disabled") ||
                                         /Try again in/.test(document.querySelector("[data-testid=signin-error]")?.textContent ?? ""));
        blocked = /Try again in \d+ s/.test(await page.textContent("[data-testid=signin-error]"));
      }
      assert.ok(blocked, "the admin app slowed the guesses down");
      assert.equal(await page.isDisabled("button[type=submit]"), true, "sign-in waits for Retry-After");
      const r = await fetch(GW + "/admin/keys", { headers: { Authorization: "Bearer agw-one-more-wrong-000000000" } });
      assert.equal(r.status, 429);
      assert.match(r.headers.get("retry-after"), /^\d+$/);
      assert.deepEqual(errors.filter((e) => !/429/.test(e)), []);
    } finally {
      await browser.close();
    }
  },
};

const name = process.argv[2];
if (!cases[name]) {
  console.error(`unknown case '${name}'; cases: ${Object.keys(cases).join(", ")}`);
  process.exit(2);
}
try {
  await cases[name]();
  process.exit(0);
} catch (e) {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
}

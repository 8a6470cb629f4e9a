import { describe, expect, it } from "vitest";
import type { ClientKey, Provider, UsageGroup, UsageStats } from "./api";
import {
  FormError, bucketLabel, githubTokenBody, fillSeries, fmtCompact, keyBody, keyForm, parseList, needsLogin, parseWhole, pollDelayMs, quotaSummary,
  providerBody, providerForm, secondsLeft, toBase64, topGroups, usageCsv,
} from "./logic";

const stats = (o: Partial<UsageStats> = {}): UsageStats => ({
  requests: 0, input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0,
  errors: 0, streamed: 0, estimated_token_counts: 0,
  latency_ms: { p50: null, p90: null, p95: null, p99: null, max: null, avg: null }, ttft_ms_avg: null, ...o,
});

describe("time series", () => {
  it("labels buckets as /admin/usage does (UTC)", () => {
    expect(bucketLabel(1717171717, "hour")).toBe("2024-05-31T16:00:00Z");
    expect(bucketLabel(1717171717, "day")).toBe("2024-05-31");
  });
  it("fills the hours without traffic with zeros, in order", () => {
    const from = Date.UTC(2024, 4, 31, 10) / 1000, to = from + 4 * 3600;
    const groups: UsageGroup[] = [
      { ...stats({ requests: 3, errors: 1, input_tokens: 10, output_tokens: 5 }), hour: "2024-05-31T12:00:00Z" },
      { ...stats({ requests: 1 }), hour: "2024-05-31T10:00:00Z" },
    ];
    expect(fillSeries(groups, "hour", from, to)).toEqual([
      { label: "2024-05-31T10:00:00Z", requests: 1, errors: 0, tokens: 0 },
      { label: "2024-05-31T11:00:00Z", requests: 0, errors: 0, tokens: 0 },
      { label: "2024-05-31T12:00:00Z", requests: 3, errors: 1, tokens: 15 },
      { label: "2024-05-31T13:00:00Z", requests: 0, errors: 0, tokens: 0 },
    ]);
  });
  it("counts days across a month end", () => {
    const from = Date.UTC(2024, 0, 30) / 1000;
    const pts = fillSeries([{ ...stats({ requests: 2 }), day: "2024-02-01" }], "day", from, from + 3 * 86400);
    expect(pts.map((p) => [p.label, p.requests])).toEqual([["2024-01-30", 0], ["2024-01-31", 0], ["2024-02-01", 2]]);
  });
  it("ranks the top groups by requests, then tokens", () => {
    const g = (n: string, r: number, t: number): UsageGroup => ({ ...stats({ requests: r, input_tokens: t }), model: n });
    expect(topGroups([g("a", 1, 0), g("b", 5, 0), g("c", 5, 9), g("d", 2, 0)], 3).map((x) => x.model)).toEqual(["c", "b", "d"]);
  });
  it("writes compact axis numbers", () => {
    expect([fmtCompact(0), fmtCompact(2.5), fmtCompact(999), fmtCompact(1500), fmtCompact(2_500_000), fmtCompact(3e9)])
      .toEqual(["0", "2.5", "999", "1.5k", "2.5M", "3G"]);
  });
});

describe("CSV export", () => {
  it("writes one row per group with the grouping's label columns, quoted where needed", () => {
    const groups: UsageGroup[] = [
      { ...stats({ requests: 2, latency_ms: { p50: 5, p90: 6, p95: 7, p99: 8, max: 9, avg: 6 } }), key_id: 1, key_name: "team, \"a\"", model: "gpt-4o" },
      { ...stats({ requests: 1 }), key_id: null, key_name: null, model: "=cmd()" },
    ];
    const csv = usageCsv("key_model", stats(), groups);
    const lines = csv.split("\r\n");
    expect(lines[0].startsWith("key_id,key_name,model,requests,errors,")).toBe(true);
    expect(lines[1]).toBe('1,"team, ""a""",gpt-4o,2,0,0,0,0,0,0,0,5,6,7,8,9,6,');
    // A cell a spreadsheet would run as a formula is defused.
    expect(lines[2].startsWith(",,'=cmd(),1,")).toBe(true);
    expect(csv.endsWith("\r\n")).toBe(true);
  });
  it("writes the totals when nothing is grouped", () => {
    const lines = usageCsv(null, stats({ requests: 7 }), []).trim().split("\r\n");
    expect(lines).toHaveLength(2);
    expect(lines[0].startsWith("requests,")).toBe(true);
    expect(lines[1].startsWith("7,")).toBe(true);
  });
});

describe("form values", () => {
  it("splits lists on commas and new lines", () => {
    expect(parseList(" gpt-*, o[0-9]*\n\nclaude-* ,")).toEqual(["gpt-*", "o[0-9]*", "claude-*"]);
  });
  it("takes whole numbers only", () => {
    expect([parseWhole("42"), parseWhole(" 0 "), parseWhole(""), parseWhole("", 0), parseWhole("-1"),
            parseWhole("1.5"), parseWhole("1e3"), parseWhole("99999999999999999999")])
      .toEqual([42, 0, null, 0, null, null, null, null]);
  });
});

const provider: Provider = {
  id: "4", name: "p", type: "openai", base_url: "https://api.openai.com/v1", has_api_key: true,
  api_key_hint: "sk-...abcd", weight: 100, enabled: true, models: ["gpt-*"], default_model: null,
  source: "database", read_only: false, created_at: 1, updated_at: 1,
};

describe("provider form", () => {
  it("sends only what changed (a partial PUT); an empty key field keeps the key", () => {
    const f = providerForm(provider);
    expect(providerBody(f, provider)).toEqual({});
    expect(providerBody({ ...f, weight: "7", models: "gpt-*\no1" }, provider)).toEqual({ weight: 7, models: ["gpt-*", "o1"] });
    expect(providerBody({ ...f, api_key: "sk-new" }, provider)).toEqual({ api_key: "sk-new" });
    // A GitHub token goes in a PUT of its own, and only to a Copilot provider.
    expect(providerBody({ ...f, github_token: "gho_x" }, provider)).toEqual({});
    expect(githubTokenBody({ ...f, github_token: "gho_x" })).toBeNull();
    const cp = { ...provider, type: "copilot" };
    expect(providerBody({ ...providerForm(cp), github_token: "gho_x", weight: "3" }, cp)).toEqual({ weight: 3 });
    expect(githubTokenBody({ ...providerForm(cp), github_token: "gho_x" })).toEqual({ github_token: "gho_x" });
    expect(githubTokenBody(providerForm(cp))).toBeNull();
    expect(providerBody({ ...f, default_model: " gpt-4o " }, provider)).toEqual({ default_model: "gpt-4o" });
    expect(providerBody({ ...providerForm({ ...provider, default_model: "x" }), default_model: "" },
                        { ...provider, default_model: "x" })).toEqual({ default_model: null });
  });
  it("creates with every field, the base URL only when given", () => {
    const body = providerBody({ ...providerForm(), name: " n ", api_key: "k", models: "a,b" });
    expect(body).toEqual({ name: "n", type: "openai", weight: 1, enabled: true, models: ["a", "b"], default_model: null, api_key: "k" });
  });
  it("refuses a weight that is not a whole number, naming the field", () => {
    expect(() => providerBody({ ...providerForm(), weight: "heavy" })).toThrowError(FormError);
    try { providerBody({ ...providerForm(), weight: "-3" }); } catch (e) { expect((e as FormError).field).toBe("weight"); }
  });
});

const key: ClientKey = {
  id: 3, name: "team", key_prefix: "agw-12345678", enabled: true, allowed_models: null,
  allowed_providers: ["a"], default_provider: null, qpm_limit: 60, tpm_limit: 0, expires_at: null,
  metadata: { team: "x" }, created_at: 1, updated_at: 1,
};

describe("key form", () => {
  it("round-trips a key without changes", () => {
    expect(keyBody(keyForm(key), key)).toEqual({});
  });
  it("sends changed limits and lists; null lifts a restriction, [] allows nothing", () => {
    const f = keyForm(key);
    expect(keyBody({ ...f, tpm: "1000", restrictProviders: false }, key)).toEqual({ tpm_limit: 1000, allowed_providers: null });
    expect(keyBody({ ...f, restrictModels: true, allowed_models: "" }, key)).toEqual({ allowed_models: [] });
  });
  it("creates without the null members", () => {
    expect(keyBody({ ...keyForm(), name: "new" })).toEqual({ name: "new", enabled: true, qpm_limit: 0, tpm_limit: 0 });
  });
  it("reads the expiry in local time and clears it with null", () => {
    const f = keyForm(key);
    const body = keyBody({ ...f, expires_at: "2030-01-02T03:04" }, key);
    expect(body.expires_at).toBe(Math.floor(new Date("2030-01-02T03:04").getTime() / 1000));
    const k2 = { ...key, expires_at: 1900000000 };
    expect(keyBody({ ...keyForm(k2), expires_at: "" }, k2)).toEqual({ expires_at: null });
  });
  it("checks metadata is a JSON object, and limits are numbers", () => {
    for (const m of ["[1]", "{", "3", "null"])
      expect(() => keyBody({ ...keyForm(), name: "n", metadata: m })).toThrowError(/badMetadata/);
    expect(keyBody({ ...keyForm(key), metadata: "" }, key)).toEqual({ metadata: null });
    try { keyBody({ ...keyForm(), qpm: "x" }); } catch (e) { expect((e as FormError).field).toBe("qpm_limit"); }
  });
});

describe("device flow helpers", () => {
  it("polls at the server's interval, slower after slow_down", () => {
    expect([pollDelayMs(null, 5), pollDelayMs(null, 0), pollDelayMs({ interval: 10 }, 5),
            pollDelayMs({ interval: 10, poll_after: 3 }, 5), pollDelayMs({ poll_after: 0 }, 5)])
      .toEqual([5000, 5000, 10000, 3000, 1000]);
  });
  it("tells an account waiting for a login from /health's credential", () => {
    expect([needsLogin({ credential: "none" }), needsLogin({ credential: "needs_login" }), needsLogin({ credential: "ok" }),
            needsLogin({}), needsLogin(undefined)]).toEqual([true, true, false, false, false]);
  });
  it("sums up a quota: Copilot's premium interactions, Kiro's credits", () => {
    expect(quotaSummary({ premium_interactions: { entitlement: 300, remaining: 250, percent_remaining: 83.3, unlimited: false } }))
      .toEqual({ kind: "premium", left: 250, total: 300, unlimited: false });
    expect(quotaSummary({ premium_interactions: { entitlement: null, remaining: null, unlimited: true } }))
      .toEqual({ kind: "premium", left: 0, total: 0, unlimited: true });
    expect(quotaSummary({ credits: { limit: 50, used: 12.5, next_reset: 1 }, usage: {} }))
      .toEqual({ kind: "credits", left: 37.5, total: 50, unlimited: false });
    expect([quotaSummary({ credits: null }), quotaSummary(null), quotaSummary({ premium_interactions: { remaining: null } })])
      .toEqual([null, null, null]);
  });
  it("counts down to the expiry", () => {
    expect(secondsLeft(1000, 990.4)).toBe(10);
    expect(secondsLeft(1000, 2000)).toBe(0);
  });
  it("encodes a file as base64, large ones too", () => {
    expect(toBase64(new TextEncoder().encode("SQLite format 3\0"))).toBe(btoa("SQLite format 3\0"));
    const big = new Uint8Array(100_000).map((_, i) => i % 251);
    expect(atob(toBase64(big)).length).toBe(100_000);
  });
});

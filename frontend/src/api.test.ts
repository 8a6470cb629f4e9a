import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError, api, loadKey, onUnauthorized, query, saveKey, seg } from "./api";

function reply(status: number, body: unknown, headers: Record<string, string> = {}) {
  return Promise.resolve(new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } }));
}

describe("the admin API client", () => {
  beforeEach(() => { sessionStorage.clear(); localStorage.clear(); });
  afterEach(() => vi.unstubAllGlobals());

  it("keeps the key for the session, or on this computer when asked", () => {
    saveKey("k1", false);
    expect([sessionStorage.getItem("antigw.adminKey"), localStorage.getItem("antigw.adminKey")]).toEqual(["k1", null]);
    saveKey("k2", true);
    expect(localStorage.getItem("antigw.adminKey")).toBe("k2");
    sessionStorage.clear();
    expect(loadKey()).toBe("k2");
  });

  it("sends the key and reads the error shape, field and Retry-After included", async () => {
    saveKey("the-key", false);
    const fetch = vi.fn(() => reply(400, { error: { type: "invalid_request_error", message: "'qpm' must be ...", field: "qpm" } }, { "Retry-After": "7" }));
    vi.stubGlobal("fetch", fetch);
    const err = (await api.post("/admin/keys", { qpm: -1 }).catch((e) => e)) as ApiError;
    expect(err).toBeInstanceOf(ApiError);
    expect([err.status, err.type, err.message, err.field, err.retryAfter]).toEqual([400, "invalid_request_error", "'qpm' must be ...", "qpm", 7]);
    const [path, init] = fetch.mock.calls[0] as unknown as [string, RequestInit];
    expect(path).toBe("/admin/keys");
    expect((init.headers as Record<string, string>).Authorization).toBe("Bearer the-key");
    expect(init.body).toBe('{"qpm":-1}');
  });

  it("signs out on a 401 from any call", async () => {
    saveKey("stale", true);
    vi.stubGlobal("fetch", vi.fn(() => reply(401, { error: { type: "authentication_error", message: "wrong admin key", field: null } })));
    const seen = vi.fn();
    const off = onUnauthorized(seen);
    await expect(api.get("/admin/keys")).rejects.toMatchObject({ status: 401 });
    off();
    expect(seen).toHaveBeenCalledOnce();
    expect(loadKey()).toBeNull();
  });

  it("reads /health's 503 as an answer, not an error", async () => {
    vi.stubGlobal("fetch", vi.fn(() => reply(503, { status: "unavailable", providers: [] })));
    expect(await api.get("/health")).toEqual({ status: "unavailable", providers: [] });
  });

  it("turns a network failure into an ApiError of status 0", async () => {
    vi.stubGlobal("fetch", vi.fn(() => Promise.reject(new TypeError("Failed to fetch"))));
    await expect(api.get("/admin/keys")).rejects.toMatchObject({ status: 0, message: "Failed to fetch" });
  });

  it("builds query strings and path segments", () => {
    expect(query({ a: 1, b: "", c: null, d: undefined, e: "x y" })).toBe("?a=1&e=x+y");
    expect(query({})).toBe("");
    expect(seg("cfg:my provider/x")).toBe("cfg:my%20provider%2Fx");
  });
});

// The Kiro and Copilot account dialogs against mocked admin endpoints
// (/admin/kiro/..., /admin/copilot/...), answering in the shapes antigw-admin
// answers (the end-to-end suite drives the same dialogs against the real
// admin app and the mock GitHub and Kiro services).
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import type { ReactNode } from "react";
import type { Provider } from "../api";
import { CopilotDialog, KiroDialog } from "./Accounts";

type Call = { method: string; path: string; body: unknown };

function mockApi(routes: Record<string, (body: unknown, n: number) => [number, unknown]>) {
  const calls: Call[] = [];
  const counts: Record<string, number> = {};
  vi.stubGlobal("fetch", vi.fn(async (path: string, init: RequestInit) => {
    const method = init.method ?? "GET";
    const body = init.body ? JSON.parse(String(init.body)) : undefined;
    calls.push({ method, path, body });
    const k = `${method} ${path}`;
    counts[k] = (counts[k] ?? 0) + 1;
    const route = routes[k];
    const [status, doc] = route ? route(body, counts[k]) : [404, { error: { type: "not_found_error", message: `no route ${k}`, field: null } }];
    return new Response(JSON.stringify(doc), { status, headers: { "Content-Type": "application/json" } });
  }));
  return calls;
}

function wrap(node: ReactNode) {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(<QueryClientProvider client={qc}>{node}</QueryClientProvider>);
}

const prov = (name: string, type: string): Provider => ({
  id: "9", name, type, base_url: "", has_api_key: false, api_key_hint: null, weight: 1, enabled: true,
  models: [], default_model: null, source: "database", read_only: false, created_at: 1, updated_at: 1,
});

beforeEach(() => {
  sessionStorage.clear();
  sessionStorage.setItem("antigw.adminKey", "k");
  HTMLDialogElement.prototype.showModal = function showModal(this: HTMLDialogElement) { this.open = true; };
  HTMLDialogElement.prototype.close = function close(this: HTMLDialogElement) { this.open = false; };
  vi.stubGlobal("open", vi.fn());
});
afterEach(() => { cleanup(); vi.unstubAllGlobals(); });

describe("Copilot dialog", () => {
  const loggedOut = { provider: "gh", logged_in: false };
  const loggedIn = { provider: "gh", logged_in: true, state: "ok", github_login: "octo", plan: "copilot_for_business",
                     token_expires_at: 1900000000, token_refresh_at: 1899999000, last_refresh: 1899998000,
                     last_error: null, models: 3 };

  it("runs the device flow: code shown and copyable, link opened, status polled to completion", async () => {
    const calls = mockApi({
      "GET /admin/copilot/gh/status": (_b, n) => [200, n === 1 ? loggedOut : loggedIn],
      "POST /admin/copilot/login": () => [201, { id: "L1", provider: "gh", status: "pending", user_code: "ABCD-1234",
                                                 verification_uri: "https://github.com/login/device",
                                                 interval: 1, expires_at: Math.floor(Date.now() / 1000) + 900 }],
      "GET /admin/copilot/login/L1": (_b, n) => [200, { id: "L1", provider: "gh", status: n < 2 ? "pending" : "completed",
                                                       user_code: "ABCD-1234", verification_uri: "https://github.com/login/device",
                                                       interval: 1, expires_at: 1900000000,
                                                       ...(n < 2 ? {} : { github_login: "octo" }) }],
      "GET /admin/copilot/gh/quota": () => [200, { provider: "gh", plan: "business", quota_reset_date: "2027-01-01",
                                                   premium_interactions: { entitlement: 300, remaining: 250, percent_remaining: 83.3, unlimited: false } }],
    });
    wrap(<CopilotDialog provider={prov("gh", "copilot")} onClose={() => {}} />);
    await screen.findByTestId("account-status");
    fireEvent.click(screen.getByRole("button", { name: "Sign in with GitHub" }));
    expect((await screen.findByTestId("user-code")).textContent).toBe("ABCD-1234");
    expect(window.open).toHaveBeenCalledWith("https://github.com/login/device", "_blank", "noopener");
    expect(screen.getByRole("link", { name: "Open page" }).getAttribute("href")).toBe("https://github.com/login/device");
    // The status line appears with the first poll's answer.
    expect((await screen.findByTestId("login-status")).dataset.status).toBe("pending");
    await waitFor(() => expect(screen.getByTestId("login-status").dataset.status).toBe("completed"), { timeout: 5000 });
    expect(calls.filter((c) => c.path === "/admin/copilot/login/L1").length).toBe(2);
    expect(calls.find((c) => c.path === "/admin/copilot/login")!.body).toEqual({ provider: "gh" });
    // The status is read again once signed in.
    await screen.findByText("octo");
    expect(screen.getByTestId("account-status").textContent).toContain("copilot_for_business");
    // Labelled fields, flags as yes/no, times as times.
    const row = (k: string) => screen.getByTestId("account-status").querySelector(`[data-key=${k}]`)!;
    expect(row("github_login").querySelector("dt")!.textContent).toBe("GitHub user");
    expect(row("logged_in").querySelector("dd")!.textContent).toBe("Yes");
    expect(row("token_expires_at").querySelector("time")!.getAttribute("datetime")).toBe(new Date(1900000000 * 1000).toISOString());
    fireEvent.click(screen.getByRole("button", { name: "Quota" }));
    expect((await screen.findByTestId("quota-summary")).textContent).toBe("Premium requests: 250 left of 300");
  });

  it("picks up a login still running when the dialog is opened again", async () => {
    const calls = mockApi({
      "GET /admin/copilot/gh/status": () => [200, loggedOut],
      "POST /admin/copilot/login": () => [201, { id: "L9", provider: "gh", status: "pending", user_code: "RESU-ME00",
                                                 verification_uri: "https://github.com/login/device",
                                                 interval: 1, expires_at: Math.floor(Date.now() / 1000) + 900 }],
      "GET /admin/copilot/login/L9": (_b, n) => [200, { id: "L9", status: n < 2 ? "pending" : "completed" }],
    });
    const first = wrap(<CopilotDialog provider={prov("gh", "copilot")} onClose={() => {}} />);
    fireEvent.click(screen.getByRole("button", { name: "Sign in with GitHub" }));
    await screen.findByTestId("user-code");
    first.unmount();
    wrap(<CopilotDialog provider={prov("gh", "copilot")} onClose={() => {}} />);
    expect((await screen.findByTestId("user-code")).textContent).toBe("RESU-ME00");
    await waitFor(() => expect(screen.getByTestId("login-status").dataset.status).toBe("completed"), { timeout: 5000 });
    expect(calls.filter((c) => c.path === "/admin/copilot/login")).toHaveLength(1);
    // Over: a dialog opened afterwards starts afresh.
    cleanup();
    wrap(<CopilotDialog provider={prov("gh", "copilot")} onClose={() => {}} />);
    await screen.findByRole("button", { name: "Sign in with GitHub" });
    expect(screen.queryByTestId("user-code")).toBeNull();
  }, 10000);

  it("shows the API's error, a denied login, and an expired one (410)", async () => {
    mockApi({
      "GET /admin/copilot/gh/status": () => [200, loggedOut],
      "POST /admin/copilot/login": (_b, n) => n === 1
        ? [409, { error: { type: "invalid_request_error", message: "provider 'gh' already has a login pending: finish it or let it expire", field: "provider" } }]
        : [201, { id: `L${n}`, provider: "gh", status: "pending", user_code: "X", verification_uri: "https://github.com/login/device", interval: 1, expires_at: 0 }],
      "GET /admin/copilot/login/L2": () => [200, { id: "L2", status: "denied", error: "the GitHub user declined the authorization" }],
      "GET /admin/copilot/login/L3": () => [410, { error: { type: "invalid_request_error", message: "copilot login session 'L3' has expired: start a new one", field: null } }],
    });
    wrap(<CopilotDialog provider={prov("gh", "copilot")} onClose={() => {}} />);
    fireEvent.click(screen.getByRole("button", { name: "Sign in with GitHub" }));
    await screen.findByText("provider 'gh' already has a login pending: finish it or let it expire");
    fireEvent.click(screen.getByRole("button", { name: "Sign in with GitHub" }));
    await waitFor(() => expect(screen.getByTestId("login-status").dataset.status).toBe("denied"), { timeout: 4000 });
    expect(screen.getByTestId("login-status").textContent).toBe("The sign-in was denied.");
    fireEvent.click(screen.getByRole("button", { name: "Sign in with GitHub" }));
    await waitFor(() => expect(screen.getByTestId("login-status").dataset.status).toBe("expired"), { timeout: 4000 });
    expect(screen.getByTestId("login-status").textContent).toBe("The code expired: start again.");
    expect(screen.queryByRole("alert")).toBeNull();
  }, 10000);
});

describe("Kiro dialog", () => {
  const account = { provider: "kr", method: "social", state: "ok", expires_at: 1900000000, profile_arn: null,
                   region: "us-east-1", last_refresh: null, last_error: null, has_refresh_token: true, version: 1 };
  const base = {
    "GET /admin/kiro/kr/status": (): [number, unknown] => [200, account],
  };

  it("social sign-in: opens the page, sends the pasted callback URL", async () => {
    const calls = mockApi({
      ...base,
      "POST /admin/kiro/login": () => [201, { id: "S1", provider: "kr", method: "social", status: "pending", expires_at: 1900000000,
                                              auth_url: "https://prod.us-east-1.auth.desktop.kiro.dev/login?state=xyz" }],
      "POST /admin/kiro/login/S1/complete": (b) => (b as { callback_url: string }).callback_url.includes("state=xyz")
        ? [200, account]
        : [400, { error: { type: "invalid_request_error", message: "the callback's state does not match this login", field: "callback_url" } }],
    });
    wrap(<KiroDialog provider={prov("kr", "kiro")} onClose={() => {}} />);
    fireEvent.click(screen.getByRole("button", { name: "Open sign-in page" }));
    await screen.findByLabelText("Callback URL");
    expect(window.open).toHaveBeenCalledWith("https://prod.us-east-1.auth.desktop.kiro.dev/login?state=xyz", "_blank", "noopener");
    expect(calls.find((c) => c.path === "/admin/kiro/login")!.body).toEqual({ provider: "kr", method: "social" });
    // A wrong state: the API's message next to the field.
    fireEvent.change(screen.getByLabelText("Callback URL"), { target: { value: "http://localhost:3128/oauth/callback?code=c&state=bad" } });
    fireEvent.click(screen.getByRole("button", { name: "Finish sign-in" }));
    const err = await screen.findByText("the callback's state does not match this login");
    expect(err.closest("[data-field]")!.getAttribute("data-field")).toBe("callback_url");
    fireEvent.change(screen.getByLabelText("Callback URL"), { target: { value: "http://localhost:3128/oauth/callback?code=c&state=xyz" } });
    fireEvent.click(screen.getByRole("button", { name: "Finish sign-in" }));
    expect((await screen.findByTestId("account-notice")).textContent).toBe("Signed in.");
  });

  it("Identity Center device flow: sends start URL and region, polls the status", async () => {
    const calls = mockApi({
      ...base,
      "POST /admin/kiro/login": () => [201, { id: "D1", provider: "kr", method: "idc", status: "pending", user_code: "WXYZ-0000",
                                              verification_uri: "https://device.sso.us-east-1.amazonaws.com/",
                                              verification_uri_complete: "https://device.sso.us-east-1.amazonaws.com/?user_code=WXYZ-0000",
                                              interval: 1, expires_at: Math.floor(Date.now() / 1000) + 600 }],
      // The first poll: the service said slow_down, so the next is due in 2 s.
      "GET /admin/kiro/login/D1": (_b, n) => [200, n === 1 ? { id: "D1", status: "pending", interval: 6, poll_after: 2 }
                                                            : { id: "D1", status: "completed" }],
    });
    wrap(<KiroDialog provider={prov("kr", "kiro")} onClose={() => {}} />);
    fireEvent.click(screen.getByRole("tab", { name: /Builder ID/ }));
    fireEvent.click(screen.getByLabelText("IAM Identity Center"));
    fireEvent.change(screen.getByLabelText("Start URL"), { target: { value: "https://d-123.awsapps.com/start" } });
    fireEvent.change(screen.getByLabelText("Region"), { target: { value: "eu-west-1" } });
    fireEvent.click(screen.getByRole("button", { name: "Start" }));
    expect((await screen.findByTestId("user-code")).textContent).toBe("WXYZ-0000");
    expect(calls.find((c) => c.path === "/admin/kiro/login")!.body)
      .toEqual({ provider: "kr", method: "idc", start_url: "https://d-123.awsapps.com/start", region: "eu-west-1" });
    await new Promise((r) => setTimeout(r, 2500));
    expect(calls.filter((c) => c.path === "/admin/kiro/login/D1")).toHaveLength(1);
    await waitFor(() => expect(screen.getByTestId("login-status").dataset.status).toBe("completed"), { timeout: 3000 });
  }, 10000);

  it("imports kiro-auth-token.json with its client registration, or a kiro-cli database", async () => {
    const note = "the gateway now refreshes this account itself";
    const calls = mockApi({ "GET /admin/kiro/kr/status": (_b, n) => n === 1
                              ? [404, { error: { type: "not_found_error", message: "provider kr has no account", field: null } }]
                              : [200, { ...account, method: "idc" }],
                            "POST /admin/kiro/import": () => [201, { ...account, method: "idc", note }],
                            "POST /admin/kiro/kr/refresh": () => [200, { ...account, method: "idc", version: 2 }] });
    wrap(<KiroDialog provider={prov("kr", "kiro")} onClose={() => {}} />);
    // No account yet: said so, not an error.
    expect((await screen.findByTestId("account-none")).textContent).toBe("No account yet: sign in or import one.");
    expect(screen.queryByRole("alert")).toBeNull();
    fireEvent.click(screen.getByRole("tab", { name: "Import credentials" }));
    const token = { accessToken: "a", refreshToken: "r", expiresAt: "2030-01-01T00:00:00Z", authMethod: "IdC" };
    const reg = { clientId: "c", clientSecret: "s" };
    fireEvent.change(screen.getByLabelText("kiro-auth-token.json"), { target: { files: [new File([JSON.stringify(token)], "kiro-auth-token.json")] } });
    fireEvent.change(screen.getByLabelText(/Client registration/), { target: { files: [new File([JSON.stringify(reg)], "client.json")] } });
    fireEvent.click(screen.getByRole("button", { name: "Import" }));
    expect((await screen.findByTestId("account-notice")).textContent).toBe(`Credentials imported.${note}`);
    // The account's status is read again and shown.
    await waitFor(() => expect(screen.getByTestId("account-status").textContent).toContain("idc"));
    expect(calls.find((c) => c.path === "/admin/kiro/import")!.body).toEqual({ provider: "kr", kiro_auth_token: token, client_registration: reg });
    // The kiro-cli database goes as base64.
    const bytes = new TextEncoder().encode("SQLite format 3\0rest");
    fireEvent.change(screen.getByLabelText("kiro-cli database file"), { target: { files: [new File([bytes], "data.sqlite3")] } });
    fireEvent.click(screen.getByRole("button", { name: "Import" }));
    await waitFor(() => expect(calls.filter((c) => c.path === "/admin/kiro/import")).toHaveLength(2));
    expect(calls.filter((c) => c.path === "/admin/kiro/import")[1].body).toEqual({ provider: "kr", kiro_cli_db: btoa("SQLite format 3\0rest") });
    // Forced refresh.
    fireEvent.click(screen.getByRole("button", { name: "Refresh token now" }));
    await waitFor(() => expect(screen.getByTestId("account-notice").textContent).toBe("Token refreshed."));
  });

  it("refuses a token file that is not JSON before any call", async () => {
    const calls = mockApi({ ...base });
    wrap(<KiroDialog provider={prov("kr", "kiro")} onClose={() => {}} />);
    fireEvent.click(screen.getByRole("tab", { name: "Import credentials" }));
    fireEvent.change(screen.getByLabelText("kiro-auth-token.json"), { target: { files: [new File(["{not json"], "kiro-auth-token.json")] } });
    fireEvent.click(screen.getByRole("button", { name: "Import" }));
    await screen.findByText("kiro-auth-token.json is not valid JSON.");
    expect(calls.filter((c) => c.path === "/admin/kiro/import")).toHaveLength(0);
  });
});

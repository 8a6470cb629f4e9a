// Account dialogs of the subscription providers: Kiro (social sign-in,
// Builder ID / Identity Center device flow, import of the Kiro IDE's token
// file or the kiro-cli database, forced refresh, status, quota) and Copilot
// (GitHub device flow, status, premium quota), on the admin app's
// /admin/kiro/... and /admin/copilot/... endpoints.
import { FormEvent, useEffect, useState } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { ApiError, DeviceLogin, LoginState, Provider, SocialLogin, api, seg } from "../api";
import { useI18n } from "../i18n";
import { pollDelayMs, quotaSummary, secondsLeft, toBase64 } from "../logic";
import { CopyButton, Dialog, ErrorBox, Field, KeyValues, fieldError } from "../components/ui";

/** Polls GET `path` until the login leaves "pending", as often as the
 * admin app says it will ask the identity service again (its poll_after or
 * the session's interval, which a slow_down raises). A session past its
 * time may answer 410: that is the "expired" state, not a failure. */
function useLoginPoll(path: string | null, interval: number) {
  const [state, setState] = useState<LoginState | null>(null);
  const [err, setErr] = useState<unknown>(null);
  useEffect(() => {
    if (!path) return;
    let stop = false, timer: ReturnType<typeof setTimeout>;
    setState({ status: "pending" });
    setErr(null);
    const tick = async () => {
      let s: LoginState;
      try {
        s = await api.get<LoginState>(path);
      } catch (e) {
        if (stop) return;
        if (e instanceof ApiError && e.status === 410) setState({ status: "expired", error: e.message });
        else setErr(e);
        return;
      }
      if (stop) return;
      setState(s);
      if (s.status === "pending") timer = setTimeout(tick, pollDelayMs(s, interval));
    };
    timer = setTimeout(tick, pollDelayMs(null, interval));
    return () => { stop = true; clearTimeout(timer); };
  }, [path, interval]);
  return { state, err };
}

/** The device login running for one account, kept in sessionStorage until it
 * is over: the admin app allows one pending login per provider, so a dialog
 * closed while it runs picks it up again when reopened (and keeps polling,
 * which is what lets the admin app finish it) instead of being refused. */
function usePendingDevice(kind: "kiro" | "copilot", provider: string, state: LoginState | null, err: unknown):
    [DeviceLogin | null, (d: DeviceLogin) => void] {
  const key = `antigw.login.${kind}.${provider}`;
  const [device, setDevice] = useState<DeviceLogin | null>(() => {
    try {
      const d = JSON.parse(sessionStorage.getItem(key) ?? "null") as DeviceLogin | null;
      return d && typeof d.id === "string" && secondsLeft(d.expires_at) > 0 ? d : null;
    } catch {
      return null;
    }
  });
  useEffect(() => {
    if (err || (state && state.status !== "pending")) sessionStorage.removeItem(key);
  }, [state, err, key]);
  const start = (d: DeviceLogin) => { sessionStorage.setItem(key, JSON.stringify(d)); setDevice(d); };
  return [device, start];
}

function LoginStatusLine({ state, err }: { state: LoginState | null; err: unknown }) {
  const { t } = useI18n();
  if (err) return <ErrorBox err={err} />;
  if (!state) return null;
  const msg = state.error ?? state.message ?? "";
  const text = state.status === "pending" ? t("loginPending") : state.status === "completed" ? t("loginCompleted")
    : state.status === "expired" ? t("loginExpired") : state.status === "denied" ? t("loginDenied")
    : t("loginError", { msg: String(msg) });
  return <p className={`alert ${state.status === "completed" ? "ok" : state.status === "pending" ? "" : "error"}`}
            role="status" data-testid="login-status" data-status={state.status}>{text}</p>;
}

function DeviceCode({ login, url }: { login: DeviceLogin; url: string }) {
  const { t } = useI18n();
  const [left, setLeft] = useState(() => secondsLeft(login.expires_at));
  useEffect(() => {
    const id = setInterval(() => setLeft(secondsLeft(login.expires_at)), 1000);
    return () => clearInterval(id);
  }, [login.expires_at]);
  return (
    <div className="device" data-testid="device-code">
      <p>{t("deviceCodeHelp")}</p>
      <div className="code-row">
        <code className="user-code" data-testid="user-code">{login.user_code}</code>
        <CopyButton text={login.user_code} />
        <a className="button" href={url} target="_blank" rel="noopener noreferrer">{t("openPage")}</a>
      </div>
      <small className="muted">{url} · {t("expiresIn", { s: left })}</small>
    </div>
  );
}

/** Status and quota of an account, each shown on demand; the status is read
 * again whenever `version` changes (after a login, an import, a refresh).
 * An account not signed in yet (a 404 of the status or quota) is said so,
 * not shown as a failure. */
function AccountInfo({ base, version }: { base: string; version: number }) {
  const { t } = useI18n();
  const [status, setStatus] = useState<unknown>(null);
  const [quota, setQuota] = useState<unknown>(null);
  const [none, setNone] = useState(false);
  const [err, setErr] = useState<unknown>(null);
  const load = async (what: "status" | "quota") => {
    setErr(null);
    try {
      const v = await api.get<unknown>(`${base}/${what}`);
      setNone(false);
      (what === "status" ? setStatus : setQuota)(v);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        setNone(true);
        if (what === "status") setStatus(null); else setQuota(null);
      } else {
        setErr(e);
      }
    }
  };
  useEffect(() => { load("status"); }, [base, version]); // eslint-disable-line react-hooks/exhaustive-deps
  const summary = quotaSummary(quota);
  // Kiro's quota carries the service's whole answer: folded away.
  const raw = quota && typeof quota === "object" ? (quota as Record<string, unknown>).usage : undefined;
  return (
    <section className="sub">
      <div className="card-head">
        <h3>{t("accountStatus")}</h3>
        <div>
          <button type="button" onClick={() => load("status")}>{t("retry")}</button>{" "}
          <button type="button" onClick={() => load("quota")}>{t("quota")}</button>
        </div>
      </div>
      {err ? <ErrorBox err={err} /> : null}
      {none && <p className="muted" role="status" data-testid="account-none">{t("noAccountYet")}</p>}
      {status ? <div data-testid="account-status"><KeyValues data={status} /></div> : null}
      {quota ? (
        <div data-testid="account-quota">
          <h4>{t("quota")}</h4>
          {summary && <p data-testid="quota-summary">{t("quotaLine", {
            what: t(summary.kind === "premium" ? "premiumQuota" : "credits"),
            amount: summary.unlimited ? t("unlimited")
              : t("quotaLeft", { left: fmtNum(summary.left), total: fmtNum(summary.total) }) })}</p>}
          <KeyValues data={withoutRaw(quota)} />
          {raw !== undefined && <details data-testid="quota-raw"><summary>{t("fieldUsage")}</summary>
            <pre className="kv-raw">{JSON.stringify(raw, null, 2)}</pre></details>}
        </div>) : null}
    </section>
  );
}

function withoutRaw(q: unknown): unknown {
  if (!q || typeof q !== "object" || !("usage" in q)) return q;
  const { usage: _usage, ...rest } = q as Record<string, unknown>;
  return rest;
}

const fmtNum = (n: number) => String(Math.round(n * 100) / 100);

export function KiroDialog({ provider, onClose }: { provider: Provider; onClose: () => void }) {
  const { t } = useI18n();
  const qc = useQueryClient();
  const name = provider.name;
  const base = `/admin/kiro/${seg(name)}`;
  const [tab, setTab] = useState<"social" | "device" | "import">(
    () => sessionStorage.getItem(`antigw.login.kiro.${provider.name}`) ? "device" : "social");
  const [err, setErr] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [version, setVersion] = useState(0);
  // social
  const [social, setSocial] = useState<SocialLogin | null>(null);
  const [callback, setCallback] = useState("");
  // device
  const [method, setMethod] = useState<"builder-id" | "idc">("builder-id");
  const [startUrl, setStartUrl] = useState("");
  const [region, setRegion] = useState("us-east-1");
  const [devicePath, setDevicePath] = useState<[string, number] | null>(null);
  const poll = useLoginPoll(devicePath?.[0] ?? null, devicePath?.[1] ?? 5);
  const [device, setDevice] = usePendingDevice("kiro", name, poll.state, poll.err);
  useEffect(() => { setDevicePath(device ? [`/admin/kiro/login/${seg(device.id)}`, device.interval] : null); }, [device]);
  // import
  const [tokenFile, setTokenFile] = useState<File | null>(null);
  const [regFile, setRegFile] = useState<File | null>(null);
  const [dbFile, setDbFile] = useState<File | null>(null);

  const done = (msg: string, account?: { note?: string }) => {
    setNotice(msg);
    setNote(typeof account?.note === "string" ? account.note : null);
    setVersion((v) => v + 1);
    qc.invalidateQueries({ queryKey: ["providers"] });
    qc.invalidateQueries({ queryKey: ["health"] });
  };
  const run = async (fn: () => Promise<void>) => {
    setErr(null); setNotice(null); setNote(null);
    try { await fn(); } catch (e) { setErr(e); }
  };

  const startSocial = () => run(async () => {
    const s = await api.post<SocialLogin>("/admin/kiro/login", { provider: name, method: "social" });
    setSocial(s);
    window.open(s.auth_url, "_blank", "noopener");
  });
  const finishSocial = (e: FormEvent) => { e.preventDefault(); run(async () => {
    await api.post(`/admin/kiro/login/${seg(social!.id)}/complete`, { callback_url: callback.trim() });
    setSocial(null); setCallback("");
    done(t("loginCompleted"));
  }); };
  const startDevice = (e: FormEvent) => { e.preventDefault(); run(async () => {
    const body: Record<string, unknown> = { provider: name, method };
    if (method === "idc") { body.start_url = startUrl.trim(); body.region = region.trim(); }
    setDevice(await api.post<DeviceLogin>("/admin/kiro/login", body));
  }); };
  useEffect(() => {
    if (poll.state?.status !== "completed") return;
    setVersion((v) => v + 1);
    qc.invalidateQueries({ queryKey: ["providers"] });
    qc.invalidateQueries({ queryKey: ["health"] });
  }, [poll.state?.status, qc]);

  const doImport = (e: FormEvent) => { e.preventDefault(); run(async () => {
    const body: Record<string, unknown> = { provider: name };
    if (dbFile) {
      body.kiro_cli_db = toBase64(await readBytes(dbFile));
    } else if (tokenFile) {
      body.kiro_auth_token = await readJson(tokenFile, t);
      if (regFile) body.client_registration = await readJson(regFile, t);
    } else {
      throw new ApiError(400, "invalid_request_error", t("required"), "kiro_auth_token", null);
    }
    done(t("imported"), await api.post<{ note?: string }>("/admin/kiro/import", body));
  }); };
  const refresh = () => run(async () => { await api.post(`${base}/refresh`, {}); done(t("refreshed")); });

  return (
    <Dialog title={t("kiroTitle", { name })} onClose={onClose} wide testId="kiro-dialog">
      <div className="tabs" role="tablist">
        {(["social", "device", "import"] as const).map((k) => (
          <button key={k} type="button" role="tab" aria-selected={tab === k} onClick={() => setTab(k)}>
            {k === "social" ? t("kiroSocial") : k === "device" ? `${t("kiroBuilderId")} / ${t("kiroIdc")}` : t("kiroImport")}
          </button>
        ))}
      </div>
      {tab === "social" && (
        <div role="tabpanel">
          <p className="muted">{t("kiroSocialHelp")}</p>
          <button type="button" onClick={startSocial}>{t("openSignIn")}</button>
          {social && (
            <form onSubmit={finishSocial}>
              <p className="small muted"><a href={social.auth_url} target="_blank" rel="noopener noreferrer">{social.auth_url}</a></p>
              <Field label={t("callbackUrl")} name="callback_url" error={fieldError(err, "callback_url")}>
                {(id, d) => <input id={id} aria-describedby={d} value={callback} onChange={(e) => setCallback(e.target.value)} placeholder="http://localhost…" />}
              </Field>
              <button type="submit" className="primary" disabled={!callback.trim()}>{t("finishSignIn")}</button>
            </form>
          )}
        </div>
      )}
      {tab === "device" && (
        <div role="tabpanel">
          <form onSubmit={startDevice}>
            <div className="seg" role="radiogroup">
              <label className="check"><input type="radio" name="kiro-method" checked={method === "builder-id"} onChange={() => setMethod("builder-id")} />{t("kiroBuilderId")}</label>
              <label className="check"><input type="radio" name="kiro-method" checked={method === "idc"} onChange={() => setMethod("idc")} />{t("kiroIdc")}</label>
            </div>
            {method === "idc" && <div className="row2">
              <Field label={t("startUrl")} name="start_url" error={fieldError(err, "start_url")}>
                {(id, d) => <input id={id} aria-describedby={d} value={startUrl} onChange={(e) => setStartUrl(e.target.value)} placeholder="https://…awsapps.com/start" />}
              </Field>
              <Field label={t("region")} name="region" error={fieldError(err, "region")}>
                {(id, d) => <input id={id} aria-describedby={d} value={region} onChange={(e) => setRegion(e.target.value)} />}
              </Field>
            </div>}
            <button type="submit" className="primary">{t("startLogin")}</button>
          </form>
          {device && <DeviceCode login={device} url={device.verification_uri_complete ?? device.verification_uri ?? ""} />}
          {device && <LoginStatusLine state={poll.state} err={poll.err} />}
        </div>
      )}
      {tab === "import" && (
        <form role="tabpanel" onSubmit={doImport}>
          <p className="muted">{t("kiroImportHelp")}</p>
          <Field label={t("tokenFile")} name="kiro_auth_token" error={fieldError(err, "kiro_auth_token")}>
            {(id, d) => <input id={id} aria-describedby={d} type="file" accept=".json,application/json" onChange={(e) => setTokenFile(e.target.files?.[0] ?? null)} />}
          </Field>
          <Field label={t("clientRegistration")} name="client_registration" error={fieldError(err, "client_registration")}>
            {(id, d) => <input id={id} aria-describedby={d} type="file" accept=".json,application/json" onChange={(e) => setRegFile(e.target.files?.[0] ?? null)} />}
          </Field>
          <Field label={t("cliDb")} name="kiro_cli_db" error={fieldError(err, "kiro_cli_db")}>
            {(id, d) => <input id={id} aria-describedby={d} type="file" onChange={(e) => setDbFile(e.target.files?.[0] ?? null)} />}
          </Field>
          <button type="submit" className="primary">{t("importNow")}</button>
        </form>
      )}
      {err && !(err instanceof ApiError && err.field && ["callback_url", "start_url", "region", "kiro_auth_token", "client_registration", "kiro_cli_db"].includes(err.field))
        ? <ErrorBox err={err} /> : null}
      {notice && <p className="alert ok" role="status" data-testid="account-notice">{notice}
        {note && <><br /><small>{note}</small></>}</p>}
      <div className="dialog-actions left">
        <button type="button" onClick={refresh}>{t("refreshNow")}</button>
      </div>
      <AccountInfo base={base} version={version} />
    </Dialog>
  );
}

/** A file's bytes (FileReader: everywhere File is, older engines included). */
function readBytes(f: File): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(new Uint8Array(r.result as ArrayBuffer));
    r.onerror = () => reject(r.error);
    r.readAsArrayBuffer(f);
  });
}

async function readJson(f: File, t: ReturnType<typeof useI18n>["t"]): Promise<unknown> {
  const bytes = await readBytes(f);
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new ApiError(400, "invalid_request_error", t("badJsonFile", { file: f.name }), null, null);
  }
}

export function CopilotDialog({ provider, onClose }: { provider: Provider; onClose: () => void }) {
  const { t } = useI18n();
  const name = provider.name;
  const [err, setErr] = useState<unknown>(null);
  const [devicePath, setDevicePath] = useState<[string, number] | null>(null);
  const poll = useLoginPoll(devicePath?.[0] ?? null, devicePath?.[1] ?? 5);
  const [device, setDevice] = usePendingDevice("copilot", name, poll.state, poll.err);
  useEffect(() => { setDevicePath(device ? [`/admin/copilot/login/${seg(device.id)}`, device.interval] : null); }, [device]);
  const qc = useQueryClient();
  const [version, setVersion] = useState(0);
  useEffect(() => {
    if (poll.state?.status !== "completed") return;
    setVersion((v) => v + 1);
    qc.invalidateQueries({ queryKey: ["providers"] });
    qc.invalidateQueries({ queryKey: ["health"] });
  }, [poll.state?.status, qc]);
  const start = async () => {
    setErr(null);
    try {
      const d = await api.post<DeviceLogin>("/admin/copilot/login", { provider: name });
      setDevice(d);
      window.open(d.verification_uri ?? d.verification_uri_complete, "_blank", "noopener");
    } catch (e) {
      setErr(e);
    }
  };
  return (
    <Dialog title={t("copilotTitle", { name })} onClose={onClose} wide testId="copilot-dialog">
      <button type="button" className="primary" onClick={start}>{t("copilotLogin")}</button>
      {err ? <ErrorBox err={err} /> : null}
      {device && <DeviceCode login={device} url={device.verification_uri ?? device.verification_uri_complete ?? ""} />}
      {device && <LoginStatusLine state={poll.state} err={poll.err} />}
      <AccountInfo base={`/admin/copilot/${seg(name)}`} version={version} />
    </Dialog>
  );
}

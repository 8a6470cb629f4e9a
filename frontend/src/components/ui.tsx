// Small building blocks shared by the pages: a modal dialog on the native
// <dialog> (focus kept inside, Esc closes), a labelled field that shows the
// API's message for it, a copy button, and load/error states.
import { ReactNode, useEffect, useId, useRef, useState } from "react";
import { ApiError } from "../api";
import { StringKey, useI18n } from "../i18n";
import { fmtTime } from "../logic";

export function Dialog(props: { title: string; onClose: () => void; children: ReactNode;
                                wide?: boolean; testId?: string }) {
  const ref = useRef<HTMLDialogElement>(null);
  const { t } = useI18n();
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  return (
    <dialog ref={ref} className={props.wide ? "dialog wide" : "dialog"} aria-labelledby={titleId}
            data-testid={props.testId}
            onCancel={(e) => { e.preventDefault(); props.onClose(); }}>
      <header className="dialog-head">
        <h2 id={titleId}>{props.title}</h2>
        <button type="button" className="icon" aria-label={t("close")} onClick={props.onClose}>×</button>
      </header>
      <div className="dialog-body">{props.children}</div>
    </dialog>
  );
}

/** The message of `err` when it is about `field`. */
export function fieldError(err: unknown, field: string): string | null {
  return err instanceof ApiError && err.field === field ? err.message : null;
}

export function Field(props: { label: string; name: string; error?: string | null; help?: string;
                               children: (id: string, describedBy: string | undefined) => ReactNode }) {
  const id = useId();
  const errId = `${id}-err`, helpId = `${id}-help`;
  const describedBy = [props.error ? errId : "", props.help ? helpId : ""].filter(Boolean).join(" ") || undefined;
  return (
    <div className={props.error ? "field has-error" : "field"} data-field={props.name}>
      <label htmlFor={id}>{props.label}</label>
      {props.children(id, describedBy)}
      {props.help && <small id={helpId} className="help">{props.help}</small>}
      {props.error && <small id={errId} className="field-error" role="alert">{props.error}</small>}
    </div>
  );
}

/** An error not tied to one field (or any error when `all`). */
export function FormAlert({ err, fields }: { err: unknown; fields: string[] }) {
  const { t } = useI18n();
  if (!err) return null;
  if (err instanceof ApiError && err.field && fields.includes(err.field)) return null;
  const msg = err instanceof ApiError && err.status === 0 ? t("networkError", { msg: err.message })
    : (err as Error).message;
  return <p className="alert error" role="alert">{msg}</p>;
}

export function CopyButton({ text, label }: { text: string; label?: string }) {
  const { t } = useI18n();
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // No clipboard permission (plain http): select the text for Ctrl+C.
      const ta = document.createElement("textarea");
      ta.value = text;
      document.body.appendChild(ta);
      ta.select();
      document.execCommand("copy");
      ta.remove();
    }
    setDone(true);
    setTimeout(() => setDone(false), 1500);
  };
  return <button type="button" onClick={copy}>{done ? t("copied") : (label ?? t("copy"))}</button>;
}

export function Loading() {
  const { t } = useI18n();
  return <p className="muted" role="status">{t("loading")}</p>;
}

export function ErrorBox({ err, retry }: { err: unknown; retry?: () => void }) {
  const { t } = useI18n();
  const msg = err instanceof ApiError && err.status === 0 ? t("networkError", { msg: err.message })
    : (err as Error)?.message ?? String(err);
  return (
    <div className="alert error" role="alert">
      {msg} {retry && <button type="button" onClick={retry}>{t("retry")}</button>}
    </div>
  );
}

export function Badge({ ok, children }: { ok: boolean | "warn"; children: ReactNode }) {
  return <span className={`badge ${ok === "warn" ? "warn" : ok ? "ok" : "bad"}`}>{children}</span>;
}

/** The label of each field of an account's status and quota the admin API
 * answers; a field not listed shows its API name. */
const FIELD_LABELS: Record<string, StringKey> = {
  provider: "provider", logged_in: "fieldLoggedIn", state: "fieldState", github_login: "fieldGithubLogin",
  plan: "fieldPlan", api_url: "fieldApiUrl", token_expires_at: "fieldTokenExpiresAt",
  token_refresh_at: "fieldTokenRefreshAt", last_refresh: "fieldLastRefresh", last_error: "fieldLastError",
  models: "models", method: "fieldMethod", expires_at: "fieldExpiresAt", profile_arn: "fieldProfileArn",
  region: "region", has_refresh_token: "fieldHasRefreshToken", version: "fieldVersion",
  quota_reset_date: "fieldQuotaResetDate", premium_interactions: "premiumQuota", credits: "credits",
  usage: "fieldUsage",
};

/** A key/value list of an object the API returned (account status, quota):
 * fields labelled in the UI's language (each row's data-key is the API's
 * name), yes/no for flags, times (fields named *_at, last_refresh: Unix
 * seconds) as local times. */
export function KeyValues({ data }: { data: unknown }) {
  const { t, lang } = useI18n();
  if (!data || typeof data !== "object") return <pre className="kv-raw">{JSON.stringify(data)}</pre>;
  const when = (k: string, v: unknown) => typeof v === "number" && v > 0 && /(_at|^last_refresh)$/.test(k);
  const value = (k: string, v: unknown) => v !== null && typeof v === "object" ? <code>{JSON.stringify(v)}</code>
    : typeof v === "boolean" ? t(v ? "yes" : "no")
    : when(k, v) ? <time dateTime={new Date((v as number) * 1000).toISOString()}>{fmtTime(v as number, lang)}</time>
    : String(v ?? "—");
  return (
    <dl className="kv">
      {Object.entries(data as Record<string, unknown>).map(([k, v]) => (
        <div key={k} data-key={k}>
          <dt>{FIELD_LABELS[k] ? t(FIELD_LABELS[k]) : k}</dt>
          <dd>{value(k, v)}</dd>
        </div>
      ))}
    </dl>
  );
}

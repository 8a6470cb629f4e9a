import { FormEvent, useEffect, useState } from "react";
import { ApiError, request, saveKey } from "../api";
import { useI18n } from "../i18n";

/** Checks the key with one cheap admin call; the admin app slows down wrong
 * keys per address (429 with Retry-After), which is shown as a countdown. */
export function SignIn({ ended, onSignedIn }: { ended: boolean; onSignedIn: () => void }) {
  const { t } = useI18n();
  const [key, setKey] = useState("");
  const [remember, setRemember] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(ended ? t("sessionEnded") : null);
  const [wait, setWait] = useState(0);

  useEffect(() => {
    if (wait <= 0) return;
    const id = setTimeout(() => setWait(wait - 1), 1000);
    return () => clearTimeout(id);
  }, [wait]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await request("GET", "/admin/audit?limit=1", undefined, key.trim());
      saveKey(key.trim(), remember);
      onSignedIn();
    } catch (err) {
      const a = err as ApiError;
      if (a.status === 429) {
        setWait(a.retryAfter ?? 60);
        setError(null);
      } else if (a.status === 401) setError(t("wrongKey"));
      else if (a.status === 0) setError(t("networkError", { msg: a.message }));
      else setError(a.message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="card signin" onSubmit={submit} aria-labelledby="signin-title">
      <h1 id="signin-title">{t("signInTitle")}</h1>
      <p className="muted">{t("signInHelp")}</p>
      <div className="field">
        <label htmlFor="admin-key">{t("adminKey")}</label>
        <input id="admin-key" name="admin-key" type="password" autoComplete="current-password"
               autoFocus required value={key} onChange={(e) => setKey(e.target.value)} />
      </div>
      <label className="check">
        <input type="checkbox" checked={remember} onChange={(e) => setRemember(e.target.checked)} />
        {t("remember")}
      </label>
      {remember && <small className="help">{t("rememberHelp")}</small>}
      {error && <p className="alert error" role="alert" data-testid="signin-error">{error}</p>}
      {wait > 0 && <p className="alert error" role="alert" data-testid="signin-error">
        {t("tooManyAttempts", { s: wait })}</p>}
      <button type="submit" className="primary" disabled={busy || wait > 0 || !key.trim()}>{t("signIn")}</button>
    </form>
  );
}

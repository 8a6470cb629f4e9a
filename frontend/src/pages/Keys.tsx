import { FormEvent, useState } from "react";
import { Link } from "react-router-dom";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { ClientKey, Provider, UsageAnswer, api } from "../api";
import { useI18n } from "../i18n";
import { FormError, KeyForm, fmtInt, fmtTime, keyBody, keyForm, totalTokens } from "../logic";
import { Badge, CopyButton, Dialog, ErrorBox, Field, FormAlert, Loading, fieldError } from "../components/ui";
import { ConfirmDelete } from "./Providers";

const FIELDS = ["name", "enabled", "qpm_limit", "qpm", "tpm_limit", "tpm", "allowed_models",
  "allowed_providers", "default_provider", "expires_at", "metadata"];

export function Keys() {
  const { t, lang } = useI18n();
  const qc = useQueryClient();
  const list = useQuery({ queryKey: ["keys"], queryFn: () => api.get<{ data: ClientKey[] }>("/admin/keys") });
  const usage = useQuery({ queryKey: ["usage", "key", "all"],
                           queryFn: () => api.get<UsageAnswer>("/admin/usage?group_by=key") });
  const [editing, setEditing] = useState<ClientKey | "new" | null>(null);
  const [deleting, setDeleting] = useState<ClientKey | null>(null);
  const [shown, setShown] = useState<ClientKey | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const toggle = useMutation({
    mutationFn: (k: ClientKey) => api.put(`/admin/keys/${k.id}`, { enabled: !k.enabled }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["keys"] }),
    onError: (e) => setNotice((e as Error).message),
  });
  const byKey = new Map((usage.data?.groups ?? []).map((g) => [g.key_id, g]));
  const now = Date.now() / 1000;

  return (
    <div className="page" data-testid="keys">
      <div className="page-head">
        <h1>{t("navKeys")}</h1>
        <button type="button" className="primary" onClick={() => setEditing("new")}>{t("addKey")}</button>
      </div>
      {notice && <p className="alert" role="status">{notice}</p>}
      {list.isPending ? <Loading /> : list.isError ? <ErrorBox err={list.error} retry={list.refetch} /> : (
        list.data.data.length === 0 ? <p className="card muted">{t("nothing")}</p> :
        <div className="table-wrap card">
          <table data-testid="keys-table">
            <thead><tr>
              <th>{t("name")}</th><th>{t("keyPrefix")}</th><th>{t("status")}</th>
              <th className="num">{t("qpm")}</th><th className="num">{t("tpm")}</th>
              <th>{t("allowedModels")}</th><th>{t("expiresAt")}</th>
              <th className="num">{t("requests")}</th><th className="num">{t("tokens")}</th><th>{t("actions")}</th>
            </tr></thead>
            <tbody>
              {list.data.data.map((k) => {
                const u = byKey.get(k.id);
                const expired = k.expires_at !== null && k.expires_at <= now;
                return (
                  <tr key={k.id} data-key={k.name} className={k.enabled ? "" : "off"}>
                    <td><strong>{k.name}</strong></td>
                    <td><code>{k.key_prefix}…</code></td>
                    <td>{!k.enabled ? <Badge ok="warn">{t("disabled")}</Badge> : expired ? <Badge ok={false}>{t("expired")}</Badge> : <Badge ok>{t("enabled")}</Badge>}</td>
                    <td className="num">{k.qpm_limit ? fmtInt(k.qpm_limit, lang) : "∞"}</td>
                    <td className="num">{k.tpm_limit ? fmtInt(k.tpm_limit, lang) : "∞"}</td>
                    <td className="models">{k.allowed_models === null ? <span className="muted">{t("any")}</span> : k.allowed_models.join(", ") || t("none")}</td>
                    <td>{k.expires_at ? fmtTime(k.expires_at, lang) : <span className="muted">{t("never")}</span>}</td>
                    <td className="num">{fmtInt(u?.requests ?? 0, lang)}</td>
                    <td className="num">{fmtInt(u ? totalTokens(u) : 0, lang)}</td>
                    <td><div className="actions">
                      <button type="button" onClick={() => setEditing(k)}>{t("edit")}</button>
                      <button type="button" onClick={() => toggle.mutate(k)}>{k.enabled ? t("disable") : t("enable")}</button>
                      <Link className="button" to={`/usage?key_id=${k.id}`}>{t("viewUsage")}</Link>
                      <button type="button" className="danger" onClick={() => setDeleting(k)}>{t("delete")}</button>
                    </div></td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {editing && <KeyDialog clientKey={editing === "new" ? undefined : editing} onClose={() => setEditing(null)}
                             onSaved={(k) => { setEditing(null); if (k.key) setShown(k); else setNotice(t("saved")); }} />}
      {shown && <ShownOnce k={shown} onClose={() => setShown(null)} />}
      {deleting && <ConfirmDelete what={t("objKey")} name={deleting.name} path={`/admin/keys/${deleting.id}`}
                                  invalidate={["keys"]} onClose={() => setDeleting(null)}
                                  onDone={() => { setDeleting(null); setNotice(t("deleted")); }} />}
    </div>
  );
}

/** The new key, the only time anyone sees it. */
function ShownOnce({ k, onClose }: { k: ClientKey; onClose: () => void }) {
  const { t } = useI18n();
  return (
    <Dialog title={t("newKeyTitle")} onClose={onClose} testId="new-key-dialog">
      <p className="alert warn" role="alert">{t("newKeyWarning")}</p>
      <div className="code-row">
        <code className="secret" data-testid="new-key">{k.key}</code>
        <CopyButton text={k.key!} />
      </div>
      <div className="dialog-actions"><button type="button" className="primary" onClick={onClose}>{t("close")}</button></div>
    </Dialog>
  );
}

function KeyDialog({ clientKey, onClose, onSaved }: { clientKey?: ClientKey; onClose: () => void; onSaved: (k: ClientKey) => void }) {
  const { t } = useI18n();
  const qc = useQueryClient();
  const providers = useQuery({ queryKey: ["providers"], queryFn: () => api.get<{ data: Provider[] }>("/admin/providers") });
  const [f, setF] = useState<KeyForm>(() => keyForm(clientKey));
  const [err, setErr] = useState<unknown>(null);
  const set = <K extends keyof KeyForm>(k: K, v: KeyForm[K]) => setF((x) => ({ ...x, [k]: v }));
  const save = useMutation({
    mutationFn: (body: Record<string, unknown>) => clientKey
      ? api.put<ClientKey>(`/admin/keys/${clientKey.id}`, body) : api.post<ClientKey>("/admin/keys", body),
    onSuccess: (k) => { qc.invalidateQueries({ queryKey: ["keys"] }); onSaved(k); },
    onError: setErr,
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setErr(null);
    try {
      const body = keyBody(f, clientKey);
      if (clientKey && Object.keys(body).length === 0) return onClose();
      save.mutate(body);
    } catch (x) {
      if (x instanceof FormError) setErr(x);
      else throw x;
    }
  };
  const ferr = (...names: string[]) => {
    for (const n of names) {
      const m = err instanceof FormError ? (err.field === n ? t(err.message as "invalidNumber") : null) : fieldError(err, n);
      if (m) return m;
    }
    return null;
  };
  const names = (providers.data?.data ?? []).map((p) => p.name);
  return (
    <Dialog title={clientKey ? t("editKey") : t("addKey")} onClose={onClose} wide testId="key-dialog">
      <form onSubmit={submit} noValidate>
        <Field label={t("name")} name="name" error={ferr("name")}>
          {(id, d) => <input id={id} aria-describedby={d} value={f.name} autoFocus onChange={(e) => set("name", e.target.value)} />}
        </Field>
        <div className="row2">
          <Field label={t("qpm")} name="qpm_limit" error={ferr("qpm_limit", "qpm")} help={t("limitHelp")}>
            {(id, d) => <input id={id} aria-describedby={d} inputMode="numeric" value={f.qpm} onChange={(e) => set("qpm", e.target.value)} />}
          </Field>
          <Field label={t("tpm")} name="tpm_limit" error={ferr("tpm_limit", "tpm")} help={t("limitHelp")}>
            {(id, d) => <input id={id} aria-describedby={d} inputMode="numeric" value={f.tpm} onChange={(e) => set("tpm", e.target.value)} />}
          </Field>
        </div>
        <fieldset>
          <legend>{t("allowedModels")}</legend>
          <label className="check"><input type="checkbox" checked={f.restrictModels} onChange={(e) => set("restrictModels", e.target.checked)} />{t("restrict")}</label>
          {f.restrictModels && <Field label={t("models")} name="allowed_models" error={ferr("allowed_models")} help={t("modelsHelp")}>
            {(id, d) => <textarea id={id} aria-describedby={d} rows={2} value={f.allowed_models} onChange={(e) => set("allowed_models", e.target.value)} />}
          </Field>}
          {!f.restrictModels && ferr("allowed_models") && <small className="field-error" role="alert">{ferr("allowed_models")}</small>}
        </fieldset>
        <fieldset>
          <legend>{t("allowedProviders")}</legend>
          <label className="check"><input type="checkbox" checked={f.restrictProviders} onChange={(e) => set("restrictProviders", e.target.checked)} />{t("restrict")}</label>
          {f.restrictProviders && <Field label={t("allowedProviders")} name="allowed_providers" error={ferr("allowed_providers")} help={names.join(", ")}>
            {(id, d) => <textarea id={id} aria-describedby={d} rows={2} value={f.allowed_providers} onChange={(e) => set("allowed_providers", e.target.value)} />}
          </Field>}
          <small className="help">{t("allowedHelp")}</small>
        </fieldset>
        <div className="row2">
          <Field label={t("defaultProvider")} name="default_provider" error={ferr("default_provider")}>
            {(id, d) => <select id={id} aria-describedby={d} value={f.default_provider} onChange={(e) => set("default_provider", e.target.value)}>
              <option value="">{t("none")}</option>
              {names.map((n) => <option key={n} value={n}>{n}</option>)}
              {f.default_provider && !names.includes(f.default_provider) && <option value={f.default_provider}>{f.default_provider}</option>}
            </select>}
          </Field>
          <Field label={t("expiresAt")} name="expires_at" error={ferr("expires_at")}>
            {(id, d) => <input id={id} aria-describedby={d} type="datetime-local" value={f.expires_at} onChange={(e) => set("expires_at", e.target.value)} />}
          </Field>
        </div>
        <Field label={t("metadata")} name="metadata" error={ferr("metadata")}>
          {(id, d) => <textarea id={id} aria-describedby={d} rows={3} className="mono" value={f.metadata} placeholder='{"team": "…"}' onChange={(e) => set("metadata", e.target.value)} />}
        </Field>
        <label className="check"><input type="checkbox" checked={f.enabled} onChange={(e) => set("enabled", e.target.checked)} />{t("enabled")}</label>
        {!(err instanceof FormError) && <FormAlert err={err} fields={FIELDS} />}
        <div className="dialog-actions">
          <button type="button" onClick={onClose}>{t("cancel")}</button>
          <button type="submit" className="primary" disabled={save.isPending}>{clientKey ? t("save") : t("create")}</button>
        </div>
      </form>
    </Dialog>
  );
}

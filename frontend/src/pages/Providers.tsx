import { FormEvent, useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { HealthAnswer, Provider, api, seg } from "../api";
import { useI18n } from "../i18n";
import { FormError, ProviderForm, fmtInt, githubTokenBody, needsLogin, providerBody, providerForm } from "../logic";
import { Badge, Dialog, ErrorBox, Field, FormAlert, Loading, fieldError } from "../components/ui";
import { reasonText } from "./Dashboard";
import { CopilotDialog, KiroDialog } from "./Accounts";

const TYPES = ["openai", "anthropic", "kiro", "copilot"];
const FIELDS = ["name", "type", "base_url", "api_key", "github_token", "weight", "enabled", "models", "default_model"];

export interface TestResult { ok: boolean; ms: number; message: string }

export function Providers() {
  const { t, lang } = useI18n();
  const qc = useQueryClient();
  const list = useQuery({ queryKey: ["providers"], queryFn: () => api.get<{ data: Provider[] }>("/admin/providers") });
  const health = useQuery({ queryKey: ["health"], queryFn: () => api.get<HealthAnswer>("/health"), refetchInterval: 10_000 });
  const [editing, setEditing] = useState<Provider | "new" | null>(null);
  const [deleting, setDeleting] = useState<Provider | null>(null);
  const [account, setAccount] = useState<Provider | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [tests, setTests] = useState<Record<string, TestResult | "running">>({});

  const toggle = useMutation({
    mutationFn: (p: Provider) => api.put(`/admin/providers/${seg(p.id)}`, { enabled: !p.enabled }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["providers"] }),
    onError: (e) => setNotice((e as Error).message),
  });

  const runTest = async (p: Provider) => {
    setTests((s) => ({ ...s, [p.id]: "running" }));
    const started = performance.now();
    try {
      const r = await api.post<{ ok: boolean; status?: number; latency_ms?: number; message?: string; models?: number }>(
        `/admin/providers/${seg(p.id)}/test`, {});
      setTests((s) => ({ ...s, [p.id]: { ok: r.ok, ms: r.latency_ms ?? Math.round(performance.now() - started),
                                          message: r.message ?? (r.status ? `HTTP ${r.status}` : "") } }));
    } catch (e) {
      setTests((s) => ({ ...s, [p.id]: { ok: false, ms: Math.round(performance.now() - started), message: (e as Error).message } }));
    }
    qc.invalidateQueries({ queryKey: ["health"] });
  };

  const pool = new Map((health.data?.providers ?? []).map((p) => [p.name, p]));

  return (
    <div className="page" data-testid="providers">
      <div className="page-head">
        <h1>{t("navProviders")}</h1>
        <button type="button" className="primary" onClick={() => setEditing("new")}>{t("addProvider")}</button>
      </div>
      {notice && <p className="alert" role="status">{notice}</p>}
      {list.isPending ? <Loading /> : list.isError ? <ErrorBox err={list.error} retry={list.refetch} /> : (
        <div className="table-wrap card">
          <table data-testid="providers-table">
            <thead><tr>
              <th>{t("name")}</th><th>{t("type")}</th><th>{t("baseUrl")}</th><th className="num">{t("weight")}</th>
              <th>{t("models")}</th><th>{t("health")}</th><th>{t("source")}</th><th>{t("actions")}</th>
            </tr></thead>
            <tbody>
              {list.data.data.map((p) => {
                const s = pool.get(p.name);
                const tr = tests[p.id];
                return (
                  <tr key={p.id} data-provider={p.name} className={p.enabled ? "" : "off"}>
                    <td><strong>{p.name}</strong>{p.default_model && <div className="muted small">{t("defaultModel")}: {p.default_model}</div>}</td>
                    <td>{p.type}</td>
                    <td className="url">{p.base_url}</td>
                    <td className="num">{fmtInt(p.weight, lang)}</td>
                    <td className="models">{p.models.length ? p.models.join(", ") : <span className="muted">{t("any")}</span>}</td>
                    <td>
                      {!p.enabled ? <Badge ok="warn">{t("disabled")}</Badge>
                        : <Badge ok={p.healthy !== false}>{p.healthy === false ? t("unhealthy") : t("healthy")}</Badge>}
                      {needsLogin(s) && <> <Badge ok={false}>{t("needsLogin")}</Badge></>}
                      {p.health_reason && p.health_reason !== "none" && <div className="muted small">{reasonText(t, p.health_reason)}</div>}
                      {s && s.requests > 0 && <div className="muted small">{t("ms", { n: s.latency_ewma_ms })}</div>}
                      {tr && <div className={`small ${tr === "running" ? "muted" : tr.ok ? "ok-text" : "bad-text"}`} role="status" data-testid="test-result">
                        {tr === "running" ? t("testing") : tr.ok ? t("testOk", { name: p.name, ms: tr.ms })
                          : t("testFailed", { name: p.name, msg: tr.message })}</div>}
                    </td>
                    <td>{p.read_only ? <span title={t("readOnlyHint")}>{t("fromConfig")}</span> : t("fromDatabase")}</td>
                    <td><div className="actions">
                      <button type="button" onClick={() => runTest(p)} disabled={tr === "running"}>{t("test")}</button>
                      {(p.type === "kiro" || p.type === "copilot") && (
                        <button type="button" onClick={() => setAccount(p)}>{t("accounts")}</button>)}
                      {!p.read_only && <>
                        <button type="button" onClick={() => setEditing(p)}>{t("edit")}</button>
                        <button type="button" onClick={() => toggle.mutate(p)}>{p.enabled ? t("disable") : t("enable")}</button>
                        <button type="button" className="danger" onClick={() => setDeleting(p)}>{t("delete")}</button>
                      </>}
                    </div></td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {editing && <ProviderDialog provider={editing === "new" ? undefined : editing}
                                  onClose={() => setEditing(null)}
                                  onSaved={() => { setEditing(null); setNotice(t("saved")); }} />}
      {deleting && <ConfirmDelete what={t("objProvider")} name={deleting.name}
                                  path={`/admin/providers/${seg(deleting.id)}`}
                                  invalidate={["providers"]}
                                  onClose={() => setDeleting(null)}
                                  onDone={() => { setDeleting(null); setNotice(t("deleted")); }} />}
      {account && account.type === "kiro" && <KiroDialog provider={account} onClose={() => setAccount(null)} />}
      {account && account.type === "copilot" && <CopilotDialog provider={account} onClose={() => setAccount(null)} />}
    </div>
  );
}

function ProviderDialog({ provider, onClose, onSaved }: { provider?: Provider; onClose: () => void; onSaved: () => void }) {
  const { t } = useI18n();
  const qc = useQueryClient();
  const [f, setF] = useState<ProviderForm>(() => providerForm(provider));
  const [err, setErr] = useState<unknown>(null);
  const set = <K extends keyof ProviderForm>(k: K, v: ProviderForm[K]) => setF((x) => ({ ...x, [k]: v }));
  const save = useMutation({
    mutationFn: async ({ body, token }: { body: Record<string, unknown>; token: { github_token: string } | null }) => {
      let id = provider?.id;
      if (!provider) id = (await api.post<Provider>("/admin/providers", body)).id;
      else if (Object.keys(body).length) await api.put(`/admin/providers/${seg(provider.id)}`, body);
      if (token && id !== undefined) await api.put(`/admin/providers/${seg(id)}`, token);
    },
    onSuccess: () => { qc.invalidateQueries({ queryKey: ["providers"] }); onSaved(); },
    onError: setErr,
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setErr(null);
    try {
      const body = providerBody(f, provider), token = githubTokenBody(f);
      if (provider && Object.keys(body).length === 0 && !token) return onClose();
      save.mutate({ body, token });
    } catch (x) {
      if (x instanceof FormError) setErr(x);
      else throw x;
    }
  };
  const ferr = (name: string) => err instanceof FormError ? (err.field === name ? t(err.message as "invalidNumber") : null) : fieldError(err, name);
  return (
    <Dialog title={provider ? t("editProvider") : t("addProvider")} onClose={onClose} testId="provider-dialog">
      <form onSubmit={submit} noValidate>
        <Field label={t("name")} name="name" error={ferr("name")}>
          {(id, d) => <input id={id} aria-describedby={d} value={f.name} autoFocus onChange={(e) => set("name", e.target.value)} />}
        </Field>
        <Field label={t("type")} name="type" error={ferr("type")}>
          {(id, d) => <select id={id} aria-describedby={d} value={f.type} onChange={(e) => set("type", e.target.value)}>
            {TYPES.map((x) => <option key={x} value={x}>{x}</option>)}
          </select>}
        </Field>
        <Field label={t("baseUrl")} name="base_url" error={ferr("base_url")} help={t("baseUrlHelp")}>
          {(id, d) => <input id={id} aria-describedby={d} value={f.base_url} inputMode="url" onChange={(e) => set("base_url", e.target.value)} />}
        </Field>
        <Field label={t("apiKey")} name="api_key" error={ferr("api_key")}
               help={provider?.api_key_hint ? t("apiKeyKeep", { hint: provider.api_key_hint }) : undefined}>
          {(id, d) => <input id={id} aria-describedby={d} type="password" autoComplete="off" value={f.api_key} onChange={(e) => set("api_key", e.target.value)} />}
        </Field>
        {f.type === "copilot" && (
          <Field label={t("githubToken")} name="github_token" error={ferr("github_token")} help={t("githubTokenHelp")}>
            {(id, d) => <input id={id} aria-describedby={d} type="password" autoComplete="off" value={f.github_token} onChange={(e) => set("github_token", e.target.value)} />}
          </Field>
        )}
        <div className="row2">
          <Field label={t("weight")} name="weight" error={ferr("weight")}>
            {(id, d) => <input id={id} aria-describedby={d} inputMode="numeric" value={f.weight} onChange={(e) => set("weight", e.target.value)} />}
          </Field>
          <Field label={t("defaultModel")} name="default_model" error={ferr("default_model")}>
            {(id, d) => <input id={id} aria-describedby={d} value={f.default_model} onChange={(e) => set("default_model", e.target.value)} />}
          </Field>
        </div>
        <Field label={t("models")} name="models" error={ferr("models")} help={t("modelsHelp")}>
          {(id, d) => <textarea id={id} aria-describedby={d} rows={3} value={f.models} onChange={(e) => set("models", e.target.value)} />}
        </Field>
        <label className="check"><input type="checkbox" checked={f.enabled} onChange={(e) => set("enabled", e.target.checked)} />{t("enabled")}</label>
        {!(err instanceof FormError) && <FormAlert err={err} fields={FIELDS} />}
        <div className="dialog-actions">
          <button type="button" onClick={onClose}>{t("cancel")}</button>
          <button type="submit" className="primary" disabled={save.isPending}>{provider ? t("save") : t("create")}</button>
        </div>
      </form>
    </Dialog>
  );
}

export function ConfirmDelete(props: { what: string; name: string; path: string; invalidate: string[];
                                      onClose: () => void; onDone: () => void }) {
  const { t } = useI18n();
  const qc = useQueryClient();
  const del = useMutation({
    mutationFn: () => api.del(props.path),
    onSuccess: () => { qc.invalidateQueries({ queryKey: props.invalidate }); props.onDone(); },
  });
  return (
    <Dialog title={t("confirm")} onClose={props.onClose} testId="confirm-dialog">
      <p>{t("confirmDelete", { what: props.what, name: props.name })}</p>
      {del.isError && <ErrorBox err={del.error} />}
      <div className="dialog-actions">
        <button type="button" onClick={props.onClose} autoFocus>{t("cancel")}</button>
        <button type="button" className="danger" disabled={del.isPending} onClick={() => del.mutate()}>{t("delete")}</button>
      </div>
    </Dialog>
  );
}

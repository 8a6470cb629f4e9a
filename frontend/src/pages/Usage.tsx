import { FormEvent, useState } from "react";
import { useSearchParams } from "react-router-dom";
import { useQuery } from "@tanstack/react-query";
import { ClientKey, Provider, UsageAnswer, UsageGroup, api, query } from "../api";
import { StringKey, useI18n } from "../i18n";
import { Bucket, fillSeries, fmtInt, groupColumns, localInputToUnix, totalTokens, unixToLocalInput, usageCsv } from "../logic";
import { Chart } from "../components/Chart";
import { ErrorBox, Field, Loading, fieldError } from "../components/ui";

const GROUPINGS = ["", "key", "model", "provider", "key_model", "day", "hour"] as const;
const FILTERS = ["key_id", "provider", "model", "from", "to", "group_by"] as const;

/** Filters live in the address (?key_id=…&group_by=…), so a view can be
 * bookmarked and the Keys page can link to one key's usage. */
export function Usage() {
  const { t, lang } = useI18n();
  const [params, setParams] = useSearchParams();
  const applied: Record<string, string> = {};
  for (const f of FILTERS) applied[f] = params.get(f) ?? "";
  if (!params.has("group_by")) applied.group_by = "day";
  const [draft, setDraft] = useState<Record<string, string>>(() => ({
    ...applied, from: applied.from ? unixToLocalInput(Number(applied.from)) : "",
    to: applied.to ? unixToLocalInput(Number(applied.to)) : "",
  }));
  const keys = useQuery({ queryKey: ["keys"], queryFn: () => api.get<{ data: ClientKey[] }>("/admin/keys") });
  const providers = useQuery({ queryKey: ["providers"], queryFn: () => api.get<{ data: Provider[] }>("/admin/providers") });
  const usage = useQuery({ queryKey: ["usage", "page", applied],
                           queryFn: () => api.get<UsageAnswer>(`/admin/usage${query(applied)}`) });

  const apply = (e: FormEvent) => {
    e.preventDefault();
    const next: Record<string, string> = {};
    for (const f of FILTERS) {
      let v = draft[f] ?? "";
      if ((f === "from" || f === "to") && v) v = String(localInputToUnix(v) ?? "");
      if (v || f === "group_by") next[f] = v;
    }
    setParams(next);
  };
  const reset = () => {
    setDraft({ key_id: "", provider: "", model: "", from: "", to: "", group_by: "day" });
    setParams({});
  };
  const exportCsv = () => {
    if (!usage.data) return;
    const csv = usageCsv(usage.data.group_by, usage.data.totals, usage.data.groups ?? []);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([csv], { type: "text/csv;charset=utf-8" }));
    a.download = `antigateway-usage-${usage.data.group_by ?? "totals"}.csv`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  };
  const set = (k: string, v: string) => setDraft((d) => ({ ...d, [k]: v }));
  const err = usage.error;
  const groups = usage.data?.groups ?? [];
  const g = usage.data?.group_by ?? null;
  const timeSeries = g === "day" || g === "hour";
  let labels: string[] = [], reqs: number[] = [], toks: number[] = [];
  if (usage.data && timeSeries) {
    const from = Number(applied.from) || (groups.length ? Date.parse(first(groups, g)) / 1000 : 0);
    const to = Number(applied.to) || Date.now() / 1000;
    const pts = from ? fillSeries(groups, g as Bucket, from, to) : [];
    labels = pts.map((p) => p.label); reqs = pts.map((p) => p.requests); toks = pts.map((p) => p.tokens);
  } else if (usage.data) {
    const top = groups.slice(0, 20);
    labels = top.map((x) => label(x, g)); reqs = top.map((x) => x.requests); toks = top.map((x) => totalTokens(x));
  }

  const shortLabel = g === "hour" ? (l: string) => l.slice(11, 16) : g === "day" ? (l: string) => l.slice(5)
    : (l: string) => (l.length > 14 ? `${l.slice(0, 13)}…` : l);

  return (
    <div className="page" data-testid="usage">
      <div className="page-head"><h1>{t("navUsage")}</h1>
        <button type="button" onClick={exportCsv} disabled={!usage.data}>{t("exportCsv")}</button></div>
      <form className="card filters" onSubmit={apply} aria-label={t("filters")}>
        <Field label={t("key")} name="key_id" error={fieldError(err, "key_id")}>
          {(id, d) => <select id={id} aria-describedby={d} value={draft.key_id} onChange={(e) => set("key_id", e.target.value)}>
            <option value="">{t("all")}</option>
            {(keys.data?.data ?? []).map((k) => <option key={k.id} value={k.id}>{k.name}</option>)}
          </select>}
        </Field>
        <Field label={t("provider")} name="provider" error={fieldError(err, "provider")}>
          {(id, d) => <select id={id} aria-describedby={d} value={draft.provider} onChange={(e) => set("provider", e.target.value)}>
            <option value="">{t("all")}</option>
            {(providers.data?.data ?? []).map((p) => <option key={p.id} value={p.name}>{p.name}</option>)}
          </select>}
        </Field>
        <Field label={t("model")} name="model" error={fieldError(err, "model")}>
          {(id, d) => <input id={id} aria-describedby={d} value={draft.model} onChange={(e) => set("model", e.target.value)} />}
        </Field>
        <Field label={t("from")} name="from" error={fieldError(err, "from")}>
          {(id, d) => <input id={id} aria-describedby={d} type="datetime-local" value={draft.from} onChange={(e) => set("from", e.target.value)} />}
        </Field>
        <Field label={t("to")} name="to" error={fieldError(err, "to")}>
          {(id, d) => <input id={id} aria-describedby={d} type="datetime-local" value={draft.to} onChange={(e) => set("to", e.target.value)} />}
        </Field>
        <Field label={t("groupBy")} name="group_by" error={fieldError(err, "group_by")}>
          {(id, d) => <select id={id} aria-describedby={d} value={draft.group_by} onChange={(e) => set("group_by", e.target.value)}>
            {GROUPINGS.map((x) => <option key={x} value={x}>{t(`group_${x || "none"}` as StringKey)}</option>)}
          </select>}
        </Field>
        <div className="filter-actions">
          <button type="submit" className="primary">{t("apply")}</button>
          <button type="button" onClick={reset}>{t("reset")}</button>
        </div>
      </form>
      {usage.isPending ? <Loading /> : usage.isError ? <ErrorBox err={usage.error} retry={usage.refetch} /> : (
        <>
          <section className="card" aria-label={t("totals")}>
            <div className="stats" data-testid="usage-totals">
              <Stat name="requests" label={t("requests")} v={fmtInt(usage.data.totals.requests, lang)} />
              <Stat name="errors" label={t("errors")} v={fmtInt(usage.data.totals.errors, lang)} />
              <Stat name="input_tokens" label={t("inputTokens")} v={fmtInt(usage.data.totals.input_tokens, lang)} />
              <Stat name="output_tokens" label={t("outputTokens")} v={fmtInt(usage.data.totals.output_tokens, lang)} />
              <Stat name="cache" label={`${t("cacheReadTokens")} / ${t("cacheWriteTokens")}`}
                    v={`${fmtInt(usage.data.totals.cache_read_tokens, lang)} / ${fmtInt(usage.data.totals.cache_write_tokens, lang)}`} />
              <Stat name="p50" label={`${t("latency")} p50 / p95`}
                    v={`${usage.data.totals.latency_ms.p50 ?? "—"} / ${usage.data.totals.latency_ms.p95 ?? "—"} ms`} />
            </div>
            {labels.length > 0 && (
              <div className="charts">
                <Chart title={t("requests")} labels={labels} shortLabel={shortLabel}
                       series={[{ name: t("requests"), values: reqs, color: "--c1" }]} />
                <Chart title={t("tokens")} kind={timeSeries ? "line" : "bar"} labels={labels} shortLabel={shortLabel}
                       series={[{ name: t("tokens"), values: toks, color: "--c2" }]} />
              </div>
            )}
          </section>
          {g && (
            <div className="table-wrap card">
              <table data-testid="usage-table">
                <thead><tr>
                  {groupColumns(g).filter((c) => c !== "key_id").map((c) => <th key={c}>{t(colLabel(c))}</th>)}
                  <th className="num">{t("requests")}</th><th className="num">{t("errors")}</th>
                  <th className="num">{t("inputTokens")}</th><th className="num">{t("outputTokens")}</th>
                  <th className="num">p50</th><th className="num">p95</th><th className="num">p99</th>
                </tr></thead>
                <tbody>
                  {groups.length === 0 && <tr><td colSpan={9} className="muted">{t("noTraffic")}</td></tr>}
                  {groups.map((x, i) => (
                    <tr key={i}>
                      {groupColumns(g).filter((c) => c !== "key_id").map((c) => <td key={c}>{cell(x, c)}</td>)}
                      <td className="num">{fmtInt(x.requests, lang)}</td><td className="num">{fmtInt(x.errors, lang)}</td>
                      <td className="num">{fmtInt(x.input_tokens, lang)}</td><td className="num">{fmtInt(x.output_tokens, lang)}</td>
                      <td className="num">{x.latency_ms.p50 ?? "—"}</td><td className="num">{x.latency_ms.p95 ?? "—"}</td>
                      <td className="num">{x.latency_ms.p99 ?? "—"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </div>
  );
}

function first(groups: UsageGroup[], g: string): string {
  const v = (g === "day" ? groups[0].day : groups[0].hour) ?? "";
  return g === "day" ? `${v}T00:00:00Z` : v;
}

function colLabel(c: string): StringKey {
  return ({ key_name: "key", model: "model", provider: "provider", day: "group_day", hour: "group_hour" } as Record<string, StringKey>)[c] ?? "name";
}

function cell(x: UsageGroup, c: string): string {
  const v = (x as unknown as Record<string, unknown>)[c];
  if (c === "key_name") return (v as string | null) ?? (x.key_id === null ? "—" : `#${x.key_id}`);
  return v === null || v === undefined ? "—" : String(v);
}

function label(x: UsageGroup, g: string | null): string {
  if (g === "key" || g === "key_model") {
    const k = x.key_name ?? (x.key_id === null ? "—" : `#${x.key_id}`);
    return g === "key_model" ? `${k} · ${x.model}` : k;
  }
  return String((x as unknown as Record<string, unknown>)[g ?? ""] ?? "");
}

function Stat({ label, v, name }: { label: string; v: string; name: string }) {
  return <div className="stat" data-stat={name}><span className="muted">{label}</span><strong>{v}</strong></div>;
}

import { useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { HealthAnswer, PoolProvider, Provider, UsageAnswer, api, query } from "../api";
import { useI18n } from "../i18n";
import { Bucket, bucketStart, fillSeries, fmtInt, needsLogin, pct, topGroups, totalTokens } from "../logic";
import { Chart } from "../components/Chart";
import { Badge, ErrorBox, Loading } from "../components/ui";

const TOP = 5;

export function Dashboard() {
  const { t, lang } = useI18n();
  const [bucket, setBucket] = useState<Bucket>("hour");
  // The window ends at the end of the current bucket, so "now" is in it.
  const size = bucket === "hour" ? 3600 : 86400;
  const to = bucketStart(Date.now() / 1000, bucket) + size;
  const from = to - (bucket === "hour" ? 24 : 30) * size;

  const health = useQuery({ queryKey: ["health"], queryFn: () => api.get<HealthAnswer>("/health"),
                            refetchInterval: 10_000 });
  const providers = useQuery({ queryKey: ["providers"],
                               queryFn: () => api.get<{ data: Provider[] }>("/admin/providers"),
                               refetchInterval: 10_000 });
  const series = useQuery({ queryKey: ["usage", bucket, from],
                            queryFn: () => api.get<UsageAnswer>(`/admin/usage${query({ from, to, group_by: bucket })}`) });
  const keys = useQuery({ queryKey: ["usage", "key", bucket, from],
                          queryFn: () => api.get<UsageAnswer>(`/admin/usage${query({ from, to, group_by: "key" })}`) });
  const models = useQuery({ queryKey: ["usage", "model", bucket, from],
                            queryFn: () => api.get<UsageAnswer>(`/admin/usage${query({ from, to, group_by: "model" })}`) });

  const pool = new Map<string, PoolProvider>();
  for (const p of health.data?.providers ?? []) pool.set(p.name, p);
  const totals = series.data?.totals;
  const points = series.data ? fillSeries(series.data.groups ?? [], bucket, from, to) : [];
  const shortLabel = (l: string) => (bucket === "hour" ? l.slice(11, 16) : l.slice(5));

  return (
    <div className="page" data-testid="dashboard">
      <div className="page-head">
        <h1>{t("navDashboard")}</h1>
        <span className="muted" data-testid="version">{t("version")}: {health.data?.version ?? "—"}</span>
      </div>

      <section aria-labelledby="pool-h" className="card">
        <h2 id="pool-h">{t("poolHealth")}</h2>
        {providers.isPending ? <Loading /> : providers.isError ? <ErrorBox err={providers.error} retry={providers.refetch} /> : (
          <div className="table-wrap">
            <table data-testid="pool-table">
              <thead><tr>
                <th>{t("provider")}</th><th>{t("type")}</th><th>{t("status")}</th><th>{t("reason")}</th>
                <th className="num">{t("cooldown")}</th><th className="num">{t("inFlight")}</th>
                <th className="num">{t("latency")}</th><th className="num">{t("requests")}</th>
              </tr></thead>
              <tbody>
                {providers.data.data.map((p) => {
                  const s = pool.get(p.name);
                  const usable = s ? s.usable : p.enabled && p.healthy !== false;
                  const waitsForLogin = needsLogin(s);
                  const reason = s?.reason ?? p.health_reason ?? "none";
                  return (
                    <tr key={p.id} data-provider={p.name}>
                      <td>{p.name}</td>
                      <td>{p.type}</td>
                      <td>
                        {!p.enabled ? <Badge ok="warn">{t("disabled")}</Badge>
                          : <Badge ok={usable}>{usable ? t("usable") : t("notUsable")}</Badge>}
                        {waitsForLogin && <> <Badge ok={false}>{t("needsLogin")}</Badge></>}
                      </td>
                      <td>{reasonText(t, reason)}</td>
                      <td className="num">{s && s.cooldown_ms > 0 ? `${Math.ceil(s.cooldown_ms / 1000)} s` : "—"}</td>
                      <td className="num">{s ? fmtInt(s.in_flight, lang) : "—"}</td>
                      <td className="num">{s && s.requests ? t("ms", { n: s.latency_ewma_ms }) : "—"}</td>
                      <td className="num">{s ? fmtInt(s.requests, lang) : "—"}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <section aria-labelledby="time-h" className="card">
        <div className="card-head">
          <h2 id="time-h">{bucket === "hour" ? t("last24h") : t("last30d")}</h2>
          <div className="seg" role="group" aria-label={t("overTime")}>
            <button type="button" aria-pressed={bucket === "hour"} onClick={() => setBucket("hour")}>{t("byHour")}</button>
            <button type="button" aria-pressed={bucket === "day"} onClick={() => setBucket("day")}>{t("byDay")}</button>
          </div>
        </div>
        {series.isPending ? <Loading /> : series.isError ? <ErrorBox err={series.error} retry={series.refetch} /> : (
          <>
            <div className="stats" data-testid="totals">
              <Stat label={t("requests")} value={fmtInt(totals!.requests, lang)} name="requests" />
              <Stat label={t("errors")} value={`${fmtInt(totals!.errors, lang)} (${pct(totals!.errors, totals!.requests)})`} name="errors" />
              <Stat label={t("tokens")} value={fmtInt(totalTokens(totals!), lang)} name="tokens" />
              <Stat label={t("ttftAvg")} value={totals!.ttft_ms_avg === null ? "—" : t("ms", { n: totals!.ttft_ms_avg })} name="ttft" />
            </div>
            <div className="charts">
              <Chart title={`${t("requests")} / ${t("errors")}`} labels={points.map((p) => p.label)} shortLabel={shortLabel}
                     series={[{ name: t("requests"), values: points.map((p) => p.requests), color: "--c1" },
                              { name: t("errors"), values: points.map((p) => p.errors), color: "--c3" }]} />
              <Chart title={t("tokens")} kind="line" labels={points.map((p) => p.label)} shortLabel={shortLabel}
                     series={[{ name: t("tokens"), values: points.map((p) => p.tokens), color: "--c2" }]} />
            </div>
          </>
        )}
      </section>

      <div className="grid3">
        <section aria-labelledby="lat-h" className="card">
          <h2 id="lat-h">{t("latencyPercentiles")}</h2>
          {totals && (
            <dl className="kv" data-testid="latency">
              {(["p50", "p90", "p95", "p99", "max", "avg"] as const).map((k) => (
                <div key={k} data-stat={k}><dt>{t(k)}</dt>
                  <dd>{totals.latency_ms[k] === null ? "—" : t("ms", { n: totals.latency_ms[k]! })}</dd></div>
              ))}
            </dl>
          )}
        </section>
        <section aria-labelledby="keys-h" className="card">
          <h2 id="keys-h">{t("topKeys")}</h2>
          <TopList rows={topGroups(keys.data?.groups ?? [], TOP).map((g) => [g.key_name ?? (g.key_id === null ? t("none") : `#${g.key_id}`), g.requests])}
                   empty={t("noTraffic")} testId="top-keys" />
        </section>
        <section aria-labelledby="models-h" className="card">
          <h2 id="models-h">{t("topModels")}</h2>
          <TopList rows={topGroups(models.data?.groups ?? [], TOP).map((g) => [g.model ?? "", g.requests])}
                   empty={t("noTraffic")} testId="top-models" />
        </section>
      </div>
    </div>
  );
}

export function reasonText(t: ReturnType<typeof useI18n>["t"], reason: string): string {
  switch (reason) {
    case "none": return t("reason_none");
    case "probe_failed": return t("reason_probe_failed");
    case "auth_rejected": return t("reason_auth_rejected");
    case "consecutive_failures": return t("reason_consecutive_failures");
    default: return reason;
  }
}

function Stat({ label, value, name }: { label: string; value: string; name: string }) {
  return <div className="stat" data-stat={name}><span className="muted">{label}</span><strong>{value}</strong></div>;
}

function TopList({ rows, empty, testId }: { rows: [string, number][]; empty: string; testId: string }) {
  const { lang } = useI18n();
  if (!rows.length) return <p className="muted">{empty}</p>;
  const max = Math.max(...rows.map((r) => r[1]));
  return (
    <ol className="top" data-testid={testId}>
      {rows.map(([name, n]) => (
        <li key={name}>
          <span className="top-name">{name}</span>
          <span className="bar"><i style={{ width: `${(100 * n) / max}%` }} /></span>
          <span className="num">{fmtInt(n, lang)}</span>
        </li>
      ))}
    </ol>
  );
}

// The UI's data and form logic, free of React so the unit tests reach it:
// number and time formats, time series with their gaps filled, CSV, and the
// bodies the forms send (only what changed, in the API's types).
import type { ClientKey, Provider, UsageGroup, UsageStats } from "./api";

// ---- formats ----

export function fmtInt(n: number | null | undefined, lang: string): string {
  if (n === null || n === undefined) return "—";
  return new Intl.NumberFormat(lang === "zh" ? "zh-CN" : "en-US").format(n);
}

/** 1234 → "1.2k", 2500000 → "2.5M": for chart axes. */
export function fmtCompact(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e9) return `${+(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  return String(+n.toFixed(1));
}

export function fmtTime(unix: number | null | undefined, lang: string): string {
  if (!unix) return "—";
  return new Date(unix * 1000).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  });
}

export function pct(part: number, whole: number): string {
  if (!whole) return "0%";
  return `${((100 * part) / whole).toFixed(part === whole || part === 0 ? 0 : 1)}%`;
}

// ---- time series ----

export type Bucket = "hour" | "day";

/** The bucket labels /admin/usage uses: "2024-05-31T12:00:00Z" or "2024-05-31" (UTC). */
export function bucketLabel(unix: number, b: Bucket): string {
  const iso = new Date(unix * 1000).toISOString();
  return b === "day" ? iso.slice(0, 10) : `${iso.slice(0, 13)}:00:00Z`;
}

/** Start of the bucket holding `unix`. */
export function bucketStart(unix: number, b: Bucket): number {
  const size = b === "day" ? 86400 : 3600;
  return Math.floor(unix / size) * size;
}

export interface SeriesPoint {
  label: string;
  requests: number;
  errors: number;
  tokens: number;
}

/** One point per bucket from `from` to `to` (Unix s, `to` exclusive), the
 * groups of a group_by=hour|day answer in place and zeros between them, so
 * the chart's x axis is time and not "the hours that had traffic". */
export function fillSeries(groups: UsageGroup[], b: Bucket, from: number, to: number): SeriesPoint[] {
  const size = b === "day" ? 86400 : 3600;
  const by = new Map<string, UsageGroup>();
  for (const g of groups) {
    const label = (b === "day" ? g.day : g.hour) ?? "";
    by.set(label, g);
  }
  const out: SeriesPoint[] = [];
  for (let t = bucketStart(from, b); t < to; t += size) {
    const label = bucketLabel(t, b);
    const g = by.get(label);
    out.push({
      label,
      requests: g?.requests ?? 0,
      errors: g?.errors ?? 0,
      tokens: g ? totalTokens(g) : 0,
    });
  }
  return out;
}

export function totalTokens(s: UsageStats): number {
  return s.input_tokens + s.output_tokens + s.cache_read_tokens + s.cache_write_tokens;
}

/** The `n` groups with the most requests (ties: most tokens). */
export function topGroups(groups: UsageGroup[], n: number): UsageGroup[] {
  return [...groups]
    .sort((a, b) => b.requests - a.requests || totalTokens(b) - totalTokens(a))
    .slice(0, n);
}

// ---- CSV ----

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return "";
  const s = String(v);
  // A leading = + - @ would make a spreadsheet run the cell as a formula.
  const safe = /^[=+\-@\t\r]/.test(s) && !/^-?\d+(\.\d+)?$/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export const USAGE_COLUMNS = [
  "requests", "errors", "input_tokens", "output_tokens", "cache_read_tokens",
  "cache_write_tokens", "streamed", "estimated_token_counts", "latency_p50_ms",
  "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "latency_max_ms", "latency_avg_ms",
  "ttft_avg_ms",
] as const;

function statCells(s: UsageStats): unknown[] {
  return [s.requests, s.errors, s.input_tokens, s.output_tokens, s.cache_read_tokens,
    s.cache_write_tokens, s.streamed, s.estimated_token_counts, s.latency_ms.p50,
    s.latency_ms.p90, s.latency_ms.p95, s.latency_ms.p99, s.latency_ms.max,
    s.latency_ms.avg, s.ttft_ms_avg];
}

/** Label columns of a grouping, in the answer's member names. */
export function groupColumns(groupBy: string | null): string[] {
  switch (groupBy) {
    case "key": return ["key_id", "key_name"];
    case "key_model": return ["key_id", "key_name", "model"];
    case "model": return ["model"];
    case "provider": return ["provider"];
    case "day": return ["day"];
    case "hour": return ["hour"];
    default: return [];
  }
}

/** The usage table as CSV (RFC 4180, CRLF): one row per group, or the totals. */
export function usageCsv(groupBy: string | null, totals: UsageStats, groups: UsageGroup[]): string {
  const labels = groupColumns(groupBy);
  const rows: unknown[][] = [[...labels, ...USAGE_COLUMNS]];
  if (labels.length)
    for (const g of groups)
      rows.push([...labels.map((c) => (g as unknown as Record<string, unknown>)[c]), ...statCells(g)]);
  else rows.push(statCells(totals));
  return rows.map((r) => r.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

// ---- form values ----

/** "a, b\nc" → ["a","b","c"]: commas or new lines, blanks dropped. */
export function parseList(text: string): string[] {
  return text.split(/[\n,]/).map((s) => s.trim()).filter((s) => s.length > 0);
}

export function listText(list: string[] | null | undefined): string {
  return (list ?? []).join("\n");
}

/** A whole number from a field; null when it is not one (blank: `blank`). */
export function parseWhole(text: string, blank: number | null = null): number | null {
  const s = text.trim();
  if (s === "") return blank;
  return /^\d+$/.test(s) && Number.isSafeInteger(Number(s)) ? Number(s) : null;
}

/** datetime-local value ("2025-01-31T12:30") in local time ↔ Unix seconds. */
export function localInputToUnix(v: string): number | null {
  if (!v) return null;
  const t = new Date(v).getTime();
  return Number.isNaN(t) ? null : Math.floor(t / 1000);
}

export function unixToLocalInput(unix: number | null | undefined): string {
  if (!unix) return "";
  const d = new Date(unix * 1000);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** A field error of the form itself (before the API sees it). */
export class FormError extends Error {
  field: string;
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

export interface ProviderForm {
  name: string;
  type: string;
  base_url: string;
  api_key: string;
  weight: string;
  enabled: boolean;
  models: string;
  default_model: string;
  github_token: string; // copilot: a GitHub token instead of the device flow
}

export function providerForm(p?: Provider): ProviderForm {
  return {
    name: p?.name ?? "",
    type: p?.type ?? "openai",
    base_url: p?.base_url ?? "",
    api_key: "",
    weight: String(p?.weight ?? 1),
    enabled: p?.enabled ?? true,
    models: listText(p?.models),
    default_model: p?.default_model ?? "",
    github_token: "",
  };
}

/** The POST body for a new provider, or the PUT body of what changed from
 * `orig` (a partial update: an empty API key field keeps the stored key). */
export function providerBody(f: ProviderForm, orig?: Provider): Record<string, unknown> {
  const weight = parseWhole(f.weight);
  if (weight === null) throw new FormError("weight", "invalidNumber");
  const full: Record<string, unknown> = {
    name: f.name.trim(),
    type: f.type,
    weight,
    enabled: f.enabled,
    models: parseList(f.models),
    default_model: f.default_model.trim() || null,
  };
  if (f.base_url.trim()) full.base_url = f.base_url.trim();
  if (f.api_key) full.api_key = f.api_key;
  if (!orig) return full;
  const changed: Record<string, unknown> = {};
  if (full.name !== orig.name) changed.name = full.name;
  if (full.type !== orig.type) changed.type = full.type;
  if (f.base_url.trim() !== orig.base_url) changed.base_url = f.base_url.trim();
  if (f.api_key) changed.api_key = f.api_key;
  if (weight !== orig.weight) changed.weight = weight;
  if (f.enabled !== orig.enabled) changed.enabled = f.enabled;
  if (JSON.stringify(full.models) !== JSON.stringify(orig.models)) changed.models = full.models;
  if ((full.default_model ?? null) !== (orig.default_model ?? null))
    changed.default_model = full.default_model;
  return changed;
}

/** The PUT body that gives a Copilot provider's account a GitHub token, or
 * null: the admin app takes it in a PUT of its own (neither in a create nor
 * alongside other fields), so it is sent after the provider's fields. */
export function githubTokenBody(f: ProviderForm): { github_token: string } | null {
  return f.type === "copilot" && f.github_token ? { github_token: f.github_token } : null;
}

export interface KeyForm {
  name: string;
  enabled: boolean;
  qpm: string;
  tpm: string;
  restrictModels: boolean;
  allowed_models: string;
  restrictProviders: boolean;
  allowed_providers: string;
  default_provider: string;
  expires_at: string; // datetime-local
  metadata: string;   // JSON text
}

export function keyForm(k?: ClientKey): KeyForm {
  return {
    name: k?.name ?? "",
    enabled: k?.enabled ?? true,
    qpm: String(k?.qpm_limit ?? 0),
    tpm: String(k?.tpm_limit ?? 0),
    restrictModels: !!k && k.allowed_models !== null,
    allowed_models: listText(k?.allowed_models),
    restrictProviders: !!k && k.allowed_providers !== null,
    allowed_providers: listText(k?.allowed_providers),
    default_provider: k?.default_provider ?? "",
    expires_at: unixToLocalInput(k?.expires_at),
    metadata: k?.metadata ? JSON.stringify(k.metadata, null, 2) : "",
  };
}

/** The POST body of a new key, or the PUT body of what changed from `orig`.
 * Throws FormError for a field the API would refuse for a reason the form
 * can tell first (a limit that is not a number, metadata that is not an
 * object); everything else is the API's to judge. */
export function keyBody(f: KeyForm, orig?: ClientKey): Record<string, unknown> {
  const qpm = parseWhole(f.qpm, 0);
  if (qpm === null) throw new FormError("qpm_limit", "invalidNumber");
  const tpm = parseWhole(f.tpm, 0);
  if (tpm === null) throw new FormError("tpm_limit", "invalidNumber");
  let metadata: Record<string, unknown> | null = null;
  if (f.metadata.trim()) {
    let v: unknown;
    try {
      v = JSON.parse(f.metadata);
    } catch {
      throw new FormError("metadata", "badMetadata");
    }
    if (!v || typeof v !== "object" || Array.isArray(v)) throw new FormError("metadata", "badMetadata");
    metadata = v as Record<string, unknown>;
  }
  const full: Record<string, unknown> = {
    name: f.name.trim(),
    enabled: f.enabled,
    qpm_limit: qpm,
    tpm_limit: tpm,
    allowed_models: f.restrictModels ? parseList(f.allowed_models) : null,
    allowed_providers: f.restrictProviders ? parseList(f.allowed_providers) : null,
    default_provider: f.default_provider || null,
    expires_at: localInputToUnix(f.expires_at),
    metadata,
  };
  if (!orig) {
    for (const k of Object.keys(full)) if (full[k] === null) delete full[k];
    return full;
  }
  const before: Record<string, unknown> = {
    name: orig.name, enabled: orig.enabled, qpm_limit: orig.qpm_limit, tpm_limit: orig.tpm_limit,
    allowed_models: orig.allowed_models, allowed_providers: orig.allowed_providers,
    default_provider: orig.default_provider, expires_at: orig.expires_at,
    metadata: orig.metadata,
  };
  const changed: Record<string, unknown> = {};
  for (const k of Object.keys(full))
    if (JSON.stringify(full[k]) !== JSON.stringify(before[k] ?? null)) changed[k] = full[k];
  return changed;
}

/** Seconds left until `expiresAt` (Unix s), never below 0. */
export function secondsLeft(expiresAt: number, now = Date.now() / 1000): number {
  return Math.max(0, Math.round(expiresAt - now));
}

/** The delay before the next status poll of a login: the admin app's
 * `poll_after` (seconds until it asks the identity service again) when it
 * says, else the session's `interval` (raised by the service's slow_down),
 * else `fallback`; at least 1 s. */
export function pollDelayMs(state: { poll_after?: unknown; interval?: unknown } | null,
                            fallback: number): number {
  const s = typeof state?.poll_after === "number" ? state.poll_after
    : typeof state?.interval === "number" ? state.interval : fallback || 5;
  return Math.max(1, s) * 1000;
}

/** Whether a provider of /health's pool waits for an admin to sign in (or
 * import) its account: it is out of routing until then. */
export function needsLogin(s: { credential?: string } | null | undefined): boolean {
  return typeof s?.credential === "string" && s.credential !== "ok";
}

/** What is left of an account's quota: Copilot's premium interactions
 * ({premium_interactions: {remaining, entitlement, unlimited}}) or Kiro's
 * credits ({credits: {limit, used}}); null when the answer has neither. */
export function quotaSummary(q: unknown):
    { kind: "premium" | "credits"; left: number; total: number; unlimited: boolean } | null {
  if (!q || typeof q !== "object") return null;
  const o = q as Record<string, unknown>;
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  const prem = o.premium_interactions as Record<string, unknown> | null | undefined;
  if (prem && typeof prem === "object") {
    const left = num(prem.remaining), total = num(prem.entitlement);
    if (prem.unlimited === true) return { kind: "premium", left: left ?? 0, total: total ?? 0, unlimited: true };
    if (left !== null && total !== null) return { kind: "premium", left, total, unlimited: false };
  }
  const cr = o.credits as Record<string, unknown> | null | undefined;
  if (cr && typeof cr === "object") {
    const total = num(cr.limit), used = num(cr.used);
    if (total !== null && used !== null) return { kind: "credits", left: Math.max(0, total - used), total, unlimited: false };
  }
  return null;
}

/** Base64 of bytes (an imported file), in chunks so a large file does not
 * overflow the argument list of String.fromCharCode. */
export function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000)
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

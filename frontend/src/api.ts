// The admin API client: every call carries the admin key; an error answer
// ({"error":{"type","message","field"}}) becomes an ApiError, and a 401 from
// any call signs the admin out (the key was changed or is wrong).

const STORE_KEY = "antigw.adminKey";

export class ApiError extends Error {
  status: number;
  type: string;
  field: string | null;
  retryAfter: number | null;

  constructor(status: number, type: string, message: string, field: string | null,
              retryAfter: number | null) {
    super(message);
    this.status = status;
    this.type = type;
    this.field = field;
    this.retryAfter = retryAfter;
  }
}

// ---- the admin key: sessionStorage, or localStorage when remembered ----

export function loadKey(): string | null {
  return sessionStorage.getItem(STORE_KEY) || localStorage.getItem(STORE_KEY);
}

export function saveKey(key: string, remember: boolean): void {
  sessionStorage.setItem(STORE_KEY, key);
  if (remember) localStorage.setItem(STORE_KEY, key);
  else localStorage.removeItem(STORE_KEY);
}

export function forgetKey(): void {
  sessionStorage.removeItem(STORE_KEY);
  localStorage.removeItem(STORE_KEY);
}

type Listener = () => void;
const unauthorized = new Set<Listener>();

/** Called after any 401: the stored key is forgotten first. */
export function onUnauthorized(fn: Listener): () => void {
  unauthorized.add(fn);
  return () => unauthorized.delete(fn);
}

export async function parseError(res: Response): Promise<ApiError> {
  let type = "api_error", message = `HTTP ${res.status}`, field: string | null = null;
  try {
    const doc = await res.json();
    if (doc && typeof doc === "object" && doc.error && typeof doc.error === "object") {
      if (typeof doc.error.type === "string") type = doc.error.type;
      if (typeof doc.error.message === "string") message = doc.error.message;
      if (typeof doc.error.field === "string") field = doc.error.field;
    }
  } catch {
    /* not JSON: keep the status line */
  }
  const ra = res.headers.get("Retry-After");
  const retryAfter = ra !== null && /^\d+$/.test(ra) ? Number(ra) : null;
  return new ApiError(res.status, type, message, field, retryAfter);
}

/** One call with `key` (default: the stored one). Resolves to the JSON
 * answer; rejects with ApiError. */
export async function request<T>(method: string, path: string, body?: unknown,
                                 key?: string): Promise<T> {
  const k = key ?? loadKey() ?? "";
  const headers: Record<string, string> = { Authorization: `Bearer ${k}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, "network_error", (e as Error).message || "network error", null, null);
  }
  if (!res.ok && !(path === "/health" && res.status === 503)) {
    const err = await parseError(res);
    if (res.status === 401 && key === undefined) {
      forgetKey();
      unauthorized.forEach((fn) => fn());
    }
    throw err;
  }
  return (await res.json()) as T;
}

export const api = {
  get: <T>(path: string) => request<T>("GET", path),
  post: <T>(path: string, body: unknown) => request<T>("POST", path, body),
  put: <T>(path: string, body: unknown) => request<T>("PUT", path, body),
  del: <T>(path: string) => request<T>("DELETE", path),
};

/** A path segment of an id: encoded, but ':' kept as is ("cfg:<name>"
 * ids of antigw.cfg's providers; the admin app matches paths undecoded). */
export function seg(id: string | number): string {
  return encodeURIComponent(String(id)).replace(/%3A/gi, ":");
}

/** Query string of the defined, non-empty values. */
export function query(params: Record<string, string | number | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

// ---- shapes of the answers ----

export type HealthReason = "none" | "probe_failed" | "auth_rejected" | "consecutive_failures" | string;

export interface Provider {
  id: string;
  name: string;
  type: "openai" | "anthropic" | "kiro" | "copilot" | string;
  base_url: string;
  has_api_key: boolean;
  api_key_hint: string | null;
  weight: number;
  enabled: boolean;
  models: string[];
  default_model: string | null;
  source: "config" | "database";
  read_only: boolean;
  healthy?: boolean;
  health_reason?: HealthReason;
  created_at: number | null;
  updated_at: number | null;
}

export interface ClientKey {
  id: number;
  name: string;
  key_prefix: string;
  enabled: boolean;
  allowed_models: string[] | null;
  allowed_providers: string[] | null;
  default_provider: string | null;
  qpm_limit: number;
  tpm_limit: number;
  expires_at: number | null;
  metadata: Record<string, unknown> | null;
  created_at: number;
  updated_at: number;
  key?: string;
}

export interface UsageStats {
  requests: number;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  errors: number;
  streamed: number;
  estimated_token_counts: number;
  latency_ms: { p50: number | null; p90: number | null; p95: number | null; p99: number | null;
                max: number | null; avg: number | null };
  ttft_ms_avg: number | null;
}

export type Grouping = "key" | "model" | "provider" | "key_model" | "day" | "hour";

export interface UsageGroup extends UsageStats {
  key_id?: number | null;
  key_name?: string | null;
  model?: string;
  provider?: string;
  day?: string;
  hour?: string;
}

export interface UsageAnswer {
  filters: Record<string, string | number | null>;
  group_by: Grouping | null;
  totals: UsageStats;
  groups?: UsageGroup[];
}

export interface AuditEntry {
  id: number;
  ts: number;
  action: string;
  object_type: string;
  object_id: string;
  detail: { name?: string; fields?: string[]; [k: string]: unknown };
}

export interface AuditPage {
  data: AuditEntry[];
  next_before_id: number | null;
}

export interface PoolProvider {
  name: string;
  type?: string;
  enabled?: boolean;
  healthy: boolean;
  reason: HealthReason;
  cooldown_ms: number;
  in_flight: number;
  requests: number;
  failures: number;
  latency_ewma_ms: number;
  usable: boolean;
  /** An account that logs in (Kiro, Copilot): "ok", "needs_login" (its
   * refresh was refused) or "none" (no account yet); absent for the others. */
  credential?: string;
}

export interface HealthAnswer {
  status: string;
  version?: string;
  providers?: PoolProvider[];
}

// Logins (Kiro and Copilot accounts).
export interface DeviceLogin {
  id: string;
  user_code: string;
  verification_uri?: string;
  verification_uri_complete?: string;
  interval: number;
  expires_at: number;
}

export interface SocialLogin {
  id: string;
  auth_url: string;
}

export type LoginStatus = "pending" | "completed" | "expired" | "denied" | "error";

export interface LoginState {
  status: LoginStatus;
  error?: string | null;
  message?: string | null;
  /** Seconds between the admin app's polls of the identity service
   * (raised by a slow_down); Kiro sessions also say when the next is due. */
  interval?: number;
  poll_after?: number;
  [k: string]: unknown;
}

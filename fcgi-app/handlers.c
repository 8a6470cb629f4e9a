#include "handlers.h"

#include "ac-config.h"

#include "proto/apierr.h"
#include "proto/bridge.h"
#include "tenant/catalog.h"
#include "core/crypto.h"
#include "net/fcgi_io.h"
#include "core/json.h"
#include "metrics/metrics.h"
#include "route/models.h"
#include "proto/anthropic.h"
#include "proto/openai.h"
#include "provider/provider.h"
#include "net/relay.h"
#include "route/route.h"
#include "tenant/tenant.h"
#include "tenant/usage.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Client JSON deeper than this is refused before anything else looks at it. */
#define MAX_JSON_DEPTH 128
/* Longest model name accepted from a client. */
#define MAX_MODEL_LEN 256

typedef struct {
    const agw_app *app;
    agw_app_worker *worker;
    const agw_catalog *cat; /* held for the whole request: a stream keeps its providers */
    const agw_config *cfg;  /* the catalog's view: settings plus config and database providers */
    agw_fcgi_conn conn;
    agw_proto proto;        /* the error shape this client understands */
    agw_buf cors;           /* header lines every answer carries: CORS, and in tenant
                               mode the key's x-ratelimit-* once it was admitted */
    uint64_t start_us;
    const char *method;
    agw_str path;
    /* tenant mode */
    const agw_tenant_key *key; /* the client's key (valid while `cat` is held) */
    agw_limit_ticket ticket;   /* admission; finished when the call has ended */
    /* usage: a model call that got past authentication leaves one record */
    agw_usage_record usage;
    int usage_due;             /* a record is owed and not yet submitted */
    /* metrics (metrics.h) */
    agw_metrics *metrics;      /* the pool's registry in the shared segment */
    int metered;               /* a model call: counted in antigateway_requests_total */
    uint64_t upstream_us;      /* time spent in upstream transfers (all attempts) */
} request;

void *agw_app_worker_init(void *app_ptr, int index)
{
    const agw_app *app = app_ptr;
    agw_app_worker *w = xcalloc(1, sizeof *w);
    w->upstream = agw_upstream_new();
    w->index = index;
    char err[AGW_ERR_LEN];
    /* Opened here, after the threads started, never across a fork (FASTCGI.md §8). */
    if (agw_store_open(app->cfg->database.path, &w->store, err, sizeof err) != AGW_OK)
        agw_fatal(__FILE__, __LINE__, "worker %d: database: %s", index, err);
    return w;
}

void agw_app_worker_done(void *app, void *state)
{
    (void)app;
    agw_app_worker *w = state;
    agw_upstream_free(w->upstream);
    agw_store_close(w->store);
    free(w);
}

/* ---- small responses ---- */

static void respond_json(request *r, int status, agw_str extra_headers, agw_str body)
{
    agw_buf h = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    if (agw_buf_append_str(&h, agw_buf_view(&r->cors)) == AGW_OK &&
        agw_buf_append_str(&h, extra_headers) == AGW_OK)
        (void)agw_fcgi_respond(&r->conn, status, "application/json", agw_buf_view(&h), body);
    agw_buf_free(&h);
}

static void respond_error_code(request *r, int status, const char *code, const char *fmt, ...)
    AGW_PRINTF(4, 5);

static void respond_error_code(request *r, int status, const char *code, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    agw_buf body = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    if (agw_apierr_body(&body, r->proto, status, agw_str_c(msg), code) == AGW_OK)
        respond_json(r, status, (agw_str){ "", 0 }, agw_buf_view(&body));
    agw_buf_free(&body);
}

#define respond_error(r, status, ...) respond_error_code((r), (status), NULL, __VA_ARGS__)

/* Prints a client-supplied string into a message safely: at most `max` bytes. */
static int clip(agw_str s, int max)
{
    return s.len > (size_t)max ? max : (int)s.len;
}

/* ---- CORS ---- */

static agw_err build_cors(request *r)
{
    const char *allowed = r->cfg->server.cors_origins;
    const char *origin = agw_fcgi_param(&r->conn, "HTTP_ORIGIN");
    if (!allowed || !*allowed || !origin || !*origin)
        return AGW_OK;
    if (strcmp(allowed, "*") == 0)
        return agw_buf_append_str(&r->cors, AGW_STR_LIT("Access-Control-Allow-Origin: *\r\n"));
    agw_str o = agw_str_c(origin);
    if (agw_str_has_ctl(o, 1))
        return AGW_OK;
    for (const char *p = allowed; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        agw_str item = { p, n };
        while (item.len && *item.ptr == ' ') {
            item.ptr++;
            item.len--;
        }
        while (item.len && item.ptr[item.len - 1] == ' ')
            item.len--;
        if (agw_str_eq(item, o)) {
            agw_err e;
            if ((e = agw_buf_append_str(&r->cors, AGW_STR_LIT("Access-Control-Allow-Origin: "))) ||
                (e = agw_buf_append_str(&r->cors, o)))
                return e;
            return agw_buf_append_str(&r->cors, AGW_STR_LIT("\r\nVary: Origin\r\n"));
        }
        p += n + (end ? 1 : 0);
    }
    return AGW_OK;
}

/* ---- authentication (single-key mode) ---- */

/* The key the client presented: `Authorization: Bearer` or `x-api-key`. */
static agw_str presented_key(request *r)
{
    const char *auth = agw_fcgi_param(&r->conn, "HTTP_AUTHORIZATION");
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        const char *k = auth + 7;
        while (*k == ' ')
            k++;
        return agw_str_c(k);
    }
    const char *x = agw_fcgi_param(&r->conn, "HTTP_X_API_KEY");
    if (x && *x)
        return agw_str_c(x);
    return (agw_str){ NULL, 0 };
}

/* Tenant mode (DESIGN.md §4 step 3): the key's hash through the catalog's
 * cache. 401 for a missing or unknown key, 403 for one that may not be used. */
static int authenticate_tenant(request *r, agw_str got)
{
    const agw_tenant_key *k;
    agw_err e = agw_catalog_key(r->cat, agw_store_db(r->worker->store), got, &k);
    if (e == AGW_EIO) {
        respond_error_code(r, 503, "database_unavailable",
                           "the key cannot be checked right now: try again");
        return 0;
    }
    if (e) {
        respond_error_code(r, 401, "invalid_api_key", "invalid API key");
        return 0;
    }
    switch (agw_tenant_key_check(k, agw_wall_s())) {
    case AGW_TENANT_KEY_DISABLED:
        respond_error_code(r, 403, "key_disabled", "this API key is disabled");
        return 0;
    case AGW_TENANT_KEY_EXPIRED:
        respond_error_code(r, 403, "key_expired", "this API key has expired");
        return 0;
    case AGW_TENANT_KEY_OK:
        break;
    }
    r->key = k;
    r->usage.key_id = k->id;
    return 1;
}

static int authenticate(request *r)
{
    const char *want = r->cfg->auth.api_key;
    if (!want && !r->cfg->tenant.enabled)
        return 1;
    agw_str got = presented_key(r);
    if (!got.ptr || !got.len) {
        respond_error_code(r, 401, "missing_api_key",
                           "missing API key: send Authorization: Bearer <key> or x-api-key");
        return 0;
    }
    if (r->cfg->tenant.enabled)
        return authenticate_tenant(r, got);
    if (!agw_secret_eq(got, agw_str_c(want))) {
        respond_error_code(r, 401, "invalid_api_key", "invalid API key");
        return 0;
    }
    return 1;
}

/* ---- the sink that writes the relay to FastCGI ---- */

static agw_err sink_head(void *ud, int status, const char *ct, agw_str headers)
{
    return agw_fcgi_head(ud, status, ct, headers);
}
static agw_err sink_write(void *ud, const char *p, size_t n)
{
    return agw_fcgi_write(ud, p, n);
}
static agw_err sink_flush(void *ud)
{
    return agw_fcgi_flush(ud);
}
static int sink_gone(void *ud)
{
    return agw_fcgi_client_gone(ud);
}

/* ---- model calls: /v1/chat/completions and /v1/messages ---- */

/* The body to send upstream: the client's bytes with only the model value
 * replaced (or added), so nothing else is re-serialised (DESIGN.md §9). */
static agw_err rewrite_model(agw_str body, agw_str old_value, agw_str model, agw_buf *out)
{
    agw_err e;
    if (old_value.ptr) {
        size_t head = (size_t)(old_value.ptr - body.ptr);
        if ((e = agw_buf_append(out, body.ptr, head)) || (e = agw_buf_append(out, "\"", 1)) ||
            (e = agw_buf_append_json_escaped(out, model)) || (e = agw_buf_append(out, "\"", 1)))
            return e;
        return agw_buf_append(out, old_value.ptr + old_value.len, body.len - head - old_value.len);
    }
    /* No model member: add one right after the opening brace. */
    const char *brace = memchr(body.ptr, '{', body.len);
    size_t head = (size_t)(brace - body.ptr) + 1;
    const char *p = brace + 1;
    while (p < body.ptr + body.len && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    int empty = p < body.ptr + body.len && *p == '}';
    if ((e = agw_buf_append(out, body.ptr, head)) ||
        (e = agw_buf_append_str(out, AGW_STR_LIT("\"model\":\""))) ||
        (e = agw_buf_append_json_escaped(out, model)) ||
        (e = agw_buf_append(out, empty ? "\"" : "\",", empty ? 1 : 2)))
        return e;
    return agw_buf_append(out, body.ptr + head, body.len - head);
}

/* What every model call has in common once its body has been checked. */
typedef struct {
    agw_str body;          /* the client's bytes */
    agw_str model_raw;     /* the "model" value token, NULL ptr when absent */
    agw_str model;         /* the model name as the client meant it */
    int stream;
    agw_provider_op op;    /* what the client asked for */
    agw_route route;       /* the provider of the current attempt */
    agw_buf model_buf;     /* owns the decoded model name */
    /* failover (issue 5): the candidates in the order they are tried */
    agw_route_set cands;
    size_t n_tries;        /* how many of cands are tried at most */
    int may_retry;         /* the current attempt is not the last */
} model_call;

/* Reads and checks the body, finds the model and the provider. Returns 0
 * when it has already answered the client with an error. */
static int key_allows(const agw_provider_cfg *p, const void *ud)
{
    return agw_tenant_provider_allowed(ud, p->name);
}

/* A per-thread generator for the weighted draws. */
static uint64_t lb_random(void)
{
    static _Thread_local uint64_t x;
    if (!x)
        x = agw_mono_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&x;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

static agw_lb_strategy lb_strategy_of(const agw_config *cfg)
{
    int s = agw_lb_strategy_parse(cfg->defaults.lb_strategy);
    return s < 0 ? AGW_LB_SMART : (agw_lb_strategy)s;
}

static int callable(const agw_provider_cfg *p)
{
    return p->type == AGW_PROVIDER_OPENAI || p->type == AGW_PROVIDER_ANTHROPIC;
}

/* The candidates in the order they are tried (lb.h): the usable ones (healthy,
 * not cooling down) of the client's protocol first, then the usable ones of
 * the other protocol, each group ordered by the strategy; then the rest, so a
 * request still has somewhere to go when every provider is cooling down.
 * Providers this gateway cannot call (kiro, copilot) are dropped unless no
 * other is left, in which case the first stays for its 501. */
static void order_candidates(request *r, agw_provider_type want, model_call *mc)
{
    agw_lb *lb = r->app->lb.slots ? (agw_lb *)&r->app->lb : NULL;
    uint64_t now = agw_shm_now_ns();
    agw_route_set *s = &mc->cands;
    agw_route in[AGW_ROUTE_MAX_CANDIDATES];
    size_t n_in = 0;
    for (size_t i = 0; i < s->n; i++)
        if (callable(s->r[i].provider))
            in[n_in++] = s->r[i];
    if (!n_in) {
        s->n = 1;
        mc->n_tries = 1;
        mc->route = s->r[0];
        return;
    }
    agw_lb_strategy strategy = lb_strategy_of(r->cfg);
    size_t out = 0;
    for (int group = 0; group < 3; group++) {
        agw_lb_candidate c[AGW_ROUTE_MAX_CANDIDATES];
        agw_route g[AGW_ROUTE_MAX_CANDIDATES];
        size_t n = 0;
        for (size_t i = 0; i < n_in; i++) {
            agw_lb_slot *slot = agw_lb_slot_of(lb, agw_str_c(in[i].provider->name));
            int ok = agw_lb_usable(slot, now);
            if (group == 0 ? !(ok && in[i].provider->type == want)
                : group == 1 ? !(ok && in[i].provider->type != want)
                             : ok)
                continue;
            c[n] = (agw_lb_candidate){ agw_str_c(in[i].provider->name), in[i].provider->weight,
                                       slot };
            g[n++] = in[i];
        }
        size_t order[AGW_ROUTE_MAX_CANDIDATES];
        agw_lb_order(lb, group == 2 ? AGW_LB_PRIORITY : strategy, c, n, now, lb_random(), order);
        for (size_t i = 0; i < n; i++)
            s->r[out++] = g[order[i]];
    }
    s->n = out;
    mc->n_tries = out < (size_t)r->cfg->defaults.max_attempts ? out
                                                              : (size_t)r->cfg->defaults.max_attempts;
    mc->route = s->r[0];
}

/* Routing under the client key's restrictions: 403 when the model would
 * route somewhere the key may not go, 404 when it routes nowhere. */
static int route_model(request *r, agw_provider_type want, model_call *mc)
{
    const agw_config *cfg = r->cfg;
    agw_route_limits lim = { NULL, NULL, NULL };
    if (r->key) {
        lim.first_choice = r->key->default_provider;
        lim.allowed = key_allows;
        lim.ud = r->key;
    }
    if (agw_route_candidates(cfg, mc->model, want, r->key ? &lim : NULL, &mc->cands) == AGW_OK) {
        order_candidates(r, want, mc);
        return 1;
    }
    agw_route anywhere;
    if (r->key && agw_route_resolve(cfg, mc->model, want, &anywhere) == AGW_OK) {
        respond_error_code(r, 403, "provider_not_allowed",
                           "model '%.*s' is served by provider '%s', which this API key may not "
                           "use", clip(mc->model, 200), mc->model.ptr, anywhere.provider->name);
        return 0;
    }
    respond_error_code(r, 404, "model_not_found",
                       "model '%.*s' is not served by any configured provider",
                       clip(mc->model, 200), mc->model.ptr);
    return 0;
}

static int prepare_model_call(request *r, agw_provider_type want, model_call *mc)
{
    r->metered = 1;
    const agw_config *cfg = r->cfg;
    agw_err e = agw_fcgi_read_body(&r->conn, cfg->server.max_body_bytes);
    if (e == AGW_ETOOBIG) {
        respond_error_code(r, 413, "request_too_large", "request body is larger than %lu bytes",
                           (unsigned long)cfg->server.max_body_bytes);
        return 0;
    }
    if (e) {
        agw_log_warn("reading the request body failed: %s", agw_strerror(e));
        return 0;
    }
    mc->body = agw_buf_view(&r->conn.body);
    char why[160];
    if (mc->body.len == 0) {
        respond_error(r, 400, "request body is empty: a JSON object is required");
        return 0;
    }
    if (agw_json_validate(mc->body, MAX_JSON_DEPTH, why, sizeof why) != AGW_OK) {
        respond_error(r, 400, "request body is not valid JSON: %s", why);
        return 0;
    }
    e = agw_json_find(mc->body, AGW_STR_LIT("model"), &mc->model_raw);
    if (e == AGW_EINVAL) {
        respond_error(r, 400, "request body must be a JSON object");
        return 0;
    }
    if (e == AGW_ENOTFOUND) {
        mc->model_raw = (agw_str){ NULL, 0 };
        mc->model = (agw_str){ "", 0 }; /* the provider's default (route.h) */
    } else {
        if (agw_json_type_of(mc->model_raw) != AGW_JSON_STRING) {
            respond_error(r, 400, "'model' must be a string");
            return 0;
        }
        if (agw_json_string_decode(mc->model_raw, &mc->model_buf) != AGW_OK ||
            mc->model_buf.len > MAX_MODEL_LEN ||
            memchr(agw_buf_view(&mc->model_buf).ptr, '\0', mc->model_buf.len) ||
            agw_str_has_ctl(agw_buf_view(&mc->model_buf), 1)) {
            respond_error(r, 400, "'model' must be a printable name of at most %d bytes",
                          MAX_MODEL_LEN);
            return 0;
        }
        mc->model = agw_buf_view(&mc->model_buf);
    }
    agw_usage_record_names(&r->usage, AGW_STR_LIT(""), mc->model);
    agw_str stream_raw;
    if (agw_json_find(mc->body, AGW_STR_LIT("stream"), &stream_raw) == AGW_OK) {
        agw_json_type t = agw_json_type_of(stream_raw);
        if (t != AGW_JSON_TRUE && t != AGW_JSON_FALSE && t != AGW_JSON_NULL) {
            respond_error(r, 400, "'stream' must be a boolean");
            return 0;
        }
        mc->stream = t == AGW_JSON_TRUE;
    }
    if (!route_model(r, want, mc))
        return 0;
    if (mc->model.len == 0)
        mc->model = mc->route.model;
    agw_usage_record_names(&r->usage, agw_str_c(mc->route.provider->name), mc->route.model);
    if (r->key && !agw_tenant_model_allowed(r->key, mc->model) &&
        !agw_tenant_model_allowed(r->key, mc->route.model)) {
        respond_error_code(r, 403, "model_not_allowed", "this API key may not use model '%.*s'",
                           clip(mc->model, 200), mc->model.ptr);
        return 0;
    }
    if (mc->op == AGW_OP_EMBEDDINGS && mc->route.provider->type != AGW_PROVIDER_OPENAI) {
        respond_error_code(r, 400, "embeddings_unsupported",
                           "model '%.*s' routes to provider '%s' of type %s: embeddings are only "
                           "available from OpenAI-type providers",
                           clip(mc->model, 200), mc->model.ptr, mc->route.provider->name,
                           agw_provider_type_name(mc->route.provider->type));
        return 0;
    }
    agw_provider_type t = mc->route.provider->type;
    if (!callable(mc->route.provider)) {
        respond_error_code(r, 501, "provider_type_unsupported",
                           "model '%.*s' routes to provider '%s' of type %s, which this gateway "
                           "cannot call yet",
                           clip(mc->model, 200), mc->model.ptr, mc->route.provider->name,
                           agw_provider_type_name(t));
        return 0;
    }
    return 1;
}

static agw_proto provider_proto(const agw_provider_cfg *p)
{
    return p->type == AGW_PROVIDER_ANTHROPIC ? AGW_PROTO_ANTHROPIC : AGW_PROTO_OPENAI;
}

/* ---- tenant limits and usage ---- */

/* The key's limits as response headers (SPEC "Rate limits"). */
static void ratelimit_headers(request *r)
{
    const agw_limit_ticket *t = &r->ticket;
    agw_err e = AGW_OK;
    if (t->policy.qpm > 0)
        e = agw_buf_appendf(&r->cors,
                            "x-ratelimit-limit-requests: %lld\r\n"
                            "x-ratelimit-remaining-requests: %lld\r\n",
                            (long long)t->policy.qpm, (long long)t->remaining_requests);
    if (!e && t->policy.tpm > 0)
        e = agw_buf_appendf(&r->cors,
                            "x-ratelimit-limit-tokens: %lld\r\n"
                            "x-ratelimit-remaining-tokens: %lld\r\n",
                            (long long)t->policy.tpm, (long long)t->remaining_tokens);
    if (e)
        agw_buf_reset(&r->cors);
}

/* QPM and TPM admission across the pool (limiter.h). Returns 0 when the
 * client already got its 429 (or 503 when the limiter has no room). */
static int admit(request *r, const model_call *mc)
{
    if (!r->key || (r->key->limits.qpm <= 0 && r->key->limits.tpm <= 0))
        return 1;
    /* Counting tokens costs no tokens: count_tokens takes a request unit only. */
    int64_t estimate = mc->op == AGW_OP_COUNT_TOKENS ? 0 : agw_limit_estimate(mc->body);
    if (agw_limit_admit(r->app->shm, (uint64_t)r->key->id, &r->key->limits, estimate,
                        agw_shm_now_ns(), &r->ticket) != AGW_OK) {
        agw_log_error("limiter table full: key %lld refused", (long long)r->key->id);
        respond_error_code(r, 503, "limiter_full",
                           "the gateway cannot track this key's limits right now: try again");
        return 0;
    }
    ratelimit_headers(r);
    if (r->ticket.verdict == AGW_LIMIT_ADMITTED)
        return 1;
    int by_qpm = r->ticket.verdict == AGW_LIMIT_BY_QPM;
    uint64_t secs = (r->ticket.retry_after_ms + 999) / 1000;
    char retry[48];
    snprintf(retry, sizeof retry, "Retry-After: %llu\r\n",
             (unsigned long long)(secs ? secs : 1));
    char msg[256];
    snprintf(msg, sizeof msg,
             "rate limit reached for this API key: %lld %s per minute; retry after %llu s",
             (long long)(by_qpm ? r->key->limits.qpm : r->key->limits.tpm),
             by_qpm ? "requests" : "tokens", (unsigned long long)(secs ? secs : 1));
    agw_buf body = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    if (agw_apierr_body(&body, r->proto, 429, agw_str_c(msg), "rate_limit_exceeded") == AGW_OK)
        respond_json(r, 429, agw_str_c(retry), agw_buf_view(&body));
    agw_buf_free(&body);
    return 0;
}

static void tap_event(void *ud, agw_str name, agw_str data)
{
    agw_usage_tap_event(ud, name, data);
}

static void tap_body(void *ud, agw_str body)
{
    agw_usage_tap_body(ud, body);
}

static int64_t nonneg(int64_t v)
{
    return v > 0 ? v : 0;
}

/* After a provider call: the usage record and the TPM settlement. The record
 * is committed before the response ends (usage.h "Durability"), unless the
 * client is gone and nobody waits for the end. */
static void account(request *r, const model_call *mc, const agw_relay_result *res,
                    const agw_usage_tap *tap, const agw_bridge *bridge)
{
    agw_usage_record *u = &r->usage;
    agw_ir_usage got = tap->usage;
    if (bridge) {
        agw_ir_usage b = agw_bridge_usage(bridge);
        agw_ir_usage_merge(&got, &b);
    }
    u->status = res->status;
    u->streamed = res->streamed;
    if (tap->first_output_us > r->start_us)
        u->ttft_ms = (int64_t)((tap->first_output_us - r->start_us) / 1000);
    if (got.input >= 0 || got.output >= 0) {
        u->input_tokens = nonneg(got.input);
        u->output_tokens = nonneg(got.output);
        u->cache_read_tokens = nonneg(got.cache_read);
        u->cache_write_tokens = nonneg(got.cache_write);
    } else if (res->status >= 200 && res->status <= 299 && mc->op != AGW_OP_COUNT_TOKENS) {
        /* No usage from the provider (an OpenAI stream whose client did not
         * ask for it): the record says what was estimated (usage.h). */
        u->input_tokens = (int64_t)((mc->body.len + 3) / 4);
        u->output_tokens = (tap->output_bytes + 3) / 4;
        u->tokens_estimated = 1;
    }
    agw_limit_finish(&r->ticket,
                     u->input_tokens + u->output_tokens + u->cache_read_tokens +
                         u->cache_write_tokens,
                     agw_shm_now_ns());
    u->latency_ms = (int64_t)((agw_mono_us() - r->start_us) / 1000);
    r->usage_due = 0;
    if (agw_usage_submit(r->app->usage, u, !res->client_gone) != AGW_OK)
        agw_log_error("usage record of %s %.*s could not be stored", r->method,
                      clip(r->path, 100), r->path.ptr);
}

/* The load balancer's verdict on one attempt (lb.h). */
static agw_lb_result lb_verdict(const agw_relay_result *res)
{
    if (res->client_gone)
        return AGW_LB_OK;
    if (res->upstream_status == 429)
        return AGW_LB_FAIL_429;
    if (res->upstream_status >= 500 || res->outcome == AGW_UPSTREAM_CONNECT ||
        res->outcome == AGW_UPSTREAM_TIMEOUT || res->outcome == AGW_UPSTREAM_BROKEN)
        return AGW_LB_FAIL_5XX;
    return AGW_LB_OK;
}

/* How long a failing provider stays out of the rotation: its retry-after
 * when it sent one, capped at 10 x cooldown_seconds and an hour; else
 * cooldown_seconds. */
static uint64_t cooldown_ms(const agw_config *cfg, const agw_relay_result *res)
{
    uint64_t base = (uint64_t)cfg->defaults.cooldown_seconds;
    if (res->retry_after_s < 0)
        return base * 1000u;
    uint64_t cap = base * 10u < 3600u ? base * 10u : 3600u;
    uint64_t ra = (uint64_t)res->retry_after_s;
    return (ra < cap ? ra : cap) * 1000u;
}

/* ---- metrics (metrics.h) ---- */

/* One upstream attempt: the stream gauge, the time spent upstream, and the
 * failure class when it failed. */
static void meter_attempt(request *r, const model_call *mc, const agw_relay_result *res,
                          int stream, uint64_t t0)
{
    if (stream)
        agw_metrics_stream_end(r->metrics);
    r->upstream_us += agw_mono_us() - t0;
    agw_str provider = agw_str_c(mc->route.provider->name);
    long status = agw_upstream_status(r->worker->upstream);
    int c = -1;
    if (res->outcome == AGW_UPSTREAM_CONNECT)
        c = AGW_UPERR_CONNECT;
    else if (res->outcome == AGW_UPSTREAM_TIMEOUT)
        c = AGW_UPERR_TIMEOUT;
    else if (res->outcome == AGW_UPSTREAM_BROKEN)
        c = AGW_UPERR_BROKEN;
    else if (status == 429)
        c = AGW_UPERR_STATUS_429;
    else if (status >= 400 && status <= 499)
        c = AGW_UPERR_STATUS_4XX;
    else if (status >= 500)
        c = AGW_UPERR_STATUS_5XX;
    if (c >= 0)
        agw_metrics_upstream_error(r->metrics, provider, (agw_metrics_uperr)c);
}

/* The label set of a model call: its provider ("none" before routing) and its
 * model when the catalog knows it, else "other" (metrics.h "Bounds"). */
static agw_metrics_series *meter_series(request *r)
{
    const agw_usage_record *u = &r->usage;
    agw_str provider = u->provider[0] ? agw_str_c(u->provider) : AGW_STR_LIT(AGW_METRICS_NONE);
    agw_str model = agw_str_c(u->model);
    if (!u->provider[0] || !agw_models_known(r->cfg, model))
        model = AGW_STR_LIT(AGW_METRICS_OTHER);
    return agw_metrics_series_slot(r->metrics, provider, model);
}

/* The answer's tokens (as the provider reported them; estimates are not
 * counted) and its time to first token. */
static void meter_answer(request *r, const model_call *mc, const agw_usage_tap *tap)
{
    const agw_usage_record *u = &r->usage;
    if (!u->tokens_estimated) {
        agw_metrics_series *s = meter_series(r);
        agw_metrics_count_tokens(s, AGW_TOKENS_INPUT, u->input_tokens);
        agw_metrics_count_tokens(s, AGW_TOKENS_OUTPUT, u->output_tokens);
        agw_metrics_count_tokens(s, AGW_TOKENS_CACHE_READ, u->cache_read_tokens);
        agw_metrics_count_tokens(s, AGW_TOKENS_CACHE_WRITE, u->cache_write_tokens);
    }
    if (tap->first_output_us > r->start_us)
        agw_metrics_observe(&agw_metrics_provider_slot(r->metrics,
                                                       agw_str_c(mc->route.provider->name))
                                 ->ttft,
                            AGW_HIST_LATENCY, tap->first_output_us - r->start_us);
}

/* The end of a model call: its status, its duration and the gateway's own
 * share of it. */
static void meter_request(request *r)
{
    uint64_t total = agw_mono_us() - r->start_us;
    agw_metrics_series *s = meter_series(r);
    agw_metrics_count_request(s, r->conn.status);
    agw_metrics_observe(&s->duration, AGW_HIST_LATENCY, total);
    agw_metrics_observe(&r->metrics->overhead, AGW_HIST_OVERHEAD,
                        total > r->upstream_us ? total - r->upstream_us : 0);
}

/* Sends the prepared upstream call through the relay, accounts for it and
 * logs the outcome. `bridge` is the converting codec's owner, NULL for a
 * passthrough. With mc->may_retry a failure that reached nothing of the
 * client is left unanswered (res->retryable) for the next candidate. */
static void relay_call(request *r, const model_call *mc, const agw_provider_call *call,
                       agw_str send, int stream, agw_bridge *bridge, agw_relay_result *res)
{
    const agw_config *cfg = r->cfg;
    const agw_codec *codec = bridge ? agw_bridge_codec(bridge) : NULL;
    agw_usage_tap tap;
    agw_usage_tap_init(&tap, provider_proto(mc->route.provider));
    agw_relay_tap watch = { &tap, tap_event, tap_body };
    agw_relay_req rq = {
        .proto = r->proto,
        .codec = codec,
        .tap = &watch,
        .hold_final = 1,
        .own_ratelimit_headers = cfg->tenant.enabled,
        .url = call->url,
        .headers = (const char *const *)call->headers,
        .body = send,
        .stream = stream,
        .connect_timeout_ms = cfg->server.connect_timeout_ms,
        .idle_timeout_ms = (long)cfg->server.idle_timeout_s * 1000,
        .commit_ms = cfg->server.stream_commit_ms,
        .ping_ms = (long)cfg->server.sse_ping_s * 1000,
        .response_headers = agw_buf_view(&r->cors),
        .may_retry = mc->may_retry,
    };
    agw_client_sink sink = { &r->conn, sink_head, sink_write, sink_flush, sink_gone };
    agw_lb_slot *slot = agw_lb_slot_of(r->app->lb.slots ? (agw_lb *)&r->app->lb : NULL,
                                       agw_str_c(mc->route.provider->name));
    agw_lb_begin(slot);
    uint64_t relay_t0 = agw_mono_us();
    if (stream)
        agw_metrics_stream_begin(r->metrics);
    agw_relay_run(r->worker->upstream, &rq, &sink, res);
    meter_attempt(r, mc, res, stream, relay_t0);
    agw_lb_result verdict = lb_verdict(res);
    agw_lb_end(slot, verdict,
               res->upstream_status >= 200 && res->upstream_status <= 299 ? res->first_byte_us : 0,
               cooldown_ms(cfg, res), cfg->defaults.health_check_enabled, agw_shm_now_ns());
    if (res->retryable) {
        agw_log_warn("%s %.*s provider=%s model=%.*s failed before the first byte (status=%d%s%s): "
                     "trying the next provider",
                     r->method, clip(r->path, 100), r->path.ptr, mc->route.provider->name,
                     clip(mc->route.model, 100), mc->route.model.ptr, res->status,
                     res->detail[0] ? " " : "", res->detail);
        agw_metrics_failover(r->metrics, mc->route.provider->name);
        return;
    }
    account(r, mc, res, &tap, bridge);
    meter_answer(r, mc, &tap);
    agw_log_info("%s %.*s provider=%s model=%.*s%s status=%d stream=%d events=%lu bytes=%lu "
                 "ttfb_ms=%lu ms=%lu%s%s%s",
                 r->method, clip(r->path, 100), r->path.ptr, mc->route.provider->name,
                 clip(mc->route.model, 100), mc->route.model.ptr, codec ? " converted=1" : "",
                 res->status, res->streamed, (unsigned long)res->events,
                 (unsigned long)res->bytes_out, (unsigned long)(res->first_byte_us / 1000),
                 (unsigned long)((agw_mono_us() - r->start_us) / 1000),
                 res->client_gone ? " client_gone=1" : "", res->detail[0] ? " detail=" : "",
                 res->detail);
}

/* Same protocol in and out: the client's bytes go upstream untouched unless
 * the model value changes (a prefix stripped, a default filled in, or escapes
 * in the name). */
static int passthrough(request *r, model_call *mc, agw_provider_op op, int stream)
{
    int retry = 0;
    agw_buf upstream_body = AGW_BUF_INIT(r->cfg->server.max_body_bytes + 1024);
    agw_provider_call call;
    memset(&call, 0, sizeof call);
    agw_str send = mc->body;
    agw_str m = mc->model, rm = mc->route.model;
    int untouched = mc->model_raw.ptr && rm.ptr == m.ptr && rm.len == m.len &&
                    mc->model_raw.len == m.len + 2 && memcmp(mc->model_raw.ptr + 1, m.ptr, m.len) == 0;
    if (!untouched) {
        if (rewrite_model(mc->body, mc->model_raw, rm, &upstream_body) != AGW_OK) {
            respond_error(r, 413, "request body too large after rewriting the model");
            goto out;
        }
        send = agw_buf_view(&upstream_body);
    }
    agw_client_hints hints = {
        .anthropic_version = agw_fcgi_param(&r->conn, "HTTP_ANTHROPIC_VERSION"),
        .anthropic_beta = agw_fcgi_param(&r->conn, "HTTP_ANTHROPIC_BETA"),
    };
    if (agw_provider_prepare(mc->route.provider, op, &hints, &call) != AGW_OK) {
        respond_error(r, 400, "invalid anthropic-version or anthropic-beta header");
        goto out;
    }
    agw_relay_result res;
    relay_call(r, mc, &call, send, stream, NULL, &res);
    retry = res.retryable;
out:
    agw_provider_call_free(&call);
    agw_buf_free(&upstream_body);
    return retry;
}

/* Different protocols: decode the client's request into the IR, encode it for
 * the provider, and let a bridge convert the answer back. */
static int convert(request *r, model_call *mc)
{
    int retry = 0;
    agw_arena arena = AGW_ARENA_INIT;
    agw_ir_request ir;
    agw_buf upstream_body = AGW_BUF_INIT(r->cfg->server.max_body_bytes * 2 + 65536);
    agw_provider_call call;
    agw_bridge *bridge = NULL;
    memset(&call, 0, sizeof call);
    char why[512];
    why[0] = '\0';
    agw_err e = r->proto == AGW_PROTO_OPENAI
                    ? agw_openai_decode_request(mc->body, &arena, &ir, why, sizeof why)
                    : agw_anthropic_decode_request(mc->body, &arena, &ir, why, sizeof why);
    if (e) {
        respond_error(r, 400, "%s", why[0] ? why : "the request cannot be converted");
        goto out;
    }
    ir.model = mc->route.model;
    agw_proto upstream = provider_proto(mc->route.provider);
    why[0] = '\0';
    e = upstream == AGW_PROTO_OPENAI
            ? agw_openai_encode_request(&ir, &upstream_body, why, sizeof why)
            : agw_anthropic_encode_request(&ir, &upstream_body, why, sizeof why);
    if (e) {
        respond_error(r, e == AGW_ETOOBIG ? 413 : 400, "%s for provider '%s'",
                      why[0] ? why : "the request cannot be expressed", mc->route.provider->name);
        goto out;
    }
    agw_client_hints hints = { NULL, NULL };
    if (r->proto == AGW_PROTO_ANTHROPIC)
        hints.anthropic_beta = agw_fcgi_param(&r->conn, "HTTP_ANTHROPIC_BETA");
    if (agw_provider_prepare(mc->route.provider,
                             upstream == AGW_PROTO_OPENAI ? AGW_OP_CHAT : AGW_OP_MESSAGES, &hints,
                             &call) != AGW_OK) {
        respond_error(r, 400, "invalid anthropic-beta header");
        goto out;
    }
    bridge = agw_bridge_new(r->proto, upstream, ir.stream, ir.stream_usage, mc->model,
                            agw_wall_s());
    agw_relay_result res;
    relay_call(r, mc, &call, agw_buf_view(&upstream_body), ir.stream, bridge, &res);
    retry = res.retryable;
out:
    agw_bridge_free(bridge);
    agw_provider_call_free(&call);
    agw_buf_free(&upstream_body);
    agw_arena_free(&arena);
    return retry;
}

static void handle_model_call(request *r, agw_provider_op op)
{
    agw_provider_type want = op == AGW_OP_CHAT ? AGW_PROVIDER_OPENAI : AGW_PROVIDER_ANTHROPIC;
    model_call mc;
    memset(&mc, 0, sizeof mc);
    agw_buf_init(&mc.model_buf, 4096);
    mc.op = op;
    r->usage_due = 1;
    if (prepare_model_call(r, want, &mc) && admit(r, &mc)) {
        /* Failover (issue 5): the next candidate while nothing reached the
         * client; the same body is resent, or re-encoded for another type. */
        for (size_t i = 0; i < mc.n_tries; i++) {
            mc.route = mc.cands.r[i];
            mc.may_retry = i + 1 < mc.n_tries;
            agw_usage_record_names(&r->usage, agw_str_c(mc.route.provider->name), mc.route.model);
            int retry = mc.route.provider->type == want ? passthrough(r, &mc, op, mc.stream)
                                                        : convert(r, &mc);
            if (!retry)
                break;
        }
    }
    agw_buf_free(&mc.model_buf);
}

/* POST /v1/messages/count_tokens: the provider counts when it is Anthropic;
 * otherwise a local estimate, marked as such in a header and a field. */
static void handle_count_tokens(request *r)
{
    model_call mc;
    memset(&mc, 0, sizeof mc);
    agw_buf_init(&mc.model_buf, 4096);
    mc.op = AGW_OP_COUNT_TOKENS;
    r->usage_due = 1;
    if (!prepare_model_call(r, AGW_PROVIDER_ANTHROPIC, &mc) || !admit(r, &mc))
        goto out;
    if (mc.route.provider->type == AGW_PROVIDER_ANTHROPIC) {
        (void)passthrough(r, &mc, AGW_OP_COUNT_TOKENS, 0);
        goto out;
    }
    agw_arena arena = AGW_ARENA_INIT;
    agw_ir_request ir;
    char why[512];
    why[0] = '\0';
    if (agw_anthropic_decode_request(mc.body, &arena, &ir, why, sizeof why) != AGW_OK) {
        respond_error(r, 400, "%s", why[0] ? why : "the request cannot be read");
    } else {
        char body[96];
        snprintf(body, sizeof body, "{\"input_tokens\":%lld,\"estimated\":true}",
                 (long long)agw_ir_estimate_tokens(&ir));
        respond_json(r, 200, AGW_STR_LIT("X-AntiGateway-Token-Count: estimate\r\n"),
                     agw_str_c(body));
    }
    agw_arena_free(&arena);
out:
    agw_buf_free(&mc.model_buf);
}

/* ---- POST /v1/embeddings ---- */

/* OpenAI-type providers only; the bytes pass through both ways (a prefix
 * stripped from the model is the only change), so encoding_format float and
 * base64 arrive untouched. */
static void handle_embeddings(request *r)
{
    model_call mc;
    memset(&mc, 0, sizeof mc);
    agw_buf_init(&mc.model_buf, 4096);
    mc.op = AGW_OP_EMBEDDINGS;
    r->usage_due = 1;
    if (prepare_model_call(r, AGW_PROVIDER_OPENAI, &mc) && admit(r, &mc))
        (void)passthrough(r, &mc, AGW_OP_EMBEDDINGS, 0);
    agw_buf_free(&mc.model_buf);
}

/* ---- GET /v1/models ---- */

/* The providers and models this client may see: enabled (models.c), and
 * allowed by its key. */
static int models_provider_ok(const agw_provider_cfg *p, void *ud)
{
    const request *r = ud;
    return !r->key || agw_tenant_provider_allowed(r->key, p->name);
}

static int models_model_ok(agw_str id, void *ud)
{
    const request *r = ud;
    return !r->key || agw_tenant_model_allowed(r->key, id);
}

static void handle_models(request *r)
{
    int anthropic = agw_fcgi_param(&r->conn, "HTTP_ANTHROPIC_VERSION") != NULL;
    agw_models_filter f = { models_provider_ok, models_model_ok, r };
    agw_buf b = AGW_BUF_INIT(AGW_LIMIT_UPSTREAM_BODY);
    if (agw_models_render(r->cfg, &f, anthropic, r->app->started_at, &b) != AGW_OK)
        respond_error(r, 500, "model list too large");
    else
        respond_json(r, 200, (agw_str){ "", 0 }, agw_buf_view(&b));
    agw_buf_free(&b);
}

/* ---- GET /metrics ---- */

static void handle_metrics(request *r)
{
    /* antigateway_provider_health from the load balancer's view (lb.h): a
     * provider is up when enabled and not marked unhealthy by the probes or
     * by consecutive failures. */
    agw_lb *lb = r->app->lb.slots ? (agw_lb *)&r->app->lb : NULL;
    for (size_t i = 0; lb && i < r->cfg->n_providers; i++) {
        const agw_provider_cfg *p = &r->cfg->providers[i];
        agw_lb_slot *slot = agw_lb_slot_of(lb, agw_str_c(p->name));
        if (slot)
            agw_metrics_set_health(r->metrics, p->name,
                                   p->enabled && !atomic_load(&slot->unhealthy));
    }
    agw_buf b = AGW_BUF_INIT(AGW_LIMIT_UPSTREAM_BODY);
    if (agw_metrics_render(r->metrics, r->cfg, agw_shm_rate_limit_hits(r->app->shm), &b) !=
        AGW_OK)
        respond_error(r, 500, "metrics too large");
    else
        (void)agw_fcgi_respond(&r->conn, 200, AGW_METRICS_CONTENT_TYPE, agw_buf_view(&r->cors),
                               agw_buf_view(&b));
    agw_buf_free(&b);
}

/* ---- GET /health ---- */

static void handle_health(request *r)
{
    const agw_config *cfg = r->cfg;
    agw_buf b = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    agw_lb *lb = r->app->lb.slots ? (agw_lb *)&r->app->lb : NULL;
    uint64_t now = agw_shm_now_ns();
    size_t usable = 0, enabled = 0;
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const agw_provider_cfg *p = &cfg->providers[i];
        enabled += p->enabled != 0;
        usable += p->enabled && agw_lb_usable(agw_lb_slot_of(lb, agw_str_c(p->name)), now);
    }
    agw_err e = agw_buf_appendf(&b, "{\"status\":\"%s\",\"version\":\"%s\",\"providers\":[",
                                usable ? "ok" : "unavailable", PACKAGE_VERSION);
    for (size_t i = 0; !e && i < cfg->n_providers; i++) {
        const agw_provider_cfg *p = &cfg->providers[i];
        if ((i && (e = agw_buf_append(&b, ",", 1))) ||
            (e = agw_buf_append_str(&b, AGW_STR_LIT("{\"name\":\""))) ||
            (e = agw_buf_append_json_escaped(&b, agw_str_c(p->name))))
            break;
        /* The load balancer's view (lb.h), shared by the whole pool. */
        agw_lb_slot *s = agw_lb_slot_of(lb, agw_str_c(p->name));
        uint64_t until = s ? atomic_load(&s->cooldown_until_ns) : 0;
        uint64_t cool_ms = until > now ? (until - now + 999999u) / 1000000u : 0;
        e = agw_buf_appendf(
            &b,
            "\",\"type\":\"%s\",\"enabled\":%s,\"healthy\":%s,\"cooldown_ms\":%llu,"
            "\"in_flight\":%llu,\"requests\":%llu,\"failures\":%llu,\"latency_ewma_ms\":%llu,"
            "\"usable\":%s}",
            agw_provider_type_name(p->type), p->enabled ? "true" : "false",
            s && atomic_load(&s->unhealthy) ? "false" : "true", (unsigned long long)cool_ms,
            (unsigned long long)(s ? atomic_load(&s->in_flight) : 0),
            (unsigned long long)(s ? atomic_load(&s->requests) : 0),
            (unsigned long long)(s ? atomic_load(&s->failures) : 0),
            (unsigned long long)(s ? atomic_load(&s->latency_ewma_us) / 1000u : 0),
            p->enabled && agw_lb_usable(s, now) ? "true" : "false");
    }
    if (!e)
        e = usable ? agw_buf_append(&b, "]}", 2)
            : enabled ? agw_buf_append_str(&b, AGW_STR_LIT("],\"reason\":\"every provider is "
                                                           "unhealthy or cooling down\"}"))
                      : agw_buf_append_str(&b, AGW_STR_LIT("],\"reason\":\"no provider is "
                                                           "configured and enabled\"}"));
    if (e)
        respond_error(r, 500, "health report too large");
    else
        respond_json(r, usable ? 200 : 503, (agw_str){ "", 0 }, agw_buf_view(&b));
    agw_buf_free(&b);
}

/* ---- dispatch ---- */

typedef enum { EP_NONE = 0, EP_CHAT, EP_MESSAGES, EP_COUNT_TOKENS, EP_MODELS, EP_HEALTH,
               EP_EMBEDDINGS, EP_METRICS } endpoint;

static const struct {
    agw_str path;
    endpoint ep;
    const char *method;
    int needs_auth;
} routes[] = {
    { AGW_STR_LIT("/v1/chat/completions"), EP_CHAT, "POST", 1 },
    { AGW_STR_LIT("/v1/messages"), EP_MESSAGES, "POST", 1 },
    { AGW_STR_LIT("/v1/messages/count_tokens"), EP_COUNT_TOKENS, "POST", 1 },
    { AGW_STR_LIT("/v1/models"), EP_MODELS, "GET", 1 },
    { AGW_STR_LIT("/health"), EP_HEALTH, "GET", 0 },
    { AGW_STR_LIT("/v1/embeddings"), EP_EMBEDDINGS, "POST", 1 },
    { AGW_STR_LIT("/metrics"), EP_METRICS, "GET", 0 },
};

void agw_app_handle(void *app_ptr, agw_server_worker *w, FCGX_Request *req)
{
    request r;
    memset(&r, 0, sizeof r);
    r.app = app_ptr;
    r.worker = agw_server_worker_state(w);
    r.start_us = agw_mono_us();
    r.cat = agw_catalog_acquire(r.app->catalog, agw_store_db(r.worker->store));
    r.cfg = agw_catalog_config(r.cat);
    r.metrics = agw_metrics_in(r.app->shm);
    agw_usage_record_init(&r.usage);
    agw_buf_init(&r.cors, 4096);
    agw_fcgi_conn_init(&r.conn, req);
    r.method = agw_fcgi_param(&r.conn, "REQUEST_METHOD");
    if (!r.method)
        r.method = "GET";
    r.path = agw_fcgi_path(&r.conn);
    while (r.path.len > 1 && r.path.ptr[r.path.len - 1] == '/')
        r.path.len--;
    r.proto = agw_str_starts(r.path, AGW_STR_LIT("/v1/messages")) ? AGW_PROTO_ANTHROPIC
                                                                  : AGW_PROTO_OPENAI;
    if (build_cors(&r) != AGW_OK)
        agw_buf_reset(&r.cors);

    size_t i;
    for (i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (agw_str_eq(r.path, routes[i].path))
            break;
    if (i == sizeof routes / sizeof routes[0]) {
        respond_error_code(&r, 404, "unknown_url", "no endpoint at %.*s %.*s", 10, r.method,
                           clip(r.path, 200), r.path.ptr);
        goto out;
    }
    if (strcmp(r.method, "OPTIONS") == 0) {
        /* A CORS preflight: browsers send no credentials with it. */
        agw_buf h = AGW_BUF_INIT(4096);
        if (agw_buf_append_str(&h, agw_buf_view(&r.cors)) == AGW_OK &&
            agw_buf_appendf(&h, "Allow: %s, OPTIONS\r\nAccess-Control-Allow-Methods: %s, OPTIONS\r\n"
                                "Access-Control-Allow-Headers: authorization, content-type, "
                                "x-api-key, anthropic-version, anthropic-beta\r\n"
                                "Access-Control-Max-Age: 600\r\n",
                            routes[i].method, routes[i].method) == AGW_OK)
            (void)agw_fcgi_respond(&r.conn, 204, "text/plain", agw_buf_view(&h), (agw_str){ "", 0 });
        agw_buf_free(&h);
        goto out;
    }
    if (strcmp(r.method, routes[i].method) != 0 &&
        !(strcmp(r.method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0)) {
        char allow[64];
        snprintf(allow, sizeof allow, "Allow: %s, OPTIONS\r\n", routes[i].method);
        agw_buf body = AGW_BUF_INIT(AGW_LIMIT_SMALL);
        char msg[128];
        snprintf(msg, sizeof msg, "%.*s takes %s, not %.10s", clip(r.path, 60), r.path.ptr,
                 routes[i].method, r.method);
        if (agw_apierr_body(&body, r.proto, 405, agw_str_c(msg), "method_not_allowed") == AGW_OK)
            respond_json(&r, 405, agw_str_c(allow), agw_buf_view(&body));
        agw_buf_free(&body);
        goto out;
    }
    if (routes[i].needs_auth && !authenticate(&r))
        goto out;
    switch (routes[i].ep) {
    case EP_CHAT: handle_model_call(&r, AGW_OP_CHAT); break;
    case EP_MESSAGES: handle_model_call(&r, AGW_OP_MESSAGES); break;
    case EP_COUNT_TOKENS: handle_count_tokens(&r); break;
    case EP_MODELS: handle_models(&r); break;
    case EP_HEALTH: handle_health(&r); break;
    case EP_EMBEDDINGS: handle_embeddings(&r); break;
    case EP_METRICS: handle_metrics(&r); break;
    case EP_NONE: break;
    }
out:
    if (r.conn.status >= 400)
        agw_log_debug("%s %.*s -> %d", r.method, clip(r.path, 100), r.path.ptr, r.conn.status);
    /* Admitted but never sent upstream (e.g. a request the converter
     * refused): the token reservation goes back, the request unit stays. */
    agw_limit_finish(&r.ticket, 0, agw_shm_now_ns());
    if (r.metered)
        meter_request(&r);
    if (r.usage_due) {
        /* Refused by the gateway itself (403, 429, bad input): recorded
         * without waiting for the commit (usage.h). */
        r.usage.status = r.conn.status;
        r.usage.latency_ms = (int64_t)((agw_mono_us() - r.start_us) / 1000);
        (void)agw_usage_submit(r.app->usage, &r.usage, 0);
    }
    agw_catalog_release(r.app->catalog, r.cat);
    agw_fcgi_conn_release(&r.conn);
    agw_buf_free(&r.cors);
}

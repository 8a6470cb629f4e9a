#include "endpoints.h"

#include "ac-config.h"

#include "core/crypto.h"
#include "failover.h"
#include "metrics/meter.h"
#include "proto/anthropic.h"
#include "provider/credential.h"
#include "route/lb.h"
#include "route/models.h"

#include <stdio.h>

/* ---- model calls ---- */

void agw_endpoint_model_call(agw_request *r, agw_provider_op op)
{
    agw_model_call mc;
    agw_model_call_init(&mc, op);
    r->usage_due = 1;
    if (agw_model_call_prepare(r, &mc) && agw_model_call_admit(r, &mc))
        agw_failover_run(r, &mc, mc.n_tries);
    agw_model_call_free(&mc);
}

/* The provider counts when it speaks Anthropic; otherwise a local estimate,
 * marked as such in a header and a field. */
void agw_endpoint_count_tokens(agw_request *r)
{
    agw_model_call mc;
    agw_model_call_init(&mc, AGW_OP_COUNT_TOKENS);
    r->usage_due = 1;
    if (!agw_model_call_prepare(r, &mc) || !agw_model_call_admit(r, &mc))
        goto out;
    const agw_provider_ops *ops = agw_provider_ops_of(mc.cands.r[0].provider->type);
    if (ops->path(AGW_OP_COUNT_TOKENS)) {
        agw_failover_run(r, &mc, 1);
        goto out;
    }
    agw_arena arena = AGW_ARENA_INIT;
    agw_ir_request ir;
    char why[512];
    why[0] = '\0';
    if (agw_anthropic_decode_request(mc.body, &arena, &ir, why, sizeof why) != AGW_OK) {
        agw_request_error(r, 400, "%s", why[0] ? why : "the request cannot be read");
    } else {
        char body[96];
        snprintf(body, sizeof body, "{\"input_tokens\":%lld,\"estimated\":true}",
                 (long long)agw_ir_estimate_tokens(&ir));
        agw_request_respond_json(r, 200, AGW_STR_LIT("X-AntiGateway-Token-Count: estimate\r\n"),
                                 agw_str_c(body));
    }
    agw_arena_free(&arena);
out:
    agw_model_call_free(&mc);
}

/* The bytes pass through both ways (a prefix stripped from the model is the
 * only change), so encoding_format float and base64 arrive untouched. */
void agw_endpoint_embeddings(agw_request *r)
{
    agw_model_call mc;
    agw_model_call_init(&mc, AGW_OP_EMBEDDINGS);
    r->usage_due = 1;
    if (agw_model_call_prepare(r, &mc) && agw_model_call_admit(r, &mc))
        agw_failover_run(r, &mc, 1);
    agw_model_call_free(&mc);
}

/* ---- GET /v1/models ---- */

/* The providers and models this client may see: enabled (models.c), and
 * allowed by its key. */
static int models_provider_ok(const agw_provider_cfg *p, void *ud)
{
    const agw_request *r = ud;
    return !r->key || agw_tenant_provider_allowed(r->key, p->name);
}

static int models_model_ok(agw_str id, void *ud)
{
    const agw_request *r = ud;
    return !r->key || agw_tenant_model_allowed(r->key, id);
}

/* The list, or the one model `id` when it is not empty; Anthropic's shape
 * when the client sent anthropic-version (dispatch set r->proto). */
static void models_answer(agw_request *r, agw_str id)
{
    int anthropic = r->proto == AGW_PROTO_ANTHROPIC;
    agw_models_filter f = { models_provider_ok, models_model_ok, r };
    sqlite3 *db = agw_store_db(r->worker->store);
    agw_buf b = AGW_BUF_INIT(AGW_LIMIT_UPSTREAM_BODY);
    agw_err e = id.len ? agw_models_render_one(r->cfg, db, &f, anthropic, r->app->started_at, id,
                                               &b)
                       : agw_models_render(r->cfg, db, &f, anthropic, r->app->started_at, &b);
    if (e == AGW_ENOTFOUND)
        agw_request_error_code(r, 404, "model_not_found", "The model '%.*s' does not exist",
                               agw_request_clip(id, 200), id.ptr);
    else if (e == AGW_EIO)
        agw_request_error(r, 503, "the model list cannot be read now");
    else if (e)
        agw_request_error(r, 500, "model list too large");
    else
        agw_request_respond_json(r, 200, (agw_str){ "", 0 }, agw_buf_view(&b));
    agw_buf_free(&b);
}

void agw_endpoint_models(agw_request *r)
{
    models_answer(r, (agw_str){ "", 0 });
}

void agw_endpoint_model(agw_request *r, agw_str id)
{
    models_answer(r, id);
}

/* ---- GET /metrics ---- */

/* With metrics.token set, only a scraper presenting it gets the numbers
 * (compared in constant time, as the client keys are). */
void agw_endpoint_metrics(agw_request *r)
{
    const char *token = r->cfg->metrics.token;
    if (token && !agw_secret_eq(agw_fcgi_bearer(&r->conn), agw_str_c(token))) {
        agw_request_error_code(r, 401, "invalid_metrics_token",
                               "/metrics needs Authorization: Bearer <metrics.token>");
        return;
    }
    agw_lb *lb = agw_request_lb(r);
    agw_meter_health(r->metrics, lb, r->cfg);
    (void)agw_lb_reap(lb); /* what dead processes held is not in flight */
    agw_buf b = AGW_BUF_INIT(AGW_LIMIT_UPSTREAM_BODY);
    agw_usage_stats us;
    agw_usage_log_stats(r->app->usage, &us);
    if (agw_metrics_render(r->metrics, r->cfg, agw_shm_rate_limit_hits(r->app->shm),
                           agw_lb_streams(lb), &b) != AGW_OK ||
        agw_metrics_render_usage(&us, &b) != AGW_OK)
        agw_request_error(r, 500, "metrics too large");
    else
        (void)agw_fcgi_respond(&r->conn, 200, AGW_METRICS_CONTENT_TYPE, agw_buf_view(&r->headers),
                               agw_buf_view(&b));
    agw_buf_free(&b);
}

/* ---- GET /health ---- */

/* One provider's entry: the load balancer's view (lb.h), shared by the pool. */
static agw_err health_entry(agw_buf *b, const agw_provider_cfg *p, agw_lb *lb, agw_lb_slot *s,
                            uint64_t now)
{
    agw_err e;
    if ((e = agw_buf_append_str(b, AGW_STR_LIT("{\"name\":\""))) ||
        (e = agw_buf_append_json_escaped(b, agw_str_c(p->name))))
        return e;
    uint64_t until = s ? atomic_load(&s->cooldown_until_ns) : 0;
    uint64_t cool_ms = until > now ? (until - now + 999999u) / 1000000u : 0;
    agw_lb_reason why = agw_lb_unhealthy_reason(s);
    /* An account that logs in says whether it can: "needs_login" keeps it
     * out of routing (credential.h). */
    const char *login = agw_cred_health(p);
    if (login && (e = agw_buf_appendf(b, "\",\"credential\":\"%s", login)))
        return e;
    return agw_buf_appendf(
        b,
        "\",\"type\":\"%s\",\"enabled\":%s,\"healthy\":%s,\"reason\":\"%s\","
        "\"cooldown_ms\":%llu,"
        "\"in_flight\":%llu,\"requests\":%llu,\"failures\":%llu,\"latency_ewma_ms\":%llu,"
        "\"usable\":%s}",
        agw_provider_type_name(p->type), p->enabled ? "true" : "false",
        why ? "false" : "true", agw_lb_reason_name(why), (unsigned long long)cool_ms,
        (unsigned long long)agw_lb_in_flight(lb, s),
        (unsigned long long)(s ? atomic_load(&s->requests) : 0),
        (unsigned long long)(s ? atomic_load(&s->failures) : 0),
        (unsigned long long)(s ? atomic_load(&s->latency_ewma_us) / 1000u : 0),
        p->enabled && agw_lb_usable(s, now) && agw_cred_routable(p) ? "true" : "false");
}

void agw_endpoint_health(agw_request *r)
{
    const agw_config *cfg = r->cfg;
    agw_buf b = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    agw_lb *lb = agw_request_lb(r);
    uint64_t now = agw_shm_now_ns();
    (void)agw_lb_reap(lb); /* what dead processes held is not in flight */
    size_t usable = 0, enabled = 0;
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const agw_provider_cfg *p = &cfg->providers[i];
        enabled += p->enabled != 0;
        usable += p->enabled && agw_lb_usable(agw_lb_slot_of(lb, agw_str_c(p->name)), now) &&
                  agw_cred_routable(p);
    }
    /* A full usage ring refuses model calls (usage.h): unavailable too. */
    agw_usage_stats us;
    agw_usage_log_stats(r->app->usage, &us);
    int ok = usable && us.accepting;
    agw_err e = agw_buf_appendf(&b, "{\"status\":\"%s\",\"version\":\"%s\",\"providers\":[",
                                ok ? "ok" : "unavailable", PACKAGE_VERSION);
    for (size_t i = 0; !e && i < cfg->n_providers; i++) {
        const agw_provider_cfg *p = &cfg->providers[i];
        if (!(i && (e = agw_buf_append(&b, ",", 1))))
            e = health_entry(&b, p, lb, agw_lb_slot_of(lb, agw_str_c(p->name)), now);
    }
    if (!e)
        e = agw_buf_appendf(&b,
                            "],\"usage\":{\"ring_records\":%llu,\"ring_capacity\":%llu,"
                            "\"accepting\":%s,\"rejected\":%llu,\"dropped\":%llu,"
                            "\"written\":%llu,\"drainer_errors\":%llu,\"drainer_pid\":%lld,"
                            "\"last_error\":",
                            (unsigned long long)us.records, (unsigned long long)us.capacity,
                            us.accepting ? "true" : "false", (unsigned long long)us.rejected,
                            (unsigned long long)us.dropped, (unsigned long long)us.written,
                            (unsigned long long)us.drainer_errors, (long long)us.drainer_pid);
    if (!e)
        e = us.last_error ? agw_buf_appendf(&b, "\"%s\"}", sqlite3_errstr(us.last_error))
                          : agw_buf_append_str(&b, AGW_STR_LIT("null}"));
    if (!e)
        e = !usable ? agw_buf_append_str(&b, enabled ? AGW_STR_LIT(",\"reason\":\"every provider "
                                                                   "is unhealthy or cooling down\"}")
                                                     : AGW_STR_LIT(",\"reason\":\"no provider is "
                                                                   "configured and enabled\"}"))
            : !ok ? agw_buf_append_str(&b, AGW_STR_LIT(",\"reason\":\"the usage ring is full: the "
                                                       "database is not taking usage rows\"}"))
                  : agw_buf_append(&b, "}", 1);
    /* Load balancers need only the verdict; provider names and traffic are
     * for whoever holds the admin key. */
    if (!e && !agw_request_is_admin(r)) {
        agw_buf_reset(&b);
        e = agw_buf_appendf(&b, "{\"status\":\"%s\"}", ok ? "ok" : "unavailable");
    }
    if (e)
        agw_request_error(r, 500, "health report too large");
    else
        agw_request_respond_json(r, ok ? 200 : 503, (agw_str){ "", 0 }, agw_buf_view(&b));
    agw_buf_free(&b);
}

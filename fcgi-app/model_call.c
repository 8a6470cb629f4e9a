#include "model_call.h"

#include "core/json.h"
#include "route/lb.h"

#include <stdio.h>

void agw_model_call_init(agw_model_call *mc, agw_provider_op op)
{
    memset(mc, 0, sizeof *mc);
    agw_buf_init(&mc->model_buf, 4096);
    mc->op = op;
}

void agw_model_call_free(agw_model_call *mc)
{
    agw_json_skips_end(mc->skips);
    mc->skips = NULL;
    agw_buf_free(&mc->model_buf);
}

static int key_allows(const agw_provider_cfg *p, const void *ud)
{
    return agw_tenant_provider_allowed(ud, p->name);
}

/* The candidates under the client key's restrictions, ordered by the load
 * balancer: 403 when the model would route somewhere the key may not go, 404
 * when it routes nowhere. */
static int route_model(agw_request *r, agw_model_call *mc)
{
    const agw_config *cfg = r->cfg;
    /* A Responses client, like a chat one, prefers OpenAI providers. */
    agw_provider_type prefer = r->proto == AGW_PROTO_ANTHROPIC ? AGW_PROVIDER_ANTHROPIC
                                                               : AGW_PROVIDER_OPENAI;
    agw_route_limits lim = { NULL, NULL, NULL };
    if (r->key) {
        lim.first_choice = r->key->default_provider;
        lim.allowed = key_allows;
        lim.ud = r->key;
    }
    if (agw_route_candidates(cfg, mc->model, prefer, r->key ? &lim : NULL, &mc->cands) ==
        AGW_OK) {
        mc->n_tries = agw_lb_order_candidates(agw_request_lb(r), agw_lb_strategy_of(cfg), r->proto,
                                              &mc->cands, (size_t)cfg->defaults.max_attempts,
                                              agw_shm_now_ns());
        return 1;
    }
    agw_route_set anywhere;
    if (r->key && agw_route_candidates(cfg, mc->model, prefer, NULL, &anywhere) == AGW_OK) {
        agw_request_error_code(r, 403, "provider_not_allowed",
                               "model '%.*s' is served by provider '%s', which this API key may "
                               "not use",
                               agw_request_clip(mc->model, 200), mc->model.ptr,
                               anywhere.r[0].provider->name);
        return 0;
    }
    agw_request_error_code(r, 404, "model_not_found",
                           "model '%.*s' is not served by any configured provider",
                           agw_request_clip(mc->model, 200), mc->model.ptr);
    return 0;
}

/* The body: present, valid JSON, an object, with a usable "model" and
 * "stream". Returns 0 when it has answered the client. */
static int read_body(agw_request *r, agw_model_call *mc)
{
    const agw_config *cfg = r->cfg;
    agw_err e = agw_fcgi_read_body(&r->conn, cfg->server.max_body_bytes);
    if (e == AGW_ETOOBIG) {
        agw_request_error_code(r, 413, "request_too_large",
                               "request body is larger than %lu bytes",
                               (unsigned long)cfg->server.max_body_bytes);
        return 0;
    }
    if (e == AGW_EBUSY) {
        agw_request_busy(r);
        return 0;
    }
    if (e) {
        agw_log_warn("reading the request body failed: %s", agw_strerror(e));
        return 0;
    }
    mc->body = agw_buf_view(&r->conn.body);
    char why[160];
    if (mc->body.len == 0) {
        agw_request_error(r, 400, "request body is empty: a JSON object is required");
        return 0;
    }
    if (agw_json_validate(mc->body, AGW_MODEL_CALL_MAX_DEPTH, why, sizeof why) != AGW_OK) {
        agw_request_error(r, 400, "request body is not valid JSON: %s", why);
        return 0;
    }
    mc->skips = agw_json_skips_begin(mc->body);
    /* A repeated member means whatever each reader wants: the gateway's
     * scanner takes the last, some upstream parsers the first. */
    agw_str dup;
    if (agw_json_duplicate_key(mc->body, &dup) != AGW_OK && dup.ptr) {
        agw_request_error(r, 400, "request body has the member %.*s more than once",
                          agw_request_clip(dup, 100), dup.ptr);
        return 0;
    }
    if (agw_json_type_of(mc->body) != AGW_JSON_OBJECT) {
        agw_request_error(r, 400, "request body must be a JSON object");
        return 0;
    }
    static const char *const names[] = { "model", "stream" };
    agw_str top[2];
    agw_json_collect(mc->body, names, 2, top, NULL);
    mc->model_raw = top[0];
    if (!mc->model_raw.ptr) {
        mc->model = (agw_str){ "", 0 }; /* the provider's default (route.h) */
    } else {
        if (agw_json_type_of(mc->model_raw) != AGW_JSON_STRING) {
            agw_request_error(r, 400, "'model' must be a string");
            return 0;
        }
        if (agw_json_string_decode(mc->model_raw, &mc->model_buf) != AGW_OK ||
            mc->model_buf.len > AGW_MODEL_CALL_MAX_MODEL ||
            memchr(agw_buf_view(&mc->model_buf).ptr, '\0', mc->model_buf.len) ||
            agw_str_has_ctl(agw_buf_view(&mc->model_buf), 1)) {
            agw_request_error(r, 400, "'model' must be a printable name of at most %d bytes",
                              AGW_MODEL_CALL_MAX_MODEL);
            return 0;
        }
        mc->model = agw_buf_view(&mc->model_buf);
    }
    agw_usage_record_names(&r->usage, AGW_STR_LIT(""), mc->model);
    if (top[1].ptr) {
        agw_json_type t = agw_json_type_of(top[1]);
        if (t != AGW_JSON_TRUE && t != AGW_JSON_FALSE && t != AGW_JSON_NULL) {
            agw_request_error(r, 400, "'stream' must be a boolean");
            return 0;
        }
        mc->stream = t == AGW_JSON_TRUE;
    }
    return 1;
}

/* The first candidate cannot take this call: says where the model routes
 * and `why` not. Returns 0 (answered). */
static int refuse_route(agw_request *r, const agw_model_call *mc, int status, const char *code,
                        const char *why)
{
    const agw_provider_cfg *p = mc->cands.r[0].provider;
    agw_request_error_code(r, status, code, "model '%.*s' routes to provider '%s' of type %s%s",
                           agw_request_clip(mc->model, 200), mc->model.ptr, p->name,
                           agw_provider_type_name(p->type), why);
    return 0;
}

int agw_model_call_prepare(agw_request *r, agw_model_call *mc)
{
    r->metered = 1;
    if (!agw_usage_accepting(r->app->usage)) {
        /* The database has not taken usage rows for a while and the ring is
         * full: a call now could not be recorded (usage.required). */
        agw_usage_count_rejected(r->app->usage);
        r->usage_due = 0; /* counted as refused, not as a dropped record */
        if (agw_buf_append_str(&r->headers, AGW_STR_LIT("Retry-After: 1\r\n")) != AGW_OK)
            agw_buf_reset(&r->headers);
        agw_request_error_code(r, 503, "server_busy",
                               "the gateway cannot record usage right now (its usage ring is "
                               "full while the database is not taking rows): retry shortly");
        return 0;
    }
    if (!read_body(r, mc) || !route_model(r, mc))
        return 0;
    const agw_route *first = &mc->cands.r[0];
    if (mc->model.len == 0)
        mc->model = first->model;
    agw_usage_record_names(&r->usage, agw_str_c(first->provider->name), first->model);
    if (r->key && !agw_tenant_model_allowed(r->key, mc->model) &&
        !agw_tenant_model_allowed(r->key, first->model)) {
        agw_request_error_code(r, 403, "model_not_allowed",
                               "this API key may not use model '%.*s'",
                               agw_request_clip(mc->model, 200), mc->model.ptr);
        return 0;
    }
    const agw_provider_ops *ops = agw_provider_ops_of(first->provider->type);
    if (mc->op == AGW_OP_EMBEDDINGS && !(ops && ops->path(AGW_OP_EMBEDDINGS)))
        return refuse_route(r, mc, 400, "embeddings_unsupported",
                            ": embeddings are only available from OpenAI-type providers");
    if (!ops)
        return refuse_route(r, mc, 501, "provider_type_unsupported",
                            ", which this gateway cannot call yet");
    return 1;
}

/* "x-ratelimit-limit-<what>: <limit>" and "x-ratelimit-remaining-<what>:
 * <remaining>" lines. Non-zero when the buffer refused them. */
static int ratelimit_pair(agw_buf *h, agw_str what, int64_t limit, int64_t remaining)
{
    return agw_buf_append_str(h, AGW_STR_LIT("x-ratelimit-limit-")) ||
           agw_buf_append_str(h, what) || agw_buf_append_str(h, AGW_STR_LIT(": ")) ||
           agw_buf_append_i64(h, limit) ||
           agw_buf_append_str(h, AGW_STR_LIT("\r\nx-ratelimit-remaining-")) ||
           agw_buf_append_str(h, what) || agw_buf_append_str(h, AGW_STR_LIT(": ")) ||
           agw_buf_append_i64(h, remaining) || agw_buf_append_str(h, AGW_STR_LIT("\r\n"));
}

/* The key's limits as response headers. */
static void ratelimit_headers(agw_request *r)
{
    const agw_limit_ticket *t = &r->ticket;
    int failed = 0;
    if (t->policy.qpm > 0)
        failed = ratelimit_pair(&r->headers, AGW_STR_LIT("requests"), t->policy.qpm,
                                t->remaining_requests);
    if (!failed && t->policy.tpm > 0)
        failed = ratelimit_pair(&r->headers, AGW_STR_LIT("tokens"), t->policy.tpm,
                                t->remaining_tokens);
    if (failed)
        agw_buf_reset(&r->headers);
}

int agw_model_call_admit(agw_request *r, const agw_model_call *mc)
{
    if (!r->key || (r->key->limits.qpm <= 0 && r->key->limits.tpm <= 0))
        return 1;
    /* Counting tokens costs no tokens: count_tokens takes a request unit only. */
    int64_t estimate = mc->op == AGW_OP_COUNT_TOKENS ? 0 : agw_limit_estimate(mc->body);
    if (agw_limit_admit(r->app->shm, (uint64_t)r->key->id, &r->key->limits, estimate,
                        agw_shm_now_ns(), &r->ticket) != AGW_OK) {
        agw_log_error("limiter table full: key %lld refused", (long long)r->key->id);
        agw_request_error_code(r, 503, "limiter_full",
                               "the gateway cannot track this key's limits right now: try again");
        return 0;
    }
    ratelimit_headers(r);
    if (r->ticket.verdict == AGW_LIMIT_ADMITTED)
        return 1;
    int by_qpm = r->ticket.verdict == AGW_LIMIT_BY_QPM;
    uint64_t secs = (r->ticket.retry_after_ms + 999) / 1000;
    if (!secs)
        secs = 1;
    char retry[48] = "";
    char msg[256];
    if (r->ticket.too_large) {
        /* No wait lets it pass, so no Retry-After invites a client to try. */
        snprintf(msg, sizeof msg,
                 "request too large for this API key's limit of %lld tokens per minute: it "
                 "reserves %lld (a quarter of its bytes plus max_tokens); lower max_tokens",
                 (long long)r->key->limits.tpm, (long long)estimate);
    } else {
        snprintf(retry, sizeof retry, "Retry-After: %llu\r\n", (unsigned long long)secs);
        snprintf(msg, sizeof msg,
                 "rate limit reached for this API key: %lld %s per minute; retry after %llu s",
                 (long long)(by_qpm ? r->key->limits.qpm : r->key->limits.tpm),
                 by_qpm ? "requests" : "tokens", (unsigned long long)secs);
    }
    agw_buf body = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    if (agw_apierr_body(&body, r->proto, 429, agw_str_c(msg),
                        r->ticket.too_large ? "request_too_large" : "rate_limit_exceeded") ==
        AGW_OK)
        agw_request_respond_json(r, 429, agw_str_c(retry), agw_buf_view(&body));
    agw_buf_free(&body);
    return 0;
}

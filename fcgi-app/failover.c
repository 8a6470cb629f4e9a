#include "failover.h"

#include "core/json.h"
#include "metrics/meter.h"
#include "net/relay.h"
#include "proto/anthropic.h"
#include "proto/bridge.h"
#include "proto/kiro.h"
#include "provider/answer_rules.h"
#include "proto/openai.h"
#include "proto/responses.h"
#include "provider/credential.h"
#include "route/lb.h"

#include <stdio.h>

/* One attempt: the candidate it goes to, how the call goes there, and
 * whether another may follow. */
typedef struct {
    const agw_route *route;
    const agw_provider_ops *ops;
    agw_provider_plan plan; /* the protocol and operation upstream */
    int may_retry;
    /* The provider's credential may still be renewed once: a 401 is then
     * reported (not answered, not held against the provider), and
     * renew_version says which token it refused. */
    int may_renew;
    uint64_t renew_version;
} agw_failover_attempt;

/* The operations of model calls (the others, count_tokens and embeddings,
 * answer one body and keep the type's protocol). */
static int is_model_op(agw_provider_op op)
{
    return op == AGW_OP_CHAT || op == AGW_OP_MESSAGES || op == AGW_OP_RESPONSES;
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

static void tap_event(void *ud, agw_str name, agw_str data)
{
    agw_usage_tap_event(ud, name, data);
}

static void tap_body(void *ud, agw_str body)
{
    agw_usage_tap_body(ud, body);
}

/* ---- after an attempt ---- */

/* The load balancer's verdict on one attempt (lb.h). */
static agw_lb_result lb_verdict(const agw_relay_result *res)
{
    /* Refused credentials are the provider's state, whoever is still listening. */
    if (res->upstream_status == 401 || res->upstream_status == 403)
        return AGW_LB_FAIL_AUTH;
    if (res->client_gone)
        return AGW_LB_OK;
    /* 402: the account's quota is spent; it cools down like a rate limit. */
    if (res->upstream_status == 429 || res->upstream_status == 402)
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

/* The answered attempt: the usage record and the TPM settlement. The record
 * is in the usage ring before the response ends (usage.h "Durability"). */
static void account(agw_request *r, const agw_model_call *mc, const agw_relay_result *res,
                    const agw_usage_tap *tap, const agw_bridge *bridge)
{
    agw_usage_record *u = &r->usage;
    agw_ir_usage got = tap->usage;
    if (bridge) {
        agw_ir_usage b = agw_bridge_usage(bridge);
        agw_ir_usage_merge(&got, &b);
    }
    agw_usage_record_answer(u, tap, got, res->status, res->streamed, mc->body.len, r->start_us,
                            mc->op != AGW_OP_COUNT_TOKENS);
    if (bridge && agw_bridge_usage_estimated(bridge))
        u->tokens_estimated = 1; /* the codec's estimate (Kiro reports no counts) */
    if (bridge)
        u->credits = agw_bridge_credits(bridge);
    /* A stream that went out as 200 and then broke (a reset, no final event,
     * garbage) ended with the protocol's error event: it is recorded, and
     * counted in the metrics, as the 502 that event reports; the tokens it
     * carried until then still count. */
    if (res->streamed && !res->complete && !res->client_gone && u->status >= 200 &&
        u->status <= 299)
        u->status = 502;
    agw_limit_finish(&r->ticket, agw_usage_record_tokens(u), agw_shm_now_ns());
    u->latency_ms = (int64_t)((agw_mono_us() - r->start_us) / 1000);
    r->usage_due = 0;
    if (agw_usage_append(r->app->usage, u, 1) != AGW_OK)
        agw_log_error("usage record of %s %.*s could not be stored", r->method,
                      agw_request_clip(r->path, 100), r->path.ptr);
}

/* A passthrough's reshape bridge (client protocol to itself), made only when
 * the answer comes in the form the client did not ask for (relay.h): most
 * answers do not, and need no bridge. `made` is freed by the caller. */
typedef struct {
    agw_proto proto;
    int stream, include_usage;
    agw_str client_model;
    agw_bridge *made;
} agw_failover_reshape;

static const agw_codec *make_reshape(void *ud)
{
    agw_failover_reshape *rs = ud;
    if (!rs->made)
        rs->made = agw_bridge_new(rs->proto, rs->proto, rs->stream, rs->include_usage,
                                  rs->client_model, agw_wall_s());
    return agw_bridge_codec(rs->made);
}

/* How an attempt's answer reaches the client: `bridge` converts it (NULL for
 * a passthrough); a passthrough's `reshape` (may be NULL) turns an answer in
 * the form the client did not ask for into the one it did;
 * `drop_usage_chunk` (passthrough) keeps back the usage chunk the gateway
 * asked for on the client's behalf. */
typedef struct {
    agw_bridge *bridge;
    agw_failover_reshape *reshape;
    int drop_usage_chunk;
} agw_failover_answer;

/* One upstream call through the relay, with the load balancer's and the
 * metrics' bookkeeping of the call. `continued`: a continuation round of an
 * answer already under way (relay.h); `may_retry`: failures that left the
 * client untouched are reported, not answered. Returns 1 when the upstream
 * refused a token that can be renewed (at->renew_version says which): not
 * the provider's failure yet, and nothing was answered. */
static int run_relay(agw_request *r, agw_failover_attempt *at, const agw_provider_call *call,
                     agw_str send, int stream, const agw_failover_answer *how, agw_usage_tap *tap,
                     int continued, int may_retry, agw_relay_result *res)
{
    const agw_config *cfg = r->cfg;
    const agw_route *route = at->route;
    agw_str provider = agw_str_c(route->provider->name);
    agw_bridge *bridge = how->bridge;
    const agw_codec *codec = bridge ? agw_bridge_codec(bridge) : NULL;
    agw_relay_lazy_codec lazy_reshape = { make_reshape, how->reshape };
    agw_usage_tap_init(tap, at->plan.proto);
    agw_relay_tap watch = { tap, tap_event, tap_body };
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
        .response_headers = agw_buf_view(&r->headers),
        .may_retry = may_retry,
        .may_retry_auth = at->may_renew && call->credential_version != 0,
        .reshape = how->reshape ? &lazy_reshape : NULL,
        .drop_usage_chunk = how->drop_usage_chunk,
        .max_stream_bytes = cfg->server.max_stream_bytes,
        .max_stream_ms = (long)cfg->server.max_stream_s * 1000,
        .budget = agw_budget_process(),
        .continued = continued,
    };
    agw_relay_sink sink = { &r->conn, sink_head, sink_write, sink_flush, sink_gone };
    agw_lb *lb = agw_request_lb(r);
    agw_lb_slot *slot = agw_lb_slot_of(lb, provider);
    agw_lb_begin(lb, slot);
    uint64_t t0 = agw_mono_us();
    if (stream)
        agw_lb_stream_begin(lb);
    agw_relay_run(r->worker->upstream, &rq, &sink, res);
    r->upstream_us += agw_mono_us() - t0;
    if (stream)
        agw_lb_stream_end(lb);
    agw_meter_attempt(r->metrics, provider, res);
    /* A refused token that can be renewed is not the provider's failure yet. */
    int renew = res->retryable && res->token_refused && at->may_renew &&
                call->credential_version != 0;
    if (renew)
        at->renew_version = call->credential_version;
    agw_lb_end(lb, slot, renew ? AGW_LB_OK : lb_verdict(res),
               res->upstream_status >= 200 && res->upstream_status <= 299 ? res->first_byte_us : 0,
               cooldown_ms(cfg, res), cfg->defaults.health_check_enabled, agw_shm_now_ns());
    if (renew)
        agw_log_info("%s %.*s provider=%s: the upstream refused its token (%d): renewing it",
                     r->method, agw_request_clip(r->path, 100), r->path.ptr,
                     at->route->provider->name, res->upstream_status);
    return renew;
}

static void continue_answer(agw_request *r, const agw_model_call *mc,
                            const agw_failover_attempt *at, const agw_failover_answer *how,
                            int stream, agw_relay_result *res);

/* The access line of one model call. Put together with appends rather than
 * one printf: it is written for every call, and printf's cost was a tenth
 * of the gateway's own work on a small call. */
static void log_answer(const agw_request *r, const agw_route *route, int converted,
                       const agw_relay_result *res)
{
    agw_buf b = AGW_BUF_INIT(4096);
    agw_str path = { r->path.ptr, (size_t)agw_request_clip(r->path, 100) };
    agw_str model = { route->model.ptr, (size_t)agw_request_clip(route->model, 100) };
    int failed =
        agw_buf_append_str(&b, agw_str_c(r->method)) || agw_buf_append(&b, " ", 1) ||
        agw_buf_append_str(&b, path) || agw_buf_append_str(&b, AGW_STR_LIT(" provider=")) ||
        agw_buf_append_str(&b, agw_str_c(route->provider->name)) ||
        agw_buf_append_str(&b, AGW_STR_LIT(" model=")) || agw_buf_append_str(&b, model) ||
        (converted && agw_buf_append_str(&b, AGW_STR_LIT(" converted=1"))) ||
        agw_buf_append_str(&b, AGW_STR_LIT(" status=")) || agw_buf_append_i64(&b, res->status) ||
        agw_buf_append_str(&b, AGW_STR_LIT(" stream=")) ||
        agw_buf_append_i64(&b, res->streamed) ||
        agw_buf_append_str(&b, AGW_STR_LIT(" events=")) ||
        agw_buf_append_i64(&b, (int64_t)res->events) ||
        agw_buf_append_str(&b, AGW_STR_LIT(" bytes=")) ||
        agw_buf_append_i64(&b, (int64_t)res->bytes_out) ||
        agw_buf_append_str(&b, AGW_STR_LIT(" ttfb_ms=")) ||
        agw_buf_append_i64(&b, (int64_t)(res->first_byte_us / 1000)) ||
        agw_buf_append_str(&b, AGW_STR_LIT(" ms=")) ||
        agw_buf_append_i64(&b, (int64_t)((agw_mono_us() - r->start_us) / 1000)) ||
        (res->client_gone && agw_buf_append_str(&b, AGW_STR_LIT(" client_gone=1"))) ||
        (res->detail[0] && (agw_buf_append_str(&b, AGW_STR_LIT(" detail=")) ||
                            agw_buf_append_str(&b, agw_str_c(res->detail))));
    if (!failed)
        agw_log_info("%.*s", (int)b.len, b.data);
    agw_buf_free(&b);
}

/* Sends the prepared upstream call through the relay (and the continuation
 * rounds its answer takes), accounts for it and logs the outcome. Returns 1
 * when the attempt failed without touching the client and the next
 * candidate should take the call. */
static int relay_attempt(agw_request *r, const agw_model_call *mc, agw_failover_attempt *at,
                         const agw_provider_call *call, agw_str send, int stream,
                         const agw_failover_answer *how)
{
    const agw_config *cfg = r->cfg;
    const agw_route *route = at->route;
    agw_bridge *bridge = how->bridge;
    const agw_codec *codec = bridge ? agw_bridge_codec(bridge) : NULL;
    agw_usage_tap tap;
    agw_relay_result res;
    if (run_relay(r, at, call, send, stream, how, &tap, 0, at->may_retry, &res))
        return 1;
    if (res.retryable) {
        agw_log_warn("%s %.*s provider=%s model=%.*s failed before the first byte (status=%d%s%s): "
                     "trying the next provider",
                     r->method, agw_request_clip(r->path, 100), r->path.ptr, route->provider->name,
                     agw_request_clip(route->model, 100), route->model.ptr, res.status,
                     res.detail[0] ? " " : "", res.detail);
        agw_metrics_failover(r->metrics, route->provider->name);
        return 1;
    }
    if (res.held && bridge)
        continue_answer(r, mc, at, how, stream, &res);
    /* What a codec converted the tap did not see (relay.h): the codec's
     * bridge saw the first output and counted it. */
    agw_bridge *read_by = bridge ? bridge : how->reshape ? how->reshape->made : NULL;
    if (read_by && !tap.first_output_us)
        tap.first_output_us = agw_bridge_first_output_us(read_by);
    if (read_by && !tap.output_bytes)
        tap.output_bytes = agw_bridge_output_bytes(read_by);
    if (bridge)
        r->usage.continuations = agw_bridge_rounds(bridge) - 1;
    account(r, mc, &res, &tap, read_by);
    agw_meter_answer(r->metrics, cfg, &r->usage,
                     tap.first_output_us > r->start_us ? tap.first_output_us - r->start_us : 0);
    if (agw_log_get_level() >= AGW_LOG_INFO)
        log_answer(r, route, codec != NULL, &res);
    return 0;
}

/* The provider has no usable credential now (a token that cannot be had or
 * renewed): the next candidate takes the call, or the client hears why.
 * Returns 1 to fail over. */
static int no_credential(agw_request *r, const agw_failover_attempt *at)
{
    const char *name = at->route->provider->name;
    agw_log_warn("%s %.*s provider=%s has no usable credential%s", r->method,
                 agw_request_clip(r->path, 100), r->path.ptr, name,
                 at->may_retry ? ": trying the next provider" : "");
    if (at->may_retry) {
        agw_metrics_failover(r->metrics, name);
        return 1;
    }
    agw_request_error_code(r, 503, "provider_credential_unavailable",
                           "provider '%s' has no usable credential right now (see its status in "
                           "the admin API)",
                           name);
    return 0;
}

/* The provider's URL and headers for this attempt. Returns 0 when the
 * attempt ends here: answered, or (*retry) left to the next provider. */
static int prepare_call(agw_request *r, const agw_failover_attempt *at, agw_provider_op op,
                        const agw_client_hints *hints, agw_provider_call *call, int *retry)
{
    agw_err pe = agw_provider_prepare(at->route->provider, op, hints, call);
    if (pe == AGW_EIO) {
        *retry = no_credential(r, at);
        return 0;
    }
    if (pe) {
        agw_request_error(r, 400, "invalid anthropic-version or anthropic-beta header");
        return 0;
    }
    return 1;
}

/* ---- what happens to the answer ---- */

/* 1 when answers of this attempt's provider are continued for this
 * client: the key's override, else the provider's setting. */
static int continues_answers(const agw_request *r, const agw_failover_attempt *at)
{
    if (r->cfg->continuation.max_rounds <= 0)
        return 0;
    if (r->key && r->key->continuation >= 0)
        return r->key->continuation;
    return agw_answer_continues(at->route->provider);
}

static void start_continuation(agw_bridge *b)
{
    agw_bridge_continuation(b);
    agw_bridge_round(b, 1);
}

/* ---- same protocol: the client's bytes ---- */

/* body with the span `cut` (a view into it) replaced by `with`. */
static agw_err splice(agw_str body, agw_str cut, agw_str with, agw_buf *out)
{
    size_t head = (size_t)(cut.ptr - body.ptr);
    agw_err e;
    if ((e = agw_buf_reserve(out, body.len - cut.len + with.len)) ||
        (e = agw_buf_append(out, body.ptr, head)) || (e = agw_buf_append_str(out, with)))
        return e;
    return agw_buf_append(out, cut.ptr + cut.len, body.len - head - cut.len);
}

/* body with `member` ("key":value) added as the first member of the object
 * that starts at or after obj.ptr (a view into body: the top level when it
 * is body's start), followed by a comma unless that object is empty. */
static agw_err insert_first_member(agw_str body, agw_str obj, agw_str member, agw_buf *out)
{
    const char *end = body.ptr + body.len;
    const char *brace = memchr(obj.ptr, '{', (size_t)(end - obj.ptr));
    const char *p = agw_json_skip_ws(brace + 1, end);
    int empty = p < end && *p == '}';
    agw_str at = { brace + 1, 0 };
    agw_buf with = AGW_BUF_INIT(member.len + 2);
    agw_err e;
    if ((e = agw_buf_append_str(&with, member)) || (!empty && (e = agw_buf_append(&with, ",", 1))))
        return e;
    e = splice(body, at, agw_buf_view(&with), out);
    agw_buf_free(&with);
    return e;
}

/* The body to send upstream: the client's bytes with only the model value
 * replaced (or added), so nothing else is re-serialised: values the gateway
 * does not understand (big integers, \u0000) reach the provider as sent. */
static agw_err rewrite_model(agw_str body, agw_str old_value, agw_str model, agw_buf *out)
{
    /* The member, `"model":` only when there is none to replace. */
    agw_buf member = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    agw_err e;
    if ((!old_value.ptr && (e = agw_buf_append_str(&member, AGW_STR_LIT("\"model\":")))) ||
        (e = agw_buf_append(&member, "\"", 1)) ||
        (e = agw_buf_append_json_escaped(&member, model)) ||
        (e = agw_buf_append(&member, "\"", 1)))
        return e;
    e = old_value.ptr ? splice(body, old_value, agw_buf_view(&member), out)
                      : insert_first_member(body, (agw_str){ body.ptr, 0 },
                                            agw_buf_view(&member), out);
    agw_buf_free(&member);
    return e;
}

/* 1 when an OpenAI body asks for the usage chunk itself
 * (stream_options.include_usage true). */
static int wants_usage_chunk(agw_str body)
{
    static const char *const path[] = { "stream_options", "include_usage", NULL };
    agw_str v;
    return agw_json_find_path(body, path, &v) == AGW_OK && agw_json_is_true(v);
}

/* The client's OpenAI body with stream_options.include_usage set to true and
 * nothing else changed: the member added, or its false/null value replaced;
 * stream_options added or filled in. AGW_EINVAL when stream_options is
 * neither an object nor null (the body goes as it is: the provider answers). */
static agw_err add_include_usage(agw_str body, agw_buf *out)
{
    agw_str so, iu;
    agw_err e = agw_json_find(body, AGW_STR_LIT("stream_options"), &so);
    if (e == AGW_ENOTFOUND)
        return insert_first_member(body, (agw_str){ body.ptr, 0 },
                                   AGW_STR_LIT("\"stream_options\":{\"include_usage\":true}"),
                                   out);
    if (e)
        return e;
    if (agw_json_is_null(so))
        return splice(body, so, AGW_STR_LIT("{\"include_usage\":true}"), out);
    if (agw_json_type_of(so) != AGW_JSON_OBJECT)
        return AGW_EINVAL;
    if (agw_json_find(so, AGW_STR_LIT("include_usage"), &iu) == AGW_OK)
        return splice(body, iu, AGW_STR_LIT("true"), out);
    return insert_first_member(body, so, AGW_STR_LIT("\"include_usage\":true"), out);
}

/* The client's bytes go upstream untouched unless the model value changes
 * (a prefix stripped, a default filled in, or escapes in the name). */
static int passthrough(agw_request *r, const agw_model_call *mc, agw_failover_attempt *at)
{
    int retry = 0;
    agw_buf upstream_body = AGW_BUF_INIT(r->cfg->server.max_body_bytes + 1024);
    agw_buf usage_body = AGW_BUF_INIT(r->cfg->server.max_body_bytes + 1024);
    agw_buf repaired_body = AGW_BUF_INIT(r->cfg->server.max_body_bytes + 1024);
    upstream_body.budget = usage_body.budget = repaired_body.budget = agw_budget_process();
    agw_provider_call call;
    memset(&call, 0, sizeof call);
    agw_str send = mc->body;
    agw_str m = mc->model, rm = at->route->model;
    int untouched = mc->model_raw.ptr && rm.ptr == m.ptr && rm.len == m.len &&
                    mc->model_raw.len == m.len + 2 &&
                    memcmp(mc->model_raw.ptr + 1, m.ptr, m.len) == 0;
    if (!untouched) {
        agw_err e = rewrite_model(mc->body, mc->model_raw, rm, &upstream_body);
        if (e == AGW_EBUSY) {
            agw_request_busy(r);
            goto out;
        }
        if (e) {
            agw_request_error(r, 413, "request body too large after rewriting the model");
            goto out;
        }
        send = agw_buf_view(&upstream_body);
    }
    char why[512];
    if (r->proto == AGW_PROTO_RESPONSES &&
        agw_responses_check_stateless(mc->body, why, sizeof why) != AGW_OK) {
        agw_request_error(r, 400, "%s", why);
        goto out;
    }
    agw_client_hints hints = {
        .anthropic_version = agw_fcgi_param(&r->conn, "HTTP_ANTHROPIC_VERSION"),
        .anthropic_beta = agw_fcgi_param(&r->conn, "HTTP_ANTHROPIC_BETA"),
        .body = send,
        .body_proto = r->proto,
    };
    if (!prepare_call(r, at, mc->op, &hints, &call, &retry))
        goto out;
    /* Only model calls stream; count_tokens and embeddings answer one body. */
    int model_call = mc->op == at->plan.op && is_model_op(mc->op);
    int stream = model_call ? mc->stream : 0;
    if (model_call && at->ops->repair_body) {
        agw_err re = at->ops->repair_body(mc->op, send, &repaired_body);
        if (re == AGW_OK) {
            send = agw_buf_view(&repaired_body);
        } else if (re == AGW_EBUSY) {
            agw_request_busy(r);
            goto out;
        } else if (re != AGW_ENOTFOUND) {
            agw_request_error(r, 413, "request body too large after repairing its tool calls");
            goto out;
        }
    }
    agw_failover_answer how = { NULL, NULL, 0 };
    agw_failover_reshape reshape = { r->proto, 0, 0, mc->model, NULL };
    /* stream_options applies to streams only. */
    int client_usage = stream && r->proto == AGW_PROTO_OPENAI && wants_usage_chunk(send);
    /* The gateway's token count needs the usage chunk: asked for here, kept
     * from the client by the relay. */
    if (stream && r->proto == AGW_PROTO_OPENAI && !client_usage &&
        add_include_usage(send, &usage_body) == AGW_OK) {
        send = agw_buf_view(&usage_body);
        how.drop_usage_chunk = 1;
    }
    /* A provider whose answers are rewritten or continued gets the client's
     * bytes too, but its answer goes through a bridge to the same protocol,
     * with those stages in it. */
    agw_sanitize_rules *rules = model_call ? agw_answer_sanitize_rules(at->route->provider) : NULL;
    int continues = model_call && continues_answers(r, at);
    if (rules || continues) {
        how.bridge = agw_bridge_new(r->proto, r->proto, stream, client_usage, mc->model,
                                    agw_wall_s());
        agw_bridge_sanitize(how.bridge, rules);
        if (continues)
            start_continuation(how.bridge);
        how.drop_usage_chunk = 0;
    } else if (model_call) {
        reshape.stream = stream;
        reshape.include_usage = client_usage;
        how.reshape = &reshape;
    }
    retry = relay_attempt(r, mc, at, &call, send, stream, &how);
    agw_bridge_free(how.bridge);
    agw_bridge_free(reshape.made);
    agw_sanitize_rules_free(rules);
out:
    agw_provider_call_free(&call);
    agw_buf_free(&upstream_body);
    agw_buf_free(&usage_body);
    agw_buf_free(&repaired_body);
    return retry;
}

/* ---- different protocols: through the IR ---- */

/* The client's request decoded into the IR (AGW_EINVAL with `why`). */
static agw_err decode_client(const agw_request *r, const agw_model_call *mc, agw_arena *arena,
                             agw_ir_request *ir, char *why, size_t whylen)
{
    switch (r->proto) {
    case AGW_PROTO_OPENAI:
        return agw_openai_decode_request(mc->body, arena, ir, why, whylen);
    case AGW_PROTO_RESPONSES:
        return agw_responses_decode_request(mc->body, arena, ir, why, whylen);
    default:
        return agw_anthropic_decode_request(mc->body, arena, ir, why, whylen);
    }
}

/* The IR request in the provider's protocol; Kiro's carries the account's
 * profile ARN, from its prepared `call`. */
static agw_err encode_for(agw_proto upstream, const agw_provider_call *call,
                          const agw_ir_request *ir, agw_buf *out, char *why, size_t whylen)
{
    switch (upstream) {
    case AGW_PROTO_OPENAI:
        return agw_openai_encode_request(ir, out, why, whylen);
    case AGW_PROTO_RESPONSES:
        return agw_responses_encode_request(ir, out, why, whylen);
    case AGW_PROTO_KIRO: {
        agw_kiro_request_opts ko = { agw_str_c(call->profile_arn ? call->profile_arn : ""),
                                     { NULL, 0 } };
        return agw_kiro_encode_request(ir, &ko, out, why, whylen);
    }
    default:
        return agw_anthropic_encode_request(ir, out, why, whylen);
    }
}

/* Kiro's body carries the account's profile ARN, which comes with its
 * credential: its call is prepared before the body is encoded; the others'
 * after, so that a request that cannot be expressed fails before a token is
 * fetched. */
static int body_first(agw_proto upstream)
{
    return upstream != AGW_PROTO_KIRO;
}

/* Decodes the client's request into the IR, encodes it for the provider, and
 * lets a bridge convert the answer back. */
static int convert(agw_request *r, const agw_model_call *mc, agw_failover_attempt *at)
{
    int retry = 0;
    agw_arena arena = AGW_ARENA_INIT;
    agw_ir_request ir;
    agw_buf upstream_body = AGW_BUF_INIT(r->cfg->server.max_body_bytes * 2 + 65536);
    upstream_body.budget = agw_budget_process();
    agw_provider_call call;
    agw_bridge *bridge = NULL;
    agw_sanitize_rules *rules = NULL;
    memset(&call, 0, sizeof call);
    char why[512];
    why[0] = '\0';
    agw_err e = decode_client(r, mc, &arena, &ir, why, sizeof why);
    if (e) {
        agw_request_error(r, 400, "%s", why[0] ? why : "the request cannot be converted");
        goto out;
    }
    ir.model = at->route->model;
    agw_proto upstream = at->plan.proto;
    /* Who spoke last is read from the client's own body: a converted one can
     * split an Anthropic turn of tool results and text into a tool message
     * and a user message, which would read as the user's. */
    /* Headers that depend on what the client sent (Copilot's X-Initiator)
     * read the client's own body. */
    agw_client_hints hints = { NULL, NULL, mc->body, r->proto, 0 };
    if (r->proto == AGW_PROTO_ANTHROPIC)
        hints.anthropic_beta = agw_fcgi_param(&r->conn, "HTTP_ANTHROPIC_BETA");
    if (!body_first(upstream) && !prepare_call(r, at, at->plan.op, &hints, &call, &retry))
        goto out;
    why[0] = '\0';
    e = encode_for(upstream, &call, &ir, &upstream_body, why, sizeof why);
    if (e == AGW_EBUSY) {
        agw_request_busy(r);
        goto out;
    }
    if (e) {
        agw_request_error(r, e == AGW_ETOOBIG ? 413 : 400, "%s for provider '%s'",
                          why[0] ? why : "the request cannot be expressed",
                          at->route->provider->name);
        goto out;
    }
    if (body_first(upstream) && !prepare_call(r, at, at->plan.op, &hints, &call, &retry))
        goto out;
    bridge = agw_bridge_new(r->proto, upstream, ir.stream, ir.stream_usage, mc->model,
                            agw_wall_s());
    agw_bridge_set_request(bridge, &ir);
    rules = agw_answer_sanitize_rules(at->route->provider);
    agw_bridge_sanitize(bridge, rules);
    if (continues_answers(r, at))
        start_continuation(bridge);
    agw_failover_answer how = { bridge, NULL, 0 };
    retry = relay_attempt(r, mc, at, &call, agw_buf_view(&upstream_body), ir.stream, &how);
out:
    agw_bridge_free(bridge);
    agw_sanitize_rules_free(rules);
    agw_provider_call_free(&call);
    agw_buf_free(&upstream_body);
    agw_arena_free(&arena);
    return retry;
}

/* ---- continuation: more rounds of one answer ---- */

/* What a provider without assistant prefill is asked after the text so far. */
#define CONTINUE_INSTRUCTION \
    "Your previous message was cut off by the output limit. Continue it exactly where it " \
    "stopped, from its last character: do not repeat any of it, do not start over, and do " \
    "not add any preamble or commentary."

/* `rq` with the answer so far appended as the assistant's turn (added to
 * the client's own last assistant turn if it ends with one): the whole of
 * it, or for a prefill provider all but trailing whitespace (the model
 * refuses it there; *trimmed is what was left off). A provider without
 * prefill also gets the instruction to go on, as the user's turn. */
static void append_answer(agw_arena *a, agw_ir_request *rq, agw_str text, int prefill,
                          agw_str *trimmed)
{
    size_t keep = text.len;
    *trimmed = (agw_str){ text.ptr + text.len, 0 };
    if (prefill) {
        while (keep && strchr(" \t\r\n", text.ptr[keep - 1]))
            keep--;
        *trimmed = (agw_str){ text.ptr + keep, text.len - keep };
    }
    size_t n = rq->n_messages;
    int join = n && rq->messages[n - 1].role == AGW_IR_ASSISTANT;
    agw_ir_message *msgs = agw_arena_array(a, n + 2, sizeof *msgs);
    memcpy(msgs, rq->messages, n * sizeof *msgs);
    agw_ir_message *last = &msgs[join ? n - 1 : n];
    agw_ir_block *blocks = agw_arena_array(a, (join ? last->n_blocks : 0) + 1, sizeof *blocks);
    if (join)
        memcpy(blocks, last->blocks, last->n_blocks * sizeof *blocks);
    size_t nb = join ? last->n_blocks : 0;
    memset(&blocks[nb], 0, sizeof blocks[nb]);
    blocks[nb].kind = AGW_IR_TEXT;
    blocks[nb].text = (agw_str){ text.ptr, keep };
    *last = (agw_ir_message){ AGW_IR_ASSISTANT, blocks, nb + 1 };
    n = join ? n : n + 1;
    if (!prefill) {
        agw_ir_block *ask = agw_arena_array(a, 1, sizeof *ask);
        memset(ask, 0, sizeof *ask);
        ask->kind = AGW_IR_TEXT;
        ask->text = AGW_STR_LIT(CONTINUE_INSTRUCTION);
        msgs[n++] = (agw_ir_message){ AGW_IR_USER, ask, 1 };
    }
    rq->messages = msgs;
    rq->n_messages = n;
}

/* Whether the answer so far may take another round, and with how many
 * output tokens (-1: the client set no cap, the provider's default). */
static int round_allowed(const agw_config *cfg, const agw_bridge *b, int64_t client_max,
                         int64_t *max_tokens)
{
    agw_str text = agw_bridge_text(b);
    agw_ir_usage u = agw_bridge_usage(b);
    int64_t used = u.output >= 0 ? u.output : (int64_t)(text.len / 4);
    *max_tokens = client_max > 0 ? client_max - used : -1;
    return agw_bridge_rounds(b) <= cfg->continuation.max_rounds &&
           text.len < (size_t)cfg->continuation.max_output_chars &&
           (client_max <= 0 || *max_tokens > 0);
}

/* Ends a held answer as it stands (stop max_tokens): no further round. */
static void release_answer(agw_request *r, agw_bridge *bridge, int stream, agw_relay_result *res)
{
    agw_buf out = AGW_BUF_INIT(AGW_LIMIT_UPSTREAM_BODY);
    out.budget = agw_budget_process();
    int status = 200;
    agw_err e = agw_bridge_release(bridge, &out, &status);
    if (stream) {
        if (!e && out.len)
            e = agw_fcgi_write(&r->conn, out.data, out.len);
        (void)agw_fcgi_flush(&r->conn);
    } else if (!e) {
        if (!(e = agw_fcgi_head(&r->conn, status, "application/json", agw_buf_view(&r->headers))))
            e = agw_fcgi_write(&r->conn, out.data, out.len);
        res->status = status;
    } else {
        agw_request_error(r, e == AGW_EBUSY ? 503 : 502, "%s",
                          e == AGW_EBUSY ? AGW_BUDGET_BUSY_MESSAGE
                                         : "the answer could not be completed");
        res->status = e == AGW_EBUSY ? 503 : 502;
    }
    res->complete = e == AGW_OK;
    agw_buf_free(&out);
}

/* The first round's answer ended held: asks the same provider to go on, as
 * often as the limits allow, each round streaming into the same answer. */
static void continue_answer(agw_request *r, const agw_model_call *mc,
                            const agw_failover_attempt *at, const agw_failover_answer *how,
                            int stream, agw_relay_result *res)
{
    agw_bridge *bridge = how->bridge;
    agw_arena arena = AGW_ARENA_INIT;
    agw_ir_request base;
    char why[256];
    int prefill = at->plan.proto == AGW_PROTO_ANTHROPIC, answered = 0;
    /* A round's refused token is a failed round: no renewal in the middle
     * of an answer. */
    agw_failover_attempt round_at = *at;
    round_at.may_renew = 0;
    if (decode_client(r, mc, &arena, &base, why, sizeof why) != AGW_OK)
        goto release;
    base.model = at->route->model;
    /* thinking cannot start in the middle of an assistant turn */
    base.thinking = (agw_str){ NULL, 0 };
    int64_t client_max = base.max_tokens;
    while (res->held && !res->client_gone) {
        int64_t max_tokens;
        if (!round_allowed(r->cfg, bridge, client_max, &max_tokens))
            break;
        agw_ir_request rq = base;
        agw_str trimmed;
        append_answer(&arena, &rq, agw_bridge_text(bridge), prefill, &trimmed);
        const agw_ir_message *last = &rq.messages[rq.n_messages - 1];
        if (prefill && last->blocks[last->n_blocks - 1].text.len == 0)
            break; /* nothing but whitespace to continue from */
        rq.max_tokens = max_tokens;
        agw_buf body = AGW_BUF_INIT(r->cfg->server.max_body_bytes * 2 + AGW_LIMIT_UPSTREAM_BODY);
        body.budget = agw_budget_process();
        agw_provider_call call;
        memset(&call, 0, sizeof call);
        agw_proto upstream = at->plan.proto;
        agw_client_hints hints = { NULL, NULL, { NULL, 0 }, upstream, 1 };
        int ok = body_first(upstream) ||
                 agw_provider_prepare(at->route->provider, at->plan.op, &hints, &call) == AGW_OK;
        ok = ok && encode_for(upstream, &call, &rq, &body, why, sizeof why) == AGW_OK;
        ok = ok && (!body_first(upstream) ||
                    agw_provider_prepare(at->route->provider, at->plan.op, &hints, &call) ==
                        AGW_OK);
        if (!ok) {
            agw_provider_call_free(&call);
            agw_buf_free(&body);
            break;
        }
        agw_bridge_skip(bridge, trimmed);
        /* A round may always end held: if no round may follow, release ends
         * it the way it would have ended. */
        agw_bridge_round(bridge, 1);
        agw_bridge_set_request(bridge, &rq);
        agw_usage_tap tap;
        agw_relay_result round;
        /* A non-streaming client has been sent nothing: a failed round is
         * reported, and it gets the answer so far. */
        (void)run_relay(r, &round_at, &call, agw_buf_view(&body), stream, how, &tap, 1, !stream,
                        &round);
        agw_metrics_continuation(r->metrics, at->route->provider->name);
        agw_provider_call_free(&call);
        agw_buf_free(&body);
        agw_log_info("%s %.*s provider=%s continuation round %d: status=%d%s%s",
                     r->method, agw_request_clip(r->path, 100), r->path.ptr,
                     at->route->provider->name, agw_bridge_rounds(bridge), round.status,
                     round.detail[0] ? " detail=" : "", round.detail);
        if (round.retryable)
            break;
        res->complete = round.complete;
        res->held = round.held;
        res->client_gone = round.client_gone;
        res->bytes_out += round.bytes_out;
        res->events += round.events;
        if (!round.complete && !round.held) {
            /* the relay answered the failure: an error event after what
             * was streamed, or the error itself */
            if (!stream)
                res->status = round.status;
            answered = 1;
            break;
        }
        if (!stream && !round.held)
            res->status = round.status;
    }
release:
    if (!answered && !res->client_gone && agw_bridge_open(bridge))
        release_answer(r, bridge, stream, res);
    res->held = 0;
    agw_arena_free(&arena);
}

/* The call cannot go where it routes: `why` from the provider's plan. */
static void refuse_plan(agw_request *r, const agw_route *route, const char *why)
{
    agw_request_error_code(r, 400, "model_not_supported", "%s (provider '%s')",
                           why[0] ? why : "the model cannot be called here",
                           route->provider->name);
}

void agw_failover_run(agw_request *r, agw_model_call *mc, size_t max_tries)
{
    size_t n = mc->n_tries < max_tries ? mc->n_tries : max_tries;
    for (size_t i = 0; i < n; i++) {
        const agw_route *route = &mc->cands.r[i];
        agw_failover_attempt at = { route, agw_provider_ops_of(route->provider->type),
                                    { AGW_PROTO_OPENAI, mc->op }, i + 1 < n, 1, 0 };
        /* Model calls go where the provider serves that model; other
         * operations (embeddings, count_tokens) keep the type's protocol. */
        at.plan.proto = at.ops->proto;
        agw_usage_record_names(&r->usage, agw_str_c(route->provider->name), route->model);
        if (is_model_op(mc->op)) {
            char why[512] = "";
            if (agw_provider_plan_call(route->provider, r->proto, route->model, &at.plan, why,
                                       sizeof why) != AGW_OK) {
                refuse_plan(r, route, why);
                return;
            }
        }
        int retry;
        for (;;) {
            retry = at.plan.proto == r->proto ? passthrough(r, mc, &at) : convert(r, mc, &at);
            if (!retry || !at.renew_version)
                break;
            /* A 401 on a token that can be renewed: renewed once (or taken
             * from whoever renewed it meanwhile), then the call once more. */
            char err[256] = "";
            uint64_t v = at.renew_version;
            at.renew_version = 0;
            at.may_renew = 0;
            if (agw_cred_rejected(route->provider, v, err, sizeof err) != AGW_OK) {
                agw_log_warn("provider=%s: its token could not be renewed: %s",
                             route->provider->name, err);
                if (at.may_retry)
                    break;
                agw_request_error_code(r, 502, "provider_credential_unavailable",
                                       "provider '%s' refused its token and it could not be "
                                       "renewed",
                                       route->provider->name);
                return;
            }
        }
        if (!retry)
            break;
    }
}

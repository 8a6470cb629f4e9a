/* antigw-fcgi's entry points: the worker state, and each request from its
 * path to the endpoint that answers it (app.h has the line it follows). */
#include "app.h"

#include "endpoints.h"
#include "core/json.h"
#include "metrics/meter.h"

#include <stdio.h>
#include <stdlib.h>

void *agw_app_worker_init(void *app_ptr, int index)
{
    const agw_app *app = app_ptr;
    agw_app_worker *w = xcalloc(1, sizeof *w);
    w->upstream = agw_upstream_new();
    w->index = index;
    char err[AGW_ERR_LEN];
    /* Opened here, after the threads started: an SQLite connection must never
     * cross a fork, and spawn-fcgi forks the process before main runs. */
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

typedef enum {
    EP_CHAT,
    EP_MESSAGES,
    EP_COUNT_TOKENS,
    EP_MODELS,
    EP_MODEL,
    EP_HEALTH,
    EP_EMBEDDINGS,
    EP_METRICS,
    EP_RESPONSES,
    EP_RESPONSE_STORED
} agw_endpoint;

/* Paths match exactly (no trailing slash is dropped: `/metrics/` is not
 * `/metrics`), except a route whose path ends in '/', which takes any
 * non-empty rest: the model id of /v1/models/{id}, which may itself hold
 * '/' (prefixed ids such as openai/gpt-4o). */
static const struct {
    agw_str path;
    agw_endpoint ep;
    const char *method;
    int needs_auth;
} routes[] = {
    { AGW_STR_LIT("/v1/chat/completions"), EP_CHAT, "POST", 1 },
    { AGW_STR_LIT("/v1/messages"), EP_MESSAGES, "POST", 1 },
    { AGW_STR_LIT("/v1/messages/count_tokens"), EP_COUNT_TOKENS, "POST", 1 },
    { AGW_STR_LIT("/v1/models"), EP_MODELS, "GET", 1 },
    { AGW_STR_LIT("/v1/models/"), EP_MODEL, "GET", 1 },
    { AGW_STR_LIT("/health"), EP_HEALTH, "GET", 0 },
    { AGW_STR_LIT("/v1/embeddings"), EP_EMBEDDINGS, "POST", 1 },
    { AGW_STR_LIT("/metrics"), EP_METRICS, "GET", 0 },
    { AGW_STR_LIT("/v1/responses"), EP_RESPONSES, "POST", 1 },
    { AGW_STR_LIT("/v1/responses/"), EP_RESPONSE_STORED, "GET", 1 },
};

#define N_ROUTES (sizeof routes / sizeof routes[0])

/* The index of the route `path` names; N_ROUTES when none does. */
static size_t route_of(agw_str path)
{
    for (size_t i = 0; i < N_ROUTES; i++) {
        agw_str p = routes[i].path;
        if (p.ptr[p.len - 1] == '/' ? path.len > p.len && agw_str_starts(path, p)
                                    : agw_str_eq(path, p))
            return i;
    }
    return N_ROUTES;
}

static void endpoint_run(agw_request *r, agw_endpoint ep, agw_str rest)
{
    switch (ep) {
    case EP_CHAT: agw_endpoint_model_call(r, AGW_OP_CHAT); break;
    case EP_MESSAGES: agw_endpoint_model_call(r, AGW_OP_MESSAGES); break;
    case EP_COUNT_TOKENS: agw_endpoint_count_tokens(r); break;
    case EP_MODELS: agw_endpoint_models(r); break;
    case EP_MODEL: agw_endpoint_model(r, rest); break;
    case EP_HEALTH: agw_endpoint_health(r); break;
    case EP_EMBEDDINGS: agw_endpoint_embeddings(r); break;
    case EP_METRICS: agw_endpoint_metrics(r); break;
    case EP_RESPONSES: agw_endpoint_model_call(r, AGW_OP_RESPONSES); break;
    case EP_RESPONSE_STORED:
        agw_request_error_code(r, 404, "response_not_found",
                               "this gateway is stateless and keeps no responses, so %.*s cannot "
                               "be retrieved; send the whole conversation in `input` instead",
                               agw_request_clip(rest, 100), rest.ptr);
        break;
    }
}

/* A CORS preflight: browsers send no credentials with it. */
static void answer_preflight(agw_request *r, const char *method)
{
    agw_buf h = AGW_BUF_INIT(4096);
    if (agw_buf_append_str(&h, agw_buf_view(&r->headers)) == AGW_OK &&
        agw_buf_appendf(&h, "Allow: %s, OPTIONS\r\nAccess-Control-Allow-Methods: %s, OPTIONS\r\n"
                            "Access-Control-Allow-Headers: authorization, content-type, "
                            "x-api-key, anthropic-version, anthropic-beta\r\n"
                            "Access-Control-Max-Age: 600\r\n",
                        method, method) == AGW_OK)
        (void)agw_fcgi_respond(&r->conn, 204, "text/plain", agw_buf_view(&h), (agw_str){ "", 0 });
    agw_buf_free(&h);
}

static void answer_wrong_method(agw_request *r, const char *method)
{
    char allow[64];
    snprintf(allow, sizeof allow, "Allow: %s, OPTIONS\r\n", method);
    agw_buf body = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    char msg[128];
    snprintf(msg, sizeof msg, "%.*s takes %s, not %.10s", agw_request_clip(r->path, 60),
             r->path.ptr, method, r->method);
    if (agw_apierr_body(&body, r->proto, 405, agw_str_c(msg), "method_not_allowed") == AGW_OK)
        agw_request_respond_json(r, 405, agw_str_c(allow), agw_buf_view(&body));
    agw_buf_free(&body);
}

/* What is owed once the endpoint has answered: the token reservation of a
 * call that never went upstream, the metrics, the usage record. */
static void request_end(agw_request *r)
{
    if (r->conn.status >= 400)
        agw_log_debug("%s %.*s -> %d", r->method, agw_request_clip(r->path, 100), r->path.ptr,
                      r->conn.status);
    /* Admitted but never sent upstream (e.g. a request the converter
     * refused): the token reservation goes back, the request unit stays. */
    agw_limit_finish(&r->ticket, 0, agw_shm_now_ns());
    /* The outcome: what the answered attempt recorded (a broken stream is a
     * 502 though its head said 200), else the status the gateway answered. */
    if (r->usage_due)
        r->usage.status = r->conn.status;
    if (r->metered)
        agw_meter_request(r->metrics, r->cfg, &r->usage, r->usage.status,
                          agw_mono_us() - r->start_us, r->upstream_us);
    if (r->usage_due) {
        /* Refused by the gateway itself (403, 429, bad input): kept out of
         * the ring's headroom for calls in flight (usage.h). */
        r->usage.latency_ms = (int64_t)((agw_mono_us() - r->start_us) / 1000);
        (void)agw_usage_append(r->app->usage, &r->usage, 0);
    }
}

void agw_app_handle(void *app_ptr, agw_server_worker *w, FCGX_Request *req)
{
    agw_request r;
    memset(&r, 0, sizeof r);
    r.app = app_ptr;
    r.worker = agw_server_worker_state(w);
    r.start_us = agw_mono_us();
    r.cat = agw_catalog_acquire(r.app->catalog, agw_store_db(r.worker->store));
    r.cfg = agw_catalog_config(r.cat);
    r.metrics = agw_metrics_in(r.app->shm);
    agw_usage_record_init(&r.usage);
    agw_buf_init(&r.headers, 4096);
    agw_fcgi_conn_init(&r.conn, req);
    r.method = agw_fcgi_param(&r.conn, "REQUEST_METHOD");
    if (!r.method)
        r.method = "GET";
    r.path = agw_fcgi_path(&r.conn);
    /* The model list answers in Anthropic's shape, errors included, when the
     * client is an Anthropic SDK (it always sends anthropic-version). */
    r.proto = agw_str_starts(r.path, AGW_STR_LIT("/v1/messages")) ||
                      (agw_str_starts(r.path, AGW_STR_LIT("/v1/models")) &&
                       agw_fcgi_param(&r.conn, "HTTP_ANTHROPIC_VERSION"))
                  ? AGW_PROTO_ANTHROPIC
                  : AGW_PROTO_OPENAI;
    if (agw_str_starts(r.path, AGW_STR_LIT("/v1/responses")))
        r.proto = AGW_PROTO_RESPONSES;
    if (agw_request_cors(&r) != AGW_OK)
        agw_buf_reset(&r.headers);

    size_t i = route_of(r.path);
    if (i == N_ROUTES)
        agw_request_error_code(&r, 404, "unknown_url", "no endpoint at %.*s %.*s", 10, r.method,
                               agw_request_clip(r.path, 200), r.path.ptr);
    else if (strcmp(r.method, "OPTIONS") == 0)
        answer_preflight(&r, routes[i].method);
    else if (strcmp(r.method, routes[i].method) != 0 &&
             !(strcmp(r.method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0))
        answer_wrong_method(&r, routes[i].method);
    else if (!routes[i].needs_auth || agw_request_authenticate(&r))
        endpoint_run(&r, routes[i].ep,
                     (agw_str){ r.path.ptr + routes[i].path.len, r.path.len - routes[i].path.len });

    request_end(&r);
    /* A record of the body's long values (model_call) ends with its call;
     * one left over would describe memory the next body may take. */
    if (agw_json_skips_end_all())
        agw_log_error("a record of a request body's values outlived its call");
    agw_catalog_release(r.app->catalog, r.cat);
    agw_fcgi_conn_release(&r.conn);
    agw_buf_free(&r.headers);
}

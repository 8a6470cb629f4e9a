/*
 * request: one FastCGI request of antigw-fcgi while it is handled, and the
 * answers every step gives through it.
 *
 * An agw_request lives on the stack of agw_app_handle (dispatch.c) for the
 * whole request. It holds the catalog snapshot the request started with, so a
 * stream keeps its providers while an admin changes them; every borrowed
 * pointer (cfg, key, the provider of a route) is valid until the end. Its
 * buffers are freed by dispatch.c; the steps only append to them.
 *
 * Errors are answered in the client's protocol shape (proto/apierr.h), with
 * the CORS and rate-limit lines collected in `headers`.
 */
#ifndef AGW_REQUEST_H
#define AGW_REQUEST_H

#include "app.h"

#include "net/fcgi_io.h"
#include "proto/apierr.h"
#include "tenant/limiter.h"
#include "tenant/tenant.h"
#include "metrics/metrics.h"

typedef struct {
    const agw_app *app;
    agw_app_worker *worker;
    const agw_catalog *cat;    /* held for the whole request: a stream keeps its providers */
    const agw_config *cfg;     /* the catalog's view: settings plus config and database providers */
    agw_fcgi_conn conn;
    agw_proto proto;           /* the error shape this client understands */
    agw_buf headers;           /* lines every answer carries: CORS, and in tenant mode the
                                  key's x-ratelimit-* once it was admitted */
    uint64_t start_us;
    const char *method;
    agw_str path;
    /* tenant mode */
    const agw_tenant_key *key; /* the client's key (valid while `cat` is held) */
    agw_limit_ticket ticket;   /* admission; finished when the call has ended */
    /* usage: a model call that got past authentication leaves one record */
    agw_usage_record usage;
    int usage_due;             /* a record is owed and not yet submitted */
    /* metrics */
    agw_metrics *metrics;      /* the pool's registry in the shared segment */
    int metered;               /* a model call: counted in antigateway_requests_total */
    uint64_t upstream_us;      /* time spent in upstream transfers (all attempts) */
} agw_request;

/* The load balancer's shared view, NULL when the segment has none. */
agw_lb *agw_request_lb(const agw_request *r);

/* A JSON answer with the request's header lines and `extra_headers`. */
void agw_request_respond_json(agw_request *r, int status, agw_str extra_headers, agw_str body);

/* An error in the client's shape; `code` may be NULL. */
void agw_request_error_code(agw_request *r, int status, const char *code, const char *fmt, ...)
    AGW_PRINTF(4, 5);
#define agw_request_error(r, status, ...) agw_request_error_code((r), (status), NULL, __VA_ARGS__)

/* 503 server_busy: the process's memory budget (server.max_memory_bytes)
 * cannot hold what this request needs right now. */
void agw_request_busy(agw_request *r);

/* How many bytes of a client-supplied string go into a message: at most `max`. */
static inline int agw_request_clip(agw_str s, int max)
{
    return s.len > (size_t)max ? max : (int)s.len;
}

/* The Access-Control-Allow-Origin line (and Vary) for the request's Origin
 * when server.cors_origins allows it, appended to r->headers. */
AGW_WARN_UNUSED agw_err agw_request_cors(agw_request *r);

/* 1 when the request carries the admin key as its Bearer token (the config
 * keeps only the key's SHA-256: agw_config_hash_admin_key). */
int agw_request_is_admin(const agw_request *r);

/* auth.c: the client's key, single-key or tenant mode. Returns 0 when it has
 * answered the client (401, 403, or 503 when the key cannot be checked). */
int agw_request_authenticate(agw_request *r);

#endif

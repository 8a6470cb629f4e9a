/*
 * upstream: HTTP requests to providers over libcurl, one handle per thread.
 *
 * A worker thread owns one agw_upstream for its whole life. Its easy handle is
 * reset between requests but keeps its connection cache, so connections to a
 * provider stay open and are reused (a connection cache shared between
 * threads is not thread-safe in libcurl 7.88; one handle per thread is).
 *
 * A request streams: response headers are collected first, then every body
 * chunk goes to on_data as it arrives, without buffering here. on_tick runs
 * about once a second while the upstream is silent and between chunks; the
 * caller uses it to ping the client and to notice that the client left.
 * Either callback stops the transfer by returning non-zero.
 *
 * The agw_upstream owns the header list of the last response; views returned
 * by agw_upstream_header() are valid until the next perform.
 */
#ifndef AGW_UPSTREAM_H
#define AGW_UPSTREAM_H

#include "core/core.h"

typedef struct agw_upstream agw_upstream;

/* Call once per process, before any thread starts. */
AGW_WARN_UNUSED agw_err agw_upstream_global_init(void);

/* Whether connections may go to link-local and cloud metadata addresses
 * (agw_config_sockaddr_blocked), checked on the address DNS resolved to, for
 * every connection of the process. Off until set (upstream.allow_link_local). */
void agw_upstream_set_allow_link_local(int allow);

agw_upstream *agw_upstream_new(void);
void agw_upstream_free(agw_upstream *u);

typedef struct {
    const char *url;
    const char *const *headers;  /* NULL-terminated "Name: value" strings */
    agw_str body;                /* POST body; a NULL ptr means GET */
    long connect_timeout_ms;
    long idle_timeout_ms;        /* no upstream byte for this long aborts (AGW_ETIMEOUT) */
    long total_timeout_ms;       /* 0 = none; for short calls only, never for streams */
    /* Body bytes as they arrive; the status and headers are known by then. */
    int (*on_data)(void *ud, const char *p, size_t n);
    /* Periodic; `idle_ms` is the time since the last upstream byte. */
    int (*on_tick)(void *ud, uint64_t idle_ms);
    void *ud;
} agw_upstream_req;

typedef enum {
    AGW_UPSTREAM_DONE = 0,      /* a complete HTTP response (any status) */
    AGW_UPSTREAM_CONNECT,       /* could not resolve or connect */
    AGW_UPSTREAM_TIMEOUT,       /* connect, idle or total timeout */
    AGW_UPSTREAM_BROKEN,        /* the response was cut or malformed (reset, bad chunking) */
    AGW_UPSTREAM_STOPPED,       /* a callback asked to stop */
} agw_upstream_outcome;

typedef struct {
    agw_upstream_outcome outcome;
    long status;                /* HTTP status; 0 when no response head arrived */
    uint64_t first_byte_us;     /* time from start to the first body byte; 0 if none */
    char detail[256];           /* libcurl's words for a failure; never holds secrets */
} agw_upstream_result;

/* Runs one request to completion (or failure). Never returns an error code:
 * the outcome says what happened. */
void agw_upstream_perform(agw_upstream *u, const agw_upstream_req *rq, agw_upstream_result *res);

/* The HTTP status of the response being received (valid from the first
 * on_data call on) or of the last perform; 0 before a status line arrived. */
long agw_upstream_status(const agw_upstream *u);

/* A response header of the last perform (case-insensitive name), or a NULL-ptr view. */
agw_str agw_upstream_header(const agw_upstream *u, agw_str name);

/* Iterates the response headers of the last perform: returns 0 at the end. */
int agw_upstream_header_at(const agw_upstream *u, size_t i, agw_str *name, agw_str *value);

#endif

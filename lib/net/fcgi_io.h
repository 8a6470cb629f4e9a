/*
 * fcgi_io: one FastCGI request as the gateway sees it, over libfcgi.
 *
 * Wraps an accepted FCGX_Request: parameters, the body read under a hard cap,
 * the response head and body, flushes, and noticing that the client left.
 *
 * Why it exists: libfcgi buffers 8 KiB of output and reports a
 * dead client only through FCGX_GetError after a flush, and FCGX_FPrintF cannot
 * format %zu. Everything the gateway writes goes through here, so those rules
 * live in one place. Once a write or flush has failed the connection is marked
 * gone and every later call is a cheap no-op returning AGW_EPEER.
 *
 * Ownership: agw_fcgi_conn borrows the FCGX_Request (the caller accepts and
 * finishes it) and owns `body`, released by agw_fcgi_conn_release().
 * Parameter strings live until FCGX_Finish_r.
 */
#ifndef AGW_FCGI_IO_H
#define AGW_FCGI_IO_H

#include "core/core.h"

#include <fcgiapp.h>

typedef struct {
    FCGX_Stream *in, *out;
    FCGX_ParamArray envp;
    int ipc_fd;          /* the web server's connection, polled for departure; -1 = unknown */
    int head_sent;       /* the status line and headers have been written */
    int gone;            /* a write failed: the client (or the web server) left */
    int status;          /* status sent, for logs and metrics */
    agw_buf body;        /* the request body after agw_fcgi_read_body; its allocation
                            is taken from the process's memory budget */
} agw_fcgi_conn;

/* Binds a conn to an accepted request. */
void agw_fcgi_conn_init(agw_fcgi_conn *c, FCGX_Request *req);
void agw_fcgi_conn_release(agw_fcgi_conn *c);

/* A parameter's value, or NULL. HTTP headers are HTTP_NAME_IN_CAPS. */
const char *agw_fcgi_param(const agw_fcgi_conn *c, const char *name);

/* The token of `Authorization: Bearer <token>` (the scheme in any case,
 * spaces before the token skipped), or the empty view (ptr NULL) when the
 * request has no such header. A bare "Bearer " gives an empty token, not
 * NULL. The view is valid while the request is. */
agw_str agw_fcgi_bearer(const agw_fcgi_conn *c);

/* The request path without the query string: REQUEST_URI, else SCRIPT_NAME
 * (which holds the whole path when a server sends no REQUEST_URI), else "/". */
agw_str agw_fcgi_path(const agw_fcgi_conn *c);

/* Reads the body to EOF into c->body. CONTENT_LENGTH is only a hint (it may be
 * missing, empty or -1 behind some servers): the cap is enforced on the bytes
 * actually read. AGW_ETOOBIG past `max` (the rest is left unread). The body's
 * allocation is taken from agw_budget_process() as it grows and held until
 * agw_fcgi_conn_release: AGW_EBUSY (body freed, the rest unread) when the
 * process's memory budget has no room for it. */
AGW_WARN_UNUSED agw_err agw_fcgi_read_body(agw_fcgi_conn *c, size_t max);

/* Writes "Status:" and the headers. `headers` is zero or more complete
 * "Name: value\r\n" lines; the caller has checked them for CR/LF injection.
 * Only the first call writes; a second returns AGW_EINVAL. */
agw_err agw_fcgi_head(agw_fcgi_conn *c, int status, const char *content_type, agw_str headers);

/* Queues body bytes. AGW_EPEER once the client is gone. */
agw_err agw_fcgi_write(agw_fcgi_conn *c, const void *p, size_t n);

/* Sends what is queued now. AGW_EPEER when the client is gone (checks the
 * stream's error state, not just the return value, since libfcgi reports a
 * departed client through FCGX_GetError). */
agw_err agw_fcgi_flush(agw_fcgi_conn *c);

/* A complete small response: head, body, no flush (FCGX_Finish_r sends it). */
agw_err agw_fcgi_respond(agw_fcgi_conn *c, int status, const char *content_type, agw_str headers,
                         agw_str body);

/* 1 when the web server has closed our connection, checked without blocking.
 * Only meaningful after the body was read to EOF (before that the socket is
 * readable because of body bytes). */
int agw_fcgi_client_gone(agw_fcgi_conn *c);

#endif

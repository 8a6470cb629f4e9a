#include "net/fcgi_io.h"
#include "proto/apierr.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>

/* A conn over bare streams (the unit tests use fake ones); ipc_fd may be -1. */
static void conn_init_streams(agw_fcgi_conn *c, FCGX_Stream *in, FCGX_Stream *out,
                              FCGX_ParamArray envp, int ipc_fd)
{
    memset(c, 0, sizeof *c);
    c->in = in;
    c->out = out;
    c->envp = envp;
    c->ipc_fd = ipc_fd;
    agw_buf_init(&c->body, 0);
}

void agw_fcgi_conn_init(agw_fcgi_conn *c, FCGX_Request *req)
{
    conn_init_streams(c, req->in, req->out, req->envp, req->ipcFd);
}

void agw_fcgi_conn_release(agw_fcgi_conn *c)
{
    agw_buf_free(&c->body);
}

const char *agw_fcgi_param(const agw_fcgi_conn *c, const char *name)
{
    /* FCGX_GetParam's strncmp call per entry, on a request's ~30 entries
     * and a dozen lookups (several for headers that are absent), adds up:
     * the first byte rules most entries out. */
    if (!c->envp || !name[0])
        return NULL;
    size_t len = strlen(name);
    for (char **p = c->envp; *p; p++)
        if ((*p)[0] == name[0] && strncmp(*p + 1, name + 1, len - 1) == 0 && (*p)[len] == '=')
            return *p + len + 1;
    return NULL;
}

agw_str agw_fcgi_bearer(const agw_fcgi_conn *c)
{
    const char *auth = agw_fcgi_param(c, "HTTP_AUTHORIZATION");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return (agw_str){ NULL, 0 };
    const char *k = auth + 7;
    while (*k == ' ')
        k++;
    return agw_str_c(k);
}

agw_str agw_fcgi_path(const agw_fcgi_conn *c)
{
    /* Every supported web server sends REQUEST_URI; SCRIPT_NAME is the fallback
     * for a bare CGI-style caller, where it holds the whole matched path. */
    const char *uri = agw_fcgi_param(c, "REQUEST_URI");
    if (!uri || !*uri)
        uri = agw_fcgi_param(c, "SCRIPT_NAME");
    if (!uri || !*uri)
        return AGW_STR_LIT("/");
    const char *q = strchr(uri, '?');
    return (agw_str){ uri, q ? (size_t)(q - uri) : strlen(uri) };
}

agw_err agw_fcgi_read_body(agw_fcgi_conn *c, size_t max)
{
    agw_buf_free(&c->body);
    agw_buf_init(&c->body, max);
    c->body.budget = agw_budget_process();
    const char *cl = agw_fcgi_param(c, "CONTENT_LENGTH");
    if (cl && *cl && *cl != '-') {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno == 0 && *end == '\0' && n > max)
            return AGW_ETOOBIG;
        /* The announced size in one allocation: a body taken from the budget
         * costs what it weighs, not the next power of two. */
        if (errno == 0 && *end == '\0' && n > 0) {
            agw_err e = agw_buf_reserve(&c->body, (size_t)n);
            if (e)
                return e;
        }
    }
    char chunk[16384];
    for (;;) {
        int got = FCGX_GetStr(chunk, (int)sizeof chunk, c->in);
        if (got > 0) {
            /* On ETOOBIG or EBUSY the body is freed and the rest stays unread. */
            agw_err e = agw_buf_append(&c->body, chunk, (size_t)got);
            if (e)
                return e;
        }
        if (got < (int)sizeof chunk)
            break;
    }
    if (FCGX_GetError(c->in) != 0)
        return AGW_EPEER;
    return AGW_OK;
}

static agw_err check_out(agw_fcgi_conn *c)
{
    if (!c->gone && FCGX_GetError(c->out) != 0)
        c->gone = 1;
    return c->gone ? AGW_EPEER : AGW_OK;
}

agw_err agw_fcgi_write(agw_fcgi_conn *c, const void *p, size_t n)
{
    if (c->gone)
        return AGW_EPEER;
    const char *s = p;
    while (n > 0) {
        int part = n > (1u << 30) ? (1 << 30) : (int)n;
        if (FCGX_PutStr(s, part, c->out) != part) {
            c->gone = 1;
            return AGW_EPEER;
        }
        s += part;
        n -= (size_t)part;
    }
    return check_out(c);
}

agw_err agw_fcgi_head(agw_fcgi_conn *c, int status, const char *content_type, agw_str headers)
{
    if (c->head_sent)
        return AGW_EINVAL;
    c->head_sent = 1;
    c->status = status;
    if (status < 100 || status > 999)
        return AGW_EINVAL;
    /* Put together by hand: this runs on every response, and snprintf
     * costs more than the rest of the head. */
    const char *reason = agw_http_reason(status);
    size_t reason_len = strlen(reason), type_len = strlen(content_type);
    char line[256];
    if (reason_len + type_len > sizeof line - 32)
        return AGW_EINVAL; /* never write more than `line` holds */
    memcpy(line, "Status: ", 8);
    size_t n = 8;
    line[n++] = (char)('0' + status / 100);
    line[n++] = (char)('0' + status / 10 % 10);
    line[n++] = (char)('0' + status % 10);
    line[n++] = ' ';
    memcpy(line + n, reason, reason_len);
    n += reason_len;
    memcpy(line + n, "\r\nContent-Type: ", 16);
    n += 16;
    memcpy(line + n, content_type, type_len);
    n += type_len;
    line[n++] = '\r';
    line[n++] = '\n';
    agw_err e;
    if ((e = agw_fcgi_write(c, line, n)) || (e = agw_fcgi_write(c, headers.ptr, headers.len)))
        return e;
    return agw_fcgi_write(c, "\r\n", 2);
}

agw_err agw_fcgi_flush(agw_fcgi_conn *c)
{
    if (c->gone)
        return AGW_EPEER;
    if (FCGX_FFlush(c->out) != 0)
        c->gone = 1;
    return check_out(c);
}

agw_err agw_fcgi_respond(agw_fcgi_conn *c, int status, const char *content_type, agw_str headers,
                         agw_str body)
{
    char extra[64];
    int n = snprintf(extra, sizeof extra, "Content-Length: %lu\r\n", (unsigned long)body.len);
    agw_buf h = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    agw_err e;
    if ((e = agw_buf_append_str(&h, headers)) || (e = agw_buf_append(&h, extra, (size_t)n)))
        return e;
    e = agw_fcgi_head(c, status, content_type, agw_buf_view(&h));
    agw_buf_free(&h);
    if (e)
        return e;
    return agw_fcgi_write(c, body.ptr, body.len);
}

int agw_fcgi_client_gone(agw_fcgi_conn *c)
{
    if (c->gone)
        return 1;
    if (c->ipc_fd < 0)
        return 0;
    struct pollfd p = { .fd = c->ipc_fd, .events = POLLIN | POLLRDHUP };
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
        c->gone = 1;
        return 1;
    }
    /* Plain POLLIN after the body is read means the server sent something we
     * never asked for (an abort record, or EOF without RDHUP support): peek. */
    if (p.revents & POLLIN) {
        char b;
        ssize_t r = recv(c->ipc_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            c->gone = 1;
            return 1;
        }
    }
    return 0;
}

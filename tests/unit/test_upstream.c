/* Unit tests for lib/upstream against a small HTTP/1.1 server that runs in a
 * thread of this test on 127.0.0.1: status and headers, chunked streams,
 * resets, timeouts, stopping, keep-alive reuse, exact request bodies and a
 * proxy named by the environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "net/upstream.h"
#include "testsrv.h"

/* ======================================================================
 * Canned responses for this file.
 * ====================================================================== */

static const char ok_body[] = "{\"id\":\"x\",\"ok\":true}";
static const char rl_body[] = "{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\"}}";
static const char *const sse_events[] = {
    "data: {\"n\":1}\n\n",
    "data: {\"n\":2}\n\n",
    "data: [DONE]\n\n",
};

#define BIG_HEADERS 10
#define BIG_HEADER_LEN 8000
#define MANY_HEADERS 70

static int handle(testsrv *s, int fd, const testsrv_req *rq)
{
    char buf[1024];
    const char *p = rq->path;
    /* The last: a request asked of this server as a proxy (absolute URI). */
    if (!strcmp(p, "/ok") || !strcmp(p, "/echo") || !strcmp(p, "http://proxied.invalid/ok")) {
        snprintf(buf, sizeof buf,
                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Custom:   hello world  \r\n"
                 "x-request-id: req-123\r\nContent-Length: %lu\r\n\r\n%s",
                 (unsigned long)strlen(ok_body), ok_body);
        return testsrv_send_str(fd, buf) ? TESTSRV_CLOSE : TESTSRV_KEEP;
    }
    if (!strcmp(p, "/close")) {
        snprintf(buf, sizeof buf,
                 "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %lu\r\n\r\n%s",
                 (unsigned long)strlen(ok_body), ok_body);
        testsrv_send_str(fd, buf);
        return TESTSRV_CLOSE;
    }
    if (!strcmp(p, "/sse")) {
        /* One chunk per event, each sent only after the client has seen the
         * previous one: several deliveries, without sleeping. */
        if (testsrv_send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\n"))
            return TESTSRV_CLOSE;
        int base = testsrv_get(s, &s->progress);
        for (int i = 0; i < 3; i++) {
            if (i && !testsrv_wait_progress(s, base + i))
                break;
            if (testsrv_send_chunk(fd, sse_events[i])) {
                testsrv_set_peer_gone(s);
                return TESTSRV_CLOSE;
            }
        }
        return testsrv_send_str(fd, "0\r\n\r\n") ? TESTSRV_CLOSE : TESTSRV_KEEP;
    }
    if (!strcmp(p, "/429")) {
        snprintf(buf, sizeof buf,
                 "HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\n"
                 "X-RateLimit-Remaining-Requests: 0\r\nContent-Type: application/json\r\n"
                 "Content-Length: %lu\r\n\r\n%s",
                 (unsigned long)strlen(rl_body), rl_body);
        return testsrv_send_str(fd, buf) ? TESTSRV_CLOSE : TESTSRV_KEEP;
    }
    if (!strcmp(p, "/teapot")) {
        return testsrv_send_str(fd, "HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n")
                   ? TESTSRV_CLOSE
                   : TESTSRV_KEEP;
    }
    if (!strcmp(p, "/reset")) {
        /* Promise 1000 bytes, send 100, wait until the client has them, reset. */
        char body[100];
        memset(body, 'r', sizeof body);
        int base = testsrv_get(s, &s->progress);
        if (testsrv_send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                 "Content-Length: 1000\r\n\r\n") ||
            testsrv_send_all(fd, body, sizeof body))
            return TESTSRV_CLOSE;
        testsrv_wait_progress(s, base + 1);
        return testsrv_close_with_reset(fd);
    }
    if (!strcmp(p, "/hang")) {
        testsrv_wait_peer_close(s, fd);
        return TESTSRV_CLOSE;
    }
    if (!strcmp(p, "/badchunk")) {
        testsrv_send_str(fd,
                         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nhello\r\n0\r\n\r\n");
        testsrv_wait_peer_close(s, fd);
        return TESTSRV_CLOSE;
    }
    if (!strcmp(p, "/interim")) {
        return testsrv_send_str(fd, "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
                                    "HTTP/1.1 201 Created\r\nX-Final: 2\r\nContent-Length: 2\r\n\r\nok")
                   ? TESTSRV_CLOSE
                   : TESTSRV_KEEP;
    }
    if (!strcmp(p, "/204")) {
        return testsrv_send_str(fd, "HTTP/1.1 204 No Content\r\nX-Empty: yes\r\n\r\n")
                   ? TESTSRV_CLOSE
                   : TESTSRV_KEEP;
    }
    if (!strcmp(p, "/redirect")) {
        return testsrv_send_str(fd, "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n")
                   ? TESTSRV_CLOSE
                   : TESTSRV_KEEP;
    }
    if (!strcmp(p, "/http10")) {
        /* No length: the body ends when the connection closes. */
        testsrv_send_str(fd, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-close");
        return TESTSRV_CLOSE;
    }
    if (!strcmp(p, "/gzip")) {
        /* gzip of {"ok":true,"text":"gzip works"} (made with mtime 0). */
        static const char gz[] = "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xab\x56\xca\xcf\x56\xb2"
                                 "\x2a\x29\x2a\x4d\xd5\x51\x2a\x49\xad\x28\x51\xb2\x52\x4a\xaf\xca"
                                 "\x2c\x50\x28\xcf\x2f\xca\x2e\x56\xaa\x05\x00\xa2\xcb\xe7\x79\x1f"
                                 "\x00\x00\x00";
        snprintf(buf, sizeof buf,
                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                 "Content-Length: %lu\r\n\r\n",
                 (unsigned long)(sizeof gz - 1));
        return testsrv_send_str(fd, buf) || testsrv_send_all(fd, gz, sizeof gz - 1)
                   ? TESTSRV_CLOSE
                   : TESTSRV_KEEP;
    }
    if (!strcmp(p, "/many")) {
        agw_buf b = AGW_BUF_INIT(1u << 20);
        int e = agw_buf_appendf(&b, "HTTP/1.1 200 OK\r\n");
        for (int i = 0; i < MANY_HEADERS; i++)
            e |= agw_buf_appendf(&b, "X-H%d: v%d\r\n", i, i);
        e |= agw_buf_appendf(&b, "Content-Length: 2\r\n\r\nok");
        int rc = e || testsrv_send_all(fd, b.data, b.len) ? TESTSRV_CLOSE : TESTSRV_KEEP;
        agw_buf_free(&b);
        return rc;
    }
    if (!strcmp(p, "/bigheaders")) {
        /* 10 headers of 8000 bytes: 80 KB, past the 64 KiB the client keeps. */
        agw_buf b = AGW_BUF_INIT(1u << 20);
        int e = agw_buf_appendf(&b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n");
        char *v = malloc(BIG_HEADER_LEN + 1);
        for (int i = 0; i < BIG_HEADERS; i++) {
            memset(v, 'a' + i, BIG_HEADER_LEN);
            v[BIG_HEADER_LEN] = '\0';
            e |= agw_buf_appendf(&b, "X-Big%d: %s\r\n", i, v);
        }
        free(v);
        e |= agw_buf_appendf(&b, "X-Late: yes\r\nContent-Length: 2\r\n\r\nok");
        int rc = e || testsrv_send_all(fd, b.data, b.len) ? TESTSRV_CLOSE : TESTSRV_KEEP;
        agw_buf_free(&b);
        return rc;
    }
    testsrv_send_str(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    return TESTSRV_KEEP;
}

/* ======================================================================
 * Fixture and client-side helpers.
 * ====================================================================== */

typedef struct collect collect;

#define MAX_COLLECT 8

typedef struct {
    testsrv s;
    agw_upstream *u;
    collect *cols[MAX_COLLECT]; /* freed by teardown, so failing tests leak nothing */
    int n_cols;
} fixture;

struct collect {
    fixture *f;
    agw_buf body;
    int calls;
    long status_at_first_data;
    int content_type_at_first_data;
    int stop_after_calls; /* on_data returns 1 once this many calls happened; 0 never */
    int ticks;
    int stop_at_tick;     /* on_tick returns 1 at this tick; 0 never */
    uint64_t last_idle_ms;
};

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || testsrv_start(&f->s, handle) != 0)
        return -1;
    f->u = agw_upstream_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < f->n_cols; i++) {
        agw_buf_free(&f->cols[i]->body);
        free(f->cols[i]);
    }
    /* Freeing the handle closes its cached connections, so the server's
     * connection threads see EOF before the server stops. */
    agw_upstream_free(f->u);
    testsrv_stop(&f->s);
    free(f);
    return 0;
}


static int on_data(void *ud, const char *p, size_t n)
{
    collect *c = ud;
    if (c->calls++ == 0) {
        c->status_at_first_data = agw_upstream_status(c->f->u);
        c->content_type_at_first_data =
            agw_upstream_header(c->f->u, AGW_STR_LIT("content-type")).ptr != NULL;
    }
    if (agw_buf_append(&c->body, p, n) != AGW_OK)
        return 1;
    testsrv_bump(&c->f->s);
    return c->stop_after_calls && c->calls >= c->stop_after_calls;
}

static int on_tick(void *ud, uint64_t idle_ms)
{
    collect *c = ud;
    c->ticks++;
    c->last_idle_ms = idle_ms;
    return c->stop_at_tick && c->ticks >= c->stop_at_tick;
}

/* A fresh collector owned by the fixture. */
static collect *new_collect(fixture *f)
{
    assert_true(f->n_cols < MAX_COLLECT);
    collect *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->f = f;
    agw_buf_init(&c->body, 16u << 20);
    f->cols[f->n_cols++] = c;
    return c;
}

static void url_of(const fixture *f, const char *path, char *out, size_t n)
{
    snprintf(out, n, "http://127.0.0.1:%d%s", f->s.port, path);
}

/* One request on handle u to a whole URL. */
static void perform_on(agw_upstream *u, const char *url, agw_str body,
                       const char *const *headers, long idle_ms, collect *c,
                       agw_upstream_result *res)
{
    agw_upstream_req rq = {
        .url = url,
        .headers = headers,
        .body = body,
        .connect_timeout_ms = 5000,
        .idle_timeout_ms = idle_ms,
        .on_data = on_data,
        .on_tick = on_tick,
        .ud = c,
    };
    agw_upstream_perform(u, &rq, res);
}

/* One request on the fixture's handle to `path` on its server. */
static void perform(fixture *f, const char *path, agw_str body, const char *const *headers,
                    long idle_ms, collect *c, agw_upstream_result *res)
{
    char url[256];
    url_of(f, path, url, sizeof url);
    perform_on(f->u, url, body, headers, idle_ms, c, res);
}

#define NO_BODY ((agw_str){ NULL, 0 })

static void assert_view(agw_str v, const char *want)
{
    if (!v.ptr)
        fail_msg("header missing, want \"%s\"", want);
    if (v.len != strlen(want) || memcmp(v.ptr, want, v.len) != 0)
        fail_msg("got \"%.*s\", want \"%s\"", (int)v.len, v.ptr, want);
}

/* ======================================================================
 * Tests
 * ====================================================================== */

/* A handle made while http_proxy is set sends through that proxy, as
 * libcurl does on its own (agw_upstream_new skips the lookup only when no
 * proxy variable is set). */
static void test_proxy_from_environment(void **state)
{
    fixture *f = *state;
    char proxy[64];
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", f->s.port);
    setenv("http_proxy", proxy, 1);
    agw_upstream *u = agw_upstream_new();
    collect *c = new_collect(f);
    agw_upstream_result res;
    perform_on(u, "http://proxied.invalid/ok", NO_BODY, NULL, 5000, c, &res);
    unsetenv("http_proxy");
    if (res.outcome != AGW_UPSTREAM_DONE)
        fail_msg("through the proxy: outcome %d: %s", (int)res.outcome, res.detail);
    assert_int_equal(res.status, 200);
    assert_memory_equal(c->body.data, ok_body, strlen(ok_body));
    assert_string_equal(f->s.last.path, "http://proxied.invalid/ok");
    assert_non_null(strstr(f->s.last.head, "\r\nHost: proxied.invalid\r\n"));
    agw_upstream_free(u);
}

static void test_get_200_with_length(void **state)
{
    fixture *f = *state;
    collect *c = new_collect(f);
    agw_upstream_result res;
    static const char *const hdrs[] = { "Authorization: Bearer up-key", "X-Trace: t1", NULL };
    perform(f, "/ok", NO_BODY, hdrs, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.detail, "");
    assert_true(res.first_byte_us > 0);
    assert_int_equal(agw_upstream_status(f->u), 200);
    assert_int_equal(c->body.len, strlen(ok_body));
    assert_memory_equal(c->body.data, ok_body, c->body.len);
    /* Status and headers are known when the first body byte arrives. */
    assert_int_equal(c->status_at_first_data, 200);
    assert_int_equal(c->content_type_at_first_data, 1);

    /* Header lookup is case-insensitive and the value is trimmed. */
    assert_view(agw_upstream_header(f->u, AGW_STR_LIT("content-type")), "application/json");
    assert_view(agw_upstream_header(f->u, AGW_STR_LIT("CONTENT-TYPE")), "application/json");
    assert_view(agw_upstream_header(f->u, AGW_STR_LIT("x-custom")), "hello world");
    assert_view(agw_upstream_header(f->u, AGW_STR_LIT("Content-Length")), "20");
    agw_str missing = agw_upstream_header(f->u, AGW_STR_LIT("x-missing"));
    assert_null(missing.ptr);
    assert_int_equal(missing.len, 0);
    /* A prefix of a header name is not that header. */
    assert_null(agw_upstream_header(f->u, AGW_STR_LIT("x-custo")).ptr);

    /* Iteration in arrival order, then the end. */
    agw_str n, v;
    assert_int_equal(agw_upstream_header_at(f->u, 0, &n, &v), 1);
    assert_view(n, "Content-Type");
    assert_view(v, "application/json");
    assert_int_equal(agw_upstream_header_at(f->u, 1, &n, &v), 1);
    assert_view(n, "X-Custom");
    assert_int_equal(agw_upstream_header_at(f->u, 3, &n, &v), 1);
    assert_view(n, "Content-Length");
    assert_int_equal(agw_upstream_header_at(f->u, 4, &n, &v), 0);

    /* What the server received: a GET with our headers. */
    assert_string_equal(f->s.last.method, "GET");
    assert_string_equal(f->s.last.path, "/ok");
    assert_non_null(strstr(f->s.last.head, "\r\nAuthorization: Bearer up-key\r\n"));
    assert_non_null(strstr(f->s.last.head, "\r\nX-Trace: t1\r\n"));
    assert_int_equal(f->s.last.body_len, 0);
}

static void test_sse_chunked_stream(void **state)
{
    fixture *f = *state;
    collect *c = new_collect(f);
    agw_upstream_result res;
    perform(f, "/sse", AGW_STR_LIT("{}"), NULL, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    assert_int_equal(res.status, 200);
    /* The body is the events, byte for byte, with the chunk framing removed. */
    char want[256] = "";
    for (int i = 0; i < 3; i++)
        strcat(want, sse_events[i]);
    assert_int_equal(c->body.len, strlen(want));
    assert_memory_equal(c->body.data, want, c->body.len);
    /* Each event was sent only after the previous one reached on_data, so
     * they cannot all have come in one call: streaming, not buffering. */
    assert_true(c->calls >= 3);
    assert_view(agw_upstream_header(f->u, AGW_STR_LIT("content-type")), "text/event-stream");
}

static void test_429_with_headers(void **state)
{
    fixture *f = *state;
    collect *c = new_collect(f);
    agw_upstream_result res;
    perform(f, "/429", AGW_STR_LIT("{\"model\":\"x\"}"), NULL, 5000, c, &res);
    /* Any complete response is DONE; the status says the rest. */
    assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    assert_int_equal(res.status, 429);
    assert_int_equal(agw_upstream_status(f->u), 429);
    assert_view(agw_upstream_header(f->u, AGW_STR_LIT("Retry-After")), "7");
    assert_view(agw_upstream_header(f->u, AGW_STR_LIT("x-ratelimit-remaining-requests")), "0");
    assert_int_equal(c->body.len, strlen(rl_body));
    assert_memory_equal(c->body.data, rl_body, c->body.len);

    /* The next perform starts clean: no retry-after from the last answer. */
    c = new_collect(f);
    perform(f, "/ok", NO_BODY, NULL, 5000, c, &res);
    assert_int_equal(res.status, 200);
    assert_null(agw_upstream_header(f->u, AGW_STR_LIT("retry-after")).ptr);

    c = new_collect(f);
    perform(f, "/teapot", NO_BODY, NULL, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    assert_int_equal(res.status, 418);
    assert_int_equal(c->calls, 0);
}

static void test_reset_mid_body(void **state)
{
    fixture *f = *state;
    collect *c = new_collect(f);
    agw_upstream_result res;
    perform(f, "/reset", NO_BODY, NULL, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_BROKEN);
    assert_int_equal(res.status, 200);
    assert_true(res.detail[0] != '\0');
    /* What arrived before the reset was delivered, and nothing else. */
    assert_int_equal(c->body.len, 100);
    for (size_t i = 0; i < c->body.len; i++)
        assert_int_equal(c->body.data[i], 'r');

    /* The handle still works afterwards, on a new connection. */
    c = new_collect(f);
    perform(f, "/ok", NO_BODY, NULL, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    assert_int_equal(res.status, 200);
}

static void test_idle_timeout(void **state)
{
    fixture *f = *state;
    collect *c = new_collect(f);
    agw_upstream_result res;
    perform(f, "/hang", NO_BODY, NULL, 300, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_TIMEOUT);
    assert_int_equal(res.status, 0);
    assert_int_equal(res.first_byte_us, 0);
    assert_string_equal(res.detail, "no data from upstream for 300 ms");
    assert_int_equal(c->calls, 0);

    /* Reusable after a timeout, and the old state is gone. */
    c = new_collect(f);
    perform(f, "/ok", NO_BODY, NULL, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    assert_string_equal(res.detail, "");
}

static int stop_past_600ms(void *ud, uint64_t idle_ms)
{
    (void)ud;
    return idle_ms >= 600;
}

static void test_total_timeout(void **state)
{
    fixture *f = *state;
    collect *c = new_collect(f);
    agw_upstream_result res;
    char url[256];
    url_of(f, "/hang", url, sizeof url);
    agw_upstream_req rq = {
        .url = url,
        .connect_timeout_ms = 5000,
        .idle_timeout_ms = 0, /* only the total timeout applies */
        .total_timeout_ms = 300,
        .on_data = on_data,
        .ud = c,
    };
    agw_upstream_perform(f->u, &rq, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_TIMEOUT);
    assert_int_equal(res.status, 0);
    assert_true(res.detail[0] != '\0');

    /* The next request on the handle has no total timeout: it runs past
     * 300 ms until its own tick stops it. */
    rq.total_timeout_ms = 0;
    rq.on_tick = stop_past_600ms;
    agw_upstream_perform(f->u, &rq, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_STOPPED);
}

static void test_connect_refused(void **state)
{
    fixture *f = *state;
    /* A port that was just free: bound, never listened on, closed. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", ntohs(sa.sin_port));

    collect *c = new_collect(f);
    agw_upstream_req rq = {
        .url = url,
        .body = AGW_STR_LIT("{}"),
        .connect_timeout_ms = 2000,
        .idle_timeout_ms = 2000,
        .on_data = on_data,
        .on_tick = on_tick,
        .ud = c,
    };
    agw_upstream_result res;
    agw_upstream_perform(f->u, &rq, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_CONNECT);
    assert_int_equal(res.status, 0);
    assert_int_equal(agw_upstream_status(f->u), 0);
    assert_true(res.detail[0] != '\0');
    assert_int_equal(c->calls, 0);
}

static void test_on_data_stops(void **state)
{
    fixture *f = *state;
    collect *c = new_collect(f);
    c->stop_after_calls = 1;
    agw_upstream_result res;
    perform(f, "/sse", NO_BODY, NULL, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_STOPPED);
    assert_int_equal(res.status, 200);
    /* Stopped at once: no further data callbacks. */
    assert_int_equal(c->calls, 1);
    assert_memory_equal(c->body.data, sse_events[0], strlen(sse_events[0]));
}

static void test_on_tick_stops(void **state)
{
    fixture *f = *state;
    collect *c = new_collect(f);
    c->stop_at_tick = 1;
    agw_upstream_result res;
    /* The server never answers and the idle timeout is far away: only the
     * tick callback can end this. */
    perform(f, "/hang", NO_BODY, NULL, 60000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_STOPPED);
    assert_int_equal(c->ticks, 1);
    assert_int_equal(c->calls, 0);
    assert_true(c->last_idle_ms < 60000);
}

static void test_keepalive_reuse(void **state)
{
    fixture *f = *state;
    agw_upstream_result res;
    for (int i = 0; i < 3; i++) {
        collect *c = new_collect(f);
        perform(f, i == 1 ? "/429" : "/ok", i == 2 ? AGW_STR_LIT("{\"a\":1}") : NO_BODY, NULL, 5000,
                c, &res);
        assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    }
    /* Three requests, one TCP connection. */
    assert_int_equal(testsrv_get(&f->s, &f->s.requests), 3);
    assert_int_equal(testsrv_get(&f->s, &f->s.accepts), 1);
}

static void test_connection_close_not_reused(void **state)
{
    fixture *f = *state;
    /* The control for the test above: when the server says close, the next
     * request needs a new connection, and the count shows it. */
    agw_upstream_result res;
    collect *c = new_collect(f);
    perform(f, "/close", NO_BODY, NULL, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    c = new_collect(f);
    perform(f, "/ok", NO_BODY, NULL, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    assert_int_equal(testsrv_get(&f->s, &f->s.accepts), 2);
}

static void test_post_body_exact(void **state)
{
    fixture *f = *state;
    /* 2 MiB with NULs and every byte value: past libcurl's 1 MiB threshold
     * for Expect: 100-continue. */
    const size_t n = 2u << 20;
    char *body = malloc(n);
    assert_non_null(body);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)(i % 253);
    collect *c = new_collect(f);
    agw_upstream_result res;
    static const char *const hdrs[] = { "Content-Type: application/json", NULL };
    perform(f, "/echo", (agw_str){ body, n }, hdrs, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    assert_int_equal(res.status, 200);
    assert_string_equal(f->s.last.method, "POST");
    assert_int_equal(f->s.last.body_len, n);
    assert_memory_equal(f->s.last.body, body, n);
    assert_non_null(strcasestr(f->s.last.head, "\r\nContent-Length: 2097152\r\n"));
    assert_null(strcasestr(f->s.last.head, "\r\nExpect:"));
    assert_null(strcasestr(f->s.last.head, "100-continue"));
    free(body);

    /* A small body with NULs, and an empty (but non-NULL) body: still POSTs. */
    c = new_collect(f);
    perform(f, "/echo", AGW_STR_LIT("a\0b\0"), NULL, 5000, c, &res);
    assert_int_equal(f->s.last.body_len, 4);
    assert_memory_equal(f->s.last.body, "a\0b\0", 4);
    c = new_collect(f);
    perform(f, "/echo", (agw_str){ "", 0 }, NULL, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    assert_string_equal(f->s.last.method, "POST");
    assert_int_equal(f->s.last.body_len, 0);
    assert_non_null(strcasestr(f->s.last.head, "\r\nContent-Length: 0\r\n"));
}

static void test_requests_share_nothing(void **state)
{
    fixture *f = *state;
    /* One handle, requests that differ in method, headers and timeouts:
     * options are set once per handle and the rest every time, so each
     * request must look exactly as if it were the handle's first. */
    static const char *const ha[] = { "Content-Type: application/json", "X-One: 1", NULL };
    static const char *const hb[] = { "Content-Type: application/json", "X-Two: 2", NULL };
    static const char *const hc[] = { "Content-Type: application/json", NULL };
    struct {
        agw_str body;
        const char *const *headers;
        const char *method, *has, *lacks;
    } steps[] = {
        { AGW_STR_LIT("{\"a\":1}"), ha, "POST", "\r\nX-One: 1\r\n", "X-Two" },
        { AGW_STR_LIT("{\"a\":1}"), ha, "POST", "\r\nX-One: 1\r\n", "X-Two" },
        { NO_BODY, hb, "GET", "\r\nX-Two: 2\r\n", "X-One" },
        { AGW_STR_LIT("{\"b\":2}"), hb, "POST", "\r\nX-Two: 2\r\n", "X-One" },
        { AGW_STR_LIT("{}"), hc, "POST", "\r\nContent-Type: application/json\r\n", "X-T" },
        { NO_BODY, NULL, "GET", "\r\nHost: ", "Content-Type" },
        { AGW_STR_LIT("{\"c\":3}"), ha, "POST", "\r\nX-One: 1\r\n", "X-Two" },
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        collect *c = new_collect(f);
        agw_upstream_result res;
        perform(f, "/echo", steps[i].body, steps[i].headers, 5000, c, &res);
        assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
        assert_string_equal(f->s.last.method, steps[i].method);
        assert_non_null(strcasestr(f->s.last.head, steps[i].has));
        assert_null(strcasestr(f->s.last.head, steps[i].lacks));
        assert_null(strcasestr(f->s.last.head, "\r\nExpect:"));
        if (steps[i].body.ptr) {
            assert_int_equal(f->s.last.body_len, steps[i].body.len);
            assert_memory_equal(f->s.last.body, steps[i].body.ptr, steps[i].body.len);
        } else {
            assert_int_equal(f->s.last.body_len, 0);
            assert_null(strcasestr(f->s.last.head, "Content-Length"));
        }
    }
    /* Still one connection: setting options does not drop it. */
    assert_int_equal(testsrv_get(&f->s, &f->s.accepts), 1);
}

static void test_interim_response_headers_dropped(void **state)
{
    fixture *f = *state;
    collect *c = new_collect(f);
    agw_upstream_result res;
    perform(f, "/interim", NO_BODY, NULL, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    assert_int_equal(res.status, 201);
    assert_int_equal(agw_upstream_status(f->u), 201);
    /* Only the final response's headers remain. */
    assert_null(agw_upstream_header(f->u, AGW_STR_LIT("x-interim")).ptr);
    assert_view(agw_upstream_header(f->u, AGW_STR_LIT("x-final")), "2");
    assert_int_equal(c->body.len, 2);
}

static void test_no_body_response(void **state)
{
    fixture *f = *state;
    collect *c = new_collect(f);
    agw_upstream_result res;
    perform(f, "/204", NO_BODY, NULL, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    assert_int_equal(res.status, 204);
    assert_int_equal(c->calls, 0);
    assert_int_equal(res.first_byte_us, 0);
    assert_view(agw_upstream_header(f->u, AGW_STR_LIT("x-empty")), "yes");
}

static void test_bad_chunking(void **state)
{
    fixture *f = *state;
    collect *c = new_collect(f);
    agw_upstream_result res;
    perform(f, "/badchunk", NO_BODY, NULL, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_BROKEN);
    assert_int_equal(res.status, 200);
    assert_true(res.detail[0] != '\0');
    assert_int_equal(c->body.len, 0);
}

static void test_redirect_not_followed(void **state)
{
    fixture *f = *state;
    collect *c = new_collect(f);
    agw_upstream_result res;
    perform(f, "/redirect", NO_BODY, NULL, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    assert_int_equal(res.status, 302);
    assert_view(agw_upstream_header(f->u, AGW_STR_LIT("location")), "/ok");
    assert_int_equal(testsrv_get(&f->s, &f->s.requests), 1);
}

static void test_http10_until_close(void **state)
{
    fixture *f = *state;
    collect *c = new_collect(f);
    agw_upstream_result res;
    perform(f, "/http10", NO_BODY, NULL, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    assert_int_equal(res.status, 200);
    assert_int_equal(c->body.len, 11);
    assert_memory_equal(c->body.data, "until-close", 11);
}

static void test_only_http_schemes(void **state)
{
    fixture *f = *state;
    /* A file: URL (say, from a bad base_url) must never be read. */
    collect *c = new_collect(f);
    agw_upstream_req rq = {
        .url = "file:///etc/hostname",
        .connect_timeout_ms = 1000,
        .idle_timeout_ms = 1000,
        .on_data = on_data,
        .ud = c,
    };
    agw_upstream_result res;
    agw_upstream_perform(f->u, &rq, &res);
    assert_int_not_equal(res.outcome, AGW_UPSTREAM_DONE);
    assert_int_equal(c->calls, 0);
    assert_int_equal(res.status, 0);
}

static void test_gzip_decoded(void **state)
{
    fixture *f = *state;
    collect *c = new_collect(f);
    agw_upstream_result res;
    perform(f, "/gzip", NO_BODY, NULL, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    /* The client offered gzip, and on_data sees the decoded bytes. */
    assert_non_null(strcasestr(f->s.last.head, "\r\nAccept-Encoding: "));
    assert_non_null(strstr(strcasestr(f->s.last.head, "\r\nAccept-Encoding: "), "gzip"));
    static const char want[] = "{\"ok\":true,\"text\":\"gzip works\"}";
    assert_int_equal(c->body.len, sizeof want - 1);
    assert_memory_equal(c->body.data, want, sizeof want - 1);
}

static void test_many_headers(void **state)
{
    fixture *f = *state;
    collect *c = new_collect(f);
    agw_upstream_result res;
    perform(f, "/many", NO_BODY, NULL, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    assert_int_equal(c->body.len, 2);
    /* The first 64 headers are kept exactly; later ones are dropped. */
    agw_str n, v;
    size_t count = 0;
    while (agw_upstream_header_at(f->u, count, &n, &v)) {
        char wn[16], wv[16];
        snprintf(wn, sizeof wn, "X-H%lu", (unsigned long)count);
        snprintf(wv, sizeof wv, "v%lu", (unsigned long)count);
        assert_view(n, wn);
        assert_view(v, wv);
        count++;
    }
    assert_int_equal(count, 64);
    assert_view(agw_upstream_header(f->u, AGW_STR_LIT("x-h63")), "v63");
    assert_null(agw_upstream_header(f->u, AGW_STR_LIT("x-h64")).ptr);
}

/* Headers past the 64 KiB header buffer. Kept last because a regression
 * makes ASan abort the process: a failed append frees the buffer (agw_buf's
 * cap rule) while n_headers and the saved offsets stay, later headers land at
 * offset 0 again and the old offsets point past the new, smaller allocation
 * (fixed in on_header by checking the room before appending). Whatever is
 * kept must be genuine. */
static void test_header_bytes_cap(void **state)
{
    fixture *f = *state;
    collect *c = new_collect(f);
    agw_upstream_result res;
    perform(f, "/bigheaders", NO_BODY, NULL, 5000, c, &res);
    assert_int_equal(res.outcome, AGW_UPSTREAM_DONE);
    assert_int_equal(res.status, 200);
    /* The body still flows. */
    assert_int_equal(c->body.len, 2);
    assert_memory_equal(c->body.data, "ok", 2);
    /* Every header reported is one the server sent, with its exact value. */
    agw_str n, v;
    for (size_t i = 0; agw_upstream_header_at(f->u, i, &n, &v); i++) {
        if (agw_str_eq(n, AGW_STR_LIT("Content-Type"))) {
            assert_view(v, "text/plain");
            continue;
        }
        /* Small headers after the big ones may or may not fit: either way
         * they must be intact. */
        if (agw_str_eq(n, AGW_STR_LIT("X-Late"))) {
            assert_view(v, "yes");
            continue;
        }
        if (agw_str_eq(n, AGW_STR_LIT("Content-Length"))) {
            assert_view(v, "2");
            continue;
        }
        int k = -1;
        if (n.len == 6 && memcmp(n.ptr, "X-Big", 5) == 0 && n.ptr[5] >= '0' && n.ptr[5] <= '9')
            k = n.ptr[5] - '0';
        if (k < 0)
            fail_msg("unexpected header #%lu name \"%.*s\"", (unsigned long)i, (int)n.len, n.ptr);
        assert_int_equal(v.len, BIG_HEADER_LEN);
        for (size_t j = 0; j < v.len; j++)
            if (v.ptr[j] != 'a' + k)
                fail_msg("header X-Big%d value corrupted at byte %lu", k, (unsigned long)j);
    }
    /* Headers before the cap are still there. */
    assert_view(agw_upstream_header(f->u, AGW_STR_LIT("content-type")), "text/plain");
    agw_str big0 = agw_upstream_header(f->u, AGW_STR_LIT("x-big0"));
    assert_non_null(big0.ptr);
    assert_int_equal(big0.len, BIG_HEADER_LEN);
}

static int global_setup(void **state)
{
    (void)state;
    return agw_upstream_global_init() == AGW_OK ? 0 : -1;
}

static int global_teardown(void **state)
{
    (void)state;
    curl_global_cleanup();
    return 0;
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_get_200_with_length),
        T(test_sse_chunked_stream),
        T(test_429_with_headers),
        T(test_reset_mid_body),
        T(test_idle_timeout),
        T(test_total_timeout),
        T(test_connect_refused),
        T(test_on_data_stops),
        T(test_on_tick_stops),
        T(test_keepalive_reuse),
        T(test_connection_close_not_reused),
        T(test_post_body_exact),
        T(test_requests_share_nothing),
    T(test_interim_response_headers_dropped),
        T(test_no_body_response),
        T(test_bad_chunking),
        T(test_redirect_not_followed),
        T(test_http10_until_close),
        T(test_only_http_schemes),
        T(test_gzip_decoded),
        T(test_proxy_from_environment),
        T(test_many_headers),
        T(test_header_bytes_cap),
    };
#undef T
    return cmocka_run_group_tests(tests, global_setup, global_teardown);
}

/* Unit tests for lib/relay: an upstream call relayed to a fake client sink,
 * against a small HTTP/1.1 server that runs in a thread of this test on
 * 127.0.0.1. Streams byte-exact, broken streams ending in an error event in
 * the client's protocol, error statuses, timeouts, a departed client, the
 * early SSE commit, the response-header allow list, and the hooks tenant
 * mode uses (the usage tap, hold_final, own x-ratelimit-* headers), and a
 * binary stream through a codec that reads bytes (Kiro's: converted, and a
 * throttling exception before any output failed over or answered as 429). */
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

/* The module itself, so the tests reach its file-local functions. */
#include "net/relay.c"
#include "core/eventstream.h"
#include "proto/bridge.h"
#include "testsrv.h"

/* ======================================================================
 * Canned upstream answers for the relay.
 * ====================================================================== */

static const char *const oa_events[] = {
    "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
    "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"lo \\u00e9\"}}]}\n\n",
    ": keep-alive comment\n\ndata: {\"id\":\"c1\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    "data: [DONE]\n\n",
};
static const char *const an_events[] = {
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\"}}\n\n",
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"Hi\"}}\r\n\r\n",
    "event: ping\ndata: {\"type\": \"ping\"}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
};
static const char json_body[] =
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":[{\"message\":"
    "{\"role\":\"assistant\",\"content\":\"Hi \\\"there\\\"\"}}],\"usage\":{\"total_tokens\":3}}";
static const char rl_error[] =
    "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"rate_limit_error\",\"param\":null,"
    "\"code\":\"rate_limit_exceeded\"}}";
static const char oa_err_event[] =
    "data: {\"error\":{\"message\":\"model overloaded\",\"type\":\"server_error\"}}\n\n";
static const char an_err_event[] =
    "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
    "\"message\":\"Overloaded\"}}\n\n";

#define SSE_HEAD                                                                       \
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"            \
    "Transfer-Encoding: chunked\r\nx-request-id: req-1\r\nSet-Cookie: sid=secret\r\n"  \
    "X-RateLimit-Remaining-Tokens: 99\r\nopenai-processing-ms: 12\r\n\r\n"

/* Sends the events one chunk each, each after the sink has written the
 * previous one (the sink bumps `progress` per write). */
static int stream_events(testsrv *s, int fd, const char *const *ev, int n, int end_chunked)
{
    int base = testsrv_get(s, &s->progress);
    for (int i = 0; i < n; i++) {
        if (i && !testsrv_wait_field_or_close(s, fd, &s->progress, base + i))
            return TESTSRV_CLOSE;
        if (testsrv_send_chunk(fd, ev[i]))
            return TESTSRV_CLOSE;
    }
    if (!end_chunked)
        return TESTSRV_KEEP;
    return testsrv_send_str(fd, "0\r\n\r\n") ? TESTSRV_CLOSE : TESTSRV_KEEP;
}

static int send_response(int fd, int status, const char *reason, const char *ct, const char *extra,
                         const char *body, size_t len)
{
    char head[1024];
    snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%sContent-Length: %lu\r\n\r\n",
             status, reason, ct, extra, (unsigned long)len);
    return testsrv_send_str(fd, head) || testsrv_send_all(fd, body, len) ? TESTSRV_CLOSE : TESTSRV_KEEP;
}

static char *join(const char *const *parts, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += strlen(parts[i]);
    char *s = malloc(len + 1);
    s[0] = '\0';
    for (int i = 0; i < n; i++)
        strcat(s, parts[i]);
    return s;
}

/* One AWS event-stream frame (Kiro's answers), appended to b. */
static void kiro_frame(agw_buf *b, const char *type_header, const char *type, const char *msg_type,
                       const char *payload)
{
    agw_es_header h[2] = { { agw_str_c(type_header), AGW_ES_STRING, 0, agw_str_c(type) },
                           { AGW_STR_LIT(":message-type"), AGW_ES_STRING, 0, agw_str_c(msg_type) } };
    if (agw_es_encode(b, h, 2, agw_str_c(payload)) != AGW_OK)
        abort();
}

/* /kiro/text: two text events; /kiro/throttled: a throttling exception
 * before anything else. Binary, sent in 5-byte chunks. */
static int kiro_answer(int fd, const char *path)
{
    agw_buf b = AGW_BUF_INIT(1u << 20);
    if (strcmp(path, "/kiro/throttled") == 0) {
        kiro_frame(&b, ":exception-type", "ThrottlingException", "exception",
                   "{\"message\":\"slow down\"}");
    } else {
        kiro_frame(&b, ":event-type", "assistantResponseEvent", "event", "{\"content\":\"Hel\"}");
        kiro_frame(&b, ":event-type", "assistantResponseEvent", "event", "{\"content\":\"lo\"}");
    }
    int ret = testsrv_send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: "
                                   "application/vnd.amazon.eventstream\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t i = 0; !ret && i < b.len; i += 5) {
        char chunk[64];
        size_t n = b.len - i < 5 ? b.len - i : 5;
        snprintf(chunk, sizeof chunk, "%zx\r\n", n);
        ret = testsrv_send_str(fd, chunk) || testsrv_send_all(fd, b.data + i, n) ||
              testsrv_send_str(fd, "\r\n");
    }
    if (!ret)
        ret = testsrv_send_str(fd, "0\r\n\r\n");
    agw_buf_free(&b);
    return ret ? TESTSRV_CLOSE : TESTSRV_KEEP;
}

static int handle(testsrv *s, int fd, const testsrv_req *rq)
{
    const char *p = rq->path;
    if (strncmp(p, "/kiro/", 6) == 0)
        return kiro_answer(fd, p);
    if (!strcmp(p, "/oa-stream")) {
        if (testsrv_send_str(fd, SSE_HEAD))
            return TESTSRV_CLOSE;
        return stream_events(s, fd, oa_events, 4, 1);
    }
    if (!strcmp(p, "/an-stream")) {
        if (testsrv_send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                 "Transfer-Encoding: chunked\r\nrequest-id: req-an\r\n"
                                 "anthropic-ratelimit-tokens-remaining: 5000\r\n\r\n"))
            return TESTSRV_CLOSE;
        return stream_events(s, fd, an_events, 5, 1);
    }
    if (!strcmp(p, "/oa-nodone") || !strcmp(p, "/an-nodone")) {
        /* A cleanly ended HTTP response whose stream lacks its final event. */
        if (testsrv_send_str(fd, SSE_HEAD))
            return TESTSRV_CLOSE;
        return p[1] == 'o' ? stream_events(s, fd, oa_events, 3, 1) : stream_events(s, fd, an_events, 4, 1);
    }
    if (!strcmp(p, "/oa-own-error") || !strcmp(p, "/an-own-error")) {
        /* The upstream ends the stream with its own error event. */
        const char *ev[2] = { p[1] == 'o' ? oa_events[0] : an_events[0],
                              p[1] == 'o' ? oa_err_event : an_err_event };
        if (testsrv_send_str(fd, SSE_HEAD))
            return TESTSRV_CLOSE;
        return stream_events(s, fd, ev, 2, 1);
    }
    if (!strcmp(p, "/oa-reset")) {
        int base = testsrv_get(s, &s->progress);
        if (testsrv_send_str(fd, SSE_HEAD) || stream_events(s, fd, oa_events, 2, 0) != TESTSRV_KEEP)
            return TESTSRV_CLOSE;
        /* Once both events were written to the client: the reset. */
        testsrv_wait_field_or_close(s, fd, &s->progress, base + 2);
        return testsrv_close_with_reset(fd);
    }
    if (!strcmp(p, "/oa-partial-end")) {
        /* One whole event, then half of the next, then a clean end of the
         * HTTP response: the stream was cut inside an event. */
        static const char *const ev[2] = { "data: {\"id\":\"c1\",\"n\":1}\n\n", "data: {\"id\":\"c1\",\"n\":2" };
        if (testsrv_send_str(fd, SSE_HEAD))
            return TESTSRV_CLOSE;
        return stream_events(s, fd, ev, 2, 1);
    }
    if (!strcmp(p, "/oa-huge-event")) {
        /* A single event line that never ends: 5 MiB, past the 4 MiB limit. */
        if (testsrv_send_str(fd, SSE_HEAD) || testsrv_send_chunk(fd, "data: "))
            return TESTSRV_CLOSE;
        char *blk = malloc(65536 + 1);
        memset(blk, 'x', 65536);
        blk[65536] = '\0';
        for (int i = 0; i < 80; i++)
            if (testsrv_send_chunk(fd, blk))
                break;
        free(blk);
        testsrv_wait_peer_close(s, fd);
        return TESTSRV_CLOSE;
    }
    if (!strcmp(p, "/evil-header")) {
        /* A bare CR inside a header line, after an allowed name prefix. */
        return send_response(fd, 200, "OK", "application/json",
                             "x-ratelimit-a\rSet-Cookie: evil=1\r\nx-request-id: ok\r\n", "{}", 2);
    }
    if (!strcmp(p, "/odd-header-names")) {
        /* Header names libcurl passes on but that are not tokens. */
        return send_response(fd, 200, "OK", "application/json",
                             "x-ratelimit-a b: 1\r\nx-ratelimit-\xc3\xa9: 2\r\n"
                             "x-ratelimit-(x): 3\r\nx-request-id: ok\r\n", "{}", 2);
    }
    if (!strcmp(p, "/endless")) {
        if (testsrv_send_str(fd, SSE_HEAD))
            return TESTSRV_CLOSE;
        int base = testsrv_get(s, &s->progress);
        for (int i = 0; i < 1000; i++) {
            if (i && !testsrv_wait_field_or_close(s, fd, &s->progress, base + i))
                return TESTSRV_CLOSE;
            if (testsrv_send_chunk(fd, oa_events[0])) {
                testsrv_set_peer_gone(s);
                return TESTSRV_CLOSE;
            }
        }
        return TESTSRV_CLOSE;
    }
    if (!strcmp(p, "/401") || !strcmp(p, "/403"))
        return send_response(fd, p[3] == '1' ? 401 : 403, "No", "application/json",
                             "x-request-id: r4\r\n",
                             "{\"error\":{\"message\":\"Incorrect API key provided: sk-live-SECRET\"}}",
                             63);
    if (!strcmp(p, "/oa-stream-at-once")) {
        /* The whole stream in one chunk, for a client that writes nothing
         * until the end (a folded answer). */
        char *all = join(oa_events, 4);
        int ret = testsrv_send_str(fd, SSE_HEAD) || testsrv_send_chunk(fd, all) ||
                          testsrv_send_str(fd, "0\r\n\r\n")
                      ? TESTSRV_CLOSE
                      : TESTSRV_KEEP;
        free(all);
        return ret;
    }
    if (!strcmp(p, "/oa-usage-stream")) {
        /* An OpenAI stream with the usage chunk the gateway asked for. */
        static const char *const ev[] = {
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
            "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\r\n\r\n",
            "data: [DONE]\n\n",
        };
        if (testsrv_send_str(fd, SSE_HEAD))
            return TESTSRV_CLOSE;
        return stream_events(s, fd, ev, 3, 1);
    }
    if (!strcmp(p, "/json"))
        return send_response(fd, 200, "OK", "application/json", "x-request-id: r2\r\nServer: up\r\n",
                             json_body, strlen(json_body));
    if (!strcmp(p, "/garbage"))
        return send_response(fd, 200, "OK", "text/html", "", "<html>upstream broke</html>", 27);
    if (!strcmp(p, "/429"))
        return send_response(fd, 429, "Too Many Requests", "application/json",
                             "retry-after: 7\r\nx-ratelimit-reset-requests: 1s\r\nSet-Cookie: a=b\r\n",
                             rl_error, strlen(rl_error));
    if (!strcmp(p, "/500html"))
        return send_response(fd, 500, "Internal Server Error", "text/html", "retry-after: 3\r\n",
                             "<html>oops \"bad\"</html>", 23);
    if (!strcmp(p, "/503long")) {
        char body[300];
        memset(body, 'x', sizeof body);
        return send_response(fd, 503, "Service Unavailable", "text/plain", "", body, sizeof body);
    }
    if (!strcmp(p, "/500json-noerror"))
        return send_response(fd, 500, "Internal Server Error", "application/json", "",
                             "{\"detail\":\"no\"}", 15);
    if (!strcmp(p, "/hang")) {
        testsrv_wait_peer_close(s, fd);
        return TESTSRV_CLOSE;
    }
    if (!strncmp(p, "/late-", 6)) {
        /* Silent until the client got its head (the sink bumps `heads`), then
         * answers: /late-500, /late-sse, /late-json, /late-ping (waits for a
         * ping to be written too, then streams). */
        int need_writes = !strcmp(p, "/late-ping") ? 2 : 0;
        if (!testsrv_wait_field_or_close(s, fd, &s->heads, 1) ||
            !testsrv_wait_field_or_close(s, fd, &s->progress, need_writes))
            return TESTSRV_CLOSE;
        if (!strcmp(p, "/late-500"))
            return send_response(fd, 500, "Internal Server Error", "text/html", "", "<html>down</html>",
                                 17);
        if (!strcmp(p, "/late-json"))
            return send_response(fd, 200, "OK", "application/json", "", json_body, strlen(json_body));
        if (testsrv_send_str(fd, SSE_HEAD))
            return TESTSRV_CLOSE;
        return stream_events(s, fd, oa_events, 4, 1);
    }
    testsrv_send_str(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    return TESTSRV_KEEP;
}

/* ======================================================================
 * The fake client sink.
 * ====================================================================== */

typedef struct {
    testsrv *s;
    int heads, status;
    char ct[128];
    agw_buf head_lines;
    agw_buf out;
    int writes, write_attempts, writes_before_head, flushes;
    int fail_after_writes; /* this many writes succeed, then the client is gone; -1 never */
    int departed;          /* gone() answers this */
    int gone_calls;
} sink_rec;

static agw_err sink_head(void *ud, int status, const char *ct, agw_str headers)
{
    sink_rec *k = ud;
    k->heads++;
    k->status = status;
    snprintf(k->ct, sizeof k->ct, "%s", ct);
    agw_buf_reset(&k->head_lines);
    if (agw_buf_append_str(&k->head_lines, headers))
        return AGW_ETOOBIG;
    testsrv_bump_heads(k->s);
    return k->departed ? AGW_EPEER : AGW_OK;
}

static agw_err sink_write(void *ud, const char *p, size_t n)
{
    sink_rec *k = ud;
    k->write_attempts++;
    if (!k->heads)
        k->writes_before_head++;
    if (k->departed)
        return AGW_EPEER;
    if (k->fail_after_writes >= 0 && k->writes >= k->fail_after_writes) {
        k->departed = 1;
        return AGW_EPEER;
    }
    if (agw_buf_append(&k->out, p, n))
        return AGW_ETOOBIG;
    k->writes++;
    testsrv_bump(k->s);
    return AGW_OK;
}

static agw_err sink_flush(void *ud)
{
    sink_rec *k = ud;
    k->flushes++;
    return k->departed ? AGW_EPEER : AGW_OK;
}

static int sink_gone(void *ud)
{
    sink_rec *k = ud;
    k->gone_calls++;
    return k->departed;
}

/* ======================================================================
 * Fixture.
 * ====================================================================== */

typedef struct {
    testsrv s;
    agw_upstream *u;
    sink_rec k;
    agw_relay_sink sink;
    agw_relay_req rq;
    char url[256];
    agw_relay_result res;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || testsrv_start(&f->s, handle) != 0)
        return -1;
    f->u = agw_upstream_new();
    f->k.s = &f->s;
    f->k.fail_after_writes = -1;
    agw_buf_init(&f->k.head_lines, 1u << 20);
    agw_buf_init(&f->k.out, 64u << 20);
    f->sink = (agw_relay_sink){ &f->k, sink_head, sink_write, sink_flush, sink_gone };
    f->rq.proto = AGW_PROTO_OPENAI;
    f->rq.url = f->url;
    f->rq.body = AGW_STR_LIT("{\"model\":\"m\",\"stream\":true}");
    f->rq.connect_timeout_ms = 5000;
    f->rq.idle_timeout_ms = 10000;
    f->rq.response_headers = AGW_STR_LIT("Access-Control-Allow-Origin: *\r\n");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    agw_upstream_free(f->u);
    testsrv_stop(&f->s);
    agw_buf_free(&f->k.head_lines);
    agw_buf_free(&f->k.out);
    free(f);
    return 0;
}

static void run(fixture *f, const char *path)
{
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d%s", f->s.port, path);
    agw_relay_run(f->u, &f->rq, &f->sink, &f->res);
}

static void assert_bytes(agw_str got, const char *want, size_t wantlen)
{
    if (got.len != wantlen || memcmp(got.ptr, want, wantlen) != 0)
        fail_msg("got  [%.*s] (%lu bytes)\nwant [%.*s] (%lu bytes)", (int)got.len, got.ptr,
                 (unsigned long)got.len, (int)wantlen, want, (unsigned long)wantlen);
}

static void assert_out(fixture *f, const char *want)
{
    assert_bytes(agw_buf_view(&f->k.out), want, strlen(want));
}

static void assert_head(fixture *f, int status, const char *ct, const char *lines)
{
    assert_int_equal(f->k.heads, 1);
    assert_int_equal(f->k.status, status);
    assert_string_equal(f->k.ct, ct);
    assert_bytes(agw_buf_view(&f->k.head_lines), lines, strlen(lines));
    assert_int_equal(f->k.writes_before_head, 0);
}

/* The output must be `prefix`, then text we cannot predict (libcurl's words
 * for a failure), then `suffix`. */
static void assert_out_around(fixture *f, const char *prefix, const char *suffix)
{
    agw_str o = agw_buf_view(&f->k.out);
    size_t pl = strlen(prefix), sl = strlen(suffix);
    if (o.len < pl + sl || memcmp(o.ptr, prefix, pl) != 0 || memcmp(o.ptr + o.len - sl, suffix, sl) != 0)
        fail_msg("got [%.*s]\nwant [%s...%s]", (int)o.len, o.ptr, prefix, suffix);
    /* The middle is one JSON string's content: no raw quote or newline. */
    for (size_t i = pl; i < o.len - sl; i++)
        if (o.ptr[i] == '\n' || (o.ptr[i] == '"' && o.ptr[i - 1] != '\\'))
            fail_msg("unescaped byte in the error message: [%.*s]", (int)o.len, o.ptr);
}


#define SSE_CT "text/event-stream; charset=utf-8"
#define CORS "Access-Control-Allow-Origin: *\r\n"
#define SSE_LINES CORS "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n"
#define OA_PASSED "x-request-id: req-1\r\nX-RateLimit-Remaining-Tokens: 99\r\nopenai-processing-ms: 12\r\n"
#define OA_TRUNC_EVENT                                                                            \
    "data: {\"error\":{\"message\":\"upstream stream ended before its final event\","             \
    "\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n"
#define AN_TRUNC_EVENT                                                                            \
    "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\","                  \
    "\"message\":\"upstream stream ended before its final event\"}}\n\n"

/* ======================================================================
 * Tests
 * ====================================================================== */

static void test_openai_stream_passthrough(void **state)
{
    fixture *f = *state;
    f->rq.stream = 1;
    run(f, "/oa-stream");
    char *want = join(oa_events, 4);
    assert_out(f, want);
    assert_head(f, 200, SSE_CT, SSE_LINES OA_PASSED);
    assert_int_equal(f->res.status, 200);
    assert_int_equal(f->res.streamed, 1);
    assert_int_equal(f->res.complete, 1);
    assert_int_equal(f->res.client_gone, 0);
    assert_int_equal(f->res.outcome, AGW_UPSTREAM_DONE);
    assert_int_equal(f->res.events, 4);
    assert_int_equal(f->res.bytes_out, strlen(want));
    /* Flushed at every event (each came in its own chunk), not at the end only. */
    assert_true(f->k.flushes >= (int)f->res.events);
    /* The request went upstream unchanged. */
    assert_string_equal(f->s.last.method, "POST");
    assert_int_equal(f->s.last.body_len, f->rq.body.len);
    assert_memory_equal(f->s.last.body, f->rq.body.ptr, f->rq.body.len);
    free(want);
}

static void test_anthropic_stream_passthrough(void **state)
{
    fixture *f = *state;
    f->rq.proto = AGW_PROTO_ANTHROPIC;
    f->rq.stream = 1;
    f->rq.response_headers = (agw_str){ NULL, 0 };
    run(f, "/an-stream");
    char *want = join(an_events, 5);
    assert_out(f, want);
    assert_head(f, 200, SSE_CT,
                "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nrequest-id: req-an\r\n"
                "anthropic-ratelimit-tokens-remaining: 5000\r\n");
    assert_int_equal(f->res.complete, 1);
    assert_int_equal(f->res.events, 5);
    assert_true(f->k.flushes >= (int)f->res.events);
    free(want);
}

static void test_stream_without_final_event(void **state)
{
    fixture *f = *state;
    f->rq.stream = 1;
    run(f, "/oa-nodone");
    char *events = join(oa_events, 3);
    agw_buf want = AGW_BUF_INIT(1u << 20);
    assert_int_equal(agw_buf_appendf(&want, "%s%s", events, OA_TRUNC_EVENT), AGW_OK);
    assert_out(f, want.data);
    assert_int_equal(f->res.status, 200);
    assert_int_equal(f->res.complete, 0);
    assert_int_equal(f->res.outcome, AGW_UPSTREAM_DONE);
    agw_buf_free(&want);
    free(events);
}

static void test_anthropic_stream_without_message_stop(void **state)
{
    fixture *f = *state;
    f->rq.proto = AGW_PROTO_ANTHROPIC;
    f->rq.stream = 1;
    run(f, "/an-nodone");
    char *events = join(an_events, 4);
    agw_buf want = AGW_BUF_INIT(1u << 20);
    assert_int_equal(agw_buf_appendf(&want, "%s%s", events, AN_TRUNC_EVENT), AGW_OK);
    assert_out(f, want.data);
    assert_int_equal(f->res.complete, 0);
    agw_buf_free(&want);
    free(events);
}

static void test_stream_with_upstream_error_event(void **state)
{
    fixture *f = *state;
    /* The upstream's own error event already tells the client: no second one. */
    f->rq.stream = 1;
    run(f, "/oa-own-error");
    agw_buf want = AGW_BUF_INIT(1u << 20);
    assert_int_equal(agw_buf_appendf(&want, "%s%s", oa_events[0], oa_err_event), AGW_OK);
    assert_out(f, want.data);
    assert_int_equal(f->res.complete, 0);
    agw_buf_free(&want);
}

static void test_anthropic_stream_with_upstream_error_event(void **state)
{
    fixture *f = *state;
    f->rq.proto = AGW_PROTO_ANTHROPIC;
    f->rq.stream = 1;
    run(f, "/an-own-error");
    agw_buf want = AGW_BUF_INIT(1u << 20);
    assert_int_equal(agw_buf_appendf(&want, "%s%s", an_events[0], an_err_event), AGW_OK);
    assert_out(f, want.data);
    assert_int_equal(f->res.complete, 0);
    agw_buf_free(&want);
}

static void test_stream_reset_mid_stream(void **state)
{
    fixture *f = *state;
    f->rq.stream = 1;
    run(f, "/oa-reset");
    agw_buf prefix = AGW_BUF_INIT(1u << 20);
    assert_int_equal(agw_buf_appendf(&prefix, "%s%s%s", oa_events[0], oa_events[1],
                                     "data: {\"error\":{\"message\":\"upstream connection broken: "),
                     AGW_OK);
    assert_out_around(f, prefix.data, "\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n");
    assert_int_equal(f->res.outcome, AGW_UPSTREAM_BROKEN);
    assert_int_equal(f->res.status, 200);
    assert_int_equal(f->res.complete, 0);
    assert_int_equal(f->res.client_gone, 0);
    assert_true(f->k.flushes >= 3); /* the error event was flushed too */
    agw_buf_free(&prefix);
}

/* Finds `ev` at the end of the output and checks that what comes before it
 * ends an event (a blank line), so a client's SSE parser sees the error as an
 * event of its own rather than glued onto an unfinished line. */
static void assert_ends_with_separate_event(fixture *f, const char *ev)
{
    agw_str o = agw_buf_view(&f->k.out);
    size_t el = strlen(ev);
    if (o.len < el || memcmp(o.ptr + o.len - el, ev, el) != 0)
        fail_msg("output does not end with the error event: [%.*s]", (int)(o.len < 400 ? o.len : 400),
                 o.ptr + (o.len < 400 ? 0 : o.len - 400));
    size_t before = o.len - el;
    if (before == 0)
        return;
    const char *b = o.ptr + before;
    int blank = (before >= 2 && b[-1] == '\n' && (b[-2] == '\n' || b[-2] == '\r')) ||
                (before >= 2 && b[-1] == '\r' && b[-2] == '\r');
    if (!blank) {
        size_t from = before < 60 ? 0 : before - 60;
        fail_msg("the error event is glued to an unfinished event: [...%.*s]", (int)(before - from + 30),
                 o.ptr + from);
    }
}

static void test_stream_cut_inside_event(void **state)
{
    fixture *f = *state;
    f->rq.stream = 1;
    run(f, "/oa-partial-end");
    assert_int_equal(f->res.status, 200);
    assert_int_equal(f->res.complete, 0);
    /* The whole first event went through as it was. */
    static const char first[] = "data: {\"id\":\"c1\",\"n\":1}\n\n";
    assert_true(f->k.out.len > strlen(first));
    assert_memory_equal(f->k.out.data, first, strlen(first));
    /* The stream ends with the error event, and it must be parseable as one:
     * written right after the half event ("data: {...\"n\":2"), it would
     * become part of that event's data line. */
    assert_ends_with_separate_event(f, OA_TRUNC_EVENT);
}

static void test_stream_event_over_limit(void **state)
{
    fixture *f = *state;
    f->rq.stream = 1;
    run(f, "/oa-huge-event");
    assert_int_equal(f->res.outcome, AGW_UPSTREAM_STOPPED);
    assert_int_equal(f->res.client_gone, 0);
    assert_int_equal(f->res.status, 200);
    assert_int_equal(f->res.complete, 0);
    assert_string_equal(f->res.detail, "upstream SSE event over 4194304 bytes");
    static const char ev[] = "data: {\"error\":{\"message\":\"upstream SSE event over 4194304 bytes\","
                             "\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n";
    agw_str o = agw_buf_view(&f->k.out);
    /* Only whole events reach the client: the unfinished huge one is held
     * back and dropped, so the error event is all there is. */
    assert_int_equal(o.len, strlen(ev));
    assert_memory_equal(o.ptr, ev, strlen(ev));
    /* The relay stopped near the limit, not after the whole 5 MiB. */
    assert_true(o.len < (4u << 20) + (256u << 10));
}

static void test_nonstream_json(void **state)
{
    fixture *f = *state;
    run(f, "/json");
    assert_out(f, json_body);
    assert_head(f, 200, "application/json", CORS "x-request-id: r2\r\n");
    assert_int_equal(f->res.status, 200);
    assert_int_equal(f->res.streamed, 0);
    assert_int_equal(f->res.complete, 1);
    assert_int_equal(f->res.bytes_out, strlen(json_body));
    assert_int_equal(f->res.events, 0);
}

/* The answer is held under the request's memory budget: with no room for it
 * the client gets 503 in its shape, and the budget is whole again after. */
static void test_answer_over_the_memory_budget(void **state)
{
    fixture *f = *state;
    agw_budget b = { 0 };
    agw_budget_set_limit(&b, 64); /* less than the first allocation */
    f->rq.budget = &b;
    run(f, "/json");
    assert_int_equal(f->k.status, 503);
    agw_str o = agw_buf_view(&f->k.out);
    assert_non_null(memmem(o.ptr, o.len, "max_memory_bytes", 16));
    assert_true(agw_str_starts(o, AGW_STR_LIT("{\"error\":{"))); /* OpenAI's shape */
    assert_int_equal(f->res.complete, 0);
    assert_int_equal(agw_budget_used(&b), 0);
}

/* A converted answer too: its body and its conversion are both held. */
static void test_converted_answer_over_the_memory_budget(void **state)
{
    fixture *f = *state;
    agw_budget b = { 0 };
    agw_budget_set_limit(&b, 300); /* the upstream body fits, its conversion not */
    agw_bridge *br = agw_bridge_new(AGW_PROTO_ANTHROPIC, AGW_PROTO_OPENAI, 0, 0,
                                    AGW_STR_LIT("m"), 7);
    f->rq.proto = AGW_PROTO_ANTHROPIC;
    f->rq.codec = agw_bridge_codec(br);
    f->rq.budget = &b;
    run(f, "/json");
    assert_int_equal(f->k.status, 503);
    agw_str o = agw_buf_view(&f->k.out);
    /* Anthropic's shape */
    assert_true(agw_str_starts(
        o, AGW_STR_LIT("{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"")));
    assert_int_equal(agw_budget_used(&b), 0);
    agw_bridge_free(br);
}

/* The usage tap sees every upstream event (and a non-streamed body) as sent. */
typedef struct {
    int events, bodies;
    char last_data[256];
    size_t body_len;
} tap_rec;

static void tap_event(void *ud, agw_str name, agw_str data)
{
    tap_rec *t = ud;
    (void)name;
    t->events++;
    snprintf(t->last_data, sizeof t->last_data, "%.*s", (int)data.len, data.ptr);
}

static void tap_body(void *ud, agw_str body)
{
    tap_rec *t = ud;
    t->bodies++;
    t->body_len = body.len;
}

/* hold_final: the chunk with [DONE] is written but not flushed (the caller
 * flushes it after committing the usage record); own_ratelimit_headers drops
 * the upstream's x-ratelimit-* lines. */
static void test_tap_hold_final_and_own_ratelimit(void **state)
{
    fixture *f = *state;
    tap_rec t;
    memset(&t, 0, sizeof t);
    agw_relay_tap tap = { &t, tap_event, tap_body };
    f->rq.stream = 1;
    f->rq.tap = &tap;
    f->rq.hold_final = 1;
    f->rq.own_ratelimit_headers = 1;
    run(f, "/oa-stream");
    char *want = join(oa_events, 4);
    assert_out(f, want); /* every byte written, unchanged */
    free(want);
    assert_int_equal(f->res.complete, 1);
    assert_int_equal(t.events, 4);
    assert_string_equal(t.last_data, "[DONE]");
    assert_int_equal(t.bodies, 0);
    assert_int_equal(f->k.flushes, 3); /* each chunk but the last */
    assert_head(f, 200, SSE_CT,
                SSE_LINES "x-request-id: req-1\r\nopenai-processing-ms: 12\r\n");
}

static void test_tap_sees_a_json_body(void **state)
{
    fixture *f = *state;
    tap_rec t;
    memset(&t, 0, sizeof t);
    agw_relay_tap tap = { &t, tap_event, tap_body };
    f->rq.tap = &tap;
    run(f, "/json");
    assert_out(f, json_body);
    assert_int_equal(t.bodies, 1);
    assert_int_equal(t.body_len, strlen(json_body));
    assert_int_equal(t.events, 0);
}

static void test_nonstream_garbage(void **state)
{
    fixture *f = *state;
    run(f, "/garbage");
    assert_head(f, 502, "application/json", CORS);
    assert_out(f, "{\"error\":{\"message\":\"upstream answered with invalid JSON\","
                  "\"type\":\"server_error\",\"param\":null,\"code\":null}}");
    assert_int_equal(f->res.status, 502);
    assert_int_equal(f->res.complete, 0);
}

static void test_nonstream_garbage_anthropic(void **state)
{
    fixture *f = *state;
    f->rq.proto = AGW_PROTO_ANTHROPIC;
    run(f, "/garbage");
    assert_head(f, 502, "application/json", CORS);
    assert_out(f, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
                  "\"message\":\"upstream answered with invalid JSON\"}}");
}

static void test_429_json_error_kept(void **state)
{
    fixture *f = *state;
    f->rq.stream = 1; /* even for a stream request: the error comes before any event */
    run(f, "/429");
    /* Status, body and retry-after as the upstream sent them; the cookie not. */
    assert_head(f, 429, "application/json", CORS "retry-after: 7\r\nx-ratelimit-reset-requests: 1s\r\n");
    assert_out(f, rl_error);
    assert_int_equal(f->res.status, 429);
    assert_int_equal(f->res.streamed, 0);
    assert_int_equal(f->res.complete, 0);
}

static void test_500_html_wrapped(void **state)
{
    fixture *f = *state;
    run(f, "/500html");
    assert_head(f, 500, "application/json", CORS "retry-after: 3\r\n");
    assert_out(f, "{\"error\":{\"message\":\"upstream returned HTTP 500: <html>oops \\\"bad\\\"</html>\","
                  "\"type\":\"server_error\",\"param\":null,\"code\":null}}");
    assert_int_equal(f->res.status, 500);

    /* The same in Anthropic's shape. */
    agw_buf_reset(&f->k.out);
    f->k.heads = 0;
    f->rq.proto = AGW_PROTO_ANTHROPIC;
    run(f, "/500html");
    assert_head(f, 500, "application/json", CORS "retry-after: 3\r\n");
    assert_out(f, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
                  "\"message\":\"upstream returned HTTP 500: <html>oops \\\"bad\\\"</html>\"}}");
}

static void test_long_error_body_shortened(void **state)
{
    fixture *f = *state;
    f->rq.proto = AGW_PROTO_ANTHROPIC;
    run(f, "/503long");
    agw_buf want = AGW_BUF_INIT(4096);
    char xs[201];
    memset(xs, 'x', 200);
    xs[200] = '\0';
    assert_int_equal(agw_buf_appendf(&want, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                                            "\"message\":\"upstream returned HTTP 503: %s\"}}",
                                     xs),
                     AGW_OK);
    assert_head(f, 503, "application/json", CORS);
    assert_out(f, want.data);
    agw_buf_free(&want);
}

static void test_json_without_error_member_wrapped(void **state)
{
    fixture *f = *state;
    /* Valid JSON, but not an error object of the client's protocol. */
    run(f, "/500json-noerror");
    assert_head(f, 500, "application/json", CORS);
    assert_out(f, "{\"error\":{\"message\":\"upstream returned HTTP 500: {\\\"detail\\\":\\\"no\\\"}\","
                  "\"type\":\"server_error\",\"param\":null,\"code\":null}}");
}

static void test_connect_refused_502(void **state)
{
    fixture *f = *state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/v1/chat/completions", ntohs(sa.sin_port));
    f->rq.stream = 1;
    agw_relay_run(f->u, &f->rq, &f->sink, &f->res);
    assert_head(f, 502, "application/json", CORS);
    assert_out_around(f, "{\"error\":{\"message\":\"upstream unreachable: ",
                      "\",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
    assert_int_equal(f->res.status, 502);
    assert_int_equal(f->res.outcome, AGW_UPSTREAM_CONNECT);
    assert_true(f->res.detail[0] != '\0');
}

static void test_idle_timeout_504(void **state)
{
    fixture *f = *state;
    f->rq.idle_timeout_ms = 300;
    run(f, "/hang");
    assert_head(f, 504, "application/json", CORS);
    assert_out(f, "{\"error\":{\"message\":\"upstream timed out: no data from upstream for 300 ms\","
                  "\"type\":\"timeout_error\",\"param\":null,\"code\":null}}");
    assert_int_equal(f->res.status, 504);
    assert_int_equal(f->res.outcome, AGW_UPSTREAM_TIMEOUT);
}

static void test_idle_timeout_504_anthropic(void **state)
{
    fixture *f = *state;
    f->rq.proto = AGW_PROTO_ANTHROPIC;
    f->rq.idle_timeout_ms = 300;
    run(f, "/hang");
    assert_head(f, 504, "application/json", CORS);
    assert_out(f, "{\"type\":\"error\",\"error\":{\"type\":\"timeout_error\","
                  "\"message\":\"upstream timed out: no data from upstream for 300 ms\"}}");
}

static void test_client_gone_mid_stream(void **state)
{
    fixture *f = *state;
    f->rq.stream = 1;
    f->k.fail_after_writes = 3;
    run(f, "/endless");
    assert_int_equal(f->res.outcome, AGW_UPSTREAM_STOPPED);
    assert_int_equal(f->res.client_gone, 1);
    assert_int_equal(f->res.complete, 0);
    assert_int_equal(f->res.status, 200);
    /* Three events reached the client; after the failed fourth write nothing
     * more was attempted (no error event to a departed client). */
    char *want = join((const char *const[]){ oa_events[0], oa_events[0], oa_events[0] }, 3);
    assert_out(f, want);
    assert_int_equal(f->res.bytes_out, strlen(want));
    assert_int_equal(f->k.write_attempts, 4);
    free(want);
    /* The upstream transfer was stopped: the server sees its connection close
     * instead of being asked for the next 996 events. */
    for (int i = 0; i < 250 && !testsrv_get(&f->s, &f->s.peer_gone); i++)
        usleep(20 * 1000);
    assert_int_equal(testsrv_get(&f->s, &f->s.peer_gone), 1);
}

static void test_client_gone_while_upstream_silent(void **state)
{
    fixture *f = *state;
    /* The client is gone before anything was sent: the periodic check stops
     * the upstream call, and nothing is written. */
    f->rq.stream = 1;
    f->k.departed = 1;
    run(f, "/hang");
    assert_int_equal(f->res.outcome, AGW_UPSTREAM_STOPPED);
    assert_int_equal(f->res.client_gone, 1);
    assert_int_equal(f->res.status, 0);
    assert_int_equal(f->k.heads, 0);
    assert_int_equal(f->k.write_attempts, 0);
    assert_true(f->k.gone_calls >= 1);
}

/* The upstream stays silent past commit_ms: the client gets the 200 SSE
 * head and a comment first; the later 500 can only be an error event, even
 * when another provider could have taken the call (may_retry). */
static void commit_then_upstream_500(fixture *f, int may_retry)
{
    f->rq.stream = 1;
    f->rq.commit_ms = 100;
    f->rq.may_retry = may_retry;
    run(f, "/late-500");
    assert_int_equal(f->res.retryable, 0);
    assert_head(f, 200, SSE_CT, SSE_LINES);
    assert_out(f, ": waiting for upstream\n\n"
                  "data: {\"error\":{\"message\":\"upstream returned HTTP 500: <html>down</html>\","
                  "\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n");
    assert_int_equal(f->res.status, 200);
    assert_int_equal(f->res.streamed, 1);
    assert_int_equal(f->res.complete, 0);
    assert_true(f->k.flushes >= 2);
}

static void test_commit_then_upstream_500(void **state)
{
    commit_then_upstream_500(*state, 0);
}

static void test_commit_then_upstream_500_anthropic(void **state)
{
    fixture *f = *state;
    f->rq.proto = AGW_PROTO_ANTHROPIC;
    f->rq.stream = 1;
    f->rq.commit_ms = 100;
    run(f, "/late-500");
    assert_head(f, 200, SSE_CT, SSE_LINES);
    assert_out(f, ": waiting for upstream\n\n"
                  "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\","
                  "\"message\":\"upstream returned HTTP 500: <html>down</html>\"}}\n\n");
}

static void test_commit_then_stream(void **state)
{
    fixture *f = *state;
    f->rq.stream = 1;
    f->rq.commit_ms = 100;
    run(f, "/late-sse");
    char *events = join(oa_events, 4);
    agw_buf want = AGW_BUF_INIT(1u << 20);
    assert_int_equal(agw_buf_appendf(&want, ": waiting for upstream\n\n%s", events), AGW_OK);
    assert_out(f, want.data);
    /* One head only; it was sent before the upstream's headers existed. */
    assert_head(f, 200, SSE_CT, SSE_LINES);
    assert_int_equal(f->res.complete, 1);
    agw_buf_free(&want);
    free(events);
}

static void test_commit_then_json(void **state)
{
    fixture *f = *state;
    /* Committed to SSE, then the upstream answered plain JSON: it arrives as
     * one data event. */
    f->rq.stream = 1;
    f->rq.commit_ms = 100;
    run(f, "/late-json");
    agw_buf want = AGW_BUF_INIT(1u << 20);
    assert_int_equal(agw_buf_appendf(&want, ": waiting for upstream\n\ndata: %s\n\n", json_body), AGW_OK);
    assert_out(f, want.data);
    assert_int_equal(f->res.complete, 1);
    agw_buf_free(&want);
}

static void test_pings_while_waiting(void **state)
{
    fixture *f = *state;
    f->rq.stream = 1;
    f->rq.commit_ms = 50;
    f->rq.ping_ms = 50;
    run(f, "/late-ping");
    /* The waiting comment, at least one ping before the upstream answered,
     * then the stream unchanged. A quiet moment between two events may get
     * a ping too, so pings are taken out before comparing the rest. */
    static const char waiting[] = ": waiting for upstream\n\n";
    static const char ping[] = ": ping\n\n";
    agw_str got = agw_buf_view(&f->k.out);
    assert_true(got.len > strlen(waiting) + strlen(ping));
    assert_memory_equal(got.ptr, waiting, strlen(waiting));
    assert_memory_equal(got.ptr + strlen(waiting), ping, strlen(ping));
    agw_buf rest = AGW_BUF_INIT(1u << 20);
    for (size_t i = strlen(waiting); i < got.len;) {
        if (got.len - i >= strlen(ping) && memcmp(got.ptr + i, ping, strlen(ping)) == 0) {
            i += strlen(ping);
            continue;
        }
        assert_int_equal(agw_buf_append(&rest, got.ptr + i, 1), AGW_OK);
        i++;
    }
    char *events = join(oa_events, 4);
    assert_bytes(agw_buf_view(&rest), events, strlen(events));
    assert_head(f, 200, SSE_CT, SSE_LINES);
    assert_int_equal(f->res.complete, 1);
    agw_buf_free(&rest);
    free(events);
}

static void test_non_stream_request_never_commits_early(void **state)
{
    fixture *f = *state;
    /* commit_ms applies to stream requests only. */
    f->rq.stream = 0;
    f->rq.commit_ms = 10;
    f->rq.idle_timeout_ms = 300;
    run(f, "/hang");
    assert_head(f, 504, "application/json", CORS);
    assert_int_equal(f->res.streamed, 0);
}

static void test_header_passes(void **state)
{
    (void)state;
    static const char *const allow[] = { "retry-after", "Retry-After", "RETRY-AFTER-MS",
                                         "x-request-id", "Request-Id", "openai-processing-ms",
                                         "x-ratelimit-limit-requests", "X-RateLimit-Remaining-Tokens",
                                         "anthropic-ratelimit-requests-remaining" };
    for (size_t i = 0; i < sizeof allow / sizeof allow[0]; i++)
        if (!header_passes(agw_str_c(allow[i]), AGW_STR_LIT("7")))
            fail_msg("%s should pass", allow[i]);
    static const char *const deny[] = { "set-cookie", "content-type", "content-length",
                                        "transfer-encoding", "connection", "server", "authorization",
                                        "x-ratelimit-", "anthropic-ratelimit-", "x-request-idx",
                                        "retry", "x-ratelimit", "", "www-authenticate",
                                        "x-ratelimit-a b", "x-ratelimit-a:b", "request-id\r",
                                        "x-ratelimit-\xc3\xa9", "x-ratelimit-(x)" };
    for (size_t i = 0; i < sizeof deny / sizeof deny[0]; i++)
        if (header_passes(agw_str_c(deny[i]), AGW_STR_LIT("7")))
            fail_msg("%s should not pass", deny[i]);
    /* Values: control characters (CR/LF injection) are dropped, tabs allowed,
     * at most 1024 bytes. */
    assert_int_equal(header_passes(AGW_STR_LIT("retry-after"), AGW_STR_LIT("7\r\nSet-Cookie: a=b")), 0);
    assert_int_equal(header_passes(AGW_STR_LIT("retry-after"), AGW_STR_LIT("7\n")), 0);
    assert_int_equal(header_passes(AGW_STR_LIT("retry-after"), AGW_STR_LIT("\r")), 0);
    assert_int_equal(header_passes(AGW_STR_LIT("retry-after"), AGW_STR_LIT("a\0b")), 0);
    assert_int_equal(header_passes(AGW_STR_LIT("retry-after"), AGW_STR_LIT("\x7f")), 0);
    assert_int_equal(header_passes(AGW_STR_LIT("x-request-id"), AGW_STR_LIT("a\tb")), 1);
    assert_int_equal(header_passes(AGW_STR_LIT("x-request-id"), AGW_STR_LIT("")), 1);
    char v[1026];
    memset(v, 'v', sizeof v);
    assert_int_equal(header_passes(AGW_STR_LIT("x-request-id"), (agw_str){ v, 1024 }), 1);
    assert_int_equal(header_passes(AGW_STR_LIT("x-request-id"), (agw_str){ v, 1025 }), 0);
}

static void test_header_name_injection_end_to_end(void **state)
{
    fixture *f = *state;
    /* The upstream sends "x-ratelimit-a<CR>Set-Cookie: evil=1": a name that
     * starts with an allowed prefix and smuggles a second header line behind
     * a bare CR. header_passes checks values only, so this relies
     * on libcurl refusing such a line (7.88 fails the transfer, hence 502).
     * Whatever happens, the client's head must not carry a bare CR. */
    run(f, "/evil-header");
    assert_int_equal(f->k.heads, 1);
    agw_str h = agw_buf_view(&f->k.head_lines);
    for (size_t i = 0; i < h.len; i++)
        if (h.ptr[i] == '\r' && (i + 1 >= h.len || h.ptr[i + 1] != '\n'))
            fail_msg("bare CR in the head lines: [%.*s]", (int)h.len, h.ptr);
    assert_null(strstr(h.ptr, "Set-Cookie"));
    /* A bare CR in a header line makes the upstream's head unreadable:
     * libcurl fails the transfer, and the client gets the gateway's 502. */
    assert_int_equal(f->k.status, 502);
    assert_int_equal(f->res.status, 502);
}

/* Names that reach the relay but are not RFC 9110 tokens are dropped, the
 * rest of the head kept: a space or a non-ASCII byte after an allowed prefix. */
static void test_header_name_not_token_dropped(void **state)
{
    fixture *f = *state;
    run(f, "/odd-header-names");
    assert_head(f, 200, "application/json", CORS "x-request-id: ok\r\n");
    assert_out(f, "{}");
}

/* ---- the answer's form against the request's ---- */

static const agw_codec *bridge_codec(void *ud)
{
    return agw_bridge_codec(ud);
}

/* A maker that only counts: the reshape codec must not be made for an
 * answer in the form the request asked for. */
static const agw_codec *count_makes(void *ud)
{
    ++*(int *)ud;
    return NULL;
}

static void test_reshape_made_only_when_needed(void **state)
{
    fixture *f = *state;
    int makes = 0;
    agw_relay_lazy_codec lz = { count_makes, &makes };
    f->rq.stream = 0;
    f->rq.reshape = &lz;
    run(f, "/json");
    assert_int_equal(f->k.status, 200);
    assert_int_equal(makes, 0);
}

/* A streaming client, a passthrough: the upstream answered one JSON object;
 * with a reshape codec the client gets that answer as a proper SSE stream. */
static void test_json_answer_to_stream_request_is_streamed(void **state)
{
    fixture *f = *state;
    agw_bridge *b = agw_bridge_new(AGW_PROTO_OPENAI, AGW_PROTO_OPENAI, 1, 0, AGW_STR_LIT("m"), 7);
    f->rq.stream = 1;
    agw_relay_lazy_codec lz = { bridge_codec, b };
    f->rq.reshape = &lz;
    run(f, "/json");
    assert_head(f, 200, SSE_CT, SSE_LINES "x-request-id: r2\r\n");
    assert_out(f, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,"
                  "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                  "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
                  "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,"
                  "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                  "\"Hi \\\"there\\\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
                  "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,"
                  "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
                  "\"finish_reason\":\"stop\"}]}\n\n"
                  "data: [DONE]\n\n");
    assert_int_equal(f->res.status, 200);
    assert_int_equal(f->res.streamed, 1);
    assert_int_equal(f->res.complete, 1);
    agw_bridge_free(b);
}

/* The same through a conversion: an Anthropic client asked for a stream, the
 * OpenAI upstream answered JSON. No more "answered without a stream" 502. */
static void test_json_answer_converted_for_a_streaming_client(void **state)
{
    fixture *f = *state;
    agw_bridge *b = agw_bridge_new(AGW_PROTO_ANTHROPIC, AGW_PROTO_OPENAI, 1, 0, AGW_STR_LIT("m"), 7);
    f->rq.proto = AGW_PROTO_ANTHROPIC;
    f->rq.codec = agw_bridge_codec(b);
    f->rq.stream = 1;
    tap_rec t;
    memset(&t, 0, sizeof t);
    agw_relay_tap tap = { &t, tap_event, tap_body };
    f->rq.tap = &tap;
    run(f, "/json");
    assert_int_equal(t.bodies, 0); /* converted: the codec read it */
    assert_int_equal(f->k.status, 200);
    assert_string_equal(f->k.ct, SSE_CT);
    agw_str o = agw_buf_view(&f->k.out);
    assert_true(agw_str_starts(o, AGW_STR_LIT("event: message_start\n")));
    static const char text[] = "\"text\":\"Hi \\\"there\\\"\"";
    static const char end[] = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    assert_non_null(memmem(o.ptr, o.len, text, sizeof text - 1));
    assert_true(o.len > sizeof end && !memcmp(o.ptr + o.len - (sizeof end - 1), end, sizeof end - 1));
    assert_int_equal(f->res.complete, 1);
    agw_bridge_free(b);
}

/* A non-streaming client, a passthrough: the upstream streamed anyway; the
 * client gets the folded chat.completion object. */
static void test_stream_answer_to_json_request_is_folded(void **state)
{
    fixture *f = *state;
    agw_bridge *b = agw_bridge_new(AGW_PROTO_OPENAI, AGW_PROTO_OPENAI, 0, 0, AGW_STR_LIT("m"), 7);
    f->rq.stream = 0;
    agw_relay_lazy_codec lz = { bridge_codec, b };
    f->rq.reshape = &lz;
    tap_rec t;
    memset(&t, 0, sizeof t);
    agw_relay_tap tap = { &t, tap_event, tap_body };
    f->rq.tap = &tap;
    run(f, "/oa-stream-at-once");
    /* The codec read the answer, so the tap was not given it (relay.h); the
     * bridge counted what the tap would have. */
    assert_int_equal(t.events, 0);
    assert_int_equal(t.bodies, 0);
    assert_int_equal(agw_bridge_output_bytes(b), strlen("Hello \xc3\xa9"));
    assert_true(agw_bridge_first_output_us(b) > 0);
    assert_int_equal(f->k.status, 200);
    assert_string_equal(f->k.ct, "application/json");
    assert_out(f, "{\"id\":\"chatcmpl-c1\",\"object\":\"chat.completion\",\"created\":7,\"model\":\"m\","
                  "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                  "\"Hello \xc3\xa9\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
                  "\"usage\":{\"prompt_tokens\":0,\"completion_tokens\":0,\"total_tokens\":0,"
                  "\"prompt_tokens_details\":{\"cached_tokens\":0},"
                  "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}");
    assert_int_equal(f->res.streamed, 0);
    assert_int_equal(f->res.complete, 1);
    agw_bridge_free(b);
}

/* The usage chunk the gateway asked for is kept from a client that did not;
 * every other byte goes through unchanged. */
static void test_usage_chunk_dropped(void **state)
{
    fixture *f = *state;
    f->rq.stream = 1;
    f->rq.drop_usage_chunk = 1;
    run(f, "/oa-usage-stream");
    assert_out(f, "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n"
                  "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
                  "data: [DONE]\n\n");
    assert_int_equal(f->res.complete, 1);
    assert_int_equal(f->res.events, 4);
    /* Without the flag (the client asked) the chunk stays, byte for byte. */
    f->rq.drop_usage_chunk = 0;
    agw_buf_reset(&f->k.out);
    f->k.heads = 0;
    run(f, "/oa-usage-stream");
    assert_non_null(memmem(f->k.out.data, f->k.out.len,
                           "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,"
                           "\"completion_tokens\":1}}\r\n\r\n", 84));
}

/* ---- provider credentials refused ---- */

static void test_upstream_401_403_is_a_generic_502(void **state)
{
    fixture *f = *state;
    static const char *const paths[] = { "/401", "/403" };
    for (int i = 0; i < 2; i++) {
        agw_buf_reset(&f->k.out);
        f->k.heads = 0;
        run(f, paths[i]);
        assert_head(f, 502, "application/json", CORS "x-request-id: r4\r\n");
        assert_out(f, "{\"error\":{\"message\":\"the provider rejected the gateway's credentials\","
                      "\"type\":\"server_error\",\"param\":null,\"code\":null}}");
        assert_int_equal(f->res.upstream_status, i ? 403 : 401);
        assert_null(memmem(f->k.out.data, f->k.out.len, "SECRET", 6));
    }
    /* Converted too: the provider's body never reaches the client. */
    agw_bridge *b = agw_bridge_new(AGW_PROTO_ANTHROPIC, AGW_PROTO_OPENAI, 0, 0, AGW_STR_LIT("m"), 7);
    f->rq.proto = AGW_PROTO_ANTHROPIC;
    f->rq.codec = agw_bridge_codec(b);
    agw_buf_reset(&f->k.out);
    f->k.heads = 0;
    run(f, "/401");
    assert_int_equal(f->k.status, 502);
    assert_null(memmem(f->k.out.data, f->k.out.len, "SECRET", 6));
    assert_non_null(memmem(f->k.out.data, f->k.out.len, "credentials", 11));
    agw_bridge_free(b);
}

static void test_upstream_401_may_retry(void **state)
{
    fixture *f = *state;
    f->rq.may_retry = 1;
    f->rq.stream = 1;
    run(f, "/401");
    assert_int_equal(f->res.retryable, 1);
    assert_int_equal(f->res.upstream_status, 401);
    assert_int_equal(f->k.heads, 0);
    assert_int_equal(f->k.write_attempts, 0);
}

/* ---- stream limits ---- */

static void test_stream_over_max_bytes(void **state)
{
    fixture *f = *state;
    f->rq.stream = 1;
    f->rq.max_stream_bytes = 10 * strlen(oa_events[0]);
    run(f, "/endless");
    agw_str o = agw_buf_view(&f->k.out);
    static const char tail[] = "data: {\"error\":{\"message\":\"streamed answer stopped: over ";
    assert_non_null(memmem(o.ptr, o.len, tail, sizeof tail - 1));
    assert_true(o.len < 12 * strlen(oa_events[0]) + 200);
    assert_int_equal(f->res.complete, 0);
    assert_int_equal(f->res.outcome, AGW_UPSTREAM_STOPPED);
}

static void test_stream_over_max_time(void **state)
{
    fixture *f = *state;
    f->rq.stream = 1;
    f->rq.max_stream_ms = 1;
    run(f, "/endless");
    agw_str o = agw_buf_view(&f->k.out);
    static const char tail[] = "data: {\"error\":{\"message\":\"streamed answer stopped: longer than ";
    assert_non_null(memmem(o.ptr, o.len, tail, sizeof tail - 1));
    assert_int_equal(f->res.complete, 0);
    assert_int_equal(f->res.outcome, AGW_UPSTREAM_STOPPED);
}

/* ---- may_retry: failover to another provider before the client sees a byte ---- */

static void assert_untouched_retryable(fixture *f, int status)
{
    assert_int_equal(f->res.retryable, 1);
    assert_int_equal(f->res.status, status);
    assert_int_equal(f->k.heads, 0);
    assert_int_equal(f->k.write_attempts, 0);
    assert_int_equal(f->k.flushes, 0);
    assert_int_equal(f->res.bytes_out, 0);
}

static void test_may_retry_leaves_the_client_untouched(void **state)
{
    fixture *f = *state;
    f->rq.may_retry = 1;
    f->rq.stream = 1;
    run(f, "/429");
    assert_untouched_retryable(f, 429);
    assert_int_equal(f->res.upstream_status, 429);
    assert_int_equal(f->res.retry_after_s, 7);
    run(f, "/500html");
    assert_untouched_retryable(f, 500);
    assert_int_equal(f->res.retry_after_s, 3);
    f->rq.idle_timeout_ms = 300;
    run(f, "/hang");
    assert_untouched_retryable(f, 504);
    assert_int_equal(f->res.outcome, AGW_UPSTREAM_TIMEOUT);
    assert_int_equal(f->res.retry_after_s, -1);
}

static void test_may_retry_success_is_answered(void **state)
{
    fixture *f = *state;
    f->rq.may_retry = 1;
    f->rq.stream = 1;
    /* a good answer goes out as usual */
    run(f, "/oa-stream");
    assert_int_equal(f->res.retryable, 0);
    assert_int_equal(f->res.status, 200);
    assert_int_equal(f->res.complete, 1);
}

static void test_may_retry_not_after_the_head(void **state)
{
    commit_then_upstream_500(*state, 1);
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

/* ---- a binary stream through a codec that reads bytes (Kiro) ---- */

static void test_kiro_stream_converted(void **state)
{
    fixture *f = *state;
    agw_bridge *b = agw_bridge_new(AGW_PROTO_ANTHROPIC, AGW_PROTO_KIRO, 1, 0, AGW_STR_LIT("m"), 1);
    f->rq.proto = AGW_PROTO_ANTHROPIC;
    f->rq.stream = 1;
    f->rq.codec = agw_bridge_codec(b);
    run(f, "/kiro/text");
    agw_bridge_free(b);
    assert_int_equal(f->res.status, 200);
    assert_true(f->res.complete);
    assert_true(f->res.streamed);
    assert_int_equal(f->k.heads, 1);
    assert_string_equal(f->k.ct, SSE_CT);
    agw_str o = agw_buf_view(&f->k.out);
    assert_non_null(memmem(o.ptr, o.len, "\"text\":\"Hel\"", 12));
    assert_non_null(memmem(o.ptr, o.len, "event: message_stop", 19));
}

static void test_kiro_throttled_before_output_fails_over(void **state)
{
    fixture *f = *state;
    agw_bridge *b = agw_bridge_new(AGW_PROTO_ANTHROPIC, AGW_PROTO_KIRO, 1, 0, AGW_STR_LIT("m"), 1);
    f->rq.proto = AGW_PROTO_ANTHROPIC;
    f->rq.stream = 1;
    f->rq.may_retry = 1;
    f->rq.codec = agw_bridge_codec(b);
    run(f, "/kiro/throttled");
    agw_bridge_free(b);
    /* Left to the next provider: nothing written, reported as the 429. */
    assert_true(f->res.retryable);
    assert_int_equal(f->res.status, 429);
    assert_int_equal(f->res.upstream_status, 429);
    assert_int_equal(f->k.heads, 0);
    assert_int_equal(f->k.out.len, 0);
}

static void test_kiro_throttled_before_output_is_a_429(void **state)
{
    fixture *f = *state;
    agw_bridge *b = agw_bridge_new(AGW_PROTO_OPENAI, AGW_PROTO_KIRO, 1, 0, AGW_STR_LIT("m"), 1);
    f->rq.stream = 1;
    f->rq.codec = agw_bridge_codec(b);
    run(f, "/kiro/throttled");
    agw_bridge_free(b);
    /* The last provider: the status itself, in the client's shape, no SSE. */
    assert_false(f->res.retryable);
    assert_int_equal(f->res.status, 429);
    assert_int_equal(f->k.heads, 1);
    assert_string_equal(f->k.ct, "application/json");
    assert_out(f, "{\"error\":{\"message\":\"upstream ThrottlingException: slow down\","
                  "\"type\":\"rate_limit_error\",\"param\":null,\"code\":null}}");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_openai_stream_passthrough),
        T(test_may_retry_leaves_the_client_untouched),
        T(test_may_retry_success_is_answered),
        T(test_may_retry_not_after_the_head),
        T(test_anthropic_stream_passthrough),
        T(test_stream_without_final_event),
        T(test_anthropic_stream_without_message_stop),
        T(test_stream_with_upstream_error_event),
        T(test_anthropic_stream_with_upstream_error_event),
        T(test_stream_reset_mid_stream),
        T(test_stream_cut_inside_event),
        T(test_stream_event_over_limit),
        T(test_nonstream_json),
        T(test_answer_over_the_memory_budget),
        T(test_converted_answer_over_the_memory_budget),
        T(test_tap_hold_final_and_own_ratelimit),
        T(test_tap_sees_a_json_body),
        T(test_nonstream_garbage),
        T(test_nonstream_garbage_anthropic),
        T(test_429_json_error_kept),
        T(test_500_html_wrapped),
        T(test_long_error_body_shortened),
        T(test_json_without_error_member_wrapped),
        T(test_connect_refused_502),
        T(test_idle_timeout_504),
        T(test_idle_timeout_504_anthropic),
        T(test_client_gone_mid_stream),
        T(test_client_gone_while_upstream_silent),
        T(test_commit_then_upstream_500),
        T(test_commit_then_upstream_500_anthropic),
        T(test_commit_then_stream),
        T(test_commit_then_json),
        T(test_pings_while_waiting),
        T(test_non_stream_request_never_commits_early),
        cmocka_unit_test(test_header_passes),
        T(test_header_name_not_token_dropped),
        T(test_reshape_made_only_when_needed),
        T(test_json_answer_to_stream_request_is_streamed),
        T(test_json_answer_converted_for_a_streaming_client),
        T(test_stream_answer_to_json_request_is_folded),
        T(test_usage_chunk_dropped),
        T(test_upstream_401_403_is_a_generic_502),
        T(test_upstream_401_may_retry),
        T(test_stream_over_max_bytes),
        T(test_stream_over_max_time),
        T(test_header_name_injection_end_to_end),
        T(test_kiro_stream_converted),
        T(test_kiro_throttled_before_output_fails_over),
        T(test_kiro_throttled_before_output_is_a_429),
    };
#undef T
    return cmocka_run_group_tests(tests, global_setup, global_teardown);
}

/* Unit tests for lib/fcgi_io against fake libfcgi streams: the body read
 * under a cap, head/respond formatting, write and flush failures, the request
 * path and noticing a departed client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* The module itself, so the tests reach its file-local functions. */
#include "net/fcgi_io.c"

/* ---- fake streams ----
 * A reader hands out its source `chunk` bytes per fillBuffProc and closes at
 * the end (optionally with an error, like a broken web-server connection).
 * A writer has a small buffer; emptyBuffProc appends it to `sent`, or fails
 * the way libfcgi does (FCGI_errno set and stream closed), or sets only the
 * error (the case only FCGX_GetError reveals). */

enum { WR_OK = 0, WR_FAIL, WR_ERRNO_ONLY };

typedef struct {
    FCGX_Stream s;
    /* reader */
    const unsigned char *src;
    size_t src_len, pos, chunk;
    int read_errno; /* set at EOF when non-zero */
    int fills;
    /* writer */
    unsigned char wbuf[64];
    agw_buf sent;
    int wmode;
    int empties;
} fake_stream;

static void fake_fill(FCGX_Stream *stream)
{
    fake_stream *f = stream->data;
    f->fills++;
    if (f->pos >= f->src_len) {
        if (f->read_errno)
            stream->FCGI_errno = f->read_errno;
        stream->isClosed = 1;
        return;
    }
    size_t n = f->src_len - f->pos < f->chunk ? f->src_len - f->pos : f->chunk;
    stream->rdNext = stream->stopUnget = (unsigned char *)f->src + f->pos;
    stream->stop = stream->rdNext + n;
    f->pos += n;
}

static void fake_empty(FCGX_Stream *stream, int doClose)
{
    (void)doClose;
    fake_stream *f = stream->data;
    f->empties++;
    if (f->wmode == WR_FAIL) {
        if (!stream->FCGI_errno)
            stream->FCGI_errno = EPIPE;
        stream->isClosed = 1;
        return;
    }
    if (f->wmode == WR_ERRNO_ONLY) {
        stream->FCGI_errno = EPIPE;
        stream->wrNext = f->wbuf; /* the bytes vanish, the stream looks open */
        return;
    }
    size_t n = (size_t)(stream->wrNext - f->wbuf);
    assert_int_equal(agw_buf_append(&f->sent, f->wbuf, n), AGW_OK);
    stream->wrNext = f->wbuf;
}

static void reader_init(fake_stream *f, const void *src, size_t len, size_t chunk)
{
    memset(f, 0, sizeof *f);
    f->src = src;
    f->src_len = len;
    f->chunk = chunk;
    f->s.rdNext = f->s.stop = f->s.stopUnget = (unsigned char *)src;
    f->s.isReader = 1;
    f->s.fillBuffProc = fake_fill;
    f->s.data = f;
}

static void writer_init(fake_stream *f, int mode)
{
    memset(f, 0, sizeof *f);
    agw_buf_init(&f->sent, 1u << 20);
    f->wmode = mode;
    f->s.wrNext = f->wbuf;
    f->s.stop = f->wbuf + sizeof f->wbuf;
    f->s.isReader = 0;
    f->s.emptyBuffProc = fake_empty;
    f->s.data = f;
}

/* Everything written so far: what was emptied plus what is still buffered. */
static agw_str writer_bytes(fake_stream *f)
{
    size_t pending = (size_t)(f->s.wrNext - f->wbuf);
    if (pending && f->wmode == WR_OK) {
        assert_int_equal(agw_buf_append(&f->sent, f->wbuf, pending), AGW_OK);
        f->s.wrNext = f->wbuf;
    }
    return agw_buf_view(&f->sent);
}

static void writer_free(fake_stream *f)
{
    agw_buf_free(&f->sent);
}

#define ASSERT_STR_BYTES(v, lit)                                                   \
    do {                                                                           \
        agw_str v_ = (v);                                                          \
        if (v_.len != sizeof(lit) - 1 || memcmp(v_.ptr, (lit), v_.len) != 0)       \
            fail_msg("got [%.*s]\nwant [%s]", (int)v_.len, v_.ptr, (lit));         \
    } while (0)

/* ---- read_body ---- */

static void read_case(char **env, const char *body, size_t len, size_t chunk, size_t max,
                      agw_err want, int want_body)
{
    fake_stream in, out;
    reader_init(&in, body, len, chunk);
    writer_init(&out, WR_OK);
    agw_fcgi_conn c;
    conn_init_streams(&c, &in.s, &out.s, env, -1);
    assert_int_equal(agw_fcgi_read_body(&c, max), want);
    if (want_body) {
        assert_int_equal(c.body.len, len);
        if (len)
            assert_memory_equal(c.body.data, body, len);
    } else {
        /* Over the cap the partial body is dropped. */
        assert_int_equal(c.body.len, 0);
        assert_null(c.body.data);
    }
    agw_fcgi_conn_release(&c);
    assert_null(c.body.data);
    writer_free(&out);
}

static void test_read_body_under_and_at_cap(void **state)
{
    (void)state;
    char *env_cl5[] = { (char *)"CONTENT_LENGTH=5", NULL };
    char *env_cl10[] = { (char *)"CONTENT_LENGTH=10", NULL };
    char *env_none[] = { NULL };
    /* EOF before the cap, delivered 2 bytes at a time. */
    read_case(env_cl5, "hello", 5, 2, 10, AGW_OK, 1);
    read_case(env_none, "hello", 5, 1, 10, AGW_OK, 1);
    /* Exactly at the cap. */
    read_case(env_cl10, "0123456789", 10, 3, 10, AGW_OK, 1);
    read_case(env_none, "0123456789", 10, 10, 10, AGW_OK, 1);
    /* Empty body, even with max 0. */
    read_case(env_none, "", 0, 4, 0, AGW_OK, 1);
    /* A body with NUL bytes is kept byte for byte. */
    read_case(env_none, "a\0b\0c", 5, 2, 5, AGW_OK, 1);
}

static void test_read_body_over_cap_by_hint(void **state)
{
    (void)state;
    char *env[] = { (char *)"REQUEST_METHOD=POST", (char *)"CONTENT_LENGTH=11", NULL };
    fake_stream in, out;
    reader_init(&in, "0123456789A", 11, 4);
    writer_init(&out, WR_OK);
    agw_fcgi_conn c;
    conn_init_streams(&c, &in.s, &out.s, env, -1);
    assert_int_equal(agw_fcgi_read_body(&c, 10), AGW_ETOOBIG);
    /* Refused on the hint alone: nothing was read. */
    assert_int_equal(in.pos, 0);
    assert_int_equal(in.fills, 0);
    assert_int_equal(c.body.len, 0);
    agw_fcgi_conn_release(&c);
    writer_free(&out);

    /* A huge hint too. */
    char *env2[] = { (char *)"CONTENT_LENGTH=18446744073709551615", NULL };
    read_case(env2, "x", 1, 1, 10, AGW_ETOOBIG, 0);
}

static void test_read_body_over_cap_by_bytes(void **state)
{
    (void)state;
    static const char body[] = "0123456789A";
    char *none[] = { NULL };
    char *minus1[] = { (char *)"CONTENT_LENGTH=-1", NULL };
    char *empty[] = { (char *)"CONTENT_LENGTH=", NULL };
    char *lying[] = { (char *)"CONTENT_LENGTH=5", NULL };
    char *garbage[] = { (char *)"CONTENT_LENGTH=5x", NULL };
    char *overflow[] = { (char *)"CONTENT_LENGTH=99999999999999999999999999", NULL };
    /* The hint is missing, -1, empty, too small or not a number: the cap is
     * enforced on the bytes actually read. */
    read_case(none, body, 11, 3, 10, AGW_ETOOBIG, 0);
    read_case(minus1, body, 11, 11, 10, AGW_ETOOBIG, 0);
    read_case(empty, body, 11, 1, 10, AGW_ETOOBIG, 0);
    read_case(lying, body, 11, 4, 10, AGW_ETOOBIG, 0);
    read_case(garbage, body, 11, 4, 10, AGW_ETOOBIG, 0);
    read_case(overflow, body, 11, 4, 10, AGW_ETOOBIG, 0);
    /* The same hints with a body that fits are fine. */
    read_case(minus1, body, 10, 3, 10, AGW_OK, 1);
    read_case(lying, body, 10, 3, 10, AGW_OK, 1);
    read_case(overflow, body, 3, 3, 10, AGW_OK, 1);
}

static void test_read_body_large(void **state)
{
    (void)state;
    /* More than one 16 KiB read, with a boundary exactly on 16384, NULs inside. */
    enum { N = 40000 };
    unsigned char *body = malloc(N);
    assert_non_null(body);
    for (size_t i = 0; i < N; i++)
        body[i] = (unsigned char)(i * 7 + i / 256);
    char *env[] = { NULL };
    read_case(env, (const char *)body, N, 1000, N, AGW_OK, 1);
    read_case(env, (const char *)body, 16384, 4096, 16384, AGW_OK, 1);
    read_case(env, (const char *)body, 16384, 16384, 16383, AGW_ETOOBIG, 0);
    read_case(env, (const char *)body, N, 7, N - 1, AGW_ETOOBIG, 0);
    free(body);
}

/* The bodies of one process share its memory budget: a body that would
 * pass it is refused with AGW_EBUSY (and dropped), and a released body gives
 * its bytes back. */
static void test_read_body_memory_budget(void **state)
{
    (void)state;
    static char body[5000];
    memset(body, 'b', sizeof body);
    /* The budget holds what a body's buffer allocates: the announced size
     * (plus its NUL) in one allocation when CONTENT_LENGTH is given. */
    char *env[] = { "CONTENT_LENGTH=5000", NULL };
    agw_budget *b = agw_budget_process();
    agw_budget_set_limit(b, 8000);
    fake_stream in1, in2, out;
    writer_init(&out, WR_OK);
    agw_fcgi_conn c1, c2;
    reader_init(&in1, body, sizeof body, 1000);
    conn_init_streams(&c1, &in1.s, &out.s, env, -1);
    assert_int_equal(agw_fcgi_read_body(&c1, 10000), AGW_OK);
    assert_int_equal(agw_budget_used(b), 5001);
    reader_init(&in2, body, sizeof body, 1000);
    conn_init_streams(&c2, &in2.s, &out.s, env, -1);
    assert_int_equal(agw_fcgi_read_body(&c2, 10000), AGW_EBUSY);
    assert_null(c2.body.data);
    assert_int_equal(agw_budget_used(b), 5001); /* nothing of the second body is held */
    agw_fcgi_conn_release(&c1);
    assert_int_equal(agw_budget_used(b), 0);
    reader_init(&in2, body, sizeof body, 1000);
    conn_init_streams(&c2, &in2.s, &out.s, env, -1);
    assert_int_equal(agw_fcgi_read_body(&c2, 10000), AGW_OK);
    assert_int_equal(c2.body.len, sizeof body);
    agw_fcgi_conn_release(&c2);
    assert_int_equal(agw_budget_used(b), 0);
    /* Without CONTENT_LENGTH the buffer grows by doubling, and each step is
     * taken from the budget: 3000 bytes hold 4096; 5000 would need 8192. */
    char *bare[] = { NULL };
    reader_init(&in1, body, 3000, 1000);
    conn_init_streams(&c1, &in1.s, &out.s, bare, -1);
    assert_int_equal(agw_fcgi_read_body(&c1, 10000), AGW_OK);
    assert_int_equal(agw_budget_used(b), 4096);
    agw_fcgi_conn_release(&c1);
    reader_init(&in2, body, sizeof body, 1000);
    conn_init_streams(&c2, &in2.s, &out.s, bare, -1);
    assert_int_equal(agw_fcgi_read_body(&c2, 10000), AGW_EBUSY);
    assert_int_equal(agw_budget_used(b), 0); /* the partial body went back */
    agw_budget_set_limit(b, 0);
    writer_free(&out);
}

static void test_read_body_stream_error(void **state)
{
    (void)state;
    char *env[] = { NULL };
    fake_stream in, out;
    reader_init(&in, "abc", 3, 2);
    in.read_errno = ECONNRESET;
    writer_init(&out, WR_OK);
    agw_fcgi_conn c;
    conn_init_streams(&c, &in.s, &out.s, env, -1);
    assert_int_equal(agw_fcgi_read_body(&c, 100), AGW_EPEER);
    agw_fcgi_conn_release(&c);
    writer_free(&out);
}

static void test_read_body_twice_replaces(void **state)
{
    (void)state;
    char *env[] = { NULL };
    fake_stream in, out;
    reader_init(&in, "first", 5, 5);
    writer_init(&out, WR_OK);
    agw_fcgi_conn c;
    conn_init_streams(&c, &in.s, &out.s, env, -1);
    assert_int_equal(agw_fcgi_read_body(&c, 100), AGW_OK);
    assert_int_equal(c.body.len, 5);
    /* A second read on the drained stream: an empty body, the old one freed
     * (ASan would report the leak otherwise). */
    assert_int_equal(agw_fcgi_read_body(&c, 100), AGW_OK);
    assert_int_equal(c.body.len, 0);
    assert_int_equal(c.body.max, 100);
    agw_fcgi_conn_release(&c);
    writer_free(&out);
}

/* ---- head / respond / write ---- */

static void conn_with_writer(agw_fcgi_conn *c, fake_stream *in, fake_stream *out, int mode)
{
    static char *env[] = { NULL };
    reader_init(in, "", 0, 1);
    writer_init(out, mode);
    conn_init_streams(c, &in->s, &out->s, env, -1);
}

static void test_head_format(void **state)
{
    (void)state;
    fake_stream in, out;
    agw_fcgi_conn c;
    conn_with_writer(&c, &in, &out, WR_OK);
    assert_int_equal(c.head_sent, 0);
    assert_int_equal(agw_fcgi_head(&c, 200, "application/json",
                                   AGW_STR_LIT("X-A: 1\r\nAccess-Control-Allow-Origin: *\r\n")),
                     AGW_OK);
    assert_int_equal(c.head_sent, 1);
    assert_int_equal(c.status, 200);
    ASSERT_STR_BYTES(writer_bytes(&out), "Status: 200 OK\r\nContent-Type: application/json\r\n"
                                         "X-A: 1\r\nAccess-Control-Allow-Origin: *\r\n\r\n");
    /* A second head is refused and writes nothing. */
    assert_int_equal(agw_fcgi_head(&c, 500, "text/plain", AGW_STR_LIT("")), AGW_EINVAL);
    assert_int_equal(c.status, 200);
    assert_int_equal(agw_fcgi_write(&c, "body", 4), AGW_OK);
    ASSERT_STR_BYTES(writer_bytes(&out), "Status: 200 OK\r\nContent-Type: application/json\r\n"
                                         "X-A: 1\r\nAccess-Control-Allow-Origin: *\r\n\r\nbody");
    agw_fcgi_conn_release(&c);
    writer_free(&out);
}

static void test_head_statuses(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *want;
    } cases[] = {
        { 429, "Status: 429 Too Many Requests\r\nContent-Type: text/event-stream; charset=utf-8\r\n\r\n" },
        { 529, "Status: 529 Overloaded\r\nContent-Type: text/event-stream; charset=utf-8\r\n\r\n" },
        { 299, "Status: 299 Unknown\r\nContent-Type: text/event-stream; charset=utf-8\r\n\r\n" },
        { 100, "Status: 100 Unknown\r\nContent-Type: text/event-stream; charset=utf-8\r\n\r\n" },
        { 999, "Status: 999 Unknown\r\nContent-Type: text/event-stream; charset=utf-8\r\n\r\n" },
        { 200, "Status: 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\r\n" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_stream in, out;
        agw_fcgi_conn c;
        conn_with_writer(&c, &in, &out, WR_OK);
        assert_int_equal(agw_fcgi_head(&c, cases[i].status, "text/event-stream; charset=utf-8",
                                       (agw_str){ NULL, 0 }),
                         AGW_OK);
        agw_str got = writer_bytes(&out);
        assert_int_equal(got.len, strlen(cases[i].want));
        assert_memory_equal(got.ptr, cases[i].want, got.len);
        writer_free(&out);
    }
    /* A status that is not three digits is refused, and nothing is written. */
    static const int bad[] = { 0, 99, 1000, -200 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fake_stream in, out;
        agw_fcgi_conn c;
        conn_with_writer(&c, &in, &out, WR_OK);
        assert_int_equal(agw_fcgi_head(&c, bad[i], "text/plain", (agw_str){ NULL, 0 }), AGW_EINVAL);
        assert_int_equal(writer_bytes(&out).len, 0);
        writer_free(&out);
    }
}

static void test_respond(void **state)
{
    (void)state;
    fake_stream in, out;
    agw_fcgi_conn c;
    conn_with_writer(&c, &in, &out, WR_OK);
    /* A body longer than the writer's 64-byte buffer, with a NUL in it. */
    static const char body[] = "{\"error\":{\"message\":\"a\\u0000b\"},\"pad\":\"0123456789012345678901234567890123456789\"}\0!";
    assert_int_equal(agw_fcgi_respond(&c, 404, "application/json", AGW_STR_LIT("Vary: Origin\r\n"),
                                      (agw_str){ body, sizeof body - 1 }),
                     AGW_OK);
    char want[512];
    int n = snprintf(want, sizeof want,
                     "Status: 404 Not Found\r\nContent-Type: application/json\r\nVary: Origin\r\n"
                     "Content-Length: %lu\r\n\r\n",
                     (unsigned long)(sizeof body - 1));
    memcpy(want + n, body, sizeof body - 1);
    agw_str got = writer_bytes(&out);
    assert_int_equal(got.len, (size_t)n + sizeof body - 1);
    assert_memory_equal(got.ptr, want, got.len);
    assert_int_equal(c.status, 404);
    /* respond is a complete response: a second one is refused. */
    assert_int_equal(agw_fcgi_respond(&c, 200, "text/plain", AGW_STR_LIT(""), AGW_STR_LIT("x")),
                     AGW_EINVAL);
    writer_free(&out);

    /* Empty body, no extra headers. */
    conn_with_writer(&c, &in, &out, WR_OK);
    assert_int_equal(agw_fcgi_respond(&c, 204, "text/plain", (agw_str){ NULL, 0 }, (agw_str){ "", 0 }),
                     AGW_OK);
    ASSERT_STR_BYTES(writer_bytes(&out),
                     "Status: 204 No Content\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n");
    writer_free(&out);
}

static void test_write_fails_on_empty(void **state)
{
    (void)state;
    fake_stream in, out;
    agw_fcgi_conn c;
    conn_with_writer(&c, &in, &out, WR_FAIL);
    char big[200];
    memset(big, 'x', sizeof big);
    /* More than the 64-byte buffer: libfcgi must empty it, which fails. */
    assert_int_equal(agw_fcgi_write(&c, big, sizeof big), AGW_EPEER);
    assert_int_equal(c.gone, 1);
    int empties = out.empties;
    /* From now on every call is a cheap no-op: the stream is not touched. */
    assert_int_equal(agw_fcgi_write(&c, "x", 1), AGW_EPEER);
    assert_int_equal(agw_fcgi_flush(&c), AGW_EPEER);
    assert_int_equal(agw_fcgi_respond(&c, 200, "text/plain", AGW_STR_LIT(""), AGW_STR_LIT("x")),
                     AGW_EPEER);
    assert_int_equal(out.empties, empties);
    assert_int_equal(agw_fcgi_client_gone(&c), 1);
    writer_free(&out);
}

static void test_flush_fails(void **state)
{
    (void)state;
    fake_stream in, out;
    agw_fcgi_conn c;
    conn_with_writer(&c, &in, &out, WR_FAIL);
    /* Fits in the buffer: the write itself succeeds... */
    assert_int_equal(agw_fcgi_write(&c, "data: 1\n\n", 9), AGW_OK);
    assert_int_equal(c.gone, 0);
    /* ...the flush is where the dead client shows. */
    assert_int_equal(agw_fcgi_flush(&c), AGW_EPEER);
    assert_int_equal(c.gone, 1);
    assert_int_equal(agw_fcgi_write(&c, "x", 1), AGW_EPEER);
    assert_int_equal(agw_fcgi_flush(&c), AGW_EPEER);
    writer_free(&out);
}

static void test_flush_error_seen_only_via_get_error(void **state)
{
    (void)state;
    /* FCGX_FFlush returns 0 here (the stream is not closed); only
     * FCGX_GetError tells. The contract says flush checks the error. */
    fake_stream in, out;
    agw_fcgi_conn c;
    conn_with_writer(&c, &in, &out, WR_ERRNO_ONLY);
    assert_int_equal(agw_fcgi_write(&c, "abc", 3), AGW_OK);
    assert_int_equal(agw_fcgi_flush(&c), AGW_EPEER);
    assert_int_equal(c.gone, 1);
    writer_free(&out);

    /* The same through a write that had to empty the buffer. */
    conn_with_writer(&c, &in, &out, WR_ERRNO_ONLY);
    char big[100];
    memset(big, 'y', sizeof big);
    assert_int_equal(agw_fcgi_write(&c, big, sizeof big), AGW_EPEER);
    assert_int_equal(c.gone, 1);
    writer_free(&out);
}

static void test_flush_ok(void **state)
{
    (void)state;
    fake_stream in, out;
    agw_fcgi_conn c;
    conn_with_writer(&c, &in, &out, WR_OK);
    assert_int_equal(agw_fcgi_write(&c, "data: x\n\n", 9), AGW_OK);
    assert_int_equal(out.sent.len, 0); /* still buffered */
    assert_int_equal(agw_fcgi_flush(&c), AGW_OK);
    /* Flushed: the bytes reached the "socket" without waiting for more. */
    assert_int_equal(out.sent.len, 9);
    assert_memory_equal(out.sent.data, "data: x\n\n", 9);
    assert_int_equal(c.gone, 0);
    /* Writing nothing is fine. */
    assert_int_equal(agw_fcgi_write(&c, "", 0), AGW_OK);
    writer_free(&out);
}

/* ---- params and path ---- */

static agw_str path_of(char **env)
{
    fake_stream in, out;
    agw_fcgi_conn c;
    reader_init(&in, "", 0, 1);
    writer_init(&out, WR_OK);
    conn_init_streams(&c, &in.s, &out.s, env, -1);
    agw_str p = agw_fcgi_path(&c);
    writer_free(&out);
    return p;
}

static void test_path(void **state)
{
    (void)state;
    char *q[] = { (char *)"SCRIPT_NAME=/ignored", (char *)"REQUEST_URI=/v1/chat/completions?x=1&y=?2",
                  NULL };
    ASSERT_STR_BYTES(path_of(q), "/v1/chat/completions");
    char *plain[] = { (char *)"REQUEST_URI=/v1/models", NULL };
    ASSERT_STR_BYTES(path_of(plain), "/v1/models");
    char *trailing[] = { (char *)"REQUEST_URI=/v1/models?", NULL };
    ASSERT_STR_BYTES(path_of(trailing), "/v1/models");
    char *enc[] = { (char *)"REQUEST_URI=/v1/a%20b", NULL };
    ASSERT_STR_BYTES(path_of(enc), "/v1/a%20b");
    /* Without REQUEST_URI (or with it empty), SCRIPT_NAME. */
    char *script[] = { (char *)"SCRIPT_NAME=/v1/messages", NULL };
    ASSERT_STR_BYTES(path_of(script), "/v1/messages");
    char *empty_uri[] = { (char *)"REQUEST_URI=", (char *)"SCRIPT_NAME=/v1/messages", NULL };
    ASSERT_STR_BYTES(path_of(empty_uri), "/v1/messages");
    char *nothing[] = { (char *)"HTTP_HOST=x", NULL };
    ASSERT_STR_BYTES(path_of(nothing), "/");
}

/* The Bearer token: scheme in any case, spaces before the token skipped;
 * other schemes and a missing header give no token. */
static void test_bearer(void **state)
{
    (void)state;
    static const struct {
        const char *header; /* HTTP_AUTHORIZATION=..., NULL: none */
        const char *token;  /* NULL: no token */
    } cases[] = {
        { "HTTP_AUTHORIZATION=Bearer sk-1", "sk-1" },
        { "HTTP_AUTHORIZATION=bearer   sk-2", "sk-2" },
        { "HTTP_AUTHORIZATION=BEARER sk 3", "sk 3" },
        { "HTTP_AUTHORIZATION=Bearer ", "" },
        { "HTTP_AUTHORIZATION=Bearer", NULL },
        { "HTTP_AUTHORIZATION=Basic dXNlcjpw", NULL },
        { "HTTP_AUTHORIZATION=", NULL },
        { NULL, NULL },
    };
    fake_stream in, out;
    reader_init(&in, "", 0, 1);
    writer_init(&out, WR_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *env[] = { (char *)cases[i].header, NULL };
        agw_fcgi_conn c;
        conn_init_streams(&c, &in.s, &out.s, env, -1);
        agw_str t = agw_fcgi_bearer(&c);
        if (!cases[i].token) {
            assert_null(t.ptr);
        } else {
            assert_non_null(t.ptr);
            assert_int_equal(t.len, strlen(cases[i].token));
            assert_memory_equal(t.ptr, cases[i].token, t.len);
        }
    }
    writer_free(&out);
}

static void test_params(void **state)
{
    (void)state;
    char *env[] = { (char *)"CONTENT_LENGTH=12", (char *)"HTTP_X_API_KEY=k=v", (char *)"EMPTY=", NULL };
    fake_stream in, out;
    agw_fcgi_conn c;
    reader_init(&in, "", 0, 1);
    writer_init(&out, WR_OK);
    conn_init_streams(&c, &in.s, &out.s, env, -1);
    assert_string_equal(agw_fcgi_param(&c, "CONTENT_LENGTH"), "12");
    assert_string_equal(agw_fcgi_param(&c, "HTTP_X_API_KEY"), "k=v");
    assert_string_equal(agw_fcgi_param(&c, "EMPTY"), "");
    assert_null(agw_fcgi_param(&c, "CONTENT"));
    assert_null(agw_fcgi_param(&c, "HTTP_AUTHORIZATION"));
    /* No parameters at all. */
    conn_init_streams(&c, &in.s, &out.s, NULL, -1);
    assert_null(agw_fcgi_param(&c, "CONTENT_LENGTH"));
    ASSERT_STR_BYTES(agw_fcgi_path(&c), "/");
    writer_free(&out);
}

static void test_conn_init_from_request(void **state)
{
    (void)state;
    fake_stream in, out;
    reader_init(&in, "", 0, 1);
    writer_init(&out, WR_OK);
    char *env[] = { (char *)"A=1", NULL };
    FCGX_Request req;
    memset(&req, 0, sizeof req);
    req.in = &in.s;
    req.out = &out.s;
    req.envp = env;
    req.ipcFd = 42;
    agw_fcgi_conn c;
    memset(&c, 0x5a, sizeof c);
    agw_fcgi_conn_init(&c, &req);
    assert_ptr_equal(c.in, &in.s);
    assert_ptr_equal(c.out, &out.s);
    assert_ptr_equal(c.envp, env);
    assert_int_equal(c.ipc_fd, 42);
    assert_int_equal(c.head_sent, 0);
    assert_int_equal(c.gone, 0);
    assert_int_equal(c.status, 0);
    assert_null(c.body.data);
    assert_int_equal(c.body.len, 0);
    agw_fcgi_conn_release(&c);
    writer_free(&out);
}

/* ---- client_gone ---- */

static void test_client_gone(void **state)
{
    (void)state;
    fake_stream in, out;
    agw_fcgi_conn c;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    reader_init(&in, "", 0, 1);
    writer_init(&out, WR_OK);

    /* No fd: unknown, so not gone. */
    conn_init_streams(&c, &in.s, &out.s, NULL, -1);
    assert_int_equal(agw_fcgi_client_gone(&c), 0);

    /* Open and quiet. */
    conn_init_streams(&c, &in.s, &out.s, NULL, sv[0]);
    assert_int_equal(agw_fcgi_client_gone(&c), 0);
    assert_int_equal(c.gone, 0);
    /* Unread bytes from the server (say, a record we did not ask for) are
     * not a departure, and are left in the socket. */
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(agw_fcgi_client_gone(&c), 0);
    char b;
    assert_int_equal(recv(sv[0], &b, 1, MSG_DONTWAIT), 1);
    assert_int_equal(b, 'x');

    /* The peer closes: gone, and it sticks. */
    close(sv[1]);
    assert_int_equal(agw_fcgi_client_gone(&c), 1);
    assert_int_equal(c.gone, 1);
    assert_int_equal(agw_fcgi_write(&c, "x", 1), AGW_EPEER);
    close(sv[0]);

    /* Half-close (shutdown of the peer's write side) counts too. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    conn_init_streams(&c, &in.s, &out.s, NULL, sv[0]);
    assert_int_equal(shutdown(sv[1], SHUT_WR), 0);
    assert_int_equal(agw_fcgi_client_gone(&c), 1);
    close(sv[0]);
    close(sv[1]);
    writer_free(&out);
}

/* Kept last because a regression makes ASan abort the process:
 * agw_fcgi_head formats into a 256-byte stack buffer, and used to write the
 * length snprintf *would* have produced, reading past the buffer for a long
 * content type. Either the full line or a refusal is acceptable; garbage is not. */
static void test_head_long_content_type(void **state)
{
    (void)state;
    fake_stream in, out;
    agw_fcgi_conn c;
    conn_with_writer(&c, &in, &out, WR_OK);
    char ct[400];
    memset(ct, 'a', sizeof ct - 1);
    memcpy(ct, "application/x-", 14);
    ct[sizeof ct - 1] = '\0';
    agw_err e = agw_fcgi_head(&c, 200, ct, AGW_STR_LIT("X: y\r\n"));
    agw_str got = writer_bytes(&out);
    if (e == AGW_OK) {
        agw_buf want = AGW_BUF_INIT(4096);
        assert_int_equal(agw_buf_appendf(&want, "Status: 200 OK\r\nContent-Type: %s\r\nX: y\r\n\r\n", ct),
                         AGW_OK);
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.ptr, want.data, want.len);
        agw_buf_free(&want);
    } else {
        assert_int_equal(e, AGW_EINVAL);
        assert_int_equal(got.len, 0);
    }
    writer_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_body_under_and_at_cap),
        cmocka_unit_test(test_read_body_over_cap_by_hint),
        cmocka_unit_test(test_read_body_over_cap_by_bytes),
        cmocka_unit_test(test_read_body_large),
        cmocka_unit_test(test_read_body_memory_budget),
        cmocka_unit_test(test_read_body_stream_error),
        cmocka_unit_test(test_read_body_twice_replaces),
        cmocka_unit_test(test_head_format),
        cmocka_unit_test(test_head_statuses),
        cmocka_unit_test(test_respond),
        cmocka_unit_test(test_write_fails_on_empty),
        cmocka_unit_test(test_flush_fails),
        cmocka_unit_test(test_flush_error_seen_only_via_get_error),
        cmocka_unit_test(test_flush_ok),
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_conn_init_from_request),
        cmocka_unit_test(test_client_gone),
        cmocka_unit_test(test_head_long_content_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

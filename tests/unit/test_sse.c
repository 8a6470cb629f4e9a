/* Unit tests for lib/sse: parser line/field rules, split invariance, limits,
 * and writer round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/sse.h"

#define MAX_EV 64

typedef struct {
    int n;
    char *event[MAX_EV], *data[MAX_EV], *id[MAX_EV];
    size_t elen[MAX_EV], dlen[MAX_EV], ilen[MAX_EV], raw[MAX_EV];
    long retry[MAX_EV];
    int stop_after; /* stop (return 7) once this many events were seen; 0 = never */
} rec_t;

static char *memdup0(const char *p, size_t n)
{
    char *c = malloc(n + 1);
    assert_non_null(c);
    if (n)
        memcpy(c, p, n);
    c[n] = '\0';
    return c;
}

static int rec_cb(void *ud, const agw_sse_event *ev)
{
    rec_t *r = ud;
    assert_true(r->n < MAX_EV);
    r->event[r->n] = memdup0(ev->event.ptr, ev->event.len);
    r->elen[r->n] = ev->event.len;
    r->data[r->n] = memdup0(ev->data.ptr, ev->data.len);
    r->dlen[r->n] = ev->data.len;
    r->id[r->n] = memdup0(ev->id.ptr, ev->id.len);
    r->ilen[r->n] = ev->id.len;
    r->retry[r->n] = ev->retry;
    r->raw[r->n] = ev->raw_len;
    r->n++;
    return r->stop_after && r->n >= r->stop_after ? 7 : 0;
}

static void rec_free(rec_t *r)
{
    for (int i = 0; i < r->n; i++) {
        free(r->event[i]);
        free(r->data[i]);
        free(r->id[i]);
    }
    memset(r, 0, sizeof(*r));
}

static void assert_rec_equal(const rec_t *a, const rec_t *b)
{
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        assert_int_equal(a->elen[i], b->elen[i]);
        assert_memory_equal(a->event[i], b->event[i], a->elen[i] + 1);
        assert_int_equal(a->dlen[i], b->dlen[i]);
        assert_memory_equal(a->data[i], b->data[i], a->dlen[i] + 1);
        assert_int_equal(a->ilen[i], b->ilen[i]);
        assert_memory_equal(a->id[i], b->id[i], a->ilen[i] + 1);
        assert_int_equal(a->retry[i], b->retry[i]);
        assert_int_equal(a->raw[i], b->raw[i]);
    }
}

#define assert_ev(r, i, ev, d)                                            \
    do {                                                                  \
        assert_int_equal((r)->elen[i], sizeof(ev) - 1);                   \
        assert_memory_equal((r)->event[i], ev, sizeof(ev) - 1);           \
        assert_int_equal((r)->dlen[i], sizeof(d) - 1);                    \
        assert_memory_equal((r)->data[i], d, sizeof(d) - 1);              \
    } while (0)

/* Feeds s in chunks of `step` bytes (0 = all at once); returns finish's verdict. */
static agw_err run(const char *s, size_t len, size_t step, size_t max, rec_t *r, agw_sse_parser *out)
{
    agw_sse_parser p = AGW_SSE_PARSER_INIT(max);
    agw_err e = AGW_OK, f;

    if (step == 0)
        step = len ? len : 1;
    for (size_t off = 0; off < len && e == AGW_OK; off += step) {
        size_t n = len - off < step ? len - off : step;
        e = agw_sse_feed(&p, s + off, n, rec_cb, r);
    }
    f = agw_sse_finish(&p);
    if (e != AGW_OK)
        assert_int_equal(f, e);
    if (out)
        *out = p;
    else
        agw_sse_free(&p);
    return f;
}

/* Feeds in two pieces split at `at`. */
static agw_err run2(const char *s, size_t len, size_t at, size_t max, rec_t *r)
{
    agw_sse_parser p = AGW_SSE_PARSER_INIT(max);
    agw_err e = agw_sse_feed(&p, s, at, rec_cb, r);
    if (e == AGW_OK)
        e = agw_sse_feed(&p, s + at, len - at, rec_cb, r);
    agw_err f = agw_sse_finish(&p);
    agw_sse_free(&p);
    if (e != AGW_OK)
        assert_int_equal(f, e);
    return f;
}

#define S(lit) lit, sizeof(lit) - 1

static const char anthropic[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\","
    "\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-3-5-sonnet-20241022\","
    "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n"
    "\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"! Gr\xC3\xBC\xC3\x9F" "e \xF0\x9F\x91\x8B\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n"
    "\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},"
    "\"usage\":{\"output_tokens\":15}}\n"
    "\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n"
    "\n";

static const char openai[] =
    "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
    "\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
    "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},"
    "\"logprobs\":null,\"finish_reason\":null}]}\n"
    "\n"
    ": keep-alive\n"
    "\n"
    "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
    "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
    "\"finish_reason\":\"stop\"}]}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
    "\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,"
    "\"total_tokens\":21}}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

static void test_basic_event(void **state)
{
    rec_t r = { 0 };
    agw_sse_parser p;
    (void)state;

    assert_int_equal(run(S("event: delta\ndata: hello\nid: 42\nretry: 1500\n\n"), 0, 1024, &r, &p),
                     AGW_OK);
    assert_int_equal(r.n, 1);
    assert_ev(&r, 0, "delta", "hello");
    assert_int_equal(r.ilen[0], 2);
    assert_string_equal(r.id[0], "42");
    assert_int_equal(r.retry[0], 1500);
    assert_int_equal(r.raw[0], 45);
    assert_int_equal(p.events, 1);
    assert_int_equal(p.comments, 0);
    assert_int_equal(p.last_retry, 1500);
    assert_int_equal(p.stop, 0);
    assert_int_equal(p.err, AGW_OK);
    agw_sse_free(&p);
    rec_free(&r);
}

/* want_raw: the sum of raw_len over all events. */
static void check_fixture(const char *s, size_t len, int want_events, size_t want_raw)
{
    rec_t one = { 0 }, split = { 0 };
    size_t total = 0;

    assert_int_equal(run(s, len, 0, 4096, &one, NULL), AGW_OK);
    assert_int_equal(one.n, want_events);
    for (int i = 0; i < one.n; i++)
        total += one.raw[i];
    assert_int_equal(total, want_raw);

    for (size_t step = 1; step <= 7; step++) {
        assert_int_equal(run(s, len, step, 4096, &split, NULL), AGW_OK);
        assert_rec_equal(&one, &split);
        rec_free(&split);
    }
    for (size_t at = 0; at <= len; at++) {
        assert_int_equal(run2(s, len, at, 4096, &split), AGW_OK);
        assert_rec_equal(&one, &split);
        rec_free(&split);
    }
    rec_free(&one);
}

static void test_anthropic_stream(void **state)
{
    rec_t r = { 0 };
    (void)state;

    check_fixture(S(anthropic), 8, sizeof(anthropic) - 1);
    assert_int_equal(run(S(anthropic), 1, 4096, &r, NULL), AGW_OK);
    assert_ev(&r, 0, "message_start",
              "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\","
              "\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-3-5-sonnet-20241022\","
              "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}");
    assert_ev(&r, 2, "ping", "{\"type\": \"ping\"}");
    assert_ev(&r, 4, "content_block_delta",
              "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
              "\"text\":\"! Gr\xC3\xBC\xC3\x9F" "e \xF0\x9F\x91\x8B\"}}");
    assert_ev(&r, 7, "message_stop", "{\"type\":\"message_stop\"}");
    assert_int_equal(r.raw[7], sizeof("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n") - 1);
    assert_int_equal(r.ilen[7], 0);
    assert_int_equal(r.retry[7], -1);
    rec_free(&r);
}

static void test_openai_stream(void **state)
{
    rec_t r = { 0 };
    agw_sse_parser p;
    (void)state;

    /* The keep-alive comment and its blank line belong to no event. */
    check_fixture(S(openai), 5, sizeof(openai) - 1 - (sizeof(": keep-alive\n\n") - 1));
    assert_int_equal(run(S(openai), 3, 4096, &r, &p), AGW_OK);
    assert_int_equal(p.comments, 1);
    assert_int_equal(p.events, 5);
    agw_sse_free(&p);
    for (int i = 0; i < 5; i++)
        assert_int_equal(r.elen[i], 0);
    assert_ev(&r, 4, "", "[DONE]");
    assert_ev(&r, 1, "",
              "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
              "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},"
              "\"logprobs\":null,\"finish_reason\":null}]}");
    rec_free(&r);
}

/* Rewrites every "\n" of src as `eol`. */
static char *with_eol(const char *src, size_t len, const char *eol, size_t *outlen)
{
    size_t el = strlen(eol), n = 0;
    char *o = malloc(len * el + 1);
    assert_non_null(o);
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\n') {
            memcpy(o + n, eol, el);
            n += el;
        } else {
            o[n++] = src[i];
        }
    }
    *outlen = n;
    return o;
}

static void test_line_endings_equivalent(void **state)
{
    rec_t lf = { 0 }, other = { 0 };
    const char *eols[] = { "\r\n", "\r" };
    (void)state;

    assert_int_equal(run(S(anthropic), 0, 4096, &lf, NULL), AGW_OK);
    for (size_t k = 0; k < 2; k++) {
        size_t n;
        char *s = with_eol(anthropic, sizeof(anthropic) - 1, eols[k], &n);
        /* With CRLF the LF ending the last blank line belongs to no event. */
        check_fixture(s, n, 8, k == 0 ? n - 1 : n);
        assert_int_equal(run(s, n, 1, 4096, &other, NULL), AGW_OK);
        assert_int_equal(other.n, lf.n);
        for (int i = 0; i < lf.n; i++) {
            assert_int_equal(other.dlen[i], lf.dlen[i]);
            assert_memory_equal(other.data[i], lf.data[i], lf.dlen[i]);
            assert_string_equal(other.event[i], lf.event[i]);
        }
        rec_free(&other);
        free(s);
    }
    rec_free(&lf);
}

static void test_cr_at_end_of_feed(void **state)
{
    agw_sse_parser p = AGW_SSE_PARSER_INIT(1024);
    rec_t r = { 0 };
    (void)state;

    /* The LF completing "x\r" must not count as a blank line. */
    assert_int_equal(agw_sse_feed(&p, S("data: x\r"), rec_cb, &r), AGW_OK);
    assert_int_equal(agw_sse_feed(&p, S("\n"), rec_cb, &r), AGW_OK);
    assert_int_equal(r.n, 0);
    assert_int_equal(agw_sse_finish(&p), AGW_EPEER);
    assert_int_equal(agw_sse_feed(&p, S("data: y\r"), rec_cb, &r), AGW_OK);
    assert_int_equal(agw_sse_feed(&p, S("\n\r"), rec_cb, &r), AGW_OK);
    /* The blank line's CR dispatches at once, without waiting for its LF. */
    assert_int_equal(r.n, 1);
    assert_ev(&r, 0, "", "x\ny");
    assert_int_equal(r.raw[0], 19);
    assert_int_equal(agw_sse_feed(&p, S("\n"), rec_cb, &r), AGW_OK);
    assert_int_equal(r.n, 1);
    assert_int_equal(agw_sse_finish(&p), AGW_OK);
    /* A CR then a non-LF: the CR alone ended the line. */
    assert_int_equal(agw_sse_feed(&p, S("data: z\r"), rec_cb, &r), AGW_OK);
    assert_int_equal(agw_sse_feed(&p, S("\r"), rec_cb, &r), AGW_OK);
    assert_int_equal(r.n, 2);
    assert_ev(&r, 1, "", "z");
    /* The LF after the dispatching CR counts toward the next event. */
    assert_int_equal(r.raw[1], 1 + 9);
    agw_sse_free(&p);
    rec_free(&r);
}

static void test_crlf_raw_len(void **state)
{
    rec_t r = { 0 };
    (void)state;

    assert_int_equal(run(S("data: a\r\n\r\ndata: b\r\n\r\n"), 0, 64, &r, NULL), AGW_OK);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.raw[0], 10);
    assert_int_equal(r.raw[1], 11);
    rec_free(&r);
    assert_int_equal(run(S("data: a\r\rdata: b\r\r"), 0, 64, &r, NULL), AGW_OK);
    assert_int_equal(r.n, 2);
    assert_ev(&r, 0, "", "a");
    assert_ev(&r, 1, "", "b");
    assert_int_equal(r.raw[0], 9);
    assert_int_equal(r.raw[1], 9);
    rec_free(&r);
}

static void test_field_rules(void **state)
{
    rec_t r = { 0 };
    (void)state;

    assert_int_equal(run(S("data:a\n"
                           "data:  two\n"
                           "data\n"
                           "data:\n"
                           "DATA: upper\n"
                           "foo: bar\n"
                           "event:e:with:colons\n"
                           "data: last\n\n"),
                         0, 1024, &r, NULL),
                     AGW_OK);
    assert_int_equal(r.n, 1);
    assert_ev(&r, 0, "e:with:colons", "a\n two\n\n\nlast");
    rec_free(&r);

    /* "event" without a colon resets the type to empty; later fields win. */
    assert_int_equal(run(S("event: a\nevent\ndata\n\nevent: b\nevent: c\nid: 1\nid: 2\ndata: x\n\n"),
                         1, 1024, &r, NULL),
                     AGW_OK);
    assert_int_equal(r.n, 2);
    assert_ev(&r, 0, "", "");
    assert_ev(&r, 1, "c", "x");
    assert_string_equal(r.id[1], "2");
    rec_free(&r);
}

static void test_comments(void **state)
{
    rec_t r = { 0 };
    agw_sse_parser p;
    (void)state;

    assert_int_equal(run(S(":\n: ping\n\ndata: a\n:inside\ndata: b\n\n:tail\n"), 0, 1024, &r, &p),
                     AGW_OK);
    assert_int_equal(p.comments, 4);
    assert_int_equal(r.n, 1);
    assert_ev(&r, 0, "", "a\nb");
    agw_sse_free(&p);
    rec_free(&r);
}

static void test_no_data_events(void **state)
{
    rec_t r = { 0 };
    agw_sse_parser p;
    (void)state;

    assert_int_equal(run(S("event: ping\nid: 7\nretry: 10\n\n\n\ndata: z\n\n"), 0, 1024, &r, &p), AGW_OK);
    assert_int_equal(r.n, 1);
    assert_ev(&r, 0, "", "z");
    assert_int_equal(r.ilen[0], 0);
    assert_int_equal(r.retry[0], -1);
    assert_int_equal(r.raw[0], 9);
    assert_int_equal(p.last_retry, 10);
    assert_int_equal(p.events, 1);
    agw_sse_free(&p);
    rec_free(&r);
}

static void test_retry_and_id(void **state)
{
    rec_t r = { 0 };
    agw_sse_parser p;
    (void)state;

    assert_int_equal(run(S("retry: 3000\nid: abc\ndata: 1\n\n"
                           "retry: 3s\ndata: 2\n\n"
                           "retry: -5\ndata: 3\n\n"
                           "retry: 99999999999999999999999\ndata: 4\n\n"
                           "retry: 12\nretry:\ndata: 5\n\n"
                           "id: ok\nid: a\0b\ndata: 6\n\n"
                           "retry:  7\ndata: 7\n\n"),
                         0, 1024, &r, &p),
                     AGW_OK);
    assert_int_equal(r.n, 7);
    assert_int_equal(r.retry[0], 3000);
    assert_string_equal(r.id[0], "abc");
    assert_int_equal(r.retry[1], -1);
    assert_int_equal(r.ilen[1], 0);
    assert_int_equal(r.retry[2], -1);
    assert_int_equal(r.retry[3], -1);
    assert_int_equal(r.retry[4], 12);
    /* An id containing NUL is ignored, leaving the earlier one. */
    assert_int_equal(r.ilen[5], 2);
    assert_string_equal(r.id[5], "ok");
    /* Only one space is dropped, and " 7" is not all digits. */
    assert_int_equal(r.retry[6], -1);
    assert_int_equal(p.last_retry, 12);
    agw_sse_free(&p);
    rec_free(&r);
}

static void test_nul_in_data(void **state)
{
    rec_t r = { 0 }, s = { 0 };
    static const char in[] = "event: a\0b\ndata: x\0y\ndata: \0\n\n";
    (void)state;

    assert_int_equal(run(in, sizeof(in) - 1, 0, 1024, &r, NULL), AGW_OK);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.elen[0], 3);
    assert_memory_equal(r.event[0], "a\0b", 3);
    assert_int_equal(r.dlen[0], 5);
    assert_memory_equal(r.data[0], "x\0y\n\0", 5);
    assert_int_equal(run(in, sizeof(in) - 1, 1, 1024, &s, NULL), AGW_OK);
    assert_rec_equal(&r, &s);
    rec_free(&r);
    rec_free(&s);
}

static void test_utf8_split(void **state)
{
    static const char in[] = "data: \xE2\x82\xAC \xF0\x9F\x98\x80 \xC3\xA9\n\n";
    rec_t r = { 0 };
    (void)state;

    for (size_t at = 0; at < sizeof(in); at++) {
        assert_int_equal(run2(in, sizeof(in) - 1, at, 1024, &r), AGW_OK);
        assert_int_equal(r.n, 1);
        assert_ev(&r, 0, "", "\xE2\x82\xAC \xF0\x9F\x98\x80 \xC3\xA9");
        rec_free(&r);
    }
}

static void test_bom(void **state)
{
    rec_t r = { 0 };
    static const char bom[] = "\xEF\xBB\xBF" "data: a\n\n";
    static const char two[] = "\xEF\xBB\xBF\xEF\xBB\xBF" "data: a\n\ndata: b\n\n";
    static const char part[] = "\xEF\xBBZ\ndata: q\n\n";
    static const char mid[] = "data: a\n\n\xEF\xBB\xBF" "data: b\n\n";
    (void)state;

    for (size_t step = 0; step <= 4; step++) {
        assert_int_equal(run(bom, sizeof(bom) - 1, step, 1024, &r, NULL), AGW_OK);
        assert_int_equal(r.n, 1);
        assert_ev(&r, 0, "", "a");
        assert_int_equal(r.raw[0], 9);
        rec_free(&r);

        /* Only the first BOM is skipped; the second makes an unknown field. */
        assert_int_equal(run(two, sizeof(two) - 1, step, 1024, &r, NULL), AGW_OK);
        assert_int_equal(r.n, 1);
        assert_ev(&r, 0, "", "b");
        rec_free(&r);

        /* A BOM prefix that turns out not to be one is kept as line bytes. */
        assert_int_equal(run(part, sizeof(part) - 1, step, 1024, &r, NULL), AGW_OK);
        assert_int_equal(r.n, 1);
        assert_ev(&r, 0, "", "q");
        assert_int_equal(r.raw[0], 4 + 9);
        rec_free(&r);

        assert_int_equal(run(mid, sizeof(mid) - 1, step, 1024, &r, NULL), AGW_OK);
        assert_int_equal(r.n, 1);
        assert_ev(&r, 0, "", "a");
        rec_free(&r);
    }
    /* A stream that stops inside what could be a BOM is truncated. */
    assert_int_equal(run(S("\xEF\xBB"), 0, 1024, &r, NULL), AGW_EPEER);
    assert_int_equal(run(S("\xEF\xBB\xBF"), 0, 1024, &r, NULL), AGW_OK);
    assert_int_equal(r.n, 0);
}

static void test_too_big(void **state)
{
    rec_t r = { 0 };
    agw_sse_parser p = AGW_SSE_PARSER_INIT(18);
    static const char ev[] = "data: 0123456789\n\n"; /* 18 bytes */
    (void)state;

    for (size_t step = 0; step <= 3; step++) {
        assert_int_equal(run(ev, sizeof(ev) - 1, step, 18, &r, NULL), AGW_OK);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.raw[0], 18);
        rec_free(&r);
        assert_int_equal(run(ev, sizeof(ev) - 1, step, 17, &r, NULL), AGW_ETOOBIG);
        assert_int_equal(r.n, 0);
    }

    /* Earlier events still come out; the failure is sticky. */
    assert_int_equal(agw_sse_feed(&p, S("data: a\n\ndata: 0123456789abcdef\n\ndata: b\n\n"), rec_cb, &r),
                     AGW_ETOOBIG);
    assert_int_equal(r.n, 1);
    assert_ev(&r, 0, "", "a");
    assert_int_equal(p.err, AGW_ETOOBIG);
    assert_int_equal(agw_sse_feed(&p, S("data: c\n\n"), rec_cb, &r), AGW_ETOOBIG);
    assert_int_equal(agw_sse_finish(&p), AGW_ETOOBIG);
    assert_int_equal(r.n, 1);
    agw_sse_free(&p);
    rec_free(&r);

    /* A line that never ends is cut off without waiting for its end. */
    agw_sse_init(&p, 50);
    for (int i = 0; i < 5; i++)
        assert_int_equal(agw_sse_feed(&p, S("data: 0123"), rec_cb, &r), AGW_OK);
    assert_int_equal(agw_sse_feed(&p, S("data: 0123456789012345678901234567890123456789"), rec_cb, &r),
                     AGW_ETOOBIG);
    agw_sse_free(&p);

    /* Comments count toward the event they sit in. */
    assert_int_equal(run(S(": 0123456789\ndata: x\n\n"), 0, 20, &r, NULL), AGW_ETOOBIG);
    assert_int_equal(run(S(": 0123456789\n\ndata: x\n\n"), 0, 20, &r, NULL), AGW_OK);
    assert_int_equal(r.n, 1);
    rec_free(&r);
}

static void test_stop(void **state)
{
    rec_t r = { .stop_after = 2 };
    agw_sse_parser p = AGW_SSE_PARSER_INIT(1024);
    (void)state;

    assert_int_equal(agw_sse_feed(&p, S("data: 1\n\ndata: 2\n\ndata: 3\n\n"), rec_cb, &r), AGW_OK);
    assert_int_equal(r.n, 2);
    assert_int_equal(p.stop, 7);
    assert_int_equal(p.events, 2);
    assert_int_equal(agw_sse_feed(&p, S("data: 4\n\n"), rec_cb, &r), AGW_OK);
    assert_int_equal(r.n, 2);
    assert_int_equal(agw_sse_finish(&p), AGW_OK);
    agw_sse_free(&p);
    rec_free(&r);
}

static void test_finish(void **state)
{
    rec_t r = { 0 };
    (void)state;

    assert_int_equal(run(S(""), 0, 64, &r, NULL), AGW_OK);
    assert_int_equal(run(S("data: a\n\n"), 0, 64, &r, NULL), AGW_OK);
    rec_free(&r);
    assert_int_equal(run(S("data: a\n\n: bye\n"), 0, 64, &r, NULL), AGW_OK);
    rec_free(&r);
    assert_int_equal(run(S("data: a"), 0, 64, &r, NULL), AGW_EPEER);
    assert_int_equal(run(S("data: a\n"), 0, 64, &r, NULL), AGW_EPEER);
    assert_int_equal(run(S("event: x\n"), 0, 64, &r, NULL), AGW_EPEER);
    assert_int_equal(run(S("data: a\r"), 0, 64, &r, NULL), AGW_EPEER);
    assert_int_equal(run(S(": partial comment"), 0, 64, &r, NULL), AGW_EPEER);
    assert_int_equal(r.n, 0);
}

static void test_null_callback(void **state)
{
    agw_sse_parser p;
    (void)state;

    agw_sse_init(&p, 64);
    assert_int_equal(agw_sse_feed(&p, S("data: a\n\ndata: b\n\n"), NULL, NULL), AGW_OK);
    assert_int_equal(agw_sse_feed(&p, NULL, 0, NULL, NULL), AGW_OK);
    assert_int_equal(p.events, 2);
    agw_sse_free(&p);
}

/* ---- writer ---- */

static void assert_buf(const agw_buf *b, const char *want, size_t n)
{
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}

static void test_write(void **state)
{
    agw_buf out = AGW_BUF_INIT(1024);
    (void)state;

    assert_int_equal(agw_sse_write(&out, AGW_STR_LIT("delta"), AGW_STR_LIT("a\nb")), AGW_OK);
    assert_buf(&out, S("event: delta\ndata: a\ndata: b\n\n"));
    agw_buf_reset(&out);
    assert_int_equal(agw_sse_write(&out, AGW_STR_LIT(""), AGW_STR_LIT("[DONE]")), AGW_OK);
    assert_buf(&out, S("data: [DONE]\n\n"));
    agw_buf_reset(&out);
    assert_int_equal(agw_sse_write(&out, AGW_STR_LIT(""), AGW_STR_LIT("")), AGW_OK);
    assert_buf(&out, S("data:\n\n"));
    agw_buf_reset(&out);
    assert_int_equal(agw_sse_write(&out, AGW_STR_LIT(""), AGW_STR_LIT("a\r\nb\rc\n")), AGW_OK);
    assert_buf(&out, S("data: a\ndata: b\ndata: c\ndata:\n\n"));
    agw_buf_reset(&out);
    assert_int_equal(agw_sse_write(&out, AGW_STR_LIT(""), AGW_STR_LIT(" lead")), AGW_OK);
    assert_buf(&out, S("data:  lead\n\n"));

    agw_buf_reset(&out);
    assert_int_equal(agw_sse_write(&out, AGW_STR_LIT("x"), AGW_STR_LIT("")), AGW_OK);
    assert_int_equal(agw_sse_write(&out, AGW_STR_LIT("bad\nname"), AGW_STR_LIT("d")), AGW_EINVAL);
    assert_int_equal(agw_sse_write(&out, AGW_STR_LIT("bad\rname"), AGW_STR_LIT("d")), AGW_EINVAL);
    assert_buf(&out, S("event: x\ndata:\n\n"));

    agw_buf_reset(&out);
    assert_int_equal(agw_sse_write_comment(&out, AGW_STR_LIT("keep\nalive")), AGW_OK);
    assert_int_equal(agw_sse_write_comment(&out, AGW_STR_LIT("")), AGW_OK);
    assert_buf(&out, S(": keep\n: alive\n:\n"));
    agw_buf_free(&out);
}

static void test_write_event(void **state)
{
    agw_buf out = AGW_BUF_INIT(1024);
    agw_sse_event ev = { AGW_STR_LIT("e"), AGW_STR_LIT("x"), AGW_STR_LIT("5"), 100, 0 };
    rec_t r = { 0 };
    (void)state;

    assert_int_equal(agw_sse_write_event(&out, &ev), AGW_OK);
    assert_buf(&out, S("event: e\nid: 5\nretry: 100\ndata: x\n\n"));
    assert_int_equal(run(out.data, out.len, 1, 1024, &r, NULL), AGW_OK);
    assert_int_equal(r.n, 1);
    assert_ev(&r, 0, "e", "x");
    assert_string_equal(r.id[0], "5");
    assert_int_equal(r.retry[0], 100);
    rec_free(&r);

    agw_buf_reset(&out);
    ev.retry = 0;
    ev.id = AGW_STR_LIT("");
    assert_int_equal(agw_sse_write_event(&out, &ev), AGW_OK);
    assert_buf(&out, S("event: e\nretry: 0\ndata: x\n\n"));
    ev.id = (agw_str){ "a\0b", 3 };
    assert_int_equal(agw_sse_write_event(&out, &ev), AGW_EINVAL);
    ev.id = AGW_STR_LIT("a\nb");
    assert_int_equal(agw_sse_write_event(&out, &ev), AGW_EINVAL);
    assert_buf(&out, S("event: e\nretry: 0\ndata: x\n\n"));
    agw_buf_free(&out);
}

static void test_write_round_trip(void **state)
{
    static const struct {
        const char *in;
        size_t inlen;
        const char *want;
        size_t wantlen;
    } cases[] = {
        { S("plain"), S("plain") },
        { S(""), S("") },
        { S("\n"), S("\n") },
        { S("a\n\nb\n"), S("a\n\nb\n") },
        { S("  spaced  "), S("  spaced  ") },
        { S(":colon:"), S(":colon:") },
        { S("nul\0inside"), S("nul\0inside") },
        { S("x\n\nevent: evil\ndata: y"), S("x\n\nevent: evil\ndata: y") },
        { S("cr\rlf\ncrlf\r\nend"), S("cr\nlf\ncrlf\nend") },
        { S("\r\n\r"), S("\n\n") },
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        agw_buf out = AGW_BUF_INIT(1024);
        rec_t r = { 0 };
        assert_int_equal(agw_sse_write(&out, AGW_STR_LIT("t"), (agw_str){ cases[i].in, cases[i].inlen }),
                         AGW_OK);
        assert_int_equal(run(out.data, out.len, 0, 1024, &r, NULL), AGW_OK);
        assert_int_equal(r.n, 1);
        assert_string_equal(r.event[0], "t");
        assert_int_equal(r.dlen[0], cases[i].wantlen);
        assert_memory_equal(r.data[0], cases[i].want, cases[i].wantlen);
        assert_int_equal(r.raw[0], out.len);
        rec_free(&r);
        agw_buf_free(&out);
    }
}

static void test_write_cap(void **state)
{
    agw_buf out = AGW_BUF_INIT(10);
    (void)state;

    assert_int_equal(agw_sse_write(&out, AGW_STR_LIT(""), AGW_STR_LIT("0123456789")), AGW_ETOOBIG);
    assert_int_equal(out.len, 0);
    assert_int_equal(agw_sse_write_comment(&out, AGW_STR_LIT("0123456789")), AGW_ETOOBIG);
    agw_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_event),
        cmocka_unit_test(test_anthropic_stream),
        cmocka_unit_test(test_openai_stream),
        cmocka_unit_test(test_line_endings_equivalent),
        cmocka_unit_test(test_cr_at_end_of_feed),
        cmocka_unit_test(test_crlf_raw_len),
        cmocka_unit_test(test_field_rules),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_no_data_events),
        cmocka_unit_test(test_retry_and_id),
        cmocka_unit_test(test_nul_in_data),
        cmocka_unit_test(test_utf8_split),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_finish),
        cmocka_unit_test(test_null_callback),
        cmocka_unit_test(test_write),
        cmocka_unit_test(test_write_event),
        cmocka_unit_test(test_write_round_trip),
        cmocka_unit_test(test_write_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

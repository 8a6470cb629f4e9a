/* Unit tests for core/eventstream: CRC-32, every header type, every split
 * of the bytes, bad CRCs, lengths and header blocks, the frame cap, a
 * stream that ends inside a frame. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/eventstream.h"

#define MAX_MSG 16

typedef struct {
    int n;
    char *payload[MAX_MSG];
    size_t plen[MAX_MSG];
    char *event_type[MAX_MSG];
    size_t n_headers[MAX_MSG];
    agw_es_header h0[MAX_MSG][AGW_ES_MAX_HEADERS];
    char names[MAX_MSG][AGW_ES_MAX_HEADERS][32];
    int stop_after;
} rec_t;

static char *dup0(agw_str s)
{
    char *c = malloc(s.len + 1);
    assert_non_null(c);
    if (s.len)
        memcpy(c, s.ptr, s.len);
    c[s.len] = '\0';
    return c;
}

static int rec_cb(void *ud, const agw_es_message *m)
{
    rec_t *r = ud;
    assert_true(r->n < MAX_MSG);
    r->payload[r->n] = dup0(m->payload);
    r->plen[r->n] = m->payload.len;
    r->event_type[r->n] = dup0(agw_es_header_str(m, AGW_STR_LIT(":event-type")));
    r->n_headers[r->n] = m->n_headers;
    for (size_t i = 0; i < m->n_headers; i++) {
        r->h0[r->n][i] = m->headers[i];
        /* the views die with the callback: keep the numbers and the names */
        snprintf(r->names[r->n][i], 32, "%.*s", (int)m->headers[i].name.len,
                 m->headers[i].name.ptr);
        r->h0[r->n][i].name = (agw_str){ NULL, 0 };
        r->h0[r->n][i].bytes.ptr = NULL;
    }
    r->n++;
    return r->stop_after && r->n >= r->stop_after;
}

static void rec_free(rec_t *r)
{
    for (int i = 0; i < r->n; i++) {
        free(r->payload[i]);
        free(r->event_type[i]);
    }
    memset(r, 0, sizeof *r);
}

static void frame(agw_buf *out, const char *event_type, const char *payload)
{
    agw_es_header h[3] = {
        { AGW_STR_LIT(":message-type"), AGW_ES_STRING, 0, AGW_STR_LIT("event") },
        { AGW_STR_LIT(":event-type"), AGW_ES_STRING, 0, agw_str_c(event_type) },
        { AGW_STR_LIT(":content-type"), AGW_ES_STRING, 0, AGW_STR_LIT("application/json") },
    };
    assert_int_equal(agw_es_encode(out, h, 3, agw_str_c(payload)), AGW_OK);
}

static void test_crc32(void **state)
{
    (void)state;
    assert_int_equal(agw_crc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(agw_crc32(0, "", 0), 0);
    /* continued over two pieces = in one go */
    assert_int_equal(agw_crc32(agw_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
}

/* A frame built by an independent encoder (Python's struct and zlib.crc32)
 * with one header of every type and a JSON payload. */
static const unsigned char all_types[] = {
    0x00, 0x00, 0x00, 0x9b, 0x00, 0x00, 0x00, 0x7b, 0x04, 0x23, 0x61, 0xdc,
    0x0b, 0x3a, 0x65, 0x76, 0x65, 0x6e, 0x74, 0x2d, 0x74, 0x79, 0x70, 0x65,
    0x07, 0x00, 0x16, 0x61, 0x73, 0x73, 0x69, 0x73, 0x74, 0x61, 0x6e, 0x74,
    0x52, 0x65, 0x73, 0x70, 0x6f, 0x6e, 0x73, 0x65, 0x45, 0x76, 0x65, 0x6e,
    0x74, 0x01, 0x74, 0x00, 0x01, 0x66, 0x01, 0x02, 0x69, 0x38, 0x02, 0xcf,
    0x03, 0x69, 0x31, 0x36, 0x03, 0xfe, 0xd4, 0x03, 0x69, 0x33, 0x32, 0x04,
    0xff, 0xfe, 0xee, 0x90, 0x03, 0x69, 0x36, 0x34, 0x05, 0xff, 0xff, 0xff,
    0xfe, 0xd5, 0xfa, 0x0e, 0x00, 0x05, 0x62, 0x79, 0x74, 0x65, 0x73, 0x06,
    0x00, 0x03, 0x00, 0x01, 0xff, 0x02, 0x74, 0x73, 0x08, 0x00, 0x00, 0x01,
    0x8b, 0xcf, 0xe5, 0x68, 0x7b, 0x04, 0x75, 0x75, 0x69, 0x64, 0x09, 0x00,
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,
    0x0d, 0x0e, 0x0f, 0x7b, 0x22, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74,
    0x22, 0x3a, 0x22, 0x68, 0x69, 0x22, 0x7d, 0x49, 0xc8, 0x13, 0x36,
};

static const agw_es_header *hdr(const rec_t *r, int msg, const char *name)
{
    for (size_t i = 0; i < r->n_headers[msg]; i++)
        if (strcmp(r->names[msg][i], name) == 0)
            return &r->h0[msg][i];
    fail_msg("no header %s", name);
    return NULL;
}

static void test_every_header_type(void **state)
{
    (void)state;
    agw_es_decoder d;
    rec_t r;
    memset(&r, 0, sizeof r);
    agw_es_decoder_init(&d, 0);
    assert_int_equal(agw_es_feed(&d, (const char *)all_types, sizeof all_types, rec_cb, &r),
                     AGW_OK);
    assert_int_equal(agw_es_finish(&d), AGW_OK);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.payload[0], "{\"content\":\"hi\"}");
    assert_string_equal(r.event_type[0], "assistantResponseEvent");
    assert_int_equal(r.n_headers[0], 10);
    assert_int_equal(hdr(&r, 0, "t")->type, AGW_ES_TRUE);
    assert_int_equal(hdr(&r, 0, "t")->num, 1);
    assert_int_equal(hdr(&r, 0, "f")->type, AGW_ES_FALSE);
    assert_int_equal(hdr(&r, 0, "f")->num, 0);
    assert_int_equal(hdr(&r, 0, "i8")->num, -49);
    assert_int_equal(hdr(&r, 0, "i16")->num, -300);
    assert_int_equal(hdr(&r, 0, "i32")->num, -70000);
    assert_true(hdr(&r, 0, "i64")->num == -5000000000LL);
    assert_int_equal(hdr(&r, 0, "bytes")->type, AGW_ES_BYTES);
    assert_int_equal(hdr(&r, 0, "bytes")->bytes.len, 3);
    assert_int_equal(hdr(&r, 0, "ts")->type, AGW_ES_TIMESTAMP);
    assert_true(hdr(&r, 0, "ts")->num == 1700000000123LL);
    assert_int_equal(hdr(&r, 0, "uuid")->type, AGW_ES_UUID);
    assert_int_equal(hdr(&r, 0, "uuid")->bytes.len, 16);
    rec_free(&r);
    agw_es_decoder_free(&d);

    /* The encoder writes the same bytes from the same headers. */
    static const unsigned char uuid[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
    agw_es_header h[] = {
        { AGW_STR_LIT(":event-type"), AGW_ES_STRING, 0, AGW_STR_LIT("assistantResponseEvent") },
        { AGW_STR_LIT("t"), AGW_ES_TRUE, 1, { NULL, 0 } },
        { AGW_STR_LIT("f"), AGW_ES_FALSE, 0, { NULL, 0 } },
        { AGW_STR_LIT("i8"), AGW_ES_BYTE, -49, { NULL, 0 } },
        { AGW_STR_LIT("i16"), AGW_ES_SHORT, -300, { NULL, 0 } },
        { AGW_STR_LIT("i32"), AGW_ES_INT, -70000, { NULL, 0 } },
        { AGW_STR_LIT("i64"), AGW_ES_LONG, -5000000000LL, { NULL, 0 } },
        { AGW_STR_LIT("bytes"), AGW_ES_BYTES, 0, { "\x00\x01\xff", 3 } },
        { AGW_STR_LIT("ts"), AGW_ES_TIMESTAMP, 1700000000123LL, { NULL, 0 } },
        { AGW_STR_LIT("uuid"), AGW_ES_UUID, 0, { (const char *)uuid, 16 } },
    };
    agw_buf out = AGW_BUF_INIT(1 << 20);
    assert_int_equal(agw_es_encode(&out, h, 10, AGW_STR_LIT("{\"content\":\"hi\"}")), AGW_OK);
    assert_int_equal(out.len, sizeof all_types);
    assert_memory_equal(out.data, all_types, sizeof all_types);
    agw_buf_free(&out);
}

/* Three frames, cut at every pair of positions (and fed a byte at a time):
 * the same three messages every time. */
static void test_any_split(void **state)
{
    (void)state;
    agw_buf s = AGW_BUF_INIT(1 << 20);
    frame(&s, "assistantResponseEvent", "{\"content\":\"Hello\"}");
    frame(&s, "toolUseEvent", "{\"toolUseId\":\"t1\",\"name\":\"f\",\"input\":\"{}\",\"stop\":true}");
    frame(&s, "contextUsageEvent", "{\"contextUsagePercentage\":12.5}");
    for (size_t i = 0; i <= s.len; i++)
        for (size_t j = i; j <= s.len; j += (s.len / 23) + 1) {
            agw_es_decoder d;
            rec_t r;
            memset(&r, 0, sizeof r);
            agw_es_decoder_init(&d, 0);
            assert_int_equal(agw_es_feed(&d, s.data, i, rec_cb, &r), AGW_OK);
            assert_int_equal(agw_es_feed(&d, s.data + i, j - i, rec_cb, &r), AGW_OK);
            assert_int_equal(agw_es_feed(&d, s.data + j, s.len - j, rec_cb, &r), AGW_OK);
            assert_int_equal(agw_es_finish(&d), AGW_OK);
            assert_int_equal(r.n, 3);
            assert_string_equal(r.event_type[0], "assistantResponseEvent");
            assert_string_equal(r.payload[0], "{\"content\":\"Hello\"}");
            assert_string_equal(r.event_type[1], "toolUseEvent");
            assert_string_equal(r.event_type[2], "contextUsageEvent");
            assert_string_equal(r.payload[2], "{\"contextUsagePercentage\":12.5}");
            rec_free(&r);
            agw_es_decoder_free(&d);
        }
    agw_es_decoder d;
    rec_t r;
    memset(&r, 0, sizeof r);
    agw_es_decoder_init(&d, 0);
    for (size_t i = 0; i < s.len; i++)
        assert_int_equal(agw_es_feed(&d, s.data + i, 1, rec_cb, &r), AGW_OK);
    assert_int_equal(agw_es_finish(&d), AGW_OK);
    assert_int_equal(r.n, 3);
    rec_free(&r);
    agw_es_decoder_free(&d);
    agw_buf_free(&s);
}

/* A bad frame: the error, no message from it, and the same error after. */
static void expect_bad(const unsigned char *p, size_t n, size_t max_frame, agw_err want,
                       int messages_before)
{
    agw_es_decoder d;
    rec_t r;
    memset(&r, 0, sizeof r);
    agw_es_decoder_init(&d, max_frame);
    assert_int_equal(agw_es_feed(&d, (const char *)p, n, rec_cb, &r), want);
    assert_int_equal(r.n, messages_before);
    assert_true(agw_es_why(&d)[0] != '\0');
    /* sticky: even a good frame after it is refused */
    assert_int_equal(agw_es_feed(&d, (const char *)all_types, sizeof all_types, rec_cb, &r),
                     want);
    assert_int_equal(agw_es_finish(&d), want);
    assert_int_equal(r.n, messages_before);
    rec_free(&r);
    agw_es_decoder_free(&d);
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Fixes both CRCs of a frame whose lengths or headers a test changed. */
static void recrc(unsigned char *f, size_t len)
{
    put32(f + 8, agw_crc32(0, f, 8));
    put32(f + len - 4, agw_crc32(0, f, len - 4));
}

static void test_bad_frames(void **state)
{
    (void)state;
    unsigned char f[sizeof all_types * 2];
    size_t n = sizeof all_types;

    memcpy(f, all_types, n);
    f[9] ^= 1; /* prelude CRC */
    expect_bad(f, n, 0, AGW_EINVAL, 0);

    memcpy(f, all_types, n);
    f[n - 10] ^= 0x20; /* a payload byte: the message CRC no longer matches */
    expect_bad(f, n, 0, AGW_EINVAL, 0);

    memcpy(f, all_types, n);
    put32(f, 15); /* shorter than a frame can be */
    put32(f + 8, agw_crc32(0, f, 8));
    expect_bad(f, n, 0, AGW_EINVAL, 0);

    memcpy(f, all_types, n);
    put32(f + 4, (uint32_t)n - 15); /* headers longer than the frame holds */
    put32(f + 8, agw_crc32(0, f, 8));
    expect_bad(f, n, 0, AGW_EINVAL, 0);

    memcpy(f, all_types, n);
    f[12 + 1 + 11] = 10; /* the first header's type: unknown */
    recrc(f, n);
    expect_bad(f, n, 0, AGW_EINVAL, 0);

    memcpy(f, all_types, n);
    f[12] = 200; /* the first header's name runs past the block */
    recrc(f, n);
    expect_bad(f, n, 0, AGW_EINVAL, 0);

    memcpy(f, all_types, n);
    f[12 + 1 + 11 + 1 + 1] = 0xF0; /* the string's length runs past the block */
    recrc(f, n);
    expect_bad(f, n, 0, AGW_EINVAL, 0);

    /* Over the cap: refused from its prelude alone, before it is buffered. */
    unsigned char big[12];
    put32(big, 20u << 20);
    put32(big + 4, 0);
    put32(big + 8, agw_crc32(0, big, 8));
    expect_bad(big, sizeof big, 0, AGW_ETOOBIG, 0);
    expect_bad(all_types, n, 100, AGW_ETOOBIG, 0);

    /* A good frame, then garbage: the first gets through. */
    memcpy(f, all_types, n);
    memset(f + n, 'x', n);
    expect_bad(f, 2 * n, 0, AGW_EINVAL, 1);
}

static void test_end_inside_frame(void **state)
{
    (void)state;
    agw_es_decoder d;
    rec_t r;
    memset(&r, 0, sizeof r);
    agw_es_decoder_init(&d, 0);
    assert_int_equal(agw_es_feed(&d, (const char *)all_types, sizeof all_types - 1, rec_cb, &r),
                     AGW_OK);
    assert_int_equal(r.n, 0);
    assert_int_equal(agw_es_finish(&d), AGW_EPEER);
    agw_es_decoder_free(&d);

    /* A sink that stops keeps the bytes after its frame for the next feed. */
    agw_buf s = AGW_BUF_INIT(1 << 20);
    frame(&s, "a", "{}");
    frame(&s, "b", "{}");
    agw_es_decoder_init(&d, 0);
    r.stop_after = 1;
    assert_int_equal(agw_es_feed(&d, s.data, s.len, rec_cb, &r), AGW_OK);
    assert_int_equal(r.n, 1);
    r.stop_after = 0;
    assert_int_equal(agw_es_feed(&d, NULL, 0, rec_cb, &r), AGW_OK);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.event_type[1], "b");
    assert_int_equal(agw_es_finish(&d), AGW_OK);
    rec_free(&r);
    agw_es_decoder_free(&d);
    agw_buf_free(&s);
}

static void test_encode_refuses(void **state)
{
    (void)state;
    char name[300];
    memset(name, 'n', sizeof name);
    agw_es_header h = { { name, 256 }, AGW_ES_TRUE, 1, { NULL, 0 } };
    agw_buf out = AGW_BUF_INIT(1 << 20);
    assert_int_equal(agw_es_encode(&out, &h, 1, AGW_STR_LIT("")), AGW_EINVAL);
    h.name.len = 4;
    h.type = (agw_es_type)11;
    assert_int_equal(agw_es_encode(&out, &h, 1, AGW_STR_LIT("")), AGW_EINVAL);
    assert_int_equal(out.len, 0);
    agw_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32),
        cmocka_unit_test(test_every_header_type),
        cmocka_unit_test(test_any_split),
        cmocka_unit_test(test_bad_frames),
        cmocka_unit_test(test_end_inside_frame),
        cmocka_unit_test(test_encode_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

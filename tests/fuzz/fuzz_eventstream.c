/* libFuzzer target for lib/core/eventstream.
 *
 * Input layout: byte 0 seeds the chunking, byte 1 picks the frame cap
 * (0 = the default, else 16 << (byte & 15) bytes); the rest is the stream.
 * Invariants, any violation aborts:
 *  - feeding in pseudo-random chunks (empty ones included) and byte by byte
 *    gives exactly the messages, error and finish verdict of one feed;
 *  - a failed decoder stays failed with the same error, and says why;
 *  - every message fits the cap, and encoded again with agw_es_encode
 *    decodes to itself;
 *  - agw_es_finish is AGW_OK exactly when the feed succeeded and no partial
 *    frame is left.
 */
#include <string.h>

#include "fuzz_check.h"

#include "core/eventstream.h"

typedef struct {
    agw_buf log;   /* every message, serialised */
    size_t max_frame;
} run_t;

static void put(agw_buf *b, const void *p, size_t n)
{
    check(agw_buf_append(b, p, n) == AGW_OK, "append");
}

static void put_str(agw_buf *b, agw_str s)
{
    put(b, &s.len, sizeof s.len);
    put(b, s.ptr, s.len);
}

static void log_message(agw_buf *log, const agw_es_message *m)
{
    put(log, &m->n_headers, sizeof m->n_headers);
    for (size_t i = 0; i < m->n_headers; i++) {
        const agw_es_header *h = &m->headers[i];
        put_str(log, h->name);
        put(log, &h->type, sizeof h->type);
        put(log, &h->num, sizeof h->num);
        put_str(log, h->bytes);
    }
    put_str(log, m->payload);
}

static int reparse_cb(void *ud, const agw_es_message *m)
{
    agw_buf *log = ud;
    log_message(log, m);
    return 0;
}

static int sink(void *ud, const agw_es_message *m)
{
    run_t *r = ud;
    log_message(&r->log, m);
    check(m->payload.len + 16 <= r->max_frame, "a message fits the cap");

    /* Encoded again, it decodes to itself. */
    agw_buf out = AGW_BUF_INIT(SIZE_MAX), one = AGW_BUF_INIT(SIZE_MAX),
            again = AGW_BUF_INIT(SIZE_MAX);
    check(agw_es_encode(&out, m->headers, m->n_headers, m->payload) == AGW_OK, "re-encodes");
    log_message(&one, m);
    agw_es_decoder d;
    agw_es_decoder_init(&d, 0);
    check(agw_es_feed(&d, out.data, out.len, reparse_cb, &again) == AGW_OK &&
              agw_es_finish(&d) == AGW_OK,
          "the re-encoded frame decodes");
    check(agw_str_eq(agw_buf_view(&one), agw_buf_view(&again)), "to the same message");
    agw_es_decoder_free(&d);
    agw_buf_free(&out);
    agw_buf_free(&one);
    agw_buf_free(&again);
    return 0;
}

/* One run over the stream: whole (seed 0), in pseudo-random chunks, or a
 * byte at a time; appends its messages and verdicts to `log`. */
static agw_err run(const char *p, size_t n, size_t max_frame, unsigned seed, int bytewise,
                   agw_buf *log, agw_err *finish)
{
    run_t r = { AGW_BUF_INIT(SIZE_MAX), max_frame ? max_frame : AGW_ES_MAX_FRAME };
    agw_es_decoder d;
    agw_es_decoder_init(&d, max_frame);
    agw_err e = AGW_OK;
    size_t off = 0;
    while (off < n && e == AGW_OK) {
        size_t k = bytewise ? 1 : seed ? (seed = seed * 1103515245u + 12345u) % 97 : n - off;
        if (k > n - off)
            k = n - off;
        e = agw_es_feed(&d, p + off, k, sink, &r);
        off += k;
    }
    if (e != AGW_OK) {
        check(e == AGW_EINVAL || e == AGW_ETOOBIG, "errors are EINVAL or ETOOBIG");
        check(agw_es_why(&d)[0] != '\0', "a failure says why");
        check(agw_es_feed(&d, "x", 1, sink, &r) == e, "a failed decoder stays failed");
    }
    *finish = agw_es_finish(&d);
    check(e == AGW_OK ? (*finish == AGW_OK || *finish == AGW_EPEER) : *finish == e,
          "finish follows the feed");
    put(&r.log, &e, sizeof e);
    put(&r.log, finish, sizeof *finish);
    put(log, r.log.data, r.log.len);
    agw_buf_free(&r.log);
    agw_es_decoder_free(&d);
    return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned seed = data[0] | 1u;
    size_t max_frame = data[1] ? (size_t)16 << (data[1] & 15) : 0;
    const char *p = (const char *)data + 2;
    size_t n = size - 2;
    agw_buf a = AGW_BUF_INIT(SIZE_MAX), b = AGW_BUF_INIT(SIZE_MAX), c = AGW_BUF_INIT(SIZE_MAX);
    agw_err fa, fb, fc;
    run(p, n, max_frame, 0, 0, &a, &fa);
    run(p, n, max_frame, seed, 0, &b, &fb);
    check(agw_str_eq(agw_buf_view(&a), agw_buf_view(&b)), "chunked = whole");
    if (n < 4096) {
        run(p, n, max_frame, 0, 1, &c, &fc);
        check(agw_str_eq(agw_buf_view(&a), agw_buf_view(&c)), "byte by byte = whole");
    }
    agw_buf_free(&a);
    agw_buf_free(&b);
    agw_buf_free(&c);
    return 0;
}

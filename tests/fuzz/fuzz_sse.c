/* libFuzzer target for lib/core/sse.
 *
 * Input layout: byte 0 picks max_event_bytes, byte 1 seeds the chunking,
 * byte 2 picks after how many events a third run stops; the rest is the
 * stream. Invariants, any violation aborts:
 *  - feeding in pseudo-random chunks (empty ones included) and byte by byte
 *    gives exactly the events, counters, error and finish verdict of one feed;
 *  - a run stopped after k events saw exactly the first k events;
 *  - every event written back with agw_sse_write_event parses to itself;
 *  - the stream bytes written as data with agw_sse_write parse back as one
 *    event whose data is those bytes with CRLF and CR turned into LF, and
 *    written with agw_sse_write_comment parse as comments only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sse.h"

typedef struct {
    agw_buf log;   /* every event, serialised with lengths */
    size_t events;
    size_t stop_after;
    int check_writer;
} run_t;

static void log_bytes(run_t *r, const void *p, size_t n)
{
    if (agw_buf_append(&r->log, p, n) != AGW_OK)
        abort();
}

static void log_str(run_t *r, agw_str s)
{
    log_bytes(r, &s.len, sizeof(s.len));
    log_bytes(r, s.ptr, s.len);
}

static int reparse_cb(void *ud, const agw_sse_event *ev)
{
    const agw_sse_event *want = *(const agw_sse_event **)ud;
    if (!agw_str_eq(ev->event, want->event) || !agw_str_eq(ev->data, want->data) ||
        !agw_str_eq(ev->id, want->id) || ev->retry != want->retry)
        abort();
    *(const agw_sse_event **)ud = NULL;
    return 0;
}

static void check_writer(const agw_sse_event *ev)
{
    agw_buf out = AGW_BUF_INIT(SIZE_MAX);
    agw_sse_parser p = AGW_SSE_PARSER_INIT(SIZE_MAX);
    const agw_sse_event *want = ev;

    if (agw_sse_write_event(&out, ev) != AGW_OK)
        abort();
    if (agw_sse_feed(&p, out.data, out.len, reparse_cb, &want) != AGW_OK || want != NULL ||
        p.events != 1 || agw_sse_finish(&p) != AGW_OK)
        abort();
    agw_sse_free(&p);
    agw_buf_free(&out);
}

static int cb(void *ud, const agw_sse_event *ev)
{
    run_t *r = ud;

    log_str(r, ev->event);
    log_str(r, ev->data);
    log_str(r, ev->id);
    log_bytes(r, &ev->retry, sizeof(ev->retry));
    log_bytes(r, &ev->raw_len, sizeof(ev->raw_len));
    if (r->check_writer)
        check_writer(ev);
    r->events++;
    return r->stop_after && r->events == r->stop_after ? 1 : 0;
}

static void summarise(run_t *r, agw_sse_parser *p, agw_err fed)
{
    agw_err fin = agw_sse_finish(p);
    log_bytes(r, &fed, sizeof(fed));
    log_bytes(r, &fin, sizeof(fin));
    log_bytes(r, &p->comments, sizeof(p->comments));
    log_bytes(r, &p->events, sizeof(p->events));
    log_bytes(r, &p->last_retry, sizeof(p->last_retry));
    log_bytes(r, &p->stop, sizeof(p->stop));
    agw_sse_free(p);
}

static uint32_t next_rand(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

static int want_data_cb(void *ud, const agw_sse_event *ev)
{
    agw_buf *want = ud;
    if (ev->event.len != 0 || !agw_str_eq(ev->data, agw_buf_view(want)))
        abort();
    agw_buf_reset(want);
    return 0;
}

static int no_event_cb(void *ud, const agw_sse_event *ev)
{
    (void)ud;
    (void)ev;
    abort();
}

/* Arbitrary bytes through the writer: they may not inject anything. */
static void check_write_arbitrary(const char *s, size_t len)
{
    agw_buf out = AGW_BUF_INIT(SIZE_MAX), want = AGW_BUF_INIT(SIZE_MAX);
    agw_sse_parser p = AGW_SSE_PARSER_INIT(SIZE_MAX);
    unsigned long lines = 1;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\r' && i + 1 < len && s[i + 1] == '\n')
            i++;
        if (c == '\r' || c == '\n') {
            c = '\n';
            lines++;
        }
        if (agw_buf_append(&want, &c, 1) != AGW_OK)
            abort();
    }
    if (agw_sse_write(&out, (agw_str){ "", 0 }, (agw_str){ s, len }) != AGW_OK ||
        agw_sse_feed(&p, out.data, out.len, want_data_cb, &want) != AGW_OK || p.events != 1 ||
        agw_sse_finish(&p) != AGW_OK)
        abort();
    agw_sse_free(&p);

    agw_buf_reset(&out);
    agw_sse_init(&p, SIZE_MAX);
    if (agw_sse_write_comment(&out, (agw_str){ s, len }) != AGW_OK ||
        agw_sse_feed(&p, out.data, out.len, no_event_cb, NULL) != AGW_OK || p.comments != lines ||
        agw_sse_finish(&p) != AGW_OK)
        abort();
    agw_sse_free(&p);
    agw_buf_free(&out);
    agw_buf_free(&want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t maxes[] = { 0, 1, 2, 3, 8, 16, 64, 4096 };
    run_t one = { AGW_BUF_INIT(SIZE_MAX), 0, 0, 1 };
    run_t split = { AGW_BUF_INIT(SIZE_MAX), 0, 0, 0 };
    run_t bytes = { AGW_BUF_INIT(SIZE_MAX), 0, 0, 0 };
    run_t stopped = { AGW_BUF_INIT(SIZE_MAX), 0, 0, 0 };
    agw_sse_parser p;
    size_t max, len, off;
    const char *s;
    uint32_t seed;
    agw_err e;

    if (size < 3)
        return 0;
    max = maxes[data[0] & 7];
    seed = data[1];
    stopped.stop_after = data[2] % 8 + 1;
    s = (const char *)data + 3;
    len = size - 3;

    agw_sse_init(&p, max);
    e = agw_sse_feed(&p, s, len, cb, &one);
    summarise(&one, &p, e);

    agw_sse_init(&p, max);
    e = AGW_OK;
    for (off = 0; e == AGW_OK && off <= len;) {
        size_t n = next_rand(&seed) % 17;
        if (n > len - off)
            n = len - off;
        e = agw_sse_feed(&p, s + off, n, cb, &split);
        off += n;
        if (off == len && n == 0)
            break;
    }
    summarise(&split, &p, e);

    if (len <= 4096) {
        agw_sse_init(&p, max);
        e = AGW_OK;
        for (off = 0; e == AGW_OK && off < len; off++)
            e = agw_sse_feed(&p, s + off, 1, cb, &bytes);
        summarise(&bytes, &p, e);
        if (!agw_str_eq(agw_buf_view(&one.log), agw_buf_view(&bytes.log)))
            abort();
    }
    if (!agw_str_eq(agw_buf_view(&one.log), agw_buf_view(&split.log)))
        abort();

    /* A stopped run logs a prefix of the full run's events. */
    agw_sse_init(&p, max);
    e = agw_sse_feed(&p, s, len, cb, &stopped);
    if (e == AGW_OK && stopped.events == stopped.stop_after) {
        if (p.stop != 1 || agw_sse_finish(&p) != AGW_OK || stopped.log.len > one.log.len ||
            memcmp(stopped.log.data, one.log.data, stopped.log.len) != 0)
            abort();
        if (agw_sse_feed(&p, "data: x\n\n", 9, cb, &stopped) != AGW_OK || stopped.events != stopped.stop_after)
            abort();
    }
    agw_sse_free(&p);

    check_write_arbitrary(s, len);

    agw_buf_free(&one.log);
    agw_buf_free(&split.log);
    agw_buf_free(&bytes.log);
    agw_buf_free(&stopped.log);
    return 0;
}

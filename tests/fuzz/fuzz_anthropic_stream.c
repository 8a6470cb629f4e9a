/* libFuzzer target for the stream half of lib/proto/anthropic.
 *
 * The input is split on "\n\n" into SSE events; in each, an "event:" line
 * names the event and "data:" lines (one leading space dropped) are joined
 * with "\n", so seeds can be real upstream streams. Each event goes to the
 * stream decoder, whose IR events go to the checker of fuzz_ir_check.h, the
 * stream encoder and a fold. Invariants, any violation aborts:
 *  - decoder failures are AGW_EINVAL with a message, and stop the feeding;
 *  - events keep fuzz_ir_check.h's rules for an Anthropic stream, whose block
 *    and message events are the upstream's as they came (FUZZ_IR_STREAM,
 *    FUZZ_IR_PINGS, FUZZ_IR_ANTHROPIC, FUZZ_IR_RELAYED): one MESSAGE_START
 *    before any block or message event; nothing after MESSAGE_STOP or ERROR;
 *    block indexes >= 0; only the block kinds the Anthropic stream has (text,
 *    thinking, tool_use, redacted_thinking); ERROR (at any point) with a
 *    4xx/5xx status and a type; pings anywhere;
 *  - _end returns AGW_OK exactly when MESSAGE_STOP or ERROR was emitted;
 *  - the encoder accepts every event and writes only
 *    "event: <name>\ndata: <JSON object>\n\n";
 *  - decoding the encoder's output gives the same events again (ids, models
 *    and unknown counts aside, which the encoder fills in);
 *  - a fold that accepted every event and finished encodes to valid JSON or
 *    AGW_EINVAL (tool arguments that are not an object).
 */
#include <string.h>

#include "fuzz_ir_check.h"

#include "core/json.h"
#include "proto/anthropic.h"

static void put(agw_buf *b, const void *p, size_t n)
{
    check(agw_buf_append(b, p, n) == AGW_OK, "append");
}

static void put_str(agw_buf *b, agw_str s)
{
    put(b, &s.len, sizeof s.len);
    put(b, s.ptr, s.len);
}

static void put_int(agw_buf *b, int64_t v)
{
    put(b, &v, sizeof v);
}

/* The parts of an event that survive encode -> decode unchanged. */
static void log_event(agw_buf *log, const agw_ir_event *ev)
{
    put_int(log, ev->kind);
    switch (ev->kind) {
    case AGW_IR_EV_BLOCK_START:
        put_int(log, ev->index);
        put_int(log, ev->block);
        put_str(log, ev->tool_id);
        put_str(log, ev->tool_name);
        put_str(log, ev->delta);
        break;
    case AGW_IR_EV_BLOCK_DELTA:
        put_int(log, ev->index);
        put_int(log, ev->delta_kind);
        put_str(log, ev->delta);
        break;
    case AGW_IR_EV_BLOCK_STOP:
        put_int(log, ev->index);
        break;
    case AGW_IR_EV_MESSAGE_DELTA:
        put_int(log, ev->stop);
        put_str(log, ev->stop_sequence);
        put_int(log, ev->usage.input);
        put_int(log, ev->usage.output < 0 ? 0 : ev->usage.output);
        put_int(log, ev->usage.cache_read);
        put_int(log, ev->usage.cache_write);
        break;
    case AGW_IR_EV_ERROR:
        put_int(log, ev->status);
        break;
    default:
        break;
    }
}

typedef struct {
    fuzz_ir_checker chk;
    int fold_ok;
    agw_anthropic_stream_encoder enc;
    agw_buf out;
    agw_buf log;
    agw_ir_fold fold;
} state_t;

static int sink(void *ud, const agw_ir_event *ev)
{
    state_t *s = ud;
    size_t before = s->out.len;

    fuzz_ir_check(&s->chk, ev);
    if (ev->kind != AGW_IR_EV_PING && ev->kind != AGW_IR_EV_MESSAGE_START)
        log_event(&s->log, ev);
    check(agw_anthropic_encode_stream_event(&s->enc, ev, &s->out) == AGW_OK, "encoder accepts");

    /* The bytes just written are whole "event: X\ndata: {...}\n\n" events. */
    const char *p = s->out.data + before, *end = s->out.data + s->out.len;
    check(p < end, "every event writes something");
    while (p < end) {
        const char *nl, *dnl;
        check(end - p > 7 && memcmp(p, "event: ", 7) == 0, "event line");
        nl = memchr(p, '\n', (size_t)(end - p));
        check(nl && end - nl > 7 && memcmp(nl + 1, "data: ", 6) == 0, "data line");
        dnl = memchr(nl + 7, '\n', (size_t)(end - nl - 7));
        check(dnl && end - dnl >= 2 && dnl[1] == '\n', "blank line");
        agw_str json = { nl + 7, (size_t)(dnl - nl - 7) };
        check(agw_json_validate(json, 4096, NULL, 0) == AGW_OK &&
                  agw_json_type_of(json) == AGW_JSON_OBJECT,
              "data is a JSON object");
        p = dnl + 2;
    }

    if (s->fold_ok && agw_ir_fold_add(&s->fold, ev) != AGW_OK)
        s->fold_ok = 0;
    return 0;
}

/* Feeds every "\n\n"-separated event of the input; returns the last result. */
static agw_err feed_all(agw_anthropic_stream_decoder *d, const char *in, size_t len,
                        agw_ir_sink fn, void *ud, agw_buf *scratch)
{
    size_t off = 0;
    char err[256];

    while (off < len) {
        const char *start = in + off, *sep = NULL;
        size_t n;
        for (size_t i = off; i + 1 < len; i++)
            if (in[i] == '\n' && in[i + 1] == '\n') {
                sep = in + i;
                break;
            }
        n = sep ? (size_t)(sep - start) : len - off;
        off += n + (sep ? 2 : 0);

        agw_str event = { "", 0 };
        int have_data = 0;
        agw_buf_reset(scratch);
        for (size_t i = 0; i < n;) {
            const char *line = start + i, *nl = memchr(line, '\n', n - i);
            size_t ll = nl ? (size_t)(nl - line) : n - i;
            i += ll + 1;
            if (ll >= 6 && memcmp(line, "event:", 6) == 0) {
                event = (agw_str){ line + 6, ll - 6 };
                if (event.len && event.ptr[0] == ' ')
                    event = (agw_str){ event.ptr + 1, event.len - 1 };
            } else if (ll >= 5 && memcmp(line, "data:", 5) == 0) {
                agw_str v = { line + 5, ll - 5 };
                if (v.len && v.ptr[0] == ' ')
                    v = (agw_str){ v.ptr + 1, v.len - 1 };
                if (have_data)
                    put(scratch, "\n", 1);
                put(scratch, v.ptr, v.len);
                have_data = 1;
            }
        }
        if (!have_data)
            continue;
        err[0] = '\0';
        agw_err e = agw_anthropic_decode_stream_event(d, event, agw_buf_view(scratch), fn, ud,
                                                      err, sizeof err);
        check(e == AGW_OK || e == AGW_EINVAL, "decode returns OK or EINVAL");
        if (e != AGW_OK) {
            check(err[0] != '\0', "a failure has a message");
            return e;
        }
    }
    return AGW_OK;
}

static int relog_sink(void *ud, const agw_ir_event *ev)
{
    if (ev->kind != AGW_IR_EV_PING && ev->kind != AGW_IR_EV_MESSAGE_START)
        log_event(ud, ev);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agw_anthropic_stream_decoder d, d2;
    agw_buf scratch = AGW_BUF_INIT(SIZE_MAX), relog = AGW_BUF_INIT(SIZE_MAX);
    state_t s;

    memset(&s, 0, sizeof s);
    fuzz_ir_check_init(&s.chk,
                       FUZZ_IR_STREAM | FUZZ_IR_PINGS | FUZZ_IR_ANTHROPIC | FUZZ_IR_RELAYED);
    s.fold_ok = 1;
    agw_buf_init(&s.out, SIZE_MAX);
    agw_buf_init(&s.log, SIZE_MAX);
    agw_ir_fold_init(&s.fold, 1u << 20);
    agw_anthropic_stream_encoder_init(&s.enc, (agw_str){ "client-model", 12 }, (agw_str){ "", 0 });
    agw_anthropic_stream_decoder_init(&d);

    feed_all(&d, (const char *)data, size, sink, &s, &scratch);
    agw_err end = agw_anthropic_decode_stream_end(&d);
    check((end == AGW_OK) == (s.chk.ended != 0), "_end is OK exactly when the answer ended");

    /* What the encoder wrote decodes to the same events. */
    agw_anthropic_stream_decoder_init(&d2);
    check(feed_all(&d2, s.out.data ? s.out.data : "", s.out.len, relog_sink, &relog, &scratch) ==
              AGW_OK,
          "the encoder's output decodes");
    check(agw_str_eq(agw_buf_view(&s.log), agw_buf_view(&relog)), "to the same events");
    check(agw_anthropic_decode_stream_end(&d2) == end, "and ends the same way");

    if (s.fold_ok && s.fold.finished && !s.fold.failed) {
        agw_buf resp = AGW_BUF_INIT(SIZE_MAX);
        agw_err e = agw_anthropic_encode_response(&s.fold, (agw_str){ "m", 1 },
                                                  (agw_str){ "", 0 }, &resp);
        check(e == AGW_OK || e == AGW_EINVAL, "response encodes or is refused");
        if (e == AGW_OK)
            check(agw_json_validate(agw_buf_view(&resp), 4096, NULL, 0) == AGW_OK,
                  "a valid JSON response");
        agw_buf_free(&resp);
    }

    agw_anthropic_stream_decoder_free(&d);
    agw_anthropic_stream_decoder_free(&d2);
    agw_anthropic_stream_encoder_free(&s.enc);
    agw_ir_fold_free(&s.fold);
    agw_buf_free(&s.out);
    agw_buf_free(&s.log);
    agw_buf_free(&scratch);
    agw_buf_free(&relog);
    return 0;
}

/* libFuzzer target for the stream half of lib/proto/responses.
 *
 * The input is split on "\n\n" into SSE events; in each, "data:" lines (one
 * leading space dropped) are joined with "\n" and an "event:" line names the
 * event, so seeds can be real upstream streams. Each event goes to the stream
 * decoder, whose IR events go to the checker of fuzz_ir_check.h, the three
 * stream encoders and a fold. Invariants, any violation aborts:
 *  - decoder failures are AGW_EINVAL with a message, and stop the feeding;
 *  - events keep fuzz_ir_check.h's rules for a stream (FUZZ_IR_STREAM) with
 *    the Anthropic block kinds (FUZZ_IR_ANTHROPIC: reasoning items carry
 *    signatures and redacted thinking): one MESSAGE_START first, block
 *    indexes increasing, one block open at a time, non-empty deltas of the
 *    open block's kind, one MESSAGE_DELTA then MESSAGE_STOP, nothing after;
 *  - _end returns AGW_OK exactly when MESSAGE_STOP or ERROR was emitted;
 *  - every encoder accepts every event, and the Responses encoder writes only
 *    "event: <type>\ndata: <JSON object>\n\n" whose "type" is the event's name
 *    and whose sequence_number counts from 0;
 *  - a finished fold encodes to valid JSON in the three protocols, or
 *    AGW_EINVAL (tool arguments that are not an object).
 */
#include <string.h>

#include "fuzz_ir_check.h"

#include "core/json.h"
#include "proto/anthropic.h"
#include "proto/openai.h"
#include "proto/responses.h"

typedef struct {
    fuzz_ir_checker chk;
    int fold_ok;
    int64_t seq;
    agw_responses_stream_encoder re;
    agw_openai_stream_encoder oe;
    agw_anthropic_stream_encoder ae;
    agw_buf out, other;
    agw_ir_fold fold;
} state_t;

static void put(agw_buf *b, const void *p, size_t n)
{
    check(agw_buf_append(b, p, n) == AGW_OK, "append");
}

/* The bytes just written are whole, numbered Responses events. */
static void check_events(state_t *s, size_t from)
{
    const char *p = s->out.data + from, *end = s->out.data + s->out.len;
    while (p < end) {
        const char *nl, *dnl;
        agw_str v;
        int64_t n;
        check(end - p > 7 && memcmp(p, "event: ", 7) == 0, "event line");
        nl = memchr(p, '\n', (size_t)(end - p));
        check(nl && end - nl > 7 && memcmp(nl + 1, "data: ", 6) == 0, "data line");
        agw_str name = { p + 7, (size_t)(nl - p - 7) };
        dnl = memchr(nl + 7, '\n', (size_t)(end - nl - 7));
        check(dnl && end - dnl >= 2 && dnl[1] == '\n', "blank line");
        agw_str json = { nl + 7, (size_t)(dnl - nl - 7) };
        check(agw_json_validate(json, 4096, NULL, 0) == AGW_OK &&
                  agw_json_type_of(json) == AGW_JSON_OBJECT,
              "data is a JSON object");
        check(agw_json_find(json, AGW_STR_LIT("type"), &v) == AGW_OK &&
                  agw_json_string_eq(v, name),
              "type is the event's name");
        check(agw_json_find(json, AGW_STR_LIT("sequence_number"), &v) == AGW_OK &&
                  agw_json_int64(v, &n) == AGW_OK && n == s->seq++,
              "sequence numbers count from 0");
        p = dnl + 2;
    }
}

static int sink(void *ud, const agw_ir_event *ev)
{
    state_t *s = ud;
    size_t before = s->out.len;
    fuzz_ir_check(&s->chk, ev);
    check(agw_responses_encode_stream_event(&s->re, ev, &s->out) == AGW_OK,
          "the Responses encoder takes every event");
    check_events(s, before);
    check(agw_openai_encode_stream_event(&s->oe, ev, &s->other) == AGW_OK,
          "the OpenAI encoder takes every event");
    check(agw_anthropic_encode_stream_event(&s->ae, ev, &s->other) == AGW_OK,
          "the Anthropic encoder takes every event");
    if (s->fold_ok && agw_ir_fold_add(&s->fold, ev) != AGW_OK)
        s->fold_ok = 0;
    return 0;
}

static void feed_all(agw_responses_stream_decoder *d, const char *in, size_t len, state_t *s,
                     agw_buf *scratch)
{
    size_t off = 0;
    char err[256];
    while (off < len) {
        const char *start = in + off, *sep = NULL;
        for (size_t i = off; i + 1 < len; i++)
            if (in[i] == '\n' && in[i + 1] == '\n') {
                sep = in + i;
                break;
            }
        size_t n = sep ? (size_t)(sep - start) : len - off;
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
        agw_err e = agw_responses_decode_stream_event(d, event, agw_buf_view(scratch), sink, s,
                                                      err, sizeof err);
        check(e == AGW_OK || e == AGW_EINVAL, "decode returns OK or EINVAL");
        if (e != AGW_OK) {
            check(err[0] != '\0', "a failure has a message");
            return;
        }
    }
}

static void encodes(agw_err e, agw_buf *resp)
{
    check(e == AGW_OK || e == AGW_EINVAL, "response encodes or is refused");
    if (e == AGW_OK)
        check(agw_json_validate(agw_buf_view(resp), 4096, NULL, 0) == AGW_OK, "valid JSON");
    agw_buf_reset(resp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agw_responses_stream_decoder d;
    agw_buf scratch = AGW_BUF_INIT(SIZE_MAX);
    state_t s;
    memset(&s, 0, sizeof s);
    fuzz_ir_check_init(&s.chk, FUZZ_IR_STREAM | FUZZ_IR_ANTHROPIC);
    s.fold_ok = 1;
    agw_buf_init(&s.out, SIZE_MAX);
    agw_buf_init(&s.other, SIZE_MAX);
    agw_ir_fold_init(&s.fold, 1u << 20);
    agw_responses_stream_encoder_init(&s.re, AGW_STR_LIT("client-model"), 1700000000);
    agw_openai_stream_encoder_init(&s.oe, 1, AGW_STR_LIT("client-model"), 1700000000);
    agw_anthropic_stream_encoder_init(&s.ae, AGW_STR_LIT("client-model"), AGW_STR_LIT(""));
    agw_responses_stream_decoder_init(&d);

    feed_all(&d, (const char *)data, size, &s, &scratch);
    agw_err end = agw_responses_decode_stream_end(&d);
    check((end == AGW_OK) == (s.chk.ended != 0), "_end is OK exactly when the answer ended");

    if (s.fold_ok && s.fold.finished && !s.fold.failed) {
        agw_buf resp = AGW_BUF_INIT(SIZE_MAX);
        encodes(agw_responses_encode_response(&s.fold, AGW_STR_LIT("m"), 1, &resp), &resp);
        encodes(agw_openai_encode_response(&s.fold, AGW_STR_LIT("m"), 1, &resp), &resp);
        encodes(agw_anthropic_encode_response(&s.fold, AGW_STR_LIT("m"), AGW_STR_LIT(""), &resp),
                &resp);
        agw_buf_free(&resp);
    }
    agw_responses_stream_decoder_free(&d);
    agw_responses_stream_encoder_free(&s.re);
    agw_openai_stream_encoder_free(&s.oe);
    agw_anthropic_stream_encoder_free(&s.ae);
    agw_ir_fold_free(&s.fold);
    agw_buf_free(&s.out);
    agw_buf_free(&s.other);
    agw_buf_free(&scratch);
    return 0;
}

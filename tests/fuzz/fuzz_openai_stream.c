/* libFuzzer target for the stream half of lib/proto/openai.
 *
 * The input is split on "\n\n" into SSE data payloads (a leading "data:" and
 * one space are dropped, so seeds can be real streams). Each payload goes to
 * the stream decoder, whose events go to the checker of fuzz_ir_check.h, the
 * stream encoder and the fold. Invariants, any violation aborts:
 *  - events keep fuzz_ir_check.h's rules for an OpenAI stream
 *    (FUZZ_IR_STREAM): at most one MESSAGE_START, first; blocks only text,
 *    thinking and tool_use (tool calls with an id), one open at a time, with
 *    strictly increasing indexes; BLOCK_DELTA (not empty, of a kind that
 *    matches the block: no signatures) and BLOCK_STOP only for the open
 *    block; one MESSAGE_DELTA, with a stop reason and no block open, and
 *    MESSAGE_STOP right after it; ERROR (at any point) with a 4xx/5xx status,
 *    a type and a message; no pings; nothing after MESSAGE_STOP or ERROR;
 *  - decoder failures are AGW_EINVAL with a message, and stop the feeding;
 *  - _end returns AGW_OK exactly when the answer ended (MESSAGE_STOP or
 *    ERROR), emitting nothing when it returns AGW_EPEER;
 *  - the encoder accepts every event (block indexes under 256) and writes
 *    only "data: <JSON>\n\n" and "data: [DONE]\n\n";
 *  - the fold accepts every event (under 1024 blocks), and a finished fold
 *    encodes to valid JSON.
 */
#include <string.h>

#include "fuzz_ir_check.h"

#include "core/json.h"
#include "proto/openai.h"

typedef struct {
    fuzz_ir_checker chk;
    agw_openai_stream_encoder enc;
    agw_buf out;
    agw_ir_fold fold;
} state_t;

static int sink(void *ud, const agw_ir_event *ev)
{
    state_t *s = ud;
    agw_err e;

    fuzz_ir_check(&s->chk, ev);
    e = agw_openai_encode_stream_event(&s->enc, ev, &s->out);
    check(e == AGW_OK || (e == AGW_EINVAL && ev->index >= 256), "the encoder takes every event");
    e = agw_ir_fold_add(&s->fold, ev);
    check(e == AGW_OK || (e == AGW_EINVAL && ev->index >= 1024), "the fold takes every event");
    return 0;
}

/* Every event the encoder wrote is "data: " + JSON or [DONE], then a blank line. */
static void check_output(agw_str out)
{
    while (out.len) {
        const char *end = memmem(out.ptr, out.len, "\n\n", 2);
        agw_str ev, payload;
        check(end != NULL, "events end with a blank line");
        ev = (agw_str){ out.ptr, (size_t)(end - out.ptr) };
        check(agw_str_starts(ev, AGW_STR_LIT("data: ")), "events are data lines");
        payload = (agw_str){ ev.ptr + 6, ev.len - 6 };
        check(memchr(payload.ptr, '\n', payload.len) == NULL, "one line per event");
        check(agw_str_eq(payload, AGW_STR_LIT("[DONE]")) ||
              agw_json_validate(payload, 64, NULL, 0) == AGW_OK, "payloads are JSON");
        out.ptr = end + 2;
        out.len -= ev.len + 2;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agw_openai_stream_decoder d;
    state_t s;
    const char *p = (const char *)data, *end = p + size;
    char err[256];
    agw_err e = AGW_OK;
    size_t before;

    memset(&s, 0, sizeof s);
    fuzz_ir_check_init(&s.chk, FUZZ_IR_STREAM);
    agw_buf_init(&s.out, 256u << 20);
    agw_ir_fold_init(&s.fold, 64u << 20);
    agw_openai_stream_encoder_init(&s.enc, size & 1, AGW_STR_LIT("gpt-4o"), 1700000000);
    agw_openai_stream_decoder_init(&d);

    while (p < end) {
        const char *sep = memmem(p, (size_t)(end - p), "\n\n", 2);
        agw_str payload = { p, (size_t)((sep ? sep : end) - p) };
        p = sep ? sep + 2 : end;
        if (agw_str_starts(payload, AGW_STR_LIT("data:"))) {
            payload.ptr += 5;
            payload.len -= 5;
            if (payload.len && payload.ptr[0] == ' ') {
                payload.ptr++;
                payload.len--;
            }
        }
        err[0] = '\0';
        e = agw_openai_decode_stream_event(&d, payload, sink, &s, err, sizeof err);
        if (e != AGW_OK) {
            check(e == AGW_EINVAL && err[0], "decoder failures are EINVAL with a message");
            break;
        }
    }
    if (e == AGW_OK) {
        before = s.chk.events;
        e = agw_openai_decode_stream_end(&d, sink, &s);
        check(e == AGW_OK || e == AGW_EPEER, "_end: OK or EPEER");
        check((e == AGW_OK) == s.chk.ended, "_end is OK exactly when the answer ended");
        check(e == AGW_OK || s.chk.events == before, "EPEER emits nothing");
    }
    check_output(agw_buf_view(&s.out));
    if (s.fold.finished && !s.fold.failed) {
        agw_buf resp = AGW_BUF_INIT(256u << 20);
        check(agw_openai_encode_response(&s.fold, AGW_STR_LIT("gpt-4o"), 1, &resp) == AGW_OK,
              "a finished fold encodes");
        check(agw_json_validate(agw_buf_view(&resp), 64, NULL, 0) == AGW_OK, "response is JSON");
        agw_buf_free(&resp);
    }
    agw_openai_stream_decoder_free(&d);
    agw_openai_stream_encoder_free(&s.enc);
    agw_ir_fold_free(&s.fold);
    agw_buf_free(&s.out);
    return 0;
}

/* libFuzzer target for the stream half of lib/proto/openai.
 *
 * The input is split on "\n\n" into SSE data payloads (a leading "data:" and
 * one space are dropped, so seeds can be real streams). Each payload goes to
 * the stream decoder, whose events go to a checker, the stream encoder and
 * the fold. Invariants, any violation aborts:
 *  - events are well-formed: at most one MESSAGE_START, first; BLOCK_START
 *    indexes strictly increasing; BLOCK_DELTA and BLOCK_STOP only for the
 *    open block; delta kinds match the block; nothing after MESSAGE_STOP or
 *    ERROR; MESSAGE_STOP right after a MESSAGE_DELTA;
 *  - decoder failures are AGW_EINVAL with a message, and stop the feeding;
 *  - _end returns AGW_OK exactly when the answer ended (MESSAGE_STOP or
 *    ERROR), emitting nothing when it returns AGW_EPEER;
 *  - the encoder accepts every event (block indexes under 256) and writes
 *    only "data: <JSON>\n\n" and "data: [DONE]\n\n";
 *  - the fold accepts every event (under 1024 blocks), and a finished fold
 *    encodes to valid JSON.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "proto/openai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant failed: %s\n", what);
        abort();
    }
}

typedef struct {
    int started, ended, open, open_kind, last_index, saw_delta_msg;
    size_t events;
    agw_openai_stream_encoder enc;
    agw_buf out;
    agw_ir_fold fold;
} state_t;

static int sink(void *ud, const agw_ir_event *ev)
{
    state_t *s = ud;
    agw_err e;

    check(!s->ended, "nothing after MESSAGE_STOP or ERROR");
    s->events++;
    switch (ev->kind) {
    case AGW_IR_EV_MESSAGE_START:
        check(!s->started, "one MESSAGE_START");
        s->started = 1;
        break;
    case AGW_IR_EV_BLOCK_START:
        check(s->started, "blocks after MESSAGE_START");
        check(s->open < 0, "the previous block was closed");
        check(ev->index > s->last_index, "block indexes increase");
        check(ev->block == AGW_IR_TEXT || ev->block == AGW_IR_THINKING ||
              ev->block == AGW_IR_TOOL_USE, "an OpenAI stream has text, thinking, tool_use");
        check(ev->block != AGW_IR_TOOL_USE || ev->tool_id.len > 0, "tool calls have an id");
        s->last_index = ev->index;
        s->open = ev->index;
        s->open_kind = (int)ev->block;
        break;
    case AGW_IR_EV_BLOCK_DELTA:
        check(ev->index == s->open && s->open >= 0, "deltas go to the open block");
        check((ev->delta_kind == AGW_IR_DELTA_TEXT && s->open_kind == AGW_IR_TEXT) ||
              (ev->delta_kind == AGW_IR_DELTA_THINKING && s->open_kind == AGW_IR_THINKING) ||
              (ev->delta_kind == AGW_IR_DELTA_JSON && s->open_kind == AGW_IR_TOOL_USE),
              "delta kind matches the block");
        check(ev->delta.len > 0, "no empty deltas");
        break;
    case AGW_IR_EV_BLOCK_STOP:
        check(ev->index == s->open && s->open >= 0, "stop the open block");
        s->open = -1;
        break;
    case AGW_IR_EV_MESSAGE_DELTA:
        check(s->started && s->open < 0, "MESSAGE_DELTA after the blocks");
        check(ev->stop != AGW_IR_STOP_NONE, "a stop reason");
        s->saw_delta_msg = 1;
        break;
    case AGW_IR_EV_MESSAGE_STOP:
        check(s->saw_delta_msg, "MESSAGE_DELTA before MESSAGE_STOP");
        s->ended = 1;
        break;
    case AGW_IR_EV_ERROR:
        check(ev->status >= 400 && ev->status <= 599, "error status");
        check(ev->error_type.len > 0 && ev->error_message.len > 0, "error type and message");
        s->ended = 1;
        break;
    case AGW_IR_EV_PING:
        check(0, "the decoder makes no pings");
        break;
    }
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
    s.open = -1;
    s.last_index = -1;
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
        before = s.events;
        e = agw_openai_decode_stream_end(&d, sink, &s);
        check(e == AGW_OK || e == AGW_EPEER, "_end: OK or EPEER");
        check((e == AGW_OK) == s.ended, "_end is OK exactly when the answer ended");
        check(e == AGW_OK || s.events == before, "EPEER emits nothing");
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

/* The part the two response-decoder fuzz targets share: the whole input is
 * one upstream JSON answer given to a decoder (agw_*_decode_response); its
 * events go to a checker, both stream encoders and a fold. Invariants, any
 * violation aborts:
 *  - the decoder returns AGW_OK, or AGW_EINVAL with a message;
 *  - on AGW_OK the events are one whole answer: MESSAGE_START first (or one
 *    lone ERROR), blocks started with increasing indexes, deltas and stops
 *    only for the open block with a kind that fits it, then MESSAGE_DELTA
 *    with a stop reason and MESSAGE_STOP; nothing after the end;
 *  - both stream encoders and the fold take every event (indexes under 256);
 *  - a finished fold encodes to valid JSON in both protocols, unless a tool
 *    call's input is not a JSON object (AGW_EINVAL, reported as a 502).
 */
#ifndef FUZZ_RESPONSE_H
#define FUZZ_RESPONSE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "proto/anthropic.h"
#include "proto/openai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef agw_err (*fuzz_decode_fn)(agw_str body, agw_ir_sink sink, void *ud, char *err,
                                  size_t errlen);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant failed: %s\n", what);
        abort();
    }
}

typedef struct {
    int started, ended, open, open_kind, last_index, saw_delta_msg;
    agw_openai_stream_encoder oe;
    agw_anthropic_stream_encoder ae;
    agw_buf out;
    agw_ir_fold fold;
} fuzz_state;

static int delta_fits(agw_ir_delta_kind d, int block)
{
    switch (d) {
    case AGW_IR_DELTA_TEXT: return block == AGW_IR_TEXT;
    case AGW_IR_DELTA_JSON: return block == AGW_IR_TOOL_USE;
    case AGW_IR_DELTA_THINKING: case AGW_IR_DELTA_SIGNATURE: return block == AGW_IR_THINKING;
    }
    return 0;
}

static int fuzz_sink(void *ud, const agw_ir_event *ev)
{
    fuzz_state *s = ud;
    check(!s->ended, "nothing after MESSAGE_STOP or ERROR");
    switch (ev->kind) {
    case AGW_IR_EV_MESSAGE_START:
        check(!s->started, "one MESSAGE_START");
        s->started = 1;
        break;
    case AGW_IR_EV_BLOCK_START:
        check(s->started && s->open < 0, "blocks one at a time after MESSAGE_START");
        check(ev->index > s->last_index, "block indexes increase");
        check(ev->block != AGW_IR_TOOL_USE || ev->tool_id.len > 0, "tool calls have an id");
        s->last_index = s->open = ev->index;
        s->open_kind = (int)ev->block;
        break;
    case AGW_IR_EV_BLOCK_DELTA:
        check(ev->index == s->open && s->open >= 0, "deltas go to the open block");
        check(delta_fits(ev->delta_kind, s->open_kind), "delta kind matches the block");
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
        check(!s->started, "an error answer is the only event");
        check(ev->status >= 400 && ev->status <= 599, "error status");
        check(ev->error_type.len > 0, "error type");
        s->ended = 1;
        break;
    case AGW_IR_EV_PING:
        check(0, "a whole answer has no pings");
        break;
    }
    int small = ev->index < 256;
    check(agw_openai_encode_stream_event(&s->oe, ev, &s->out) == AGW_OK || !small,
          "the OpenAI encoder takes every event");
    check(agw_anthropic_encode_stream_event(&s->ae, ev, &s->out) == AGW_OK || !small,
          "the Anthropic encoder takes every event");
    check(agw_ir_fold_add(&s->fold, ev) == AGW_OK || !small, "the fold takes every event");
    return 0;
}

static void fuzz_encodes(agw_err e, agw_buf *resp)
{
    check(e == AGW_OK || e == AGW_EINVAL, "a finished fold encodes (or a tool input is bad)");
    if (e == AGW_OK)
        check(agw_json_validate(agw_buf_view(resp), 128, NULL, 0) == AGW_OK, "response is JSON");
    agw_buf_reset(resp);
}

static int fuzz_response(fuzz_decode_fn decode, const uint8_t *data, size_t size)
{
    fuzz_state s;
    char err[256] = "";
    memset(&s, 0, sizeof s);
    s.open = s.last_index = -1;
    agw_buf_init(&s.out, 256u << 20);
    agw_ir_fold_init(&s.fold, 64u << 20);
    agw_openai_stream_encoder_init(&s.oe, size & 1, AGW_STR_LIT("gpt-4o"), 1700000000);
    agw_anthropic_stream_encoder_init(&s.ae, AGW_STR_LIT("claude"), AGW_STR_LIT("msg_1"));
    agw_err e = decode((agw_str){ (const char *)data, size }, fuzz_sink, &s, err, sizeof err);
    check(e == AGW_OK || (e == AGW_EINVAL && err[0]), "OK, or EINVAL with a message");
    if (e == AGW_OK)
        check(s.ended, "a decoded answer ends");
    if (s.fold.finished && !s.fold.failed) {
        agw_buf resp = AGW_BUF_INIT(256u << 20);
        fuzz_encodes(agw_openai_encode_response(&s.fold, AGW_STR_LIT("gpt-4o"), 1, &resp), &resp);
        fuzz_encodes(agw_anthropic_encode_response(&s.fold, AGW_STR_LIT("c"), AGW_STR_LIT("m"),
                                                   &resp),
                     &resp);
        agw_buf_free(&resp);
    }
    agw_openai_stream_encoder_free(&s.oe);
    agw_anthropic_stream_encoder_free(&s.ae);
    agw_ir_fold_free(&s.fold);
    agw_buf_free(&s.out);
    return 0;
}

#endif

/* The part the two response-decoder fuzz targets share: the whole input is
 * one upstream JSON answer given to a decoder (agw_*_decode_response); its
 * events go to the checker of fuzz_ir_check.h, both stream encoders and a
 * fold. Invariants, any violation aborts:
 *  - the decoder returns AGW_OK, or AGW_EINVAL with a message;
 *  - the events keep fuzz_ir_check.h's rules for a whole answer (no
 *    FUZZ_IR_STREAM, FUZZ_IR_PINGS or FUZZ_IR_RELAYED): MESSAGE_START first
 *    (or one lone ERROR with a status, a type and, for OpenAI, a message),
 *    blocks of the protocol's kinds started with increasing indexes (tool
 *    calls with an id), non-empty deltas and stops only for the open block
 *    with a kind that fits it, then one MESSAGE_DELTA with a stop reason and
 *    right after it MESSAGE_STOP; no pings; nothing after the end;
 *  - on AGW_OK the answer ended (MESSAGE_STOP or ERROR);
 *  - the three stream encoders (OpenAI, Anthropic, Responses) and the fold
 *    take every event (indexes under 256);
 *  - a finished fold encodes to valid JSON in all three protocols, unless a
 *    tool call's input is not a JSON object (AGW_EINVAL, reported as a 502).
 */
#ifndef FUZZ_RESPONSE_H
#define FUZZ_RESPONSE_H

#include <string.h>

#include "fuzz_ir_check.h"

#include "core/json.h"
#include "proto/anthropic.h"
#include "proto/openai.h"
#include "proto/responses.h"

typedef agw_err (*fuzz_decode_fn)(agw_str body, agw_ir_sink sink, void *ud, char *err,
                                  size_t errlen);

typedef struct {
    fuzz_ir_checker chk;
    agw_openai_stream_encoder oe;
    agw_anthropic_stream_encoder ae;
    agw_responses_stream_encoder re;
    agw_buf out;
    agw_ir_fold fold;
} fuzz_state;

static int fuzz_sink(void *ud, const agw_ir_event *ev)
{
    fuzz_state *s = ud;
    fuzz_ir_check(&s->chk, ev);
    int small = ev->index < 256;
    check(agw_openai_encode_stream_event(&s->oe, ev, &s->out) == AGW_OK || !small,
          "the OpenAI encoder takes every event");
    check(agw_anthropic_encode_stream_event(&s->ae, ev, &s->out) == AGW_OK || !small,
          "the Anthropic encoder takes every event");
    check(agw_responses_encode_stream_event(&s->re, ev, &s->out) == AGW_OK || !small,
          "the Responses encoder takes every event");
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

/* flags: FUZZ_IR_ANTHROPIC for the Anthropic and Responses decoders, 0 for
 * OpenAI's. */
static int fuzz_response(fuzz_decode_fn decode, unsigned flags, const uint8_t *data, size_t size)
{
    fuzz_state s;
    char err[256] = "";
    memset(&s, 0, sizeof s);
    fuzz_ir_check_init(&s.chk, flags);
    agw_buf_init(&s.out, 256u << 20);
    agw_ir_fold_init(&s.fold, 64u << 20);
    agw_openai_stream_encoder_init(&s.oe, size & 1, AGW_STR_LIT("gpt-4o"), 1700000000);
    agw_anthropic_stream_encoder_init(&s.ae, AGW_STR_LIT("claude"), AGW_STR_LIT("msg_1"));
    agw_responses_stream_encoder_init(&s.re, AGW_STR_LIT("gpt-5"), 1700000000);
    agw_err e = decode((agw_str){ (const char *)data, size }, fuzz_sink, &s, err, sizeof err);
    check(e == AGW_OK || (e == AGW_EINVAL && err[0]), "OK, or EINVAL with a message");
    if (e == AGW_OK)
        check(s.chk.ended, "a decoded answer ends");
    if (s.fold.finished && !s.fold.failed) {
        agw_buf resp = AGW_BUF_INIT(256u << 20);
        fuzz_encodes(agw_openai_encode_response(&s.fold, AGW_STR_LIT("gpt-4o"), 1, &resp), &resp);
        fuzz_encodes(agw_anthropic_encode_response(&s.fold, AGW_STR_LIT("c"), AGW_STR_LIT("m"),
                                                   &resp),
                     &resp);
        fuzz_encodes(agw_responses_encode_response(&s.fold, AGW_STR_LIT("r"), 1, &resp), &resp);
        agw_buf_free(&resp);
    }
    agw_openai_stream_encoder_free(&s.oe);
    agw_anthropic_stream_encoder_free(&s.ae);
    agw_responses_stream_encoder_free(&s.re);
    agw_ir_fold_free(&s.fold);
    agw_buf_free(&s.out);
    return 0;
}

#endif

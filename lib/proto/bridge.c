#include "proto/bridge.h"
#include "proto/anthropic.h"
#include "proto/kiro.h"
#include "proto/openai.h"
#include "proto/continuation.h"
#include "proto/sanitize.h"
#include "proto/responses.h"

#include <stdio.h>
#include <stdlib.h>

struct agw_bridge {
    agw_codec codec;
    agw_proto client, upstream;
    int client_stream;
    agw_str client_model;          /* in arena */
    agw_arena arena;
    agw_ir_usage usage;
    agw_err sink_err;              /* the first encoder/fold failure */
    agw_buf *out;                  /* where the current event's output goes */
    union {                        /* the decoder of `upstream`'s protocol (decoder_init) */
        agw_openai_stream_decoder od;
        agw_anthropic_stream_decoder ad;
        agw_kiro_stream_decoder kd;
        agw_responses_stream_decoder rd;
    };
    size_t emitted;                /* IR events that reached the encoder or the fold */
    int early_status;              /* an error before anything else (codec.h early_error) */
    uint64_t first_output_us;      /* agw_mono_us() at the first output; 0 = none */
    int64_t output_bytes;          /* text, thinking and tool-call bytes that went on */
    agw_str early_message;         /* in arena */
    union {                        /* the encoder of `client`'s protocol */
        agw_openai_stream_encoder oe;
        agw_anthropic_stream_encoder ae;
        agw_responses_stream_encoder re;
    };
    agw_ir_fold fold;
    int64_t created;
    /* where the upstream decoder's events go: on_ir_event, or the
     * sanitize stage in front of it */
    agw_ir_sink sink;
    void *sink_ud;
    agw_sanitize_stage sanitize;
    int sanitizing;
    agw_continuation cont;
    int continuing;
};

/* The status an upstream error gets on its way to a client of `client`:
 * kept, except that an OpenAI client (chat or Responses) gets 503 for 529 and anything outside
 * 400..599 becomes 502. */
static int error_status(agw_proto client, int upstream_status)
{
    if ((client == AGW_PROTO_OPENAI || client == AGW_PROTO_RESPONSES) && upstream_status == 529)
        return 503;
    if (upstream_status < 400 || upstream_status > 599)
        return 502;
    return upstream_status;
}

int agw_bridge_held(const agw_bridge *b);
static int codec_held(void *ud);

/* Every IR event from the upstream decoder lands here. */
static int on_ir_event(void *ud, const agw_ir_event *ev)
{
    agw_bridge *b = ud;
    if (ev->kind == AGW_IR_EV_MESSAGE_START || ev->kind == AGW_IR_EV_MESSAGE_DELTA)
        agw_ir_usage_merge(&b->usage, &ev->usage);
    if (ev->kind == AGW_IR_EV_ERROR && !b->emitted && b->codec.early_error) {
        /* Nothing went out yet: the relay answers it, or fails over. */
        b->early_status = error_status(b->client, ev->status ? ev->status : 502);
        b->early_message = agw_arena_str(&b->arena, ev->error_message);
        return 1;
    }
    b->emitted++;
    /* Output as the usage tap counts it (usage.h): a delta, or the name
     * that starts a tool call (the first output of a call-only answer). */
    size_t out_bytes = 0;
    int output = 0;
    if (ev->kind == AGW_IR_EV_BLOCK_DELTA) {
        output = 1;
        if (ev->delta_kind != AGW_IR_DELTA_SIGNATURE)
            out_bytes = ev->delta.len;
    } else if (ev->kind == AGW_IR_EV_BLOCK_START && ev->block == AGW_IR_TOOL_USE) {
        output = 1;
        out_bytes = ev->tool_name.len;
    }
    if (output) {
        b->output_bytes += (int64_t)out_bytes;
        if (!b->first_output_us)
            b->first_output_us = agw_mono_us();
    }
    agw_err e;
    if (!b->client_stream)
        e = agw_ir_fold_add(&b->fold, ev);
    else if (b->client == AGW_PROTO_OPENAI)
        e = agw_openai_encode_stream_event(&b->oe, ev, b->out);
    else if (b->client == AGW_PROTO_RESPONSES)
        e = agw_responses_encode_stream_event(&b->re, ev, b->out);
    else
        e = agw_anthropic_encode_stream_event(&b->ae, ev, b->out);
    if (e && !b->sink_err)
        b->sink_err = e;
    return e != AGW_OK;
}

static agw_err codec_event(void *ud, agw_str name, agw_str data, agw_buf *out)
{
    agw_bridge *b = ud;
    b->out = out;
    if (b->upstream == AGW_PROTO_KIRO)
        return AGW_EINVAL; /* its answers are event streams (codec_bytes) */
    agw_err e;
    switch (b->upstream) {
    case AGW_PROTO_OPENAI:
        e = agw_openai_decode_stream_event(&b->od, data, b->sink, b->sink_ud, NULL, 0);
        break;
    case AGW_PROTO_RESPONSES:
        e = agw_responses_decode_stream_event(&b->rd, name, data, b->sink, b->sink_ud, NULL, 0);
        break;
    default:
        e = agw_anthropic_decode_stream_event(&b->ad, name, data, b->sink, b->sink_ud, NULL, 0);
        break;
    }
    return b->sink_err ? b->sink_err : e;
}

static agw_err fold_error_body(agw_bridge *b, agw_buf *out, int *status)
{
    *status = error_status(b->client, b->fold.error_status ? b->fold.error_status : 500);
    agw_str msg = b->fold.error_message.len ? b->fold.error_message
                                            : AGW_STR_LIT("upstream reported an error");
    return agw_apierr_body(out, b->client, *status, msg, NULL);
}

/* The end of a whole answer: nothing more for a streaming client (each
 * event went out as it came), the fold's encoding for the other. */
static agw_err finish_answer(agw_bridge *b, agw_buf *out, int *status)
{
    if (b->client_stream || agw_bridge_held(b))
        return AGW_OK;
    if (b->fold.failed)
        return fold_error_body(b, out, status);
    agw_err e;
    switch (b->client) {
    case AGW_PROTO_OPENAI:
        e = agw_openai_encode_response(&b->fold, b->client_model, b->created, out);
        break;
    case AGW_PROTO_RESPONSES:
        e = agw_responses_encode_response(&b->fold, b->client_model, b->created, out);
        break;
    default:
        e = agw_anthropic_encode_response(&b->fold, b->client_model, (agw_str){ NULL, 0 }, out);
        break;
    }
    if (e == AGW_EINVAL) {
        /* The upstream's answer does not make a valid response (a tool call
         * whose arguments are not JSON): a gateway error, not a client one. */
        agw_buf_reset(out);
        *status = 502;
        return agw_apierr_body(out, b->client, 502,
                               AGW_STR_LIT("upstream answer could not be converted"), NULL);
    }
    return e;
}

static agw_err codec_finish(void *ud, agw_buf *out, int *status)
{
    agw_bridge *b = ud;
    b->out = out;
    *status = 200;
    agw_err end;
    switch (b->upstream) {
    case AGW_PROTO_OPENAI: end = agw_openai_decode_stream_end(&b->od, b->sink, b->sink_ud); break;
    case AGW_PROTO_RESPONSES: end = agw_responses_decode_stream_end(&b->rd); break;
    case AGW_PROTO_KIRO: end = agw_kiro_decode_stream_end(&b->kd, b->sink, b->sink_ud); break;
    default: end = agw_anthropic_decode_stream_end(&b->ad); break;
    }
    if (b->early_status)
        return AGW_OK; /* the relay answers it (codec.h) */
    /* A stream cut before its block ended still gets the text held back;
     * an answer held for its next round keeps it (a match may go on there). */
    if (b->sanitizing && !agw_bridge_held(b) && agw_sanitize_stage_flush(&b->sanitize) &&
        !b->sink_err)
        b->sink_err = AGW_ETOOBIG;
    if (b->sink_err)
        return b->sink_err;
    if (end)
        return end;
    return finish_answer(b, out, status);
}

static agw_err codec_bytes(void *ud, const char *p, size_t n, agw_buf *out)
{
    agw_bridge *b = ud;
    b->out = out;
    agw_err e = agw_kiro_decode_stream_bytes(&b->kd, p, n, b->sink, b->sink_ud);
    if (b->sink_err)
        return b->sink_err;
    return b->early_status ? AGW_OK : e;
}

static int codec_early_error(void *ud, agw_str *message)
{
    agw_bridge *b = ud;
    *message = b->early_message;
    return b->early_status;
}

static agw_err codec_response(void *ud, agw_str body, agw_buf *out, int *status)
{
    agw_bridge *b = ud;
    b->out = out;
    *status = 200;
    if (b->upstream == AGW_PROTO_KIRO) {
        /* An event stream that came whole (or empty). */
        agw_err e = codec_bytes(ud, body.ptr, body.len, out);
        return e ? e : codec_finish(ud, out, status);
    }
    agw_err e;
    switch (b->upstream) {
    case AGW_PROTO_OPENAI: e = agw_openai_decode_response(body, b->sink, b->sink_ud, NULL, 0); break;
    case AGW_PROTO_RESPONSES:
        e = agw_responses_decode_response(body, b->sink, b->sink_ud, NULL, 0);
        break;
    default: e = agw_anthropic_decode_response(body, b->sink, b->sink_ud, NULL, 0); break;
    }
    if (b->sanitizing && !agw_bridge_held(b) && agw_sanitize_stage_flush(&b->sanitize) &&
        !b->sink_err)
        b->sink_err = AGW_ETOOBIG;
    if (b->sink_err)
        return b->sink_err;
    if (e)
        return e;
    return finish_answer(b, out, status);
}

static agw_err codec_error(void *ud, int status, agw_str body, int *client_status, agw_buf *out)
{
    agw_bridge *b = ud;
    agw_str type = { NULL, 0 }, message = { NULL, 0 };
    agw_arena scratch = AGW_ARENA_INIT;
    agw_err e = b->upstream == AGW_PROTO_ANTHROPIC
                    ? agw_anthropic_decode_error(body, &scratch, &type, &message)
                : b->upstream == AGW_PROTO_KIRO
                    ? agw_kiro_decode_error(body, &scratch, &status, &type, &message)
                    : agw_openai_decode_error(body, &scratch, &type, &message);
    *client_status = error_status(b->client, status);
    agw_buf text = AGW_BUF_INIT(2048);
    if (e != AGW_OK || !message.len) {
        size_t shown = body.len < 200 ? body.len : 200;
        if (agw_buf_appendf(&text, "upstream returned HTTP %d: ", status) == AGW_OK &&
            agw_buf_append(&text, body.ptr, shown) == AGW_OK)
            message = agw_buf_view(&text);
        else
            message = AGW_STR_LIT("upstream returned an error");
    }
    e = agw_apierr_body(out, b->client, *client_status, message, NULL);
    agw_buf_free(&text);
    agw_arena_free(&scratch);
    return e;
}

/* A bridge makes only the decoder of its upstream's protocol and the encoder
 * of its client's (as codec_event, codec_finish and on_ir_event choose them):
 * the decoders share their memory, and so do the encoders. */
static void decoder_init(agw_bridge *b, const agw_ir_request *rq)
{
    switch (b->upstream) {
    case AGW_PROTO_OPENAI: agw_openai_stream_decoder_init(&b->od); break;
    case AGW_PROTO_RESPONSES: agw_responses_stream_decoder_init(&b->rd); break;
    case AGW_PROTO_KIRO: agw_kiro_stream_decoder_init(&b->kd, rq); break;
    default: agw_anthropic_stream_decoder_init(&b->ad); break;
    }
}

static void decoder_free(agw_bridge *b)
{
    switch (b->upstream) {
    case AGW_PROTO_OPENAI: agw_openai_stream_decoder_free(&b->od); break;
    case AGW_PROTO_RESPONSES: agw_responses_stream_decoder_free(&b->rd); break;
    case AGW_PROTO_KIRO: agw_kiro_stream_decoder_free(&b->kd); break;
    default: agw_anthropic_stream_decoder_free(&b->ad); break;
    }
}

agw_bridge *agw_bridge_new(agw_proto client, agw_proto upstream, int client_stream,
                           int include_usage, agw_str client_model, int64_t created)
{
    /* The bridge lives in its own arena's first chunk: a chunk the thread's
     * last arena left is at hand, where a calloc of this size would take a
     * malloc-arena lock. */
    agw_arena arena = AGW_ARENA_INIT;
    agw_bridge *b = agw_arena_alloc(&arena, sizeof *b);
    b->arena = arena;
    b->client = client;
    b->upstream = upstream;
    b->client_stream = client_stream;
    b->created = created;
    b->usage = (agw_ir_usage)AGW_IR_USAGE_UNKNOWN;
    b->client_model = agw_arena_str(&b->arena, client_model);
    decoder_init(b, NULL);
    switch (client) {
    case AGW_PROTO_OPENAI:
        agw_openai_stream_encoder_init(&b->oe, include_usage, b->client_model, created);
        break;
    case AGW_PROTO_RESPONSES:
        agw_responses_stream_encoder_init(&b->re, b->client_model, created);
        break;
    default:
        agw_anthropic_stream_encoder_init(&b->ae, b->client_model, (agw_str){ NULL, 0 });
        break;
    }
    agw_ir_fold_init(&b->fold, AGW_LIMIT_UPSTREAM_BODY);
    b->codec = (agw_codec){ .ud = b,
                            .event = codec_event,
                            .finish = codec_finish,
                            .response = codec_response,
                            .error = codec_error,
                            .held = codec_held };
    if (upstream == AGW_PROTO_KIRO) {
        b->codec.bytes = codec_bytes;
        b->codec.early_error = codec_early_error;
    }
    b->sink = on_ir_event;
    b->sink_ud = b;
    return b;
}

void agw_bridge_set_request(agw_bridge *b, const agw_ir_request *rq)
{
    if (b->upstream != AGW_PROTO_KIRO)
        return; /* only Kiro's decoder reads the request */
    decoder_free(b);
    decoder_init(b, rq);
}

uint64_t agw_bridge_first_output_us(const agw_bridge *b)
{
    return b->first_output_us;
}

int64_t agw_bridge_output_bytes(const agw_bridge *b)
{
    return b->output_bytes;
}

double agw_bridge_credits(const agw_bridge *b)
{
    return b->upstream == AGW_PROTO_KIRO ? agw_kiro_stream_credits(&b->kd) : -1;
}

int agw_bridge_usage_estimated(const agw_bridge *b)
{
    return b->upstream == AGW_PROTO_KIRO;
}

/* A stage's verdict on an event: a stop the encoder did not ask for (no
 * sink_err yet) and that is not an early error (codec.h early_error) is
 * the stage's buffers failing. */
static int stage_result(agw_bridge *b, int stop)
{
    if (stop && !b->sink_err && !b->early_status)
        b->sink_err = AGW_ETOOBIG;
    return stop;
}

/* The decoder's events through the sanitize stage. */
static int on_sanitized_event(void *ud, const agw_ir_event *ev)
{
    agw_bridge *b = ud;
    return stage_result(b, agw_sanitize_stage_event(&b->sanitize, ev));
}

static int on_continued_event(void *ud, const agw_ir_event *ev)
{
    agw_bridge *b = ud;
    return stage_result(b, agw_continuation_event(&b->cont, ev));
}

/* The decoder feeds continuation, which feeds sanitize, which feeds the
 * encoder or the fold; each stage only when it is on. */
static void chain(agw_bridge *b)
{
    agw_ir_sink after_cont = on_ir_event;
    if (b->sanitizing) {
        b->sanitize.next = on_ir_event;
        b->sanitize.next_ud = b;
        after_cont = on_sanitized_event;
    }
    b->sink = after_cont;
    b->sink_ud = b;
    if (b->continuing) {
        b->cont.next = after_cont;
        b->cont.next_ud = b;
        b->sink = on_continued_event;
    }
}

void agw_bridge_sanitize(agw_bridge *b, const agw_sanitize_rules *rules)
{
    if (!rules || !agw_sanitize_rules_count(rules) || b->sanitizing)
        return;
    agw_sanitize_stage_init(&b->sanitize, rules, on_ir_event, b);
    b->sanitizing = 1;
    chain(b);
}

void agw_bridge_continuation(agw_bridge *b)
{
    if (b->continuing)
        return;
    agw_continuation_init(&b->cont, on_ir_event, b);
    b->continuing = 1;
    chain(b);
}

void agw_bridge_round(agw_bridge *b, int allow)
{
    if (!b->continuing)
        return;
    if (agw_continuation_rounds(&b->cont) > 0) {
        /* a new upstream answer: a fresh decoder (Kiro's keeps what it
         * learnt of the request), the same encoder and fold */
        if (b->upstream != AGW_PROTO_KIRO) {
            decoder_free(b);
            decoder_init(b, NULL);
        }
        b->sink_err = AGW_OK;
    }
    agw_continuation_round(&b->cont, allow);
}

int agw_bridge_held(const agw_bridge *b)
{
    return b->continuing && agw_continuation_held(&b->cont);
}

agw_str agw_bridge_text(const agw_bridge *b)
{
    return b->continuing ? agw_continuation_text(&b->cont) : (agw_str){ "", 0 };
}

void agw_bridge_skip(agw_bridge *b, agw_str ws)
{
    if (b->continuing)
        agw_continuation_skip(&b->cont, ws);
}

int agw_bridge_rounds(const agw_bridge *b)
{
    return b->continuing ? agw_continuation_rounds(&b->cont) : 1;
}

int agw_bridge_open(const agw_bridge *b)
{
    return b->continuing && agw_continuation_open(&b->cont);
}

agw_err agw_bridge_release(agw_bridge *b, agw_buf *out, int *status)
{
    *status = 200;
    if (!agw_bridge_open(b))
        return AGW_OK;
    b->out = out;
    if (agw_continuation_release(&b->cont) && !b->sink_err)
        b->sink_err = AGW_ETOOBIG;
    if (b->sink_err)
        return b->sink_err;
    return finish_answer(b, out, status);
}

static int codec_held(void *ud)
{
    return agw_bridge_held(ud);
}

const agw_codec *agw_bridge_codec(agw_bridge *b)
{
    return &b->codec;
}

agw_ir_usage agw_bridge_usage(const agw_bridge *b)
{
    return b->continuing ? agw_continuation_usage(&b->cont) : b->usage;
}

void agw_bridge_free(agw_bridge *b)
{
    if (!b)
        return;
    decoder_free(b);
    switch (b->client) {
    case AGW_PROTO_OPENAI: agw_openai_stream_encoder_free(&b->oe); break;
    case AGW_PROTO_RESPONSES: agw_responses_stream_encoder_free(&b->re); break;
    default: agw_anthropic_stream_encoder_free(&b->ae); break;
    }
    agw_ir_fold_free(&b->fold);
    if (b->sanitizing)
        agw_sanitize_stage_free(&b->sanitize);
    if (b->continuing)
        agw_continuation_free(&b->cont);
    agw_arena arena = b->arena; /* b is in it */
    agw_arena_free(&arena);
}

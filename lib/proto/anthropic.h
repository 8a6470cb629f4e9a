/*
 * anthropic: the Anthropic Messages codec (requests, SSE streams,
 * responses, errors) against the IR in ir.h. The implementation is one file
 * per direction, anthropic_*.c (anthropic_int.h lists them).
 *
 * Used only when the client and the upstream speak different protocols; same
 * protocol in and out is the byte-for-byte passthrough of net/relay.h.
 *
 * Rules the encoder enforces because the Messages API requires them:
 *  - max_tokens is required: AGW_ANTHROPIC_DEFAULT_MAX_TOKENS when the
 *    client sent none;
 *  - one top-level `system` (the IR's system blocks, as text blocks);
 *  - no empty text blocks, no empty turns; consecutive turns of one role are
 *    merged; every tool_result goes first in its user turn;
 *  - images only in user turns; temperature within 0..1 (AGW_EINVAL above);
 *  - tool_choice `none` is sent as {"type":"none"}; parallel_tool_calls=false
 *    becomes disable_parallel_tool_use inside tool_choice.
 * The stream encoder writes `event:` lines as the API does and a `ping` after
 * message_start; the decoder accepts `ping` and unknown events (ignored) and
 * concatenates input_json_delta pieces without parsing them.
 */
#ifndef AGW_PROTO_ANTHROPIC_H
#define AGW_PROTO_ANTHROPIC_H

#include "proto/ir.h"

#define AGW_ANTHROPIC_DEFAULT_MAX_TOKENS 4096

/* Client request -> IR. AGW_EINVAL with a message naming the field. IR
 * strings are views into body (when they hold no escape) or the arena. */
AGW_WARN_UNUSED agw_err agw_anthropic_decode_request(agw_str body, agw_arena *arena,
                                                     agw_ir_request *out, char *err,
                                                     size_t errlen);

/* IR -> upstream request body ("stream": true when rq->stream). */
AGW_WARN_UNUSED agw_err agw_anthropic_encode_request(const agw_ir_request *rq, agw_buf *out,
                                                     char *err, size_t errlen);

/* Upstream stream -> IR events: feed each SSE event's name and data. Event
 * strings are valid only during the sink call. A sink's non-zero return
 * stops that call's remaining events and is not an error (AGW_OK). */
typedef struct {
    int started, finished;
    agw_arena arena;
} agw_anthropic_stream_decoder;

void agw_anthropic_stream_decoder_init(agw_anthropic_stream_decoder *d);
AGW_WARN_UNUSED agw_err agw_anthropic_decode_stream_event(agw_anthropic_stream_decoder *d,
                                                          agw_str event, agw_str data,
                                                          agw_ir_sink sink, void *ud, char *err,
                                                          size_t errlen);
/* AGW_OK when message_stop (or an error event) was seen; AGW_EPEER otherwise. */
AGW_WARN_UNUSED agw_err agw_anthropic_decode_stream_end(agw_anthropic_stream_decoder *d);
void agw_anthropic_stream_decoder_free(agw_anthropic_stream_decoder *d);

/* A non-streamed upstream answer (a Messages response object) -> the IR
 * events its stream would have given: MESSAGE_START (input usage), each
 * content block as BLOCK_START, its content as one delta (a tool_use's input
 * as its JSON text, a thinking block's signature as a second delta),
 * BLOCK_STOP, then MESSAGE_DELTA (stop reason, end_turn when absent; all of
 * the usage) and MESSAGE_STOP; an error body -> one ERROR event. AGW_EINVAL
 * (message in err) for a body that is not such an object or holds a block
 * type the IR cannot carry. A stopping sink ends the events, not an error.
 * Event strings are valid only during the sink call. */
AGW_WARN_UNUSED agw_err agw_anthropic_decode_response(agw_str body, agw_ir_sink sink, void *ud,
                                                      char *err, size_t errlen);

/* IR events -> client SSE with event: lines. */
typedef struct {
    agw_str model;   /* the model name the client used (copied) */
    agw_str id;      /* msg_ id (copied) */
    int started;
    agw_arena arena;
} agw_anthropic_stream_encoder;

void agw_anthropic_stream_encoder_init(agw_anthropic_stream_encoder *e, agw_str model,
                                       agw_str id);
AGW_WARN_UNUSED agw_err agw_anthropic_encode_stream_event(agw_anthropic_stream_encoder *e,
                                                          const agw_ir_event *ev, agw_buf *out);
void agw_anthropic_stream_encoder_free(agw_anthropic_stream_encoder *e);

/* A folded answer -> a Messages response object ("type":"message"). */
AGW_WARN_UNUSED agw_err agw_anthropic_encode_response(const agw_ir_fold *f, agw_str model,
                                                      agw_str id, agw_buf *out);

/* An upstream error body ({"type":"error","error":{"type","message"}}) -> its
 * type and message. AGW_EINVAL when it is not that shape. */
AGW_WARN_UNUSED agw_err agw_anthropic_decode_error(agw_str body, agw_arena *arena, agw_str *type,
                                                   agw_str *message);

#endif

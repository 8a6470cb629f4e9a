/*
 * openai: the OpenAI Chat Completions codec (requests, SSE streams,
 * responses, errors) against the IR in ir.h. The implementation is one file
 * per direction, openai_*.c (openai_int.h lists them).
 *
 * Used only when the client and the upstream speak different protocols; same
 * protocol in and out is the byte-for-byte passthrough of net/relay.h.
 *
 * Conventions that cross the IR boundary (README.md, "Protocol conversion"):
 *  - usage: OpenAI prompt_tokens includes cached tokens; the IR's `input`
 *    does not. Decoding: input = prompt_tokens - cached_tokens,
 *    cache_read = cached_tokens. Encoding: prompt_tokens = input + cache_read +
 *    cache_write, prompt_tokens_details.cached_tokens = cache_read.
 *  - stop reasons: stop <-> end_turn (stop_sequence encodes as stop too),
 *    length <-> max_tokens, tool_calls <-> tool_use, content_filter <-> refusal.
 *  - tool calls: the encoder numbers OpenAI tool_calls[].index from 0 in the
 *    order the calls start, whatever their IR block index, and sends id, type
 *    and function.name only in a call's first delta.
 *  - thinking: streamed to OpenAI clients as `delta.reasoning_content` (and
 *    `message.reasoning_content` when not streamed); signatures and redacted
 *    thinking are not representable and are dropped.
 *  - the usage chunk (`choices: []`) is sent only when the client asked
 *    (stream_options.include_usage); streamed requests to an OpenAI
 *    upstream always ask for it so the gateway can count tokens.
 *  - errors: ERROR events and agw_openai_decode_error use the IR's error
 *    vocabulary (Anthropic's types), with the status taken from OpenAI's
 *    type and code; the stream encoder writes OpenAI's types.
 *
 * Where the API leaves a choice open:
 *  - decoding: system and developer messages join the IR system prompt in
 *    order wherever they stand; empty texts, and turns left empty, are
 *    dropped; consecutive turns of one role merge, tool messages being user
 *    turns whose tool results go first; `model` is optional (the router may
 *    fill it in); unknown parameters are ignored; strings without escapes
 *    are views into the body, which outlives the IR anyway (ir.h).
 *  - encoding: the system blocks become one leading "system" message, texts
 *    joined with "\n\n"; each tool_result a "tool" message holding its
 *    texts joined with "\n\n", prefixed "Error: " when is_error; images in
 *    tool results go first in the "user" message after them; an assistant
 *    turn's texts are concatenated as streamed.
 *  - the stream encoder omits system_fingerprint (there is no OpenAI
 *    backend to fingerprint) and opens with {"role":"assistant","content":""}.
 *
 * All functions append to caller-owned buffers; decoders allocate in the
 * caller's arena; `err` (may be NULL) receives a message for the client.
 */
#ifndef AGW_PROTO_OPENAI_H
#define AGW_PROTO_OPENAI_H

#include "proto/ir.h"

/* Client request -> IR. AGW_EINVAL (message in err, naming the field) for
 * malformed requests and for parameters the IR cannot carry without changing
 * their meaning (n > 1, logprobs, logit_bias, non-zero penalties, audio, ...). */
AGW_WARN_UNUSED agw_err agw_openai_decode_request(agw_str body, agw_arena *arena,
                                                  agw_ir_request *out, char *err, size_t errlen);

/* IR -> upstream request body. Streams (with include_usage) when rq->stream,
 * else asks for one JSON answer. Anthropic `thinking` becomes
 * reasoning_effort for reasoning models (o-series, gpt-5* but gpt-5-chat*)
 * and is left out for others (they have no such control). Reasoning models
 * get no temperature, top_p or stop (they refuse them), and the o-series no
 * parallel_tool_calls. AGW_EINVAL when something cannot be expressed (top_k). */
AGW_WARN_UNUSED agw_err agw_openai_encode_request(const agw_ir_request *rq, agw_buf *out,
                                                  char *err, size_t errlen);

/* Upstream stream -> IR events. Feed the `data` of each SSE event in order
 * (including "[DONE]"); call _end when the stream is over. A feed returns
 * AGW_EINVAL (message in err) for invalid JSON or a tool call index past 127,
 * AGW_EPEER when the sink stopped it; after [DONE] or an error payload, later
 * data is ignored. */
typedef struct {
    int started;           /* MESSAGE_START sent */
    int finished;          /* MESSAGE_STOP or ERROR sent */
    int next_index;        /* next IR block index */
    int open_index;        /* IR index of the open block, -1 none */
    int open_kind;         /* agw_ir_block_kind of the open block */
    int tool_blocks[128];  /* OpenAI tool_calls index -> IR block index, -1 none */
    agw_ir_stop stop;      /* from finish_reason, held until usage or [DONE] */
    agw_ir_usage usage;
    int have_stop;
    agw_arena arena;       /* ids and names that must outlive one event */
} agw_openai_stream_decoder;

void agw_openai_stream_decoder_init(agw_openai_stream_decoder *d);
AGW_WARN_UNUSED agw_err agw_openai_decode_stream_event(agw_openai_stream_decoder *d, agw_str data,
                                                       agw_ir_sink sink, void *ud, char *err,
                                                       size_t errlen);
/* AGW_OK when the stream reached [DONE] (or a finish_reason and the usage
 * chunk, for servers that omit [DONE]) or an error payload, and every event
 * has been emitted; AGW_EPEER when it stopped early (nothing is emitted then:
 * the caller reports the break). */
AGW_WARN_UNUSED agw_err agw_openai_decode_stream_end(agw_openai_stream_decoder *d,
                                                     agw_ir_sink sink, void *ud);
void agw_openai_stream_decoder_free(agw_openai_stream_decoder *d);

/* A non-streamed upstream answer (a chat.completion object) -> the IR
 * events its stream would have given, MESSAGE_START to MESSAGE_STOP, with
 * choices[0].message read as one delta; an {"error":...} body -> one ERROR
 * event. AGW_EINVAL (message in err) for a body that is not a JSON object or
 * that the stream decoder would refuse; AGW_EPEER when the sink stopped it.
 * Event strings are valid only during the sink call. */
AGW_WARN_UNUSED agw_err agw_openai_decode_response(agw_str body, agw_ir_sink sink, void *ud,
                                                   char *err, size_t errlen);

/* IR events -> client SSE ("data: {...}\n\n" ... "data: [DONE]\n\n"). */
typedef struct {
    int include_usage;     /* the client asked for the usage chunk */
    agw_str id;            /* chatcmpl id for every chunk (copied) */
    agw_str model;         /* the model name the client used (copied) */
    int64_t created;
    int role_sent;
    int n_tool_calls;
    int tool_index[256];   /* IR block index -> OpenAI tool call index, -1 none */
    unsigned char tool_args_sent[256]; /* IR block index: a non-empty arguments piece went out */
    agw_ir_usage usage;
    agw_ir_stop stop;
    int done;
    agw_arena arena;
} agw_openai_stream_encoder;

void agw_openai_stream_encoder_init(agw_openai_stream_encoder *e, int include_usage,
                                    agw_str model, int64_t created);
/* Appends what the event becomes (possibly nothing). ERROR becomes
 * `data: {"error":{...}}` with no [DONE] after it. */
AGW_WARN_UNUSED agw_err agw_openai_encode_stream_event(agw_openai_stream_encoder *e,
                                                       const agw_ir_event *ev, agw_buf *out);
void agw_openai_stream_encoder_free(agw_openai_stream_encoder *e);

/* A folded answer -> a chat.completion object. */
AGW_WARN_UNUSED agw_err agw_openai_encode_response(const agw_ir_fold *f, agw_str model,
                                                   int64_t created, agw_buf *out);

/* An upstream error body ({"error":{"message","type","code"}}) -> its type in
 * the IR's vocabulary (e.g. "rate_limit_error" for type "requests") and its
 * message (views into body or arena). AGW_EINVAL when it is not that shape. */
AGW_WARN_UNUSED agw_err agw_openai_decode_error(agw_str body, agw_arena *arena, agw_str *type,
                                                agw_str *message);

#endif

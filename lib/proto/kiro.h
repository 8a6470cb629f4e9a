/*
 * kiro: the CodeWhisperer streaming codec (Kiro's generateAssistantResponse)
 * against the IR in ir.h: requests out, the AWS event stream back. One file
 * per direction, kiro_*.c.
 *
 * Kiro is never a client protocol: a request reaches it only through the IR,
 * from an OpenAI or Anthropic client, and its answer goes back the same way.
 *
 * Requests (agw_kiro_encode_request). Kiro answers "400 Improperly formed
 * request" to many shapes the client protocols allow, so the encoder writes
 * only shapes it takes:
 *  - The system prompt has no field: it becomes the first history pair (a
 *    user turn holding it, an assistant turn acknowledging it). When the
 *    client asked for thinking (Anthropic `thinking` of type enabled, or
 *    OpenAI `reasoning_effort` minimal / low / medium / high: budgets 1024 /
 *    2048 / 8192 / 24576), the system text starts with <thinking_mode>enabled</thinking_mode>
 *    <max_thinking_length>N</max_thinking_length>.
 *  - Turns alternate and start with a user turn: adjacent turns of one role
 *    merge; a leading assistant turn gets a user turn "Continue" before it;
 *    the last turn is the current message and must be a user turn, so a
 *    trailing assistant turn (prefill) goes into history followed by
 *    "Continue". A user turn without text gets "Continue" (or, with tool
 *    results, "Tool results provided."); an assistant turn without text but
 *    with tool calls gets "(tool call)" - Kiro refuses empty content.
 *  - Images: base64 only (Kiro cannot fetch URLs: a URL image is refused),
 *    format from the media type (`jpeg`, never `jpg`); images inside a tool
 *    result join the images of the turn that carries it.
 *  - Tools: names over 64 bytes are shortened reversibly (agw_kiro_tool_name:
 *    55 bytes, '_', 8 hex digits of the name's SHA-256) and mapped back in the
 *    answer; descriptions are cut at 10000 bytes, empty ones get a
 *    placeholder; schemas lose every `additionalProperties` and every empty
 *    `required`. Tools the history used but the request no longer declares
 *    are declared (with an empty object schema), so the history stays valid.
 *  - Tool results: one per toolUseId (the first kept), content never empty,
 *    status "error" when the client marked is_error.
 *  - tool_choice none: the request's tools are left out, but those the
 *    history used. Other tool_choice values, sampling parameters and stop
 *    sequences have no field and are left out; max_tokens too (Kiro ends long answers with
 *    ContentLengthExceededException, reported as max_tokens).
 *
 * Answers (agw_kiro_stream_decoder): the bytes of the event stream in any
 * split -> IR events. Text becomes one text block per run; each tool call a
 * tool_use block streamed as its input fragments arrive (the name mapped
 * back to the client's); with thinking asked, <thinking>...</thinking> at
 * the start of the answer is split out into a thinking block (the tags may
 * be cut across events; a <thinking> later in the text is plain text), and
 * the native reasoningContentEvent becomes thinking too (dropped when the
 * client did not ask). The answer ends when the stream does: tool_use when
 * a tool was called, max_tokens after ContentLengthExceededException,
 * end_turn otherwise. A tool call without its `stop` (cut off), a tool input
 * that is not a JSON object, a bad frame or an exception end the answer with
 * an ERROR event instead (ThrottlingException -> 429 rate_limit_error).
 *
 * Usage: Kiro reports no token counts. Input = contextUsagePercentage / 100
 * x the model's context window (200k; 1M for "-1m" models) when the stream
 * reported it, else the request's local estimate; output = a quarter of the
 * answer's bytes (text, thinking, tool input). Both are estimates, always.
 * Credits from meteringEvent add up in
 * agw_kiro_stream_credits.
 *
 * Ownership: encoders append to caller-owned buffers; the decoder owns its
 * state (free with agw_kiro_stream_decoder_free); event strings are valid
 * only during the sink call.
 */
#ifndef AGW_PROTO_KIRO_H
#define AGW_PROTO_KIRO_H

#include "core/eventstream.h"
#include "proto/ir.h"

/* Kiro's longest tool name. */
#define AGW_KIRO_TOOL_NAME_MAX 64
/* Kiro's longest tool description. */
#define AGW_KIRO_TOOL_DESC_MAX 10000

/* The Kiro model id for a client's model name, in the arena: a date suffix
 * (-YYYYMMDD) and "-latest" dropped, then Anthropic's dashed versions
 * dotted ("claude-sonnet-4-5" -> "claude-sonnet-4.5", "claude-3-7-sonnet"
 * -> "claude-3.7-sonnet"). Other names pass as given. */
agw_str agw_kiro_model_id(agw_arena *a, agw_str model);

/* The context window of a Kiro model id, in tokens. */
int64_t agw_kiro_context_window(agw_str model_id);

/* The name a tool has at Kiro: itself up to AGW_KIRO_TOOL_NAME_MAX bytes,
 * else the shortened form described above (in the arena). */
agw_str agw_kiro_tool_name(agw_arena *a, agw_str name);

/* A random UUID (version 4) in lowercase hex with dashes, NUL-terminated:
 * the conversation and invocation ids Kiro's clients send. AGW_EIO when the
 * RNG fails. */
AGW_WARN_UNUSED agw_err agw_kiro_uuid(char out[37]);

/* 1 when `rq` asks for thinking (see above). */
int agw_kiro_thinking_asked(const agw_ir_request *rq);

typedef struct {
    agw_str profile_arn;      /* empty: no profileArn member */
    agw_str conversation_id;  /* empty: a random UUID */
} agw_kiro_request_opts;

/* IR -> the generateAssistantResponse body. AGW_EINVAL (message in err) for
 * what Kiro cannot take (a URL image, an image format it does not know). */
AGW_WARN_UNUSED agw_err agw_kiro_encode_request(const agw_ir_request *rq,
                                                const agw_kiro_request_opts *opts, agw_buf *out,
                                                char *err, size_t errlen);

typedef struct {
    agw_es_decoder es;
    agw_arena arena;           /* what lives as long as the answer */
    agw_arena frame;           /* what one frame's payload decodes to; freed after it */
    /* from the request */
    int thinking_asked;
    int64_t context_window;
    int64_t input_estimate;
    agw_str *long_tools;       /* the request's tool names over 64 bytes */
    agw_str *short_tools;      /* ... and their Kiro names */
    size_t n_long_tools;
    /* the answer so far */
    int started, finished;     /* MESSAGE_START sent; MESSAGE_STOP or ERROR sent */
    int frames;                /* frames read */
    int next_index, open_index;/* IR block indices; open_index -1: none */
    agw_ir_block_kind open_kind;
    int thinking_state;        /* 0 looking for <thinking>, 1 inside, 2 done or not asked */
    agw_buf held;              /* text held back: a tag may be cut across events */
    agw_str tool_id;           /* the open tool call (in arena) */
    agw_buf tool_input;        /* its input so far, checked at its stop */
    int tool_stopped;          /* the last tool call got its stop */
    agw_buf tool_ids;          /* ids of finished calls, each followed by "\n" */
    int saw_tool, saw_length;
    double context_pct;        /* -1: not reported */
    double credits;            /* -1: no meteringEvent */
    uint64_t output_bytes;
    agw_err err;               /* sticky: the sink stopped, or a bad frame */
    char why[160];
} agw_kiro_stream_decoder;

/* `rq` is the request the answer is for (tool names, thinking, model); it is
 * only read during the call. */
void agw_kiro_stream_decoder_init(agw_kiro_stream_decoder *d, const agw_ir_request *rq);
/* Feeds bytes of the answer. A bad frame or an exception emits the ERROR
 * event that ends the answer and returns AGW_OK: the stream was read, and
 * the client learns what went wrong; later bytes are ignored. AGW_EPEER when
 * the sink stopped the feed. */
AGW_WARN_UNUSED agw_err agw_kiro_decode_stream_bytes(agw_kiro_stream_decoder *d, const char *p,
                                                     size_t n, agw_ir_sink sink, void *ud);
/* The end of the stream: closes the answer (MESSAGE_DELTA with the stop
 * reason and usage, MESSAGE_STOP), or emits its ERROR for a cut-off tool
 * call, a stream that stopped inside a frame or one without a single frame
 * (Kiro always sends some). AGW_OK when every event has
 * been emitted, AGW_EPEER when the sink stopped. */
AGW_WARN_UNUSED agw_err agw_kiro_decode_stream_end(agw_kiro_stream_decoder *d, agw_ir_sink sink,
                                                   void *ud);
/* Credits the answer was charged (the sum of its meteringEvents), -1 when
 * it had none. */
double agw_kiro_stream_credits(const agw_kiro_stream_decoder *d);
void agw_kiro_stream_decoder_free(agw_kiro_stream_decoder *d);

/* An error body of Kiro's ({"message": ..., "__type"|"reason": ...}) -> its
 * type in the IR's vocabulary and its message; `status` is the HTTP status
 * it came with. ThrottlingException (or a rate-exceeded reason) is a
 * rate_limit_error whatever the status, and *status becomes 429 then.
 * AGW_EINVAL when the body is not a JSON object with a message. */
AGW_WARN_UNUSED agw_err agw_kiro_decode_error(agw_str body, agw_arena *arena, int *status,
                                              agw_str *type, agw_str *message);

#endif

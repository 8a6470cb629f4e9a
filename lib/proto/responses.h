/*
 * responses: the OpenAI Responses API codec (POST /v1/responses: requests,
 * typed SSE streams, response objects, errors) against the IR in ir.h. One
 * file per direction, responses_*.c (responses_int.h lists them).
 *
 * Used only when the client and the upstream speak different protocols; a
 * Responses client on a Responses upstream is the byte-for-byte passthrough
 * of net/relay.h (after agw_responses_check_stateless).
 *
 * The gateway is stateless: it keeps no response, so what needs the server
 * to remember one is refused with a 400 that says so, on every path:
 * previous_response_id, conversation, background mode, and an explicit
 * store:true. Requests the gateway encodes always say "store":false.
 *
 * Conventions that cross the IR boundary:
 *  - input: a string is one user message; items are messages (roles user,
 *    assistant, system, developer; content a string or input_text /
 *    input_image / output_text / refusal parts), function_call (a TOOL_USE
 *    with call_id as its id), function_call_output (a TOOL_RESULT) and
 *    reasoning (THINKING: the summary texts joined by a blank line, the
 *    encrypted_content as its signature; without a summary a
 *    REDACTED_THINKING carrying the encrypted_content; reasoning items
 *    OpenAI issued are dropped, as no other provider can read them). system and
 *    developer messages and `instructions` join the IR system prompt.
 *  - reasoning.effort <-> the IR's Anthropic thinking config: minimal/none
 *    off, low 2048, medium 8192, high 24576 budget tokens, and back with the
 *    chat codec's thresholds (< 4096 low, < 16384 medium, else high).
 *  - tools: function tools only; any other type (web_search, file_search,
 *    computer use, MCP, custom...) is refused naming it, since only a
 *    Responses provider can serve those (and it gets the passthrough).
 *    text.format json_schema / json_object is refused the same way.
 *  - usage: input_tokens includes cached tokens (decoded as the OpenAI codec
 *    does: input = input_tokens - cached_tokens); reasoning_tokens <->
 *    the IR's usage.reasoning.
 *  - stop reasons: a completed response is end_turn, or tool_use when it
 *    holds a function call; incomplete for max_output_tokens <-> max_tokens,
 *    for content_filter <-> refusal.
 *  - ids: the response id is "resp_" + the upstream's id (kept when it
 *    already has the prefix); item ids are derived from it and the output
 *    index ("msg_<base>_<n>", "rs_<base>_<n>"), a function call's is "fc_" +
 *    its call_id, so a stream and its fold agree and tests are repeatable.
 *  - each IR TEXT block is one message item with one output_text part, each
 *    THINKING block one reasoning item with one summary_text part (its
 *    signature as encrypted_content), each TOOL_USE one function_call item.
 *
 * The stream encoder writes the typed event sequence with `event:` lines and
 * a sequence_number on every event: response.created, response.in_progress,
 * then per item output_item.added, its parts' added / delta / done events,
 * output_item.done, and at the end response.completed (or
 * response.incomplete); an IR ERROR becomes response.failed.
 *
 * All functions append to caller-owned buffers; decoders allocate in the
 * caller's arena; `err` (may be NULL) receives a message for the client.
 */
#ifndef AGW_PROTO_RESPONSES_H
#define AGW_PROTO_RESPONSES_H

#include "proto/ir.h"

/* AGW_EINVAL (message in err) when a Responses request needs server-side
 * state the gateway does not keep (see above); AGW_OK otherwise, including
 * for a body that is not an object (the decoder or the provider reports
 * that). Checked on the passthrough path too. */
AGW_WARN_UNUSED agw_err agw_responses_check_stateless(agw_str body, char *err, size_t errlen);

/* Client request -> IR. AGW_EINVAL with a message naming the field for
 * malformed requests, stateful ones, and what the IR cannot carry. */
AGW_WARN_UNUSED agw_err agw_responses_decode_request(agw_str body, agw_arena *arena,
                                                     agw_ir_request *out, char *err,
                                                     size_t errlen);

/* IR -> upstream request body ("stream":true when rq->stream, "store":false
 * always). AGW_EINVAL when something cannot be expressed (top_k). Stop
 * sequences are dropped: the Responses API has none. */
AGW_WARN_UNUSED agw_err agw_responses_encode_request(const agw_ir_request *rq, agw_buf *out,
                                                     char *err, size_t errlen);

/* Upstream stream -> IR events: feed each SSE event's name and data (the
 * `type` member decides; the name may be empty). AGW_EINVAL (message in err)
 * for invalid JSON or an event out of sequence; AGW_EPEER when the sink
 * stopped it. After a terminal event (completed, incomplete, failed, error)
 * later events are ignored. */
#define AGW_RESPONSES_MAX_ITEMS 256

typedef struct {
    int started;           /* MESSAGE_START sent */
    int finished;          /* MESSAGE_STOP or ERROR sent */
    int next_index;        /* next IR block index */
    int saw_call;          /* a function call was emitted (stop = tool_use) */
    /* per output_index: the open IR block (-1 none), its kind, whether a
     * delta was seen */
    int block_of[AGW_RESPONSES_MAX_ITEMS];
    unsigned char kind_of[AGW_RESPONSES_MAX_ITEMS];
    unsigned char had_delta[AGW_RESPONSES_MAX_ITEMS];
    agw_arena arena;
} agw_responses_stream_decoder;

void agw_responses_stream_decoder_init(agw_responses_stream_decoder *d);
AGW_WARN_UNUSED agw_err agw_responses_decode_stream_event(agw_responses_stream_decoder *d,
                                                          agw_str event, agw_str data,
                                                          agw_ir_sink sink, void *ud, char *err,
                                                          size_t errlen);
/* AGW_OK when a terminal event was seen; AGW_EPEER otherwise. */
AGW_WARN_UNUSED agw_err agw_responses_decode_stream_end(agw_responses_stream_decoder *d);
void agw_responses_stream_decoder_free(agw_responses_stream_decoder *d);

/* A non-streamed upstream answer (a response object) -> the IR events its
 * stream would have given; an {"error":...} body or a failed response -> one
 * ERROR event. AGW_EINVAL for a body that is not such an object. Event
 * strings are valid only during the sink call. */
AGW_WARN_UNUSED agw_err agw_responses_decode_response(agw_str body, agw_ir_sink sink, void *ud,
                                                      char *err, size_t errlen);

/* IR events -> client SSE. */
typedef struct {
    agw_str model;         /* the model name the client used (copied) */
    agw_str id;            /* resp_ id, set at the first event */
    int64_t created;
    int64_t seq;           /* next sequence_number */
    int started, done;
    int open;              /* IR index of the open block, -1 none */
    int open_kind;         /* its agw_ir_block_kind */
    int output_index;      /* of the open item; items so far = next */
    int n_items;
    int saw_call;
    agw_str item_id, call_id, name; /* of the open item (arena) */
    agw_buf text;          /* the open item's text or arguments so far */
    agw_buf signature;     /* the open reasoning item's signature */
    agw_buf items;         /* the finished items' JSON, comma-separated */
    agw_ir_usage usage;
    agw_ir_stop stop;
    agw_arena arena;
} agw_responses_stream_encoder;

void agw_responses_stream_encoder_init(agw_responses_stream_encoder *e, agw_str model,
                                       int64_t created);
AGW_WARN_UNUSED agw_err agw_responses_encode_stream_event(agw_responses_stream_encoder *e,
                                                          const agw_ir_event *ev, agw_buf *out);
void agw_responses_stream_encoder_free(agw_responses_stream_encoder *e);

/* A folded answer -> a response object ("object":"response"). */
AGW_WARN_UNUSED agw_err agw_responses_encode_response(const agw_ir_fold *f, agw_str model,
                                                      int64_t created, agw_buf *out);

/* An upstream error body -> type and message: OpenAI's error shape
 * (agw_openai_decode_error), which the Responses API shares. */
AGW_WARN_UNUSED agw_err agw_responses_decode_error(agw_str body, agw_arena *arena, agw_str *type,
                                                   agw_str *message);

#endif

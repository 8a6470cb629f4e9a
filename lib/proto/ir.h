/*
 * ir: the one internal representation every protocol codec decodes into and
 * encodes from, so N protocols need N codecs, not N×M converters.
 *
 * The model follows Anthropic's, the richest of the protocols: a request is a
 * system prompt, messages of ordered content blocks, tools and sampling
 * parameters; a response is a sequence of stream events (message start, block
 * start / delta / stop, message delta, message stop, error). A non-streamed
 * response is the same events folded (agw_ir_fold), so streaming and not
 * streaming share one path.
 *
 * Strings are views (agw_str), never NUL-terminated C strings, so a `\u0000`
 * in a prompt or an answer survives. Decoded strings live in the request's
 * arena; raw JSON values that pass through unchanged (tool input, tool
 * schemas, cache_control) are views into the original body. Whoever decodes
 * owns the arena and keeps the body alive until encoding is done.
 *
 * Absent optional values: empty views (ptr NULL), -1 for integers, has_* 0.
 */
#ifndef AGW_IR_H
#define AGW_IR_H

#include "core/core.h"

/* ---- requests ---- */

typedef enum { AGW_IR_USER = 0, AGW_IR_ASSISTANT } agw_ir_role;

typedef enum {
    AGW_IR_TEXT = 0,
    AGW_IR_IMAGE,
    AGW_IR_TOOL_USE,
    AGW_IR_TOOL_RESULT,
    AGW_IR_THINKING,
    AGW_IR_REDACTED_THINKING,
} agw_ir_block_kind;

typedef struct agw_ir_block agw_ir_block;
struct agw_ir_block {
    agw_ir_block_kind kind;
    agw_str text;          /* TEXT; THINKING: the thinking; REDACTED_THINKING: its data */
    agw_str signature;     /* THINKING (may be empty) */
    /* IMAGE: a base64 payload with its media type, or a URL */
    int image_is_url;
    agw_str media_type;    /* "image/png" ...; empty for URLs */
    agw_str image_data;    /* base64 (no "data:" prefix) or the URL */
    /* TOOL_USE */
    agw_str tool_id;
    agw_str tool_name;
    agw_str tool_input;    /* raw JSON object text ("{}" when the call had none) */
    /* TOOL_RESULT: refers to a TOOL_USE by tool_id; content is text/image blocks */
    agw_ir_block *content;
    size_t n_content;
    int is_error;
    /* Anthropic prompt-caching mark, raw JSON ({"type":"ephemeral"}), or empty */
    agw_str cache_control;
};

typedef struct {
    agw_ir_role role;
    agw_ir_block *blocks;
    size_t n_blocks;
} agw_ir_message;

typedef struct {
    agw_str name;
    agw_str description;   /* may be empty */
    agw_str schema;        /* raw JSON schema object; "{}"-like when absent */
    agw_str cache_control;
} agw_ir_tool;

typedef enum {
    AGW_IR_TC_UNSET = 0,   /* the client said nothing */
    AGW_IR_TC_AUTO,
    AGW_IR_TC_ANY,         /* OpenAI "required" */
    AGW_IR_TC_NONE,
    AGW_IR_TC_TOOL,        /* a named tool */
} agw_ir_tool_choice;

typedef struct {
    agw_str model;
    agw_ir_block *system;  /* TEXT blocks, in order */
    size_t n_system;
    agw_ir_message *messages;
    size_t n_messages;
    agw_ir_tool *tools;
    size_t n_tools;
    agw_ir_tool_choice tool_choice;
    agw_str tool_choice_name;  /* AGW_IR_TC_TOOL */
    int parallel_tool_calls;   /* 1 allowed, 0 disabled, -1 unset */
    int64_t max_tokens;        /* -1 unset */
    int has_temperature;
    double temperature;
    int has_top_p;
    double top_p;
    int64_t top_k;             /* -1 unset */
    agw_str *stop;             /* stop sequences */
    size_t n_stop;
    int stream;                /* the client wants a stream */
    int stream_usage;          /* an OpenAI client asked for the usage chunk */
    agw_str user;              /* OpenAI `user` / Anthropic metadata.user_id */
    agw_str thinking;          /* Anthropic `thinking` config, raw JSON, or empty */
    agw_str reasoning_effort;  /* OpenAI `reasoning_effort` ("low" ...), decoded, or empty:
                                  read by codecs whose thinking is a budget (Kiro's) */
} agw_ir_request;

/* An empty request: nothing given, every "unset" field at its unset value.
 * Where request decoders start. */
void agw_ir_request_init(agw_ir_request *rq);

/* A zeroed block appended to the arena array *v of *n blocks (room for *cap),
 * which grows by doubling in `a`: what request decoders build turns with. */
agw_ir_block *agw_ir_push_block(agw_arena *a, agw_ir_block **v, size_t *n, size_t *cap);

/* ---- responses as events ---- */

typedef enum {
    AGW_IR_STOP_NONE = 0,      /* not known (yet) */
    AGW_IR_STOP_END_TURN,
    AGW_IR_STOP_MAX_TOKENS,
    AGW_IR_STOP_STOP_SEQUENCE,
    AGW_IR_STOP_TOOL_USE,
    AGW_IR_STOP_REFUSAL,
    AGW_IR_STOP_PAUSE,
} agw_ir_stop;

/* Token counts; -1 = not reported. `input` excludes cached tokens (Anthropic's
 * convention); an OpenAI codec converts prompt_tokens both ways. */
typedef struct {
    int64_t input;
    int64_t output;
    int64_t cache_read;
    int64_t cache_write;
    int64_t reasoning;     /* the part of `output` spent reasoning (OpenAI reports it) */
} agw_ir_usage;

#define AGW_IR_USAGE_UNKNOWN { -1, -1, -1, -1, -1 }

typedef enum {
    AGW_IR_EV_MESSAGE_START = 0, /* id, model, usage (input side) */
    AGW_IR_EV_BLOCK_START,       /* index, block; tool_id/tool_name for TOOL_USE;
                                    REDACTED_THINKING carries its data in `delta` */
    AGW_IR_EV_BLOCK_DELTA,       /* index, delta_kind, delta */
    AGW_IR_EV_BLOCK_STOP,        /* index */
    AGW_IR_EV_MESSAGE_DELTA,     /* stop, stop_sequence, usage (cumulative output) */
    AGW_IR_EV_MESSAGE_STOP,      /* the end of a successful answer */
    AGW_IR_EV_ERROR,             /* status, error_type, error_message: ends the answer */
    AGW_IR_EV_PING,              /* keep-alive; carries nothing */
} agw_ir_event_kind;

typedef enum {
    AGW_IR_DELTA_TEXT = 0,
    AGW_IR_DELTA_JSON,           /* a piece of a tool call's input JSON text */
    AGW_IR_DELTA_THINKING,
    AGW_IR_DELTA_SIGNATURE,
} agw_ir_delta_kind;

typedef struct {
    agw_ir_event_kind kind;
    agw_str id;                  /* MESSAGE_START */
    agw_str model;               /* MESSAGE_START */
    int index;                   /* BLOCK_*: counts every block of the answer from 0 */
    agw_ir_block_kind block;     /* BLOCK_START */
    agw_str tool_id, tool_name;  /* BLOCK_START of a TOOL_USE */
    agw_ir_delta_kind delta_kind;
    agw_str delta;               /* BLOCK_DELTA (and REDACTED_THINKING's data) */
    agw_ir_stop stop;            /* MESSAGE_DELTA */
    agw_str stop_sequence;       /* MESSAGE_DELTA, when stop is STOP_SEQUENCE */
    agw_ir_usage usage;          /* MESSAGE_START, MESSAGE_DELTA */
    int status;                  /* ERROR: the HTTP status it corresponds to */
    agw_str error_type;          /* ERROR: the protocol-neutral type, e.g. "overloaded_error" */
    agw_str error_message;       /* ERROR */
} agw_ir_event;

/* A consumer of events; non-zero stops the producer. */
typedef int (*agw_ir_sink)(void *ud, const agw_ir_event *ev);

/* Copies every count `from` knows (>= 0) into `into`: later reports replace
 * earlier ones field by field (Anthropic splits input and output usage
 * between message_start and message_delta). */
void agw_ir_usage_merge(agw_ir_usage *into, const agw_ir_usage *from);

/* Zeroes an event and marks its usage unknown. */
void agw_ir_event_init(agw_ir_event *ev, agw_ir_event_kind kind);

/* Stop reasons by their Anthropic names ("end_turn", ...); NULL for NONE. */
const char *agw_ir_stop_name(agw_ir_stop s);
/* The reason for an Anthropic name; AGW_IR_STOP_NONE for unknown names. */
agw_ir_stop agw_ir_stop_parse(agw_str name);

/* A local estimate of a request's input tokens, for count_tokens when no
 * provider can count: about 4 bytes of UTF-8 per token over every text the
 * model reads (system, message text, thinking, tool calls and results, tool
 * names, descriptions and schemas), plus 4 per message and 1600 per image
 * (a mid-sized image in Anthropic's published formula). Never below 1. */
int64_t agw_ir_estimate_tokens(const agw_ir_request *rq);

/* ---- folding events into one response ---- */

typedef struct {
    agw_ir_block_kind kind;
    agw_buf text;                /* TEXT / THINKING text; REDACTED data; TOOL_USE input JSON */
    agw_buf signature;           /* THINKING */
    agw_str tool_id, tool_name;  /* in the fold's arena */
} agw_ir_fold_block;

typedef struct {
    agw_arena arena;
    agw_str id, model;
    agw_ir_fold_block *blocks;   /* by event index */
    size_t n_blocks, cap_blocks;
    agw_ir_stop stop;
    agw_str stop_sequence;
    agw_ir_usage usage;          /* merged: later reports replace earlier ones field by field */
    int started, finished;       /* saw MESSAGE_START / MESSAGE_STOP */
    int failed;                  /* saw ERROR */
    int error_status;
    agw_str error_type, error_message;
    size_t max_bytes;            /* cap on all accumulated text, AGW_ETOOBIG past it */
    size_t bytes;
} agw_ir_fold;

void agw_ir_fold_init(agw_ir_fold *f, size_t max_bytes);
/* Adds one event. AGW_EINVAL for an event that breaks the sequence (a delta
 * for a block never started, an index far out of order); AGW_ETOOBIG past max. */
AGW_WARN_UNUSED agw_err agw_ir_fold_add(agw_ir_fold *f, const agw_ir_event *ev);
void agw_ir_fold_free(agw_ir_fold *f);

#endif

/*
 * openai_stream_decode: the `data` of an OpenAI Chat Completions stream's
 * SSE events -> IR events (agw_openai_decode_stream_event in openai.h).
 *
 * OpenAI streams choices[0].delta pieces without block boundaries; the
 * decoder makes them: a block opens when the kind of piece changes (text,
 * reasoning, a new tool call) and closes when the next one opens or the
 * answer ends. The stop reason and the usage chunk come in either order, so
 * both are held until [DONE] (or the end of a stream that had both).
 */
#include "proto/openai_int.h"
#include "proto/wire.h"

#include "core/json.h"

#include <string.h>

/* tool_calls[].index values the decoder follows: agw_openai_stream_decoder's
 * tool_blocks has one slot each. */
#define OAI_MAX_STREAM_TOOLS 128

typedef struct {
    agw_openai_stream_decoder *d;
    agw_ir_sink sink;
    void *ud;
    char *err;
    size_t errlen;
    agw_buf scratch;
} sdec;

#define SFAIL(c, ...) agw_wire_fail((c)->err, (c)->errlen, __VA_ARGS__)

static agw_err sd_emit(sdec *c, const agw_ir_event *ev)
{
    if (c->sink(c->ud, ev) != 0) {
        agw_wire_fail(c->err, c->errlen, "the event consumer stopped the stream");
        return AGW_EPEER;
    }
    return AGW_OK;
}

/* A string token's bytes, valid until the next call: a view into the event's
 * data when unescaped, else decoded into the scratch buffer. */
static agw_err sd_str(sdec *c, agw_str tok, agw_str *out)
{
    if (agw_json_type_of(tok) != AGW_JSON_STRING)
        return AGW_EINVAL;
    return agw_json_string_view(tok, &c->scratch, out);
}

static agw_err sd_start(sdec *c, agw_str chunk)
{
    agw_openai_stream_decoder *d = c->d;
    agw_ir_event ev;
    agw_str v;

    if (d->started)
        return AGW_OK;
    d->started = 1;
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_START);
    /* id and model live in the decoder's arena: two scratch decodes at once. */
    if (chunk.len && agw_json_find(chunk, AGW_STR_LIT("id"), &v) == AGW_OK &&
        agw_json_type_of(v) == AGW_JSON_STRING)
        AGW_WIRE_TRY(agw_wire_string_copy(&d->arena, v, &ev.id));
    if (chunk.len && agw_json_find(chunk, AGW_STR_LIT("model"), &v) == AGW_OK &&
        agw_json_type_of(v) == AGW_JSON_STRING)
        AGW_WIRE_TRY(agw_wire_string_copy(&d->arena, v, &ev.model));
    return sd_emit(c, &ev);
}

static agw_err sd_close(sdec *c)
{
    agw_openai_stream_decoder *d = c->d;
    agw_ir_event ev;

    if (d->open_index < 0)
        return AGW_OK;
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_STOP);
    ev.index = d->open_index;
    d->open_index = -1;
    d->open_kind = -1;
    return sd_emit(c, &ev);
}

/* Starts a block after closing the open one. */
static agw_err sd_open(sdec *c, agw_ir_block_kind kind, agw_str tool_id, agw_str tool_name)
{
    agw_openai_stream_decoder *d = c->d;
    agw_ir_event ev;

    AGW_WIRE_TRY(sd_close(c));
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
    ev.index = d->next_index++;
    ev.block = kind;
    ev.tool_id = tool_id;
    ev.tool_name = tool_name;
    d->open_index = ev.index;
    d->open_kind = (int)kind;
    return sd_emit(c, &ev);
}

static agw_err sd_delta(sdec *c, agw_ir_delta_kind kind, agw_str piece)
{
    agw_ir_event ev;

    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
    ev.index = c->d->open_index;
    ev.delta_kind = kind;
    ev.delta = piece;
    return sd_emit(c, &ev);
}

/* Text or thinking: continues the open block of that kind or starts one. */
static agw_err sd_text(sdec *c, agw_ir_block_kind kind, agw_str tok)
{
    agw_str s;

    if (agw_json_type_of(tok) != AGW_JSON_STRING)
        return AGW_OK; /* null (or anything odd) carries no text */
    if (sd_str(c, tok, &s) != AGW_OK)
        return SFAIL(c, "upstream sent a malformed string");
    if (s.len == 0)
        return AGW_OK;
    /* sd_open leaves the scratch buffer alone, so s stays valid across it. */
    if (c->d->open_index < 0 || c->d->open_kind != (int)kind)
        AGW_WIRE_TRY(sd_open(c, kind, (agw_str){ NULL, 0 }, (agw_str){ NULL, 0 }));
    return sd_delta(c, kind == AGW_IR_THINKING ? AGW_IR_DELTA_THINKING : AGW_IR_DELTA_TEXT, s);
}

/* The tool_blocks slot of a tool call delta with that index and id (JSON
 * spans, absent: {NULL, 0}). */
static agw_err sd_tool_slot(sdec *c, agw_str index, agw_str id, int *slot)
{
    const agw_openai_stream_decoder *d = c->d;
    int64_t idx = -1;
    int s;

    if (agw_wire_given(index)) {
        if (agw_json_int64(index, &idx) != AGW_OK || idx < 0 || idx >= OAI_MAX_STREAM_TOOLS)
            return SFAIL(c, "upstream sent a tool call index outside 0..%d",
                         OAI_MAX_STREAM_TOOLS - 1);
        *slot = (int)idx;
        return AGW_OK;
    }
    if (agw_json_type_of(id) == AGW_JSON_STRING) {
        /* Some compatible servers omit index: an id means a new call. */
        for (s = 0; s < OAI_MAX_STREAM_TOOLS && d->tool_blocks[s] >= 0; s++)
            ;
        if (s == OAI_MAX_STREAM_TOOLS)
            return SFAIL(c, "upstream sent more than %d tool calls", OAI_MAX_STREAM_TOOLS);
    } else {
        /* ...and no id means more of the call being streamed. */
        for (s = 0; s < OAI_MAX_STREAM_TOOLS; s++)
            if (d->tool_blocks[s] >= 0 && d->tool_blocks[s] == d->open_index)
                break;
        if (s == OAI_MAX_STREAM_TOOLS)
            return SFAIL(c, "upstream sent a tool call delta without an index");
    }
    *slot = s;
    return AGW_OK;
}

static agw_err sd_tool_calls(sdec *c, agw_str calls)
{
    static const char *const call_keys[] = { "index", "id", "function" };
    static const char *const fn_keys[] = { "name", "arguments" };
    agw_openai_stream_decoder *d = c->d;
    agw_json_iter it;
    agw_str call, cv[3], fv[2];

    if (agw_json_type_of(calls) != AGW_JSON_ARRAY || agw_json_iter_init(&it, calls) != AGW_OK)
        return AGW_OK;
    while (agw_json_iter_next(&it, NULL, &call)) {
        int slot = 0;

        if (agw_json_type_of(call) != AGW_JSON_OBJECT)
            return SFAIL(c, "upstream sent a tool call that is not an object");
        agw_json_collect(call, call_keys, 3, cv, NULL);
        fv[0] = fv[1] = (agw_str){ NULL, 0 };
        if (agw_json_type_of(cv[2]) == AGW_JSON_OBJECT)
            agw_json_collect(cv[2], fn_keys, 2, fv, NULL);
        AGW_WIRE_TRY(sd_tool_slot(c, cv[0], cv[1], &slot));
        if (d->tool_blocks[slot] < 0) {
            agw_str id = { NULL, 0 }, name = { NULL, 0 };
            if (agw_json_type_of(cv[1]) == AGW_JSON_STRING && cv[1].len > 2)
                AGW_WIRE_TRY(agw_wire_string_copy(&d->arena, cv[1], &id));
            /* Anthropic clients need an id to answer the call with. */
            if (id.len == 0 &&
                agw_wire_make_id(&d->arena, AGW_STR_LIT("call_"), id, &id) != AGW_OK)
                return SFAIL(c, "no randomness for a tool call id");
            if (agw_json_type_of(fv[0]) == AGW_JSON_STRING)
                AGW_WIRE_TRY(agw_wire_string_copy(&d->arena, fv[0], &name));
            AGW_WIRE_TRY(sd_open(c, AGW_IR_TOOL_USE, id, name));
            d->tool_blocks[slot] = d->open_index;
        } else if (d->tool_blocks[slot] != d->open_index) {
            /* The IR streams one block at a time; OpenAI sends calls one after
             * the other, so this is a server we cannot follow. */
            return SFAIL(c, "upstream continued tool call %d after another block started", slot);
        }
        if (agw_json_type_of(fv[1]) == AGW_JSON_STRING && fv[1].len > 2) {
            agw_str args;
            if (sd_str(c, fv[1], &args) != AGW_OK)
                return SFAIL(c, "upstream sent malformed tool call arguments");
            AGW_WIRE_TRY(sd_delta(c, AGW_IR_DELTA_JSON, args));
        }
    }
    return AGW_OK;
}

static int sd_has_tool_calls(const agw_openai_stream_decoder *d)
{
    for (size_t i = 0; i < sizeof d->tool_blocks / sizeof d->tool_blocks[0]; i++)
        if (d->tool_blocks[i] >= 0)
            return 1;
    return 0;
}

static agw_ir_stop stop_from_finish(agw_str tok)
{
    if (agw_json_string_eq(tok, AGW_STR_LIT("length")))
        return AGW_IR_STOP_MAX_TOKENS;
    if (agw_json_string_eq(tok, AGW_STR_LIT("tool_calls")) ||
        agw_json_string_eq(tok, AGW_STR_LIT("function_call")))
        return AGW_IR_STOP_TOOL_USE;
    if (agw_json_string_eq(tok, AGW_STR_LIT("content_filter")))
        return AGW_IR_STOP_REFUSAL;
    return AGW_IR_STOP_END_TURN; /* "stop", and names only other servers use */
}

/* One choice of a stream chunk (its `delta`) or of a whole answer (its
 * `message`, which holds the same members complete). */
static agw_err sd_choice(sdec *c, agw_str choice)
{
    static const char *const keys[] = { "index", "delta", "finish_reason", "message" };
    static const char *const dkeys[] = { "reasoning_content", "reasoning", "content", "refusal",
                                         "tool_calls" };
    agw_openai_stream_decoder *d = c->d;
    agw_str v[4], dv[5];
    int64_t idx;

    if (agw_json_type_of(choice) != AGW_JSON_OBJECT)
        return AGW_OK;
    agw_json_collect(choice, keys, 4, v, NULL);
    if (agw_json_type_of(v[1]) != AGW_JSON_OBJECT)
        v[1] = v[3];
    /* We always ask for one choice; anything else is not ours to merge. */
    if (agw_wire_given(v[0]) && (agw_json_int64(v[0], &idx) != AGW_OK || idx != 0))
        return AGW_OK;
    if (agw_json_type_of(v[1]) == AGW_JSON_OBJECT) {
        agw_json_collect(v[1], dkeys, 5, dv, NULL);
        /* Servers that send both carry the same text in both. */
        AGW_WIRE_TRY(sd_text(c, AGW_IR_THINKING,
                             agw_json_type_of(dv[0]) == AGW_JSON_STRING && dv[0].len > 2 ? dv[0]
                                                                                         : dv[1]));
        AGW_WIRE_TRY(sd_text(c, AGW_IR_TEXT, dv[2]));
        if (agw_json_type_of(dv[3]) == AGW_JSON_STRING && dv[3].len > 2) {
            AGW_WIRE_TRY(sd_text(c, AGW_IR_TEXT, dv[3]));
            d->stop = AGW_IR_STOP_REFUSAL;
        }
        if (agw_wire_given(dv[4]))
            AGW_WIRE_TRY(sd_tool_calls(c, dv[4]));
    }
    if (agw_json_type_of(v[2]) == AGW_JSON_STRING) {
        /* A refusal outranks the "stop" that usually follows it. */
        if (d->stop != AGW_IR_STOP_REFUSAL)
            d->stop = stop_from_finish(v[2]);
        /* With a named tool_choice OpenAI ends a tool call with "stop"; for
         * Anthropic clients an answer holding tool calls ends in tool_use,
         * which agent loops check before running the tools. */
        if (d->stop == AGW_IR_STOP_END_TURN && sd_has_tool_calls(d))
            d->stop = AGW_IR_STOP_TOOL_USE;
        d->have_stop = 1;
        AGW_WIRE_TRY(sd_close(c));
    }
    return AGW_OK;
}

static int64_t usage_int(agw_str obj, const char *key)
{
    agw_str v;
    int64_t n;

    if (agw_json_find(obj, agw_str_c(key), &v) != AGW_OK || agw_json_int64(v, &n) != AGW_OK ||
        n < 0)
        return -1;
    return n;
}

static void sd_usage(agw_openai_stream_decoder *d, agw_str u)
{
    int64_t prompt = usage_int(u, "prompt_tokens"), out = usage_int(u, "completion_tokens");
    int64_t cached = -1;
    agw_str det;

    if (agw_json_find(u, AGW_STR_LIT("prompt_tokens_details"), &det) == AGW_OK &&
        agw_json_type_of(det) == AGW_JSON_OBJECT)
        cached = usage_int(det, "cached_tokens");
    if (prompt >= 0) {
        if (cached > prompt)
            cached = prompt;
        d->usage.input = prompt - (cached > 0 ? cached : 0);
        if (cached >= 0)
            d->usage.cache_read = cached;
    }
    if (out >= 0)
        d->usage.output = out;
    if (agw_json_find(u, AGW_STR_LIT("completion_tokens_details"), &det) == AGW_OK &&
        agw_json_type_of(det) == AGW_JSON_OBJECT && usage_int(det, "reasoning_tokens") >= 0)
        d->usage.reasoning = usage_int(det, "reasoning_tokens");
}

static agw_err sd_error(sdec *c, agw_str e)
{
    static const char *const keys[] = { "message", "type", "code" };
    agw_ir_event ev;
    agw_str v[3] = { { NULL, 0 } };
    const char *neutral;

    agw_ir_event_init(&ev, AGW_IR_EV_ERROR);
    if (agw_json_type_of(e) == AGW_JSON_OBJECT) {
        agw_json_collect(e, keys, 3, v, NULL);
        if (agw_json_type_of(v[0]) == AGW_JSON_STRING)
            AGW_WIRE_TRY(agw_wire_string_copy(&c->d->arena, v[0], &ev.error_message));
    } else if (agw_json_type_of(e) == AGW_JSON_STRING) {
        AGW_WIRE_TRY(agw_wire_string_copy(&c->d->arena, e, &ev.error_message));
    }
    if (ev.error_message.len == 0)
        ev.error_message = AGW_STR_LIT("the upstream reported an error");
    agw_openai_map_error(v[1], v[2], &ev.status, &neutral);
    ev.error_type = agw_str_c(neutral);
    c->d->finished = 1;
    return sd_emit(c, &ev);
}

/* [DONE], or the end of a stream that said all it had to. */
static agw_err sd_finish(sdec *c)
{
    agw_openai_stream_decoder *d = c->d;
    agw_ir_event ev;

    AGW_WIRE_TRY(sd_start(c, (agw_str){ NULL, 0 }));
    AGW_WIRE_TRY(sd_close(c));
    d->finished = 1;
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_DELTA);
    /* A [DONE] without a finish_reason: the answer is whole, call it a turn end. */
    ev.stop = d->stop != AGW_IR_STOP_NONE ? d->stop : AGW_IR_STOP_END_TURN;
    ev.usage = d->usage;
    AGW_WIRE_TRY(sd_emit(c, &ev));
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_STOP);
    return sd_emit(c, &ev);
}

static agw_err sd_chunk(sdec *c, agw_str chunk)
{
    static const char *const keys[] = { "error", "choices", "usage" };
    agw_str v[3], choice;
    agw_json_iter it;

    agw_json_collect(chunk, keys, 3, v, NULL);
    if (agw_wire_given(v[0]))
        return sd_error(c, v[0]);
    AGW_WIRE_TRY(sd_start(c, chunk));
    if (agw_json_type_of(v[1]) == AGW_JSON_ARRAY && agw_json_iter_init(&it, v[1]) == AGW_OK)
        while (agw_json_iter_next(&it, NULL, &choice))
            AGW_WIRE_TRY(sd_choice(c, choice));
    if (agw_json_type_of(v[2]) == AGW_JSON_OBJECT)
        sd_usage(c->d, v[2]);
    return AGW_OK;
}

void agw_openai_stream_decoder_init(agw_openai_stream_decoder *d)
{
    memset(d, 0, sizeof *d);
    d->open_index = -1;
    d->open_kind = -1;
    for (size_t i = 0; i < sizeof d->tool_blocks / sizeof d->tool_blocks[0]; i++)
        d->tool_blocks[i] = -1;
    d->stop = AGW_IR_STOP_NONE;
    d->usage = (agw_ir_usage)AGW_IR_USAGE_UNKNOWN;
}

agw_err agw_openai_decode_stream_event(agw_openai_stream_decoder *d, agw_str data, agw_ir_sink sink,
                                       void *ud, char *err, size_t errlen)
{
    sdec c = { d, sink, ud, err, errlen, AGW_BUF_INIT(data.len + 1) };
    char verr[96];
    agw_err e;

    if (err && errlen)
        err[0] = '\0';
    if (d->finished)
        return AGW_OK; /* the answer is over; anything after it is noise */
    data = agw_wire_trim(data);
    if (agw_str_eq(data, AGW_STR_LIT("[DONE]")))
        return sd_finish(&c);
    if (agw_json_validate(data, AGW_WIRE_MAX_DEPTH, verr, sizeof verr) != AGW_OK)
        return agw_wire_fail(err, errlen, "upstream sent invalid JSON in the stream: %s", verr);
    if (agw_json_type_of(data) != AGW_JSON_OBJECT)
        return agw_wire_fail(err, errlen, "upstream sent a stream event that is not a JSON object");
    e = sd_chunk(&c, data);
    agw_buf_free(&c.scratch);
    return e;
}

agw_err agw_openai_decode_stream_end(agw_openai_stream_decoder *d, agw_ir_sink sink, void *ud)
{
    sdec c = { d, sink, ud, NULL, 0, AGW_BUF_INIT(0) };

    if (d->finished)
        return AGW_OK;
    /* Some compatible servers end without [DONE]; after a finish_reason and
     * the usage chunk nothing is missing. */
    if (d->started && d->have_stop && (d->usage.input >= 0 || d->usage.output >= 0))
        return sd_finish(&c);
    return AGW_EPEER;
}

void agw_openai_stream_decoder_free(agw_openai_stream_decoder *d)
{
    agw_arena_free(&d->arena);
}

agw_err agw_openai_decode_response(agw_str body, agw_ir_sink sink, void *ud, char *err,
                                   size_t errlen)
{
    agw_openai_stream_decoder d;
    sdec c = { &d, sink, ud, err, errlen, AGW_BUF_INIT(body.len + 1) };
    char verr[96];
    agw_err e;

    if (err && errlen)
        err[0] = '\0';
    if (agw_json_validate(body, AGW_WIRE_MAX_DEPTH, verr, sizeof verr) != AGW_OK)
        return agw_wire_fail(err, errlen, "upstream answered with invalid JSON: %s", verr);
    if (agw_json_type_of(body) != AGW_JSON_OBJECT)
        return agw_wire_fail(err, errlen, "upstream answer is not a JSON object");
    agw_openai_stream_decoder_init(&d);
    /* The answer is the one chunk of a stream that says everything at once. */
    e = sd_chunk(&c, body);
    if (e == AGW_OK && !d.finished)
        e = sd_finish(&c);
    agw_buf_free(&c.scratch);
    agw_openai_stream_decoder_free(&d);
    return e;
}

/*
 * responses_stream_decode: the typed SSE events of a Responses stream, and a
 * non-streamed response object, -> IR events (responses.h). The decisions
 * that are not obvious from the contract:
 *
 *  - The event's data `type` decides (the `event:` line repeats it).
 *  - One IR block is open at a time: a block that starts closes the others.
 *  - A function call opens its IR block at output_item.added (clients want
 *    the name early); text and reasoning open theirs at their first delta,
 *    so a reasoning item without a summary (the common case) makes no empty
 *    thinking block. An item that produced no block by output_item.done is
 *    emitted whole from the item itself (servers that skip the deltas).
 *  - A function call's arguments come from its deltas, or from
 *    arguments.done / the finished item when there were none.
 *  - Strings decoded for one event live in the decoder's arena only while
 *    its sink calls run; the arena is emptied after every event.
 *  - A sink returning non-zero stops that call's events; not an error.
 *  - Unknown event types (hosted tool progress, annotations, audio) are
 *    ignored, as the SDKs do.
 */
#include "proto/responses_int.h"
#include "proto/wire.h"

#include "core/json.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* kind_of values besides agw_ir_block_kind: an item with no IR block (yet). */
#define KIND_NONE 255
/* had_delta bits */
#define SEEN_BLOCK 1   /* the item produced an IR block */
#define SEEN_DELTA 2   /* the open block got a non-empty delta */

typedef struct {
    agw_responses_stream_decoder *d;
    agw_buf scratch;
    char *err;
    size_t errlen;
    agw_ir_sink sink;
    void *ud;
    int stopped;
    agw_str type;     /* the event's type, for messages */
} sdec;

static agw_err sfail(sdec *s, const char *what)
{
    char shown[64];
    return agw_wire_fail(s->err, s->errlen, "upstream %s event: %s",
                         agw_wire_show(s->type, shown, sizeof shown), what);
}

static void emit(sdec *s, const agw_ir_event *ev)
{
    if (!s->stopped && s->sink(s->ud, ev) != 0)
        s->stopped = 1;
}

/* An optional string member, empty when absent or null. */
static agw_err s_str(sdec *s, agw_str obj, const char *name, agw_str *out)
{
    agw_str v;
    *out = (agw_str){ NULL, 0 };
    if (agw_json_find(obj, agw_str_c(name), &v) != AGW_OK || !agw_wire_given(v))
        return AGW_OK;
    if (agw_json_type_of(v) != AGW_JSON_STRING)
        return sfail(s, "a string member is not a string");
    return agw_wire_string(&s->d->arena, &s->scratch, v, out);
}

static agw_err s_output_index(sdec *s, agw_str data, int *out)
{
    agw_str v;
    int64_t i;
    if (agw_json_find(data, AGW_STR_LIT("output_index"), &v) != AGW_OK ||
        agw_json_int64(v, &i) != AGW_OK || i < 0)
        return sfail(s, "output_index is missing or not a non-negative integer");
    if (i >= AGW_RESPONSES_MAX_ITEMS)
        return sfail(s, "output_index is past the items the gateway follows");
    *out = (int)i;
    return AGW_OK;
}

/* The member `name` of obj, {NULL, 0} when there is none. */
static agw_str member(agw_str obj, const char *name)
{
    agw_str v;
    return agw_json_find(obj, agw_str_c(name), &v) == AGW_OK ? v : (agw_str){ NULL, 0 };
}

static int64_t count_at(agw_str obj, const char *const *path)
{
    agw_str v;
    int64_t n;
    if (agw_json_find_path(obj, path, &v) == AGW_OK && agw_json_int64(v, &n) == AGW_OK && n >= 0)
        return n;
    return -1;
}

/* A usage object -> IR usage (input excludes the cached tokens). */
static agw_ir_usage read_usage(agw_str u)
{
    agw_ir_usage r = AGW_IR_USAGE_UNKNOWN;
    if (agw_json_type_of(u) != AGW_JSON_OBJECT)
        return r;
    int64_t in = count_at(u, (const char *const[]){ "input_tokens", NULL });
    int64_t cached = count_at(u, (const char *const[]){ "input_tokens_details", "cached_tokens",
                                                        NULL });
    if (cached < 0)
        cached = 0;
    if (in >= 0) {
        r.input = in >= cached ? in - cached : 0;
        r.cache_read = cached;
        r.cache_write = 0;
    }
    r.output = count_at(u, (const char *const[]){ "output_tokens", NULL });
    r.reasoning = count_at(u, (const char *const[]){ "output_tokens_details", "reasoning_tokens",
                                                     NULL });
    return r;
}

static void start_message(sdec *s, agw_str response)
{
    agw_responses_stream_decoder *d = s->d;
    if (d->started)
        return;
    agw_ir_event ev;
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_START);
    if (agw_json_type_of(response) == AGW_JSON_OBJECT) {
        (void)s_str(s, response, "id", &ev.id);
        (void)s_str(s, response, "model", &ev.model);
    }
    d->started = 1;
    emit(s, &ev);
}

static void close_all(sdec *s);

/* A new IR block for output item `oi`. Any other open block is closed
 * first: the IR has one block open at a time, whatever the upstream
 * interleaves. */
static int open_block(sdec *s, int oi, agw_ir_block_kind kind, agw_str tool_id, agw_str name)
{
    agw_responses_stream_decoder *d = s->d;
    agw_ir_event ev;
    close_all(s);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
    ev.index = d->next_index++;
    ev.block = kind;
    ev.tool_id = tool_id;
    ev.tool_name = name;
    d->block_of[oi] = ev.index;
    d->kind_of[oi] = (unsigned char)kind;
    d->had_delta[oi] = SEEN_BLOCK;
    if (kind == AGW_IR_TOOL_USE)
        d->saw_call = 1;
    emit(s, &ev);
    return ev.index;
}

static void block_delta(sdec *s, int index, agw_ir_delta_kind kind, agw_str text)
{
    agw_ir_event ev;
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
    ev.index = index;
    ev.delta_kind = kind;
    ev.delta = text;
    emit(s, &ev);
}

static void close_block(sdec *s, int oi)
{
    agw_responses_stream_decoder *d = s->d;
    if (d->block_of[oi] < 0)
        return;
    agw_ir_event ev;
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_STOP);
    ev.index = d->block_of[oi];
    d->block_of[oi] = -1;
    d->had_delta[oi] &= (unsigned char)~SEEN_DELTA;
    emit(s, &ev);
}

/* One whole block: start, its text as one delta, stop. */
static void whole_block(sdec *s, int oi, agw_ir_block_kind kind, agw_ir_delta_kind dk,
                        agw_str text, agw_str tool_id, agw_str name)
{
    int idx = open_block(s, oi, kind, tool_id, name);
    if (text.len)
        block_delta(s, idx, dk, text);
}

/* The texts of an array of parts with a "text" (reasoning summary or
 * content), joined by a blank line, in the decoder's arena. */
static agw_err joined_texts(sdec *s, agw_str parts, agw_str *out)
{
    agw_json_iter it;
    agw_str p, t;
    agw_buf b = AGW_BUF_INIT(parts.len + 16);
    agw_err e = AGW_OK;
    *out = (agw_str){ NULL, 0 };
    if (agw_json_type_of(parts) != AGW_JSON_ARRAY || agw_json_iter_init(&it, parts) != AGW_OK)
        return AGW_OK;
    while (!e && agw_json_iter_next(&it, NULL, &p)) {
        if ((e = s_str(s, p, "text", &t)) != AGW_OK || !t.len)
            continue;
        if (b.len)
            e = agw_buf_append(&b, "\n\n", 2);
        if (!e)
            e = agw_buf_append_str(&b, t);
    }
    if (!e)
        *out = agw_arena_str(&s->d->arena, agw_buf_view(&b));
    agw_buf_free(&b);
    return e;
}

/* A finished item that produced no block while streaming (or an item of a
 * non-streamed response): all of it as whole blocks. */
static agw_err emit_item(sdec *s, int oi, agw_str item)
{
    agw_str type, text, a, b;
    if (agw_json_type_of(item) != AGW_JSON_OBJECT)
        return sfail(s, "an item is not an object");
    AGW_WIRE_TRY(s_str(s, item, "type", &type));
    if (agw_str_eq(type, AGW_STR_LIT("message"))) {
        agw_str content, part;
        agw_json_iter it;
        if (agw_json_find(item, AGW_STR_LIT("content"), &content) != AGW_OK ||
            agw_json_iter_init(&it, content) != AGW_OK)
            return AGW_OK;
        while (agw_json_iter_next(&it, NULL, &part)) {
            AGW_WIRE_TRY(s_str(s, part, "text", &text));
            if (!text.len)
                AGW_WIRE_TRY(s_str(s, part, "refusal", &text));
            if (!text.len)
                continue;
            a = (agw_str){ NULL, 0 };
            whole_block(s, oi, AGW_IR_TEXT, AGW_IR_DELTA_TEXT, text, a, a);
            close_block(s, oi);
        }
    } else if (agw_str_eq(type, AGW_STR_LIT("function_call"))) {
        AGW_WIRE_TRY(s_str(s, item, "call_id", &a));
        AGW_WIRE_TRY(s_str(s, item, "name", &b));
        AGW_WIRE_TRY(s_str(s, item, "arguments", &text));
        if (!a.len || !b.len)
            return sfail(s, "a function_call item needs a call_id and a name");
        whole_block(s, oi, AGW_IR_TOOL_USE, AGW_IR_DELTA_JSON, text, a, b);
        close_block(s, oi);
    } else if (agw_str_eq(type, AGW_STR_LIT("reasoning"))) {
        agw_str parts;
        AGW_WIRE_TRY(s_str(s, item, "encrypted_content", &b));
        text = (agw_str){ NULL, 0 };
        if (agw_json_find(item, AGW_STR_LIT("summary"), &parts) == AGW_OK)
            AGW_WIRE_TRY(joined_texts(s, parts, &text));
        if (!text.len && agw_json_find(item, AGW_STR_LIT("content"), &parts) == AGW_OK)
            AGW_WIRE_TRY(joined_texts(s, parts, &text));
        a = (agw_str){ NULL, 0 };
        if (text.len) {
            whole_block(s, oi, AGW_IR_THINKING, AGW_IR_DELTA_THINKING, text, a, a);
            if (b.len)
                block_delta(s, s->d->block_of[oi], AGW_IR_DELTA_SIGNATURE, b);
            close_block(s, oi);
        } else if (b.len) {
            agw_ir_event ev;
            close_all(s);
            agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
            ev.index = s->d->next_index++;
            ev.block = AGW_IR_REDACTED_THINKING;
            ev.delta = b;
            s->d->block_of[oi] = ev.index;
            s->d->had_delta[oi] = SEEN_BLOCK;
            emit(s, &ev);
            close_block(s, oi);
        }
    }
    /* Other items (hosted tool calls) have no place in the IR: skipped. */
    return AGW_OK;
}

static void close_all(sdec *s)
{
    for (int i = 0; i < AGW_RESPONSES_MAX_ITEMS; i++)
        if (s->d->block_of[i] >= 0)
            close_block(s, i);
}

/* The end of an answer: the stop reason and usage, then MESSAGE_STOP. */
static void finish(sdec *s, agw_str response, agw_ir_stop stop)
{
    agw_ir_event ev;
    agw_str usage;
    close_all(s);
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_DELTA);
    ev.stop = stop != AGW_IR_STOP_NONE ? stop
              : s->d->saw_call         ? AGW_IR_STOP_TOOL_USE
                                       : AGW_IR_STOP_END_TURN;
    if (agw_json_find(response, AGW_STR_LIT("usage"), &usage) == AGW_OK)
        ev.usage = read_usage(usage);
    emit(s, &ev);
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_STOP);
    s->d->finished = 1;
    emit(s, &ev);
}

/* An incomplete response's reason -> the stop reason. */
static agw_ir_stop incomplete_stop(sdec *s, agw_str response)
{
    agw_str details, reason;
    if (agw_json_find(response, AGW_STR_LIT("incomplete_details"), &details) == AGW_OK &&
        s_str(s, details, "reason", &reason) == AGW_OK) {
        if (agw_str_eq(reason, AGW_STR_LIT("content_filter")))
            return AGW_IR_STOP_REFUSAL;
        if (agw_str_eq(reason, AGW_STR_LIT("max_output_tokens")))
            return AGW_IR_STOP_MAX_TOKENS;
    }
    return AGW_IR_STOP_MAX_TOKENS;
}

/* An error object ({"code","message"} of a failed response or an `error`
 * event, or OpenAI's {"message","type","code"}) -> one ERROR event. */
static void fail_with(sdec *s, agw_str eobj)
{
    agw_ir_event ev;
    agw_str code = member(eobj, "code"), type = member(eobj, "type"), msg = { NULL, 0 };
    const char *neutral = "api_error";
    int status = 500;
    if (agw_json_type_of(eobj) == AGW_JSON_OBJECT) {
        (void)s_str(s, eobj, "message", &msg);
    }
    if (agw_wire_given(type) && !agw_json_string_eq(type, AGW_STR_LIT("error")))
        agw_openai_map_error(type, code, &status, &neutral);
    else
        agw_responses_map_error(code, &status, &neutral);
    close_all(s);
    agw_ir_event_init(&ev, AGW_IR_EV_ERROR);
    ev.status = status;
    ev.error_type = agw_str_c(neutral);
    ev.error_message = msg.len ? msg : AGW_STR_LIT("the upstream response failed");
    s->d->finished = 1;
    emit(s, &ev);
}

#define IS(lit) agw_str_eq(s->type, AGW_STR_LIT(lit))

static agw_err on_item_added(sdec *s, agw_str data)
{
    int oi;
    agw_str item, type, id, name;
    AGW_WIRE_TRY(s_output_index(s, data, &oi));
    if (agw_json_find(data, AGW_STR_LIT("item"), &item) != AGW_OK ||
        agw_json_type_of(item) != AGW_JSON_OBJECT)
        return sfail(s, "item is missing");
    AGW_WIRE_TRY(s_str(s, item, "type", &type));
    close_block(s, oi);
    s->d->had_delta[oi] = 0;
    s->d->kind_of[oi] = KIND_NONE;
    if (agw_str_eq(type, AGW_STR_LIT("function_call"))) {
        AGW_WIRE_TRY(s_str(s, item, "call_id", &id));
        AGW_WIRE_TRY(s_str(s, item, "name", &name));
        if (!id.len || !name.len)
            return sfail(s, "a function_call item needs a call_id and a name");
        open_block(s, oi, AGW_IR_TOOL_USE, id, name);
    }
    return AGW_OK;
}

/* A text, refusal or reasoning delta: opens the item's block on the first. */
static agw_err on_text_delta(sdec *s, agw_str data, agw_ir_block_kind kind)
{
    int oi;
    agw_str delta;
    AGW_WIRE_TRY(s_output_index(s, data, &oi));
    AGW_WIRE_TRY(s_str(s, data, "delta", &delta));
    agw_responses_stream_decoder *d = s->d;
    if (d->block_of[oi] >= 0 && d->kind_of[oi] != kind)
        close_block(s, oi);
    if (d->block_of[oi] < 0) {
        if (!delta.len)
            return AGW_OK;
        open_block(s, oi, kind, (agw_str){ NULL, 0 }, (agw_str){ NULL, 0 });
    }
    if (delta.len) {
        block_delta(s, d->block_of[oi],
                    kind == AGW_IR_THINKING ? AGW_IR_DELTA_THINKING : AGW_IR_DELTA_TEXT, delta);
        d->had_delta[oi] |= SEEN_DELTA;
    }
    return AGW_OK;
}

static agw_err on_args_delta(sdec *s, agw_str data, int done)
{
    int oi;
    agw_str text;
    AGW_WIRE_TRY(s_output_index(s, data, &oi));
    AGW_WIRE_TRY(s_str(s, data, done ? "arguments" : "delta", &text));
    agw_responses_stream_decoder *d = s->d;
    if (d->block_of[oi] < 0 || d->kind_of[oi] != AGW_IR_TOOL_USE)
        return sfail(s, "arguments for an output item that is not an open function call");
    if (done && (d->had_delta[oi] & SEEN_DELTA))
        return AGW_OK;
    if (text.len) {
        block_delta(s, d->block_of[oi], AGW_IR_DELTA_JSON, text);
        d->had_delta[oi] |= SEEN_DELTA;
    }
    return AGW_OK;
}

static agw_err on_item_done(sdec *s, agw_str data)
{
    int oi;
    agw_str item, type, v;
    AGW_WIRE_TRY(s_output_index(s, data, &oi));
    if (agw_json_find(data, AGW_STR_LIT("item"), &item) != AGW_OK ||
        agw_json_type_of(item) != AGW_JSON_OBJECT)
        return sfail(s, "item is missing");
    agw_responses_stream_decoder *d = s->d;
    if (!(d->had_delta[oi] & SEEN_BLOCK))
        return emit_item(s, oi, item);
    AGW_WIRE_TRY(s_str(s, item, "type", &type));
    if (d->block_of[oi] >= 0) {
        if (d->kind_of[oi] == AGW_IR_TOOL_USE && !(d->had_delta[oi] & SEEN_DELTA)) {
            AGW_WIRE_TRY(s_str(s, item, "arguments", &v));
            if (v.len)
                block_delta(s, d->block_of[oi], AGW_IR_DELTA_JSON, v);
        } else if (d->kind_of[oi] == AGW_IR_THINKING) {
            AGW_WIRE_TRY(s_str(s, item, "encrypted_content", &v));
            if (v.len)
                block_delta(s, d->block_of[oi], AGW_IR_DELTA_SIGNATURE, v);
        }
        close_block(s, oi);
    }
    return AGW_OK;
}

/* The summary part after the first starts after a blank line, as the
 * non-streamed form joins them. */
static agw_err on_summary_part(sdec *s, agw_str data)
{
    int oi;
    agw_str v;
    int64_t si;
    AGW_WIRE_TRY(s_output_index(s, data, &oi));
    if (agw_json_find(data, AGW_STR_LIT("summary_index"), &v) == AGW_OK &&
        agw_json_int64(v, &si) == AGW_OK && si > 0 && s->d->block_of[oi] >= 0 &&
        s->d->kind_of[oi] == AGW_IR_THINKING)
        block_delta(s, s->d->block_of[oi], AGW_IR_DELTA_THINKING, AGW_STR_LIT("\n\n"));
    return AGW_OK;
}

static agw_err decode_event(sdec *s, agw_str data)
{
    agw_str v, response;
    if (agw_json_validate(data, AGW_WIRE_MAX_DEPTH, NULL, 0) != AGW_OK ||
        agw_json_type_of(data) != AGW_JSON_OBJECT)
        return agw_wire_fail(s->err, s->errlen, "upstream stream event is not a JSON object");
    if (agw_json_find(data, AGW_STR_LIT("type"), &v) != AGW_OK ||
        agw_json_type_of(v) != AGW_JSON_STRING)
        return agw_wire_fail(s->err, s->errlen, "upstream stream event has no type");
    s->type = (agw_str){ v.ptr + 1, v.len - 2 }; /* event types hold no escapes */
    response = member(data, "response");
    if (IS("error"))
        return fail_with(s, data), AGW_OK;
    if (IS("response.failed")) {
        fail_with(s, member(response, "error"));
        return AGW_OK;
    }
    start_message(s, response);
    if (IS("response.output_item.added"))
        return on_item_added(s, data);
    if (IS("response.output_text.delta") || IS("response.refusal.delta"))
        return on_text_delta(s, data, AGW_IR_TEXT);
    if (IS("response.reasoning_summary_text.delta") || IS("response.reasoning_text.delta"))
        return on_text_delta(s, data, AGW_IR_THINKING);
    if (IS("response.reasoning_summary_part.added"))
        return on_summary_part(s, data);
    if (IS("response.content_part.done")) {
        int oi;
        AGW_WIRE_TRY(s_output_index(s, data, &oi));
        if (s->d->kind_of[oi] == AGW_IR_TEXT)
            close_block(s, oi);
        return AGW_OK;
    }
    if (IS("response.function_call_arguments.delta"))
        return on_args_delta(s, data, 0);
    if (IS("response.function_call_arguments.done"))
        return on_args_delta(s, data, 1);
    if (IS("response.output_item.done"))
        return on_item_done(s, data);
    if (IS("response.completed")) {
        finish(s, response, AGW_IR_STOP_NONE);
        return AGW_OK;
    }
    if (IS("response.incomplete")) {
        finish(s, response, incomplete_stop(s, response));
        return AGW_OK;
    }
    return AGW_OK;
}

#undef IS

void agw_responses_stream_decoder_init(agw_responses_stream_decoder *d)
{
    memset(d, 0, sizeof *d);
    for (int i = 0; i < AGW_RESPONSES_MAX_ITEMS; i++) {
        d->block_of[i] = -1;
        d->kind_of[i] = KIND_NONE;
    }
}

void agw_responses_stream_decoder_free(agw_responses_stream_decoder *d)
{
    agw_arena_free(&d->arena);
}

agw_err agw_responses_decode_stream_event(agw_responses_stream_decoder *d, agw_str event,
                                          agw_str data, agw_ir_sink sink, void *ud, char *err,
                                          size_t errlen)
{
    (void)event;
    if (err && errlen)
        err[0] = '\0';
    if (d->finished)
        return AGW_OK;
    sdec s = { d, AGW_BUF_INIT(data.len + 16), err, errlen, sink, ud, 0, { NULL, 0 } };
    agw_err e = decode_event(&s, data);
    agw_buf_free(&s.scratch);
    agw_arena_free(&d->arena);
    return e;
}

agw_err agw_responses_decode_stream_end(agw_responses_stream_decoder *d)
{
    return d->finished ? AGW_OK : AGW_EPEER;
}

static agw_err decode_response(sdec *s, agw_str body)
{
    agw_str v, status = { NULL, 0 }, eobj;
    if (agw_json_validate(body, AGW_WIRE_MAX_DEPTH, NULL, 0) != AGW_OK ||
        agw_json_type_of(body) != AGW_JSON_OBJECT)
        return agw_wire_fail(s->err, s->errlen, "upstream answer is not a JSON object");
    s->type = AGW_STR_LIT("response");
    AGW_WIRE_TRY(s_str(s, body, "status", &status));
    if (agw_json_find(body, AGW_STR_LIT("error"), &eobj) == AGW_OK &&
        agw_json_type_of(eobj) == AGW_JSON_OBJECT &&
        (agw_str_eq(status, AGW_STR_LIT("failed")) || !status.len)) {
        fail_with(s, eobj);
        return AGW_OK;
    }
    if (agw_json_find(body, AGW_STR_LIT("output"), &v) != AGW_OK ||
        agw_json_type_of(v) != AGW_JSON_ARRAY)
        return agw_wire_fail(s->err, s->errlen, "upstream answer is not a response object");
    start_message(s, body);
    agw_json_iter it;
    agw_str item;
    if (agw_json_iter_init(&it, v) != AGW_OK)
        return AGW_EINVAL;
    /* Items reuse one slot: each is emitted whole before the next. */
    while (agw_json_iter_next(&it, NULL, &item))
        AGW_WIRE_TRY(emit_item(s, 0, item));
    finish(s, body,
           agw_str_eq(status, AGW_STR_LIT("incomplete")) ? incomplete_stop(s, body)
                                                          : AGW_IR_STOP_NONE);
    return AGW_OK;
}

agw_err agw_responses_decode_response(agw_str body, agw_ir_sink sink, void *ud, char *err,
                                      size_t errlen)
{
    agw_responses_stream_decoder d;
    if (err && errlen)
        err[0] = '\0';
    agw_responses_stream_decoder_init(&d);
    sdec s = { &d, AGW_BUF_INIT(body.len + 16), err, errlen, sink, ud, 0, { NULL, 0 } };
    agw_err e = decode_response(&s, body);
    agw_buf_free(&s.scratch);
    agw_responses_stream_decoder_free(&d);
    if (e != AGW_OK && e != AGW_EINVAL)
        e = agw_wire_fail(err, errlen, "upstream answer could not be decoded (%s)",
                          agw_strerror(e));
    return e;
}

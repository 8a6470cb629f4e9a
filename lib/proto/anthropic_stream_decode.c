/*
 * anthropic_stream_decode: the SSE events of an Anthropic Messages stream
 * (name and data) -> IR events (agw_anthropic_decode_stream_event in
 * anthropic.h). The decisions that are not obvious from the contract:
 *
 *  - Decoded strings of one event live in the decoder's arena only while its
 *    sink calls run; the arena is emptied after every event so a long answer
 *    does not accumulate.
 *  - A sink returning non-zero stops the events of that call; as in sse.h,
 *    stopping is the consumer's decision and not an error (AGW_OK).
 *  - Unknown event names and unknown delta types are ignored, as the official
 *    SDKs do; content block types the IR cannot hold (server tool blocks)
 *    are AGW_EINVAL, since their deltas could not be placed.
 *  - An event without an `event:` line is named by its data's "type".
 */
#include "proto/anthropic_int.h"
#include "proto/wire.h"

#include "core/json.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    agw_anthropic_stream_decoder *d;
    agw_buf scratch;
    const char *name; /* the event, for messages */
    char *err;
    size_t errlen;
    agw_ir_sink sink;
    void *ud;
    int stopped;      /* the sink asked to stop */
} sdec;

static agw_err sfail(sdec *s, const char *what, const char *field_name)
{
    return agw_wire_fail(s->err, s->errlen, "upstream %s event: %s %s", s->name, field_name,
                         what);
}

static void emit(sdec *s, const agw_ir_event *ev)
{
    if (!s->stopped && s->sink(s->ud, ev) != 0)
        s->stopped = 1;
}

/* A string member; an optional one is empty when absent or null. */
static agw_err s_str(sdec *s, agw_str v, const char *name, int required, agw_str *out)
{
    *out = (agw_str){ NULL, 0 };
    if (!agw_wire_given(v)) {
        if (required && !v.ptr)
            return sfail(s, "is missing", name);
        if (required)
            return sfail(s, "must be a string", name);
        return AGW_OK;
    }
    if (agw_json_type_of(v) != AGW_JSON_STRING)
        return sfail(s, "must be a string", name);
    return agw_wire_string(&s->d->arena, &s->scratch, v, out);
}

static agw_err s_index(sdec *s, agw_str v, int *out)
{
    int64_t i;

    if (!v.ptr)
        return sfail(s, "is missing", "index");
    if (agw_json_type_of(v) != AGW_JSON_NUMBER || agw_json_int64(v, &i) != AGW_OK || i < 0 ||
        i > INT_MAX)
        return sfail(s, "must be a non-negative integer", "index");
    *out = (int)i;
    return AGW_OK;
}

/* A token count: unchanged (-1) when absent or null. */
static agw_err s_count(sdec *s, agw_str v, const char *name, int64_t *out)
{
    int64_t n;

    if (!agw_wire_given(v))
        return AGW_OK;
    if (agw_json_type_of(v) != AGW_JSON_NUMBER || agw_json_int64(v, &n) != AGW_OK || n < 0)
        return sfail(s, "must be a non-negative integer", name);
    *out = n;
    return AGW_OK;
}

static agw_err s_usage(sdec *s, agw_str v, agw_ir_usage *u)
{
    static const char *const f_keys[] = { "input_tokens", "output_tokens",
                                          "cache_read_input_tokens",
                                          "cache_creation_input_tokens" };
    agw_str f[4];
    agw_err e;

    if (!agw_wire_given(v))
        return AGW_OK;
    if (agw_json_type_of(v) != AGW_JSON_OBJECT)
        return sfail(s, "must be an object", "usage");
    agw_json_collect(v, f_keys, 4, f, NULL);
    if ((e = s_count(s, f[0], "usage.input_tokens", &u->input)) != AGW_OK ||
        (e = s_count(s, f[1], "usage.output_tokens", &u->output)) != AGW_OK ||
        (e = s_count(s, f[2], "usage.cache_read_input_tokens", &u->cache_read)) != AGW_OK ||
        (e = s_count(s, f[3], "usage.cache_creation_input_tokens", &u->cache_write)) !=
            AGW_OK)
        return e;
    return AGW_OK;
}

static agw_err s_object(sdec *s, agw_str v, const char *name)
{
    if (!v.ptr)
        return sfail(s, "is missing", name);
    if (agw_json_type_of(v) != AGW_JSON_OBJECT)
        return sfail(s, "must be an object", name);
    return AGW_OK;
}

static agw_err s_message_start(sdec *s, agw_str data)
{
    static const char *const f_keys[] = { "message" };
    static const char *const m_keys[] = { "id", "model", "usage" };
    agw_str f[1], m[3];
    agw_ir_event ev;
    agw_err e;

    if (s->d->started)
        return agw_wire_fail(s->err, s->errlen, "upstream sent a second message_start");
    agw_json_collect(data, f_keys, 1, f, NULL);
    if ((e = s_object(s, f[0], "message")) != AGW_OK)
        return e;
    agw_json_collect(f[0], m_keys, 3, m, NULL);
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_START);
    if ((e = s_str(s, m[0], "message.id", 0, &ev.id)) != AGW_OK ||
        (e = s_str(s, m[1], "message.model", 0, &ev.model)) != AGW_OK ||
        (e = s_usage(s, m[2], &ev.usage)) != AGW_OK)
        return e;
    s->d->started = 1;
    emit(s, &ev);
    return AGW_OK;
}

/* A member name for messages: where + "." + name, in buf. */
static const char *member_name(char *buf, size_t n, const char *where, const char *name)
{
    size_t a = strlen(where), b = strlen(name);
    if (a + 1 + b < n) { /* always, with the decoder's names: no printf then */
        memcpy(buf, where, a);
        buf[a] = '.';
        memcpy(buf + a + 1, name, b + 1);
    } else {
        snprintf(buf, n, "%s.%s", where, name);
    }
    return buf;
}

/* A content block object (the content_block of a content_block_start
 * event, or an element of a whole answer's content, named `where` in
 * messages) -> its BLOCK_START event in *ev (the caller sets the index), and
 * the content it already holds: *initial (its text or thinking; with
 * `with_input`, a tool_use's input as JSON text) and *sig. */
static agw_err s_block(sdec *s, agw_str blk, const char *where, int with_input, agw_ir_event *ev,
                       agw_str *initial, agw_str *sig)
{
    static const char *const b_keys[] = { "type",     "text",      "id",   "name",
                                          "thinking", "signature", "data", "input" };
    agw_str b[8], type;
    char tb[48], nb[64];
    agw_err e;

    *initial = *sig = (agw_str){ NULL, 0 };
    if ((e = s_object(s, blk, where)) != AGW_OK)
        return e;
    agw_json_collect(blk, b_keys, 8, b, NULL);
    if ((e = s_str(s, b[0], member_name(nb, sizeof nb, where, "type"), 1, &type)) != AGW_OK)
        return e;
    if (agw_str_eq(type, AGW_STR_LIT("text"))) {
        ev->block = AGW_IR_TEXT;
        e = s_str(s, b[1], member_name(nb, sizeof nb, where, "text"), 0, initial);
    } else if (agw_str_eq(type, AGW_STR_LIT("tool_use"))) {
        ev->block = AGW_IR_TOOL_USE;
        if ((e = s_str(s, b[2], member_name(nb, sizeof nb, where, "id"), 1, &ev->tool_id)) ==
            AGW_OK)
            e = s_str(s, b[3], member_name(nb, sizeof nb, where, "name"), 1, &ev->tool_name);
        /* A client answers a tool call by its id, and calls it by its name:
         * neither can be empty. */
        if (e == AGW_OK && !ev->tool_id.len)
            return sfail(s, "must not be empty", member_name(nb, sizeof nb, where, "id"));
        if (e == AGW_OK && !ev->tool_name.len)
            return sfail(s, "must not be empty", member_name(nb, sizeof nb, where, "name"));
        /* In a stream the input is always {} here (the arguments come as
         * input_json_delta); a whole answer holds it complete. */
        if (e == AGW_OK && with_input) {
            if (agw_wire_given(b[7]) && agw_json_type_of(b[7]) != AGW_JSON_OBJECT)
                return sfail(s, "must be an object", member_name(nb, sizeof nb, where, "input"));
            *initial = agw_wire_given(b[7]) ? b[7] : AGW_STR_LIT("{}");
        }
    } else if (agw_str_eq(type, AGW_STR_LIT("thinking"))) {
        ev->block = AGW_IR_THINKING;
        if ((e = s_str(s, b[4], member_name(nb, sizeof nb, where, "thinking"), 0, initial)) ==
            AGW_OK)
            e = s_str(s, b[5], member_name(nb, sizeof nb, where, "signature"), 0, sig);
    } else if (agw_str_eq(type, AGW_STR_LIT("redacted_thinking"))) {
        ev->block = AGW_IR_REDACTED_THINKING;
        e = s_str(s, b[6], member_name(nb, sizeof nb, where, "data"), 1, &ev->delta);
    } else {
        return agw_wire_fail(s->err, s->errlen,
                             "upstream content block type %s cannot be converted",
                             agw_wire_show(type, tb, sizeof tb));
    }
    return e;
}

/* A block's start, then what it came with as deltas, so no consumer loses
 * it (the API starts streamed blocks empty, a whole answer never does). */
static void emit_block(sdec *s, const agw_ir_event *start, agw_str initial, agw_str sig)
{
    agw_ir_event ev;

    emit(s, start);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
    ev.index = start->index;
    if (initial.len) {
        ev.delta_kind = start->block == AGW_IR_TEXT       ? AGW_IR_DELTA_TEXT
                        : start->block == AGW_IR_TOOL_USE ? AGW_IR_DELTA_JSON
                                                          : AGW_IR_DELTA_THINKING;
        ev.delta = initial;
        emit(s, &ev);
    }
    if (sig.len) {
        ev.delta_kind = AGW_IR_DELTA_SIGNATURE;
        ev.delta = sig;
        emit(s, &ev);
    }
}

static agw_err s_block_start(sdec *s, agw_str data)
{
    static const char *const f_keys[] = { "index", "content_block" };
    agw_str f[2], initial, sig;
    agw_ir_event ev;
    agw_err e;

    agw_json_collect(data, f_keys, 2, f, NULL);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
    if ((e = s_index(s, f[0], &ev.index)) != AGW_OK ||
        (e = s_block(s, f[1], "content_block", 0, &ev, &initial, &sig)) != AGW_OK)
        return e;
    emit_block(s, &ev, initial, sig);
    return AGW_OK;
}

static agw_err s_block_delta(sdec *s, agw_str data)
{
    static const char *const f_keys[] = { "index", "delta" };
    static const char *const dl_keys[] = { "type", "text", "partial_json", "thinking",
                                           "signature" };
    agw_str f[2], dl[5];
    agw_ir_event ev;
    agw_str type;
    agw_err e;

    agw_json_collect(data, f_keys, 2, f, NULL);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
    if ((e = s_index(s, f[0], &ev.index)) != AGW_OK ||
        (e = s_object(s, f[1], "delta")) != AGW_OK)
        return e;
    agw_json_collect(f[1], dl_keys, 5, dl, NULL);
    if ((e = s_str(s, dl[0], "delta.type", 1, &type)) != AGW_OK)
        return e;
    if (agw_str_eq(type, AGW_STR_LIT("text_delta"))) {
        ev.delta_kind = AGW_IR_DELTA_TEXT;
        e = s_str(s, dl[1], "delta.text", 1, &ev.delta);
    } else if (agw_str_eq(type, AGW_STR_LIT("input_json_delta"))) {
        ev.delta_kind = AGW_IR_DELTA_JSON;
        e = s_str(s, dl[2], "delta.partial_json", 1, &ev.delta);
    } else if (agw_str_eq(type, AGW_STR_LIT("thinking_delta"))) {
        ev.delta_kind = AGW_IR_DELTA_THINKING;
        e = s_str(s, dl[3], "delta.thinking", 1, &ev.delta);
    } else if (agw_str_eq(type, AGW_STR_LIT("signature_delta"))) {
        ev.delta_kind = AGW_IR_DELTA_SIGNATURE;
        e = s_str(s, dl[4], "delta.signature", 1, &ev.delta);
    } else {
        /* citations_delta and types added later carry nothing the IR holds. */
        return AGW_OK;
    }
    if (e != AGW_OK)
        return e;
    emit(s, &ev);
    return AGW_OK;
}

static agw_err s_block_stop(sdec *s, agw_str data)
{
    static const char *const f_keys[] = { "index" };
    agw_str f[1];
    agw_ir_event ev;
    agw_err e;

    agw_json_collect(data, f_keys, 1, f, NULL);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_STOP);
    if ((e = s_index(s, f[0], &ev.index)) != AGW_OK)
        return e;
    emit(s, &ev);
    return AGW_OK;
}

static agw_err s_message_delta(sdec *s, agw_str data)
{
    static const char *const f_keys[] = { "delta", "usage" };
    static const char *const dl_keys[] = { "stop_reason", "stop_sequence" };
    agw_str f[2], dl[2];
    agw_ir_event ev;
    agw_str reason;
    agw_err e;

    agw_json_collect(data, f_keys, 2, f, NULL);
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_DELTA);
    if (agw_wire_given(f[0])) {
        if (agw_json_type_of(f[0]) != AGW_JSON_OBJECT)
            return sfail(s, "must be an object", "delta");
        agw_json_collect(f[0], dl_keys, 2, dl, NULL);
        if ((e = s_str(s, dl[0], "delta.stop_reason", 0, &reason)) != AGW_OK ||
            (e = s_str(s, dl[1], "delta.stop_sequence", 0, &ev.stop_sequence)) != AGW_OK)
            return e;
        ev.stop = agw_ir_stop_parse(reason);
    }
    if ((e = s_usage(s, f[1], &ev.usage)) != AGW_OK)
        return e;
    emit(s, &ev);
    return AGW_OK;
}

static agw_err s_error(sdec *s, agw_str data)
{
    static const char *const f_keys[] = { "error" };
    static const char *const er_keys[] = { "type", "message" };
    agw_str f[1], er[2];
    agw_ir_event ev;
    agw_err e;

    agw_json_collect(data, f_keys, 1, f, NULL);
    if ((e = s_object(s, f[0], "error")) != AGW_OK)
        return e;
    agw_json_collect(f[0], er_keys, 2, er, NULL);
    agw_ir_event_init(&ev, AGW_IR_EV_ERROR);
    if ((e = s_str(s, er[0], "error.type", 0, &ev.error_type)) != AGW_OK ||
        (e = s_str(s, er[1], "error.message", 0, &ev.error_message)) != AGW_OK)
        return e;
    if (!ev.error_type.len)
        ev.error_type = AGW_STR_LIT("api_error");
    ev.status = agw_anthropic_error_status(ev.error_type);
    s->d->finished = 1;
    emit(s, &ev);
    return AGW_OK;
}

typedef enum {
    E_MESSAGE_START, E_BLOCK_START, E_BLOCK_DELTA, E_BLOCK_STOP, E_MESSAGE_DELTA, E_MESSAGE_STOP,
    E_PING, E_ERROR, E_UNKNOWN
} event_name;

static const char *const event_names[E_UNKNOWN] = {
    "message_start", "content_block_start", "content_block_delta", "content_block_stop",
    "message_delta", "message_stop", "ping", "error",
};

static event_name event_lookup(agw_str name)
{
    for (int i = 0; i < E_UNKNOWN; i++)
        if (agw_str_eq(name, agw_str_c(event_names[i])))
            return (event_name)i;
    return E_UNKNOWN;
}

static agw_err decode_event(sdec *s, agw_str event, agw_str data)
{
    agw_ir_event ev;
    event_name which = E_UNKNOWN;
    char why[96];
    agw_err e;

    if (s->d->finished)
        return AGW_OK;
    if (event.len) {
        which = event_lookup(event);
        /* Events added to the API after this was written are skipped
         * unread, as the SDKs do; a ping carries nothing worth parsing. */
        if (which == E_UNKNOWN)
            return AGW_OK;
        s->name = event_names[which];
    }
    if (which != E_PING) {
        e = agw_json_validate(data, AGW_WIRE_MAX_DEPTH, why, sizeof why);
        if (e != AGW_OK || agw_json_type_of(data) != AGW_JSON_OBJECT)
            return agw_wire_fail(s->err, s->errlen, "upstream %s event is not a JSON object%s%s",
                                 s->name, e != AGW_OK ? ": " : "", e != AGW_OK ? why : "");
    }
    if (!event.len) {
        /* No `event:` line: the data's "type" names the event. */
        static const char *const f_keys[] = { "type" };
        agw_str f[1], name;

        agw_json_collect(data, f_keys, 1, f, NULL);
        if (agw_json_type_of(f[0]) != AGW_JSON_STRING)
            return AGW_OK;
        if ((e = agw_wire_string(&s->d->arena, &s->scratch, f[0], &name)) != AGW_OK)
            return e;
        if ((which = event_lookup(name)) == E_UNKNOWN)
            return AGW_OK;
        s->name = event_names[which];
    }

    switch (which) {
    case E_PING:
        agw_ir_event_init(&ev, AGW_IR_EV_PING);
        emit(s, &ev);
        return AGW_OK;
    case E_ERROR:
        return s_error(s, data);
    case E_MESSAGE_START:
        return s_message_start(s, data);
    default:
        break;
    }
    if (!s->d->started)
        return agw_wire_fail(s->err, s->errlen, "upstream sent %s before message_start", s->name);
    switch (which) {
    case E_BLOCK_START:
        return s_block_start(s, data);
    case E_BLOCK_DELTA:
        return s_block_delta(s, data);
    case E_BLOCK_STOP:
        return s_block_stop(s, data);
    case E_MESSAGE_DELTA:
        return s_message_delta(s, data);
    default:
        agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_STOP);
        s->d->finished = 1;
        emit(s, &ev);
        return AGW_OK;
    }
}

void agw_anthropic_stream_decoder_init(agw_anthropic_stream_decoder *d)
{
    memset(d, 0, sizeof *d);
}

agw_err agw_anthropic_decode_stream_event(agw_anthropic_stream_decoder *d, agw_str event,
                                          agw_str data, agw_ir_sink sink, void *ud, char *err,
                                          size_t errlen)
{
    sdec s = { d, AGW_BUF_INIT(data.len + 16), "message", err, errlen, sink, ud, 0 };
    agw_err e;

    e = decode_event(&s, event, data);
    agw_buf_free(&s.scratch);
    /* Strings of this event were only for the sink calls above. */
    agw_arena_free(&d->arena);
    if (e != AGW_OK && e != AGW_EINVAL)
        e = agw_wire_fail(err, errlen, "upstream event could not be decoded (%s)", agw_strerror(e));
    return e;
}

agw_err agw_anthropic_decode_stream_end(agw_anthropic_stream_decoder *d)
{
    return d->finished ? AGW_OK : AGW_EPEER;
}

void agw_anthropic_stream_decoder_free(agw_anthropic_stream_decoder *d)
{
    agw_arena_free(&d->arena);
}


/* ---- a whole answer ---- */

/* One content block of a whole answer -> its start, deltas and stop. */
static agw_err r_block(sdec *s, int index, agw_str blk)
{
    agw_str initial, sig;
    agw_ir_event ev;
    agw_err e;

    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
    ev.index = index;
    if ((e = s_block(s, blk, "content[]", 1, &ev, &initial, &sig)) != AGW_OK)
        return e;
    emit_block(s, &ev, initial, sig);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_STOP);
    ev.index = index;
    emit(s, &ev);
    return AGW_OK;
}

static agw_err decode_response(sdec *s, agw_str body)
{
    static const char *const keys[] = { "type",          "error",         "id",   "model",
                                        "content",       "stop_reason",   "stop_sequence",
                                        "usage" };
    agw_str v[8], reason, blk;
    agw_ir_event ev;
    agw_ir_usage usage = AGW_IR_USAGE_UNKNOWN;
    agw_json_iter it;
    char why[96];
    int index = 0;
    agw_err e;

    if (agw_json_validate(body, AGW_WIRE_MAX_DEPTH, why, sizeof why) != AGW_OK)
        return agw_wire_fail(s->err, s->errlen, "upstream answered with invalid JSON: %s", why);
    if (agw_json_type_of(body) != AGW_JSON_OBJECT)
        return agw_wire_fail(s->err, s->errlen, "upstream answer is not a JSON object");
    agw_json_collect(body, keys, 8, v, NULL);
    if (agw_wire_given(v[1]) || agw_json_string_eq(v[0], AGW_STR_LIT("error"))) {
        s->name = "error";
        return s_error(s, body);
    }
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_START);
    if ((e = s_str(s, v[2], "id", 0, &ev.id)) != AGW_OK ||
        (e = s_str(s, v[3], "model", 0, &ev.model)) != AGW_OK ||
        (e = s_usage(s, v[7], &usage)) != AGW_OK)
        return e;
    if (agw_wire_given(v[4]) && agw_json_type_of(v[4]) != AGW_JSON_ARRAY)
        return sfail(s, "must be an array", "content");
    /* The input side at the start, all of it at the end, as a stream says it. */
    ev.usage = usage;
    ev.usage.output = -1;
    s->d->started = 1;
    emit(s, &ev);
    if (agw_wire_given(v[4]) && agw_json_iter_init(&it, v[4]) == AGW_OK)
        while (agw_json_iter_next(&it, NULL, &blk))
            if ((e = r_block(s, index++, blk)) != AGW_OK)
                return e;
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_DELTA);
    if ((e = s_str(s, v[5], "stop_reason", 0, &reason)) != AGW_OK ||
        (e = s_str(s, v[6], "stop_sequence", 0, &ev.stop_sequence)) != AGW_OK)
        return e;
    ev.stop = agw_ir_stop_parse(reason);
    if (ev.stop == AGW_IR_STOP_NONE)
        ev.stop = AGW_IR_STOP_END_TURN;
    ev.usage = usage;
    emit(s, &ev);
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_STOP);
    s->d->finished = 1;
    emit(s, &ev);
    return AGW_OK;
}

agw_err agw_anthropic_decode_response(agw_str body, agw_ir_sink sink, void *ud, char *err,
                                      size_t errlen)
{
    agw_anthropic_stream_decoder d;
    sdec s = { &d, AGW_BUF_INIT(body.len + 16), "response", err, errlen, sink, ud, 0 };
    agw_err e;

    if (err && errlen)
        err[0] = '\0';
    agw_anthropic_stream_decoder_init(&d);
    e = decode_response(&s, body);
    agw_buf_free(&s.scratch);
    agw_anthropic_stream_decoder_free(&d);
    if (e != AGW_OK && e != AGW_EINVAL)
        e = agw_wire_fail(err, errlen, "upstream answer could not be decoded (%s)",
                          agw_strerror(e));
    return e;
}

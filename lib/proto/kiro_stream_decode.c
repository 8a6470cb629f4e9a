/*
 * kiro_stream_decode: Kiro's AWS event stream -> IR events
 * (agw_kiro_stream_decoder; kiro.h says what becomes what).
 */
#include "proto/kiro.h"
#include "proto/wire.h"

#include "core/json.h"

#include <stdio.h>

#define OPEN_TAG "<thinking>"
#define CLOSE_TAG "</thinking>"

enum { THINK_LOOKING = 0, THINK_INSIDE, THINK_DONE };

typedef struct {
    agw_kiro_stream_decoder *d;
    agw_ir_sink sink;
    void *ud;
} feed_ctx;

void agw_kiro_stream_decoder_init(agw_kiro_stream_decoder *d, const agw_ir_request *rq)
{
    memset(d, 0, sizeof *d);
    agw_es_decoder_init(&d->es, 0);
    agw_buf_init(&d->held, AGW_LIMIT_SSE_EVENT);
    agw_buf_init(&d->tool_input, AGW_LIMIT_UPSTREAM_BODY);
    agw_buf_init(&d->tool_ids, AGW_LIMIT_SMALL);
    d->open_index = -1;
    d->context_pct = -1;
    d->credits = -1;
    d->context_window = 200000;
    d->input_estimate = -1;
    d->thinking_state = THINK_DONE;
    if (!rq)
        return;
    if (agw_kiro_thinking_asked(rq)) {
        d->thinking_asked = 1;
        d->thinking_state = THINK_LOOKING;
    }
    d->context_window = agw_kiro_context_window(agw_kiro_model_id(&d->arena, rq->model));
    d->input_estimate = agw_ir_estimate_tokens(rq);
    size_t n_long = 0;
    for (size_t i = 0; i < rq->n_tools; i++)
        n_long += rq->tools[i].name.len > AGW_KIRO_TOOL_NAME_MAX;
    if (!n_long)
        return;
    d->long_tools = agw_arena_array(&d->arena, n_long, sizeof *d->long_tools);
    d->short_tools = agw_arena_array(&d->arena, n_long, sizeof *d->short_tools);
    for (size_t i = 0; i < rq->n_tools; i++) {
        agw_str name = rq->tools[i].name;
        if (name.len <= AGW_KIRO_TOOL_NAME_MAX)
            continue;
        d->long_tools[d->n_long_tools] = agw_arena_str(&d->arena, name);
        d->short_tools[d->n_long_tools++] = agw_kiro_tool_name(&d->arena, name);
    }
}

void agw_kiro_stream_decoder_free(agw_kiro_stream_decoder *d)
{
    agw_es_decoder_free(&d->es);
    agw_buf_free(&d->held);
    agw_buf_free(&d->tool_input);
    agw_buf_free(&d->tool_ids);
    agw_arena_free(&d->arena);
    agw_arena_free(&d->frame);
}

double agw_kiro_stream_credits(const agw_kiro_stream_decoder *d)
{
    return d->credits;
}

static int emit(feed_ctx *c, const agw_ir_event *ev)
{
    if (c->d->err)
        return 1;
    if (c->sink(c->ud, ev)) {
        c->d->err = AGW_EPEER;
        return 1;
    }
    return 0;
}

static int start(feed_ctx *c)
{
    agw_kiro_stream_decoder *d = c->d;
    if (d->started)
        return 0;
    d->started = 1;
    agw_ir_event ev;
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_START);
    if (agw_wire_make_id(&d->arena, AGW_STR_LIT("msg_"), (agw_str){ NULL, 0 }, &ev.id) != AGW_OK)
        ev.id = AGW_STR_LIT("msg_kiro");
    /* Kiro says how much of the context the request took only at the end:
     * the input count goes with MESSAGE_DELTA. */
    ev.usage.output = 0;
    return emit(c, &ev);
}

/* The answer ends with an error: any open block is left as it is (the
 * error ends everything). */
static int fail(feed_ctx *c, int status, const char *type, const char *fmt, ...)
    AGW_PRINTF(4, 5);

static int fail(feed_ctx *c, int status, const char *type, const char *fmt, ...)
{
    agw_kiro_stream_decoder *d = c->d;
    if (d->finished)
        return 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->why, sizeof d->why, fmt, ap);
    va_end(ap);
    d->finished = 1;
    agw_ir_event ev;
    agw_ir_event_init(&ev, AGW_IR_EV_ERROR);
    ev.status = status;
    ev.error_type = agw_str_c(type);
    ev.error_message = agw_str_c(d->why);
    emit(c, &ev);
    return 1;
}

static int close_block(feed_ctx *c)
{
    agw_kiro_stream_decoder *d = c->d;
    if (d->open_index < 0)
        return 0;
    agw_ir_event ev;
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_STOP);
    ev.index = d->open_index;
    d->open_index = -1;
    return emit(c, &ev);
}

/* Opens a block of `kind` unless one of that kind is open already (a new
 * tool call closes the open block first). */
static int open_block(feed_ctx *c, agw_ir_block_kind kind, agw_str tool_id, agw_str tool_name)
{
    agw_kiro_stream_decoder *d = c->d;
    if (d->open_index >= 0 && d->open_kind == kind)
        return 0;
    if (start(c) || close_block(c))
        return 1;
    agw_ir_event ev;
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
    ev.index = d->open_index = d->next_index++;
    ev.block = d->open_kind = kind;
    ev.tool_id = tool_id;
    ev.tool_name = tool_name;
    return emit(c, &ev);
}

static int delta(feed_ctx *c, agw_ir_block_kind kind, agw_ir_delta_kind dk, agw_str s)
{
    if (!s.len)
        return 0;
    if (open_block(c, kind, (agw_str){ NULL, 0 }, (agw_str){ NULL, 0 }))
        return 1;
    c->d->output_bytes += s.len;
    agw_ir_event ev;
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
    ev.index = c->d->open_index;
    ev.delta_kind = dk;
    ev.delta = s;
    return emit(c, &ev);
}

static int text(feed_ctx *c, agw_str s)
{
    return delta(c, AGW_IR_TEXT, AGW_IR_DELTA_TEXT, s);
}

static int thinking(feed_ctx *c, agw_str s)
{
    return delta(c, AGW_IR_THINKING, AGW_IR_DELTA_THINKING, s);
}

/* The length of s without a tail that could be the start of `tag` (or a
 * cut UTF-8 character): what may go out now. */
static size_t safe_len(agw_str s, const char *tag)
{
    size_t tl = strlen(tag), keep = s.len;
    for (size_t k = tl - 1; k > 0; k--)
        if (s.len >= k && memcmp(s.ptr + s.len - k, tag, k) == 0) {
            keep = s.len - k;
            break;
        }
    while (keep > 0 && keep < s.len && ((unsigned char)s.ptr[keep] & 0xC0) == 0x80)
        keep--;
    return keep;
}

static agw_str skip_ws(agw_str s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\n' || s.ptr[0] == '\r' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    return s;
}

static const char *find(agw_str s, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= s.len; i++)
        if (memcmp(s.ptr + i, needle, n) == 0)
            return s.ptr + i;
    return NULL;
}

/* Text of the answer, with thinking split out of its start when asked. */
static int answer_text(feed_ctx *c, agw_str s)
{
    agw_kiro_stream_decoder *d = c->d;
    if (d->thinking_state == THINK_DONE)
        return text(c, s);
    if (agw_buf_append_str(&d->held, s) != AGW_OK)
        return fail(c, 502, "api_error", "upstream thinking text too long");
    agw_str h = agw_buf_view(&d->held);
    if (d->thinking_state == THINK_LOOKING) {
        agw_str t = skip_ws(h);
        size_t tl = strlen(OPEN_TAG);
        if (t.len < tl && memcmp(t.ptr, OPEN_TAG, t.len) == 0)
            return 0; /* maybe the tag, cut: wait */
        if (t.len < tl || memcmp(t.ptr, OPEN_TAG, tl) != 0) {
            d->thinking_state = THINK_DONE;
            int r = text(c, h);
            agw_buf_reset(&d->held);
            return r;
        }
        d->thinking_state = THINK_INSIDE;
        size_t used = (size_t)(t.ptr - h.ptr) + tl;
        agw_buf_consume(&d->held, used);
        if (open_block(c, AGW_IR_THINKING, (agw_str){ NULL, 0 }, (agw_str){ NULL, 0 }))
            return 1;
        h = agw_buf_view(&d->held);
    }
    const char *end = find(h, CLOSE_TAG);
    if (!end) {
        size_t n = safe_len(h, CLOSE_TAG);
        int r = thinking(c, (agw_str){ h.ptr, n });
        agw_buf_consume(&d->held, n);
        return r;
    }
    if (thinking(c, (agw_str){ h.ptr, (size_t)(end - h.ptr) }))
        return 1;
    d->thinking_state = THINK_DONE;
    agw_str rest = { end + strlen(CLOSE_TAG), h.len - (size_t)(end - h.ptr) - strlen(CLOSE_TAG) };
    /* The blank line models put after the closing tag is not answer text. */
    for (int i = 0; i < 2 && rest.len && rest.ptr[0] == '\n'; i++) {
        rest.ptr++;
        rest.len--;
    }
    if (close_block(c))
        return 1;
    int r = text(c, rest);
    agw_buf_reset(&d->held);
    return r;
}

/* The text held back while looking for a tag, at the end of the answer. */
static int flush_held(feed_ctx *c)
{
    agw_kiro_stream_decoder *d = c->d;
    agw_str h = agw_buf_view(&d->held);
    int r = 0;
    if (d->thinking_state == THINK_INSIDE)
        r = thinking(c, h);
    else if (h.len)
        r = text(c, h);
    agw_buf_reset(&d->held);
    d->thinking_state = THINK_DONE;
    return r;
}

static agw_str member_string(feed_ctx *c, agw_str obj, const char *name)
{
    agw_str v, s = { NULL, 0 };
    if (agw_json_find(obj, agw_str_c(name), &v) == AGW_OK &&
        agw_json_type_of(v) == AGW_JSON_STRING &&
        agw_wire_string_copy(&c->d->frame, v, &s) != AGW_OK)
        s = (agw_str){ NULL, 0 };
    return s;
}

static int id_stopped(const agw_kiro_stream_decoder *d, agw_str id)
{
    agw_str all = agw_buf_view(&d->tool_ids);
    size_t i = 0;
    while (i < all.len) {
        const char *nl = memchr(all.ptr + i, '\n', all.len - i);
        size_t n = (size_t)(nl - (all.ptr + i));
        if (agw_str_eq((agw_str){ all.ptr + i, n }, id))
            return 1;
        i += n + 1;
    }
    return 0;
}

static int finish_tool(feed_ctx *c)
{
    agw_kiro_stream_decoder *d = c->d;
    agw_str in = agw_buf_view(&d->tool_input);
    if (!agw_wire_trim(in).len) {
        if (delta(c, AGW_IR_TOOL_USE, AGW_IR_DELTA_JSON, AGW_STR_LIT("{}")))
            return 1;
    } else if (agw_json_validate(in, AGW_WIRE_MAX_DEPTH, NULL, 0) != AGW_OK ||
               agw_json_type_of(in) != AGW_JSON_OBJECT) {
        char shown[64];
        return fail(c, 502, "api_error", "the upstream's input for tool call %s is not a JSON object",
                    agw_wire_show(d->tool_id, shown, sizeof shown));
    }
    d->tool_stopped = 1;
    if (agw_buf_append_str(&d->tool_ids, d->tool_id) != AGW_OK ||
        agw_buf_append(&d->tool_ids, "\n", 1) != AGW_OK)
        return fail(c, 502, "api_error", "too many tool calls in one answer");
    agw_buf_reset(&d->tool_input);
    return close_block(c);
}

static int cut_off(feed_ctx *c)
{
    char shown[64];
    return fail(c, 502, "api_error",
                "the upstream cut off tool call %s before its input was complete",
                agw_wire_show(c->d->tool_id, shown, sizeof shown));
}

static int tool_event(feed_ctx *c, agw_str p)
{
    agw_kiro_stream_decoder *d = c->d;
    agw_str id = member_string(c, p, "toolUseId"), name = member_string(c, p, "name");
    agw_str input = { NULL, 0 }, v;
    if (agw_json_find(p, AGW_STR_LIT("input"), &v) == AGW_OK) {
        if (agw_json_type_of(v) == AGW_JSON_STRING) {
            if (agw_wire_string_copy(&d->frame, v, &input) != AGW_OK)
                input = (agw_str){ NULL, 0 };
        } else if (agw_json_type_of(v) == AGW_JSON_OBJECT)
            input = agw_wire_trim(v);
    }
    int stop = agw_json_find(p, AGW_STR_LIT("stop"), &v) == AGW_OK && agw_json_is_true(v);
    int current = d->open_index >= 0 && d->open_kind == AGW_IR_TOOL_USE &&
                  agw_str_eq(id, d->tool_id);
    if (!current) {
        if (id.len && id_stopped(d, id))
            return 0; /* a repeat of a finished call */
        if (d->open_index >= 0 && d->open_kind == AGW_IR_TOOL_USE)
            return cut_off(c);
        if (!name.len) {
            char shown[64];
            return fail(c, 502, "api_error", "the upstream's tool call %s has no name",
                        agw_wire_show(id, shown, sizeof shown));
        }
        if (!id.len && agw_wire_make_id(&d->arena, AGW_STR_LIT("tooluse_"), id, &id) != AGW_OK)
            return fail(c, 502, "api_error", "no random bytes for a tool call id");
        for (size_t i = 0; i < d->n_long_tools; i++)
            if (agw_str_eq(name, d->short_tools[i]))
                name = d->long_tools[i];
        if (flush_held(c))
            return 1;
        d->tool_id = agw_arena_str(&d->arena, id);
        d->tool_stopped = 0;
        d->saw_tool = 1;
        agw_buf_reset(&d->tool_input);
        if (close_block(c) || open_block(c, AGW_IR_TOOL_USE, d->tool_id, name))
            return 1;
    }
    if (input.len) {
        if (agw_buf_append_str(&d->tool_input, input) != AGW_OK)
            return fail(c, 502, "api_error", "a tool call's input is too large");
        if (delta(c, AGW_IR_TOOL_USE, AGW_IR_DELTA_JSON, input))
            return 1;
    }
    return stop ? finish_tool(c) : 0;
}

static int reasoning_event(feed_ctx *c, agw_str p)
{
    agw_kiro_stream_decoder *d = c->d;
    if (!d->thinking_asked)
        return 0;
    agw_str t = member_string(c, p, "text"), sig = member_string(c, p, "signature");
    agw_str redacted = member_string(c, p, "redactedContent");
    if (d->thinking_state != THINK_DONE && flush_held(c))
        return 1;
    if (thinking(c, t))
        return 1;
    if (sig.len) {
        if (open_block(c, AGW_IR_THINKING, (agw_str){ NULL, 0 }, (agw_str){ NULL, 0 }))
            return 1;
        agw_ir_event ev;
        agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
        ev.index = d->open_index;
        ev.delta_kind = AGW_IR_DELTA_SIGNATURE;
        ev.delta = sig;
        if (emit(c, &ev))
            return 1;
    }
    if (redacted.len) {
        if (start(c) || close_block(c))
            return 1;
        agw_ir_event ev;
        agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
        ev.index = d->next_index++;
        ev.block = AGW_IR_REDACTED_THINKING;
        ev.delta = redacted;
        if (emit(c, &ev))
            return 1;
        agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_STOP);
        ev.index = d->next_index - 1;
        return emit(c, &ev);
    }
    return 0;
}

/* An exception frame: the answer ends (or, for the output limit, stops). */
static int exception(feed_ctx *c, const agw_es_message *m)
{
    agw_kiro_stream_decoder *d = c->d;
    agw_str type = agw_es_header_str(m, AGW_STR_LIT(":exception-type"));
    if (!type.len)
        type = agw_es_header_str(m, AGW_STR_LIT(":error-code"));
    agw_str msg = { NULL, 0 };
    if (agw_json_validate(m->payload, AGW_WIRE_MAX_DEPTH, NULL, 0) == AGW_OK) {
        msg = member_string(c, m->payload, "message");
        if (!msg.len)
            msg = member_string(c, m->payload, "Message");
    }
    char shown_t[64], shown_m[120];
    agw_wire_show(type, shown_t, sizeof shown_t);
    agw_wire_show(msg, shown_m, sizeof shown_m);
    if (agw_str_eq(type, AGW_STR_LIT("ContentLengthExceededException"))) {
        d->saw_length = 1;
        return 0;
    }
    int status = 502;
    const char *etype = "api_error";
    if (agw_str_eq(type, AGW_STR_LIT("ThrottlingException")) ||
        agw_str_eq(type, AGW_STR_LIT("ServiceQuotaExceededException")) ||
        find(msg, "RATE_EXCEEDED")) {
        status = 429;
        etype = "rate_limit_error";
    } else if (agw_str_eq(type, AGW_STR_LIT("ValidationException"))) {
        status = 400;
        etype = "invalid_request_error";
    } else if (agw_str_eq(type, AGW_STR_LIT("AccessDeniedException"))) {
        status = 403;
        etype = "permission_error";
    } else if (agw_str_eq(type, AGW_STR_LIT("ServiceUnavailableException"))) {
        status = 503;
        etype = "overloaded_error";
    } else if (agw_str_eq(type, AGW_STR_LIT("InternalServerException"))) {
        status = 500;
    }
    return fail(c, status, etype, "upstream %s: %s", type.len ? shown_t : "error",
                msg.len ? shown_m : "(no message)");
}

static int handle_frame(void *ud, const agw_es_message *m)
{
    feed_ctx *c = ud;
    agw_kiro_stream_decoder *d = c->d;
    if (d->finished || d->err)
        return 1;
    agw_str mtype = agw_es_header_str(m, AGW_STR_LIT(":message-type"));
    if (agw_str_eq(mtype, AGW_STR_LIT("exception")) || agw_str_eq(mtype, AGW_STR_LIT("error")))
        return exception(c, m);
    agw_str et = agw_es_header_str(m, AGW_STR_LIT(":event-type"));
    agw_str p = m->payload;
    char why[96];
    if (agw_json_validate(p, AGW_WIRE_MAX_DEPTH, why, sizeof why) != AGW_OK ||
        agw_json_type_of(p) != AGW_JSON_OBJECT) {
        char shown[48];
        return fail(c, 502, "api_error", "upstream event %s is not a JSON object",
                    agw_wire_show(et, shown, sizeof shown));
    }
    if (agw_str_eq(et, AGW_STR_LIT("assistantResponseEvent"))) {
        if (d->open_index >= 0 && d->open_kind == AGW_IR_TOOL_USE)
            return cut_off(c); /* text in the middle of a tool call's input */
        if (start(c))
            return 1;
        return answer_text(c, member_string(c, p, "content"));
    }
    if (agw_str_eq(et, AGW_STR_LIT("toolUseEvent")))
        return tool_event(c, p);
    if (agw_str_eq(et, AGW_STR_LIT("reasoningContentEvent")))
        return reasoning_event(c, p);
    agw_str v;
    double x;
    if (agw_str_eq(et, AGW_STR_LIT("contextUsageEvent"))) {
        if (agw_json_find(p, AGW_STR_LIT("contextUsagePercentage"), &v) == AGW_OK &&
            agw_wire_number(v, &x) && x >= 0 && x <= 100)
            d->context_pct = x;
        return start(c);
    }
    if (agw_str_eq(et, AGW_STR_LIT("meteringEvent"))) {
        if (agw_json_find(p, AGW_STR_LIT("usage"), &v) == AGW_OK && agw_wire_number(v, &x) &&
            x >= 0 && x < 1e9)
            d->credits = (d->credits < 0 ? 0 : d->credits) + x;
        return start(c);
    }
    /* messageStopEvent, supplementaryWebLinksEvent, codeReferenceEvent and
     * whatever comes next: nothing for the client. */
    return 0;
}

/* One frame; what its payload decoded to goes when it is done. */
static int on_frame(void *ud, const agw_es_message *m)
{
    feed_ctx *c = ud;
    c->d->frames++;
    int r = handle_frame(ud, m);
    agw_arena_free(&c->d->frame);
    return r;
}

agw_err agw_kiro_decode_stream_bytes(agw_kiro_stream_decoder *d, const char *p, size_t n,
                                     agw_ir_sink sink, void *ud)
{
    feed_ctx c = { d, sink, ud };
    if (d->err || d->finished)
        return d->err;
    agw_err e = agw_es_feed(&d->es, p, n, on_frame, &c);
    if (e && !d->finished && !d->err)
        fail(&c, 502, "api_error", "upstream event stream is corrupt: %s", agw_es_why(&d->es));
    return d->err;
}

agw_err agw_kiro_decode_stream_end(agw_kiro_stream_decoder *d, agw_ir_sink sink, void *ud)
{
    feed_ctx c = { d, sink, ud };
    if (d->err || d->finished)
        return d->err;
    if (agw_es_finish(&d->es) != AGW_OK) {
        fail(&c, 502, "api_error", "upstream event stream ended inside a frame");
        return d->err;
    }
    if (!d->frames) {
        fail(&c, 502, "api_error", "upstream answered with an empty event stream");
        return d->err;
    }
    if (d->open_index >= 0 && d->open_kind == AGW_IR_TOOL_USE && !d->tool_stopped) {
        cut_off(&c);
        return d->err;
    }
    if (start(&c) || flush_held(&c) || close_block(&c))
        return d->err;
    agw_ir_event ev;
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_DELTA);
    ev.stop = d->saw_length ? AGW_IR_STOP_MAX_TOKENS
              : d->saw_tool ? AGW_IR_STOP_TOOL_USE
                            : AGW_IR_STOP_END_TURN;
    ev.usage.input = d->context_pct >= 0
                         ? (int64_t)(d->context_pct / 100.0 * (double)d->context_window + 0.5)
                         : d->input_estimate;
    ev.usage.output = (int64_t)((d->output_bytes + 3) / 4);
    if (emit(&c, &ev))
        return d->err;
    d->finished = 1;
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_STOP);
    emit(&c, &ev);
    return d->err;
}

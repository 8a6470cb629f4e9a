/*
 * anthropic_stream_encode: IR events -> an Anthropic client's SSE events, and
 * a folded answer -> a Messages response object (anthropic.h: the stream
 * encoder and agw_anthropic_encode_response). Both write the same usage
 * object, stop reasons and ids, so a streamed and a non-streamed answer
 * agree. Events carry `event:` lines as the API's do, and a ping follows
 * message_start.
 */
#include "proto/anthropic_int.h"
#include "proto/wire.h"

#include <string.h>

void agw_anthropic_stream_encoder_init(agw_anthropic_stream_encoder *e, agw_str model, agw_str id)
{
    memset(e, 0, sizeof *e);
    if (model.len)
        e->model = agw_arena_str(&e->arena, model);
    if (id.len)
        e->id = agw_arena_str(&e->arena, id);
}

void agw_anthropic_stream_encoder_free(agw_anthropic_stream_encoder *e)
{
    agw_arena_free(&e->arena);
    memset(e, 0, sizeof *e);
}

/* A "msg_" id: the one the caller chose, else the upstream's (prefixed when
 * it lacks "msg_", e.g. an OpenAI "chatcmpl-..."), else a random one. */
static void w_message_id(agw_wire_writer *w, agw_arena *a, agw_str chosen, agw_str upstream)
{
    agw_str id = chosen;

    if (!chosen.len && w->e == AGW_OK)
        w->e = agw_wire_make_id(a, AGW_STR_LIT("msg_"), upstream, &id);
    agw_wire_w_str(w, id);
}

/* Count left at 0 when unknown: clients expect numbers here. */
static void w_count(agw_wire_writer *w, int64_t v)
{
    agw_wire_w_int(w, v < 0 ? 0 : v);
}

static void w_usage(agw_wire_writer *w, const agw_ir_usage *u)
{
    AGW_WIRE_W_LIT(w, "{\"input_tokens\":");
    w_count(w, u->input);
    AGW_WIRE_W_LIT(w, ",\"cache_creation_input_tokens\":");
    w_count(w, u->cache_write);
    AGW_WIRE_W_LIT(w, ",\"cache_read_input_tokens\":");
    w_count(w, u->cache_read);
    AGW_WIRE_W_LIT(w, ",\"output_tokens\":");
    w_count(w, u->output);
    AGW_WIRE_W_LIT(w, "}");
}

static void w_stop(agw_wire_writer *w, agw_ir_stop stop, agw_str seq)
{
    const char *name = agw_ir_stop_name(stop);

    AGW_WIRE_W_LIT(w, "\"stop_reason\":");
    if (name)
        agw_wire_w_str(w, agw_str_c(name));
    else
        AGW_WIRE_W_LIT(w, "null");
    AGW_WIRE_W_LIT(w, ",\"stop_sequence\":");
    if (seq.len)
        agw_wire_w_str(w, seq);
    else
        AGW_WIRE_W_LIT(w, "null");
}

/* ==== stream encoding ==== */

static void w_message_start(agw_wire_writer *w, agw_anthropic_stream_encoder *e,
                            const agw_ir_event *ev)
{
    AGW_WIRE_W_LIT(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{"
                      "\"id\":");
    w_message_id(w, &e->arena, e->id, ev->id);
    AGW_WIRE_W_LIT(w, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    agw_wire_w_str(w, e->model.len ? e->model : ev->model);
    AGW_WIRE_W_LIT(w, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
    w_usage(w, &ev->usage);
    AGW_WIRE_W_LIT(w, "}}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n");
}

static void w_error_event(agw_wire_writer *w, const agw_ir_event *ev)
{
    agw_str msg = ev->error_message.len ? ev->error_message : AGW_STR_LIT("upstream error");

    AGW_WIRE_W_LIT(w, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"");
    agw_wire_w_cstr(w, agw_anthropic_error_type(ev->error_type, ev->status));
    AGW_WIRE_W_LIT(w, "\",\"message\":");
    agw_wire_w_str(w, msg);
    AGW_WIRE_W_LIT(w, "}}\n\n");
}

/* The head every content block event shares, up to its index. */
static void w_block_event(agw_wire_writer *w, const char *name, int index)
{
    AGW_WIRE_W_LIT(w, "event: ");
    agw_wire_w_cstr(w, name);
    AGW_WIRE_W_LIT(w, "\ndata: {\"type\":\"");
    agw_wire_w_cstr(w, name);
    AGW_WIRE_W_LIT(w, "\",\"index\":");
    agw_wire_w_int(w, index);
}

/* AGW_EINVAL for a block kind the API has no block for, else w's state. */
static agw_err enc_block_start(agw_wire_writer *w, const agw_ir_event *ev)
{
    w_block_event(w, "content_block_start", ev->index);
    switch (ev->block) {
    case AGW_IR_TEXT:
        AGW_WIRE_W_LIT(w, ",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
        return w->e;
    case AGW_IR_TOOL_USE:
        AGW_WIRE_W_LIT(w, ",\"content_block\":{\"type\":\"tool_use\",\"id\":");
        agw_wire_w_str(w, ev->tool_id);
        AGW_WIRE_W_LIT(w, ",\"name\":");
        agw_wire_w_str(w, ev->tool_name);
        AGW_WIRE_W_LIT(w, ",\"input\":{}}}\n\n");
        return w->e;
    case AGW_IR_THINKING:
        AGW_WIRE_W_LIT(w, ",\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\","
                          "\"signature\":\"\"}}\n\n");
        return w->e;
    case AGW_IR_REDACTED_THINKING:
        AGW_WIRE_W_LIT(w, ",\"content_block\":{\"type\":\"redacted_thinking\",\"data\":");
        agw_wire_w_str(w, ev->delta);
        AGW_WIRE_W_LIT(w, "}}\n\n");
        return w->e;
    default:
        return AGW_EINVAL;
    }
}

/* AGW_EINVAL for an unknown delta kind, else w's state. */
static agw_err enc_block_delta(agw_wire_writer *w, const agw_ir_event *ev)
{
    w_block_event(w, "content_block_delta", ev->index);
    switch (ev->delta_kind) {
    case AGW_IR_DELTA_TEXT:
        AGW_WIRE_W_LIT(w, ",\"delta\":{\"type\":\"text_delta\",\"text\":");
        break;
    case AGW_IR_DELTA_JSON:
        AGW_WIRE_W_LIT(w, ",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":");
        break;
    case AGW_IR_DELTA_THINKING:
        AGW_WIRE_W_LIT(w, ",\"delta\":{\"type\":\"thinking_delta\",\"thinking\":");
        break;
    case AGW_IR_DELTA_SIGNATURE:
        AGW_WIRE_W_LIT(w, ",\"delta\":{\"type\":\"signature_delta\",\"signature\":");
        break;
    default:
        return AGW_EINVAL;
    }
    agw_wire_w_str(w, ev->delta);
    AGW_WIRE_W_LIT(w, "}}\n\n");
    return w->e;
}

/* `"<key>":<n>,` when the count is known. */
static void w_known_count(agw_wire_writer *w, const char *key, int64_t n)
{
    if (n < 0)
        return;
    AGW_WIRE_W_LIT(w, "\"");
    agw_wire_w_cstr(w, key);
    AGW_WIRE_W_LIT(w, "\":");
    agw_wire_w_int(w, n);
    AGW_WIRE_W_LIT(w, ",");
}

static void w_message_delta(agw_wire_writer *w, const agw_ir_event *ev)
{
    AGW_WIRE_W_LIT(w, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{");
    w_stop(w, ev->stop, ev->stop_sequence);
    AGW_WIRE_W_LIT(w, "},\"usage\":{");
    /* Input-side counts only when the upstream reported them here. */
    w_known_count(w, "input_tokens", ev->usage.input);
    w_known_count(w, "cache_creation_input_tokens", ev->usage.cache_write);
    w_known_count(w, "cache_read_input_tokens", ev->usage.cache_read);
    AGW_WIRE_W_LIT(w, "\"output_tokens\":");
    w_count(w, ev->usage.output);
    AGW_WIRE_W_LIT(w, "}}\n\n");
}

agw_err agw_anthropic_encode_stream_event(agw_anthropic_stream_encoder *e, const agw_ir_event *ev,
                                          agw_buf *out)
{
    agw_wire_writer w = AGW_WIRE_WRITER(out);
    size_t start = out->len;

    switch (ev->kind) {
    case AGW_IR_EV_MESSAGE_START:
        if (e->started)
            return AGW_EINVAL;
        e->started = 1;
        w_message_start(&w, e, ev);
        return agw_wire_rollback(out, start, w.e);
    case AGW_IR_EV_PING:
        AGW_WIRE_W_LIT(&w, "event: ping\ndata: {\"type\": \"ping\"}\n\n");
        return agw_wire_rollback(out, start, w.e);
    case AGW_IR_EV_ERROR:
        w_error_event(&w, ev);
        return agw_wire_rollback(out, start, w.e);
    default:
        break;
    }
    /* Everything else belongs to a started message. */
    if (!e->started || ev->index < 0)
        return AGW_EINVAL;
    switch (ev->kind) {
    case AGW_IR_EV_BLOCK_START:
        return agw_wire_rollback(out, start, enc_block_start(&w, ev));
    case AGW_IR_EV_BLOCK_DELTA:
        return agw_wire_rollback(out, start, enc_block_delta(&w, ev));
    case AGW_IR_EV_BLOCK_STOP:
        w_block_event(&w, "content_block_stop", ev->index);
        AGW_WIRE_W_LIT(&w, "}\n\n");
        break;
    case AGW_IR_EV_MESSAGE_DELTA:
        w_message_delta(&w, ev);
        break;
    case AGW_IR_EV_MESSAGE_STOP:
        AGW_WIRE_W_LIT(&w, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        break;
    default:
        return AGW_EINVAL;
    }
    return agw_wire_rollback(out, start, w.e);
}

/* ==== responses ==== */

/* One block of the folded answer; AGW_EINVAL for a kind with no block or
 * tool input that is not one JSON object, else w's state. */
static agw_err enc_fold_block(agw_wire_writer *w, const agw_ir_fold_block *b, agw_str text,
                              agw_str sig)
{
    switch (b->kind) {
    case AGW_IR_TEXT:
        AGW_WIRE_W_LIT(w, "{\"type\":\"text\",\"text\":");
        agw_wire_w_str(w, text);
        AGW_WIRE_W_LIT(w, "}");
        return w->e;
    case AGW_IR_TOOL_USE:
        /* The pieces must add up to one JSON object; anything else is the
         * upstream's fault and must not reach the client as valid. */
        if (text.len && !agw_wire_object(text))
            return AGW_EINVAL;
        AGW_WIRE_W_LIT(w, "{\"type\":\"tool_use\",\"id\":");
        agw_wire_w_str(w, b->tool_id);
        AGW_WIRE_W_LIT(w, ",\"name\":");
        agw_wire_w_str(w, b->tool_name);
        AGW_WIRE_W_LIT(w, ",\"input\":");
        agw_wire_w_view(w, text.len ? text : AGW_STR_LIT("{}"));
        AGW_WIRE_W_LIT(w, "}");
        return w->e;
    case AGW_IR_THINKING:
        AGW_WIRE_W_LIT(w, "{\"type\":\"thinking\",\"thinking\":");
        agw_wire_w_str(w, text);
        AGW_WIRE_W_LIT(w, ",\"signature\":");
        agw_wire_w_str(w, sig);
        AGW_WIRE_W_LIT(w, "}");
        return w->e;
    case AGW_IR_REDACTED_THINKING:
        AGW_WIRE_W_LIT(w, "{\"type\":\"redacted_thinking\",\"data\":");
        agw_wire_w_str(w, text);
        AGW_WIRE_W_LIT(w, "}");
        return w->e;
    default:
        return AGW_EINVAL;
    }
}

static agw_err encode_response(const agw_ir_fold *f, agw_str model, agw_str id, agw_arena *a,
                               agw_wire_writer *w)
{
    int first = 1;

    AGW_WIRE_W_LIT(w, "{\"id\":");
    w_message_id(w, a, id, f->id);
    AGW_WIRE_W_LIT(w, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    agw_wire_w_str(w, model.len ? model : f->model);
    AGW_WIRE_W_LIT(w, ",\"content\":[");
    for (size_t i = 0; i < f->n_blocks; i++) {
        const agw_ir_fold_block *b = &f->blocks[i];
        agw_str text = agw_buf_view(&b->text), sig = agw_buf_view(&b->signature);

        /* Empty text blocks (and indexes the producer skipped) are left out:
         * the API never returns them and rejects them when sent back. */
        if ((b->kind == AGW_IR_TEXT || b->kind == AGW_IR_REDACTED_THINKING) && !text.len)
            continue;
        if (b->kind == AGW_IR_THINKING && !text.len && !sig.len)
            continue;
        if (!first)
            AGW_WIRE_W_LIT(w, ",");
        first = 0;
        if (enc_fold_block(w, b, text, sig) == AGW_EINVAL)
            return AGW_EINVAL;
    }
    AGW_WIRE_W_LIT(w, "],");
    w_stop(w, f->stop, f->stop_sequence);
    AGW_WIRE_W_LIT(w, ",\"usage\":");
    w_usage(w, &f->usage);
    AGW_WIRE_W_LIT(w, "}");
    return w->e;
}

agw_err agw_anthropic_encode_response(const agw_ir_fold *f, agw_str model, agw_str id,
                                      agw_buf *out)
{
    agw_wire_writer w = AGW_WIRE_WRITER(out);
    agw_arena a = AGW_ARENA_INIT; /* the id, when one is made */
    size_t start = out->len;
    agw_err e = encode_response(f, model, id, &a, &w);

    agw_arena_free(&a);
    return agw_wire_rollback(out, start, e);
}

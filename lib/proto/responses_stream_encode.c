/*
 * responses_stream_encode: IR events -> a Responses client's typed SSE
 * events, and a folded answer -> a response object (responses.h). Both
 * write items, usage and the response object with the same functions, so a
 * streamed answer's final response equals the non-streamed one.
 */
#include "proto/responses_int.h"
#include "proto/wire.h"

#include <string.h>

/* ---- what streams and folds share ---- */

static agw_err put_usage(agw_buf *b, const agw_ir_usage *u)
{
    int64_t in = u->input > 0 ? u->input : 0;
    int64_t cr = u->cache_read > 0 ? u->cache_read : 0;
    int64_t cw = u->cache_write > 0 ? u->cache_write : 0;
    int64_t out = u->output > 0 ? u->output : 0;
    int64_t rs = u->reasoning > 0 ? u->reasoning : 0;
    long long input = (long long)(in + cr + cw);
    return agw_buf_appendf(b,
                           "{\"input_tokens\":%lld,\"input_tokens_details\":"
                           "{\"cached_tokens\":%lld},"
                           "\"output_tokens\":%lld,\"output_tokens_details\":{\"reasoning_tokens\":"
                           "%lld},\"total_tokens\":%lld}",
                           input, (long long)cr, (long long)out, (long long)rs,
                           input + (long long)out);
}

/* "<prefix><base>_<n>": an item id derived from the response id (without
 * its "resp_"), so streams and folds agree. */
static agw_err make_item_id(agw_arena *a, const char *prefix, agw_str resp_id, int n,
                            agw_str *out)
{
    agw_buf b = AGW_BUF_INIT(resp_id.len + 64);
    agw_str base = resp_id;
    if (agw_str_starts(base, AGW_STR_LIT("resp_"))) {
        base.ptr += 5;
        base.len -= 5;
    }
    agw_err e = agw_buf_appendf(&b, "%s", prefix);
    if (!e)
        e = agw_buf_append_str(&b, base);
    if (!e)
        e = agw_buf_appendf(&b, "_%d", n);
    if (!e)
        *out = agw_arena_str(a, agw_buf_view(&b));
    agw_buf_free(&b);
    return e;
}

/* A function call item's id: "fc_" + its call id. */
static agw_err make_call_item_id(agw_arena *a, agw_str call_id, agw_str *out)
{
    return agw_wire_make_id(a, AGW_STR_LIT("fc_"), call_id, out);
}

/* One output item, finished (`done`) or as output_item.added shows it. */
static void put_message_item(agw_wire_writer *w, agw_str id, agw_str text, int done)
{
    AGW_WIRE_W_LIT(w, "{\"id\":");
    agw_wire_w_str(w, id);
    if (!done) {
        AGW_WIRE_W_LIT(w, ",\"type\":\"message\",\"status\":\"in_progress\",\"content\":[],"
                          "\"role\":\"assistant\"}");
        return;
    }
    AGW_WIRE_W_LIT(w, ",\"type\":\"message\",\"status\":\"completed\",\"content\":[{\"type\":"
                      "\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":");
    agw_wire_w_str(w, text);
    AGW_WIRE_W_LIT(w, "}],\"role\":\"assistant\"}");
}

static void put_call_item(agw_wire_writer *w, agw_str id, agw_str call_id, agw_str name,
                          agw_str args, int done)
{
    AGW_WIRE_W_LIT(w, "{\"id\":");
    agw_wire_w_str(w, id);
    AGW_WIRE_W_LIT(w, ",\"type\":\"function_call\",\"status\":");
    if (done)
        AGW_WIRE_W_LIT(w, "\"completed\"");
    else
        AGW_WIRE_W_LIT(w, "\"in_progress\"");
    AGW_WIRE_W_LIT(w, ",\"arguments\":");
    agw_wire_w_str(w, done ? args : AGW_STR_LIT(""));
    AGW_WIRE_W_LIT(w, ",\"call_id\":");
    agw_wire_w_str(w, call_id);
    AGW_WIRE_W_LIT(w, ",\"name\":");
    agw_wire_w_str(w, name);
    agw_wire_w_raw(w, "}", 1);
}

/* A reasoning item: the thinking as one summary_text part, the signature
 * (or a redacted block's data) as encrypted_content. */
static void put_reasoning_item(agw_wire_writer *w, agw_str id, agw_str text, agw_str sig,
                               int done)
{
    AGW_WIRE_W_LIT(w, "{\"id\":");
    agw_wire_w_str(w, id);
    AGW_WIRE_W_LIT(w, ",\"type\":\"reasoning\",\"summary\":[");
    if (done && text.len) {
        AGW_WIRE_W_LIT(w, "{\"type\":\"summary_text\",\"text\":");
        agw_wire_w_str(w, text);
        agw_wire_w_raw(w, "}", 1);
    }
    agw_wire_w_raw(w, "]", 1);
    if (done && sig.len) {
        AGW_WIRE_W_LIT(w, ",\"encrypted_content\":");
        agw_wire_w_str(w, sig);
    }
    agw_wire_w_raw(w, "}", 1);
}

/* What a response object says besides its output. */
typedef struct {
    agw_str id, model;
    int64_t created;
    const char *status;          /* in_progress, completed, incomplete, failed */
    agw_str items;               /* the output items' JSON, comma-separated */
    const agw_ir_usage *usage;   /* NULL: null */
    agw_ir_stop stop;            /* incomplete: why */
    const char *error_code;      /* failed */
    agw_str error_message;
} rsp_obj;

/* The status a finished answer has and, for incomplete ones, why. */
static const char *final_status(agw_ir_stop stop, const char **reason)
{
    *reason = NULL;
    if (stop == AGW_IR_STOP_MAX_TOKENS)
        *reason = "max_output_tokens";
    else if (stop == AGW_IR_STOP_REFUSAL)
        *reason = "content_filter";
    return *reason ? "incomplete" : "completed";
}

/* The response object. The request's own parameters are not echoed (the
 * bridge converts answers, not requests): the fields the object always has
 * carry their defaults. */
static void put_response(agw_wire_writer *w, const rsp_obj *r)
{
    const char *reason = NULL;
    if (strcmp(r->status, "incomplete") == 0)
        (void)final_status(r->stop, &reason);
    AGW_WIRE_W_LIT(w, "{\"id\":");
    agw_wire_w_str(w, r->id);
    AGW_WIRE_W_LIT(w, ",\"object\":\"response\",\"created_at\":");
    agw_wire_w_int(w, r->created);
    AGW_WIRE_W_LIT(w, ",\"status\":\"");
    agw_wire_w_cstr(w, r->status);
    AGW_WIRE_W_LIT(w, "\",\"background\":false,\"error\":");
    if (r->error_code) {
        AGW_WIRE_W_LIT(w, "{\"code\":\"");
        agw_wire_w_cstr(w, r->error_code);
        AGW_WIRE_W_LIT(w, "\",\"message\":");
        agw_wire_w_str(w, r->error_message);
        agw_wire_w_raw(w, "}", 1);
    } else {
        AGW_WIRE_W_LIT(w, "null");
    }
    AGW_WIRE_W_LIT(w, ",\"incomplete_details\":");
    if (reason) {
        AGW_WIRE_W_LIT(w, "{\"reason\":\"");
        agw_wire_w_cstr(w, reason);
        AGW_WIRE_W_LIT(w, "\"}");
    } else {
        AGW_WIRE_W_LIT(w, "null");
    }
    AGW_WIRE_W_LIT(w, ",\"instructions\":null,\"max_output_tokens\":null,\"model\":");
    agw_wire_w_str(w, r->model);
    AGW_WIRE_W_LIT(w, ",\"output\":[");
    agw_wire_w_view(w, r->items);
    AGW_WIRE_W_LIT(w, "],\"parallel_tool_calls\":true,\"previous_response_id\":null,"
                      "\"reasoning\":{\"effort\":null,\"summary\":null},\"store\":false,"
                      "\"text\":{\"format\":{\"type\":\"text\"}},\"tool_choice\":\"auto\","
                      "\"tools\":[],\"truncation\":\"disabled\",\"usage\":");
    if (r->usage && w->e == AGW_OK)
        w->e = put_usage(w->b, r->usage);
    else
        AGW_WIRE_W_LIT(w, "null");
    AGW_WIRE_W_LIT(w, ",\"user\":null,\"metadata\":{}}");
}

static agw_err make_resp_id(agw_arena *a, agw_str id, agw_str *out)
{
    return agw_wire_make_id(a, AGW_STR_LIT("resp_"), id, out);
}

/* ======================================================================
 * Stream encoding
 * ====================================================================== */

void agw_responses_stream_encoder_init(agw_responses_stream_encoder *e, agw_str model,
                                       int64_t created)
{
    memset(e, 0, sizeof *e);
    e->model = agw_arena_str(&e->arena, model);
    e->created = created;
    e->open = -1;
    agw_buf_init(&e->text, AGW_LIMIT_UPSTREAM_BODY);
    agw_buf_init(&e->signature, AGW_LIMIT_UPSTREAM_BODY);
    agw_buf_init(&e->items, AGW_LIMIT_UPSTREAM_BODY);
    e->usage = (agw_ir_usage)AGW_IR_USAGE_UNKNOWN;
}

void agw_responses_stream_encoder_free(agw_responses_stream_encoder *e)
{
    agw_buf_free(&e->text);
    agw_buf_free(&e->signature);
    agw_buf_free(&e->items);
    agw_arena_free(&e->arena);
}

/* "event: <type>\ndata: {"type":"<type>","sequence_number":N" — the caller
 * writes the rest of the object and ev_end. */
static void ev_begin(agw_responses_stream_encoder *e, agw_wire_writer *w, const char *type)
{
    AGW_WIRE_W_LIT(w, "event: ");
    agw_wire_w_cstr(w, type);
    AGW_WIRE_W_LIT(w, "\ndata: {\"type\":\"");
    agw_wire_w_cstr(w, type);
    AGW_WIRE_W_LIT(w, "\",\"sequence_number\":");
    agw_wire_w_int(w, e->seq++);
}

static void ev_end(agw_wire_writer *w)
{
    AGW_WIRE_W_LIT(w, "}\n\n");
}

/* ,"item_id":..,"output_index":N */
static void ev_item(agw_responses_stream_encoder *e, agw_wire_writer *w)
{
    AGW_WIRE_W_LIT(w, ",\"item_id\":");
    agw_wire_w_str(w, e->item_id);
    AGW_WIRE_W_LIT(w, ",\"output_index\":");
    agw_wire_w_int(w, e->output_index);
}

static void ev_response(agw_responses_stream_encoder *e, agw_wire_writer *w, const char *type,
                        const rsp_obj *r)
{
    ev_begin(e, w, type);
    AGW_WIRE_W_LIT(w, ",\"response\":");
    put_response(w, r);
    ev_end(w);
}

static rsp_obj stream_obj(const agw_responses_stream_encoder *e, const char *status)
{
    rsp_obj r;
    memset(&r, 0, sizeof r);
    r.id = e->id;
    r.model = e->model;
    r.created = e->created;
    r.status = status;
    r.items = agw_buf_view(&e->items);
    r.stop = e->stop;
    return r;
}

/* response.created and response.in_progress, once. */
static agw_err enc_start(agw_responses_stream_encoder *e, agw_str id, agw_buf *out)
{
    if (e->started)
        return AGW_OK;
    AGW_WIRE_TRY(make_resp_id(&e->arena, id, &e->id));
    e->started = 1;
    agw_wire_writer w = AGW_WIRE_WRITER(out);
    rsp_obj r = stream_obj(e, "in_progress");
    ev_response(e, &w, "response.created", &r);
    ev_response(e, &w, "response.in_progress", &r);
    return w.e;
}

/* A new output item for IR block `ev`: output_item.added and, for text and
 * reasoning, the part that will hold its text. */
static agw_err enc_block_start(agw_responses_stream_encoder *e, const agw_ir_event *ev,
                               agw_buf *out)
{
    agw_wire_writer w = AGW_WIRE_WRITER(out);
    e->open = ev->index;
    e->open_kind = ev->block;
    e->output_index = e->n_items++;
    agw_buf_reset(&e->text);
    agw_buf_reset(&e->signature);
    e->call_id = e->name = (agw_str){ NULL, 0 };
    switch (ev->block) {
    case AGW_IR_TOOL_USE:
        e->call_id = agw_arena_str(&e->arena, ev->tool_id);
        e->name = agw_arena_str(&e->arena, ev->tool_name);
        AGW_WIRE_TRY(make_call_item_id(&e->arena, e->call_id, &e->item_id));
        e->saw_call = 1;
        break;
    case AGW_IR_THINKING:
    case AGW_IR_REDACTED_THINKING:
        AGW_WIRE_TRY(make_item_id(&e->arena, "rs_", e->id, e->output_index, &e->item_id));
        if (ev->block == AGW_IR_REDACTED_THINKING)
            AGW_WIRE_TRY(agw_buf_append_str(&e->signature, ev->delta));
        break;
    default:
        AGW_WIRE_TRY(make_item_id(&e->arena, "msg_", e->id, e->output_index, &e->item_id));
        break;
    }
    ev_begin(e, &w, "response.output_item.added");
    AGW_WIRE_W_LIT(&w, ",\"output_index\":");
    agw_wire_w_int(&w, e->output_index);
    AGW_WIRE_W_LIT(&w, ",\"item\":");
    if (ev->block == AGW_IR_TOOL_USE)
        put_call_item(&w, e->item_id, e->call_id, e->name, (agw_str){ NULL, 0 }, 0);
    else if (ev->block == AGW_IR_THINKING || ev->block == AGW_IR_REDACTED_THINKING)
        put_reasoning_item(&w, e->item_id, (agw_str){ NULL, 0 }, (agw_str){ NULL, 0 }, 0);
    else
        put_message_item(&w, e->item_id, (agw_str){ NULL, 0 }, 0);
    ev_end(&w);
    if (ev->block == AGW_IR_TEXT) {
        ev_begin(e, &w, "response.content_part.added");
        ev_item(e, &w);
        AGW_WIRE_W_LIT(&w, ",\"content_index\":0,\"part\":{\"type\":\"output_text\","
                           "\"annotations\":[],\"logprobs\":[],\"text\":\"\"}");
        ev_end(&w);
    } else if (ev->block == AGW_IR_THINKING) {
        ev_begin(e, &w, "response.reasoning_summary_part.added");
        ev_item(e, &w);
        AGW_WIRE_W_LIT(&w, ",\"summary_index\":0,\"part\":{\"type\":\"summary_text\","
                           "\"text\":\"\"}");
        ev_end(&w);
    }
    return w.e;
}

static agw_err enc_delta(agw_responses_stream_encoder *e, const agw_ir_event *ev, agw_buf *out)
{
    agw_wire_writer w = AGW_WIRE_WRITER(out);
    if (ev->index != e->open)
        return AGW_EINVAL;
    if (ev->delta_kind == AGW_IR_DELTA_SIGNATURE)
        return agw_buf_append_str(&e->signature, ev->delta);
    if (ev->delta.len == 0)
        return AGW_OK;
    const char *type;
    switch (e->open_kind) {
    case AGW_IR_TEXT:
        if (ev->delta_kind != AGW_IR_DELTA_TEXT)
            return AGW_EINVAL;
        type = "response.output_text.delta";
        break;
    case AGW_IR_TOOL_USE:
        if (ev->delta_kind != AGW_IR_DELTA_JSON)
            return AGW_EINVAL;
        type = "response.function_call_arguments.delta";
        break;
    case AGW_IR_THINKING:
        if (ev->delta_kind != AGW_IR_DELTA_THINKING)
            return AGW_EINVAL;
        type = "response.reasoning_summary_text.delta";
        break;
    default:
        return AGW_EINVAL;
    }
    AGW_WIRE_TRY(agw_buf_append_str(&e->text, ev->delta));
    ev_begin(e, &w, type);
    ev_item(e, &w);
    if (e->open_kind == AGW_IR_TEXT)
        AGW_WIRE_W_LIT(&w, ",\"content_index\":0");
    else if (e->open_kind == AGW_IR_THINKING)
        AGW_WIRE_W_LIT(&w, ",\"summary_index\":0");
    AGW_WIRE_W_LIT(&w, ",\"delta\":");
    agw_wire_w_str(&w, ev->delta);
    if (e->open_kind == AGW_IR_TEXT)
        AGW_WIRE_W_LIT(&w, ",\"logprobs\":[]");
    ev_end(&w);
    return w.e;
}

/* The open item's done events, and its JSON kept for the final response. */
static agw_err enc_block_stop(agw_responses_stream_encoder *e, agw_buf *out)
{
    agw_wire_writer w = AGW_WIRE_WRITER(out);
    if (e->open < 0)
        return AGW_OK;
    if (e->open_kind == AGW_IR_TOOL_USE && e->text.len == 0) {
        /* A call without input: the client must still parse what it assembled. */
        agw_ir_event d;
        agw_ir_event_init(&d, AGW_IR_EV_BLOCK_DELTA);
        d.index = e->open;
        d.delta_kind = AGW_IR_DELTA_JSON;
        d.delta = AGW_STR_LIT("{}");
        AGW_WIRE_TRY(enc_delta(e, &d, out));
    }
    agw_str text = agw_buf_view(&e->text), sig = agw_buf_view(&e->signature);
    if (e->open_kind == AGW_IR_TEXT) {
        ev_begin(e, &w, "response.output_text.done");
        ev_item(e, &w);
        AGW_WIRE_W_LIT(&w, ",\"content_index\":0,\"text\":");
        agw_wire_w_str(&w, text);
        AGW_WIRE_W_LIT(&w, ",\"logprobs\":[]");
        ev_end(&w);
        ev_begin(e, &w, "response.content_part.done");
        ev_item(e, &w);
        AGW_WIRE_W_LIT(&w, ",\"content_index\":0,\"part\":{\"type\":\"output_text\","
                           "\"annotations\":[],\"logprobs\":[],\"text\":");
        agw_wire_w_str(&w, text);
        AGW_WIRE_W_LIT(&w, "}");
        ev_end(&w);
    } else if (e->open_kind == AGW_IR_TOOL_USE) {
        ev_begin(e, &w, "response.function_call_arguments.done");
        ev_item(e, &w);
        AGW_WIRE_W_LIT(&w, ",\"name\":");
        agw_wire_w_str(&w, e->name);
        AGW_WIRE_W_LIT(&w, ",\"arguments\":");
        agw_wire_w_str(&w, text);
        ev_end(&w);
    } else if (e->open_kind == AGW_IR_THINKING) {
        ev_begin(e, &w, "response.reasoning_summary_text.done");
        ev_item(e, &w);
        AGW_WIRE_W_LIT(&w, ",\"summary_index\":0,\"text\":");
        agw_wire_w_str(&w, text);
        ev_end(&w);
        ev_begin(e, &w, "response.reasoning_summary_part.done");
        ev_item(e, &w);
        AGW_WIRE_W_LIT(&w, ",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":");
        agw_wire_w_str(&w, text);
        AGW_WIRE_W_LIT(&w, "}");
        ev_end(&w);
    }
    /* The finished item, once for the event and once for the final output. */
    ev_begin(e, &w, "response.output_item.done");
    AGW_WIRE_W_LIT(&w, ",\"output_index\":");
    agw_wire_w_int(&w, e->output_index);
    AGW_WIRE_W_LIT(&w, ",\"item\":");
    size_t item_at = out->len;
    if (e->open_kind == AGW_IR_TOOL_USE)
        put_call_item(&w, e->item_id, e->call_id, e->name, text, 1);
    else if (e->open_kind == AGW_IR_THINKING || e->open_kind == AGW_IR_REDACTED_THINKING)
        put_reasoning_item(&w, e->item_id, text, sig, 1);
    else
        put_message_item(&w, e->item_id, text, 1);
    size_t item_end = out->len;
    ev_end(&w);
    AGW_WIRE_TRY(w.e);
    if (e->items.len)
        AGW_WIRE_TRY(agw_buf_append(&e->items, ",", 1));
    AGW_WIRE_TRY(agw_buf_append(&e->items, out->data + item_at, item_end - item_at));
    e->open = -1;
    return AGW_OK;
}

static agw_err enc_stop(agw_responses_stream_encoder *e, agw_buf *out)
{
    AGW_WIRE_TRY(enc_start(e, (agw_str){ NULL, 0 }, out));
    AGW_WIRE_TRY(enc_block_stop(e, out));
    e->done = 1;
    if (e->stop == AGW_IR_STOP_NONE || (e->saw_call && e->stop == AGW_IR_STOP_END_TURN))
        e->stop = e->saw_call ? AGW_IR_STOP_TOOL_USE : AGW_IR_STOP_END_TURN;
    const char *reason;
    const char *status = final_status(e->stop, &reason);
    agw_wire_writer w = AGW_WIRE_WRITER(out);
    rsp_obj r = stream_obj(e, status);
    r.usage = &e->usage;
    ev_response(e, &w, reason ? "response.incomplete" : "response.completed", &r);
    return w.e;
}

/* An error ends the answer as response.failed, with the output so far. */
static agw_err enc_error(agw_responses_stream_encoder *e, const agw_ir_event *ev, agw_buf *out)
{
    AGW_WIRE_TRY(enc_start(e, (agw_str){ NULL, 0 }, out));
    e->done = 1;
    agw_wire_writer w = AGW_WIRE_WRITER(out);
    rsp_obj r = stream_obj(e, "failed");
    r.error_code = agw_responses_error_code(ev->error_type, ev->status);
    r.error_message = ev->error_message;
    ev_response(e, &w, "response.failed", &r);
    return w.e;
}

agw_err agw_responses_encode_stream_event(agw_responses_stream_encoder *e, const agw_ir_event *ev,
                                          agw_buf *out)
{
    if (e->done)
        return AGW_OK;
    switch (ev->kind) {
    case AGW_IR_EV_MESSAGE_START:
        agw_ir_usage_merge(&e->usage, &ev->usage);
        return enc_start(e, ev->id, out);
    case AGW_IR_EV_BLOCK_START:
        if (ev->index < 0)
            return AGW_EINVAL;
        AGW_WIRE_TRY(enc_start(e, (agw_str){ NULL, 0 }, out));
        AGW_WIRE_TRY(enc_block_stop(e, out));
        return enc_block_start(e, ev, out);
    case AGW_IR_EV_BLOCK_DELTA:
        return enc_delta(e, ev, out);
    case AGW_IR_EV_BLOCK_STOP:
        return ev->index == e->open ? enc_block_stop(e, out) : AGW_OK;
    case AGW_IR_EV_PING:
        return AGW_OK;
    case AGW_IR_EV_MESSAGE_DELTA:
        if (ev->stop != AGW_IR_STOP_NONE)
            e->stop = ev->stop;
        agw_ir_usage_merge(&e->usage, &ev->usage);
        return AGW_OK;
    case AGW_IR_EV_MESSAGE_STOP:
        return enc_stop(e, out);
    case AGW_IR_EV_ERROR:
        return enc_error(e, ev, out);
    }
    return AGW_EINVAL;
}

/* ======================================================================
 * Response encoding (a fold -> a response object)
 * ====================================================================== */

agw_err agw_responses_encode_response(const agw_ir_fold *f, agw_str model, int64_t created,
                                      agw_buf *out)
{
    agw_arena a = AGW_ARENA_INIT;
    agw_buf items = AGW_BUF_INIT(AGW_LIMIT_UPSTREAM_BODY);
    agw_wire_writer iw = AGW_WIRE_WRITER(&items);
    agw_str id, item_id;
    int n = 0, saw_call = 0;
    agw_err e = make_resp_id(&a, f->id, &id);
    for (size_t i = 0; e == AGW_OK && i < f->n_blocks; i++) {
        const agw_ir_fold_block *b = &f->blocks[i];
        agw_str text = agw_buf_view(&b->text);
        if (n)
            agw_wire_w_raw(&iw, ",", 1);
        switch (b->kind) {
        case AGW_IR_TOOL_USE:
            saw_call = 1;
            if (!text.len)
                text = AGW_STR_LIT("{}");
            if (!agw_wire_object(text))
                e = AGW_EINVAL; /* the bridge answers 502 */
            else if ((e = make_call_item_id(&a, b->tool_id, &item_id)) == AGW_OK)
                put_call_item(&iw, item_id, b->tool_id, b->tool_name, text, 1);
            break;
        case AGW_IR_THINKING:
        case AGW_IR_REDACTED_THINKING:
            /* A redacted block's data is its encrypted content. */
            if ((e = make_item_id(&a, "rs_", id, n, &item_id)) == AGW_OK)
                put_reasoning_item(&iw, item_id,
                                   b->kind == AGW_IR_THINKING ? text : AGW_STR_LIT(""),
                                   b->kind == AGW_IR_THINKING ? agw_buf_view(&b->signature) : text,
                                   1);
            break;
        default:
            if ((e = make_item_id(&a, "msg_", id, n, &item_id)) == AGW_OK)
                put_message_item(&iw, item_id, text, 1);
            break;
        }
        n++;
    }
    if (e == AGW_OK)
        e = iw.e;
    if (e == AGW_OK) {
        agw_ir_stop stop = f->stop;
        if (stop == AGW_IR_STOP_NONE || (saw_call && stop == AGW_IR_STOP_END_TURN))
            stop = saw_call ? AGW_IR_STOP_TOOL_USE : AGW_IR_STOP_END_TURN;
        const char *reason;
        rsp_obj r;
        memset(&r, 0, sizeof r);
        r.id = id;
        r.model = model;
        r.created = created;
        r.status = final_status(stop, &reason);
        r.items = agw_buf_view(&items);
        r.usage = &f->usage;
        r.stop = stop;
        agw_wire_writer w = AGW_WIRE_WRITER(out);
        put_response(&w, &r);
        e = w.e;
    }
    agw_buf_free(&items);
    agw_arena_free(&a);
    return e;
}

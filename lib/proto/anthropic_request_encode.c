/*
 * anthropic_request_encode: an IR request -> an Anthropic Messages body for
 * the upstream (agw_anthropic_encode_request in anthropic.h, which lists the
 * rules the API imposes). The decisions that are not obvious from it:
 *
 *  - The first message may be an assistant turn: the Messages API reference
 *    only asks for alternating turns and merges consecutive ones; it no
 *    longer requires a leading user turn, so none is invented or refused.
 *  - Message content is always written as an array of blocks; tool_result
 *    content too, so cache_control marks and images inside it survive.
 *  - A tool schema without "type" gets "type":"object" (the API requires it;
 *    an OpenAI function without parameters has none). top_p 1 is left out:
 *    it is a no-op, and newer models refuse temperature and top_p together.
 *  - Raw JSON the IR carries (tool input, schemas, cache_control, thinking)
 *    is spliced in only when it is one valid JSON object.
 */
#include "proto/anthropic_int.h"
#include "proto/wire.h"

#include "core/json.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    agw_wire_writer w;
    char *err;
    size_t errlen;
} enc;

/* 1 when the block goes upstream: the API rejects empty text, and a thinking
 * block without its signature cannot be sent back. */
static int block_kept(const agw_ir_block *b)
{
    switch (b->kind) {
    case AGW_IR_TEXT:
        return b->text.len > 0;
    case AGW_IR_THINKING:
        return b->signature.len > 0;
    case AGW_IR_REDACTED_THINKING:
        return b->text.len > 0;
    default:
        return 1;
    }
}

static int message_kept(const agw_ir_message *m)
{
    for (size_t i = 0; i < m->n_blocks; i++)
        if (block_kept(&m->blocks[i]))
            return 1;
    return 0;
}

#define enc_fail(x, ...) agw_wire_w_fail(&(x)->w, (x)->err, (x)->errlen, __VA_ARGS__)

/* The prompt-caching mark of a block or a tool, passed through. AGW_OK
 * unless it is not a JSON object: then the error (with a message), and the
 * caller stops. */
static agw_err enc_cache_control(enc *x, agw_str cc)
{
    if (!cc.len)
        return AGW_OK;
    if (!agw_wire_object(cc))
        return enc_fail(x, "a cache_control mark is not a JSON object");
    AGW_WIRE_W_LIT(&x->w, ",\"cache_control\":");
    agw_wire_w_view(&x->w, cc);
    return AGW_OK;
}

static agw_err enc_text(enc *x, const agw_ir_block *b)
{
    AGW_WIRE_W_LIT(&x->w, "{\"type\":\"text\",\"text\":");
    agw_wire_w_str(&x->w, b->text);
    if (enc_cache_control(x, b->cache_control) != AGW_OK)
        return x->w.e;
    AGW_WIRE_W_LIT(&x->w, "}");
    return x->w.e;
}

/* Where a block is, for messages: only formatted when one is refused, since
 * a printf per block of every converted request costs more than the block. */
typedef struct {
    size_t msg, block;
} block_at;
#define AT_FMT "messages[%zu].content[%zu]"
#define AT_ARGS(at) (at).msg, (at).block

static agw_err enc_image(enc *x, const agw_ir_block *b, block_at at)
{
    if (!b->image_data.len)
        return enc_fail(x, AT_FMT ": an image has no data", AT_ARGS(at));
    if (b->image_is_url) {
        AGW_WIRE_W_LIT(&x->w, "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":");
        agw_wire_w_str(&x->w, b->image_data);
    } else {
        if (!b->media_type.len)
            return enc_fail(x, AT_FMT ": a base64 image has no media type", AT_ARGS(at));
        AGW_WIRE_W_LIT(&x->w,
                       "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":");
        agw_wire_w_str(&x->w, b->media_type);
        AGW_WIRE_W_LIT(&x->w, ",\"data\":");
        agw_wire_w_str(&x->w, b->image_data);
    }
    AGW_WIRE_W_LIT(&x->w, "}");
    if (enc_cache_control(x, b->cache_control) != AGW_OK)
        return x->w.e;
    AGW_WIRE_W_LIT(&x->w, "}");
    return x->w.e;
}

static agw_err enc_tool_result(enc *x, const agw_ir_block *b, block_at at)
{
    int first = 1;

    AGW_WIRE_W_LIT(&x->w, "{\"type\":\"tool_result\",\"tool_use_id\":");
    agw_wire_w_str(&x->w, b->tool_id);
    for (size_t i = 0; i < b->n_content; i++) {
        const agw_ir_block *c = &b->content[i];
        if (c->kind == AGW_IR_TEXT && !c->text.len)
            continue;
        agw_wire_w_cstr(&x->w, first ? ",\"content\":[" : ",");
        first = 0;
        if (c->kind == AGW_IR_TEXT)
            enc_text(x, c);
        else if (c->kind == AGW_IR_IMAGE)
            enc_image(x, c, at);
        else
            return enc_fail(x, AT_FMT ": a tool_result may only hold text and images", AT_ARGS(at));
    }
    if (!first)
        AGW_WIRE_W_LIT(&x->w, "]");
    if (b->is_error)
        AGW_WIRE_W_LIT(&x->w, ",\"is_error\":true");
    if (enc_cache_control(x, b->cache_control) != AGW_OK)
        return x->w.e;
    AGW_WIRE_W_LIT(&x->w, "}");
    return x->w.e;
}

static agw_err enc_tool_use(enc *x, const agw_ir_block *b, block_at at)
{
    agw_str input = b->tool_input.len ? b->tool_input : AGW_STR_LIT("{}");
    char nb[48];

    if (!agw_wire_object(input))
        return enc_fail(x, AT_FMT ": the input of tool call %s is not a JSON object",
                        AT_ARGS(at), agw_wire_show(b->tool_name, nb, sizeof nb));
    AGW_WIRE_W_LIT(&x->w, "{\"type\":\"tool_use\",\"id\":");
    agw_wire_w_str(&x->w, b->tool_id);
    AGW_WIRE_W_LIT(&x->w, ",\"name\":");
    agw_wire_w_str(&x->w, b->tool_name);
    AGW_WIRE_W_LIT(&x->w, ",\"input\":");
    agw_wire_w_view(&x->w, input);
    if (enc_cache_control(x, b->cache_control) != AGW_OK)
        return x->w.e;
    AGW_WIRE_W_LIT(&x->w, "}");
    return x->w.e;
}

static agw_err enc_block(enc *x, const agw_ir_block *b, block_at at)
{
    switch (b->kind) {
    case AGW_IR_TEXT:
        return enc_text(x, b);
    case AGW_IR_IMAGE:
        return enc_image(x, b, at);
    case AGW_IR_TOOL_RESULT:
        return enc_tool_result(x, b, at);
    case AGW_IR_TOOL_USE:
        return enc_tool_use(x, b, at);
    case AGW_IR_THINKING:
        AGW_WIRE_W_LIT(&x->w, "{\"type\":\"thinking\",\"thinking\":");
        agw_wire_w_str(&x->w, b->text);
        AGW_WIRE_W_LIT(&x->w, ",\"signature\":");
        agw_wire_w_str(&x->w, b->signature);
        AGW_WIRE_W_LIT(&x->w, "}");
        return x->w.e;
    case AGW_IR_REDACTED_THINKING:
        AGW_WIRE_W_LIT(&x->w, "{\"type\":\"redacted_thinking\",\"data\":");
        agw_wire_w_str(&x->w, b->text);
        AGW_WIRE_W_LIT(&x->w, "}");
        return x->w.e;
    }
    return enc_fail(x, AT_FMT ": unknown block kind", AT_ARGS(at));
}

/* Refuses blocks that the API does not accept in a turn of that role. */
static agw_err check_roles(enc *x, const agw_ir_request *rq)
{
    for (size_t i = 0; i < rq->n_messages; i++) {
        const agw_ir_message *m = &rq->messages[i];
        for (size_t j = 0; j < m->n_blocks; j++) {
            agw_ir_block_kind k = m->blocks[j].kind;
            if (m->role == AGW_IR_ASSISTANT && (k == AGW_IR_IMAGE || k == AGW_IR_TOOL_RESULT))
                return enc_fail(x, "messages[%zu]: %s blocks are only allowed in user turns", i,
                                k == AGW_IR_IMAGE ? "image" : "tool_result");
            if (m->role == AGW_IR_USER && (k == AGW_IR_TOOL_USE || k == AGW_IR_THINKING ||
                                           k == AGW_IR_REDACTED_THINKING))
                return enc_fail(x, "messages[%zu]: %s blocks are only allowed in assistant turns",
                                i, k == AGW_IR_TOOL_USE ? "tool_use" : "thinking");
        }
    }
    return AGW_OK;
}

static agw_err enc_messages(enc *x, const agw_ir_request *rq)
{
    const agw_ir_message *m = rq->messages;
    size_t n = rq->n_messages, i = 0;
    int turns = 0;

    if (check_roles(x, rq) != AGW_OK)
        return x->w.e;
    AGW_WIRE_W_LIT(&x->w, ",\"messages\":[");
    for (;;) {
        size_t j;
        agw_ir_role role;
        int first = 1;

        while (i < n && !message_kept(&m[i]))
            i++;
        if (i == n)
            break;
        /* One turn: this message and every later one of the same role, with
         * emptied messages of either role in between dropped. */
        role = m[i].role;
        for (j = i; j < n && (!message_kept(&m[j]) || m[j].role == role); j++)
            ;
        agw_wire_w_cstr(&x->w, turns ? ",{\"role\":" : "{\"role\":");
        agw_wire_w_cstr(&x->w, role == AGW_IR_USER ? "\"user\"" : "\"assistant\"");
        AGW_WIRE_W_LIT(&x->w, ",\"content\":[");
        /* The API wants a user turn's tool_results before anything else. */
        for (int pass = role == AGW_IR_USER ? 0 : 1; pass < 2; pass++) {
            for (size_t k = i; k < j; k++) {
                if (m[k].role != role)
                    continue;
                for (size_t b = 0; b < m[k].n_blocks; b++) {
                    const agw_ir_block *blk = &m[k].blocks[b];
                    if (!block_kept(blk) || (role == AGW_IR_USER &&
                                             (blk->kind == AGW_IR_TOOL_RESULT) != (pass == 0)))
                        continue;
                    if (!first)
                        AGW_WIRE_W_LIT(&x->w, ",");
                    first = 0;
                    if (enc_block(x, blk, (block_at){ k, b }) != AGW_OK)
                        return x->w.e;
                }
            }
        }
        AGW_WIRE_W_LIT(&x->w, "]}");
        turns++;
        i = j;
    }
    if (!turns)
        return enc_fail(x, "messages: nothing is left to send once empty messages are removed");
    AGW_WIRE_W_LIT(&x->w, "]");
    return x->w.e;
}

static agw_err enc_system(enc *x, const agw_ir_request *rq)
{
    size_t kept = 0, last = 0;
    int first = 1;

    for (size_t i = 0; i < rq->n_system; i++)
        if (rq->system[i].kind == AGW_IR_TEXT && rq->system[i].text.len) {
            kept++;
            last = i;
        } else if (rq->system[i].kind != AGW_IR_TEXT) {
            return enc_fail(x, "system[%zu] is not a text block", i);
        }
    if (!kept)
        return AGW_OK;
    if (kept == 1 && !rq->system[last].cache_control.len) {
        AGW_WIRE_W_LIT(&x->w, ",\"system\":");
        agw_wire_w_str(&x->w, rq->system[last].text);
        return x->w.e;
    }
    AGW_WIRE_W_LIT(&x->w, ",\"system\":[");
    for (size_t i = 0; i < rq->n_system; i++) {
        if (!rq->system[i].text.len)
            continue;
        if (!first)
            AGW_WIRE_W_LIT(&x->w, ",");
        first = 0;
        if (enc_text(x, &rq->system[i]) != AGW_OK)
            return x->w.e;
    }
    AGW_WIRE_W_LIT(&x->w, "]");
    return x->w.e;
}

static agw_err enc_tools(enc *x, const agw_ir_request *rq)
{
    if (!rq->n_tools)
        return AGW_OK;
    AGW_WIRE_W_LIT(&x->w, ",\"tools\":[");
    for (size_t i = 0; i < rq->n_tools; i++) {
        const agw_ir_tool *t = &rq->tools[i];
        agw_str v;

        if (!t->name.len)
            return enc_fail(x, "tools[%zu] has no name", i);
        agw_wire_w_cstr(&x->w, i ? ",{\"name\":" : "{\"name\":");
        agw_wire_w_str(&x->w, t->name);
        if (t->description.len) {
            AGW_WIRE_W_LIT(&x->w, ",\"description\":");
            agw_wire_w_str(&x->w, t->description);
        }
        AGW_WIRE_W_LIT(&x->w, ",\"input_schema\":");
        if (!t->schema.len) {
            AGW_WIRE_W_LIT(&x->w, "{\"type\":\"object\"}");
        } else if (!agw_wire_object(t->schema)) {
            return enc_fail(x, "tools[%zu]: the parameter schema is not a JSON object", i);
        } else if (agw_json_find(t->schema, AGW_STR_LIT("type"), &v) == AGW_OK) {
            agw_wire_w_view(&x->w, t->schema);
        } else {
            /* Insert the "type" the API requires after the opening brace. */
            const char *brace = memchr(t->schema.ptr, '{', t->schema.len);
            agw_str rest = { brace + 1, t->schema.len - (size_t)(brace + 1 - t->schema.ptr) };
            agw_json_iter it;
            agw_str k, val;
            int empty = agw_json_iter_init(&it, t->schema) != AGW_OK ||
                        !agw_json_iter_next(&it, &k, &val);
            AGW_WIRE_W_LIT(&x->w, "{\"type\":\"object\"");
            if (!empty)
                AGW_WIRE_W_LIT(&x->w, ",");
            else
                rest = AGW_STR_LIT("}");
            agw_wire_w_view(&x->w, rest);
        }
        if (enc_cache_control(x, t->cache_control) != AGW_OK)
            return x->w.e;
        AGW_WIRE_W_LIT(&x->w, "}");
    }
    AGW_WIRE_W_LIT(&x->w, "]");
    return x->w.e;
}

static agw_err enc_tool_choice(enc *x, const agw_ir_request *rq)
{
    agw_ir_tool_choice tc = rq->tool_choice;

    if (tc != AGW_IR_TC_UNSET && !rq->n_tools)
        return enc_fail(x, "tool_choice is set but there are no tools");
    /* Without tools there is nothing to run in parallel: no mark needed. */
    if (tc == AGW_IR_TC_UNSET && (rq->parallel_tool_calls != 0 || !rq->n_tools))
        return AGW_OK;
    switch (tc) {
    case AGW_IR_TC_UNSET:
    case AGW_IR_TC_AUTO:
        AGW_WIRE_W_LIT(&x->w, ",\"tool_choice\":{\"type\":\"auto\"");
        break;
    case AGW_IR_TC_ANY:
        AGW_WIRE_W_LIT(&x->w, ",\"tool_choice\":{\"type\":\"any\"");
        break;
    case AGW_IR_TC_NONE:
        /* ToolChoiceNone has no disable_parallel_tool_use: no calls at all. */
        AGW_WIRE_W_LIT(&x->w, ",\"tool_choice\":{\"type\":\"none\"}");
        return x->w.e;
    case AGW_IR_TC_TOOL:
        if (!rq->tool_choice_name.len)
            return enc_fail(x, "tool_choice names no tool");
        AGW_WIRE_W_LIT(&x->w, ",\"tool_choice\":{\"type\":\"tool\",\"name\":");
        agw_wire_w_str(&x->w, rq->tool_choice_name);
        break;
    default:
        return enc_fail(x, "tool_choice has an unknown value");
    }
    if (rq->parallel_tool_calls == 0)
        AGW_WIRE_W_LIT(&x->w, ",\"disable_parallel_tool_use\":true");
    AGW_WIRE_W_LIT(&x->w, "}");
    return x->w.e;
}

static agw_err enc_sampling(enc *x, const agw_ir_request *rq)
{
    char num[40];

    if (rq->has_temperature) {
        if (!(rq->temperature >= 0.0 && rq->temperature <= 1.0)) {
            agw_wire_fmt_double(rq->temperature, num, sizeof num);
            return enc_fail(x, "temperature %s is outside Anthropic's 0..1 range", num);
        }
        AGW_WIRE_W_LIT(&x->w, ",\"temperature\":");
        agw_wire_w_double(&x->w, rq->temperature);
    }
    if (rq->has_top_p) {
        if (!(rq->top_p >= 0.0 && rq->top_p <= 1.0)) {
            agw_wire_fmt_double(rq->top_p, num, sizeof num);
            return enc_fail(x, "top_p %s is outside the 0..1 range", num);
        }
        if (rq->top_p < 1.0) {
            AGW_WIRE_W_LIT(&x->w, ",\"top_p\":");
            agw_wire_w_double(&x->w, rq->top_p);
        }
    }
    if (rq->top_k >= 0) {
        AGW_WIRE_W_LIT(&x->w, ",\"top_k\":");
        agw_wire_w_int(&x->w, rq->top_k);
    }
    if (rq->n_stop) {
        AGW_WIRE_W_LIT(&x->w, ",\"stop_sequences\":[");
        for (size_t i = 0; i < rq->n_stop; i++) {
            if (i)
                AGW_WIRE_W_LIT(&x->w, ",");
            agw_wire_w_str(&x->w, rq->stop[i]);
        }
        AGW_WIRE_W_LIT(&x->w, "]");
    }
    return x->w.e;
}

agw_err agw_anthropic_encode_request(const agw_ir_request *rq, agw_buf *out, char *err,
                                     size_t errlen)
{
    enc x = { { out, AGW_OK }, err, errlen };
    size_t start = out->len;

    AGW_WIRE_W_LIT(&x.w, "{\"model\":");
    agw_wire_w_str(&x.w, rq->model);
    AGW_WIRE_W_LIT(&x.w, ",\"max_tokens\":");
    agw_wire_w_int(&x.w, rq->max_tokens >= 0 ? rq->max_tokens : AGW_ANTHROPIC_DEFAULT_MAX_TOKENS);
    /* The client's choice: a non-streaming client gets a non-streamed call. */
    if (rq->stream)
        AGW_WIRE_W_LIT(&x.w, ",\"stream\":true");
    if (enc_system(&x, rq) != AGW_OK || enc_messages(&x, rq) != AGW_OK ||
        enc_tools(&x, rq) != AGW_OK || enc_tool_choice(&x, rq) != AGW_OK ||
        enc_sampling(&x, rq) != AGW_OK)
        return agw_wire_rollback(out, start, x.w.e);
    if (rq->user.len) {
        AGW_WIRE_W_LIT(&x.w, ",\"metadata\":{\"user_id\":");
        agw_wire_w_str(&x.w, rq->user);
        AGW_WIRE_W_LIT(&x.w, "}");
    }
    if (rq->thinking.len) {
        if (!agw_wire_object(rq->thinking))
            return agw_wire_rollback(out, start, enc_fail(&x, "thinking is not a JSON object"));
        AGW_WIRE_W_LIT(&x.w, ",\"thinking\":");
        agw_wire_w_view(&x.w, rq->thinking);
    }
    AGW_WIRE_W_LIT(&x.w, "}");
    return agw_wire_rollback(out, start, x.w.e);
}


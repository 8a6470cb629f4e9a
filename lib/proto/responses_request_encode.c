/*
 * responses_request_encode: an IR request -> an OpenAI Responses body for
 * the upstream (agw_responses_encode_request in responses.h).
 *
 * How the IR's turns become input items:
 *  - the system blocks become `instructions`, joined by a blank line;
 *  - a user turn: one function_call_output per tool result (its texts joined
 *    by a blank line, "Error: " first when is_error; an array of input_text
 *    and input_image parts when it holds images), then one user message with
 *    the turn's texts (input_text) and images (input_image, a data URI or
 *    the URL);
 *  - an assistant turn: its texts as output_text parts of assistant
 *    messages, each tool call a function_call item, in their order; thinking
 *    is dropped (a reasoning item must carry an id the upstream issued).
 * Function tools go out with "strict":false: the API defaults to strict
 * schemas, which most clients' schemas do not satisfy.
 */
#include "proto/responses_int.h"
#include "proto/wire.h"

#include "core/json.h"

static void put_image_url(agw_wire_writer *w, const agw_ir_block *blk)
{
    AGW_WIRE_W_LIT(w, "{\"type\":\"input_image\",\"image_url\":\"");
    if (!blk->image_is_url) {
        AGW_WIRE_W_LIT(w, "data:");
        agw_wire_w_esc(w, blk->media_type);
        AGW_WIRE_W_LIT(w, ";base64,");
    }
    agw_wire_w_esc(w, blk->image_data);
    AGW_WIRE_W_LIT(w, "\",\"detail\":\"auto\"}");
}

static void put_input_text(agw_wire_writer *w, agw_str text)
{
    AGW_WIRE_W_LIT(w, "{\"type\":\"input_text\",\"text\":");
    agw_wire_w_str(w, text);
    agw_wire_w_raw(w, "}", 1);
}

/* Nothing the first time, a comma after that. */
static void sep(agw_wire_writer *w, int *first)
{
    if (!*first)
        agw_wire_w_raw(w, ",", 1);
    *first = 0;
}

static void put_tool_result(agw_wire_writer *w, const agw_ir_block *blk)
{
    int images = 0, any_text = 0, pfirst = 1, tfirst = 1;
    for (size_t k = 0; k < blk->n_content; k++) {
        images |= blk->content[k].kind == AGW_IR_IMAGE;
        any_text |= blk->content[k].kind == AGW_IR_TEXT && blk->content[k].text.len;
    }
    AGW_WIRE_W_LIT(w, "{\"type\":\"function_call_output\",\"call_id\":");
    agw_wire_w_str(w, blk->tool_id);
    AGW_WIRE_W_LIT(w, ",\"output\":");
    if (!images) {
        /* The model learns of a failure from the text: there is no flag. */
        agw_wire_w_raw(w, "\"", 1);
        if (blk->is_error)
            agw_wire_w_cstr(w, any_text ? "Error: " : "Error");
        for (size_t k = 0; k < blk->n_content; k++) {
            const agw_ir_block *c = &blk->content[k];
            if (c->kind != AGW_IR_TEXT || !c->text.len)
                continue;
            if (!tfirst)
                AGW_WIRE_W_LIT(w, "\\n\\n");
            tfirst = 0;
            agw_wire_w_esc(w, c->text);
        }
        AGW_WIRE_W_LIT(w, "\"}");
        return;
    }
    agw_wire_w_raw(w, "[", 1);
    if (blk->is_error) {
        sep(w, &pfirst);
        put_input_text(w, AGW_STR_LIT("Error"));
    }
    for (size_t k = 0; k < blk->n_content; k++) {
        const agw_ir_block *c = &blk->content[k];
        if (c->kind == AGW_IR_TEXT && c->text.len) {
            sep(w, &pfirst);
            put_input_text(w, c->text);
        } else if (c->kind == AGW_IR_IMAGE) {
            sep(w, &pfirst);
            put_image_url(w, c);
        }
    }
    AGW_WIRE_W_LIT(w, "]}");
}

/* User turns m[0..n): one function_call_output per tool result, then one
 * user message with all their texts and images. */
static agw_err enc_user(agw_wire_writer *w, const agw_ir_message *m, size_t n, int *first,
                        char *err, size_t errlen)
{
    size_t nparts = 0;
    for (size_t t = 0; t < n; t++)
        for (size_t i = 0; i < m[t].n_blocks; i++) {
            const agw_ir_block *blk = &m[t].blocks[i];
            switch (blk->kind) {
            case AGW_IR_TOOL_RESULT:
                for (size_t k = 0; k < blk->n_content; k++)
                    if (blk->content[k].kind != AGW_IR_TEXT &&
                        blk->content[k].kind != AGW_IR_IMAGE)
                        return agw_wire_fail(err, errlen, "messages: tool results may only hold "
                                                          "text and images for OpenAI models");
                sep(w, first);
                put_tool_result(w, blk);
                break;
            case AGW_IR_TEXT: nparts += blk->text.len != 0; break;
            case AGW_IR_IMAGE: nparts++; break;
            case AGW_IR_TOOL_USE:
                return agw_wire_fail(err, errlen, "messages: tool_use blocks are only allowed in "
                                                  "assistant messages");
            default: break; /* thinking in a user turn carries nothing for the model */
            }
        }
    if (!nparts)
        return AGW_OK;
    int pfirst = 1;
    sep(w, first);
    AGW_WIRE_W_LIT(w, "{\"type\":\"message\",\"role\":\"user\",\"content\":[");
    for (size_t t = 0; t < n; t++)
        for (size_t i = 0; i < m[t].n_blocks; i++) {
            const agw_ir_block *blk = &m[t].blocks[i];
            if (blk->kind == AGW_IR_TEXT && blk->text.len) {
                sep(w, &pfirst);
                put_input_text(w, blk->text);
            } else if (blk->kind == AGW_IR_IMAGE) {
                sep(w, &pfirst);
                put_image_url(w, blk);
            }
        }
    AGW_WIRE_W_LIT(w, "]}");
    return AGW_OK;
}

/* 1 when an assistant turn has nothing the Responses API takes (only
 * thinking, or empty texts). */
static int assistant_empty(const agw_ir_message *m)
{
    for (size_t i = 0; i < m->n_blocks; i++)
        if ((m->blocks[i].kind == AGW_IR_TEXT && m->blocks[i].text.len) ||
            (m->blocks[i].kind != AGW_IR_TEXT && m->blocks[i].kind != AGW_IR_THINKING &&
             m->blocks[i].kind != AGW_IR_REDACTED_THINKING))
            return 0;
    return 1;
}

static agw_err enc_assistant(agw_wire_writer *w, const agw_ir_message *m, int *first, char *err,
                             size_t errlen)
{
    int in_message = 0, pfirst = 1;
    for (size_t i = 0; i < m->n_blocks; i++) {
        const agw_ir_block *blk = &m->blocks[i];
        switch (blk->kind) {
        case AGW_IR_TEXT:
            if (!blk->text.len)
                break;
            if (!in_message) {
                sep(w, first);
                AGW_WIRE_W_LIT(w, "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[");
                in_message = 1;
                pfirst = 1;
            }
            sep(w, &pfirst);
            AGW_WIRE_W_LIT(w, "{\"type\":\"output_text\",\"text\":");
            agw_wire_w_str(w, blk->text);
            agw_wire_w_raw(w, "}", 1);
            break;
        case AGW_IR_TOOL_USE:
            if (in_message)
                AGW_WIRE_W_LIT(w, "]}");
            in_message = 0;
            sep(w, first);
            AGW_WIRE_W_LIT(w, "{\"type\":\"function_call\",\"call_id\":");
            agw_wire_w_str(w, blk->tool_id);
            AGW_WIRE_W_LIT(w, ",\"name\":");
            agw_wire_w_str(w, blk->tool_name);
            AGW_WIRE_W_LIT(w, ",\"arguments\":");
            agw_wire_w_str(w, blk->tool_input.len ? blk->tool_input : AGW_STR_LIT("{}"));
            agw_wire_w_raw(w, "}", 1);
            break;
        case AGW_IR_THINKING:
        case AGW_IR_REDACTED_THINKING:
            break;
        default:
            return agw_wire_fail(err, errlen, "messages: assistant messages may only hold text, "
                                              "thinking and tool_use blocks for OpenAI models");
        }
    }
    if (in_message)
        AGW_WIRE_W_LIT(w, "]}");
    return AGW_OK;
}

static void enc_tools(agw_wire_writer *w, const agw_ir_request *rq)
{
    if (!rq->n_tools)
        return;
    AGW_WIRE_W_LIT(w, ",\"tools\":[");
    for (size_t i = 0; i < rq->n_tools; i++) {
        const agw_ir_tool *t = &rq->tools[i];
        agw_str schema = agw_wire_trim(t->schema);
        if (i)
            agw_wire_w_raw(w, ",", 1);
        AGW_WIRE_W_LIT(w, "{\"type\":\"function\",\"name\":");
        agw_wire_w_str(w, t->name);
        if (t->description.len) {
            AGW_WIRE_W_LIT(w, ",\"description\":");
            agw_wire_w_str(w, t->description);
        }
        AGW_WIRE_W_LIT(w, ",\"parameters\":");
        if (schema.len == 0 || agw_json_is_null(schema))
            schema = AGW_STR_LIT("{\"type\":\"object\",\"properties\":{}}");
        agw_wire_w_view(w, schema);
        AGW_WIRE_W_LIT(w, ",\"strict\":false}");
    }
    agw_wire_w_raw(w, "]", 1);
    switch (rq->tool_choice) {
    case AGW_IR_TC_AUTO: AGW_WIRE_W_LIT(w, ",\"tool_choice\":\"auto\""); break;
    case AGW_IR_TC_ANY: AGW_WIRE_W_LIT(w, ",\"tool_choice\":\"required\""); break;
    case AGW_IR_TC_NONE: AGW_WIRE_W_LIT(w, ",\"tool_choice\":\"none\""); break;
    case AGW_IR_TC_TOOL:
        AGW_WIRE_W_LIT(w, ",\"tool_choice\":{\"type\":\"function\",\"name\":");
        agw_wire_w_str(w, rq->tool_choice_name);
        agw_wire_w_raw(w, "}", 1);
        break;
    case AGW_IR_TC_UNSET: break;
    }
    if (rq->parallel_tool_calls == 1)
        AGW_WIRE_W_LIT(w, ",\"parallel_tool_calls\":true");
    else if (rq->parallel_tool_calls == 0)
        AGW_WIRE_W_LIT(w, ",\"parallel_tool_calls\":false");
}

static agw_err encode_request(const agw_ir_request *rq, agw_buf *b, char *err, size_t errlen)
{
    agw_wire_writer w = AGW_WIRE_WRITER(b);
    int first = 1, any_sys = 0;
    if (rq->top_k >= 0)
        return agw_wire_fail(err, errlen, "top_k: top_k is not supported by OpenAI models");
    AGW_WIRE_W_LIT(&w, "{\"model\":");
    agw_wire_w_str(&w, rq->model);
    for (size_t i = 0; i < rq->n_system; i++)
        any_sys |= rq->system[i].kind == AGW_IR_TEXT && rq->system[i].text.len;
    if (any_sys) {
        int sfirst = 1;
        AGW_WIRE_W_LIT(&w, ",\"instructions\":\"");
        for (size_t i = 0; i < rq->n_system; i++) {
            if (rq->system[i].kind != AGW_IR_TEXT || !rq->system[i].text.len)
                continue;
            if (!sfirst)
                AGW_WIRE_W_LIT(&w, "\\n\\n");
            sfirst = 0;
            agw_wire_w_esc(&w, rq->system[i].text);
        }
        agw_wire_w_raw(&w, "\"", 1);
    }
    AGW_WIRE_W_LIT(&w, ",\"input\":[");
    for (size_t i = 0; i < rq->n_messages;) {
        const agw_ir_message *m = &rq->messages[i];
        if (m->role == AGW_IR_ASSISTANT) {
            AGW_WIRE_TRY(enc_assistant(&w, m, &first, err, errlen));
            i++;
            continue;
        }
        /* User turns with only empty assistant turns between them become one
         * user message, as they would read back. */
        size_t n = 1;
        while (i + n < rq->n_messages && (rq->messages[i + n].role == AGW_IR_USER ||
                                          assistant_empty(&rq->messages[i + n])))
            n++;
        while (n > 1 && rq->messages[i + n - 1].role != AGW_IR_USER)
            n--;
        AGW_WIRE_TRY(enc_user(&w, m, n, &first, err, errlen));
        i += n;
    }
    agw_wire_w_raw(&w, "]", 1);
    enc_tools(&w, rq);
    if (rq->max_tokens >= 0) {
        AGW_WIRE_W_LIT(&w, ",\"max_output_tokens\":");
        agw_wire_w_int(&w, rq->max_tokens);
    }
    /* Reasoning models refuse sampling parameters (as in the chat codec). */
    int reasoning = agw_openai_reasoning_model(rq->model);
    if (!reasoning && rq->has_temperature) {
        AGW_WIRE_W_LIT(&w, ",\"temperature\":");
        agw_wire_w_double(&w, rq->temperature);
    }
    if (!reasoning && rq->has_top_p) {
        AGW_WIRE_W_LIT(&w, ",\"top_p\":");
        agw_wire_w_double(&w, rq->top_p);
    }
    const char *effort = reasoning ? agw_openai_reasoning_effort(rq->thinking) : NULL;
    if (effort) {
        /* The client asked for thinking: it gets the summary to read. */
        AGW_WIRE_W_LIT(&w, ",\"reasoning\":{\"effort\":\"");
        agw_wire_w_cstr(&w, effort);
        AGW_WIRE_W_LIT(&w, "\",\"summary\":\"auto\"}");
    }
    if (rq->user.len) {
        AGW_WIRE_W_LIT(&w, ",\"user\":");
        agw_wire_w_str(&w, rq->user);
    }
    AGW_WIRE_W_LIT(&w, ",\"store\":false");
    if (rq->stream)
        AGW_WIRE_W_LIT(&w, ",\"stream\":true");
    agw_wire_w_raw(&w, "}", 1);
    if (w.e == AGW_EINVAL)
        return agw_wire_fail(err, errlen, "temperature or top_p: not a finite number");
    return w.e;
}

agw_err agw_responses_encode_request(const agw_ir_request *rq, agw_buf *out, char *err,
                                     size_t errlen)
{
    size_t start = out->len;
    if (err && errlen)
        err[0] = '\0';
    agw_err e = encode_request(rq, out, err, errlen);
    agw_wire_rollback(out, start, e);
    if (e == AGW_ETOOBIG && err && errlen && !err[0])
        agw_wire_fail(err, errlen, "the request is too large");
    return e;
}

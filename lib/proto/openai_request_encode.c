/*
 * openai_request_encode: an IR request -> an OpenAI Chat Completions body for
 * the upstream (agw_openai_encode_request in openai.h, which lists how each
 * IR turn becomes messages).
 */
#include "proto/openai_int.h"
#include "proto/wire.h"

#include "core/json.h"

/* Non-empty texts of blocks joined with sep, as the inside of a JSON string. */
static agw_err put_joined(agw_buf *b, const agw_ir_block *v, size_t n, agw_str sep)
{
    int first = 1;

    for (size_t i = 0; i < n; i++) {
        if (v[i].kind != AGW_IR_TEXT || v[i].text.len == 0)
            continue;
        if (!first)
            AGW_WIRE_TRY(agw_buf_append_str(b, sep));
        first = 0;
        AGW_WIRE_TRY(agw_buf_append_json_escaped(b, v[i].text));
    }
    return AGW_OK;
}

static agw_err put_image_part(agw_buf *b, const agw_ir_block *blk)
{
    AGW_WIRE_TRY(AGW_WIRE_PUT(b, "{\"type\":\"image_url\",\"image_url\":{\"url\":\""));
    if (!blk->image_is_url) {
        AGW_WIRE_TRY(AGW_WIRE_PUT(b, "data:"));
        AGW_WIRE_TRY(agw_buf_append_json_escaped(b, blk->media_type));
        AGW_WIRE_TRY(AGW_WIRE_PUT(b, ";base64,"));
    }
    AGW_WIRE_TRY(agw_buf_append_json_escaped(b, blk->image_data));
    return AGW_WIRE_PUT(b, "\"}}");
}

static agw_err put_text_part(agw_buf *b, agw_str text)
{
    AGW_WIRE_TRY(AGW_WIRE_PUT(b, "{\"type\":\"text\",\"text\":"));
    AGW_WIRE_TRY(agw_wire_put_jstr(b, text));
    return agw_buf_append(b, "}", 1);
}

/* One IR user turn: a `tool` message per tool result, then one `user`
 * message with the images the tool results held (a tool message can only
 * carry text) and the turn's own text and images. */
static agw_err enc_user(agw_buf *b, const agw_ir_message *m, int *first, char *err, size_t errlen)
{
    size_t nparts = 0, ntext = 0;
    const agw_ir_block *only_text = NULL;
    int pfirst = 1;

    for (size_t i = 0; i < m->n_blocks; i++) {
        const agw_ir_block *blk = &m->blocks[i];
        if (blk->kind == AGW_IR_TOOL_USE)
            return agw_wire_fail(err, errlen, "messages: tool_use blocks are only allowed in "
                                              "assistant messages");
        if (blk->kind == AGW_IR_TOOL_RESULT) {
            for (size_t k = 0; k < blk->n_content; k++) {
                if (blk->content[k].kind == AGW_IR_IMAGE)
                    nparts++;
                else if (blk->content[k].kind != AGW_IR_TEXT)
                    return agw_wire_fail(err, errlen, "messages: tool results may only hold "
                                                      "text and images for OpenAI models");
            }
            AGW_WIRE_TRY(agw_wire_put_sep(b, first));
            AGW_WIRE_TRY(AGW_WIRE_PUT(b, "{\"role\":\"tool\",\"tool_call_id\":"));
            AGW_WIRE_TRY(agw_wire_put_jstr(b, blk->tool_id));
            AGW_WIRE_TRY(AGW_WIRE_PUT(b, ",\"content\":\""));
            /* OpenAI has no is_error flag: the model learns it from the text. */
            if (blk->is_error) {
                int any = 0;
                for (size_t k = 0; k < blk->n_content; k++)
                    any |= blk->content[k].kind == AGW_IR_TEXT && blk->content[k].text.len;
                AGW_WIRE_TRY(any ? AGW_WIRE_PUT(b, "Error: ") : AGW_WIRE_PUT(b, "Error"));
            }
            AGW_WIRE_TRY(put_joined(b, blk->content, blk->n_content, AGW_STR_LIT("\\n\\n")));
            AGW_WIRE_TRY(AGW_WIRE_PUT(b, "\"}"));
        } else if (blk->kind == AGW_IR_TEXT && blk->text.len) {
            nparts++;
            ntext++;
            only_text = blk;
        } else if (blk->kind == AGW_IR_IMAGE) {
            nparts++;
        }
    }
    if (nparts == 0)
        return AGW_OK;
    AGW_WIRE_TRY(agw_wire_put_sep(b, first));
    AGW_WIRE_TRY(AGW_WIRE_PUT(b, "{\"role\":\"user\",\"content\":"));
    if (nparts == 1 && ntext == 1) {
        AGW_WIRE_TRY(agw_wire_put_jstr(b, only_text->text));
        return agw_buf_append(b, "}", 1);
    }
    AGW_WIRE_TRY(agw_buf_append(b, "[", 1));
    for (size_t i = 0; i < m->n_blocks; i++) {
        const agw_ir_block *blk = &m->blocks[i];
        if (blk->kind != AGW_IR_TOOL_RESULT)
            continue;
        for (size_t k = 0; k < blk->n_content; k++)
            if (blk->content[k].kind == AGW_IR_IMAGE) {
                AGW_WIRE_TRY(agw_wire_put_sep(b, &pfirst));
                AGW_WIRE_TRY(put_image_part(b, &blk->content[k]));
            }
    }
    for (size_t i = 0; i < m->n_blocks; i++) {
        const agw_ir_block *blk = &m->blocks[i];
        if (blk->kind == AGW_IR_TEXT && blk->text.len) {
            AGW_WIRE_TRY(agw_wire_put_sep(b, &pfirst));
            AGW_WIRE_TRY(put_text_part(b, blk->text));
        } else if (blk->kind == AGW_IR_IMAGE) {
            AGW_WIRE_TRY(agw_wire_put_sep(b, &pfirst));
            AGW_WIRE_TRY(put_image_part(b, blk));
        }
    }
    return AGW_WIRE_PUT(b, "]}");
}

agw_err agw_openai_put_tool_call(agw_buf *b, agw_str id, agw_str name, agw_str args)
{
    AGW_WIRE_TRY(AGW_WIRE_PUT(b, "{\"id\":"));
    AGW_WIRE_TRY(agw_wire_put_jstr(b, id));
    AGW_WIRE_TRY(AGW_WIRE_PUT(b, ",\"type\":\"function\",\"function\":{\"name\":"));
    AGW_WIRE_TRY(agw_wire_put_jstr(b, name));
    AGW_WIRE_TRY(AGW_WIRE_PUT(b, ",\"arguments\":"));
    AGW_WIRE_TRY(agw_wire_put_jstr(b, args.len ? args : AGW_STR_LIT("{}")));
    return AGW_WIRE_PUT(b, "}}");
}

/* One IR assistant turn: its texts concatenated as they were streamed (the
 * blocks are pieces of one answer), then its tool calls; thinking dropped. */
static agw_err enc_assistant(agw_buf *b, const agw_ir_message *m, int *first, char *err,
                             size_t errlen)
{
    size_t ntext = 0, ncalls = 0;
    int cfirst = 1;

    for (size_t i = 0; i < m->n_blocks; i++) {
        switch (m->blocks[i].kind) {
        case AGW_IR_TEXT: ntext += m->blocks[i].text.len != 0; break;
        case AGW_IR_TOOL_USE: ncalls++; break;
        case AGW_IR_THINKING: case AGW_IR_REDACTED_THINKING: break;
        default:
            return agw_wire_fail(err, errlen, "messages: assistant messages may only hold text, "
                                              "thinking and tool_use blocks for OpenAI models");
        }
    }
    if (ntext == 0 && ncalls == 0)
        return AGW_OK;
    AGW_WIRE_TRY(agw_wire_put_sep(b, first));
    AGW_WIRE_TRY(AGW_WIRE_PUT(b, "{\"role\":\"assistant\",\"content\":"));
    if (ntext) {
        AGW_WIRE_TRY(agw_buf_append(b, "\"", 1));
        AGW_WIRE_TRY(put_joined(b, m->blocks, m->n_blocks, AGW_STR_LIT("")));
        AGW_WIRE_TRY(agw_buf_append(b, "\"", 1));
    } else {
        AGW_WIRE_TRY(AGW_WIRE_PUT(b, "null"));
    }
    if (ncalls) {
        AGW_WIRE_TRY(AGW_WIRE_PUT(b, ",\"tool_calls\":["));
        for (size_t i = 0; i < m->n_blocks; i++) {
            const agw_ir_block *blk = &m->blocks[i];
            if (blk->kind != AGW_IR_TOOL_USE)
                continue;
            AGW_WIRE_TRY(agw_wire_put_sep(b, &cfirst));
            AGW_WIRE_TRY(
                agw_openai_put_tool_call(b, blk->tool_id, blk->tool_name, blk->tool_input));
        }
        AGW_WIRE_TRY(agw_buf_append(b, "]", 1));
    }
    return agw_buf_append(b, "}", 1);
}

/* o1, o3, o3-mini, o4-mini...: the o-series reasoning models. */
static int o_series(agw_str model)
{
    return model.len >= 2 && model.ptr[0] == 'o' && model.ptr[1] >= '0' && model.ptr[1] <= '9';
}

/* openai_int.h */
int agw_openai_reasoning_model(agw_str model)
{
    if (o_series(model))
        return 1;
    if (!agw_str_starts(model, AGW_STR_LIT("gpt-5")))
        return 0;
    for (size_t i = 0; i + 5 <= model.len; i++)
        if (memcmp(model.ptr + i, "-chat", 5) == 0)
            return 0;
    return 1;
}

/* openai_int.h */
const char *agw_openai_reasoning_effort(agw_str thinking)
{
    agw_str t, budget;
    int64_t n;

    if (thinking.len == 0 || agw_json_type_of(thinking) != AGW_JSON_OBJECT ||
        agw_json_find(thinking, AGW_STR_LIT("type"), &t) != AGW_OK ||
        !agw_json_string_eq(t, AGW_STR_LIT("enabled")))
        return NULL;
    if (agw_json_find(thinking, AGW_STR_LIT("budget_tokens"), &budget) != AGW_OK ||
        agw_json_int64(budget, &n) != AGW_OK)
        return "medium";
    return n < 4096 ? "low" : n < 16384 ? "medium" : "high";
}

/* The tools, and the tool_choice and parallel_tool_calls that only come
 * with them (the decoders refuse them without tools). */
static agw_err enc_tools(const agw_ir_request *rq, agw_buf *b)
{
    if (!rq->n_tools)
        return AGW_OK;
    AGW_WIRE_TRY(AGW_WIRE_PUT(b, ",\"tools\":["));
    for (size_t i = 0; i < rq->n_tools; i++) {
        const agw_ir_tool *t = &rq->tools[i];
        agw_str schema = agw_wire_trim(t->schema);
        if (i)
            AGW_WIRE_TRY(agw_buf_append(b, ",", 1));
        AGW_WIRE_TRY(AGW_WIRE_PUT(b, "{\"type\":\"function\",\"function\":{\"name\":"));
        AGW_WIRE_TRY(agw_wire_put_jstr(b, t->name));
        if (t->description.len) {
            AGW_WIRE_TRY(AGW_WIRE_PUT(b, ",\"description\":"));
            AGW_WIRE_TRY(agw_wire_put_jstr(b, t->description));
        }
        AGW_WIRE_TRY(AGW_WIRE_PUT(b, ",\"parameters\":"));
        if (schema.len == 0 || agw_json_is_null(schema))
            schema = AGW_STR_LIT("{\"type\":\"object\",\"properties\":{}}");
        AGW_WIRE_TRY(agw_buf_append_str(b, schema));
        AGW_WIRE_TRY(AGW_WIRE_PUT(b, "}}"));
    }
    AGW_WIRE_TRY(agw_buf_append(b, "]", 1));
    switch (rq->tool_choice) {
    case AGW_IR_TC_AUTO: AGW_WIRE_TRY(AGW_WIRE_PUT(b, ",\"tool_choice\":\"auto\"")); break;
    case AGW_IR_TC_ANY: AGW_WIRE_TRY(AGW_WIRE_PUT(b, ",\"tool_choice\":\"required\"")); break;
    case AGW_IR_TC_NONE: AGW_WIRE_TRY(AGW_WIRE_PUT(b, ",\"tool_choice\":\"none\"")); break;
    case AGW_IR_TC_TOOL:
        AGW_WIRE_TRY(
            AGW_WIRE_PUT(b, ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":"));
        AGW_WIRE_TRY(agw_wire_put_jstr(b, rq->tool_choice_name));
        AGW_WIRE_TRY(AGW_WIRE_PUT(b, "}}"));
        break;
    case AGW_IR_TC_UNSET: break;
    }
    /* The o-series refuses parallel_tool_calls whatever its value. */
    if (rq->parallel_tool_calls >= 0 && !o_series(rq->model))
        AGW_WIRE_TRY(rq->parallel_tool_calls ? AGW_WIRE_PUT(b, ",\"parallel_tool_calls\":true")
                                             : AGW_WIRE_PUT(b, ",\"parallel_tool_calls\":false"));
    return AGW_OK;
}

/* temperature, top_p and the stop sequences. */
static agw_err enc_free_sampling(const agw_ir_request *rq, agw_buf *b, char *err, size_t errlen)
{
    if (rq->has_temperature) {
        AGW_WIRE_TRY(AGW_WIRE_PUT(b, ",\"temperature\":"));
        if (agw_wire_put_double(b, rq->temperature) != AGW_OK)
            return agw_wire_fail(err, errlen, "temperature: not a finite number");
    }
    if (rq->has_top_p) {
        AGW_WIRE_TRY(AGW_WIRE_PUT(b, ",\"top_p\":"));
        if (agw_wire_put_double(b, rq->top_p) != AGW_OK)
            return agw_wire_fail(err, errlen, "top_p: not a finite number");
    }
    if (rq->n_stop) {
        AGW_WIRE_TRY(AGW_WIRE_PUT(b, ",\"stop\":["));
        for (size_t i = 0; i < rq->n_stop; i++) {
            if (i)
                AGW_WIRE_TRY(agw_buf_append(b, ",", 1));
            AGW_WIRE_TRY(agw_wire_put_jstr(b, rq->stop[i]));
        }
        AGW_WIRE_TRY(agw_buf_append(b, "]", 1));
    }
    return AGW_OK;
}

/* The length and sampling parameters and the stop sequences. Reasoning
 * models answer 400 to a temperature or top_p other than 1 and to any stop
 * sequence, so those are left out for them: the model samples with its own
 * settings and stops where it ends, which beats a call it refuses. */
static agw_err enc_sampling(const agw_ir_request *rq, agw_buf *b, char *err, size_t errlen)
{
    if (rq->max_tokens >= 0)
        AGW_WIRE_TRY(
            agw_buf_appendf(b, ",\"max_completion_tokens\":%lld", (long long)rq->max_tokens));
    if (!agw_openai_reasoning_model(rq->model))
        AGW_WIRE_TRY(enc_free_sampling(rq, b, err, errlen));
    if (rq->user.len) {
        AGW_WIRE_TRY(AGW_WIRE_PUT(b, ",\"user\":"));
        AGW_WIRE_TRY(agw_wire_put_jstr(b, rq->user));
    }
    return AGW_OK;
}

static agw_err encode_request(const agw_ir_request *rq, agw_buf *b, char *err, size_t errlen)
{
    int first = 1, any_sys = 0;

    if (rq->top_k >= 0)
        return agw_wire_fail(err, errlen, "top_k: top_k is not supported by OpenAI models");
    AGW_WIRE_TRY(AGW_WIRE_PUT(b, "{\"model\":"));
    AGW_WIRE_TRY(agw_wire_put_jstr(b, rq->model));
    AGW_WIRE_TRY(AGW_WIRE_PUT(b, ",\"messages\":["));
    for (size_t i = 0; i < rq->n_system; i++)
        any_sys |= rq->system[i].kind == AGW_IR_TEXT && rq->system[i].text.len;
    if (any_sys) {
        /* One string rather than a parts array: every OpenAI-compatible
         * server takes a string system message, not all take parts. */
        first = 0;
        AGW_WIRE_TRY(AGW_WIRE_PUT(b, "{\"role\":\"system\",\"content\":\""));
        AGW_WIRE_TRY(put_joined(b, rq->system, rq->n_system, AGW_STR_LIT("\\n\\n")));
        AGW_WIRE_TRY(AGW_WIRE_PUT(b, "\"}"));
    }
    for (size_t i = 0; i < rq->n_messages; i++) {
        if (rq->messages[i].role == AGW_IR_USER)
            AGW_WIRE_TRY(enc_user(b, &rq->messages[i], &first, err, errlen));
        else
            AGW_WIRE_TRY(enc_assistant(b, &rq->messages[i], &first, err, errlen));
    }
    AGW_WIRE_TRY(agw_buf_append(b, "]", 1));
    AGW_WIRE_TRY(enc_tools(rq, b));
    AGW_WIRE_TRY(enc_sampling(rq, b, err, errlen));
    if (agw_openai_reasoning_model(rq->model)) {
        const char *effort = agw_openai_reasoning_effort(rq->thinking);
        if (effort)
            AGW_WIRE_TRY(agw_buf_appendf(b, ",\"reasoning_effort\":\"%s\"", effort));
    }
    /* The client's choice. A stream always asks for the usage chunk (the
     * gateway counts tokens from it); a non-streamed answer carries its usage
     * anyway, and stream_options without a stream is refused. */
    if (!rq->stream)
        return agw_buf_append(b, "}", 1);
    return AGW_WIRE_PUT(b, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
}

agw_err agw_openai_encode_request(const agw_ir_request *rq, agw_buf *out, char *err, size_t errlen)
{
    size_t start = out->len;
    agw_err e;

    if (err && errlen)
        err[0] = '\0';
    e = encode_request(rq, out, err, errlen);
    /* Leave nothing half-written behind. */
    agw_wire_rollback(out, start, e);
    if (e == AGW_ETOOBIG && err && errlen && !err[0])
        agw_wire_fail(err, errlen, "the request is too large");
    return e;
}

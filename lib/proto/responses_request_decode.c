/*
 * responses_request_decode: an OpenAI Responses request body -> the IR
 * (agw_responses_decode_request in responses.h, which lists the
 * conventions), and the stateless check every Responses request passes.
 *
 * Read as the chat decoder reads: wire.h's collect over json.h spans, so
 * strings keep their NULs and raw values (schemas, arguments) pass through
 * byte for byte.
 */
#include "proto/responses_int.h"
#include "proto/wire.h"

#include "core/json.h"

#include <math.h>
#include <string.h>

/* Bounds on counts, so a hostile body cannot make the decoder allocate
 * without limit. */
#define RSP_MAX_ITEMS 10000
#define RSP_MAX_TOOLS 1000
#define RSP_MAX_PARTS 10000

typedef struct {
    agw_wire_reader rd;
    agw_wire_turns turns;
    agw_ir_block *sys;
    size_t n_sys, cap_sys;
} reqdec;

#define DFAIL AGW_WIRE_DFAIL
#define DFAIL_AT AGW_WIRE_DFAIL_AT
#define MEMBER AGW_WIRE_MEMBER
#define ELEMENT AGW_WIRE_ELEMENT
#define want_str AGW_WIRE_WANT_STR
#define need_str AGW_WIRE_NEED_STR
#define want_bool AGW_WIRE_WANT_BOOL
#define want_num AGW_WIRE_WANT_NUM
#define want_int AGW_WIRE_WANT_INT

/* A new block at the end of the turn of `role`: the last turn when it has
 * that role (consecutive items of one role merge into one turn). */
static agw_ir_block *turn_block(reqdec *c, agw_ir_role role)
{
    agw_wire_turn *m = agw_wire_turn_for(c->rd.arena, &c->turns, role);
    return agw_ir_push_block(c->rd.arena, &m->v, &m->n, &m->cap);
}

/* ---- the stateless check ---- */

agw_err agw_responses_check_stateless(agw_str body, char *err, size_t errlen)
{
    static const char *const keys[] = { "previous_response_id", "conversation", "background",
                                        "store" };
    agw_str v[4];
    if (agw_json_validate(body, AGW_WIRE_MAX_DEPTH, NULL, 0) != AGW_OK ||
        agw_json_type_of(body) != AGW_JSON_OBJECT)
        return AGW_OK;
    agw_json_collect(body, keys, 4, v, NULL);
    if (agw_wire_given(v[0]))
        return agw_wire_fail(err, errlen,
                             "previous_response_id: this gateway is stateless and keeps no "
                             "responses; send the whole conversation in `input` instead");
    if (agw_wire_given(v[1]))
        return agw_wire_fail(err, errlen,
                             "conversation: this gateway is stateless and keeps no "
                             "conversations; send the whole conversation in `input` instead");
    if (agw_json_is_true(v[2]))
        return agw_wire_fail(err, errlen,
                             "background: background responses need the server to keep them, "
                             "and this gateway is stateless; stream the response instead");
    if (agw_json_is_true(v[3]))
        return agw_wire_fail(err, errlen,
                             "store: this gateway is stateless and cannot store responses for "
                             "retrieval; send store:false or leave it out");
    return AGW_OK;
}

/* ---- input ---- */

/* An input_image part (at `at`) -> an IMAGE block: a base64 data URI or an
 * http(s) URL. */
static agw_err parse_image(reqdec *c, agw_str part, const agw_wire_path *at, agw_ir_block *b)
{
    static const char *const keys[] = { "image_url", "file_id", "detail" };
    const agw_wire_path *uat = MEMBER(at, "image_url");
    agw_str v[3], url;
    agw_json_collect(part, keys, 3, v, NULL);
    if (agw_wire_given(v[1]))
        return DFAIL_AT(c, MEMBER(at, "file_id"),
                        ": uploaded files are not available through this gateway; send the "
                        "image as a data URI or an https URL");
    AGW_WIRE_TRY(need_str(c, v[0], uat, &url));
    b->kind = AGW_IR_IMAGE;
    switch (agw_wire_image_url(url, &b->media_type, &b->image_data)) {
    case AGW_WIRE_IMAGE_DATA: return AGW_OK;
    case AGW_WIRE_IMAGE_HTTP: b->image_is_url = 1; return AGW_OK;
    case AGW_WIRE_IMAGE_BAD_DATA:
        return DFAIL_AT(c, uat,
                        ": expected a data URI of the form data:<media type>;base64,<data>");
    default: return DFAIL_AT(c, uat, ": expected an http(s) URL or a base64 data URI");
    }
}

/* Where a message's content goes. */
typedef enum { TO_SYSTEM, TO_USER, TO_ASSISTANT } content_dest;

static agw_ir_block *dest_block(reqdec *c, content_dest d)
{
    if (d == TO_SYSTEM)
        return agw_ir_push_block(c->rd.arena, &c->sys, &c->n_sys, &c->cap_sys);
    return turn_block(c, d == TO_USER ? AGW_IR_USER : AGW_IR_ASSISTANT);
}

/* A message's content (the message at `item`), a string or an array of
 * parts. Empty texts carry nothing and are left out. */
static agw_err parse_content(reqdec *c, agw_str content, const agw_wire_path *item,
                             content_dest d)
{
    static const char *const keys[] = { "type", "text", "refusal" };
    const agw_wire_path *at = MEMBER(item, "content");
    agw_str s;
    if (agw_json_type_of(content) == AGW_JSON_STRING) {
        AGW_WIRE_TRY(want_str(c, content, at, &s));
        if (s.len)
            dest_block(c, d)->text = s;
        return AGW_OK;
    }
    agw_json_iter it;
    if (agw_json_type_of(content) != AGW_JSON_ARRAY || agw_json_iter_init(&it, content) != AGW_OK)
        return DFAIL_AT(c, at, ": expected a string or an array of content parts");
    agw_str part;
    for (size_t j = 0; agw_json_iter_next(&it, NULL, &part); j++) {
        const agw_wire_path *pat = ELEMENT(at, j);
        agw_str v[3], type;
        if (j >= RSP_MAX_PARTS)
            return DFAIL_AT(c, at, ": more than %d parts", RSP_MAX_PARTS);
        if (agw_json_type_of(part) != AGW_JSON_OBJECT)
            return DFAIL_AT(c, pat, ": expected an object");
        agw_json_collect(part, keys, 3, v, NULL);
        AGW_WIRE_TRY(need_str(c, v[0], MEMBER(pat, "type"), &type));
        int text_part = agw_str_eq(type, AGW_STR_LIT("input_text")) ||
                        agw_str_eq(type, AGW_STR_LIT("output_text")) ||
                        agw_str_eq(type, AGW_STR_LIT("text"));
        if (text_part || agw_str_eq(type, AGW_STR_LIT("refusal"))) {
            AGW_WIRE_TRY(need_str(c, text_part ? v[1] : v[2],
                                  MEMBER(pat, text_part ? "text" : "refusal"), &s));
            if (s.len)
                dest_block(c, d)->text = s;
        } else if (agw_str_eq(type, AGW_STR_LIT("input_image"))) {
            if (d != TO_USER)
                return DFAIL_AT(c, pat, ": images are only allowed in user messages");
            AGW_WIRE_TRY(parse_image(c, part, pat, dest_block(c, d)));
        } else {
            char shown[64];
            return DFAIL_AT(c, MEMBER(pat, "type"),
                            ": content type '%s' cannot be converted for this provider "
                            "(input_text, input_image, output_text and refusal can)",
                            agw_wire_show(type, shown, sizeof shown));
        }
    }
    return AGW_OK;
}

static agw_err parse_message(reqdec *c, agw_str item, const agw_wire_path *at)
{
    static const char *const keys[] = { "role", "content" };
    const agw_wire_path *rat = MEMBER(at, "role");
    agw_str v[2], role;
    agw_json_collect(item, keys, 2, v, NULL);
    AGW_WIRE_TRY(need_str(c, v[0], rat, &role));
    content_dest d;
    if (agw_str_eq(role, AGW_STR_LIT("user")))
        d = TO_USER;
    else if (agw_str_eq(role, AGW_STR_LIT("assistant")))
        d = TO_ASSISTANT;
    else if (agw_str_eq(role, AGW_STR_LIT("system")) || agw_str_eq(role, AGW_STR_LIT("developer")))
        d = TO_SYSTEM;
    else
        return DFAIL_AT(c, rat, ": expected user, assistant, system or developer");
    if (!agw_wire_given(v[1]))
        return DFAIL_AT(c, MEMBER(at, "content"), ": required");
    return parse_content(c, v[1], at, d);
}

static agw_err parse_function_call(reqdec *c, agw_str item, const agw_wire_path *at)
{
    static const char *const keys[] = { "call_id", "name", "arguments" };
    const agw_wire_path *aat = MEMBER(at, "arguments");
    agw_str v[3], args;
    agw_json_collect(item, keys, 3, v, NULL);
    agw_ir_block *b = turn_block(c, AGW_IR_ASSISTANT);
    b->kind = AGW_IR_TOOL_USE;
    AGW_WIRE_TRY(need_str(c, v[0], MEMBER(at, "call_id"), &b->tool_id));
    AGW_WIRE_TRY(need_str(c, v[1], MEMBER(at, "name"), &b->tool_name));
    AGW_WIRE_TRY(need_str(c, v[2], aat, &args));
    args = agw_wire_trim(args);
    if (args.len == 0)
        args = AGW_STR_LIT("{}");
    if (!agw_wire_object(args))
        return DFAIL_AT(c, aat, ": expected a JSON object in a string");
    b->tool_input = args;
    return AGW_OK;
}

static agw_err parse_call_output(reqdec *c, agw_str item, const agw_wire_path *at)
{
    static const char *const keys[] = { "call_id", "output" };
    const agw_wire_path *oat = MEMBER(at, "output");
    agw_str v[2], s;
    agw_json_collect(item, keys, 2, v, NULL);
    agw_ir_block *b = turn_block(c, AGW_IR_USER);
    b->kind = AGW_IR_TOOL_RESULT;
    AGW_WIRE_TRY(need_str(c, v[0], MEMBER(at, "call_id"), &b->tool_id));
    if (!agw_wire_given(v[1]))
        return DFAIL_AT(c, oat, ": required");
    if (agw_json_type_of(v[1]) == AGW_JSON_STRING) {
        AGW_WIRE_TRY(want_str(c, v[1], oat, &s));
        if (s.len) {
            b->content = agw_arena_array(c->rd.arena, 1, sizeof *b->content);
            memset(b->content, 0, sizeof *b->content);
            b->content[0].text = s;
            b->n_content = 1;
        }
        return AGW_OK;
    }
    /* An array of input_text / input_image parts. */
    agw_json_iter it;
    agw_str part;
    size_t cap = 0;
    if (agw_json_type_of(v[1]) != AGW_JSON_ARRAY || agw_json_iter_init(&it, v[1]) != AGW_OK)
        return DFAIL_AT(c, oat, ": expected a string or an array of content parts");
    for (size_t j = 0; agw_json_iter_next(&it, NULL, &part); j++) {
        static const char *const pk[] = { "type", "text" };
        const agw_wire_path *pat = ELEMENT(oat, j), *tat = MEMBER(pat, "type");
        agw_str pv[2], type;
        if (j >= RSP_MAX_PARTS)
            return DFAIL_AT(c, oat, ": more than %d parts", RSP_MAX_PARTS);
        if (agw_json_type_of(part) != AGW_JSON_OBJECT)
            return DFAIL_AT(c, pat, ": expected an object");
        agw_json_collect(part, pk, 2, pv, NULL);
        AGW_WIRE_TRY(need_str(c, pv[0], tat, &type));
        if (agw_str_eq(type, AGW_STR_LIT("input_text"))) {
            AGW_WIRE_TRY(need_str(c, pv[1], MEMBER(pat, "text"), &s));
            if (s.len)
                agw_ir_push_block(c->rd.arena, &b->content, &b->n_content, &cap)->text = s;
        } else if (agw_str_eq(type, AGW_STR_LIT("input_image"))) {
            AGW_WIRE_TRY(parse_image(c, part, pat, agw_ir_push_block(c->rd.arena, &b->content,
                                                              &b->n_content, &cap)));
        } else {
            return DFAIL_AT(c, tat, ": expected input_text or input_image");
        }
    }
    return AGW_OK;
}

/* A reasoning item: its summary texts as thinking, encrypted_content as the
 * signature; one without a summary but with encrypted content is redacted
 * thinking; one with neither carries nothing and is dropped. So is one that
 * OpenAI issued (an id not of the "rs_msg_" kind this gateway gives the
 * thinking of Anthropic answers): its encrypted content means nothing to
 * another provider, which would refuse it as a thinking signature. */
static agw_err parse_reasoning(reqdec *c, agw_str item, const agw_wire_path *at)
{
    static const char *const keys[] = { "summary", "encrypted_content", "content", "id" };
    agw_str v[4], sig = { NULL, 0 }, id = { NULL, 0 };
    agw_json_collect(item, keys, 4, v, NULL);
    if (agw_wire_given(v[3])) {
        AGW_WIRE_TRY(want_str(c, v[3], MEMBER(at, "id"), &id));
        if (!agw_str_starts(id, AGW_STR_LIT("rs_msg_")))
            return AGW_OK;
    }
    if (agw_wire_given(v[1]))
        AGW_WIRE_TRY(want_str(c, v[1], MEMBER(at, "encrypted_content"), &sig));
    agw_buf text = AGW_BUF_INIT(c->rd.scratch.max);
    agw_err e = AGW_OK;
    for (int k = 0; k < 3 && !e; k += 2) {
        const agw_wire_path *kat = MEMBER(at, k ? "content" : "summary");
        agw_json_iter it;
        agw_str part;
        if (!agw_wire_given(v[k]))
            continue;
        if (agw_json_type_of(v[k]) != AGW_JSON_ARRAY || agw_json_iter_init(&it, v[k]) != AGW_OK) {
            e = DFAIL_AT(c, kat, ": expected an array");
            break;
        }
        while (!e && agw_json_iter_next(&it, NULL, &part)) {
            agw_str t, s;
            if (agw_json_type_of(part) != AGW_JSON_OBJECT ||
                agw_json_find(part, AGW_STR_LIT("text"), &t) != AGW_OK) {
                e = DFAIL_AT(c, kat, ": expected parts with a text");
                break;
            }
            if ((e = want_str(c, t, kat, &s)) != AGW_OK)
                break;
            if (s.len && text.len)
                e = agw_buf_append(&text, "\n\n", 2);
            if (!e)
                e = agw_buf_append_str(&text, s);
        }
        if (text.len)
            break; /* the summary when there is one, else the raw content */
    }
    if (!e && (text.len || sig.len)) {
        agw_ir_block *b = turn_block(c, AGW_IR_ASSISTANT);
        if (text.len) {
            b->kind = AGW_IR_THINKING;
            b->text = agw_arena_str(c->rd.arena, agw_buf_view(&text));
            b->signature = sig;
        } else {
            b->kind = AGW_IR_REDACTED_THINKING;
            b->text = sig;
        }
    }
    agw_buf_free(&text);
    if (e == AGW_ETOOBIG)
        e = DFAIL_AT(c, at, ": too large");
    return e;
}

static agw_err parse_item(reqdec *c, size_t i, agw_str item)
{
    const agw_wire_path *at = ELEMENT(AGW_WIRE_NAME("input"), i), *tat = MEMBER(at, "type");
    char shown[64];
    agw_str type = { NULL, 0 }, tv;
    if (agw_json_type_of(item) != AGW_JSON_OBJECT)
        return DFAIL_AT(c, at, ": expected an object");
    if (agw_json_find(item, AGW_STR_LIT("type"), &tv) == AGW_OK && agw_wire_given(tv))
        AGW_WIRE_TRY(want_str(c, tv, tat, &type));
    if (!type.ptr || agw_str_eq(type, AGW_STR_LIT("message")))
        return parse_message(c, item, at);
    if (agw_str_eq(type, AGW_STR_LIT("function_call")))
        return parse_function_call(c, item, at);
    if (agw_str_eq(type, AGW_STR_LIT("function_call_output")))
        return parse_call_output(c, item, at);
    if (agw_str_eq(type, AGW_STR_LIT("reasoning")))
        return parse_reasoning(c, item, at);
    if (agw_str_eq(type, AGW_STR_LIT("item_reference")))
        return DFAIL_AT(c, at, ": item_reference needs stored items, and this gateway is "
                               "stateless; send the item itself");
    return DFAIL_AT(c, tat, ": item type '%s' cannot be converted for this provider (message, "
                            "function_call, function_call_output and reasoning can)",
                    agw_wire_show(type, shown, sizeof shown));
}

/* The turns as built. (Tool results may stand after other blocks of a user
 * turn: every encoder puts them first, as its protocol wants.) */
static agw_err parse_input(reqdec *c, agw_str input, agw_ir_request *out)
{
    if (!agw_wire_given(input))
        return DFAIL(c, "input: required");
    if (agw_json_type_of(input) == AGW_JSON_STRING) {
        agw_str s;
        AGW_WIRE_TRY(want_str(c, input, AGW_WIRE_NAME("input"), &s));
        if (s.len)
            turn_block(c, AGW_IR_USER)->text = s;
    } else {
        agw_json_iter it;
        agw_str item;
        size_t i = 0;
        if (agw_json_type_of(input) != AGW_JSON_ARRAY || agw_json_iter_init(&it, input) != AGW_OK)
            return DFAIL(c, "input: expected a string or an array of items");
        for (; agw_json_iter_next(&it, NULL, &item); i++) {
            if (i >= RSP_MAX_ITEMS)
                return DFAIL(c, "input: more than %d items", RSP_MAX_ITEMS);
            AGW_WIRE_TRY(parse_item(c, i, item));
        }
    }
    if (c->turns.n == 0)
        return DFAIL(c, "input: expected at least one message with content");
    agw_wire_turns_finish(c->rd.arena, &c->turns, out);
    return AGW_OK;
}

/* ---- tools ---- */

static agw_err parse_tools(reqdec *c, agw_str tools, agw_ir_request *out)
{
    static const char *const keys[] = { "type", "name", "description", "parameters", "strict" };
    agw_json_iter it;
    agw_str t;
    size_t i = 0, cap = 0;
    if (agw_json_type_of(tools) != AGW_JSON_ARRAY || agw_json_iter_init(&it, tools) != AGW_OK)
        return DFAIL(c, "tools: expected an array");
    for (; agw_json_iter_next(&it, NULL, &t); i++) {
        const agw_wire_path *at = ELEMENT(AGW_WIRE_NAME("tools"), i);
        agw_str v[5], type;
        char shown[64];
        if (i >= RSP_MAX_TOOLS)
            return DFAIL(c, "tools: more than %d tools", RSP_MAX_TOOLS);
        if (agw_json_type_of(t) != AGW_JSON_OBJECT)
            return DFAIL(c, "tools[%zu]: expected an object", i);
        agw_json_collect(t, keys, 5, v, NULL);
        AGW_WIRE_TRY(need_str(c, v[0], MEMBER(at, "type"), &type));
        if (!agw_str_eq(type, AGW_STR_LIT("function")))
            return DFAIL(c, "tools[%zu]: tool type '%s' cannot be served by this provider: only "
                            "OpenAI Responses providers have it, and only function tools "
                            "convert to other protocols",
                         i, agw_wire_show(type, shown, sizeof shown));
        out->tools = agw_wire_grow(c->rd.arena, out->tools, out->n_tools, &cap, sizeof *out->tools);
        agw_ir_tool *tool = &out->tools[out->n_tools++];
        memset(tool, 0, sizeof *tool);
        AGW_WIRE_TRY(need_str(c, v[1], MEMBER(at, "name"), &tool->name));
        if (tool->name.len == 0)
            return DFAIL_AT(c, MEMBER(at, "name"), ": must not be empty");
        if (agw_wire_given(v[2]))
            AGW_WIRE_TRY(want_str(c, v[2], MEMBER(at, "description"), &tool->description));
        if (agw_wire_given(v[3])) {
            if (agw_json_type_of(v[3]) != AGW_JSON_OBJECT)
                return DFAIL(c, "tools[%zu].parameters: expected an object", i);
            tool->schema = v[3];
        }
    }
    return AGW_OK;
}

static agw_err parse_tool_choice(reqdec *c, agw_str v, agw_ir_request *out)
{
    agw_str s, type, name;
    if (agw_json_type_of(v) == AGW_JSON_STRING) {
        AGW_WIRE_TRY(want_str(c, v, AGW_WIRE_NAME("tool_choice"), &s));
        if (!agw_openai_tool_choice_mode(s, &out->tool_choice))
            return DFAIL(c, "tool_choice: expected auto, required, none or an object");
        return AGW_OK;
    }
    if (agw_json_type_of(v) != AGW_JSON_OBJECT ||
        agw_json_find(v, AGW_STR_LIT("type"), &type) != AGW_OK)
        return DFAIL(c, "tool_choice: expected auto, required, none or {\"type\":\"function\","
                        "\"name\":...}");
    if (!agw_json_string_eq(type, AGW_STR_LIT("function")))
        return DFAIL(c, "tool_choice.type: only function tools can be chosen for this provider");
    if (agw_json_find(v, AGW_STR_LIT("name"), &name) != AGW_OK)
        return DFAIL(c, "tool_choice.name: required");
    AGW_WIRE_TRY(want_str(c, name, AGW_WIRE_NAME("tool_choice.name"), &out->tool_choice_name));
    for (size_t i = 0; i < out->n_tools; i++)
        if (agw_str_eq(out->tools[i].name, out->tool_choice_name)) {
            out->tool_choice = AGW_IR_TC_TOOL;
            return AGW_OK;
        }
    return DFAIL(c, "tool_choice.name: no function tool has that name");
}

/* ---- the rest ---- */

/* reasoning.effort -> an Anthropic thinking config (responses.h). */
static agw_err parse_reasoning_cfg(reqdec *c, agw_str v, agw_ir_request *out)
{
    agw_str effort, s;
    if (agw_json_type_of(v) != AGW_JSON_OBJECT)
        return DFAIL(c, "reasoning: expected an object");
    if (agw_json_find(v, AGW_STR_LIT("effort"), &effort) != AGW_OK || !agw_wire_given(effort))
        return AGW_OK;
    AGW_WIRE_TRY(want_str(c, effort, AGW_WIRE_NAME("reasoning.effort"), &s));
    const char *cfg;
    if (agw_str_eq(s, AGW_STR_LIT("minimal")) || agw_str_eq(s, AGW_STR_LIT("none")))
        return AGW_OK;
    if (agw_str_eq(s, AGW_STR_LIT("low")))
        cfg = "{\"type\":\"enabled\",\"budget_tokens\":2048}";
    else if (agw_str_eq(s, AGW_STR_LIT("medium")))
        cfg = "{\"type\":\"enabled\",\"budget_tokens\":8192}";
    else if (agw_str_eq(s, AGW_STR_LIT("high")) || agw_str_eq(s, AGW_STR_LIT("xhigh")))
        cfg = "{\"type\":\"enabled\",\"budget_tokens\":24576}";
    else
        return DFAIL(c, "reasoning.effort: expected none, minimal, low, medium or high");
    out->thinking = agw_str_c(cfg);
    return AGW_OK;
}

static agw_err parse_text(reqdec *c, agw_str v)
{
    agw_str format, type;
    if (agw_json_type_of(v) != AGW_JSON_OBJECT)
        return DFAIL(c, "text: expected an object");
    if (agw_json_find(v, AGW_STR_LIT("format"), &format) != AGW_OK || !agw_wire_given(format))
        return AGW_OK;
    if (agw_json_type_of(format) != AGW_JSON_OBJECT ||
        agw_json_find(format, AGW_STR_LIT("type"), &type) != AGW_OK)
        return DFAIL(c, "text.format.type: required");
    if (agw_json_string_eq(type, AGW_STR_LIT("text")))
        return AGW_OK;
    if (agw_json_string_eq(type, AGW_STR_LIT("json_schema")) ||
        agw_json_string_eq(type, AGW_STR_LIT("json_object")))
        return DFAIL(c, "text.format: structured output (json_schema / json_object) cannot be "
                        "served by this provider: only OpenAI Responses providers have it; "
                        "describe the format in the prompt or use a tool");
    return DFAIL(c, "text.format.type: expected text, json_schema or json_object");
}

enum {
    K_MODEL, K_INPUT, K_INSTRUCTIONS, K_TOOLS, K_TOOL_CHOICE, K_PARALLEL, K_MAX_OUTPUT,
    K_TEMPERATURE, K_TOP_P, K_STREAM, K_USER, K_REASONING, K_TEXT, K_TOP_LOGPROBS, K_PROMPT,
    K_MAX_TOOL_CALLS, K_COUNT
};
static const char *const top_keys[K_COUNT] = {
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
    "max_output_tokens", "temperature", "top_p", "stream", "user", "reasoning", "text",
    "top_logprobs", "prompt", "max_tool_calls",
};

/* The members of a valid body. */
static agw_err decode_members(void *dec, agw_str body, agw_ir_request *out)
{
    reqdec *c = dec;
    agw_str v[K_COUNT], s;
    AGW_WIRE_TRY(agw_responses_check_stateless(body, c->rd.err, c->rd.errlen));
    agw_json_collect(body, top_keys, K_COUNT, v, NULL);

    if (agw_wire_given(v[K_PROMPT]))
        return DFAIL(c, "prompt: stored prompt templates are not available through this "
                        "gateway; send the instructions and input themselves");
    if (agw_wire_given(v[K_TOP_LOGPROBS]))
        return DFAIL(c, "top_logprobs: not supported for this provider");
    if (agw_wire_given(v[K_MAX_TOOL_CALLS]))
        return DFAIL(c, "max_tool_calls: not supported for this provider");
    if (agw_wire_given(v[K_MODEL]))
        AGW_WIRE_TRY(want_str(c, v[K_MODEL], AGW_WIRE_NAME("model"), &out->model));
    if (agw_wire_given(v[K_INSTRUCTIONS])) {
        AGW_WIRE_TRY(want_str(c, v[K_INSTRUCTIONS], AGW_WIRE_NAME("instructions"), &s));
        if (s.len)
            agw_ir_push_block(c->rd.arena, &c->sys, &c->n_sys, &c->cap_sys)->text = s;
    }
    AGW_WIRE_TRY(parse_input(c, v[K_INPUT], out));
    out->system = c->sys;
    out->n_system = c->n_sys;
    if (agw_wire_given(v[K_TOOLS]))
        AGW_WIRE_TRY(parse_tools(c, v[K_TOOLS], out));
    if (agw_wire_given(v[K_TOOL_CHOICE]) && out->n_tools)
        AGW_WIRE_TRY(parse_tool_choice(c, v[K_TOOL_CHOICE], out));
    if (agw_wire_given(v[K_PARALLEL])) {
        int b = 0;
        AGW_WIRE_TRY(want_bool(c, v[K_PARALLEL], AGW_WIRE_NAME("parallel_tool_calls"), &b));
        if (out->n_tools)
            out->parallel_tool_calls = b;
    }
    if (agw_wire_given(v[K_MAX_OUTPUT])) {
        AGW_WIRE_TRY(want_int(c, v[K_MAX_OUTPUT], AGW_WIRE_NAME("max_output_tokens"),
                              &out->max_tokens));
        if (out->max_tokens < 1)
            return DFAIL(c, "max_output_tokens: must be at least 1");
    }
    AGW_WIRE_TRY(agw_wire_read_sampling(&c->rd, v[K_TEMPERATURE], v[K_TOP_P], out));
    if (agw_wire_given(v[K_STREAM]))
        AGW_WIRE_TRY(want_bool(c, v[K_STREAM], AGW_WIRE_NAME("stream"), &out->stream));
    if (agw_wire_given(v[K_USER]))
        AGW_WIRE_TRY(want_str(c, v[K_USER], AGW_WIRE_NAME("user"), &out->user));
    if (agw_wire_given(v[K_REASONING]))
        AGW_WIRE_TRY(parse_reasoning_cfg(c, v[K_REASONING], out));
    if (agw_wire_given(v[K_TEXT]))
        AGW_WIRE_TRY(parse_text(c, v[K_TEXT]));
    return AGW_OK;
}

agw_err agw_responses_decode_request(agw_str body, agw_arena *arena, agw_ir_request *out,
                                     char *err, size_t errlen)
{
    reqdec c;
    memset(&c, 0, sizeof c);
    return agw_wire_decode_request(&c.rd, arena, err, errlen, body, out, decode_members, &c);
}

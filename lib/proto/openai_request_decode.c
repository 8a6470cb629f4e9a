/*
 * openai_request_decode: an OpenAI Chat Completions request body -> the IR
 * (agw_openai_decode_request in openai.h, which lists the choices the API
 * leaves open; the smaller ones are written down where they are made).
 *
 * Every member is read with wire.h's collect over json.h spans, so strings
 * keep their NULs and raw values (tool schemas, arguments) pass through byte
 * for byte; a string without escapes is a view into the body.
 */
#include "proto/openai_int.h"
#include "proto/wire.h"

#include "core/json.h"

#include <math.h>
#include <string.h>

/* Bounds on counts: every input has one, so a hostile body cannot make the
 * decoder allocate without limit. */
#define OAI_MAX_MESSAGES 10000
#define OAI_MAX_TOOLS 1000
#define OAI_MAX_PARTS 10000       /* content parts in one message */
#define OAI_MAX_TOOL_CALLS 1000   /* tool calls in one assistant message */
#define OAI_MAX_STOP 64           /* stop sequences (OpenAI itself allows 4) */

typedef struct {
    agw_wire_reader rd;
    agw_wire_turns turns;
    agw_ir_block *sys;
    size_t n_sys, cap_sys;
} reqdec;

#define DFAIL AGW_WIRE_DFAIL
#define DFAIL_AT AGW_WIRE_DFAIL_AT
#define want_str AGW_WIRE_WANT_STR
#define need_str AGW_WIRE_NEED_STR
#define want_bool AGW_WIRE_WANT_BOOL
#define want_num AGW_WIRE_WANT_NUM
#define want_int AGW_WIRE_WANT_INT

/* Where a content array may be found; decides which part types it accepts. */
typedef enum { CT_SYSTEM, CT_USER, CT_ASSISTANT, CT_TOOL } content_kind;

#define MEMBER AGW_WIRE_MEMBER
#define ELEMENT AGW_WIRE_ELEMENT

/* image_url.url (at `at`) -> an IMAGE block: a base64 data URI
 * (data:<type>;base64,<data>) or an http(s) URL, which Anthropic fetches
 * itself. */
static agw_err parse_image_url(reqdec *c, agw_str url, agw_ir_block *b, const agw_wire_path *at)
{
    b->kind = AGW_IR_IMAGE;
    switch (agw_wire_image_url(url, &b->media_type, &b->image_data)) {
    case AGW_WIRE_IMAGE_DATA: return AGW_OK;
    case AGW_WIRE_IMAGE_HTTP: b->image_is_url = 1; return AGW_OK;
    case AGW_WIRE_IMAGE_BAD_DATA:
        return DFAIL_AT(c, at, ": expected a data URI of the form data:<media type>;base64,<data>");
    default:
        return DFAIL_AT(c, at, ": expected an http(s) URL or a base64 data URI");
    }
}

/* A message's content (string or array of parts) appended to a block vector;
 * `msg` is the message's path. Empty texts carry nothing and are left out. */
static agw_err parse_content(reqdec *c, const agw_wire_path *msg, agw_str content,
                             content_kind ck, agw_ir_block **v, size_t *n, size_t *cap)
{
    static const char *const part_keys[] = { "type", "text", "image_url", "refusal" };
    const agw_wire_path *at = MEMBER(msg, "content");
    agw_json_iter it;
    agw_str part, pv[4], type, s;
    size_t j = 0;

    if (agw_json_type_of(content) == AGW_JSON_STRING) {
        if (agw_wire_string(c->rd.arena, &c->rd.scratch, content, &s) != AGW_OK)
            return DFAIL_AT(c, at, ": expected a string");
        if (s.len)
            agw_ir_push_block(c->rd.arena, v, n, cap)->text = s;
        return AGW_OK;
    }
    if (agw_json_type_of(content) != AGW_JSON_ARRAY)
        return DFAIL_AT(c, at, ": expected a string or an array of content parts");
    if (agw_json_iter_init(&it, content) != AGW_OK)
        return DFAIL_AT(c, at, ": expected an array");
    for (; agw_json_iter_next(&it, NULL, &part); j++) {
        const agw_wire_path *pat = ELEMENT(at, j);
        if (j >= OAI_MAX_PARTS)
            return DFAIL_AT(c, at, ": more than %d parts", OAI_MAX_PARTS);
        if (agw_json_type_of(part) != AGW_JSON_OBJECT)
            return DFAIL_AT(c, pat, ": expected an object");
        agw_json_collect(part, part_keys, 4, pv, NULL);
        AGW_WIRE_TRY(need_str(c, pv[0], MEMBER(pat, "type"), &type));
        if (agw_str_eq(type, AGW_STR_LIT("text"))) {
            AGW_WIRE_TRY(want_str(c, pv[1], MEMBER(pat, "text"), &s));
            if (s.len)
                agw_ir_push_block(c->rd.arena, v, n, cap)->text = s;
        } else if (ck == CT_ASSISTANT && agw_str_eq(type, AGW_STR_LIT("refusal"))) {
            /* A refusal the model gave earlier is what it said: keep it as text. */
            AGW_WIRE_TRY(want_str(c, pv[3], MEMBER(pat, "refusal"), &s));
            if (s.len)
                agw_ir_push_block(c->rd.arena, v, n, cap)->text = s;
        } else if (ck == CT_USER && agw_str_eq(type, AGW_STR_LIT("image_url"))) {
            const agw_wire_path *uat = MEMBER(MEMBER(pat, "image_url"), "url");
            agw_str url;
            if (agw_json_type_of(pv[2]) != AGW_JSON_OBJECT ||
                agw_json_find(pv[2], AGW_STR_LIT("url"), &url) != AGW_OK)
                return DFAIL_AT(c, uat, ": required");
            AGW_WIRE_TRY(want_str(c, url, uat, &s));
            AGW_WIRE_TRY(parse_image_url(c, s, agw_ir_push_block(c->rd.arena, v, n, cap), uat));
        } else if (ck == CT_USER && (agw_str_eq(type, AGW_STR_LIT("input_audio")) ||
                                     agw_str_eq(type, AGW_STR_LIT("file")))) {
            return DFAIL_AT(c, MEMBER(pat, "type"),
                            ": '%s' content parts are not supported for this model",
                            type.ptr[0] == 'f' ? "file" : "input_audio");
        } else {
            return DFAIL_AT(c, MEMBER(pat, "type"),
                            ": unsupported content part type for this message role");
        }
    }
    return AGW_OK;
}

/* Tool call arguments (at `at`): a JSON object in a string; "" means no
 * arguments. */
static agw_err parse_arguments(reqdec *c, agw_str args, const agw_wire_path *at, agw_str *out)
{
    if (args.len == 0) {
        *out = AGW_STR_LIT("{}");
        return AGW_OK;
    }
    if (agw_json_validate(args, AGW_WIRE_MAX_DEPTH, NULL, 0) != AGW_OK)
        return DFAIL_AT(c, at, ": not valid JSON");
    if (agw_json_type_of(args) != AGW_JSON_OBJECT)
        return DFAIL_AT(c, at, ": expected a JSON object");
    *out = args;
    return AGW_OK;
}

static agw_err parse_tool_calls(reqdec *c, const agw_wire_path *msg, agw_str calls,
                                agw_wire_turn *m)
{
    static const char *const call_keys[] = { "id", "type", "function" };
    static const char *const fn_keys[] = { "name", "arguments" };
    const agw_wire_path *at = MEMBER(msg, "tool_calls");
    agw_json_iter it;
    agw_str call, cv[3], fv[2], s;
    size_t j = 0;

    if (agw_json_type_of(calls) != AGW_JSON_ARRAY || agw_json_iter_init(&it, calls) != AGW_OK)
        return DFAIL_AT(c, at, ": expected an array");
    for (; agw_json_iter_next(&it, NULL, &call); j++) {
        const agw_wire_path *cat = ELEMENT(at, j), *fat = MEMBER(cat, "function");
        agw_ir_block *b;
        agw_str id, name, args = { "", 0 };

        if (j >= OAI_MAX_TOOL_CALLS)
            return DFAIL_AT(c, at, ": more than %d calls", OAI_MAX_TOOL_CALLS);
        if (agw_json_type_of(call) != AGW_JSON_OBJECT)
            return DFAIL_AT(c, cat, ": expected an object");
        agw_json_collect(call, call_keys, 3, cv, NULL);
        AGW_WIRE_TRY(need_str(c, cv[0], MEMBER(cat, "id"), &id));
        if (agw_wire_given(cv[1])) {
            AGW_WIRE_TRY(want_str(c, cv[1], MEMBER(cat, "type"), &s));
            if (!agw_str_eq(s, AGW_STR_LIT("function")))
                return DFAIL_AT(c, MEMBER(cat, "type"),
                                ": only 'function' tool calls are supported");
        }
        if (agw_json_type_of(cv[2]) != AGW_JSON_OBJECT)
            return DFAIL_AT(c, fat, ": expected an object");
        agw_json_collect(cv[2], fn_keys, 2, fv, NULL);
        AGW_WIRE_TRY(need_str(c, fv[0], MEMBER(fat, "name"), &name));
        if (agw_wire_given(fv[1]))
            AGW_WIRE_TRY(want_str(c, fv[1], MEMBER(fat, "arguments"), &args));
        AGW_WIRE_TRY(parse_arguments(c, args, MEMBER(fat, "arguments"), &args));
        b = agw_ir_push_block(c->rd.arena, &m->v, &m->n, &m->cap);
        b->kind = AGW_IR_TOOL_USE;
        b->tool_id = id;
        b->tool_name = name;
        b->tool_input = args;
    }
    return AGW_OK;
}

enum { MK_ROLE, MK_CONTENT, MK_TOOL_CALLS, MK_TOOL_CALL_ID, MK_REFUSAL, MK_FUNCTION_CALL,
       MK_AUDIO, MK_COUNT };
static const char *const msg_keys[MK_COUNT] = {
    "role", "content", "tool_calls", "tool_call_id", "refusal", "function_call", "audio",
};

/* An assistant message: its content, refusal and tool calls, in that order. */
static agw_err parse_assistant(reqdec *c, const agw_wire_path *msg, const agw_str *mv)
{
    agw_wire_turn *m;
    agw_str s;
    int fresh;

    if (agw_wire_given(mv[MK_FUNCTION_CALL]))
        return DFAIL_AT(c, MEMBER(msg, "function_call"),
                        ": the legacy function_call is not supported; use tool_calls");
    if (agw_wire_given(mv[MK_AUDIO]))
        return DFAIL_AT(c, MEMBER(msg, "audio"), ": audio is not supported for this model");
    fresh = !(c->turns.n && c->turns.v[c->turns.n - 1].role == AGW_IR_ASSISTANT);
    m = agw_wire_turn_for(c->rd.arena, &c->turns, AGW_IR_ASSISTANT);
    if (agw_wire_given(mv[MK_CONTENT]))
        AGW_WIRE_TRY(parse_content(c, msg, mv[MK_CONTENT], CT_ASSISTANT, &m->v, &m->n, &m->cap));
    if (agw_wire_given(mv[MK_REFUSAL])) {
        AGW_WIRE_TRY(want_str(c, mv[MK_REFUSAL], MEMBER(msg, "refusal"), &s));
        if (s.len)
            agw_ir_push_block(c->rd.arena, &m->v, &m->n, &m->cap)->text = s;
    }
    if (agw_wire_given(mv[MK_TOOL_CALLS]))
        AGW_WIRE_TRY(parse_tool_calls(c, msg, mv[MK_TOOL_CALLS], m));
    if (fresh && m->n == 0)
        c->turns.n--; /* nothing in it: an empty turn is no turn */
    return AGW_OK;
}

/* A tool message: one tool result. Tool results are user content in the IR,
 * so consecutive tool messages and the user message after them become one
 * user turn. */
static agw_err parse_tool(reqdec *c, const agw_wire_path *msg, const agw_str *mv)
{
    agw_ir_block *content = NULL, *b;
    size_t n = 0, cap = 0;
    agw_str id;
    agw_wire_turn *m;

    AGW_WIRE_TRY(need_str(c, mv[MK_TOOL_CALL_ID], MEMBER(msg, "tool_call_id"), &id));
    if (!agw_wire_given(mv[MK_CONTENT]))
        return DFAIL_AT(c, MEMBER(msg, "content"), ": required");
    AGW_WIRE_TRY(parse_content(c, msg, mv[MK_CONTENT], CT_TOOL, &content, &n, &cap));
    m = agw_wire_turn_for(c->rd.arena, &c->turns, AGW_IR_USER);
    b = agw_ir_push_block(c->rd.arena, &m->v, &m->n, &m->cap);
    b->kind = AGW_IR_TOOL_RESULT;
    b->tool_id = id;
    b->content = content;
    b->n_content = n;
    return AGW_OK;
}

static agw_err parse_message(reqdec *c, const agw_wire_path *msg, agw_str m)
{
    const agw_wire_path *rat = MEMBER(msg, "role");
    agw_str mv[MK_COUNT], role;

    if (agw_json_type_of(m) != AGW_JSON_OBJECT)
        return DFAIL_AT(c, msg, ": expected an object");
    agw_json_collect(m, msg_keys, MK_COUNT, mv, NULL);
    AGW_WIRE_TRY(need_str(c, mv[MK_ROLE], rat, &role));

    if (agw_str_eq(role, AGW_STR_LIT("system")) || agw_str_eq(role, AGW_STR_LIT("developer"))) {
        /* The IR has one system prompt: system and developer messages join it
         * in order wherever they stand. */
        if (!agw_wire_given(mv[MK_CONTENT]))
            return DFAIL_AT(c, MEMBER(msg, "content"), ": required");
        return parse_content(c, msg, mv[MK_CONTENT], CT_SYSTEM, &c->sys, &c->n_sys, &c->cap_sys);
    }
    if (agw_str_eq(role, AGW_STR_LIT("user"))) {
        agw_wire_turn *t;
        size_t before;
        int fresh;
        if (!agw_wire_given(mv[MK_CONTENT]))
            return DFAIL_AT(c, MEMBER(msg, "content"), ": required");
        fresh = !(c->turns.n && c->turns.v[c->turns.n - 1].role == AGW_IR_USER);
        t = agw_wire_turn_for(c->rd.arena, &c->turns, AGW_IR_USER);
        before = t->n;
        AGW_WIRE_TRY(parse_content(c, msg, mv[MK_CONTENT], CT_USER, &t->v, &t->n, &t->cap));
        if (fresh && t->n == before)
            c->turns.n--; /* nothing in it: an empty turn is no turn */
        return AGW_OK;
    }
    if (agw_str_eq(role, AGW_STR_LIT("assistant")))
        return parse_assistant(c, msg, mv);
    if (agw_str_eq(role, AGW_STR_LIT("tool")))
        return parse_tool(c, msg, mv);
    if (agw_str_eq(role, AGW_STR_LIT("function")))
        return DFAIL_AT(c, rat, ": the legacy 'function' role is not supported; use 'tool'");
    return DFAIL_AT(c, rat, ": unknown role");
}

static agw_err parse_tools(reqdec *c, agw_str tools, agw_ir_request *out)
{
    static const char *const tool_keys[] = { "type", "function" };
    static const char *const fn_keys[] = { "name", "description", "parameters", "strict" };
    agw_json_iter it;
    agw_str t, tv[2], fv[4], s;
    size_t k = 0, cap = 0;
    int strict = 0;

    if (agw_json_type_of(tools) != AGW_JSON_ARRAY || agw_json_iter_init(&it, tools) != AGW_OK)
        return DFAIL(c, "tools: expected an array");
    for (; agw_json_iter_next(&it, NULL, &t); k++) {
        const agw_wire_path *at = ELEMENT(AGW_WIRE_NAME("tools"), k);
        const agw_wire_path *fat = MEMBER(at, "function");
        agw_ir_tool *tool;
        if (k >= OAI_MAX_TOOLS)
            return DFAIL(c, "tools: more than %d tools", OAI_MAX_TOOLS);
        if (agw_json_type_of(t) != AGW_JSON_OBJECT)
            return DFAIL(c, "tools[%zu]: expected an object", k);
        agw_json_collect(t, tool_keys, 2, tv, NULL);
        AGW_WIRE_TRY(need_str(c, tv[0], MEMBER(at, "type"), &s));
        if (!agw_str_eq(s, AGW_STR_LIT("function")))
            return DFAIL_AT(c, MEMBER(at, "type"), ": only 'function' tools are supported");
        if (agw_json_type_of(tv[1]) != AGW_JSON_OBJECT)
            return DFAIL(c, "tools[%zu].function: expected an object", k);
        agw_json_collect(tv[1], fn_keys, 4, fv, NULL);
        out->tools = agw_wire_grow(c->rd.arena, out->tools, out->n_tools, &cap, sizeof *out->tools);
        tool = &out->tools[out->n_tools++];
        memset(tool, 0, sizeof *tool);
        AGW_WIRE_TRY(need_str(c, fv[0], MEMBER(fat, "name"), &tool->name));
        if (tool->name.len == 0)
            return DFAIL_AT(c, MEMBER(fat, "name"), ": must not be empty");
        if (agw_wire_given(fv[1]))
            AGW_WIRE_TRY(want_str(c, fv[1], MEMBER(fat, "description"), &tool->description));
        if (agw_wire_given(fv[2])) {
            if (agw_json_type_of(fv[2]) != AGW_JSON_OBJECT)
                return DFAIL(c, "tools[%zu].function.parameters: expected an object", k);
            tool->schema = fv[2];
        } else {
            /* OpenAI: "Omitting parameters defines a function with an empty
             * parameter list"; Anthropic needs that spelled out. */
            tool->schema = AGW_STR_LIT("{\"type\":\"object\",\"properties\":{}}");
        }
        /* strict (structured outputs for arguments) has no IR field; the
         * call still works without the guarantee, so it is only type-checked. */
        if (agw_wire_given(fv[3]))
            AGW_WIRE_TRY(want_bool(c, fv[3], MEMBER(fat, "strict"), &strict));
    }
    if (k == 0)
        return DFAIL(c, "tools: expected an array with at least one tool");
    return AGW_OK;
}

int agw_openai_tool_choice_mode(agw_str s, agw_ir_tool_choice *out)
{
    if (agw_str_eq(s, AGW_STR_LIT("auto")))
        *out = AGW_IR_TC_AUTO;
    else if (agw_str_eq(s, AGW_STR_LIT("none")))
        *out = AGW_IR_TC_NONE;
    else if (agw_str_eq(s, AGW_STR_LIT("required")))
        *out = AGW_IR_TC_ANY;
    else
        return 0;
    return 1;
}

static agw_err parse_tool_choice(reqdec *c, agw_str v, agw_ir_request *out)
{
    agw_str s, fn, name;

    if (agw_json_type_of(v) == AGW_JSON_STRING) {
        AGW_WIRE_TRY(want_str(c, v, AGW_WIRE_NAME("tool_choice"), &s));
        if (!agw_openai_tool_choice_mode(s, &out->tool_choice))
            return DFAIL(c, "tool_choice: expected 'auto', 'none', 'required' or a function");
        return AGW_OK;
    }
    if (agw_json_type_of(v) != AGW_JSON_OBJECT)
        return DFAIL(c, "tool_choice: expected a string or an object");
    if (agw_json_find(v, AGW_STR_LIT("type"), &s) != AGW_OK ||
        !agw_json_string_eq(s, AGW_STR_LIT("function")))
        return DFAIL(c, "tool_choice.type: only 'function' is supported");
    if (agw_json_find(v, AGW_STR_LIT("function"), &fn) != AGW_OK ||
        agw_json_type_of(fn) != AGW_JSON_OBJECT)
        return DFAIL(c, "tool_choice.function: expected an object");
    if (agw_json_find(fn, AGW_STR_LIT("name"), &name) != AGW_OK)
        return DFAIL(c, "tool_choice.function.name: required");
    AGW_WIRE_TRY(want_str(c, name, AGW_WIRE_NAME("tool_choice.function.name"),
                          &out->tool_choice_name));
    out->tool_choice = AGW_IR_TC_TOOL;
    return AGW_OK;
}

static agw_err parse_stop(reqdec *c, agw_str v, agw_ir_request *out)
{
    agw_json_iter it;
    agw_str el;
    size_t k = 0;

    if (agw_json_type_of(v) == AGW_JSON_STRING) {
        out->stop = agw_arena_array(c->rd.arena, 1, sizeof *out->stop);
        out->n_stop = 1;
        return want_str(c, v, AGW_WIRE_NAME("stop"), &out->stop[0]);
    }
    if (agw_json_type_of(v) != AGW_JSON_ARRAY || agw_json_iter_init(&it, v) != AGW_OK)
        return DFAIL(c, "stop: expected a string or an array of strings");
    out->stop = agw_arena_array(c->rd.arena, OAI_MAX_STOP, sizeof *out->stop);
    for (; agw_json_iter_next(&it, NULL, &el); k++) {
        if (k >= OAI_MAX_STOP)
            return DFAIL(c, "stop: more than %d sequences", OAI_MAX_STOP);
        AGW_WIRE_TRY(want_str(c, el, ELEMENT(AGW_WIRE_NAME("stop"), k), &out->stop[k]));
    }
    out->n_stop = k;
    return AGW_OK;
}

/* Top-level members, in the order they are looked at. */
enum {
    K_MODEL, K_MESSAGES, K_TOOLS, K_TOOL_CHOICE, K_PARALLEL, K_MAX_COMPLETION, K_MAX_TOKENS,
    K_TEMPERATURE, K_TOP_P, K_STOP, K_STREAM, K_STREAM_OPTIONS, K_USER, K_METADATA,
    K_REASONING_EFFORT, K_N, K_LOGPROBS, K_TOP_LOGPROBS, K_LOGIT_BIAS, K_PRESENCE, K_FREQUENCY,
    K_AUDIO, K_MODALITIES, K_PREDICTION, K_RESPONSE_FORMAT, K_FUNCTIONS, K_FUNCTION_CALL,
    K_SEED, K_STORE, K_SERVICE_TIER, K_COUNT
};
static const char *const top_keys[K_COUNT] = {
    "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "max_completion_tokens",
    "max_tokens", "temperature", "top_p", "stop", "stream", "stream_options", "user", "metadata",
    "reasoning_effort", "n", "logprobs", "top_logprobs", "logit_bias", "presence_penalty",
    "frequency_penalty", "audio", "modalities", "prediction", "response_format", "functions",
    "function_call", "seed", "store", "service_tier",
};

/* Parameters whose effect the IR cannot carry: refused rather than silently
 * dropped, because the answer would not be what the client asked for. */
static agw_err check_unsupported(reqdec *c, const agw_str *v)
{
    agw_json_iter it;
    agw_str el, k;
    int64_t n = 0;
    double x = 0;
    int b = 0;

    if (agw_wire_given(v[K_N])) {
        AGW_WIRE_TRY(want_int(c, v[K_N], AGW_WIRE_NAME("n"), &n));
        if (n != 1)
            return DFAIL(c, "n: only n=1 is supported for this model");
    }
    if (agw_wire_given(v[K_LOGPROBS])) {
        AGW_WIRE_TRY(want_bool(c, v[K_LOGPROBS], AGW_WIRE_NAME("logprobs"), &b));
        if (b)
            return DFAIL(c, "logprobs: not supported for this model");
    }
    if (agw_wire_given(v[K_TOP_LOGPROBS]))
        return DFAIL(c, "top_logprobs: not supported for this model");
    if (agw_wire_given(v[K_LOGIT_BIAS])) {
        if (agw_json_type_of(v[K_LOGIT_BIAS]) != AGW_JSON_OBJECT)
            return DFAIL(c, "logit_bias: expected an object");
        if (agw_json_iter_init(&it, v[K_LOGIT_BIAS]) == AGW_OK && agw_json_iter_next(&it, &k, &el))
            return DFAIL(c, "logit_bias: not supported for this model");
    }
    if (agw_wire_given(v[K_PRESENCE])) {
        AGW_WIRE_TRY(want_num(c, v[K_PRESENCE], AGW_WIRE_NAME("presence_penalty"), &x));
        if (x != 0)
            return DFAIL(c, "presence_penalty: not supported for this model (only 0)");
    }
    if (agw_wire_given(v[K_FREQUENCY])) {
        AGW_WIRE_TRY(want_num(c, v[K_FREQUENCY], AGW_WIRE_NAME("frequency_penalty"), &x));
        if (x != 0)
            return DFAIL(c, "frequency_penalty: not supported for this model (only 0)");
    }
    if (agw_wire_given(v[K_AUDIO]))
        return DFAIL(c, "audio: audio output is not supported for this model");
    if (agw_wire_given(v[K_MODALITIES])) {
        size_t j = 0;
        if (agw_json_type_of(v[K_MODALITIES]) != AGW_JSON_ARRAY ||
            agw_json_iter_init(&it, v[K_MODALITIES]) != AGW_OK)
            return DFAIL(c, "modalities: expected an array of strings");
        for (; agw_json_iter_next(&it, NULL, &el); j++) {
            if (agw_json_type_of(el) != AGW_JSON_STRING)
                return DFAIL(c, "modalities[%zu]: expected a string", j);
            if (agw_json_string_eq(el, AGW_STR_LIT("audio")))
                return DFAIL(c, "modalities: audio output is not supported for this model");
            if (!agw_json_string_eq(el, AGW_STR_LIT("text")))
                return DFAIL(c, "modalities[%zu]: only 'text' is supported", j);
        }
    }
    if (agw_wire_given(v[K_PREDICTION]))
        return DFAIL(c, "prediction: predicted outputs are not supported for this model");
    if (agw_wire_given(v[K_RESPONSE_FORMAT])) {
        agw_str t;
        if (agw_json_type_of(v[K_RESPONSE_FORMAT]) != AGW_JSON_OBJECT)
            return DFAIL(c, "response_format: expected an object");
        if (agw_json_find(v[K_RESPONSE_FORMAT], AGW_STR_LIT("type"), &t) != AGW_OK ||
            agw_json_type_of(t) != AGW_JSON_STRING)
            return DFAIL(c, "response_format.type: required");
        if (agw_json_string_eq(t, AGW_STR_LIT("json_schema")) ||
            agw_json_string_eq(t, AGW_STR_LIT("json_object")))
            return DFAIL(c, "response_format: structured output (json_schema / json_object) is "
                            "not supported for this model: the gateway cannot carry it to the "
                            "upstream; describe the format in the prompt or use a tool");
        if (!agw_json_string_eq(t, AGW_STR_LIT("text")))
            return DFAIL(c, "response_format.type: unknown type");
    }
    if (agw_wire_given(v[K_FUNCTIONS]))
        return DFAIL(c, "functions: the legacy functions parameter is not supported; use tools");
    if (agw_wire_given(v[K_FUNCTION_CALL]))
        return DFAIL(c, "function_call: the legacy function_call parameter is not supported; use "
                        "tool_choice");
    return AGW_OK;
}

/* Accepted and ignored: they change nothing the IR can represent (seed and
 * service_tier are best effort upstream anyway, store and metadata concern
 * OpenAI's own storage); their types are still checked. */
static agw_err check_ignored(reqdec *c, const agw_str *v)
{
    int64_t n = 0;
    int b = 0;
    agw_str s;

    if (agw_wire_given(v[K_SEED]))
        AGW_WIRE_TRY(want_int(c, v[K_SEED], AGW_WIRE_NAME("seed"), &n));
    if (agw_wire_given(v[K_STORE]))
        AGW_WIRE_TRY(want_bool(c, v[K_STORE], AGW_WIRE_NAME("store"), &b));
    if (agw_wire_given(v[K_SERVICE_TIER]))
        AGW_WIRE_TRY(want_str(c, v[K_SERVICE_TIER], AGW_WIRE_NAME("service_tier"), &s));
    if (agw_wire_given(v[K_METADATA]) && agw_json_type_of(v[K_METADATA]) != AGW_JSON_OBJECT)
        return DFAIL(c, "metadata: expected an object");
    return AGW_OK;
}

/* messages -> the IR's messages and system prompt. */
static agw_err parse_messages(reqdec *c, agw_str msgs, agw_ir_request *out)
{
    agw_json_iter it;
    agw_str msg;
    size_t i = 0;

    if (!agw_wire_given(msgs))
        return DFAIL(c, "messages: required");
    if (agw_json_type_of(msgs) != AGW_JSON_ARRAY || agw_json_iter_init(&it, msgs) != AGW_OK)
        return DFAIL(c, "messages: expected an array");
    for (; agw_json_iter_next(&it, NULL, &msg); i++) {
        if (i >= OAI_MAX_MESSAGES)
            return DFAIL(c, "messages: more than %d messages", OAI_MAX_MESSAGES);
        AGW_WIRE_TRY(parse_message(c, ELEMENT(AGW_WIRE_NAME("messages"), i), msg));
    }
    if (i == 0)
        return DFAIL(c, "messages: expected at least one message");
    agw_wire_turns_finish(c->rd.arena, &c->turns, out);
    out->system = c->sys;
    out->n_system = c->n_sys;
    return AGW_OK;
}

/* The length, sampling and streaming parameters. */
static agw_err parse_generation(reqdec *c, const agw_str *v, agw_ir_request *out)
{
    if (agw_wire_given(v[K_MAX_TOKENS])) {
        AGW_WIRE_TRY(want_int(c, v[K_MAX_TOKENS], AGW_WIRE_NAME("max_tokens"), &out->max_tokens));
        if (out->max_tokens < 1)
            return DFAIL(c, "max_tokens: must be at least 1");
    }
    if (agw_wire_given(v[K_MAX_COMPLETION])) {
        AGW_WIRE_TRY(want_int(c, v[K_MAX_COMPLETION], AGW_WIRE_NAME("max_completion_tokens"),
                              &out->max_tokens));
        if (out->max_tokens < 1)
            return DFAIL(c, "max_completion_tokens: must be at least 1");
    }
    AGW_WIRE_TRY(agw_wire_read_sampling(&c->rd, v[K_TEMPERATURE], v[K_TOP_P], out));
    if (agw_wire_given(v[K_STOP]))
        AGW_WIRE_TRY(parse_stop(c, v[K_STOP], out));
    if (agw_wire_given(v[K_STREAM]))
        AGW_WIRE_TRY(want_bool(c, v[K_STREAM], AGW_WIRE_NAME("stream"), &out->stream));
    if (agw_wire_given(v[K_STREAM_OPTIONS])) {
        agw_str iu;
        int b = 0;
        if (agw_json_type_of(v[K_STREAM_OPTIONS]) != AGW_JSON_OBJECT)
            return DFAIL(c, "stream_options: expected an object");
        if (agw_json_find(v[K_STREAM_OPTIONS], AGW_STR_LIT("include_usage"), &iu) == AGW_OK &&
            agw_wire_given(iu))
            AGW_WIRE_TRY(want_bool(c, iu, AGW_WIRE_NAME("stream_options.include_usage"), &b));
        /* Only a stream has a usage chunk. */
        out->stream_usage = b && out->stream;
    }
    return AGW_OK;
}

/* The members of a valid body. */
static agw_err decode_members(void *dec, agw_str body, agw_ir_request *out)
{
    reqdec *c = dec;
    agw_str v[K_COUNT];

    agw_json_collect(body, top_keys, K_COUNT, v, NULL);
    AGW_WIRE_TRY(check_unsupported(c, v));
    AGW_WIRE_TRY(check_ignored(c, v));
    if (agw_wire_given(v[K_REASONING_EFFORT]))
        AGW_WIRE_TRY(want_str(c, v[K_REASONING_EFFORT], AGW_WIRE_NAME("reasoning_effort"),
                              &out->reasoning_effort));

    /* The router may fill in a default model, so it is optional here. */
    if (agw_wire_given(v[K_MODEL]))
        AGW_WIRE_TRY(want_str(c, v[K_MODEL], AGW_WIRE_NAME("model"), &out->model));
    AGW_WIRE_TRY(parse_messages(c, v[K_MESSAGES], out));

    if (agw_wire_given(v[K_TOOLS]))
        AGW_WIRE_TRY(parse_tools(c, v[K_TOOLS], out));
    if (agw_wire_given(v[K_TOOL_CHOICE])) {
        if (out->n_tools == 0)
            return DFAIL(c, "tool_choice: only allowed when tools are specified");
        AGW_WIRE_TRY(parse_tool_choice(c, v[K_TOOL_CHOICE], out));
    }
    if (agw_wire_given(v[K_PARALLEL])) {
        int b = 0;
        AGW_WIRE_TRY(want_bool(c, v[K_PARALLEL], AGW_WIRE_NAME("parallel_tool_calls"), &b));
        if (out->n_tools)
            out->parallel_tool_calls = b;
    }
    AGW_WIRE_TRY(parse_generation(c, v, out));
    if (agw_wire_given(v[K_USER]))
        AGW_WIRE_TRY(want_str(c, v[K_USER], AGW_WIRE_NAME("user"), &out->user));
    return AGW_OK;
}

agw_err agw_openai_decode_request(agw_str body, agw_arena *arena, agw_ir_request *out, char *err,
                                  size_t errlen)
{
    reqdec c;
    memset(&c, 0, sizeof c);
    return agw_wire_decode_request(&c.rd, arena, err, errlen, body, out, decode_members, &c);
}

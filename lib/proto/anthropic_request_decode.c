/*
 * anthropic_request_decode: an Anthropic Messages request body -> the IR
 * (agw_anthropic_decode_request in anthropic.h). The decisions that are not
 * obvious from the contract:
 *
 *  - Everything is read with the json.h scanner, never through a DOM, so a
 *    `\u0000` inside a prompt survives and big integers are not rounded.
 *    A string without escapes is returned as a view into the body (the caller
 *    keeps the body alive anyway, and a multi-megabyte base64 image is then
 *    never copied); a string with escapes is decoded into the arena.
 *  - When a key repeats, the last occurrence wins, as in agw_json_find and in
 *    the upstream's own parser. A JSON null counts as absent for every
 *    optional field, as the SDKs send it.
 *  - Top-level fields. Converted: model, messages, max_tokens, system, tools,
 *    tool_choice, temperature, top_p, top_k, stop_sequences, stream, metadata,
 *    thinking. Ignored because dropping them cannot change the answer, only
 *    its cost or where it runs: service_tier, inference_geo, cache_control
 *    (automatic prompt caching), context_management (server-side trimming of
 *    old tool results), anthropic_version (Vertex/Bedrock body field),
 *    output_config.effort. Rejected because the other protocol cannot do what
 *    they ask: mcp_servers, container, output_format, output_config.format
 *    (and any other output_config member). Any other field is rejected too,
 *    as the Messages API itself rejects unknown fields ("Extra inputs are not
 *    permitted"), rather than silently changing the request's meaning.
 *  - Inside blocks, tools and messages unknown members are ignored (e.g. the
 *    `citations` a client replays with an earlier answer); the block `type`
 *    decides the meaning, and types that cannot be converted are rejected.
 *  - Role rules the API enforces are checked here so the client gets a clear
 *    400: tool_use, thinking and redacted_thinking only in assistant turns,
 *    tool_result and image only in user turns.
 */
#include "proto/anthropic_int.h"
#include "proto/wire.h"

#include "core/json.h"

#include <stdint.h>
#include <string.h>

/* Bounds on counts, so a hostile body cannot make the decoder allocate
 * without limit. */
#define MAX_MESSAGES 10000
#define MAX_TOOLS 1000

/* The decoder's state: what it reads fields with (wire.h), failing through
 * AGW_WIRE_DFAIL and AGW_WIRE_DFAIL_AT. */
typedef struct {
    agw_wire_reader rd;
} dec;

#define MEMBER AGW_WIRE_MEMBER
#define ELEMENT AGW_WIRE_ELEMENT

static int is_bool(agw_str v)
{
    return agw_json_is_true(v) || agw_json_is_false(v);
}

/* The member `name` of the value at `at` (NULL: the body). */
static agw_err get_str(dec *d, agw_str v, const agw_wire_path *at, const char *name, int required,
                       agw_str *out)
{
    if (!v.ptr) {
        if (required)
            return AGW_WIRE_DFAIL_AT(d, MEMBER(at, name), " is required");
        return AGW_OK;
    }
    if (!required && agw_json_is_null(v))
        return AGW_OK;
    if (agw_json_type_of(v) != AGW_JSON_STRING)
        return AGW_WIRE_DFAIL_AT(d, MEMBER(at, name), " must be a string");
    return agw_wire_string(d->rd.arena, &d->rd.scratch, v, out);
}

/* An optional object kept as its raw JSON text. */
static agw_err get_raw_object(dec *d, agw_str v, const agw_wire_path *at, const char *name,
                              agw_str *out)
{
    if (!agw_wire_given(v))
        return AGW_OK;
    if (agw_json_type_of(v) != AGW_JSON_OBJECT)
        return AGW_WIRE_DFAIL_AT(d, MEMBER(at, name), " must be an object");
    *out = v;
    return AGW_OK;
}

static agw_err get_bool(dec *d, agw_str v, const agw_wire_path *at, const char *name, int *out)
{
    if (!agw_wire_given(v))
        return AGW_OK;
    if (!is_bool(v))
        return AGW_WIRE_DFAIL_AT(d, MEMBER(at, name), " must be a boolean");
    *out = agw_json_is_true(v);
    return AGW_OK;
}

/* Elements of an array, counting at most `cap` + 1. */
static size_t array_len(agw_str arr, size_t cap)
{
    agw_json_iter it;
    agw_str v;
    size_t n = 0;

    if (agw_json_iter_init(&it, arr) != AGW_OK)
        return 0;
    while (n <= cap && agw_json_iter_next(&it, NULL, &v))
        n++;
    return n;
}

enum { IN_MESSAGE, IN_TOOL_RESULT, IN_SYSTEM };

enum {
    B_TYPE, B_TEXT, B_CACHE, B_SOURCE, B_ID, B_NAME, B_INPUT, B_TOOL_USE_ID, B_CONTENT,
    B_IS_ERROR, B_THINKING, B_SIGNATURE, B_DATA, B_COUNT
};
static const char *const block_keys[B_COUNT] = {
    "type", "text", "cache_control", "source", "id", "name", "input", "tool_use_id", "content",
    "is_error", "thinking", "signature", "data",
};

static agw_err decode_block(dec *d, agw_str v, const agw_wire_path *path, agw_ir_role role,
                            int where, agw_ir_block *b);

static agw_err decode_image_source(dec *d, agw_str src, const agw_wire_path *block,
                                   agw_ir_block *b)
{
    static const char *const f_keys[] = { "type", "media_type", "data", "url" };
    const agw_wire_path *p = MEMBER(block, "source");
    agw_str f[4];
    char tb[48];
    agw_str type = { NULL, 0 };
    agw_err e;

    if (!src.ptr)
        return AGW_WIRE_DFAIL_AT(d, p, " is required");
    if (agw_json_type_of(src) != AGW_JSON_OBJECT)
        return AGW_WIRE_DFAIL_AT(d, p, " must be an object");
    agw_json_collect(src, f_keys, 4, f, NULL);
    if ((e = get_str(d, f[0], p, "type", 1, &type)) != AGW_OK)
        return e;
    if (agw_str_eq(type, AGW_STR_LIT("base64"))) {
        if ((e = get_str(d, f[1], p, "media_type", 1, &b->media_type)) != AGW_OK)
            return e;
        return get_str(d, f[2], p, "data", 1, &b->image_data);
    }
    if (agw_str_eq(type, AGW_STR_LIT("url"))) {
        b->image_is_url = 1;
        return get_str(d, f[3], p, "url", 1, &b->image_data);
    }
    return AGW_WIRE_DFAIL_AT(d, p, ": image source type %s cannot be converted",
                             agw_wire_show(type, tb, sizeof tb));
}

static agw_err decode_blocks(dec *d, agw_str arr, const agw_wire_path *at, agw_ir_role role,
                             int where, agw_ir_block **out, size_t *n_out)
{
    agw_json_iter it;
    agw_str v;
    size_t cap = 0;
    agw_err e;

    /* The array grows with the blocks decoded, not with a count made first:
     * one pass less over the content, and memory in proportion to valid
     * blocks (decoding stops at the first invalid one). */
    *out = NULL;
    *n_out = 0;
    if (agw_json_iter_init(&it, arr) != AGW_OK)
        return AGW_EINVAL;
    while (agw_json_iter_next(&it, NULL, &v)) {
        const agw_wire_path *bat = ELEMENT(at, *n_out);
        if ((e = decode_block(d, v, bat, role, where,
                              agw_ir_push_block(d->rd.arena, out, n_out, &cap))) != AGW_OK)
            return e;
    }
    return AGW_OK;
}

/* A text block holding a whole string value (message or tool_result content). */
static agw_err string_as_blocks(dec *d, agw_str v, agw_ir_block **out, size_t *n_out)
{
    *out = agw_arena_array(d->rd.arena, 1, sizeof **out);
    *n_out = 1;
    (*out)[0].kind = AGW_IR_TEXT;
    return agw_wire_string(d->rd.arena, &d->rd.scratch, v, &(*out)[0].text);
}

/* A tool_use block; f holds the block's members by B_ index. */
static agw_err decode_tool_use(dec *d, const agw_str *f, const agw_wire_path *path,
                               agw_ir_role role, agw_ir_block *b)
{
    agw_err e;

    b->kind = AGW_IR_TOOL_USE;
    if (role != AGW_IR_ASSISTANT)
        return AGW_WIRE_DFAIL_AT(d, path,
                                 ": tool_use blocks are only allowed in assistant messages");
    if ((e = get_str(d, f[B_ID], path, "id", 1, &b->tool_id)) != AGW_OK ||
        (e = get_str(d, f[B_NAME], path, "name", 1, &b->tool_name)) != AGW_OK)
        return e;
    if (!f[B_INPUT].ptr)
        return AGW_WIRE_DFAIL_AT(d, MEMBER(path, "input"), " is required");
    if (agw_json_type_of(f[B_INPUT]) != AGW_JSON_OBJECT)
        return AGW_WIRE_DFAIL_AT(d, MEMBER(path, "input"), " must be an object");
    b->tool_input = f[B_INPUT];
    return get_raw_object(d, f[B_CACHE], path, "cache_control", &b->cache_control);
}

/* A tool_result block, whose content is a string or text and image blocks. */
static agw_err decode_tool_result(dec *d, const agw_str *f, const agw_wire_path *path,
                                  agw_ir_role role, agw_ir_block *b)
{
    agw_str c = f[B_CONTENT];
    agw_err e;

    b->kind = AGW_IR_TOOL_RESULT;
    if (role != AGW_IR_USER)
        return AGW_WIRE_DFAIL_AT(d, path, ": tool_result blocks are only allowed in user messages");
    if ((e = get_str(d, f[B_TOOL_USE_ID], path, "tool_use_id", 1, &b->tool_id)) != AGW_OK ||
        (e = get_bool(d, f[B_IS_ERROR], path, "is_error", &b->is_error)) != AGW_OK ||
        (e = get_raw_object(d, f[B_CACHE], path, "cache_control", &b->cache_control)) != AGW_OK)
        return e;
    if (!agw_wire_given(c))
        return AGW_OK;
    if (agw_json_type_of(c) == AGW_JSON_STRING)
        return string_as_blocks(d, c, &b->content, &b->n_content);
    if (agw_json_type_of(c) != AGW_JSON_ARRAY)
        return AGW_WIRE_DFAIL_AT(d, MEMBER(path, "content"), " must be a string or an array");
    return decode_blocks(d, c, MEMBER(path, "content"), role, IN_TOOL_RESULT, &b->content,
                         &b->n_content);
}

static agw_err decode_block(dec *d, agw_str v, const agw_wire_path *path, agw_ir_role role,
                            int where, agw_ir_block *b)
{
    agw_str f[B_COUNT];
    agw_str type = { NULL, 0 };
    char tb[48];
    agw_err e;

    if (agw_json_type_of(v) != AGW_JSON_OBJECT)
        return AGW_WIRE_DFAIL_AT(d, path, " must be an object");
    agw_json_collect(v, block_keys, B_COUNT, f, NULL);
    if ((e = get_str(d, f[B_TYPE], path, "type", 1, &type)) != AGW_OK)
        return e;
    if (where == IN_SYSTEM && !agw_str_eq(type, AGW_STR_LIT("text")))
        return AGW_WIRE_DFAIL_AT(d, MEMBER(path, "type"), " must be \"text\" in system");

    if (agw_str_eq(type, AGW_STR_LIT("text"))) {
        b->kind = AGW_IR_TEXT;
        if ((e = get_str(d, f[B_TEXT], path, "text", 1, &b->text)) != AGW_OK)
            return e;
        return get_raw_object(d, f[B_CACHE], path, "cache_control", &b->cache_control);
    }
    if (agw_str_eq(type, AGW_STR_LIT("image"))) {
        b->kind = AGW_IR_IMAGE;
        if (where == IN_MESSAGE && role != AGW_IR_USER)
            return AGW_WIRE_DFAIL_AT(d, path, ": image blocks are only allowed in user messages");
        if ((e = decode_image_source(d, f[B_SOURCE], path, b)) != AGW_OK)
            return e;
        return get_raw_object(d, f[B_CACHE], path, "cache_control", &b->cache_control);
    }
    if (where == IN_TOOL_RESULT)
        return AGW_WIRE_DFAIL_AT(d, path, ": content block type %s cannot be converted",
                                 agw_wire_show(type, tb, sizeof tb));

    if (agw_str_eq(type, AGW_STR_LIT("tool_use")))
        return decode_tool_use(d, f, path, role, b);
    if (agw_str_eq(type, AGW_STR_LIT("tool_result")))
        return decode_tool_result(d, f, path, role, b);
    if (agw_str_eq(type, AGW_STR_LIT("thinking"))) {
        b->kind = AGW_IR_THINKING;
        if (role != AGW_IR_ASSISTANT)
            return AGW_WIRE_DFAIL_AT(d, path,
                                     ": thinking blocks are only allowed in assistant messages");
        if ((e = get_str(d, f[B_THINKING], path, "thinking", 1, &b->text)) != AGW_OK)
            return e;
        return get_str(d, f[B_SIGNATURE], path, "signature", 0, &b->signature);
    }
    if (agw_str_eq(type, AGW_STR_LIT("redacted_thinking"))) {
        b->kind = AGW_IR_REDACTED_THINKING;
        if (role != AGW_IR_ASSISTANT)
            return AGW_WIRE_DFAIL_AT(d, path,
                           ": redacted_thinking blocks are only allowed in assistant messages");
        return get_str(d, f[B_DATA], path, "data", 1, &b->text);
    }
    return AGW_WIRE_DFAIL_AT(d, path, ": content block type %s cannot be converted",
                             agw_wire_show(type, tb, sizeof tb));
}

static agw_err decode_messages(dec *d, agw_str v, agw_ir_request *rq)
{
    agw_json_iter it;
    agw_str m;
    size_t i = 0, cap = 0;
    agw_err e;

    if (!v.ptr)
        return AGW_WIRE_DFAIL(d, "messages is required");
    if (agw_json_type_of(v) != AGW_JSON_ARRAY)
        return AGW_WIRE_DFAIL(d, "messages must be an array");
    if (agw_json_iter_init(&it, v) != AGW_OK)
        return AGW_EINVAL;
    while (agw_json_iter_next(&it, NULL, &m)) {
        static const char *const f_keys[] = { "role", "content" };
        agw_str f[2];
        agw_str role = { NULL, 0 }, c;
        const agw_wire_path *path = ELEMENT(AGW_WIRE_NAME("messages"), i);

        if (i >= MAX_MESSAGES)
            return AGW_WIRE_DFAIL(d, "messages has more than %d entries", MAX_MESSAGES);
        rq->messages = agw_wire_grow(d->rd.arena, rq->messages, i, &cap, sizeof *rq->messages);
        rq->n_messages = i + 1;
        agw_ir_message *msg = &rq->messages[i];

        if (agw_json_type_of(m) != AGW_JSON_OBJECT)
            return AGW_WIRE_DFAIL_AT(d, path, " must be an object");
        agw_json_collect(m, f_keys, 2, f, NULL);
        if ((e = get_str(d, f[0], path, "role", 1, &role)) != AGW_OK)
            return e;
        if (agw_str_eq(role, AGW_STR_LIT("user")))
            msg->role = AGW_IR_USER;
        else if (agw_str_eq(role, AGW_STR_LIT("assistant")))
            msg->role = AGW_IR_ASSISTANT;
        else
            return AGW_WIRE_DFAIL_AT(d, MEMBER(path, "role"), " must be \"user\" or \"assistant\"");
        c = f[1];
        if (!c.ptr)
            return AGW_WIRE_DFAIL_AT(d, MEMBER(path, "content"), " is required");
        if (agw_json_type_of(c) == AGW_JSON_STRING)
            e = string_as_blocks(d, c, &msg->blocks, &msg->n_blocks);
        else if (agw_json_type_of(c) == AGW_JSON_ARRAY)
            e = decode_blocks(d, c, MEMBER(path, "content"), msg->role, IN_MESSAGE,
                              &msg->blocks, &msg->n_blocks);
        else
            return AGW_WIRE_DFAIL_AT(d, MEMBER(path, "content"), " must be a string or an array");
        if (e != AGW_OK)
            return e;
        i++;
    }
    if (i == 0)
        return AGW_WIRE_DFAIL(d, "messages must not be empty");
    return AGW_OK;
}

static agw_err decode_system(dec *d, agw_str v, agw_ir_request *rq)
{
    if (!agw_wire_given(v))
        return AGW_OK;
    if (agw_json_type_of(v) == AGW_JSON_STRING)
        return string_as_blocks(d, v, &rq->system, &rq->n_system);
    if (agw_json_type_of(v) != AGW_JSON_ARRAY)
        return AGW_WIRE_DFAIL(d, "system must be a string or an array");
    return decode_blocks(d, v, AGW_WIRE_NAME("system"), AGW_IR_USER, IN_SYSTEM, &rq->system,
                         &rq->n_system);
}

static agw_err decode_tools(dec *d, agw_str v, agw_ir_request *rq)
{
    agw_json_iter it;
    agw_str t;
    size_t n, i = 0;
    agw_err e;

    if (!agw_wire_given(v))
        return AGW_OK;
    if (agw_json_type_of(v) != AGW_JSON_ARRAY)
        return AGW_WIRE_DFAIL(d, "tools must be an array");
    n = array_len(v, MAX_TOOLS);
    if (n > MAX_TOOLS)
        return AGW_WIRE_DFAIL(d, "tools has more than %d entries", MAX_TOOLS);
    rq->tools = agw_arena_array(d->rd.arena, n ? n : 1, sizeof *rq->tools);
    rq->n_tools = n;
    if (agw_json_iter_init(&it, v) != AGW_OK)
        return AGW_EINVAL;
    while (i < n && agw_json_iter_next(&it, NULL, &t)) {
        static const char *const f_keys[] = { "type",         "name",          "description",
                                              "input_schema", "cache_control", "strict" };
        agw_str f[6];
        agw_ir_tool *tool = &rq->tools[i];
        agw_str type = { NULL, 0 };
        const agw_wire_path *path = ELEMENT(AGW_WIRE_NAME("tools"), i);
        char tb[48];

        if (agw_json_type_of(t) != AGW_JSON_OBJECT)
            return AGW_WIRE_DFAIL_AT(d, path, " must be an object");
        agw_json_collect(t, f_keys, 6, f, NULL);
        if ((e = get_str(d, f[0], path, "type", 0, &type)) != AGW_OK)
            return e;
        /* Server tools (web_search_..., bash_..., text_editor_...) run at
         * Anthropic; no other upstream can execute them. */
        if (type.ptr && !agw_str_eq(type, AGW_STR_LIT("custom")))
            return AGW_WIRE_DFAIL_AT(d, path, ": tool type %s cannot be converted",
                                     agw_wire_show(type, tb, sizeof tb));
        if ((e = get_str(d, f[1], path, "name", 1, &tool->name)) != AGW_OK ||
            (e = get_str(d, f[2], path, "description", 0, &tool->description)) != AGW_OK)
            return e;
        if (!f[3].ptr)
            return AGW_WIRE_DFAIL_AT(d, MEMBER(path, "input_schema"), " is required");
        if (agw_json_type_of(f[3]) != AGW_JSON_OBJECT)
            return AGW_WIRE_DFAIL_AT(d, MEMBER(path, "input_schema"), " must be an object");
        tool->schema = f[3];
        if ((e = get_raw_object(d, f[4], path, "cache_control", &tool->cache_control)) !=
            AGW_OK)
            return e;
        /* strict (guaranteed schema conformance) has no IR field; refusing
         * it is honest, dropping it would weaken what the client relies on. */
        if (agw_wire_given(f[5])) {
            if (!is_bool(f[5]))
                return AGW_WIRE_DFAIL_AT(d, MEMBER(path, "strict"), " must be a boolean");
            if (agw_json_is_true(f[5]))
                return AGW_WIRE_DFAIL_AT(d, MEMBER(path, "strict"), " cannot be converted");
        }
        i++;
    }
    return AGW_OK;
}

static agw_err decode_tool_choice(dec *d, agw_str v, agw_ir_request *rq)
{
    static const char *const f_keys[] = { "type", "name", "disable_parallel_tool_use" };
    const agw_wire_path *at = AGW_WIRE_NAME("tool_choice");
    agw_str f[3];
    agw_str type = { NULL, 0 };
    int disable = -1;
    agw_err e;

    if (!agw_wire_given(v))
        return AGW_OK;
    if (agw_json_type_of(v) != AGW_JSON_OBJECT)
        return AGW_WIRE_DFAIL(d, "tool_choice must be an object");
    agw_json_collect(v, f_keys, 3, f, NULL);
    if ((e = get_str(d, f[0], at, "type", 1, &type)) != AGW_OK ||
        (e = get_bool(d, f[2], at, "disable_parallel_tool_use", &disable)) != AGW_OK)
        return e;
    if (agw_str_eq(type, AGW_STR_LIT("auto")))
        rq->tool_choice = AGW_IR_TC_AUTO;
    else if (agw_str_eq(type, AGW_STR_LIT("any")))
        rq->tool_choice = AGW_IR_TC_ANY;
    else if (agw_str_eq(type, AGW_STR_LIT("none")))
        rq->tool_choice = AGW_IR_TC_NONE;
    else if (agw_str_eq(type, AGW_STR_LIT("tool"))) {
        rq->tool_choice = AGW_IR_TC_TOOL;
        if ((e = get_str(d, f[1], at, "name", 1, &rq->tool_choice_name)) != AGW_OK)
            return e;
    } else
        return AGW_WIRE_DFAIL(d,
                              "tool_choice.type must be \"auto\", \"any\", \"none\" or \"tool\"");
    if (disable >= 0)
        rq->parallel_tool_calls = !disable;
    return AGW_OK;
}

/* A number within 0..1 (temperature, top_p); name for the message. */
static agw_err get_unit(dec *d, agw_str v, const char *name, int *has, double *out)
{
    double x;

    if (!agw_wire_given(v))
        return AGW_OK;
    if (!agw_wire_number(v, &x))
        return AGW_WIRE_DFAIL(d, "%s must be a number", name);
    if (!(x >= 0.0 && x <= 1.0))
        return AGW_WIRE_DFAIL(d, "%s must be between 0 and 1", name);
    *has = 1;
    *out = x;
    return AGW_OK;
}

/* A non-negative integer, -1 when absent. */
static agw_err get_count(dec *d, agw_str v, const char *name, int64_t *out)
{
    agw_err e;

    if (!agw_wire_given(v))
        return AGW_OK;
    if (agw_json_type_of(v) != AGW_JSON_NUMBER || (e = agw_json_int64(v, out)) == AGW_EINVAL)
        return AGW_WIRE_DFAIL(d, "%s must be an integer", name);
    if (e != AGW_OK || *out < 0)
        return AGW_WIRE_DFAIL(d, "%s is out of range", name);
    return AGW_OK;
}

static agw_err decode_stop(dec *d, agw_str v, agw_ir_request *rq)
{
    agw_json_iter it;
    agw_str s;
    size_t n, i = 0;
    agw_err e;

    if (!agw_wire_given(v))
        return AGW_OK;
    if (agw_json_type_of(v) != AGW_JSON_ARRAY)
        return AGW_WIRE_DFAIL(d, "stop_sequences must be an array");
    n = array_len(v, SIZE_MAX - 1);
    rq->stop = agw_arena_array(d->rd.arena, n ? n : 1, sizeof *rq->stop);
    rq->n_stop = n;
    if (agw_json_iter_init(&it, v) != AGW_OK)
        return AGW_EINVAL;
    while (i < n && agw_json_iter_next(&it, NULL, &s)) {
        if (agw_json_type_of(s) != AGW_JSON_STRING)
            return AGW_WIRE_DFAIL(d, "stop_sequences[%zu] must be a string", i);
        if ((e = agw_wire_string(d->rd.arena, &d->rd.scratch, s, &rq->stop[i])) != AGW_OK)
            return e;
        i++;
    }
    return AGW_OK;
}

static agw_err decode_output_config(dec *d, agw_str v)
{
    agw_json_iter it;
    agw_str k, val;
    char kb[48];
    agw_err e;

    if (!agw_wire_given(v))
        return AGW_OK;
    if (agw_json_type_of(v) != AGW_JSON_OBJECT)
        return AGW_WIRE_DFAIL(d, "output_config must be an object");
    if (agw_json_iter_init(&it, v) != AGW_OK)
        return AGW_EINVAL;
    /* effort trades cost for depth; only it can be dropped harmlessly. */
    while (agw_json_iter_next(&it, &k, &val)) {
        if (agw_json_string_eq(k, AGW_STR_LIT("effort")) || agw_json_is_null(val))
            continue;
        agw_buf_reset(&d->rd.scratch);
        if ((e = agw_json_string_decode(k, &d->rd.scratch)) != AGW_OK)
            return e;
        return AGW_WIRE_DFAIL(d, "output_config.%s cannot be converted",
                              agw_wire_show(agw_buf_view(&d->rd.scratch), kb, sizeof kb));
    }
    return AGW_OK;
}

enum {
    T_MODEL, T_MESSAGES, T_MAX_TOKENS, T_SYSTEM, T_TOOLS, T_TOOL_CHOICE, T_TEMPERATURE, T_TOP_P,
    T_TOP_K, T_STOP, T_STREAM, T_METADATA, T_THINKING, T_OUTPUT_CONFIG,
    /* ignored */
    T_SERVICE_TIER, T_INFERENCE_GEO, T_CACHE_CONTROL, T_CONTEXT_MANAGEMENT, T_ANTHROPIC_VERSION,
    /* rejected */
    T_MCP_SERVERS, T_CONTAINER, T_OUTPUT_FORMAT, T_COUNT
};

#define T_FIRST_REJECTED T_MCP_SERVERS

static const char *const top_names[T_COUNT] = {
    "model", "messages", "max_tokens", "system", "tools", "tool_choice", "temperature", "top_p",
    "top_k", "stop_sequences", "stream", "metadata", "thinking", "output_config",
    "service_tier", "inference_geo", "cache_control", "context_management", "anthropic_version",
    "mcp_servers", "container", "output_format",
};

/* The members of a valid body. */
static agw_err decode_members(dec *d, agw_str body, agw_ir_request *rq)
{
    agw_str f[T_COUNT];
    agw_str unknown, meta;
    char kb[48];
    agw_err e;

    agw_json_collect(body, top_names, T_COUNT, f, &unknown);
    if (unknown.ptr) {
        agw_buf_reset(&d->rd.scratch);
        if ((e = agw_json_string_decode(unknown, &d->rd.scratch)) != AGW_OK)
            return e;
        return AGW_WIRE_DFAIL(d, "unknown field %s",
                              agw_wire_show(agw_buf_view(&d->rd.scratch), kb, sizeof kb));
    }
    for (size_t i = T_FIRST_REJECTED; i < T_COUNT; i++)
        if (agw_wire_given(f[i]))
            return AGW_WIRE_DFAIL(d, "%s cannot be converted for a model of another provider",
                                  top_names[i]);

    if ((e = get_str(d, f[T_MODEL], NULL, "model", 1, &rq->model)) != AGW_OK ||
        (e = decode_messages(d, f[T_MESSAGES], rq)) != AGW_OK ||
        (e = get_count(d, f[T_MAX_TOKENS], "max_tokens", &rq->max_tokens)) != AGW_OK ||
        (e = decode_system(d, f[T_SYSTEM], rq)) != AGW_OK ||
        (e = decode_tools(d, f[T_TOOLS], rq)) != AGW_OK ||
        (e = decode_tool_choice(d, f[T_TOOL_CHOICE], rq)) != AGW_OK ||
        (e = get_unit(d, f[T_TEMPERATURE], "temperature", &rq->has_temperature,
                      &rq->temperature)) != AGW_OK ||
        (e = get_unit(d, f[T_TOP_P], "top_p", &rq->has_top_p, &rq->top_p)) != AGW_OK ||
        (e = get_count(d, f[T_TOP_K], "top_k", &rq->top_k)) != AGW_OK ||
        (e = decode_stop(d, f[T_STOP], rq)) != AGW_OK ||
        (e = get_bool(d, f[T_STREAM], NULL, "stream", &rq->stream)) != AGW_OK ||
        (e = get_raw_object(d, f[T_THINKING], NULL, "thinking", &rq->thinking)) != AGW_OK ||
        (e = decode_output_config(d, f[T_OUTPUT_CONFIG])) != AGW_OK)
        return e;

    meta = f[T_METADATA];
    if (agw_wire_given(meta)) {
        static const char *const mf_keys[] = { "user_id" };
        agw_str mf[1];
        if (agw_json_type_of(meta) != AGW_JSON_OBJECT)
            return AGW_WIRE_DFAIL(d, "metadata must be an object");
        agw_json_collect(meta, mf_keys, 1, mf, NULL);
        if ((e = get_str(d, mf[0], AGW_WIRE_NAME("metadata"), "user_id", 0, &rq->user)) != AGW_OK)
            return e;
    }
    return AGW_OK;
}

static agw_err decode_request(dec *d, agw_str body, agw_ir_request *rq)
{
    char why[96];
    agw_err e = agw_json_validate(body, AGW_WIRE_MAX_DEPTH, why, sizeof why);

    if (e == AGW_ETOOBIG)
        return AGW_WIRE_DFAIL(d, "the request body is nested too deeply");
    if (e != AGW_OK)
        return AGW_WIRE_DFAIL(d, "the request body is not valid JSON: %s", why);
    if (agw_json_type_of(body) != AGW_JSON_OBJECT)
        return AGW_WIRE_DFAIL(d, "the request body must be a JSON object");
    agw_json_skips *skips = agw_json_skips_begin(body);
    e = decode_members(d, body, rq);
    agw_json_skips_end(skips);
    return e;
}

agw_err agw_anthropic_decode_request(agw_str body, agw_arena *arena, agw_ir_request *out,
                                     char *err, size_t errlen)
{
    dec d = { { arena, AGW_BUF_INIT(body.len + 16), err, errlen } };
    agw_err e;

    agw_ir_request_init(out);
    e = decode_request(&d, body, out);
    agw_buf_free(&d.rd.scratch);
    if (e != AGW_OK && e != AGW_EINVAL)
        e = agw_wire_fail(err, errlen, "the request could not be decoded (%s)", agw_strerror(e));
    return e;
}


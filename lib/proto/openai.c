/*
 * proto_openai: the OpenAI Chat Completions codec. See proto_openai.h for the
 * contract; the choices the API reference leaves open are written down where
 * they are made.
 *
 * Every JSON read goes through json.h (validate once, then spans), never a
 * DOM: strings keep their NULs and raw values (tool schemas, arguments) pass
 * through byte for byte.
 */
#include "proto/openai.h"

#include "core/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nesting allowed in a request body or a stream chunk: tool schemas nest, but
 * nothing legitimate comes close. */
#define OAI_MAX_DEPTH 128
/* Bounds on counts (DESIGN.md §7: every input has a bound). */
#define OAI_MAX_MESSAGES 10000
#define OAI_MAX_TOOLS 1000
#define OAI_MAX_PARTS 10000       /* content parts in one message */
#define OAI_MAX_TOOL_CALLS 1000   /* tool calls in one assistant message */
#define OAI_MAX_STOP 64           /* stop sequences (OpenAI itself allows 4) */
#define OAI_MAX_STREAM_TOOLS 128  /* tool_calls[].index in a stream */
#define OAI_MAX_ENC_BLOCKS 256    /* IR block indexes the stream encoder maps */

#define TRY(x)                         \
    do {                               \
        agw_err try_e_ = (x);          \
        if (try_e_ != AGW_OK)          \
            return try_e_;             \
    } while (0)

#define PUT(b, lit) agw_buf_append((b), AGW_CONST_STR_LEN(lit))

static agw_err fail(char *err, size_t errlen, const char *fmt, ...) AGW_PRINTF(3, 4);
static agw_err fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return AGW_EINVAL;
}

static agw_str trim_ws(agw_str s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t' || s.ptr[0] == '\r' || s.ptr[0] == '\n')) {
        s.ptr++;
        s.len--;
    }
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t' ||
                     s.ptr[s.len - 1] == '\r' || s.ptr[s.len - 1] == '\n'))
        s.len--;
    return s;
}

/* Present and not JSON null: OpenAI treats an explicit null like an absent
 * optional parameter, and so do we. */
static int given(agw_str v)
{
    return v.ptr != NULL && !agw_json_is_null(v);
}

/* Walks an object once; vals[k] gets the value of the last member named
 * names[k] (last wins, as in json.h), {NULL, 0} when there is none. One pass
 * instead of one agw_json_find per name keeps big bodies linear. */
static void collect(agw_str obj, const char *const *names, size_t n, agw_str *vals)
{
    agw_json_iter it;
    agw_str k, v;

    for (size_t i = 0; i < n; i++)
        vals[i] = (agw_str){ NULL, 0 };
    if (agw_json_iter_init(&it, obj) != AGW_OK)
        return;
    while (agw_json_iter_next(&it, &k, &v))
        for (size_t i = 0; i < n; i++)
            if (agw_json_string_eq(k, agw_str_c(names[i]))) {
                vals[i] = v;
                break;
            }
}

/* A JSON number token as a double; 0 when it is not a finite number. */
static int json_double(agw_str v, double *out)
{
    char tmp[128];
    char *end;

    v = trim_ws(v);
    if (agw_json_type_of(v) != AGW_JSON_NUMBER || v.len >= sizeof tmp)
        return 0;
    memcpy(tmp, v.ptr, v.len);
    tmp[v.len] = '\0';
    *out = strtod(tmp, &end);
    return *end == '\0' && isfinite(*out);
}

/* ======================================================================
 * Request decoding
 * ====================================================================== */

typedef struct {
    agw_ir_role role;
    agw_ir_block *v;
    size_t n, cap;
} msgbuild;

typedef struct {
    agw_arena *arena;
    agw_buf scratch;       /* escape decoding, reused */
    char *err;
    size_t errlen;
    msgbuild *msgs;
    size_t n_msgs, cap_msgs;
    agw_ir_block *sys;
    size_t n_sys, cap_sys;
} reqdec;

#define DFAIL(c, ...) fail((c)->err, (c)->errlen, __VA_ARGS__)

/* Grows an arena array by doubling; the old copy is left to the arena, which
 * bounds the waste at the array's final size. */
static void *grow(agw_arena *a, void *old, size_t n, size_t *cap, size_t elem)
{
    void *p;

    if (n < *cap)
        return old;
    *cap = *cap ? *cap * 2 : 4;
    p = agw_arena_array(a, *cap, elem);
    if (n)
        memcpy(p, old, n * elem);
    return p;
}

static agw_ir_block *push_block(agw_arena *a, agw_ir_block **v, size_t *n, size_t *cap)
{
    agw_ir_block *b;

    *v = grow(a, *v, *n, cap, sizeof **v);
    b = &(*v)[(*n)++];
    memset(b, 0, sizeof *b);
    return b;
}

/* The message blocks of `role` go into: the last one when it has the same
 * role (consecutive same-role messages merge), else a new one. */
static msgbuild *msg_for(reqdec *c, agw_ir_role role)
{
    msgbuild *m;

    if (c->n_msgs && c->msgs[c->n_msgs - 1].role == role)
        return &c->msgs[c->n_msgs - 1];
    c->msgs = grow(c->arena, c->msgs, c->n_msgs, &c->cap_msgs, sizeof *c->msgs);
    m = &c->msgs[c->n_msgs++];
    memset(m, 0, sizeof *m);
    m->role = role;
    return m;
}

/* A string token's bytes: a view into the body when the token has no escape
 * (the same bytes, and the body outlives the IR per ir.h), else decoded with
 * agw_json_string_decode into the arena, NULs included. */
static agw_err dec_str(reqdec *c, agw_str tok, agw_str *out)
{
    agw_err e = agw_json_string_view(tok, &c->scratch, out);
    if (e == AGW_OK && out->ptr != tok.ptr + 1)
        *out = agw_arena_str(c->arena, *out);
    return e;
}

/* The string at `v` or an error naming `what`. */
static agw_err want_str(reqdec *c, agw_str v, const char *what, agw_str *out)
{
    if (agw_json_type_of(v) != AGW_JSON_STRING || dec_str(c, v, out) != AGW_OK)
        return DFAIL(c, "%s: expected a string", what);
    return AGW_OK;
}

static agw_err want_bool(reqdec *c, agw_str v, const char *what, int *out)
{
    if (agw_json_is_true(v))
        *out = 1;
    else if (agw_json_is_false(v))
        *out = 0;
    else
        return DFAIL(c, "%s: expected a boolean", what);
    return AGW_OK;
}

static agw_err want_num(reqdec *c, agw_str v, const char *what, double *out)
{
    if (!json_double(v, out))
        return DFAIL(c, "%s: expected a number", what);
    return AGW_OK;
}

static agw_err want_int(reqdec *c, agw_str v, const char *what, int64_t *out)
{
    if (agw_json_type_of(v) != AGW_JSON_NUMBER || agw_json_int64(v, out) != AGW_OK)
        return DFAIL(c, "%s: expected an integer", what);
    return AGW_OK;
}

/* Where a content array may be found; decides which part types it accepts. */
typedef enum { CT_SYSTEM, CT_USER, CT_ASSISTANT, CT_TOOL } content_kind;

/* image_url.url -> an IMAGE block: a base64 data URI (data:<type>;base64,<data>)
 * or an http(s) URL, which Anthropic fetches itself. */
static agw_err parse_image_url(reqdec *c, agw_str url, agw_ir_block *b, size_t i, size_t j)
{
    static const agw_str b64 = AGW_STR_LIT(";base64");

    b->kind = AGW_IR_IMAGE;
    if (url.len >= 5 && agw_str_eq_nocase((agw_str){ url.ptr, 5 }, AGW_STR_LIT("data:"))) {
        const char *comma = memchr(url.ptr, ',', url.len);
        agw_str head, mt;
        const char *semi;

        if (!comma)
            goto bad_data;
        head = (agw_str){ url.ptr + 5, (size_t)(comma - url.ptr) - 5 };
        if (head.len < b64.len ||
            !agw_str_eq_nocase((agw_str){ head.ptr + head.len - b64.len, b64.len }, b64))
            goto bad_data;
        semi = memchr(head.ptr, ';', head.len);
        mt = (agw_str){ head.ptr, (size_t)(semi - head.ptr) };
        b->image_data = (agw_str){ comma + 1, url.len - (size_t)(comma + 1 - url.ptr) };
        if (mt.len == 0 || b->image_data.len == 0)
            goto bad_data;
        b->media_type = mt;
        return AGW_OK;
    }
    if ((url.len > 7 && agw_str_eq_nocase((agw_str){ url.ptr, 7 }, AGW_STR_LIT("http://"))) ||
        (url.len > 8 && agw_str_eq_nocase((agw_str){ url.ptr, 8 }, AGW_STR_LIT("https://")))) {
        b->image_is_url = 1;
        b->image_data = url;
        return AGW_OK;
    }
    return DFAIL(c, "messages[%zu].content[%zu].image_url.url: expected an http(s) URL or a "
                    "base64 data URI", i, j);
bad_data:
    return DFAIL(c, "messages[%zu].content[%zu].image_url.url: expected a data URI of the form "
                    "data:<media type>;base64,<data>", i, j);
}

/* A message's content (string or array of parts) appended to a block vector.
 * Empty texts carry nothing and are left out. */
static agw_err parse_content(reqdec *c, size_t i, agw_str content, content_kind ck,
                             agw_ir_block **v, size_t *n, size_t *cap)
{
    static const char *const part_keys[] = { "type", "text", "image_url", "refusal" };
    agw_json_iter it;
    agw_str part, pv[4], type, s;
    size_t j = 0;
    char what[96];

    if (agw_json_type_of(content) == AGW_JSON_STRING) {
        snprintf(what, sizeof what, "messages[%zu].content", i);
        TRY(want_str(c, content, what, &s));
        if (s.len)
            push_block(c->arena, v, n, cap)->text = s;
        return AGW_OK;
    }
    if (agw_json_type_of(content) != AGW_JSON_ARRAY)
        return DFAIL(c, "messages[%zu].content: expected a string or an array of content parts", i);
    if (agw_json_iter_init(&it, content) != AGW_OK)
        return DFAIL(c, "messages[%zu].content: expected an array", i);
    for (; agw_json_iter_next(&it, NULL, &part); j++) {
        if (j >= OAI_MAX_PARTS)
            return DFAIL(c, "messages[%zu].content: more than %d parts", i, OAI_MAX_PARTS);
        if (agw_json_type_of(part) != AGW_JSON_OBJECT)
            return DFAIL(c, "messages[%zu].content[%zu]: expected an object", i, j);
        collect(part, part_keys, 4, pv);
        snprintf(what, sizeof what, "messages[%zu].content[%zu].type", i, j);
        if (!given(pv[0]))
            return DFAIL(c, "%s: required", what);
        TRY(want_str(c, pv[0], what, &type));
        if (agw_str_eq(type, AGW_STR_LIT("text"))) {
            snprintf(what, sizeof what, "messages[%zu].content[%zu].text", i, j);
            TRY(want_str(c, pv[1], what, &s));
            if (s.len)
                push_block(c->arena, v, n, cap)->text = s;
        } else if (ck == CT_ASSISTANT && agw_str_eq(type, AGW_STR_LIT("refusal"))) {
            /* A refusal the model gave earlier is what it said: keep it as text. */
            snprintf(what, sizeof what, "messages[%zu].content[%zu].refusal", i, j);
            TRY(want_str(c, pv[3], what, &s));
            if (s.len)
                push_block(c->arena, v, n, cap)->text = s;
        } else if (ck == CT_USER && agw_str_eq(type, AGW_STR_LIT("image_url"))) {
            agw_str url;
            snprintf(what, sizeof what, "messages[%zu].content[%zu].image_url.url", i, j);
            if (agw_json_type_of(pv[2]) != AGW_JSON_OBJECT ||
                agw_json_find(pv[2], AGW_STR_LIT("url"), &url) != AGW_OK)
                return DFAIL(c, "%s: required", what);
            TRY(want_str(c, url, what, &s));
            TRY(parse_image_url(c, s, push_block(c->arena, v, n, cap), i, j));
        } else if (ck == CT_USER && (agw_str_eq(type, AGW_STR_LIT("input_audio")) ||
                                     agw_str_eq(type, AGW_STR_LIT("file")))) {
            return DFAIL(c, "%s: '%s' content parts are not supported for this model", what,
                         type.ptr[0] == 'f' ? "file" : "input_audio");
        } else {
            return DFAIL(c, "%s: unsupported content part type for this message role", what);
        }
    }
    return AGW_OK;
}

/* Tool call arguments: a JSON object in a string; "" means no arguments. */
static agw_err parse_arguments(reqdec *c, agw_str args, size_t i, size_t j, agw_str *out)
{
    if (args.len == 0) {
        *out = AGW_STR_LIT("{}");
        return AGW_OK;
    }
    if (agw_json_validate(args, OAI_MAX_DEPTH, NULL, 0) != AGW_OK)
        return DFAIL(c, "messages[%zu].tool_calls[%zu].function.arguments: not valid JSON", i, j);
    if (agw_json_type_of(args) != AGW_JSON_OBJECT)
        return DFAIL(c, "messages[%zu].tool_calls[%zu].function.arguments: expected a JSON object",
                     i, j);
    *out = args;
    return AGW_OK;
}

static agw_err parse_tool_calls(reqdec *c, size_t i, agw_str calls, msgbuild *m)
{
    static const char *const call_keys[] = { "id", "type", "function" };
    static const char *const fn_keys[] = { "name", "arguments" };
    agw_json_iter it;
    agw_str call, cv[3], fv[2], s;
    size_t j = 0;
    char what[96];

    if (agw_json_type_of(calls) != AGW_JSON_ARRAY || agw_json_iter_init(&it, calls) != AGW_OK)
        return DFAIL(c, "messages[%zu].tool_calls: expected an array", i);
    for (; agw_json_iter_next(&it, NULL, &call); j++) {
        agw_ir_block *b;
        agw_str id, name, args = { "", 0 };

        if (j >= OAI_MAX_TOOL_CALLS)
            return DFAIL(c, "messages[%zu].tool_calls: more than %d calls", i, OAI_MAX_TOOL_CALLS);
        if (agw_json_type_of(call) != AGW_JSON_OBJECT)
            return DFAIL(c, "messages[%zu].tool_calls[%zu]: expected an object", i, j);
        collect(call, call_keys, 3, cv);
        snprintf(what, sizeof what, "messages[%zu].tool_calls[%zu].id", i, j);
        if (!given(cv[0]))
            return DFAIL(c, "%s: required", what);
        TRY(want_str(c, cv[0], what, &id));
        if (given(cv[1])) {
            snprintf(what, sizeof what, "messages[%zu].tool_calls[%zu].type", i, j);
            TRY(want_str(c, cv[1], what, &s));
            if (!agw_str_eq(s, AGW_STR_LIT("function")))
                return DFAIL(c, "%s: only 'function' tool calls are supported", what);
        }
        if (agw_json_type_of(cv[2]) != AGW_JSON_OBJECT)
            return DFAIL(c, "messages[%zu].tool_calls[%zu].function: expected an object", i, j);
        collect(cv[2], fn_keys, 2, fv);
        snprintf(what, sizeof what, "messages[%zu].tool_calls[%zu].function.name", i, j);
        if (!given(fv[0]))
            return DFAIL(c, "%s: required", what);
        TRY(want_str(c, fv[0], what, &name));
        if (given(fv[1])) {
            snprintf(what, sizeof what, "messages[%zu].tool_calls[%zu].function.arguments", i, j);
            TRY(want_str(c, fv[1], what, &args));
        }
        TRY(parse_arguments(c, args, i, j, &args));
        b = push_block(c->arena, &m->v, &m->n, &m->cap);
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

static agw_err parse_message(reqdec *c, size_t i, agw_str msg)
{
    agw_str mv[MK_COUNT], role;
    char what[96];

    if (agw_json_type_of(msg) != AGW_JSON_OBJECT)
        return DFAIL(c, "messages[%zu]: expected an object", i);
    collect(msg, msg_keys, MK_COUNT, mv);
    snprintf(what, sizeof what, "messages[%zu].role", i);
    if (!given(mv[MK_ROLE]))
        return DFAIL(c, "%s: required", what);
    TRY(want_str(c, mv[MK_ROLE], what, &role));

    if (agw_str_eq(role, AGW_STR_LIT("system")) || agw_str_eq(role, AGW_STR_LIT("developer"))) {
        /* The IR has one system prompt: system and developer messages join it
         * in order wherever they stand. */
        if (!given(mv[MK_CONTENT]))
            return DFAIL(c, "messages[%zu].content: required", i);
        return parse_content(c, i, mv[MK_CONTENT], CT_SYSTEM, &c->sys, &c->n_sys, &c->cap_sys);
    }
    if (agw_str_eq(role, AGW_STR_LIT("user"))) {
        msgbuild *m;
        size_t before;
        int fresh;
        if (!given(mv[MK_CONTENT]))
            return DFAIL(c, "messages[%zu].content: required", i);
        fresh = !(c->n_msgs && c->msgs[c->n_msgs - 1].role == AGW_IR_USER);
        m = msg_for(c, AGW_IR_USER);
        before = m->n;
        TRY(parse_content(c, i, mv[MK_CONTENT], CT_USER, &m->v, &m->n, &m->cap));
        if (fresh && m->n == before)
            c->n_msgs--; /* nothing in it: an empty turn is no turn */
        return AGW_OK;
    }
    if (agw_str_eq(role, AGW_STR_LIT("assistant"))) {
        msgbuild *m;
        agw_str s;
        int fresh;
        if (given(mv[MK_FUNCTION_CALL]))
            return DFAIL(c, "messages[%zu].function_call: the legacy function_call is not "
                            "supported; use tool_calls", i);
        if (given(mv[MK_AUDIO]))
            return DFAIL(c, "messages[%zu].audio: audio is not supported for this model", i);
        fresh = !(c->n_msgs && c->msgs[c->n_msgs - 1].role == AGW_IR_ASSISTANT);
        m = msg_for(c, AGW_IR_ASSISTANT);
        if (given(mv[MK_CONTENT]))
            TRY(parse_content(c, i, mv[MK_CONTENT], CT_ASSISTANT, &m->v, &m->n, &m->cap));
        if (given(mv[MK_REFUSAL])) {
            snprintf(what, sizeof what, "messages[%zu].refusal", i);
            TRY(want_str(c, mv[MK_REFUSAL], what, &s));
            if (s.len)
                push_block(c->arena, &m->v, &m->n, &m->cap)->text = s;
        }
        if (given(mv[MK_TOOL_CALLS]))
            TRY(parse_tool_calls(c, i, mv[MK_TOOL_CALLS], m));
        if (fresh && m->n == 0)
            c->n_msgs--;
        return AGW_OK;
    }
    if (agw_str_eq(role, AGW_STR_LIT("tool"))) {
        agw_ir_block *content = NULL, *b;
        size_t n = 0, cap = 0;
        agw_str id;
        msgbuild *m;
        snprintf(what, sizeof what, "messages[%zu].tool_call_id", i);
        if (!given(mv[MK_TOOL_CALL_ID]))
            return DFAIL(c, "%s: required", what);
        TRY(want_str(c, mv[MK_TOOL_CALL_ID], what, &id));
        if (!given(mv[MK_CONTENT]))
            return DFAIL(c, "messages[%zu].content: required", i);
        TRY(parse_content(c, i, mv[MK_CONTENT], CT_TOOL, &content, &n, &cap));
        /* Tool results are user content in the IR, so consecutive tool
         * messages and the user message after them become one user turn. */
        m = msg_for(c, AGW_IR_USER);
        b = push_block(c->arena, &m->v, &m->n, &m->cap);
        b->kind = AGW_IR_TOOL_RESULT;
        b->tool_id = id;
        b->content = content;
        b->n_content = n;
        return AGW_OK;
    }
    if (agw_str_eq(role, AGW_STR_LIT("function")))
        return DFAIL(c, "messages[%zu].role: the legacy 'function' role is not supported; use "
                        "'tool'", i);
    return DFAIL(c, "messages[%zu].role: unknown role", i);
}

/* Tool results go first in a user turn (what Anthropic requires, and what
 * "tool messages, then the user's message" means), the rest keeps its order. */
static void finish_messages(reqdec *c, agw_ir_request *out)
{
    out->messages = agw_arena_array(c->arena, c->n_msgs ? c->n_msgs : 1, sizeof *out->messages);
    out->n_messages = c->n_msgs;
    for (size_t i = 0; i < c->n_msgs; i++) {
        msgbuild *m = &c->msgs[i];
        agw_ir_message *o = &out->messages[i];
        o->role = m->role;
        o->blocks = m->v;
        o->n_blocks = m->n;
        if (m->role == AGW_IR_USER) {
            size_t k = 0;
            int other = 0, reorder = 0;
            for (size_t b = 0; b < m->n; b++) {
                if (m->v[b].kind != AGW_IR_TOOL_RESULT)
                    other = 1;
                else if (other)
                    reorder = 1;
            }
            if (reorder) {
                agw_ir_block *nv = agw_arena_array(c->arena, m->n, sizeof *nv);
                for (size_t b = 0; b < m->n; b++)
                    if (m->v[b].kind == AGW_IR_TOOL_RESULT)
                        nv[k++] = m->v[b];
                for (size_t b = 0; b < m->n; b++)
                    if (m->v[b].kind != AGW_IR_TOOL_RESULT)
                        nv[k++] = m->v[b];
                o->blocks = nv;
            }
        }
    }
}

static agw_err parse_tools(reqdec *c, agw_str tools, agw_ir_request *out)
{
    static const char *const tool_keys[] = { "type", "function" };
    static const char *const fn_keys[] = { "name", "description", "parameters", "strict" };
    agw_json_iter it;
    agw_str t, tv[2], fv[4], s;
    size_t k = 0, cap = 0;
    char what[64];
    int strict = 0;

    if (agw_json_type_of(tools) != AGW_JSON_ARRAY || agw_json_iter_init(&it, tools) != AGW_OK)
        return DFAIL(c, "tools: expected an array");
    for (; agw_json_iter_next(&it, NULL, &t); k++) {
        agw_ir_tool *tool;
        if (k >= OAI_MAX_TOOLS)
            return DFAIL(c, "tools: more than %d tools", OAI_MAX_TOOLS);
        if (agw_json_type_of(t) != AGW_JSON_OBJECT)
            return DFAIL(c, "tools[%zu]: expected an object", k);
        collect(t, tool_keys, 2, tv);
        snprintf(what, sizeof what, "tools[%zu].type", k);
        if (!given(tv[0]))
            return DFAIL(c, "%s: required", what);
        TRY(want_str(c, tv[0], what, &s));
        if (!agw_str_eq(s, AGW_STR_LIT("function")))
            return DFAIL(c, "%s: only 'function' tools are supported", what);
        if (agw_json_type_of(tv[1]) != AGW_JSON_OBJECT)
            return DFAIL(c, "tools[%zu].function: expected an object", k);
        collect(tv[1], fn_keys, 4, fv);
        out->tools = grow(c->arena, out->tools, out->n_tools, &cap, sizeof *out->tools);
        tool = &out->tools[out->n_tools++];
        memset(tool, 0, sizeof *tool);
        snprintf(what, sizeof what, "tools[%zu].function.name", k);
        if (!given(fv[0]))
            return DFAIL(c, "%s: required", what);
        TRY(want_str(c, fv[0], what, &tool->name));
        if (tool->name.len == 0)
            return DFAIL(c, "%s: must not be empty", what);
        if (given(fv[1])) {
            snprintf(what, sizeof what, "tools[%zu].function.description", k);
            TRY(want_str(c, fv[1], what, &tool->description));
        }
        if (given(fv[2])) {
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
        if (given(fv[3])) {
            snprintf(what, sizeof what, "tools[%zu].function.strict", k);
            TRY(want_bool(c, fv[3], what, &strict));
        }
    }
    if (k == 0)
        return DFAIL(c, "tools: expected an array with at least one tool");
    return AGW_OK;
}

static agw_err parse_tool_choice(reqdec *c, agw_str v, agw_ir_request *out)
{
    agw_str s, fn, name;

    if (agw_json_type_of(v) == AGW_JSON_STRING) {
        TRY(want_str(c, v, "tool_choice", &s));
        if (agw_str_eq(s, AGW_STR_LIT("auto")))
            out->tool_choice = AGW_IR_TC_AUTO;
        else if (agw_str_eq(s, AGW_STR_LIT("none")))
            out->tool_choice = AGW_IR_TC_NONE;
        else if (agw_str_eq(s, AGW_STR_LIT("required")))
            out->tool_choice = AGW_IR_TC_ANY;
        else
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
    TRY(want_str(c, name, "tool_choice.function.name", &out->tool_choice_name));
    out->tool_choice = AGW_IR_TC_TOOL;
    return AGW_OK;
}

static agw_err parse_stop(reqdec *c, agw_str v, agw_ir_request *out)
{
    agw_json_iter it;
    agw_str el;
    size_t k = 0;
    char what[32];

    if (agw_json_type_of(v) == AGW_JSON_STRING) {
        out->stop = agw_arena_array(c->arena, 1, sizeof *out->stop);
        out->n_stop = 1;
        return want_str(c, v, "stop", &out->stop[0]);
    }
    if (agw_json_type_of(v) != AGW_JSON_ARRAY || agw_json_iter_init(&it, v) != AGW_OK)
        return DFAIL(c, "stop: expected a string or an array of strings");
    out->stop = agw_arena_array(c->arena, OAI_MAX_STOP, sizeof *out->stop);
    for (; agw_json_iter_next(&it, NULL, &el); k++) {
        if (k >= OAI_MAX_STOP)
            return DFAIL(c, "stop: more than %d sequences", OAI_MAX_STOP);
        snprintf(what, sizeof what, "stop[%zu]", k);
        TRY(want_str(c, el, what, &out->stop[k]));
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

    if (given(v[K_N])) {
        TRY(want_int(c, v[K_N], "n", &n));
        if (n != 1)
            return DFAIL(c, "n: only n=1 is supported for this model");
    }
    if (given(v[K_LOGPROBS])) {
        TRY(want_bool(c, v[K_LOGPROBS], "logprobs", &b));
        if (b)
            return DFAIL(c, "logprobs: not supported for this model");
    }
    if (given(v[K_TOP_LOGPROBS]))
        return DFAIL(c, "top_logprobs: not supported for this model");
    if (given(v[K_LOGIT_BIAS])) {
        if (agw_json_type_of(v[K_LOGIT_BIAS]) != AGW_JSON_OBJECT)
            return DFAIL(c, "logit_bias: expected an object");
        if (agw_json_iter_init(&it, v[K_LOGIT_BIAS]) == AGW_OK && agw_json_iter_next(&it, &k, &el))
            return DFAIL(c, "logit_bias: not supported for this model");
    }
    if (given(v[K_PRESENCE])) {
        TRY(want_num(c, v[K_PRESENCE], "presence_penalty", &x));
        if (x != 0)
            return DFAIL(c, "presence_penalty: not supported for this model (only 0)");
    }
    if (given(v[K_FREQUENCY])) {
        TRY(want_num(c, v[K_FREQUENCY], "frequency_penalty", &x));
        if (x != 0)
            return DFAIL(c, "frequency_penalty: not supported for this model (only 0)");
    }
    if (given(v[K_AUDIO]))
        return DFAIL(c, "audio: audio output is not supported for this model");
    if (given(v[K_MODALITIES])) {
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
    if (given(v[K_PREDICTION]))
        return DFAIL(c, "prediction: predicted outputs are not supported for this model");
    if (given(v[K_RESPONSE_FORMAT])) {
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
    if (given(v[K_FUNCTIONS]))
        return DFAIL(c, "functions: the legacy functions parameter is not supported; use tools");
    if (given(v[K_FUNCTION_CALL]))
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

    if (given(v[K_SEED]))
        TRY(want_int(c, v[K_SEED], "seed", &n));
    if (given(v[K_STORE]))
        TRY(want_bool(c, v[K_STORE], "store", &b));
    if (given(v[K_SERVICE_TIER]))
        TRY(want_str(c, v[K_SERVICE_TIER], "service_tier", &s));
    if (given(v[K_METADATA]) && agw_json_type_of(v[K_METADATA]) != AGW_JSON_OBJECT)
        return DFAIL(c, "metadata: expected an object");
    if (given(v[K_REASONING_EFFORT]))
        TRY(want_str(c, v[K_REASONING_EFFORT], "reasoning_effort", &s));
    return AGW_OK;
}

static agw_err decode_request(reqdec *c, agw_str body, agw_ir_request *out)
{
    agw_str v[K_COUNT], msg;
    agw_json_iter it;
    char verr[96];
    size_t i = 0;
    agw_err e;

    if ((e = agw_json_validate(body, OAI_MAX_DEPTH, verr, sizeof verr)) != AGW_OK)
        return DFAIL(c, "invalid JSON body: %s", verr);
    if (agw_json_type_of(body) != AGW_JSON_OBJECT)
        return DFAIL(c, "the request body must be a JSON object");
    collect(body, top_keys, K_COUNT, v);

    TRY(check_unsupported(c, v));
    TRY(check_ignored(c, v));

    /* The router may fill in a default model, so it is optional here. */
    if (given(v[K_MODEL]))
        TRY(want_str(c, v[K_MODEL], "model", &out->model));

    if (!given(v[K_MESSAGES]))
        return DFAIL(c, "messages: required");
    if (agw_json_type_of(v[K_MESSAGES]) != AGW_JSON_ARRAY ||
        agw_json_iter_init(&it, v[K_MESSAGES]) != AGW_OK)
        return DFAIL(c, "messages: expected an array");
    for (; agw_json_iter_next(&it, NULL, &msg); i++) {
        if (i >= OAI_MAX_MESSAGES)
            return DFAIL(c, "messages: more than %d messages", OAI_MAX_MESSAGES);
        TRY(parse_message(c, i, msg));
    }
    if (i == 0)
        return DFAIL(c, "messages: expected at least one message");
    finish_messages(c, out);
    out->system = c->sys;
    out->n_system = c->n_sys;

    if (given(v[K_TOOLS]))
        TRY(parse_tools(c, v[K_TOOLS], out));
    if (given(v[K_TOOL_CHOICE])) {
        if (out->n_tools == 0)
            return DFAIL(c, "tool_choice: only allowed when tools are specified");
        TRY(parse_tool_choice(c, v[K_TOOL_CHOICE], out));
    }
    if (given(v[K_PARALLEL])) {
        int b = 0;
        TRY(want_bool(c, v[K_PARALLEL], "parallel_tool_calls", &b));
        if (out->n_tools)
            out->parallel_tool_calls = b;
    }
    if (given(v[K_MAX_TOKENS])) {
        TRY(want_int(c, v[K_MAX_TOKENS], "max_tokens", &out->max_tokens));
        if (out->max_tokens < 1)
            return DFAIL(c, "max_tokens: must be at least 1");
    }
    if (given(v[K_MAX_COMPLETION])) {
        TRY(want_int(c, v[K_MAX_COMPLETION], "max_completion_tokens", &out->max_tokens));
        if (out->max_tokens < 1)
            return DFAIL(c, "max_completion_tokens: must be at least 1");
    }
    if (given(v[K_TEMPERATURE])) {
        TRY(want_num(c, v[K_TEMPERATURE], "temperature", &out->temperature));
        if (out->temperature < 0 || out->temperature > 2)
            return DFAIL(c, "temperature: must be between 0 and 2");
        out->has_temperature = 1;
    }
    if (given(v[K_TOP_P])) {
        TRY(want_num(c, v[K_TOP_P], "top_p", &out->top_p));
        if (out->top_p < 0 || out->top_p > 1)
            return DFAIL(c, "top_p: must be between 0 and 1");
        out->has_top_p = 1;
    }
    if (given(v[K_STOP]))
        TRY(parse_stop(c, v[K_STOP], out));
    if (given(v[K_STREAM]))
        TRY(want_bool(c, v[K_STREAM], "stream", &out->stream));
    if (given(v[K_STREAM_OPTIONS])) {
        agw_str iu;
        int b = 0;
        if (agw_json_type_of(v[K_STREAM_OPTIONS]) != AGW_JSON_OBJECT)
            return DFAIL(c, "stream_options: expected an object");
        if (agw_json_find(v[K_STREAM_OPTIONS], AGW_STR_LIT("include_usage"), &iu) == AGW_OK &&
            given(iu))
            TRY(want_bool(c, iu, "stream_options.include_usage", &b));
        /* Only a stream has a usage chunk. */
        out->stream_usage = b && out->stream;
    }
    if (given(v[K_USER]))
        TRY(want_str(c, v[K_USER], "user", &out->user));
    return AGW_OK;
}

agw_err agw_openai_decode_request(agw_str body, agw_arena *arena, agw_ir_request *out, char *err,
                                  size_t errlen)
{
    reqdec c;
    agw_err e;

    memset(out, 0, sizeof *out);
    out->parallel_tool_calls = -1;
    out->max_tokens = -1;
    out->top_k = -1;
    memset(&c, 0, sizeof c);
    c.arena = arena;
    agw_buf_init(&c.scratch, body.len + 1);
    c.err = err;
    c.errlen = errlen;
    if (err && errlen)
        err[0] = '\0';
    e = decode_request(&c, body, out);
    agw_buf_free(&c.scratch);
    return e;
}

/* ======================================================================
 * Shared writers
 * ====================================================================== */

/* agw_buf_append_json_escaped for any view: absent values are {NULL, 0},
 * and core.c would do arithmetic on that NULL (undefined behaviour). */
static agw_err put_esc(agw_buf *b, agw_str s)
{
    return s.len ? agw_buf_append_json_escaped(b, s) : AGW_OK;
}

static agw_err put_jstr(agw_buf *b, agw_str s)
{
    TRY(agw_buf_append(b, "\"", 1));
    TRY(put_esc(b, s));
    return agw_buf_append(b, "\"", 1);
}

static agw_err put_sep(agw_buf *b, int *first)
{
    if (*first) {
        *first = 0;
        return AGW_OK;
    }
    return agw_buf_append(b, ",", 1);
}

/* The shortest decimal that reads back as the same double, so 0.7 stays
 * "0.7" rather than "0.69999999999999996". */
static agw_err put_double(agw_buf *b, double v)
{
    char s[40];

    if (!isfinite(v))
        return AGW_EINVAL;
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        if (strtod(s, NULL) == v)
            break;
    }
    return agw_buf_append_str(b, agw_str_c(s));
}

/* "chatcmpl-" + the IR id unless it already has the prefix; a random one
 * when the answer came without an id. */
static agw_err make_chat_id(agw_arena *a, agw_str id, agw_str *out)
{
    static const agw_str pre = AGW_STR_LIT("chatcmpl-");
    char hex[25];
    agw_buf b = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    agw_err e;

    if (agw_str_starts(id, pre)) {
        *out = agw_arena_str(a, id);
        return AGW_OK;
    }
    if (id.len == 0) {
        TRY(agw_random_hex(hex, 12));
        id = (agw_str){ hex, 24 };
    }
    if ((e = agw_buf_append_str(&b, pre)) == AGW_OK && (e = agw_buf_append_str(&b, id)) == AGW_OK)
        *out = agw_arena_str(a, agw_buf_view(&b));
    agw_buf_free(&b);
    return e;
}

/* IR usage -> OpenAI's usage object (prompt_tokens counts cached tokens). */
static agw_err put_usage(agw_buf *b, const agw_ir_usage *u)
{
    int64_t in = u->input > 0 ? u->input : 0;
    int64_t cr = u->cache_read > 0 ? u->cache_read : 0;
    int64_t cw = u->cache_write > 0 ? u->cache_write : 0;
    int64_t out = u->output > 0 ? u->output : 0;
    long long prompt = (long long)(in + cr + cw);

    return agw_buf_appendf(b,
                           "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,"
                           "\"total_tokens\":%lld,\"prompt_tokens_details\":{\"cached_tokens\":%lld},"
                           "\"completion_tokens_details\":{\"reasoning_tokens\":0}}",
                           prompt, (long long)out, prompt + (long long)out, (long long)cr);
}

static const char *finish_name(agw_ir_stop s)
{
    switch (s) {
    case AGW_IR_STOP_MAX_TOKENS: return "length";
    case AGW_IR_STOP_TOOL_USE: return "tool_calls";
    case AGW_IR_STOP_REFUSAL: return "content_filter";
    default: return "stop"; /* end_turn, stop_sequence, pause_turn, unknown */
    }
}

/* ======================================================================
 * Request encoding
 * ====================================================================== */

/* Non-empty texts of blocks joined with sep, as the inside of a JSON string. */
static agw_err put_joined(agw_buf *b, const agw_ir_block *v, size_t n, agw_str sep)
{
    int first = 1;

    for (size_t i = 0; i < n; i++) {
        if (v[i].kind != AGW_IR_TEXT || v[i].text.len == 0)
            continue;
        if (!first)
            TRY(agw_buf_append_str(b, sep));
        first = 0;
        TRY(put_esc(b, v[i].text));
    }
    return AGW_OK;
}

static agw_err put_image_part(agw_buf *b, const agw_ir_block *blk)
{
    TRY(PUT(b, "{\"type\":\"image_url\",\"image_url\":{\"url\":\""));
    if (!blk->image_is_url) {
        TRY(PUT(b, "data:"));
        TRY(put_esc(b, blk->media_type));
        TRY(PUT(b, ";base64,"));
    }
    TRY(put_esc(b, blk->image_data));
    return PUT(b, "\"}}");
}

static agw_err put_text_part(agw_buf *b, agw_str text)
{
    TRY(PUT(b, "{\"type\":\"text\",\"text\":"));
    TRY(put_jstr(b, text));
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
            return fail(err, errlen, "messages: tool_use blocks are only allowed in assistant "
                                     "messages");
        if (blk->kind == AGW_IR_TOOL_RESULT) {
            for (size_t k = 0; k < blk->n_content; k++) {
                if (blk->content[k].kind == AGW_IR_IMAGE)
                    nparts++;
                else if (blk->content[k].kind != AGW_IR_TEXT)
                    return fail(err, errlen, "messages: tool results may only hold text and "
                                             "images for OpenAI models");
            }
            TRY(put_sep(b, first));
            TRY(PUT(b, "{\"role\":\"tool\",\"tool_call_id\":"));
            TRY(put_jstr(b, blk->tool_id));
            TRY(PUT(b, ",\"content\":\""));
            /* OpenAI has no is_error flag: the model learns it from the text. */
            if (blk->is_error) {
                int any = 0;
                for (size_t k = 0; k < blk->n_content; k++)
                    any |= blk->content[k].kind == AGW_IR_TEXT && blk->content[k].text.len;
                TRY(any ? PUT(b, "Error: ") : PUT(b, "Error"));
            }
            TRY(put_joined(b, blk->content, blk->n_content, AGW_STR_LIT("\\n\\n")));
            TRY(PUT(b, "\"}"));
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
    TRY(put_sep(b, first));
    TRY(PUT(b, "{\"role\":\"user\",\"content\":"));
    if (nparts == 1 && ntext == 1) {
        TRY(put_jstr(b, only_text->text));
        return agw_buf_append(b, "}", 1);
    }
    TRY(agw_buf_append(b, "[", 1));
    for (size_t i = 0; i < m->n_blocks; i++) {
        const agw_ir_block *blk = &m->blocks[i];
        if (blk->kind != AGW_IR_TOOL_RESULT)
            continue;
        for (size_t k = 0; k < blk->n_content; k++)
            if (blk->content[k].kind == AGW_IR_IMAGE) {
                TRY(put_sep(b, &pfirst));
                TRY(put_image_part(b, &blk->content[k]));
            }
    }
    for (size_t i = 0; i < m->n_blocks; i++) {
        const agw_ir_block *blk = &m->blocks[i];
        if (blk->kind == AGW_IR_TEXT && blk->text.len) {
            TRY(put_sep(b, &pfirst));
            TRY(put_text_part(b, blk->text));
        } else if (blk->kind == AGW_IR_IMAGE) {
            TRY(put_sep(b, &pfirst));
            TRY(put_image_part(b, blk));
        }
    }
    return PUT(b, "]}");
}

/* One IR assistant turn: its texts concatenated as they were streamed (the
 * blocks are pieces of one answer), then its tool calls; thinking dropped. */

/* One complete tool call of a message: {"id","type":"function","function":{...}}.
 * OpenAI wants the arguments as a JSON string; a call without input has {}. */
static agw_err put_tool_call(agw_buf *b, agw_str id, agw_str name, agw_str args)
{
    TRY(PUT(b, "{\"id\":"));
    TRY(put_jstr(b, id));
    TRY(PUT(b, ",\"type\":\"function\",\"function\":{\"name\":"));
    TRY(put_jstr(b, name));
    TRY(PUT(b, ",\"arguments\":"));
    TRY(put_jstr(b, args.len ? args : AGW_STR_LIT("{}")));
    return PUT(b, "}}");
}

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
            return fail(err, errlen, "messages: assistant messages may only hold text, thinking "
                                     "and tool_use blocks for OpenAI models");
        }
    }
    if (ntext == 0 && ncalls == 0)
        return AGW_OK;
    TRY(put_sep(b, first));
    TRY(PUT(b, "{\"role\":\"assistant\",\"content\":"));
    if (ntext) {
        TRY(agw_buf_append(b, "\"", 1));
        TRY(put_joined(b, m->blocks, m->n_blocks, AGW_STR_LIT("")));
        TRY(agw_buf_append(b, "\"", 1));
    } else {
        TRY(PUT(b, "null"));
    }
    if (ncalls) {
        TRY(PUT(b, ",\"tool_calls\":["));
        for (size_t i = 0; i < m->n_blocks; i++) {
            const agw_ir_block *blk = &m->blocks[i];
            if (blk->kind != AGW_IR_TOOL_USE)
                continue;
            TRY(put_sep(b, &cfirst));
            TRY(put_tool_call(b, blk->tool_id, blk->tool_name, blk->tool_input));
        }
        TRY(agw_buf_append(b, "]", 1));
    }
    return agw_buf_append(b, "}", 1);
}

/* o1, o3-mini, o4-mini, gpt-5, gpt-5-mini...: the models with reasoning_effort. */
static int reasoning_model(agw_str model)
{
    return (model.len >= 2 && model.ptr[0] == 'o' && model.ptr[1] >= '0' && model.ptr[1] <= '9') ||
           agw_str_starts(model, AGW_STR_LIT("gpt-5"));
}

/* Anthropic's thinking budget -> an effort level; NULL when thinking is off. */
static const char *reasoning_effort(agw_str thinking)
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

static agw_err encode_request(const agw_ir_request *rq, agw_buf *b, char *err, size_t errlen)
{
    int first = 1, any_sys = 0;

    if (rq->top_k >= 0)
        return fail(err, errlen, "top_k: top_k is not supported by OpenAI models");
    TRY(PUT(b, "{\"model\":"));
    TRY(put_jstr(b, rq->model));
    TRY(PUT(b, ",\"messages\":["));
    for (size_t i = 0; i < rq->n_system; i++)
        any_sys |= rq->system[i].kind == AGW_IR_TEXT && rq->system[i].text.len;
    if (any_sys) {
        /* One string rather than a parts array: every OpenAI-compatible
         * server takes a string system message, not all take parts. */
        first = 0;
        TRY(PUT(b, "{\"role\":\"system\",\"content\":\""));
        TRY(put_joined(b, rq->system, rq->n_system, AGW_STR_LIT("\\n\\n")));
        TRY(PUT(b, "\"}"));
    }
    for (size_t i = 0; i < rq->n_messages; i++) {
        if (rq->messages[i].role == AGW_IR_USER)
            TRY(enc_user(b, &rq->messages[i], &first, err, errlen));
        else
            TRY(enc_assistant(b, &rq->messages[i], &first, err, errlen));
    }
    TRY(agw_buf_append(b, "]", 1));
    if (rq->n_tools) {
        TRY(PUT(b, ",\"tools\":["));
        for (size_t i = 0; i < rq->n_tools; i++) {
            const agw_ir_tool *t = &rq->tools[i];
            agw_str schema = trim_ws(t->schema);
            if (i)
                TRY(agw_buf_append(b, ",", 1));
            TRY(PUT(b, "{\"type\":\"function\",\"function\":{\"name\":"));
            TRY(put_jstr(b, t->name));
            if (t->description.len) {
                TRY(PUT(b, ",\"description\":"));
                TRY(put_jstr(b, t->description));
            }
            TRY(PUT(b, ",\"parameters\":"));
            if (schema.len == 0 || agw_json_is_null(schema))
                schema = AGW_STR_LIT("{\"type\":\"object\",\"properties\":{}}");
            TRY(agw_buf_append_str(b, schema));
            TRY(PUT(b, "}}"));
        }
        TRY(agw_buf_append(b, "]", 1));
        /* tool_choice and parallel_tool_calls are refused without tools. */
        switch (rq->tool_choice) {
        case AGW_IR_TC_AUTO: TRY(PUT(b, ",\"tool_choice\":\"auto\"")); break;
        case AGW_IR_TC_ANY: TRY(PUT(b, ",\"tool_choice\":\"required\"")); break;
        case AGW_IR_TC_NONE: TRY(PUT(b, ",\"tool_choice\":\"none\"")); break;
        case AGW_IR_TC_TOOL:
            TRY(PUT(b, ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":"));
            TRY(put_jstr(b, rq->tool_choice_name));
            TRY(PUT(b, "}}"));
            break;
        case AGW_IR_TC_UNSET: break;
        }
        if (rq->parallel_tool_calls >= 0)
            TRY(rq->parallel_tool_calls ? PUT(b, ",\"parallel_tool_calls\":true")
                                        : PUT(b, ",\"parallel_tool_calls\":false"));
    }
    if (rq->max_tokens >= 0)
        TRY(agw_buf_appendf(b, ",\"max_completion_tokens\":%lld", (long long)rq->max_tokens));
    if (rq->has_temperature) {
        TRY(PUT(b, ",\"temperature\":"));
        if (put_double(b, rq->temperature) != AGW_OK)
            return fail(err, errlen, "temperature: not a finite number");
    }
    if (rq->has_top_p) {
        TRY(PUT(b, ",\"top_p\":"));
        if (put_double(b, rq->top_p) != AGW_OK)
            return fail(err, errlen, "top_p: not a finite number");
    }
    if (rq->n_stop) {
        TRY(PUT(b, ",\"stop\":["));
        for (size_t i = 0; i < rq->n_stop; i++) {
            if (i)
                TRY(agw_buf_append(b, ",", 1));
            TRY(put_jstr(b, rq->stop[i]));
        }
        TRY(agw_buf_append(b, "]", 1));
    }
    if (rq->user.len) {
        TRY(PUT(b, ",\"user\":"));
        TRY(put_jstr(b, rq->user));
    }
    if (reasoning_model(rq->model)) {
        const char *effort = reasoning_effort(rq->thinking);
        if (effort)
            TRY(agw_buf_appendf(b, ",\"reasoning_effort\":\"%s\"", effort));
    }
    return PUT(b, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
}

agw_err agw_openai_encode_request(const agw_ir_request *rq, agw_buf *out, char *err, size_t errlen)
{
    size_t start = out->len;
    agw_err e;

    if (err && errlen)
        err[0] = '\0';
    e = encode_request(rq, out, err, errlen);
    if (e != AGW_OK && out->len >= start && out->data) {
        /* Leave nothing half-written behind. */
        out->len = start;
        out->data[start] = '\0';
    }
    if (e == AGW_ETOOBIG && err && errlen && !err[0])
        fail(err, errlen, "the request is too large");
    return e;
}

/* ======================================================================
 * Errors
 * ====================================================================== */

/* OpenAI's error type / code (and the HTTP status some compatible servers
 * put in `code`) -> an HTTP status and the IR's error vocabulary. */
static void map_error(agw_str type, agw_str code, int *status, const char **neutral)
{
    int64_t num;
    int st = 0;

#define IS(s, lit) agw_json_string_eq((s), AGW_STR_LIT(lit))
    if (agw_json_type_of(code) == AGW_JSON_NUMBER && agw_json_int64(code, &num) == AGW_OK &&
        num >= 400 && num <= 599)
        st = (int)num;
    else if (IS(code, "rate_limit_exceeded") || IS(code, "insufficient_quota"))
        st = 429;
    else if (IS(code, "invalid_api_key"))
        st = 401;
    else if (IS(code, "model_not_found"))
        st = 404;
    else if (IS(type, "invalid_request_error"))
        st = 400;
    else if (IS(type, "authentication_error"))
        st = 401;
    else if (IS(type, "permission_error") || IS(type, "permission_denied"))
        st = 403;
    else if (IS(type, "not_found_error"))
        st = 404;
    else if (IS(type, "request_too_large"))
        st = 413;
    else if (IS(type, "rate_limit_error") || IS(type, "requests") || IS(type, "tokens") ||
             IS(type, "insufficient_quota"))
        st = 429;
    else if (IS(type, "overloaded_error") || IS(type, "server_overloaded"))
        st = 503;
    else if (IS(type, "timeout") || IS(type, "timeout_error"))
        st = 504;
    else
        st = 500;
#undef IS
    *status = st;
    switch (st) {
    case 401: *neutral = "authentication_error"; break;
    case 403: *neutral = "permission_error"; break;
    case 404: *neutral = "not_found_error"; break;
    case 413: *neutral = "request_too_large"; break;
    case 429: *neutral = "rate_limit_error"; break;
    case 503: case 529: *neutral = "overloaded_error"; break;
    default: *neutral = st >= 500 ? "api_error" : "invalid_request_error"; break;
    }
}

/* The IR's error vocabulary (Anthropic's) -> OpenAI's, the status deciding
 * when the type is not one we know. */
static const char *openai_error_type(agw_str type, int status)
{
    if (agw_str_eq(type, AGW_STR_LIT("invalid_request_error")) ||
        agw_str_eq(type, AGW_STR_LIT("not_found_error")) ||
        agw_str_eq(type, AGW_STR_LIT("request_too_large")))
        return "invalid_request_error";
    if (agw_str_eq(type, AGW_STR_LIT("authentication_error")))
        return "authentication_error";
    if (agw_str_eq(type, AGW_STR_LIT("permission_error")))
        return "permission_error";
    if (agw_str_eq(type, AGW_STR_LIT("rate_limit_error")))
        return "rate_limit_error";
    if (agw_str_eq(type, AGW_STR_LIT("timeout_error")))
        return "timeout_error";
    if (agw_str_eq(type, AGW_STR_LIT("api_error")) ||
        agw_str_eq(type, AGW_STR_LIT("overloaded_error")))
        return "server_error";
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 429: return "rate_limit_error";
    case 504: return "timeout_error";
    default: return status >= 500 || status < 400 ? "server_error" : "invalid_request_error";
    }
}

/* Decodes a string token into the arena (NULs kept). */
static agw_err arena_string(agw_arena *a, agw_str tok, agw_str *out)
{
    agw_buf tmp = AGW_BUF_INIT(tok.len + 1);
    agw_err e = agw_json_string_decode(tok, &tmp);

    if (e == AGW_OK)
        *out = agw_arena_str(a, agw_buf_view(&tmp));
    agw_buf_free(&tmp);
    return e;
}

agw_err agw_openai_decode_error(agw_str body, agw_arena *arena, agw_str *type, agw_str *message)
{
    agw_str eobj, v[3] = { { NULL, 0 } };
    static const char *const keys[] = { "message", "type", "code" };
    const char *neutral;
    int status;

    if (agw_json_validate(body, OAI_MAX_DEPTH, NULL, 0) != AGW_OK ||
        agw_json_type_of(body) != AGW_JSON_OBJECT ||
        agw_json_find(body, AGW_STR_LIT("error"), &eobj) != AGW_OK ||
        agw_json_type_of(eobj) != AGW_JSON_OBJECT)
        return AGW_EINVAL;
    collect(eobj, keys, 3, v);
    if (given(v[0]) && agw_json_type_of(v[0]) != AGW_JSON_STRING)
        return AGW_EINVAL;
    *message = (agw_str){ "", 0 };
    if (given(v[0]))
        TRY(arena_string(arena, v[0], message));
    map_error(v[1], v[2], &status, &neutral);
    *type = agw_str_c(neutral);
    return AGW_OK;
}

/* ======================================================================
 * Stream decoding (upstream chunks -> IR events)
 * ====================================================================== */

typedef struct {
    agw_openai_stream_decoder *d;
    agw_ir_sink sink;
    void *ud;
    char *err;
    size_t errlen;
    agw_buf scratch;
} sdec;

#define SFAIL(c, ...) fail((c)->err, (c)->errlen, __VA_ARGS__)

static agw_err sd_emit(sdec *c, const agw_ir_event *ev)
{
    if (c->sink(c->ud, ev) != 0) {
        fail(c->err, c->errlen, "the event consumer stopped the stream");
        return AGW_EPEER;
    }
    return AGW_OK;
}

/* A string token's bytes, valid until the next call: a view into the event's
 * data when unescaped, else decoded into the scratch buffer. */
static agw_err sd_str(sdec *c, agw_str tok, agw_str *out)
{
    if (agw_json_type_of(tok) != AGW_JSON_STRING)
        return AGW_EINVAL;
    return agw_json_string_view(tok, &c->scratch, out);
}

static agw_err sd_start(sdec *c, agw_str chunk)
{
    agw_openai_stream_decoder *d = c->d;
    agw_ir_event ev;
    agw_str v;

    if (d->started)
        return AGW_OK;
    d->started = 1;
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_START);
    /* id and model live in the decoder's arena: two scratch decodes at once. */
    if (chunk.len && agw_json_find(chunk, AGW_STR_LIT("id"), &v) == AGW_OK &&
        agw_json_type_of(v) == AGW_JSON_STRING)
        TRY(arena_string(&d->arena, v, &ev.id));
    if (chunk.len && agw_json_find(chunk, AGW_STR_LIT("model"), &v) == AGW_OK &&
        agw_json_type_of(v) == AGW_JSON_STRING)
        TRY(arena_string(&d->arena, v, &ev.model));
    return sd_emit(c, &ev);
}

static agw_err sd_close(sdec *c)
{
    agw_openai_stream_decoder *d = c->d;
    agw_ir_event ev;

    if (d->open_index < 0)
        return AGW_OK;
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_STOP);
    ev.index = d->open_index;
    d->open_index = -1;
    d->open_kind = -1;
    return sd_emit(c, &ev);
}

/* Starts a block after closing the open one. */
static agw_err sd_open(sdec *c, agw_ir_block_kind kind, agw_str tool_id, agw_str tool_name)
{
    agw_openai_stream_decoder *d = c->d;
    agw_ir_event ev;

    TRY(sd_close(c));
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
    ev.index = d->next_index++;
    ev.block = kind;
    ev.tool_id = tool_id;
    ev.tool_name = tool_name;
    d->open_index = ev.index;
    d->open_kind = (int)kind;
    return sd_emit(c, &ev);
}

static agw_err sd_delta(sdec *c, agw_ir_delta_kind kind, agw_str piece)
{
    agw_ir_event ev;

    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
    ev.index = c->d->open_index;
    ev.delta_kind = kind;
    ev.delta = piece;
    return sd_emit(c, &ev);
}

/* Text or thinking: continues the open block of that kind or starts one. */
static agw_err sd_text(sdec *c, agw_ir_block_kind kind, agw_str tok)
{
    agw_str s;

    if (agw_json_type_of(tok) != AGW_JSON_STRING)
        return AGW_OK; /* null (or anything odd) carries no text */
    if (sd_str(c, tok, &s) != AGW_OK)
        return SFAIL(c, "upstream sent a malformed string");
    if (s.len == 0)
        return AGW_OK;
    /* sd_open leaves the scratch buffer alone, so s stays valid across it. */
    if (c->d->open_index < 0 || c->d->open_kind != (int)kind)
        TRY(sd_open(c, kind, (agw_str){ NULL, 0 }, (agw_str){ NULL, 0 }));
    return sd_delta(c, kind == AGW_IR_THINKING ? AGW_IR_DELTA_THINKING : AGW_IR_DELTA_TEXT, s);
}

static agw_err sd_tool_calls(sdec *c, agw_str calls)
{
    static const char *const call_keys[] = { "index", "id", "function" };
    static const char *const fn_keys[] = { "name", "arguments" };
    agw_openai_stream_decoder *d = c->d;
    agw_json_iter it;
    agw_str call, cv[3], fv[2];

    if (agw_json_type_of(calls) != AGW_JSON_ARRAY || agw_json_iter_init(&it, calls) != AGW_OK)
        return AGW_OK;
    while (agw_json_iter_next(&it, NULL, &call)) {
        int64_t idx = -1;
        int slot;

        if (agw_json_type_of(call) != AGW_JSON_OBJECT)
            return SFAIL(c, "upstream sent a tool call that is not an object");
        collect(call, call_keys, 3, cv);
        fv[0] = fv[1] = (agw_str){ NULL, 0 };
        if (agw_json_type_of(cv[2]) == AGW_JSON_OBJECT)
            collect(cv[2], fn_keys, 2, fv);
        if (given(cv[0])) {
            if (agw_json_int64(cv[0], &idx) != AGW_OK || idx < 0 || idx >= OAI_MAX_STREAM_TOOLS)
                return SFAIL(c, "upstream sent a tool call index outside 0..%d",
                             OAI_MAX_STREAM_TOOLS - 1);
            slot = (int)idx;
        } else if (agw_json_type_of(cv[1]) == AGW_JSON_STRING) {
            /* Some compatible servers omit index: an id means a new call. */
            for (slot = 0; slot < OAI_MAX_STREAM_TOOLS && d->tool_blocks[slot] >= 0; slot++)
                ;
            if (slot == OAI_MAX_STREAM_TOOLS)
                return SFAIL(c, "upstream sent more than %d tool calls", OAI_MAX_STREAM_TOOLS);
        } else {
            /* ...and no id means more of the call being streamed. */
            for (slot = 0; slot < OAI_MAX_STREAM_TOOLS; slot++)
                if (d->tool_blocks[slot] >= 0 && d->tool_blocks[slot] == d->open_index)
                    break;
            if (slot == OAI_MAX_STREAM_TOOLS)
                return SFAIL(c, "upstream sent a tool call delta without an index");
        }
        if (d->tool_blocks[slot] < 0) {
            agw_str id = { NULL, 0 }, name = { NULL, 0 };
            if (agw_json_type_of(cv[1]) == AGW_JSON_STRING && cv[1].len > 2)
                TRY(arena_string(&d->arena, cv[1], &id));
            if (id.len == 0) {
                /* Anthropic clients need an id to answer the call with. */
                char hex[25];
                char buf[32];
                if (agw_random_hex(hex, 12) != AGW_OK)
                    return SFAIL(c, "no randomness for a tool call id");
                snprintf(buf, sizeof buf, "call_%s", hex);
                id = agw_arena_str(&d->arena, agw_str_c(buf));
            }
            if (agw_json_type_of(fv[0]) == AGW_JSON_STRING)
                TRY(arena_string(&d->arena, fv[0], &name));
            TRY(sd_open(c, AGW_IR_TOOL_USE, id, name));
            d->tool_blocks[slot] = d->open_index;
        } else if (d->tool_blocks[slot] != d->open_index) {
            /* The IR streams one block at a time; OpenAI sends calls one after
             * the other, so this is a server we cannot follow. */
            return SFAIL(c, "upstream continued tool call %d after another block started", slot);
        }
        if (agw_json_type_of(fv[1]) == AGW_JSON_STRING && fv[1].len > 2) {
            agw_str args;
            if (sd_str(c, fv[1], &args) != AGW_OK)
                return SFAIL(c, "upstream sent malformed tool call arguments");
            TRY(sd_delta(c, AGW_IR_DELTA_JSON, args));
        }
    }
    return AGW_OK;
}

static int sd_has_tool_calls(const agw_openai_stream_decoder *d)
{
    for (size_t i = 0; i < sizeof d->tool_blocks / sizeof d->tool_blocks[0]; i++)
        if (d->tool_blocks[i] >= 0)
            return 1;
    return 0;
}

static agw_ir_stop stop_from_finish(agw_str tok)
{
    if (agw_json_string_eq(tok, AGW_STR_LIT("length")))
        return AGW_IR_STOP_MAX_TOKENS;
    if (agw_json_string_eq(tok, AGW_STR_LIT("tool_calls")) ||
        agw_json_string_eq(tok, AGW_STR_LIT("function_call")))
        return AGW_IR_STOP_TOOL_USE;
    if (agw_json_string_eq(tok, AGW_STR_LIT("content_filter")))
        return AGW_IR_STOP_REFUSAL;
    return AGW_IR_STOP_END_TURN; /* "stop", and names only other servers use */
}

static agw_err sd_choice(sdec *c, agw_str choice)
{
    static const char *const keys[] = { "index", "delta", "finish_reason" };
    static const char *const dkeys[] = { "reasoning_content", "reasoning", "content", "refusal",
                                         "tool_calls" };
    agw_openai_stream_decoder *d = c->d;
    agw_str v[3], dv[5];
    int64_t idx;

    if (agw_json_type_of(choice) != AGW_JSON_OBJECT)
        return AGW_OK;
    collect(choice, keys, 3, v);
    /* We always ask for one choice; anything else is not ours to merge. */
    if (given(v[0]) && (agw_json_int64(v[0], &idx) != AGW_OK || idx != 0))
        return AGW_OK;
    if (agw_json_type_of(v[1]) == AGW_JSON_OBJECT) {
        collect(v[1], dkeys, 5, dv);
        /* Servers that send both carry the same text in both. */
        TRY(sd_text(c, AGW_IR_THINKING,
                    agw_json_type_of(dv[0]) == AGW_JSON_STRING && dv[0].len > 2 ? dv[0] : dv[1]));
        TRY(sd_text(c, AGW_IR_TEXT, dv[2]));
        if (agw_json_type_of(dv[3]) == AGW_JSON_STRING && dv[3].len > 2) {
            TRY(sd_text(c, AGW_IR_TEXT, dv[3]));
            d->stop = AGW_IR_STOP_REFUSAL;
        }
        if (given(dv[4]))
            TRY(sd_tool_calls(c, dv[4]));
    }
    if (agw_json_type_of(v[2]) == AGW_JSON_STRING) {
        /* A refusal outranks the "stop" that usually follows it. */
        if (d->stop != AGW_IR_STOP_REFUSAL)
            d->stop = stop_from_finish(v[2]);
        /* With a named tool_choice OpenAI ends a tool call with "stop"; for
         * Anthropic clients an answer holding tool calls ends in tool_use,
         * which agent loops check before running the tools. */
        if (d->stop == AGW_IR_STOP_END_TURN && sd_has_tool_calls(d))
            d->stop = AGW_IR_STOP_TOOL_USE;
        d->have_stop = 1;
        TRY(sd_close(c));
    }
    return AGW_OK;
}

static int64_t usage_int(agw_str obj, const char *key)
{
    agw_str v;
    int64_t n;

    if (agw_json_find(obj, agw_str_c(key), &v) != AGW_OK || agw_json_int64(v, &n) != AGW_OK ||
        n < 0)
        return -1;
    return n;
}

static void sd_usage(agw_openai_stream_decoder *d, agw_str u)
{
    int64_t prompt = usage_int(u, "prompt_tokens"), out = usage_int(u, "completion_tokens");
    int64_t cached = -1;
    agw_str det;

    if (agw_json_find(u, AGW_STR_LIT("prompt_tokens_details"), &det) == AGW_OK &&
        agw_json_type_of(det) == AGW_JSON_OBJECT)
        cached = usage_int(det, "cached_tokens");
    if (prompt >= 0) {
        if (cached > prompt)
            cached = prompt;
        d->usage.input = prompt - (cached > 0 ? cached : 0);
        if (cached >= 0)
            d->usage.cache_read = cached;
    }
    if (out >= 0)
        d->usage.output = out;
}

static agw_err sd_error(sdec *c, agw_str e)
{
    static const char *const keys[] = { "message", "type", "code" };
    agw_ir_event ev;
    agw_str v[3] = { { NULL, 0 } };
    const char *neutral;

    agw_ir_event_init(&ev, AGW_IR_EV_ERROR);
    if (agw_json_type_of(e) == AGW_JSON_OBJECT) {
        collect(e, keys, 3, v);
        if (agw_json_type_of(v[0]) == AGW_JSON_STRING)
            TRY(arena_string(&c->d->arena, v[0], &ev.error_message));
    } else if (agw_json_type_of(e) == AGW_JSON_STRING) {
        TRY(arena_string(&c->d->arena, e, &ev.error_message));
    }
    if (ev.error_message.len == 0)
        ev.error_message = AGW_STR_LIT("the upstream reported an error");
    map_error(v[1], v[2], &ev.status, &neutral);
    ev.error_type = agw_str_c(neutral);
    c->d->finished = 1;
    return sd_emit(c, &ev);
}

/* [DONE], or the end of a stream that said all it had to. */
static agw_err sd_finish(sdec *c)
{
    agw_openai_stream_decoder *d = c->d;
    agw_ir_event ev;

    TRY(sd_start(c, (agw_str){ NULL, 0 }));
    TRY(sd_close(c));
    d->finished = 1;
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_DELTA);
    /* A [DONE] without a finish_reason: the answer is whole, call it a turn end. */
    ev.stop = d->stop != AGW_IR_STOP_NONE ? d->stop : AGW_IR_STOP_END_TURN;
    ev.usage = d->usage;
    TRY(sd_emit(c, &ev));
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_STOP);
    return sd_emit(c, &ev);
}

static agw_err sd_chunk(sdec *c, agw_str chunk)
{
    static const char *const keys[] = { "error", "choices", "usage" };
    agw_str v[3], choice;
    agw_json_iter it;

    collect(chunk, keys, 3, v);
    if (given(v[0]))
        return sd_error(c, v[0]);
    TRY(sd_start(c, chunk));
    if (agw_json_type_of(v[1]) == AGW_JSON_ARRAY && agw_json_iter_init(&it, v[1]) == AGW_OK)
        while (agw_json_iter_next(&it, NULL, &choice))
            TRY(sd_choice(c, choice));
    if (agw_json_type_of(v[2]) == AGW_JSON_OBJECT)
        sd_usage(c->d, v[2]);
    return AGW_OK;
}

void agw_openai_stream_decoder_init(agw_openai_stream_decoder *d)
{
    memset(d, 0, sizeof *d);
    d->open_index = -1;
    d->open_kind = -1;
    for (size_t i = 0; i < sizeof d->tool_blocks / sizeof d->tool_blocks[0]; i++)
        d->tool_blocks[i] = -1;
    d->stop = AGW_IR_STOP_NONE;
    d->usage = (agw_ir_usage)AGW_IR_USAGE_UNKNOWN;
}

agw_err agw_openai_decode_stream_event(agw_openai_stream_decoder *d, agw_str data, agw_ir_sink sink,
                                       void *ud, char *err, size_t errlen)
{
    sdec c = { d, sink, ud, err, errlen, AGW_BUF_INIT(data.len + 1) };
    char verr[96];
    agw_err e;

    if (err && errlen)
        err[0] = '\0';
    if (d->finished)
        return AGW_OK; /* the answer is over; anything after it is noise */
    data = trim_ws(data);
    if (agw_str_eq(data, AGW_STR_LIT("[DONE]")))
        return sd_finish(&c);
    if (agw_json_validate(data, OAI_MAX_DEPTH, verr, sizeof verr) != AGW_OK)
        return fail(err, errlen, "upstream sent invalid JSON in the stream: %s", verr);
    if (agw_json_type_of(data) != AGW_JSON_OBJECT)
        return fail(err, errlen, "upstream sent a stream event that is not a JSON object");
    e = sd_chunk(&c, data);
    agw_buf_free(&c.scratch);
    return e;
}

agw_err agw_openai_decode_stream_end(agw_openai_stream_decoder *d, agw_ir_sink sink, void *ud)
{
    sdec c = { d, sink, ud, NULL, 0, AGW_BUF_INIT(0) };

    if (d->finished)
        return AGW_OK;
    /* Some compatible servers end without [DONE]; after a finish_reason and
     * the usage chunk nothing is missing. */
    if (d->started && d->have_stop && (d->usage.input >= 0 || d->usage.output >= 0))
        return sd_finish(&c);
    return AGW_EPEER;
}

void agw_openai_stream_decoder_free(agw_openai_stream_decoder *d)
{
    agw_arena_free(&d->arena);
}

/* ======================================================================
 * Stream encoding (IR events -> client chunks)
 * ====================================================================== */

void agw_openai_stream_encoder_init(agw_openai_stream_encoder *e, int include_usage, agw_str model,
                                    int64_t created)
{
    memset(e, 0, sizeof *e);
    e->include_usage = include_usage;
    e->model = agw_arena_str(&e->arena, model);
    e->created = created;
    for (size_t i = 0; i < sizeof e->tool_index / sizeof e->tool_index[0]; i++)
        e->tool_index[i] = -1;
    e->usage = (agw_ir_usage)AGW_IR_USAGE_UNKNOWN;
    e->stop = AGW_IR_STOP_NONE;
}

/* Everything of a chunk up to the delta object. system_fingerprint is left
 * out: there is no OpenAI backend whose fingerprint it could be, and the
 * SDKs treat it as optional. */
static agw_err chunk_head(const agw_openai_stream_encoder *e, agw_buf *out)
{
    TRY(PUT(out, "data: {\"id\":"));
    TRY(put_jstr(out, e->id));
    TRY(agw_buf_appendf(out, ",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":",
                        (long long)e->created));
    return put_jstr(out, e->model);
}

/* The start of a chunk with one choice, up to its delta object. */
static agw_err chunk_open(const agw_openai_stream_encoder *e, agw_buf *out)
{
    TRY(chunk_head(e, out));
    return PUT(out, ",\"choices\":[{\"index\":0,\"delta\":");
}

/* The rest of it, after the delta object. */
static agw_err chunk_close(const agw_openai_stream_encoder *e, agw_buf *out, const char *finish)
{
    TRY(PUT(out, ",\"logprobs\":null,\"finish_reason\":"));
    if (finish)
        TRY(agw_buf_appendf(out, "\"%s\"", finish));
    else
        TRY(PUT(out, "null"));
    TRY(agw_buf_append(out, "}]", 2));
    /* With include_usage the API puts "usage":null on every chunk but the last. */
    if (e->include_usage)
        TRY(PUT(out, ",\"usage\":null"));
    return PUT(out, "}\n\n");
}

/* The opening chunk (role) once, before anything else, even when the
 * producer skipped MESSAGE_START. */
static agw_err enc_role(agw_openai_stream_encoder *e, agw_str id, agw_buf *out)
{
    if (e->role_sent)
        return AGW_OK;
    TRY(make_chat_id(&e->arena, id, &e->id));
    e->role_sent = 1;
    TRY(chunk_open(e, out));
    TRY(PUT(out, "{\"role\":\"assistant\",\"content\":\"\"}"));
    return chunk_close(e, out, NULL);
}

/* {"<key>":"<text>"}: content or reasoning_content. */
static agw_err enc_text_delta(agw_openai_stream_encoder *e, agw_buf *out, const char *key,
                              agw_str text)
{
    TRY(chunk_open(e, out));
    TRY(agw_buf_appendf(out, "{\"%s\":\"", key));
    TRY(put_esc(out, text));
    TRY(PUT(out, "\"}"));
    return chunk_close(e, out, NULL);
}

static agw_err enc_tool_start(agw_openai_stream_encoder *e, const agw_ir_event *ev, agw_buf *out)
{
    int n = e->n_tool_calls++;

    e->tool_index[ev->index] = n;
    TRY(chunk_open(e, out));
    TRY(agw_buf_appendf(out, "{\"tool_calls\":[{\"index\":%d,\"id\":", n));
    TRY(put_jstr(out, ev->tool_id));
    TRY(PUT(out, ",\"type\":\"function\",\"function\":{\"name\":"));
    TRY(put_jstr(out, ev->tool_name));
    TRY(PUT(out, ",\"arguments\":\"\"}}]}"));
    return chunk_close(e, out, NULL);
}

/* Later pieces of a call carry only its index and the arguments text. */
static agw_err enc_tool_delta(agw_openai_stream_encoder *e, int n, agw_str args, agw_buf *out)
{
    TRY(chunk_open(e, out));
    TRY(agw_buf_appendf(out, "{\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":\"", n));
    TRY(put_esc(out, args));
    TRY(PUT(out, "\"}}]}"));
    return chunk_close(e, out, NULL);
}

static agw_err enc_stop(agw_openai_stream_encoder *e, agw_buf *out)
{
    TRY(enc_role(e, (agw_str){ NULL, 0 }, out));
    e->done = 1;
    TRY(chunk_open(e, out));
    TRY(agw_buf_append(out, "{}", 2));
    TRY(chunk_close(e, out, finish_name(e->stop)));
    if (e->include_usage) {
        TRY(chunk_head(e, out));
        TRY(PUT(out, ",\"choices\":[],\"usage\":"));
        TRY(put_usage(out, &e->usage));
        TRY(PUT(out, "}\n\n"));
    }
    return PUT(out, "data: [DONE]\n\n");
}

static agw_err enc_error(agw_openai_stream_encoder *e, const agw_ir_event *ev, agw_buf *out)
{
    e->done = 1;
    TRY(PUT(out, "data: {\"error\":{\"message\":"));
    TRY(put_jstr(out, ev->error_message));
    TRY(agw_buf_appendf(out, ",\"type\":\"%s\",\"param\":null,\"code\":null}}\n\n",
                        openai_error_type(ev->error_type, ev->status)));
    return AGW_OK;
}

agw_err agw_openai_encode_stream_event(agw_openai_stream_encoder *e, const agw_ir_event *ev,
                                       agw_buf *out)
{
    if (e->done)
        return AGW_OK; /* after [DONE] or an error the client reads nothing more */
    switch (ev->kind) {
    case AGW_IR_EV_MESSAGE_START:
        /* Anthropic reports input and cache tokens only here; the usage chunk
         * at the end needs them. */
        agw_ir_usage_merge(&e->usage, &ev->usage);
        return enc_role(e, ev->id, out);
    case AGW_IR_EV_BLOCK_START:
        if (ev->index < 0)
            return AGW_EINVAL;
        TRY(enc_role(e, (agw_str){ NULL, 0 }, out));
        /* Text and thinking show up with their deltas; only a call announces
         * itself, and only calls need their index remembered. */
        if (ev->block != AGW_IR_TOOL_USE) {
            if (ev->index < OAI_MAX_ENC_BLOCKS)
                e->tool_index[ev->index] = -1;
            return AGW_OK;
        }
        if (ev->index >= OAI_MAX_ENC_BLOCKS)
            return AGW_EINVAL;
        e->tool_args_sent[ev->index] = 0;
        return enc_tool_start(e, ev, out);
    case AGW_IR_EV_BLOCK_DELTA:
        if (ev->delta.len == 0 || ev->delta_kind == AGW_IR_DELTA_SIGNATURE)
            return AGW_OK;
        TRY(enc_role(e, (agw_str){ NULL, 0 }, out));
        switch (ev->delta_kind) {
        case AGW_IR_DELTA_TEXT: return enc_text_delta(e, out, "content", ev->delta);
        case AGW_IR_DELTA_THINKING: return enc_text_delta(e, out, "reasoning_content", ev->delta);
        case AGW_IR_DELTA_JSON:
            if (ev->index < 0 || ev->index >= OAI_MAX_ENC_BLOCKS || e->tool_index[ev->index] < 0)
                return AGW_EINVAL;
            e->tool_args_sent[ev->index] = 1;
            return enc_tool_delta(e, e->tool_index[ev->index], ev->delta, out);
        case AGW_IR_DELTA_SIGNATURE: return AGW_OK;
        }
        return AGW_EINVAL;
    case AGW_IR_EV_BLOCK_STOP:
        /* A call without input streams only "" from Anthropic; the client
         * must still be able to parse the arguments it assembled. */
        if (ev->index >= 0 && ev->index < OAI_MAX_ENC_BLOCKS && e->tool_index[ev->index] >= 0 &&
            !e->tool_args_sent[ev->index]) {
            e->tool_args_sent[ev->index] = 1;
            return enc_tool_delta(e, e->tool_index[ev->index], AGW_STR_LIT("{}"), out);
        }
        return AGW_OK;
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

void agw_openai_stream_encoder_free(agw_openai_stream_encoder *e)
{
    agw_arena_free(&e->arena);
}

/* ======================================================================
 * Response encoding (a fold -> chat.completion)
 * ====================================================================== */

agw_err agw_openai_encode_response(const agw_ir_fold *f, agw_str model, int64_t created,
                                   agw_buf *out)
{
    agw_arena a = AGW_ARENA_INIT;
    agw_str id;
    int has_text = 0, has_thinking = 0, ncalls = 0, first = 1;
    agw_err e;

    for (size_t i = 0; i < f->n_blocks; i++) {
        const agw_ir_fold_block *b = &f->blocks[i];
        has_text |= b->kind == AGW_IR_TEXT && b->text.len;
        has_thinking |= b->kind == AGW_IR_THINKING && b->text.len;
        ncalls += b->kind == AGW_IR_TOOL_USE;
    }
    e = make_chat_id(&a, f->id, &id);
    if (e == AGW_OK && (e = PUT(out, "{\"id\":")) == AGW_OK)
        e = put_jstr(out, id);
    agw_arena_free(&a);
    TRY(e);
    TRY(agw_buf_appendf(out, ",\"object\":\"chat.completion\",\"created\":%lld,\"model\":",
                        (long long)created));
    TRY(put_jstr(out, model));
    TRY(PUT(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"));
    if (has_text) {
        TRY(agw_buf_append(out, "\"", 1));
        for (size_t i = 0; i < f->n_blocks; i++)
            if (f->blocks[i].kind == AGW_IR_TEXT)
                TRY(put_esc(out, agw_buf_view(&f->blocks[i].text)));
        TRY(agw_buf_append(out, "\"", 1));
    } else {
        TRY(PUT(out, "null"));
    }
    TRY(PUT(out, ",\"refusal\":null"));
    if (has_thinking) {
        TRY(PUT(out, ",\"reasoning_content\":\""));
        for (size_t i = 0; i < f->n_blocks; i++)
            if (f->blocks[i].kind == AGW_IR_THINKING)
                TRY(put_esc(out, agw_buf_view(&f->blocks[i].text)));
        TRY(agw_buf_append(out, "\"", 1));
    }
    if (ncalls) {
        TRY(PUT(out, ",\"tool_calls\":["));
        for (size_t i = 0; i < f->n_blocks; i++) {
            const agw_ir_fold_block *b = &f->blocks[i];
            if (b->kind != AGW_IR_TOOL_USE)
                continue;
            TRY(put_sep(out, &first));
            TRY(put_tool_call(out, b->tool_id, b->tool_name, agw_buf_view(&b->text)));
        }
        TRY(agw_buf_append(out, "]", 1));
    }
    TRY(agw_buf_appendf(out, "},\"logprobs\":null,\"finish_reason\":\"%s\"}],\"usage\":",
                        finish_name(f->stop)));
    TRY(put_usage(out, &f->usage));
    return agw_buf_append(out, "}", 1);
}

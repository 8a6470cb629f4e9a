/*
 * proto_anthropic: the Anthropic Messages codec. The contract is in
 * proto_anthropic.h; the decisions that are not obvious from it:
 *
 * Request decoding
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
 *
 * Request encoding
 *  - The first message may be an assistant turn: the Messages API reference
 *    only asks for alternating turns and merges consecutive ones; it no
 *    longer requires a leading user turn, so none is invented or refused.
 *  - Message content is always written as an array of blocks; tool_result
 *    content too, so cache_control marks and images inside it survive.
 *  - A tool schema without "type" gets "type":"object" (the API requires it;
 *    an OpenAI function without parameters has none). top_p 1 is left out:
 *    it is a no-op, and newer models refuse temperature and top_p together.
 *
 * Streams
 *  - Decoded strings of one event live in the decoder's arena only while its
 *    sink calls run; the arena is emptied after every event so a long answer
 *    does not accumulate.
 *  - A sink returning non-zero stops the events of that call; as in sse.h,
 *    stopping is the consumer's decision and not an error (AGW_OK).
 *  - Unknown event names and unknown delta types are ignored, as the official
 *    SDKs do; content block types the IR cannot hold (server tool blocks)
 *    are AGW_EINVAL, since their deltas could not be placed.
 */
#include "proto/anthropic.h"

#include "core/json.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Nesting allowed in bodies and events: the gateway's own request limit. */
#define MAX_DEPTH 128
#define MAX_MESSAGES 10000
#define MAX_TOOLS 1000

/* ---- small shared helpers ---- */

/* Every input error of the codec is AGW_EINVAL with a message for the client. */
static agw_err vset_err(char *err, size_t errlen, const char *fmt, va_list ap)
    AGW_PRINTF(3, 0);

static agw_err vset_err(char *err, size_t errlen, const char *fmt, va_list ap)
{
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    return AGW_EINVAL;
}

static agw_err set_err(char *err, size_t errlen, const char *fmt, ...) AGW_PRINTF(3, 4);

static agw_err set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_err(err, errlen, fmt, ap);
    va_end(ap);
    return AGW_EINVAL;
}

/* A client- or upstream-supplied string made safe to quote in an error
 * message: control bytes become '?', and it is cut short. */
static const char *show(agw_str s, char *buf, size_t n)
{
    size_t i, lim = n > 4 ? n - 4 : 0;

    for (i = 0; i < s.len && i < lim; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (i < s.len && n >= 4) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    if (n)
        buf[i < n ? i : n - 1] = '\0';
    return buf;
}

typedef struct {
    const char *name;
    agw_str val; /* ptr NULL when absent */
} field;

/* Sets each f[i].val to the last member named f[i].name of obj and *unknown
 * (may be NULL) to the key token of the first member not listed. */
static void collect(agw_str obj, field *f, size_t n, agw_str *unknown)
{
    agw_json_iter it;
    agw_str k, v;

    for (size_t i = 0; i < n; i++)
        f[i].val = (agw_str){ NULL, 0 };
    if (unknown)
        *unknown = (agw_str){ NULL, 0 };
    if (agw_json_iter_init(&it, obj) != AGW_OK)
        return;
    while (agw_json_iter_next(&it, &k, &v)) {
        size_t i;
        for (i = 0; i < n; i++)
            if (agw_json_string_eq(k, agw_str_c(f[i].name))) {
                f[i].val = v;
                break;
            }
        if (i == n && unknown && !unknown->ptr)
            *unknown = k;
    }
}

static int present(agw_str v)
{
    return v.ptr != NULL && !agw_json_is_null(v);
}

static int is_type(agw_str v, agw_json_type t)
{
    return agw_json_type_of(v) == t;
}

static int is_bool(agw_str v)
{
    return agw_json_is_true(v) || agw_json_is_false(v);
}

/* The decoded value of a string token: a view into the token when it holds
 * no escape, else a copy in the arena made through scratch. */
static agw_err str_value(agw_arena *a, agw_buf *scratch, agw_str tok, agw_str *out)
{
    agw_err e = agw_json_string_view(tok, scratch, out);
    if (e == AGW_OK && out->ptr != tok.ptr + 1)
        *out = agw_arena_str(a, *out);
    return e;
}

/* A number token as a double (syntax already validated). */
static double num_value(agw_str v)
{
    char small[64];
    char *p = small, *heap = NULL;
    double d;

    if (v.len >= sizeof small)
        p = heap = agw_str_dup(v);
    else {
        memcpy(small, v.ptr, v.len);
        small[v.len] = '\0';
    }
    d = strtod(p, NULL);
    free(heap);
    return d;
}

/* Shortest "%g" spelling that reads back as the same double, so 0.7 goes
 * upstream as 0.7 and not 0.69999999999999996. */
static void fmt_double(double v, char *buf, size_t n)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* Anthropic error types and the HTTP status each stands for. */
static const struct {
    const char *type;
    int status;
} error_types[] = {
    { "invalid_request_error", 400 }, { "authentication_error", 401 },
    { "billing_error", 402 },         { "permission_error", 403 },
    { "not_found_error", 404 },       { "request_too_large", 413 },
    { "rate_limit_error", 429 },      { "api_error", 500 },
    { "timeout_error", 504 },         { "overloaded_error", 529 },
};

#define N_ERROR_TYPES (sizeof error_types / sizeof error_types[0])

static int status_for_error_type(agw_str type)
{
    for (size_t i = 0; i < N_ERROR_TYPES; i++)
        if (agw_str_eq(type, agw_str_c(error_types[i].type)))
            return error_types[i].status;
    return 500;
}

static const char *error_type_for(agw_str type, int status)
{
    for (size_t i = 0; i < N_ERROR_TYPES; i++)
        if (agw_str_eq(type, agw_str_c(error_types[i].type)))
            return error_types[i].type;
    for (size_t i = 0; i < N_ERROR_TYPES; i++)
        if (error_types[i].status == status)
            return error_types[i].type;
    return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
}

/* ---- writing JSON ---- */

/* A writer with a sticky error, so encoders read as a list of appends. */
typedef struct {
    agw_buf *b;
    agw_err e;
} wr;

static void w_raw(wr *w, const char *p, size_t n)
{
    if (w->e == AGW_OK)
        w->e = agw_buf_append(w->b, p, n);
}

#define W_LIT(w, s) w_raw((w), AGW_CONST_STR_LEN(s))

static void w_cstr(wr *w, const char *s)
{
    w_raw(w, s, strlen(s));
}

static void w_view(wr *w, agw_str s)
{
    w_raw(w, s.ptr, s.len);
}

static void w_esc(wr *w, agw_str s)
{
    if (w->e == AGW_OK)
        w->e = agw_buf_append_json_escaped(w->b, s);
}

static void w_str(wr *w, agw_str s)
{
    W_LIT(w, "\"");
    w_esc(w, s);
    W_LIT(w, "\"");
}

static void w_int(wr *w, int64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
    w_raw(w, tmp, (size_t)n);
}

static void w_double(wr *w, double v)
{
    char tmp[40];
    fmt_double(v, tmp, sizeof tmp);
    w_raw(w, tmp, strlen(tmp));
}

/* A "msg_" id: the one the caller chose, else the upstream's (prefixed when
 * it lacks "msg_", e.g. an OpenAI "chatcmpl-..."), else a random one. */
static void w_message_id(wr *w, agw_str chosen, agw_str upstream)
{
    if (chosen.len) {
        w_str(w, chosen);
    } else if (agw_str_starts(upstream, AGW_STR_LIT("msg_"))) {
        w_str(w, upstream);
    } else if (upstream.len) {
        W_LIT(w, "\"msg_");
        w_esc(w, upstream);
        W_LIT(w, "\"");
    } else {
        char hex[25];
        if (w->e == AGW_OK && (w->e = agw_random_hex(hex, 12)) == AGW_OK) {
            W_LIT(w, "\"msg_");
            w_raw(w, hex, 24);
            W_LIT(w, "\"");
        }
    }
}

/* Count left at 0 when unknown: clients expect numbers here. */
static void w_count(wr *w, int64_t v)
{
    w_int(w, v < 0 ? 0 : v);
}

/* 1 when s is one valid JSON object (what raw views must be to be spliced). */
static int raw_object(agw_str s)
{
    return s.len && agw_json_validate(s, MAX_DEPTH, NULL, 0) == AGW_OK &&
           is_type(s, AGW_JSON_OBJECT);
}

/* Restores out to its first `start` bytes after an input error, so a failed
 * encode appends nothing (AGW_ETOOBIG has already freed it). */
static agw_err finish_write(agw_buf *out, size_t start, agw_err e)
{
    if (e != AGW_OK && e != AGW_ETOOBIG && out->len >= start) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return e;
}

/* ==== request decoding ==== */

typedef struct {
    agw_arena *arena;
    agw_buf scratch;
    char *err;
    size_t errlen;
} dec;

static agw_err fail(dec *d, const char *fmt, ...) AGW_PRINTF(2, 3);

static agw_err fail(dec *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_err(d->err, d->errlen, fmt, ap);
    va_end(ap);
    return AGW_EINVAL;
}

/* Formats a field path for messages; one cut short ends in "...". Real
 * paths ("messages[9999].content[12].source.media_type") fit easily. */
static const char *pathf(char *buf, size_t n, const char *fmt, ...) AGW_PRINTF(3, 4);

static const char *pathf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    int k;

    va_start(ap, fmt);
    k = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (k >= 0 && (size_t)k >= n && n > 4)
        memcpy(buf + n - 4, "...", 4);
    return buf;
}

/* "path.name", or "name" at the top level. */
static const char *join(const char *path, const char *name, char *buf, size_t n)
{
    return pathf(buf, n, "%s%s%s", path, *path ? "." : "", name);
}

static agw_err get_str(dec *d, agw_str v, const char *path, const char *name, int required,
                       agw_str *out)
{
    char p[160];

    if (!v.ptr) {
        if (required)
            return fail(d, "%s is required", join(path, name, p, sizeof p));
        return AGW_OK;
    }
    if (!required && agw_json_is_null(v))
        return AGW_OK;
    if (!is_type(v, AGW_JSON_STRING))
        return fail(d, "%s must be a string", join(path, name, p, sizeof p));
    return str_value(d->arena, &d->scratch, v, out);
}

/* An optional object kept as its raw JSON text. */
static agw_err get_raw_object(dec *d, agw_str v, const char *path, const char *name, agw_str *out)
{
    char p[160];

    if (!present(v))
        return AGW_OK;
    if (!is_type(v, AGW_JSON_OBJECT))
        return fail(d, "%s must be an object", join(path, name, p, sizeof p));
    *out = v;
    return AGW_OK;
}

static agw_err get_bool(dec *d, agw_str v, const char *path, const char *name, int *out)
{
    char p[160];

    if (!present(v))
        return AGW_OK;
    if (!is_bool(v))
        return fail(d, "%s must be a boolean", join(path, name, p, sizeof p));
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

static agw_err decode_block(dec *d, agw_str v, const char *path, agw_ir_role role, int where,
                            agw_ir_block *b);

static agw_err decode_image_source(dec *d, agw_str src, const char *path, agw_ir_block *b)
{
    field f[] = { { "type", { 0 } }, { "media_type", { 0 } }, { "data", { 0 } }, { "url", { 0 } } };
    char p[160], tb[48];
    agw_str type = { NULL, 0 };
    agw_err e;

    join(path, "source", p, sizeof p);
    if (!src.ptr)
        return fail(d, "%s is required", p);
    if (!is_type(src, AGW_JSON_OBJECT))
        return fail(d, "%s must be an object", p);
    collect(src, f, 4, NULL);
    if ((e = get_str(d, f[0].val, p, "type", 1, &type)) != AGW_OK)
        return e;
    if (agw_str_eq(type, AGW_STR_LIT("base64"))) {
        if ((e = get_str(d, f[1].val, p, "media_type", 1, &b->media_type)) != AGW_OK)
            return e;
        return get_str(d, f[2].val, p, "data", 1, &b->image_data);
    }
    if (agw_str_eq(type, AGW_STR_LIT("url"))) {
        b->image_is_url = 1;
        return get_str(d, f[3].val, p, "url", 1, &b->image_data);
    }
    return fail(d, "%s: image source type %s cannot be converted", p, show(type, tb, sizeof tb));
}

/* The shortest JSON text a valid block can have: {"type":"text","text":""}. */
#define MIN_BLOCK_BYTES 25

/* Blocks to allocate for an array: its elements up to and including the
 * first one too short to be a block (decoding fails there). An IR block is
 * far bigger than its JSON, so counting "{}," as blocks would let a 10 MB
 * body claim half a gigabyte; this keeps memory within a small multiple of
 * what valid blocks need. */
static size_t block_count(agw_str arr)
{
    agw_json_iter it;
    agw_str v;
    size_t n = 0;

    if (agw_json_iter_init(&it, arr) != AGW_OK)
        return 0;
    while (agw_json_iter_next(&it, NULL, &v)) {
        n++;
        if (v.len < MIN_BLOCK_BYTES)
            break;
    }
    return n;
}

static agw_err decode_blocks(dec *d, agw_str arr, const char *path, agw_ir_role role, int where,
                             agw_ir_block **out, size_t *n_out)
{
    agw_json_iter it;
    agw_str v;
    size_t n = block_count(arr), i = 0;
    agw_err e;

    *out = agw_arena_array(d->arena, n ? n : 1, sizeof **out);
    *n_out = n;
    if (agw_json_iter_init(&it, arr) != AGW_OK)
        return AGW_EINVAL;
    while (i < n && agw_json_iter_next(&it, NULL, &v)) {
        char p[160];
        pathf(p, sizeof p, "%s[%zu]", path, i);
        if ((e = decode_block(d, v, p, role, where, &(*out)[i])) != AGW_OK)
            return e;
        i++;
    }
    return AGW_OK;
}

/* A text block holding a whole string value (message or tool_result content). */
static agw_err string_as_blocks(dec *d, agw_str v, agw_ir_block **out, size_t *n_out)
{
    *out = agw_arena_array(d->arena, 1, sizeof **out);
    *n_out = 1;
    (*out)[0].kind = AGW_IR_TEXT;
    return str_value(d->arena, &d->scratch, v, &(*out)[0].text);
}

static agw_err decode_block(dec *d, agw_str v, const char *path, agw_ir_role role, int where,
                            agw_ir_block *b)
{
    field f[B_COUNT] = {
        { "type", { 0 } },        { "text", { 0 } },    { "cache_control", { 0 } },
        { "source", { 0 } },      { "id", { 0 } },      { "name", { 0 } },
        { "input", { 0 } },       { "tool_use_id", { 0 } }, { "content", { 0 } },
        { "is_error", { 0 } },    { "thinking", { 0 } }, { "signature", { 0 } },
        { "data", { 0 } },
    };
    agw_str type = { NULL, 0 };
    char tb[48], p[160];
    agw_err e;

    if (!is_type(v, AGW_JSON_OBJECT))
        return fail(d, "%s must be an object", path);
    collect(v, f, B_COUNT, NULL);
    if ((e = get_str(d, f[B_TYPE].val, path, "type", 1, &type)) != AGW_OK)
        return e;
    if (where == IN_SYSTEM && !agw_str_eq(type, AGW_STR_LIT("text")))
        return fail(d, "%s.type must be \"text\" in system", path);

    if (agw_str_eq(type, AGW_STR_LIT("text"))) {
        b->kind = AGW_IR_TEXT;
        if ((e = get_str(d, f[B_TEXT].val, path, "text", 1, &b->text)) != AGW_OK)
            return e;
        return get_raw_object(d, f[B_CACHE].val, path, "cache_control", &b->cache_control);
    }
    if (agw_str_eq(type, AGW_STR_LIT("image"))) {
        b->kind = AGW_IR_IMAGE;
        if (where == IN_MESSAGE && role != AGW_IR_USER)
            return fail(d, "%s: image blocks are only allowed in user messages", path);
        if ((e = decode_image_source(d, f[B_SOURCE].val, path, b)) != AGW_OK)
            return e;
        return get_raw_object(d, f[B_CACHE].val, path, "cache_control", &b->cache_control);
    }
    if (where == IN_TOOL_RESULT)
        return fail(d, "%s: content block type %s cannot be converted", path,
                    show(type, tb, sizeof tb));

    if (agw_str_eq(type, AGW_STR_LIT("tool_use"))) {
        b->kind = AGW_IR_TOOL_USE;
        if (role != AGW_IR_ASSISTANT)
            return fail(d, "%s: tool_use blocks are only allowed in assistant messages", path);
        if ((e = get_str(d, f[B_ID].val, path, "id", 1, &b->tool_id)) != AGW_OK ||
            (e = get_str(d, f[B_NAME].val, path, "name", 1, &b->tool_name)) != AGW_OK)
            return e;
        if (!f[B_INPUT].val.ptr)
            return fail(d, "%s.input is required", path);
        if (!is_type(f[B_INPUT].val, AGW_JSON_OBJECT))
            return fail(d, "%s.input must be an object", path);
        b->tool_input = f[B_INPUT].val;
        return get_raw_object(d, f[B_CACHE].val, path, "cache_control", &b->cache_control);
    }
    if (agw_str_eq(type, AGW_STR_LIT("tool_result"))) {
        agw_str c = f[B_CONTENT].val;
        b->kind = AGW_IR_TOOL_RESULT;
        if (role != AGW_IR_USER)
            return fail(d, "%s: tool_result blocks are only allowed in user messages", path);
        if ((e = get_str(d, f[B_TOOL_USE_ID].val, path, "tool_use_id", 1, &b->tool_id)) != AGW_OK ||
            (e = get_bool(d, f[B_IS_ERROR].val, path, "is_error", &b->is_error)) != AGW_OK ||
            (e = get_raw_object(d, f[B_CACHE].val, path, "cache_control", &b->cache_control)) !=
                AGW_OK)
            return e;
        if (!present(c))
            return AGW_OK;
        if (is_type(c, AGW_JSON_STRING))
            return string_as_blocks(d, c, &b->content, &b->n_content);
        if (!is_type(c, AGW_JSON_ARRAY))
            return fail(d, "%s.content must be a string or an array", path);
        return decode_blocks(d, c, join(path, "content", p, sizeof p), role, IN_TOOL_RESULT,
                             &b->content, &b->n_content);
    }
    if (agw_str_eq(type, AGW_STR_LIT("thinking"))) {
        b->kind = AGW_IR_THINKING;
        if (role != AGW_IR_ASSISTANT)
            return fail(d, "%s: thinking blocks are only allowed in assistant messages", path);
        if ((e = get_str(d, f[B_THINKING].val, path, "thinking", 1, &b->text)) != AGW_OK)
            return e;
        return get_str(d, f[B_SIGNATURE].val, path, "signature", 0, &b->signature);
    }
    if (agw_str_eq(type, AGW_STR_LIT("redacted_thinking"))) {
        b->kind = AGW_IR_REDACTED_THINKING;
        if (role != AGW_IR_ASSISTANT)
            return fail(d, "%s: redacted_thinking blocks are only allowed in assistant messages",
                        path);
        return get_str(d, f[B_DATA].val, path, "data", 1, &b->text);
    }
    return fail(d, "%s: content block type %s cannot be converted", path, show(type, tb, sizeof tb));
}

static agw_err decode_messages(dec *d, agw_str v, agw_ir_request *rq)
{
    agw_json_iter it;
    agw_str m;
    size_t n, i = 0;
    agw_err e;

    if (!v.ptr)
        return fail(d, "messages is required");
    if (!is_type(v, AGW_JSON_ARRAY))
        return fail(d, "messages must be an array");
    n = array_len(v, MAX_MESSAGES);
    if (n == 0)
        return fail(d, "messages must not be empty");
    if (n > MAX_MESSAGES)
        return fail(d, "messages has more than %d entries", MAX_MESSAGES);
    rq->messages = agw_arena_array(d->arena, n, sizeof *rq->messages);
    rq->n_messages = n;
    if (agw_json_iter_init(&it, v) != AGW_OK)
        return AGW_EINVAL;
    while (i < n && agw_json_iter_next(&it, NULL, &m)) {
        field f[] = { { "role", { 0 } }, { "content", { 0 } } };
        agw_ir_message *msg = &rq->messages[i];
        agw_str role = { NULL, 0 }, c;
        char path[64], p[96];

        snprintf(path, sizeof path, "messages[%zu]", i);
        if (!is_type(m, AGW_JSON_OBJECT))
            return fail(d, "%s must be an object", path);
        collect(m, f, 2, NULL);
        if ((e = get_str(d, f[0].val, path, "role", 1, &role)) != AGW_OK)
            return e;
        if (agw_str_eq(role, AGW_STR_LIT("user")))
            msg->role = AGW_IR_USER;
        else if (agw_str_eq(role, AGW_STR_LIT("assistant")))
            msg->role = AGW_IR_ASSISTANT;
        else
            return fail(d, "%s.role must be \"user\" or \"assistant\"", path);
        c = f[1].val;
        if (!c.ptr)
            return fail(d, "%s.content is required", path);
        if (is_type(c, AGW_JSON_STRING))
            e = string_as_blocks(d, c, &msg->blocks, &msg->n_blocks);
        else if (is_type(c, AGW_JSON_ARRAY))
            e = decode_blocks(d, c, join(path, "content", p, sizeof p), msg->role, IN_MESSAGE,
                              &msg->blocks, &msg->n_blocks);
        else
            return fail(d, "%s.content must be a string or an array", path);
        if (e != AGW_OK)
            return e;
        i++;
    }
    return AGW_OK;
}

static agw_err decode_system(dec *d, agw_str v, agw_ir_request *rq)
{
    if (!present(v))
        return AGW_OK;
    if (is_type(v, AGW_JSON_STRING))
        return string_as_blocks(d, v, &rq->system, &rq->n_system);
    if (!is_type(v, AGW_JSON_ARRAY))
        return fail(d, "system must be a string or an array");
    return decode_blocks(d, v, "system", AGW_IR_USER, IN_SYSTEM, &rq->system, &rq->n_system);
}

static agw_err decode_tools(dec *d, agw_str v, agw_ir_request *rq)
{
    agw_json_iter it;
    agw_str t;
    size_t n, i = 0;
    agw_err e;

    if (!present(v))
        return AGW_OK;
    if (!is_type(v, AGW_JSON_ARRAY))
        return fail(d, "tools must be an array");
    n = array_len(v, MAX_TOOLS);
    if (n > MAX_TOOLS)
        return fail(d, "tools has more than %d entries", MAX_TOOLS);
    rq->tools = agw_arena_array(d->arena, n ? n : 1, sizeof *rq->tools);
    rq->n_tools = n;
    if (agw_json_iter_init(&it, v) != AGW_OK)
        return AGW_EINVAL;
    while (i < n && agw_json_iter_next(&it, NULL, &t)) {
        field f[] = { { "type", { 0 } },         { "name", { 0 } },
                      { "description", { 0 } },  { "input_schema", { 0 } },
                      { "cache_control", { 0 } }, { "strict", { 0 } } };
        agw_ir_tool *tool = &rq->tools[i];
        agw_str type = { NULL, 0 };
        char path[32], tb[48];

        snprintf(path, sizeof path, "tools[%zu]", i);
        if (!is_type(t, AGW_JSON_OBJECT))
            return fail(d, "%s must be an object", path);
        collect(t, f, 6, NULL);
        if ((e = get_str(d, f[0].val, path, "type", 0, &type)) != AGW_OK)
            return e;
        /* Server tools (web_search_..., bash_..., text_editor_...) run at
         * Anthropic; no other upstream can execute them. */
        if (type.ptr && !agw_str_eq(type, AGW_STR_LIT("custom")))
            return fail(d, "%s: tool type %s cannot be converted", path, show(type, tb, sizeof tb));
        if ((e = get_str(d, f[1].val, path, "name", 1, &tool->name)) != AGW_OK ||
            (e = get_str(d, f[2].val, path, "description", 0, &tool->description)) != AGW_OK)
            return e;
        if (!f[3].val.ptr)
            return fail(d, "%s.input_schema is required", path);
        if (!is_type(f[3].val, AGW_JSON_OBJECT))
            return fail(d, "%s.input_schema must be an object", path);
        tool->schema = f[3].val;
        if ((e = get_raw_object(d, f[4].val, path, "cache_control", &tool->cache_control)) !=
            AGW_OK)
            return e;
        /* strict (guaranteed schema conformance) has no IR field; refusing
         * it is honest, dropping it would weaken what the client relies on. */
        if (present(f[5].val)) {
            if (!is_bool(f[5].val))
                return fail(d, "%s.strict must be a boolean", path);
            if (agw_json_is_true(f[5].val))
                return fail(d, "%s.strict cannot be converted", path);
        }
        i++;
    }
    return AGW_OK;
}

static agw_err decode_tool_choice(dec *d, agw_str v, agw_ir_request *rq)
{
    field f[] = { { "type", { 0 } }, { "name", { 0 } }, { "disable_parallel_tool_use", { 0 } } };
    agw_str type = { NULL, 0 };
    int disable = -1;
    agw_err e;

    if (!present(v))
        return AGW_OK;
    if (!is_type(v, AGW_JSON_OBJECT))
        return fail(d, "tool_choice must be an object");
    collect(v, f, 3, NULL);
    if ((e = get_str(d, f[0].val, "tool_choice", "type", 1, &type)) != AGW_OK ||
        (e = get_bool(d, f[2].val, "tool_choice", "disable_parallel_tool_use", &disable)) != AGW_OK)
        return e;
    if (agw_str_eq(type, AGW_STR_LIT("auto")))
        rq->tool_choice = AGW_IR_TC_AUTO;
    else if (agw_str_eq(type, AGW_STR_LIT("any")))
        rq->tool_choice = AGW_IR_TC_ANY;
    else if (agw_str_eq(type, AGW_STR_LIT("none")))
        rq->tool_choice = AGW_IR_TC_NONE;
    else if (agw_str_eq(type, AGW_STR_LIT("tool"))) {
        rq->tool_choice = AGW_IR_TC_TOOL;
        if ((e = get_str(d, f[1].val, "tool_choice", "name", 1, &rq->tool_choice_name)) != AGW_OK)
            return e;
    } else
        return fail(d, "tool_choice.type must be \"auto\", \"any\", \"none\" or \"tool\"");
    if (disable >= 0)
        rq->parallel_tool_calls = !disable;
    return AGW_OK;
}

/* A number within 0..1 (temperature, top_p); name for the message. */
static agw_err get_unit(dec *d, agw_str v, const char *name, int *has, double *out)
{
    double x;

    if (!present(v))
        return AGW_OK;
    if (!is_type(v, AGW_JSON_NUMBER))
        return fail(d, "%s must be a number", name);
    x = num_value(v);
    if (!(x >= 0.0 && x <= 1.0))
        return fail(d, "%s must be between 0 and 1", name);
    *has = 1;
    *out = x;
    return AGW_OK;
}

/* A non-negative integer, -1 when absent. */
static agw_err get_count(dec *d, agw_str v, const char *name, int64_t *out)
{
    agw_err e;

    if (!present(v))
        return AGW_OK;
    if (!is_type(v, AGW_JSON_NUMBER) || (e = agw_json_int64(v, out)) == AGW_EINVAL)
        return fail(d, "%s must be an integer", name);
    if (e != AGW_OK || *out < 0)
        return fail(d, "%s is out of range", name);
    return AGW_OK;
}

static agw_err decode_stop(dec *d, agw_str v, agw_ir_request *rq)
{
    agw_json_iter it;
    agw_str s;
    size_t n, i = 0;
    agw_err e;

    if (!present(v))
        return AGW_OK;
    if (!is_type(v, AGW_JSON_ARRAY))
        return fail(d, "stop_sequences must be an array");
    n = array_len(v, SIZE_MAX - 1);
    rq->stop = agw_arena_array(d->arena, n ? n : 1, sizeof *rq->stop);
    rq->n_stop = n;
    if (agw_json_iter_init(&it, v) != AGW_OK)
        return AGW_EINVAL;
    while (i < n && agw_json_iter_next(&it, NULL, &s)) {
        if (!is_type(s, AGW_JSON_STRING))
            return fail(d, "stop_sequences[%zu] must be a string", i);
        if ((e = str_value(d->arena, &d->scratch, s, &rq->stop[i])) != AGW_OK)
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

    if (!present(v))
        return AGW_OK;
    if (!is_type(v, AGW_JSON_OBJECT))
        return fail(d, "output_config must be an object");
    if (agw_json_iter_init(&it, v) != AGW_OK)
        return AGW_EINVAL;
    /* effort trades cost for depth; only it can be dropped harmlessly. */
    while (agw_json_iter_next(&it, &k, &val)) {
        if (agw_json_string_eq(k, AGW_STR_LIT("effort")) || agw_json_is_null(val))
            continue;
        agw_buf_reset(&d->scratch);
        if ((e = agw_json_string_decode(k, &d->scratch)) != AGW_OK)
            return e;
        return fail(d, "output_config.%s cannot be converted",
                    show(agw_buf_view(&d->scratch), kb, sizeof kb));
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

static agw_err decode_request(dec *d, agw_str body, agw_ir_request *rq)
{
    field f[T_COUNT];
    agw_str unknown, meta;
    char why[96], kb[48];
    agw_err e;

    e = agw_json_validate(body, MAX_DEPTH, why, sizeof why);
    if (e == AGW_ETOOBIG)
        return fail(d, "the request body is nested too deeply");
    if (e != AGW_OK)
        return fail(d, "the request body is not valid JSON: %s", why);
    if (!is_type(body, AGW_JSON_OBJECT))
        return fail(d, "the request body must be a JSON object");

    for (size_t i = 0; i < T_COUNT; i++)
        f[i].name = top_names[i];
    collect(body, f, T_COUNT, &unknown);
    if (unknown.ptr) {
        agw_buf_reset(&d->scratch);
        if ((e = agw_json_string_decode(unknown, &d->scratch)) != AGW_OK)
            return e;
        return fail(d, "unknown field %s", show(agw_buf_view(&d->scratch), kb, sizeof kb));
    }
    for (size_t i = T_FIRST_REJECTED; i < T_COUNT; i++)
        if (present(f[i].val))
            return fail(d, "%s cannot be converted for a model of another provider", top_names[i]);

    if ((e = get_str(d, f[T_MODEL].val, "", "model", 1, &rq->model)) != AGW_OK ||
        (e = decode_messages(d, f[T_MESSAGES].val, rq)) != AGW_OK ||
        (e = get_count(d, f[T_MAX_TOKENS].val, "max_tokens", &rq->max_tokens)) != AGW_OK ||
        (e = decode_system(d, f[T_SYSTEM].val, rq)) != AGW_OK ||
        (e = decode_tools(d, f[T_TOOLS].val, rq)) != AGW_OK ||
        (e = decode_tool_choice(d, f[T_TOOL_CHOICE].val, rq)) != AGW_OK ||
        (e = get_unit(d, f[T_TEMPERATURE].val, "temperature", &rq->has_temperature,
                      &rq->temperature)) != AGW_OK ||
        (e = get_unit(d, f[T_TOP_P].val, "top_p", &rq->has_top_p, &rq->top_p)) != AGW_OK ||
        (e = get_count(d, f[T_TOP_K].val, "top_k", &rq->top_k)) != AGW_OK ||
        (e = decode_stop(d, f[T_STOP].val, rq)) != AGW_OK ||
        (e = get_bool(d, f[T_STREAM].val, "", "stream", &rq->stream)) != AGW_OK ||
        (e = get_raw_object(d, f[T_THINKING].val, "", "thinking", &rq->thinking)) != AGW_OK ||
        (e = decode_output_config(d, f[T_OUTPUT_CONFIG].val)) != AGW_OK)
        return e;

    meta = f[T_METADATA].val;
    if (present(meta)) {
        field mf[] = { { "user_id", { 0 } } };
        if (!is_type(meta, AGW_JSON_OBJECT))
            return fail(d, "metadata must be an object");
        collect(meta, mf, 1, NULL);
        if ((e = get_str(d, mf[0].val, "metadata", "user_id", 0, &rq->user)) != AGW_OK)
            return e;
    }
    return AGW_OK;
}

agw_err agw_anthropic_decode_request(agw_str body, agw_arena *arena, agw_ir_request *out,
                                     char *err, size_t errlen)
{
    dec d = { arena, AGW_BUF_INIT(body.len + 16), err, errlen };
    agw_err e;

    memset(out, 0, sizeof *out);
    out->max_tokens = -1;
    out->top_k = -1;
    out->parallel_tool_calls = -1;
    out->tool_choice = AGW_IR_TC_UNSET;
    e = decode_request(&d, body, out);
    agw_buf_free(&d.scratch);
    if (e != AGW_OK && e != AGW_EINVAL)
        e = set_err(err, errlen, "the request could not be decoded (%s)", agw_strerror(e));
    return e;
}

/* ==== request encoding ==== */

typedef struct {
    wr w;
    char *err;
    size_t errlen;
} enc;

static void w_cache_control(wr *w, agw_str cc)
{
    if (cc.len) {
        W_LIT(w, ",\"cache_control\":");
        w_view(w, cc);
    }
}

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

static agw_err enc_fail(enc *x, const char *fmt, ...) AGW_PRINTF(2, 3);

static agw_err enc_fail(enc *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_err(x->err, x->errlen, fmt, ap);
    va_end(ap);
    if (x->w.e == AGW_OK)
        x->w.e = AGW_EINVAL;
    return x->w.e;
}

static agw_err enc_text(enc *x, const agw_ir_block *b)
{
    W_LIT(&x->w, "{\"type\":\"text\",\"text\":");
    w_str(&x->w, b->text);
    if (b->cache_control.len && !raw_object(b->cache_control))
        return enc_fail(x, "a cache_control mark is not a JSON object");
    w_cache_control(&x->w, b->cache_control);
    W_LIT(&x->w, "}");
    return x->w.e;
}

static agw_err enc_image(enc *x, const agw_ir_block *b, const char *where)
{
    if (!b->image_data.len)
        return enc_fail(x, "%s: an image has no data", where);
    if (b->image_is_url) {
        W_LIT(&x->w, "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":");
        w_str(&x->w, b->image_data);
    } else {
        if (!b->media_type.len)
            return enc_fail(x, "%s: a base64 image has no media type", where);
        W_LIT(&x->w, "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":");
        w_str(&x->w, b->media_type);
        W_LIT(&x->w, ",\"data\":");
        w_str(&x->w, b->image_data);
    }
    W_LIT(&x->w, "}");
    if (b->cache_control.len && !raw_object(b->cache_control))
        return enc_fail(x, "a cache_control mark is not a JSON object");
    w_cache_control(&x->w, b->cache_control);
    W_LIT(&x->w, "}");
    return x->w.e;
}

static agw_err enc_tool_result(enc *x, const agw_ir_block *b, const char *where)
{
    int first = 1;

    W_LIT(&x->w, "{\"type\":\"tool_result\",\"tool_use_id\":");
    w_str(&x->w, b->tool_id);
    for (size_t i = 0; i < b->n_content; i++) {
        const agw_ir_block *c = &b->content[i];
        if (c->kind == AGW_IR_TEXT && !c->text.len)
            continue;
        w_cstr(&x->w, first ? ",\"content\":[" : ",");
        first = 0;
        if (c->kind == AGW_IR_TEXT)
            enc_text(x, c);
        else if (c->kind == AGW_IR_IMAGE)
            enc_image(x, c, where);
        else
            return enc_fail(x, "%s: a tool_result may only hold text and images", where);
    }
    if (!first)
        W_LIT(&x->w, "]");
    if (b->is_error)
        W_LIT(&x->w, ",\"is_error\":true");
    if (b->cache_control.len && !raw_object(b->cache_control))
        return enc_fail(x, "a cache_control mark is not a JSON object");
    w_cache_control(&x->w, b->cache_control);
    W_LIT(&x->w, "}");
    return x->w.e;
}

static agw_err enc_block(enc *x, const agw_ir_block *b, const char *where)
{
    switch (b->kind) {
    case AGW_IR_TEXT:
        return enc_text(x, b);
    case AGW_IR_IMAGE:
        return enc_image(x, b, where);
    case AGW_IR_TOOL_RESULT:
        return enc_tool_result(x, b, where);
    case AGW_IR_TOOL_USE: {
        agw_str input = b->tool_input.len ? b->tool_input : AGW_STR_LIT("{}");
        char nb[48];
        if (!raw_object(input))
            return enc_fail(x, "%s: the input of tool call %s is not a JSON object", where,
                            show(b->tool_name, nb, sizeof nb));
        W_LIT(&x->w, "{\"type\":\"tool_use\",\"id\":");
        w_str(&x->w, b->tool_id);
        W_LIT(&x->w, ",\"name\":");
        w_str(&x->w, b->tool_name);
        W_LIT(&x->w, ",\"input\":");
        w_view(&x->w, input);
        if (b->cache_control.len && !raw_object(b->cache_control))
            return enc_fail(x, "a cache_control mark is not a JSON object");
        w_cache_control(&x->w, b->cache_control);
        W_LIT(&x->w, "}");
        return x->w.e;
    }
    case AGW_IR_THINKING:
        W_LIT(&x->w, "{\"type\":\"thinking\",\"thinking\":");
        w_str(&x->w, b->text);
        W_LIT(&x->w, ",\"signature\":");
        w_str(&x->w, b->signature);
        W_LIT(&x->w, "}");
        return x->w.e;
    case AGW_IR_REDACTED_THINKING:
        W_LIT(&x->w, "{\"type\":\"redacted_thinking\",\"data\":");
        w_str(&x->w, b->text);
        W_LIT(&x->w, "}");
        return x->w.e;
    }
    return enc_fail(x, "%s: unknown block kind", where);
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
    W_LIT(&x->w, ",\"messages\":[");
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
        w_cstr(&x->w, turns ? ",{\"role\":" : "{\"role\":");
        w_cstr(&x->w, role == AGW_IR_USER ? "\"user\"" : "\"assistant\"");
        W_LIT(&x->w, ",\"content\":[");
        /* The API wants a user turn's tool_results before anything else. */
        for (int pass = role == AGW_IR_USER ? 0 : 1; pass < 2; pass++) {
            for (size_t k = i; k < j; k++) {
                if (m[k].role != role)
                    continue;
                for (size_t b = 0; b < m[k].n_blocks; b++) {
                    const agw_ir_block *blk = &m[k].blocks[b];
                    char where[64];
                    if (!block_kept(blk) || (role == AGW_IR_USER &&
                                             (blk->kind == AGW_IR_TOOL_RESULT) != (pass == 0)))
                        continue;
                    snprintf(where, sizeof where, "messages[%zu].content[%zu]", k, b);
                    if (!first)
                        W_LIT(&x->w, ",");
                    first = 0;
                    if (enc_block(x, blk, where) != AGW_OK)
                        return x->w.e;
                }
            }
        }
        W_LIT(&x->w, "]}");
        turns++;
        i = j;
    }
    if (!turns)
        return enc_fail(x, "messages: nothing is left to send once empty messages are removed");
    W_LIT(&x->w, "]");
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
        W_LIT(&x->w, ",\"system\":");
        w_str(&x->w, rq->system[last].text);
        return x->w.e;
    }
    W_LIT(&x->w, ",\"system\":[");
    for (size_t i = 0; i < rq->n_system; i++) {
        if (!rq->system[i].text.len)
            continue;
        if (!first)
            W_LIT(&x->w, ",");
        first = 0;
        if (enc_text(x, &rq->system[i]) != AGW_OK)
            return x->w.e;
    }
    W_LIT(&x->w, "]");
    return x->w.e;
}

static agw_err enc_tools(enc *x, const agw_ir_request *rq)
{
    if (!rq->n_tools)
        return AGW_OK;
    W_LIT(&x->w, ",\"tools\":[");
    for (size_t i = 0; i < rq->n_tools; i++) {
        const agw_ir_tool *t = &rq->tools[i];
        agw_str v;

        if (!t->name.len)
            return enc_fail(x, "tools[%zu] has no name", i);
        w_cstr(&x->w, i ? ",{\"name\":" : "{\"name\":");
        w_str(&x->w, t->name);
        if (t->description.len) {
            W_LIT(&x->w, ",\"description\":");
            w_str(&x->w, t->description);
        }
        W_LIT(&x->w, ",\"input_schema\":");
        if (!t->schema.len) {
            W_LIT(&x->w, "{\"type\":\"object\"}");
        } else if (!raw_object(t->schema)) {
            return enc_fail(x, "tools[%zu]: the parameter schema is not a JSON object", i);
        } else if (agw_json_find(t->schema, AGW_STR_LIT("type"), &v) == AGW_OK) {
            w_view(&x->w, t->schema);
        } else {
            /* Insert the "type" the API requires after the opening brace. */
            const char *brace = memchr(t->schema.ptr, '{', t->schema.len);
            agw_str rest = { brace + 1, t->schema.len - (size_t)(brace + 1 - t->schema.ptr) };
            agw_json_iter it;
            agw_str k, val;
            int empty = agw_json_iter_init(&it, t->schema) != AGW_OK ||
                        !agw_json_iter_next(&it, &k, &val);
            W_LIT(&x->w, "{\"type\":\"object\"");
            if (!empty)
                W_LIT(&x->w, ",");
            else
                rest = AGW_STR_LIT("}");
            w_view(&x->w, rest);
        }
        if (t->cache_control.len && !raw_object(t->cache_control))
            return enc_fail(x, "a cache_control mark is not a JSON object");
        w_cache_control(&x->w, t->cache_control);
        W_LIT(&x->w, "}");
    }
    W_LIT(&x->w, "]");
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
        W_LIT(&x->w, ",\"tool_choice\":{\"type\":\"auto\"");
        break;
    case AGW_IR_TC_ANY:
        W_LIT(&x->w, ",\"tool_choice\":{\"type\":\"any\"");
        break;
    case AGW_IR_TC_NONE:
        /* ToolChoiceNone has no disable_parallel_tool_use: no calls at all. */
        W_LIT(&x->w, ",\"tool_choice\":{\"type\":\"none\"}");
        return x->w.e;
    case AGW_IR_TC_TOOL:
        if (!rq->tool_choice_name.len)
            return enc_fail(x, "tool_choice names no tool");
        W_LIT(&x->w, ",\"tool_choice\":{\"type\":\"tool\",\"name\":");
        w_str(&x->w, rq->tool_choice_name);
        break;
    default:
        return enc_fail(x, "tool_choice has an unknown value");
    }
    if (rq->parallel_tool_calls == 0)
        W_LIT(&x->w, ",\"disable_parallel_tool_use\":true");
    W_LIT(&x->w, "}");
    return x->w.e;
}

static agw_err enc_sampling(enc *x, const agw_ir_request *rq)
{
    char num[40];

    if (rq->has_temperature) {
        if (!(rq->temperature >= 0.0 && rq->temperature <= 1.0)) {
            fmt_double(rq->temperature, num, sizeof num);
            return enc_fail(x, "temperature %s is outside Anthropic's 0..1 range", num);
        }
        W_LIT(&x->w, ",\"temperature\":");
        w_double(&x->w, rq->temperature);
    }
    if (rq->has_top_p) {
        if (!(rq->top_p >= 0.0 && rq->top_p <= 1.0)) {
            fmt_double(rq->top_p, num, sizeof num);
            return enc_fail(x, "top_p %s is outside the 0..1 range", num);
        }
        if (rq->top_p < 1.0) {
            W_LIT(&x->w, ",\"top_p\":");
            w_double(&x->w, rq->top_p);
        }
    }
    if (rq->top_k >= 0) {
        W_LIT(&x->w, ",\"top_k\":");
        w_int(&x->w, rq->top_k);
    }
    if (rq->n_stop) {
        W_LIT(&x->w, ",\"stop_sequences\":[");
        for (size_t i = 0; i < rq->n_stop; i++) {
            if (i)
                W_LIT(&x->w, ",");
            w_str(&x->w, rq->stop[i]);
        }
        W_LIT(&x->w, "]");
    }
    return x->w.e;
}

agw_err agw_anthropic_encode_request(const agw_ir_request *rq, agw_buf *out, char *err,
                                     size_t errlen)
{
    enc x = { { out, AGW_OK }, err, errlen };
    size_t start = out->len;

    W_LIT(&x.w, "{\"model\":");
    w_str(&x.w, rq->model);
    W_LIT(&x.w, ",\"max_tokens\":");
    w_int(&x.w, rq->max_tokens >= 0 ? rq->max_tokens : AGW_ANTHROPIC_DEFAULT_MAX_TOKENS);
    W_LIT(&x.w, ",\"stream\":true");
    if (enc_system(&x, rq) != AGW_OK || enc_messages(&x, rq) != AGW_OK ||
        enc_tools(&x, rq) != AGW_OK || enc_tool_choice(&x, rq) != AGW_OK ||
        enc_sampling(&x, rq) != AGW_OK)
        return finish_write(out, start, x.w.e);
    if (rq->user.len) {
        W_LIT(&x.w, ",\"metadata\":{\"user_id\":");
        w_str(&x.w, rq->user);
        W_LIT(&x.w, "}");
    }
    if (rq->thinking.len) {
        if (!raw_object(rq->thinking))
            return finish_write(out, start, enc_fail(&x, "thinking is not a JSON object"));
        W_LIT(&x.w, ",\"thinking\":");
        w_view(&x.w, rq->thinking);
    }
    W_LIT(&x.w, "}");
    return finish_write(out, start, x.w.e);
}

/* ==== stream decoding ==== */

typedef struct {
    agw_anthropic_stream_decoder *d;
    agw_buf scratch;
    const char *name; /* the event, for messages */
    char *err;
    size_t errlen;
    agw_ir_sink sink;
    void *ud;
    int stopped;      /* the sink asked to stop */
} sdec;

static agw_err sfail(sdec *s, const char *what, const char *field_name)
{
    return set_err(s->err, s->errlen, "upstream %s event: %s %s", s->name, field_name, what);
}

static void emit(sdec *s, const agw_ir_event *ev)
{
    if (!s->stopped && s->sink(s->ud, ev) != 0)
        s->stopped = 1;
}

/* A string member; an optional one is empty when absent or null. */
static agw_err s_str(sdec *s, agw_str v, const char *name, int required, agw_str *out)
{
    *out = (agw_str){ NULL, 0 };
    if (!present(v)) {
        if (required && !v.ptr)
            return sfail(s, "is missing", name);
        if (required)
            return sfail(s, "must be a string", name);
        return AGW_OK;
    }
    if (!is_type(v, AGW_JSON_STRING))
        return sfail(s, "must be a string", name);
    return str_value(&s->d->arena, &s->scratch, v, out);
}

static agw_err s_index(sdec *s, agw_str v, int *out)
{
    int64_t i;

    if (!v.ptr)
        return sfail(s, "is missing", "index");
    if (!is_type(v, AGW_JSON_NUMBER) || agw_json_int64(v, &i) != AGW_OK || i < 0 || i > INT_MAX)
        return sfail(s, "must be a non-negative integer", "index");
    *out = (int)i;
    return AGW_OK;
}

/* A token count: unchanged (-1) when absent or null. */
static agw_err s_count(sdec *s, agw_str v, const char *name, int64_t *out)
{
    int64_t n;

    if (!present(v))
        return AGW_OK;
    if (!is_type(v, AGW_JSON_NUMBER) || agw_json_int64(v, &n) != AGW_OK || n < 0)
        return sfail(s, "must be a non-negative integer", name);
    *out = n;
    return AGW_OK;
}

static agw_err s_usage(sdec *s, agw_str v, agw_ir_usage *u)
{
    field f[] = { { "input_tokens", { 0 } },
                  { "output_tokens", { 0 } },
                  { "cache_read_input_tokens", { 0 } },
                  { "cache_creation_input_tokens", { 0 } } };
    agw_err e;

    if (!present(v))
        return AGW_OK;
    if (!is_type(v, AGW_JSON_OBJECT))
        return sfail(s, "must be an object", "usage");
    collect(v, f, 4, NULL);
    if ((e = s_count(s, f[0].val, "usage.input_tokens", &u->input)) != AGW_OK ||
        (e = s_count(s, f[1].val, "usage.output_tokens", &u->output)) != AGW_OK ||
        (e = s_count(s, f[2].val, "usage.cache_read_input_tokens", &u->cache_read)) != AGW_OK ||
        (e = s_count(s, f[3].val, "usage.cache_creation_input_tokens", &u->cache_write)) !=
            AGW_OK)
        return e;
    return AGW_OK;
}

static agw_err s_object(sdec *s, agw_str v, const char *name)
{
    if (!v.ptr)
        return sfail(s, "is missing", name);
    if (!is_type(v, AGW_JSON_OBJECT))
        return sfail(s, "must be an object", name);
    return AGW_OK;
}

static agw_err s_message_start(sdec *s, agw_str data)
{
    field f[] = { { "message", { 0 } } };
    field m[] = { { "id", { 0 } }, { "model", { 0 } }, { "usage", { 0 } } };
    agw_ir_event ev;
    agw_err e;

    if (s->d->started)
        return set_err(s->err, s->errlen, "upstream sent a second message_start");
    collect(data, f, 1, NULL);
    if ((e = s_object(s, f[0].val, "message")) != AGW_OK)
        return e;
    collect(f[0].val, m, 3, NULL);
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_START);
    if ((e = s_str(s, m[0].val, "message.id", 0, &ev.id)) != AGW_OK ||
        (e = s_str(s, m[1].val, "message.model", 0, &ev.model)) != AGW_OK ||
        (e = s_usage(s, m[2].val, &ev.usage)) != AGW_OK)
        return e;
    s->d->started = 1;
    emit(s, &ev);
    return AGW_OK;
}

static agw_err s_block_start(sdec *s, agw_str data)
{
    field f[] = { { "index", { 0 } }, { "content_block", { 0 } } };
    field b[] = { { "type", { 0 } },     { "text", { 0 } },      { "id", { 0 } },
                  { "name", { 0 } },     { "thinking", { 0 } },  { "signature", { 0 } },
                  { "data", { 0 } } };
    agw_ir_event ev;
    agw_str type, initial = { NULL, 0 }, sig = { NULL, 0 };
    char tb[48];
    agw_err e;

    collect(data, f, 2, NULL);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
    if ((e = s_index(s, f[0].val, &ev.index)) != AGW_OK ||
        (e = s_object(s, f[1].val, "content_block")) != AGW_OK)
        return e;
    collect(f[1].val, b, 7, NULL);
    if ((e = s_str(s, b[0].val, "content_block.type", 1, &type)) != AGW_OK)
        return e;
    if (agw_str_eq(type, AGW_STR_LIT("text"))) {
        ev.block = AGW_IR_TEXT;
        e = s_str(s, b[1].val, "content_block.text", 0, &initial);
    } else if (agw_str_eq(type, AGW_STR_LIT("tool_use"))) {
        /* input is always {} here: the arguments come as input_json_delta. */
        ev.block = AGW_IR_TOOL_USE;
        if ((e = s_str(s, b[2].val, "content_block.id", 1, &ev.tool_id)) == AGW_OK)
            e = s_str(s, b[3].val, "content_block.name", 1, &ev.tool_name);
    } else if (agw_str_eq(type, AGW_STR_LIT("thinking"))) {
        ev.block = AGW_IR_THINKING;
        if ((e = s_str(s, b[4].val, "content_block.thinking", 0, &initial)) == AGW_OK)
            e = s_str(s, b[5].val, "content_block.signature", 0, &sig);
    } else if (agw_str_eq(type, AGW_STR_LIT("redacted_thinking"))) {
        ev.block = AGW_IR_REDACTED_THINKING;
        e = s_str(s, b[6].val, "content_block.data", 1, &ev.delta);
    } else {
        return set_err(s->err, s->errlen, "upstream content block type %s cannot be converted",
                       show(type, tb, sizeof tb));
    }
    if (e != AGW_OK)
        return e;
    emit(s, &ev);
    /* The API starts blocks empty; should one carry content, keep it as
     * deltas so no consumer loses it. */
    if (initial.len) {
        agw_ir_block_kind kind = ev.block;
        int index = ev.index;
        agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
        ev.index = index;
        ev.delta_kind = kind == AGW_IR_TEXT ? AGW_IR_DELTA_TEXT : AGW_IR_DELTA_THINKING;
        ev.delta = initial;
        emit(s, &ev);
    }
    if (sig.len) {
        ev.kind = AGW_IR_EV_BLOCK_DELTA;
        ev.delta_kind = AGW_IR_DELTA_SIGNATURE;
        ev.delta = sig;
        emit(s, &ev);
    }
    return AGW_OK;
}

static agw_err s_block_delta(sdec *s, agw_str data)
{
    field f[] = { { "index", { 0 } }, { "delta", { 0 } } };
    field dl[] = { { "type", { 0 } },      { "text", { 0 } },      { "partial_json", { 0 } },
                   { "thinking", { 0 } },  { "signature", { 0 } } };
    agw_ir_event ev;
    agw_str type;
    agw_err e;

    collect(data, f, 2, NULL);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
    if ((e = s_index(s, f[0].val, &ev.index)) != AGW_OK ||
        (e = s_object(s, f[1].val, "delta")) != AGW_OK)
        return e;
    collect(f[1].val, dl, 5, NULL);
    if ((e = s_str(s, dl[0].val, "delta.type", 1, &type)) != AGW_OK)
        return e;
    if (agw_str_eq(type, AGW_STR_LIT("text_delta"))) {
        ev.delta_kind = AGW_IR_DELTA_TEXT;
        e = s_str(s, dl[1].val, "delta.text", 1, &ev.delta);
    } else if (agw_str_eq(type, AGW_STR_LIT("input_json_delta"))) {
        ev.delta_kind = AGW_IR_DELTA_JSON;
        e = s_str(s, dl[2].val, "delta.partial_json", 1, &ev.delta);
    } else if (agw_str_eq(type, AGW_STR_LIT("thinking_delta"))) {
        ev.delta_kind = AGW_IR_DELTA_THINKING;
        e = s_str(s, dl[3].val, "delta.thinking", 1, &ev.delta);
    } else if (agw_str_eq(type, AGW_STR_LIT("signature_delta"))) {
        ev.delta_kind = AGW_IR_DELTA_SIGNATURE;
        e = s_str(s, dl[4].val, "delta.signature", 1, &ev.delta);
    } else {
        /* citations_delta and types added later carry nothing the IR holds. */
        return AGW_OK;
    }
    if (e != AGW_OK)
        return e;
    emit(s, &ev);
    return AGW_OK;
}

static agw_err s_block_stop(sdec *s, agw_str data)
{
    field f[] = { { "index", { 0 } } };
    agw_ir_event ev;
    agw_err e;

    collect(data, f, 1, NULL);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_STOP);
    if ((e = s_index(s, f[0].val, &ev.index)) != AGW_OK)
        return e;
    emit(s, &ev);
    return AGW_OK;
}

static agw_err s_message_delta(sdec *s, agw_str data)
{
    field f[] = { { "delta", { 0 } }, { "usage", { 0 } } };
    field dl[] = { { "stop_reason", { 0 } }, { "stop_sequence", { 0 } } };
    agw_ir_event ev;
    agw_str reason;
    agw_err e;

    collect(data, f, 2, NULL);
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_DELTA);
    if (present(f[0].val)) {
        if (!is_type(f[0].val, AGW_JSON_OBJECT))
            return sfail(s, "must be an object", "delta");
        collect(f[0].val, dl, 2, NULL);
        if ((e = s_str(s, dl[0].val, "delta.stop_reason", 0, &reason)) != AGW_OK ||
            (e = s_str(s, dl[1].val, "delta.stop_sequence", 0, &ev.stop_sequence)) != AGW_OK)
            return e;
        ev.stop = agw_ir_stop_parse(reason);
    }
    if ((e = s_usage(s, f[1].val, &ev.usage)) != AGW_OK)
        return e;
    emit(s, &ev);
    return AGW_OK;
}

static agw_err s_error(sdec *s, agw_str data)
{
    field f[] = { { "error", { 0 } } };
    field er[] = { { "type", { 0 } }, { "message", { 0 } } };
    agw_ir_event ev;
    agw_err e;

    collect(data, f, 1, NULL);
    if ((e = s_object(s, f[0].val, "error")) != AGW_OK)
        return e;
    collect(f[0].val, er, 2, NULL);
    agw_ir_event_init(&ev, AGW_IR_EV_ERROR);
    if ((e = s_str(s, er[0].val, "error.type", 0, &ev.error_type)) != AGW_OK ||
        (e = s_str(s, er[1].val, "error.message", 0, &ev.error_message)) != AGW_OK)
        return e;
    if (!ev.error_type.len)
        ev.error_type = AGW_STR_LIT("api_error");
    ev.status = status_for_error_type(ev.error_type);
    s->d->finished = 1;
    emit(s, &ev);
    return AGW_OK;
}

typedef enum {
    E_MESSAGE_START, E_BLOCK_START, E_BLOCK_DELTA, E_BLOCK_STOP, E_MESSAGE_DELTA, E_MESSAGE_STOP,
    E_PING, E_ERROR, E_UNKNOWN
} event_name;

static const char *const event_names[E_UNKNOWN] = {
    "message_start", "content_block_start", "content_block_delta", "content_block_stop",
    "message_delta", "message_stop", "ping", "error",
};

static event_name event_lookup(agw_str name)
{
    for (int i = 0; i < E_UNKNOWN; i++)
        if (agw_str_eq(name, agw_str_c(event_names[i])))
            return (event_name)i;
    return E_UNKNOWN;
}

static agw_err decode_event(sdec *s, agw_str event, agw_str data)
{
    agw_ir_event ev;
    event_name which = E_UNKNOWN;
    char why[96];
    agw_err e;

    if (s->d->finished)
        return AGW_OK;
    if (event.len) {
        which = event_lookup(event);
        /* Events added to the API after this was written are skipped
         * unread, as the SDKs do; a ping carries nothing worth parsing. */
        if (which == E_UNKNOWN)
            return AGW_OK;
        s->name = event_names[which];
    }
    if (which != E_PING) {
        e = agw_json_validate(data, MAX_DEPTH, why, sizeof why);
        if (e != AGW_OK || !is_type(data, AGW_JSON_OBJECT))
            return set_err(s->err, s->errlen, "upstream %s event is not a JSON object%s%s",
                           s->name, e != AGW_OK ? ": " : "", e != AGW_OK ? why : "");
    }
    if (!event.len) {
        /* No `event:` line: the data's "type" names the event. */
        field f[] = { { "type", { 0 } } };
        agw_str name;
        collect(data, f, 1, NULL);
        if (!is_type(f[0].val, AGW_JSON_STRING))
            return AGW_OK;
        if ((e = str_value(&s->d->arena, &s->scratch, f[0].val, &name)) != AGW_OK)
            return e;
        if ((which = event_lookup(name)) == E_UNKNOWN)
            return AGW_OK;
        s->name = event_names[which];
    }

    switch (which) {
    case E_PING:
        agw_ir_event_init(&ev, AGW_IR_EV_PING);
        emit(s, &ev);
        return AGW_OK;
    case E_ERROR:
        return s_error(s, data);
    case E_MESSAGE_START:
        return s_message_start(s, data);
    default:
        break;
    }
    if (!s->d->started)
        return set_err(s->err, s->errlen, "upstream sent %s before message_start", s->name);
    switch (which) {
    case E_BLOCK_START:
        return s_block_start(s, data);
    case E_BLOCK_DELTA:
        return s_block_delta(s, data);
    case E_BLOCK_STOP:
        return s_block_stop(s, data);
    case E_MESSAGE_DELTA:
        return s_message_delta(s, data);
    default:
        agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_STOP);
        s->d->finished = 1;
        emit(s, &ev);
        return AGW_OK;
    }
}

void agw_anthropic_stream_decoder_init(agw_anthropic_stream_decoder *d)
{
    memset(d, 0, sizeof *d);
}

agw_err agw_anthropic_decode_stream_event(agw_anthropic_stream_decoder *d, agw_str event,
                                          agw_str data, agw_ir_sink sink, void *ud, char *err,
                                          size_t errlen)
{
    sdec s = { d, AGW_BUF_INIT(data.len + 16), "message", err, errlen, sink, ud, 0 };
    agw_err e;

    e = decode_event(&s, event, data);
    agw_buf_free(&s.scratch);
    /* Strings of this event were only for the sink calls above. */
    agw_arena_free(&d->arena);
    if (e != AGW_OK && e != AGW_EINVAL)
        e = set_err(err, errlen, "upstream event could not be decoded (%s)", agw_strerror(e));
    return e;
}

agw_err agw_anthropic_decode_stream_end(agw_anthropic_stream_decoder *d)
{
    return d->finished ? AGW_OK : AGW_EPEER;
}

void agw_anthropic_stream_decoder_free(agw_anthropic_stream_decoder *d)
{
    agw_arena_free(&d->arena);
}

/* ==== stream encoding ==== */

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

static void w_usage(wr *w, const agw_ir_usage *u)
{
    W_LIT(w, "{\"input_tokens\":");
    w_count(w, u->input);
    W_LIT(w, ",\"cache_creation_input_tokens\":");
    w_count(w, u->cache_write);
    W_LIT(w, ",\"cache_read_input_tokens\":");
    w_count(w, u->cache_read);
    W_LIT(w, ",\"output_tokens\":");
    w_count(w, u->output);
    W_LIT(w, "}");
}

static void w_stop(wr *w, agw_ir_stop stop, agw_str seq)
{
    const char *name = agw_ir_stop_name(stop);

    W_LIT(w, "\"stop_reason\":");
    if (name)
        w_str(w, agw_str_c(name));
    else
        W_LIT(w, "null");
    W_LIT(w, ",\"stop_sequence\":");
    if (seq.len)
        w_str(w, seq);
    else
        W_LIT(w, "null");
}

static void w_error_event(wr *w, const agw_ir_event *ev)
{
    agw_str msg = ev->error_message.len ? ev->error_message : AGW_STR_LIT("upstream error");

    W_LIT(w, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"");
    w_cstr(w, error_type_for(ev->error_type, ev->status));
    W_LIT(w, "\",\"message\":");
    w_str(w, msg);
    W_LIT(w, "}}\n\n");
}

agw_err agw_anthropic_encode_stream_event(agw_anthropic_stream_encoder *e, const agw_ir_event *ev,
                                          agw_buf *out)
{
    wr w = { out, AGW_OK };
    size_t start = out->len;

    switch (ev->kind) {
    case AGW_IR_EV_MESSAGE_START:
        if (e->started)
            return AGW_EINVAL;
        e->started = 1;
        W_LIT(&w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":");
        w_message_id(&w, e->id, ev->id);
        W_LIT(&w, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
        w_str(&w, e->model.len ? e->model : ev->model);
        W_LIT(&w, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
        w_usage(&w, &ev->usage);
        W_LIT(&w, "}}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n");
        break;
    case AGW_IR_EV_PING:
        W_LIT(&w, "event: ping\ndata: {\"type\": \"ping\"}\n\n");
        break;
    case AGW_IR_EV_ERROR:
        w_error_event(&w, ev);
        break;
    default:
        if (!e->started || ev->index < 0)
            return AGW_EINVAL;
        switch (ev->kind) {
        case AGW_IR_EV_BLOCK_START:
            W_LIT(&w, "event: content_block_start\ndata: {\"type\":\"content_block_start\","
                      "\"index\":");
            w_int(&w, ev->index);
            switch (ev->block) {
            case AGW_IR_TEXT:
                W_LIT(&w, ",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
                break;
            case AGW_IR_TOOL_USE:
                W_LIT(&w, ",\"content_block\":{\"type\":\"tool_use\",\"id\":");
                w_str(&w, ev->tool_id);
                W_LIT(&w, ",\"name\":");
                w_str(&w, ev->tool_name);
                W_LIT(&w, ",\"input\":{}}}\n\n");
                break;
            case AGW_IR_THINKING:
                W_LIT(&w, ",\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\","
                          "\"signature\":\"\"}}\n\n");
                break;
            case AGW_IR_REDACTED_THINKING:
                W_LIT(&w, ",\"content_block\":{\"type\":\"redacted_thinking\",\"data\":");
                w_str(&w, ev->delta);
                W_LIT(&w, "}}\n\n");
                break;
            default:
                return finish_write(out, start, AGW_EINVAL);
            }
            break;
        case AGW_IR_EV_BLOCK_DELTA:
            W_LIT(&w, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                      "\"index\":");
            w_int(&w, ev->index);
            switch (ev->delta_kind) {
            case AGW_IR_DELTA_TEXT:
                W_LIT(&w, ",\"delta\":{\"type\":\"text_delta\",\"text\":");
                break;
            case AGW_IR_DELTA_JSON:
                W_LIT(&w, ",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":");
                break;
            case AGW_IR_DELTA_THINKING:
                W_LIT(&w, ",\"delta\":{\"type\":\"thinking_delta\",\"thinking\":");
                break;
            case AGW_IR_DELTA_SIGNATURE:
                W_LIT(&w, ",\"delta\":{\"type\":\"signature_delta\",\"signature\":");
                break;
            default:
                return finish_write(out, start, AGW_EINVAL);
            }
            w_str(&w, ev->delta);
            W_LIT(&w, "}}\n\n");
            break;
        case AGW_IR_EV_BLOCK_STOP:
            W_LIT(&w, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
                      "\"index\":");
            w_int(&w, ev->index);
            W_LIT(&w, "}\n\n");
            break;
        case AGW_IR_EV_MESSAGE_DELTA:
            W_LIT(&w, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{");
            w_stop(&w, ev->stop, ev->stop_sequence);
            W_LIT(&w, "},\"usage\":{");
            /* Input-side counts only when the upstream reported them here. */
            if (ev->usage.input >= 0) {
                W_LIT(&w, "\"input_tokens\":");
                w_int(&w, ev->usage.input);
                W_LIT(&w, ",");
            }
            if (ev->usage.cache_write >= 0) {
                W_LIT(&w, "\"cache_creation_input_tokens\":");
                w_int(&w, ev->usage.cache_write);
                W_LIT(&w, ",");
            }
            if (ev->usage.cache_read >= 0) {
                W_LIT(&w, "\"cache_read_input_tokens\":");
                w_int(&w, ev->usage.cache_read);
                W_LIT(&w, ",");
            }
            W_LIT(&w, "\"output_tokens\":");
            w_count(&w, ev->usage.output);
            W_LIT(&w, "}}\n\n");
            break;
        case AGW_IR_EV_MESSAGE_STOP:
            W_LIT(&w, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
            break;
        default:
            return AGW_EINVAL;
        }
    }
    return finish_write(out, start, w.e);
}

/* ==== responses ==== */

agw_err agw_anthropic_encode_response(const agw_ir_fold *f, agw_str model, agw_str id,
                                      agw_buf *out)
{
    wr w = { out, AGW_OK };
    size_t start = out->len;
    int first = 1;

    W_LIT(&w, "{\"id\":");
    w_message_id(&w, id, f->id);
    W_LIT(&w, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    w_str(&w, model.len ? model : f->model);
    W_LIT(&w, ",\"content\":[");
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
            W_LIT(&w, ",");
        first = 0;
        switch (b->kind) {
        case AGW_IR_TEXT:
            W_LIT(&w, "{\"type\":\"text\",\"text\":");
            w_str(&w, text);
            W_LIT(&w, "}");
            break;
        case AGW_IR_TOOL_USE:
            /* The pieces must add up to one JSON object; anything else is the
             * upstream's fault and must not reach the client as valid. */
            if (text.len && !raw_object(text))
                return finish_write(out, start, AGW_EINVAL);
            W_LIT(&w, "{\"type\":\"tool_use\",\"id\":");
            w_str(&w, b->tool_id);
            W_LIT(&w, ",\"name\":");
            w_str(&w, b->tool_name);
            W_LIT(&w, ",\"input\":");
            w_view(&w, text.len ? text : AGW_STR_LIT("{}"));
            W_LIT(&w, "}");
            break;
        case AGW_IR_THINKING:
            W_LIT(&w, "{\"type\":\"thinking\",\"thinking\":");
            w_str(&w, text);
            W_LIT(&w, ",\"signature\":");
            w_str(&w, sig);
            W_LIT(&w, "}");
            break;
        case AGW_IR_REDACTED_THINKING:
            W_LIT(&w, "{\"type\":\"redacted_thinking\",\"data\":");
            w_str(&w, text);
            W_LIT(&w, "}");
            break;
        default:
            return finish_write(out, start, AGW_EINVAL);
        }
    }
    W_LIT(&w, "],");
    w_stop(&w, f->stop, f->stop_sequence);
    W_LIT(&w, ",\"usage\":");
    w_usage(&w, &f->usage);
    W_LIT(&w, "}");
    return finish_write(out, start, w.e);
}

/* ==== errors ==== */

agw_err agw_anthropic_decode_error(agw_str body, agw_arena *arena, agw_str *type,
                                   agw_str *message)
{
    field top[] = { { "type", { 0 } }, { "error", { 0 } } };
    field er[] = { { "type", { 0 } }, { "message", { 0 } } };
    agw_buf scratch = AGW_BUF_INIT(body.len + 16);
    agw_err e = AGW_EINVAL;

    if (agw_json_validate(body, MAX_DEPTH, NULL, 0) != AGW_OK || !is_type(body, AGW_JSON_OBJECT))
        return AGW_EINVAL;
    collect(body, top, 2, NULL);
    if (top[0].val.ptr && !agw_json_string_eq(top[0].val, AGW_STR_LIT("error")))
        return AGW_EINVAL;
    if (!is_type(top[1].val, AGW_JSON_OBJECT))
        return AGW_EINVAL;
    collect(top[1].val, er, 2, NULL);
    if (!is_type(er[0].val, AGW_JSON_STRING) || !is_type(er[1].val, AGW_JSON_STRING))
        return AGW_EINVAL;
    if ((e = str_value(arena, &scratch, er[0].val, type)) == AGW_OK)
        e = str_value(arena, &scratch, er[1].val, message);
    agw_buf_free(&scratch);
    return e;
}

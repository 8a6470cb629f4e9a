/*
 * kiro_names: what Kiro calls things (model ids, tool names) and its error
 * bodies (kiro.h).
 */
#include "proto/kiro.h"
#include "proto/wire.h"

#include "core/crypto.h"
#include "core/json.h"

#include <ctype.h>
#include <stdio.h>

static int all_digits(agw_str s)
{
    for (size_t i = 0; i < s.len; i++)
        if (!isdigit((unsigned char)s.ptr[i]))
            return 0;
    return s.len > 0;
}

/* Drops a trailing "-<suffix>" when `keep` says the suffix goes. */
static agw_str drop_suffix(agw_str s, size_t n, int (*goes)(agw_str))
{
    if (s.len > n + 1 && s.ptr[s.len - n - 1] == '-' && goes((agw_str){ s.ptr + s.len - n, n }))
        s.len -= n + 1;
    return s;
}

static int is_latest(agw_str s)
{
    return agw_str_eq(s, AGW_STR_LIT("latest"));
}

agw_str agw_kiro_model_id(agw_arena *a, agw_str model)
{
    if (!agw_str_starts(model, AGW_STR_LIT("claude-")))
        return model;
    agw_str m = drop_suffix(model, 8, all_digits);
    m = drop_suffix(m, 6, is_latest);
    /* Dashes between two version digits become dots: 4-5 -> 4.5, 3-7 -> 3.7.
     * A run of more than two digits (a date left inside) is left alone. */
    char *out = agw_arena_alloc(a, m.len + 1);
    for (size_t i = 0; i < m.len; i++) {
        char c = m.ptr[i];
        if (c == '-' && i > 0 && i + 1 < m.len && isdigit((unsigned char)m.ptr[i - 1]) &&
            isdigit((unsigned char)m.ptr[i + 1]) && (i < 2 || !isdigit((unsigned char)m.ptr[i - 2])) &&
            (i + 2 >= m.len || !isdigit((unsigned char)m.ptr[i + 2])))
            c = '.';
        out[i] = c;
    }
    out[m.len] = '\0';
    return (agw_str){ out, m.len };
}

int64_t agw_kiro_context_window(agw_str model_id)
{
    if (model_id.len >= 3 &&
        agw_str_eq_nocase((agw_str){ model_id.ptr + model_id.len - 3, 3 }, AGW_STR_LIT("-1m")))
        return 1000000;
    return 200000;
}

agw_str agw_kiro_tool_name(agw_arena *a, agw_str name)
{
    if (name.len <= AGW_KIRO_TOOL_NAME_MAX)
        return name;
    unsigned char h[AGW_SHA256_LEN];
    agw_sha256(name, h);
    size_t keep = AGW_KIRO_TOOL_NAME_MAX - 9;
    char *out = agw_arena_alloc(a, AGW_KIRO_TOOL_NAME_MAX + 1);
    memcpy(out, name.ptr, keep);
    snprintf(out + keep, 10, "_%02x%02x%02x%02x", h[0], h[1], h[2], h[3]);
    return (agw_str){ out, AGW_KIRO_TOOL_NAME_MAX };
}

/* The part of an AWS error type after its namespace
 * ("com.amazon.aws.codewhisperer#ThrottlingException" -> "ThrottlingException"). */
static agw_str short_type(agw_str t)
{
    for (size_t i = t.len; i-- > 0;)
        if (t.ptr[i] == '#' || t.ptr[i] == ':') {
            if (t.ptr[i] == ':' && i + 1 < t.len)
                continue; /* "ThrottlingException:http://..." keeps the head */
            return (agw_str){ t.ptr + i + 1, t.len - i - 1 };
        }
    for (size_t i = 0; i < t.len; i++)
        if (t.ptr[i] == ':')
            return (agw_str){ t.ptr, i };
    return t;
}

static int contains(agw_str s, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= s.len; i++)
        if (agw_str_eq_nocase((agw_str){ s.ptr + i, n }, (agw_str){ needle, n }))
            return 1;
    return 0;
}

agw_err agw_kiro_decode_error(agw_str body, agw_arena *arena, int *status, agw_str *type,
                              agw_str *message)
{
    static const char *const names[] = { "message", "Message", "__type", "reason" };
    agw_str v[4];
    *type = *message = (agw_str){ NULL, 0 };
    if (agw_json_validate(body, AGW_WIRE_MAX_DEPTH, NULL, 0) != AGW_OK ||
        agw_json_type_of(body) != AGW_JSON_OBJECT)
        return AGW_EINVAL;
    agw_json_collect(body, names, 4, v, NULL);
    agw_str msg = agw_json_type_of(v[0]) == AGW_JSON_STRING ? v[0] : v[1];
    agw_str aws_type = { NULL, 0 }, reason = { NULL, 0 };
    if (agw_json_type_of(msg) != AGW_JSON_STRING ||
        agw_wire_string_copy(arena, msg, message) != AGW_OK || !message->len)
        return AGW_EINVAL;
    if (agw_json_type_of(v[2]) == AGW_JSON_STRING &&
        agw_wire_string_copy(arena, v[2], &aws_type) == AGW_OK)
        aws_type = short_type(aws_type);
    if (agw_json_type_of(v[3]) == AGW_JSON_STRING &&
        agw_wire_string_copy(arena, v[3], &reason) != AGW_OK)
        reason = (agw_str){ NULL, 0 };
    if (contains(aws_type, "Throttling") || contains(reason, "RATE_EXCEEDED") ||
        contains(reason, "THROTTL") || *status == 429) {
        *status = 429;
        *type = AGW_STR_LIT("rate_limit_error");
    } else if (*status == 401 || *status == 403) {
        *type = agw_str_c(*status == 401 ? "authentication_error" : "permission_error");
    } else if (*status >= 500) {
        *type = AGW_STR_LIT("api_error");
    } else {
        *type = AGW_STR_LIT("invalid_request_error");
    }
    return AGW_OK;
}

agw_err agw_kiro_uuid(char out[37])
{
    unsigned char r[16];
    if (agw_random_bytes(r, sizeof r) != AGW_OK)
        return AGW_EIO;
    r[6] = (unsigned char)((r[6] & 0x0F) | 0x40); /* version 4 */
    r[8] = (unsigned char)((r[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
             r[13], r[14], r[15]);
    return AGW_OK;
}

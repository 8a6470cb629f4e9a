/*
 * openai_error: OpenAI error bodies ({"error":{"message","type","code"}}) and
 * the mapping between OpenAI's error vocabulary and the IR's (Anthropic's
 * types, with an HTTP status). The stream decoder and encoder use the two
 * mappings for errors reported mid-stream.
 */
#include "proto/openai_int.h"
#include "proto/apierr.h"
#include "proto/wire.h"

#include "core/json.h"

void agw_openai_map_error(agw_str type, agw_str code, int *status, const char **neutral)
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

const char *agw_openai_error_type(agw_str type, int status)
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
    /* An error event without an HTTP error status is the server's fault. */
    return agw_apierr_type(AGW_PROTO_OPENAI, status >= 400 ? status : 500);
}

agw_err agw_openai_decode_error(agw_str body, agw_arena *arena, agw_str *type, agw_str *message)
{
    static const char *const keys[] = { "message", "type", "code" };
    agw_str eobj, v[3];
    const char *neutral;
    int status;

    if (agw_json_validate(body, AGW_WIRE_MAX_DEPTH, NULL, 0) != AGW_OK ||
        agw_json_type_of(body) != AGW_JSON_OBJECT ||
        agw_json_find(body, AGW_STR_LIT("error"), &eobj) != AGW_OK ||
        agw_json_type_of(eobj) != AGW_JSON_OBJECT)
        return AGW_EINVAL;
    agw_json_collect(eobj, keys, 3, v, NULL);
    if (agw_wire_given(v[0]) && agw_json_type_of(v[0]) != AGW_JSON_STRING)
        return AGW_EINVAL;
    *message = (agw_str){ "", 0 };
    if (agw_wire_given(v[0]))
        AGW_WIRE_TRY(agw_wire_string_copy(arena, v[0], message));
    agw_openai_map_error(v[1], v[2], &status, &neutral);
    *type = agw_str_c(neutral);
    return AGW_OK;
}

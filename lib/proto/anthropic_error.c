/*
 * anthropic_error: Anthropic error bodies ({"type":"error","error":{"type",
 * "message"}}) and the error types of the Messages API with the HTTP status
 * each stands for. The IR's error vocabulary is Anthropic's, so the stream
 * decoder and encoder use the table for errors reported mid-stream.
 */
#include "proto/anthropic_int.h"
#include "proto/wire.h"

#include "core/json.h"

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

int agw_anthropic_error_status(agw_str type)
{
    for (size_t i = 0; i < N_ERROR_TYPES; i++)
        if (agw_str_eq(type, agw_str_c(error_types[i].type)))
            return error_types[i].status;
    return 500;
}

const char *agw_anthropic_error_type(agw_str type, int status)
{
    for (size_t i = 0; i < N_ERROR_TYPES; i++)
        if (agw_str_eq(type, agw_str_c(error_types[i].type)))
            return error_types[i].type;
    for (size_t i = 0; i < N_ERROR_TYPES; i++)
        if (error_types[i].status == status)
            return error_types[i].type;
    return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
}

agw_err agw_anthropic_decode_error(agw_str body, agw_arena *arena, agw_str *type,
                                   agw_str *message)
{
    static const char *const top_keys[] = { "type", "error" };
    static const char *const er_keys[] = { "type", "message" };
    agw_str top[2], er[2];
    agw_buf scratch = AGW_BUF_INIT(body.len + 16);
    agw_err e = AGW_EINVAL;

    if (agw_json_validate(body, AGW_WIRE_MAX_DEPTH, NULL, 0) != AGW_OK ||
        agw_json_type_of(body) != AGW_JSON_OBJECT)
        return AGW_EINVAL;
    agw_json_collect(body, top_keys, 2, top, NULL);
    if (top[0].ptr && !agw_json_string_eq(top[0], AGW_STR_LIT("error")))
        return AGW_EINVAL;
    if (agw_json_type_of(top[1]) != AGW_JSON_OBJECT)
        return AGW_EINVAL;
    agw_json_collect(top[1], er_keys, 2, er, NULL);
    if (agw_json_type_of(er[0]) != AGW_JSON_STRING ||
        agw_json_type_of(er[1]) != AGW_JSON_STRING)
        return AGW_EINVAL;
    if ((e = agw_wire_string(arena, &scratch, er[0], type)) == AGW_OK)
        e = agw_wire_string(arena, &scratch, er[1], message);
    agw_buf_free(&scratch);
    return e;
}

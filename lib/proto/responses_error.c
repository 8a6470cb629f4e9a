/*
 * responses_error: error bodies and codes of the Responses API. Its error
 * bodies are OpenAI's, so decoding them is the OpenAI codec's; what is its
 * own is the `code` of a failed response (response.error) and of the
 * `error` stream event.
 */
#include "proto/responses_int.h"

#include "core/json.h"

agw_err agw_responses_decode_error(agw_str body, agw_arena *arena, agw_str *type,
                                   agw_str *message)
{
    return agw_openai_decode_error(body, arena, type, message);
}

const char *agw_responses_error_code(agw_str ir_type, int status)
{
    if (status == 429 || agw_str_eq(ir_type, AGW_STR_LIT("rate_limit_error")))
        return "rate_limit_exceeded";
    if (status < 400 || status >= 500)
        return "server_error";
    return agw_openai_error_type(ir_type, status);
}

void agw_responses_map_error(agw_str code, int *status, const char **neutral)
{
    /* The codes of a failed response (server_error, rate_limit_exceeded, the
     * invalid_* image and prompt codes) read as OpenAI's codes and types. */
    if (agw_json_string_eq(code, AGW_STR_LIT("server_error"))) {
        *status = 500;
        *neutral = "api_error";
        return;
    }
    if (agw_json_type_of(code) == AGW_JSON_STRING && code.len > 9 &&
        (memcmp(code.ptr + 1, "invalid_", 8) == 0 || memcmp(code.ptr + 1, "image_", 6) == 0)) {
        *status = 400;
        *neutral = "invalid_request_error";
        return;
    }
    agw_openai_map_error(code, code, status, neutral);
}

#include "proto/apierr.h"

#include <strings.h>

const char *agw_apierr_type(agw_proto proto, int status)
{
    if (proto == AGW_PROTO_ANTHROPIC) {
        switch (status) {
        case 400: case 405: case 422: return "invalid_request_error";
        case 401: return "authentication_error";
        case 403: return "permission_error";
        case 404: return "not_found_error";
        case 413: return "request_too_large";
        case 429: return "rate_limit_error";
        case 503: case 529: return "overloaded_error";
        case 504: return "timeout_error";
        default: return status >= 500 ? "api_error" : "invalid_request_error";
        }
    }
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 429: return "rate_limit_error";
    case 504: return "timeout_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

agw_err agw_apierr_body(agw_buf *out, agw_proto proto, int status, agw_str message,
                        const char *code)
{
    agw_err e;
    const char *type = agw_apierr_type(proto, status);
    if (proto == AGW_PROTO_ANTHROPIC) {
        if ((e = agw_buf_appendf(out, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"",
                                 type)) ||
            (e = agw_buf_append_json_escaped(out, message)))
            return e;
        return agw_buf_append(out, AGW_CONST_STR_LEN("\"}}"));
    }
    if ((e = agw_buf_append(out, AGW_CONST_STR_LEN("{\"error\":{\"message\":\""))) ||
        (e = agw_buf_append_json_escaped(out, message)) ||
        (e = agw_buf_appendf(out, "\",\"type\":\"%s\",\"param\":null,\"code\":", type)))
        return e;
    if (code) {
        if ((e = agw_buf_append(out, "\"", 1)) ||
            (e = agw_buf_append_json_escaped(out, agw_str_c(code))) ||
            (e = agw_buf_append(out, "\"", 1)))
            return e;
    } else if ((e = agw_buf_append(out, AGW_CONST_STR_LEN("null")))) {
        return e;
    }
    return agw_buf_append(out, AGW_CONST_STR_LEN("}}"));
}

agw_err agw_apierr_sse(agw_buf *out, agw_proto proto, int status, agw_str message)
{
    return agw_apierr_sse_numbered(out, proto, status, message, 0);
}

agw_err agw_apierr_sse_numbered(agw_buf *out, agw_proto proto, int status, agw_str message,
                                int64_t seq)
{
    agw_err e;
    if (proto == AGW_PROTO_RESPONSES) {
        /* The Responses API's `error` event. */
        if ((e = agw_buf_appendf(out, "event: error\ndata: {\"type\":\"error\",\"code\":\"%s\","
                                      "\"message\":\"",
                                 agw_apierr_type(proto, status))) ||
            (e = agw_buf_append_json_escaped(out, message)))
            return e;
        return agw_buf_appendf(out, "\",\"param\":null,\"sequence_number\":%lld}\n\n",
                               (long long)seq);
    }
    if ((e = agw_buf_append_str(out, proto == AGW_PROTO_ANTHROPIC ? AGW_STR_LIT("event: error\ndata: ")
                                                                  : AGW_STR_LIT("data: "))) ||
        (e = agw_apierr_body(out, proto, status, message, NULL)))
        return e;
    return agw_buf_append(out, AGW_CONST_STR_LEN("\n\n"));
}

const char *agw_http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 529: return "Overloaded";
    default: return "Unknown";
    }
}

/* Case-insensitive search of a NUL-free word in a view. */
static int has_word(agw_str s, const char *w)
{
    size_t n = strlen(w);
    for (size_t i = 0; i + n <= s.len; i++)
        if (strncasecmp(s.ptr + i, w, n) == 0)
            return 1;
    return 0;
}

int agw_apierr_token_refused(long status, agw_str body)
{
    if (status == 401)
        return 1;
    return status == 403 && body.ptr && has_word(body, "token") &&
           (has_word(body, "invalid") || has_word(body, "expired"));
}

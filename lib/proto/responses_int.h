/*
 * responses_int: what the files of the Responses codec share among
 * themselves and nothing else includes. The codec's contract is
 * responses.h; each direction is one file:
 *
 *   responses_request_decode.c   client body -> IR request; the stateless check
 *   responses_request_encode.c   IR request -> upstream body
 *   responses_stream_decode.c    upstream events and response objects -> IR events
 *   responses_stream_encode.c    IR events -> client events; a fold -> response object
 *   responses_error.c            error bodies and codes
 *
 * Errors use OpenAI's vocabulary (openai_int.h), which the API shares.
 */
#ifndef AGW_PROTO_RESPONSES_INT_H
#define AGW_PROTO_RESPONSES_INT_H

#include "proto/openai_int.h"
#include "proto/responses.h"

/* The `code` of a failed response's error for an IR error: rate_limit_exceeded
 * for 429, server_error for 5xx (and no status), else OpenAI's error type for
 * the IR type. A static string. */
const char *agw_responses_error_code(agw_str ir_type, int status);

/* A failed response's error object ({"code","message"}) -> the HTTP status
 * and the IR's error type (static) it stands for. */
void agw_responses_map_error(agw_str code, int *status, const char **neutral);

#endif

/*
 * anthropic_int: what the files of the Anthropic codec share among
 * themselves and nothing else includes. The codec's contract is anthropic.h;
 * each direction is one file:
 *
 *   anthropic_request_decode.c   client body -> IR request
 *   anthropic_request_encode.c   IR request -> upstream body
 *   anthropic_stream_decode.c    upstream SSE events -> IR events
 *   anthropic_stream_encode.c    IR events -> client SSE; a fold -> message
 *   anthropic_error.c            error bodies and the error types
 */
#ifndef AGW_PROTO_ANTHROPIC_INT_H
#define AGW_PROTO_ANTHROPIC_INT_H

#include "proto/anthropic.h"

/* The HTTP status an Anthropic error type stands for ("overloaded_error" ->
 * 529); 500 for a type the API does not define. */
int agw_anthropic_error_status(agw_str type);

/* The error type to send a client: `type` itself when the API defines it,
 * else the type of `status`, else invalid_request_error for a 4xx status and
 * api_error for anything else. A static string. */
const char *agw_anthropic_error_type(agw_str type, int status);

#endif

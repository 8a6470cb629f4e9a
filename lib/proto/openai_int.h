/*
 * openai_int: what the files of the OpenAI codec share among themselves and
 * nothing else includes. The codec's contract is openai.h; each direction is
 * one file:
 *
 *   openai_request_decode.c   client body -> IR request
 *   openai_request_encode.c   IR request -> upstream body
 *   openai_stream_decode.c    upstream SSE data -> IR events
 *   openai_stream_encode.c    IR events -> client SSE; a fold -> chat.completion
 *   openai_error.c            error bodies and the two error vocabularies
 */
#ifndef AGW_PROTO_OPENAI_INT_H
#define AGW_PROTO_OPENAI_INT_H

#include "proto/openai.h"

/* OpenAI's error `type` and `code` (and the HTTP status some compatible
 * servers put in `code`), as JSON value spans (absent: {NULL, 0}) -> the
 * HTTP status they stand for (400..599) and the IR's error type for it (a
 * static string). */
void agw_openai_map_error(agw_str type, agw_str code, int *status, const char **neutral);

/* The IR's error type (Anthropic's vocabulary) -> OpenAI's, the status
 * deciding when the type is not one we know. A static string. */
const char *agw_openai_error_type(agw_str type, int status);

/* One complete tool call of a message: {"id","type":"function","function":
 * {"name","arguments"}}, the arguments (a JSON object text, "{}" when empty)
 * as the JSON string OpenAI wants. */
AGW_WARN_UNUSED agw_err agw_openai_put_tool_call(agw_buf *b, agw_str id, agw_str name,
                                                 agw_str args);

/* A string tool_choice of Chat Completions and of the Responses API ("auto",
 * "none", "required") -> the IR's mode: 1, or 0 for any other string. */
int agw_openai_tool_choice_mode(agw_str s, agw_ir_tool_choice *out);

/* The o-series and gpt-5, gpt-5-mini...: the models with a reasoning effort
 * (which refuse temperature, top_p and stop). gpt-5-chat-* is the
 * non-reasoning chat model and takes ordinary sampling. */
int agw_openai_reasoning_model(agw_str model);

/* Anthropic's thinking config (raw JSON) -> an effort level by its budget
 * (< 4096 low, < 16384 medium, else high; medium without one); NULL when
 * thinking is off or absent. A static string. */
const char *agw_openai_reasoning_effort(agw_str thinking);

#endif

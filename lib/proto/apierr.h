/*
 * apierr: error responses in the shape of the client's protocol.
 *
 * A client that speaks OpenAI gets {"error":{"message","type","param","code"}};
 * one that speaks Anthropic gets {"type":"error","error":{"type","message"}}.
 * Stock SDKs pick their exception class from the HTTP status and read these
 * fields, so every error the gateway makes itself goes through here.
 * Functions append to a caller-owned agw_buf and never allocate otherwise.
 */
#ifndef AGW_APIERR_H
#define AGW_APIERR_H

#include "core/core.h"

/* The client-facing protocols, which are also the wire protocols of
 * providers. OpenAI Responses errors have OpenAI's body shape; its stream
 * errors are typed `error` events. Kiro (CodeWhisperer) is only ever an
 * upstream protocol: no client speaks it, so no error is ever shaped for it. */
typedef enum {
    AGW_PROTO_OPENAI = 0,
    AGW_PROTO_ANTHROPIC,
    AGW_PROTO_RESPONSES,
    AGW_PROTO_KIRO,
} agw_proto;

/* The error `type` string the protocol uses for an HTTP status (Responses:
 * OpenAI's). */
const char *agw_apierr_type(agw_proto proto, int status);

/* Appends the JSON error body. `code` is OpenAI's machine-readable code
 * (e.g. "model_not_found"); NULL gives null. Anthropic has no code field. */
AGW_WARN_UNUSED agw_err agw_apierr_body(agw_buf *out, agw_proto proto, int status, agw_str message,
                                        const char *code);

/* Appends one SSE event that ends a stream with an error, in the protocol's
 * streaming shape: Anthropic `event: error`, OpenAI a `data:` line carrying an
 * {"error":{...}} object (which the OpenAI SDKs raise as an APIError), OpenAI
 * Responses an `event: error` with {"type":"error","code","message","param",
 * "sequence_number"}. */
AGW_WARN_UNUSED agw_err agw_apierr_sse(agw_buf *out, agw_proto proto, int status, agw_str message);

/* agw_apierr_sse for a stream whose events are numbered (OpenAI Responses:
 * `seq` is the error event's sequence_number, one past the last event the
 * client got); other protocols ignore it. agw_apierr_sse numbers it 0. */
AGW_WARN_UNUSED agw_err agw_apierr_sse_numbered(agw_buf *out, agw_proto proto, int status,
                                                agw_str message, int64_t seq);

/* 1 when an upstream's error answer refuses the call's token itself, so a
 * renewed token may pass: a 401, or a 403 whose body says the token is
 * invalid or expired (Kiro and AWS answer a stale bearer token so). Any
 * other 403 is a refusal no new token changes (renewing on those has got
 * accounts suspended). `body` may be empty. */
int agw_apierr_token_refused(long status, agw_str body);

/* The reason phrase for a status ("Not Found"); "Unknown" for unusual codes. */
const char *agw_http_reason(int status);

#endif

/*
 * bridge: a conversion between the client's protocol and a provider's of the
 * other kind, as an agw_codec.
 *
 * Upstream SSE events are decoded into IR events (ir.h) by the provider's
 * codec; for a streaming client each IR event is encoded at once by the
 * client's codec, for a non-streaming client the events are folded and the
 * fold encoded at the end: one path for both. A non-streamed upstream
 * answer is decoded into the same events (agw_*_decode_response), so either
 * form of answer serves either kind of client; with client == upstream the
 * bridge re-encodes an answer in the form the client asked for. Upstream errors are reshaped
 * into the client's error shape with the status kept, except Anthropic's 529
 * overloaded, which an OpenAI client gets as 503 (its SDKs know 503, not 529).
 *
 * Ownership: agw_bridge_new copies what it needs; free with agw_bridge_free.
 */
#ifndef AGW_BRIDGE_H
#define AGW_BRIDGE_H

#include "proto/apierr.h"
#include "proto/ir.h"
#include "proto/codec.h"

typedef struct agw_bridge agw_bridge;

/* `client_model` is the model name as the client sent it (answers echo it);
 * `include_usage` is an OpenAI client's stream_options.include_usage. */
agw_bridge *agw_bridge_new(agw_proto client, agw_proto upstream, int client_stream,
                           int include_usage, agw_str client_model, int64_t created);
const agw_codec *agw_bridge_codec(agw_bridge *b);
/* The request the upstream was sent, for an upstream whose answer reads
 * back in its terms (Kiro: tool names shortened on the way out, thinking
 * asked in the prompt, the model's context window for usage). Read during
 * the call only; call it before the answer's first byte. */
void agw_bridge_set_request(agw_bridge *b, const agw_ir_request *rq);
/* Token counts the upstream reported so far (-1 where unknown). */
agw_ir_usage agw_bridge_usage(const agw_bridge *b);
/* 1 when those counts are the codec's estimate, not the upstream's (Kiro). */
int agw_bridge_usage_estimated(const agw_bridge *b);
/* agw_mono_us() when the answer's first content arrived (the time to first
 * token of a stream the relay cannot read itself, Kiro's); 0 before. */
uint64_t agw_bridge_first_output_us(const agw_bridge *b);
/* Credits the upstream charged for the answer (Kiro's metering), -1 if none. */
double agw_bridge_credits(const agw_bridge *b);
void agw_bridge_free(agw_bridge *b);

#endif

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
#include "proto/sanitize.h"

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
/* Puts a sanitize stage (proto/sanitize.h) between the upstream's decoder
 * and the client's encoder: the answer's text is rewritten by `rules`, which
 * must outlive the bridge. Before the first event; NULL or an empty set
 * changes nothing. */
void agw_bridge_sanitize(agw_bridge *b, const agw_sanitize_rules *rules);
/* Puts a continuation stage (proto/continuation.h) in front of everything
 * else: the answer may be made of several upstream answers, each a round
 * started with agw_bridge_round. Before the first event. */
void agw_bridge_continuation(agw_bridge *b);
/* Starts a round (the first one too); `allow`: it may end held, waiting for
 * the next. The bridge's codec then reads a new upstream answer. */
void agw_bridge_round(agw_bridge *b, int allow);
/* 1 when the last round ended held (the codec's `held` says the same). */
int agw_bridge_held(const agw_bridge *b);
/* The answer's text so far, as the provider wrote it ("" without
 * continuation). */
agw_str agw_bridge_text(const agw_bridge *b);
/* See agw_continuation_skip. */
void agw_bridge_skip(agw_bridge *b, agw_str ws);
/* Rounds started (1 without continuation). */
int agw_bridge_rounds(const agw_bridge *b);
/* 1 when the answer has not ended (agw_continuation_open). */
int agw_bridge_open(const agw_bridge *b);
/* Ends an open answer as it is (stop max_tokens): appends the last events for
 * a streaming client, the whole body and its status for the other. */
AGW_WARN_UNUSED agw_err agw_bridge_release(agw_bridge *b, agw_buf *out, int *status);
/* Token counts the upstream reported so far (with continuation: every
 * round's, added up) (-1 where unknown). */
agw_ir_usage agw_bridge_usage(const agw_bridge *b);
/* 1 when those counts are the codec's estimate, not the upstream's (Kiro). */
int agw_bridge_usage_estimated(const agw_bridge *b);
/* agw_mono_us() when the answer's first output arrived (a delta, or a tool
 * call's name): its time to first token, as the relay's usage tap does not
 * read what a codec converts (relay.h); 0 before. */
uint64_t agw_bridge_first_output_us(const agw_bridge *b);
/* Bytes of text, thinking, tool-call names and argument text that went on so
 * far: what a token estimate counts when the upstream reports no usage. */
int64_t agw_bridge_output_bytes(const agw_bridge *b);
/* Credits the upstream charged for the answer (Kiro's metering), -1 if none. */
double agw_bridge_credits(const agw_bridge *b);
void agw_bridge_free(agw_bridge *b);

#endif

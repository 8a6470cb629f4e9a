/*
 * copilot_messages: what GitHub Copilot needs to know of a chat body, and
 * the one change it needs made to some.
 *
 * Copilot bills a premium request for each call whose X-Initiator is
 * `user`, so that header must say who spoke last; it wants
 * copilot-vision-request on bodies with images; and it refuses a history
 * whose tool calls and tool results do not pair up, which clients that lost
 * a result or aborted an agent step send. These read OpenAI Chat Completions
 * bodies, and Anthropic Messages bodies where the protocol is given.
 *
 * Pure functions over the body's bytes; nothing here allocates beyond `out`
 * and its own scratch.
 */
#ifndef AGW_COPILOT_MESSAGES_H
#define AGW_COPILOT_MESSAGES_H

#include "core/core.h"
#include "proto/apierr.h"

/* "user" when the body's last message is the user's own words; "agent" for
 * a tool result (an OpenAI `tool` message, an Anthropic user turn holding a
 * tool_result, a Responses function_call_output item), an assistant prefill
 * (a continuation), or no messages. */
const char *agw_copilot_messages_initiator(agw_str body, agw_proto proto);

/* 1 when a message's content holds an image (`image_url`, `image` or
 * Responses `input_image` parts, also inside tool results). */
int agw_copilot_messages_has_images(agw_str body);

/* Repairs an OpenAI body's tool calls: calls without a name or without
 * their `tool` message among those right after them go, so do tool messages
 * without their call (and a second result for one call), arguments that are
 * not a JSON object text become "{}", and an assistant message left with
 * neither calls nor text goes. AGW_OK with the rebuilt body appended to
 * `out` when anything changed (values JSON cannot carry exactly, such as
 * \u0000 in a string or integers past 2^53, may change then);
 * AGW_ENOTFOUND when nothing needed to (the body goes byte for byte), also
 * for a body that is not such JSON (the upstream says what is wrong);
 * AGW_ETOOBIG/AGW_EBUSY from `out`'s limits. */
AGW_WARN_UNUSED agw_err agw_copilot_messages_repair(agw_str body, agw_buf *out);

#endif

/*
 * provider: how to address one upstream provider: its URL for an operation
 * and the headers that carry its credential and protocol version.
 *
 * The client's own credential never appears here: only the provider's key from
 * the configuration goes upstream. Anthropic's `anthropic-version` and
 * `anthropic-beta` headers from the client are forwarded (their values
 * validated: no control characters), with 2023-06-01 as the version when the
 * client sent none.
 *
 * agw_provider_call owns its strings; release with agw_provider_call_free().
 */
#ifndef AGW_PROVIDER_H
#define AGW_PROVIDER_H

#include "core/config.h"

typedef enum {
    AGW_OP_CHAT = 0,     /* OpenAI chat completions */
    AGW_OP_MESSAGES,     /* Anthropic messages */
    AGW_OP_COUNT_TOKENS, /* Anthropic messages/count_tokens */
    AGW_OP_MODELS,       /* list models */
    AGW_OP_EMBEDDINGS,   /* OpenAI embeddings (OpenAI-type providers only) */
} agw_provider_op;

#define AGW_PROVIDER_MAX_HEADERS 8

typedef struct {
    char *url;
    char *headers[AGW_PROVIDER_MAX_HEADERS + 1]; /* NULL-terminated "Name: value" */
} agw_provider_call;

/* The client headers a provider call may carry over (NULL when absent). */
typedef struct {
    const char *anthropic_version;
    const char *anthropic_beta;
} agw_client_hints;

/* AGW_EINVAL when the operation does not exist for this provider type or a
 * client hint holds characters that cannot go into a header. */
AGW_WARN_UNUSED agw_err agw_provider_prepare(const agw_provider_cfg *p, agw_provider_op op,
                                             const agw_client_hints *hints,
                                             agw_provider_call *out);
void agw_provider_call_free(agw_provider_call *c);

#endif

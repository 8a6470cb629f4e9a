/* Anthropic: an x-api-key, the anthropic-version header on every call, and
 * base URLs without the version (https://api.anthropic.com). */
#include "provider/provider.h"

#define ANTHROPIC_DEFAULT_VERSION "2023-06-01"

static const char *anthropic_path(agw_provider_op op)
{
    switch (op) {
    case AGW_OP_MESSAGES: return "/v1/messages";
    case AGW_OP_COUNT_TOKENS: return "/v1/messages/count_tokens";
    case AGW_OP_MODELS: return "/v1/models";
    default: return NULL;
    }
}

static agw_err anthropic_authenticate(const agw_provider_cfg *p, agw_provider_call *c)
{
    if (p->api_key && *p->api_key)
        return agw_provider_call_header(c, "x-api-key: ", p->api_key);
    return AGW_OK;
}

/* The client picks the API version and beta features it was written for; the
 * gateway only refuses values that would break the header. */
static agw_err anthropic_extra_headers(agw_provider_op op, const agw_client_hints *hints,
                                       agw_provider_call *c)
{
    (void)op;
    const char *version = hints && hints->anthropic_version && *hints->anthropic_version
                              ? hints->anthropic_version
                              : ANTHROPIC_DEFAULT_VERSION;
    const char *beta = hints ? hints->anthropic_beta : NULL;
    if (agw_str_has_ctl(agw_str_c(version), 1) || (beta && agw_str_has_ctl(agw_str_c(beta), 1)))
        return AGW_EINVAL;
    agw_err e = agw_provider_call_header(c, "anthropic-version: ", version);
    if (!e && beta && *beta)
        e = agw_provider_call_header(c, "anthropic-beta: ", beta);
    return e;
}

const agw_provider_ops agw_provider_anthropic = {
    .type = AGW_PROVIDER_ANTHROPIC,
    .proto = AGW_PROTO_ANTHROPIC,
    .model_op = AGW_OP_MESSAGES,
    .path = anthropic_path,
    .authenticate = anthropic_authenticate,
    .extra_headers = anthropic_extra_headers,
    .probe_op = AGW_OP_MODELS,
    .probe_passes = agw_provider_probe_answered,
};

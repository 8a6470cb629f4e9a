#include "provider/provider.h"

#include <stdio.h>
#include <stdlib.h>

#define ANTHROPIC_DEFAULT_VERSION "2023-06-01"

static char *fmt(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *p = xmalloc(n);
    snprintf(p, n, "%s%s", a, b);
    return p;
}

agw_err agw_provider_prepare(const agw_provider_cfg *p, agw_provider_op op,
                             const agw_client_hints *hints, agw_provider_call *out)
{
    memset(out, 0, sizeof *out);
    size_t nh = 0;
    const char *path;
    switch (p->type) {
    case AGW_PROVIDER_OPENAI:
        /* OpenAI-style base URLs carry the version: https://api.openai.com/v1 */
        if (op == AGW_OP_CHAT)
            path = "/chat/completions";
        else if (op == AGW_OP_MODELS)
            path = "/models";
        else if (op == AGW_OP_EMBEDDINGS)
            path = "/embeddings";
        else
            return AGW_EINVAL;
        if (p->api_key && *p->api_key)
            out->headers[nh++] = fmt("Authorization: Bearer ", p->api_key);
        break;
    case AGW_PROVIDER_ANTHROPIC: {
        /* Anthropic-style base URLs do not: https://api.anthropic.com */
        if (op == AGW_OP_MESSAGES)
            path = "/v1/messages";
        else if (op == AGW_OP_COUNT_TOKENS)
            path = "/v1/messages/count_tokens";
        else if (op == AGW_OP_MODELS)
            path = "/v1/models";
        else
            return AGW_EINVAL;
        const char *version = hints && hints->anthropic_version && *hints->anthropic_version
                                  ? hints->anthropic_version
                                  : ANTHROPIC_DEFAULT_VERSION;
        const char *beta = hints ? hints->anthropic_beta : NULL;
        if (agw_str_has_ctl(agw_str_c(version), 1) ||
            (beta && agw_str_has_ctl(agw_str_c(beta), 1)))
            return AGW_EINVAL;
        if (p->api_key && *p->api_key)
            out->headers[nh++] = fmt("x-api-key: ", p->api_key);
        out->headers[nh++] = fmt("anthropic-version: ", version);
        if (beta && *beta)
            out->headers[nh++] = fmt("anthropic-beta: ", beta);
        break;
    }
    default:
        return AGW_EINVAL;
    }
    out->url = fmt(p->base_url, path);
    if (op != AGW_OP_MODELS)
        out->headers[nh++] = xstrdup("Content-Type: application/json");
    out->headers[nh] = NULL;
    return AGW_OK;
}

void agw_provider_call_free(agw_provider_call *c)
{
    free(c->url);
    for (size_t i = 0; i < AGW_PROVIDER_MAX_HEADERS && c->headers[i]; i++)
        free(c->headers[i]);
    memset(c, 0, sizeof *c);
}

/* Anthropic: an x-api-key, the anthropic-version header on every call, and
 * base URLs without the version (https://api.anthropic.com). */
#include "provider/provider.h"

#include "core/json.h"

#include <stdlib.h>

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

/* The list pages: {"data":[...],"has_more":bool,"last_id":"..."}; the next
 * page starts after last_id while has_more is true. */
static agw_err anthropic_parse_models(agw_str body, agw_provider_models *out)
{
    agw_err e = agw_provider_parse_model_data(body, out);
    agw_str more, last;
    free(out->next);
    out->next = NULL;
    if (!e && agw_json_find(body, AGW_STR_LIT("has_more"), &more) == AGW_OK &&
        agw_json_is_true(more)) {
        agw_buf scratch = AGW_BUF_INIT(AGW_LIMIT_HEADER_LINE);
        agw_str v;
        if (agw_json_find(body, AGW_STR_LIT("last_id"), &last) != AGW_OK ||
            agw_json_type_of(last) != AGW_JSON_STRING ||
            agw_json_string_view(last, &scratch, &v) != AGW_OK || v.len == 0)
            e = AGW_EINVAL; /* more pages, but no way to ask for them */
        else
            out->next = agw_str_dup(v);
        agw_buf_free(&scratch);
    }
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
    .probe_verdict = agw_provider_probe_status,
    .parse_models = anthropic_parse_models,
    .models_query = "?limit=1000", /* the most a page may hold (20 by default) */
    .models_after = "after_id",
};

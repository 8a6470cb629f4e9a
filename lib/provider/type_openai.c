/* OpenAI and OpenAI-compatible servers: a Bearer key, base URLs that carry
 * the API version (https://api.openai.com/v1). */
#include "provider/provider.h"

static const char *openai_path(agw_provider_op op)
{
    switch (op) {
    case AGW_OP_CHAT: return "/chat/completions";
    case AGW_OP_MODELS: return "/models";
    case AGW_OP_EMBEDDINGS: return "/embeddings";
    case AGW_OP_RESPONSES: return "/responses";
    default: return NULL;
    }
}

/* A keyless provider (a local model server) sends no credential at all. */
static agw_err openai_authenticate(const agw_provider_cfg *p, agw_provider_call *c)
{
    if (p->api_key && *p->api_key)
        return agw_provider_call_header(c, "Authorization: Bearer ", p->api_key);
    return AGW_OK;
}

const agw_provider_ops agw_provider_openai = {
    .type = AGW_PROVIDER_OPENAI,
    .proto = AGW_PROTO_OPENAI,
    .model_op = AGW_OP_CHAT,
    .path = openai_path,
    .authenticate = openai_authenticate,
    .extra_headers = NULL,
    .probe_op = AGW_OP_MODELS,
    .probe_verdict = agw_provider_probe_status,
    .parse_models = agw_provider_parse_model_data,
    .models_query = NULL, /* one page holds the whole list */
    .models_after = NULL,
};

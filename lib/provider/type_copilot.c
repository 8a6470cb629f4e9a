/* GitHub Copilot: the account's Copilot token (copilot_auth.h) as a Bearer
 * credential, the editor headers Copilot expects on every call, OpenAI's
 * Chat Completions for most models and Anthropic's Messages natively for
 * Claude models asked for by Anthropic clients, on the host the token names.
 *
 * X-Initiator tells Copilot who started a call: `user` costs a premium
 * request, `agent` (a tool result, a continuation) does not. It is `user`
 * only when the last message is the user's own words; marking agent steps
 * as `user` burns the account's quota on every step of an agent loop. */
#include "provider/copilot_auth.h"
#include "proto/copilot_messages.h"

#include "core/json.h"

#include <stdio.h>
#include <stdlib.h>

#define COPILOT_ANTHROPIC_VERSION "2023-06-01"

static const char *copilot_path(agw_provider_op op)
{
    switch (op) {
    case AGW_OP_CHAT: return "/chat/completions";
    case AGW_OP_MESSAGES: return "/v1/messages";
    case AGW_OP_RESPONSES: return "/responses";
    case AGW_OP_MODELS: return "/models";
    case AGW_OP_EMBEDDINGS: return "/embeddings";
    default: return NULL; /* count_tokens: the gateway's own estimate */
    }
}

static agw_err copilot_authenticate(const agw_provider_cfg *p, agw_provider_call *c)
{
    agw_cred_token t;
    char *api = NULL;
    char err[256];
    agw_err e = agw_copilot_access(p, &t, &api, err, sizeof err);
    if (e) {
        agw_log_warn("copilot provider %s has no usable token: %s", p->name, err);
        return AGW_EIO;
    }
    e = agw_provider_call_header(c, "Authorization: Bearer ", t.access_token);
    if (!e)
        e = agw_copilot_client_headers(p, c);
    c->credential_version = t.version;
    agw_cred_token_free(&t);
    if (!e && p->base_url_from_token && api) {
        c->url = api;
        api = NULL;
    }
    free(api);
    return e;
}

static agw_err copilot_extra_headers(agw_provider_op op, const agw_client_hints *hints,
                                     agw_provider_call *c)
{
    agw_err e = AGW_OK;
    if (op == AGW_OP_MESSAGES) {
        const char *version = hints && hints->anthropic_version && *hints->anthropic_version
                                  ? hints->anthropic_version
                                  : COPILOT_ANTHROPIC_VERSION;
        const char *beta = hints ? hints->anthropic_beta : NULL;
        if (agw_str_has_ctl(agw_str_c(version), 1) ||
            (beta && agw_str_has_ctl(agw_str_c(beta), 1)))
            return AGW_EINVAL;
        e = agw_provider_call_header(c, "anthropic-version: ", version);
        if (!e && beta && *beta)
            e = agw_provider_call_header(c, "anthropic-beta: ", beta);
    }
    if (e || (op != AGW_OP_CHAT && op != AGW_OP_MESSAGES && op != AGW_OP_RESPONSES) || !hints)
        return e;
    if (hints->followup)
        return agw_provider_call_header(c, "X-Initiator: ", "agent");
    if (!hints->body.len)
        return e;
    e = agw_provider_call_header(c, "X-Initiator: ",
                                 agw_copilot_messages_initiator(hints->body, hints->body_proto));
    if (!e && agw_copilot_messages_has_images(hints->body))
        e = agw_provider_call_header(c, "copilot-vision-request: ", "true");
    return e;
}

static int is_claude(agw_str model)
{
    return model.len >= 6 && memcmp(model.ptr, "claude", 6) == 0;
}

static agw_err copilot_plan(const agw_provider_cfg *p, agw_proto client, agw_str model,
                            agw_provider_plan *out, char *why, size_t whylen)
{
    int eps = agw_copilot_model_endpoints(p, model);
    /* Models served by /responses (only, or also, for a Responses client)
     * are called through the Responses API. */
    if (eps > 0 && (eps & AGW_COPILOT_EP_RESPONSES) &&
        (client == AGW_PROTO_RESPONSES || !(eps & (AGW_COPILOT_EP_CHAT | AGW_COPILOT_EP_MESSAGES)))) {
        out->proto = AGW_PROTO_RESPONSES;
        out->op = AGW_OP_RESPONSES;
        return AGW_OK;
    }
    if (eps > 0 && !(eps & (AGW_COPILOT_EP_CHAT | AGW_COPILOT_EP_MESSAGES))) {
        snprintf(why, whylen,
                 "model '%.*s' is not a chat model on GitHub Copilot (use /v1/embeddings "
                 "for an embeddings model)",
                 (int)(model.len > 200 ? 200 : model.len), model.ptr);
        return AGW_EINVAL;
    }
    int native = client == AGW_PROTO_ANTHROPIC &&
                 (eps > 0 ? (eps & AGW_COPILOT_EP_MESSAGES) != 0 : is_claude(model));
    out->proto = native ? AGW_PROTO_ANTHROPIC : AGW_PROTO_OPENAI;
    out->op = native ? AGW_OP_MESSAGES : AGW_OP_CHAT;
    return AGW_OK;
}

static int copilot_serves(const agw_provider_cfg *p, agw_str model)
{
    int eps = agw_copilot_model_endpoints(p, model);
    return eps < 0 ? -1 : eps != 0;
}

static agw_err copilot_repair_body(agw_provider_op op, agw_str body, agw_buf *out)
{
    return op == AGW_OP_CHAT ? agw_copilot_messages_repair(body, out) : AGW_ENOTFOUND;
}

const agw_provider_ops agw_provider_copilot = {
    .type = AGW_PROVIDER_COPILOT,
    .proto = AGW_PROTO_OPENAI,
    .model_op = AGW_OP_CHAT,
    .path = copilot_path,
    .authenticate = copilot_authenticate,
    .extra_headers = copilot_extra_headers,
    .probe_op = AGW_OP_MODELS,
    .probe_verdict = agw_provider_probe_status,
    .parse_models = agw_provider_parse_model_data,
    .models_query = NULL,
    .models_after = NULL,
    .plan = copilot_plan,
    .serves = copilot_serves,
    .repair_body = copilot_repair_body,
    .account_models = agw_copilot_models,
};

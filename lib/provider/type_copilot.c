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

#include "core/json.h"

#include <cJSON.h>
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

/* The last element of body's "messages" array (an empty view when none). */
static agw_str last_message(agw_str body)
{
    agw_str msgs, m, last = { NULL, 0 };
    agw_json_iter it;
    if (agw_json_find(body, AGW_STR_LIT("messages"), &msgs) != AGW_OK ||
        agw_json_type_of(msgs) != AGW_JSON_ARRAY || agw_json_iter_init(&it, msgs) != AGW_OK)
        return last;
    while (agw_json_iter_next(&it, NULL, &m))
        last = m;
    return last;
}

/* 1 when a content array holds a block whose "type" is one of `kinds`
 * (NULL-terminated); with `deep`, the content of tool results too. */
static int content_has(agw_str content, const char *const *kinds, int deep)
{
    agw_json_iter it;
    agw_str part, type, inner;
    if (agw_json_type_of(content) != AGW_JSON_ARRAY || agw_json_iter_init(&it, content) != AGW_OK)
        return 0;
    while (agw_json_iter_next(&it, NULL, &part)) {
        if (agw_json_find(part, AGW_STR_LIT("type"), &type) != AGW_OK)
            continue;
        for (const char *const *k = kinds; *k; k++)
            if (agw_json_string_eq(type, agw_str_c(*k)))
                return 1;
        if (deep && agw_json_find(part, AGW_STR_LIT("content"), &inner) == AGW_OK &&
            content_has(inner, kinds, 0))
            return 1;
    }
    return 0;
}

/* A Responses body's last input item: "user" when it is the user's own
 * message (or `input` is a string), "agent" for a function_call_output and
 * anything else. */
static const char *responses_initiator(agw_str body)
{
    agw_str input, item, last = { NULL, 0 }, type, role;
    agw_json_iter it;
    if (agw_json_find(body, AGW_STR_LIT("input"), &input) != AGW_OK)
        return "agent";
    if (agw_json_type_of(input) == AGW_JSON_STRING)
        return "user";
    if (agw_json_type_of(input) != AGW_JSON_ARRAY || agw_json_iter_init(&it, input) != AGW_OK)
        return "agent";
    while (agw_json_iter_next(&it, NULL, &item))
        last = item;
    if (!last.ptr)
        return "agent";
    if (agw_json_find(last, AGW_STR_LIT("type"), &type) == AGW_OK &&
        !agw_json_string_eq(type, AGW_STR_LIT("message")))
        return "agent";
    return agw_json_find(last, AGW_STR_LIT("role"), &role) == AGW_OK &&
                   agw_json_string_eq(role, AGW_STR_LIT("user"))
               ? "user"
               : "agent";
}

/* "user" when the last message is the user's own text, else "agent". */
static const char *initiator(agw_str body, agw_proto proto)
{
    static const char *const tool_results[] = { "tool_result", NULL };
    if (proto == AGW_PROTO_RESPONSES)
        return responses_initiator(body);
    agw_str m = last_message(body), role, content;
    if (!m.ptr || agw_json_find(m, AGW_STR_LIT("role"), &role) != AGW_OK ||
        !agw_json_string_eq(role, AGW_STR_LIT("user")))
        return "agent"; /* a tool message, an assistant prefill, nothing */
    if (proto == AGW_PROTO_ANTHROPIC && agw_json_find(m, AGW_STR_LIT("content"), &content) ==
                                            AGW_OK &&
        content_has(content, tool_results, 0))
        return "agent";
    return "user";
}

/* 1 when any message carries an image. */
static int has_images(agw_str body)
{
    static const char *const kinds[] = { "image_url", "image", NULL };
    agw_str msgs, m, content;
    agw_json_iter it;
    if (agw_json_find(body, AGW_STR_LIT("messages"), &msgs) != AGW_OK ||
        agw_json_iter_init(&it, msgs) != AGW_OK)
        return 0;
    while (agw_json_iter_next(&it, NULL, &m))
        if (agw_json_find(m, AGW_STR_LIT("content"), &content) == AGW_OK &&
            content_has(content, kinds, 1))
            return 1;
    return 0;
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
    if (e || (op != AGW_OP_CHAT && op != AGW_OP_MESSAGES && op != AGW_OP_RESPONSES) || !hints ||
        !hints->body.len)
        return e;
    e = agw_provider_call_header(c, "X-Initiator: ", initiator(hints->body, hints->body_proto));
    if (!e && has_images(hints->body))
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

/* ---- unpaired tool calls ---- */

static const char *role_of(const cJSON *m)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role");
    return cJSON_IsString(r) && r->valuestring ? r->valuestring : "";
}

static const char *string_member(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

/* Keeps the calls of assistant message `m` that have a name and an answer
 * among the tool messages msgs[from, to), with arguments that are a JSON
 * object text ("{}" otherwise). Returns 1 when it changed anything. */
static int repair_calls(cJSON *m, cJSON *msgs, int from, int to)
{
    cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
    int changed = 0;
    for (int i = cJSON_GetArraySize(calls) - 1; i >= 0; i--) {
        cJSON *c = cJSON_GetArrayItem(calls, i);
        cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
        const char *id = string_member(c, "id");
        const char *name = string_member(fn, "name");
        int answered = 0;
        for (int k = from; id && k < to && !answered; k++) {
            const char *tid = string_member(cJSON_GetArrayItem(msgs, k), "tool_call_id");
            answered = tid && strcmp(tid, id) == 0;
        }
        if (!name || !*name || !answered) {
            cJSON_DeleteItemFromArray(calls, i);
            changed = 1;
            continue;
        }
        const char *args = string_member(fn, "arguments");
        cJSON *parsed = args ? cJSON_Parse(args) : NULL;
        if (!cJSON_IsObject(parsed)) {
            cJSON_ReplaceItemInObjectCaseSensitive(fn, "arguments", cJSON_CreateString("{}"));
            changed = 1;
        }
        cJSON_Delete(parsed);
    }
    if (calls && cJSON_GetArraySize(calls) == 0) {
        cJSON_DeleteItemFromObjectCaseSensitive(m, "tool_calls");
        changed = 1;
    }
    return changed;
}

/* 1 when assistant message `m` still calls `id`. */
static int calls_id(const cJSON *m, const char *id)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
    {
        const char *cid = string_member(c, "id");
        if (cid && id && strcmp(cid, id) == 0)
            return 1;
    }
    return 0;
}

/* An assistant message left with neither calls nor text says nothing. */
static int empty_assistant(const cJSON *m)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    return !cJSON_GetObjectItemCaseSensitive(m, "tool_calls") &&
           (!content || cJSON_IsNull(content) ||
            (cJSON_IsString(content) && !*content->valuestring) ||
            (cJSON_IsArray(content) && cJSON_GetArraySize(content) == 0));
}

/* Copilot refuses a history whose tool calls and tool messages do not pair
 * up (a client that lost a result, an aborted agent step): calls without a
 * name or without their result right after them go, so do results without
 * their call, and broken arguments become {}. Only a body that needs it is
 * rebuilt (values JSON cannot carry exactly, such as \u0000 in a string or
 * integers past 2^53, may change then); every other body goes byte for byte. */
static agw_err copilot_repair_body(agw_provider_op op, agw_str body, agw_buf *out)
{
    if (op != AGW_OP_CHAT || !memmem(body.ptr, body.len, "\"tool", 5))
        return AGW_ENOTFOUND;
    cJSON *doc = cJSON_ParseWithLength(body.ptr, body.len);
    cJSON *msgs = doc ? cJSON_GetObjectItemCaseSensitive(doc, "messages") : NULL;
    if (!cJSON_IsArray(msgs)) {
        cJSON_Delete(doc);
        return AGW_ENOTFOUND; /* the upstream says what is wrong with it */
    }
    int changed = 0, n = cJSON_GetArraySize(msgs);
    /* keep[i]: message i stays. */
    char *keep = xcalloc((size_t)n + 1, 1);
    for (int i = 0; i < n;) {
        cJSON *m = cJSON_GetArrayItem(msgs, i);
        const char *role = role_of(m);
        keep[i] = 1;
        if (strcmp(role, "tool") == 0) { /* no assistant call before it */
            keep[i] = 0;
            changed = 1;
            i++;
            continue;
        }
        if (strcmp(role, "assistant") != 0 ||
            !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))) {
            i++;
            continue;
        }
        int j = i + 1;
        while (j < n && strcmp(role_of(cJSON_GetArrayItem(msgs, j)), "tool") == 0)
            j++;
        changed |= repair_calls(m, msgs, i + 1, j);
        for (int k = i + 1; k < j; k++) {
            const char *tid = string_member(cJSON_GetArrayItem(msgs, k), "tool_call_id");
            int dup = 0;
            for (int q = i + 1; q < k && tid; q++) {
                const char *qid = string_member(cJSON_GetArrayItem(msgs, q), "tool_call_id");
                dup |= keep[q] && qid && strcmp(qid, tid) == 0;
            }
            keep[k] = calls_id(m, tid) && !dup;
            changed |= !keep[k];
        }
        if (empty_assistant(m)) {
            keep[i] = 0;
            changed = 1;
        }
        i = j;
    }
    agw_err e = AGW_ENOTFOUND;
    if (changed) {
        for (int i = n - 1; i >= 0; i--)
            if (!keep[i])
                cJSON_DeleteItemFromArray(msgs, i);
        char *text = cJSON_PrintUnformatted(doc);
        e = text ? agw_buf_append_str(out, agw_str_c(text)) : AGW_ETOOBIG;
        cJSON_free(text);
    }
    free(keep);
    cJSON_Delete(doc);
    return e;
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

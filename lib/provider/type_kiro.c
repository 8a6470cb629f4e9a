/* Kiro (Amazon Q Developer / CodeWhisperer streaming): an account's access
 * token from the pool's credential store (credential.h), the API host of the
 * account's region ("{region}" in base_url, default
 * https://q.{region}.amazonaws.com), and the headers the Kiro IDE sends, with
 * every version string a provider setting (antigw.cfg.example). Model calls
 * speak the CodeWhisperer codec (proto/kiro.h) at /generateAssistantResponse;
 * the model list is ListAvailableModels. */
#include "provider/provider.h"

#include "core/crypto.h"
#include "provider/credential.h"
#include "provider/kiro_auth.h"
#include "proto/kiro.h"

#include <stdio.h>
#include <stdlib.h>

static const char *kiro_path(agw_provider_op op)
{
    switch (op) {
    case AGW_OP_CHAT:
    case AGW_OP_MESSAGES: return "/generateAssistantResponse";
    case AGW_OP_MODELS: return "/ListAvailableModels";
    default: return NULL; /* count_tokens: a local estimate */
    }
}

/* The machine id the IDE's user agents carry: 64 hex digits, stable per
 * account (the provider's name and profile ARN), never derived from a secret. */
static void machine_id(const agw_provider_cfg *p, const char *arn, char out[65])
{
    agw_buf b = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    unsigned char h[AGW_SHA256_LEN];
    if (agw_buf_appendf(&b, "antigateway-kiro:%s:%s", p->name, arn ? arn : "") != AGW_OK)
        agw_buf_reset(&b);
    agw_sha256(agw_buf_view(&b), h);
    for (size_t i = 0; i < AGW_SHA256_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
    agw_buf_free(&b);
}

static agw_err kiro_authenticate(const agw_provider_cfg *p, agw_provider_call *c)
{
    agw_cred_token t;
    char err[256];
    memset(&t, 0, sizeof t);
    if (agw_cred_access(p, &t, err, sizeof err) != AGW_OK) {
        agw_log_warn("provider %s: no usable Kiro token: %s", p->name, err);
        return AGW_EIO;
    }
    c->url = agw_kiro_account_api_base(p, &t);
    c->credential_version = t.version;
    if (t.profile_arn && *t.profile_arn)
        c->profile_arn = xstrdup(t.profile_arn);
    char mid[65], inv[37];
    machine_id(p, t.profile_arn, mid);
    const char *ver = agw_provider_setting(p, AGW_SET_KIRO_VERSION);
    const char *sdk = agw_provider_setting(p, AGW_SET_KIRO_SDK_VERSION);
    agw_buf ua = AGW_BUF_INIT(AGW_LIMIT_HEADER_LINE), amz = AGW_BUF_INIT(AGW_LIMIT_HEADER_LINE);
    agw_err e = agw_buf_appendf(&amz, "aws-sdk-js/%s KiroIDE-%s-%s", sdk, ver, mid);
    if (!e)
        e = agw_buf_appendf(&ua,
                            "aws-sdk-js/%s ua/2.1 os/%s lang/js md/nodejs#%s "
                            "api/codewhispererstreaming#%s m/E KiroIDE-%s-%s",
                            sdk, agw_provider_setting(p, AGW_SET_KIRO_OS),
                            agw_provider_setting(p, AGW_SET_KIRO_NODE_VERSION), sdk, ver, mid);
    if (!e)
        e = agw_kiro_uuid(inv);
    if (!e)
        e = agw_provider_call_header(c, "Authorization: Bearer ", t.access_token);
    if (!e)
        e = agw_provider_call_header(c, "x-amz-user-agent: ", amz.data);
    if (!e)
        e = agw_provider_call_header(c, "user-agent: ", ua.data);
    if (!e)
        e = agw_provider_call_header(c, "x-amzn-codewhisperer-optout: ", "true");
    if (!e)
        e = agw_provider_call_header(c, "x-amzn-kiro-agent-mode: ",
                                     agw_provider_setting(p, AGW_SET_KIRO_AGENT_MODE));
    if (!e)
        e = agw_provider_call_header(c, "amz-sdk-invocation-id: ", inv);
    if (!e)
        e = agw_provider_call_header(c, "amz-sdk-request: ", "attempt=1; max=3");
    agw_buf_free(&ua);
    agw_buf_free(&amz);
    agw_cred_token_free(&t);
    return e;
}

/* {"models":[{"modelId":...,"tokenLimits":{...}},...]}: one page. */
static agw_err kiro_parse_models(agw_str body, agw_provider_models *out)
{
    free(out->next);
    out->next = NULL;
    return agw_provider_parse_model_list(body, AGW_STR_LIT("models"), AGW_STR_LIT("modelId"), out);
}

const agw_provider_ops agw_provider_kiro = {
    .type = AGW_PROVIDER_KIRO,
    .proto = AGW_PROTO_KIRO,
    .model_op = AGW_OP_MESSAGES,
    .path = kiro_path,
    .authenticate = kiro_authenticate,
    .extra_headers = NULL,
    .probe_op = AGW_OP_MODELS,
    .probe_verdict = agw_provider_probe_status,
    .parse_models = kiro_parse_models,
    .models_query = "?origin=AI_EDITOR",
    .models_after = NULL,
    .models_profile_param = "profileArn",
};

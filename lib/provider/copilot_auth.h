/*
 * copilot_auth: a GitHub Copilot account's tokens and what comes with them.
 *
 * An account is a credential record (provider/credential.h, method
 * "copilot") whose refresh token is the GitHub token (from the device flow,
 * or given by an admin) and whose access token is the Copilot token that
 * GitHub exchanges it for (`GET {github_api_url}/copilot_internal/v2/token`,
 * `Authorization: token <github token>`). That token lives about half an
 * hour; GitHub says when to renew it (`refresh_in`). The record's `extra`
 * keeps, in JSON:
 *   api          the account's API host (the token's endpoints.api)
 *   expires_at   the Copilot token's expiry (Unix seconds)
 *   refresh_at   when to renew it: issued + refresh_in - 60
 *   sku          the plan GitHub named
 *   models       the account's model list, read with each new token:
 *                [{"id", "endpoints": [...]}, ...]
 * The record itself carries expires_at 0 (renewed only when asked), so the
 * renewal time is Copilot's own: agw_copilot_access() asks the credential
 * module to renew a token whose refresh_at has passed, and that module makes
 * it one exchange per account across the pool (the first caller renews
 * under the account's lock, the others find the new version and use it).
 * A GitHub token that GitHub refuses (401/403 on the exchange) is dead: the
 * record goes to needs_login and the account leaves routing.
 *
 * Each process keeps, per account, the last model list it read (by record
 * version), so routing and planning a call read no database.
 *
 * Nothing here logs or returns a token; `err` texts are our own words.
 *
 * Threads: every function is safe from any thread.
 */
#ifndef AGW_COPILOT_AUTH_H
#define AGW_COPILOT_AUTH_H

#include "core/config.h"
#include "provider/credential.h"
#include "provider/provider.h"

/* The refresh method of Copilot records (registered in credential.c). */
extern const agw_cred_method agw_copilot_method;

/* The current Copilot token of `p`, renewed first when its refresh_at has
 * passed; `api` (may be NULL) gets a copy of the account's API host, NULL
 * when the token named none. Codes as agw_cred_access(). */
AGW_WARN_UNUSED agw_err agw_copilot_access(const agw_provider_cfg *p, agw_cred_token *out,
                                           char **api, char *err, size_t errlen);

/* Adds the headers every call to the Copilot API carries (PROVIDERS.md
 * §2.2, values from p's settings): copilot-integration-id, editor-version,
 * editor-plugin-version, user-agent, openai-intent, x-github-api-version and
 * a fresh x-request-id. */
AGW_WARN_UNUSED agw_err agw_copilot_client_headers(const agw_provider_cfg *p,
                                                   agw_provider_call *c);

/* Which endpoints serve a model on the account (bits of the paths its
 * supported_endpoints list names). */
enum {
    AGW_COPILOT_EP_CHAT = 1,      /* /chat/completions */
    AGW_COPILOT_EP_MESSAGES = 2,  /* /v1/messages */
    AGW_COPILOT_EP_RESPONSES = 4, /* /responses */
    AGW_COPILOT_EP_EMBEDDINGS = 8 /* /embeddings */
};

/* The endpoints of `model` on `p`'s account: -1 when the account's list is
 * not known (no token yet), 0 when the list does not hold the model, else
 * the bits above (a listed model without supported_endpoints counts as
 * served by /chat/completions). */
int agw_copilot_model_endpoints(const agw_provider_cfg *p, agw_str model);

/* Appends the ids of `p`'s model list (as of the last token this process
 * saw) to `out`: AGW_ENOTFOUND when none is known. */
AGW_WARN_UNUSED agw_err agw_copilot_models(const agw_provider_cfg *p, agw_provider_models *out);

/* Exchanges `github_token` for a Copilot token at p's github_api_url and
 * reads the account's model list with it: fills c->access_token,
 * refresh_token (a copy of github_token), expires_at, extra. For a login
 * or an admin-given token, before the record is stored. AGW_EPEER when
 * GitHub refuses the GitHub token (401 or 403); AGW_EIO on any other failure
 * (`err`). */
AGW_WARN_UNUSED agw_err agw_copilot_exchange(const agw_provider_cfg *p, const char *github_token,
                                             agw_cred *c, int timeout_ms, char *err,
                                             size_t errlen);

/* One GET to GitHub's API with the GitHub token (`path`: "/user",
 * "/copilot_internal/user"): the JSON body of a 2xx answer in `body`.
 * AGW_EPEER on 401/403, AGW_EIO otherwise (`err`). */
AGW_WARN_UNUSED agw_err agw_copilot_github_get(const agw_provider_cfg *p, const char *github_token,
                                               const char *path, int timeout_ms, agw_buf *body,
                                               char *err, size_t errlen);

/* One form POST to GitHub's web host (the device flow: `path`
 * "/login/device/code" or "/login/oauth/access_token"), Accept JSON: the
 * body of the answer (GitHub answers these with 200 and an `error` member)
 * in `body`, the status in *status. AGW_EIO when no answer came. */
AGW_WARN_UNUSED agw_err agw_copilot_github_form(const agw_provider_cfg *p, const char *path,
                                                const char *form, int timeout_ms, agw_buf *body,
                                                long *status, char *err, size_t errlen);

#endif

/*
 * kiro_auth: how a Kiro account gets and renews its tokens.
 *
 * Three auth methods, each a refresh method of the credential store
 * (credential.h):
 *   "social"      Google/GitHub through Kiro's own auth service: a browser
 *                 sign-in with PKCE, the code exchanged at
 *                 {auth_url}/oauth/token, renewed at {auth_url}/refreshToken
 *                 (JSON, camelCase; the refresh token may rotate).
 *   "builder-id"  AWS Builder ID and
 *   "idc"         IAM Identity Center: the OIDC device flow at {oidc_url}
 *                 (client/register, device_authorization, token), renewed
 *                 with grantType refresh_token at {oidc_url}/token with the
 *                 account's client id and secret. An IdC account's profile
 *                 ARN comes from ListAvailableProfiles on the API base.
 * The refresh answers: 2xx with an accessToken → refreshed; 400/401 with
 * invalid_grant (or an OIDC InvalidGrantException, or an answer saying the
 * refresh token is invalid) → dead (the account needs a new login);
 * anything else → failed (tried again later).
 *
 * Every URL is a provider setting (antigw.cfg, agw_provider_setting) with
 * the defaults below; "{region}" in one stands for the account's region,
 * the record's `region`: where it logged in (the OIDC region of an IdC
 * account; us-east-1 when it has none). The API base is the provider's
 * base_url, "{region}" there being the profile ARN's region (an IdC
 * account's profile may live elsewhere than its login); ListAvailableProfiles
 * is asked at the default region's, as the IDE does.
 *
 * Nothing here logs a token or puts one in `why`: failures name the step,
 * the HTTP status and the OAuth error code.
 *
 * Ownership: every char * out-parameter and struct field is malloc'd and the
 * caller's; secrets among them are released with agw_secret_free().
 */
#ifndef AGW_KIRO_AUTH_H
#define AGW_KIRO_AUTH_H

#include "core/config.h"
#include "provider/credential.h"

#define AGW_KIRO_DEFAULT_REGION "us-east-1"

extern const agw_cred_method agw_kiro_cred_social;
extern const agw_cred_method agw_kiro_cred_idc;
extern const agw_cred_method agw_kiro_cred_builder_id;

/* Setting `id` of `p` with "{region}" replaced by `region` (the default
 * region when NULL or empty). Malloc'd. */
char *agw_kiro_url(const agw_provider_cfg *p, agw_provider_setting_id id, const char *region);
/* The API base of `p` (base_url) for `region`. Malloc'd. */
char *agw_kiro_api_base(const agw_provider_cfg *p, const char *region);
/* The API base of the account `t`: the region of its profile ARN (where
 * its profile lives), else its login region, else the default. Malloc'd. */
char *agw_kiro_account_api_base(const agw_provider_cfg *p, const agw_cred_token *t);

/* The region of a profile ARN (arn:aws:codewhisperer:REGION:...), malloc'd;
 * NULL when `arn` is not one. */
char *agw_kiro_arn_region(const char *arn);

/* ---- social sign-in ---- */

typedef struct {
    char *auth_url;      /* where the admin's browser goes */
    char *verifier;      /* PKCE code verifier: secret */
    char *state;         /* checked when the code comes back: secret */
    char *redirect_uri;  /* the loopback callback without code/state */
} agw_kiro_social_start;

void agw_kiro_social_start_free(agw_kiro_social_start *s);

/* A new sign-in: a fresh verifier (32 random bytes), its S256 challenge and
 * a fresh state in the sign-in page's URL. AGW_EIO when the RNG fails. */
AGW_WARN_UNUSED agw_err agw_kiro_social_begin(const agw_provider_cfg *p, agw_kiro_social_start *out);

/* What came back on the callback URL the admin pasted: code, state and
 * login_option (NULL when absent). AGW_EINVAL with `why` when it is not a
 * URL with a code and a state. */
AGW_WARN_UNUSED agw_err agw_kiro_parse_callback(const char *url, char **code, char **state,
                                                char **login_option, char *why, size_t whylen);

/* Exchanges a code for the account: fills out->access_token, refresh_token,
 * profile_arn, region (from the ARN), expires_at, method "social".
 * `redirect_uri` is the callback the browser was sent to, login_option
 * included. AGW_EINVAL when the service refused the code, AGW_EIO when it
 * could not be asked. */
AGW_WARN_UNUSED agw_err agw_kiro_social_exchange(const agw_provider_cfg *p, const char *code,
                                                 const char *verifier, const char *redirect_uri,
                                                 agw_cred *out, int timeout_ms, char *why,
                                                 size_t whylen);

/* ---- OIDC device flow (Builder ID, IdC) ---- */

typedef struct {
    char *client_id;
    char *client_secret;          /* secret */
    char *device_code;            /* secret */
    char *user_code;
    char *verification_uri;
    char *verification_uri_complete;
    int interval;                 /* seconds; 5 when the service named none */
    int64_t expires_in;           /* seconds */
} agw_kiro_device;

void agw_kiro_device_free(agw_kiro_device *d);

/* Registers a client at the OIDC service of `region` for `start_url` and
 * starts a device authorization. AGW_EINVAL when the service refused,
 * AGW_EIO when it could not be asked. */
AGW_WARN_UNUSED agw_err agw_kiro_device_begin(const agw_provider_cfg *p, const char *region,
                                              const char *start_url, agw_kiro_device *out,
                                              int timeout_ms, char *why, size_t whylen);

typedef enum {
    AGW_KIRO_POLL_DONE = 0,   /* `out` holds the tokens */
    AGW_KIRO_POLL_PENDING,    /* authorization_pending: ask again after the interval */
    AGW_KIRO_POLL_SLOW_DOWN,  /* slow_down: the interval grows by 5 s */
    AGW_KIRO_POLL_EXPIRED,    /* expired_token: the user code is dead */
    AGW_KIRO_POLL_DENIED,     /* access_denied or another refusal */
    AGW_KIRO_POLL_FAILED,     /* no answer or a server error: ask again later */
} agw_kiro_poll;

/* One poll of the token endpoint. On DONE fills out->access_token,
 * refresh_token, expires_at (the caller sets method, client id/secret,
 * region). */
agw_kiro_poll agw_kiro_device_poll(const agw_provider_cfg *p, const char *region,
                                   const char *client_id, const char *client_secret,
                                   const char *device_code, agw_cred *out, int timeout_ms,
                                   char *why, size_t whylen);

/* The first profile ARN ListAvailableProfiles names for the account's
 * token (asked at the default region's API base); AGW_ENOTFOUND when it
 * names none. */
AGW_WARN_UNUSED agw_err agw_kiro_list_profiles(const agw_provider_cfg *p, const char *access_token,
                                               char **arn, int timeout_ms, char *why,
                                               size_t whylen);

/* getUsageLimits for the account: the service's JSON answer (2xx) in
 * `body`. AGW_EINVAL with `why` for a non-2xx answer
 * (*status says which), AGW_EIO when it could not be asked. */
AGW_WARN_UNUSED agw_err agw_kiro_usage_limits(const agw_provider_cfg *p, const agw_cred_token *t,
                                              agw_buf *body, long *status, int timeout_ms,
                                              char *why, size_t whylen);

/* ---- import ---- */

/* An account from the Kiro IDE's kiro-auth-token.json (`token_json`) and,
 * for IdC, its client registration file (`client_json`, may be NULL).
 * Fills `out` (method "social", "idc" or "builder-id"). AGW_EINVAL with
 * `why` naming the missing or malformed field. */
AGW_WARN_UNUSED agw_err agw_kiro_import_token_file(agw_str token_json, agw_str client_json,
                                                   agw_cred *out, char *why, size_t whylen);

/* An account from a kiro-cli SQLite file (its bytes). AGW_EINVAL with `why`
 * when it is not such a file or holds no token. */
AGW_WARN_UNUSED agw_err agw_kiro_import_cli_db(agw_str db_bytes, agw_cred *out, char *why,
                                               size_t whylen);

#endif

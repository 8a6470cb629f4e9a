/* Client authentication: one key from antigw.cfg (auth.api_key), or in
 * tenant mode the key's SHA-256 looked up through the catalog's cache. */
#include "request.h"

#include "core/crypto.h"

/* The key the client presented: `Authorization: Bearer` or `x-api-key`. */
static agw_str presented_key(agw_request *r)
{
    agw_str bearer = agw_fcgi_bearer(&r->conn);
    if (bearer.ptr)
        return bearer;
    const char *x = agw_fcgi_param(&r->conn, "HTTP_X_API_KEY");
    if (x && *x)
        return agw_str_c(x);
    return (agw_str){ NULL, 0 };
}

/* 401 for an unknown key, 403 for one that may not be used now. */
static int authenticate_tenant(agw_request *r, agw_str got)
{
    const agw_tenant_key *k;
    agw_err e = agw_catalog_key(r->cat, agw_store_db(r->worker->store), got, &k);
    if (e == AGW_EIO) {
        agw_request_error_code(r, 503, "database_unavailable",
                               "the key cannot be checked right now: try again");
        return 0;
    }
    if (e) {
        agw_request_error_code(r, 401, "invalid_api_key", "invalid API key");
        return 0;
    }
    switch (agw_tenant_key_check(k, agw_wall_s())) {
    case AGW_TENANT_KEY_DISABLED:
        agw_request_error_code(r, 403, "key_disabled", "this API key is disabled");
        return 0;
    case AGW_TENANT_KEY_EXPIRED:
        agw_request_error_code(r, 403, "key_expired", "this API key has expired");
        return 0;
    case AGW_TENANT_KEY_OK:
        break;
    }
    r->key = k;
    r->usage.key_id = k->id;
    return 1;
}

int agw_request_authenticate(agw_request *r)
{
    const char *want = r->cfg->auth.api_key;
    if (!want && !r->cfg->tenant.enabled)
        return 1;
    agw_str got = presented_key(r);
    if (!got.ptr || !got.len) {
        agw_request_error_code(r, 401, "missing_api_key",
                               "missing API key: send Authorization: Bearer <key> or x-api-key");
        return 0;
    }
    if (r->cfg->tenant.enabled)
        return authenticate_tenant(r, got);
    if (!agw_secret_eq(got, agw_str_c(want))) {
        agw_request_error_code(r, 401, "invalid_api_key", "invalid API key");
        return 0;
    }
    return 1;
}

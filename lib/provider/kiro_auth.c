#include "provider/kiro_auth.h"

#include "core/json.h"
#include "proto/wire.h"

#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define DEVICE_GRANT "urn:ietf:params:oauth:grant-type:device_code"
/* A token answer without expiresIn: access tokens live about an hour. */
#define DEFAULT_LIFETIME 3600

/* A NUL-terminated copy of n bytes at p. */
static char *copy_n(const void *p, size_t n)
{
    char *s = xmalloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* ---- URLs ---- */

static const char *region_or_default(const char *region)
{
    return region && *region ? region : AGW_KIRO_DEFAULT_REGION;
}

static char *with_region(const char *tmpl, const char *region)
{
    region = region_or_default(region);
    agw_buf b = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    static const char mark[] = "{region}";
    const char *p = tmpl;
    for (const char *at; (at = strstr(p, mark)) != NULL; p = at + sizeof mark - 1) {
        if (agw_buf_append(&b, p, (size_t)(at - p)) || agw_buf_append_str(&b, agw_str_c(region)))
            break;
    }
    if (agw_buf_append_str(&b, agw_str_c(p)) != AGW_OK)
        return xstrdup(tmpl);
    return agw_buf_detach(&b, NULL);
}

char *agw_kiro_url(const agw_provider_cfg *p, agw_provider_setting_id id, const char *region)
{
    return with_region(agw_provider_setting(p, id), region);
}

char *agw_kiro_api_base(const agw_provider_cfg *p, const char *region)
{
    return with_region(p->base_url, region);
}

char *agw_kiro_account_api_base(const agw_provider_cfg *p, const agw_cred_token *t)
{
    char *arn_region = agw_kiro_arn_region(t->profile_arn);
    char *base = agw_kiro_api_base(p, arn_region ? arn_region : t->region);
    free(arn_region);
    return base;
}

char *agw_kiro_arn_region(const char *arn)
{
    static const char prefix[] = "arn:aws:codewhisperer:";
    if (!arn || strncmp(arn, prefix, sizeof prefix - 1) != 0)
        return NULL;
    const char *r = arn + sizeof prefix - 1, *end = strchr(r, ':');
    if (!end || end == r || end - r > 32)
        return NULL;
    for (const char *c = r; c < end; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
            return NULL;
    return copy_n(r, (size_t)(end - r));
}

/* ---- the exchanges ---- */

/* An OAuth error code fit to repeat in a message: letters, digits and
 * ._:- only, so nothing an upstream sends can smuggle a value into a log. */
static void error_code(agw_str body, char *out, size_t n)
{
    static const char *const keys[] = { "error", "__type", "code" };
    out[0] = '\0';
    for (size_t k = 0; k < sizeof keys / sizeof keys[0] && !out[0]; k++) {
        char *v = agw_cred_json_string(body, keys[k]);
        if (!v)
            continue;
        /* AWS writes "com.amazon...#InvalidGrantException". */
        const char *s = strrchr(v, '#') ? strrchr(v, '#') + 1 : v;
        size_t i = 0;
        for (; s[i] && i + 1 < n && i < 64; i++) {
            char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == ':' || c == '-'))
                break;
            out[i] = c;
        }
        out[s[i] ? 0 : i] = '\0';
        free(v);
    }
}

static int is_invalid_grant(const char *code)
{
    return strcasecmp(code, "invalid_grant") == 0 ||
           strcasecmp(code, "InvalidGrantException") == 0;
}

/* POSTs JSON `body` to `url`. AGW_OK with *status for any answer. */
static agw_err post_json(const agw_provider_cfg *p, const char *url, agw_str body,
                         const char *bearer, const char *amz_target, agw_buf *resp, long *status,
                         int timeout_ms, char *why, size_t whylen)
{
    char ua[512], auth[8192], target[160];
    snprintf(ua, sizeof ua, "User-Agent: KiroIDE-%s", agw_provider_setting(p, AGW_SET_KIRO_VERSION));
    const char *headers[6];
    size_t n = 0;
    headers[n++] = amz_target ? "Content-Type: application/x-amz-json-1.0"
                              : "Content-Type: application/json";
    headers[n++] = "Accept: application/json";
    headers[n++] = ua;
    if (bearer) {
        int w = snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        if (w < 0 || (size_t)w >= sizeof auth) {
            snprintf(why, whylen, "the access token is too long");
            return AGW_EINVAL;
        }
        headers[n++] = auth;
    }
    if (amz_target) {
        snprintf(target, sizeof target, "x-amz-target: %s", amz_target);
        headers[n++] = target;
    }
    headers[n] = NULL;
    agw_err e = agw_cred_http(url, headers, body, timeout_ms, status, resp, why, whylen);
    if (bearer)
        agw_wipe(auth, sizeof auth);
    return e;
}

/* Reads a token answer into `out`: accessToken (required), a rotated
 * refreshToken, profileArn, expiresIn. 0 when there is no access token. */
static int read_tokens(agw_str body, agw_cred *out)
{
    char *access = agw_cred_json_string(body, "accessToken");
    if (!access || !*access) {
        agw_secret_free(access);
        return 0;
    }
    agw_secret_free(out->access_token);
    out->access_token = access;
    char *refresh = agw_cred_json_string(body, "refreshToken");
    if (refresh && *refresh) {
        agw_secret_free(out->refresh_token);
        out->refresh_token = refresh;
    } else {
        agw_secret_free(refresh);
    }
    char *arn = agw_cred_json_string(body, "profileArn");
    if (arn && *arn) {
        free(out->profile_arn);
        out->profile_arn = arn;
        if (!out->region) /* a login's region stays where it logged in */
            out->region = agw_kiro_arn_region(arn);
    } else {
        free(arn);
    }
    int64_t in = 0;
    if (!agw_cred_json_int(body, "expiresIn", &in) || in <= 0 || in > 366 * 86400)
        in = DEFAULT_LIFETIME;
    out->expires_at = agw_wall_s() + in;
    return 1;
}

/* Sends a refresh whose JSON `body` (wiped and freed here; `built` is its
 * writer's result) goes to setting `base_id`'s URL + `path`, and reads the
 * answer into `out`: `step` names it in `why`. */
static agw_cred_outcome refresh_call(const agw_provider_cfg *p, const agw_cred *cur,
                                     agw_provider_setting_id base_id, const char *path,
                                     const char *step, agw_buf *body, agw_err built,
                                     agw_cred *out, int timeout_ms, char *why, size_t whylen)
{
    char *base = agw_kiro_url(p, base_id, cur->region);
    agw_buf url = AGW_BUF_INIT(AGW_LIMIT_SMALL), resp = AGW_BUF_INIT(0);
    long status = 0;
    agw_err e = built ? built : agw_buf_appendf(&url, "%s%s", base, path);
    char detail[256] = "the request does not fit";
    if (!e)
        e = post_json(p, url.data, agw_buf_view(body), NULL, NULL, &resp, &status, timeout_ms,
                      detail, sizeof detail);
    agw_str answer = agw_buf_view(&resp);
    agw_cred_outcome o = AGW_CRED_FAILED;
    char code[72];
    if (e) {
        snprintf(why, whylen, "%s: %s", step, detail);
    } else if (status >= 200 && status < 300) {
        if (read_tokens(answer, out))
            o = AGW_CRED_REFRESHED;
        else
            snprintf(why, whylen, "%s: HTTP %ld without an accessToken", step, status);
    } else {
        error_code(answer, code, sizeof code);
        snprintf(why, whylen, "%s: HTTP %ld%s%s", step, status, code[0] ? " " : "", code);
        if ((status == 400 || status == 401) && is_invalid_grant(code))
            o = AGW_CRED_DEAD;
    }
    agw_wipe(body->data, body->cap);
    agw_wipe(resp.data, resp.cap);
    agw_buf_free(body);
    agw_buf_free(&resp);
    agw_buf_free(&url);
    free(base);
    return o;
}

static agw_cred_outcome refresh_social(const agw_provider_cfg *p, const agw_cred *cur,
                                       agw_cred *out, int timeout_ms, char *why, size_t whylen)
{
    if (!cur->refresh_token || !*cur->refresh_token) {
        snprintf(why, whylen, "the account has no refresh token");
        return AGW_CRED_DEAD;
    }
    agw_buf body = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    agw_wire_writer w = AGW_WIRE_WRITER(&body);
    AGW_WIRE_W_LIT(&w, "{\"refreshToken\":");
    agw_wire_w_str(&w, agw_str_c(cur->refresh_token));
    AGW_WIRE_W_LIT(&w, "}");
    return refresh_call(p, cur, AGW_SET_KIRO_AUTH_URL, "/refreshToken", "social refresh", &body,
                        w.e, out, timeout_ms, why, whylen);
}

static agw_cred_outcome refresh_oidc(const agw_provider_cfg *p, const agw_cred *cur,
                                     agw_cred *out, int timeout_ms, char *why, size_t whylen)
{
    if (!cur->refresh_token || !*cur->refresh_token) {
        snprintf(why, whylen, "the account has no refresh token");
        return AGW_CRED_DEAD;
    }
    if (!cur->client_id || !cur->client_secret) {
        snprintf(why, whylen, "the account has no OIDC client registration: log in again");
        return AGW_CRED_DEAD;
    }
    agw_buf body = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    agw_wire_writer w = AGW_WIRE_WRITER(&body);
    AGW_WIRE_W_LIT(&w, "{\"clientId\":");
    agw_wire_w_str(&w, agw_str_c(cur->client_id));
    AGW_WIRE_W_LIT(&w, ",\"clientSecret\":");
    agw_wire_w_str(&w, agw_str_c(cur->client_secret));
    AGW_WIRE_W_LIT(&w, ",\"grantType\":\"refresh_token\",\"refreshToken\":");
    agw_wire_w_str(&w, agw_str_c(cur->refresh_token));
    AGW_WIRE_W_LIT(&w, "}");
    return refresh_call(p, cur, AGW_SET_KIRO_OIDC_URL, "/token", "OIDC refresh", &body, w.e, out,
                        timeout_ms, why, whylen);
}

const agw_cred_method agw_kiro_cred_social = { "social", AGW_PROVIDER_KIRO, refresh_social };
const agw_cred_method agw_kiro_cred_idc = { "idc", AGW_PROVIDER_KIRO, refresh_oidc };
const agw_cred_method agw_kiro_cred_builder_id = { "builder-id", AGW_PROVIDER_KIRO, refresh_oidc };

/* ---- social sign-in ---- */

void agw_kiro_social_start_free(agw_kiro_social_start *s)
{
    free(s->auth_url);
    agw_secret_free(s->verifier);
    agw_secret_free(s->state);
    free(s->redirect_uri);
    memset(s, 0, sizeof *s);
}

/* base64url without padding (RFC 7636 §4.1). */
static char *b64url(const unsigned char *p, size_t n)
{
    char *out = xmalloc(4 * ((n + 2) / 3) + 1);
    int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return out;
}

/* Percent-encodes everything but RFC 3986's unreserved characters. */
static agw_err put_query_value(agw_buf *b, const char *s)
{
    agw_err e = AGW_OK;
    for (; *s && !e; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~')
            e = agw_buf_append(b, s, 1);
        else
            e = agw_buf_appendf(b, "%%%02X", c);
    }
    return e;
}

agw_err agw_kiro_social_begin(const agw_provider_cfg *p, agw_kiro_social_start *out)
{
    memset(out, 0, sizeof *out);
    unsigned char raw[32], digest[AGW_SHA256_LEN];
    if (agw_random_bytes(raw, sizeof raw) != AGW_OK)
        return AGW_EIO;
    out->verifier = b64url(raw, sizeof raw);
    agw_wipe(raw, sizeof raw);
    agw_sha256(agw_str_c(out->verifier), digest);
    char *challenge = b64url(digest, sizeof digest);
    char state[33];
    if (agw_random_hex(state, 16) != AGW_OK) {
        free(challenge);
        agw_kiro_social_start_free(out);
        return AGW_EIO;
    }
    out->state = xstrdup(state);
    out->redirect_uri = xstrdup(agw_provider_setting(p, AGW_SET_KIRO_REDIRECT_URI));
    const char *signin = agw_provider_setting(p, AGW_SET_KIRO_SIGNIN_URL);
    agw_buf u = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    agw_err e = agw_buf_appendf(&u, "%s%sstate=", signin, strchr(signin, '?') ? "&" : "?");
    if (!e)
        e = put_query_value(&u, out->state);
    if (!e)
        e = agw_buf_appendf(&u, "&code_challenge=%s&code_challenge_method=S256&redirect_uri=",
                            challenge);
    if (!e)
        e = put_query_value(&u, out->redirect_uri);
    if (!e)
        e = agw_buf_appendf(&u, "&redirect_from=KiroIDE");
    free(challenge);
    if (e) {
        agw_buf_free(&u);
        agw_kiro_social_start_free(out);
        return e;
    }
    out->auth_url = agw_buf_detach(&u, NULL);
    return AGW_OK;
}

/* The decoded value of query parameter `name` in `query` (up to '#'). */
static char *query_param(const char *query, const char *name)
{
    size_t nl = strlen(name);
    for (const char *q = query; q && *q && *q != '#';) {
        const char *end = q + strcspn(q, "&#");
        if ((size_t)(end - q) > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
            agw_buf b = AGW_BUF_INIT(AGW_LIMIT_SMALL);
            for (const char *c = q + nl + 1; c < end; c++) {
                int hi, lo;
                char ch = *c;
                if (ch == '%' && c + 2 < end + 0 + 1 && (hi = agw_hex_value(c[1])) >= 0 &&
                    (lo = agw_hex_value(c[2])) >= 0) {
                    ch = (char)(hi * 16 + lo);
                    c += 2;
                } else if (ch == '+') {
                    ch = ' ';
                }
                if (ch == '\0' || agw_buf_append(&b, &ch, 1) != AGW_OK) {
                    agw_buf_free(&b);
                    return NULL;
                }
            }
            char *v = agw_buf_detach(&b, NULL);
            return v ? v : xstrdup("");
        }
        q = *end == '&' ? end + 1 : end;
    }
    return NULL;
}

agw_err agw_kiro_parse_callback(const char *url, char **code, char **state, char **login_option,
                                char *why, size_t whylen)
{
    *code = *state = *login_option = NULL;
    const char *q = url ? strchr(url, '?') : NULL;
    if (!q) {
        snprintf(why, whylen, "callback_url has no query: paste the whole address the browser "
                 "was sent to");
        return AGW_EINVAL;
    }
    char *err_code = query_param(q + 1, "error");
    if (err_code) {
        free(err_code);
        snprintf(why, whylen, "the sign-in page answered with an error instead of a code");
        return AGW_EINVAL;
    }
    *code = query_param(q + 1, "code");
    *state = query_param(q + 1, "state");
    *login_option = query_param(q + 1, "login_option");
    if (!*code || !**code || !*state || !**state) {
        agw_secret_free(*code);
        agw_secret_free(*state);
        free(*login_option);
        *code = *state = *login_option = NULL;
        snprintf(why, whylen, "callback_url holds no code and state");
        return AGW_EINVAL;
    }
    return AGW_OK;
}

agw_err agw_kiro_social_exchange(const agw_provider_cfg *p, const char *code, const char *verifier,
                                 const char *redirect_uri, agw_cred *out, int timeout_ms,
                                 char *why, size_t whylen)
{
    char *base = agw_kiro_url(p, AGW_SET_KIRO_AUTH_URL, NULL);
    agw_buf url = AGW_BUF_INIT(AGW_LIMIT_SMALL), body = AGW_BUF_INIT(AGW_LIMIT_SMALL),
            resp = AGW_BUF_INIT(0);
    agw_wire_writer w = AGW_WIRE_WRITER(&body);
    AGW_WIRE_W_LIT(&w, "{\"code\":");
    agw_wire_w_str(&w, agw_str_c(code));
    AGW_WIRE_W_LIT(&w, ",\"code_verifier\":");
    agw_wire_w_str(&w, agw_str_c(verifier));
    AGW_WIRE_W_LIT(&w, ",\"redirect_uri\":");
    agw_wire_w_str(&w, agw_str_c(redirect_uri));
    AGW_WIRE_W_LIT(&w, "}");
    long status = 0;
    agw_err e = w.e ? w.e : agw_buf_appendf(&url, "%s/oauth/token", base);
    if (!e)
        e = post_json(p, url.data, agw_buf_view(&body), NULL, NULL, &resp, &status, timeout_ms,
                      why, whylen);
    if (!e) {
        if (status >= 200 && status < 300 && read_tokens(agw_buf_view(&resp), out)) {
            free(out->method);
            out->method = xstrdup("social");
        } else {
            char code_s[72];
            error_code(agw_buf_view(&resp), code_s, sizeof code_s);
            snprintf(why, whylen, "the auth service refused the code: HTTP %ld%s%s", status,
                     code_s[0] ? " " : "", code_s);
            e = AGW_EINVAL;
        }
    } else if (e != AGW_EINVAL) {
        char detail[256];
        snprintf(detail, sizeof detail, "%s", why);
        snprintf(why, whylen, "the auth service could not be asked: %s", detail);
        e = AGW_EIO;
    }
    agw_wipe(body.data, body.cap);
    agw_wipe(resp.data, resp.cap);
    agw_buf_free(&body);
    agw_buf_free(&resp);
    agw_buf_free(&url);
    free(base);
    return e;
}

/* ---- OIDC device flow ---- */

void agw_kiro_device_free(agw_kiro_device *d)
{
    free(d->client_id);
    agw_secret_free(d->client_secret);
    agw_secret_free(d->device_code);
    free(d->user_code);
    free(d->verification_uri);
    free(d->verification_uri_complete);
    memset(d, 0, sizeof *d);
}

/* POSTs `body` to {oidc_url}/`path`; the answer in resp. AGW_EINVAL for a
 * non-2xx answer (why: step, status, error code). */
static agw_err oidc_call(const agw_provider_cfg *p, const char *region, const char *path,
                         agw_buf *body, agw_buf *resp, long *status, int timeout_ms, char *why,
                         size_t whylen)
{
    char *base = agw_kiro_url(p, AGW_SET_KIRO_OIDC_URL, region);
    agw_buf url = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    agw_err e = agw_buf_appendf(&url, "%s/%s", base, path);
    free(base);
    if (!e)
        e = post_json(p, url.data, agw_buf_view(body), NULL, NULL, resp, status, timeout_ms,
                      why, whylen);
    agw_buf_free(&url);
    agw_wipe(body->data, body->cap);
    agw_buf_free(body);
    if (e) {
        char detail[256];
        snprintf(detail, sizeof detail, "%s", why);
        snprintf(why, whylen, "OIDC %s could not be asked: %s", path, detail);
        return AGW_EIO;
    }
    if (*status < 200 || *status >= 300) {
        char code[72];
        error_code(agw_buf_view(resp), code, sizeof code);
        snprintf(why, whylen, "OIDC %s: HTTP %ld%s%s", path, *status, code[0] ? " " : "", code);
        return AGW_EINVAL;
    }
    return AGW_OK;
}

agw_err agw_kiro_device_begin(const agw_provider_cfg *p, const char *region,
                              const char *start_url, agw_kiro_device *out, int timeout_ms,
                              char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    agw_buf body = AGW_BUF_INIT(AGW_LIMIT_SMALL), resp = AGW_BUF_INIT(0);
    agw_wire_writer w = AGW_WIRE_WRITER(&body);
    AGW_WIRE_W_LIT(&w, "{\"clientName\":\"Kiro IDE\",\"clientType\":\"public\",\"scopes\":["
                       "\"codewhisperer:completions\",\"codewhisperer:analysis\","
                       "\"codewhisperer:conversations\"],\"grantTypes\":[\"" DEVICE_GRANT
                       "\",\"refresh_token\"],\"issuerUrl\":");
    agw_wire_w_str(&w, agw_str_c(start_url));
    AGW_WIRE_W_LIT(&w, "}");
    long status;
    agw_err e = w.e;
    if (!e)
        e = oidc_call(p, region, "client/register", &body, &resp, &status, timeout_ms, why,
                      whylen);
    if (!e) {
        out->client_id = agw_cred_json_string(agw_buf_view(&resp), "clientId");
        out->client_secret = agw_cred_json_string(agw_buf_view(&resp), "clientSecret");
        if (!out->client_id || !out->client_secret) {
            snprintf(why, whylen, "OIDC client/register answered without clientId/clientSecret");
            e = AGW_EINVAL;
        }
    }
    agw_wipe(resp.data, resp.cap);
    agw_buf_free(&resp);
    if (!e) {
        agw_buf_init(&body, AGW_LIMIT_SMALL);
        agw_wire_writer w2 = AGW_WIRE_WRITER(&body);
        AGW_WIRE_W_LIT(&w2, "{\"clientId\":");
        agw_wire_w_str(&w2, agw_str_c(out->client_id));
        AGW_WIRE_W_LIT(&w2, ",\"clientSecret\":");
        agw_wire_w_str(&w2, agw_str_c(out->client_secret));
        AGW_WIRE_W_LIT(&w2, ",\"startUrl\":");
        agw_wire_w_str(&w2, agw_str_c(start_url));
        AGW_WIRE_W_LIT(&w2, "}");
        e = w2.e;
        if (!e)
            e = oidc_call(p, region, "device_authorization", &body, &resp, &status, timeout_ms,
                          why, whylen);
        agw_buf_free(&body);
    }
    if (!e) {
        agw_str r = agw_buf_view(&resp);
        out->device_code = agw_cred_json_string(r, "deviceCode");
        out->user_code = agw_cred_json_string(r, "userCode");
        out->verification_uri = agw_cred_json_string(r, "verificationUri");
        out->verification_uri_complete = agw_cred_json_string(r, "verificationUriComplete");
        int64_t v = 0;
        out->interval = agw_cred_json_int(r, "interval", &v) && v > 0 && v <= 60 ? (int)v : 5;
        out->expires_in =
            agw_cred_json_int(r, "expiresIn", &v) && v > 0 && v <= 3600 ? v : AGW_CRED_LOGIN_TTL;
        if (!out->device_code || !out->user_code || !out->verification_uri) {
            snprintf(why, whylen, "OIDC device_authorization answered without deviceCode, "
                     "userCode or verificationUri");
            e = AGW_EINVAL;
        } else if (!out->verification_uri_complete) {
            agw_buf u = AGW_BUF_INIT(AGW_LIMIT_SMALL);
            if (agw_buf_appendf(&u, "%s?user_code=", out->verification_uri) == AGW_OK &&
                put_query_value(&u, out->user_code) == AGW_OK)
                out->verification_uri_complete = agw_buf_detach(&u, NULL);
            else
                out->verification_uri_complete = xstrdup(out->verification_uri);
            agw_buf_free(&u);
        }
    }
    agw_wipe(resp.data, resp.cap);
    agw_buf_free(&resp);
    if (e)
        agw_kiro_device_free(out);
    return e;
}

agw_kiro_poll agw_kiro_device_poll(const agw_provider_cfg *p, const char *region,
                                   const char *client_id, const char *client_secret,
                                   const char *device_code, agw_cred *out, int timeout_ms,
                                   char *why, size_t whylen)
{
    agw_buf body = AGW_BUF_INIT(AGW_LIMIT_SMALL), resp = AGW_BUF_INIT(0);
    agw_wire_writer w = AGW_WIRE_WRITER(&body);
    AGW_WIRE_W_LIT(&w, "{\"clientId\":");
    agw_wire_w_str(&w, agw_str_c(client_id));
    AGW_WIRE_W_LIT(&w, ",\"clientSecret\":");
    agw_wire_w_str(&w, agw_str_c(client_secret));
    AGW_WIRE_W_LIT(&w, ",\"deviceCode\":");
    agw_wire_w_str(&w, agw_str_c(device_code));
    AGW_WIRE_W_LIT(&w, ",\"grantType\":\"" DEVICE_GRANT "\"}");
    long status = 0;
    agw_kiro_poll r;
    if (w.e) {
        agw_buf_free(&body);
        snprintf(why, whylen, "the request does not fit");
        return AGW_KIRO_POLL_FAILED;
    }
    agw_err e = oidc_call(p, region, "token", &body, &resp, &status, timeout_ms, why, whylen);
    if (e == AGW_EIO) {
        r = AGW_KIRO_POLL_FAILED;
    } else if (!e) {
        r = read_tokens(agw_buf_view(&resp), out) ? AGW_KIRO_POLL_DONE : AGW_KIRO_POLL_FAILED;
        if (r != AGW_KIRO_POLL_DONE)
            snprintf(why, whylen, "OIDC token answered without an accessToken");
    } else {
        char code[72];
        error_code(agw_buf_view(&resp), code, sizeof code);
        if (strcasecmp(code, "authorization_pending") == 0 ||
            strcasecmp(code, "AuthorizationPendingException") == 0)
            r = AGW_KIRO_POLL_PENDING;
        else if (strcasecmp(code, "slow_down") == 0 || strcasecmp(code, "SlowDownException") == 0)
            r = AGW_KIRO_POLL_SLOW_DOWN;
        else if (strcasecmp(code, "expired_token") == 0 ||
                 strcasecmp(code, "ExpiredTokenException") == 0)
            r = AGW_KIRO_POLL_EXPIRED;
        else if (status >= 500 || status == 429)
            r = AGW_KIRO_POLL_FAILED;
        else
            r = AGW_KIRO_POLL_DENIED;
    }
    agw_wipe(resp.data, resp.cap);
    agw_buf_free(&resp);
    return r;
}

/* ---- the API's account calls ---- */

agw_err agw_kiro_list_profiles(const agw_provider_cfg *p, const char *access_token, char **arn,
                               int timeout_ms, char *why, size_t whylen)
{
    *arn = NULL;
    char *base = agw_kiro_api_base(p, NULL);
    agw_buf url = AGW_BUF_INIT(AGW_LIMIT_SMALL), resp = AGW_BUF_INIT(0);
    long status = 0;
    agw_err e = agw_buf_appendf(&url, "%s/ListAvailableProfiles", base);
    free(base);
    if (!e)
        e = post_json(p, url.data, AGW_STR_LIT("{}"), access_token,
                      "AmazonCodeWhispererService.ListAvailableProfiles", &resp, &status,
                      timeout_ms, why, whylen);
    agw_buf_free(&url);
    if (e) {
        agw_buf_free(&resp);
        return AGW_EIO;
    }
    agw_str profiles;
    agw_str doc = agw_buf_view(&resp);
    if (status < 200 || status >= 300) {
        snprintf(why, whylen, "ListAvailableProfiles: HTTP %ld", status);
        e = AGW_EINVAL;
    } else if (agw_json_validate(doc, 16, NULL, 0) != AGW_OK ||
               agw_json_find(doc, AGW_STR_LIT("profiles"), &profiles) != AGW_OK ||
               agw_json_type_of(profiles) != AGW_JSON_ARRAY) {
        snprintf(why, whylen, "ListAvailableProfiles answered without a profiles list");
        e = AGW_EINVAL;
    } else {
        agw_json_iter it;
        agw_str key, item;
        e = AGW_ENOTFOUND;
        if (agw_json_iter_init(&it, profiles) == AGW_OK)
            while (!*arn && agw_json_iter_next(&it, &key, &item))
                if ((*arn = agw_cred_json_string(item, "arn")) != NULL && !**arn) {
                    free(*arn);
                    *arn = NULL;
                }
        if (*arn)
            e = AGW_OK;
        else
            snprintf(why, whylen, "ListAvailableProfiles names no profile for this account");
    }
    agw_buf_free(&resp);
    return e;
}

agw_err agw_kiro_usage_limits(const agw_provider_cfg *p, const agw_cred_token *t, agw_buf *body,
                              long *status, int timeout_ms, char *why, size_t whylen)
{
    char *base = agw_kiro_account_api_base(p, t);
    agw_buf url = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    agw_err e = agw_buf_appendf(&url, "%s/getUsageLimits?origin=AI_EDITOR&resourceType="
                                "AGENTIC_REQUEST", base);
    free(base);
    if (!e && t->profile_arn && *t->profile_arn) {
        e = agw_buf_appendf(&url, "&profileArn=");
        if (!e)
            e = put_query_value(&url, t->profile_arn);
    }
    char ua[512], auth[8192];
    snprintf(ua, sizeof ua, "User-Agent: KiroIDE-%s", agw_provider_setting(p, AGW_SET_KIRO_VERSION));
    int w = snprintf(auth, sizeof auth, "Authorization: Bearer %s", t->access_token);
    const char *headers[] = { "Accept: application/json", ua, auth, NULL };
    if (!e && (w < 0 || (size_t)w >= sizeof auth))
        e = AGW_ETOOBIG;
    if (!e)
        e = agw_cred_http(url.data, headers, (agw_str){ NULL, 0 }, timeout_ms, status, body, why,
                          whylen);
    else
        snprintf(why, whylen, "the request does not fit");
    agw_wipe(auth, sizeof auth);
    agw_buf_free(&url);
    if (e)
        return AGW_EIO;
    if (*status < 200 || *status >= 300) {
        snprintf(why, whylen, "getUsageLimits: HTTP %ld", *status);
        return AGW_EINVAL;
    }
    if (agw_json_validate(agw_buf_view(body), 32, NULL, 0) != AGW_OK) {
        snprintf(why, whylen, "getUsageLimits answered with something that is not JSON");
        return AGW_EINVAL;
    }
    return AGW_OK;
}

/* ---- import ---- */

/* The first of `names` present as a non-empty string member. */
static char *member(agw_str doc, const char *a, const char *b)
{
    char *v = agw_cred_json_string(doc, a);
    if ((!v || !*v) && b) {
        agw_secret_free(v);
        v = agw_cred_json_string(doc, b);
    }
    if (v && !*v) {
        free(v);
        v = NULL;
    }
    return v;
}

/* An expiry written as RFC 3339 or Unix seconds (or milliseconds). */
static int64_t expiry_of(agw_str doc, const char *a, const char *b)
{
    int64_t n;
    if (agw_cred_json_int(doc, a, &n) || (b && agw_cred_json_int(doc, b, &n)))
        return n > 100000000000LL ? n / 1000 : n;
    char *s = member(doc, a, b);
    int64_t t = s ? agw_time_parse(s) : -1;
    free(s);
    return t > 0 ? t : 0;
}

static int json_object(agw_str s)
{
    return agw_json_validate(s, 16, NULL, 0) == AGW_OK &&
           agw_json_type_of(agw_wire_trim(s)) == AGW_JSON_OBJECT;
}

/* Reads the token fields both file formats share (camelCase or snake_case). */
static agw_err read_token_doc(agw_str doc, agw_cred *out, char *why, size_t whylen)
{
    out->access_token = member(doc, "accessToken", "access_token");
    out->refresh_token = member(doc, "refreshToken", "refresh_token");
    out->region = member(doc, "region", NULL);
    out->profile_arn = member(doc, "profileArn", "profile_arn");
    out->expires_at = expiry_of(doc, "expiresAt", "expires_at");
    if (!out->refresh_token) {
        snprintf(why, whylen, "the token file has no refreshToken");
        return AGW_EINVAL;
    }
    if (!out->access_token)
        out->access_token = xstrdup(""); /* renewed on first use */
    if (!out->expires_at && !*out->access_token)
        out->expires_at = 1;
    if (!out->region && out->profile_arn)
        out->region = agw_kiro_arn_region(out->profile_arn);
    return AGW_OK;
}

static agw_err read_client_doc(agw_str doc, agw_cred *out, char *why, size_t whylen)
{
    if (!json_object(doc)) {
        snprintf(why, whylen, "client_registration is not a JSON object");
        return AGW_EINVAL;
    }
    out->client_id = member(doc, "clientId", "client_id");
    out->client_secret = member(doc, "clientSecret", "client_secret");
    if (!out->client_id || !out->client_secret) {
        snprintf(why, whylen, "client_registration has no clientId and clientSecret");
        return AGW_EINVAL;
    }
    return AGW_OK;
}

agw_err agw_kiro_import_token_file(agw_str token_json, agw_str client_json, agw_cred *out,
                                   char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    if (!json_object(token_json)) {
        snprintf(why, whylen, "kiro_auth_token is not a JSON object");
        return AGW_EINVAL;
    }
    agw_err e = read_token_doc(token_json, out, why, whylen);
    char *method = e ? NULL : member(token_json, "authMethod", "auth_method");
    char *idp = e ? NULL : member(token_json, "provider", NULL);
    if (!e) {
        if (!method || strcasecmp(method, "social") == 0) {
            out->method = xstrdup("social");
        } else if (strcasecmp(method, "IdC") == 0) {
            out->method = xstrdup(idp && strcasecmp(idp, "BuilderId") == 0 ? "builder-id" : "idc");
            if (!client_json.ptr) {
                snprintf(why, whylen, "an IdC token needs its client_registration (the file "
                         "named by clientIdHash in ~/.aws/sso/cache)");
                e = AGW_EINVAL;
            } else {
                e = read_client_doc(client_json, out, why, whylen);
            }
        } else {
            snprintf(why, whylen, "kiro_auth_token: authMethod must be social or IdC");
            e = AGW_EINVAL;
        }
    }
    free(method);
    free(idp);
    if (e)
        agw_cred_free(out);
    return e;
}

/* The value of `key` in kiro-cli's table `table` (a malloc'd string). */
static char *cli_value(sqlite3 *db, const char *table, const char *key)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT value FROM %s WHERE key = ?1", table);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    char *v = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        const void *b = sqlite3_column_type(st, 0) == SQLITE_BLOB ? sqlite3_column_blob(st, 0)
                                                                   : sqlite3_column_text(st, 0);
        int n = sqlite3_column_bytes(st, 0);
        if (b && n > 0 && n < (1 << 20) && !memchr(b, '\0', (size_t)n))
            v = copy_n(b, (size_t)n);
    }
    sqlite3_finalize(st);
    return v;
}

agw_err agw_kiro_import_cli_db(agw_str db_bytes, agw_cred *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    static const char magic[] = "SQLite format 3";
    if (db_bytes.len < 512 || memcmp(db_bytes.ptr, magic, sizeof magic) != 0) {
        snprintf(why, whylen, "kiro_cli_db is not an SQLite file");
        return AGW_EINVAL;
    }
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        sqlite3_close(db);
        snprintf(why, whylen, "no memory for kiro_cli_db");
        return AGW_EIO;
    }
    /* A hostile file must not reach outside itself or change the schema. */
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
    unsigned char *copy = sqlite3_malloc64(db_bytes.len);
    if (!copy) {
        sqlite3_close(db);
        snprintf(why, whylen, "no memory for kiro_cli_db");
        return AGW_EIO;
    }
    memcpy(copy, db_bytes.ptr, db_bytes.len);
    if (sqlite3_deserialize(db, "main", copy, (sqlite3_int64)db_bytes.len,
                            (sqlite3_int64)db_bytes.len,
                            SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_READONLY) !=
        SQLITE_OK) {
        sqlite3_close(db);
        snprintf(why, whylen, "kiro_cli_db cannot be opened as an SQLite database");
        return AGW_EINVAL;
    }
    static const struct {
        const char *key, *method, *registration;
    } tokens[] = {
        { "kirocli:social:token", "social", NULL },
        { "kirocli:odic:token", "idc", "kirocli:odic:device-registration" },
        { "codewhisperer:odic:token", "idc", "codewhisperer:odic:device-registration" },
    };
    agw_err e = AGW_EINVAL;
    snprintf(why, whylen, "kiro_cli_db holds no Kiro token (table auth_kv)");
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
        char *tok = cli_value(db, "auth_kv", tokens[i].key);
        if (!tok)
            continue;
        agw_str doc = agw_str_c(tok);
        if (!json_object(doc)) {
            snprintf(why, whylen, "kiro_cli_db: %s is not a JSON object", tokens[i].key);
        } else if (!(e = read_token_doc(doc, out, why, whylen))) {
            char *start = member(doc, "startUrl", "start_url");
            int builder = !start || strcmp(start, "https://view.awsapps.com/start") == 0;
            free(start);
            out->method = xstrdup(tokens[i].registration && builder ? "builder-id"
                                                                    : tokens[i].method);
            if (tokens[i].registration) {
                char *reg = cli_value(db, "auth_kv", tokens[i].registration);
                if (!reg) {
                    snprintf(why, whylen, "kiro_cli_db: %s is missing", tokens[i].registration);
                    e = AGW_EINVAL;
                } else {
                    e = read_client_doc(agw_str_c(reg), out, why, whylen);
                    if (!out->region)
                        out->region = member(agw_str_c(reg), "region", NULL);
                }
                agw_secret_free(reg);
            }
        }
        agw_secret_free(tok);
        break; /* the first token the file holds decides */
    }
    if (!e && !out->profile_arn) {
        char *prof = cli_value(db, "state", "api.codewhisperer.profile");
        if (prof && json_object(agw_str_c(prof))) {
            out->profile_arn = member(agw_str_c(prof), "arn", NULL);
            if (!out->region && out->profile_arn)
                out->region = agw_kiro_arn_region(out->profile_arn);
        }
        free(prof);
    }
    if (!e && !out->method)
        e = AGW_EINVAL;
    if (e) {
        agw_cred_free(out);
        char *ext = strstr(why, "holds no") ? cli_value(db, "auth_kv", "kirocli:external-idp:token")
                                            : NULL;
        if (ext)
            snprintf(why, whylen, "kiro_cli_db holds only an external IdP token, which this "
                     "gateway cannot refresh");
        agw_secret_free(ext);
    }
    sqlite3_close(db);
    return e;
}

#include "provider/copilot_auth.h"

#include "core/json.h"

#include <cJSON.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* GitHub's answers are small; a hostile or broken server cannot grow this. */
#define COPILOT_ANSWER_MAX AGW_CRED_HTTP_MAX_BODY
/* Renew this long before GitHub's refresh_in is up (PROVIDERS.md §2.1). */
#define COPILOT_REFRESH_MARGIN_S 60
/* A process that found no record asks the database again after this long. */
#define COPILOT_RECHECK_MS 2000
/* A renewal that failed while the token still had this long to live lets
 * the token serve, and this process tries again after COPILOT_RETRY_MS. */
#define COPILOT_EXPIRY_SLACK_S 30
#define COPILOT_RETRY_MS 10000

/* ---- calls to GitHub and the Copilot API ---- */

/* One call through agw_cred_http, `what` naming the far end in `err`. */
static agw_err fetch(const char *url, const char *const *headers, agw_str body, int timeout_ms,
                     agw_buf *out, long *status, char *err, size_t errlen)
{
    char why[256] = "";
    *status = 0;
    agw_err e = agw_cred_http(url, headers, body, timeout_ms, status, out, why, sizeof why);
    if (e)
        snprintf(err, errlen, "no answer from GitHub (%s)", why);
    return e;
}

/* The call's headers as the NULL-terminated list fetch() takes. */
static const char *const *header_list(const agw_provider_call *c)
{
    return (const char *const *)c->headers;
}

/* The editor's headers, from p's settings: GitHub's API gets the first
 * EDITOR_HEADERS_GITHUB of them, the Copilot API all. */
static const struct {
    const char *name;
    agw_provider_setting_id id;
} editor_headers[] = {
    { "editor-version: ", AGW_SET_COPILOT_EDITOR_VERSION },
    { "editor-plugin-version: ", AGW_SET_COPILOT_PLUGIN_VERSION },
    { "user-agent: ", AGW_SET_COPILOT_USER_AGENT },
    { "x-github-api-version: ", AGW_SET_COPILOT_API_VERSION },
    { "copilot-integration-id: ", AGW_SET_COPILOT_INTEGRATION_ID },
    { "openai-intent: ", AGW_SET_COPILOT_INTENT },
};
#define EDITOR_HEADERS_GITHUB 4

static agw_err add_editor_headers(const agw_provider_cfg *p, size_t n, agw_provider_call *c)
{
    agw_err e = AGW_OK;
    for (size_t i = 0; !e && i < n; i++)
        e = agw_provider_call_header(c, editor_headers[i].name,
                                     agw_provider_setting(p, editor_headers[i].id));
    return e;
}

/* The common headers of GitHub's API. */
static agw_err github_headers(const agw_provider_cfg *p, const char *github_token,
                              agw_provider_call *c)
{
    agw_err e = agw_provider_call_header(c, "Accept: ", "application/json");
    if (!e && github_token)
        e = agw_provider_call_header(c, "Authorization: token ", github_token);
    return e ? e : add_editor_headers(p, EDITOR_HEADERS_GITHUB, c);
}

agw_err agw_copilot_client_headers(const agw_provider_cfg *p, agw_provider_call *c)
{
    char rid[37], hex[33];
    agw_err e = agw_random_hex(hex, 16);
    if (e)
        return e;
    /* A UUID version 4 made of the random hex digits. */
    snprintf(rid, sizeof rid, "%.8s-%.4s-4%.3s-a%.3s-%.12s", hex, hex + 8, hex + 12, hex + 15,
             hex + 18);
    e = add_editor_headers(p, sizeof editor_headers / sizeof *editor_headers, c);
    return e ? e : agw_provider_call_header(c, "x-request-id: ", rid);
}

agw_err agw_copilot_github_get(const agw_provider_cfg *p, const char *github_token,
                               const char *path, int timeout_ms, agw_buf *body, char *err,
                               size_t errlen)
{
    agw_provider_call c;
    memset(&c, 0, sizeof c);
    agw_err e = github_headers(p, github_token, &c);
    if (e) {
        agw_provider_call_free(&c);
        snprintf(err, errlen, "too many headers");
        return AGW_EIO;
    }
    char *url = xstrcat(agw_provider_setting(p, AGW_SET_GITHUB_API_URL), path);
    long status = 0;
    e = fetch(url, header_list(&c), (agw_str){ NULL, 0 }, timeout_ms, body, &status, err, errlen);
    free(url);
    agw_provider_call_free(&c);
    if (e)
        return e;
    if (status == 401 || status == 403) {
        snprintf(err, errlen, "GitHub refused the GitHub token (HTTP %ld): log in again", status);
        return AGW_EPEER;
    }
    if (status < 200 || status > 299) {
        snprintf(err, errlen, "GitHub answered HTTP %ld to %s", status, path);
        return AGW_EIO;
    }
    return AGW_OK;
}

agw_err agw_copilot_github_form(const agw_provider_cfg *p, const char *path, const char *form,
                                int timeout_ms, agw_buf *body, long *status, char *err,
                                size_t errlen)
{
    agw_provider_call c;
    memset(&c, 0, sizeof c);
    agw_err e = github_headers(p, NULL, &c);
    if (!e)
        e = agw_provider_call_header(&c, "Content-Type: ", "application/x-www-form-urlencoded");
    if (e) {
        agw_provider_call_free(&c);
        snprintf(err, errlen, "too many headers");
        return AGW_EIO;
    }
    char *url = xstrcat(agw_provider_setting(p, AGW_SET_GITHUB_URL), path);
    e = fetch(url, header_list(&c), agw_str_c(form), timeout_ms, body, status, err, errlen);
    free(url);
    agw_provider_call_free(&c);
    return e;
}

/* ---- the exchange ---- */

/* A JSON string member that is non-empty and free of control bytes. */
static const char *json_text(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsString(v) || !v->valuestring || !*v->valuestring ||
        agw_str_has_ctl(agw_str_c(v->valuestring), 1))
        return NULL;
    return v->valuestring;
}

/* The account's models, [{"id", "endpoints"}], from a /models answer. */
static cJSON *parse_model_list(agw_str body)
{
    cJSON *doc = cJSON_ParseWithLength(body.ptr, body.len);
    cJSON *data = doc ? cJSON_GetObjectItemCaseSensitive(doc, "data") : NULL;
    if (!cJSON_IsArray(data)) {
        cJSON_Delete(doc);
        return NULL;
    }
    cJSON *out = cJSON_CreateArray();
    const cJSON *m;
    int n = 0;
    cJSON_ArrayForEach(m, data)
    {
        const char *id = json_text(m, "id");
        if (!id || strlen(id) > AGW_CONFIG_MODEL_MAX || n >= (int)AGW_PROVIDER_MODELS_MAX)
            continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "id", id);
        const cJSON *eps = cJSON_GetObjectItemCaseSensitive(m, "supported_endpoints");
        if (cJSON_IsArray(eps)) {
            cJSON *list = cJSON_AddArrayToObject(e, "endpoints");
            const cJSON *ep;
            cJSON_ArrayForEach(ep, eps)
            {
                if (cJSON_IsString(ep) && ep->valuestring && strlen(ep->valuestring) < 64)
                    cJSON_AddItemToArray(list, cJSON_CreateString(ep->valuestring));
            }
        }
        cJSON_AddItemToArray(out, e);
        n++;
    }
    cJSON_Delete(doc);
    return out;
}

/* The model list at `api` with `token`; NULL when it cannot be read. */
static cJSON *read_models(const agw_provider_cfg *p, const char *api, const char *token,
                          int timeout_ms)
{
    agw_provider_call c;
    memset(&c, 0, sizeof c);
    agw_err e = agw_provider_call_header(&c, "Authorization: Bearer ", token);
    if (!e)
        e = agw_copilot_client_headers(p, &c);
    cJSON *models = NULL;
    if (!e) {
        char *url = xstrcat(api, "/models");
        agw_buf body = AGW_BUF_INIT(COPILOT_ANSWER_MAX);
        long status = 0;
        char why[256];
        if (fetch(url, header_list(&c), (agw_str){ NULL, 0 }, timeout_ms, &body, &status, why,
                  sizeof why) == AGW_OK &&
            status >= 200 && status <= 299)
            models = parse_model_list(agw_buf_view(&body));
        agw_buf_free(&body);
        free(url);
    }
    agw_provider_call_free(&c);
    return models;
}

static void replace_secret(char **slot, const char *v)
{
    if (*slot) {
        OPENSSL_cleanse(*slot, strlen(*slot));
        free(*slot);
    }
    *slot = v ? xstrdup(v) : NULL;
}

agw_err agw_copilot_exchange(const agw_provider_cfg *p, const char *github_token, agw_cred *c,
                             int timeout_ms, char *err, size_t errlen)
{
    agw_buf body = AGW_BUF_INIT(COPILOT_ANSWER_MAX);
    agw_err e = agw_copilot_github_get(p, github_token, "/copilot_internal/v2/token", timeout_ms,
                                       &body, err, errlen);
    cJSON *doc = NULL, *extra = NULL;
    if (e)
        goto out;
    doc = cJSON_ParseWithLength(body.data ? body.data : "", body.len);
    const char *token = doc ? json_text(doc, "token") : NULL;
    const cJSON *exp = doc ? cJSON_GetObjectItemCaseSensitive(doc, "expires_at") : NULL;
    const cJSON *rin = doc ? cJSON_GetObjectItemCaseSensitive(doc, "refresh_in") : NULL;
    const cJSON *eps = doc ? cJSON_GetObjectItemCaseSensitive(doc, "endpoints") : NULL;
    const char *api = eps ? json_text(eps, "api") : NULL;
    if (!token || !cJSON_IsNumber(exp)) {
        snprintf(err, errlen, "GitHub's Copilot token answer has no token or expires_at");
        e = AGW_EIO;
        goto out;
    }
    int64_t now = agw_wall_s();
    int64_t expires = (int64_t)exp->valuedouble;
    /* refresh_in counts from now; without it, renew 5 minutes before expiry. */
    int64_t refresh_at = cJSON_IsNumber(rin) ? now + (int64_t)rin->valuedouble -
                                                   COPILOT_REFRESH_MARGIN_S
                                             : expires - 300;
    if (refresh_at > expires - COPILOT_REFRESH_MARGIN_S)
        refresh_at = expires - COPILOT_REFRESH_MARGIN_S;
    /* A token due at once would be exchanged on every call: it serves 5 s
     * (or half its life, when shorter) first. */
    int64_t least = (expires - now) / 2 < 5 ? (expires - now) / 2 : 5;
    if (refresh_at < now + least)
        refresh_at = now + least;
    char *api_base = NULL;
    if (api && (strncmp(api, "https://", 8) == 0 || strncmp(api, "http://", 7) == 0)) {
        api_base = xstrdup(api);
        size_t n = strlen(api_base);
        while (n > 0 && api_base[n - 1] == '/')
            api_base[--n] = '\0';
    }
    const char *models_at = p->base_url_from_token && api_base ? api_base : p->base_url;
    cJSON *models = read_models(p, models_at, token, timeout_ms);
    extra = c->extra ? cJSON_Parse(c->extra) : NULL;
    if (!cJSON_IsObject(extra)) {
        cJSON_Delete(extra);
        extra = cJSON_CreateObject();
    }
    cJSON_DeleteItemFromObjectCaseSensitive(extra, "api");
    if (api_base)
        cJSON_AddStringToObject(extra, "api", api_base);
    free(api_base);
    cJSON_DeleteItemFromObjectCaseSensitive(extra, "expires_at");
    cJSON_AddNumberToObject(extra, "expires_at", (double)expires);
    cJSON_DeleteItemFromObjectCaseSensitive(extra, "refresh_at");
    cJSON_AddNumberToObject(extra, "refresh_at", (double)refresh_at);
    const char *sku = json_text(doc, "sku");
    cJSON_DeleteItemFromObjectCaseSensitive(extra, "sku");
    if (sku)
        cJSON_AddStringToObject(extra, "sku", sku);
    /* A list that cannot be read now keeps the one read before. */
    if (models) {
        cJSON_DeleteItemFromObjectCaseSensitive(extra, "models");
        cJSON_AddItemToObject(extra, "models", models);
    }
    char *text = cJSON_PrintUnformatted(extra);
    free(c->extra);
    c->extra = xstrdup(text);
    cJSON_free(text);
    replace_secret(&c->access_token, token);
    if (!c->refresh_token || strcmp(c->refresh_token, github_token) != 0)
        replace_secret(&c->refresh_token, github_token);
    /* Renewal follows refresh_at (agw_copilot_access), not the record's expiry. */
    c->expires_at = 0;
out:
    if (doc) {
        /* The answer held the token: wipe the parsed copy and the raw bytes. */
        const char *t = json_text(doc, "token");
        if (t)
            OPENSSL_cleanse((void *)t, strlen(t));
    }
    cJSON_Delete(doc);
    cJSON_Delete(extra);
    if (body.data)
        OPENSSL_cleanse(body.data, body.len);
    agw_buf_free(&body);
    return e;
}

static agw_cred_outcome copilot_refresh(const agw_provider_cfg *p, const agw_cred *cur,
                                        agw_cred *out, int timeout_ms, char *why, size_t whylen)
{
    if (!cur->refresh_token || !*cur->refresh_token) {
        snprintf(why, whylen, "no GitHub token: log in again");
        return AGW_CRED_DEAD;
    }
    agw_err e = agw_copilot_exchange(p, cur->refresh_token, out, timeout_ms, why, whylen);
    if (e == AGW_EPEER)
        return AGW_CRED_DEAD;
    return e ? AGW_CRED_FAILED : AGW_CRED_REFRESHED;
}

const agw_cred_method agw_copilot_method = {
    .name = "copilot",
    .type = AGW_PROVIDER_COPILOT,
    .refresh = copilot_refresh,
};

/* ---- what this process knows of each account ---- */

typedef struct {
    char *id;
    int endpoints;
} copilot_model;

typedef struct copilot_account {
    char name[AGW_CONFIG_NAME_MAX + 1];
    uint64_t version;      /* of the record the list came from; 0 = none read */
    uint64_t checked_ms;   /* when the database was last asked */
    uint64_t retry_ms;     /* no renewal before this (after a failed one) */
    int known;             /* the record had a model list */
    copilot_model *models;
    size_t n;
    struct copilot_account *next;
} copilot_account;

static pthread_mutex_t accounts_mu = PTHREAD_MUTEX_INITIALIZER;
static copilot_account *accounts;

static int endpoint_bit(const char *path)
{
    if (strcmp(path, "/chat/completions") == 0)
        return AGW_COPILOT_EP_CHAT;
    if (strcmp(path, "/v1/messages") == 0)
        return AGW_COPILOT_EP_MESSAGES;
    if (strcmp(path, "/responses") == 0)
        return AGW_COPILOT_EP_RESPONSES;
    if (strcmp(path, "/embeddings") == 0)
        return AGW_COPILOT_EP_EMBEDDINGS;
    return 0;
}

/* The account entry of `name` (created empty); accounts_mu held. */
static copilot_account *account_of(const char *name)
{
    for (copilot_account *a = accounts; a; a = a->next)
        if (strcmp(a->name, name) == 0)
            return a;
    copilot_account *a = xcalloc(1, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->next = accounts;
    accounts = a;
    return a;
}

static void account_clear(copilot_account *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->models[i].id);
    free(a->models);
    a->models = NULL;
    a->n = 0;
    a->known = 0;
}

/* Takes the model list of a record's `extra` (version `version`). */
static void account_learn(const char *name, uint64_t version, const char *extra)
{
    pthread_mutex_lock(&accounts_mu);
    copilot_account *a = account_of(name);
    a->checked_ms = agw_mono_ms();
    if (a->version == version && version) {
        pthread_mutex_unlock(&accounts_mu);
        return;
    }
    account_clear(a);
    a->version = version;
    cJSON *doc = extra ? cJSON_Parse(extra) : NULL;
    const cJSON *models = doc ? cJSON_GetObjectItemCaseSensitive(doc, "models") : NULL;
    if (cJSON_IsArray(models)) {
        a->known = 1;
        int cnt = cJSON_GetArraySize(models);
        a->models = xcalloc((size_t)cnt + 1, sizeof *a->models);
        const cJSON *m;
        cJSON_ArrayForEach(m, models)
        {
            const char *id = json_text(m, "id");
            if (!id)
                continue;
            int bits = 0;
            const cJSON *eps = cJSON_GetObjectItemCaseSensitive(m, "endpoints");
            const cJSON *ep;
            if (cJSON_IsArray(eps)) {
                cJSON_ArrayForEach(ep, eps)
                {
                    if (cJSON_IsString(ep))
                        bits |= endpoint_bit(ep->valuestring);
                }
            }
            a->models[a->n].id = xstrdup(id);
            a->models[a->n].endpoints = bits ? bits : AGW_COPILOT_EP_CHAT;
            a->n++;
        }
    }
    cJSON_Delete(doc);
    pthread_mutex_unlock(&accounts_mu);
}

/* 1 while this process waits after a failed renewal of `name`. */
static int renewal_paused(const char *name)
{
    pthread_mutex_lock(&accounts_mu);
    int paused = account_of(name)->retry_ms > agw_mono_ms();
    pthread_mutex_unlock(&accounts_mu);
    return paused;
}

static void pause_renewal(const char *name)
{
    pthread_mutex_lock(&accounts_mu);
    account_of(name)->retry_ms = agw_mono_ms() + COPILOT_RETRY_MS;
    pthread_mutex_unlock(&accounts_mu);
}

/* A number member of a JSON object text; `dflt` when absent. */
static int64_t extra_number(const char *extra, const char *name, int64_t dflt)
{
    agw_str v;
    int64_t n;
    if (agw_json_find(agw_str_c(extra), agw_str_c(name), &v) != AGW_OK ||
        agw_json_int64(v, &n) != AGW_OK)
        return dflt;
    return n;
}

agw_err agw_copilot_access(const agw_provider_cfg *p, agw_cred_token *out, char **api, char *err,
                           size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (api)
        *api = NULL;
    agw_err e = agw_cred_access(p, out, err, errlen);
    int64_t now = agw_wall_s();
    if (!e && now >= extra_number(out->extra, "refresh_at", INT64_MAX) &&
        !renewal_paused(p->name)) {
        /* Due: one renewal of this version across the pool; whoever comes
         * second finds the version moved and takes the new token. */
        uint64_t v = out->version;
        int64_t expires = extra_number(out->extra, "expires_at", 0);
        agw_err r = agw_cred_rejected(p, v, err, errlen);
        if (r != AGW_OK && r != AGW_ENOTFOUND && expires > now + COPILOT_EXPIRY_SLACK_S) {
            /* GitHub is out of reach for now: the token still serves. */
            agw_log_warn("copilot provider %s: renewing its token failed (%s); the current one "
                         "serves until it expires",
                         p->name, err);
            pause_renewal(p->name);
        } else {
            agw_cred_token_free(out);
            memset(out, 0, sizeof *out);
            e = r ? r : agw_cred_access(p, out, err, errlen);
        }
    }
    if (e) {
        agw_cred_token_free(out);
        memset(out, 0, sizeof *out);
        if (e == AGW_ENOTFOUND)
            account_learn(p->name, 0, NULL);
        return e;
    }
    account_learn(p->name, out->version, out->extra);
    if (api) {
        agw_buf scratch = AGW_BUF_INIT(AGW_LIMIT_SMALL);
        agw_str v, s;
        if (agw_json_find(agw_str_c(out->extra), AGW_STR_LIT("api"), &v) == AGW_OK &&
            agw_json_type_of(v) == AGW_JSON_STRING &&
            agw_json_string_view(v, &scratch, &s) == AGW_OK && s.len && !agw_str_has_ctl(s, 1))
            *api = agw_str_dup(s);
        agw_buf_free(&scratch);
    }
    return AGW_OK;
}

/* The entry of p after making sure this process has read its record once
 * (or recently found none). */
static copilot_account *account_known(const agw_provider_cfg *p)
{
    pthread_mutex_lock(&accounts_mu);
    copilot_account *a = account_of(p->name);
    int ask = !a->version && agw_mono_ms() - a->checked_ms >= COPILOT_RECHECK_MS;
    pthread_mutex_unlock(&accounts_mu);
    if (ask) {
        agw_cred_token t;
        char err[256];
        if (agw_copilot_access(p, &t, NULL, err, sizeof err) == AGW_OK)
            agw_cred_token_free(&t);
    }
    pthread_mutex_lock(&accounts_mu);
    return account_of(p->name); /* returned locked */
}

int agw_copilot_model_endpoints(const agw_provider_cfg *p, agw_str model)
{
    copilot_account *a = account_known(p);
    int bits = -1;
    if (a->known) {
        bits = 0;
        for (size_t i = 0; i < a->n; i++)
            if (agw_str_eq(agw_str_c(a->models[i].id), model))
                bits = a->models[i].endpoints;
    }
    pthread_mutex_unlock(&accounts_mu);
    return bits;
}

agw_err agw_copilot_models(const agw_provider_cfg *p, agw_provider_models *out)
{
    copilot_account *a = account_known(p);
    agw_err e = a->known ? AGW_OK : AGW_ENOTFOUND;
    for (size_t i = 0; a->known && i < a->n; i++)
        agw_provider_models_add(out, agw_str_c(a->models[i].id));
    pthread_mutex_unlock(&accounts_mu);
    return e;
}

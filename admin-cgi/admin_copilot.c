/*
 * admin_copilot: GitHub Copilot accounts.
 *
 *   POST /admin/copilot/login {"provider"}   starts GitHub's device flow:
 *        201 {id, provider, status, user_code, verification_uri, interval, expires_at}
 *   GET  /admin/copilot/login/{id}           the session: pending, completed,
 *        denied or error (200), or expired (410: GitHub's code or the session ran
 *        out); while pending and due (its interval, raised by
 *        GitHub's slow_down, since the last poll), this request polls GitHub once,
 *        and on success exchanges the GitHub token and stores the account
 *   GET  /admin/copilot/status               every Copilot provider's status, as below
 *   GET  /admin/copilot/{provider}/status    login, plan, token expiry, last refresh,
 *        last error, model count; never a token
 *   GET  /admin/copilot/{provider}/quota     premium interactions left (GitHub's
 *        copilot_internal/user)
 *   PUT  /admin/providers/{id} {"github_token"}  (admin_providers.c hands it here)
 *        stores an admin's GitHub token for the account, sealed like every
 *        credential; the first call exchanges it
 *
 * Sessions live in SQLite (credential.h), so any admin process answers them,
 * and at most one per provider is pending. The device code and every token stay
 * sealed or in memory: no answer, log line or audit row holds one.
 */
#include "admin.h"

#include "core/json.h"
#include "provider/copilot_auth.h"
#include "provider/credential.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>

/* Each call to GitHub from an admin request. */
#define COPILOT_ADMIN_TIMEOUT_MS 15000
#define GITHUB_DEVICE_GRANT "urn:ietf:params:oauth:grant-type:device_code"
/* Poll times are whole seconds: one more keeps every poll at least GitHub's
 * interval after the one before (an earlier poll earns slow_down). */
#define POLL_MARGIN_S 1

/* A provider named in a request, as the calls to GitHub need it: the one of
 * antigw.cfg, or one built from a database row (default settings). */
typedef struct {
    agw_provider_cfg own; /* a database provider's fields */
    const agw_provider_cfg *p;
} copilot_target;

static void target_free(copilot_target *t)
{
    free(t->own.name);
    free(t->own.base_url);
    memset(t, 0, sizeof *t);
}

/* Finds provider `name` and checks it is a Copilot one: 1 when found; 0 when
 * it is unknown (answered 404) or of another type (answered 400), naming
 * `field`; with `quiet`, 0 without an answer. */
static int find_target(agw_admin_req *r, const char *name, const char *field, int quiet,
                       copilot_target *t)
{
    memset(t, 0, sizeof *t);
    const agw_provider_cfg *p = agw_config_provider(r->cfg, agw_str_c(name));
    const char *type = NULL;
    if (p) {
        t->p = p;
        type = agw_provider_type_name(p->type);
    } else {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(r->db, "SELECT type, base_url FROM providers WHERE name = ?", -1,
                               &st, NULL) != SQLITE_OK) {
            if (!quiet)
                agw_admin_db_fail(r, "reading provider '%s'", name);
            return 0;
        }
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            int ty = agw_provider_type_parse((const char *)sqlite3_column_text(st, 0));
            t->own.name = xstrdup(name);
            t->own.type = ty < 0 ? AGW_PROVIDER_OPENAI : (agw_provider_type)ty;
            t->own.base_url = xstrdup((const char *)sqlite3_column_text(st, 1));
            t->own.enabled = 1;
            t->p = &t->own;
            type = agw_provider_type_name(t->own.type);
        }
        sqlite3_finalize(st);
    }
    if (!t->p) {
        if (!quiet)
            agw_admin_fail(r, 404, field, "no provider named '%.100s'", name);
        return 0;
    }
    if (t->p->type != AGW_PROVIDER_COPILOT) {
        if (quiet) {
            target_free(t);
            return 0;
        }
        agw_admin_fail(r, 400, field,
                       "provider '%.100s' is of type %s: only copilot providers log in to "
                       "GitHub Copilot",
                       name, type);
        target_free(t);
        return 0;
    }
    return 1;
}

/* One audit row in its own transaction (the credential was written by the
 * credential module's own connection). */
static void audit(agw_admin_req *r, const char *action, const char *provider)
{
    if (!agw_admin_begin(r))
        return;
    cJSON *fields = cJSON_CreateArray();
    cJSON_AddItemToArray(fields, cJSON_CreateString("github_token"));
    if (agw_admin_audit(r, action, "provider", provider,
                        agw_admin_audit_detail(provider, fields)))
        agw_admin_commit(r);
}

/* ---- the device flow ---- */

/* Appends "<name>=<value percent-encoded>" (after '&' unless b is empty). */
static agw_err form_field(agw_buf *b, const char *name, const char *value)
{
    agw_err e = agw_buf_appendf(b, "%s%s=", b->len ? "&" : "", name);
    for (const unsigned char *c = (const unsigned char *)value; !e && *c; c++)
        e = isalnum(*c) || strchr("-._~", *c) ? agw_buf_append(b, (const char *)c, 1)
                                              : agw_buf_appendf(b, "%%%02X", *c);
    return e;
}

static void login_start(agw_admin_req *r)
{
    static const char *const known[] = { "provider", NULL };
    cJSON *body = agw_admin_body(r, known);
    const char *name = NULL;
    copilot_target t = { 0 };
    agw_buf form = AGW_BUF_INIT(4096), answer = AGW_BUF_INIT(AGW_CRED_HTTP_MAX_BODY);
    agw_cred_login l;
    memset(&l, 0, sizeof l);
    char err[256] = "";
    if (!body)
        goto out;
    int rc = agw_admin_string(r, body, "provider", AGW_CONFIG_NAME_MAX, 0, &name, NULL);
    if (rc < 0)
        goto out;
    if (rc == 0) {
        agw_admin_required(r, "provider");
        goto out;
    }
    if (!find_target(r, name, "provider", 0, &t))
        goto out;
    if (form_field(&form, "client_id", agw_provider_setting(t.p, AGW_SET_GITHUB_CLIENT_ID)) ||
        form_field(&form, "scope", "read:user")) {
        agw_admin_fail(r, 500, NULL, "the device-code request cannot be built");
        goto out;
    }
    long status = 0;
    if (agw_copilot_github_form(t.p, "/login/device/code", form.data, COPILOT_ADMIN_TIMEOUT_MS,
                                &answer, &status, err, sizeof err) != AGW_OK) {
        agw_admin_fail(r, 502, NULL, "GitHub could not be reached to start the login: %s", err);
        goto out;
    }
    agw_str a = agw_buf_view(&answer);
    char *device = agw_cred_json_string(a, "device_code");
    char *user_code = agw_cred_json_string(a, "user_code");
    char *uri = agw_cred_json_string(a, "verification_uri");
    char *gh_error = agw_cred_json_string(a, "error");
    int64_t interval = 5, expires_in = AGW_CRED_LOGIN_TTL;
    agw_cred_json_int(a, "interval", &interval);
    agw_cred_json_int(a, "expires_in", &expires_in);
    if (status < 200 || status > 299 || !device || !user_code || !uri ||
        agw_str_has_ctl(agw_str_c(user_code), 1) || agw_str_has_ctl(agw_str_c(uri), 1)) {
        agw_admin_fail(r, 502, NULL, "GitHub did not start a device login (HTTP %ld%s%.80s)",
                       status, gh_error ? ": " : "", gh_error ? gh_error : "");
    } else {
        if (interval < 1 || interval > 600)
            interval = 5;
        int64_t now = agw_wall_s();
        cJSON *pub = cJSON_CreateObject(), *sec = cJSON_CreateObject();
        cJSON_AddStringToObject(pub, "user_code", user_code);
        cJSON_AddStringToObject(pub, "verification_uri", uri);
        cJSON_AddNumberToObject(pub, "interval", (double)interval);
        cJSON_AddNumberToObject(pub, "github_expires_at", (double)(now + expires_in));
        cJSON_AddStringToObject(sec, "device_code", device);
        l.provider = xstrdup(name);
        l.kind = xstrdup("copilot");
        l.public_json = cJSON_PrintUnformatted(pub);
        l.secret_json = cJSON_PrintUnformatted(sec);
        l.interval = (int)interval;
        l.next_poll_at = now + interval + POLL_MARGIN_S;
        cJSON_Delete(pub);
        cJSON_Delete(sec);
        agw_err e = agw_cred_login_create(&l, err, sizeof err);
        if (e == AGW_EBUSY) {
            agw_admin_fail(r, 409, "provider",
                           "provider '%s' already has a login pending: finish it or let it "
                           "expire",
                           name);
        } else if (e) {
            agw_admin_fail(r, e == AGW_EINVAL ? 409 : 500, NULL, "the login cannot be kept: %s",
                           err);
        } else {
            cJSON *doc = cJSON_CreateObject();
            cJSON_AddStringToObject(doc, "id", l.id);
            cJSON_AddStringToObject(doc, "provider", name);
            cJSON_AddStringToObject(doc, "status", "pending");
            cJSON_AddStringToObject(doc, "user_code", user_code);
            cJSON_AddStringToObject(doc, "verification_uri", uri);
            cJSON_AddNumberToObject(doc, "interval", (double)interval);
            int64_t exp = now + expires_in < l.expires_at ? now + expires_in : l.expires_at;
            cJSON_AddNumberToObject(doc, "expires_at", (double)exp);
            agw_log_info("copilot login %s started for provider %s", l.id, name);
            agw_admin_reply(r, 201, doc);
        }
    }
    if (device)
        agw_secret_free(device);
    free(user_code);
    free(uri);
    free(gh_error);
out:
    if (l.secret_json)
        agw_secret_free(l.secret_json);
    l.secret_json = NULL;
    agw_cred_login_free(&l);
    target_free(&t);
    agw_buf_free(&form);
    agw_buf_free(&answer);
    cJSON_Delete(body);
}

/* Stores the account of `github_token` for t: exchanged first when
 * `exchange`, else kept for the first call to exchange. `err` on failure;
 * AGW_EPEER when GitHub refused the token. */
static agw_err store_account(const agw_provider_cfg *p, const char *github_token, int exchange,
                             char *github_login, size_t loginlen, char *err, size_t errlen)
{
    agw_cred c;
    memset(&c, 0, sizeof c);
    c.provider = xstrdup(p->name);
    c.method = xstrdup("copilot");
    agw_err e = AGW_OK;
    if (exchange) {
        e = agw_copilot_exchange(p, github_token, &c, COPILOT_ADMIN_TIMEOUT_MS, err, errlen);
        if (!e) {
            /* Who logged in, for the status (a failure here costs nothing). */
            agw_buf who = AGW_BUF_INIT(AGW_CRED_HTTP_MAX_BODY);
            char why[128];
            char *login = NULL;
            if (agw_copilot_github_get(p, github_token, "/user", COPILOT_ADMIN_TIMEOUT_MS, &who,
                                       why, sizeof why) == AGW_OK &&
                (login = agw_cred_json_string(agw_buf_view(&who), "login")) &&
                !agw_str_has_ctl(agw_str_c(login), 1)) {
                cJSON *extra = cJSON_Parse(c.extra ? c.extra : "{}");
                if (cJSON_IsObject(extra)) {
                    cJSON_AddStringToObject(extra, "login", login);
                    char *text = cJSON_PrintUnformatted(extra);
                    free(c.extra);
                    c.extra = xstrdup(text);
                    cJSON_free(text);
                }
                cJSON_Delete(extra);
                snprintf(github_login, loginlen, "%s", login);
            }
            free(login);
            agw_buf_free(&who);
        }
    } else {
        c.access_token = xstrdup("");
        c.refresh_token = xstrdup(github_token);
        c.extra = xstrdup("{\"refresh_at\":0}");
    }
    if (!e)
        e = agw_cred_store(&c, err, errlen);
    agw_cred_free(&c);
    return e;
}

/* The session as an answer: its public part, id, provider, status, error. */
static cJSON *session_json(const agw_cred_login *l)
{
    cJSON *doc = l->public_json ? cJSON_Parse(l->public_json) : NULL;
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        doc = cJSON_CreateObject();
    }
    cJSON_DeleteItemFromObjectCaseSensitive(doc, "github_expires_at");
    cJSON_AddStringToObject(doc, "id", l->id);
    cJSON_AddStringToObject(doc, "provider", l->provider);
    cJSON_AddStringToObject(doc, "status", agw_login_status_name(l->status));
    cJSON_DeleteItemFromObjectCaseSensitive(doc, "interval");
    cJSON_AddNumberToObject(doc, "interval", l->interval);
    cJSON_AddNumberToObject(doc, "expires_at", (double)l->expires_at);
    if (l->error)
        cJSON_AddStringToObject(doc, "error", l->error);
    return doc;
}

/* Ends session l with `status` and `error` (may be NULL). */
static void end_session(agw_cred_login *l, agw_login_status status, const char *error)
{
    char err[256];
    l->status = status;
    free(l->error);
    l->error = error ? xstrdup(error) : NULL;
    if (l->secret_json)
        agw_secret_free(l->secret_json);
    l->secret_json = NULL; /* keep the sealed part as it is */
    if (agw_cred_login_update(l, err, sizeof err) != AGW_OK)
        agw_log_error("copilot login %s could not be updated: %s", l->id, err);
}

/* One poll of GitHub for pending session l (whose poll this request claimed). */
static void poll_once(agw_admin_req *r, agw_cred_login *l)
{
    copilot_target t;
    char err[256] = "";
    if (!find_target(r, l->provider, NULL, 1, &t)) {
        /* The provider went away or changed type meanwhile: the login ends. */
        end_session(l, AGW_LOGIN_ERROR, "the provider no longer exists as a copilot provider");
        return;
    }
    char *device = l->secret_json ? agw_cred_json_string(agw_str_c(l->secret_json), "device_code")
                                  : NULL;
    agw_buf form = AGW_BUF_INIT(8192), answer = AGW_BUF_INIT(AGW_CRED_HTTP_MAX_BODY);
    agw_err e = device ? AGW_OK : AGW_EINVAL;
    if (!e && !(e = form_field(&form, "client_id",
                               agw_provider_setting(t.p, AGW_SET_GITHUB_CLIENT_ID))) &&
        !(e = form_field(&form, "device_code", device)))
        e = form_field(&form, "grant_type", GITHUB_DEVICE_GRANT);
    if (e) {
        end_session(l, AGW_LOGIN_ERROR, "the session's device code cannot be read");
        goto out;
    }
    long status = 0;
    if (agw_copilot_github_form(t.p, "/login/oauth/access_token", form.data,
                                COPILOT_ADMIN_TIMEOUT_MS, &answer, &status, err,
                                sizeof err) != AGW_OK) {
        agw_log_warn("copilot login %s: polling GitHub failed: %s", l->id, err);
        goto out; /* still pending; the next poll is at its interval */
    }
    agw_str a = agw_buf_view(&answer);
    char *token = agw_cred_json_string(a, "access_token");
    char *code = agw_cred_json_string(a, "error");
    if (token && *token) {
        char login[128] = "";
        e = store_account(t.p, token, 1, login, sizeof login, err, sizeof err);
        if (e == AGW_EPEER)
            end_session(l, AGW_LOGIN_ERROR,
                        "GitHub accepted the login but refused a Copilot token: does this "
                        "GitHub account have a Copilot subscription?");
        else if (e) {
            char why[300];
            snprintf(why, sizeof why, "the account could not be stored: %s", err);
            end_session(l, AGW_LOGIN_ERROR, why);
        } else {
            cJSON *pub = cJSON_Parse(l->public_json ? l->public_json : "{}");
            if (cJSON_IsObject(pub) && login[0])
                cJSON_AddStringToObject(pub, "github_login", login);
            char *text = cJSON_IsObject(pub) ? cJSON_PrintUnformatted(pub) : NULL;
            if (text) {
                free(l->public_json);
                l->public_json = xstrdup(text);
                cJSON_free(text);
            }
            cJSON_Delete(pub);
            end_session(l, AGW_LOGIN_COMPLETED, NULL);
            agw_log_info("copilot login %s completed for provider %s", l->id, l->provider);
            audit(r, "login", l->provider);
        }
    } else if (code && strcmp(code, "authorization_pending") == 0) {
        /* the admin has not entered the code yet */
    } else if (code && strcmp(code, "slow_down") == 0) {
        int64_t iv = 0;
        agw_cred_json_int(a, "interval", &iv);
        /* GitHub's new interval, and never less than 5 s more than before. */
        l->interval = (int)(iv > l->interval ? iv : l->interval + 5);
        if (l->interval > 600)
            l->interval = 600;
        l->next_poll_at = agw_wall_s() + l->interval + POLL_MARGIN_S;
        if (l->secret_json)
            agw_secret_free(l->secret_json);
        l->secret_json = NULL;
        if (agw_cred_login_update(l, err, sizeof err) != AGW_OK)
            agw_log_error("copilot login %s could not be updated: %s", l->id, err);
    } else if (code && strcmp(code, "expired_token") == 0) {
        end_session(l, AGW_LOGIN_EXPIRED, NULL);
    } else if (code && strcmp(code, "access_denied") == 0) {
        end_session(l, AGW_LOGIN_DENIED, "the GitHub user declined the authorization");
    } else {
        char why[200];
        snprintf(why, sizeof why, "GitHub refused the login (HTTP %ld%s%.60s)", status,
                 code ? ": " : "", code && !agw_str_has_ctl(agw_str_c(code), 1) ? code : "");
        end_session(l, AGW_LOGIN_ERROR, why);
    }
    if (token)
        agw_secret_free(token);
    free(code);
out:
    if (device)
        agw_secret_free(device);
    if (form.data)
        OPENSSL_cleanse(form.data, form.len);
    agw_buf_free(&form);
    agw_buf_free(&answer);
    target_free(&t);
}

static void login_status(agw_admin_req *r, agw_str id)
{
    char sid[AGW_CRED_LOGIN_ID_LEN + 1];
    agw_cred_login l;
    memset(&l, 0, sizeof l);
    char err[256] = "";
    if (id.len != AGW_CRED_LOGIN_ID_LEN) {
        agw_admin_fail(r, 404, NULL, "no copilot login session '%.*s'",
                       (int)(id.len > 64 ? 64 : id.len), id.ptr);
        return;
    }
    memcpy(sid, id.ptr, id.len);
    sid[id.len] = '\0';
    agw_err e = agw_cred_login_get(sid, &l, err, sizeof err);
    if (e == AGW_OK && strcmp(l.kind, "copilot") != 0)
        e = AGW_ENOTFOUND; /* another provider type's session */
    if (e == AGW_ENOTFOUND) {
        agw_admin_fail(r, 404, NULL, "no copilot login session '%s'", sid);
        goto out;
    }
    if (e) {
        agw_admin_fail(r, 500, NULL, "the login session cannot be read: %s", err);
        goto out;
    }
    if (l.status == AGW_LOGIN_PENDING &&
        agw_cred_login_claim(l.id, l.interval + POLL_MARGIN_S) == 1) {
        poll_once(r, &l);
        if (r->conn.status)
            goto out;
    }
    if (l.status == AGW_LOGIN_EXPIRED)
        agw_admin_fail(r, 410, NULL, "copilot login session '%s' has expired: start a new one",
                       l.id);
    else
        agw_admin_reply(r, 200, session_json(&l));
out:
    if (l.secret_json)
        agw_secret_free(l.secret_json);
    l.secret_json = NULL;
    agw_cred_login_free(&l);
}

/* ---- one account ---- */

/* The status of account `name`; NULL (`err` says why) when its record
 * cannot be read. */
static cJSON *status_json(const char *name, char *err, size_t errlen)
{
    agw_cred c;
    agw_err e = agw_cred_load(name, &c, err, errlen);
    if (e && e != AGW_ENOTFOUND)
        return NULL;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "provider", name);
    if (e == AGW_ENOTFOUND) {
        cJSON_AddBoolToObject(doc, "logged_in", 0);
        return doc;
    }
    cJSON_AddBoolToObject(doc, "logged_in", 1);
    cJSON_AddStringToObject(doc, "state", agw_cred_state_name(c.state));
    agw_str x = agw_str_c(c.extra ? c.extra : "{}");
    char *login = agw_cred_json_string(x, "login"), *sku = agw_cred_json_string(x, "sku");
    char *api = agw_cred_json_string(x, "api");
    int64_t exp = 0, refresh_at = 0;
    int has_exp = agw_cred_json_int(x, "expires_at", &exp);
    agw_cred_json_int(x, "refresh_at", &refresh_at);
    if (login)
        cJSON_AddStringToObject(doc, "github_login", login);
    else
        cJSON_AddNullToObject(doc, "github_login");
    if (sku)
        cJSON_AddStringToObject(doc, "plan", sku);
    else
        cJSON_AddNullToObject(doc, "plan");
    if (api)
        cJSON_AddStringToObject(doc, "api_url", api);
    if (has_exp && c.access_token && *c.access_token) {
        cJSON_AddNumberToObject(doc, "token_expires_at", (double)exp);
        cJSON_AddNumberToObject(doc, "token_refresh_at", (double)refresh_at);
    } else {
        cJSON_AddNullToObject(doc, "token_expires_at"); /* not exchanged yet */
        cJSON_AddNullToObject(doc, "token_refresh_at");
    }
    cJSON_AddNumberToObject(doc, "last_refresh", (double)c.last_refresh);
    if (c.last_error)
        cJSON_AddStringToObject(doc, "last_error", c.last_error);
    else
        cJSON_AddNullToObject(doc, "last_error");
    agw_str models, m;
    agw_json_iter it;
    int n = 0;
    if (agw_json_find(x, AGW_STR_LIT("models"), &models) == AGW_OK &&
        agw_json_iter_init(&it, models) == AGW_OK)
        while (agw_json_iter_next(&it, NULL, &m))
            n++;
    cJSON_AddNumberToObject(doc, "models", n);
    free(login);
    free(sku);
    free(api);
    agw_cred_free(&c);
    return doc;
}

static void account_status(agw_admin_req *r, const copilot_target *t)
{
    char err[256] = "";
    cJSON *doc = status_json(t->p->name, err, sizeof err);
    if (doc)
        agw_admin_reply(r, 200, doc);
    else
        agw_admin_fail(r, 500, NULL, "the account cannot be read: %s", err);
}

/* GET /admin/copilot/status: every Copilot provider's status, antigw.cfg's
 * first. */
static void all_status(agw_admin_req *r)
{
    cJSON *data = cJSON_CreateArray();
    char err[256] = "";
    int ok = 1;
    for (size_t i = 0; ok && i < r->cfg->n_providers; i++) {
        const agw_provider_cfg *p = &r->cfg->providers[i];
        cJSON *one = p->type == AGW_PROVIDER_COPILOT ? status_json(p->name, err, sizeof err) : NULL;
        ok = p->type != AGW_PROVIDER_COPILOT || one;
        if (one)
            cJSON_AddItemToArray(data, one);
    }
    sqlite3_stmt *st = NULL;
    if (ok && sqlite3_prepare_v2(r->db,
                                 "SELECT name FROM providers WHERE type = 'copilot' ORDER BY id",
                                 -1, &st, NULL) != SQLITE_OK) {
        cJSON_Delete(data);
        agw_admin_db_fail(r, "listing the copilot providers");
        return;
    }
    while (ok && sqlite3_step(st) == SQLITE_ROW) {
        cJSON *one = status_json((const char *)sqlite3_column_text(st, 0), err, sizeof err);
        ok = one != NULL;
        if (one)
            cJSON_AddItemToArray(data, one);
    }
    sqlite3_finalize(st);
    if (!ok) {
        cJSON_Delete(data);
        agw_admin_fail(r, 500, NULL, "an account cannot be read: %s", err);
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "data", data);
    agw_admin_reply(r, 200, doc);
}

static void account_quota(agw_admin_req *r, const copilot_target *t)
{
    agw_cred c;
    char err[256] = "";
    agw_err e = agw_cred_load(t->p->name, &c, err, sizeof err);
    if (e == AGW_ENOTFOUND) {
        agw_admin_fail(r, 404, NULL, "provider '%s' has no Copilot login yet", t->p->name);
        return;
    }
    if (e) {
        agw_admin_fail(r, 500, NULL, "the account cannot be read: %s", err);
        return;
    }
    agw_buf body = AGW_BUF_INIT(AGW_CRED_HTTP_MAX_BODY);
    e = c.refresh_token ? agw_copilot_github_get(t->p, c.refresh_token, "/copilot_internal/user",
                                                 COPILOT_ADMIN_TIMEOUT_MS, &body, err, sizeof err)
                        : AGW_EPEER;
    agw_cred_free(&c);
    cJSON *doc = e ? NULL : cJSON_ParseWithLength(body.data ? body.data : "", body.len);
    agw_buf_free(&body);
    if (e == AGW_EPEER) {
        agw_admin_fail(r, 502, NULL, "GitHub refused the account's GitHub token: log in again");
        return;
    }
    if (e || !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        agw_admin_fail(r, 502, NULL, "GitHub's quota could not be read%s%s", e ? ": " : "",
                       e ? err : "");
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "provider", t->p->name);
    const cJSON *plan = cJSON_GetObjectItemCaseSensitive(doc, "copilot_plan");
    const cJSON *reset = cJSON_GetObjectItemCaseSensitive(doc, "quota_reset_date");
    const cJSON *snaps = cJSON_GetObjectItemCaseSensitive(doc, "quota_snapshots");
    const cJSON *prem = cJSON_GetObjectItemCaseSensitive(snaps, "premium_interactions");
    cJSON_AddItemToObject(out, "plan", cJSON_IsString(plan) ? cJSON_Duplicate(plan, 0)
                                                            : cJSON_CreateNull());
    cJSON_AddItemToObject(out, "quota_reset_date",
                          cJSON_IsString(reset) ? cJSON_Duplicate(reset, 0) : cJSON_CreateNull());
    cJSON *p = cJSON_AddObjectToObject(out, "premium_interactions");
    static const char *const keys[] = { "entitlement", "remaining", "percent_remaining",
                                        "unlimited" };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(prem, keys[i]);
        cJSON_AddItemToObject(p, keys[i], cJSON_IsNumber(v) || cJSON_IsBool(v)
                                              ? cJSON_Duplicate(v, 0)
                                              : cJSON_CreateNull());
    }
    cJSON_Delete(doc);
    agw_admin_reply(r, 200, out);
}

int agw_admin_copilot_set_token(agw_admin_req *r, const char *provider, const cJSON *body)
{
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(body, "github_token");
    if (!tok)
        return 0;
    if (cJSON_GetArraySize(body) != 1) {
        agw_admin_fail(r, 400, "github_token", "'github_token' is set on its own, in a PUT "
                                               "without other fields");
        return 1;
    }
    const char *gh = NULL;
    if (agw_admin_string(r, body, "github_token", 4096, 0, &gh, NULL) < 0)
        return 1;
    if (!*gh) {
        agw_admin_fail(r, 400, "github_token", "'github_token' may not be empty");
        return 1;
    }
    copilot_target t;
    if (!find_target(r, provider, "github_token", 0, &t))
        return 1;
    char err[256] = "", login[8];
    agw_err e = store_account(t.p, gh, 0, login, sizeof login, err, sizeof err);
    if (e) {
        agw_admin_fail(r, e == AGW_EINVAL ? 409 : 500, "github_token",
                       "the GitHub token cannot be stored: %s", err);
    } else {
        audit(r, "set_github_token", provider);
        if (!r->conn.status) {
            cJSON *doc = cJSON_CreateObject();
            cJSON_AddStringToObject(doc, "provider", provider);
            cJSON_AddBoolToObject(doc, "github_token_set", 1);
            agw_admin_reply(r, 200, doc);
        }
    }
    target_free(&t);
    return 1;
}

void agw_admin_copilot(agw_admin_req *r, agw_str rest)
{
    int get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    static const agw_str login = AGW_STR_LIT("/login");
    if (agw_str_eq(rest, login)) {
        if (strcmp(r->method, "POST") == 0)
            login_start(r);
        else
            agw_admin_method_not_allowed(r, "POST");
        return;
    }
    if (agw_str_starts(rest, login) && rest.ptr[login.len] == '/') {
        if (get)
            login_status(r, (agw_str){ rest.ptr + login.len + 1, rest.len - login.len - 1 });
        else
            agw_admin_method_not_allowed(r, "GET");
        return;
    }
    if (agw_str_eq(rest, AGW_STR_LIT("/status"))) {
        if (get)
            all_status(r);
        else
            agw_admin_method_not_allowed(r, "GET");
        return;
    }
    /* /{provider}/status, /{provider}/quota */
    const char *slash = rest.len > 1 ? memchr(rest.ptr + 1, '/', rest.len - 1) : NULL;
    agw_str what = slash ? (agw_str){ slash, (size_t)(rest.ptr + rest.len - slash) }
                         : (agw_str){ "", 0 };
    int status = agw_str_eq(what, AGW_STR_LIT("/status"));
    if (!slash || (!status && !agw_str_eq(what, AGW_STR_LIT("/quota")))) {
        agw_admin_fail(r, 404, NULL, "no admin endpoint at /admin/copilot%.*s",
                       (int)(rest.len > 200 ? 200 : rest.len), rest.ptr);
        return;
    }
    if (!get) {
        agw_admin_method_not_allowed(r, "GET");
        return;
    }
    char name[AGW_CONFIG_NAME_MAX + 1];
    size_t n = (size_t)(slash - rest.ptr - 1);
    if (n == 0 || n > AGW_CONFIG_NAME_MAX) {
        agw_admin_fail(r, 404, NULL, "no provider named '%.*s'", (int)(n > 100 ? 100 : n),
                       rest.ptr + 1);
        return;
    }
    memcpy(name, rest.ptr + 1, n);
    name[n] = '\0';
    copilot_target t;
    if (!find_target(r, name, NULL, 0, &t))
        return;
    if (status)
        account_status(r, &t);
    else
        account_quota(r, &t);
    target_free(&t);
}

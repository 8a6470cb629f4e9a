/*
 * admin_kiro: Kiro accounts through the admin API: logins (social sign-in,
 * Builder ID and IAM Identity Center device flows), imports of credentials
 * the admin already has, forced refreshes, status and quota.
 *
 *   POST /admin/kiro/login                  start a login
 *   GET  /admin/kiro/login/{id}             its status (a device flow is polled here)
 *   POST /admin/kiro/login/{id}/complete    a social sign-in's callback
 *   POST /admin/kiro/import                 an account from the admin's files
 *   POST /admin/kiro/{provider}/refresh     renew the token now
 *   GET  /admin/kiro/{provider}/status      method, expiry, profile ARN, last refresh/error
 *   GET  /admin/kiro/{provider}/quota       getUsageLimits
 *
 * Sessions and accounts live in SQLite (provider/credential.h), so any
 * admin process can finish what another started. No answer, log line or
 * audit row ever holds a token: answers name methods, expiries and errors.
 */
#include "admin.h"

#include "proto/apierr.h"
#include "provider/credential.h"
#include "provider/kiro_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Session times are whole seconds: a poll due at now + interval + this is
 * never sooner than the interval (an earlier one earns slow_down). */
#define POLL_MARGIN_S 1
/* A login's or refresh's upstream calls: short, an admin is waiting. */
#define KIRO_ADMIN_HTTP_MS 15000
/* The largest credential file read from the server's disk. */
#define KIRO_IMPORT_MAX_FILE (16u << 20)

static const char import_note[] =
    "the gateway now refreshes this account itself; the copy of the token on your machine "
    "will go stale after its next refresh (kiro-cli and the Kiro IDE do not read ours)";

/* ---- the provider ---- */

typedef struct {
    agw_provider_cfg cfg; /* a copy: from antigw.cfg (borrowed strings) or a row (owned) */
    int owned;
} kiro_provider;

static void kiro_provider_free(kiro_provider *k)
{
    if (k->owned) {
        free(k->cfg.name);
        free(k->cfg.base_url);
    }
    memset(k, 0, sizeof *k);
}

/* The Kiro provider named `name`: 1 when found, else answered 404 or 400. */
static int find_kiro(agw_admin_req *r, const char *name, const char *field, kiro_provider *out)
{
    memset(out, 0, sizeof *out);
    const agw_provider_cfg *p = agw_config_provider(r->cfg, agw_str_c(name));
    if (p) {
        out->cfg = *p;
    } else {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(r->db, "SELECT type, base_url FROM providers WHERE name = ?1", -1,
                               &st, NULL) != SQLITE_OK) {
            agw_admin_db_fail(r, "reading providers");
            return 0;
        }
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            int t = agw_provider_type_parse((const char *)sqlite3_column_text(st, 0));
            out->cfg.type = t < 0 ? AGW_PROVIDER_OPENAI : (agw_provider_type)t;
            out->cfg.name = xstrdup(name);
            out->cfg.base_url = agw_store_column_dup(st, 1);
            out->cfg.enabled = 1;
            out->owned = 1;
            p = &out->cfg;
        }
        sqlite3_finalize(st);
    }
    if (!p) {
        agw_admin_fail(r, 404, field, "no provider is named '%s'", name);
        return 0;
    }
    if (out->cfg.type != AGW_PROVIDER_KIRO) {
        agw_admin_fail(r, 400, field, "provider '%s' is a %s provider, not a kiro one", name,
                       agw_provider_type_name(out->cfg.type));
        kiro_provider_free(out);
        return 0;
    }
    if (!out->cfg.base_url) {
        kiro_provider_free(out);
        agw_admin_fail(r, 500, field, "provider '%s' has no base_url", name);
        return 0;
    }
    return 1;
}

/* The credential store's error as an answer. */
static void cred_fail(agw_admin_req *r, agw_err e, const char *err)
{
    int status = e == AGW_ENOTFOUND ? 409 : e == AGW_ETIMEOUT ? 503 : e == AGW_EINVAL ? 500
               : e == AGW_EBUSY ? 409 : 502;
    agw_admin_fail(r, status, NULL, "%s", err);
}

static void audit(agw_admin_req *r, const char *action, const char *provider, const char *method)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "provider", provider);
    if (method)
        cJSON_AddStringToObject(d, "method", method);
    (void)agw_admin_audit(r, action, "kiro_account", provider, d);
}

/* What an admin may see of an account. */
static cJSON *account_view(const agw_cred *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "provider", c->provider);
    cJSON_AddStringToObject(o, "method", c->method ? c->method : "");
    cJSON_AddStringToObject(o, "state", agw_cred_state_name(c->state));
    if (c->expires_at)
        cJSON_AddNumberToObject(o, "expires_at", (double)c->expires_at);
    else
        cJSON_AddNullToObject(o, "expires_at");
    if (c->profile_arn)
        cJSON_AddStringToObject(o, "profile_arn", c->profile_arn);
    else
        cJSON_AddNullToObject(o, "profile_arn");
    cJSON_AddStringToObject(o, "region", c->region ? c->region : AGW_KIRO_DEFAULT_REGION);
    if (c->last_refresh)
        cJSON_AddNumberToObject(o, "last_refresh", (double)c->last_refresh);
    else
        cJSON_AddNullToObject(o, "last_refresh");
    if (c->last_error)
        cJSON_AddStringToObject(o, "last_error", c->last_error);
    else
        cJSON_AddNullToObject(o, "last_error");
    cJSON_AddBoolToObject(o, "has_refresh_token", c->refresh_token && *c->refresh_token);
    cJSON_AddNumberToObject(o, "version", (double)c->version);
    return o;
}

/* Reads the account back and answers with it. */
static void reply_account(agw_admin_req *r, int status, const char *provider, const char *note)
{
    agw_cred c;
    char err[AGW_ERR_LEN];
    agw_err e = agw_cred_load(provider, &c, err, sizeof err);
    if (e) {
        agw_admin_fail(r, e == AGW_ENOTFOUND ? 404 : 500, NULL, "%s", err);
        return;
    }
    cJSON *o = account_view(&c);
    if (note)
        cJSON_AddStringToObject(o, "note", note);
    agw_cred_free(&c);
    agw_admin_reply(r, status, o);
}

/* An IdC account without a profile ARN gets its first one (PROVIDERS.md:
 * without it every call is refused). */
static agw_err fill_profile(const agw_provider_cfg *p, agw_cred *c, char *why, size_t whylen)
{
    if (c->profile_arn || strcmp(c->method, "idc") != 0 || !*c->access_token)
        return AGW_OK;
    char *arn = NULL;
    agw_err e = agw_kiro_list_profiles(p, c->access_token, &arn, KIRO_ADMIN_HTTP_MS, why, whylen);
    if (!e)
        c->profile_arn = arn;
    return e;
}

/* ---- JSON of sessions ---- */

static char *print_and_free(cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s)
        agw_fatal(__FILE__, __LINE__, "out of memory printing JSON");
    char *copy = xstrdup(s);
    agw_wipe(s, strlen(s));
    cJSON_free(s);
    return copy;
}

static const char *jget(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static cJSON *session_view(const agw_cred_login *l)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", l->id);
    cJSON_AddStringToObject(o, "provider", l->provider);
    cJSON *pub = l->public_json ? cJSON_Parse(l->public_json) : NULL;
    static const char *const shown[] = { "method", "auth_url", "user_code", "verification_uri",
                                         "verification_uri_complete", "region", "start_url" };
    for (size_t i = 0; pub && i < sizeof shown / sizeof shown[0]; i++) {
        const char *v = jget(pub, shown[i]);
        if (v)
            cJSON_AddStringToObject(o, shown[i], v);
    }
    cJSON_Delete(pub);
    cJSON_AddStringToObject(o, "status", agw_login_status_name(l->status));
    if (l->interval)
        cJSON_AddNumberToObject(o, "interval", l->interval);
    cJSON_AddNumberToObject(o, "expires_at", (double)l->expires_at);
    if (l->error)
        cJSON_AddStringToObject(o, "error", l->error);
    return o;
}

/* Ends session `l` with `status` and `error` (may be NULL). */
static void end_session(agw_cred_login *l, agw_login_status status, const char *error)
{
    char err[AGW_ERR_LEN];
    l->status = status;
    free(l->error);
    l->error = error ? xstrdup(error) : NULL;
    agw_secret_free(l->secret_json);
    l->secret_json = xstrdup("{}"); /* what it guarded is spent */
    free(l->public_json);
    l->public_json = NULL;
    l->interval = 0;
    l->next_poll_at = 0;
    if (agw_cred_login_update(l, err, sizeof err) != AGW_OK)
        agw_log_error("kiro login %s: %s", l->id, err);
}

/* ---- POST /admin/kiro/login ---- */

static void login_start(agw_admin_req *r)
{
    static const char *const known[] = { "provider", "method", "start_url", "region", NULL };
    cJSON *body = agw_admin_body(r, known);
    if (!body)
        return;
    const char *name = NULL, *method = NULL, *start_url = NULL, *region = NULL;
    int n;
    if ((n = agw_admin_string(r, body, "provider", AGW_CONFIG_NAME_MAX, 0, &name, NULL)) <= 0) {
        if (n == 0)
            agw_admin_required(r, "provider");
        goto out;
    }
    if ((n = agw_admin_string(r, body, "method", 32, 0, &method, NULL)) <= 0) {
        if (n == 0)
            agw_admin_required(r, "method");
        goto out;
    }
    if (agw_admin_string(r, body, "start_url", 2048, 0, &start_url, NULL) < 0 ||
        agw_admin_string(r, body, "region", 32, 0, &region, NULL) < 0)
        goto out;
    int social = strcmp(method, "social") == 0, builder = strcmp(method, "builder-id") == 0,
        idc = strcmp(method, "idc") == 0;
    if (!social && !builder && !idc) {
        agw_admin_fail(r, 400, "method", "method must be social, builder-id or idc");
        goto out;
    }
    if (idc && !start_url) {
        agw_admin_fail(r, 400, "start_url",
                       "an IAM Identity Center login needs start_url (https://<name>.awsapps.com/start)");
        goto out;
    }
    if (start_url && (strncmp(start_url, "https://", 8) != 0 && strncmp(start_url, "http://", 7) != 0)) {
        agw_admin_fail(r, 400, "start_url", "start_url must be an http:// or https:// URL");
        goto out;
    }
    if (region) {
        for (const char *c = region; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-')) {
                agw_admin_fail(r, 400, "region", "region must look like us-east-1");
                goto out;
            }
        if (!*region) {
            agw_admin_fail(r, 400, "region", "region must look like us-east-1");
            goto out;
        }
    }
    if (social && (start_url || region)) {
        agw_admin_fail(r, 400, start_url ? "start_url" : "region",
                       "a social login takes neither start_url nor region");
        goto out;
    }
    kiro_provider kp;
    if (!find_kiro(r, name, "provider", &kp))
        goto out;
    const agw_provider_cfg *p = &kp.cfg;
    char err[AGW_ERR_LEN];
    /* The session first: it claims the provider, so a second login started
     * meanwhile is refused before anything goes upstream. */
    agw_cred_login l;
    memset(&l, 0, sizeof l);
    l.provider = xstrdup(name);
    l.kind = xstrdup(social ? "kiro-social" : builder ? "kiro-builder-id" : "kiro-idc");
    agw_err e = agw_cred_login_create(&l, err, sizeof err);
    if (e) {
        agw_admin_fail(r, e == AGW_EBUSY ? 409 : 500, e == AGW_EBUSY ? "provider" : NULL, "%s",
                       err);
        agw_cred_login_free(&l);
        kiro_provider_free(&kp);
        goto out;
    }
    cJSON *pub = cJSON_CreateObject(), *sec = cJSON_CreateObject();
    cJSON_AddStringToObject(pub, "method", method);
    if (social) {
        agw_kiro_social_start s;
        if (agw_kiro_social_begin(p, &s) != AGW_OK) {
            cJSON_Delete(pub);
            cJSON_Delete(sec);
            end_session(&l, AGW_LOGIN_ERROR, "no randomness for the sign-in");
            agw_admin_fail(r, 500, NULL, "no randomness for the sign-in");
            goto done;
        }
        cJSON_AddStringToObject(pub, "auth_url", s.auth_url);
        cJSON_AddStringToObject(pub, "redirect_uri", s.redirect_uri);
        cJSON_AddStringToObject(sec, "verifier", s.verifier);
        cJSON_AddStringToObject(sec, "state", s.state);
        agw_kiro_social_start_free(&s);
    } else {
        const char *from = start_url ? start_url : agw_provider_setting(p, AGW_SET_KIRO_START_URL);
        const char *in = region ? region : AGW_KIRO_DEFAULT_REGION;
        agw_kiro_device d;
        char why[512];
        e = agw_kiro_device_begin(p, in, from, &d, KIRO_ADMIN_HTTP_MS, why, sizeof why);
        if (e) {
            cJSON_Delete(pub);
            cJSON_Delete(sec);
            end_session(&l, AGW_LOGIN_ERROR, why);
            agw_admin_fail(r, 502, NULL, "the device flow could not start: %s", why);
            goto done;
        }
        cJSON_AddStringToObject(pub, "region", in);
        cJSON_AddStringToObject(pub, "start_url", from);
        cJSON_AddStringToObject(pub, "user_code", d.user_code);
        cJSON_AddStringToObject(pub, "verification_uri", d.verification_uri);
        cJSON_AddStringToObject(pub, "verification_uri_complete", d.verification_uri_complete);
        cJSON_AddStringToObject(sec, "client_id", d.client_id);
        cJSON_AddStringToObject(sec, "client_secret", d.client_secret);
        cJSON_AddStringToObject(sec, "device_code", d.device_code);
        l.interval = d.interval;
        l.next_poll_at = agw_wall_s() + d.interval + POLL_MARGIN_S;
        if (d.expires_in < AGW_CRED_LOGIN_TTL)
            cJSON_AddNumberToObject(pub, "device_expires_at", (double)(agw_wall_s() + d.expires_in));
        agw_kiro_device_free(&d);
    }
    free(l.public_json);
    agw_secret_free(l.secret_json);
    l.public_json = print_and_free(pub);
    l.secret_json = print_and_free(sec);
    if ((e = agw_cred_login_update(&l, err, sizeof err))) {
        agw_admin_fail(r, 500, NULL, "%s", err);
        goto done;
    }
    agw_log_info("kiro login %s started for provider %s (%s)", l.id, name, method);
    agw_admin_reply(r, 201, session_view(&l));
done:
    agw_cred_login_free(&l);
    kiro_provider_free(&kp);
out:
    cJSON_Delete(body);
}

/* ---- GET /admin/kiro/login/{id} ---- */

/* The session `id` of a Kiro login, answered 404 when there is none. */
static int load_session(agw_admin_req *r, const char *id, agw_cred_login *l)
{
    char err[AGW_ERR_LEN];
    agw_err e = agw_cred_login_get(id, l, err, sizeof err);
    if (e == AGW_ENOTFOUND || (!e && strncmp(l->kind, "kiro-", 5) != 0)) {
        if (!e)
            agw_cred_login_free(l);
        agw_admin_fail(r, 404, NULL, "no Kiro login has the id '%s'", id);
        return 0;
    }
    if (e) {
        agw_admin_fail(r, 500, NULL, "%s", err);
        return 0;
    }
    return 1;
}

/* One poll of a device flow whose turn has come (the caller claimed it). */
static void device_poll(agw_admin_req *r, agw_cred_login *l, const agw_provider_cfg *p)
{
    cJSON *pub = cJSON_Parse(l->public_json ? l->public_json : "{}");
    cJSON *sec = cJSON_Parse(l->secret_json ? l->secret_json : "{}");
    const char *region = pub ? jget(pub, "region") : NULL;
    const char *cid = sec ? jget(sec, "client_id") : NULL, *csec = sec ? jget(sec, "client_secret") : NULL,
               *dev = sec ? jget(sec, "device_code") : NULL;
    char why[512] = "", err[AGW_ERR_LEN];
    if (!cid || !csec || !dev) {
        end_session(l, AGW_LOGIN_ERROR, "the session lost its device code");
        goto out;
    }
    agw_cred c;
    memset(&c, 0, sizeof c);
    agw_kiro_poll o = agw_kiro_device_poll(p, region, cid, csec, dev, &c, KIRO_ADMIN_HTTP_MS, why,
                                           sizeof why);
    switch (o) {
    case AGW_KIRO_POLL_DONE: {
        c.provider = xstrdup(l->provider);
        c.method = xstrdup(strcmp(l->kind, "kiro-idc") == 0 ? "idc" : "builder-id");
        c.client_id = xstrdup(cid);
        c.client_secret = xstrdup(csec);
        c.region = xstrdup(region ? region : AGW_KIRO_DEFAULT_REGION);
        agw_err e = fill_profile(p, &c, why, sizeof why);
        if (e) {
            char msg[640];
            snprintf(msg, sizeof msg, "signed in, but the account's profile ARN could not be "
                     "read: %s", why);
            end_session(l, AGW_LOGIN_ERROR, msg);
        } else if ((e = agw_cred_store(&c, err, sizeof err))) {
            end_session(l, AGW_LOGIN_ERROR, err);
        } else {
            end_session(l, AGW_LOGIN_COMPLETED, NULL);
            audit(r, "login", l->provider, c.method);
            agw_log_info("kiro login %s completed: provider %s (%s)", l->id, l->provider,
                         c.method);
        }
        break;
    }
    case AGW_KIRO_POLL_PENDING:
        break;
    case AGW_KIRO_POLL_SLOW_DOWN: {
        /* RFC 8628 §3.5: every later poll waits 5 s longer. */
        l->interval += 5;
        l->next_poll_at = agw_wall_s() + l->interval + POLL_MARGIN_S;
        char *keep_pub = l->public_json, *keep_sec = l->secret_json;
        l->public_json = l->secret_json = NULL; /* unchanged */
        if (agw_cred_login_update(l, err, sizeof err) != AGW_OK)
            agw_log_error("kiro login %s: %s", l->id, err);
        l->public_json = keep_pub;
        l->secret_json = keep_sec;
        break;
    }
    case AGW_KIRO_POLL_EXPIRED:
        end_session(l, AGW_LOGIN_EXPIRED, "the user code expired before it was approved");
        break;
    case AGW_KIRO_POLL_DENIED:
        end_session(l, AGW_LOGIN_ERROR, why[0] ? why : "the sign-in was refused");
        break;
    case AGW_KIRO_POLL_FAILED:
        agw_log_warn("kiro login %s: poll failed, tried again at the next status: %s", l->id,
                     why);
        break;
    }
    agw_cred_free(&c);
out:
    cJSON_Delete(pub);
    cJSON_Delete(sec);
}

static void login_status(agw_admin_req *r, const char *id)
{
    agw_cred_login l;
    if (!load_session(r, id, &l))
        return;
    if (l.status == AGW_LOGIN_PENDING && l.interval > 0 &&
        agw_cred_login_claim(id, l.interval + POLL_MARGIN_S) == 1) {
        kiro_provider kp;
        if (!find_kiro(r, l.provider, NULL, &kp)) {
            agw_cred_login_free(&l);
            return;
        }
        device_poll(r, &l, &kp.cfg);
        kiro_provider_free(&kp);
        agw_cred_login_free(&l);
        if (!load_session(r, id, &l))
            return;
    }
    cJSON *o = session_view(&l);
    if (l.status == AGW_LOGIN_PENDING && l.interval > 0) {
        int64_t wait = l.next_poll_at - agw_wall_s();
        cJSON_AddNumberToObject(o, "poll_after", (double)(wait > 0 ? wait : 0));
    }
    agw_cred_login_free(&l);
    agw_admin_reply(r, 200, o);
}

/* ---- POST /admin/kiro/login/{id}/complete ---- */

static void login_complete(agw_admin_req *r, const char *id)
{
    static const char *const known[] = { "callback_url", "code", "state", "login_option", NULL };
    cJSON *body = agw_admin_body(r, known);
    if (!body)
        return;
    const char *url = NULL, *code_in = NULL, *state_in = NULL, *option_in = NULL;
    char *code = NULL, *state = NULL, *option = NULL;
    agw_cred_login l;
    memset(&l, 0, sizeof l);
    kiro_provider kp;
    memset(&kp, 0, sizeof kp);
    char why[512], err[AGW_ERR_LEN];
    if (agw_admin_string(r, body, "callback_url", 8192, 0, &url, NULL) < 0 ||
        agw_admin_string(r, body, "code", 4096, 0, &code_in, NULL) < 0 ||
        agw_admin_string(r, body, "state", 512, 0, &state_in, NULL) < 0 ||
        agw_admin_string(r, body, "login_option", 64, 0, &option_in, NULL) < 0)
        goto out;
    if (url && (code_in || state_in)) {
        agw_admin_fail(r, 400, "callback_url", "give either callback_url or code and state");
        goto out;
    }
    if (url) {
        if (agw_kiro_parse_callback(url, &code, &state, &option, why, sizeof why)) {
            agw_admin_fail(r, 400, "callback_url", "%s", why);
            goto out;
        }
    } else if (!code_in || !state_in) {
        agw_admin_fail(r, 400, code_in ? "state" : "code",
                       "give callback_url, or both code and state");
        goto out;
    } else {
        code = xstrdup(code_in);
        state = xstrdup(state_in);
    }
    if (option_in) {
        free(option);
        option = xstrdup(option_in);
    }
    if (!load_session(r, id, &l))
        goto out;
    if (strcmp(l.kind, "kiro-social") != 0) {
        agw_admin_fail(r, 409, NULL, "login %s is a device flow: poll GET /admin/kiro/login/%s",
                       id, id);
        goto out;
    }
    if (l.status != AGW_LOGIN_PENDING) {
        agw_admin_fail(r, l.status == AGW_LOGIN_EXPIRED ? 410 : 409, NULL,
                       "login %s is %s: start a new one", id, agw_login_status_name(l.status));
        goto out;
    }
    cJSON *pub = cJSON_Parse(l.public_json ? l.public_json : "{}");
    cJSON *sec = cJSON_Parse(l.secret_json ? l.secret_json : "{}");
    const char *want_state = sec ? jget(sec, "state") : NULL;
    const char *verifier = sec ? jget(sec, "verifier") : NULL;
    const char *redirect = pub ? jget(pub, "redirect_uri") : NULL;
    if (!want_state || !verifier || !redirect) {
        cJSON_Delete(pub);
        cJSON_Delete(sec);
        end_session(&l, AGW_LOGIN_ERROR, "the session lost its verifier");
        agw_admin_fail(r, 500, NULL, "login %s lost its verifier: start a new one", id);
        goto out;
    }
    if (!agw_secret_eq(agw_str_c(state), agw_str_c(want_state))) {
        cJSON_Delete(pub);
        cJSON_Delete(sec);
        agw_log_warn("kiro login %s: a callback with the wrong state was refused", id);
        agw_admin_fail(r, 400, url ? "callback_url" : "state",
                       "the state does not match this login: the callback belongs to another "
                       "sign-in");
        goto out;
    }
    /* One exchange per session: a replayed callback finds it taken. */
    if (agw_cred_login_claim(id, -1) != 1) {
        cJSON_Delete(pub);
        cJSON_Delete(sec);
        agw_admin_fail(r, 409, NULL, "login %s is already being completed or is over", id);
        goto out;
    }
    char redirect_uri[2300];
    if (option && *option)
        snprintf(redirect_uri, sizeof redirect_uri, "%s/oauth/callback?login_option=%s", redirect,
                 option);
    else
        snprintf(redirect_uri, sizeof redirect_uri, "%s/oauth/callback", redirect);
    char *verifier_copy = xstrdup(verifier);
    cJSON_Delete(pub);
    cJSON_Delete(sec);
    if (!find_kiro(r, l.provider, NULL, &kp)) {
        agw_secret_free(verifier_copy);
        end_session(&l, AGW_LOGIN_ERROR, "the provider is gone");
        goto out;
    }
    agw_cred c;
    memset(&c, 0, sizeof c);
    agw_err e = agw_kiro_social_exchange(&kp.cfg, code, verifier_copy, redirect_uri, &c,
                                         KIRO_ADMIN_HTTP_MS, why, sizeof why);
    agw_secret_free(verifier_copy);
    if (e) {
        end_session(&l, AGW_LOGIN_ERROR, why);
        agw_admin_fail(r, e == AGW_EINVAL ? 400 : 502, NULL, "%s", why);
        agw_cred_free(&c);
        goto out;
    }
    c.provider = xstrdup(l.provider);
    if ((e = agw_cred_store(&c, err, sizeof err))) {
        end_session(&l, AGW_LOGIN_ERROR, err);
        cred_fail(r, e, err);
        agw_cred_free(&c);
        goto out;
    }
    end_session(&l, AGW_LOGIN_COMPLETED, NULL);
    audit(r, "login", l.provider, "social");
    agw_log_info("kiro login %s completed: provider %s (social)", id, l.provider);
    agw_cred_free(&c);
    reply_account(r, 200, l.provider, NULL);
out:
    agw_secret_free(code);
    agw_secret_free(state);
    free(option);
    agw_cred_login_free(&l);
    kiro_provider_free(&kp);
    cJSON_Delete(body);
}

/* ---- POST /admin/kiro/import ---- */

/* A file of the server's disk (at most KIRO_IMPORT_MAX_FILE), or NULL with why. */
static char *read_file(const char *path, size_t *len, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size > KIRO_IMPORT_MAX_FILE) {
        if (fd < 0)
            snprintf(why, whylen, "cannot open it: %s", strerror(errno));
        else
            snprintf(why, whylen, "not a regular file of at most 16 MiB");
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    char *buf = xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *len = got;
    return buf;
}

/* For an IdC kiro-auth-token.json on the server: its client registration,
 * <clientIdHash>.json beside it. NULL when there is none. */
static char *sibling_registration(const char *path, agw_str token, size_t *len)
{
    char *hash = agw_cred_json_string(token, "clientIdHash");
    if (!hash)
        return NULL;
    for (const char *c = hash; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') || (*c >= 'A' && *c <= 'F'))) {
            free(hash);
            return NULL;
        }
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path) + 1 : 0;
    char file[4096];
    snprintf(file, sizeof file, "%.*s%s.json", (int)dir, path, hash);
    free(hash);
    char why[128];
    return read_file(file, len, why, sizeof why);
}

static void import_account(agw_admin_req *r)
{
    static const char *const known[] = { "provider", "kiro_auth_token", "client_registration",
                                         "kiro_cli_db", "path", NULL };
    cJSON *body = agw_admin_body(r, known);
    if (!body)
        return;
    const char *name = NULL, *b64 = NULL, *path = NULL;
    char *token_text = NULL, *client_text = NULL, *file = NULL, *reg = NULL;
    unsigned char *db = NULL;
    size_t db_len = 0, file_len = 0, reg_len = 0;
    kiro_provider kp;
    memset(&kp, 0, sizeof kp);
    agw_cred c;
    memset(&c, 0, sizeof c);
    char why[512], err[AGW_ERR_LEN];
    int n;
    if ((n = agw_admin_string(r, body, "provider", AGW_CONFIG_NAME_MAX, 0, &name, NULL)) <= 0) {
        if (n == 0)
            agw_admin_required(r, "provider");
        goto out;
    }
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(body, "kiro_auth_token");
    const cJSON *cli = cJSON_GetObjectItemCaseSensitive(body, "client_registration");
    if (agw_admin_string(r, body, "kiro_cli_db", AGW_ADMIN_MAX_BODY, 0, &b64, NULL) < 0 ||
        agw_admin_string(r, body, "path", 4096, 0, &path, NULL) < 0)
        goto out;
    if ((tok != NULL) + (b64 != NULL) + (path != NULL) != 1) {
        agw_admin_fail(r, 400, NULL, "give exactly one of kiro_auth_token, kiro_cli_db and path");
        goto out;
    }
    if (tok && !cJSON_IsObject(tok)) {
        agw_admin_fail(r, 400, "kiro_auth_token",
                       "kiro_auth_token must be the JSON object of kiro-auth-token.json");
        goto out;
    }
    if (cli && (!tok || !cJSON_IsObject(cli))) {
        agw_admin_fail(r, 400, "client_registration",
                       tok ? "client_registration must be the JSON object of the client file"
                           : "client_registration goes with kiro_auth_token");
        goto out;
    }
    if (path && path[0] != '/') {
        agw_admin_fail(r, 400, "path", "path must be absolute");
        goto out;
    }
    if (!find_kiro(r, name, "provider", &kp))
        goto out;
    agw_err e;
    const char *field = tok ? "kiro_auth_token" : b64 ? "kiro_cli_db" : "path";
    if (tok) {
        token_text = cJSON_PrintUnformatted(tok);
        client_text = cli ? cJSON_PrintUnformatted(cli) : NULL;
        e = agw_kiro_import_token_file(agw_str_c(token_text),
                                       client_text ? agw_str_c(client_text) : (agw_str){ NULL, 0 },
                                       &c, why, sizeof why);
        if (e && cli && strstr(why, "client_registration"))
            field = "client_registration";
    } else if (b64) {
        size_t bl = strlen(b64);
        db = xmalloc(bl / 4 * 3 + 3);
        int got = bl % 4 == 0 ? EVP_DecodeBlock(db, (const unsigned char *)b64, (int)bl) : -1;
        if (got < 0) {
            agw_admin_fail(r, 400, "kiro_cli_db", "kiro_cli_db is not base64");
            goto out;
        }
        db_len = (size_t)got;
        /* EVP_DecodeBlock counts the padding as bytes: take them back. */
        for (size_t i = bl; i > 0 && b64[i - 1] == '=' && db_len > 0; i--)
            db_len--;
        e = agw_kiro_import_cli_db((agw_str){ (const char *)db, db_len }, &c, why, sizeof why);
    } else {
        file = read_file(path, &file_len, why, sizeof why);
        if (!file) {
            char msg[600];
            snprintf(msg, sizeof msg, "%s", why);
            agw_admin_fail(r, 400, "path", "%s: %s", path, msg);
            goto out;
        }
        if (file_len >= 16 && memcmp(file, "SQLite format 3", 16) == 0) {
            e = agw_kiro_import_cli_db((agw_str){ file, file_len }, &c, why, sizeof why);
        } else {
            agw_str t = { file, file_len };
            reg = sibling_registration(path, t, &reg_len);
            e = agw_kiro_import_token_file(t, reg ? (agw_str){ reg, reg_len } : (agw_str){ NULL, 0 },
                                           &c, why, sizeof why);
        }
    }
    if (e) {
        agw_admin_fail(r, 400, field, "%s", why);
        goto out;
    }
    c.provider = xstrdup(name);
    /* A token past its expiry is renewed on first use; an IdC account
     * needs its profile ARN, which needs a live token. */
    if (!c.profile_arn && strcmp(c.method, "idc") == 0 && c.expires_at > agw_wall_s() + 60 &&
        fill_profile(&kp.cfg, &c, why, sizeof why) != AGW_OK) {
        agw_admin_fail(r, 502, NULL, "the account's profile ARN could not be read: %s", why);
        goto out;
    }
    if ((e = agw_cred_store(&c, err, sizeof err))) {
        cred_fail(r, e, err);
        goto out;
    }
    if (!c.profile_arn && strcmp(c.method, "idc") == 0) {
        /* The token was stale: renew it, then ask for the profile. */
        agw_cred_token t;
        memset(&t, 0, sizeof t);
        if (agw_cred_refresh_now(&kp.cfg, err, sizeof err) == AGW_OK &&
            agw_cred_access(&kp.cfg, &t, err, sizeof err) == AGW_OK) {
            agw_cred fresh;
            if (agw_cred_load(name, &fresh, err, sizeof err) == AGW_OK) {
                if (fill_profile(&kp.cfg, &fresh, why, sizeof why) == AGW_OK &&
                    agw_cred_store(&fresh, err, sizeof err) != AGW_OK)
                    agw_log_warn("kiro import %s: profile ARN not stored: %s", name, err);
                agw_cred_free(&fresh);
            }
        }
        agw_cred_token_free(&t);
    }
    audit(r, "import", name, c.method);
    agw_log_info("kiro account imported for provider %s (%s)", name, c.method);
    reply_account(r, 201, name, import_note);
out:
    if (token_text) {
        agw_wipe(token_text, strlen(token_text));
        cJSON_free(token_text);
    }
    if (client_text) {
        agw_wipe(client_text, strlen(client_text));
        cJSON_free(client_text);
    }
    if (db) {
        agw_wipe(db, db_len);
        free(db);
    }
    if (file) {
        agw_wipe(file, file_len);
        free(file);
    }
    if (reg) {
        agw_wipe(reg, reg_len);
        free(reg);
    }
    agw_cred_free(&c);
    kiro_provider_free(&kp);
    cJSON_Delete(body);
}

/* ---- /admin/kiro/{provider}/... ---- */

static void account_refresh(agw_admin_req *r, const kiro_provider *kp)
{
    char err[AGW_ERR_LEN];
    agw_err e = agw_cred_refresh_now(&kp->cfg, err, sizeof err);
    if (e) {
        if (e == AGW_ENOTFOUND && strstr(err, "has no account"))
            agw_admin_fail(r, 404, NULL, "%s", err);
        else
            cred_fail(r, e, err);
        return;
    }
    audit(r, "refresh", kp->cfg.name, NULL);
    reply_account(r, 200, kp->cfg.name, NULL);
}

/* The CREDIT entry of a getUsageLimits answer, in our words. */
static cJSON *credit_summary(const cJSON *usage)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(usage, "usageBreakdownList");
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        const char *type = jget(item, "resourceType");
        if (!type || strcmp(type, "CREDIT") != 0)
            continue;
        cJSON *o = cJSON_CreateObject();
        static const char *const map[][2] = { { "usageLimitWithPrecision", "limit" },
                                              { "currentUsageWithPrecision", "used" },
                                              { "nextDateReset", "next_reset" } };
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, map[i][0]);
            if (v)
                cJSON_AddItemToObject(o, map[i][1], cJSON_Duplicate(v, 1));
        }
        const cJSON *trial = cJSON_GetObjectItemCaseSensitive(item, "freeTrialInfo");
        if (trial)
            cJSON_AddItemToObject(o, "free_trial", cJSON_Duplicate(trial, 1));
        return o;
    }
    return cJSON_CreateNull();
}

static void account_quota(agw_admin_req *r, const kiro_provider *kp)
{
    char err[AGW_ERR_LEN], why[512];
    agw_buf body = AGW_BUF_INIT(0);
    long status = 0;
    agw_err e = AGW_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        agw_cred_token t;
        if ((e = agw_cred_access(&kp->cfg, &t, err, sizeof err))) {
            if (e == AGW_ENOTFOUND && strstr(err, "has no account"))
                agw_admin_fail(r, 404, NULL, "%s", err);
            else
                cred_fail(r, e, err);
            agw_buf_free(&body);
            return;
        }
        e = agw_kiro_usage_limits(&kp->cfg, &t, &body, &status, KIRO_ADMIN_HTTP_MS, why,
                                  sizeof why);
        uint64_t v = t.version;
        agw_cred_token_free(&t);
        if (!(e == AGW_EINVAL && attempt == 0 &&
              agw_apierr_token_refused(status, agw_buf_view(&body))))
            break;
        /* A refused token: renewed once (or taken from whoever renewed it). */
        if ((e = agw_cred_rejected(&kp->cfg, v, err, sizeof err))) {
            cred_fail(r, e, err);
            agw_buf_free(&body);
            return;
        }
    }
    if (e) {
        agw_admin_fail(r, 502, NULL, "%s", why);
        agw_buf_free(&body);
        return;
    }
    cJSON *usage = cJSON_ParseWithLength(body.data, body.len);
    agw_buf_free(&body);
    if (!usage) {
        agw_admin_fail(r, 502, NULL, "getUsageLimits answered with something that is not JSON");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "provider", kp->cfg.name);
    cJSON_AddItemToObject(o, "credits", credit_summary(usage));
    cJSON_AddItemToObject(o, "usage", usage);
    agw_admin_reply(r, 200, o);
}

static void account(agw_admin_req *r, agw_str rest)
{
    /* rest: "{provider}/{action}" */
    const char *slash = memchr(rest.ptr, '/', rest.len);
    if (!slash || slash == rest.ptr) {
        agw_admin_fail(r, 404, NULL, "no admin endpoint at %.*s",
                       (int)(r->path.len > 200 ? 200 : r->path.len), r->path.ptr);
        return;
    }
    size_t nl = (size_t)(slash - rest.ptr);
    agw_str action = { slash + 1, rest.len - nl - 1 };
    char name[AGW_CONFIG_NAME_MAX + 1];
    if (nl > AGW_CONFIG_NAME_MAX) {
        agw_admin_fail(r, 404, NULL, "no provider is named '%.*s...'", 40, rest.ptr);
        return;
    }
    memcpy(name, rest.ptr, nl);
    name[nl] = '\0';
    int refresh = agw_str_eq(action, AGW_STR_LIT("refresh")),
        status = agw_str_eq(action, AGW_STR_LIT("status")),
        quota = agw_str_eq(action, AGW_STR_LIT("quota"));
    if (!refresh && !status && !quota) {
        agw_admin_fail(r, 404, NULL, "no admin endpoint at %.*s",
                       (int)(r->path.len > 200 ? 200 : r->path.len), r->path.ptr);
        return;
    }
    const char *want = refresh ? "POST" : "GET";
    if (strcmp(r->method, want) != 0) {
        agw_admin_method_not_allowed(r, want);
        return;
    }
    if (!agw_config_name_ok(name)) {
        agw_admin_fail(r, 404, NULL, "no provider is named '%s'", name);
        return;
    }
    kiro_provider kp;
    if (!find_kiro(r, name, NULL, &kp))
        return;
    if (refresh)
        account_refresh(r, &kp);
    else if (quota)
        account_quota(r, &kp);
    else {
        agw_cred c;
        char err[AGW_ERR_LEN];
        agw_err e = agw_cred_load(name, &c, err, sizeof err);
        if (e) {
            agw_admin_fail(r, e == AGW_ENOTFOUND ? 404 : 500, NULL, "%s", err);
        } else {
            agw_admin_reply(r, 200, account_view(&c));
            agw_cred_free(&c);
        }
    }
    kiro_provider_free(&kp);
}

void agw_admin_kiro(agw_admin_req *r, agw_str rest)
{
    static const agw_str login = AGW_STR_LIT("/login");
    if (agw_str_eq(rest, login)) {
        if (strcmp(r->method, "POST") != 0)
            agw_admin_method_not_allowed(r, "POST");
        else
            login_start(r);
        return;
    }
    if (agw_str_eq(rest, AGW_STR_LIT("/import"))) {
        if (strcmp(r->method, "POST") != 0)
            agw_admin_method_not_allowed(r, "POST");
        else
            import_account(r);
        return;
    }
    if (agw_str_starts(rest, login) && rest.len > login.len && rest.ptr[login.len] == '/') {
        agw_str tail = { rest.ptr + login.len + 1, rest.len - login.len - 1 };
        static const agw_str complete = AGW_STR_LIT("/complete");
        int completing = tail.len > complete.len &&
                         memcmp(tail.ptr + tail.len - complete.len, complete.ptr, complete.len) == 0;
        size_t idl = completing ? tail.len - complete.len : tail.len;
        char id[AGW_CRED_LOGIN_ID_LEN + 1];
        if (idl != AGW_CRED_LOGIN_ID_LEN || memchr(tail.ptr, '/', idl)) {
            agw_admin_fail(r, 404, NULL, "no Kiro login has the id '%.*s'",
                           (int)(idl > 64 ? 64 : idl), tail.ptr);
            return;
        }
        memcpy(id, tail.ptr, idl);
        id[idl] = '\0';
        const char *want = completing ? "POST" : "GET";
        if (strcmp(r->method, want) != 0) {
            agw_admin_method_not_allowed(r, want);
            return;
        }
        if (completing)
            login_complete(r, id);
        else
            login_status(r, id);
        return;
    }
    if (rest.len > 1 && rest.ptr[0] == '/') {
        account(r, (agw_str){ rest.ptr + 1, rest.len - 1 });
        return;
    }
    agw_admin_fail(r, 404, NULL, "no admin endpoint at %.*s",
                   (int)(r->path.len > 200 ? 200 : r->path.len), r->path.ptr);
}

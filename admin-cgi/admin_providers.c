/*
 * /admin/providers: providers in the database, plus the read-only ones of
 * antigw.cfg (id "cfg:<name>").
 *
 * A provider's API key is stored sealed (catalog.h: AES-256-GCM bound to the
 * provider's name, type and base_url origin) next to a hint ("sk-...abcd");
 * answers carry the hint, never the key. A change of name, type or origin
 * through this API re-seals the key for the new place, inside the same
 * transaction; the same change made in the database directly leaves a key
 * that no longer opens.
 */
#include "admin.h"

#include "route/lb.h"
#include "route/health.h"
#include "tenant/catalog.h"

#include <stdio.h>
#include <stdlib.h>

#define MAX_URL 2048
#define MAX_SECRET 8192
#define MAX_MODELS 1000
#define MAX_MODEL_NAME AGW_CONFIG_MODEL_MAX

static const char *const fields[] = { "name",    "type",   "base_url", "api_key",      "weight",
                                      "enabled", "models", "default_model", NULL };
/* A PUT may instead set a Copilot account's GitHub token (admin_copilot.c). */
static const char *const update_fields[] = { "name",    "type",   "base_url", "api_key",
                                             "weight",  "enabled", "models", "default_model",
                                             "github_token", NULL };

typedef struct {
    int64_t id;
    char *name, *type, *base_url, *default_model, *models;
    agw_buf secret_enc;        /* empty: no key */
    char hint[32];
    int64_t weight;
    int enabled;
    int64_t created_at, updated_at;
    char *answers;             /* JSON text; NULL = the type's defaults */
} agw_admin_provider_row;

static void prow_init(void *row)
{
    agw_admin_provider_row *p = row;
    memset(p, 0, sizeof *p);
    agw_buf_init(&p->secret_enc, MAX_SECRET + AGW_AEAD_OVERHEAD);
}

static void prow_free(void *row)
{
    agw_admin_provider_row *p = row;
    free(p->name);
    free(p->type);
    free(p->base_url);
    free(p->default_model);
    free(p->models);
    free(p->answers);
    agw_buf_free(&p->secret_enc);
}

/* A row of the resource's select_sql (below); 0 when the sealed key does not
 * fit the row's buffer. */
static int prow_read(sqlite3_stmt *st, void *row)
{
    agw_admin_provider_row *p = row;
    int ok = 1;
    p->id = sqlite3_column_int64(st, 0);
    p->name = agw_store_column_dup(st, 1);
    p->type = agw_store_column_dup(st, 2);
    p->base_url = agw_store_column_dup(st, 3);
    if (sqlite3_column_type(st, 4) != SQLITE_NULL &&
        agw_buf_append(&p->secret_enc, sqlite3_column_blob(st, 4),
                       (size_t)sqlite3_column_bytes(st, 4)) != AGW_OK)
        ok = 0;
    const unsigned char *h = sqlite3_column_text(st, 5);
    snprintf(p->hint, sizeof p->hint, "%s", h ? (const char *)h : "");
    p->weight = sqlite3_column_int64(st, 6);
    p->enabled = sqlite3_column_int(st, 7) != 0;
    p->models = agw_store_column_dup(st, 8);
    p->default_model = agw_store_column_dup(st, 9);
    p->created_at = sqlite3_column_int64(st, 10);
    p->updated_at = sqlite3_column_int64(st, 11);
    p->answers = agw_store_column_dup(st, 12);
    return ok;
}

static const char *prow_name(const void *row)
{
    return ((const agw_admin_provider_row *)row)->name;
}

/* The pool's load-balancer state (lb.h) in the shared segment, bound by
 * main before the server starts (agw_admin_providers_bind): a provider's
 * health and why it is out of the rotation, as the gateway's /health shows
 * them. Row renderers have no request, hence a file-level pointer. */
static agw_lb *pool_lb;

void agw_admin_providers_bind(agw_lb *lb)
{
    pool_lb = lb;
}

/* "healthy" and "health_reason" (lb.h: none, probe_failed, auth_rejected,
 * consecutive_failures). */
static void add_health(cJSON *o, const char *name)
{
    if (!pool_lb)
        return;
    agw_lb_reason why = agw_lb_unhealthy_reason(agw_lb_slot_of(pool_lb, agw_str_c(name)));
    cJSON_AddBoolToObject(o, "healthy", why == AGW_LB_REASON_NONE);
    cJSON_AddStringToObject(o, "health_reason", agw_lb_reason_name(why));
}

/* A provider as answers show it, from antigw.cfg or from the database alike.
 * `hint` is NULL when there is no key; takes `models`. The caller adds
 * created_at and updated_at. */
static cJSON *provider_json(const char *id, const char *name, const char *type,
                            const char *base_url, const char *hint, double weight, int enabled,
                            cJSON *models, const char *default_model, int read_only)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "type", type);
    cJSON_AddStringToObject(o, "base_url", base_url);
    cJSON_AddBoolToObject(o, "has_api_key", hint != NULL);
    cJSON_AddItemToObject(o, "api_key_hint", hint ? cJSON_CreateString(hint) : cJSON_CreateNull());
    cJSON_AddNumberToObject(o, "weight", weight);
    cJSON_AddBoolToObject(o, "enabled", enabled);
    cJSON_AddItemToObject(o, "models", models);
    cJSON_AddItemToObject(o, "default_model",
                          default_model ? cJSON_CreateString(default_model) : cJSON_CreateNull());
    cJSON_AddStringToObject(o, "source", read_only ? "config" : "database");
    cJSON_AddBoolToObject(o, "read_only", read_only);
    add_health(o, name);
    return o;
}

/* "answers": what the gateway does to the provider's answers (README,
 * "Answers"), in the form PUT .../answers takes. */
static void add_answers(cJSON *o, const agw_provider_cfg *settings)
{
    agw_buf text = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    cJSON *v = agw_config_answers_to_json(settings, &text) == AGW_OK ? cJSON_Parse(text.data) : NULL;
    cJSON_AddItemToObject(o, "answers", v ? v : cJSON_CreateNull());
    agw_buf_free(&text);
}

static cJSON *row_json(const void *row)
{
    const agw_admin_provider_row *p = row;
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)p->id);
    cJSON *models = p->models ? cJSON_Parse(p->models) : NULL;
    cJSON *o = provider_json(id, p->name, p->type, p->base_url,
                             p->secret_enc.len ? p->hint : NULL, (double)p->weight, p->enabled,
                             models ? models : cJSON_CreateArray(), p->default_model, 0);
    agw_provider_cfg settings = { .continuation = -1, .sanitize = -1, .sanitize_defaults = 1 };
    char why[256];
    if (p->answers && agw_config_answers_from_json(agw_str_c(p->answers), &settings, why,
                                                   sizeof why) != AGW_OK)
        agw_log_error("provider %s: unreadable answer settings (%s)", p->name, why);
    add_answers(o, &settings);
    agw_config_rules_free(&settings);
    cJSON_AddNumberToObject(o, "created_at", (double)p->created_at);
    cJSON_AddNumberToObject(o, "updated_at", (double)p->updated_at);
    return o;
}

static cJSON *cfg_json(const agw_provider_cfg *p)
{
    char id[AGW_CONFIG_NAME_MAX + 8], hint[32];
    snprintf(id, sizeof id, "cfg:%s", p->name);
    agw_admin_secret_hint(p->api_key, hint);
    cJSON *models = cJSON_CreateArray();
    for (size_t i = 0; i < p->n_models; i++)
        cJSON_AddItemToArray(models, cJSON_CreateString(p->models[i]));
    cJSON *o = provider_json(id, p->name, agw_provider_type_name(p->type), p->base_url,
                             p->api_key && p->api_key[0] ? hint : NULL, p->weight, p->enabled,
                             models, p->default_model, 1);
    add_answers(o, p);
    cJSON_AddNullToObject(o, "created_at");
    cJSON_AddNullToObject(o, "updated_at");
    return o;
}

/* antigw.cfg's providers are listed first, read-only. */
static void list_cfg(agw_admin_req *r, cJSON *data)
{
    const agw_config *cfg = r->cfg;
    for (size_t i = 0; i < cfg->n_providers; i++)
        cJSON_AddItemToArray(data, cfg_json(&cfg->providers[i]));
}

static void create(agw_admin_req *r);
static void update(agw_admin_req *r, int64_t id);

static const agw_admin_resource providers = {
    .noun = "provider",
    .select_sql = "SELECT id, name, type, base_url, secret_enc, secret_hint, weight, enabled,"
                  " models, default_model, created_at, updated_at, answers FROM providers"
                  " WHERE id = ?",
    .ids_sql = "SELECT id FROM providers ORDER BY id",
    .name_sql = "SELECT id FROM providers WHERE name = ? AND id != ?",
    .delete_sql = "DELETE FROM providers WHERE id = ?",
    .string_ids = 1,
    .row_size = sizeof(agw_admin_provider_row),
    .row_init = prow_init,
    .row_free = prow_free,
    .row_read = prow_read,
    .row_json = row_json,
    .row_name = prow_name,
    .list_head = list_cfg,
    .create = create,
    .update = update,
};

/* 1 when `name` is free for provider `self` (0 = a new one): not declared in
 * antigw.cfg nor taken in the database; otherwise answered 409 (or 500). */
static int name_free(agw_admin_req *r, const char *name, int64_t self)
{
    if (agw_config_provider(r->cfg, agw_str_c(name))) {
        agw_admin_fail(r, 409, "name", "a provider named '%s' is declared in %s", name,
                       r->cfg->path);
        return 0;
    }
    return agw_admin_name_free(r, &providers, name, self);
}

/* Seals `secret` for p's name, type and base_url into p (hint included);
 * "" clears it. */
static int seal(agw_admin_req *r, agw_admin_provider_row *p, const char *secret)
{
    agw_buf_reset(&p->secret_enc);
    p->hint[0] = '\0';
    if (!secret || !*secret)
        return 1;
    if (!r->app->secrets) {
        agw_admin_fail(r, 400, "api_key",
                       "provider keys are stored encrypted, and secrets.key_file is not set in %s",
                       r->cfg->path);
        return 0;
    }
    if (agw_catalog_seal_secret(r->app->secrets, p->name, p->type, p->base_url,
                                agw_str_c(secret), &p->secret_enc)) {
        agw_admin_fail(r, 500, NULL, "the key could not be encrypted");
        return 0;
    }
    agw_admin_secret_hint(secret, p->hint);
    return 1;
}

/* The stored key of p in plain text, sealed for `old` (the row as it was
 * before this request), or NULL having answered. `field` names the member
 * whose change needs the key re-sealed. */
static char *unseal(agw_admin_req *r, const agw_admin_provider_row *p,
                    const agw_admin_provider_row *old, const char *field)
{
    agw_buf plain = AGW_BUF_INIT(MAX_SECRET + 1);
    agw_err e = r->app->secrets
                    ? agw_catalog_open_secret(r->app->secrets, old->name, old->type,
                                              old->base_url, agw_buf_view(&p->secret_enc), &plain)
                    : AGW_EINVAL;
    if (e) {
        agw_buf_free(&plain);
        agw_admin_fail(r, 409, field,
                       "the provider's stored key does not open with secrets.key_file for its "
                       "current name, type and base_url, so '%s' cannot change without it: set "
                       "api_key too", field);
        return NULL;
    }
    return plain.data ? agw_buf_detach(&plain, NULL) : xstrdup("");
}

/* The member whose change moves the key to another place (the associated
 * data it is sealed with), or NULL when name, type and origin are the same. */
static const char *place_changed(const agw_admin_provider_row *a, const agw_admin_provider_row *b)
{
    if (strcmp(a->name, b->name) != 0)
        return "name";
    if (strcmp(a->type, b->type) != 0)
        return "type";
    agw_buf oa = AGW_BUF_INIT(MAX_URL + 64), ob = AGW_BUF_INIT(MAX_URL + 64);
    int same = agw_config_url_origin(a->base_url, &oa, NULL) == AGW_OK &&
               agw_config_url_origin(b->base_url, &ob, NULL) == AGW_OK &&
               agw_str_eq(agw_buf_view(&oa), agw_buf_view(&ob));
    agw_buf_free(&oa);
    agw_buf_free(&ob);
    return same ? NULL : "base_url";
}

/* Reads the members common to POST and PUT into p. `creating` makes name and
 * type required. *secret gets the new key ("" = remove, NULL = unchanged).
 * 0 when it answered. `changed` collects the names of the members given. */
static int apply(agw_admin_req *r, const cJSON *body, agw_admin_provider_row *p, int creating,
                 const char **secret, cJSON *changed)
{
    const char *s;
    int is_null, rc;
    int64_t v;
    const cJSON *arr;
    *secret = NULL;
    if ((rc = agw_admin_string(r, body, "name", 1024, 0, &s, NULL)) < 0)
        return 0;
    if (rc) {
        if (!agw_config_name_ok(s)) {
            agw_admin_fail(r, 400, "name",
                           "'name' must be 1 to %d letters, digits, '.', '_' or '-'",
                           AGW_CONFIG_NAME_MAX);
            return 0;
        }
        free(p->name);
        p->name = xstrdup(s);
    } else if (creating) {
        return agw_admin_required(r, "name");
    }
    if ((rc = agw_admin_string(r, body, "type", 64, 0, &s, NULL)) < 0)
        return 0;
    if (rc) {
        if (agw_provider_type_parse(s) < 0) {
            agw_admin_fail(r, 400, "type", "'type' must be openai, anthropic, kiro or copilot");
            return 0;
        }
        free(p->type);
        p->type = xstrdup(s);
    } else if (creating) {
        return agw_admin_required(r, "type");
    }
    if ((rc = agw_admin_string(r, body, "base_url", MAX_URL, 0, &s, NULL)) < 0)
        return 0;
    if (rc) {
        const char *why;
        if ((strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) ||
            strpbrk(s, " \"<>\\^`{|}")) {
            agw_admin_fail(r, 400, "base_url",
                           "'base_url' must be an http:// or https:// URL without spaces");
            return 0;
        }
        if ((why = agw_config_base_url_refused(s, r->cfg->upstream.allow_link_local))) {
            agw_admin_fail(r, 400, "base_url", "'base_url' %s", why);
            return 0;
        }
        free(p->base_url);
        p->base_url = xstrdup(s);
        size_t n = strlen(p->base_url);
        while (n > 8 && p->base_url[n - 1] == '/')
            p->base_url[--n] = '\0';
    } else if (creating) {
        int t = agw_provider_type_parse(p->type);
        if (t == AGW_PROVIDER_OPENAI)
            p->base_url = xstrdup("https://api.openai.com/v1");
        else if (t == AGW_PROVIDER_ANTHROPIC)
            p->base_url = xstrdup("https://api.anthropic.com");
        else {
            agw_admin_fail(r, 400, "base_url", "'base_url' is required for type %s", p->type);
            return 0;
        }
    }
    if ((rc = agw_admin_string(r, body, "api_key", MAX_SECRET, 1, &s, &is_null)) < 0)
        return 0;
    if (rc)
        *secret = is_null ? "" : s;
    if ((rc = agw_admin_int(r, body, "weight", 0, 1000000, 0, &v, NULL)) < 0)
        return 0;
    if (rc)
        p->weight = v;
    else if (creating)
        p->weight = 100;
    int b;
    if ((rc = agw_admin_bool(r, body, "enabled", &b)) < 0)
        return 0;
    if (rc)
        p->enabled = b;
    else if (creating)
        p->enabled = 1;
    if ((rc = agw_admin_string_array(r, body, "models", MAX_MODELS, MAX_MODEL_NAME, 0, &arr,
                                     NULL)) < 0)
        return 0;
    if (rc) {
        free(p->models);
        char *t = cJSON_PrintUnformatted(arr);
        p->models = xstrdup(t);
        cJSON_free(t);
    } else if (creating) {
        p->models = xstrdup("[]");
    }
    if ((rc = agw_admin_string(r, body, "default_model", MAX_MODEL_NAME, 1, &s, &is_null)) < 0)
        return 0;
    if (rc) {
        free(p->default_model);
        p->default_model = is_null || !*s ? NULL : xstrdup(s);
    }
    agw_admin_changed_fields(body, fields, changed);
    return 1;
}

static int store(agw_admin_req *r, agw_admin_provider_row *p, int creating)
{
    sqlite3_stmt *st;
    const char *sql =
        creating ? "INSERT INTO providers(name, type, base_url, secret_enc, secret_hint, weight,"
                   " enabled, models, default_model, created_at, updated_at)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)"
                 : "UPDATE providers SET name = ?1, type = ?2, base_url = ?3, secret_enc = ?4,"
                   " secret_hint = ?5, weight = ?6, enabled = ?7, models = ?8, default_model = ?9,"
                   " updated_at = ?10 WHERE id = ?11";
    if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK) {
        agw_admin_db_fail(r, "storing the provider");
        return 0;
    }
    sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, p->base_url, -1, SQLITE_STATIC);
    if (p->secret_enc.len) {
        sqlite3_bind_blob(st, 4, p->secret_enc.data, (int)p->secret_enc.len, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, p->hint, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, 4);
        sqlite3_bind_null(st, 5);
    }
    sqlite3_bind_int64(st, 6, p->weight);
    sqlite3_bind_int(st, 7, p->enabled);
    sqlite3_bind_text(st, 8, p->models, -1, SQLITE_STATIC);
    agw_admin_bind_text_or_null(st, 9, p->default_model);
    sqlite3_bind_int64(st, 10, agw_wall_s());
    if (!creating)
        sqlite3_bind_int64(st, 11, p->id);
    return agw_admin_write(r, &providers, st, p->name, creating ? &p->id : NULL);
}

static void create(agw_admin_req *r)
{
    cJSON *body = agw_admin_body(r, fields), *changed = cJSON_CreateArray();
    agw_admin_provider_row p;
    prow_init(&p);
    const char *secret;
    if (!body || !agw_admin_begin(r))
        goto out;
    if (!apply(r, body, &p, 1, &secret, changed) || !name_free(r, p.name, 0) ||
        !seal(r, &p, secret) || !store(r, &p, 1))
        goto out;
    agw_admin_finish(r, &providers, p.id, "create", agw_admin_audit_detail(p.name, NULL), 201,
                     NULL);
out:
    cJSON_Delete(changed);
    cJSON_Delete(body);
    prow_free(&p);
}

static void update(agw_admin_req *r, int64_t id)
{
    cJSON *body = agw_admin_body(r, update_fields), *changed = cJSON_CreateArray();
    agw_admin_provider_row p;
    prow_init(&p);
    const char *secret, *moved;
    char *kept = NULL;
    agw_admin_provider_row old = { 0 };
    if (body && cJSON_GetObjectItemCaseSensitive(body, "github_token")) {
        int found = agw_admin_load(r, &providers, id, &p);
        if (found == 1)
            agw_admin_copilot_set_token(r, p.name, body);
        else if (found == 0)
            agw_admin_fail(r, 404, NULL, "no provider with id %lld", (long long)id);
        goto out;
    }
    if (!body || !agw_admin_begin_load(r, &providers, id, &p))
        goto out;
    old.name = xstrdup(p.name);
    old.type = xstrdup(p.type);
    old.base_url = xstrdup(p.base_url);
    if (!apply(r, body, &p, 0, &secret, changed) || !name_free(r, p.name, id))
        goto out;
    if (secret) {
        if (!seal(r, &p, secret))
            goto out;
    } else if (p.secret_enc.len && (moved = place_changed(&old, &p))) {
        /* The key is bound to name, type and origin: open it for the row as
         * it was, seal it for the row as it will be, in this transaction. */
        kept = unseal(r, &p, &old, moved);
        if (!kept || !seal(r, &p, kept))
            goto out;
    }
    if (!store(r, &p, 0))
        goto out;
    agw_admin_finish(r, &providers, id, "update", agw_admin_audit_detail(p.name, changed), 200,
                     NULL);
    changed = NULL; /* owned by the audit detail */
out:
    agw_secret_free(kept);
    free(old.name);
    free(old.type);
    free(old.base_url);
    cJSON_Delete(changed);
    cJSON_Delete(body);
    prow_free(&p);
}

/* PUT /admin/providers/:id/answers: the provider's answer settings, the
 * whole object at once (agw_config_answers_from_json reads it, as the
 * catalog will); antigw.cfg's providers are read-only. */
static void put_answers(agw_admin_req *r, agw_str id)
{
    static const char *const known[] = { "continuation", "sanitize", "sanitize_defaults",
                                         "sanitize_thinking", "sanitize_rules", NULL };
    if (strcmp(r->method, "PUT") != 0) {
        agw_admin_method_not_allowed(r, "PUT");
        return;
    }
    if (agw_str_starts(id, AGW_STR_LIT("cfg:"))) {
        agw_admin_fail(r, 409, NULL, "provider '%.*s' is declared in %s and is read-only here: "
                       "edit the file", (int)(id.len - 4 > 64 ? 64 : id.len - 4), id.ptr + 4,
                       r->cfg->path);
        return;
    }
    int64_t n = agw_admin_parse_id(id);
    cJSON *body = agw_admin_body(r, known), *changed = NULL;
    char *text = NULL;
    agw_admin_provider_row p;
    prow_init(&p);
    if (!body)
        goto out;
    text = cJSON_PrintUnformatted(body);
    agw_provider_cfg settings = { .continuation = -1, .sanitize = -1, .sanitize_defaults = 1 };
    char why[300];
    if (agw_config_answers_from_json(agw_str_c(text), &settings, why, sizeof why) != AGW_OK) {
        const char *colon = strchr(why, ':');
        char field[64];
        snprintf(field, sizeof field, "%.*s", colon ? (int)(colon - why) : 0, why);
        agw_admin_fail(r, 400, colon ? field : NULL, "'answers' %s", why);
        goto out;
    }
    agw_config_rules_free(&settings);
    if (!n) {
        agw_admin_fail(r, 404, NULL, "no provider with id '%.*s'",
                       (int)(id.len > 100 ? 100 : id.len), id.ptr);
        goto out;
    }
    if (!agw_admin_begin_load(r, &providers, n, &p))
        goto out;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "UPDATE providers SET answers = ?1, updated_at = ?2 WHERE id = ?3",
                           -1, &st, NULL) != SQLITE_OK) {
        agw_admin_db_fail(r, "storing the answer settings");
        goto out;
    }
    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, agw_wall_s());
    sqlite3_bind_int64(st, 3, n);
    if (!agw_admin_write(r, &providers, st, p.name, NULL))
        goto out;
    changed = cJSON_CreateArray();
    cJSON_AddItemToArray(changed, cJSON_CreateString("answers"));
    agw_admin_finish(r, &providers, n, "update", agw_admin_audit_detail(p.name, changed), 200,
                     NULL);
out:
    cJSON_free(text);
    cJSON_Delete(body);
    prow_free(&p);
}

/* POST /admin/providers/:id/test: one probe of the provider now, with the
 * key the gateway would use (the catalog opens it as the pool does). The
 * body is {} (strict, as every body); nothing is written, so no audit row. */
static void test_provider(agw_admin_req *r, agw_str id)
{
    static const char *const known[] = { NULL };
    if (strcmp(r->method, "POST") != 0) {
        agw_admin_method_not_allowed(r, "POST");
        return;
    }
    cJSON *body = agw_admin_body(r, known);
    if (!body)
        return;
    cJSON_Delete(body);
    char name[AGW_CONFIG_NAME_MAX + 1];
    if (agw_str_starts(id, AGW_STR_LIT("cfg:"))) {
        if (id.len - 4 > AGW_CONFIG_NAME_MAX)
            goto unknown;
        memcpy(name, id.ptr + 4, id.len - 4);
        name[id.len - 4] = '\0';
        if (!agw_config_provider(r->cfg, agw_str_c(name)))
            goto unknown;
    } else {
        int64_t n = agw_admin_parse_id(id);
        agw_admin_provider_row row;
        prow_init(&row);
        int found = n ? agw_admin_load(r, &providers, n, &row) : 0;
        if (found > 0)
            snprintf(name, sizeof name, "%s", row.name);
        prow_free(&row);
        if (found < 0)
            return;
        if (!found)
            goto unknown;
    }
    agw_catalog_holder *holder = NULL;
    char err[AGW_ERR_LEN];
    if (agw_catalog_holder_new(r->cfg, r->app->shm, r->app->secrets, r->db, &holder, err,
                               sizeof err) != AGW_OK) {
        agw_log_error("provider test: %s", err);
        agw_admin_fail(r, 503, NULL, "the provider list could not be loaded; retry shortly");
        return;
    }
    const agw_catalog *cat = agw_catalog_acquire(holder, r->db);
    const agw_provider_cfg *p = agw_config_provider(agw_catalog_config(cat), agw_str_c(name));
    if (!p) {
        /* A database provider the catalog leaves out (catalog.h says why in the log). */
        agw_admin_fail(r, 409, NULL, "provider '%s' is not in the gateway's routing table: "
                       "see antigw-admin's log", name);
    } else {
        agw_health_test_result t;
        agw_health_test(p, (long)r->cfg->defaults.health_check_timeout_seconds * 1000, &t);
        if (!t.probed) {
            agw_admin_fail(r, 409, NULL, "provider '%s' (%s) has no test call", name,
                           agw_provider_type_name(p->type));
        } else {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "provider", name);
            cJSON_AddBoolToObject(o, "ok", t.why == AGW_LB_REASON_NONE);
            cJSON_AddStringToObject(o, "reason", agw_lb_reason_name(t.why));
            if (t.status)
                cJSON_AddNumberToObject(o, "status", (double)t.status);
            else
                cJSON_AddNullToObject(o, "status");
            cJSON_AddNumberToObject(o, "latency_ms", (double)t.latency_ms);
            if (t.models >= 0)
                cJSON_AddNumberToObject(o, "models", (double)t.models);
            else
                cJSON_AddNullToObject(o, "models");
            char msg[320];
            if (t.why == AGW_LB_REASON_NONE)
                snprintf(msg, sizeof msg, "HTTP %ld", t.status);
            else if (t.why == AGW_LB_REASON_AUTH_REJECTED)
                snprintf(msg, sizeof msg, "HTTP %ld: the provider refused the gateway's key",
                         t.status);
            else if (t.status)
                snprintf(msg, sizeof msg, "HTTP %ld", t.status);
            else
                snprintf(msg, sizeof msg, "%s", t.detail[0] ? t.detail : "no answer");
            cJSON_AddStringToObject(o, "message", msg);
            agw_admin_reply(r, 200, o);
        }
    }
    agw_catalog_release(holder, cat);
    agw_catalog_holder_free(holder);
    return;
unknown:
    agw_admin_fail(r, 404, NULL, "no provider with id '%.*s'", (int)(id.len > 100 ? 100 : id.len),
                   id.ptr);
}

/* 1 when `rest` is "/<id><suffix>": *id is the id. */
static int sub_resource(agw_str rest, agw_str suffix, agw_str *id)
{
    if (rest.len <= 1 + suffix.len ||
        !agw_str_eq((agw_str){ rest.ptr + rest.len - suffix.len, suffix.len }, suffix))
        return 0;
    *id = (agw_str){ rest.ptr + 1, rest.len - 1 - suffix.len };
    return 1;
}

void agw_admin_providers(agw_admin_req *r, agw_str rest)
{
    /* rest is "" or starts with '/' */
    agw_str id;
    if (sub_resource(rest, AGW_STR_LIT("/answers"), &id)) {
        put_answers(r, id);
        return;
    }
    if (sub_resource(rest, AGW_STR_LIT("/test"), &id)) {
        test_provider(r, id);
        return;
    }
    if (!agw_str_starts(rest, AGW_STR_LIT("/cfg:"))) {
        agw_admin_resource_serve(r, &providers, rest);
        return;
    }
    id = (agw_str){ rest.ptr + 1, rest.len - 1 };
    int get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    agw_str name = { id.ptr + 4, id.len - 4 };
    const agw_provider_cfg *p = agw_config_provider(r->cfg, name);
    if (!p)
        agw_admin_fail(r, 404, NULL, "no provider with id '%.*s'",
                       (int)(id.len > 100 ? 100 : id.len), id.ptr);
    else if (get)
        agw_admin_reply(r, 200, cfg_json(p));
    else if (strcmp(r->method, "PUT") == 0) {
        /* A credential is not configuration: a file's provider takes one. */
        cJSON *body = agw_admin_body(r, update_fields);
        if (body && !agw_admin_copilot_set_token(r, p->name, body))
            agw_admin_fail(r, 409, NULL,
                           "provider '%s' is declared in %s and is read-only here: edit the "
                           "file",
                           p->name, r->cfg->path);
        cJSON_Delete(body);
    } else if (strcmp(r->method, "DELETE") == 0)
        agw_admin_fail(r, 409, NULL,
                       "provider '%s' is declared in %s and is read-only here: edit the file",
                       p->name, r->cfg->path);
    else
        agw_admin_method_not_allowed(r, "GET, PUT, DELETE");
}

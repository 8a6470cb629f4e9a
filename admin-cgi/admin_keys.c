/*
 * /admin/keys: client keys for tenant mode (tenant.h). A key is returned once,
 * in the answer that creates it; the database keeps its SHA-256 and a display
 * prefix. Limits accept `qpm`/`tpm` as short aliases of qpm_limit/tpm_limit
 * (one name or the other in a body, not both).
 */
#include "admin.h"

#include "tenant/limiter.h"
#include "tenant/tenant.h"

#include <stdio.h>
#include <stdlib.h>

#define MAX_NAME 128
#define MAX_LIST 1000
/* An allowed_models entry is a model name or a glob over model names, so it
 * has their limit; provider names have theirs. */
#define MAX_MODEL_ENTRY AGW_CONFIG_MODEL_MAX
#define MAX_PROVIDER_ENTRY AGW_CONFIG_NAME_MAX
#define MAX_METADATA (16u << 10)

static const char *const fields[] = { "name",      "enabled",   "allowed_models",
                                      "allowed_providers", "default_provider", "qpm_limit",
                                      "qpm",       "tpm_limit", "tpm",
                                      "expires_at", "metadata", "continuation", NULL };

typedef struct {
    int64_t id;
    char *name;
    char prefix[AGW_KEY_DISPLAY_LEN + 1];
    int enabled;
    char *allowed_models, *allowed_providers; /* JSON text; NULL = any, "[]" = none */
    char *default_provider;
    int64_t qpm, tpm;
    int64_t expires_at;                       /* 0 = never */
    char *metadata;                           /* JSON text; NULL = none */
    int continuation;                         /* -1 = the provider's setting */
    int64_t created_at, updated_at;
} agw_admin_key_row;

static void krow_init(void *row)
{
    memset(row, 0, sizeof(agw_admin_key_row));
}

static void krow_free(void *row)
{
    agw_admin_key_row *k = row;
    free(k->name);
    free(k->allowed_models);
    free(k->allowed_providers);
    free(k->default_provider);
    free(k->metadata);
    memset(k, 0, sizeof *k);
}

/* A row of the resource's select_sql (below). */
static int krow_read(sqlite3_stmt *st, void *row)
{
    agw_admin_key_row *k = row;
    k->id = sqlite3_column_int64(st, 0);
    k->name = agw_store_column_dup(st, 1);
    snprintf(k->prefix, sizeof k->prefix, "%s", (const char *)sqlite3_column_text(st, 2));
    k->enabled = sqlite3_column_int(st, 3) != 0;
    k->allowed_models = agw_store_column_dup(st, 4);
    k->allowed_providers = agw_store_column_dup(st, 5);
    k->default_provider = agw_store_column_dup(st, 6);
    k->qpm = sqlite3_column_int64(st, 7);
    k->tpm = sqlite3_column_int64(st, 8);
    k->expires_at = sqlite3_column_type(st, 9) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 9);
    k->metadata = agw_store_column_dup(st, 10);
    k->created_at = sqlite3_column_int64(st, 11);
    k->updated_at = sqlite3_column_int64(st, 12);
    k->continuation = sqlite3_column_type(st, 13) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 13);
    return 1;
}

static const char *krow_name(const void *row)
{
    return ((const agw_admin_key_row *)row)->name;
}

static void add_json_text(cJSON *o, const char *name, const char *text)
{
    cJSON *v = text ? cJSON_Parse(text) : NULL;
    cJSON_AddItemToObject(o, name, v ? v : cJSON_CreateNull());
}

static cJSON *row_json(const void *row)
{
    const agw_admin_key_row *k = row;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)k->id);
    cJSON_AddStringToObject(o, "name", k->name);
    cJSON_AddStringToObject(o, "key_prefix", k->prefix);
    cJSON_AddBoolToObject(o, "enabled", k->enabled);
    add_json_text(o, "allowed_models", k->allowed_models);
    add_json_text(o, "allowed_providers", k->allowed_providers);
    if (k->default_provider)
        cJSON_AddStringToObject(o, "default_provider", k->default_provider);
    else
        cJSON_AddNullToObject(o, "default_provider");
    cJSON_AddNumberToObject(o, "qpm_limit", (double)k->qpm);
    cJSON_AddNumberToObject(o, "tpm_limit", (double)k->tpm);
    if (k->expires_at)
        cJSON_AddNumberToObject(o, "expires_at", (double)k->expires_at);
    else
        cJSON_AddNullToObject(o, "expires_at");
    add_json_text(o, "metadata", k->metadata);
    if (k->continuation >= 0)
        cJSON_AddBoolToObject(o, "continuation", k->continuation);
    else
        cJSON_AddNullToObject(o, "continuation");
    cJSON_AddNumberToObject(o, "created_at", (double)k->created_at);
    cJSON_AddNumberToObject(o, "updated_at", (double)k->updated_at);
    return o;
}

static void create(agw_admin_req *r);
static void update(agw_admin_req *r, int64_t id);

static const agw_admin_resource keys = {
    .noun = "key",
    .select_sql = "SELECT id, name, key_prefix, enabled, allowed_models, allowed_providers,"
                  " default_provider, qpm_limit, tpm_limit, expires_at, metadata,"
                  " created_at, updated_at, continuation FROM api_keys WHERE id = ?",
    .ids_sql = "SELECT id FROM api_keys ORDER BY id",
    .name_sql = "SELECT 1 FROM api_keys WHERE name = ? AND id != ?",
    .delete_sql = "DELETE FROM api_keys WHERE id = ?",
    .string_ids = 0,
    .row_size = sizeof(agw_admin_key_row),
    .row_init = krow_init,
    .row_free = krow_free,
    .row_read = krow_read,
    .row_json = row_json,
    .row_name = krow_name,
    .create = create,
    .update = update,
};

/* A limit under its name or its alias; 1 given, 0 absent, -1 answered. */
static int limit(agw_admin_req *r, const cJSON *body, const char *name, const char *alias,
                 int64_t *out)
{
    int a = cJSON_GetObjectItemCaseSensitive(body, name) != NULL;
    int b = cJSON_GetObjectItemCaseSensitive(body, alias) != NULL;
    if (a && b) {
        agw_admin_fail(r, 400, alias, "give '%s' or its alias '%s', not both", name, alias);
        return -1;
    }
    return agw_admin_int(r, body, a ? name : alias, 0, AGW_LIMIT_MAX, 0, out, NULL);
}

static char *print(const cJSON *v)
{
    char *t = cJSON_PrintUnformatted(v);
    char *s = xstrdup(t);
    cJSON_free(t);
    return s;
}

/* Reads the members into k (k holds the current values on update). 0 when it answered. */
static int apply(agw_admin_req *r, const cJSON *body, agw_admin_key_row *k, int creating,
                 cJSON *changed)
{
    const char *s;
    int is_null, rc, b;
    int64_t v;
    const cJSON *arr;
    if ((rc = agw_admin_string(r, body, "name", MAX_NAME, 0, &s, NULL)) < 0)
        return 0;
    if (rc) {
        if (!*s) {
            agw_admin_fail(r, 400, "name", "'name' may not be empty");
            return 0;
        }
        free(k->name);
        k->name = xstrdup(s);
    } else if (creating) {
        return agw_admin_required(r, "name");
    }
    if ((rc = agw_admin_bool(r, body, "enabled", &b)) < 0)
        return 0;
    if (rc)
        k->enabled = b;
    else if (creating)
        k->enabled = 1;
    if ((rc = agw_admin_string_array(r, body, "allowed_models", MAX_LIST, MAX_MODEL_ENTRY, 1,
                                     &arr, &is_null)) < 0)
        return 0;
    if (rc) {
        free(k->allowed_models);
        /* null allows every model, [] none (tenant.h): both are stored as given. */
        k->allowed_models = is_null ? NULL : print(arr);
    }
    if ((rc = agw_admin_string_array(r, body, "allowed_providers", MAX_LIST, MAX_PROVIDER_ENTRY,
                                     1, &arr, &is_null)) < 0)
        return 0;
    if (rc) {
        if (!is_null)
            for (const cJSON *e = arr->child; e; e = e->next)
                if (!agw_admin_provider_exists(r, e->valuestring)) {
                    agw_admin_fail(r, 400, "allowed_providers", "no provider is named '%s'",
                                   e->valuestring);
                    return 0;
                }
        free(k->allowed_providers);
        k->allowed_providers = is_null ? NULL : print(arr);
    }
    if ((rc = agw_admin_string(r, body, "default_provider", MAX_PROVIDER_ENTRY, 1, &s,
                               &is_null)) < 0)
        return 0;
    if (rc) {
        if (!is_null && *s && !agw_admin_provider_exists(r, s)) {
            agw_admin_fail(r, 400, "default_provider", "no provider is named '%s'", s);
            return 0;
        }
        free(k->default_provider);
        k->default_provider = is_null || !*s ? NULL : xstrdup(s);
    }
    if ((rc = limit(r, body, "qpm_limit", "qpm", &v)) < 0)
        return 0;
    if (rc)
        k->qpm = v;
    if ((rc = limit(r, body, "tpm_limit", "tpm", &v)) < 0)
        return 0;
    if (rc)
        k->tpm = v;
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(body, "expires_at");
    if (exp && cJSON_IsString(exp)) {
        int64_t t = agw_time_parse(exp->valuestring);
        if (t <= 0) {
            agw_admin_fail(r, 400, "expires_at",
                           "'expires_at' must be Unix seconds, an RFC 3339 time or null");
            return 0;
        }
        k->expires_at = t;
    } else if ((rc = agw_admin_int(r, body, "expires_at", 1, INT64_C(1) << 40, 1, &v,
                                   &is_null)) < 0) {
        return 0;
    } else if (rc) {
        k->expires_at = is_null ? 0 : v;
    }
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(body, "metadata");
    if (meta) {
        if (!cJSON_IsObject(meta) && !cJSON_IsNull(meta)) {
            agw_admin_fail(r, 400, "metadata", "'metadata' must be an object or null");
            return 0;
        }
        char *text = cJSON_IsNull(meta) ? NULL : print(meta);
        if (text && strlen(text) > MAX_METADATA) {
            free(text);
            agw_admin_fail(r, 400, "metadata", "'metadata' is larger than %u bytes", MAX_METADATA);
            return 0;
        }
        free(k->metadata);
        k->metadata = text;
    }
    /* null: the provider's setting (README, "Answers: continuation") */
    const cJSON *cont = cJSON_GetObjectItemCaseSensitive(body, "continuation");
    if (cont) {
        if (!cJSON_IsBool(cont) && !cJSON_IsNull(cont)) {
            agw_admin_fail(r, 400, "continuation",
                           "'continuation' must be true, false or null (the provider's setting)");
            return 0;
        }
        k->continuation = cJSON_IsNull(cont) ? -1 : cJSON_IsTrue(cont);
    } else if (creating) {
        k->continuation = -1;
    }
    /* The key's first choice must be a provider it may use. */
    if (k->default_provider && k->allowed_providers) {
        char **list;
        size_t n;
        int ok = 0;
        if (agw_tenant_string_list(agw_str_c(k->allowed_providers), &list, &n) == AGW_OK) {
            for (size_t i = 0; i < n; i++)
                ok |= strcmp(list[i], k->default_provider) == 0;
            agw_tenant_string_list_free(list, n);
        }
        if (!ok) {
            agw_admin_fail(r, 400, "default_provider",
                           "default_provider '%s' is not in allowed_providers", k->default_provider);
            return 0;
        }
    }
    agw_admin_changed_fields(body, fields, changed);
    return 1;
}

static int store(agw_admin_req *r, agw_admin_key_row *k, const unsigned char *hash)
{
    sqlite3_stmt *st;
    const char *sql =
        hash ? "INSERT INTO api_keys(name, enabled, allowed_models, allowed_providers,"
               " default_provider, qpm_limit, tpm_limit, expires_at, metadata, created_at,"
               " updated_at, key_hash, key_prefix, continuation)"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13)"
             : "UPDATE api_keys SET name = ?1, enabled = ?2, allowed_models = ?3,"
               " allowed_providers = ?4, default_provider = ?5, qpm_limit = ?6, tpm_limit = ?7,"
               " expires_at = ?8, metadata = ?9, updated_at = ?10, continuation = ?13"
               " WHERE id = ?11";
    if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK) {
        agw_admin_db_fail(r, "storing the key");
        return 0;
    }
    sqlite3_bind_text(st, 1, k->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, k->enabled);
    agw_admin_bind_text_or_null(st, 3, k->allowed_models);
    agw_admin_bind_text_or_null(st, 4, k->allowed_providers);
    agw_admin_bind_text_or_null(st, 5, k->default_provider);
    sqlite3_bind_int64(st, 6, k->qpm);
    sqlite3_bind_int64(st, 7, k->tpm);
    if (k->expires_at)
        sqlite3_bind_int64(st, 8, k->expires_at);
    else
        sqlite3_bind_null(st, 8);
    agw_admin_bind_text_or_null(st, 9, k->metadata);
    sqlite3_bind_int64(st, 10, agw_wall_s());
    if (hash) {
        sqlite3_bind_blob(st, 11, hash, AGW_SHA256_LEN, SQLITE_STATIC);
        sqlite3_bind_text(st, 12, k->prefix, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_int64(st, 11, k->id);
    }
    if (k->continuation >= 0)
        sqlite3_bind_int(st, 13, k->continuation);
    else
        sqlite3_bind_null(st, 13);
    return agw_admin_write(r, &keys, st, k->name, hash ? &k->id : NULL);
}

static void create(agw_admin_req *r)
{
    cJSON *body = agw_admin_body(r, fields), *changed = cJSON_CreateArray();
    agw_admin_key_row k;
    krow_init(&k);
    char key[AGW_KEY_LEN + 1];
    unsigned char hash[AGW_SHA256_LEN];
    key[0] = '\0';
    if (!body || !agw_admin_begin(r) || !apply(r, body, &k, 1, changed) ||
        !agw_admin_name_free(r, &keys, k.name, 0))
        goto out;
    if (agw_tenant_key_generate(key) != AGW_OK) {
        agw_admin_fail(r, 500, NULL, "no randomness for a new key");
        goto out;
    }
    agw_tenant_key_hash(agw_str_c(key), hash);
    agw_tenant_key_display(agw_str_c(key), k.prefix);
    if (!store(r, &k, hash))
        goto out;
    agw_admin_finish(r, &keys, k.id, "create", agw_admin_audit_detail(k.name, NULL), 201, key);
out:
    memset(key, 0, sizeof key);
    cJSON_Delete(changed);
    cJSON_Delete(body);
    krow_free(&k);
}

static void update(agw_admin_req *r, int64_t id)
{
    cJSON *body = agw_admin_body(r, fields), *changed = cJSON_CreateArray();
    agw_admin_key_row k;
    krow_init(&k);
    if (!body || !agw_admin_begin_load(r, &keys, id, &k))
        goto out;
    int64_t qpm = k.qpm, tpm = k.tpm;
    if (!apply(r, body, &k, 0, changed) || !agw_admin_name_free(r, &keys, k.name, id) ||
        !store(r, &k, NULL))
        goto out;
    /* A changed limit starts with a full bucket (limiter.h). Done while this
     * transaction holds the write lock and before the generation moves, so
     * responders that load the new limit find the bucket already filled. */
    agw_limit_reset(r->app->shm, (uint64_t)id, k.qpm != qpm, k.tpm != tpm, agw_shm_now_ns());
    agw_admin_finish(r, &keys, id, "update", agw_admin_audit_detail(k.name, changed), 200, NULL);
    changed = NULL; /* owned by the audit detail */
out:
    cJSON_Delete(changed);
    cJSON_Delete(body);
    krow_free(&k);
}

void agw_admin_keys(agw_admin_req *r, agw_str rest)
{
    agw_admin_resource_serve(r, &keys, rest);
}

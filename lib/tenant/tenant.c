#include "tenant/tenant.h"
#include "core/json.h"
#include "state/store.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>

agw_err agw_tenant_key_generate(char out[AGW_KEY_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[AGW_KEY_RANDOM_BYTES];
    if (agw_random_bytes(raw, sizeof raw) != AGW_OK)
        return AGW_EIO;
    memcpy(out, AGW_KEY_PREFIX, sizeof AGW_KEY_PREFIX - 1);
    char *p = out + sizeof AGW_KEY_PREFIX - 1;
    for (size_t i = 0; i < sizeof raw; i++) {
        *p++ = hex[raw[i] >> 4];
        *p++ = hex[raw[i] & 15];
    }
    *p = '\0';
    memset(raw, 0, sizeof raw);
    return AGW_OK;
}

void agw_tenant_key_hash(agw_str key, unsigned char out[AGW_SHA256_LEN])
{
    /* A client presents the same key on each of its requests. */
    agw_sha256_recent(key, out);
}

void agw_tenant_key_display(agw_str key, char out[AGW_KEY_DISPLAY_LEN + 1])
{
    size_t n = key.len < AGW_KEY_DISPLAY_LEN ? key.len : AGW_KEY_DISPLAY_LEN;
    if (n)
        memcpy(out, key.ptr, n);
    out[n] = '\0';
}

void agw_tenant_string_list_free(char **list, size_t n)
{
    if (!list)
        return;
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

agw_err agw_tenant_string_list(agw_str json, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    agw_json_iter it;
    agw_str v;
    if (agw_json_validate(json, 4, NULL, 0) != AGW_OK || agw_json_type_of(json) != AGW_JSON_ARRAY ||
        agw_json_iter_init(&it, json) != AGW_OK)
        return AGW_EINVAL;
    size_t count = 0, cap = 0;
    char **list = NULL;
    agw_buf s = AGW_BUF_INIT(4096);
    while (agw_json_iter_next(&it, NULL, &v)) {
        agw_buf_reset(&s);
        if (agw_json_type_of(v) != AGW_JSON_STRING || agw_json_string_decode(v, &s) != AGW_OK ||
            s.len == 0 || memchr(s.data, '\0', s.len)) {
            agw_buf_free(&s);
            agw_tenant_string_list_free(list, count);
            return AGW_EINVAL;
        }
        if (count + 1 >= cap) {
            cap = cap ? cap * 2 : 8;
            list = xrealloc(list, cap * sizeof *list);
        }
        list[count++] = agw_str_dup(agw_buf_view(&s));
        list[count] = NULL;
    }
    agw_buf_free(&s);
    if (!list)
        list = xcalloc(1, sizeof *list);
    *out = list;
    *n = count;
    return AGW_OK;
}

void agw_tenant_key_free(agw_tenant_key *k)
{
    if (!k)
        return;
    free(k->name);
    free(k->default_provider);
    agw_tenant_string_list_free(k->allowed_models, k->n_allowed_models);
    agw_tenant_string_list_free(k->allowed_providers, k->n_allowed_providers);
    free(k);
}

/* An optional JSON list column: NULL means no restriction (*out NULL); "[]"
 * allows nothing (*out an empty list, *n 0). An admin who empties a list
 * revokes access; only removing it (null) widens it. */
static agw_err list_column(sqlite3_stmt *st, int col, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return AGW_OK;
    agw_str text = { (const char *)sqlite3_column_text(st, col),
                     (size_t)sqlite3_column_bytes(st, col) };
    if (!text.ptr)
        return AGW_EINVAL;
    return agw_tenant_string_list(text, out, n);
}

agw_err agw_tenant_key_load(sqlite3 *db, const unsigned char hash[AGW_SHA256_LEN],
                            agw_tenant_key **out)
{
    static const char sql[] =
        "SELECT id, name, enabled, expires_at, qpm_limit, tpm_limit, allowed_models,"
        " allowed_providers, default_provider, continuation FROM api_keys WHERE key_hash = ?";
    *out = NULL;
    sqlite3_stmt *st;
    /* Prepared per call: the catalog caches each answer until the next
     * generation, so this runs about once per key and change. */
    if (sqlite3_prepare_v2(db, sql, sizeof sql - 1, &st, NULL) != SQLITE_OK) {
        agw_log_error("key lookup: %s", sqlite3_errmsg(db));
        return AGW_EIO;
    }
    sqlite3_bind_blob(st, 1, hash, AGW_SHA256_LEN, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    agw_err e = AGW_OK;
    if (rc == SQLITE_DONE) {
        e = AGW_ENOTFOUND;
    } else if (rc != SQLITE_ROW) {
        agw_log_error("key lookup: %s", sqlite3_errmsg(db));
        e = AGW_EIO;
    } else {
        agw_tenant_key *k = xcalloc(1, sizeof *k);
        k->id = sqlite3_column_int64(st, 0);
        k->name = xstrdup((const char *)sqlite3_column_text(st, 1));
        k->enabled = sqlite3_column_int(st, 2) != 0;
        k->expires_at = sqlite3_column_type(st, 3) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 3);
        k->limits.qpm = sqlite3_column_int64(st, 4);
        k->limits.tpm = sqlite3_column_int64(st, 5);
        k->default_provider = agw_store_column_dup(st, 8);
        k->continuation = sqlite3_column_type(st, 9) == SQLITE_NULL ? -1
                                                                   : sqlite3_column_int(st, 9);
        if (list_column(st, 6, &k->allowed_models, &k->n_allowed_models) ||
            list_column(st, 7, &k->allowed_providers, &k->n_allowed_providers)) {
            /* Only antigw-admin writes these columns, and it writes valid
             * lists; a broken one must not widen what the key may do. */
            agw_log_error("key %lld: unreadable allowed_models/allowed_providers: disabling it",
                          (long long)k->id);
            k->enabled = 0;
        }
        *out = k;
    }
    sqlite3_finalize(st);
    return e;
}

agw_tenant_key_state agw_tenant_key_check(const agw_tenant_key *k, int64_t now)
{
    if (!k->enabled)
        return AGW_TENANT_KEY_DISABLED;
    if (k->expires_at > 0 && now >= k->expires_at)
        return AGW_TENANT_KEY_EXPIRED;
    return AGW_TENANT_KEY_OK;
}

int agw_tenant_model_allowed(const agw_tenant_key *k, agw_str model)
{
    if (!k->allowed_models)
        return 1;
    char name[512];
    if (model.len == 0 || model.len >= sizeof name || memchr(model.ptr, '\0', model.len))
        return 0;
    memcpy(name, model.ptr, model.len);
    name[model.len] = '\0';
    for (size_t i = 0; i < k->n_allowed_models; i++)
        if (strcmp(k->allowed_models[i], name) == 0 || fnmatch(k->allowed_models[i], name, 0) == 0)
            return 1;
    return 0;
}

int agw_tenant_provider_allowed(const agw_tenant_key *k, const char *name)
{
    if (!k->allowed_providers)
        return 1;
    for (size_t i = 0; i < k->n_allowed_providers; i++)
        if (strcmp(k->allowed_providers[i], name) == 0)
            return 1;
    return 0;
}

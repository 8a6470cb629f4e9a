/* Unit tests for lib/tenant: key generation and hashing, the stored lists,
 * loading a key record by hash, and what a key allows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "state/store.h"
#include "tenant/tenant.h"

static void test_key_generate(void **state)
{
    (void)state;
    char a[AGW_KEY_LEN + 1], b[AGW_KEY_LEN + 1];
    assert_int_equal(agw_tenant_key_generate(a), AGW_OK);
    assert_int_equal(agw_tenant_key_generate(b), AGW_OK);
    assert_int_equal(strlen(a), AGW_KEY_LEN);
    assert_int_equal(AGW_KEY_LEN, 4 + 64); /* 256 random bits, well over the 128 required */
    assert_memory_equal(a, "agw-", 4);
    for (size_t i = 4; i < AGW_KEY_LEN; i++)
        assert_non_null(strchr("0123456789abcdef", a[i]));
    assert_string_not_equal(a, b);
    char shown[AGW_KEY_DISPLAY_LEN + 1];
    agw_tenant_key_display(agw_str_c(a), shown);
    assert_int_equal(strlen(shown), AGW_KEY_DISPLAY_LEN);
    assert_memory_equal(shown, a, AGW_KEY_DISPLAY_LEN);
    agw_tenant_key_display(AGW_STR_LIT("abc"), shown);
    assert_string_equal(shown, "abc");
}

static void test_key_hash_is_sha256(void **state)
{
    (void)state;
    unsigned char h[AGW_SHA256_LEN], want[AGW_SHA256_LEN];
    agw_tenant_key_hash(AGW_STR_LIT("abc"), h);
    agw_sha256(AGW_STR_LIT("abc"), want);
    assert_memory_equal(h, want, sizeof h);
    assert_int_equal(h[0], 0xba); /* FIPS 180-2: ba7816bf... */
}

static void test_string_list(void **state)
{
    (void)state;
    char **l;
    size_t n;
    assert_int_equal(agw_tenant_string_list(AGW_STR_LIT("[\"gpt-*\", \"claude-\\u0033\"]"), &l, &n),
                     AGW_OK);
    assert_int_equal(n, 2);
    assert_string_equal(l[0], "gpt-*");
    assert_string_equal(l[1], "claude-3");
    assert_null(l[2]);
    agw_tenant_string_list_free(l, n);
    assert_int_equal(agw_tenant_string_list(AGW_STR_LIT("[]"), &l, &n), AGW_OK);
    assert_int_equal(n, 0);
    assert_null(l[0]);
    agw_tenant_string_list_free(l, n);
    static const char *const bad[] = { "{}", "\"x\"", "[1]", "[\"\"]", "[[\"x\"]]", "[\"a\\u0000b\"]",
                                       "[\"a\",]", "" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        l = (char **)1;
        assert_int_equal(agw_tenant_string_list(agw_str_c(bad[i]), &l, &n), AGW_EINVAL);
        assert_null(l);
    }
    agw_tenant_string_list_free(NULL, 0);
}

static void test_permissions(void **state)
{
    (void)state;
    agw_tenant_key k;
    memset(&k, 0, sizeof k);
    k.enabled = 1;
    assert_int_equal(agw_tenant_key_check(&k, 100), AGW_TENANT_KEY_OK);
    k.expires_at = 100;
    assert_int_equal(agw_tenant_key_check(&k, 99), AGW_TENANT_KEY_OK);
    assert_int_equal(agw_tenant_key_check(&k, 100), AGW_TENANT_KEY_EXPIRED);
    k.enabled = 0;
    assert_int_equal(agw_tenant_key_check(&k, 0), AGW_TENANT_KEY_DISABLED);
    /* No lists: everything. */
    assert_int_equal(agw_tenant_model_allowed(&k, AGW_STR_LIT("anything")), 1);
    assert_int_equal(agw_tenant_provider_allowed(&k, "any"), 1);
    char *models[] = { "gpt-4o", "claude-*", NULL };
    char *providers[] = { "work", NULL };
    k.allowed_models = models;
    k.n_allowed_models = 2;
    k.allowed_providers = providers;
    k.n_allowed_providers = 1;
    assert_int_equal(agw_tenant_model_allowed(&k, AGW_STR_LIT("gpt-4o")), 1);
    assert_int_equal(agw_tenant_model_allowed(&k, AGW_STR_LIT("gpt-4o-mini")), 0);
    assert_int_equal(agw_tenant_model_allowed(&k, AGW_STR_LIT("claude-3-haiku")), 1);
    assert_int_equal(agw_tenant_model_allowed(&k, AGW_STR_LIT("")), 0);
    assert_int_equal(agw_tenant_model_allowed(&k, (agw_str){ "gpt-4o\0x", 8 }), 0);
    assert_int_equal(agw_tenant_provider_allowed(&k, "work"), 1);
    assert_int_equal(agw_tenant_provider_allowed(&k, "work2"), 0);
    /* Empty lists allow nothing. */
    char *none[] = { NULL };
    k.allowed_models = none;
    k.n_allowed_models = 0;
    k.allowed_providers = none;
    k.n_allowed_providers = 0;
    assert_int_equal(agw_tenant_model_allowed(&k, AGW_STR_LIT("gpt-4o")), 0);
    assert_int_equal(agw_tenant_provider_allowed(&k, "work"), 0);
}

static void test_key_load(void **state)
{
    (void)state;
    char dir[] = "/tmp/agw-tenant-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/t.db", dir);
    agw_store *s;
    assert_int_equal(agw_store_open(path, &s, err, sizeof err), AGW_OK);
    sqlite3 *db = agw_store_db(s);
    unsigned char h1[32], h2[32], h3[32], h4[32];
    agw_tenant_key_hash(AGW_STR_LIT("agw-one"), h1);
    agw_tenant_key_hash(AGW_STR_LIT("agw-two"), h2);
    agw_tenant_key_hash(AGW_STR_LIT("agw-three"), h3);
    agw_tenant_key_hash(AGW_STR_LIT("agw-nobody"), h4);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO api_keys(name, key_hash, key_prefix, enabled,"
                                        " allowed_models, allowed_providers, default_provider,"
                                        " qpm_limit, tpm_limit, expires_at, created_at, updated_at)"
                                        " VALUES (?, ?, 'agw-', ?, ?, ?, ?, ?, ?, ?, 0, 0)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    struct {
        const char *name;
        unsigned char *hash;
        int enabled;
        const char *models, *providers, *def;
        int qpm, tpm, expires;
    } rows[] = {
        { "one", h1, 1, "[\"gpt-*\"]", "[\"p1\",\"p2\"]", "p2", 60, 1000, 0 },
        { "two", h2, 0, NULL, "[]", NULL, 0, 0, 12345 },
        { "three", h3, 1, "not json", NULL, NULL, 0, 0, 0 },
    };
    for (size_t i = 0; i < 3; i++) {
        sqlite3_bind_text(st, 1, rows[i].name, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, rows[i].hash, 32, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, rows[i].enabled);
        if (rows[i].models)
            sqlite3_bind_text(st, 4, rows[i].models, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 4);
        if (rows[i].providers)
            sqlite3_bind_text(st, 5, rows[i].providers, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 5);
        if (rows[i].def)
            sqlite3_bind_text(st, 6, rows[i].def, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 6);
        sqlite3_bind_int(st, 7, rows[i].qpm);
        sqlite3_bind_int(st, 8, rows[i].tpm);
        if (rows[i].expires)
            sqlite3_bind_int(st, 9, rows[i].expires);
        else
            sqlite3_bind_null(st, 9);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);

    agw_tenant_key *k;
    assert_int_equal(agw_tenant_key_load(db, h1, &k), AGW_OK);
    assert_int_equal(k->id, 1);
    assert_string_equal(k->name, "one");
    assert_int_equal(k->enabled, 1);
    assert_int_equal(k->limits.qpm, 60);
    assert_int_equal(k->limits.tpm, 1000);
    assert_int_equal(k->n_allowed_models, 1);
    assert_string_equal(k->allowed_models[0], "gpt-*");
    assert_int_equal(k->n_allowed_providers, 2);
    assert_string_equal(k->default_provider, "p2");
    assert_int_equal(k->expires_at, 0);
    agw_tenant_key_free(k);

    assert_int_equal(agw_tenant_key_load(db, h2, &k), AGW_OK);
    assert_int_equal(k->enabled, 0);
    assert_null(k->allowed_models); /* NULL allows every model */
    assert_int_equal(agw_tenant_model_allowed(k, AGW_STR_LIT("gpt-4o")), 1);
    /* "[]" allows no provider: emptying a list revokes, it never widens. */
    assert_non_null(k->allowed_providers);
    assert_int_equal(k->n_allowed_providers, 0);
    assert_int_equal(agw_tenant_provider_allowed(k, "p1"), 0);
    assert_null(k->default_provider);
    assert_int_equal(k->expires_at, 12345);
    agw_tenant_key_free(k);

    /* A broken list must not widen what a key may do: the key is disabled. */
    assert_int_equal(agw_tenant_key_load(db, h3, &k), AGW_OK);
    assert_int_equal(k->enabled, 0);
    agw_tenant_key_free(k);

    k = (agw_tenant_key *)1;
    assert_int_equal(agw_tenant_key_load(db, h4, &k), AGW_ENOTFOUND);
    assert_null(k);
    agw_tenant_key_free(NULL);
    agw_store_close(s);
    char f[160];
    snprintf(f, sizeof f, "%s-wal", path);
    unlink(f);
    snprintf(f, sizeof f, "%s-shm", path);
    unlink(f);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_generate),
        cmocka_unit_test(test_key_hash_is_sha256),
        cmocka_unit_test(test_string_list),
        cmocka_unit_test(test_permissions),
        cmocka_unit_test(test_key_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

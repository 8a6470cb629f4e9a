/* Unit tests for lib/models: the /v1/models catalog in both shapes (literal
 * names only, each id once, prefixed ids after the raw ones, static lists
 * for Kiro/Copilot providers, filters), the discovered lists cached in the
 * database (filtered by the provider's globs, literal names as fallback),
 * one model by id, and agw_models_known. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The module itself, so the tests reach its file-local functions. */
#include "route/models.c"
#include "state/store.h"

#include <unistd.h>

static char *m_a[] = { "gpt-4o-mini", "gpt-*", "shared" };
static char *m_b[] = { "claude-x", "shared", "claude-*" };
static char *m_k[] = { "kiro-extra" };

static agw_provider_cfg provs[3];
static agw_config cfg;

static int setup(void **state)
{
    (void)state;
    memset(provs, 0, sizeof provs);
    provs[0] = (agw_provider_cfg){ .name = "po", .type = AGW_PROVIDER_OPENAI, .enabled = 1,
                                   .models = m_a, .n_models = 3 };
    provs[1] = (agw_provider_cfg){ .name = "pa", .type = AGW_PROVIDER_ANTHROPIC, .enabled = 1,
                                   .models = m_b, .n_models = 3 };
    provs[2] = (agw_provider_cfg){ .name = "pk", .type = AGW_PROVIDER_KIRO, .enabled = 0,
                                   .models = m_k, .n_models = 1 };
    memset(&cfg, 0, sizeof cfg);
    cfg.providers = provs;
    cfg.n_providers = 3;
    return 0;
}

static char *render_with(sqlite3 *db, const agw_models_filter *f, int anthropic)
{
    agw_buf b = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    assert_int_equal(agw_models_render(&cfg, db, f, anthropic, 1700000000, &b), AGW_OK);
    size_t n;
    return agw_buf_detach(&b, &n);
}

static char *render(const agw_models_filter *f, int anthropic)
{
    return render_with(NULL, f, anthropic);
}

static void openai_shape(void **state)
{
    (void)state;
    char *s = render(NULL, 0);
    const char *want =
        "{\"object\":\"list\",\"data\":["
        "{\"id\":\"gpt-4o-mini\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"po\"},"
        "{\"id\":\"shared\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"po\"},"
        "{\"id\":\"claude-x\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"pa\"},"
        "{\"id\":\"openai/gpt-4o-mini\",\"object\":\"model\",\"created\":1700000000,"
        "\"owned_by\":\"po\"},"
        "{\"id\":\"openai/shared\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"po\"},"
        "{\"id\":\"anthropic/claude-x\",\"object\":\"model\",\"created\":1700000000,"
        "\"owned_by\":\"pa\"},"
        "{\"id\":\"anthropic/shared\",\"object\":\"model\",\"created\":1700000000,"
        "\"owned_by\":\"pa\"}]}";
    assert_string_equal(s, want);
    free(s);
}

static void anthropic_shape_and_static_lists(void **state)
{
    (void)state;
    provs[2].enabled = 1;
    char *s = render(NULL, 1);
    assert_true(strncmp(s, "{\"data\":[{\"type\":\"model\",\"id\":\"gpt-4o-mini\",\"display_name\":"
                           "\"gpt-4o-mini\",\"created_at\":\"2023-11-14T22:13:20Z\"}",
                        91) == 0);
    assert_non_null(strstr(s, "\"id\":\"kiro-extra\""));
    assert_non_null(strstr(s, "\"id\":\"claude-sonnet-4\""));      /* Kiro's static list */
    assert_non_null(strstr(s, "\"id\":\"kiro/claude-sonnet-4\""));
    assert_non_null(strstr(s, "\"id\":\"kiro/kiro-extra\""));
    assert_null(strstr(s, "copilot/"));                            /* no Copilot provider */
    assert_null(strstr(s, "*"));
    assert_non_null(strstr(s, "],\"has_more\":false,\"first_id\":\"gpt-4o-mini\",\"last_id\":"
                              "\"kiro/"));
    free(s);
}

static int only_openai(const agw_provider_cfg *p, void *ud)
{
    (void)ud;
    return p->type == AGW_PROVIDER_OPENAI;
}

static int not_shared(agw_str id, void *ud)
{
    (void)ud;
    return !agw_str_eq(id, AGW_STR_LIT("shared"));
}

static void filters_and_empty(void **state)
{
    (void)state;
    agw_models_filter f = { only_openai, not_shared, NULL };
    char *s = render(&f, 0);
    assert_string_equal(s, "{\"object\":\"list\",\"data\":["
                           "{\"id\":\"gpt-4o-mini\",\"object\":\"model\",\"created\":1700000000,"
                           "\"owned_by\":\"po\"},"
                           "{\"id\":\"openai/gpt-4o-mini\",\"object\":\"model\",\"created\":"
                           "1700000000,\"owned_by\":\"po\"}]}");
    free(s);
    cfg.n_providers = 0;
    s = render(NULL, 1);
    assert_string_equal(s, "{\"data\":[],\"has_more\":false,\"first_id\":null,\"last_id\":null}");
    free(s);
}

static void known_models(void **state)
{
    (void)state;
    assert_true(agw_models_known(&cfg, AGW_STR_LIT("gpt-4o-mini")));
    assert_true(agw_models_known(&cfg, AGW_STR_LIT("kiro-extra"))); /* disabled: still known */
    assert_true(agw_models_known(&cfg, AGW_STR_LIT("gpt-4.1")));    /* Copilot's static list */
    assert_false(agw_models_known(&cfg, AGW_STR_LIT("gpt-*")));     /* a pattern, not a model */
    assert_false(agw_models_known(&cfg, AGW_STR_LIT("gpt-4o-minix")));
    assert_false(agw_models_known(&cfg, AGW_STR_LIT("")));
    assert_null(static_models(AGW_PROVIDER_OPENAI)[0]);
    assert_non_null(static_models(AGW_PROVIDER_COPILOT)[0]);
}

/* A fresh database in a temporary directory (removed by db_close). */
static agw_store *db_open(char dir[64])
{
    strcpy(dir, "/tmp/agw-models-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[128], err[AGW_ERR_LEN];
    snprintf(path, sizeof path, "%s/t.db", dir);
    agw_store *st = NULL;
    assert_int_equal(agw_store_open(path, &st, err, sizeof err), AGW_OK);
    return st;
}

static void db_close(agw_store *st, const char *dir)
{
    agw_store_close(st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void discovered_lists_replace_literals(void **state)
{
    (void)state;
    char dir[64];
    agw_store *st = db_open(dir);
    sqlite3 *db = agw_store_db(st);
    provs[0].base_url = "http://o/v1";
    provs[1].base_url = "http://a";
    /* Nothing fetched yet: the literal names. */
    char *s = render_with(db, NULL, 0);
    assert_non_null(strstr(s, "\"id\":\"gpt-4o-mini\""));
    free(s);
    /* po fetched: its globs admit gpt-4o and gpt-4o-mini, not dall-e. */
    agw_provider_models l = AGW_PROVIDER_MODELS_INIT;
    agw_provider_models_add(&l, AGW_STR_LIT("gpt-4o"));
    agw_provider_models_add(&l, AGW_STR_LIT("dall-e-3"));
    agw_provider_models_add(&l, AGW_STR_LIT("gpt-4o-mini"));
    assert_int_equal(agw_models_cache_put(db, &provs[0], &l, 1), AGW_OK);
    agw_provider_models_free(&l);
    s = render_with(db, NULL, 0);
    assert_non_null(strstr(s, "{\"object\":\"list\",\"data\":[{\"id\":\"gpt-4o\",\"object\""));
    assert_non_null(strstr(s, "\"id\":\"openai/gpt-4o\""));
    assert_null(strstr(s, "dall-e"));
    /* a declared name the list lacks still follows the list's ids */
    assert_non_null(strstr(s, "{\"id\":\"gpt-4o\",\"object\":\"model\",\"created\":1700000000,"
                              "\"owned_by\":\"po\"},{\"id\":\"gpt-4o-mini\",\"object\":\"model\","
                              "\"created\":1700000000,\"owned_by\":\"po\"},{\"id\":\"shared\""));
    assert_non_null(strstr(s, "\"id\":\"claude-x\""));        /* pa: literal fallback */
    free(s);
    /* A provider without entries admits everything it lists. */
    provs[1].n_models = 0;
    agw_provider_models_add(&l, AGW_STR_LIT("claude-opus-4"));
    agw_provider_models_add(&l, AGW_STR_LIT("text-thing"));
    assert_int_equal(agw_models_cache_put(db, &provs[1], &l, 1), AGW_OK);
    agw_provider_models_free(&l);
    s = render_with(db, NULL, 1);
    assert_non_null(strstr(s, "\"id\":\"anthropic/text-thing\""));
    free(s);
    /* Pointed elsewhere: the old list is ignored until the next fetch. */
    provs[1].base_url = "http://elsewhere";
    s = render_with(db, NULL, 0);
    assert_null(strstr(s, "text-thing"));
    free(s);
    /* A failed fetch forgets the list: literal names again. */
    assert_int_equal(agw_models_cache_put(db, &provs[0], NULL, 2), AGW_OK);
    s = render_with(db, NULL, 0);
    assert_non_null(strstr(s, "\"id\":\"shared\""));
    assert_null(strstr(s, "\"gpt-4o\""));
    free(s);
    db_close(st, dir);
}

static void one_model_by_id(void **state)
{
    (void)state;
    char dir[64];
    agw_store *st = db_open(dir);
    sqlite3 *db = agw_store_db(st);
    provs[0].base_url = "http://o/v1";
    agw_provider_models l = AGW_PROVIDER_MODELS_INIT;
    agw_provider_models_add(&l, AGW_STR_LIT("gpt-4o"));
    assert_int_equal(agw_models_cache_put(db, &provs[0], &l, 1), AGW_OK);
    agw_provider_models_free(&l);
    agw_buf b = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    assert_int_equal(agw_models_render_one(&cfg, db, NULL, 0, 1700000000,
                                           AGW_STR_LIT("openai/gpt-4o"), &b), AGW_OK);
    assert_string_equal(agw_buf_view(&b).ptr, "{\"id\":\"openai/gpt-4o\",\"object\":\"model\","
                                              "\"created\":1700000000,\"owned_by\":\"po\"}");
    agw_buf_reset(&b);
    assert_int_equal(agw_models_render_one(&cfg, db, NULL, 1, 1700000000,
                                           AGW_STR_LIT("claude-x"), &b), AGW_OK);
    assert_string_equal(agw_buf_view(&b).ptr,
                        "{\"type\":\"model\",\"id\":\"claude-x\",\"display_name\":\"claude-x\","
                        "\"created_at\":\"2023-11-14T22:13:20Z\"}");
    agw_buf_reset(&b);
    static const char *const unknown[] = { "gpt-5", "openai/", "openai", "anthropic/gpt-4o",
                                           "gpt-*", "" };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        assert_int_equal(agw_models_render_one(&cfg, db, NULL, 0, 1, agw_str_c(unknown[i]), &b),
                         AGW_ENOTFOUND);
    assert_int_equal(b.len, 0);
    agw_buf_free(&b);
    db_close(st, dir);
}

static void prune_forgets_removed_providers(void **state)
{
    (void)state;
    char dir[64];
    agw_store *st = db_open(dir);
    sqlite3 *db = agw_store_db(st);
    agw_provider_cfg gone = { .name = "gone", .base_url = "http://g" };
    agw_provider_models l = AGW_PROVIDER_MODELS_INIT;
    agw_provider_models_add(&l, AGW_STR_LIT("m"));
    assert_int_equal(agw_models_cache_put(db, &gone, &l, 1), AGW_OK);
    assert_int_equal(agw_models_cache_put(db, &provs[0], &l, 1), AGW_OK);
    agw_provider_models_free(&l);
    assert_int_equal(agw_models_cache_prune(db, &cfg), AGW_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT group_concat(provider) FROM provider_models",
                                        -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "po");
    sqlite3_finalize(q);
    db_close(st, dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(openai_shape, setup),
        cmocka_unit_test_setup(anthropic_shape_and_static_lists, setup),
        cmocka_unit_test_setup(filters_and_empty, setup),
        cmocka_unit_test_setup(known_models, setup),
        cmocka_unit_test_setup(discovered_lists_replace_literals, setup),
        cmocka_unit_test_setup(one_model_by_id, setup),
        cmocka_unit_test_setup(prune_forgets_removed_providers, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

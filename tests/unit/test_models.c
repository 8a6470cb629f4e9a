/* Unit tests for lib/models: the /v1/models catalog in both shapes (literal
 * names only, each id once, prefixed ids after the raw ones, static lists
 * for Kiro/Copilot providers, filters) and agw_models_known. */
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

static char *render(const agw_models_filter *f, int anthropic)
{
    agw_buf b = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    assert_int_equal(agw_models_render(&cfg, f, anthropic, 1700000000, &b), AGW_OK);
    size_t n;
    return agw_buf_detach(&b, &n);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(openai_shape, setup),
        cmocka_unit_test_setup(anthropic_shape_and_static_lists, setup),
        cmocka_unit_test_setup(filters_and_empty, setup),
        cmocka_unit_test_setup(known_models, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

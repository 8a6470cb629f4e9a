/* Unit tests for lib/route: prefixes by type and by provider name, model
 * lists with globs, protocol preference, disabled providers and the
 * defaults.provider fallback. Configs are built with agw_config_parse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The module itself, so the tests reach its file-local functions. */
#include "route/route.c"

static agw_config *parse(const char *text)
{
    agw_config *cfg = NULL;
    char err[AGW_ERR_LEN] = "";
    if (agw_config_parse(text, "/tmp", &cfg, err, sizeof err) != AGW_OK)
        fail_msg("config: %s", err);
    return cfg;
}

static const char base_cfg[] =
    "providers = (\n"
    "  { name = \"oa\"; type = \"openai\"; models = [ \"gpt-4o\", \"gpt-*\", \"o[0-9]*\", \"shared\" ]; },\n"
    "  { name = \"an\"; type = \"anthropic\"; models = [ \"claude-*\", \"shared\" ]; },\n"
    "  { name = \"llama\"; type = \"openai\"; base_url = \"http://127.0.0.1:1/v1\";\n"
    "    models = [ \"meta-llama/*\" ]; },\n"
    "  { name = \"off\"; type = \"openai\"; enabled = false; models = [ \"only-off\", \"gpt-4o\" ]; },\n"
    "  { name = \"oa2\"; type = \"openai\"; models = [ \"gpt-4o\", \"oa2-only\" ]; },\n"
    "  { name = \"work-openai\"; type = \"openai\"; models = [ ]; }\n"
    ");\n";

static int setup(void **state)
{
    *state = parse(base_cfg);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    agw_config_free(*state);
    return 0;
}

/* Resolves and checks provider name and the exact upstream model bytes. */
static void expect_route(const agw_config *cfg, agw_str model, agw_provider_type prefer,
                         const char *want_provider, const char *want_model)
{
    agw_route_set set;
    agw_err e = agw_route_candidates(cfg, model, prefer, NULL, &set);
    if (e != AGW_OK)
        fail_msg("model %.*s: %s", (int)model.len, model.ptr, agw_strerror(e));
    agw_route r = set.r[0];
    assert_non_null(r.provider);
    assert_string_equal(r.provider->name, want_provider);
    assert_int_equal(r.model.len, strlen(want_model));
    assert_memory_equal(r.model.ptr, want_model, r.model.len);
    /* The route borrows the caller's bytes: the model is a tail of the input. */
    assert_true(r.model.ptr >= model.ptr && r.model.ptr + r.model.len == model.ptr + model.len);
}

static void expect_notfound(const agw_config *cfg, agw_str model, agw_provider_type prefer)
{
    agw_route_set set;
    assert_int_equal(agw_route_candidates(cfg, model, prefer, NULL, &set), AGW_ENOTFOUND);
}

static void expect_candidates(const agw_config *cfg, agw_str model, agw_provider_type prefer,
                              const agw_route_limits *lim, const char *want);

#define OA AGW_PROVIDER_OPENAI
#define AN AGW_PROVIDER_ANTHROPIC

static void test_prefix_by_type(void **state)
{
    const agw_config *cfg = *state;
    expect_route(cfg, AGW_STR_LIT("openai/gpt-4o"), AN, "oa", "gpt-4o");
    expect_route(cfg, AGW_STR_LIT("anthropic/claude-3-haiku"), OA, "an", "claude-3-haiku");
    /* Among providers of that type, the one that serves the model wins... */
    expect_route(cfg, AGW_STR_LIT("openai/oa2-only"), OA, "oa2", "oa2-only");
    expect_route(cfg, AGW_STR_LIT("openai/meta-llama/x"), OA, "llama", "meta-llama/x");
    /* ...and when none lists it, the first enabled one of the type takes it. */
    expect_route(cfg, AGW_STR_LIT("openai/some-new-model"), AN, "oa", "some-new-model");
    expect_route(cfg, AGW_STR_LIT("anthropic/gpt-4o"), OA, "an", "gpt-4o");
    /* The type prefix overrides the protocol preference. */
    expect_route(cfg, AGW_STR_LIT("openai/shared"), AN, "oa", "shared");
    expect_route(cfg, AGW_STR_LIT("anthropic/shared"), OA, "an", "shared");
    /* A type with no configured provider. */
    expect_notfound(cfg, AGW_STR_LIT("kiro/anything"), OA);
    expect_notfound(cfg, AGW_STR_LIT("copilot/gpt-4o"), OA);
}

static void test_prefix_by_type_skips_disabled(void **state)
{
    (void)state;
    agw_config *cfg = parse("providers = (\n"
                            " { name = \"a1\"; type = \"anthropic\"; enabled = false; models = [\"c\"]; },\n"
                            " { name = \"o1\"; type = \"openai\"; }\n"
                            ");\n");
    expect_notfound(cfg, AGW_STR_LIT("anthropic/c"), AN);
    expect_route(cfg, AGW_STR_LIT("openai/c"), AN, "o1", "c");
    agw_config_free(cfg);
}

static void test_prefix_by_name(void **state)
{
    const agw_config *cfg = *state;
    expect_route(cfg, AGW_STR_LIT("oa2/gpt-4o"), OA, "oa2", "gpt-4o");
    expect_route(cfg, AGW_STR_LIT("an/claude-x"), OA, "an", "claude-x");
    /* The named provider takes the model even when its list does not have it. */
    expect_route(cfg, AGW_STR_LIT("work-openai/gpt-4o"), OA, "work-openai", "gpt-4o");
    expect_route(cfg, AGW_STR_LIT("llama/gpt-4o"), AN, "llama", "gpt-4o");
    /* A disabled provider is not routable, even by name. */
    expect_notfound(cfg, AGW_STR_LIT("off/only-off"), OA);
    expect_notfound(cfg, AGW_STR_LIT("off/gpt-4o"), OA);
}

static void test_unknown_prefix_is_part_of_model(void **state)
{
    const agw_config *cfg = *state;
    expect_route(cfg, AGW_STR_LIT("meta-llama/Llama-3-70b"), OA, "llama", "meta-llama/Llama-3-70b");
    /* fnmatch without FNM_PATHNAME: '*' crosses further slashes too. */
    expect_route(cfg, AGW_STR_LIT("meta-llama/a/b"), AN, "llama", "meta-llama/a/b");
    /* An unknown prefix is not stripped, so "foo/gpt-4o" does not match gpt-*. */
    expect_notfound(cfg, AGW_STR_LIT("foo/gpt-4o"), OA);
    /* Prefixes are case-sensitive. */
    expect_notfound(cfg, AGW_STR_LIT("OpenAI/zzz"), OA);
    expect_notfound(cfg, AGW_STR_LIT("/gpt-4o"), OA);
}

static void test_globs(void **state)
{
    const agw_config *cfg = *state;
    expect_route(cfg, AGW_STR_LIT("gpt-4o"), AN, "oa", "gpt-4o");
    expect_route(cfg, AGW_STR_LIT("gpt-4o-mini"), AN, "oa", "gpt-4o-mini");
    expect_route(cfg, AGW_STR_LIT("gpt-"), AN, "oa", "gpt-");
    expect_route(cfg, AGW_STR_LIT("o1"), AN, "oa", "o1");
    expect_route(cfg, AGW_STR_LIT("o3-mini"), AN, "oa", "o3-mini");
    expect_route(cfg, AGW_STR_LIT("claude-sonnet-4-20250514"), OA, "an", "claude-sonnet-4-20250514");
    expect_notfound(cfg, AGW_STR_LIT("o-mini"), OA);   /* o[0-9]* needs a digit */
    expect_notfound(cfg, AGW_STR_LIT("gpt"), OA);      /* gpt-* needs the dash */
    expect_notfound(cfg, AGW_STR_LIT("GPT-4o"), OA);   /* case-sensitive */
    expect_notfound(cfg, AGW_STR_LIT("xgpt-4o"), OA);  /* anchored at the start */
    expect_notfound(cfg, AGW_STR_LIT("claude"), OA);
}

static void test_prefer_type(void **state)
{
    const agw_config *cfg = *state;
    /* Both an OpenAI and an Anthropic provider serve "shared": the client's
     * protocol decides. */
    expect_route(cfg, AGW_STR_LIT("shared"), AN, "an", "shared");
    expect_route(cfg, AGW_STR_LIT("shared"), OA, "oa", "shared");
    /* A preference for a type that does not serve it falls through to the others. */
    expect_route(cfg, AGW_STR_LIT("shared"), AGW_PROVIDER_KIRO, "oa", "shared");
    expect_route(cfg, AGW_STR_LIT("claude-x"), OA, "an", "claude-x");
}

static void test_prefer_keeps_config_order(void **state)
{
    (void)state;
    /* Among preferred providers the config order decides; an earlier provider
     * of the other type does not win. */
    agw_config *cfg = parse("providers = (\n"
                            " { name = \"a1\"; type = \"anthropic\"; models = [\"m\"]; },\n"
                            " { name = \"o1\"; type = \"openai\"; models = [\"x\"]; },\n"
                            " { name = \"o2\"; type = \"openai\"; models = [\"m*\"]; },\n"
                            " { name = \"o3\"; type = \"openai\"; models = [\"m\"]; }\n"
                            ");\n");
    expect_route(cfg, AGW_STR_LIT("m"), OA, "o2", "m");
    expect_route(cfg, AGW_STR_LIT("m"), AN, "a1", "m");
    agw_config_free(cfg);
}

static void test_disabled_skipped(void **state)
{
    const agw_config *cfg = *state;
    expect_notfound(cfg, AGW_STR_LIT("only-off"), OA);
    /* gpt-4o is also on the disabled provider: an enabled one must be chosen. */
    expect_route(cfg, AGW_STR_LIT("gpt-4o"), OA, "oa", "gpt-4o");
}

static void test_default_provider_fallback(void **state)
{
    (void)state;
    agw_config *cfg = parse("defaults = { provider = \"fallback\"; };\n"
                            "providers = (\n"
                            " { name = \"oa\"; type = \"openai\"; models = [\"gpt-*\"]; },\n"
                            " { name = \"fallback\"; type = \"anthropic\"; models = [\"claude-*\"]; }\n"
                            ");\n");
    /* Nobody lists it: the default provider takes it, the name unchanged. */
    expect_route(cfg, AGW_STR_LIT("mystery-model"), OA, "fallback", "mystery-model");
    expect_route(cfg, AGW_STR_LIT("unknown/prefix-model"), OA, "fallback", "unknown/prefix-model");
    /* A listed model still goes to its provider. */
    expect_route(cfg, AGW_STR_LIT("gpt-4o"), AN, "oa", "gpt-4o");
    /* The fallback does not apply to an explicit prefix that found nothing. */
    expect_notfound(cfg, AGW_STR_LIT("openai/"), OA);
    expect_notfound(cfg, AGW_STR_LIT("kiro/x"), OA);
    agw_config_free(cfg);

    /* A disabled default provider is no fallback. */
    cfg = parse("defaults = { provider = \"fallback\"; };\n"
                "providers = (\n"
                " { name = \"fallback\"; type = \"anthropic\"; enabled = false; }\n"
                ");\n");
    expect_notfound(cfg, AGW_STR_LIT("mystery-model"), AN);
    agw_config_free(cfg);
}

static void test_not_found(void **state)
{
    const agw_config *cfg = *state;
    expect_notfound(cfg, AGW_STR_LIT("mystery-model"), OA);
    /* An empty model is no name to look up: it takes the built-in
     * defaults.model, routed like any name (and see
     * test_candidates_empty_model_and_normalize). */
    expect_candidates(cfg, AGW_STR_LIT(""), OA, NULL, "an:claude-sonnet-4-20250514");
    expect_candidates(cfg, (agw_str){ NULL, 0 }, OA, NULL, "an:claude-sonnet-4-20250514");
    /* A prefix with nothing after it is no model. */
    expect_notfound(cfg, AGW_STR_LIT("openai/"), OA);
    expect_notfound(cfg, AGW_STR_LIT("anthropic/"), AN);
    expect_notfound(cfg, AGW_STR_LIT("oa2/"), OA);

    agw_config *empty = parse("");
    expect_notfound(empty, AGW_STR_LIT("gpt-4o"), OA);
    expect_notfound(empty, AGW_STR_LIT("openai/gpt-4o"), OA);
    agw_config_free(empty);
}

static void test_embedded_nul_never_matches(void **state)
{
    const agw_config *cfg = *state;
    /* If a C-string copy stopped at the NUL, these would match gpt-4o,
     * "claude-*" and the meta-llama glob. */
    expect_notfound(cfg, AGW_STR_LIT("gpt-4o\0evil"), OA);
    expect_notfound(cfg, AGW_STR_LIT("claude-\0"), AN);
    expect_notfound(cfg, AGW_STR_LIT("\0"), OA);
    expect_notfound(cfg, AGW_STR_LIT("meta-llama/x\0y"), OA);

    const agw_provider_cfg *oa = agw_config_provider(cfg, AGW_STR_LIT("oa"));
    assert_non_null(oa);
    assert_int_equal(provider_serves(oa, AGW_STR_LIT("gpt-4o\0")), 0);
    assert_int_equal(provider_serves(oa, AGW_STR_LIT("gpt-4o")), 1);
}

static void test_provider_serves(void **state)
{
    const agw_config *cfg = *state;
    const agw_provider_cfg *oa = agw_config_provider(cfg, AGW_STR_LIT("oa"));
    const agw_provider_cfg *wo = agw_config_provider(cfg, AGW_STR_LIT("work-openai"));
    assert_int_equal(provider_serves(oa, AGW_STR_LIT("gpt-4o")), 1);
    assert_int_equal(provider_serves(oa, AGW_STR_LIT("gpt-x")), 1);
    assert_int_equal(provider_serves(oa, AGW_STR_LIT("o9")), 1);
    assert_int_equal(provider_serves(oa, AGW_STR_LIT("claude-3")), 0);
    assert_int_equal(provider_serves(oa, AGW_STR_LIT("")), 0);
    assert_int_equal(provider_serves(wo, AGW_STR_LIT("gpt-4o")), 0);
    /* A slice of a longer string is matched by its own length. */
    assert_int_equal(provider_serves(oa, (agw_str){ "gpt-4o-and-more", 6 }), 1);
    assert_int_equal(provider_serves(oa, (agw_str){ "shared!", 6 }), 1);
    assert_int_equal(provider_serves(oa, (agw_str){ "shared!", 5 }), 0);

    /* Long names: 511 bytes still fit the matcher, 512 never match. */
    char name[600];
    memset(name, 'x', sizeof name);
    memcpy(name, "gpt-", 4);
    assert_int_equal(provider_serves(oa, (agw_str){ name, 511 }), 1);
    assert_int_equal(provider_serves(oa, (agw_str){ name, 512 }), 0);
}

static void test_literal_entries_are_not_globs(void **state)
{
    (void)state;
    /* '.' and '+' are ordinary characters in a literal entry. */
    agw_config *cfg = parse("providers = ( { name = \"p\"; type = \"openai\";\n"
                            " models = [ \"a.b\", \"x+y\" ]; } );\n");
    const agw_provider_cfg *p = &cfg->providers[0];
    assert_int_equal(provider_serves(p, AGW_STR_LIT("a.b")), 1);
    assert_int_equal(provider_serves(p, AGW_STR_LIT("aXb")), 0);
    assert_int_equal(provider_serves(p, AGW_STR_LIT("x+y")), 1);
    assert_int_equal(provider_serves(p, AGW_STR_LIT("xxy")), 0);
    agw_config_free(cfg);
}

static void test_is_pattern(void **state)
{
    (void)state;
    assert_int_equal(agw_route_is_pattern("gpt-*"), 1);
    assert_int_equal(agw_route_is_pattern("o[0-9]*"), 1);
    assert_int_equal(agw_route_is_pattern("gpt-4?"), 1);
    assert_int_equal(agw_route_is_pattern("[abc]"), 1);
    assert_int_equal(agw_route_is_pattern("*"), 1);
    assert_int_equal(agw_route_is_pattern("gpt-4o"), 0);
    assert_int_equal(agw_route_is_pattern("meta-llama/Llama-3.1-8B"), 0);
    assert_int_equal(agw_route_is_pattern("a]b"), 0);
    assert_int_equal(agw_route_is_pattern(""), 0);
}

/* A client key's restrictions (tenant mode): its default provider first for
 * an unprefixed model, and only the providers it may use at any step. */
static int only_named(const agw_provider_cfg *p, const void *ud)
{
    for (const char *const *n = ud; *n; n++)
        if (strcmp(p->name, *n) == 0)
            return 1;
    return 0;
}

/* The first candidate under `lim`, as agw_route_candidates orders them. */
static agw_err first_candidate(const agw_config *cfg, agw_str model, agw_provider_type prefer,
                               const agw_route_limits *lim, agw_route *out)
{
    agw_route_set set;
    agw_err e = agw_route_candidates(cfg, model, prefer, lim, &set);
    if (e == AGW_OK)
        *out = set.r[0];
    return e;
}

static void test_route_limits(void **state)
{
    const agw_config *cfg = *state;
    agw_route r = { NULL, { NULL, 0 } };
    agw_route_limits first = { "an", NULL, NULL };
    /* gpt-4o is on oa's list, but the key prefers an. */
    assert_int_equal(first_candidate(cfg, AGW_STR_LIT("gpt-4o"), AGW_PROVIDER_OPENAI,
                                     &first, &r),
                     AGW_OK);
    assert_string_equal(r.provider->name, "an");
    /* An explicit prefix still decides. */
    assert_int_equal(first_candidate(cfg, AGW_STR_LIT("oa2/x"), AGW_PROVIDER_OPENAI,
                                     &first, &r),
                     AGW_OK);
    assert_string_equal(r.provider->name, "oa2");
    /* A disabled or unknown first choice is skipped. */
    agw_route_limits off = { "off", NULL, NULL }, nobody = { "nobody", NULL, NULL };
    assert_int_equal(first_candidate(cfg, AGW_STR_LIT("gpt-4o"), AGW_PROVIDER_OPENAI,
                                     &off, &r),
                     AGW_OK);
    assert_string_equal(r.provider->name, "oa");
    assert_int_equal(first_candidate(cfg, AGW_STR_LIT("gpt-4o"), AGW_PROVIDER_OPENAI,
                                     &nobody, &r),
                     AGW_OK);
    assert_string_equal(r.provider->name, "oa");
    /* Allowed providers: gpt-4o goes to oa2, the next provider that lists it. */
    static const char *const oa2[] = { "oa2", "an", NULL };
    agw_route_limits allowed = { NULL, only_named, oa2 };
    assert_int_equal(first_candidate(cfg, AGW_STR_LIT("gpt-4o"), AGW_PROVIDER_OPENAI,
                                     &allowed, &r),
                     AGW_OK);
    assert_string_equal(r.provider->name, "oa2");
    assert_int_equal(first_candidate(cfg, AGW_STR_LIT("o3-mini"), AGW_PROVIDER_OPENAI,
                                     &allowed, &r),
                     AGW_ENOTFOUND);
    assert_int_equal(first_candidate(cfg, AGW_STR_LIT("oa/gpt-4o"), AGW_PROVIDER_OPENAI,
                                     &allowed, &r),
                     AGW_ENOTFOUND);
    assert_int_equal(first_candidate(cfg, AGW_STR_LIT("openai/gpt-4o"),
                                     AGW_PROVIDER_OPENAI, &allowed, &r),
                     AGW_OK);
    assert_string_equal(r.provider->name, "oa2");
    /* A first choice the key may not use is not taken. */
    agw_route_limits both = { "oa", only_named, oa2 };
    assert_int_equal(first_candidate(cfg, AGW_STR_LIT("gpt-4o"), AGW_PROVIDER_OPENAI,
                                     &both, &r),
                     AGW_OK);
    assert_string_equal(r.provider->name, "oa2");
    /* NULL limits are plain routing. */
    assert_int_equal(first_candidate(cfg, AGW_STR_LIT("gpt-4o"), AGW_PROVIDER_OPENAI,
                                               NULL, &r),
                     AGW_OK);
    assert_string_equal(r.provider->name, "oa");
}

/* ---- agw_route_candidates: every provider that may serve a model ---- */

/* The candidates' "provider:model" joined by spaces. */
static void expect_candidates(const agw_config *cfg, agw_str model, agw_provider_type prefer,
                              const agw_route_limits *lim, const char *want)
{
    agw_route_set set;
    char got[512] = "";
    if (agw_route_candidates(cfg, model, prefer, lim, &set) == AGW_OK)
        for (size_t i = 0; i < set.n; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s:%.*s", i ? " " : "",
                     set.r[i].provider->name, (int)set.r[i].model.len, set.r[i].model.ptr);
    assert_string_equal(got, want);
}

static void test_candidates(void **state)
{
    const agw_config *cfg = *state;
    /* every lister, the preferred type first */
    expect_candidates(cfg, AGW_STR_LIT("gpt-4o"), OA, NULL, "oa:gpt-4o oa2:gpt-4o");
    expect_candidates(cfg, AGW_STR_LIT("shared"), AN, NULL, "an:shared oa:shared");
    expect_candidates(cfg, AGW_STR_LIT("openai/gpt-4o"), AN, NULL, "oa:gpt-4o oa2:gpt-4o");
    expect_candidates(cfg, AGW_STR_LIT("oa2/gpt-4o"), OA, NULL, "oa2:gpt-4o");
    expect_candidates(cfg, AGW_STR_LIT("meta-llama/x"), OA, NULL, "llama:meta-llama/x");
    expect_candidates(cfg, AGW_STR_LIT("mystery"), OA, NULL, "");
    expect_candidates(cfg, AGW_STR_LIT("openai/"), OA, NULL, "");
    /* the key's default provider comes before the model lists */
    agw_route_limits lim = { "oa2", NULL, NULL };
    expect_candidates(cfg, AGW_STR_LIT("claude-x"), OA, &lim, "oa2:claude-x");
    expect_candidates(cfg, AGW_STR_LIT("openai/gpt-4o"), OA, &lim, "oa:gpt-4o oa2:gpt-4o");
}

static void test_candidates_empty_model_and_normalize(void **state)
{
    (void)state;
    agw_config *cfg = parse("defaults = { provider = \"k\"; model = \"claude-x-20250101\"; };\n"
                            "providers = (\n"
                            "  { name = \"oa\"; type = \"openai\"; models = [ \"gpt-*\" ];\n"
                            "    default_model = \"gpt-4o-mini\"; },\n"
                            "  { name = \"k\"; type = \"kiro\"; base_url = \"http://127.0.0.1:1\";\n"
                            "    models = [ \"claude-*\" ]; },\n"
                            "  { name = \"an\"; type = \"anthropic\"; models = [ \"claude-*\" ]; }\n"
                            ");\n");
    /* empty: defaults.provider (no default_model) -> defaults.model, routed,
     * the date suffix dropped for kiro only */
    expect_candidates(cfg, AGW_STR_LIT(""), AN, NULL, "an:claude-x-20250101 k:claude-x");
    /* the key's default provider has a default model */
    agw_route_limits lim = { "oa", NULL, NULL };
    expect_candidates(cfg, AGW_STR_LIT(""), AN, &lim, "oa:gpt-4o-mini");
    expect_candidates(cfg, AGW_STR_LIT("kiro/claude-sonnet-4-20250514"), OA, NULL,
                      "k:claude-sonnet-4");
    const agw_provider_cfg *k = agw_config_provider(cfg, AGW_STR_LIT("k"));
    agw_str n = normalize(k, AGW_STR_LIT("claude-3-5-haiku-2024102"));
    assert_int_equal(n.len, strlen("claude-3-5-haiku-2024102"));
    n = normalize(k, AGW_STR_LIT("gpt-4o-20240513"));
    assert_int_equal(n.len, strlen("gpt-4o-20240513"));
    agw_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prefix_by_type, setup, teardown),
        cmocka_unit_test(test_prefix_by_type_skips_disabled),
        cmocka_unit_test_setup_teardown(test_prefix_by_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_prefix_is_part_of_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_globs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefer_type, setup, teardown),
        cmocka_unit_test(test_prefer_keeps_config_order),
        cmocka_unit_test_setup_teardown(test_disabled_skipped, setup, teardown),
        cmocka_unit_test(test_default_provider_fallback),
        cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embedded_nul_never_matches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_serves, setup, teardown),
        cmocka_unit_test(test_literal_entries_are_not_globs),
        cmocka_unit_test(test_is_pattern),
        cmocka_unit_test_setup_teardown(test_route_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_candidates, setup, teardown),
        cmocka_unit_test(test_candidates_empty_model_and_normalize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

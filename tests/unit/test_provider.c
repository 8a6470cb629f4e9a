/* Unit tests for lib/provider: the interface table of each provider type, the
 * upstream URL for each type and operation, and the credential/version
 * headers that go with it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "provider/provider.h"

static const char cfg_text[] =
    "providers = (\n"
    "  { name = \"oa\"; type = \"openai\"; base_url = \"https://oa.example/v1/\"; api_key = \"sk-oa\"; },\n"
    "  { name = \"an\"; type = \"anthropic\"; api_key = \"sk-ant\"; },\n"
    "  { name = \"oa-nokey\"; type = \"openai\"; base_url = \"http://127.0.0.1:8080/v1\"; },\n"
    "  { name = \"an-nokey\"; type = \"anthropic\"; base_url = \"http://127.0.0.1:9/proxy\"; api_key = \"\"; },\n"
    "  { name = \"ki\"; type = \"kiro\"; base_url = \"https://kiro.example\"; api_key = \"k\"; },\n"
    "  { name = \"cp\"; type = \"copilot\"; base_url = \"https://cp.example\"; api_key = \"c\"; }\n"
    ");\n";

static int setup(void **state)
{
    agw_config *cfg = NULL;
    char err[AGW_ERR_LEN];
    if (agw_config_parse(cfg_text, "/tmp", &cfg, err, sizeof err) != AGW_OK)
        return -1;
    *state = cfg;
    return 0;
}

static int teardown(void **state)
{
    agw_config_free(*state);
    return 0;
}

static const agw_provider_cfg *prov(void **state, const char *name)
{
    const agw_provider_cfg *p = agw_config_provider(*state, agw_str_c(name));
    assert_non_null(p);
    return p;
}

/* Prepares and checks the URL and the exact, ordered header list (NULL-ended). */
static void expect_call(const agw_provider_cfg *p, agw_provider_op op, const agw_client_hints *h,
                        const char *url, const char *const *headers)
{
    agw_provider_call c;
    memset(&c, 0x55, sizeof c);
    assert_int_equal(agw_provider_prepare(p, op, h, &c), AGW_OK);
    assert_string_equal(c.url, url);
    size_t i = 0;
    for (; headers[i]; i++) {
        if (!c.headers[i])
            fail_msg("header %lu missing, want \"%s\"", (unsigned long)i, headers[i]);
        assert_string_equal(c.headers[i], headers[i]);
    }
    if (c.headers[i])
        fail_msg("unexpected extra header \"%s\"", c.headers[i]);
    agw_provider_call_free(&c);
    assert_null(c.url);
    assert_null(c.headers[0]);
}

static void expect_einval(const agw_provider_cfg *p, agw_provider_op op, const agw_client_hints *h)
{
    agw_provider_call c;
    memset(&c, 0x55, sizeof c);
    assert_int_equal(agw_provider_prepare(p, op, h, &c), AGW_EINVAL);
    /* Nothing allocated, and the struct is safe to free. */
    assert_null(c.url);
    for (int i = 0; i <= AGW_PROVIDER_MAX_HEADERS; i++)
        assert_null(c.headers[i]);
    agw_provider_call_free(&c);
}

static void test_openai(void **state)
{
    const agw_provider_cfg *p = prov(state, "oa");
    expect_call(p, AGW_OP_CHAT, NULL, "https://oa.example/v1/chat/completions",
                (const char *const[]){ "Authorization: Bearer sk-oa", "Content-Type: application/json",
                                       NULL });
    /* A GET: no body, so no Content-Type. */
    expect_call(p, AGW_OP_MODELS, NULL, "https://oa.example/v1/models",
                (const char *const[]){ "Authorization: Bearer sk-oa", NULL });
    /* Anthropic hints mean nothing to an OpenAI upstream. */
    agw_client_hints h = { .anthropic_version = "2024-01-01", .anthropic_beta = "tools-2024-04-04" };
    expect_call(p, AGW_OP_CHAT, &h, "https://oa.example/v1/chat/completions",
                (const char *const[]){ "Authorization: Bearer sk-oa", "Content-Type: application/json",
                                       NULL });
    expect_einval(p, AGW_OP_MESSAGES, NULL);
    expect_einval(p, AGW_OP_COUNT_TOKENS, NULL);
}

static void test_anthropic_default_version(void **state)
{
    const agw_provider_cfg *p = prov(state, "an");
    expect_call(p, AGW_OP_MESSAGES, NULL, "https://api.anthropic.com/v1/messages",
                (const char *const[]){ "x-api-key: sk-ant", "anthropic-version: 2023-06-01",
                                       "Content-Type: application/json", NULL });
    /* Hints present but empty: still the default version and no beta header. */
    agw_client_hints empty = { .anthropic_version = "", .anthropic_beta = "" };
    expect_call(p, AGW_OP_MESSAGES, &empty, "https://api.anthropic.com/v1/messages",
                (const char *const[]){ "x-api-key: sk-ant", "anthropic-version: 2023-06-01",
                                       "Content-Type: application/json", NULL });
    agw_client_hints none = { .anthropic_version = NULL, .anthropic_beta = NULL };
    expect_call(p, AGW_OP_COUNT_TOKENS, &none, "https://api.anthropic.com/v1/messages/count_tokens",
                (const char *const[]){ "x-api-key: sk-ant", "anthropic-version: 2023-06-01",
                                       "Content-Type: application/json", NULL });
    expect_call(p, AGW_OP_MODELS, NULL, "https://api.anthropic.com/v1/models",
                (const char *const[]){ "x-api-key: sk-ant", "anthropic-version: 2023-06-01", NULL });
    expect_einval(p, AGW_OP_CHAT, NULL);
}

static void test_anthropic_client_hints(void **state)
{
    const agw_provider_cfg *p = prov(state, "an");
    agw_client_hints h = { .anthropic_version = "2024-10-22", .anthropic_beta = "prompt-caching-2024-07-31,tools-2024-04-04" };
    expect_call(p, AGW_OP_MESSAGES, &h, "https://api.anthropic.com/v1/messages",
                (const char *const[]){ "x-api-key: sk-ant", "anthropic-version: 2024-10-22",
                                       "anthropic-beta: prompt-caching-2024-07-31,tools-2024-04-04",
                                       "Content-Type: application/json", NULL });
    /* A tab is allowed inside a header value. */
    agw_client_hints tab = { .anthropic_version = NULL, .anthropic_beta = "a\tb" };
    expect_call(p, AGW_OP_MODELS, &tab, "https://api.anthropic.com/v1/models",
                (const char *const[]){ "x-api-key: sk-ant", "anthropic-version: 2023-06-01",
                                       "anthropic-beta: a\tb", NULL });
}

static void test_hint_injection_refused(void **state)
{
    const agw_provider_cfg *p = prov(state, "an");
    static const char *const bad[] = { "2023-06-01\r\nX-Evil: 1", "2023-06-01\n", "\r", "a\x01z",
                                       "x\x7f", "x\x1b[0m" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        agw_client_hints v = { .anthropic_version = bad[i], .anthropic_beta = NULL };
        expect_einval(p, AGW_OP_MESSAGES, &v);
        agw_client_hints b = { .anthropic_version = "2023-06-01", .anthropic_beta = bad[i] };
        expect_einval(p, AGW_OP_MESSAGES, &b);
        expect_einval(p, AGW_OP_MODELS, &b);
    }
}

static void test_no_key_no_credential_header(void **state)
{
    expect_call(prov(state, "oa-nokey"), AGW_OP_CHAT, NULL, "http://127.0.0.1:8080/v1/chat/completions",
                (const char *const[]){ "Content-Type: application/json", NULL });
    expect_call(prov(state, "oa-nokey"), AGW_OP_MODELS, NULL, "http://127.0.0.1:8080/v1/models",
                (const char *const[]){ NULL });
    expect_call(prov(state, "an-nokey"), AGW_OP_MESSAGES, NULL, "http://127.0.0.1:9/proxy/v1/messages",
                (const char *const[]){ "anthropic-version: 2023-06-01", "Content-Type: application/json",
                                       NULL });
}

static void test_types_without_ops(void **state)
{
    /* An operation a type has no endpoint for is EINVAL, not a half-built
     * call: Copilot counts no tokens (the gateway estimates them). */
    expect_einval(prov(state, "cp"), AGW_OP_COUNT_TOKENS, NULL);
    const agw_provider_ops *cp = agw_provider_ops_of(AGW_PROVIDER_COPILOT);
    assert_non_null(cp);
    assert_string_equal(cp->path(AGW_OP_CHAT), "/chat/completions");
    assert_string_equal(cp->path(AGW_OP_MESSAGES), "/v1/messages");
    assert_string_equal(cp->path(AGW_OP_EMBEDDINGS), "/embeddings");
    assert_string_equal(cp->path(AGW_OP_MODELS), "/models");
}

static void test_interface_table(void **state)
{
    (void)state;
    const agw_provider_ops *oa = agw_provider_ops_of(AGW_PROVIDER_OPENAI);
    const agw_provider_ops *an = agw_provider_ops_of(AGW_PROVIDER_ANTHROPIC);
    assert_non_null(oa);
    assert_non_null(an);
    assert_int_equal(oa->type, AGW_PROVIDER_OPENAI);
    assert_int_equal(an->type, AGW_PROVIDER_ANTHROPIC);
    assert_int_equal(oa->proto, AGW_PROTO_OPENAI);
    assert_int_equal(an->proto, AGW_PROTO_ANTHROPIC);
    assert_int_equal(oa->model_op, AGW_OP_CHAT);
    assert_int_equal(an->model_op, AGW_OP_MESSAGES);
    /* Each type's model operation has a path; the other protocol's has none. */
    assert_non_null(oa->path(oa->model_op));
    assert_null(oa->path(AGW_OP_MESSAGES));
    assert_non_null(an->path(an->model_op));
    assert_null(an->path(AGW_OP_CHAT));
    assert_null(an->path(AGW_OP_EMBEDDINGS));
    assert_non_null(oa->path(oa->probe_op));
    assert_non_null(an->path(an->probe_op));
    /* Probes: a server that answers is up unless it refuses the key (401,
     * 403: a revoked key must take the provider out); 5xx or nothing is down. */
    const agw_provider_ops *both[] = { oa, an };
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(both[i]->probe_verdict(200), AGW_PROBE_PASSED);
        assert_int_equal(both[i]->probe_verdict(404), AGW_PROBE_PASSED);
        assert_int_equal(both[i]->probe_verdict(429), AGW_PROBE_PASSED);
        assert_int_equal(both[i]->probe_verdict(401), AGW_PROBE_AUTH_REJECTED);
        assert_int_equal(both[i]->probe_verdict(403), AGW_PROBE_AUTH_REJECTED);
        assert_int_equal(both[i]->probe_verdict(500), AGW_PROBE_FAILED);
        assert_int_equal(both[i]->probe_verdict(529), AGW_PROBE_FAILED);
        assert_int_equal(both[i]->probe_verdict(0), AGW_PROBE_FAILED);
        assert_non_null(both[i]->parse_models);
    }
    /* Every type can be called; values past the enum have no interface. */
    assert_int_equal(agw_provider_ops_of(AGW_PROVIDER_KIRO)->type, AGW_PROVIDER_KIRO);
    assert_int_equal(agw_provider_ops_of(AGW_PROVIDER_COPILOT)->type, AGW_PROVIDER_COPILOT);
    assert_null(agw_provider_ops_of(AGW_PROVIDER_TYPE_COUNT));
    assert_null(agw_provider_ops_of((agw_provider_type)-1));
}

static void test_callable(void **state)
{
    assert_true(agw_provider_callable(prov(state, "oa")));
    assert_true(agw_provider_callable(prov(state, "an")));
    assert_true(agw_provider_callable(prov(state, "ki")));
    assert_true(agw_provider_callable(prov(state, "cp")));
}

static void test_header_limit(void **state)
{
    (void)state;
    agw_provider_call c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < AGW_PROVIDER_MAX_HEADERS; i++)
        assert_int_equal(agw_provider_call_header(&c, "X-N: ", "v"), AGW_OK);
    assert_int_equal(agw_provider_call_header(&c, "X-N: ", "v"), AGW_ETOOBIG);
    assert_int_equal(c.n_headers, AGW_PROVIDER_MAX_HEADERS);
    assert_string_equal(c.headers[AGW_PROVIDER_MAX_HEADERS - 1], "X-N: v");
    assert_null(c.headers[AGW_PROVIDER_MAX_HEADERS]);
    agw_provider_call_free(&c);
    assert_int_equal(c.n_headers, 0);
}

static void test_model_list_pages(void **state)
{
    (void)state;
    const agw_provider_ops *oa = agw_provider_ops_of(AGW_PROVIDER_OPENAI);
    const agw_provider_ops *an = agw_provider_ops_of(AGW_PROVIDER_ANTHROPIC);
    agw_provider_models l = AGW_PROVIDER_MODELS_INIT;
    assert_int_equal(oa->parse_models(AGW_STR_LIT("{\"object\":\"list\",\"data\":[{\"id\":"
                                                  "\"gpt-4o\"},{\"id\":7},{\"id\":\"o\\u0033\"}]}"),
                                      &l),
                     AGW_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.ids[1], "o3");
    assert_null(l.next);
    assert_int_equal(oa->parse_models(AGW_STR_LIT("{\"data\":{}}"), &l), AGW_EINVAL);
    assert_int_equal(oa->parse_models(AGW_STR_LIT("<html>"), &l), AGW_EINVAL);
    agw_provider_models_free(&l);
    assert_int_equal(an->parse_models(AGW_STR_LIT("{\"data\":[{\"id\":\"c1\"}],\"has_more\":true,"
                                                  "\"last_id\":\"c1\"}"),
                                      &l),
                     AGW_OK);
    assert_string_equal(l.next, "c1");
    assert_int_equal(an->parse_models(AGW_STR_LIT("{\"data\":[],\"has_more\":false}"), &l),
                     AGW_OK);
    assert_null(l.next);
    /* more pages and no cursor: unreadable */
    assert_int_equal(an->parse_models(AGW_STR_LIT("{\"data\":[],\"has_more\":true}"), &l),
                     AGW_EINVAL);
    agw_provider_models_free(&l);
    /* the page URLs */
    agw_provider_cfg p;
    memset(&p, 0, sizeof p);
    p.name = (char *)"a";
    p.type = AGW_PROVIDER_ANTHROPIC;
    p.base_url = (char *)"https://api.anthropic.com";
    agw_provider_call c;
    assert_int_equal(agw_provider_prepare_models(&p, NULL, &c), AGW_OK);
    assert_string_equal(c.url, "https://api.anthropic.com/v1/models?limit=1000");
    agw_provider_call_free(&c);
    assert_int_equal(agw_provider_prepare_models(&p, "m&x=1 é", &c), AGW_OK);
    assert_string_equal(c.url, "https://api.anthropic.com/v1/models?limit=1000&after_id="
                               "m%26x%3D1%20%C3%A9");
    agw_provider_call_free(&c);
    p.type = AGW_PROVIDER_OPENAI;
    p.base_url = (char *)"https://api.openai.com/v1";
    assert_int_equal(agw_provider_prepare_models(&p, "ignored", &c), AGW_OK);
    assert_string_equal(c.url, "https://api.openai.com/v1/models");
    agw_provider_call_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_openai, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anthropic_default_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anthropic_client_hints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hint_injection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_key_no_credential_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_types_without_ops, setup, teardown),
        cmocka_unit_test(test_interface_table),
        cmocka_unit_test_setup_teardown(test_callable, setup, teardown),
        cmocka_unit_test(test_header_limit),
        cmocka_unit_test(test_model_list_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

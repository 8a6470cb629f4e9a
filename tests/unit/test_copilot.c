/* Unit tests for the Copilot provider type (lib/provider/type_copilot.c):
 * X-Initiator and the vision flag from the body going upstream, the native
 * Messages headers, the plan of a call before the account's model list is
 * known, and the repair of unpaired tool calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "provider/provider.h"

static const agw_provider_ops *cp(void)
{
    const agw_provider_ops *ops = agw_provider_ops_of(AGW_PROVIDER_COPILOT);
    assert_non_null(ops);
    return ops;
}

/* The value of header `name` ("X-Initiator: ") in c, or NULL. */
static const char *header(const agw_provider_call *c, const char *name)
{
    for (size_t i = 0; i < c->n_headers; i++)
        if (strncmp(c->headers[i], name, strlen(name)) == 0)
            return c->headers[i] + strlen(name);
    return NULL;
}

/* The headers extra_headers adds for `body` in `proto` on `op`. */
static void headers_for(agw_provider_op op, agw_proto proto, const char *body,
                        agw_provider_call *c)
{
    memset(c, 0, sizeof *c);
    agw_client_hints h = { .body = agw_str_c(body), .body_proto = proto };
    assert_int_equal(cp()->extra_headers(op, &h, c), AGW_OK);
}

static void expect_initiator(agw_provider_op op, agw_proto proto, const char *body,
                             const char *want)
{
    agw_provider_call c;
    headers_for(op, proto, body, &c);
    const char *got = header(&c, "X-Initiator: ");
    assert_non_null(got);
    assert_string_equal(got, want);
    agw_provider_call_free(&c);
}

static void test_initiator_openai(void **state)
{
    (void)state;
    expect_initiator(AGW_OP_CHAT, AGW_PROTO_OPENAI,
                     "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "user");
    expect_initiator(AGW_OP_CHAT, AGW_PROTO_OPENAI,
                     "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
                     "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}]}",
                     "user");
    /* A tool result, an assistant prefill, no messages: the agent's steps. */
    expect_initiator(AGW_OP_CHAT, AGW_PROTO_OPENAI,
                     "{\"messages\":[{\"role\":\"user\",\"content\":\"go\"},"
                     "{\"role\":\"assistant\",\"tool_calls\":[]},"
                     "{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"r\"}]}",
                     "agent");
    expect_initiator(AGW_OP_CHAT, AGW_PROTO_OPENAI,
                     "{\"messages\":[{\"role\":\"user\",\"content\":\"go\"},"
                     "{\"role\":\"assistant\",\"content\":\"Sure\"}]}",
                     "agent");
    expect_initiator(AGW_OP_CHAT, AGW_PROTO_OPENAI, "{\"messages\":[]}", "agent");
}

static void test_initiator_anthropic(void **state)
{
    (void)state;
    expect_initiator(AGW_OP_MESSAGES, AGW_PROTO_ANTHROPIC,
                     "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                     "\"text\":\"hi\"}]}]}",
                     "user");
    expect_initiator(AGW_OP_MESSAGES, AGW_PROTO_ANTHROPIC,
                     "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
                     "\"tool_use_id\":\"t\",\"content\":\"r\"},{\"type\":\"text\",\"text\":\"and\"}]}]}",
                     "agent");
    /* The Anthropic body converted for /chat/completions: its tool message. */
    expect_initiator(AGW_OP_CHAT, AGW_PROTO_OPENAI,
                     "{\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"t\",\"content\":\"r\"}]}",
                     "agent");
}

static void test_vision_and_versions(void **state)
{
    (void)state;
    agw_provider_call c;
    headers_for(AGW_OP_CHAT, AGW_PROTO_OPENAI,
                "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                "\"image_url\":{\"url\":\"data:image/png;base64,AA==\"}}]}]}",
                &c);
    assert_string_equal(header(&c, "copilot-vision-request: "), "true");
    assert_null(header(&c, "anthropic-version: "));
    agw_provider_call_free(&c);
    /* An image inside an earlier tool result counts too. */
    headers_for(AGW_OP_MESSAGES, AGW_PROTO_ANTHROPIC,
                "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
                "\"tool_use_id\":\"t\",\"content\":[{\"type\":\"image\",\"source\":{}}]}]},"
                "{\"role\":\"assistant\",\"content\":\"ok\"},{\"role\":\"user\",\"content\":\"x\"}]}",
                &c);
    assert_string_equal(header(&c, "copilot-vision-request: "), "true");
    assert_string_equal(header(&c, "anthropic-version: "), "2023-06-01");
    assert_string_equal(header(&c, "X-Initiator: "), "user");
    agw_provider_call_free(&c);
    headers_for(AGW_OP_CHAT, AGW_PROTO_OPENAI,
                "{\"messages\":[{\"role\":\"user\",\"content\":\"image_url\"}]}", &c);
    assert_null(header(&c, "copilot-vision-request: "));
    agw_provider_call_free(&c);
    /* The client's version and beta go to the native endpoint; a header
     * break in them is refused. */
    memset(&c, 0, sizeof c);
    agw_client_hints h = { .anthropic_version = "2024-01-01", .anthropic_beta = "b1" };
    assert_int_equal(cp()->extra_headers(AGW_OP_MESSAGES, &h, &c), AGW_OK);
    assert_string_equal(header(&c, "anthropic-version: "), "2024-01-01");
    assert_string_equal(header(&c, "anthropic-beta: "), "b1");
    assert_null(header(&c, "X-Initiator: ")); /* no body: nothing to tell */
    agw_provider_call_free(&c);
    agw_client_hints bad = { .anthropic_beta = "a\r\nX: y" };
    assert_int_equal(cp()->extra_headers(AGW_OP_MESSAGES, &bad, &c), AGW_EINVAL);
    agw_provider_call_free(&c);
    /* Embeddings carry no initiator. */
    headers_for(AGW_OP_EMBEDDINGS, AGW_PROTO_OPENAI, "{\"input\":\"x\"}", &c);
    assert_int_equal(c.n_headers, 0);
    agw_provider_call_free(&c);
}

static void test_plan_without_a_model_list(void **state)
{
    (void)state;
    agw_provider_cfg p;
    memset(&p, 0, sizeof p);
    p.name = "cp-unit";
    p.type = AGW_PROVIDER_COPILOT;
    p.base_url = "https://api.githubcopilot.com";
    agw_provider_plan plan;
    char why[256] = "";
    assert_int_equal(agw_provider_plan_call(&p, AGW_PROTO_ANTHROPIC, AGW_STR_LIT("claude-sonnet-4"),
                                            &plan, why, sizeof why),
                     AGW_OK);
    assert_int_equal(plan.proto, AGW_PROTO_ANTHROPIC);
    assert_int_equal(plan.op, AGW_OP_MESSAGES);
    assert_int_equal(agw_provider_plan_call(&p, AGW_PROTO_OPENAI, AGW_STR_LIT("claude-sonnet-4"),
                                            &plan, why, sizeof why),
                     AGW_OK);
    assert_int_equal(plan.op, AGW_OP_CHAT);
    assert_int_equal(agw_provider_plan_call(&p, AGW_PROTO_ANTHROPIC, AGW_STR_LIT("gpt-4.1"), &plan,
                                            why, sizeof why),
                     AGW_OK);
    assert_int_equal(plan.proto, AGW_PROTO_OPENAI);
    assert_int_equal(plan.op, AGW_OP_CHAT);
    /* Without a record, the account cannot tell what it serves. */
    assert_int_equal(cp()->serves(&p, AGW_STR_LIT("gpt-4.1")), -1);
}

/* repair_body on `in`: AGW_ENOTFOUND when want is NULL, else the body `want`. */
static void expect_repair(const char *in, const char *want)
{
    agw_buf out = AGW_BUF_INIT(1 << 20);
    agw_err e = cp()->repair_body(AGW_OP_CHAT, agw_str_c(in), &out);
    if (!want) {
        assert_int_equal(e, AGW_ENOTFOUND);
        assert_int_equal(out.len, 0);
    } else {
        assert_int_equal(e, AGW_OK);
        assert_int_equal(out.len, strlen(want));
        assert_memory_equal(out.data, want, out.len);
    }
    agw_buf_free(&out);
}

static void test_repair(void **state)
{
    (void)state;
    /* Nothing to repair: the body goes byte for byte. */
    expect_repair("{\"model\":\"m\", \"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL);
    expect_repair("{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
                  "[{\"id\":\"a\",\"type\":\"function\",\"function\":{\"name\":\"f\","
                  "\"arguments\":\"{\\\"x\\\": 1}\"}}]},"
                  "{\"role\":\"tool\",\"tool_call_id\":\"a\",\"content\":\"r\"}]}",
                  NULL);
    expect_repair("not json \"tool", NULL);
    expect_repair("{\"messages\":\"tool\"}", NULL);
    /* A call without its result goes, and the message with it when nothing is left. */
    expect_repair("{\"messages\":[{\"role\":\"user\",\"content\":\"go\"},"
                  "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"a\","
                  "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
                  "{\"role\":\"user\",\"content\":\"again\"}]}",
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"go\"},"
                  "{\"role\":\"user\",\"content\":\"again\"}]}");
    /* A result without its call goes; a call keeps its text. */
    expect_repair("{\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"z\",\"content\":\"r\"},"
                  "{\"role\":\"assistant\",\"content\":\"t\",\"tool_calls\":[{\"id\":\"b\","
                  "\"type\":\"function\",\"function\":{\"name\":\"\",\"arguments\":\"{}\"}}]},"
                  "{\"role\":\"tool\",\"tool_call_id\":\"b\",\"content\":\"r\"}]}",
                  "{\"messages\":[{\"role\":\"assistant\",\"content\":\"t\"}]}");
    /* Broken arguments become {}; a second result for one call goes. */
    expect_repair("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\","
                  "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{oops\"}}]},"
                  "{\"role\":\"tool\",\"tool_call_id\":\"a\",\"content\":\"1\"},"
                  "{\"role\":\"tool\",\"tool_call_id\":\"a\",\"content\":\"2\"}]}",
                  "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\","
                  "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
                  "{\"role\":\"tool\",\"tool_call_id\":\"a\",\"content\":\"1\"}]}");
    /* Only chat bodies are repaired. */
    agw_buf out = AGW_BUF_INIT(1024);
    assert_int_equal(cp()->repair_body(AGW_OP_MESSAGES,
                                       AGW_STR_LIT("{\"messages\":[{\"role\":\"tool\"}]}"), &out),
                     AGW_ENOTFOUND);
    agw_buf_free(&out);
}

/* The gateway's own follow-up calls (continuation rounds) are the agent's,
 * whatever their body says; Responses bodies are read by their input items. */
static void test_initiator_followup_and_responses(void **state)
{
    (void)state;
    agw_provider_call c;
    memset(&c, 0, sizeof c);
    agw_client_hints h = { .body = AGW_STR_LIT("{\"messages\":[{\"role\":\"user\",\"content\":\"go on\"}]}"),
                           .body_proto = AGW_PROTO_OPENAI, .followup = 1 };
    assert_int_equal(cp()->extra_headers(AGW_OP_CHAT, &h, &c), AGW_OK);
    assert_string_equal(header(&c, "X-Initiator: "), "agent");
    agw_provider_call_free(&c);
    memset(&c, 0, sizeof c);
    agw_client_hints none = { .followup = 1 };
    assert_int_equal(cp()->extra_headers(AGW_OP_RESPONSES, &none, &c), AGW_OK);
    assert_string_equal(header(&c, "X-Initiator: "), "agent");
    agw_provider_call_free(&c);
    expect_initiator(AGW_OP_RESPONSES, AGW_PROTO_RESPONSES, "{\"input\":\"hi\"}", "user");
    expect_initiator(AGW_OP_RESPONSES, AGW_PROTO_RESPONSES,
                     "{\"input\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "user");
    expect_initiator(AGW_OP_RESPONSES, AGW_PROTO_RESPONSES,
                     "{\"input\":[{\"role\":\"user\",\"content\":\"w?\"},"
                     "{\"type\":\"function_call_output\",\"call_id\":\"c\",\"output\":\"x\"}]}",
                     "agent");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_initiator_openai),
        cmocka_unit_test(test_initiator_followup_and_responses),
        cmocka_unit_test(test_initiator_anthropic),
        cmocka_unit_test(test_vision_and_versions),
        cmocka_unit_test(test_plan_without_a_model_list),
        cmocka_unit_test(test_repair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

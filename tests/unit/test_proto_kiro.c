/* Unit tests for proto/kiro: model ids, tool names, the request encoder
 * against Kiro's rules, the event stream -> IR decoder (text, thinking,
 * tools, exceptions, cut-off tools, garbage, usage), error bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/json.h"
#include "proto/anthropic.h"
#include "proto/kiro.h"
#include "proto/openai.h"

/* ---- helpers ---- */

/* The value at a dotted path ("a.b.0.c": members and array indices). */
static agw_str jpath(agw_str doc, const char *path)
{
    char key[128];
    agw_str cur = doc;
    while (*path) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, path);
        path += n + (path[n] == '.');
        if (key[0] >= '0' && key[0] <= '9') {
            agw_json_iter it;
            agw_str v;
            int want = atoi(key), i = 0, found = 0;
            assert_int_equal(agw_json_iter_init(&it, cur), AGW_OK);
            while (agw_json_iter_next(&it, NULL, &v))
                if (i++ == want) {
                    cur = v;
                    found = 1;
                    break;
                }
            if (!found)
                return (agw_str){ NULL, 0 };
        } else if (agw_json_find(cur, agw_str_c(key), &cur) != AGW_OK) {
            return (agw_str){ NULL, 0 };
        }
    }
    return cur;
}

/* The decoded string at path, in a static buffer ("<absent>" when none). */
static const char *jstr(agw_str doc, const char *path)
{
    static char out[4][8192];
    static int k;
    char *o = out[k++ % 4];
    agw_str v = jpath(doc, path);
    if (!v.ptr)
        return "<absent>";
    agw_buf b = AGW_BUF_INIT(1 << 20);
    if (agw_json_type_of(v) == AGW_JSON_STRING) {
        assert_int_equal(agw_json_string_decode(v, &b), AGW_OK);
        snprintf(o, 8192, "%.*s", (int)b.len, b.data ? b.data : "");
    } else {
        snprintf(o, 8192, "%.*s", (int)v.len, v.ptr);
    }
    agw_buf_free(&b);
    return o;
}

static size_t jlen(agw_str doc, const char *path)
{
    agw_str v = jpath(doc, path);
    agw_json_iter it;
    agw_str x;
    size_t n = 0;
    if (!v.ptr || agw_json_iter_init(&it, v) != AGW_OK)
        return 0;
    while (agw_json_iter_next(&it, NULL, &x))
        n++;
    return n;
}

/* Anthropic body -> IR -> Kiro body (in out). */
static void encode_anthropic(const char *body, agw_buf *out, agw_arena *a)
{
    agw_ir_request ir;
    char err[256] = "";
    assert_int_equal(agw_anthropic_decode_request(agw_str_c(body), a, &ir, err, sizeof err),
                     AGW_OK);
    agw_kiro_request_opts o = { AGW_STR_LIT("arn:aws:codewhisperer:us-east-1:1:profile/P"),
                                AGW_STR_LIT("conv-1") };
    err[0] = '\0';
    agw_err e = agw_kiro_encode_request(&ir, &o, out, err, sizeof err);
    if (e)
        fail_msg("encode: %s", err);
    assert_int_equal(agw_json_validate(agw_buf_view(out), 128, NULL, 0), AGW_OK);
}

/* ---- names ---- */

static void test_model_ids(void **state)
{
    (void)state;
    agw_arena a = AGW_ARENA_INIT;
    static const char *const cases[][2] = {
        { "claude-sonnet-4-5-20250929", "claude-sonnet-4.5" },
        { "claude-sonnet-4-5", "claude-sonnet-4.5" },
        { "claude-sonnet-4.5", "claude-sonnet-4.5" },
        { "claude-haiku-4-5-20251001", "claude-haiku-4.5" },
        { "claude-opus-4-6", "claude-opus-4.6" },
        { "claude-sonnet-4-20250514", "claude-sonnet-4" },
        { "claude-3-7-sonnet-20250219", "claude-3.7-sonnet" },
        { "claude-3-7-sonnet-latest", "claude-3.7-sonnet" },
        { "auto", "auto" },
        { "gpt-4o", "gpt-4o" },
        { "my-model-4-5", "my-model-4-5" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        agw_str got = agw_kiro_model_id(&a, agw_str_c(cases[i][0]));
        char buf[128];
        snprintf(buf, sizeof buf, "%.*s", (int)got.len, got.ptr);
        assert_string_equal(buf, cases[i][1]);
    }
    assert_int_equal(agw_kiro_context_window(AGW_STR_LIT("claude-sonnet-4.5")), 200000);
    assert_int_equal(agw_kiro_context_window(AGW_STR_LIT("claude-sonnet-4.5-1m")), 1000000);
    agw_arena_free(&a);
}

static void test_tool_names(void **state)
{
    (void)state;
    agw_arena a = AGW_ARENA_INIT;
    char l1[100], l2[100];
    memset(l1, 'a', 80);
    l1[80] = '\0';
    memcpy(l2, l1, 81);
    l2[79] = 'b';
    agw_str s1 = agw_kiro_tool_name(&a, agw_str_c(l1));
    agw_str s2 = agw_kiro_tool_name(&a, agw_str_c(l2));
    assert_int_equal(s1.len, 64);
    assert_int_equal(s2.len, 64);
    assert_false(agw_str_eq(s1, s2)); /* same prefix, different names */
    assert_true(agw_str_eq(s1, agw_kiro_tool_name(&a, agw_str_c(l1)))); /* stable */
    agw_str short_name = agw_kiro_tool_name(&a, AGW_STR_LIT("get_weather"));
    assert_true(agw_str_eq(short_name, AGW_STR_LIT("get_weather")));
    char exact[65];
    memset(exact, 'c', 64);
    exact[64] = '\0';
    assert_true(agw_str_eq(agw_kiro_tool_name(&a, agw_str_c(exact)), agw_str_c(exact)));
    agw_arena_free(&a);
}

/* ---- requests ---- */

static void test_encode_full(void **state)
{
    (void)state;
    char longname[90];
    memset(longname, 'x', 80);
    memcpy(longname, "tool_", 5);
    longname[80] = '\0';
    char body[8192];
    snprintf(
        body, sizeof body,
        "{\"model\":\"claude-sonnet-4-5-20250929\",\"max_tokens\":100,"
        "\"system\":\"Be brief.\","
        "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":2048},"
        "\"tools\":[{\"name\":\"get_weather\",\"description\":\"\",\"input_schema\":"
        "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[],"
        "\"properties\":{\"city\":{\"type\":\"object\",\"additionalProperties\":{\"type\":"
        "\"string\"},\"required\":[\"x\"]}}}},"
        "{\"name\":\"%s\",\"description\":\"long\",\"input_schema\":{\"type\":\"object\"}}],"
        "\"messages\":["
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Weather?\"},"
        "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/jpeg\","
        "\"data\":\"QUJD\"}}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"tu_1\","
        "\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\"}},"
        "{\"type\":\"tool_use\",\"id\":\"tu_2\",\"name\":\"%s\",\"input\":{}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"tu_1\","
        "\"content\":\"sunny\"},{\"type\":\"tool_result\",\"tool_use_id\":\"tu_2\","
        "\"content\":[],\"is_error\":true}]}]}",
        longname, longname);
    agw_arena a = AGW_ARENA_INIT;
    agw_buf out = AGW_BUF_INIT(1 << 20);
    encode_anthropic(body, &out, &a);
    agw_str d = agw_buf_view(&out);
    assert_string_equal(jstr(d, "profileArn"), "arn:aws:codewhisperer:us-east-1:1:profile/P");
    assert_string_equal(jstr(d, "conversationState.chatTriggerType"), "MANUAL");
    assert_string_equal(jstr(d, "conversationState.conversationId"), "conv-1");
    /* system pair with the thinking switch */
    assert_int_equal(jlen(d, "conversationState.history"), 4);
    assert_string_equal(jstr(d, "conversationState.history.0.userInputMessage.content"),
                        "<thinking_mode>enabled</thinking_mode><max_thinking_length>2048"
                        "</max_thinking_length>\n\nBe brief.");
    assert_string_equal(jstr(d, "conversationState.history.0.userInputMessage.modelId"),
                        "claude-sonnet-4.5");
    assert_string_equal(
        jstr(d, "conversationState.history.1.assistantResponseMessage.content"),
        "I will follow these instructions.");
    /* the first user turn with its image as jpeg */
    const char *u = "conversationState.history.2.userInputMessage";
    char p[256];
    snprintf(p, sizeof p, "%s.content", u);
    assert_string_equal(jstr(d, p), "Weather?");
    snprintf(p, sizeof p, "%s.images.0.format", u);
    assert_string_equal(jstr(d, p), "jpeg");
    snprintf(p, sizeof p, "%s.images.0.source.bytes", u);
    assert_string_equal(jstr(d, p), "QUJD");
    snprintf(p, sizeof p, "%s.origin", u);
    assert_string_equal(jstr(d, p), "AI_EDITOR");
    /* the assistant turn: placeholder content, both tool uses, the long name shortened */
    const char *as = "conversationState.history.3.assistantResponseMessage";
    snprintf(p, sizeof p, "%s.content", as);
    assert_string_equal(jstr(d, p), "(tool call)");
    snprintf(p, sizeof p, "%s.toolUses.0.input", as);
    assert_string_equal(jstr(d, p), "{\"city\":\"Paris\"}");
    snprintf(p, sizeof p, "%s.toolUses.1.name", as);
    agw_str shortened = agw_kiro_tool_name(&a, agw_str_c(longname));
    char sh[80];
    snprintf(sh, sizeof sh, "%.*s", (int)shortened.len, shortened.ptr);
    assert_string_equal(jstr(d, p), sh);
    /* the current message: tool results (error status, non-empty content), tools */
    const char *cm = "conversationState.currentMessage.userInputMessage";
    snprintf(p, sizeof p, "%s.content", cm);
    assert_string_equal(jstr(d, p), "Tool results provided.");
    snprintf(p, sizeof p, "%s.userInputMessageContext.toolResults.0.content.0.text", cm);
    assert_string_equal(jstr(d, p), "sunny");
    snprintf(p, sizeof p, "%s.userInputMessageContext.toolResults.0.status", cm);
    assert_string_equal(jstr(d, p), "success");
    snprintf(p, sizeof p, "%s.userInputMessageContext.toolResults.1.status", cm);
    assert_string_equal(jstr(d, p), "error");
    snprintf(p, sizeof p, "%s.userInputMessageContext.toolResults.1.content.0.text", cm);
    assert_string_equal(jstr(d, p), "(empty result)");
    snprintf(p, sizeof p, "%s.userInputMessageContext.tools.0.toolSpecification", cm);
    char q[300];
    snprintf(q, sizeof q, "%s.description", p);
    assert_string_equal(jstr(d, q), "Tool get_weather");
    snprintf(q, sizeof q, "%s.inputSchema.json", p);
    assert_string_equal(jstr(d, q), "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":"
                                    "\"object\",\"required\":[\"x\"]}}}");
    snprintf(p, sizeof p, "%s.userInputMessageContext.tools.1.toolSpecification.name", cm);
    assert_string_equal(jstr(d, p), sh);
    agw_buf_free(&out);
    agw_arena_free(&a);
}

/* Turns that Kiro refuses as they are: merged, padded, and a prefill moved. */
static void test_encode_turn_rules(void **state)
{
    (void)state;
    agw_arena a = AGW_ARENA_INIT;
    agw_buf out = AGW_BUF_INIT(1 << 20);
    /* OpenAI: two user messages in a row, then an assistant prefill last. */
    agw_ir_request ir;
    char err[256] = "";
    const char *oai = "{\"model\":\"claude-sonnet-4\",\"messages\":["
                      "{\"role\":\"system\",\"content\":\"S1\"},"
                      "{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"},"
                      "{\"role\":\"assistant\",\"content\":\"Sure:\"}]}";
    assert_int_equal(agw_openai_decode_request(agw_str_c(oai), &a, &ir, err, sizeof err), AGW_OK);
    assert_int_equal(agw_kiro_encode_request(&ir, NULL, &out, err, sizeof err), AGW_OK);
    agw_str d = agw_buf_view(&out);
    assert_string_equal(jstr(d, "profileArn"), "<absent>");
    assert_int_equal(strlen(jstr(d, "conversationState.conversationId")), 36);
    assert_int_equal(jlen(d, "conversationState.history"), 4);
    assert_string_equal(jstr(d, "conversationState.history.2.userInputMessage.content"),
                        "a\n\nb");
    assert_string_equal(jstr(d, "conversationState.history.3.assistantResponseMessage.content"),
                        "Sure:");
    assert_string_equal(jstr(d, "conversationState.currentMessage.userInputMessage.content"),
                        "Continue");
    assert_string_equal(
        jstr(d, "conversationState.currentMessage.userInputMessage.userInputMessageContext"),
        "<absent>");

    /* OpenAI's reasoning_effort asks for thinking too. */
    agw_ir_request ir3;
    assert_int_equal(agw_openai_decode_request(
                         AGW_STR_LIT("{\"model\":\"claude-sonnet-4\",\"reasoning_effort\":\"high\","
                                     "\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}"),
                         &a, &ir3, err, sizeof err),
                     AGW_OK);
    assert_true(agw_kiro_thinking_asked(&ir3));
    agw_buf_reset(&out);
    assert_int_equal(agw_kiro_encode_request(&ir3, NULL, &out, err, sizeof err), AGW_OK);
    assert_string_equal(jstr(agw_buf_view(&out), "conversationState.history.0.userInputMessage.content"),
                        "<thinking_mode>enabled</thinking_mode><max_thinking_length>24576"
                        "</max_thinking_length>");
    ir3.reasoning_effort = AGW_STR_LIT("none");
    assert_false(agw_kiro_thinking_asked(&ir3));

    /* A history with tool turns but no tools declared: the tools are declared. */
    agw_buf_reset(&out);
    encode_anthropic("{\"model\":\"claude-sonnet-4\",\"max_tokens\":10,\"messages\":["
                     "{\"role\":\"user\",\"content\":\"go\"},"
                     "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\","
                     "\"name\":\"ls\",\"input\":{}},{\"type\":\"tool_use\",\"id\":\"t2\","
                     "\"name\":\"ls\",\"input\":{\"a\":1}}]},"
                     "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
                     "\"t1\",\"content\":\"x\"},{\"type\":\"tool_result\",\"tool_use_id\":\"t2\","
                     "\"content\":\"y\"}]}]}",
                     &out, &a);
    d = agw_buf_view(&out);
    const char *ctx = "conversationState.currentMessage.userInputMessage.userInputMessageContext";
    char p[256];
    snprintf(p, sizeof p, "%s.tools", ctx);
    assert_int_equal(jlen(d, p), 1);
    snprintf(p, sizeof p, "%s.tools.0.toolSpecification.name", ctx);
    assert_string_equal(jstr(d, p), "ls");
    snprintf(p, sizeof p, "%s.toolResults", ctx);
    assert_int_equal(jlen(d, p), 2);

    /* tool_choice none: no tools offered, but those the history used. */
    agw_buf_reset(&out);
    encode_anthropic("{\"model\":\"claude-sonnet-4\",\"max_tokens\":10,\"tool_choice\":{\"type\":"
                     "\"none\"},\"tools\":[{\"name\":\"a\",\"input_schema\":{}},{\"name\":\"b\","
                     "\"input_schema\":{}}],\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
                     "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\","
                     "\"name\":\"b\",\"input\":{}}]},{\"role\":\"user\",\"content\":[{\"type\":"
                     "\"tool_result\",\"tool_use_id\":\"t1\",\"content\":\"ok\"}]}]}",
                     &out, &a);
    d = agw_buf_view(&out);
    snprintf(p, sizeof p, "%s.tools", ctx);
    assert_int_equal(jlen(d, p), 1);
    snprintf(p, sizeof p, "%s.tools.0.toolSpecification.name", ctx);
    assert_string_equal(jstr(d, p), "b");
    agw_buf_reset(&out);
    encode_anthropic("{\"model\":\"claude-sonnet-4\",\"max_tokens\":10,\"tool_choice\":{\"type\":"
                     "\"none\"},\"tools\":[{\"name\":\"a\",\"input_schema\":{}}],\"messages\":"
                     "[{\"role\":\"user\",\"content\":\"x\"}]}",
                     &out, &a);
    assert_string_equal(jstr(agw_buf_view(&out), ctx), "<absent>");

    /* A URL image cannot go to Kiro: refused with a message. */
    agw_ir_request ir2;
    assert_int_equal(
        agw_anthropic_decode_request(
            AGW_STR_LIT("{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\","
                        "\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"url\","
                        "\"url\":\"https://x/y.png\"}}]}]}"),
            &a, &ir2, err, sizeof err),
        AGW_OK);
    agw_buf_reset(&out);
    err[0] = '\0';
    assert_int_equal(agw_kiro_encode_request(&ir2, NULL, &out, err, sizeof err), AGW_EINVAL);
    assert_non_null(strstr(err, "URL"));
    assert_int_equal(out.len, 0);
    agw_buf_free(&out);
    agw_arena_free(&a);
}

/* ---- answers ---- */

typedef struct {
    char log[16384]; /* one line per event */
    size_t len;
    int n_errors, error_status;
    int64_t input, output;
    int stop_after;
    int n;
} rec_t;

static int rec(void *ud, const agw_ir_event *ev)
{
    rec_t *r = ud;
    char line[1024];
    switch (ev->kind) {
    case AGW_IR_EV_MESSAGE_START: snprintf(line, sizeof line, "start\n"); break;
    case AGW_IR_EV_BLOCK_START:
        snprintf(line, sizeof line, "open %d kind=%d id=%.*s name=%.*s\n", ev->index, ev->block,
                 (int)ev->tool_id.len, ev->tool_id.ptr ? ev->tool_id.ptr : "",
                 (int)ev->tool_name.len, ev->tool_name.ptr ? ev->tool_name.ptr : "");
        break;
    case AGW_IR_EV_BLOCK_DELTA:
        snprintf(line, sizeof line, "delta %d %d %.*s\n", ev->index, ev->delta_kind,
                 (int)ev->delta.len, ev->delta.ptr);
        break;
    case AGW_IR_EV_BLOCK_STOP: snprintf(line, sizeof line, "close %d\n", ev->index); break;
    case AGW_IR_EV_MESSAGE_DELTA:
        snprintf(line, sizeof line, "stop %s\n", agw_ir_stop_name(ev->stop));
        r->input = ev->usage.input;
        r->output = ev->usage.output;
        break;
    case AGW_IR_EV_MESSAGE_STOP: snprintf(line, sizeof line, "end\n"); break;
    case AGW_IR_EV_ERROR:
        snprintf(line, sizeof line, "error %d %.*s: %.*s\n", ev->status, (int)ev->error_type.len,
                 ev->error_type.ptr, (int)ev->error_message.len, ev->error_message.ptr);
        r->n_errors++;
        r->error_status = ev->status;
        break;
    default: line[0] = '\0';
    }
    size_t n = strlen(line);
    assert_true(r->len + n < sizeof r->log);
    memcpy(r->log + r->len, line, n + 1);
    r->len += n;
    r->n++;
    return r->stop_after && r->n >= r->stop_after;
}

static void ev(agw_buf *s, const char *type, const char *payload)
{
    agw_es_header h[3] = {
        { AGW_STR_LIT(":event-type"), AGW_ES_STRING, 0, agw_str_c(type) },
        { AGW_STR_LIT(":content-type"), AGW_ES_STRING, 0, AGW_STR_LIT("application/json") },
        { AGW_STR_LIT(":message-type"), AGW_ES_STRING, 0, AGW_STR_LIT("event") },
    };
    assert_int_equal(agw_es_encode(s, h, 3, agw_str_c(payload)), AGW_OK);
}

static void exc(agw_buf *s, const char *type, const char *payload)
{
    agw_es_header h[2] = {
        { AGW_STR_LIT(":exception-type"), AGW_ES_STRING, 0, agw_str_c(type) },
        { AGW_STR_LIT(":message-type"), AGW_ES_STRING, 0, AGW_STR_LIT("exception") },
    };
    assert_int_equal(agw_es_encode(s, h, 2, agw_str_c(payload)), AGW_OK);
}

/* Decodes `s` fed in pieces of `step` bytes (0: whole) for request `body`
 * (Anthropic), into r. */
static agw_err decode(const char *body, agw_str s, size_t step, rec_t *r)
{
    agw_arena a = AGW_ARENA_INIT;
    agw_ir_request ir;
    char err[256];
    memset(r, 0, sizeof *r);
    assert_int_equal(agw_anthropic_decode_request(agw_str_c(body), &a, &ir, err, sizeof err),
                     AGW_OK);
    agw_kiro_stream_decoder d;
    agw_kiro_stream_decoder_init(&d, &ir);
    agw_arena_free(&a); /* the decoder keeps what it needs */
    agw_err e = AGW_OK;
    if (!step)
        step = s.len ? s.len : 1;
    for (size_t i = 0; i < s.len && !e; i += step)
        e = agw_kiro_decode_stream_bytes(&d, s.ptr + i, s.len - i < step ? s.len - i : step, rec,
                                         r);
    if (!e)
        e = agw_kiro_decode_stream_end(&d, rec, r);
    agw_kiro_stream_decoder_free(&d);
    return e;
}

#define PLAIN "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":100,\"messages\":[{\"role\":" \
              "\"user\",\"content\":\"hi\"}]}"
#define THINK "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":3000,\"thinking\":{\"type\":" \
              "\"enabled\",\"budget_tokens\":2000},\"messages\":[{\"role\":\"user\"," \
              "\"content\":\"hi\"}]}"

static void test_text_and_usage(void **state)
{
    (void)state;
    agw_buf s = AGW_BUF_INIT(1 << 20);
    ev(&s, "assistantResponseEvent", "{\"content\":\"Hel\"}");
    ev(&s, "assistantResponseEvent", "{\"content\":\"lo \\u00e9\"}");
    ev(&s, "supplementaryWebLinksEvent", "{\"links\":[]}");
    ev(&s, "meteringEvent", "{\"unit\":\"credit\",\"usage\":0.25}");
    ev(&s, "contextUsageEvent", "{\"contextUsagePercentage\":1.5}");
    ev(&s, "meteringEvent", "{\"unit\":\"credit\",\"usage\":0.5}");
    for (size_t step = 0; step < 40; step += 7) {
        rec_t r;
        assert_int_equal(decode(PLAIN, agw_buf_view(&s), step, &r), AGW_OK);
        assert_string_equal(r.log, "start\nopen 0 kind=0 id= name=\ndelta 0 0 Hel\n"
                                   "delta 0 0 lo \xc3\xa9\nclose 0\nstop end_turn\nend\n");
        assert_int_equal(r.input, 3000); /* 1.5% of 200k */
        assert_int_equal(r.output, 2);   /* 8 bytes / 4 */
    }
    /* credits */
    agw_arena a = AGW_ARENA_INIT;
    agw_ir_request ir;
    char err[128];
    assert_int_equal(agw_anthropic_decode_request(AGW_STR_LIT(PLAIN), &a, &ir, err, sizeof err),
                     AGW_OK);
    agw_kiro_stream_decoder d;
    agw_kiro_stream_decoder_init(&d, &ir);
    assert_true(agw_kiro_stream_credits(&d) < 0); /* none yet */
    rec_t r;
    memset(&r, 0, sizeof r);
    assert_int_equal(agw_kiro_decode_stream_bytes(&d, s.data, s.len, rec, &r), AGW_OK);
    assert_true(agw_kiro_stream_credits(&d) > 0.74 && agw_kiro_stream_credits(&d) < 0.76);
    agw_kiro_stream_decoder_free(&d);
    agw_arena_free(&a);
    agw_buf_free(&s);
}

static void test_thinking(void **state)
{
    (void)state;
    agw_buf s = AGW_BUF_INIT(1 << 20);
    ev(&s, "assistantResponseEvent", "{\"content\":\"<thin\"}");
    ev(&s, "assistantResponseEvent", "{\"content\":\"king>Let me think</th\"}");
    ev(&s, "assistantResponseEvent", "{\"content\":\"inking>\\n\\nThe answer: <thinking> is a tag\"}");
    rec_t r;
    assert_int_equal(decode(THINK, agw_buf_view(&s), 0, &r), AGW_OK);
    assert_string_equal(r.log, "start\nopen 0 kind=4 id= name=\ndelta 0 2 Let me think\nclose 0\n"
                               "open 1 kind=0 id= name=\ndelta 1 0 The answer: <thinking> is a "
                               "tag\nclose 1\nstop end_turn\nend\n");
    /* Every split gives the same thinking and text. */
    for (size_t step = 1; step < 60; step += 3) {
        assert_int_equal(decode(THINK, agw_buf_view(&s), step, &r), AGW_OK);
        assert_non_null(strstr(r.log, "open 0 kind=4"));
        assert_non_null(strstr(r.log, "The answer: <thinking> is a tag"));
        assert_null(strstr(r.log, "</th"));
    }
    /* Not asked: the text goes out as it came. */
    assert_int_equal(decode(PLAIN, agw_buf_view(&s), 0, &r), AGW_OK);
    assert_non_null(strstr(r.log, "delta 0 0 <thin\ndelta 0 0 king>Let me think</th\n"));
    /* Native reasoning events. */
    agw_buf_reset(&s);
    ev(&s, "reasoningContentEvent", "{\"text\":\"hmm\"}");
    ev(&s, "reasoningContentEvent", "{\"signature\":\"sig1\"}");
    ev(&s, "assistantResponseEvent", "{\"content\":\"ok\"}");
    assert_int_equal(decode(THINK, agw_buf_view(&s), 0, &r), AGW_OK);
    assert_string_equal(r.log, "start\nopen 0 kind=4 id= name=\ndelta 0 2 hmm\ndelta 0 3 sig1\n"
                               "close 0\nopen 1 kind=0 id= name=\ndelta 1 0 ok\nclose 1\n"
                               "stop end_turn\nend\n");
    assert_int_equal(decode(PLAIN, agw_buf_view(&s), 0, &r), AGW_OK);
    assert_string_equal(r.log, "start\nopen 0 kind=0 id= name=\ndelta 0 0 ok\nclose 0\n"
                               "stop end_turn\nend\n");
    agw_buf_free(&s);
}

static void test_tools(void **state)
{
    (void)state;
    char longname[90], body[1024];
    memset(longname, 'y', 70);
    longname[70] = '\0';
    snprintf(body, sizeof body,
             "{\"model\":\"claude-sonnet-4\",\"max_tokens\":10,\"tools\":[{\"name\":\"%s\","
             "\"input_schema\":{\"type\":\"object\"}}],\"messages\":[{\"role\":\"user\","
             "\"content\":\"x\"}]}",
             longname);
    agw_arena a = AGW_ARENA_INIT;
    agw_str shortened = agw_kiro_tool_name(&a, agw_str_c(longname));
    char p[512];
    agw_buf s = AGW_BUF_INIT(1 << 20);
    ev(&s, "assistantResponseEvent", "{\"content\":\"Calling\"}");
    snprintf(p, sizeof p, "{\"toolUseId\":\"t1\",\"name\":\"%.*s\",\"input\":\"{\\\"a\\\":\"}",
             (int)shortened.len, shortened.ptr);
    ev(&s, "toolUseEvent", p);
    snprintf(p, sizeof p, "{\"toolUseId\":\"t1\",\"name\":\"%.*s\",\"input\":\"1}\"}",
             (int)shortened.len, shortened.ptr);
    ev(&s, "toolUseEvent", p);
    snprintf(p, sizeof p, "{\"toolUseId\":\"t1\",\"name\":\"%.*s\",\"stop\":true}",
             (int)shortened.len, shortened.ptr);
    ev(&s, "toolUseEvent", p);
    ev(&s, "toolUseEvent", "{\"toolUseId\":\"t1\",\"name\":\"x\",\"input\":\"{}\",\"stop\":true}");
    ev(&s, "toolUseEvent", "{\"toolUseId\":\"t2\",\"name\":\"ls\",\"stop\":true}");
    rec_t r;
    assert_int_equal(decode(body, agw_buf_view(&s), 5, &r), AGW_OK);
    char want[2048];
    snprintf(want, sizeof want,
             "start\nopen 0 kind=0 id= name=\ndelta 0 0 Calling\nclose 0\n"
             "open 1 kind=2 id=t1 name=%s\ndelta 1 1 {\"a\":\ndelta 1 1 1}\nclose 1\n"
             "open 2 kind=2 id=t2 name=ls\ndelta 2 1 {}\nclose 2\nstop tool_use\nend\n",
             longname);
    assert_string_equal(r.log, want);

    /* Cut off: no stop before the end, or another call starts. */
    agw_buf_reset(&s);
    ev(&s, "toolUseEvent", "{\"toolUseId\":\"t1\",\"name\":\"ls\",\"input\":\"{\\\"path\\\":\"}");
    assert_int_equal(decode(body, agw_buf_view(&s), 0, &r), AGW_OK);
    assert_int_equal(r.n_errors, 1);
    assert_int_equal(r.error_status, 502);
    assert_non_null(strstr(r.log, "cut off tool call t1"));
    assert_null(strstr(r.log, "stop "));
    ev(&s, "toolUseEvent", "{\"toolUseId\":\"t2\",\"name\":\"ls\",\"input\":\"{}\"}");
    assert_int_equal(decode(body, agw_buf_view(&s), 0, &r), AGW_OK);
    assert_int_equal(r.n_errors, 1);
    /* Input that is not a JSON object at its stop. */
    agw_buf_reset(&s);
    ev(&s, "toolUseEvent", "{\"toolUseId\":\"t1\",\"name\":\"ls\",\"input\":\"[1\",\"stop\":true}");
    assert_int_equal(decode(body, agw_buf_view(&s), 0, &r), AGW_OK);
    assert_int_equal(r.n_errors, 1);
    assert_non_null(strstr(r.log, "not a JSON object"));
    agw_buf_free(&s);
    agw_arena_free(&a);
}

static void test_exceptions_and_garbage(void **state)
{
    (void)state;
    agw_buf s = AGW_BUF_INIT(1 << 20);
    rec_t r;
    exc(&s, "ThrottlingException", "{\"message\":\"Too many requests\"}");
    assert_int_equal(decode(PLAIN, agw_buf_view(&s), 0, &r), AGW_OK);
    assert_string_equal(r.log, "error 429 rate_limit_error: upstream ThrottlingException: Too "
                               "many requests\n");
    /* The output limit: the answer ends as max_tokens. */
    agw_buf_reset(&s);
    ev(&s, "assistantResponseEvent", "{\"content\":\"long\"}");
    exc(&s, "ContentLengthExceededException", "{\"message\":\"too long\"}");
    assert_int_equal(decode(PLAIN, agw_buf_view(&s), 0, &r), AGW_OK);
    assert_non_null(strstr(r.log, "stop max_tokens\nend\n"));
    /* Other exceptions: their status. */
    agw_buf_reset(&s);
    ev(&s, "assistantResponseEvent", "{\"content\":\"a\"}");
    exc(&s, "InternalServerException", "{\"message\":\"boom\"}");
    ev(&s, "assistantResponseEvent", "{\"content\":\"never\"}");
    assert_int_equal(decode(PLAIN, agw_buf_view(&s), 0, &r), AGW_OK);
    assert_int_equal(r.error_status, 500);
    assert_null(strstr(r.log, "never"));
    assert_null(strstr(r.log, "end\n"));
    /* Garbage after a good frame; a stream cut inside a frame; bad JSON. */
    agw_buf_reset(&s);
    ev(&s, "assistantResponseEvent", "{\"content\":\"a\"}");
    assert_int_equal(agw_buf_append(&s, "garbage-garbage-garbage", 23), AGW_OK);
    assert_int_equal(decode(PLAIN, agw_buf_view(&s), 3, &r), AGW_OK);
    assert_int_equal(r.n_errors, 1);
    assert_int_equal(r.error_status, 502);
    assert_non_null(strstr(r.log, "corrupt"));
    agw_buf_reset(&s);
    ev(&s, "assistantResponseEvent", "{\"content\":\"a\"}");
    assert_int_equal(decode(PLAIN, (agw_str){ s.data, s.len - 1 }, 0, &r), AGW_OK);
    assert_int_equal(r.n_errors, 1);
    assert_non_null(strstr(r.log, "ended inside a frame"));
    agw_buf_reset(&s);
    ev(&s, "assistantResponseEvent", "{\"content\":");
    assert_int_equal(decode(PLAIN, agw_buf_view(&s), 0, &r), AGW_OK);
    assert_int_equal(r.n_errors, 1);
    /* A stream without a frame is no answer (Kiro always sends some). */
    assert_int_equal(decode(PLAIN, (agw_str){ "", 0 }, 0, &r), AGW_OK);
    assert_string_equal(r.log, "error 502 api_error: upstream answered with an empty event stream\n");
    /* Frames that say nothing visible are an empty answer. */
    agw_buf_reset(&s);
    ev(&s, "contextUsageEvent", "{\"contextUsagePercentage\":1}");
    assert_int_equal(decode(PLAIN, agw_buf_view(&s), 0, &r), AGW_OK);
    assert_string_equal(r.log, "start\nstop end_turn\nend\n");
    /* A sink that stops: AGW_EPEER. */
    agw_buf_reset(&s);
    ev(&s, "assistantResponseEvent", "{\"content\":\"a\"}");
    agw_arena a = AGW_ARENA_INIT;
    agw_ir_request ir;
    char err[128];
    assert_int_equal(agw_anthropic_decode_request(AGW_STR_LIT(PLAIN), &a, &ir, err, sizeof err),
                     AGW_OK);
    agw_kiro_stream_decoder d;
    agw_kiro_stream_decoder_init(&d, &ir);
    memset(&r, 0, sizeof r);
    r.stop_after = 1;
    assert_int_equal(agw_kiro_decode_stream_bytes(&d, s.data, s.len, rec, &r), AGW_EPEER);
    agw_kiro_stream_decoder_free(&d);
    agw_arena_free(&a);
    agw_buf_free(&s);
}

static void test_error_bodies(void **state)
{
    (void)state;
    agw_arena a = AGW_ARENA_INIT;
    agw_str type, msg;
    int status = 400;
    assert_int_equal(agw_kiro_decode_error(AGW_STR_LIT("{\"message\":\"Improperly formed request.\","
                                                       "\"reason\":null}"),
                                           &a, &status, &type, &msg),
                     AGW_OK);
    assert_int_equal(status, 400);
    assert_true(agw_str_eq(type, AGW_STR_LIT("invalid_request_error")));
    assert_true(agw_str_eq(msg, AGW_STR_LIT("Improperly formed request.")));
    status = 400;
    assert_int_equal(
        agw_kiro_decode_error(AGW_STR_LIT("{\"__type\":\"com.amazon.aws.codewhisperer#"
                                          "ThrottlingException\",\"message\":\"slow down\"}"),
                              &a, &status, &type, &msg),
        AGW_OK);
    assert_int_equal(status, 429);
    assert_true(agw_str_eq(type, AGW_STR_LIT("rate_limit_error")));
    status = 400;
    assert_int_equal(agw_kiro_decode_error(AGW_STR_LIT("{\"message\":\"x\",\"reason\":"
                                                       "\"USER_REQUEST_RATE_EXCEEDED\"}"),
                                           &a, &status, &type, &msg),
                     AGW_OK);
    assert_int_equal(status, 429);
    status = 500;
    assert_int_equal(agw_kiro_decode_error(AGW_STR_LIT("<html>"), &a, &status, &type, &msg),
                     AGW_EINVAL);
    agw_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_ids),
        cmocka_unit_test(test_tool_names),
        cmocka_unit_test(test_encode_full),
        cmocka_unit_test(test_encode_turn_rules),
        cmocka_unit_test(test_text_and_usage),
        cmocka_unit_test(test_thinking),
        cmocka_unit_test(test_tools),
        cmocka_unit_test(test_exceptions_and_garbage),
        cmocka_unit_test(test_error_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

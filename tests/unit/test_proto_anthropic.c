/* Unit tests for the Anthropic codec (lib/proto/anthropic.h): request
 * decoding (every field, every rejection), request encoding (exact bytes),
 * the stream decoder against a realistic upstream transcript, the stream
 * encoder (exact SSE bytes), the folded response, error bodies, and strings
 * that a NUL-terminated or UTF-16-naive codec would break. */
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

#define S(lit) AGW_STR_LIT(lit)
/* A view of a char array holding a string (its terminating NUL left out). */
#define A(arr) ((agw_str){ (arr), sizeof(arr) - 1 })

static void assert_view(agw_str got, const char *want, size_t want_len)
{
    if (got.len != want_len || (want_len && memcmp(got.ptr, want, want_len) != 0)) {
        print_error("got  [%.*s] (%zu bytes)\nwant [%.*s] (%zu bytes)\n", (int)got.len,
                    got.ptr ? got.ptr : "", got.len, (int)want_len, want, want_len);
        fail();
    }
}

/* A view equal to a literal, NULs included. */
#define assert_str(got, lit) assert_view((got), "" lit, sizeof(lit) - 1)
/* A view equal to a char array's string. */
#define assert_arr(got, arr) assert_view((got), (arr), sizeof(arr) - 1)

/* ---- request decoding ---- */

typedef struct {
    agw_arena arena;
    agw_ir_request rq;
    char err[256];
} decoded;

static agw_err decode(decoded *d, agw_str body)
{
    memset(d, 0, sizeof *d);
    return agw_anthropic_decode_request(body, &d->arena, &d->rq, d->err, sizeof d->err);
}

static void test_decode_full(void **state)
{
    static const char body[] =
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024,"
        "\"system\":[{\"type\":\"text\",\"text\":\"Be brief.\",\"cache_control\":{\"type\":\"ephemeral\"}},"
        "{\"type\":\"text\",\"text\":\"Second.\"}],"
        "\"messages\":["
        "{\"role\":\"user\",\"content\":\"Hello\"},"
        "{\"role\":\"assistant\",\"content\":["
        "{\"type\":\"thinking\",\"thinking\":\"hmm\",\"signature\":\"sig==\"},"
        "{\"type\":\"redacted_thinking\",\"data\":\"ENC\"},"
        "{\"type\":\"text\",\"text\":\"Let me look.\",\"citations\":[]},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get\",\"input\":{\"q\": [1, 2]},"
        "\"cache_control\":{\"type\":\"ephemeral\"}}]},"
        "{\"role\":\"user\",\"content\":["
        "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"is_error\":true,"
        "\"content\":[{\"type\":\"text\",\"text\":\"boom\"},"
        "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://x/y.png\"}}]},"
        "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_2\",\"content\":\"plain\"},"
        "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"iVBOR\"},"
        "\"cache_control\":{\"type\":\"ephemeral\"}},"
        "{\"type\":\"text\",\"text\":\"and?\"}]}],"
        "\"tools\":[{\"name\":\"get\",\"description\":\"Fetch\",\"input_schema\":{\"type\":\"object\"},"
        "\"cache_control\":{\"type\":\"ephemeral\"}},"
        "{\"type\":\"custom\",\"name\":\"put\",\"input_schema\":{}}],"
        "\"tool_choice\":{\"type\":\"tool\",\"name\":\"get\",\"disable_parallel_tool_use\":true},"
        "\"temperature\":0.5,\"top_p\":0.9,\"top_k\":40,\"stop_sequences\":[\"END\",\"\\n\\n\"],"
        "\"stream\":true,\"metadata\":{\"user_id\":\"u-42\"},"
        "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":2048},"
        "\"service_tier\":\"auto\",\"context_management\":{\"edits\":[]},"
        "\"output_config\":{\"effort\":\"high\"}}";
    decoded d;
    const agw_ir_request *rq = &d.rq;
    (void)state;

    assert_int_equal(decode(&d, A(body)), AGW_OK);
    assert_str(rq->model, "claude-sonnet-4-5");
    assert_int_equal(rq->max_tokens, 1024);
    assert_int_equal(rq->n_system, 2);
    assert_int_equal(rq->system[0].kind, AGW_IR_TEXT);
    assert_str(rq->system[0].text, "Be brief.");
    assert_str(rq->system[0].cache_control, "{\"type\":\"ephemeral\"}");
    assert_str(rq->system[1].text, "Second.");
    assert_int_equal(rq->system[1].cache_control.len, 0);

    assert_int_equal(rq->n_messages, 3);
    assert_int_equal(rq->messages[0].role, AGW_IR_USER);
    assert_int_equal(rq->messages[0].n_blocks, 1);
    assert_int_equal(rq->messages[0].blocks[0].kind, AGW_IR_TEXT);
    assert_str(rq->messages[0].blocks[0].text, "Hello");

    const agw_ir_message *a = &rq->messages[1];
    assert_int_equal(a->role, AGW_IR_ASSISTANT);
    assert_int_equal(a->n_blocks, 4);
    assert_int_equal(a->blocks[0].kind, AGW_IR_THINKING);
    assert_str(a->blocks[0].text, "hmm");
    assert_str(a->blocks[0].signature, "sig==");
    assert_int_equal(a->blocks[1].kind, AGW_IR_REDACTED_THINKING);
    assert_str(a->blocks[1].text, "ENC");
    assert_int_equal(a->blocks[2].kind, AGW_IR_TEXT);
    assert_str(a->blocks[2].text, "Let me look.");
    assert_int_equal(a->blocks[3].kind, AGW_IR_TOOL_USE);
    assert_str(a->blocks[3].tool_id, "toolu_1");
    assert_str(a->blocks[3].tool_name, "get");
    assert_str(a->blocks[3].tool_input, "{\"q\": [1, 2]}");
    assert_str(a->blocks[3].cache_control, "{\"type\":\"ephemeral\"}");

    const agw_ir_message *u = &rq->messages[2];
    assert_int_equal(u->role, AGW_IR_USER);
    assert_int_equal(u->n_blocks, 4);
    assert_int_equal(u->blocks[0].kind, AGW_IR_TOOL_RESULT);
    assert_str(u->blocks[0].tool_id, "toolu_1");
    assert_int_equal(u->blocks[0].is_error, 1);
    assert_int_equal(u->blocks[0].n_content, 2);
    assert_int_equal(u->blocks[0].content[0].kind, AGW_IR_TEXT);
    assert_str(u->blocks[0].content[0].text, "boom");
    assert_int_equal(u->blocks[0].content[1].kind, AGW_IR_IMAGE);
    assert_int_equal(u->blocks[0].content[1].image_is_url, 1);
    assert_str(u->blocks[0].content[1].image_data, "https://x/y.png");
    assert_int_equal(u->blocks[1].kind, AGW_IR_TOOL_RESULT);
    assert_int_equal(u->blocks[1].is_error, 0);
    assert_int_equal(u->blocks[1].n_content, 1);
    assert_str(u->blocks[1].content[0].text, "plain");
    assert_int_equal(u->blocks[2].kind, AGW_IR_IMAGE);
    assert_int_equal(u->blocks[2].image_is_url, 0);
    assert_str(u->blocks[2].media_type, "image/png");
    assert_str(u->blocks[2].image_data, "iVBOR");
    assert_str(u->blocks[2].cache_control, "{\"type\":\"ephemeral\"}");
    assert_str(u->blocks[3].text, "and?");

    assert_int_equal(rq->n_tools, 2);
    assert_str(rq->tools[0].name, "get");
    assert_str(rq->tools[0].description, "Fetch");
    assert_str(rq->tools[0].schema, "{\"type\":\"object\"}");
    assert_str(rq->tools[0].cache_control, "{\"type\":\"ephemeral\"}");
    assert_str(rq->tools[1].name, "put");
    assert_int_equal(rq->tools[1].description.len, 0);
    assert_str(rq->tools[1].schema, "{}");

    assert_int_equal(rq->tool_choice, AGW_IR_TC_TOOL);
    assert_str(rq->tool_choice_name, "get");
    assert_int_equal(rq->parallel_tool_calls, 0);
    assert_int_equal(rq->has_temperature, 1);
    assert_true(rq->temperature == 0.5);
    assert_int_equal(rq->has_top_p, 1);
    assert_true(rq->top_p == 0.9);
    assert_int_equal(rq->top_k, 40);
    assert_int_equal(rq->n_stop, 2);
    assert_str(rq->stop[0], "END");
    assert_str(rq->stop[1], "\n\n");
    assert_int_equal(rq->stream, 1);
    assert_str(rq->user, "u-42");
    assert_str(rq->thinking, "{\"type\":\"enabled\",\"budget_tokens\":2048}");
    agw_arena_free(&d.arena);
}

static void test_decode_defaults_and_nulls(void **state)
{
    decoded d;
    (void)state;

    assert_int_equal(decode(&d, S("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}")),
                     AGW_OK);
    assert_int_equal(d.rq.max_tokens, -1);
    assert_int_equal(d.rq.top_k, -1);
    assert_int_equal(d.rq.parallel_tool_calls, -1);
    assert_int_equal(d.rq.tool_choice, AGW_IR_TC_UNSET);
    assert_int_equal(d.rq.has_temperature, 0);
    assert_int_equal(d.rq.has_top_p, 0);
    assert_int_equal(d.rq.stream, 0);
    assert_int_equal(d.rq.n_system, 0);
    assert_int_equal(d.rq.n_tools, 0);
    assert_int_equal(d.rq.n_stop, 0);
    assert_int_equal(d.rq.user.len, 0);
    assert_int_equal(d.rq.thinking.len, 0);
    agw_arena_free(&d.arena);

    /* null is "absent" for every optional field */
    assert_int_equal(decode(&d, S("{\"model\":\"m\",\"max_tokens\":null,\"system\":null,\"tools\":null,"
                                  "\"tool_choice\":null,\"temperature\":null,\"top_p\":null,"
                                  "\"top_k\":null,\"stop_sequences\":null,\"stream\":null,"
                                  "\"metadata\":{\"user_id\":null},\"thinking\":null,"
                                  "\"mcp_servers\":null,\"container\":null,"
                                  "\"messages\":[{\"role\":\"assistant\",\"content\":["
                                  "{\"type\":\"thinking\",\"thinking\":\"t\",\"signature\":null},"
                                  "{\"type\":\"text\",\"text\":\"x\",\"cache_control\":null}]}]}")),
                     AGW_OK);
    assert_int_equal(d.rq.max_tokens, -1);
    assert_int_equal(d.rq.user.len, 0);
    assert_int_equal(d.rq.messages[0].blocks[0].signature.len, 0);
    assert_int_equal(d.rq.messages[0].blocks[1].cache_control.len, 0);
    agw_arena_free(&d.arena);

    /* disable_parallel_tool_use false means parallel calls are allowed */
    assert_int_equal(decode(&d, S("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                                  "\"tool_choice\":{\"type\":\"any\",\"disable_parallel_tool_use\":false},"
                                  "\"max_tokens\":0,\"top_k\":0,\"temperature\":1,\"top_p\":0}")),
                     AGW_OK);
    assert_int_equal(d.rq.tool_choice, AGW_IR_TC_ANY);
    assert_int_equal(d.rq.parallel_tool_calls, 1);
    assert_int_equal(d.rq.max_tokens, 0);
    assert_int_equal(d.rq.top_k, 0);
    assert_true(d.rq.temperature == 1.0);
    assert_true(d.rq.has_top_p && d.rq.top_p == 0.0);
    agw_arena_free(&d.arena);
}

static void test_decode_tool_choice_kinds(void **state)
{
    static const struct {
        const char *tc;
        agw_ir_tool_choice want;
    } cases[] = {
        { "{\"type\":\"auto\"}", AGW_IR_TC_AUTO },
        { "{\"type\":\"any\"}", AGW_IR_TC_ANY },
        { "{\"type\":\"none\"}", AGW_IR_TC_NONE },
        { "{\"type\":\"tool\",\"name\":\"f\"}", AGW_IR_TC_TOOL },
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[256];
        decoded d;
        snprintf(body, sizeof body,
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                 "\"tool_choice\":%s}", cases[i].tc);
        assert_int_equal(decode(&d, agw_str_c(body)), AGW_OK);
        assert_int_equal(d.rq.tool_choice, cases[i].want);
        assert_int_equal(d.rq.parallel_tool_calls, -1);
        agw_arena_free(&d.arena);
    }
}

static void test_decode_duplicate_keys_last_wins(void **state)
{
    decoded d;
    (void)state;

    assert_int_equal(decode(&d, S("{\"model\":\"a\",\"model\":\"b\",\"messages\":5,"
                                  "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                                  "\"mod\\u0065l\":\"c\"}")),
                     AGW_OK);
    assert_str(d.rq.model, "c");
    agw_arena_free(&d.arena);
}

/* Strings without escapes are views into the body (no copy of big images);
 * strings with escapes are decoded into the arena. */
static void test_decode_views_and_copies(void **state)
{
    static const char body[] = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":["
                               "{\"type\":\"text\",\"text\":\"plain\"},"
                               "{\"type\":\"text\",\"text\":\"a\\tb\"}]}]}";
    decoded d;
    (void)state;

    assert_int_equal(decode(&d, A(body)), AGW_OK);
    agw_str t0 = d.rq.messages[0].blocks[0].text, t1 = d.rq.messages[0].blocks[1].text;
    assert_true(t0.ptr > body && t0.ptr < body + sizeof body);
    assert_str(t1, "a\tb");
    assert_false(t1.ptr > body && t1.ptr < body + sizeof body);
    agw_arena_free(&d.arena);
}

static void test_decode_ignored_fields(void **state)
{
    static const char *const extras[] = {
        "\"service_tier\":\"standard_only\"", "\"inference_geo\":\"us\"",
        "\"cache_control\":{\"type\":\"ephemeral\"}", "\"context_management\":{\"edits\":[]}",
        "\"anthropic_version\":\"vertex-2023-10-16\"", "\"output_config\":{\"effort\":\"low\"}",
        "\"output_config\":{\"format\":null}", "\"metadata\":{\"user_id\":\"u\",\"other\":1}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof extras / sizeof extras[0]; i++) {
        char body[256];
        decoded d;
        snprintf(body, sizeof body,
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],%s}",
                 extras[i]);
        if (decode(&d, agw_str_c(body)) != AGW_OK) {
            print_error("%s: %s\n", extras[i], d.err);
            fail();
        }
        agw_arena_free(&d.arena);
    }
}

#define MSG(content) "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":" content "}]}"
#define AMSG(content) \
    "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":" content "}]}"
#define WITH(extra) "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]," extra "}"

static void test_decode_rejections(void **state)
{
    static const struct {
        const char *body, *err;
    } cases[] = {
        { "[]", "the request body must be a JSON object" },
        { "{\"model\":\"m\",}", "the request body is not valid JSON: offset 13: expected a string key" },
        { "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model is required" },
        { "{\"model\":7,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model must be a string" },
        { "{\"model\":\"m\"}", "messages is required" },
        { "{\"model\":\"m\",\"messages\":{}}", "messages must be an array" },
        { "{\"model\":\"m\",\"messages\":[]}", "messages must not be empty" },
        { "{\"model\":\"m\",\"messages\":[1]}", "messages[0] must be an object" },
        { "{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", "messages[0].role is required" },
        { "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}",
          "messages[0].role must be \"user\" or \"assistant\"" },
        { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", "messages[0].content is required" },
        { MSG("null"), "messages[0].content must be a string or an array" },
        { MSG("[\"x\"]"), "messages[0].content[0] must be an object" },
        { MSG("[{\"text\":\"x\"}]"), "messages[0].content[0].type is required" },
        { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
          "{\"role\":\"assistant\",\"content\":\"b\"},"
          "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":5}]}]}",
          "messages[2].content[0].text must be a string" },
        { MSG("[{\"type\":\"text\"}]"), "messages[0].content[0].text is required" },
        { MSG("[{\"type\":\"text\",\"text\":\"x\",\"cache_control\":\"e\"}]"),
          "messages[0].content[0].cache_control must be an object" },
        { MSG("[{\"type\":\"document\",\"source\":{}}]"),
          "messages[0].content[0]: content block type document cannot be converted" },
        { MSG("[{\"type\":\"search_result\"}]"),
          "messages[0].content[0]: content block type search_result cannot be converted" },
        { MSG("[{\"type\":\"a\\u0000b\"}]"),
          "messages[0].content[0]: content block type a?b cannot be converted" },
        { MSG("[{\"type\":\"image\"}]"), "messages[0].content[0].source is required" },
        { MSG("[{\"type\":\"image\",\"source\":{\"type\":\"file\",\"file_id\":\"f\"}}]"),
          "messages[0].content[0].source: image source type file cannot be converted" },
        { MSG("[{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"data\":\"x\"}}]"),
          "messages[0].content[0].source.media_type is required" },
        { MSG("[{\"type\":\"image\",\"source\":{\"type\":\"url\"}}]"),
          "messages[0].content[0].source.url is required" },
        { AMSG("[{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"u\"}}]"),
          "messages[0].content[0]: image blocks are only allowed in user messages" },
        { MSG("[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\",\"input\":{}}]"),
          "messages[0].content[0]: tool_use blocks are only allowed in assistant messages" },
        { AMSG("[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\"}]"),
          "messages[0].content[0].input is required" },
        { AMSG("[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\",\"input\":\"{}\"}]"),
          "messages[0].content[0].input must be an object" },
        { AMSG("[{\"type\":\"tool_use\",\"name\":\"n\",\"input\":{}}]"),
          "messages[0].content[0].id is required" },
        { AMSG("[{\"type\":\"tool_result\",\"tool_use_id\":\"t\"}]"),
          "messages[0].content[0]: tool_result blocks are only allowed in user messages" },
        { MSG("[{\"type\":\"tool_result\"}]"), "messages[0].content[0].tool_use_id is required" },
        { MSG("[{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"content\":5}]"),
          "messages[0].content[0].content must be a string or an array" },
        { MSG("[{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"is_error\":\"yes\"}]"),
          "messages[0].content[0].is_error must be a boolean" },
        { MSG("[{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"content\":"
              "[{\"type\":\"text\",\"text\":\"ok\"},{\"type\":\"document\"}]}]"),
          "messages[0].content[0].content[1]: content block type document cannot be converted" },
        { MSG("[{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"content\":"
              "[{\"type\":\"tool_result\",\"tool_use_id\":\"u\"}]}]"),
          "messages[0].content[0].content[0]: content block type tool_result cannot be converted" },
        { MSG("[{\"type\":\"thinking\",\"thinking\":\"t\",\"signature\":\"s\"}]"),
          "messages[0].content[0]: thinking blocks are only allowed in assistant messages" },
        { MSG("[{\"type\":\"redacted_thinking\",\"data\":\"d\"}]"),
          "messages[0].content[0]: redacted_thinking blocks are only allowed in assistant messages" },
        { AMSG("[{\"type\":\"thinking\",\"signature\":\"s\"}]"),
          "messages[0].content[0].thinking is required" },
        { AMSG("[{\"type\":\"thinking\",\"thinking\":\"t\",\"signature\":1}]"),
          "messages[0].content[0].signature must be a string" },
        { AMSG("[{\"type\":\"redacted_thinking\"}]"), "messages[0].content[0].data is required" },
        { WITH("\"system\":5"), "system must be a string or an array" },
        { WITH("\"system\":[{\"type\":\"image\",\"source\":{}}]"),
          "system[0].type must be \"text\" in system" },
        { WITH("\"system\":[{\"type\":\"text\",\"text\":null}]"), "system[0].text must be a string" },
        { WITH("\"tools\":{}"), "tools must be an array" },
        { WITH("\"tools\":[5]"), "tools[0] must be an object" },
        { WITH("\"tools\":[{\"type\":\"web_search_20250305\",\"name\":\"web_search\"}]"),
          "tools[0]: tool type web_search_20250305 cannot be converted" },
        { WITH("\"tools\":[{\"input_schema\":{}}]"), "tools[0].name is required" },
        { WITH("\"tools\":[{\"name\":\"f\"}]"), "tools[0].input_schema is required" },
        { WITH("\"tools\":[{\"name\":\"f\",\"input_schema\":[]}]"),
          "tools[0].input_schema must be an object" },
        { WITH("\"tools\":[{\"name\":\"f\",\"input_schema\":{},\"description\":1}]"),
          "tools[0].description must be a string" },
        { WITH("\"tools\":[{\"name\":\"f\",\"input_schema\":{},\"strict\":true}]"),
          "tools[0].strict cannot be converted" },
        { WITH("\"tool_choice\":\"auto\""), "tool_choice must be an object" },
        { WITH("\"tool_choice\":{}"), "tool_choice.type is required" },
        { WITH("\"tool_choice\":{\"type\":\"required\"}"),
          "tool_choice.type must be \"auto\", \"any\", \"none\" or \"tool\"" },
        { WITH("\"tool_choice\":{\"type\":\"tool\"}"), "tool_choice.name is required" },
        { WITH("\"tool_choice\":{\"type\":\"auto\",\"disable_parallel_tool_use\":1}"),
          "tool_choice.disable_parallel_tool_use must be a boolean" },
        { WITH("\"temperature\":1.5"), "temperature must be between 0 and 1" },
        { WITH("\"temperature\":-0.1"), "temperature must be between 0 and 1" },
        { WITH("\"temperature\":1e400"), "temperature must be between 0 and 1" },
        { WITH("\"temperature\":\"0.5\""), "temperature must be a number" },
        { WITH("\"top_p\":2"), "top_p must be between 0 and 1" },
        { WITH("\"top_k\":-1"), "top_k is out of range" },
        { WITH("\"top_k\":1.5"), "top_k must be an integer" },
        { WITH("\"max_tokens\":\"1024\""), "max_tokens must be an integer" },
        { WITH("\"max_tokens\":1e3"), "max_tokens must be an integer" },
        { WITH("\"max_tokens\":-5"), "max_tokens is out of range" },
        { WITH("\"max_tokens\":99999999999999999999"), "max_tokens is out of range" },
        { WITH("\"stop_sequences\":\"END\""), "stop_sequences must be an array" },
        { WITH("\"stop_sequences\":[\"a\",2]"), "stop_sequences[1] must be a string" },
        { WITH("\"stream\":\"true\""), "stream must be a boolean" },
        { WITH("\"metadata\":[]"), "metadata must be an object" },
        { WITH("\"metadata\":{\"user_id\":5}"), "metadata.user_id must be a string" },
        { WITH("\"thinking\":true"), "thinking must be an object" },
        { WITH("\"mcp_servers\":[]"), "mcp_servers cannot be converted for a model of another provider" },
        { WITH("\"container\":\"c\""), "container cannot be converted for a model of another provider" },
        { WITH("\"output_format\":{}"),
          "output_format cannot be converted for a model of another provider" },
        { WITH("\"output_config\":{\"format\":{\"type\":\"json_schema\"}}"),
          "output_config.format cannot be converted" },
        { WITH("\"output_config\":1"), "output_config must be an object" },
        { WITH("\"frequency_penalty\":0"), "unknown field frequency_penalty" },
        { WITH("\"\\u0001\\u00e9\":0"), "unknown field ?\xc3\xa9" },
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        decoded d;
        agw_err e = decode(&d, agw_str_c(cases[i].body));
        if (e != AGW_EINVAL || strcmp(d.err, cases[i].err) != 0) {
            print_error("case %zu: %s\n  got %d [%s]\n  want [%s]\n", i, cases[i].body, e, d.err,
                        cases[i].err);
            fail();
        }
        agw_arena_free(&d.arena);
    }
}

static void append_repeated(agw_buf *b, const char *head, const char *item, int n, const char *tail)
{
    assert_int_equal(agw_buf_append_str(b, agw_str_c(head)), AGW_OK);
    for (int i = 0; i < n; i++) {
        if (i)
            assert_int_equal(agw_buf_append_str(b, S(",")), AGW_OK);
        assert_int_equal(agw_buf_append_str(b, agw_str_c(item)), AGW_OK);
    }
    assert_int_equal(agw_buf_append_str(b, agw_str_c(tail)), AGW_OK);
}

static void test_decode_bounds(void **state)
{
    static const char msg[] = "{\"role\":\"user\",\"content\":\"x\"}";
    static const char tool[] = "{\"name\":\"f\",\"input_schema\":{}}";
    static const char tools_head[] =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[";
    agw_buf b = AGW_BUF_INIT(SIZE_MAX);
    decoded d;
    (void)state;

    append_repeated(&b, "{\"model\":\"m\",\"messages\":[", msg, 10000, "]}");
    assert_int_equal(decode(&d, agw_buf_view(&b)), AGW_OK);
    assert_int_equal(d.rq.n_messages, 10000);
    agw_arena_free(&d.arena);
    agw_buf_reset(&b);
    append_repeated(&b, "{\"model\":\"m\",\"messages\":[", msg, 10001, "]}");
    assert_int_equal(decode(&d, agw_buf_view(&b)), AGW_EINVAL);
    assert_string_equal(d.err, "messages has more than 10000 entries");
    agw_arena_free(&d.arena);

    agw_buf_reset(&b);
    append_repeated(&b, tools_head, tool, 1000, "]}");
    assert_int_equal(decode(&d, agw_buf_view(&b)), AGW_OK);
    assert_int_equal(d.rq.n_tools, 1000);
    agw_arena_free(&d.arena);
    agw_buf_reset(&b);
    append_repeated(&b, tools_head, tool, 1001, "]}");
    assert_int_equal(decode(&d, agw_buf_view(&b)), AGW_EINVAL);
    assert_string_equal(d.err, "tools has more than 1000 entries");
    agw_arena_free(&d.arena);

    /* nesting past the gateway's depth limit */
    agw_buf_reset(&b);
    append_repeated(&b, "{\"model\":\"m\",\"thinking\":", "", 0, "");
    for (int i = 0; i < 200; i++)
        assert_int_equal(agw_buf_append_str(&b, S("{\"a\":")), AGW_OK);
    assert_int_equal(decode(&d, agw_buf_view(&b)), AGW_EINVAL);
    assert_string_equal(d.err, "the request body is nested too deeply");
    agw_arena_free(&d.arena);
    agw_buf_free(&b);
}

/* Many tiny elements where blocks belong: refused at the first one, without
 * first allocating an IR block for each of them. */
static void test_decode_tiny_blocks(void **state)
{
    agw_buf b = AGW_BUF_INIT(SIZE_MAX);
    decoded d;
    (void)state;

    append_repeated(&b, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[", "{}",
                    1000000, "]}]}");
    assert_int_equal(decode(&d, agw_buf_view(&b)), AGW_EINVAL);
    assert_string_equal(d.err, "messages[0].content[0].type is required");
    agw_arena_free(&d.arena);
    agw_buf_free(&b);
}

/* ---- request encoding ---- */

static void rq_init(agw_ir_request *rq)
{
    memset(rq, 0, sizeof *rq);
    rq->max_tokens = -1;
    rq->top_k = -1;
    rq->parallel_tool_calls = -1;
}

static agw_ir_block text(agw_str s)
{
    agw_ir_block b;
    memset(&b, 0, sizeof b);
    b.kind = AGW_IR_TEXT;
    b.text = s;
    return b;
}

static agw_ir_block thinking(const char *t, const char *sig)
{
    agw_ir_block b;
    memset(&b, 0, sizeof b);
    b.kind = AGW_IR_THINKING;
    b.text = agw_str_c(t);
    b.signature = agw_str_c(sig);
    return b;
}

static agw_ir_block tool_use(const char *id, const char *name, const char *input)
{
    agw_ir_block b;
    memset(&b, 0, sizeof b);
    b.kind = AGW_IR_TOOL_USE;
    b.tool_id = agw_str_c(id);
    b.tool_name = agw_str_c(name);
    b.tool_input = agw_str_c(input);
    return b;
}

static agw_ir_block tool_result(const char *id, agw_ir_block *content, size_t n, int is_error)
{
    agw_ir_block b;
    memset(&b, 0, sizeof b);
    b.kind = AGW_IR_TOOL_RESULT;
    b.tool_id = agw_str_c(id);
    b.content = content;
    b.n_content = n;
    b.is_error = is_error;
    return b;
}

static agw_ir_block image_b64(const char *type, const char *data)
{
    agw_ir_block b;
    memset(&b, 0, sizeof b);
    b.kind = AGW_IR_IMAGE;
    b.media_type = agw_str_c(type);
    b.image_data = agw_str_c(data);
    return b;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void expect_encoded_as(const agw_ir_request *rq, const char *want, size_t want_len)
{
    agw_buf out = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    char err[256] = "";
    agw_err e = agw_anthropic_encode_request(rq, &out, err, sizeof err);
    if (e != AGW_OK) {
        print_error("encode failed: %d %s\n", e, err);
        fail();
    }
    assert_view(agw_buf_view(&out), want, want_len);
    assert_int_equal(agw_json_validate(agw_buf_view(&out), 128, NULL, 0), AGW_OK);
    agw_buf_free(&out);
}

/* `want` is the streamed form ("stream":true): the request is encoded once
 * streaming, and once not, which must give the same body without that member. */
static void expect_encoded(const agw_ir_request *rq, const char *want, size_t want_len)
{
    static const char member[] = ",\"stream\":true";
    agw_ir_request copy = *rq;
    copy.stream = 1;
    expect_encoded_as(&copy, want, want_len);
    const char *at = memmem(want, want_len, member, sizeof member - 1);
    assert_non_null(at);
    char *plain = malloc(want_len);
    size_t head = (size_t)(at - want), tail = want_len - head - (sizeof member - 1);
    memcpy(plain, want, head);
    memcpy(plain + head, at + sizeof member - 1, tail);
    copy.stream = 0;
    expect_encoded_as(&copy, plain, head + tail);
    free(plain);
}

#define EXPECT_ENCODED(rq, lit) expect_encoded((rq), "" lit, sizeof(lit) - 1)

static void expect_encode_fails(const agw_ir_request *rq, const char *want_err)
{
    agw_buf out = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    char err[256] = "";

    assert_int_equal(agw_buf_append_str(&out, S("prefix")), AGW_OK);
    assert_int_equal(agw_anthropic_encode_request(rq, &out, err, sizeof err), AGW_EINVAL);
    assert_string_equal(err, want_err);
    /* nothing of the failed encode is left behind */
    assert_str(agw_buf_view(&out), "prefix");
    agw_buf_free(&out);
}

static void test_encode_full(void **state)
{
    agw_ir_block sys[] = { text(S("Sys")), text(S("")) };
    agw_ir_block m0[] = { text(S("Hi")) };
    agw_ir_block m1[] = { text(S("")), image_b64("image/png", "AAAA") };
    agw_ir_block m2[] = { thinking("unsigned", ""), thinking("t", "s"), text(S("ok")),
                          tool_use("t1", "get", "{\"a\": 1}") };
    agw_ir_block m3[] = { text(S("")) };
    agw_ir_block r1[] = { text(S("r1")), text(S("")) };
    agw_ir_block m4[] = { text(S("after")), tool_result("t1", r1, N(r1), 1) };
    agw_ir_block m5[] = { tool_result("t2", NULL, 0, 0) };
    agw_ir_block m6[] = { { .kind = AGW_IR_REDACTED_THINKING, .text = S("R") } };
    agw_ir_message msgs[] = {
        { AGW_IR_USER, m0, N(m0) },      { AGW_IR_USER, m1, N(m1) },
        { AGW_IR_ASSISTANT, m2, N(m2) }, { AGW_IR_ASSISTANT, m3, N(m3) },
        { AGW_IR_USER, m4, N(m4) },      { AGW_IR_USER, m5, N(m5) },
        { AGW_IR_ASSISTANT, m6, N(m6) },
    };
    agw_ir_tool tools[] = {
        { S("get"), S("Fetch it"), S("{\"type\":\"object\",\"properties\":{}}"),
          S("{\"type\":\"ephemeral\"}") },
        { S("put"), S(""), S("{ \"properties\": {} }"), S("") },
        { S("none"), S(""), S(""), S("") },
        { S("empty"), S(""), S("{}"), S("") },
    };
    agw_str stop[] = { S("END"), S("\n") };
    agw_ir_request rq;
    (void)state;

    rq_init(&rq);
    rq.model = S("claude-sonnet-4-5");
    rq.system = sys;
    rq.n_system = N(sys);
    rq.messages = msgs;
    rq.n_messages = N(msgs);
    rq.tools = tools;
    rq.n_tools = N(tools);
    rq.tool_choice = AGW_IR_TC_TOOL;
    rq.tool_choice_name = S("get");
    rq.parallel_tool_calls = 0;
    rq.has_temperature = 1;
    rq.temperature = 0.7;
    rq.has_top_p = 1;
    rq.top_p = 0.95;
    rq.top_k = 5;
    rq.stop = stop;
    rq.n_stop = N(stop);
    rq.stream = 0;
    rq.user = S("u1");
    rq.thinking = S("{\"type\":\"enabled\",\"budget_tokens\":1024}");
    EXPECT_ENCODED(&rq,
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":4096,\"stream\":true,\"system\":\"Sys\","
        "\"messages\":["
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"},"
        "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"AAAA\"}}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"t\",\"signature\":\"s\"},"
        "{\"type\":\"text\",\"text\":\"ok\"},"
        "{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"get\",\"input\":{\"a\": 1}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\","
        "\"content\":[{\"type\":\"text\",\"text\":\"r1\"}],\"is_error\":true},"
        "{\"type\":\"tool_result\",\"tool_use_id\":\"t2\"},{\"type\":\"text\",\"text\":\"after\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"redacted_thinking\",\"data\":\"R\"}]}],"
        "\"tools\":[{\"name\":\"get\",\"description\":\"Fetch it\","
        "\"input_schema\":{\"type\":\"object\",\"properties\":{}},\"cache_control\":{\"type\":\"ephemeral\"}},"
        "{\"name\":\"put\",\"input_schema\":{\"type\":\"object\", \"properties\": {} }},"
        "{\"name\":\"none\",\"input_schema\":{\"type\":\"object\"}},"
        "{\"name\":\"empty\",\"input_schema\":{\"type\":\"object\"}}],"
        "\"tool_choice\":{\"type\":\"tool\",\"name\":\"get\",\"disable_parallel_tool_use\":true},"
        "\"temperature\":0.7,\"top_p\":0.95,\"top_k\":5,\"stop_sequences\":[\"END\",\"\\n\"],"
        "\"metadata\":{\"user_id\":\"u1\"},\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024}}");
}

static void test_encode_minimal_and_system_forms(void **state)
{
    agw_ir_block m0[] = { text(S("Hi")) };
    agw_ir_message msgs[] = { { AGW_IR_USER, m0, 1 } };
    agw_ir_block sys_cc[] = { { .kind = AGW_IR_TEXT, .text = S("A"),
                                .cache_control = S("{\"type\":\"ephemeral\"}") } };
    agw_ir_block sys_two[] = { text(S("A")), text(S("")), text(S("B")) };
    agw_ir_request rq;
    (void)state;

    rq_init(&rq);
    rq.model = S("m");
    rq.messages = msgs;
    rq.n_messages = 1;
    rq.max_tokens = 12;
    EXPECT_ENCODED(&rq, "{\"model\":\"m\",\"max_tokens\":12,\"stream\":true,\"messages\":["
                        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}]}");

    rq.system = sys_cc;
    rq.n_system = 1;
    EXPECT_ENCODED(&rq, "{\"model\":\"m\",\"max_tokens\":12,\"stream\":true,"
                        "\"system\":[{\"type\":\"text\",\"text\":\"A\",\"cache_control\":{\"type\":\"ephemeral\"}}],"
                        "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}]}");
    rq.system = sys_two;
    rq.n_system = N(sys_two);
    EXPECT_ENCODED(&rq, "{\"model\":\"m\",\"max_tokens\":12,\"stream\":true,"
                        "\"system\":[{\"type\":\"text\",\"text\":\"A\"},{\"type\":\"text\",\"text\":\"B\"}],"
                        "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}]}");
    /* only empty system blocks: no system at all */
    rq.system = sys_two + 1;
    rq.n_system = 1;
    EXPECT_ENCODED(&rq, "{\"model\":\"m\",\"max_tokens\":12,\"stream\":true,\"messages\":["
                        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}]}");
}

/* The reference no longer requires a leading user turn: an assistant-first
 * conversation goes as it is, without an invented user turn. */
static void test_encode_assistant_first(void **state)
{
    agw_ir_block a[] = { text(S("Hello, how can I help?")) };
    agw_ir_block u[] = { text(S("Tell me")) };
    agw_ir_message msgs[] = { { AGW_IR_ASSISTANT, a, 1 }, { AGW_IR_USER, u, 1 } };
    agw_ir_request rq;
    (void)state;

    rq_init(&rq);
    rq.model = S("m");
    rq.messages = msgs;
    rq.n_messages = 2;
    EXPECT_ENCODED(&rq, "{\"model\":\"m\",\"max_tokens\":4096,\"stream\":true,\"messages\":["
                        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Hello, how can I help?\"}]},"
                        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Tell me\"}]}]}");
}

/* Dropping an emptied turn joins its neighbours into one turn. */
static void test_encode_merge_across_dropped(void **state)
{
    agw_ir_block u1[] = { text(S("a")) };
    agw_ir_block a1[] = { text(S("")), thinking("no signature", "") };
    agw_ir_block u2[] = { text(S("b")) };
    agw_ir_message msgs[] = { { AGW_IR_USER, u1, 1 }, { AGW_IR_ASSISTANT, a1, 2 },
                              { AGW_IR_USER, u2, 1 } };
    agw_ir_request rq;
    (void)state;

    rq_init(&rq);
    rq.model = S("m");
    rq.messages = msgs;
    rq.n_messages = 3;
    EXPECT_ENCODED(&rq, "{\"model\":\"m\",\"max_tokens\":4096,\"stream\":true,\"messages\":["
                        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                        "{\"type\":\"text\",\"text\":\"b\"}]}]}");

    /* nothing left at all */
    msgs[0].blocks = a1;
    msgs[0].n_blocks = 1;
    msgs[2].blocks = a1;
    msgs[2].n_blocks = 1;
    expect_encode_fails(&rq, "messages: nothing is left to send once empty messages are removed");
}

static void test_encode_tool_choice(void **state)
{
    static const struct {
        agw_ir_tool_choice tc;
        int parallel;
        const char *want; /* the tool_choice member, "" for none */
    } cases[] = {
        { AGW_IR_TC_AUTO, -1, ",\"tool_choice\":{\"type\":\"auto\"}" },
        { AGW_IR_TC_AUTO, 1, ",\"tool_choice\":{\"type\":\"auto\"}" },
        { AGW_IR_TC_AUTO, 0, ",\"tool_choice\":{\"type\":\"auto\",\"disable_parallel_tool_use\":true}" },
        { AGW_IR_TC_ANY, -1, ",\"tool_choice\":{\"type\":\"any\"}" },
        { AGW_IR_TC_ANY, 0, ",\"tool_choice\":{\"type\":\"any\",\"disable_parallel_tool_use\":true}" },
        { AGW_IR_TC_NONE, -1, ",\"tool_choice\":{\"type\":\"none\"}" },
        { AGW_IR_TC_NONE, 0, ",\"tool_choice\":{\"type\":\"none\"}" },
        { AGW_IR_TC_TOOL, -1, ",\"tool_choice\":{\"type\":\"tool\",\"name\":\"f\"}" },
        { AGW_IR_TC_UNSET, -1, "" },
        { AGW_IR_TC_UNSET, 1, "" },
        { AGW_IR_TC_UNSET, 0, ",\"tool_choice\":{\"type\":\"auto\",\"disable_parallel_tool_use\":true}" },
    };
    agw_ir_block u[] = { text(S("x")) };
    agw_ir_message msgs[] = { { AGW_IR_USER, u, 1 } };
    agw_ir_tool tools[] = { { S("f"), S(""), S("{\"type\":\"object\"}"), S("") } };
    agw_ir_request rq;
    (void)state;

    rq_init(&rq);
    rq.model = S("m");
    rq.messages = msgs;
    rq.n_messages = 1;
    rq.tools = tools;
    rq.n_tools = 1;
    rq.tool_choice_name = S("f");
    for (size_t i = 0; i < N(cases); i++) {
        char want[512];
        snprintf(want, sizeof want,
                 "{\"model\":\"m\",\"max_tokens\":4096,\"stream\":true,\"messages\":["
                 "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}],"
                 "\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\"}}]%s}",
                 cases[i].want);
        rq.tool_choice = cases[i].tc;
        rq.parallel_tool_calls = cases[i].parallel;
        expect_encoded(&rq, want, strlen(want));
    }

    /* parallel_tool_calls false without tools: nothing to say */
    rq.n_tools = 0;
    rq.tool_choice = AGW_IR_TC_UNSET;
    rq.parallel_tool_calls = 0;
    EXPECT_ENCODED(&rq, "{\"model\":\"m\",\"max_tokens\":4096,\"stream\":true,\"messages\":["
                        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}]}");
    rq.tool_choice = AGW_IR_TC_AUTO;
    expect_encode_fails(&rq, "tool_choice is set but there are no tools");
    rq.n_tools = 1;
    rq.tool_choice = AGW_IR_TC_TOOL;
    rq.tool_choice_name = S("");
    expect_encode_fails(&rq, "tool_choice names no tool");
}

static void test_encode_sampling(void **state)
{
    agw_ir_block u[] = { text(S("x")) };
    agw_ir_message msgs[] = { { AGW_IR_USER, u, 1 } };
    agw_ir_request rq;
    (void)state;

    rq_init(&rq);
    rq.model = S("m");
    rq.messages = msgs;
    rq.n_messages = 1;
    rq.has_temperature = 1;
    rq.temperature = 1.0;
    rq.has_top_p = 1;
    rq.top_p = 1.0; /* a no-op, left out */
    rq.top_k = 0;
    EXPECT_ENCODED(&rq, "{\"model\":\"m\",\"max_tokens\":4096,\"stream\":true,\"messages\":["
                        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}],"
                        "\"temperature\":1,\"top_k\":0}");
    rq.temperature = 0.0;
    rq.top_p = 1e-5;
    rq.top_k = -1;
    EXPECT_ENCODED(&rq, "{\"model\":\"m\",\"max_tokens\":4096,\"stream\":true,\"messages\":["
                        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}],"
                        "\"temperature\":0,\"top_p\":1e-05}");
    rq.temperature = 1.5;
    expect_encode_fails(&rq, "temperature 1.5 is outside Anthropic's 0..1 range");
    rq.temperature = 2;
    expect_encode_fails(&rq, "temperature 2 is outside Anthropic's 0..1 range");
    rq.temperature = -0.25;
    expect_encode_fails(&rq, "temperature -0.25 is outside Anthropic's 0..1 range");
    rq.temperature = 0.5;
    rq.top_p = 1.01;
    expect_encode_fails(&rq, "top_p 1.01 is outside the 0..1 range");
}

static void test_encode_rejections(void **state)
{
    agw_ir_block img[] = { image_b64("image/png", "AAAA") };
    agw_ir_block th[] = { thinking("t", "s") };
    agw_ir_block tu[] = { tool_use("t1", "f", "[1]") };
    agw_ir_block bad_input[] = { tool_use("t1", "f", "{\"a\":") };
    agw_ir_block tr[] = { tool_result("t1", NULL, 0, 0) };
    agw_ir_block nested_bad[] = { tool_use("t9", "g", "{}") };
    agw_ir_block tr_bad[] = { tool_result("t1", nested_bad, 1, 0) };
    agw_ir_block img_nomt[] = { image_b64("", "AAAA") };
    agw_ir_block cc_bad[] = { { .kind = AGW_IR_TEXT, .text = S("x"), .cache_control = S("[]") } };
    agw_ir_block tu_ok_user[] = { text(S("hi")) };
    agw_ir_block tu_ok[] = { text(S("hello")) };
    agw_ir_message msgs[1];
    agw_ir_request rq;
    (void)state;

    rq_init(&rq);
    rq.model = S("m");
    rq.messages = msgs;
    rq.n_messages = 1;

    msgs[0] = (agw_ir_message){ AGW_IR_ASSISTANT, img, 1 };
    expect_encode_fails(&rq, "messages[0]: image blocks are only allowed in user turns");
    msgs[0] = (agw_ir_message){ AGW_IR_ASSISTANT, tr, 1 };
    expect_encode_fails(&rq, "messages[0]: tool_result blocks are only allowed in user turns");
    msgs[0] = (agw_ir_message){ AGW_IR_USER, th, 1 };
    expect_encode_fails(&rq, "messages[0]: thinking blocks are only allowed in assistant turns");
    msgs[0] = (agw_ir_message){ AGW_IR_USER, tu, 1 };
    expect_encode_fails(&rq, "messages[0]: tool_use blocks are only allowed in assistant turns");
    msgs[0] = (agw_ir_message){ AGW_IR_ASSISTANT, tu, 1 };
    expect_encode_fails(&rq, "messages[0].content[0]: the input of tool call f is not a JSON object");
    msgs[0] = (agw_ir_message){ AGW_IR_ASSISTANT, bad_input, 1 };
    expect_encode_fails(&rq, "messages[0].content[0]: the input of tool call f is not a JSON object");
    msgs[0] = (agw_ir_message){ AGW_IR_USER, tr_bad, 1 };
    expect_encode_fails(&rq, "messages[0].content[0]: a tool_result may only hold text and images");
    msgs[0] = (agw_ir_message){ AGW_IR_USER, img_nomt, 1 };
    expect_encode_fails(&rq, "messages[0].content[0]: a base64 image has no media type");
    msgs[0] = (agw_ir_message){ AGW_IR_USER, cc_bad, 1 };
    expect_encode_fails(&rq, "a cache_control mark is not a JSON object");

    /* The place names the message and the block, in that order. */
    agw_ir_block second_bad[] = { text(S("fine")), image_b64("", "AAAA") };
    agw_ir_message two[3] = { { AGW_IR_USER, tu_ok_user, 1 }, { AGW_IR_ASSISTANT, tu_ok, 1 },
                              { AGW_IR_USER, second_bad, 2 } };
    rq.messages = two;
    rq.n_messages = 3;
    expect_encode_fails(&rq, "messages[2].content[1]: a base64 image has no media type");
    rq.messages = msgs;
    rq.n_messages = 1;

    agw_ir_block ok[] = { text(S("x")) };
    agw_ir_tool bad_schema[] = { { S("f"), S(""), S("[]"), S("") } };
    msgs[0] = (agw_ir_message){ AGW_IR_USER, ok, 1 };
    rq.tools = bad_schema;
    rq.n_tools = 1;
    expect_encode_fails(&rq, "tools[0]: the parameter schema is not a JSON object");
    rq.n_tools = 0;
    rq.thinking = S("{\"type\":");
    expect_encode_fails(&rq, "thinking is not a JSON object");
}

/* An empty tool input means a call without arguments: "{}". */
static void test_encode_empty_tool_input_and_images(void **state)
{
    agw_ir_block a[] = { tool_use("t1", "now", "") };
    agw_ir_block url = { .kind = AGW_IR_IMAGE, .image_is_url = 1, .image_data = S("https://i/x.jpg"),
                         .cache_control = S("{\"type\":\"ephemeral\"}") };
    agw_ir_block rc[] = { text(S("see")), url };
    agw_ir_block u[] = { tool_result("t1", rc, 2, 0), url };
    agw_ir_message msgs[] = { { AGW_IR_ASSISTANT, a, 1 }, { AGW_IR_USER, u, 2 } };
    agw_ir_request rq;
    (void)state;

    rq_init(&rq);
    rq.model = S("m");
    rq.messages = msgs;
    rq.n_messages = 2;
    EXPECT_ENCODED(&rq,
        "{\"model\":\"m\",\"max_tokens\":4096,\"stream\":true,\"messages\":["
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"now\",\"input\":{}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"content\":["
        "{\"type\":\"text\",\"text\":\"see\"},"
        "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://i/x.jpg\"},"
        "\"cache_control\":{\"type\":\"ephemeral\"}}]},"
        "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://i/x.jpg\"},"
        "\"cache_control\":{\"type\":\"ephemeral\"}}]}]}");
}

/* \u0000, a surrogate pair and U+2028 survive decode -> encode; U+2028 is
 * valid raw inside JSON strings and SSE lines, so it stays raw. */
static void test_request_round_trip_strings(void **state)
{
    static const char body[] =
        "{\"model\":\"m\",\"system\":\"s\\u0000y\","
        "\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b \\ud83d\\ude00 \\u2028 \\\"q\\\" \\ud800\"}],"
        "\"stop_sequences\":[\"\\u0000\"],\"metadata\":{\"user_id\":\"\\u00e9\"}}";
    decoded d;
    agw_buf out = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    char err[128];
    (void)state;

    assert_int_equal(decode(&d, A(body)), AGW_OK);
    assert_str(d.rq.messages[0].blocks[0].text,
               "a\0b \xf0\x9f\x98\x80 \xe2\x80\xa8 \"q\" \xef\xbf\xbd");
    assert_str(d.rq.system[0].text, "s\0y");
    assert_int_equal(agw_anthropic_encode_request(&d.rq, &out, err, sizeof err), AGW_OK);
    /* A client that did not ask for a stream gets no stream upstream. */
    assert_str(agw_buf_view(&out),
               "{\"model\":\"m\",\"max_tokens\":4096,\"system\":\"s\\u0000y\","
               "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
               "\"a\\u0000b \xf0\x9f\x98\x80 \xe2\x80\xa8 \\\"q\\\" \xef\xbf\xbd\"}]}],"
               "\"stop_sequences\":[\"\\u0000\"],\"metadata\":{\"user_id\":\"\xc3\xa9\"}}");
    agw_buf_free(&out);
    agw_arena_free(&d.arena);
}

/* What the decoder accepts, the encoder writes so that the decoder reads it
 * back to the same request (tool inputs, schemas, marks spliced raw). */
static void test_request_reencode_is_stable(void **state)
{
    static const char body[] =
        "{\"model\":\"m\",\"max_tokens\":100,\"stream\":true,"
        "\"system\":[{\"type\":\"text\",\"text\":\"A\",\"cache_control\":{\"type\":\"ephemeral\"}}],"
        "\"messages\":[{\"role\":\"user\",\"content\":\"q\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"t\",\"signature\":\"s\"},"
        "{\"type\":\"tool_use\",\"id\":\"i\",\"name\":\"n\",\"input\":{\"big\":12345678901234567890}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"i\",\"content\":\"r\"}]}],"
        "\"tools\":[{\"name\":\"n\",\"input_schema\":{\"type\":\"object\"}}],"
        "\"tool_choice\":{\"type\":\"any\",\"disable_parallel_tool_use\":true},"
        "\"temperature\":0.3,\"top_k\":3,\"stop_sequences\":[\"x\"],"
        "\"metadata\":{\"user_id\":\"u\"},\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024}}";
    decoded d1, d2;
    agw_buf o1 = AGW_BUF_INIT(AGW_LIMIT_SMALL), o2 = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    char err[128];
    (void)state;

    assert_int_equal(decode(&d1, A(body)), AGW_OK);
    assert_int_equal(agw_anthropic_encode_request(&d1.rq, &o1, err, sizeof err), AGW_OK);
    assert_int_equal(decode(&d2, agw_buf_view(&o1)), AGW_OK);
    assert_int_equal(agw_anthropic_encode_request(&d2.rq, &o2, err, sizeof err), AGW_OK);
    assert_view(agw_buf_view(&o2), o1.data, o1.len);
    assert_non_null(strstr(o1.data, "{\"big\":12345678901234567890}"));
    agw_buf_free(&o1);
    agw_buf_free(&o2);
    agw_arena_free(&d1.arena);
    agw_arena_free(&d2.arena);
}

/* ---- stream decoding ---- */

/* Every IR event as one line, so a whole sequence compares as one string. */
static void log_str(agw_buf *log, agw_str s)
{
    assert_int_equal(agw_buf_append_str(log, S("\"")), AGW_OK);
    assert_int_equal(agw_buf_append_json_escaped(log, s), AGW_OK);
    assert_int_equal(agw_buf_append_str(log, S("\"")), AGW_OK);
}

static void log_event(agw_buf *log, const agw_ir_event *ev)
{
    static const char *const kinds[] = { "text", "image", "tool_use", "tool_result", "thinking",
                                         "redacted_thinking" };
    static const char *const deltas[] = { "text", "json", "thinking", "signature" };
    char tmp[160];

    switch (ev->kind) {
    case AGW_IR_EV_MESSAGE_START:
        assert_int_equal(agw_buf_append_str(log, S("message_start ")), AGW_OK);
        log_str(log, ev->id);
        assert_int_equal(agw_buf_append_str(log, S(" ")), AGW_OK);
        log_str(log, ev->model);
        snprintf(tmp, sizeof tmp, " in=%lld out=%lld cr=%lld cw=%lld\n", (long long)ev->usage.input,
                 (long long)ev->usage.output, (long long)ev->usage.cache_read,
                 (long long)ev->usage.cache_write);
        break;
    case AGW_IR_EV_BLOCK_START:
        snprintf(tmp, sizeof tmp, "block_start %d %s", ev->index, kinds[ev->block]);
        assert_int_equal(agw_buf_append_str(log, agw_str_c(tmp)), AGW_OK);
        if (ev->block == AGW_IR_TOOL_USE) {
            assert_int_equal(agw_buf_append_str(log, S(" ")), AGW_OK);
            log_str(log, ev->tool_id);
            assert_int_equal(agw_buf_append_str(log, S(" ")), AGW_OK);
            log_str(log, ev->tool_name);
        }
        if (ev->block == AGW_IR_REDACTED_THINKING) {
            assert_int_equal(agw_buf_append_str(log, S(" ")), AGW_OK);
            log_str(log, ev->delta);
        }
        snprintf(tmp, sizeof tmp, "\n");
        break;
    case AGW_IR_EV_BLOCK_DELTA:
        snprintf(tmp, sizeof tmp, "block_delta %d %s ", ev->index, deltas[ev->delta_kind]);
        assert_int_equal(agw_buf_append_str(log, agw_str_c(tmp)), AGW_OK);
        log_str(log, ev->delta);
        snprintf(tmp, sizeof tmp, "\n");
        break;
    case AGW_IR_EV_BLOCK_STOP:
        snprintf(tmp, sizeof tmp, "block_stop %d\n", ev->index);
        break;
    case AGW_IR_EV_MESSAGE_DELTA:
        snprintf(tmp, sizeof tmp, "message_delta %s ",
                 agw_ir_stop_name(ev->stop) ? agw_ir_stop_name(ev->stop) : "-");
        assert_int_equal(agw_buf_append_str(log, agw_str_c(tmp)), AGW_OK);
        log_str(log, ev->stop_sequence);
        snprintf(tmp, sizeof tmp, " in=%lld out=%lld cr=%lld cw=%lld\n", (long long)ev->usage.input,
                 (long long)ev->usage.output, (long long)ev->usage.cache_read,
                 (long long)ev->usage.cache_write);
        break;
    case AGW_IR_EV_MESSAGE_STOP:
        snprintf(tmp, sizeof tmp, "message_stop\n");
        break;
    case AGW_IR_EV_ERROR:
        snprintf(tmp, sizeof tmp, "error %d ", ev->status);
        assert_int_equal(agw_buf_append_str(log, agw_str_c(tmp)), AGW_OK);
        log_str(log, ev->error_type);
        assert_int_equal(agw_buf_append_str(log, S(" ")), AGW_OK);
        log_str(log, ev->error_message);
        snprintf(tmp, sizeof tmp, "\n");
        break;
    case AGW_IR_EV_PING:
        snprintf(tmp, sizeof tmp, "ping\n");
        break;
    }
    assert_int_equal(agw_buf_append_str(log, agw_str_c(tmp)), AGW_OK);
}

/* A sink that logs, folds and re-encodes every event. */
typedef struct {
    agw_buf log;
    agw_ir_fold fold;
    agw_anthropic_stream_encoder enc;
    agw_buf sse;
    int stop_after; /* return non-zero once this many events were seen; 0 never */
    int seen;
} rec_t;

static int rec_sink(void *ud, const agw_ir_event *ev)
{
    rec_t *r = ud;

    log_event(&r->log, ev);
    assert_int_equal(agw_ir_fold_add(&r->fold, ev), AGW_OK);
    assert_int_equal(agw_anthropic_encode_stream_event(&r->enc, ev, &r->sse), AGW_OK);
    r->seen++;
    return r->stop_after && r->seen >= r->stop_after;
}

static void rec_init(rec_t *r, agw_str model, agw_str id)
{
    memset(r, 0, sizeof *r);
    agw_buf_init(&r->log, SIZE_MAX);
    agw_buf_init(&r->sse, SIZE_MAX);
    agw_ir_fold_init(&r->fold, AGW_LIMIT_UPSTREAM_BODY);
    agw_anthropic_stream_encoder_init(&r->enc, model, id);
}

static void rec_free(rec_t *r)
{
    agw_buf_free(&r->log);
    agw_buf_free(&r->sse);
    agw_ir_fold_free(&r->fold);
    agw_anthropic_stream_encoder_free(&r->enc);
}

typedef struct {
    const char *event, *data;
} sse_ev;

static agw_err feed(agw_anthropic_stream_decoder *d, rec_t *r, const sse_ev *evs, size_t n,
                    char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        agw_err e = agw_anthropic_decode_stream_event(d, agw_str_c(evs[i].event),
                                                      agw_str_c(evs[i].data), rec_sink, r, err,
                                                      errlen);
        if (e != AGW_OK)
            return e;
    }
    return AGW_OK;
}

static const sse_ev upstream_stream[] = {
    { "message_start",
      "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\","
      "\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\","
      "\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,"
      "\"cache_creation_input_tokens\":10,\"cache_read_input_tokens\":2000,\"output_tokens\":2,"
      "\"service_tier\":\"standard\"}}}" },
    { "ping", "{\"type\": \"ping\"}" },
    { "content_block_start",
      "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\","
      "\"thinking\":\"\",\"signature\":\"\"}}" },
    { "content_block_delta",
      "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
      "\"thinking\":\"Let me think\"}}" },
    { "content_block_delta",
      "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
      "\"thinking\":\" step by step.\"}}" },
    { "content_block_delta",
      "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\","
      "\"signature\":\"EqQBCgIYAhIM1gbcDa9GJwZA2b3h\"}}" },
    { "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}" },
    { "content_block_start",
      "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}" },
    { "content_block_delta",
      "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\","
      "\"text\":\"I'll check \"}}" },
    { "content_block_delta",
      "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\","
      "\"text\":\"the weather.\\n\"}}" },
    { "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":1}" },
    { "content_block_start",
      "{\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\","
      "\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}" },
    { "content_block_delta",
      "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\","
      "\"partial_json\":\"\"}}" },
    { "content_block_delta",
      "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\","
      "\"partial_json\":\"{\\\"location\\\": \\\"San Fra\"}}" },
    { "content_block_delta",
      "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\","
      "\"partial_json\":\"ncisco, CA\\\", \\\"unit\\\": \\\"fahr\"}}" },
    { "content_block_delta",
      "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\","
      "\"partial_json\":\"enheit\\\"}\"}}" },
    { "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":2}" },
    { "message_delta",
      "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},"
      "\"usage\":{\"output_tokens\":89}}" },
    { "message_stop", "{\"type\":\"message_stop\"}" },
};

static const char upstream_ir[] =
    "message_start \"msg_01XFDUDYJgAACzvnptvVoYEL\" \"claude-sonnet-4-5-20250929\" in=472 out=2 cr=2000 cw=10\n"
    "ping\n"
    "block_start 0 thinking\n"
    "block_delta 0 thinking \"Let me think\"\n"
    "block_delta 0 thinking \" step by step.\"\n"
    "block_delta 0 signature \"EqQBCgIYAhIM1gbcDa9GJwZA2b3h\"\n"
    "block_stop 0\n"
    "block_start 1 text\n"
    "block_delta 1 text \"I'll check \"\n"
    "block_delta 1 text \"the weather.\\n\"\n"
    "block_stop 1\n"
    "block_start 2 tool_use \"toolu_01T1x1fJ34qAmk2tNTrN7Up6\" \"get_weather\"\n"
    "block_delta 2 json \"\"\n"
    "block_delta 2 json \"{\\\"location\\\": \\\"San Fra\"\n"
    "block_delta 2 json \"ncisco, CA\\\", \\\"unit\\\": \\\"fahr\"\n"
    "block_delta 2 json \"enheit\\\"}\"\n"
    "block_stop 2\n"
    "message_delta tool_use \"\" in=-1 out=89 cr=-1 cw=-1\n"
    "message_stop\n";

/* The same answer, re-encoded for an Anthropic client that asked for "claude-x". */
static const char upstream_sse[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\","
    "\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],"
    "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,"
    "\"cache_creation_input_tokens\":10,\"cache_read_input_tokens\":2000,\"output_tokens\":2}}}\n\n"
    "event: ping\ndata: {\"type\": \"ping\"}\n\n"
    "event: ping\ndata: {\"type\": \"ping\"}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\","
    "\"thinking\":\"\",\"signature\":\"\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
    "\"thinking\":\"Let me think\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
    "\"thinking\":\" step by step.\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\","
    "\"signature\":\"EqQBCgIYAhIM1gbcDa9GJwZA2b3h\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"I'll check \"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"the weather.\\n\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\","
    "\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"{\\\"location\\\": \\\"San Fra\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"ncisco, CA\\\", \\\"unit\\\": \\\"fahr\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"enheit\\\"}\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":2}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},"
    "\"usage\":{\"output_tokens\":89}}\n\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n\n";

static const char upstream_response[] =
    "{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":\"assistant\","
    "\"model\":\"claude-x\",\"content\":["
    "{\"type\":\"thinking\",\"thinking\":\"Let me think step by step.\","
    "\"signature\":\"EqQBCgIYAhIM1gbcDa9GJwZA2b3h\"},"
    "{\"type\":\"text\",\"text\":\"I'll check the weather.\\n\"},"
    "{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\","
    "\"input\":{\"location\": \"San Francisco, CA\", \"unit\": \"fahrenheit\"}}],"
    "\"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,"
    "\"cache_creation_input_tokens\":10,\"cache_read_input_tokens\":2000,\"output_tokens\":89}}";

static void test_stream_realistic(void **state)
{
    agw_anthropic_stream_decoder d;
    rec_t r;
    char err[256] = "";
    agw_buf resp = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    (void)state;

    agw_anthropic_stream_decoder_init(&d);
    rec_init(&r, S("claude-x"), S(""));
    assert_int_equal(agw_anthropic_decode_stream_end(&d), AGW_EPEER);
    assert_int_equal(feed(&d, &r, upstream_stream, N(upstream_stream), err, sizeof err), AGW_OK);
    assert_int_equal(agw_anthropic_decode_stream_end(&d), AGW_OK);
    assert_arr(agw_buf_view(&r.log), upstream_ir);
    assert_arr(agw_buf_view(&r.sse), upstream_sse);

    assert_true(r.fold.finished);
    assert_false(r.fold.failed);
    assert_int_equal(agw_anthropic_encode_response(&r.fold, S("claude-x"), S(""), &resp), AGW_OK);
    assert_arr(agw_buf_view(&resp), upstream_response);
    assert_int_equal(agw_json_validate(agw_buf_view(&resp), 128, NULL, 0), AGW_OK);

    agw_buf_free(&resp);
    rec_free(&r);
    agw_anthropic_stream_decoder_free(&d);
}

static void test_stream_error_event(void **state)
{
    static const sse_ev evs[] = {
        { "message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"c\","
                           "\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}" },
        { "content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                 "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}" },
        { "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,"
                                 "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}" },
        { "error", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}" },
        /* anything after the error is not part of the answer */
        { "message_stop", "{\"type\":\"message_stop\"}" },
    };
    agw_anthropic_stream_decoder d;
    rec_t r;
    char err[256] = "";
    (void)state;

    agw_anthropic_stream_decoder_init(&d);
    rec_init(&r, S("claude-x"), S("msg_client"));
    assert_int_equal(feed(&d, &r, evs, N(evs), err, sizeof err), AGW_OK);
    assert_int_equal(agw_anthropic_decode_stream_end(&d), AGW_OK);
    assert_str(agw_buf_view(&r.log),
               "message_start \"msg_1\" \"c\" in=5 out=1 cr=-1 cw=-1\n"
               "block_start 0 text\n"
               "block_delta 0 text \"Hel\"\n"
               "error 529 \"overloaded_error\" \"Overloaded\"\n");
    assert_str(agw_buf_view(&r.sse),
               "event: message_start\n"
               "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_client\",\"type\":\"message\","
               "\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,"
               "\"stop_sequence\":null,\"usage\":{\"input_tokens\":5,\"cache_creation_input_tokens\":0,"
               "\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n"
               "event: ping\ndata: {\"type\": \"ping\"}\n\n"
               "event: content_block_start\n"
               "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
               "event: content_block_delta\n"
               "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n"
               "event: error\n"
               "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
    assert_true(r.fold.failed);
    assert_int_equal(r.fold.error_status, 529);
    rec_free(&r);
    agw_anthropic_stream_decoder_free(&d);
}

static void test_stream_error_statuses(void **state)
{
    static const struct {
        const char *type;
        int status;
    } cases[] = {
        { "overloaded_error", 529 },  { "rate_limit_error", 429 },   { "api_error", 500 },
        { "invalid_request_error", 400 }, { "authentication_error", 401 },
        { "permission_error", 403 },  { "not_found_error", 404 },    { "request_too_large", 413 },
        { "timeout_error", 504 },     { "billing_error", 402 },      { "brand_new_error", 500 },
    };
    (void)state;
    for (size_t i = 0; i < N(cases); i++) {
        agw_anthropic_stream_decoder d;
        rec_t r;
        char data[256], err[128];
        snprintf(data, sizeof data, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"m\"}}",
                 cases[i].type);
        agw_anthropic_stream_decoder_init(&d);
        rec_init(&r, S(""), S(""));
        /* an error may come before message_start (nothing else may) */
        assert_int_equal(agw_anthropic_decode_stream_event(&d, S("error"), agw_str_c(data), rec_sink,
                                                           &r, err, sizeof err),
                         AGW_OK);
        assert_int_equal(r.fold.error_status, cases[i].status);
        assert_int_equal(agw_anthropic_decode_stream_end(&d), AGW_OK);
        rec_free(&r);
        agw_anthropic_stream_decoder_free(&d);
    }
}

static void test_stream_truncated(void **state)
{
    agw_anthropic_stream_decoder d;
    rec_t r;
    char err[128];
    (void)state;

    agw_anthropic_stream_decoder_init(&d);
    rec_init(&r, S("m"), S(""));
    /* everything but message_stop */
    assert_int_equal(feed(&d, &r, upstream_stream, N(upstream_stream) - 1, err, sizeof err), AGW_OK);
    assert_int_equal(agw_anthropic_decode_stream_end(&d), AGW_EPEER);
    rec_free(&r);
    agw_anthropic_stream_decoder_free(&d);
}

/* Without `event:` lines the data's type names the event; unknown events and
 * unknown delta types are skipped; message_delta may report input usage. */
static void test_stream_lenient_parts(void **state)
{
    static const sse_ev evs[] = {
        { "", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"model\":\"c\"}}" },
        { "brand_new_event", "not even JSON" },
        { "", "{\"type\":\"brand_new_event\"}" },
        { "", "{\"no_type\":1}" },
        { "", "{\"type\":\"ping\"}" },
        { "content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                 "\"content_block\":{\"type\":\"text\",\"text\":\"\",\"citations\":[]}}" },
        { "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                                 "{\"type\":\"citations_delta\",\"citation\":{\"type\":\"x\"}}}" },
        { "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                                 "{\"type\":\"text_delta\",\"text\":\"a\\u0000\\ud83d\\ude00\\u2028\"}}" },
        { "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}" },
        { "content_block_start", "{\"type\":\"content_block_start\",\"index\":1,"
                                 "\"content_block\":{\"type\":\"redacted_thinking\",\"data\":\"EmwK\"}}" },
        { "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":1}" },
        { "message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"stop_sequence\","
                           "\"stop_sequence\":\"END\"},\"usage\":{\"input_tokens\":7,"
                           "\"cache_read_input_tokens\":3,\"cache_creation_input_tokens\":null,"
                           "\"output_tokens\":9}}" },
        { "message_stop", "{\"type\":\"message_stop\"}" },
    };
    agw_anthropic_stream_decoder d;
    rec_t r;
    char err[256] = "";
    agw_buf resp = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    (void)state;

    agw_anthropic_stream_decoder_init(&d);
    rec_init(&r, S("m"), S(""));
    assert_int_equal(feed(&d, &r, evs, N(evs), err, sizeof err), AGW_OK);
    assert_int_equal(agw_anthropic_decode_stream_end(&d), AGW_OK);
    assert_str(agw_buf_view(&r.log),
               "message_start \"msg_2\" \"c\" in=-1 out=-1 cr=-1 cw=-1\n"
               "ping\n"
               "block_start 0 text\n"
               "block_delta 0 text \"a\\u0000\xf0\x9f\x98\x80\xe2\x80\xa8\"\n"
               "block_stop 0\n"
               "block_start 1 redacted_thinking \"EmwK\"\n"
               "block_stop 1\n"
               "message_delta stop_sequence \"END\" in=7 out=9 cr=3 cw=-1\n"
               "message_stop\n");
    /* the tail of the re-encoded stream: U+2028 raw, NUL escaped */
    assert_non_null(strstr(r.sse.data,
                           "{\"type\":\"text_delta\",\"text\":\"a\\u0000\xf0\x9f\x98\x80\xe2\x80\xa8\"}"));
    assert_non_null(strstr(r.sse.data,
                           "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,"
                           "\"content_block\":{\"type\":\"redacted_thinking\",\"data\":\"EmwK\"}}\n\n"));
    assert_non_null(strstr(r.sse.data,
                           "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
                           "{\"stop_reason\":\"stop_sequence\",\"stop_sequence\":\"END\"},\"usage\":"
                           "{\"input_tokens\":7,\"cache_read_input_tokens\":3,\"output_tokens\":9}}\n\n"));
    assert_int_equal(agw_anthropic_encode_response(&r.fold, S(""), S("msg_mine"), &resp), AGW_OK);
    assert_str(agw_buf_view(&resp),
               "{\"id\":\"msg_mine\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"c\","
               "\"content\":[{\"type\":\"text\",\"text\":\"a\\u0000\xf0\x9f\x98\x80\xe2\x80\xa8\"},"
               "{\"type\":\"redacted_thinking\",\"data\":\"EmwK\"}],"
               "\"stop_reason\":\"stop_sequence\",\"stop_sequence\":\"END\","
               "\"usage\":{\"input_tokens\":7,\"cache_creation_input_tokens\":0,"
               "\"cache_read_input_tokens\":3,\"output_tokens\":9}}");
    agw_buf_free(&resp);
    rec_free(&r);
    agw_anthropic_stream_decoder_free(&d);
}

/* A whole answer whose tool call has an empty id is refused, not passed on
 * as a call no client could answer (found by fuzz_anthropic_response). */
static void test_response_tool_use_needs_an_id(void **state)
{
    (void)state;
    rec_t r;
    char err[256] = "";
    rec_init(&r, S("m"), S(""));
    static const char body[] = "{\"type\":\"message\",\"content\":[{\"type\":\"tool_use\","
                               "\"id\":\"\",\"name\":\"x\",\"input\":{}}]}";
    assert_int_equal(agw_anthropic_decode_response(A(body), rec_sink, &r, err, sizeof err),
                     AGW_EINVAL);
    assert_non_null(strstr(err, "id must not be empty"));
    rec_free(&r);
}

static void test_stream_rejections(void **state)
{
    static const char start[] = "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\"}}";
    static const struct {
        int started;
        const char *event, *data, *err;
    } cases[] = {
        { 0, "message_start", "{\"type\":", "upstream message_start event is not a JSON object: offset 8: expected a value" },
        { 0, "message_start", "[1]", "upstream message_start event is not a JSON object" },
        { 0, "message_start", "{\"type\":\"message_start\"}", "upstream message_start event: message is missing" },
        { 0, "message_start", "{\"message\":{\"usage\":{\"input_tokens\":-1}}}",
          "upstream message_start event: usage.input_tokens must be a non-negative integer" },
        { 0, "message_start", "{\"message\":{\"id\":5}}", "upstream message_start event: message.id must be a string" },
        { 0, "content_block_start", "{\"index\":0,\"content_block\":{\"type\":\"text\"}}",
          "upstream sent content_block_start before message_start" },
        { 0, "message_delta", "{}", "upstream sent message_delta before message_start" },
        { 1, "message_start", start, "upstream sent a second message_start" },
        { 1, "content_block_start", "{\"content_block\":{\"type\":\"text\"}}",
          "upstream content_block_start event: index is missing" },
        { 1, "content_block_start", "{\"index\":-1,\"content_block\":{\"type\":\"text\"}}",
          "upstream content_block_start event: index must be a non-negative integer" },
        { 1, "content_block_start", "{\"index\":99999999999,\"content_block\":{\"type\":\"text\"}}",
          "upstream content_block_start event: index must be a non-negative integer" },
        { 1, "content_block_start", "{\"index\":0}", "upstream content_block_start event: content_block is missing" },
        { 1, "content_block_start", "{\"index\":0,\"content_block\":{\"type\":\"server_tool_use\",\"id\":\"s\"}}",
          "upstream content block type server_tool_use cannot be converted" },
        { 1, "content_block_start", "{\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"name\":\"n\"}}",
          "upstream content_block_start event: content_block.id is missing" },
        { 1, "content_block_start",
          "{\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"\",\"name\":\"n\"}}",
          "upstream content_block_start event: content_block.id must not be empty" },
        { 1, "content_block_start",
          "{\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"\"}}",
          "upstream content_block_start event: content_block.name must not be empty" },
        { 1, "content_block_delta", "{\"index\":0,\"delta\":{\"type\":\"text_delta\"}}",
          "upstream content_block_delta event: delta.text is missing" },
        { 1, "content_block_delta", "{\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":{}}}",
          "upstream content_block_delta event: delta.partial_json must be a string" },
        { 1, "content_block_delta", "{\"index\":0,\"delta\":\"x\"}",
          "upstream content_block_delta event: delta must be an object" },
        { 1, "content_block_stop", "{\"index\":\"0\"}",
          "upstream content_block_stop event: index must be a non-negative integer" },
        { 1, "message_delta", "{\"delta\":{\"stop_reason\":5}}",
          "upstream message_delta event: delta.stop_reason must be a string" },
        { 1, "message_delta", "{\"usage\":{\"output_tokens\":1.5}}",
          "upstream message_delta event: usage.output_tokens must be a non-negative integer" },
        { 1, "error", "{\"type\":\"error\"}", "upstream error event: error is missing" },
    };
    (void)state;

    for (size_t i = 0; i < N(cases); i++) {
        agw_anthropic_stream_decoder d;
        rec_t r;
        char err[256] = "";
        agw_err e = AGW_OK;

        agw_anthropic_stream_decoder_init(&d);
        rec_init(&r, S("m"), S(""));
        if (cases[i].started)
            assert_int_equal(agw_anthropic_decode_stream_event(&d, S("message_start"), A(start),
                                                               rec_sink, &r, err, sizeof err),
                             AGW_OK);
        e = agw_anthropic_decode_stream_event(&d, agw_str_c(cases[i].event), agw_str_c(cases[i].data),
                                              rec_sink, &r, err, sizeof err);
        if (e != AGW_EINVAL || strcmp(err, cases[i].err) != 0) {
            print_error("case %zu: %s %s\n  got %d [%s]\n  want [%s]\n", i, cases[i].event,
                        cases[i].data, e, err, cases[i].err);
            fail();
        }
        rec_free(&r);
        agw_anthropic_stream_decoder_free(&d);
    }
}

/* A sink's non-zero return stops the rest of that call's events; it is the
 * consumer's decision, not an input error. */
static void test_stream_sink_stop(void **state)
{
    agw_anthropic_stream_decoder d;
    rec_t r;
    char err[128];
    (void)state;

    agw_anthropic_stream_decoder_init(&d);
    rec_init(&r, S("m"), S(""));
    assert_int_equal(agw_anthropic_decode_stream_event(&d, S("message_start"),
                                                       S("{\"message\":{\"id\":\"msg_1\"}}"),
                                                       rec_sink, &r, err, sizeof err),
                     AGW_OK);
    /* a block that starts with content: start + text delta + signature delta */
    r.stop_after = 2;
    assert_int_equal(agw_anthropic_decode_stream_event(
                         &d, S("content_block_start"),
                         S("{\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"a\","
                           "\"signature\":\"s\"}}"),
                         rec_sink, &r, err, sizeof err),
                     AGW_OK);
    assert_str(agw_buf_view(&r.log), "message_start \"msg_1\" \"\" in=-1 out=-1 cr=-1 cw=-1\n"
                                     "block_start 0 thinking\n");
    r.stop_after = 0;
    r.seen = 0;
    agw_buf_reset(&r.log);
    assert_int_equal(agw_anthropic_decode_stream_event(
                         &d, S("content_block_start"),
                         S("{\"index\":1,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"a\","
                           "\"signature\":\"s\"}}"),
                         rec_sink, &r, err, sizeof err),
                     AGW_OK);
    assert_str(agw_buf_view(&r.log), "block_start 1 thinking\n"
                                     "block_delta 1 thinking \"a\"\n"
                                     "block_delta 1 signature \"s\"\n");
    rec_free(&r);
    agw_anthropic_stream_decoder_free(&d);
}

/* After message_stop the answer is over: later events change nothing. */
static void test_stream_after_stop(void **state)
{
    static const sse_ev evs[] = {
        { "message_start", "{\"message\":{\"id\":\"msg_1\"}}" },
        { "message_stop", "{}" },
        { "content_block_start", "{\"index\":0,\"content_block\":{\"type\":\"text\"}}" },
        { "error", "{\"error\":{\"type\":\"api_error\",\"message\":\"late\"}}" },
        { "message_start", "garbage" },
    };
    agw_anthropic_stream_decoder d;
    rec_t r;
    char err[128];
    (void)state;

    agw_anthropic_stream_decoder_init(&d);
    rec_init(&r, S("m"), S(""));
    assert_int_equal(feed(&d, &r, evs, N(evs), err, sizeof err), AGW_OK);
    assert_str(agw_buf_view(&r.log), "message_start \"msg_1\" \"\" in=-1 out=-1 cr=-1 cw=-1\n"
                                     "message_stop\n");
    assert_int_equal(agw_anthropic_decode_stream_end(&d), AGW_OK);
    rec_free(&r);
    agw_anthropic_stream_decoder_free(&d);
}

/* An output cap hit while encoding: AGW_ETOOBIG, the buffer freed. */
static void test_encode_caps(void **state)
{
    agw_ir_block u[] = { text(S("a long enough prompt to pass the cap")) };
    agw_ir_message msgs[] = { { AGW_IR_USER, u, 1 } };
    agw_ir_request rq;
    agw_buf out = AGW_BUF_INIT(40);
    char err[64];
    (void)state;

    rq_init(&rq);
    rq.model = S("m");
    rq.messages = msgs;
    rq.n_messages = 1;
    assert_int_equal(agw_anthropic_encode_request(&rq, &out, err, sizeof err), AGW_ETOOBIG);
    assert_null(out.data);
    assert_int_equal(out.len, 0);

    agw_anthropic_stream_encoder e;
    agw_ir_event ev;
    agw_anthropic_stream_encoder_init(&e, S("m"), S("msg_1"));
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_START);
    assert_int_equal(agw_anthropic_encode_stream_event(&e, &ev, &out), AGW_ETOOBIG);
    assert_null(out.data);
    agw_anthropic_stream_encoder_free(&e);
}

/* ---- stream encoding ---- */

static agw_err enc_ev(agw_anthropic_stream_encoder *e, agw_buf *out, agw_ir_event_kind kind,
                      void (*fill)(agw_ir_event *, const void *), const void *arg)
{
    agw_ir_event ev;
    agw_ir_event_init(&ev, kind);
    if (fill)
        fill(&ev, arg);
    return agw_anthropic_encode_stream_event(e, &ev, out);
}

static void test_encode_stream_ids(void **state)
{
    static const struct {
        const char *enc_id, *ev_id, *want;
    } cases[] = {
        { "msg_chosen", "msg_up", "\"id\":\"msg_chosen\"" },
        { "", "msg_up", "\"id\":\"msg_up\"" },
        { "", "chatcmpl-123", "\"id\":\"msg_chatcmpl-123\"" },
    };
    (void)state;

    for (size_t i = 0; i < N(cases); i++) {
        agw_anthropic_stream_encoder e;
        agw_buf out = AGW_BUF_INIT(AGW_LIMIT_SMALL);
        agw_ir_event ev;
        agw_anthropic_stream_encoder_init(&e, S("client-model"), agw_str_c(cases[i].enc_id));
        agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_START);
        ev.id = agw_str_c(cases[i].ev_id);
        ev.model = S("upstream-model");
        assert_int_equal(agw_anthropic_encode_stream_event(&e, &ev, &out), AGW_OK);
        assert_non_null(strstr(out.data, cases[i].want));
        assert_non_null(strstr(out.data, "\"model\":\"client-model\""));
        /* a second message_start breaks the sequence */
        assert_int_equal(agw_anthropic_encode_stream_event(&e, &ev, &out), AGW_EINVAL);
        agw_buf_free(&out);
        agw_anthropic_stream_encoder_free(&e);
    }

    /* no id anywhere: a random msg_ id; no client model: the upstream's */
    agw_anthropic_stream_encoder e;
    agw_buf out = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    agw_ir_event ev;
    agw_anthropic_stream_encoder_init(&e, S(""), S(""));
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_START);
    ev.model = S("upstream-model");
    assert_int_equal(agw_anthropic_encode_stream_event(&e, &ev, &out), AGW_OK);
    const char *id = strstr(out.data, "\"id\":\"msg_");
    assert_non_null(id);
    id += strlen("\"id\":\"msg_");
    assert_int_equal(strspn(id, "0123456789abcdef"), 24);
    assert_int_equal(id[24], '"');
    assert_non_null(strstr(out.data, "\"model\":\"upstream-model\""));
    agw_buf_free(&out);
    agw_anthropic_stream_encoder_free(&e);
}

static void test_encode_stream_errors_and_order(void **state)
{
    static const struct {
        const char *type;
        int status;
        const char *msg, *want;
    } cases[] = {
        { "overloaded_error", 529, "Overloaded",
          "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}" },
        { "", 429, "slow down", "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}" },
        { "server_error", 502, "bad gateway", "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"bad gateway\"}}" },
        { "", 504, "", "{\"type\":\"error\",\"error\":{\"type\":\"timeout_error\",\"message\":\"upstream error\"}}" },
        { "", 422, "x", "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"x\"}}" },
    };
    (void)state;

    for (size_t i = 0; i < N(cases); i++) {
        agw_anthropic_stream_encoder e;
        agw_buf out = AGW_BUF_INIT(AGW_LIMIT_SMALL);
        agw_ir_event ev;
        char want[256];
        agw_anthropic_stream_encoder_init(&e, S("m"), S("msg_1"));
        agw_ir_event_init(&ev, AGW_IR_EV_ERROR);
        ev.error_type = agw_str_c(cases[i].type);
        ev.status = cases[i].status;
        ev.error_message = agw_str_c(cases[i].msg);
        /* an error may end a stream that never started */
        assert_int_equal(agw_anthropic_encode_stream_event(&e, &ev, &out), AGW_OK);
        snprintf(want, sizeof want, "event: error\ndata: %s\n\n", cases[i].want);
        assert_string_equal(out.data, want);
        agw_buf_free(&out);
        agw_anthropic_stream_encoder_free(&e);
    }

    /* block events before message_start cannot be encoded */
    agw_anthropic_stream_encoder e;
    agw_buf out = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    agw_anthropic_stream_encoder_init(&e, S("m"), S("msg_1"));
    assert_int_equal(enc_ev(&e, &out, AGW_IR_EV_BLOCK_START, NULL, NULL), AGW_EINVAL);
    assert_int_equal(enc_ev(&e, &out, AGW_IR_EV_MESSAGE_DELTA, NULL, NULL), AGW_EINVAL);
    assert_int_equal(out.len, 0);
    assert_int_equal(enc_ev(&e, &out, AGW_IR_EV_PING, NULL, NULL), AGW_OK);
    assert_string_equal(out.data, "event: ping\ndata: {\"type\": \"ping\"}\n\n");
    agw_buf_free(&out);
    agw_anthropic_stream_encoder_free(&e);
}

/* An IR sequence as an OpenAI upstream's decoder would produce it (unknown
 * cache counts, input usage repeated at the end) -> exact Anthropic SSE. */
static void test_encode_stream_sequence(void **state)
{
    agw_anthropic_stream_encoder e;
    agw_buf out = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    agw_ir_event ev;
    (void)state;

    agw_anthropic_stream_encoder_init(&e, S("claude-via-gpt"), S(""));
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_START);
    ev.id = S("chatcmpl-9");
    ev.model = S("gpt-5");
    ev.usage.input = 12;
    assert_int_equal(agw_anthropic_encode_stream_event(&e, &ev, &out), AGW_OK);

    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
    ev.index = 0;
    ev.block = AGW_IR_THINKING;
    assert_int_equal(agw_anthropic_encode_stream_event(&e, &ev, &out), AGW_OK);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
    ev.index = 0;
    ev.delta_kind = AGW_IR_DELTA_THINKING;
    ev.delta = S("why\n");
    assert_int_equal(agw_anthropic_encode_stream_event(&e, &ev, &out), AGW_OK);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_STOP);
    ev.index = 0;
    assert_int_equal(agw_anthropic_encode_stream_event(&e, &ev, &out), AGW_OK);

    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
    ev.index = 1;
    ev.block = AGW_IR_TOOL_USE;
    ev.tool_id = S("call_abc");
    ev.tool_name = S("lookup");
    assert_int_equal(agw_anthropic_encode_stream_event(&e, &ev, &out), AGW_OK);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
    ev.index = 1;
    ev.delta_kind = AGW_IR_DELTA_JSON;
    ev.delta = S("{\"q\":\"\\u00e9");
    assert_int_equal(agw_anthropic_encode_stream_event(&e, &ev, &out), AGW_OK);
    ev.delta = S("\"}");
    assert_int_equal(agw_anthropic_encode_stream_event(&e, &ev, &out), AGW_OK);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_STOP);
    ev.index = 1;
    assert_int_equal(agw_anthropic_encode_stream_event(&e, &ev, &out), AGW_OK);

    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_DELTA);
    ev.stop = AGW_IR_STOP_TOOL_USE;
    ev.usage.input = 12;
    ev.usage.cache_read = 4;
    ev.usage.output = 30;
    assert_int_equal(agw_anthropic_encode_stream_event(&e, &ev, &out), AGW_OK);
    assert_int_equal(enc_ev(&e, &out, AGW_IR_EV_MESSAGE_STOP, NULL, NULL), AGW_OK);

    assert_str(agw_buf_view(&out),
        "event: message_start\n"
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_chatcmpl-9\",\"type\":\"message\","
        "\"role\":\"assistant\",\"model\":\"claude-via-gpt\",\"content\":[],\"stop_reason\":null,"
        "\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":0,"
        "\"cache_read_input_tokens\":0,\"output_tokens\":0}}}\n\n"
        "event: ping\ndata: {\"type\": \"ping\"}\n\n"
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\","
        "\"thinking\":\"\",\"signature\":\"\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
        "\"thinking\":\"why\\n\"}}\n\n"
        "event: content_block_stop\n"
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\","
        "\"id\":\"call_abc\",\"name\":\"lookup\",\"input\":{}}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
        "\"partial_json\":\"{\\\"q\\\":\\\"\\\\u00e9\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
        "\"partial_json\":\"\\\"}\"}}\n\n"
        "event: content_block_stop\n"
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
        "event: message_delta\n"
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},"
        "\"usage\":{\"input_tokens\":12,\"cache_read_input_tokens\":4,\"output_tokens\":30}}\n\n"
        "event: message_stop\n"
        "data: {\"type\":\"message_stop\"}\n\n");

    /* kinds the stream cannot carry */
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
    ev.block = AGW_IR_IMAGE;
    size_t len = out.len;
    assert_int_equal(agw_anthropic_encode_stream_event(&e, &ev, &out), AGW_EINVAL);
    assert_int_equal(out.len, len);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
    ev.delta_kind = (agw_ir_delta_kind)9;
    assert_int_equal(agw_anthropic_encode_stream_event(&e, &ev, &out), AGW_EINVAL);
    assert_int_equal(out.len, len);
    agw_buf_free(&out);
    agw_anthropic_stream_encoder_free(&e);
}

/* ---- responses ---- */

static void fold_add(agw_ir_fold *f, agw_ir_event *ev)
{
    assert_int_equal(agw_ir_fold_add(f, ev), AGW_OK);
}

static void test_encode_response_edges(void **state)
{
    agw_ir_fold f;
    agw_ir_event ev;
    agw_buf out = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    (void)state;

    /* nothing but start and stop: content [] and zero usage */
    agw_ir_fold_init(&f, 1 << 20);
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_START);
    ev.id = S("abc");
    fold_add(&f, &ev);
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_STOP);
    fold_add(&f, &ev);
    assert_int_equal(agw_anthropic_encode_response(&f, S("m"), S(""), &out), AGW_OK);
    assert_str(agw_buf_view(&out),
               "{\"id\":\"msg_abc\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\","
               "\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,"
               "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":0}}");
    agw_ir_fold_free(&f);
    agw_buf_reset(&out);

    /* an empty text block, a tool call without arguments, a skipped index */
    agw_ir_fold_init(&f, 1 << 20);
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_START);
    fold_add(&f, &ev);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
    ev.index = 0;
    ev.block = AGW_IR_TEXT;
    fold_add(&f, &ev);
    ev.index = 2;
    ev.block = AGW_IR_TOOL_USE;
    ev.tool_id = S("call_1");
    ev.tool_name = S("now");
    fold_add(&f, &ev);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
    ev.index = 2;
    ev.delta_kind = AGW_IR_DELTA_JSON;
    ev.delta = S("");
    fold_add(&f, &ev);
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_DELTA);
    ev.stop = AGW_IR_STOP_TOOL_USE;
    ev.usage.output = 3;
    fold_add(&f, &ev);
    assert_int_equal(agw_anthropic_encode_response(&f, S("m"), S("msg_x"), &out), AGW_OK);
    assert_str(agw_buf_view(&out),
               "{\"id\":\"msg_x\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\","
               "\"content\":[{\"type\":\"tool_use\",\"id\":\"call_1\",\"name\":\"now\",\"input\":{}}],"
               "\"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,"
               "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":3}}");
    agw_buf_reset(&out);

    /* arguments that do not add up to a JSON object: the caller sends a 502 */
    assert_int_equal(agw_buf_append_str(&out, S("keep")), AGW_OK);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
    ev.index = 2;
    ev.delta_kind = AGW_IR_DELTA_JSON;
    ev.delta = S("{\"a\":");
    fold_add(&f, &ev);
    assert_int_equal(agw_anthropic_encode_response(&f, S("m"), S("msg_x"), &out), AGW_EINVAL);
    assert_str(agw_buf_view(&out), "keep");
    agw_ir_fold_free(&f);

    agw_ir_fold_init(&f, 1 << 20);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
    ev.index = 0;
    ev.block = AGW_IR_TOOL_USE;
    fold_add(&f, &ev);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
    ev.delta_kind = AGW_IR_DELTA_JSON;
    ev.delta = S("[1,2]");
    fold_add(&f, &ev);
    assert_int_equal(agw_anthropic_encode_response(&f, S("m"), S("msg_x"), &out), AGW_EINVAL);
    agw_ir_fold_free(&f);
    agw_buf_free(&out);
}

/* ---- error bodies ---- */

static void test_decode_error(void **state)
{
    agw_arena a = AGW_ARENA_INIT;
    agw_str type = { NULL, 0 }, msg = { NULL, 0 };
    (void)state;

    assert_int_equal(agw_anthropic_decode_error(
                         S("{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
                           "\"message\":\"Number of requests has exceeded your rate limit\"},"
                           "\"request_id\":\"req_011\"}"),
                         &a, &type, &msg),
                     AGW_OK);
    assert_str(type, "rate_limit_error");
    assert_str(msg, "Number of requests has exceeded your rate limit");
    assert_int_equal(agw_anthropic_decode_error(
                         S("{\"error\":{\"type\":\"invalid_request_error\",\"message\":\"a\\u0000\\\"b\\\"\"}}"),
                         &a, &type, &msg),
                     AGW_OK);
    assert_str(type, "invalid_request_error");
    assert_str(msg, "a\0\"b\"");

    static const char *const bad[] = {
        "", "nope", "[]", "{\"type\":\"error\"}", "{\"type\":\"message\",\"error\":{\"type\":\"x\",\"message\":\"y\"}}",
        "{\"error\":\"boom\"}", "{\"error\":{\"type\":\"x\"}}", "{\"error\":{\"message\":\"y\"}}",
        "{\"error\":{\"message\":\"m\",\"type\":null}}",
        "{\"error\":{\"message\":\"m\",\"type\":\"t\"}", /* OpenAI shape is not this */
        "{\"error\":{\"message\":\"m\",\"type\":\"t\",\"code\":null}} x",
    };
    for (size_t i = 0; i < N(bad); i++)
        assert_int_equal(agw_anthropic_decode_error(agw_str_c(bad[i]), &a, &type, &msg), AGW_EINVAL);
    agw_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_full),
        cmocka_unit_test(test_decode_defaults_and_nulls),
        cmocka_unit_test(test_decode_tool_choice_kinds),
        cmocka_unit_test(test_decode_duplicate_keys_last_wins),
        cmocka_unit_test(test_decode_views_and_copies),
        cmocka_unit_test(test_decode_ignored_fields),
        cmocka_unit_test(test_decode_rejections),
        cmocka_unit_test(test_decode_bounds),
        cmocka_unit_test(test_decode_tiny_blocks),
        cmocka_unit_test(test_encode_full),
        cmocka_unit_test(test_encode_minimal_and_system_forms),
        cmocka_unit_test(test_encode_assistant_first),
        cmocka_unit_test(test_encode_merge_across_dropped),
        cmocka_unit_test(test_encode_tool_choice),
        cmocka_unit_test(test_encode_sampling),
        cmocka_unit_test(test_encode_rejections),
        cmocka_unit_test(test_encode_empty_tool_input_and_images),
        cmocka_unit_test(test_request_round_trip_strings),
        cmocka_unit_test(test_request_reencode_is_stable),
        cmocka_unit_test(test_stream_realistic),
        cmocka_unit_test(test_stream_error_event),
        cmocka_unit_test(test_stream_error_statuses),
        cmocka_unit_test(test_stream_truncated),
        cmocka_unit_test(test_stream_lenient_parts),
        cmocka_unit_test(test_stream_rejections),
        cmocka_unit_test(test_response_tool_use_needs_an_id),
        cmocka_unit_test(test_stream_sink_stop),
        cmocka_unit_test(test_stream_after_stop),
        cmocka_unit_test(test_encode_stream_ids),
        cmocka_unit_test(test_encode_stream_errors_and_order),
        cmocka_unit_test(test_encode_stream_sequence),
        cmocka_unit_test(test_encode_caps),
        cmocka_unit_test(test_encode_response_edges),
        cmocka_unit_test(test_decode_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for proto/sanitize: the rules' meaning on whole texts, and the
 * stream stage giving that meaning however a text is split into deltas. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/json.h"
#include "core/sse.h"
#include "proto/bridge.h"
#include "proto/sanitize.h"

/* ---- the rules on whole texts ---- */

static char *applied(const agw_sanitize_rules *r, const char *in)
{
    agw_buf out = AGW_BUF_INIT(1 << 20);
    assert_int_equal(agw_sanitize_apply(r, agw_str_c(in), &out), AGW_OK);
    char *s = agw_buf_detach(&out, NULL);
    return s ? s : strdup("");
}

static void expect_applied(const agw_sanitize_rules *r, const char *in, const char *want)
{
    char *got = applied(r, in);
    assert_string_equal(got, want);
    free(got);
}

static void test_kiro_identity(void **state)
{
    (void)state;
    agw_sanitize_rules *r = agw_sanitize_rules_kiro_default();
    assert_non_null(r);
    expect_applied(r, "I am Kiro, an AI assistant.", "I am Claude, an AI assistant.");
    expect_applied(r, "I'm Amazon Q Developer.", "I'm Claude.");
    expect_applied(r, "I’m Amazon Q, built by AWS.", "I’m Claude, built by AWS.");
    expect_applied(r, "Powered by AWS CodeWhisperer and codewhisperer.",
                   "Powered by Claude and Claude.");
    /* word boundaries: apostrophes (typographic too), brackets, ends of text */
    expect_applied(r, "Kiro's answer, Kiro’s answer (KIRO)", "Claude's answer, Claude’s answer (Claude)");
    /* not inside other words */
    expect_applied(r, "Kirov, _Kiro, Kiro2, Kiroé, Amazon Quick", "Kirov, _Kiro, Kiro2, Kiroé, Amazon Quick");
    /* Chinese runs words together: ideographs and CJK punctuation are boundaries */
    expect_applied(r, "我是Kiro。", "我是Claude。");
    agw_sanitize_rules_free(r);
}

static void test_kiro_regions(void **state)
{
    (void)state;
    agw_sanitize_rules *r = agw_sanitize_rules_kiro_default();
    expect_applied(r, "Before<function_calls><invoke name=\"x\">{}</invoke></function_calls>After",
                   "BeforeAfter");
    expect_applied(r, "a<invoke name=\"readFile\"><parameter>p</parameter></invoke>b", "ab");
    expect_applied(r, "a<tool_call>{\"name\":\"Kiro\"}</tool_call>b", "ab");
    /* a mention of a tag without its close is text, not a region */
    expect_applied(r, "Use the <invoke tag to call", "Use the <invoke tag to call");
    /* an opening that continues as another word is not the tag */
    expect_applied(r, "<invoked>x</invoke>", "<invoked>x</invoke>");
    /* a line that mentions an IDE tool stays whole */
    expect_applied(r, "Run fsWrite to save, then readFile.\nDone.",
                   "Run fsWrite to save, then readFile.\nDone.");
    agw_sanitize_rules_free(r);
}

static void test_literal_and_order(void **state)
{
    (void)state;
    agw_sanitize_rules *r = agw_sanitize_rules_new();
    assert_int_equal(agw_sanitize_rules_add(r, AGW_SANITIZE_LITERAL, AGW_STR_LIT("ab"),
                                            AGW_STR_LIT("X")), AGW_OK);
    assert_int_equal(agw_sanitize_rules_add(r, AGW_SANITIZE_LITERAL, AGW_STR_LIT("abc"),
                                            AGW_STR_LIT("Y")), AGW_OK);
    assert_int_equal(agw_sanitize_rules_add(r, AGW_SANITIZE_LITERAL, AGW_STR_LIT("c"),
                                            AGW_STR_LIT("")), AGW_OK);
    /* the first rule that matches at a position wins; scanning goes on after it */
    expect_applied(r, "abcab-c", "XX-");
    /* literal rules match inside words and keep case */
    expect_applied(r, "xabY AB", "xXY AB");
    agw_sanitize_rules_free(r);
}

static void test_rules_refused(void **state)
{
    (void)state;
    agw_sanitize_rules *r = agw_sanitize_rules_new();
    assert_int_equal(agw_sanitize_rules_add(r, AGW_SANITIZE_LITERAL, AGW_STR_LIT(""),
                                            AGW_STR_LIT("x")), AGW_EINVAL);
    assert_int_equal(agw_sanitize_rules_add(r, AGW_SANITIZE_REGION, AGW_STR_LIT("<a>"),
                                            AGW_STR_LIT("")), AGW_EINVAL);
    assert_int_equal(agw_sanitize_rules_add(r, AGW_SANITIZE_WORD, AGW_STR_LIT(" Kiro"),
                                            AGW_STR_LIT("x")), AGW_EINVAL);
    assert_int_equal(agw_sanitize_rules_add(r, AGW_SANITIZE_LITERAL,
                                            (agw_str){ "a\0b", 3 }, AGW_STR_LIT("x")),
                     AGW_EINVAL);
    char big[AGW_SANITIZE_PATTERN_MAX + 2];
    memset(big, 'a', sizeof big);
    assert_int_equal(agw_sanitize_rules_add(r, AGW_SANITIZE_LITERAL,
                                            (agw_str){ big, sizeof big }, AGW_STR_LIT("x")),
                     AGW_EINVAL);
    assert_int_equal(agw_sanitize_rules_count(r), 0);
    for (unsigned i = 0; i < AGW_SANITIZE_RULES_MAX; i++)
        assert_int_equal(agw_sanitize_rules_add(r, AGW_SANITIZE_LITERAL, AGW_STR_LIT("q"),
                                                AGW_STR_LIT("x")), AGW_OK);
    assert_int_equal(agw_sanitize_rules_add(r, AGW_SANITIZE_LITERAL, AGW_STR_LIT("q"),
                                            AGW_STR_LIT("x")), AGW_EINVAL);
    agw_sanitize_rules_free(r);
}

/* ---- the stage ---- */

typedef struct {
    agw_buf text;     /* the TEXT deltas joined */
    agw_buf thinking; /* the THINKING deltas joined */
    agw_buf json;     /* the tool-argument deltas joined */
    agw_buf kinds;    /* one letter per event, in order */
    size_t text_events;
    int bad_utf8_seam; /* a delta ended inside a UTF-8 sequence */
} sink_t;

static void sink_init(sink_t *k)
{
    memset(k, 0, sizeof *k);
    agw_buf_init(&k->text, 1 << 22);
    agw_buf_init(&k->thinking, 1 << 22);
    agw_buf_init(&k->json, 1 << 22);
    agw_buf_init(&k->kinds, 1 << 22);
}

static void sink_free(sink_t *k)
{
    agw_buf_free(&k->text);
    agw_buf_free(&k->thinking);
    agw_buf_free(&k->json);
    agw_buf_free(&k->kinds);
}

/* Whether s ends inside a UTF-8 sequence. */
static int ends_mid_sequence(agw_str s)
{
    const unsigned char *p = (const unsigned char *)s.ptr;
    for (size_t back = 1; back <= 3 && back <= s.len; back++) {
        unsigned char c = p[s.len - back];
        if ((c & 0xC0) == 0x80)
            continue;
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back;
    }
    return 0;
}

static int on_event(void *ud, const agw_ir_event *ev)
{
    sink_t *k = ud;
    static const char letters[] = "SBDXmMEP";
    assert_int_equal(agw_buf_append(&k->kinds, &letters[ev->kind], 1), AGW_OK);
    if (ev->kind != AGW_IR_EV_BLOCK_DELTA)
        return 0;
    agw_buf *into = ev->delta_kind == AGW_IR_DELTA_TEXT       ? &k->text
                    : ev->delta_kind == AGW_IR_DELTA_THINKING ? &k->thinking
                                                              : &k->json;
    assert_true(ev->delta.len > 0);
    if (ev->delta_kind == AGW_IR_DELTA_TEXT) {
        k->text_events++;
        if (ends_mid_sequence(ev->delta))
            k->bad_utf8_seam = 1;
    }
    assert_int_equal(agw_buf_append_str(into, ev->delta), AGW_OK);
    return 0;
}

static void send(agw_sanitize_stage *s, agw_ir_event_kind kind, int index,
                 agw_ir_delta_kind dk, agw_str delta)
{
    agw_ir_event ev;
    agw_ir_event_init(&ev, kind);
    ev.index = index;
    ev.delta_kind = dk;
    ev.delta = delta;
    assert_int_equal(agw_sanitize_stage_event(s, &ev), 0);
}

/* Streams `in` as a text block cut at the given positions (ascending) and
 * checks the joined output equals the rules applied to the whole. */
static void check_split(const agw_sanitize_rules *r, agw_str in, const size_t *cuts, size_t n_cuts)
{
    sink_t k;
    sink_init(&k);
    agw_sanitize_stage s;
    agw_sanitize_stage_init(&s, r, on_event, &k);
    send(&s, AGW_IR_EV_MESSAGE_START, 0, AGW_IR_DELTA_TEXT, (agw_str){ NULL, 0 });
    send(&s, AGW_IR_EV_BLOCK_START, 0, AGW_IR_DELTA_TEXT, (agw_str){ NULL, 0 });
    size_t from = 0;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t to = i < n_cuts ? cuts[i] : in.len;
        send(&s, AGW_IR_EV_BLOCK_DELTA, 0, AGW_IR_DELTA_TEXT, (agw_str){ in.ptr + from, to - from });
        from = to;
    }
    send(&s, AGW_IR_EV_BLOCK_STOP, 0, AGW_IR_DELTA_TEXT, (agw_str){ NULL, 0 });
    send(&s, AGW_IR_EV_MESSAGE_STOP, 0, AGW_IR_DELTA_TEXT, (agw_str){ NULL, 0 });
    agw_buf want = AGW_BUF_INIT(1 << 22);
    assert_int_equal(agw_sanitize_apply(r, in, &want), AGW_OK);
    if (!agw_str_eq(agw_buf_view(&k.text), agw_buf_view(&want)))
        fail_msg("split output differs: got [%s] want [%s] (input [%.*s])", k.text.data ? k.text.data : "",
                 want.data ? want.data : "", (int)in.len, in.ptr);
    assert_false(k.bad_utf8_seam);
    /* every text delta went out before the block's stop */
    agw_str kinds = agw_buf_view(&k.kinds);
    assert_true(kinds.len >= 3);
    assert_memory_equal(kinds.ptr + kinds.len - 2, "XM", 2);
    agw_buf_free(&want);
    agw_sanitize_stage_free(&s);
    sink_free(&k);
}

/* Every split into two and three deltas of a text holding each default
 * pattern and region, with multi-byte characters at the seams. */
static void test_every_split_of_the_defaults(void **state)
{
    (void)state;
    agw_sanitize_rules *r = agw_sanitize_rules_kiro_default();
    static const char *const texts[] = {
        "é Kiro’s ü",
        "我是Kiro。",
        "I’m Amazon Q Developer!",
        "«Amazon Q» and codewhisperer",
        "Try AWS CodeWhisperer—and Amazon CodeWhisperer.",
        "x<function_calls><invoke name=\"a\">é</invoke></function_calls>ü",
        "—<invoke name=\"Kiro\">{\"k\":1}</invoke>—",
        "ä<tool_call>{}</tool_call>ö Kiro",
        "<invoke is a tag; <tool_call> too Kirov",
    };
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        agw_str in = agw_str_c(texts[t]);
        for (size_t a = 1; a < in.len; a++) {
            size_t one[1] = { a };
            check_split(r, in, one, 1);
            for (size_t b = a + 1; b < in.len; b++) {
                size_t two[2] = { a, b };
                check_split(r, in, two, 2);
            }
        }
    }
    agw_sanitize_rules_free(r);
}

/* A long answer with nothing to match goes out delta for delta, none held. */
static void test_no_match_holds_nothing(void **state)
{
    (void)state;
    agw_sanitize_rules *r = agw_sanitize_rules_kiro_default();
    sink_t k;
    sink_init(&k);
    agw_sanitize_stage s;
    agw_sanitize_stage_init(&s, r, on_event, &k);
    static const char *const words[] = { "The ", "answer ", "is ", "forty-two; ", "über ",
                                         "alles ", "日本語 ", "(yes) ", "and\n", "more. " };
    size_t n = 2000;
    for (size_t i = 0; i < n; i++)
        send(&s, AGW_IR_EV_BLOCK_DELTA, 0, AGW_IR_DELTA_TEXT, agw_str_c(words[i % 10]));
    assert_int_equal(s.held_events, 0);
    assert_int_equal(k.text_events, n);
    agw_sanitize_stage_free(&s);
    sink_free(&k);
    agw_sanitize_rules_free(r);
}

/* Tool calls and their names, signatures and (by default) thinking pass as
 * they are; held text goes out before the next block starts. */
static void test_only_text_is_touched(void **state)
{
    (void)state;
    agw_sanitize_rules *r = agw_sanitize_rules_kiro_default();
    sink_t k;
    sink_init(&k);
    agw_sanitize_stage s;
    agw_sanitize_stage_init(&s, r, on_event, &k);
    send(&s, AGW_IR_EV_BLOCK_DELTA, 0, AGW_IR_DELTA_THINKING, AGW_STR_LIT("I am Kiro"));
    send(&s, AGW_IR_EV_BLOCK_STOP, 0, AGW_IR_DELTA_TEXT, (agw_str){ NULL, 0 });
    send(&s, AGW_IR_EV_BLOCK_DELTA, 1, AGW_IR_DELTA_TEXT, AGW_STR_LIT("Ask Ki"));
    /* the tool block starts: "Ki" cannot wait past it */
    agw_ir_event ev;
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
    ev.index = 2;
    ev.block = AGW_IR_TOOL_USE;
    ev.tool_name = AGW_STR_LIT("Kiro");
    assert_int_equal(agw_sanitize_stage_event(&s, &ev), 0);
    send(&s, AGW_IR_EV_BLOCK_DELTA, 2, AGW_IR_DELTA_JSON, AGW_STR_LIT("{\"who\":\"Kiro <invoke"));
    send(&s, AGW_IR_EV_BLOCK_DELTA, 2, AGW_IR_DELTA_JSON, AGW_STR_LIT("></invoke>\"}"));
    assert_string_equal(k.thinking.data, "I am Kiro");
    assert_string_equal(k.text.data, "Ask Ki");
    assert_string_equal(k.json.data, "{\"who\":\"Kiro <invoke></invoke>\"}");
    assert_string_equal(k.kinds.data, "DXDDBDD");
    agw_sanitize_stage_free(&s);
    sink_free(&k);

    agw_sanitize_rules_set_thinking(r, 1);
    sink_init(&k);
    agw_sanitize_stage_init(&s, r, on_event, &k);
    send(&s, AGW_IR_EV_BLOCK_DELTA, 0, AGW_IR_DELTA_THINKING, AGW_STR_LIT("I am Ki"));
    send(&s, AGW_IR_EV_BLOCK_DELTA, 0, AGW_IR_DELTA_THINKING, AGW_STR_LIT("ro"));
    assert_int_equal(agw_sanitize_stage_flush(&s), 0);
    assert_string_equal(k.thinking.data, "I am Claude");
    agw_sanitize_stage_free(&s);
    sink_free(&k);
    agw_sanitize_rules_free(r);
}

/* A region opened and never closed is released when the block ends. */
static void test_unclosed_region_released(void **state)
{
    (void)state;
    agw_sanitize_rules *r = agw_sanitize_rules_kiro_default();
    sink_t k;
    sink_init(&k);
    agw_sanitize_stage s;
    agw_sanitize_stage_init(&s, r, on_event, &k);
    send(&s, AGW_IR_EV_BLOCK_DELTA, 0, AGW_IR_DELTA_TEXT, AGW_STR_LIT("a <tool_call> b"));
    send(&s, AGW_IR_EV_BLOCK_DELTA, 0, AGW_IR_DELTA_TEXT, AGW_STR_LIT(" c"));
    assert_string_equal(k.text.data, "a ");
    send(&s, AGW_IR_EV_BLOCK_STOP, 0, AGW_IR_DELTA_TEXT, (agw_str){ NULL, 0 });
    assert_string_equal(k.text.data, "a <tool_call> b c");
    agw_sanitize_stage_free(&s);
    sink_free(&k);
    agw_sanitize_rules_free(r);
}

/* ---- through the bridge, in each client protocol ---- */

typedef struct {
    agw_proto client;
    agw_buf text;
} client_text_t;

/* The text a client stream carries: OpenAI chunks' delta.content, Anthropic
 * content_block_delta's delta.text. */
static int on_client_event(void *ud, const agw_sse_event *ev)
{
    client_text_t *c = ud;
    static const char *const openai_path[] = { "choices", NULL };
    static const char *const anthropic_path[] = { "delta", "text", NULL };
    agw_str v;
    if (c->client == AGW_PROTO_OPENAI) {
        agw_str choices, content;
        agw_json_iter it;
        if (agw_json_find_path(ev->data, openai_path, &choices) != AGW_OK ||
            agw_json_iter_init(&it, choices) != AGW_OK || !agw_json_iter_next(&it, NULL, &v))
            return 0;
        static const char *const content_path[] = { "delta", "content", NULL };
        if (agw_json_find_path(v, content_path, &content) != AGW_OK ||
            agw_json_type_of(content) != AGW_JSON_STRING)
            return 0;
        assert_int_equal(agw_json_string_decode(content, &c->text), AGW_OK);
        return 0;
    }
    if (agw_str_eq(ev->event, AGW_STR_LIT("content_block_delta")) &&
        agw_json_find_path(ev->data, anthropic_path, &v) == AGW_OK)
        assert_int_equal(agw_json_string_decode(v, &c->text), AGW_OK);
    return 0;
}

/* An Anthropic upstream stream of `in` cut at `cuts`, through a bridge with
 * the rules to a streaming client of `client`: the text it gets. */
static void bridge_split(const agw_sanitize_rules *r, agw_proto client, agw_str in,
                         const size_t *cuts, size_t n_cuts, agw_buf *got)
{
    agw_bridge *b = agw_bridge_new(client, AGW_PROTO_ANTHROPIC, 1, 0, AGW_STR_LIT("m"), 1);
    agw_bridge_sanitize(b, r);
    const agw_codec *c = agw_bridge_codec(b);
    agw_buf out = AGW_BUF_INIT(1 << 20), data = AGW_BUF_INIT(1 << 16);
#define EV(name, json) \
    assert_int_equal(c->event(c->ud, AGW_STR_LIT(name), AGW_STR_LIT(json), &out), AGW_OK)
    EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\","
                        "\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\","
                        "\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":1,"
                        "\"output_tokens\":1}}}");
    EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                              "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
    size_t from = 0;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t to = i < n_cuts ? cuts[i] : in.len;
        agw_buf_reset(&data);
        assert_int_equal(agw_buf_append_str(&data, AGW_STR_LIT("{\"type\":\"content_block_delta\","
                                                               "\"index\":0,\"delta\":{\"type\":"
                                                               "\"text_delta\",\"text\":\"")),
                         AGW_OK);
        assert_int_equal(agw_buf_append_json_escaped(&data, (agw_str){ in.ptr + from, to - from }),
                         AGW_OK);
        assert_int_equal(agw_buf_append_str(&data, AGW_STR_LIT("\"}}")), AGW_OK);
        assert_int_equal(c->event(c->ud, AGW_STR_LIT("content_block_delta"), agw_buf_view(&data),
                                  &out),
                         AGW_OK);
        from = to;
    }
    EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}");
    EV("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                        "\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":5}}");
    EV("message_stop", "{\"type\":\"message_stop\"}");
#undef EV
    int status = 0;
    assert_int_equal(c->finish(c->ud, &out, &status), AGW_OK);
    client_text_t ct = { client, AGW_BUF_INIT(1 << 16) };
    agw_sse_parser p;
    agw_sse_init(&p, 1 << 20);
    assert_int_equal(agw_sse_feed(&p, out.data, out.len, on_client_event, &ct), AGW_OK);
    agw_buf_reset(got);
    assert_int_equal(agw_buf_append_str(got, agw_buf_view(&ct.text)), AGW_OK);
    agw_sse_free(&p);
    agw_buf_free(&ct.text);
    agw_buf_free(&out);
    agw_buf_free(&data);
    agw_bridge_free(b);
}

/* Every split into two and three upstream events, for an OpenAI and an
 * Anthropic client: the client's text is the rules applied to the whole. */
static void test_every_split_in_both_client_protocols(void **state)
{
    (void)state;
    agw_sanitize_rules *r = agw_sanitize_rules_kiro_default();
    static const char *const texts[] = {
        "I’m Kiro, Amazon Q Developer: ü",
        "x<invoke name=\"a\">é</invoke>y<tool_call>{}</tool_call>",
        "<function_calls>日本</function_calls>CodeWhisperer",
    };
    static const agw_proto clients[] = { AGW_PROTO_OPENAI, AGW_PROTO_ANTHROPIC };
    agw_buf got = AGW_BUF_INIT(1 << 16), want = AGW_BUF_INIT(1 << 16);
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        agw_str in = agw_str_c(texts[t]);
        agw_buf_reset(&want);
        assert_int_equal(agw_sanitize_apply(r, in, &want), AGW_OK);
        for (size_t k = 0; k < 2; k++)
            for (size_t a = 1; a < in.len; a++) {
                /* a cut inside a UTF-8 sequence cannot be a JSON string's end */
                if ((in.ptr[a] & 0xC0) == 0x80)
                    continue;
                size_t one[1] = { a };
                bridge_split(r, clients[k], in, one, 1, &got);
                assert_true(agw_str_eq(agw_buf_view(&got), agw_buf_view(&want)));
                for (size_t b2 = a + 1; b2 < in.len; b2++) {
                    if ((in.ptr[b2] & 0xC0) == 0x80)
                        continue;
                    size_t two[2] = { a, b2 };
                    bridge_split(r, clients[k], in, two, 2, &got);
                    if (!agw_str_eq(agw_buf_view(&got), agw_buf_view(&want)))
                        fail_msg("client %d, cuts %zu %zu: [%s] want [%s]", (int)clients[k], a,
                                 b2, got.data, want.data);
                }
            }
    }
    agw_buf_free(&got);
    agw_buf_free(&want);
    agw_sanitize_rules_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kiro_identity),
        cmocka_unit_test(test_kiro_regions),
        cmocka_unit_test(test_literal_and_order),
        cmocka_unit_test(test_rules_refused),
        cmocka_unit_test(test_every_split_of_the_defaults),
        cmocka_unit_test(test_no_match_holds_nothing),
        cmocka_unit_test(test_only_text_is_touched),
        cmocka_unit_test(test_unclosed_region_released),
        cmocka_unit_test(test_every_split_in_both_client_protocols),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for the OpenAI codec (lib/proto/openai.h): request decoding
 * (every field, every rejection), request encoding (exact bytes), the stream
 * decoder (exact IR event sequences), the stream encoder (exact client
 * bytes), the fold into a chat.completion, and error bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/openai.h"
#include "proto/wire.h"

#define V(lit) ((agw_str){ "" lit, sizeof(lit) - 1 })

static void assert_str(agw_str got, const char *want, size_t n)
{
    if (got.len != n || (n && memcmp(got.ptr, want, n) != 0))
        fail_msg("got [%.*s] (%zu bytes)\nwant [%.*s] (%zu bytes)", (int)got.len,
                 got.ptr ? got.ptr : "", got.len, (int)n, want, n);
}
#define ASSERT_STR(got, lit) assert_str((got), "" lit, sizeof(lit) - 1)

static void assert_buf(const agw_buf *b, const char *want)
{
    assert_str(agw_buf_view(b), want, strlen(want));
}

/* ---- request decoding helpers ---- */

typedef struct {
    agw_arena arena;
    agw_ir_request rq;
    char err[256];
} dec_t;

static agw_err dec_len(dec_t *d, const char *body, size_t len)
{
    memset(d, 0, sizeof *d);
    return agw_openai_decode_request((agw_str){ body, len }, &d->arena, &d->rq, d->err,
                                     sizeof d->err);
}

static void dec_ok(dec_t *d, const char *body)
{
    agw_err e = dec_len(d, body, strlen(body));
    if (e != AGW_OK)
        fail_msg("decode failed (%d): %s\nbody: %s", e, d->err, body);
}

static void dec_free(dec_t *d)
{
    agw_arena_free(&d->arena);
}

/* The decode fails with AGW_EINVAL and a message containing `want`. */
static void dec_bad(const char *body, const char *want)
{
    dec_t d;
    agw_err e = dec_len(&d, body, strlen(body));
    if (e != AGW_EINVAL)
        fail_msg("decode returned %d, want EINVAL, for %s", e, body);
    if (!strstr(d.err, want))
        fail_msg("error [%s] does not mention [%s] for %s", d.err, want, body);
    dec_free(&d);
}

static void enc_expect_as(const agw_ir_request *rq, const char *want)
{
    agw_buf b = AGW_BUF_INIT(1 << 20);
    char err[128] = "";
    agw_err e = agw_openai_encode_request(rq, &b, err, sizeof err);
    if (e != AGW_OK)
        fail_msg("encode failed (%d): %s", e, err);
    assert_buf(&b, want);
    agw_buf_free(&b);
}

/* `want` is the streamed form: the request is encoded once streaming, and
 * once not, which must give the same body without "stream" and without
 * stream_options (refused without a stream; the answer carries its usage). */
static void enc_expect(const agw_ir_request *rq, const char *want)
{
    static const char tail[] = ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
    agw_ir_request copy = *rq;
    size_t n = strlen(want);
    copy.stream = 1;
    enc_expect_as(&copy, want);
    assert_true(n > sizeof tail - 1 && !strcmp(want + n - (sizeof tail - 1), tail));
    char *plain = strdup(want);
    strcpy(plain + n - (sizeof tail - 1), "}");
    copy.stream = 0;
    enc_expect_as(&copy, plain);
    free(plain);
}

/* ---- event log: a readable, exact record of a sink's events ---- */

typedef struct {
    agw_buf log;
    agw_ir_fold fold;
    int fold_on;
    int stop_after; /* return non-zero at this event count; 0 = never */
    int n;
} rec_t;

static const char *kind_name(agw_ir_block_kind k)
{
    static const char *const n[] = { "text", "image", "tool_use", "tool_result", "thinking",
                                     "redacted" };
    return n[k];
}

static void log_bytes(agw_buf *b, agw_str s)
{
    for (size_t i = 0; i < s.len; i++) {
        agw_err e = s.ptr[i] == '\0' ? agw_buf_append(b, "\\0", 2) : agw_buf_append(b, s.ptr + i, 1);
        assert_int_equal(e, AGW_OK);
    }
}

static void logf_(agw_buf *b, const char *fmt, ...) AGW_PRINTF(2, 3);
static void logf_(agw_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    assert_int_equal(agw_buf_append_str(b, agw_str_c(tmp)), AGW_OK);
}

static int rec_sink(void *ud, const agw_ir_event *ev)
{
    static const char *const dk[] = { "text", "json", "thinking", "signature" };
    rec_t *r = ud;
    agw_buf *b = &r->log;

    switch (ev->kind) {
    case AGW_IR_EV_MESSAGE_START:
        logf_(b, "MESSAGE_START id=");
        log_bytes(b, ev->id);
        logf_(b, " model=");
        log_bytes(b, ev->model);
        break;
    case AGW_IR_EV_BLOCK_START:
        logf_(b, "BLOCK_START %d %s", ev->index, kind_name(ev->block));
        if (ev->block == AGW_IR_TOOL_USE) {
            logf_(b, " id=");
            log_bytes(b, ev->tool_id);
            logf_(b, " name=");
            log_bytes(b, ev->tool_name);
        }
        break;
    case AGW_IR_EV_BLOCK_DELTA:
        logf_(b, "BLOCK_DELTA %d %s [", ev->index, dk[ev->delta_kind]);
        log_bytes(b, ev->delta);
        logf_(b, "]");
        break;
    case AGW_IR_EV_BLOCK_STOP:
        logf_(b, "BLOCK_STOP %d", ev->index);
        break;
    case AGW_IR_EV_MESSAGE_DELTA:
        logf_(b, "MESSAGE_DELTA stop=%s usage=%lld/%lld/%lld/%lld",
              agw_ir_stop_name(ev->stop) ? agw_ir_stop_name(ev->stop) : "none",
              (long long)ev->usage.input, (long long)ev->usage.output,
              (long long)ev->usage.cache_read, (long long)ev->usage.cache_write);
        break;
    case AGW_IR_EV_MESSAGE_STOP:
        logf_(b, "MESSAGE_STOP");
        break;
    case AGW_IR_EV_ERROR:
        logf_(b, "ERROR %d ", ev->status);
        log_bytes(b, ev->error_type);
        logf_(b, " [");
        log_bytes(b, ev->error_message);
        logf_(b, "]");
        break;
    case AGW_IR_EV_PING:
        logf_(b, "PING");
        break;
    }
    logf_(b, "\n");
    if (r->fold_on)
        assert_int_equal(agw_ir_fold_add(&r->fold, ev), AGW_OK);
    r->n++;
    return r->stop_after && r->n >= r->stop_after;
}

static void rec_init(rec_t *r)
{
    memset(r, 0, sizeof *r);
    agw_buf_init(&r->log, 1 << 20);
    agw_ir_fold_init(&r->fold, 1 << 20);
}

static void rec_free(rec_t *r)
{
    agw_buf_free(&r->log);
    agw_ir_fold_free(&r->fold);
}

/* Feeds each payload (NULL-terminated list) to a fresh decoder; every feed
 * must succeed. Returns what _end returned. */
static agw_err feed_all(rec_t *r, const char *const *payloads)
{
    agw_openai_stream_decoder d;
    char err[256] = "";
    agw_err e;

    agw_openai_stream_decoder_init(&d);
    for (size_t i = 0; payloads[i]; i++) {
        e = agw_openai_decode_stream_event(&d, agw_str_c(payloads[i]), rec_sink, r, err,
                                           sizeof err);
        if (e != AGW_OK)
            fail_msg("payload %zu failed (%d): %s", i, e, err);
    }
    e = agw_openai_decode_stream_end(&d, rec_sink, r);
    agw_openai_stream_decoder_free(&d);
    return e;
}

/* One chunk as OpenAI sends it, around a delta and a finish_reason. */
#define CHUNK(delta, finish)                                                                    \
    "{\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"      \
    "\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_x\",\"choices\":[{\"index\":0," \
    "\"delta\":" delta ",\"logprobs\":null,\"finish_reason\":" finish "}],\"usage\":null}"

#define USAGE_CHUNK                                                                          \
    "{\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"   \
    "\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":120,"       \
    "\"completion_tokens\":25,\"total_tokens\":145,\"prompt_tokens_details\":"               \
    "{\"cached_tokens\":100},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}"

/* ======================================================================
 * Request decoding
 * ====================================================================== */

static void test_decode_fields(void **state)
{
    dec_t d;
    (void)state;

    dec_ok(&d, "{\"model\":\"gpt-4o\",\"messages\":["
               "{\"role\":\"system\",\"content\":\"Be terse.\"},"
               "{\"role\":\"user\",\"content\":\"Hi\"},"
               "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"Dev 1\"},"
               "{\"type\":\"text\",\"text\":\"Dev 2\"}]}],"
               "\"temperature\":1.5,\"top_p\":0.25,\"max_tokens\":100,"
               "\"max_completion_tokens\":200,\"stop\":[\"END\",\"STOP\"],\"stream\":true,"
               "\"stream_options\":{\"include_usage\":true,\"other\":1},\"user\":\"u-42\","
               "\"metadata\":{\"k\":\"v\"},\"seed\":7,\"store\":false,\"service_tier\":\"auto\","
               "\"reasoning_effort\":\"low\",\"n\":1,\"logprobs\":false,\"logit_bias\":{},"
               "\"presence_penalty\":0,\"frequency_penalty\":0.0,"
               "\"response_format\":{\"type\":\"text\"},\"modalities\":[\"text\"],"
               "\"unknown_future_param\":{\"x\":1}}");
    ASSERT_STR(d.rq.model, "gpt-4o");
    assert_int_equal(d.rq.n_system, 3);
    ASSERT_STR(d.rq.system[0].text, "Be terse.");
    ASSERT_STR(d.rq.system[1].text, "Dev 1");
    ASSERT_STR(d.rq.system[2].text, "Dev 2");
    assert_int_equal(d.rq.n_messages, 1);
    assert_int_equal(d.rq.messages[0].role, AGW_IR_USER);
    assert_int_equal(d.rq.messages[0].n_blocks, 1);
    assert_int_equal(d.rq.messages[0].blocks[0].kind, AGW_IR_TEXT);
    ASSERT_STR(d.rq.messages[0].blocks[0].text, "Hi");
    assert_true(d.rq.has_temperature);
    assert_true(d.rq.temperature == 1.5);
    assert_true(d.rq.has_top_p);
    assert_true(d.rq.top_p == 0.25);
    assert_int_equal(d.rq.max_tokens, 200); /* max_completion_tokens wins */
    assert_int_equal(d.rq.top_k, -1);
    assert_int_equal(d.rq.n_stop, 2);
    ASSERT_STR(d.rq.stop[0], "END");
    ASSERT_STR(d.rq.stop[1], "STOP");
    assert_true(d.rq.stream);
    assert_true(d.rq.stream_usage);
    ASSERT_STR(d.rq.user, "u-42");
    assert_int_equal(d.rq.n_tools, 0);
    assert_int_equal(d.rq.tool_choice, AGW_IR_TC_UNSET);
    assert_int_equal(d.rq.parallel_tool_calls, -1);
    assert_int_equal(d.rq.thinking.len, 0);
    dec_free(&d);

    /* Minimal: defaults for everything absent, max_tokens alone, stop string. */
    dec_ok(&d, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
               "\"max_tokens\":5,\"stop\":\"\\n\",\"stream_options\":{\"include_usage\":true}}");
    assert_int_equal(d.rq.max_tokens, 5);
    assert_int_equal(d.rq.n_stop, 1);
    ASSERT_STR(d.rq.stop[0], "\n");
    assert_false(d.rq.stream);
    assert_false(d.rq.stream_usage); /* no stream, no usage chunk */
    assert_false(d.rq.has_temperature);
    assert_false(d.rq.has_top_p);
    assert_int_equal(d.rq.n_system, 0);
    dec_free(&d);

    /* Explicit nulls count as absent; the model may be left to the router. */
    dec_ok(&d, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":null,"
               "\"tools\":null,\"tool_choice\":null,\"stop\":null,\"n\":null,\"logprobs\":null,"
               "\"top_logprobs\":null,\"audio\":null,\"response_format\":null,\"user\":null,"
               "\"stream\":null,\"max_tokens\":null,\"functions\":null,\"prediction\":null}");
    assert_int_equal(d.rq.model.len, 0);
    assert_int_equal(d.rq.max_tokens, -1);
    assert_false(d.rq.has_temperature);
    dec_free(&d);

    /* parallel_tool_calls without tools is ignored. */
    dec_ok(&d, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
               "\"parallel_tool_calls\":false}");
    assert_int_equal(d.rq.parallel_tool_calls, -1);
    dec_free(&d);

    /* Temperature bounds are OpenAI's (0..2). */
    dec_ok(&d, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":2}");
    assert_true(d.rq.temperature == 2.0);
    dec_free(&d);
    dec_ok(&d, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":0}");
    assert_true(d.rq.has_temperature && d.rq.temperature == 0.0);
    dec_free(&d);
}

static void test_decode_tools(void **state)
{
    dec_t d;
    (void)state;

    dec_ok(&d, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
               "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
               "\"description\":\"Weather now\",\"parameters\":{\"type\":\"object\","
               "\"properties\":{\"city\":{\"type\":\"string\"}}},\"strict\":true}},"
               "{\"type\":\"function\",\"function\":{\"name\":\"now\"}}],"
               "\"tool_choice\":\"required\",\"parallel_tool_calls\":false}");
    assert_int_equal(d.rq.n_tools, 2);
    ASSERT_STR(d.rq.tools[0].name, "get_weather");
    ASSERT_STR(d.rq.tools[0].description, "Weather now");
    ASSERT_STR(d.rq.tools[0].schema,
               "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}");
    ASSERT_STR(d.rq.tools[1].name, "now");
    assert_int_equal(d.rq.tools[1].description.len, 0);
    ASSERT_STR(d.rq.tools[1].schema, "{\"type\":\"object\",\"properties\":{}}");
    assert_int_equal(d.rq.tool_choice, AGW_IR_TC_ANY);
    assert_int_equal(d.rq.parallel_tool_calls, 0);
    dec_free(&d);

    static const struct {
        const char *choice;
        agw_ir_tool_choice want;
    } choices[] = {
        { "\"auto\"", AGW_IR_TC_AUTO },
        { "\"none\"", AGW_IR_TC_NONE },
        { "\"required\"", AGW_IR_TC_ANY },
        { "{\"type\":\"function\",\"function\":{\"name\":\"now\"}}", AGW_IR_TC_TOOL },
    };
    for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
                 "\"function\",\"function\":{\"name\":\"now\"}}],\"tool_choice\":%s,"
                 "\"parallel_tool_calls\":true}",
                 choices[i].choice);
        dec_ok(&d, body);
        assert_int_equal(d.rq.tool_choice, choices[i].want);
        assert_int_equal(d.rq.parallel_tool_calls, 1);
        if (choices[i].want == AGW_IR_TC_TOOL)
            ASSERT_STR(d.rq.tool_choice_name, "now");
        dec_free(&d);
    }
}

static void test_decode_user_parts(void **state)
{
    dec_t d;
    const agw_ir_message *m;
    (void)state;

    dec_ok(&d, "{\"messages\":[{\"role\":\"user\",\"content\":["
               "{\"type\":\"text\",\"text\":\"Look:\"},"
               "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0K\","
               "\"detail\":\"high\"}},"
               "{\"type\":\"text\",\"text\":\"\"},"
               "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.com/a.jpg\"}}]}]}");
    assert_int_equal(d.rq.n_messages, 1);
    m = &d.rq.messages[0];
    assert_int_equal(m->n_blocks, 3); /* the empty text is left out */
    assert_int_equal(m->blocks[0].kind, AGW_IR_TEXT);
    ASSERT_STR(m->blocks[0].text, "Look:");
    assert_int_equal(m->blocks[1].kind, AGW_IR_IMAGE);
    assert_false(m->blocks[1].image_is_url);
    ASSERT_STR(m->blocks[1].media_type, "image/png");
    ASSERT_STR(m->blocks[1].image_data, "iVBORw0K");
    assert_int_equal(m->blocks[2].kind, AGW_IR_IMAGE);
    assert_true(m->blocks[2].image_is_url);
    ASSERT_STR(m->blocks[2].image_data, "https://example.com/a.jpg");
    assert_int_equal(m->blocks[2].media_type.len, 0);
    dec_free(&d);
}

static void test_decode_assistant_and_tools(void **state)
{
    dec_t d;
    const agw_ir_message *m;
    (void)state;

    dec_ok(&d, "{\"messages\":["
               "{\"role\":\"user\",\"content\":\"Weather?\"},"
               "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":["
               "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
               "\"arguments\":\"{\\\"city\\\": \\\"Paris\\\"}\"}},"
               "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"now\","
               "\"arguments\":\"\"}}]},"
               "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"18C\"},"
               "{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":[{\"type\":\"text\","
               "\"text\":\"noon\"},{\"type\":\"text\",\"text\":\"UTC\"}]},"
               "{\"role\":\"user\",\"content\":\"Thanks\"},"
               "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"You're \"},"
               "{\"type\":\"refusal\",\"refusal\":\"welcome\"}]},"
               "{\"role\":\"assistant\",\"content\":null,\"refusal\":\"No.\"}]}");
    assert_int_equal(d.rq.n_messages, 4);

    m = &d.rq.messages[1];
    assert_int_equal(m->role, AGW_IR_ASSISTANT);
    assert_int_equal(m->n_blocks, 2);
    assert_int_equal(m->blocks[0].kind, AGW_IR_TOOL_USE);
    ASSERT_STR(m->blocks[0].tool_id, "call_1");
    ASSERT_STR(m->blocks[0].tool_name, "get_weather");
    ASSERT_STR(m->blocks[0].tool_input, "{\"city\": \"Paris\"}");
    ASSERT_STR(m->blocks[1].tool_input, "{}");

    /* Two tool messages and the user's message: one user turn, results first. */
    m = &d.rq.messages[2];
    assert_int_equal(m->role, AGW_IR_USER);
    assert_int_equal(m->n_blocks, 3);
    assert_int_equal(m->blocks[0].kind, AGW_IR_TOOL_RESULT);
    ASSERT_STR(m->blocks[0].tool_id, "call_1");
    assert_int_equal(m->blocks[0].n_content, 1);
    ASSERT_STR(m->blocks[0].content[0].text, "18C");
    assert_false(m->blocks[0].is_error);
    assert_int_equal(m->blocks[1].kind, AGW_IR_TOOL_RESULT);
    ASSERT_STR(m->blocks[1].tool_id, "call_2");
    assert_int_equal(m->blocks[1].n_content, 2);
    ASSERT_STR(m->blocks[1].content[1].text, "UTC");
    assert_int_equal(m->blocks[2].kind, AGW_IR_TEXT);
    ASSERT_STR(m->blocks[2].text, "Thanks");

    /* Consecutive assistant messages merge; refusals are text. */
    m = &d.rq.messages[3];
    assert_int_equal(m->role, AGW_IR_ASSISTANT);
    assert_int_equal(m->n_blocks, 3);
    ASSERT_STR(m->blocks[0].text, "You're ");
    ASSERT_STR(m->blocks[1].text, "welcome");
    ASSERT_STR(m->blocks[2].text, "No.");
    dec_free(&d);
}

static void test_decode_merging(void **state)
{
    dec_t d;
    const agw_ir_message *m;
    (void)state;

    /* user, system, user -> one user turn; empty turns vanish. */
    dec_ok(&d, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
               "{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"b\"},"
               "{\"role\":\"assistant\",\"content\":\"\"},{\"role\":\"user\",\"content\":[]},"
               "{\"role\":\"user\",\"content\":\"c\"}]}");
    assert_int_equal(d.rq.n_system, 1);
    assert_int_equal(d.rq.n_messages, 1);
    m = &d.rq.messages[0];
    assert_int_equal(m->n_blocks, 3);
    ASSERT_STR(m->blocks[0].text, "a");
    ASSERT_STR(m->blocks[1].text, "b");
    ASSERT_STR(m->blocks[2].text, "c");
    dec_free(&d);

    /* A tool result after user text still goes first in the turn. */
    dec_ok(&d, "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\","
               "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
               "{\"role\":\"user\",\"content\":\"first\"},"
               "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"\"}]}");
    assert_int_equal(d.rq.n_messages, 2);
    m = &d.rq.messages[1];
    assert_int_equal(m->n_blocks, 2);
    assert_int_equal(m->blocks[0].kind, AGW_IR_TOOL_RESULT);
    assert_int_equal(m->blocks[0].n_content, 0);
    assert_int_equal(m->blocks[1].kind, AGW_IR_TEXT);
    dec_free(&d);
}

static void test_decode_strings(void **state)
{
    static const char body[] =
        "{\"model\":\"gpt-\\u0034o\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"a\\u0000b\"},{\"role\":\"assistant\",\"content\":\"\\ud83d\\ude00 \\u2028 \\\"q\\\" "
        "\\\\ \\n \\ud800\"}]}";
    dec_t d;
    (void)state;

    dec_ok(&d, body);
    ASSERT_STR(d.rq.model, "gpt-4o");
    ASSERT_STR(d.rq.messages[0].blocks[0].text, "a\0b");
    ASSERT_STR(d.rq.messages[1].blocks[0].text,
               "\xF0\x9F\x98\x80 \xE2\x80\xA8 \"q\" \\ \n \xEF\xBF\xBD");
    /* ...and back out: NUL escaped, valid UTF-8 as it is. */
    d.rq.model = V("gpt-4o");
    enc_expect(&d.rq, "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":"
                      "\"a\\u0000b\"},{\"role\":\"assistant\",\"content\":\"\xF0\x9F\x98\x80 "
                      "\xE2\x80\xA8 \\\"q\\\" \\\\ \\n \xEF\xBF\xBD\"}],\"stream\":true,"
                      "\"stream_options\":{\"include_usage\":true}}");
    dec_free(&d);
}

static void test_decode_rejections(void **state)
{
    static const struct {
        const char *body;
        const char *want;
    } cases[] = {
#define M "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"
#define TOOLS "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]"
        { "", "invalid JSON" },
        { "{\"messages\":[}", "invalid JSON" },
        { "[1]", "JSON object" },
        { "{}", "messages: required" },
        { "{\"messages\":null}", "messages: required" },
        { "{\"messages\":[]}", "messages: expected at least one" },
        { "{\"messages\":{}}", "messages: expected an array" },
        { "{\"messages\":[\"hi\"]}", "messages[0]: expected an object" },
        { "{\"messages\":[{\"content\":\"x\"}]}", "messages[0].role: required" },
        { "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "messages[0].role: unknown" },
        { "{\"messages\":[{\"role\":\"function\",\"name\":\"f\",\"content\":\"x\"}]}",
          "messages[0].role: the legacy 'function' role" },
        { "{\"messages\":[{\"role\":7}]}", "messages[0].role: expected a string" },
        { "{\"messages\":[{\"role\":\"user\"}]}", "messages[0].content: required" },
        { "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages[0].content: expected" },
        { "{\"messages\":[{\"role\":\"system\",\"content\":null}]}", "messages[0].content" },
        { "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]}",
          "messages[0].content[0].type: required" },
        { "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":1}]}]}",
          "messages[0].content[0].text: expected a string" },
        { "{\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"image_url\","
          "\"image_url\":{\"url\":\"https://x/y\"}}]}]}",
          "messages[0].content[0].type: unsupported" },
        { "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\","
          "\"input_audio\":{}}]}]}", "'input_audio' content parts are not supported" },
        { "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"file\",\"file\":{}}]}]}",
          "'file' content parts are not supported" },
        { "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
          "\"image_url\":{\"url\":\"ftp://x/y\"}}]}]}",
          "messages[0].content[0].image_url.url: expected an http(s) URL" },
        { "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
          "\"image_url\":{\"url\":\"data:image/png,abc\"}}]}]}",
          "messages[0].content[0].image_url.url: expected a data URI" },
        { "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
          "\"image_url\":\"https://x/y\"}]}]}", "messages[0].content[0].image_url.url: required" },
        { "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":"
          "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{oops\"}}]}]}",
          "messages[0].tool_calls[0].function.arguments: not valid JSON" },
        { "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\","
          "\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\","
          "\"arguments\":\"{}\"}},{\"id\":\"d\",\"function\":{\"name\":\"g\",\"arguments\":"
          "\"[1]\"}}]}]}", "messages[1].tool_calls[1].function.arguments: expected a JSON object" },
        { "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"type\":\"function\","
          "\"function\":{\"name\":\"f\"}}]}]}", "messages[0].tool_calls[0].id: required" },
        { "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":"
          "\"custom\",\"custom\":{}}]}]}", "messages[0].tool_calls[0].type: only 'function'" },
        { "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\"}]}]}",
          "messages[0].tool_calls[0].function: expected an object" },
        { "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":{}}]}",
          "messages[0].tool_calls: expected an array" },
        { "{\"messages\":[{\"role\":\"assistant\",\"function_call\":{\"name\":\"f\"}}]}",
          "messages[0].function_call: the legacy" },
        { "{\"messages\":[{\"role\":\"assistant\",\"audio\":{\"id\":\"a\"}}]}",
          "messages[0].audio" },
        { "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
          "messages[0].tool_call_id: required" },
        { "{\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"c\"}]}",
          "messages[0].content: required" },
        { "{" M ",\"n\":2}", "n: only n=1" },
        { "{" M ",\"n\":0}", "n: only n=1" },
        { "{" M ",\"n\":\"1\"}", "n: expected an integer" },
        { "{" M ",\"logprobs\":true}", "logprobs" },
        { "{" M ",\"top_logprobs\":2}", "top_logprobs" },
        { "{" M ",\"logit_bias\":{\"50256\":-100}}", "logit_bias" },
        { "{" M ",\"logit_bias\":[]}", "logit_bias: expected an object" },
        { "{" M ",\"presence_penalty\":0.5}", "presence_penalty" },
        { "{" M ",\"frequency_penalty\":-1}", "frequency_penalty" },
        { "{" M ",\"frequency_penalty\":\"0\"}", "frequency_penalty: expected a number" },
        { "{" M ",\"audio\":{\"voice\":\"alloy\",\"format\":\"wav\"}}", "audio" },
        { "{" M ",\"modalities\":[\"text\",\"audio\"]}", "modalities: audio" },
        { "{" M ",\"modalities\":\"text\"}", "modalities: expected an array" },
        { "{" M ",\"prediction\":{\"type\":\"content\",\"content\":\"x\"}}", "prediction" },
        { "{" M ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{}}}",
          "response_format: structured output" },
        { "{" M ",\"response_format\":{\"type\":\"json_object\"}}",
          "response_format: structured output" },
        { "{" M ",\"response_format\":\"json\"}", "response_format: expected an object" },
        { "{" M ",\"functions\":[{\"name\":\"f\"}]}", "functions: the legacy" },
        { "{" M ",\"function_call\":\"auto\"}", "function_call: the legacy" },
        { "{" M ",\"tool_choice\":\"auto\"}", "tool_choice: only allowed when tools" },
        { "{" M ",\"tools\":[]}", "tools: expected an array with at least one" },
        { "{" M ",\"tools\":{}}", "tools: expected an array" },
        { "{" M ",\"tools\":[{\"type\":\"function\"}]}", "tools[0].function: expected an object" },
        { "{" M ",\"tools\":[{\"type\":\"custom\",\"custom\":{\"name\":\"x\"}}]}",
          "tools[0].type: only 'function'" },
        { "{" M ",\"tools\":[{\"function\":{\"name\":\"f\"}}]}", "tools[0].type: required" },
        { "{" M ",\"tools\":[{\"type\":\"function\",\"function\":{\"description\":\"d\"}}]}",
          "tools[0].function.name: required" },
        { "{" M ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
          "\"parameters\":[]}}]}", "tools[0].function.parameters: expected an object" },
        { "{" M ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
          "\"strict\":\"yes\"}}]}", "tools[0].function.strict: expected a boolean" },
        { "{" M "," TOOLS ",\"tool_choice\":\"any\"}", "tool_choice: expected 'auto'" },
        { "{" M "," TOOLS ",\"tool_choice\":{\"type\":\"function\"}}", "tool_choice.function" },
        { "{" M "," TOOLS ",\"tool_choice\":{\"type\":\"allowed_tools\"}}", "tool_choice.type" },
        { "{" M "," TOOLS ",\"parallel_tool_calls\":1}", "parallel_tool_calls: expected a boolean" },
        { "{" M ",\"temperature\":\"hot\"}", "temperature: expected a number" },
        { "{" M ",\"temperature\":2.5}", "temperature: must be between 0 and 2" },
        { "{" M ",\"temperature\":-0.1}", "temperature: must be between" },
        { "{" M ",\"temperature\":1e400}", "temperature: expected a number" },
        { "{" M ",\"top_p\":1.5}", "top_p: must be between 0 and 1" },
        { "{" M ",\"max_tokens\":1.5}", "max_tokens: expected an integer" },
        { "{" M ",\"max_tokens\":0}", "max_tokens: must be at least 1" },
        { "{" M ",\"max_completion_tokens\":-3}", "max_completion_tokens: must be at least 1" },
        { "{" M ",\"max_completion_tokens\":99999999999999999999}",
          "max_completion_tokens: expected an integer" },
        { "{" M ",\"stop\":5}", "stop: expected a string or an array" },
        { "{" M ",\"stop\":[\"a\",1]}", "stop[1]: expected a string" },
        { "{" M ",\"stream\":\"yes\"}", "stream: expected a boolean" },
        { "{" M ",\"stream_options\":true}", "stream_options: expected an object" },
        { "{" M ",\"stream\":true,\"stream_options\":{\"include_usage\":1}}",
          "stream_options.include_usage: expected a boolean" },
        { "{" M ",\"user\":5}", "user: expected a string" },
        { "{" M ",\"model\":5}", "model: expected a string" },
        { "{" M ",\"metadata\":\"x\"}", "metadata: expected an object" },
        { "{" M ",\"seed\":\"x\"}", "seed: expected an integer" },
        { "{" M ",\"store\":\"x\"}", "store: expected a boolean" },
        { "{" M ",\"reasoning_effort\":1}", "reasoning_effort: expected a string" },
#undef M
#undef TOOLS
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        dec_bad(cases[i].body, cases[i].want);
}

/* Bodies with n copies of `item` in the array named by `head`. */
static char *repeat_body(const char *head, const char *item, size_t n, const char *tail)
{
    size_t hl = strlen(head), il = strlen(item), tl = strlen(tail);
    char *b = malloc(hl + n * (il + 1) + tl + 1), *p = b;
    assert_non_null(b);
    memcpy(p, head, hl);
    p += hl;
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        memcpy(p, item, il);
        p += il;
    }
    memcpy(p, tail, tl);
    p[tl] = '\0';
    return b;
}

static void test_decode_bounds(void **state)
{
    dec_t d;
    char *b;
    (void)state;

    b = repeat_body("{\"messages\":[", "{\"role\":\"user\",\"content\":\"x\"}", 10000, "]}");
    dec_ok(&d, b);
    assert_int_equal(d.rq.n_messages, 1);
    assert_int_equal(d.rq.messages[0].n_blocks, 10000);
    dec_free(&d);
    free(b);
    b = repeat_body("{\"messages\":[", "{\"role\":\"user\",\"content\":\"x\"}", 10001, "]}");
    dec_bad(b, "messages: more than 10000");
    free(b);

    b = repeat_body("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[",
                    "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}", 1000, "]}");
    dec_ok(&d, b);
    assert_int_equal(d.rq.n_tools, 1000);
    dec_free(&d);
    free(b);
    b = repeat_body("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[",
                    "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}", 1001, "]}");
    dec_bad(b, "tools: more than 1000");
    free(b);
}

/* The paths in the decoders' messages are written out only on failure;
 * how they are written, and cut short. */
static void test_wire_paths(void **state)
{
    char buf[64], err[40];
    (void)state;

    const agw_wire_path *msg = AGW_WIRE_ELEMENT(AGW_WIRE_NAME("messages"), 12);
    const agw_wire_path *part = AGW_WIRE_ELEMENT(AGW_WIRE_MEMBER(msg, "content"), 3);
    const agw_wire_path *type = AGW_WIRE_MEMBER(part, "type");
    assert_string_equal(agw_wire_path_str(type, buf, sizeof buf), "messages[12].content[3].type");
    assert_string_equal(agw_wire_path_str(AGW_WIRE_NAME("stream_options.include_usage"), buf,
                                          sizeof buf),
                        "stream_options.include_usage");
    assert_string_equal(agw_wire_path_str(AGW_WIRE_ELEMENT(AGW_WIRE_NAME("stop"), 0), buf,
                                          sizeof buf),
                        "stop[0]");
    /* too long for the buffer: cut, ending in "...", NUL-terminated */
    assert_string_equal(agw_wire_path_str(type, buf, 16), "messages[12]...");
    assert_string_equal(agw_wire_path_str(type, buf, 4), "mes");

    assert_int_equal(agw_wire_fail_at(err, sizeof err, type, ": expected %s", "a string"),
                     AGW_EINVAL);
    assert_string_equal(err, "messages[12].content[3].type: expected "); /* 39 + NUL */
    assert_int_equal(agw_wire_fail_at(NULL, 0, type, ": required"), AGW_EINVAL);
}

/* ======================================================================
 * Request encoding
 * ====================================================================== */

static void test_encode_request_full(void **state)
{
    agw_ir_block sys[] = { { .kind = AGW_IR_TEXT, .text = V("You are terse.") },
                           { .kind = AGW_IR_TEXT, .text = V("") },
                           { .kind = AGW_IR_TEXT, .text = V("Answer in French.") } };
    agw_ir_block u0[] = { { .kind = AGW_IR_TEXT, .text = V("What's the weather in Paris?"),
                            .cache_control = V("{\"type\":\"ephemeral\"}") } };
    agw_ir_block a1[] = {
        { .kind = AGW_IR_THINKING, .text = V("hmm"), .signature = V("sig") },
        { .kind = AGW_IR_TEXT, .text = V("Let me ") },
        { .kind = AGW_IR_TEXT, .text = V("check.") },
        { .kind = AGW_IR_TOOL_USE, .tool_id = V("toolu_1"), .tool_name = V("get_weather"),
          .tool_input = V("{\"city\":\"Paris\"}") },
        { .kind = AGW_IR_TOOL_USE, .tool_id = V("toolu_2"), .tool_name = V("get_time") },
        { .kind = AGW_IR_REDACTED_THINKING, .text = V("xyz") },
    };
    agw_ir_block r1[] = { { .kind = AGW_IR_TEXT, .text = V("18C") },
                          { .kind = AGW_IR_IMAGE, .media_type = V("image/png"),
                            .image_data = V("iVBOR") },
                          { .kind = AGW_IR_TEXT, .text = V("sunny") } };
    agw_ir_block r2[] = { { .kind = AGW_IR_TEXT, .text = V("timeout") } };
    agw_ir_block u2[] = {
        { .kind = AGW_IR_TOOL_RESULT, .tool_id = V("toolu_1"), .content = r1, .n_content = 3 },
        { .kind = AGW_IR_TOOL_RESULT, .tool_id = V("toolu_2"), .content = r2, .n_content = 1,
          .is_error = 1 },
        { .kind = AGW_IR_TEXT, .text = V("Thanks") },
        { .kind = AGW_IR_IMAGE, .image_is_url = 1, .image_data = V("https://x.test/a.png") },
    };
    agw_ir_message msgs[] = { { AGW_IR_USER, u0, 1 }, { AGW_IR_ASSISTANT, a1, 6 },
                              { AGW_IR_USER, u2, 4 } };
    agw_ir_tool tools[] = {
        { .name = V("get_weather"), .description = V("Weather"),
          .schema = V("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}") },
        { .name = V("get_time") },
    };
    agw_str stops[] = { V("END"), V("\n\n") };
    agw_ir_request rq = {
        .model = V("gpt-4o"), .system = sys, .n_system = 3, .messages = msgs, .n_messages = 3,
        .tools = tools, .n_tools = 2, .tool_choice = AGW_IR_TC_TOOL,
        .tool_choice_name = V("get_weather"), .parallel_tool_calls = 0, .max_tokens = 1024,
        .has_temperature = 1, .temperature = 0.7, .has_top_p = 1, .top_p = 0.9, .top_k = -1,
        .stop = stops, .n_stop = 2, .user = V("u-1"),
        .thinking = V("{\"type\":\"enabled\",\"budget_tokens\":2048}"),
    };
    (void)state;

    enc_expect(&rq,
               "{\"model\":\"gpt-4o\",\"messages\":["
               "{\"role\":\"system\",\"content\":\"You are terse.\\n\\nAnswer in French.\"},"
               "{\"role\":\"user\",\"content\":\"What's the weather in Paris?\"},"
               "{\"role\":\"assistant\",\"content\":\"Let me check.\",\"tool_calls\":["
               "{\"id\":\"toolu_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
               "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
               "{\"id\":\"toolu_2\",\"type\":\"function\",\"function\":{\"name\":\"get_time\","
               "\"arguments\":\"{}\"}}]},"
               "{\"role\":\"tool\",\"tool_call_id\":\"toolu_1\",\"content\":\"18C\\n\\nsunny\"},"
               "{\"role\":\"tool\",\"tool_call_id\":\"toolu_2\",\"content\":\"Error: timeout\"},"
               "{\"role\":\"user\",\"content\":["
               "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBOR\"}},"
               "{\"type\":\"text\",\"text\":\"Thanks\"},"
               "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x.test/a.png\"}}]}],"
               "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
               "\"description\":\"Weather\",\"parameters\":{\"type\":\"object\",\"properties\":"
               "{\"city\":{\"type\":\"string\"}}}}},"
               "{\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"parameters\":"
               "{\"type\":\"object\",\"properties\":{}}}}],"
               "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}},"
               "\"parallel_tool_calls\":false,\"max_completion_tokens\":1024,\"temperature\":0.7,"
               "\"top_p\":0.9,\"stop\":[\"END\",\"\\n\\n\"],\"user\":\"u-1\",\"stream\":true,"
               "\"stream_options\":{\"include_usage\":true}}");
}

static void test_encode_request_choices(void **state)
{
    agw_ir_block t[] = { { .kind = AGW_IR_TEXT, .text = V("hi") } };
    agw_ir_block th[] = { { .kind = AGW_IR_THINKING, .text = V("only thinking") } };
    agw_ir_block empty_err[] = { { .kind = AGW_IR_TOOL_RESULT, .tool_id = V("c"), .is_error = 1 } };
    agw_ir_message msgs[] = { { AGW_IR_USER, t, 1 } };
    agw_ir_message msgs2[] = { { AGW_IR_USER, t, 1 }, { AGW_IR_ASSISTANT, th, 1 },
                               { AGW_IR_USER, empty_err, 1 } };
    agw_ir_tool tools[] = { { .name = V("f"), .schema = V(" {\"type\":\"object\"} ") } };
    agw_ir_request rq = { .model = V("gpt-4o-mini"), .messages = msgs, .n_messages = 1,
                          .parallel_tool_calls = -1, .max_tokens = -1, .top_k = -1 };
    static const struct {
        const char *model, *thinking, *effort;
    } eff[] = {
        { "o3-mini", "{\"type\":\"enabled\",\"budget_tokens\":4095}", "low" },
        { "o3", "{\"type\":\"enabled\"}", "medium" },
        { "o1", "{\"type\":\"enabled\",\"budget_tokens\":4096}", "medium" },
        { "gpt-5", "{\"type\":\"enabled\",\"budget_tokens\":16383}", "medium" },
        { "gpt-5-mini", "{\"type\":\"enabled\",\"budget_tokens\":16384}", "high" },
        { "o4-mini", "{\"budget_tokens\":99999,\"type\":\"enabled\"}", "high" },
        { "o3", "{\"type\":\"disabled\"}", NULL },
        { "gpt-4o", "{\"type\":\"enabled\",\"budget_tokens\":20000}", NULL },
        { "omni-x", "{\"type\":\"enabled\",\"budget_tokens\":20000}", NULL },
        { "gpt-4.1", "{\"type\":\"enabled\",\"budget_tokens\":20000}", NULL },
    };
    agw_buf b = AGW_BUF_INIT(1 << 16);
    char err[128];
    (void)state;

    for (size_t i = 0; i < sizeof eff / sizeof eff[0]; i++) {
        char want[512];
        rq.model = agw_str_c(eff[i].model);
        rq.thinking = agw_str_c(eff[i].thinking);
        snprintf(want, sizeof want,
                 "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]%s%s%s,"
                 "\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
                 eff[i].model, eff[i].effort ? ",\"reasoning_effort\":\"" : "",
                 eff[i].effort ? eff[i].effort : "", eff[i].effort ? "\"" : "");
        enc_expect(&rq, want);
    }
    rq.model = V("gpt-4o-mini");
    rq.thinking = (agw_str){ NULL, 0 };

    /* Reasoning models refuse temperature, top_p and stop, and the o-series
     * parallel_tool_calls: they are left out, max_completion_tokens kept;
     * gpt-5-chat is no reasoning model and keeps them. */
    {
        agw_str stops[] = { V("END") };
        agw_ir_tool tool1[] = { { .name = V("f"), .schema = V("{\"type\":\"object\"}") } };
        agw_ir_request rr = rq;
        rr.has_temperature = rr.has_top_p = 1;
        rr.temperature = 0.2;
        rr.top_p = 0.5;
        rr.stop = stops;
        rr.n_stop = 1;
        rr.max_tokens = 99;
        rr.tools = tool1;
        rr.n_tools = 1;
        rr.parallel_tool_calls = 0;
        static const struct {
            const char *model, *want;
        } rm[] = {
            { "o3", "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                    "\"parameters\":{\"type\":\"object\"}}}],\"max_completion_tokens\":99" },
            { "gpt-5-mini", "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                            "\"parameters\":{\"type\":\"object\"}}}],\"parallel_tool_calls\":false,"
                            "\"max_completion_tokens\":99" },
            { "gpt-5-chat-latest", "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                                   "\"parameters\":{\"type\":\"object\"}}}],\"parallel_tool_calls\":false,"
                                   "\"max_completion_tokens\":99,\"temperature\":0.2,\"top_p\":0.5,"
                                   "\"stop\":[\"END\"]" },
        };
        for (size_t i = 0; i < sizeof rm / sizeof rm[0]; i++) {
            char want[1024];
            rr.model = agw_str_c(rm[i].model);
            snprintf(want, sizeof want,
                     "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],%s,"
                     "\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
                     rm[i].model, rm[i].want);
            enc_expect(&rr, want);
        }
    }

    /* Tool choices; a schema is trimmed; assistant turns of only thinking
     * vanish; an error result with no text says just "Error". */
    rq.messages = msgs2;
    rq.n_messages = 3;
    rq.tools = tools;
    rq.n_tools = 1;
    rq.tool_choice = AGW_IR_TC_ANY;
    rq.parallel_tool_calls = 1;
    enc_expect(&rq, "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":"
                    "\"hi\"},{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"Error\"}],"
                    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":"
                    "{\"type\":\"object\"}}}],\"tool_choice\":\"required\","
                    "\"parallel_tool_calls\":true,\"stream\":true,\"stream_options\":"
                    "{\"include_usage\":true}}");
    rq.messages = msgs;
    rq.n_messages = 1;
    rq.tool_choice = AGW_IR_TC_NONE;
    rq.parallel_tool_calls = -1;
    rq.has_temperature = 1;
    rq.temperature = 1;
    enc_expect(&rq, "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":"
                    "\"hi\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                    "\"parameters\":{\"type\":\"object\"}}}],\"tool_choice\":\"none\","
                    "\"temperature\":1,\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    rq.tool_choice = AGW_IR_TC_AUTO;
    rq.has_temperature = 0;
    enc_expect(&rq, "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":"
                    "\"hi\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                    "\"parameters\":{\"type\":\"object\"}}}],\"tool_choice\":\"auto\","
                    "\"stream\":true,\"stream_options\":{\"include_usage\":true}}");

    /* Without tools, no tool_choice or parallel_tool_calls either. */
    rq.n_tools = 0;
    rq.parallel_tool_calls = 0;
    enc_expect(&rq, "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":"
                    "\"hi\"}],\"stream\":true,\"stream_options\":{\"include_usage\":true}}");

    /* top_k cannot be expressed; the buffer is left as it was. */
    rq.top_k = 40;
    assert_int_equal(agw_buf_append(&b, "keep", 4), AGW_OK);
    assert_int_equal(agw_openai_encode_request(&rq, &b, err, sizeof err), AGW_EINVAL);
    assert_string_equal(err, "top_k: top_k is not supported by OpenAI models");
    assert_buf(&b, "keep");
    rq.top_k = -1;

    /* A tool_use in a user turn cannot be written; nothing is left behind. */
    {
        agw_ir_block bad[] = { { .kind = AGW_IR_TOOL_USE, .tool_id = V("x"), .tool_name = V("f") } };
        agw_ir_message bm[] = { { AGW_IR_USER, bad, 1 } };
        rq.messages = bm;
        assert_int_equal(agw_openai_encode_request(&rq, &b, err, sizeof err), AGW_EINVAL);
        assert_buf(&b, "keep");
    }
    agw_buf_free(&b);
}

/* Decode an OpenAI request, encode it for an OpenAI upstream: the same
 * conversation, normalised. */
static void test_request_round_trip(void **state)
{
    dec_t d;
    (void)state;

    dec_ok(&d, "{\"model\":\"gpt-4o\",\"messages\":["
               "{\"role\":\"developer\",\"content\":\"Rules\"},"
               "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Weather?\"}]},"
               "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\","
               "\"type\":\"function\",\"function\":{\"name\":\"w\",\"arguments\":\"{\\\"c\\\":1}\"}}]},"
               "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"sunny\"}],"
               "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"w\",\"parameters\":"
               "{\"type\":\"object\"}}}],\"max_tokens\":50,\"stop\":\"x\",\"stream\":false}");
    enc_expect(&d.rq,
               "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":\"Rules\"},"
               "{\"role\":\"user\",\"content\":\"Weather?\"},"
               "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\","
               "\"type\":\"function\",\"function\":{\"name\":\"w\",\"arguments\":"
               "\"{\\\"c\\\":1}\"}}]},"
               "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"sunny\"}],"
               "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"w\",\"parameters\":"
               "{\"type\":\"object\"}}}],\"max_completion_tokens\":50,\"stop\":[\"x\"],"
               "\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    dec_free(&d);

    /* Fuzzer find: absent strings are {NULL, 0} views and must encode as
     * "" without handing NULL to the escaper. */
    dec_ok(&d, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    assert_null(d.rq.model.ptr);
    enc_expect(&d.rq, "{\"model\":\"\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                      "\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    dec_free(&d);
}

/* ======================================================================
 * Stream decoding
 * ====================================================================== */

static const char *const realistic_stream[] = {
    CHUNK("{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}", "null"),
    CHUNK("{\"content\":\"Let me check\"}", "null"),
    CHUNK("{\"content\":\" the weather.\"}", "null"),
    CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"call_abc\",\"type\":\"function\","
          "\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}", "null"),
    CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"ci\"}}]}", "null"),
    CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"ty\\\":\\\"Par\"}}]}",
          "null"),
    CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"is\\\"}\"}}]}", "null"),
    CHUNK("{}", "\"tool_calls\""),
    USAGE_CHUNK,
    "[DONE]",
    NULL,
};

static void test_stream_decode_realistic(void **state)
{
    rec_t r;
    agw_buf out = AGW_BUF_INIT(1 << 16);
    (void)state;

    rec_init(&r);
    r.fold_on = 1;
    assert_int_equal(feed_all(&r, realistic_stream), AGW_OK);
    assert_buf(&r.log, "MESSAGE_START id=chatcmpl-A1 model=gpt-4o-2024-08-06\n"
                       "BLOCK_START 0 text\n"
                       "BLOCK_DELTA 0 text [Let me check]\n"
                       "BLOCK_DELTA 0 text [ the weather.]\n"
                       "BLOCK_STOP 0\n"
                       "BLOCK_START 1 tool_use id=call_abc name=get_weather\n"
                       "BLOCK_DELTA 1 json [{\"ci]\n"
                       "BLOCK_DELTA 1 json [ty\":\"Par]\n"
                       "BLOCK_DELTA 1 json [is\"}]\n"
                       "BLOCK_STOP 1\n"
                       "MESSAGE_DELTA stop=tool_use usage=20/25/100/-1\n"
                       "MESSAGE_STOP\n");

    /* The fold of it as a chat.completion. */
    assert_true(r.fold.finished);
    assert_int_equal(agw_openai_encode_response(&r.fold, V("gpt-4o"), 1700000001, &out), AGW_OK);
    assert_buf(&out,
               "{\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion\",\"created\":1700000001,"
               "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
               "\"content\":\"Let me check the weather.\",\"refusal\":null,\"tool_calls\":["
               "{\"id\":\"call_abc\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
               "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},\"logprobs\":null,"
               "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":120,"
               "\"completion_tokens\":25,\"total_tokens\":145,\"prompt_tokens_details\":"
               "{\"cached_tokens\":100},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}");
    agw_buf_free(&out);
    rec_free(&r);
}

static void test_stream_decode_parallel_tools(void **state)
{
    static const char *const s[] = {
        CHUNK("{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":"
              "\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"a\",\"arguments\":\"\"}}]}",
              "null"),
        CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"x\\\":1}\"}}]}", "null"),
        CHUNK("{\"tool_calls\":[{\"index\":1,\"id\":\"call_2\",\"type\":\"function\","
              "\"function\":{\"name\":\"b\",\"arguments\":\"{\\\"y\"}}]}", "null"),
        CHUNK("{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"\\\":2}\"}}]}", "null"),
        CHUNK("{}", "\"tool_calls\""),
        "[DONE]",
        NULL,
    };
    rec_t r;
    agw_buf out = AGW_BUF_INIT(1 << 16);
    (void)state;

    rec_init(&r);
    r.fold_on = 1;
    assert_int_equal(feed_all(&r, s), AGW_OK);
    assert_buf(&r.log, "MESSAGE_START id=chatcmpl-A1 model=gpt-4o-2024-08-06\n"
                       "BLOCK_START 0 tool_use id=call_1 name=a\n"
                       "BLOCK_DELTA 0 json [{\"x\":1}]\n"
                       "BLOCK_STOP 0\n"
                       "BLOCK_START 1 tool_use id=call_2 name=b\n"
                       "BLOCK_DELTA 1 json [{\"y]\n"
                       "BLOCK_DELTA 1 json [\":2}]\n"
                       "BLOCK_STOP 1\n"
                       "MESSAGE_DELTA stop=tool_use usage=-1/-1/-1/-1\n"
                       "MESSAGE_STOP\n");
    assert_int_equal(agw_openai_encode_response(&r.fold, V("m"), 5, &out), AGW_OK);
    assert_buf(&out,
               "{\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion\",\"created\":5,\"model\":\"m\","
               "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,"
               "\"refusal\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\","
               "\"function\":{\"name\":\"a\",\"arguments\":\"{\\\"x\\\":1}\"}},{\"id\":\"call_2\","
               "\"type\":\"function\",\"function\":{\"name\":\"b\",\"arguments\":"
               "\"{\\\"y\\\":2}\"}}]},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],"
               "\"usage\":{\"prompt_tokens\":0,\"completion_tokens\":0,\"total_tokens\":0,"
               "\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":"
               "{\"reasoning_tokens\":0}}}");
    agw_buf_free(&out);
    rec_free(&r);
}

static void test_stream_decode_reasoning(void **state)
{
    static const char *const s[] = {
        CHUNK("{\"role\":\"assistant\",\"reasoning_content\":\"Think\"}", "null"),
        CHUNK("{\"reasoning_content\":\"ing\\u0000.\",\"reasoning\":\"ing\\u0000.\"}", "null"),
        CHUNK("{\"content\":\"Answer\",\"reasoning_content\":null}", "null"),
        CHUNK("{\"reasoning\":\"more\"}", "null"),
        CHUNK("{\"content\":\"!\"}", "\"length\""),
        "{\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":7}}",
        "  [DONE]\n",
        NULL,
    };
    rec_t r;
    agw_buf out = AGW_BUF_INIT(1 << 16);
    (void)state;

    rec_init(&r);
    r.fold_on = 1;
    assert_int_equal(feed_all(&r, s), AGW_OK);
    assert_buf(&r.log, "MESSAGE_START id=chatcmpl-A1 model=gpt-4o-2024-08-06\n"
                       "BLOCK_START 0 thinking\n"
                       "BLOCK_DELTA 0 thinking [Think]\n"
                       "BLOCK_DELTA 0 thinking [ing\\0.]\n"
                       "BLOCK_STOP 0\n"
                       "BLOCK_START 1 text\n"
                       "BLOCK_DELTA 1 text [Answer]\n"
                       "BLOCK_STOP 1\n"
                       "BLOCK_START 2 thinking\n"
                       "BLOCK_DELTA 2 thinking [more]\n"
                       "BLOCK_STOP 2\n"
                       "BLOCK_START 3 text\n"
                       "BLOCK_DELTA 3 text [!]\n"
                       "BLOCK_STOP 3\n"
                       "MESSAGE_DELTA stop=max_tokens usage=10/7/-1/-1\n"
                       "MESSAGE_STOP\n");
    assert_int_equal(agw_openai_encode_response(&r.fold, V("m"), 5, &out), AGW_OK);
    assert_buf(&out,
               "{\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion\",\"created\":5,\"model\":\"m\","
               "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
               "\"Answer!\",\"refusal\":null,\"reasoning_content\":\"Thinking\\u0000.more\"},"
               "\"logprobs\":null,\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":10,"
               "\"completion_tokens\":7,\"total_tokens\":17,\"prompt_tokens_details\":"
               "{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}");
    agw_buf_free(&out);
    rec_free(&r);
}

static void test_stream_decode_refusal_and_finishes(void **state)
{
    static const char *const refusal[] = {
        CHUNK("{\"role\":\"assistant\",\"refusal\":\"I can't\"}", "null"),
        CHUNK("{}", "\"stop\""),
        "[DONE]",
        NULL,
    };
    static const struct {
        const char *finish, *want;
    } fin[] = {
        { "\"stop\"", "end_turn" }, { "\"length\"", "max_tokens" },
        { "\"tool_calls\"", "tool_use" }, { "\"function_call\"", "tool_use" },
        { "\"content_filter\"", "refusal" }, { "\"eos\"", "end_turn" },
    };
    rec_t r;
    (void)state;

    rec_init(&r);
    assert_int_equal(feed_all(&r, refusal), AGW_OK);
    assert_buf(&r.log, "MESSAGE_START id=chatcmpl-A1 model=gpt-4o-2024-08-06\n"
                       "BLOCK_START 0 text\n"
                       "BLOCK_DELTA 0 text [I can't]\n"
                       "BLOCK_STOP 0\n"
                       "MESSAGE_DELTA stop=refusal usage=-1/-1/-1/-1\n"
                       "MESSAGE_STOP\n");
    rec_free(&r);

    for (size_t i = 0; i < sizeof fin / sizeof fin[0]; i++) {
        char chunk[512], want[256];
        const char *s[] = { chunk, "[DONE]", NULL };
        snprintf(chunk, sizeof chunk, "{\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,"
                                      "\"delta\":{},\"finish_reason\":%s}]}", fin[i].finish);
        snprintf(want, sizeof want, "MESSAGE_START id=c model=m\nMESSAGE_DELTA stop=%s "
                                    "usage=-1/-1/-1/-1\nMESSAGE_STOP\n", fin[i].want);
        rec_init(&r);
        assert_int_equal(feed_all(&r, s), AGW_OK);
        assert_buf(&r.log, want);
        rec_free(&r);
    }

    /* [DONE] alone: an empty answer, still well-formed. */
    {
        const char *s[] = { "[DONE]", NULL };
        rec_init(&r);
        assert_int_equal(feed_all(&r, s), AGW_OK);
        assert_buf(&r.log, "MESSAGE_START id= model=\n"
                           "MESSAGE_DELTA stop=end_turn usage=-1/-1/-1/-1\nMESSAGE_STOP\n");
        rec_free(&r);
    }
}

static void test_stream_decode_errors(void **state)
{
    static const struct {
        const char *payload, *want;
    } errs[] = {
        { "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\",\"param\":null,"
          "\"code\":\"rate_limit_exceeded\"}}", "ERROR 429 rate_limit_error [Rate limit reached]\n" },
        { "{\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"code\":null}}",
          "ERROR 500 api_error [boom]\n" },
        { "{\"error\":{\"message\":\"bad\",\"type\":\"invalid_request_error\"}}",
          "ERROR 400 invalid_request_error [bad]\n" },
        { "{\"error\":{\"message\":\"key\",\"type\":\"invalid_request_error\",\"code\":"
          "\"invalid_api_key\"}}", "ERROR 401 authentication_error [key]\n" },
        { "{\"error\":{\"message\":\"no\",\"type\":\"permission_error\"}}",
          "ERROR 403 permission_error [no]\n" },
        { "{\"error\":{\"message\":\"gone\",\"type\":\"invalid_request_error\",\"code\":"
          "\"model_not_found\"}}", "ERROR 404 not_found_error [gone]\n" },
        { "{\"error\":{\"message\":\"busy\",\"code\":503}}", "ERROR 503 overloaded_error [busy]\n" },
        { "{\"error\":{\"type\":\"weird\"}}",
          "ERROR 500 api_error [the upstream reported an error]\n" },
        { "{\"error\":\"plain text\"}", "ERROR 500 api_error [plain text]\n" },
    };
    (void)state;

    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        const char *s[] = { errs[i].payload, CHUNK("{\"content\":\"late\"}", "null"), "[DONE]", NULL };
        rec_t r;
        rec_init(&r);
        assert_int_equal(feed_all(&r, s), AGW_OK); /* the error ended the answer */
        assert_buf(&r.log, errs[i].want);
        rec_free(&r);
    }

    /* An error mid-stream, after a block: ERROR then nothing. */
    {
        const char *s[] = { CHUNK("{\"content\":\"Hi\"}", "null"),
                            "{\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}",
                            NULL };
        rec_t r;
        rec_init(&r);
        assert_int_equal(feed_all(&r, s), AGW_OK);
        assert_buf(&r.log, "MESSAGE_START id=chatcmpl-A1 model=gpt-4o-2024-08-06\n"
                           "BLOCK_START 0 text\nBLOCK_DELTA 0 text [Hi]\n"
                           "ERROR 500 api_error [overloaded]\n");
        rec_free(&r);
    }
}

static void test_stream_decode_without_done(void **state)
{
    static const char *const with_usage[] = {
        CHUNK("{\"content\":\"Hi\"}", "null"),
        CHUNK("{}", "\"stop\""),
        USAGE_CHUNK,
        NULL,
    };
    static const char *const no_usage[] = {
        CHUNK("{\"content\":\"Hi\"}", "null"),
        CHUNK("{}", "\"stop\""),
        NULL,
    };
    static const char *const cut[] = {
        CHUNK("{\"content\":\"Hi\"}", "null"),
        USAGE_CHUNK,
        NULL,
    };
    rec_t r;
    (void)state;

    rec_init(&r);
    assert_int_equal(feed_all(&r, with_usage), AGW_OK);
    assert_buf(&r.log, "MESSAGE_START id=chatcmpl-A1 model=gpt-4o-2024-08-06\n"
                       "BLOCK_START 0 text\nBLOCK_DELTA 0 text [Hi]\nBLOCK_STOP 0\n"
                       "MESSAGE_DELTA stop=end_turn usage=20/25/100/-1\nMESSAGE_STOP\n");
    rec_free(&r);

    /* A finish_reason without the usage we asked for: cut short. */
    rec_init(&r);
    assert_int_equal(feed_all(&r, no_usage), AGW_EPEER);
    assert_buf(&r.log, "MESSAGE_START id=chatcmpl-A1 model=gpt-4o-2024-08-06\n"
                       "BLOCK_START 0 text\nBLOCK_DELTA 0 text [Hi]\nBLOCK_STOP 0\n");
    rec_free(&r);

    /* No finish_reason: cut short, nothing more emitted. */
    rec_init(&r);
    assert_int_equal(feed_all(&r, cut), AGW_EPEER);
    assert_buf(&r.log, "MESSAGE_START id=chatcmpl-A1 model=gpt-4o-2024-08-06\n"
                       "BLOCK_START 0 text\nBLOCK_DELTA 0 text [Hi]\n");
    rec_free(&r);

    /* Nothing at all. */
    {
        const char *none[] = { NULL };
        rec_init(&r);
        assert_int_equal(feed_all(&r, none), AGW_EPEER);
        assert_int_equal(r.log.len, 0);
        rec_free(&r);
    }
}

static void test_stream_decode_bad_input(void **state)
{
    agw_openai_stream_decoder d;
    rec_t r;
    char err[256];
    (void)state;

    static const struct {
        const char *payload, *want;
    } bad[] = {
        { "{\"choices\":[", "invalid JSON" },
        { "not json", "invalid JSON" },
        { "[1,2]", "not a JSON object" },
        { CHUNK("{\"tool_calls\":[{\"index\":128,\"id\":\"c\",\"function\":{\"name\":\"f\"}}]}",
                "null"), "index outside 0..127" },
        { CHUNK("{\"tool_calls\":[{\"index\":-1}]}", "null"), "index outside" },
        { CHUNK("{\"tool_calls\":[{\"index\":\"0\"}]}", "null"), "index outside" },
        { CHUNK("{\"tool_calls\":[7]}", "null"), "not an object" },
        { CHUNK("{\"tool_calls\":[{\"function\":{\"arguments\":\"x\"}}]}", "null"),
          "without an index" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rec_init(&r);
        agw_openai_stream_decoder_init(&d);
        assert_int_equal(agw_openai_decode_stream_event(&d, agw_str_c(bad[i].payload), rec_sink,
                                                        &r, err, sizeof err),
                         AGW_EINVAL);
        if (!strstr(err, bad[i].want))
            fail_msg("case %zu: error [%s] lacks [%s]", i, err, bad[i].want);
        agw_openai_stream_decoder_free(&d);
        rec_free(&r);
    }

    /* Index 127 is the last one allowed. */
    {
        const char *s[] = { CHUNK("{\"tool_calls\":[{\"index\":127,\"id\":\"c\",\"function\":"
                                  "{\"name\":\"f\",\"arguments\":\"{}\"}}]}", "\"tool_calls\""),
                            "[DONE]", NULL };
        rec_init(&r);
        assert_int_equal(feed_all(&r, s), AGW_OK);
        assert_buf(&r.log, "MESSAGE_START id=chatcmpl-A1 model=gpt-4o-2024-08-06\n"
                           "BLOCK_START 0 tool_use id=c name=f\nBLOCK_DELTA 0 json [{}]\n"
                           "BLOCK_STOP 0\nMESSAGE_DELTA stop=tool_use usage=-1/-1/-1/-1\n"
                           "MESSAGE_STOP\n");
        rec_free(&r);
    }

    /* A call resumed after another block started cannot be followed. */
    rec_init(&r);
    agw_openai_stream_decoder_init(&d);
    assert_int_equal(agw_openai_decode_stream_event(
                         &d, V(CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":"
                                     "{\"name\":\"f\"}}]}", "null")), rec_sink, &r, err, sizeof err),
                     AGW_OK);
    assert_int_equal(agw_openai_decode_stream_event(&d, V(CHUNK("{\"content\":\"x\"}", "null")),
                                                    rec_sink, &r, err, sizeof err),
                     AGW_OK);
    assert_int_equal(agw_openai_decode_stream_event(
                         &d, V(CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
                                     "\"{}\"}}]}", "null")), rec_sink, &r, err, sizeof err),
                     AGW_EINVAL);
    agw_openai_stream_decoder_free(&d);
    rec_free(&r);

    /* Servers that omit index: an id starts a call, no id continues it; a
     * call without an id gets one. */
    {
        const char *s[] = {
            CHUNK("{\"tool_calls\":[{\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{\"}}]}",
                  "null"),
            CHUNK("{\"tool_calls\":[{\"function\":{\"arguments\":\"}\"}}]}", "null"),
            CHUNK("{\"tool_calls\":[{\"id\":\"b\",\"function\":{\"name\":\"g\"}}]}", "null"),
            "[DONE]", NULL,
        };
        rec_init(&r);
        assert_int_equal(feed_all(&r, s), AGW_OK);
        assert_buf(&r.log, "MESSAGE_START id=chatcmpl-A1 model=gpt-4o-2024-08-06\n"
                           "BLOCK_START 0 tool_use id=a name=f\nBLOCK_DELTA 0 json [{]\n"
                           "BLOCK_DELTA 0 json [}]\nBLOCK_STOP 0\n"
                           "BLOCK_START 1 tool_use id=b name=g\nBLOCK_STOP 1\n"
                           "MESSAGE_DELTA stop=end_turn usage=-1/-1/-1/-1\nMESSAGE_STOP\n");
        rec_free(&r);
    }
    {
        const char *s[] = { CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\"}}]}",
                                  "null"), "[DONE]", NULL };
        rec_init(&r);
        r.fold_on = 1;
        assert_int_equal(feed_all(&r, s), AGW_OK);
        assert_int_equal(r.fold.n_blocks, 1);
        assert_int_equal(r.fold.blocks[0].tool_id.len, 29); /* call_ + 24 hex */
        assert_memory_equal(r.fold.blocks[0].tool_id.ptr, "call_", 5);
        rec_free(&r);
    }

    /* A sink that stops the producer: AGW_EPEER. */
    rec_init(&r);
    r.stop_after = 1;
    agw_openai_stream_decoder_init(&d);
    assert_int_equal(agw_openai_decode_stream_event(&d, V(CHUNK("{\"content\":\"x\"}", "null")),
                                                    rec_sink, &r, err, sizeof err),
                     AGW_EPEER);
    agw_openai_stream_decoder_free(&d);
    rec_free(&r);
}

/* ======================================================================
 * Stream encoding
 * ====================================================================== */

#define EP "data: {\"id\":\"chatcmpl-msg_01ABC\",\"object\":\"chat.completion.chunk\"," \
           "\"created\":1700000000,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":"
#define ES_U ",\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n"
#define ES ",\"logprobs\":null,\"finish_reason\":null}]}\n\n"

static agw_ir_event ev_make(agw_ir_event_kind k)
{
    agw_ir_event ev;
    agw_ir_event_init(&ev, k);
    return ev;
}

static void enc_ev(agw_openai_stream_encoder *e, agw_buf *out, agw_ir_event ev)
{
    assert_int_equal(agw_openai_encode_stream_event(e, &ev, out), AGW_OK);
}

static void run_full_sequence(agw_openai_stream_encoder *e, agw_buf *out)
{
    agw_ir_event ev;

    ev = ev_make(AGW_IR_EV_MESSAGE_START);
    ev.id = V("msg_01ABC");
    ev.model = V("claude-sonnet-4");
    ev.usage.input = 10;
    enc_ev(e, out, ev);
    enc_ev(e, out, ev_make(AGW_IR_EV_PING));
    ev = ev_make(AGW_IR_EV_BLOCK_START);
    ev.index = 0;
    ev.block = AGW_IR_THINKING;
    enc_ev(e, out, ev);
    ev = ev_make(AGW_IR_EV_BLOCK_DELTA);
    ev.index = 0;
    ev.delta_kind = AGW_IR_DELTA_THINKING;
    ev.delta = V("Let me think");
    enc_ev(e, out, ev);
    ev.delta_kind = AGW_IR_DELTA_SIGNATURE;
    ev.delta = V("c2lnbmF0dXJl");
    enc_ev(e, out, ev);
    ev = ev_make(AGW_IR_EV_BLOCK_STOP);
    ev.index = 0;
    enc_ev(e, out, ev);

    ev = ev_make(AGW_IR_EV_BLOCK_START);
    ev.index = 1;
    ev.block = AGW_IR_TOOL_USE;
    ev.tool_id = V("toolu_1");
    ev.tool_name = V("get_weather");
    enc_ev(e, out, ev);
    ev = ev_make(AGW_IR_EV_BLOCK_DELTA);
    ev.index = 1;
    ev.delta_kind = AGW_IR_DELTA_JSON;
    ev.delta = V("{\"city\":");
    enc_ev(e, out, ev);
    ev.delta = V("\"Paris\"}");
    enc_ev(e, out, ev);
    ev = ev_make(AGW_IR_EV_BLOCK_STOP);
    ev.index = 1;
    enc_ev(e, out, ev);

    ev = ev_make(AGW_IR_EV_BLOCK_START);
    ev.index = 2;
    ev.block = AGW_IR_TOOL_USE;
    ev.tool_id = V("toolu_2");
    ev.tool_name = V("get_time");
    enc_ev(e, out, ev);
    ev = ev_make(AGW_IR_EV_BLOCK_DELTA);
    ev.index = 2;
    ev.delta_kind = AGW_IR_DELTA_JSON;
    ev.delta = V("");
    enc_ev(e, out, ev); /* an empty piece says nothing */
    ev.delta = V("{}");
    enc_ev(e, out, ev);
    ev = ev_make(AGW_IR_EV_BLOCK_STOP);
    ev.index = 2;
    enc_ev(e, out, ev);

    ev = ev_make(AGW_IR_EV_BLOCK_START);
    ev.index = 3;
    ev.block = AGW_IR_TEXT;
    enc_ev(e, out, ev);
    ev = ev_make(AGW_IR_EV_BLOCK_DELTA);
    ev.index = 3;
    ev.delta_kind = AGW_IR_DELTA_TEXT;
    ev.delta = V("Checking \"both\".\n");
    enc_ev(e, out, ev);
    ev = ev_make(AGW_IR_EV_BLOCK_STOP);
    ev.index = 3;
    enc_ev(e, out, ev);

    ev = ev_make(AGW_IR_EV_MESSAGE_DELTA);
    ev.stop = AGW_IR_STOP_TOOL_USE;
    ev.usage.output = 20;
    ev.usage.cache_read = 5;
    ev.usage.cache_write = 1;
    enc_ev(e, out, ev);
    ev = ev_make(AGW_IR_EV_MESSAGE_DELTA);
    ev.usage.input = 10; /* later reports merge field by field */
    enc_ev(e, out, ev);
    enc_ev(e, out, ev_make(AGW_IR_EV_MESSAGE_STOP));
    /* Nothing after [DONE]. */
    enc_ev(e, out, ev_make(AGW_IR_EV_MESSAGE_STOP));
    enc_ev(e, out, ev_make(AGW_IR_EV_PING));
}

static void test_stream_encode_full(void **state)
{
    agw_openai_stream_encoder e;
    agw_buf out = AGW_BUF_INIT(1 << 16);
    (void)state;

    agw_openai_stream_encoder_init(&e, 1, V("gpt-4o"), 1700000000);
    run_full_sequence(&e, &out);
    assert_buf(&out,
               EP "{\"role\":\"assistant\",\"content\":\"\"}" ES_U
               EP "{\"reasoning_content\":\"Let me think\"}" ES_U
               EP "{\"tool_calls\":[{\"index\":0,\"id\":\"toolu_1\",\"type\":\"function\","
                  "\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}" ES_U
               EP "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
                  "\"{\\\"city\\\":\"}}]}" ES_U
               EP "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
                  "\"\\\"Paris\\\"}\"}}]}" ES_U
               EP "{\"tool_calls\":[{\"index\":1,\"id\":\"toolu_2\",\"type\":\"function\","
                  "\"function\":{\"name\":\"get_time\",\"arguments\":\"\"}}]}" ES_U
               EP "{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{}\"}}]}" ES_U
               EP "{\"content\":\"Checking \\\"both\\\".\\n\"}" ES_U
               EP "{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n"
               "data: {\"id\":\"chatcmpl-msg_01ABC\",\"object\":\"chat.completion.chunk\","
               "\"created\":1700000000,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":"
               "{\"prompt_tokens\":16,\"completion_tokens\":20,\"total_tokens\":36,"
               "\"prompt_tokens_details\":{\"cached_tokens\":5},\"completion_tokens_details\":"
               "{\"reasoning_tokens\":0}}}\n\n"
               "data: [DONE]\n\n");
    agw_openai_stream_encoder_free(&e);

    agw_buf_reset(&out);
    agw_openai_stream_encoder_init(&e, 0, V("gpt-4o"), 1700000000);
    run_full_sequence(&e, &out);
    assert_buf(&out,
               EP "{\"role\":\"assistant\",\"content\":\"\"}" ES
               EP "{\"reasoning_content\":\"Let me think\"}" ES
               EP "{\"tool_calls\":[{\"index\":0,\"id\":\"toolu_1\",\"type\":\"function\","
                  "\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}" ES
               EP "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
                  "\"{\\\"city\\\":\"}}]}" ES
               EP "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
                  "\"\\\"Paris\\\"}\"}}]}" ES
               EP "{\"tool_calls\":[{\"index\":1,\"id\":\"toolu_2\",\"type\":\"function\","
                  "\"function\":{\"name\":\"get_time\",\"arguments\":\"\"}}]}" ES
               EP "{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{}\"}}]}" ES
               EP "{\"content\":\"Checking \\\"both\\\".\\n\"}" ES
               EP "{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}]}\n\n"
               "data: [DONE]\n\n");
    agw_openai_stream_encoder_free(&e);
    agw_buf_free(&out);
}

static void test_stream_encode_edges(void **state)
{
    agw_openai_stream_encoder e;
    agw_buf out = AGW_BUF_INIT(1 << 16);
    agw_ir_event ev;
    (void)state;

    /* An id that already is a chatcmpl id stays; REDACTED and text starts say
     * nothing; NUL and U+2028 in text; stop reasons. */
    agw_openai_stream_encoder_init(&e, 0, V("m"), 1);
    ev = ev_make(AGW_IR_EV_MESSAGE_START);
    ev.id = V("chatcmpl-xyz");
    enc_ev(&e, &out, ev);
    ev = ev_make(AGW_IR_EV_BLOCK_START);
    ev.index = 0;
    ev.block = AGW_IR_REDACTED_THINKING;
    ev.delta = V("opaque");
    enc_ev(&e, &out, ev);
    ev = ev_make(AGW_IR_EV_BLOCK_START);
    ev.index = 1;
    ev.block = AGW_IR_TEXT;
    enc_ev(&e, &out, ev);
    ev = ev_make(AGW_IR_EV_BLOCK_DELTA);
    ev.index = 1;
    ev.delta = V("a\0b\xE2\x80\xA8\xF0\x9F\x98\x80");
    enc_ev(&e, &out, ev);
    ev = ev_make(AGW_IR_EV_MESSAGE_DELTA);
    ev.stop = AGW_IR_STOP_STOP_SEQUENCE;
    ev.stop_sequence = V("END");
    enc_ev(&e, &out, ev);
    enc_ev(&e, &out, ev_make(AGW_IR_EV_MESSAGE_STOP));
    assert_buf(&out,
               "data: {\"id\":\"chatcmpl-xyz\",\"object\":\"chat.completion.chunk\",\"created\":1,"
               "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
               "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
               "data: {\"id\":\"chatcmpl-xyz\",\"object\":\"chat.completion.chunk\",\"created\":1,"
               "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
               "\"a\\u0000b\xE2\x80\xA8\xF0\x9F\x98\x80\"},\"logprobs\":null,"
               "\"finish_reason\":null}]}\n\n"
               "data: {\"id\":\"chatcmpl-xyz\",\"object\":\"chat.completion.chunk\",\"created\":1,"
               "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
               "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
    agw_openai_stream_encoder_free(&e);

    /* An error: the error object, nothing after it. */
    agw_buf_reset(&out);
    agw_openai_stream_encoder_init(&e, 1, V("m"), 1);
    ev = ev_make(AGW_IR_EV_MESSAGE_START);
    ev.id = V("chatcmpl-1");
    enc_ev(&e, &out, ev);
    ev = ev_make(AGW_IR_EV_ERROR);
    ev.status = 529;
    ev.error_type = V("overloaded_error");
    ev.error_message = V("Overloaded \"now\"");
    enc_ev(&e, &out, ev);
    enc_ev(&e, &out, ev_make(AGW_IR_EV_MESSAGE_STOP));
    assert_buf(&out,
               "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
               "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
               "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n"
               "data: {\"error\":{\"message\":\"Overloaded \\\"now\\\"\",\"type\":\"server_error\","
               "\"param\":null,\"code\":null}}\n\n");
    agw_openai_stream_encoder_free(&e);

    /* Error types: by type when known, else by status. */
    {
        static const struct {
            const char *type;
            int status;
            const char *want;
        } t[] = {
            { "invalid_request_error", 400, "invalid_request_error" },
            { "not_found_error", 404, "invalid_request_error" },
            { "authentication_error", 401, "authentication_error" },
            { "permission_error", 403, "permission_error" },
            { "rate_limit_error", 429, "rate_limit_error" },
            { "api_error", 500, "server_error" },
            { "", 429, "rate_limit_error" },
            { "", 401, "authentication_error" },
            { "", 504, "timeout_error" },
            { "", 418, "invalid_request_error" },
            { "", 0, "server_error" },
        };
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
            char want[256];
            agw_buf_reset(&out);
            agw_openai_stream_encoder_init(&e, 0, V("m"), 1);
            ev = ev_make(AGW_IR_EV_ERROR);
            ev.status = t[i].status;
            ev.error_type = agw_str_c(t[i].type);
            ev.error_message = V("x");
            enc_ev(&e, &out, ev);
            snprintf(want, sizeof want, "data: {\"error\":{\"message\":\"x\",\"type\":\"%s\","
                                        "\"param\":null,\"code\":null}}\n\n", t[i].want);
            assert_buf(&out, want);
            agw_openai_stream_encoder_free(&e);
        }
    }

    /* A stop without a start still opens with the role chunk; finish names. */
    {
        static const struct {
            agw_ir_stop stop;
            const char *want;
        } s[] = {
            { AGW_IR_STOP_NONE, "stop" }, { AGW_IR_STOP_END_TURN, "stop" },
            { AGW_IR_STOP_MAX_TOKENS, "length" }, { AGW_IR_STOP_REFUSAL, "content_filter" },
            { AGW_IR_STOP_PAUSE, "stop" },
        };
        for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
            char want[128];
            agw_buf_reset(&out);
            agw_openai_stream_encoder_init(&e, 0, V("m"), 1);
            ev = ev_make(AGW_IR_EV_MESSAGE_DELTA);
            ev.stop = s[i].stop;
            enc_ev(&e, &out, ev);
            enc_ev(&e, &out, ev_make(AGW_IR_EV_MESSAGE_STOP));
            assert_non_null(strstr(out.data, "\"delta\":{\"role\":\"assistant\""));
            assert_memory_equal(out.data, "data: {\"id\":\"chatcmpl-", 22);
            snprintf(want, sizeof want, "\"finish_reason\":\"%s\"}]}\n\ndata: [DONE]\n\n",
                     s[i].want);
            assert_true(out.len > strlen(want));
            assert_string_equal(out.data + out.len - strlen(want), want);
            agw_openai_stream_encoder_free(&e);
        }
    }

    /* Out-of-contract events: a JSON delta for a block that is not a call. */
    agw_openai_stream_encoder_init(&e, 0, V("m"), 1);
    ev = ev_make(AGW_IR_EV_BLOCK_DELTA);
    ev.index = 3;
    ev.delta_kind = AGW_IR_DELTA_JSON;
    ev.delta = V("{}");
    assert_int_equal(agw_openai_encode_stream_event(&e, &ev, &out), AGW_EINVAL);
    ev = ev_make(AGW_IR_EV_BLOCK_START);
    ev.index = 300;
    ev.block = AGW_IR_TOOL_USE;
    assert_int_equal(agw_openai_encode_stream_event(&e, &ev, &out), AGW_EINVAL);
    ev.block = AGW_IR_TEXT;
    assert_int_equal(agw_openai_encode_stream_event(&e, &ev, &out), AGW_OK);
    agw_openai_stream_encoder_free(&e);
    agw_buf_free(&out);
}

/* ======================================================================
 * Responses and errors
 * ====================================================================== */

static void test_encode_response_text_only(void **state)
{
    rec_t r;
    agw_buf out = AGW_BUF_INIT(1 << 16);
    agw_openai_stream_encoder e;
    agw_ir_event ev;
    (void)state;

    /* A fold from IR events an Anthropic upstream would give. */
    rec_init(&r);
    ev = ev_make(AGW_IR_EV_MESSAGE_START);
    ev.id = V("msg_1");
    assert_int_equal(agw_ir_fold_add(&r.fold, &ev), AGW_OK);
    ev = ev_make(AGW_IR_EV_BLOCK_START);
    ev.index = 0;
    ev.block = AGW_IR_TEXT;
    assert_int_equal(agw_ir_fold_add(&r.fold, &ev), AGW_OK);
    ev = ev_make(AGW_IR_EV_BLOCK_DELTA);
    ev.index = 0;
    ev.delta = V("x\0y");
    assert_int_equal(agw_ir_fold_add(&r.fold, &ev), AGW_OK);
    ev = ev_make(AGW_IR_EV_MESSAGE_DELTA);
    ev.stop = AGW_IR_STOP_END_TURN;
    ev.usage.input = 3;
    ev.usage.output = 4;
    ev.usage.cache_write = 2;
    assert_int_equal(agw_ir_fold_add(&r.fold, &ev), AGW_OK);
    assert_int_equal(agw_openai_encode_response(&r.fold, V("gpt-4o"), 9, &out), AGW_OK);
    assert_buf(&out,
               "{\"id\":\"chatcmpl-msg_1\",\"object\":\"chat.completion\",\"created\":9,"
               "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
               "\"content\":\"x\\u0000y\",\"refusal\":null},\"logprobs\":null,"
               "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,"
               "\"completion_tokens\":4,\"total_tokens\":9,\"prompt_tokens_details\":"
               "{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}");
    rec_free(&r);

    /* An empty fold without id: content null, a generated chatcmpl id. */
    rec_init(&r);
    agw_buf_reset(&out);
    assert_int_equal(agw_openai_encode_response(&r.fold, V("m"), 1, &out), AGW_OK);
    assert_memory_equal(out.data, "{\"id\":\"chatcmpl-", 16);
    assert_non_null(strstr(out.data, "\"content\":null,\"refusal\":null},\"logprobs\":null,"
                                     "\"finish_reason\":\"stop\"}"));
    rec_free(&r);

    /* A buffer too small: AGW_ETOOBIG, from the response and the stream. */
    {
        agw_buf tiny = AGW_BUF_INIT(10);
        rec_init(&r);
        assert_int_equal(agw_openai_encode_response(&r.fold, V("m"), 1, &tiny), AGW_ETOOBIG);
        agw_openai_stream_encoder_init(&e, 0, V("m"), 1);
        ev = ev_make(AGW_IR_EV_MESSAGE_START);
        assert_int_equal(agw_openai_encode_stream_event(&e, &ev, &tiny), AGW_ETOOBIG);
        agw_openai_stream_encoder_free(&e);
        agw_buf_free(&tiny);
        rec_free(&r);
    }
    agw_buf_free(&out);
}

static void test_decode_error(void **state)
{
    agw_arena a = AGW_ARENA_INIT;
    agw_str type, msg;
    static const struct {
        const char *body, *type, *msg;
    } ok[] = {
        { "{\"error\":{\"message\":\"Rate limit\",\"type\":\"requests\",\"param\":null,"
          "\"code\":\"rate_limit_exceeded\"}}", "rate_limit_error", "Rate limit" },
        { "{\"error\":{\"message\":\"Incorrect API key provided\",\"type\":"
          "\"invalid_request_error\",\"param\":null,\"code\":\"invalid_api_key\"}}",
          "authentication_error", "Incorrect API key provided" },
        { "{\"error\":{\"message\":\"The model `x` does not exist\",\"type\":"
          "\"invalid_request_error\",\"code\":\"model_not_found\"}}", "not_found_error",
          "The model `x` does not exist" },
        { "{\"error\":{\"message\":\"bad \\u0000 field\",\"type\":\"invalid_request_error\"}}",
          "invalid_request_error", "bad \0 field" },
        { "{\"error\":{\"message\":\"quota\",\"type\":\"insufficient_quota\"}}",
          "rate_limit_error", "quota" },
        { "{\"error\":{\"message\":\"oops\",\"type\":\"server_error\"}}", "api_error", "oops" },
        { "{\"error\":{\"type\":\"overloaded_error\"}}", "overloaded_error", "" },
    };
    static const char *const bad[] = {
        "", "not json", "[]", "{}", "{\"error\":\"text\"}", "{\"error\":null}",
        "{\"type\":\"error\",\"message\":\"x\"}", "{\"error\":{\"message\":5}}",
    };
    (void)state;

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(agw_openai_decode_error(agw_str_c(ok[i].body), &a, &type, &msg), AGW_OK);
        assert_str(type, ok[i].type, strlen(ok[i].type));
        assert_str(msg, ok[i].msg, i == 3 ? 11 : strlen(ok[i].msg));
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(agw_openai_decode_error(agw_str_c(bad[i]), &a, &type, &msg), AGW_EINVAL);
    agw_arena_free(&a);
}

/* Decode a stream, feed the events to the encoder: an OpenAI client sees an
 * OpenAI stream again (renumbered, with our id). */
static int to_encoder(void *ud, const agw_ir_event *ev)
{
    void **pair = ud;
    return agw_openai_encode_stream_event(pair[0], ev, pair[1]) != AGW_OK;
}

static void test_stream_round_trip(void **state)
{
    agw_openai_stream_decoder d;
    agw_openai_stream_encoder e;
    agw_buf out = AGW_BUF_INIT(1 << 16);
    void *pair[2] = { &e, &out };
    char err[128];
    (void)state;

    agw_openai_stream_decoder_init(&d);
    agw_openai_stream_encoder_init(&e, 1, V("gpt-4o"), 1700000000);
    for (size_t i = 0; realistic_stream[i]; i++)
        assert_int_equal(agw_openai_decode_stream_event(&d, agw_str_c(realistic_stream[i]),
                                                        to_encoder, pair, err, sizeof err),
                         AGW_OK);
    assert_int_equal(agw_openai_decode_stream_end(&d, to_encoder, pair), AGW_OK);
#define RP "data: {\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion.chunk\"," \
           "\"created\":1700000000,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":"
    assert_buf(&out,
               RP "{\"role\":\"assistant\",\"content\":\"\"}" ES_U
               RP "{\"content\":\"Let me check\"}" ES_U
               RP "{\"content\":\" the weather.\"}" ES_U
               RP "{\"tool_calls\":[{\"index\":0,\"id\":\"call_abc\",\"type\":\"function\","
                  "\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}" ES_U
               RP "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"ci\"}}]}" ES_U
               RP "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
                  "\"ty\\\":\\\"Par\"}}]}" ES_U
               RP "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"is\\\"}\"}}]}" ES_U
               RP "{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n"
               "data: {\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion.chunk\","
               "\"created\":1700000000,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":"
               "{\"prompt_tokens\":120,\"completion_tokens\":25,\"total_tokens\":145,"
               "\"prompt_tokens_details\":{\"cached_tokens\":100},\"completion_tokens_details\":"
               "{\"reasoning_tokens\":0}}}\n\n"
               "data: [DONE]\n\n");
#undef RP
    agw_openai_stream_decoder_free(&d);
    agw_openai_stream_encoder_free(&e);
    agw_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_fields),
        cmocka_unit_test(test_decode_tools),
        cmocka_unit_test(test_decode_user_parts),
        cmocka_unit_test(test_decode_assistant_and_tools),
        cmocka_unit_test(test_decode_merging),
        cmocka_unit_test(test_decode_strings),
        cmocka_unit_test(test_decode_rejections),
        cmocka_unit_test(test_decode_bounds),
        cmocka_unit_test(test_wire_paths),
        cmocka_unit_test(test_encode_request_full),
        cmocka_unit_test(test_encode_request_choices),
        cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_stream_decode_realistic),
        cmocka_unit_test(test_stream_decode_parallel_tools),
        cmocka_unit_test(test_stream_decode_reasoning),
        cmocka_unit_test(test_stream_decode_refusal_and_finishes),
        cmocka_unit_test(test_stream_decode_errors),
        cmocka_unit_test(test_stream_decode_without_done),
        cmocka_unit_test(test_stream_decode_bad_input),
        cmocka_unit_test(test_stream_encode_full),
        cmocka_unit_test(test_stream_encode_edges),
        cmocka_unit_test(test_encode_response_text_only),
        cmocka_unit_test(test_decode_error),
        cmocka_unit_test(test_stream_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

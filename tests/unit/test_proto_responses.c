/* Unit tests for the OpenAI Responses codec (lib/proto/responses.h): the
 * stateless check, request decoding (items, parameters, every rejection),
 * request encoding, the stream decoder (IR event sequences from typed
 * events, whole items, errors, usage), the stream encoder (the typed event
 * sequence), the fold into a response object, and the api / responses_models
 * settings that pick the codec for a provider. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/json.h"
#include "provider/provider.h"
#include "proto/responses.h"

#define S(lit) ((agw_str){ "" lit, sizeof(lit) - 1 })

/* ---- requests ---- */

typedef struct {
    agw_arena arena;
    agw_ir_request rq;
    char err[256];
} dec_t;

static agw_err dec(dec_t *d, const char *body)
{
    memset(d, 0, sizeof *d);
    return agw_responses_decode_request(agw_str_c(body), &d->arena, &d->rq, d->err,
                                        sizeof d->err);
}

static void expect_refused(const char *body, const char *words)
{
    dec_t d;
    assert_int_equal(dec(&d, body), AGW_EINVAL);
    if (!strstr(d.err, words))
        fail_msg("message [%s] does not contain [%s]", d.err, words);
    agw_arena_free(&d.arena);
}

static void test_stateless(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(agw_responses_check_stateless(S("{\"input\":\"x\",\"store\":false}"), err,
                                                   sizeof err),
                     AGW_OK);
    assert_int_equal(agw_responses_check_stateless(S("{\"previous_response_id\":null}"), err,
                                                   sizeof err),
                     AGW_OK);
    assert_int_equal(agw_responses_check_stateless(S("not json"), err, sizeof err), AGW_OK);
    expect_refused("{\"input\":\"x\",\"previous_response_id\":\"resp_1\"}", "stateless");
    expect_refused("{\"input\":\"x\",\"background\":true}", "background");
    expect_refused("{\"input\":\"x\",\"store\":true}", "store:false");
    expect_refused("{\"input\":\"x\",\"conversation\":{\"id\":\"c\"}}", "conversation");
}

static void test_decode_items(void **state)
{
    (void)state;
    dec_t d;
    assert_int_equal(
        dec(&d, "{\"model\":\"m\",\"instructions\":\"I\",\"input\":["
                "{\"role\":\"system\",\"content\":\"S\"},"
                "{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"hi\"},"
                "{\"type\":\"input_image\",\"image_url\":\"data:image/png;base64,QUJD\"}]},"
                "{\"type\":\"reasoning\",\"id\":\"rs_msg_1_0\",\"summary\":[{\"type\":\"summary_text\","
                "\"text\":\"a\"},{\"type\":\"summary_text\",\"text\":\"b\"}],"
                "\"encrypted_content\":\"SIG\"},"
                "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"\"},"
                "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"r\"},"
                "{\"type\":\"message\",\"role\":\"user\",\"content\":\"more\"}],"
                "\"max_output_tokens\":9,\"reasoning\":{\"effort\":\"high\"},\"stream\":true,"
                "\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"parameters\":{}}],"
                "\"tool_choice\":\"required\",\"parallel_tool_calls\":false}"),
        AGW_OK);
    const agw_ir_request *rq = &d.rq;
    assert_int_equal(rq->n_system, 2);
    assert_true(agw_str_eq(rq->system[0].text, S("I")));
    assert_true(agw_str_eq(rq->system[1].text, S("S")));
    assert_int_equal(rq->n_messages, 3);
    assert_int_equal(rq->messages[0].n_blocks, 2);
    assert_int_equal(rq->messages[0].blocks[1].kind, AGW_IR_IMAGE);
    assert_true(agw_str_eq(rq->messages[0].blocks[1].media_type, S("image/png")));
    assert_true(agw_str_eq(rq->messages[0].blocks[1].image_data, S("QUJD")));
    const agw_ir_message *a = &rq->messages[1];
    assert_int_equal(a->role, AGW_IR_ASSISTANT);
    assert_int_equal(a->blocks[0].kind, AGW_IR_THINKING);
    assert_true(agw_str_eq(a->blocks[0].text, S("a\n\nb")));
    assert_true(agw_str_eq(a->blocks[0].signature, S("SIG")));
    assert_int_equal(a->blocks[1].kind, AGW_IR_TOOL_USE);
    assert_true(agw_str_eq(a->blocks[1].tool_input, S("{}")));
    const agw_ir_message *u = &rq->messages[2];
    assert_int_equal(u->blocks[0].kind, AGW_IR_TOOL_RESULT);
    assert_true(agw_str_eq(u->blocks[0].content[0].text, S("r")));
    assert_true(agw_str_eq(u->blocks[1].text, S("more")));
    assert_int_equal(rq->max_tokens, 9);
    assert_true(agw_str_eq(rq->thinking, S("{\"type\":\"enabled\",\"budget_tokens\":24576}")));
    assert_int_equal(rq->tool_choice, AGW_IR_TC_ANY);
    assert_int_equal(rq->parallel_tool_calls, 0);
    assert_int_equal(rq->stream, 1);
    agw_arena_free(&d.arena);
}

static void test_decode_tool_choice_modes(void **state)
{
    (void)state;
    static const struct {
        const char *mode;
        agw_ir_tool_choice want;
    } cases[] = { { "auto", AGW_IR_TC_AUTO }, { "none", AGW_IR_TC_NONE },
                  { "required", AGW_IR_TC_ANY } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\"}],"
                 "\"tool_choice\":\"%s\"}",
                 cases[i].mode);
        dec_t d;
        assert_int_equal(dec(&d, body), AGW_OK);
        assert_int_equal(d.rq.tool_choice, cases[i].want);
        agw_arena_free(&d.arena);
    }
}

static void test_decode_foreign_reasoning(void **state)
{
    (void)state;
    dec_t d;
    /* OpenAI's own reasoning items are dropped; an assistant turn of only
     * those is no turn at all. */
    assert_int_equal(dec(&d, "{\"input\":[{\"role\":\"user\",\"content\":\"a\"},"
                             "{\"type\":\"reasoning\",\"id\":\"rs_68c1\",\"summary\":[{\"type\":"
                             "\"summary_text\",\"text\":\"t\"}],\"encrypted_content\":\"gAAA\"},"
                             "{\"role\":\"user\",\"content\":\"b\"}]}"),
                     AGW_OK);
    assert_int_equal(d.rq.n_messages, 1);
    assert_int_equal(d.rq.messages[0].n_blocks, 2);
    agw_arena_free(&d.arena);
    /* Without an id the client vouches for it. */
    assert_int_equal(dec(&d, "{\"input\":[{\"type\":\"reasoning\",\"summary\":[],"
                             "\"encrypted_content\":\"R\"},{\"role\":\"user\",\"content\":\"b\"}]}"),
                     AGW_OK);
    assert_int_equal(d.rq.messages[0].blocks[0].kind, AGW_IR_REDACTED_THINKING);
    assert_true(agw_str_eq(d.rq.messages[0].blocks[0].text, S("R")));
    agw_arena_free(&d.arena);
}

static void test_decode_refusals(void **state)
{
    (void)state;
    expect_refused("{\"model\":\"m\"}", "input: required");
    expect_refused("{\"input\":[]}", "at least one message");
    expect_refused("{\"input\":7}", "expected a string or an array");
    expect_refused("{\"input\":\"x\",\"tools\":[{\"type\":\"file_search\"}]}", "'file_search'");
    expect_refused("{\"input\":\"x\",\"tools\":[{\"type\":\"function\"}]}", "tools[0].name");
    expect_refused("{\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_object\"}}}",
                   "structured output");
    expect_refused("{\"input\":[{\"type\":\"web_search_call\"}]}", "'web_search_call'");
    expect_refused("{\"input\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"input_image\","
                   "\"image_url\":\"https://x/y\"}]}]}",
                   "only allowed in user messages");
    expect_refused("{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\","
                   "\"file_id\":\"f\"}]}]}",
                   "file_id");
    expect_refused("{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\","
                   "\"image_url\":\"ftp://x\"}]}]}",
                   "http(s) URL");
    expect_refused("{\"input\":[{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\","
                   "\"arguments\":\"[1]\"}]}",
                   "JSON object");
    expect_refused("{\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\"}],"
                   "\"tool_choice\":{\"type\":\"function\",\"name\":\"g\"}}",
                   "no function tool has that name");
    expect_refused("{\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\"}],"
                   "\"tool_choice\":\"any\"}",
                   "tool_choice: expected auto, required, none or an object");
    expect_refused("{\"input\":\"x\",\"temperature\":3}", "temperature");
    expect_refused("{\"input\":\"x\",\"prompt\":{\"id\":\"p\"}}", "prompt");
}

static void test_encode_request(void **state)
{
    (void)state;
    dec_t d;
    assert_int_equal(
        dec(&d, "{\"model\":\"gpt-4.1\",\"instructions\":\"I\",\"input\":["
                "{\"role\":\"user\",\"content\":\"q\"},"
                "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":"
                "\"{\\\"a\\\":1}\"},"
                "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"r\"}],"
                "\"temperature\":0.5,\"tools\":[{\"type\":\"function\",\"name\":\"f\"}],"
                "\"tool_choice\":{\"type\":\"function\",\"name\":\"f\"}}"),
        AGW_OK);
    agw_buf out = AGW_BUF_INIT(1 << 20);
    char err[256];
    assert_int_equal(agw_responses_encode_request(&d.rq, &out, err, sizeof err), AGW_OK);
    const char *want =
        "{\"model\":\"gpt-4.1\",\"instructions\":\"I\",\"input\":[{\"type\":\"message\","
        "\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"q\"}]},"
        "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":"
        "\"{\\\"a\\\":1}\"},{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":"
        "\"r\"}],\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"parameters\":{\"type\":"
        "\"object\",\"properties\":{}},\"strict\":false}],\"tool_choice\":{\"type\":"
        "\"function\",\"name\":\"f\"},\"temperature\":0.5,\"store\":false}";
    if (!agw_str_eq(agw_buf_view(&out), agw_str_c(want)))
        fail_msg("got  %.*s\nwant %s", (int)out.len, out.data, want);
    /* top_k cannot be expressed. */
    d.rq.top_k = 5;
    agw_buf_reset(&out);
    assert_int_equal(agw_responses_encode_request(&d.rq, &out, err, sizeof err), AGW_EINVAL);
    assert_non_null(strstr(err, "top_k"));
    assert_int_equal(out.len, 0);
    agw_buf_free(&out);
    agw_arena_free(&d.arena);
}

/* ---- streams ---- */

typedef struct {
    agw_buf log;
} evlog;

static int log_sink(void *ud, const agw_ir_event *ev)
{
    evlog *l = ud;
    static const char *const kinds[] = { "start", "bstart", "delta", "bstop",
                                         "mdelta", "stop", "error", "ping" };
    agw_err e = agw_buf_appendf(&l->log, "%s", kinds[ev->kind]);
    switch (ev->kind) {
    case AGW_IR_EV_MESSAGE_START:
        e = agw_buf_appendf(&l->log, "(%.*s)", (int)ev->id.len, ev->id.ptr);
        break;
    case AGW_IR_EV_BLOCK_START:
        e = agw_buf_appendf(&l->log, "(%d,%d,%.*s)", ev->index, ev->block, (int)ev->tool_name.len,
                            ev->tool_name.ptr ? ev->tool_name.ptr : "");
        break;
    case AGW_IR_EV_BLOCK_DELTA:
        e = agw_buf_appendf(&l->log, "(%d,%d,%.*s)", ev->index, ev->delta_kind,
                            (int)ev->delta.len, ev->delta.ptr);
        break;
    case AGW_IR_EV_MESSAGE_DELTA:
        e = agw_buf_appendf(&l->log, "(%d,%lld,%lld,%lld,%lld)", ev->stop,
                            (long long)ev->usage.input, (long long)ev->usage.cache_read,
                            (long long)ev->usage.output, (long long)ev->usage.reasoning);
        break;
    case AGW_IR_EV_ERROR:
        e = agw_buf_appendf(&l->log, "(%d,%.*s,%.*s)", ev->status, (int)ev->error_type.len,
                            ev->error_type.ptr, (int)ev->error_message.len,
                            ev->error_message.ptr);
        break;
    default:
        break;
    }
    assert_int_equal(e, AGW_OK);
    assert_int_equal(agw_buf_append(&l->log, " ", 1), AGW_OK);
    return 0;
}

static void feed(agw_responses_stream_decoder *d, evlog *l, const char *data, agw_err want)
{
    char err[256];
    assert_int_equal(agw_responses_decode_stream_event(d, S(""), agw_str_c(data), log_sink, l,
                                                       err, sizeof err),
                     want);
}

static void expect_log(evlog *l, const char *want)
{
    if (!agw_str_eq(agw_buf_view(&l->log), agw_str_c(want)))
        fail_msg("got  [%.*s]\nwant [%s]", (int)l->log.len, l->log.data, want);
}

static void test_stream_decode(void **state)
{
    (void)state;
    agw_responses_stream_decoder d;
    evlog l = { AGW_BUF_INIT(1 << 20) };
    agw_responses_stream_decoder_init(&d);
    feed(&d, &l, "{\"type\":\"response.created\",\"sequence_number\":0,\"response\":"
                 "{\"id\":\"resp_1\",\"model\":\"m\"}}", AGW_OK);
    feed(&d, &l, "{\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"type\":"
                 "\"reasoning\",\"id\":\"rs\",\"summary\":[]}}", AGW_OK);
    /* A reasoning item without a summary makes no block. */
    feed(&d, &l, "{\"type\":\"response.output_item.done\",\"output_index\":0,\"item\":{\"type\":"
                 "\"reasoning\",\"id\":\"rs\",\"summary\":[]}}", AGW_OK);
    feed(&d, &l, "{\"type\":\"response.output_item.added\",\"output_index\":1,\"item\":{\"type\":"
                 "\"message\",\"id\":\"m\",\"content\":[]}}", AGW_OK);
    feed(&d, &l, "{\"type\":\"response.output_text.delta\",\"output_index\":1,\"content_index\":0,"
                 "\"delta\":\"Hi\"}", AGW_OK);
    feed(&d, &l, "{\"type\":\"response.content_part.done\",\"output_index\":1}", AGW_OK);
    feed(&d, &l, "{\"type\":\"response.output_item.added\",\"output_index\":2,\"item\":{\"type\":"
                 "\"function_call\",\"id\":\"fc\",\"call_id\":\"c\",\"name\":\"f\","
                 "\"arguments\":\"\"}}", AGW_OK);
    /* No argument deltas: the arguments come from .done. */
    feed(&d, &l, "{\"type\":\"response.function_call_arguments.done\",\"output_index\":2,"
                 "\"arguments\":\"{}\"}", AGW_OK);
    feed(&d, &l, "{\"type\":\"response.output_item.done\",\"output_index\":2,\"item\":{\"type\":"
                 "\"function_call\",\"call_id\":\"c\",\"name\":\"f\",\"arguments\":\"{}\"}}",
         AGW_OK);
    assert_int_equal(agw_responses_decode_stream_end(&d), AGW_EPEER);
    feed(&d, &l, "{\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":10,"
                 "\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":5,"
                 "\"output_tokens_details\":{\"reasoning_tokens\":3}}}}", AGW_OK);
    assert_int_equal(agw_responses_decode_stream_end(&d), AGW_OK);
    /* After the end, nothing more. */
    feed(&d, &l, "{\"type\":\"response.output_text.delta\",\"output_index\":1,\"delta\":\"x\"}",
         AGW_OK);
    expect_log(&l, "start(resp_1) bstart(0,0,) delta(0,0,Hi) bstop bstart(1,2,f) "
                   "delta(1,1,{}) bstop mdelta(4,6,4,5,3) stop ");
    agw_responses_stream_decoder_free(&d);

    /* Failures. */
    agw_buf_reset(&l.log);
    agw_responses_stream_decoder_init(&d);
    feed(&d, &l, "{\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":"
                 "\"rate_limit_exceeded\",\"message\":\"slow\"}}}", AGW_OK);
    assert_int_equal(agw_responses_decode_stream_end(&d), AGW_OK);
    expect_log(&l, "error(429,rate_limit_error,slow) ");
    agw_responses_stream_decoder_free(&d);
    agw_buf_reset(&l.log);
    agw_responses_stream_decoder_init(&d);
    feed(&d, &l, "{\"type\":\"error\",\"code\":\"server_error\",\"message\":\"boom\","
                 "\"sequence_number\":3}", AGW_OK);
    expect_log(&l, "error(500,api_error,boom) ");
    agw_responses_stream_decoder_free(&d);
    agw_responses_stream_decoder_init(&d);
    feed(&d, &l, "[1]", AGW_EINVAL);
    feed(&d, &l, "{\"type\":\"response.output_text.delta\",\"output_index\":999999,"
                 "\"delta\":\"x\"}", AGW_EINVAL);
    feed(&d, &l, "{\"type\":\"response.function_call_arguments.delta\",\"output_index\":0,"
                 "\"delta\":\"x\"}", AGW_EINVAL);
    agw_responses_stream_decoder_free(&d);
    agw_buf_free(&l.log);
}

static void test_decode_response(void **state)
{
    (void)state;
    evlog l = { AGW_BUF_INIT(1 << 20) };
    char err[256];
    assert_int_equal(
        agw_responses_decode_response(
            S("{\"id\":\"resp_2\",\"object\":\"response\",\"status\":\"incomplete\","
              "\"incomplete_details\":{\"reason\":\"max_output_tokens\"},\"output\":["
              "{\"type\":\"reasoning\",\"summary\":[],\"encrypted_content\":\"E\"},"
              "{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"A\"}]}],"
              "\"usage\":{\"input_tokens\":3,\"output_tokens\":2}}"),
            log_sink, &l, err, sizeof err),
        AGW_OK);
    expect_log(&l, "start(resp_2) bstart(0,5,) bstop bstart(1,0,) delta(1,0,A) bstop "
                   "mdelta(2,3,0,2,-1) stop ");
    agw_buf_reset(&l.log);
    assert_int_equal(agw_responses_decode_response(S("{\"error\":{\"message\":\"no\",\"type\":"
                                                     "\"invalid_request_error\"}}"),
                                                   log_sink, &l, err, sizeof err),
                     AGW_OK);
    expect_log(&l, "error(400,invalid_request_error,no) ");
    assert_int_equal(agw_responses_decode_response(S("{\"id\":1}"), log_sink, &l, err, sizeof err),
                     AGW_EINVAL);
    agw_buf_free(&l.log);
}

/* The event names of an encoder's output, and each sequence_number checked. */
static void event_names(agw_str out, agw_buf *names)
{
    int64_t want = 0;
    const char *p = out.ptr, *end = out.ptr + out.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl);
        assert_memory_equal(p, "event: ", 7);
        assert_int_equal(agw_buf_append(names, p + 7, (size_t)(nl - p - 7)), AGW_OK);
        assert_int_equal(agw_buf_append(names, " ", 1), AGW_OK);
        const char *dnl = memchr(nl + 1, '\n', (size_t)(end - nl - 1));
        agw_str data = { nl + 7, (size_t)(dnl - nl - 7) };
        agw_str v;
        int64_t n;
        assert_int_equal(agw_json_validate(data, 64, NULL, 0), AGW_OK);
        assert_int_equal(agw_json_find(data, S("sequence_number"), &v), AGW_OK);
        assert_int_equal(agw_json_int64(v, &n), AGW_OK);
        assert_int_equal(n, want++);
        p = dnl + 2;
    }
}

static void test_stream_encode(void **state)
{
    (void)state;
    agw_responses_stream_encoder e;
    agw_buf out = AGW_BUF_INIT(1 << 20), names = AGW_BUF_INIT(1 << 20);
    agw_ir_event ev;
    agw_responses_stream_encoder_init(&e, S("client-model"), 1700000000);
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_START);
    ev.id = S("msg_1");
    assert_int_equal(agw_responses_encode_stream_event(&e, &ev, &out), AGW_OK);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
    ev.index = 0;
    ev.block = AGW_IR_TEXT;
    assert_int_equal(agw_responses_encode_stream_event(&e, &ev, &out), AGW_OK);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
    ev.index = 0;
    ev.delta = S("Hi");
    assert_int_equal(agw_responses_encode_stream_event(&e, &ev, &out), AGW_OK);
    /* A delta for a block that is not open is refused. */
    ev.index = 3;
    assert_int_equal(agw_responses_encode_stream_event(&e, &ev, &out), AGW_EINVAL);
    /* A tool call starts: the text item is finished first. */
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
    ev.index = 1;
    ev.block = AGW_IR_TOOL_USE;
    ev.tool_id = S("call_1");
    ev.tool_name = S("f");
    assert_int_equal(agw_responses_encode_stream_event(&e, &ev, &out), AGW_OK);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_STOP);
    ev.index = 1;
    assert_int_equal(agw_responses_encode_stream_event(&e, &ev, &out), AGW_OK);
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_DELTA);
    ev.stop = AGW_IR_STOP_MAX_TOKENS;
    ev.usage.output = 7;
    assert_int_equal(agw_responses_encode_stream_event(&e, &ev, &out), AGW_OK);
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_STOP);
    assert_int_equal(agw_responses_encode_stream_event(&e, &ev, &out), AGW_OK);
    event_names(agw_buf_view(&out), &names);
    const char *want =
        "response.created response.in_progress response.output_item.added "
        "response.content_part.added response.output_text.delta response.output_text.done "
        "response.content_part.done response.output_item.done response.output_item.added "
        "response.function_call_arguments.delta response.function_call_arguments.done "
        "response.output_item.done response.incomplete ";
    if (!agw_str_eq(agw_buf_view(&names), agw_str_c(want)))
        fail_msg("got  %.*s\nwant %s", (int)names.len, names.data, want);
    /* The empty call got "{}" as its arguments; ids derive from the upstream's. */
    assert_non_null(strstr(out.data, "\"delta\":\"{}\""));
    assert_non_null(strstr(out.data, "\"id\":\"resp_msg_1\""));
    assert_non_null(strstr(out.data, "\"item_id\":\"msg_msg_1_0\""));
    assert_non_null(strstr(out.data, "\"item_id\":\"fc_call_1\""));
    assert_non_null(strstr(out.data, "\"incomplete_details\":{\"reason\":\"max_output_tokens\"}"));
    /* Nothing after the end. */
    size_t len = out.len;
    assert_int_equal(agw_responses_encode_stream_event(&e, &ev, &out), AGW_OK);
    assert_int_equal(out.len, len);
    agw_responses_stream_encoder_free(&e);

    /* An error ends the stream as response.failed. */
    agw_buf_reset(&out);
    agw_responses_stream_encoder_init(&e, S("m"), 1);
    agw_ir_event_init(&ev, AGW_IR_EV_ERROR);
    ev.status = 529;
    ev.error_type = S("overloaded_error");
    ev.error_message = S("Overloaded");
    assert_int_equal(agw_responses_encode_stream_event(&e, &ev, &out), AGW_OK);
    assert_non_null(strstr(out.data, "event: response.failed\n"));
    assert_non_null(strstr(out.data, "\"error\":{\"code\":\"server_error\",\"message\":"
                                     "\"Overloaded\"}"));
    agw_responses_stream_encoder_free(&e);
    agw_buf_free(&out);
    agw_buf_free(&names);
}

static void test_encode_response(void **state)
{
    (void)state;
    agw_ir_fold f;
    agw_ir_event ev;
    agw_ir_fold_init(&f, 1 << 20);
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_START);
    ev.id = S("resp_x");
    assert_int_equal(agw_ir_fold_add(&f, &ev), AGW_OK);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_START);
    ev.block = AGW_IR_TOOL_USE;
    ev.tool_id = S("t1");
    ev.tool_name = S("f");
    assert_int_equal(agw_ir_fold_add(&f, &ev), AGW_OK);
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
    ev.delta_kind = AGW_IR_DELTA_JSON;
    ev.delta = S("[1]");
    assert_int_equal(agw_ir_fold_add(&f, &ev), AGW_OK);
    agw_buf out = AGW_BUF_INIT(1 << 20);
    /* Arguments that are not an object: the bridge answers 502. */
    assert_int_equal(agw_responses_encode_response(&f, S("m"), 1, &out), AGW_EINVAL);
    agw_ir_fold_free(&f);
    agw_buf_free(&out);
}

/* ---- which providers use the codec ---- */

static void test_provider_api(void **state)
{
    (void)state;
    agw_config *cfg = NULL;
    char err[AGW_ERR_LEN];
    const char *text =
        "providers = ( { name = \"a\"; type = \"openai\"; base_url = \"http://h/v1\";\n"
        "  responses_models = [ \"gpt-5*-codex\" ]; },\n"
        "{ name = \"b\"; type = \"openai\"; base_url = \"http://h/v1\"; api = \"responses\"; },\n"
        "{ name = \"c\"; type = \"anthropic\"; base_url = \"http://h\"; } );\n";
    assert_int_equal(agw_config_parse(text, NULL, &cfg, err, sizeof err), AGW_OK);
    static const struct {
        size_t provider;
        const char *model;
        agw_proto proto;
        agw_provider_op op;
    } plans[] = {
        { 0, "gpt-5.1-codex", AGW_PROTO_RESPONSES, AGW_OP_RESPONSES },
        { 0, "gpt-4o", AGW_PROTO_OPENAI, AGW_OP_CHAT },
        { 1, "anything", AGW_PROTO_RESPONSES, AGW_OP_RESPONSES },
        { 2, "claude", AGW_PROTO_ANTHROPIC, AGW_OP_MESSAGES },
    };
    for (size_t i = 0; i < sizeof plans / sizeof plans[0]; i++) {
        agw_provider_plan plan;
        char why[64];
        assert_int_equal(agw_provider_plan_call(&cfg->providers[plans[i].provider], AGW_PROTO_OPENAI,
                                                agw_str_c(plans[i].model), &plan, why, sizeof why),
                         AGW_OK);
        assert_int_equal(plan.proto, plans[i].proto);
        assert_int_equal(plan.op, plans[i].op);
    }
    agw_provider_call call;
    assert_int_equal(agw_provider_prepare(&cfg->providers[1], AGW_OP_RESPONSES, NULL, &call),
                     AGW_OK);
    assert_string_equal(call.url, "http://h/v1/responses");
    agw_provider_call_free(&call);
    agw_config_free(cfg);

    static const char *const bad[] = {
        "providers = ( { name = \"a\"; type = \"openai\"; base_url = \"http://h\"; "
        "api = \"completions\"; } );",
        "providers = ( { name = \"a\"; type = \"anthropic\"; base_url = \"http://h\"; "
        "api = \"responses\"; } );",
        "providers = ( { name = \"a\"; type = \"anthropic\"; base_url = \"http://h\"; "
        "responses_models = [ \"x\" ]; } );",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cfg = NULL;
        assert_int_equal(agw_config_parse(bad[i], NULL, &cfg, err, sizeof err), AGW_EINVAL);
        assert_null(cfg);
        assert_true(strstr(err, "api") || strstr(err, "responses_models"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stateless),
        cmocka_unit_test(test_decode_items),
        cmocka_unit_test(test_decode_tool_choice_modes),
        cmocka_unit_test(test_decode_foreign_reasoning),
        cmocka_unit_test(test_decode_refusals),
        cmocka_unit_test(test_encode_request),
        cmocka_unit_test(test_stream_decode),
        cmocka_unit_test(test_decode_response),
        cmocka_unit_test(test_stream_encode),
        cmocka_unit_test(test_encode_response),
        cmocka_unit_test(test_provider_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
